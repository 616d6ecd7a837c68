//! `keybound serve --tls-cert --tls-key`: TLS terminated by the server itself (rustls on
//! aws-lc-rs), an `https` issuer by default, and `Secure` cookies. The certificate is made by
//! the test (rcgen), trusted by the test's client only.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_testkit::process::{free_port, wait_ready, Keybound};

#[tokio::test]
async fn serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
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
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let _server = kb.serve(
        port,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    wait_ready(&http, &base).await;
    let m: serde_json::Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
