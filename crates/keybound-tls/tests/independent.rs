//! The native listener verifies a Token Binding message built by an independent
//! implementation: `independent/tb_message.py` (pyca/cryptography and `struct`, none of
//! keybound's code) signs over the EKM of a live connection, and the listener accepts it and
//! reports the same Token Binding ID hash. (Google's token_bind library and Apache
//! mod_token_binding are not packaged in any registry this project can install from; see
//! docs/token-binding.md.)
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use axum::http::Request;
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http_body_util::Full;
use keybound_proto::tokbind::KeyParameters;
use keybound_testkit::tb::TbListener;
use keybound_tls::client::{self, ClientConfig};
use keybound_tls::VerifiedTokenBinding;

fn python_message(ekm: &[u8; 32], params: &str) -> (String, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/independent/tb_message.py"
    );
    // scripts/test.sh names a Python that has pyca/cryptography (Debian's, if PATH's lacks it)
    let python = std::env::var("KEYBOUND_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(keybound_testkit::hex(ekm))
        .arg(params)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs {python} with cryptography (scripts/test.sh installs python3-cryptography): {e}")
        });
    assert!(
        out.status.success(),
        "tb_message.py failed (python3-cryptography installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn rfc8471_a_message_from_an_independent_implementation_verifies() {
    let app = Router::new().route(
        "/",
        get(|v: Option<Extension<VerifiedTokenBinding>>| async move {
            v.map(|Extension(v)| v.0.provided.tbh().unwrap())
                .unwrap_or_default()
        }),
    );
    let l = TbListener::start(app);
    for (params, name) in [
        (KeyParameters::EcdsaP256, "ecdsap256"),
        (KeyParameters::RsaPss, "rsa2048_pss"),
        (KeyParameters::RsaPkcs1, "rsa2048_pkcs1.5"),
    ] {
        let config = ClientConfig::new(l.cert.cert_pem.as_bytes())
            .unwrap()
            .offer(&[params]);
        let mut conn = client::connect(&config, l.addr, "127.0.0.1").await.unwrap();
        let ekm = *conn.token_binding().ekm().unwrap();
        let (header, tbh) = python_message(&ekm, name);
        let send = |h: String| {
            Request::get("/")
                .header("host", "127.0.0.1")
                .header("sec-token-binding", h)
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let r = conn.send(send(header.clone())).await.unwrap();
        assert_eq!(
            r.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(String::from_utf8_lossy(&r.body), tbh, "{name}");
        // and the same message on another connection is refused
        let mut other = client::connect(&config, l.addr, "127.0.0.1").await.unwrap();
        assert_eq!(
            other.send(send(header)).await.unwrap().status,
            400,
            "{name}"
        );
    }
}
