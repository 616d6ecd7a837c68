//! The example web RP as a server: TLS 1.2 with Token Binding on the system OpenSSL (crate
//! keybound-tls), every request's `Sec-Token-Binding` verified before the routes see it.
//! See README.md for running it beside `keybound serve --tb-listen`.
//!
//! Configuration (environment): `TB_RP_LISTEN` (default `127.0.0.1:8444`), `TB_RP_CERT` and
//! `TB_RP_KEY` (PEM files, required), `TB_RP_PUBLIC_URL` (default `https://<listen>`),
//! `KEYBOUND_ISSUER` (default `https://127.0.0.1:8443`), `TB_RP_CA` (a PEM file of extra roots
//! for the back channel to the OP, e.g. its self-signed certificate), `TB_RP_CLIENT_ID`
//! (default `tb-web`), `TB_RP_CLIENT_SECRET`, `TB_RP_POLICY` (`off`, `if-supported` (default),
//! `required`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use keybound_rp::tokbind::TbPolicy;
use keybound_rp::{ReqwestTransport, Rp, RpConfig};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn read(var: &str) -> anyhow::Result<Vec<u8>> {
    let path = std::env::var(var).with_context(|| format!("{var} must name a PEM file"))?;
    std::fs::read(&path).with_context(|| format!("reading {var}={path}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listen: SocketAddr = env_or("TB_RP_LISTEN", "127.0.0.1:8444")
        .parse()
        .context("TB_RP_LISTEN: IP:PORT")?;
    let public = env_or("TB_RP_PUBLIC_URL", &format!("https://{listen}"));
    let issuer = env_or("KEYBOUND_ISSUER", "https://127.0.0.1:8443");
    let policy = TbPolicy::parse(&env_or("TB_RP_POLICY", "if-supported"))
        .context("TB_RP_POLICY: off, if-supported or required")?;
    let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if std::env::var("TB_RP_CA").is_ok() {
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&read("TB_RP_CA")?)?);
    }
    let mut config = RpConfig::new(
        &issuer,
        &env_or("TB_RP_CLIENT_ID", "tb-web"),
        &format!("{public}/callback"),
    )
    .with_scope("openid profile")
    .with_tb_policy(policy);
    if let Ok(secret) = std::env::var("TB_RP_CLIENT_SECRET") {
        config = config.with_client_secret(secret.into());
    }
    let rp = Rp::new(
        config,
        Arc::new(ReqwestTransport::with_client(http.build()?)),
        Arc::new(keybound_verify::SystemClock),
    );
    let ctx = keybound_tls::server_context(&read("TB_RP_CERT")?, &read("TB_RP_KEY")?)?;
    let app = tb_rp::router(tb_rp::TbRp::new(rp)).layer(axum::middleware::from_fn(
        keybound_tls::verify_token_binding,
    ));
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    listener.set_nonblocking(true)?;
    println!("Token Bound RP at {public} (TLS 1.2 + Token Binding), signing in at {issuer}");
    axum_server::from_tcp(listener)
        .acceptor(keybound_tls::TbAcceptor::new(
            ctx,
            axum_server::accept::DefaultAcceptor::new(),
        ))
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await?;
    Ok(())
}
