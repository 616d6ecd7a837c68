//! The `urn:ietf:params:oauth:grant-type:device_code` grant (RFC 8628 §3.4, Key Binding device
//! profile): every poll carries a proof by the key the device code is bound to, with `c_s256`
//! over the device code; `slow_down` and redemption are atomic in the store.

use keybound_proto::dpop::{CodeBinding, VerifiedProof};
use keybound_proto::wire::ErrorCode;
use keybound_store::{Client, DeviceAuthorization, DeviceDecision, DevicePoll, TokenHash};

use crate::grant::{issues_refresh, redemption_grant, Authorized, Redemption, TokenSuccess};
use crate::proof::check_code_proof;
use crate::{Form, OpError, Provider};

fn expired() -> OpError {
    OpError::new(
        ErrorCode::ExpiredToken,
        "the device code expired; start again",
    )
}

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
                DevicePoll::Expired => expired(),
                _ => OpError::invalid_grant("unknown device code"),
            });
        };
        if auth.client_id != client.client_id {
            return Err(OpError::invalid_grant(
                "device code was issued to another client",
            ));
        }
        check_code_proof(
            proof.as_ref(),
            auth.dpop_jkt.as_ref(),
            auth.bound_key,
            CodeBinding {
                code: device_code,
                profile: client.key_binding_profile,
            },
            "device code",
        )?;
        // the first refresh token, written by the poll that consumes the approved code
        let token = issues_refresh(&auth.scope).then(|| self.random_token());
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
            )
            .ok()?;
            Some(self.first_refresh(&g, proof.as_ref(), t, now))
        };
        match self.store.poll_device(&hash, now, &first).await? {
            DevicePoll::Pending { .. } => Err(OpError::new(
                ErrorCode::AuthorizationPending,
                "the End-User has not yet approved; keep polling at the interval",
            )),
            DevicePoll::SlowDown { interval } => Err(OpError::new(
                ErrorCode::SlowDown,
                format!("polling too fast: wait at least {interval} s between polls from now on"),
            )),
            DevicePoll::Denied | DevicePoll::Approved(_, DeviceDecision::Denied) => Err(
                OpError::new(ErrorCode::AccessDenied, "the End-User denied the request"),
            ),
            DevicePoll::Expired => Err(expired()),
            DevicePoll::NotFound => Err(OpError::invalid_grant("unknown device code")),
            DevicePoll::Redeemed(a) => {
                self.store.revoke_grant(&a.grant_id, now).await?;
                Err(OpError::invalid_grant(
                    "the device code was already redeemed; the tokens issued from it are revoked",
                ))
            }
            DevicePoll::Approved(
                a,
                DeviceDecision::Approved {
                    sub,
                    auth_time,
                    amr,
                },
            ) => {
                let grant =
                    redemption_grant(client, approved(&a, &sub, auth_time, &amr), proof.as_ref())?;
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
            auth_time,
            acr: None,
            amr,
            nonce: a.nonce.as_deref(),
        },
        bound_key: a.bound_key,
        tbh: None,
    }
}
