//! The account page's apps (issue 28: consent revoked): the End-User sees the apps they
//! allowed and withdraws one; its refresh token stops working at once, its next authorization
//! asks for consent again, and the withdrawal is a security event.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_store::ClientAuthMethod;
use keybound_testkit::browser::{hidden_fields, Browser, HttpRequest, RouterTransport};
use keybound_testkit::op::{basic, client, Events, OpBuilder, ALICE, ISS};

#[tokio::test]
async fn withdrawing_an_apps_access_revokes_its_grants() {
    let events = Events::new();
    let op = OpBuilder::new()
        .client(client("conf", ClientAuthMethod::ClientSecretBasic))
        .events(&events)
        .build()
        .await;
    let (_, t) = op.confidential_grant("conf", "openid offline_access").await;
    let rt = t.refresh_token.unwrap();
    let store = op.store.clone();
    let mut b = Browser::new(RouterTransport(op.router()));

    // sign in on the account page: the app is listed with what it was allowed
    let page = b.get(&format!("{ISS}/account")).await.unwrap();
    let mut fields = hidden_fields(&page.body);
    fields.push(("username".into(), ALICE.0.into()));
    fields.push(("password".into(), ALICE.1.into()));
    let r = post_account(&mut b, &fields).await;
    assert_eq!(r.status, 303);
    let page = b.get(&format!("{ISS}/account")).await.unwrap();
    assert!(
        page.body
            .contains("<li data-client-id=\"conf\"><strong>App conf</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("offline_access"));

    // withdraw
    let revoke_form = page.body[page.body.find("data-client-id=\"conf\"").unwrap()..].to_owned();
    let fields = hidden_fields(&revoke_form);
    assert!(fields
        .iter()
        .any(|(k, v)| k == "kb_action" && v == "revoke_consent"));
    let r = post_account(&mut b, &fields).await;
    assert_eq!(r.status, 303);
    let page = b.get(&format!("{ISS}/account?done=revoked")).await.unwrap();
    assert!(
        !page.body.contains("data-client-id=\"conf\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"apps-none\""));
    assert!(page.body.contains("Access withdrawn"));

    // the refresh token is dead, and consent is asked again
    let r = b
        .request(
            HttpRequest::post_form(
                &format!("{ISS}/token"),
                serde_urlencoded::to_string([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .unwrap()
                .into_bytes(),
            )
            .header("authorization", &basic("conf")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(store.consent(ALICE.2, "conf").await.unwrap().is_none());
    let types = events.types();
    assert_eq!(
        types.last().map(String::as_str),
        Some("consent.revoked"),
        "{types:?}"
    );
    let last = events.records().pop().unwrap();
    assert_eq!(last["client_id"], "conf");
    assert_eq!(last["subject"], ALICE.2);
}

/// `POST /account` with `fields`.
async fn post_account(
    b: &mut Browser<RouterTransport>,
    fields: &[(String, String)],
) -> keybound_testkit::browser::HttpResponse {
    b.request(HttpRequest::post_form(
        &format!("{ISS}/account"),
        serde_urlencoded::to_string(fields).unwrap().into_bytes(),
    ))
    .await
    .unwrap()
}
