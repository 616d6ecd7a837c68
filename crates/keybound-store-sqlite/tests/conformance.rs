//! The store conformance suite (keybound-testkit) against SQLite on a real file and in memory,
//! and what only SQLite has: signing keys sealed at rest, codes and tokens stored hashed, state
//! that survives reopening the file, group commit.
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

mod in_memory {
    use super::*;

    async fn sqlite_memory() -> (Arc<dyn Store>, ()) {
        let (kek, _) = Kek::generate().unwrap();
        (Arc::new(SqliteStore::open_memory(kek).await.unwrap()), ())
    }

    keybound_testkit::store_conformance!(sqlite_memory);
}

#[tokio::test]
async fn sqlite_signing_keys_are_sealed_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (kek, raw) = Kek::generate().unwrap();
    let s = SqliteStore::open(&dir.path().join("op.db"), kek)
        .await
        .unwrap();
    let k = key("k1", KeyState::Current);
    s.put_signing_key(&k).await.unwrap();
    let sealed: Vec<u8> = s
        .with_connection(|c| {
            c.query_row(
                "SELECT sealed FROM signing_keys WHERE kid = 'k1'",
                [],
                |r| r.get(0),
            )
        })
        .await
        .unwrap();
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
    let dump: Vec<String> = s
        .with_connection(|c| {
            let mut st = c.prepare(
                "SELECT hex(code_hash) || data AS x FROM auth_codes UNION ALL SELECT hex(token_hash) || data FROM refresh_tokens",
            )?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
        .unwrap();
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
    s.with_connection(|c| {
        c.execute(
            "UPDATE auth_codes SET data = json_set(data, '$.dpop_jkt', 'not-a-thumbprint')",
            [],
        )
    })
    .await
    .unwrap();
    match s.find_code(&TokenHash::of("c"), NOW).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("thumbprint"), "{m}"),
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

/// The write-ahead log stays bounded: checkpoints run on their own thread (the writer's own
/// are pushed back to 10,000 pages, they synced the file on the request path), so after a pause
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
    // (on a connection of its own: a checkpoint cannot run inside the writer's transaction)
    let frames: i64 = rusqlite::Connection::open(dir.path().join("op.db"))
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
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

/// Group commit: writes queued together are committed in one transaction, each answered only
/// once it is committed; a job that fails (a unique violation) is rolled back alone and the
/// others of its batch stand. 200 concurrent writers, each a distinct code, and every tenth a
/// duplicate of another: exactly the distinct ones are stored, every duplicate is a conflict.
#[tokio::test]
async fn sqlite_group_commit_answers_each_job_and_isolates_failures() {
    let dir = tempfile::tempdir().unwrap();
    let (kek, _) = Kek::generate().unwrap();
    let s = Arc::new(
        SqliteStore::open(&dir.path().join("op.db"), kek)
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let s = s.clone();
        // every tenth writes the code of the one before it again
        let name = if i % 10 == 9 { i - 1 } else { i };
        tasks.push(tokio::spawn(async move {
            s.insert_code(&TokenHash::of(&format!("code-{name}")), &code("g"))
                .await
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(conflicts, 20);
    let stored: i64 = s
        .with_connection(|c| c.query_row("SELECT count(*) FROM auth_codes", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(stored, 180);
}

/// A database migrated by the sqlx migrator of earlier versions is taken up where sqlx left it.
#[tokio::test]
async fn sqlite_takes_up_a_database_sqlx_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("op.db");
    {
        // the schema of migrations 1–7 and sqlx's record of them, as sqlx left them
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
        )
        .unwrap();
        for (v, sql) in keybound_store_sqlite::migrations().iter().take(7) {
            c.execute_batch(sql).unwrap();
            c.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (?1, 'm', 1, x'00', 0)",
                [v],
            )
            .unwrap();
        }
    }
    let (kek, _) = Kek::generate().unwrap();
    let s = SqliteStore::open(&path, kek).await.unwrap();
    // migration 8 (pushed requests) was applied on top
    let tables: i64 = s
        .with_connection(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'pushed_requests'",
                [],
                |r| r.get(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(tables, 1);
    s.put_client(&client("app")).await.unwrap();
}
