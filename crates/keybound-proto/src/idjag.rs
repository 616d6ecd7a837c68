//! Identity Assertion JWT Authorization Grant (ID-JAG) claims and the resource AS checks that
//! do not need a clock source or a store (typ, single audience, client binding, `cnf.jkt`).
//! The token-exchange and jwt-bearer endpoints that use them come in a later issue.

use keybound_jose::{Jkt, Jws};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cnf::Cnf;
use crate::idtoken::Audience;
use crate::{Error, UnixTime};

/// ID-JAG header `typ` (IJ-8).
pub const TYP_ID_JAG: &str = "oauth-id-jag+jwt";

/// The claims of an ID-JAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdJagClaims {
    /// IdP issuer
    pub iss: String,
    /// subject at the IdP
    pub sub: String,
    /// resource AS issuer
    pub aud: Audience,
    /// client id at the resource AS
    pub client_id: String,
    /// unique id
    pub jti: String,
    /// expiry
    pub exp: UnixTime,
    /// issued at
    pub iat: UnixTime,
    /// granted scope
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// granted resource(s)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    /// key binding carried forward (`cnf.jkt`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf>,
    /// other claims
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Check the shape rules a resource AS applies to an ID-JAG whose signature the caller has
/// verified: IJ-8 `typ`, IJ-9 single `aud` equal to `issuer`, IJ-10 `client_id`, and the times
/// (JB-4 `exp`, JB-5 `nbf`, `iat` not in the future), each with `leeway` seconds of skew.
/// Returns the claims and the bound key thumbprint, if any.
pub fn check(
    jws: &Jws<'_>,
    issuer: &str,
    client_id: &str,
    now: UnixTime,
    leeway: u64,
) -> Result<(IdJagClaims, Option<Jkt>), Error> {
    if jws.header().typ.as_deref() != Some(TYP_ID_JAG) {
        return Err(Error::IdJag(format!(
            "expected header typ '{TYP_ID_JAG}', got {:?}",
            jws.header().typ
        )));
    }
    let claims: IdJagClaims = jws
        .payload_json()
        .map_err(|e| Error::IdJag(format!("claims: {e}")))?;
    if claims.aud.as_slice() != [issuer.to_owned()] {
        return Err(Error::IdJag(format!(
            "expected aud to be exactly '{issuer}', got {:?}",
            claims.aud.as_slice()
        )));
    }
    if claims.client_id != client_id {
        return Err(Error::IdJag(format!(
            "expected client_id '{client_id}', got '{}'",
            claims.client_id
        )));
    }
    if now >= claims.exp.saturating_add(leeway) {
        return Err(Error::IdJag(format!(
            "expired at {}, now {now}",
            claims.exp
        )));
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(Error::IdJag(format!(
            "issued in the future (iat {}, now {now})",
            claims.iat
        )));
    }
    if let Some(nbf) = claims.extra.get("nbf") {
        let nbf = nbf
            .as_u64()
            .ok_or_else(|| Error::IdJag("nbf: expected a number".into()))?;
        if nbf > now.saturating_add(leeway) {
            return Err(Error::IdJag(format!("not valid before {nbf}, now {now}")));
        }
    }
    let jkt = claims.cnf.as_ref().and_then(Cnf::key_thumbprint);
    Ok((claims, jkt))
}
