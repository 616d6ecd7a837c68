//! Every worked example of `shared/specs/` that keybound can check, stored as JSON under
//! `testdata/vectors/` and verified with a fixed clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{Algorithm, JwkSet, Jws, PublicJwk};
use keybound_proto::dpop::{self, CodeBinding, DpopPolicy, RequestFacts};
use keybound_proto::idtoken::{self, IdTokenChecks};
use keybound_proto::keybinding::{c_s256, oidc_half_hash, parse_dpop_jkt, Profile};
use keybound_proto::tokbind::{self, KeyParameters, TokenBindingMessage, TokenBindingType};
use keybound_proto::{idjag, Error};
use keybound_testkit::{vector, vstr, vu64};

fn jwk(v: &serde_json::Value, ptr: &str) -> PublicJwk {
    PublicJwk::from_value(v.pointer(ptr).unwrap()).unwrap()
}

#[test]
fn rfc7638_3_1_thumbprint_example() {
    let v = vector("rfc7638-thumbprint.json");
    let k = jwk(&v, "/jwk");
    assert_eq!(k.canonical_json(), vstr(&v, "/canonical_json"));
    let digest = keybound_jose::sha256(k.canonical_json().as_bytes());
    let hex = keybound_testkit::hex(&digest);
    assert_eq!(hex, vstr(&v, "/sha256_hex"));
    assert_eq!(k.thumbprint().as_str(), vstr(&v, "/thumbprint"));
    for e in v["ec_vectors"].as_array().unwrap() {
        let k = PublicJwk::from_value(&e["jwk"]).unwrap();
        assert_eq!(
            k.thumbprint().as_str(),
            e["thumbprint"].as_str().unwrap(),
            "{}",
            e["where"]
        );
        if let Some(wrong) = e.get("document_order_hash_wrong") {
            assert_ne!(k.thumbprint().as_str(), wrong.as_str().unwrap());
        }
    }
}

#[test]
fn rfc9449_4_1_token_request_proof() {
    let v = vector("rfc9449-dpop.json");
    let p = &v["token_request_proof"];
    let facts = RequestFacts::new(vstr(p, "/htm"), vstr(p, "/htu"), vu64(p, "/now"));
    let proof = dpop::verify([vstr(p, "/proof")], &facts, &DpopPolicy::default()).unwrap();
    assert_eq!(proof.jkt.as_str(), vstr(&v, "/jkt"));
    assert_eq!(proof.jti, vstr(p, "/jti"));
    assert_eq!(proof.jwk, jwk(&v, "/jwk"));
}

#[test]
fn rfc9449_7_1_resource_request_proof_and_ath() {
    let v = vector("rfc9449-dpop.json");
    let p = &v["resource_request_proof"];
    assert_eq!(dpop::ath(vstr(p, "/access_token")), vstr(p, "/ath"));
    let jkt = jwk(&v, "/jwk").thumbprint();
    let facts = RequestFacts {
        presented_token: Some(vstr(p, "/access_token")),
        bound_jkt: Some(&jkt),
        ..RequestFacts::new(vstr(p, "/htm"), vstr(p, "/htu"), vu64(p, "/now"))
    };
    let proof = dpop::verify_proof(vstr(p, "/proof"), &facts, &DpopPolicy::default()).unwrap();
    assert_eq!(proof.jti, vstr(p, "/jti"));
    // another token → DP-V12
    let facts = RequestFacts {
        presented_token: Some("another-token"),
        ..facts
    };
    assert!(matches!(
        dpop::verify_proof(vstr(p, "/proof"), &facts, &DpopPolicy::default()),
        Err(Error::DpopAth { .. })
    ));
}

#[test]
fn rfc9449_10_dpop_jkt_example_is_rfc7638_thumbprint() {
    let v = vector("rfc9449-dpop.json");
    let t = vector("rfc7638-thumbprint.json");
    assert_eq!(
        parse_dpop_jkt(vstr(&v, "/dpop_jkt_example"))
            .unwrap()
            .as_str(),
        jwk(&t, "/jwk").thumbprint().as_str()
    );
}

