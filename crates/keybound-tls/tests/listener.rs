//! The native Token Binding listener on loopback, driven by the test user agent: negotiation
//! (RFC 8472 §4), per-request verification (RFC 8473 §2, RFC 8471 §4.2), and each way a
//! binding can be wrong, refused with its reason.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use axum::http::Request;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http_body_util::Full;
use keybound_proto::tokbind::{KeyParameters, TbPublicKey, TokenBindingMessage, TokenBindingType};
use keybound_testkit::tb::{TbListener, TbTransport};
use keybound_tls::client::{self, ClientConfig, Connection, TbKey};
use keybound_tls::VerifiedTokenBinding;

/// Echoes what the listener verified, and any terminator header that reached the handler.
fn probe() -> Router {
    Router::new().route(
        "/whoami",
        get(
            |v: Option<Extension<VerifiedTokenBinding>>, headers: axum::http::HeaderMap| async move {
                let v = v.map(|Extension(v)| v.0);
                Json(serde_json::json!({
                    "provided": v.as_ref().map(|v| v.provided.tbh().unwrap()),
                    "referred": v.as_ref().and_then(|v| v.referred.as_ref()).map(|r| r.tbh().unwrap()),
                    "forwarded": headers.get("sec-provided-token-binding-id").is_some(),
                }))
            },
        ),
    )
}

async fn connect(l: &TbListener, config: &ClientConfig) -> Connection {
    client::connect(config, l.addr, "127.0.0.1").await.unwrap()
}

fn config(l: &TbListener) -> ClientConfig {
    ClientConfig::new(l.cert.cert_pem.as_bytes()).unwrap()
}

