//! The passkey ceremonies on `webauthn-rs` (feature `passkeys`); the rules they follow are in
//! the parent module's documentation.

use crate::events::{EventType, SecurityEvent};
use std::time::Duration;

use keybound_store::{Passkey, StoreError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use webauthn_rs::prelude as wa;

use super::{passkey_name, Ceremony, PasskeySignIn, CEREMONY_TTL};
use crate::refusal::PasskeyRefusal as Why;
use crate::{OpError, Provider};

/// The relying party this OP is to WebAuthn, from its issuer.
pub(crate) struct RelyingParty {
    webauthn: Result<wa::Webauthn, String>,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("available", &self.webauthn.is_ok())
            .finish()
    }
}

impl RelyingParty {
    /// The relying party for `issuer`: its host name is the RP ID, its origin the one origin.
    pub(crate) fn for_issuer(issuer: &str) -> Self {
        let webauthn = (|| {
            let origin = url::Url::parse(issuer).map_err(|e| format!("issuer '{issuer}': {e}"))?;
            let Some(url::Host::Domain(host)) = origin.host() else {
                return Err(format!(
                    "passkeys need an issuer on a host name (browsers refuse an IP address as \
                     WebAuthn RP ID); this OP's issuer is {issuer}: use e.g. http://localhost:PORT \
                     on loopback or your https host name"
                ));
            };
            let host = host.to_owned();
            wa::WebauthnBuilder::new(&host, &origin)
                .and_then(|b| {
                    b.rp_name("keybound")
                        .timeout(Duration::from_secs(CEREMONY_TTL - 60))
                        .build()
                })
                .map_err(|e| format!("passkeys for issuer {issuer}: {e}"))
        })();
        RelyingParty { webauthn }
    }

    /// Whether passkeys can be offered, or why not.
    pub(crate) fn available(&self) -> Result<(), String> {
        self.webauthn.as_ref().map(|_| ()).map_err(Clone::clone)
    }
}

/// The ceremonies, each with the purpose its sealed state is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Purpose {
    Register,
    SignIn,
}

#[derive(Serialize, Deserialize)]
struct Sealed<S> {
    purpose: Purpose,
    /// the End-User the ceremony is for (registration, second factor); `None`: anyone
    sub: Option<String>,
    expires_at: u64,
    state: S,
}

/// The state of a sign-in: a discoverable one, or a second factor for a known End-User.
#[derive(Serialize, Deserialize)]
enum SignInState {
    Discoverable(wa::DiscoverableAuthentication),
    SecondFactor(wa::PasskeyAuthentication),
}

const SEAL_LABEL: &str = "keybound passkey ceremony v1";

impl Provider {
    fn webauthn(&self) -> Result<&wa::Webauthn, OpError> {
        self.relying_party
            .webauthn
            .as_ref()
            .map_err(|why| Why::Unavailable(why.clone()).into())
    }

    /// The WebAuthn user handle of `sub`: 16 bytes of an HMAC under the store's shared secret,
    /// so it reveals nothing about the account and is the same on every node.
    fn user_handle(&self, sub: &str) -> wa::Uuid {
        let tag = self.store.secret_mac().tag(&["webauthn user handle", sub]);
        let mut b = [0u8; 16];
        b.copy_from_slice(&tag[..16]);
        wa::Uuid::from_bytes(b)
    }

    fn seal<S: Serialize>(&self, sealed: &Sealed<S>, form_secret: &str) -> Result<String, OpError> {
        let json = serde_json::to_string(sealed)
            .map_err(|e| OpError::internal(format!("passkey state: {e}")))?;
        let body = keybound_jose::b64::encode(json.as_bytes());
        let mac = self
            .store
            .secret_mac()
            .tag(&[SEAL_LABEL, &body, form_secret]);
        Ok(format!("{body}.{}", keybound_jose::b64::encode(mac)))
    }

    /// Open a sealed state for this browser and purpose, and record its one use.
    async fn open<S: DeserializeOwned>(
        &self,
        sealed: &str,
        form_secret: &str,
        purpose: Purpose,
    ) -> Result<Sealed<S>, OpError> {
        let (body, mac) = sealed.split_once('.').ok_or(Why::ForeignCeremony)?;
        let expected = self
            .store
            .secret_mac()
            .tag(&[SEAL_LABEL, body, form_secret]);
        let given = keybound_jose::b64::decode(mac).map_err(|_| Why::ForeignCeremony)?;
        if !keybound_jose::ct_eq(&expected, &given) {
            return Err(Why::ForeignCeremony.into());
        }
        let json = keybound_jose::b64::decode(body).map_err(|_| Why::ForeignCeremony)?;
        let inner = |e: serde_json::Error| {
            OpError::internal(format!("passkey state under a valid MAC: {e}"))
        };
        let opened: Sealed<serde_json::Value> = serde_json::from_slice(&json).map_err(inner)?;
        let now = self.now();
        if opened.purpose != purpose {
            return Err(Why::ForeignCeremony.into());
        }
        if opened.expires_at <= now {
            return Err(Why::CeremonyUsedOrExpired.into());
        }
        let digest = keybound_jose::sha256(sealed.as_bytes());
        if !self
            .store
            .check_and_insert(&digest, opened.expires_at, now)
            .await?
        {
            return Err(Why::CeremonyUsedOrExpired.into());
        }
        Ok(Sealed {
            purpose: opened.purpose,
            sub: opened.sub,
            expires_at: opened.expires_at,
            state: serde_json::from_value(opened.state).map_err(inner)?,
        })
    }

