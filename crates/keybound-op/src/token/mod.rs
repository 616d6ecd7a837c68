//! The token endpoint: client authentication, then one grant module per `grant_type`.
//!
//! Order (ARCHITECTURE.md §3.3), the same for every grant: authenticate the client →
//! verify the DPoP proof in full (signature, `typ`, `htm`, `htu`, `iat`, nonce, `jti` replay;
//! [`crate::proof`]) → look the code, device code or refresh token up *without* consuming it →
//! grant checks (client, `redirect_uri`, PKCE, bound key, `c_s256`) → consume atomically → mint
//! ([`crate::grant`]). A `use_dpop_nonce` answer or any other refusal before consumption
//! therefore leaves the code usable, and a replayed proof is reported as a replay even when
//! its code is already used.

mod client_credentials;
mod code;
mod device_code;
mod exchange;
mod jwt_bearer;
mod refresh;

pub use jwt_bearer::IssuerKeys;

use keybound_proto::dpop::VerifiedProof;
use keybound_proto::wire::grant_type;
use keybound_store::{Client, ProofMark};

pub use crate::form::Form;
pub use crate::grant::TokenSuccess;
use crate::proof::ProofRequest;
use crate::refusal::RequestRefusal;
use crate::{OpError, Provider};

/// One token request as the server received it.
pub type TokenRequestFacts<'a> = crate::form::FormRequest<'a>;

impl Provider {
    /// The token endpoint.
    #[tracing::instrument(level = "debug", name = "token", skip_all, fields(grant_type = facts.form.get("grant_type").unwrap_or("")))]
    pub async fn token(&self, facts: TokenRequestFacts<'_>) -> Result<TokenSuccess, OpError> {
        let form = facts.form;
        // 1. client authentication
        let client = self.authenticate_client(facts.authorization, form).await?;
        self.fapi2_client_authentication(&client)?;
        let grant = form.require("grant_type")?;
        if !matches!(
            grant,
            "authorization_code"
                | "refresh_token"
                | grant_type::CLIENT_CREDENTIALS
                | grant_type::DEVICE_CODE
                | grant_type::TOKEN_EXCHANGE
                | grant_type::JWT_BEARER
                | grant_type::JWT_DPOP
        ) {
            return Err(RequestRefusal::UnsupportedGrantType(grant.to_owned()).into());
        }
        // RFC 7591 §2: the grants it registered (jwt-bearer and token exchange answer with
        // their own reasons, after the proof)
        if matches!(
            grant,
            "authorization_code"
                | "refresh_token"
                | grant_type::CLIENT_CREDENTIALS
                | grant_type::DEVICE_CODE
        ) {
            crate::grant::require_grant(&client, grant)?;
        }
        // 2. the DPoP proof in full, before any single-use artefact is touched; for the code
        // and refresh grants its jti is looked up now and recorded by the write that consumes
        // (one write per request), or when the request is refused before it
        let record_later = matches!(grant, "authorization_code" | "refresh_token");
        let proof = self.token_proof(&client, facts.dpop, record_later).await?;
        let mark = proof
            .as_ref()
            .filter(|_| record_later)
            .map(|p| self.proof_mark(p));
        let answer = self.grant(&client, form, grant, proof, mark.as_ref()).await;
        if let (Err(e), Some(m)) = (&answer, mark) {
            if !matches!(e, OpError::Replay) {
                self.spend_proof(m).await;
            }
        }
        answer
    }

    /// 3. the grant
    async fn grant(
        &self,
        client: &Client,
        form: &Form,
        grant: &str,
        proof: Option<VerifiedProof>,
        mark: Option<&ProofMark>,
    ) -> Result<TokenSuccess, OpError> {
        self.fapi2_token(client, proof.is_some())?;
        match grant {
            "authorization_code" => self.code_grant(client, form, proof, mark).await,
            "refresh_token" => self.refresh_grant(client, form, proof, mark).await,
            grant_type::TOKEN_EXCHANGE => self.exchange_grant(client, form, proof).await,
            grant_type::CLIENT_CREDENTIALS => {
                self.client_credentials_grant(client, form, proof).await
            }
            grant_type::JWT_BEARER | grant_type::JWT_DPOP => {
                self.jwt_bearer_grant(client, form, proof).await
            }
            _ => self.device_grant(client, form, proof).await,
        }
    }

    async fn token_proof(
        &self,
        client: &Client,
        dpop: &[&str],
        record_later: bool,
    ) -> Result<Option<VerifiedProof>, OpError> {
        self.verify_proof(ProofRequest {
            token_request: true,
            record_later,
            ..ProofRequest::post(dpop, &self.config.endpoints.token, client)
        })
        .await
    }
}
