//! Where security events go ([`EventLog`], the provider's `EventSink`): one JSON line per
//! event, with what the request adds — the time, the request id (also sent as
//! `X-Request-Id`), the client's address (through `trusted_proxies` only) and the W3C trace id
//! when a `traceparent` came — to stdout or to a file that is rotated by size, and a
//! Prometheus counter per type (`keybound_events_total{type=…}`). keybound keeps no events
//! itself: storing them is the operator's shipper's job.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use keybound_op::events::{EventSink, EventType, SecurityEvent};
use serde_json::json;

tokio::task_local! {
    /// The request being answered, for the events it causes.
    pub(crate) static REQUEST: RequestContext;
}

/// What a request adds to its events.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// the request id (the caller's `X-Request-Id` when sane, else fresh)
    pub request_id: String,
    /// the client's address
    pub source: Option<String>,
    /// the W3C trace id of an incoming `traceparent`
    pub trace_id: Option<String>,
}

/// The request id of a request: the caller's `X-Request-Id` when it is a short printable token
/// (a proxy's), else a fresh random one.
fn request_id(incoming: Option<&axum::http::HeaderValue>) -> String {
    incoming
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| keybound_jose::random_b64(12), str::to_owned)
}

impl RequestContext {
    /// The context of `req`: its id, the client's address (through `proxies`), its trace.
    pub(crate) fn of(req: &axum::extract::Request, proxies: &[ipnet::IpNet]) -> Self {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        RequestContext {
            request_id: request_id(req.headers().get("x-request-id")),
            source: peer
                .map(|p| crate::peer::client_address(p, req.headers(), proxies).to_string()),
            trace_id: req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(trace_id),
        }
    }
}

