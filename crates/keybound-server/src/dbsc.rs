//! Device Bound Session Credentials (W3C DBSC, `../shared/specs/dbsc.md`): the OP's session
//! bound to a key the browser holds — the browser-side successor of the Token Binding the seed
//! bound sessions with.
//!
//! - **Offer.** A response that signs a browser in carries `Secure-Session-Registration` with a
//!   challenge and an `authorization` value, both MACs (the store's shared secret) over the new
//!   session's key, so any node can check them and nothing is stored per offer.
//! - **Registration** (`POST /dbsc/start`): the browser's `dbsc+jwt`, signed by the key in its
//!   header, must answer that challenge (live, used once: the replay store) and echo the
//!   `authorization`. The session then keeps the public key, and the answer sets a short-lived
//!   bound cookie (`dbsc_cookie_lifetime`) beside the session cookie.
//! - **From then on the session needs the bound cookie** ([`bound_cookie_ok`], called by the
//!   one session lookup): a MAC over the session's key and the cookie's expiry. When it expires
//!   the browser asks `POST /dbsc/refresh`, gets a challenge (`403`,
//!   `Secure-Session-Challenge`), answers it signed by the registered key, and gets a new one.
//!   A copied session cookie and bound cookie therefore work only until the bound cookie
//!   expires: refreshing needs the key, which never left the browser.
//! - A browser without DBSC never registers and keeps an ordinary session (the documented
//!   downgrade; `dbsc = "off"` offers nothing) — unless `dbsc = "require"` or the client's
//!   `--require-dbsc` demands a bound session: then the authorization endpoint, about to show
//!   consent or issue a code for an unbound session, answers a page that offers DBSC for that
//!   session and waits (`GET /dbsc/status`) until the browser registered, then goes on; a
//!   browser that never registers is refused ([`required`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keybound_op::paths;
use keybound_op::refusal::DbscRefusal as Why;
use keybound_op::OpError;
use keybound_proto::dbsc;
use keybound_store::{BrowserSession, DbscBinding, TokenHash};

use crate::error::{no_store, Failure};
use crate::peer::TokenBinding;
use crate::session::{session_of_cookie, set_cookie};
use crate::{forms, AppState};

/// How long a challenge may be answered.
const CHALLENGE_TTL: u64 = 300;
const BOUND_COOKIE: &str = "kb_bound";
const HOST_BOUND_COOKIE: &str = "__Host-kb_bound";

/// Whether the OP offers device-bound sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DbscMode {
    /// offer DBSC to every browser that signs in; a browser without it keeps an ordinary
    /// session (a client registered with `--require-dbsc` still demands it)
    #[default]
    Offer,
    /// offer it, and issue no code to a session that is not bound: a browser without DBSC
    /// cannot sign in to any app
    Require,
    /// offer nothing
    Off,
}

/// Whether a code for `client` needs a session bound to the browser's key.
pub(crate) fn required(state: &AppState, client: &keybound_store::Client) -> bool {
    state.config.dbsc == DbscMode::Require || client.require_dbsc
}

impl AppState {
    fn bound_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            HOST_BOUND_COOKIE
        } else {
            BOUND_COOKIE
        }
    }

    fn bound_cookie_attributes(&self) -> &'static str {
        if self.secure_cookies() {
            "Path=/; Secure; HttpOnly; SameSite=Lax"
        } else {
            "Path=/; HttpOnly; SameSite=Lax"
        }
    }
}

fn mac(state: &AppState, parts: &[&str]) -> String {
    keybound_jose::b64::encode(state.provider.store().secret_mac().tag(parts))
}

fn key_b64(key: &TokenHash) -> String {
    keybound_jose::b64::encode(key.0)
}

/// A challenge for `purpose` on the session `key`: `exp.nonce.mac`.
fn challenge(state: &AppState, purpose: &str, key: &TokenHash) -> String {
    let exp = (state.provider.now() + CHALLENGE_TTL).to_string();
    let nonce = keybound_jose::random_b64(16);
    let m = mac(
        state,
        &["dbsc challenge", purpose, &key_b64(key), &exp, &nonce],
    );
    format!("{exp}.{nonce}.{m}")
}

/// Check a challenge answered for `purpose` on `key`, and spend it (once, on every node).
async fn take_challenge(
    state: &AppState,
    purpose: &str,
    key: &TokenHash,
    value: &str,
) -> Result<(), OpError> {
    let mut parts = value.splitn(3, '.');
    let (Some(exp), Some(nonce), Some(m)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Why::Challenge.into());
    };
    let expected = mac(
        state,
        &["dbsc challenge", purpose, &key_b64(key), exp, nonce],
    );
    let now = state.provider.now();
    let exp: u64 = exp.parse().map_err(|_| Why::Challenge)?;
    if !keybound_jose::ct_eq(expected.as_bytes(), m.as_bytes()) || exp <= now {
        return Err(Why::Challenge.into());
    }
    let digest = keybound_jose::sha256(format!("dbsc\0{value}").as_bytes());
    if !state
        .provider
        .store()
        .check_and_insert(&digest, exp, now)
        .await?
    {
        return Err(Why::Challenge.into());
    }
    Ok(())
}

/// The `authorization` value of the offer for the session `key`.
fn authorization(state: &AppState, key: &TokenHash) -> String {
    mac(state, &["dbsc authorization", &key_b64(key)])
}

/// The `Secure-Session-Registration` value offered to a browser that just signed in to the
/// session `key` (`None` when DBSC is off).
pub(crate) fn offer(state: &AppState, key: &TokenHash) -> Option<String> {
    if state.config.dbsc == DbscMode::Off {
        return None;
    }
    Some(dbsc::registration_header(
        paths::DBSC_START,
        &challenge(state, "register", key),
        &authorization(state, key),
    ))
}

