//! The RP library against keybound's OP on a real loopback socket: sign in (headless forms),
//! exchange with `c_s256`, a key-bound ID Token, refresh with the same key, userinfo with DPoP,
//! a saved 0600 session, and an HTTP presentation accepted by keybound-verify (which fetches the
//! OP's JWKS over HTTP).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_proto::keybinding::Profile;
use keybound_rp::{
    DevicePoll, HttpRequest, HttpResponse, ReqwestTransport, Rp, RpConfig, RpError, Session,
    Transport,
};
use keybound_store::Client;
use keybound_testkit::browser::Browser;
use keybound_testkit::op::{public_client, LoopbackOp, OpBuilder, ALICE, REDIRECT};
use keybound_verify::{
    HttpFetcher, HttpPresentation, MemoryReplayCache, SystemClock, TrustedIssuer, Verifier,
    VerifierConfig,
};

/// The OP the RP signs in to: nonces in use, `app` must send one, `app-old` is a draft-00 client.
fn op() -> OpBuilder {
    OpBuilder::new()
        .nonces()
        .client(Client {
            require_dpop_nonce: true,
            ..public_client("app")
        })
        .client(Client {
            key_binding_profile: Profile::Draft00,
            ..public_client("app-old")
        })
        .client(Client {
            exchange: Some(keybound_store::ExchangePolicy {
                audiences: [("https://as.b.example".to_owned(), "svc-at-b".to_owned())].into(),
                scopes: vec!["chat.read".into()],
                ..keybound_store::ExchangePolicy::default()
            }),
            ..keybound_testkit::op::client(
                "svc",
                keybound_store::ClientAuthMethod::ClientSecretBasic,
            )
        })
}

/// [`op`] on loopback, on the system clock (the RP's clock).
async fn start_op() -> LoopbackOp {
    op().clock(Arc::new(SystemClock)).serve().await
}

/// The real reqwest transport without connection reuse, recording (method, path, status) of
/// every request it sends.
struct Recording {
    inner: ReqwestTransport,
    log: std::sync::Mutex<Vec<(String, String, u16)>>,
}

