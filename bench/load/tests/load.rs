//! keybound-load's own tests: argument handling of the binary, the percentile arithmetic, and a
//! short run of every mode against a real keybound OP (keybound-server on a loopback socket)
//! that must end with every request answered 200. No timing is asserted: rates and latencies
//! are reported, never checked (benchmarks are not timed tests).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(clippy::float_cmp)] // percentiles are picked from exact samples, never computed

use std::process::Command;
use std::sync::Arc;

use keybound_load::{cpu_seconds, latency, rss_kb, run, Load, Mode, Settings};
use keybound_store::Client;
use keybound_testkit::op::{public_client, LoopbackOp, OpBuilder, ALICE, REDIRECT};
use keybound_verify::SystemClock;

fn load_tool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keybound-load"))
        .args(args)
        .env_remove("KEYBOUND_LOAD_PASSWORD")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rejects_meaningless_settings_with_a_message() {
    for (args, expect) in [
        (
            &["--mode", "verify", "--rate", "0"][..],
            "--rate must be at least 1",
        ),
        (
            &["--mode", "verify", "--concurrency", "0"][..],
            "--concurrency must be at least 1",
        ),
        (
            &["--mode", "verify", "--requests", "0"][..],
            "--requests must be at least 1",
        ),
        (&["--mode", "code"][..], "--password"),
        (
            &["--mode", "verify", "--rate", "5", "--concurrency", "2"][..],
            "cannot be used with",
        ),
        (&["--mode", "teleport"][..], "invalid value 'teleport'"),
        (&[][..], "--mode"),
    ] {
        let (ok, _, err) = load_tool(args);
        assert!(!ok, "{args:?} must fail");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
    }
}

#[test]
fn verify_mode_prints_a_json_report() {
    let (ok, out, err) = load_tool(&[
        "--mode",
        "verify",
        "--requests",
        "200",
        "--concurrency",
        "4",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "verify");
    assert_eq!(v["requests"], 200);
    assert_eq!(v["ok"], 200, "{v}");
    assert_eq!(v["errors"], serde_json::json!({}));
    assert_eq!(v["load"], serde_json::json!({"concurrency": 4}));
    assert_eq!(v["crypto"]["verifies"], 2);
    assert!(v["efficiency"].as_f64().unwrap() > 0.0);
    // the checks alone take part of a whole presentation's time, never none of it
    let interleaved = v["interleaved_efficiency"].as_f64().unwrap();
    assert!(interleaved > 0.0 && interleaved < 1.5, "{v}");
    for p in ["p50", "p90", "p99", "max"] {
        assert!(v["latency_ms"][p].is_number(), "{p}");
    }
}

#[test]
fn human_summary_names_rate_latency_and_efficiency() {
    let (ok, out, err) = load_tool(&["--mode", "verify", "--requests", "50", "--rate", "500"]);
    assert!(ok, "{err}");
    for word in [
        "50 requests, 50 ok",
        "req/s",
        "p99",
        "crypto bound",
        "efficiency",
    ] {
        assert!(out.contains(word), "{word} missing in {out}");
    }
}

/// The `/proc` readers behind the memory and CPU columns parse real values (this process has
/// resident pages and, after a bounded amount of hashing, CPU time).
#[test]
fn proc_readers_parse_this_process() {
    let me = std::process::id();
    assert!(
        rss_kb(me).unwrap() > 1024,
        "a test process uses more than 1 MB"
    );
    let mut h = [0u8; 32];
    for _ in 0..200_000 {
        h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &h)
            .as_ref()
            .try_into()
            .unwrap();
    }
    assert!(cpu_seconds(me).unwrap() > 0.0, "{h:?}");
    assert_eq!(rss_kb(u32::MAX), None, "no such process");
    assert_eq!(cpu_seconds(u32::MAX), None);
}

#[test]
fn percentiles_are_nearest_rank_over_sorted_samples() {
    let l = latency((1..=100).rev().map(f64::from).collect());
    assert_eq!((l.p50, l.p90, l.p99, l.max), (51.0, 90.0, 99.0, 100.0));
    let one = latency(vec![3.0]);
    assert_eq!((one.p50, one.p99, one.max), (3.0, 3.0, 3.0));
    assert_eq!(latency(Vec::new()).max, 0.0);
}

