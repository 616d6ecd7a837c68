//! # keybound-op
//!
//! The OpenID Provider's decisions, as async functions over the store traits with an injected
//! clock and randomness: validate an authorization request and decide the next interaction
//! (login, consent, issue a code), authenticate clients, run the token endpoint (authorization
//! code and refresh token grants with DPoP and Key Binding), serve userinfo, revocation and
//! introspection. No HTTP types and no SQL here: `keybound-server` turns requests into the
//! fact structs these functions take and their results into responses, and the store crate
//! owns persistence. That split is what lets the same rules run behind axum, in tests with a
//! fixed clock, and (later) on several nodes sharing PostgreSQL.
//!
//! Order of checks at the token endpoint (ARCHITECTURE.md §3.3): client authentication → DPoP
//! proof (signature, `typ`, `htm`, `htu`, `iat`, nonce, `jti` replay) → only then the
//! single-use code or refresh token is consumed, atomically.

pub mod admin;
mod authorize;
mod client_auth;
mod device;
mod error;
pub mod events;
pub mod fapi2;
mod form;
mod grant;
mod keys;
pub mod logout;
pub mod par;
pub mod passkey;
pub mod password;
mod proof;
mod purge;
pub mod refusal;
mod register;
mod request_object;
mod resource;
mod throttle;
pub mod token;

use std::sync::Arc;

use keybound_proto::dpop::{DpopPolicy, NonceSource};
use keybound_store::Store;

pub use authorize::{
    AuthorizationResponse, AuthorizeError, ConsentPrompt, Interaction, LoginPrompt, Prompt,
    RequestedAcr, ResponseMode, ValidatedAuthorization,
};
pub use device::{normalize_user_code, DeviceRequestFacts, USER_CODE_ALPHABET};
pub use error::{Endpoint, OpError, WireError, INTERNAL_DESCRIPTION};
pub use form::{Form, FormRequest};
pub use grant::TokenSuccess;
pub use keys::{KeyRing, RETIRED_KEY_RETENTION};
pub use purge::PurgeReport;
pub use register::check_client;
pub use resource::{Introspection, ResourceRequest};
pub use throttle::ThrottleConfig;
pub use token::{IssuerKeys, TokenRequestFacts};

/// Scopes this OP knows; others are ignored (OIDC Core 3.1.2.1).
pub const SUPPORTED_SCOPES: [&str; 5] =
    ["openid", "profile", "email", "offline_access", "bound_key"];

/// Claims this OP can release.
pub const SUPPORTED_CLAIMS: [&str; 14] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "acr",
    "amr",
    "cnf",
    "name",
    "email",
    "email_verified",
];

pub use keybound_proto::{Clock, ManualClock};

/// The source of unguessable values (codes, tokens, ids).
pub trait Randomness: Send + Sync {
    /// `bytes` random bytes, base64url.
    fn token(&self, bytes: usize) -> String;
}

/// The operating system's CSPRNG (via aws-lc-rs).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandomness;

impl Randomness for OsRandomness {
    fn token(&self, bytes: usize) -> String {
        keybound_jose::random_b64(bytes)
    }
}

/// The OP's endpoint paths, defined once: the server routes them and discovery publishes
/// them from these constants.
pub mod paths {
    /// OpenID Connect Discovery
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    /// authorization endpoint (GET and POST; also receives the login and consent forms)
    pub const AUTHORIZE: &str = "/authorize";
    /// token endpoint
    pub const TOKEN: &str = "/token";
    /// userinfo endpoint
    pub const USERINFO: &str = "/userinfo";
    /// JWK Set
    pub const JWKS: &str = "/jwks";
    /// RFC 7009 revocation
    pub const REVOKE: &str = "/revoke";
    /// RFC 7662 introspection
    pub const INTROSPECT: &str = "/introspect";
    /// liveness and readiness
    pub const HEALTHZ: &str = "/healthz";
    /// Prometheus metrics
    pub const METRICS: &str = "/metrics";
    /// end the browser session at the OP
    pub const LOGOUT: &str = "/logout";
    /// OpenID Connect RP-Initiated Logout 1.0 `end_session_endpoint`
    pub const END_SESSION: &str = "/end_session";
    /// the End-User's account page (passkeys)
    pub const ACCOUNT: &str = "/account";
    /// a passkey ceremony's options (the pages' script asks for them)
    pub const PASSKEY_OPTIONS: &str = "/passkey/options";
    /// Device Bound Session Credentials: registration of the browser's session key
    pub const DBSC_START: &str = "/dbsc/start";
    /// Device Bound Session Credentials: the bound cookie's refresh
    pub const DBSC_REFRESH: &str = "/dbsc/refresh";
    /// Device Bound Session Credentials: whether this browser's session is bound yet (the
    /// page that waits for it asks)
    pub const DBSC_STATUS: &str = "/dbsc/status";
    /// RFC 8628 device authorization endpoint
    pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";
    /// RFC 8628 end-user verification page
    pub const DEVICE: &str = "/device";
    /// RFC 7591 dynamic client registration
    pub const REGISTER: &str = "/register";
    /// RFC 9126 pushed authorization requests
    pub const PAR: &str = "/par";
}

