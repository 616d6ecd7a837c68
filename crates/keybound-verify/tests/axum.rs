//! The axum integration: the `KeyBound` extractor and the `require_key_bound` middleware answer
//! refusals with 401, `WWW-Authenticate: DPoP error=…` and a `DPoP-Nonce` when nonces are
//! demanded, and let a fresh presentation through.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use http_body_util::BodyExt as _;
use keybound_jose::JwkSet;
use keybound_proto::presentation::http_proof;
use keybound_testkit::keys;
use keybound_testkit::tokens::BoundIdToken;
use keybound_verify::axum_support::{require_key_bound, KeyBound};
use keybound_verify::{ManualClock, MemoryReplayCache, TrustedIssuer, Verifier, VerifierConfig};
use tower::ServiceExt as _;

const NOW: u64 = 1_700_000_000;

fn setup() -> (Router, String, keybound_jose::PrivateKey) {
    let op = keys::es256_b();
    let client = keys::es256_a();
    let verifier = Arc::new(Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new("https://op.example", "https://op.example/jwks"),
            vec!["app".into()],
            "https://api.example",
        )
        .with_random_nonces()
        .unwrap(),
        Arc::new(keybound_verify::StaticJwks(JwkSet::signing_key(
            &op, "op-1",
        ))),
        Arc::new(MemoryReplayCache::new(100)),
        Arc::new(ManualClock::new(NOW)),
    ));
    let id_token = BoundIdToken::new(&op, &client, "app", NOW).sign();
    let protected = Router::new()
        .route(
            "/mw",
            get(|Extension(KeyBound(who)): Extension<KeyBound>| async move {
                format!("mw {}", who.sub)
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            verifier.clone(),
            require_key_bound,
        ));
    let app = Router::new()
        .route(
            "/ex",
            get(|KeyBound(who): KeyBound| async move { format!("ex {}", who.sub) }),
        )
        .with_state(verifier)
        .merge(protected);
    (app, id_token, client)
}

async fn call(
    app: &Router,
    path: &str,
    id_token: Option<&str>,
    proof: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut b = Request::get(path);
    if let Some(t) = id_token {
        b = b.header("ID-Token", t);
    }
    if let Some(p) = proof {
        b = b.header("DPoP", p);
    }
    let r = app
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body =
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, headers, body)
}

#[tokio::test]
async fn extractor_and_middleware_challenge_then_accept() {
    let (app, id_token, client) = setup();
    for path in ["/ex", "/mw"] {
        // the ID Token alone: 401 with a DPoP challenge and a nonce
        let (s, h, _) = call(&app, path, Some(&id_token), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"invalid_dpop_proof\""));
        // a proof without the demanded nonce: use_dpop_nonce, with the nonce to use
        let p = http_proof(
            &client,
            &id_token,
            "GET",
            &format!("https://api.example{path}"),
            NOW,
            &format!("{path}-1"),
            None,
        )
        .unwrap();
        let (s, h, _) = call(&app, path, Some(&id_token), Some(&p)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("use_dpop_nonce"));
        let nonce = h["dpop-nonce"].to_str().unwrap().to_owned();
        // with the nonce: accepted
        let p = http_proof(
            &client,
            &id_token,
            "GET",
            &format!("https://api.example{path}"),
            NOW,
            &format!("{path}-2"),
            Some(&nonce),
        )
        .unwrap();
        let (s, _, body) = call(&app, path, Some(&id_token), Some(&p)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body.ends_with("alice"));
    }
}
