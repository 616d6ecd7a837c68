//! The `refresh_token` grant: rotation with reuse detection (OAuth 2.0 Security BCP §4.14.2),
//! a bound refresh token needs a proof by its key (RFC 9449 §5, KB-RF2), and a key-bound ID
//! Token keeps its `cnf` and profile (KB-RF3) and carries no `nonce` (OIDC Core 12.2).

use keybound_proto::dpop::VerifiedProof;
use keybound_store::{Client, ProofMark, RefreshLookup, RefreshToken, TokenHash};

use crate::grant::{audience, has_scope, Authorized, Grant, TokenSuccess};
use crate::proof::check_bound;
use crate::refusal::{Bound, RefreshRefusal};
use crate::{Form, OpError, Provider};

impl Provider {
    pub(super) async fn refresh_grant(
        &self,
        client: &Client,
        form: &Form,
        proof: Option<VerifiedProof>,
        mark: Option<&ProofMark>,
    ) -> Result<TokenSuccess, OpError> {
        let old = TokenHash::of(form.require("refresh_token")?);
        let now = self.now();
        let rt = match self.store.find_refresh(&old, now).await? {
            RefreshLookup::Active(t) => t,
            RefreshLookup::Reused(_) if self.proof_recorded(mark).await? => {
                return Err(OpError::Replay)
            }
            RefreshLookup::Reused(t) => {
                // the family and the grant's access tokens (a thief's included) die together
                self.store.revoke_grant(&t.grant_id, now).await?;
                self.event(
                    crate::events::SecurityEvent::new(crate::events::EventType::RefreshReuse)
                        .client(&t.client_id)
                        .subject(&t.sub)
                        .reason("grant_revoked"),
                );
                return Err(RefreshRefusal::Reused.into());
            }
            RefreshLookup::Revoked(_) => return Err(RefreshRefusal::Revoked.into()),
            RefreshLookup::Expired => return Err(RefreshRefusal::Expired.into()),
            RefreshLookup::NotFound | RefreshLookup::Replayed => {
                return Err(RefreshRefusal::Unknown.into())
            }
        };
        if rt.client_id != client.client_id {
            return Err(RefreshRefusal::OtherClient.into());
        }
        // a client that follows the OP session: not from a session that was logged out
        self.check_session_live(client, rt.sid.as_deref()).await?;
        let scope = match form.get("scope") {
            None => rt.scope.clone(),
            Some(s) => {
                if let Some(extra) = s.split(' ').find(|x| !has_scope(&rt.scope, x)) {
                    return Err(RefreshRefusal::ScopeNotGranted(extra.to_owned()).into());
                }
                s.to_owned()
            }
        };
        // no c_s256 on refresh (KB-RF1); the proof must be by the bound key (KB-RF2)
        check_bound(proof.as_ref(), rt.jkt.as_ref(), Bound::RefreshToken)?;
        // RFC 8707 §2.2: the resources of this access token, before the rotation
        let audience = audience(client, form.resources(), Some(&rt.resources))?;
        let id_token_key = rt.cnf_jwk.clone().map(|k| (rt.profile, k));
        let new_token = self.random_token();
        let new_record = RefreshToken {
            scope: scope.clone(),
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
            ..rt.clone()
        };
        match self
            .store
            .rotate_refresh(&old, &TokenHash::of(&new_token), &new_record, now, mark)
            .await?
        {
            RefreshLookup::Active(_) => {}
            RefreshLookup::Replayed => return Err(OpError::Replay),
            // the store revoked the grant in the rotation's own transaction
            RefreshLookup::Reused(_) => return Err(RefreshRefusal::Reused.into()),
            _ => return Err(RefreshRefusal::NoLongerValid.into()),
        }
        let grant = Grant {
            client,
            who: Authorized {
                grant_id: &rt.grant_id,
                sub: &rt.sub,
                scope: &scope,
                auth_time: Some(rt.auth_time),
                acr: rt.acr.as_deref(),
                amr: &rt.amr,
                nonce: None,
                resources: &rt.resources,
                sid: rt.sid.as_deref(),
            },
            id_token_key,
            // the binding the grant's first ID Token had (Token Bound Authentication: a refresh
            // is no downgrade for an RP that requires cnf.tbh)
            tbh: rt.tbh.as_deref(),
            audience,
        };
        self.mint(&grant, proof.as_ref(), Some(new_token)).await
    }
}
