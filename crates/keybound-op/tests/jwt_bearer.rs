//! Identity chaining across two trust domains, in process: domain A (an identity provider)
//! exchanges a key-bound ID Token for an ID-JAG; domain B (a resource AS, another keybound with
//! another issuer) redeems it with the jwt-bearer grant. Every check of the resource AS has a
//! negative test with its error code; names follow JB-* / IJ-* of
//! `../shared/specs/token-exchange-and-id-jag.md`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_jose::PrivateKey;
use keybound_op::{OpError, TokenRequestFacts};
use keybound_proto::wire::{grant_type, token_type, ErrorCode, TokenResponse};
use keybound_store::{ClientAuthMethod, ExchangePolicy, SubjectMode, TrustedIssuer};
use keybound_testkit::keys;
use keybound_testkit::op::{basic, client, form, trusted, IssuerJwks, OpBuilder, TestOp};

const A: &str = "https://idp.a.example";
const B: &str = "https://as.b.example";
const C: &str = "https://as.c.example";
/// Another identity provider B trusts in `email` mode (ID-JAGs signed with A's keys).
const OTHER: &str = "https://idp.other.example";

/// The two domains: A with client `svc` (ID-JAGs for B as `svc-at-b` and for C), B with
/// clients `svc-at-b` and `other` and A as a trusted issuer as `issuer` makes it.
async fn domains(issuer: impl FnOnce(&mut TrustedIssuer)) -> (TestOp, TestOp) {
    let a = OpBuilder::new()
        .client(keybound_store::Client {
            exchange: Some(ExchangePolicy {
                audiences: [
                    (B.to_owned(), "svc-at-b".to_owned()),
                    (C.to_owned(), "svc-at-c".to_owned()),
                ]
                .into(),
                scopes: vec!["chat.read".into(), "chat.write".into()],
                allow_unbound: true,
                ..ExchangePolicy::default()
            }),
            ..client("svc", ClientAuthMethod::ClientSecretBasic)
        })
        .build_at(A)
        .await;
    let mut idp = trusted(A);
    issuer(&mut idp);
    let keys = IssuerJwks([(format!("{A}/jwks"), a.p.jwks().await.unwrap())].into());
    let b = OpBuilder::new()
        .client(redeemer("svc-at-b"))
        .client(redeemer("other"))
        .client(client("plain", ClientAuthMethod::ClientSecretBasic))
        .client(keybound_store::Client {
            jwt_bearer: true,
            ..client("public-at-b", ClientAuthMethod::None)
        })
        .trust(idp, Arc::new(keys))
        .build_at(B)
        .await;
    (a, b)
}

/// A client of B allowed the jwt-bearer grant.
fn redeemer(id: &str) -> keybound_store::Client {
    keybound_store::Client {
        jwt_bearer: true,
        ..client(id, ClientAuthMethod::ClientSecretBasic)
    }
}

async fn token(
    op: &TestOp,
    client: &str,
    fields: &[(&str, &str)],
    key: Option<&PrivateKey>,
) -> Result<TokenResponse, OpError> {
    let p = key.map(|k| op.token_proof(k));
    let dpop: Vec<&str> = p.iter().map(String::as_str).collect();
    op.p.token(TokenRequestFacts {
        form: &form(fields),
        authorization: Some(&basic(client)),
        dpop: &dpop,
    })
    .await
    .map(|s| s.response)
}

/// At A: sign in with `key` (key-bound when given), then exchange for an ID-JAG for
/// `audience` with a proof by `key`.
async fn id_jag(a: &TestOp, key: Option<&PrivateKey>, audience: &str, scope: &str) -> String {
    let jkt = key.map(|k| k.public_jwk().thumbprint());
    let sc = if key.is_some() {
        "openid email bound_key"
    } else {
        "openid email"
    };
    let code = a.sign_in_code("svc", sc, jkt.as_ref()).await;
    let idt = a
        .redeem("svc", &code, key, Some(&basic("svc")))
        .await
        .unwrap()
        .id_token
        .unwrap();
    token(
        a,
        "svc",
        &[
            ("grant_type", grant_type::TOKEN_EXCHANGE),
            ("requested_token_type", token_type::ID_JAG),
            ("subject_token", &idt),
            ("subject_token_type", token_type::ID_TOKEN),
            ("audience", audience),
            ("scope", scope),
        ],
        key,
    )
    .await
    .unwrap()
    .access_token
}

