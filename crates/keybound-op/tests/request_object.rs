//! RFC 9101 request objects by value, at the authorization endpoint and inside PAR (issue 23
//! item 5). Every refusal is `invalid_request_object` with its reason.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{Algorithm, JwkSet, PrivateKey};
use keybound_op::par::authorization_request;
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::wire::ErrorCode;
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{client, OpBuilder, TestOp, ISS, REDIRECT, VERIFIER};
use serde_json::{json, Value};

async fn op() -> TestOp {
    let ck = keys::es256_b();
    OpBuilder::new()
        .client(Client {
            secret_hash: None,
            jwks: Some(JwkSet::signing_key(&ck, "ck1")),
            ..client("jar", ClientAuthMethod::PrivateKeyJwt)
        })
        .client(client("plain", ClientAuthMethod::ClientSecretBasic))
        .build()
        .await
}

fn object(claims: &Value, key: &PrivateKey) -> String {
    let mut h = serde_json::Map::new();
    h.insert("kid".into(), "ck1".into());
    h.insert("typ".into(), "oauth-authz-req+jwt".into());
    keybound_jose::jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), key).unwrap()
}

fn claims(now: u64) -> Value {
    json!({
        "iss": "jar", "aud": ISS, "client_id": "jar", "iat": now, "exp": now + 60,
        "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
        "state": "inside", "nonce": "n-1", "max_age": 300,
        "code_challenge": keybound_jose::sha256_b64(VERIFIER.as_bytes()),
        "code_challenge_method": "S256",
        "resource": ["https://a.example/"],
    })
}

/// The outer parameters: `client_id`, `request`, and whatever else the test adds.
async fn open(
    op: &TestOp,
    client_id: &str,
    request: &str,
    extra: &[(&str, &str)],
) -> Result<Vec<(String, String)>, OpError> {
    let mut params = vec![
        ("client_id".to_owned(), client_id.to_owned()),
        ("request".to_owned(), request.to_owned()),
    ];
    params.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    op.p.open_request_object(params).await
}

fn get<'a>(params: &'a [(String, String)], k: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// RFC 9101 §4–6: a request object signed by the client's registered key opens into the
/// parameters it carries; its claims win over the outer ones (`state`), outer ones it does not
/// name stay (`login_hint`); numbers and arrays become parameters; the JWT's own claims do not.
/// The opened request validates.
#[tokio::test]
async fn rfc9101_signed_request_object_opens_and_wins() {
    let op = op().await;
    let ck = keys::es256_b();
    let params = open(
        &op,
        "jar",
        &object(&claims(op.now()), &ck),
        &[("state", "outside"), ("login_hint", "alice")],
    )
    .await
    .unwrap();
    assert_eq!(get(&params, "state"), ["inside"]);
    assert_eq!(get(&params, "login_hint"), ["alice"]);
    assert_eq!(get(&params, "max_age"), ["300"]);
    assert_eq!(get(&params, "resource"), ["https://a.example/"]);
    assert!(get(&params, "iss").is_empty() && get(&params, "request").is_empty());
    let req = authorization_request(&params).unwrap();
    assert_eq!(req.max_age, Some(300));
    // the client registered no such resource: validation speaks as for any request
    let e = op.p.validate_authorization(&req).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidTarget));
    let mut c = claims(op.now());
    c.as_object_mut().unwrap().remove("resource");
    let params = open(&op, "jar", &object(&c, &ck), &[]).await.unwrap();
    let v =
        op.p.validate_authorization(&authorization_request(&params).unwrap())
            .await
            .unwrap();
    assert_eq!(v.state.as_deref(), Some("inside"));
}

