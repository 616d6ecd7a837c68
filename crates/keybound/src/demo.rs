//! `keybound demo`: the whole story in one command, on loopback only. An OpenID Provider and a
//! consuming service start on free ports, the demo user signs in headlessly, the app obtains a
//! key-bound ID Token and presents it; then an attacker who copied the ID Token tries three
//! things and is refused each time, with the reason.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use axum::routing::get;
use axum::Router;
use keybound_op::password;
use keybound_proto::presentation::{http_proof, ID_TOKEN_HEADER};
use keybound_rp::{ReqwestTransport, Rp, RpConfig};
use keybound_store::{Client, ClientAuthMethod, User};
use keybound_testkit::browser::Browser;
use keybound_verify::axum_support::KeyBound;
use keybound_verify::{
    HttpFetcher, MemoryReplayCache, SystemClock, TrustedIssuer, Verifier, VerifierConfig,
};

use crate::config::Settings;
use crate::serve;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The OP exactly as `keybound serve` builds it (SQLite in `dir`, the same provider
/// settings), with the demo user and app.
async fn start_op(dir: &std::path::Path) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let listen = listener.local_addr()?;
    let settings = Settings {
        listen,
        issuer: format!("http://{listen}"),
        data_dir: dir.to_owned(),
        database_url: None,
        json_logs: false,
        require_dpop_nonce: false,
        legacy_assertion_audience: false,
        throttle: keybound_op::ThrottleConfig::default(),
        header_read_timeout: 10,
        body_timeout: 30,
        max_connections: 4096,
        metrics_listen: None,
        trusted_proxies: Vec::new(),
        purge_interval: 60,
        purge_batch: 1000,
        tls: None,
    };
    let store = serve::open_store(&settings).await?;
    let p = serve::provider(&settings, store.clone())?;
    p.ensure_signing_keys()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .put_client(&Client {
            name: "Demo App".into(),
            redirect_uris: vec![REDIRECT.into()],
            ..Client::new("demo-app", ClientAuthMethod::None, p.now())
        })
        .await?;
    store
        .put_user(&User {
            name: Some("Demo User".into()),
            ..User::new(
                "demo-user-1",
                "demo",
                password::hash("demo-password"),
                p.now(),
            )
        })
        .await?;
    let app = keybound_server::router(keybound_server::AppState::new(p));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(settings.issuer)
}

async fn orders(KeyBound(who): KeyBound) -> String {
    format!("orders of {} (proved key {})", who.sub, who.jkt)
}

