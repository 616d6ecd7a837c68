//! Fuzz the form bodies of the other POST endpoints: the input is the body of `/device` (code
//! entry, sign-in, approval) and `/end_session` (RP-Initiated Logout and its confirmation
//! form) in the signed-in End-User's browser, and of `/device_authorization`, `/revoke`,
//! `/introspect` and `/par` (those four as the confidential client).
#![no_main]
use axum::body::Body;
use axum::http::Request;
use keybound_fuzz::{op, CONFIDENTIAL, SECRET, SESSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CONFIDENTIAL}:{SECRET}"))
    );
    let form = "application/x-www-form-urlencoded";
    let device = Request::post("/device")
        .header("content-type", form)
        .header("cookie", format!("kb_session={SESSION}"))
        .body(Body::from(data.to_vec()))
        .expect("a POST");
    op().send(device);
    let end_session = Request::post("/end_session")
        .header("content-type", form)
        .header("cookie", format!("kb_session={SESSION}"))
        .body(Body::from(data.to_vec()))
        .expect("a POST");
    op().send(end_session);
    for path in ["/device_authorization", "/revoke", "/introspect", "/par"] {
        let req = Request::post(path)
            .header("content-type", form)
            .header("authorization", &basic)
            .body(Body::from(data.to_vec()))
            .expect("a POST");
        op().send(req);
    }
});
