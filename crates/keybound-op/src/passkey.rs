//! Passkeys (WebAuthn) at the OP: registering them for a signed-in End-User, signing in with
//! one (discoverable, no username), and a passkey as second factor after the password.
//!
//! The ceremonies are `webauthn-rs`'s (Kanidm's, audited): this module only decides what the
//! OP requires and where a ceremony's state lives.
//!
//! - **User verification is required** in every ceremony, and passkeys are registered as
//!   discoverable credentials (resident keys), so the login page can offer "Sign in with a
//!   passkey" without asking for a username.
//! - **RP ID and origin come from the issuer**: the RP ID is the issuer's host name and the only
//!   accepted origin is the issuer's origin (scheme, host, port). An issuer on an IP address
//!   (the default `http://127.0.0.1:8080`) cannot have passkeys — browsers refuse an IP as RP
//!   ID — and every passkey entry point says so ([`PasskeyRefusal::Unavailable`]).
//! - **A ceremony's state travels sealed, and is used once.** Between the options the browser
//!   gets and the credential it sends back, the library's state (the challenge, the policy) is
//!   carried by the page as an opaque string: JSON under an HMAC of the store's shared secret,
//!   keyed also by the browser's form secret (its session or pre-session cookie), so any node
//!   can finish a ceremony another started, but only for the browser it was started for. The
//!   state expires after [`CEREMONY_TTL`] and is recorded in the replay store at its one use:
//!   a replayed assertion with its state is refused on every node.
//! - **A cloned authenticator is refused**: the library compares the signature counter with
//!   the credential's record, and the store records a use only while the counter moves forward
//!   ([`keybound_store::Passkey::record_use`]), so two sign-ins with one counter value race to
//!   exactly one success.
//! - **Attempts are throttled like passwords** (per credential and per source address), and a
//!   credential this OP does not know is refused with the same words as a wrong signature.
//!
//! What a sign-in was is [`Strength`]: it gives the session's `amr` (RFC 8176) and the `acr`
//! values ([`acr`]) that tokens carry and authorization requests can demand.

use keybound_store::BrowserSession;
use serde::Serialize;

use crate::refusal::PasskeyRefusal as Why;
use crate::{OpError, Provider};

// The ceremonies need `webauthn-rs` (on the system OpenSSL, like the Token Binding listener):
// behind the `passkeys` feature, on in the binary. Without it every passkey entry point says
// that this build has none.
#[cfg(feature = "passkeys")]
#[path = "passkey/webauthn.rs"]
mod ceremony;
#[cfg(not(feature = "passkeys"))]
#[path = "passkey/unavailable.rs"]
mod ceremony;

pub(crate) use ceremony::RelyingParty;

/// How long a started ceremony can be finished (the browser's own timeout is shorter).
pub const CEREMONY_TTL: u64 = 300;
/// The longest passkey name kept.
pub const MAX_NAME_CHARS: usize = 64;

/// The `acr` values this OP issues and understands (documented in docs/security.md), weakest
/// first.
pub mod acr {
    /// a password
    pub const PWD: &str = "urn:keybound:acr:pwd";
    /// a passkey with user verification
    pub const PASSKEY: &str = "urn:keybound:acr:passkey";
    /// a password and a passkey
    pub const MFA: &str = "urn:keybound:acr:mfa";
    /// every value, weakest first (discovery's `acr_values_supported`)
    pub const SUPPORTED: [&str; 3] = [PWD, PASSKEY, MFA];
}

/// How strongly the End-User proved who they are, weakest first: the order decides whether a
/// sign-in satisfies an `acr` a client or an API demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// a password
    Password,
    /// a passkey with user verification (possession of the key and the End-User's PIN or
    /// biometric at the authenticator)
    Passkey,
    /// a password and then a passkey
    PasswordAndPasskey,
}

impl Strength {
    /// The `acr` value of this strength.
    pub fn acr(self) -> &'static str {
        match self {
            Strength::Password => acr::PWD,
            Strength::Passkey => acr::PASSKEY,
            Strength::PasswordAndPasskey => acr::MFA,
        }
    }

    /// The strength an `acr` value names (`None`: not one of [`acr::SUPPORTED`]).
    pub fn from_acr(value: &str) -> Option<Self> {
        match value {
            acr::PWD => Some(Strength::Password),
            acr::PASSKEY => Some(Strength::Passkey),
            acr::MFA => Some(Strength::PasswordAndPasskey),
            _ => None,
        }
    }

    /// RFC 8176 `amr` of this strength. A passkey is `swk`: keybound asks for no attestation,
    /// so it cannot tell a hardware-held key from a synced one, and never claims `hwk`; `user`
    /// because user verification is required.
    pub fn amr(self) -> Vec<String> {
        let v: &[&str] = match self {
            Strength::Password => &["pwd"],
            Strength::Passkey => &["swk", "user"],
            Strength::PasswordAndPasskey => &["pwd", "swk", "user", "mfa"],
        };
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The strength of a sign-in whose `amr` is `amr` (sessions keep `amr`, not the strength).
    pub fn of_amr(amr: &[String]) -> Self {
        let has = |m: &str| amr.iter().any(|a| a == m);
        let key = has("swk") || has("hwk");
        match (has("pwd"), key) {
            (true, true) => Strength::PasswordAndPasskey,
            (false, true) => Strength::Passkey,
            _ => Strength::Password,
        }
    }

    /// The `acr` a token says for a sign-in of this strength when `requested` (the request's
    /// `acr_values`, in order of preference) asked for some: the first requested value it
    /// satisfies (a stronger sign-in satisfies a weaker value), else its own.
    pub fn acr_for(self, requested: &[String]) -> &'static str {
        requested
            .iter()
            .filter_map(|r| Strength::from_acr(r))
            .find(|s| *s <= self)
            .map_or(self.acr(), Strength::acr)
    }
}

