//! # keybound-rp
//!
//! The RP authenticating component: it runs the OpenID Connect code flow with Key Binding,
//! keeps the private key, checks that it really got a key-bound ID Token, and makes
//! presentations to consuming components.
//!
//! - [`Rp::begin`] makes a fresh key pair per binding (ES256 default), PKCE S256, `state`,
//!   `nonce`, and an authorization URL with `bound_key` and `dpop_jkt`;
//! - [`Rp::callback`] checks `state` and `iss` (RFC 9207) and surfaces OAuth errors;
//! - [`Rp::exchange`] sends the token request with a DPoP proof carrying `c_s256` (or draft-00
//!   `c_hash`), retries once on `use_dpop_nonce`, and validates the ID Token (signature via the
//!   issuer's JWKS, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`, `typ`, `thumbprint(cnf.jwk) ==
//!   dpop_jkt`). An unbound answer to a `bound_key` request is [`RpError::NotBound`] unless the
//!   caller opted out, in which case the [`Session`] says it is unbound;
//! - [`Rp::refresh`] uses the same key and checks `cnf` did not change; [`Rp::userinfo`] uses
//!   DPoP; [`Session`] saves to a 0600 file; [`Session::present_http`] and
//!   [`Session::present_p2p`] build presentations (docs/presentation.md).
//!
//! All network I/O goes through the small [`Transport`] trait ([`ReqwestTransport`] by
//! default), so the logic can be tested without sockets.
//!
//! Start from [`Rp::begin`]'s example (a whole sign-in, a presentation and a refresh);
//! `examples/web-rp` in the repository is a web app built on this crate.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `http` | yes | [`ReqwestTransport`]: reqwest with rustls, no redirects followed |

#![deny(missing_docs)]

pub mod browser;
mod device;
mod error;
mod session;
pub mod tokbind;
mod transport;
pub mod web;

use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;

use keybound_jose::key::KeyKind;
use keybound_jose::{JwkSet, PrivateKey};
use keybound_proto::dpop::ProofBuilder;
use keybound_proto::idtoken::{self, BindingRequirement, IdTokenChecks};
use keybound_proto::keybinding::{Profile, TYP_DPOP_ID_TOKEN, TYP_ID_TOKEN_CNF};
use keybound_proto::wire::{ErrorResponse, ProviderMetadata, TokenResponse};

use serde_json::Value;

pub use device::{DeviceFlow, DevicePoll};
pub use error::RpError;
pub use keybound_jose::Secret;
pub use keybound_proto::wire::StepUp;
/// Where the RP takes the time from (implement it over the system clock; tests pass a manual one).
pub use keybound_proto::Clock;
pub use session::{save_private, Session};
#[cfg(feature = "http")]
pub use transport::ReqwestTransport;
pub use transport::{HttpRequest, HttpResponse, Transport};

/// An ID-JAG obtained by token exchange, to redeem at `audience` with the session's key.
#[derive(Clone)]
pub struct IdJag {
    /// the ID-JAG (a JWT grant: a secret while it lives)
    pub token: String,
    /// the resource AS it is addressed to
    pub audience: String,
    /// lifetime in seconds, as the OP said
    pub expires_in: Option<u64>,
    /// granted scope, when the OP said
    pub scope: Option<String>,
    /// the key it is bound to (`cnf.jkt`)
    pub jkt: Option<keybound_jose::Jkt>,
}

impl std::fmt::Debug for IdJag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdJag")
            .field("audience", &self.audience)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

/// How the RP is registered at the OP.
///
/// Made with [`RpConfig::new`] and adjusted with the `with_*` methods (the struct is
/// `#[non_exhaustive]`, so new settings are not breaking changes):
///
/// ```
/// use keybound_rp::RpConfig;
///
/// let config = RpConfig::new("https://op.example", "my-app", "https://app.example/callback")
///     .with_client_secret("s3cret".into())
///     .with_scope("openid profile");
/// assert_eq!(config.scope, "openid profile");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RpConfig {
    /// issuer identifier
    pub issuer: String,
    /// client id
    pub client_id: String,
    /// client secret (HTTP Basic) for confidential clients; never shown in `Debug`
    pub client_secret: Option<Secret>,
    /// private key for `private_key_jwt` (RFC 7523 §2.2) instead of a secret: each token
    /// request carries a fresh assertion signed by it (audience: the issuer)
    pub client_key: Option<Arc<PrivateKey>>,
    /// registered redirect URI
    pub redirect_uri: String,
    /// scopes; `openid` and `bound_key` are added when missing
    pub scope: String,
    /// Key Binding profile
    pub profile: Profile,
    /// refuse an ID Token that is not bound (default); `false` reports it in the session
    pub require_binding: bool,
    /// key type for new bindings
    pub key_kind: KeyKind,
    /// Token Bound Authentication's downgrade policy for web sign-ins ([`web`])
    pub tb_policy: tokbind::TbPolicy,
}

