//! Preparing each mode: sign in, mint what the measured phase consumes, and the per-request
//! work. Preparation is not measured.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use keybound_jose::key::KeyKind;
use keybound_jose::{JwkSet, PrivateKey};
use keybound_proto::dpop::ProofBuilder;
use keybound_rp::ReqwestTransport;
use keybound_testkit::browser::Browser;
use serde_json::Value;
use tokio::sync::{mpsc, Mutex};

use crate::{Load, Mode, Outcome, Settings, Work};

const VERIFIER: &str = "keybound-load-pkce-verifier-0123456789abcdefghijk";

/// A prepared run.
pub struct Prepared {
    /// the per-request work
    pub work: Arc<dyn Work>,
    /// ES256 verifications the server does per request
    pub verifies: u32,
    /// ES256 signatures the server does per request
    pub signs: u32,
    /// `guess` with a probe: the authorization URL the other End-User signs in with
    pub probe: Option<String>,
}

#[derive(Clone)]
struct Ctx {
    http: reqwest::Client,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    key: Arc<PrivateKey>,
    client_id: String,
    redirect_uri: String,
    /// Key Binding (`c_s256` in code and device proofs), or plain DPoP for OPs without it
    key_binding: bool,
    /// `Authorization: Basic` for a confidential client
    basic: Option<String>,
    /// the OP's nodes (base URLs) requests are spread over, and the round-robin position
    nodes: Arc<Vec<String>>,
    next_node: Arc<std::sync::atomic::AtomicUsize>,
}

fn jti() -> String {
    keybound_jose::random_b64(12)
}

/// Proofs carry the real time of the real server.
fn now() -> u64 {
    use keybound_verify::Clock as _;
    keybound_verify::SystemClock.now()
}

async fn classify(r: Result<reqwest::Response, reqwest::Error>) -> Result<Value, String> {
    let r = r.map_err(|e| {
        if e.is_timeout() {
            "timeout".to_owned()
        } else {
            "transport".to_owned()
        }
    })?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|_| "transport".to_owned())?;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status == 200 {
        Ok(v)
    } else {
        Err(v["error"]
            .as_str()
            .map_or_else(|| format!("http-{status}"), str::to_owned))
    }
}

impl Ctx {
    /// Where to send a request for the issuer's `endpoint`: the next node's same path, or the
    /// endpoint itself without nodes (the proof names `endpoint` either way).
    fn at_node(&self, endpoint: &str) -> String {
        if self.nodes.is_empty() {
            return endpoint.to_owned();
        }
        let i = self
            .next_node
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            url::Url::parse(endpoint).map_or_else(|_| String::new(), |u| u.path().to_owned());
        format!(
            "{}{path}",
            self.nodes[i % self.nodes.len()].trim_end_matches('/')
        )
    }

    async fn token(&self, form: &[(&str, &str)], proof: &str) -> Result<Value, String> {
        let body = serde_urlencoded::to_string(form).map_err(|e| e.to_string())?;
        let mut req = self
            .http
            .post(self.at_node(&self.token_endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("DPoP", proof)
            .body(body);
        if let Some(b) = &self.basic {
            req = req.header("authorization", b);
        }
        classify(req.send().await).await
    }

    /// A fresh token-endpoint proof redeeming `code` (an authorization or device code): with
    /// `c_s256` over it under Key Binding, a plain RFC 9449 proof otherwise.
    fn redeeming_proof(&self, code: &str) -> Result<String, String> {
        let mut proof = ProofBuilder::new("POST", &self.token_endpoint, now(), &jti());
        if self.key_binding {
            proof = proof.c_s256(code);
        }
        proof.sign(&self.key).map_err(|e| e.to_string())
    }

    /// The form of a code exchange.
    fn code_form<'a>(&'a self, code: &'a str) -> [(&'a str, &'a str); 5] {
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", &self.client_id),
        ]
    }

