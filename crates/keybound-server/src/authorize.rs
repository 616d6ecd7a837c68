//! The authorization endpoint and its pages: GET/POST authorization requests, and the login and
//! consent forms (posted back here with the original parameters). The session cookie and CSRF
//! tokens are [`crate::session`]'s.

use std::sync::Arc;

use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keybound_op::par::REQUEST_URI_PREFIX;
use keybound_op::refusal::PageRefusal;
use keybound_op::{paths, Interaction, OpError, ValidatedAuthorization};
use keybound_store::{BrowserSession, TokenHash};

use crate::error::{form_note, page_failed as failed, page_refused as refused, Failure};
use crate::forms::PageForm;
use crate::peer::{ClientAddr, TokenBinding};
use crate::response::{html, respond};
use crate::session::{
    csrf_ok, current_session, derive, form_secret, open_referral, pushed_mark_ok, seal_referral,
    set_cookie, sign_in, FormScope, SignedIn,
};
use crate::{forms, pages, AppState};

/// What a page whose CSRF check failed tells the End-User to do.
const START_AGAIN: &str = "Go back to the app and start again.";

const INTERNAL: [&str; 7] = [
    "kb_action",
    "csrf",
    "username",
    "password",
    "decision",
    "kb_tbr",
    "kb_par",
];

/// `GET /authorize`
pub async fn authorize_get(
    State(state): State<Arc<AppState>>,
    ClientAddr(source): ClientAddr,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = forms::pairs(q.unwrap_or_default().as_bytes());
    handle(&state, &headers, pairs, source, &tb).await
}

/// `POST /authorize` (authorization requests by POST, and our login and consent forms)
pub async fn authorize_post(
    State(state): State<Arc<AppState>>,
    ClientAddr(source): ClientAddr,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    handle(&state, &headers, pairs, source, &tb).await
}

struct Step<'a> {
    state: &'a AppState,
    headers: &'a HeaderMap,
    v: &'a ValidatedAuthorization,
    params: &'a [(String, String)],
    /// the session cookie's hash, to clear the freshness marker once the code is issued
    session_hash: Option<TokenHash>,
    /// the connection's Token Binding
    tb: &'a crate::peer::TokenBindingContext,
    /// the referred Token Binding ID in effect for this request (verified on this request,
    /// or carried sealed through our forms from the request that verified it)
    referred: Option<keybound_proto::tokbind::TokenBindingId>,
    /// the authorization request's fingerprint
    fingerprint: &'a str,
    /// the parameters came from a pushed request (RFC 9126)
    pushed: bool,
}

/// The fingerprint of an authorization request: SHA-256 over its parameters as sent (without
/// our form fields). A login counts as fresh only for the request with this fingerprint.
fn fingerprint(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    keybound_jose::sha256_b64(
        serde_urlencoded::to_string(sorted)
            .unwrap_or_default()
            .as_bytes(),
    )
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    pairs: Vec<(String, String)>,
    source: Option<IpAddr>,
    tb: &crate::peer::TokenBindingContext,
) -> Response {
    let (internal, params): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| INTERNAL.contains(&k.as_str()));
    let field = |n: &str| {
        internal
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    // RFC 9126: a request_uri of this server's stands for the pushed parameters, taken out of
    // the store at this, its one use (another request_uri is refused by validation, as
    // request_uri_not_supported)
    let ours = param("request_uri").filter(|u| u.starts_with(REQUEST_URI_PREFIX));
    let (params, pushed) = if let Some(uri) = ours {
        let client_id = param("client_id").unwrap_or_default();
        match state.provider.take_pushed_request(uri, client_id).await {
            Ok(p) => (p, true),
            Err(e) => return failed(e),
        }
    } else {
        // … or were pushed, and come back through the OP's own forms with its mark
        let marked = field("kb_par")
            .is_some_and(|m| pushed_mark_ok(state, headers, m, &fingerprint(&params)));
        (params, marked)
    };
    // RFC 9101: a request object by value, opened into the parameters it signs (once; the
    // forms then carry the parameters)
    let params = match state.provider.open_request_object(params).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let req = match keybound_op::par::authorization_request(&params) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let validated = if pushed {
        state.provider.validate_pushed_authorization(&req).await
    } else {
        state.provider.validate_authorization(&req).await
    };
    let mut v = match validated {
        Ok(v) => v,
        Err(e) => return Failure::from(e).into_response(),
    };
    let this_request = fingerprint(&params);
    // OIDC Token Bound Authentication §3: the referred Token Binding ID verified for this user
    // agent (on this request, or sealed into our forms by the request that carried it), for
    // clients that registered support for Token Bound ID Tokens (§5.1)
    let referred = match &tb.referred {
        Some(id) => Some(id.clone()),
        None => open_referral(state, headers, field("kb_tbr"), &this_request, tb),
    };
    if v.client.token_bound_id_tokens {
        v.tbh = referred.as_ref().and_then(|id| id.tbh().ok());
    }
    let (session_hash, session) = match current_session(state, headers, tb).await {
        Ok(Some((h, s))) => (Some(h), Some(s)),
        Ok(None) => (None, None),
        Err(e) => return failed(e),
    };
    let step = Step {
        state,
        headers,
        v: &v,
        params: &params,
        session_hash,
        tb,
        referred: if v.client.token_bound_id_tokens {
            referred
        } else {
            None
        },
        fingerprint: &this_request,
        pushed,
    };
    // fresh: this session's login was performed for this very request (OP state)
    let fresh = session
        .as_ref()
        .is_some_and(|s| s.fresh_for.as_deref() == Some(this_request.as_str()));
    match field("kb_action") {
        None => step.next(session.as_ref(), fresh, false, None).await,
        Some("login") => {
            if !csrf_ok(state, headers, field("csrf"), FormScope::BeforeSignIn) {
                return refused(PageRefusal::Csrf(START_AGAIN));
            }
            let (Some(u), Some(p)) = (field("username"), field("password")) else {
                return step.login_page(Some(PageRefusal::MissingCredentials));
            };
            match sign_in(state, u, p, Some(this_request.clone()), source, tb).await {
                Ok(Some(signed_in)) => {
                    step.next(Some(&signed_in.session), true, false, Some(&signed_in))
                        .await
                }
                Ok(None) => step.login_page(Some(PageRefusal::WrongPassword)),
                Err(e) => failed(e),
            }
        }
        Some("consent") => {
            if !csrf_ok(state, headers, field("csrf"), FormScope::Session) {
                return refused(PageRefusal::Csrf(START_AGAIN));
            }
            let Some(sess) = session else {
                return step.login_page(Some(PageRefusal::SessionEnded));
            };
            match field("decision") {
                Some("allow") => {
                    if let Err(e) = state.provider.record_consent(&v, &sess.sub).await {
                        return failed(e);
                    }
                    step.next(Some(&sess), fresh, true, None).await
                }
                Some("deny") => Failure::from(state.provider.access_denied(&v)).into_response(),
                _ => refused(PageRefusal::ChooseDecision("Allow or Deny")),
            }
        }
        Some(other) => refused(PageRefusal::UnknownAction(other.to_owned())),
    }
}