impl RpConfig {
    /// Defaults: `openid bound_key`, current profile, binding required, ES256.
    pub fn new(issuer: &str, client_id: &str, redirect_uri: &str) -> Self {
        RpConfig {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: None,
            client_key: None,
            redirect_uri: redirect_uri.to_owned(),
            scope: "openid bound_key".to_owned(),
            profile: Profile::KeyBinding,
            require_binding: true,
            key_kind: KeyKind::Es256,
            tb_policy: tokbind::TbPolicy::IfSupported,
        }
    }

    /// Authenticate to the token endpoint with this client secret (HTTP Basic).
    #[must_use]
    pub fn with_client_secret(mut self, secret: Secret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Authenticate to the token endpoint with `private_key_jwt` signed by this key.
    #[must_use]
    pub fn with_client_key(mut self, key: Arc<PrivateKey>) -> Self {
        self.client_key = Some(key);
        self
    }

    /// The scopes to ask for (`openid` and `bound_key` are added when missing).
    #[must_use]
    pub fn with_scope(mut self, scope: &str) -> Self {
        scope.clone_into(&mut self.scope);
        self
    }

    /// The Key Binding profile (the current draft by default; draft-00 behind this switch).
    #[must_use]
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Whether an unbound ID Token is refused (`true`, the default) or reported in the
    /// [`Session`].
    #[must_use]
    pub fn with_binding_required(mut self, required: bool) -> Self {
        self.require_binding = required;
        self
    }

    /// The key type for new bindings (ES256 by default).
    #[must_use]
    pub fn with_key_kind(mut self, kind: KeyKind) -> Self {
        self.key_kind = kind;
        self
    }

    /// Token Bound Authentication's downgrade policy for web sign-ins.
    #[must_use]
    pub fn with_tb_policy(mut self, policy: tokbind::TbPolicy) -> Self {
        self.tb_policy = policy;
        self
    }

    pub(crate) fn scope(&self) -> String {
        let mut s: Vec<&str> = self.scope.split(' ').filter(|x| !x.is_empty()).collect();
        for needed in ["openid", "bound_key"] {
            if !s.contains(&needed) {
                s.insert(0, needed);
            }
        }
        s.join(" ")
    }
}

/// An authorization in progress: what the callback and the token request need. Keep it
/// server-side (it holds the private key and the PKCE verifier).
#[derive(Debug)]
pub struct PendingAuth {
    /// the URL to send the browser to
    pub url: String,
    /// `state`
    pub state: String,
    /// `nonce`
    pub nonce: String,
    verifier: zeroize::Zeroizing<String>,
    key: PrivateKey,
    /// the sign-in asked for (RFC 9470 step-up), checked in the ID Token
    step_up: Option<StepUp>,
}

impl PendingAuth {
    /// The thumbprint sent as `dpop_jkt`.
    pub fn jkt(&self) -> keybound_jose::Jkt {
        self.key.public_jwk().thumbprint()
    }
}

/// The authenticating component: one per client registration, shared by all sign-ins (it
/// caches the OP's discovery document, keys and DPoP nonces). [`Rp::begin`]'s example walks
/// through a whole sign-in, a presentation and a refresh.
pub struct Rp {
    pub(crate) config: RpConfig,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    metadata: Mutex<Option<(ProviderMetadata, u64)>>,
    jwks: Mutex<Option<(Arc<JwkSet>, u64)>>,
    /// the last `DPoP-Nonce` each server (by origin) sent, on any response (RFC 9449 §8.2)
    nonces: Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for Rp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rp")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

const CACHE_TTL: u64 = 300;

pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(pairs)
        .unwrap_or_default()
        .into_bytes()
}

impl Rp {
    /// An RP over `transport` and `clock`.
    pub fn new(config: RpConfig, transport: Arc<dyn Transport>, clock: Arc<dyn Clock>) -> Self {
        Rp {
            config,
            transport,
            clock,
            metadata: Mutex::new(None),
            jwks: Mutex::new(None),
            nonces: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RpConfig {
        &self.config
    }

    /// The OP's discovery document (cached for 5 minutes).
    pub async fn discover(&self) -> Result<ProviderMetadata, RpError> {
        let now = self.clock.now();
        if let Some((m, at)) = self
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            if now < at + CACHE_TTL {
                return Ok(m);
            }
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let r = self.transport.send(HttpRequest::get(&url)).await?;
        if r.status != 200 {
            return Err(RpError::Discovery(format!("{url}: HTTP {}", r.status)));
        }
        let m: ProviderMetadata = serde_json::from_slice(&r.body)
            .map_err(|e| RpError::decode(format!("discovery document at {url}"), e))?;
        if m.issuer != self.config.issuer {
            return Err(RpError::Discovery(format!(
                "discovery issuer '{}' differs from the configured '{}'",
                m.issuer, self.config.issuer
            )));
        }
        *self.metadata.lock().unwrap_or_else(PoisonError::into_inner) = Some((m.clone(), now));
        Ok(m)
    }

    async fn jwks(&self, force: bool) -> Result<Arc<JwkSet>, RpError> {
        let now = self.clock.now();
        if !force {
            if let Some((k, at)) = self
                .jwks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                if now < at + CACHE_TTL {
                    return Ok(k);
                }
            }
        }
        let m = self.discover().await?;
        let r = self.transport.send(HttpRequest::get(&m.jwks_uri)).await?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| RpError::decode(format!("JWKS at {}", m.jwks_uri), e))?;
        let set = Arc::new(
            JwkSet::from_value(&v)
                .map_err(|e| RpError::decode(format!("JWKS at {}", m.jwks_uri), e))?,
        );
        *self.jwks.lock().unwrap_or_else(PoisonError::into_inner) = Some((set.clone(), now));
        Ok(set)
    }

