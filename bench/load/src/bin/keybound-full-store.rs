//! `keybound-full-store`: how the cost of a request grows with the store (issue 25 item 3).
//!
//! For SQLite and for PostgreSQL, one `keybound serve` node started fresh by the test kit is
//! measured with the load tool on its empty store, then the store is filled through the store
//! traits from this process — 100,000 End-Users, 1,000,000 live refresh tokens (each its own
//! grant and family) and 1,000,000 DPoP replay rows, all live when the fill ends (they expire
//! about as long after it as the fill took, plus a proof's 61-second window) — and measured
//! again while they are. Then, once they have expired, one more run at
//! 1,000 requests/s while the node's purge (every 5 s here) deletes them: the purge's cost is
//! what that run loses against the full store's.
//!
//! Each measurement is the load tool's closed loop (server CPU per request) and a fixed rate of
//! 1,000 requests/s (p99), for the key-bound code exchange and refresh. Prints a Markdown table.
//!
//! ```text
//! cargo build --release --locked -p keybound -p keybound-load
//! target/release/keybound-full-store --keybound target/release/keybound
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use keybound_load::{Load, Mode, Report, Settings};
use keybound_store::{Kek, Store, TokenHash, User};
use keybound_testkit::cluster::{Cluster, CLIENT, REDIRECT, USER};
use keybound_testkit::pg::TestPostgres;

/// Measure on an empty store, fill it, measure again, and measure while the purge runs.
#[derive(Debug, Parser)]
#[command(name = "keybound-full-store", version)]
struct Args {
    /// the keybound binary (a release build)
    #[arg(long)]
    keybound: PathBuf,
    /// requests per closed-loop run
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// requests in flight in the closed-loop runs
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// End-Users to add
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// live refresh tokens to add
    #[arg(long, default_value_t = 1_000_000)]
    refresh_tokens: u32,
    /// DPoP replay rows to add
    #[arg(long, default_value_t = 1_000_000)]
    replay_rows: u32,
    /// only this backend (sqlite or postgres); default both
    #[arg(long)]
    only: Option<String>,
}

/// Writers at once while filling.
const FILL_TASKS: u32 = 64;

/// After the fill, before measuring: the node's checkpoints catch up with the fill's log
/// (SQLite), and `VACUUM ANALYZE` has run (PostgreSQL), so the measurement sees the store
/// grown, not the fill's aftermath.
const SETTLE: Duration = Duration::from_secs(20);

