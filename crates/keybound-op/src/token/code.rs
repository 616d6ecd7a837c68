//! The `authorization_code` grant (RFC 6749 §4.1.3, PKCE, RFC 9449 §10 `dpop_jkt`, Key
//! Binding `c_s256`).

use keybound_proto::dpop::{CodeBinding, VerifiedProof};
use keybound_store::{AuthorizationCode, Client, CodeLookup, ProofMark, TokenHash};

use crate::grant::{
    audience, issues_refresh, redemption_grant, Authorized, Redemption, TokenSuccess,
};
use crate::proof::check_code_proof;
use crate::refusal::{Bound, CodeRefusal};
use crate::{Form, OpError, Provider};

fn s256(verifier: &str) -> String {
    keybound_jose::sha256_b64(verifier.as_bytes())
}

impl Provider {
    pub(super) async fn code_grant(
        &self,
        client: &Client,
        form: &Form,
        proof: Option<VerifiedProof>,
        mark: Option<&ProofMark>,
    ) -> Result<TokenSuccess, OpError> {
        let code_value = form.require("code")?;
        let hash = TokenHash::of(code_value);
        let now = self.now();
        // look the code up, still not consuming it
        let code = match self.store.find_code(&hash, now).await? {
            CodeLookup::Active(c) => c,
            CodeLookup::Redeemed(_) if self.proof_recorded(mark).await? => {
                return Err(OpError::Replay)
            }
            CodeLookup::Redeemed(c) => return Err(self.code_reused(client, &c, now).await?),
            CodeLookup::Expired => return Err(CodeRefusal::Expired.into()),
            CodeLookup::NotFound | CodeLookup::Replayed => return Err(CodeRefusal::Unknown.into()),
        };
        check_code(client, &code, form)?;
        check_code_proof(
            proof.as_ref(),
            code.dpop_jkt.as_ref(),
            code.bound_key,
            CodeBinding {
                code: code_value,
                profile: client.key_binding_profile,
            },
            Bound::AuthorizationCode,
        )?;
        // a client that follows the OP session: not from a session that was logged out
        self.check_session_live(client, code.sid.as_deref()).await?;
        let redemption = Redemption {
            who: Authorized {
                grant_id: &code.grant_id,
                sub: &code.sub,
                scope: &code.scope,
                auth_time: Some(code.auth_time),
                acr: code.acr.as_deref(),
                amr: &code.amr,
                nonce: code.nonce.as_deref(),
                resources: &code.resources,
                sid: code.sid.as_deref(),
            },
            bound_key: code.bound_key,
            tbh: code.tbh.as_deref(),
        };
        // RFC 8707: the resources before anything is consumed
        let audience = audience(client, form.resources(), Some(&code.resources))?;
        let grant = redemption_grant(client, redemption, proof.as_ref(), audience)?;
        let token = issues_refresh(client, &code.scope).then(|| self.random_token());
        let first = token
            .as_deref()
            .map(|t| self.first_refresh(&grant, proof.as_ref(), t, now));
        // consume atomically, with the proof's jti and the refresh token in the same write
        match self
            .store
            .redeem_code(&hash, now, first.as_ref().map(|(h, r)| (h, r)), mark)
            .await?
        {
            CodeLookup::Active(_) => {}
            CodeLookup::Replayed => return Err(OpError::Replay),
            CodeLookup::Redeemed(c) => return Err(self.code_reused(client, &c, now).await?),
            _ => return Err(CodeRefusal::NoLongerValid.into()),
        }
        self.mint(&grant, proof.as_ref(), token).await
    }
}

impl Provider {
    /// A used code presented again. Only a reuse by the client it was issued to is evidence of
    /// theft and revokes what the code issued; another client's replay is just refused (else
    /// any client could kill another's tokens).
    async fn code_reused(
        &self,
        client: &Client,
        code: &AuthorizationCode,
        now: u64,
    ) -> Result<OpError, OpError> {
        if code.client_id != client.client_id {
            return Ok(CodeRefusal::OtherClient.into());
        }
        self.store.revoke_grant(&code.grant_id, now).await?;
        self.event(
            crate::events::SecurityEvent::new(crate::events::EventType::CodeReuse)
                .client(&code.client_id)
                .subject(&code.sub)
                .reason("grant_revoked"),
        );
        Ok(CodeRefusal::Reused.into())
    }
}

/// RFC 7636 §4.1: 43–128 characters of `A–Z a–z 0–9 - . _ ~`.
fn verifier_shape_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The code belongs to this client and this request: `redirect_uri` and PKCE (RFC 7636 §4.6).
fn check_code(client: &Client, code: &AuthorizationCode, form: &Form) -> Result<(), CodeRefusal> {
    if code.client_id != client.client_id {
        return Err(CodeRefusal::OtherClient);
    }
    if form.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(CodeRefusal::RedirectUri);
    }
    match (&code.code_challenge, form.get("code_verifier")) {
        (Some(_), Some(v)) if !verifier_shape_ok(v) => Err(CodeRefusal::VerifierShape),
        (Some(ch), Some(v)) if s256(v) == *ch => Ok(()),
        (Some(_), Some(_)) => Err(CodeRefusal::VerifierMismatch),
        (Some(_), None) => Err(CodeRefusal::VerifierRequired),
        (None, Some(_)) => Err(CodeRefusal::VerifierWithoutChallenge),
        (None, None) => Ok(()),
    }
}
