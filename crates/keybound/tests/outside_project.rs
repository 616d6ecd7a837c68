//! A new Rust project outside the workspace, depending on keybound-rp and keybound-verify by
//! path as it would by version, builds and runs `Rp::begin`'s example flow against
//! `keybound serve --demo`: the libraries work as a user adds them, not only inside this
//! workspace (its features, its `[patch]`es, its test fixtures).
//!
//! The project (`tests/outside-project/`) is written to a temporary directory with the
//! workspace's `Cargo.lock` (the same versions, resolved offline) and built with its own
//! target directory (`target/outside-project`): building in the one `cargo test` holds would
//! wait on its lock.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use keybound_testkit::process::{free_port, wait_ready, Keybound};

/// Run `cmd` to completion within `limit`, killing it past that; its output.
fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(limit) {
        return out.expect("the command's output");
    }
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    panic!("{cmd:?} took longer than {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_outside_the_workspace_runs_the_rp_begin_flow_against_serve_demo() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_owned();
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside-project");
    let project = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(template.join("Cargo.toml.in"))
        .unwrap()
        .replace("PATH", workspace.to_str().unwrap());
    std::fs::write(project.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir(project.path().join("src")).unwrap();
    std::fs::copy(
        template.join("src/main.rs"),
        project.path().join("src/main.rs"),
    )
    .unwrap();
    std::fs::copy(
        workspace.join("Cargo.lock"),
        project.path().join("Cargo.lock"),
    )
    .unwrap();

    // build it as its own project
    let target = workspace.join("target/outside-project");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(project.path())
        .args(["build", "--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let out = run_bounded(build, Duration::from_secs(20 * 60));
    assert!(
        out.status.success(),
        "the outside project builds:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lock = std::fs::read_to_string(project.path().join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"keybound-rp\"") && lock.contains("name = \"keybound-verify\""),
        "it resolved the library crates"
    );
    assert!(
        !lock.contains("name = \"keybound-testkit\"") && !lock.contains("name = \"keybound-op\""),
        "and nothing of the workspace's tests or provider"
    );

    // `keybound serve --demo` on a fresh data directory, the demo password chosen
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let password = "outside-project-password";
    let _server = Keybound::new(env!("CARGO_BIN_EXE_keybound"), data.path()).serve_env(
        port,
        &["--demo"],
        &[("KEYBOUND_DEMO_PASSWORD", password)],
    );
    wait_ready(&reqwest::Client::new(), &issuer).await;

    let mut run = Command::new(target.join("debug/keybound-outside"));
    run.env("KEYBOUND_ISSUER", &issuer)
        .env("KEYBOUND_DEMO_PASSWORD", password);
    let out = run_bounded(run, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the flow runs:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "signed in, ID Token bound to key ",
        "presentation accepted for ",
        "(Demo User)",
        "replay refused: ",
        "refreshed with the same key",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}
