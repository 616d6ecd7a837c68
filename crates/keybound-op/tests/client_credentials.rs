//! RFC 6749 §4.4, the client credentials grant, with DPoP (RFC 9449 §5) and resource indicators
//! (RFC 8707): issue 23 item 1. Every refusal with its error code.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::PrivateKey;
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::wire::{grant_type, ErrorCode, TokenResponse};
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{basic, client, form, OpBuilder, TestOp, CLIENT_SECRET};

const API: &str = "https://api.example/";

/// A confidential client of the grant, with scopes `orders.read orders.write` and [`API`].
fn machine(id: &str, method: ClientAuthMethod) -> Client {
    Client {
        grant_types: vec![grant_type::CLIENT_CREDENTIALS.to_owned()],
        scopes: vec!["orders.read".into(), "orders.write".into()],
        resources: vec![API.into()],
        ..client(id, method)
    }
}

async fn op() -> TestOp {
    OpBuilder::new()
        .client(machine("m2m", ClientAuthMethod::ClientSecretBasic))
        .client(machine("m2m-post", ClientAuthMethod::ClientSecretPost))
        .client(Client {
            dpop_bound_access_tokens: true,
            ..machine("m2m-dpop", ClientAuthMethod::ClientSecretBasic)
        })
        .client(client("code-only", ClientAuthMethod::ClientSecretBasic))
        .client(Client {
            grant_types: vec![grant_type::CLIENT_CREDENTIALS.to_owned()],
            ..client("public", ClientAuthMethod::None)
        })
        .build()
        .await
}

async fn token(
    op: &TestOp,
    authorization: Option<&str>,
    fields: &[(&str, &str)],
    key: Option<&PrivateKey>,
) -> Result<TokenResponse, OpError> {
    let p = key.map(|k| op.token_proof(k));
    let dpop: Vec<&str> = p.iter().map(String::as_str).collect();
    let mut all = vec![("grant_type", grant_type::CLIENT_CREDENTIALS)];
    all.extend_from_slice(fields);
    op.p.token(TokenRequestFacts {
        form: &form(&all),
        authorization,
        dpop: &dpop,
    })
    .await
    .map(|s| s.response)
}

async fn introspect(op: &TestOp, client: &str, token: &str) -> serde_json::Value {
    op.p.introspect(Some(&basic(client)), &form(&[("token", token)]))
        .await
        .unwrap()
}

/// RFC 6749 §4.4.3, RFC 9449 §5: a DPoP-bound access token for the client itself, with every
/// registered scope when none is asked for; no refresh token, no ID Token; introspection shows
/// `cnf.jkt`, the client as `client_id` and as `sub` (RFC 9068 §2.2), no `auth_time`.
#[tokio::test]
async fn rfc6749_4_4_dpop_bound_token_for_the_client_itself() {
    let op = op().await;
    let key = keys::es256_a();
    let t = token(&op, Some(&basic("m2m")), &[], Some(&key))
        .await
        .unwrap();
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(t.scope.as_deref(), Some("orders.read orders.write"));
    assert!(t.refresh_token.is_none() && t.id_token.is_none());
    let i = introspect(&op, "m2m", &t.access_token).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "m2m");
    assert_eq!(i["sub"], "m2m");
    assert_eq!(i["cnf"]["jkt"], key.public_jwk().thumbprint().to_string());
    assert!(i.get("auth_time").is_none(), "{i}");
    // another client learns nothing about it
    assert_eq!(
        introspect(&op, "m2m-dpop", &t.access_token).await["active"],
        false
    );
}