/// A request's headers as an OpenTelemetry carrier (for `traceparent`).
struct Headers<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Answer `req` with `next` inside its span (`name`: the route, never an id from the path),
/// a child of the caller's `traceparent` when it sent one, with the request's context for its
/// events; its id as `X-Request-Id`. The trace id (OpenTelemetry's when tracing is on, else
/// the `traceparent`'s) goes into the span's `trace_id` field — and so into every log line of
/// the request — and into its events.
pub(crate) async fn answer_in_context(
    name: &str,
    mut ctx: RequestContext,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {name}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %name,
        request_id = %ctx.request_id,
        trace_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    // without an OpenTelemetry layer there is nothing to attach to
    let _ = span.set_parent(parent);
    {
        use opentelemetry::trace::TraceContextExt as _;
        let otel = span.context();
        let sc = otel.span().span_context().clone();
        if sc.is_valid() {
            ctx.trace_id = Some(sc.trace_id().to_string());
        }
    }
    if let Some(t) = &ctx.trace_id {
        span.record("trace_id", t.as_str());
    }
    let id = ctx.request_id.clone();
    let mut resp = REQUEST
        .scope(ctx, next.run(req))
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", resp.status().as_u16());
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Middleware for routers without request metrics (the admin API): the request in its span
/// and context ([`answer_in_context`]).
pub(crate) async fn context(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ctx = RequestContext::of(&req, &state.config.trusted_proxies);
    answer_in_context("/admin/v1", ctx, req, next).await
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutput {
    /// standard output (a container's log stream)
    Stdout,
    /// a file, rotated when it passes `max_bytes`: `events.jsonl` → `events.jsonl.1` → … up
    /// to `keep` old files
    File {
        /// the file
        path: PathBuf,
        /// rotate past this size
        max_bytes: u64,
        /// rotated files kept
        keep: u32,
    },
    /// nowhere (counted only)
    Off,
}

/// The server's event sink.
pub struct EventLog {
    output: EventOutput,
    file: Mutex<Option<(std::fs::File, u64)>>,
    counts: Mutex<BTreeMap<EventType, u64>>,
    clock: std::sync::Arc<dyn keybound_op::Clock>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// A sink writing to `output`, stamping events with `clock`.
    pub fn new(output: EventOutput, clock: std::sync::Arc<dyn keybound_op::Clock>) -> Self {
        EventLog {
            output,
            file: Mutex::new(None),
            counts: Mutex::new(EventType::ALL.iter().map(|t| (*t, 0)).collect()),
            clock,
        }
    }

    /// The Prometheus lines of the counters.
    pub fn render(&self) -> String {
        let g = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::from(
            "# HELP keybound_events_total Security events by type.\n# TYPE keybound_events_total counter\n",
        );
        for (t, n) in g.iter() {
            out.push_str(&format!(
                "keybound_events_total{{type=\"{}\"}} {n}\n",
                t.as_str()
            ));
        }
        out
    }

    /// The line of `event` in the current request's context.
    fn line(&self, event: &SecurityEvent) -> String {
        let ctx = REQUEST.try_with(Clone::clone).unwrap_or_default();
        let mut v = json!({ "time": self.clock.now() });
        if !ctx.request_id.is_empty() {
            v["request_id"] = ctx.request_id.into();
        }
        if let Some(s) = ctx.source {
            v["source"] = s.into();
        }
        if let Some(t) = ctx.trace_id {
            v["trace_id"] = t.into();
        }
        if let (Some(m), Ok(serde_json::Value::Object(e))) =
            (v.as_object_mut(), serde_json::to_value(event))
        {
            m.extend(e);
        }
        v.to_string()
    }

    fn write_file(&self, path: &PathBuf, max_bytes: u64, keep: u32, line: &str) {
        let mut g = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if g.as_ref().is_some_and(|(_, n)| *n >= max_bytes) {
            *g = None;
            // the oldest goes, each moves up one
            for i in (1..keep).rev() {
                let _ = std::fs::rename(rotated(path, i), rotated(path, i + 1));
            }
            if keep > 0 {
                let _ = std::fs::rename(path, rotated(path, 1));
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
        if g.is_none() {
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|f| f.metadata().map(|m| (f, m.len())));
            match opened {
                Ok(f) => *g = Some(f),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot write security events");
                    return;
                }
            }
        }
        if let Some((f, n)) = g.as_mut() {
            // one write per line: appends from another process (keybound admin on the same
            // file) do not interleave within it
            let bytes = format!("{line}\n");
            if let Err(e) = f.write_all(bytes.as_bytes()) {
                tracing::error!(path = %path.display(), error = %e, "cannot write security events");
            }
            *n += bytes.len() as u64;
        }
    }
}

fn rotated(path: &std::path::Path, i: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{i}"));
    PathBuf::from(p)
}

impl EventSink for EventLog {
    fn record(&self, event: SecurityEvent) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(event.kind)
            .or_default() += 1;
        match &self.output {
            EventOutput::Off => {}
            EventOutput::Stdout => {
                let line = self.line(&event);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            EventOutput::File {
                path,
                max_bytes,
                keep,
            } => {
                let line = self.line(&event);
                self.write_file(path, *max_bytes, *keep, &line);
            }
        }
    }
}

/// The W3C trace id of a `traceparent` value (version 00: `00-<32 hex>-<16 hex>-<2 hex>`), if
/// it is one and not all zeros.
pub(crate) fn trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (v, t, p, f) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let ok = hex(v, 2)
        && v != "ff"
        && hex(t, 32)
        && hex(p, 16)
        && hex(f, 2)
        && t.bytes().any(|b| b != b'0')
        && p.bytes().any(|b| b != b'0');
    ok.then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file is rotated past its size: `keep` old files, the oldest dropped, no line split
    /// or lost among those kept.
    #[test]
    fn the_events_file_rotates_by_size() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.jsonl");
        let log = EventLog::new(
            EventOutput::File {
                path: path.clone(),
                max_bytes: 300,
                keep: 2,
            },
            std::sync::Arc::new(keybound_op::ManualClock::new(1_700_000_000)),
        );
        for i in 0..40 {
            log.record(SecurityEvent::new(EventType::SignInFailed).reason(&format!("n{i}")));
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        let (now, one, two) = (
            read(&path),
            read(&rotated(&path, 1)),
            read(&rotated(&path, 2)),
        );
        assert!(!rotated(&path, 3).exists(), "only `keep` old files");
        for text in [&now, &one, &two] {
            assert!(!text.is_empty());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
                assert_eq!(v["type"], "sign_in.failed");
            }
        }
        assert!(now.len() <= 300 + 120, "{}", now.len());
        // the newest event is in the current file, the older ones in order before it
        assert!(now.lines().last().unwrap_or("").contains("\"n39\""));
        assert!(log
            .render()
            .contains("keybound_events_total{type=\"sign_in.failed\"} 40\n"));
    }

    /// W3C Trace Context §3.2: the trace id of a valid traceparent; invalid ones give none.
    #[test]
    fn w3c_trace_context_3_2_traceparent() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
        }
    }
}
