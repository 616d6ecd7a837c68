//! Issue 26 item 10: a soak with faults. Two `keybound serve` nodes on one PostgreSQL (a
//! throwaway cluster of the test kit's, restartable) carry code, refresh, device, token-exchange
//! and jwt-bearer traffic — the ID-JAGs come from a second trust domain, a SQLite `keybound
//! serve` that is never disturbed — while the test kills (`kill -9`) and restarts either node
//! and restarts PostgreSQL at random moments, one fault at a time. Then every invariant is
//! checked (`keybound_testkit::soak::Ledger`): no code, device code, refresh token, single-use
//! ID-JAG or DPoP proof (`jti`) was accepted twice; no refresh family forked; every token a
//! client was given still verifies, unless it expired or a rule revoked it (a refresh retried
//! after a cut and refused as reuse); no 5xx but 503 with `Retry-After`. Finally a double use
//! planted in the real ledger is caught.
//!
//! A client here retries like a careful real one: after a request that got no answer or a 503
//! it resends *the same* DPoP proof to the other node (so a proof whose request committed before
//! its answer was lost must be refused as a replay), and a fresh proof only after the old one
//! was refused as replayed.
//!
//! Bounded: `KEYBOUND_SOAK_SECS` seconds of faults (default 40; CI runs the default), every
//! request times out after 10 s, every retry loop has a count.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use keybound_op::paths;
use keybound_proto::wire::TokenExchangeRequest;
use keybound_rp::{ReqwestTransport, Rp, RpConfig};
use keybound_testkit::browser::Browser;
use keybound_testkit::cluster::{Cluster, DpopClient, Reply, CLIENT, REDIRECT, USER, VERIFIER};
use keybound_testkit::keys;
use keybound_testkit::pg::TestPostgres;
use keybound_testkit::process::{free_port, wait_ready, Keybound};
use keybound_testkit::soak::{Check, Ledger, Received};

const BOUND: &str = "openid bound_key";
const OFFLINE: &str = "openid offline_access bound_key";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The confidential client of domain A that exchanges ID Tokens for ID-JAGs to B.
const SVC: (&str, &str) = ("svc", "svc-secret-0123456789");
/// The confidential client of domain A that redeems B's ID-JAGs.
const SVC_AT_A: (&str, &str) = ("svc-at-a", "svc-at-a-secret-0123456789");
/// Domain B's client that asks for ID-JAGs to A.
const CHAIN_AT_B: (&str, &str) = ("chain", "chain-secret-0123456789");

fn now() -> u64 {
    use keybound_verify::Clock as _;
    keybound_verify::SystemClock.now()
}