/// Whether `path` is one of [`paths`] (metrics label only known paths, bounding cardinality).
pub fn paths_known(path: &str) -> bool {
    [
        paths::DISCOVERY,
        paths::AUTHORIZE,
        paths::TOKEN,
        paths::USERINFO,
        paths::JWKS,
        paths::REVOKE,
        paths::INTROSPECT,
        paths::HEALTHZ,
        paths::METRICS,
        paths::LOGOUT,
        paths::DEVICE_AUTHORIZATION,
        paths::DEVICE,
        paths::REGISTER,
    ]
    .contains(&path)
}

/// Absolute URLs of the OP's endpoints (the server derives them from the issuer and its paths).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// authorization endpoint
    pub authorization: String,
    /// token endpoint (the `htu` of token-request proofs)
    pub token: String,
    /// userinfo endpoint
    pub userinfo: String,
    /// JWKS
    pub jwks: String,
    /// RFC 7009
    pub revocation: String,
    /// RFC 7662
    pub introspection: String,
    /// RFC 8628 device authorization endpoint
    pub device_authorization: String,
    /// RFC 8628 verification page
    pub device: String,
    /// RFC 7591 registration endpoint
    pub registration: String,
    /// RFC 9126 pushed authorization request endpoint
    pub par: String,
    /// RP-Initiated Logout 1.0 end-session endpoint
    pub end_session: String,
}

/// Provider settings.
#[derive(Debug)]
pub struct OpConfig {
    /// issuer identifier
    pub issuer: String,
    /// endpoint URLs
    pub endpoints: Endpoints,
    /// authorization code lifetime (default 60 s)
    pub code_ttl: u64,
    /// access token lifetime (default 300 s)
    pub access_token_ttl: u64,
    /// ID Token lifetime (default 300 s)
    pub id_token_ttl: u64,
    /// refresh token lifetime (default 30 days)
    pub refresh_ttl: u64,
    /// browser session lifetime (default 8 h)
    pub session_ttl: u64,
    /// DPoP acceptance policy
    pub dpop: DpopPolicy,
    /// stateless DPoP nonces (shared secret across nodes)
    pub dpop_nonces: Option<NonceSource>,
    /// demand a DPoP nonce from every client (else only from clients that ask for it)
    pub require_dpop_nonce: bool,
    /// how long signing keys are cached before re-reading the store (another node may rotate)
    pub key_cache_ttl: u64,
    /// how long a registered client is cached before re-reading the store (default 5 s; 0 reads
    /// the store on every request): a client changed or deleted with `keybound admin` in another
    /// process takes effect after at most this long
    pub client_cache_ttl: u64,
    /// device code and user code lifetime (default 600 s)
    pub device_code_ttl: u64,
    /// initial device polling interval (default 5 s)
    pub device_interval: u64,
    /// accept client assertions whose `aud` is the token endpoint URL (legacy RFC 7523
    /// clients); by default only the issuer is (rfc7523bis)
    pub legacy_assertion_audience: bool,
    /// longest accepted client-assertion lifetime, `exp` − `iat` (default 300 s)
    pub client_assertion_max_lifetime: u64,
    /// brute-force throttling of passwords and client secrets
    pub throttle: ThrottleConfig,
    /// lifetime of an ID-JAG from token exchange (default 300 s)
    pub id_jag_ttl: u64,
    /// oldest subject ID Token accepted for token exchange, by its `iat` (default 600 s)
    pub exchange_subject_max_age: u64,
    /// longest accepted ID-JAG lifetime at the resource AS, `exp` − the issuer's `iat`, seconds
    /// (default 600: twice what keybound issues; setting `jwt_bearer_max_lifetime`, minutes)
    pub jwt_bearer_max_lifetime: u64,
    /// dynamic client registration without an initial access token (default off)
    pub open_registration: bool,
    /// lifetime of a pushed authorization request's `request_uri` (RFC 9126, default 60 s)
    pub par_ttl: u64,
    /// every client must push its authorization requests (RFC 9126 §5,
    /// `require_pushed_authorization_requests`; default off)
    pub require_par: bool,
    /// every client is held to the FAPI 2.0 Security Profile (`default_profile = "fapi2"`;
    /// default off: per client)
    pub fapi2: bool,
}

