//! `keybound serve`: the OpenID Provider on SQLite in a data directory, ready in well under a
//! second once built; `--demo` provisions a demo user and two clients on first start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use keybound_op::{password, OpConfig, OsRandomness, Provider};
use keybound_proto::dpop::NonceSource;
use keybound_store::{Client, ClientAuthMethod, Kek, Store, User};
use keybound_store_sqlite::SqliteStore;
use keybound_verify::SystemClock;

use crate::config::{ensure_data_dir, AdminListen, Settings};

/// Open the store for `settings` (creating the data directory and key-encryption key).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    ensure_data_dir(&settings.data_dir)?;
    let kek = Kek::load_or_create(&settings.data_dir)?;
    let url = settings
        .database_url
        .as_ref()
        .map(keybound_jose::Secret::expose);
    let store: Arc<dyn Store> = match url {
        Some(url) if url.starts_with("sqlite:") => Arc::new(SqliteStore::open_url(url, kek).await?),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let options = keybound_store_postgres::PgOptions {
                max_connections: settings.database_pool_size,
                acquire_timeout: Duration::from_secs(settings.database_acquire_timeout),
            };
            Arc::new(
                keybound_store_postgres::PgStore::connect(url, kek, options)
                    .await
                    .context("connecting to PostgreSQL (database_url)")?,
            )
        }
        Some(_) => anyhow::bail!(
            "database_url: expected sqlite:… or postgres://… (the URL is not repeated here: it may hold a password)"
        ),
        None => Arc::new(
            SqliteStore::open(&settings.db_path(), kek)
                .await
                .with_context(|| format!("opening {}", settings.db_path().display()))?,
        ),
    };
    Ok(store)
}

fn nonce_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(v) = std::env::var("KEYBOUND_DPOP_NONCE_SECRET") {
        let b = keybound_jose::b64::decode(v.trim())
            .context("KEYBOUND_DPOP_NONCE_SECRET: base64url")?;
        anyhow::ensure!(
            b.len() >= 32,
            "KEYBOUND_DPOP_NONCE_SECRET: expected at least 32 bytes"
        );
        return Ok(b);
    }
    let path = dir.join("dpop-nonce.key");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(keybound_jose::b64::decode(t.trim())?);
    }
    let secret = keybound_store::create_private_once(&path, &keybound_jose::random_b64(32))?;
    Ok(keybound_jose::b64::decode(secret.trim())?)
}