    /// The form of a refresh.
    fn refresh_form<'a>(&'a self, refresh_token: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &self.client_id),
        ]
    }

    async fn exchange(&self, code: &str) -> Result<Value, String> {
        let proof = self.redeeming_proof(code)?;
        self.token(&self.code_form(code), &proof).await
    }
}

async fn discover(http: &reqwest::Client, issuer: &str) -> anyhow::Result<Value> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    http.get(&url)
        .send()
        .await
        .with_context(|| url.clone())?
        .json()
        .await
        .with_context(|| url)
}

/// An authorization request URL of the code flow with PKCE, bound to `key` by `dpop_jkt`.
fn authorization_url(
    s: &Settings,
    authz: &str,
    key: &PrivateKey,
    scope: &str,
    i: usize,
    consent: bool,
) -> String {
    keybound_testkit::op::code_flow_url(
        authz,
        (&s.client_id, &s.redirect_uri),
        scope,
        i,
        VERIFIER,
        &key.public_jwk().thumbprint(),
        consent,
    )
}

/// A browser with no cookies that sends `X-Forwarded-For: address` when given one.
fn fresh_browser(transport: &ReqwestTransport, address: Option<&str>) -> Browser<ReqwestTransport> {
    let b = Browser::new(transport.clone());
    match address {
        Some(a) => b.with_header("x-forwarded-for", a),
        None => b,
    }
}