/// Every way a request object is refused: `invalid_request_object`.
#[tokio::test]
async fn rfc9101_refusals() {
    let op = op().await;
    let ck = keys::es256_b();
    let now = op.now();
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = claims(now);
        f(c.as_object_mut().unwrap());
        c
    };
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "another client_id inside",
            "jar",
            object(
                &with(&|c| {
                    c.insert("client_id".into(), "plain".into());
                }),
                &ck,
            ),
        ),
        (
            "iss another client",
            "jar",
            object(
                &with(&|c| {
                    c.insert("iss".into(), "plain".into());
                }),
                &ck,
            ),
        ),
        (
            "aud not this issuer",
            "jar",
            object(
                &with(&|c| {
                    c.insert("aud".into(), "https://elsewhere.example".into());
                }),
                &ck,
            ),
        ),
        (
            "no aud",
            "jar",
            object(
                &with(&|c| {
                    c.remove("aud");
                }),
                &ck,
            ),
        ),
        (
            "expired",
            "jar",
            object(
                &with(&|c| {
                    c.insert("exp".into(), (now - 100).into());
                }),
                &ck,
            ),
        ),
        (
            "issued in the future",
            "jar",
            object(
                &with(&|c| {
                    c.insert("iat".into(), (now + 3600).into());
                }),
                &ck,
            ),
        ),
        (
            "signed by another key",
            "jar",
            object(&claims(now), &keys::es256_a()),
        ),
        (
            "a client without keys",
            "plain",
            object(
                &with(&|c| {
                    c.insert("client_id".into(), "plain".into());
                    c.insert("iss".into(), "plain".into());
                }),
                &ck,
            ),
        ),
        (
            "alg none",
            "jar",
            format!(
                "{}.{}.",
                keybound_jose::b64::encode(br#"{"alg":"none"}"#),
                keybound_jose::b64::encode(claims(now).to_string().as_bytes())
            ),
        ),
        (
            "HMAC",
            "jar",
            format!(
                "{}.{}.c2ln",
                keybound_jose::b64::encode(br#"{"alg":"HS256"}"#),
                keybound_jose::b64::encode(claims(now).to_string().as_bytes())
            ),
        ),
        ("not a JWT", "jar", "not-a-jwt".to_owned()),
    ];
    for (what, client_id, request) in cases {
        let e = open(&op, client_id, &request, &[]).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidRequestObject, "{what}: {e:?}");
    }
    // no outer client_id
    let e =
        op.p.open_request_object(vec![("request".into(), object(&claims(now), &ck))])
            .await
            .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequestObject);
    // request and request_uri together
    let e = open(
        &op,
        "jar",
        &object(&claims(now), &ck),
        &[("request_uri", "urn:ietf:params:oauth:request_uri:x")],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequestObject);
}

/// RFC 9126 §3: a request object inside a pushed request (the client authenticates with
/// `private_key_jwt`); the stored request is the opened one.
#[tokio::test]
async fn rfc9126_3_request_object_inside_par() {
    let op = op().await;
    let ck = keys::es256_b();
    let now = op.now();
    let mut c = claims(now);
    c.as_object_mut().unwrap().remove("resource");
    let assertion = {
        let a = json!({"iss":"jar","sub":"jar","aud":ISS,"jti":"a1","iat":now,"exp":now+60});
        let mut h = serde_json::Map::new();
        h.insert("kid".into(), "ck1".into());
        keybound_jose::jws::sign(Algorithm::ES256, &h, a.to_string().as_bytes(), &ck).unwrap()
    };
    let pairs: Vec<(String, String)> = [
        ("client_id", "jar".to_owned()),
        ("request", object(&c, &ck)),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", assertion),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let f = keybound_op::Form::from_pairs(pairs.clone()).unwrap();
    let pushed =
        op.p.push_authorization(
            TokenRequestFacts {
                form: &f,
                authorization: None,
                dpop: &[],
            },
            pairs,
        )
        .await
        .unwrap();
    let params =
        op.p.take_pushed_request(&pushed.request_uri, "jar")
            .await
            .unwrap();
    assert_eq!(get(&params, "state"), ["inside"]);
    assert!(get(&params, "request").is_empty());
    assert!(get(&params, "client_assertion").is_empty());
}
