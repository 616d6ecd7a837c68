//! Device Bound Session Credentials (W3C DBSC, `../shared/specs/dbsc.md`): the wire of the
//! browser's session key — the header names, the `dbsc+jwt` the browser signs at registration
//! and at each refresh, and the headers the site sends. Sans-IO: the caller decides what a
//! valid challenge is (keybound-server's `dbsc` module: stateless, MAC-bound to the session,
//! used once) and where the key is kept.
//!
//! Header names were renamed once already (earlier drafts: `Sec-Session-*`); they live here,
//! once.

use keybound_jose::{Algorithm, Jws, PublicJwk};
use serde::Deserialize;

use crate::Error;

/// The site offers a bound session (on any response, e.g. the one that signs in).
pub const REGISTRATION_HEADER: &str = "secure-session-registration";
/// The browser's signed answer to a challenge (registration and refresh).
pub const RESPONSE_HEADER: &str = "secure-session-response";
/// The site's challenge at refresh (with `403`).
pub const CHALLENGE_HEADER: &str = "secure-session-challenge";
/// The session a refresh is for.
pub const SESSION_ID_HEADER: &str = "sec-secure-session-id";
/// `typ` of the browser's JWT.
pub const TYP: &str = "dbsc+jwt";
/// The algorithms offered (the browser picks one its key store has).
pub const ALGS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::RS256];

/// A verified registration: the session's public key and what it signed.
#[derive(Debug, Clone)]
pub struct Registration {
    /// the browser's key for this session (from the JWT header)
    pub key: PublicJwk,
    /// `jti`: the challenge it answers
    pub jti: String,
    /// `authorization`, echoed from the offer
    pub authorization: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    authorization: Option<String>,
}

fn fail(why: impl Into<String>) -> Error {
    Error::Dbsc(why.into())
}

/// Parse a `dbsc+jwt`: `typ`, an offered algorithm, and its claims.
fn parse(jwt: &str) -> Result<(Jws<'_>, Claims), Error> {
    let jws = Jws::parse(jwt).map_err(|e| fail(format!("not a JWS: {e}")))?;
    if jws.header().typ.as_deref() != Some(TYP) {
        return Err(fail(format!(
            "typ is {:?}, expected \"{TYP}\"",
            jws.header().typ
        )));
    }
    if !ALGS.contains(&jws.header().alg) {
        return Err(fail(format!(
            "alg {} was not offered (ES256, RS256)",
            jws.header().alg.name()
        )));
    }
    let claims: Claims = jws
        .payload_json()
        .map_err(|e| fail(format!("claims: {e}")))?;
    Ok((jws, claims))
}

/// Verify a registration JWT: signed by the key in its own header (the key the session will be
/// bound to), `typ` `dbsc+jwt`, with a `jti`. The caller checks `jti` is its challenge and
/// `authorization` its offer's.
pub fn verify_registration(jwt: &str) -> Result<Registration, Error> {
    let (jws, claims) = parse(jwt)?;
    let key = jws
        .header()
        .jwk
        .clone()
        .ok_or_else(|| fail("the registration JWT has no jwk in its header"))?;
    jws.verify(&key, &ALGS)
        .map_err(|e| fail(format!("signature by the header's key: {e}")))?;
    Ok(Registration {
        key,
        jti: claims.jti.ok_or_else(|| fail("no jti (the challenge)"))?,
        authorization: claims.authorization,
    })
}

/// Verify a refresh JWT by the session's registered `key`: its `jti` (the challenge it
/// answers), for the caller to check.
pub fn verify_refresh(jwt: &str, key: &PublicJwk) -> Result<String, Error> {
    let (jws, claims) = parse(jwt)?;
    jws.verify(key, &ALGS)
        .map_err(|e| fail(format!("signature by the session's key: {e}")))?;
    claims.jti.ok_or_else(|| fail("no jti (the challenge)"))
}

/// Strip what cannot stand in a quoted structured-field string.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && c.is_ascii() && !c.is_ascii_control())
        .collect()
}

/// The offer: `(ES256 RS256);path="…";challenge="…";authorization="…"`.
pub fn registration_header(path: &str, challenge: &str, authorization: &str) -> String {
    format!(
        "(ES256 RS256);path=\"{}\";challenge=\"{}\";authorization=\"{}\"",
        quoted(path),
        quoted(challenge),
        quoted(authorization)
    )
}

/// The refresh challenge: `"…";id="…"`.
pub fn challenge_header(challenge: &str, session_id: &str) -> String {
    format!("\"{}\";id=\"{}\"", quoted(challenge), quoted(session_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keybound_jose::key::KeyKind;
    use keybound_jose::PrivateKey;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)] // json! literals at every call
    fn jwt(key: &PrivateKey, header: serde_json::Value, claims: serde_json::Value) -> String {
        let h = header.as_object().expect("an object").clone();
        keybound_jose::jws::sign(Algorithm::ES256, &h, claims.to_string().as_bytes(), key)
            .expect("signs")
    }

    #[test]
    fn dbsc_registration_is_signed_by_the_key_in_its_header() {
        let k = PrivateKey::generate(KeyKind::Es256).unwrap();
        let good = jwt(
            &k,
            json!({"alg":"ES256","typ":"dbsc+jwt","jwk": k.public_jwk().to_value()}),
            json!({"jti":"ch-1","authorization":"auth-1"}),
        );
        let r = verify_registration(&good).unwrap();
        assert_eq!(r.jti, "ch-1");
        assert_eq!(r.authorization.as_deref(), Some("auth-1"));
        assert_eq!(r.key.thumbprint(), k.public_jwk().thumbprint());
        // another key in the header than the one that signed
        let other = PrivateKey::generate(KeyKind::Es256).unwrap();
        let forged = jwt(
            &k,
            json!({"alg":"ES256","typ":"dbsc+jwt","jwk": other.public_jwk().to_value()}),
            json!({"jti":"ch-1"}),
        );
        assert!(verify_registration(&forged).is_err());
        // another typ, no jwk, no jti
        for (h, c) in [
            (
                json!({"alg":"ES256","typ":"dpop+jwt","jwk": k.public_jwk().to_value()}),
                json!({"jti":"x"}),
            ),
            (json!({"alg":"ES256","typ":"dbsc+jwt"}), json!({"jti":"x"})),
            (
                json!({"alg":"ES256","typ":"dbsc+jwt","jwk": k.public_jwk().to_value()}),
                json!({}),
            ),
        ] {
            assert!(verify_registration(&jwt(&k, h, c)).is_err());
        }
        // a refresh by the registered key passes; by another key it does not
        let refresh = jwt(
            &k,
            json!({"alg":"ES256","typ":"dbsc+jwt"}),
            json!({"jti":"ch-2"}),
        );
        assert_eq!(verify_refresh(&refresh, &r.key).unwrap(), "ch-2");
        let stolen = jwt(
            &other,
            json!({"alg":"ES256","typ":"dbsc+jwt"}),
            json!({"jti":"ch-2"}),
        );
        assert!(verify_refresh(&stolen, &r.key).is_err());
    }

    #[test]
    fn dbsc_headers_as_chromium_reads_them() {
        assert_eq!(
            registration_header("/dbsc/start", "c\"1", "a1"),
            "(ES256 RS256);path=\"/dbsc/start\";challenge=\"c1\";authorization=\"a1\""
        );
        assert_eq!(challenge_header("n1", "s1"), "\"n1\";id=\"s1\"");
    }
}
