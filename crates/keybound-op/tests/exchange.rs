//! Identity chaining, IdP side: RFC 8693 token exchange of a (key-bound) ID Token into an
//! ID-JAG, on the in-memory store with a fixed clock. Tests are named after the checklist IDs
//! of `../shared/specs/token-exchange-and-id-jag.md` (TE-*, IJ-*).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_jose::{Jws, PrivateKey};
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::dpop::ProofBuilder;
use keybound_proto::idjag::TYP_ID_JAG;
use keybound_proto::wire::{grant_type, token_type, ErrorCode, TokenResponse};
use keybound_store::{ClientAuthMethod, ExchangePolicy};
use keybound_testkit::keys;
use keybound_testkit::op::{basic, client, form, OpBuilder, TestOp, ALICE, ISS, T0};
use serde_json::Value;

const AS_B: &str = "https://as.b.example";

fn policy() -> ExchangePolicy {
    ExchangePolicy {
        audiences: [(AS_B.to_owned(), "app-at-b".to_owned())].into(),
        scopes: vec!["chat.read".into(), "chat.write".into()],
        resources: vec!["https://api.b.example".into()],
        ..ExchangePolicy::default()
    }
}

/// `conf`: confidential, key-bound subjects only; `lax`: also unbound subjects; `pub`: public
/// (not allowed by its policy); `plain`: no exchange policy.
async fn op() -> TestOp {
    OpBuilder::new()
        .client(keybound_store::Client {
            exchange: Some(policy()),
            ..client("conf", ClientAuthMethod::ClientSecretBasic)
        })
        .client(keybound_store::Client {
            exchange: Some(ExchangePolicy {
                allow_unbound: true,
                ..policy()
            }),
            ..client("lax", ClientAuthMethod::ClientSecretBasic)
        })
        .client(keybound_store::Client {
            exchange: Some(policy()),
            ..client("pub", ClientAuthMethod::None)
        })
        .client(client("plain", ClientAuthMethod::ClientSecretBasic))
        .client(keybound_store::Client {
            exchange: Some(ExchangePolicy {
                acr_values: vec![
                    "urn:keybound:acr:passkey".into(),
                    "urn:keybound:acr:mfa".into(),
                ],
                max_auth_age: Some(600),
                ..policy()
            }),
            ..client("strict", ClientAuthMethod::ClientSecretBasic)
        })
        .build()
        .await
}

/// An ID Token of `client` for the standard End-User, key-bound to `key` when given.
async fn id_token(op: &TestOp, client: &str, key: Option<&PrivateKey>) -> String {
    let jkt = key.map(|k| k.public_jwk().thumbprint());
    let scope = if key.is_some() {
        "openid email bound_key"
    } else {
        "openid email"
    };
    let code = op.sign_in_code(client, scope, jkt.as_ref()).await;
    let auth = (client != "pub").then(|| basic(client));
    op.redeem(client, &code, key, auth.as_deref())
        .await
        .unwrap()
        .id_token
        .unwrap()
}

/// A token-exchange request by `client` for `subject`, with a proof by `key` when given;
/// `changes` replace or add form fields (an empty value removes one).
async fn exchange(
    op: &TestOp,
    client: &str,
    subject: &str,
    key: Option<&PrivateKey>,
    changes: &[(&str, &str)],
) -> Result<TokenResponse, OpError> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", grant_type::TOKEN_EXCHANGE),
        ("requested_token_type", token_type::ID_JAG),
        ("subject_token", subject),
        ("subject_token_type", token_type::ID_TOKEN),
        ("audience", AS_B),
    ];
    for (k, v) in changes {
        fields.retain(|(f, _)| f != k);
        if !v.is_empty() {
            fields.push((k, v));
        }
    }
    if client == "pub" {
        fields.push(("client_id", "pub"));
    }
    let proof = key.map(|k| op.token_proof(k));
    let dpop: Vec<&str> = proof.iter().map(String::as_str).collect();
    let auth = (client != "pub").then(|| basic(client));
    op.p.token(TokenRequestFacts {
        form: &form(&fields),
        authorization: auth.as_deref(),
        dpop: &dpop,
    })
    .await
    .map(|s| s.response)
}

/// A subject ID Token made by hand: for [`ALICE`] and `conf`, from `iss`, bound to `key`, under
/// the OP's current `kid`, signed by `by` (the OP's own key when `None`), after `f`.
async fn subject_made(
    op: &TestOp,
    iss: &str,
    by: Option<&PrivateKey>,
    key: &PrivateKey,
    f: impl FnOnce(keybound_proto::idtoken::IdTokenBuilder) -> keybound_proto::idtoken::IdTokenBuilder,
) -> String {
    made(op, iss, "conf", by, key, f).await
}

