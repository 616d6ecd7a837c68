//! Issue 10 item 9: `keybound serve` closes connections that never finish sending their request
//! headers (slowloris) after `header_read_timeout`, and keeps answering while they are open.
//! Every connection and wait is bounded; loopback only.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use keybound_testkit::process::{free_port, wait_ready, Keybound};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    let port = free_port();
    let _server = kb.serve_env(port, &[], &[("KEYBOUND_HEADER_READ_TIMEOUT", "1")]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    // 50 connections that send half a request line and then nothing
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    // the server still answers others meanwhile
    wait_ready(&http, &base).await;
    // each half-sent connection is closed by the server well within its 5 s read timeout
    let closed = tokio::task::spawn_blocking(move || {
        let mut closed = 0;
        for s in &mut slow {
            let mut buf = [0u8; 512];
            // closed by the server: EOF, a reset, or a final answer (408) before EOF
            match s.read(&mut buf) {
                Ok(_) => closed += 1,
                Err(e)
                    if e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut =>
                {
                    closed += 1;
                }
                // still open after 5 s: the rest will be too (bounded failure)
                Err(_) => break,
            }
        }
        closed
    })
    .await
    .unwrap();
    assert_eq!(
        closed, 50,
        "every half-sent connection is closed by the server"
    );
}

/// Issue 10 item 13: `keybound serve` serves `/metrics` on the management listener only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_the_management_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    let (port, mport) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{mport}");
    let _server = kb.serve_env(port, &[], &[("KEYBOUND_METRICS_LISTEN", maddr.as_str())]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    let public = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    wait_ready(&http, &format!("http://{maddr}")).await;
    let m = http
        .get(format!("http://{maddr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("keybound_http_requests_total"), "{m}");
}
