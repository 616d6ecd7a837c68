//! Configuration of `keybound serve` and `keybound admin`: built-in defaults, then
//! `keybound.toml` (or `--config FILE`), then `KEYBOUND_*` environment variables, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// The settings file (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// address to listen on
    pub listen: Option<String>,
    /// issuer identifier (externally visible base URL)
    pub issuer: Option<String>,
    /// data directory (SQLite database, key-encryption key, nonce secret)
    pub data_dir: Option<PathBuf>,
    /// database URL (default: SQLite in the data directory; `postgres://…` for many nodes)
    pub database_url: Option<keybound_jose::Secret>,
    /// PostgreSQL connections per node
    pub database_pool_size: Option<u32>,
    /// seconds a request waits for a PostgreSQL connection before failing (503 on /healthz)
    pub database_acquire_timeout: Option<u64>,
    /// `text` or `json`
    pub log_format: Option<String>,
    /// demand DPoP nonces from every client
    pub require_dpop_nonce: Option<bool>,
    /// accept client assertions addressed to the token endpoint URL (legacy clients)
    pub legacy_assertion_audience: Option<bool>,
    /// wrong passwords / client secrets per account or client before the back-off starts
    pub throttle_free_failures: Option<u32>,
    /// longest back-off after wrong passwords / client secrets, seconds
    pub throttle_max_delay: Option<u64>,
    /// passwords / client secrets hashed at once (blocking threads)
    pub password_hash_concurrency: Option<usize>,
    /// seconds a connection may take to send its request headers
    pub header_read_timeout: Option<u64>,
    /// seconds a request may take to send its body
    pub body_timeout: Option<u64>,
    /// open connections at most
    pub max_connections: Option<usize>,
    /// the management listener for `/metrics` (`off` to disable)
    pub metrics_listen: Option<String>,
    /// where the admin API answers: `management` (the default), `public`, `off`, or an
    /// address of its own (IP:PORT)
    pub admin_listen: Option<String>,
    /// an OpenTelemetry collector (OTLP/HTTP, e.g. `http://127.0.0.1:4318`): traces go there
    pub otlp_endpoint: Option<String>,
    /// a theme directory for the pages (theme.json, logo, stylesheet, messages/<lang>.json)
    pub theme_dir: Option<PathBuf>,
    /// security events: `stdout` (the default), `off`, or a file path (JSON lines)
    pub events: Option<String>,
    /// rotate the events file past this many bytes
    pub events_max_bytes: Option<u64>,
    /// rotated events files kept
    pub events_keep: Option<u32>,
    /// seconds between purges of expired rows (0: never)
    pub purge_interval: Option<u64>,
    /// rows deleted per purge statement
    pub purge_batch: Option<u32>,
    /// dynamic client registration without an initial access token
    pub open_registration: Option<bool>,
    /// every client must push its authorization requests (RFC 9126)
    pub require_pushed_authorization_requests: Option<bool>,
    /// lifetime of a pushed request's request_uri, seconds
    pub par_lifetime: Option<u64>,
    /// the profile every client is held to: `fapi2`, or none
    pub default_profile: Option<String>,
    /// Token Bound Authentication: `off`, `proxy` (a trusted TLS terminator forwards the IDs)
    /// or `native` (set by `tb_listen`)
    pub token_binding: Option<String>,
    /// a second listener: TLS 1.2 on OpenSSL with Token Binding (needs tls_cert and tls_key)
    pub tb_listen: Option<String>,
    /// `shared` (one multi-threaded runtime) or `per-core` (a single-threaded runtime per core,
    /// each accepting on its own `SO_REUSEPORT` socket)
    pub runtime: Option<String>,
    /// Device Bound Session Credentials: `offer` (default), `require` or `off`
    pub dbsc: Option<String>,
    /// lifetime of a DBSC bound cookie, seconds (the browser refreshes it with its key)
    pub dbsc_cookie_lifetime: Option<u64>,
    /// lifetime of ID-JAGs from token exchange, seconds
    pub id_jag_ttl: Option<u64>,
    /// how long a node keeps the signing keys it read from the store, seconds
    pub key_cache_ttl: Option<u64>,
    /// oldest subject ID Token accepted for token exchange (by its iat), seconds
    pub exchange_subject_max_age: Option<u64>,
    /// longest ID-JAG lifetime (exp − iat) accepted by the jwt-bearer grant, minutes
    pub jwt_bearer_max_lifetime: Option<u64>,
    /// proxies (addresses or networks) whose `Forwarded` / `X-Forwarded-For` name the client
    pub trusted_proxies: Option<Vec<String>>,
    /// PEM certificate chain for TLS
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS
    pub tls_key: Option<PathBuf>,
}

