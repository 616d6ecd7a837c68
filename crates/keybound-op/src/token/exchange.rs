//! RFC 8693 token exchange of an ID Token into an Identity Assertion JWT Authorization Grant
//! (ID-JAG), the IdP half of identity chaining (docs/chaining.md).
//!
//! It plugs into the token pipeline like every grant: the client is authenticated and the DPoP
//! proof verified in full before this module runs. Then, in order: whether the client may
//! exchange at all and the token types → the subject ID Token (our signature and issuer,
//! unexpired, not older than `exchange_subject_max_age`, issued to this client: `aud` and
//! `azp`, IJ-1) → its binding (a key-bound ID Token needs a proof by its `cnf.jwk` key, and the
//! ID-JAG then carries `cnf.jkt` of that key: the key binding crosses the trust boundary, Key
//! Binding ID1 §6) → the grant behind it (the End-User still exists and the consent stands) →
//! the audience, resource and scope against the client's policy → the ID-JAG.
//!
//! Error codes: a malformed request or an unusable subject token is `invalid_request` (RFC 8693
//! §2.2.2 says MUST); an audience or resource outside the policy is `invalid_target`, a scope
//! outside it `invalid_scope`; a missing or wrong proof for a key-bound subject, an unbound
//! subject the policy refuses, and a grant that no longer stands are `invalid_grant`.

use keybound_jose::Jkt;
use keybound_proto::cnf::Cnf;
use keybound_proto::dpop::VerifiedProof;
use keybound_proto::idjag::{IdJagClaims, TYP_ID_JAG};
use keybound_proto::idtoken::{self, Audience, BindingRequirement, IdTokenChecks};
use keybound_proto::keybinding::Profile;
use keybound_proto::wire::{token_type, TokenExchangeRequest, TokenResponse};
use keybound_store::{Client, ClientAuthMethod, ExchangePolicy};
use serde_json::{Map, Value};

use crate::form::Form;
use crate::grant::TokenSuccess;
use crate::proof::check_bound;
use crate::refusal::{Bound, ExchangeRefusal as Why};
use crate::{OpError, Provider};

/// The parameters of an ID-JAG request, checked against the client's policy.
struct Target<'a> {
    /// the resource AS issuer (`aud`)
    audience: &'a str,
    /// the client's id at that AS
    client_id_there: &'a str,
    /// RFC 8707 resources (each in the policy)
    resource: &'a [String],
    scope: Option<String>,
}

