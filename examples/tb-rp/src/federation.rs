//! Token Binding on loopback, for `keybound demo --token-binding` and the tests: a throwaway
//! certificate, a TLS 1.2 Token Binding listener serving any router (the OP, this RP, a
//! probe), a Token Binding user agent ([`TbTransport`]) that the one form
//! [`Browser`](keybound_rp::browser::Browser) drives (browsers dropped Token Binding in 2018),
//! a TLS terminator in the style of mod_token_binding, and a [`Federation`]: an OP and this
//! example RP started together with one End-User ([`ALICE`]).
//!
//! The user agent keeps one Token Binding key per site (scheme-less `host:port`), opens a new
//! connection per request, signs the provided binding over that connection's EKM, and after a
//! redirect that carried `Include-Referred-Token-Binding-ID: true` adds a referred binding (its
//! key for the redirecting site) to the next request only (RFC 8473 §5).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::{header, Request};
use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use keybound_proto::tokbind::{self, KeyParameters, TokenBindingId};
use keybound_rp::{HttpRequest, HttpResponse, RpError, Transport};
use keybound_tls::client::{self, ClientConfig, TbKey};

/// The host name of the federation's web RP: a web client of the implicit and hybrid flows
/// needs an https redirect URI that is not localhost or a loopback address (OIDC Core
/// 3.2.2.1), so the RP is reached by this name, which [`TbTransport`] resolves to 127.0.0.1.
pub const RP_HOST: &str = "rp.test";

/// A self-signed certificate for `127.0.0.1`, `localhost` and [`RP_HOST`], PEM.
#[derive(Clone)]
pub struct TestCert {
    /// the certificate (also the trust root)
    pub cert_pem: String,
    /// its private key
    pub key_pem: String,
}

impl std::fmt::Debug for TestCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCert").finish_non_exhaustive()
    }
}

impl TestCert {
    /// A fresh one.
    pub fn generate() -> Self {
        let c = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            RP_HOST.to_owned(),
        ])
        .unwrap_or_else(|e| panic!("test certificate: {e}"));
        TestCert {
            cert_pem: c.cert.pem(),
            key_pem: c.key_pair.serialize_pem(),
        }
    }

    /// Write `cert.pem` and `key.pem` into `dir` (for `--tls-cert` / `--tls-key`); their paths.
    pub fn write_to(&self, dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&key, &self.key_pem).unwrap_or_else(|e| panic!("{e}"));
        (cert, key)
    }

    /// A reqwest client (rustls, no redirects followed) that trusts this certificate.
    pub fn https_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.cert_pem.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A router served on `127.0.0.1:<random>` over TLS 1.2 with Token Binding, every request
/// checked by [`keybound_tls::verify_token_binding`]. Stops when dropped.
#[derive(Debug)]
pub struct TbListener {
    /// where it listens
    pub addr: SocketAddr,
    /// its certificate
    pub cert: TestCert,
    handle: axum_server::Handle,
}

impl TbListener {
    /// Serve `router` with a new certificate.
    pub fn start(router: Router) -> Self {
        Self::start_with(router, TestCert::generate())
    }

