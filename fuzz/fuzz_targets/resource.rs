//! Fuzz a protected resource's headers (RFC 9449 §7, RFC 6750): the input is
//! `authorization \0 dpop`, sent to the UserInfo endpoint and to introspection's client side.
#![no_main]
use axum::body::Body;
use axum::http::Request;
use keybound_fuzz::{header, op, parts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [authorization, dpop] = parts::<2>(data);
    let b = header(Request::get("/userinfo"), "authorization", authorization);
    if let Ok(req) = header(b, "dpop", dpop).body(Body::empty()) {
        op().send(req);
    }
    let b = Request::post("/userinfo").header("content-type", "application/x-www-form-urlencoded");
    let b = header(b, "dpop", dpop);
    if let Ok(req) = b.body(Body::from([b"access_token=", authorization].concat())) {
        op().send(req);
    }
});