/// At B: redeem `assertion` as `client`, with a proof by `key` when given.
async fn redeem(
    b: &TestOp,
    client: &str,
    assertion: &str,
    key: Option<&PrivateKey>,
) -> Result<TokenResponse, OpError> {
    token(
        b,
        client,
        &[
            ("grant_type", grant_type::JWT_BEARER),
            ("assertion", assertion),
        ],
        key,
    )
    .await
}

/// The `sub` of an access token B issued (its own JWT; the signature is B's business).
fn subject(access_token: &str) -> String {
    let v: serde_json::Value = keybound_jose::Jws::parse(access_token)
        .unwrap()
        .payload_json()
        .unwrap();
    v["sub"].as_str().unwrap().to_owned()
}

fn refused(r: Result<TokenResponse, OpError>, code: ErrorCode, says: &str) {
    match r {
        Ok(t) => panic!("expected {code:?} ({says}), got {t:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            assert!(e.description().contains(says), "{says:?} not in {e:?}");
        }
    }
}

/// IJ-7…IJ-13 on the happy path: A's key-bound ID-JAG, redeemed at B with a proof by the same
/// key, gives a DPoP-bound access token for the End-User linked by e-mail, narrowed scope, no
/// refresh token, no ID Token; userinfo at B works with it. A key-bound ID-JAG may be redeemed
/// again within its lifetime with a fresh proof (ID-JAG -04).
#[tokio::test]
async fn ij_key_bound_chain_across_two_domains() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let jag = id_jag(&a, Some(&key), B, "chat.read chat.write").await;
    let t = redeem(&b, "svc-at-b", &jag, Some(&key)).await.unwrap();
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(t.scope.as_deref(), Some("chat.read chat.write"));
    assert!(t.refresh_token.is_none(), "IJ-13: no refresh token");
    assert!(t.id_token.is_none());
    assert_eq!(
        subject(&t.access_token),
        keybound_testkit::op::ALICE.2,
        "linked by e-mail"
    );
    // narrowed on request; again with a fresh proof
    let t2 = token(
        &b,
        "svc-at-b",
        &[
            ("grant_type", grant_type::JWT_DPOP),
            ("assertion", &jag),
            ("scope", "chat.read"),
        ],
        Some(&key),
    )
    .await
    .unwrap();
    assert_eq!(t2.scope.as_deref(), Some("chat.read"));
    refused(
        token(
            &b,
            "svc-at-b",
            &[
                ("grant_type", grant_type::JWT_BEARER),
                ("assertion", &jag),
                ("scope", "chat.admin"),
            ],
            Some(&key),
        )
        .await,
        ErrorCode::InvalidScope,
        "chat.admin",
    );
}

/// IJ-8, no type confusion in either direction: an ID Token, an access token or a DPoP proof
/// is not an ID-JAG at B; an ID-JAG is not an ID Token at A's token exchange.
#[tokio::test]
async fn ij8_type_confusion_both_ways() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let code = a
        .sign_in_code(
            "svc",
            "openid bound_key",
            Some(&key.public_jwk().thumbprint()),
        )
        .await;
    let t = a
        .redeem("svc", &code, Some(&key), Some(&basic("svc")))
        .await
        .unwrap();
    let idt = t.id_token.unwrap();
    let dpop = b.token_proof(&key);
    for jwt in [&idt, &t.access_token, &dpop] {
        refused(
            redeem(&b, "svc-at-b", jwt, Some(&key)).await,
            ErrorCode::InvalidGrant,
            "typ",
        );
    }
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    let r = token(
        &a,
        "svc",
        &[
            ("grant_type", grant_type::TOKEN_EXCHANGE),
            ("requested_token_type", token_type::ID_JAG),
            ("subject_token", &jag),
            ("subject_token_type", token_type::ID_TOKEN),
            ("audience", B),
        ],
        Some(&key),
    )
    .await;
    refused(r, ErrorCode::InvalidRequest, "subject_token");
}

/// IJ-11 and Keycloak CVE-2026-1486: an issuer that is not trusted, or trusted but disabled,
/// is refused.
#[tokio::test]
async fn ij11_untrusted_and_disabled_issuers() {
    let key = keys::es256_a();
    let (a, b) = domains(|i| i.enabled = false).await;
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "disabled",
    );
    let (a, b) = domains(|i| i.issuer = "https://someone-else.example".into()).await;
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "not trusted",
    );
}

