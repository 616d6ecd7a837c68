//! The store conformance suite (keybound-testkit) against SQLite on a real file, and what only
//! SQLite has: signing keys sealed at rest, codes and tokens stored hashed, state that survives
//! reopening the file.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::sync::Arc;

use keybound_store::{
    ClientStore as _, CodeStore as _, Consent, ConsentStore as _, Kek, KeyState, RefreshLookup,
    RefreshStore as _, SigningKeyStore as _, Store, StoreError, TokenHash, UserStore as _,
};
use keybound_store_sqlite::SqliteStore;
use keybound_testkit::conformance::{client, code, key, refresh, user, NOW};

async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (kek, _) = Kek::generate().unwrap();
    let s = SqliteStore::open(&dir.path().join("op.db"), kek)
        .await
        .unwrap();
    (Arc::new(s), dir)
}

keybound_testkit::store_conformance!(sqlite);

#[tokio::test]
async fn sqlite_signing_keys_are_sealed_at_rest() {
    use sqlx::Row as _;
    let dir = tempfile::tempdir().unwrap();
    let (kek, raw) = Kek::generate().unwrap();
    let s = SqliteStore::open(&dir.path().join("op.db"), kek)
        .await
        .unwrap();
    let k = key("k1", KeyState::Current);
    s.put_signing_key(&k).await.unwrap();
    let row = sqlx::query("SELECT sealed FROM signing_keys WHERE kid = 'k1'")
        .fetch_one(s.pool())
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get("sealed");
    keybound_testkit::conformance::assert_sealed(&sealed, &k.pkcs8);
    // another KEK cannot open it
    drop(s);
    let (other, _) = Kek::generate().unwrap();
    let s2 = SqliteStore::open(&dir.path().join("op.db"), other)
        .await
        .unwrap();
    assert!(matches!(
        s2.signing_keys().await,
        Err(StoreError::Crypto(_))
    ));
    drop(s2);
    let s3 = SqliteStore::open(
        &dir.path().join("op.db"),
        Kek::from_bytes(raw.as_ref()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(*s3.signing_keys().await.unwrap()[0].pkcs8, *k.pkcs8);
}

#[tokio::test]
async fn sqlite_codes_and_tokens_are_stored_hashed() {
    use sqlx::Row as _;
    let dir = tempfile::tempdir().unwrap();
    let (kek, _) = Kek::generate().unwrap();
    let s = SqliteStore::open(&dir.path().join("op.db"), kek)
        .await
        .unwrap();
    s.insert_code(&TokenHash::of("the-code-value"), &code("g"))
        .await
        .unwrap();
    s.insert_refresh(&TokenHash::of("the-refresh-value"), &refresh("f", "g"))
        .await
        .unwrap();
    let dump: Vec<String> = sqlx::query("SELECT hex(code_hash) || data AS x FROM auth_codes UNION ALL SELECT hex(token_hash) || data FROM refresh_tokens")
        .fetch_all(s.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("x"))
        .collect();
    let all = dump.join("\n");
    assert!(!all.contains("the-code-value") && !all.contains("the-refresh-value"));
    assert!(all.contains(&keybound_testkit::hex(&TokenHash::of("the-code-value").0).to_uppercase()));
}

#[tokio::test]
async fn sqlite_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("op.db");
    let (_, raw) = Kek::generate().unwrap();
    let kek = || Kek::from_bytes(raw.as_ref()).unwrap();
    {
        let s = SqliteStore::open(&path, kek()).await.unwrap();
        s.put_client(&client("app")).await.unwrap();
        s.put_user(&user("u1", "alice")).await.unwrap();
        s.put_signing_key(&key("k1", KeyState::Current))
            .await
            .unwrap();
        s.insert_refresh(&TokenHash::of("rt"), &refresh("f", "g"))
            .await
            .unwrap();
        s.put_consent(&Consent {
            sub: "u1".into(),
            client_id: "app".into(),
            scopes: BTreeSet::new(),
            bound_jkts: BTreeSet::new(),
            updated_at: NOW,
        })
        .await
        .unwrap();
    }
    let s = SqliteStore::open(&path, kek()).await.unwrap();
    assert!(s.client("app").await.unwrap().is_some());
    assert!(s.user_by_username("alice").await.unwrap().is_some());
    assert_eq!(s.signing_keys().await.unwrap()[0].kid, "k1");
    assert!(matches!(
        s.find_refresh(&TokenHash::of("rt"), NOW).await.unwrap(),
        RefreshLookup::Active(_)
    ));
    assert!(s.consent("u1", "app").await.unwrap().is_some());
}

/// Keys are parsed when a record is read: a stored code whose `dpop_jkt` is not a thumbprint
/// is a corrupt record at the store, never a string the provider would compare later.
#[tokio::test]
async fn sqlite_typed_keys_are_checked_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let (kek, _) = Kek::generate().unwrap();
    let s = SqliteStore::open(&dir.path().join("op.db"), kek)
        .await
        .unwrap();
    s.insert_code(&TokenHash::of("c"), &code("g"))
        .await
        .unwrap();
    // the same JSON the store wrote, with the thumbprint replaced by something else
    sqlx::query("UPDATE auth_codes SET data = json_set(data, '$.dpop_jkt', 'not-a-thumbprint')")
        .execute(s.pool())
        .await
        .unwrap();
    match s.find_code(&TokenHash::of("c"), NOW).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("thumbprint"), "{m}"),
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

/// The write-ahead log stays bounded: checkpoints run on their own thread (the writer's own
/// are pushed back to 10,000 pages, they synced the file on an async worker), so after a pause
/// the next commit starts the log over, and the file is cut back when a restart finds it above
/// 64 MiB (a smaller limit truncated it on the request path). Found the first version of the
/// thread leaving a 42 MB log after 9,000 commits.
#[tokio::test]
async fn sqlite_wal_stays_bounded_with_checkpoints_off_the_request_path() {
    use keybound_store::ReplayStore as _;
    let dir = tempfile::tempdir().unwrap();
    let (kek, _) = Kek::generate().unwrap();
    let s = SqliteStore::open(&dir.path().join("op.db"), kek)
        .await
        .unwrap();
    let wal = dir.path().join("op.db-wal");
    // each insert is a commit of a few 4 KiB pages: 3,000 of them, three times, with a pause
    // (bounded) for the checkpoint thread between rounds, then one more commit
    let mut n = 0u32;
    let mut insert = || {
        n += 1;
        keybound_testkit::numbered_digest(n)
    };
    for _round in 0..3 {
        for _ in 0..3_000 {
            assert!(s.check_and_insert(&insert(), NOW + 60, NOW).await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    assert!(s.check_and_insert(&insert(), NOW + 60, NOW).await.unwrap());
    // (busy, frames in the log, frames checkpointed): the last commit restarted the log
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert!(
        frames < 10,
        "the log holds {frames} frames after 9,001 commits and a pause"
    );
    let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(
        bytes <= 64 * 1024 * 1024,
        "the WAL file is {bytes} bytes after 9,001 commits"
    );
}
