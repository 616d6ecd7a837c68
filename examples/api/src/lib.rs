//! An API protected by keybound-verify, as a library so its test and the web-RP example can
//! run it in-process.
//!
//! - `GET /hello` takes a key-bound ID Token presentation: the `ID-Token` header and a fresh
//!   DPoP proof by the key in its `cnf` ([`KeyBound`] extractor).
//! - `GET /orders` takes a DPoP-bound access token: `Authorization: DPoP <token>` and a proof
//!   with `ath` ([`DpopAccess`] extractor); a Bearer token is refused.
//! - `GET /hello/passkey` demands more of the sign-in (RFC 9470 step-up): an `acr` among
//!   [`Settings::step_up`]'s values within its `max_age`; a weaker or older one is answered
//!   `401` with `error="insufficient_user_authentication"`, `acr_values` and `max_age`.
//!
//! Every refusal is `401` with `WWW-Authenticate: DPoP error=…` saying why; the verifier, not
//! the handlers, decides.

use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Json, Router};
use keybound_verify::axum_support::{require_key_bound_step_up, DpopAccess, KeyBound, StepUpRoute};
use keybound_verify::{
    HttpFetcher, MemoryReplayCache, StepUp, SystemClock, TrustedIssuer, Verifier, VerifierConfig,
};

/// Any error of starting up.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the API trusts and where it serves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// the OP whose tokens it accepts
    pub issuer: String,
    /// accepted audiences: the RP's client id (ID Tokens) and the OP's issuer (its access
    /// tokens name it unless the client asked for a resource)
    pub audiences: Vec<String>,
    /// the address to listen on
    pub listen: String,
    /// the base URL clients call (proofs' `htu` must match it)
    pub public_url: String,
    /// demand DPoP nonces
    pub require_nonce: bool,
    /// what `/hello/passkey` demands of the sign-in
    pub step_up: StepUp,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Settings {
    /// From the environment: `KEYBOUND_ISSUER` (default `http://127.0.0.1:8080`),
    /// `API_AUDIENCE` (comma-separated; default `demo-public` and the issuer), `API_LISTEN`
    /// (default `127.0.0.1:3000`), `API_PUBLIC_URL` (default `http://<listen>`),
    /// `API_REQUIRE_NONCE` (`1` demands DPoP nonces), `API_STEP_UP_ACR` (space-separated;
    /// default the passkey's and the password-and-passkey's `acr`), `API_STEP_UP_MAX_AGE`
    /// (seconds, default 600).
    pub fn from_env() -> Result<Self, BoxError> {
        let issuer = env_or("KEYBOUND_ISSUER", "http://127.0.0.1:8080");
        let audiences = env_or("API_AUDIENCE", &format!("demo-public,{issuer}"))
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let listen = env_or("API_LISTEN", "127.0.0.1:3000");
        Ok(Settings {
            audiences,
            public_url: env_or("API_PUBLIC_URL", &format!("http://{listen}")),
            listen,
            require_nonce: env_or("API_REQUIRE_NONCE", "0") == "1",
            step_up: StepUp {
                acr_values: env_or(
                    "API_STEP_UP_ACR",
                    "urn:keybound:acr:passkey urn:keybound:acr:mfa",
                )
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
                max_age: Some(env_or("API_STEP_UP_MAX_AGE", "600").parse()?),
            },
            issuer,
        })
    }
}

/// The verifier for `settings`: the issuer's `jwks_uri` from its discovery document, keys
/// fetched with reqwest (rustls), a replay cache in memory (one instance; several behind one
/// name share a `SqliteReplayCache` or sticky routing).
pub async fn verifier(settings: &Settings) -> Result<Verifier, BoxError> {
    let http = reqwest::Client::new();
    let url = format!("{}/.well-known/openid-configuration", settings.issuer);
    let unreachable = |e: reqwest::Error| -> BoxError {
        format!("cannot read {url} (is the OP running?): {e}").into()
    };
    let disco: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unreachable)?
        .json()
        .await
        .map_err(unreachable)?;
    let jwks_uri = disco["jwks_uri"]
        .as_str()
        .ok_or("the issuer's discovery document has no jwks_uri")?;
    let mut config = VerifierConfig::new(
        TrustedIssuer::new(&settings.issuer, jwks_uri),
        settings.audiences.clone(),
        &settings.public_url,
    );
    if settings.require_nonce {
        config = config.with_random_nonces()?;
    }
    Ok(Verifier::new(
        config,
        Arc::new(HttpFetcher::new(http)),
        Arc::new(MemoryReplayCache::new(100_000)),
        Arc::new(SystemClock),
    ))
}

async fn hello(KeyBound(who): KeyBound) -> String {
    format!(
        "Hello {}! You proved possession of key {}, to which {} bound your sign-in.\n",
        who.claims
            .extra
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or(&who.sub),
        who.jkt,
        who.iss
    )
}

async fn orders(DpopAccess(access): DpopAccess) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sub": access.sub,
        "client_id": access.client_id,
        "scope": access.scope,
        "key": access.jkt.as_ref().map(|j| j.as_str().to_owned()),
        "orders": [{ "id": 1, "item": "a key-bound teapot" }],
    }))
}

/// The API's routes over `verifier`; `/hello/passkey` demands `step_up`.
pub fn router(verifier: Arc<Verifier>, step_up: StepUp) -> Router {
    let strong = Router::new()
        .route(
            "/hello/passkey",
            get(|Extension(k): Extension<KeyBound>| hello(k)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            StepUpRoute::new(verifier.clone(), step_up),
            require_key_bound_step_up,
        ));
    Router::new()
        .route("/hello", get(hello))
        .route("/orders", get(orders))
        .merge(strong)
        .route(
            "/",
            get(|| async {
                "GET /hello with ID-Token and DPoP headers; GET /orders with \
                 Authorization: DPoP <access token> and a DPoP proof (see README.md)\n"
            }),
        )
        .with_state(verifier)
}
