//! `keybound demo --spa`: a single-page app whose key cannot leave it, on loopback. The OP (with
//! the demo user and the public client `spa`), and on a second origin the example app of
//! `clients/browser` with its API: `/api/orders` takes DPoP-bound access tokens for the API's
//! resource, `/api/me` takes the key-bound ID Token presented with a proof (docs/presentation.md).
//! The page holds a non-extractable WebCrypto key; every token it gets is bound to it. Runs
//! until interrupted.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keybound_store::{Client, ClientAuthMethod};
use keybound_verify::axum_support::{DpopAccess, KeyBound};
use serde_json::json;

use crate::demo::{bind, demo_user, start_op, tempfile_dir, verifier, DEMO_PASSWORD};

/// The package and the example app, served as they are in the repository.
const FILES: [(&str, &str, &str); 5] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../clients/browser/example/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../clients/browser/example/app.js"),
    ),
    (
        "/keybound-browser/index.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../clients/browser/src/index.js"),
    ),
    (
        "/keybound-browser/jose.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../clients/browser/src/jose.js"),
    ),
    (
        "/keybound-browser/storage.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../clients/browser/src/storage.js"),
    ),
];

async fn orders(DpopAccess(a): DpopAccess) -> Json<serde_json::Value> {
    Json(json!({
        "orders_of": a.sub,
        "client_id": a.client_id,
        "proved_key": a.jkt.as_ref().map(|j| j.as_str().to_owned()),
        "by": "DPoP access token",
    }))
}

async fn me(KeyBound(who): KeyBound) -> Json<serde_json::Value> {
    Json(json!({
        "sub": who.sub,
        "proved_key": who.jkt.as_str(),
        "by": "key-bound ID Token",
    }))
}

/// A static file with the app's Content-Security-Policy: scripts only from this origin, network
/// only to it and the OP.
fn file(content_type: &'static str, body: &'static str, op: &str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'self'; connect-src 'self' {op}; style-src 'self' 'unsafe-inline'; \
         frame-ancestors 'none'; base-uri 'none'"
    )) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    r
}

/// Start everything, print where, run until Ctrl-C.
pub async fn run() -> anyhow::Result<()> {
    let op_socket = bind().await?;
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = format!("http://{}", app_listener.local_addr()?);
    let api = format!("{app}/api");
    let issuer = op_socket.1.clone();
    let dir = tempfile_dir()?;
    let spa = Client {
        name: "Single-page app".into(),
        redirect_uris: vec![format!("{app}/")],
        post_logout_redirect_uris: vec![format!("{app}/")],
        resources: vec![api.clone()],
        dpop_bound_access_tokens: true,
        ..Client::new("spa", ClientAuthMethod::None, crate::now())
    };
    start_op(
        op_socket,
        &dir,
        vec![spa],
        vec![demo_user("demo-user")],
        Vec::new(),
    )
    .await?;

    // one verifier: ID Tokens for the client `spa`, access tokens for the API's resource
    let verifier = verifier(&issuer, vec!["spa".into(), api.clone()], &app);
    let config = json!({ "issuer": issuer, "clientId": "spa", "api": api });
    let mut router = Router::new()
        .route("/api/orders", get(orders))
        .route("/api/me", get(me))
        .route("/config.json", get(move || async move { Json(config) }))
        .with_state(Arc::clone(&verifier));
    for (path, content_type, body) in FILES {
        let op = issuer.clone();
        router = router.route(
            path,
            get(move || async move { file(content_type, body, &op) }),
        );
    }
    tokio::spawn(async move { axum::serve(app_listener, router).await });

    println!("keybound demo --spa: a single-page app whose key cannot leave it");
    println!("  OP:        {issuer}");
    println!("  app:       {app}/");
    println!("  API:       {api}/orders (DPoP access token), {api}/me (key-bound ID Token)");
    println!("  sign in:   demo / {DEMO_PASSWORD}");
    println!("Open the app in a browser; Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
