//! ID Token validation: one test per OpenID Connect Core 3.1.3.7 step and Key Binding rule,
//! each asserting its specific error. Fixed OP key, fixed clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::LazyLock;

use keybound_jose::{b64, jws, Algorithm, Jkt, JwkSet, PrivateKey};
use keybound_proto::idtoken::{self, Audience, BindingRequirement, IdTokenBuilder, IdTokenChecks};
use keybound_proto::keybinding::Profile;
use keybound_proto::Error;
use keybound_testkit::keys;
use serde_json::{json, Map, Value};

const ISS: &str = "https://op.example";
const NOW: u64 = 1_700_000_000;

fn op_keys() -> (PrivateKey, JwkSet) {
    let k = keys::es256_b();
    let set = JwkSet::signing_key(&k, "op-1");
    (k, set)
}

fn builder() -> IdTokenBuilder {
    IdTokenBuilder::new(ISS, "alice", Audience::from("app"), NOW - 10, 300)
        .nonce(Some("n-0"))
        .auth_time(NOW - 20)
}

static AUDS: LazyLock<Vec<String>> = LazyLock::new(|| vec!["app".to_owned()]);

fn bound(jkt: Option<&Jkt>) -> BindingRequirement<'_> {
    BindingRequirement::Bound {
        expected_jkt: jkt,
        accept_draft00: false,
    }
}

fn sign(b: &IdTokenBuilder) -> String {
    let (k, _) = op_keys();
    b.sign(&k, Algorithm::ES256, Some("op-1")).unwrap()
}

fn validate<'a>(
    token: &str,
    f: impl FnOnce(&mut IdTokenChecks<'a>),
) -> Result<idtoken::ValidatedIdToken, Error> {
    let (_, set) = op_keys();
    let mut c = IdTokenChecks::new(ISS, &AUDS, NOW);
    c.nonce = Some("n-0");
    f(&mut c);
    idtoken::validate(token, &set, &c)
}

#[test]
fn valid_plain_id_token() {
    let t = validate(&sign(&builder()), |_| {}).unwrap();
    assert_eq!(t.claims.sub, "alice");
    assert_eq!(t.typ.as_deref(), Some("JWT"));
    assert!(t.jkt.is_none());
}

#[test]
fn step2_issuer() {
    let t = sign(
        &IdTokenBuilder::new("https://evil.example", "alice", "app".into(), NOW, 300)
            .nonce(Some("n-0")),
    );
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenIssuer {
            expected: ISS.into(),
            got: "https://evil.example".into()
        }
    );
}

#[test]
fn step3_audience_and_untrusted_audience() {
    let t =
        sign(&IdTokenBuilder::new(ISS, "alice", "other-app".into(), NOW, 300).nonce(Some("n-0")));
    assert!(matches!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenAudience { .. }
    ));
    let t = sign(
        &IdTokenBuilder::new(
            ISS,
            "alice",
            Audience::Many(vec!["app".into(), "stranger".into()]),
            NOW,
            300,
        )
        .nonce(Some("n-0"))
        .azp("app"),
    );
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenUntrustedAudience("stranger".into())
    );
    let trusted = vec!["stranger".to_owned()];
    validate(&t, |c| c.trusted_audiences = &trusted).unwrap();
}

#[test]
fn one_rp_several_client_ids() {
    let t = sign(&IdTokenBuilder::new(ISS, "alice", "app-ios".into(), NOW, 300).nonce(Some("n-0")));
    let (_, set) = op_keys();
    let a = vec!["app-web".to_owned(), "app-ios".to_owned()];
    let mut c = IdTokenChecks::new(ISS, &a, NOW);
    c.nonce = Some("n-0");
    idtoken::validate(&t, &set, &c).unwrap();
}

