//! Failures below the protocol keep their cause: an `RpError` for an unreachable OP or an
//! unreadable session file has the transport's or the file system's error as its source, so
//! `anyhow`'s `{:#}` (and any walk of `source()`) shows why, not only what.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::error::Error as _;
use std::sync::Arc;

use keybound_rp::{ReqwestTransport, Rp, RpConfig, RpError, Session};
use keybound_testkit::process::free_port;
use keybound_verify::SystemClock;

#[tokio::test]
async fn an_unreachable_op_is_an_http_error_with_the_transport_error_as_source() {
    // a port nobody listens on (bound, then released)
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let rp = Rp::new(
        RpConfig::new(&issuer, "app", "http://127.0.0.1/cb"),
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(SystemClock),
    );
    let e = rp.begin().await.unwrap_err();
    let RpError::Http { url, .. } = &e else {
        panic!("expected an HTTP error, got {e:?}");
    };
    assert_eq!(url, &format!("{issuer}/.well-known/openid-configuration"));
    let source = e.source().expect("the transport's error is the source");
    assert!(
        source.downcast_ref::<reqwest::Error>().is_some(),
        "the source is reqwest's error: {source:?}"
    );
    let chain = format!("{:#}", anyhow::Error::from(e));
    assert!(chain.contains(&issuer), "{chain}");
}

#[test]
fn an_unreadable_session_file_keeps_the_io_error_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.json");
    let e = Session::load(&path).unwrap_err();
    assert!(
        matches!(&e, RpError::SessionFile { path: p, .. } if *p == path),
        "{e:?}"
    );
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the I/O error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    std::fs::write(&path, b"{ not json").unwrap();
    let e = Session::load(&path).unwrap_err();
    assert!(
        e.source()
            .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some()),
        "{e:?}"
    );
}
