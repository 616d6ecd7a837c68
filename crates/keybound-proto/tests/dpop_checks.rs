//! One negative test per RFC 9449 §4.3 check (DP-V1…V12), each asserting the specific error,
//! plus the Key Binding `c_s256` rules and the replay key. Fixed keys, fixed clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{b64, jws, Algorithm, Error as JoseError, Jkt, PrivateKey};
use keybound_proto::dpop::{
    self, CodeBinding, DpopPolicy, NonceCheck, NonceSource, ProofBuilder, RequestFacts,
};
use keybound_proto::keybinding::Profile;
use keybound_proto::Error;
use keybound_testkit::keys;
use serde_json::{json, Map, Value};

const NOW: u64 = 1_700_000_000;
const HTU: &str = "https://op.example/token";

fn facts() -> RequestFacts<'static> {
    RequestFacts::new("POST", HTU, NOW)
}

fn good(key: &PrivateKey) -> String {
    ProofBuilder::new("POST", HTU, NOW, "jti-1")
        .sign(key)
        .unwrap()
}

/// Sign arbitrary header members and claims with `key` (alg from `alg`).
#[allow(clippy::needless_pass_by_value)] // call sites read better with json!() by value
fn forge(key: &PrivateKey, alg: Algorithm, header: Value, claims: Value) -> String {
    let h: Map<String, Value> = header.as_object().unwrap().clone();
    jws::sign(alg, &h, claims.to_string().as_bytes(), key).unwrap()
}

fn std_header(key: &PrivateKey) -> Value {
    json!({"typ": "dpop+jwt", "jwk": key.public_jwk().to_value()})
}

fn std_claims() -> Value {
    json!({"jti": "jti-1", "htm": "POST", "htu": HTU, "iat": NOW})
}

fn check(proof: &str, facts: &RequestFacts<'_>) -> Result<dpop::VerifiedProof, Error> {
    dpop::verify([proof], facts, &DpopPolicy::default())
}

#[test]
fn valid_proof_every_algorithm() {
    for key in [
        keys::es256_a(),
        keys::es384(),
        keys::ed25519(),
        keys::rsa2048(),
    ] {
        let p = good(&key);
        let v = check(&p, &facts()).unwrap();
        assert_eq!(v.jkt, key.public_jwk().thumbprint());
        let rs = ProofBuilder::new("POST", HTU, NOW, "jti-1").alg(Algorithm::RS256);
        if key.public_jwk().kty() == "RSA" {
            check(&rs.sign(&key).unwrap(), &facts()).unwrap();
        }
    }
}

#[test]
fn dp_v1_no_header() {
    let none: [&str; 0] = [];
    assert_eq!(
        dpop::verify(none, &facts(), &DpopPolicy::default()).unwrap_err(),
        Error::DpopMissing
    );
}

#[test]
fn dp_v1_more_than_one_header() {
    let k = keys::es256_a();
    let p = good(&k);
    assert_eq!(
        dpop::verify([p.as_str(), p.as_str()], &facts(), &DpopPolicy::default()).unwrap_err(),
        Error::DpopMultipleHeaders(2)
    );
}

#[test]
fn dp_v2_not_a_well_formed_jwt() {
    let k = keys::es256_a();
    let p = good(&k);
    assert_eq!(
        check("abc", &facts()).unwrap_err(),
        Error::DpopMalformed(JoseError::Segments(1))
    );
    assert_eq!(
        check(&format!("{p}.x"), &facts()).unwrap_err(),
        Error::DpopMalformed(JoseError::Segments(4))
    );
    assert_eq!(
        check(&format!("{p}=="), &facts()).unwrap_err(),
        Error::DpopMalformed(JoseError::Base64Padding)
    );
    // payload not JSON
    let h: Map<String, Value> = std_header(&k).as_object().unwrap().clone();
    let t = jws::sign(Algorithm::ES256, &h, b"not json", &k).unwrap();
    assert!(matches!(
        check(&t, &facts()).unwrap_err(),
        Error::DpopMalformed(JoseError::Json(_))
    ));
}

