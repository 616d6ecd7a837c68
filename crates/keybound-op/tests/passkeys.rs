//! Passkeys at the provider (issue 27 item 1), with the testkit's software authenticator:
//! registration and sign-in ceremonies, the sealed single-use ceremony state, user
//! verification, RP ID and origin, cloned authenticators, throttling, and who may manage an
//! account's passkeys. Named after WebAuthn Level 3 sections where a rule comes from there.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_op::passkey::{PasskeySignIn, Strength};
use keybound_op::refusal::{PasskeyRefusal, Refusal};
use keybound_op::OpError;
use keybound_store::{Passkey, User};
use keybound_testkit::authenticator::SoftAuthenticator;
use keybound_testkit::op::{OpBuilder, TestOp, ALICE, ISS, T0};

const RP_ID: &str = "op.example";
/// the browser's form secret (its pre-session or session cookie)
const BROWSER: &str = "browser-secret-cookie-value-0123456789";
const BOB: &str = "sub-bob";

async fn op() -> TestOp {
    OpBuilder::new()
        .user(User::new(
            BOB,
            "bob",
            keybound_op::password::hash("builder"),
            T0,
        ))
        .build()
        .await
}

async fn register(op: &TestOp, auth: &mut SoftAuthenticator, sub: &str) -> Passkey {
    let c = op.p.start_passkey_registration(sub, BROWSER).await.unwrap();
    let cred = auth.create(&c.options).to_string();
    op.p.finish_passkey_registration(sub, BROWSER, &c.state, &cred, "Laptop")
        .await
        .unwrap()
}

async fn sign_in(
    op: &TestOp,
    auth: &mut SoftAuthenticator,
    second_factor_for: Option<&str>,
) -> Result<PasskeySignIn, OpError> {
    let c =
        op.p.start_passkey_sign_in(BROWSER, second_factor_for)
            .await
            .unwrap();
    let a = auth
        .get(&c.options, RP_ID)
        .expect("a credential for the OP");
    op.p.passkey_sign_in(BROWSER, &c.state, &a.to_string(), Some("192.0.2.7"))
        .await
}

