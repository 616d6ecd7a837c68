//! The provider's decisions end to end, on the in-memory store with a fixed clock: the
//! Key Binding code flow, refresh, userinfo, and every refusal the token endpoint owes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{Jkt, PrivateKey};
use keybound_op::passkey::Strength;
use keybound_op::{password, Clock, Interaction, LoginPrompt, OpConfig, TokenRequestFacts};
use keybound_op::{Endpoint, OpError, ValidatedAuthorization};
use keybound_proto::dpop::{NonceSource, ProofBuilder};
use keybound_proto::idtoken::{self, BindingRequirement, IdTokenChecks};
use keybound_proto::keybinding::Profile;
use keybound_proto::wire::{AuthorizationRequest, ErrorCode, TokenResponse};
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{form, OpBuilder, TestOp, ISS, REDIRECT, T0, VERIFIER};

/// A client of `method` with `profile`, registered for the testkit's redirect URI.
fn client(id: &str, method: ClientAuthMethod, profile: Profile) -> Client {
    Client {
        key_binding_profile: profile,
        ..keybound_testkit::op::client(id, method)
    }
}

/// The OP of these tests: a public client `pub`, a confidential `conf` (HTTP Basic), a
/// draft-00 `old`, and the standard End-User; `config` changes the settings.
async fn op_with(config: impl FnOnce(&mut OpConfig) + Send + 'static) -> TestOp {
    OpBuilder::new()
        .configure(config)
        .client(client("pub", ClientAuthMethod::None, Profile::KeyBinding))
        .client(client(
            "conf",
            ClientAuthMethod::ClientSecretBasic,
            Profile::KeyBinding,
        ))
        .client(client("old", ClientAuthMethod::None, Profile::Draft00))
        .build()
        .await
}

async fn op() -> TestOp {
    op_with(|_| {}).await
}

fn request(client_id: &str, scope: &str, jkt: Option<&Jkt>) -> AuthorizationRequest {
    keybound_testkit::op::authorization_request(client_id, scope, jkt)
}

/// Run authorization through login and consent; returns the code.
async fn authorize(op: &TestOp, req: &AuthorizationRequest) -> (String, ValidatedAuthorization) {
    let v = op.p.validate_authorization(req).await.unwrap();
    assert_eq!(
        op.p.next_interaction(&v, None, false, false).await.unwrap(),
        Interaction::Login(LoginPrompt {
            need: Strength::Password,
            current: None
        })
    );
    let session = op.p.login("alice", "wonderland").await.unwrap().unwrap();
    if let Interaction::Consent(_) =
        op.p.next_interaction(&v, Some(&session), true, false)
            .await
            .unwrap()
    {
        op.p.record_consent(&v, &session.sub).await.unwrap();
    }
    assert_eq!(
        op.p.next_interaction(&v, Some(&session), true, false)
            .await
            .unwrap(),
        Interaction::Issue
    );
    let url = op.p.issue_code(&v, &session).await.unwrap().url().unwrap();
    let u = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<String, String> = u.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], ISS);
    (q["code"].clone(), v)
}

fn code_form<'a>(client: &'a str, code: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client),
    ]
}

async fn token(
    op: &TestOp,
    pairs: &[(&str, &str)],
    dpop: &[&str],
    auth: Option<&str>,
) -> Result<TokenResponse, OpError> {
    let f = form(pairs);
    op.p.token(TokenRequestFacts {
        form: &f,
        authorization: auth,
        dpop,
    })
    .await
    .map(|s| s.response)
}

fn proof(key: &PrivateKey, jti: &str, now: u64, code: Option<&str>) -> String {
    let b = ProofBuilder::new("POST", &format!("{ISS}/token"), now, jti);
    let b = match code {
        Some(c) => b.c_s256(c),
        None => b,
    };
    b.sign(key).unwrap()
}

/// Redeem `code` for a client that must use DPoP nonces: the first proof (no nonce) is answered
/// `use_dpop_nonce` with a fresh nonce, the retry with it succeeds with the same code.
async fn redeem_after_nonce(
    op: &TestOp,
    client: &str,
    code: &str,
    key: &PrivateKey,
) -> TokenResponse {
    let e = token(
        op,
        &code_form(client, code),
        &[&proof(key, "before-nonce", T0, Some(code))],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UseDpopNonce, "{e:?}");
    let nonce = e.dpop_nonce().unwrap().to_owned();
    let p = ProofBuilder::new("POST", &format!("{ISS}/token"), T0, "with-nonce")
        .c_s256(code)
        .nonce(&nonce)
        .sign(key)
        .unwrap();
    token(op, &code_form(client, code), &[&p], None)
        .await
        .unwrap()
}

async fn validate_bound(
    op: &TestOp,
    id_token: &str,
    client: &str,
    jkt: &Jkt,
    draft00: bool,
) -> idtoken::ValidatedIdToken {
    validate_bound_nonce(op, id_token, client, jkt, draft00, Some("n-1")).await
}

async fn validate_bound_nonce(
    op: &TestOp,
    id_token: &str,
    client: &str,
    jkt: &Jkt,
    draft00: bool,
    nonce: Option<&str>,
) -> idtoken::ValidatedIdToken {
    let jwks = op.p.jwks().await.unwrap();
    let auds = vec![client.to_owned()];
    let checks = IdTokenChecks {
        nonce,
        binding: BindingRequirement::Bound {
            expected_jkt: Some(jkt),
            accept_draft00: draft00,
        },
        ..IdTokenChecks::new(ISS, &auds, op.clock.now())
    };
    idtoken::validate(id_token, &jwks, &checks).unwrap()
}

#[tokio::test]
async fn key_bound_code_flow_refresh_and_userinfo() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(
        &op,
        &request("pub", "openid profile offline_access bound_key", Some(&jkt)),
    )
    .await;
    let p = proof(&key, "j1", T0, Some(&code));
    let res = token(&op, &code_form("pub", &code), &[&p], None)
        .await
        .unwrap();
    assert_eq!(res.token_type, "DPoP");
    let id = validate_bound(&op, res.id_token.as_deref().unwrap(), "pub", &jkt, false).await;
    assert_eq!(id.typ.as_deref(), Some("dpop+id_token"));
    assert_eq!(id.claims.extra["name"], "Alice");
    assert!(id.claims.at_hash.is_some());
    // refresh with the same key: same cnf, no c_s256 needed
    op.advance(10);
    let rt = res.refresh_token.clone().unwrap();
    let p2 = proof(&key, "j2", T0 + 10, None);
    let res2 = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", "pub"),
        ],
        &[&p2],
        None,
    )
    .await
    .unwrap();
    // OIDC Core 12.2: a refreshed ID Token carries no new nonce
    let id2 = validate_bound_nonce(
        &op,
        res2.id_token.as_deref().unwrap(),
        "pub",
        &jkt,
        false,
        None,
    )
    .await;
    assert_eq!(
        id2.claims.cnf, id.claims.cnf,
        "KB-RF3: refreshed ID Token carries the same cnf"
    );
    assert_ne!(res2.refresh_token, res.refresh_token, "rotated");
    // userinfo with the DPoP-bound access token and a proof over the request
    let info = op
        .userinfo_dpop(&res2.access_token, &key, "u1")
        .await
        .unwrap();
    assert_eq!(info["sub"], "sub-alice");
    // the same bound token as Bearer is refused
    let e = op
        .userinfo(&format!("Bearer {}", res2.access_token), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidToken);
    // a proof by another key is refused
    let e = op
        .userinfo_dpop(&res2.access_token, &keys::es256_b(), "u2")
        .await
        .unwrap_err();
    // RFC 9449 §7.1: a proof by another key than the token's is an invalid key binding
    assert!(
        matches!(
            e,
            OpError::Refused(keybound_op::refusal::Refusal::Binding(
                keybound_op::refusal::BindingRefusal::KeyMismatch { .. }
            ))
        ),
        "{e:?}"
    );
    assert_eq!(
        e.wire(Endpoint::Resource).code,
        Some(ErrorCode::InvalidToken)
    );
}

