//! The OpenID Provider as tests need it: in process (the decisions, or the whole axum router
//! without a socket) or on a loopback socket, on the in-memory store, with a manual clock by
//! default, the standard End-User and any clients the test registers.

use std::path::PathBuf;
use std::sync::Arc;

use keybound_op::{password, Clock, ManualClock, OpConfig, OsRandomness, Provider};
use keybound_proto::dpop::NonceSource;
use keybound_store::{Client, ClientAuthMethod, MemoryStore, Store, User};

/// The issuer of in-process OPs.
pub const ISS: &str = "https://op.example";
/// The time in-process OPs start at (2023-11-14).
pub const T0: u64 = 1_700_000_000;
/// The redirect URI the standard clients register.
pub const REDIRECT: &str = "http://127.0.0.1:9/cb";
/// The redirect URI of clients of the implicit and hybrid flows: tokens from the authorization
/// endpoint travel only to https URIs that are not localhost (OIDC Core 3.2.2.1).
pub const TOKEN_REDIRECT: &str = "https://spa.example/cb";
/// A PKCE verifier (RFC 7636 appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The standard End-User's login name, password and subject.
pub const ALICE: (&str, &str, &str) = ("alice", "wonderland", "sub-alice");
/// The secret of every confidential client made by [`client`].
pub const CLIENT_SECRET: &str = "s3cret";
/// The DPoP nonce secret of OPs built with [`OpBuilder::nonces`].
pub const NONCE_SECRET: [u8; 32] = [9u8; 32];

/// A client registered for [`REDIRECT`]: public with [`ClientAuthMethod::None`], else
/// confidential with [`CLIENT_SECRET`]. Adjust the rest with struct update syntax.
pub fn client(id: &str, method: ClientAuthMethod) -> Client {
    Client {
        name: format!("App {id}"),
        secret_hash: (method != ClientAuthMethod::None).then(|| password::hash(CLIENT_SECRET)),
        redirect_uris: vec![REDIRECT.into()],
        ..Client::new(id, method, T0)
    }
}

/// A code-flow authorization request of `client_id` for `scope` to [`REDIRECT`], with PKCE
/// over [`VERIFIER`], `state` `st-1`, `nonce` `n-1`, and `dpop_jkt` when given.
pub fn authorization_request(
    client_id: &str,
    scope: &str,
    jkt: Option<&keybound_jose::Jkt>,
) -> keybound_proto::wire::AuthorizationRequest {
    keybound_proto::wire::AuthorizationRequest {
        response_type: "code".into(),
        client_id: client_id.into(),
        redirect_uri: Some(REDIRECT.into()),
        scope: scope.into(),
        state: Some("st-1".into()),
        nonce: Some("n-1".into()),
        code_challenge: Some(keybound_jose::sha256_b64(VERIFIER.as_bytes())),
        code_challenge_method: Some("S256".into()),
        dpop_jkt: jkt.map(ToString::to_string),
        ..keybound_proto::wire::AuthorizationRequest::default()
    }
}

/// The code-flow authorization URL at `endpoint` for `client` (client id, redirect URI) and
/// `scope`: PKCE (S256) over `verifier`, bound to `jkt` by `dpop_jkt`, `state` `s{i}` and
/// `nonce` `n{i}`, `prompt=consent` when asked. What the load tool and the many-node tests'
/// browser open.
pub fn code_flow_url(
    endpoint: &str,
    client: (&str, &str),
    scope: &str,
    i: usize,
    verifier: &str,
    jkt: &keybound_jose::Jkt,
    consent: bool,
) -> String {
    let req = keybound_proto::wire::AuthorizationRequest {
        response_type: "code".into(),
        client_id: client.0.into(),
        redirect_uri: Some(client.1.into()),
        scope: scope.into(),
        state: Some(format!("s{i}")),
        nonce: Some(format!("n{i}")),
        code_challenge: Some(keybound_jose::sha256_b64(verifier.as_bytes())),
        code_challenge_method: Some("S256".into()),
        dpop_jkt: Some(jkt.to_string()),
        prompt: consent.then(|| "consent".into()),
        ..keybound_proto::wire::AuthorizationRequest::default()
    };
    // a struct of strings and numbers always encodes
    let query = serde_urlencoded::to_string(&req).unwrap_or_default();
    format!("{endpoint}?{query}")
}

