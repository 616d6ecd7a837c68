//! Security events (issue 28 item 2) over the routers: a sign-in failure, a refresh-token
//! reuse and an admin change are recorded — exactly those, one JSON line each in the events
//! file, with the request id, the client's address and the trace id of a `traceparent` — and
//! counted on `/metrics`. Secrets planted on the way (a password, client secret, tokens,
//! proofs) appear in no record.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(clippy::many_single_char_names)] // short names for requests and answers read well here

use keybound_jose::key::KeyKind;
use keybound_jose::PrivateKey;
use keybound_store::ClientAuthMethod;
use keybound_testkit::browser::{hidden_fields, Browser, HttpRequest, RouterTransport};
use keybound_testkit::op::{
    admin_client, basic, client, resource_proof, Events, OpBuilder, TestOp, ALICE, CLIENT_SECRET,
    ISS,
};
use serde_json::{json, Value};

const PLANTED_PASSWORD: &str = "planted-password-5e1f";
const NEW_USER_PASSWORD: &str = "planted-new-user-pw-77aa";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn sign_in_failure_refresh_reuse_and_admin_change_are_recorded_without_secrets() {
    let events = Events::new();
    let op = OpBuilder::new()
        .client(client("conf", ClientAuthMethod::ClientSecretBasic))
        .client(admin_client("ops"))
        .build()
        .await;
    // before the sink: a refresh token and an admin token (their own steps record nothing)
    let (code, t) = op.confidential_grant("conf", "openid offline_access").await;
    let rt = t.refresh_token.clone().unwrap();
    let admin_key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let admin_token = op
        .client_credentials_token("ops", "keybound:admin", Some(&admin_key))
        .await;
    let TestOp { p, store, clock } = op;
    let now = keybound_op::Clock::now(clock.as_ref());
    let op = TestOp {
        p: p.with_events(events.log.clone()),
        store,
        clock,
    };
    let (public, mgmt) = op.routers_with(keybound_server::ServerConfig {
        events: Some(events.log.clone()),
        ..keybound_server::ServerConfig::default()
    });
    let peer: std::net::SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let public = public.layer(axum::Extension(axum::extract::ConnectInfo(peer)));
    let mut b = Browser::new(RouterTransport(public));

    // 1. a wrong password on the account page
    let page = b.get(&format!("{ISS}/account")).await.unwrap();
    let mut fields = hidden_fields(&page.body);
    fields.push(("username".into(), ALICE.0.into()));
    fields.push(("password".into(), PLANTED_PASSWORD.into()));
    let r = b
        .request(
            HttpRequest::post_form(
                &format!("{ISS}/account"),
                serde_urlencoded::to_string(&fields).unwrap().into_bytes(),
            )
            .header("traceparent", TRACEPARENT),
        )
        .await
        .unwrap();
    assert_ne!(r.status, 303, "a wrong password does not sign in");
    let sign_in_request = r.header("x-request-id").unwrap().to_owned();

    // 2. the refresh token used, then used again: reuse, grant revoked
    let refresh = |token: &str| {
        HttpRequest::post_form(
            &format!("{ISS}/token"),
            serde_urlencoded::to_string([
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
            ])
            .unwrap()
            .into_bytes(),
        )
        .header("authorization", &basic("conf"))
    };
    let r = b.request(refresh(&rt)).await.unwrap();
    assert_eq!(r.status, 200);
    let rotated: Value = serde_json::from_slice(&r.body).unwrap();
    let r = b.request(refresh(&rt)).await.unwrap();
    assert_eq!(r.status, 400);

    // 3. an admin change through the API, with a password in the document
    let mut m = Browser::new(RouterTransport(mgmt));
    let url = "http://mgmt.test/admin/v1/users/bob";
    let proof = resource_proof(&admin_key, "PUT", url, &admin_token, now);
    let r = m
        .request(HttpRequest {
            method: "PUT".into(),
            url: url.into(),
            headers: vec![
                ("host".into(), "mgmt.test".into()),
                ("authorization".into(), format!("DPoP {admin_token}")),
                ("dpop".into(), proof.clone()),
                ("content-type".into(), "application/json".into()),
            ],
            body: Some(
                json!({"password": NEW_USER_PASSWORD, "email": "bob@example.com"})
                    .to_string()
                    .into_bytes(),
            ),
        })
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // exactly those three records, in order
    let records = events.records();
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["sign_in.failed", "refresh_token.reused", "admin.changed"],
        "{records:#?}"
    );
    let failed = &records[0];
    assert_eq!(failed["subject"], ALICE.2);
    assert_eq!(failed["reason"], "wrong_password");
    assert_eq!(failed["source"], "198.51.100.7");
    assert_eq!(failed["request_id"], sign_in_request.as_str());
    assert_eq!(failed["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let reuse = &records[1];
    assert_eq!(reuse["client_id"], "conf");
    assert_eq!(reuse["subject"], ALICE.2);
    assert_eq!(reuse["reason"], "grant_revoked");
    let change = &records[2];
    assert_eq!(change["actor"], "client:ops");
    assert_eq!(change["action"], "create");
    assert_eq!(change["target"], "user bob");
    assert_eq!(change["after"]["email"], "bob@example.com");
    assert!(change["after"].get("password").is_none());
    assert!(change.get("before").is_none());
    for r in &records {
        assert!(r["time"].as_u64().is_some());
        assert!(!r["request_id"].as_str().unwrap().is_empty());
    }

    // no secret anywhere in the file
    let text = std::fs::read_to_string(events.path()).unwrap();
    for planted in [
        PLANTED_PASSWORD,
        NEW_USER_PASSWORD,
        ALICE.1,
        CLIENT_SECRET,
        rt.as_str(),
        t.access_token.as_str(),
        rotated["refresh_token"].as_str().unwrap(),
        rotated["access_token"].as_str().unwrap(),
        admin_token.as_str(),
        proof.as_str(),
        code.as_str(),
    ] {
        assert!(!text.contains(planted), "a secret in the events: {planted}");
    }

    // counted on /metrics
    let metrics = m
        .request(HttpRequest::get("http://mgmt.test/metrics"))
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    for (t, n) in [
        ("sign_in.failed", 1),
        ("refresh_token.reused", 1),
        ("admin.changed", 1),
        ("dpop.replayed", 0),
    ] {
        assert!(
            metrics.contains(&format!("keybound_events_total{{type=\"{t}\"}} {n}\n")),
            "{t}: {metrics}"
        );
    }
}
