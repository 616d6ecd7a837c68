//! Device Bound Session Credentials at the OP (issue 27 item 5, specs/dbsc.md), over the
//! router with a fixed clock: the offer at sign-in, registration of the browser's key, the
//! bound cookie the session then needs, its expiry, and a refresh only by the registered key
//! answering a fresh challenge. Headless Chromium runs the same protocol in
//! interop/dbsc.test.mjs.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::key::KeyKind;
use keybound_jose::{Algorithm, PrivateKey};
use keybound_testkit::browser::{hidden_fields, Browser, HttpRequest, RouterTransport};
use keybound_testkit::op::{OpBuilder, ALICE, ISS};
use serde_json::{json, Value};

const LIFETIME: u64 = 600;

/// The quoted parameter `name` of a structured header value.
fn param(header: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let i = header.find(&key).unwrap() + key.len();
    header[i..i + header[i..].find('"').unwrap()].to_owned()
}

/// A `dbsc+jwt` by `key` with `claims` (the key in the header when `with_jwk`).
fn jwt(key: &PrivateKey, with_jwk: bool, claims: &Value) -> String {
    let mut h = json!({"typ": "dbsc+jwt"});
    if with_jwk {
        h["jwk"] = key.public_jwk().to_value();
    }
    keybound_jose::jws::sign(
        Algorithm::ES256,
        h.as_object().unwrap(),
        claims.to_string().as_bytes(),
        key,
    )
    .unwrap()
}

struct Signed {
    b: Browser<RouterTransport>,
    clock: std::sync::Arc<keybound_op::ManualClock>,
    offer: String,
}

