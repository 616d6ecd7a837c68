//! RFC 9470 step-up at a route: a valid key-bound ID Token whose sign-in is weaker or older
//! than the route demands is refused with `insufficient_user_authentication` and a challenge
//! naming `acr_values` and `max_age`; one that meets it passes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use keybound_jose::{JwkSet, PrivateKey};
use keybound_proto::presentation::http_proof;
use keybound_proto::wire::StepUp;
use keybound_testkit::keys;
use keybound_testkit::tokens::BoundIdToken;
use keybound_verify::axum_support::{require_key_bound_step_up, KeyBound, StepUpRoute};
use keybound_verify::{ManualClock, MemoryReplayCache, TrustedIssuer, Verifier, VerifierConfig};
use tower::ServiceExt as _;

const NOW: u64 = 1_700_000_000;
const PASSKEY: &str = "urn:keybound:acr:passkey";
const MFA: &str = "urn:keybound:acr:mfa";

fn app() -> Router {
    let verifier = Arc::new(Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new("https://op.example", "https://op.example/jwks"),
            vec!["app".into()],
            "https://api.example",
        ),
        Arc::new(keybound_verify::StaticJwks(JwkSet::signing_key(
            &keys::es256_b(),
            "op-1",
        ))),
        Arc::new(MemoryReplayCache::new(100)),
        Arc::new(ManualClock::new(NOW)),
    ));
    Router::new()
        .route(
            "/payments",
            get(|Extension(KeyBound(who)): Extension<KeyBound>| async move {
                format!("paid by {}", who.sub)
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            StepUpRoute::new(
                verifier,
                StepUp {
                    acr_values: vec![PASSKEY.into(), MFA.into()],
                    max_age: Some(300),
                },
            ),
            require_key_bound_step_up,
        ))
}

/// Present an ID Token signed in with `acr` at `auth_time`: status and `WWW-Authenticate`.
async fn present(acr: Option<&str>, auth_time: Option<u64>, jti: &str) -> (StatusCode, String) {
    let (op, client): (PrivateKey, PrivateKey) = (keys::es256_b(), keys::es256_a());
    let id_token = BoundIdToken::new(&op, &client, "app", NOW).sign_with(|b| {
        let b = match acr {
            Some(a) => b.acr(a),
            None => b,
        };
        match auth_time {
            Some(t) => b.auth_time(t),
            None => b,
        }
    });
    let proof = http_proof(
        &client,
        &id_token,
        "GET",
        "https://api.example/payments",
        NOW,
        jti,
        None,
    )
    .unwrap();
    let r = app()
        .oneshot(
            Request::get("/payments")
                .header("ID-Token", &id_token)
                .header("DPoP", &proof)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status(), challenge)
}

#[tokio::test]
async fn rfc9470_3_a_password_sign_in_is_challenged_with_the_acr_values_and_max_age() {
    let (status, challenge) = present(Some("urn:keybound:acr:pwd"), Some(NOW - 10), "a").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge.starts_with("DPoP error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("acr_values=\"{PASSKEY} {MFA}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("max_age=300"), "{challenge}");
    let asked = StepUp::from_challenge(&challenge).unwrap();
    assert_eq!(asked.acr_values, [PASSKEY, MFA]);
    assert_eq!(asked.max_age, Some(300));
    // a token without acr falls short the same way
    let (status, challenge) = present(None, Some(NOW - 10), "b").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(StepUp::from_challenge(&challenge).is_some());
}

#[tokio::test]
async fn rfc9470_3_an_old_sign_in_is_challenged_and_a_fresh_passkey_sign_in_passes() {
    let (status, challenge) = present(Some(PASSKEY), Some(NOW - 1000), "c").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("signed in 1000 s ago"), "{challenge}");
    let (status, _) = present(Some(PASSKEY), None, "d").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no auth_time: its age unknown"
    );
    let (status, challenge) = present(Some(PASSKEY), Some(NOW - 10), "e").await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    let (status, _) = present(Some(MFA), Some(NOW - 10), "f").await;
    assert_eq!(status, StatusCode::OK);
}
