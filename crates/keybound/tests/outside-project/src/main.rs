//! The flow of `keybound_rp::Rp::begin`'s example, against `keybound serve --demo`: a sign-in
//! whose ID Token is bound to a key only this program holds, a presentation that
//! keybound-verify accepts (and refuses when replayed), and a refresh.
//!
//! Environment: `KEYBOUND_ISSUER` (the OP), `KEYBOUND_DEMO_PASSWORD` (the demo user's password).

use std::sync::Arc;

use keybound_rp::browser::Browser;
use keybound_rp::{Clock, ReqwestTransport, Rp, RpConfig};
use keybound_verify::{
    HttpFetcher, HttpPresentation, MemoryReplayCache, TrustedIssuer, Verifier, VerifierConfig,
};

struct SystemClock;
impl Clock for SystemClock {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("KEYBOUND_ISSUER")?;
    let password = std::env::var("KEYBOUND_DEMO_PASSWORD")?;

    // Rp::begin's example
    let rp = Rp::new(
        RpConfig::new(&issuer, "demo-public", "http://127.0.0.1:8081/callback")
            .with_scope("openid profile offline_access"),
        Arc::new(ReqwestTransport::new()?),
        Arc::new(SystemClock),
    );
    let pending = rp.begin().await?;
    let back = Browser::new(ReqwestTransport::new()?)
        .sign_in(&pending.url, None, "demo", &password)
        .await?;
    let code = rp.callback(&pending, &back)?;
    let mut session = rp.exchange(pending, &code).await?;
    assert!(session.bound, "the ID Token is bound to this program's key");
    println!("signed in, ID Token bound to key {}", session.jkt);

    // a consuming component that trusts the OP and fetches its keys over HTTP
    let verifier = Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new(&issuer, &format!("{issuer}/jwks")),
            vec!["demo-public".into()],
            "https://api.example",
        ),
        Arc::new(HttpFetcher::default()),
        Arc::new(MemoryReplayCache::new(1_000)),
        Arc::new(keybound_verify::SystemClock),
    );
    let headers = session.present_http(
        "GET",
        "https://api.example/orders",
        SystemClock.now(),
        None,
    )?;
    let presentation = HttpPresentation {
        id_token: Some(&headers[0].1),
        dpop: &[&headers[1].1],
        htm: "GET",
        path: "/orders",
    };
    let who = verifier.verify_http(presentation).await?;
    assert_eq!(who.jkt.as_str(), session.jkt);
    println!(
        "presentation accepted for {} ({})",
        who.sub,
        who.claims.extra["name"].as_str().unwrap_or("")
    );
    match verifier.verify_http(presentation).await {
        Err(e) => println!("replay refused: {e}"),
        Ok(_) => return Err("a replayed presentation was accepted".into()),
    }

    let before = session.id_token.clone();
    rp.refresh(&mut session).await?;
    assert_ne!(session.id_token, before);
    println!("refreshed with the same key");
    Ok(())
}