    /// Start registering a passkey for the signed-in `sub` (its passkeys excluded, so an
    /// authenticator cannot register twice).
    pub async fn start_passkey_registration(
        &self,
        sub: &str,
        form_secret: &str,
    ) -> Result<Ceremony, OpError> {
        let webauthn = self.webauthn()?;
        let user = self.store.user(sub).await?.ok_or(Why::NoSuchUser)?;
        let existing = self.store.passkeys_of(sub).await?;
        let exclude = existing
            .iter()
            .filter_map(|p| keybound_jose::b64::decode(&p.credential_id).ok())
            .map(wa::CredentialID::from)
            .collect::<Vec<_>>();
        let display = user.name.clone().unwrap_or_else(|| user.username.clone());
        let (ccr, state) = webauthn
            .start_passkey_registration(
                self.user_handle(sub),
                &user.username,
                &display,
                Some(exclude),
            )
            .map_err(|e| Why::Library(e.to_string()))?;
        // discoverable credentials, so sign-in needs no username (the library asks for
        // non-resident keys; its state does not depend on this)
        let mut options = options_json(&ccr)?;
        options["authenticatorSelection"]["residentKey"] = "required".into();
        options["authenticatorSelection"]["requireResidentKey"] = true.into();
        let sealed = Sealed {
            purpose: Purpose::Register,
            sub: Some(sub.to_owned()),
            expires_at: self.now() + CEREMONY_TTL,
            state,
        };
        Ok(Ceremony {
            options,
            state: self.seal(&sealed, form_secret)?,
        })
    }