impl Recording {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Recording {
            inner: ReqwestTransport::with_client(client),
            log: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Statuses of the requests to `path` since the last call, and forget them.
    fn take(&self, path: &str) -> Vec<u16> {
        let mut g = self.log.lock().unwrap();
        let out = g
            .iter()
            .filter(|(_, p, _)| p == path)
            .map(|e| e.2)
            .collect();
        g.clear();
        out
    }
}

#[async_trait::async_trait]
impl Transport for Recording {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError> {
        let method = req.method.clone();
        let path = url::Url::parse(&req.url).unwrap().path().to_owned();
        let r = self.inner.send(req).await?;
        self.log.lock().unwrap().push((method, path, r.status));
        Ok(r)
    }
}

async fn sign_in(rp: &Rp) -> Session {
    keybound_testkit::op::rp_sign_in(rp, (ALICE.0, ALICE.1)).await
}

/// Sign in as the standard End-User in a fresh headless browser; the redirect with the code.
async fn browse(url: &str) -> String {
    Browser::new(ReqwestTransport::new().unwrap())
        .sign_in(url, None, ALICE.0, ALICE.1)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bound_sign_in_refresh_userinfo_and_presentation() {
    let op = start_op().await;
    let issuer = op.issuer.clone();
    let mut cfg = RpConfig::new(&issuer, "app", REDIRECT);
    cfg.scope = "openid profile offline_access".into();
    let rp = Rp::new(
        cfg,
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    );
    // this client must use a DPoP nonce: the RP retries once by itself
    let mut session = sign_in(&rp).await;
    assert!(session.bound);
    assert_eq!(session.token_type, "DPoP");
    let before = session.id_token.clone();
    rp.refresh(&mut session).await.unwrap();
    assert_ne!(session.id_token, before);
    let info = rp.userinfo(&session).await.unwrap();
    assert_eq!(info["name"], "Alice");
    // the session survives a save/load round trip, in a 0600 file
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.json");
    session.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let loaded = Session::load(&path).unwrap();
    assert_eq!(loaded.jkt, session.jkt);
    assert!(!format!("{loaded:?}").contains("PRIVATE KEY"));
    // present to a consuming component that trusts this OP and fetches its JWKS over HTTP
    let verifier = Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new(&issuer, &format!("{issuer}/jwks")),
            vec!["app".into()],
            "https://api.example",
        ),
        Arc::new(HttpFetcher::default()),
        Arc::new(MemoryReplayCache::new(100)),
        Arc::new(SystemClock),
    );
    let now = verifier.now();
    let headers = loaded
        .present_http("GET", "https://api.example/orders", now, None)
        .unwrap();
    let proof = headers[1].1.clone();
    let id = verifier
        .verify_http(HttpPresentation {
            id_token: Some(&headers[0].1),
            dpop: &[&proof],
            htm: "GET",
            path: "/orders",
        })
        .await
        .unwrap();
    assert_eq!(id.sub, ALICE.2);
    assert_eq!(id.jkt.as_str(), session.jkt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft00_profile_and_callback_checks() {
    let op = start_op().await;
    let mut cfg = RpConfig::new(&op.issuer, "app-old", REDIRECT);
    cfg.profile = Profile::Draft00;
    let rp = Rp::new(
        cfg,
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    );
    let session = sign_in(&rp).await;
    assert!(session.bound);
    let jws = keybound_jose::Jws::parse(&session.id_token).unwrap();
    assert_eq!(jws.header().typ.as_deref(), Some("id_token+cnf"));
    // callback with a wrong state or iss is refused before any token request
    let pending = rp.begin().await.unwrap();
    assert!(matches!(
        rp.callback(&pending, "http://127.0.0.1:9/cb?code=x&state=wrong&iss=x"),
        Err(RpError::Callback(_))
    ));
    let bad_iss = format!(
        "http://127.0.0.1:9/cb?code=x&state={}&iss=https%3A%2F%2Fevil.example",
        pending.state
    );
    assert!(
        matches!(rp.callback(&pending, &bad_iss), Err(RpError::Callback(m)) if m.contains("mix-up"))
    );
}

/// RFC 9449 §8.2: the RP keeps the `DPoP-Nonce` of every response, successful ones included,
/// and uses it on its next request to that server. The client must use nonces: sign-in takes
/// one `use_dpop_nonce` round, after which refresh and userinfo each take one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9449_8_2_rp_uses_the_latest_nonce_of_every_response() {
    let op = start_op().await;
    let rec = Arc::new(Recording::new());
    let mut cfg = RpConfig::new(&op.issuer, "app", REDIRECT);
    cfg.scope = "openid offline_access".into();
    let rp = Rp::new(cfg, rec.clone(), Arc::new(SystemClock));
    let pending = rp.begin().await.unwrap();
    let code = rp.callback(&pending, &browse(&pending.url).await).unwrap();
    rec.take("/token");
    let mut session = rp.exchange(pending, &code).await.unwrap();
    assert_eq!(
        rec.take("/token"),
        [400, 200],
        "the first proof had no nonce"
    );
    rp.refresh(&mut session).await.unwrap();
    assert_eq!(
        rec.take("/token"),
        [200],
        "the nonce of the last success was used"
    );
    rp.userinfo(&session).await.unwrap();
    assert_eq!(rec.take("/userinfo"), [200], "the same server's nonce");
}

/// The sleeps `device_wait` asked for, and a clock it shares with the OP: while the OP is up
/// each sleep moves time by one second (so every poll is too fast and earns a `slow_down`);
/// once it was asked to stop, a sleep first waits until it has, then moves time by what was
/// asked.
fn device_sleeper(
    op: Arc<LoopbackOp>,
    down: Arc<std::sync::atomic::AtomicBool>,
    sleeps: Arc<std::sync::Mutex<Vec<u64>>>,
) -> impl Fn(std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
{
    move |d| {
        sleeps.lock().unwrap().push(d.as_secs());
        let (op, down) = (op.clone(), down.clone());
        Box::pin(async move {
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                op.stop().await;
                op.clock.advance(d.as_secs());
            } else {
                op.clock.advance(1);
            }
        })
    }
}

/// DF-7: with an OP interval of 90 s the OP goes away; polling backs off on network errors
/// without panicking (the interval is above the 60 s back-off cap), waits at least the
/// interval every time (DF-1), and ends when the device code expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn df7_network_errors_with_interval_90_back_off_without_panic() {
    let op = Arc::new(op().configure(|c| c.device_interval = 90).serve().await);
    let rp = Rp::new(
        RpConfig::new(&op.issuer, "app", REDIRECT),
        Arc::new(Recording::new()),
        op.clock.clone(),
    );
    let mut flow = rp.device_begin().await.unwrap();
    assert_eq!(flow.interval, 90);
    op.stop().await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sleeps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = rp
        .device_wait(
            &mut flow,
            device_sleeper(op.clone(), down, sleeps.clone()),
            |_| {},
        )
        .await;
    assert!(
        matches!(&r, Err(RpError::Op(e)) if e.error == keybound_proto::wire::ErrorCode::ExpiredToken),
        "{r:?}"
    );
    let sleeps = sleeps.lock().unwrap().clone();
    assert!(sleeps.len() >= 2 && sleeps.len() <= 10, "{sleeps:?}");
    assert!(sleeps.iter().all(|s| *s >= 90), "DF-1: {sleeps:?}");
    assert!(
        sleeps.windows(2).all(|w| w[1] >= w[0]),
        "backs off: {sleeps:?}"
    );
}

