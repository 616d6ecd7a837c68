//! `keybound demo` exits 0 and shows the accepted presentation and the three refusals with
//! their reasons.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[test]
fn demo_tells_the_story() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keybound"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("[accepted]").count(), 1, "{text}");
    assert_eq!(text.matches("[refused]").count(), 3, "{text}");
    for reason in ["does not match the bound key", "replayed", "expected htu"] {
        assert!(text.contains(reason), "missing reason '{reason}':\n{text}");
    }
    assert!(text.contains("typ dpop+id_token"));
}
