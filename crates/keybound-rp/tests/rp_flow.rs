//! The RP library against keybound's OP on a real loopback socket: sign in (headless forms),
//! exchange with `c_s256`, a key-bound ID Token, refresh with the same key, userinfo with DPoP,
//! a saved 0600 session, and an HTTP presentation accepted by keybound-verify (which fetches the
//! OP's JWKS over HTTP).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_op::{password, OpConfig, OsRandomness, Provider};
use keybound_proto::keybinding::Profile;
use keybound_rp::{headless, ReqwestTransport, Rp, RpConfig, RpError, Session};
use keybound_store::{Client, ClientAuthMethod, MemoryStore, Store, User};
use keybound_verify::{
    HttpFetcher, HttpPresentation, MemoryReplayCache, SystemClock, TrustedIssuer, Verifier,
    VerifierConfig,
};

const REDIRECT: &str = "http://127.0.0.1:9/cb";

async fn start_op() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut cfg = OpConfig::new(&issuer);
    cfg.dpop_nonces = Some(keybound_proto::dpop::NonceSource::new(&[1u8; 32], 60, 2).unwrap());
    let p = Provider::new(
        cfg,
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(OsRandomness),
    );
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
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
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
