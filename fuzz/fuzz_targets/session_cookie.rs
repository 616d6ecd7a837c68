//! Fuzz the cookies the OP reads (session and pre-session/CSRF): the input is the `Cookie`
//! header of a valid authorization request, of the device page, of a logout and of an
//! end-session request.
#![no_main]
use axum::body::Body;
use axum::http::Request;
use keybound_fuzz::{header, op, PUBLIC, REDIRECT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let authorize = format!(
        "/authorize?response_type=code&client_id={PUBLIC}&redirect_uri={}&scope=openid\
         &state=s&nonce=n&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
         &code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let end_session = format!("/end_session?client_id={PUBLIC}&state=s");
    for (method, uri) in [
        ("GET", authorize.as_str()),
        ("GET", "/device"),
        ("POST", "/logout"),
        ("GET", end_session.as_str()),
    ] {
        let b = Request::builder().method(method).uri(uri);
        let b = header(b, "cookie", data);
        let b = b.header("content-type", "application/x-www-form-urlencoded");
        if let Ok(req) = b.body(Body::from("csrf=x")) {
            op().send(req);
        }
    }
});

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}
