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
        TrustedIssuer::new(ISS, &format!("{ISS}/jwks")),
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
    // a tampered token (another sub under the issuer's signature) and a proof whose ath is
    // another token's hash
    let parts: Vec<&str> = at.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&keybound_jose::b64::decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        keybound_jose::b64::encode(claims.to_string().as_bytes()),
        parts[2]
    );
    says(
        present(
            &v,
            &format!("DPoP {tampered}"),
            &[&proof(&key, &tampered, "c6")],
        )
        .await,
        "signature does not verify",
    );
    assert!(matches!(
        present(&v, &format!("DPoP {at}"), &[&proof(&key, &idt, "c7")]).await,
        Err(VerifyError::Proof(keybound_proto::Error::DpopAth { .. }))
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

/// Issue 22 item 3: the provider's userinfo and keybound-verify take their access-token rules
/// from one place (`keybound_proto::access_token`), so for every variant of a token the two
/// agree: `typ` spellings, audiences, times at the edge, a `cnf` without `jkt`, the scheme.
/// Before, userinfo refused `application/at+jwt` that the verifier accepted, never checked
/// `aud`, and the verifier accepted an unbound token under the DPoP scheme.
#[tokio::test]
async fn the_provider_and_the_verifier_apply_one_rule_set() {
    use keybound_proto::access_token::AccessTokenClaims;
    let op = op().await;
    let (at, _) = access_token(&op, None).await;
    let jws = keybound_jose::Jws::parse(&at).unwrap();
    let base: AccessTokenClaims = jws.payload_json().unwrap();
    let key = op.p.current_key().await.unwrap();
    let sign = |typ: &str, c: &AccessTokenClaims| {
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), typ.into());
        h.insert("kid".into(), key.kid.clone().into());
        keybound_jose::jws::sign(key.alg, &h, &serde_json::to_vec(c).unwrap(), &key.key).unwrap()
    };
    let (v, clock) = verifier(&op, |c| {
        c.accept_bearer = true;
        c.leeway = 0;
    })
    .await;
    clock.advance(op.now() - T0);
    let now = op.now();
    let with = |f: &dyn Fn(&mut AccessTokenClaims)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    let elsewhere = keybound_proto::idtoken::Audience::from("https://elsewhere.example");
    let both = keybound_proto::idtoken::Audience::Many(vec![
        "https://elsewhere.example".into(),
        ISS.into(),
    ]);
    let cases: Vec<(&str, String, &str, bool)> = vec![
        ("typ at+jwt", sign("at+jwt", &base), "Bearer", true),
        (
            "typ application/at+jwt",
            sign("application/at+jwt", &base),
            "Bearer",
            true,
        ),
        ("typ AT+JWT", sign("AT+JWT", &base), "Bearer", true),
        ("typ JWT", sign("JWT", &base), "Bearer", false),
        (
            "aud elsewhere",
            sign("at+jwt", &with(&|c| c.aud = elsewhere.clone())),
            "Bearer",
            false,
        ),
        (
            "aud elsewhere and here",
            sign("at+jwt", &with(&|c| c.aud = both.clone())),
            "Bearer",
            true,
        ),
        (
            "exp now",
            sign("at+jwt", &with(&|c| c.exp = now)),
            "Bearer",
            false,
        ),
        (
            "exp in 1 s",
            sign("at+jwt", &with(&|c| c.exp = now + 1)),
            "Bearer",
            true,
        ),
        (
            "iat in 1 s",
            sign("at+jwt", &with(&|c| c.iat = now + 1)),
            "Bearer",
            false,
        ),
        (
            "nbf in 1 s",
            sign("at+jwt", &with(&|c| c.nbf = Some(now + 1))),
            "Bearer",
            false,
        ),
        (
            "cnf without jkt",
            sign(
                "at+jwt",
                &with(&|c| c.cnf = Some(keybound_proto::cnf::Cnf::default())),
            ),
            "Bearer",
            false,
        ),
        ("unbound under DPoP", sign("at+jwt", &base), "DPoP", false),
    ];
    for (label, token, scheme, accepted) in cases {
        let authorization = format!("{scheme} {token}");
        let provider = op.userinfo(&authorization, &[]).await;
        let resource = present(&v, &authorization, &[]).await;
        assert_eq!(
            (provider.is_ok(), resource.is_ok()),
            (accepted, accepted),
            "{label}: userinfo {provider:?}, verifier {resource:?}"
        );
    }
}
