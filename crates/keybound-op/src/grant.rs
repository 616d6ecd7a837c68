//! The grant pipeline: every grant type ends here. A grant module (code, device code, refresh;
//! token exchange and jwt-bearer later) authenticates nothing and mints nothing itself: it
//! turns its single-use artefact into a [`Redemption`] (or, for refresh, a rotated [`Grant`]),
//! [`redemption_grant`] and [`Provider::first_refresh`] decide the bindings once for
//! all of them, the store consumes the artefact and writes the refresh token in one
//! transaction, and [`Provider::mint`] signs:
//!
//! - the ID Token carries `cnf.jwk` only when `bound_key` was granted and a proof was verified
//!   (Key Binding; never half-bound: the grant modules refuse a `bound_key` redemption without
//!   a proof before consuming anything);
//! - the access token is DPoP-bound (`cnf.jkt`, `token_type: DPoP`) whenever a proof was sent
//!   (RFC 9449 §6);
//! - a new refresh token is bound to the proof key for every client under Key Binding, for
//!   public clients whenever they proved a key (RFC 9449 §5), and not for confidential clients
//!   outside Key Binding (DP-T6) — [`refresh_binding`] is that rule.

use keybound_jose::{Jkt, PublicJwk};
use keybound_proto::access_token::AccessTokenClaims;
use keybound_proto::cnf::Cnf;
use keybound_proto::dpop::VerifiedProof;
use keybound_proto::idtoken::{Audience, IdTokenBuilder};
use keybound_proto::keybinding::Profile;
use keybound_proto::wire::TokenResponse;
use keybound_store::{Client, ClientAuthMethod, RefreshToken, TokenHash};
use serde_json::Value;

use crate::refusal::{RequestRefusal, TargetRefusal};
use crate::{OpError, Provider};

/// A successful token response and the next nonce to advertise.
#[derive(Debug, Clone)]
pub struct TokenSuccess {
    /// the JSON body
    pub response: TokenResponse,
    /// `DPoP-Nonce` for the response, when nonces are in use
    pub dpop_nonce: Option<String>,
}

/// What the End-User authorized, as stored with a code, device code or refresh token.
#[derive(Debug)]
pub(crate) struct Authorized<'a> {
    pub(crate) grant_id: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) scope: &'a str,
    /// when the End-User authenticated; none for a grant without one (client credentials)
    pub(crate) auth_time: Option<u64>,
    pub(crate) acr: Option<&'a str>,
    pub(crate) amr: &'a [String],
    /// the authorization request's `nonce` (none on refresh, OIDC Core 12.2)
    pub(crate) nonce: Option<&'a str>,
    /// RFC 8707: the resources the grant names (empty: none named, any the client
    /// registered); every token request may narrow them, never add
    pub(crate) resources: &'a [String],
    /// the OP session the grant began in (`sid` in its ID Tokens)
    pub(crate) sid: Option<&'a str>,
}

/// What a consumed single-use artefact (authorization code, device code) grants.
#[derive(Debug)]
pub(crate) struct Redemption<'a> {
    pub(crate) who: Authorized<'a>,
    /// `bound_key` was granted: the ID Token must be key-bound
    pub(crate) bound_key: bool,
    /// the Token Binding hash the code was issued with
    pub(crate) tbh: Option<&'a str>,
}

/// What the minting step needs to know about the End-User's authorization.
pub(crate) struct Grant<'a> {
    pub(crate) client: &'a Client,
    pub(crate) who: Authorized<'a>,
    /// `cnf.jwk` for the ID Token (Key Binding) and the profile deciding its `typ`
    pub(crate) id_token_key: Option<(Profile, PublicJwk)>,
    /// `cnf.tbh` for the ID Token (OIDC Token Bound Authentication)
    pub(crate) tbh: Option<&'a str>,
    /// the access token's `aud` ([`audience`]); `None`: this provider (userinfo)
    pub(crate) audience: Option<Vec<String>>,
}

impl<'a> Grant<'a> {
    /// A grant that yields an access token only — no ID Token, no refresh token, no binding
    /// but the proof's: jwt-bearer (IJ-13) and client credentials (RFC 6749 §4.4.3).
    pub(crate) fn access_only(
        client: &'a Client,
        grant_id: &'a str,
        sub: &'a str,
        scope: &'a str,
        auth_time: Option<u64>,
        audience: Option<Vec<String>>,
    ) -> Self {
        Grant {
            client,
            who: Authorized {
                grant_id,
                sub,
                scope,
                auth_time,
                acr: None,
                amr: &[],
                nonce: None,
                resources: &[],
                sid: None,
            },
            id_token_key: None,
            tbh: None,
            audience,
        }
    }

