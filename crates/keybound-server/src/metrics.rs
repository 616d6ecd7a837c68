//! Prometheus metrics: requests, latency and OAuth error codes per endpoint. A handful of
//! counters behind one mutex; the exposition format is the plain-text one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Default, Debug)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; 8],
}

/// Counters per (path, status), and OAuth error codes per (path, code).
#[derive(Default, Debug)]
pub struct Metrics {
    inner: Mutex<BTreeMap<(String, u16), Series>>,
    errors: Mutex<BTreeMap<(String, &'static str), u64>>,
    purged: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    fn observe(&self, path: &str, status: u16, secs: f64) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let s = g.entry((path.to_owned(), status)).or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    fn error(&self, path: &str, code: &'static str) {
        let mut g = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *g.entry((path.to_owned(), code)).or_default() += 1;
    }

    /// Count the rows a purge pass removed.
    pub fn purged(&self, report: &keybound_op::PurgeReport) {
        let mut g = self.purged.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, n) in &report.removed {
            *g.entry(kind.as_str()).or_default() += n;
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::from(
            "# HELP keybound_http_requests_total HTTP requests by endpoint and status.\n\
             # TYPE keybound_http_requests_total counter\n",
        );
        for ((p, st), s) in g.iter() {
            out.push_str(&format!(
                "keybound_http_requests_total{{path=\"{p}\",status=\"{st}\"}} {}\n",
                s.count
            ));
        }
        out.push_str(
            "# HELP keybound_http_request_duration_seconds Request latency.\n\
             # TYPE keybound_http_request_duration_seconds histogram\n",
        );
        for ((p, st), s) in g.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "keybound_http_request_duration_seconds_bucket{{path=\"{p}\",status=\"{st}\",le=\"{b}\"}} {}\n",
                    s.buckets[i]
                ));
            }
            out.push_str(&format!(
                "keybound_http_request_duration_seconds_bucket{{path=\"{p}\",status=\"{st}\",le=\"+Inf\"}} {}\n",
                s.count
            ));
            out.push_str(&format!(
                "keybound_http_request_duration_seconds_sum{{path=\"{p}\",status=\"{st}\"}} {}\n",
                s.sum
            ));
            out.push_str(&format!(
                "keybound_http_request_duration_seconds_count{{path=\"{p}\",status=\"{st}\"}} {}\n",
                s.count
            ));
        }
        drop(g);
        out.push_str(
            "# HELP keybound_oauth_errors_total OAuth error responses by endpoint and error code.\n\
             # TYPE keybound_oauth_errors_total counter\n",
        );
        let e = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        for ((p, code), n) in e.iter() {
            out.push_str(&format!(
                "keybound_oauth_errors_total{{path=\"{p}\",error=\"{code}\"}} {n}\n"
            ));
        }
        drop(e);
        out.push_str(
            "# HELP keybound_purged_rows_total Expired rows removed from the store, by kind.\n\
             # TYPE keybound_purged_rows_total counter\n",
        );
        let p = self.purged.lock().unwrap_or_else(PoisonError::into_inner);
        for (kind, n) in p.iter() {
            out.push_str(&format!(
                "keybound_purged_rows_total{{kind=\"{kind}\"}} {n}\n"
            ));
        }
        out
    }
}

/// Middleware recording every request, giving it a request id (sent as `X-Request-Id`, so a
/// client can quote it to the operator) and a context for the security events it causes, and
/// logging internal failures with their cause and that id. Latency
/// is measured with the monotonic clock; it is a metric, not protocol time.
#[allow(clippy::disallowed_methods)] // measuring latency, not deciding anything by time
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = match req.uri().path() {
        p if keybound_op::paths_known(p) => p.to_owned(),
        _ => "other".to_owned(),
    };
    let ctx = crate::events::RequestContext::of(&req, &state.config.trusted_proxies);
    let id = ctx.request_id.clone();
    let start = Instant::now();
    // the pages of this request: the theme, in the End-User's language (chosen when a page is
    // rendered)
    let page = crate::theme::PageRequest {
        theme: state.config.theme.clone(),
        accept_language: req.headers().get(header::ACCEPT_LANGUAGE).cloned(),
    };
    let mut resp = crate::theme::PAGE
        .scope(
            page,
            crate::events::answer_in_context(&path, ctx, req, next),
        )
        .await;
    state
        .metrics
        .observe(&path, resp.status().as_u16(), start.elapsed().as_secs_f64());
    if let Some(crate::error::OAuthErrorCode(code)) = resp.extensions().get() {
        state.metrics.error(&path, code.as_str());
    }
    if let Some(crate::error::InternalCause(cause)) = resp.extensions_mut().remove() {
        tracing::error!(request_id = %id, path = %path, cause = %cause, "request failed inside the server");
    }
    resp
}

/// `GET /metrics`
pub async fn render(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    if let Some(events) = &state.config.events {
        text.push_str(&events.render());
    }
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
