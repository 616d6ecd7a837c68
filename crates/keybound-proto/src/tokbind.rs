//! Token Binding (RFC 8471 messages, RFC 8473 HTTP header) for OpenID Connect Token Bound
//! Authentication (`cnf.tbh`).
//!
//! Codec and signature checks only: the 32-byte EKM comes from the TLS layer (or a trusted
//! TLS-terminating proxy) outside this crate. Decoding is strict (every length must agree and
//! nothing may trail) and encoding is its exact inverse, so `tbh` = base64url(SHA-256(TB ID
//! bytes)) is computed over the same bytes the client sent.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use keybound_jose::{b64, Curve, PublicJwk};

use crate::Error;

/// Header carrying the base64url `TokenBindingMessage` (RFC 8473 §2).
pub const SEC_TOKEN_BINDING: &str = "Sec-Token-Binding";
/// Response header asking the browser to send a referred binding to the next server.
pub const INCLUDE_REFERRED: &str = "Include-Referred-Token-Binding-ID";

/// `TokenBindingKeyParameters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyParameters {
    /// `rsa2048_pkcs1.5` (0)
    RsaPkcs1,
    /// `rsa2048_pss` (1)
    RsaPss,
    /// `ecdsap256` (2)
    EcdsaP256,
    /// any other value
    Unknown(u8),
}

impl KeyParameters {
    /// Wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            KeyParameters::RsaPkcs1 => 0,
            KeyParameters::RsaPss => 1,
            KeyParameters::EcdsaP256 => 2,
            KeyParameters::Unknown(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => KeyParameters::RsaPkcs1,
            1 => KeyParameters::RsaPss,
            2 => KeyParameters::EcdsaP256,
            other => KeyParameters::Unknown(other),
        }
    }

    /// Name as in RFC 8471.
    pub fn name(self) -> &'static str {
        match self {
            KeyParameters::RsaPkcs1 => "rsa2048_pkcs1.5",
            KeyParameters::RsaPss => "rsa2048_pss",
            KeyParameters::EcdsaP256 => "ecdsap256",
            KeyParameters::Unknown(_) => "unknown",
        }
    }
}

/// `TokenBindingPublicKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TbPublicKey {
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// modulus
        modulus: Vec<u8>,
        /// public exponent
        exponent: Vec<u8>,
    },
    /// P-256 point as X ‖ Y (64 bytes, no 0x04 prefix).
    Ec {
        /// X ‖ Y
        point: Vec<u8>,
    },
    /// Key bytes for key parameters this crate does not know.
    Unknown(Vec<u8>),
}

/// `TokenBindingID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBindingId {
    /// key parameters
    pub key_parameters: KeyParameters,
    /// the public key
    pub key: TbPublicKey,
}

/// `TokenBindingType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBindingType {
    /// `provided_token_binding` (0): the key for the server receiving the message.
    Provided,
    /// `referred_token_binding` (1): the key the client uses with another server (the RP).
    Referred,
    /// any other value (ignored by verifiers, TB-S5)
    Other(u8),
}

impl TokenBindingType {
    fn to_u8(self) -> u8 {
        match self {
            TokenBindingType::Provided => 0,
            TokenBindingType::Referred => 1,
            TokenBindingType::Other(v) => v,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => TokenBindingType::Provided,
            1 => TokenBindingType::Referred,
            other => TokenBindingType::Other(other),
        }
    }
}

/// `TB_Extension`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TbExtension {
    /// extension type
    pub ext_type: u8,
    /// extension data
    pub data: Vec<u8>,
}

/// One `TokenBinding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBinding {
    /// provided or referred
    pub tb_type: TokenBindingType,
    /// the Token Binding ID
    pub id: TokenBindingId,
    /// signature over type ‖ key parameters ‖ EKM
    pub signature: Vec<u8>,
    /// extensions (none are defined; kept for re-encoding)
    pub extensions: Vec<TbExtension>,
}

