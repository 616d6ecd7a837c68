//! Logout over HTTP (issue 23 item 3): the end-session endpoint of OpenID Connect RP-Initiated
//! Logout 1.0 (§2 confirmation and CSRF, §3 the redirect back with `state`), the session gone
//! afterwards (`prompt=none` answers `login_required`), and Back-Channel Logout 1.0 §2.5: the
//! logout token POSTed to a real receiver on loopback, retried on server errors only. The
//! provider's decisions (hints, redirect URIs, the logout token's claims, grants ending) are
//! tested in keybound-op's `tests/logout.rs`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;
use std::time::Duration;

use keybound_jose::jws::Jws;
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::browser::{hidden_fields, Browser, HttpRequest, Page, RouterTransport};
use keybound_testkit::op::{
    authorization_request, client, OpBuilder, ALICE, ISS, REDIRECT, VERIFIER,
};
use keybound_testkit::receiver::LogoutReceiver;
use serde_json::Value;

const BYE: &str = "https://app.example/bye";

/// The OP in process with client `app` (post-logout redirect URI [`BYE`], back-channel logout
/// to `backchannel` when given) and a browser at it.
async fn browser(backchannel: Option<&str>) -> Browser<RouterTransport> {
    let router = OpBuilder::new()
        .client(Client {
            post_logout_redirect_uris: vec![BYE.into()],
            backchannel_logout_uri: backchannel.map(str::to_owned),
            ..client("app", ClientAuthMethod::None)
        })
        .configure(|c| c.open_registration = true)
        .build()
        .await
        .router();
    Browser::new(RouterTransport(router))
}

fn authorize_url(prompt: Option<&str>) -> String {
    let mut req = authorization_request("app", "openid offline_access", None);
    req.prompt = prompt.map(str::to_owned);
    format!(
        "{ISS}/authorize?{}",
        serde_urlencoded::to_string(&req).unwrap()
    )
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Sign in and consent, redeem the code: the token response.
async fn sign_in(b: &mut Browser<RouterTransport>) -> Value {
    let redirect = b
        .sign_in(&authorize_url(None), None, ALICE.0, ALICE.1)
        .await
        .unwrap();
    let code = query(&redirect)["code"].clone();
    let fields: Vec<(String, String)> = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "app"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let t = b.post(&format!("{ISS}/token"), &fields).await.unwrap();
    assert_eq!(t.status, 200, "{}", t.body);
    serde_json::from_str(&t.body).unwrap()
}

/// Whether the OP session lives: `prompt=none` gets a code, or `login_required`.
async fn signed_in(b: &mut Browser<RouterTransport>) -> bool {
    let p = b.get(&authorize_url(Some("none"))).await.unwrap();
    assert_eq!(p.status, 303, "{}", p.body);
    let q = query(p.location.as_deref().unwrap());
    match q.get("error").map(String::as_str) {
        None => q.contains_key("code"),
        Some("login_required") => false,
        Some(other) => panic!("prompt=none: {other}"),
    }
}

fn end_session_url(pairs: &[(&str, &str)]) -> String {
    format!(
        "{ISS}/end_session?{}",
        serde_urlencoded::to_string(pairs).unwrap()
    )
}

fn claims(jwt: &str) -> Value {
    Jws::parse(jwt).unwrap().payload_json().unwrap()
}

#[tokio::test]
async fn rpil_2_a_hint_for_this_session_signs_out_at_once_and_returns_with_state() {
    let receiver = LogoutReceiver::start().await;
    let mut b = browser(Some(&receiver.url)).await;
    let tokens = sign_in(&mut b).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert!(signed_in(&mut b).await);
    let p = b
        .get(&end_session_url(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", BYE),
            ("state", "st-9"),
        ]))
        .await
        .unwrap();
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        p.location.as_deref(),
        Some("https://app.example/bye?state=st-9")
    );
    assert_eq!(
        b.cookie("__Host-kb_session"),
        Some(""),
        "the cookie is cleared"
    );
    assert!(
        !signed_in(&mut b).await,
        "prompt=none after logout: login_required"
    );
    // Back-Channel Logout §2.5: the client was told, about this session
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let lt = claims(&got[0]);
    assert_eq!(lt["sid"], claims(id_token)["sid"]);
    assert_eq!(lt["aud"], "app");
}

