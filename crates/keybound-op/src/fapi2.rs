//! The FAPI 2.0 Security Profile (final, 2025), per client (`--profile fapi2`) or for every
//! client (`default_profile = "fapi2"`): the relaxations the profile forbids are refused here,
//! each with the clause it breaks, while the ordinary rules stay where they are.
//!
//! - §5.3.2.2-2: authorization requests only by PAR (RFC 9126);
//! - §5.3.2.2-3/-6 and §5.3.1-2: PKCE with S256 on every request, confidential clients only;
//! - §5.3.2.1-2: client authentication only with `private_key_jwt` (keybound offers no mTLS);
//! - §5.3.2.1-1 and §5.3.3-5: only sender-constrained access tokens (DPoP) — no Bearer token;
//! - §5.3.2.2-1: `response_type=code` only;
//! - §5.3.2.2-8: authorization codes live at most 60 s;
//! - §5.3.2.2-9: `iss` in the authorization response (RFC 9207) — keybound always sends it.
//!
//! Key Binding works under it: a FAPI 2.0 client may ask for `bound_key` like any other.

use keybound_store::{Client, ClientAuthMethod};

use crate::refusal::Fapi2Refusal as Why;
use crate::{OpError, Provider};

/// Longest authorization code lifetime under the profile, seconds (§5.3.2.2-8).
pub const MAX_CODE_TTL: u64 = 60;

impl Provider {
    /// Whether `client` is held to the FAPI 2.0 Security Profile.
    pub fn fapi2(&self, client: &Client) -> bool {
        client.fapi2 || self.config.fapi2
    }

    /// The authorization request's rules (§5.3.2.2): pushed, `code`, PKCE.
    pub(crate) fn fapi2_authorization(
        &self,
        client: &Client,
        pushed: bool,
        response_type_is_code: bool,
        code_challenge: bool,
    ) -> Result<(), Why> {
        if !self.fapi2(client) {
            return Ok(());
        }
        if !pushed {
            return Err(Why::ParRequired(client.client_id.clone()));
        }
        if !response_type_is_code {
            return Err(Why::CodeOnly);
        }
        if !code_challenge {
            return Err(Why::PkceRequired);
        }
        Ok(())
    }

    /// Client authentication (§5.3.2.1-2): `private_key_jwt` only, so no public client either.
    pub(crate) fn fapi2_client_authentication(&self, client: &Client) -> Result<(), OpError> {
        if self.fapi2(client) && client.auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err(Why::PrivateKeyJwtOnly {
                client: client.client_id.clone(),
                method: client.auth_method.as_str(),
            }
            .into());
        }
        Ok(())
    }

    /// A token request (§5.3.2.1-1): a DPoP proof, so the access token is sender-constrained.
    pub(crate) fn fapi2_token(&self, client: &Client, proof: bool) -> Result<(), OpError> {
        if self.fapi2(client) && !proof {
            return Err(Why::SenderConstrained.into());
        }
        Ok(())
    }

    /// The lifetime of a code issued to `client` (§5.3.2.2-8).
    pub(crate) fn code_ttl(&self, client: &Client) -> u64 {
        if self.fapi2(client) {
            self.config.code_ttl.min(MAX_CODE_TTL)
        } else {
            self.config.code_ttl
        }
    }
}