/// `TokenBindingMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBindingMessage {
    /// the bindings, in order
    pub bindings: Vec<TokenBinding>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: &str) -> Error {
    Error::TokenBindingMalformed(what.to_owned())
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| malformed(&format!("{what}: truncated")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<usize, Error> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

fn put_u16(out: &mut Vec<u8>, n: usize) -> Result<(), Error> {
    let n = u16::try_from(n).map_err(|_| malformed("field longer than 65535 bytes"))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_u8_len(out: &mut Vec<u8>, n: usize) -> Result<(), Error> {
    out.push(u8::try_from(n).map_err(|_| malformed("field longer than 255 bytes"))?);
    Ok(())
}

impl TokenBindingId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let key_parameters = KeyParameters::from_u8(r.u8("key_parameters")?);
        let key_len = r.u16("key_length")?;
        let key_bytes = r.take(key_len, "TokenBindingPublicKey")?;
        let mut k = Reader::new(key_bytes);
        let key = match key_parameters {
            KeyParameters::EcdsaP256 => {
                let n = usize::from(k.u8("point length")?);
                if n != 64 {
                    return Err(malformed(&format!(
                        "ecdsap256 point: expected 64 bytes, got {n}"
                    )));
                }
                TbPublicKey::Ec {
                    point: k.take(n, "point")?.to_vec(),
                }
            }
            KeyParameters::RsaPkcs1 | KeyParameters::RsaPss => {
                let n = k.u16("modulus length")?;
                let modulus = k.take(n, "modulus")?.to_vec();
                let e = usize::from(k.u8("exponent length")?);
                let exponent = k.take(e, "exponent")?.to_vec();
                if modulus.is_empty() || exponent.is_empty() {
                    return Err(malformed("RSA modulus and exponent must not be empty"));
                }
                // RFC 8471 §3.1: big-endian "with leading zero bytes removed". A leading zero
                // would give the same key two TokenBindingIDs and so two `tbh` values.
                if modulus[0] == 0 || exponent[0] == 0 {
                    return Err(malformed(
                        "RSA modulus or exponent has a leading zero byte (RFC 8471 §3.1 removes them)",
                    ));
                }
                TbPublicKey::Rsa { modulus, exponent }
            }
            KeyParameters::Unknown(_) => {
                k.pos = key_bytes.len();
                TbPublicKey::Unknown(key_bytes.to_vec())
            }
        };
        if !k.done() {
            return Err(malformed("key_length does not match the encoded key"));
        }
        Ok(TokenBindingId {
            key_parameters,
            key,
        })
    }

    /// A TokenBindingID from its exact bytes (nothing may follow it), as a TLS terminator
    /// forwards it base64url-encoded (`Sec-Provided-Token-Binding-ID`, draft-ietf-tokbind-ttrp).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let id = TokenBindingId::decode(&mut r)?;
        if !r.done() {
            return Err(malformed("bytes follow the TokenBindingID"));
        }
        Ok(id)
    }

    /// The exact TokenBindingID bytes: `key_parameters ‖ key_length ‖ TokenBindingPublicKey`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut key = Vec::new();
        match &self.key {
            TbPublicKey::Ec { point } => {
                put_u8_len(&mut key, point.len())?;
                key.extend_from_slice(point);
            }
            TbPublicKey::Rsa { modulus, exponent } => {
                put_u16(&mut key, modulus.len())?;
                key.extend_from_slice(modulus);
                put_u8_len(&mut key, exponent.len())?;
                key.extend_from_slice(exponent);
            }
            TbPublicKey::Unknown(b) => key.extend_from_slice(b),
        }
        let mut out = vec![self.key_parameters.to_u8()];
        put_u16(&mut out, key.len())?;
        out.extend_from_slice(&key);
        Ok(out)
    }

    /// `tbh` = base64url(SHA-256(TokenBindingID bytes)) (TBA-1, TBA-2).
    pub fn tbh(&self) -> Result<String, Error> {
        Ok(keybound_jose::sha256_b64(&self.to_bytes()?))
    }

    /// The key as a JWK (EC P-256 or RSA), e.g. to show or compare it.
    pub fn to_public_jwk(&self) -> Result<PublicJwk, Error> {
        match &self.key {
            TbPublicKey::Ec { point } => {
                let mut p = Vec::with_capacity(65);
                p.push(0x04);
                p.extend_from_slice(point);
                PublicJwk::from_ec_point(Curve::P256, &p)
                    .map_err(|e| Error::TokenBindingKey(e.to_string()))
            }
            TbPublicKey::Rsa { modulus, exponent } => PublicJwk::from_rsa(modulus, exponent)
                .map_err(|e| Error::TokenBindingKey(e.to_string())),
            TbPublicKey::Unknown(_) => Err(Error::TokenBindingKey(format!(
                "unknown key parameters {}",
                self.key_parameters.to_u8()
            ))),
        }
    }
}