    /// Start an authentication: a fresh key pair, PKCE, `state`, `nonce`, and the URL.
    ///
    /// # Example
    ///
    /// Sign in at `keybound serve --demo` as its client `demo-public` so that the ID Token is
    /// bound to a key only this program holds, present it to an API, and refresh it. A web app
    /// sends the browser to `pending.url` and gets the redirect back at its callback (see
    /// `examples/web-rp`); here keybound-rp's headless browser signs in as the demo user. (As
    /// a doctest it runs against keybound's OP in-process, on loopback.)
    ///
    /// ```
    /// use std::sync::Arc;
    /// use keybound_rp::browser::Browser;
    /// use keybound_rp::{Clock, HttpRequest, ReqwestTransport, Rp, RpConfig};
    ///
    /// struct SystemClock;
    /// impl Clock for SystemClock {
    ///     # #[allow(clippy::disallowed_methods)]
    ///     fn now(&self) -> u64 {
    ///         std::time::SystemTime::now()
    ///             .duration_since(std::time::UNIX_EPOCH)
    ///             .map_or(0, |d| d.as_secs())
    ///     }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let op = keybound_testkit::op::OpBuilder::new()
    /// #     .clock(Arc::new(keybound_verify::SystemClock))
    /// #     .client(keybound_store::Client {
    /// #         redirect_uris: vec!["http://127.0.0.1:8081/callback".into()],
    /// #         ..keybound_testkit::op::public_client("demo-public")
    /// #     })
    /// #     .serve()
    /// #     .await;
    /// # let (issuer, user, password) = (op.issuer.as_str(), "alice", "wonderland");
    /// // `keybound serve --demo`: issuer "http://127.0.0.1:8080", user "demo" and the password
    /// // it printed
    /// let rp = Rp::new(
    ///     RpConfig::new(issuer, "demo-public", "http://127.0.0.1:8081/callback")
    ///         .with_scope("openid profile offline_access"),
    ///     Arc::new(ReqwestTransport::new()?),
    ///     Arc::new(SystemClock),
    /// );
    /// // 1. a fresh key pair, PKCE, state and nonce; keep `pending` (it holds the private key)
    /// let pending = rp.begin().await?;
    /// // 2. the End-User signs in at pending.url and comes back with a code
    /// let back = Browser::new(ReqwestTransport::new()?)
    ///     .sign_in(&pending.url, None, user, password)
    ///     .await?;
    /// // 3. check state and iss (RFC 9207), take the code
    /// let code = rp.callback(&pending, &back)?;
    /// // 4. the token request with a DPoP proof carrying c_s256; the ID Token must be bound to
    /// //    this key (thumbprint(cnf.jwk) == dpop_jkt), else RpError::NotBound
    /// let mut session = rp.exchange(pending, &code).await?;
    /// assert!(session.bound);
    /// // present it: the ID-Token and DPoP headers of one request to an API
    /// let headers = session.present_http("GET", "https://api.example/orders", SystemClock.now(), None)?;
    /// assert_eq!(headers.len(), 2);
    /// // later: new tokens, the same key and the same cnf
    /// let before = session.id_token.clone();
    /// rp.refresh(&mut session).await?;
    /// assert_ne!(session.id_token, before);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn begin(&self) -> Result<PendingAuth, RpError> {
        self.begin_with(None).await
    }