/// JB-8: an ID-JAG signed by a key that is not the issuer's.
#[tokio::test]
async fn jb8_signature_by_another_key() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    let (head, rest) = jag.split_once('.').unwrap();
    let payload = rest.split('.').next().unwrap();
    let input = format!("{head}.{payload}");
    let sig = keys::es256_b()
        .sign(keybound_jose::Algorithm::ES256, input.as_bytes())
        .unwrap();
    let forged = format!("{input}.{}", keybound_jose::b64::encode(sig));
    refused(
        redeem(&b, "svc-at-b", &forged, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "signature",
    );
}

/// IJ-9, IJ-10, JB-4: another audience, another client, expired.
#[tokio::test]
async fn ij9_ij10_jb4_audience_client_and_expiry() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let for_c = id_jag(&a, Some(&key), C, "chat.read").await;
    refused(
        redeem(&b, "svc-at-b", &for_c, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "aud",
    );
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    refused(
        redeem(&b, "other", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "client_id",
    );
    b.advance(300 + 30);
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "expired",
    );
}

/// ID-JAG §4.6: `cnf` without a proof, or with a proof by another key.
#[tokio::test]
async fn bound_id_jag_needs_a_proof_by_its_key() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    refused(
        redeem(&b, "svc-at-b", &jag, None).await,
        ErrorCode::InvalidGrant,
        "proof of possession required",
    );
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&keys::es256_b())).await,
        ErrorCode::InvalidGrant,
        "bound to key",
    );
}

/// JB-7 and the -04 re-submission rule: an unbound ID-JAG is single use (and only accepted
/// from an issuer that allows unbound ones); a bound one is single use when the issuer says so.
#[tokio::test]
async fn jb7_single_use() {
    let (a, b) = domains(|_| {}).await;
    let unbound = id_jag(&a, None, B, "chat.read").await;
    refused(
        redeem(&b, "svc-at-b", &unbound, None).await,
        ErrorCode::InvalidGrant,
        "must be key-bound",
    );
    // issue 22 item 4 (docs/operations.md): a proof by any key does not make an unbound
    // ID-JAG acceptable from an issuer that is not --allow-unbound
    refused(
        redeem(&b, "svc-at-b", &unbound, Some(&keys::es256_a())).await,
        ErrorCode::InvalidGrant,
        "must be key-bound",
    );
    let (a, b) = domains(|i| i.allow_unbound = true).await;
    let unbound = id_jag(&a, None, B, "chat.read").await;
    let t = redeem(&b, "svc-at-b", &unbound, None).await.unwrap();
    assert_eq!(t.token_type, "Bearer");
    refused(
        redeem(&b, "svc-at-b", &unbound, None).await,
        ErrorCode::InvalidGrant,
        "already redeemed",
    );
    let key = keys::es256_a();
    let (a, b) = domains(|i| i.single_use = true).await;
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    assert!(redeem(&b, "svc-at-b", &jag, Some(&key)).await.is_ok());
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "already redeemed",
    );
}

/// Subject resolution: `link` knows only linked subjects; `provision` creates a local user.
#[tokio::test]
async fn subject_link_and_provisioning() {
    let key = keys::es256_a();
    let (a, b) = domains(|i| i.subject = SubjectMode::Link).await;
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "not known here",
    );
    b.store
        .link_user(
            A,
            keybound_testkit::op::ALICE.2,
            keybound_testkit::op::ALICE.2,
        )
        .await
        .unwrap();
    assert!(redeem(&b, "svc-at-b", &jag, Some(&key)).await.is_ok());
    let (a, b) = domains(|i| i.subject = SubjectMode::Provision).await;
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    let t = redeem(&b, "svc-at-b", &jag, Some(&key)).await.unwrap();
    let sub = subject(&t.access_token);
    let sub = sub.as_str();
    assert!(sub.starts_with("idjag-"), "{sub}");
    assert_ne!(sub, keybound_testkit::op::ALICE.2);
    // provisioned once: the second redemption finds the link
    let t2 = redeem(&b, "svc-at-b", &jag, Some(&key)).await.unwrap();
    assert_eq!(subject(&t2.access_token), sub);
    assert!(
        b.p.login(sub, "!").await.unwrap().is_none(),
        "no password sign-in"
    );
}

