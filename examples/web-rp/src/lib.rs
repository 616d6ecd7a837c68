//! A web app that signs its users in with key-bound OpenID Connect through keybound-rp, as a
//! library so its test can run it in-process.
//!
//! The browser never sees a token or a key: `/login` makes a fresh key pair and the
//! authorization request ([`Rp::begin`]) and keeps the pending sign-in on the server under its
//! `state`, which the browser carries in a cookie; `/callback` checks the answer
//! ([`Rp::callback`]: `state`, `iss`, errors) and redeems the code with a DPoP proof
//! ([`Rp::exchange`], which refuses an ID Token not bound to that key); the tokens and the key
//! stay in this process under a random session id, the only thing the browser's session cookie
//! holds. The home page shows the user from the OP's userinfo endpoint (a DPoP request);
//! "Call the API" calls `example-api` both ways a key-bound client can: the ID Token presented
//! with a proof (`/hello`), and the access token with a proof (`/orders`).
//!
//! It is an example: sessions live in memory (a restart signs everybody out; expired ones are
//! dropped as new ones come), and cookies are `Secure` only when the public URL is https.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keybound_rp::{HttpRequest, PendingAuth, ReqwestTransport, Rp, RpConfig, Session};

/// Any error of starting up.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const STATE_COOKIE: &str = "web_rp_state";
const SESSION_COOKIE: &str = "web_rp_session";
/// The most sign-ins that may be pending at once (each holds a key pair until its callback).
const MAX_PENDING: usize = 10_000;
/// How long a sign-in may stay pending (the state cookie's lifetime), in seconds.
const PENDING_TTL: u64 = 600;

/// Where the app runs and whom it trusts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// the OP
    pub issuer: String,
    /// this app's client id there
    pub client_id: String,
    /// its client secret, for a confidential client
    pub client_secret: Option<String>,
    /// the address to listen on
    pub listen: String,
    /// the base URL browsers use; the redirect URI is `<public_url>/callback`
    pub public_url: String,
    /// the API "Call the API" calls (`example-api`)
    pub api_url: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Settings {
    /// From the environment: `KEYBOUND_ISSUER` (default `http://127.0.0.1:8080`),
    /// `WEB_RP_CLIENT_ID` (default `demo-public`, which `keybound serve --demo` registers with
    /// the redirect `http://127.0.0.1:8081/callback`), `WEB_RP_CLIENT_SECRET`, `WEB_RP_LISTEN`
    /// (default `127.0.0.1:8081`), `WEB_RP_PUBLIC_URL` (default `http://<listen>`), `API_URL`
    /// (default `http://127.0.0.1:3000`).
    pub fn from_env() -> Self {
        let listen = env_or("WEB_RP_LISTEN", "127.0.0.1:8081");
        Settings {
            issuer: env_or("KEYBOUND_ISSUER", "http://127.0.0.1:8080"),
            client_id: env_or("WEB_RP_CLIENT_ID", "demo-public"),
            client_secret: std::env::var("WEB_RP_CLIENT_SECRET")
                .ok()
                .filter(|s| !s.is_empty()),
            public_url: env_or("WEB_RP_PUBLIC_URL", &format!("http://{listen}")),
            listen,
            api_url: env_or("API_URL", "http://127.0.0.1:3000"),
        }
    }

    /// The redirect URI registered at the OP.
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.public_url.trim_end_matches('/'))
    }
}

/// The system clock: keybound-rp takes the time from its caller.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl keybound_rp::Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // an app reads the clock; the libraries do not
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The app: the RP, the sign-ins under way and the signed-in sessions.
pub struct WebRp {
    rp: Rp,
    settings: Settings,
    /// by `state`: when it began, and what the callback needs
    pending: Mutex<HashMap<String, (u64, PendingAuth)>>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for WebRp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRp")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WebRp {
    /// The app for `settings`.
    pub fn new(settings: Settings) -> Result<Self, BoxError> {
        let transport = ReqwestTransport::new()?;
        let mut config = RpConfig::new(
            &settings.issuer,
            &settings.client_id,
            &settings.redirect_uri(),
        )
        .with_scope("openid profile email");
        if let Some(secret) = &settings.client_secret {
            config = config.with_client_secret(secret.as_str().into());
        }
        Ok(WebRp {
            rp: Rp::new(config, Arc::new(transport), Arc::new(SystemClock)),
            settings,
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let s = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()?;
        Some((id, s))
    }
}

/// The app's routes.
pub fn router(app: Arc<WebRp>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/call-api", post(call_api))
        .route("/logout", post(logout))
        .with_state(app)
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

fn set_cookie(app: &WebRp, name: &str, value: &str, max_age: u64) -> String {
    let secure = if app.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    ))
}

fn refusal(status: StatusCode, what: &str, e: &dyn std::error::Error) -> Response {
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        why.push_str(": ");
        why.push_str(&s.to_string());
        source = s.source();
    }
    (
        status,
        page(
            what,
            &format!("<p>{}</p><p><a href=\"/\">Back</a></p>", escape(&why)),
        ),
    )
        .into_response()
}

/// Whether the session's access token has expired (this example asks for no refresh token, so
/// the End-User signs in again).
fn expired(session: &Session, now: u64) -> bool {
    session.expires_at.is_some_and(|t| t <= now)
}

