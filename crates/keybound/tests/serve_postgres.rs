//! Issue 13 with real processes: two `keybound serve` nodes on one throwaway PostgreSQL (the
//! test kit's cluster on loopback), sharing only the database and the two secrets. Both start
//! at once on the empty database and create one key set; a code minted through node 1 is
//! redeemed through node 2 (the RP's token requests are routed there); `/healthz` answers 503
//! within a few seconds while PostgreSQL is down and 200 again once it is back.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keybound_rp::{HttpRequest, HttpResponse, ReqwestTransport, Rp, RpConfig, RpError, Transport};
use keybound_testkit::browser::Browser;
use keybound_testkit::pg::TestPostgres;
use keybound_testkit::process::{free_port, wait_ready, Keybound};
use keybound_verify::SystemClock;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The load balancer's choice, made by the test: token requests go to `token_node`.
struct TokenRequestsTo {
    inner: ReqwestTransport,
    issuer: String,
    token_node: String,
}

#[async_trait]
impl Transport for TokenRequestsTo {
    async fn send(&self, mut req: HttpRequest) -> Result<HttpResponse, RpError> {
        if req.url == format!("{}/token", self.issuer) {
            req.url = format!("{}/token", self.token_node);
        }
        self.inner.send(req).await
    }
}

async fn health(http: &reqwest::Client, base: &str) -> Option<u16> {
    http.get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql() {
    let pg = TestPostgres::start();
    let url = pg.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    let (_, raw) = keybound_store::Kek::generate().unwrap();
    let kek_b64 = keybound_jose::b64::encode(raw.as_ref());
    let nonce_secret = keybound_jose::random_b64(32);
    let (p1, p2) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{p1}");
    let env = [
        ("KEYBOUND_DATABASE_URL", url.as_str()),
        ("KEYBOUND_KEK", kek_b64.as_str()),
        ("KEYBOUND_DPOP_NONCE_SECRET", nonce_secret.as_str()),
        ("KEYBOUND_DATABASE_ACQUIRE_TIMEOUT", "1"),
        ("KEYBOUND_ISSUER", issuer.as_str()),
        ("KEYBOUND_METRICS_LISTEN", "off"),
    ];
    // both nodes at once on the empty database
    let _n1 = kb.serve_env(p1, &[], &env);
    let _n2 = kb.serve_env(p2, &[], &env);
    let http = reqwest::Client::new();
    let node2 = format!("http://127.0.0.1:{p2}");
    wait_ready(&http, &issuer).await;
    wait_ready(&http, &node2).await;
    let keys = kb.admin_env(&["keys", "list"], &env);
    let states: Vec<&str> = keys.lines().filter_map(|l| l.split('\t').nth(2)).collect();
    assert_eq!(states, ["current", "next"], "{keys}");
    kb.admin_env(
        &[
            "client",
            "add",
            "--client-id",
            "app",
            "--redirect-uri",
            REDIRECT,
        ],
        &env,
    );
    kb.admin_env(
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--password",
            "wonderland",
        ],
        &env,
    );

    // a code minted through node 1, redeemed through node 2
    let rp = Rp::new(
        RpConfig::new(&issuer, "app", REDIRECT),
        Arc::new(TokenRequestsTo {
            inner: ReqwestTransport::new().unwrap(),
            issuer: issuer.clone(),
            token_node: node2.clone(),
        }),
        Arc::new(SystemClock),
    );
    let pending = rp.begin().await.unwrap();
    let back = Browser::new(ReqwestTransport::new().unwrap())
        .sign_in(&pending.url, None, "alice", "wonderland")
        .await
        .unwrap();
    let code = rp.callback(&pending, &back).unwrap();
    let session = rp.exchange(pending, &code).await.unwrap();
    assert!(
        session.bound,
        "node 2 issued a key-bound ID Token for node 1's code"
    );

    // PostgreSQL down: both nodes say so within a few seconds; back up: both recover
    assert_eq!(health(&http, &issuer).await, Some(200));
    pg.stop();
    for base in [&issuer, &node2] {
        assert_eq!(
            health(&http, base).await,
            Some(503),
            "{base} while PostgreSQL is down"
        );
    }
    pg.restart();
    for base in [&issuer, &node2] {
        let mut ok = false;
        for _ in 0..50 {
            if health(&http, base).await == Some(200) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "{base} recovers once PostgreSQL is back");
    }
}