    /// How the End-User signed in (`acr`, `amr`), carried from an assertion into the token.
    #[must_use]
    pub(crate) fn signed_in_with(mut self, acr: Option<&'a str>, amr: &'a [String]) -> Self {
        self.who.acr = acr;
        self.who.amr = amr;
        self
    }
}

/// RFC 8707 / RFC 9068 §3, the one decision for every grant: the resources an access token is
/// for, which become its `aud`. `requested` are the request's `resource` parameters;
/// `granted`, what the grant already names (the authorization request's resources, kept with
/// the code and its refresh tokens; an ID-JAG's `resource`), when it names any: the request
/// may narrow it, never add. Each resource is an absolute URI without a fragment that
/// the client registered. Nothing requested or granted: `None` (a token for this provider).
pub(crate) fn audience(
    client: &Client,
    requested: &[String],
    granted: Option<&[String]>,
) -> Result<Option<Vec<String>>, TargetRefusal> {
    // a grant that names no resources allows any the client registered
    let granted = granted.filter(|g| !g.is_empty());
    if let Some(g) = granted {
        if let Some(extra) = requested.iter().find(|r| !g.contains(r)) {
            return Err(TargetRefusal::NotGranted(extra.clone()));
        }
    }
    let chosen: Vec<String> = match (requested, granted) {
        ([], Some(g)) => g.to_vec(),
        _ => requested.to_vec(),
    };
    for r in &chosen {
        if crate::register::absolute_uri(r).is_none() {
            return Err(TargetRefusal::Malformed(r.clone()));
        }
        if !client.resources.contains(r) {
            return Err(TargetRefusal::NotRegistered {
                resource: r.clone(),
                client: client.client_id.clone(),
            });
        }
    }
    Ok((!chosen.is_empty()).then_some(chosen))
}

/// RFC 7591 §2 `grant_types`: `client` uses only the grants it registered
/// (`unauthorized_client`). The token endpoint and the device authorization endpoint ask here.
pub(crate) fn require_grant(client: &Client, grant: &str) -> Result<(), RequestRefusal> {
    if client.allows(grant) {
        Ok(())
    } else {
        Err(RequestRefusal::GrantNotRegistered {
            client: client.client_id.clone(),
            grant: grant.to_owned(),
        })
    }
}

/// The claim naming the grant an ID Token or access token came from.
pub(crate) const GRANT_ID_CLAIM: &str = "gid";

pub(crate) fn has_scope(scope: &str, s: &str) -> bool {
    scope.split(' ').any(|x| x == s)
}

/// Whether a grant of `scope` to `client` comes with a refresh token: only with
/// `offline_access` (OIDC Core §11), and only for a client registered for the `refresh_token`
/// grant (RFC 7591 §2). The redemption draws the token value only then.
pub(crate) fn issues_refresh(client: &Client, scope: &str) -> bool {
    has_scope(scope, "offline_access") && client.allows("refresh_token")
}

/// The refresh-token binding rule (docs/decisions.md, DP-T6): bound to the proof key for every
/// client under Key Binding, for public clients whenever they proved a key (RFC 9449 §5), and
/// unbound for confidential clients outside Key Binding.
pub(crate) fn refresh_binding(
    client: &Client,
    bound_key: bool,
    proof: Option<&VerifiedProof>,
) -> Option<Jkt> {
    proof
        .filter(|_| bound_key || client.auth_method == ClientAuthMethod::None)
        .map(|p| p.jkt.clone())
}

/// The grant a redeemed code or device code issues tokens for: its ID Token is key-bound
/// to the proof's key exactly when `bound_key` was granted.
pub(crate) fn redemption_grant<'a>(
    client: &'a Client,
    r: Redemption<'a>,
    proof: Option<&VerifiedProof>,
    audience: Option<Vec<String>>,
) -> Result<Grant<'a>, OpError> {
    let id_token_key = if r.bound_key {
        // the grant modules refused a bound_key redemption without a proof already
        let p = proof.ok_or_else(|| {
            OpError::internal("bound_key redemption reached minting without a proof")
        })?;
        Some((client.key_binding_profile, p.jwk.clone()))
    } else {
        None
    };
    Ok(Grant {
        client,
        who: r.who,
        id_token_key,
        tbh: r.tbh,
        audience,
    })
}

