//! Logs and traces for `keybound serve`: tracing's log lines on stderr (text or JSON), and,
//! when `otlp_endpoint` is set, OpenTelemetry traces over OTLP/HTTP (protobuf) to a collector.
//! The server's spans — the request (its `traceparent` honoured), the DPoP proof check, the
//! store, signing — become OTLP spans; the trace id goes into every log line of a request
//! (its span's `trace_id` field) and into its security events.
//!
//! Spans are exported in batches by the SDK's own thread through reqwest's blocking client on
//! that thread (opentelemetry-http's own reqwest integration would add a second reqwest to the
//! build). Off by default: nothing leaves the process unless an operator names a collector.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// The tracing set-up of a process; [`Telemetry::shutdown`] flushes the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export what is queued and stop the exporter (call outside the async runtime).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("OpenTelemetry: {e}");
            }
        }
    }
}

/// reqwest's blocking client for the SDK's export thread.
#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self
            .0
            .request(parts.method, parts.uri.to_string())
            .body(body.to_vec());
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        let resp = req.send()?;
        let status = resp.status();
        let bytes = resp.bytes()?;
        Ok(Response::builder().status(status).body(bytes)?)
    }
}

/// The OTLP/HTTP traces URL of a collector's `endpoint` (`http://collector:4318`, or the full
/// `…/v1/traces`).
fn traces_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1/traces") {
        e.to_owned()
    } else {
        format!("{e}/v1/traces")
    }
}

/// Install the subscriber: the log lines (`RUST_LOG`, default `info`; JSON when `json`), and
/// the OpenTelemetry layer when `otlp_endpoint` names a collector. Call before the runtime
/// starts: the exporter's HTTP client must not be made inside it.
pub fn init(json: bool, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_current_span(true).boxed()
    } else {
        fmt.boxed()
    };
    let Some(endpoint) = otlp_endpoint else {
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter()))
            .try_init()
            .context("installing the log subscriber")?;
        return Ok(Telemetry { provider: None });
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("an HTTP client for OTLP")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient(http))
        .with_endpoint(traces_url(endpoint))
        .build()
        .context("the OTLP exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("keybound")
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("keybound"));
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        // every span the server opens, whatever the log level
        .with(otel.with_filter(tracing_subscriber::filter::LevelFilter::DEBUG))
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry {
        provider: Some(provider),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces/"),
            "http://c:4318/v1/traces"
        );
    }
}
