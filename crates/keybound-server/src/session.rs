//! The End-User's browser at the OP: the session cookie, signing in, and CSRF tokens.
//!
//! **CSRF tokens are derived, not stored.** A form's token is HMAC-SHA256 keyed by the secret
//! cookie it belongs to, so any node can check it and nothing is kept per form:
//! - with an OP session, the token is derived from the session cookie. A token that approves
//!   consent, a device, or signs out therefore proves the form was rendered for *this* session:
//!   a cookie planted by a sibling subdomain or another port on the same host (cookie tossing)
//!   cannot stand in for it, because the attacker does not know the victim's session cookie;
//! - before sign-in, the token is derived from a random pre-session cookie. It only guards the
//!   login form (and the device code entry); a planted pre-session cookie allows at most login
//!   CSRF, which `__Host-` cookies stop under https (the remaining limit on plain-http
//!   loopback deployments is in docs/security.md);
//! - signing in creates a new session cookie, so the token rotates at login and a token from
//!   before the login never approves anything after it.
//!
//! **Sessions are bound to the user agent's Token Binding** when it has one (the native
//! listener verified it, or a trusted terminator forwarded it): the store keys the session by
//! a hash of the cookie *and* the provided Token Binding ID, so the same cookie copied into
//! another browser, whose connection carries another binding, names no session there
//! (RFC 8473 §3 binds cookies this way). The cookie format does not change, so any node can
//! compute the key, and a session started without Token Binding is simply not found once the
//! browser starts using it (sign in again).
//!
//! Under an `https` issuer the cookies are named `__Host-…` (`Secure`, `Path=/`, no `Domain`), so
//! browsers refuse them from any other host or from plain http.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use keybound_op::OpError;
use keybound_store::{BrowserSession, TokenHash};

use crate::peer::TokenBindingContext;
use crate::{forms, AppState};

const SESSION_COOKIE: &str = "kb_session";
const PRE_SESSION_COOKIE: &str = "kb_csrf";
const HOST_SESSION_COOKIE: &str = "__Host-kb_session";
const HOST_PRE_SESSION_COOKIE: &str = "__Host-kb_csrf";
/// The HMAC message of a CSRF token (versioned, so a new derivation never collides).
const CSRF_LABEL: &[u8] = b"keybound csrf v1";
/// Lifetime of the pre-session cookie.
const PRE_SESSION_TTL: u64 = 86_400;

/// What a submitted form may do, and so which cookie its CSRF token must come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormScope {
    /// signing in or entering a device code: the session's token or the pre-session one
    BeforeSignIn,
    /// consent, device approval, sign-out: only the session's token
    Session,
}

impl AppState {
    fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            HOST_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    fn pre_session_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            HOST_PRE_SESSION_COOKIE
        } else {
            PRE_SESSION_COOKIE
        }
    }

    /// The session cookie's value, if the browser sent one.
    pub(crate) fn session_cookie(&self, headers: &HeaderMap) -> Option<String> {
        forms::cookie(headers, self.session_cookie_name()).filter(|c| !c.is_empty())
    }

    /// The pre-session cookie's value, if the browser sent a well-formed one.
    pub(crate) fn pre_session_cookie(&self, headers: &HeaderMap) -> Option<String> {
        forms::cookie(headers, self.pre_session_cookie_name()).filter(|c| c.len() >= 32)
    }

    fn cookie_attrs(&self, max_age: u64) -> String {
        let secure = if self.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        format!("; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }

    /// `Set-Cookie` value that ends the session cookie.
    pub(crate) fn clear_session_cookie(&self) -> String {
        format!("{}={}", self.session_cookie_name(), self.cookie_attrs(0))
    }
}

/// Add a `Set-Cookie` header.
pub(crate) fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The CSRF token of forms tied to `secret` (see [`form_secret`]).
pub(crate) fn derive(secret: &str) -> String {
    keybound_jose::hmac_sha256_b64(secret.as_bytes(), CSRF_LABEL)
}

/// The secret the forms of this response are tied to (the session cookie, else the
/// pre-session cookie), and a `Set-Cookie` value when a new pre-session cookie is needed.
pub(crate) fn form_secret(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    if let Some(s) = state.session_cookie(headers) {
        return (s, None);
    }
    if let Some(p) = state.pre_session_cookie(headers) {
        return (p, None);
    }
    let p = state.provider.random_token();
    let cookie = format!(
        "{}={p}{}",
        state.pre_session_cookie_name(),
        state.cookie_attrs(PRE_SESSION_TTL)
    );
    (p, Some(cookie))
}

/// The CSRF token for forms rendered in this response, and a `Set-Cookie` value when a new
/// pre-session cookie is needed.
pub(crate) fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    let (secret, cookie) = form_secret(state, headers);
    (derive(&secret), cookie)
}

/// The HMAC label of a carried referral (versioned like [`CSRF_LABEL`]).
const REFERRAL_LABEL: &str = "keybound tb referral v1";

