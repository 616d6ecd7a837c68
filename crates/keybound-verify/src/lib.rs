//! # keybound-verify
//!
//! The RP consuming component: it receives a key-bound ID Token from an RP authenticating
//! component and trusts it only together with a fresh proof of possession by the ID Token's
//! `cnf` key (Key Binding KB-S2, KB-S5). It checks, in order:
//!
//! 1. the ID Token itself — a trusted `iss`, a signature by that issuer's JWKS (fetched and
//!    cached per `Cache-Control`, refetched at most once per interval for an unknown `kid`), an
//!    allowed `aud` (a set: one RP may register several client ids), `exp`/`iat` with skew, and
//!    `typ: dpop+id_token` (draft-00 `id_token+cnf` only when enabled) with a public `cnf.jwk`;
//! 2. the presentation — over HTTP an RFC 9449 proof by that key over this request with `ath` =
//!    hash of the ID Token (and the consumer's nonce when required), peer to peer a `kb-pop+jwt`
//!    JWS over this verifier's audience and challenge (docs/presentation.md);
//! 3. the proof's `jti` has not been seen ([`ReplayCache`], bounded, fail closed when full).
//!
//! The result is a [`VerifiedIdentity`] or one precise [`VerifyError`]. A route that needs a
//! stronger or fresher sign-in than the token's asks [`Verifier::check_sign_in`] (RFC 9470
//! step-up, module `step_up`).
//!
//! Start from [`Verifier`]'s example (a presentation accepted, its replay refused), the axum
//! extractors [`axum_support::KeyBound`] and [`axum_support::DpopAccess`], and
//! [`Verifier::verify_access_token`]; `examples/api` in the repository is a whole API.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `http` | yes | [`HttpFetcher`]: JWKS over HTTPS with reqwest (rustls) |
//! | `axum` | yes | [`axum_support`]: extractors and middleware for axum 0.8, step-up layers |
//! | `sqlite` | no | `SqliteReplayCache`: a replay cache in a SQLite file that survives restarts |

#![deny(missing_docs)]

mod access;
#[cfg(feature = "axum")]
pub mod axum_support;
mod error;
mod jwks;
mod replay;
mod step_up;

use std::sync::Arc;

use keybound_jose::{Jkt, JwkSet, PublicJwk};
use keybound_proto::dpop::{self, DpopPolicy, NonceCheck, NonceSource, Refused, RequestFacts};
use keybound_proto::idtoken::{self, BindingRequirement, IdTokenChecks, IdTokenClaims};
use keybound_proto::presentation::{self, P2pChecks};

pub use access::{AccessPresentation, VerifiedAccess};
pub use error::VerifyError;
#[cfg(feature = "http")]
pub use jwks::HttpFetcher;
pub use jwks::{FetchedJwks, JwksCache, JwksFetcher, StaticJwks};
#[cfg(feature = "sqlite")]
pub use replay::SqliteReplayCache;
pub use replay::{MemoryReplayCache, ReplayCache};
pub use step_up::{SignIn, StepUp};

pub use keybound_proto::{Clock, ManualClock};

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the verifier's default clock; tests inject their own
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// An issuer this verifier trusts, and where its keys are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrustedIssuer {
    /// issuer identifier (exact match with `iss`)
    pub issuer: String,
    /// JWKS URL (typically from the issuer's discovery document)
    pub jwks_uri: String,
}

impl TrustedIssuer {
    /// The issuer `issuer` whose keys are at `jwks_uri`.
    pub fn new(issuer: &str, jwks_uri: &str) -> Self {
        TrustedIssuer {
            issuer: issuer.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
        }
    }
}

