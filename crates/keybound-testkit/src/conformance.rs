//! The one conformance suite of the store traits, run against every backend: each check is a
//! function over `Arc<dyn Store>`, and [`store_conformance!`](crate::store_conformance) makes
//! one `#[tokio::test]` per check for a backend constructor. Concurrency checks spawn real tasks
//! on a multi-threaded runtime; every loop is bounded.
#![allow(clippy::unwrap_used)] // conformance checks: a failed unwrap is a failed check
#![allow(missing_docs)] // each check is named for the rule it holds

use std::collections::BTreeSet;
use std::sync::Arc;

use keybound_jose::{Algorithm, Jkt};
use keybound_proto::keybinding::Profile;
use keybound_store::{
    AuthorizationCode, BrowserSession, Client, ClientAuthMethod, CodeLookup, Consent, Count,
    DeviceAuthorization, DeviceDecision, DevicePoll, Expiring, KeyState, Passkey, ProofMark,
    PushedRequest, RefreshLookup, RefreshToken, SigningKeyRecord, Store, StoreError, TokenHash,
    User,
};

/// A thumbprint from its string.
pub fn jkt(s: &str) -> Jkt {
    Jkt::parse(s).unwrap()
}

/// The time the checks run at.
pub const NOW: u64 = 1_700_000_000;