    /// Finish registering: verify the authenticator's response against the sealed state and
    /// store the passkey under `name`.
    pub async fn finish_passkey_registration(
        &self,
        sub: &str,
        form_secret: &str,
        state: &str,
        credential: &str,
        name: &str,
    ) -> Result<Passkey, OpError> {
        let name = passkey_name(name)?;
        let webauthn = self.webauthn()?;
        let opened: Sealed<wa::PasskeyRegistration> =
            self.open(state, form_secret, Purpose::Register).await?;
        if opened.sub.as_deref() != Some(sub) {
            return Err(Why::ForeignCeremony.into());
        }
        let reg: wa::RegisterPublicKeyCredential =
            serde_json::from_str(credential).map_err(|e| Why::Malformed(e.to_string()))?;
        let passkey = webauthn
            .finish_passkey_registration(&reg, &opened.state)
            .map_err(|e| Why::NotVerified(e.to_string()))?;
        let record = Passkey {
            credential_id: keybound_jose::b64::encode(passkey.cred_id().as_ref()),
            sub: sub.to_owned(),
            name,
            credential: serde_json::to_string(&passkey)
                .map_err(|e| OpError::internal(format!("passkey record: {e}")))?,
            sign_count: 0,
            created_at: self.now(),
            last_used_at: None,
        };
        match self.store.insert_passkey(&record).await {
            Ok(()) => {
                self.event(
                    SecurityEvent::new(EventType::PasskeyRegistered)
                        .subject(&record.sub)
                        .reason(&record.credential_id),
                );
                Ok(record)
            }
            Err(StoreError::Conflict(_)) => Err(Why::AlreadyRegistered.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Start a passkey sign-in: discoverable (`second_factor_for` `None`: the authenticator
    /// offers the End-User's passkeys for this site), or as second factor for a known End-User
    /// (only their passkeys allowed).
    pub async fn start_passkey_sign_in(
        &self,
        form_secret: &str,
        second_factor_for: Option<&str>,
    ) -> Result<Ceremony, OpError> {
        let webauthn = self.webauthn()?;
        let (mut rcr, state) = match second_factor_for {
            None => {
                let (rcr, st) = webauthn
                    .start_discoverable_authentication()
                    .map_err(|e| Why::Library(e.to_string()))?;
                (rcr, SignInState::Discoverable(st))
            }
            Some(sub) => {
                let keys = self
                    .store
                    .passkeys_of(sub)
                    .await?
                    .iter()
                    .filter_map(|p| serde_json::from_str::<wa::Passkey>(&p.credential).ok())
                    .collect::<Vec<_>>();
                if keys.is_empty() {
                    return Err(Why::NoPasskey.into());
                }
                let (rcr, st) = webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(|e| Why::Library(e.to_string()))?;
                (rcr, SignInState::SecondFactor(st))
            }
        };
        // a button press, not the autofill ("conditional") UI the library defaults to
        rcr.mediation = None;
        let sealed = Sealed {
            purpose: Purpose::SignIn,
            sub: second_factor_for.map(str::to_owned),
            expires_at: self.now() + CEREMONY_TTL,
            state,
        };
        Ok(Ceremony {
            options: options_json(&rcr)?,
            state: self.seal(&sealed, form_secret)?,
        })
    }

    /// Finish a passkey sign-in: the End-User whose passkey signed the challenge, or a refusal
    /// (a wrong signature and an unknown credential alike). Throttled per credential and per
    /// `source` address, like passwords.
    pub async fn passkey_sign_in(
        &self,
        form_secret: &str,
        state: &str,
        credential: &str,
        source: Option<&str>,
    ) -> Result<PasskeySignIn, OpError> {
        let webauthn = self.webauthn()?;
        let opened: Sealed<SignInState> = self.open(state, form_secret, Purpose::SignIn).await?;
        let assertion: wa::PublicKeyCredential =
            serde_json::from_str(credential).map_err(|e| Why::Malformed(e.to_string()))?;
        let credential_id = keybound_jose::b64::encode(assertion.get_credential_id());
        let principal = format!("passkey\0{credential_id}");
        let address = crate::address_key(source);
        let attempt = self
            .begin_sign_in_attempt(&principal, address.as_deref(), "passkeys")
            .await?;
        match self
            .verify_assertion(webauthn, opened, &assertion, &credential_id)
            .await
        {
            Ok(signed_in) => {
                attempt.succeeded().await?;
                self.event(
                    SecurityEvent::new(EventType::SignInSucceeded)
                        .subject(&signed_in.sub)
                        .reason("passkey"),
                );
                Ok(signed_in)
            }
            Err(OpError::Refused(r)) => {
                attempt.failed().await?;
                self.event(SecurityEvent::new(EventType::SignInFailed).reason("passkey_refused"));
                Err(OpError::Refused(r))
            }
            Err(e) => Err(e),
        }
    }

    async fn verify_assertion(
        &self,
        webauthn: &wa::Webauthn,
        opened: Sealed<SignInState>,
        assertion: &wa::PublicKeyCredential,
        credential_id: &str,
    ) -> Result<PasskeySignIn, OpError> {
        let stored = self
            .store
            .passkey(credential_id)
            .await?
            .ok_or_else(|| Why::NotVerified("no passkey with this credential id".into()))?;
        if opened.sub.as_ref().is_some_and(|s| *s != stored.sub) {
            return Err(Why::NotVerified("the passkey of another End-User".into()).into());
        }
        let mut key: wa::Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| OpError::internal(format!("stored passkey record: {e}")))?;
        let result = match opened.state {
            SignInState::Discoverable(st) => {
                // WebAuthn §7.2 step 6: the user handle names the credential's owner
                let (handle, _) = webauthn
                    .identify_discoverable_authentication(assertion)
                    .map_err(|e| Why::NotVerified(e.to_string()))?;
                if handle != self.user_handle(&stored.sub) {
                    return Err(Why::NotVerified("user handle of another End-User".into()).into());
                }
                webauthn.finish_discoverable_authentication(
                    assertion,
                    st,
                    &[wa::DiscoverableKey::from(&key)],
                )
            }
            SignInState::SecondFactor(st) => webauthn.finish_passkey_authentication(assertion, &st),
        };
        let result = result.map_err(|e| match e {
            wa::WebauthnError::CredentialPossibleCompromise => Why::ClonedAuthenticator {
                credential_id: credential_id.to_owned(),
            },
            e => Why::NotVerified(e.to_string()),
        })?;
        key.update_credential(&result);
        let record = serde_json::to_string(&key)
            .map_err(|e| OpError::internal(format!("passkey record: {e}")))?;
        if !self
            .store
            .use_passkey(credential_id, &record, result.counter(), self.now())
            .await?
        {
            return Err(Why::ClonedAuthenticator {
                credential_id: credential_id.to_owned(),
            }
            .into());
        }
        Ok(PasskeySignIn {
            sub: stored.sub,
            credential_id: credential_id.to_owned(),
        })
    }
}

/// The options of a ceremony as the page passes them to `parse…OptionsFromJSON`.
fn options_json<T: Serialize>(challenge: &T) -> Result<serde_json::Value, OpError> {
    let mut v = serde_json::to_value(challenge)
        .map_err(|e| OpError::internal(format!("passkey options: {e}")))?;
    Ok(v.get_mut("publicKey")
        .map(serde_json::Value::take)
        .unwrap_or(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_on_an_ip_address_has_no_passkeys() {
        let rp = RelyingParty::for_issuer("http://127.0.0.1:8080");
        assert!(rp.webauthn.unwrap_err().contains("host name"));
        assert!(RelyingParty::for_issuer("http://localhost:8080")
            .webauthn
            .is_ok());
        assert!(RelyingParty::for_issuer("https://id.example.com")
            .webauthn
            .is_ok());
    }
}
