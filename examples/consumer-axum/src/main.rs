//! A small service protected by the keybound-verify extractor: `GET /hello` answers only a
//! request that carries a key-bound ID Token (`ID-Token` header) and a fresh DPoP proof by the
//! key in its `cnf` (`DPoP` header). `GET /hello/passkey` demands more of the sign-in (RFC 9470
//! step-up): an `acr` among `CONSUMER_STEP_UP_ACR` (default the passkey's and the password and
//! passkey's) within `CONSUMER_STEP_UP_MAX_AGE` seconds (default 600); a weaker or older one is
//! answered `401` with `error="insufficient_user_authentication"`, `acr_values` and `max_age`.
//! See README.md for trying it with `keybound present` and curl.
//!
//! Configuration (environment): `KEYBOUND_ISSUER` (default `http://127.0.0.1:8080`),
//! `CONSUMER_AUDIENCE` (accepted client ids, comma-separated; default `demo-public`),
//! `CONSUMER_LISTEN` (default `127.0.0.1:3000`), `CONSUMER_PUBLIC_URL` (default
//! `http://<listen>`), `CONSUMER_REQUIRE_NONCE` (`1` to demand DPoP nonces),
//! `CONSUMER_STEP_UP_ACR` (space-separated), `CONSUMER_STEP_UP_MAX_AGE` (seconds).

use std::sync::Arc;

use axum::routing::get;
use axum::Extension;
use axum::Router;
use keybound_verify::axum_support::{require_key_bound_step_up, KeyBound, StepUpRoute};
use keybound_verify::{
    HttpFetcher, MemoryReplayCache, StepUp, SystemClock, TrustedIssuer, Verifier, VerifierConfig,
};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = env_or("KEYBOUND_ISSUER", "http://127.0.0.1:8080");
    let audiences: Vec<String> = env_or("CONSUMER_AUDIENCE", "demo-public")
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let listen = env_or("CONSUMER_LISTEN", "127.0.0.1:3000");
    let public = env_or("CONSUMER_PUBLIC_URL", &format!("http://{listen}"));
    let http = reqwest::Client::new();
    let disco: serde_json::Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await?
        .json()
        .await?;
    let jwks_uri = disco["jwks_uri"]
        .as_str()
        .ok_or("discovery has no jwks_uri")?
        .to_owned();
    let mut cfg = VerifierConfig::new(TrustedIssuer::new(&issuer, &jwks_uri), audiences, &public);
    if env_or("CONSUMER_REQUIRE_NONCE", "0") == "1" {
        cfg = cfg.with_random_nonces()?;
    }
    let verifier = Arc::new(Verifier::new(
        cfg,
        Arc::new(HttpFetcher::new(http)),
        Arc::new(MemoryReplayCache::new(100_000)),
        Arc::new(SystemClock),
    ));
    let step_up = StepUpRoute::new(
        verifier.clone(),
        StepUp {
            acr_values: env_or(
                "CONSUMER_STEP_UP_ACR",
                "urn:keybound:acr:passkey urn:keybound:acr:mfa",
            )
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
            max_age: Some(env_or("CONSUMER_STEP_UP_MAX_AGE", "600").parse()?),
        },
    );
    let strong = Router::new()
        .route(
            "/hello/passkey",
            get(|Extension(k): Extension<KeyBound>| hello(k)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            step_up,
            require_key_bound_step_up,
        ));
    let app = Router::new()
        .route("/hello", get(hello))
        .merge(strong)
        .route(
            "/",
            get(|| async { "GET /hello with ID-Token and DPoP headers (see README)\n" }),
        )
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("consumer listening on {public}, trusting {issuer}");
    axum::serve(listener, app).await?;
    Ok(())
}
