//! Logout (issue 23 item 3), the provider's decisions: OpenID Connect RP-Initiated Logout 1.0
//! (§2 the `id_token_hint` and `client_id`, §3 the post-logout redirect URI) and Back-Channel
//! Logout 1.0 (§2.4 the logout token, §2.7 what ends with the session). The HTTP face —
//! confirmation page, CSRF, cookie, delivery with retries — is tested in keybound-server's
//! `tests/logout.rs`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::jws::Jws;
use keybound_op::logout::{EndSessionRequest, LOGOUT_EVENT, TYP_LOGOUT};
use keybound_op::refusal::{LogoutRefusal, Refusal};
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::wire::ErrorCode;
use keybound_store::{BrowserSession, Client, ClientAuthMethod};
use keybound_testkit::keys;
use keybound_testkit::op::{
    authorization_request as request, client, form, OpBuilder, TestOp, ALICE, ISS,
};
use serde_json::{json, Value};

const BYE: &str = "https://app.example/bye";
const BACKCHANNEL: &str = "https://app.example/backchannel";

/// `app` registered a post-logout redirect URI and a back-channel logout URI (it follows the
/// OP session); `other` neither.
async fn op() -> TestOp {
    OpBuilder::new()
        .client(Client {
            post_logout_redirect_uris: vec![BYE.into()],
            backchannel_logout_uri: Some(BACKCHANNEL.into()),
            ..client("app", ClientAuthMethod::None)
        })
        .client(client("other", ClientAuthMethod::None))
        .build()
        .await
}

/// The standard End-User signs in; `client` gets a code in that session (remembered, as the
/// server does), redeemed for tokens.
async fn signed_in(op: &TestOp, clients: &[&str]) -> (BrowserSession, Vec<Value>) {
    let mut session = op.sign_in().await;
    let mut tokens = Vec::new();
    for c in clients {
        let v =
            op.p.validate_authorization(&request(c, "openid offline_access", None))
                .await
                .unwrap();
        let code = op.code_in(&v, &session).await;
        session.signed_in_to(c);
        let t = op.redeem(c, &code, None, None).await.unwrap();
        tokens.push(serde_json::to_value(t).unwrap());
    }
    (session, tokens)
}

fn claims(jwt: &str) -> Value {
    Jws::parse(jwt).unwrap().payload_json().unwrap()
}

fn refusal(e: &OpError) -> &LogoutRefusal {
    match e {
        OpError::Refused(Refusal::Logout(r)) => r,
        other => panic!("not a logout refusal: {other:?}"),
    }
}

async fn end(
    op: &TestOp,
    r: EndSessionRequest<'_>,
) -> Result<keybound_op::logout::EndSession, OpError> {
    op.p.end_session_request(r).await
}

#[tokio::test]
async fn bcl_2_4_id_tokens_carry_the_sessions_sid() {
    let op = op().await;
    let (session, tokens) = signed_in(&op, &["app"]).await;
    let id = claims(tokens[0]["id_token"].as_str().unwrap());
    assert!(!session.sid.is_empty());
    assert_eq!(id["sid"], session.sid.as_str());
    // a refreshed ID Token keeps it
    let rt = tokens[0]["refresh_token"].as_str().unwrap();
    let f = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", "app"),
    ]);
    let t =
        op.p.token(TokenRequestFacts {
            form: &f,
            authorization: None,
            dpop: &[],
        })
        .await
        .unwrap();
    let again = claims(t.response.id_token.as_deref().unwrap());
    assert_eq!(again["sid"], session.sid.as_str());
}

