//! The example API against keybound's OP on loopback: a key-bound ID Token presentation and a
//! DPoP access token from a real sign-in (keybound-rp) are accepted; a replayed proof, an ID
//! Token without a proof, the access token as Bearer and a password sign-in on the step-up
//! route are refused, each with the error that says why.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_rp::{HttpRequest, ReqwestTransport, Rp, RpConfig, Transport as _};
use keybound_testkit::op::{public_client, rp_sign_in, serve_app, OpBuilder, ALICE, REDIRECT};
use keybound_verify::{Clock as _, StepUp, SystemClock};

async fn get<K: AsRef<str>>(url: &str, headers: &[(K, String)]) -> (u16, String, String) {
    let mut req = HttpRequest::get(url);
    for (k, v) in headers {
        req = req.header(k.as_ref(), v);
    }
    let r = ReqwestTransport::new().unwrap().send(req).await.unwrap();
    (
        r.status,
        r.header("www-authenticate").unwrap_or("").to_owned(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_accepts_only_proven_presentations() {
    let op = OpBuilder::new()
        .clock(Arc::new(SystemClock))
        .client(public_client("app"))
        .serve()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let settings = example_api::Settings {
        issuer: op.issuer.clone(),
        audiences: vec!["app".into(), op.issuer.clone()],
        listen: String::new(),
        public_url: api.clone(),
        require_nonce: false,
        step_up: StepUp {
            acr_values: vec!["urn:keybound:acr:passkey".into()],
            max_age: Some(600),
        },
    };
    let verifier = example_api::verifier(&settings).await.unwrap();
    serve_app(
        listener,
        example_api::router(Arc::new(verifier), settings.step_up.clone()),
    );

    let rp = Rp::new(
        RpConfig::new(&op.issuer, "app", REDIRECT).with_scope("openid profile"),
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    );
    let session = rp_sign_in(&rp, (ALICE.0, ALICE.1)).await;
    assert!(session.bound);
    let now = SystemClock.now();

    // a key-bound ID Token with a proof over this request
    let hello = format!("{api}/hello");
    let headers = session.present_http("GET", &hello, now, None).unwrap();
    let (status, _, body) = get(&hello, &headers).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("Hello Alice!"), "{body}");
    // the same proof again is a replay
    let (status, www, _) = get(&hello, &headers).await;
    assert_eq!(status, 401);
    assert!(www.contains("invalid_dpop_proof"), "{www}");
    // the ID Token alone proves nothing
    let id_token_only: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("ID-Token"))
        .cloned()
        .collect();
    assert_eq!(id_token_only.len(), 1);
    let (status, www, _) = get(&hello, &id_token_only).await;
    assert_eq!(status, 401);
    assert!(www.contains("invalid_dpop_proof"), "{www}");

    // the DPoP-bound access token with a proof carrying ath
    let orders = format!("{api}/orders");
    let key = session.key().unwrap();
    let r = rp
        .call_api(&key, &session.access_token, "GET", &orders)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["sub"], ALICE.2);
    assert_eq!(v["client_id"], "app");
    assert_eq!(v["key"], session.jkt().unwrap().as_str());
    // the same token as Bearer is refused: it is bound to a key
    let bearer = [("Authorization", format!("Bearer {}", session.access_token))];
    let (status, www, _) = get(&orders, &bearer).await;
    assert_eq!(status, 401);
    assert!(www.contains("invalid_token"), "{www}");

    // step-up: a password sign-in is not enough for /hello/passkey, and the challenge says
    // what would be
    let strong = format!("{api}/hello/passkey");
    let headers = session.present_http("GET", &strong, now, None).unwrap();
    let (status, www, _) = get(&strong, &headers).await;
    assert_eq!(status, 401);
    assert!(
        www.contains("insufficient_user_authentication")
            && www.contains("acr_values=\"urn:keybound:acr:passkey\"")
            && www.contains("max_age=600"),
        "{www}"
    );
}
