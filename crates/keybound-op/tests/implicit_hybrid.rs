//! The implicit and hybrid flows (OIDC Core 3.2, 3.3): every response type, what it returns,
//! the hashes that tie its parts together (`at_hash`, the OIDC `c_hash`), the response modes,
//! and the refusals (nonce, `bound_key` per Key Binding ID1 §1.4, query mode, registration).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;

use keybound_op::{AuthorizeError, ResponseMode};
use keybound_proto::idtoken::{self, IdTokenChecks};
use keybound_proto::keybinding::oidc_half_hash;
use keybound_proto::wire::{AuthorizationRequest, ErrorCode};
use keybound_store::Client;
use keybound_testkit::op::{
    authorization_request, front_channel_client, public_client, OpBuilder, TestOp, ALICE, ISS,
    TOKEN_REDIRECT,
};

const ALL: [&str; 6] = [
    "code",
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
];

async fn op() -> TestOp {
    OpBuilder::new()
        .client(front_channel_client("spa", &ALL))
        .client(public_client("code-only"))
        .client(Client {
            response_types: ALL.iter().map(|s| (*s).to_owned()).collect(),
            ..public_client("old-spa")
        })
        .build()
        .await
}

fn request(response_type: &str) -> AuthorizationRequest {
    AuthorizationRequest {
        response_type: response_type.into(),
        redirect_uri: Some(TOKEN_REDIRECT.into()),
        ..authorization_request("spa", "openid email", None)
    }
}

/// Sign in, consent and issue for `req`; the response's mode and parameters.
async fn issue(op: &TestOp, req: &AuthorizationRequest) -> (ResponseMode, HashMap<String, String>) {
    let v = op.p.validate_authorization(req).await.unwrap();
    let session = op.p.login(ALICE.0, ALICE.1).await.unwrap().unwrap();
    op.p.record_consent(&v, &session.sub).await.unwrap();
    let r = op.p.issue_code(&v, &session).await.unwrap();
    (r.mode, r.params.into_iter().collect())
}

fn refused(
    r: Result<keybound_op::ValidatedAuthorization, AuthorizeError>,
    code: ErrorCode,
    says: &str,
) {
    match r {
        Ok(_) => panic!("expected {code:?}"),
        Err(e @ AuthorizeError::Redirect { .. }) => {
            let error = e
                .error_response()
                .expect("a redirect has an error response");
            assert_eq!(error.error, code, "{error:?}");
            assert!(
                error
                    .error_description
                    .as_deref()
                    .unwrap_or("")
                    .contains(says),
                "{says:?} not in {error:?}"
            );
        }
        Err(e) => panic!("expected a redirect, got {e:?}"),
    }
}

/// OIDC Core 3.2.2.5, 3.3.2.5: each response type returns exactly its parts, in the fragment
/// by default; ID Tokens carry the nonce, `at_hash` with an access token and `c_hash` with a code.
#[tokio::test]
async fn oidc_core_3_2_3_3_every_response_type() {
    let op = op().await;
    let keys = op.p.jwks().await.unwrap();
    for rt in ALL {
        let (mode, p) = issue(&op, &request(rt)).await;
        let code = rt.contains("code");
        let id = rt.contains("id_token");
        let token = rt.contains("token") && rt.split(' ').any(|x| x == "token");
        assert_eq!(
            mode,
            if rt == "code" {
                ResponseMode::Query
            } else {
                ResponseMode::Fragment
            },
            "{rt}"
        );
        assert_eq!(p.contains_key("code"), code, "{rt}");
        assert_eq!(p.contains_key("id_token"), id, "{rt}");
        assert_eq!(p.contains_key("access_token"), token, "{rt}");
        assert_eq!(p["state"], "st-1");
        assert_eq!(p["iss"], ISS);
        if token {
            assert_eq!(
                p["token_type"], "Bearer",
                "{rt}: no proof reaches the authorization endpoint"
            );
            assert_eq!(p["expires_in"], "300");
        }
        if id {
            let audiences = ["spa".to_owned()];
            let checks = IdTokenChecks {
                nonce: Some("n-1"),
                ..IdTokenChecks::new(ISS, &audiences, op.now())
            };
            let v = idtoken::validate(&p["id_token"], &keys, &checks).unwrap();
            assert_eq!(v.claims.sub, ALICE.2);
            assert!(v.claims.cnf.is_none(), "never key-bound");
            assert_eq!(
                v.claims.c_hash,
                p.get("code").map(|c| oidc_half_hash(c)),
                "{rt}"
            );
            assert_eq!(
                v.claims.at_hash,
                p.get("access_token").map(|t| oidc_half_hash(t)),
                "{rt}"
            );
        }
    }
}

