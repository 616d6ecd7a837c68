//! `keybound login`, `present` and `verify` against the real `keybound serve` on loopback, and
//! `present --send` against a consuming service protected by the keybound-verify extractor.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_testkit::process::{free_port, wait_ready, Keybound};

async fn consumer(issuer: &str) -> String {
    use keybound_verify::axum_support::KeyBound;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let v = Arc::new(keybound_verify::Verifier::new(
        keybound_verify::VerifierConfig::new(
            keybound_verify::TrustedIssuer::new(issuer, &format!("{issuer}/jwks")),
            vec!["cli-app".into()],
            &base,
        ),
        Arc::new(keybound_verify::HttpFetcher::default()),
        Arc::new(keybound_verify::MemoryReplayCache::new(100)),
        Arc::new(keybound_verify::SystemClock),
    ));
    let app = axum::Router::new()
        .route(
            "/hello",
            axum::routing::get(
                |KeyBound(who): KeyBound| async move { format!("hello {}", who.sub) },
            ),
        )
        .with_state(v);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_present_verify() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    let kb = |args: &[&str], cwd: &std::path::Path| bin.run_in(cwd, args);
    let (op_port, cb_port) = (free_port(), free_port());
    let redirect = format!("http://127.0.0.1:{cb_port}/callback");
    bin.admin(&[
        "client",
        "add",
        "--client-id",
        "cli-app",
        "--redirect-uri",
        &redirect,
    ]);
    bin.admin(&["user", "add", "--username", "alice", "--password", "pw"]);
    let _op = bin.serve(op_port, &[]);
    let issuer = format!("http://127.0.0.1:{op_port}");
    wait_ready(&reqwest::Client::new(), &issuer).await;
    let out = kb(
        &[
            "login",
            "--issuer",
            &issuer,
            "--client-id",
            "cli-app",
            "--port",
            &cb_port.to_string(),
            "--username",
            "alice",
            "--password",
            "pw",
            "--session",
            "s.json",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bound to key"), "{stdout}");

    // present: print headers, then verify them with `keybound verify`
    let svc = consumer(&issuer).await;
    let url = format!("{svc}/hello");
    let out = kb(
        &["present", "--url", &url, "--session", "s.json"],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let id_token = text
        .lines()
        .find_map(|l| l.strip_prefix("ID-Token: "))
        .unwrap();
    let dpop = text.lines().find_map(|l| l.strip_prefix("DPoP: ")).unwrap();
    std::fs::write(dir.path().join("id"), id_token).unwrap();
    std::fs::write(dir.path().join("dpop"), dpop).unwrap();
    // `keybound verify` of the saved presentation, for `audience`, as made for `url`
    let verify = |audience: &str, url: &str| {
        kb(
            &[
                "verify",
                "--issuer",
                &issuer,
                "--audience",
                audience,
                "--url",
                url,
                "--id-token",
                "@id",
                "--dpop",
                "@dpop",
            ],
            dir.path(),
        )
    };
    let ok = verify("cli-app", &url);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("accepted: "));
    // the same presentation again, in a new process: the proof was recorded in the data
    // directory's replay cache, so it is refused across the restart
    let again = verify("cli-app", &url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("refused (invalid_dpop_proof): proof replayed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let other = format!("{svc}/elsewhere");
    let bad = verify("cli-app", &other);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("htu"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let wrong_aud = verify("someone-else", &url);
    assert!(!wrong_aud.status.success());

    // present --send to the protected service
    let sent = kb(
        &["present", "--url", &url, "--send", "--session", "s.json"],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(text.starts_with("200") && text.contains("hello "), "{text}");
}