fn why(e: OpError) -> PasskeyRefusal {
    match e {
        OpError::Refused(Refusal::Passkey(r)) => r,
        other => panic!("expected a passkey refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn webauthn_5_4_registration_asks_for_a_discoverable_user_verified_credential_of_the_issuers_host(
) {
    let op = op().await;
    let c =
        op.p.start_passkey_registration(ALICE.2, BROWSER)
            .await
            .unwrap();
    let o = &c.options;
    assert_eq!(o["rp"]["id"], RP_ID);
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(o["user"]["name"], ALICE.0);
    // the user handle is not the account's sub (an HMAC under the store's secret)
    let handle = keybound_jose::b64::decode(o["user"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(handle.len(), 16);
    assert!(!String::from_utf8_lossy(&handle).contains(ALICE.2));
    // a second registration excludes the first passkey (one authenticator, one passkey)
    let mut auth = SoftAuthenticator::new(ISS);
    let first = register(&op, &mut auth, ALICE.2).await;
    let c =
        op.p.start_passkey_registration(ALICE.2, BROWSER)
            .await
            .unwrap();
    assert_eq!(
        c.options["excludeCredentials"][0]["id"],
        first.credential_id
    );
}

#[tokio::test]
async fn a_registered_passkey_signs_in_without_a_username_as_a_passkey_sign_in() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    let pk = register(&op, &mut auth, ALICE.2).await;
    assert_eq!(pk.name, "Laptop");
    assert_eq!(op.p.store().passkeys_of(ALICE.2).await.unwrap().len(), 1);
    let c = op.p.start_passkey_sign_in(BROWSER, None).await.unwrap();
    // discoverable: no credentials listed, a button press (not the autofill UI)
    assert!(c.options["allowCredentials"]
        .as_array()
        .is_none_or(Vec::is_empty));
    assert_eq!(c.options["userVerification"], "required");
    let signed_in = sign_in(&op, &mut auth, None).await.unwrap();
    assert_eq!(signed_in.sub, ALICE.2);
    assert_eq!(signed_in.credential_id, pk.credential_id);
    let session = op.p.passkey_session(&signed_in, None);
    assert_eq!(session.amr, ["swk", "user"]);
    assert_eq!(
        Strength::of_amr(&session.amr).acr(),
        "urn:keybound:acr:passkey"
    );
    let stored =
        op.p.store()
            .passkey(&pk.credential_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.sign_count, 1);
    assert_eq!(stored.last_used_at, Some(op.now()));
}

#[tokio::test]
async fn a_passkey_after_the_same_end_users_password_is_both_factors() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    register(&op, &mut auth, ALICE.2).await;
    let password = op.sign_in().await;
    let signed_in = sign_in(&op, &mut auth, Some(ALICE.2)).await.unwrap();
    let session = op.p.passkey_session(&signed_in, Some(&password));
    assert_eq!(session.amr, ["pwd", "swk", "user", "mfa"]);
    assert_eq!(Strength::of_amr(&session.amr), Strength::PasswordAndPasskey);
    // after another End-User's password it is a passkey sign-in only
    let mut bobs = password.clone();
    bobs.sub = BOB.into();
    let session = op.p.passkey_session(&signed_in, Some(&bobs));
    assert_eq!(Strength::of_amr(&session.amr), Strength::Passkey);
}

#[tokio::test]
async fn a_second_factor_takes_only_the_end_users_own_passkeys() {
    let op = op().await;
    let mut alices = SoftAuthenticator::new(ISS);
    let mut bobs = SoftAuthenticator::new(ISS);
    register(&op, &mut alices, ALICE.2).await;
    register(&op, &mut bobs, BOB).await;
    let c =
        op.p.start_passkey_sign_in(BROWSER, Some(ALICE.2))
            .await
            .unwrap();
    assert_eq!(c.options["allowCredentials"].as_array().unwrap().len(), 1);
    // Bob's authenticator answers anyway (ignoring allowCredentials, as a hostile one could)
    let mut options = c.options.clone();
    options["allowCredentials"] = serde_json::json!([]);
    let a = bobs.get(&options, RP_ID).unwrap();
    let e =
        op.p.passkey_sign_in(BROWSER, &c.state, &a.to_string(), None)
            .await
            .unwrap_err();
    assert!(matches!(why(e), PasskeyRefusal::NotVerified(_)));
    // an End-User without passkeys cannot be asked for one
    let op2 = self::op().await;
    let e = op2
        .p
        .start_passkey_sign_in(BROWSER, Some(ALICE.2))
        .await
        .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::NoPasskey);
}

#[tokio::test]
async fn the_ceremony_state_is_bound_to_the_browser_that_started_it() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    let c =
        op.p.start_passkey_registration(ALICE.2, BROWSER)
            .await
            .unwrap();
    let cred = auth.create(&c.options).to_string();
    let e =
        op.p.finish_passkey_registration(ALICE.2, "another-browser", &c.state, &cred, "x")
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::ForeignCeremony);
    // nor for another End-User in the same browser
    let e =
        op.p.finish_passkey_registration(BOB, BROWSER, &c.state, &cred, "x")
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::ForeignCeremony);
    // nor changed: a flipped byte in the sealed state
    let mut forged = c.state.clone().into_bytes();
    forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
    let e =
        op.p.finish_passkey_registration(
            ALICE.2,
            BROWSER,
            &String::from_utf8(forged).unwrap(),
            &cred,
            "x",
        )
        .await
        .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::ForeignCeremony);
    // nor a registration's state for a sign-in
    let e =
        op.p.passkey_sign_in(BROWSER, &c.state, &cred, None)
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::ForeignCeremony);
}

#[tokio::test]
async fn the_ceremony_state_is_used_once_and_expires() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    register(&op, &mut auth, ALICE.2).await;
    let c = op.p.start_passkey_sign_in(BROWSER, None).await.unwrap();
    let a = auth.get(&c.options, RP_ID).unwrap().to_string();
    op.p.passkey_sign_in(BROWSER, &c.state, &a, None)
        .await
        .unwrap();
    // the same assertion with the same state: a replay
    let e =
        op.p.passkey_sign_in(BROWSER, &c.state, &a, None)
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::CeremonyUsedOrExpired);
    // a state past its lifetime
    let c = op.p.start_passkey_sign_in(BROWSER, None).await.unwrap();
    let a = auth.get(&c.options, RP_ID).unwrap().to_string();
    op.advance(keybound_op::passkey::CEREMONY_TTL);
    let e =
        op.p.passkey_sign_in(BROWSER, &c.state, &a, None)
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::CeremonyUsedOrExpired);
}

