//! Issue 13, §4: two `keybound serve` processes on one PostgreSQL (the test kit's throwaway
//! cluster on loopback), sharing only the database and the two secrets, started at the same
//! moment on an empty database (one key set), then raced and crashed.
//! The test plays the load balancer: it sends each request to a node of its choice. Every loop
//! is bounded in count (and every request by the client's 10 s timeout).
//!
//! What "correct" means under a crash (docs/operations.md, many nodes): a request cut off by a
//! killed node or a lost database is retried on the other node with the same single-use
//! artefact. If the cut request had committed, the retry is a reuse and is refused (a code or
//! refresh token is never redeemed twice, and reuse detection cannot tell a retry from a
//! thief); otherwise it succeeds. Every token a client *received* stays valid.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keybound_rp::{HttpRequest, HttpResponse, ReqwestTransport, Rp, RpConfig, RpError, Transport};
use keybound_testkit::browser::Browser;
use keybound_testkit::cluster::{Cluster, DpopClient, Reply, CLIENT, NONCE_CLIENT, REDIRECT, USER};
use keybound_testkit::keys;
use keybound_testkit::pg::TestPostgres;
use keybound_verify::SystemClock;
use tokio::task::JoinSet;

const BOUND: &str = "openid bound_key";
const OFFLINE: &str = "openid offline_access bound_key";

async fn cluster(pg: &TestPostgres, dir: &tempfile::TempDir) -> Cluster {
    Cluster::start(
        env!("CARGO_BIN_EXE_keybound"),
        &dir.path().join("data"),
        Some(&pg.fresh_database()),
        2,
        &[],
    )
    .await
}

/// The nodes started at the same moment on an empty database made one signing-key set.
fn one_key_set(c: &Cluster) {
    let keys = c.admin(&["keys", "list"]);
    let states: Vec<&str> = keys.lines().filter_map(|l| l.split('\t').nth(2)).collect();
    assert_eq!(states, ["current", "next"], "{keys}");
}

