//! The vectors of docs/presentation.md, verified with a fixed clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_jose::JwkSet;
use keybound_proto::dpop::{self, DpopPolicy, NonceCheck, RequestFacts};
use keybound_proto::presentation::id_token_hash;
use keybound_testkit::{vector, vstr, vu64};
use keybound_verify::{
    HttpPresentation, ManualClock, MemoryReplayCache, TrustedIssuer, Verifier, VerifierConfig,
    VerifyError,
};
use serde_json::Value;

fn verifier(v: &Value) -> Verifier {
    let auds = v["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new(vstr(v, "/issuer"), "https://op.example/jwks"),
            auds,
            "https://api.example",
        ),
        Arc::new(keybound_verify::StaticJwks(
            JwkSet::from_value(&v["jwks"]).unwrap(),
        )),
        Arc::new(MemoryReplayCache::new(100)),
        Arc::new(ManualClock::new(vu64(v, "/now"))),
    )
}

#[tokio::test]
async fn http_presentation_vector() {
    let v = vector("presentation.json");
    let id_token = vstr(&v, "/id_token");
    assert_eq!(id_token_hash(id_token), vstr(&v, "/ath"));
    let ver = verifier(&v);
    let proof = vstr(&v, "/http/proof");
    let who = ver
        .verify_http(HttpPresentation {
            id_token: Some(id_token),
            dpop: &[proof],
            htm: "GET",
            path: "/orders",
        })
        .await
        .unwrap();
    assert_eq!(who.jkt.as_str(), vstr(&v, "/cnf_jkt"));
    assert_eq!(who.sub, "alice");
    // any other method, URL or a second use is refused
    let ver = verifier(&v);
    // another method, another path: each refused for that reason
    let e = ver
        .verify_http(HttpPresentation {
            id_token: Some(id_token),
            dpop: &[proof],
            htm: "POST",
            path: "/orders",
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, VerifyError::Proof(keybound_proto::Error::DpopHtm { .. })),
        "{e:?}"
    );
    let e = ver
        .verify_http(HttpPresentation {
            id_token: Some(id_token),
            dpop: &[proof],
            htm: "GET",
            path: "/orders/1",
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, VerifyError::Proof(keybound_proto::Error::DpopHtu { .. })),
        "{e:?}"
    );
}

#[test]
fn http_presentation_with_consumer_nonce_vector() {
    let v = vector("presentation.json");
    let p = &v["http_with_nonce"];
    let id_token = vstr(&v, "/id_token");
    let jkt = keybound_jose::Jkt::parse(vstr(&v, "/cnf_jkt")).unwrap();
    let facts = RequestFacts {
        presented_token: Some(id_token),
        bound_jkt: Some(&jkt),
        nonce: NonceCheck::Exact(vstr(p, "/nonce")),
        ..RequestFacts::new(vstr(p, "/htm"), vstr(p, "/htu"), vu64(&v, "/now"))
    };
    dpop::verify_proof(vstr(p, "/proof"), &facts, &DpopPolicy::default()).unwrap();
    let wrong = RequestFacts {
        nonce: NonceCheck::Exact("another"),
        ..facts
    };
    assert!(
        dpop::verify_proof(vstr(p, "/proof"), &wrong, &DpopPolicy::default())
            .unwrap_err()
            .is_nonce_error()
    );
}

#[tokio::test]
async fn peer_to_peer_presentation_vector() {
    let v = vector("presentation.json");
    let id_token = vstr(&v, "/id_token");
    let pres = vstr(&v, "/p2p/presentation");
    let (aud, challenge) = (vstr(&v, "/p2p/aud"), vstr(&v, "/p2p/challenge"));
    verifier(&v)
        .verify_p2p(id_token, pres, aud, challenge)
        .await
        .unwrap();
    let e = verifier(&v)
        .verify_p2p(id_token, pres, "urn:peer:mallory", challenge)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Proof(keybound_proto::Error::PresentationAudience { .. })
        ),
        "{e:?}"
    );
    let e = verifier(&v)
        .verify_p2p(id_token, pres, aud, "c-000000")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Proof(keybound_proto::Error::PresentationChallenge)
        ),
        "{e:?}"
    );
    let jws = keybound_jose::Jws::parse(pres).unwrap();
    assert_eq!(jws.header().typ.as_deref(), Some("kb-pop+jwt"));
}
