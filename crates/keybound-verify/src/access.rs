//! A resource server's check of an RFC 9068 JWT access token with its RFC 9449 DPoP proof: the
//! API at the end of an identity chain (docs/chaining.md) takes the access token its AS issued
//! for an ID-JAG and accepts it only with a fresh proof by the key in `cnf.jkt`.
//!
//! Order: the `Authorization` scheme and token → header `typ` `at+jwt` (RFC 9068 §4: an ID Token
//! or any other JWT is not an access token, whatever it is signed with) → a trusted `iss` and
//! its signature → `exp`, `iat` with skew, an accepted `aud`, `sub` present → the binding: a
//! DPoP-bound token (`cnf.jkt`) needs the `DPoP` scheme and a proof by that key over this
//! request with `ath` = the token's hash (and this service's nonce when it demands one); an
//! unbound token is accepted only when the configuration allows Bearer tokens → the proof's
//! `jti` not seen before.

use std::sync::Arc;

use keybound_jose::{Algorithm, Jkt, JwkSet, Jws};
use keybound_proto::dpop::{self, NonceCheck, RequestFacts};
use serde_json::{Map, Value};

use crate::{Verifier, VerifyError};

/// RFC 9068 §2.1 header `typ` (and its media-type spelling).
const TYP_AT_JWT: [&str; 2] = ["at+jwt", "application/at+jwt"];

/// An access-token request as received.
#[derive(Debug, Clone, Copy)]
pub struct AccessPresentation<'a> {
    /// the `Authorization` header
    pub authorization: Option<&'a str>,
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
    /// request method
    pub htm: &'a str,
    /// request path (the verifier prefixes its public base URL)
    pub path: &'a str,
}

/// A verified access token.
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    /// issuer (the authorization server)
    pub iss: String,
    /// the End-User
    pub sub: String,
    /// the client the token was issued to
    pub client_id: Option<String>,
    /// granted scopes
    pub scope: Vec<String>,
    /// the key the token is bound to, proven by this request
    pub jkt: Option<Jkt>,
    /// all claims
    pub claims: Map<String, Value>,
}

impl VerifiedAccess {
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

fn bad(m: impl Into<String>) -> VerifyError {
    VerifyError::AccessToken(m.into())
}

impl Verifier {
    /// Verify a request carrying an access token (RFC 9068) and its DPoP proof.
    pub async fn verify_access_token(
        &self,
        p: AccessPresentation<'_>,
    ) -> Result<VerifiedAccess, VerifyError> {
        let (scheme, token) = p
            .authorization
            .and_then(|a| a.split_once(' '))
            .map(|(s, t)| (s.to_ascii_lowercase(), t.trim()))
            .filter(|(s, t)| (s == "dpop" || s == "bearer") && !t.is_empty())
            .ok_or(VerifyError::MissingAccessToken)?;
        let jws = Jws::parse(token).map_err(|e| bad(format!("not a usable JWT: {e}")))?;
        if !jws
            .header()
            .typ
            .as_deref()
            .is_some_and(|t| TYP_AT_JWT.iter().any(|x| t.eq_ignore_ascii_case(x)))
        {
            return Err(bad(format!(
                "header typ must be 'at+jwt' (RFC 9068), got '{}'",
                jws.header().typ.as_deref().unwrap_or("none")
            )));
        }
        let claims: Map<String, Value> = jws
            .payload_json()
            .map_err(|e| bad(format!("claims: {e}")))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let iss = text("iss").ok_or_else(|| bad("iss is required"))?;
        let trusted = self
            .config
            .issuers
            .iter()
            .find(|t| t.issuer == iss)
            .ok_or_else(|| VerifyError::UntrustedIssuer(iss.to_owned()))?;
        let now = self.now();
        let keys: Arc<JwkSet> = self
            .jwks
            .keys_for(&trusted.jwks_uri, jws.header().kid.as_deref(), now)
            .await?;
        if !keys
            .candidates(jws.header().kid.as_deref(), jws.header().alg)
            .iter()
            .any(|k| jws.verify(k, &Algorithm::ALL).is_ok())
        {
            return Err(bad("the signature does not verify with the issuer's keys"));
        }
        let number = |name: &str| claims.get(name).and_then(Value::as_u64);
        let leeway = self.config.leeway;
        let exp = number("exp").ok_or_else(|| bad("exp is required"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(bad(format!("expired at {exp}, now {now}")));
        }
        if number("iat").is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(bad("issued in the future"));
        }
        let aud: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !aud
            .iter()
            .any(|a| self.config.audiences.iter().any(|x| x == a))
        {
            return Err(bad(format!(
                "aud {aud:?} names none of this service's audiences {:?}",
                self.config.audiences
            )));
        }
        let sub = text("sub")
            .ok_or_else(|| bad("sub is required"))?
            .to_owned();
        let jkt = match claims.get("cnf").and_then(|c| c.get("jkt")) {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(|s| Jkt::parse(s).ok())
                    .ok_or_else(|| bad("cnf.jkt is not a thumbprint"))?,
            ),
        };
        match &jkt {
            Some(bound) => {
                if scheme != "dpop" {
                    return Err(bad(
                        "a DPoP-bound access token must be sent with the DPoP scheme and a proof",
                    ));
                }
                if p.dpop.is_empty() {
                    return Err(VerifyError::MissingProof);
                }
                let htu = format!("{}{}", self.config.public_base_url, p.path);
                let facts = RequestFacts {
                    presented_token: Some(token),
                    bound_jkt: Some(bound),
                    nonce: self
                        .config
                        .nonces
                        .as_ref()
                        .map_or(NonceCheck::NotRequired, NonceCheck::Stateless),
                    ..RequestFacts::new(p.htm, &htu, now)
                };
                let proof = dpop::verify(p.dpop.iter().copied(), &facts, &self.config.proof)
                    .map_err(|e| {
                        if e.is_nonce_error() {
                            VerifyError::NonceRequired(self.fresh_nonce().unwrap_or_default())
                        } else {
                            VerifyError::Proof(e)
                        }
                    })?;
                let entry = proof.replay_entry(&self.config.proof);
                self.remember(&entry.key.digest(), entry.expires_at, now)
                    .await?;
            }
            None if !self.config.accept_bearer => {
                return Err(bad(
                    "this service accepts only DPoP-bound access tokens (cnf.jkt)",
                ))
            }
            None => {}
        }
        Ok(VerifiedAccess {
            iss: iss.to_owned(),
            sub,
            client_id: text("client_id").map(str::to_owned),
            scope: text("scope")
                .unwrap_or("")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            jkt,
            claims,
        })
    }
}
