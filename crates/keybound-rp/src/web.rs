//! A web RP's sign-in with OpenID Connect Token Bound Authentication: the browser's TLS
//! connection to the RP carries a Token Binding, the OP puts its hash into the ID Token
//! (`cnf.tbh`), and the RP accepts the ID Token only for that same connection's binding.
//!
//! The web server (which sees the user agent's verified Token Binding ID, from keybound's
//! native listener or a trusted terminator) calls [`Rp::begin_web`] when the End-User signs
//! in, answers with a redirect carrying `Include-Referred-Token-Binding-ID: true` (so the
//! browser reveals this binding to the OP, RFC 8473 §5), keeps the [`WebPending`] server-side,
//! and on the callback hands the response parameters and the callback request's binding to
//! [`Rp::finish_web`], which checks, in order: `state`, `iss` (RFC 9207), an error response,
//! that the callback arrived on the binding the sign-in started on, every ID Token (signature,
//! issuer, audience, nonce, times; `c_hash` for the hybrid flow; the token-endpoint ID Token
//! for the code and hybrid flows), and `cnf.tbh` under the downgrade policy ([`check_tbh`]).
//!
//! Unlike [`Rp::begin`] (Key Binding, `bound_key`), these flows bind to the TLS connection,
//! not to a key the RP holds; `bound_key` is never sent (Key Binding ID1 §1.4 refuses it with
//! the implicit and hybrid response types).

use std::collections::HashMap;

use keybound_proto::idtoken::{self, IdTokenChecks, IdTokenClaims};
use keybound_proto::tokbind::TokenBindingId;
use keybound_proto::wire::TokenResponse;

use crate::tokbind::check_tbh;
use crate::{form, HttpRequest, Rp, RpError};

/// The response type a web sign-in uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebFlow {
    /// `code` (query response; the ID Token from the token endpoint)
    Code,
    /// `id_token` (form_post; the ID Token from the authorization endpoint)
    Implicit,
    /// `code id_token` (form_post; both ID Tokens)
    Hybrid,
}

impl WebFlow {
    /// Its `response_type`.
    pub fn response_type(self) -> &'static str {
        match self {
            WebFlow::Code => "code",
            WebFlow::Implicit => "id_token",
            WebFlow::Hybrid => "code id_token",
        }
    }

    /// From a name: `code`, `implicit`, `hybrid`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "code" => Some(WebFlow::Code),
            "implicit" => Some(WebFlow::Implicit),
            "hybrid" => Some(WebFlow::Hybrid),
            _ => None,
        }
    }

    fn has_code(self) -> bool {
        self != WebFlow::Implicit
    }
}

/// A web sign-in in progress. Keep it server-side, keyed by `state`.
#[derive(Debug)]
pub struct WebPending {
    /// where to send the browser (with `Include-Referred-Token-Binding-ID: true`)
    pub url: String,
    /// `state`
    pub state: String,
    /// the flow
    pub flow: WebFlow,
    nonce: String,
    verifier: zeroize::Zeroizing<String>,
    /// the Token Binding ID of the user agent's connection when the sign-in started
    ua_binding: Option<TokenBindingId>,
}

/// A finished web sign-in.
#[derive(Debug, Clone)]
pub struct WebSignIn {
    /// the End-User
    pub sub: String,
    /// the ID Token's `cnf.tbh` (checked), if it had one
    pub tbh: Option<String>,
    /// the claims of the last ID Token checked
    pub claims: IdTokenClaims,
}