#[test]
fn dp_v3_required_claims() {
    let k = keys::es256_a();
    for claim in ["jti", "htm", "htu", "iat"] {
        let mut c = std_claims();
        c.as_object_mut().unwrap().remove(claim);
        let p = forge(&k, Algorithm::ES256, std_header(&k), c);
        assert_eq!(
            check(&p, &facts()).unwrap_err(),
            Error::DpopMissingClaim(claim),
            "{claim}"
        );
    }
    let mut c = std_claims();
    c["iat"] = json!("1700000000");
    let p = forge(&k, Algorithm::ES256, std_header(&k), c);
    assert!(matches!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopClaimType { claim: "iat", .. }
    ));
    // ath required when a token is presented, nonce when the server demands one
    let p = good(&k);
    let f = RequestFacts {
        presented_token: Some("tok"),
        ..facts()
    };
    assert!(matches!(
        check(&p, &f).unwrap_err(),
        Error::DpopAth { got: None, .. }
    ));
    let f = RequestFacts {
        nonce: NonceCheck::Exact("n-1"),
        ..facts()
    };
    assert_eq!(check(&p, &f).unwrap_err(), Error::DpopNonceRequired);
}

#[test]
fn dp_v4_typ_must_be_dpop_jwt() {
    let k = keys::es256_a();
    for typ in [json!("JWT"), json!("dpop+id_token"), Value::Null] {
        let mut h = std_header(&k);
        if typ.is_null() {
            h.as_object_mut().unwrap().remove("typ");
        } else {
            h["typ"] = typ.clone();
        }
        let p = forge(&k, Algorithm::ES256, h, std_claims());
        assert_eq!(
            check(&p, &facts()).unwrap_err(),
            Error::DpopTyp(typ.as_str().map(str::to_owned)),
            "{typ}"
        );
    }
}

#[test]
fn dp_v5_alg_none_mac_and_policy() {
    let k = keys::es256_a();
    let enc = |v: &Value| b64::encode(v.to_string());
    let mut h = std_header(&k);
    h["alg"] = json!("none");
    let t = format!("{}.{}.", enc(&h), enc(&std_claims()));
    assert_eq!(
        check(&t, &facts()).unwrap_err(),
        Error::DpopAlg(JoseError::AlgNone)
    );
    h["alg"] = json!("HS256");
    let t = format!("{}.{}.AAAA", enc(&h), enc(&std_claims()));
    assert_eq!(
        check(&t, &facts()).unwrap_err(),
        Error::DpopAlg(JoseError::SymmetricAlg("HS256".into()))
    );
    // allowed by the crypto layer but not by this server's policy
    let policy = DpopPolicy::default().with_algs(&[Algorithm::ES256]);
    let ed = keys::ed25519();
    assert!(matches!(
        dpop::verify([good(&ed).as_str()], &facts(), &policy).unwrap_err(),
        Error::DpopAlg(JoseError::AlgNotAllowed {
            got: Algorithm::EdDSA,
            ..
        })
    ));
}

#[test]
fn dp_v6_signature_must_verify_with_header_jwk() {
    let a = keys::es256_a();
    let b = keys::es256_b();
    // signed by B, header claims A's key
    let p = forge(&b, Algorithm::ES256, std_header(&a), std_claims());
    assert_eq!(check(&p, &facts()).unwrap_err(), Error::DpopSignature);
    // no jwk at all
    let p = forge(
        &a,
        Algorithm::ES256,
        json!({"typ":"dpop+jwt"}),
        std_claims(),
    );
    assert_eq!(check(&p, &facts()).unwrap_err(), Error::DpopMissingJwk);
}

#[test]
fn dp_v7_jwk_must_not_be_private() {
    let k = keys::es256_a();
    let private: Value = serde_json::from_str(&k.to_private_jwk().unwrap()).unwrap();
    let p = forge(
        &k,
        Algorithm::ES256,
        json!({"typ":"dpop+jwt","jwk": private}),
        std_claims(),
    );
    assert_eq!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopJwk(JoseError::PrivateMember("d"))
    );
}

#[test]
fn dp_v8_htm_must_match() {
    let k = keys::es256_a();
    let p = ProofBuilder::new("GET", HTU, NOW, "j").sign(&k).unwrap();
    assert_eq!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopHtm {
            expected: "POST".into(),
            got: "GET".into()
        }
    );
    // methods are case-sensitive
    let p = ProofBuilder::new("post", HTU, NOW, "j").sign(&k).unwrap();
    assert!(matches!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopHtm { .. }
    ));
}

