//! What the sign-in was, in every token, and authorization requests that demand more (issue 27
//! item 2): `amr` (RFC 8176), `acr` and `auth_time` in ID Tokens and refresh results;
//! `acr_values`, the `claims` parameter's essential `acr` (OIDC Core 5.5.1.1), the client's
//! `default_acr_values` and an account that requires a passkey force the stronger sign-in.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_op::passkey::{acr, PasskeySignIn, Strength};
use keybound_op::{Interaction, LoginPrompt, OpError, ValidatedAuthorization};
use keybound_proto::wire::{AuthorizationRequest, ErrorCode};
use keybound_store::{BrowserSession, Client, ClientAuthMethod, User};
use keybound_testkit::op::{authorization_request, client, OpBuilder, TestOp, ALICE, T0};

async fn op() -> TestOp {
    OpBuilder::new()
        .client(client("app", ClientAuthMethod::None))
        .client(Client {
            default_acr_values: vec![acr::PASSKEY.into()],
            ..client("strict", ClientAuthMethod::None)
        })
        .user(User {
            require_passkey: true,
            ..User::new("sub-carol", "carol", keybound_op::password::hash("pw"), T0)
        })
        .build()
        .await
}

fn request(
    client_id: &str,
    change: impl FnOnce(&mut AuthorizationRequest),
) -> AuthorizationRequest {
    let mut r = authorization_request(client_id, "openid offline_access", None);
    change(&mut r);
    r
}

async fn validate(op: &TestOp, r: &AuthorizationRequest) -> ValidatedAuthorization {
    op.p.validate_authorization(r).await.unwrap()
}

fn passkey_session(op: &TestOp, sub: &str, after: Option<&BrowserSession>) -> BrowserSession {
    let signed_in = PasskeySignIn {
        sub: sub.into(),
        credential_id: "cred".into(),
    };
    op.p.passkey_session(&signed_in, after)
}

/// The ID Token of the code issued for `v` in `session`, redeemed by the public client.
async fn id_token_claims(
    op: &TestOp,
    v: &ValidatedAuthorization,
    session: &BrowserSession,
) -> serde_json::Value {
    let code = op.code_in(v, session).await;
    let t = op
        .redeem(&v.client.client_id, &code, None, None)
        .await
        .unwrap();
    // RFC 9068 §2.2.1: the access token says the same
    let at: serde_json::Value = keybound_jose::jws::Jws::parse(&t.access_token)
        .unwrap()
        .payload_json()
        .unwrap();
    let id = t.id_token.unwrap();
    let jws = keybound_proto::idtoken::parse(&id).unwrap();
    let claims: serde_json::Value = jws.payload_json().unwrap();
    for c in ["acr", "amr", "auth_time"] {
        assert_eq!(at[c], claims[c], "{c} in the access token");
    }
    claims
}

fn refused_code(e: &keybound_op::AuthorizeError) -> ErrorCode {
    e.code().unwrap()
}

#[tokio::test]
async fn rfc8176_a_password_sign_in_says_pwd_in_its_id_token() {
    let op = op().await;
    let v = validate(&op, &request("app", |_| {})).await;
    let session = op.sign_in().await;
    let c = id_token_claims(&op, &v, &session).await;
    assert_eq!(c["amr"], serde_json::json!(["pwd"]));
    assert_eq!(c["acr"], acr::PWD);
    assert_eq!(c["auth_time"], session.auth_time);
}

#[tokio::test]
async fn rfc8176_a_passkey_sign_in_says_swk_and_user_and_its_acr() {
    let op = op().await;
    let v = validate(&op, &request("app", |_| {})).await;
    let session = passkey_session(&op, ALICE.2, None);
    let c = id_token_claims(&op, &v, &session).await;
    assert_eq!(c["amr"], serde_json::json!(["swk", "user"]));
    assert_eq!(c["acr"], acr::PASSKEY);
    let both = passkey_session(&op, ALICE.2, Some(&op.sign_in().await));
    let c = id_token_claims(&op, &v, &both).await;
    assert_eq!(c["amr"], serde_json::json!(["pwd", "swk", "user", "mfa"]));
    assert_eq!(c["acr"], acr::MFA);
}

#[tokio::test]
async fn oidc_core_3_1_2_1_acr_values_force_a_passkey_after_a_password() {
    let op = op().await;
    let v = validate(
        &op,
        &request("app", |r| r.acr_values = Some(acr::PASSKEY.into())),
    )
    .await;
    let password = op.sign_in().await;
    assert_eq!(
        op.p.next_interaction(&v, Some(&password), true, false)
            .await
            .unwrap(),
        Interaction::Login(LoginPrompt {
            need: Strength::Passkey,
            current: Some((ALICE.2.into(), Strength::Password)),
        })
    );
    // prompt=none cannot ask: login_required
    let none = validate(
        &op,
        &request("app", |r| {
            r.acr_values = Some(acr::PASSKEY.into());
            r.prompt = Some("none".into());
        }),
    )
    .await;
    let e =
        op.p.next_interaction(&none, Some(&password), false, false)
            .await
            .unwrap_err();
    assert_eq!(refused_code(&e), ErrorCode::LoginRequired);
    // a passkey sign-in satisfies it; a password and a passkey too, and the token says the
    // value asked for (the first requested value the sign-in satisfies)
    let passkey = passkey_session(&op, ALICE.2, None);
    assert!(matches!(
        op.p.next_interaction(&v, Some(&passkey), true, false)
            .await
            .unwrap(),
        Interaction::Consent(_) | Interaction::Issue
    ));
    let both = passkey_session(&op, ALICE.2, Some(&password));
    let c = id_token_claims(&op, &v, &both).await;
    assert_eq!(c["acr"], acr::PASSKEY);
    assert_eq!(c["amr"], serde_json::json!(["pwd", "swk", "user", "mfa"]));
}

