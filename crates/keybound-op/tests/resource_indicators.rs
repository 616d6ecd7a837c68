//! RFC 8707 resource indicators at the authorization endpoint, PAR and the token endpoint
//! (issue 23 item 4): the authorization request names the resources, the code and its refresh
//! tokens keep them, every token request may narrow them (several `resource` parameters, or
//! one), never add; an access token's `aud` is what it is for (RFC 9068 §3).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_op::par::authorization_request;
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::wire::{ErrorCode, TokenResponse};
use keybound_store::Client;
use keybound_testkit::op::{
    alice, authorization_request as request, form, public_client, OpBuilder, TestOp, VERIFIER,
};

const A: &str = "https://a.api.example/";
const B: &str = "https://b.api.example/";
const C: &str = "https://c.api.example/";

async fn op() -> TestOp {
    OpBuilder::new()
        .client(Client {
            resources: vec![A.into(), B.into(), C.into()],
            ..public_client("app")
        })
        .user(alice())
        .build()
        .await
}

/// A code for an authorization request naming `resources` (through the parameter parser,
/// `resource` repeated).
async fn code_for(op: &TestOp, scope: &str, resources: &[&str]) -> Result<String, OpError> {
    let q = serde_urlencoded::to_string(request("app", scope, None)).unwrap();
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(&q).unwrap();
    pairs.extend(
        resources
            .iter()
            .map(|r| ("resource".to_owned(), (*r).to_owned())),
    );
    let v =
        op.p.validate_authorization(&authorization_request(&pairs)?)
            .await
            .map_err(keybound_op::AuthorizeError::into_error)?;
    Ok(op.code_for(&v).await)
}

async fn token(op: &TestOp, fields: &[(&str, &str)]) -> Result<TokenResponse, OpError> {
    let mut all = vec![("client_id", "app")];
    all.extend_from_slice(fields);
    op.p.token(TokenRequestFacts {
        form: &form(&all),
        authorization: None,
        dpop: &[],
    })
    .await
    .map(|s| s.response)
}

fn aud(t: &TokenResponse) -> serde_json::Value {
    let payload = t.access_token.split('.').nth(1).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&keybound_jose::b64::decode(payload).unwrap()).unwrap();
    v["aud"].clone()
}

fn redeem<'a>(code: &'a str, resources: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", keybound_testkit::op::REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    f.extend(resources.iter().map(|r| ("resource", *r)));
    f
}

/// RFC 8707 §2, §2.2: two resources at authorization; the code redeemed for one of them
/// (`aud` that one), its refresh token used for the other and then for both; a resource the
/// authorization did not name is `invalid_target` at either grant.
#[tokio::test]
async fn rfc8707_2_resources_named_at_authorization_narrowed_at_the_token_endpoint() {
    let op = op().await;
    let code = code_for(&op, "openid offline_access", &[A, B])
        .await
        .unwrap();
    let stolen_scope = token(&op, &redeem(&code, &[C])).await.unwrap_err();
    assert_eq!(stolen_scope.code(), ErrorCode::InvalidTarget);
    let t = token(&op, &redeem(&code, &[A])).await.unwrap();
    assert_eq!(aud(&t), A);
    let rt = t.refresh_token.clone().unwrap();
    let t = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("resource", B),
        ],
    )
    .await
    .unwrap();
    assert_eq!(aud(&t), B);
    let rt = t.refresh_token.unwrap();
    let refused = token(
        &op,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("resource", C),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidTarget);
    let both = token(
        &op,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await
    .unwrap();
    assert_eq!(aud(&both), serde_json::json!([A, B]));
}

/// Without `resource` at authorization, any registered resource may be asked for at the token
/// endpoint, and none gives a token for this provider (userinfo).
#[tokio::test]
async fn rfc8707_2_no_resource_at_authorization() {
    let op = op().await;
    let code = code_for(&op, "openid", &[]).await.unwrap();
    let t = token(&op, &redeem(&code, &[C])).await.unwrap();
    assert_eq!(aud(&t), C);
    let code = code_for(&op, "openid", &[]).await.unwrap();
    let t = token(&op, &redeem(&code, &[])).await.unwrap();
    assert_eq!(aud(&t), op.p.config.issuer.as_str());
}

/// RFC 8707 §2: a resource the client did not register, or not an absolute URI, is refused at
/// the authorization endpoint with `invalid_target` (redirected to the client).
#[tokio::test]
async fn rfc8707_2_invalid_target_at_the_authorization_endpoint() {
    let op = op().await;
    for bad in [
        "https://unregistered.example/",
        "relative/path",
        "https://a.api.example/#frag",
    ] {
        let e = code_for(&op, "openid", &[bad]).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidTarget, "{bad}");
    }
}