impl Provider {
    /// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
    pub(crate) async fn exchange_grant(
        &self,
        client: &Client,
        form: &Form,
        proof: Option<VerifiedProof>,
    ) -> Result<TokenSuccess, OpError> {
        // may this client exchange at all (TE-2), and is this a request we serve
        let policy = exchange_policy(client)?;
        let subject = subject_token(form)?;
        // the subject token (TE-1, IJ-1) and its binding
        let validated = self.validate_subject(client, subject).await?;
        // a confirmation this server cannot carry over (a `cnf` without `jwk`: Token Binding's
        // `tbh`, `x5t#S256`, `{}`) is never taken as "unbound": the binding would be dropped
        if validated.claims.cnf.is_some() && validated.jkt.is_none() {
            return Err(Why::UncheckableCnf.into());
        }
        let jkt = binding(policy, validated.jkt.as_ref(), proof.as_ref())?;
        let claims = validated.claims;
        // the grant behind the ID Token still stands: not revoked (RFC 7009 revocation of its
        // tokens, or refresh-token reuse), its End-User exists, the consent was not withdrawn
        let gid = claims
            .extra
            .get(crate::grant::GRANT_ID_CLAIM)
            .and_then(Value::as_str)
            .ok_or(Why::NoGrant)?;
        if self.store.is_grant_revoked(gid).await? {
            return Err(Why::GrantRevoked.into());
        }
        // a client that follows the OP session: not an ID Token of a session that was logged out
        let sid = claims.extra.get("sid").and_then(Value::as_str);
        self.check_session_live(client, sid).await?;
        let user = self.store.user(&claims.sub).await?.ok_or(Why::UserGone)?;
        if self
            .store
            .consent(&claims.sub, &client.client_id)
            .await?
            .is_none()
        {
            return Err(Why::ConsentWithdrawn.into());
        }
        let now = self.now();
        // RFC 9470: the sign-in the client's policy demands before it may chain it
        sign_in_meets(policy, claims.acr.as_deref(), claims.auth_time, now)?;
        // the targets against the client's policy (TE-6, IJ-3)
        let target = target(form, policy)?;
        let mut extra = Map::new();
        if let Some(t) = claims.auth_time {
            extra.insert("auth_time".into(), t.into());
        }
        if let Some(acr) = &claims.acr {
            extra.insert("acr".into(), acr.clone().into());
        }
        if let Some(amr) = &claims.amr {
            extra.insert("amr".into(), amr.clone().into());
        }
        if let (Some(email), true) = (&user.email, user.email_verified) {
            extra.insert("email".into(), email.clone().into());
            extra.insert("email_verified".into(), true.into());
        }
        let jag = IdJagClaims {
            iss: self.config.issuer.clone(),
            sub: claims.sub.clone(),
            aud: Audience::from(target.audience),
            client_id: target.client_id_there.to_owned(),
            jti: self.random_id(),
            exp: now + self.config.id_jag_ttl,
            iat: now,
            scope: target.scope.clone(),
            resource: match target.resource {
                [] => None,
                [one] => Some(Value::from(one.clone())),
                many => Some(Value::from(many.to_vec())),
            },
            cnf: jkt.map(|jkt| Cnf {
                jkt: Some(jkt),
                ..Cnf::default()
            }),
            extra,
        };
        let id_jag = self.sign_jwt(TYP_ID_JAG, &jag, "the ID-JAG").await?;
        Ok(TokenSuccess {
            response: TokenResponse {
                access_token: id_jag,
                // TE-4: not usable as an access token
                token_type: "N_A".into(),
                expires_in: Some(self.config.id_jag_ttl),
                refresh_token: None,
                id_token: None,
                scope: target.scope,
                issued_token_type: Some(token_type::ID_JAG.into()),
            },
            dpop_nonce: self.next_nonce(),
        })
    }

    /// IJ-1 / TE-1: the subject ID Token is ours, unexpired, not too old, and issued to
    /// `client` (`aud` contains it, `azp` agrees, no audience it does not trust). A key-bound
    /// one (header `typ`) must carry `cnf.jwk`.
    async fn validate_subject(
        &self,
        client: &Client,
        subject: &str,
    ) -> Result<idtoken::ValidatedIdToken, OpError> {
        let unusable = |e: keybound_proto::Error| OpError::from(Why::Subject(e));
        let jws = idtoken::parse(subject).map_err(unusable)?;
        let bound = matches!(
            jws.header().typ.as_deref(),
            Some(
                keybound_proto::keybinding::TYP_DPOP_ID_TOKEN
                    | keybound_proto::keybinding::TYP_ID_TOKEN_CNF
            )
        );
        let keys = self.jwks().await?;
        let audiences = [client.client_id.clone()];
        let checks = IdTokenChecks {
            max_iat_age: Some(self.config.exchange_subject_max_age),
            // our own tokens, our own clock: no skew to allow for
            leeway: 0,
            binding: if bound {
                BindingRequirement::Bound {
                    expected_jkt: None,
                    accept_draft00: client.key_binding_profile == Profile::Draft00,
                }
            } else {
                BindingRequirement::Unbound
            },
            ..IdTokenChecks::new(&self.config.issuer, &audiences, self.now())
        };
        idtoken::validate_jws(&jws, &keys, &checks).map_err(unusable)
    }
}

/// The client's exchange policy; public clients only when it says so (ID-JAG §4.5 SHOULD).
fn exchange_policy(client: &Client) -> Result<&ExchangePolicy, OpError> {
    let policy = client
        .exchange
        .as_ref()
        .ok_or_else(|| Why::NotAllowed(client.client_id.clone()))?;
    if client.auth_method == ClientAuthMethod::None && !policy.allow_public {
        return Err(Why::PublicClient.into());
    }
    Ok(policy)
}

