//! Issue 13 item 3 on one machine: two `keybound serve` processes started at the same moment
//! on an empty data directory (one SQLite file) create one key-encryption key, one nonce secret
//! and one signing-key set between them (before: two current and two next keys, 6 of 6 runs; a
//! node could also fail to open the new file with "database is locked").
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_testkit::process::{free_port, wait_ready, Keybound};

#[tokio::test]
async fn two_nodes_starting_at_once_create_one_key_set() {
    let http = reqwest::Client::new();
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &dir.path().join("data"));
        let (p1, p2) = (free_port(), free_port());
        let _a = kb.serve(p1, &["--issuer", "http://127.0.0.1:1"]);
        let _b = kb.serve(p2, &["--issuer", "http://127.0.0.1:1"]);
        wait_ready(&http, &format!("http://127.0.0.1:{p1}")).await;
        wait_ready(&http, &format!("http://127.0.0.1:{p2}")).await;
        // both nodes publish the same keys
        let jwks = |p: u16| {
            let http = http.clone();
            async move {
                http.get(format!("http://127.0.0.1:{p}/jwks"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(jwks(p1).await, jwks(p2).await, "round {round}");
        let list = kb.admin(&["keys", "list"]);
        let states: Vec<&str> = list.lines().filter_map(|l| l.split('\t').nth(2)).collect();
        assert_eq!(states, ["current", "next"], "round {round}:\n{list}");
    }
}
