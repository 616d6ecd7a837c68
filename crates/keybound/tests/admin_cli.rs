//! `keybound admin client add` with an exchange policy (identity chaining, issue 11): the flags
//! land in the store and show in `client list`; mistakes are refused with a message.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

use keybound_testkit::process::{Keybound, Server};

/// Where the admin commands run: on the database, or through a running server's admin API
/// (issue 28: every command works both ways, and this suite runs both).
#[derive(Debug, Clone, Copy)]
enum Way {
    Local,
    Api,
}

/// The binary over `data`, and the server whose admin API it goes through.
fn keybound(way: Way, data: &std::path::Path) -> (Keybound, Option<(Server, u16)>) {
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), data);
    match way {
        Way::Local => (kb, None),
        Way::Api => {
            let (server, via, port) = kb.serve_with_admin_api();
            (via, Some((server, port)))
        }
    }
}

/// Each suite as two tests: `locally` and `through_the_api`.
macro_rules! both_ways {
    ($suite:ident) => {
        mod $suite {
            #[test]
            fn locally() {
                super::$suite(super::Way::Local);
            }
            #[test]
            fn through_the_api() {
                super::$suite(super::Way::Api);
            }
        }
    };
    (async $suite:ident) => {
        mod $suite {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn locally() {
                super::$suite(super::Way::Local).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn through_the_api() {
                super::$suite(super::Way::Api).await;
            }
        }
    };
}

both_ways!(exchange_policy_from_the_command_line);
both_ways!(async trusted_issuers_from_the_command_line);
both_ways!(async registration_token_from_the_command_line);
both_ways!(client_credentials_client_from_the_command_line);
both_ways!(async passkeys_from_the_command_line);

fn exchange_policy_from_the_command_line(way: Way) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kb, _server) = keybound(way, &data);
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
        "--grant-type",
        "jwt-bearer",
    ]);
    let list = kb.admin(&["client", "list"]);
    assert!(
        list.contains(
            "exchange: https://as.b.example=svc-at-b https://as.c.example=svc\tjwt-bearer"
        ),
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
        (
            &["--grant-type", "token-exchange"][..],
            "needs --exchange-audience",
        ),
        (
            &["--grant-type", "implicit"][..],
            "expected authorization_code, refresh_token, device_code, client_credentials, jwt-bearer or token-exchange",
        ),
        // issue 22 item 4: the rules of dynamic registration (keybound_op::check_client)
        (
            &["--grant-type", "jwt-bearer"][..],
            "jwt-bearer (redeeming ID-JAGs) is for confidential clients",
        ),
        (
            &[
                "--response-type",
                "id_token",
                "--redirect-uri",
                "http://127.0.0.1:8081/cb",
            ][..],
            "implicit and hybrid flows use https redirect URIs",
        ),
    ] {
        let mut full = vec![
            "client",
            "add",
            "--client-id",
            "bad",
            "--redirect-uri",
            "https://svc.example/cb",
        ];
        full.extend_from_slice(args);
        kb.admin_fails(&full, expect);
    }
}