#[tokio::test]
async fn token_endpoint_refusals() {
    let op = op().await;
    let key = keys::es256_a();
    let other = keys::es256_b();
    let jkt = key.public_jwk().thumbprint();
    let req = request("pub", "openid offline_access bound_key", Some(&jkt));
    let (code, _) = authorize(&op, &req).await;
    let cf = code_form("pub", &code);
    let err = |r: Result<TokenResponse, OpError>| r.unwrap_err().code();
    // no proof, proof without c_s256, proof over another code, proof by another key
    assert_eq!(
        err(token(&op, &cf, &[], None).await),
        ErrorCode::InvalidDpopProof
    );
    assert_eq!(
        err(token(&op, &cf, &[&proof(&key, "a", T0, None)], None).await),
        ErrorCode::InvalidDpopProof
    );
    assert_eq!(
        err(token(&op, &cf, &[&proof(&key, "b", T0, Some("other"))], None).await),
        ErrorCode::InvalidDpopProof
    );
    assert_eq!(
        err(token(&op, &cf, &[&proof(&other, "c", T0, Some(&code))], None).await),
        ErrorCode::InvalidGrant
    );
    // stale and future iat
    assert_eq!(
        err(token(&op, &cf, &[&proof(&key, "d", T0 - 120, Some(&code))], None).await),
        ErrorCode::InvalidDpopProof
    );
    assert_eq!(
        err(token(&op, &cf, &[&proof(&key, "e", T0 + 60, Some(&code))], None).await),
        ErrorCode::InvalidDpopProof
    );
    // PKCE and redirect_uri mismatches
    let mut bad = cf.clone();
    bad[3] = ("code_verifier", "wrong-verifier-wrong-verifier-wrong-verif");
    let refused = proof(&key, "f", T0, Some(&code));
    assert_eq!(
        err(token(&op, &bad, &[&refused], None).await),
        ErrorCode::InvalidGrant
    );
    // RFC 9449 §11.1: a proof is spent once verified, even by a request refused before the
    // write that consumes (where an accepted one is recorded, issue 25 item 1)
    let e = token(&op, &cf, &[&refused], None).await.unwrap_err();
    assert!(e.description().contains("replayed"), "{e:?}");
    let mut bad = cf.clone();
    bad[2] = ("redirect_uri", "https://app.example/other");
    assert_eq!(
        err(token(&op, &bad, &[&proof(&key, "g", T0, Some(&code))], None).await),
        ErrorCode::InvalidGrant
    );
    // none of the refusals burned the code: the right request succeeds
    let good = proof(&key, "h", T0, Some(&code));
    let res = token(&op, &cf, &[&good], None).await.unwrap();
    // replayed proof: refused as a replay before the (now used) code is even looked at
    let e = token(&op, &cf, &[&good], None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidDpopProof, "{e:?}");
    assert!(e.description().contains("replayed"), "{e:?}");
    // code reuse: refused, and what it issued is revoked
    let e = token(&op, &cf, &[&proof(&key, "i", T0, Some(&code))], None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
    assert!(e.description().contains("revoked"));
    let rt = res.refresh_token.unwrap();
    let e = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", "pub"),
        ],
        &[&proof(&key, "k", T0, None)],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn refresh_with_another_key_and_reuse() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(
        &op,
        &request("pub", "openid offline_access bound_key", Some(&jkt)),
    )
    .await;
    let res = token(
        &op,
        &code_form("pub", &code),
        &[&proof(&key, "1", T0, Some(&code))],
        None,
    )
    .await
    .unwrap();
    let rt = res.refresh_token.unwrap();
    let rf = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", "pub"),
    ];
    let e = token(&op, &rf, &[&proof(&keys::es256_b(), "2", T0, None)], None)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::InvalidGrant,
        "KB-RF2: proof by another key"
    );
    let e = token(&op, &rf, &[], None).await.unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::InvalidDpopProof,
        "bound refresh without proof"
    );
    let res2 = token(&op, &rf, &[&proof(&key, "3", T0, None)], None)
        .await
        .unwrap();
    // reuse of the old token revokes the family, including the new one
    let e = token(&op, &rf, &[&proof(&key, "4", T0, None)], None)
        .await
        .unwrap_err();
    assert!(e.description().contains("reuse"), "{e:?}");
    let rt2 = res2.refresh_token.unwrap();
    let e = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", "pub"),
        ],
        &[&proof(&key, "5", T0, None)],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn kb_op7_dpop_without_dpop_jkt_gives_unbound_id_token() {
    let op = op().await;
    let key = keys::es256_a();
    let (code, _) = authorize(&op, &request("pub", "openid", None)).await;
    let res = token(
        &op,
        &code_form("pub", &code),
        &[&proof(&key, "1", T0, None)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        res.token_type, "DPoP",
        "the access token is still DPoP-bound"
    );
    let jwks = op.p.jwks().await.unwrap();
    let auds = vec!["pub".to_owned()];
    let checks = IdTokenChecks {
        nonce: Some("n-1"),
        ..IdTokenChecks::new(ISS, &auds, T0)
    };
    let id = idtoken::validate(res.id_token.as_deref().unwrap(), &jwks, &checks).unwrap();
    assert!(id.claims.cnf.is_none());
    assert_eq!(id.typ.as_deref(), Some("JWT"));
}

#[tokio::test]
async fn dpop_jkt_only_binds_code_not_id_token() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("pub", "openid", Some(&jkt))).await;
    let e = token(
        &op,
        &code_form("pub", &code),
        &[&proof(&keys::es256_b(), "1", T0, None)],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
    let res = token(
        &op,
        &code_form("pub", &code),
        &[&proof(&key, "2", T0, None)],
        None,
    )
    .await
    .unwrap();
    let payload = res.id_token.unwrap();
    let jws = keybound_jose::Jws::parse(&payload).unwrap();
    assert_eq!(jws.header().typ.as_deref(), Some("JWT"));
}

