//! Token Binding on loopback: a throwaway certificate, a TLS 1.2 Token Binding listener
//! serving any router (the OP, an example RP, a probe), and the test user agent
//! ([`TbTransport`]) that the one form [`Browser`](crate::browser::Browser) drives.
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

/// A self-signed certificate for `127.0.0.1` and `localhost`, PEM.
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
        ])
        .unwrap_or_else(|e| panic!("test certificate: {e}"));
        TestCert {
            cert_pem: c.cert.pem(),
            key_pem: c.key_pair.serialize_pem(),
        }
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
        }
    }

    /// A user agent that ignores `Include-Referred-Token-Binding-ID` (never reveals its ID
    /// with one site to another).
    #[must_use]
    pub fn without_referrals(mut self) -> Self {
        self.refer = false;
        self
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
    RpError::Http(e.to_string())
}

#[async_trait]
impl Transport for TbTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, RpError> {
        let url = url::Url::parse(&req.url).map_err(http_err)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let ip = if host == "localhost" {
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
            *lock(&self.referral) = Some(provided);
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