#[test]
fn steps4_5_azp() {
    let two = Audience::Many(vec!["app".into(), "friend".into()]);
    let trusted = vec!["friend".to_owned()];
    let t = sign(&IdTokenBuilder::new(ISS, "alice", two.clone(), NOW, 300).nonce(Some("n-0")));
    assert_eq!(
        validate(&t, |c| c.trusted_audiences = &trusted).unwrap_err(),
        Error::IdTokenAzp {
            expected: "app".into(),
            got: None
        }
    );
    let t = sign(
        &IdTokenBuilder::new(ISS, "alice", two, NOW, 300)
            .nonce(Some("n-0"))
            .azp("friend"),
    );
    assert_eq!(
        validate(&t, |c| c.trusted_audiences = &trusted).unwrap_err(),
        Error::IdTokenAzp {
            expected: "app".into(),
            got: Some("friend".into())
        }
    );
}

#[test]
fn step6_signature_and_kid() {
    let t = sign(&builder());
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(&b64::decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    parts[1] = b64::encode(claims.to_string());
    assert_eq!(
        validate(&parts.join("."), |_| {}).unwrap_err(),
        Error::IdTokenSignature
    );
    // signed by a key the OP does not publish
    let other = keys::es256_a();
    let t = builder()
        .sign(&other, Algorithm::ES256, Some("op-1"))
        .unwrap();
    assert_eq!(validate(&t, |_| {}).unwrap_err(), Error::IdTokenSignature);
    let t = builder()
        .sign(&other, Algorithm::ES256, Some("unknown"))
        .unwrap();
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenUnknownKid(Some("unknown".into()))
    );
}

#[test]
fn step7_8_alg() {
    let t = sign(&builder());
    assert!(matches!(
        validate(&t, |c| c.allowed_algs = &[Algorithm::RS256]).unwrap_err(),
        Error::IdTokenAlg(keybound_jose::Error::AlgNotAllowed { .. })
    ));
    let h = b64::encode(r#"{"alg":"HS256","kid":"op-1"}"#);
    let p = t.split('.').nth(1).unwrap();
    assert_eq!(
        validate(&format!("{h}.{p}.AAAA"), |_| {}).unwrap_err(),
        Error::IdTokenAlg(keybound_jose::Error::SymmetricAlg("HS256".into()))
    );
}

#[test]
fn step9_expiry() {
    let t =
        sign(&IdTokenBuilder::new(ISS, "alice", "app".into(), NOW - 1000, 300).nonce(Some("n-0")));
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenExpired {
            exp: NOW - 700,
            now: NOW,
            leeway: 60
        }
    );
}

#[test]
fn step10_iat() {
    let t =
        sign(&IdTokenBuilder::new(ISS, "alice", "app".into(), NOW + 600, 300).nonce(Some("n-0")));
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenIat {
            iat: NOW + 600,
            now: NOW
        }
    );
    let t =
        sign(&IdTokenBuilder::new(ISS, "alice", "app".into(), NOW - 200, 3000).nonce(Some("n-0")));
    assert_eq!(
        validate(&t, |c| c.max_iat_age = Some(100)).unwrap_err(),
        Error::IdTokenIat {
            iat: NOW - 200,
            now: NOW
        }
    );
}

#[test]
fn step11_nonce() {
    let t = sign(&builder().nonce(Some("n-1")));
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenNonce {
            expected: "n-0".into(),
            got: Some("n-1".into())
        }
    );
    let t = sign(&builder().nonce(None));
    assert_eq!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenNonce {
            expected: "n-0".into(),
            got: None
        }
    );
}

#[test]
fn step12_acr() {
    let wanted = vec!["urn:mace:incommon:iap:silver".to_owned()];
    let t = sign(&builder().acr("urn:mace:incommon:iap:bronze"));
    assert!(matches!(
        validate(&t, |c| c.acr_values = Some(&wanted)).unwrap_err(),
        Error::IdTokenAcr { .. }
    ));
    let t = sign(&builder().acr("urn:mace:incommon:iap:silver"));
    validate(&t, |c| c.acr_values = Some(&wanted)).unwrap();
}