/// Sign in on the account page: the browser and the DBSC offer of the answer.
async fn signed_in() -> Signed {
    let op = OpBuilder::new().build().await;
    let clock = op.clock.clone();
    let mut b = Browser::new(RouterTransport(op.router()));
    let page = b.get(&format!("{ISS}/account")).await.unwrap();
    let mut fields = hidden_fields(&page.body);
    fields.push(("username".into(), ALICE.0.into()));
    fields.push(("password".into(), ALICE.1.into()));
    let body = serde_urlencoded::to_string(&fields).unwrap();
    let r = b
        .request(HttpRequest::post_form(
            &format!("{ISS}/account"),
            body.into_bytes(),
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    let offer = r
        .header("secure-session-registration")
        .expect("the sign-in offers DBSC")
        .to_owned();
    Signed { b, clock, offer }
}

async fn post(
    b: &mut Browser<RouterTransport>,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let mut req = HttpRequest::post_form(&format!("{ISS}{path}"), Vec::new());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = b.request(req).await.unwrap();
    let challenge = r.header("secure-session-challenge").map(str::to_owned);
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, challenge, body)
}

async fn account_shown(b: &mut Browser<RouterTransport>) -> bool {
    b.get(&format!("{ISS}/account"))
        .await
        .unwrap()
        .body
        .contains("Your account")
}

/// Register `key` for the signed-in session: the DBSC session id.
async fn register(s: &mut Signed, key: &PrivateKey) -> String {
    register_in(&mut s.b, &s.offer, key).await
}

/// Register `key` in browser `b` answering `offer`: the DBSC session id.
async fn register_in(b: &mut Browser<RouterTransport>, offer: &str, key: &PrivateKey) -> String {
    let claims = json!({
        "jti": param(offer, "challenge"),
        "authorization": param(offer, "authorization"),
    });
    let (status, _, body) = post(
        b,
        "/dbsc/start",
        &[("secure-session-response", &jwt(key, true, &claims))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refresh_url"], "/dbsc/refresh");
    assert_eq!(body["scope"]["origin"], ISS);
    assert_eq!(body["credentials"][0]["name"], "__Host-kb_bound");
    assert!(b.cookie("__Host-kb_bound").is_some());
    body["session_identifier"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn dbsc_the_offer_names_the_start_path_and_the_algorithms() {
    let s = signed_in().await;
    assert!(
        s.offer
            .starts_with("(ES256 RS256);path=\"/dbsc/start\";challenge=\""),
        "{}",
        s.offer
    );
    assert!(!param(&s.offer, "authorization").is_empty());
}

#[tokio::test]
async fn dbsc_a_bound_session_needs_its_bound_cookie_and_dies_with_it() {
    let mut s = signed_in().await;
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    register(&mut s, &key).await;
    assert!(account_shown(&mut s.b).await);
    // the session cookie alone, copied into another browser: no session
    let mut thief = s.b.clone();
    thief.clear_cookies();
    thief.plant_cookie(
        "__Host-kb_session",
        s.b.cookie("__Host-kb_session").unwrap(),
    );
    assert!(!account_shown(&mut thief).await);
    // both cookies copied work while the bound cookie lives…
    let mut copied = s.b.clone();
    assert!(account_shown(&mut copied).await);
    // …and not after it expired
    s.clock.advance(LIFETIME + 1);
    assert!(!account_shown(&mut copied).await);
    assert!(
        !account_shown(&mut s.b).await,
        "the browser must refresh first"
    );
}

#[tokio::test]
async fn dbsc_refresh_needs_a_fresh_challenge_signed_by_the_registered_key() {
    let mut s = signed_in().await;
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let id = register(&mut s, &key).await;
    s.clock.advance(LIFETIME + 1);
    let headers = [("sec-secure-session-id", id.as_str())];
    // no answer: 403 with a challenge for this session
    let (status, challenge, _) = post(&mut s.b, "/dbsc/refresh", &headers).await;
    assert_eq!(status, 403);
    let challenge = challenge.unwrap();
    assert_eq!(param(&challenge, "id"), id);
    let nonce = challenge
        .trim_start_matches('"')
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    // a thief's key answering it: refused
    let thief = PrivateKey::generate(KeyKind::Es256).unwrap();
    let by_thief = jwt(&thief, false, &json!({ "jti": nonce }));
    let (status, _, body) = post(
        &mut s.b,
        "/dbsc/refresh",
        &[headers[0], ("secure-session-response", &by_thief)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "access_denied");
    assert!(!account_shown(&mut s.b).await);
    // the registered key: a new bound cookie, the session works again
    let answer = jwt(&key, false, &json!({ "jti": nonce }));
    let (status, _, body) = post(
        &mut s.b,
        "/dbsc/refresh",
        &[headers[0], ("secure-session-response", &answer)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_identifier"], id);
    assert!(account_shown(&mut s.b).await);
    // the same answer again: its challenge is spent
    let (status, _, _) = post(
        &mut s.b,
        "/dbsc/refresh",
        &[headers[0], ("secure-session-response", &answer)],
    )
    .await;
    assert_eq!(status, 400);
    // another DBSC session id: unknown here
    let (status, _, body) = post(
        &mut s.b,
        "/dbsc/refresh",
        &[("sec-secure-session-id", "other")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn dbsc_registration_answers_this_sessions_offer_once() {
    let mut s = signed_in().await;
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let challenge = param(&s.offer, "challenge");
    // the authorization value of another session
    let wrong = jwt(
        &key,
        true,
        &json!({"jti": challenge, "authorization": "someone-else"}),
    );
    let (status, _, body) = post(
        &mut s.b,
        "/dbsc/start",
        &[("secure-session-response", &wrong)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied"))
    );
    // a challenge this OP never made
    let made_up = jwt(
        &key,
        true,
        &json!({"jti": "1.2.3", "authorization": param(&s.offer, "authorization")}),
    );
    let (status, _, _) = post(
        &mut s.b,
        "/dbsc/start",
        &[("secure-session-response", &made_up)],
    )
    .await;
    assert_eq!(status, 400);
    // signed by another key than the header's
    let other = PrivateKey::generate(KeyKind::Es256).unwrap();
    let mut h = json!({"typ": "dbsc+jwt", "jwk": other.public_jwk().to_value()});
    let forged = keybound_jose::jws::sign(
        Algorithm::ES256,
        h.as_object_mut().unwrap(),
        json!({"jti": challenge, "authorization": param(&s.offer, "authorization")})
            .to_string()
            .as_bytes(),
        &key,
    )
    .unwrap();
    let (status, _, _) = post(
        &mut s.b,
        "/dbsc/start",
        &[("secure-session-response", &forged)],
    )
    .await;
    assert_eq!(status, 400);
    // the right answer binds the session once
    register(&mut s, &key).await;
    let again = jwt(
        &key,
        true,
        &json!({"jti": challenge, "authorization": param(&s.offer, "authorization")}),
    );
    let (status, _, body) = post(
        &mut s.b,
        "/dbsc/start",
        &[("secure-session-response", &again)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("bound"));
    // without a session there is nothing to bind
    let mut stranger = s.b.clone();
    stranger.clear_cookies();
    let (status, _, body) = post(
        &mut stranger,
        "/dbsc/start",
        &[("secure-session-response", &again)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("sign in"));
}

/// The hidden fields of a page's form with id `id`.
fn form_fields(body: &str, id: &str) -> Vec<(String, String)> {
    let start = body.find(&format!("id=\"{id}\"")).unwrap();
    let end = start + body[start..].find("</form>").unwrap();
    hidden_fields(&body[start..end])
}

async fn post_form(
    b: &mut Browser<RouterTransport>,
    fields: &[(String, String)],
) -> keybound_testkit::browser::HttpResponse {
    let body = serde_urlencoded::to_string(fields).unwrap();
    b.request(HttpRequest::post_form(
        &format!("{ISS}/authorize"),
        body.into_bytes(),
    ))
    .await
    .unwrap()
}

/// `dbsc = "require"` (or a client's `--require-dbsc`): no consent and no code for a session
/// that is not bound. After sign-in the OP answers a page that offers DBSC and waits for the
/// browser's key, then goes on; a browser that never registers is refused.
#[tokio::test]
async fn dbsc_required_no_code_before_the_session_is_bound() {
    for (mode, require_dbsc) in [
        (keybound_server::DbscMode::Require, false),
        (keybound_server::DbscMode::Offer, true),
    ] {
        let op = OpBuilder::new()
            .client(keybound_store::Client {
                require_dbsc,
                ..keybound_testkit::op::public_client("web")
            })
            .build()
            .await;
        let (router, _) = op.routers_with(keybound_server::ServerConfig {
            dbsc: mode,
            ..keybound_server::ServerConfig::default()
        });
        let mut b = Browser::new(RouterTransport(router));
        let req = keybound_testkit::op::authorization_request("web", "openid", None);
        let url = format!(
            "{ISS}/authorize?{}",
            serde_urlencoded::to_string(&req).unwrap()
        );
        let login = b.get(&url).await.unwrap();
        let mut fields = hidden_fields(&login.body);
        fields.push(("username".into(), ALICE.0.into()));
        fields.push(("password".into(), ALICE.1.into()));
        let r = post_form(&mut b, &fields).await;
        let page = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, 200);
        assert!(page.contains("Securing your sign-in"), "{page}");
        assert!(!page.contains("name=\"decision\""), "no consent yet");
        let offer = r.header("secure-session-registration").unwrap().to_owned();
        let waiting = form_fields(&page, "dbsc-form");
        // the browser never registered: after waiting, refused
        let r = post_form(&mut b, &waiting).await;
        assert_eq!(r.status, 403);
        assert!(String::from_utf8_lossy(&r.body).contains("bound to this device"));
        // the same request again: the page offers DBSC for the existing session
        let again = b.get(&url).await.unwrap();
        assert!(again.body.contains("Securing your sign-in"));
        let status = b.get(&format!("{ISS}/dbsc/status")).await.unwrap();
        assert_eq!(status.body, r#"{"bound":false}"#);
        let key = PrivateKey::generate(KeyKind::Es256).unwrap();
        register_in(&mut b, &offer, &key).await;
        let status = b.get(&format!("{ISS}/dbsc/status")).await.unwrap();
        assert_eq!(status.body, r#"{"bound":true}"#);
        // bound: the waiting page's post goes on to consent, and the code
        let r = post_form(&mut b, &form_fields(&again.body, "dbsc-form")).await;
        let page = String::from_utf8_lossy(&r.body).into_owned();
        assert!(page.contains("name=\"decision\""), "{page}");
        let mut consent = hidden_fields(&page);
        consent.push(("decision".into(), "allow".into()));
        let r = post_form(&mut b, &consent).await;
        assert_eq!(r.status, 303);
        assert!(r.header("location").unwrap().contains("code="));
    }
}