/// `keybound admin issuer …` and `user link`: trust an issuer (its `jwks_uri` discovered from a
/// live OP on loopback, or given), list, disable, enable, link a subject, remove.
async fn trusted_issuers_from_the_command_line(way: Way) {
    let idp = keybound_testkit::op::OpBuilder::new().serve().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kb, _server) = tokio::task::spawn_blocking(move || keybound(way, &data))
        .await
        .unwrap();
    let admin = |args: Vec<String>| {
        let kb = kb.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                kb.admin(&args)
            })
            .await
            .unwrap()
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let out = admin(s(&[
        "issuer",
        "add",
        "--issuer",
        &idp.issuer,
        "--subject",
        "email",
    ]))
    .await;
    assert!(
        out.contains(&format!("keys at {}/jwks", idp.issuer)),
        "{out}"
    );
    admin(s(&[
        "issuer",
        "add",
        "--issuer",
        "https://idp.c.example",
        "--jwks-uri",
        "https://idp.c.example/keys",
        "--single-use",
    ]))
    .await;
    admin(s(&[
        "issuer",
        "disable",
        "--issuer",
        "https://idp.c.example",
    ]))
    .await;
    let list = admin(s(&["issuer", "list"])).await;
    assert!(
        list.contains(&format!(
            "{}\tenabled\t{}/jwks\tsubject=email",
            idp.issuer, idp.issuer
        )),
        "{list}"
    );
    assert!(
        list.contains(
            "https://idp.c.example\tdisabled\thttps://idp.c.example/keys\tsubject=link\tsingle-use"
        ),
        "{list}"
    );
    admin(s(&[
        "issuer",
        "enable",
        "--issuer",
        "https://idp.c.example",
    ]))
    .await;
    admin(s(&[
        "user",
        "add",
        "--username",
        "carol",
        "--password",
        "pw-pw-pw-pw",
    ]))
    .await;
    let out = admin(s(&[
        "user",
        "link",
        "--username",
        "carol",
        "--issuer",
        "https://idp.c.example",
        "--subject",
        "c-123",
    ]))
    .await;
    assert!(
        out.contains("'c-123' at https://idp.c.example is now 'carol' here"),
        "{out}"
    );
    admin(s(&[
        "issuer",
        "remove",
        "--issuer",
        "https://idp.c.example",
    ]))
    .await;
    let list = admin(s(&["issuer", "list"])).await;
    assert!(!list.contains("idp.c.example"), "{list}");
    // mistakes
    for (args, expect) in [
        (
            s(&[
                "issuer",
                "add",
                "--issuer",
                "https://idp.d.example",
                "--jwks-uri",
                "https://idp.d.example/k",
                "--subject",
                "guess",
            ]),
            "expected link, email or provision",
        ),
        (
            s(&["issuer", "disable", "--issuer", "https://nobody.example"]),
            "no trusted issuer",
        ),
        (
            s(&[
                "user",
                "link",
                "--username",
                "carol",
                "--issuer",
                "https://nobody.example",
                "--subject",
                "x",
            ]),
            "no trusted issuer 'https://nobody.example'",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kb.admin_fails(&args, expect);
    }
}

/// `keybound admin registration-token create --uses 1`, then `POST /register` on the running
/// server: registered once (201), refused the second time (401).
async fn registration_token_from_the_command_line(way: Way) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kb, server) = tokio::task::spawn_blocking(move || keybound(way, &data))
        .await
        .unwrap();
    let token = kb
        .admin(&[
            "registration-token",
            "create",
            "--uses",
            "1",
            "--ttl",
            "600",
        ])
        .trim()
        .to_owned();
    assert!(token.len() >= 40, "{token}");
    // through the API the server runs already; on the database, start one now
    let (_server, port) = server.unwrap_or_else(|| {
        let port = keybound_testkit::process::free_port();
        (kb.serve(port, &[]), port)
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    keybound_testkit::process::wait_ready(&http, &base).await;
    let register = || {
        http.post(format!("{base}/register"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "redirect_uris": ["https://app.example/cb"] }))
            .send()
    };
    let r = register().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let id = v["client_id"].as_str().unwrap().to_owned();
    assert_eq!(register().await.unwrap().status(), 401, "one use only");
    let list = kb.admin(&["client", "list"]);
    assert!(list.contains(&id), "{list}");
}

/// Issue 22 item 5: no `--help` of any command or subcommand shows the value of a
/// secret-bearing environment variable (`keybound chain --help` printed
/// `KEYBOUND_CLIENT_SECRET`'s and `KEYBOUND_AS_CLIENT_SECRET`'s).
#[test]
fn no_help_shows_a_planted_secret() {
    const PLANTED: &str = "planted-secret-7f3a";
    let help = |path: &[String]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keybound"))
            .args(path)
            .arg("--help")
            .env("KEYBOUND_CLIENT_SECRET", PLANTED)
            .env("KEYBOUND_AS_CLIENT_SECRET", PLANTED)
            .env(
                "KEYBOUND_DATABASE_URL",
                format!("postgres://u:{PLANTED}@db/x"),
            )
            .env("KEYBOUND_DPOP_NONCE_SECRET", PLANTED)
            .output()
            .unwrap();
        assert!(out.status.success(), "{path:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // every command, found in the help itself (bounded: three levels)
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let text = help(&path);
        assert!(!text.contains(PLANTED), "{path:?}:\n{text}");
        seen += 1;
        if path.len() >= 3 {
            continue;
        }
        let commands = text
            .split("Commands:\n")
            .nth(1)
            .map_or("", |rest| rest.split("\n\n").next().unwrap_or(""));
        for line in commands.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if !name.is_empty() && name != "help" {
                let mut next = path.clone();
                next.push(name.to_owned());
                todo.push(next);
            }
        }
    }
    assert!(seen > 20, "only {seen} commands found");
}