/// `Authorization: Basic` for `client_id` with [`CLIENT_SECRET`].
pub fn basic(client_id: &str) -> String {
    basic_auth(client_id, CLIENT_SECRET)
}

/// `Authorization: Basic` for `client_id` and `secret` (RFC 6749 §2.3.1 form-encoding of both
/// parts).
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    keybound_rp::basic_auth(client_id, secret)
}

/// An operator's client for the admin API: confidential ([`CLIENT_SECRET`]), client
/// credentials only, DPoP-bound tokens, the scope `keybound:admin` and `other` (a scope that
/// is not the admin one, for refusals).
pub fn admin_client(id: &str) -> Client {
    Client {
        redirect_uris: Vec::new(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec![keybound_op::admin::ADMIN_SCOPE.into(), "other".into()],
        ..client(id, ClientAuthMethod::ClientSecretBasic)
    }
}

/// A DPoP proof by `key` for `method` `url` presenting `access_token` (`ath`), made at `now`
/// with a fresh `jti`.
///
/// # Panics
/// When the proof cannot be signed (a test key).
pub fn resource_proof(
    key: &keybound_jose::PrivateKey,
    method: &str,
    url: &str,
    access_token: &str,
    now: u64,
) -> String {
    keybound_proto::dpop::ProofBuilder::new(method, url, now, &keybound_jose::random_b64(12))
        .ath_for(access_token)
        .sign(key)
        .expect("signing a proof with a test key")
}

/// A public client (PKCE, no secret).
pub fn public_client(id: &str) -> Client {
    client(id, ClientAuthMethod::None)
}

/// A public client of the implicit and hybrid flows, for `response_types`, redirecting to
/// [`TOKEN_REDIRECT`].
pub fn front_channel_client(id: &str, response_types: &[&str]) -> Client {
    Client {
        response_types: response_types.iter().map(|s| (*s).to_owned()).collect(),
        redirect_uris: vec![TOKEN_REDIRECT.to_owned()],
        ..public_client(id)
    }
}

/// The standard End-User: [`ALICE`], named "Alice", with a verified e-mail address.
pub fn alice() -> User {
    User {
        name: Some("Alice".into()),
        email: Some("alice@example.com".into()),
        email_verified: true,
        ..User::new(ALICE.2, ALICE.0, password::hash(ALICE.1), T0)
    }
}

/// Security events as the server writes them: JSON lines in a file of a temporary directory
/// (removed with it).
#[derive(Debug)]
pub struct Events {
    dir: tempfile::TempDir,
    /// the sink, for a provider and for a server's `/metrics`
    pub log: Arc<keybound_server::EventLog>,
}

impl Events {
    /// An empty events file.
    ///
    /// # Panics
    /// When no temporary directory can be made.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = Arc::new(keybound_server::EventLog::new(
            keybound_server::EventOutput::File {
                path: dir.path().join("events.jsonl"),
                max_bytes: 1 << 24,
                keep: 1,
            },
            Arc::new(ManualClock::new(T0)),
        ));
        Events { dir, log }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// Every record so far.
    ///
    /// # Panics
    /// When a line is not JSON.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// The types of every record so far, in order.
    pub fn types(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|r| r["type"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

/// A change to the settings.
type Configure = Box<dyn FnOnce(&mut OpConfig) + Send>;

/// How to build a test OP.
pub struct OpBuilder {
    clock: Option<Arc<dyn Clock>>,
    manual: Arc<ManualClock>,
    nonces: bool,
    configure: Vec<Configure>,
    clients: Vec<Client>,
    users: Vec<User>,
    issuers: Vec<keybound_store::TrustedIssuer>,
    issuer_keys: Option<Arc<dyn keybound_op::IssuerKeys>>,
    events: Option<Arc<dyn keybound_op::events::EventSink>>,
}

impl std::fmt::Debug for OpBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpBuilder")
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Default for OpBuilder {
    fn default() -> Self {
        OpBuilder {
            clock: None,
            manual: Arc::new(ManualClock::new(T0)),
            nonces: false,
            configure: Vec::new(),
            clients: Vec::new(),
            users: vec![alice()],
            issuers: Vec::new(),
            issuer_keys: None,
            events: None,
        }
    }
}

/// An OP over the in-memory store: its decisions, its store and its clock.
pub struct TestOp {
    /// the provider
    pub p: Provider,
    /// its store
    pub store: Arc<dyn Store>,
    /// its clock, when it is the manual one (the default)
    pub clock: Arc<ManualClock>,
}

impl std::fmt::Debug for TestOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOp")
            .field("p", &self.p)
            .finish_non_exhaustive()
    }
}