impl OpConfig {
    /// Defaults for `issuer` with endpoints at keybound's standard paths.
    pub fn new(issuer: &str) -> Self {
        let base = issuer.trim_end_matches('/');
        OpConfig {
            issuer: issuer.to_owned(),
            endpoints: Endpoints {
                authorization: format!("{base}{}", paths::AUTHORIZE),
                token: format!("{base}{}", paths::TOKEN),
                userinfo: format!("{base}{}", paths::USERINFO),
                jwks: format!("{base}{}", paths::JWKS),
                revocation: format!("{base}{}", paths::REVOKE),
                introspection: format!("{base}{}", paths::INTROSPECT),
                device_authorization: format!("{base}{}", paths::DEVICE_AUTHORIZATION),
                device: format!("{base}{}", paths::DEVICE),
                registration: format!("{base}{}", paths::REGISTER),
                par: format!("{base}{}", paths::PAR),
                end_session: format!("{base}{}", paths::END_SESSION),
            },
            code_ttl: 60,
            access_token_ttl: 300,
            id_token_ttl: 300,
            refresh_ttl: 30 * 24 * 3600,
            session_ttl: 8 * 3600,
            dpop: DpopPolicy::default(),
            dpop_nonces: None,
            require_dpop_nonce: false,
            key_cache_ttl: 60,
            client_cache_ttl: 5,
            device_code_ttl: 600,
            device_interval: 5,
            legacy_assertion_audience: false,
            client_assertion_max_lifetime: 300,
            throttle: ThrottleConfig::default(),
            id_jag_ttl: 300,
            exchange_subject_max_age: 600,
            jwt_bearer_max_lifetime: 600,
            open_registration: false,
            par_ttl: 60,
            require_par: false,
            fapi2: false,
        }
    }
}

/// The OpenID Provider.
pub struct Provider {
    /// settings
    pub config: OpConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Randomness>,
    keys: KeyRing,
    clients: client_auth::ClientCache,
    throttle: throttle::Throttle,
    hashes: password::HashPool,
    issuer_keys: Option<Arc<dyn token::IssuerKeys>>,
    relying_party: passkey::RelyingParty,
    events: Arc<dyn events::EventSink>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider over `store` with `clock` and `rng`.
    pub fn new(
        config: OpConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Randomness>,
    ) -> Self {
        let keys = KeyRing::new(config.key_cache_ttl);
        let hashes = password::HashPool::new(
            config.throttle.hash_concurrency,
            config.throttle.hash_queue_wait,
        );
        let relying_party = passkey::RelyingParty::for_issuer(&config.issuer);
        Provider {
            relying_party,
            config,
            store,
            clock,
            rng,
            keys,
            clients: client_auth::ClientCache::default(),
            throttle: throttle::Throttle::default(),
            hashes,
            issuer_keys: None,
            events: Arc::new(events::NoEvents),
        }
    }

    /// Where security events go (without it, nowhere).
    #[must_use]
    pub fn with_events(mut self, sink: Arc<dyn events::EventSink>) -> Self {
        self.events = sink;
        self
    }

    /// Record a security event.
    pub(crate) fn event(&self, e: events::SecurityEvent) {
        self.events.record(e);
    }

    /// Where trusted issuers' signing keys come from, for the jwt-bearer grant (without it,
    /// every ID-JAG is refused).
    #[must_use]
    pub fn with_issuer_keys(mut self, keys: Arc<dyn token::IssuerKeys>) -> Self {
        self.issuer_keys = Some(keys);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How many argon2 verifications (End-User passwords and client secrets) this provider has
    /// run: each costs tens of milliseconds of CPU, so a count that grows with token requests
    /// rather than with sign-ins and new client secrets points at a problem.
    pub fn secret_verifications(&self) -> u64 {
        self.hashes.runs()
    }

    /// Current time from the injected clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// A random token of 32 bytes (256 bits).
    pub fn random_token(&self) -> String {
        self.rng.token(32)
    }

    fn random_id(&self) -> String {
        self.rng.token(16)
    }

    /// Start a throttled sign-in attempt at `principal` (an account, a passkey) from `source`
    /// (the client's address, shared by every principal tried from it): each with its free
    /// failures from the throttle settings ([`Provider::begin_attempt`]).
    pub(crate) async fn begin_sign_in_attempt<'k>(
        &self,
        principal: &'k str,
        address: Option<&'k str>,
        what: &str,
    ) -> Result<Attempt<'_, 'k>, OpError> {
        let t = self.config.throttle;
        let shared: Vec<(&str, u32)> = address
            .iter()
            .map(|a| (*a, t.free_failures_per_address))
            .collect();
        self.begin_attempt((principal, t.free_failures), &shared, what)
            .await
    }

