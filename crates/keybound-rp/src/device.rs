//! The device flow on the RP side (RFC 8628 with the Key Binding device profile): request a
//! device code with `dpop_jkt`, then poll with a DPoP proof carrying `c_s256` over the device
//! code, honouring `interval` and `slow_down` and backing off on network errors.

use std::future::Future;
use std::time::Duration;

use keybound_jose::PrivateKey;
use keybound_proto::wire::{DeviceAuthorizationResponse, ErrorCode};

use crate::{form, HttpRequest, Rp, RpError, Session};

/// A device authorization in progress.
pub struct DeviceFlow {
    device_code: String,
    /// the code the End-User types
    pub user_code: String,
    /// where they type it
    pub verification_uri: String,
    /// the same with the code filled in (for a QR code or a link)
    pub verification_uri_complete: Option<String>,
    /// current polling interval, seconds
    pub interval: u64,
    /// when the device code expires (RP clock)
    pub expires_at: u64,
    nonce: String,
    key: PrivateKey,
}

impl std::fmt::Debug for DeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceFlow")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The result of one poll.
#[derive(Debug)]
pub enum DevicePoll {
    /// not approved yet
    Pending,
    /// the OP asked to slow down; the flow's interval grew by 5 s
    SlowDown,
    /// approved: the key-bound session
    Done(Box<Session>),
}

impl Rp {
    /// Ask for a device code bound to a fresh key.
    pub async fn device_begin(&self) -> Result<DeviceFlow, RpError> {
        let m = self.discover().await?;
        let endpoint = m
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| RpError::NotSupported("no device_authorization_endpoint".into()))?;
        let key = PrivateKey::generate(self.config.key_kind).map_err(RpError::Key)?;
        let jkt = key.public_jwk().thumbprint();
        let nonce = keybound_jose::random_b64(16);
        let scope = self.config.scope();
        let mut body = vec![
            ("scope", scope.as_str()),
            ("dpop_jkt", jkt.as_str()),
            ("nonce", nonce.as_str()),
        ];
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let mut req = HttpRequest::post_form(&endpoint, form(&body));
        if let Some(a) = self.auth_header() {
            req = req.header("Authorization", &a);
        }
        let r = self.transport.send(req).await?;
        self.remember_nonce(&endpoint, &r);
        if r.status != 200 {
            let err = serde_json::from_slice(&r.body).map_err(|_| {
                RpError::Token(format!(
                    "device authorization endpoint answered HTTP {}",
                    r.status
                ))
            })?;
            return Err(RpError::Op(err));
        }
        let d: DeviceAuthorizationResponse = serde_json::from_slice(&r.body)
            .map_err(|e| RpError::decode("device authorization response", e))?;
        Ok(DeviceFlow {
            device_code: d.device_code,
            user_code: d.user_code,
            verification_uri: d.verification_uri,
            verification_uri_complete: d.verification_uri_complete,
            interval: d.interval.unwrap_or(5).max(1),
            expires_at: self.clock.now() + d.expires_in,
            nonce,
            key,
        })
    }

    /// Poll once.
    pub async fn device_poll(&self, flow: &mut DeviceFlow) -> Result<DevicePoll, RpError> {
        let mut body = vec![
            ("grant_type", keybound_proto::wire::grant_type::DEVICE_CODE),
            ("device_code", flow.device_code.as_str()),
        ];
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        match self
            .token_request(&flow.key, &body, Some(&flow.device_code))
            .await
        {
            Ok(t) => {
                let id_token = t
                    .id_token
                    .clone()
                    .ok_or_else(|| RpError::Token("the token response has no id_token".into()))?;
                let bound = self
                    .check_id_token(
                        &id_token,
                        Some(&flow.nonce),
                        &flow.key.public_jwk().thumbprint(),
                    )
                    .await?;
                let s = Session::from_tokens(&self.config, &flow.key, t, bound, self.clock.now())?;
                Ok(DevicePoll::Done(Box::new(s)))
            }
            Err(RpError::Op(e)) if e.error == ErrorCode::AuthorizationPending => {
                Ok(DevicePoll::Pending)
            }
            Err(RpError::Op(e)) if e.error == ErrorCode::SlowDown => {
                flow.interval += 5;
                Ok(DevicePoll::SlowDown)
            }
            Err(e) => Err(e),
        }
    }

    /// Poll until approved, denied or expired. `sleep` waits (the caller's runtime decides how);
    /// `progress` is told about every poll. Network errors back off exponentially (to 60 s).
    pub async fn device_wait<S, F>(
        &self,
        flow: &mut DeviceFlow,
        sleep: S,
        mut progress: impl FnMut(&DevicePoll),
    ) -> Result<Session, RpError>
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let mut backoff = 0u64;
        loop {
            if self.clock.now() >= flow.expires_at {
                return Err(RpError::Op(keybound_proto::wire::ErrorResponse::new(
                    ErrorCode::ExpiredToken,
                    "the device code expired before it was approved",
                )));
            }
            sleep(Duration::from_secs(flow.interval + backoff)).await;
            match self.device_poll(flow).await {
                Ok(DevicePoll::Done(s)) => return Ok(*s),
                Ok(p) => {
                    backoff = 0;
                    progress(&p);
                }
                // DF-7: back off exponentially on network errors, 5 s doubling to 60 s, on top
                // of the interval (which may itself exceed 60 s after slow_downs)
                Err(RpError::Http { .. }) => backoff = (backoff * 2).clamp(5, 60),
                Err(e) => return Err(e),
            }
        }
    }
}
