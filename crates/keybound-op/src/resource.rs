//! Protected resources of the OP itself: userinfo (RFC 9449 §7 for DPoP-bound tokens), and
//! RFC 7009 revocation and RFC 7662 introspection.

use keybound_proto::access_token::{self, AccessTokenChecks, AccessTokenClaims};
use keybound_store::{ClientAuthMethod, RefreshLookup, TokenHash};
use serde_json::{json, Map, Value};

use crate::grant::scope_claims;
use crate::proof::ProofRequest;
use crate::refusal::{Bound, ClientAuthRefusal, ResourceRefusal as Why};
use crate::{Form, OpError, Provider};

/// A request to a protected resource of the OP.
#[derive(Debug, Clone, Copy)]
pub struct ResourceRequest<'a> {
    /// `Authorization` header
    pub authorization: Option<&'a str>,
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
    /// request method
    pub htm: &'a str,
    /// externally visible request URL
    pub htu: &'a str,
}

/// The RFC 7662 answer.
pub type Introspection = Value;

/// Whose access token the provider is verifying.
#[derive(Debug, Clone, Copy)]
enum TokenFor {
    /// the provider's own resources (userinfo): `aud` names this issuer
    ThisProvider,
    /// introspection and revocation: any resource the token was issued for
    AnyResource,
}

impl Provider {
    /// Verify an access token this OP issued, by the rules every resource server shares
    /// (`keybound_proto::access_token`: `typ`, signature by one of its keys, `iss`, `aud`,
    /// times, `cnf`), then that its grant was not revoked. `aud` must name this issuer where
    /// the provider is the resource (userinfo); introspection and revocation answer for a
    /// token of any resource it was issued for (RFC 7662 §2.2, RFC 8707).
    async fn access_token(&self, token: &str, aud: TokenFor) -> Result<AccessTokenClaims, OpError> {
        let token = access_token::decode(token).map_err(Why::AccessToken)?;
        let keys = self.jwks().await?;
        let issuer = &self.config.issuer;
        let audiences = match aud {
            TokenFor::ThisProvider => vec![issuer.clone()],
            TokenFor::AnyResource => token.audiences().to_vec(),
        };
        let checks = AccessTokenChecks::new(issuer, &audiences, self.now());
        let claims = access_token::validate(token, &keys, &checks).map_err(Why::AccessToken)?;
        if let Some(gid) = &claims.gid {
            if self.store.is_grant_revoked(gid).await? {
                return Err(Why::Revoked.into());
            }
        }
        Ok(claims)
    }

