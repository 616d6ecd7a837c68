//! Pages people can brand and read (issue 28 item 3) over the router: the words follow
//! `Accept-Language` (German built in, French from the theme), the theme's product name,
//! logo, colours and stylesheet reach every page, the markup stays keybound's, and an error
//! page says what to do with a reference. Accessibility and the rendered theme are checked in
//! headless Chromium with axe-core (interop/pages.test.mjs).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_server::theme::Theme;
use keybound_testkit::browser::{Browser, HttpRequest, RouterTransport};
use keybound_testkit::op::{OpBuilder, ISS};

const LOGO: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"40\"><rect width=\"40\" height=\"40\" fill=\"#0b5394\"/></svg>";

fn theme_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("theme.json"),
        r##"{"product_name": "Acme ID", "logo": "logo.svg", "stylesheet": "extra.css",
            "colors": {"light": {"primary": "#0b5394"}, "dark": {"primary": "#9fc5e8"}}}"##,
    )
    .unwrap();
    std::fs::write(dir.path().join("logo.svg"), LOGO).unwrap();
    std::fs::write(dir.path().join("extra.css"), "h1{letter-spacing:.02em}").unwrap();
    std::fs::create_dir(dir.path().join("messages")).unwrap();
    std::fs::write(
        dir.path().join("messages/fr.json"),
        r#"{"login.title": "Connexion", "error.title": "Requête refusée"}"#,
    )
    .unwrap();
    dir
}

async fn browser(theme: Option<Theme>) -> Browser<RouterTransport> {
    let op = OpBuilder::new().build().await;
    let config = keybound_server::ServerConfig {
        theme: Arc::new(theme.unwrap_or_default()),
        ..keybound_server::ServerConfig::default()
    };
    Browser::new(RouterTransport(op.routers_with(config).0))
}

async fn get(b: &mut Browser<RouterTransport>, path: &str, lang: &str) -> (u16, String, String) {
    let r = b
        .request(HttpRequest::get(&format!("{ISS}{path}")).header("accept-language", lang))
        .await
        .unwrap();
    let vary = r.header("vary").unwrap_or("").to_owned();
    (
        r.status,
        String::from_utf8_lossy(&r.body).into_owned(),
        vary,
    )
}

#[tokio::test]
async fn the_words_follow_accept_language() {
    let mut b = browser(None).await;
    let (_, en, vary) = get(&mut b, "/account", "en-GB,en;q=0.9").await;
    assert!(en.contains("<html lang=\"en\">"), "{en}");
    assert!(en.contains(">Sign in</h1>") && en.contains(">Username</label>"));
    assert_eq!(vary, "Accept-Language");
    let (_, de, _) = get(&mut b, "/account", "de-DE,de;q=0.9,en;q=0.5").await;
    assert!(de.contains("<html lang=\"de\">"), "{de}");
    assert!(de.contains(">Anmelden</h1>") && de.contains(">Benutzername</label>"));
    assert!(de.contains(">Passwort</label>"));
    // the markup is the same: the same fields in both languages
    let names = |html: &str| {
        keybound_testkit::browser::hidden_fields(html)
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&en), names(&de));
    // a language nobody offers: English
    let (_, other, _) = get(&mut b, "/device", "ja").await;
    assert!(other.contains("<html lang=\"en\">") && other.contains("Connect a device"));
    let (_, device, _) = get(&mut b, "/device", "de").await;
    assert!(device.contains("Gerät verbinden"), "{device}");
}

#[tokio::test]
async fn an_error_page_says_what_to_do_in_the_end_users_language() {
    let mut b = browser(None).await;
    let (status, page, _) = get(
        &mut b,
        "/authorize?client_id=nobody&response_type=code",
        "de",
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Anfrage abgelehnt"), "{page}");
    assert!(page.contains("id=\"what-to-do\""));
    assert!(page.contains("Gehen Sie zurück zur App"));
    // the reference is the answer's request id
    let r = b
        .request(HttpRequest::get(&format!(
            "{ISS}/authorize?client_id=nobody&response_type=code"
        )))
        .await
        .unwrap();
    let id = r.header("x-request-id").unwrap().to_owned();
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains(&format!("<strong id=\"reference\">{id}</strong>")),
        "{body}"
    );
}

#[tokio::test]
async fn the_theme_reaches_every_page() {
    let dir = theme_dir();
    let mut b = browser(Some(Theme::load(dir.path()).unwrap())).await;
    for path in ["/account", "/device", "/authorize?client_id=nobody"] {
        let (_, page, _) = get(&mut b, path, "en").await;
        assert!(page.contains("· Acme ID</title>"), "{path}: {page}");
        assert!(
            page.contains("<span id=\"product\">Acme ID</span>"),
            "{path}"
        );
        assert!(
            page.contains("<img id=\"logo\" src=\"/theme/logo\""),
            "{path}"
        );
        assert!(page.contains("--kb-primary:#0b5394"), "{path}");
        assert!(
            page.contains("--kb-primary:#9fc5e8"),
            "{path}: the dark scheme"
        );
        assert!(page.contains("<link rel=\"stylesheet\" href=\"/theme/extra.css\">"));
        assert!(page.contains("<main>") && page.contains("<header>"));
    }
    // a language from the theme, English where it has no words
    let (_, fr, _) = get(&mut b, "/account", "fr-CH, fr;q=0.9").await;
    assert!(
        fr.contains("<html lang=\"fr\">") && fr.contains(">Connexion</h1>"),
        "{fr}"
    );
    assert!(fr.contains(">Username</label>"));
    // the files, with their types, never sniffed
    let logo = b
        .request(HttpRequest::get(&format!("{ISS}/theme/logo")))
        .await
        .unwrap();
    assert_eq!(logo.status, 200);
    assert_eq!(logo.header("content-type"), Some("image/svg+xml"));
    assert_eq!(logo.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(logo.body, LOGO.as_bytes());
    let css = b
        .request(HttpRequest::get(&format!("{ISS}/theme/extra.css")))
        .await
        .unwrap();
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    // the CSP lets the page load them, from this origin only
    let page = b
        .request(HttpRequest::get(&format!("{ISS}/account")))
        .await
        .unwrap();
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("img-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    // without a theme there is nothing to serve
    let mut plain = browser(None).await;
    let r = plain
        .request(HttpRequest::get(&format!("{ISS}/theme/logo")))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn a_theme_that_could_break_out_is_refused() {
    for (theme, expect) in [
        (
            r#"{"colors": {"light": {"primary": "red;}body{display:none"}}}"#,
            "hex value",
        ),
        (
            r#"{"logo": "../../etc/passwd.png"}"#,
            "a file name in the theme directory",
        ),
        (r#"{"logo": "logo.exe"}"#, "SVG, PNG, JPEG or WebP"),
        (r#"{"product": "typo"}"#, "unknown field"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("theme.json"), theme).unwrap();
        let e = Theme::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(expect), "{theme}: {e}");
    }
}