fn referral_mac(secret: &str, fingerprint: &str, id_b64: &str, tb: &TokenBindingContext) -> String {
    let provided = tb
        .provided
        .as_ref()
        .and_then(|p| p.tbh().ok())
        .unwrap_or_else(|| "-".to_owned());
    keybound_jose::hmac_sha256_b64(
        secret.as_bytes(),
        format!("{REFERRAL_LABEL}\n{fingerprint}\n{id_b64}\n{provided}").as_bytes(),
    )
}

/// A referred Token Binding ID carried through the OP's own forms (login, consent).
///
/// A browser sends the referred binding only on the first request after the RP's redirect
/// (RFC 8473 §5): the `GET /authorize` that shows the login page, not the form posts that
/// follow and end in the code. So the OP carries the ID it verified on that request in a
/// hidden field, sealed with an HMAC keyed by the form's secret cookie over the authorization
/// request's fingerprint and the user agent's *provided* Token Binding: only the same browser
/// (same cookie, same Token Binding key with the OP) posting the same request can bring it
/// back, so a `tbh` still only ever names a binding verified on this user agent's connection.
pub(crate) fn seal_referral(
    secret: &str,
    fingerprint: &str,
    referred: &keybound_proto::tokbind::TokenBindingId,
    tb: &TokenBindingContext,
) -> Option<String> {
    let id_b64 = keybound_jose::b64::encode(referred.to_bytes().ok()?);
    let mac = referral_mac(secret, fingerprint, &id_b64, tb);
    Some(format!("{id_b64}.{mac}"))
}

/// The referred ID sealed by [`seal_referral`] for this browser, request and Token Binding,
/// or `None` (no field, or any doubt).
pub(crate) fn open_referral(
    state: &AppState,
    headers: &HeaderMap,
    sealed: Option<&str>,
    fingerprint: &str,
    tb: &TokenBindingContext,
) -> Option<keybound_proto::tokbind::TokenBindingId> {
    let (id_b64, mac) = sealed?.split_once('.')?;
    let ok = [
        state.session_cookie(headers),
        state.pre_session_cookie(headers),
    ]
    .into_iter()
    .flatten()
    .any(|secret| {
        keybound_jose::ct_eq(
            referral_mac(&secret, fingerprint, id_b64, tb).as_bytes(),
            mac.as_bytes(),
        )
    });
    if !ok {
        return None;
    }
    let bytes = keybound_jose::b64::decode(id_b64).ok()?;
    keybound_proto::tokbind::TokenBindingId::from_bytes(&bytes).ok()
}

/// Whether `mark` is the provider's mark of a pushed request with `fingerprint` for this
/// browser (its session or pre-session cookie), as the OP's forms carry it.
pub(crate) fn pushed_mark_ok(
    state: &AppState,
    headers: &HeaderMap,
    mark: &str,
    fingerprint: &str,
) -> bool {
    [
        state.session_cookie(headers),
        state.pre_session_cookie(headers),
    ]
    .into_iter()
    .flatten()
    .any(|secret| state.provider.is_pushed_mark(mark, fingerprint, &secret))
}

/// Whether `submitted` is the CSRF token of this browser for a form of `scope`.
pub(crate) fn csrf_ok(
    state: &AppState,
    headers: &HeaderMap,
    submitted: Option<&str>,
    scope: FormScope,
) -> bool {
    let Some(submitted) = submitted else {
        return false;
    };
    let matches = |secret: Option<String>| {
        secret.is_some_and(|s| keybound_jose::ct_eq(derive(&s).as_bytes(), submitted.as_bytes()))
    };
    matches(state.session_cookie(headers))
        || (scope == FormScope::BeforeSignIn && matches(state.pre_session_cookie(headers)))
}

/// The store key of a session cookie presented with the Token Binding `tb`.
pub(crate) fn session_key(cookie: &str, tb: &TokenBindingContext) -> TokenHash {
    match tb
        .provided
        .as_ref()
        .map(keybound_proto::tokbind::TokenBindingId::tbh)
    {
        Some(Ok(tbh)) => TokenHash::of(&format!("{cookie}\ntoken-binding:{tbh}")),
        // a verified ID always encodes; if it ever did not, the session must not be shared
        // with unbound requests either: key it by something no request can produce
        Some(Err(_)) => TokenHash::of(&format!("{cookie}\ntoken-binding:invalid")),
        None => TokenHash::of(cookie),
    }
}

/// The End-User's live session at the OP, from the session cookie and the connection's Token
/// Binding — and, for a session bound to the browser's key (DBSC), only with a live bound
/// cookie: a copied session cookie dies with the bound cookie it came with. A store failure is
/// the provider's error (503), never "no session": a signed-in End-User is not asked to sign
/// in again because the database is away.
pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
    tb: &TokenBindingContext,
) -> Result<Option<(TokenHash, BrowserSession)>, OpError> {
    Ok(session_of_cookie(state, headers, tb)
        .await?
        .filter(|(hash, s)| s.dbsc.is_none() || crate::dbsc::bound_cookie_ok(state, headers, hash)))
}