impl TokenBinding {
    /// The signed bytes: `tokenbinding_type ‖ key_parameters ‖ EKM` (RFC 8471 §3.3).
    pub fn signed_data(&self, ekm: &[u8; 32]) -> [u8; 34] {
        let mut out = [0u8; 34];
        out[0] = self.tb_type.to_u8();
        out[1] = self.id.key_parameters.to_u8();
        out[2..].copy_from_slice(ekm);
        out
    }

    /// Verify the signature over the connection's exported keying material (TB-S4).
    pub fn verify(&self, ekm: &[u8; 32]) -> Result<(), Error> {
        let data = self.signed_data(ekm);
        let ok = match (&self.id.key_parameters, &self.id.key) {
            (KeyParameters::EcdsaP256, TbPublicKey::Ec { point }) => {
                let mut p = Vec::with_capacity(65);
                p.push(0x04);
                p.extend_from_slice(point);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &p)
                    .verify(&data, &self.signature)
                    .is_ok()
            }
            (
                params @ (KeyParameters::RsaPkcs1 | KeyParameters::RsaPss),
                TbPublicKey::Rsa { modulus, exponent },
            ) => {
                let bits =
                    modulus.len() * 8 - modulus.first().map_or(8, |b| b.leading_zeros() as usize);
                if bits != 2048 {
                    return Err(Error::TokenBindingKey(format!(
                        "{}: expected a 2048-bit modulus, got {bits} bits",
                        params.name()
                    )));
                }
                let alg = if *params == KeyParameters::RsaPss {
                    &signature::RSA_PSS_2048_8192_SHA256
                } else {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                };
                RsaPublicKeyComponents {
                    n: modulus.as_slice(),
                    e: exponent.as_slice(),
                }
                .verify(alg, &data, &self.signature)
                .is_ok()
            }
            (p, _) => {
                return Err(Error::TokenBindingKey(format!(
                    "unsupported key parameters {} ({})",
                    p.to_u8(),
                    p.name()
                )))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::TokenBindingSignature)
        }
    }
}

impl TokenBindingMessage {
    /// Decode a `TokenBindingMessage`; all lengths must agree and nothing may trail.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let total = r.u16("tokenbindings length")?;
        if total < 132 {
            return Err(malformed(&format!(
                "tokenbindings: expected at least 132 bytes, got {total}"
            )));
        }
        let body = r.take(total, "tokenbindings")?;
        if !r.done() {
            return Err(malformed("trailing bytes after the message"));
        }
        let mut r = Reader::new(body);
        let mut bindings = Vec::new();
        while !r.done() {
            let tb_type = TokenBindingType::from_u8(r.u8("tokenbinding_type")?);
            let id = TokenBindingId::decode(&mut r)?;
            let sig_len = r.u16("signature length")?;
            if sig_len < 64 {
                return Err(malformed(&format!(
                    "signature: expected at least 64 bytes, got {sig_len}"
                )));
            }
            let signature = r.take(sig_len, "signature")?.to_vec();
            let ext_len = r.u16("extensions length")?;
            let mut er = Reader::new(r.take(ext_len, "extensions")?);
            let mut extensions = Vec::new();
            while !er.done() {
                let ext_type = er.u8("extension_type")?;
                let n = er.u16("extension_data length")?;
                extensions.push(TbExtension {
                    ext_type,
                    data: er.take(n, "extension_data")?.to_vec(),
                });
            }
            bindings.push(TokenBinding {
                tb_type,
                id,
                signature,
                extensions,
            });
        }
        Ok(TokenBindingMessage { bindings })
    }

    /// Encode; the exact inverse of [`TokenBindingMessage::decode`].
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut body = Vec::new();
        for b in &self.bindings {
            body.push(b.tb_type.to_u8());
            body.extend_from_slice(&b.id.to_bytes()?);
            put_u16(&mut body, b.signature.len())?;
            body.extend_from_slice(&b.signature);
            let mut ext = Vec::new();
            for e in &b.extensions {
                ext.push(e.ext_type);
                put_u16(&mut ext, e.data.len())?;
                ext.extend_from_slice(&e.data);
            }
            put_u16(&mut body, ext.len())?;
            body.extend_from_slice(&ext);
        }
        let mut out = Vec::with_capacity(body.len() + 2);
        put_u16(&mut out, body.len())?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decode the value of a `Sec-Token-Binding` header (base64url, no padding).
    pub fn from_header(value: &str) -> Result<Self, Error> {
        let bytes = b64::decode(value).map_err(|e| malformed(&e.to_string()))?;
        Self::decode(&bytes)
    }

    /// Encode as a `Sec-Token-Binding` header value.
    pub fn to_header(&self) -> Result<String, Error> {
        Ok(b64::encode(self.encode()?))
    }

    /// TBH-2: exactly one provided binding and at most one referred binding.
    pub fn http_bindings(&self) -> Result<(&TokenBinding, Option<&TokenBinding>), Error> {
        let provided: Vec<_> = self
            .bindings
            .iter()
            .filter(|b| b.tb_type == TokenBindingType::Provided)
            .collect();
        let referred: Vec<_> = self
            .bindings
            .iter()
            .filter(|b| b.tb_type == TokenBindingType::Referred)
            .collect();
        if provided.len() != 1 {
            return Err(Error::TokenBindingHttp(format!(
                "expected exactly one provided binding, got {}",
                provided.len()
            )));
        }
        if referred.len() > 1 {
            return Err(Error::TokenBindingHttp(format!(
                "expected at most one referred binding, got {}",
                referred.len()
            )));
        }
        Ok((provided[0], referred.first().copied()))
    }
}

