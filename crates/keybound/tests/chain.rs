//! Identity chaining end to end between two `keybound serve` processes on loopback, each with
//! its own SQLite store and issuer (two trust domains): sign in with Key Binding at A, exchange
//! the key-bound ID Token for an ID-JAG at A, redeem it at B with the jwt-bearer grant, and call
//! an API in domain B (keybound-verify's `DpopAccess` extractor) with the DPoP access token. Then
//! what a thief would try, refused across the real processes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(clippy::many_single_char_names)] // domains a and b, their ports and issuers read well short

use std::sync::Arc;

use axum::routing::get;
use axum::Json;
use keybound_rp::{ReqwestTransport, Rp, RpConfig, RpError};
use keybound_testkit::browser::Browser;
use keybound_testkit::process::{free_port, wait_ready, Keybound};
use keybound_verify::axum_support::DpopAccess;
use keybound_verify::{
    HttpFetcher, MemoryReplayCache, SystemClock, TrustedIssuer, Verifier, VerifierConfig,
};
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// An API in domain B: `/orders` answers who called, for DPoP access tokens B issued.
async fn api_in_domain_b(b_issuer: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let verifier = Arc::new(Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new(b_issuer, &format!("{b_issuer}/jwks")),
            vec![b_issuer.into()],
            &base,
        ),
        Arc::new(HttpFetcher::new(reqwest::Client::new())),
        Arc::new(MemoryReplayCache::new(1000)),
        Arc::new(SystemClock),
    ));
    let app = axum::Router::new()
        .route(
            "/orders",
            get(|DpopAccess(a): DpopAccess| async move {
                Json(json!({ "sub": a.sub, "client_id": a.client_id, "scope": a.scope }))
            }),
        )
        .with_state(verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn rp(issuer: &str, client_id: &str, secret: &str) -> Rp {
    Rp::new(
        RpConfig::new(issuer, client_id, REDIRECT).with_client_secret(secret.into()),
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bound_chain_across_two_keybound_processes() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_keybound");
    let (a, b) = (
        Keybound::new(bin, &dir.path().join("a")),
        Keybound::new(bin, &dir.path().join("b")),
    );
    let (pa, pb, cb) = (free_port(), free_port(), free_port());
    let cli_redirect = format!("http://127.0.0.1:{cb}/callback");
    let (ia, ib) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    // domain A: the End-User and the client allowed to chain into B
    a.admin(&[
        "user",
        "add",
        "--username",
        "alice",
        "--password",
        "wonderland-a",
        "--email",
        "alice@example.com",
    ]);
    a.admin(&[
        "client",
        "add",
        "--client-id",
        "svc",
        "--auth-method",
        "client_secret_basic",
        "--secret",
        "svc-secret-at-a",
        "--redirect-uri",
        REDIRECT,
        "--redirect-uri",
        &cli_redirect,
        "--exchange-audience",
        &format!("{ib}=svc-at-b"),
        "--exchange-scope",
        "orders.read",
    ]);
    let _sa = a.serve_env(pa, &[], &[("KEYBOUND_ID_JAG_TTL", "120")]);
    let _sb = b.serve(pb, &[]);
    let http = reqwest::Client::new();
    wait_ready(&http, &ia).await;
    wait_ready(&http, &ib).await;
    // domain B: the client's registration there, A trusted (keys discovered from A), and the
    // same person's local account, found by verified e-mail
    b.admin(&[
        "client",
        "add",
        "--client-id",
        "svc-at-b",
        "--auth-method",
        "client_secret_basic",
        "--secret",
        "svc-secret-at-b",
        "--redirect-uri",
        REDIRECT,
        "--grant-type",
        "jwt-bearer",
    ]);
    b.admin(&["issuer", "add", "--issuer", &ia, "--subject", "email"]);
    b.admin(&[
        "user",
        "add",
        "--username",
        "alice-at-b",
        "--password",
        "unused-password",
        "--email",
        "alice@example.com",
    ]);
    let b_alice = b.admin(&["user", "list"]);
    let b_sub = b_alice
        .lines()
        .find(|l| l.starts_with("alice-at-b\t"))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap()
        .to_owned();
    let api = api_in_domain_b(&ib).await;

    // sign in at A with Key Binding
    let rp_a = rp(&ia, "svc", "svc-secret-at-a");
    let pending = rp_a.begin().await.unwrap();
    let callback = Browser::new(ReqwestTransport::new().unwrap())
        .sign_in(&pending.url, None, "alice", "wonderland-a")
        .await
        .unwrap();
    let code = rp_a.callback(&pending, &callback).unwrap();
    let session = rp_a.exchange(pending, &code).await.unwrap();
    assert!(session.bound);
    let key = session.key().unwrap();

    // exchange at A: an ID-JAG bound to the same key
    let jag = rp_a
        .exchange_for_id_jag(&session, &ib, Some("orders.read"), None)
        .await
        .unwrap();
    assert_eq!(jag.jkt, Some(session.jkt().unwrap()));
    assert_eq!(jag.expires_in, Some(120), "id_jag_ttl from the settings");

    // redeem at B: a DPoP access token for B's local End-User
    let rp_b = rp(&ib, "svc-at-b", "svc-secret-at-b");
    let t = rp_b.redeem_id_jag(&key, &jag).await.unwrap();
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(t.scope.as_deref(), Some("orders.read"));
    assert!(t.refresh_token.is_none());

    // call B's API
    let r = rp_b
        .call_api(&key, &t.access_token, "GET", &format!("{api}/orders"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let who: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(who["sub"], b_sub.as_str());
    assert_eq!(who["client_id"], "svc-at-b");
    assert_eq!(who["scope"], json!(["orders.read"]));

    // a thief with the ID Token but not the key: B refuses the ID Token as a grant (typ) …
    let thief = keybound_testkit::keys::es256_b();
    let stolen = keybound_rp::IdJag {
        token: session.id_token.clone(),
        ..jag.clone()
    };
    match rp_b.redeem_id_jag(&key, &stolen).await {
        Err(RpError::Op(e)) => assert_eq!(e.error.as_str(), "invalid_grant"),
        other => panic!("an ID Token redeemed as an ID-JAG: {other:?}"),
    }
    // … the ID-JAG with another key is refused …
    match rp_b.redeem_id_jag(&thief, &jag).await {
        Err(RpError::Op(e)) => {
            assert_eq!(e.error.as_str(), "invalid_grant");
            assert!(
                e.error_description
                    .as_deref()
                    .unwrap_or("")
                    .contains("bound"),
                "{e:?}"
            );
        }
        other => panic!("an ID-JAG redeemed with another key: {other:?}"),
    }
    // … and the access token with another key's proof does not open the API
    let r = rp_b
        .call_api(&thief, &t.access_token, "GET", &format!("{api}/orders"))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|w| w.contains("invalid_dpop_proof")));

    // the same chain from the command line: keybound login, then keybound chain --call
    let work = dir.path().to_owned();
    let (a2, url) = (a.clone(), format!("{api}/orders"));
    let (login, chained) = tokio::task::spawn_blocking(move || {
        let login = a2.run_in(
            &work,
            &[
                "login",
                "--issuer",
                &ia,
                "--client-id",
                "svc",
                "--client-secret",
                "svc-secret-at-a",
                "--port",
                &cb.to_string(),
                "--username",
                "alice",
                "--password",
                "wonderland-a",
                "--session",
                "s.json",
            ],
        );
        let chained = a2.run_in(
            &work,
            &[
                "chain",
                "--audience",
                &ib,
                "--as-client-id",
                "svc-at-b",
                "--as-client-secret",
                "svc-secret-at-b",
                "--client-secret",
                "svc-secret-at-a",
                "--scope",
                "orders.read",
                "--call",
                &url,
                "--session",
                "s.json",
            ],
        );
        (login, chained)
    })
    .await
    .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let out = String::from_utf8_lossy(&chained.stdout);
    let err = String::from_utf8_lossy(&chained.stderr);
    assert!(chained.status.success(), "{out}{err}");
    assert!(out.starts_with("200\n") && out.contains(&b_sub), "{out}");
    assert!(err.contains("DPoP access token from"), "{err}");
}
