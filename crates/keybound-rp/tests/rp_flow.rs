//! The RP library against keybound's OP on a real loopback socket: sign in (headless forms),
//! exchange with `c_s256`, a key-bound ID Token, refresh with the same key, userinfo with DPoP,
//! a saved 0600 session, and an HTTP presentation accepted by keybound-verify (which fetches the
//! OP's JWKS over HTTP).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_op::{password, OpConfig, OsRandomness, Provider};
use keybound_proto::keybinding::Profile;
use keybound_rp::{
    headless, DevicePoll, HttpRequest, HttpResponse, ReqwestTransport, Rp, RpConfig, RpError,
    Session, Transport,
};
use keybound_store::{Client, ClientAuthMethod, MemoryStore, Store, User};
use keybound_verify::{
    HttpFetcher, HttpPresentation, MemoryReplayCache, SystemClock, TrustedIssuer, Verifier,
    VerifierConfig,
};

const REDIRECT: &str = "http://127.0.0.1:9/cb";

async fn start_op() -> String {
    start_op_with(Arc::new(SystemClock), |_| {}).await.0
}

/// The OP on a loopback socket with `clock` and settings changed by `config`; the handle
/// stops it (connections are not kept alive by the tests' transports, so nothing outlives it).
async fn start_op_with(
    clock: Arc<dyn keybound_op::Clock>,
    config: impl FnOnce(&mut OpConfig),
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut cfg = OpConfig::new(&issuer);
    cfg.dpop_nonces = Some(keybound_proto::dpop::NonceSource::new(&[1u8; 32], 60, 2).unwrap());
    config(&mut cfg);
    let p = Provider::new(cfg, store.clone(), clock, Arc::new(OsRandomness));
    p.ensure_signing_keys().await.unwrap();
    for (id, profile) in [("app", Profile::KeyBinding), ("app-old", Profile::Draft00)] {
        store
            .put_client(&Client {
                client_id: id.into(),
                name: id.into(),
                auth_method: ClientAuthMethod::None,
                secret_hash: None,
                redirect_uris: vec![REDIRECT.into()],
                key_binding_profile: profile,
                require_dpop_nonce: id == "app",
                dpop_bound_access_tokens: false,
                jwks: None,
                created_at: 0,
            })
            .await
            .unwrap();
    }
    store
        .put_user(&User {
            sub: "s-alice".into(),
            username: "alice".into(),
            password_hash: password::hash("pw"),
            name: Some("Alice".into()),
            email: None,
            email_verified: false,
            created_at: 0,
        })
        .await
        .unwrap();
    let app = keybound_server::router(keybound_server::AppState::new(p));
    let handle = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (issuer, handle)
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

async fn sign_in(rp: &Rp, t: &ReqwestTransport) -> Session {
    let pending = rp.begin().await.unwrap();
    let callback = headless::sign_in(t, &pending.url, "alice", "pw")
        .await
        .unwrap();
    let code = rp.callback(&pending, &callback).unwrap();
    rp.exchange(pending, &code).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bound_sign_in_refresh_userinfo_and_presentation() {
    let issuer = start_op().await;
    let t = ReqwestTransport::new().unwrap();
    let mut cfg = RpConfig::new(&issuer, "app", REDIRECT);
    cfg.scope = "openid profile offline_access".into();
    let rp = Rp::new(cfg, Arc::new(t.clone()), Arc::new(SystemClock));
    // this client must use a DPoP nonce: the RP retries once by itself
    let mut session = sign_in(&rp, &t).await;
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
            TrustedIssuer {
                issuer: issuer.clone(),
                jwks_uri: format!("{issuer}/jwks"),
            },
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
    assert_eq!(id.sub, "s-alice");
    assert_eq!(id.jkt.as_str(), session.jkt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft00_profile_and_callback_checks() {
    let issuer = start_op().await;
    let t = ReqwestTransport::new().unwrap();
    let mut cfg = RpConfig::new(&issuer, "app-old", REDIRECT);
    cfg.profile = Profile::Draft00;
    let rp = Rp::new(cfg, Arc::new(t.clone()), Arc::new(SystemClock));
    let session = sign_in(&rp, &t).await;
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
    let issuer = start_op().await;
    let rec = Arc::new(Recording::new());
    let mut cfg = RpConfig::new(&issuer, "app", REDIRECT);
    cfg.scope = "openid offline_access".into();
    let rp = Rp::new(cfg, rec.clone(), Arc::new(SystemClock));
    let pending = rp.begin().await.unwrap();
    let t = ReqwestTransport::new().unwrap();
    let callback = headless::sign_in(&t, &pending.url, "alice", "pw")
        .await
        .unwrap();
    let code = rp.callback(&pending, &callback).unwrap();
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

/// The sleeps `device_wait` asked for, and a clock it shares with the OP: while `down` is
/// false each sleep moves time by one second (so every poll is too fast and earns a
/// `slow_down`); once the OP is stopped each sleep moves it by what was asked.
fn device_sleeper(
    clock: Arc<keybound_op::ManualClock>,
    down: Arc<std::sync::atomic::AtomicBool>,
    sleeps: Arc<std::sync::Mutex<Vec<u64>>>,
) -> impl Fn(std::time::Duration) -> std::future::Ready<()> {
    move |d| {
        sleeps.lock().unwrap().push(d.as_secs());
        if down.load(std::sync::atomic::Ordering::SeqCst) {
            clock.advance(d.as_secs());
        } else {
            clock.advance(1);
        }
        std::future::ready(())
    }
}

/// DF-7: with an OP interval of 90 s the OP goes away; polling backs off on network errors
/// without panicking (the interval is above the 60 s back-off cap), waits at least the
/// interval every time (DF-1), and ends when the device code expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn df7_network_errors_with_interval_90_back_off_without_panic() {
    let clock = Arc::new(keybound_op::ManualClock::new(1_900_000_000));
    let (issuer, op) = start_op_with(clock.clone(), |c| c.device_interval = 90).await;
    let rp = Rp::new(
        RpConfig::new(&issuer, "app", REDIRECT),
        Arc::new(Recording::new()),
        clock.clone(),
    );
    let mut flow = rp.device_begin().await.unwrap();
    assert_eq!(flow.interval, 90);
    op.abort();
    let _ = op.await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sleeps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = rp
        .device_wait(
            &mut flow,
            device_sleeper(clock.clone(), down, sleeps.clone()),
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
    let clock = Arc::new(keybound_op::ManualClock::new(1_900_000_000));
    let (issuer, op) = start_op_with(clock.clone(), |_| {}).await;
    let rp = Rp::new(
        RpConfig::new(&issuer, "app", REDIRECT),
        Arc::new(Recording::new()),
        clock.clone(),
    );
    let mut flow = rp.device_begin().await.unwrap();
    assert_eq!(flow.interval, 5);
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sleeps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let op = std::sync::Mutex::new(Some(op));
    let mut slow_downs = 0;
    let r = rp
        .device_wait(
            &mut flow,
            device_sleeper(clock.clone(), down.clone(), sleeps.clone()),
            |p| {
                if matches!(p, DevicePoll::SlowDown) {
                    slow_downs += 1;
                    if slow_downs == 12 {
                        if let Some(h) = op.lock().unwrap().take() {
                            h.abort();
                        }
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
