//! RFC 9126 pushed authorization requests, with DPoP (RFC 9449 §10.1) and Key Binding: issue 23
//! item 2, in process. Every refusal with its error code; the browser side is in the server's
//! router tests.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::PrivateKey;
use keybound_op::par::{authorization_request, Pushed, REQUEST_URI_PREFIX};
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::wire::ErrorCode;
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{
    alice, authorization_request as request, basic, client, public_client, OpBuilder, TestOp,
};

async fn op(configure: impl FnOnce(&mut keybound_op::OpConfig) + Send + 'static) -> TestOp {
    OpBuilder::new()
        .client(client("app", ClientAuthMethod::ClientSecretBasic))
        .client(public_client("spa"))
        .client(Client {
            require_par: true,
            ..client("strict", ClientAuthMethod::ClientSecretBasic)
        })
        .user(alice())
        .configure(configure)
        .build()
        .await
}

/// The pairs of an authorization request of `client_id` for `scope`.
fn pairs(client_id: &str, scope: &str, jkt: Option<&keybound_jose::Jkt>) -> Vec<(String, String)> {
    let q = serde_urlencoded::to_string(request(client_id, scope, jkt)).unwrap();
    serde_urlencoded::from_str(&q).unwrap()
}

/// Push `pairs` as `client_id` (basic authentication unless public), with a proof by `key`.
async fn push(
    op: &TestOp,
    client_id: &str,
    pairs: Vec<(String, String)>,
    key: Option<&PrivateKey>,
) -> Result<Pushed, OpError> {
    let proof = key.map(|k| op.post_proof(&op.p.config.endpoints.par, k));
    let dpop: Vec<&str> = proof.iter().map(String::as_str).collect();
    let auth = (client_id != "spa").then(|| basic(client_id));
    let f = keybound_op::Form::from_pairs(pairs.clone()).unwrap();
    op.p.push_authorization(
        TokenRequestFacts {
            form: &f,
            authorization: auth.as_deref(),
            dpop: &dpop,
        },
        pairs,
    )
    .await
}

/// RFC 9126 §2.2, §4, §7.3: a `request_uri` of 256 bits under the URN prefix, 60 s; used once,
/// by the client that pushed it, before it expires; the parameters are the ones pushed.
#[tokio::test]
async fn rfc9126_2_push_then_use_once() {
    let op = op(|_| {}).await;
    let p = push(&op, "app", pairs("app", "openid", None), None)
        .await
        .unwrap();
    assert!(p.request_uri.starts_with(REQUEST_URI_PREFIX), "{p:?}");
    assert!(p.request_uri.len() > REQUEST_URI_PREFIX.len() + 40);
    assert_eq!(p.expires_in, 60);
    let params =
        op.p.take_pushed_request(&p.request_uri, "app")
            .await
            .unwrap();
    let v =
        op.p.validate_pushed_authorization(&authorization_request(&params).unwrap())
            .await
            .unwrap();
    assert_eq!(v.state.as_deref(), Some("st-1"));
    let again = op.p.take_pushed_request(&p.request_uri, "app").await;
    assert_eq!(again.unwrap_err().code(), ErrorCode::InvalidRequestUri);

    // expired
    let p = push(&op, "app", pairs("app", "openid", None), None)
        .await
        .unwrap();
    op.advance(60);
    let late = op.p.take_pushed_request(&p.request_uri, "app").await;
    assert_eq!(late.unwrap_err().code(), ErrorCode::InvalidRequestUri);
    // another client's
    let p = push(&op, "app", pairs("app", "openid", None), None)
        .await
        .unwrap();
    let theirs = op.p.take_pushed_request(&p.request_uri, "spa").await;
    assert_eq!(theirs.unwrap_err().code(), ErrorCode::InvalidRequestUri);
    // not this server's
    let foreign =
        op.p.take_pushed_request("https://rp.example/request.jwt", "app")
            .await;
    assert_eq!(
        foreign.unwrap_err().code(),
        ErrorCode::RequestUriNotSupported
    );
}

/// RFC 9126 §2.1, §2.3: refusals at the PAR endpoint, as JSON errors: a pushed `request_uri`,
/// a `client_id` other than the authenticated client's, a wrong secret, and anything the
/// authorization endpoint would refuse. A public client pushes with its `client_id`.
#[tokio::test]
async fn rfc9126_2_1_refusals_at_the_par_endpoint() {
    let op = op(|_| {}).await;
    let code = |r: Result<Pushed, OpError>| r.unwrap_err().code();
    let mut with_uri = pairs("app", "openid", None);
    with_uri.push(("request_uri".into(), format!("{REQUEST_URI_PREFIX}x")));
    assert_eq!(
        code(push(&op, "app", with_uri, None).await),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(push(&op, "app", pairs("spa", "openid", None), None).await),
        ErrorCode::InvalidRequest
    );
    let mut no_openid = pairs("app", "profile", None);
    no_openid.retain(|(k, _)| k != "state");
    assert_eq!(
        code(push(&op, "app", no_openid, None).await),
        ErrorCode::InvalidScope
    );
    let mut other_redirect = pairs("app", "openid", None);
    for (k, v) in &mut other_redirect {
        if k == "redirect_uri" {
            *v = "https://evil.example/cb".into();
        }
    }
    assert_eq!(
        code(push(&op, "app", other_redirect, None).await),
        ErrorCode::InvalidRequest
    );
    let wrong = keybound_testkit::op::basic_auth("app", "wrong");
    let f = keybound_op::Form::from_pairs(pairs("app", "openid", None)).unwrap();
    let r =
        op.p.push_authorization(
            TokenRequestFacts {
                form: &f,
                authorization: Some(&wrong),
                dpop: &[],
            },
            pairs("app", "openid", None),
        )
        .await;
    assert_eq!(code(r), ErrorCode::InvalidClient);
    // a public client authenticates with nothing but its id
    assert!(push(&op, "spa", pairs("spa", "openid", None), None)
        .await
        .is_ok());
}