    /// Serve `router` with `cert`.
    pub fn start_with(router: Router, cert: TestCert) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        Self::serve(listener, router, cert)
    }

    /// Serve `router` on an already bound listener.
    pub fn serve(listener: std::net::TcpListener, router: Router, cert: TestCert) -> Self {
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let ctx = keybound_tls::server_context(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
            .unwrap_or_else(|e| panic!("TLS context: {e}"));
        let acceptor =
            keybound_tls::TbAcceptor::new(ctx, axum_server::accept::DefaultAcceptor::new());
        let app = router.layer(axum::middleware::from_fn(
            keybound_tls::verify_token_binding,
        ));
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp(listener)
            .acceptor(acceptor)
            .handle(handle.clone());
        tokio::spawn(async move {
            let _ = server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await;
        });
        TbListener { addr, cert, handle }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for TbListener {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// The Token Binding user agent as a [`Transport`] (no redirects followed; the browser does).
pub struct TbTransport {
    config: ClientConfig,
    params: KeyParameters,
    keys: Mutex<HashMap<String, Arc<TbKey>>>,
    /// the key to send as a referred binding on the next request
    referral: Mutex<Option<Arc<TbKey>>>,
    /// whether to honour `Include-Referred-Token-Binding-ID`
    refer: bool,
    /// refer with a key of no site (a user agent that lies about its binding with the RP)
    foreign_referral: bool,
}

impl std::fmt::Debug for TbTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbTransport")
            .field("params", &self.params.name())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TbTransport {
    /// A user agent trusting `roots_pem`, with `ecdsap256` keys.
    pub fn new(roots_pem: &str) -> Self {
        Self::with_params(roots_pem, KeyParameters::EcdsaP256)
    }

    /// A user agent offering and using `params`.
    pub fn with_params(roots_pem: &str, params: KeyParameters) -> Self {
        let config = ClientConfig::new(roots_pem.as_bytes())
            .unwrap_or_else(|e| panic!("client TLS: {e}"))
            .offer(&[params]);
        TbTransport {
            config,
            params,
            keys: Mutex::new(HashMap::new()),
            referral: Mutex::new(None),
            refer: true,
            foreign_referral: false,
        }
    }

    /// A user agent that ignores `Include-Referred-Token-Binding-ID` (never reveals its ID
    /// with one site to another).
    #[must_use]
    pub fn without_referrals(mut self) -> Self {
        self.refer = false;
        self
    }

    /// A user agent that, when asked to refer its binding with a site, refers another key's
    /// (so the OP is shown a binding that is not the one the RP sees).
    #[must_use]
    pub fn with_foreign_referrals(mut self) -> Self {
        self.foreign_referral = true;
        self
    }

    /// Send a referred binding with the next request, for this user agent's key with the site
    /// of `url` (as if that site had just redirected here with
    /// `Include-Referred-Token-Binding-ID: true`).
    pub fn refer_next(&self, url: &str) {
        let key = self.key_for(url);
        *lock(&self.referral) = Some(key);
    }

    /// The connection settings (for tests that drive connections by hand).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// This user agent's key for the site of `url` (created on first use).
    pub fn key_for(&self, url: &str) -> Arc<TbKey> {
        let site = site(url);
        lock(&self.keys)
            .entry(site)
            .or_insert_with(|| {
                Arc::new(TbKey::generate(self.params).unwrap_or_else(|e| panic!("{e}")))
            })
            .clone()
    }

    /// Its Token Binding ID with the site of `url`.
    pub fn token_binding_id(&self, url: &str) -> TokenBindingId {
        self.key_for(url).id()
    }
}

/// `host:port` of a URL (the scope of a Token Binding key).
fn site(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| url.to_owned(),
        |u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or_default(),
                u.port_or_known_default().unwrap_or(443)
            )
        },
    )
}

fn http_err(e: impl std::fmt::Display) -> RpError {
    RpError::http("(the Token Binding transport)", e.to_string())
}

#[async_trait]
impl Transport for TbTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError> {
        let url = url::Url::parse(&req.url).map_err(http_err)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        // test names (`localhost`, `*.test` of RFC 6761) are this machine
        let ip = if host == "localhost" || host.rsplit('.').next() == Some("test") {
            "127.0.0.1".to_owned()
        } else {
            host.trim_matches(['[', ']']).to_owned()
        };
        let addr: SocketAddr = format!("{ip}:{port}")
            .parse()
            .or_else(|_| format!("[{ip}]:{port}").parse())
            .map_err(http_err)?;
        let mut conn = client::connect(&self.config, addr, &host)
            .await
            .map_err(http_err)?;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut b = Request::builder()
            .method(req.method.as_str())
            .uri(path)
            .header(header::HOST, format!("{host}:{port}"));
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let provided = self.key_for(&req.url);
        let sent_binding = if let Some((_, ekm)) = conn.token_binding().for_verify() {
            let referred = lock(&self.referral).take();
            let value = client::header(&provided, referred.as_deref(), ekm).map_err(http_err)?;
            b = b.header(tokbind::SEC_TOKEN_BINDING, value);
            true
        } else {
            false
        };
        let request = b
            .body(Full::new(Bytes::from(req.body.unwrap_or_default())))
            .map_err(http_err)?;
        let r = conn.send(request).await.map_err(http_err)?;
        let include_referred = r
            .headers
            .get(tokbind::INCLUDE_REFERRED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        // RFC 8473 §5: only on a redirect, only if this request carried a binding
        if self.refer && sent_binding && include_referred && (300..400).contains(&r.status) {
            let key = if self.foreign_referral {
                Arc::new(TbKey::generate(self.params).map_err(http_err)?)
            } else {
                provided
            };
            *lock(&self.referral) = Some(key);
        }
        Ok(HttpResponse {
            status: r.status,
            headers: r
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body: r.body.to_vec(),
        })
    }
}