#[tokio::test]
async fn use_dpop_nonce_then_retry_with_same_code() {
    let op = op_with(|c| {
        c.dpop_nonces = Some(NonceSource::new(&[9u8; 32], 60, 1).unwrap());
        c.require_dpop_nonce = true;
    })
    .await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("pub", "openid bound_key", Some(&jkt))).await;
    let res = redeem_after_nonce(&op, "pub", &code, &key).await;
    validate_bound(&op, res.id_token.as_deref().unwrap(), "pub", &jkt, false).await;
}

#[tokio::test]
async fn draft00_client_gets_c_hash_rule_and_id_token_cnf_typ() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("old", "openid bound_key", Some(&jkt))).await;
    // c_s256 is not what a draft-00 client sends
    let e = token(
        &op,
        &code_form("old", &code),
        &[&proof(&key, "1", T0, Some(&code))],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidDpopProof);
    let p = ProofBuilder::new("POST", &format!("{ISS}/token"), T0, "2")
        .code_binding(Profile::Draft00, &code)
        .sign(&key)
        .unwrap();
    let res = token(&op, &code_form("old", &code), &[&p], None)
        .await
        .unwrap();
    let id = validate_bound(&op, res.id_token.as_deref().unwrap(), "old", &jkt, true).await;
    assert_eq!(id.typ.as_deref(), Some("id_token+cnf"));
}

#[tokio::test]
async fn consent_is_remembered_per_key() {
    let op = op().await;
    let a = keys::es256_a().public_jwk().thumbprint();
    let b = keys::es256_b().public_jwk().thumbprint();
    authorize(&op, &request("pub", "openid bound_key", Some(&a))).await;
    let session = op.p.login("alice", "wonderland").await.unwrap().unwrap();
    let same =
        op.p.validate_authorization(&request("pub", "openid bound_key", Some(&a)))
            .await
            .unwrap();
    assert_eq!(
        op.p.next_interaction(&same, Some(&session), false, false)
            .await
            .unwrap(),
        Interaction::Issue
    );
    let new_key =
        op.p.validate_authorization(&request("pub", "openid bound_key", Some(&b)))
            .await
            .unwrap();
    match op
        .p
        .next_interaction(&new_key, Some(&session), false, false)
        .await
        .unwrap()
    {
        Interaction::Consent(c) => assert_eq!(c.bound_jkt.as_deref(), Some(b.as_str())),
        other => panic!("KB-OP2: a new key needs consent, got {other:?}"),
    }
}

#[tokio::test]
async fn authorization_request_errors() {
    let op = op().await;
    let jkt = keys::es256_a().public_jwk().thumbprint();
    // unregistered redirect_uri: an error page, never a redirect
    let mut r = request("pub", "openid", None);
    r.redirect_uri = Some("https://evil.example/cb".into());
    let e = op.p.validate_authorization(&r).await.unwrap_err();
    assert!(e.redirect_url().is_none());
    // bound_key without dpop_jkt, malformed dpop_jkt: invalid_request to the redirect URI
    for (scope, dpop_jkt) in [
        ("openid bound_key", None),
        ("openid bound_key", Some("not-a-thumbprint")),
    ] {
        let mut r = request("pub", scope, None);
        r.dpop_jkt = dpop_jkt.map(str::to_owned);
        let url =
            op.p.validate_authorization(&r)
                .await
                .unwrap_err()
                .redirect_url()
                .unwrap();
        assert!(
            url.starts_with(REDIRECT)
                && url.contains("error=invalid_request")
                && url.contains("state=st-1"),
            "{url}"
        );
    }
    // public client without PKCE
    let mut r = request("pub", "openid bound_key", Some(&jkt));
    r.code_challenge = None;
    r.code_challenge_method = None;
    assert!(op
        .p
        .validate_authorization(&r)
        .await
        .unwrap_err()
        .redirect_url()
        .unwrap()
        .contains("PKCE"));
    // prompt=none without a session
    let mut r = request("pub", "openid", None);
    r.prompt = Some("none".into());
    let v = op.p.validate_authorization(&r).await.unwrap();
    let url =
        op.p.next_interaction(&v, None, false, false)
            .await
            .unwrap_err()
            .redirect_url()
            .unwrap();
    assert!(url.contains("error=login_required"));
}

#[tokio::test]
async fn confidential_client_authentication() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("conf", "openid bound_key", Some(&jkt))).await;
    let cf: Vec<(&str, &str)> = code_form("conf", &code)
        .into_iter()
        .filter(|(k, _)| *k != "client_id")
        .collect();
    let wrong = format!("Basic {}", base64_std("conf:nope"));
    let e = token(
        &op,
        &cf,
        &[&proof(&key, "1", T0, Some(&code))],
        Some(&wrong),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    let right = format!("Basic {}", base64_std("conf:s3cret"));
    let res = token(
        &op,
        &cf,
        &[&proof(&key, "2", T0, Some(&code))],
        Some(&right),
    )
    .await
    .unwrap();
    validate_bound(&op, res.id_token.as_deref().unwrap(), "conf", &jkt, false).await;
    // introspection returns cnf.jkt
    let f = form(&[("token", &res.access_token)]);
    let i = op.p.introspect(Some(&right), &f).await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["cnf"]["jkt"], jkt.as_str());
    assert_eq!(i["token_type"], "DPoP");
}