impl Provider {
    /// The first refresh token of a redeemed grant (one that [`issues_refresh`]), with the
    /// value `token`: what the store writes in the redemption's own transaction
    /// ([`keybound_store::NewRefresh`]), so a consumed code never lacks its refresh token.
    pub(crate) fn first_refresh(
        &self,
        g: &Grant<'_>,
        proof: Option<&VerifiedProof>,
        token: &str,
        now: u64,
    ) -> (TokenHash, RefreshToken) {
        let record = RefreshToken {
            family_id: self.random_id(),
            grant_id: g.who.grant_id.to_owned(),
            client_id: g.client.client_id.clone(),
            sub: g.who.sub.to_owned(),
            scope: g.who.scope.to_owned(),
            // refresh tokens come only from grants with an End-User
            auth_time: g.who.auth_time.unwrap_or_default(),
            resources: g.who.resources.to_vec(),
            sid: g.who.sid.map(str::to_owned),
            acr: g.who.acr.map(str::to_owned),
            amr: g.who.amr.to_vec(),
            jkt: refresh_binding(g.client, g.id_token_key.is_some(), proof),
            cnf_jwk: g.id_token_key.as_ref().map(|(_, k)| k.clone()),
            profile: g
                .id_token_key
                .as_ref()
                .map_or(g.client.key_binding_profile, |(p, _)| *p),
            tbh: g.tbh.map(str::to_owned),
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
        };
        (TokenHash::of(token), record)
    }

    /// Mint the access token and ID Token of a grant; `refresh_token` is the one the store
    /// already wrote with the redemption or rotation (none without `offline_access`).
    #[tracing::instrument(level = "debug", name = "tokens.sign", skip_all)]
    pub(crate) async fn mint(
        &self,
        g: &Grant<'_>,
        proof: Option<&VerifiedProof>,
        refresh_token: Option<String>,
    ) -> Result<TokenSuccess, OpError> {
        let now = self.now();
        let key = self.current_key().await?;
        let access_token = self.sign_access_token(g, proof, &key, now)?;
        let id_token = if has_scope(g.who.scope, "openid") {
            Some(self.id_token(g, Some(&access_token), None, &key).await?)
        } else {
            None
        };
        Ok(TokenSuccess {
            response: TokenResponse {
                access_token,
                token_type: if proof.is_some() { "DPoP" } else { "Bearer" }.to_owned(),
                expires_in: Some(self.config.access_token_ttl),
                refresh_token,
                id_token,
                // RFC 6749 §5.1: a grant without scope says nothing, never `""`
                scope: Some(g.who.scope.to_owned()).filter(|s| !s.is_empty()),
                issued_token_type: None,
            },
            dpop_nonce: self.next_nonce(),
        })
    }

    /// An RFC 9068 access token for `g`, DPoP-bound when a proof was sent (RFC 9449 §6).
    fn sign_access_token(
        &self,
        g: &Grant<'_>,
        proof: Option<&VerifiedProof>,
        key: &crate::keys::SigningKey,
        now: u64,
    ) -> Result<String, OpError> {
        let at = AccessTokenClaims {
            iss: self.config.issuer.clone(),
            sub: g.who.sub.to_owned(),
            aud: match &g.audience {
                Some(a) if a.len() == 1 => Audience::One(a[0].clone()),
                Some(a) => Audience::Many(a.clone()),
                None => Audience::from(self.config.issuer.as_str()),
            },
            client_id: g.client.client_id.clone(),
            scope: Some(g.who.scope.to_owned()).filter(|s| !s.is_empty()),
            iat: now,
            exp: now + self.config.access_token_ttl,
            jti: self.random_id(),
            gid: Some(g.who.grant_id.to_owned()),
            // RFC 9068 §2.2.1: how the End-User signed in, for resource servers' step-up
            auth_time: g.who.auth_time,
            acr: g.who.acr.map(str::to_owned),
            amr: (!g.who.amr.is_empty()).then(|| g.who.amr.to_vec()),
            nbf: None,
            cnf: proof.map(|p| Cnf::with_jkt(p.jkt.clone())),
        };
        at.sign(&key.key, key.alg, &key.kid)
            .map_err(|e| OpError::internal(format!("the access token: {e}")))
    }

