//! Token Binding over TLS 1.2 on the system OpenSSL: the native listener of `keybound serve
//! --tb-listen` and of example RPs, and the connections of a Token Binding user agent.
//!
//! Why a separate crate on OpenSSL: rustls cannot add TLS extension 24 (`token_binding`,
//! RFC 8472), and Token Binding never reached TLS 1.3 as a standard (docs/token-binding.md).
//! OpenSSL's custom-extension hooks can, so this crate keeps the one piece of unsafe FFI that
//! needs ([`ffi`]) and everything that depends on the system libssl away from the rest of
//! keybound, which stays on rustls and aws-lc-rs.
//!
//! What it gives:
//! - [`server_context`] + [`TbAcceptor`]: a TLS 1.2-only server that negotiates Token Binding
//!   1.0 (`ecdsap256`, `rsa2048_pss`, `rsa2048_pkcs1.5`) only with extended master secret and
//!   renegotiation indication, refuses renegotiation (so one EKM per connection), and hands
//!   every request of the connection a [`TbConnection`] (negotiated key parameters + EKM);
//! - [`verify_token_binding`]: the middleware that checks each request's `Sec-Token-Binding`
//!   against its connection ([`keybound_proto::tokbind::verify_request`]) and refuses the
//!   request with 400 `invalid_request` on any doubt, or passes the verified IDs on as
//!   [`VerifiedTokenBinding`];
//! - [`client`]: a user agent's side (connect, negotiate, sign bindings over the EKM).

mod ffi;

pub mod client;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use keybound_proto::tokbind::{self, KeyParameters, VerifiedBindings};
use openssl::pkey::PKey;
use openssl::ssl::{
    ClientHelloResponse, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslRef,
    SslVersion,
};
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;
use tower::Layer;

/// The RFC 5705 exporter label of Token Binding (RFC 8471 §3.3), no context, 32 bytes.
pub const EKM_LABEL: &str = "EXPORTER-Token-Binding";

/// The key parameters the listener accepts, in no order (the client's preference decides).
const SUPPORTED: [u8; 3] = [2, 1, 0];

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// OpenSSL refused (certificate, key, handshake).
    #[error("TLS: {0}")]
    Tls(String),
    /// Token Binding was negotiated in a way RFC 8472 forbids, or a binding is unusable.
    #[error("Token Binding: {0}")]
    TokenBinding(String),
    /// A socket failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// HTTP on the connection failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// A Token Binding message or key failed.
    #[error(transparent)]
    Proto(#[from] keybound_proto::Error),
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Error::Tls(e.to_string())
    }
}

/// One TLS connection's Token Binding: the negotiated key parameters and the EKM, or neither.
#[derive(Clone, Copy, Default)]
pub struct TbConnection {
    negotiated: Option<KeyParameters>,
    ekm: Option<[u8; 32]>,
}

/// The EKM is a per-connection secret: never printed.
impl std::fmt::Debug for TbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbConnection")
            .field("negotiated", &self.negotiated.map(KeyParameters::name))
            .finish_non_exhaustive()
    }
}

impl TbConnection {
    /// The key parameters negotiated (None: no Token Binding on this connection).
    pub fn negotiated(&self) -> Option<KeyParameters> {
        self.negotiated
    }

    /// The exported keying material the bindings on this connection are signed over.
    pub fn ekm(&self) -> Option<&[u8; 32]> {
        self.ekm.as_ref()
    }

    /// Both, as [`tokbind::verify_request`] takes them.
    pub fn for_verify(&self) -> Option<(KeyParameters, &[u8; 32])> {
        self.negotiated.zip(self.ekm.as_ref())
    }
}

/// Read a finished handshake: what was negotiated, checked once more (RFC 8472 §4: never
/// without extended master secret and renegotiation indication), and the EKM.
pub(crate) fn connection_info(ssl: &SslRef) -> Result<TbConnection, Error> {
    let chosen = ssl.ex_data(ffi::index()?).and_then(|n| n.chosen);
    let Some(param) = chosen else {
        return Ok(TbConnection::default());
    };
    if !ffi::ems_and_ri(ssl) {
        return Err(Error::TokenBinding(
            "negotiated without extended master secret and renegotiation indication \
             (RFC 8472 §4)"
                .to_owned(),
        ));
    }
    let mut ekm = [0u8; 32];
    ssl.export_keying_material(&mut ekm, EKM_LABEL, None)?;
    Ok(TbConnection {
        negotiated: Some(KeyParameters::from_u8(param)),
        ekm: Some(ekm),
    })
}

