//! Issue 10 item 9: `keybound serve` closes connections that never finish sending their request
//! headers (slowloris) after `header_read_timeout`, and keeps answering while they are open.
//! Every connection and wait is bounded; loopback only.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use keybound_testkit::process::{free_port, wait_ready, Keybound};

/// A `keybound serve` on a free loopback port with `env`, ready; its base URL, and a client
/// without keep-alive (readiness checks must not hold a connection the test counts).
struct Served {
    _dir: tempfile::TempDir,
    _server: keybound_testkit::process::Server,
    port: u16,
    base: String,
    http: reqwest::Client,
}

async fn serve(env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    let port = free_port();
    let server = kb.serve_env(port, &[], env);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    wait_ready(&http, &base).await;
    Served {
        _dir: dir,
        _server: server,
        port,
        base,
        http,
    }
}

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
    let closed = tokio::task::spawn_blocking(move || count_closed(&mut slow))
        .await
        .unwrap();
    assert_eq!(
        closed, 50,
        "every half-sent connection is closed by the server"
    );
}

/// A connection that never sends a byte is closed after `header_read_timeout` too (hyper's
/// protocol detection waits for a first byte without a deadline: silent connections stayed
/// open for good, and `max_connections` of them locked everyone else out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_header_read_timeout() {
    let Served {
        port, base, http, ..
    } = &serve(&[
        ("KEYBOUND_HEADER_READ_TIMEOUT", "1"),
        ("KEYBOUND_MAX_CONNECTIONS", "20"),
    ])
    .await;
    let port = *port;
    let closed = tokio::task::spawn_blocking(move || {
        // every permit taken by a connection that says nothing
        let mut silent: Vec<TcpStream> = (0..20)
            .map(|_| {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        count_closed(&mut silent)
    })
    .await
    .unwrap();
    assert_eq!(
        closed, 20,
        "every silent connection is closed by the server"
    );
    // and the permits are free again
    wait_ready(http, base).await;
}

/// Issue 10 item 9: beyond `max_connections` open connections a new one is closed at once;
/// when connections end, new ones are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let Served {
        port, base, http, ..
    } = &serve(&[
        ("KEYBOUND_MAX_CONNECTIONS", "20"),
        ("KEYBOUND_HEADER_READ_TIMEOUT", "60"),
    ])
    .await;
    let port = *port;
    let over = tokio::task::spawn_blocking(move || {
        // twenty connections, each known to be accepted because it was served one request
        // (keep-alive holds it open); one refused while the readiness check's connection was
        // still being released is opened again, a bounded number of times
        let mut held = Vec::new();
        for _ in 0..100 {
            if held.len() == 20 {
                break;
            }
            if let Some(s) = served_once(port) {
                held.push(s);
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        assert_eq!(
            held.len(),
            20,
            "twenty connections within the limit are served"
        );
        // the 21st is closed without an answer
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let mut answer = Vec::new();
        let closed = match s.read_to_end(&mut answer) {
            Ok(_) => true,
            Err(e) => closed_by_server(&e),
        };
        drop(held);
        (closed, String::from_utf8_lossy(&answer).into_owned())
    })
    .await
    .unwrap();
    assert!(
        over.0 && !over.1.contains("200 OK"),
        "the 21st connection was served: {}",
        over.1
    );
    wait_ready(http, base).await;
}

/// A connection that was served one request and stays open (keep-alive), or `None` when the
/// server closed it.
fn served_once(port: u16) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .starts_with("HTTP/1.1 200")
        .then_some(s)
}

/// Issue 10 item 9: an idle keep-alive connection is closed after `header_read_timeout` (the
/// wait for the next request's headers is the idle time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
    let port = free_port();
    let _server = kb.serve_env(port, &[], &[("KEYBOUND_HEADER_READ_TIMEOUT", "1")]);
    let http = reqwest::Client::new();
    wait_ready(&http, &format!("http://127.0.0.1:{port}")).await;
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // then idle: the server closes the connection
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => return closed_by_server(&e),
            }
        }
    })
    .await
    .unwrap();
    assert!(closed, "the idle connection stayed open");
}

/// How many of `conns`, in order, the server closes within their read timeouts (closed: EOF, a
/// reset, or a final answer such as 408 before EOF); the first still open ends the count (the
/// rest will be too: a bounded failure).
fn count_closed(conns: &mut [TcpStream]) -> usize {
    let mut closed = 0;
    for s in conns {
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(_) => closed += 1,
            Err(e) if closed_by_server(&e) => closed += 1,
            Err(_) => break,
        }
    }
    closed
}

/// Whether a read error means the server closed the connection (a reset), not that our read
/// timeout passed.
fn closed_by_server(e: &std::io::Error) -> bool {
    e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut
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

/// Issue 25 item 2: `runtime = "per-core"` serves from a single-threaded runtime per core, each
/// with its own `SO_REUSEPORT` listener on the one address: every connection is answered; an
/// unknown runtime is refused at start with the choices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_per_core_serves_every_connection() {
    let Served { base, http, .. } = &serve(&[("KEYBOUND_RUNTIME", "per-core")]).await;
    // a fresh connection per request: the kernel spreads them over the cores' listeners
    for i in 0..40 {
        let r = http
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keybound"))
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEYBOUND_RUNTIME", "fastest")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("expected shared or per-core"), "{err}");
}