/// Where the admin API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    /// on the management listener (`metrics_listen`), beside `/metrics`
    Management,
    /// on the public listener too: only behind a gateway that restricts `/admin/`
    Public,
    /// nowhere (`keybound admin` then works on the database only)
    Off,
    /// on a listener of its own
    Own(SocketAddr),
}

/// The management listener's default port on loopback (the Prometheus exporter convention).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// Effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// listen address
    pub listen: SocketAddr,
    /// issuer
    pub issuer: String,
    /// data directory
    pub data_dir: PathBuf,
    /// database URL, if not the default SQLite file
    pub database_url: Option<keybound_jose::Secret>,
    /// PostgreSQL connections per node
    pub database_pool_size: u32,
    /// seconds a request waits for a PostgreSQL connection
    pub database_acquire_timeout: u64,
    /// JSON logs
    pub json_logs: bool,
    /// global DPoP nonce requirement
    pub require_dpop_nonce: bool,
    /// client assertions may name the token endpoint URL as `aud` (legacy RFC 7523 clients)
    pub legacy_assertion_audience: bool,
    /// brute-force throttling
    pub throttle: keybound_op::ThrottleConfig,
    /// request headers must arrive within this many seconds (slowloris)
    pub header_read_timeout: u64,
    /// a request body must arrive within this many seconds
    pub body_timeout: u64,
    /// open connections at most; more are closed at once
    pub max_connections: usize,
    /// where `/metrics` is served (`None`: nowhere), and whether the address was chosen
    /// explicitly (then failing to bind it is an error, not a warning)
    pub metrics_listen: Option<(SocketAddr, bool)>,
    /// where the admin API (`/admin/v1/`) answers
    pub admin_listen: AdminListen,
    /// where traces go (OTLP/HTTP), if anywhere
    pub otlp_endpoint: Option<String>,
    /// the pages' theme (loaded at start)
    pub theme: std::sync::Arc<keybound_server::theme::Theme>,
    /// where security events go
    pub events: keybound_server::EventOutput,
    /// proxies whose forwarding headers name the client's address
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// seconds between purges of expired rows (0: never)
    pub purge_interval: u64,
    /// rows deleted per purge statement
    pub purge_batch: u32,
    /// dynamic client registration without an initial access token
    pub open_registration: bool,
    /// every client must push its authorization requests (RFC 9126)
    pub require_par: bool,
    /// lifetime of a pushed request's request_uri, seconds
    pub par_lifetime: u64,
    /// every client is held to the FAPI 2.0 Security Profile
    pub fapi2: bool,
    /// Token Bound Authentication
    pub token_binding: keybound_server::TokenBindingMode,
    /// how requests are spread over the cores
    pub runtime: RuntimeKind,
    /// Device Bound Session Credentials
    pub dbsc: keybound_server::DbscMode,
    /// lifetime of a DBSC bound cookie, seconds
    pub dbsc_cookie_lifetime: u64,
    /// lifetime of ID-JAGs from token exchange, seconds
    pub id_jag_ttl: u64,
    /// how long a node keeps the signing keys it read from the store, seconds: a rotation by
    /// any node is seen by all within this time
    pub key_cache_ttl: u64,
    /// oldest subject ID Token accepted for token exchange, seconds
    pub exchange_subject_max_age: u64,
    /// longest ID-JAG lifetime accepted by the jwt-bearer grant, seconds (set in minutes)
    pub jwt_bearer_max_lifetime: u64,
    /// TLS certificate chain and key (PEM), when `serve` terminates TLS itself
    pub tls: Option<(PathBuf, PathBuf)>,
    /// the native Token Binding listener (TLS 1.2, OpenSSL), if any
    pub tb_listen: Option<SocketAddr>,
}