/// A new bound cookie for the session `key`: its `Set-Cookie` value.
fn bound_cookie(state: &AppState, key: &TokenHash) -> String {
    let lifetime = state.config.dbsc_cookie_lifetime;
    let exp = (state.provider.now() + lifetime).to_string();
    let m = mac(state, &["dbsc bound cookie", &key_b64(key), &exp]);
    format!(
        "{}={exp}.{m}; {}; Max-Age={lifetime}",
        state.bound_cookie_name(),
        state.bound_cookie_attributes()
    )
}

/// Whether the request carries a live bound cookie for the session `key`.
pub(crate) fn bound_cookie_ok(state: &AppState, headers: &HeaderMap, key: &TokenHash) -> bool {
    let Some(v) = forms::cookie(headers, state.bound_cookie_name()) else {
        return false;
    };
    let Some((exp, m)) = v.split_once('.') else {
        return false;
    };
    let expected = mac(state, &["dbsc bound cookie", &key_b64(key), exp]);
    keybound_jose::ct_eq(expected.as_bytes(), m.as_bytes())
        && exp.parse::<u64>().is_ok_and(|e| e > state.provider.now())
}

/// The session configuration the browser keeps (specs/dbsc.md, registration answer).
fn session_config(state: &AppState, session_id: &str) -> serde_json::Value {
    let origin = url::Url::parse(&state.provider.config.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    serde_json::json!({
        "session_identifier": session_id,
        "refresh_url": paths::DBSC_REFRESH,
        "scope": {"origin": origin, "include_site": false, "scope_specification": []},
        "credentials": [{
            "type": "cookie",
            "name": state.bound_cookie_name(),
            "attributes": state.bound_cookie_attributes(),
        }],
    })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(state: &AppState, key: &TokenHash, session_id: &str) -> Response {
    let mut r = axum::Json(session_config(state, session_id)).into_response();
    set_cookie(&mut r, &bound_cookie(state, key));
    no_store(r.headers_mut());
    r
}

/// The session the request's session cookie names, whether or not its bound cookie is live.
async fn session(
    state: &AppState,
    headers: &HeaderMap,
    tb: &crate::peer::TokenBindingContext,
) -> Result<(TokenHash, BrowserSession), OpError> {
    if state.config.dbsc == DbscMode::Off {
        return Err(Why::Off.into());
    }
    session_of_cookie(state, headers, tb)
        .await?
        .ok_or_else(|| Why::NoSession.into())
}

/// `POST /dbsc/start`: the browser registers its key for the session it just signed in to.
pub async fn start(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
) -> Response {
    match register(&state, &headers, &tb).await {
        Ok((key, session_id)) => answer(&state, &key, &session_id),
        Err(e) => Failure::api(e).into_response(),
    }
}

async fn register(
    state: &AppState,
    headers: &HeaderMap,
    tb: &crate::peer::TokenBindingContext,
) -> Result<(TokenHash, String), OpError> {
    let (key, mut session) = session(state, headers, tb).await?;
    if session.dbsc.is_some() {
        return Err(Why::AlreadyBound.into());
    }
    let jwt = header(headers, dbsc::RESPONSE_HEADER).ok_or(Why::NoResponse)?;
    let reg = dbsc::verify_registration(jwt).map_err(Why::Jwt)?;
    if reg.authorization.as_deref() != Some(authorization(state, &key).as_str()) {
        return Err(Why::Authorization.into());
    }
    take_challenge(state, "register", &key, &reg.jti).await?;
    let session_id = state.provider.random_token();
    session.dbsc = Some(DbscBinding {
        session_id: session_id.clone(),
        key: reg.key,
    });
    state.provider.store().put_session(&key, &session).await?;
    Ok((key, session_id))
}

/// `POST /dbsc/refresh`: without an answer, a challenge (`403`); with one signed by the
/// session's registered key, a new bound cookie.
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
) -> Response {
    let run = async {
        let (key, session) = session(&state, &headers, &tb).await?;
        let named = header(&headers, dbsc::SESSION_ID_HEADER).unwrap_or_default();
        let binding = session
            .dbsc
            .filter(|b| b.session_id == named)
            .ok_or_else(|| Why::UnknownSession(named.to_owned()))?;
        let Some(jwt) = header(&headers, dbsc::RESPONSE_HEADER) else {
            let c =
                dbsc::challenge_header(&challenge(&state, "refresh", &key), &binding.session_id);
            let mut r = StatusCode::FORBIDDEN.into_response();
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().insert(dbsc::CHALLENGE_HEADER, v);
            }
            no_store(r.headers_mut());
            return Ok(r);
        };
        let jti = dbsc::verify_refresh(jwt, &binding.key).map_err(Why::Jwt)?;
        take_challenge(&state, "refresh", &key, &jti).await?;
        Ok::<_, OpError>(answer(&state, &key, &binding.session_id))
    };
    match run.await {
        Ok(r) => r,
        Err(e) => Failure::api(e).into_response(),
    }
}

/// `GET /dbsc/status`: `{"bound": true}` once this browser's session is bound to its key (the
/// page that waits for the registration asks).
pub async fn status(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
) -> Response {
    match session_of_cookie(&state, &headers, &tb).await {
        Ok(s) => {
            let bound = s.is_some_and(|(_, s)| s.dbsc.is_some());
            let mut r = axum::Json(serde_json::json!({ "bound": bound })).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => Failure::api(e).into_response(),
    }
}
