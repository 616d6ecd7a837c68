//! RFC 8628 device authorization with the Key Binding device profile: the device
//! authorization endpoint, the verification page's decisions, and the `device_code` grant.
//!
//! The key is announced with `dpop_jkt` or by a DPoP proof at the device authorization endpoint
//! (both: they must match, device-flow.md §8.5). Every poll carries a proof by that key with
//! `c_s256` over the device code; `slow_down` and redemption are atomic in the store, so they hold
//! across OP nodes and two concurrent polls after approval get tokens exactly once.

use keybound_proto::keybinding::RequestedBinding;
use keybound_proto::wire::DeviceAuthorizationResponse;
use keybound_store::{BrowserSession, Client, DeviceAuthorization, DeviceDecision, TokenHash};

use crate::proof::ProofRequest;
use crate::refusal::RequestRefusal;
use crate::{OpError, Provider, SUPPORTED_SCOPES};

/// User codes: 8 characters of 20 consonants (RFC 8628 §6.1), ≈ 2^34.6 codes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A device authorization request as received.
pub type DeviceRequestFacts<'a> = crate::form::FormRequest<'a>;

/// Normalise what an End-User typed: case, spaces and dashes ignored. `None` unless it is
/// 8 characters of the alphabet.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == 8 && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// `XXXX-XXXX` for display.
fn display_code(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

impl Provider {
    fn user_code(&self) -> String {
        // rejection sampling over random bytes: 240 = 12 × 20, so no bias
        let mut out = String::with_capacity(8);
        while out.len() < 8 {
            let bytes = keybound_jose::b64::decode(&self.rng.token(24)).unwrap_or_default();
            for b in bytes {
                if b < 240 && out.len() < 8 {
                    out.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
                }
            }
        }
        out
    }

    /// The device authorization endpoint (RFC 8628 §3.1, Key Binding §4).
    pub async fn device_authorization(
        &self,
        facts: DeviceRequestFacts<'_>,
    ) -> Result<DeviceAuthorizationResponse, OpError> {
        let form = facts.form;
        let client = self.authenticate_client(facts.authorization, form).await?;
        // RFC 8628 §3.1, RFC 7591 §2: only a client registered for the device grant
        crate::grant::require_grant(&client, keybound_proto::wire::grant_type::DEVICE_CODE)?;
        let now = self.now();
        // a DPoP proof here is optional; when present it is checked in full and names the key
        let proof = self
            .verify_proof(ProofRequest::post(
                facts.dpop,
                &self.config.endpoints.device_authorization,
                &client,
            ))
            .await?;
        let scope_in = form.get("scope").unwrap_or("");
        let mut scopes: Vec<&str> = Vec::new();
        for s in scope_in.split(' ').filter(|s| !s.is_empty()) {
            if SUPPORTED_SCOPES.contains(&s) && !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        if !scopes.contains(&"openid") {
            return Err(RequestRefusal::OpenidScopeRequired.into());
        }
        let dpop_jkt = crate::proof::dpop_jkt(form.get("dpop_jkt"), proof.as_ref())?;
        let binding = RequestedBinding::from_request(scope_in, dpop_jkt.as_deref())
            .map_err(RequestRefusal::Binding)?;
        let device_code = self.random_token();
        let expires_at = now + self.config.device_code_ttl;
        let mut user_code = self.user_code();
        let record = |uc: &str| DeviceAuthorization {
            client_id: client.client_id.clone(),
            scope: scopes.join(" "),
            nonce: form.get("nonce").map(str::to_owned),
            dpop_jkt: binding.jkt().cloned(),
            bound_key: matches!(binding, RequestedBinding::BoundIdToken(_)),
            user_code: uc.to_owned(),
            grant_id: self.random_id(),
            created_at: now,
            expires_at,
        };
        // a user-code collision is astronomically rare; try a few fresh codes
        let mut stored = false;
        for _ in 0..5 {
            match self
                .store
                .insert_device(
                    &TokenHash::of(&device_code),
                    &record(&user_code),
                    self.config.device_interval,
                )
                .await
            {
                Ok(()) => {
                    stored = true;
                    break;
                }
                Err(keybound_store::StoreError::Conflict(_)) => user_code = self.user_code(),
                Err(e) => return Err(e.into()),
            }
        }
        if !stored {
            return Err(OpError::internal(
                "five fresh user codes in a row collided with live ones",
            ));
        }
        let shown = display_code(&user_code);
        Ok(DeviceAuthorizationResponse {
            device_code,
            verification_uri: self.config.endpoints.device.clone(),
            verification_uri_complete: Some(format!(
                "{}?user_code={shown}",
                self.config.endpoints.device
            )),
            user_code: shown,
            expires_in: self.config.device_code_ttl,
            interval: Some(self.config.device_interval),
        })
    }

    /// The verification page: a pending authorization for what the End-User typed, and its client.
    pub async fn device_lookup(
        &self,
        typed: &str,
    ) -> Result<Option<(TokenHash, DeviceAuthorization, Client)>, OpError> {
        let Some(code) = normalize_user_code(typed) else {
            return Ok(None);
        };
        let Some((hash, auth)) = self.store.device_by_user_code(&code, self.now()).await? else {
            return Ok(None);
        };
        let client = self
            .registered_client(&auth.client_id)
            .await?
            .ok_or_else(|| {
                OpError::internal(format!(
                    "device authorization of client '{}', which no longer exists",
                    auth.client_id
                ))
            })?;
        Ok(Some((hash, auth, client)))
    }

    /// Record the End-User's decision on the verification page.
    pub async fn device_decide(
        &self,
        hash: &TokenHash,
        session: &BrowserSession,
        approve: bool,
    ) -> Result<bool, OpError> {
        let decision = if approve {
            DeviceDecision::Approved {
                sub: session.sub.clone(),
                auth_time: session.auth_time,
                amr: session.amr.clone(),
            }
        } else {
            DeviceDecision::Denied
        };
        Ok(self
            .store
            .decide_device(hash, &decision, self.now())
            .await?)
    }
}
