//! The headless form browser (`keybound_rp::browser`, re-exported), and [`RouterTransport`],
//! which drives it straight into the OP's axum router in process (no socket) — a test fixture,
//! so it lives here, while the browser itself serves the `keybound` binary too.

use async_trait::async_trait;
pub use keybound_rp::browser::*;
use keybound_rp::RpError;

/// A [`Transport`] straight into an axum router, in process (no socket): the whole OP as a
/// tower service.
#[derive(Clone)]
pub struct RouterTransport(pub axum::Router);

impl std::fmt::Debug for RouterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouterTransport")
    }
}

#[async_trait]
impl Transport for RouterTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError> {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let uri = url::Url::parse(&req.url).map_err(|e| RpError::http(&req.url, e))?;
        let path = match uri.query() {
            Some(q) => format!("{}?{q}", uri.path()),
            None => uri.path().to_owned(),
        };
        let mut b = axum::http::Request::builder()
            .method(req.method.as_str())
            .uri(path);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        let request = b
            .body(axum::body::Body::from(req.body.unwrap_or_default()))
            .map_err(|e| RpError::http(&req.url, e))?;
        let resp = self
            .0
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| RpError::http(&req.url, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| RpError::http(&req.url, e))?
            .to_bytes()
            .to_vec();
        Ok(HttpResponse::from_parts(status, &headers, body))
    }
}