impl Rp {
    /// Start a web sign-in with `flow` for a user agent whose connection with this RP has the
    /// Token Binding ID `ua_binding` (None: no Token Binding negotiated).
    /// `fragment` asks for `response_mode=fragment` (the implicit and hybrid flows' default)
    /// instead of `form_post`; the RP then serves a page that posts the fragment to itself.
    pub async fn begin_web(
        &self,
        flow: WebFlow,
        fragment: bool,
        ua_binding: Option<TokenBindingId>,
    ) -> Result<WebPending, RpError> {
        let m = self.discover().await?;
        let state = keybound_jose::random_b64(16);
        let nonce = keybound_jose::random_b64(16);
        let verifier = zeroize::Zeroizing::new(keybound_jose::random_b64(32));
        let scope: Vec<&str> = std::iter::once("openid")
            .chain(
                self.config
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty() && *s != "openid" && *s != "bound_key"),
            )
            .collect();
        let mut url = url::Url::parse(&m.authorization_endpoint)
            .map_err(|e| RpError::decode("authorization_endpoint", e))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", flow.response_type())
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.config.redirect_uri)
                .append_pair("scope", &scope.join(" "))
                .append_pair("state", &state)
                .append_pair("nonce", &nonce);
            if flow.has_code() {
                q.append_pair(
                    "code_challenge",
                    &keybound_jose::sha256_b64(verifier.as_bytes()),
                )
                .append_pair("code_challenge_method", "S256");
            }
            if flow != WebFlow::Code && !fragment {
                q.append_pair("response_mode", "form_post");
            }
        }
        Ok(WebPending {
            url: url.into(),
            state,
            flow,
            nonce,
            verifier,
            ua_binding,
        })
    }

    /// Finish a web sign-in from the authorization response's parameters (the query of the
    /// callback, or the form_post body), received on a connection whose Token Binding ID is
    /// `current_binding`.
    pub async fn finish_web(
        &self,
        pending: WebPending,
        params: &HashMap<String, String>,
        current_binding: Option<&TokenBindingId>,
    ) -> Result<WebSignIn, RpError> {
        self.check_response(&pending.state, params)?;
        // The binding recorded at sign-in is the one the ID Token must name; the callback must
        // come over that same binding (token-binding.md §7.2).
        if current_binding != pending.ua_binding.as_ref() {
            return Err(RpError::NotBound(
                "the callback arrived with another Token Binding than the sign-in started with: refusing it".into(),
            ));
        }
        let op_supports = self.discover().await?.supports_token_bound_id_tokens();
        let check = |claims: &IdTokenClaims| {
            let tbh = claims.cnf.as_ref().and_then(|c| c.tbh.as_deref());
            check_tbh(
                tbh,
                pending.ua_binding.as_ref(),
                op_supports,
                self.config.tb_policy,
            )
        };
        let mut front = None;
        if pending.flow != WebFlow::Code {
            let id_token = params
                .get("id_token")
                .ok_or_else(|| RpError::Callback("the response has no id_token".into()))?;
            let validated = self.check_web_id_token(id_token, &pending.nonce).await?;
            if pending.flow == WebFlow::Hybrid {
                let code = params
                    .get("code")
                    .ok_or_else(|| RpError::Callback("the response has no code".into()))?;
                check_c_hash(&validated, code)?;
            }
            check(&validated.claims)?;
            front = Some(validated.claims);
        }
        if !pending.flow.has_code() {
            let claims = front.ok_or_else(|| RpError::Callback("no ID Token".into()))?;
            return Ok(WebSignIn {
                sub: claims.sub.clone(),
                tbh: claims.cnf.as_ref().and_then(|c| c.tbh.clone()),
                claims,
            });
        }
        let code = params
            .get("code")
            .ok_or_else(|| RpError::Callback("the response has no code".into()))?;
        let t = self.plain_code_exchange(code, &pending.verifier).await?;
        let id_token = t
            .id_token
            .ok_or_else(|| RpError::Token("the token response has no id_token".into()))?;
        let claims = self
            .check_web_id_token(&id_token, &pending.nonce)
            .await?
            .claims;
        check_same_end_user(front.as_ref(), &claims)?;
        check(&claims)?;
        Ok(WebSignIn {
            sub: claims.sub.clone(),
            tbh: claims.cnf.as_ref().and_then(|c| c.tbh.clone()),
            claims,
        })
    }

    /// Signature, issuer, audience, times and nonce of an ID Token (not key-bound).
    async fn check_web_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<idtoken::ValidatedIdToken, RpError> {
        let auds = [self.config.client_id.clone()];
        let now = self.clock.now();
        let checks = IdTokenChecks {
            nonce: Some(nonce),
            ..IdTokenChecks::new(&self.config.issuer, &auds, now)
        };
        let mut keys = self.jwks(false).await?;
        let mut result = idtoken::validate(id_token, &keys, &checks);
        if matches!(result, Err(keybound_proto::Error::IdTokenUnknownKid(_))) {
            keys = self.jwks(true).await?;
            result = idtoken::validate(id_token, &keys, &checks);
        }
        result.map_err(RpError::IdToken)
    }

    /// The code flow's token request without DPoP (the binding is Token Binding's).
    async fn plain_code_exchange(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<TokenResponse, RpError> {
        let m = self.discover().await?;
        let mut body = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let mut req = HttpRequest::post_form(&m.token_endpoint, form(&body));
        if let Some(a) = self.auth_header() {
            req = req.header("Authorization", &a);
        }
        let r = self.transport.send(req).await?;
        Self::token_response(&r)
    }
}