/// [`subject_made`] by this OP for client `aud`.
async fn subject_for(
    op: &TestOp,
    aud: &str,
    key: &PrivateKey,
    f: impl FnOnce(keybound_proto::idtoken::IdTokenBuilder) -> keybound_proto::idtoken::IdTokenBuilder,
) -> String {
    made(op, ISS, aud, None, key, f).await
}

async fn made(
    op: &TestOp,
    iss: &str,
    aud: &str,
    by: Option<&PrivateKey>,
    key: &PrivateKey,
    f: impl FnOnce(keybound_proto::idtoken::IdTokenBuilder) -> keybound_proto::idtoken::IdTokenBuilder,
) -> String {
    let signer = op.p.current_key().await.unwrap();
    let b = keybound_proto::idtoken::IdTokenBuilder::new(
        iss,
        ALICE.2,
        keybound_proto::idtoken::Audience::from(aud),
        op.now(),
        300,
    )
    .bind(
        keybound_proto::keybinding::Profile::KeyBinding,
        key.public_jwk(),
    );
    f(b).sign(by.unwrap_or(&signer.key), signer.alg, Some(&signer.kid))
        .unwrap()
}

fn code_of(r: Result<TokenResponse, OpError>) -> ErrorCode {
    match r {
        Ok(t) => panic!("expected a refusal, got {t:?}"),
        Err(e) => e.code(),
    }
}

/// The ID-JAG's header `typ` and claims, after checking its signature with the OP's keys.
async fn open(op: &TestOp, jag: &str) -> (Option<String>, Value) {
    let jws = Jws::parse(jag).unwrap();
    let jwks = op.p.jwks().await.unwrap();
    let key = jwks
        .candidates(jws.header().kid.as_deref(), jws.header().alg)
        .into_iter()
        .next()
        .unwrap();
    jws.verify(key, &keybound_jose::Algorithm::ALL).unwrap();
    (jws.header().typ.clone(), jws.payload_json().unwrap())
}

/// IJ-1, ID-JAG §4.2 and §4.6, TE-4, TE-5: a key-bound ID Token, a proof by its key → an
/// ID-JAG bound to the same key, for the mapped client id at the audience, `token_type: N_A`,
/// no refresh token.
#[tokio::test]
async fn ij_key_bound_id_token_becomes_an_id_jag_bound_to_the_same_key() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    let t = exchange(
        &op,
        "conf",
        &idt,
        Some(&key),
        &[
            ("scope", "chat.read"),
            ("resource", "https://api.b.example"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(t.token_type, "N_A");
    assert_eq!(t.issued_token_type.as_deref(), Some(token_type::ID_JAG));
    assert_eq!(t.expires_in, Some(300));
    assert_eq!(t.scope.as_deref(), Some("chat.read"));
    assert!(t.refresh_token.is_none() && t.id_token.is_none());
    let (typ, c) = open(&op, &t.access_token).await;
    assert_eq!(typ.as_deref(), Some(TYP_ID_JAG));
    assert_eq!(c["iss"], ISS);
    assert_eq!(c["sub"], ALICE.2);
    assert_eq!(c["aud"], AS_B, "a single audience, as a string");
    assert_eq!(c["client_id"], "app-at-b");
    assert_eq!(c["scope"], "chat.read");
    assert_eq!(c["resource"], "https://api.b.example");
    assert_eq!(c["iat"], T0);
    assert_eq!(c["exp"], T0 + 300);
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(c["auth_time"], T0);
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(
        c["cnf"]["jkt"],
        key.public_jwk().thumbprint().as_str(),
        "the binding crosses over"
    );
    // the resource AS's stateless checks accept it (IJ-8, IJ-9, IJ-10)
    let jws = Jws::parse(&t.access_token).unwrap();
    let (_, jkt) = keybound_proto::idjag::check(&jws, AS_B, "app-at-b", T0, 0).unwrap();
    assert_eq!(jkt, Some(key.public_jwk().thumbprint()));
}

/// ID-JAG §4.6 with our resolution 4: a key-bound subject needs a proof by its `cnf.jwk` key.
#[tokio::test]
async fn key_bound_subject_without_a_proof_by_its_key_is_invalid_grant() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    let none = exchange(&op, "conf", &idt, None, &[]).await;
    assert_eq!(code_of(none), ErrorCode::InvalidGrant);
    let thief = keys::es256_b();
    let wrong = exchange(&op, "conf", &idt, Some(&thief), &[])
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::InvalidGrant);
    assert!(wrong.description().contains("bound"), "{wrong:?}");
}

