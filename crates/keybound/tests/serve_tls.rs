//! `keybound serve --tls-cert --tls-key`: TLS terminated by the server itself (rustls on
//! aws-lc-rs), an `https` issuer by default, and `Secure` cookies. The certificate is made by
//! the test (rcgen), trusted by the test's client only.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_testkit::process::{free_port, wait_ready, Keybound};
use keybound_testkit::tb::TestCert;

#[tokio::test]
async fn serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate();
    let (cert_path, key_path) = cert.write_to(dir.path());
    let port = free_port();
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    kb.admin(&[
        "client",
        "add",
        "--client-id",
        "app",
        "--redirect-uri",
        "https://app.example/cb",
    ]);
    let _server = kb.serve(
        port,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let http = cert.https_client();
    let base = format!("https://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    let m = keybound_testkit::process::discovery(&http, &base).await;
    assert_eq!(m["issuer"], base.as_str());
    let q = "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let r = http
        .get(format!("{base}/authorize?{q}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}