impl TestOp {
    /// Move the manual clock forward.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(secs);
    }

    /// The current time of the provider.
    pub fn now(&self) -> u64 {
        self.p.now()
    }

    /// A DPoP proof by `key` for a token request, made now with a fresh `jti` (no `c_s256`).
    pub fn token_proof(&self, key: &keybound_jose::PrivateKey) -> String {
        self.post_proof(&self.p.config.endpoints.token, key)
    }

    /// A DPoP proof by `key` for a `POST` to `htu` (an endpoint URL), made now with a fresh
    /// `jti`.
    pub fn post_proof(&self, htu: &str, key: &keybound_jose::PrivateKey) -> String {
        keybound_proto::dpop::ProofBuilder::new(
            "POST",
            htu,
            self.now(),
            &keybound_jose::random_b64(12),
        )
        .sign(key)
        .expect("signing a proof with a test key")
    }

    /// The code for a validated authorization request: the standard End-User signs in and
    /// consents, the provider issues it.
    ///
    /// # Panics
    /// When any step fails (a test's setup).
    pub async fn code_for(&self, v: &keybound_op::ValidatedAuthorization) -> String {
        let session = self.sign_in().await;
        self.code_in(v, &session).await
    }

    /// The standard End-User signs in: the new OP session (as the provider makes it; the
    /// server would store it under a cookie).
    ///
    /// # Panics
    /// When the password is refused (a test's setup).
    pub async fn sign_in(&self) -> keybound_store::BrowserSession {
        self.p
            .login(ALICE.0, ALICE.1)
            .await
            .expect("login")
            .expect("the standard End-User's password")
    }

    /// The code for `v` in `session`: the End-User consents, the provider issues it. (The
    /// server also records the client in the session: `BrowserSession::signed_in_to`.)
    ///
    /// # Panics
    /// When any step fails (a test's setup).
    pub async fn code_in(
        &self,
        v: &keybound_op::ValidatedAuthorization,
        session: &keybound_store::BrowserSession,
    ) -> String {
        self.p
            .record_consent(v, &session.sub)
            .await
            .expect("consent");
        let url = self
            .p
            .issue_code(v, session)
            .await
            .expect("code")
            .url()
            .expect("a redirect");
        url::Url::parse(&url)
            .expect("redirect URL")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code in the redirect")
    }

    /// The standard End-User signs in to the confidential client `client_id` ([`basic`]) for
    /// `scope` and consents; the code redeemed without DPoP: the code and the token response.
    ///
    /// # Panics
    /// When a step fails (a test's setup).
    pub async fn confidential_grant(
        &self,
        client_id: &str,
        scope: &str,
    ) -> (String, keybound_proto::wire::TokenResponse) {
        let v = self
            .p
            .validate_authorization(&authorization_request(client_id, scope, None))
            .await
            .expect("authorization request");
        let code = self.code_for(&v).await;
        let t = self
            .redeem(client_id, &code, None, Some(&basic(client_id)))
            .await
            .expect("the code redeemed");
        (code, t)
    }

    /// A client credentials token of `client_id` ([`CLIENT_SECRET`]) for `scope`, bound to
    /// `key` when given (else Bearer).
    ///
    /// # Panics
    /// When the token endpoint refuses (a test's setup).
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        scope: &str,
        key: Option<&keybound_jose::PrivateKey>,
    ) -> String {
        let proof = key.map(|k| self.token_proof(k));
        let dpop: Vec<&str> = proof.iter().map(String::as_str).collect();
        let auth = basic(client_id);
        let f = form(&[("grant_type", "client_credentials"), ("scope", scope)]);
        self.p
            .token(keybound_op::TokenRequestFacts {
                form: &f,
                authorization: Some(&auth),
                dpop: &dpop,
            })
            .await
            .expect("a client credentials token")
            .response
            .access_token
    }

    /// A DPoP proof by `key` for a userinfo request presenting `access_token` (`ath`), made now
    /// with `jti` and, when given, the server's `nonce`.
    pub fn userinfo_proof(
        &self,
        access_token: &str,
        key: &keybound_jose::PrivateKey,
        jti: &str,
        nonce: Option<&str>,
    ) -> String {
        let b = keybound_proto::dpop::ProofBuilder::new(
            "GET",
            &self.p.config.endpoints.userinfo,
            self.now(),
            jti,
        )
        .ath_for(access_token);
        match nonce {
            Some(n) => b.nonce(n),
            None => b,
        }
        .sign(key)
        .expect("ES256 signing with a test key")
    }

    /// Userinfo with this `Authorization` header and these `DPoP` values.
    pub async fn userinfo(
        &self,
        authorization: &str,
        dpop: &[&str],
    ) -> Result<serde_json::Value, keybound_op::OpError> {
        self.p
            .userinfo(keybound_op::ResourceRequest {
                authorization: Some(authorization),
                dpop,
                htm: "GET",
                htu: &self.p.config.endpoints.userinfo,
            })
            .await
    }

    /// Userinfo with a DPoP-bound access token and a fresh proof by `key`.
    pub async fn userinfo_dpop(
        &self,
        access_token: &str,
        key: &keybound_jose::PrivateKey,
        jti: &str,
    ) -> Result<serde_json::Value, keybound_op::OpError> {
        let proof = self.userinfo_proof(access_token, key, jti, None);
        self.userinfo(&format!("DPoP {access_token}"), &[&proof])
            .await
    }

    /// The standard End-User signs in and consents (through the provider's decisions, no HTTP)
    /// to an authorization request of `client_id` for `scope`, bound to `jkt` when given; the
    /// authorization code.
    ///
    /// # Panics
    /// When any step is refused (a test fixture: the test is wrong).
    pub async fn sign_in_code(
        &self,
        client_id: &str,
        scope: &str,
        jkt: Option<&keybound_jose::Jkt>,
    ) -> String {
        let req = authorization_request(client_id, scope, jkt);
        let v = self
            .p
            .validate_authorization(&req)
            .await
            .expect("authorization request");
        self.code_for(&v).await
    }

    /// Redeem `code` of `client_id` at the token endpoint, with a proof by `key` (carrying
    /// `c_s256`) when given, and `authorization` (e.g. [`basic`]) for confidential clients.
    ///
    /// # Panics
    /// When the proof cannot be signed.
    pub async fn redeem(
        &self,
        client_id: &str,
        code: &str,
        key: Option<&keybound_jose::PrivateKey>,
        authorization: Option<&str>,
    ) -> Result<keybound_proto::wire::TokenResponse, keybound_op::OpError> {
        self.redeem_from(client_id, REDIRECT, code, key, authorization)
            .await
    }

    /// [`TestOp::redeem`] for a code issued to `redirect_uri`.
    pub async fn redeem_from(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code: &str,
        key: Option<&keybound_jose::PrivateKey>,
        authorization: Option<&str>,
    ) -> Result<keybound_proto::wire::TokenResponse, keybound_op::OpError> {
        let proof = key.map(|k| {
            keybound_proto::dpop::ProofBuilder::new(
                "POST",
                &self.p.config.endpoints.token,
                self.now(),
                &keybound_jose::random_b64(12),
            )
            .c_s256(code)
            .sign(k)
            .expect("signing a proof")
        });
        let f = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ]);
        let dpop: Vec<&str> = proof.iter().map(String::as_str).collect();
        self.p
            .token(keybound_op::TokenRequestFacts {
                form: &f,
                authorization,
                dpop: &dpop,
            })
            .await
            .map(|s| s.response)
    }

    /// The axum router over this provider (the whole public OP, in process).
    pub fn router(self) -> axum::Router {
        self.routers().0
    }

    /// The public router and the management router (`/metrics`) over one provider state.
    pub fn routers(self) -> (axum::Router, axum::Router) {
        self.routers_with(keybound_server::ServerConfig::default())
    }

    /// [`TestOp::routers`] with server settings (trusted proxies).
    pub fn routers_with(
        self,
        config: keybound_server::ServerConfig,
    ) -> (axum::Router, axum::Router) {
        let state = keybound_server::AppState::with_config(self.p, config);
        (
            keybound_server::router(state.clone()),
            keybound_server::management_router(state),
        )
    }
}