/// DF-3 + DF-7: twelve `slow_down`s raise the interval to 65 s; then the OP goes away and the
/// network-error back-off still works (it used to panic once the interval passed 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn df7_twelve_slow_downs_then_network_errors_without_panic() {
    let op = Arc::new(op().serve().await);
    let rp = Rp::new(
        RpConfig::new(&op.issuer, "app", REDIRECT),
        Arc::new(Recording::new()),
        op.clock.clone(),
    );
    let mut flow = rp.device_begin().await.unwrap();
    assert_eq!(flow.interval, 5);
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sleeps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut slow_downs = 0;
    let r = rp
        .device_wait(
            &mut flow,
            device_sleeper(op.clone(), down.clone(), sleeps.clone()),
            |p| {
                if matches!(p, DevicePoll::SlowDown) {
                    slow_downs += 1;
                    if slow_downs == 12 {
                        op.abort();
                        down.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            },
        )
        .await;
    assert_eq!(slow_downs, 12);
    assert!(
        matches!(&r, Err(RpError::Op(e)) if e.error == keybound_proto::wire::ErrorCode::ExpiredToken),
        "{r:?}"
    );
    assert_eq!(flow.interval, 65);
    let sleeps = sleeps.lock().unwrap().clone();
    assert!(sleeps.len() <= 30, "{sleeps:?}");
    assert!(sleeps.iter().rev().take(2).all(|s| *s >= 65), "{sleeps:?}");
}

/// Identity chaining from the RP: the session's key-bound ID Token is exchanged for an ID-JAG
/// bound to the same key (checked by the library: downgrade detection); an audience outside
/// the client's policy is the OP's `invalid_target`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_for_an_id_jag_bound_to_the_session_key() {
    let op = start_op().await;
    let rp = Rp::new(
        RpConfig::new(&op.issuer, "svc", REDIRECT)
            .with_client_secret(keybound_testkit::op::CLIENT_SECRET.into()),
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    );
    let session = sign_in(&rp).await;
    assert!(session.bound);
    let jag = rp
        .exchange_for_id_jag(&session, "https://as.b.example", Some("chat.read"), None)
        .await
        .unwrap();
    assert_eq!(jag.jkt, Some(session.jkt().unwrap()));
    assert_eq!(jag.scope.as_deref(), Some("chat.read"));
    assert_eq!(jag.expires_in, Some(300));
    assert!(
        !format!("{jag:?}").contains(&jag.token),
        "the grant is not in Debug output"
    );
    match rp
        .exchange_for_id_jag(&session, "https://as.c.example", None, None)
        .await
    {
        Err(RpError::Op(e)) => assert_eq!(e.error.as_str(), "invalid_target"),
        other => panic!("expected invalid_target, got {other:?}"),
    }
}

/// A man in the middle (or a broken OP) that answers a token exchange with an ID-JAG that is
/// not bound: the real OP answers, then the grant is replaced by an unbound one.
struct Downgrading(ReqwestTransport);

#[async_trait::async_trait]
impl Transport for Downgrading {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError> {
        let exchange = req
            .body
            .as_ref()
            .is_some_and(|b| String::from_utf8_lossy(b).contains("token-exchange"));
        let mut r = self.0.send(req).await?;
        if exchange && r.status == 200 {
            let mut v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let mut h = serde_json::Map::new();
            h.insert("typ".into(), "oauth-id-jag+jwt".into());
            let claims = serde_json::json!({
                "iss": "https://op.example", "sub": "x", "aud": "https://as.b.example",
                "client_id": "svc-at-b", "jti": "j", "iat": 1, "exp": 2
            });
            v["access_token"] = keybound_jose::jws::sign(
                keybound_jose::Algorithm::ES256,
                &h,
                claims.to_string().as_bytes(),
                &keybound_testkit::keys::es256_b(),
            )
            .unwrap()
            .into();
            r.body = serde_json::to_vec(&v).unwrap();
        }
        Ok(r)
    }
}