#[tokio::test]
async fn webauthn_7_1_user_verification_origin_and_rp_id_are_required_at_registration() {
    let op = op().await;
    let attempt = |mut auth: SoftAuthenticator, rp: Option<&'static str>| {
        let op = &op;
        async move {
            let c =
                op.p.start_passkey_registration(ALICE.2, BROWSER)
                    .await
                    .unwrap();
            let mut options = c.options.clone();
            if let Some(rp) = rp {
                options["rp"]["id"] = rp.into();
            }
            let cred = auth.create(&options).to_string();
            op.p.finish_passkey_registration(ALICE.2, BROWSER, &c.state, &cred, "x")
                .await
        }
    };
    let mut no_uv = SoftAuthenticator::new(ISS);
    no_uv.user_verified = false;
    let e = attempt(no_uv, None).await.unwrap_err();
    assert!(
        matches!(why(e), PasskeyRefusal::NotVerified(_)),
        "no user verification"
    );
    let e = attempt(SoftAuthenticator::new("https://op.example.evil"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(why(e), PasskeyRefusal::NotVerified(_)),
        "another origin"
    );
    let e = attempt(SoftAuthenticator::new(ISS), Some("evil.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(why(e), PasskeyRefusal::NotVerified(_)),
        "another RP ID"
    );
    assert!(op.p.store().passkeys_of(ALICE.2).await.unwrap().is_empty());
}

#[tokio::test]
async fn webauthn_7_2_user_verification_origin_and_rp_id_are_required_at_sign_in() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    register(&op, &mut auth, ALICE.2).await;
    let mut no_uv = auth.clone();
    no_uv.user_verified = false;
    let e = sign_in(&op, &mut no_uv, None).await.unwrap_err();
    assert!(
        matches!(why(e), PasskeyRefusal::NotVerified(_)),
        "no user verification"
    );
    let mut phished = auth.clone();
    phished.origin = "https://op-example.evil".into();
    let e = sign_in(&op, &mut phished, None).await.unwrap_err();
    assert!(
        matches!(why(e), PasskeyRefusal::NotVerified(_)),
        "another origin"
    );
    let mut other_rp = auth.clone();
    other_rp.retarget("op-example.evil");
    let c = op.p.start_passkey_sign_in(BROWSER, None).await.unwrap();
    let mut options = c.options.clone();
    options["rpId"] = "op-example.evil".into();
    let a = other_rp.get(&options, RP_ID).unwrap().to_string();
    let e =
        op.p.passkey_sign_in(BROWSER, &c.state, &a, None)
            .await
            .unwrap_err();
    assert!(
        matches!(why(e), PasskeyRefusal::NotVerified(_)),
        "another RP ID"
    );
}

#[tokio::test]
async fn an_unknown_passkey_is_refused_with_the_words_of_a_wrong_signature() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    let pk = register(&op, &mut auth, ALICE.2).await;
    let mut phished = auth.clone();
    phished.origin = "https://op-example.evil".into();
    let wrong = sign_in(&op, &mut phished, None).await.unwrap_err();
    assert!(op
        .p
        .remove_passkey(ALICE.2, &pk.credential_id)
        .await
        .is_ok());
    let unknown = sign_in(&op, &mut auth, None).await.unwrap_err();
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(
        wrong.wire(keybound_op::Endpoint::Page),
        unknown.wire(keybound_op::Endpoint::Page)
    );
}

#[tokio::test]
async fn webauthn_6_1_1_a_cloned_authenticator_is_refused() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    let pk = register(&op, &mut auth, ALICE.2).await;
    let mut clone = auth.clone();
    sign_in(&op, &mut auth, None).await.unwrap();
    // the clone signs with the counter the original used already
    let e = sign_in(&op, &mut clone, None).await.unwrap_err();
    assert_eq!(
        why(e),
        PasskeyRefusal::ClonedAuthenticator {
            credential_id: pk.credential_id.clone()
        }
    );
    // the original goes on
    sign_in(&op, &mut auth, None).await.unwrap();
    // an authenticator that keeps no counter (0 always) is not taken for a clone
    let op = self::op().await;
    let mut zero = SoftAuthenticator::new(ISS);
    zero.counter_step = 0;
    register(&op, &mut zero, ALICE.2).await;
    sign_in(&op, &mut zero, None).await.unwrap();
    sign_in(&op, &mut zero, None).await.unwrap();
}

