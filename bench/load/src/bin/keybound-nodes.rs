//! `keybound-nodes`: issue 13's benchmark. One run, on this machine, of the load tool against
//! `keybound serve` on SQLite (one node), on PostgreSQL (one node) and on PostgreSQL (two nodes,
//! each on its own port, requests spread round-robin), every configuration started fresh by
//! the test kit (`cluster`, `pg`) with the same client, End-User and settings. PostgreSQL is a
//! throwaway cluster that writes durably (fsync on); `--synchronous-commit` makes each commit
//! wait for its WAL flush (PostgreSQL's default) instead of matching SQLite's WAL with
//! `synchronous=NORMAL`. Prints a Markdown table: rate, latency, and CPU per request of the
//! keybound processes and of PostgreSQL (postmaster and backends).
//!
//! ```text
//! cargo build --release --locked -p keybound -p keybound-load
//! target/release/keybound-nodes --keybound target/release/keybound
//! ```

use std::path::PathBuf;

use clap::Parser;
use keybound_load::{Load, Mode, Report, Settings};
use keybound_testkit::cluster::{Cluster, CLIENT, REDIRECT, USER};
use keybound_testkit::pg::TestPostgres;

/// Load against one SQLite node, one PostgreSQL node and two PostgreSQL nodes.
#[derive(Debug, Parser)]
#[command(name = "keybound-nodes", version)]
struct Args {
    /// the keybound binary (a release build)
    #[arg(long)]
    keybound: PathBuf,
    /// requests per run
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// requests in flight
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// PostgreSQL waits for the WAL flush of every commit (its default)
    #[arg(long)]
    synchronous_commit: bool,
}

struct Config {
    name: &'static str,
    postgres: bool,
    nodes: usize,
}

const CONFIGS: [Config; 3] = [
    Config {
        name: "1 node, SQLite",
        postgres: false,
        nodes: 1,
    },
    Config {
        name: "1 node, PostgreSQL",
        postgres: true,
        nodes: 1,
    },
    Config {
        name: "2 nodes, PostgreSQL",
        postgres: true,
        nodes: 2,
    },
];

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

fn row(config: &str, r: &Report) -> String {
    let total = r
        .server_cpu_us_per_request
        .map(|s| s + r.db_cpu_us_per_request.unwrap_or(0.0));
    format!(
        "| {config} | {:?} | {}/{} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |",
        r.mode,
        r.ok,
        r.requests,
        if r.errors.is_empty() {
            "none".to_owned()
        } else {
            format!("{:?}", r.errors)
        },
        r.rps,
        r.latency_ms.p50,
        r.latency_ms.p99,
        opt(r.server_cpu_us_per_request, 0),
        opt(r.db_cpu_us_per_request, 0),
        opt(total, 0),
        opt(
            total.map(|t| t
                / (f64::from(r.crypto.verifies) * r.crypto.verify_us
                    + f64::from(r.crypto.signs) * r.crypto.sign_us)),
            1
        ),
    )
}

async fn bench(args: &Args) -> anyhow::Result<Vec<String>> {
    let bin = args.keybound.to_string_lossy().into_owned();
    let pg = TestPostgres::start_durable(args.synchronous_commit);
    let mut rows = Vec::new();
    for config in &CONFIGS {
        let dir = tempfile::tempdir()?;
        let url = config.postgres.then(|| pg.fresh_database());
        let cluster = Cluster::start(
            &bin,
            &dir.path().join("data"),
            url.as_deref(),
            config.nodes,
            &[],
        )
        .await;
        for mode in [Mode::Code, Mode::Refresh] {
            let settings = Settings {
                server_pids: cluster.pids(),
                nodes: cluster.nodes(),
                db_pid: if config.postgres {
                    pg.server_pid()
                } else {
                    None
                },
                ..Settings::new(
                    &cluster.issuer,
                    (CLIENT, REDIRECT),
                    USER,
                    mode,
                    Load::Concurrency(args.concurrency),
                    args.requests,
                )
            };
            let report = keybound_load::run(&settings).await?;
            eprintln!("{}: {}", config.name, report.summary());
            rows.push(row(config.name, &report));
        }
    }
    Ok(rows)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = rt.block_on(bench(&args))?;
    println!(
        "{} requests per run, concurrency {}, PostgreSQL synchronous_commit {}\n",
        args.requests,
        args.concurrency,
        if args.synchronous_commit { "on" } else { "off" }
    );
    println!("| configuration | mode | ok | errors | req/s | p50 ms | p99 ms | keybound CPU µs/req | PostgreSQL CPU µs/req | total CPU µs/req | total ÷ crypto |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
