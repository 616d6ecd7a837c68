//! The words of the End-User's pages, one catalogue per language (`messages/en.json`,
//! `messages/de.json`, and any `messages/<lang>.json` in the theme directory), chosen per
//! request from `Accept-Language` (RFC 9110 §12.5.4). A catalogue is a flat JSON object of
//! message keys to text; `{name}` marks a value the page fills in (escaped). A key a
//! catalogue lacks falls back to English, so a partial translation never shows a key.
//! Text written for developers (a refusal's `error_description`) stays as the provider wrote
//! it; what an End-User is told has a key ([`crate::error`] chooses it).

use std::collections::BTreeMap;
use std::sync::Arc;

/// The built-in catalogues.
const BUILT_IN: [(&str, &str); 2] = [
    ("en", include_str!("../messages/en.json")),
    ("de", include_str!("../messages/de.json")),
];

/// One language's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    lang: String,
    messages: BTreeMap<String, String>,
    /// English, for keys this one lacks
    fallback: Option<Arc<Catalog>>,
}

impl Catalog {
    /// The language tag (`en`, `de`).
    pub fn lang(&self) -> &str {
        &self.lang
    }

    /// The text of `key` (English when this catalogue lacks it; the key itself when English
    /// does too, which a test forbids for every key the pages use).
    pub fn t<'a>(&'a self, key: &'a str) -> &'a str {
        match self.messages.get(key) {
            Some(m) => m,
            None => match &self.fallback {
                Some(en) => en.t(key),
                None => key,
            },
        }
    }

    /// The text of `key` with `{name}` filled in from `values` (already escaped for HTML by
    /// the caller, or plain text).
    pub fn tf(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut out = self.t(key).to_owned();
        for (name, value) in values {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }

    /// The keys this catalogue has.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }
}

/// Every language the pages can speak.
#[derive(Debug, Clone)]
pub struct Catalogs {
    by_lang: BTreeMap<String, Arc<Catalog>>,
    english: Arc<Catalog>,
}

/// Why a catalogue was refused.
#[derive(Debug, thiserror::Error)]
#[error("message catalogue '{lang}': {reason}")]
pub struct CatalogError {
    lang: String,
    reason: String,
}

fn parse(lang: &str, json: &str) -> Result<BTreeMap<String, String>, CatalogError> {
    serde_json::from_str(json).map_err(|e| CatalogError {
        lang: lang.to_owned(),
        reason: format!("expected a JSON object of message keys to strings: {e}"),
    })
}

impl Catalogs {
    /// The built-in languages, with `extra` catalogues (language tag, JSON) added or merged
    /// over them (a theme's own words for a built-in language, or a new language).
    ///
    /// # Errors
    /// A catalogue that is not a JSON object of strings, or a language tag that is not one.
    pub fn with(extra: &[(String, String)]) -> Result<Self, CatalogError> {
        let mut raw: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (lang, json) in BUILT_IN {
            raw.insert(lang.to_owned(), parse(lang, json)?);
        }
        for (lang, json) in extra {
            let tag = lang.to_ascii_lowercase();
            if tag.is_empty()
                || tag.len() > 16
                || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(CatalogError {
                    lang: lang.clone(),
                    reason: "the file name must be a language tag (de, pt-br)".into(),
                });
            }
            raw.entry(tag).or_default().extend(parse(lang, json)?);
        }
        let english = Arc::new(Catalog {
            lang: "en".into(),
            messages: raw.remove("en").unwrap_or_default(),
            fallback: None,
        });
        let mut by_lang: BTreeMap<String, Arc<Catalog>> = raw
            .into_iter()
            .map(|(lang, messages)| {
                let c = Catalog {
                    lang: lang.clone(),
                    messages,
                    fallback: Some(english.clone()),
                };
                (lang, Arc::new(c))
            })
            .collect();
        by_lang.insert("en".into(), english.clone());
        Ok(Catalogs { by_lang, english })
    }

    /// The languages offered.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.by_lang.keys().map(String::as_str)
    }

    /// The catalogue for an `Accept-Language` value: the acceptable language with the
    /// highest weight that is offered (exactly, or by its primary subtag: `de-AT` → `de`);
    /// English when none is.
    pub fn negotiate(&self, accept_language: Option<&str>) -> Arc<Catalog> {
        let mut best: Option<(f32, &Arc<Catalog>)> = None;
        for item in accept_language.unwrap_or("").split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 || tag.is_empty() || tag == "*" {
                continue;
            }
            let found = self.by_lang.get(&tag).or_else(|| {
                tag.split('-')
                    .next()
                    .and_then(|primary| self.by_lang.get(primary))
            });
            if let Some(c) = found {
                // the higher weight wins; between equal weights, the one listed first
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, c));
                }
            }
        }
        best.map_or_else(|| self.english.clone(), |(_, c)| c.clone())
    }
}

impl Default for Catalogs {
    fn default() -> Self {
        // the built-in catalogues are part of the build and checked by a test
        Catalogs::with(&[]).unwrap_or_else(|_| Catalogs {
            by_lang: BTreeMap::new(),
            english: Arc::new(Catalog::default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in language has every English key, and no key English lacks.
    #[test]
    fn every_catalogue_has_every_key() {
        let c = Catalogs::with(&[]).expect("the built-in catalogues");
        let english = c.negotiate(Some("en"));
        let en: Vec<&str> = english.keys().collect();
        assert!(en.len() > 50);
        let languages: Vec<&str> = c.languages().collect();
        assert_eq!(languages, ["de", "en"]);
        for lang in languages {
            let catalog = c.negotiate(Some(lang));
            let other: Vec<&str> = catalog.keys().collect();
            assert_eq!(other, en, "{lang}");
        }
    }

    /// RFC 9110 §12.5.4: weights, primary subtags, order between equals, `q=0`.
    #[test]
    fn rfc9110_12_5_4_accept_language() {
        let c = Catalogs::with(&[]).expect("the built-in catalogues");
        for (header, lang) in [
            ("de-DE,de;q=0.9,en;q=0.8", "de"),
            ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7", "en"),
            ("fr, de;q=0.5", "de"),
            ("en;q=0.4, de-AT;q=0.6", "de"),
            ("de;q=0, en", "en"),
            ("*", "en"),
            ("", "en"),
            ("xx-invalid;;q=abc", "en"),
        ] {
            assert_eq!(c.negotiate(Some(header)).lang(), lang, "{header}");
        }
        assert_eq!(c.negotiate(None).lang(), "en");
    }

    /// A theme adds a language and overrides a built-in word; what it lacks is English.
    #[test]
    fn a_themes_catalogue_adds_and_overrides() {
        let c = Catalogs::with(&[
            ("fr".into(), r#"{"login.title": "Connexion"}"#.into()),
            ("de".into(), r#"{"login.submit": "Los"}"#.into()),
        ])
        .expect("catalogues");
        let fr = c.negotiate(Some("fr"));
        assert_eq!(fr.t("login.title"), "Connexion");
        assert_eq!(fr.t("login.username"), "Username");
        let de = c.negotiate(Some("de"));
        assert_eq!(de.t("login.submit"), "Los");
        assert_eq!(de.t("login.title"), "Anmelden");
        assert_eq!(
            de.tf("consent.heading", &[("app", "Acme")]),
            "Acme erlauben?"
        );
        assert!(Catalogs::with(&[("../x".into(), "{}".into())]).is_err());
        assert!(Catalogs::with(&[("it".into(), "[1]".into())]).is_err());
    }
}