async fn whoami(conn: &mut Connection, headers: &[&str]) -> (u16, serde_json::Value) {
    let mut b = Request::get("/whoami").header("host", "127.0.0.1");
    for h in headers {
        b = b.header("sec-token-binding", *h);
    }
    let r = conn
        .send(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

fn description(v: &serde_json::Value) -> &str {
    assert_eq!(v["error"], "invalid_request", "{v}");
    v["error_description"].as_str().unwrap()
}

#[tokio::test]
async fn rfc8472_each_key_parameter_negotiates_and_verifies() {
    let l = TbListener::start(probe());
    for params in [
        KeyParameters::EcdsaP256,
        KeyParameters::RsaPss,
        KeyParameters::RsaPkcs1,
    ] {
        let mut conn = connect(&l, &config(&l).offer(&[params])).await;
        assert_eq!(conn.token_binding().negotiated(), Some(params));
        let key = TbKey::generate(params).unwrap();
        let ekm = *conn.token_binding().ekm().unwrap();
        let (status, body) = whoami(&mut conn, &[&client::header(&key, None, &ekm).unwrap()]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["provided"], key.id().tbh().unwrap());
        assert!(body["referred"].is_null());
    }
}

#[tokio::test]
async fn the_client_preference_decides_and_unknown_parameters_are_skipped() {
    let l = TbListener::start(probe());
    let c = config(&l).offer(&[
        KeyParameters::Unknown(7),
        KeyParameters::RsaPss,
        KeyParameters::EcdsaP256,
    ]);
    assert_eq!(
        connect(&l, &c).await.token_binding().negotiated(),
        Some(KeyParameters::RsaPss)
    );
    // only unsupported key parameters offered: no Token Binding
    let c = config(&l).offer(&[KeyParameters::Unknown(3)]);
    assert_eq!(connect(&l, &c).await.token_binding().negotiated(), None);
}

#[tokio::test]
async fn rfc8472_4_not_negotiated_without_extended_master_secret() {
    let l = TbListener::start(probe());
    let mut conn = connect(&l, &config(&l).without_extended_master_secret().unwrap()).await;
    assert_eq!(conn.token_binding().negotiated(), None);
    // and a header sent anyway is refused (TB-S2)
    let key = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let (status, body) = whoami(&mut conn, &[&client::header(&key, None, &[0; 32]).unwrap()]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("did not negotiate Token Binding"));
}

#[tokio::test]
async fn tb_s2_a_header_without_negotiated_token_binding_is_refused() {
    let l = TbListener::start(probe());
    let mut conn = connect(&l, &config(&l).offer(&[])).await;
    assert_eq!(conn.token_binding().negotiated(), None);
    // nothing sent: served without a binding
    let (status, body) = whoami(&mut conn, &[]).await;
    assert_eq!((status, body["provided"].is_null()), (200, true));
    let mut other = connect(&l, &config(&l)).await;
    let ekm = *other.token_binding().ekm().unwrap();
    let key = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let (status, body) = whoami(&mut conn, &[&client::header(&key, None, &ekm).unwrap()]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("did not negotiate Token Binding"));
    // RFC 8473 §2: negotiated, but the request carries no header
    let (status, body) = whoami(&mut other, &[]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("no Sec-Token-Binding header"));
}

#[tokio::test]
async fn tb_s4_ekm_or_signature_tampered_is_refused() {
    let l = TbListener::start(probe());
    let key = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let mut conn = connect(&l, &config(&l)).await;
    let mut ekm = *conn.token_binding().ekm().unwrap();
    ekm[0] ^= 1;
    let (status, body) = whoami(&mut conn, &[&client::header(&key, None, &ekm).unwrap()]).await;
    assert_eq!(status, 400);
    assert_eq!(
        description(&body),
        "Token Binding: signature does not verify over the exported keying material"
    );
    let mut conn = connect(&l, &config(&l)).await;
    let ekm = *conn.token_binding().ekm().unwrap();
    let mut b = key.binding(TokenBindingType::Provided, &ekm).unwrap();
    b.signature[5] ^= 0x80;
    let value = TokenBindingMessage { bindings: vec![b] }
        .to_header()
        .unwrap();
    let (status, body) = whoami(&mut conn, &[&value]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("signature does not verify"));
}

#[tokio::test]
async fn rfc8471_a_header_replayed_on_another_connection_is_refused() {
    let l = TbListener::start(probe());
    let key = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let mut first = connect(&l, &config(&l)).await;
    let captured = client::header(&key, None, first.token_binding().ekm().unwrap()).unwrap();
    assert_eq!(whoami(&mut first, &[&captured]).await.0, 200);
    // the same header again on its own connection is fine (the EKM is per connection)
    assert_eq!(whoami(&mut first, &[&captured]).await.0, 200);
    let mut second = connect(&l, &config(&l)).await;
    let (status, body) = whoami(&mut second, &[&captured]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("signature does not verify"));
}

#[tokio::test]
async fn rfc8473_2_two_headers_are_refused() {
    let l = TbListener::start(probe());
    let key = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let mut conn = connect(&l, &config(&l)).await;
    let h = client::header(&key, None, conn.token_binding().ekm().unwrap()).unwrap();
    let (status, body) = whoami(&mut conn, &[&h, &h]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("2 Sec-Token-Binding headers"));
}

#[tokio::test]
async fn tb_s3_provided_binding_with_other_key_parameters_is_refused() {
    let l = TbListener::start(probe());
    let mut conn = connect(&l, &config(&l)).await; // ecdsap256
    let rsa = TbKey::generate(KeyParameters::RsaPss).unwrap();
    let h = client::header(&rsa, None, conn.token_binding().ekm().unwrap()).unwrap();
    let (status, body) = whoami(&mut conn, &[&h]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains(
        "uses key parameters 1 (rsa2048_pss) but this connection negotiated 2 (ecdsap256)"
    ));
    // a referred binding may use other key parameters (RFC 8471 §4.2)
    let mut conn = connect(&l, &config(&l)).await;
    let ec = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let h = client::header(&ec, Some(&rsa), conn.token_binding().ekm().unwrap()).unwrap();
    let (status, body) = whoami(&mut conn, &[&h]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["referred"], rsa.id().tbh().unwrap());
}

#[tokio::test]
async fn unsupported_key_parameters_in_a_binding_are_refused() {
    let l = TbListener::start(probe());
    let mut conn = connect(&l, &config(&l)).await;
    let ekm = *conn.token_binding().ekm().unwrap();
    let ec = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let mut referred = ec.binding(TokenBindingType::Referred, &ekm).unwrap();
    referred.id.key_parameters = KeyParameters::Unknown(9);
    if let TbPublicKey::Ec { point } = &referred.id.key {
        referred.id.key = TbPublicKey::Unknown([&[64u8][..], point].concat());
    }
    let value = TokenBindingMessage {
        bindings: vec![
            ec.binding(TokenBindingType::Provided, &ekm).unwrap(),
            referred,
        ],
    }
    .to_header()
    .unwrap();
    let (status, body) = whoami(&mut conn, &[&value]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("unsupported key parameters 9"));
}

#[tokio::test]
async fn rfc8471_3_1_an_rsa_id_with_a_leading_zero_byte_is_refused() {
    let l = TbListener::start(probe());
    let mut conn = connect(&l, &config(&l).offer(&[KeyParameters::RsaPkcs1])).await;
    let ekm = *conn.token_binding().ekm().unwrap();
    let key = TbKey::generate(KeyParameters::RsaPkcs1).unwrap();
    let mut b = key.binding(TokenBindingType::Provided, &ekm).unwrap();
    if let TbPublicKey::Rsa { modulus, .. } = &mut b.id.key {
        modulus.insert(0, 0);
    }
    let value = TokenBindingMessage { bindings: vec![b] }
        .to_header()
        .unwrap();
    let (status, body) = whoami(&mut conn, &[&value]).await;
    assert_eq!(status, 400);
    assert!(description(&body).contains("leading zero byte"), "{body}");
}

#[tokio::test]
async fn terminator_headers_from_clients_are_stripped() {
    let l = TbListener::start(probe());
    let mut conn = connect(&l, &config(&l)).await;
    let key = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let h = client::header(&key, None, conn.token_binding().ekm().unwrap()).unwrap();
    let req = Request::get("/whoami")
        .header("host", "127.0.0.1")
        .header("sec-token-binding", h)
        .header("sec-provided-token-binding-id", "AgBBQA")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = conn.send(req).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["forwarded"], false);
}

/// The user agent: one key per site, a provided binding on every request.
#[tokio::test]
async fn the_test_user_agent_binds_per_site() {
    use keybound_testkit::browser::{HttpRequest, Transport};
    let l = TbListener::start(probe());
    let ua = TbTransport::new(&l.cert.cert_pem);
    let url = format!("{}/whoami", l.base_url());
    let r = ua.send(HttpRequest::get(&url)).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["provided"], ua.token_binding_id(&url).tbh().unwrap());
    let again = ua.send(HttpRequest::get(&url)).await.unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.body).unwrap();
    assert_eq!(
        again["provided"], body["provided"],
        "same key on a new connection"
    );
}
