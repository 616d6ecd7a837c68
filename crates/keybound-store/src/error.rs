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
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