    /// The tokens the authorization endpoint returns itself (implicit and hybrid flows, OIDC
    /// Core 3.2, 3.3): a Bearer access token for `token` (no DPoP proof reaches the
    /// authorization endpoint), an ID Token for `id_token` with `nonce`, and `at_hash` and the
    /// OIDC `c_hash` of what travels with it. Never key-bound (Key Binding ID1 §1.4).
    pub(crate) async fn front_channel(
        &self,
        g: &Grant<'_>,
        response_type: keybound_proto::wire::ResponseType,
        code: Option<&str>,
    ) -> Result<Vec<(String, String)>, OpError> {
        let now = self.now();
        let key = self.current_key().await?;
        let mut out = Vec::new();
        let access_token = if response_type.token {
            Some(self.sign_access_token(g, None, &key, now)?)
        } else {
            None
        };
        if let Some(at) = &access_token {
            out.push(("access_token".to_owned(), at.clone()));
            out.push(("token_type".to_owned(), "Bearer".to_owned()));
            out.push((
                "expires_in".to_owned(),
                self.config.access_token_ttl.to_string(),
            ));
        }
        if response_type.id_token {
            let id = self
                .id_token(g, access_token.as_deref(), code, &key)
                .await?;
            out.push(("id_token".to_owned(), id));
        }
        Ok(out)
    }

    async fn id_token(
        &self,
        g: &Grant<'_>,
        access_token: Option<&str>,
        code: Option<&str>,
        key: &crate::keys::SigningKey,
    ) -> Result<String, OpError> {
        // only profile and email add claims from the user record; skip the read otherwise
        let user = if has_scope(g.who.scope, "profile") || has_scope(g.who.scope, "email") {
            self.store.user(g.who.sub).await?
        } else {
            None
        };
        // an ID Token is about an End-User's authentication: without one, there is none
        let auth_time = g
            .who
            .auth_time
            .ok_or_else(|| OpError::internal("an ID Token for a grant without an End-User"))?;
        let mut b = IdTokenBuilder::new(
            &self.config.issuer,
            g.who.sub,
            Audience::from(g.client.client_id.as_str()),
            self.now(),
            self.config.id_token_ttl,
        )
        .nonce(g.who.nonce)
        .auth_time(auth_time)
        // the grant it came from (issuer-private, like the access token's): token exchange
        // refuses a subject whose grant was revoked
        .claim(GRANT_ID_CLAIM, g.who.grant_id.into());
        // Back-Channel Logout §2.4: the session the End-User signed in with
        if let Some(sid) = g.who.sid {
            b = b.claim("sid", sid.into());
        }
        if let Some(at) = access_token {
            b = b.at_hash_for(at);
        }
        if let Some(c) = code {
            b = b.c_hash_for(c);
        }
        if !g.who.amr.is_empty() {
            let amr: Vec<&str> = g.who.amr.iter().map(String::as_str).collect();
            b = b.amr(&amr);
        }
        if let Some(acr) = g.who.acr {
            b = b.acr(acr);
        }
        if let Some(u) = &user {
            for (k, v) in scope_claims(g.who.scope, u) {
                b = b.claim(&k, v);
            }
        }
        if let Some((profile, jwk)) = &g.id_token_key {
            b = b.bind(*profile, jwk);
        }
        if let Some(tbh) = g.tbh {
            b = b.token_binding_hash(tbh);
        }
        b.sign(&key.key, key.alg, Some(&key.kid))
            .map_err(|e| OpError::internal(format!("signing the ID Token: {e}")))
    }
}

/// Claims released for the granted scopes (OIDC Core 5.4).
pub(crate) fn scope_claims(scope: &str, user: &keybound_store::User) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if has_scope(scope, "profile") {
        if let Some(n) = &user.name {
            out.push(("name".to_owned(), n.clone().into()));
        }
        out.push((
            "preferred_username".to_owned(),
            user.username.clone().into(),
        ));
    }
    if has_scope(scope, "email") {
        if let Some(e) = &user.email {
            out.push(("email".to_owned(), e.clone().into()));
            out.push(("email_verified".to_owned(), user.email_verified.into()));
        }
    }
    out
}