/// The settings of a code run by the standard End-User against `issuer`.
fn settings(issuer: &str) -> Settings {
    Settings::new(
        issuer,
        ("load", REDIRECT),
        (ALICE.0, ALICE.1),
        Mode::Code,
        Load::Concurrency(2),
        10,
    )
}

/// keybound on loopback with the load tool's client (`dpop_bound_access_tokens`).
async fn start_op() -> LoopbackOp {
    OpBuilder::new()
        .clock(Arc::new(SystemClock))
        .client(Client {
            dpop_bound_access_tokens: true,
            ..public_client("load")
        })
        .serve()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_runs_against_a_loopback_keybound_with_zero_errors() {
    let op = start_op().await;
    let issuer = op.issuer.clone();
    // the last run is --plain-dpop: dpop_jkt without bound_key, proofs without c_s256 (how the
    // tool drives an OP without Key Binding); keybound must accept that as RFC 9449 DPoP
    let issuer = issuer.as_str();
    for (mode, load, key_binding) in [
        (Mode::Code, Load::Concurrency(4), true),
        (Mode::Refresh, Load::Concurrency(3), true),
        (Mode::Userinfo, Load::Rate(400), true),
        (Mode::Device, Load::Concurrency(2), true),
        (Mode::Code, Load::Rate(300), true),
        (Mode::Code, Load::Concurrency(4), false),
    ] {
        let settings = Settings {
            mode,
            load,
            requests: 40,
            server_pids: vec![std::process::id()],
            key_binding,
            ..settings(issuer)
        };
        let r = run(&settings).await.unwrap();
        assert_eq!(
            (r.ok, r.errors.len()),
            (40, 0),
            "{mode:?} {load:?} key binding {key_binding}: {}",
            r.summary()
        );
        assert!(r.rps > 0.0 && r.crypto.bound_rps > 0.0);
        assert!(r.rss_peak_kb.unwrap() >= r.rss_idle_kb.unwrap());
        assert!(r.server_cpu_seconds.unwrap() >= 0.0 && r.client_cpu_seconds.unwrap() >= 0.0);
        // the tool's own lateness is reported for an open loop, once per request
        match (load, &r.send_lag_ms) {
            (Load::Rate(_), Some(l)) => assert!(l.p50 >= 0.0 && l.max >= l.p99, "{l:?}"),
            (Load::Concurrency(_), None) => {}
            (load, lag) => panic!("{load:?}: send lag {lag:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_preparation_instead_of_reporting_errors() {
    let op = start_op().await;
    let issuer = op.issuer.clone();
    let settings = Settings {
        password: "wrong".into(),
        load: Load::Concurrency(2),
        requests: 5,
        ..settings(&issuer)
    };
    let e = run(&settings).await.unwrap_err();
    assert!(
        format!("{e:#}").contains("wrong username or password"),
        "{e:#}"
    );
}

/// The hardening modes: junk token requests are all answered `invalid_grant` (counted as the
/// expected answer); a guessing stream against one account gets 401 for the free failures and
/// then 429, while another End-User still signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_and_guess_modes_report_the_expected_refusals() {
    let op = OpBuilder::new()
        .clock(Arc::new(SystemClock))
        // a first wait longer than the run: with the clock's whole seconds, a second that ended
        // between the fifth and sixth guess let the sixth through (a 1 s wait had passed)
        .configure(|c| c.throttle.base_delay = 60)
        .client(public_client("load"))
        .user(keybound_store::User::new(
            "sub-bob",
            "bob",
            keybound_op::password::hash("builder"),
            0,
        ))
        .serve()
        .await;
    let base = settings(&op.issuer);
    let junk = run(&Settings {
        mode: Mode::Junk,
        requests: 30,
        ..base.clone()
    })
    .await
    .unwrap();
    assert_eq!((junk.ok, junk.errors.len()), (30, 0), "{}", junk.summary());
    let guess = run(&Settings {
        mode: Mode::Guess,
        load: Load::Concurrency(1),
        requests: 12,
        probe: Some(("bob".into(), "builder".into())),
        ..base
    })
    .await
    .unwrap();
    assert_eq!(guess.ok, 5, "the free failures: {}", guess.summary());
    assert_eq!(
        guess.errors.get("throttled (429)"),
        Some(&7),
        "{}",
        guess.summary()
    );
    let probe = guess.probe.unwrap();
    assert!(probe.ok >= 1 && probe.failed.is_empty(), "{probe:?}");
}

/// Identity chaining under load: `exchange` against an IdP, `jwt-bearer` against a resource AS
/// trusting it (two keybound servers on loopback); every request answered as expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_and_jwt_bearer_modes_against_two_loopback_domains() {
    use keybound_store::{ClientAuthMethod, ExchangePolicy};
    use keybound_testkit::op::{client, trusted, IssuerJwks, CLIENT_SECRET};
    let idp = OpBuilder::new().clock(Arc::new(SystemClock)).serve().await;
    let jwks = keybound_jose::JwkSet::from_value(
        &reqwest::get(format!("{}/jwks", idp.issuer))
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap(),
    )
    .unwrap();
    let keys = IssuerJwks([(format!("{}/jwks", idp.issuer), jwks)].into());
    let resource_as = OpBuilder::new()
        .clock(Arc::new(SystemClock))
        .client(Client {
            jwt_bearer: true,
            ..client("svc-at-b", ClientAuthMethod::ClientSecretBasic)
        })
        .trust(trusted(&idp.issuer), Arc::new(keys))
        .serve()
        .await;
    // now that the resource AS has an address, the IdP's client may chain into it
    idp.store
        .put_client(&Client {
            exchange: Some(ExchangePolicy {
                audiences: [(resource_as.issuer.clone(), "svc-at-b".to_owned())].into(),
                ..ExchangePolicy::default()
            }),
            ..client("svc", ClientAuthMethod::ClientSecretBasic)
        })
        .await
        .unwrap();
    let chained = Settings {
        client_id: "svc".into(),
        client_secret: Some(CLIENT_SECRET.into()),
        audience: Some(resource_as.issuer.clone()),
        requests: 30,
        ..settings(&idp.issuer)
    };
    let exchange = run(&Settings {
        mode: Mode::Exchange,
        ..chained.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        (exchange.ok, exchange.errors.len()),
        (30, 0),
        "{}",
        exchange.summary()
    );
    assert_eq!((exchange.crypto.verifies, exchange.crypto.signs), (2, 1));
    let bearer = run(&Settings {
        mode: Mode::JwtBearer,
        issuer: resource_as.issuer.clone(),
        idp_issuer: Some(idp.issuer.clone()),
        as_client: Some(("svc-at-b".into(), CLIENT_SECRET.into())),
        ..chained
    })
    .await
    .unwrap();
    assert_eq!(
        (bearer.ok, bearer.errors.len()),
        (30, 0),
        "{}",
        bearer.summary()
    );
}

/// `--emit-requests`: the pre-minted requests for a replaying generator (wrk) are each
/// accepted exactly once, sent as the file gives them (path, DPoP, Authorization, body), and
/// refused when replayed — so a replay run counts only real first uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitted_requests_are_each_accepted_once_when_replayed() {
    let op = start_op().await;
    let http = reqwest::Client::new();
    for mode in [Mode::Code, Mode::Refresh] {
        let settings = Settings {
            mode,
            requests: 12,
            ..settings(&op.issuer)
        };
        let mut out = Vec::new();
        assert_eq!(
            keybound_load::emit_requests(&settings, &mut out)
                .await
                .unwrap(),
            12
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{mode:?}");
        let send = |line: &str| {
            let f: Vec<&str> = line.splitn(4, '\t').collect();
            assert_eq!(f.len(), 4, "{line}");
            let mut req = http
                .post(format!("{}{}", op.issuer, f[0]))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("DPoP", f[1])
                .body(f[3].to_owned());
            if !f[2].is_empty() {
                req = req.header("authorization", f[2]);
            }
            req.send()
        };
        for line in &lines {
            let r = send(line).await.unwrap();
            assert_eq!(r.status(), 200, "{mode:?}: {}", r.text().await.unwrap());
        }
        // the same request again: the proof's jti (and the code or token) is used up
        let r = send(lines[0]).await.unwrap();
        assert_eq!(r.status(), 400, "{mode:?}");
    }
}