fn base64_std(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn password_hashes_verify() {
    let h = password::hash("pw");
    assert!(password::verify(&h, "pw"));
    assert!(!password::verify(&h, "pw2"));
    assert!(!password::verify("not a hash", "pw"));
}

#[tokio::test]
async fn login_refuses_wrong_password_and_unknown_user() {
    let op = op().await;
    assert!(op.p.login("alice", "wrong").await.unwrap().is_none());
    assert!(op.p.login("nobody", "wonderland").await.unwrap().is_none());
    let s = op.p.login("alice", "wonderland").await.unwrap().unwrap();
    assert_eq!(s.sub, "sub-alice");
    assert_eq!(s.expires_at, T0 + 8 * 3600);
}

#[test]
fn dummy_hash_costs_a_real_verification() {
    // the constant used for unknown users must parse, or timing would reveal usernames
    assert!(argon2::PasswordHash::new(keybound_op::password::DUMMY_HASH).is_ok());
}

#[tokio::test]
async fn private_key_jwt_client_authentication_with_jti_replay_protection() {
    let op = op().await;
    let ck = keys::es256_b();
    let mut c = client("pkj", ClientAuthMethod::PrivateKeyJwt, Profile::KeyBinding);
    c.secret_hash = None;
    c.jwks = Some(keybound_jose::JwkSet::signing_key(&ck, "ck1"));
    op.p.store().put_client(&c).await.unwrap();
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("pkj", "openid bound_key", Some(&jkt))).await;
    let assertion = |jti: &str, aud: &str| {
        let claims =
            serde_json::json!({"iss":"pkj","sub":"pkj","aud":aud,"jti":jti,"iat":T0,"exp":T0+60});
        let mut h = serde_json::Map::new();
        h.insert("kid".into(), "ck1".into());
        keybound_jose::jws::sign(
            keybound_jose::Algorithm::ES256,
            &h,
            claims.to_string().as_bytes(),
            &ck,
        )
        .unwrap()
    };
    let grant = |a: &str| -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code.clone()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("code_verifier".into(), VERIFIER.into()),
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), a.to_owned()),
        ]
    };
    let run = |pairs: Vec<(String, String)>, jti: &'static str| {
        let p = proof(&key, jti, T0, Some(&code));
        let f = keybound_op::token::Form::from_pairs(pairs).unwrap();
        let op = &op;
        async move {
            op.p.token(TokenRequestFacts {
                form: &f,
                authorization: None,
                dpop: &[&p],
            })
            .await
        }
    };
    // wrong audience
    let e = run(grant(&assertion("a1", "https://elsewhere.example")), "p1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    // signed by a key the client did not register
    let forged = {
        let claims =
            serde_json::json!({"iss":"pkj","sub":"pkj","aud":ISS,"jti":"a2","iat":T0,"exp":T0+60});
        keybound_jose::jws::sign(
            keybound_jose::Algorithm::ES256,
            &serde_json::Map::new(),
            claims.to_string().as_bytes(),
            &key,
        )
        .unwrap()
    };
    assert_eq!(
        run(grant(&forged), "p2").await.unwrap_err().code(),
        ErrorCode::InvalidClient
    );
    // the right assertion works once
    let good = assertion("a3", ISS);
    let res = run(grant(&good), "p3").await.unwrap();
    assert!(res.response.id_token.is_some());
    // and its jti cannot be replayed (fresh code not needed: client auth fails first)
    let e = run(grant(&good), "p4").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    assert!(e.description().contains("replayed"), "{e:?}");
}

#[tokio::test]
async fn key_rotation_publishes_next_and_keeps_retired_for_a_day() {
    let op = op().await;
    let before = op.p.jwks().await.unwrap();
    assert_eq!(before.keys.len(), 2, "current and next");
    let old_kid = op.p.current_key().await.unwrap().kid.clone();
    let next_kid = before
        .keys
        .iter()
        .map(|k| k.kid.clone().unwrap())
        .find(|k| *k != old_kid)
        .unwrap();
    let new_kid = op.p.rotate_signing_keys().await.unwrap();
    assert_eq!(new_kid, next_kid, "the published next key becomes current");
    let after = op.p.jwks().await.unwrap();
    assert_eq!(after.keys.len(), 3, "retired, current, next");
    assert!(after
        .keys
        .iter()
        .any(|k| k.kid.as_deref() == Some(old_kid.as_str())));
    op.advance(keybound_op::RETIRED_KEY_RETENTION + 1);
    op.p.rotate_signing_keys().await.unwrap();
    let later = op.p.jwks().await.unwrap();
    assert!(
        !later
            .keys
            .iter()
            .any(|k| k.kid.as_deref() == Some(old_kid.as_str())),
        "retired over a day ago: gone"
    );
}

/// Clients are cached for `client_cache_ttl` seconds: a client deleted in another process (the
/// admin CLI) is refused once the entry is older than the TTL, and unknown ids are never cached.
#[tokio::test]
async fn client_cache_expires_after_its_ttl_and_zero_disables_it() {
    let op = op().await;
    op.p.validate_authorization(&request("pub", "openid", None))
        .await
        .unwrap();
    assert!(op.p.store().delete_client("pub").await.unwrap());
    // within the TTL the cached registration still answers
    op.advance(4);
    op.p.validate_authorization(&request("pub", "openid", None))
        .await
        .unwrap();
    op.advance(1);
    let Err(e) =
        op.p.validate_authorization(&request("pub", "openid", None))
            .await
    else {
        panic!("a deleted client must be refused after the cache TTL");
    };
    assert_eq!(e.wire().description, "unknown client 'pub'", "{e:?}");

    // a client registered after a miss is found at once: misses are not cached
    op.p.store()
        .put_client(&client("pub", ClientAuthMethod::None, Profile::KeyBinding))
        .await
        .unwrap();
    op.p.validate_authorization(&request("pub", "openid", None))
        .await
        .unwrap();

    let op = op_with(|c| c.client_cache_ttl = 0).await;
    op.p.validate_authorization(&request("pub", "openid", None))
        .await
        .unwrap();
    op.p.store().delete_client("pub").await.unwrap();
    let e =
        op.p.validate_authorization(&request("pub", "openid", None))
            .await
            .unwrap_err();
    match e {
        keybound_op::AuthorizeError::Page(e) => {
            assert_eq!(e.description(), "unknown client 'pub'");
        }
        other @ keybound_op::AuthorizeError::Redirect { .. } => {
            panic!("expected an error page, got {other:?}")
        }
    }
}

/// DP-V10: nonces are in use but not required; a proof carrying a nonce this server did not
/// issue, or one that expired, is refused with `use_dpop_nonce` and a fresh nonce, and the code
/// stays usable for the retry.
#[tokio::test]
async fn dp_v10_unissued_or_expired_nonce_refused_even_when_not_required() {
    let op = op_with(|c| {
        c.dpop_nonces = Some(NonceSource::new(&[9u8; 32], 60, 1).unwrap());
    })
    .await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("pub", "openid bound_key", Some(&jkt))).await;
    let with_nonce = |jti: &str, now: u64, nonce: &str| {
        ProofBuilder::new("POST", &format!("{ISS}/token"), now, jti)
            .c_s256(&code)
            .nonce(nonce)
            .sign(&key)
            .unwrap()
    };
    // a nonce nobody issued
    let e = token(
        &op,
        &code_form("pub", &code),
        &[&with_nonce("n1", T0, "made-up-by-the-client")],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UseDpopNonce, "{e:?}");
    let fresh = e.dpop_nonce().unwrap().to_owned();
    // a nonce this server issued, but long ago (window: 1 step of 60 s, plus one ahead)
    let old = NonceSource::new(&[9u8; 32], 60, 1).unwrap().issue(T0 - 600);
    let e = token(
        &op,
        &code_form("pub", &code),
        &[&with_nonce("n2", T0, &old)],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UseDpopNonce, "{e:?}");
    // the fresh one works, with the same code
    let res = token(
        &op,
        &code_form("pub", &code),
        &[&with_nonce("n3", T0, &fresh)],
        None,
    )
    .await
    .unwrap();
    validate_bound(&op, res.id_token.as_deref().unwrap(), "pub", &jkt, false).await;
}