#[tokio::test]
async fn rpil_2_without_a_hint_the_end_user_is_asked_and_may_stay() {
    let mut b = browser(None).await;
    sign_in(&mut b).await;
    let ask = [
        ("client_id", "app"),
        ("post_logout_redirect_uri", BYE),
        ("state", "s2"),
    ];
    let page = b.get(&end_session_url(&ask)).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out of keybound?"), "{}", page.body);
    assert!(signed_in(&mut b).await, "asking ends nothing");
    // "Stay signed in": back to the app, session intact
    let stay = b
        .submit(&format!("{ISS}/end_session"), &page, &[("decision", "no")])
        .await
        .unwrap();
    assert_eq!(stay.status, 303);
    assert_eq!(
        stay.location.as_deref(),
        Some("https://app.example/bye?state=s2")
    );
    assert!(signed_in(&mut b).await);
    // "Sign out"
    let page = b.get(&end_session_url(&ask)).await.unwrap();
    let out = b
        .submit(&format!("{ISS}/end_session"), &page, &[("decision", "yes")])
        .await
        .unwrap();
    assert_eq!(out.status, 303);
    assert_eq!(
        out.location.as_deref(),
        Some("https://app.example/bye?state=s2")
    );
    assert!(!signed_in(&mut b).await);
}

#[tokio::test]
async fn rpil_2_a_hint_for_another_session_is_asked_too() {
    let mut b = browser(None).await;
    let old = sign_in(&mut b).await;
    // a new sign-in (another session of the same End-User) after the hint's
    b.clear_cookies();
    sign_in(&mut b).await;
    let page = b
        .get(&end_session_url(&[(
            "id_token_hint",
            old["id_token"].as_str().unwrap(),
        )]))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out of keybound?"));
    assert!(signed_in(&mut b).await);
}