#[tokio::test]
async fn rpil_2_an_expired_hint_still_identifies_the_end_user_session_and_client() {
    let op = op().await;
    let (session, tokens) = signed_in(&op, &["app"]).await;
    let hint = tokens[0]["id_token"].as_str().unwrap().to_owned();
    op.advance(3 * 86_400);
    let e = end(
        &op,
        EndSessionRequest {
            id_token_hint: Some(&hint),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(e.client_id.as_deref(), Some("app"));
    let h = e.hint.as_ref().unwrap();
    assert_eq!(h.sub, ALICE.2);
    assert_eq!(h.sid.as_deref(), Some(session.sid.as_str()));
    assert!(e.names(&session));
    // another session of the same End-User is not the one the hint names
    let other = op.sign_in().await;
    assert!(!e.names(&other));
}

#[tokio::test]
async fn rpil_2_a_hint_this_op_did_not_sign_is_invalid_request() {
    let op = op().await;
    let (_, tokens) = signed_in(&op, &["app"]).await;
    let genuine = tokens[0]["id_token"].as_str().unwrap();
    // the same claims, signed by a key that is not the OP's
    let forged = keybound_jose::jws::sign(
        keybound_jose::Algorithm::ES256,
        &serde_json::Map::from_iter([("kid".to_owned(), json!("k-forged"))]),
        Jws::parse(genuine).unwrap().payload(),
        &keys::es256_b(),
    )
    .unwrap();
    // an access token is signed by the OP but is not an ID Token
    let access = tokens[0]["access_token"].as_str().unwrap();
    for hint in [forged.as_str(), access, "not.a.jwt"] {
        let e = end(
            &op,
            EndSessionRequest {
                id_token_hint: Some(hint),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(refusal(&e), LogoutRefusal::Hint(_)), "{hint}: {e}");
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
    }
}

#[tokio::test]
async fn rpil_2_client_id_must_be_the_client_the_hint_was_issued_to() {
    let op = op().await;
    let (_, tokens) = signed_in(&op, &["app"]).await;
    let hint = tokens[0]["id_token"].as_str().unwrap();
    let e = end(
        &op,
        EndSessionRequest {
            id_token_hint: Some(hint),
            client_id: Some("other"),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(refusal(&e), LogoutRefusal::ClientMismatch { .. }));
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    // the same client is fine
    end(
        &op,
        EndSessionRequest {
            id_token_hint: Some(hint),
            client_id: Some("app"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // an unknown client is refused
    let e = end(
        &op,
        EndSessionRequest {
            client_id: Some("nobody"),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(refusal(&e), LogoutRefusal::UnknownClient(_)));
}

#[tokio::test]
async fn rpil_3_only_a_registered_post_logout_redirect_uri_with_state() {
    let op = op().await;
    // registered, named by client_id: the redirect carries state
    let e = end(
        &op,
        EndSessionRequest {
            client_id: Some("app"),
            post_logout_redirect_uri: Some(BYE),
            state: Some("st 1"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(e.redirect().unwrap(), format!("{BYE}?state=st+1"));
    assert!(
        !e.names(&op.sign_in().await),
        "no hint: the End-User is asked"
    );
    // not registered (not even as a prefix), or another client's
    for (client, uri) in [
        ("app", "https://app.example/bye/x"),
        ("app", "https://attacker.example/"),
        ("other", BYE),
    ] {
        let e = end(
            &op,
            EndSessionRequest {
                client_id: Some(client),
                post_logout_redirect_uri: Some(uri),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(refusal(&e), LogoutRefusal::RedirectNotRegistered { .. }),
            "{client} {uri}"
        );
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
    }
    // without a client there is no registered URI to match
    let e = end(
        &op,
        EndSessionRequest {
            post_logout_redirect_uri: Some(BYE),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(refusal(&e), LogoutRefusal::RedirectWithoutClient));
}

#[tokio::test]
async fn bcl_2_4_a_logout_token_for_each_back_channel_client_of_the_session() {
    let op = op().await;
    let (session, _) = signed_in(&op, &["app", "other"]).await;
    let out = op.p.end_session(&session).await.unwrap();
    // only the client that registered a back-channel logout URI
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].client_id, "app");
    assert_eq!(out[0].uri, BACKCHANNEL);
    assert!(
        !format!("{out:?}").contains(&out[0].logout_token),
        "never in Debug"
    );
    let jws = Jws::parse(&out[0].logout_token).unwrap();
    assert_eq!(jws.header().typ.as_deref(), Some(TYP_LOGOUT));
    // signed like ID Tokens: by a key of the OP's published set
    op.p.jwks()
        .await
        .unwrap()
        .verify(&jws, &[keybound_jose::Algorithm::ES256])
        .unwrap();
    let c: Value = jws.payload_json().unwrap();
    assert_eq!(c["iss"], ISS);
    assert_eq!(c["aud"], "app");
    assert_eq!(c["sub"], ALICE.2);
    assert_eq!(c["sid"], session.sid.as_str());
    assert_eq!(c["iat"], op.now());
    assert!(c["exp"].as_u64().unwrap() > op.now());
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(c["events"], json!({ LOGOUT_EVENT: {} }));
    assert!(
        c.get("nonce").is_none(),
        "§2.4: a logout token MUST NOT contain a nonce"
    );
}

#[tokio::test]
async fn bcl_2_7_a_client_that_follows_the_session_loses_its_grants_others_keep_theirs() {
    let op = op().await;
    let (session, tokens) = signed_in(&op, &["app", "other"]).await;
    // a code issued in the session but not yet redeemed
    let v =
        op.p.validate_authorization(&request("app", "openid", None))
            .await
            .unwrap();
    let late_code = op.code_in(&v, &session).await;
    op.p.end_session(&session).await.unwrap();
    let refresh = |client: &'static str, rt: String| {
        let p = &op.p;
        async move {
            let f = form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", client),
            ]);
            p.token(TokenRequestFacts {
                form: &f,
                authorization: None,
                dpop: &[],
            })
            .await
        }
    };
    let rt = |i: usize| tokens[i]["refresh_token"].as_str().unwrap().to_owned();
    let e = refresh("app", rt(0)).await.unwrap_err();
    assert!(matches!(refusal(&e), LogoutRefusal::SessionEnded), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidGrant);
    let e = op.redeem("app", &late_code, None, None).await.unwrap_err();
    assert!(matches!(refusal(&e), LogoutRefusal::SessionEnded), "{e}");
    // offline_access of a client without back-channel logout outlives the sign-in
    refresh("other", rt(1)).await.unwrap();
}
