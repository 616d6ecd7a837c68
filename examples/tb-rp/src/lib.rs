//! An example web RP that signs End-Users in with OpenID Connect Token Bound Authentication,
//! served over keybound's native Token Binding listener (crate keybound-tls).
//!
//! - `GET /login?flow=code|implicit|hybrid[&mode=fragment]` records the Token Binding ID of
//!   the browser's connection with this RP, keeps the sign-in server-side by `state` (a
//!   cookie ties it to this browser), and redirects to the OP with
//!   `Include-Referred-Token-Binding-ID: true`, so the browser proves the same binding to the
//!   OP as a referred one and the OP hashes it into `cnf.tbh`;
//! - `/callback` finishes it: `GET` with a query (code flow), `POST` (form_post), or `GET`
//!   without a query, which serves a small page posting the fragment here (fragment mode);
//!   the checks are keybound-rp's [`Rp::finish_web`] (a `tbh` naming another binding is
//!   fatal; a missing one is judged by the downgrade policy);
//! - `GET /me` answers only over the Token Binding the sign-in was made on: the RP's own
//!   session cookie is bound like the ID Token.
//!
//! Everything the RP keeps is in memory: an example, not a session store.

pub mod federation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Form, Json, Router};
use keybound_proto::tokbind::{TokenBindingId, INCLUDE_REFERRED};
use keybound_rp::web::{WebFlow, WebPending};
use keybound_rp::{Rp, RpError};
use keybound_tls::VerifiedTokenBinding;

const STATE_COOKIE: &str = "rp_state";
const SESSION_COOKIE: &str = "rp_session";

/// The RP's signed-in End-User.
#[derive(Debug, Clone)]
struct RpSession {
    sub: String,
    tbh: Option<String>,
    /// the `tbh` of the browser's Token Binding with this RP when it signed in
    bound_to: Option<String>,
}

/// The example RP.
pub struct TbRp {
    rp: Rp,
    pending: Mutex<HashMap<String, WebPending>>,
    sessions: Mutex<HashMap<String, RpSession>>,
}

impl std::fmt::Debug for TbRp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbRp")
            .field("rp", &self.rp)
            .finish_non_exhaustive()
    }
}

impl TbRp {
    /// Over a configured keybound-rp [`Rp`] (its `redirect_uri` is this RP's `/callback`, its
    /// `tb_policy` the downgrade policy).
    pub fn new(rp: Rp) -> Arc<Self> {
        Arc::new(TbRp {
            rp,
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        })
    }
}

/// The routes (serve them behind [`keybound_tls::verify_token_binding`]).
pub fn router(app: Arc<TbRp>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback_get).post(callback_post))
        .route("/me", get(me))
        .with_state(app)
}

type Binding = Option<Extension<VerifiedTokenBinding>>;

fn provided(b: Binding) -> Option<TokenBindingId> {
    b.map(|Extension(v)| v.0.provided)
}

fn tbh_of(id: Option<&TokenBindingId>) -> Option<String> {
    id.and_then(|i| i.tbh().ok())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(r: &mut Response, name: &str, value: &str, same_site: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Refusals as JSON: `error` names the class, `error_description` says why.
fn refuse(status: StatusCode, error: &str, why: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": error, "error_description": why })),
    )
        .into_response()
}

fn rp_error(e: &RpError) -> Response {
    let class = match e {
        RpError::NotBound(_) => "token_binding",
        RpError::Callback(_) => "invalid_callback",
        RpError::Op(_) => "op_error",
        _ => "sign_in_failed",
    };
    refuse(StatusCode::UNAUTHORIZED, class, &e.to_string())
}

async fn home(b: Binding) -> Html<String> {
    let tb = tbh_of(provided(b).as_ref()).unwrap_or_else(|| "none".to_owned());
    Html(format!(
        "<!doctype html><title>Token Bound RP</title><h1>Token Bound RP</h1>\
         <p>Your Token Binding with this site: <code>{tb}</code></p>\
         <p><a href=\"/login?flow=code\">Sign in (code)</a> · \
         <a href=\"/login?flow=implicit\">implicit</a> · \
         <a href=\"/login?flow=hybrid\">hybrid</a> · \
         <a href=\"/login?flow=implicit&amp;mode=fragment\">implicit, fragment</a></p>"
    ))
}

async fn login(
    State(app): State<Arc<TbRp>>,
    b: Binding,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let flow = match q.get("flow").map(String::as_str) {
        None => WebFlow::Code,
        Some(f) => match WebFlow::parse(f) {
            Some(f) => f,
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "flow must be code, implicit or hybrid",
                )
            }
        },
    };
    let fragment = q.get("mode").is_some_and(|m| m == "fragment");
    let pending = match app.rp.begin_web(flow, fragment, provided(b)).await {
        Ok(p) => p,
        Err(e) => return rp_error(&e),
    };
    let state = pending.state.clone();
    let url = pending.url.clone();
    lock(&app.pending).insert(state.clone(), pending);
    let mut r = StatusCode::FOUND.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert(header::LOCATION, v);
    }
    // RFC 8473 §5: ask the browser to prove this binding to the OP
    h.insert(INCLUDE_REFERRED, HeaderValue::from_static("true"));
    // SameSite=None: form_post brings the browser back with a cross-site POST
    set_cookie(&mut r, STATE_COOKIE, &state, "None");
    r
}