/// The `jti` of a DPoP proof.
fn jti(proof: &str) -> String {
    let payload = proof.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&keybound_jose::b64::decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// A deterministic generator for the fault schedule (its seed is printed).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// What every worker shares.
struct World {
    issuer: String,
    nodes: [String; 2],
    http: reqwest::Client,
    ledger: Mutex<Ledger>,
    deadline: Instant,
}

/// One token request, resent until it is answered.
struct Req<'a> {
    what: &'static str,
    prover: &'a DpopClient,
    basic: Option<(&'a str, &'a str)>,
    form: Vec<(&'a str, String)>,
    /// the code or device code the proof's `c_s256` covers
    code: Option<&'a str>,
}

/// The answer, the proof it carried, and whether an earlier try was cut off.
struct Outcome {
    reply: Reply,
    proof: String,
    after_cut: bool,
}

impl World {
    fn note(&self, f: impl FnOnce(&mut Ledger)) {
        f(&mut self.ledger.lock().unwrap());
    }

    async fn post(
        &self,
        url: &str,
        basic: Option<(&str, &str)>,
        dpop: Option<&str>,
        form: &[(&str, String)],
    ) -> Reply {
        let mut b = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        if let Some((id, secret)) = basic {
            b = b.basic_auth(id, Some(secret));
        }
        if let Some(p) = dpop {
            b = b.header("dpop", p);
        }
        Reply::read(b.send().await).await
    }

    /// Send `r` to node `start`, then alternate: the same proof after a cut or a 503, a fresh
    /// one after a replay refusal; at most 40 tries, 250 ms apart.
    async fn token(&self, r: &Req<'_>, start: usize) -> Outcome {
        let fresh = || r.prover.proof("POST", paths::TOKEN, r.code, None, None);
        let mut proof = fresh();
        let mut after_cut = false;
        let mut reply = None;
        for i in 0..40 {
            let node = &self.nodes[(start + i) % 2];
            let a = self
                .post(
                    &format!("{node}{}", paths::TOKEN),
                    r.basic,
                    Some(&proof),
                    &r.form,
                )
                .await;
            self.note(|l| l.answered(a.status, a.retry_after.as_deref(), r.what));
            if a.status == 0 || a.status == 503 {
                after_cut = true;
                reply = Some(a);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            if after_cut && a.error() == "invalid_dpop_proof" {
                proof = fresh();
                continue;
            }
            return Outcome {
                reply: a,
                proof,
                after_cut,
            };
        }
        Outcome {
            reply: reply.unwrap(),
            proof,
            after_cut,
        }
    }

    fn live(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn unexplained(&self, what: &str, o: &Outcome) {
        let line = format!(
            "{what}: HTTP {} {} (after a cut: {})",
            o.reply.status, o.reply.body, o.after_cut
        );
        self.note(|l| l.unexplained.push(line));
    }
}

/// An access token answer's token, as a [`Received`].
fn received(r: &Reply, check: Check, family: Option<String>) -> Received {
    let expires_in = r.body["expires_in"].as_u64().unwrap_or(0);
    Received {
        token: r.get("access_token").unwrap().to_owned(),
        check,
        expires_at: now() + expires_in,
        family,
    }
}

/// A refresh chain until the deadline.
async fn chain(w: Arc<World>, app: Arc<DpopClient>, id: usize, mut rt: String) {
    let family = format!("chain-{id}");
    let mut i = id;
    while w.live() {
        i += 1;
        let r = Req {
            what: "refresh",
            prover: &app,
            basic: None,
            form: vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt.clone()),
                ("client_id", CLIENT.into()),
            ],
            code: None,
        };
        let o = w.token(&r, i).await;
        if o.reply.ok() {
            let next = o.reply.get("refresh_token").unwrap().to_owned();
            w.note(|l| {
                l.used("refresh", &rt);
                l.accepted(&jti(&o.proof));
                l.rotated(&rt, &next);
                l.tokens
                    .push(received(&o.reply, Check::UserInfo, Some(family.clone())));
            });
            rt = next;
        } else if o.after_cut && o.reply.error() == "invalid_grant" {
            // the cut request had rotated it: the retry is reuse, and the family is revoked
            w.note(|l| {
                l.revoked.insert(family.clone());
            });
            return;
        } else if o.reply.status != 0 && o.reply.status != 503 {
            w.unexplained("refresh", &o);
            return;
        }
    }
}

/// Codes until the deadline: each minted through a node's authorization endpoint by one
/// signed-in browser (a cut-off authorization is simply tried again), then redeemed.
async fn codes(w: Arc<World>, app: Arc<DpopClient>) {
    let mut browser = Browser::new(ReqwestTransport::new().unwrap());
    for i in 0..1_000_000 {
        if !w.live() {
            return;
        }
        let node = &w.nodes[i % 2];
        let url = app.authorization_url(BOUND, i).replacen(&w.issuer, node, 1);
        let Ok(callback) = browser.sign_in(&url, Some(REDIRECT), USER.0, USER.1).await else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let Some(code) = url::Url::parse(&callback)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
        else {
            continue;
        };
        let r = Req {
            what: "code",
            prover: &app,
            basic: None,
            form: vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.clone()),
                ("redirect_uri", REDIRECT.into()),
                ("code_verifier", VERIFIER.into()),
                ("client_id", CLIENT.into()),
            ],
            code: Some(&code),
        };
        let o = w.token(&r, i).await;
        let family = format!("code-{code}");
        if o.reply.ok() {
            w.note(|l| {
                l.used("code", &code);
                l.accepted(&jti(&o.proof));
                l.tokens
                    .push(received(&o.reply, Check::UserInfo, Some(family)));
            });
        } else if o.after_cut && o.reply.error() == "invalid_grant" {
            // redeemed by the cut request; a second redemption revokes what the first issued
            w.note(|l| {
                l.revoked.insert(family);
            });
        } else if o.reply.status != 0 && o.reply.status != 503 {
            w.unexplained("code", &o);
        }
    }
}

