//! `keybound-load`: see the library documentation and docs/performance.md.

use clap::Parser;
use keybound_load::{Load, Mode, Settings};

/// Load generator for OpenID Providers (keybound or any peer with DPoP).
#[derive(Debug, Parser)]
#[command(name = "keybound-load", version)]
struct Args {
    /// what to measure
    #[arg(long, value_enum)]
    mode: Mode,
    /// issuer URL of the OP (not needed for --mode verify)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// public client registered at the OP with --redirect-uri
    #[arg(long, default_value = "demo-public")]
    client_id: String,
    /// registered redirect URI (never contacted)
    #[arg(long, default_value = "http://127.0.0.1:8081/callback")]
    redirect_uri: String,
    /// End-User to sign in as
    #[arg(long, default_value = "demo")]
    username: String,
    /// their password
    #[arg(long, env = "KEYBOUND_LOAD_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// requests to send
    #[arg(long, default_value_t = 2000)]
    requests: u64,
    /// requests in flight (closed loop)
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// requests per second (open loop)
    #[arg(long)]
    rate: Option<u64>,
    /// the server's pid: sample its resident memory and CPU (repeatable: one per node, summed)
    #[arg(long)]
    server_pid: Vec<u32>,
    /// a node's base URL: token and userinfo requests go round-robin to the nodes, proofs
    /// name the issuer (repeatable; default: the issuer's endpoints)
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// the database server's pid (PostgreSQL's postmaster): report its CPU per request
    #[arg(long)]
    db_pid: Option<u32>,
    /// send dpop_jkt without bound_key (for OPs without Key Binding)
    #[arg(long)]
    plain_dpop: bool,
    /// print the report as JSON
    #[arg(long)]
    json: bool,
    /// code, refresh: do not run; write the timed requests, pre-minted with fresh proofs, to
    /// this file for a replaying load generator (`wrk -s bench/wrk-replay.lua`)
    #[arg(long)]
    emit_requests: Option<std::path::PathBuf>,
    /// the OP's SQLite database file: sample its size during the run
    #[arg(long)]
    db_path: Option<std::path::PathBuf>,
    /// guess: another End-User who signs in during the run
    #[arg(long, requires = "probe_password")]
    probe_username: Option<String>,
    /// guess: their password
    #[arg(long, env = "KEYBOUND_LOAD_PROBE_PASSWORD", hide_env_values = true)]
    probe_password: Option<String>,
    /// guess: X-Forwarded-For of the guesser (for an OP that trusts 127.0.0.1 as a proxy)
    #[arg(long)]
    guesser_address: Option<String>,
    /// guess: X-Forwarded-For of the other End-User
    #[arg(long)]
    probe_address: Option<String>,
    /// the client's secret (exchange, jwt-bearer: a confidential client with an exchange policy)
    #[arg(long, env = "KEYBOUND_LOAD_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// exchange, jwt-bearer: the resource AS issuer the ID-JAGs are for
    #[arg(long)]
    audience: Option<String>,
    /// jwt-bearer: the identity provider where the ID-JAG is made (--issuer is the resource AS)
    #[arg(long)]
    idp_issuer: Option<String>,
    /// jwt-bearer: the client's id at the resource AS
    #[arg(long, requires = "as_client_secret")]
    as_client_id: Option<String>,
    /// jwt-bearer: the client's secret at the resource AS
    #[arg(long, env = "KEYBOUND_LOAD_AS_CLIENT_SECRET", hide_env_values = true)]
    as_client_secret: Option<String>,
    /// hold this many keep-alive connections idle through the run (each after one request);
    /// the server's limit (max_connections) and both processes' open-file limits must allow it
    #[arg(long, default_value_t = 0)]
    idle_connections: u32,
}

impl Args {
    fn settings(self) -> anyhow::Result<(Settings, Output)> {
        let load = match (self.concurrency, self.rate) {
            (_, Some(0)) => anyhow::bail!("--rate must be at least 1"),
            (_, Some(r)) => Load::Rate(r),
            (Some(0), None) => anyhow::bail!("--concurrency must be at least 1"),
            (Some(c), None) => Load::Concurrency(c),
            (None, None) => Load::Concurrency(32),
        };
        if self.requests == 0 {
            anyhow::bail!("--requests must be at least 1");
        }
        let needs_password = !matches!(self.mode, Mode::Verify | Mode::Junk | Mode::Guess);
        if needs_password && self.password.is_none() {
            anyhow::bail!("--password (or KEYBOUND_LOAD_PASSWORD) is needed to sign in");
        }
        Ok((
            Settings {
                issuer: self.issuer,
                client_id: self.client_id,
                redirect_uri: self.redirect_uri,
                username: self.username,
                password: self.password.unwrap_or_default(),
                mode: self.mode,
                load,
                requests: self.requests,
                server_pids: self.server_pid,
                nodes: self.nodes,
                db_pid: self.db_pid,
                key_binding: !self.plain_dpop,
                db_path: self.db_path,
                probe: self.probe_username.zip(self.probe_password),
                guesser_address: self.guesser_address,
                probe_address: self.probe_address,
                client_secret: self.client_secret,
                audience: self.audience,
                idp_issuer: self.idp_issuer,
                as_client: self.as_client_id.zip(self.as_client_secret),
                idle_connections: self.idle_connections,
            },
            match self.emit_requests {
                Some(path) => Output::Requests(path),
                None if self.json => Output::Json,
                None => Output::Summary,
            },
        ))
    }
}

/// What a run produces.
enum Output {
    Summary,
    Json,
    /// the pre-minted requests, not a run
    Requests(std::path::PathBuf),
}

fn main() -> std::process::ExitCode {
    let result = Args::parse().settings().and_then(|(settings, output)| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        match output {
            Output::Requests(path) => {
                let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
                let n = rt.block_on(keybound_load::emit_requests(&settings, &mut file))?;
                std::io::Write::flush(&mut file)?;
                eprintln!("{n} requests written to {}", path.display());
            }
            Output::Json => {
                let report = rt.block_on(keybound_load::run(&settings))?;
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Output::Summary => {
                let report = rt.block_on(keybound_load::run(&settings))?;
                println!("{}", report.summary());
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
