//! What the HTTP-surface targets share: the whole public OP in process (the real router over
//! an in-memory store, a clock fixed at [`T0`]), and one rule every response must keep.
//!
//! The fixture is built once per fuzzing process (argon2 runs only here) and lives in this
//! crate rather than in keybound-testkit because this workspace is built with coverage
//! instrumentation: the testkit would bring TLS, OpenSSL and an HTTP client into every target.
//!
//! The rule: whatever the request, the OP answers with something other than a 5xx — a refusal
//! is a 4xx with an error code, and this in-memory store is never away (so never 503).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use keybound_op::{password, ManualClock, OpConfig, OsRandomness, Provider};
use keybound_store::{
    BrowserSession, Client, ClientAuthMethod, MemoryStore, Store, TokenHash, User,
};
use tower::ServiceExt as _;

/// The issuer.
pub const ISS: &str = "http://op.fuzz";
/// The fixed time of every request.
pub const T0: u64 = 1_700_000_000;
/// A public code client (PKCE), redirecting to [`REDIRECT`].
pub const PUBLIC: &str = "pub";
/// A confidential client (`client_secret_basic` with [`SECRET`]).
pub const CONFIDENTIAL: &str = "conf";
/// Its secret.
pub const SECRET: &str = "fuzz-secret";
/// The redirect URI both clients registered.
pub const REDIRECT: &str = "http://127.0.0.1:9/cb";
/// The value of a live session cookie (End-User `sub-alice`).
pub const SESSION: &str = "fuzz-session-0123456789abcdef0123456789abcdef";

/// The OP in process.
pub struct Op {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    store: Arc<dyn Store>,
}

static OP: OnceLock<Op> = OnceLock::new();

/// The OP (built on first use).
pub fn op() -> &'static Op {
    OP.get_or_init(build)
}

fn client(id: &str, method: ClientAuthMethod) -> Client {
    Client {
        name: format!("App {id}"),
        secret_hash: (method != ClientAuthMethod::None).then(|| password::hash(SECRET)),
        redirect_uris: vec![REDIRECT.into()],
        ..Client::new(id, method, T0)
    }
}

fn build() -> Op {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (router, store) = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(T0));
        let mut config = OpConfig::new(ISS);
        config.open_registration = true;
        let p = Provider::new(config, store.clone(), clock, Arc::new(OsRandomness));
        p.ensure_signing_keys().await.expect("signing keys");
        store
            .put_client(&client(PUBLIC, ClientAuthMethod::None))
            .await
            .expect("client");
        store
            .put_client(&client(CONFIDENTIAL, ClientAuthMethod::ClientSecretBasic))
            .await
            .expect("client");
        let alice = User {
            email: Some("alice@example.com".into()),
            email_verified: true,
            ..User::new("sub-alice", "alice", password::hash("wonderland"), T0)
        };
        store.put_user(&alice).await.expect("user");
        let session = BrowserSession {
            sub: alice.sub,
            auth_time: T0,
            amr: vec!["pwd".into()],
            created_at: T0,
            expires_at: T0 + 3600,
            fresh_for: None,
            sid: "fuzz-sid".into(),
            clients: Vec::new(),
            dbsc: None,
        };
        store
            .put_session(&TokenHash::of(SESSION), &session)
            .await
            .expect("session");
        (
            keybound_server::router(keybound_server::AppState::new(p)),
            store,
        )
    });
    Op { rt, router, store }
}

impl Op {
    /// Send `req` through the router; panics (a finding) on a 5xx.
    pub fn send(&self, req: Request<Body>) -> StatusCode {
        self.exchange(req).0
    }

    /// [`Op::send`], with the response body.
    pub fn exchange(&self, req: Request<Body>) -> (StatusCode, axum::body::Bytes) {
        self.rt.block_on(async {
            let resp = match self.router.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let status = resp.status();
            assert!(!status.is_server_error(), "a request got {status}");
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("a body");
            (status, body)
        })
    }

    /// Remove a registered client again (so a long run's store does not grow with every
    /// registration the fuzzer gets through).
    pub fn forget_client(&self, client_id: &str) {
        self.rt
            .block_on(self.store.delete_client(client_id))
            .expect("delete");
    }
}

/// `data` cut at its first `n - 1` zero bytes into `n` parts (missing parts are empty).
pub fn parts<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut it = data.splitn(N, |b| *b == 0);
    for slot in &mut out {
        *slot = it.next().unwrap_or_default();
    }
    out
}

/// A request builder with `name: value` added when `value` is a valid, non-empty header value.
pub fn header(
    b: axum::http::request::Builder,
    name: &str,
    value: &[u8],
) -> axum::http::request::Builder {
    match axum::http::HeaderValue::from_bytes(value) {
        Ok(v) if !value.is_empty() => b.header(name, v),
        _ => b,
    }
}