#[tokio::test]
async fn rpil_2_the_confirmation_needs_this_sessions_csrf_token() {
    let mut b = browser(None).await;
    sign_in(&mut b).await;
    let page = b.get(&end_session_url(&[])).await.unwrap();
    assert_eq!(page.status, 200);
    // a form forged elsewhere: the right fields, a token not derived from this session
    let forged = b
        .submit(
            &format!("{ISS}/end_session"),
            &page,
            &[
                ("decision", "yes"),
                ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("CSRF"));
    assert!(signed_in(&mut b).await);
    // without the page's action field it is a new request: asked again, nothing ended
    let fields: Vec<(String, String)> = hidden_fields(&page.body)
        .into_iter()
        .filter(|(k, _)| k != "kb_action")
        .chain([("decision".to_owned(), "yes".to_owned())])
        .collect();
    let again = b
        .post(&format!("{ISS}/end_session"), &fields)
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    assert!(signed_in(&mut b).await);
    // the page's own form signs out, without a redirect: the OP's page
    let out = b
        .submit(&format!("{ISS}/end_session"), &page, &[("decision", "yes")])
        .await
        .unwrap();
    assert_eq!(out.status, 200);
    assert!(out.body.contains("You are signed out"));
    assert!(!signed_in(&mut b).await);
}

#[tokio::test]
async fn rpil_3_an_unregistered_redirect_is_an_error_page_never_a_redirect() {
    let mut b = browser(None).await;
    sign_in(&mut b).await;
    for pairs in [
        vec![
            ("client_id", "app"),
            ("post_logout_redirect_uri", "https://attacker.example/"),
        ],
        vec![("post_logout_redirect_uri", BYE)],
        vec![("client_id", "app"), ("client_id", "app")],
    ] {
        let p: Page = b.get(&end_session_url(&pairs)).await.unwrap();
        assert_eq!(p.status, 400, "{pairs:?}: {}", p.body);
        assert!(p.location.is_none());
    }
    assert!(signed_in(&mut b).await);
}

#[tokio::test]
async fn bcl_2_5_delivery_retries_server_errors_and_stops_at_the_clients_refusal() {
    // 500, 503, then 200: three POSTs of the same token (1 s, then 2 s apart)
    let flaky = LogoutReceiver::answering(&[500, 503]).await;
    let mut b = browser(Some(&flaky.url)).await;
    sign_in(&mut b).await;
    let page = b.get(&end_session_url(&[])).await.unwrap();
    b.submit(&format!("{ISS}/end_session"), &page, &[("decision", "yes")])
        .await
        .unwrap();
    let got = flaky.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3, "two retries after server errors");
    assert!(got.iter().all(|t| *t == got[0]), "the same logout token");
    // 400: the client refused the token; it is not sent again
    let refusing = LogoutReceiver::answering(&[400]).await;
    let mut b = browser(Some(&refusing.url)).await;
    sign_in(&mut b).await;
    let page = b.get(&end_session_url(&[])).await.unwrap();
    b.submit(&format!("{ISS}/end_session"), &page, &[("decision", "yes")])
        .await
        .unwrap();
    assert_eq!(refusing.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(refusing.received().len(), 1, "no retry after a 4xx");
}

#[tokio::test]
async fn the_ops_own_sign_out_form_tells_the_back_channel_clients_too() {
    let receiver = LogoutReceiver::start().await;
    let mut b = browser(Some(&receiver.url)).await;
    sign_in(&mut b).await;
    // the CSRF token of this session's forms, from the confirmation page
    let page = b.get(&end_session_url(&[])).await.unwrap();
    let csrf = hidden_fields(&page.body)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap();
    let out = b.post(&format!("{ISS}/logout"), &[csrf]).await.unwrap();
    assert_eq!(out.status, 200);
    assert!(!signed_in(&mut b).await);
    assert_eq!(receiver.wait_for(1, Duration::from_secs(10)).await.len(), 1);
}

#[tokio::test]
async fn discovery_and_registration_speak_logout() {
    let mut b = browser(None).await;
    let discovery: Value = serde_json::from_str(
        &b.get(&format!("{ISS}/.well-known/openid-configuration"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(
        discovery["end_session_endpoint"],
        format!("{ISS}/end_session")
    );
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    let register = |metadata: Value| HttpRequest {
        method: "POST".into(),
        url: format!("{ISS}/register"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(serde_json::to_vec(&metadata).unwrap()),
    };
    let ok = b
        .request(register(serde_json::json!({
            "redirect_uris": ["https://rp.example/cb"],
            "token_endpoint_auth_method": "none",
            "post_logout_redirect_uris": ["https://rp.example/bye"],
            "backchannel_logout_uri": "https://rp.example/backchannel",
            "backchannel_logout_session_required": true,
        })))
        .await
        .unwrap();
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    let registered: Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(
        registered["post_logout_redirect_uris"][0],
        "https://rp.example/bye"
    );
    assert_eq!(
        registered["backchannel_logout_uri"],
        "https://rp.example/backchannel"
    );
    assert_eq!(registered["backchannel_logout_session_required"], true);
    for bad in [
        serde_json::json!({ "backchannel_logout_uri": "http://rp.example/bc" }),
        serde_json::json!({ "backchannel_logout_uri": "https://rp.example/bc#f" }),
        serde_json::json!({ "post_logout_redirect_uris": ["not a uri"] }),
        serde_json::json!({ "backchannel_logout_session_required": "yes" }),
    ] {
        let mut metadata = serde_json::json!({
            "redirect_uris": ["https://rp.example/cb"],
            "token_endpoint_auth_method": "none",
        });
        for (k, v) in bad.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        let r = b.request(register(metadata)).await.unwrap();
        assert_eq!(r.status, 400, "{bad}");
        let e: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(e["error"], "invalid_client_metadata", "{bad}");
    }
}
