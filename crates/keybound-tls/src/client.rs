//! A Token Binding user agent's side of the wire: connect over TLS 1.2 offering Token Binding,
//! read the negotiated key parameters and the EKM, sign provided and referred bindings with
//! one key per site, and send HTTP/1.1 requests on that connection.
//!
//! Browsers dropped Token Binding in 2018, so keybound's tests, demo and examples bring this
//! user agent themselves (docs/token-binding.md). It also lets tests misbehave on purpose:
//! every step is separate, so a test can sign over another connection's EKM, send two headers,
//! or offer key parameters the server does not support.

use std::net::SocketAddr;
use std::pin::Pin;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use keybound_proto::tokbind::{
    KeyParameters, TbPublicKey, TokenBinding, TokenBindingId, TokenBindingMessage, TokenBindingType,
};
use openssl::ssl::{SslConnector, SslMethod, SslOptions, SslVersion};
use openssl::x509::X509;
use tokio_openssl::SslStream;

use crate::{connection_info, ffi, Error, TbConnection};

/// How a user agent connects: the roots it trusts and the key parameters it offers (most
/// preferred first; empty: no Token Binding).
#[derive(Clone)]
pub struct ClientConfig {
    roots: Vec<X509>,
    offer: Vec<u8>,
    no_ems: bool,
    /// built once from the settings above (the offer is per connection, in ex_data)
    connector: SslConnector,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("offer", &self.offer)
            .field("no_ems", &self.no_ems)
            .finish_non_exhaustive()
    }
}

/// `SSL_OP_NO_EXTENDED_MASTER_SECRET` (OpenSSL 3.0), which the openssl crate does not name.
const SSL_OP_NO_EXTENDED_MASTER_SECRET: u64 = 1;

impl ClientConfig {
    /// Trust the PEM certificates in `roots_pem`; offer `ecdsap256`.
    pub fn new(roots_pem: &[u8]) -> Result<Self, Error> {
        let roots = X509::stack_from_pem(roots_pem)?;
        Ok(ClientConfig {
            connector: Self::connector(&roots, false)?,
            roots,
            offer: vec![KeyParameters::EcdsaP256.to_u8()],
            no_ems: false,
        })
    }

    /// Offer these key parameters instead (empty: do not offer Token Binding).
    #[must_use]
    pub fn offer(mut self, params: &[KeyParameters]) -> Self {
        self.offer = params.iter().map(|p| p.to_u8()).collect();
        self
    }

    /// Do not offer extended master secret (RFC 7627), as a pre-2015 client would: a server
    /// must then not negotiate Token Binding (RFC 8472 §4). For tests of servers.
    pub fn without_extended_master_secret(mut self) -> Result<Self, Error> {
        self.no_ems = true;
        self.connector = Self::connector(&self.roots, true)?;
        Ok(self)
    }

    fn connector(roots: &[X509], no_ems: bool) -> Result<SslConnector, Error> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        for cert in roots {
            b.cert_store_mut().add_cert(cert.clone())?;
        }
        if no_ems {
            b.set_options(SslOptions::from_bits_retain(
                SSL_OP_NO_EXTENDED_MASTER_SECRET,
            ));
        }
        ffi::register(&mut b)?;
        Ok(b.build())
    }
}

/// One TLS connection of the user agent, HTTP/1.1 on top.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    tb: TbConnection,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("tb", &self.tb)
            .finish_non_exhaustive()
    }
}

/// A plain response.
#[derive(Debug, Clone)]
pub struct Response {
    /// status code
    pub status: u16,
    /// headers (names lower-case, as `http` keeps them)
    pub headers: axum::http::HeaderMap,
    /// body
    pub body: Bytes,
}

/// Connect to `addr`, verify the certificate for `server_name`, offer Token Binding as
/// configured, and report what was negotiated.
pub async fn connect(
    config: &ClientConfig,
    addr: SocketAddr,
    server_name: &str,
) -> Result<Connection, Error> {
    let mut ssl = config.connector.configure()?.into_ssl(server_name)?;
    ssl.set_ex_data(
        ffi::index()?,
        ffi::Negotiation::offering(config.offer.clone()),
    );
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = SslStream::new(ssl, tcp)?;
    if let Err(e) = Pin::new(&mut tls).connect().await {
        let refused = tls.ssl().ex_data(ffi::index()?).and_then(|n| n.refused);
        return Err(match refused {
            Some(why) => Error::TokenBinding(why.to_owned()),
            None => Error::Tls(e.to_string()),
        });
    }
    let tb = connection_info(tls.ssl())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| Error::Http(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "user agent connection closed");
        }
    });
    Ok(Connection { sender, tb })
}

