//! The one place inside the provider where a DPoP proof is verified, for every endpoint that
//! takes one: the token endpoint (every grant), the device authorization endpoint and userinfo.
//!
//! [`Provider::verify_proof`] applies the nonce policy (global `require_dpop_nonce` or the
//! client's own, identically everywhere; a nonce the server did not issue is refused even when
//! none is demanded, DP-V10), runs `keybound_proto::dpop::verify` (DP-V1…V12), checks the key
//! against the bound key when the caller already knows it, and records the `jti` in the store's
//! replay table. [`check_bound`] is the one bound-key check and [`check_code_proof`] the one
//! Key Binding commitment check (`c_s256` / `c_hash`) for single-use codes.
//!
//! At the token endpoint the proof is verified in full *before* the code, device code or
//! refresh token is looked up (ARCHITECTURE.md §3.3), so the bound key is checked afterwards
//! with [`check_bound`]; at a resource the access token is verified first and its key is passed
//! in.

use keybound_jose::Jkt;
use keybound_proto::dpop::{self, CodeBinding, NonceCheck, Refused, RequestFacts, VerifiedProof};
use keybound_store::{Client, ProofMark};

use crate::refusal::{BindingRefusal, Bound};
use crate::{OpError, Provider};

/// One request's proof, as the endpoint sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProofRequest<'a> {
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
    /// request method
    pub htm: &'a str,
    /// externally visible URL of the endpoint
    pub htu: &'a str,
    /// the client whose `require_dpop_nonce` and `dpop_bound_access_tokens` apply
    pub client: Option<&'a Client>,
    /// the token presented with the proof (`ath`, DP-V12), at a resource
    pub presented_token: Option<&'a str>,
    /// the key the presented token is bound to, when already known, and what it is
    pub bound: Option<(&'a Jkt, Bound)>,
    /// a token request: a client registered with `dpop_bound_access_tokens` must send a
    /// proof (RFC 9449 §5.2, DP-T7)
    pub token_request: bool,
    /// the `jti` is only looked up here and recorded later, in the one write that consumes
    /// the request's code or refresh token ([`Provider::proof_mark`])
    pub record_later: bool,
}

impl<'a> ProofRequest<'a> {
    /// A `POST` to `htu` by `client`, with no token presented.
    pub(crate) fn post(dpop: &'a [&'a str], htu: &'a str, client: &'a Client) -> Self {
        ProofRequest {
            dpop,
            htm: "POST",
            htu,
            client: Some(client),
            presented_token: None,
            bound: None,
            token_request: false,
            record_later: false,
        }
    }
}

/// The key a code will be bound to when a request names one (`dpop_jkt`) and may also carry
/// a DPoP proof: RFC 9449 §10.1 at the pushed authorization request endpoint, Key Binding's
/// device profile (device-flow.md §8.5) at device authorization. A proof alone names its key;
/// both must name the same one.
pub(crate) fn dpop_jkt(
    param: Option<&str>,
    proof: Option<&keybound_proto::dpop::VerifiedProof>,
) -> Result<Option<String>, OpError> {
    match (param, proof) {
        (Some(j), Some(p)) if p.jkt.as_str() != j => {
            Err(crate::refusal::BindingRefusal::DpopJktDisagrees.into())
        }
        (Some(j), _) => Ok(Some(j.to_owned())),
        (None, Some(p)) => Ok(Some(p.jkt.to_string())),
        (None, None) => Ok(None),
    }
}

impl Provider {
    /// The fresh nonce to hand out, when nonces are in use.
    pub(crate) fn next_nonce(&self) -> Option<String> {
        self.config
            .dpop_nonces
            .as_ref()
            .map(|n| n.issue(self.now()))
    }

