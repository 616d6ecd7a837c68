//! `keybound inspect` as a user runs it: real binary, real files, exit codes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

fn inspect(arg: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keybound"))
        .args(["inspect", arg])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run keybound");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn key_bound_id_token_shows_kind_cnf_and_thumbprint() {
    let (code, out, _) = inspect("@testdata/samples/key-bound-id-token.jwt");
    assert_eq!(code, 0);
    assert!(
        out.contains("key-bound ID Token (OpenID Connect Key Binding)"),
        "{out}"
    );
    assert!(
        out.contains("cnf.jwk:   EC P-256 key, thumbprint (jkt) "),
        "{out}"
    );
    let jkt = keybound_testkit_jkt();
    assert!(out.contains(&jkt), "{out}");
}

fn keybound_testkit_jkt() -> String {
    // the sample is bound to testkit key es256-a
    keybound_testkit::keys::es256_a()
        .public_jwk()
        .thumbprint()
        .to_string()
}

#[test]
fn dpop_proof_is_named_and_its_signature_checked() {
    let (code, out, _) = inspect("@testdata/samples/key-binding-token-request-proof.jwt");
    assert_eq!(code, 0);
    assert!(out.contains("DPoP proof (RFC 9449)"));
    assert!(out.contains("dnfb1T9jil_gOhti60baHs_WD_a4D8JN9VDJXbmBmGw"));
    assert!(out.contains("signature: valid for the header key"));
}

#[test]
fn sec_token_binding_value() {
    let (code, out, _) = inspect("AIkAAgBBQFzK4_bhAqLDwRQxqJWte33d7hZ0hZWHwk-miKPg4E9fcgs7gBPoz-9RfuDfN9WCw6keHEw1ZPQMGs9CxpuHm-YAQM_jaOwwej6a-cQBGU7CJpUHOvXG4VvjNq8jDsvta9Y8_bPEPj25GgmKiPjhJEtZA6mJ_9SNifLvVBTi7fR9wSAAAA");
    assert_eq!(code, 0);
    assert!(
        out.contains("tbh:       3Wj4etWUwSPjHC1vDZYlLgAnS_7PEJFceNMBS9vJ3YI"),
        "{out}"
    );
}

#[test]
fn malformed_input_is_one_line_and_exit_2() {
    for bad in [
        "garbage!!",
        "a.b",
        "e30.e30.e30.e30",
        "@/nonexistent/file",
        "",
        "eyJhbGciOiJub25lIn0.W10.",
        "AAAA",
    ] {
        let (code, out, err) = inspect(bad);
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
        assert!(out.is_empty(), "{bad:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("error: "), "{bad:?}: {err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn refused_token_is_shown_with_a_warning() {
    // alg none: decodable, so shown, but flagged
    let (code, out, _) = inspect("eyJhbGciOiJub25lIn0.e30.");
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "warning: keybound would refuse this token: JWS: alg 'none' is never accepted"
        ),
        "{out}"
    );
}
