//! `keybound demo`: the whole story in one command, on loopback only. An OpenID Provider and a
//! consuming service start on free ports, the demo user signs in headlessly, the app obtains a
//! key-bound ID Token and presents it; then an attacker who copied the ID Token tries three
//! things and is refused each time, with the reason. Act two crosses into another trust domain
//! (a second OP and an API): token exchange for an ID-JAG at A, jwt-bearer at B, the API called
//! with the DPoP access token; and five more attempts by the thief, each refused.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use axum::routing::get;
use axum::Router;
use keybound_op::password;
use keybound_proto::presentation::{http_proof, ID_TOKEN_HEADER};
use keybound_rp::browser::Browser;
use keybound_rp::{ReqwestTransport, Rp, RpConfig};
use keybound_store::{Client, ClientAuthMethod, User};
use keybound_verify::axum_support::{DpopAccess, KeyBound};
use keybound_verify::{
    HttpFetcher, MemoryReplayCache, SystemClock, TrustedIssuer, Verifier, VerifierConfig,
};

use crate::config::Settings;
use crate::serve;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A listener on a free loopback port and the issuer it gives.
pub(crate) async fn bind() -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    Ok((listener, issuer))
}

/// An OP exactly as `keybound serve` builds it (SQLite in `dir`, the same provider settings),
/// provisioned with `clients`, `users` and trusted `issuers`.
pub(crate) async fn start_op(
    (listener, issuer): (tokio::net::TcpListener, String),
    dir: &std::path::Path,
    clients: Vec<Client>,
    users: Vec<User>,
    issuers: Vec<keybound_store::TrustedIssuer>,
) -> anyhow::Result<String> {
    crate::config::ensure_data_dir(dir)?;
    let settings = Settings {
        listen: listener.local_addr()?,
        issuer: issuer.clone(),
        data_dir: dir.to_owned(),
        database_url: None,
        database_pool_size: 16,
        database_acquire_timeout: 3,
        json_logs: false,
        require_dpop_nonce: false,
        legacy_assertion_audience: false,
        throttle: keybound_op::ThrottleConfig::default(),
        header_read_timeout: 10,
        body_timeout: 30,
        max_connections: 4096,
        metrics_listen: None,
        admin_listen: crate::config::AdminListen::Off,
        events: keybound_server::EventOutput::Off,
        otlp_endpoint: None,
        theme: std::sync::Arc::default(),
        trusted_proxies: Vec::new(),
        purge_interval: 60,
        purge_batch: 1000,
        open_registration: false,
        require_par: false,
        par_lifetime: 60,
        fapi2: false,
        token_binding: keybound_server::TokenBindingMode::Off,
        runtime: crate::config::RuntimeKind::Shared,
        dbsc: keybound_server::DbscMode::Offer,
        dbsc_cookie_lifetime: 600,
        id_jag_ttl: 300,
        key_cache_ttl: 60,
        exchange_subject_max_age: 600,
        jwt_bearer_max_lifetime: 600,
        tls: None,
        tb_listen: None,
    };
    let store = serve::open_store(&settings).await?;
    let p = serve::provider(&settings, store.clone())?;
    p.ensure_signing_keys()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for c in &clients {
        store.put_client(c).await?;
    }
    for u in &users {
        store.put_user(u).await?;
    }
    for i in &issuers {
        store.put_issuer(i).await?;
    }
    let app = keybound_server::router(keybound_server::AppState::new(p));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(issuer)
}

/// The demo End-User (the same person in both domains, found in B by verified e-mail).
pub(crate) fn demo_user(sub: &str) -> User {
    User {
        name: Some("Demo User".into()),
        email: Some("demo@example.com".into()),
        email_verified: true,
        ..User::new(sub, "demo", password::hash(DEMO_PASSWORD), crate::now())
    }
}

pub(crate) const DEMO_PASSWORD: &str = "demo-password";
const APP_SECRET: &str = "demo-app-secret";
const APP_SECRET_AT_B: &str = "demo-app-secret-at-b";

async fn orders(KeyBound(who): KeyBound) -> String {
    format!("orders of {} (proved key {})", who.sub, who.jkt)
}

async fn b_orders(DpopAccess(a): DpopAccess) -> String {
    format!(
        "orders of {} in domain B, for client {} (proved key {})",
        a.sub,
        a.client_id.as_deref().unwrap_or("?"),
        a.jkt.as_ref().map_or("-", |j| j.as_str())
    )
}

/// A verifier at `base` trusting `issuer` (keys from its `/jwks`) for `audiences`.
pub(crate) fn verifier(issuer: &str, audiences: Vec<String>, base: &str) -> Arc<Verifier> {
    Arc::new(Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new(issuer, &format!("{issuer}/jwks")),
            audiences,
            base,
        ),
        Arc::new(HttpFetcher::default()),
        Arc::new(MemoryReplayCache::new(10_000)),
        Arc::new(SystemClock),
    ))
}

