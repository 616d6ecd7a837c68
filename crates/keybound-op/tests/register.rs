//! Dynamic client registration (RFC 7591): the initial access token, every metadata member
//! keybound accepts (registered and answered), every refusal with its error code, and a
//! registered client that then works at the token endpoint.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_op::OpError;
use keybound_proto::wire::ErrorCode;
use keybound_store::ClientAuthMethod;
use keybound_testkit::keys;
use keybound_testkit::op::{OpBuilder, TestOp};
use serde_json::{json, Value};

async fn op() -> (TestOp, String) {
    let op = OpBuilder::new().build().await;
    let token = op.p.create_registration_token(3600, None).await.unwrap();
    (op, token)
}

async fn register(op: &TestOp, token: &str, metadata: &Value) -> Result<Value, OpError> {
    op.p.register(
        Some(&format!("Bearer {token}")),
        metadata.to_string().as_bytes(),
    )
    .await
}

/// The client record a registration response names.
async fn stored(op: &TestOp, r: &Value) -> keybound_store::Client {
    op.store
        .client(r["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn refused(r: Result<Value, OpError>, code: ErrorCode, says: &str) {
    match r {
        Ok(v) => panic!("expected {code:?}, registered {v}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            assert!(e.description().contains(says), "{says:?} not in {e:?}");
        }
    }
}

/// RFC 7591 §3: without a live initial access token nothing is registered (401
/// `invalid_token`); a token for one use works once.
#[tokio::test]
async fn rfc7591_3_initial_access_token_required() {
    let (op, _) = op().await;
    let m = json!({ "redirect_uris": ["https://app.example/cb"] });
    for auth in [None, Some("Bearer nope"), Some("Basic x")] {
        let e =
            op.p.register(auth, m.to_string().as_bytes())
                .await
                .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidToken, "{auth:?}");
        assert_eq!(e.wire(keybound_op::Endpoint::Token).status, 401);
    }
    let once = op.p.create_registration_token(60, Some(1)).await.unwrap();
    assert!(register(&op, &once, &m).await.is_ok());
    refused(
        register(&op, &once, &m).await,
        ErrorCode::InvalidToken,
        "used up",
    );
    let short = op.p.create_registration_token(60, None).await.unwrap();
    op.advance(60);
    refused(
        register(&op, &short, &m).await,
        ErrorCode::InvalidToken,
        "expired",
    );
}

/// Every member keybound accepts, as registered and answered.
#[tokio::test]
async fn rfc7591_2_accepted_members_are_registered() {
    let (op, token) = op().await;
    // defaults: client_secret_basic, the code grant and response type
    let r = register(
        &op,
        &token,
        &json!({ "redirect_uris": ["https://app.example/cb"] }),
    )
    .await
    .unwrap();
    assert_eq!(r["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(r["grant_types"], json!(["authorization_code"]));
    assert_eq!(r["response_types"], json!(["code"]));
    assert_eq!(r["client_secret_expires_at"], 0);
    let secret = r["client_secret"].as_str().unwrap();
    let first = stored(&op, &r).await;
    assert!(keybound_op::password::verify(
        first.secret_hash.as_deref().unwrap(),
        secret
    ));
    // everything at once: a public client with DPoP-bound tokens, the draft-00 profile, a
    // name, the device and refresh grants, and an unknown member (ignored, RFC 7591 §2)
    let r = register(
        &op,
        &token,
        &json!({
            "redirect_uris": ["https://app.example/cb", "http://127.0.0.1:8081/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            "response_types": ["code"],
            "client_name": "My App",
            "dpop_bound_access_tokens": true,
            "key_binding_profile": "draft-00",
            "rp_id_token_token_binding_supported": true,
            "logo_uri": "https://app.example/logo.png"
        }),
    )
    .await
    .unwrap();
    assert!(
        r.get("client_secret").is_none(),
        "public clients get no secret"
    );
    assert!(
        r.get("logo_uri").is_none(),
        "unknown members are not registered"
    );
    let c = stored(&op, &r).await;
    assert_eq!(c.auth_method, ClientAuthMethod::None);
    assert_eq!(c.name, "My App");
    assert!(c.dpop_bound_access_tokens);
    assert_eq!(c.redirect_uris.len(), 2);
    assert_eq!(r["key_binding_profile"], "draft-00");
    assert!(c.token_bound_id_tokens);
    assert_eq!(
        r["id_token_token_binding_cnf"], "tbh",
        "both generations answered"
    );
    // private_key_jwt with inline keys; a resource-AS client of the jwt-bearer grant
    let jwks = json!({ "keys": [serde_json::to_value(keys::es256_a().public_jwk()).unwrap()] });
    let r = register(
        &op,
        &token,
        &json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks,
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        }),
    )
    .await
    .unwrap();
    assert_eq!(r["response_types"], json!([]));
    let c = stored(&op, &r).await;
    assert!(c.jwt_bearer && c.jwks.is_some());
    // the implicit and hybrid flows
    let r = register(
        &op,
        &token,
        &json!({
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["authorization_code", "implicit"],
            "response_types": ["code", "token id_token", "id_token code"],
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        r["response_types"],
        json!(["code", "id_token token", "code id_token"]),
        "canonical spelling"
    );
    let c = stored(&op, &r).await;
    assert_eq!(
        c.response_types,
        vec!["code", "id_token token", "code id_token"]
    );
    // the draft-04 name for Token Bound ID Tokens
    let r = register(
        &op,
        &token,
        &json!({ "redirect_uris": ["https://app.example/cb"], "id_token_token_binding_cnf": "tbh" }),
    )
    .await
    .unwrap();
    assert!(stored(&op, &r).await.token_bound_id_tokens);
    assert_eq!(r["rp_id_token_token_binding_supported"], true);
    // RFC 8707: the resources its access tokens may be for (issue 22 item 4)
    let r = register(
        &op,
        &token,
        &json!({ "redirect_uris": ["https://app.example/cb"], "resources": ["https://api.example/"] }),
    )
    .await
    .unwrap();
    assert_eq!(r["resources"], json!(["https://api.example/"]));
    assert_eq!(
        stored(&op, &r).await.resources,
        vec!["https://api.example/"]
    );
    // client_secret_post
    let r = register(
        &op,
        &token,
        &json!({ "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post" }),
    )
    .await
    .unwrap();
    assert!(r["client_secret"].is_string());
}

/// Every refusal, with its code (RFC 7591 §3.2.2).
#[tokio::test]
async fn rfc7591_3_2_2_refusals() {
    let (op, token) = op().await;
    let uri = json!(["https://app.example/cb"]);
    for (m, code, says) in [
        (
            json!([1, 2]),
            ErrorCode::InvalidClientMetadata,
            "JSON object",
        ),
        (
            json!({}),
            ErrorCode::InvalidRedirectUri,
            "redirect_uris is required",
        ),
        (
            json!({ "redirect_uris": "https://app.example/cb" }),
            ErrorCode::InvalidClientMetadata,
            "array of strings",
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb#frag"] }),
            ErrorCode::InvalidRedirectUri,
            "without a fragment",
        ),
        (
            json!({ "redirect_uris": ["app.example/cb"] }),
            ErrorCode::InvalidRedirectUri,
            "absolute",
        ),
        (
            json!({ "redirect_uris": uri, "token_endpoint_auth_method": "tls_client_auth" }),
            ErrorCode::InvalidClientMetadata,
            "not supported",
        ),
        (
            json!({ "redirect_uris": uri, "response_types": ["token"] }),
            ErrorCode::InvalidClientMetadata,
            "not offered",
        ),
        (
            json!({ "redirect_uris": uri, "response_types": ["code", "id_token"] }),
            ErrorCode::InvalidClientMetadata,
            "disagree",
        ),
        (
            json!({ "redirect_uris": uri, "grant_types": ["password"] }),
            ErrorCode::InvalidClientMetadata,
            "not offered here",
        ),
        (
            json!({ "redirect_uris": uri, "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"] }),
            ErrorCode::InvalidClientMetadata,
            "exchange policy",
        ),
        (
            json!({ "redirect_uris": uri, "grant_types": ["refresh_token"], "response_types": ["code"] }),
            ErrorCode::InvalidClientMetadata,
            "disagree",
        ),
        (
            json!({ "redirect_uris": uri, "token_endpoint_auth_method": "private_key_jwt" }),
            ErrorCode::InvalidClientMetadata,
            "needs jwks",
        ),
        (
            json!({ "redirect_uris": uri, "jwks": { "keys": [] } }),
            ErrorCode::InvalidClientMetadata,
            "only used with",
        ),
        (
            json!({ "redirect_uris": uri, "jwks_uri": "https://app.example/jwks" }),
            ErrorCode::InvalidClientMetadata,
            "jwks_uri is not supported",
        ),
        (
            json!({ "redirect_uris": uri, "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] } }),
            ErrorCode::InvalidClientMetadata,
            "jwks",
        ),
        (
            json!({ "redirect_uris": uri, "dpop_bound_access_tokens": "yes" }),
            ErrorCode::InvalidClientMetadata,
            "true or false",
        ),
        (
            json!({ "redirect_uris": uri, "key_binding_profile": "draft-99" }),
            ErrorCode::InvalidClientMetadata,
            "key_binding_profile",
        ),
        (
            json!({ "redirect_uris": uri, "id_token_token_binding_cnf": "jkt" }),
            ErrorCode::InvalidClientMetadata,
            "only tbh",
        ),
        (
            json!({ "redirect_uris": uri, "rp_id_token_token_binding_supported": "yes" }),
            ErrorCode::InvalidClientMetadata,
            "true or false",
        ),
        (
            json!({ "redirect_uris": uri, "client_name": 7 }),
            ErrorCode::InvalidClientMetadata,
            "expected a string",
        ),
        // OIDC Registration §2 / Core 3.2.2.1 (issue 22 item 4): clients of the implicit and
        // hybrid flows register only https redirect URIs that are not localhost
        (
            json!({ "redirect_uris": ["http://127.0.0.1:8081/cb"], "grant_types": ["implicit"], "response_types": ["id_token"] }),
            ErrorCode::InvalidRedirectUri,
            "implicit and hybrid",
        ),
        (
            json!({ "redirect_uris": ["https://localhost/cb"], "grant_types": ["implicit"], "response_types": ["id_token token"] }),
            ErrorCode::InvalidRedirectUri,
            "not localhost",
        ),
        (
            json!({ "redirect_uris": ["https://app.example/cb", "https://127.0.0.1:8443/cb"], "grant_types": ["authorization_code", "implicit"], "response_types": ["code id_token"] }),
            ErrorCode::InvalidRedirectUri,
            "loopback",
        ),
        (
            json!({ "redirect_uris": ["https://[::1]/cb"], "grant_types": ["authorization_code", "implicit"], "response_types": ["code token"] }),
            ErrorCode::InvalidRedirectUri,
            "implicit and hybrid",
        ),
        // issue 26 item 4: http only on loopback (RFC 9700 §2.1, RFC 8252 §7.3), and a
        // redirect URI only in its normal form (no spaces or stray text reaches a header)
        (
            json!({ "redirect_uris": ["http://rp.example/cb"] }),
            ErrorCode::InvalidRedirectUri,
            "http is only for the loopback",
        ),
        (
            json!({ "redirect_uris": ["https://rp.example/cb; report-uri https://attacker.example/r; form-action *"] }),
            ErrorCode::InvalidRedirectUri,
            "normal form",
        ),
        (
            json!({ "redirect_uris": ["https://app.example"] }),
            ErrorCode::InvalidRedirectUri,
            "register 'https://app.example/'",
        ),
        // issue 26 item 5: bounds on what a registration stores
        (
            json!({ "redirect_uris": uri, "client_name": "x".repeat(201) }),
            ErrorCode::InvalidClientMetadata,
            "client_name: at most 200",
        ),
        (
            json!({ "redirect_uris": (0..21).map(|i| format!("https://app.example/cb{i}")).collect::<Vec<_>>() }),
            ErrorCode::InvalidClientMetadata,
            "redirect_uris: at most 20",
        ),
        (
            json!({ "redirect_uris": [format!("https://app.example/{}", "a".repeat(2000))] }),
            ErrorCode::InvalidClientMetadata,
            "2000 characters",
        ),
        // RFC 8707 §2: registered resources are absolute URIs without a fragment
        (
            json!({ "redirect_uris": uri, "resources": ["api.example"] }),
            ErrorCode::InvalidClientMetadata,
            "absolute URI",
        ),
        // ID-JAG §5 (issue 22 item 4): a public client cannot be allowed jwt-bearer
        (
            json!({ "token_endpoint_auth_method": "none", "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"] }),
            ErrorCode::InvalidClientMetadata,
            "confidential clients",
        ),
    ] {
        refused(register(&op, &token, &m).await, code, says);
    }
    assert_eq!(
        op.store.clients().await.unwrap().len(),
        0,
        "nothing half-registered"
    );
}

/// RFC 7591 §3 (issue 22 item 4): a single-use initial access token is spent only on a
/// registration that is made: refused metadata leaves it usable.
#[tokio::test]
async fn rfc7591_3_single_use_token_survives_refused_metadata() {
    let (op, _) = op().await;
    let once = op.p.create_registration_token(60, Some(1)).await.unwrap();
    refused(
        register(&op, &once, &json!({ "redirect_uris": ["app.example/cb"] })).await,
        ErrorCode::InvalidRedirectUri,
        "absolute",
    );
    let ok = json!({ "redirect_uris": ["https://app.example/cb"] });
    assert!(register(&op, &once, &ok).await.is_ok());
    refused(
        register(&op, &once, &ok).await,
        ErrorCode::InvalidToken,
        "used up",
    );
}

/// Open registration, when configured, needs no token.
#[tokio::test]
async fn open_registration_when_configured() {
    let op = OpBuilder::new()
        .configure(|c| c.open_registration = true)
        .build()
        .await;
    let r =
        op.p.register(None, br#"{"redirect_uris":["https://app.example/cb"]}"#)
            .await
            .unwrap();
    assert!(r["client_id"].is_string());
}

#[test]
fn web_origins_are_origins_of_public_clients() {
    use keybound_op::check_client;
    use keybound_op::refusal::RegistrationRefusal as Why;
    use keybound_store::Client;
    let public = |origins: &[&str]| Client {
        redirect_uris: vec!["https://app.example/cb".into()],
        web_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        ..keybound_testkit::op::client("spa", ClientAuthMethod::None)
    };
    check_client(&public(&["https://app.example", "http://127.0.0.1:5173"])).unwrap();
    for bad in [
        "https://app.example/",
        "https://app.example/path",
        "ftp://app.example",
        "app.example",
        "https://app.example:443",
    ] {
        assert!(
            matches!(check_client(&public(&[bad])), Err(Why::WebOrigin(o)) if o == bad),
            "{bad}"
        );
    }
    let confidential = Client {
        web_origins: vec!["https://app.example".into()],
        ..keybound_testkit::op::client("conf", ClientAuthMethod::ClientSecretBasic)
    };
    assert!(matches!(
        check_client(&confidential),
        Err(Why::WebOriginConfidential)
    ));
}

/// OIDC Registration §2 `default_acr_values`: registered and answered when they are values
/// this OP issues; any other is refused (it would lock the client's End-Users out).
#[tokio::test]
async fn oidc_registration_2_default_acr_values() {
    let (op, token) = op().await;
    let m = json!({
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "none",
        "default_acr_values": ["urn:keybound:acr:passkey"],
    });
    let r = register(&op, &token, &m).await.unwrap();
    assert_eq!(r["default_acr_values"], json!(["urn:keybound:acr:passkey"]));
    assert_eq!(
        stored(&op, &r).await.default_acr_values,
        ["urn:keybound:acr:passkey"]
    );
    let m = json!({
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "none",
        "default_acr_values": ["urn:mace:incommon:iap:silver"],
    });
    refused(
        register(&op, &token, &m).await,
        ErrorCode::InvalidClientMetadata,
        "acr_values_supported",
    );
}