/// IJ-14: a server never redeems an ID-JAG it issued itself.
#[tokio::test]
async fn ij14_own_id_jags_are_not_redeemed() {
    let key = keys::es256_a();
    let a = OpBuilder::new()
        .client(keybound_store::Client {
            exchange: Some(ExchangePolicy {
                audiences: [(A.to_owned(), "svc".to_owned())].into(),
                ..ExchangePolicy::default()
            }),
            jwt_bearer: true,
            ..client("svc", ClientAuthMethod::ClientSecretBasic)
        })
        .build_at(A)
        .await;
    let jag = id_jag(&a, Some(&key), A, "").await;
    refused(
        redeem(&a, "svc", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "issued by this server",
    );
}

/// A client of the resource AS must be allowed the jwt-bearer grant (`keybound admin client add
/// --grant-type jwt-bearer`): an ID-JAG naming any other client is refused before it is read.
#[tokio::test]
async fn only_clients_allowed_jwt_bearer_redeem() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    refused(
        redeem(&b, "plain", &jag, Some(&key)).await,
        ErrorCode::UnauthorizedClient,
        "jwt-bearer is not enabled",
    );
}

/// ID-JAG §5 (issue 22 item 4): redemption is for confidential clients; a public client allowed
/// jwt-bearer before registration refused it is still refused at the token endpoint.
#[tokio::test]
async fn public_clients_do_not_redeem_id_jags() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let jag = id_jag(&a, Some(&key), B, "chat.read").await;
    let p = b.token_proof(&key);
    let r =
        b.p.token(TokenRequestFacts {
            form: &form(&[
                ("grant_type", grant_type::JWT_BEARER),
                ("assertion", &jag),
                ("client_id", "public-at-b"),
            ]),
            authorization: None,
            dpop: &[&p],
        })
        .await
        .map(|s| s.response);
    refused(r, ErrorCode::UnauthorizedClient, "confidential clients");
}

/// RFC 6749 §5.1 (issue 22 item 4): a grant without scope answers without `scope`, not `""`.
#[tokio::test]
async fn a_grant_without_scope_omits_scope() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let jag = id_jag(&a, Some(&key), B, "").await;
    let t = redeem(&b, "svc-at-b", &jag, Some(&key)).await.unwrap();
    assert_eq!(t.scope, None);
    let body = serde_json::to_value(&t).unwrap();
    assert!(body.get("scope").is_none(), "{body}");
}

/// `cnf.jwk` instead of `cnf.jkt` (the jwt-dpop draft's form): the thumbprints are compared, a
/// proof by that key is required.
#[tokio::test]
async fn cnf_jwk_is_compared_by_thumbprint() {
    let (a, b) = domains(|_| {}).await;
    let key = keys::es256_a();
    let signer = a.p.current_key().await.unwrap();
    let mut h = serde_json::Map::new();
    h.insert("typ".into(), "oauth-id-jag+jwt".into());
    h.insert("kid".into(), signer.kid.clone().into());
    let claims = serde_json::json!({
        "iss": A, "sub": keybound_testkit::op::ALICE.2, "aud": B, "client_id": "svc-at-b",
        "jti": "jwk-bound-1", "iat": a.now(), "exp": a.now() + 300, "scope": "chat.read",
        "email": "alice@example.com", "email_verified": true,
        "cnf": { "jwk": serde_json::to_value(key.public_jwk()).unwrap() }
    });
    let jag = keybound_jose::jws::sign(signer.alg, &h, claims.to_string().as_bytes(), &signer.key)
        .unwrap();
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&keys::es256_b())).await,
        ErrorCode::InvalidGrant,
        "bound to key",
    );
    let t = redeem(&b, "svc-at-b", &jag, Some(&key)).await.unwrap();
    assert_eq!(t.token_type, "DPoP");
}

/// An ID-JAG for B claiming issuer `iss`, signed with A's key, bound to `key`, with `claims`
/// added (`sub`, `email`, `email_verified`, …).
async fn signed_jag(
    a: &TestOp,
    iss: &str,
    key: &PrivateKey,
    jti: &str,
    claims: &serde_json::Value,
) -> String {
    let signer = a.p.current_key().await.unwrap();
    let mut h = serde_json::Map::new();
    h.insert("typ".into(), "oauth-id-jag+jwt".into());
    h.insert("kid".into(), signer.kid.clone().into());
    let mut c = serde_json::json!({
        "iss": iss, "aud": B, "client_id": "svc-at-b", "jti": jti,
        "iat": a.now(), "exp": a.now() + 300, "scope": "chat.read",
        "cnf": { "jkt": key.public_jwk().thumbprint() }
    });
    for (k, v) in claims.as_object().unwrap() {
        c[k] = v.clone();
    }
    keybound_jose::jws::sign(signer.alg, &h, c.to_string().as_bytes(), &signer.key).unwrap()
}