/// Other issuers' signing keys by JWKS URL, as fetched once (an in-process identity provider's
/// `jwks()`, or any JWK Set): the resource AS's key source in tests.
#[derive(Debug, Clone, Default)]
pub struct IssuerJwks(pub std::collections::HashMap<String, keybound_jose::JwkSet>);

#[async_trait::async_trait]
impl keybound_op::IssuerKeys for IssuerJwks {
    async fn keys(
        &self,
        jwks_uri: &str,
        _kid: Option<&str>,
        _now: u64,
    ) -> Result<Arc<keybound_jose::JwkSet>, String> {
        self.0
            .get(jwks_uri)
            .cloned()
            .map(Arc::new)
            .ok_or_else(|| format!("no JWK Set at {jwks_uri}"))
    }
}

/// A trusted issuer record for `issuer` with its JWKS at `{issuer}/jwks`, e-mail subject
/// resolution, key-bound ID-JAGs only, enabled.
pub fn trusted(issuer: &str) -> keybound_store::TrustedIssuer {
    keybound_store::TrustedIssuer {
        issuer: issuer.to_owned(),
        jwks_uri: format!("{issuer}/jwks"),
        subject: keybound_store::SubjectMode::Email,
        single_use: false,
        allow_unbound: false,
        enabled: true,
        created_at: T0,
    }
}

