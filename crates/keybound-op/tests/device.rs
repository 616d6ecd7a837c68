//! The device flow decisions (RFC 8628 + Key Binding §4) with a fixed clock: every refusal the
//! issue lists, and a key-bound ID Token at the end.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::PrivateKey;
use keybound_op::{normalize_user_code, DeviceRequestFacts, OpError, TokenRequestFacts};
use keybound_proto::dpop::ProofBuilder;
use keybound_proto::idtoken::{self, BindingRequirement, IdTokenChecks};
use keybound_proto::wire::{DeviceAuthorizationResponse, ErrorCode, TokenResponse};
use keybound_store::{BrowserSession, Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{form, OpBuilder, TestOp, CLIENT_SECRET, ISS, T0};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The TV: a public client, named for the consent page.
fn tv() -> Client {
    Client {
        name: "Living Room TV".into(),
        redirect_uris: vec![],
        ..keybound_testkit::op::public_client("tv")
    }
}

async fn op() -> TestOp {
    OpBuilder::new().client(tv()).build().await
}

async fn device_auth(
    op: &TestOp,
    f: &keybound_op::Form,
    dpop: &[&str],
) -> Result<DeviceAuthorizationResponse, OpError> {
    op.p.device_authorization(DeviceRequestFacts {
        form: f,
        authorization: None,
        dpop,
    })
    .await
}

async fn start(op: &TestOp, key: &PrivateKey) -> DeviceAuthorizationResponse {
    let jkt = key.public_jwk().thumbprint();
    let f = form(&[
        ("client_id", "tv"),
        ("scope", "openid profile bound_key"),
        ("dpop_jkt", jkt.as_str()),
        ("nonce", "n-dev"),
    ]);
    device_auth(op, &f, &[]).await.unwrap()
}

fn session() -> BrowserSession {
    BrowserSession {
        sub: "alice".into(),
        auth_time: T0,
        amr: vec!["pwd".into()],
        created_at: T0,
        expires_at: T0 + 3600,
        fresh_for: None,
        sid: "sid-d".into(),
        clients: Vec::new(),
        dbsc: None,
    }
}

async fn approve(op: &TestOp, user_code: &str, yes: bool) {
    let (hash, _, client) = op.p.device_lookup(user_code).await.unwrap().unwrap();
    assert_eq!(client.name, "Living Room TV");
    assert!(op.p.device_decide(&hash, &session(), yes).await.unwrap());
}

async fn poll(
    op: &TestOp,
    device_code: &str,
    proof: Option<&str>,
) -> Result<TokenResponse, OpError> {
    let f = form(&[
        ("grant_type", GRANT),
        ("device_code", device_code),
        ("client_id", "tv"),
    ]);
    let d: Vec<&str> = proof.into_iter().collect();
    op.p.token(TokenRequestFacts {
        form: &f,
        authorization: None,
        dpop: &d,
    })
    .await
    .map(|s| s.response)
}

fn proof(op: &TestOp, key: &PrivateKey, jti: &str, code: Option<&str>) -> String {
    let b = ProofBuilder::new(
        "POST",
        &format!("{ISS}/token"),
        keybound_op::Clock::now(&*op.clock),
        jti,
    );
    match code {
        Some(c) => b.c_s256(c),
        None => b,
    }
    .sign(key)
    .unwrap()
}

#[tokio::test]
async fn device_authorization_response_shape() {
    let op = op().await;
    let r = start(&op, &keys::es256_a()).await;
    assert_eq!(r.user_code.len(), 9);
    assert_eq!(&r.user_code[4..5], "-");
    assert!(normalize_user_code(&r.user_code).is_some());
    assert_eq!(r.verification_uri, format!("{ISS}/device"));
    assert!(r.verification_uri_complete.unwrap().ends_with(&r.user_code));
    assert_eq!((r.expires_in, r.interval), (600, Some(5)));
    assert!(r.device_code.len() >= 43);
    // case, spaces and dashes are ignored when typed
    assert_eq!(normalize_user_code(" bcdf-ghjk "), Some("BCDFGHJK".into()));
    assert_eq!(
        normalize_user_code("BCDF GHJA"),
        None,
        "vowels are not in the alphabet"
    );
}

#[tokio::test]
async fn full_device_flow_gives_a_key_bound_id_token_once() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let r = start(&op, &key).await;
    let e = poll(
        &op,
        &r.device_code,
        Some(&proof(&op, &key, "p1", Some(&r.device_code))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthorizationPending);
    approve(&op, &r.user_code, true).await;
    op.clock.advance(5);
    let t = poll(
        &op,
        &r.device_code,
        Some(&proof(&op, &key, "p2", Some(&r.device_code))),
    )
    .await
    .unwrap();
    assert_eq!(t.token_type, "DPoP");
    assert!(t.refresh_token.is_none(), "no offline_access asked");
    let jwks = op.p.jwks().await.unwrap();
    let auds = vec!["tv".to_owned()];
    let checks = IdTokenChecks {
        nonce: Some("n-dev"),
        binding: BindingRequirement::Bound {
            expected_jkt: Some(&jkt),
            accept_draft00: false,
        },
        ..IdTokenChecks::new(ISS, &auds, T0 + 5)
    };
    let id = idtoken::validate(t.id_token.as_deref().unwrap(), &jwks, &checks).unwrap();
    assert_eq!(id.typ.as_deref(), Some("dpop+id_token"));
    // how the End-User signed in on the verification page (RFC 8176)
    assert_eq!(id.claims.acr.as_deref(), Some("urn:keybound:acr:pwd"));
    assert_eq!(id.claims.amr.as_deref(), Some(&["pwd".to_owned()][..]));
    assert_eq!(id.claims.sub, "alice");
    // a second redemption after success is refused and revokes what was issued: the access
    // token from the first redemption no longer works at userinfo
    op.clock.advance(5);
    let e = poll(
        &op,
        &r.device_code,
        Some(&proof(&op, &key, "p3", Some(&r.device_code))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
    assert!(e.description().contains("revoked"), "{e:?}");
    let e = op
        .userinfo_dpop(&t.access_token, &key, "u-after")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidToken);
    assert_eq!(e.description(), "access token was revoked");
}

#[tokio::test]
async fn device_poll_refusals() {
    let op = op().await;
    let key = keys::es256_a();
    let r = start(&op, &key).await;
    let other = start(&op, &key).await;
    let dc = r.device_code.as_str();
    // without a proof, by another key, without c_s256, with c_s256 over another device code
    assert_eq!(
        poll(&op, dc, None).await.unwrap_err().code(),
        ErrorCode::InvalidDpopProof
    );
    assert_eq!(
        poll(&op, dc, Some(&proof(&op, &keys::es256_b(), "a", Some(dc))))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidGrant
    );
    assert_eq!(
        poll(&op, dc, Some(&proof(&op, &key, "b", None)))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidDpopProof
    );
    let e = poll(
        &op,
        dc,
        Some(&proof(&op, &key, "c", Some(&other.device_code))),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidDpopProof);
    assert!(e.description().contains("c_s256"));
    // none of those counted as a poll; now poll, then too fast: slow_down, and the interval is
    // really 5 s longer afterwards
    assert_eq!(
        poll(&op, dc, Some(&proof(&op, &key, "d", Some(dc))))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::AuthorizationPending
    );
    op.clock.advance(2);
    let e = poll(&op, dc, Some(&proof(&op, &key, "e", Some(dc))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SlowDown);
    assert!(e.description().contains("10 s"), "{e:?}");
    op.clock.advance(8); // 8 s since the last poll: still under 10
    assert_eq!(
        poll(&op, dc, Some(&proof(&op, &key, "f", Some(dc))))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::SlowDown
    );
    op.clock.advance(15);
    assert_eq!(
        poll(&op, dc, Some(&proof(&op, &key, "g", Some(dc))))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::AuthorizationPending
    );
    // deny
    approve(&op, &other.user_code, false).await;
    let oc = other.device_code.as_str();
    assert_eq!(
        poll(&op, oc, Some(&proof(&op, &key, "h", Some(oc))))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::AccessDenied
    );
    // expiry, with the fixed clock
    op.clock.advance(600);
    assert_eq!(
        poll(&op, dc, Some(&proof(&op, &key, "i", Some(dc))))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::ExpiredToken
    );
    // a wrong user code finds nothing
    assert!(op.p.device_lookup("BCDF-GHJK").await.unwrap().is_none());
    assert!(op.p.device_lookup("not a code").await.unwrap().is_none());
}

#[tokio::test]
async fn device_endpoint_key_rules() {
    let op = op().await;
    let key = keys::es256_a();
    // bound_key without a key
    let f = form(&[("client_id", "tv"), ("scope", "openid bound_key")]);
    let e = device_auth(&op, &f, &[]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    // a proof at the device endpoint names the key; with a different dpop_jkt it is refused
    let p = ProofBuilder::new("POST", &format!("{ISS}/device_authorization"), T0, "dp1")
        .sign(&key)
        .unwrap();
    let f = form(&[("client_id", "tv"), ("scope", "openid bound_key")]);
    let r = device_auth(&op, &f, &[&p]).await.unwrap();
    assert!(!r.device_code.is_empty());
    let p = ProofBuilder::new("POST", &format!("{ISS}/device_authorization"), T0, "dp2")
        .sign(&key)
        .unwrap();
    let other = keys::es256_b().public_jwk().thumbprint();
    let f = form(&[
        ("client_id", "tv"),
        ("scope", "openid bound_key"),
        ("dpop_jkt", other.as_str()),
    ]);
    let e = device_auth(&op, &f, &[&p]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
}

/// The nonce policy is the same at every endpoint: with nonces required, a proof at the device
/// authorization endpoint needs one too.
#[tokio::test]
async fn device_authorization_proof_follows_the_nonce_policy() {
    let op = OpBuilder::new()
        .nonces()
        .configure(|c| c.require_dpop_nonce = true)
        .client(tv())
        .build()
        .await;
    let key = keys::es256_a();
    let f = form(&[("client_id", "tv"), ("scope", "openid bound_key")]);
    let p = ProofBuilder::new("POST", &format!("{ISS}/device_authorization"), T0, "dn1")
        .sign(&key)
        .unwrap();
    let e = device_auth(&op, &f, &[&p]).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UseDpopNonce, "{e:?}");
    let nonce = e.dpop_nonce().unwrap().to_owned();
    let p = ProofBuilder::new("POST", &format!("{ISS}/device_authorization"), T0, "dn2")
        .nonce(&nonce)
        .sign(&key)
        .unwrap();
    let r = device_auth(&op, &f, &[&p]).await.unwrap();
    assert!(!r.device_code.is_empty());
}

/// DP-T6: a confidential client's refresh token outside Key Binding is not bound to the DPoP
/// key, by the same rule as the code grant (docs/decisions.md).
#[tokio::test]
async fn dp_t6_device_grant_binds_refresh_tokens_like_the_code_grant() {
    let op = op().await;
    op.p.store()
        .put_client(&keybound_testkit::op::client(
            "kiosk",
            ClientAuthMethod::ClientSecretPost,
        ))
        .await
        .unwrap();
    let key = keys::es256_a();
    let creds = [("client_id", "kiosk"), ("client_secret", CLIENT_SECRET)];
    // plain DPoP (dpop_jkt, no bound_key) with offline_access
    let jkt = key.public_jwk().thumbprint();
    let mut pairs = creds.to_vec();
    pairs.extend([
        ("scope", "openid offline_access"),
        ("dpop_jkt", jkt.as_str()),
    ]);
    let f = form(&pairs);
    let r = device_auth(&op, &f, &[]).await.unwrap();
    let (hash, _, _) = op.p.device_lookup(&r.user_code).await.unwrap().unwrap();
    assert!(op.p.device_decide(&hash, &session(), true).await.unwrap());
    let mut pairs = creds.to_vec();
    pairs.extend([
        ("grant_type", GRANT),
        ("device_code", r.device_code.as_str()),
    ]);
    let f = form(&pairs);
    let p = proof(&op, &key, "k1", None);
    let t =
        op.p.token(TokenRequestFacts {
            form: &f,
            authorization: None,
            dpop: &[&p],
        })
        .await
        .unwrap()
        .response;
    assert_eq!(t.token_type, "DPoP", "the access token is DPoP-bound");
    let rt = t.refresh_token.unwrap();
    let mut pairs = creds.to_vec();
    pairs.push(("token", rt.as_str()));
    let info = op.p.introspect(None, &form(&pairs)).await.unwrap();
    assert_eq!(info["active"], true);
    assert!(
        info.get("cnf").is_none(),
        "DP-T6: a confidential client's refresh token outside Key Binding is unbound: {info}"
    );
}