/// The hybrid flow's code is a normal code: redeemable once at the token endpoint with PKCE.
#[tokio::test]
async fn hybrid_code_is_redeemed_at_the_token_endpoint() {
    let op = op().await;
    let (_, p) = issue(&op, &request("code id_token")).await;
    let t = op
        .redeem_from("spa", TOKEN_REDIRECT, &p["code"], None, None)
        .await
        .unwrap();
    assert!(t.id_token.is_some() && t.token_type == "Bearer");
}

/// OAuth 2.0 Form Post Response Mode for an implicit response.
#[tokio::test]
async fn implicit_with_form_post() {
    let op = op().await;
    let (mode, p) = issue(
        &op,
        &AuthorizationRequest {
            response_mode: Some("form_post".into()),
            ..request("id_token token")
        },
    )
    .await;
    assert_eq!(mode, ResponseMode::FormPost);
    assert!(p.contains_key("id_token") && p.contains_key("access_token"));
}

/// The refusals, each with its code.
#[tokio::test]
async fn implicit_and_hybrid_refusals() {
    let op = op().await;
    let v = |r: AuthorizationRequest| {
        let op = &op;
        async move { op.p.validate_authorization(&r).await }
    };
    // OIDC Core 3.2.2.1, 3.3.2.11 (and its errata): the nonce is required for every response
    // type that returns tokens from the authorization endpoint, hybrid ones included
    for rt in [
        "id_token",
        "id_token token",
        "code id_token",
        "code token",
        "code id_token token",
    ] {
        for nonce in [None, Some(String::new())] {
            refused(
                v(AuthorizationRequest {
                    nonce: nonce.clone(),
                    ..request(rt)
                })
                .await,
                ErrorCode::InvalidRequest,
                "nonce is required",
            );
        }
    }
    // the code flow alone may go without
    assert!(v(AuthorizationRequest {
        nonce: None,
        ..request("code")
    })
    .await
    .is_ok());
    refused(
        v(AuthorizationRequest {
            scope: "openid bound_key".into(),
            ..request("code id_token")
        })
        .await,
        ErrorCode::InvalidRequest,
        "bound_key cannot be used",
    );
    refused(
        v(AuthorizationRequest {
            response_mode: Some("query".into()),
            ..request("id_token")
        })
        .await,
        ErrorCode::InvalidRequest,
        "must not be used",
    );
    let jkt = keybound_testkit::keys::es256_a().public_jwk().thumbprint();
    refused(
        v(AuthorizationRequest {
            dpop_jkt: Some(jkt.to_string()),
            ..request("id_token token")
        })
        .await,
        ErrorCode::InvalidRequest,
        "dpop_jkt binds an authorization code",
    );
    refused(
        v(request("token")).await,
        ErrorCode::UnsupportedResponseType,
        "not supported",
    );
    refused(
        v(AuthorizationRequest {
            client_id: "code-only".into(),
            redirect_uri: Some(keybound_testkit::op::REDIRECT.into()),
            ..request("code id_token")
        })
        .await,
        ErrorCode::UnauthorizedClient,
        "not registered for response_type 'code id_token'",
    );
    // OIDC Core 3.2.2.1 (issue 22 item 4): a client registered before the rule with an
    // http loopback redirect URI gets no tokens there: an error page, nothing redirected
    for rt in ["id_token", "code id_token", "code token"] {
        let r = v(AuthorizationRequest {
            client_id: "old-spa".into(),
            redirect_uri: Some(keybound_testkit::op::REDIRECT.into()),
            ..request(rt)
        })
        .await;
        match r {
            Err(AuthorizeError::Page(e)) => {
                assert_eq!(e.code(), ErrorCode::InvalidRequest, "{rt}");
                assert!(e.description().contains("cannot receive tokens"), "{e:?}");
            }
            other => panic!("{rt}: expected an error page, got {other:?}"),
        }
    }
}
