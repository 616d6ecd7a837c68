//! A failure of what the verifier depends on keeps its cause: the client is told what it can
//! act on (`invalid_token`, "could not fetch"), the operator finds the transport's error as the
//! source.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::error::Error as _;

use keybound_proto::wire::ErrorCode;
use keybound_testkit::process::free_port;
use keybound_verify::{HttpFetcher, JwksFetcher as _, VerifyError};

#[tokio::test]
async fn an_unreachable_jwks_is_unavailable_with_the_transport_error_as_source() {
    let url = format!("http://127.0.0.1:{}/jwks", free_port());
    let e = HttpFetcher::default().fetch(&url).await.unwrap_err();
    assert!(
        matches!(&e, VerifyError::JwksUnavailable { url: u, .. } if *u == url),
        "{e:?}"
    );
    assert_eq!(e.code(), ErrorCode::InvalidToken);
    let source = e.source().expect("the fetch's error is the source");
    assert!(
        source.downcast_ref::<reqwest::Error>().is_some(),
        "{source:?}"
    );
    assert!(
        !e.to_string().contains("Connection refused") && !e.to_string().contains("tcp"),
        "the message a client may see names no transport detail: {e}"
    );
}
