//! The example web app against keybound's OP and the example API on loopback, driven by a
//! headless browser: sign in, see the user, call the API both ways; the browser holds only a
//! random session id (no token, no key); a callback this browser did not start is refused;
//! signing out forgets the session.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_rp::browser::Browser;
use keybound_rp::ReqwestTransport;
use keybound_store::Client;
use keybound_testkit::op::{public_client, serve_app, OpBuilder, ALICE};
use keybound_verify::{StepUp, SystemClock};

/// The OP (access tokens living `ttl` seconds), the example API and the web app on loopback:
/// the app's base URL, and the OP to keep alive.
async fn start(ttl: u64) -> (String, keybound_testkit::op::LoopbackOp) {
    let web_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = format!("http://{}", web_listener.local_addr().unwrap());
    let op = OpBuilder::new()
        .clock(Arc::new(SystemClock))
        .configure(move |c| c.access_token_ttl = ttl)
        .client(Client {
            redirect_uris: vec![format!("{web}/callback")],
            ..public_client("web")
        })
        .serve()
        .await;

    // the API of examples/api, trusting this OP for the app's ID Tokens and its access tokens
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let api_settings = example_api::Settings {
        issuer: op.issuer.clone(),
        audiences: vec!["web".into(), op.issuer.clone()],
        listen: String::new(),
        public_url: api.clone(),
        require_nonce: true,
        step_up: StepUp {
            acr_values: vec!["urn:keybound:acr:passkey".into()],
            max_age: Some(600),
        },
    };
    let verifier = example_api::verifier(&api_settings).await.unwrap();
    serve_app(
        api_listener,
        example_api::router(Arc::new(verifier), api_settings.step_up),
    );

    let app = example_web_rp::WebRp::new(example_web_rp::Settings {
        issuer: op.issuer.clone(),
        client_id: "web".into(),
        client_secret: None,
        listen: String::new(),
        public_url: web.clone(),
        api_url: api.clone(),
    })
    .unwrap();
    serve_app(web_listener, example_web_rp::router(Arc::new(app)));
    (web, op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_show_the_user_and_call_the_api_with_dpop() {
    let (web, op) = start(300).await;
    let mut browser = Browser::new(ReqwestTransport::new().unwrap());
    let home = browser.get(&format!("{web}/")).await.unwrap();
    assert!(home.body.contains("not signed in"), "{}", home.body);

    // sign in: the app's /login, the OP's forms, the callback, back home
    let page = browser
        .browse(&format!("{web}/login"), ALICE.0, ALICE.1)
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<dd id=\"name\">Alice</dd>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(ALICE.2), "{}", page.body);
    // the browser holds a random session id and nothing else of the sign-in
    let sid = browser.cookie("web_rp_session").unwrap().to_owned();
    assert_eq!(sid.len(), 43, "32 random bytes, base64url");
    assert!(browser.cookie("web_rp_state").is_none_or(str::is_empty));
    assert!(!page.body.contains("eyJ"), "no token on the page");
    assert!(!page.body.contains("PRIVATE KEY"), "no key on the page");

    // call the API: the ID Token with a proof, the access token with a proof (the API
    // demands DPoP nonces: keybound-rp retries with the one it is given)
    let page = browser.post(&format!("{web}/call-api"), &[]).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Hello Alice!"), "{}", page.body);
    assert!(page.body.contains("a key-bound teapot"), "{}", page.body);

    // a callback this browser did not start (another browser, a replayed URL) is refused
    let mut other = Browser::new(ReqwestTransport::new().unwrap());
    let forged = other
        .get(&format!("{web}/callback?code=x&state=y&iss={}", op.issuer))
        .await
        .unwrap();
    assert_eq!(forged.status, 400);
    // ... and it cannot call the API on anybody's behalf
    let page = other.post(&format!("{web}/call-api"), &[]).await.unwrap();
    assert_eq!(page.status, 303);

    // signing out forgets the session: the old id no longer works
    let page = browser.post(&format!("{web}/logout"), &[]).await.unwrap();
    assert_eq!(page.status, 303);
    other.plant_cookie("web_rp_session", &sid);
    let home = other.get(&format!("{web}/")).await.unwrap();
    assert!(home.body.contains("not signed in"), "{}", home.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sign_in_asks_to_sign_in_again() {
    let (web, _op) = start(1).await;
    let mut browser = Browser::new(ReqwestTransport::new().unwrap());
    let page = browser
        .browse(&format!("{web}/login"), ALICE.0, ALICE.1)
        .await
        .unwrap();
    assert!(page.body.contains("Alice"), "{}", page.body);
    // the access token lives 1 s; wait it out (bounded: 2.1 s)
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let home = browser.get(&format!("{web}/")).await.unwrap();
    assert!(home.body.contains("Your sign-in expired"), "{}", home.body);
    // and the session is gone
    let home = browser.get(&format!("{web}/")).await.unwrap();
    assert!(home.body.contains("not signed in"), "{}", home.body);
}
