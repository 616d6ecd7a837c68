//! `keybound serve --tb-listen`: the native Token Binding listener of the real binary (TLS 1.2
//! on OpenSSL, the same certificate as `--tls-cert`). A Token Binding user agent referred by an
//! RP gets an implicit-flow ID Token whose `cnf.tbh` names its binding with that RP; discovery
//! advertises both metadata generations; a client without Token Binding (rustls, the RP's back
//! channel) is served there too; a forged header is refused.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_rp::{HttpRequest, Transport};
use keybound_testkit::browser::Browser;
use keybound_testkit::process::{free_port, Keybound};
use keybound_testkit::tb::{TbTransport, TestCert};

const RP: &str = "https://rp.example";

#[tokio::test]
async fn serve_tb_listen_binds_implicit_id_tokens_to_the_referred_binding() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate();
    let (cert_path, key_path) = cert.write_to(dir.path());
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    kb.admin(&[
        "user",
        "add",
        "--username",
        "alice",
        "--password",
        "wonderland",
    ]);
    kb.admin(&[
        "client",
        "add",
        "--client-id",
        "tb-web",
        "--redirect-uri",
        &format!("{RP}/cb"),
        "--response-type",
        "id_token",
        "--token-bound-id-tokens",
    ]);
    let (port, tb_port) = (free_port(), free_port());
    let tb_addr = format!("127.0.0.1:{tb_port}");
    let _server = kb.serve(
        port,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
            "--tb-listen",
            &tb_addr,
        ],
    );
    let issuer = format!("https://{tb_addr}");
    // the back channel: rustls, no Token Binding, on the Token Binding listener
    let http = cert.https_client();
    keybound_testkit::process::wait_ready(&http, &issuer).await;
    let m = keybound_testkit::process::discovery(&http, &issuer).await;
    assert_eq!(
        m["issuer"],
        issuer.as_str(),
        "the issuer defaults to the tb_listen address"
    );
    assert_eq!(m["op_id_token_token_binding_supported"], true);
    assert_eq!(m["id_token_token_binding_cnf_values_supported"][0], "tbh");

    let ua = TbTransport::new(&cert.cert_pem);
    let rp_binding = ua.token_binding_id(RP);
    ua.refer_next(RP);
    let mut browser = Browser::new(ua);
    let url = format!(
        "{issuer}/authorize?response_type=id_token&client_id=tb-web&redirect_uri={}&scope=openid&nonce=n1&state=s1",
        url::form_urlencoded::byte_serialize(format!("{RP}/cb").as_bytes()).collect::<String>()
    );
    let back = browser
        .sign_in(&url, Some(RP), "alice", "wonderland")
        .await
        .unwrap();
    let fragment = url::Url::parse(&back)
        .unwrap()
        .fragment()
        .unwrap()
        .to_owned();
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(fragment.as_bytes())
            .into_owned()
            .collect();
    let payload = params["id_token"].split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&keybound_jose::b64::decode(payload).unwrap()).unwrap();
    assert_eq!(claims["cnf"]["tbh"], rp_binding.tbh().unwrap());

    // a forged Sec-Token-Binding (signed over no connection's EKM) is refused with the reason
    let key =
        keybound_tls::client::TbKey::generate(keybound_proto::tokbind::KeyParameters::EcdsaP256)
            .unwrap();
    let forged = keybound_tls::client::header(&key, None, &[7; 32]).unwrap();
    let config = keybound_tls::client::ClientConfig::new(cert.cert_pem.as_bytes()).unwrap();
    let mut conn = keybound_tls::client::connect(&config, tb_addr.parse().unwrap(), "127.0.0.1")
        .await
        .unwrap();
    let req = axum::http::Request::get("/.well-known/openid-configuration")
        .header("host", &tb_addr)
        .header("sec-token-binding", forged)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = conn.send(req).await.unwrap();
    assert_eq!(r.status, 400);
    let e: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(e["error"], "invalid_request");
    assert!(e["error_description"]
        .as_str()
        .unwrap()
        .contains("signature does not verify"));
    // the main (rustls) listener is still there
    let main = http
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 200);
    // the transport still works after all that
    let again = browser
        .transport()
        .send(HttpRequest::get(&format!("{issuer}/jwks")))
        .await
        .unwrap();
    assert_eq!(again.status, 200);
}