    fn nonce_check(&self, client: Option<&Client>) -> Result<NonceCheck<'_>, OpError> {
        let required =
            self.config.require_dpop_nonce || client.is_some_and(|c| c.require_dpop_nonce);
        NonceCheck::policy(self.config.dpop_nonces.as_ref(), required).ok_or_else(|| {
            OpError::internal(
                "DPoP nonces are required but no nonce secret is configured (dpop_nonces)",
            )
        })
    }

    /// Verify the proof of one request and record its `jti`. `None` when no proof was sent and
    /// none is needed here (a key the caller already knows, or a token request of a client
    /// registered with `dpop_bound_access_tokens`, needs one); whether the grant looked up
    /// afterwards needs one is [`check_bound`]'s and [`check_code_proof`]'s decision.
    #[tracing::instrument(level = "debug", name = "dpop.verify", skip_all, fields(proofs = r.dpop.len()))]
    pub(crate) async fn verify_proof(
        &self,
        r: ProofRequest<'_>,
    ) -> Result<Option<VerifiedProof>, OpError> {
        if r.dpop.is_empty() {
            if let Some((jkt, what)) = r.bound {
                check_bound(None, Some(jkt), what)?;
            }
            if r.token_request && r.client.is_some_and(|c| c.dpop_bound_access_tokens) {
                return Err(BindingRefusal::ClientRequiresProof.into());
            }
            return Ok(None);
        }
        let now = self.now();
        let facts = RequestFacts {
            nonce: self.nonce_check(r.client)?,
            presented_token: r.presented_token,
            ..RequestFacts::new(r.htm, r.htu, now)
        };
        // the one DPoP step (proof, nonce answer, replay), shared with keybound-verify
        let record_later = r.record_later;
        let remember = |digest: [u8; 32], expires_at| async move {
            if record_later {
                // a replay is still refused here, before anything is looked up
                self.store.replay_seen(&digest, now).await.map(|seen| !seen)
            } else {
                self.store.check_and_insert(&digest, expires_at, now).await
            }
        };
        let proof = dpop::check(r.dpop.iter().copied(), &facts, &self.config.dpop, remember)
            .await
            .map_err(|e| match e {
                Refused::Proof(e) => OpError::Proof(e),
                Refused::Nonce { reason, nonce } => OpError::Nonce { reason, nonce },
                Refused::Replay => {
                    let e = crate::events::SecurityEvent::new(crate::events::EventType::DpopReplay);
                    self.event(match r.client {
                        Some(c) => e.client(&c.client_id),
                        None => e,
                    });
                    OpError::Replay
                }
                Refused::Store(e) => OpError::Store(e),
            })?;
        if let Some((jkt, what)) = r.bound {
            check_bound(Some(&proof), Some(jkt), what)?;
        }
        Ok(Some(proof))
    }
}

impl Provider {
    /// The replay entry of a proof verified with `record_later`, for the write that consumes
    /// its request's code or refresh token.
    pub(crate) fn proof_mark(&self, proof: &VerifiedProof) -> ProofMark {
        let entry = proof.replay_entry(&self.config.dpop);
        ProofMark {
            digest: entry.key.digest(),
            expires_at: entry.expires_at,
        }
    }

    /// Whether `mark`'s proof is recorded: asked when the code or refresh token turns out to
    /// be used already. A twin of the request that used it, with this very proof, passed the
    /// replay lookup before that request's write recorded the proof with the consumption; it
    /// is a replay, and must not be taken for the reuse that revokes the grant.
    pub(crate) async fn proof_recorded(&self, mark: Option<&ProofMark>) -> Result<bool, OpError> {
        match mark {
            Some(m) => Ok(self.store.replay_seen(&m.digest, self.now()).await?),
            None => Ok(false),
        }
    }

    /// Record a proof whose request was refused before its consuming write: every proof that
    /// passed verification is spent, as when it was recorded at once. Its answer does not
    /// matter (the request is refused either way; a concurrent twin may have recorded it),
    /// nor does a store failure: the refusal it would hide is the answer the client needs,
    /// and the proof is spent only for a retry of a request that was refused.
    pub(crate) async fn spend_proof(&self, mark: ProofMark) {
        let _ = self
            .store
            .check_and_insert(&mark.digest, mark.expires_at, self.now())
            .await;
    }
}

/// The one bound-key check (RFC 9449 §10, §7.1, §5; KB-OP6; KB-RF2; ID-JAG `cnf`): what is
/// bound to a key needs a proof by that key. Every grant, the token exchange's subject, the
/// ID-JAG and the provider's resources call this; the codes of its refusals are the mapping's
/// ([`crate::OpError::wire`]).
pub(crate) fn check_bound(
    proof: Option<&VerifiedProof>,
    bound: Option<&Jkt>,
    what: Bound,
) -> Result<(), BindingRefusal> {
    dpop::check_bound(proof.map(|p| &p.jkt), bound).map_err(|e| match e {
        keybound_proto::Error::DpopKeyMismatch { expected, got } => BindingRefusal::KeyMismatch {
            expected,
            got,
            bound: what,
        },
        _ => BindingRefusal::ProofRequired { bound: what },
    })
}

/// Before a single-use code (authorization or device code) is consumed: the proof is by the
/// key the code is bound to (`dpop_jkt`), and under Key Binding it commits to this code
/// (`c_s256`, or `c_hash` on draft 00). The commitment is required for `bound_key` grants and
/// checked whenever present. Fail closed: a `bound_key` grant never completes without it.
pub(crate) fn check_code_proof(
    proof: Option<&VerifiedProof>,
    dpop_jkt: Option<&Jkt>,
    bound_key: bool,
    code: CodeBinding<'_>,
    what: Bound,
) -> Result<(), OpError> {
    check_bound(proof, dpop_jkt, what)?;
    match proof {
        Some(p) if bound_key || p.claims.contains_key(code.profile.code_claim()) => {
            dpop::check_code_binding(&p.claims, code).map_err(OpError::Proof)
        }
        None if bound_key => Err(BindingRefusal::BoundKeyNeedsProof.into()),
        _ => Ok(()),
    }
}