/// Build the provider for `settings` over `store`.
pub fn provider(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Provider> {
    let mut cfg = OpConfig::new(&settings.issuer);
    cfg.dpop_nonces = Some(NonceSource::new(&nonce_secret(&settings.data_dir)?, 60, 4)?);
    cfg.require_dpop_nonce = settings.require_dpop_nonce;
    cfg.legacy_assertion_audience = settings.legacy_assertion_audience;
    cfg.throttle = settings.throttle;
    cfg.id_jag_ttl = settings.id_jag_ttl;
    cfg.key_cache_ttl = settings.key_cache_ttl;
    cfg.open_registration = settings.open_registration;
    cfg.require_par = settings.require_par;
    cfg.par_ttl = settings.par_lifetime;
    cfg.fapi2 = settings.fapi2;
    cfg.exchange_subject_max_age = settings.exchange_subject_max_age;
    cfg.jwt_bearer_max_lifetime = settings.jwt_bearer_max_lifetime;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("an HTTP client for trusted issuers' keys")?;
    Ok(
        Provider::new(cfg, store, Arc::new(SystemClock), Arc::new(OsRandomness))
            .with_issuer_keys(Arc::new(keybound_server::HttpIssuerKeys::new(http))),
    )
}

/// Demo data: created on first start with `--demo` (when there are no users yet).
async fn provision_demo(p: &Provider, settings: &Settings) -> anyhow::Result<Option<String>> {
    let store = p.store();
    if !store.users().await?.is_empty() {
        return Ok(None);
    }
    let now = p.now();
    let user_password =
        std::env::var("KEYBOUND_DEMO_PASSWORD").unwrap_or_else(|_| keybound_jose::random_b64(9));
    store
        .put_user(&User {
            name: Some("Demo User".into()),
            email: Some("demo@example.com".into()),
            email_verified: true,
            ..User::new(
                &keybound_jose::random_b64(12),
                "demo",
                password::hash(&user_password),
                now,
            )
        })
        .await?;
    let redirects = vec![
        "http://127.0.0.1:8081/callback".to_owned(),
        "http://localhost:8081/callback".to_owned(),
    ];
    store
        .put_client(&Client {
            name: "Demo App (public)".into(),
            redirect_uris: redirects.clone(),
            ..Client::new("demo-public", ClientAuthMethod::None, now)
        })
        .await?;
    let secret = keybound_jose::random_b64(24);
    store
        .put_client(&Client {
            name: "Demo Service (confidential)".into(),
            secret_hash: Some(password::hash(&secret)),
            redirect_uris: redirects,
            ..Client::new(
                "demo-confidential",
                ClientAuthMethod::ClientSecretBasic,
                now,
            )
        })
        .await?;
    Ok(Some(format!(
        "demo data created (shown once; stored hashed):\n\
         \x20 user:    demo / {user_password}\n\
         \x20 public client:       demo-public (redirect http://127.0.0.1:8081/callback, PKCE + DPoP)\n\
         \x20 confidential client: demo-confidential / {secret}\n\
         \x20 try: {iss}/authorize?response_type=code&client_id=demo-public&redirect_uri=http%3A%2F%2F127.0.0.1%3A8081%2Fcallback\
&scope=openid%20profile%20bound_key&dpop_jkt=<your key's thumbprint>&code_challenge=<S256>&code_challenge_method=S256&state=x&nonce=y",
        iss = settings.issuer
    )))
}

/// Run the server until Ctrl-C or SIGTERM.
pub async fn run(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let events = Arc::new(keybound_server::EventLog::new(
        settings.events.clone(),
        Arc::new(SystemClock),
    ));
    let provider = provider(&settings, store)?.with_events(events.clone());
    provider
        .ensure_signing_keys()
        .await
        .map_err(|e| anyhow::anyhow!("signing keys: {e}"))?;
    if demo {
        if let Some(text) = provision_demo(&provider, &settings).await? {
            println!("{text}");
        }
    }
    let state = keybound_server::AppState::with_config(
        provider,
        keybound_server::ServerConfig {
            trusted_proxies: settings.trusted_proxies.clone(),
            token_binding: settings.token_binding,
            dbsc: settings.dbsc,
            dbsc_cookie_lifetime: settings.dbsc_cookie_lifetime,
            admin_api: match settings.admin_listen {
                AdminListen::Management => keybound_server::AdminApi::Management,
                AdminListen::Public => keybound_server::AdminApi::Public,
                AdminListen::Off | AdminListen::Own(_) => keybound_server::AdminApi::Off,
            },
            events: Some(events),
            theme: settings.theme.clone(),
        },
    );
    management(&settings, keybound_server::management_router(state.clone()))?;
    if let AdminListen::Own(addr) = settings.admin_listen {
        let router = keybound_server::admin::router(
            state.clone(),
            keybound_server::admin::AdminOrigin::FromHost,
        );
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding admin_listen {addr}"))?;
        listener.set_nonblocking(true)?;
        tokio::spawn(async move {
            if let Err(e) = axum_server::from_tcp(listener)
                .serve(router.into_make_service())
                .await
            {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        tracing::info!(%addr, "admin API");
    }
    if settings.purge_interval > 0 {
        keybound_server::spawn_purge(
            state.clone(),
            Duration::from_secs(settings.purge_interval),
            settings.purge_batch,
        );
    }
    let app =
        keybound_server::router(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_secs(settings.body_timeout),
        ));
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("binding {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown().await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let limit = crate::conn_limit::ConnectionLimit::new(
        settings.max_connections,
        Duration::from_secs(settings.header_read_timeout),
    );
    if let (Some(addr), Some((cert, key))) = (settings.tb_listen, &settings.tls) {
        token_binding_listener(
            &settings,
            addr,
            cert,
            key,
            app.clone(),
            limit.clone(),
            &handle,
        )?;
    }
    let service = app
        .clone()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Some((cert, key)) = &settings.tls {
        // Several crates may try; the first installation wins and any is aws-lc-rs.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "loading TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        ready(&settings, " (TLS)");
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(limit);
        let mut server = axum_server::from_tcp(listener).acceptor(acceptor);
        limits(server.http_builder(), settings.header_read_timeout);
        server.handle(handle).serve(service).await
    } else if settings.runtime == crate::config::RuntimeKind::PerCore {
        drop(listener);
        ready(&settings, " (a runtime per core)");
        per_core(&settings, app, limit, handle).await
    } else {
        ready(&settings, "");
        let mut server = axum_server::from_tcp(listener).acceptor(limit);
        limits(server.http_builder(), settings.header_read_timeout);
        server.handle(handle).serve(service).await
    }
    .context("server")?;
    tracing::info!("stopped");
    Ok(())
}

/// `runtime = "per-core"`: one single-threaded runtime per core, each with its own
/// `SO_REUSEPORT` listener on the same address, so the kernel spreads connections over the
/// cores and a request is parsed, handled and answered on the thread that accepted it (no work
/// stealing, no wake-ups between runtime threads). This thread serves the first; the store's
/// writer and the hashing threads are shared as before.
async fn per_core(
    settings: &Settings,
    app: axum::Router,
    limit: crate::conn_limit::ConnectionLimit,
    handle: axum_server::Handle,
) -> std::io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let first = reuseport_listener(settings.listen)?;
    let addr = first.local_addr()?;
    let header_read_timeout = settings.header_read_timeout;
    let serve = move |listener: std::net::TcpListener,
                      app: axum::Router,
                      limit: crate::conn_limit::ConnectionLimit,
                      handle: axum_server::Handle| async move {
        let mut server = axum_server::from_tcp(listener).acceptor(limit);
        limits(server.http_builder(), header_read_timeout);
        server
            .handle(handle)
            .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
    };
    let mut others = Vec::new();
    for core in 1..cores {
        let (app, limit, handle) = (app.clone(), limit.clone(), handle.clone());
        let thread = std::thread::Builder::new()
            .name(format!("keybound-core-{core}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = reuseport_listener(addr)?;
                    serve(listener, app, limit, handle).await
                })
            })?;
        others.push(thread);
    }
    let result = serve(first, app, limit, handle).await;
    for t in others {
        if let Ok(Err(e)) = t.join() {
            tracing::error!(error = %e, "a core's listener failed");
        }
    }
    result
}

