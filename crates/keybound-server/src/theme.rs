//! The look of the End-User's pages: a product name, a logo, colours for light and dark
//! schemes and an extra stylesheet, from an operator's theme directory (`theme_dir`), and the
//! words in the End-User's language ([`crate::i18n`]). The templates stay keybound's: a theme
//! changes how a page looks, never which fields, warnings or scripts it has, so the
//! security-relevant markup (the key thumbprint, the device-code warning, CSRF fields) cannot
//! be dropped by a theme.
//!
//! A theme directory holds `theme.json`:
//!
//! ```json
//! { "product_name": "Acme ID", "logo": "logo.svg", "stylesheet": "extra.css",
//!   "colors": { "light": { "primary": "#0b5394" }, "dark": { "primary": "#9fc5e8" } } }
//! ```
//!
//! and optionally `messages/<lang>.json` catalogues. Colours are hex values (`#rgb`,
//! `#rrggbb`); every member is optional.

use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::i18n::{Catalog, Catalogs};

/// Where the theme's files are served.
pub const LOGO_PATH: &str = "/theme/logo";
/// The extra stylesheet's path.
pub const STYLESHEET_PATH: &str = "/theme/extra.css";

/// One colour scheme.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    /// buttons and links
    #[serde(default)]
    pub primary: Option<String>,
    /// text on `primary`
    #[serde(default)]
    pub on_primary: Option<String>,
    /// page background
    #[serde(default)]
    pub background: Option<String>,
    /// text
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    product_name: Option<String>,
    #[serde(default)]
    logo: Option<String>,
    #[serde(default)]
    stylesheet: Option<String>,
    #[serde(default)]
    colors: Option<SchemeFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemeFile {
    #[serde(default)]
    light: Option<Colors>,
    #[serde(default)]
    dark: Option<Colors>,
}

