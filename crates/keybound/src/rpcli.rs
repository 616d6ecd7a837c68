//! `keybound login`, `keybound present`, `keybound verify`: the RP's two components from the
//! command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keybound_jose::Secret;

use anyhow::{bail, Context as _};
use keybound_proto::keybinding::Profile;
use keybound_rp::browser::Browser;
use keybound_rp::{ReqwestTransport, Rp, RpConfig, Session};
use keybound_verify::{
    HttpFetcher, HttpPresentation, SqliteReplayCache, SystemClock, TrustedIssuer, Verifier,
    VerifierConfig,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Options of `keybound login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// issuer URL of the OpenID Provider
    #[arg(long)]
    pub issuer: String,
    /// client id registered at the OP
    #[arg(long)]
    pub client_id: String,
    /// client secret (confidential clients)
    #[arg(long, env = "KEYBOUND_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<Secret>,
    /// extra scopes (openid and bound_key are always requested)
    #[arg(long, default_value = "openid profile offline_access")]
    pub scope: String,
    /// loopback port for the redirect (the client must have http://127.0.0.1:PORT/callback registered)
    #[arg(long, default_value_t = 8081)]
    pub port: u16,
    /// Key Binding profile: key-binding-1.0 or draft-00
    #[arg(long, default_value = "key-binding-1.0")]
    pub profile: String,
    /// accept an unbound ID Token (reported) instead of failing
    #[arg(long)]
    pub allow_unbound: bool,
    /// where to save the session (key and tokens, mode 0600)
    #[arg(long, default_value = "keybound-session.json")]
    pub session: PathBuf,
    /// sign in without a browser through the OP's forms or redirects (keybound OPs, test OPs)
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    /// password for --username
    #[arg(long, requires = "username")]
    pub password: Option<Secret>,
    /// use the device flow (RFC 8628): print a code to enter at the OP and wait
    #[arg(long)]
    pub device: bool,
}

/// Run the code flow with a loopback redirect and save the session.
pub async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let redirect = format!("http://127.0.0.1:{}/callback", a.port);
    let mut cfg = RpConfig::new(&a.issuer, &a.client_id, &redirect);
    cfg.client_secret = a.client_secret.clone();
    cfg.scope = a.scope.clone();
    cfg.profile = Profile::parse(&a.profile)?;
    cfg.require_binding = !a.allow_unbound;
    let transport = ReqwestTransport::new()?;
    let rp = Rp::new(cfg, Arc::new(transport.clone()), Arc::new(SystemClock));
    if a.device {
        let session = device_login(&rp).await?;
        return finish(&session, &a.session);
    }
    let pending = rp.begin().await?;
    let callback = if let (Some(u), Some(p)) = (&a.username, &a.password) {
        Browser::new(transport.clone())
            .sign_in(&pending.url, Some(&redirect), u, p.expose())
            .await?
    } else {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port))
            .await
            .with_context(|| format!("listening on 127.0.0.1:{} for the redirect", a.port))?;
        eprintln!(
            "Open this URL to sign in (waiting up to 5 minutes):\n\n  {}\n",
            pending.url
        );
        open_browser(&pending.url);
        tokio::time::timeout(
            Duration::from_secs(300),
            wait_for_callback(&listener, a.port),
        )
        .await
        .context("no redirect within 5 minutes")??
    };
    let code = rp.callback(&pending, &callback)?;
    let session = rp.exchange(pending, &code).await?;
    finish(&session, &a.session)
}

async fn device_login(rp: &Rp) -> anyhow::Result<Session> {
    use std::io::Write as _;
    let mut flow = rp.device_begin().await?;
    eprintln!(
        "To sign in, visit {} and enter the code\n\n    {}\n",
        flow.verification_uri, flow.user_code
    );
    if let Some(c) = &flow.verification_uri_complete {
        eprintln!("(or open {c} and confirm the code)");
    }
    eprint!("waiting for approval");
    let session = rp
        .device_wait(
            &mut flow,
            |d| tokio::time::sleep(d),
            |p| {
                match p {
                    keybound_rp::DevicePoll::SlowDown => eprint!(" (the OP asked to slow down)"),
                    _ => eprint!("."),
                }
                let _ = std::io::stderr().flush();
            },
        )
        .await;
    eprintln!();
    Ok(session?)
}

fn finish(session: &Session, path: &Path) -> anyhow::Result<()> {
    session.save(path)?;
    let a_session = path;
    if session.bound {
        println!(
            "signed in; the ID Token is bound to key {} (saved to {})",
            session.jkt,
            a_session.display()
        );
    } else {
        println!(
            "signed in, but the OP returned an UNBOUND ID Token (no cnf): it is a bearer token (saved to {})",
            a_session.display()
        );
    }
    Ok(())
}

fn open_browser(url: &str) {
    if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// Accept connections until one is the redirect; answer it with a short page.
async fn wait_for_callback(
    listener: &tokio::net::TcpListener,
    port: u16,
) -> anyhow::Result<String> {
    for _ in 0..100 {
        let (mut sock, _) = listener.accept().await?;
        let mut buf = vec![0u8; 16 * 1024];
        let n = sock.read(&mut buf).await?;
        let head = String::from_utf8_lossy(&buf[..n]);
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        if target.starts_with("/callback") {
            let body = "Signed in. You can close this window and return to the terminal.";
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            return Ok(format!("http://127.0.0.1:{port}{target}"));
        }
        let _ = sock
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    }
    bail!("too many requests to the loopback listener without the redirect")
}

/// Options of `keybound chain`.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// the resource AS (its issuer) to obtain an access token from
    #[arg(long)]
    pub audience: String,
    /// this client's id at the resource AS
    #[arg(long)]
    pub as_client_id: String,
    /// this client's secret at the resource AS
    #[arg(long, env = "KEYBOUND_AS_CLIENT_SECRET", hide_env_values = true)]
    pub as_client_secret: Option<Secret>,
    /// this client's secret at the OP that issued the session (token exchange needs it)
    #[arg(long, env = "KEYBOUND_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<Secret>,
    /// scope to ask for
    #[arg(long)]
    pub scope: Option<String>,
    /// RFC 8707 resource to ask for
    #[arg(long)]
    pub resource: Option<String>,
    /// then GET this URL with the access token and a fresh proof, and print the answer
    #[arg(long)]
    pub call: Option<String>,
    /// also print the ID-JAG (to standard error; it is a grant: treat it as a secret)
    #[arg(long)]
    pub print_id_jag: bool,
    /// the session saved by `keybound login`
    #[arg(long, default_value = "keybound-session.json")]
    pub session: PathBuf,
}

/// Identity chaining from a saved session: exchange its key-bound ID Token at its OP for an
/// ID-JAG, redeem that at `--audience` for a DPoP access token bound to the session's key, and
/// print the token (or, with `--call`, the answer of an API called with it).
pub async fn chain(a: ChainArgs) -> anyhow::Result<()> {
    let session = Session::load(&a.session)?;
    let transport = Arc::new(ReqwestTransport::new()?);
    let op = Rp::new(
        with_secret(
            RpConfig::new(
                &session.issuer,
                &session.client_id,
                "http://127.0.0.1/unused",
            ),
            a.client_secret.clone(),
        ),
        transport.clone(),
        Arc::new(SystemClock),
    );
    let jag = op
        .exchange_for_id_jag(
            &session,
            &a.audience,
            a.scope.as_deref(),
            a.resource.as_deref(),
        )
        .await
        .context("token exchange at the OP")?;
    eprintln!(
        "ID-JAG for {} (bound to {}), valid {} s",
        jag.audience,
        jag.jkt.as_ref().map_or("no key", |j| j.as_str()),
        jag.expires_in.unwrap_or(0)
    );
    if a.print_id_jag {
        eprintln!("{}", jag.token);
    }
    let resource_as = Rp::new(
        with_secret(
            RpConfig::new(&a.audience, &a.as_client_id, "http://127.0.0.1/unused"),
            a.as_client_secret.clone(),
        ),
        transport,
        Arc::new(SystemClock),
    );
    let key = session.key()?;
    let t = resource_as
        .redeem_id_jag(&key, &jag)
        .await
        .context("jwt-bearer at the resource AS")?;
    eprintln!(
        "{} access token from {}, scope '{}', valid {} s",
        t.token_type,
        a.audience,
        t.scope.as_deref().unwrap_or(""),
        t.expires_in.unwrap_or(0)
    );
    let Some(url) = a.call else {
        println!("{}", t.access_token);
        return Ok(());
    };
    let r = resource_as
        .call_api(&key, &t.access_token, "GET", &url)
        .await?;
    println!("{}", r.status);
    println!("{}", String::from_utf8_lossy(&r.body));
    if r.status / 100 != 2 {
        bail!("the API refused the access token");
    }
    Ok(())
}

/// Options of `keybound present`.
#[derive(Debug, clap::Args)]
pub struct PresentArgs {
    /// the URL of the consuming service's endpoint
    #[arg(long)]
    pub url: String,
    /// the request method
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// a nonce the service demanded (DPoP-Nonce)
    #[arg(long)]
    pub nonce: Option<String>,
    /// send the request (retrying once with the service's nonce) instead of printing headers
    #[arg(long)]
    pub send: bool,
    /// the session saved by `keybound login`
    #[arg(long, default_value = "keybound-session.json")]
    pub session: PathBuf,
}

/// Print or send an HTTP presentation.
pub async fn present(a: PresentArgs) -> anyhow::Result<()> {
    let session = Session::load(&a.session)?;
    let headers = session.present_http(&a.method, &a.url, crate::now(), a.nonce.as_deref())?;
    if !a.send {
        for (k, v) in headers {
            println!("{k}: {v}");
        }
        return Ok(());
    }
    // the RP's presentation: the two headers, and one retry with the service's nonce
    let rp = Rp::new(
        RpConfig::new(
            &session.issuer,
            &session.client_id,
            "http://127.0.0.1/unused",
        ),
        Arc::new(ReqwestTransport::new()?),
        Arc::new(SystemClock),
    );
    if let Some(n) = &a.nonce {
        rp.use_nonce(&a.url, n);
    }
    let request = keybound_rp::HttpRequest {
        method: a.method.clone(),
        ..keybound_rp::HttpRequest::get(&a.url)
    };
    let r = rp.present(&session, &request).await?;
    let reason = reqwest::StatusCode::from_u16(r.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    println!("{} {reason}", r.status);
    if let Some(www) = r.header("www-authenticate") {
        println!("www-authenticate: {www}");
    }
    println!("{}", String::from_utf8_lossy(&r.body));
    if !(200..300).contains(&r.status) {
        bail!("the service refused the presentation");
    }
    Ok(())
}

/// Options of `keybound verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// trusted issuer URL (its discovery document gives the JWKS)
    #[arg(long)]
    pub issuer: String,
    /// accepted audience (client id); repeatable
    #[arg(long = "audience", required = true)]
    pub audiences: Vec<String>,
    /// the request URL the presentation was made for
    #[arg(long)]
    pub url: String,
    /// the request method
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// the ID-Token header value (or @FILE)
    #[arg(long)]
    pub id_token: String,
    /// the DPoP header value (or @FILE)
    #[arg(long)]
    pub dpop: String,
    /// accept draft-00 `typ: id_token+cnf`
    #[arg(long)]
    pub draft00: bool,
}