#[test]
fn key_binding_dpop_jkt_and_c_s256() {
    let v = vector("key-binding-draft02.json");
    assert_eq!(jwk(&v, "/jwk").thumbprint().as_str(), vstr(&v, "/dpop_jkt"));
    assert_eq!(c_s256(vstr(&v, "/code")), vstr(&v, "/code_c_s256"));
    assert_eq!(
        c_s256(vstr(&v, "/device_code")),
        vstr(&v, "/device_code_c_s256")
    );
    // the OIDC Core c_hash is a different (half-length) value
    assert_eq!(
        oidc_half_hash(vstr(&v, "/code")),
        vstr(&v, "/code_oidc_c_hash_contrast")
    );
    assert_ne!(oidc_half_hash(vstr(&v, "/code")), c_s256(vstr(&v, "/code")));
}

fn kb_facts<'a>(
    v: &'a serde_json::Value,
    which: &str,
    jkt: &'a keybound_jose::Jkt,
    code: Option<&'a str>,
) -> RequestFacts<'a> {
    RequestFacts {
        bound_jkt: Some(jkt),
        code_binding: code.map(|code| CodeBinding {
            code,
            profile: Profile::KeyBinding,
        }),
        ..RequestFacts::new("POST", vstr(v, "/htu"), vu64(v, &format!("/{which}/now")))
    }
}

#[test]
fn key_binding_code_flow_example_proof() {
    let v = vector("key-binding-draft02.json");
    let jkt = parse_dpop_jkt(vstr(&v, "/dpop_jkt")).unwrap();
    let facts = kb_facts(&v, "code_proof", &jkt, Some(vstr(&v, "/code")));
    let p = dpop::verify_proof(
        vstr(&v, "/code_proof/proof"),
        &facts,
        &DpopPolicy::default(),
    )
    .unwrap();
    assert_eq!(p.claims["c_s256"], vstr(&v, "/code_c_s256"));
    // the same proof does not commit to the device code
    let facts = kb_facts(&v, "code_proof", &jkt, Some(vstr(&v, "/device_code")));
    assert!(matches!(
        dpop::verify_proof(
            vstr(&v, "/code_proof/proof"),
            &facts,
            &DpopPolicy::default()
        ),
        Err(Error::DpopCodeHash {
            claim: "c_s256",
            ..
        })
    ));
}

#[test]
fn key_binding_device_flow_example_proof() {
    let v = vector("key-binding-draft02.json");
    let jkt = parse_dpop_jkt(vstr(&v, "/dpop_jkt")).unwrap();
    let facts = kb_facts(&v, "device_proof", &jkt, Some(vstr(&v, "/device_code")));
    dpop::verify_proof(
        vstr(&v, "/device_proof/proof"),
        &facts,
        &DpopPolicy::default(),
    )
    .unwrap();
    // a draft-00 client would have had to send c_hash
    let facts = RequestFacts {
        code_binding: Some(CodeBinding {
            code: vstr(&v, "/device_code"),
            profile: Profile::Draft00,
        }),
        ..facts
    };
    assert_eq!(
        dpop::verify_proof(
            vstr(&v, "/device_proof/proof"),
            &facts,
            &DpopPolicy::default()
        )
        .unwrap_err(),
        Error::DpopCodeHashMissing("c_hash")
    );
}

#[test]
fn key_binding_refresh_example_proof_has_no_c_s256() {
    let v = vector("key-binding-draft02.json");
    let jkt = parse_dpop_jkt(vstr(&v, "/dpop_jkt")).unwrap();
    let facts = kb_facts(&v, "refresh_proof", &jkt, None);
    let p = dpop::verify_proof(
        vstr(&v, "/refresh_proof/proof"),
        &facts,
        &DpopPolicy::default(),
    )
    .unwrap();
    assert!(!p.claims.contains_key("c_s256"));
    assert_eq!(p.jti, vstr(&v, "/refresh_proof/jti"));
}

