//! Fuzz the token endpoint's form body and headers: the input is `dpop \0 authorization \0
//! body`; each grant's parameters, client authentication and DPoP proof parsing meet it.
#![no_main]
use axum::body::Body;
use axum::http::Request;
use keybound_fuzz::{header, op, parts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [dpop, authorization, body] = parts::<3>(data);
    let b = Request::post("/token").header("content-type", "application/x-www-form-urlencoded");
    let b = header(b, "dpop", dpop);
    let b = header(b, "authorization", authorization);
    if let Ok(req) = b.body(Body::from(body.to_vec())) {
        op().send(req);
    }
});