/// Issue 23 item 1: a client-credentials client from the command line (no redirect URI
/// needed), its scopes in `client list`; a public one, an End-User scope or the code grant
/// without a redirect URI are refused with the rule.
fn client_credentials_client_from_the_command_line(way: Way) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kb, _server) = keybound(way, &data);
    kb.admin(&[
        "client",
        "add",
        "--client-id",
        "m2m",
        "--auth-method",
        "client_secret_basic",
        "--secret",
        "m2m-secret-0123",
        "--grant-type",
        "client_credentials",
        "--scope",
        "orders.read",
        "--scope",
        "orders.write",
    ]);
    let list = kb.admin(&["client", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("m2m\t") && l.ends_with("\tscopes: orders.read orders.write")),
        "{list}"
    );
    let base = [
        "client",
        "add",
        "--client-id",
        "bad",
        "--grant-type",
        "client_credentials",
    ];
    kb.admin_fails(&base, "client_credentials is for confidential clients");
    let confidential = [&base[..], &["--auth-method", "client_secret_basic"]].concat();
    kb.admin_fails(
        &[&confidential[..], &["--scope", "openid"]].concat(),
        "scope: 'openid'",
    );
    kb.admin_fails(
        &[
            "client",
            "add",
            "--client-id",
            "code",
            "--grant-type",
            "authorization_code",
        ],
        "redirect_uris is required",
    );
}

/// Issue 27: `user add --require-passkey` marks the account; `user passkey list|remove` show
/// and remove a user's passkeys (an admin's answer to a lost one), refusing unknown users and
/// credential ids.
async fn passkeys_from_the_command_line(way: Way) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.clone();
    let (kb, _server) = tokio::task::spawn_blocking(move || keybound(way, &d))
        .await
        .unwrap();
    let run = |args: &'static [&'static str]| {
        let kb = kb.clone();
        async move {
            tokio::task::spawn_blocking(move || kb.admin(args))
                .await
                .unwrap()
        }
    };
    run(&[
        "user",
        "add",
        "--username",
        "alice",
        "--password",
        "wonderland",
        "--require-passkey",
    ])
    .await;
    let open = || async {
        let kek = keybound_store::Kek::load_or_create(&data).unwrap();
        keybound_store_sqlite::SqliteStore::open(&data.join("keybound.db"), kek)
            .await
            .unwrap()
    };
    let alice = {
        use keybound_store::{PasskeyStore as _, UserStore as _};
        let store = open().await;
        let alice = store.user_by_username("alice").await.unwrap().unwrap();
        assert!(alice.require_passkey);
        store
            .insert_passkey(&keybound_store::Passkey {
                credential_id: "cred-1".into(),
                sub: alice.sub.clone(),
                name: "Laptop".into(),
                credential: "{}".into(),
                sign_count: 0,
                created_at: 1_700_000_000,
                last_used_at: None,
            })
            .await
            .unwrap();
        alice
    };
    let list = run(&["user", "passkey", "list", "--username", "alice"]).await;
    assert!(list.contains("cred-1\tLaptop\t1700000000\tnever"), "{list}");
    kb.admin_fails(
        &[
            "user",
            "passkey",
            "remove",
            "--username",
            "alice",
            "--credential-id",
            "cred-2",
        ],
        "no passkey 'cred-2'",
    );
    kb.admin_fails(
        &["user", "passkey", "list", "--username", "nobody"],
        "no user 'nobody'",
    );
    let out = run(&[
        "user",
        "passkey",
        "remove",
        "--username",
        "alice",
        "--credential-id",
        "cred-1",
    ])
    .await;
    assert!(out.contains("removed"), "{out}");
    let left = keybound_store::PasskeyStore::passkeys_of(&open().await, &alice.sub).await;
    assert!(left.unwrap().is_empty());
}

both_ways!(keys_users_and_removals_from_the_command_line);