impl Connection {
    /// What this connection negotiated (and its EKM).
    pub fn token_binding(&self) -> TbConnection {
        self.tb
    }

    /// Send one request on this connection.
    pub async fn send(&mut self, req: axum::http::Request<Full<Bytes>>) -> Result<Response, Error> {
        let r = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        let (parts, body) = r.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Error::Http(e.to_string()))?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

enum KeyKind {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A Token Binding key (one per site, as RFC 8473 §3 scopes them), never exported.
pub struct TbKey {
    params: KeyParameters,
    key: KeyKind,
}

impl std::fmt::Debug for TbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TbKey")
            .field("params", &self.params.name())
            .finish_non_exhaustive()
    }
}

impl TbKey {
    /// A fresh key for `params` (`ecdsap256`, `rsa2048_pss` or `rsa2048_pkcs1.5`).
    pub fn generate(params: KeyParameters) -> Result<Self, Error> {
        let key = match params {
            KeyParameters::EcdsaP256 => KeyKind::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|e| Error::TokenBinding(e.to_string()))?,
            ),
            KeyParameters::RsaPss | KeyParameters::RsaPkcs1 => KeyKind::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|e| Error::TokenBinding(e.to_string()))?,
            ),
            KeyParameters::Unknown(p) => {
                return Err(Error::TokenBinding(format!(
                    "no key for key parameters {p}"
                )))
            }
        };
        Ok(TbKey { params, key })
    }

    /// The key parameters.
    pub fn params(&self) -> KeyParameters {
        self.params
    }

    /// This key's TokenBindingID.
    pub fn id(&self) -> TokenBindingId {
        let key = match &self.key {
            KeyKind::Ec(k) => TbPublicKey::Ec {
                // X9.62 uncompressed: 0x04 ‖ X ‖ Y; the TB point is X ‖ Y (RFC 8471 §3.1)
                point: k
                    .public_key()
                    .as_ref()
                    .get(1..)
                    .unwrap_or_default()
                    .to_vec(),
            },
            KeyKind::Rsa(k) => {
                let pk = k.public_key();
                TbPublicKey::Rsa {
                    modulus: pk.modulus().big_endian_without_leading_zero().to_vec(),
                    exponent: pk.exponent().big_endian_without_leading_zero().to_vec(),
                }
            }
        };
        TokenBindingId {
            key_parameters: self.params,
            key,
        }
    }

    /// A binding of `tb_type` signed over `ekm` (RFC 8471 §3.3).
    pub fn binding(
        &self,
        tb_type: TokenBindingType,
        ekm: &[u8; 32],
    ) -> Result<TokenBinding, Error> {
        let mut b = TokenBinding {
            tb_type,
            id: self.id(),
            signature: Vec::new(),
            extensions: Vec::new(),
        };
        let data = b.signed_data(ekm);
        let rng = SystemRandom::new();
        let failed = |e: aws_lc_rs::error::Unspecified| Error::TokenBinding(e.to_string());
        b.signature = match &self.key {
            KeyKind::Ec(k) => k.sign(&rng, &data).map_err(failed)?.as_ref().to_vec(),
            KeyKind::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                let enc: &'static dyn aws_lc_rs::signature::RsaEncoding =
                    if self.params == KeyParameters::RsaPss {
                        &RSA_PSS_SHA256
                    } else {
                        &RSA_PKCS1_SHA256
                    };
                k.sign(enc, &rng, &data, &mut sig).map_err(failed)?;
                sig
            }
        };
        Ok(b)
    }
}

/// The `Sec-Token-Binding` value for a request on a connection with `ekm`: the provided
/// binding and, when the previous site asked for it, a referred one (RFC 8473 §2, §5).
pub fn header(provided: &TbKey, referred: Option<&TbKey>, ekm: &[u8; 32]) -> Result<String, Error> {
    let mut bindings = vec![provided.binding(TokenBindingType::Provided, ekm)?];
    if let Some(r) = referred {
        bindings.push(r.binding(TokenBindingType::Referred, ekm)?);
    }
    Ok(TokenBindingMessage { bindings }.to_header()?)
}