/// Issue 22 item 4, provisioning: an address is recorded as verified only when the ID-JAG
/// says so, the End-User records which issuer provisioned it, and one issuer's provisioned
/// address never satisfies another issuer's `email` subject mode.
#[tokio::test]
async fn provisioned_addresses_stay_with_their_issuer() {
    let key = keys::es256_a();
    let (a, b) = domains(|i| i.subject = SubjectMode::Provision).await;
    // B's local End-User has another address: nobody local owns carol's
    b.store
        .put_user(&keybound_store::User {
            email: Some("alice@b.example".into()),
            ..keybound_testkit::op::alice()
        })
        .await
        .unwrap();
    let carol = serde_json::json!({ "sub": "carol-at-a", "email": "carol@example.com", "email_verified": true });
    let jag = signed_jag(&a, A, &key, "p-1", &carol).await;
    let sub = subject(
        &redeem(&b, "svc-at-b", &jag, Some(&key))
            .await
            .unwrap()
            .access_token,
    );
    let provisioned = b.store.user(&sub).await.unwrap().unwrap();
    assert!(provisioned.email_verified, "A said the address is verified");
    assert_eq!(provisioned.provisioned_by.as_deref(), Some(A));
    // an address the assertion does not call verified is recorded unverified
    let dave = serde_json::json!({ "sub": "dave-at-a", "email": "dave@example.com" });
    let jag = signed_jag(&a, A, &key, "p-2", &dave).await;
    let sub = subject(
        &redeem(&b, "svc-at-b", &jag, Some(&key))
            .await
            .unwrap()
            .access_token,
    );
    assert!(!b.store.user(&sub).await.unwrap().unwrap().email_verified);
    // another issuer (same keys, e-mail subject mode) naming carol's address: not carol's
    // provisioned account, which A vouched for, not B
    b.store
        .put_issuer(&keybound_store::TrustedIssuer {
            jwks_uri: format!("{A}/jwks"),
            ..keybound_testkit::op::trusted(OTHER)
        })
        .await
        .unwrap();
    let impostor = serde_json::json!({ "sub": "carol-at-other", "email": "carol@example.com", "email_verified": true });
    let jag = signed_jag(&a, OTHER, &key, "o-1", &impostor).await;
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "not known here",
    );
    // and an unverified address never matches a local account in e-mail mode
    let claimed = serde_json::json!({ "sub": "x-at-other", "email": "alice@b.example" });
    let jag = signed_jag(&a, OTHER, &key, "o-2", &claimed).await;
    refused(
        redeem(&b, "svc-at-b", &jag, Some(&key)).await,
        ErrorCode::InvalidGrant,
        "not known here",
    );
    let verified = serde_json::json!({ "sub": "x-at-other", "email": "alice@b.example", "email_verified": true });
    let jag = signed_jag(&a, OTHER, &key, "o-3", &verified).await;
    assert_eq!(
        subject(
            &redeem(&b, "svc-at-b", &jag, Some(&key))
                .await
                .unwrap()
                .access_token
        ),
        keybound_testkit::op::ALICE.2
    );
}

