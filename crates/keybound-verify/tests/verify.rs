//! The consuming component refuses, each with its own error: no proof, a proof by another key,
//! for another htu or htm, a replayed jti, a stale iat, an ath of another ID Token, an ID Token
//! with typ JWT or at+jwt, a disallowed aud, an unknown iss, an expired ID Token, an unknown kid
//! after one refetch, alg none, and a cnf-less ID Token. The issuer's keys come from an
//! in-process fetcher that counts fetches (the HTTP fetcher is exercised against the real OP in
//! `keybound/tests`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keybound_jose::{b64, Algorithm, JwkSet, PrivateKey};
use keybound_proto::dpop::NonceSource;
use keybound_proto::idtoken::IdTokenBuilder;
use keybound_proto::keybinding::Profile;
use keybound_proto::presentation::{self, http_proof};
use keybound_proto::Error as P;
use keybound_testkit::keys;
use keybound_verify::{
    FetchedJwks, HttpPresentation, JwksFetcher, ManualClock, MemoryReplayCache, TrustedIssuer,
    Verifier, VerifierConfig, VerifyError,
};

const ISS: &str = "https://op.example";
const JWKS: &str = "https://op.example/jwks";
const SVC: &str = "https://api.example";
const NOW: u64 = 1_700_000_000;

struct Keys {
    set: Mutex<JwkSet>,
    fetches: AtomicUsize,
}

#[async_trait]
impl JwksFetcher for Keys {
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, VerifyError> {
        assert_eq!(url, JWKS);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(FetchedJwks {
            keys: self.set.lock().unwrap().clone(),
            max_age: Some(300),
        })
    }
}

struct Fixture {
    v: Verifier,
    op: PrivateKey,
    client: PrivateKey,
    keys: Arc<Keys>,
    clock: Arc<ManualClock>,
}

fn fixture_with(nonces: bool) -> Fixture {
    let op = keys::es256_b();
    let keys = Arc::new(Keys {
        set: Mutex::new(JwkSet::signing_key(&op, "op-1")),
        fetches: AtomicUsize::new(0),
    });
    let clock = Arc::new(ManualClock::new(NOW));
    let mut cfg = VerifierConfig::new(
        TrustedIssuer::new(ISS, JWKS),
        vec!["app-web".into(), "app-ios".into()],
        SVC,
    );
    if nonces {
        cfg.nonces = Some(NonceSource::new(&[3u8; 32], 60, 1).unwrap());
    }
    let v = Verifier::new(
        cfg,
        keys.clone(),
        Arc::new(MemoryReplayCache::new(1000)),
        clock.clone(),
    );
    Fixture {
        v,
        op,
        client: keys::es256_a(),
        keys,
        clock,
    }
}

fn fixture() -> Fixture {
    fixture_with(false)
}

impl Fixture {
    fn id_token(&self, f: impl FnOnce(IdTokenBuilder) -> IdTokenBuilder) -> String {
        keybound_testkit::tokens::BoundIdToken {
            iss: ISS,
            ..keybound_testkit::tokens::BoundIdToken::new(
                &self.op,
                &self.client,
                "app-ios",
                NOW - 5,
            )
        }
        .sign_with(f)
    }
    #[allow(clippy::unused_self)] // reads as a fixture method at every call site
    fn proof(
        &self,
        key: &PrivateKey,
        id_token: &str,
        htm: &str,
        path: &str,
        iat: u64,
        jti: &str,
    ) -> String {
        http_proof(key, id_token, htm, &format!("{SVC}{path}"), iat, jti, None).unwrap()
    }
    /// Present `t` with a fresh, correct proof; the refusal.
    async fn err(&self, t: &str) -> VerifyError {
        let p = self.proof(
            &self.client,
            t,
            "GET",
            "/r",
            NOW,
            &format!("x{}", keybound_jose::sha256_b64(t.as_bytes())),
        );
        self.present(t, &[&p], "GET", "/r").await.unwrap_err()
    }
    async fn present(
        &self,
        id_token: &str,
        proofs: &[&str],
        htm: &str,
        path: &str,
    ) -> Result<keybound_verify::VerifiedIdentity, VerifyError> {
        self.v
            .verify_http(HttpPresentation {
                id_token: Some(id_token),
                dpop: proofs,
                htm,
                path,
            })
            .await
    }
}