/// Device flows until the deadline: authorize at a node, approve in a browser, poll.
async fn devices(w: Arc<World>, app: Arc<DpopClient>) {
    let jkt = app_jkt(&app);
    for round in 0..1000 {
        if !w.live() {
            return;
        }
        let node = &w.nodes[round % 2];
        let start = w
            .post(
                &format!("{node}{}", paths::DEVICE_AUTHORIZATION),
                None,
                None,
                &[
                    ("client_id", CLIENT.into()),
                    ("scope", BOUND.into()),
                    ("dpop_jkt", jkt.clone()),
                ],
            )
            .await;
        w.note(|l| {
            l.answered(
                start.status,
                start.retry_after.as_deref(),
                "device authorization",
            );
        });
        if !start.ok() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let device_code = start.get("device_code").unwrap().to_owned();
        let complete = start.get("verification_uri_complete").unwrap().to_owned();
        // the browser is cut off like any client; an unapproved code simply expires
        let approved = Browser::new(ReqwestTransport::new().unwrap())
            .approve_device(&complete, USER.0, USER.1)
            .await;
        if approved.is_err() {
            continue;
        }
        let mut interval = 5;
        for poll in 0..12 {
            tokio::time::sleep(Duration::from_millis(interval * 1000 + 200)).await;
            let r = Req {
                what: "device",
                prover: &app,
                basic: None,
                form: vec![
                    ("grant_type", DEVICE_CODE.into()),
                    ("device_code", device_code.clone()),
                    ("client_id", CLIENT.into()),
                ],
                code: Some(&device_code),
            };
            let o = w.token(&r, round + poll).await;
            match o.reply.error().as_str() {
                _ if o.reply.ok() => {
                    w.note(|l| {
                        l.used("device code", &device_code);
                        l.accepted(&jti(&o.proof));
                        l.tokens.push(received(&o.reply, Check::UserInfo, None));
                    });
                    break;
                }
                "slow_down" => interval += 5,
                "invalid_grant" if o.after_cut => break,
                "authorization_pending" | "transport" | "server_error" => {}
                _ => {
                    w.unexplained("device", &o);
                    break;
                }
            }
        }
    }
}