#[test]
fn step13_auth_time_and_max_age() {
    let t = sign(&IdTokenBuilder::new(ISS, "alice", "app".into(), NOW, 300).nonce(Some("n-0")));
    assert_eq!(
        validate(&t, |c| c.max_age = Some(600)).unwrap_err(),
        Error::IdTokenAuthTime {
            auth_time: None,
            max_age: 600,
            now: NOW
        }
    );
    let t = sign(&builder().auth_time(NOW - 5000));
    assert!(matches!(
        validate(&t, |c| c.max_age = Some(600)).unwrap_err(),
        Error::IdTokenAuthTime { .. }
    ));
    validate(&sign(&builder()), |c| c.max_age = Some(600)).unwrap();
}

#[test]
fn key_binding_bound_token_round_trip() {
    let client = keys::es256_a();
    let jkt = client.public_jwk().thumbprint();
    let t = sign(&builder().bind(Profile::KeyBinding, client.public_jwk()));
    let v = validate(&t, |c| {
        c.binding = BindingRequirement::Bound {
            expected_jkt: Some(&jkt),
            accept_draft00: false,
        }
    })
    .unwrap();
    assert_eq!(v.typ.as_deref(), Some("dpop+id_token"));
    assert_eq!(v.jkt.as_ref(), Some(&jkt));
    // cnf.jwk holds the required members only
    let payload: Value =
        serde_json::from_slice(&b64::decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["cnf"]["jwk"], client.public_jwk().to_value());
}

#[test]
fn key_binding_typ_rules() {
    let client = keys::es256_a();
    let bound = bound(None);
    // a plain token where a bound one is expected (silent downgrade)
    assert!(matches!(
        validate(&sign(&builder()), |c| c.binding = bound).unwrap_err(),
        Error::IdTokenTyp { got: Some(ref t), .. } if t == "JWT"
    ));
    // draft-00 typ only when enabled
    let t00 = sign(&builder().bind(Profile::Draft00, client.public_jwk()));
    assert!(matches!(
        validate(&t00, |c| c.binding = bound).unwrap_err(),
        Error::IdTokenTyp { .. }
    ));
    validate(&t00, |c| {
        c.binding = BindingRequirement::Bound {
            expected_jkt: None,
            accept_draft00: true,
        }
    })
    .unwrap();
    // a bound token validated as a plain one is refused too
    let t = sign(&builder().bind(Profile::KeyBinding, client.public_jwk()));
    assert!(matches!(
        validate(&t, |_| {}).unwrap_err(),
        Error::IdTokenTyp { .. }
    ));
}

#[test]
fn key_binding_cnf_jwk_required_public_and_matching() {
    let (op, _) = op_keys();
    let client = keys::es256_a();
    // typ says bound, but no cnf
    let mut h = Map::new();
    h.insert("typ".into(), "dpop+id_token".into());
    h.insert("kid".into(), "op-1".into());
    let claims = serde_json::to_value(builder().claims()).unwrap();
    let t = jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), &op).unwrap();
    assert_eq!(
        validate(&t, |c| c.binding = bound(None)).unwrap_err(),
        Error::IdTokenNotBound
    );
    // cnf.jwk with a private member
    let mut claims = claims;
    claims["cnf"] =
        json!({"jwk": serde_json::from_str::<Value>(&client.to_private_jwk().unwrap()).unwrap()});
    let t = jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), &op).unwrap();
    assert!(
        matches!(validate(&t, |c| c.binding = bound(None)).unwrap_err(), Error::Cnf(ref m) if m.contains("private member 'd'"))
    );
    // cnf.jwk of another key than the one the RP bound
    let other = keys::es256_b().public_jwk().thumbprint();
    let t = sign(&builder().bind(Profile::KeyBinding, client.public_jwk()));
    assert_eq!(
        validate(&t, |c| c.binding = bound(Some(&other))).unwrap_err(),
        Error::IdTokenCnfMismatch {
            expected: other.clone(),
            got: client.public_jwk().thumbprint()
        }
    );
}