/// The rest of the commands: signing keys listed and rotated, users listed and removed,
/// clients removed, migrations; each refusal says what was missing.
fn keys_users_and_removals_from_the_command_line(way: Way) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kb, _server) = keybound(way, &data);
    let keys = kb.admin(&["keys", "list"]);
    let current = |list: &str| {
        let line = list
            .lines()
            .find(|l| l.ends_with("\tcurrent"))
            .unwrap_or_else(|| panic!("a current key in {list}"));
        line.split('\t').next().unwrap().to_owned()
    };
    let before = current(&keys);
    assert!(keys.lines().any(|l| l.ends_with("\tnext")), "{keys}");
    let out = kb.admin(&["keys", "rotate"]);
    let after = current(&kb.admin(&["keys", "list"]));
    assert_ne!(before, after);
    assert!(
        out.contains(&format!("now signing with '{after}'")),
        "{out}"
    );
    let out = kb.admin(&[
        "user",
        "add",
        "--username",
        "erin",
        "--email",
        "erin@example.com",
    ]);
    assert!(out.contains("password (shown once): "), "{out}");
    // an existing user keeps their password when none is given
    let out = kb.admin(&["user", "add", "--username", "erin", "--name", "Erin"]);
    assert!(!out.contains("password"), "{out}");
    let users = kb.admin(&["user", "list"]);
    assert!(users.lines().any(|l| l.starts_with("erin\t")), "{users}");
    kb.admin(&["user", "remove", "--username", "erin"]);
    assert!(!kb.admin(&["user", "list"]).contains("erin"));
    kb.admin_fails(&["user", "remove", "--username", "erin"], "no user 'erin'");
    kb.admin(&[
        "client",
        "add",
        "--client-id",
        "gone",
        "--redirect-uri",
        "https://gone.example/cb",
    ]);
    kb.admin(&["client", "remove", "--client-id", "gone"]);
    kb.admin_fails(
        &["client", "remove", "--client-id", "gone"],
        "no client 'gone'",
    );
    assert!(kb.admin(&["migrate"]).contains("migrations applied"));
}

/// Through the API, the admin client proves itself: another key than the registered one, or
/// a client without keybound:admin, gets no token, and nothing is changed.
#[test]
fn the_api_takes_only_the_admin_client() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (via, server) = keybound(Way::Api, &data);
    let (_server, _port) = server.unwrap();
    let local = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &data);
    // a key of nobody's
    let stranger = dir.path().join("stranger.pem");
    local.admin(&[
        "client",
        "add",
        "--client-id",
        "helper",
        "--admin",
        "--key",
        &stranger.display().to_string(),
    ]);
    local.admin(&["client", "remove", "--client-id", "helper"]);
    let wrong = via.via_with("--key", &stranger.display().to_string());
    wrong.admin_fails(&["user", "list"], "a keybound:admin token");
    // a registered client that is not an admin one
    local.admin(&[
        "client",
        "add",
        "--client-id",
        "m2m",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        &jwks_of(&stranger, dir.path()).display().to_string(),
        "--grant-type",
        "client_credentials",
        "--scope",
        "orders.read",
    ]);
    let not_admin = via
        .via_with("--key", &stranger.display().to_string())
        .via_with("--client-id", "m2m");
    not_admin.admin_fails(&["user", "add", "--username", "mallory"], "keybound:admin");
    assert!(!local.admin(&["user", "list"]).contains("mallory"));
}

/// A JWK Set file of the public key in the PEM file `pem`.
fn jwks_of(pem: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let k = keybound_jose::PrivateKey::from_pem(&std::fs::read_to_string(pem).unwrap()).unwrap();
    let set = keybound_jose::JwkSet::signing_key(&k, "k1");
    let path = dir.join("m2m-jwks.json");
    std::fs::write(&path, set.to_value().to_string()).unwrap();
    path
}

/// Changes made on the database are security events too when events go to a file: who
/// (`local:<user>`), what, before and after, and never the secret.
#[test]
fn admin_changes_on_the_database_are_recorded_in_the_events_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = dir.path().join("events.jsonl");
    let kb = Keybound::new(env!("CARGO_BIN_EXE_keybound"), &data);
    let env = [
        ("KEYBOUND_EVENTS", events.to_str().unwrap()),
        ("USER", "operator-1"),
    ];
    kb.admin_env(
        &[
            "client",
            "add",
            "--client-id",
            "svc",
            "--auth-method",
            "client_secret_basic",
            "--secret",
            "planted-client-secret-42",
            "--grant-type",
            "client_credentials",
            "--scope",
            "orders.read",
        ],
        &env,
    );
    kb.admin_env(&["client", "remove", "--client-id", "svc"], &env);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        changes,
        [("create", "client svc"), ("delete", "client svc")]
    );
    assert!(records
        .iter()
        .all(|r| r["type"] == "admin.changed" && r["actor"] == "local:operator-1"));
    assert_eq!(records[0]["after"]["scope"], "orders.read");
    assert_eq!(records[1]["before"]["client_id"], "svc");
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(!text.contains("planted-client-secret-42"));
}