impl Step<'_> {
    async fn next(
        &self,
        session: Option<&BrowserSession>,
        fresh: bool,
        consented: bool,
        signed_in: Option<&SignedIn>,
    ) -> Response {
        let mut resp = match self
            .state
            .provider
            .next_interaction(self.v, session, fresh, consented)
            .await
        {
            Err(e) => Failure::from(e).into_response(),
            Ok(Interaction::Login) => self.login_page(None),
            Ok(Interaction::Consent(p)) => {
                // right after sign-in, the new session's token (the browser has not sent its
                // cookie yet)
                let (secret, cookie) = match signed_in {
                    Some(s) => (s.form_secret.clone(), None),
                    None => form_secret(self.state, self.headers),
                };
                let csrf = derive(&secret);
                let mut r = html(
                    StatusCode::OK,
                    pages::consent(paths::AUTHORIZE, &self.form_fields(&secret), &csrf, &p),
                );
                if let Some(c) = cookie {
                    set_cookie(&mut r, &c);
                }
                r
            }
            Ok(Interaction::Issue) => match session {
                Some(s) => match self.issue(s, signed_in.map(|i| &i.key)).await {
                    Ok(r) => respond(&r),
                    Err(e) => failed(e),
                },
                None => failed(OpError::internal(
                    "issue step reached without a browser session",
                )),
            },
        };
        if let Some(s) = signed_in {
            set_cookie(&mut resp, &s.set_cookie);
        }
        resp
    }

    /// Issue the code. The session (`key`: the one signed in with this request, else the
    /// browser's) remembers the client for logout, and a login made for this request stops
    /// counting as fresh (a replay of the same request needs a new login).
    async fn issue(
        &self,
        s: &BrowserSession,
        key: Option<&TokenHash>,
    ) -> Result<keybound_op::AuthorizationResponse, OpError> {
        if let Some(key) = key.or(self.session_hash.as_ref()) {
            let mut updated = BrowserSession {
                fresh_for: None,
                ..s.clone()
            };
            let remembered = updated.signed_in_to(&self.v.client.client_id);
            if remembered || s.fresh_for.is_some() {
                self.state
                    .provider
                    .store()
                    .put_session(key, &updated)
                    .await?;
            }
        }
        self.state.provider.issue_code(self.v, s).await
    }

    /// The hidden fields of our forms: the authorization request, the sealed referral, and
    /// the mark of a pushed request.
    fn form_fields(&self, secret: &str) -> Vec<(String, String)> {
        let mut fields = self.params.to_vec();
        if self.pushed {
            let mark = self.state.provider.pushed_mark(self.fingerprint, secret);
            fields.push(("kb_par".to_owned(), mark));
        }
        if let Some(sealed) = self
            .referred
            .as_ref()
            .and_then(|id| seal_referral(secret, self.fingerprint, id, self.tb))
        {
            fields.push(("kb_tbr".to_owned(), sealed));
        }
        fields
    }

    fn login_page(&self, error: Option<PageRefusal>) -> Response {
        let (status, error) = form_note(error);
        let (secret, cookie) = form_secret(self.state, self.headers);
        let csrf = derive(&secret);
        let mut r = html(
            status,
            pages::login(
                paths::AUTHORIZE,
                &self.form_fields(&secret),
                &csrf,
                &self.v.client.name,
                self.v.login_hint.as_deref(),
                error.as_deref(),
            ),
        );
        if let Some(c) = cookie {
            set_cookie(&mut r, &c);
        }
        r
    }
}
