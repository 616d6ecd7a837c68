//! The resource AS half of identity chaining: an ID-JAG from a trusted identity provider,
//! redeemed with the RFC 7523 jwt-bearer grant (or its `jwt-dpop` alias) for an access token.
//!
//! In the one pipeline: the client is authenticated and the DPoP proof verified before this
//! module runs. Then, each with its own `invalid_grant` description: header `typ` exactly
//! `oauth-id-jag+jwt` (IJ-8: an ID Token, access token, DPoP proof or any other JWT is refused
//! before anything else is believed) → `iss` a trusted, enabled issuer, never ourselves (IJ-11,
//! IJ-14; a disabled issuer is refused, the regression of Keycloak CVE-2026-1486) → its
//! signature with that issuer's keys (JB-8) → `aud` exactly our issuer, `client_id` the
//! authenticated client, the times (IJ-9, IJ-10, JB-4, JB-5) → the binding (`cnf` present: a
//! proof by that key is required and the access token is bound to it; absent: Bearer only where
//! the issuer allows it) → `jti` (single use for unbound ID-JAGs and per issuer setting; a
//! key-bound one may be presented again within its lifetime with a fresh proof, ID-JAG -04) →
//! the subject (link, e-mail or provisioning) → an RFC 9068 access token through the same
//! minting as every grant, scope narrowed to what the ID-JAG grants, no refresh token (IJ-13).

use std::sync::Arc;

use async_trait::async_trait;
use keybound_jose::{Algorithm, JwkSet, Jws};
use keybound_proto::dpop::VerifiedProof;
use keybound_proto::idjag::{self, TYP_ID_JAG};
use keybound_store::{Client, SubjectMode, TrustedIssuer, User};

use crate::form::Form;
use crate::grant::{audience, Grant, TokenSuccess};
use crate::proof::check_bound;
use crate::refusal::{Bound, JwtBearerRefusal as Why};
use crate::{OpError, Provider};

/// Clock skew allowed on an ID-JAG's `exp`, `iat` and `nbf` (another server's clock).
const LEEWAY: u64 = 30;

/// Where a trusted issuer's signing keys come from (the server fetches and caches them over
/// HTTP; nothing here does I/O).
#[async_trait]
pub trait IssuerKeys: Send + Sync {
    /// The keys at `jwks_uri`, refetched at a bounded rate when `kid` is unknown.
    async fn keys(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Arc<JwkSet>, String>;
}

impl Provider {
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (or `…:jwt-dpop`).
    pub(crate) async fn jwt_bearer_grant(
        &self,
        client: &Client,
        form: &Form,
        proof: Option<VerifiedProof>,
    ) -> Result<TokenSuccess, OpError> {
        if !client.jwt_bearer {
            return Err(Why::NotAllowed(client.client_id.clone()).into());
        }
        // ID-JAG §5: the resource AS redeems grants for confidential clients only
        if client.auth_method == keybound_store::ClientAuthMethod::None {
            return Err(Why::PublicClient(client.client_id.clone()).into());
        }
        let assertion = form.require("assertion")?;
        let jws = Jws::parse(assertion).map_err(|e| Why::Malformed(e.to_string()))?;
        // IJ-8 first: nothing in a JWT of another type is believed
        if jws.header().typ.as_deref() != Some(TYP_ID_JAG) {
            let got = jws.header().typ.as_deref().unwrap_or("none");
            return Err(Why::Typ(got.to_owned()).into());
        }
        let issuer = self.trusted_issuer(&jws).await?;
        self.verify_issuer_signature(&jws, &issuer).await?;
        let now = self.now();
        let (claims, cnf) = idjag::check(&jws, &self.config.issuer, &client.client_id, now, LEEWAY)
            .map_err(Why::Claims)?;
        // a bounded lifetime: an ID-JAG valid for years is a long-lived credential, and a
        // key-bound one may be presented again while it lives
        let max = self.config.jwt_bearer_max_lifetime;
        if claims.exp.saturating_sub(claims.iat) > max {
            return Err(Why::LifetimeTooLong {
                lifetime: claims.exp.saturating_sub(claims.iat),
                max,
            }
            .into());
        }
        // the binding: cnf demands a proof by that key (the one bound-key check); no cnf is
        // Bearer where allowed
        check_bound(proof.as_ref(), cnf.as_ref(), Bound::IdJag)?;
        // an unbound ID-JAG is accepted only from an issuer allowed them, proof or not: a
        // proof by any key says nothing about who was given the grant (docs/operations.md)
        if cnf.is_none() && !issuer.allow_unbound {
            return Err(Why::UnboundRefused(issuer.issuer.clone()).into());
        }
        // RFC 8707 / RFC 9068 §3: the ID-JAG's resource (narrowed by the request) becomes the
        // access token's aud; decided before the jti is spent
        let granted = match &claims.resource {
            None => None,
            Some(serde_json::Value::String(r)) => Some(vec![r.clone()]),
            Some(serde_json::Value::Array(a)) => Some(
                a.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(Why::ResourceClaim)?,
            ),
            Some(_) => return Err(Why::ResourceClaim.into()),
        };
        let audience = audience(client, form.resources(), granted.as_deref())?;
        // jti: single use unless key-bound (re-redemption within exp, each with a fresh proof)
        if cnf.is_none() || issuer.single_use {
            let digest =
                keybound_jose::sha256(format!("id-jag\0{}\0{}", claims.iss, claims.jti).as_bytes());
            if !self
                .store
                .check_and_insert(&digest, claims.exp.saturating_add(LEEWAY), now)
                .await?
            {
                return Err(Why::Replayed.into());
            }
        }
        let user = self.resolve_subject(&issuer, &claims).await?;
        // IJ-12: the scope is what the ID-JAG grants, narrowed by the request; never identity
        // scopes (no ID Token, no refresh token from an assertion: IJ-13)
        let granted: Vec<&str> = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty() && !matches!(*s, "openid" | "offline_access" | "bound_key"))
            .collect();
        let scope = match form.get("scope") {
            None => granted.join(" "),
            Some(asked) => {
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if let Some(bad) = asked.iter().find(|s| !granted.contains(s)) {
                    return Err(Why::Scope((*bad).to_owned()).into());
                }
                asked.join(" ")
            }
        };
        let grant_id = self.random_id();
        let auth_time = claims
            .extra
            .get("auth_time")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(claims.iat);
        // RFC 9068 §2.2.1: the sign-in the ID-JAG describes, for this domain's resource servers
        let acr = claims.extra.get("acr").and_then(serde_json::Value::as_str);
        let amr: Vec<String> = claims
            .extra
            .get("amr")
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let grant = Grant::access_only(
            client,
            &grant_id,
            &user.sub,
            &scope,
            Some(auth_time),
            audience,
        )
        .signed_in_with(acr, &amr);
        // no refresh token from an assertion (IJ-13)
        self.mint(&grant, proof.as_ref(), None).await
    }

