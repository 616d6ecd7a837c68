//! # keybound-load
//!
//! A load generator for OpenID Providers, so keybound and a peer are measured with the same
//! tool, settings and machine (docs/performance.md). Modes:
//!
//! - `code`: pre-mints authorization codes through the real authorization endpoint (one signed-in
//!   browser session, consent given once, every code bound by `dpop_jkt`), then sends token
//!   requests with fresh DPoP proofs carrying `c_s256`;
//! - `refresh`: every worker holds its own refresh-token chain; each request refreshes with a
//!   fresh proof;
//! - `userinfo`: every worker holds a DPoP-bound access token; each request has a fresh proof;
//! - `device`: pre-approves N device codes (device authorization request bound by `dpop_jkt`,
//!   then the OP's verification pages, signed in once), then redeems each with a fresh proof;
//! - `verify`: the consuming component in process (ID Token + presentation proof + replay cache);
//! - `junk`: anonymous junk token requests (a random refresh token with a valid proof by the
//!   tool's key), each answered `invalid_grant`; with `--db-path` the report samples the OP's
//!   SQLite files every second, to show that the store levels off (expired rows are purged);
//! - `guess`: a password-guessing stream against one account (`--username`), each guess a fresh
//!   browser on the login page; with `--probe-username` another End-User signs in four times a
//!   second meanwhile, and the report says how many of those sign-ins succeeded and how fast.
//!   `--guesser-address` / `--probe-address` send `X-Forwarded-For` (for an OP that trusts
//!   127.0.0.1 as a proxy), so the two streams come from different client addresses;
//! - `exchange`: one key-bound ID Token (confidential client, `--client-secret`), each request
//!   an RFC 8693 token exchange of it for an ID-JAG for `--audience` with a fresh proof;
//! - `jwt-bearer`: one key-bound ID-JAG made at `--idp-issuer`, each request its redemption at
//!   `--issuer` (the resource AS) with a fresh proof (a key-bound ID-JAG may be redeemed again
//!   while it lives: runs are bounded by its 300 s).
//!
//! Load is either a fixed concurrency (closed loop) or a fixed request rate (open loop, latency
//! measured from the scheduled send time, so a slow server cannot hide queueing). The report has
//! requests/s, latency percentiles, errors by OAuth code, the crypto bound of the server's work
//! (measured with aws-lc-rs on this machine in the same run) and efficiency = rate ÷ bound, and,
//! given the server's pid, its resident memory idle and at peak.

mod bound;
mod modes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use bound::{crypto_bound, CryptoCosts};
pub use modes::{emit_requests, prepare, probe_sign_ins, Prepared};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// key-bound authorization code exchange
    Code,
    /// refresh with DPoP
    Refresh,
    /// userinfo with a DPoP-bound access token
    Userinfo,
    /// device_code grant with Key Binding, codes approved beforehand on the OP's device pages
    Device,
    /// the consuming component in process
    Verify,
    /// junk token requests (expected answer: `invalid_grant`)
    Junk,
    /// wrong passwords against one account (expected answers: 401, then 429)
    Guess,
    /// token exchange of one key-bound ID Token for ID-JAGs (identity chaining, IdP side)
    Exchange,
    /// jwt-bearer redemption of one key-bound ID-JAG from `--idp-issuer` (resource AS side)
    JwtBearer,
}

