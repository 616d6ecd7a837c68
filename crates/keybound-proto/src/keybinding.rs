//! OpenID Connect Key Binding 1.0: the `bound_key` scope, `dpop_jkt`, `c_s256` and the ID
//! Token `typ` values of the two profiles keybound speaks.
//!
//! The current profile (Implementer's Draft line) puts `c_s256` in the token-request proof and
//! marks the ID Token `typ: dpop+id_token`. The adopted draft 00 used `c_hash` (same value) and
//! `id_token+cnf`; it is selected per client and never silently accepted (ARCHITECTURE.md §4).

use keybound_jose::Jkt;

use crate::Error;

/// The scope value that asks for a key-bound ID Token.
pub const BOUND_KEY_SCOPE: &str = "bound_key";
/// ID Token header `typ` of the current profile (`application/dpop+id_token`).
pub const TYP_DPOP_ID_TOKEN: &str = "dpop+id_token";
/// ID Token header `typ` of draft 00.
pub const TYP_ID_TOKEN_CNF: &str = "id_token+cnf";

/// Which Key Binding text a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// Current draft: `c_s256`, `typ: dpop+id_token`.
    #[default]
    KeyBinding,
    /// Draft 00: `c_hash`, `typ: id_token+cnf`.
    Draft00,
}

impl Profile {
    /// Claim in the token-request proof that commits to the code.
    pub fn code_claim(self) -> &'static str {
        match self {
            Profile::KeyBinding => "c_s256",
            Profile::Draft00 => "c_hash",
        }
    }

    /// Header `typ` of the key-bound ID Token.
    pub fn id_token_typ(self) -> &'static str {
        match self {
            Profile::KeyBinding => TYP_DPOP_ID_TOKEN,
            Profile::Draft00 => TYP_ID_TOKEN_CNF,
        }
    }

    /// Configuration / metadata name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::KeyBinding => "key-binding-1.0",
            Profile::Draft00 => "draft-00",
        }
    }

    /// Parse a configuration name.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "key-binding-1.0" | "current" => Ok(Profile::KeyBinding),
            "draft-00" => Ok(Profile::Draft00),
            _ => Err(Error::Parameter {
                name: "key_binding_profile",
                reason: format!("expected 'key-binding-1.0' or 'draft-00', got '{s}'"),
            }),
        }
    }
}

/// `c_s256` = base64url(SHA-256(ASCII(code))) over the code or device_code exactly as sent.
/// The draft-00 `c_hash` claim carries the same value.
pub fn c_s256(code: &str) -> String {
    keybound_jose::sha256_b64(code.as_bytes())
}

/// Parse a `dpop_jkt` request parameter (43-character base64url SHA-256 thumbprint).
pub fn parse_dpop_jkt(s: &str) -> Result<Jkt, Error> {
    Jkt::parse(s).map_err(Error::BadDpopJkt)
}

/// Whether a space-delimited `scope` contains `bound_key`.
pub fn requests_bound_key(scope: &str) -> bool {
    scope.split(' ').any(|s| s == BOUND_KEY_SCOPE)
}

/// What the authorization (or device authorization) request asks for, after the Key Binding
/// rules: `bound_key` needs `dpop_jkt` (fail closed, spec digest §10.3); `dpop_jkt` alone binds
/// only the code and access token (RFC 9449 §10), never the ID Token (KB-OP7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedBinding {
    /// No key named.
    None,
    /// `dpop_jkt` without `bound_key`: plain DPoP code binding.
    DpopOnly(Jkt),
    /// `bound_key` with `dpop_jkt`: a key-bound ID Token.
    BoundIdToken(Jkt),
}

impl RequestedBinding {
    /// Apply the rules to a request's `scope` and `dpop_jkt`.
    pub fn from_request(scope: &str, dpop_jkt: Option<&str>) -> Result<Self, Error> {
        let jkt = dpop_jkt.map(parse_dpop_jkt).transpose()?;
        match (requests_bound_key(scope), jkt) {
            (true, Some(j)) => Ok(RequestedBinding::BoundIdToken(j)),
            (true, None) => Err(Error::BoundKeyWithoutDpopJkt),
            (false, Some(j)) => Ok(RequestedBinding::DpopOnly(j)),
            (false, None) => Ok(RequestedBinding::None),
        }
    }