/// The bindings one HTTP request proved on its connection (RFC 8473 §2 with RFC 8471 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBindings {
    /// the user agent's Token Binding ID with this server
    pub provided: TokenBindingId,
    /// the Token Binding ID it uses with the server that referred it here (for `cnf.tbh`)
    pub referred: Option<TokenBindingId>,
}

/// Check the `Sec-Token-Binding` header values of one request against its connection:
/// `connection` is the key parameters TLS negotiated and the connection's EKM, or `None` when
/// Token Binding was not negotiated. The one server-side rule set, in order:
///
/// - more than one header → refused (RFC 8473 §2);
/// - no Token Binding negotiated: no header → `Ok(None)`; a header → refused (TB-S2);
/// - negotiated but no header → refused (RFC 8473 §2: every request carries one);
/// - the message must decode strictly and hold exactly one provided and at most one referred
///   binding (TBH-2);
/// - the provided binding must use the negotiated key parameters (TB-S3);
/// - every provided or referred signature must verify over this connection's EKM (TB-S4);
///   bindings of unknown types are ignored (TB-S5).
pub fn verify_request(
    values: &[&str],
    connection: Option<(KeyParameters, &[u8; 32])>,
) -> Result<Option<VerifiedBindings>, Error> {
    if values.len() > 1 {
        return Err(Error::TokenBindingHttp(format!(
            "{} Sec-Token-Binding headers; a request carries exactly one (RFC 8473 §2)",
            values.len()
        )));
    }
    let Some((negotiated, ekm)) = connection else {
        return if values.is_empty() {
            Ok(None)
        } else {
            Err(Error::TokenBindingHttp(
                "a Sec-Token-Binding header on a connection that did not negotiate Token Binding \
                 (RFC 8471 §4.2: its bindings are rejected)"
                    .to_owned(),
            ))
        };
    };
    let Some(value) = values.first() else {
        return Err(Error::TokenBindingHttp(
            "Token Binding was negotiated on this connection but the request has no \
             Sec-Token-Binding header (RFC 8473 §2)"
                .to_owned(),
        ));
    };
    let message = TokenBindingMessage::from_header(value)?;
    let (provided, referred) = message.http_bindings()?;
    if provided.id.key_parameters != negotiated {
        return Err(Error::TokenBindingKey(format!(
            "the provided binding uses key parameters {} ({}) but this connection negotiated {} \
             ({}) (RFC 8471 §4.2)",
            provided.id.key_parameters.to_u8(),
            provided.id.key_parameters.name(),
            negotiated.to_u8(),
            negotiated.name()
        )));
    }
    provided.verify(ekm)?;
    if let Some(r) = referred {
        r.verify(ekm)?;
    }
    Ok(Some(VerifiedBindings {
        provided: provided.id.clone(),
        referred: referred.map(|r| r.id.clone()),
    }))
}