/// How hard to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// this many requests in flight at all times
    Concurrency(usize),
    /// this many requests per second, whatever the latency
    Rate(u64),
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// the OP's issuer URL
    pub issuer: String,
    /// client id (public client, PKCE)
    pub client_id: String,
    /// registered redirect URI (never contacted)
    pub redirect_uri: String,
    /// End-User to sign in as
    pub username: String,
    /// their password
    pub password: String,
    /// mode
    pub mode: Mode,
    /// load
    pub load: Load,
    /// how many requests
    pub requests: u64,
    /// the server's pids (one per node), to sample resident memory and CPU (summed)
    pub server_pids: Vec<u32>,
    /// base URLs of the OP's nodes: token and userinfo requests go round-robin to them (proofs
    /// still name the issuer's endpoints); empty: the issuer's endpoints
    pub nodes: Vec<String>,
    /// a database server's pid (PostgreSQL's postmaster): its CPU and its children's is
    /// reported per request beside the server's
    pub db_pid: Option<u32>,
    /// send `bound_key` (keybound) or only `dpop_jkt` (a plain DPoP peer)
    pub key_binding: bool,
    /// the OP's SQLite database file, to sample its size (with its WAL) during the run
    pub db_path: Option<std::path::PathBuf>,
    /// `guess`: another End-User (username, password) who signs in during the run
    pub probe: Option<(String, String)>,
    /// `guess`: `X-Forwarded-For` of the guesser
    pub guesser_address: Option<String>,
    /// `guess`: `X-Forwarded-For` of the probing End-User
    pub probe_address: Option<String>,
    /// the client's secret (confidential clients: `exchange`, `jwt-bearer`)
    pub client_secret: Option<String>,
    /// `exchange` / `jwt-bearer`: the resource AS issuer the ID-JAGs are for
    pub audience: Option<String>,
    /// `jwt-bearer`: the identity provider where the End-User signs in and the ID-JAG is made
    /// (`--issuer` is then the resource AS under load)
    pub idp_issuer: Option<String>,
    /// `jwt-bearer`: the client's id and secret at the resource AS
    pub as_client: Option<(String, String)>,
    /// keep-alive connections opened before the run (each after one `HEAD /healthz`) and held
    /// idle until it ends (plain http)
    pub idle_connections: u32,
}

impl Settings {
    /// `requests` of `mode` under `load` by `user` (username, password) through `client`
    /// (public client id, registered redirect URI) at `issuer`, Key Binding on, every other
    /// option off.
    pub fn new(
        issuer: &str,
        client: (&str, &str),
        user: (&str, &str),
        mode: Mode,
        load: Load,
        requests: u64,
    ) -> Settings {
        Settings {
            issuer: issuer.to_owned(),
            client_id: client.0.to_owned(),
            redirect_uri: client.1.to_owned(),
            username: user.0.to_owned(),
            password: user.1.to_owned(),
            mode,
            load,
            requests,
            server_pids: Vec::new(),
            nodes: Vec::new(),
            db_pid: None,
            key_binding: true,
            db_path: None,
            probe: None,
            guesser_address: None,
            probe_address: None,
            client_secret: None,
            audience: None,
            idp_issuer: None,
            as_client: None,
            idle_connections: 0,
        }
    }
}

/// Sign-ins by another End-User during a `guess` run.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// sign-ins that reached the client with a code
    pub ok: u64,
    /// sign-ins that did not, by reason
    pub failed: BTreeMap<String, u64>,
    /// latency of the successful sign-ins (GET, login POST, redirect)
    pub latency_ms: Latency,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// median
    pub p50: f64,
    /// 90th percentile
    pub p90: f64,
    /// 99th percentile
    pub p99: f64,
    /// maximum
    pub max: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// mode
    pub mode: Mode,
    /// issuer (empty for `verify`)
    pub issuer: String,
    /// load
    pub load: Load,
    /// requests sent
    pub requests: u64,
    /// successful responses
    pub ok: u64,
    /// failures by OAuth error code (or HTTP status / transport error)
    pub errors: BTreeMap<String, u64>,
    /// wall time of the measured phase, seconds
    pub seconds: f64,
    /// successful requests per second
    pub rps: f64,
    /// latency of successful requests
    pub latency_ms: Latency,
    /// `--rate`: how late this tool itself started requests after their scheduled times (part
    /// of every latency above, and none of the server's doing)
    pub send_lag_ms: Option<Latency>,
    /// server-side crypto work per request and what it allows on this machine
    pub crypto: CryptoCosts,
    /// rps ÷ crypto bound
    pub efficiency: f64,
    /// in-process modes: time of the signature checks alone ÷ time of whole requests, the two
    /// alternated request by request after the run ([`Work::interleaved_efficiency`])
    pub interleaved_efficiency: Option<f64>,
    /// server resident memory before the load, kB
    pub rss_idle_kb: Option<u64>,
    /// server resident memory peak during the load, kB
    pub rss_peak_kb: Option<u64>,
    /// CPU time (user + system) the server spent in the measured phase, seconds
    pub server_cpu_seconds: Option<f64>,
    /// server CPU per successful request, microseconds
    pub server_cpu_us_per_request: Option<f64>,
    /// share of the server's CPU per request that is the crypto it must do
    /// (crypto µs per request ÷ server CPU µs per request): the efficiency of the server alone,
    /// whatever the load tool on the same cores costs
    pub crypto_share_of_server_cpu: Option<f64>,
    /// CPU time of the database server and its children (`--db-pid`) in the measured phase
    pub db_cpu_seconds: Option<f64>,
    /// database CPU per successful request, microseconds
    pub db_cpu_us_per_request: Option<f64>,
    /// CPU time of this load tool in the measured phase, seconds (it shares the machine)
    pub client_cpu_seconds: Option<f64>,
    /// `--db-path`: (seconds into the run, bytes of the database and its WAL), every second
    pub db_bytes: Vec<(f64, u64)>,
    /// `guess` with `--probe-username`: the other End-User's sign-ins
    pub probe: Option<Probe>,
    /// `--idle-connections`: how many were held idle through the run
    pub idle_connections: Option<u32>,
    /// server resident memory with the idle connections open, before the load, kB
    pub rss_with_idle_connections_kb: Option<u64>,
}

