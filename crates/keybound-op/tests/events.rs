//! Security events (issue 28 item 2) as the provider records them, into the server's real
//! sink (a JSON-lines file, keybound-testkit `Events`): sign-in succeeded and failed,
//! throttling, consent, a code used twice, a replayed DPoP proof, logout and key rotation —
//! each with the client and End-User it concerns, and nothing secret. The server adds the
//! request's context (crates/keybound-server/tests/events.rs).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::key::KeyKind;
use keybound_jose::PrivateKey;
use keybound_op::TokenRequestFacts;
use keybound_store::ClientAuthMethod;
use keybound_testkit::op::{
    admin_client, authorization_request, basic, client, form, Events, OpBuilder, ALICE,
};

const WRONG: &str = "planted-wrong-9f3c";

#[tokio::test]
async fn the_provider_records_each_kind_of_security_event() {
    let events = Events::new();
    let op = OpBuilder::new()
        .client(client("app", ClientAuthMethod::ClientSecretBasic))
        .client(admin_client("ops"))
        .events(&events)
        .build()
        .await;
    // a password sign-in and consent
    let v =
        op.p.validate_authorization(&authorization_request("app", "openid", None))
            .await
            .unwrap();
    let code = op.code_for(&v).await;
    assert_eq!(events.types(), ["sign_in.succeeded", "consent.granted"]);
    // the code redeemed, then presented again: reuse, grant revoked
    op.redeem("app", &code, None, Some(&basic("app")))
        .await
        .unwrap();
    assert!(op
        .redeem("app", &code, None, Some(&basic("app")))
        .await
        .is_err());
    // a DPoP proof presented twice
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let proof = op.token_proof(&key);
    let auth = basic("ops");
    let cc = form(&[("grant_type", "client_credentials"), ("scope", "other")]);
    let dpop = [proof.as_str()];
    let facts = || TokenRequestFacts {
        form: &cc,
        authorization: Some(&auth),
        dpop: &dpop,
    };
    op.p.token(facts()).await.unwrap();
    assert!(op.p.token(facts()).await.is_err());
    // logout, key rotation
    let session = op.sign_in().await;
    op.p.end_session(&session).await.unwrap();
    op.p.rotate_signing_keys().await.unwrap();
    // wrong passwords until the back-off refuses
    let free = op.p.config.throttle.free_failures;
    for _ in 0..free {
        assert!(op.p.login(ALICE.0, WRONG).await.unwrap().is_none());
    }
    assert!(op.p.login(ALICE.0, WRONG).await.is_err());

    let records = events.records();
    let types = events.types();
    let expected_prefix = [
        "sign_in.succeeded",
        "consent.granted",
        "code.reused",
        "dpop.replayed",
        "sign_in.succeeded",
        "session.logged_out",
        "keys.rotated",
    ];
    assert_eq!(
        &types[..expected_prefix.len()],
        expected_prefix,
        "{types:?}"
    );
    let rest = &types[expected_prefix.len()..];
    assert_eq!(
        rest.iter().filter(|t| *t == "sign_in.failed").count(),
        free as usize,
        "{rest:?}"
    );
    assert!(rest.contains(&"sign_in.throttled".to_owned()), "{rest:?}");
    let find = |t: &str| records.iter().find(|r| r["type"] == t).unwrap();
    assert_eq!(find("sign_in.succeeded")["subject"], ALICE.2);
    assert_eq!(find("sign_in.succeeded")["reason"], "pwd");
    assert_eq!(find("consent.granted")["client_id"], "app");
    assert_eq!(find("code.reused")["client_id"], "app");
    assert_eq!(find("code.reused")["reason"], "grant_revoked");
    assert_eq!(find("dpop.replayed")["client_id"], "ops");
    assert_eq!(find("session.logged_out")["subject"], ALICE.2);
    assert_eq!(find("sign_in.failed")["reason"], "wrong_password");
    assert_eq!(find("sign_in.throttled")["reason"], "passwords");
    let text = std::fs::read_to_string(events.path()).unwrap();
    for secret in [ALICE.1, code.as_str(), proof.as_str(), WRONG] {
        assert!(!text.contains(secret), "{secret} in the events");
    }
}