/// The page that hands a fragment response to the RP (fragments never reach servers).
const FRAGMENT_PAGE: &str = "<!doctype html><title>Signing in…</title>\
<form method=\"post\" action=\"/callback\"></form><script>\
const f=document.forms[0];for(const [k,v] of new URLSearchParams(location.hash.slice(1))){\
const i=document.createElement('input');i.type='hidden';i.name=k;i.value=v;f.appendChild(i)}f.submit()\
</script>";

async fn callback_get(
    State(app): State<Arc<TbRp>>,
    b: Binding,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.is_empty() {
        return Html(FRAGMENT_PAGE).into_response();
    }
    finish(&app, provided(b), &headers, &q).await
}

async fn callback_post(
    State(app): State<Arc<TbRp>>,
    b: Binding,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    finish(&app, provided(b), &headers, &f).await
}

async fn finish(
    app: &TbRp,
    binding: Option<TokenBindingId>,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Response {
    let Some(state) = params.get("state") else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_callback",
            "the response has no state",
        );
    };
    if cookie(headers, STATE_COOKIE).as_ref() != Some(state) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_callback",
            "this browser did not start that sign-in (state cookie missing or different)",
        );
    }
    let Some(pending) = lock(&app.pending).remove(state) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_callback",
            "unknown or used state",
        );
    };
    let flow = pending.flow;
    match app.rp.finish_web(pending, params, binding.as_ref()).await {
        Ok(signed_in) => {
            let token = keybound_jose::random_b64(32);
            let bound_to = tbh_of(binding.as_ref());
            lock(&app.sessions).insert(
                keybound_jose::sha256_b64(token.as_bytes()),
                RpSession {
                    sub: signed_in.sub.clone(),
                    tbh: signed_in.tbh.clone(),
                    bound_to: bound_to.clone(),
                },
            );
            let mut r = Json(serde_json::json!({
                "sub": signed_in.sub,
                "tbh": signed_in.tbh,
                "token_binding": bound_to,
                "flow": flow.response_type(),
            }))
            .into_response();
            set_cookie(&mut r, SESSION_COOKIE, &token, "Lax");
            r
        }
        Err(e) => rp_error(&e),
    }
}

async fn me(State(app): State<Arc<TbRp>>, b: Binding, headers: HeaderMap) -> Response {
    let Some(token) = cookie(&headers, SESSION_COOKIE) else {
        return refuse(StatusCode::UNAUTHORIZED, "login_required", "not signed in");
    };
    let Some(s) = lock(&app.sessions)
        .get(&keybound_jose::sha256_b64(token.as_bytes()))
        .cloned()
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "unknown session",
        );
    };
    if tbh_of(provided(b).as_ref()) != s.bound_to {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "token_binding",
            "this session cookie is bound to another Token Binding than this connection's (a copied cookie?)",
        );
    }
    Json(serde_json::json!({ "sub": s.sub, "tbh": s.tbh })).into_response()
}