/// A Token Binding TLS terminator in front of a plain-HTTP backend, as Apache
/// mod_token_binding is deployed (draft-ietf-tokbind-ttrp): it verifies `Sec-Token-Binding` on
/// its own connections (the [`TbListener`] middleware) and forwards each request to `backend`
/// with `Sec-Provided-Token-Binding-ID` / `Sec-Referred-Token-Binding-ID` (base64url IDs).
/// Serve it with [`TbListener::serve`]; the backend must trust this process's address.
pub fn terminator(backend: SocketAddr) -> Router {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    Router::new().fallback(move |req: axum::extract::Request| {
        let client = client.clone();
        async move { forward(&client, backend, req).await }
    })
}

async fn forward(
    client: &reqwest::Client,
    backend: SocketAddr,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let verified = req
        .extensions()
        .get::<keybound_tls::VerifiedTokenBinding>()
        .cloned();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let mut out = client.request(parts.method.clone(), format!("http://{backend}{path}"));
    for (k, v) in &parts.headers {
        if k != header::HOST && k != tokbind::SEC_TOKEN_BINDING && !hop_by_hop(k.as_str()) {
            out = out.header(k, v);
        }
    }
    if let Some(v) = verified {
        let id = |i: &TokenBindingId| keybound_jose::b64::encode(i.to_bytes().unwrap_or_default());
        out = out.header("Sec-Provided-Token-Binding-ID", id(&v.0.provided));
        if let Some(r) = &v.0.referred {
            out = out.header("Sec-Referred-Token-Binding-ID", id(r));
        }
    }
    let r = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut resp = axum::http::Response::builder().status(r.status().as_u16());
    for (k, v) in r.headers() {
        if !hop_by_hop(k.as_str()) {
            resp = resp.header(k.as_str(), v.as_bytes());
        }
    }
    let bytes = r.bytes().await.unwrap_or_default();
    resp.body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
}

fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "content-length"
    )
}

/// How the OP of a [`Federation`] sees Token Binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpFront {
    /// keybound's own listener verifies it (`token_binding = "native"`)
    Native,
    /// a TLS terminator ([`terminator`]) verifies it and forwards the IDs to the OP on plain
    /// loopback HTTP (`token_binding = "proxy"`, the terminator's address trusted)
    Proxy,
    /// the OP does not do Token Binding (`token_binding = "off"`) though its listener could
    Off,
}

/// The client id of the example RP in a [`Federation`].
pub const TB_CLIENT: &str = "tb-web";
/// Its client secret.
pub const CLIENT_SECRET: &str = "s3cret";
/// The End-User of a [`Federation`]: username, password, `sub`.
pub const ALICE: (&str, &str, &str) = ("alice", "wonderland", "sub-alice");

/// The federation's OP: in memory, on the system clock, with its RP's `client` and [`ALICE`].
async fn provider(issuer: &str, client: &keybound_store::Client) -> keybound_op::Provider {
    let store: Arc<dyn keybound_store::Store> = Arc::new(keybound_store::MemoryStore::new());
    let p = keybound_op::Provider::new(
        keybound_op::OpConfig::new(issuer),
        store.clone(),
        Arc::new(keybound_verify::SystemClock),
        Arc::new(keybound_op::OsRandomness),
    );
    p.ensure_signing_keys()
        .await
        .unwrap_or_else(|e| panic!("signing keys: {e}"));
    store
        .put_client(client)
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    let alice = keybound_store::User {
        name: Some("Alice".into()),
        email: Some("alice@example.com".into()),
        email_verified: true,
        ..keybound_store::User::new(ALICE.2, ALICE.0, keybound_op::password::hash(ALICE.1), 0)
    };
    store
        .put_user(&alice)
        .await
        .unwrap_or_else(|e| panic!("user: {e}"));
    p
}