/// Another End-User signing in four times a second (a fresh browser each time, at least once)
/// until `stop`;
/// how that went. Each sign-in is bounded by the transport's timeout.
#[allow(clippy::disallowed_methods)] // a load tool measures wall time
pub async fn probe_sign_ins(
    url: String,
    redirect_uri: String,
    (username, password): (String, String),
    address: Option<String>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> crate::Probe {
    let mut probe = crate::Probe {
        ok: 0,
        failed: std::collections::BTreeMap::new(),
        latency_ms: crate::latency(Vec::new()),
    };
    let Ok(transport) = ReqwestTransport::new() else {
        probe.failed.insert("transport".into(), 1);
        return probe;
    };
    let mut samples = Vec::new();
    // at least one sign-in; bounded: at most one day of four a second
    for _ in 0..345_600u32 {
        let t = std::time::Instant::now();
        let mut b = fresh_browser(&transport, address.as_deref());
        match b
            .sign_in(&url, Some(&redirect_uri), &username, &password)
            .await
        {
            Ok(cb) if cb.contains("code=") => {
                probe.ok += 1;
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(cb) => {
                let reason = url::Url::parse(&cb)
                    .ok()
                    .and_then(|u| {
                        u.query_pairs()
                            .find(|(k, _)| k == "error")
                            .map(|(_, v)| v.into_owned())
                    })
                    .unwrap_or_else(|| "no code".into());
                *probe.failed.entry(reason).or_default() += 1;
            }
            Err(e) => *probe.failed.entry(e.to_string()).or_default() += 1,
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    probe.latency_ms = crate::latency(samples);
    probe
}

/// Mint `n` codes through the authorization endpoint with one signed-in session.
async fn mint_codes(
    s: &Settings,
    metadata: &Value,
    key: &PrivateKey,
    scope: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let transport = ReqwestTransport::new()?;
    let authz = metadata["authorization_endpoint"]
        .as_str()
        .context("no authorization_endpoint")?
        .to_owned();
    let url = |i: usize| {
        // OIDC: offline_access needs prompt=consent; otherwise consent once, then reuse it
        let consent = i == 0 || scope.contains("offline_access");
        authorization_url(s, &authz, key, scope, i, consent)
    };
    let code_of = |cb: &str| -> anyhow::Result<String> {
        let u = url::Url::parse(cb)?;
        u.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .with_context(|| format!("no code in {cb}"))
    };
    // the first authorization signs in and consents; the rest reuse the session
    let mut browser = Browser::new(transport);
    let first = browser
        .sign_in(&url(0), Some(&s.redirect_uri), &s.username, &s.password)
        .await?;
    let mut codes = vec![code_of(&first)?];
    let mut tasks = Vec::new();
    // interactive authorizations (prompt=consent) on one session are minted one at a time:
    // some OPs keep per-session interaction state that parallel flows would trample
    let workers = if scope.contains("offline_access") {
        1
    } else {
        16usize.min(n.max(1))
    };
    for w in 0..workers {
        let (mut browser, s) = (browser.clone(), s.clone());
        let urls: Vec<String> = (1..n).filter(|i| i % workers == w).map(&url).collect();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for u in urls {
                let cb = browser
                    .sign_in(&u, Some(&s.redirect_uri), &s.username, &s.password)
                    .await?;
                out.push(cb);
            }
            Ok::<_, keybound_testkit::browser::BrowserError>(out)
        }));
    }
    for t in tasks {
        for cb in t.await?? {
            codes.push(code_of(&cb)?);
        }
    }
    Ok(codes)
}

struct CodeWork {
    ctx: Ctx,
    codes: Vec<String>,
}

#[async_trait::async_trait]
impl Work for CodeWork {
    async fn send(&self, i: u64, _worker: usize) -> Outcome {
        let code = usize::try_from(i)
            .ok()
            .and_then(|i| self.codes.get(i))
            .ok_or("no code left")?;
        self.ctx.exchange(code).await.map(|_| ())
    }
}

/// Ask for `n` device codes bound to `key` and approve each on the OP's pages; the device codes.
async fn mint_device_codes(
    s: &Settings,
    metadata: &Value,
    ctx: &Ctx,
    scope: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let endpoint = metadata["device_authorization_endpoint"]
        .as_str()
        .context("the OP has no device_authorization_endpoint")?
        .to_owned();
    let mut browser = Browser::new(ReqwestTransport::new()?);
    let jkt = ctx.key.public_jwk().thumbprint().to_string();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body = serde_urlencoded::to_string([
            ("client_id", s.client_id.as_str()),
            ("scope", scope),
            ("dpop_jkt", &jkt),
            ("nonce", &format!("n{i}")),
        ])?;
        let r = classify(
            ctx.http
                .post(&endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await,
        )
        .await
        .map_err(|e| anyhow::anyhow!("device authorization: {e}"))?;
        let complete = r["verification_uri_complete"]
            .as_str()
            .context("no verification_uri_complete")?;
        browser
            .approve_device(complete, &s.username, &s.password)
            .await?;
        out.push(
            r["device_code"]
                .as_str()
                .context("no device_code")?
                .to_owned(),
        );
    }
    Ok(out)
}

struct DeviceWork {
    ctx: Ctx,
    codes: Vec<String>,
}

#[async_trait::async_trait]
impl Work for DeviceWork {
    async fn send(&self, i: u64, _worker: usize) -> Outcome {
        let code = usize::try_from(i)
            .ok()
            .and_then(|i| self.codes.get(i))
            .ok_or("no device code left")?;
        let proof = self.ctx.redeeming_proof(code)?;
        self.ctx
            .token(
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", code),
                    ("client_id", &self.ctx.client_id),
                ],
                &proof,
            )
            .await
            .map(|_| ())
    }
}

struct RefreshWork {
    ctx: Ctx,
    pool_tx: mpsc::UnboundedSender<String>,
    pool_rx: Mutex<mpsc::UnboundedReceiver<String>>,
}