/// OIDC Core 3.3.3.6: in the hybrid flow the token endpoint's ID Token names the End-User the
/// authorization endpoint's did.
fn check_same_end_user(front: Option<&IdTokenClaims>, back: &IdTokenClaims) -> Result<(), RpError> {
    match front {
        Some(f) if f.sub != back.sub => Err(RpError::Token(
            "the token endpoint's ID Token names another End-User (OIDC Core 3.3.3.6)".into(),
        )),
        _ => Ok(()),
    }
}

/// OIDC Core 3.3.2.11: the hybrid flow's ID Token carries `c_hash` of the code, made with the
/// hash of the ID Token's own `alg` (SHA-384 for ES384, SHA-512 for EdDSA, …).
fn check_c_hash(validated: &idtoken::ValidatedIdToken, code: &str) -> Result<(), RpError> {
    let expected = keybound_proto::keybinding::oidc_token_hash(validated.alg, code);
    if validated.claims.c_hash.as_deref() == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(RpError::Callback(
            "the ID Token's c_hash does not match the code (OIDC Core 3.3.2.11)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keybound_jose::{Algorithm, JwkSet};
    use keybound_proto::idtoken::{Audience, IdTokenBuilder, IdTokenChecks};

    /// OIDC Core 3.3.2.11 (issue 22 item 4): `c_hash` with the hash of the ID Token's `alg`
    /// — an ES384 or EdDSA ID Token's `c_hash` is not SHA-256's, and the RP checked only that;
    /// a `c_hash` of another code and (3.3.3.6) a token-endpoint ID Token about another
    /// End-User are refused.
    #[test]
    fn oidc_core_3_3_hybrid_c_hash_by_alg_and_one_end_user() {
        let code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";
        for (key, alg) in [
            (keybound_testkit::keys::es256_a(), Algorithm::ES256),
            (keybound_testkit::keys::es384(), Algorithm::ES384),
            (keybound_testkit::keys::ed25519(), Algorithm::EdDSA),
        ] {
            let jwt = IdTokenBuilder::new(
                "https://op.example",
                "alice",
                Audience::from("app"),
                1_700_000_000,
                300,
            )
            .nonce(Some("n"))
            .c_hash_for(code)
            .sign(&key, alg, Some("k"))
            .unwrap();
            let keys = JwkSet::signing_key(&key, "k");
            let auds = ["app".to_owned()];
            let checks = IdTokenChecks::new("https://op.example", &auds, 1_700_000_010);
            let v = idtoken::validate(&jwt, &keys, &checks).unwrap();
            assert!(check_c_hash(&v, code).is_ok(), "{alg:?}");
            assert!(check_c_hash(&v, "another-code").is_err(), "{alg:?}");
            let sha256_half = keybound_proto::keybinding::oidc_half_hash(code);
            // OIDC Core 3.3.3.6: the token endpoint's ID Token is about the same End-User
            let mut other = v.claims.clone();
            assert!(check_same_end_user(Some(&v.claims), &other).is_ok());
            assert!(check_same_end_user(None, &other).is_ok());
            other.sub = "mallory".into();
            assert!(matches!(
                check_same_end_user(Some(&v.claims), &other),
                Err(RpError::Token(m)) if m.contains("another End-User")
            ));
            assert_eq!(
                v.claims.c_hash.as_deref() == Some(sha256_half.as_str()),
                alg == Algorithm::ES256,
                "{alg:?}"
            );
        }
    }
}