/// The API of domain B: access tokens from B's AS, with DPoP.
async fn start_api(b_issuer: &str) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let verifier = verifier(b_issuer, vec![b_issuer.to_owned()], &base);
    let app = Router::new()
        .route("/orders", get(b_orders))
        .with_state(verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

async fn start_consumer(issuer: &str) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let verifier = verifier(issuer, vec!["demo-app".into()], &base);
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
    let (a_bound, b_bound) = (bind().await?, bind().await?);
    let b_issuer = b_bound.1.clone();
    let app = Client {
        name: "Demo App".into(),
        secret_hash: Some(password::hash(APP_SECRET)),
        redirect_uris: vec![REDIRECT.into()],
        // identity chaining (act two): ID-JAGs for domain B, where the app is demo-app-at-b
        exchange: Some(keybound_store::ExchangePolicy {
            audiences: [
                (b_issuer.clone(), "demo-app-at-b".to_owned()),
                (OTHER_DOMAIN.to_owned(), "demo-app-elsewhere".to_owned()),
            ]
            .into(),
            scopes: vec!["orders.read".into()],
            ..keybound_store::ExchangePolicy::default()
        }),
        ..Client::new(
            "demo-app",
            ClientAuthMethod::ClientSecretBasic,
            crate::now(),
        )
    };
    let issuer = start_op(
        a_bound,
        &dir.join("a"),
        vec![app],
        vec![demo_user("demo-user-1")],
        Vec::new(),
    )
    .await?;
    println!("1. OpenID Provider running at {issuer} (temporary SQLite store, demo user and app)");
    let consumer = start_consumer(&issuer).await?;
    println!(
        "2. Consuming service running at {consumer}: it accepts an ID Token only together with a"
    );
    println!("   fresh DPoP proof signed by the key named in the token's cnf claim");

    let transport = ReqwestTransport::new()?;
    let rp = Rp::new(
        RpConfig::new(&issuer, "demo-app", REDIRECT).with_client_secret(APP_SECRET.into()),
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
        .sign_in(&pending.url, None, "demo", DEMO_PASSWORD)
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
    expected &= act_two(&issuer, b_bound, &dir, &rp, &session).await?;
    let _ = std::fs::remove_dir_all(&dir);
    if !expected {
        bail!("the demo did not behave as expected (see above)");
    }
    println!("\nResult: both presentations were accepted and all eight attacks were refused.");
    Ok(())
}

/// An audience the app may ask ID-JAGs for that is not domain B.
const OTHER_DOMAIN: &str = "https://other-domain.example";

/// A token-endpoint request with HTTP Basic and a fresh proof by `key`: the status and the
/// `error — error_description`, or the JSON body on success.
async fn token_request(
    http: &reqwest::Client,
    issuer: &str,
    basic: &str,
    form: &[(&str, &str)],
    key: &keybound_jose::PrivateKey,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("{issuer}/token");
    let proof = keybound_proto::dpop::ProofBuilder::new(
        "POST",
        &url,
        crate::now(),
        &keybound_jose::random_b64(16),
    )
    .sign(key)?;
    let r = http
        .post(&url)
        .header("authorization", basic)
        .header("DPoP", proof)
        .form(form)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or_default()))
}

fn refusal(v: &serde_json::Value) -> String {
    format!(
        "{} — {}",
        v["error"].as_str().unwrap_or("?"),
        v["error_description"].as_str().unwrap_or("")
    )
}