impl Report {
    /// A short human-readable summary.
    #[allow(clippy::cast_precision_loss)] // kB to MB for display
    pub fn summary(&self) -> String {
        let mut s = format!(
            "mode {:?} against {}\n  {} requests, {} ok, errors {:?}\n  {:.0} req/s over {:.2} s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}\n  crypto bound {:.0} req/s ({} verify + {} sign per request, {} cores) -> efficiency {:.2}",
            self.mode,
            if self.issuer.is_empty() { "(in process)" } else { &self.issuer },
            self.requests,
            self.ok,
            self.errors,
            self.rps,
            self.seconds,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.crypto.bound_rps,
            self.crypto.verifies,
            self.crypto.signs,
            self.crypto.cores,
            self.efficiency,
        );
        if let Some(l) = &self.send_lag_ms {
            s.push_str(&format!(
                "\n  this tool started requests late by p50 {:.2} p99 {:.2} max {:.2} ms",
                l.p50, l.p99, l.max
            ));
        }
        if let Some(e) = self.interleaved_efficiency {
            s.push_str(&format!(
                "\n  interleaved with its signature checks alone: efficiency {e:.2}"
            ));
        }
        if let (Some(cpu), Some(us), Some(share)) = (
            self.server_cpu_seconds,
            self.server_cpu_us_per_request,
            self.crypto_share_of_server_cpu,
        ) {
            s.push_str(&format!(
                "\n  server CPU {cpu:.2} s = {us:.0} µs per request, of which crypto {:.0}%",
                share * 100.0
            ));
        }
        if let (Some(cpu), Some(us)) = (self.db_cpu_seconds, self.db_cpu_us_per_request) {
            s.push_str(&format!(
                "\n  database CPU {cpu:.2} s = {us:.0} µs per request"
            ));
        }
        if let Some(c) = self.client_cpu_seconds {
            s.push_str(&format!("\n  load tool CPU {c:.2} s"));
        }
        if !self.db_bytes.is_empty() {
            let step = (self.db_bytes.len() / 12).max(1);
            let series: Vec<String> = self
                .db_bytes
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i == self.db_bytes.len() - 1)
                .map(|(_, (t, b))| format!("{t:.0}s {:.2}MB", *b as f64 / 1e6))
                .collect();
            s.push_str(&format!("\n  database: {}", series.join(", ")));
        }
        if let Some(p) = &self.probe {
            s.push_str(&format!(
                "\n  other End-User: {} sign-ins ok, failed {:?}; latency ms p50 {:.1} p99 {:.1} max {:.1}",
                p.ok, p.failed, p.latency_ms.p50, p.latency_ms.p99, p.latency_ms.max
            ));
        }
        if let (Some(i), Some(p)) = (self.rss_idle_kb, self.rss_peak_kb) {
            s.push_str(&format!(
                "\n  server RSS idle {:.1} MB, peak {:.1} MB",
                i as f64 / 1024.0,
                p as f64 / 1024.0
            ));
        }
        if let (Some(n), Some(kb)) = (self.idle_connections, self.rss_with_idle_connections_kb) {
            s.push_str(&format!(
                "\n  {n} idle keep-alive connections held through the run: server RSS {:.1} MB before the load",
                kb as f64 / 1024.0
            ));
        }
        s
    }
}

