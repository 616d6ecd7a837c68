//! A throwaway PostgreSQL for tests: a cluster in a temporary directory (Debian's `postgresql`
//! package, `initdb` as the unprivileged `postgres` user when the tests run as root), listening
//! on a random loopback port, with fsync off (on for benchmarks:
//! [`TestPostgres::start_durable`]). It stops and its directory goes when the test process ends
//! (a small shell watchdog waits for the process), or at once with [`TestPostgres::stop`]. Each test takes its own database ([`TestPostgres::fresh_database`]).
//!
//! `KEYBOUND_TEST_POSTGRES=postgres://user@host:port` uses an existing server instead (it must
//! let that user create databases); `KEYBOUND_PG_BIN` names the directory of `initdb`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// A PostgreSQL server for tests.
#[derive(Debug)]
pub struct TestPostgres {
    /// `postgres://keybound@127.0.0.1:PORT` (no database)
    pub base_url: String,
    /// the port
    pub port: u16,
    managed: Option<Managed>,
}

#[derive(Debug)]
struct Managed {
    bin: PathBuf,
    dir: PathBuf,
    /// server settings beyond port and socket (`-c name=value …`)
    settings: String,
}

fn pg_bin() -> PathBuf {
    if let Ok(b) = std::env::var("KEYBOUND_PG_BIN") {
        return PathBuf::from(b);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the unprivileged `postgres` user when we are root (PostgreSQL refuses root).
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (is Debian's postgresql installed?)"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPostgres {
    /// The server of this test process: started on first use (or the one named by
    /// `KEYBOUND_TEST_POSTGRES`).
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var("KEYBOUND_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => {
                let port = url::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.port())
                    .unwrap_or(5432);
                TestPostgres {
                    base_url: url.trim_end_matches('/').to_owned(),
                    port,
                    managed: None,
                }
            }
            _ => TestPostgres::start(),
        })
    }

    /// A new cluster of its own (for tests that stop the server).
    pub fn start() -> TestPostgres {
        Self::start_with(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    }

    /// A new cluster that writes durably (fsync, full page writes), for benchmarks: with
    /// `synchronous_commit` each commit waits for its WAL flush (PostgreSQL's default); without,
    /// a commit survives a crash of keybound or PostgreSQL but the last ones may be lost on power
    /// failure — what SQLite's WAL with `synchronous=NORMAL` (keybound's SQLite setting) gives.
    pub fn start_durable(synchronous_commit: bool) -> TestPostgres {
        Self::start_with(if synchronous_commit {
            ""
        } else {
            " -c synchronous_commit=off"
        })
    }

    fn start_with(settings: &str) -> TestPostgres {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "keybound-pg-{}-{}",
            std::process::id(),
            keybound_jose::random_b64(6)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["postgres:postgres"]).arg(&dir);
                    c
                },
                "chown the cluster directory",
            );
        }
        let mut initdb = as_pg_user(&bin.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).args([
            "-A",
            "trust",
            "-U",
            "keybound",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let port = crate::process::free_port();
        let pg = TestPostgres {
            base_url: format!("postgres://keybound@127.0.0.1:{port}"),
            port,
            managed: Some(Managed {
                bin,
                dir,
                settings: settings.to_owned(),
            }),
        };
        pg.start_server();
        pg.watchdog();
        pg
    }

    fn managed(&self) -> &Managed {
        self.managed.as_ref().unwrap_or_else(|| {
            panic!("the server named by KEYBOUND_TEST_POSTGRES is not ours to stop")
        })
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let m = self.managed();
        let mut c = as_pg_user(&m.bin.join("pg_ctl"));
        c.arg("-D").arg(m.dir.join("data")).args(args);
        c
    }

    fn start_server(&self) {
        let m = self.managed();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300{}",
            self.port,
            m.dir.display(),
            m.settings
        );
        let mut c = self.pg_ctl(&["-w", "-t", "30", "-o", &opts, "-l"]);
        c.arg(m.dir.join("log")).arg("start");
        run(c, "pg_ctl start");
        self.wait_ready(Duration::from_secs(30));
    }

    /// Stop the server process when this test process ends, and remove the cluster.
    fn watchdog(&self) {
        let m = self.managed();
        let stop = self.pg_ctl(&["-m", "immediate", "stop"]);
        let argv: Vec<String> = std::iter::once(stop.get_program())
            .chain(stop.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            parent = std::process::id(),
            stop = argv.join(" "),
            dir = m.dir.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// Wait (bounded by a count of 50 ms pauses) until the port accepts connections.
    fn wait_ready(&self, within: Duration) {
        let tries = within.as_millis() / 50;
        for _ in 0..tries {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "PostgreSQL on port {} did not accept connections",
            self.port
        );
    }

    /// The postmaster's process id (its backends are its children), when the server is ours.
    pub fn server_pid(&self) -> Option<u32> {
        let m = self.managed.as_ref()?;
        std::fs::read_to_string(m.dir.join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stop the server (`pg_ctl stop -m fast`): clients see connection failures.
    pub fn stop(&self) {
        run(self.pg_ctl(&["-w", "-m", "fast", "stop"]), "pg_ctl stop");
    }

    /// Start it again after [`TestPostgres::stop`], on the same port and data.
    pub fn restart(&self) {
        self.start_server();
    }

    /// A new, empty database; its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "kb_{}",
            keybound_jose::random_b64(9)
                .to_lowercase()
                .replace(['-', '_'], "x")
        );
        self.psql(
            &format!("{}/postgres", self.base_url),
            &format!("CREATE DATABASE {name}"),
        );
        format!("{}/{name}", self.base_url)
    }

    /// Run one SQL command with `psql` on the database at `url` (panics when it fails).
    pub fn psql(&self, url: &str, sql: &str) {
        let psql = self
            .managed
            .as_ref()
            .map_or_else(|| PathBuf::from("psql"), |m| m.bin.join("psql"));
        let mut c = Command::new(psql);
        c.arg("-q").arg(url).args(["-c", sql]);
        run(c, sql);
    }
}
