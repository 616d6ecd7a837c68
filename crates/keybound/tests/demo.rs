//! `keybound demo` exits 0 and shows the accepted presentations (an ID Token with its proof;
//! after identity chaining, a DPoP access token in domain B) and the eight refusals with their
//! reasons.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

/// Run `keybound ARGS`, expect success, `accepted` and `refused` verdicts; the output.
fn demo(args: &[&str], accepted: usize, refused: usize) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keybound"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("[accepted]").count(), accepted, "{text}");
    assert_eq!(text.matches("[refused]").count(), refused, "{text}");
    text
}

#[test]
fn demo_tells_the_story() {
    let text = demo(&["demo"], 2, 8);
    for reason in [
        "does not match the bound key",
        "replayed",
        "expected htu",
        "typ must be 'at+jwt'",
        "the subject ID Token is bound to key",
        "typ must be 'oauth-id-jag+jwt'",
        "the ID-JAG is bound to key",
        "expected aud to be exactly",
    ] {
        assert!(text.contains(reason), "missing reason '{reason}':\n{text}");
    }
    assert!(text.contains("typ dpop+id_token"));
}

#[test]
fn demo_token_binding_tells_the_story() {
    let text = demo(&["demo", "--token-binding"], 2, 4);
    for reason in [
        "another Token Binding than the sign-in started with",
        "session cookie is bound to another Token Binding",
        "asks for a password",
        "a downgrade",
    ] {
        assert!(text.contains(reason), "missing reason '{reason}':\n{text}");
    }
    assert!(text.contains("cnf.tbh = "));
}
