//! Several `keybound serve` processes on one PostgreSQL database, as a load balancer sees them
//! (issue 13): every node has its own loopback port, all share only the database URL, the
//! key-encryption key and the DPoP nonce secret, and all answer for one issuer (node 0's URL),
//! so a proof's `htu` names the issuer whichever node receives it. The test routes each
//! request to a node by hand — that is the load balancer's choice made visible.
//!
//! [`DpopClient`] is the public client the race and crash tests drive: codes minted through the
//! real authorization endpoint (one signed-in browser session), redeemed, refreshed and polled
//! at a chosen node, each request with a fresh DPoP proof by the client's key. A transport
//! failure (a killed node) is a [`Reply`] with status 0, not a panic, so load loops can count it.

use std::path::Path;
use std::time::Duration;

use keybound_jose::PrivateKey;
use keybound_op::paths;
use keybound_proto::dpop::ProofBuilder;
use keybound_rp::ReqwestTransport;
use serde_json::Value;

use crate::browser::Browser;
use crate::process::{free_port, wait_ready, Keybound, Server};

/// The End-User every cluster knows.
pub const USER: (&str, &str) = ("alice", "wonderland");
/// The public client every cluster knows (PKCE, DPoP, Key Binding 1.0).
pub const CLIENT: &str = "app";
/// A public client that must send DPoP nonces (`--require-nonce`).
pub const NONCE_CLIENT: &str = "app-nonce";
/// Their registered redirect URI (never contacted).
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// The PKCE verifier of every authorization the client makes.
pub const VERIFIER: &str = "keybound-cluster-pkce-verifier-0123456789abcdefg";

/// Nodes of one OP on one database; each killed when the cluster is dropped.
#[derive(Debug)]
pub struct Cluster {
    kb: Keybound,
    env: Vec<(String, String)>,
    ports: Vec<u16>,
    servers: Vec<Option<Server>>,
    /// the issuer all nodes answer for (node 0's URL)
    pub issuer: String,
}