/// The token types and the subject token. TE-3 is the wire type's rule
/// ([`TokenExchangeRequest::check_actor`]); actor tokens that pass it are refused too, as
/// delegation is not offered (our resolution 5).
fn subject_token(form: &Form) -> Result<&str, OpError> {
    let te = TokenExchangeRequest {
        actor_token: form.get("actor_token").map(str::to_owned),
        actor_token_type: form.get("actor_token_type").map(str::to_owned),
        ..TokenExchangeRequest::default()
    };
    te.check_actor().map_err(Why::Actor)?;
    if te.actor_token.is_some() {
        return Err(Why::ActorNotSupported.into());
    }
    let requested = form.require("requested_token_type")?;
    if requested != token_type::ID_JAG {
        return Err(Why::RequestedType(requested.to_owned()).into());
    }
    let subject_type = form.require("subject_token_type")?;
    if subject_type != token_type::ID_TOKEN {
        return Err(Why::SubjectType(subject_type.to_owned()).into());
    }
    form.require("subject_token")
}

/// `audience` (required, ID-JAG §4.2), `resource` and `scope` against the policy (TE-6, IJ-3).
fn target<'a>(form: &'a Form, policy: &'a ExchangePolicy) -> Result<Target<'a>, OpError> {
    let audience = form.require("audience")?;
    let client_id_there = policy
        .audiences
        .get(audience)
        .ok_or_else(|| Why::Audience(audience.to_owned()))?;
    let resource = form.resources();
    for r in resource {
        if !policy.resources.iter().any(|x| x == r) {
            return Err(Why::Resource(r.to_owned()).into());
        }
    }
    let scope = match form.get("scope").map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            if let Some(bad) = s
                .split(' ')
                .filter(|x| !x.is_empty())
                .find(|x| !policy.scopes.iter().any(|p| p == x))
            {
                return Err(Why::Scope(bad.to_owned()).into());
            }
            Some(
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
    };
    Ok(Target {
        audience,
        client_id_there,
        resource,
        scope,
    })
}

/// The key the ID-JAG is bound to: a key-bound subject needs a proof by its `cnf.jwk` key
/// (the one bound-key check) and passes that key on; an unbound subject (when the policy allows
/// it) is bound to the proof's key, if any.
fn binding(
    policy: &ExchangePolicy,
    subject: Option<&Jkt>,
    proof: Option<&VerifiedProof>,
) -> Result<Option<Jkt>, OpError> {
    match subject {
        Some(bound) => {
            check_bound(proof, Some(bound), Bound::SubjectIdToken)?;
            Ok(Some(bound.clone()))
        }
        None if !policy.allow_unbound => Err(Why::UnboundRefused.into()),
        None => Ok(proof.map(|p| p.jkt.clone())),
    }
}

/// Whether the subject ID Token's sign-in (`acr`, `auth_time`) meets the exchange policy's
/// `acr_values` and `max_auth_age` (RFC 9470 semantics: an `acr` among the values, an
/// authentication no older than the age).
fn sign_in_meets(
    policy: &ExchangePolicy,
    acr: Option<&str>,
    auth_time: Option<u64>,
    now: u64,
) -> Result<(), Why> {
    let short = |why: String| Why::InsufficientUserAuthentication {
        why,
        acr_values: policy.acr_values.clone(),
        max_age: policy.max_auth_age,
    };
    if !policy.acr_values.is_empty()
        && !acr.is_some_and(|a| policy.acr_values.iter().any(|v| v == a))
    {
        return Err(short(format!(
            "this client may chain only sign-ins with acr {}; the ID Token's acr is {}",
            policy.acr_values.join(" or "),
            acr.unwrap_or("absent")
        )));
    }
    if let Some(max) = policy.max_auth_age {
        let age = auth_time.map(|t| now.saturating_sub(t));
        if age.is_none_or(|a| a > max) {
            return Err(short(format!(
                "this client may chain only sign-ins from the last {max} s; the ID Token's is {}",
                age.map_or("of unknown age".to_owned(), |a| format!("{a} s old"))
            )));
        }
    }
    Ok(())
}