#[test]
fn rfc8473_2_example_header() {
    let v = vector("rfc8473-token-binding.json");
    let header = vstr(&v, "/header");
    let bytes = keybound_jose::b64::decode(header).unwrap();
    assert_eq!(bytes.len() as u64, vu64(&v, "/message_len"));
    let msg = TokenBindingMessage::from_header(header).unwrap();
    assert_eq!(msg.bindings.len() as u64, vu64(&v, "/bindings"));
    let b = &msg.bindings[0];
    assert_eq!(b.tb_type, TokenBindingType::Provided);
    assert_eq!(b.id.key_parameters.name(), vstr(&v, "/key_parameters"));
    let id_hex: String = keybound_testkit::hex(&b.id.to_bytes().unwrap());
    assert_eq!(id_hex, vstr(&v, "/token_binding_id_hex"));
    assert_eq!(b.id.tbh().unwrap(), vstr(&v, "/tbh"));
    assert_eq!(
        b.id.to_public_jwk().unwrap().thumbprint().as_str(),
        vstr(&v, "/jwk_thumbprint")
    );
    // encode is the exact inverse
    assert_eq!(msg.to_header().unwrap(), header);
}

fn ekm(v: &serde_json::Value, ptr: &str) -> [u8; 32] {
    keybound_jose::b64::decode_exact::<32>(vstr(v, ptr), "ekm").unwrap()
}

fn check_tba_flow(v: &serde_json::Value, check_op_provided_tbh: bool) {
    // UA → RP: one provided binding over the RP connection's EKM
    let rp = TokenBindingMessage::from_header(vstr(v, "/rp_header")).unwrap();
    let (provided, referred) = rp.http_bindings().unwrap();
    assert!(referred.is_none());
    provided.verify(&ekm(v, "/rp_ekm")).unwrap();
    assert_eq!(provided.id.tbh().unwrap(), vstr(v, "/rp_tbh"));
    assert_eq!(
        provided.verify(&ekm(v, "/op_ekm")),
        Err(Error::TokenBindingSignature),
        "the signature is over this connection's EKM only"
    );
    // UA → OP: provided (OP key) + referred (RP key), both over the OP connection's EKM
    let op = TokenBindingMessage::from_header(vstr(v, "/op_header")).unwrap();
    let (op_provided, op_referred) = op.http_bindings().unwrap();
    let op_referred = op_referred.expect("a referred binding");
    op_provided.verify(&ekm(v, "/op_ekm")).unwrap();
    op_referred.verify(&ekm(v, "/op_ekm")).unwrap();
    if check_op_provided_tbh {
        assert_eq!(op_provided.id.tbh().unwrap(), vstr(v, "/op_provided_tbh"));
    }
    // TBA-5: the OP hashes the referred ID, which is the RP's provided ID
    assert_eq!(op_referred.id, provided.id);
    assert_eq!(op_referred.id.tbh().unwrap(), vstr(v, "/rp_tbh"));
    // The same headers through the request check the native listener runs per request: the
    // appendix's messages (built by another implementation) verify on "their" connections,
    // and each is refused on the other connection.
    let on = |header: &str, ekm_ptr: &str| {
        tokbind::verify_request(
            &[header],
            Some((KeyParameters::EcdsaP256, &ekm(v, ekm_ptr))),
        )
    };
    let at_rp = on(vstr(v, "/rp_header"), "/rp_ekm").unwrap().unwrap();
    assert_eq!(
        (at_rp.provided, at_rp.referred),
        (provided.id.clone(), None)
    );
    let at_op = on(vstr(v, "/op_header"), "/op_ekm").unwrap().unwrap();
    assert_eq!(at_op.referred.as_ref(), Some(&provided.id));
    assert_eq!(
        on(vstr(v, "/op_header"), "/rp_ekm"),
        Err(Error::TokenBindingSignature)
    );
    assert_eq!(op.to_header().unwrap(), vstr(v, "/op_header"));
    // The ID Token carries cnf.tbh of the RP's TB ID (TBA-1, TBA-3)
    let keys =
        JwkSet::from_value(&serde_json::json!({ "keys": [v["id_token_jwk"].clone()] })).unwrap();
    let audiences = [vstr(v, "/client_id").to_owned()];
    let checks = IdTokenChecks {
        nonce: Some(vstr(v, "/nonce")),
        ..IdTokenChecks::new(vstr(v, "/issuer"), &audiences, vu64(v, "/now"))
    };
    let t = idtoken::validate(vstr(v, "/id_token"), &keys, &checks).unwrap();
    assert_eq!(
        t.claims.cnf.unwrap().tbh.as_deref(),
        Some(vstr(v, "/rp_tbh"))
    );
}