    /// Start a throttled attempt at a secret for `principal` (the account or client id) and
    /// `shared` keys (the source address), each with its free failures. Attempts at one
    /// principal take turns (the turn is held until the attempt is settled); then any key in
    /// its back-off refuses with [`OpError::Throttled`], before anything is hashed. The shared
    /// keys count the attempt as a failure from now until [`Attempt::succeeded`] takes it back.
    pub(crate) async fn begin_attempt<'k>(
        &self,
        principal: (&'k str, u32),
        shared: &[(&'k str, u32)],
        what: &str,
    ) -> Result<Attempt<'_, 'k>, OpError> {
        let turn = self.throttle.turn(principal.0).await;
        let now = self.now();
        let cfg = &self.config.throttle;
        let store = &*self.store;
        let throttled = |retry_after: u64| OpError::Throttled {
            description: format!("too many wrong {what}: try again in {retry_after} s"),
            retry_after,
        };
        // the longest wait of all keys, so the client is told when it may really retry
        let mut wait = None;
        for (k, free) in std::iter::once(&principal).chain(shared) {
            if let Err(w) = throttle::check(store, k, *free, cfg, now).await? {
                wait = wait.max(Some(w));
            }
        }
        if let Some(wait) = wait {
            self.event(events::SecurityEvent::new(events::EventType::Throttled).reason(what));
            return Err(throttled(wait));
        }
        let mut begun = Attempt {
            provider: self,
            principal: principal.0,
            shared: Vec::with_capacity(shared.len()),
            settled: false,
            _turn: turn,
        };
        for (k, free) in shared {
            // a concurrent attempt at another principal may have started a back-off since the
            // check: `begun` is dropped and the keys counted so far are taken back
            let p = throttle::begin(store, k, *free, cfg, now)
                .await?
                .map_err(throttled)?;
            begun.shared.push((k, p));
        }
        Ok(begun)
    }
}

/// The throttle key of a client address (shared by every account and passkey tried from it).
pub(crate) fn address_key(source: Option<&str>) -> Option<String> {
    source.map(|a| format!("address\0{a}"))
}

/// An attempt at a secret, holding its principal's turn. [`Attempt::failed`] counts a failure
/// of the principal (the shared keys counted it already); [`Attempt::succeeded`] resets the
/// principal and takes the shared keys' counts back; dropped unsettled (the check itself failed:
/// busy, store error, the request went away), the shared counts are taken back in a task.
pub(crate) struct Attempt<'p, 'k> {
    provider: &'p Provider,
    principal: &'k str,
    shared: Vec<(&'k str, throttle::Provisional)>,
    settled: bool,
    _turn: tokio::sync::MutexGuard<'p, ()>,
}

impl Attempt<'_, '_> {
    /// A wrong secret.
    pub(crate) async fn failed(mut self) -> Result<(), OpError> {
        self.settled = true;
        let p = self.provider;
        throttle::fail(&*p.store, self.principal, &p.config.throttle, p.now()).await
    }

    /// A right secret.
    pub(crate) async fn succeeded(mut self) -> Result<(), OpError> {
        self.settled = true;
        let store = &*self.provider.store;
        throttle::succeed(store, self.principal, self.provider.now()).await?;
        for (k, p) in &self.shared {
            throttle::undo(store, k, *p).await?;
        }
        Ok(())
    }
}

impl Drop for Attempt<'_, '_> {
    fn drop(&mut self) {
        if self.settled || self.shared.is_empty() {
            return;
        }
        let store = self.provider.store.clone();
        let shared: Vec<(String, throttle::Provisional)> = self
            .shared
            .iter()
            .map(|(k, p)| ((*k).to_owned(), *p))
            .collect();
        // outside a runtime nothing can be taken back; the counts then expire with the window
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for (k, p) in shared {
                    // a store error here leaves the count to expire with its window
                    let _ = throttle::undo(&*store, &k, p).await;
                }
            });
        }
    }
}