/// Without a proof: a Bearer token; `scope` narrows; `resource` becomes `aud` (RFC 8707).
#[tokio::test]
async fn rfc6749_4_4_bearer_narrowed_scope_and_resource() {
    let op = op().await;
    let t = token(
        &op,
        Some(&basic("m2m")),
        &[("scope", "orders.read"), ("resource", API)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.scope.as_deref(), Some("orders.read"));
    let i = introspect(&op, "m2m", &t.access_token).await;
    assert_eq!(i["aud"], API);
    assert!(i.get("cnf").is_none());
}

/// `client_secret_post` and `private_key_jwt` authenticate this grant like any other.
#[tokio::test]
async fn rfc6749_4_4_client_secret_post_and_private_key_jwt() {
    let op = op().await;
    let t = token(
        &op,
        None,
        &[("client_id", "m2m-post"), ("client_secret", CLIENT_SECRET)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(t.scope.as_deref(), Some("orders.read orders.write"));

    let ck = keys::es256_b();
    let c = Client {
        secret_hash: None,
        jwks: Some(keybound_jose::JwkSet::signing_key(&ck, "ck1")),
        ..machine("m2m-pkj", ClientAuthMethod::PrivateKeyJwt)
    };
    op.p.store().put_client(&c).await.unwrap();
    let now = op.now();
    let claims = serde_json::json!({
        "iss": "m2m-pkj", "sub": "m2m-pkj", "aud": op.p.config.issuer, "jti": "a1",
        "iat": now, "exp": now + 60,
    });
    let mut h = serde_json::Map::new();
    h.insert("kid".into(), "ck1".into());
    let assertion = keybound_jose::jws::sign(
        keybound_jose::Algorithm::ES256,
        &h,
        claims.to_string().as_bytes(),
        &ck,
    )
    .unwrap();
    let key = keys::es256_a();
    let t = token(
        &op,
        None,
        &[
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ],
        Some(&key),
    )
    .await
    .unwrap();
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(introspect_pkj_sub(&t.access_token), "m2m-pkj");
}

/// The access token's `sub`, read without verifying (the signature is the OP's own).
fn introspect_pkj_sub(at: &str) -> String {
    let payload = at.split('.').nth(1).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&keybound_jose::b64::decode(payload).unwrap()).unwrap();
    v["sub"].as_str().unwrap().to_owned()
}

/// Every refusal with its code: a public client (`unauthorized_client`), a client not
/// registered for the grant (`unauthorized_client`), a scope not registered or about an
/// End-User (`invalid_scope`), a resource not registered (`invalid_target`), a client of
/// `dpop_bound_access_tokens` without a proof (`invalid_dpop_proof`), a wrong secret
/// (`invalid_client`).
#[tokio::test]
async fn rfc6749_4_4_refusals() {
    let op = op().await;
    let code = |r: Result<TokenResponse, OpError>| r.unwrap_err().code();
    assert_eq!(
        code(token(&op, None, &[("client_id", "public")], None).await),
        ErrorCode::UnauthorizedClient
    );
    assert_eq!(
        code(token(&op, Some(&basic("code-only")), &[], None).await),
        ErrorCode::UnauthorizedClient
    );
    for scope in [
        "orders.delete",
        "openid",
        "offline_access",
        "bound_key",
        "orders.read openid",
    ] {
        assert_eq!(
            code(token(&op, Some(&basic("m2m")), &[("scope", scope)], None).await),
            ErrorCode::InvalidScope,
            "{scope}"
        );
    }
    assert_eq!(
        code(
            token(
                &op,
                Some(&basic("m2m")),
                &[("resource", "https://other.example/")],
                None
            )
            .await
        ),
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        code(token(&op, Some(&basic("m2m-dpop")), &[], None).await),
        ErrorCode::InvalidDpopProof
    );
    assert!(
        token(&op, Some(&basic("m2m-dpop")), &[], Some(&keys::es256_a()))
            .await
            .is_ok()
    );
    let wrong = keybound_testkit::op::basic_auth("m2m", "not-the-secret");
    assert_eq!(
        code(token(&op, Some(&wrong), &[], None).await),
        ErrorCode::InvalidClient
    );
}

/// Registration (admin and RFC 7591 share `check_client`): the grant only for confidential
/// clients, scopes only scope tokens not about an End-User, a redirect URI only where a
/// redirect-based grant needs it.
#[tokio::test]
async fn rfc7591_client_credentials_registration() {
    use keybound_op::check_client;
    assert!(check_client(&machine("ok", ClientAuthMethod::ClientSecretBasic)).is_ok());
    let no_redirect = Client {
        redirect_uris: Vec::new(),
        ..machine("ok", ClientAuthMethod::ClientSecretBasic)
    };
    assert!(check_client(&no_redirect).is_ok(), "no redirect URI needed");
    assert!(check_client(&Client {
        grant_types: vec!["authorization_code".into()],
        ..no_redirect.clone()
    })
    .is_err());
    assert!(check_client(&machine("pub", ClientAuthMethod::None)).is_err());
    for bad in ["openid", "bound_key", "a b", "quote\"d", ""] {
        assert!(
            check_client(&Client {
                scopes: vec![bad.into()],
                ..machine("s", ClientAuthMethod::ClientSecretBasic)
            })
            .is_err(),
            "{bad:?}"
        );
    }

    let op = OpBuilder::new()
        .configure(|c| c.open_registration = true)
        .build()
        .await;
    let reg = op
        .p
        .register(
            None,
            br#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"orders.read orders.write"}"#,
        )
        .await
        .unwrap();
    assert_eq!(reg["scope"], "orders.read orders.write");
    assert_eq!(
        reg["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    let auth = keybound_testkit::op::basic_auth(
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let t = token(&op, Some(&auth), &[("scope", "orders.write")], None)
        .await
        .unwrap();
    assert_eq!(t.scope.as_deref(), Some("orders.write"));
    let public =
        op.p.register(
            None,
            br#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(public.code(), ErrorCode::InvalidClientMetadata);
}
