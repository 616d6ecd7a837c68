//! The durable replay cache (feature `sqlite`): a proof digest accepted before a restart is
//! refused after it; an expired entry may be used again; concurrent inserts of one digest
//! succeed exactly once.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_verify::{ReplayCache, SqliteReplayCache};

const NOW: u64 = 1_700_000_000;

#[tokio::test]
async fn replay_refused_after_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.db");
    {
        let c = SqliteReplayCache::open(&path).await.unwrap();
        assert!(c.check_and_insert(&[1; 32], NOW + 61, NOW).await.unwrap());
        assert!(!c.check_and_insert(&[1; 32], NOW + 61, NOW).await.unwrap());
    }
    // a restart: a new cache over the same file
    let c = SqliteReplayCache::open(&path).await.unwrap();
    assert!(
        !c.check_and_insert(&[1; 32], NOW + 61, NOW + 1)
            .await
            .unwrap(),
        "a proof accepted before the restart is a replay after it"
    );
    assert!(c
        .check_and_insert(&[2; 32], NOW + 61, NOW + 1)
        .await
        .unwrap());
    // once expired, the digest is free again (the proof would be too old anyway)
    assert!(c
        .check_and_insert(&[1; 32], NOW + 200, NOW + 61)
        .await
        .unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_of_one_digest_succeed_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(
        SqliteReplayCache::open(&dir.path().join("replay.db"))
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.check_and_insert(&[7; 32], NOW + 61, NOW).await })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1);
}
