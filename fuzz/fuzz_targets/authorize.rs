//! Fuzz the authorization endpoint: `GET /authorize?<input>` and `POST /authorize` with the
//! input as its form body, each with and without a live session (the first byte chooses).
#![no_main]
use axum::body::Body;
use axum::http::Request;
use keybound_fuzz::{op, SESSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let cookie = format!("kb_session={SESSION}");
    let query: String = url_safe(rest);
    let mut get = Request::get(format!("/authorize?{query}"));
    let mut post =
        Request::post("/authorize").header("content-type", "application/x-www-form-urlencoded");
    if how & 1 == 1 {
        get = get.header("cookie", &cookie);
        post = post.header("cookie", &cookie);
    }
    if let Ok(req) = get.body(Body::empty()) {
        op().send(req);
    }
    if how & 2 == 2 {
        op().send(post.body(Body::from(rest.to_vec())).expect("a POST"));
    }
});

/// The input as a query string: bytes a URI may carry as they are, others percent-encoded.
fn url_safe(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'&'
            | b'='
            | b'%'
            | b'+'
            | b':'
            | b'/' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}
