//! The RP's check of an ID Token's `cnf.tbh` (OpenID Connect Token Bound Authentication §4):
//! the hash must name the Token Binding ID of the RP's own connection with the user agent,
//! recorded when the sign-in started; a mismatch is fatal (a MUST) under every policy, `off`
//! included — the policy is about tokens *without* a binding, never a licence to accept one
//! bound elsewhere. Without a `tbh`, the downgrade policy decides (§4, §6): `off` accepts, `if-supported` refuses when the OP
//! advertises Token Bound ID Tokens and the user agent negotiated Token Binding with the RP (an
//! attacker stripped the binding), `required` always refuses. Sans-IO: the caller passes what
//! its TLS layer or terminator saw.

use keybound_proto::tokbind::TokenBindingId;

use crate::RpError;

/// The RP's downgrade policy for Token Bound Authentication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TbPolicy {
    /// never demand a `tbh` (one that is present must still match, §4)
    Off,
    /// demand a `tbh` when both the OP and the user agent support Token Binding (the default)
    #[default]
    IfSupported,
    /// demand a `tbh` always
    Required,
}

impl TbPolicy {
    /// From its setting name: `off`, `if-supported`, `required`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(TbPolicy::Off),
            "if-supported" => Some(TbPolicy::IfSupported),
            "required" => Some(TbPolicy::Required),
            _ => None,
        }
    }
}

/// Check `tbh` (the ID Token's `cnf.tbh`, if any) against `ua_binding` (the Token Binding ID of
/// the RP's connection with the user agent at sign-in, if one was negotiated), given whether
/// the OP advertises `op_id_token_token_binding_supported`.
pub fn check_tbh(
    tbh: Option<&str>,
    ua_binding: Option<&TokenBindingId>,
    op_supports: bool,
    policy: TbPolicy,
) -> Result<(), RpError> {
    match (tbh, ua_binding) {
        (Some(tbh), Some(id)) => {
            let ours = id
                .tbh()
                .map_err(|e| RpError::NotBound(format!("the user agent's Token Binding ID: {e}")))?;
            if keybound_jose::ct_eq(tbh.as_bytes(), ours.as_bytes()) {
                Ok(())
            } else {
                Err(RpError::NotBound(
                    "the ID Token's cnf.tbh names another Token Binding than this user agent's connection: refusing it".into(),
                ))
            }
        }
        (Some(_), None) => Err(RpError::NotBound(
            "the ID Token is token-bound (cnf.tbh) but this connection negotiated no Token Binding: refusing it".into(),
        )),
        (None, ua) => {
            let downgrade = match policy {
                TbPolicy::Required => true,
                TbPolicy::IfSupported => op_supports && ua.is_some(),
                TbPolicy::Off => false,
            };
            if downgrade {
                Err(RpError::NotBound(
                    "the ID Token has no cnf.tbh although Token Binding is in use: a downgrade; refusing it".into(),
                ))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keybound_proto::tokbind::{KeyParameters, TbPublicKey};

    fn id(seed: u8) -> TokenBindingId {
        TokenBindingId {
            key_parameters: KeyParameters::EcdsaP256,
            key: TbPublicKey::Ec {
                point: vec![seed; 64],
            },
        }
    }

    /// §4: a `tbh` must name this connection's binding — a MUST under every policy, `off`
    /// included (issue 22 item 4: `off` returned `Ok` before comparing).
    #[test]
    fn tba_4_tbh_must_match_the_user_agents_binding() {
        let ours = id(1);
        let tbh = ours.tbh().unwrap_or_default();
        for policy in [TbPolicy::Off, TbPolicy::IfSupported, TbPolicy::Required] {
            assert!(check_tbh(Some(&tbh), Some(&ours), true, policy).is_ok());
            let other = id(2).tbh().unwrap_or_default();
            assert!(matches!(
                check_tbh(Some(&other), Some(&ours), true, policy),
                Err(RpError::NotBound(m)) if m.contains("another Token Binding")
            ));
            assert!(check_tbh(Some(&tbh), None, true, policy).is_err());
        }
    }

    /// §4, §6: a missing `tbh` under each downgrade setting.
    #[test]
    fn tba_6_missing_tbh_under_each_policy() {
        let ours = id(1);
        // off: never a downgrade
        assert!(check_tbh(None, Some(&ours), true, TbPolicy::Off).is_ok());
        // if-supported: a downgrade only when the OP supports it and the UA negotiated it
        assert!(check_tbh(None, Some(&ours), true, TbPolicy::IfSupported).is_err());
        assert!(check_tbh(None, Some(&ours), false, TbPolicy::IfSupported).is_ok());
        assert!(check_tbh(None, None, true, TbPolicy::IfSupported).is_ok());
        // required: always
        assert!(check_tbh(None, None, false, TbPolicy::Required).is_err());
        assert_eq!(TbPolicy::parse("if-supported"), Some(TbPolicy::IfSupported));
        assert_eq!(TbPolicy::parse("maybe"), None);
    }
}