fn app_jkt(app: &DpopClient) -> String {
    // the proof's header carries the client's public key: its thumbprint is the dpop_jkt
    let proof = app.proof("POST", paths::TOKEN, None, None, None);
    let header: serde_json::Value = serde_json::from_slice(
        &keybound_jose::b64::decode(proof.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    keybound_jose::PublicJwk::from_value(&header["jwk"])
        .unwrap()
        .thumbprint()
        .to_string()
}

/// Whether a refusal says the subject ID Token expired (a session lives five minutes).
fn expired_subject(r: &Reply) -> bool {
    r.error() == "invalid_request"
        && r.get("error_description")
            .is_some_and(|d| d.contains("expired"))
}

/// Token exchange of `svc`'s key-bound ID Token into ID-JAGs for domain B, until the deadline
/// (a new session when the ID Token expired).
async fn exchanges(w: Arc<World>, b_issuer: String) {
    let mut current: Option<(String, DpopClient)> = None;
    for i in 0..1_000_000 {
        if !w.live() {
            return;
        }
        let Some((id_token, prover)) = &current else {
            match session(&w.issuer, SVC, ("alice-a", "wonderland-a")).await {
                Some((_, s)) => {
                    let prover = DpopClient::new(&w.issuer, SVC.0, s.key().unwrap());
                    current = Some((s.id_token.clone(), prover));
                }
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
            continue;
        };
        let mut form: Vec<(&str, String)> = TokenExchangeRequest::id_jag(id_token, &b_issuer)
            .form()
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect();
        form.push(("scope", "orders.read".into()));
        let r = Req {
            what: "token exchange",
            prover,
            basic: Some(SVC),
            form,
            code: None,
        };
        let o = w.token(&r, i).await;
        if o.reply.ok() {
            w.note(|l| l.accepted(&jti(&o.proof)));
        } else if expired_subject(&o.reply) {
            current = None;
        } else if o.reply.status != 0 && o.reply.status != 503 {
            w.unexplained("token exchange", &o);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ID-JAGs minted by domain B (never disturbed) and redeemed at A, each once, until the
/// deadline (a new session at B when its ID Token expired).
async fn jwt_bearers(w: Arc<World>, b_issuer: String) {
    let mut current: Option<(Rp, keybound_rp::Session, DpopClient)> = None;
    for i in 0..1_000_000 {
        if !w.live() {
            return;
        }
        let Some((rp_b, session_b, prover)) = &current else {
            match session(&b_issuer, CHAIN_AT_B, ("alice-b", "wonderland-b")).await {
                Some((rp, s)) => {
                    let prover = DpopClient::new(&w.issuer, SVC_AT_A.0, s.key().unwrap());
                    current = Some((rp, s, prover));
                }
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
            continue;
        };
        let Ok(jag) = rp_b
            .exchange_for_id_jag(session_b, &w.issuer, Some("orders.read"), None)
            .await
        else {
            current = None;
            continue;
        };
        let r = Req {
            what: "jwt-bearer",
            prover,
            basic: Some(SVC_AT_A),
            form: vec![
                ("grant_type", JWT_BEARER.into()),
                ("assertion", jag.token.clone()),
            ],
            code: None,
        };
        let o = w.token(&r, i).await;
        if o.reply.ok() {
            w.note(|l| {
                l.used("ID-JAG", &jag.token);
                l.accepted(&jti(&o.proof));
                l.tokens
                    .push(received(&o.reply, Check::Introspection, None));
            });
        } else if !(o.after_cut && o.reply.error() == "invalid_grant")
            && o.reply.status != 0
            && o.reply.status != 503
        {
            w.unexplained("jwt-bearer", &o);
            return;
        }
    }
}

fn confidential(kb_admin: &dyn Fn(&[&str]) -> String, (id, secret): (&str, &str), extra: &[&str]) {
    let mut args = vec![
        "client",
        "add",
        "--client-id",
        id,
        "--auth-method",
        "client_secret_basic",
        "--secret",
        secret,
        "--redirect-uri",
        REDIRECT,
    ];
    args.extend_from_slice(extra);
    kb_admin(&args);
}

/// Sign in at `issuer` as `client` and finish the code flow: the key-bound session (none
/// when a step was cut off).
async fn session(
    issuer: &str,
    (id, secret): (&str, &str),
    user: (&str, &str),
) -> Option<(Rp, keybound_rp::Session)> {
    let rp = Rp::new(
        RpConfig::new(issuer, id, REDIRECT).with_client_secret(secret.into()),
        Arc::new(ReqwestTransport::new().unwrap()),
        Arc::new(keybound_verify::SystemClock),
    );
    let pending = rp.begin().await.ok()?;
    let callback = Browser::new(ReqwestTransport::new().unwrap())
        .sign_in(&pending.url, Some(REDIRECT), user.0, user.1)
        .await
        .ok()?;
    let code = rp.callback(&pending, &callback).ok()?;
    let s = rp.exchange(pending, &code).await.ok()?;
    assert!(s.bound);
    Some((rp, s))
}

/// Tokens checked at most at the end (evenly spread over all that must still verify).
const CHECKED: usize = 1500;

/// Does every token that must still verify verify? (All of them, or an even sample of
/// [`CHECKED`] after a long run.) How many were checked, and those lost.
async fn lost_tokens(w: &World, app: &DpopClient, ledger: &Ledger) -> (usize, Vec<String>) {
    let live: Vec<&Received> = ledger.live_tokens(now()).collect();
    let step = live.len().div_ceil(CHECKED).max(1);
    let mut lost = Vec::new();
    let mut checked = 0;
    for (i, t) in live.into_iter().step_by(step).enumerate() {
        checked += 1;
        let node = &w.nodes[i % 2];
        let ok = match t.check {
            Check::UserInfo => {
                let p = app.userinfo_proof(&t.token);
                app.userinfo(node, &t.token, &p).await.ok()
            }
            Check::Introspection => {
                let r = w
                    .post(
                        &format!("{node}{}", paths::INTROSPECT),
                        Some(SVC_AT_A),
                        None,
                        &[("token", t.token.clone())],
                    )
                    .await;
                r.body["active"] == true
            }
        };
        if !ok {
            lost.push(format!(
                "{:?} token of family {:?} no longer verifies",
                t.check, t.family
            ));
        }
    }
    (checked, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_node_kills_and_database_restarts() {
    let secs: u64 = std::env::var("KEYBOUND_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed = std::env::var("KEYBOUND_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(now);
    eprintln!("soak: {secs} s of faults, seed {seed} (KEYBOUND_SOAK_SEED to replay)");
    let bin = env!("CARGO_BIN_EXE_keybound");
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // domain B: SQLite, one process, never disturbed; it mints ID-JAGs for A
    let b = Keybound::new(bin, &dir.path().join("b"));
    let pb = free_port();
    let ib = format!("http://127.0.0.1:{pb}");
    let pg = TestPostgres::start();
    let mut c = Cluster::start(
        bin,
        &dir.path().join("a"),
        Some(&pg.fresh_database()),
        2,
        &[],
    )
    .await;
    let ia = c.issuer.clone();
    b.admin(&[
        "user",
        "add",
        "--username",
        "alice-b",
        "--password",
        "wonderland-b",
        "--email",
        "alice@example.com",
    ]);
    confidential(
        &|a| b.admin(a),
        CHAIN_AT_B,
        &[
            "--exchange-audience",
            &format!("{ia}={}", SVC_AT_A.0),
            "--exchange-scope",
            "orders.read",
        ],
    );
    let _sb = b.serve_env(pb, &[], &[("KEYBOUND_ID_JAG_TTL", "300")]);
    wait_ready(&http, &ib).await;

    // domain A: the cluster, its exchanging and redeeming clients, B trusted (single use)
    c.admin(&[
        "user",
        "add",
        "--username",
        "alice-a",
        "--password",
        "wonderland-a",
        "--email",
        "alice@example.com",
    ]);
    confidential(
        &|a| c.admin(a),
        SVC,
        &[
            "--exchange-audience",
            &format!("{ib}=anyone-at-b"),
            "--exchange-scope",
            "orders.read",
        ],
    );
    confidential(&|a| c.admin(a), SVC_AT_A, &["--grant-type", "jwt-bearer"]);
    c.admin(&[
        "issuer",
        "add",
        "--issuer",
        &ib,
        "--subject",
        "email",
        "--single-use",
    ]);

    let nodes = [c.node(0), c.node(1)];
    let app = Arc::new(DpopClient::new(&ia, CLIENT, keys::es256_a()));
    let mut chain_tokens = Vec::new();
    for code in app.mint_codes(3, OFFLINE).await {
        let r = app.redeem(&nodes[0], &code, None).await;
        chain_tokens.push(r.get("refresh_token").unwrap().to_owned());
    }

    let w = Arc::new(World {
        issuer: ia.clone(),
        nodes: nodes.clone(),
        http: http.clone(),
        ledger: Mutex::default(),
        deadline: Instant::now() + Duration::from_secs(secs),
    });
    let mut load = tokio::task::JoinSet::new();
    for (i, rt) in chain_tokens.into_iter().enumerate() {
        load.spawn(chain(w.clone(), app.clone(), i, rt));
    }
    load.spawn(codes(w.clone(), app.clone()));
    load.spawn(devices(w.clone(), app.clone()));
    load.spawn(exchanges(w.clone(), ib.clone()));
    load.spawn(jwt_bearers(w.clone(), ib.clone()));

    // the faults, one at a time, until the deadline
    let mut dice = Dice(seed);
    let mut faults = Vec::new();
    while w.live() {
        tokio::time::sleep(Duration::from_millis(1500 + 500 * dice.below(8))).await;
        if !w.live() {
            break;
        }
        let down = Duration::from_millis(500 + 500 * dice.below(4));
        let fault = dice.below(3);
        if fault < 2 {
            let n = usize::from(fault == 1);
            c.kill_9(n);
            tokio::time::sleep(down).await;
            c.restart(n).await;
            faults.push(format!("kill -9 node {n}"));
        } else {
            pg.stop();
            tokio::time::sleep(down).await;
            pg.restart();
            faults.push("PostgreSQL restarted".to_owned());
        }
    }
    while let Some(r) = load.join_next().await {
        r.unwrap();
    }
    let ledger = w.ledger.lock().unwrap().clone();
    let (checked, lost) = lost_tokens(&w, &app, &ledger).await;
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for (kind, _) in ledger.uses.keys() {
        *by_kind.entry(kind.as_str()).or_default() += 1;
    }
    eprintln!("soak: single-use artefacts used by kind {by_kind:?}");
    eprintln!(
        "soak: {} faults ({:?}); {} requests, {} cut, {} 503s; {} single-use artefacts used, \
         {} proofs accepted, {} tokens received ({} revoked by a rule), {} checked, {} lost",
        faults.len(),
        faults,
        ledger.requests,
        ledger.cut,
        ledger.server_errors.len(),
        ledger.uses.len(),
        ledger.proofs.len(),
        ledger.tokens.len(),
        ledger.revoked.len(),
        checked,
        lost.len()
    );
    assert!(faults.len() >= 3, "too few faults: {faults:?}");
    for kind in ["code", "refresh", "device code", "ID-JAG"] {
        assert!(
            ledger.uses.keys().any(|(k, _)| k == kind),
            "no {kind} was used: the load did not reach every grant"
        );
    }
    assert!(ledger.violations().is_empty(), "{:#?}", ledger.violations());
    assert!(lost.is_empty(), "{lost:#?}");

    // the checker is not blind: a double use planted in this real ledger is caught
    let mut planted = ledger.clone();
    let (kind, value) = planted.uses.keys().next().unwrap().clone();
    planted.used(&kind, &value);
    assert_eq!(
        planted.violations(),
        [format!("{kind} used 2 times: {value}")]
    );
}