#[tokio::test]
async fn accepts_a_fresh_presentation() {
    let f = fixture();
    let t = f.id_token(|b| b);
    let p = f.proof(&f.client, &t, "GET", "/orders", NOW, "j1");
    let id = f.present(&t, &[&p], "GET", "/orders").await.unwrap();
    assert_eq!((id.iss.as_str(), id.sub.as_str()), (ISS, "alice"));
    assert_eq!(id.jkt, f.client.public_jwk().thumbprint());
    assert_eq!(
        id.aud,
        vec!["app-ios".to_owned()],
        "one of several client ids of the RP"
    );
}

#[tokio::test]
async fn refusals_each_with_its_own_error() {
    let f = fixture();
    let t = f.id_token(|b| b);
    let other = keys::es256_b();
    // no proof
    assert!(matches!(
        f.present(&t, &[], "GET", "/r").await.unwrap_err(),
        VerifyError::MissingProof
    ));
    // proof by another key
    let p = f.proof(&other, &t, "GET", "/r", NOW, "a");
    assert!(matches!(
        f.present(&t, &[&p], "GET", "/r").await.unwrap_err(),
        VerifyError::Proof(P::DpopKeyMismatch { .. })
    ));
    // proof for another htu / htm
    let p = f.proof(&f.client, &t, "GET", "/other", NOW, "b");
    assert!(matches!(
        f.present(&t, &[&p], "GET", "/r").await.unwrap_err(),
        VerifyError::Proof(P::DpopHtu { .. })
    ));
    let p = f.proof(&f.client, &t, "POST", "/r", NOW, "c");
    assert!(matches!(
        f.present(&t, &[&p], "GET", "/r").await.unwrap_err(),
        VerifyError::Proof(P::DpopHtm { .. })
    ));
    // replayed jti
    let p = f.proof(&f.client, &t, "GET", "/r", NOW, "d");
    f.present(&t, &[&p], "GET", "/r").await.unwrap();
    assert!(matches!(
        f.present(&t, &[&p], "GET", "/r").await.unwrap_err(),
        VerifyError::Replay
    ));
    // stale iat
    let p = f.proof(&f.client, &t, "GET", "/r", NOW - 120, "e");
    assert!(matches!(
        f.present(&t, &[&p], "GET", "/r").await.unwrap_err(),
        VerifyError::Proof(P::DpopIatTooOld { .. })
    ));
    // ath of another ID Token
    let t2 = f.id_token(|b| b.nonce(Some("other")));
    let p = f.proof(&f.client, &t2, "GET", "/r", NOW, "g");
    assert!(matches!(
        f.present(&t, &[&p], "GET", "/r").await.unwrap_err(),
        VerifyError::Proof(P::DpopAth { .. })
    ));
}

