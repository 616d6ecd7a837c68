//! The FAPI 2.0 Security Profile (issue 23 item 6): a FAPI 2.0 client's whole flow — PAR,
//! PKCE, `private_key_jwt`, DPoP and Key Binding's `bound_key` — works end to end, and each
//! relaxation of the profile is refused with the clause it breaks.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{Algorithm, JwkSet, PrivateKey};
use keybound_op::par::authorization_request;
use keybound_op::{check_client, AuthorizeError, OpError, TokenRequestFacts};
use keybound_proto::dpop::ProofBuilder;
use keybound_proto::wire::{ErrorCode, TokenResponse};
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{
    alice, authorization_request as request, basic, client, OpBuilder, TestOp, ISS, REDIRECT,
    VERIFIER,
};
use serde_json::json;

/// The client's own signing key (for `private_key_jwt`), not the DPoP key.
fn client_key() -> PrivateKey {
    keys::es256_b()
}

fn fapi_client(id: &str) -> Client {
    Client {
        secret_hash: None,
        jwks: Some(JwkSet::signing_key(&client_key(), "ck1")),
        fapi2: true,
        ..client(id, ClientAuthMethod::PrivateKeyJwt)
    }
}

async fn op(configure: impl FnOnce(&mut keybound_op::OpConfig) + Send + 'static) -> TestOp {
    OpBuilder::new()
        .client(fapi_client("fapi"))
        .client(Client {
            secret_hash: None,
            jwks: Some(JwkSet::signing_key(&client_key(), "ck1")),
            ..client("pkj", ClientAuthMethod::PrivateKeyJwt)
        })
        .client(client("basic", ClientAuthMethod::ClientSecretBasic))
        .user(alice())
        .configure(configure)
        .build()
        .await
}

