//! `keybound demo --token-binding`: OpenID Connect Token Bound Authentication on loopback. An
//! OP behind keybound's native Token Binding listener and the example web RP
//! (examples/tb-rp), both TLS 1.2 with Token Binding under one throwaway certificate, and the
//! example's Token Binding user agent (browsers dropped Token Binding in 2018). The End-User
//! signs in at the RP; the ID Token carries `cnf.tbh`, the hash of the browser's Token Binding
//! ID with the RP. Then a thief tries the stolen ID Token and copied cookies on its own
//! connections, and an attacker strips the binding: each is refused, with the reason.

use anyhow::{bail, Context as _};
use keybound_rp::browser::{form_action, hidden_fields};
use tb_rp::federation::{Federation, FederationOptions, TbTransport, ALICE};

fn reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error_description"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

fn refused(what: &str, status: u16, body: &str) -> anyhow::Result<()> {
    if status == 200 {
        bail!("{what} was accepted: {body}");
    }
    println!("   [refused] HTTP {status}: {}", reason(body));
    Ok(())
}

/// Run it.
pub async fn run() -> anyhow::Result<()> {
    let f = Federation::start(FederationOptions::default()).await;
    println!(
        "keybound demo --token-binding: OpenID Connect Token Bound Authentication on loopback\n"
    );
    println!(
        "1. OpenID Provider at {} (native Token Binding listener: TLS 1.2, OpenSSL)",
        f.issuer
    );
    println!(
        "   Web RP (examples/tb-rp) at {}, downgrade policy if-supported",
        f.rp
    );
    println!("   both under one throwaway certificate; the browser is keybound's Token Binding user agent");

    let mut alice = f.browser();
    let binding = alice.transport().token_binding_id(&f.rp).tbh()?;
    let page = alice
        .browse(&f.login_url("hybrid"), ALICE.0, ALICE.1)
        .await
        .context("signing in")?;
    if page.status != 200 {
        bail!("the sign-in failed: HTTP {} {}", page.status, page.body);
    }
    let body: serde_json::Value = serde_json::from_str(&page.body)?;
    println!("2. Alice's browser negotiated Token Binding with the RP: its Token Binding ID hashes to {binding}");
    println!("   The RP answered her sign-in with Include-Referred-Token-Binding-ID: true, so the browser");
    println!(
        "   proved that binding to the OP as a referred one (signed over the OP connection's EKM)"
    );
    println!(
        "3. [accepted] hybrid flow (form_post): the RP checked both ID Tokens; cnf.tbh = {}",
        body["tbh"].as_str().unwrap_or("(none)")
    );
    if body["tbh"].as_str() != Some(binding.as_str()) {
        bail!("the ID Token's tbh is not the browser's binding with the RP");
    }
    let me = alice.get(&format!("{}/me", f.rp)).await?;
    println!(
        "   [accepted] GET /me with her RP session cookie, on her own binding: HTTP {}",
        me.status
    );

    println!("\nA thief intercepts her next authorization response and copies her cookies:");
    let page = alice
        .browse_to_form_post(&f.login_url("implicit"), ALICE.0, ALICE.1)
        .await?;
    let callback = form_action(&page.body).context("the form_post page")?;
    let stolen = hidden_fields(&page.body);
    let mut thief = f.browser();
    if let Some(state) = alice.cookie("rp_state") {
        thief.plant_cookie("rp_state", state);
    }
    println!(
        "4. The stolen ID Token (and state, and the state cookie) posted from the thief's browser:"
    );
    let r = thief.post(&callback, &stolen).await?;
    refused("the stolen ID Token", r.status, &r.body)?;

    println!("5. Alice's RP session cookie in the thief's browser:");
    if let Some(c) = alice.cookie("rp_session") {
        thief.plant_cookie("rp_session", c);
    }
    let r = thief.get(&format!("{}/me", f.rp)).await?;
    refused("the copied RP cookie", r.status, &r.body)?;

    println!("6. Alice's OP session cookie in the thief's browser (the OP keys sessions by cookie and binding):");
    if let Some(c) = alice.cookie("__Host-kb_session") {
        thief.plant_cookie("__Host-kb_session", c);
    }
    let login = thief.get(&f.login_url("code")).await?;
    let at_op = thief
        .get(login.location.as_deref().unwrap_or_default())
        .await?;
    if !at_op.body.contains("name=\"password\"") {
        bail!("the copied OP cookie signed the thief in");
    }
    println!("   [refused] the OP does not know that session on the thief's binding: it asks for a password");

    println!("7. An attacker strips the binding (the browser's referred Token Binding never reaches the OP),");
    println!("   so the OP issues an ID Token without cnf.tbh:");
    let mut stripped = f.browser_with(|roots| TbTransport::new(roots).without_referrals());
    let page = stripped
        .browse(&f.login_url("implicit"), ALICE.0, ALICE.1)
        .await?;
    refused("the unbound ID Token", page.status, &page.body)?;

    println!("\nResult: the bound sign-in was accepted and all four attacks were refused.");
    Ok(())
}
