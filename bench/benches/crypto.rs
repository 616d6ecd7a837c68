//! Criterion benchmarks for the protocol core, each next to the raw crypto it is built on,
//! so docs/performance.md can report ratios measured in one run:
//!
//! - raw ES256 sign and verify (aws-lc-rs, key given as bytes, as any verifier receives it);
//! - full DPoP proof verification (DP-V2…V12 with `c_s256` and `dpop_jkt`, as the token
//!   endpoint runs it);
//! - key-bound ID Token validation (OIDC Core 3.1.3.7 + Key Binding);
//! - the Token Binding listener's per-request check (`Sec-Token-Binding` with a provided and
//!   a referred ecdsap256 binding: decode, two signature checks over the EKM).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(missing_docs)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keybound_jose::{JwkSet, Jws};
use keybound_proto::dpop::{self, CodeBinding, DpopPolicy, ProofBuilder, RequestFacts};
use keybound_proto::idtoken::{self, BindingRequirement, IdTokenChecks};
use keybound_proto::keybinding::Profile;
use keybound_testkit::keys;
use keybound_testkit::tokens::BoundIdToken;

const NOW: u64 = 1_700_000_000;
const HTU: &str = "https://op.example/token";

fn benches(c: &mut Criterion) {
    let client = keys::es256_a();
    let jkt = client.public_jwk().thumbprint();
    let proof = ProofBuilder::new("POST", HTU, NOW, "bench-jti-0123456789")
        .c_s256("code-abc")
        .sign(&client)
        .expect("proof");

    // Raw ES256 over exactly the bytes the proof signs, with the key as bytes.
    let jws = Jws::parse(&proof).expect("parse");
    let signing_input = jws.signing_input().as_bytes().to_vec();
    let sig = keybound_jose::b64::decode(proof.rsplit('.').next().expect("sig")).expect("b64");
    let point = {
        let v = client.public_jwk().to_value();
        let x = keybound_jose::b64::decode(v["x"].as_str().expect("x")).expect("x");
        let y = keybound_jose::b64::decode(v["y"].as_str().expect("y")).expect("y");
        [&[4u8][..], &x, &y].concat()
    };
    let mut g = c.benchmark_group("es256");
    g.bench_function("verify_raw", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(&point))
                .verify(black_box(&signing_input), black_box(&sig))
                .expect("verify");
        });
    });
    let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).expect("key");
    g.bench_function("verify_preparsed_key", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(&signing_input), black_box(&sig))
                .expect("verify");
        });
    });
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("kp");
    let rng = SystemRandom::new();
    let _ = kp.public_key();
    g.bench_function("sign_raw", |b| {
        b.iter(|| kp.sign(&rng, black_box(&signing_input)).expect("sign"));
    });
    g.finish();

    let policy = DpopPolicy::default();
    let mut g = c.benchmark_group("dpop");
    g.bench_function("verify_full", |b| {
        b.iter(|| {
            let facts = RequestFacts {
                bound_jkt: Some(&jkt),
                code_binding: Some(CodeBinding {
                    code: "code-abc",
                    profile: Profile::KeyBinding,
                }),
                ..RequestFacts::new("POST", HTU, NOW)
            };
            dpop::verify_proof(black_box(&proof), &facts, &policy).expect("valid")
        });
    });
    g.bench_function("build_and_sign", |b| {
        b.iter(|| {
            ProofBuilder::new("POST", HTU, NOW, "bench-jti-0123456789")
                .c_s256("code-abc")
                .sign(&client)
                .expect("proof")
        });
    });
    g.finish();

    let op = keys::es256_b();
    let set = JwkSet::signing_key(&op, "op-1");
    let id_token = BoundIdToken::new(&op, &client, "app", NOW)
        .sign_with(|b| b.nonce(Some("n-0")).auth_time(NOW));
    let auds = vec!["app".to_owned()];
    let mut g = c.benchmark_group("id_token");
    g.bench_function("validate_key_bound", |b| {
        b.iter(|| {
            let checks = IdTokenChecks {
                nonce: Some("n-0"),
                binding: BindingRequirement::Bound {
                    expected_jkt: Some(&jkt),
                    accept_draft00: false,
                },
                ..IdTokenChecks::new("https://op.example", &auds, NOW)
            };
            idtoken::validate(black_box(&id_token), &set, &checks).expect("valid")
        });
    });
    g.finish();
}