/// Unbound subjects only by policy; then bound to the proof key if there is one, else unbound.
#[tokio::test]
async fn unbound_subject_only_by_policy() {
    let op = op().await;
    let plain = id_token(&op, "conf", None).await;
    assert_eq!(
        code_of(exchange(&op, "conf", &plain, None, &[]).await),
        ErrorCode::InvalidGrant
    );
    let lax = id_token(&op, "lax", None).await;
    let t = exchange(&op, "lax", &lax, None, &[]).await.unwrap();
    assert!(open(&op, &t.access_token).await.1.get("cnf").is_none());
    let key = keys::es256_b();
    let t = exchange(&op, "lax", &lax, Some(&key), &[]).await.unwrap();
    assert_eq!(
        open(&op, &t.access_token).await.1["cnf"]["jkt"],
        key.public_jwk().thumbprint().as_str()
    );
}

/// IJ-1: the subject ID Token must have been issued to the authenticated client.
#[tokio::test]
async fn ij1_subject_issued_to_another_client_is_refused() {
    let op = op().await;
    let key = keys::es256_a();
    let theirs = id_token(&op, "lax", Some(&key)).await;
    let e = exchange(&op, "conf", &theirs, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest, "{e:?}");
    assert!(e.description().contains("aud"), "{e:?}");
    // TE-2 (OIDC Core 3.1.3.7 step 5): our client in `aud`, but authorized for another party
    // (`azp`): not this client's to exchange
    let for_other_party = subject_made(&op, ISS, None, &key, |b| b.azp("lax")).await;
    let e = exchange(&op, "conf", &for_other_party, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest, "{e:?}");
    assert!(e.description().contains("azp"), "{e:?}");
}

/// TE-1: the subject token is ours, unexpired and not too old; anything else is unusable —
/// each refused for its own reason (a forged token must reach the signature check, a token
/// of another issuer the issuer check: not stop early at an unknown `kid`).
#[tokio::test]
async fn te1_subject_token_must_be_valid() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    let other = keys::es256_b();
    // our issuer and kid, the client as audience, signed by another key
    let forged = subject_made(&op, ISS, Some(&other), &key, |b| b).await;
    // signed by our key, but naming another issuer
    let elsewhere = subject_made(&op, "https://op.elsewhere.example", None, &key, |b| b).await;
    // signed by someone else entirely, with a kid we do not have
    let stranger =
        keybound_testkit::tokens::BoundIdToken::new(&keys::es256_b(), &key, "conf", T0).sign();
    for (bad, says) in [
        ("", "subject_token"),
        ("not.a.jwt", "subject_token"),
        (forged.as_str(), "signature does not verify"),
        (elsewhere.as_str(), "iss"),
        (stranger.as_str(), "kid"),
    ] {
        let r = exchange(&op, "conf", bad, Some(&key), &[("subject_token", bad)]).await;
        let e = r.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidRequest, "{bad}");
        assert!(e.description().contains(says), "{says:?} not in {e:?}");
    }
    op.advance(301);
    assert_eq!(
        code_of(exchange(&op, "conf", &idt, Some(&key), &[]).await),
        ErrorCode::InvalidRequest,
        "expired"
    );
}

/// TE-6, IJ-3: audience, resource and scope outside the client's policy.
#[tokio::test]
async fn te6_ij3_targets_outside_the_policy() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    for (changes, code) in [
        (
            &[("audience", "https://as.c.example")][..],
            ErrorCode::InvalidTarget,
        ),
        (&[("audience", "")][..], ErrorCode::InvalidRequest),
        (
            &[("resource", "https://api.c.example")][..],
            ErrorCode::InvalidTarget,
        ),
        (&[("scope", "chat.read admin")][..], ErrorCode::InvalidScope),
    ] {
        let r = exchange(&op, "conf", &idt, Some(&key), changes).await;
        assert_eq!(code_of(r), code, "{changes:?}");
    }
}

/// TE-3 and the token types: actor tokens are refused; only ID Token → ID-JAG is offered.
#[tokio::test]
async fn te3_token_types_and_actor_tokens() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    for changes in [
        &[("actor_token", "x")][..],
        &[("actor_token_type", token_type::JWT)][..],
        &[("actor_token", "x"), ("actor_token_type", token_type::JWT)][..],
        &[("requested_token_type", token_type::ACCESS_TOKEN)][..],
        &[("requested_token_type", "")][..],
        &[("subject_token_type", token_type::ACCESS_TOKEN)][..],
        &[("subject_token", "")][..],
    ] {
        let r = exchange(&op, "conf", &idt, Some(&key), changes).await;
        assert_eq!(code_of(r), ErrorCode::InvalidRequest, "{changes:?}");
    }
}