/// `client_assertion` fields for `client_id` (a fresh `jti`).
fn assertion(op: &TestOp, client_id: &str) -> Vec<(String, String)> {
    let now = op.now();
    let claims = json!({"iss": client_id, "sub": client_id, "aud": ISS,
        "jti": keybound_jose::random_b64(12), "iat": now, "exp": now + 60});
    let mut h = serde_json::Map::new();
    h.insert("kid".into(), "ck1".into());
    let a = keybound_jose::jws::sign(
        Algorithm::ES256,
        &h,
        claims.to_string().as_bytes(),
        &client_key(),
    )
    .unwrap();
    vec![
        (
            "client_assertion_type".into(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ),
        ("client_assertion".into(), a),
    ]
}

fn pairs(req: &keybound_proto::wire::AuthorizationRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(&serde_urlencoded::to_string(req).unwrap()).unwrap()
}

/// Push `req` as `client_id` with `private_key_jwt` (or `authorization`), the proof by `dpop`.
async fn push(
    op: &TestOp,
    client_id: &str,
    req: &keybound_proto::wire::AuthorizationRequest,
    authorization: Option<&str>,
) -> Result<String, OpError> {
    let mut all = pairs(req);
    if authorization.is_none() {
        all.extend(assertion(op, client_id));
    }
    let f = keybound_op::Form::from_pairs(all.clone()).unwrap();
    op.p.push_authorization(
        TokenRequestFacts {
            form: &f,
            authorization,
            dpop: &[],
        },
        all,
    )
    .await
    .map(|p| p.request_uri)
}

/// Use the pushed request: validate, sign in, consent, issue; the code (the response's `iss`,
/// §5.3.2.2-9, is checked by the router tests of RFC 9207).
async fn code_by_reference(op: &TestOp, client_id: &str, request_uri: &str) -> String {
    let params =
        op.p.take_pushed_request(request_uri, client_id)
            .await
            .unwrap();
    let v =
        op.p.validate_pushed_authorization(&authorization_request(&params).unwrap())
            .await
            .unwrap();
    op.code_for(&v).await
}

/// Redeem `code` with `private_key_jwt` and, when given, a proof by `key` over it.
async fn redeem(
    op: &TestOp,
    client_id: &str,
    code: &str,
    key: Option<&PrivateKey>,
) -> Result<TokenResponse, OpError> {
    let mut all: Vec<(String, String)> = vec![
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("code_verifier".into(), VERIFIER.into()),
    ];
    all.extend(assertion(op, client_id));
    let proof = key.map(|k| {
        ProofBuilder::new(
            "POST",
            &op.p.config.endpoints.token,
            op.now(),
            &keybound_jose::random_b64(12),
        )
        .c_s256(code)
        .sign(k)
        .unwrap()
    });
    let dpop: Vec<&str> = proof.iter().map(String::as_str).collect();
    op.p.token(TokenRequestFacts {
        form: &keybound_op::Form::from_pairs(all).unwrap(),
        authorization: None,
        dpop: &dpop,
    })
    .await
    .map(|s| s.response)
}

/// The whole flow under the profile: PAR (with `private_key_jwt`), PKCE S256, `bound_key` with
/// `dpop_jkt`, the code (60 s at most even with a longer `code_ttl`), redeemed with
/// `private_key_jwt` and a DPoP proof: a DPoP-bound access token and a key-bound ID Token.
#[tokio::test]
async fn fapi2_whole_flow_with_key_binding() {
    let op = op(|c| c.code_ttl = 600).await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let uri = push(
        &op,
        "fapi",
        &request("fapi", "openid bound_key", Some(&jkt)),
        None,
    )
    .await
    .unwrap();
    let code = code_by_reference(&op, "fapi", &uri).await;
    op.advance(61);
    let late = redeem(&op, "fapi", &code, Some(&key)).await.unwrap_err();
    assert_eq!(
        late.code(),
        ErrorCode::InvalidGrant,
        "§5.3.2.2-8: 60 s at most"
    );

    let uri = push(
        &op,
        "fapi",
        &request("fapi", "openid bound_key", Some(&jkt)),
        None,
    )
    .await
    .unwrap();
    let code = code_by_reference(&op, "fapi", &uri).await;
    let t = redeem(&op, "fapi", &code, Some(&key)).await.unwrap();
    assert_eq!(t.token_type, "DPoP");
    let id = keybound_jose::Jws::parse(t.id_token.as_deref().unwrap()).unwrap();
    assert_eq!(id.header().typ.as_deref(), Some("dpop+id_token"));
}

/// Each relaxation is refused, naming the profile: a direct (unpushed) request, another
/// response type, no PKCE, a redemption without DPoP, a client authenticating otherwise
/// (server-wide profile), a FAPI 2.0 registration with another method or response type.
#[tokio::test]
async fn fapi2_each_relaxation_is_refused() {
    let op = op(|_| {}).await;
    let names_profile = |e: &AuthorizeError| {
        assert!(e.wire().description.contains("FAPI 2.0"), "{e:?}");
    };
    // not pushed
    let e =
        op.p.validate_authorization(&request("fapi", "openid", None))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidRequest));
    names_profile(&e);
    // pushed, but response_type "code id_token", or without PKCE
    let hybrid = keybound_proto::wire::AuthorizationRequest {
        response_type: "code id_token".into(),
        ..request("fapi", "openid", None)
    };
    let e = push(&op, "fapi", &hybrid, None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedResponseType, "{e:?}");
    let no_pkce = keybound_proto::wire::AuthorizationRequest {
        code_challenge: None,
        code_challenge_method: None,
        ..request("fapi", "openid", None)
    };
    let e = push(&op, "fapi", &no_pkce, None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest, "{e:?}");
    assert!(e.description().contains("PKCE"), "{e:?}");
    // redeemed without DPoP: no Bearer token under the profile
    let uri = push(&op, "fapi", &request("fapi", "openid", None), None)
        .await
        .unwrap();
    let code = code_by_reference(&op, "fapi", &uri).await;
    let e = redeem(&op, "fapi", &code, None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidDpopProof);
    assert!(e.description().contains("FAPI 2.0"), "{e:?}");

    // server-wide: a client_secret_basic client is refused at PAR and at the token endpoint
    let everyone = op_fapi_everywhere().await;
    let e = push(
        &everyone,
        "basic",
        &request("basic", "openid", None),
        Some(&basic("basic")),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    assert!(e.description().contains("private_key_jwt"), "{e:?}");
    // and a private_key_jwt client is held to it too (not pushed)
    let e = everyone
        .p
        .validate_authorization(&request("pkj", "openid", None))
        .await
        .unwrap_err();
    names_profile(&e);

    // registration within the profile
    assert!(check_client(&fapi_client("ok")).is_ok());
    assert!(check_client(&Client {
        fapi2: true,
        ..client("s", ClientAuthMethod::ClientSecretBasic)
    })
    .is_err());
    assert!(check_client(&Client {
        response_types: vec!["code".into(), "code id_token".into()],
        redirect_uris: vec!["https://app.example/cb".into()],
        ..fapi_client("h")
    })
    .is_err());
}

async fn op_fapi_everywhere() -> TestOp {
    op(|c| c.fapi2 = true).await
}