/// ID-JAG §4.6: the client inspects the ID-JAG for `cnf` matching its key; an unbound one is a
/// downgrade and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_id_jag_for_a_bound_session_is_refused_as_a_downgrade() {
    let op = start_op().await;
    let rp = Rp::new(
        RpConfig::new(&op.issuer, "svc", REDIRECT)
            .with_client_secret(keybound_testkit::op::CLIENT_SECRET.into()),
        Arc::new(Downgrading(ReqwestTransport::new().unwrap())),
        Arc::new(SystemClock),
    );
    let session = sign_in(&rp).await;
    match rp
        .exchange_for_id_jag(&session, "https://as.b.example", None, None)
        .await
    {
        Err(RpError::NotBound(m)) => assert!(m.contains("downgrade"), "{m}"),
        other => panic!("expected a downgrade refusal, got {other:?}"),
    }
}

/// RFC 9470: the RP reads a resource's `insufficient_user_authentication` challenge, asks the
/// OP for that sign-in (`acr_values`, `max_age` in the authorization request), and accepts only
/// an ID Token that says it got it (OIDC Core 3.1.3.7 steps 12–13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9470_the_rp_signs_in_again_with_the_challenges_values() {
    let op = start_op().await;
    let rp = Rp::new(
        RpConfig::new(&op.issuer, "app", REDIRECT),
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    );
    let challenge = "DPoP error=\"insufficient_user_authentication\", \
        error_description=\"fresher sign-in needed\", acr_values=\"urn:keybound:acr:pwd\", max_age=300";
    let step_up = keybound_rp::StepUp::from_challenge(challenge).unwrap();
    let pending = rp.begin_step_up(&step_up).await.unwrap();
    let q: std::collections::HashMap<String, String> = url::Url::parse(&pending.url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["acr_values"], "urn:keybound:acr:pwd");
    assert_eq!(q["max_age"], "300");
    let code = rp.callback(&pending, &browse(&pending.url).await).unwrap();
    let session = rp.exchange(pending, &code).await.unwrap();
    let claims = keybound_proto::idtoken::decode(&session.id_token)
        .unwrap()
        .unverified_claims()
        .clone();
    assert_eq!(claims.acr.as_deref(), Some("urn:keybound:acr:pwd"));
    // a value the OP does not issue is asked voluntarily: it signs in with what it has, and
    // the RP refuses the ID Token that does not say the value asked for
    let step_up = keybound_rp::StepUp {
        acr_values: vec!["urn:example:loa:4".into()],
        max_age: None,
    };
    let pending = rp.begin_step_up(&step_up).await.unwrap();
    let code = rp.callback(&pending, &browse(&pending.url).await).unwrap();
    let e = rp.exchange(pending, &code).await.unwrap_err();
    assert!(e.to_string().contains("acr"), "{e}");
}

/// `Rp::present` sends the key-bound ID Token with a proof over the request, and when the
/// consuming component demands a nonce (RFC 9449 §9) retries once with it; the next
/// presentation to that service carries the nonce from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9449_9_present_retries_once_with_the_consumers_nonce() {
    use axum::routing::get;
    use keybound_verify::axum_support::KeyBound;

    let op = start_op().await;
    let issuer = op.issuer.clone();
    let recording = Arc::new(Recording::new());
    let rp = Rp::new(
        RpConfig::new(&issuer, "app", REDIRECT),
        recording.clone(),
        Arc::new(SystemClock),
    );
    let session = sign_in(&rp).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let verifier = Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new(&issuer, &format!("{issuer}/jwks")),
            vec!["app".into()],
            &api,
        )
        .with_random_nonces()
        .unwrap(),
        Arc::new(HttpFetcher::default()),
        Arc::new(MemoryReplayCache::new(100)),
        Arc::new(SystemClock),
    );
    let app = axum::Router::new()
        .route(
            "/hello",
            get(|KeyBound(who): KeyBound| async move { who.sub }),
        )
        .with_state(Arc::new(verifier));
    keybound_testkit::op::serve_app(listener, app);

    recording.take("/hello");
    let url = format!("{api}/hello");
    let r = rp.present(&session, &HttpRequest::get(&url)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, ALICE.2.as_bytes());
    assert_eq!(
        recording.take("/hello"),
        [401, 200],
        "one retry, with the nonce"
    );
    let r = rp.present(&session, &HttpRequest::get(&url)).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(recording.take("/hello"), [200], "the nonce is remembered");
}