#[test]
fn dp_v9_htu_must_match_after_normalisation() {
    let k = keys::es256_a();
    let p = ProofBuilder::new("POST", "https://op.example/other", NOW, "j")
        .sign(&k)
        .unwrap();
    assert_eq!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopHtu {
            expected: "https://op.example/token".into(),
            got: "https://op.example/other".into()
        }
    );
    // equivalent spellings are accepted; query and fragment are ignored
    for htu in [
        "HTTPS://OP.example:443/token",
        "https://op.example/token?x=1",
        "https://op.example/a/../token",
    ] {
        let p = forge(
            &k,
            Algorithm::ES256,
            std_header(&k),
            json!({"jti":"j","htm":"POST","htu":htu,"iat":NOW}),
        );
        check(&p, &facts()).unwrap_or_else(|e| panic!("{htu}: {e}"));
    }
    let p = forge(
        &k,
        Algorithm::ES256,
        std_header(&k),
        json!({"jti":"j","htm":"POST","htu":"/token","iat":NOW}),
    );
    assert!(matches!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopHtu { .. }
    ));
}

#[test]
fn dp_v10_nonce_must_match() {
    let k = keys::es256_a();
    let p = ProofBuilder::new("POST", HTU, NOW, "j")
        .nonce("n-1")
        .sign(&k)
        .unwrap();
    let f = RequestFacts {
        nonce: NonceCheck::Exact("n-2"),
        ..facts()
    };
    assert_eq!(check(&p, &f).unwrap_err(), Error::DpopNonceInvalid);
    let f = RequestFacts {
        nonce: NonceCheck::Exact("n-1"),
        ..facts()
    };
    check(&p, &f).unwrap();
    // stateless nonces: issued by one node, verified by another with the same secret
    let node_a = NonceSource::new(&[42u8; 32], 60, 1).unwrap();
    let node_b = NonceSource::new(&[42u8; 32], 60, 1).unwrap();
    let n = node_a.issue(NOW);
    let p = ProofBuilder::new("POST", HTU, NOW, "j")
        .nonce(&n)
        .sign(&k)
        .unwrap();
    let f = RequestFacts {
        nonce: NonceCheck::Stateless(&node_b),
        ..facts()
    };
    check(&p, &f).unwrap();
    let stale = node_a.issue(NOW - 600);
    let p = ProofBuilder::new("POST", HTU, NOW, "j")
        .nonce(&stale)
        .sign(&k)
        .unwrap();
    assert_eq!(check(&p, &f).unwrap_err(), Error::DpopNonceInvalid);
    assert!(Error::DpopNonceInvalid.is_nonce_error());
}

#[test]
fn dp_v11_iat_window() {
    let k = keys::es256_a();
    let old = ProofBuilder::new("POST", HTU, NOW - 61, "j")
        .sign(&k)
        .unwrap();
    assert_eq!(
        check(&old, &facts()).unwrap_err(),
        Error::DpopIatTooOld {
            iat: NOW - 61,
            now: NOW,
            max_age: 60
        }
    );
    let edge = ProofBuilder::new("POST", HTU, NOW - 60, "j")
        .sign(&k)
        .unwrap();
    check(&edge, &facts()).unwrap();
    let future = ProofBuilder::new("POST", HTU, NOW + 6, "j")
        .sign(&k)
        .unwrap();
    assert_eq!(
        check(&future, &facts()).unwrap_err(),
        Error::DpopIatInFuture {
            iat: NOW + 6,
            now: NOW,
            leeway: 5
        }
    );
    let wide = DpopPolicy::default().with_max_age(300);
    dpop::verify([old.as_str()], &facts(), &wide).unwrap();
}