async fn health(base: &str) -> Option<u16> {
    reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// The load balancer's choice, made by the test: the RP's token requests go to `token_node`.
struct TokenRequestsTo {
    inner: ReqwestTransport,
    issuer: String,
    token_node: String,
}

#[async_trait]
impl Transport for TokenRequestsTo {
    async fn send(&self, mut req: HttpRequest) -> Result<HttpResponse, RpError> {
        if req.url == format!("{}/token", self.issuer) {
            req.url = format!("{}/token", self.token_node);
        }
        self.inner.send(req).await
    }
}

/// A refused redemption of a used artefact: `invalid_grant`, nothing else.
fn refused(r: &Reply) -> bool {
    r.status == 400 && r.error() == "invalid_grant"
}

/// The database or the node was away: a transport failure or a clean `server_error`.
fn cut(r: &Reply) -> bool {
    r.status == 0 || (matches!(r.status, 500 | 503) && r.error() == "server_error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_raced_by_eight_over_two_nodes_redeem_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(TestPostgres::shared(), &dir).await;
    one_key_set(&c);
    let client = Arc::new(DpopClient::new(&c.issuer, CLIENT, keys::es256_a()));
    let codes = client.mint_codes(200, BOUND).await;
    let nodes = [c.node(0), c.node(1)];
    let mut wins = BTreeMap::new();
    let mut other = Vec::new();
    // four codes at a time, each raced by eight redemptions, four through each node
    for chunk in codes.chunks(4) {
        let mut racers = JoinSet::new();
        for code in chunk {
            for r in 0..8 {
                let (client, code, node) = (client.clone(), code.clone(), nodes[r % 2].clone());
                racers.spawn(async move {
                    let reply = client.redeem(&node, &code, None).await;
                    (code, reply)
                });
            }
        }
        while let Some(done) = racers.join_next().await {
            let (code, reply) = done.unwrap();
            if reply.ok() {
                *wins.entry(code).or_insert(0) += 1;
            } else if !refused(&reply) {
                other.push(reply);
            }
        }
    }
    assert!(other.is_empty(), "losers must get invalid_grant: {other:?}");
    assert_eq!(wins.len(), 200, "every code redeemed once");
    assert!(
        wins.values().all(|&n| n == 1),
        "a code redeemed twice: {:?}",
        wins.iter().filter(|(_, &n)| n != 1).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rp_library_signs_in_through_node_0_and_redeems_at_node_1() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(TestPostgres::shared(), &dir).await;
    let rp = Rp::new(
        RpConfig::new(&c.issuer, CLIENT, REDIRECT),
        Arc::new(TokenRequestsTo {
            inner: ReqwestTransport::new().unwrap(),
            issuer: c.issuer.clone(),
            token_node: c.node(1),
        }),
        Arc::new(SystemClock),
    );
    let pending = rp.begin().await.unwrap();
    let back = Browser::new(ReqwestTransport::new().unwrap())
        .sign_in(&pending.url, None, USER.0, USER.1)
        .await
        .unwrap();
    let code = rp.callback(&pending, &back).unwrap();
    let session = rp.exchange(pending, &code).await.unwrap();
    assert!(
        session.bound,
        "node 1 issued a key-bound ID Token for node 0's code"
    );
}

/// The `kid` and state of each signing key, from `keybound admin keys list`.
fn key_states(c: &Cluster) -> Vec<(String, String)> {
    c.admin(&["keys", "list"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(((*f.first()?).to_owned(), (*f.get(2)?).to_owned()))
        })
        .collect()
}

/// The `kid` in the header of the ID Token of `reply`.
fn id_token_kid(reply: &Reply) -> String {
    let jwt = reply.get("id_token").unwrap();
    let header = keybound_jose::b64::decode(jwt.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_one_node_is_seen_by_all_within_the_key_cache_time() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(
        env!("CARGO_BIN_EXE_keybound"),
        &dir.path().join("data"),
        Some(&TestPostgres::shared().fresh_database()),
        2,
        &[("KEYBOUND_KEY_CACHE_TTL", "1")],
    )
    .await;
    let nodes = [c.node(0), c.node(1)];
    let client = DpopClient::new(&c.issuer, CLIENT, keys::es256_a());
    let state_of = |keys: &[(String, String)], state: &str| {
        keys.iter()
            .find(|(_, s)| s == state)
            .map(|(k, _)| k.clone())
            .unwrap()
    };
    let before = key_states(&c);
    let (current, next) = (state_of(&before, "current"), state_of(&before, "next"));
    for node in &nodes {
        let code = client.mint_codes(1, BOUND).await.remove(0);
        assert_eq!(
            id_token_kid(&client.redeem(node, &code, None).await),
            current
        );
    }
    // rotated by an admin run against the database (any node's host)
    c.admin(&["keys", "rotate"]);
    assert_eq!(state_of(&key_states(&c), "current"), next);
    // both nodes sign with the new current key within the cache time (1 s; bounded 5 s)
    for node in &nodes {
        let mut kid = String::new();
        for _ in 0..25 {
            let code = client.mint_codes(1, BOUND).await.remove(0);
            kid = id_token_kid(&client.redeem(node, &code, None).await);
            if kid == next {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(kid, next, "{node} still signs with the old key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_raced_over_two_nodes_and_replay_kills_the_family_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(TestPostgres::shared(), &dir).await;
    let client = Arc::new(DpopClient::new(&c.issuer, CLIENT, keys::es256_a()));
    let nodes = [c.node(0), c.node(1)];
    let codes = client.mint_codes(2, OFFLINE).await;

    // eight refreshes of one token, four through each node: one wins
    let first = client.redeem(&nodes[0], &codes[0], None).await;
    let rt = first.get("refresh_token").unwrap().to_owned();
    let mut racers = JoinSet::new();
    for r in 0..8 {
        let (client, rt, node) = (client.clone(), rt.clone(), nodes[r % 2].clone());
        racers.spawn(async move { client.refresh(&node, &rt).await });
    }
    let mut replies = Vec::new();
    while let Some(r) = racers.join_next().await {
        replies.push(r.unwrap());
    }
    let winners: Vec<&Reply> = replies.iter().filter(|r| r.ok()).collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    assert!(
        replies.iter().filter(|r| !r.ok()).all(refused),
        "{replies:?}"
    );
    // the losers presented a used token: reuse, so even the winner's successor is dead
    let successor = winners[0].get("refresh_token").unwrap();
    for node in &nodes {
        assert!(refused(&client.refresh(node, successor).await), "{node}");
    }

    // a clean rotation on node 0, the rotated-out token replayed on node 1
    let second = client.redeem(&nodes[1], &codes[1], None).await;
    let rt_a = second.get("refresh_token").unwrap();
    let rotated = client.refresh(&nodes[0], rt_a).await;
    assert!(rotated.ok(), "{rotated:?}");
    let (rt_b, at_b) = (
        rotated.get("refresh_token").unwrap(),
        rotated.get("access_token").unwrap(),
    );
    let p = client.userinfo_proof(at_b);
    assert!(client.userinfo(&nodes[1], at_b, &p).await.ok());
    let replay = client.refresh(&nodes[1], rt_a).await;
    assert!(refused(&replay), "{replay:?}");
    assert!(
        replay.body["error_description"]
            .as_str()
            .unwrap()
            .contains("reuse"),
        "{replay:?}"
    );
    // the family and its access tokens are gone on both nodes
    for node in &nodes {
        assert!(refused(&client.refresh(node, rt_b).await), "{node}");
        let p = client.userinfo_proof(at_b);
        assert_eq!(client.userinfo(node, at_b, &p).await.status, 401, "{node}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_replay_and_nonces_span_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(TestPostgres::shared(), &dir).await;
    let nodes = [c.node(0), c.node(1)];

    // a proof accepted by node 0 is a replay at node 1
    let client = DpopClient::new(&c.issuer, CLIENT, keys::es256_a());
    let code = client.mint_codes(1, BOUND).await.remove(0);
    let tokens = client.redeem(&nodes[0], &code, None).await;
    let at = tokens.get("access_token").unwrap();
    let proof = client.userinfo_proof(at);
    assert!(client.userinfo(&nodes[0], at, &proof).await.ok());
    let replay = client.userinfo(&nodes[1], at, &proof).await;
    assert_eq!(
        (replay.status, replay.error().as_str()),
        (401, "invalid_dpop_proof"),
        "{replay:?}"
    );
    assert!(client
        .userinfo(&nodes[1], at, &client.userinfo_proof(at))
        .await
        .ok());

    // a nonce issued by node 0 is accepted by node 1
    let client = DpopClient::new(&c.issuer, NONCE_CLIENT, keys::es256_b());
    let code = client.mint_codes(1, BOUND).await.remove(0);
    let ask = client.redeem(&nodes[0], &code, None).await;
    assert_eq!(ask.error(), "use_dpop_nonce", "{ask:?}");
    let nonce = ask.dpop_nonce.clone().unwrap();
    let tokens = client.redeem(&nodes[1], &code, Some(&nonce)).await;
    assert!(tokens.ok(), "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_polled_on_both_nodes_slow_down_and_one_redemption() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(TestPostgres::shared(), &dir).await;
    let nodes = [c.node(0), c.node(1)];
    let client = DpopClient::new(&c.issuer, CLIENT, keys::es256_a());
    let (device_code, complete) = client.device_authorization(&nodes[1], BOUND).await;
    let first = client.poll_device(&nodes[0], &device_code).await;
    assert_eq!(first.error(), "authorization_pending", "{first:?}");
    // node 1 knows node 0 was just polled: slow_down, interval up by 5 s (RFC 8628 §3.5)
    let second = client.poll_device(&nodes[1], &device_code).await;
    assert_eq!(second.error(), "slow_down", "{second:?}");
    client
        .approve_device(&complete.replace(&nodes[0], &nodes[1]))
        .await;
    // wait out the interval (now 10 s), then poll both at once
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let (a, b) = tokio::join!(
        client.poll_device(&nodes[0], &device_code),
        client.poll_device(&nodes[1], &device_code)
    );
    let ok = [&a, &b].iter().filter(|r| r.ok()).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
    let loser = if a.ok() { &b } else { &a };
    assert!(
        matches!(loser.error().as_str(), "slow_down" | "invalid_grant"),
        "{loser:?}"
    );
}

/// Issue 26 item 9: the guessing allowances are the deployment's, not each node's. Six wrong
/// passwords for one account and six wrong user codes from one browser, alternating between
/// the nodes: the first five of each are answered, the sixth is refused with 429 (with the
/// counts in each node's memory, each node allowed five: ten in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_allowances_are_one_over_two_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(TestPostgres::shared(), &dir).await;
    let nodes = [c.node(0), c.node(1)];
    let client = DpopClient::new(&c.issuer, CLIENT, keys::es256_a());

    let mut browser = Browser::new(ReqwestTransport::new().unwrap());
    let mut passwords = Vec::new();
    for (i, node) in nodes.iter().cycle().take(6).enumerate() {
        let url = client
            .authorization_url(BOUND, i)
            .replacen(&c.issuer, node, 1);
        let login = browser.get(&url).await.unwrap();
        assert_eq!(login.status, 200, "{}", login.body);
        let answer = browser
            .submit(
                &format!("{node}/authorize"),
                &login,
                &[("username", USER.0), ("password", "not-the-password")],
            )
            .await
            .unwrap();
        passwords.push(answer.status);
    }
    assert_eq!(passwords, [401, 401, 401, 401, 401, 429]);

    let mut browser = Browser::new(ReqwestTransport::new().unwrap());
    let mut codes = Vec::new();
    for node in nodes.iter().cycle().take(6) {
        let entry = browser.get(&format!("{node}/device")).await.unwrap();
        let answer = browser
            .submit(
                &format!("{node}/device"),
                &entry,
                &[("user_code", "BCDF-GHJK")],
            )
            .await
            .unwrap();
        codes.push(answer.status);
    }
    assert_eq!(codes, [400, 400, 400, 400, 400, 429]);
}

/// What the load did, for the crash tests' assertions.
#[derive(Debug, Default)]
struct Tally {
    /// successful redemptions per code
    wins: BTreeMap<String, u32>,
    /// codes and chains whose request was cut off (node killed, database away)
    cut: u32,
    /// chains whose retry after a cut was refused: the cut request had committed
    dead_chains: Vec<(String, String)>,
    /// the live chains' newest refresh and access tokens
    live_chains: Vec<(String, String)>,
    /// answers that are none of: success, cut, refusal after a cut
    wrong: Vec<String>,
    /// 5xx answers by status, OAuth error code and `Retry-After`
    server_errors: BTreeMap<String, u32>,
}

/// Load over both nodes until `stop` (bounded by `rounds` per worker): `chains` refresh
/// chains and the `codes`, each request to node `i % 2`; a cut request is retried (after
/// 50 ms) with the same artefact, on the other node.
async fn load(
    client: Arc<DpopClient>,
    nodes: [String; 2],
    chains: Vec<(String, String)>,
    codes: Vec<String>,
    rounds: usize,
    progress: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut workers = JoinSet::new();
    let note = |t: &Mutex<Tally>, r: &Reply| {
        if r.status >= 500 {
            *t.lock()
                .unwrap()
                .server_errors
                .entry(format!(
                    "{} {} retry-after {}",
                    r.status,
                    r.error(),
                    r.retry_after.as_deref().unwrap_or("none")
                ))
                .or_insert(0) += 1;
        }
    };
    for (w, (mut rt, mut at)) in chains.into_iter().enumerate() {
        let (client, nodes, tally, progress, stop) = (
            client.clone(),
            nodes.clone(),
            tally.clone(),
            progress.clone(),
            stop.clone(),
        );
        workers.spawn(async move {
            let mut after_cut = false;
            for i in 0..rounds {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = client.refresh(&nodes[(i + w) % 2], &rt).await;
                note(&tally, &r);
                if r.ok() {
                    rt = r.get("refresh_token").unwrap().to_owned();
                    at = r.get("access_token").unwrap().to_owned();
                    after_cut = false;
                    progress.fetch_add(1, Ordering::Relaxed);
                } else if cut(&r) {
                    tally.lock().unwrap().cut += 1;
                    after_cut = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else if after_cut && refused(&r) {
                    tally.lock().unwrap().dead_chains.push((rt, at));
                    return;
                } else {
                    tally.lock().unwrap().wrong.push(format!("refresh: {r:?}"));
                    return;
                }
            }
            tally.lock().unwrap().live_chains.push((rt, at));
        });
    }
    let queue = Arc::new(Mutex::new(codes));
    for w in 0..2 {
        let (client, nodes, tally, progress, stop, queue) = (
            client.clone(),
            nodes.clone(),
            tally.clone(),
            progress.clone(),
            stop.clone(),
            queue.clone(),
        );
        workers.spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let Some(code) = queue.lock().unwrap().pop() else {
                    break;
                };
                let mut after_cut = false;
                for _ in 0..rounds {
                    i += 1;
                    let r = client.redeem(&nodes[i % 2], &code, None).await;
                    note(&tally, &r);
                    if r.ok() {
                        *tally.lock().unwrap().wins.entry(code.clone()).or_insert(0) += 1;
                        progress.fetch_add(1, Ordering::Relaxed);
                        break;
                    } else if cut(&r) {
                        tally.lock().unwrap().cut += 1;
                        after_cut = true;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    } else {
                        if !(after_cut && refused(&r)) {
                            tally.lock().unwrap().wrong.push(format!("code: {r:?}"));
                        }
                        break;
                    }
                }
            }
        });
    }
    while let Some(w) = workers.join_next().await {
        w.unwrap();
    }
    Arc::try_unwrap(tally).unwrap().into_inner().unwrap()
}

/// [`load`] running in the background: 6 refresh chains and 150 codes over both nodes.
struct Running {
    progress: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Tally>,
}

impl Running {
    async fn start(client: &Arc<DpopClient>, nodes: &[String; 2]) -> Running {
        let chains = chains(client, &nodes[0], 6).await;
        let codes = client.mint_codes(150, BOUND).await;
        let (progress, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let task = tokio::spawn(load(
            client.clone(),
            nodes.clone(),
            chains,
            codes,
            400,
            progress.clone(),
            stop.clone(),
        ));
        Running {
            progress,
            stop,
            task,
        }
    }

    /// Successful requests so far.
    fn progress(&self) -> usize {
        self.progress.load(Ordering::Relaxed)
    }

    /// Wait (at most 30 s) until the load has had `target` successes.
    async fn reach(&self, target: usize, what: &str) {
        for _ in 0..600 {
            if self.progress() >= target {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{what}: {} of {target} successes within 30 s",
            self.progress()
        );
    }

    /// Stop the load; what it did.
    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let tally = self.task.await.unwrap();
        eprintln!(
            "{} codes won, {} cut, {} live / {} dead chains, 5xx {:?}",
            tally.wins.len(),
            tally.cut,
            tally.live_chains.len(),
            tally.dead_chains.len(),
            tally.server_errors
        );
        tally
    }
}

/// `n` refresh chains (each a redeemed offline_access code): (refresh token, access token).
async fn chains(client: &DpopClient, node: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for code in client.mint_codes(n, OFFLINE).await {
        let r = client.redeem(node, &code, None).await;
        out.push((
            r.get("refresh_token").unwrap().to_owned(),
            r.get("access_token").unwrap().to_owned(),
        ));
    }
    out
}

/// After the load: every code won at most once, every live chain's newest tokens work on
/// both nodes, every dead chain is refused on both.
async fn check_after(client: &DpopClient, nodes: &[String; 2], t: &Tally) {
    assert!(t.wrong.is_empty(), "unexpected answers: {:#?}", t.wrong);
    assert!(
        t.wins.values().all(|&n| n == 1),
        "a code redeemed twice: {:?}",
        t.wins
    );
    assert!(
        t.dead_chains.len() <= t.cut as usize,
        "more dead chains than cut requests"
    );
    for (i, (rt, at)) in t.live_chains.iter().enumerate() {
        let node = &nodes[i % 2];
        let p = client.userinfo_proof(at);
        assert!(
            client.userinfo(node, at, &p).await.ok(),
            "chain {i}: access token lost"
        );
        let r = client.refresh(node, rt).await;
        assert!(r.ok(), "chain {i}: refresh token lost: {r:?}");
    }
    for (rt, _) in &t.dead_chains {
        for node in nodes {
            assert!(refused(&client.refresh(node, rt).await));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(TestPostgres::shared(), &dir).await;
    let nodes = [c.node(0), c.node(1)];
    let client = Arc::new(DpopClient::new(&c.issuer, CLIENT, keys::es256_a()));
    let run = Running::start(&client, &nodes).await;
    run.reach(80, "before the kill").await;
    c.kill_9(1);
    // node 0 keeps serving alone
    run.reach(run.progress() + 120, "after the kill").await;
    let tally = run.finish().await;
    assert!(tally.cut > 0, "the kill cut nothing off: {tally:?}");
    assert!(
        tally.server_errors.is_empty(),
        "the surviving node failed: {tally:?}"
    );
    // node 1 rejoins
    c.restart(1).await;
    check_after(&client, &nodes, &tally).await;
    let code = client.mint_codes(1, BOUND).await.remove(0);
    assert!(client.redeem(&nodes[1], &code, None).await.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_stopped_under_load_fails_cleanly_and_recovers() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(&pg, &dir).await;
    let nodes = [c.node(0), c.node(1)];
    let client = Arc::new(DpopClient::new(&c.issuer, CLIENT, keys::es256_a()));
    let run = Running::start(&client, &nodes).await;
    run.reach(80, "before the outage").await;
    pg.stop();
    let at_stop = run.progress();
    // a load balancer takes both nodes out within seconds (bounded by the acquire timeout)
    for node in &nodes {
        assert_eq!(
            health(node).await,
            Some(503),
            "{node} while PostgreSQL is down"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = run.progress() - at_stop;
    pg.restart();
    // the nodes recover by themselves
    run.reach(at_stop + during + 120, "after PostgreSQL came back")
        .await;
    let tally = run.finish().await;
    assert!(
        tally
            .server_errors
            .keys()
            .all(|e| e == "503 server_error retry-after 1"),
        "{tally:?}"
    );
    assert!(
        tally.server_errors.values().sum::<u32>() > 0,
        "the outage produced no errors: {tally:?}"
    );
    assert!(during <= 12, "{during} successes while PostgreSQL was down");
    for (i, node) in nodes.iter().enumerate() {
        assert!(c.is_running(i), "node {i} exited");
        assert_eq!(health(node).await, Some(200), "{node} after the outage");
    }
    check_after(&client, &nodes, &tally).await;
}

/// What a browser or client got while the database was away.
fn unavailable(what: &str, status: u16, retry_after: Option<&str>) {
    assert_eq!(
        (status, retry_after),
        (503, Some("1")),
        "{what}: expected 503 with Retry-After while PostgreSQL is stopped"
    );
}

/// POST `fields` as a form to `url` from `browser`, with its cookies; status and `Retry-After`.
async fn post_form(
    browser: &mut Browser<ReqwestTransport>,
    url: &str,
    fields: &[(String, String)],
) -> (u16, Option<String>) {
    let body = serde_urlencoded::to_string(fields).unwrap();
    let r = browser
        .request(HttpRequest::post_form(url, body.into_bytes()))
        .await
        .unwrap();
    (r.status, r.header("retry-after").map(str::to_owned))
}

/// A form page's hidden fields with `extra` set.
fn fields(page: &keybound_testkit::browser::Page, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut f = keybound_testkit::browser::hidden_fields(&page.body);
    for (k, v) in extra {
        f.retain(|(n, _)| n != k);
        f.push(((*k).to_owned(), (*v).to_owned()));
    }
    f
}

/// Issue 22 item 2: with PostgreSQL stopped under a signed-in browser, every endpoint that
/// needs the database answers 503 with `Retry-After` (JSON `server_error` at the APIs, an error
/// page in the browser) — never the sign-in page, a 4xx, "signed out" or "inactive" — and
/// those that need none (discovery, the device page) answer as usual. Before the fix: the
/// signed-in `GET /authorize` showed the sign-in page (200), the consent post 401, logout 200,
/// and `/authorize` after the client cache expired 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_stopped_under_a_signed_in_browser_every_endpoint_answers_503() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(
        env!("CARGO_BIN_EXE_keybound"),
        &dir.path().join("data"),
        Some(&pg.fresh_database()),
        1,
        &[],
    )
    .await;
    c.admin(&[
        "client",
        "add",
        "--client-id",
        "conf",
        "--redirect-uri",
        REDIRECT,
        "--auth-method",
        "client_secret_post",
        "--secret",
        "conf-secret-0123456789",
    ]);
    let node = c.node(0);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let client = DpopClient::new(&c.issuer, CLIENT, keys::es256_a());
    let codes = client.mint_codes(2, OFFLINE).await;
    let tokens = client.redeem(&node, &codes[0], None).await;
    assert!(tokens.ok(), "{tokens:?}");
    let at = tokens.get("access_token").unwrap().to_owned();
    let rt = tokens.get("refresh_token").unwrap().to_owned();
    let introspect = |token: &str| {
        let form = [
            ("client_id", "conf"),
            ("client_secret", "conf-secret-0123456789"),
            ("token", token),
        ];
        http.post(format!("{node}/introspect")).form(&form).send()
    };
    assert_eq!(introspect(&rt).await.unwrap().status(), 200);

    // a signed-in browser holding a consent form, a device form and the sign-out token; a
    // second browser holding the sign-in form
    let mut browser = Browser::new(ReqwestTransport::new().unwrap());
    browser
        .sign_in(
            &client.authorization_url(BOUND, 10),
            Some(REDIRECT),
            USER.0,
            USER.1,
        )
        .await
        .unwrap();
    let signed_in_url = client.authorization_url(BOUND, 11);
    let consent = browser
        .get(&format!(
            "{}&prompt=consent",
            client.authorization_url(BOUND, 12)
        ))
        .await
        .unwrap();
    assert!(
        consent.body.contains("name=\"decision\""),
        "{}",
        consent.body
    );
    let csrf = keybound_testkit::browser::input_value(&consent.body, "csrf").unwrap();
    let device = browser.get(&format!("{node}/device")).await.unwrap();
    assert_eq!(device.status, 200);
    let mut stranger = Browser::new(ReqwestTransport::new().unwrap());
    let login = stranger
        .get(&client.authorization_url(BOUND, 13))
        .await
        .unwrap();
    assert!(login.body.contains("name=\"password\""), "{}", login.body);

    pg.stop();

    // the End-User's pages
    let r = browser
        .request(HttpRequest::get(&signed_in_url))
        .await
        .unwrap();
    unavailable(
        "GET /authorize, signed in",
        r.status,
        r.header("retry-after"),
    );
    let authorize = format!("{node}/authorize");
    let (s, ra) = post_form(
        &mut browser,
        &authorize,
        &fields(&consent, &[("decision", "allow")]),
    )
    .await;
    unavailable("consent", s, ra.as_deref());
    let (s, ra) = post_form(
        &mut stranger,
        &authorize,
        &fields(&login, &[("username", USER.0), ("password", USER.1)]),
    )
    .await;
    unavailable("sign-in", s, ra.as_deref());
    let (s, ra) = post_form(
        &mut browser,
        &format!("{node}/device"),
        &fields(&device, &[("user_code", "BCDF-GHJK")]),
    )
    .await;
    unavailable("device code entry", s, ra.as_deref());
    let (s, ra) = post_form(
        &mut browser,
        &format!("{node}/logout"),
        &[("csrf".to_owned(), csrf)],
    )
    .await;
    unavailable("sign-out", s, ra.as_deref());

    // the APIs: JSON server_error
    let json = |what: &str, r: &Reply| {
        unavailable(what, r.status, r.retry_after.as_deref());
        assert_eq!(r.error(), "server_error", "{what}: {r:?}");
    };
    json(
        "code redemption",
        &client.redeem(&node, &codes[1], None).await,
    );
    json("refresh", &client.refresh(&node, &rt).await);
    json(
        "userinfo",
        &client
            .userinfo(&node, &at, &client.userinfo_proof(&at))
            .await,
    );
    let form_post = |path: &str, form: Vec<(&'static str, String)>| {
        let url = format!("{node}{path}");
        let req = http.post(url).form(&form);
        async move {
            let r = req.send().await.unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            Reply {
                status,
                body,
                dpop_nonce: None,
                retry_after: retry,
            }
        }
    };
    json(
        "device authorization",
        &form_post(
            "/device_authorization",
            vec![("client_id", CLIENT.into()), ("scope", "openid".into())],
        )
        .await,
    );
    json(
        "revocation",
        &form_post(
            "/revoke",
            vec![("client_id", CLIENT.into()), ("token", rt.clone())],
        )
        .await,
    );
    let r = introspect(&rt).await.unwrap();
    unavailable(
        "introspection",
        r.status().as_u16(),
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
    );
    let r = http
        .post(format!("{node}/register"))
        .bearer_auth("an-initial-access-token")
        .json(&serde_json::json!({ "redirect_uris": [REDIRECT] }))
        .send()
        .await
        .unwrap();
    unavailable(
        "registration",
        r.status().as_u16(),
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
    );
    let r = http.get(format!("{node}/healthz")).send().await.unwrap();
    unavailable(
        "healthz",
        r.status().as_u16(),
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
    );

    // what needs no database answers as usual
    let r = http
        .get(format!("{node}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "discovery");
    assert_eq!(
        browser.get(&format!("{node}/device")).await.unwrap().status,
        200
    );

    // once the client cache (5 s) has expired, /authorize needs the database for the client
    // too: still 503, never "could not look up the client" (400)
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = stranger
        .request(HttpRequest::get(&client.authorization_url(BOUND, 14)))
        .await
        .unwrap();
    unavailable(
        "GET /authorize after the client cache expired",
        r.status,
        r.header("retry-after"),
    );
}