/// The nonce policy is the same at every endpoint: a client registered with
/// `require_dpop_nonce` must send one at userinfo too.
#[tokio::test]
async fn per_client_nonce_requirement_holds_at_userinfo() {
    let op = op_with(|c| {
        c.dpop_nonces = Some(NonceSource::new(&[9u8; 32], 60, 1).unwrap());
    })
    .await;
    let mut strict = client("strict", ClientAuthMethod::None, Profile::KeyBinding);
    strict.require_dpop_nonce = true;
    op.p.store().put_client(&strict).await.unwrap();
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("strict", "openid bound_key", Some(&jkt))).await;
    let res = redeem_after_nonce(&op, "strict", &code, &key).await;
    let e = op
        .userinfo_dpop(&res.access_token, &key, "s3")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UseDpopNonce, "{e:?}");
    let nonce = e.dpop_nonce().unwrap().to_owned();
    let up = op.userinfo_proof(&res.access_token, &key, "s4", Some(&nonce));
    let info = op
        .userinfo(&format!("DPoP {}", res.access_token), &[&up])
        .await
        .unwrap();
    assert_eq!(info["sub"], "sub-alice");
}

/// A key-bound code for `pub` with `scope`, redeemed with a proof `jti`: the code and the
/// token response.
async fn bound_code_and_tokens(
    op: &TestOp,
    key: &PrivateKey,
    scope: &str,
    jti: &str,
) -> (String, TokenResponse) {
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(op, &request("pub", scope, Some(&jkt))).await;
    let t = token(
        op,
        &code_form("pub", &code),
        &[&proof(key, jti, op.now(), Some(&code))],
        None,
    )
    .await
    .unwrap();
    (code, t)
}

/// A key-bound code redeemed by `pub` with `offline_access`: the token response.
async fn bound_tokens(op: &TestOp, key: &PrivateKey, jti: &str) -> TokenResponse {
    bound_code_and_tokens(op, key, "openid offline_access bound_key", jti)
        .await
        .1
}

/// Issue 10 item 4 (RFC 7009 §2.1): revoking a refresh token revokes the access tokens of its
/// grant too; so does refresh-token reuse detection.
#[tokio::test]
async fn revoking_or_reusing_a_refresh_token_revokes_its_access_tokens() {
    let op = op().await;
    let key = keys::es256_a();
    let t = bound_tokens(&op, &key, "r1").await;
    op.userinfo_dpop(&t.access_token, &key, "u1").await.unwrap();
    let rt = t.refresh_token.unwrap();
    op.p.revoke(None, &form(&[("token", &rt), ("client_id", "pub")]))
        .await
        .unwrap();
    let e = op
        .userinfo_dpop(&t.access_token, &key, "u2")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidToken, "{e:?}");
    // reuse: the thief refreshes first, the victim's old token then trips reuse detection,
    // and the thief's new access token dies with the family
    let t = bound_tokens(&op, &key, "r2").await;
    let old_rt = t.refresh_token.unwrap();
    let refresh = |jti: &'static str, rt: String| {
        let op = &op;
        let key = &key;
        async move {
            token(
                op,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", "pub"),
                ],
                &[&proof(key, jti, op.now(), None)],
                None,
            )
            .await
        }
    };
    let thief = refresh("r3", old_rt.clone()).await.unwrap();
    op.userinfo_dpop(&thief.access_token, &key, "u3")
        .await
        .unwrap();
    let e = refresh("r4", old_rt).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
    let e = op
        .userinfo_dpop(&thief.access_token, &key, "u4")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidToken, "{e:?}");
}

/// Issue 10 item 7: a used code presented by another client is refused, but only its own
/// client's reuse revokes the grant (else any client could kill another's tokens).
#[tokio::test]
async fn another_clients_replay_of_a_used_code_does_not_revoke_the_grant() {
    let op = op().await;
    let key = keys::es256_a();
    let (code, t) = bound_code_and_tokens(&op, &key, "openid bound_key", "w1").await;
    let e = token(
        &op,
        &code_form("old", &code),
        &[&proof(&key, "w2", T0, Some(&code))],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
    op.userinfo_dpop(&t.access_token, &key, "w3")
        .await
        .expect("the right client's tokens survive another client's replay");
}

/// Issue 10 item 10 (RFC 7636 §4.1): a code verifier is 43–128 characters of the unreserved
/// set; a one-character verifier is refused even when its challenge matches.
#[tokio::test]
async fn rfc7636_4_1_short_code_verifier_is_refused() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let mut req = request("pub", "openid bound_key", Some(&jkt));
    req.code_challenge = Some(keybound_jose::sha256_b64(b"a"));
    let (code, _) = authorize(&op, &req).await;
    let mut f = code_form("pub", &code);
    f.retain(|(k, _)| *k != "code_verifier");
    f.push(("code_verifier", "a"));
    let e = token(&op, &f, &[&proof(&key, "v1", T0, Some(&code))], None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant, "{e:?}");
    assert!(e.description().contains("43"), "{e:?}");
}

/// Issue 10 item 11 (RFC 7662 §2.1): introspection needs an authorised caller; a public
/// client's id alone is not.
#[tokio::test]
async fn rfc7662_2_1_public_clients_cannot_introspect() {
    let op = op().await;
    let key = keys::es256_a();
    let t = bound_tokens(&op, &key, "i1").await;
    let e =
        op.p.introspect(
            None,
            &form(&[("token", &t.access_token), ("client_id", "pub")]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient, "{e:?}");
}

/// Issue 10 item 12 (OIDC Core §6): `request` and `request_uri` are refused with their own
/// errors, not silently ignored.
#[tokio::test]
async fn oidc_core_6_request_objects_are_refused_not_ignored() {
    let op = op().await;
    for (param, code) in [
        ("request", ErrorCode::RequestNotSupported),
        ("request_uri", ErrorCode::RequestUriNotSupported),
    ] {
        let mut req = request("pub", "openid", None);
        match param {
            "request" => req.request = Some("eyJhbGciOiJub25lIn0.e30.".into()),
            _ => req.request_uri = Some("https://app.example/req.jwt".into()),
        }
        match op.p.validate_authorization(&req).await {
            Err(e @ keybound_op::AuthorizeError::Redirect { .. }) => {
                assert_eq!(e.code(), Some(code), "{param}");
            }
            other => panic!("{param}: expected a redirect with {code:?}, got {other:?}"),
        }
    }
}

/// Issue 10 item 10 (rfc7523bis): a client assertion's `aud` is the issuer (the token endpoint
/// URL only behind the legacy switch), and its lifetime is bounded (an `exp` ten years ahead is
/// refused).
#[tokio::test]
async fn client_assertion_audience_is_the_issuer_and_lifetime_is_bounded() {
    for legacy in [false, true] {
        let op = op_with(move |c| c.legacy_assertion_audience = legacy).await;
        let ck = keys::es256_b();
        let mut c = client("pkj", ClientAuthMethod::PrivateKeyJwt, Profile::KeyBinding);
        c.secret_hash = None;
        c.jwks = Some(keybound_jose::JwkSet::signing_key(&ck, "ck1"));
        op.p.store().put_client(&c).await.unwrap();
        let assertion = |jti: &str, aud: &str, exp: u64| {
            let claims =
                serde_json::json!({"iss":"pkj","sub":"pkj","aud":aud,"jti":jti,"iat":T0,"exp":exp});
            let mut h = serde_json::Map::new();
            h.insert("kid".into(), "ck1".into());
            keybound_jose::jws::sign(
                keybound_jose::Algorithm::ES256,
                &h,
                claims.to_string().as_bytes(),
                &ck,
            )
            .unwrap()
        };
        let auth = |a: String| {
            let op = &op;
            async move {
                let f = form(&[
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ]);
                op.p.authenticate_client(None, &f).await
            }
        };
        // ten years ahead
        let e = auth(assertion("l1", ISS, T0 + 10 * 365 * 86_400))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidClient);
        assert!(e.description().contains("lifetime"), "{e:?}");
        // the issuer is the audience
        auth(assertion("l2", ISS, T0 + 60)).await.unwrap();
        // the token endpoint URL only with the legacy switch
        let r = auth(assertion("l3", &format!("{ISS}/token"), T0 + 60)).await;
        assert_eq!(r.is_ok(), legacy, "legacy={legacy}: {r:?}");
    }
}

