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
//! Under an `https` issuer the cookies are named `__Host-…` (`Secure`, `Path=/`, no `Domain`), so
//! browsers refuse them from any other host or from plain http.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use keybound_op::OpError;
use keybound_store::{BrowserSession, TokenHash};

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

fn derive(secret: &str) -> String {
    keybound_jose::hmac_sha256_b64(secret.as_bytes(), CSRF_LABEL)
}

/// The CSRF token for forms rendered in this response, and a `Set-Cookie` value when a new
/// pre-session cookie is needed.
pub(crate) fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    if let Some(s) = state.session_cookie(headers) {
        return (derive(&s), None);
    }
    if let Some(p) = state.pre_session_cookie(headers) {
        return (derive(&p), None);
    }
    let p = state.provider.random_token();
    let cookie = format!(
        "{}={p}{}",
        state.pre_session_cookie_name(),
        state.cookie_attrs(PRE_SESSION_TTL)
    );
    (derive(&p), Some(cookie))
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

/// The End-User's live session at the OP, from the session cookie.
pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Option<(TokenHash, BrowserSession)> {
    let hash = TokenHash::of(&state.session_cookie(headers)?);
    let now = state.provider.now();
    let session = state
        .provider
        .store()
        .session(&hash, now)
        .await
        .ok()
        .flatten()?;
    Some((hash, session))
}

/// A successful sign-in.
pub(crate) struct SignedIn {
    /// the new session
    pub session: BrowserSession,
    /// its `Set-Cookie` value
    pub set_cookie: String,
    /// the CSRF token of forms in this session (rotated: the old one is void)
    pub csrf: String,
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
) -> Result<Option<SignedIn>, OpError> {
    let source = source.map(|ip| ip.to_string());
    let Some(mut session) = state
        .provider
        .login_from(username, password, source.as_deref())
        .await?
    else {
        return Ok(None);
    };
    session.fresh_for = fresh_for;
    let token = state.provider.random_token();
    state
        .provider
        .store()
        .put_session(&TokenHash::of(&token), &session)
        .await?;
    let set_cookie = format!(
        "{}={token}{}",
        state.session_cookie_name(),
        state.cookie_attrs(state.provider.config.session_ttl)
    );
    Ok(Some(SignedIn {
        session,
        set_cookie,
        csrf: derive(&token),
    }))
}