/// The theme of the pages.
#[derive(Debug, Clone)]
pub struct Theme {
    /// the product's name in titles and the header
    pub product_name: String,
    logo: Option<(&'static str, Arc<Vec<u8>>)>,
    stylesheet: Option<Arc<String>>,
    light_set: Vec<(usize, String)>,
    dark_set: Vec<(usize, String)>,
    /// the words, per language
    pub catalogs: Catalogs,
}

/// keybound's own colours: primary, on-primary, background, text (contrast ≥ 4.5:1 each way).
const LIGHT: [&str; 4] = ["#1f4e8c", "#ffffff", "#ffffff", "#1b1b1b"];
const DARK: [&str; 4] = ["#8ab4f8", "#0b1220", "#121212", "#ececec"];

impl Default for Theme {
    fn default() -> Self {
        Theme {
            product_name: "keybound".into(),
            logo: None,
            stylesheet: None,
            light_set: Vec::new(),
            dark_set: Vec::new(),
            catalogs: Catalogs::default(),
        }
    }
}

/// Why a theme directory was refused.
#[derive(Debug, thiserror::Error)]
#[error("theme_dir {dir}: {reason}")]
pub struct ThemeError {
    dir: String,
    reason: String,
}

fn hex_color(v: &str) -> bool {
    let h = v.strip_prefix('#').unwrap_or("");
    matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Theme {
    /// Load the theme in `dir` (`theme.json`, the files it names, `messages/*.json`).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, a colour that is not a hex value, a file name
    /// that leaves the directory, a logo that is not SVG, PNG, JPEG or WebP.
    pub fn load(dir: &Path) -> Result<Self, ThemeError> {
        let bad = |reason: String| ThemeError {
            dir: dir.display().to_string(),
            reason,
        };
        let read = |name: &str| -> Result<Vec<u8>, ThemeError> {
            if name.contains('/') || name.contains('\\') || name.starts_with('.') {
                return Err(bad(format!("'{name}': a file name in the theme directory")));
            }
            std::fs::read(dir.join(name)).map_err(|e| bad(format!("{name}: {e}")))
        };
        let file: ThemeFile = match std::fs::read(dir.join("theme.json")) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| bad(format!("theme.json: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ThemeFile::default(),
            Err(e) => return Err(bad(format!("theme.json: {e}"))),
        };
        let mut theme = Theme::default();
        if let Some(p) = file.product_name {
            theme.product_name = p;
        }
        if let Some(name) = &file.logo {
            let kind = match name
                .rsplit('.')
                .next()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                Some("jpg" | "jpeg") => "image/jpeg",
                Some("webp") => "image/webp",
                _ => return Err(bad(format!("logo '{name}': SVG, PNG, JPEG or WebP"))),
            };
            theme.logo = Some((kind, Arc::new(read(name)?)));
        }
        if let Some(name) = &file.stylesheet {
            let css = String::from_utf8(read(name)?)
                .map_err(|_| bad(format!("stylesheet '{name}': not UTF-8")))?;
            theme.stylesheet = Some(Arc::new(css));
        }
        let scheme = file.colors.unwrap_or_default();
        for (colors, set) in [
            (scheme.light, &mut theme.light_set),
            (scheme.dark, &mut theme.dark_set),
        ] {
            let Some(c) = colors else { continue };
            for (i, v) in [c.primary, c.on_primary, c.background, c.text]
                .into_iter()
                .enumerate()
            {
                if let Some(v) = v {
                    if !hex_color(&v) {
                        return Err(bad(format!("colour '{v}': a hex value like #0b5394")));
                    }
                    set.push((i, v));
                }
            }
        }
        let mut extra = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir.join("messages")) {
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "json") {
                    let lang = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let json = std::fs::read_to_string(&path)
                        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
                    extra.push((lang, json));
                }
            }
        }
        theme.catalogs = Catalogs::with(&extra).map_err(|e| bad(e.to_string()))?;
        Ok(theme)
    }

    /// Whether there is a logo to show.
    pub fn has_logo(&self) -> bool {
        self.logo.is_some()
    }

    /// Whether there is an extra stylesheet to link.
    pub fn has_stylesheet(&self) -> bool {
        self.stylesheet.is_some()
    }

    /// The colour variables, light then dark (`prefers-color-scheme`).
    pub fn css_variables(&self) -> String {
        let vars = |base: [&str; 4], set: &[(usize, String)]| {
            let mut v: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
            for (i, c) in set {
                v[*i].clone_from(c);
            }
            format!(
                "--kb-primary:{};--kb-on-primary:{};--kb-bg:{};--kb-text:{}",
                v[0], v[1], v[2], v[3]
            )
        };
        format!(
            ":root{{color-scheme:light dark;{}}}@media (prefers-color-scheme: dark){{:root{{{}}}}}",
            vars(LIGHT, &self.light_set),
            vars(DARK, &self.dark_set)
        )
    }
}

/// `GET /theme/logo`
pub(crate) async fn logo(
    axum::extract::State(state): axum::extract::State<Arc<crate::AppState>>,
) -> Response {
    match &state.config.theme.logo {
        Some((kind, bytes)) => asset(kind, bytes.as_ref().clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /theme/extra.css`
pub(crate) async fn stylesheet(
    axum::extract::State(state): axum::extract::State<Arc<crate::AppState>>,
) -> Response {
    match &state.config.theme.stylesheet {
        Some(css) => asset("text/css; charset=utf-8", css.as_bytes().to_vec()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn asset(kind: &'static str, bytes: Vec<u8>) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // an SVG opened on its own runs nothing
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

/// What a page is rendered with: the theme and the End-User's language.
#[derive(Debug, Clone)]
pub struct PageContext {
    /// the theme
    pub theme: Arc<Theme>,
    /// the words
    pub words: Arc<Catalog>,
}

/// What a request brings for its pages: the theme and its `Accept-Language`, negotiated only
/// when a page is rendered (API requests never pay for it).
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    /// the theme
    pub theme: Arc<Theme>,
    /// the request's `Accept-Language`
    pub accept_language: Option<HeaderValue>,
}

tokio::task_local! {
    /// The page request being answered.
    pub(crate) static PAGE: PageRequest;
}

/// The current request's page context (the default theme in English outside a request).
pub(crate) fn page_context() -> PageContext {
    let (theme, accept) = PAGE
        .try_with(|p| (p.theme.clone(), p.accept_language.clone()))
        .unwrap_or_else(|_| (Arc::new(Theme::default()), None));
    let words = theme
        .catalogs
        .negotiate(accept.as_ref().and_then(|v| v.to_str().ok()));
    PageContext { theme, words }
}
