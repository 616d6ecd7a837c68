//! OpenTelemetry tracing (issue 28 item 4): `keybound serve` with `otlp_endpoint` sends a
//! token request's spans to a collector on loopback (keybound-testkit `otlp::Collector`) — the
//! request, the token handler, the DPoP proof check, the store and the signing — in the trace
//! of the caller's `traceparent`, and that trace id is in the request's security events.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use keybound_jose::key::KeyKind;
use keybound_jose::PrivateKey;
use keybound_proto::dpop::ProofBuilder;
use keybound_testkit::otlp::Collector;
use keybound_testkit::process::{free_port, wait_ready, Keybound};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn now() -> u64 {
    keybound_proto::Clock::now(&keybound_verify::SystemClock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_requests_spans_reach_the_collector_in_the_callers_trace() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = dir.path().join("events.jsonl");
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &data);
    let kb2 = kb.clone();
    tokio::task::spawn_blocking(move || {
        kb2.admin(&[
            "client",
            "add",
            "--client-id",
            "m2m",
            "--auth-method",
            "client_secret_basic",
            "--secret",
            "m2m-secret-0123",
            "--grant-type",
            "client_credentials",
            "--scope",
            "orders.read",
        ])
    })
    .await
    .unwrap();
    let port = free_port();
    let _server = kb.serve_env(
        port,
        &[],
        &[
            ("KEYBOUND_OTLP_ENDPOINT", collector.url.as_str()),
            ("KEYBOUND_EVENTS", events.to_str().unwrap()),
            ("KEYBOUND_METRICS_LISTEN", "off"),
            // export every 200 ms instead of every 5 s
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let proof = ProofBuilder::new("POST", &format!("{base}/token"), now(), "jti-1")
        .sign(&key)
        .unwrap();
    let send = || {
        http.post(format!("{base}/token"))
            .basic_auth("m2m", Some("m2m-secret-0123"))
            .header("DPoP", &proof)
            .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // the same proof again: refused as a replay, a security event in the same trace
    assert_eq!(send().await.unwrap().status(), 400);

    let wanted = ["POST /token", "token", "dpop.verify", "tokens.sign"];
    let spans = collector
        .wait_for(Duration::from_secs(10), |spans| {
            wanted
                .iter()
                .all(|w| spans.iter().any(|s| s.name == *w && s.trace_id == TRACE))
                && spans
                    .iter()
                    .any(|s| s.name.starts_with("store.") && s.trace_id == TRACE)
        })
        .await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for w in wanted {
        assert!(
            spans.iter().any(|s| s.name == w && s.trace_id == TRACE),
            "{w} in {names:?}"
        );
    }
    assert!(
        spans
            .iter()
            .any(|s| s.name.starts_with("store.") && s.trace_id == TRACE),
        "a store span in {names:?}"
    );
    // the request's span is the child of the caller's; the others hang below it
    let requests: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "POST /token" && s.trace_id == TRACE)
        .collect();
    assert_eq!(requests.len(), 2, "{names:?}");
    assert!(requests.iter().all(|r| r.parent_span_id == PARENT));
    let handler = spans.iter().find(|s| s.name == "token").unwrap();
    assert!(requests.iter().any(|r| r.span_id == handler.parent_span_id));
    assert!(handler
        .attributes
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "client_credentials"));
    // no span carries a secret
    for s in &spans {
        for (_, v) in &s.attributes {
            assert!(
                !v.contains("m2m-secret-0123") && !v.contains(&proof),
                "{s:?}"
            );
        }
    }
    // the replay's event carries the trace id
    let text = std::fs::read_to_string(&events).unwrap();
    let replay: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["type"] == "dpop.replayed")
        .unwrap_or_else(|| panic!("a replay event in {text}"));
    assert_eq!(replay["trace_id"], TRACE);
    assert_eq!(replay["client_id"], "m2m");
}