/// An OP serving on a loopback socket until dropped.
pub struct LoopbackOp {
    /// its issuer, `http://127.0.0.1:PORT`
    pub issuer: String,
    /// its store
    pub store: Arc<dyn Store>,
    /// its clock, when it is the manual one
    pub clock: Arc<ManualClock>,
    handle: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LoopbackOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackOp")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl LoopbackOp {
    /// Ask the server to stop (it stops at its next turn: see [`LoopbackOp::is_stopped`]).
    pub fn abort(&self) {
        self.handle.abort();
    }

    /// Whether the server stopped: its listener is closed, new connections are refused.
    pub fn is_stopped(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stop serving and wait until new connections are refused.
    pub async fn stop(&self) {
        self.abort();
        while !self.is_stopped() {
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for LoopbackOp {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl OpBuilder {
    /// The defaults: manual clock at [`T0`], the user [`alice`], no clients, no nonces.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `clock` (e.g. the system clock for loopback tests against real time).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Use this manual clock (shared with the test, e.g. with an RP).
    #[must_use]
    pub fn manual_clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.manual = clock;
        self.clock = None;
        self
    }

    /// Issue DPoP nonces from [`NONCE_SECRET`] (60 s steps, one step of history).
    #[must_use]
    pub fn nonces(mut self) -> Self {
        self.nonces = true;
        self
    }

    /// Change the settings.
    #[must_use]
    pub fn configure(mut self, f: impl FnOnce(&mut OpConfig) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Trust `issuer` for the jwt-bearer grant, its keys from `keys` (e.g. [`IssuerJwks`]).
    #[must_use]
    pub fn trust(
        mut self,
        issuer: keybound_store::TrustedIssuer,
        keys: Arc<dyn keybound_op::IssuerKeys>,
    ) -> Self {
        self.issuers.push(issuer);
        self.issuer_keys = Some(keys);
        self
    }

    /// Register a client.
    #[must_use]
    pub fn client(mut self, c: Client) -> Self {
        self.clients.push(c);
        self
    }

    /// Record security events in `events` (the server's sink, to a file).
    #[must_use]
    pub fn events(mut self, events: &Events) -> Self {
        self.events = Some(events.log.clone());
        self
    }

    /// Register a user.
    #[must_use]
    pub fn user(mut self, u: User) -> Self {
        self.users.push(u);
        self
    }

    async fn provider(self, issuer: &str) -> TestOp {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut cfg = OpConfig::new(issuer);
        if self.nonces {
            cfg.dpop_nonces = Some(NonceSource::new(&NONCE_SECRET, 60, 1).expect("32-byte secret"));
        }
        for f in self.configure {
            f(&mut cfg);
        }
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| self.manual.clone());
        let mut p = Provider::new(cfg, store.clone(), clock, Arc::new(OsRandomness));
        if let Some(k) = self.issuer_keys {
            p = p.with_issuer_keys(k);
        }
        if let Some(e) = self.events {
            p = p.with_events(e);
        }
        for i in &self.issuers {
            store.put_issuer(i).await.expect("trusted issuer");
        }
        p.ensure_signing_keys().await.expect("signing keys");
        for c in &self.clients {
            store.put_client(c).await.expect("client");
        }
        for u in &self.users {
            store.put_user(u).await.expect("user");
        }
        TestOp {
            p,
            store,
            clock: self.manual,
        }
    }

    /// The OP in process, with issuer [`ISS`].
    pub async fn build(self) -> TestOp {
        self.provider(ISS).await
    }

    /// The OP in process with another issuer.
    pub async fn build_at(self, issuer: &str) -> TestOp {
        self.provider(issuer).await
    }

    /// The OP on `127.0.0.1:0`, its issuer the address it got.
    pub async fn serve(self) -> LoopbackOp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let issuer = format!("http://{}", listener.local_addr().expect("address"));
        let op = self.provider(&issuer).await;
        let (store, clock) = (op.store.clone(), op.clock.clone());
        let app = op.router();
        let handle = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        LoopbackOp {
            issuer,
            store,
            clock,
            handle,
        }
    }
}

/// A form body for the provider's functions, from pairs.
pub fn form(pairs: &[(&str, &str)]) -> keybound_op::Form {
    keybound_op::Form::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .expect("no repeated parameters")
}

/// Sign in through `rp` as `user` (name, password) in a fresh headless browser: the RP's
/// authorization request, the OP's login and consent forms, the callback's checks and the
/// token request, as an app's own code runs them.
pub async fn rp_sign_in(rp: &keybound_rp::Rp, user: (&str, &str)) -> keybound_rp::Session {
    let pending = rp.begin().await.expect("begin");
    let transport = keybound_rp::ReqwestTransport::new().expect("a transport");
    let back = keybound_rp::browser::Browser::new(transport)
        .sign_in(&pending.url, None, user.0, user.1)
        .await
        .expect("the End-User signs in");
    let code = rp.callback(&pending, &back).expect("the callback checks");
    rp.exchange(pending, &code)
        .await
        .expect("the token request")
}

/// Serve `app` on `listener` (with peers' addresses) until the test's runtime ends; its base
/// URL, `http://127.0.0.1:PORT`.
pub fn serve_app(listener: tokio::net::TcpListener, app: axum::Router) -> String {
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    base
}