#[test]
fn dp_v12_ath_and_key_binding() {
    let k = keys::es256_a();
    let p = ProofBuilder::new("GET", "https://rs.example/r", NOW, "j")
        .ath_for("token-1")
        .sign(&k)
        .unwrap();
    let base = RequestFacts::new("GET", "https://rs.example/r", NOW);
    let f = RequestFacts {
        presented_token: Some("token-1"),
        ..base
    };
    check(&p, &f).unwrap();
    let f = RequestFacts {
        presented_token: Some("token-2"),
        ..base
    };
    assert!(matches!(
        check(&p, &f).unwrap_err(),
        Error::DpopAth { got: Some(_), .. }
    ));
    let other: Jkt = keys::es256_b().public_jwk().thumbprint();
    let f = RequestFacts {
        presented_token: Some("token-1"),
        bound_jkt: Some(&other),
        ..base
    };
    assert_eq!(
        check(&p, &f).unwrap_err(),
        Error::DpopKeyMismatch {
            expected: other.clone(),
            got: k.public_jwk().thumbprint()
        }
    );
}

#[test]
fn key_binding_c_s256_required_and_exact() {
    let k = keys::es256_a();
    let cb = CodeBinding {
        code: "code-1",
        profile: Profile::KeyBinding,
    };
    let f = RequestFacts {
        code_binding: Some(cb),
        ..facts()
    };
    // missing
    assert_eq!(
        check(&good(&k), &f).unwrap_err(),
        Error::DpopCodeHashMissing("c_s256")
    );
    // over another code
    let p = ProofBuilder::new("POST", HTU, NOW, "j")
        .c_s256("code-2")
        .sign(&k)
        .unwrap();
    assert!(matches!(
        check(&p, &f).unwrap_err(),
        Error::DpopCodeHash {
            claim: "c_s256",
            ..
        }
    ));
    // over the URL-encoded or padded form
    let padded = format!("{}=", keybound_proto::keybinding::c_s256("code-1"));
    let p = ProofBuilder::new("POST", HTU, NOW, "j")
        .claim("c_s256", padded.into())
        .sign(&k)
        .unwrap();
    assert!(matches!(
        check(&p, &f).unwrap_err(),
        Error::DpopCodeHash { .. }
    ));
    // right
    let p = ProofBuilder::new("POST", HTU, NOW, "j")
        .c_s256("code-1")
        .sign(&k)
        .unwrap();
    check(&p, &f).unwrap();
    // draft-00 names it c_hash
    let f00 = RequestFacts {
        code_binding: Some(CodeBinding {
            code: "code-1",
            profile: Profile::Draft00,
        }),
        ..facts()
    };
    assert_eq!(
        check(&p, &f00).unwrap_err(),
        Error::DpopCodeHashMissing("c_hash")
    );
    let p00 = ProofBuilder::new("POST", HTU, NOW, "j")
        .code_binding(Profile::Draft00, "code-1")
        .sign(&k)
        .unwrap();
    check(&p00, &f00).unwrap();
}

#[test]
fn jti_length_is_bounded() {
    let k = keys::es256_a();
    let long = "x".repeat(257);
    let p = ProofBuilder::new("POST", HTU, NOW, &long).sign(&k).unwrap();
    assert_eq!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopJti { len: 257, max: 256 }
    );
    let p = ProofBuilder::new("POST", HTU, NOW, "").sign(&k).unwrap();
    assert_eq!(
        check(&p, &facts()).unwrap_err(),
        Error::DpopJti { len: 0, max: 256 }
    );
}

#[test]
fn replay_entry_identifies_proof_and_expires_after_window() {
    let k = keys::es256_a();
    let policy = DpopPolicy::default();
    let a = check(&good(&k), &facts()).unwrap().replay_entry(&policy);
    let b = check(&good(&k), &facts()).unwrap().replay_entry(&policy);
    assert_eq!(a.key, b.key, "same jti, key, method and URI: a replay");
    assert_eq!(a.key.digest(), b.key.digest());
    assert_eq!(a.expires_at, NOW + 61);
    let other = ProofBuilder::new("POST", HTU, NOW, "jti-2")
        .sign(&k)
        .unwrap();
    let c = check(&other, &facts()).unwrap().replay_entry(&policy);
    assert_ne!(a.key.digest(), c.key.digest());
}

/// Drive a future that never waits (the replay stores below answer at once).
fn now_or_never<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the step waited on a store that answers at once"),
    }
}