async fn home(State(app): State<Arc<WebRp>>, headers: HeaderMap) -> Response {
    let Some((id, session)) = app.session(&headers) else {
        return page(
            "Key-bound sign-in example",
            "<p>You are not signed in.</p><p><a href=\"/login\">Sign in</a></p>",
        )
        .into_response();
    };
    // the access token expired: this example asks for no refresh token, so sign in again
    let now = keybound_rp::Clock::now(&SystemClock);
    if expired(&session, now) {
        app.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        return page(
            "Key-bound sign-in example",
            "<p>Your sign-in expired.</p><p><a href=\"/login\">Sign in again</a></p>",
        )
        .into_response();
    }
    // the OP's userinfo endpoint: an API call with the DPoP-bound access token
    let user = match app.rp.userinfo(&session).await {
        Ok(v) => v,
        Err(e) => return refusal(StatusCode::BAD_GATEWAY, "Userinfo failed", &e),
    };
    let field = |k: &str| escape(user[k].as_str().unwrap_or("—"));
    page(
        "Signed in",
        &format!(
            "<dl><dt>Name</dt><dd id=\"name\">{}</dd><dt>E-mail</dt><dd>{}</dd>\
             <dt>Subject</dt><dd>{}</dd><dt>Issuer</dt><dd>{}</dd>\
             <dt>Key (thumbprint; the private key stays on this server)</dt><dd>{}</dd></dl>\
             <form method=\"post\" action=\"/call-api\"><button>Call the API</button></form>\
             <form method=\"post\" action=\"/logout\"><button>Sign out</button></form>",
            field("name"),
            field("email"),
            field("sub"),
            escape(&session.issuer),
            escape(&session.jkt),
        ),
    )
    .into_response()
}

async fn login(State(app): State<Arc<WebRp>>) -> Response {
    let pending = match app.rp.begin().await {
        Ok(p) => p,
        Err(e) => return refusal(StatusCode::BAD_GATEWAY, "Cannot start the sign-in", &e),
    };
    let url = pending.url.clone();
    let state = pending.state.clone();
    let now = keybound_rp::Clock::now(&SystemClock);
    {
        let mut all = app.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // abandoned sign-ins go when their state cookie would have
        all.retain(|_, (began, _)| now < began.saturating_add(PENDING_TTL));
        if all.len() >= MAX_PENDING {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                page(
                    "Busy",
                    "<p>Too many sign-ins under way; try again shortly.</p>",
                ),
            )
                .into_response();
        }
        all.insert(state.clone(), (now, pending));
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url),
            (
                header::SET_COOKIE,
                set_cookie(&app, STATE_COOKIE, &state, PENDING_TTL),
            ),
        ],
    )
        .into_response()
}

async fn callback(
    State(app): State<Arc<WebRp>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // the sign-in this browser started, not too long ago: its state cookie names it
    let now = keybound_rp::Clock::now(&SystemClock);
    let pending = cookie(&headers, STATE_COOKIE)
        .and_then(|state| {
            app.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&state)
        })
        .filter(|(began, _)| now < began.saturating_add(PENDING_TTL))
        .map(|(_, p)| p);
    let Some(pending) = pending else {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "No sign-in under way",
                "<p>This browser did not start a sign-in here (or it was already used). \
                 <a href=\"/login\">Sign in</a></p>",
            ),
        )
            .into_response();
    };
    let back = format!(
        "{}?{}",
        app.settings.redirect_uri(),
        query.unwrap_or_default()
    );
    let code = match app.rp.callback(&pending, &back) {
        Ok(c) => c,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, "Sign-in refused", &e),
    };
    let session = match app.rp.exchange(pending, &code).await {
        Ok(s) => s,
        Err(e) => return refusal(StatusCode::BAD_GATEWAY, "Sign-in failed", &e),
    };
    let id = keybound_jose::random_b64(32);
    {
        let mut all = app.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // sessions whose access token expired are signed out anyway (see `home`)
        all.retain(|_, s| !expired(s, now));
        all.insert(id.clone(), session);
    }
    let mut response = Redirect::to("/").into_response();
    let h = response.headers_mut();
    for c in [
        set_cookie(&app, SESSION_COOKIE, &id, 8 * 3600),
        set_cookie(&app, STATE_COOKIE, "", 0),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// One call's outcome, for the page.
fn outcome(what: &str, r: Result<keybound_rp::HttpResponse, keybound_rp::RpError>) -> String {
    match r {
        Ok(r) => format!(
            "<h2>{}</h2><p>HTTP <span class=\"status\">{}</span></p><pre>{}</pre>",
            escape(what),
            r.status,
            escape(&String::from_utf8_lossy(&r.body))
        ),
        Err(e) => format!(
            "<h2>{}</h2><p>failed: {}</p>",
            escape(what),
            escape(&e.to_string())
        ),
    }
}

async fn call_api(State(app): State<Arc<WebRp>>, headers: HeaderMap) -> Response {
    let Some((_, session)) = app.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let api = app.settings.api_url.trim_end_matches('/');
    // 1. the key-bound ID Token, presented with a proof over this very request (and the
    //    API's nonce, when it demands one)
    let hello = app
        .rp
        .present(&session, &HttpRequest::get(&format!("{api}/hello")))
        .await;
    // 2. the DPoP-bound access token, with a proof carrying its hash (ath)
    let orders = match session.key() {
        Ok(key) => {
            app.rp
                .call_api(&key, &session.access_token, "GET", &format!("{api}/orders"))
                .await
        }
        Err(e) => Err(e),
    };
    page(
        "The API answered",
        &format!(
            "{}{}<p><a href=\"/\">Back</a></p>",
            outcome("GET /hello with the ID Token and a proof", hello),
            outcome("GET /orders with the access token and a proof", orders),
        ),
    )
    .into_response()
}

async fn logout(State(app): State<Arc<WebRp>>, headers: HeaderMap) -> Response {
    if let Some((id, _)) = app.session(&headers) {
        app.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0)),
        ],
    )
        .into_response()
}