async fn start_consumer(issuer: &str) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let verifier = Arc::new(Verifier::new(
        VerifierConfig::new(
            TrustedIssuer {
                issuer: issuer.to_owned(),
                jwks_uri: format!("{issuer}/jwks"),
            },
            vec!["demo-app".into()],
            &base,
        ),
        Arc::new(HttpFetcher::default()),
        Arc::new(MemoryReplayCache::new(10_000)),
        Arc::new(SystemClock),
    ));
    let app = Router::new()
        .route("/orders", get(orders))
        .route("/admin", get(orders))
        .with_state(verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

struct Outcome {
    status: u16,
    text: String,
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    id_token: &str,
    proof: Option<&str>,
) -> anyhow::Result<Outcome> {
    let mut req = http.get(url).header(ID_TOKEN_HEADER, id_token);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let text = if status == 200 {
        r.text().await?
    } else {
        let www = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        format!(
            "{} — {}",
            body["error"].as_str().unwrap_or("?"),
            body["error_description"].as_str().unwrap_or(&www)
        )
    };
    Ok(Outcome { status, text })
}

/// Run the demo; `Ok` only if the presentation was accepted and all three attacks refused.
pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    println!(
        "keybound demo: a key-bound ID Token, presented by its holder and attacked by a thief\n"
    );
    let issuer = start_op(&dir).await?;
    println!("1. OpenID Provider running at {issuer} (temporary SQLite store, demo user and app)");
    let consumer = start_consumer(&issuer).await?;
    println!(
        "2. Consuming service running at {consumer}: it accepts an ID Token only together with a"
    );
    println!("   fresh DPoP proof signed by the key named in the token's cnf claim");

    let transport = ReqwestTransport::new()?;
    let rp = Rp::new(
        RpConfig::new(&issuer, "demo-app", REDIRECT),
        Arc::new(transport.clone()),
        Arc::new(SystemClock),
    );
    let pending = rp.begin().await?;
    println!(
        "3. The app made a fresh key pair (ES256, thumbprint {})",
        pending.jkt()
    );
    println!(
        "   and asked for a key-bound ID Token: scope=openid bound_key, dpop_jkt=<thumbprint>"
    );
    let callback = Browser::new(transport.clone())
        .sign_in(&pending.url, None, "demo", "demo-password")
        .await?;
    println!("4. The demo user signed in and consented (headless, through the OP's own forms)");
    let code = rp.callback(&pending, &callback)?;
    let session = rp.exchange(pending, &code).await?;
    let jws = keybound_jose::Jws::parse(&session.id_token)?;
    println!("5. The app redeemed the code with a DPoP proof committing to it (c_s256) and got an ID Token");
    println!(
        "   with typ {} and cnf.jwk thumbprint {} — bound to the app's key",
        jws.header().typ.as_deref().unwrap_or("?"),
        session.jkt
    );

    let http = reqwest::Client::new();
    let orders_url = format!("{consumer}/orders");
    let mut expected = true;
    let headers = session.present_http("GET", &orders_url, crate::now(), None)?;
    let good_proof = headers[1].1.clone();
    let ok = call(&http, &orders_url, &session.id_token, Some(&good_proof)).await?;
    let accepted = ok.status == 200;
    expected &= accepted;
    println!(
        "\n6. [{}] the app presents the ID Token with its proof: GET /orders -> {} {}",
        if accepted {
            "accepted"
        } else {
            "UNEXPECTEDLY REFUSED"
        },
        ok.status,
        ok.text
    );

    println!(
        "\nA thief copies the ID Token from a log or a compromised component and tries to use it:"
    );
    let thief = keybound_jose::PrivateKey::generate(keybound_jose::key::KeyKind::Es256)?;
    let thief_proof = http_proof(
        &thief,
        &session.id_token,
        "GET",
        &orders_url,
        crate::now(),
        &keybound_jose::random_b64(16),
        None,
    )?;
    let attempts = [
        (
            "the same ID Token without the app's key (proof signed by the thief's own key)",
            orders_url.clone(),
            Some(thief_proof),
            "a stolen ID Token is useless without the private key it is bound to",
        ),
        (
            "replaying the app's accepted request, proof and all",
            orders_url.clone(),
            Some(good_proof.clone()),
            "each proof is single-use (jti), so a captured request cannot be sent again",
        ),
        (
            "the app's proof for GET /orders sent to GET /admin",
            format!("{consumer}/admin"),
            Some(good_proof),
            "a proof is valid only for the method and URL it was made for (htm, htu)",
        ),
    ];
    for (i, (what, url, proof, why)) in attempts.iter().enumerate() {
        let o = call(&http, url, &session.id_token, proof.as_deref()).await?;
        let refused = o.status == 401;
        expected &= refused;
        println!(
            "{}. [{}] {what}\n   -> {} {}\n   why it matters: {why}",
            7 + i,
            if refused {
                "refused"
            } else {
                "UNEXPECTEDLY ACCEPTED"
            },
            o.status,
            o.text
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !expected {
        bail!("the demo did not behave as expected (see above)");
    }
    println!(
        "\nResult: the holder's presentation was accepted and all three attacks were refused."
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("keybound-demo-{}", keybound_jose::random_b64(6)));
    crate::config::ensure_data_dir(&dir).context("creating the demo's temporary directory")?;
    Ok(dir)
}