/// The one step's answer for a proof under `nonce`, with a replay store that answers `seen`.
fn step(
    proof: &str,
    nonce: NonceCheck<'_>,
    seen: Result<bool, &'static str>,
) -> Result<dpop::VerifiedProof, dpop::Refused<&'static str>> {
    let f = RequestFacts { nonce, ..facts() };
    now_or_never(dpop::check([proof], &f, &DpopPolicy::default(), |_, _| {
        std::future::ready(seen)
    }))
}

/// DP-V10 through the one step (issue 22 item 3): a nonce failure is answered with a fresh,
/// non-empty nonce from the verifier's source; a verifier without nonces refuses a proof that
/// carries one as a bad proof, never with `use_dpop_nonce` and an empty nonce (the consuming
/// component's copy answered `NonceRequired("")`).
#[test]
fn dp_v10_the_step_never_answers_an_empty_nonce() {
    let k = keys::es256_a();
    let source = NonceSource::new(&[7; 32], 60, 2).unwrap();
    let plain = good(&k);
    match step(&plain, NonceCheck::Stateless(&source), Ok(true)) {
        Err(dpop::Refused::Nonce { reason, nonce }) => {
            assert_eq!(reason, Error::DpopNonceRequired);
            assert!(
                source.verify(&nonce, NOW),
                "a fresh nonce of the source: {nonce:?}"
            );
        }
        other => panic!("expected use_dpop_nonce with a nonce, got {other:?}"),
    }
    let with_nonce = ProofBuilder::new("POST", HTU, NOW, "jti-1")
        .nonce("a-nonce-from-elsewhere")
        .sign(&k)
        .unwrap();
    match step(&with_nonce, NonceCheck::NotRequired, Ok(true)) {
        Err(dpop::Refused::Proof(Error::DpopNonceInvalid)) => {}
        other => panic!("expected a bad proof, not a nonce challenge: {other:?}"),
    }
    match step(&with_nonce, NonceCheck::Optional(&source), Ok(true)) {
        Err(dpop::Refused::Nonce { nonce, .. }) => assert!(!nonce.is_empty()),
        other => panic!("expected use_dpop_nonce: {other:?}"),
    }
}

/// RFC 9449 §11.1 through the one step: the proof is recorded with its replay digest and
/// refused when the store has seen it; a store failure refuses too (never accepted unrecorded).
#[test]
fn rfc9449_11_1_the_step_records_the_proof() {
    let k = keys::es256_a();
    let p = good(&k);
    let v = step(&p, NonceCheck::NotRequired, Ok(true)).unwrap();
    assert_eq!(v.jkt, k.public_jwk().thumbprint());
    assert!(matches!(
        step(&p, NonceCheck::NotRequired, Ok(false)),
        Err(dpop::Refused::Replay)
    ));
    assert!(matches!(
        step(&p, NonceCheck::NotRequired, Err("disk full")),
        Err(dpop::Refused::Store("disk full"))
    ));
    // the digest and expiry handed to the store are the proof's replay entry
    let f = facts();
    let policy = DpopPolicy::default();
    let expected = dpop::verify([p.as_str()], &f, &policy)
        .unwrap()
        .replay_entry(&policy);
    let got = std::cell::Cell::new(None);
    now_or_never(dpop::check([p.as_str()], &f, &policy, |d, exp| {
        got.set(Some((d, exp)));
        std::future::ready(Ok::<_, ()>(true))
    }))
    .unwrap();
    assert_eq!(
        got.get(),
        Some((expected.key.digest(), expected.expires_at))
    );
}

/// The one bound-key check: nothing bound passes; bound needs a proof by that key.
#[test]
fn rfc9449_10_the_one_bound_key_check() {
    let a = keys::es256_a().public_jwk().thumbprint();
    let b = keys::es256_b().public_jwk().thumbprint();
    assert_eq!(dpop::check_bound(None, None), Ok(()));
    assert_eq!(dpop::check_bound(Some(&a), None), Ok(()));
    assert_eq!(dpop::check_bound(Some(&a), Some(&a)), Ok(()));
    assert_eq!(dpop::check_bound(None, Some(&a)), Err(Error::DpopMissing));
    assert_eq!(
        dpop::check_bound(Some(&b), Some(&a)),
        Err(Error::DpopKeyMismatch {
            expected: a.clone(),
            got: b
        })
    );
}