impl Cluster {
    /// `nodes` processes of `bin` started at the same moment on the database `url` (empty or
    /// not; none: SQLite in the data directory `data`, for one node), with fresh shared secrets
    /// and `extra` environment; ready, with [`CLIENT`], [`NONCE_CLIENT`] and [`USER`] registered.
    pub async fn start(
        bin: &str,
        data: &Path,
        url: Option<&str>,
        nodes: usize,
        extra: &[(&str, &str)],
    ) -> Cluster {
        let (_, raw) = keybound_store::Kek::generate().expect("a key-encryption key");
        let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let issuer = format!("http://127.0.0.1:{}", ports[0]);
        let mut env: Vec<(String, String)> = [
            ("KEYBOUND_KEK", keybound_jose::b64::encode(raw.as_ref())),
            ("KEYBOUND_DPOP_NONCE_SECRET", keybound_jose::random_b64(32)),
            ("KEYBOUND_DATABASE_ACQUIRE_TIMEOUT", "1".to_owned()),
            ("KEYBOUND_ISSUER", issuer.clone()),
            ("KEYBOUND_METRICS_LISTEN", "off".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(url) = url {
            env.push(("KEYBOUND_DATABASE_URL".to_owned(), url.to_owned()));
        }
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut c = Cluster {
            kb: Keybound::new(bin, data),
            env,
            ports,
            servers: Vec::new(),
            issuer,
        };
        c.servers = (0..nodes).map(|i| Some(c.spawn(i))).collect();
        for i in 0..nodes {
            c.wait_ready(i).await;
        }
        c.admin(&[
            "client",
            "add",
            "--client-id",
            CLIENT,
            "--redirect-uri",
            REDIRECT,
        ]);
        c.admin(&[
            "client",
            "add",
            "--client-id",
            NONCE_CLIENT,
            "--redirect-uri",
            REDIRECT,
            "--require-nonce",
        ]);
        c.admin(&["user", "add", "--username", USER.0, "--password", USER.1]);
        c
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn spawn(&self, i: usize) -> Server {
        self.kb.serve_env(self.ports[i], &[], &self.env())
    }

    async fn wait_ready(&self, i: usize) {
        wait_ready(&reqwest::Client::new(), &self.node(i)).await;
    }

    /// `keybound admin ARGS…` against the shared database; its standard output.
    pub fn admin(&self, args: &[&str]) -> String {
        self.kb.admin_env(args, &self.env())
    }

    /// The base URL of node `i` (node 0's is the issuer).
    pub fn node(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// The base URLs of all nodes.
    pub fn nodes(&self) -> Vec<String> {
        (0..self.ports.len()).map(|i| self.node(i)).collect()
    }

    /// The process ids of the running nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().flatten().map(Server::pid).collect()
    }

    /// SIGKILL node `i`: no graceful shutdown, in-flight requests cut off.
    pub fn kill_9(&mut self, i: usize) {
        if let Some(mut s) = self.servers[i].take() {
            s.kill_9();
        }
    }

    /// Whether node `i` runs (started, not killed, not crashed).
    pub fn is_running(&mut self, i: usize) -> bool {
        self.servers[i].as_mut().is_some_and(Server::is_running)
    }

    /// Start node `i` again on its port (after [`Cluster::kill_9`]) and wait until it is ready.
    pub async fn restart(&mut self, i: usize) {
        self.kill_9(i);
        self.servers[i] = Some(self.spawn(i));
        self.wait_ready(i).await;
    }
}

/// An HTTP answer: status (0 when the request never got one: refused, reset, timed out), the
/// JSON body (or null), the `DPoP-Nonce` and `Retry-After` headers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status, 0 for a transport failure
    pub status: u16,
    /// the JSON body, null when there was none
    pub body: Value,
    /// `DPoP-Nonce`
    pub dpop_nonce: Option<String>,
    /// `Retry-After`
    pub retry_after: Option<String>,
}

impl Reply {
    /// 200?
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// The OAuth `error`, or `transport` / `http-STATUS` when there is none.
    pub fn error(&self) -> String {
        match (self.status, self.body["error"].as_str()) {
            (0, _) => "transport".to_owned(),
            (_, Some(e)) => e.to_owned(),
            (s, None) => format!("http-{s}"),
        }
    }

    /// A string member of the body.
    pub fn get(&self, member: &str) -> Option<&str> {
        self.body[member].as_str()
    }

    /// No answer: refused, reset, timed out.
    const CUT: Reply = Reply {
        status: 0,
        body: Value::Null,
        dpop_nonce: None,
        retry_after: None,
    };

    /// The answer of a request (a transport failure is status 0).
    pub async fn read(r: Result<reqwest::Response, reqwest::Error>) -> Reply {
        let Ok(r) = r else {
            return Reply::CUT;
        };
        let status = r.status().as_u16();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (dpop_nonce, retry_after) = (header("dpop-nonce"), header("retry-after"));
        let Ok(bytes) = r.bytes().await else {
            return Reply::CUT;
        };
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            dpop_nonce,
            retry_after,
        }
    }
}

/// A public client with a DPoP key, talking to the issuer's nodes.
#[derive(Debug)]
pub struct DpopClient {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    key: PrivateKey,
}

fn now() -> u64 {
    use keybound_verify::Clock as _;
    keybound_verify::SystemClock.now()
}

impl DpopClient {
    /// `client_id` at `issuer`, proving `key`. Requests time out after 10 s.
    pub fn new(issuer: &str, client_id: &str, key: PrivateKey) -> DpopClient {
        DpopClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            key,
        }
    }

    /// A DPoP proof for `htm` at the issuer's `path` (whichever node receives it), with
    /// `c_s256` over `code`, `ath` over `access_token` and `nonce` when given.
    pub fn proof(
        &self,
        htm: &str,
        path: &str,
        code: Option<&str>,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut b = ProofBuilder::new(
            htm,
            &format!("{}{path}", self.issuer),
            now(),
            &keybound_jose::random_b64(12),
        );
        if let Some(c) = code {
            b = b.c_s256(c);
        }
        if let Some(at) = access_token {
            b = b.ath_for(at);
        }
        if let Some(n) = nonce {
            b = b.nonce(n);
        }
        b.sign(&self.key).expect("signing a proof with a test key")
    }

    /// The code-flow authorization URL (PKCE, `dpop_jkt`) for `scope`, at the issuer.
    pub fn authorization_url(&self, scope: &str, i: usize) -> String {
        crate::op::code_flow_url(
            &format!("{}{}", self.issuer, paths::AUTHORIZE),
            (&self.client_id, REDIRECT),
            scope,
            i,
            VERIFIER,
            &self.key.public_jwk().thumbprint(),
            scope.split(' ').any(|s| s == "offline_access"),
        )
    }

