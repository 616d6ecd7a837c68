//! Presenting a key-bound ID Token to an RP consuming component (docs/presentation.md).
//!
//! Key Binding leaves this out of scope; keybound fixes two profiles:
//!
//! - **HTTP** ([`http_proof`]): the request carries the ID Token in the `ID-Token` header and an
//!   RFC 9449 DPoP proof signed by the `cnf` key, over this request's `htm` and `htu`, with
//!   `ath` = base64url(SHA-256(ID Token)). The consumer verifies the ID Token, then the proof with
//!   the ID Token as the "presented token" and `thumbprint(cnf.jwk)` as the bound key — the same
//!   [`crate::dpop::verify`] every other DPoP check uses.
//! - **Peer to peer** ([`p2p_sign`], [`p2p_verify`]): a JWS with `typ: kb-pop+jwt`, signed by the
//!   `cnf` key, whose claims name the verifier (`aud`), answer its `challenge`, are fresh (`iat`),
//!   unique (`jti`) and tied to one ID Token (`ith` = base64url(SHA-256(ID Token))).

use keybound_jose::{Jws, PrivateKey, PublicJwk};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::dpop::ProofBuilder;
use crate::{Error, UnixTime};

/// Request header carrying the ID Token in an HTTP presentation (never `Authorization`: an ID
/// Token is not an access token, KB-S3).
pub const ID_TOKEN_HEADER: &str = "ID-Token";
/// `typ` of a peer-to-peer presentation.
pub const P2P_TYP: &str = "kb-pop+jwt";

/// base64url(SHA-256(ASCII(ID Token))): `ath` of HTTP presentations, `ith` of peer-to-peer ones.
pub fn id_token_hash(id_token: &str) -> String {
    keybound_jose::sha256_b64(id_token.as_bytes())
}

/// The DPoP proof of an HTTP presentation of `id_token` on `htm` `htu`.
pub fn http_proof(
    key: &PrivateKey,
    id_token: &str,
    htm: &str,
    htu: &str,
    iat: UnixTime,
    jti: &str,
    nonce: Option<&str>,
) -> Result<String, Error> {
    let b = ProofBuilder::new(htm, htu, iat, jti).ath_for(id_token);
    match nonce {
        Some(n) => b.nonce(n),
        None => b,
    }
    .sign(key)
}

/// The claims of a peer-to-peer presentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct P2pClaims {
    /// the verifier's identifier
    pub aud: String,
    /// the verifier's challenge
    pub challenge: String,
    /// when made
    pub iat: UnixTime,
    /// unique id
    pub jti: String,
    /// base64url(SHA-256(ID Token))
    pub ith: String,
}

/// Sign a peer-to-peer presentation of `id_token` for verifier `aud` answering `challenge`.
pub fn p2p_sign(
    key: &PrivateKey,
    id_token: &str,
    aud: &str,
    challenge: &str,
    iat: UnixTime,
    jti: &str,
) -> Result<String, Error> {
    let claims = P2pClaims {
        aud: aud.to_owned(),
        challenge: challenge.to_owned(),
        iat,
        jti: jti.to_owned(),
        ith: id_token_hash(id_token),
    };
    let mut h = Map::new();
    h.insert("typ".into(), P2P_TYP.into());
    h.insert("kid".into(), key.public_jwk().thumbprint().as_str().into());
    let payload =
        serde_json::to_vec(&claims).map_err(|e| Error::PresentationClaims(e.to_string()))?;
    keybound_jose::jws::sign(key.default_alg(), &h, &payload, key)
        .map_err(|e| Error::PresentationClaims(e.to_string()))
}

/// What a peer-to-peer verifier expects.
#[derive(Debug, Clone, Copy)]
pub struct P2pChecks<'a> {
    /// this verifier's identifier
    pub audience: &'a str,
    /// the challenge it issued
    pub challenge: &'a str,
    /// verifier time
    pub now: UnixTime,
    /// how old `iat` may be (seconds)
    pub max_age: u64,
    /// how far in the future `iat` may be (seconds)
    pub max_future: u64,
}

/// Verify a peer-to-peer presentation against the (already validated) ID Token and its
/// `cnf.jwk`. The caller then records `jti` in its replay cache.
pub fn p2p_verify(
    presentation: &str,
    id_token: &str,
    cnf_jwk: &PublicJwk,
    checks: &P2pChecks<'_>,
) -> Result<P2pClaims, Error> {
    let jws = Jws::parse(presentation).map_err(|e| Error::PresentationClaims(e.to_string()))?;
    if jws.header().typ.as_deref() != Some(P2P_TYP) {
        return Err(Error::PresentationTyp {
            expected: P2P_TYP,
            got: jws.header().typ.clone(),
        });
    }
    jws.verify(cnf_jwk, &keybound_jose::Algorithm::ALL)
        .map_err(|_| Error::PresentationSignature)?;
    let claims: P2pClaims = jws
        .payload_json()
        .map_err(|e| Error::PresentationClaims(format!("claims: {e}")))?;
    if claims.aud != checks.audience {
        return Err(Error::PresentationAudience {
            expected: checks.audience.to_owned(),
            got: Some(claims.aud),
        });
    }
    if !keybound_jose::ct_eq(claims.challenge.as_bytes(), checks.challenge.as_bytes()) {
        return Err(Error::PresentationChallenge);
    }
    if claims.ith != id_token_hash(id_token) {
        return Err(Error::PresentationIdTokenHash);
    }
    if claims.iat.saturating_add(checks.max_age) < checks.now {
        return Err(Error::PresentationClaims(format!(
            "iat {} is more than {}s before now ({})",
            claims.iat, checks.max_age, checks.now
        )));
    }
    if claims.iat > checks.now.saturating_add(checks.max_future) {
        return Err(Error::PresentationClaims(format!(
            "iat {} is in the future (now {})",
            claims.iat, checks.now
        )));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(Error::PresentationClaims(
            "jti must be 1..=256 characters".into(),
        ));
    }
    Ok(claims)
}
