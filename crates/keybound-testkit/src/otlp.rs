//! An OpenTelemetry collector on loopback: it takes OTLP/HTTP trace exports (protobuf,
//! `POST /v1/traces`), decodes them with the OTLP protocol's own message types, and keeps the
//! spans, so a test sees what `keybound serve --otlp-endpoint` sent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// A received span: what a test asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// its name
    pub name: String,
    /// trace id, lowercase hex
    pub trace_id: String,
    /// span id, lowercase hex
    pub span_id: String,
    /// the parent's span id, lowercase hex (empty for a root)
    pub parent_span_id: String,
    /// its string attributes
    pub attributes: Vec<(String, String)>,
}

/// The collector, serving until dropped.
pub struct Collector {
    /// its base URL (`http://127.0.0.1:PORT`), for `otlp_endpoint`
    pub url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn export(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut out = spans.lock().unwrap_or_else(PoisonError::into_inner);
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attributes = s
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        use opentelemetry_proto::tonic::common::v1::any_value::Value;
                        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Value::StringValue(v)) => Some((kv.key.clone(), v.clone())),
                            Some(Value::IntValue(v)) => Some((kv.key.clone(), v.to_string())),
                            _ => None,
                        }
                    })
                    .collect();
                out.push(Span {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    attributes,
                });
            }
        }
    }
    StatusCode::OK
}

impl Collector {
    /// Start on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector { url, spans, handle }
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait (at most `limit`) until `done` holds for the spans received.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        loop {
            let spans = self.spans();
            if done(&spans) || waited >= limit {
                return spans;
            }
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