    /// Authorize a resource request: the token, and for DPoP-bound tokens the proof, under
    /// the same nonce policy as the token endpoint (global and the token's client's).
    pub(crate) async fn authorize_resource(
        &self,
        r: ResourceRequest<'_>,
    ) -> Result<AccessTokenClaims, OpError> {
        let auth = r.authorization.ok_or(OpError::NoCredentials)?;
        let (scheme, token) = auth.split_once(' ').unwrap_or((auth, ""));
        let token = token.trim();
        let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
        if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Why::Scheme.into());
        }
        let at = self.access_token(token, TokenFor::ThisProvider).await?;
        access_token::check_scheme(dpop_scheme, &at).map_err(Why::AccessToken)?;
        match at.jkt() {
            None => Ok(at),
            Some(jkt) => {
                let client = self
                    .registered_client(&at.client_id)
                    .await?
                    .ok_or_else(|| Why::ClientGone(at.client_id.clone()))?;
                self.verify_proof(ProofRequest {
                    dpop: r.dpop,
                    htm: r.htm,
                    htu: r.htu,
                    client: Some(&client),
                    presented_token: Some(token),
                    bound: Some((jkt, Bound::AccessToken)),
                    token_request: false,
                    record_later: false,
                })
                .await?;
                Ok(at)
            }
        }
    }

    /// UserInfo (OIDC Core 5.3): claims for the token's scopes.
    pub async fn userinfo(&self, r: ResourceRequest<'_>) -> Result<Value, OpError> {
        let at = self.authorize_resource(r).await?;
        if !at.has_scope("openid") {
            return Err(Why::OpenidScopeRequired.into());
        }
        let user = self.store.user(&at.sub).await?.ok_or(Why::UserGone)?;
        let mut out = Map::new();
        out.insert("sub".into(), at.sub.clone().into());
        for (k, v) in scope_claims(at.scope.as_deref().unwrap_or(""), &user) {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }

    /// RFC 7009 revocation. Revoking a refresh token revokes its family; revoking an access
    /// token revokes the grant it came from (documented in docs/decisions.md). Unknown tokens
    /// are not an error.
    pub async fn revoke(&self, authorization: Option<&str>, form: &Form) -> Result<(), OpError> {
        let client = self.authenticate_client(authorization, form).await?;
        let token = form.require("token")?;
        let now = self.now();
        match self.store.find_refresh(&TokenHash::of(token), now).await? {
            RefreshLookup::Active(t) | RefreshLookup::Reused(t) | RefreshLookup::Revoked(t) => {
                // RFC 7009 §2.1: the grant's access tokens go with it (and every family)
                if t.client_id == client.client_id {
                    self.store.revoke_grant(&t.grant_id, now).await?;
                }
                return Ok(());
            }
            RefreshLookup::Expired | RefreshLookup::NotFound | RefreshLookup::Replayed => {}
        }
        // a token that does not verify is not ours to revoke; a store failure is not "unknown"
        let at = match self.access_token(token, TokenFor::AnyResource).await {
            Ok(at) => Some(at),
            Err(e) if e.is_internal() => return Err(e),
            Err(_) => None,
        };
        if let Some(at) = at {
            if let (true, Some(gid)) = (at.client_id == client.client_id, &at.gid) {
                self.store.revoke_grant(gid, now).await?;
            }
        }
        Ok(())
    }

    /// RFC 7662 introspection, for tokens issued to the calling client. Returns `cnf.jkt` for
    /// DPoP-bound tokens (RFC 9449 §6.2).
    pub async fn introspect(
        &self,
        authorization: Option<&str>,
        form: &Form,
    ) -> Result<Introspection, OpError> {
        let client = self.authenticate_client(authorization, form).await?;
        // RFC 7662 §2.1: the caller must be authorised; a public client's id is no credential
        if client.auth_method == ClientAuthMethod::None {
            return Err(ClientAuthRefusal::PublicClientIntrospection.into());
        }
        let token = form.require("token")?;
        let inactive = json!({ "active": false });
        let now = self.now();
        if let RefreshLookup::Active(t) =
            self.store.find_refresh(&TokenHash::of(token), now).await?
        {
            if t.client_id != client.client_id {
                return Ok(inactive);
            }
            let mut v = json!({
                "active": true, "token_type": "refresh_token", "client_id": t.client_id,
                "sub": t.sub, "scope": t.scope, "iat": t.created_at, "exp": t.expires_at,
                "iss": self.config.issuer,
            });
            if let Some(j) = t.jkt {
                v["cnf"] = json!({ "jkt": j });
            }
            return Ok(v);
        }
        match self.access_token(token, TokenFor::AnyResource).await {
            Ok(at) if at.client_id == client.client_id => {
                let token_type = if at.jkt().is_some() { "DPoP" } else { "Bearer" };
                let mut v = serde_json::to_value(AccessTokenClaims { gid: None, ..at })
                    .map_err(|e| OpError::internal(format!("introspection: {e}")))?;
                v["active"] = true.into();
                v["token_type"] = token_type.into();
                Ok(v)
            }
            // a store failure is the provider's, never "inactive"
            Err(e) if e.is_internal() => Err(e),
            _ => Ok(inactive),
        }
    }
}
