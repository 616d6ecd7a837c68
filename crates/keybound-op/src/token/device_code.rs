//! The `urn:ietf:params:oauth:grant-type:device_code` grant (RFC 8628 §3.4, Key Binding device
//! profile): every poll carries a proof by the key the device code is bound to, with `c_s256`
//! over the device code; `slow_down` and redemption are atomic in the store.

use keybound_proto::dpop::{CodeBinding, VerifiedProof};
use keybound_store::{Client, DeviceAuthorization, DeviceDecision, DevicePoll, TokenHash};

use crate::grant::{
    audience, issues_refresh, redemption_grant, Authorized, Redemption, TokenSuccess,
};
use crate::proof::check_code_proof;
use crate::refusal::{Bound, DeviceRefusal};
use crate::{Form, OpError, Provider};

impl Provider {
    pub(super) async fn device_grant(
        &self,
        client: &Client,
        form: &Form,
        proof: Option<VerifiedProof>,
    ) -> Result<TokenSuccess, OpError> {
        let device_code = form.require("device_code")?;
        let hash = TokenHash::of(device_code);
        let now = self.now();
        // look the device code up without polling it, to learn the bound key first
        let Some(auth) = self.store.find_device(&hash, now).await? else {
            return Err(match self.store.poll_device(&hash, now, &|_| None).await? {
                DevicePoll::Expired => DeviceRefusal::Expired.into(),
                _ => DeviceRefusal::Unknown.into(),
            });
        };
        if auth.client_id != client.client_id {
            return Err(DeviceRefusal::OtherClient.into());
        }
        check_code_proof(
            proof.as_ref(),
            auth.dpop_jkt.as_ref(),
            auth.bound_key,
            CodeBinding {
                code: device_code,
                profile: client.key_binding_profile,
            },
            Bound::DeviceCode,
        )?;
        // RFC 8707: the resources before anything is consumed
        let audience = audience(client, form.resources(), None)?;
        // the first refresh token, written by the poll that consumes the approved code
        let token = issues_refresh(client, &auth.scope).then(|| self.random_token());
        let first = |dec: &DeviceDecision| {
            let t = token.as_deref()?;
            let DeviceDecision::Approved {
                sub,
                auth_time,
                amr,
            } = dec
            else {
                return None;
            };
            let g = redemption_grant(
                client,
                approved(&auth, sub, *auth_time, amr),
                proof.as_ref(),
                audience.clone(),
            )
            .ok()?;
            Some(self.first_refresh(&g, proof.as_ref(), t, now))
        };
        match self.store.poll_device(&hash, now, &first).await? {
            DevicePoll::Pending { .. } => Err(DeviceRefusal::Pending.into()),
            DevicePoll::SlowDown { interval } => Err(DeviceRefusal::SlowDown(interval).into()),
            DevicePoll::Denied | DevicePoll::Approved(_, DeviceDecision::Denied) => {
                Err(DeviceRefusal::Denied.into())
            }
            DevicePoll::Expired => Err(DeviceRefusal::Expired.into()),
            DevicePoll::NotFound => Err(DeviceRefusal::Unknown.into()),
            DevicePoll::Redeemed(a) => {
                self.store.revoke_grant(&a.grant_id, now).await?;
                Err(DeviceRefusal::Redeemed.into())
            }
            DevicePoll::Approved(
                a,
                DeviceDecision::Approved {
                    sub,
                    auth_time,
                    amr,
                },
            ) => {
                let grant = redemption_grant(
                    client,
                    approved(&a, &sub, auth_time, &amr),
                    proof.as_ref(),
                    audience,
                )?;
                self.mint(&grant, proof.as_ref(), token).await
            }
        }
    }
}

/// What an approved device code grants.
fn approved<'a>(
    a: &'a DeviceAuthorization,
    sub: &'a str,
    auth_time: u64,
    amr: &'a [String],
) -> Redemption<'a> {
    Redemption {
        who: Authorized {
            grant_id: &a.grant_id,
            sub,
            scope: &a.scope,
            auth_time: Some(auth_time),
            // how the End-User signed in on the verification page
            acr: Some(crate::passkey::Strength::of_amr(amr).acr()),
            amr,
            nonce: a.nonce.as_deref(),
            resources: &[],
            sid: None,
        },
        bound_key: a.bound_key,
        tbh: None,
    }
}