/// Flags of `keybound serve` that override the file and environment.
#[derive(Debug, Default, Clone)]
pub struct ServeFlags {
    /// `--listen`
    pub listen: Option<String>,
    /// `--issuer`
    pub issuer: Option<String>,
    /// `--tls-cert`
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`
    pub tls_key: Option<PathBuf>,
    /// `--tb-listen`
    pub tb_listen: Option<String>,
}

/// Flags that override everything else.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// settings file (default: ./keybound.toml if it exists)
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// data directory [env: KEYBOUND_DATA_DIR] (default ./keybound-data)
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

/// A number from the environment variable `name`, else the file's value.
fn number<T: std::str::FromStr>(name: &str, file_value: Option<T>) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(env(name)
        .map(|v| v.parse::<T>())
        .transpose()
        .with_context(|| format!("{name}: a whole number"))?
        .or(file_value))
}

/// An address (`10.0.0.7`, `::1`) or network (`10.0.0.0/8`) of `trusted_proxies`.
fn parse_net(s: &str) -> anyhow::Result<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            anyhow::anyhow!("trusted_proxies '{s}': expected an IP address or network (10.0.0.0/8)")
        })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Settings {
    /// Resolve settings from the file, the environment and the flags.
    pub fn load(o: &Overrides, flags: &ServeFlags) -> anyhow::Result<Self> {
        let listen_flag = flags.listen.as_deref();
        let issuer_flag = flags.issuer.as_deref();
        let path = o.config.clone().or_else(|| {
            let p = PathBuf::from("keybound.toml");
            p.exists().then_some(p)
        });
        let file: FileConfig = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = listen_flag
            .map(str::to_owned)
            .or_else(|| env("KEYBOUND_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen.parse().with_context(|| {
            format!("listen address '{listen}': expected IP:PORT, e.g. 127.0.0.1:8080")
        })?;
        let tls_cert = flags
            .tls_cert
            .clone()
            .or_else(|| env("KEYBOUND_TLS_CERT").map(PathBuf::from))
            .or(file.tls_cert);
        let tls_key = flags
            .tls_key
            .clone()
            .or_else(|| env("KEYBOUND_TLS_KEY").map(PathBuf::from))
            .or(file.tls_key);
        let tls = match (tls_cert, tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("TLS needs both a certificate (tls_cert) and a private key (tls_key)"),
        };
        let tb_listen = flags
            .tb_listen
            .clone()
            .or_else(|| env("KEYBOUND_TB_LISTEN"))
            .or(file.tb_listen)
            .map(|v| {
                v.parse::<SocketAddr>().with_context(|| {
                    format!("tb_listen '{v}': expected IP:PORT, e.g. 127.0.0.1:8443")
                })
            })
            .transpose()?;
        if tb_listen.is_some() && tls.is_none() {
            bail!("tb_listen needs tls_cert and tls_key (Token Binding runs over TLS)");
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        // browsers that use Token Binding reach the OP on the Token Binding listener, so by
        // default the issuer is there
        let default_issuer = match tb_listen {
            Some(tb) => format!("https://{tb}"),
            None => format!("{scheme}://{listen}"),
        };
        let issuer = issuer_flag
            .map(str::to_owned)
            .or_else(|| env("KEYBOUND_ISSUER"))
            .or(file.issuer)
            .unwrap_or(default_issuer);
        let issuer = issuer.trim_end_matches('/').to_owned();
        check_issuer(&issuer)?;
        let data_dir = o
            .data_dir
            .clone()
            .or_else(|| env("KEYBOUND_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("keybound-data"));
        let database_url = env("KEYBOUND_DATABASE_URL")
            .map(keybound_jose::Secret::new)
            .or(file.database_url);
        let database_pool_size =
            number("KEYBOUND_DATABASE_POOL_SIZE", file.database_pool_size)?.unwrap_or(16);
        if database_pool_size == 0 {
            bail!("database_pool_size: at least 1");
        }
        let database_acquire_timeout = number(
            "KEYBOUND_DATABASE_ACQUIRE_TIMEOUT",
            file.database_acquire_timeout,
        )?
        .unwrap_or(3);
        let json_logs = match env("KEYBOUND_LOG_FORMAT").or(file.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => bail!("log_format '{other}': expected 'text' or 'json'"),
        };
        let flag = |name: &str, file_value: Option<bool>| match env(name) {
            Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
            None => file_value.unwrap_or(false),
        };
        let require_dpop_nonce = flag("KEYBOUND_REQUIRE_DPOP_NONCE", file.require_dpop_nonce);
        let legacy_assertion_audience = flag(
            "KEYBOUND_LEGACY_ASSERTION_AUDIENCE",
            file.legacy_assertion_audience,
        );
        let mut throttle = keybound_op::ThrottleConfig::default();
        if let Some(n) = number(
            "KEYBOUND_THROTTLE_FREE_FAILURES",
            file.throttle_free_failures,
        )? {
            throttle.free_failures = n;
            throttle.free_failures_per_address = n.saturating_mul(4);
        }
        if let Some(d) = number("KEYBOUND_THROTTLE_MAX_DELAY", file.throttle_max_delay)? {
            throttle.max_delay = d;
        }
        if let Some(n) = number(
            "KEYBOUND_PASSWORD_HASH_CONCURRENCY",
            file.password_hash_concurrency,
        )? {
            if n == 0 {
                bail!("password_hash_concurrency: at least 1");
            }
            throttle.hash_concurrency = n;
        }
        let secs = |name: &str, file_value: Option<u64>, default: u64| {
            number(name, file_value).map(|v| v.unwrap_or(default))
        };
        let header_read_timeout =
            secs("KEYBOUND_HEADER_READ_TIMEOUT", file.header_read_timeout, 10)?;
        let body_timeout = secs("KEYBOUND_BODY_TIMEOUT", file.body_timeout, 30)?;
        let max_connections =
            number("KEYBOUND_MAX_CONNECTIONS", file.max_connections)?.unwrap_or(4096);
        if max_connections == 0 {
            bail!("max_connections: at least 1");
        }
        let metrics_listen = match env("KEYBOUND_METRICS_LISTEN").or(file.metrics_listen) {
            Some(v) if v == "off" => None,
            Some(v) => Some((
                v.parse::<SocketAddr>()
                    .with_context(|| format!("metrics_listen '{v}': expected IP:PORT or off"))?,
                true,
            )),
            None => Some((
                SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT)),
                false,
            )),
        };
        let admin_listen = match env("KEYBOUND_ADMIN_LISTEN")
            .or(file.admin_listen)
            .as_deref()
        {
            None | Some("management") => AdminListen::Management,
            Some("public") => AdminListen::Public,
            Some("off") => AdminListen::Off,
            Some(v) => AdminListen::Own(v.parse::<SocketAddr>().with_context(|| {
                format!("admin_listen '{v}': expected management, public, off or IP:PORT")
            })?),
        };
        let theme = match env("KEYBOUND_THEME_DIR")
            .map(PathBuf::from)
            .or(file.theme_dir)
        {
            Some(dir) => std::sync::Arc::new(keybound_server::theme::Theme::load(&dir)?),
            None => std::sync::Arc::default(),
        };
        let otlp_endpoint = env("KEYBOUND_OTLP_ENDPOINT")
            .or(file.otlp_endpoint)
            .filter(|e| !e.is_empty() && e != "off");
        if let Some(e) = &otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                bail!("otlp_endpoint '{e}': expected an http(s) URL, e.g. http://127.0.0.1:4318");
            }
        }
        let events = match env("KEYBOUND_EVENTS").or(file.events).as_deref() {
            None | Some("stdout") => keybound_server::EventOutput::Stdout,
            Some("off") => keybound_server::EventOutput::Off,
            Some(path) => keybound_server::EventOutput::File {
                path: path.into(),
                max_bytes: number("KEYBOUND_EVENTS_MAX_BYTES", file.events_max_bytes)?
                    .unwrap_or(100 << 20)
                    .max(4096),
                keep: number("KEYBOUND_EVENTS_KEEP", file.events_keep)?.unwrap_or(5),
            },
        };
        let purge_interval = secs("KEYBOUND_PURGE_INTERVAL", file.purge_interval, 60)?;
        let purge_batch = number("KEYBOUND_PURGE_BATCH", file.purge_batch)?.unwrap_or(1000);
        if purge_batch == 0 {
            bail!("purge_batch: at least 1");
        }
        let open_registration = flag("KEYBOUND_OPEN_REGISTRATION", file.open_registration);
        let require_par = flag(
            "KEYBOUND_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS",
            file.require_pushed_authorization_requests,
        );
        let par_lifetime = secs("KEYBOUND_PAR_LIFETIME", file.par_lifetime, 60)?;
        if !(5..=600).contains(&par_lifetime) {
            bail!("par_lifetime: between 5 and 600 seconds (RFC 9126 §2.2)");
        }
        let fapi2 = match env("KEYBOUND_DEFAULT_PROFILE")
            .or(file.default_profile)
            .as_deref()
        {
            None | Some("") => false,
            Some("fapi2") => true,
            Some(other) => bail!("default_profile '{other}': expected fapi2 (or leave it unset)"),
        };
        let token_binding = match env("KEYBOUND_TOKEN_BINDING")
            .or(file.token_binding)
            .as_deref()
        {
            None | Some("native") if tb_listen.is_some() => {
                keybound_server::TokenBindingMode::Native
            }
            None | Some("off") => keybound_server::TokenBindingMode::Off,
            Some("native") => bail!("token_binding 'native' needs tb_listen (the listener that verifies it)"),
            Some("proxy") if tb_listen.is_some() => bail!(
                "token_binding 'proxy' with tb_listen: choose one (the native listener verifies Token Binding itself; proxy trusts a terminator's headers)"
            ),
            Some("proxy") => keybound_server::TokenBindingMode::Proxy,
            Some(other) => bail!(
                "token_binding '{other}': expected off, proxy (a trusted TLS terminator forwards the Token Binding IDs) or native (with tb_listen)"
            ),
        };
        let runtime = match env("KEYBOUND_RUNTIME").or(file.runtime).as_deref() {
            None | Some("shared") => RuntimeKind::Shared,
            Some("per-core") if tls.is_some() || tb_listen.is_some() => bail!(
                "runtime 'per-core' serves plain http only (put it behind the TLS terminator)"
            ),
            Some("per-core") => RuntimeKind::PerCore,
            Some(other) => bail!("runtime '{other}': expected shared or per-core"),
        };
        let dbsc = match env("KEYBOUND_DBSC").or(file.dbsc).as_deref() {
            None | Some("offer") => keybound_server::DbscMode::Offer,
            Some("off") => keybound_server::DbscMode::Off,
            Some("require") => keybound_server::DbscMode::Require,
            Some(other) => bail!("dbsc '{other}': expected offer, require or off"),
        };
        let dbsc_cookie_lifetime = secs(
            "KEYBOUND_DBSC_COOKIE_LIFETIME",
            file.dbsc_cookie_lifetime,
            600,
        )?;
        if !(1..=86_400).contains(&dbsc_cookie_lifetime) {
            bail!("dbsc_cookie_lifetime: between 1 and 86400 seconds (minutes are usual)");
        }
        let id_jag_ttl = secs("KEYBOUND_ID_JAG_TTL", file.id_jag_ttl, 300)?;
        if !(1..=3600).contains(&id_jag_ttl) {
            bail!("id_jag_ttl: between 1 and 3600 seconds (the draft suggests 300)");
        }
        let key_cache_ttl = secs("KEYBOUND_KEY_CACHE_TTL", file.key_cache_ttl, 60)?;
        if !(1..=3600).contains(&key_cache_ttl) {
            bail!("key_cache_ttl: between 1 and 3600 seconds");
        }
        let exchange_subject_max_age = secs(
            "KEYBOUND_EXCHANGE_SUBJECT_MAX_AGE",
            file.exchange_subject_max_age,
            600,
        )?;
        let minutes = number(
            "KEYBOUND_JWT_BEARER_MAX_LIFETIME",
            file.jwt_bearer_max_lifetime,
        )?
        .unwrap_or(10);
        if !(1..=60).contains(&minutes) {
            bail!("jwt_bearer_max_lifetime: between 1 and 60 minutes");
        }
        let jwt_bearer_max_lifetime = minutes * 60;
        let trusted_proxies = match env("KEYBOUND_TRUSTED_PROXIES") {
            Some(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
            None => file.trusted_proxies.unwrap_or_default(),
        }
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_net(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Settings {
            listen,
            issuer,
            data_dir,
            database_url,
            database_pool_size,
            database_acquire_timeout,
            json_logs,
            require_dpop_nonce,
            legacy_assertion_audience,
            throttle,
            header_read_timeout,
            body_timeout,
            max_connections,
            metrics_listen,
            admin_listen,
            otlp_endpoint,
            theme,
            events,
            trusted_proxies,
            purge_interval,
            purge_batch,
            open_registration,
            require_par,
            par_lifetime,
            fapi2,
            token_binding,
            runtime,
            dbsc,
            dbsc_cookie_lifetime,
            id_jag_ttl,
            key_cache_ttl,
            exchange_subject_max_age,
            jwt_bearer_max_lifetime,
            tls,
            tb_listen,
        })
    }

    /// Settings for admin commands (only the data directory and database matter).
    pub fn for_admin(o: &Overrides) -> anyhow::Result<Self> {
        Self::load(o, &ServeFlags::default())
    }

    /// The SQLite database file in the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("keybound.db")
    }
}

/// How `serve` spreads requests over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// one multi-threaded tokio runtime (work stealing between its threads)
    Shared,
    /// one single-threaded runtime per core, each accepting its own connections on an
    /// `SO_REUSEPORT` socket: a request never leaves the thread that accepted it
    PerCore,
}

/// An `http` issuer is only allowed on loopback; everything else must be `https`.
pub fn check_issuer(issuer: &str) -> anyhow::Result<()> {
    let (scheme, rest) = issuer
        .split_once("://")
        .with_context(|| format!("issuer '{issuer}' must be an absolute https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => bail!("issuer '{issuer}': plain http is only allowed on loopback (127.0.0.1, ::1, localhost); use https"),
        _ => bail!("issuer '{issuer}' must use https"),
    }
}

/// Create the data directory (mode 0700 on Unix).
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 700 {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_issuer_only_on_loopback() {
        assert!(check_issuer("http://127.0.0.1:8080").is_ok());
        assert!(check_issuer("http://localhost:8080").is_ok());
        assert!(check_issuer("http://[::1]:8080").is_ok());
        assert!(check_issuer("https://op.example").is_ok());
        assert!(check_issuer("http://op.example").is_err());
        assert!(check_issuer("http://10.0.0.1:8080").is_err());
        assert!(check_issuer("ftp://op.example").is_err());
        assert!(check_issuer("op.example").is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        assert_eq!(parse_net("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_net("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        let e = parse_net("proxy.internal").unwrap_err().to_string();
        assert!(e.contains("trusted_proxies 'proxy.internal'"), "{e}");
    }
}