/// The consuming component's whole check of an HTTP presentation (ID Token signature and
/// claims, proof signature and claims, replay cache) against its crypto bound: two ES256
/// verifications.
fn presentation(c: &mut Criterion) {
    use keybound_verify::{
        HttpPresentation, ManualClock, MemoryReplayCache, TrustedIssuer, Verifier, VerifierConfig,
    };
    let op = keys::es256_b();
    let client = keys::es256_a();
    let id_token = BoundIdToken::new(&op, &client, "app", NOW).sign();
    let verifier = Verifier::new(
        VerifierConfig::new(
            TrustedIssuer::new("https://op.example", "https://op.example/jwks"),
            vec!["app".into()],
            "https://api.example",
        ),
        std::sync::Arc::new(keybound_verify::StaticJwks(JwkSet::signing_key(
            &op, "op-1",
        ))),
        std::sync::Arc::new(MemoryReplayCache::new(20_000_000)),
        std::sync::Arc::new(ManualClock::new(NOW)),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut n = 0u64;
    c.bench_function("verify/http_presentation", |b| {
        b.iter_batched(
            || {
                n += 1;
                keybound_proto::presentation::http_proof(
                    &client,
                    &id_token,
                    "GET",
                    "https://api.example/orders",
                    NOW,
                    &format!("bench-{n}"),
                    None,
                )
                .expect("proof")
            },
            |proof| {
                rt.block_on(verifier.verify_http(HttpPresentation {
                    id_token: Some(&id_token),
                    dpop: &[&proof],
                    htm: "GET",
                    path: "/orders",
                }))
                .expect("valid")
            },
            criterion::BatchSize::SmallInput,
        );
    });
}

criterion_group!(
    crypto,
    benches,
    presentation,
    overheads,
    pieces,
    token_binding
);
criterion_main!(crypto);

/// Costs around the presentation check, to see where its overhead goes.
fn overheads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function("overhead/block_on_noop", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }));
    });
    c.bench_function("overhead/normalize_htu", |b| {
        b.iter(|| {
            keybound_proto::dpop::normalize_htu(black_box("https://api.example/orders"))
                .expect("url")
        });
    });
    let cache = keybound_verify::MemoryReplayCache::new(20_000_000);
    let mut i = 0u64;
    c.bench_function("overhead/replay_insert", |b| {
        b.iter(|| {
            i += 1;
            let d = keybound_jose::sha256(&i.to_le_bytes());
            rt.block_on(keybound_verify::ReplayCache::check_and_insert(
                &cache,
                &d,
                NOW + 60,
                NOW,
            ))
            .expect("room")
        });
    });
}

/// Pieces of ID Token validation, to see where the non-crypto time goes.
fn pieces(c: &mut Criterion) {
    let op = keys::es256_b();
    let client = keys::es256_a();
    let id_token = BoundIdToken::new(&op, &client, "app", NOW).sign();
    let jws = Jws::parse(&id_token).expect("jws");
    let payload = jws.payload().to_vec();
    c.bench_function("piece/jws_parse", |b| {
        b.iter(|| Jws::parse(black_box(&id_token)).expect("jws"));
    });
    c.bench_function("piece/claims_decode", |b| {
        b.iter(|| {
            serde_json::from_slice::<keybound_proto::idtoken::IdTokenClaims>(black_box(&payload))
                .expect("claims")
        });
    });
    let jwk = client.public_jwk().to_value();
    c.bench_function("piece/jwk_parse", |b| {
        b.iter(|| keybound_jose::PublicJwk::from_value(black_box(&jwk)).expect("jwk"));
    });
    c.bench_function("piece/thumbprint", |b| {
        b.iter(|| black_box(client.public_jwk()).thumbprint());
    });
    c.bench_function("piece/sha256_id_token", |b| {
        b.iter(|| keybound_jose::sha256_b64(black_box(id_token.as_bytes())));
    });
}

fn token_binding(c: &mut Criterion) {
    use keybound_proto::tokbind::{self, KeyParameters};
    use keybound_tls::client::{header, TbKey};
    let ekm = [7u8; 32];
    let provided = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let referred = TbKey::generate(KeyParameters::EcdsaP256).unwrap();
    let value = header(&provided, Some(&referred), &ekm).unwrap();
    let mut g = c.benchmark_group("tokbind");
    g.bench_function("verify_request_provided_and_referred", |b| {
        b.iter(|| {
            tokbind::verify_request(
                black_box(&[value.as_str()]),
                Some((KeyParameters::EcdsaP256, black_box(&ekm))),
            )
            .unwrap()
            .unwrap()
        });
    });
    g.bench_function("sign_provided_and_referred", |b| {
        b.iter(|| header(&provided, Some(&referred), black_box(&ekm)).unwrap());
    });
    g.finish();
}
