//! The store conformance suite (keybound-testkit) against PostgreSQL: a throwaway cluster on
//! loopback (Debian's postgresql, started by the test kit), one fresh database per test; and
//! what only this backend has: signing keys sealed at rest, nodes racing migrations, and
//! serialization-failure retries.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_store::{Kek, KeyState, SigningKeyStore as _, Store};
use keybound_store_postgres::{PgOptions, PgStore};
use keybound_testkit::conformance::key;
use keybound_testkit::pg::TestPostgres;

async fn postgres() -> (Arc<dyn Store>, ()) {
    let url = TestPostgres::shared().fresh_database();
    let (kek, _) = Kek::generate().unwrap();
    let s = PgStore::connect(&url, kek, PgOptions::default())
        .await
        .unwrap();
    (Arc::new(s), ())
}

keybound_testkit::store_conformance!(postgres);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_signing_keys_are_sealed_at_rest() {
    use sqlx::Row as _;
    let url = TestPostgres::shared().fresh_database();
    let (kek, _) = Kek::generate().unwrap();
    let s = PgStore::connect(&url, kek, PgOptions::default())
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
    let (other, _) = Kek::generate().unwrap();
    let s2 = PgStore::connect(&url, other, PgOptions::default())
        .await
        .unwrap();
    assert!(s2.signing_keys().await.is_err());
}

/// Issue 13 item 3: nodes starting at once run the migrations at once; all succeed and the
/// schema is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_migrations_all_start() {
    let url = TestPostgres::shared().fresh_database();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (kek, _) = Kek::generate().unwrap();
            PgStore::connect(&url, kek, PgOptions::default())
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

/// Issue 26 item 9: what one node counts or verifies, another node on the same database (and
/// key-encryption key) sees: the counts are rows, and the verified-secret MAC is derived from
/// the shared KEK. A node with another KEK recognises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_verified_secrets_are_shared_by_the_nodes() {
    use keybound_store::{Count, CounterStore as _, TokenHash};
    let url = TestPostgres::shared().fresh_database();
    let (_, raw) = Kek::generate().unwrap();
    let node = || async {
        PgStore::connect(
            &url,
            Kek::from_bytes(raw.as_ref()).unwrap(),
            PgOptions::default(),
        )
        .await
        .unwrap()
    };
    let (a, b) = (node().await, node().await);
    let now = keybound_testkit::conformance::NOW;
    let k = TokenHash::of("throttle\0account\0alice");
    let bump = |c: Option<Count>| {
        Some(Count {
            n: c.map_or(0, |c| c.n) + 1,
            at: now,
            expires_at: now + 900,
        })
    };
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.change_count(&k, now, &bump).await.unwrap();
    }
    assert_eq!(b.count(&k, now).await.unwrap().map(|c| c.n), Some(6));
    let mac = a.secret_mac().of("app", "$argon2id$h", "s3cret");
    a.put_verified_secret("app", &mac, now + 300).await.unwrap();
    assert_eq!(
        b.verified_secret("app", now).await.unwrap(),
        Some(b.secret_mac().of("app", "$argon2id$h", "s3cret")),
        "node b computes the MAC node a stored"
    );
    let (other, _) = Kek::generate().unwrap();
    let c = PgStore::connect(&url, other, PgOptions::default())
        .await
        .unwrap();
    assert_ne!(c.secret_mac().of("app", "$argon2id$h", "s3cret"), mac);
}
