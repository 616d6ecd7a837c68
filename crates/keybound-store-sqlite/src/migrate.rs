//! The schema, embedded, applied in order on opening; `PRAGMA user_version` says how far a
//! database is. Databases migrated by sqlx before (its `_sqlx_migrations` table) are taken up
//! at the version sqlx recorded.
//!
//! Several processes may open one new file at once: each applies what is pending inside one
//! `BEGIN IMMEDIATE` transaction, so the second waits (busy timeout) and then finds nothing
//! left to do.

use keybound_store::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};

use crate::conn::db;

/// (version, script), in order.
pub(crate) const MIGRATIONS: [(i64, &str); 9] = [
    (1, include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../migrations/sqlite/0002_device.sql")),
    (3, include_str!("../migrations/sqlite/0003_purge.sql")),
    (4, include_str!("../migrations/sqlite/0004_issuers.sql")),
    (
        5,
        include_str!("../migrations/sqlite/0005_registration.sql"),
    ),
    (6, include_str!("../migrations/sqlite/0006_one_key_set.sql")),
    (
        7,
        include_str!("../migrations/sqlite/0007_verified_email.sql"),
    ),
    (
        8,
        include_str!("../migrations/sqlite/0008_pushed_requests.sql"),
    ),
    (9, include_str!("../migrations/sqlite/0009_passkeys.sql")),
];

/// Bring the database on `conn` to the newest schema.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let mut version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db)?;
    if version == 0 {
        // a database sqlx migrated: its record says how far
        let by_sqlx: Option<i64> = tx
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                [],
                |_| Ok(()),
            )
            .optional()
            .map_err(db)?
            .map(|()| {
                tx.query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
                    [],
                    |r| r.get(0),
                )
            })
            .transpose()
            .map_err(db)?;
        version = by_sqlx.unwrap_or(0);
    }
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if version > newest {
        return Err(StoreError::Database(
            format!("the database's schema ({version}) is newer than this keybound's ({newest})")
                .into(),
        ));
    }
    for (v, script) in MIGRATIONS {
        if v > version {
            tx.execute_batch(script).map_err(db)?;
        }
    }
    tx.pragma_update(None, "user_version", newest).map_err(db)?;
    tx.commit().map_err(db)
}
