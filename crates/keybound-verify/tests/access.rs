//! A resource server accepts an RFC 9068 access token only with a DPoP proof by its `cnf.jkt`
//! key: tokens from a real in-process keybound OP; each refusal has its own error (type
//! confusion, Bearer scheme for a bound token, another key, a replayed proof, expiry, audience,
//! untrusted issuer, unbound tokens unless allowed).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_jose::PrivateKey;
use keybound_proto::dpop::ProofBuilder;
use keybound_testkit::keys;
use keybound_testkit::op::{public_client, OpBuilder, TestOp, ALICE, ISS, T0};
use keybound_verify::{
    AccessPresentation, ManualClock, MemoryReplayCache, StaticJwks, TrustedIssuer, Verifier,
    VerifierConfig, VerifyError,
};

const API: &str = "https://api.example";

async fn op() -> TestOp {
    OpBuilder::new().client(public_client("app")).build().await
}

/// The access token of a code flow for `app`, DPoP-bound to `key` when given.
async fn access_token(op: &TestOp, key: Option<&PrivateKey>) -> (String, Option<String>) {
    let jkt = key.map(|k| k.public_jwk().thumbprint());
    let scope = if key.is_some() {
        "openid bound_key"
    } else {
        "openid"
    };
    let code = op.sign_in_code("app", scope, jkt.as_ref()).await;
    let t = op.redeem("app", &code, key, None).await.unwrap();
    (t.access_token, t.id_token)
}

async fn verifier(
    op: &TestOp,
    config: impl FnOnce(&mut VerifierConfig),
) -> (Verifier, Arc<ManualClock>) {
    let mut c = VerifierConfig::new(
        TrustedIssuer {
            issuer: ISS.into(),
            jwks_uri: format!("{ISS}/jwks"),
        },
        vec![ISS.into()],
        API,
    );
    config(&mut c);
    let clock = Arc::new(ManualClock::new(T0));
    let v = Verifier::new(
        c,
        Arc::new(StaticJwks(op.p.jwks().await.unwrap())),
        Arc::new(MemoryReplayCache::new(64)),
        clock.clone(),
    );
    (v, clock)
}

fn proof(key: &PrivateKey, token: &str, jti: &str) -> String {
    ProofBuilder::new("GET", &format!("{API}/orders"), T0, jti)
        .ath_for(token)
        .sign(key)
        .unwrap()
}

async fn present(
    v: &Verifier,
    authorization: &str,
    dpop: &[&str],
) -> Result<keybound_verify::VerifiedAccess, VerifyError> {
    v.verify_access_token(AccessPresentation {
        authorization: Some(authorization),
        dpop,
        htm: "GET",
        path: "/orders",
    })
    .await
}

fn says(r: Result<keybound_verify::VerifiedAccess, VerifyError>, text: &str) {
    match r {
        Ok(a) => panic!("expected a refusal ({text}), got {a:?}"),
        Err(e) => assert!(e.to_string().contains(text), "{text:?} not in {e}"),
    }
}

#[tokio::test]
async fn rfc9068_dpop_bound_access_token_with_its_proof() {
    let op = op().await;
    let key = keys::es256_a();
    let (at, _) = access_token(&op, Some(&key)).await;
    let (v, _) = verifier(&op, |_| {}).await;
    let a = present(&v, &format!("DPoP {at}"), &[&proof(&key, &at, "p1")])
        .await
        .unwrap();
    assert_eq!(a.sub, ALICE.2);
    assert_eq!(a.client_id.as_deref(), Some("app"));
    assert!(a.has_scope("openid"));
    assert_eq!(a.jkt, Some(key.public_jwk().thumbprint()));
    // the same proof again
    assert!(matches!(
        present(&v, &format!("DPoP {at}"), &[&proof(&key, &at, "p1")]).await,
        Err(VerifyError::Replay)
    ));
}

#[tokio::test]
async fn refusals_each_with_its_reason() {
    let op = op().await;
    let key = keys::es256_a();
    let (at, idt) = access_token(&op, Some(&key)).await;
    let idt = idt.unwrap();
    let (v, clock) = verifier(&op, |_| {}).await;
    // an ID Token is not an access token (RFC 9068 §4: typ)
    says(
        present(&v, &format!("DPoP {idt}"), &[&proof(&key, &idt, "c1")]).await,
        "typ must be 'at+jwt'",
    );
    // a bound token as Bearer, or without a proof
    says(
        present(&v, &format!("Bearer {at}"), &[]).await,
        "DPoP scheme",
    );
    assert!(matches!(
        present(&v, &format!("DPoP {at}"), &[]).await,
        Err(VerifyError::MissingProof)
    ));
    assert!(matches!(
        present(&v, "", &[]).await,
        Err(VerifyError::MissingAccessToken)
    ));
    // a proof by another key
    assert!(matches!(
        present(
            &v,
            &format!("DPoP {at}"),
            &[&proof(&keys::es256_b(), &at, "c2")]
        )
        .await,
        Err(VerifyError::Proof(_))
    ));
    // another audience, another issuer
    let (other, _) = verifier(&op, |c| {
        c.audiences = vec!["https://elsewhere.example".into()];
    })
    .await;
    says(
        present(&other, &format!("DPoP {at}"), &[&proof(&key, &at, "c3")]).await,
        "aud",
    );
    let (stranger, _) = verifier(&op, |c| c.issuers[0].issuer = "https://idp.example".into()).await;
    assert!(matches!(
        present(&stranger, &format!("DPoP {at}"), &[&proof(&key, &at, "c4")]).await,
        Err(VerifyError::UntrustedIssuer(_))
    ));
    // expired (300 s + 60 s leeway)
    clock.advance(360);
    says(
        present(&v, &format!("DPoP {at}"), &[&proof(&key, &at, "c5")]).await,
        "expired",
    );
}

#[tokio::test]
async fn unbound_tokens_only_when_bearer_is_allowed() {
    let op = op().await;
    let (at, _) = access_token(&op, None).await;
    let (v, _) = verifier(&op, |_| {}).await;
    says(
        present(&v, &format!("Bearer {at}"), &[]).await,
        "only DPoP-bound",
    );
    let (lax, _) = verifier(&op, |c| c.accept_bearer = true).await;
    let a = present(&lax, &format!("Bearer {at}"), &[]).await.unwrap();
    assert_eq!(a.jkt, None);
}
