//! `keybound admin client add` with an exchange policy (identity chaining, issue 11): the flags
//! land in the store and show in `client list`; mistakes are refused with a message.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

use keybound_testkit::process::Keybound;

#[test]
fn exchange_policy_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &data);
    kb.admin(&[
        "client",
        "add",
        "--client-id",
        "svc",
        "--auth-method",
        "client_secret_basic",
        "--secret",
        "s3cret-s3cret",
        "--redirect-uri",
        "https://svc.example/cb",
        "--exchange-audience",
        "https://as.b.example=svc-at-b",
        "--exchange-audience",
        "https://as.c.example",
        "--exchange-scope",
        "chat.read",
        "--exchange-resource",
        "https://api.b.example",
    ]);
    let list = kb.admin(&["client", "list"]);
    assert!(
        list.contains("exchange: https://as.b.example=svc-at-b https://as.c.example=svc"),
        "{list}"
    );
    for (args, expect) in [
        (
            &["--exchange-scope", "chat.read"][..],
            "need at least one --exchange-audience",
        ),
        (
            &["--exchange-audience", "not a url"][..],
            "expected ISSUER_URL[=CLIENT_ID]",
        ),
        (
            &["--exchange-audience", "https://as.b.example="][..],
            "expected ISSUER_URL[=CLIENT_ID]",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_keybound"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "admin",
                "client",
                "add",
                "--client-id",
                "bad",
                "--redirect-uri",
                "https://svc.example/cb",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