    /// The key named, if any.
    pub fn jkt(&self) -> Option<&Jkt> {
        match self {
            RequestedBinding::None => None,
            RequestedBinding::DpopOnly(j) | RequestedBinding::BoundIdToken(j) => Some(j),
        }
    }
}

/// OpenID Connect Core `c_hash`/`at_hash` for an ID Token signed with ES256, RS256 or PS256:
/// base64url of the left half of SHA-256. Not the Key Binding value; kept as the contrast that
/// explains why the claim was renamed. For any algorithm, [`oidc_token_hash`].
pub fn oidc_half_hash(value: &str) -> String {
    oidc_token_hash(keybound_jose::Algorithm::ES256, value)
}

/// OpenID Connect Core 3.1.3.6 / 3.3.2.11 `at_hash` and `c_hash`: base64url of the left half of
/// the hash that the ID Token's `alg` uses (SHA-384 for ES384, SHA-512 for ES512 and EdDSA on
/// Ed25519, SHA-256 otherwise).
pub fn oidc_token_hash(alg: keybound_jose::Algorithm, value: &str) -> String {
    let d = alg.hash(value.as_bytes());
    keybound_jose::b64::encode(&d[..d.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OIDC Core 3.1.3.6 / 3.3.2.11 with the published values of OpenID Connect Token Hash
    /// Algorithms 1.0 (RS256 and Ed25519) and SHA-384 for ES384.
    #[test]
    fn oidc_token_hash_by_alg() {
        use keybound_jose::Algorithm;
        let t = "YmJiZTAwYmYtMzgyOC00NzhkLTkyOTItNjJjNDM3MGYzOWIy9sFhvH8K_x8UIHj1osisS57f5DduL-ar_qw5jl3lthwpMjm283aVMQXDmoqqqydDSqJfbhptzw8rUVwkuQbolw";
        assert_eq!(
            oidc_token_hash(Algorithm::RS256, t),
            "x7vk7f6BvQj0jQHYFIk4ag"
        );
        assert_eq!(oidc_token_hash(Algorithm::ES256, t), oidc_half_hash(t));
        assert_eq!(
            oidc_token_hash(Algorithm::ES384, t),
            "ups_76_7CCye_J1WIyGHKVG7AAs2olYm"
        );
        assert_eq!(
            oidc_token_hash(Algorithm::EdDSA, t),
            "EGEAhGYyfuwDaVTifvrWSoD5MSy_5hZPy6I7Vm-7pTQ"
        );
        assert_eq!(
            oidc_token_hash(Algorithm::ES512, t),
            oidc_token_hash(Algorithm::EdDSA, t)
        );
    }

    #[test]
    fn bound_key_rules() {
        let jkt = "dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw";
        assert!(matches!(
            RequestedBinding::from_request("openid bound_key", Some(jkt)),
            Ok(RequestedBinding::BoundIdToken(_))
        ));
        assert_eq!(
            RequestedBinding::from_request("openid bound_key", None),
            Err(Error::BoundKeyWithoutDpopJkt)
        );
        assert!(matches!(
            RequestedBinding::from_request("openid", Some(jkt)),
            Ok(RequestedBinding::DpopOnly(_))
        ));
        assert!(matches!(
            RequestedBinding::from_request(
                "openid bound_key",
                Some("1f2e6338febe335e2cbaa7c7154c3cbdcfd8650f95c5fe7206bb6360e37f4b5a")
            ),
            Err(Error::BadDpopJkt(_))
        ));
        assert!(!requests_bound_key("openid bound_keys"));
    }

    #[test]
    fn profiles() {
        assert_eq!(Profile::default().code_claim(), "c_s256");
        assert_eq!(Profile::Draft00.code_claim(), "c_hash");
        assert_eq!(Profile::Draft00.id_token_typ(), "id_token+cnf");
        assert_eq!(Profile::parse("draft-00").unwrap(), Profile::Draft00);
        assert!(Profile::parse("draft-01").is_err());
    }
}