#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `n` items, `f(i)` each, `FILL_TASKS` at a time; the seconds it took.
#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
async fn fill_with<F, Fut>(n: u32, f: F) -> anyhow::Result<f64>
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = keybound_store::Result<()>> + Send,
{
    let start = Instant::now();
    let f = Arc::new(f);
    let mut set = tokio::task::JoinSet::new();
    for k in 0..FILL_TASKS {
        let f = f.clone();
        set.spawn(async move {
            let mut i = k;
            while i < n {
                f(i).await?;
                i += FILL_TASKS;
            }
            Ok::<_, keybound_store::StoreError>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// What filling took, seconds per kind.
struct Filled {
    users: f64,
    refresh: f64,
    replay: f64,
    /// when the replay rows expire
    replay_expires_at: u64,
}

async fn fill(store: Arc<dyn Store>, args: &Args) -> anyhow::Result<Filled> {
    // one argon2id PHC string for everyone (they never sign in; its shape is what is stored)
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                6J4pQq0wRk3nRqj2jv0v3bHcXv1e0q9m2jv7x7c3cGs"
        .to_owned();
    let now = unix_now();
    let s = store.clone();
    let users = fill_with(args.users, move |i| {
        let (s, hash) = (s.clone(), hash.clone());
        async move {
            let user = User {
                email: Some(format!("user{i}@fill.example")),
                email_verified: true,
                ..User::new(
                    &format!("fill-sub-{i}"),
                    &format!("fill-user-{i}"),
                    hash,
                    now,
                )
            };
            s.put_user(&user).await
        }
    })
    .await?;
    eprintln!("  {} End-Users in {users:.1} s", args.users);
    let s = store.clone();
    let refresh = fill_with(args.refresh_tokens, move |i| {
        let s = s.clone();
        async move {
            let token = keybound_store::RefreshToken {
                created_at: now,
                expires_at: now + 30 * 86_400,
                sid: None,
                ..keybound_testkit::conformance::refresh(
                    &format!("fill-f{i}"),
                    &format!("fill-g{i}"),
                )
            };
            s.insert_refresh(&TokenHash::of(&format!("fill-rt-{i}")), &token)
                .await
        }
    })
    .await?;
    eprintln!("  {} refresh tokens in {refresh:.1} s", args.refresh_tokens);
    // last, so they are live when the measurement starts: each expires at the end of the
    // window (61 s) of a proof accepted as the fill ends, estimated from the refresh tokens'
    // rate (a replay row is one statement, a refresh token two and a transaction)
    let replay_now = unix_now();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // seconds, rounded up
    let fill_secs = (refresh * f64::from(args.replay_rows) / f64::from(args.refresh_tokens.max(1)))
        .ceil() as u64;
    let replay_expires_at = replay_now + fill_secs + SETTLE.as_secs() + 61;
    let s = store.clone();
    let replay = fill_with(args.replay_rows, move |i| {
        let s = s.clone();
        async move {
            let digest = keybound_jose::sha256(format!("fill-proof-{i}").as_bytes());
            s.check_and_insert(&digest, replay_expires_at, replay_now)
                .await
                .map(|_| ())
        }
    })
    .await?;
    eprintln!("  {} replay rows in {replay:.1} s", args.replay_rows);
    Ok(Filled {
        users,
        refresh,
        replay,
        replay_expires_at,
    })
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

fn row(backend: &str, store: &str, r: &Report) -> String {
    let crypto = f64::from(r.crypto.verifies) * r.crypto.verify_us
        + f64::from(r.crypto.signs) * r.crypto.sign_us;
    let total = r
        .server_cpu_us_per_request
        .map(|s| s + r.db_cpu_us_per_request.unwrap_or(0.0));
    format!(
        "| {backend} | {store} | {:?} | {} | {}/{} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
        r.mode,
        load_label(r.load),
        r.ok,
        r.requests,
        r.rps,
        r.latency_ms.p50,
        r.latency_ms.p99,
        opt(r.server_cpu_us_per_request, 0),
        opt(r.db_cpu_us_per_request, 0),
        opt(total.map(|t| t / crypto), 2),
    )
}

/// One load-tool run against the node, its row added to `rows` (and printed at once): a run
/// the node cannot serve (503s while signing in) is a result, not the end.
#[allow(clippy::too_many_arguments)] // one call per measurement, every argument named there
async fn one_run(
    cluster: &Cluster,
    db_pid: Option<u32>,
    backend: &str,
    state: &str,
    mode: Mode,
    load: Load,
    requests: u64,
    rows: &mut Vec<String>,
) {
    let settings = Settings {
        server_pids: cluster.pids(),
        nodes: cluster.nodes(),
        db_pid,
        ..Settings::new(
            &cluster.issuer,
            (CLIENT, REDIRECT),
            USER,
            mode,
            load,
            requests,
        )
    };
    match keybound_load::run(&settings).await {
        Ok(report) => {
            eprintln!("{backend}, {state}: {}", report.summary());
            rows.push(row(backend, state, &report));
        }
        Err(e) => {
            eprintln!("{backend}, {state}, {mode:?}: failed: {e:#}");
            rows.push(format!(
                "| {backend} | {state} | {mode:?} | {} | failed: {e} | | | | | | |",
                load_label(load)
            ));
        }
    }
    println!("{}", rows.last().map_or("", String::as_str));
}

fn load_label(load: Load) -> String {
    match load {
        Load::Rate(n) => format!("{n}/s"),
        Load::Concurrency(c) => format!("closed, {c}"),
    }
}

/// The four measurements of one store state: code and refresh, closed loop and 1,000/s.
async fn measure(
    args: &Args,
    cluster: &Cluster,
    db_pid: Option<u32>,
    backend: &str,
    state: &str,
    rows: &mut Vec<String>,
) {
    for mode in [Mode::Code, Mode::Refresh] {
        for (load, requests) in [
            (Load::Concurrency(args.concurrency), args.requests),
            (Load::Rate(1000), 10_000),
        ] {
            one_run(cluster, db_pid, backend, state, mode, load, requests, rows).await;
        }
    }
}

async fn bench(args: &Args) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let bin = args.keybound.to_string_lossy().into_owned();
    let mut rows = Vec::new();
    let mut fills = Vec::new();
    let pg = TestPostgres::start_durable(false);
    for backend in ["SQLite", "PostgreSQL"] {
        if args
            .only
            .as_deref()
            .is_some_and(|o| !backend.to_lowercase().starts_with(&o.to_lowercase()))
        {
            continue;
        }
        let postgres = backend == "PostgreSQL";
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let url = postgres.then(|| pg.fresh_database());
        let cluster = Cluster::start(
            &bin,
            &data,
            url.as_deref(),
            1,
            &[("KEYBOUND_PURGE_INTERVAL", "5")],
        )
        .await;
        let db_pid = if postgres { pg.server_pid() } else { None };
        measure(args, &cluster, db_pid, backend, "empty", &mut rows).await;
        // the store as the node sees it, opened beside it (SQLite: the same file, WAL)
        let (kek, _) = Kek::generate()?;
        let store: Arc<dyn Store> = match &url {
            Some(url) => Arc::new(
                keybound_store_postgres::PgStore::connect(
                    url,
                    kek,
                    keybound_store_postgres::PgOptions {
                        max_connections: FILL_TASKS,
                        ..keybound_store_postgres::PgOptions::default()
                    },
                )
                .await?,
            ),
            None => Arc::new(
                keybound_store_sqlite::SqliteStore::open(&data.join("keybound.db"), kek).await?,
            ),
        };
        eprintln!("{backend}: filling");
        let filled = fill(store.clone(), args).await?;
        fills.push(format!(
            "| {backend} | {} in {:.0} s | {} in {:.0} s | {} in {:.0} s |",
            args.users,
            filled.users,
            args.refresh_tokens,
            filled.refresh,
            args.replay_rows,
            filled.replay
        ));
        drop(store);
        if let Some(url) = &url {
            pg.psql(url, "VACUUM ANALYZE");
        }
        tokio::time::sleep(SETTLE).await;
        measure(args, &cluster, db_pid, backend, "full", &mut rows).await;
        // the replay rows expire; the next purge pass (every 5 s) deletes them during this run
        let wait = filled.replay_expires_at.saturating_sub(unix_now()) + 1;
        eprintln!("{backend}: waiting {wait} s for the replay rows to expire");
        tokio::time::sleep(Duration::from_secs(wait)).await;
        one_run(
            &cluster,
            db_pid,
            backend,
            "full, purge running",
            Mode::Refresh,
            Load::Rate(1000),
            20_000,
            &mut rows,
        )
        .await;
    }
    Ok((rows, fills))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (rows, fills) = rt.block_on(bench(&args))?;
    println!(
        "closed loop: {} requests, concurrency {}; fixed rate: 10,000 requests at 1,000/s (the purge run: 20,000)\n",
        args.requests, args.concurrency
    );
    println!("| backend | store | mode | load | ok | req/s | p50 ms | p99 ms | keybound CPU µs/req | PostgreSQL CPU µs/req | total ÷ crypto |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!("\n| backend | End-Users | refresh tokens | replay rows |\n|---|---|---|---|");
    for f in fills {
        println!("{f}");
    }
    Ok(())
}
