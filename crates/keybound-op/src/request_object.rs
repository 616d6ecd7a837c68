//! Request objects by value (RFC 9101 "JAR", OpenID Connect Core §6.1): the authorization
//! request's parameters as the claims of a JWT the client signed.
//!
//! Opened once, before anything else reads the request — at the authorization endpoint and at
//! the PAR endpoint (a signed request inside a pushed one) — into plain parameters, which the
//! one validation then checks like any others. The object must be signed with one of the
//! client's registered keys (`jwks`) by an asymmetric algorithm (the JWS parser knows no
//! `none` and no HMAC); `iss` and `client_id`, when present, name the client of the outer
//! `client_id`, which is required; `aud` names this issuer; `exp`, `iat` and `nbf` are in range.
//! Its claims win over the outer parameters (only `client_id` must agree). Any doubt is
//! `invalid_request_object` with the reason, and never a redirect: nothing in a rejected object
//! can be trusted to say where to send the error.

use keybound_jose::{Algorithm, Jws};
use serde_json::{Map, Value};

use crate::refusal::AuthorizeRefusal as Why;
use crate::{OpError, Provider};

/// Clock skew allowed on `exp`, `iat` and `nbf`, seconds.
const LEEWAY: u64 = 30;

/// JWT claims about the object itself, not authorization request parameters.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

impl Provider {
    /// `params` with their request object (`request`) opened into parameters, or as they are
    /// when there is none.
    pub async fn open_request_object(
        &self,
        params: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, OpError> {
        let Some(jwt) = params
            .iter()
            .find(|(k, _)| k == "request")
            .map(|(_, v)| v.clone())
        else {
            return Ok(params);
        };
        let bad = |reason: String| OpError::from(Why::InvalidRequestObject(reason));
        if params.iter().any(|(k, _)| k == "request_uri") {
            return Err(bad("send request or request_uri, not both".into()));
        }
        let client_id = params
            .iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| bad("client_id is required beside request (RFC 9101 §5)".into()))?;
        let client = self
            .registered_client(&client_id)
            .await?
            .ok_or_else(|| OpError::from(Why::UnknownClient(client_id.clone())))?;
        let jws = Jws::parse(&jwt).map_err(|e| {
            bad(format!(
                "not a JWT signed with an asymmetric algorithm ({e}); none and HMAC are refused"
            ))
        })?;
        let keys = client.jwks.as_ref().ok_or_else(|| {
            bad(format!(
                "client '{client_id}' registered no keys (jwks) to sign request objects with"
            ))
        })?;
        keys.verify(&jws, &Algorithm::ALL)
            .map_err(|e| bad(format!("not signed by a key of client '{client_id}': {e}")))?;
        let claims: Map<String, Value> = jws
            .payload_json()
            .map_err(|e| bad(format!("the claims are not a JSON object: {e}")))?;
        self.check_request_object_claims(&claims, &client_id)
            .map_err(bad)?;
        // its claims win; the outer parameters fill in only what it does not say
        let mut out: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, _)| k != "request" && !claims.contains_key(k))
            .collect();
        for (k, v) in claims {
            if JWT_CLAIMS.contains(&k.as_str()) {
                continue;
            }
            match v {
                Value::String(s) => out.push((k, s)),
                // RFC 8707: several resources as an array
                Value::Array(items) if k == "resource" => {
                    for item in items {
                        let Value::String(s) = item else {
                            return Err(bad("resource: an array of strings".into()));
                        };
                        out.push((k.clone(), s));
                    }
                }
                Value::Null => {}
                // numbers (max_age) as their text, objects (claims) as JSON
                other => out.push((k, other.to_string())),
            }
        }
        Ok(out)
    }

    /// `iss`, `client_id`, `aud` and the times of a request object's claims; the reason
    /// when one is wrong.
    fn check_request_object_claims(
        &self,
        claims: &Map<String, Value>,
        client_id: &str,
    ) -> Result<(), String> {
        for member in ["iss", "client_id"] {
            match claims.get(member) {
                None => {}
                Some(Value::String(s)) if s == client_id => {}
                Some(other) => {
                    return Err(format!(
                        "{member} {other} is not the client_id '{client_id}' of the request"
                    ))
                }
            }
        }
        let issuer = &self.config.issuer;
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == issuer,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(issuer.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(format!("aud must name this issuer '{issuer}'"));
        }
        let now = self.now();
        let time = |name: &str| -> Result<Option<u64>, String> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("{name} must be a number of seconds")),
            }
        };
        if let Some(exp) = time("exp")? {
            if now >= exp.saturating_add(LEEWAY) {
                return Err(format!("expired at {exp}, now is {now}"));
            }
        }
        for name in ["iat", "nbf"] {
            if let Some(t) = time(name)? {
                if t > now.saturating_add(LEEWAY) {
                    return Err(format!("{name} {t} is in the future (now {now})"));
                }
            }
        }
        Ok(())
    }
}