/// Issue 10 item 2: when every hashing turn is taken for longer than `hash_queue_wait`, a
/// further sign-in is refused as busy (429, retry) instead of queueing without bound.
#[tokio::test(flavor = "current_thread")]
async fn issue10_item2_a_full_hash_queue_is_refused_as_busy() {
    let op = std::sync::Arc::new(
        op_with(|c| {
            c.throttle.hash_concurrency = 1;
            c.throttle.hash_queue_wait = 0;
        })
        .await,
    );
    let first = {
        let op = op.clone();
        tokio::spawn(async move { op.p.login_from("alice", "wonderland", None).await })
    };
    tokio::task::yield_now().await; // the first login takes the only hashing thread
                                    // another account (attempts at one account take turns anyway)
    let e = op.p.login_from("mallory", "guess", None).await.unwrap_err();
    assert!(
        matches!(e, OpError::Throttled { retry_after: 1, .. }),
        "{e:?}"
    );
    assert_eq!(e.wire(keybound_op::Endpoint::Page).status, 429);
    assert!(first.await.unwrap().unwrap().is_some());
}

/// Issue 10 item 2: passwords are hashed off the async threads, a bounded number at a time.
/// On a single-threaded runtime a task spawned after eight concurrent logins runs before the
/// last login finishes; with hashing on the async thread every login ran to its end first.
#[tokio::test(flavor = "current_thread")]
async fn issue10_item2_password_hashing_leaves_the_async_threads_free() {
    let op = std::sync::Arc::new(op().await);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut logins = Vec::new();
    for i in 0..8 {
        let (op, done) = (op.clone(), done.clone());
        logins.push(tokio::spawn(async move {
            let source = format!("192.0.2.{i}");
            let r = op.p.login_from("alice", "wonderland", Some(&source)).await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r.map(|s| s.is_some())
        }));
    }
    let seen = {
        let done = done.clone();
        tokio::spawn(async move { done.load(std::sync::atomic::Ordering::SeqCst) })
    };
    let finished_before_other_work = seen.await.unwrap();
    for l in logins {
        assert!(l.await.unwrap().unwrap());
    }
    assert!(
        finished_before_other_work < 8,
        "all {finished_before_other_work} logins hashed before any other task could run"
    );
}

/// Issue 10 item 2 (NIST SP 800-63B §5.2.2): wrong passwords for one account are throttled with
/// an exponential back-off (`Throttled`, answered 429 + `Retry-After`), checked before any
/// hashing; waiting it out works, and another account is not affected. Per source address the
/// same with a higher allowance.
#[tokio::test]
async fn password_guessing_is_throttled_per_account_and_per_address() {
    let op = op().await;
    for _ in 0..5 {
        assert!(op
            .p
            .login_from("alice", "wrong", Some("192.0.2.1"))
            .await
            .unwrap()
            .is_none());
    }
    let e =
        op.p.login_from("alice", "wonderland", Some("192.0.2.1"))
            .await
            .unwrap_err();
    let retry = match &e {
        OpError::Throttled { retry_after, .. } => *retry_after,
        other => panic!("expected throttling, got {other:?}"),
    };
    assert!(retry >= 1, "{e:?}");
    assert_eq!(e.wire(keybound_op::Endpoint::Page).status, 429);
    // another account from another address is not affected
    op.p.store()
        .put_user(&keybound_store::User::new(
            "sub-bob",
            "bob",
            password::hash("builder"),
            T0,
        ))
        .await
        .unwrap();
    assert!(op
        .p
        .login_from("bob", "builder", Some("192.0.2.2"))
        .await
        .unwrap()
        .is_some());
    // after the back-off the right password works (and resets the count)
    op.advance(retry);
    assert!(op
        .p
        .login_from("alice", "wonderland", Some("192.0.2.1"))
        .await
        .unwrap()
        .is_some());
    // one address guessing across many accounts is throttled too
    for i in 0..20 {
        let _ =
            op.p.login_from(&format!("user{i}"), "x", Some("198.51.100.7"))
                .await;
    }
    assert!(matches!(
        op.p.login_from("bob", "builder", Some("198.51.100.7"))
            .await,
        Err(OpError::Throttled { .. })
    ));
}

/// Issue 10 item 3 (RFC 6749 §2.3.1): wrong client secrets are throttled per client id.
#[tokio::test]
async fn client_secret_guessing_is_throttled_per_client() {
    let op = op().await;
    let basic = |secret: &str| format!("Basic {}", base64_std(&format!("conf:{secret}")));
    let f = form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]);
    for _ in 0..5 {
        let e =
            op.p.authenticate_client(Some(&basic("nope")), &f)
                .await
                .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidClient);
    }
    let e =
        op.p.authenticate_client(Some(&basic("s3cret")), &f)
            .await
            .unwrap_err();
    assert!(matches!(e, OpError::Throttled { .. }), "{e:?}");
    assert_eq!(e.wire(keybound_op::Endpoint::Token).status, 429);
}