/// ID-JAG §4.5: confidential clients by default; a client without a policy may not exchange.
#[tokio::test]
async fn public_clients_and_clients_without_a_policy_are_unauthorized() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "pub", Some(&key)).await;
    assert_eq!(
        code_of(exchange(&op, "pub", &idt, Some(&key), &[]).await),
        ErrorCode::UnauthorizedClient
    );
    let idt = id_token(&op, "plain", Some(&key)).await;
    assert_eq!(
        code_of(exchange(&op, "plain", &idt, Some(&key), &[]).await),
        ErrorCode::UnauthorizedClient
    );
}

/// The grant behind the ID Token must still stand: a deleted End-User gets nothing.
#[tokio::test]
async fn subject_whose_account_is_gone_is_invalid_grant() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    assert!(op.store.delete_user(ALICE.2).await.unwrap());
    assert_eq!(
        code_of(exchange(&op, "conf", &idt, Some(&key), &[]).await),
        ErrorCode::InvalidGrant
    );
}

/// The proof is checked before anything else about the grant: a replayed proof is refused as
/// a replay (the pipeline's order holds for the new grant too).
#[tokio::test]
async fn the_proof_is_checked_first() {
    let op = op().await;
    let key = keys::es256_a();
    let idt = id_token(&op, "conf", Some(&key)).await;
    let proof = ProofBuilder::new("POST", &op.p.config.endpoints.token, op.now(), "same-jti")
        .sign(&key)
        .unwrap();
    let send = || async {
        op.p.token(TokenRequestFacts {
            form: &form(&[
                ("grant_type", grant_type::TOKEN_EXCHANGE),
                ("requested_token_type", token_type::ID_JAG),
                ("subject_token", &idt),
                ("subject_token_type", token_type::ID_TOKEN),
                ("audience", AS_B),
            ]),
            authorization: Some(&basic("conf")),
            dpop: &[&proof],
        })
        .await
    };
    assert!(send().await.is_ok());
    let e = send().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidDpopProof, "{e:?}");
}

/// ID-JAG §3 (issue 22 item 6): what the sign-in was travels with the identity — the subject
/// ID Token's `acr`, `amr` and `auth_time` are the ID-JAG's, and the address as verified.
#[tokio::test]
async fn ij_acr_amr_and_auth_time_are_carried_into_the_id_jag() {
    let op = op().await;
    let key = keys::es256_a();
    // the End-User has signed in and consented (the grant stands); the subject is an ID Token
    // of ours with a stronger sign-in than a password
    let real = id_token(&op, "conf", Some(&key)).await;
    let gid = Jws::parse(&real).unwrap().payload_json::<Value>().unwrap()["gid"].clone();
    let now = op.now();
    let idt = subject_made(&op, ISS, None, &key, |b| {
        b.claim("gid", gid)
            .auth_time(now - 5)
            .acr("urn:keybound:acr:mfa")
            .amr(&["pwd", "hwk", "mfa"])
    })
    .await;
    let t = exchange(&op, "conf", &idt, Some(&key), &[]).await.unwrap();
    let (_, c) = open(&op, &t.access_token).await;
    assert_eq!(c["acr"], "urn:keybound:acr:mfa");
    assert_eq!(c["amr"], serde_json::json!(["pwd", "hwk", "mfa"]));
    assert_eq!(c["auth_time"], op.now() - 5);
    assert_eq!(c["email_verified"], true);
}

/// Issue 26 item 2: a subject ID Token whose `cnf` names no key this server can carry into the
/// ID-JAG (Token Binding's `tbh`) is not exchanged as if it were unbound, even where the
/// policy allows unbound subjects — the binding would be dropped at the trust boundary.
#[tokio::test]
async fn a_subject_with_an_uncheckable_cnf_is_not_exchanged() {
    let op = op().await;
    let key = keys::es256_a();
    id_token(&op, "lax", None).await; // the End-User consented to lax
    let signer = op.p.current_key().await.unwrap();
    let tbh_only = keybound_proto::idtoken::IdTokenBuilder::new(
        ISS,
        ALICE.2,
        keybound_proto::idtoken::Audience::from("lax"),
        op.now(),
        300,
    )
    .token_binding_hash("suMuxh_IlrP-Zrj33LuQOQ5rX039cmBe-wt2df3BrUQ")
    .sign(&signer.key, signer.alg, Some(&signer.kid))
    .unwrap();
    for proof in [None, Some(&key)] {
        let e = exchange(&op, "lax", &tbh_only, proof, &[])
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidGrant, "{e:?}");
        assert!(e.description().contains("cnf names no key"), "{e:?}");
    }
}

