//! The statements of the store's atomic operations, each a function over a connection: the
//! writer thread runs the writing ones inside its batch transaction, readers the others.

use keybound_store::{
    CodeLookup, ProofMark, RefreshLookup, RefreshToken, Result, StoreError, TokenHash,
};
use rusqlite::{params, Connection, OptionalExtension as _};

use crate::conn::{db, json, t, u};

/// Marks a live refresh token used, if its family is not revoked. The family is checked by a
/// correlated `EXISTS` (one primary-key search): `family_id IN (SELECT … WHERE revoked_at IS
/// NULL)` made SQLite build a temporary index of every live family on each rotation, so a
/// refresh cost grew with the number of grants (2,100 → 740 req/s after 1,000 grants).
pub(crate) const ROTATE_REFRESH: &str = "UPDATE refresh_tokens SET used_at = ?1
     WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
       AND EXISTS (SELECT 1 FROM refresh_families f
                   WHERE f.family_id = refresh_tokens.family_id AND f.revoked_at IS NULL)
     RETURNING data";

/// Record a proof in the replay cache unless it is there and not expired: `false` for a
/// replay. No proof: `true`. The one replay statement (`check_and_insert` and the consuming
/// operations that record their request's proof).
pub(crate) fn mark_proof_in(c: &Connection, proof: Option<&ProofMark>, now: u64) -> Result<bool> {
    let Some(p) = proof else {
        return Ok(true);
    };
    let n = c
        .prepare_cached(
            "INSERT INTO replay (digest, expires_at) VALUES (?1, ?2)
             ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at
             WHERE replay.expires_at <= ?3",
        )
        .and_then(|mut s| s.execute(params![&p.digest[..], t(p.expires_at), t(now)]))
        .map_err(db)?;
    Ok(n == 1)
}

/// The JSON record in the first column of the one row `sql` selects, if any.
pub(crate) fn one_json<T: serde::de::DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get::<_, String>(0)).optional())
        .map_err(db)?
        .map(|text| json(&text))
        .transpose()
}

pub(crate) fn code_state(c: &Connection, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
    let row = c
        .prepare_cached("SELECT data, expires_at, redeemed_at FROM auth_codes WHERE code_hash = ?1")
        .and_then(|mut s| {
            s.query_row(params![&hash.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()
        })
        .map_err(db)?;
    let Some((text, expires_at, redeemed_at)) = row else {
        return Ok(CodeLookup::NotFound);
    };
    Ok(CodeLookup::classify(
        json(&text)?,
        redeemed_at.is_some(),
        u(expires_at),
        now,
    ))
}

pub(crate) fn refresh_state(c: &Connection, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
    let row = c
        .prepare_cached(
            "SELECT t.data, t.expires_at, t.used_at, f.revoked_at
             FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id
             WHERE t.token_hash = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![&hash.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .optional()
        })
        .map_err(db)?;
    let Some((text, expires_at, used_at, revoked_at)) = row else {
        return Ok(RefreshLookup::NotFound);
    };
    Ok(RefreshLookup::classify(
        json(&text)?,
        revoked_at.is_some(),
        used_at.is_some(),
        u(expires_at),
        now,
    ))
}

/// Store a refresh token inside the caller's transaction (starting its family if new).
pub(crate) fn insert_refresh_in(
    c: &Connection,
    hash: &TokenHash,
    token: &RefreshToken,
    new_family: bool,
) -> Result<()> {
    if new_family {
        c.prepare_cached(
            "INSERT INTO refresh_families (family_id, grant_id) VALUES (?1, ?2)
             ON CONFLICT (family_id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![token.family_id, token.grant_id]))
        .map_err(db)?;
    }
    let text = serde_json::to_string(token)?;
    c.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, family_id, data, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![&hash.0[..], token.family_id, text, t(token.expires_at)]))
    .map_err(|e| match db(e) {
        StoreError::Conflict(_) => StoreError::Conflict("refresh token exists".into()),
        other => other,
    })?;
    Ok(())
}

/// Revoke a grant inside the caller's transaction: its access tokens (by `gid`) and every
/// refresh family issued under it.
pub(crate) fn revoke_grant_in(c: &Connection, grant_id: &str, now: u64) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES (?1, ?2)
         ON CONFLICT (grant_id) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![grant_id, t(now)]))
    .map_err(db)?;
    c.prepare_cached(
        "UPDATE refresh_families SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL",
    )
    .and_then(|mut s| s.execute(params![t(now), grant_id]))
    .map_err(db)?;
    Ok(())
}