    /// `n` authorization codes for `scope`, minted through the issuer's authorization endpoint
    /// by one browser session of [`USER`] (signed in on the first).
    pub async fn mint_codes(&self, n: usize, scope: &str) -> Vec<String> {
        let mut browser = Browser::new(ReqwestTransport::new().expect("a transport"));
        let mut codes = Vec::with_capacity(n);
        for i in 0..n {
            let cb = browser
                .sign_in(
                    &self.authorization_url(scope, i),
                    Some(REDIRECT),
                    USER.0,
                    USER.1,
                )
                .await
                .unwrap_or_else(|e| panic!("authorization {i}: {e}"));
            let u = url::Url::parse(&cb).expect("callback URL");
            codes.push(
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map_or_else(|| panic!("no code in {cb}"), |(_, v)| v.into_owned()),
            );
        }
        codes
    }

    /// POST `form` to node `base`'s token endpoint with `proof`.
    pub async fn token(&self, base: &str, form: &[(&str, &str)], proof: &str) -> Reply {
        let mut all = vec![("client_id", self.client_id.as_str())];
        all.extend_from_slice(form);
        let body = serde_urlencoded::to_string(&all).expect("a form");
        Reply::read(
            self.http
                .post(format!("{base}{}", paths::TOKEN))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("DPoP", proof)
                .body(body)
                .send()
                .await,
        )
        .await
    }

    /// Redeem `code` at node `base` (fresh proof with `c_s256`, and `nonce` if given).
    pub async fn redeem(&self, base: &str, code: &str, nonce: Option<&str>) -> Reply {
        let proof = self.proof("POST", paths::TOKEN, Some(code), None, nonce);
        self.token(
            base,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            &proof,
        )
        .await
    }

    /// Refresh `refresh_token` at node `base` with a fresh proof.
    pub async fn refresh(&self, base: &str, refresh_token: &str) -> Reply {
        let proof = self.proof("POST", paths::TOKEN, None, None, None);
        self.token(
            base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            &proof,
        )
        .await
    }

    /// GET node `base`'s userinfo with the DPoP-bound `access_token` and `proof` (from
    /// [`DpopClient::userinfo_proof`]).
    pub async fn userinfo(&self, base: &str, access_token: &str, proof: &str) -> Reply {
        Reply::read(
            self.http
                .get(format!("{base}{}", paths::USERINFO))
                .header("authorization", format!("DPoP {access_token}"))
                .header("DPoP", proof)
                .send()
                .await,
        )
        .await
    }

    /// A fresh proof for the issuer's userinfo with `access_token`.
    pub fn userinfo_proof(&self, access_token: &str) -> String {
        self.proof("GET", paths::USERINFO, None, Some(access_token), None)
    }

    /// A device authorization request at node `base` bound to the client's key; the device
    /// code and `verification_uri_complete`.
    pub async fn device_authorization(&self, base: &str, scope: &str) -> (String, String) {
        let body = serde_urlencoded::to_string([
            ("client_id", self.client_id.as_str()),
            ("scope", scope),
            ("dpop_jkt", &self.key.public_jwk().thumbprint().to_string()),
        ])
        .expect("a form");
        let r = Reply::read(
            self.http
                .post(format!("{base}{}", paths::DEVICE_AUTHORIZATION))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await,
        )
        .await;
        assert!(r.ok(), "device authorization: {r:?}");
        (
            r.get("device_code").expect("device_code").to_owned(),
            r.get("verification_uri_complete")
                .expect("verification_uri_complete")
                .to_owned(),
        )
    }

    /// Approve a device code on node `base`'s pages (a fresh browser signs in as [`USER`]).
    pub async fn approve_device(&self, verification_uri_complete: &str) {
        Browser::new(ReqwestTransport::new().expect("a transport"))
            .approve_device(verification_uri_complete, USER.0, USER.1)
            .await
            .expect("approving the device code");
    }

    /// Poll `device_code` at node `base` (fresh proof with `c_s256`).
    pub async fn poll_device(&self, base: &str, device_code: &str) -> Reply {
        let proof = self.proof("POST", paths::TOKEN, Some(device_code), None, None);
        self.token(
            base,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
            ],
            &proof,
        )
        .await
    }
}