/// Issue 26 item 7: the grant an ID Token came from must be alive to exchange it — after RFC
/// 7009 revocation (its access token refused at userinfo) the same grant's ID Token no longer
/// becomes an ID-JAG (it did, for up to `exchange_subject_max_age`); a subject naming no grant
/// of this server is refused too.
#[tokio::test]
async fn a_revoked_grant_no_longer_exchanges() {
    let op = op().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let code = op
        .sign_in_code("conf", "openid bound_key", Some(&jkt))
        .await;
    let t = op
        .redeem("conf", &code, Some(&key), Some(&basic("conf")))
        .await
        .unwrap();
    let idt = t.id_token.unwrap();
    assert!(exchange(&op, "conf", &idt, Some(&key), &[]).await.is_ok());
    op.p.revoke(
        Some(&basic("conf")),
        &form(&[("token", t.access_token.as_str())]),
    )
    .await
    .unwrap();
    assert!(op
        .userinfo_dpop(&t.access_token, &key, "after-revoke")
        .await
        .is_err());
    let e = exchange(&op, "conf", &idt, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant, "{e:?}");
    assert!(e.description().contains("revoked"), "{e:?}");
    // a token of ours naming no grant
    let no_grant = subject_made(&op, ISS, None, &key, |b| b).await;
    let e = exchange(&op, "conf", &no_grant, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant, "{e:?}");
    assert!(e.description().contains("no grant"), "{e:?}");
}

#[tokio::test]
async fn bcl_2_7_an_id_token_of_a_logged_out_session_no_longer_exchanges() {
    // a client that follows the OP session (it registered back-channel logout)
    let op = OpBuilder::new()
        .client(keybound_store::Client {
            exchange: Some(policy()),
            backchannel_logout_uri: Some("https://conf.example/backchannel".into()),
            ..client("conf", ClientAuthMethod::ClientSecretBasic)
        })
        .build()
        .await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let session = op.sign_in().await;
    let v =
        op.p.validate_authorization(&keybound_testkit::op::authorization_request(
            "conf",
            "openid bound_key",
            Some(&jkt),
        ))
        .await
        .unwrap();
    let code = op.code_in(&v, &session).await;
    let idt = op
        .redeem("conf", &code, Some(&key), Some(&basic("conf")))
        .await
        .unwrap()
        .id_token
        .unwrap();
    assert!(exchange(&op, "conf", &idt, Some(&key), &[]).await.is_ok());
    op.p.end_session(&session).await.unwrap();
    let e = exchange(&op, "conf", &idt, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidGrant, "{e:?}");
    assert!(e.description().contains("logged out"), "{e:?}");
}

/// RFC 9470 at the exchange: a client whose policy demands a passkey sign-in (and one no older
/// than 10 minutes) cannot chain a password sign-in; the refusal is
/// `insufficient_user_authentication` and names the values to sign in with.
#[tokio::test]
async fn rfc9470_a_policy_that_demands_a_stronger_sign_in_refuses_a_password_one() {
    let op = op().await;
    let key = keys::es256_a();
    let real = id_token(&op, "strict", Some(&key)).await;
    let e = exchange(&op, "strict", &real, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InsufficientUserAuthentication);
    assert!(e.description().contains("urn:keybound:acr:passkey"), "{e}");
    assert!(e.description().contains("max_age=600"), "{e}");
    let gid = Jws::parse(&real).unwrap().payload_json::<Value>().unwrap()["gid"].clone();
    let now = op.now();
    let passkey = |age: u64| {
        let gid = gid.clone();
        subject_for(&op, "strict", &key, move |b| {
            b.claim("gid", gid)
                .auth_time(now - age)
                .acr("urn:keybound:acr:passkey")
                .amr(&["swk", "user"])
        })
    };
    let fresh = passkey(60).await;
    let t = exchange(&op, "strict", &fresh, Some(&key), &[])
        .await
        .unwrap();
    let (_, c) = open(&op, &t.access_token).await;
    assert_eq!(c["acr"], "urn:keybound:acr:passkey");
    let old = passkey(601).await;
    let e = exchange(&op, "strict", &old, Some(&key), &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InsufficientUserAuthentication);
    assert!(e.description().contains("601 s old"), "{e}");
}
