//! Passkeys in a build without the `passkeys` feature (no `webauthn-rs`, no OpenSSL): every
//! entry point says so.

use super::{Ceremony, PasskeySignIn};
use crate::refusal::PasskeyRefusal as Why;
use crate::{OpError, Provider};

const WHY: &str = "this keybound was built without passkeys (cargo feature `passkeys`)";

/// No relying party: this build has no WebAuthn.
#[derive(Debug)]
pub(crate) struct RelyingParty;

impl RelyingParty {
    pub(crate) fn for_issuer(_issuer: &str) -> Self {
        RelyingParty
    }

    pub(crate) fn available(&self) -> Result<(), String> {
        Err(WHY.to_owned())
    }
}

fn unavailable<T>() -> Result<T, OpError> {
    Err(Why::Unavailable(WHY.to_owned()).into())
}

impl Provider {
    /// Without the `passkeys` feature: refused.
    pub async fn start_passkey_registration(
        &self,
        _sub: &str,
        _form_secret: &str,
    ) -> Result<Ceremony, OpError> {
        unavailable()
    }

    /// Without the `passkeys` feature: refused.
    pub async fn finish_passkey_registration(
        &self,
        _sub: &str,
        _form_secret: &str,
        _state: &str,
        _credential: &str,
        _name: &str,
    ) -> Result<keybound_store::Passkey, OpError> {
        unavailable()
    }

    /// Without the `passkeys` feature: refused.
    pub async fn start_passkey_sign_in(
        &self,
        _form_secret: &str,
        _second_factor_for: Option<&str>,
    ) -> Result<Ceremony, OpError> {
        unavailable()
    }

    /// Without the `passkeys` feature: refused.
    pub async fn passkey_sign_in(
        &self,
        _form_secret: &str,
        _state: &str,
        _credential: &str,
        _source: Option<&str>,
    ) -> Result<PasskeySignIn, OpError> {
        unavailable()
    }
}
