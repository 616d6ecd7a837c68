//! Logout: OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.
//!
//! **Which session, which client.** A logout request names its client by the `id_token_hint`
//! (an ID Token this provider signed; an *expired* one still identifies, RP-Initiated Logout
//! §2) or by `client_id`; both present must agree. Only then can a `post_logout_redirect_uri`
//! be honoured, and only if the client registered it (exact match, §3). The End-User is asked
//! before the OP session ends unless the hint names this very session (same `sub`, and the
//! same `sid` when the hint has one): a logout link on another site cannot sign anyone out
//! (§2: the OP MUST ask when the hint is missing or names another session).
//!
//! **Who is told.** A session remembers the clients it signed in to
//! ([`BrowserSession::clients`], Back-Channel Logout §2.3). When it ends, each that registered
//! a `backchannel_logout_uri` gets a logout token ([`Provider::end_session`] signs them; the
//! server POSTs them in the background with a timeout and bounded retries, never holding up
//! the End-User's logout).
//!
//! **What ends with the session.** A client that registered a back-channel logout URI follows
//! the OP session: its codes and refresh tokens from a session that was logged out are refused
//! from then on (`invalid_grant`), and token exchange refuses its ID Tokens from that session.
//! This is one mark in the store ([`session_mark`], a revoked pseudo-grant), checked where a
//! grant is used ([`Provider::check_session_live`]), so a grant that began in the session while
//! it was ending is caught as well. Other clients keep what they were granted: their refresh
//! tokens exist only for `offline_access`, which outlives the sign-in by definition (OIDC Core
//! §11). Access tokens already issued live out their lifetime.

use keybound_proto::idtoken::{self, Audience, BindingRequirement, IdTokenChecks};
use keybound_proto::keybinding::{TYP_DPOP_ID_TOKEN, TYP_ID_TOKEN_CNF};
use keybound_store::{BrowserSession, Client};
use serde_json::{json, Value};

use crate::refusal::LogoutRefusal as Why;
use crate::{OpError, Provider};

/// Header `typ` of a logout token (Back-Channel Logout §2.4).
pub const TYP_LOGOUT: &str = "logout+jwt";
/// The `events` member that makes a JWT a logout token (Back-Channel Logout §2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Lifetime of a logout token: long enough for the retries, short enough to be useless later.
const LOGOUT_TOKEN_TTL: u64 = 120;

/// The parameters of an end-session request (RP-Initiated Logout §2), GET query or POST form.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndSessionRequest<'a> {
    /// `id_token_hint`
    pub id_token_hint: Option<&'a str>,
    /// `client_id`
    pub client_id: Option<&'a str>,
    /// `post_logout_redirect_uri`
    pub post_logout_redirect_uri: Option<&'a str>,
    /// `state`
    pub state: Option<&'a str>,
}

/// Who an `id_token_hint` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// the End-User
    pub sub: String,
    /// the OP session it was issued in, if any
    pub sid: Option<String>,
}

/// A checked end-session request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndSession {
    /// the client the request comes from, when it names one
    pub client_id: Option<String>,
    /// who the hint names
    pub hint: Option<Hint>,
    /// the registered `post_logout_redirect_uri` the End-User goes to afterwards
    pub post_logout_redirect_uri: Option<String>,
    /// `state`, returned with the redirect
    pub state: Option<String>,
}

impl EndSession {
    /// Whether the hint names this session, so logging out needs no confirmation: the same
    /// End-User and, when the hint carries one, the same `sid`.
    pub fn names(&self, session: &BrowserSession) -> bool {
        self.hint.as_ref().is_some_and(|h| {
            h.sub == session.sub
                && h.sid
                    .as_ref()
                    .is_none_or(|sid| Some(sid.as_str()) == session.session_id())
        })
    }

    /// Where to send the End-User after logging out (or declining to): the registered URI
    /// with `state` (§3), or `None` for the provider's own page.
    pub fn redirect(&self) -> Option<String> {
        let uri = self.post_logout_redirect_uri.as_ref()?;
        let Some(state) = &self.state else {
            return Some(uri.clone());
        };
        let mut url = url::Url::parse(uri).ok()?;
        url.query_pairs_mut().append_pair("state", state);
        Some(url.into())
    }
}

/// A logout token to POST to a client's back-channel logout URI (Back-Channel Logout §2.5).
#[derive(Clone)]
pub struct LogoutDelivery {
    /// the client
    pub client_id: String,
    /// its `backchannel_logout_uri`
    pub uri: String,
    /// the signed logout token (a credential for ending sessions: never logged)
    pub logout_token: String,
}

impl std::fmt::Debug for LogoutDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoutDelivery")
            .field("client_id", &self.client_id)
            .field("uri", &self.uri)
            .field("logout_token", &"<redacted>")
            .finish()
    }
}

/// The claims of a logout token (Back-Channel Logout §2.4).
#[derive(serde::Serialize)]
struct LogoutTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    events: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
}

/// The revoked pseudo-grant that marks session `sid` as logged out.
pub(crate) fn session_mark(sid: &str) -> String {
    format!("logout-session:{sid}")
}

