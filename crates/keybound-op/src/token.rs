//! The token endpoint: `authorization_code` and `refresh_token` grants with DPoP and Key
//! Binding.
//!
//! Order (ARCHITECTURE.md §3.3): authenticate the client → look the code / refresh token up
//! without consuming it (to learn the key it is bound to) → verify the DPoP proof in full,
//! including nonce and `jti` replay → consume atomically → mint. A `use_dpop_nonce` answer
//! therefore never burns the code, and the retry with the nonce succeeds with the same code.

use std::collections::BTreeMap;

use keybound_jose::{Jkt, PublicJwk};
use keybound_proto::dpop::{self, CodeBinding, NonceCheck, RequestFacts, VerifiedProof};
use keybound_proto::idtoken::{Audience, IdTokenBuilder};
use keybound_proto::keybinding::Profile;
use keybound_proto::wire::{ErrorCode, TokenResponse};
use keybound_store::{
    AuthorizationCode, Client, ClientAuthMethod, CodeLookup, RefreshLookup, RefreshToken, TokenHash,
};
use serde_json::{json, Map, Value};

use crate::client_auth::ClientCredentials;
use crate::{OpError, Provider};

/// Form parameters with RFC 6749 §3.2's rule: none may appear twice.
#[derive(Debug, Clone, Default)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// From decoded `application/x-www-form-urlencoded` pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OpError> {
        let mut m = BTreeMap::new();
        for (k, v) in pairs {
            if m.contains_key(&k) {
                return Err(OpError::invalid_request(format!(
                    "parameter '{k}' appears more than once"
                )));
            }
            m.insert(k, v);
        }
        Ok(Form(m))
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn require(&self, name: &str) -> Result<&str, OpError> {
        self.get(name)
            .ok_or_else(|| OpError::invalid_request(format!("missing parameter '{name}'")))
    }
}

/// One token request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequestFacts<'a> {
    /// the form body
    pub form: &'a Form,
    /// `Authorization` header
    pub authorization: Option<&'a str>,
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
}

/// A successful token response and the next nonce to advertise.
#[derive(Debug, Clone)]
pub struct TokenSuccess {
    /// the JSON body
    pub response: TokenResponse,
    /// `DPoP-Nonce` for the response, when nonces are in use
    pub dpop_nonce: Option<String>,
}

/// What the minting step needs to know about the End-User's authorization.
pub(crate) struct Grant<'a> {
    pub(crate) client: &'a Client,
    pub(crate) grant_id: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) scope: &'a str,
    pub(crate) auth_time: u64,
    pub(crate) acr: Option<&'a str>,
    pub(crate) amr: &'a [String],
    pub(crate) nonce: Option<&'a str>,
    /// `cnf.jwk` for the ID Token (Key Binding) and the profile deciding its `typ`
    pub(crate) id_token_key: Option<(Profile, PublicJwk)>,
}

fn has_scope(scope: &str, s: &str) -> bool {
    scope.split(' ').any(|x| x == s)
}

fn s256(verifier: &str) -> String {
    keybound_jose::sha256_b64(verifier.as_bytes())
}

/// RFC 9449 §10 / KB-OP6 / KB-RF2: a grant bound to a key needs a proof by that key. A missing
/// proof is `invalid_dpop_proof`; a proof by another key is `invalid_grant` (the grant is
/// bound elsewhere, key-binding.md §10.2).
pub(crate) fn check_bound(
    proof: Option<&VerifiedProof>,
    bound: Option<&str>,
) -> Result<(), OpError> {
    match (bound, proof) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(OpError::invalid_dpop_proof(
            "this grant is bound to a DPoP key: send a DPoP proof signed by that key",
        )),
        (Some(b), Some(p)) if p.jkt.as_str() == b => Ok(()),
        (Some(b), Some(p)) => Err(OpError::invalid_grant(format!(
            "DPoP proof key {} is not the key this grant is bound to ({b})",
            p.jkt
        ))),
    }
}

/// Before a single-use code (authorization or device code) is consumed: the proof is by the
/// key the code is bound to (`dpop_jkt`), and under Key Binding it commits to this code
/// (`c_s256`, or `c_hash` on draft 00). The commitment is required for `bound_key` grants and
/// checked whenever present. Fail closed: a `bound_key` grant never completes without it.
pub(crate) fn check_code_proof(
    proof: Option<&VerifiedProof>,
    dpop_jkt: Option<&str>,
    bound_key: bool,
    code: CodeBinding<'_>,
) -> Result<(), OpError> {
    check_bound(proof, dpop_jkt)?;
    match proof {
        Some(p) if bound_key || p.claims.contains_key(code.profile.code_claim()) => {
            dpop::check_code_binding(&p.claims, code)
                .map_err(|e| OpError::invalid_dpop_proof(e.to_string()))
        }
        None if bound_key => Err(OpError::invalid_dpop_proof(
            "bound_key requires a DPoP proof",
        )),
        _ => Ok(()),
    }
}

