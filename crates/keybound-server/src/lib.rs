//! # keybound-server
//!
//! The HTTP face of the OpenID Provider: an axum router whose handlers turn requests into the
//! fact structs of `keybound-op`, and its decisions back into HTTP. Everything that is HTTP —
//! headers, cookies, CSRF, HTML pages, CORS — lives here and nowhere else. Every refusal is a
//! [`error::Failure`]: the provider's error and the kind of endpoint, whose status and OAuth
//! code come from the provider's one mapping (`OpError::wire`); [`error`] only chooses the form
//! (JSON, challenge, HTML page or redirect).
//!
//! The login and consent forms post back to the authorization endpoint together with the
//! original request's parameters, which are validated again on every step: no interaction
//! state is kept on the server, so any node can serve any step.

mod account;
pub mod admin;
mod authorize;
mod cors;
mod dbsc;
pub use dbsc::DbscMode;
mod device;
mod discovery;
pub mod events;
pub use events::{EventLog, EventOutput};
pub mod error;
mod forms;
pub mod i18n;
mod issuer_keys;
mod logout;
mod maintenance;
mod metrics;
mod pages;
mod peer;
mod response;
mod session;
pub mod theme;
mod token;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use keybound_op::{paths, Provider};

pub use cors::WebOrigins;
pub use issuer_keys::HttpIssuerKeys;
pub use logout::Deliveries;
pub use maintenance::spawn_purge;
pub use metrics::Metrics;
pub use peer::TokenBindingContext;

/// Settings of the HTTP face (the provider's own are in [`keybound_op::OpConfig`]).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// proxies whose `Forwarded` / `X-Forwarded-For` name the client's address (addresses or
    /// networks); from anyone else those headers are ignored
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// OpenID Connect Token Bound Authentication
    pub token_binding: TokenBindingMode,
    /// Device Bound Session Credentials: offered to browsers that sign in, required, or off
    pub dbsc: dbsc::DbscMode,
    /// how long a bound cookie lives (seconds); the browser refreshes it with its key
    pub dbsc_cookie_lifetime: u64,
    /// which router serves the admin API
    pub admin_api: AdminApi,
    /// the security event sink the provider was given, for its counters on `/metrics`
    pub events: Option<Arc<EventLog>>,
    /// the pages' look and words
    pub theme: Arc<theme::Theme>,
}

/// Where the admin API (`/admin/v1/`) answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminApi {
    /// on the management listener, beside `/metrics` (reachable by operators only)
    #[default]
    Management,
    /// on the public listener too (an operator's explicit choice)
    Public,
    /// on neither router (`keybound serve` may give it a listener of its own)
    Off,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            trusted_proxies: Vec::new(),
            token_binding: TokenBindingMode::Off,
            dbsc: dbsc::DbscMode::Offer,
            dbsc_cookie_lifetime: 600,
            admin_api: AdminApi::Management,
            events: None,
            theme: Arc::default(),
        }
    }
}

/// Where Token Binding comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenBindingMode {
    /// not offered: no `tbh`, forwarded Token Binding headers ignored
    #[default]
    Off,
    /// a TLS terminator among `trusted_proxies` verifies Token Binding and forwards the IDs
    /// (`Sec-Provided-Token-Binding-ID`, `Sec-Referred-Token-Binding-ID`)
    Proxy,
    /// keybound's own TLS 1.2 listener (`tb_listen`, crate keybound-tls) verifies
    /// `Sec-Token-Binding` on every request; forwarded headers are never read
    Native,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// the provider's decisions
    pub provider: Provider,
    /// the HTTP face's settings
    pub config: ServerConfig,
    /// request counters
    pub metrics: Metrics,
    /// the DPoP algorithms accepted, space-separated, for `WWW-Authenticate` (`algs`)
    pub dpop_algs: String,
    /// back-channel logout deliveries
    pub logout: Deliveries,
    /// the web origins of public clients, for CORS
    pub web_origins: Arc<WebOrigins>,
}

impl AppState {
    /// State over a provider, with default server settings.
    pub fn new(provider: Provider) -> Arc<Self> {
        Self::with_config(provider, ServerConfig::default())
    }

    /// State over a provider with `config`.
    pub fn with_config(provider: Provider, config: ServerConfig) -> Arc<Self> {
        let dpop_algs =
            keybound_jose::Algorithm::list(&provider.config.dpop.allowed_algs).replace(", ", " ");
        Arc::new(AppState {
            provider,
            config,
            metrics: Metrics::default(),
            dpop_algs,
            logout: Deliveries::default(),
            web_origins: Arc::default(),
        })
    }

    fn secure_cookies(&self) -> bool {
        self.provider.config.issuer.starts_with("https://")
    }
}

/// The public router: every endpoint of the OP. `/metrics` is not here: it is served by
/// [`management_router`] on a separate listener (loopback by default), as Keycloak and Hydra do.
pub fn router(state: Arc<AppState>) -> Router {
    // single-page apps call these from their own origin (cors.rs: public clients' web
    // origins only; preflights answered from memory)
    let api = Router::new()
        .route(paths::DISCOVERY, get(discovery::discovery))
        .route(paths::JWKS, get(discovery::jwks))
        .route(paths::TOKEN, post(token::token))
        .route(paths::PAR, post(token::par))
        .route(paths::USERINFO, get(token::userinfo).post(token::userinfo))
        .route(paths::REVOKE, post(token::revoke))
        .layer(cors::layer(state.web_origins.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::refresh,
        ));
    let public = Router::new()
        .merge(api)
        .route(
            paths::AUTHORIZE,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(
            paths::DEVICE_AUTHORIZATION,
            post(device::device_authorization),
        )
        .route(paths::INTROSPECT, post(token::introspect))
        .route(paths::REGISTER, post(token::register))
        .route(paths::LOGOUT, post(logout::logout))
        .route(
            paths::END_SESSION,
            get(logout::end_session_get).post(logout::end_session_post),
        )
        .route(
            paths::DEVICE,
            get(device::device_get).post(device::device_post),
        )
        .route(
            paths::ACCOUNT,
            get(account::account_get).post(account::account_post),
        )
        .route(paths::PASSKEY_OPTIONS, post(account::passkey_options))
        .route(paths::DBSC_START, post(dbsc::start))
        .route(paths::DBSC_REFRESH, post(dbsc::refresh))
        .route(paths::DBSC_STATUS, get(dbsc::status))
        .route(paths::HEALTHZ, get(discovery::healthz))
        .route(theme::LOGO_PATH, get(theme::logo))
        .route(theme::STYLESHEET_PATH, get(theme::stylesheet))
        .with_state(state.clone());
    let public = if state.config.admin_api == AdminApi::Public {
        let origin = url::Url::parse(&state.provider.config.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        public.merge(admin::router(
            state.clone(),
            admin::AdminOrigin::Fixed(origin),
        ))
    } else {
        public
    };
    public.layer(axum::middleware::from_fn_with_state(state, metrics::track))
}

/// The management router: `/metrics` (Prometheus), `/healthz` and (by default) the admin API,
/// for a listener that only operators reach.
pub fn management_router(state: Arc<AppState>) -> Router {
    let m = Router::new()
        .route(paths::METRICS, get(metrics::render))
        .route(paths::HEALTHZ, get(discovery::healthz))
        .with_state(state.clone());
    if state.config.admin_api == AdminApi::Management {
        m.merge(admin::router(state, admin::AdminOrigin::FromHost))
    } else {
        m
    }
}
