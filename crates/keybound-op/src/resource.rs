//! Protected resources of the OP itself: userinfo (RFC 9449 §7 for DPoP-bound tokens), and
//! RFC 7009 revocation and RFC 7662 introspection.

use keybound_jose::{Algorithm, Jkt, Jws};
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

/// A valid access token's claims.
#[derive(Debug, Clone)]
struct AccessClaims {
    claims: Map<String, Value>,
    jkt: Option<Jkt>,
}

/// The RFC 7662 answer.
pub type Introspection = Value;

impl Provider {
    /// Verify an access token this OP issued: signature by one of its keys, `typ: at+jwt`,
    /// issuer, expiry, grant not revoked.
    async fn access_token(&self, token: &str) -> Result<AccessClaims, OpError> {
        let jws = Jws::parse(token).map_err(|e| Why::Malformed(e.to_string()))?;
        if jws.header().typ.as_deref() != Some("at+jwt") {
            return Err(Why::Typ.into());
        }
        let keys = self.jwks().await?;
        let ok = keys
            .candidates(jws.header().kid.as_deref(), jws.header().alg)
            .iter()
            .any(|k| jws.verify(k, &Algorithm::ALL).is_ok());
        if !ok {
            return Err(Why::Signature.into());
        }
        let claims: Map<String, Value> = jws
            .payload_json()
            .map_err(|e| Why::Malformed(e.to_string()))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(Why::Issuer.into());
        }
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if self.now() >= exp {
            return Err(Why::Expired.into());
        }
        if let Some(gid) = claims.get("gid").and_then(Value::as_str) {
            if self.store.is_grant_revoked(gid).await? {
                return Err(Why::Revoked.into());
            }
        }
        let jkt = claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .map(Jkt::parse)
            .transpose()
            .map_err(|e| Why::Cnf(e.to_string()))?;
        Ok(AccessClaims { claims, jkt })
    }

    /// Authorize a resource request: the token, and for DPoP-bound tokens the proof, under
    /// the same nonce policy as the token endpoint (global and the token's client's).
    async fn authorize_resource(&self, r: ResourceRequest<'_>) -> Result<AccessClaims, OpError> {
        let auth = r.authorization.ok_or(OpError::NoCredentials)?;
        let (scheme, token) = auth.split_once(' ').unwrap_or((auth, ""));
        let token = token.trim();
        let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
        if !dpop_scheme && !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Why::Scheme.into());
        }
        let at = self.access_token(token).await?;
        match (&at.jkt, dpop_scheme) {
            (Some(_), false) => Err(Why::BoundSentAsBearer.into()),
            (None, true) => Err(Why::UnboundSentAsDpop.into()),
            (None, false) => Ok(at),
            (Some(jkt), true) => {
                let client_id = at
                    .claims
                    .get("client_id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let client = self
                    .registered_client(client_id)
                    .await?
                    .ok_or_else(|| Why::ClientGone(client_id.to_owned()))?;
                self.verify_proof(ProofRequest {
                    dpop: r.dpop,
                    htm: r.htm,
                    htu: r.htu,
                    client: Some(&client),
                    presented_token: Some(token),
                    bound: Some((jkt, Bound::AccessToken)),
                    token_request: false,
                })
                .await?;
                Ok(at)
            }
        }
    }

    /// UserInfo (OIDC Core 5.3): claims for the token's scopes.
    pub async fn userinfo(&self, r: ResourceRequest<'_>) -> Result<Value, OpError> {
        let at = self.authorize_resource(r).await?;
        let scope = at.claims.get("scope").and_then(Value::as_str).unwrap_or("");
        if !scope.split(' ').any(|s| s == "openid") {
            return Err(Why::OpenidScopeRequired.into());
        }
        let sub = at.claims.get("sub").and_then(Value::as_str).unwrap_or("");
        let user = self.store.user(sub).await?.ok_or(Why::UserGone)?;
        let mut out = Map::new();
        out.insert("sub".into(), sub.into());
        for (k, v) in scope_claims(scope, &user) {
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
            RefreshLookup::Expired | RefreshLookup::NotFound => {}
        }
        // a token that does not verify is not ours to revoke; a store failure is not "unknown"
        let at = match self.access_token(token).await {
            Ok(at) => Some(at),
            Err(e) if e.is_internal() => return Err(e),
            Err(_) => None,
        };
        if let Some(at) = at {
            let same_client = at.claims.get("client_id").and_then(Value::as_str)
                == Some(client.client_id.as_str());
            if let (true, Some(gid)) = (same_client, at.claims.get("gid").and_then(Value::as_str)) {
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
        match self.access_token(token).await {
            Ok(at)
                if at.claims.get("client_id").and_then(Value::as_str)
                    == Some(client.client_id.as_str()) =>
            {
                let mut v = Value::Object(at.claims);
                v["active"] = true.into();
                v["token_type"] = if at.jkt.is_some() { "DPoP" } else { "Bearer" }.into();
                if let Some(o) = v.as_object_mut() {
                    o.remove("gid");
                }
                Ok(v)
            }
            // a store failure is the provider's, never "inactive"
            Err(e) if e.is_internal() => Err(e),
            _ => Ok(inactive),
        }
    }
}