/// What the consuming component accepts.
///
/// Made with [`VerifierConfig::new`] and adjusted with the `with_*` methods (the struct is
/// `#[non_exhaustive]`, so new settings are not breaking changes).
#[derive(Debug)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// trusted issuers
    pub issuers: Vec<TrustedIssuer>,
    /// accepted audiences: the client ids of the RP whose ID Tokens are presented here, or, for
    /// access tokens, this resource's identifiers (a keybound AS names its issuer)
    pub audiences: Vec<String>,
    /// accept draft-00 `typ: id_token+cnf`
    pub accept_draft00: bool,
    /// clock skew allowed on the ID Token
    pub leeway: u64,
    /// proof acceptance window and algorithms
    pub proof: DpopPolicy,
    /// stateless nonces, when this consumer demands them
    pub nonces: Option<NonceSource>,
    /// externally visible base URL of this service (scheme, host, port), for `htu`
    pub public_base_url: String,
    /// access tokens without `cnf` (Bearer) are accepted too (default: only DPoP-bound ones)
    pub accept_bearer: bool,
}

impl VerifierConfig {
    /// Demand DPoP nonces, from a fresh random secret. Right for a single instance; several
    /// instances behind one name must share a secret (set [`VerifierConfig::nonces`] directly).
    /// Fails closed: if the nonce source cannot be made, this is an error, never a verifier
    /// that silently demands no nonce.
    pub fn with_random_nonces(mut self) -> Result<Self, VerifyError> {
        let secret = keybound_jose::b64::decode(&keybound_jose::random_b64(32))
            .map_err(|e| VerifyError::Config(format!("nonce secret: {e}")))?;
        self.nonces = Some(
            NonceSource::new(&secret, 60, 2)
                .map_err(|e| VerifyError::Config(format!("nonce source: {e}")))?,
        );
        Ok(self)
    }

    /// Trust one more issuer.
    #[must_use]
    pub fn with_issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Accept draft-00 ID Tokens (`typ: id_token+cnf`) as well (off by default).
    #[must_use]
    pub fn with_draft00(mut self, accept: bool) -> Self {
        self.accept_draft00 = accept;
        self
    }

    /// Clock skew allowed on tokens, in seconds (60 by default).
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// The proof acceptance window and algorithms.
    #[must_use]
    pub fn with_proof_policy(mut self, policy: DpopPolicy) -> Self {
        self.proof = policy;
        self
    }

    /// Demand DPoP nonces from this source (share one secret across instances behind one
    /// name).
    #[must_use]
    pub fn with_nonces(mut self, nonces: NonceSource) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Accept access tokens without `cnf` (Bearer) too; off by default, when only DPoP-bound
    /// tokens pass.
    #[must_use]
    pub fn with_bearer(mut self, accept: bool) -> Self {
        self.accept_bearer = accept;
        self
    }

    /// A configuration trusting one issuer for `audiences`, serving at `public_base_url`.
    pub fn new(issuer: TrustedIssuer, audiences: Vec<String>, public_base_url: &str) -> Self {
        VerifierConfig {
            issuers: vec![issuer],
            audiences,
            accept_draft00: false,
            leeway: 60,
            proof: DpopPolicy::default(),
            nonces: None,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            accept_bearer: false,
        }
    }
}

/// Who presented: the validated ID Token and the key it is bound to.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    /// issuer
    pub iss: String,
    /// subject
    pub sub: String,
    /// audiences
    pub aud: Vec<String>,
    /// all claims
    pub claims: IdTokenClaims,
    /// thumbprint of `cnf.jwk`, proven by this presentation
    pub jkt: Jkt,
}

/// An HTTP presentation as received.
#[derive(Debug, Clone, Copy)]
pub struct HttpPresentation<'a> {
    /// the `ID-Token` header
    pub id_token: Option<&'a str>,
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
    /// request method
    pub htm: &'a str,
    /// request path (the verifier prefixes its public base URL)
    pub path: &'a str,
}