#[tokio::test]
async fn failed_passkey_sign_ins_are_throttled_like_passwords() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    register(&op, &mut auth, ALICE.2).await;
    let mut phished = auth.clone();
    phished.origin = "https://op-example.evil".into();
    let free = keybound_op::ThrottleConfig::default().free_failures;
    for _ in 0..free {
        let e = sign_in(&op, &mut phished, None).await.unwrap_err();
        assert!(matches!(why(e), PasskeyRefusal::NotVerified(_)));
    }
    let e = sign_in(&op, &mut phished, None).await.unwrap_err();
    assert!(matches!(e, OpError::Throttled { .. }), "{e:?}");
    // the right passkey waits too (the credential is in its back-off)
    let e = sign_in(&op, &mut auth, None).await.unwrap_err();
    assert!(matches!(e, OpError::Throttled { .. }), "{e:?}");
}

#[tokio::test]
async fn once_an_account_has_a_passkey_only_a_passkey_sign_in_manages_them() {
    let op = op().await;
    let password = op.sign_in().await;
    // the first passkey is added after a password
    op.p.may_manage_passkeys(&password).await.unwrap();
    let mut auth = SoftAuthenticator::new(ISS);
    let pk = register(&op, &mut auth, ALICE.2).await;
    let e = op.p.may_manage_passkeys(&password).await.unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::StepUpToManage);
    let signed_in = sign_in(&op, &mut auth, None).await.unwrap();
    let with_passkey = op.p.passkey_session(&signed_in, None);
    op.p.may_manage_passkeys(&with_passkey).await.unwrap();
    // renaming and removing: only one's own
    op.p.rename_passkey(ALICE.2, &pk.credential_id, "  Phone ")
        .await
        .unwrap();
    assert_eq!(
        op.p.store()
            .passkey(&pk.credential_id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Phone"
    );
    let e =
        op.p.rename_passkey(BOB, &pk.credential_id, "mine")
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::NotYours);
    let e =
        op.p.rename_passkey(ALICE.2, &pk.credential_id, " ")
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::Name);
    let e =
        op.p.remove_passkey(BOB, &pk.credential_id)
            .await
            .unwrap_err();
    assert_eq!(why(e), PasskeyRefusal::NotYours);
    op.p.remove_passkey(ALICE.2, &pk.credential_id)
        .await
        .unwrap();
    assert!(op.p.store().passkeys_of(ALICE.2).await.unwrap().is_empty());
}

#[tokio::test]
async fn webauthn_7_1_a_registration_answers_only_its_own_challenge() {
    let op = op().await;
    let mut auth = SoftAuthenticator::new(ISS);
    let c =
        op.p.start_passkey_registration(ALICE.2, BROWSER)
            .await
            .unwrap();
    let answered = auth.create(&c.options).to_string();
    op.p.finish_passkey_registration(ALICE.2, BROWSER, &c.state, &answered, "a")
        .await
        .unwrap();
    // the same response under a new ceremony (for Bob): its client data names the old
    // challenge
    let c = op.p.start_passkey_registration(BOB, BROWSER).await.unwrap();
    let e =
        op.p.finish_passkey_registration(BOB, BROWSER, &c.state, &answered, "b")
            .await
            .unwrap_err();
    assert!(matches!(why(e), PasskeyRefusal::NotVerified(_)));
    assert!(op.p.store().passkeys_of(BOB).await.unwrap().is_empty());
}

#[tokio::test]
async fn webauthn_5_1_3_an_issuer_on_an_ip_address_offers_no_passkeys_and_says_why() {
    let op = OpBuilder::new().build_at("http://127.0.0.1:8080").await;
    let why_not = op.p.passkeys_available().unwrap_err();
    assert!(why_not.contains("host name"), "{why_not}");
    let e = op.p.start_passkey_sign_in(BROWSER, None).await.unwrap_err();
    assert!(matches!(self::why(e), PasskeyRefusal::Unavailable(_)));
    let op = OpBuilder::new().build_at("http://localhost:8080").await;
    op.p.passkeys_available().unwrap();
}