#[tokio::test]
async fn id_token_refusals() {
    let f = fixture();
    // typ JWT (an unbound ID Token) or at+jwt (an access token)
    let plain = IdTokenBuilder::new(ISS, "alice", "app-ios".into(), NOW, 300)
        .sign(&f.op, Algorithm::ES256, Some("op-1"))
        .unwrap();
    assert!(matches!(
        f.err(&plain).await,
        VerifyError::IdToken(P::IdTokenTyp { .. })
    ));
    let at = {
        let claims = serde_json::json!({"iss": ISS, "sub": "alice", "aud": "app-ios", "iat": NOW, "exp": NOW + 300,
            "cnf": {"jwk": f.client.public_jwk().to_value()}});
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), "at+jwt".into());
        h.insert("kid".into(), "op-1".into());
        keybound_jose::jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), &f.op)
            .unwrap()
    };
    assert!(
        matches!(f.err(&at).await, VerifyError::IdToken(P::IdTokenTyp { got: Some(ref t), .. }) if t == "at+jwt")
    );
    // aud not allowed
    let t = f.id_token(|b| b.claim("x", 1.into()));
    let wrong_aud = IdTokenBuilder::new(ISS, "alice", "someone-else".into(), NOW, 300)
        .bind(Profile::KeyBinding, f.client.public_jwk())
        .sign(&f.op, Algorithm::ES256, Some("op-1"))
        .unwrap();
    assert!(matches!(
        f.err(&wrong_aud).await,
        VerifyError::IdToken(P::IdTokenAudience { .. })
    ));
    // unknown iss
    let foreign = IdTokenBuilder::new("https://evil.example", "alice", "app-ios".into(), NOW, 300)
        .bind(Profile::KeyBinding, f.client.public_jwk())
        .sign(&f.op, Algorithm::ES256, Some("op-1"))
        .unwrap();
    assert!(matches!(
        f.err(&foreign).await,
        VerifyError::UntrustedIssuer(ref i) if i == "https://evil.example"
    ));
    // expired
    let old = IdTokenBuilder::new(ISS, "alice", "app-ios".into(), NOW - 1000, 300)
        .bind(Profile::KeyBinding, f.client.public_jwk())
        .sign(&f.op, Algorithm::ES256, Some("op-1"))
        .unwrap();
    assert!(matches!(
        f.err(&old).await,
        VerifyError::IdToken(P::IdTokenExpired { .. })
    ));
    // alg none
    let parts: Vec<&str> = t.split('.').collect();
    let none = format!(
        "{}.{}.",
        b64::encode(r#"{"alg":"none","typ":"dpop+id_token","kid":"op-1"}"#),
        parts[1]
    );
    // refused as an algorithm error (never "none"), not as some other malformation
    let e = f.err(&none).await;
    assert!(
        matches!(
            &e,
            VerifyError::IdToken(P::IdTokenAlg(keybound_jose::Error::AlgNone))
        ),
        "{e:?}"
    );
    // cnf-less ID Token with the key-bound typ
    let cnfless = {
        let claims = serde_json::json!({"iss": ISS, "sub": "alice", "aud": "app-ios", "iat": NOW, "exp": NOW + 300});
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), "dpop+id_token".into());
        h.insert("kid".into(), "op-1".into());
        keybound_jose::jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), &f.op)
            .unwrap()
    };
    assert!(matches!(
        f.err(&cnfless).await,
        VerifyError::IdToken(P::IdTokenNotBound)
    ));
    // draft-00 typ only when enabled
    let d00 = f.id_token(|b| b.bind(Profile::Draft00, f.client.public_jwk()));
    assert!(matches!(
        f.err(&d00).await,
        VerifyError::IdToken(P::IdTokenTyp { .. })
    ));
    // no ID Token at all
    let e =
        f.v.verify_http(HttpPresentation {
            id_token: None,
            dpop: &["x"],
            htm: "GET",
            path: "/r",
        })
        .await
        .unwrap_err();
    assert!(matches!(e, VerifyError::MissingIdToken), "{e:?}");
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let f = fixture();
    let t = f.id_token(|b| b);
    let p = f.proof(&f.client, &t, "GET", "/r", NOW, "k1");
    f.present(&t, &[&p], "GET", "/r").await.unwrap();
    assert_eq!(f.keys.fetches.load(Ordering::SeqCst), 1);
    // a token naming a kid the OP never published, half a minute later
    f.clock.advance(31);
    let forged = IdTokenBuilder::new(ISS, "alice", "app-ios".into(), NOW, 300)
        .bind(Profile::KeyBinding, f.client.public_jwk())
        .sign(&f.op, Algorithm::ES256, Some("op-9"))
        .unwrap();
    for i in 0..5 {
        let p = f.proof(&f.client, &forged, "GET", "/r", NOW + 31, &format!("k-{i}"));
        assert!(matches!(
            f.present(&forged, &[&p], "GET", "/r").await.unwrap_err(),
            VerifyError::Jwks(_)
        ));
    }
    assert_eq!(
        f.keys.fetches.load(Ordering::SeqCst),
        2,
        "one refetch for the unknown kid, not five"
    );
    // after the OP rotates, the new kid is found by the (rate-limited) refetch
    let new_op = keys::es384();
    f.keys
        .set
        .lock()
        .unwrap()
        .keys
        .push(JwkSet::signing_key(&new_op, "op-2").keys.remove(0));
    f.clock.advance(31);
    let t2 = IdTokenBuilder::new(ISS, "alice", "app-ios".into(), NOW + 62, 300)
        .bind(Profile::KeyBinding, f.client.public_jwk())
        .sign(&new_op, Algorithm::ES384, Some("op-2"))
        .unwrap();
    let p = f.proof(&f.client, &t2, "GET", "/r", NOW + 62, "k-new");
    f.present(&t2, &[&p], "GET", "/r").await.unwrap();
    assert_eq!(f.keys.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn nonce_required_then_accepted() {
    let f = fixture_with(true);
    let t = f.id_token(|b| b);
    let p = f.proof(&f.client, &t, "GET", "/r", NOW, "n1");
    let VerifyError::NonceRequired(nonce) = f.present(&t, &[&p], "GET", "/r").await.unwrap_err()
    else {
        panic!("expected a nonce demand")
    };
    let p = http_proof(
        &f.client,
        &t,
        "GET",
        &format!("{SVC}/r"),
        NOW,
        "n2",
        Some(&nonce),
    )
    .unwrap();
    f.present(&t, &[&p], "GET", "/r").await.unwrap();
}

/// Issue 22 item 3 (DP-V10): a verifier configured without nonces that receives a proof
/// carrying one refuses it as a bad proof (`invalid_dpop_proof`), never `use_dpop_nonce` with an
/// empty `DPoP-Nonce` (a loop the client cannot leave); it was `NonceRequired("")`.
#[tokio::test]
async fn dp_v10_without_nonces_a_nonce_is_a_bad_proof_never_an_empty_challenge() {
    let f = fixture();
    let t = f.id_token(|b| b);
    let p = http_proof(
        &f.client,
        &t,
        "GET",
        &format!("{SVC}/r"),
        NOW,
        "n3",
        Some("a-nonce-this-service-never-issued"),
    )
    .unwrap();
    let refused = f.present(&t, &[&p], "GET", "/r").await.unwrap_err();
    assert!(
        matches!(refused, VerifyError::Proof(P::DpopNonceInvalid)),
        "{refused:?}"
    );
    assert_eq!(
        refused.code(),
        keybound_proto::wire::ErrorCode::InvalidDpopProof
    );
    // with nonces, the demand always carries one
    let f = fixture_with(true);
    let p = f.proof(&f.client, &t, "GET", "/r", NOW, "n4");
    match f.present(&t, &[&p], "GET", "/r").await.unwrap_err() {
        VerifyError::NonceRequired(nonce) => assert!(!nonce.is_empty()),
        other => panic!("expected a nonce demand, got {other:?}"),
    }
}

#[tokio::test]
async fn peer_to_peer_presentation() {
    let f = fixture();
    let t = f.id_token(|b| b);
    let pres =
        presentation::p2p_sign(&f.client, &t, "bob-device", "challenge-123", NOW, "p1").unwrap();
    f.v.verify_p2p(&t, &pres, "bob-device", "challenge-123")
        .await
        .unwrap();
    assert!(matches!(
        f.v.verify_p2p(&t, &pres, "bob-device", "challenge-123")
            .await
            .unwrap_err(),
        VerifyError::Replay
    ));
    let pres =
        presentation::p2p_sign(&f.client, &t, "bob-device", "challenge-123", NOW, "p2").unwrap();
    assert!(matches!(
        f.v.verify_p2p(&t, &pres, "bob-device", "another")
            .await
            .unwrap_err(),
        VerifyError::Proof(P::PresentationChallenge)
    ));
    assert!(matches!(
        f.v.verify_p2p(&t, &pres, "carol", "challenge-123")
            .await
            .unwrap_err(),
        VerifyError::Proof(P::PresentationAudience { .. })
    ));
    let by_other = presentation::p2p_sign(
        &keys::es256_b(),
        &t,
        "bob-device",
        "challenge-123",
        NOW,
        "p3",
    )
    .unwrap();
    assert!(matches!(
        f.v.verify_p2p(&t, &by_other, "bob-device", "challenge-123")
            .await
            .unwrap_err(),
        VerifyError::Proof(P::PresentationSignature)
    ));
    let t2 = f.id_token(|b| b.nonce(Some("x")));
    let for_t2 =
        presentation::p2p_sign(&f.client, &t2, "bob-device", "challenge-123", NOW, "p4").unwrap();
    assert!(matches!(
        f.v.verify_p2p(&t, &for_t2, "bob-device", "challenge-123")
            .await
            .unwrap_err(),
        VerifyError::Proof(P::PresentationIdTokenHash)
    ));
}

#[tokio::test]
async fn bounded_replay_cache_fails_closed() {
    use keybound_verify::ReplayCache as _;
    let c = MemoryReplayCache::new(2);
    assert!(c.check_and_insert(&[1; 32], NOW + 60, NOW).await.unwrap());
    assert!(c.check_and_insert(&[2; 32], NOW + 60, NOW).await.unwrap());
    assert!(matches!(
        c.check_and_insert(&[3; 32], NOW + 60, NOW).await,
        Err(VerifyError::ReplayCacheFull)
    ));
    assert!(!c.check_and_insert(&[1; 32], NOW + 60, NOW).await.unwrap());
    // once entries expire there is room again
    assert!(c
        .check_and_insert(&[3; 32], NOW + 200, NOW + 61)
        .await
        .unwrap());
}
