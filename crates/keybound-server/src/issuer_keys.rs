//! Trusted issuers' signing keys for the jwt-bearer grant, fetched over HTTP and cached by the
//! consuming component's JWKS cache (`Cache-Control: max-age`, bounded; an unknown `kid`
//! refetches at most once a minute, so forged `kid`s cannot make us hammer an issuer).

use std::sync::Arc;

use async_trait::async_trait;
use keybound_jose::JwkSet;
use keybound_verify::{HttpFetcher, JwksCache};

/// The OP's source of other issuers' keys.
#[derive(Debug)]
pub struct HttpIssuerKeys(JwksCache);

impl HttpIssuerKeys {
    /// Over `client` (rustls; loopback `http` works for local test domains).
    pub fn new(client: reqwest::Client) -> Self {
        HttpIssuerKeys(JwksCache::new(Arc::new(HttpFetcher::new(client)), 60))
    }
}

#[async_trait]
impl keybound_op::IssuerKeys for HttpIssuerKeys {
    async fn keys(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Arc<JwkSet>, String> {
        self.0
            .keys_for(jwks_uri, kid, now)
            .await
            .map_err(|e| e.to_string())
    }
}