/// Resident memory of `pid` in kB (Linux `/proc`).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) of `pid` in seconds (Linux `/proc/<pid>/stat`, clock ticks of
/// 1/100 s as on every mainstream Linux configuration).
#[allow(clippy::cast_precision_loss)]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may contain spaces; fields after its closing parenthesis are plain
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // after the name: state is field 3, utime field 14, stime field 15 (1-based in proc(5))
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// CPU time of `pid` and its children in seconds: the live ones (`/proc/*/stat` whose parent
/// is `pid`) and the exited ones it reaped (cutime, cstime) — PostgreSQL's postmaster and its
/// backends.
#[allow(clippy::cast_precision_loss)]
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let fields = |p: &str| -> Option<Vec<u64>> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        // state is field 3; ppid 4; utime 14, stime 15, cutime 16, cstime 17 (proc(5))
        rest.split(' ')
            .skip(1)
            .take(14)
            .map(|f| f.parse::<i64>().ok().map(i64::unsigned_abs))
            .collect()
    };
    let own = fields(&pid.to_string())?;
    let mut ticks = own.get(10)? + own.get(11)? + own.get(12)? + own.get(13)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some(f) = fields(name).filter(|f| f.first() == Some(&u64::from(pid))) {
            ticks += f.get(10).unwrap_or(&0) + f.get(11).unwrap_or(&0);
        }
    }
    Some(ticks as f64 / 100.0)
}

/// Percentiles of `samples` (milliseconds).
pub fn latency(mut samples: Vec<f64>) -> Latency {
    if samples.is_empty() {
        return Latency {
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            max: 0.0,
        };
    }
    samples.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    }
}

/// The outcome of one request.
pub type Outcome = Result<(), String>;

/// Something that can send request number `i` of the run.
#[async_trait::async_trait]
pub trait Work: Send + Sync {
    /// Send request `i` (from worker `worker`).
    async fn send(&self, i: u64, worker: usize) -> Outcome;

    /// In-process work only: after the run, alternate one more request and its signature checks
    /// alone (the same verifications over the same bytes) on one thread per core, and return the
    /// time of the checks ÷ the time of the requests. Interleaving keeps both sides on the same
    /// machine at the same moment, which a bound timed before the run cannot on a noisy VM.
    fn interleaved_efficiency(&self, _cores: usize) -> Option<f64> {
        None
    }
}

