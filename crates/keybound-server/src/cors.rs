//! CORS for single-page apps: which web origins may call the OP from a page.
//!
//! A public client running in a browser calls discovery, the JWK Set, PAR, the token endpoint,
//! userinfo and revocation from its own origin. Those endpoints answer cross-origin requests
//! only from the **web origins of public clients**: each client's `--web-origin` values, or,
//! without any, the origins of its redirect URIs. Every other endpoint (the authorization
//! endpoint, the End-User's pages, registration, introspection) has no CORS at all.
//!
//! **Preflights never touch the store.** The allowed origins are a set in memory
//! ([`WebOrigins`]), answered by tower-http's CORS layer; a request that carries an `Origin`
//! header (never a preflight) reloads the set from the store when it is older than the client
//! cache's lifetime (`client_cache_ttl`, 5 s), before the CORS layer looks at it. A page's first
//! request is a simple `GET` of discovery, so a restarted node knows its origins before the
//! first preflight; a newly registered client's origin is allowed within 5 s of the next such
//! request.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use keybound_store::{Client, ClientAuthMethod};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::AppState;

/// How long a preflight may be cached by the browser.
const PREFLIGHT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Default)]
struct Loaded {
    origins: HashSet<String>,
    /// provider time of the load; `None` before the first
    at: Option<u64>,
}

/// The web origins of the registered public clients, in memory.
#[derive(Debug, Default)]
pub struct WebOrigins(RwLock<Loaded>);

impl WebOrigins {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `origin` is a public client's web origin.
    pub fn allows(&self, origin: &str) -> bool {
        self.read().origins.contains(origin)
    }

    /// Reload from the store if the set is older than `ttl` at `now`. A store failure keeps the
    /// set as it was (the request itself will meet the failure and answer 503).
    async fn refresh(&self, state: &AppState) {
        let now = state.provider.now();
        let ttl = state.provider.config.client_cache_ttl;
        if self.read().at.is_some_and(|at| now < at + ttl) {
            return;
        }
        let Ok(clients) = state.provider.store().clients().await else {
            return;
        };
        let origins = clients.iter().flat_map(web_origins).collect();
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Loaded {
            origins,
            at: Some(now),
        };
    }
}

/// A client's web origins: only public clients have them (a confidential client's secret
/// cannot live in a page); its `web_origins`, else the origins of its redirect URIs.
fn web_origins(c: &Client) -> Vec<String> {
    if c.auth_method != ClientAuthMethod::None {
        return Vec::new();
    }
    if !c.web_origins.is_empty() {
        return c.web_origins.clone();
    }
    c.redirect_uris
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .collect()
}

/// The CORS layer of the browser-facing endpoints: origins from `origins`, `GET` and `POST`,
/// the `Authorization`, `Content-Type` and `DPoP` request headers, `DPoP-Nonce` and
/// `WWW-Authenticate` exposed (RFC 9449 §8, §7.1).
pub(crate) fn layer(origins: Arc<WebOrigins>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| origins.allows(o))
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            axum::http::HeaderName::from_static("dpop-nonce"),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Before the CORS layer: a request with an `Origin` that is not a preflight brings the set of
/// origins up to date.
pub(crate) async fn refresh(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::OPTIONS && req.headers().contains_key(header::ORIGIN) {
        state.web_origins.refresh(&state).await;
    }
    next.run(req).await
}