/// An OP and the example web RP (examples/tb-rp) on loopback, both over TLS with Token
/// Binding and one throwaway certificate, the End-User [`ALICE`] registered.
/// Dropping it stops both.
#[derive(Debug)]
pub struct Federation {
    /// the certificate both present (the user agent's trust root)
    pub cert: TestCert,
    /// the OP's issuer (`https://127.0.0.1:<port>`)
    pub issuer: String,
    /// the RP's base URL
    pub rp: String,
    _op: TbListener,
    _rp: TbListener,
    backend: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Federation {
    fn drop(&mut self) {
        if let Some(b) = &self.backend {
            b.abort();
        }
    }
}

/// What to vary in a [`Federation`].
#[derive(Debug, Clone, Copy)]
pub struct FederationOptions {
    /// how the OP gets Token Binding
    pub front: OpFront,
    /// the RP's downgrade policy
    pub policy: keybound_rp::tokbind::TbPolicy,
    /// whether the RP's client is registered for Token Bound ID Tokens
    pub client_token_bound: bool,
}

impl Default for FederationOptions {
    fn default() -> Self {
        FederationOptions {
            front: OpFront::Native,
            policy: keybound_rp::tokbind::TbPolicy::IfSupported,
            client_token_bound: true,
        }
    }
}

fn bind_loopback() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"))
}

impl Federation {
    /// Start one with `options`, on the system clock.
    pub async fn start(options: FederationOptions) -> Self {
        use keybound_store::{Client, ClientAuthMethod};
        let cert = TestCert::generate();
        let op_listener = bind_loopback();
        let rp_listener = bind_loopback();
        let op_addr = op_listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let rp_addr = rp_listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let issuer = format!("https://{op_addr}");
        let rp = format!("https://{RP_HOST}:{}", rp_addr.port());
        let client = Client {
            name: "Token Binding example RP".into(),
            secret_hash: Some(keybound_op::password::hash(CLIENT_SECRET)),
            redirect_uris: vec![format!("{rp}/callback")],
            response_types: ["code", "id_token", "code id_token"]
                .map(str::to_owned)
                .to_vec(),
            token_bound_id_tokens: options.client_token_bound,
            ..Client::new(TB_CLIENT, ClientAuthMethod::ClientSecretBasic, 0)
        };
        let op = provider(&issuer, &client).await;
        let mode = match options.front {
            OpFront::Native => keybound_server::TokenBindingMode::Native,
            OpFront::Proxy => keybound_server::TokenBindingMode::Proxy,
            OpFront::Off => keybound_server::TokenBindingMode::Off,
        };
        let state = keybound_server::AppState::with_config(
            op,
            keybound_server::ServerConfig {
                trusted_proxies: vec!["127.0.0.1/32".parse().unwrap_or_else(|e| panic!("{e}"))],
                token_binding: mode,
                ..keybound_server::ServerConfig::default()
            },
        );
        let router = keybound_server::router(state);
        let (op_front, backend) = if options.front == OpFront::Proxy {
            let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            let plain_addr = plain.local_addr().unwrap_or_else(|e| panic!("{e}"));
            let task = tokio::spawn(async move {
                let app = router.into_make_service_with_connect_info::<SocketAddr>();
                let _ = axum::serve(plain, app).await;
            });
            (
                TbListener::serve(op_listener, terminator(plain_addr), cert.clone()),
                Some(task),
            )
        } else {
            (TbListener::serve(op_listener, router, cert.clone()), None)
        };
        let http = cert.https_client();
        let config = keybound_rp::RpConfig::new(&issuer, TB_CLIENT, &format!("{rp}/callback"))
            .with_client_secret(CLIENT_SECRET.into())
            .with_scope("openid")
            .with_tb_policy(options.policy);
        let rp_app = crate::TbRp::new(keybound_rp::Rp::new(
            config,
            Arc::new(keybound_rp::ReqwestTransport::with_client(http)),
            Arc::new(keybound_verify::SystemClock),
        ));
        let rp_front = TbListener::serve(rp_listener, crate::router(rp_app), cert.clone());
        Federation {
            cert,
            issuer,
            rp,
            _op: op_front,
            _rp: rp_front,
            backend,
        }
    }

    /// A new browser (its own Token Binding keys and cookie jar).
    pub fn browser(&self) -> keybound_rp::browser::Browser<TbTransport> {
        keybound_rp::browser::Browser::new(TbTransport::new(&self.cert.cert_pem))
    }

    /// A browser whose user agent is built by `f` from this federation's trust root.
    pub fn browser_with(
        &self,
        f: impl FnOnce(&str) -> TbTransport,
    ) -> keybound_rp::browser::Browser<TbTransport> {
        keybound_rp::browser::Browser::new(f(&self.cert.cert_pem))
    }

    /// `<rp>/login?flow=…`.
    pub fn login_url(&self, flow: &str) -> String {
        format!("{}/login?flow={flow}", self.rp)
    }
}
