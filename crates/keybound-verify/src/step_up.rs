//! RFC 9470 step-up: a route can demand more of the End-User's sign-in than a valid token —
//! an `acr` among its acceptable values and an authentication no older than `max_age`. A token
//! that falls short is refused with `insufficient_user_authentication`, and the challenge
//! names what would do (`acr_values`, `max_age`), so the client can send the End-User to sign
//! in again with exactly those values (`keybound_rp::Rp::begin_step_up`, the browser package's
//! `stepUp`). The check reads what the token says (`acr`, `auth_time`: ID Tokens, and access
//! tokens per RFC 9068 §2.2.1) after the token and its proof verified.

pub use keybound_proto::wire::StepUp;

use crate::{VerifiedAccess, VerifiedIdentity, Verifier, VerifyError};

/// How the End-User signed in, as a verified token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn<'a> {
    /// `acr`
    pub acr: Option<&'a str>,
    /// `auth_time`
    pub auth_time: Option<u64>,
}

impl VerifiedIdentity {
    /// The sign-in this ID Token describes.
    pub fn sign_in(&self) -> SignIn<'_> {
        SignIn {
            acr: self.claims.acr.as_deref(),
            auth_time: self.claims.auth_time,
        }
    }
}

impl VerifiedAccess {
    /// The sign-in this access token describes (RFC 9068 §2.2.1).
    pub fn sign_in(&self) -> SignIn<'_> {
        SignIn {
            acr: self.claims.acr.as_deref(),
            auth_time: self.claims.auth_time,
        }
    }
}

impl Verifier {
    /// Whether `sign_in` meets `required` now: its `acr` is one of `required.acr_values` (when
    /// any are named) and it is no older than `required.max_age` (when set; a token without
    /// `auth_time` does not show its age and falls short).
    pub fn check_sign_in(&self, sign_in: SignIn<'_>, required: &StepUp) -> Result<(), VerifyError> {
        let short = |why: String| VerifyError::InsufficientUserAuthentication {
            required: required.clone(),
            why,
        };
        if !required.acr_values.is_empty()
            && !sign_in
                .acr
                .is_some_and(|a| required.acr_values.iter().any(|r| r == a))
        {
            return Err(short(format!(
                "this resource needs a sign-in with acr {}; the token's acr is {}",
                required.acr_values.join(" or "),
                sign_in.acr.unwrap_or("absent")
            )));
        }
        if let Some(max_age) = required.max_age {
            let now = self.now();
            match sign_in.auth_time {
                None => {
                    return Err(short(format!(
                        "this resource needs a sign-in within {max_age} s; the token has no auth_time"
                    )))
                }
                Some(t) if now.saturating_sub(t) > max_age.saturating_add(self.config().leeway) => {
                    return Err(short(format!(
                        "this resource needs a sign-in within {max_age} s; the End-User signed in {} s ago",
                        now.saturating_sub(t)
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
