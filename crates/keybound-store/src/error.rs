//! The one error type of keybound-store.

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. a username already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Sealing or unsealing a signing key failed (wrong key-encryption key, corrupted row).
    #[error("key encryption: {0}")]
    Crypto(String),
    /// The key-encryption key could not be loaded or created.
    #[error("key-encryption key: {0}")]
    Kek(String),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The database failed (the backend's own error is the cause).
    #[error("database: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database could not be reached: no connection within the pool's acquire timeout,
    /// a refused or broken connection, a server shutting down. Nothing was decided; the same
    /// request may succeed once the database is back (the wire answer is 503).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the database was unreachable rather than wrong ([`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