/// Act two: identity chaining into domain B, and what a thief tries there.
async fn act_two(
    a_issuer: &str,
    b_bound: (tokio::net::TcpListener, String),
    dir: &std::path::Path,
    rp_a: &Rp,
    session: &keybound_rp::Session,
) -> anyhow::Result<bool> {
    println!(
        "\nAct two: the app needs an API in another trust domain (B). Key Binding ID1 says the"
    );
    println!(
        "ID Token must not leave its trust boundary; identity chaining carries the binding across."
    );
    let b_app = Client {
        name: "Demo App (in domain B)".into(),
        secret_hash: Some(password::hash(APP_SECRET_AT_B)),
        redirect_uris: vec![REDIRECT.into()],
        jwt_bearer: true,
        ..Client::new(
            "demo-app-at-b",
            ClientAuthMethod::ClientSecretBasic,
            crate::now(),
        )
    };
    let trust_a = keybound_store::TrustedIssuer {
        issuer: a_issuer.to_owned(),
        jwks_uri: format!("{a_issuer}/jwks"),
        subject: keybound_store::SubjectMode::Email,
        single_use: false,
        allow_unbound: false,
        enabled: true,
        created_at: crate::now(),
    };
    let b_issuer = start_op(
        b_bound,
        &dir.join("b"),
        vec![b_app],
        vec![demo_user("demo-user-at-b")],
        vec![trust_a],
    )
    .await?;
    let api = start_api(&b_issuer).await?;
    println!("10. Domain B: its own OpenID Provider at {b_issuer}, trusting A's ID-JAGs, and an API at {api}");
    let jag = rp_a
        .exchange_for_id_jag(session, &b_issuer, Some("orders.read"), None)
        .await?;
    println!("11. At A, the app exchanged its key-bound ID Token (RFC 8693, proof by its key) for an ID-JAG");
    println!(
        "    for {b_issuer}, bound to the same key ({})",
        jag.jkt.as_ref().map_or("none", |j| j.as_str())
    );
    let rp_b = Rp::new(
        RpConfig::new(&b_issuer, "demo-app-at-b", REDIRECT)
            .with_client_secret(APP_SECRET_AT_B.into()),
        Arc::new(ReqwestTransport::new()?),
        Arc::new(SystemClock),
    );
    let key = session.key()?;
    let t = rp_b.redeem_id_jag(&key, &jag).await?;
    println!(
        "12. At B, the app redeemed it (jwt-bearer, proof by the same key): a {} access token, scope {}",
        t.token_type,
        t.scope.as_deref().unwrap_or("")
    );
    let orders = format!("{api}/orders");
    let r = rp_b.call_api(&key, &t.access_token, "GET", &orders).await?;
    let mut expected = r.status == 200;
    println!(
        "13. [{}] the app calls B's API with it: GET /orders -> {} {}",
        if r.status == 200 {
            "accepted"
        } else {
            "UNEXPECTEDLY REFUSED"
        },
        r.status,
        String::from_utf8_lossy(&r.body)
    );

    println!("\nThe thief, holding the copied ID Token (and even the app's client secrets), tries again:");
    let http = reqwest::Client::new();
    let thief = keybound_jose::PrivateKey::generate(keybound_jose::key::KeyKind::Es256)?;
    let basic_a = keybound_rp::basic_auth("demo-app", APP_SECRET);
    let basic_b = keybound_rp::basic_auth("demo-app-at-b", APP_SECRET_AT_B);
    // the ID Token straight to B's API
    let direct = rp_b
        .call_api(&thief, &session.id_token, "GET", &orders)
        .await?;
    let direct_text = direct.header("www-authenticate").unwrap_or("").to_owned();
    let exchange = keybound_proto::wire::TokenExchangeRequest::id_jag(&session.id_token, &b_issuer);
    let exchange_form = exchange.form();
    let (s1, v1) = token_request(&http, a_issuer, &basic_a, &exchange_form, &thief).await?;
    let bearer = |assertion: &str| {
        [
            (
                "grant_type",
                keybound_proto::wire::grant_type::JWT_BEARER.to_owned(),
            ),
            ("assertion", assertion.to_owned()),
        ]
    };
    let as_grant = bearer(&session.id_token);
    let as_grant: Vec<(&str, &str)> = as_grant.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s2, v2) = token_request(&http, &b_issuer, &basic_b, &as_grant, &key).await?;
    let with_jag = bearer(&jag.token);
    let with_jag: Vec<(&str, &str)> = with_jag.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s3, v3) = token_request(&http, &b_issuer, &basic_b, &with_jag, &thief).await?;
    let elsewhere = rp_a
        .exchange_for_id_jag(session, OTHER_DOMAIN, None, None)
        .await?;
    let other = bearer(&elsewhere.token);
    let other: Vec<(&str, &str)> = other.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s4, v4) = token_request(&http, &b_issuer, &basic_b, &other, &key).await?;
    let attempts = [
        (
            "presenting the ID Token itself to B's API",
            direct.status == 401,
            format!("{} {direct_text}", direct.status),
            "an ID Token is not an access token, and never leaves its trust domain (typ at+jwt required)",
        ),
        (
            "exchanging the stolen ID Token at A with a proof by the thief's own key",
            s1 == 400,
            format!("{s1} {}", refusal(&v1)),
            "the exchange needs a proof by the key the ID Token is bound to",
        ),
        (
            "passing the ID Token off as an ID-JAG at B (jwt-bearer)",
            s2 == 400,
            format!("{s2} {}", refusal(&v2)),
            "B redeems only oauth-id-jag+jwt grants: no type confusion",
        ),
        (
            "redeeming the app's ID-JAG at B with the thief's key",
            s3 == 400,
            format!("{s3} {}", refusal(&v3)),
            "the ID-JAG carries cnf.jkt: only its key can redeem it",
        ),
        (
            "redeeming at B an ID-JAG made for another domain",
            s4 == 400,
            format!("{s4} {}", refusal(&v4)),
            "an ID-JAG names exactly one audience; B refuses grants addressed to others",
        ),
    ];
    for (i, (what, refused, answer, why)) in attempts.iter().enumerate() {
        expected &= *refused;
        println!(
            "{}. [{}] {what}\n    -> {answer}\n    why it matters: {why}",
            14 + i,
            if *refused {
                "refused"
            } else {
                "UNEXPECTEDLY ACCEPTED"
            },
        );
    }
    Ok(expected)
}

pub(crate) fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("keybound-demo-{}", keybound_jose::random_b64(6)));
    crate::config::ensure_data_dir(&dir).context("creating the demo's temporary directory")?;
    Ok(dir)
}
