//! The `keybound` binary as a child process, for the command-line tests: free loopback ports,
//! `keybound … admin` runs, a `keybound serve` that is killed when the test ends (even by a
//! failed assertion), and a bounded wait until it answers `/healthz`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The binary and a data directory.
#[derive(Debug, Clone)]
pub struct Keybound {
    bin: PathBuf,
    data: PathBuf,
    /// `--server URL --key FILE --client-id ID`: admin commands through the admin API
    via: Vec<String>,
}

/// A running `keybound serve`, killed when dropped.
#[derive(Debug)]
pub struct Server(Child);

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// SIGKILL: no graceful shutdown, no flush beyond what the store committed.
    pub fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_9();
    }
}

impl Keybound {
    /// `bin` (the test's `env!("CARGO_BIN_EXE_keybound")`) over the data directory `data`.
    pub fn new(bin: &str, data: &Path) -> Self {
        Keybound {
            bin: bin.into(),
            data: data.to_owned(),
            via: Vec::new(),
        }
    }

    /// The same binary and data directory, whose `admin` commands go through the admin API of
    /// the server at `server` (its management listener) as client `client_id` with `key`.
    #[must_use]
    pub fn through_api(&self, server: &str, key: &Path, client_id: &str) -> Keybound {
        Keybound {
            via: vec![
                "--server".into(),
                server.into(),
                "--key".into(),
                key.display().to_string(),
                "--client-id".into(),
                client_id.into(),
            ],
            ..self.clone()
        }
    }

    /// The same, through the API with `flag` (`--key`, `--client-id`) changed to `value`.
    #[must_use]
    pub fn via_with(&self, flag: &str, value: &str) -> Keybound {
        let mut via = self.via.clone();
        if let Some(i) = via.iter().position(|a| a == flag) {
            value.clone_into(&mut via[i + 1]);
        }
        Keybound {
            via,
            ..self.clone()
        }
    }

    /// Start `keybound serve` over this data directory on free loopback ports, the admin API
    /// on its management listener, with an admin client made on the database first; the
    /// server (killed when dropped), a `Keybound` whose `admin` commands go through the API, and
    /// the public listener's port.
    ///
    /// # Panics
    /// When the server does not listen within 10 s.
    pub fn serve_with_admin_api(&self) -> (Server, Keybound, u16) {
        let key = self.data.parent().unwrap_or(&self.data).join("kb-ops.pem");
        self.admin(&[
            "client",
            "add",
            "--client-id",
            "kb-ops",
            "--admin",
            "--key",
            &key.display().to_string(),
        ]);
        let (port, mgmt) = (free_port(), free_port());
        let mgmt_addr = format!("127.0.0.1:{mgmt}");
        let server = self.serve_env(port, &[], &[("KEYBOUND_METRICS_LISTEN", &mgmt_addr)]);
        for p in [mgmt, port] {
            let up = (0..400).any(|_| {
                std::net::TcpStream::connect(("127.0.0.1", p)).is_ok() || {
                    std::thread::sleep(Duration::from_millis(25));
                    false
                }
            });
            assert!(up, "keybound serve did not listen on {p} within 10 s");
        }
        let via = self.through_api(&format!("http://{mgmt_addr}"), &key, "kb-ops");
        (server, via, port)
    }

    /// `keybound ARGS…` in `cwd`, without `--data-dir` (commands that use the default).
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("the keybound binary runs")
    }

    /// `keybound --data-dir DATA admin ARGS…`, which must succeed; its standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        self.admin_env(args, &[])
    }

    /// [`Keybound::admin`] with environment variables set (`KEYBOUND_DATABASE_URL`, …).
    pub fn admin_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.admin_output(args, env);
        assert!(
            out.status.success(),
            "admin {:?} {args:?}: {}",
            self.via,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `keybound … admin ARGS…`, which must fail saying `expect` on standard error.
    ///
    /// # Panics
    /// When it succeeds or says something else.
    pub fn admin_fails(&self, args: &[&str], expect: &str) {
        let out = self.admin_output(args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{:?} {args:?} succeeded", self.via);
        assert!(err.contains(expect), "{:?} {args:?}: {err}", self.via);
    }

    fn admin_output(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("admin")
            .args(&self.via)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("the keybound binary runs")
    }

    /// `keybound --data-dir DATA serve --listen 127.0.0.1:PORT EXTRA…`, output discarded.
    pub fn serve(&self, port: u16, extra: &[&str]) -> Server {
        self.serve_env(port, extra, &[])
    }

    /// [`Keybound::serve`] with environment variables set (`KEYBOUND_*` settings).
    pub fn serve_env(&self, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server(
            Command::new(&self.bin)
                .arg("--data-dir")
                .arg(&self.data)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(extra)
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("keybound serve starts"),
        )
    }
}

/// Wait (at most 5 s) until `base` answers `/healthz` with success through `http`.
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not become ready within 5 s");
}

/// The discovery document of the OP at `issuer`, fetched through `http`.
pub async fn discovery(http: &reqwest::Client, issuer: &str) -> serde_json::Value {
    http.get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("discovery at {issuer}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("discovery at {issuer}: {e}"))
}
