//! `keybound serve --tls-cert --tls-key`: TLS terminated by the server itself (rustls on
//! aws-lc-rs), an `https` issuer by default, and `Secure` cookies. The certificate is made by
//! the test (rcgen), trusted by the test's client only.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

/// Kills the server when the test ends, even by a failed assertion.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_keybound");
    let st = Command::new(bin)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "admin",
            "client",
            "add",
            "--client-id",
            "app",
            "--redirect-uri",
            "https://app.example/cb",
        ])
        .output()
        .unwrap();
    assert!(st.status.success());
    let _server = Kill(
        Command::new(bin)
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.path().join("key.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "TLS server did not become ready within 5 s");
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
