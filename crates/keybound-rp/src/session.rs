//! A signed-in session: the key pair and the tokens, saved to a 0600 file, and the
//! presentations it can make (docs/presentation.md).

use std::path::Path;

use keybound_jose::{Jkt, PrivateKey};
use keybound_proto::presentation::{self, ID_TOKEN_HEADER};
use keybound_proto::wire::TokenResponse;
use serde::{Deserialize, Serialize};

use crate::{RpConfig, RpError};

/// Key and tokens of one sign-in.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// issuer
    pub issuer: String,
    /// client id
    pub client_id: String,
    /// the ID Token (key-bound when `bound`)
    pub id_token: String,
    /// whether the ID Token is bound to this session's key
    pub bound: bool,
    /// access token
    pub access_token: String,
    /// `DPoP` or `Bearer`
    pub token_type: String,
    /// refresh token
    pub refresh_token: Option<String>,
    /// when the access token expires
    pub expires_at: Option<u64>,
    /// the key's thumbprint
    pub jkt: String,
    /// the private key, PEM PKCS#8
    key_pem: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("bound", &self.bound)
            .field("token_type", &self.token_type)
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn from_tokens(
        cfg: &RpConfig,
        key: &PrivateKey,
        t: TokenResponse,
        bound: bool,
        now: u64,
    ) -> Result<Self, RpError> {
        Ok(Session {
            issuer: cfg.issuer.clone(),
            client_id: cfg.client_id.clone(),
            id_token: t.id_token.clone().unwrap_or_default(),
            bound,
            access_token: t.access_token,
            token_type: t.token_type,
            refresh_token: t.refresh_token,
            expires_at: t.expires_in.map(|e| now + e),
            jkt: key.public_jwk().thumbprint().to_string(),
            key_pem: key.to_pem().map_err(RpError::Key)?.to_string(),
        })
    }

    pub(crate) fn update(&mut self, t: TokenResponse, now: u64) {
        if let Some(id) = t.id_token {
            self.id_token = id;
        }
        self.access_token = t.access_token;
        self.token_type = t.token_type;
        if t.refresh_token.is_some() {
            self.refresh_token = t.refresh_token;
        }
        self.expires_at = t.expires_in.map(|e| now + e);
    }

    /// The session's private key.
    pub fn key(&self) -> Result<PrivateKey, RpError> {
        PrivateKey::from_pem(&self.key_pem).map_err(RpError::Key)
    }

    /// The key's thumbprint.
    pub fn jkt(&self) -> Result<Jkt, RpError> {
        Jkt::parse(&self.jkt).map_err(RpError::Key)
    }

    /// Save to `path`, readable only by the owner.
    pub fn save(&self, path: &Path) -> Result<(), RpError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| RpError::session_file(path, e))?;
        save_private(path, &json)
    }

    /// Load from `path`.
    pub fn load(path: &Path) -> Result<Self, RpError> {
        let text = std::fs::read_to_string(path).map_err(|e| RpError::session_file(path, e))?;
        serde_json::from_str(&text).map_err(|e| RpError::session_file(path, e))
    }

    /// The headers of an HTTP presentation to a consuming component: `ID-Token` and `DPoP`.
    /// [`crate::Rp::present`] sends them itself (and retries with the service's nonce).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn headers(session: &keybound_rp::Session, now: u64) -> Result<(), keybound_rp::RpError> {
    /// let headers = session.present_http("GET", "https://api.example/orders", now, None)?;
    /// for (name, value) in &headers {
    ///     println!("{name}: {value}"); // ID-Token: eyJ…, DPoP: eyJ…
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn present_http(
        &self,
        htm: &str,
        htu: &str,
        now: u64,
        nonce: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>, RpError> {
        self.presentable()?;
        let proof = presentation::http_proof(
            &self.key()?,
            &self.id_token,
            htm,
            htu,
            now,
            &keybound_jose::random_b64(16),
            nonce,
        )
        .map_err(RpError::Proto)?;
        Ok(vec![
            (ID_TOKEN_HEADER, self.id_token.clone()),
            ("DPoP", proof),
        ])
    }

    /// Whether this session can present its ID Token: only a key-bound one proves anything.
    pub(crate) fn presentable(&self) -> Result<(), RpError> {
        if self.bound {
            Ok(())
        } else {
            Err(RpError::NotBound(
                "this session's ID Token is not key-bound; nothing to present".into(),
            ))
        }
    }

    /// A peer-to-peer presentation for verifier `aud` answering `challenge`.
    pub fn present_p2p(&self, aud: &str, challenge: &str, now: u64) -> Result<String, RpError> {
        self.presentable()?;
        presentation::p2p_sign(
            &self.key()?,
            &self.id_token,
            aud,
            challenge,
            now,
            &keybound_jose::random_b64(16),
        )
        .map_err(RpError::Proto)
    }
}

/// Write `bytes` to `path` readable only by the owner (mode 0600 on Unix), replacing it
/// atomically: a session, a client's private key.
pub fn save_private(path: &Path, bytes: &[u8]) -> Result<(), RpError> {
    use std::io::Write as _;
    let err = |e: std::io::Error| RpError::session_file(path, e);
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KB-S2: an ID Token that is not key-bound proves nothing; every kind of presentation
    /// refuses it before signing anything.
    #[test]
    fn an_unbound_session_presents_nothing() {
        let key = PrivateKey::generate(keybound_jose::key::KeyKind::Es256).unwrap();
        let tokens: TokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "at", "token_type": "Bearer", "id_token": "a.b.c",
        }))
        .unwrap();
        let cfg = RpConfig::new("https://op.example", "app", "https://app.example/cb");
        let s = Session::from_tokens(&cfg, &key, tokens, false, 1_700_000_000).unwrap();
        let http = s.present_http("GET", "https://api.example/x", 1_700_000_000, None);
        assert!(matches!(http, Err(RpError::NotBound(_))), "{http:?}");
        let p2p = s.present_p2p("urn:peer:bob", "challenge", 1_700_000_000);
        assert!(matches!(p2p, Err(RpError::NotBound(_))), "{p2p:?}");
    }
}