/// Issue 10 item 5: junk token requests (a garbage refresh token with a valid proof by any key)
/// each leave a replay entry; a purge pass removes them once expired, so the store holds at
/// most what one proof lifetime of traffic leaves. Passes are bounded per call.
#[tokio::test]
async fn issue10_item5_junk_traffic_reaches_a_steady_state() {
    let op = op().await;
    let key = keys::es256_b();
    let junk = |round: u32| {
        let op = &op;
        let key = &key;
        async move {
            for i in 0..300 {
                let p = proof(key, &format!("junk-{round}-{i}"), op.now(), None);
                let e = token(
                    op,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", "garbage"),
                        ("client_id", "pub"),
                    ],
                    &[&p],
                    None,
                )
                .await
                .unwrap_err();
                assert_eq!(e.code(), ErrorCode::InvalidGrant);
            }
        }
    };
    junk(0).await;
    // nothing has expired yet
    assert_eq!(op.p.purge_expired(100, 10).await.unwrap().total(), 0);
    for round in 1..4 {
        op.advance(62); // past the proofs' lifetime (60 s + 1)
        junk(round).await;
        // one bounded pass (2 × 100) leaves the rest to the next
        let first = op.p.purge_expired(100, 2).await.unwrap();
        assert_eq!(first.total(), 200);
        assert!(!first.complete);
        let second = op.p.purge_expired(100, 10).await.unwrap();
        assert_eq!(second.total(), 100, "round {round}: only the expired round");
        assert!(second.complete);
    }
}

/// Issue 10 item 2: concurrent guesses cannot slip past the throttle while earlier ones are
/// being hashed: an attempt counts from the moment it starts, so of twenty simultaneous wrong
/// passwords only the free five are hashed (before, all twenty were).
#[tokio::test(flavor = "current_thread")]
async fn issue10_item2_concurrent_guesses_are_counted_when_they_start() {
    let op = std::sync::Arc::new(op().await);
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move {
                op.p.login_from("alice", &format!("wrong-{i}"), Some("192.0.2.9"))
                    .await
            })
        })
        .collect();
    let (mut hashed, mut throttled) = (0, 0);
    for g in guesses {
        match g.await.unwrap() {
            Ok(None) => hashed += 1,
            Err(OpError::Throttled { .. }) => throttled += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((hashed, throttled), (5, 15));
    // a right password after the back-off resets the account, and the address keeps only the
    // real failures (a right one is taken back)
    op.advance(1);
    assert!(op
        .p
        .login_from("alice", "wonderland", Some("192.0.2.9"))
        .await
        .unwrap()
        .is_some());
}

/// Issue 10 item 3, the other side: a confidential client's concurrent requests with the right
/// secret are never throttled (attempts at one client take turns; only wrong ones count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_right_client_secrets_are_not_throttled() {
    let op = std::sync::Arc::new(op().await);
    let basic = keybound_testkit::op::basic("conf");
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (op, basic) = (op.clone(), basic.clone());
            tokio::spawn(async move {
                token(
                    &op,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", "not-issued"),
                    ],
                    &[],
                    Some(&basic),
                )
                .await
                .unwrap_err()
                .code()
            })
        })
        .collect();
    for r in requests {
        assert_eq!(
            r.await.unwrap(),
            ErrorCode::InvalidGrant,
            "authenticated, then refused the grant"
        );
    }
    // the burst waited its turns behind one argon2 run, not one run each
    assert_eq!(op.p.secret_verifications(), 1);
}

/// A client secret verified once is recognised without argon2 for a while, but only that
/// secret, and only while the registration is unchanged (a new secret voids the old at once
/// the registration is re-read).
#[tokio::test]
async fn recently_verified_client_secrets_are_recognised_only_as_registered() {
    let op = op().await;
    let with = |secret: &str| keybound_testkit::op::basic_auth("conf", secret);
    let attempt = |secret: &'static str| {
        let op = &op;
        let auth = with(secret);
        async move {
            token(
                op,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "not-issued"),
                ],
                &[],
                Some(&auth),
            )
            .await
            .unwrap_err()
            .code()
        }
    };
    assert_eq!(attempt("s3cret").await, ErrorCode::InvalidGrant);
    assert_eq!(
        attempt("s3cret").await,
        ErrorCode::InvalidGrant,
        "recognised"
    );
    assert_eq!(attempt("s3cret-not").await, ErrorCode::InvalidClient);
    let rotated = keybound_store::Client {
        secret_hash: Some(password::hash("n3w-secret")),
        ..client(
            "conf",
            ClientAuthMethod::ClientSecretBasic,
            Profile::KeyBinding,
        )
    };
    op.store.put_client(&rotated).await.unwrap();
    op.advance(6); // past the client cache
    assert_eq!(
        attempt("s3cret").await,
        ErrorCode::InvalidClient,
        "the old secret is void"
    );
    assert_eq!(attempt("n3w-secret").await, ErrorCode::InvalidGrant);
}

/// Token Bound Authentication (issue 22 item 4): a refreshed ID Token keeps the `cnf.tbh` the
/// grant's first one had — an RP whose policy is `required` must not see a refresh as a
/// downgrade (the refresh token's record carries the binding).
#[tokio::test]
async fn tba_refreshed_id_token_keeps_cnf_tbh() {
    let op = op().await;
    let tbh = "suMuxh_IlrP-Zrj33LuQOQ5rX039cmBe-wt2df3BrUQ";
    let key = keys::es256_a();
    let req = request("pub", "openid offline_access", None);
    let mut v = op.p.validate_authorization(&req).await.unwrap();
    v.tbh = Some(tbh.to_owned());
    let session = op.p.login("alice", "wonderland").await.unwrap().unwrap();
    op.p.record_consent(&v, &session.sub).await.unwrap();
    let url = op.p.issue_code(&v, &session).await.unwrap().url().unwrap();
    let code = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let cnf_tbh = |id_token: &str| -> Option<String> {
        let claims: serde_json::Value = keybound_jose::Jws::parse(id_token)
            .unwrap()
            .payload_json()
            .unwrap();
        claims["cnf"]["tbh"].as_str().map(str::to_owned)
    };
    let p = proof(&key, "tb1", T0, Some(&code));
    let first = token(&op, &code_form("pub", &code), &[&p], None)
        .await
        .unwrap();
    assert_eq!(
        cnf_tbh(first.id_token.as_deref().unwrap()).as_deref(),
        Some(tbh)
    );
    let rt = first.refresh_token.unwrap();
    let p = proof(&key, "tb2", T0, None);
    let refreshed = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", "pub"),
        ],
        &[&p],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        cnf_tbh(refreshed.id_token.as_deref().unwrap()).as_deref(),
        Some(tbh),
        "the refreshed ID Token keeps the binding"
    );
}

/// The `aud` of an access token this provider issued (its signature is userinfo's business).
fn access_aud(access_token: &str) -> serde_json::Value {
    let claims: serde_json::Value = keybound_jose::Jws::parse(access_token)
        .unwrap()
        .payload_json()
        .unwrap();
    claims["aud"].clone()
}