    /// Start an authentication that meets what a resource demanded (RFC 9470): its
    /// `insufficient_user_authentication` challenge, read by
    /// [`StepUp::from_challenge`], gives the `acr_values` and `max_age` sent to the OP; the ID
    /// Token that comes back must say an `acr` among them and an `auth_time` within `max_age`
    /// (OIDC Core 3.1.3.7 steps 12–13), else [`Rp::exchange`] refuses it.
    pub async fn begin_step_up(&self, step_up: &StepUp) -> Result<PendingAuth, RpError> {
        self.begin_with(Some(step_up)).await
    }

    async fn begin_with(&self, step_up: Option<&StepUp>) -> Result<PendingAuth, RpError> {
        let m = self.discover().await?;
        // An OP that does not list bound_key may still honour it (KB-D1 is a SHOULD); the ID
        // Token is what is checked.
        let key = PrivateKey::generate(self.config.key_kind).map_err(RpError::Key)?;
        let verifier = zeroize::Zeroizing::new(keybound_jose::random_b64(32));
        let state = keybound_jose::random_b64(16);
        let nonce = keybound_jose::random_b64(16);
        let challenge = keybound_jose::sha256_b64(verifier.as_bytes());
        let jkt = key.public_jwk().thumbprint();
        let mut url = url::Url::parse(&m.authorization_endpoint)
            .map_err(|e| RpError::decode("authorization_endpoint", e))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &self.config.scope())
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("dpop_jkt", jkt.as_str());
        if let Some(s) = step_up {
            url.query_pairs_mut().extend_pairs(s.authorization_params());
        }
        Ok(PendingAuth {
            url: url.into(),
            state,
            nonce,
            verifier,
            key,
            step_up: step_up.cloned(),
        })
    }

    /// Check the redirect back: `state`, `iss` (RFC 9207), OAuth errors. Returns the code.
    ///
    /// # Example
    ///
    /// A web app's callback handler, with the pending sign-in it kept under `state` and the
    /// query the browser came back with:
    ///
    /// ```no_run
    /// # use keybound_rp::{PendingAuth, Rp, RpError, Session};
    /// # async fn handler(rp: &Rp, pending: PendingAuth, query: &str) -> Result<Session, RpError> {
    /// let back = format!("{}?{query}", rp.config().redirect_uri);
    /// // this sign-in's state, this OP's iss, else the OP's error (RpError::Op)
    /// let code = rp.callback(&pending, &back)?;
    /// let session = rp.exchange(pending, &code).await?;
    /// # Ok(session)
    /// # }
    /// ```
    pub fn callback(&self, pending: &PendingAuth, callback_url: &str) -> Result<String, RpError> {
        let u = url::Url::parse(callback_url)
            .map_err(|e| RpError::Callback(format!("not a URL: {e}")))?;
        let q: std::collections::HashMap<String, String> = u.query_pairs().into_owned().collect();
        self.check_response(&pending.state, &q)?;
        q.get("code")
            .cloned()
            .ok_or_else(|| RpError::Callback("the response has no code".into()))
    }

    /// The checks every authorization response gets, in order: `state` is this sign-in's, `iss`
    /// is this OP (RFC 9207, against mix-up), and it is not an OAuth error.
    pub(crate) fn check_response(
        &self,
        state: &str,
        params: &std::collections::HashMap<String, String>,
    ) -> Result<(), RpError> {
        if params.get("state").map(String::as_str) != Some(state) {
            return Err(RpError::Callback(
                "state does not match this authentication (CSRF?)".into(),
            ));
        }
        match params.get("iss") {
            Some(i) if *i == self.config.issuer => {}
            Some(i) => {
                return Err(RpError::Callback(format!(
                    "iss '{i}' is not the OP this request went to (mix-up?)"
                )))
            }
            None => {
                return Err(RpError::Callback(
                    "the response has no iss (RFC 9207)".into(),
                ))
            }
        }
        if let Some(e) = params.get("error") {
            return Err(RpError::Op(ErrorResponse::new(
                serde_json::from_value(Value::String(e.clone()))
                    .unwrap_or(keybound_proto::wire::ErrorCode::ServerError),
                params.get("error_description").cloned().unwrap_or_default(),
            )));
        }
        Ok(())
    }

    /// A token endpoint's answer: the tokens on 200, else its OAuth error.
    pub(crate) fn token_response(r: &HttpResponse) -> Result<TokenResponse, RpError> {
        if r.status == 200 {
            return serde_json::from_slice(&r.body)
                .map_err(|e| RpError::decode("token response", e));
        }
        let err: ErrorResponse = serde_json::from_slice(&r.body)
            .map_err(|_| RpError::Token(format!("token endpoint answered HTTP {}", r.status)))?;
        Err(RpError::Op(err))
    }

    pub(crate) fn auth_header(&self) -> Option<String> {
        self.config
            .client_secret
            .as_ref()
            .map(|s| basic_auth(&self.config.client_id, s.expose()))
    }

    /// A fresh `private_key_jwt` assertion (RFC 7523 §3, audience the issuer as rfc7523bis
    /// asks), when the client authenticates with a key.
    fn client_assertion(&self) -> Result<Option<String>, RpError> {
        let Some(key) = &self.config.client_key else {
            return Ok(None);
        };
        let now = self.clock.now();
        let id = &self.config.client_id;
        let claims = serde_json::json!({
            "iss": id, "sub": id, "aud": self.config.issuer,
            "iat": now, "exp": now + 60, "jti": keybound_jose::random_b64(16),
        });
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "JWT".into());
        header.insert("kid".into(), key.public_jwk().thumbprint().as_str().into());
        keybound_jose::jws::sign(
            key.default_alg(),
            &header,
            claims.to_string().as_bytes(),
            key,
        )
        .map(Some)
        .map_err(RpError::Key)
    }

    /// The server a nonce belongs to: the origin of `url` (nonces are per server, RFC 9449 §8).
    fn origin(url: &str) -> String {
        url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.origin().ascii_serialization())
    }

    fn nonce_for(&self, url: &str) -> Option<String> {
        self.nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&Self::origin(url))
            .cloned()
    }

    /// Keep the `DPoP-Nonce` of a response, successful or not: the client must use it from
    /// then on (RFC 9449 §8.2).
    pub(crate) fn remember_nonce(&self, url: &str, r: &HttpResponse) {
        if let Some(n) = r.header("dpop-nonce") {
            self.use_nonce(url, n);
        }
    }

    /// Send a request carrying a fresh DPoP proof by `key` over `method` `url`, with the
    /// server's latest nonce when we have one. `claims` adds request-specific claims (`ath`,
    /// `c_s256`); `request` builds the HTTP request around the proof. One retry when the server
    /// answers `use_dpop_nonce` (token endpoint: a JSON error; resource: the challenge).
    pub(crate) async fn send_with_proof(
        &self,
        key: &PrivateKey,
        method: &str,
        url: &str,
        claims: impl Fn(ProofBuilder) -> ProofBuilder,
        request: impl Fn(&str) -> HttpRequest,
    ) -> Result<HttpResponse, RpError> {
        let mut retried = false;
        loop {
            let nonce = self.nonce_for(url);
            let mut b = claims(ProofBuilder::new(
                method,
                url,
                self.clock.now(),
                &keybound_jose::random_b64(16),
            ));
            if let Some(n) = &nonce {
                b = b.nonce(n);
            }
            let proof = b.sign(key).map_err(RpError::Proto)?;
            let r = self.transport.send(request(&proof)).await?;
            self.remember_nonce(url, &r);
            let wants_nonce = r.status != 200
                && (r
                    .header("www-authenticate")
                    .is_some_and(|w| w.contains("use_dpop_nonce"))
                    || serde_json::from_slice::<ErrorResponse>(&r.body)
                        .is_ok_and(|e| e.error == keybound_proto::wire::ErrorCode::UseDpopNonce));
            let fresh = self.nonce_for(url);
            if wants_nonce && !retried && fresh.is_some() && fresh != nonce {
                retried = true;
                continue;
            }
            return Ok(r);
        }
    }

    /// POST to the token endpoint with a fresh proof (and the OP's latest nonce).
    pub(crate) async fn token_request(
        &self,
        key: &PrivateKey,
        body: &[(&str, &str)],
        code: Option<&str>,
    ) -> Result<TokenResponse, RpError> {
        let m = self.discover().await?;
        let auth = self.auth_header();
        let assertion = self.client_assertion()?;
        let mut body = body.to_vec();
        if let Some(a) = &assertion {
            body.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
            body.push(("client_assertion", a));
        }
        let body = body.as_slice();
        let r = self
            .send_with_proof(
                key,
                "POST",
                &m.token_endpoint,
                |b| match code {
                    Some(c) => b.code_binding(self.config.profile, c),
                    None => b,
                },
                |proof| {
                    let req =
                        HttpRequest::post_form(&m.token_endpoint, form(body)).header("DPoP", proof);
                    match &auth {
                        Some(a) => req.header("Authorization", a),
                        None => req,
                    }
                },
            )
            .await?;
        Self::token_response(&r)
    }

    /// Exchange the code for tokens and check the ID Token is bound to this key.
    ///
    /// # Example
    ///
    /// What can come back, after [`Rp::callback`] gave the code:
    ///
    /// ```no_run
    /// # use keybound_rp::{PendingAuth, Rp, RpError, Session};
    /// # async fn redeem(rp: &Rp, pending: PendingAuth, code: &str) -> Result<Option<Session>, RpError> {
    /// match rp.exchange(pending, code).await {
    ///     // bound to the key made by begin(): only this app can present it
    ///     Ok(session) => return Ok(Some(session)),
    ///     // the OP ignored bound_key: refused unless RpConfig::with_binding_required(false)
    ///     Err(RpError::NotBound(why)) => eprintln!("not bound: {why}"),
    ///     // the OP's OAuth error, e.g. invalid_grant for a code used twice
    ///     Err(RpError::Op(e)) => eprintln!("refused: {}", e.error.as_str()),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(None)
    /// # }
    /// ```
    pub async fn exchange(&self, pending: PendingAuth, code: &str) -> Result<Session, RpError> {
        let mut body = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let t = self.token_request(&pending.key, &body, Some(code)).await?;
        let id_token = t
            .id_token
            .clone()
            .ok_or_else(|| RpError::Token("the token response has no id_token".into()))?;
        let jkt = pending.jkt();
        let bound = self
            .check_id_token_for(
                &id_token,
                Some(&pending.nonce),
                &jkt,
                pending.step_up.as_ref(),
            )
            .await?;
        if !(t.token_type.eq_ignore_ascii_case("dpop")
            || t.token_type.eq_ignore_ascii_case("bearer"))
        {
            return Err(RpError::Token(format!(
                "unknown token_type '{}'",
                t.token_type
            )));
        }
        Session::from_tokens(&self.config, &pending.key, t, bound, self.clock.now())
    }

    /// Validate an ID Token from the token endpoint; `true` when it is bound to `jkt`.
    pub(crate) async fn check_id_token(
        &self,
        id_token: &str,
        nonce: Option<&str>,
        jkt: &keybound_jose::Jkt,
    ) -> Result<bool, RpError> {
        self.check_id_token_for(id_token, nonce, jkt, None).await
    }

    /// [`Rp::check_id_token`] for a sign-in that asked for `step_up`.
    async fn check_id_token_for(
        &self,
        id_token: &str,
        nonce: Option<&str>,
        jkt: &keybound_jose::Jkt,
        step_up: Option<&StepUp>,
    ) -> Result<bool, RpError> {
        let now = self.clock.now();
        let auds = [self.config.client_id.clone()];
        let typ = keybound_jose::Jws::parse(id_token)
            .ok()
            .and_then(|j| j.header().typ.clone());
        let looks_bound = matches!(typ.as_deref(), Some(TYP_DPOP_ID_TOKEN | TYP_ID_TOKEN_CNF));
        if !looks_bound && self.config.require_binding {
            return Err(RpError::NotBound(format!(
                "the OP did not bind the ID Token: header typ is {typ:?}, expected '{}'",
                self.config.profile.id_token_typ()
            )));
        }
        let mut keys = self.jwks(false).await?;
        let acr_values = step_up
            .map(|s| s.acr_values.as_slice())
            .filter(|v| !v.is_empty());
        let checks = |binding| IdTokenChecks {
            nonce,
            binding,
            acr_values,
            max_age: step_up.and_then(|s| s.max_age),
            ..IdTokenChecks::new(&self.config.issuer, &auds, now)
        };
        let binding = if looks_bound {
            BindingRequirement::Bound {
                expected_jkt: Some(jkt),
                accept_draft00: self.config.profile == Profile::Draft00,
            }
        } else {
            BindingRequirement::Unbound
        };
        let mut result = idtoken::validate(id_token, &keys, &checks(binding));
        if matches!(result, Err(keybound_proto::Error::IdTokenUnknownKid(_))) {
            keys = self.jwks(true).await?;
            result = idtoken::validate(id_token, &keys, &checks(binding));
        }
        match result {
            Ok(_) => Ok(looks_bound),
            Err(e @ keybound_proto::Error::IdTokenCnfMismatch { .. }) => Err(RpError::NotBound(
                format!("the OP bound the ID Token to another key: {e}"),
            )),
            Err(e) => Err(RpError::IdToken(e)),
        }
    }

    /// Refresh with the session's key; the new ID Token must carry the same `cnf`.
    ///
    /// # Example
    ///
    /// A command-line tool refreshes the session it saved:
    ///
    /// ```no_run
    /// # use keybound_rp::{Rp, RpError, Session};
    /// # async fn renew(rp: &Rp) -> Result<(), RpError> {
    /// let path = std::path::Path::new("session.json");
    /// let mut session = Session::load(path)?;
    /// // a proof by the session's key; a new ID Token bound to another key is refused
    /// rp.refresh(&mut session).await?;
    /// session.save(path)?; // mode 0600
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh(&self, session: &mut Session) -> Result<(), RpError> {
        let rt = session
            .refresh_token
            .clone()
            .ok_or_else(|| RpError::Token("the session has no refresh token".into()))?;
        let mut body = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ];
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let key = session.key()?;
        let t = self.token_request(&key, &body, None).await?;
        if let Some(id) = &t.id_token {
            let jkt = key.public_jwk().thumbprint();
            let bound = self.check_id_token(id, None, &jkt).await?;
            if bound != session.bound {
                return Err(RpError::NotBound(
                    "the refreshed ID Token changed its binding (cnf)".into(),
                ));
            }
        }
        session.update(t, self.clock.now());
        Ok(())
    }

    /// Identity chaining: exchange the session's key-bound ID Token at the OP (RFC 8693) for an
    /// ID-JAG addressed to the resource AS `audience`, with a proof by the session's key. Key
    /// Binding ID1 §6: the ID Token itself never leaves the trust boundary; the ID-JAG does,
    /// bound to the same key. An ID-JAG that comes back unbound or bound to another key is
    /// refused ([`RpError::NotBound`]: a silent downgrade), as is any other issued type.
    pub async fn exchange_for_id_jag(
        &self,
        session: &Session,
        audience: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<IdJag, RpError> {
        let request = keybound_proto::wire::TokenExchangeRequest {
            scope: scope.map(str::to_owned),
            resource: resource.map(str::to_owned),
            ..keybound_proto::wire::TokenExchangeRequest::id_jag(&session.id_token, audience)
        };
        let mut body = request.form();
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let key = session.key()?;
        let t = self.token_request(&key, &body, None).await?;
        if t.issued_token_type.as_deref() != Some(keybound_proto::wire::token_type::ID_JAG) {
            return Err(RpError::Token(format!(
                "token exchange issued {:?}, not an ID-JAG",
                t.issued_token_type
            )));
        }
        let jws = keybound_jose::Jws::parse(&t.access_token)
            .map_err(|e| RpError::decode("ID-JAG (not a JWS)", e))?;
        if jws.header().typ.as_deref() != Some(keybound_proto::idjag::TYP_ID_JAG) {
            return Err(RpError::Token(format!(
                "the issued token has typ {:?}, not '{}'",
                jws.header().typ,
                keybound_proto::idjag::TYP_ID_JAG
            )));
        }
        let claims: keybound_proto::idjag::IdJagClaims = jws
            .payload_json()
            .map_err(|e| RpError::decode("ID-JAG claims", e))?;
        let ours = key.public_jwk().thumbprint();
        let bound = claims.cnf.as_ref().and_then(|c| c.jkt.as_ref());
        if session.bound && bound != Some(&ours) {
            return Err(RpError::NotBound(format!(
                "the OP returned an ID-JAG bound to {bound:?}, not to this session's key {ours}: refusing a downgraded grant"
            )));
        }
        Ok(IdJag {
            token: t.access_token,
            audience: audience.to_owned(),
            expires_in: t.expires_in,
            scope: t.scope,
            jkt: bound.cloned(),
        })
    }

    /// Identity chaining at the resource AS this `Rp` is configured for (its issuer, and this
    /// client's id and secret there): redeem `id_jag` with the jwt-bearer grant and a proof by
    /// `key` (the session's key, to which the ID-JAG is bound). A bound ID-JAG must give a
    /// DPoP-bound access token: a Bearer token back is refused as a downgrade.
    pub async fn redeem_id_jag(
        &self,
        key: &PrivateKey,
        id_jag: &IdJag,
    ) -> Result<TokenResponse, RpError> {
        let mut body = vec![
            ("grant_type", keybound_proto::wire::grant_type::JWT_BEARER),
            ("assertion", id_jag.token.as_str()),
        ];
        if self.config.client_secret.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let t = self.token_request(key, &body, None).await?;
        if id_jag.jkt.is_some() && !t.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(RpError::NotBound(format!(
                "the resource AS answered a key-bound ID-JAG with a '{}' access token, not DPoP: refusing the downgrade",
                t.token_type
            )));
        }
        Ok(t)
    }

    /// A request to an API with a DPoP-bound `access_token` and a fresh proof by `key` (`ath`,
    /// the server's nonce when it asks for one).
    pub async fn call_api(
        &self,
        key: &PrivateKey,
        access_token: &str,
        method: &str,
        url: &str,
    ) -> Result<HttpResponse, RpError> {
        let request = HttpRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
        };
        self.send_api(key, access_token, &request).await
    }

    /// [`Rp::call_api`] for any request (a JSON body, conditional headers): the token and a
    /// fresh proof for its method and URL are added.
    pub async fn send_api(
        &self,
        key: &PrivateKey,
        access_token: &str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, RpError> {
        self.send_with_proof(
            key,
            &request.method,
            &request.url,
            |b| b.ath_for(access_token),
            |proof| {
                request
                    .clone()
                    .header("Authorization", &format!("DPoP {access_token}"))
                    .header("DPoP", proof)
            },
        )
        .await
    }

    /// Present the session's key-bound ID Token to a consuming component: `request` with the
    /// `ID-Token` header and a fresh proof by the session's key over its method and URL (`ath`
    /// over the ID Token, docs/presentation.md), retrying once with the service's nonce when
    /// it demands one. [`Session::present_http`] makes the same two headers for a request
    /// sent some other way.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use keybound_rp::{HttpRequest, Rp, RpError, Session};
    /// # async fn call(rp: &Rp, session: &Session) -> Result<(), RpError> {
    /// let r = rp
    ///     .present(session, &HttpRequest::get("https://api.example/hello"))
    ///     .await?;
    /// if r.status == 401 {
    ///     // the API says why in WWW-Authenticate, e.g. insufficient_user_authentication
    ///     eprintln!("{}", r.header("www-authenticate").unwrap_or(""));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn present(
        &self,
        session: &Session,
        request: &HttpRequest,
    ) -> Result<HttpResponse, RpError> {
        session.presentable()?;
        let key = session.key()?;
        let id_token = session.id_token.as_str();
        self.send_with_proof(
            &key,
            &request.method,
            &request.url,
            |b| b.ath_for(id_token),
            |proof| {
                request
                    .clone()
                    .header(keybound_proto::presentation::ID_TOKEN_HEADER, id_token)
                    .header("DPoP", proof)
            },
        )
        .await
    }

    /// Use `nonce` in proofs for `url`'s server from now on: a `DPoP-Nonce` it handed out
    /// earlier (this RP also keeps the nonces of every answer it gets by itself).
    pub fn use_nonce(&self, url: &str, nonce: &str) {
        self.nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Self::origin(url), nonce.to_owned());
    }

    /// RFC 6749 §4.4: an access token for this client itself, bound to `key` (RFC 9449), for
    /// `scope`. A Bearer token back is refused: a client that asked for a bound token must
    /// not use one that is not.
    pub async fn client_credentials(
        &self,
        key: &PrivateKey,
        scope: &str,
    ) -> Result<TokenResponse, RpError> {
        let mut body = vec![("grant_type", "client_credentials"), ("scope", scope)];
        if self.config.client_secret.is_none() && self.config.client_key.is_none() {
            body.push(("client_id", self.config.client_id.as_str()));
        }
        let t = self.token_request(key, &body, None).await?;
        if !t.token_type.eq_ignore_ascii_case("DPoP") {
            return Err(RpError::NotBound(format!(
                "the OP answered with a '{}' access token, not DPoP",
                t.token_type
            )));
        }
        Ok(t)
    }

    /// UserInfo with the DPoP-bound access token.
    pub async fn userinfo(&self, session: &Session) -> Result<Value, RpError> {
        let m = self.discover().await?;
        let url = m
            .userinfo_endpoint
            .ok_or_else(|| RpError::NotSupported("no userinfo_endpoint".into()))?;
        let key = session.key()?;
        let r = self
            .send_with_proof(
                &key,
                "GET",
                &url,
                |b| b.ath_for(&session.access_token),
                |proof| {
                    HttpRequest::get(&url)
                        .header("Authorization", &format!("DPoP {}", session.access_token))
                        .header("DPoP", proof)
                },
            )
            .await?;
        if r.status == 200 {
            return serde_json::from_slice(&r.body)
                .map_err(|e| RpError::decode("userinfo response", e));
        }
        let www = r.header("www-authenticate").unwrap_or("");
        Err(RpError::Token(format!("userinfo: HTTP {} {www}", r.status)))
    }
}

/// `Authorization: Basic` for a client id and secret, each form-encoded first (RFC 6749
/// §2.3.1).
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(client_id),
            enc(secret)
        ))
    )
}

#[cfg(test)]
mod secret_tests {
    /// Issue 22 item 5: the RP's configuration prints whole without its client secret.
    #[test]
    fn rp_config_debug_hides_the_client_secret() {
        let mut c = crate::RpConfig::new("https://op.example", "app", "https://app.example/cb");
        c.client_secret = Some("planted-secret-7f3a".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("planted-secret-7f3a"), "{shown}");
        assert!(shown.contains("client_secret"), "{shown}");
    }
}