impl Provider {
    /// Check an end-session request: the hint (our signature and issuer, any age), the client
    /// it names, and the post-logout redirect URI against that client's registered ones.
    pub async fn end_session_request(
        &self,
        r: EndSessionRequest<'_>,
    ) -> Result<EndSession, OpError> {
        let (hint, hinted_client) = match r.id_token_hint.filter(|h| !h.is_empty()) {
            Some(h) => {
                let (hint, client) = self.open_hint(h).await?;
                (Some(hint), Some(client))
            }
            None => (None, None),
        };
        let client_id = match (r.client_id.filter(|c| !c.is_empty()), hinted_client) {
            // §2: both present, the Client Identifier must be the one the ID Token was issued to
            (Some(c), Some(h)) if c != h => {
                return Err(Why::ClientMismatch {
                    client_id: c.to_owned(),
                    hinted: h,
                }
                .into())
            }
            (Some(c), _) => Some(c.to_owned()),
            (None, h) => h,
        };
        let client = match &client_id {
            Some(id) => Some(
                self.store
                    .client(id)
                    .await?
                    .ok_or_else(|| Why::UnknownClient(id.clone()))?,
            ),
            None => None,
        };
        let post_logout_redirect_uri = match r.post_logout_redirect_uri.filter(|u| !u.is_empty()) {
            None => None,
            Some(uri) => {
                let client = client.as_ref().ok_or(Why::RedirectWithoutClient)?;
                // §3: exact match with a registered value, or no redirection at all
                if !client.post_logout_redirect_uris.iter().any(|u| u == uri) {
                    return Err(Why::RedirectNotRegistered {
                        uri: uri.to_owned(),
                        client_id: client.client_id.clone(),
                    }
                    .into());
                }
                Some(uri.to_owned())
            }
        };
        Ok(EndSession {
            client_id,
            hint,
            post_logout_redirect_uri,
            state: r.state.map(str::to_owned),
        })
    }

    /// An `id_token_hint`: an ID Token this provider signed (any of its published keys, its
    /// issuer, an ID Token's `typ`), expired or not; who it names and the client it was issued
    /// to (`azp`, else its one audience).
    async fn open_hint(&self, hint: &str) -> Result<(Hint, String), OpError> {
        let unusable = |e: keybound_proto::Error| OpError::from(Why::Hint(e));
        let unread = idtoken::decode(hint).map_err(unusable)?;
        let bound = matches!(
            unread.jws().header().typ.as_deref(),
            Some(TYP_DPOP_ID_TOKEN | TYP_ID_TOKEN_CNF)
        );
        let keys = self.jwks().await?;
        // every check of an ID Token but its age: validated as of its own issue time, so an
        // expired hint still identifies (RP-Initiated Logout §2); the signature is checked here
        let audiences = unread.unverified_claims().aud.as_slice().to_vec();
        let issued_at = unread.unverified_claims().iat;
        let checks = IdTokenChecks {
            leeway: 0,
            binding: if bound {
                BindingRequirement::Bound {
                    expected_jkt: None,
                    accept_draft00: true,
                }
            } else {
                BindingRequirement::Unbound
            },
            ..IdTokenChecks::new(&self.config.issuer, &audiences, issued_at)
        };
        let claims = idtoken::validate_decoded(unread, &keys, &checks)
            .map_err(unusable)?
            .claims;
        let client = match (&claims.azp, &claims.aud) {
            (Some(azp), _) => azp.clone(),
            (None, Audience::One(a)) => a.clone(),
            (None, Audience::Many(v)) if v.len() == 1 => v[0].clone(),
            (None, Audience::Many(_)) => return Err(Why::HintAudience.into()),
        };
        let sid = claims
            .extra
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((
            Hint {
                sub: claims.sub,
                sid,
            },
            client,
        ))
    }

    /// End `session` (the caller deletes it from the store): mark it logged out for the clients
    /// that follow the OP session, and sign a logout token for each client it signed in to that
    /// registered a back-channel logout URI. The caller delivers them.
    pub async fn end_session(
        &self,
        session: &BrowserSession,
    ) -> Result<Vec<LogoutDelivery>, OpError> {
        let now = self.now();
        if let Some(sid) = session.session_id() {
            self.store.revoke_grant(&session_mark(sid), now).await?;
        }
        self.event(
            crate::events::SecurityEvent::new(crate::events::EventType::Logout)
                .subject(&session.sub),
        );
        let mut out = Vec::new();
        for id in &session.clients {
            let Some(client) = self.store.client(id).await? else {
                continue;
            };
            let Some(uri) = client.backchannel_logout_uri.clone() else {
                continue;
            };
            out.push(LogoutDelivery {
                client_id: client.client_id.clone(),
                uri,
                logout_token: self.logout_token(&client, session).await?,
            });
        }
        Ok(out)
    }

    /// A logout token (Back-Channel Logout §2.4): signed like ID Tokens, `typ: logout+jwt`,
    /// `iss`, `aud`, `iat`, `exp`, `jti`, the logout event, `sub` and `sid`; never a `nonce`.
    async fn logout_token(
        &self,
        client: &Client,
        session: &BrowserSession,
    ) -> Result<String, OpError> {
        let now = self.now();
        let claims = LogoutTokenClaims {
            iss: &self.config.issuer,
            sub: &session.sub,
            aud: &client.client_id,
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL,
            jti: self.random_id(),
            events: json!({ LOGOUT_EVENT: {} }),
            sid: session.session_id(),
        };
        self.sign_jwt(TYP_LOGOUT, &claims, "a logout token").await
    }

    /// A grant that began in OP session `sid` for `client` is still usable: refused once the
    /// session was logged out, for clients that follow the session (a back-channel logout URI).
    pub(crate) async fn check_session_live(
        &self,
        client: &Client,
        sid: Option<&str>,
    ) -> Result<(), OpError> {
        let Some(sid) = sid.filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        if client.backchannel_logout_uri.is_some()
            && self.store.is_grant_revoked(&session_mark(sid)).await?
        {
            return Err(Why::SessionEnded.into());
        }
        Ok(())
    }
}