/// A TLS 1.2 server context with Token Binding, from PEM: the certificate chain (leaf first)
/// and its private key — the same files `tls_cert`/`tls_key` name for the main listener.
pub fn server_context(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<SslContext, Error> {
    let mut b = SslContextBuilder::new(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
    // one EKM per connection: no renegotiation (RFC 8473 §5 would allow it only between
    // requests; keybound does not need it)
    b.set_options(SslOptions::NO_RENEGOTIATION | SslOptions::CIPHER_SERVER_PREFERENCE);
    b.set_cipher_list("ECDHE+AESGCM:ECDHE+CHACHA20")?;
    let mut chain = X509::stack_from_pem(cert_chain_pem)?.into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| Error::Tls("no certificate in the PEM".to_owned()))?;
    b.set_certificate(&leaf)?;
    for c in chain {
        b.add_extra_chain_cert(c)?;
    }
    let key = PKey::private_key_from_pem(key_pem)?;
    b.set_private_key(&key)?;
    b.check_private_key()?;
    b.set_client_hello_callback(|ssl, _alert| {
        ffi::server_choose(ssl, &SUPPORTED)?;
        Ok(ClientHelloResponse::SUCCESS)
    });
    ffi::register(&mut b)?;
    Ok(b.build())
}

/// An axum-server acceptor: the TLS handshake over `inner`'s stream, then every request of
/// the connection carries its [`TbConnection`] as an extension.
#[derive(Clone)]
pub struct TbAcceptor<A> {
    inner: A,
    ctx: SslContext,
    handshake_timeout: Duration,
}

impl<A> std::fmt::Debug for TbAcceptor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbAcceptor").finish_non_exhaustive()
    }
}

impl<A> TbAcceptor<A> {
    /// TLS with Token Binding on top of `inner` (a connection limit, or
    /// `axum_server::accept::DefaultAcceptor`); handshakes must finish within 10 s.
    pub fn new(ctx: SslContext, inner: A) -> Self {
        TbAcceptor {
            inner,
            ctx,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

type AcceptFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl<I, S, A> Accept<I, S> for TbAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = SslStream<A::Stream>;
    type Service = axum::middleware::AddExtension<A::Service, TbConnection>;
    type Future = AcceptFuture<(Self::Stream, Self::Service)>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.inner.accept(stream, service);
        let ctx = self.ctx.clone();
        let timeout = self.handshake_timeout;
        Box::pin(async move {
            let (stream, service) = inner.await?;
            let ssl = Ssl::new(&ctx).map_err(io::Error::other)?;
            let mut tls = SslStream::new(ssl, stream).map_err(io::Error::other)?;
            tokio::time::timeout(timeout, Pin::new(&mut tls).accept())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
                .map_err(|e| io::Error::other(e.to_string()))?;
            let info = connection_info(tls.ssl()).map_err(io::Error::other)?;
            Ok((tls, axum::Extension(info).layer(service)))
        })
    }
}

/// The Token Binding IDs a request proved on its own connection (set by
/// [`verify_token_binding`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTokenBinding(pub VerifiedBindings);

/// Headers only a trusted TLS terminator may set; on the native listener keybound is the
/// terminator, so whatever a client sends under these names is dropped.
const TERMINATOR_HEADERS: [&str; 2] = [
    "sec-provided-token-binding-id",
    "sec-referred-token-binding-id",
];

/// Middleware for every route of a Token Binding listener: verify the request's
/// `Sec-Token-Binding` against its connection. On success the IDs travel on as
/// [`VerifiedTokenBinding`]; on any failure the request is refused (RFC 8473 §2, RFC 8471
/// §4.2, TB-S6: tokens bound on this connection cannot be trusted either) with 400
/// `invalid_request`, the reason, and `Connection: close`.
pub async fn verify_token_binding(mut req: Request, next: Next) -> Response {
    for name in TERMINATOR_HEADERS {
        req.headers_mut().remove(name);
    }
    let conn = req
        .extensions()
        .get::<TbConnection>()
        .copied()
        .unwrap_or_default();
    let values: Result<Vec<&str>, _> = req
        .headers()
        .get_all(tokbind::SEC_TOKEN_BINDING)
        .iter()
        .map(HeaderValue::to_str)
        .collect();
    let verdict = match values {
        Ok(values) => tokbind::verify_request(&values, conn.for_verify()),
        Err(_) => Err(keybound_proto::Error::TokenBindingMalformed(
            "the Sec-Token-Binding header is not visible ASCII".to_owned(),
        )),
    };
    match verdict {
        Ok(Some(v)) => {
            req.extensions_mut().insert(VerifiedTokenBinding(v));
            next.run(req).await
        }
        Ok(None) => next.run(req).await,
        Err(e) => refusal(&e),
    }
}

/// The one wire form of a refused Token Binding.
fn refusal(e: &keybound_proto::Error) -> Response {
    tracing::info!(reason = %e, "Token Binding refused");
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": e.to_string(),
    });
    let mut r = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}
