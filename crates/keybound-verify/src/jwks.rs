//! The issuer JWKS cache: keys are kept for the `Cache-Control: max-age` the issuer sent
//! (bounded to [1 min, 1 day], 5 min when absent), and an unknown `kid` triggers at most one
//! refetch per interval per JWKS, so a stream of forged `kid`s cannot make us hammer the OP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use keybound_jose::JwkSet;

use crate::VerifyError;

/// A fetched JWK Set and how long it may be cached.
#[derive(Debug, Clone)]
pub struct FetchedJwks {
    /// the keys
    pub keys: JwkSet,
    /// `Cache-Control: max-age`, if sent
    pub max_age: Option<u64>,
}

/// Fetches JWK Sets (I/O lives behind this trait).
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// GET the JWK Set at `url`.
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, VerifyError>;
}

/// Pinned keys: a JWK Set configured with the verifier instead of fetched (an issuer whose
/// keys are distributed out of band, tests, benchmarks). Served as if cached for a day.
#[derive(Debug, Clone)]
pub struct StaticJwks(pub JwkSet);

#[async_trait]
impl JwksFetcher for StaticJwks {
    async fn fetch(&self, _url: &str) -> Result<FetchedJwks, VerifyError> {
        Ok(FetchedJwks {
            keys: self.0.clone(),
            max_age: Some(86_400),
        })
    }
}

struct Entry {
    keys: Arc<JwkSet>,
    expires_at: u64,
    last_fetch: u64,
}

/// Cache of issuers' JWK Sets.
pub struct JwksCache {
    fetcher: Arc<dyn JwksFetcher>,
    refetch_interval: u64,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("refetch_interval", &self.refetch_interval)
            .finish_non_exhaustive()
    }
}

const DEFAULT_TTL: u64 = 300;

impl JwksCache {
    /// A cache refetching for unknown `kid`s at most every `refetch_interval` seconds.
    pub fn new(fetcher: Arc<dyn JwksFetcher>, refetch_interval: u64) -> Self {
        JwksCache {
            fetcher,
            refetch_interval,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, url: &str) -> Option<(Arc<JwkSet>, u64, u64)> {
        let g = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        g.get(url)
            .map(|e| (e.keys.clone(), e.expires_at, e.last_fetch))
    }

    async fn refresh(&self, url: &str, now: u64) -> Result<Arc<JwkSet>, VerifyError> {
        let fetched = self.fetcher.fetch(url).await?;
        let ttl = fetched.max_age.unwrap_or(DEFAULT_TTL).clamp(60, 86_400);
        let keys = Arc::new(fetched.keys);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                url.to_owned(),
                Entry {
                    keys: keys.clone(),
                    expires_at: now + ttl,
                    last_fetch: now,
                },
            );
        Ok(keys)
    }

    /// Keys from `url` that contain `kid` (or any key, without a `kid`).
    pub async fn keys_for(
        &self,
        url: &str,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Arc<JwkSet>, VerifyError> {
        let has =
            |set: &JwkSet| kid.is_none_or(|k| set.keys.iter().any(|e| e.kid.as_deref() == Some(k)));
        match self.cached(url) {
            Some((keys, expires_at, _)) if now < expires_at && has(&keys) => Ok(keys),
            Some((keys, expires_at, last_fetch)) if now < expires_at => {
                // unknown kid: refetch, but at most once per interval
                if now < last_fetch + self.refetch_interval {
                    return Err(VerifyError::Jwks(format!(
                        "no key with kid {kid:?} (refetched {}s ago)",
                        now - last_fetch
                    )));
                }
                let fresh = self.refresh(url, now).await?;
                if has(&fresh) {
                    Ok(fresh)
                } else {
                    drop(keys);
                    Err(VerifyError::Jwks(format!(
                        "no key with kid {kid:?} after refetching"
                    )))
                }
            }
            _ => {
                let fresh = self.refresh(url, now).await?;
                if has(&fresh) {
                    Ok(fresh)
                } else {
                    Err(VerifyError::Jwks(format!("no key with kid {kid:?}")))
                }
            }
        }
    }
}

/// Fetches JWKS over HTTPS (or loopback HTTP) with reqwest and rustls.
#[cfg(feature = "http")]
#[derive(Debug, Clone, Default)]
pub struct HttpFetcher {
    client: reqwest::Client,
}

#[cfg(feature = "http")]
impl HttpFetcher {
    /// A fetcher over `client`.
    pub fn new(client: reqwest::Client) -> Self {
        HttpFetcher { client }
    }
}

#[cfg(feature = "http")]
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let cc = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    if cc
        .split(',')
        .any(|d| matches!(d.trim(), "no-store" | "no-cache"))
    {
        return Some(0);
    }
    cc.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse().ok())
}

#[cfg(feature = "http")]
#[async_trait]
impl JwksFetcher for HttpFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, VerifyError> {
        let err = |e: crate::error::Cause| VerifyError::JwksUnavailable {
            url: url.to_owned(),
            source: e,
        };
        let r = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| err(Box::new(e)))?;
        if !r.status().is_success() {
            return Err(err(format!("HTTP {}", r.status()).into()));
        }
        let max_age = max_age(r.headers());
        let v: serde_json::Value = r.json().await.map_err(|e| err(Box::new(e)))?;
        Ok(FetchedJwks {
            keys: JwkSet::from_value(&v).map_err(|e| err(Box::new(e)))?,
            max_age,
        })
    }
}