/// The consuming component.
///
/// # Example
///
/// An API at `https://api.example` accepts the ID Tokens that `https://op.example` issued to
/// the app `app`, each presented with a DPoP proof over the very request by the key in its
/// `cnf` (here the OP, the app and its key are made up in place; a real verifier fetches the
/// OP's keys with [`HttpFetcher`] and keeps the replay cache for its lifetime):
///
/// ```
/// use std::sync::Arc;
/// use keybound_jose::key::KeyKind;
/// use keybound_jose::{JwkSet, PrivateKey};
/// use keybound_proto::dpop::ProofBuilder;
/// use keybound_proto::idtoken::{Audience, IdTokenBuilder};
/// use keybound_proto::keybinding::Profile;
/// use keybound_verify::{
///     HttpPresentation, ManualClock, MemoryReplayCache, StaticJwks, TrustedIssuer, Verifier,
///     VerifierConfig,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let now = 1_700_000_000;
/// // the OP's signing key, and the key the app holds
/// let op_key = PrivateKey::generate(KeyKind::Es256).unwrap();
/// let app_key = PrivateKey::generate(KeyKind::Es256).unwrap();
/// let id_token = IdTokenBuilder::new("https://op.example", "alice", Audience::One("app".into()), now, 300)
///     .bind(Profile::KeyBinding, app_key.public_jwk())
///     .sign(&op_key, op_key.default_alg(), Some("k1"))
///     .unwrap();
///
/// let verifier = Verifier::new(
///     VerifierConfig::new(
///         TrustedIssuer::new("https://op.example", "https://op.example/jwks"),
///         vec!["app".into()],
///         "https://api.example",
///     ),
///     Arc::new(StaticJwks(JwkSet::signing_key(&op_key, "k1"))),
///     Arc::new(MemoryReplayCache::new(10_000)),
///     Arc::new(ManualClock::new(now)),
/// );
///
/// // the app presents the ID Token with a proof over this request
/// let proof = ProofBuilder::new("GET", "https://api.example/orders", now, "jti-1")
///     .ath_for(&id_token)
///     .sign(&app_key)
///     .unwrap();
/// let request = HttpPresentation {
///     id_token: Some(&id_token),
///     dpop: &[&proof],
///     htm: "GET",
///     path: "/orders",
/// };
/// let who = verifier.verify_http(request).await.unwrap();
/// assert_eq!(who.sub, "alice");
/// assert_eq!(who.jkt, app_key.public_jwk().thumbprint());
///
/// // the same proof again is a replay; the ID Token alone is refused
/// assert!(verifier.verify_http(request).await.is_err());
/// let alone = HttpPresentation { dpop: &[], ..request };
/// assert!(verifier.verify_http(alone).await.is_err());
/// # }
/// ```
pub struct Verifier {
    config: VerifierConfig,
    jwks: JwksCache,
    replay: Arc<dyn ReplayCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.config.issuers)
            .field("audiences", &self.config.audiences)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with its JWKS fetcher, replay cache and clock.
    pub fn new(
        config: VerifierConfig,
        fetcher: Arc<dyn JwksFetcher>,
        replay: Arc<dyn ReplayCache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Verifier {
            config,
            jwks: JwksCache::new(fetcher, 30),
            replay,
            clock,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Current time.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// A nonce to hand out with a `401`, when nonces are configured.
    pub fn fresh_nonce(&self) -> Option<String> {
        self.config.nonces.as_ref().map(|n| n.issue(self.now()))
    }

    /// Validate a key-bound ID Token: issuer, signature, audience, times, `typ`, `cnf.jwk`.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
    ) -> Result<(VerifiedIdentity, PublicJwk), VerifyError> {
        let now = self.now();
        // parse and decode once: `iss` and `kid` choose the keys, the same claims are then
        // validated (trusted only after the signature check)
        let token = idtoken::decode(id_token).map_err(VerifyError::IdToken)?;
        let trusted = self
            .config
            .issuers
            .iter()
            .find(|t| t.issuer == token.issuer())
            .ok_or_else(|| VerifyError::UntrustedIssuer(token.issuer().to_owned()))?;
        let keys: Arc<JwkSet> = self
            .jwks
            .keys_for(&trusted.jwks_uri, token.jws().header().kid.as_deref(), now)
            .await?;
        let checks = IdTokenChecks {
            leeway: self.config.leeway,
            binding: BindingRequirement::Bound {
                expected_jkt: None,
                accept_draft00: self.config.accept_draft00,
            },
            ..IdTokenChecks::new(&trusted.issuer, &self.config.audiences, now)
        };
        let v = idtoken::validate_decoded(token, &keys, &checks).map_err(VerifyError::IdToken)?;
        let (Some(jwk), Some(jkt)) = (v.claims.cnf.as_ref().and_then(|c| c.jwk.clone()), v.jkt)
        else {
            return Err(VerifyError::IdToken(keybound_proto::Error::IdTokenNotBound));
        };
        let identity = VerifiedIdentity {
            iss: v.claims.iss.clone(),
            sub: v.claims.sub.clone(),
            aud: v.claims.aud.as_slice().to_vec(),
            jkt,
            claims: v.claims,
        };
        Ok((identity, jwk))
    }

    /// Verify an HTTP presentation (docs/presentation.md §HTTP).
    pub async fn verify_http(
        &self,
        p: HttpPresentation<'_>,
    ) -> Result<VerifiedIdentity, VerifyError> {
        let id_token = p.id_token.ok_or(VerifyError::MissingIdToken)?;
        if p.dpop.is_empty() {
            return Err(VerifyError::MissingProof);
        }
        let (identity, _) = self.verify_id_token(id_token).await?;
        let now = self.now();
        let htu = format!("{}{}", self.config.public_base_url, p.path);
        let facts = RequestFacts {
            presented_token: Some(id_token),
            bound_jkt: Some(&identity.jkt),
            nonce: self.nonce_check(),
            ..RequestFacts::new(p.htm, &htu, now)
        };
        self.check_proof(p.dpop, &facts).await?;
        Ok(identity)
    }

    /// This verifier's nonce rule: a consumer with nonces demands them; without, a nonce in a
    /// proof cannot be ours (refused as a bad proof, never answered with an empty nonce).
    fn nonce_check(&self) -> NonceCheck<'_> {
        self.config
            .nonces
            .as_ref()
            .map_or(NonceCheck::NotRequired, NonceCheck::Stateless)
    }

    /// The one DPoP step the provider runs too (`keybound_proto::dpop::check`): the proof, the
    /// nonce answer, the replay cache.
    async fn check_proof(
        &self,
        dpop: &[&str],
        facts: &RequestFacts<'_>,
    ) -> Result<(), VerifyError> {
        let remember = |digest: [u8; 32], expires_at| async move {
            self.replay
                .check_and_insert(&digest, expires_at, facts.now)
                .await
        };
        dpop::check(dpop.iter().copied(), facts, &self.config.proof, remember)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                Refused::Proof(e) => VerifyError::Proof(e),
                Refused::Nonce { nonce, .. } => VerifyError::NonceRequired(nonce),
                Refused::Replay => VerifyError::Replay,
                Refused::Store(e) => e,
            })
    }

    /// Verify a peer-to-peer presentation answering `challenge` for this verifier `audience`.
    pub async fn verify_p2p(
        &self,
        id_token: &str,
        presentation: &str,
        audience: &str,
        challenge: &str,
    ) -> Result<VerifiedIdentity, VerifyError> {
        let (identity, jwk) = self.verify_id_token(id_token).await?;
        let now = self.now();
        let checks = P2pChecks {
            audience,
            challenge,
            now,
            max_age: self.config.proof.max_age,
            max_future: self.config.proof.max_future,
        };
        let claims = presentation::p2p_verify(presentation, id_token, &jwk, &checks)
            .map_err(VerifyError::Proof)?;
        let digest = keybound_jose::sha256(
            format!("p2p\0{}\0{audience}\0{}", identity.jkt, claims.jti).as_bytes(),
        );
        self.remember(&digest, claims.iat + self.config.proof.max_age + 1, now)
            .await?;
        Ok(identity)
    }

    async fn remember(
        &self,
        digest: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<(), VerifyError> {
        match self.replay.check_and_insert(digest, expires_at, now).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(VerifyError::Replay),
            Err(e) => Err(e),
        }
    }
}
