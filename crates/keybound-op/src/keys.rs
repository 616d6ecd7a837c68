//! The OP's signing keys: created on first start, rotated on request (current → retired,
//! next → current, a new next), published as a JWKS that already lists the next key so
//! relying parties' caches learn it before it signs anything.
//!
//! Keys are read from the store and cached for `key_cache_ttl` seconds, so a rotation made by
//! another node is picked up without coordination.

use std::sync::{Arc, PoisonError, RwLock};

use keybound_jose::key::KeyKind;
use keybound_jose::{Algorithm, JwkSet, JwkSetEntry, PrivateKey};
use keybound_store::{KeyState, SigningKeyRecord};

use crate::{OpError, Provider};

/// How long a retired key stays published: long enough for every ID Token, access token and
/// cached JWKS it signed or appeared in to expire (tokens live minutes, caches 5 minutes).
pub const RETIRED_KEY_RETENTION: u64 = 24 * 3600;

/// A key the OP signs with.
#[derive(Debug)]
pub struct SigningKey {
    /// key id
    pub kid: String,
    /// algorithm
    pub alg: Algorithm,
    /// the private key
    pub key: PrivateKey,
}

struct Loaded {
    loaded_at: u64,
    current: Arc<SigningKey>,
    published: JwkSet,
}

/// Cache of the store's signing keys.
pub struct KeyRing {
    ttl: u64,
    cache: RwLock<Option<Arc<Loaded>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    pub(crate) fn new(ttl: u64) -> Self {
        KeyRing {
            ttl,
            cache: RwLock::new(None),
        }
    }

    fn get(&self, now: u64) -> Option<Arc<Loaded>> {
        let g = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        g.as_ref()
            .filter(|l| now < l.loaded_at.saturating_add(self.ttl))
            .cloned()
    }

    fn set(&self, loaded: Option<Arc<Loaded>>) {
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = loaded;
    }
}

fn new_record(state: KeyState, now: u64) -> Result<SigningKeyRecord, OpError> {
    let key = PrivateKey::generate(KeyKind::Es256)
        .map_err(|e| OpError::internal(format!("generating a signing key: {e}")))?;
    let kid = key.public_jwk().thumbprint().as_str()[..16].to_owned();
    Ok(SigningKeyRecord {
        kid,
        alg: Algorithm::ES256,
        state,
        created_at: now,
        activated_at: (state == KeyState::Current).then_some(now),
        retired_at: None,
        pkcs8: key
            .to_pkcs8_der()
            .map_err(|e| OpError::internal(format!("encoding a signing key: {e}")))?,
    })
}

impl Provider {
    /// Make sure a current and a next key exist (first start).
    ///
    /// The missing keys are added together or not at all
    /// ([`keybound_store::SigningKeyStore::put_signing_keys_if_absent`]): when several nodes
    /// start at once on an empty store, one creates the key set and the others use it.
    pub async fn ensure_signing_keys(&self) -> Result<(), OpError> {
        let now = self.now();
        let keys = self.store.signing_keys().await?;
        let mut missing = Vec::new();
        for state in [KeyState::Current, KeyState::Next] {
            if !keys.iter().any(|k| k.state == state) {
                missing.push(new_record(state, now)?);
            }
        }
        if !missing.is_empty() && !self.store.put_signing_keys_if_absent(&missing).await? {
            let keys = self.store.signing_keys().await?;
            for state in [KeyState::Current, KeyState::Next] {
                if !keys.iter().any(|k| k.state == state) {
                    return Err(OpError::internal(format!(
                        "another node was creating the signing keys, but there is no {} key",
                        state.as_str()
                    )));
                }
            }
        }
        self.keys.set(None);
        Ok(())
    }

    /// Rotate: current → retired, next → current, a new next. Returns the new current `kid`.
    /// Keys retired more than [`RETIRED_KEY_RETENTION`] ago leave the JWKS.
    pub async fn rotate_signing_keys(&self) -> Result<String, OpError> {
        let now = self.now();
        self.store
            .rotate_signing_keys(&new_record(KeyState::Next, now)?, now)
            .await?;
        self.store
            .purge_retired_keys(now.saturating_sub(RETIRED_KEY_RETENTION))
            .await?;
        self.keys.set(None);
        let kid = self.current_key().await?.kid.clone();
        self.event(
            crate::events::SecurityEvent::new(crate::events::EventType::KeyRotated).reason(&kid),
        );
        Ok(kid)
    }

    async fn loaded(&self) -> Result<Arc<Loaded>, OpError> {
        let now = self.now();
        if let Some(l) = self.keys.get(now) {
            return Ok(l);
        }
        let records = self.store.signing_keys().await?;
        let mut current = None;
        let mut published = JwkSet::default();
        for r in &records {
            let key = PrivateKey::from_pkcs8_der(&r.pkcs8)
                .map_err(|e| OpError::internal(format!("signing key {}: {e}", r.kid)))?;
            published.keys.push(JwkSetEntry {
                kid: Some(r.kid.clone()),
                alg: Some(r.alg),
                use_: Some("sig".into()),
                jwk: key.public_jwk().clone(),
            });
            if r.state == KeyState::Current {
                current = Some(Arc::new(SigningKey {
                    kid: r.kid.clone(),
                    alg: r.alg,
                    key,
                }));
            }
        }
        // A provider without a current key cannot sign anything: fail closed.
        let current =
            current.ok_or_else(|| OpError::internal("the store holds no current signing key"))?;
        let loaded = Arc::new(Loaded {
            loaded_at: now,
            current,
            published,
        });
        self.keys.set(Some(loaded.clone()));
        Ok(loaded)
    }

    /// The key to sign with now.
    pub async fn current_key(&self) -> Result<Arc<SigningKey>, OpError> {
        Ok(self.loaded().await?.current.clone())
    }

    /// The published JWKS: next, current and retired keys.
    pub async fn jwks(&self) -> Result<JwkSet, OpError> {
        Ok(self.loaded().await?.published.clone())
    }

    /// A JWT of this provider other than its ID and access tokens (an ID-JAG, a logout token):
    /// `claims` signed by the current key, header `typ` and `kid`. `what` names it in an
    /// internal error.
    #[tracing::instrument(level = "debug", name = "jwt.sign", skip_all, fields(typ = typ))]
    pub(crate) async fn sign_jwt(
        &self,
        typ: &str,
        claims: &impl serde::Serialize,
        what: &str,
    ) -> Result<String, OpError> {
        let key = self.current_key().await?;
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), typ.into());
        header.insert("kid".into(), key.kid.clone().into());
        let payload = serde_json::to_vec(claims)
            .map_err(|e| OpError::internal(format!("encoding {what}: {e}")))?;
        keybound_jose::jws::sign(key.alg, &header, &payload, &key.key)
            .map_err(|e| OpError::internal(format!("signing {what}: {e}")))
    }
}