/// RFC 8707 / RFC 9068 §3 (issue 22 item 4): a `resource` in the token request becomes the
/// access token's `aud`; the resources a client may use are registered and any other is
/// `invalid_target` (before the code is consumed); several give an array; a refresh may name
/// its own. The provider's userinfo checks `aud` like any resource server: a token for an API
/// is not a token for userinfo.
#[tokio::test]
async fn rfc8707_resource_becomes_the_access_tokens_audience() {
    const API: &str = "https://api.example/";
    const ORDERS: &str = "https://orders.example/";
    let op = OpBuilder::new()
        .client(Client {
            resources: vec![API.into(), ORDERS.into()],
            ..keybound_testkit::op::public_client("rs")
        })
        .build()
        .await;
    let key = keys::es256_a();
    let req = request("rs", "openid offline_access", None);
    let (code, _) = authorize(&op, &req).await;
    let redeem = |extra: Vec<(&'static str, &'static str)>, jti: &'static str| {
        let op = &op;
        let code = code.clone();
        let key = &key;
        async move {
            let mut f = code_form("rs", &code);
            f.extend(extra);
            let p = proof(key, jti, T0, Some(&code));
            token(op, &f, &[&p], None).await
        }
    };
    for (resource, says) in [
        ("https://elsewhere.example/", "not registered"),
        ("api.example", "absolute URI"),
        ("https://api.example/#frag", "absolute URI"),
    ] {
        let e = redeem(vec![("resource", resource)], resource).await;
        let e = e.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidTarget, "{resource}");
        assert!(e.description().contains(says), "{e:?}");
    }
    // the code survived the refusals; two resources make an array
    let t = redeem(vec![("resource", API), ("resource", ORDERS)], "r-ok")
        .await
        .unwrap();
    assert_eq!(
        access_aud(&t.access_token),
        serde_json::json!([API, ORDERS])
    );
    let e = op
        .userinfo_dpop(&t.access_token, &key, "u-api")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidToken);
    assert!(e.description().contains("aud"), "{e:?}");
    // a refresh names its own resource; without one, the token is for this provider
    let rt = t.refresh_token.unwrap();
    let refresh = |resource: Option<&'static str>, jti: &'static str| {
        let op = &op;
        let key = &key;
        let rt = rt.clone();
        async move {
            let mut f = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", "rs"),
            ];
            if let Some(r) = resource {
                f.push(("resource", r));
            }
            let p = proof(key, jti, T0, None);
            token(op, &f, &[&p], None)
                .await
                .map(|t| (t.access_token, t.refresh_token.unwrap_or_default()))
        }
    };
    let e = refresh(Some("https://elsewhere.example/"), "f-bad").await;
    assert_eq!(e.unwrap_err().code(), ErrorCode::InvalidTarget);
    let (at, _) = refresh(Some(ORDERS), "f-ok").await.unwrap();
    assert_eq!(access_aud(&at), serde_json::json!(ORDERS));
}

/// RFC 8707 without a resource: the access token is for this provider, and userinfo takes it.
#[tokio::test]
async fn rfc8707_no_resource_is_a_token_for_this_provider() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let (code, _) = authorize(&op, &request("pub", "openid bound_key", Some(&jkt))).await;
    let p = proof(&key, "n1", T0, Some(&code));
    let t = token(&op, &code_form("pub", &code), &[&p], None)
        .await
        .unwrap();
    assert_eq!(access_aud(&t.access_token), serde_json::json!(ISS));
    assert!(op.userinfo_dpop(&t.access_token, &key, "n-u").await.is_ok());
}

/// Issue 26 item 3 (RFC 7591 §2 `grant_types`, RFC 6749 §5.2 `unauthorized_client`): a client
/// uses only the grants it registered — one registered for `authorization_code` alone gets no
/// refresh token for `offline_access`, cannot refresh, and gets no device code; one registered
/// for jwt-bearer alone gets no device code either.
#[tokio::test]
async fn registered_grant_types_are_enforced() {
    let op = OpBuilder::new()
        .client(Client {
            grant_types: vec!["authorization_code".into()],
            ..keybound_testkit::op::public_client("code-only")
        })
        .client(Client {
            grant_types: Vec::new(),
            jwt_bearer: true,
            ..keybound_testkit::op::client("redeemer", ClientAuthMethod::ClientSecretBasic)
        })
        .build()
        .await;
    let key = keys::es256_a();
    let (code, _) = authorize(&op, &request("code-only", "openid offline_access", None)).await;
    let p = proof(&key, "g1", T0, Some(&code));
    let t = token(&op, &code_form("code-only", &code), &[&p], None)
        .await
        .unwrap();
    assert!(
        t.refresh_token.is_none(),
        "no refresh_token grant, no refresh token"
    );
    let p = proof(&key, "g2", T0, None);
    let e = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "any"),
            ("client_id", "code-only"),
        ],
        &[&p],
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnauthorizedClient, "{e:?}");
    assert!(
        e.description().contains("grant_type 'refresh_token'"),
        "{e:?}"
    );
    for (client, auth) in [
        ("code-only", None),
        ("redeemer", Some(keybound_testkit::op::basic("redeemer"))),
    ] {
        let f = form(&[("client_id", client), ("scope", "openid")]);
        let e =
            op.p.device_authorization(keybound_op::DeviceRequestFacts {
                form: &f,
                authorization: auth.as_deref(),
                dpop: &[],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnauthorizedClient, "{client}: {e:?}");
    }
}

/// Issue 25 item 1 (ARCHITECTURE.md §3.3): twins of one request — the same proof and code,
/// sent at once, as by whoever captured them — one is served, the others are refused as
/// replays, and the grant is never revoked as if the code had been reused. The proof is looked
/// up before the code and recorded by the write that consumes it, so a twin that finds the code
/// used is told apart by its recorded proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_of_one_request_are_replays_never_reuse() {
    let op = std::sync::Arc::new(op().await);
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    for round in 0..20 {
        let req = request("pub", "openid offline_access bound_key", Some(&jkt));
        let (code, _) = authorize(&op, &req).await;
        let twin = proof(&key, &format!("twin-{round}"), T0, Some(&code));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (op, code, twin) = (op.clone(), code.clone(), twin.clone());
                tokio::spawn(
                    async move { token(&op, &code_form("pub", &code), &[&twin], None).await },
                )
            })
            .collect();
        let mut served = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => served.push(r),
                Err(e) => assert!(
                    e.description().contains("replayed"),
                    "round {round}: a twin refused for another reason: {e:?}"
                ),
            }
        }
        assert_eq!(served.len(), 1, "round {round}: one twin is served");
        // the grant lives: its refresh token still rotates
        let rt = served[0].refresh_token.clone().unwrap();
        token(
            &op,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", "pub"),
            ],
            &[&proof(&key, &format!("twin-refresh-{round}"), T0, None)],
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("round {round}: the grant was revoked: {e:?}"));
    }
}
