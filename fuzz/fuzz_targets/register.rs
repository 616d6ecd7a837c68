//! Fuzz dynamic client registration (RFC 7591): the input is the JSON body of
//! `POST /register` (open registration: no initial access token is configured). A registration that
//! succeeds must answer with its `client_id`; it is then removed.
#![no_main]
use axum::body::Body;
use axum::http::Request;
use keybound_fuzz::op;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let req = Request::post("/register")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .expect("a POST");
    let (status, body) = op().exchange(req);
    if status.is_success() {
        let reg: serde_json::Value = serde_json::from_slice(&body).expect("a registration");
        op().forget_client(reg["client_id"].as_str().expect("a client_id"));
    }
});