impl Provider {
    /// The token endpoint.
    pub async fn token(&self, facts: TokenRequestFacts<'_>) -> Result<TokenSuccess, OpError> {
        let form = facts.form;
        // 1. client authentication
        let client = self
            .authenticate_client(
                ClientCredentials {
                    authorization: facts.authorization,
                },
                form,
            )
            .await?;
        match form.require("grant_type")? {
            "authorization_code" => self.code_grant(&client, facts).await,
            "refresh_token" => self.refresh_grant(&client, facts).await,
            keybound_proto::wire::grant_type::DEVICE_CODE => self.device_grant(&client, facts).await,
            other => Err(OpError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type '{other}' is not supported; use authorization_code, refresh_token or urn:ietf:params:oauth:grant-type:device_code"),
            )),
        }
    }

    fn nonce_check(&self, client: &Client) -> Result<NonceCheck<'_>, OpError> {
        if self.config.require_dpop_nonce || client.require_dpop_nonce {
            let src = self
                .config
                .dpop_nonces
                .as_ref()
                .ok_or_else(OpError::server_error)?;
            Ok(NonceCheck::Stateless(src))
        } else {
            Ok(NonceCheck::NotRequired)
        }
    }

    fn next_nonce(&self) -> Option<String> {
        self.config
            .dpop_nonces
            .as_ref()
            .map(|n| n.issue(self.now()))
    }

    /// Verify the proof of a token request (DP-V1…V12, Key Binding `c_s256`) and record its
    /// `jti`. `None` when no proof was sent and the client does not require one; whether the
    /// grant itself needs one is [`check_bound`]'s job once the grant is looked up.
    pub(crate) async fn token_proof(
        &self,
        client: &Client,
        dpop_values: &[&str],
    ) -> Result<Option<VerifiedProof>, OpError> {
        if dpop_values.is_empty() {
            if client.dpop_bound_access_tokens {
                return Err(OpError::invalid_dpop_proof(
                    "this client is registered with dpop_bound_access_tokens: send a DPoP proof",
                ));
            }
            return Ok(None);
        }
        let now = self.now();
        let facts = RequestFacts {
            nonce: self.nonce_check(client)?,
            ..RequestFacts::new("POST", &self.config.endpoints.token, now)
        };
        let proof = match dpop::verify(dpop_values.iter().copied(), &facts, &self.config.dpop) {
            Ok(p) => p,
            Err(e) if e.is_nonce_error() => {
                return Err(OpError {
                    code: ErrorCode::UseDpopNonce,
                    description: e.to_string(),
                    dpop_nonce: self.next_nonce(),
                })
            }
            Err(e) => return Err(OpError::invalid_dpop_proof(e.to_string())),
        };
        let entry = proof.replay_entry(&self.config.dpop);
        if !self
            .store
            .check_and_insert(&entry.key.digest(), entry.expires_at, now)
            .await?
        {
            return Err(OpError::invalid_dpop_proof(
                "DPoP proof replayed: this jti was already used; make a fresh proof for every request",
            ));
        }
        Ok(Some(proof))
    }

    async fn code_grant(
        &self,
        client: &Client,
        facts: TokenRequestFacts<'_>,
    ) -> Result<TokenSuccess, OpError> {
        let form = facts.form;
        let code_value = form.require("code")?;
        let hash = TokenHash::of(code_value);
        let now = self.now();
        // 2. DPoP proof in full: signature, typ, htm, htu, iat, nonce, jti replay
        let proof = self.token_proof(client, facts.dpop).await?;
        // 3. look the code up (still not consuming it)
        let code = match self.store.find_code(&hash, now).await? {
            CodeLookup::Active(c) => c,
            CodeLookup::Redeemed(c) => {
                self.store.revoke_grant(&c.grant_id, now).await?;
                return Err(OpError::invalid_grant(
                    "authorization code was already used; the tokens issued from it are revoked",
                ));
            }
            CodeLookup::Expired => {
                return Err(OpError::invalid_grant("authorization code expired"))
            }
            CodeLookup::NotFound => {
                return Err(OpError::invalid_grant("unknown authorization code"))
            }
        };
        Self::check_code(client, &code, form)?;
        check_code_proof(
            proof.as_ref(),
            code.dpop_jkt.as_deref(),
            code.bound_key,
            CodeBinding {
                code: code_value,
                profile: client.key_binding_profile,
            },
        )?;
        // 4. consume atomically
        match self.store.redeem_code(&hash, now).await? {
            CodeLookup::Active(_) => {}
            CodeLookup::Redeemed(c) => {
                self.store.revoke_grant(&c.grant_id, now).await?;
                return Err(OpError::invalid_grant(
                    "authorization code was already used",
                ));
            }
            _ => {
                return Err(OpError::invalid_grant(
                    "authorization code is no longer valid",
                ))
            }
        }
        let id_token_key = if code.bound_key {
            proof
                .as_ref()
                .map(|p| (client.key_binding_profile, p.jwk.clone()))
        } else {
            None
        };
        let grant = Grant {
            client,
            grant_id: &code.grant_id,
            sub: &code.sub,
            scope: &code.scope,
            auth_time: code.auth_time,
            acr: code.acr.as_deref(),
            amr: &code.amr,
            nonce: code.nonce.as_deref(),
            id_token_key,
        };
        // refresh tokens: bound for Key Binding grants (every client), and for public clients
        // that proved a key (RFC 9449 §5)
        let refresh_jkt = proof.as_ref().and_then(|p| {
            (code.bound_key || client.auth_method == ClientAuthMethod::None).then(|| p.jkt.clone())
        });
        let family = self.random_id();
        self.mint(&grant, proof.as_ref(), refresh_jkt, &family, None)
            .await
    }

    fn check_code(client: &Client, code: &AuthorizationCode, form: &Form) -> Result<(), OpError> {
        if code.client_id != client.client_id {
            return Err(OpError::invalid_grant(
                "authorization code was issued to another client",
            ));
        }
        if form.get("redirect_uri") != Some(code.redirect_uri.as_str()) {
            return Err(OpError::invalid_grant(
                "redirect_uri must equal the one of the authorization request",
            ));
        }
        match (&code.code_challenge, form.get("code_verifier")) {
            (Some(ch), Some(v)) if s256(v) == *ch => Ok(()),
            (Some(_), Some(_)) => Err(OpError::invalid_grant(
                "PKCE: code_verifier does not match the code_challenge",
            )),
            (Some(_), None) => Err(OpError::invalid_grant("PKCE: code_verifier is required")),
            (None, Some(_)) => Err(OpError::invalid_grant(
                "PKCE: code_verifier sent but no code_challenge was",
            )),
            (None, None) => Ok(()),
        }
    }

    async fn refresh_grant(
        &self,
        client: &Client,
        facts: TokenRequestFacts<'_>,
    ) -> Result<TokenSuccess, OpError> {
        let form = facts.form;
        let old = TokenHash::of(form.require("refresh_token")?);
        let now = self.now();
        // DPoP proof in full before the refresh token is touched
        let proof = self.token_proof(client, facts.dpop).await?;
        let rt = match self.store.find_refresh(&old, now).await? {
            RefreshLookup::Active(t) => t,
            RefreshLookup::Reused(t) => {
                self.store.revoke_family(&t.family_id, now).await?;
                return Err(OpError::invalid_grant(
                    "refresh token was already used: reuse detected, the whole token family is revoked",
                ));
            }
            RefreshLookup::Revoked(_) => {
                return Err(OpError::invalid_grant("refresh token was revoked"))
            }
            RefreshLookup::Expired => return Err(OpError::invalid_grant("refresh token expired")),
            RefreshLookup::NotFound => return Err(OpError::invalid_grant("unknown refresh token")),
        };
        if rt.client_id != client.client_id {
            return Err(OpError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        let scope = match form.get("scope") {
            None => rt.scope.clone(),
            Some(s) => {
                if let Some(extra) = s.split(' ').find(|x| !has_scope(&rt.scope, x)) {
                    return Err(OpError::new(
                        ErrorCode::InvalidScope,
                        format!("scope '{extra}' was not granted to this refresh token"),
                    ));
                }
                s.to_owned()
            }
        };
        let bound = rt
            .jkt
            .as_deref()
            .map(Jkt::parse)
            .transpose()
            .map_err(|_| OpError::server_error())?;
        // no c_s256 on refresh (KB-RF1); the proof must be by the bound key (KB-RF2)
        check_bound(proof.as_ref(), bound.as_ref().map(Jkt::as_str))?;
        let family = rt.family_id.clone();
        let new_token = self.random_token();
        let new_record = RefreshToken {
            scope: scope.clone(),
            created_at: now,
            expires_at: now + self.config.refresh_ttl,
            ..rt.clone()
        };
        match self
            .store
            .rotate_refresh(&old, &TokenHash::of(&new_token), &new_record, now)
            .await?
        {
            RefreshLookup::Active(_) => {}
            RefreshLookup::Reused(_) => return Err(OpError::invalid_grant(
                "refresh token was already used: reuse detected, the whole token family is revoked",
            )),
            _ => return Err(OpError::invalid_grant("refresh token is no longer valid")),
        }
        let id_token_key = rt
            .cnf_jwk
            .as_ref()
            .map(|v| PublicJwk::from_value(v).map(|k| (rt.profile, k)))
            .transpose()
            .map_err(|_| OpError::server_error())?;
        let grant = Grant {
            client,
            grant_id: &rt.grant_id,
            sub: &rt.sub,
            scope: &scope,
            auth_time: rt.auth_time,
            acr: rt.acr.as_deref(),
            amr: &rt.amr,
            nonce: None,
            id_token_key,
        };
        self.mint(
            &grant,
            proof.as_ref(),
            rt.jkt
                .as_deref()
                .map(Jkt::parse)
                .transpose()
                .map_err(|_| OpError::server_error())?,
            &family,
            Some(new_token),
        )
        .await
    }

    /// Mint the access token, ID Token and (with `offline_access`) refresh token of a grant.
    pub(crate) async fn mint(
        &self,
        g: &Grant<'_>,
        proof: Option<&VerifiedProof>,
        refresh_jkt: Option<Jkt>,
        family: &str,
        rotated_refresh: Option<String>,
    ) -> Result<TokenSuccess, OpError> {
        let now = self.now();
        let key = self.current_key().await?;
        // access token (RFC 9068), DPoP-bound when a proof was sent (RFC 9449 §6)
        let mut at = json!({
            "iss": self.config.issuer,
            "sub": g.sub,
            "aud": self.config.issuer,
            "client_id": g.client.client_id,
            "scope": g.scope,
            "iat": now,
            "exp": now + self.config.access_token_ttl,
            "jti": self.random_id(),
            "gid": g.grant_id,
            "auth_time": g.auth_time,
        });
        if let Some(p) = proof {
            at["cnf"] = json!({ "jkt": p.jkt });
        }
        let mut h = Map::new();
        h.insert("typ".into(), "at+jwt".into());
        h.insert("kid".into(), key.kid.clone().into());
        let access_token =
            keybound_jose::jws::sign(key.alg, &h, at.to_string().as_bytes(), &key.key)
                .map_err(|_| OpError::server_error())?;
        // ID Token
        let id_token = if has_scope(g.scope, "openid") {
            // only profile and email add claims from the user record; skip the read otherwise
            let user = if has_scope(g.scope, "profile") || has_scope(g.scope, "email") {
                self.store.user(g.sub).await?
            } else {
                None
            };
            let mut b = IdTokenBuilder::new(
                &self.config.issuer,
                g.sub,
                Audience::from(g.client.client_id.as_str()),
                now,
                self.config.id_token_ttl,
            )
            .nonce(g.nonce)
            .auth_time(g.auth_time)
            .at_hash_for(&access_token);
            if !g.amr.is_empty() {
                let amr: Vec<&str> = g.amr.iter().map(String::as_str).collect();
                b = b.amr(&amr);
            }
            if let Some(acr) = g.acr {
                b = b.acr(acr);
            }
            if let Some(u) = &user {
                for (k, v) in scope_claims(g.scope, u) {
                    b = b.claim(&k, v);
                }
            }
            if let Some((profile, jwk)) = &g.id_token_key {
                b = b.bind(*profile, jwk);
            }
            Some(
                b.sign(&key.key, key.alg, Some(&key.kid))
                    .map_err(|_| OpError::server_error())?,
            )
        } else {
            None
        };
        // refresh token
        let refresh_token = if let Some(t) = rotated_refresh {
            Some(t)
        } else if has_scope(g.scope, "offline_access") {
            let token = self.random_token();
            let record = RefreshToken {
                family_id: family.to_owned(),
                grant_id: g.grant_id.to_owned(),
                client_id: g.client.client_id.clone(),
                sub: g.sub.to_owned(),
                scope: g.scope.to_owned(),
                auth_time: g.auth_time,
                acr: g.acr.map(str::to_owned),
                amr: g.amr.to_vec(),
                jkt: refresh_jkt.map(|j| j.to_string()),
                cnf_jwk: g.id_token_key.as_ref().map(|(_, k)| k.to_value()),
                profile: g
                    .id_token_key
                    .as_ref()
                    .map_or(g.client.key_binding_profile, |(p, _)| *p),
                created_at: now,
                expires_at: now + self.config.refresh_ttl,
            };
            self.store
                .insert_refresh(&TokenHash::of(&token), &record)
                .await?;
            Some(token)
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
                scope: Some(g.scope.to_owned()),
                issued_token_type: None,
            },
            dpop_nonce: self.next_nonce(),
        })
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