    /// IJ-11, IJ-14: the issuer is configured, enabled, and not this server.
    async fn trusted_issuer(&self, jws: &Jws<'_>) -> Result<TrustedIssuer, OpError> {
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: String,
        }
        let iss = jws.payload_json::<Iss>().map_err(|_| Why::IssRequired)?.iss;
        if iss == self.config.issuer {
            return Err(Why::OwnIssuer.into());
        }
        let Some(issuer) = self.store.issuer(&iss).await? else {
            return Err(Why::UntrustedIssuer(iss).into());
        };
        if !issuer.enabled {
            return Err(Why::DisabledIssuer(iss).into());
        }
        Ok(issuer)
    }

    /// JB-8: signed by one of the issuer's keys, with an asymmetric algorithm.
    async fn verify_issuer_signature(
        &self,
        jws: &Jws<'_>,
        issuer: &TrustedIssuer,
    ) -> Result<(), OpError> {
        let source = self
            .issuer_keys
            .as_ref()
            .ok_or_else(|| OpError::internal("jwt-bearer: no issuer key source configured"))?;
        let kid = jws.header().kid.as_deref();
        let keys = source
            .keys(&issuer.jwks_uri, kid, self.now())
            .await
            .map_err(|cause| Why::NoKeys {
                issuer: issuer.issuer.clone(),
                cause,
            })?;
        match keys.verify(jws, &Algorithm::ALL) {
            Ok(_) => Ok(()),
            Err(_) => Err(Why::Signature(issuer.issuer.clone()).into()),
        }
    }

    /// The local End-User for the ID-JAG's subject, per the issuer's subject mode.
    async fn resolve_subject(
        &self,
        issuer: &TrustedIssuer,
        claims: &idjag::IdJagClaims,
    ) -> Result<User, OpError> {
        if let Some(u) = self.store.linked_user(&issuer.issuer, &claims.sub).await? {
            return Ok(u);
        }
        let email = claims
            .extra
            .get("email")
            .and_then(serde_json::Value::as_str);
        // an address counts as verified only when the assertion says so (OIDC Core 5.1)
        let verified = claims.extra.get("email_verified") == Some(&serde_json::Value::Bool(true));
        let user = match issuer.subject {
            SubjectMode::Link => None,
            // a local account with that verified address; never an End-User another issuer
            // provisioned (the store finds local accounts only)
            SubjectMode::Email => match email.filter(|_| verified) {
                Some(e) => self.store.user_by_verified_email(e).await?,
                None => None,
            },
            SubjectMode::Provision => {
                let sub = format!(
                    "idjag-{}",
                    &keybound_jose::sha256_b64(
                        format!("{}\0{}", issuer.issuer, claims.sub).as_bytes()
                    )[..22]
                );
                let user = User {
                    email: email.map(str::to_owned),
                    // verified only when the issuer said so in its signed grant
                    email_verified: email.is_some() && verified,
                    provisioned_by: Some(issuer.issuer.clone()),
                    // no password: this End-User signs in at their own IdP
                    ..User::new(&sub, &sub, "!".into(), self.now())
                };
                self.store.put_user(&user).await?;
                Some(user)
            }
        };
        let user = user.ok_or_else(|| Why::UnknownSubject {
            sub: claims.sub.clone(),
            issuer: issuer.issuer.clone(),
            mode: issuer.subject.as_str(),
        })?;
        self.store
            .link_user(&issuer.issuer, &claims.sub, &user.sub)
            .await?;
        Ok(user)
    }
}