#[test]
fn oidc_tba_appendix_a1_implicit_form_post() {
    let v = vector("oidc-tba-appendix.json");
    check_tba_flow(&v["implicit_form_post"], true);
}

#[test]
fn oidc_tba_appendix_a2_code_flow() {
    let v = vector("oidc-tba-appendix.json");
    check_tba_flow(&v["code_flow"], false);
}

#[test]
fn identity_chaining_example_jwt_grant() {
    let v = vector("identity-chaining-jwt.json");
    let jws = Jws::parse(vstr(&v, "/jwt")).unwrap();
    assert_eq!(jws.header().kid.as_deref(), Some("2813308004"));
    jws.verify(&jwk(&v, "/jwk"), &[Algorithm::ES256]).unwrap();
    let claims: serde_json::Value = jws.payload_json().unwrap();
    assert_eq!(claims, v["claims"]);
    // a valid jwt-bearer grant, but not an ID-JAG: no typ, jti or client_id (IJ-8, IJ-10)
    let e = idjag::check(
        &jws,
        "https://as.b.example/auth",
        "client",
        vu64(&v, "/now"),
        0,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::IdJag(ref m) if m.contains("oauth-id-jag+jwt")),
        "{e}"
    );
}

/// IJ-8, IJ-9, IJ-10, each reached: the example grant's claims re-signed as an ID-JAG
/// (`typ: oauth-id-jag+jwt`, a testkit key) so that every later check runs, and each is broken
/// in turn. The example alone stops at `typ`.
#[test]
fn ij_8_9_10_each_rule_is_reached_on_the_example_claims() {
    let v = vector("identity-chaining-jwt.json");
    let now = vu64(&v, "/now");
    let key = keybound_testkit::keys::es256_a();
    let sign = |claims: &serde_json::Value| {
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), idjag::TYP_ID_JAG.into());
        keybound_jose::jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), &key).unwrap()
    };
    let check = |claims: &serde_json::Value, client: &str| {
        let t = sign(claims);
        let jws = Jws::parse(&t).unwrap();
        idjag::check(&jws, "https://as.b.example/auth", client, now, 0).map(|(c, _)| c.sub)
    };
    let msg = |r: Result<String, Error>| match r {
        Err(Error::IdJag(m)) => m,
        other => panic!("expected an ID-JAG refusal, got {other:?}"),
    };
    // the example has no client_id or jti: IJ-10 refuses it even with the right typ
    let m = msg(check(&v["claims"], "client"));
    assert!(m.contains("client_id"), "{m}");
    let mut good = v["claims"].clone();
    good["client_id"] = "client".into();
    good["jti"] = "jti-1".into();
    assert_eq!(check(&good, "client").unwrap(), "johndoe@a.example");
    // IJ-10: issued to another client
    let m = msg(check(&good, "someone-else"));
    assert!(m.contains("expected client_id 'someone-else'"), "{m}");
    // IJ-9: exactly one audience, this AS
    let mut two = good.clone();
    two["aud"] = serde_json::json!(["https://as.b.example/auth", "https://as.c.example"]);
    let m = msg(check(&two, "client"));
    assert!(m.contains("expected aud to be exactly"), "{m}");
    let mut other = good.clone();
    other["aud"] = "https://as.c.example".into();
    assert!(msg(check(&other, "client")).contains("expected aud to be exactly"));
    // expiry
    let mut old = good.clone();
    old["exp"] = (now - 1).into();
    assert!(msg(check(&old, "client")).contains("expired"));
}