/// RFC 8707 / RFC 9068 §3 at the resource AS (issue 22 item 4): the ID-JAG's `resource` becomes
/// the access token's `aud` when the client registered it; the request may narrow it, never
/// add; an unregistered one is `invalid_target`.
#[tokio::test]
async fn id_jag_resource_becomes_the_access_tokens_audience() {
    const API: &str = "https://api.b.example/";
    const CHAT: &str = "https://chat.b.example/";
    let key = keys::es256_a();
    let (a, b) = domains(|_| {}).await;
    let jag = |jti: &'static str, resource: serde_json::Value| {
        let a = &a;
        let key = &key;
        async move {
            let claims = serde_json::json!({
                "sub": keybound_testkit::op::ALICE.2, "email": "alice@example.com",
                "email_verified": true, "resource": resource
            });
            signed_jag(a, A, key, jti, &claims).await
        }
    };
    let aud = |t: &TokenResponse| -> serde_json::Value {
        let v: serde_json::Value = keybound_jose::Jws::parse(&t.access_token)
            .unwrap()
            .payload_json()
            .unwrap();
        v["aud"].clone()
    };
    // not registered for the client at B
    let one = jag("res-1", serde_json::json!(API)).await;
    refused(
        redeem(&b, "svc-at-b", &one, Some(&key)).await,
        ErrorCode::InvalidTarget,
        "not registered",
    );
    let mut c = b.store.client("svc-at-b").await.unwrap().unwrap();
    c.resources = vec![API.into(), CHAT.into()];
    b.store.put_client(&c).await.unwrap();
    b.advance(6); // past the client cache
    let t = redeem(&b, "svc-at-b", &one, Some(&key)).await.unwrap();
    assert_eq!(aud(&t), serde_json::json!(API));
    // both in the ID-JAG; the request narrows to one, never adds another
    let both = jag("res-2", serde_json::json!([API, CHAT])).await;
    let narrowed = |resource: &'static str| {
        let b = &b;
        let both = both.clone();
        let key = &key;
        async move {
            token(
                b,
                "svc-at-b",
                &[
                    ("grant_type", grant_type::JWT_BEARER),
                    ("assertion", &both),
                    ("resource", resource),
                ],
                Some(key),
            )
            .await
        }
    };
    assert_eq!(aud(&narrowed(CHAT).await.unwrap()), serde_json::json!(CHAT));
    refused(
        narrowed("https://other.b.example/").await,
        ErrorCode::InvalidTarget,
        "not one the grant",
    );
    assert_eq!(
        aud(&redeem(&b, "svc-at-b", &both, Some(&key)).await.unwrap()),
        serde_json::json!([API, CHAT])
    );
}

/// Issue 26 item 2 (ID-JAG: a confirmation method the server does not support MUST be
/// refused): an ID-JAG whose `cnf` names no key this server can check — `{}`, only
/// `x5t#S256`, only `tbh` — is refused, even from an issuer allowed unbound ones and even with
/// a proof; it was redeemed as a Bearer token.
#[tokio::test]
async fn an_uncheckable_cnf_is_refused_not_taken_as_unbound() {
    let key = keys::es256_a();
    let (a, b) = domains(|i| i.allow_unbound = true).await;
    for (i, cnf) in [
        serde_json::json!({}),
        serde_json::json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        serde_json::json!({ "tbh": "suMuxh_IlrP-Zrj33LuQOQ5rX039cmBe-wt2df3BrUQ" }),
    ]
    .into_iter()
    .enumerate()
    {
        let claims = serde_json::json!({
            "sub": keybound_testkit::op::ALICE.2, "email": "alice@example.com",
            "email_verified": true, "cnf": cnf
        });
        let jti = format!("uncheckable-{i}");
        let jag = signed_jag(&a, A, &key, &jti, &claims).await;
        for proof_key in [None, Some(&key)] {
            refused(
                redeem(&b, "svc-at-b", &jag, proof_key).await,
                ErrorCode::InvalidGrant,
                "cnf names no key",
            );
        }
    }
}

/// Issue 26 item 6: an ID-JAG's accepted lifetime (`exp` − the issuer's `iat`) is bounded
/// (`jwt_bearer_max_lifetime`, 10 minutes by default): one valid for ten years is refused — it
/// was accepted and redeemed twice with fresh proofs.
#[tokio::test]
async fn id_jag_lifetime_is_bounded() {
    let key = keys::es256_a();
    let (a, b) = domains(|_| {}).await;
    let alice = serde_json::json!({
        "sub": keybound_testkit::op::ALICE.2, "email": "alice@example.com", "email_verified": true,
        "exp": a.now() + 10 * 365 * 86_400
    });
    let jag = signed_jag(&a, A, &key, "long-1", &alice).await;
    for _ in 0..2 {
        refused(
            redeem(&b, "svc-at-b", &jag, Some(&key)).await,
            ErrorCode::InvalidGrant,
            "lifetime",
        );
    }
    // at the limit: accepted
    let at_limit = serde_json::json!({
        "sub": keybound_testkit::op::ALICE.2, "email": "alice@example.com", "email_verified": true,
        "exp": a.now() + 600
    });
    let jag = signed_jag(&a, A, &key, "long-2", &at_limit).await;
    assert!(redeem(&b, "svc-at-b", &jag, Some(&key)).await.is_ok());
}
