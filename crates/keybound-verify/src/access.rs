//! A resource server's check of an RFC 9068 JWT access token with its RFC 9449 DPoP proof: the
//! API at the end of an identity chain (docs/chaining.md) takes the access token its AS issued
//! for an ID-JAG and accepts it only with a fresh proof by the key in `cnf.jkt`.
//!
//! Order: the `Authorization` scheme and token → header `typ` (an ID Token or any other JWT is
//! not an access token, whatever it is signed with) → a trusted `iss` → the rules every
//! resource server shares (`keybound_proto::access_token::validate`: signature by the issuer's
//! keys, `iss`, an accepted `aud`, times with this verifier's leeway, `cnf`) → the binding: a
//! DPoP-bound token (`cnf.jkt`) needs the `DPoP` scheme and a proof by that key over this
//! request with `ath` = the token's hash, through the one DPoP step (nonce, replay) the
//! provider runs too; an unbound token is accepted only when the configuration allows Bearer
//! tokens.

use std::sync::Arc;

use keybound_jose::{Jkt, JwkSet};
use keybound_proto::access_token::{self, AccessTokenChecks, AccessTokenClaims};
use keybound_proto::dpop::RequestFacts;

use crate::{Verifier, VerifyError};

/// An access-token request as received.
#[derive(Debug, Clone, Copy)]
pub struct AccessPresentation<'a> {
    /// the `Authorization` header
    pub authorization: Option<&'a str>,
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
    /// request method
    pub htm: &'a str,
    /// request path (the verifier prefixes its public base URL)
    pub path: &'a str,
}

/// A verified access token.
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    /// issuer (the authorization server)
    pub iss: String,
    /// the End-User
    pub sub: String,
    /// the client the token was issued to
    pub client_id: Option<String>,
    /// granted scopes
    pub scope: Vec<String>,
    /// the key the token is bound to, proven by this request
    pub jkt: Option<Jkt>,
    /// all claims
    pub claims: AccessTokenClaims,
}

impl VerifiedAccess {
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

impl Verifier {
    /// Verify a request carrying an access token (RFC 9068) and its DPoP proof.
    ///
    /// # Example
    ///
    /// An API at `https://api.example` accepts its authorization server's access tokens only
    /// with a proof by the key each is bound to (`cnf.jkt`):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use keybound_jose::key::KeyKind;
    /// use keybound_jose::{JwkSet, PrivateKey};
    /// use keybound_proto::access_token::AccessTokenClaims;
    /// use keybound_proto::cnf::Cnf;
    /// use keybound_proto::dpop::ProofBuilder;
    /// use keybound_proto::idtoken::Audience;
    /// use keybound_verify::{
    ///     AccessPresentation, ManualClock, MemoryReplayCache, StaticJwks, TrustedIssuer,
    ///     Verifier, VerifierConfig,
    /// };
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let now = 1_700_000_000;
    /// let as_key = PrivateKey::generate(KeyKind::Es256).unwrap();
    /// let client_key = PrivateKey::generate(KeyKind::Es256).unwrap();
    /// let token = AccessTokenClaims {
    ///     iss: "https://as.example".into(),
    ///     sub: "alice".into(),
    ///     aud: Audience::One("https://api.example".into()),
    ///     client_id: "app".into(),
    ///     exp: now + 300,
    ///     iat: now,
    ///     jti: "at-1".into(),
    ///     scope: Some("orders.read".into()),
    ///     auth_time: None,
    ///     acr: None,
    ///     amr: None,
    ///     cnf: Some(Cnf::with_jkt(client_key.public_jwk().thumbprint())),
    ///     nbf: None,
    ///     gid: None,
    /// }
    /// .sign(&as_key, as_key.default_alg(), "k1")
    /// .unwrap();
    ///
    /// let api = Verifier::new(
    ///     VerifierConfig::new(
    ///         TrustedIssuer::new("https://as.example", "https://as.example/jwks"),
    ///         vec!["https://api.example".into()],
    ///         "https://api.example",
    ///     ),
    ///     Arc::new(StaticJwks(JwkSet::signing_key(&as_key, "k1"))),
    ///     Arc::new(MemoryReplayCache::new(10_000)),
    ///     Arc::new(ManualClock::new(now)),
    /// );
    /// let proof = ProofBuilder::new("GET", "https://api.example/orders", now, "jti-1")
    ///     .ath_for(&token)
    ///     .sign(&client_key)
    ///     .unwrap();
    /// let authorization = format!("DPoP {token}");
    /// let request = AccessPresentation {
    ///     authorization: Some(&authorization),
    ///     dpop: &[&proof],
    ///     htm: "GET",
    ///     path: "/orders",
    /// };
    /// let access = api.verify_access_token(request).await.unwrap();
    /// assert!(access.has_scope("orders.read"));
    ///
    /// // the token as a Bearer token, or without its proof, is refused
    /// let bearer = format!("Bearer {token}");
    /// let as_bearer = AccessPresentation { authorization: Some(&bearer), dpop: &[], ..request };
    /// assert!(api.verify_access_token(as_bearer).await.is_err());
    /// # }
    /// ```
    pub async fn verify_access_token(
        &self,
        p: AccessPresentation<'_>,
    ) -> Result<VerifiedAccess, VerifyError> {
        let (scheme, token) = p
            .authorization
            .and_then(|a| a.split_once(' '))
            .map(|(s, t)| (s.to_ascii_lowercase(), t.trim()))
            .filter(|(s, t)| (s == "dpop" || s == "bearer") && !t.is_empty())
            .ok_or(VerifyError::MissingAccessToken)?;
        // header typ first: nothing in a JWT of another type is believed, its issuer included
        let decoded = access_token::decode(token).map_err(VerifyError::AccessToken)?;
        let trusted = self
            .config
            .issuers
            .iter()
            .find(|t| t.issuer == decoded.issuer())
            .ok_or_else(|| VerifyError::UntrustedIssuer(decoded.issuer().to_owned()))?;
        let now = self.now();
        let keys: Arc<JwkSet> = self
            .jwks
            .keys_for(
                &trusted.jwks_uri,
                decoded.jws().header().kid.as_deref(),
                now,
            )
            .await?;
        let checks = AccessTokenChecks {
            leeway: self.config.leeway,
            ..AccessTokenChecks::new(&trusted.issuer, &self.config.audiences, now)
        };
        let claims =
            access_token::validate(decoded, &keys, &checks).map_err(VerifyError::AccessToken)?;
        let jkt = claims.jkt().cloned();
        access_token::check_scheme(scheme == "dpop", &claims).map_err(VerifyError::AccessToken)?;
        match &jkt {
            Some(bound) => {
                if p.dpop.is_empty() {
                    return Err(VerifyError::MissingProof);
                }
                let htu = format!("{}{}", self.config.public_base_url, p.path);
                let facts = RequestFacts {
                    presented_token: Some(token),
                    bound_jkt: Some(bound),
                    nonce: self.nonce_check(),
                    ..RequestFacts::new(p.htm, &htu, now)
                };
                self.check_proof(p.dpop, &facts).await?;
            }
            None if !self.config.accept_bearer => return Err(VerifyError::BearerNotAccepted),
            None => {}
        }
        Ok(VerifiedAccess {
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            client_id: Some(claims.client_id.clone()),
            scope: claims.scopes().map(str::to_owned).collect(),
            jkt,
            claims,
        })
    }
}