#[tokio::test]
async fn oidc_core_5_5_1_1_an_essential_acr_in_the_claims_parameter_is_honoured() {
    let op = op().await;
    let claims =
        serde_json::json!({"id_token": {"acr": {"essential": true, "values": [acr::MFA]}}});
    let v = validate(
        &op,
        &request("app", |r| r.claims = Some(claims.to_string())),
    )
    .await;
    assert!(v.acr.essential);
    let passkey = passkey_session(&op, ALICE.2, None);
    assert_eq!(
        op.p.next_interaction(&v, Some(&passkey), true, false)
            .await
            .unwrap(),
        Interaction::Login(LoginPrompt {
            need: Strength::PasswordAndPasskey,
            current: Some((ALICE.2.into(), Strength::Passkey)),
        })
    );
    // values this OP never issues, asked as essential: refused at once
    let unknown =
        serde_json::json!({"id_token": {"acr": {"essential": true, "value": "urn:other:loa:4"}}});
    let e =
        op.p.validate_authorization(&request("app", |r| r.claims = Some(unknown.to_string())))
            .await
            .unwrap_err();
    assert_eq!(refused_code(&e), ErrorCode::InvalidRequest);
    // … and a claims parameter that is not a JSON object
    let e =
        op.p.validate_authorization(&request("app", |r| r.claims = Some("[1]".into())))
            .await
            .unwrap_err();
    assert_eq!(refused_code(&e), ErrorCode::InvalidRequest);
    // unknown values asked voluntarily are ignored (a password will do)
    let v = validate(
        &op,
        &request("app", |r| r.acr_values = Some("urn:other:loa:4".into())),
    )
    .await;
    let password = op.sign_in().await;
    assert!(!matches!(
        op.p.next_interaction(&v, Some(&password), true, false)
            .await
            .unwrap(),
        Interaction::Login(_)
    ));
}

#[tokio::test]
async fn oidc_registration_2_default_acr_values_are_the_clients_policy() {
    let op = op().await;
    let v = validate(&op, &request("strict", |_| {})).await;
    assert_eq!(v.acr.values, [acr::PASSKEY]);
    let password = op.sign_in().await;
    assert!(matches!(
        op.p.next_interaction(&v, Some(&password), true, false)
            .await
            .unwrap(),
        Interaction::Login(LoginPrompt {
            need: Strength::Passkey,
            ..
        })
    ));
    // a request that names its own acr_values replaces the default
    let v = validate(
        &op,
        &request("strict", |r| r.acr_values = Some(acr::PWD.into())),
    )
    .await;
    assert!(!matches!(
        op.p.next_interaction(&v, Some(&password), true, false)
            .await
            .unwrap(),
        Interaction::Login(_)
    ));
}

#[tokio::test]
async fn an_account_that_requires_a_passkey_is_not_signed_in_by_its_password_alone() {
    let op = op().await;
    let v = validate(&op, &request("app", |_| {})).await;
    let password = op.p.login("carol", "pw").await.unwrap().unwrap();
    assert_eq!(
        op.p.next_interaction(&v, Some(&password), true, false)
            .await
            .unwrap(),
        Interaction::Login(LoginPrompt {
            need: Strength::PasswordAndPasskey,
            current: Some(("sub-carol".into(), Strength::Password)),
        })
    );
    let both = passkey_session(&op, "sub-carol", Some(&password));
    assert!(!matches!(
        op.p.next_interaction(&v, Some(&both), true, false)
            .await
            .unwrap(),
        Interaction::Login(_)
    ));
}

#[tokio::test]
async fn a_refreshed_id_token_keeps_the_sign_ins_acr_and_amr() {
    let op = op().await;
    let v = validate(
        &op,
        &request("app", |r| r.acr_values = Some(acr::PASSKEY.into())),
    )
    .await;
    let session = passkey_session(&op, ALICE.2, None);
    let code = op.code_in(&v, &session).await;
    let tokens = op.redeem("app", &code, None, None).await.unwrap();
    let refresh = tokens.refresh_token.unwrap();
    let form = keybound_testkit::op::form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("client_id", "app"),
    ]);
    let r =
        op.p.token(keybound_op::TokenRequestFacts {
            form: &form,
            authorization: None,
            dpop: &[],
        })
        .await
        .map_err(|e: OpError| e.to_string())
        .unwrap();
    let id = r.response.id_token.unwrap();
    let c: serde_json::Value = keybound_proto::idtoken::parse(&id)
        .unwrap()
        .payload_json()
        .unwrap();
    assert_eq!(c["acr"], acr::PASSKEY);
    assert_eq!(c["amr"], serde_json::json!(["swk", "user"]));
}