/// RFC 9126 §5–6: a client registered with `require_pushed_authorization_requests`, or every
/// client when the server requires it, is refused (`invalid_request`) when its request comes
/// directly, and served when pushed.
#[tokio::test]
async fn rfc9126_5_required_per_client_and_server_wide() {
    let op = op(|_| {}).await;
    let direct =
        op.p.validate_authorization(&request("strict", "openid", None))
            .await
            .unwrap_err();
    assert_eq!(direct.code(), Some(ErrorCode::InvalidRequest));
    assert!(
        direct.wire().description.contains("must push"),
        "{direct:?}"
    );
    assert!(op
        .p
        .validate_authorization(&request("app", "openid", None))
        .await
        .is_ok());
    let p = push(&op, "strict", pairs("strict", "openid", None), None)
        .await
        .unwrap();
    let params =
        op.p.take_pushed_request(&p.request_uri, "strict")
            .await
            .unwrap();
    assert!(op
        .p
        .validate_pushed_authorization(&authorization_request(&params).unwrap())
        .await
        .is_ok());

    let everyone = op_requiring().await;
    let direct = everyone
        .p
        .validate_authorization(&request("app", "openid", None))
        .await
        .unwrap_err();
    assert_eq!(direct.code(), Some(ErrorCode::InvalidRequest));
}

async fn op_requiring() -> TestOp {
    op(|c| c.require_par = true).await
}

/// RFC 9449 §10.1: a DPoP proof at the PAR endpoint binds the code to its key like `dpop_jkt`
/// (the stored request names the key; the code then needs a proof by it); a `dpop_jkt` naming
/// another key is refused; Key Binding (`bound_key`) works through PAR: the ID Token is bound.
#[tokio::test]
async fn rfc9449_10_1_dpop_at_par_binds_the_code_and_key_binding_works() {
    let op = op(|_| {}).await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let p = push(
        &op,
        "app",
        pairs("app", "openid bound_key", None),
        Some(&key),
    )
    .await
    .unwrap();
    let params =
        op.p.take_pushed_request(&p.request_uri, "app")
            .await
            .unwrap();
    assert!(
        params.contains(&("dpop_jkt".to_owned(), jkt.to_string())),
        "{params:?}"
    );
    let v =
        op.p.validate_pushed_authorization(&authorization_request(&params).unwrap())
            .await
            .unwrap();
    let code = op.code_for(&v).await;
    // another key cannot redeem it
    let other = keys::es256_b();
    let stolen = op
        .redeem("app", &code, Some(&other), Some(&basic("app")))
        .await;
    assert!(stolen.is_err());
    let t = op
        .redeem("app", &code, Some(&key), Some(&basic("app")))
        .await
        .unwrap();
    let id = keybound_jose::Jws::parse(t.id_token.as_deref().unwrap()).unwrap();
    let claims: serde_json::Value = id.payload_json().unwrap();
    assert_eq!(
        keybound_jose::PublicJwk::from_value(&claims["cnf"]["jwk"])
            .unwrap()
            .thumbprint(),
        jkt
    );

    // dpop_jkt naming another key than the proof's
    let disagree = push(
        &op,
        "app",
        pairs(
            "app",
            "openid bound_key",
            Some(&other.public_jwk().thumbprint()),
        ),
        Some(&key),
    )
    .await
    .unwrap_err();
    assert_eq!(disagree.code(), ErrorCode::InvalidRequest);
}

/// The parameters of a pushed request go through the same duplicate rule as any request.
#[test]
fn rfc6749_3_1_duplicates_refused() {
    let twice = vec![
        ("scope".to_owned(), "openid".to_owned()),
        ("scope".to_owned(), "profile".to_owned()),
    ];
    assert_eq!(
        authorization_request(&twice).unwrap_err().code(),
        ErrorCode::InvalidRequest
    );
}

/// RFC 9126 §6: `require_pushed_authorization_requests` in dynamic registration is stored and
/// answered; anything but a boolean is `invalid_client_metadata`.
#[tokio::test]
async fn rfc9126_6_registration_metadata() {
    let op = op(|c| c.open_registration = true).await;
    let reg = op
        .p
        .register(
            None,
            br#"{"redirect_uris":["https://app.example/cb"],"require_pushed_authorization_requests":true}"#,
        )
        .await
        .unwrap();
    assert_eq!(reg["require_pushed_authorization_requests"], true);
    let stored = op
        .store
        .client(reg["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.require_par);
    let bad = op
        .p
        .register(
            None,
            br#"{"redirect_uris":["https://app.example/cb"],"require_pushed_authorization_requests":"yes"}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidClientMetadata);
}