/// The session the session cookie names, bound cookie or not: for the DBSC endpoints, which
/// register a key for it and refresh its bound cookie.
pub(crate) async fn session_of_cookie(
    state: &AppState,
    headers: &HeaderMap,
    tb: &TokenBindingContext,
) -> Result<Option<(TokenHash, BrowserSession)>, OpError> {
    let Some(cookie) = state.session_cookie(headers) else {
        return Ok(None);
    };
    let hash = session_key(&cookie, tb);
    let now = state.provider.now();
    let session = state.provider.store().session(&hash, now).await?;
    Ok(session.map(|s| (hash, s)))
}

/// A successful sign-in.
pub(crate) struct SignedIn {
    /// the new session
    pub session: BrowserSession,
    /// its key in the store
    pub key: TokenHash,
    /// its `Set-Cookie` value
    pub set_cookie: String,
    /// the new session cookie's value: the secret forms in this session are tied to (their
    /// CSRF token is `derive(form_secret)`; the old pre-session token is void)
    pub form_secret: String,
    /// the offer to bind the session to a key of the browser (DBSC), when on
    pub dbsc_offer: Option<String>,
}

impl SignedIn {
    /// What a response that signs the browser in carries: the session cookie and the DBSC
    /// offer.
    pub(crate) fn apply(&self, resp: &mut Response) {
        set_cookie(resp, &self.set_cookie);
        if let Some(v) = self
            .dbsc_offer
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            resp.headers_mut()
                .insert(keybound_proto::dbsc::REGISTRATION_HEADER, v);
        }
    }
}

/// The secret this browser's forms and passkey ceremonies are tied to, if it has one yet: the
/// session cookie, else the pre-session cookie (the order [`form_secret`] chose it in).
pub(crate) fn existing_form_secret(state: &AppState, headers: &HeaderMap) -> Option<String> {
    state
        .session_cookie(headers)
        .or_else(|| state.pre_session_cookie(headers))
}

/// Store `session` under a new cookie: the signed-in browser's new session.
async fn start_session(
    state: &AppState,
    mut session: BrowserSession,
    fresh_for: Option<String>,
    tb: &TokenBindingContext,
) -> Result<SignedIn, OpError> {
    session.fresh_for = fresh_for;
    let token = state.provider.random_token();
    let key = session_key(&token, tb);
    state.provider.store().put_session(&key, &session).await?;
    let set_cookie = format!(
        "{}={token}{}",
        state.session_cookie_name(),
        state.cookie_attrs(state.provider.config.session_ttl)
    );
    let dbsc_offer = crate::dbsc::offer(state, &key);
    Ok(SignedIn {
        session,
        key,
        set_cookie,
        form_secret: token,
        dbsc_offer,
    })
}

/// Check the login form's credentials and start a new session, or `None` for a wrong username
/// or password. `fresh_for` is the fingerprint of the authorization request the login form
/// belonged to.
pub(crate) async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    fresh_for: Option<String>,
    source: Option<IpAddr>,
    tb: &TokenBindingContext,
) -> Result<Option<SignedIn>, OpError> {
    let source = source.map(|ip| ip.to_string());
    let Some(session) = state
        .provider
        .login_from(username, password, source.as_deref())
        .await?
    else {
        return Ok(None);
    };
    start_session(state, session, fresh_for, tb).await.map(Some)
}

/// What a passkey form posted: the ceremony's sealed state and the authenticator's credential
/// (WebAuthn JSON).
pub(crate) struct PasskeyResponse<'a> {
    pub state: &'a str,
    pub credential: &'a str,
}

/// Finish a passkey sign-in and start a new session: a passkey alone, or a password and a
/// passkey when `current` is the same End-User's password session. A refusal for a cloned
/// authenticator is logged (the End-User's passkey may have been copied).
pub(crate) async fn sign_in_with_passkey(
    state: &AppState,
    headers: &HeaderMap,
    response: &PasskeyResponse<'_>,
    current: Option<&BrowserSession>,
    fresh_for: Option<String>,
    source: Option<IpAddr>,
    tb: &TokenBindingContext,
) -> Result<SignedIn, OpError> {
    let secret = existing_form_secret(state, headers)
        .ok_or(keybound_op::refusal::PasskeyRefusal::ForeignCeremony)?;
    let source = source.map(|ip| ip.to_string());
    let signed_in = state
        .provider
        .passkey_sign_in(&secret, response.state, response.credential, source.as_deref())
        .await
        .inspect_err(|e| {
            if let OpError::Refused(keybound_op::refusal::Refusal::Passkey(
                keybound_op::refusal::PasskeyRefusal::ClonedAuthenticator { credential_id },
            )) = e
            {
                tracing::warn!(
                    credential_id,
                    source = source.as_deref().unwrap_or("-"),
                    "passkey refused: its signature counter did not move forward (a cloned authenticator?)"
                );
            }
        })?;
    let session = state.provider.passkey_session(&signed_in, current);
    start_session(state, session, fresh_for, tb).await
}
