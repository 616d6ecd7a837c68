//! CORS for single-page apps (issue 24 item 2): discovery, JWKS, PAR, token, userinfo and
//! revocation answer cross-origin requests from public clients' web origins only (their
//! `--web-origin`s, else their redirect URIs' origins), exposing `DPoP-Nonce` and
//! `WWW-Authenticate`; nothing else has CORS; preflights are answered from memory, never the
//! store.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request};
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::op::{client, OpBuilder};
use tower::ServiceExt as _;

const SPA: &str = "http://127.0.0.1:5555";
const OTHER_SPA: &str = "https://spa.example";
const CONF: &str = "https://conf.example";

/// `spa`: public, redirect URI at [`SPA`]; `web`: public with web origin [`OTHER_SPA`] and a
/// redirect URI elsewhere; `conf`: confidential at [`CONF`].
async fn op() -> keybound_testkit::op::TestOp {
    OpBuilder::new()
        .client(Client {
            redirect_uris: vec![format!("{SPA}/cb")],
            ..client("spa", ClientAuthMethod::None)
        })
        .client(Client {
            redirect_uris: vec!["https://web.example/cb".into()],
            web_origins: vec![OTHER_SPA.into()],
            ..client("web", ClientAuthMethod::None)
        })
        .client(Client {
            redirect_uris: vec![format!("{CONF}/cb")],
            ..client("conf", ClientAuthMethod::ClientSecretBasic)
        })
        .build()
        .await
}

async fn send(router: &axum::Router, method: Method, path: &str, origin: &str) -> HeaderMap {
    let req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::ORIGIN, origin);
    let req = if method == Method::OPTIONS {
        req.header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "dpop,content-type")
    } else {
        req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
    };
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    resp.headers().clone()
}

fn allowed(h: &HeaderMap) -> Option<&str> {
    h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn cors_for_a_public_clients_origin_with_dpop_headers() {
    let router = op().await.router();
    // a page's first request: discovery, a simple GET
    let h = send(
        &router,
        Method::GET,
        "/.well-known/openid-configuration",
        SPA,
    )
    .await;
    assert_eq!(allowed(&h), Some(SPA));
    assert!(h.get_all(header::VARY).iter().any(|v| v
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin")));
    for path in ["/token", "/par", "/userinfo", "/revoke", "/jwks"] {
        let pre = send(&router, Method::OPTIONS, path, SPA).await;
        assert_eq!(allowed(&pre), Some(SPA), "preflight {path}");
        let headers = pre[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("dpop"), "{path}: {headers}");
        assert_eq!(pre[header::ACCESS_CONTROL_MAX_AGE], "600");
    }
    // the answer itself (an error here) exposes the DPoP headers
    let h = send(&router, Method::POST, "/token", SPA).await;
    assert_eq!(allowed(&h), Some(SPA));
    let exposed = h[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("dpop-nonce") && exposed.contains("www-authenticate"));
}

#[tokio::test]
async fn cors_never_for_other_origins_or_endpoints() {
    let router = op().await.router();
    send(&router, Method::GET, "/jwks", SPA).await;
    // a confidential client's origin, an origin nobody registered, a web origin's sibling
    for origin in [
        CONF,
        "https://attacker.example",
        "http://127.0.0.1:5556",
        "null",
    ] {
        let h = send(&router, Method::GET, "/jwks", origin).await;
        assert_eq!(allowed(&h), None, "{origin}");
        let pre = send(&router, Method::OPTIONS, "/token", origin).await;
        assert_eq!(allowed(&pre), None, "{origin}");
    }
    // endpoints pages never call
    for path in [
        "/authorize",
        "/introspect",
        "/register",
        "/device_authorization",
        "/end_session",
        "/logout",
    ] {
        let h = send(&router, Method::POST, path, SPA).await;
        assert_eq!(allowed(&h), None, "{path}");
        let pre = send(&router, Method::OPTIONS, path, SPA).await;
        assert_eq!(allowed(&pre), None, "preflight {path}");
    }
}

#[tokio::test]
async fn cors_web_origins_replace_the_redirect_uris_origins() {
    let router = op().await.router();
    let h = send(&router, Method::GET, "/jwks", OTHER_SPA).await;
    assert_eq!(allowed(&h), Some(OTHER_SPA));
    let h = send(&router, Method::GET, "/jwks", "https://web.example").await;
    assert_eq!(allowed(&h), None);
}

#[tokio::test]
async fn cors_preflights_are_answered_from_memory_never_the_store() {
    let op = op().await;
    let (store, clock) = (op.store.clone(), op.clock.clone());
    let router = op.router();
    send(&router, Method::GET, "/jwks", SPA).await;
    // the client goes; past the cache lifetime, preflights still answer from what was loaded
    assert!(store.delete_client("spa").await.unwrap());
    clock.advance(10);
    let pre = send(&router, Method::OPTIONS, "/token", SPA).await;
    assert_eq!(allowed(&pre), Some(SPA), "a preflight read the store");
    // the next request with an Origin reloads
    let h = send(&router, Method::GET, "/jwks", SPA).await;
    assert_eq!(allowed(&h), None);
    let pre = send(&router, Method::OPTIONS, "/token", SPA).await;
    assert_eq!(allowed(&pre), None);
}