/// Drive `work` with `load` for `requests` requests.
#[allow(clippy::disallowed_methods, clippy::cast_precision_loss)] // a load tool measures wall time
pub async fn drive(work: Arc<dyn Work>, load: Load, requests: u64) -> Driven {
    let next = Arc::new(AtomicU64::new(0));
    let results: Arc<Mutex<Driven>> = Arc::new(Mutex::new(Driven {
        latencies: Vec::with_capacity(usize::try_from(requests).unwrap_or(0)),
        ..Driven::default()
    }));
    // one request's outcome, its latency, and (open loop) how late this tool started it
    let record = {
        let results = results.clone();
        move |o: Outcome, ms: f64, lag: Option<f64>| {
            let mut g = results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match o {
                Ok(()) => {
                    g.ok += 1;
                    g.latencies.push(ms);
                }
                Err(e) => *g.errors.entry(e).or_default() += 1,
            }
            g.send_lags.extend(lag);
        }
    };
    let start = Instant::now();
    match load {
        Load::Concurrency(c) => {
            let mut tasks = Vec::new();
            for w in 0..c.max(1) {
                let (work, next, record) = (work.clone(), next.clone(), record.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= requests {
                            break;
                        }
                        let t = Instant::now();
                        let o = work.send(i, w).await;
                        record(o, t.elapsed().as_secs_f64() * 1000.0, None);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        Load::Rate(r) => {
            let period = Duration::from_secs_f64(1.0 / r.max(1) as f64);
            let mut tasks = Vec::new();
            for i in 0..requests {
                let scheduled = start + period.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                let (work, record) = (work.clone(), record.clone());
                #[allow(clippy::cast_possible_truncation)]
                let worker = i as usize;
                tasks.push(tokio::spawn(async move {
                    // how late this tool itself starts the request: its own share of the latency
                    let lag = scheduled.elapsed().as_secs_f64() * 1000.0;
                    let o = work.send(i, worker).await;
                    // from the scheduled time: queueing on our side or the server's counts
                    record(o, scheduled.elapsed().as_secs_f64() * 1000.0, Some(lag));
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    let mut driven = std::mem::take(
        &mut *results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    driven.seconds = start.elapsed().as_secs_f64();
    driven
}

/// What [`drive`] measured.
#[derive(Debug, Default)]
pub struct Driven {
    /// successful requests
    pub ok: u64,
    /// failures by code
    pub errors: BTreeMap<String, u64>,
    /// wall time, seconds
    pub seconds: f64,
    /// latency of each success, ms
    pub latencies: Vec<f64>,
    /// `--rate`: how late this tool started each request after its scheduled time, ms
    pub send_lags: Vec<f64>,
}

/// Prepare and run `settings`; the full report.
#[allow(clippy::cast_precision_loss, clippy::disallowed_methods)] // a load tool measures wall time
pub async fn run(settings: &Settings) -> anyhow::Result<Report> {
    // idle memory before anything is asked of the server
    let rss_idle_kb = sum(&settings.server_pids, rss_kb);
    let prepared = prepare(settings).await?;
    // held until the end of this function
    let idle = match settings.idle_connections {
        0 => Vec::new(),
        n => {
            let base = settings.nodes.first().unwrap_or(&settings.issuer);
            idle_connections(base, n).await?
        }
    };
    let rss_with_idle = (!idle.is_empty())
        .then(|| sum(&settings.server_pids, rss_kb))
        .flatten();
    let crypto = crypto_bound(prepared.verifies, prepared.signs);
    let peak = Arc::new(AtomicU64::new(rss_idle_kb.unwrap_or(0)));
    let sampler = (!settings.server_pids.is_empty()).then(|| {
        let (peak, pids) = (peak.clone(), settings.server_pids.clone());
        tokio::spawn(async move {
            loop {
                if let Some(kb) = sum(&pids, rss_kb) {
                    peak.fetch_max(kb, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let server_cpu_before = sum(&settings.server_pids, cpu_seconds);
    let db_cpu_before = settings.db_pid.and_then(tree_cpu_seconds);
    let client_cpu_before = cpu_seconds(std::process::id());
    let db_samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let db_sampler = settings.db_path.clone().map(|path| {
        let samples = db_samples.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                let sample = (start.elapsed().as_secs_f64(), db_bytes(&path));
                samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(sample);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });
    let (stop_probe, probe_task) = match (&prepared.probe, &settings.probe) {
        (Some(url), Some((u, p))) => {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let task = tokio::spawn(probe_sign_ins(
                url.clone(),
                settings.redirect_uri.clone(),
                (u.clone(), p.clone()),
                settings.probe_address.clone(),
                stop.clone(),
            ));
            (Some(stop), Some(task))
        }
        _ => (None, None),
    };
    let Driven {
        ok,
        errors,
        seconds,
        latencies: lat,
        send_lags,
    } = drive(prepared.work.clone(), settings.load, settings.requests).await;
    let interleaved_efficiency = {
        let (work, cores) = (prepared.work.clone(), crypto.cores);
        tokio::task::spawn_blocking(move || work.interleaved_efficiency(cores))
            .await
            .ok()
            .flatten()
    };
    let probe = match (stop_probe, probe_task) {
        (Some(stop), Some(task)) => {
            stop.store(true, Ordering::SeqCst);
            task.await.ok()
        }
        _ => None,
    };
    if let Some(t) = db_sampler {
        t.abort();
    }
    let mut db_bytes = std::mem::take(
        &mut *db_samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if let Some(path) = &settings.db_path {
        db_bytes.push((seconds, self::db_bytes(path)));
    }
    let server_cpu = sum(&settings.server_pids, cpu_seconds)
        .zip(server_cpu_before)
        .map(|(a, b)| a - b);
    let db_cpu = settings
        .db_pid
        .and_then(tree_cpu_seconds)
        .zip(db_cpu_before)
        .map(|(a, b)| a - b);
    let client_cpu = cpu_seconds(std::process::id())
        .zip(client_cpu_before)
        .map(|(a, b)| a - b);
    let server_us = server_cpu.filter(|_| ok > 0).map(|c| c * 1e6 / ok as f64);
    let crypto_us =
        f64::from(crypto.verifies) * crypto.verify_us + f64::from(crypto.signs) * crypto.sign_us;
    if let Some(s) = sampler {
        s.abort();
    }
    let rps = ok as f64 / seconds.max(1e-9);
    Ok(Report {
        mode: settings.mode,
        issuer: if settings.mode == Mode::Verify {
            String::new()
        } else {
            settings.issuer.clone()
        },
        load: settings.load,
        requests: settings.requests,
        ok,
        errors,
        seconds,
        rps,
        latency_ms: latency(lat),
        send_lag_ms: (!send_lags.is_empty()).then(|| latency(send_lags)),
        efficiency: rps / crypto.bound_rps,
        interleaved_efficiency,
        crypto,
        rss_idle_kb,
        rss_peak_kb: rss_idle_kb.map(|_| peak.load(Ordering::SeqCst)),
        server_cpu_seconds: server_cpu,
        server_cpu_us_per_request: server_us,
        crypto_share_of_server_cpu: server_us.filter(|u| *u > 0.0).map(|u| crypto_us / u),
        db_cpu_seconds: db_cpu,
        db_cpu_us_per_request: db_cpu.filter(|_| ok > 0).map(|c| c * 1e6 / ok as f64),
        client_cpu_seconds: client_cpu,
        db_bytes,
        probe,
        idle_connections: (!idle.is_empty()).then(|| u32::try_from(idle.len()).unwrap_or(u32::MAX)),
        rss_with_idle_connections_kb: rss_with_idle,
    })
}

/// Open `n` keep-alive connections to the plain-http server at `base`, each after one
/// `HEAD /healthz` answered, 256 at a time; bounded by 60 s in all.
pub async fn idle_connections(base: &str, n: u32) -> anyhow::Result<Vec<tokio::net::TcpStream>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let url = url::Url::parse(base)?;
    anyhow::ensure!(
        url.scheme() == "http",
        "--idle-connections needs an http:// server"
    );
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
    let request = format!("HEAD /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let open = |addr: String, request: String| async move {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let k = s.read(&mut buf).await?;
            anyhow::ensure!(k > 0 && got.len() < 16_384, "no answer to HEAD /healthz");
            got.extend_from_slice(&buf[..k]);
        }
        anyhow::ensure!(got.starts_with(b"HTTP/1.1 200"), "HEAD /healthz: not 200");
        Ok::<_, anyhow::Error>(s)
    };
    let all = async {
        let mut held = Vec::with_capacity(n as usize);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            if set.len() >= 256 {
                if let Some(r) = set.join_next().await {
                    held.push(r??);
                }
            }
            set.spawn(open(addr.clone(), request.clone()));
        }
        while let Some(r) = set.join_next().await {
            held.push(r??);
        }
        Ok::<_, anyhow::Error>(held)
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .map_err(|_| anyhow::anyhow!("opening {n} idle connections took over 60 s"))?
}

/// `f` summed over `pids`; none when there are no pids or one has no answer.
fn sum<T: std::iter::Sum>(pids: &[u32], f: impl Fn(u32) -> Option<T>) -> Option<T> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

/// Bytes of an SQLite database and its write-ahead log.
pub fn db_bytes(path: &std::path::Path) -> u64 {
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(std::path::Path::new(&wal))
}