/// One `#[tokio::test]` per conformance check, for the backend made by `$backend`: an async
/// function returning `(Arc<dyn Store>, anything to keep alive until the test ends)`.
#[macro_export]
macro_rules! store_conformance {
    ($backend:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn proofs_recorded_with_what_they_consume() {
            let (s, _keep) = $backend().await;
            $crate::conformance::proofs_recorded_with_what_they_consume(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn proofs_concurrent_exactly_once_with_consumption() {
            let (s, _keep) = $backend().await;
            $crate::conformance::proofs_concurrent_exactly_once_with_consumption(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn passkeys_belong_to_their_end_user() {
            let (s, _keep) = $backend().await;
            $crate::conformance::passkeys_belong_to_their_end_user(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn passkey_counters_refuse_a_clone() {
            let (s, _keep) = $backend().await;
            $crate::conformance::passkey_counters_refuse_a_clone(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn clients_round_trip() {
            let (s, _keep) = $backend().await;
            $crate::conformance::clients_round_trip(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn users_unique_usernames() {
            let (s, _keep) = $backend().await;
            $crate::conformance::users_unique_usernames(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn signing_keys_rotate_atomically() {
            let (s, _keep) = $backend().await;
            $crate::conformance::signing_keys_rotate_atomically(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn signing_keys_one_key_set() {
            let (s, _keep) = $backend().await;
            $crate::conformance::signing_keys_one_key_set(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn counts_change_by_the_callers_rule_and_expire() {
            let (s, _keep) = $backend().await;
            $crate::conformance::counts_change_by_the_callers_rule_and_expire(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn counts_concurrent_changes_all_count() {
            let (s, _keep) = $backend().await;
            $crate::conformance::counts_concurrent_changes_all_count(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn verified_secrets_expire_and_purge() {
            let (s, _keep) = $backend().await;
            $crate::conformance::verified_secrets_expire_and_purge(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pushed_requests_are_taken_once_and_expire() {
            let (s, _keep) = $backend().await;
            $crate::conformance::pushed_requests_are_taken_once_and_expire(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pushed_requests_concurrent_take_exactly_once() {
            let (s, _keep) = $backend().await;
            $crate::conformance::pushed_requests_concurrent_take_exactly_once(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn code_single_use() {
            let (s, _keep) = $backend().await;
            $crate::conformance::code_single_use(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn code_concurrent_redemption_exactly_once() {
            let (s, _keep) = $backend().await;
            $crate::conformance::code_concurrent_redemption_exactly_once(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn code_redemption_writes_its_refresh_token_or_nothing() {
            let (s, _keep) = $backend().await;
            $crate::conformance::code_redemption_writes_its_refresh_token_or_nothing(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn refresh_rotation_and_reuse_detection() {
            let (s, _keep) = $backend().await;
            $crate::conformance::refresh_rotation_and_reuse_detection(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn refresh_concurrent_rotation_exactly_once() {
            let (s, _keep) = $backend().await;
            $crate::conformance::refresh_concurrent_rotation_exactly_once(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn grant_revocation_revokes_families() {
            let (s, _keep) = $backend().await;
            $crate::conformance::grant_revocation_revokes_families(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn consent_round_trip() {
            let (s, _keep) = $backend().await;
            $crate::conformance::consent_round_trip(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn consent_revocation_revokes_the_clients_grants() {
            let (s, _keep) = $backend().await;
            $crate::conformance::consent_revocation_revokes_the_clients_grants(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn replay_entries_expire() {
            let (s, _keep) = $backend().await;
            $crate::conformance::replay_entries_expire(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn replay_concurrent_exactly_once() {
            let (s, _keep) = $backend().await;
            $crate::conformance::replay_concurrent_exactly_once(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sessions_expire() {
            let (s, _keep) = $backend().await;
            $crate::conformance::sessions_expire(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn device_flow_states() {
            let (s, _keep) = $backend().await;
            $crate::conformance::device_flow_states(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn purge_expired_rows_in_bounded_batches() {
            let (s, _keep) = $backend().await;
            $crate::conformance::purge_expired_rows_in_bounded_batches(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn purge_by_many_nodes_at_once() {
            let (s, _keep) = $backend().await;
            $crate::conformance::purge_by_many_nodes_at_once(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn trusted_issuers_and_subject_links() {
            let (s, _keep) = $backend().await;
            $crate::conformance::trusted_issuers_and_subject_links(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn registration_tokens_spend_atomically() {
            let (s, _keep) = $backend().await;
            $crate::conformance::registration_tokens_spend_atomically(s).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn device_concurrent_polls_exactly_once() {
            let (s, _keep) = $backend().await;
            $crate::conformance::device_concurrent_polls_exactly_once(s).await;
        }
    };
}

pub fn client(id: &str) -> Client {
    Client {
        client_id: id.into(),
        name: format!("App {id}"),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        secret_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        redirect_uris: vec!["https://app.example/cb".into()],
        key_binding_profile: Profile::Draft00,
        require_dpop_nonce: true,
        dpop_bound_access_tokens: false,
        jwks: None,
        exchange: Some(keybound_store::ExchangePolicy {
            audiences: [("https://as.b.example".to_owned(), "app-at-b".to_owned())].into(),
            scopes: vec!["chat.read".into()],
            ..Default::default()
        }),
        jwt_bearer: true,
        grant_types: vec!["authorization_code".into()],
        response_types: vec!["code".into(), "code id_token".into()],
        token_bound_id_tokens: true,
        resources: vec!["https://api.example/".into()],
        scopes: vec!["orders.read".into()],
        require_par: true,
        fapi2: false,
        post_logout_redirect_uris: vec!["https://app.example/bye".into()],
        backchannel_logout_uri: Some("https://app.example/backchannel".into()),
        web_origins: vec!["https://app.example".into()],
        backchannel_logout_session_required: true,
        default_acr_values: vec!["urn:keybound:acr:passkey".into()],
        require_dbsc: true,
        created_at: NOW,
    }
}

pub fn user(sub: &str, username: &str) -> User {
    User {
        sub: sub.into(),
        username: username.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        name: Some("Alice".into()),
        email: Some("alice@example.com".into()),
        email_verified: true,
        provisioned_by: None,
        require_passkey: true,
        created_at: NOW,
    }
}

pub fn key(kid: &str, state: KeyState) -> SigningKeyRecord {
    let k = keybound_jose::PrivateKey::generate(keybound_jose::key::KeyKind::Es256).unwrap();
    SigningKeyRecord {
        kid: kid.into(),
        alg: Algorithm::ES256,
        state,
        created_at: NOW,
        activated_at: None,
        retired_at: None,
        pkcs8: k.to_pkcs8_der().unwrap(),
    }
}

pub fn code(grant: &str) -> AuthorizationCode {
    AuthorizationCode {
        grant_id: grant.into(),
        client_id: "app".into(),
        redirect_uri: "https://app.example/cb".into(),
        sub: "u1".into(),
        scope: "openid bound_key".into(),
        nonce: Some("n".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        auth_time: NOW,
        acr: None,
        amr: vec!["pwd".into()],
        dpop_jkt: Some(jkt("dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw")),
        bound_key: true,
        tbh: None,
        resources: vec!["https://api.example/".into()],
        sid: Some("sid-1".into()),
        created_at: NOW,
        expires_at: NOW + 60,
    }
}

pub fn refresh(family: &str, grant: &str) -> RefreshToken {
    RefreshToken {
        family_id: family.into(),
        grant_id: grant.into(),
        client_id: "app".into(),
        sub: "u1".into(),
        scope: "openid offline_access bound_key".into(),
        auth_time: NOW,
        acr: None,
        amr: vec![],
        jkt: Some(jkt("dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw")),
        cnf_jwk: Some(crate::keys::es256_a().public_jwk().clone()),
        profile: Profile::KeyBinding,
        tbh: Some("suMuxh_IlrP-Zrj33LuQOQ5rX039cmBe-wt2df3BrUQ".into()),
        resources: vec!["https://api.example/".into()],
        sid: Some("sid-1".into()),
        created_at: NOW,
        expires_at: NOW + 3600,
    }
}

pub async fn clients_round_trip(s: Arc<dyn Store>) {
    assert!(s.client("app").await.unwrap().is_none());
    s.put_client(&client("b")).await.unwrap();
    s.put_client(&client("app")).await.unwrap();
    let c = s.client("app").await.unwrap().unwrap();
    assert_eq!(c, client("app"));
    assert!(
        !format!("{c:?}").contains("argon2id"),
        "secret hash never in Debug"
    );
    let mut c2 = c.clone();
    c2.redirect_uris.push("https://app.example/cb2".into());
    s.put_client(&c2).await.unwrap();
    assert_eq!(
        s.client("app").await.unwrap().unwrap().redirect_uris.len(),
        2
    );
    let ids: Vec<String> = s
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["app", "b"]);
    assert!(s.delete_client("b").await.unwrap());
    assert!(!s.delete_client("b").await.unwrap());
}

/// A passkey of End-User `sub`, registered at `at`, its counter at `count`.
pub fn passkey(id: &str, sub: &str, at: u64, count: u32) -> Passkey {
    Passkey {
        credential_id: id.into(),
        sub: sub.into(),
        name: format!("key {id}"),
        credential: format!("{{\"library\":\"record of {id}\"}}"),
        sign_count: count,
        created_at: at,
        last_used_at: None,
    }
}

/// Issue 27 item 1: passkeys belong to their End-User — listed oldest first, renamed and
/// removed only through their owner, unique by credential id, never for an End-User who does
/// not exist, and gone with their End-User.
pub async fn passkeys_belong_to_their_end_user(s: Arc<dyn Store>) {
    s.put_user(&user("pk-u1", "pk-alice")).await.unwrap();
    s.put_user(&user("pk-u2", "pk-bob")).await.unwrap();
    s.insert_passkey(&passkey("c2", "pk-u1", NOW + 5, 0))
        .await
        .unwrap();
    s.insert_passkey(&passkey("c1", "pk-u1", NOW, 0))
        .await
        .unwrap();
    s.insert_passkey(&passkey("c3", "pk-u2", NOW, 7))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_passkey(&passkey("c1", "pk-u2", NOW, 0)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_passkey(&passkey("c9", "nobody", NOW, 0)).await,
        Err(StoreError::Conflict(_))
    ));
    let ids = |v: Vec<Passkey>| v.into_iter().map(|p| p.credential_id).collect::<Vec<_>>();
    assert_eq!(ids(s.passkeys_of("pk-u1").await.unwrap()), ["c1", "c2"]);
    assert_eq!(
        s.passkey("c3").await.unwrap(),
        Some(passkey("c3", "pk-u2", NOW, 7))
    );
    assert_eq!(s.passkey("c9").await.unwrap(), None);
    // only the owner renames or removes
    assert!(!s.rename_passkey("pk-u2", "c1", "mine").await.unwrap());
    assert!(s.rename_passkey("pk-u1", "c1", "laptop").await.unwrap());
    assert_eq!(s.passkey("c1").await.unwrap().unwrap().name, "laptop");
    assert!(!s.delete_passkey("pk-u2", "c1").await.unwrap());
    assert!(s.delete_passkey("pk-u1", "c1").await.unwrap());
    assert!(!s.delete_passkey("pk-u1", "c1").await.unwrap());
    assert_eq!(ids(s.passkeys_of("pk-u1").await.unwrap()), ["c2"]);
    // gone with the End-User
    assert!(s.delete_user("pk-u1").await.unwrap());
    assert_eq!(s.passkey("c2").await.unwrap(), None);
    assert_eq!(ids(s.passkeys_of("pk-u2").await.unwrap()), ["c3"]);
}

/// Issue 27 item 1 (WebAuthn §6.1.1): a sign-in is recorded only when the signature counter
/// moved forward (or the authenticator keeps none: both 0); a counter that stays or goes back
/// — a cloned authenticator — changes nothing. Of concurrent sign-ins reporting one counter,
/// exactly one is recorded.
pub async fn passkey_counters_refuse_a_clone(s: Arc<dyn Store>) {
    s.put_user(&user("pc-u1", "pc-alice")).await.unwrap();
    s.insert_passkey(&passkey("k-count", "pc-u1", NOW, 5))
        .await
        .unwrap();
    s.insert_passkey(&passkey("k-none", "pc-u1", NOW, 0))
        .await
        .unwrap();
    assert!(
        !s.use_passkey("k-count", "{}", 5, NOW + 1).await.unwrap(),
        "stayed"
    );
    assert!(
        !s.use_passkey("k-count", "{}", 4, NOW + 1).await.unwrap(),
        "went back"
    );
    assert!(s
        .use_passkey("k-count", "{\"v\":2}", 6, NOW + 2)
        .await
        .unwrap());
    let p = s.passkey("k-count").await.unwrap().unwrap();
    assert_eq!(
        (p.sign_count, p.credential.as_str(), p.last_used_at),
        (6, "{\"v\":2}", Some(NOW + 2))
    );
    assert!(
        s.use_passkey("k-none", "{}", 0, NOW + 3).await.unwrap(),
        "no counter"
    );
    assert!(
        s.use_passkey("k-none", "{}", 0, NOW + 4).await.unwrap(),
        "still none"
    );
    assert!(!s.use_passkey("gone", "{}", 9, NOW).await.unwrap());
    for round in 0..5u32 {
        let count = 100 + round;
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.use_passkey("k-count", "{}", count, NOW + 9).await })
            })
            .collect();
        let mut recorded = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                recorded += 1;
            }
        }
        assert_eq!(recorded, 1, "round {round}");
    }
}

pub async fn users_unique_usernames(s: Arc<dyn Store>) {
    s.put_user(&user("u1", "alice")).await.unwrap();
    s.put_user(&user("u2", "bob")).await.unwrap();
    assert!(matches!(
        s.put_user(&user("u3", "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.user_by_username("bob").await.unwrap().unwrap().sub, "u2");
    let mut renamed = user("u1", "alice2");
    renamed.name = None;
    s.put_user(&renamed).await.unwrap();
    assert!(s.user_by_username("alice").await.unwrap().is_none());
    assert_eq!(s.user("u1").await.unwrap().unwrap(), renamed);
    assert!(!format!("{renamed:?}").contains("argon2id"));
    assert_eq!(s.users().await.unwrap().len(), 2);
    assert!(s.delete_user("u2").await.unwrap());
}

pub async fn signing_keys_rotate_atomically(s: Arc<dyn Store>) {
    let k1 = key("k1", KeyState::Current);
    s.put_signing_key(&k1).await.unwrap();
    s.put_signing_key(&key("k2", KeyState::Next)).await.unwrap();
    assert!(matches!(
        s.put_signing_key(&key("k1", KeyState::Next)).await,
        Err(StoreError::Conflict(_))
    ));
    s.rotate_signing_keys(&key("k3", KeyState::Next), NOW + 10)
        .await
        .unwrap();
    let keys = s.signing_keys().await.unwrap();
    let states: Vec<(&str, KeyState)> = keys.iter().map(|k| (k.kid.as_str(), k.state)).collect();
    assert_eq!(
        states,
        [
            ("k1", KeyState::Retired),
            ("k2", KeyState::Current),
            ("k3", KeyState::Next)
        ]
    );
    assert_eq!(keys[0].retired_at, Some(NOW + 10));
    assert_eq!(keys[1].activated_at, Some(NOW + 10));
    assert_eq!(
        *keys[0].pkcs8, *k1.pkcs8,
        "the private key comes back intact"
    );
    assert!(!format!("{:?}", keys[0]).contains(&format!("{:?}", &k1.pkcs8[..8])));
    assert_eq!(s.purge_retired_keys(NOW + 5).await.unwrap(), 0);
    assert_eq!(s.purge_retired_keys(NOW + 11).await.unwrap(), 1);
    assert_eq!(s.signing_keys().await.unwrap().len(), 2);
}

/// Issue 13 item 3: at most one current and one next key; nodes racing to create the key set
/// on an empty store create one between them.
pub async fn signing_keys_one_key_set(s: Arc<dyn Store>) {
    // eight nodes at once, each with its own key pair
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put_signing_keys_if_absent(&[
                key(&format!("cur-{i}"), KeyState::Current),
                key(&format!("next-{i}"), KeyState::Next),
            ])
            .await
            .unwrap()
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            won.push(i);
        }
    }
    assert_eq!(
        won.len(),
        1,
        "exactly one node creates the key set: {won:?}"
    );
    let keys = s.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(
        kids,
        [format!("cur-{}", won[0]), format!("next-{}", won[0])],
        "both keys of the winner, nothing of the others"
    );
    // a second current or next key is refused; all or nothing
    assert!(matches!(
        s.put_signing_key(&key("cur-x", KeyState::Current)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!s
        .put_signing_keys_if_absent(&[
            key("old-1", KeyState::Retired),
            key("next-x", KeyState::Next)
        ])
        .await
        .unwrap());
    assert_eq!(s.signing_keys().await.unwrap().len(), 2, "nothing added");
    // retired keys are not limited
    s.put_signing_key(&key("old-2", KeyState::Retired))
        .await
        .unwrap();
    s.put_signing_key(&key("old-3", KeyState::Retired))
        .await
        .unwrap();
}

pub async fn code_single_use(s: Arc<dyn Store>) {
    let h = TokenHash::of("code-1");
    s.insert_code(&h, &code("g1")).await.unwrap();
    assert!(matches!(
        s.insert_code(&h, &code("g1")).await,
        Err(StoreError::Conflict(_))
    ));
    // looking does not consume
    assert_eq!(
        s.find_code(&h, NOW).await.unwrap(),
        CodeLookup::Active(code("g1"))
    );
    assert_eq!(
        s.find_code(&h, NOW).await.unwrap(),
        CodeLookup::Active(code("g1"))
    );
    assert_eq!(
        s.redeem_code(&h, NOW, None, None).await.unwrap(),
        CodeLookup::Active(code("g1"))
    );
    assert_eq!(
        s.redeem_code(&h, NOW, None, None).await.unwrap(),
        CodeLookup::Redeemed(code("g1"))
    );
    assert_eq!(
        s.find_code(&h, NOW).await.unwrap(),
        CodeLookup::Redeemed(code("g1"))
    );
    let h2 = TokenHash::of("code-2");
    s.insert_code(&h2, &code("g2")).await.unwrap();
    assert_eq!(
        s.redeem_code(&h2, NOW + 60, None, None).await.unwrap(),
        CodeLookup::Expired
    );
    assert_eq!(
        s.redeem_code(&TokenHash::of("nope"), NOW, None, None)
            .await
            .unwrap(),
        CodeLookup::NotFound
    );
}

pub async fn code_concurrent_redemption_exactly_once(s: Arc<dyn Store>) {
    for round in 0..5 {
        let h = TokenHash::of(&format!("race-{round}"));
        s.insert_code(&h, &code("g")).await.unwrap();
        // each racer brings its own first refresh token: only the winner's is written
        let firsts: Vec<TokenHash> = (0..8)
            .map(|i| TokenHash::of(&format!("race-{round}-rt-{i}")))
            .collect();
        let tasks: Vec<_> = firsts
            .iter()
            .enumerate()
            .map(|(i, rt)| {
                let (s, rt) = (s.clone(), *rt);
                let family = format!("race-{round}-family-{i}");
                tokio::spawn(async move {
                    let first = refresh(&family, "g");
                    s.redeem_code(&h, NOW, Some((&rt, &first)), None)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut active = 0;
        for t in tasks {
            match t.await.unwrap() {
                CodeLookup::Active(_) => active += 1,
                CodeLookup::Redeemed(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(active, 1, "round {round}");
        assert_eq!(
            active_refresh_tokens(&s, &firsts, NOW).await,
            1,
            "round {round}: the winner's refresh token only"
        );
    }
}

/// A signing key's sealed column holds no 32-byte run of its PKCS#8 document (backend tests
/// read the row themselves).
pub fn assert_sealed(sealed: &[u8], pkcs8: &[u8]) {
    assert!(
        !sealed
            .windows(32)
            .any(|w| pkcs8.windows(32).any(|p| p == w)),
        "no 32-byte run of the PKCS#8 in the row"
    );
}

/// How many of `hashes` name a stored, usable refresh token.
async fn active_refresh_tokens(s: &Arc<dyn Store>, hashes: &[TokenHash], now: u64) -> usize {
    let mut n = 0;
    for h in hashes {
        if let RefreshLookup::Active(_) = s.find_refresh(h, now).await.unwrap() {
            n += 1;
        }
    }
    n
}

/// A redemption whose refresh token cannot be written consumes nothing (all or nothing).
pub async fn code_redemption_writes_its_refresh_token_or_nothing(s: Arc<dyn Store>) {
    let (h, taken) = (TokenHash::of("code-atomic"), TokenHash::of("rt-taken"));
    s.insert_code(&h, &code("g-atomic")).await.unwrap();
    s.insert_refresh(&taken, &refresh("f-taken", "g-other"))
        .await
        .unwrap();
    let first = refresh("f-atomic", "g-atomic");
    assert!(s
        .redeem_code(&h, NOW, Some((&taken, &first)), None)
        .await
        .is_err());
    assert_eq!(
        s.find_code(&h, NOW).await.unwrap(),
        CodeLookup::Active(code("g-atomic")),
        "the failed redemption consumed the code"
    );
    let rt = TokenHash::of("rt-atomic");
    assert_eq!(
        s.redeem_code(&h, NOW, Some((&rt, &first)), None)
            .await
            .unwrap(),
        CodeLookup::Active(code("g-atomic"))
    );
    assert_eq!(
        s.find_refresh(&rt, NOW).await.unwrap(),
        RefreshLookup::Active(first)
    );
}

pub async fn refresh_rotation_and_reuse_detection(s: Arc<dyn Store>) {
    let (r1, r2, r3) = (
        TokenHash::of("rt-1"),
        TokenHash::of("rt-2"),
        TokenHash::of("rt-3"),
    );
    s.insert_refresh(&r1, &refresh("f1", "g1")).await.unwrap();
    assert_eq!(
        s.find_refresh(&r1, NOW).await.unwrap(),
        RefreshLookup::Active(refresh("f1", "g1"))
    );
    // rotate r1 → r2
    let got = s
        .rotate_refresh(&r1, &r2, &refresh("f1", "g1"), NOW, None)
        .await
        .unwrap();
    assert_eq!(got, RefreshLookup::Active(refresh("f1", "g1")));
    assert!(matches!(
        s.find_refresh(&r2, NOW).await.unwrap(),
        RefreshLookup::Active(_)
    ));
    assert!(!s.is_grant_revoked("g1").await.unwrap());
    // reuse of r1: detected, and the whole family (r2 too) is revoked
    assert!(matches!(
        s.rotate_refresh(&r1, &r3, &refresh("f1", "g1"), NOW, None)
            .await
            .unwrap(),
        RefreshLookup::Reused(_)
    ));
    assert!(matches!(
        s.find_refresh(&r2, NOW).await.unwrap(),
        RefreshLookup::Revoked(_)
    ));
    // in the same transaction, the grant's access tokens went too
    assert!(s.is_grant_revoked("g1").await.unwrap());
    assert!(matches!(
        s.rotate_refresh(&r2, &r3, &refresh("f1", "g1"), NOW, None)
            .await
            .unwrap(),
        RefreshLookup::Revoked(_)
    ));
    assert_eq!(
        s.find_refresh(&r3, NOW).await.unwrap(),
        RefreshLookup::NotFound
    );
    // expiry and explicit family revocation
    let (x1, x2) = (TokenHash::of("x-1"), TokenHash::of("x-2"));
    s.insert_refresh(&x1, &refresh("f2", "g2")).await.unwrap();
    assert_eq!(
        s.rotate_refresh(&x1, &x2, &refresh("f2", "g2"), NOW + 3600, None)
            .await
            .unwrap(),
        RefreshLookup::Expired
    );
    s.revoke_family("f2", NOW).await.unwrap();
    assert!(matches!(
        s.find_refresh(&x1, NOW).await.unwrap(),
        RefreshLookup::Revoked(_)
    ));
    // rotation may not jump families
    let (y1, y2) = (TokenHash::of("y-1"), TokenHash::of("y-2"));
    s.insert_refresh(&y1, &refresh("f3", "g3")).await.unwrap();
    assert!(s
        .rotate_refresh(&y1, &y2, &refresh("other", "g3"), NOW, None)
        .await
        .is_err());
}

pub async fn refresh_concurrent_rotation_exactly_once(s: Arc<dyn Store>) {
    let r = TokenHash::of("shared-rt");
    s.insert_refresh(&r, &refresh("fam", "g")).await.unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let new = TokenHash::of(&format!("next-{i}"));
                s.rotate_refresh(&r, &new, &refresh("fam", "g"), NOW, None)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut active = 0;
    for t in tasks {
        match t.await.unwrap() {
            RefreshLookup::Active(_) => active += 1,
            RefreshLookup::Reused(_) | RefreshLookup::Revoked(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(active, 1);
}

pub async fn grant_revocation_revokes_families(s: Arc<dyn Store>) {
    let r = TokenHash::of("g-rt");
    s.insert_refresh(&r, &refresh("fam-g", "grant-9"))
        .await
        .unwrap();
    assert!(!s.is_grant_revoked("grant-9").await.unwrap());
    s.revoke_grant("grant-9", NOW).await.unwrap();
    s.revoke_grant("grant-9", NOW).await.unwrap();
    assert!(s.is_grant_revoked("grant-9").await.unwrap());
    assert!(matches!(
        s.find_refresh(&r, NOW).await.unwrap(),
        RefreshLookup::Revoked(_)
    ));
}

pub async fn consent_round_trip(s: Arc<dyn Store>) {
    assert!(s.consent("u1", "app").await.unwrap().is_none());
    let c = Consent {
        sub: "u1".into(),
        client_id: "app".into(),
        scopes: BTreeSet::from(["openid".to_owned(), "bound_key".to_owned()]),
        bound_jkts: BTreeSet::from([jkt("dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw")]),
        updated_at: NOW,
    };
    s.put_consent(&c).await.unwrap();
    assert_eq!(s.consent("u1", "app").await.unwrap(), Some(c.clone()));
    assert!(s.consent("u1", "other").await.unwrap().is_none());
    let mut c2 = c;
    c2.bound_jkts
        .insert(jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
    s.put_consent(&c2).await.unwrap();
    assert_eq!(
        s.consent("u1", "app")
            .await
            .unwrap()
            .unwrap()
            .bound_jkts
            .len(),
        2
    );
}

/// Withdrawing a consent removes it and revokes that End-User's grants with that client
/// (their refresh tokens), and nobody else's: the same End-User's grants with another client
/// and another End-User's with the same client stay.
pub async fn consent_revocation_revokes_the_clients_grants(s: Arc<dyn Store>) {
    let consent = |sub: &str, client: &str| Consent {
        sub: sub.into(),
        client_id: client.into(),
        scopes: BTreeSet::from(["openid".to_owned()]),
        bound_jkts: BTreeSet::new(),
        updated_at: NOW,
    };
    for (sub, client) in [("u1", "app"), ("u1", "other"), ("u2", "app")] {
        s.put_consent(&consent(sub, client)).await.unwrap();
    }
    let token = |family: &str, grant: &str, sub: &str, client: &str| RefreshToken {
        sub: sub.into(),
        client_id: client.into(),
        ..refresh(family, grant)
    };
    for (hash, t) in [
        ("rc-1", token("fam-c1", "grant-c1", "u1", "app")),
        ("rc-2", token("fam-c2", "grant-c2", "u1", "app")),
        ("rc-3", token("fam-c3", "grant-c3", "u1", "other")),
        ("rc-4", token("fam-c4", "grant-c4", "u2", "app")),
    ] {
        s.insert_refresh(&TokenHash::of(hash), &t).await.unwrap();
    }
    let listed: Vec<String> = s
        .consents_of("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(listed, ["app", "other"]);
    assert!(s.revoke_consent("u1", "app", NOW).await.unwrap());
    assert!(s.consent("u1", "app").await.unwrap().is_none());
    for g in ["grant-c1", "grant-c2"] {
        assert!(s.is_grant_revoked(g).await.unwrap(), "{g}");
    }
    for g in ["grant-c3", "grant-c4"] {
        assert!(!s.is_grant_revoked(g).await.unwrap(), "{g}");
    }
    assert!(matches!(
        s.find_refresh(&TokenHash::of("rc-1"), NOW).await.unwrap(),
        RefreshLookup::Revoked(_)
    ));
    assert!(matches!(
        s.find_refresh(&TokenHash::of("rc-3"), NOW).await.unwrap(),
        RefreshLookup::Active(_)
    ));
    assert_eq!(s.consents_of("u1").await.unwrap().len(), 1);
    assert!(s.consent("u2", "app").await.unwrap().is_some());
    // again: nothing to withdraw
    assert!(!s.revoke_consent("u1", "app", NOW).await.unwrap());
}

pub async fn replay_entries_expire(s: Arc<dyn Store>) {
    let d = [7u8; 32];
    assert!(s.check_and_insert(&d, NOW + 61, NOW).await.unwrap());
    assert!(!s.check_and_insert(&d, NOW + 61, NOW + 1).await.unwrap());
    assert!(!s.check_and_insert(&d, NOW + 200, NOW + 60).await.unwrap());
    // after expiry the digest may be recorded again
    assert!(s.check_and_insert(&d, NOW + 200, NOW + 61).await.unwrap());
    assert!(s.check_and_insert(&[8u8; 32], NOW + 10, NOW).await.unwrap());
    assert_eq!(
        s.purge_expired(Expiring::Replay, NOW + 100, 100)
            .await
            .unwrap(),
        1
    );
    assert!(!s.check_and_insert(&d, NOW + 300, NOW + 100).await.unwrap());
}

/// Issue 25 item 1: a request's DPoP proof is recorded by the write that consumes its code or
/// refresh token. A proof seen before consumes nothing (`Replayed`: the code or token stays as
/// it was); a fresh one stays recorded whatever the artefact's state; `replay_seen` is a read.
pub async fn proofs_recorded_with_what_they_consume(s: Arc<dyn Store>) {
    let mark = |b: u8| ProofMark {
        digest: [b; 32],
        expires_at: NOW + 61,
    };
    let (c1, c2) = (TokenHash::of("pm-code-1"), TokenHash::of("pm-code-2"));
    s.insert_code(&c1, &code("pm-g1")).await.unwrap();
    s.insert_code(&c2, &code("pm-g2")).await.unwrap();
    assert!(!s.replay_seen(&[1; 32], NOW).await.unwrap());
    assert_eq!(
        s.redeem_code(&c1, NOW, None, Some(&mark(1))).await.unwrap(),
        CodeLookup::Active(code("pm-g1"))
    );
    assert!(s.replay_seen(&[1; 32], NOW).await.unwrap());
    assert!(!s.check_and_insert(&[1; 32], NOW + 61, NOW).await.unwrap());
    // the same proof for another code: nothing consumed
    assert_eq!(
        s.redeem_code(&c2, NOW, None, Some(&mark(1))).await.unwrap(),
        CodeLookup::Replayed
    );
    assert_eq!(
        s.find_code(&c2, NOW).await.unwrap(),
        CodeLookup::Active(code("pm-g2"))
    );
    // a fresh proof with a used code: the code says so, the proof is recorded
    assert_eq!(
        s.redeem_code(&c1, NOW, None, Some(&mark(2))).await.unwrap(),
        CodeLookup::Redeemed(code("pm-g1"))
    );
    assert!(s.replay_seen(&[2; 32], NOW).await.unwrap());
    // after its expiry a digest is not seen, and may be recorded again
    assert!(!s.replay_seen(&[1; 32], NOW + 61).await.unwrap());
    let late = ProofMark {
        expires_at: NOW + 200,
        ..mark(1)
    };
    let c3 = TokenHash::of("pm-code-3");
    s.insert_code(
        &c3,
        &AuthorizationCode {
            expires_at: NOW + 300,
            ..code("pm-g3")
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.redeem_code(&c3, NOW + 61, None, Some(&late))
            .await
            .unwrap(),
        CodeLookup::Active(_)
    ));
    // refresh: the same rules
    let (r1, r2, r3) = (
        TokenHash::of("pm-rt-1"),
        TokenHash::of("pm-rt-2"),
        TokenHash::of("pm-rt-3"),
    );
    s.insert_refresh(&r1, &refresh("pm-f", "pm-g4"))
        .await
        .unwrap();
    assert_eq!(
        s.rotate_refresh(&r1, &r2, &refresh("pm-f", "pm-g4"), NOW, Some(&mark(2)))
            .await
            .unwrap(),
        RefreshLookup::Replayed
    );
    assert!(matches!(
        s.find_refresh(&r1, NOW).await.unwrap(),
        RefreshLookup::Active(_)
    ));
    assert_eq!(
        s.find_refresh(&r2, NOW).await.unwrap(),
        RefreshLookup::NotFound
    );
    assert!(matches!(
        s.rotate_refresh(&r1, &r2, &refresh("pm-f", "pm-g4"), NOW, Some(&mark(3)))
            .await
            .unwrap(),
        RefreshLookup::Active(_)
    ));
    assert!(s.replay_seen(&[3; 32], NOW).await.unwrap());
    // a replayed proof with a used token is a replay, not a reuse: the grant lives
    assert_eq!(
        s.rotate_refresh(&r1, &r3, &refresh("pm-f", "pm-g4"), NOW, Some(&mark(3)))
            .await
            .unwrap(),
        RefreshLookup::Replayed
    );
    assert!(!s.is_grant_revoked("pm-g4").await.unwrap());
}

/// Issue 25 item 1: of concurrent requests carrying one proof, each for a code of its own,
/// exactly one consumes; the others consume nothing.
pub async fn proofs_concurrent_exactly_once_with_consumption(s: Arc<dyn Store>) {
    for round in 0..5u8 {
        let codes: Vec<TokenHash> = (0..8)
            .map(|i| TokenHash::of(&format!("pmc-{round}-{i}")))
            .collect();
        for h in &codes {
            s.insert_code(h, &code("pmc")).await.unwrap();
        }
        let mark = ProofMark {
            digest: [100 + round; 32],
            expires_at: NOW + 60,
        };
        let tasks: Vec<_> = codes
            .iter()
            .map(|h| {
                let (s, h) = (s.clone(), *h);
                tokio::spawn(async move { s.redeem_code(&h, NOW, None, Some(&mark)).await })
            })
            .collect();
        let mut active = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                CodeLookup::Active(_) => active += 1,
                CodeLookup::Replayed => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(active, 1, "round {round}");
        let mut untouched = 0;
        for h in &codes {
            if matches!(s.find_code(h, NOW).await.unwrap(), CodeLookup::Active(_)) {
                untouched += 1;
            }
        }
        assert_eq!(untouched, 7, "round {round}");
    }
}

pub async fn replay_concurrent_exactly_once(s: Arc<dyn Store>) {
    for round in 0..5u8 {
        let d = [round; 32];
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.check_and_insert(&d, NOW + 60, NOW).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            if t.await.unwrap() {
                fresh += 1;
            }
        }
        assert_eq!(fresh, 1, "round {round}");
    }
}

pub async fn sessions_expire(s: Arc<dyn Store>) {
    let h = TokenHash::of("cookie");
    let sess = BrowserSession {
        sub: "u1".into(),
        auth_time: NOW,
        amr: vec!["pwd".into()],
        created_at: NOW,
        expires_at: NOW + 3600,
        fresh_for: Some("request-fingerprint".into()),
        sid: "sid-1".into(),
        clients: vec!["app".into()],
        // a bound session keeps its key (DBSC)
        dbsc: Some(keybound_store::DbscBinding {
            session_id: "dbsc-1".into(),
            key: keybound_jose::PrivateKey::generate(keybound_jose::key::KeyKind::Es256)
                .unwrap()
                .public_jwk()
                .clone(),
        }),
    };
    s.put_session(&h, &sess).await.unwrap();
    assert_eq!(s.session(&h, NOW).await.unwrap(), Some(sess));
    assert_eq!(s.session(&h, NOW + 3600).await.unwrap(), None);
    s.delete_session(&h).await.unwrap();
    assert_eq!(s.session(&h, NOW).await.unwrap(), None);
}

/// Issue 13: every node purges, so purges run at once: four purgers racing over the same
/// expired rows delete each exactly once between them, fail nothing and leave live rows.
pub async fn purge_by_many_nodes_at_once(s: Arc<dyn Store>) {
    let at = NOW + 10;
    for i in 0..400u32 {
        let digest = crate::numbered_digest(i);
        assert!(s.check_and_insert(&digest, at, NOW).await.unwrap());
    }
    let live = crate::numbered_digest(1_000_000);
    assert!(s.check_and_insert(&live, NOW + 1000, NOW).await.unwrap());
    let purgers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut deleted = 0;
                // bounded: 400 rows, at least one per productive round of 25
                for _ in 0..100 {
                    let n = s.purge_expired(Expiring::Replay, at, 25).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    deleted += n;
                }
                deleted
            })
        })
        .collect();
    let mut total = 0;
    for p in purgers {
        total += p.await.unwrap();
    }
    assert_eq!(total, 400, "each expired row deleted exactly once");
    assert!(
        !s.check_and_insert(&live, NOW + 1000, at).await.unwrap(),
        "the live entry survived the purges"
    );
}

/// Issue 10 item 5: expired rows of every kind are purged, at most `limit` per call, and live
/// rows stay.
pub async fn purge_expired_rows_in_bounded_batches(s: Arc<dyn Store>) {
    let at = NOW + 10;
    for i in 0..5u8 {
        assert!(s.check_and_insert(&[100 + i; 32], at, NOW).await.unwrap());
    }
    for i in 0..2u8 {
        assert!(s
            .check_and_insert(&[200 + i; 32], NOW + 1000, NOW)
            .await
            .unwrap());
    }
    let purge = |kind, limit| {
        let s = s.clone();
        async move { s.purge_expired(kind, at, limit).await.unwrap() }
    };
    assert_eq!(purge(Expiring::Replay, 3).await, 3);
    assert_eq!(purge(Expiring::Replay, 3).await, 2);
    assert_eq!(purge(Expiring::Replay, 3).await, 0);
    assert!(!s
        .check_and_insert(&[200; 32], NOW + 1000, at)
        .await
        .unwrap());

    let (old, live) = (TokenHash::of("old"), TokenHash::of("live"));
    let expiring = |c: AuthorizationCode, expires_at| AuthorizationCode { expires_at, ..c };
    s.insert_code(&old, &expiring(code("g-old"), at))
        .await
        .unwrap();
    s.insert_code(&live, &expiring(code("g-live"), NOW + 1000))
        .await
        .unwrap();
    assert_eq!(purge(Expiring::Codes, 100).await, 1);
    assert_eq!(purge(Expiring::Codes, 100).await, 0);
    assert_eq!(s.find_code(&old, NOW).await.unwrap(), CodeLookup::NotFound);
    assert!(matches!(
        s.find_code(&live, at).await.unwrap(),
        CodeLookup::Active(_)
    ));

    let device_until = |code: &str, expires_at| DeviceAuthorization {
        expires_at,
        ..device(code)
    };
    s.insert_device(&old, &device_until("BCDFGHJK", at), 5)
        .await
        .unwrap();
    s.insert_device(&live, &device_until("LMNPQRST", NOW + 1000), 5)
        .await
        .unwrap();
    assert_eq!(purge(Expiring::DeviceCodes, 100).await, 1);
    assert!(s.find_device(&old, NOW).await.unwrap().is_none());
    assert!(s
        .device_by_user_code("LMNPQRST", at)
        .await
        .unwrap()
        .is_some());

    let session = |expires_at| BrowserSession {
        sub: "u1".into(),
        auth_time: NOW,
        amr: vec!["pwd".into()],
        created_at: NOW,
        expires_at,
        fresh_for: None,
        sid: "sid-2".into(),
        clients: Vec::new(),
        dbsc: None,
    };
    s.put_session(&old, &session(at)).await.unwrap();
    s.put_session(&live, &session(NOW + 1000)).await.unwrap();
    assert_eq!(purge(Expiring::Sessions, 100).await, 1);
    assert!(s.session(&live, at).await.unwrap().is_some());

    let token = |family: &str, expires_at| RefreshToken {
        expires_at,
        ..refresh(family, "g-r")
    };
    s.insert_refresh(&old, &token("f-old", at)).await.unwrap();
    s.insert_refresh(&live, &token("f-live", NOW + 1000))
        .await
        .unwrap();
    assert_eq!(purge(Expiring::RefreshTokens, 100).await, 1);
    assert_eq!(
        s.find_refresh(&old, NOW).await.unwrap(),
        RefreshLookup::NotFound
    );
    assert!(matches!(
        s.find_refresh(&live, at).await.unwrap(),
        RefreshLookup::Active(_)
    ));
}

/// Trusted issuers round-trip, links resolve to local users, deleting an issuer removes its
/// links, and e-mail lookup finds exactly one verified owner.
pub async fn trusted_issuers_and_subject_links(s: Arc<dyn Store>) {
    let idp = keybound_store::TrustedIssuer {
        issuer: "https://idp.example".into(),
        jwks_uri: "https://idp.example/jwks".into(),
        subject: keybound_store::SubjectMode::Email,
        single_use: false,
        allow_unbound: false,
        enabled: true,
        created_at: NOW,
    };
    s.put_issuer(&idp).await.unwrap();
    assert_eq!(
        s.issuer("https://idp.example").await.unwrap(),
        Some(idp.clone())
    );
    let disabled = keybound_store::TrustedIssuer {
        enabled: false,
        ..idp.clone()
    };
    s.put_issuer(&disabled).await.unwrap();
    assert_eq!(s.issuers().await.unwrap(), vec![disabled]);
    assert!(s.issuer("https://other.example").await.unwrap().is_none());

    // an End-User with an e-mail address, verified or not
    let with_email = |sub: &str, username: &str, email: &str, verified: bool| User {
        email: Some(email.into()),
        email_verified: verified,
        ..user(sub, username)
    };
    s.put_user(&with_email("u1", "alice", "Alice@Example.com", true))
        .await
        .unwrap();
    s.put_user(&with_email("u2", "bob", "bob@example.com", false))
        .await
        .unwrap();
    // the sub of the one local End-User owning a verified address, if exactly one does
    let owner = |email: &'static str| {
        let s = s.clone();
        async move {
            s.user_by_verified_email(email)
                .await
                .unwrap()
                .map(|u| u.sub)
        }
    };
    assert_eq!(owner("alice@example.com").await, Some("u1".into()));
    // an End-User another issuer provisioned with the same verified address: not a local
    // account, so neither found nor making the address ambiguous (issue 22 item 4)
    let provisioned = User {
        provisioned_by: Some("https://other-idp.example".into()),
        ..with_email("idjag-x", "idjag-x", "alice@example.com", true)
    };
    s.put_user(&provisioned).await.unwrap();
    assert_eq!(
        s.user(&provisioned.sub)
            .await
            .unwrap()
            .unwrap()
            .provisioned_by,
        provisioned.provisioned_by,
        "provenance round-trips"
    );
    assert_eq!(owner("alice@example.com").await, Some("u1".into()));
    assert_eq!(
        owner("bob@example.com").await,
        None,
        "an unverified address identifies nobody"
    );
    // a second End-User with the same verified address (any case): the address names nobody
    s.put_user(&with_email("u3", "alice2", "ALICE@example.com", true))
        .await
        .unwrap();
    assert_eq!(
        owner("alice@example.com").await,
        None,
        "an address two End-Users have verified identifies neither"
    );

    assert!(s
        .linked_user("https://idp.example", "ext-1")
        .await
        .unwrap()
        .is_none());
    s.link_user("https://idp.example", "ext-1", "u2")
        .await
        .unwrap();
    s.link_user("https://idp.example", "ext-1", "u1")
        .await
        .unwrap();
    assert_eq!(
        s.linked_user("https://idp.example", "ext-1")
            .await
            .unwrap()
            .map(|u| u.sub),
        Some("u1".into()),
        "a link is replaced"
    );
    assert!(s.delete_issuer("https://idp.example").await.unwrap());
    assert!(!s.delete_issuer("https://idp.example").await.unwrap());
    assert!(s
        .linked_user("https://idp.example", "ext-1")
        .await
        .unwrap()
        .is_none());
}

/// Initial access tokens: uses are counted, expiry holds, an unlimited token stays usable, and
/// of eight concurrent spends of a token's last use exactly one wins.
pub async fn registration_tokens_spend_atomically(s: Arc<dyn Store>) {
    let token = |uses_left, expires_at| keybound_store::RegistrationToken {
        uses_left,
        expires_at,
        created_at: NOW,
    };
    let (two, open, old, one) = (
        TokenHash::of("two-uses"),
        TokenHash::of("unlimited"),
        TokenHash::of("expired"),
        TokenHash::of("last-use"),
    );
    s.put_registration_token(&two, &token(Some(2), NOW + 60))
        .await
        .unwrap();
    s.put_registration_token(&open, &token(None, NOW + 60))
        .await
        .unwrap();
    s.put_registration_token(&old, &token(Some(5), NOW + 1))
        .await
        .unwrap();
    s.put_registration_token(&one, &token(Some(1), NOW + 60))
        .await
        .unwrap();
    assert!(s.use_registration_token(&two, NOW).await.unwrap());
    assert!(s.use_registration_token(&two, NOW).await.unwrap());
    assert!(
        !s.use_registration_token(&two, NOW).await.unwrap(),
        "used up"
    );
    for _ in 0..5 {
        assert!(s.use_registration_token(&open, NOW).await.unwrap());
    }
    assert!(
        !s.use_registration_token(&open, NOW + 60).await.unwrap(),
        "expired"
    );
    assert!(
        !s.use_registration_token(&old, NOW + 1).await.unwrap(),
        "expired"
    );
    assert!(!s
        .use_registration_token(&TokenHash::of("never"), NOW)
        .await
        .unwrap());
    let spends: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_registration_token(&one, NOW).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in spends {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}

pub fn device(user_code: &str) -> DeviceAuthorization {
    DeviceAuthorization {
        client_id: "tv".into(),
        scope: "openid bound_key".into(),
        nonce: Some("n".into()),
        dpop_jkt: Some(jkt("dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw")),
        bound_key: true,
        user_code: user_code.into(),
        grant_id: format!("g-{user_code}"),
        created_at: NOW,
        expires_at: NOW + 600,
    }
}

pub fn approved() -> DeviceDecision {
    DeviceDecision::Approved {
        sub: "u1".into(),
        auth_time: NOW,
        amr: vec!["pwd".into()],
    }
}

pub async fn device_flow_states(s: Arc<dyn Store>) {
    let h = TokenHash::of("device-code-1");
    s.insert_device(&h, &device("BCDFGHJK"), 5).await.unwrap();
    assert!(
        matches!(
            s.insert_device(&TokenHash::of("other"), &device("BCDFGHJK"), 5)
                .await,
            Err(StoreError::Conflict(_))
        ),
        "user codes are unique"
    );
    assert_eq!(
        s.find_device(&h, NOW).await.unwrap(),
        Some(device("BCDFGHJK"))
    );
    assert_eq!(
        s.device_by_user_code("BCDFGHJK", NOW)
            .await
            .unwrap()
            .map(|(hh, _)| hh),
        Some(h)
    );
    // DF-2: pending; DF-3: too fast is slow_down and the interval grows for good
    assert_eq!(
        s.poll_device(&h, NOW, &|_| None).await.unwrap(),
        DevicePoll::Pending { interval: 5 }
    );
    assert_eq!(
        s.poll_device(&h, NOW + 2, &|_| None).await.unwrap(),
        DevicePoll::SlowDown { interval: 10 }
    );
    assert_eq!(
        s.poll_device(&h, NOW + 8, &|_| None).await.unwrap(),
        DevicePoll::SlowDown { interval: 15 },
        "8 s after the last poll is < 10"
    );
    assert_eq!(
        s.poll_device(&h, NOW + 23, &|_| None).await.unwrap(),
        DevicePoll::Pending { interval: 15 }
    );
    // approval; a second decision is refused
    assert!(s.decide_device(&h, &approved(), NOW + 30).await.unwrap());
    assert!(!s
        .decide_device(&h, &DeviceDecision::Denied, NOW + 31)
        .await
        .unwrap());
    assert!(
        s.device_by_user_code("BCDFGHJK", NOW + 31)
            .await
            .unwrap()
            .is_none(),
        "decided codes cannot be entered again"
    );
    assert_eq!(
        s.poll_device(&h, NOW + 40, &|_| None).await.unwrap(),
        DevicePoll::Approved(device("BCDFGHJK"), approved())
    );
    assert_eq!(
        s.poll_device(&h, NOW + 60, &|_| None).await.unwrap(),
        DevicePoll::Redeemed(device("BCDFGHJK"))
    );
    // denied; expired; unknown
    let d = TokenHash::of("device-code-2");
    s.insert_device(&d, &device("LMNPQRST"), 5).await.unwrap();
    assert!(s
        .decide_device(&d, &DeviceDecision::Denied, NOW)
        .await
        .unwrap());
    assert_eq!(
        s.poll_device(&d, NOW + 5, &|_| None).await.unwrap(),
        DevicePoll::Denied
    );
    let e = TokenHash::of("device-code-3");
    s.insert_device(&e, &device("VWXZBCDF"), 5).await.unwrap();
    assert_eq!(
        s.poll_device(&e, NOW + 600, &|_| None).await.unwrap(),
        DevicePoll::Expired
    );
    assert!(!s.decide_device(&e, &approved(), NOW + 600).await.unwrap());
    assert!(s
        .device_by_user_code("VWXZBCDF", NOW + 600)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.poll_device(&TokenHash::of("nope"), NOW, &|_| None)
            .await
            .unwrap(),
        DevicePoll::NotFound
    );
}

pub async fn device_concurrent_polls_exactly_once(s: Arc<dyn Store>) {
    let h = TokenHash::of("race-device");
    s.insert_device(&h, &device("GHJKLMNP"), 5).await.unwrap();
    assert!(s.decide_device(&h, &approved(), NOW).await.unwrap());
    // each poll brings its own first refresh token: only the redeeming poll's is written
    let firsts: Vec<TokenHash> = (0..100)
        .map(|i| TokenHash::of(&format!("race-device-rt-{i}")))
        .collect();
    let tasks: Vec<_> = firsts
        .iter()
        .enumerate()
        .map(|(i, rt)| {
            let (s, rt) = (s.clone(), *rt);
            tokio::spawn(async move {
                let first = |d: &DeviceDecision| {
                    assert_eq!(d, &approved());
                    Some((rt, refresh(&format!("race-device-family-{i}"), "g-device")))
                };
                s.poll_device(&h, NOW + 1, &first).await.unwrap()
            })
        })
        .collect();
    let mut approved_count = 0;
    for t in tasks {
        match t.await.unwrap() {
            DevicePoll::Approved(..) => approved_count += 1,
            DevicePoll::SlowDown { .. } | DevicePoll::Redeemed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        approved_count, 1,
        "100 concurrent polls, one token response"
    );
    assert_eq!(
        active_refresh_tokens(&s, &firsts, NOW + 1).await,
        1,
        "the redeeming poll's refresh token only"
    );
}

/// Issue 26 item 9: a count changes only by the caller's rule, which sees the count before
/// (none when absent or expired); `None` removes it; an expired count reads as none and is
/// purged.
pub async fn counts_change_by_the_callers_rule_and_expire(s: Arc<dyn Store>) {
    let k = TokenHash::of("throttle\0account\0alice");
    assert_eq!(s.count(&k, NOW).await.unwrap(), None);
    let bump = |c: Option<Count>| {
        Some(Count {
            n: c.map_or(0, |c| c.n) + 1,
            at: NOW,
            expires_at: NOW + 60,
        })
    };
    let (before, after) = s.change_count(&k, NOW, &bump).await.unwrap();
    assert_eq!((before, after.map(|c| c.n)), (None, Some(1)));
    let (before, _) = s.change_count(&k, NOW + 1, &bump).await.unwrap();
    assert_eq!(before.map(|c| c.n), Some(1));
    let c = s.count(&k, NOW + 59).await.unwrap().unwrap();
    assert_eq!((c.n, c.at, c.expires_at), (2, NOW, NOW + 60));
    assert_eq!(s.count(&k, NOW + 60).await.unwrap(), None, "expired");
    let (before, _) = s.change_count(&k, NOW + 60, &bump).await.unwrap();
    assert_eq!(before, None, "an expired count starts again");
    s.change_count(&k, NOW + 60, &|_| None).await.unwrap();
    assert_eq!(s.count(&k, NOW + 60).await.unwrap(), None, "removed");
    // purge: expired counts go, live ones stay
    let live = TokenHash::of("live");
    s.change_count(&k, NOW, &bump).await.unwrap();
    s.change_count(&live, NOW, &|_| {
        Some(Count {
            n: 1,
            at: NOW,
            expires_at: NOW + 1000,
        })
    })
    .await
    .unwrap();
    assert_eq!(
        s.purge_expired(Expiring::Counters, NOW + 60, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.count(&live, NOW + 60).await.unwrap().map(|c| c.n),
        Some(1)
    );
}

/// Issue 26 item 9: concurrent changes of one count (as from many nodes) each see the ones
/// before: 40 increments from 8 tasks count 40.
pub async fn counts_concurrent_changes_all_count(s: Arc<dyn Store>) {
    let k = TokenHash::of("throttle\0address\0-192.0.2.1");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                s.change_count(&k, NOW, &|c| {
                    Some(Count {
                        n: c.map_or(0, |c| c.n) + 1,
                        at: NOW,
                        expires_at: NOW + 900,
                    })
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.count(&k, NOW).await.unwrap().map(|c| c.n), Some(40));
}

/// Issue 26 item 9: a verified secret is remembered by client id until it expires, replaced by
/// a newer one, and purged; its MAC depends on the client, the registered hash and the secret.
pub async fn verified_secrets_expire_and_purge(s: Arc<dyn Store>) {
    let mac = s.secret_mac().of("c1", "$argon2id$one", "secret");
    assert_ne!(mac, s.secret_mac().of("c1", "$argon2id$two", "secret"));
    assert_ne!(mac, s.secret_mac().of("c2", "$argon2id$one", "secret"));
    assert_ne!(mac, s.secret_mac().of("c1", "$argon2id$one", "secreT"));
    assert_eq!(s.verified_secret("c1", NOW).await.unwrap(), None);
    s.put_verified_secret("c1", &mac, NOW + 300).await.unwrap();
    assert_eq!(s.verified_secret("c1", NOW).await.unwrap(), Some(mac));
    assert_eq!(s.verified_secret("c2", NOW).await.unwrap(), None);
    assert_eq!(
        s.verified_secret("c1", NOW + 300).await.unwrap(),
        None,
        "expired"
    );
    let newer = s.secret_mac().of("c1", "$argon2id$two", "secret");
    s.put_verified_secret("c1", &newer, NOW + 600)
        .await
        .unwrap();
    assert_eq!(
        s.verified_secret("c1", NOW + 300).await.unwrap(),
        Some(newer)
    );
    s.put_verified_secret("c2", &mac, NOW + 10).await.unwrap();
    assert_eq!(
        s.purge_expired(Expiring::VerifiedSecrets, NOW + 10, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.verified_secret("c1", NOW + 10).await.unwrap(),
        Some(newer)
    );
}

fn pushed(client: &str, expires_at: u64) -> PushedRequest {
    PushedRequest {
        client_id: client.into(),
        params: vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), client.into()),
            ("scope".into(), "openid bound_key".into()),
        ],
        expires_at,
    }
}

/// RFC 9126 §7.3: a pushed request is taken once; an expired one is not given out and is
/// purged; the same hash cannot be stored twice.
pub async fn pushed_requests_are_taken_once_and_expire(s: Arc<dyn Store>) {
    let (a, b) = (TokenHash::of("urn:a"), TokenHash::of("urn:b"));
    s.put_pushed(&a, &pushed("app", NOW + 60)).await.unwrap();
    assert!(matches!(
        s.put_pushed(&a, &pushed("app", NOW + 60)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.take_pushed(&a, NOW + 59).await.unwrap(),
        Some(pushed("app", NOW + 60))
    );
    assert_eq!(s.take_pushed(&a, NOW + 59).await.unwrap(), None, "used");
    s.put_pushed(&b, &pushed("app", NOW + 60)).await.unwrap();
    assert_eq!(
        s.purge_expired(Expiring::PushedRequests, NOW + 60, 100)
            .await
            .unwrap(),
        1
    );
    s.put_pushed(&a, &pushed("app", NOW + 60)).await.unwrap();
    assert_eq!(s.take_pushed(&a, NOW + 60).await.unwrap(), None, "expired");
}

/// RFC 9126 §7.3 across nodes: eight concurrent takers, one request.
pub async fn pushed_requests_concurrent_take_exactly_once(s: Arc<dyn Store>) {
    let h = TokenHash::of("urn:race");
    s.put_pushed(&h, &pushed("app", NOW + 60)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take_pushed(&h, NOW).await.unwrap()
        }));
    }
    let mut got = 0;
    for t in tasks {
        got += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(got, 1);
}