/// The weakest strength that satisfies one of `values` (known values only; `None` when none
/// is known).
pub fn weakest_of(values: &[String]) -> Option<Strength> {
    values.iter().filter_map(|v| Strength::from_acr(v)).min()
}

/// A started ceremony: the options for `navigator.credentials.create` / `.get` (JSON as
/// `PublicKeyCredential.parse…OptionsFromJSON` takes it) and the sealed state the page sends
/// back with the credential.
#[derive(Debug, Clone, Serialize)]
pub struct Ceremony {
    /// `publicKey` options (WebAuthn JSON)
    pub options: serde_json::Value,
    /// the sealed state
    pub state: String,
}

/// What a passkey sign-in established.
#[derive(Debug, Clone)]
pub struct PasskeySignIn {
    /// the End-User
    pub sub: String,
    /// the passkey used
    pub credential_id: String,
}

impl Provider {
    /// Whether this OP can offer passkeys (its issuer is on a host name, the build has them),
    /// or why not.
    pub fn passkeys_available(&self) -> Result<(), String> {
        self.relying_party.available()
    }

    /// A new browser session for `sub`, signed in at `now` with `strength`.
    pub fn new_session(&self, sub: &str, strength: Strength) -> BrowserSession {
        let now = self.now();
        BrowserSession {
            sub: sub.to_owned(),
            auth_time: now,
            amr: strength.amr(),
            created_at: now,
            expires_at: now + self.config.session_ttl,
            fresh_for: None,
            sid: self.random_id(),
            clients: Vec::new(),
            dbsc: None,
        }
    }

    /// The session a passkey sign-in starts: a passkey alone, or — when the browser's session
    /// is the same End-User's password sign-in — a password and a passkey (step-up).
    pub fn passkey_session(
        &self,
        signed_in: &PasskeySignIn,
        current: Option<&BrowserSession>,
    ) -> BrowserSession {
        let after_password =
            current.is_some_and(|c| c.sub == signed_in.sub && c.amr.iter().any(|a| a == "pwd"));
        let strength = if after_password {
            Strength::PasswordAndPasskey
        } else {
            Strength::Passkey
        };
        self.new_session(&signed_in.sub, strength)
    }

    /// Whether `session` may add, rename or remove passkeys: once the account has a passkey,
    /// only a sign-in that used one may change them (a stolen password must not let its thief
    /// add their own passkey, or remove the End-User's). The first passkey is added after a
    /// password sign-in.
    pub async fn may_manage_passkeys(&self, session: &BrowserSession) -> Result<(), OpError> {
        if Strength::of_amr(&session.amr) >= Strength::Passkey
            || self.store.passkeys_of(&session.sub).await?.is_empty()
        {
            Ok(())
        } else {
            Err(Why::StepUpToManage.into())
        }
    }

    /// Rename one of `sub`'s passkeys.
    pub async fn rename_passkey(
        &self,
        sub: &str,
        credential_id: &str,
        name: &str,
    ) -> Result<(), OpError> {
        let name = passkey_name(name)?;
        if self.store.rename_passkey(sub, credential_id, &name).await? {
            Ok(())
        } else {
            Err(Why::NotYours.into())
        }
    }

    /// Remove one of `sub`'s passkeys.
    pub async fn remove_passkey(&self, sub: &str, credential_id: &str) -> Result<(), OpError> {
        if self.store.delete_passkey(sub, credential_id).await? {
            self.event(
                crate::events::SecurityEvent::new(crate::events::EventType::PasskeyRemoved)
                    .subject(sub)
                    .reason(credential_id),
            );
            Ok(())
        } else {
            Err(Why::NotYours.into())
        }
    }
}

/// A passkey name as kept: trimmed, not empty, at most [`MAX_NAME_CHARS`] characters, no
/// control characters.
fn passkey_name(name: &str) -> Result<String, OpError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(Why::Name.into());
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_for_answers_the_first_requested_value_the_sign_in_satisfies() {
        let req = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(Strength::Password.acr_for(&[]), acr::PWD);
        assert_eq!(
            Strength::PasswordAndPasskey.acr_for(&req(&[acr::PASSKEY])),
            acr::PASSKEY
        );
        assert_eq!(
            Strength::Password.acr_for(&req(&[acr::MFA, acr::PASSKEY])),
            acr::PWD
        );
        assert_eq!(
            Strength::Passkey.acr_for(&req(&["urn:other", acr::MFA, acr::PWD])),
            acr::PWD
        );
    }

    #[test]
    fn amr_round_trips_through_strength() {
        for s in [
            Strength::Password,
            Strength::Passkey,
            Strength::PasswordAndPasskey,
        ] {
            assert_eq!(Strength::of_amr(&s.amr()), s);
            assert_eq!(Strength::from_acr(s.acr()), Some(s));
        }
    }

    #[test]
    fn passkey_names_are_trimmed_and_bounded() {
        assert_eq!(passkey_name("  Laptop ").unwrap(), "Laptop");
        assert!(passkey_name("   ").is_err());
        assert!(passkey_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(passkey_name("a\nb").is_err());
    }
}
