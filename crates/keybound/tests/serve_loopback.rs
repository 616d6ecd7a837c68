//! The real binary on 127.0.0.1: provisioned with `keybound admin`, driven over HTTP through
//! login, consent and the key-bound token request, then killed with SIGKILL and restarted on
//! the same data directory to show that clients, users, signing keys (same `kid`), refresh
//! tokens and consents survive. Every wait is bounded.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_proto::dpop::ProofBuilder;
use keybound_rp::ReqwestTransport;
use keybound_testkit::browser::Browser;
use keybound_testkit::keys;
use keybound_testkit::process::{free_port, wait_ready, Keybound};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_keybound");
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A headless browser for the server's pages.
fn browser() -> Browser<ReqwestTransport> {
    Browser::new(ReqwestTransport::new().unwrap())
}

fn authorize_url(base: &str, jkt: &str) -> String {
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid offline_access bound_key"),
        ("state", "s"),
        ("nonce", "n"),
        (
            "code_challenge",
            &keybound_jose::sha256_b64(VERIFIER.as_bytes()),
        ),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", jkt),
    ])
    .unwrap();
    format!("{base}/authorize?{q}")
}

fn code_from(location: &str) -> String {
    let u = url::Url::parse(location).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

/// Proofs need the real time of the real server.
fn now() -> u64 {
    keybound_proto::Clock::now(&keybound_verify::SystemClock)
}

#[tokio::test]
async fn serve_flow_then_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kb = Keybound::new(BIN, &data);
    kb.admin(&[
        "client",
        "add",
        "--client-id",
        "app",
        "--redirect-uri",
        REDIRECT,
    ]);
    kb.admin(&[
        "user",
        "add",
        "--username",
        "alice",
        "--password",
        "wonderland",
    ]);
    let keys_before = kb.admin(&["keys", "list"]);
    let current_kid = keys_before
        .lines()
        .find(|l| l.ends_with("current"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("kek.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key-encryption key file is 0600");
    }

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = kb.serve(port, &[]);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    wait_ready(&http, &base).await;

    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint().to_string();
    let mut b = browser();
    let login = b.get(&authorize_url(&base, &jkt)).await.unwrap();
    let action = format!("{base}/authorize");
    let consent = b
        .submit(
            &action,
            &login,
            &[("username", "alice"), ("password", "wonderland")],
        )
        .await
        .unwrap();
    assert!(consent.body.contains(&jkt), "consent names the key");
    let done = b
        .submit(&action, &consent, &[("decision", "allow")])
        .await
        .unwrap();
    assert_eq!(done.status, 303);
    let code = code_from(&done.location.unwrap());
    let proof = ProofBuilder::new("POST", &format!("{base}/token"), now(), "t1")
        .c_s256(&code)
        .sign(&key)
        .unwrap();
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "app"),
    ])
    .unwrap();
    let (first_proof, first_form) = (proof.clone(), form.clone());
    let r = http
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let id = keybound_jose::Jws::parse(t["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id.header().typ.as_deref(), Some("dpop+id_token"));
    assert_eq!(id.header().kid.as_deref(), Some(current_kid.as_str()));
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();

    // SIGKILL: no graceful shutdown, no flush beyond what SQLite committed
    server.kill_9();
    let server = kb.serve(port, &[]);
    wait_ready(&http, &base).await;

    let jwks: Value = http
        .get(format!("{base}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == current_kid.as_str()),
        "same kid after restart"
    );
    // the replay table survived: the first token request's proof, sent again after the
    // restart, is refused as a replay (before its code, already used, is even looked at)
    let r = http
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", first_proof)
        .body(first_form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_dpop_proof", "{e}");
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("replayed"),
        "{e}"
    );
    // the refresh token survived, still bound to the key
    let proof = ProofBuilder::new("POST", &format!("{base}/token"), now(), "t2")
        .sign(&key)
        .unwrap();
    let form = serde_urlencoded::to_string([
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", "app"),
    ])
    .unwrap();
    let r = http
        .post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // the consent survived: after login the code is issued without asking again
    let mut b2 = browser();
    let login = b2.get(&authorize_url(&base, &jkt)).await.unwrap();
    let done = b2
        .submit(
            &action,
            &login,
            &[("username", "alice"), ("password", "wonderland")],
        )
        .await
        .unwrap();
    assert_eq!(done.status, 303, "no consent page for an already-bound key");
    assert!(done.location.unwrap().contains("code="));
    drop(server);
}