#[async_trait::async_trait]
impl Work for RefreshWork {
    async fn send(&self, _i: u64, _worker: usize) -> Outcome {
        let rt = self
            .pool_rx
            .lock()
            .await
            .recv()
            .await
            .ok_or("pool closed")?;
        let proof = plain_proof(&self.ctx)?;
        let r = self.ctx.token(&self.ctx.refresh_form(&rt), &proof).await;
        match r {
            Ok(v) => {
                let next = v["refresh_token"].as_str().map_or(rt, str::to_owned);
                let _ = self.pool_tx.send(next);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

struct UserinfoWork {
    ctx: Ctx,
    tokens: Vec<String>,
}

#[async_trait::async_trait]
impl Work for UserinfoWork {
    async fn send(&self, i: u64, _worker: usize) -> Outcome {
        let at = &self.tokens[usize::try_from(i).unwrap_or(0) % self.tokens.len()];
        let url = self
            .ctx
            .userinfo_endpoint
            .as_deref()
            .ok_or("no userinfo endpoint")?;
        let proof = ProofBuilder::new("GET", url, now(), &jti())
            .ath_for(at)
            .sign(&self.ctx.key)
            .map_err(|e| e.to_string())?;
        classify(
            self.ctx
                .http
                .get(self.ctx.at_node(url))
                .header("authorization", format!("DPoP {at}"))
                .header("DPoP", proof)
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }
}

struct VerifyWork {
    verifier: keybound_verify::Verifier,
    id_token: String,
    /// the run's proofs, then as many more for the interleaved pass
    proofs: Vec<String>,
    /// the OP's and the client's public keys (uncompressed points)
    keys: (Vec<u8>, Vec<u8>),
}

/// Signing input and signature of a compact JWS.
fn signed_parts(jws: &str) -> Option<(&[u8], Vec<u8>)> {
    let (input, sig) = jws.rsplit_once('.')?;
    Some((input.as_bytes(), keybound_jose::b64::decode(sig).ok()?))
}

impl VerifyWork {
    /// Presentation `i` through the verifier: the measured request of the run and of the
    /// interleaved pass.
    async fn present(&self, i: usize) -> Outcome {
        let dpop = [self.proofs[i].as_str()];
        self.verifier
            .verify_http(keybound_verify::HttpPresentation {
                id_token: Some(&self.id_token),
                dpop: &dpop,
                htm: "GET",
                path: "/orders",
            })
            .await
            .map(|_| ())
            .map_err(|e| e.code().as_str().to_owned())
    }

    /// The two ES256 verifications of a presentation alone, over its already decoded parts
    /// (ID Token, proof): exactly what the crypto bound times, nothing else.
    fn crypto_only(&self, parts: &[(&[u8], Vec<u8>); 2]) -> bool {
        use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
        [&self.keys.0, &self.keys.1]
            .iter()
            .zip(parts)
            .all(|(key, (input, sig))| {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
                    .verify(input, sig)
                    .is_ok()
            })
    }
}

/// Run a future that never waits (the verifier's JWKS and replay cache are in memory) to
/// completion on this thread.
fn block_on_ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[async_trait::async_trait]
impl Work for VerifyWork {
    async fn send(&self, i: u64, _worker: usize) -> Outcome {
        self.present(usize::try_from(i).unwrap_or(0)).await
    }

    #[allow(clippy::disallowed_methods, clippy::cast_precision_loss)] // measuring is the point
    fn interleaved_efficiency(&self, cores: usize) -> Option<f64> {
        let half = self.proofs.len() / 2;
        let per_core = half / cores.max(1);
        let totals: Vec<Option<(f64, f64)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..cores.max(1))
                .map(|c| {
                    scope.spawn(move || {
                        let (mut whole, mut crypto) = (0.0, 0.0);
                        for i in (half + c * per_core)..(half + (c + 1) * per_core) {
                            let t = std::time::Instant::now();
                            block_on_ready(self.present(i)).ok()?;
                            whole += t.elapsed().as_secs_f64();
                            // decoding is the presentation's work, not the crypto's: untimed
                            let parts = [
                                signed_parts(&self.id_token)?,
                                signed_parts(&self.proofs[i])?,
                            ];
                            let t = std::time::Instant::now();
                            if !self.crypto_only(&parts) {
                                return None;
                            }
                            crypto += t.elapsed().as_secs_f64();
                        }
                        Some((whole, crypto))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().ok().flatten())
                .collect()
        });
        let (mut whole, mut crypto) = (0.0, 0.0);
        for t in totals {
            let (w, c) = t?;
            whole += w;
            crypto += c;
        }
        (whole > 0.0).then(|| crypto / whole)
    }
}

/// A junk token request: a refresh token nobody issued, with a valid proof.
struct JunkWork {
    ctx: Ctx,
}

#[async_trait::async_trait]
impl Work for JunkWork {
    async fn send(&self, _i: u64, _worker: usize) -> Outcome {
        let proof = ProofBuilder::new("POST", &self.ctx.token_endpoint, now(), &jti())
            .sign(&self.ctx.key)
            .map_err(|e| e.to_string())?;
        let garbage = keybound_jose::random_b64(32);
        match self
            .ctx
            .token(
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &garbage),
                    ("client_id", &self.ctx.client_id),
                ],
                &proof,
            )
            .await
        {
            // the expected answer to junk
            Err(e) if e == "invalid_grant" => Ok(()),
            Ok(_) => Err("junk accepted".into()),
            Err(e) => Err(e),
        }
    }
}

/// One wrong password for `username` from a fresh browser: the login page, then the form.
struct GuessWork {
    transport: ReqwestTransport,
    url: String,
    action: String,
    username: String,
    address: Option<String>,
}

#[async_trait::async_trait]
impl Work for GuessWork {
    async fn send(&self, i: u64, _worker: usize) -> Outcome {
        let mut b = fresh_browser(&self.transport, self.address.as_deref());
        let page = b
            .request(keybound_rp::HttpRequest::get(&self.url))
            .await
            .map_err(|_| "transport".to_owned())?;
        if page.status != 200 {
            return Err(format!("login page http-{}", page.status));
        }
        let mut fields =
            keybound_testkit::browser::hidden_fields(&String::from_utf8_lossy(&page.body));
        fields.push(("username".into(), self.username.clone()));
        fields.push(("password".into(), format!("wrong-guess-{i}")));
        let body = serde_urlencoded::to_string(&fields).map_err(|e| e.to_string())?;
        let r = b
            .request(keybound_rp::HttpRequest::post_form(
                &self.action,
                body.into_bytes(),
            ))
            .await
            .map_err(|_| "transport".to_owned())?;
        match r.status {
            401 => Ok(()),
            429 => Err("throttled (429)".into()),
            s => Err(format!("http-{s}")),
        }
    }
}

/// A fresh token-endpoint proof (no `c_s256`).
fn plain_proof(ctx: &Ctx) -> Result<String, String> {
    ProofBuilder::new("POST", &ctx.token_endpoint, now(), &jti())
        .sign(&ctx.key)
        .map_err(|e| e.to_string())
}

/// Token exchange of one key-bound ID Token (the IdP side of identity chaining).
struct ExchangeWork {
    ctx: Ctx,
    id_token: String,
    audience: String,
}

#[async_trait::async_trait]
impl Work for ExchangeWork {
    async fn send(&self, _i: u64, _worker: usize) -> Outcome {
        let proof = plain_proof(&self.ctx)?;
        let request =
            keybound_proto::wire::TokenExchangeRequest::id_jag(&self.id_token, &self.audience);
        let v = self.ctx.token(&request.form(), &proof).await?;
        if v["issued_token_type"] == keybound_proto::wire::token_type::ID_JAG {
            Ok(())
        } else {
            Err("not an ID-JAG".into())
        }
    }
}

/// jwt-bearer redemption of one key-bound ID-JAG (the resource AS side).
struct JwtBearerWork {
    ctx: Ctx,
    id_jag: String,
}

#[async_trait::async_trait]
impl Work for JwtBearerWork {
    async fn send(&self, _i: u64, _worker: usize) -> Outcome {
        let proof = plain_proof(&self.ctx)?;
        let v = self
            .ctx
            .token(
                &[
                    ("grant_type", keybound_proto::wire::grant_type::JWT_BEARER),
                    ("assertion", &self.id_jag),
                ],
                &proof,
            )
            .await?;
        if v["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("DPoP"))
        {
            Ok(())
        } else {
            Err("not a DPoP access token".into())
        }
    }
}

/// Sign in at the OP of `ctx` (a confidential client) with Key Binding; the key-bound ID Token.
async fn bound_id_token(s: &Settings, metadata: &Value, ctx: &Ctx) -> anyhow::Result<String> {
    let code = mint_codes(s, metadata, &ctx.key, "openid bound_key", 1)
        .await?
        .pop()
        .context("no code")?;
    let t = ctx
        .exchange(&code)
        .await
        .map_err(|e| anyhow::anyhow!("code exchange: {e}"))?;
    t["id_token"]
        .as_str()
        .map(str::to_owned)
        .context("no ID Token")
}

fn pool_size(load: Load) -> usize {
    match load {
        Load::Concurrency(c) => c.max(1),
        Load::Rate(_) => 128,
    }
}

/// The client's context at `s.issuer` (discovered), its metadata and base scope.
async fn client_context(s: &Settings) -> anyhow::Result<(Ctx, Value, &'static str)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(512)
        .build()?;
    let metadata = discover(&http, &s.issuer).await?;
    let key = PrivateKey::generate(KeyKind::Es256)?;
    let base_scope = if s.key_binding {
        "openid bound_key"
    } else {
        "openid"
    };
    let ctx = Ctx {
        http,
        token_endpoint: metadata["token_endpoint"]
            .as_str()
            .context("no token_endpoint")?
            .to_owned(),
        userinfo_endpoint: metadata["userinfo_endpoint"].as_str().map(str::to_owned),
        key: Arc::new(key),
        client_id: s.client_id.clone(),
        redirect_uri: s.redirect_uri.clone(),
        key_binding: s.key_binding,
        basic: s
            .client_secret
            .as_deref()
            .map(|secret| keybound_testkit::op::basic_auth(&s.client_id, secret)),
        nodes: Arc::new(s.nodes.clone()),
        next_node: Arc::default(),
    };
    Ok((ctx, metadata, base_scope))
}

/// Refresh tokens of `n` independent grants (each from its own code with `offline_access`).
async fn mint_refresh_tokens(
    s: &Settings,
    metadata: &Value,
    ctx: &Ctx,
    base_scope: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let scope = format!("{base_scope} offline_access");
    let codes = mint_codes(s, metadata, &ctx.key, &scope, n).await?;
    let mut out = Vec::with_capacity(n);
    for c in codes {
        let t = ctx
            .exchange(&c)
            .await
            .map_err(|e| anyhow::anyhow!("exchange: {e}"))?;
        let rt = t["refresh_token"]
            .as_str()
            .context("no refresh_token: does the OP issue them for offline_access?")?;
        out.push(rt.to_owned());
    }
    Ok(out)
}

/// The timed requests of `code` or `refresh`, pre-minted for a load generator that replays
/// them (`wrk` with bench/wrk-replay.lua): each with its own code or refresh token and a proof
/// made now, one request per line: path, `DPoP`, `Authorization` (or empty) and the form body,
/// separated by tabs. Proofs age: the OP accepts them for its proof lifetime (keybound: 60 s).
pub async fn emit_requests(s: &Settings, out: &mut dyn std::io::Write) -> anyhow::Result<usize> {
    let (ctx, metadata, base_scope) = client_context(s).await?;
    let n = usize::try_from(s.requests)?;
    let path = url::Url::parse(&ctx.token_endpoint)?.path().to_owned();
    let auth = ctx.basic.clone().unwrap_or_default();
    let mut line = |proof: String, form: &[(&str, &str)]| -> anyhow::Result<()> {
        let body = serde_urlencoded::to_string(form)?;
        writeln!(out, "{path}\t{proof}\t{auth}\t{body}")?;
        Ok(())
    };
    match s.mode {
        Mode::Code => {
            let codes = mint_codes(s, &metadata, &ctx.key, base_scope, n).await?;
            for code in &codes {
                let proof = ctx.redeeming_proof(code).map_err(|e| anyhow::anyhow!(e))?;
                line(proof, &ctx.code_form(code))?;
            }
        }
        Mode::Refresh => {
            for rt in mint_refresh_tokens(s, &metadata, &ctx, base_scope, n).await? {
                let proof = plain_proof(&ctx).map_err(|e| anyhow::anyhow!(e))?;
                line(proof, &ctx.refresh_form(&rt))?;
            }
        }
        other => bail!("requests can be emitted for code and refresh, not {other:?}"),
    }
    Ok(n)
}

/// Prepare `settings.mode`.
pub async fn prepare(s: &Settings) -> anyhow::Result<Prepared> {
    if s.mode == Mode::Verify {
        return prepare_verify(s);
    }
    let (ctx, metadata, base_scope) = client_context(s).await?;
    let n = usize::try_from(s.requests)?;
    Ok(match s.mode {
        Mode::Code => {
            let codes = mint_codes(s, &metadata, &ctx.key, base_scope, n).await?;
            Prepared {
                work: Arc::new(CodeWork { ctx, codes }),
                verifies: 1,
                signs: 2,
                probe: None,
            }
        }
        Mode::Refresh => {
            let (tx, rx) = mpsc::unbounded_channel();
            for rt in mint_refresh_tokens(s, &metadata, &ctx, base_scope, pool_size(s.load)).await?
            {
                let _ = tx.send(rt);
            }
            Prepared {
                work: Arc::new(RefreshWork {
                    ctx,
                    pool_tx: tx,
                    pool_rx: Mutex::new(rx),
                }),
                verifies: 1,
                signs: 2,
                probe: None,
            }
        }
        Mode::Userinfo => {
            let codes = mint_codes(s, &metadata, &ctx.key, base_scope, 8).await?;
            let mut tokens = Vec::new();
            for c in codes {
                let t = ctx
                    .exchange(&c)
                    .await
                    .map_err(|e| anyhow::anyhow!("exchange: {e}"))?;
                tokens.push(
                    t["access_token"]
                        .as_str()
                        .context("no access_token")?
                        .to_owned(),
                );
            }
            Prepared {
                work: Arc::new(UserinfoWork { ctx, tokens }),
                verifies: 2,
                signs: 0,
                probe: None,
            }
        }
        Mode::Device => {
            let codes = mint_device_codes(s, &metadata, &ctx, base_scope, n).await?;
            Prepared {
                work: Arc::new(DeviceWork { ctx, codes }),
                verifies: 1,
                signs: 2,
                probe: None,
            }
        }
        Mode::Junk => Prepared {
            work: Arc::new(JunkWork { ctx }),
            verifies: 1,
            signs: 0,
            probe: None,
        },
        Mode::Guess => {
            let authz = metadata["authorization_endpoint"]
                .as_str()
                .context("no authorization_endpoint")?
                .to_owned();
            let url = authorization_url(s, &authz, &ctx.key, base_scope, 0, false);
            Prepared {
                work: Arc::new(GuessWork {
                    transport: ReqwestTransport::new()?,
                    url: url.clone(),
                    action: authz,
                    username: s.username.clone(),
                    address: s.guesser_address.clone(),
                }),
                verifies: 0,
                signs: 0,
                probe: s.probe.as_ref().map(|_| url),
            }
        }
        Mode::Exchange => {
            let audience = s
                .audience
                .clone()
                .context("--audience (the resource AS issuer) is needed")?;
            let id_token = bound_id_token(s, &metadata, &ctx).await?;
            Prepared {
                work: Arc::new(ExchangeWork {
                    ctx,
                    id_token,
                    audience,
                }),
                // the proof and the subject ID Token verified, the ID-JAG signed
                verifies: 2,
                signs: 1,
                probe: None,
            }
        }
        Mode::JwtBearer => {
            let idp = s
                .idp_issuer
                .clone()
                .context("--idp-issuer (where the ID-JAG is made) is needed")?;
            let (as_id, as_secret) = s
                .as_client
                .clone()
                .context("--as-client-id and --as-client-secret are needed")?;
            // at the IdP: sign in with the same key, exchange for an ID-JAG for this AS
            let idp_meta = discover(&ctx.http, &idp).await?;
            let at_idp = Ctx {
                token_endpoint: idp_meta["token_endpoint"]
                    .as_str()
                    .context("no token_endpoint at the IdP")?
                    .to_owned(),
                userinfo_endpoint: None,
                // --node names the resource AS's nodes, not the IdP's
                nodes: Arc::default(),
                ..ctx.clone()
            };
            let idp_settings = Settings {
                issuer: idp.clone(),
                ..s.clone()
            };
            let id_token = bound_id_token(&idp_settings, &idp_meta, &at_idp).await?;
            let audience = s.audience.clone().unwrap_or_else(|| s.issuer.clone());
            let proof = plain_proof(&at_idp).map_err(|e| anyhow::anyhow!(e))?;
            let request = keybound_proto::wire::TokenExchangeRequest::id_jag(&id_token, &audience);
            let v = at_idp
                .token(&request.form(), &proof)
                .await
                .map_err(|e| anyhow::anyhow!("token exchange at the IdP: {e}"))?;
            let id_jag = v["access_token"].as_str().context("no ID-JAG")?.to_owned();
            let at_as = Ctx {
                basic: Some(keybound_testkit::op::basic_auth(&as_id, &as_secret)),
                ..ctx
            };
            Prepared {
                work: Arc::new(JwtBearerWork { ctx: at_as, id_jag }),
                // the proof and the ID-JAG verified, the access token signed
                verifies: 2,
                signs: 1,
                probe: None,
            }
        }
        Mode::Verify => bail!("unreachable"),
    })
}

/// The uncompressed point of an ES256 key's public half.
fn point(key: &PrivateKey) -> anyhow::Result<Vec<u8>> {
    let v = key.public_jwk().to_value();
    let coord = |c: &str| -> anyhow::Result<Vec<u8>> {
        let s = v[c].as_str().with_context(|| format!("no {c}"))?;
        Ok(keybound_jose::b64::decode(s)?)
    };
    Ok([vec![4u8], coord("x")?, coord("y")?].concat())
}

fn prepare_verify(s: &Settings) -> anyhow::Result<Prepared> {
    let op = PrivateKey::generate(KeyKind::Es256)?;
    let client = PrivateKey::generate(KeyKind::Es256)?;
    let now = now();
    let id_token = keybound_testkit::tokens::BoundIdToken {
        ttl: 3600,
        ..keybound_testkit::tokens::BoundIdToken::new(&op, &client, "app", now)
    }
    .sign();
    let n = usize::try_from(s.requests)?;
    // n for the run, n more for the interleaved pass after it
    let proofs = (0..2 * n)
        .map(|i| {
            keybound_proto::presentation::http_proof(
                &client,
                &id_token,
                "GET",
                "https://api.example/orders",
                now,
                &format!("load-{i}"),
                None,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verifier = keybound_verify::Verifier::new(
        keybound_verify::VerifierConfig::new(
            keybound_verify::TrustedIssuer::new("https://op.example", "https://op.example/jwks"),
            vec!["app".into()],
            "https://api.example",
        ),
        Arc::new(keybound_verify::StaticJwks(JwkSet::signing_key(
            &op, "op-1",
        ))),
        Arc::new(keybound_verify::MemoryReplayCache::new(2 * n + 16)),
        Arc::new(keybound_verify::ManualClock::new(now)),
    );
    Ok(Prepared {
        work: Arc::new(VerifyWork {
            verifier,
            id_token,
            proofs,
            keys: (point(&op)?, point(&client)?),
        }),
        verifies: 2,
        signs: 0,
        probe: None,
    })
}