fn value(v: &str) -> anyhow::Result<String> {
    match v.strip_prefix('@') {
        Some(p) => Ok(std::fs::read_to_string(Path::new(p))
            .with_context(|| format!("reading {p}"))?
            .trim()
            .to_owned()),
        None => Ok(v.trim().to_owned()),
    }
}

/// Check one presentation and print the verdict. Proofs seen are remembered in
/// `verify-replay.db` in the data directory, so a presentation is accepted once, across runs.
pub async fn verify(a: VerifyArgs, data_dir: &Path) -> anyhow::Result<()> {
    let url = url::Url::parse(&a.url).with_context(|| format!("--url '{}'", a.url))?;
    let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
        + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let http = reqwest::Client::new();
    let disco: serde_json::Value = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            a.issuer.trim_end_matches('/')
        ))
        .send()
        .await?
        .json()
        .await
        .context("discovery document")?;
    let jwks_uri = disco["jwks_uri"]
        .as_str()
        .context("discovery has no jwks_uri")?
        .to_owned();
    let mut cfg = VerifierConfig::new(
        TrustedIssuer::new(a.issuer.trim_end_matches('/'), &jwks_uri),
        a.audiences.clone(),
        &base,
    );
    cfg.accept_draft00 = a.draft00;
    crate::config::ensure_data_dir(data_dir)?;
    let replay = SqliteReplayCache::open(&data_dir.join("verify-replay.db"))
        .await
        .context("replay cache")?;
    let verifier = Verifier::new(
        cfg,
        Arc::new(HttpFetcher::new(http)),
        Arc::new(replay),
        Arc::new(SystemClock),
    );
    let id_token = value(&a.id_token)?;
    let dpop = value(&a.dpop)?;
    match verifier
        .verify_http(HttpPresentation {
            id_token: Some(&id_token),
            dpop: &[&dpop],
            htm: &a.method,
            path: url.path(),
        })
        .await
    {
        Ok(who) => {
            println!(
                "accepted: iss={} sub={} aud={} key={}",
                who.iss,
                who.sub,
                who.aud.join(","),
                who.jkt
            );
            Ok(())
        }
        Err(e) => bail!("refused ({}): {e}", e.code().as_str()),
    }
}

/// `config`, authenticating with `secret` when one was given.
fn with_secret(mut config: RpConfig, secret: Option<Secret>) -> RpConfig {
    config.client_secret = secret;
    config
}