/// A listening socket on `addr` that other sockets may share (`SO_REUSEPORT`).
fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// The native Token Binding listener (`tb_listen`): TLS 1.2 on the system OpenSSL with the
/// same certificate, every request's `Sec-Token-Binding` verified over its connection's EKM
/// before the router sees it (keybound-tls). It shares the connection limit and shutdown with
/// the main listener.
fn token_binding_listener(
    settings: &Settings,
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
    app: axum::Router,
    limit: crate::conn_limit::ConnectionLimit,
    handle: &axum_server::Handle,
) -> anyhow::Result<()> {
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let ctx = keybound_tls::server_context(&read(cert)?, &read(key)?).with_context(|| {
        format!(
            "Token Binding listener: {} and {}",
            cert.display(),
            key.display()
        )
    })?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("binding tb_listen {addr}"))?;
    listener.set_nonblocking(true)?;
    let app = app.layer(axum::middleware::from_fn(
        keybound_tls::verify_token_binding,
    ));
    let mut server =
        axum_server::from_tcp(listener).acceptor(keybound_tls::TbAcceptor::new(ctx, limit));
    limits(server.http_builder(), settings.header_read_timeout);
    let server = server.handle(handle.clone());
    tokio::spawn(async move {
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
        {
            tracing::error!(error = %e, "Token Binding listener failed");
        }
    });
    tracing::info!(%addr, "Token Binding listener (TLS 1.2)");
    println!("  Token Binding: https://{addr} (TLS 1.2, OpenSSL)");
    Ok(())
}

/// Connection limits: request headers must arrive within `header_read_timeout`, so half-sent
/// requests (slowloris) cannot hold connections open.
fn limits(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_read_timeout: u64,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(header_read_timeout));
}

/// `/metrics` on its own listener (loopback by default). The default address may be taken by
/// another server on the machine: then metrics are unavailable, with a warning; an address the
/// operator chose must bind.
fn management(settings: &Settings, router: axum::Router) -> anyhow::Result<()> {
    let Some((addr, explicit)) = settings.metrics_listen else {
        return Ok(());
    };
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) if !explicit => {
            tracing::warn!(%addr, error = %e, "metrics listener unavailable; /metrics is not served (set metrics_listen)");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("binding metrics_listen {addr}")),
    };
    listener.set_nonblocking(true)?;
    tokio::spawn(async move {
        if let Err(e) = axum_server::from_tcp(listener)
            .serve(router.into_make_service())
            .await
        {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    tracing::info!(%addr, "metrics");
    Ok(())
}

fn ready(settings: &Settings, how: &str) {
    println!(
        "keybound OpenID Provider ready{how}\n  issuer:    {iss}\n  discovery: {iss}/.well-known/openid-configuration\n  data:      {}",
        settings.data_dir.display(),
        iss = settings.issuer
    );
    tracing::info!(listen = %settings.listen, issuer = %settings.issuer, "serving");
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
