//! # keybound-store-sqlite
//!
//! The SQLite backend of keybound's store traits: the default for one machine. One driver,
//! rusqlite (SQLite is a library: a statement on a warm page cache takes microseconds, less than
//! one ES256 signature, so it runs where it is called rather than behind a per-connection
//! worker thread):
//!
//! - **writes** go to one thread that owns the write connection and commits several requests'
//!   writes in one transaction (module `writer`, group commit); callers await its answer, no
//!   runtime worker ever blocks on a lock;
//! - **reads** run on the calling thread on a reader connection (WAL: readers never wait for the
//!   writer), taken from a small stack;
//! - a **checkpoint thread** copies the WAL back into the file (module `checkpoint`);
//! - the schema is embedded and applied on opening (module `migrate`).
//!
//! Every atomic trait operation is one job of the writer: a conditional statement (`UPDATE …
//! WHERE … RETURNING`, `INSERT … ON CONFLICT … WHERE`) or a read-then-write under the write lock
//! its batch holds, so two requests — or two processes on the same file, which meet in SQLite's
//! busy handler — can never both redeem a code, rotate a refresh token or accept a replayed
//! proof. An in-memory database (`sqlite::memory:`, tests) is served by the writer's connection
//! alone.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tracing::Instrument as _;

mod checkpoint;
mod conn;
mod migrate;
mod ops;
mod writer;

use async_trait::async_trait;
use keybound_jose::Algorithm;
use rusqlite::{params, Connection, OptionalExtension as _};

use keybound_store::{
    AuthorizationCode, BrowserSession, Client, ClientStore, CodeLookup, CodeStore, Consent,
    ConsentStore, DeviceAuthorization, DeviceDecision, DevicePoll, DeviceStore, Expiring,
    FirstRefreshFor, GrantStore, HealthStore, IssuerStore, Kek, KeyState, NewRefresh, Passkey,
    PasskeyStore, ProofMark, PurgeStore, PushedRequest, PushedRequestStore, RefreshLookup,
    RefreshStore, RefreshToken, RegistrationStore, RegistrationToken, ReplayStore, Result,
    SessionStore, SigningKeyRecord, SigningKeyStore, StoreError, TokenHash, TrustedIssuer, User,
    UserStore,
};

use crate::conn::{conflict_or_db, db, json, open, t, u, Location};
use crate::ops::{
    code_state, insert_refresh_in, mark_proof_in, one_json, refresh_state, revoke_grant_in,
    ROTATE_REFRESH,
};
use crate::writer::Writer;

/// The embedded schema migrations, (version, script) in order (for tests that build an older
/// database).
#[doc(hidden)]
pub fn migrations() -> &'static [(i64, &'static str)] {
    &migrate::MIGRATIONS
}

/// Reader connections kept open; more are opened when all are busy, and closed after use.
const READERS: usize = 4;

/// The SQLite store.
pub struct SqliteStore {
    writer: Writer,
    /// reader connections of a file database (`None`: in memory, the writer reads too)
    readers: Option<Readers>,
    kek: Kek,
    /// counts of failed attempts and verified secrets: one process is the whole deployment,
    /// so they live in its memory
    counters: keybound_store::LocalCounters,
    /// dropping it stops the checkpoint thread
    _checkpoints: Option<std::sync::mpsc::Sender<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.readers.as_ref().map(|r| &r.at))
            .finish_non_exhaustive()
    }
}

keybound_store::local_counter_store!(SqliteStore, counters);

struct Readers {
    at: Location,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        // the lock is held for a push or a pop, never across a statement
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => open(&self.at, false)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < READERS {
            idle.push(conn);
        }
        out
    }
}

/// Open the file (creating it), switch it to WAL and migrate; bounded retries, because several
/// processes may start at once on one new file and the switch to WAL takes a lock the busy
/// timeout does not cover ("database is locked").
fn open_writer(at: &Location) -> Result<Connection> {
    let mut attempt = 0;
    loop {
        let opened = (|| {
            let mut conn = open(at, true)?;
            if matches!(at, Location::File(_)) {
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(db)?;
                // the checkpoint thread checkpoints (and restarts the log); the writer only if
                // the log outgrows this anyway, i.e. the thread stalled
                conn.pragma_update(
                    None,
                    "wal_autocheckpoint",
                    checkpoint::WRITER_CHECKPOINT_PAGES,
                )
                .map_err(db)?;
                conn.pragma_update(None, "journal_size_limit", checkpoint::JOURNAL_SIZE_LIMIT)
                    .map_err(db)?;
            }
            migrate::migrate(&mut conn)?;
            Ok::<_, StoreError>(conn)
        })();
        match opened {
            Ok(c) => return Ok(c),
            Err(e) if attempt < 50 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "opening raced another process; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and migrate it.
    pub async fn open(path: &Path, kek: Kek) -> Result<Self> {
        Self::start(conn::file(path), kek).await
    }

    /// A new, empty in-memory database (tests; gone when the store is dropped).
    pub async fn open_memory(kek: Kek) -> Result<Self> {
        let name = format!("keybound-{}", keybound_jose::random_b64(12));
        Self::start(Location::Memory(name), kek).await
    }

    /// Open from a `sqlite:` URL: `sqlite:path/to/op.db`, `sqlite://path`, `sqlite:///abs/path`,
    /// or `sqlite::memory:` (also `?mode=memory`) for a new in-memory database.
    pub async fn open_url(url: &str, kek: Kek) -> Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Database(format!("not a sqlite: URL: {url}").into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path == ":memory:" || path.is_empty() || query.split('&').any(|p| p == "mode=memory") {
            return Self::open_memory(kek).await;
        }
        Self::open(Path::new(path), kek).await
    }

    async fn start(at: Location, kek: Kek) -> Result<Self> {
        let opened = at.clone();
        let conn = tokio::task::spawn_blocking(move || open_writer(&opened))
            .await
            .map_err(|e| StoreError::Database(Box::new(e)))??;
        let writer = Writer::start(conn)?;
        let (readers, checkpoints) = match &at {
            Location::File(_) => (
                Some(Readers {
                    at: at.clone(),
                    idle: Mutex::new(Vec::new()),
                }),
                Some(checkpoint::start(at.clone(), writer.clone())),
            ),
            Location::Memory(_) => (None, None),
        };
        Ok(SqliteStore {
            writer,
            readers,
            kek,
            counters: keybound_store::LocalCounters::default(),
            _checkpoints: checkpoints,
        })
    }

    /// Run `f` on a connection of the store, as a job of the writer (tests that inspect or
    /// change rows directly).
    pub async fn with_connection<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.writer.write(move |c| f(c).map_err(db)).await
    }

    /// `f` on a reader (file) or the writer (memory).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let span = tracing::debug_span!("store.read", db.system = "sqlite");
        match &self.readers {
            Some(r) => span.in_scope(|| r.run(f)),
            None => self.writer.write(f).instrument(span).await,
        }
    }

    /// `f` as one job of the writer.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer
            .write(f)
            .instrument(tracing::debug_span!("store.write", db.system = "sqlite"))
            .await
    }

    /// The record in `data` of the row `sql` selects by its one key parameter.
    async fn one<T>(&self, sql: &'static str, key: &str) -> Result<Option<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let key = key.to_owned();
        self.read(move |c| one_json(c, sql, [key])).await
    }

    /// Every record in `data` of the rows `sql` selects.
    async fn all<T>(&self, sql: &'static str) -> Result<Vec<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.read(move |c| {
            let mut s = c.prepare_cached(sql).map_err(db)?;
            let rows = s
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(db)?;
            rows.iter().map(|text| json(text)).collect()
        })
        .await
    }

    /// Run `sql` (a write) with `params`; the rows it changed.
    async fn execute<P>(&self, sql: &'static str, params: P) -> Result<usize>
    where
        P: rusqlite::Params + Send + 'static,
    {
        self.write(move |c| {
            c.prepare_cached(sql)
                .and_then(|mut s| s.execute(params))
                .map_err(db)
        })
        .await
    }

    fn key_from_row(&self, row: KeyRow) -> Result<SigningKeyRecord> {
        let (kid, alg, state, created_at, activated_at, retired_at, sealed) = row;
        Ok(SigningKeyRecord {
            alg: Algorithm::parse(&alg).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            state: KeyState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("key state '{state}'")))?,
            created_at: u(created_at),
            activated_at: activated_at.map(u),
            retired_at: retired_at.map(u),
            pkcs8: self.kek.open(&kid, &sealed)?,
            kid,
        })
    }
}

/// A `signing_keys` row: kid, alg, state, created_at, activated_at, retired_at, sealed.
type KeyRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Vec<u8>,
);

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn put_client(&self, client: &Client) -> Result<()> {
        let (id, text) = (client.client_id.clone(), serde_json::to_string(client)?);
        self.execute(
            "INSERT INTO clients (client_id, data) VALUES (?1, ?2)
             ON CONFLICT (client_id) DO UPDATE SET data = excluded.data",
            (id, text),
        )
        .await?;
        Ok(())
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        self.one("SELECT data FROM clients WHERE client_id = ?1", client_id)
            .await
    }
    async fn clients(&self) -> Result<Vec<Client>> {
        self.all("SELECT data FROM clients ORDER BY client_id")
            .await
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM clients WHERE client_id = ?1",
                [client_id.to_owned()],
            )
            .await?;
        Ok(n > 0)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn put_user(&self, user: &User) -> Result<()> {
        let (sub, username, text) = (
            user.sub.clone(),
            user.username.clone(),
            serde_json::to_string(user)?,
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO users (sub, username, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sub) DO UPDATE SET username = excluded.username, data = excluded.data",
            )
            .and_then(|mut s| s.execute(params![sub, username, text]))
            .map_err(|e| conflict_or_db(e, || format!("username '{username}' is taken")))?;
            Ok(())
        })
        .await
    }
    async fn user(&self, sub: &str) -> Result<Option<User>> {
        self.one("SELECT data FROM users WHERE sub = ?1", sub).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.one("SELECT data FROM users WHERE username = ?1", username)
            .await
    }
    async fn users(&self) -> Result<Vec<User>> {
        self.all("SELECT data FROM users ORDER BY username").await
    }
    async fn delete_user(&self, sub: &str) -> Result<bool> {
        let n = self
            .execute("DELETE FROM users WHERE sub = ?1", [sub.to_owned()])
            .await?;
        Ok(n > 0)
    }
}

/// The End-Users with this verified e-mail address (two at most: one is an answer, two are
/// ambiguous). Its expressions are those of the index `users_verified_email` (migration 0007).
pub(crate) const USER_BY_VERIFIED_EMAIL: &str = "SELECT data FROM users
     WHERE json_extract(data, '$.email_verified') = 1
       AND lower(json_extract(data, '$.email')) = lower(?1)
       AND json_extract(data, '$.provisioned_by') IS NULL
     LIMIT 2";

const INSERT_KEY: &str = "INSERT INTO signing_keys
    (kid, alg, state, created_at, activated_at, retired_at, seq, sealed)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys), ?7)";

/// A key ready to insert: its record without the private key, and the sealed key.
struct SealedKey {
    kid: String,
    alg: &'static str,
    state: &'static str,
    created_at: i64,
    activated_at: Option<i64>,
    retired_at: Option<i64>,
    sealed: Vec<u8>,
    conflict: String,
}

impl SqliteStore {
    fn seal(&self, key: &SigningKeyRecord) -> Result<SealedKey> {
        Ok(SealedKey {
            kid: key.kid.clone(),
            alg: key.alg.name(),
            state: key.state.as_str(),
            created_at: t(key.created_at),
            activated_at: key.activated_at.map(t),
            retired_at: key.retired_at.map(t),
            sealed: self.kek.seal(&key.kid, &key.pkcs8)?,
            conflict: key.conflict_message(),
        })
    }
}

fn insert_key(c: &Connection, k: &SealedKey) -> rusqlite::Result<usize> {
    c.prepare_cached(INSERT_KEY).and_then(|mut s| {
        s.execute(params![
            k.kid,
            k.alg,
            k.state,
            k.created_at,
            k.activated_at,
            k.retired_at,
            k.sealed
        ])
    })
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let k = self.seal(key)?;
        self.write(move |c| {
            insert_key(c, &k).map_err(|e| conflict_or_db(e, || k.conflict.clone()))?;
            Ok(())
        })
        .await
    }
    async fn put_signing_keys_if_absent(&self, keys: &[SigningKeyRecord]) -> Result<bool> {
        let sealed = keys
            .iter()
            .map(|k| self.seal(k))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |c| {
            // all or none: another process's keys already there undo ours
            c.execute_batch("SAVEPOINT keys").map_err(db)?;
            for k in &sealed {
                if let Err(e) = insert_key(c, k) {
                    c.execute_batch("ROLLBACK TO keys; RELEASE keys")
                        .map_err(db)?;
                    return match db(e) {
                        StoreError::Conflict(_) => Ok(false),
                        other => Err(other),
                    };
                }
            }
            c.execute_batch("RELEASE keys").map_err(db)?;
            Ok(true)
        })
        .await
    }
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows: Vec<KeyRow> = self
            .read(|c| {
                let mut s = c
                    .prepare_cached(
                        "SELECT kid, alg, state, created_at, activated_at, retired_at, sealed
                         FROM signing_keys ORDER BY seq, kid",
                    )
                    .map_err(db)?;
                let rows = s
                    .query_map([], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    })
                    .map_err(db)?
                    .collect::<rusqlite::Result<Vec<KeyRow>>>()
                    .map_err(db)?;
                Ok(rows)
            })
            .await?;
        rows.into_iter().map(|r| self.key_from_row(r)).collect()
    }
    async fn rotate_signing_keys(&self, new_next: &SigningKeyRecord, now: u64) -> Result<()> {
        let next = self.seal(&SigningKeyRecord {
            state: KeyState::Next,
            activated_at: None,
            retired_at: None,
            ..new_next.clone()
        })?;
        self.write(move |c| {
            c.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = ?1 WHERE state = 'current'",
                [t(now)],
            )
            .map_err(db)?;
            c.execute(
                "UPDATE signing_keys SET state = 'current', activated_at = ?1 WHERE state = 'next'",
                [t(now)],
            )
            .map_err(db)?;
            insert_key(c, &next).map_err(|e| conflict_or_db(e, || next.conflict.clone()))?;
            Ok(())
        })
        .await
    }
    async fn purge_retired_keys(&self, before: u64) -> Result<u64> {
        let n = self
            .execute(
                "DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ?1",
                [t(before)],
            )
            .await?;
        Ok(n as u64)
    }
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn insert_code(&self, hash: &TokenHash, code: &AuthorizationCode) -> Result<()> {
        let (h, text, exp) = (hash.0, serde_json::to_string(code)?, t(code.expires_at));
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO auth_codes (code_hash, data, expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![&h[..], text, exp]))
            .map_err(|e| conflict_or_db(e, || "code exists".into()))?;
            Ok(())
        })
        .await
    }
    async fn find_code(&self, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
        let h = *hash;
        self.read(move |c| code_state(c, &h, now)).await
    }
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        now: u64,
        first: Option<NewRefresh<'_>>,
        proof: Option<&ProofMark>,
    ) -> Result<CodeLookup> {
        let (h, proof) = (*hash, proof.copied());
        let first = first.map(|(fh, tok)| (*fh, tok.clone()));
        self.write(move |c| {
            if !mark_proof_in(c, proof.as_ref(), now)? {
                return Ok(CodeLookup::Replayed);
            }
            let won: Option<AuthorizationCode> = c
                .prepare_cached(
                    "UPDATE auth_codes SET redeemed_at = ?1
                     WHERE code_hash = ?2 AND redeemed_at IS NULL AND expires_at > ?1
                     RETURNING data",
                )
                .and_then(|mut s| {
                    s.query_row(params![t(now), &h.0[..]], |r| r.get::<_, String>(0))
                        .optional()
                })
                .map_err(db)?
                .map(|text| json(&text))
                .transpose()?;
            match won {
                Some(code) => {
                    if let Some((fh, tok)) = &first {
                        insert_refresh_in(c, fh, tok, true)?;
                    }
                    Ok(CodeLookup::Active(code))
                }
                None => code_state(c, &h, now),
            }
        })
        .await
    }
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn insert_refresh(&self, hash: &TokenHash, token: &RefreshToken) -> Result<()> {
        let (h, tok) = (*hash, token.clone());
        self.write(move |c| insert_refresh_in(c, &h, &tok, true))
            .await
    }
    async fn find_refresh(&self, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
        let h = *hash;
        self.read(move |c| refresh_state(c, &h, now)).await
    }
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_token: &RefreshToken,
        now: u64,
        proof: Option<&ProofMark>,
    ) -> Result<RefreshLookup> {
        let (old, new, new_token, proof) = (*old, *new, new_token.clone(), proof.copied());
        self.write(move |c| {
            if !mark_proof_in(c, proof.as_ref(), now)? {
                return Ok(RefreshLookup::Replayed);
            }
            let used: Option<String> = c
                .prepare_cached(ROTATE_REFRESH)
                .and_then(|mut s| {
                    s.query_row(params![t(now), &old.0[..]], |r| r.get(0))
                        .optional()
                })
                .map_err(db)?;
            if let Some(text) = used {
                let tok: RefreshToken = json(&text)?;
                if tok.family_id != new_token.family_id {
                    return Err(StoreError::Conflict(
                        "rotation must stay in the family".into(),
                    ));
                }
                // the family row exists: the UPDATE above found the old token through it
                insert_refresh_in(c, &new, &new_token, false)?;
                return Ok(RefreshLookup::Active(tok));
            }
            let state = refresh_state(c, &old, now)?;
            if let RefreshLookup::Reused(tok) = &state {
                // reuse: the grant (every family, every access token) goes in this job
                revoke_grant_in(c, &tok.grant_id, now)?;
            }
            Ok(state)
        })
        .await
    }
    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<()> {
        self.execute(
            "UPDATE refresh_families SET revoked_at = ?1 WHERE family_id = ?2 AND revoked_at IS NULL",
            (t(now), family_id.to_owned()),
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn revoke_grant(&self, grant_id: &str, now: u64) -> Result<()> {
        let g = grant_id.to_owned();
        self.write(move |c| revoke_grant_in(c, &g, now)).await
    }
    async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool> {
        let g = grant_id.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT 1 FROM revoked_grants WHERE grant_id = ?1")
                .and_then(|mut s| s.exists(params![g]))
                .map_err(db)
        })
        .await
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consent(&self, sub: &str, client_id: &str) -> Result<Option<Consent>> {
        let (sub, client_id) = (sub.to_owned(), client_id.to_owned());
        self.read(move |c| {
            one_json(
                c,
                "SELECT data FROM consents WHERE sub = ?1 AND client_id = ?2",
                params![sub, client_id],
            )
        })
        .await
    }
    async fn put_consent(&self, consent: &Consent) -> Result<()> {
        let (sub, client_id, text) = (
            consent.sub.clone(),
            consent.client_id.clone(),
            serde_json::to_string(consent)?,
        );
        self.execute(
            "INSERT INTO consents (sub, client_id, data) VALUES (?1, ?2, ?3)
             ON CONFLICT (sub, client_id) DO UPDATE SET data = excluded.data",
            (sub, client_id, text),
        )
        .await?;
        Ok(())
    }
    async fn consents_of(&self, sub: &str) -> Result<Vec<Consent>> {
        let sub = sub.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT data FROM consents WHERE sub = ?1 ORDER BY client_id")
                .map_err(db)?;
            let rows = st
                .query_map(params![sub], |r| r.get::<_, String>(0))
                .map_err(db)?;
            rows.map(|r| Ok(serde_json::from_str(&r.map_err(db)?)?))
                .collect()
        })
        .await
    }
    async fn revoke_consent(&self, sub: &str, client_id: &str, now: u64) -> Result<bool> {
        let (sub, client_id) = (sub.to_owned(), client_id.to_owned());
        // one job of the writer: atomic (its own savepoint in the batch's transaction)
        self.write(move |tx| {
            let had = tx
                .execute(
                    "DELETE FROM consents WHERE sub = ?1 AND client_id = ?2",
                    params![sub, client_id],
                )
                .map_err(db)?
                > 0;
            // the grants of this End-User and client that still have refresh tokens (a rare
            // End-User action: a scan of the refresh tokens' records is acceptable)
            let grants: Vec<String> = {
                let mut st = tx
                    .prepare(
                        "SELECT DISTINCT f.grant_id FROM refresh_families f \
                         JOIN refresh_tokens t ON t.family_id = f.family_id \
                         WHERE f.revoked_at IS NULL \
                         AND json_extract(t.data, '$.sub') = ?1 \
                         AND json_extract(t.data, '$.client_id') = ?2",
                    )
                    .map_err(db)?;
                let rows = st
                    .query_map(params![sub, client_id], |r| r.get::<_, String>(0))
                    .map_err(db)?;
                rows.collect::<rusqlite::Result<_>>().map_err(db)?
            };
            for g in &grants {
                revoke_grant_in(tx, g, now)?;
            }
            Ok(had)
        })
        .await
    }
}

#[async_trait]
impl ReplayStore for SqliteStore {
    async fn check_and_insert(&self, digest: &[u8; 32], expires_at: u64, now: u64) -> Result<bool> {
        let mark = ProofMark {
            digest: *digest,
            expires_at,
        };
        self.write(move |c| mark_proof_in(c, Some(&mark), now))
            .await
    }
    async fn replay_seen(&self, digest: &[u8; 32], now: u64) -> Result<bool> {
        let digest = *digest;
        self.read(move |c| {
            c.prepare_cached("SELECT 1 FROM replay WHERE digest = ?1 AND expires_at > ?2")
                .and_then(|mut s| s.exists(params![&digest[..], t(now)]))
                .map_err(db)
        })
        .await
    }
}

#[async_trait]
impl PurgeStore for SqliteStore {
    async fn purge_expired(&self, kind: Expiring, now: u64, limit: u32) -> Result<u64> {
        if let Some(n) = self.counters.purge(kind, now, limit) {
            return Ok(n);
        }
        // every table has an index on expires_at; the LIMIT keeps one job short
        let sql = match kind {
            Expiring::Counters | Expiring::VerifiedSecrets => return Ok(0),
            Expiring::PushedRequests => "DELETE FROM pushed_requests WHERE rowid IN (SELECT rowid FROM pushed_requests WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::Replay => "DELETE FROM replay WHERE rowid IN (SELECT rowid FROM replay WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::Codes => "DELETE FROM auth_codes WHERE rowid IN (SELECT rowid FROM auth_codes WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::DeviceCodes => "DELETE FROM device_codes WHERE rowid IN (SELECT rowid FROM device_codes WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::Sessions => "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::RefreshTokens => "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens WHERE expires_at <= ?1 LIMIT ?2)",
        };
        let n = self.execute(sql, (t(now), i64::from(limit))).await?;
        Ok(n as u64)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_session(&self, hash: &TokenHash, session: &BrowserSession) -> Result<()> {
        let (h, text, exp) = (
            hash.0.to_vec(),
            serde_json::to_string(session)?,
            t(session.expires_at),
        );
        self.execute(
            "INSERT INTO sessions (session_hash, data, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (session_hash) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
            (h, text, exp),
        )
        .await?;
        Ok(())
    }
    async fn session(&self, hash: &TokenHash, now: u64) -> Result<Option<BrowserSession>> {
        let h = hash.0.to_vec();
        self.read(move |c| {
            one_json(
                c,
                "SELECT data FROM sessions WHERE session_hash = ?1 AND expires_at > ?2",
                params![h, t(now)],
            )
        })
        .await
    }
    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.execute(
            "DELETE FROM sessions WHERE session_hash = ?1",
            [hash.0.to_vec()],
        )
        .await?;
        Ok(())
    }
}

/// What the first statement of a device poll found.
enum Polled {
    Done(DevicePoll),
    /// approved and not yet consumed
    Approved(DeviceAuthorization, DeviceDecision),
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_device(
        &self,
        hash: &TokenHash,
        auth: &DeviceAuthorization,
        interval: u64,
    ) -> Result<()> {
        let (h, user_code, text, exp) = (
            hash.0.to_vec(),
            auth.user_code.clone(),
            serde_json::to_string(auth)?,
            t(auth.expires_at),
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO device_codes (device_hash, user_code, data, interval, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![h, user_code, text, t(interval), exp]))
            .map_err(|e| conflict_or_db(e, || "device code or user code exists".into()))?;
            Ok(())
        })
        .await
    }

    async fn find_device(&self, hash: &TokenHash, now: u64) -> Result<Option<DeviceAuthorization>> {
        let h = hash.0.to_vec();
        self.read(move |c| {
            one_json(
                c,
                "SELECT data FROM device_codes WHERE device_hash = ?1 AND expires_at > ?2",
                params![h, t(now)],
            )
        })
        .await
    }

    async fn device_by_user_code(
        &self,
        user_code: &str,
        now: u64,
    ) -> Result<Option<(TokenHash, DeviceAuthorization)>> {
        let user_code = user_code.to_owned();
        let row: Option<(Vec<u8>, String)> = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT device_hash, data FROM device_codes WHERE user_code = ?1 AND decision IS NULL AND expires_at > ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![user_code, t(now)], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(db)
            })
            .await?;
        row.map(|(h, text)| {
            let h: [u8; 32] = h
                .try_into()
                .map_err(|_| StoreError::Corrupt("device hash length".into()))?;
            Ok((TokenHash(h), json(&text)?))
        })
        .transpose()
    }

    async fn decide_device(
        &self,
        hash: &TokenHash,
        decision: &DeviceDecision,
        now: u64,
    ) -> Result<bool> {
        let n = self
            .execute(
                "UPDATE device_codes SET decision = ?1 WHERE device_hash = ?2 AND decision IS NULL AND expires_at > ?3",
                (serde_json::to_string(decision)?, hash.0.to_vec(), t(now)),
            )
            .await?;
        Ok(n == 1)
    }

    async fn poll_device(
        &self,
        hash: &TokenHash,
        now: u64,
        first: &FirstRefreshFor<'_>,
    ) -> Result<DevicePoll> {
        let h = hash.0.to_vec();
        // One statement records the poll and applies slow_down; SET expressions see the old
        // row.
        let polled = self
            .write(move |c| {
                let row = c
                    .prepare_cached(
                        "UPDATE device_codes SET
                             slowed = CASE WHEN last_poll IS NOT NULL AND ?1 < last_poll + interval THEN 1 ELSE 0 END,
                             interval = interval + CASE WHEN last_poll IS NOT NULL AND ?1 < last_poll + interval THEN 5 ELSE 0 END,
                             last_poll = ?1
                         WHERE device_hash = ?2 AND redeemed = 0 AND expires_at > ?1
                         RETURNING slowed, interval, decision, data",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![t(now), h], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Option<String>>(2)?,
                                r.get::<_, String>(3)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(db)?;
                let Some((slowed, interval, decision, text)) = row else {
                    return redeemed_or_gone(c, &h).map(Polled::Done);
                };
                let interval = u(interval);
                if slowed == 1 {
                    return Ok(Polled::Done(DevicePoll::SlowDown { interval }));
                }
                let auth: DeviceAuthorization = json(&text)?;
                let decision: Option<DeviceDecision> = decision.as_deref().map(json).transpose()?;
                Ok(match decision {
                    None => Polled::Done(DevicePoll::Pending { interval }),
                    Some(DeviceDecision::Denied) => Polled::Done(DevicePoll::Denied),
                    Some(dec @ DeviceDecision::Approved { .. }) => Polled::Approved(auth, dec),
                })
            })
            .await?;
        let (auth, dec) = match polled {
            Polled::Done(p) => return Ok(p),
            Polled::Approved(auth, dec) => (auth, dec),
        };
        // approved: consume it with its first refresh token in one job; of two polls racing
        // here, one consumes and the other finds it redeemed
        let h = hash.0.to_vec();
        let refresh = first(&dec);
        self.write(move |c| {
            let consumed = c
                .prepare_cached(
                    "UPDATE device_codes SET redeemed = 1 WHERE device_hash = ?1 AND redeemed = 0",
                )
                .and_then(|mut s| s.execute(params![h]))
                .map_err(db)?;
            if consumed == 0 {
                return redeemed_or_gone(c, &h);
            }
            if let Some((rh, token)) = &refresh {
                insert_refresh_in(c, rh, token, true)?;
            }
            Ok(DevicePoll::Approved(auth, dec))
        })
        .await
    }
}

/// A device code the poll could not update: redeemed before, expired, or never issued.
fn redeemed_or_gone(c: &Connection, h: &[u8]) -> Result<DevicePoll> {
    let row = c
        .prepare_cached("SELECT redeemed, data FROM device_codes WHERE device_hash = ?1")
        .and_then(|mut s| {
            s.query_row(params![h], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .optional()
        })
        .map_err(db)?;
    Ok(match row {
        None => DevicePoll::NotFound,
        Some((1, text)) => DevicePoll::Redeemed(json(&text)?),
        Some(_) => DevicePoll::Expired,
    })
}

#[async_trait]
impl IssuerStore for SqliteStore {
    async fn put_issuer(&self, issuer: &TrustedIssuer) -> Result<()> {
        self.execute(
            "INSERT INTO trusted_issuers (issuer, data) VALUES (?1, ?2)
             ON CONFLICT (issuer) DO UPDATE SET data = excluded.data",
            (issuer.issuer.clone(), serde_json::to_string(issuer)?),
        )
        .await?;
        Ok(())
    }
    async fn issuer(&self, issuer: &str) -> Result<Option<TrustedIssuer>> {
        self.one("SELECT data FROM trusted_issuers WHERE issuer = ?1", issuer)
            .await
    }
    async fn issuers(&self) -> Result<Vec<TrustedIssuer>> {
        self.all("SELECT data FROM trusted_issuers ORDER BY issuer")
            .await
    }
    async fn delete_issuer(&self, issuer: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM trusted_issuers WHERE issuer = ?1",
                [issuer.to_owned()],
            )
            .await?;
        Ok(n > 0)
    }
    async fn link_user(&self, issuer: &str, external_sub: &str, sub: &str) -> Result<()> {
        let (iss, ext, sub) = (issuer.to_owned(), external_sub.to_owned(), sub.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO user_links (issuer, external_sub, sub) VALUES (?1, ?2, ?3)
                 ON CONFLICT (issuer, external_sub) DO UPDATE SET sub = excluded.sub",
            )
            .and_then(|mut s| s.execute(params![iss, ext, sub]))
            .map_err(|e| conflict_or_db(e, || format!("no trusted issuer '{iss}' to link to")))?;
            Ok(())
        })
        .await
    }
    async fn linked_user(&self, issuer: &str, external_sub: &str) -> Result<Option<User>> {
        let (iss, ext) = (issuer.to_owned(), external_sub.to_owned());
        self.read(move |c| {
            one_json(
                c,
                "SELECT u.data FROM user_links l JOIN users u ON u.sub = l.sub
                 WHERE l.issuer = ?1 AND l.external_sub = ?2",
                params![iss, ext],
            )
        })
        .await
    }
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.read(move |c| {
            let mut s = c.prepare_cached(USER_BY_VERIFIED_EMAIL).map_err(db)?;
            let mut rows = s.query(params![email]).map_err(db)?;
            let first: Option<String> = match rows.next().map_err(db)? {
                Some(r) => Some(r.get(0).map_err(db)?),
                None => None,
            };
            // two rows are no answer (an ambiguous address)
            if rows.next().map_err(db)?.is_some() {
                return Ok(None);
            }
            first.map(|text| json(&text)).transpose()
        })
        .await
    }
}

#[async_trait]
impl RegistrationStore for SqliteStore {
    async fn put_registration_token(
        &self,
        hash: &TokenHash,
        token: &RegistrationToken,
    ) -> Result<()> {
        let (h, uses, exp, created) = (
            hash.0.to_vec(),
            token.uses_left.map(i64::from),
            t(token.expires_at),
            t(token.created_at),
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO registration_tokens (token_hash, uses_left, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![h, uses, exp, created]))
            .map_err(|e| conflict_or_db(e, || "registration token exists".into()))?;
            Ok(())
        })
        .await
    }
    async fn use_registration_token(&self, hash: &TokenHash, now: u64) -> Result<bool> {
        // one conditional statement: spending the last use is atomic
        let n = self
            .execute(
                "UPDATE registration_tokens SET uses_left = uses_left - 1
                 WHERE token_hash = ?1 AND expires_at > ?2 AND (uses_left IS NULL OR uses_left > 0)",
                (hash.0.to_vec(), t(now)),
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl PushedRequestStore for SqliteStore {
    async fn put_pushed(&self, hash: &TokenHash, request: &PushedRequest) -> Result<()> {
        let (h, text, exp) = (
            hash.0.to_vec(),
            serde_json::to_string(request)?,
            t(request.expires_at),
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO pushed_requests (request_hash, data, expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![h, text, exp]))
            .map_err(|e| conflict_or_db(e, || "pushed request exists".into()))?;
            Ok(())
        })
        .await
    }
    async fn take_pushed(&self, hash: &TokenHash, now: u64) -> Result<Option<PushedRequest>> {
        let h = hash.0.to_vec();
        // one statement: of two takers, one gets the row
        let row: Option<(String, i64)> = self
            .write(move |c| {
                c.prepare_cached(
                    "DELETE FROM pushed_requests WHERE request_hash = ?1 RETURNING data, expires_at",
                )
                .and_then(|mut s| {
                    s.query_row(params![h], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(db)
            })
            .await?;
        match row {
            Some((text, exp)) if u(exp) > now => Ok(Some(json(&text)?)),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn insert_passkey(&self, passkey: &Passkey) -> Result<()> {
        let p = passkey.clone();
        let text = serde_json::to_string(&p)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO passkeys (credential_id, sub, created_at, data) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![p.credential_id, p.sub, t(p.created_at), text]))
            .map_err(|e| {
                conflict_or_db(e, || {
                    "credential id registered already, or no such End-User".to_owned()
                })
            })?;
            Ok(())
        })
        .await
    }
    async fn passkey(&self, credential_id: &str) -> Result<Option<Passkey>> {
        self.one(
            "SELECT data FROM passkeys WHERE credential_id = ?1",
            credential_id,
        )
        .await
    }
    async fn passkeys_of(&self, sub: &str) -> Result<Vec<Passkey>> {
        let sub = sub.to_owned();
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT data FROM passkeys WHERE sub = ?1 ORDER BY created_at, credential_id",
                )
                .map_err(db)?;
            let rows = s
                .query_map([sub], |r| r.get::<_, String>(0))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(db)?;
            rows.iter().map(|text| json(text)).collect()
        })
        .await
    }
    async fn use_passkey(
        &self,
        credential_id: &str,
        credential: &str,
        sign_count: u32,
        now: u64,
    ) -> Result<bool> {
        let (id, credential) = (credential_id.to_owned(), credential.to_owned());
        self.change_passkey(id, move |p| p.record_use(&credential, sign_count, now))
            .await
    }
    async fn rename_passkey(&self, sub: &str, credential_id: &str, name: &str) -> Result<bool> {
        let (sub, id, name) = (sub.to_owned(), credential_id.to_owned(), name.to_owned());
        self.change_passkey(id, move |p| {
            if p.sub != sub {
                return false;
            }
            p.name = name;
            true
        })
        .await
    }
    async fn delete_passkey(&self, sub: &str, credential_id: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM passkeys WHERE credential_id = ?1 AND sub = ?2",
                (credential_id.to_owned(), sub.to_owned()),
            )
            .await?;
        Ok(n > 0)
    }
}

impl SqliteStore {
    /// Change a passkey's record by `rule` (`false`: leave it), read and written in one job of
    /// the writer, so no other write comes between.
    async fn change_passkey(
        &self,
        id: String,
        rule: impl FnOnce(&mut Passkey) -> bool + Send + 'static,
    ) -> Result<bool> {
        self.write(move |c| {
            let found: Option<Passkey> = one_json(
                c,
                "SELECT data FROM passkeys WHERE credential_id = ?1",
                [&id],
            )?;
            let Some(mut p) = found else {
                return Ok(false);
            };
            if !rule(&mut p) {
                return Ok(false);
            }
            let text = serde_json::to_string(&p)?;
            c.prepare_cached("UPDATE passkeys SET data = ?1 WHERE credential_id = ?2")
                .and_then(|mut s| s.execute(params![text, id]))
                .map_err(db)?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::{JOURNAL_SIZE_LIMIT, RESTART_AT_FRAMES, WRITER_CHECKPOINT_PAGES};

    /// The plan of `sql` on the migrated schema, one line per step.
    fn plan(sql: &str) -> Vec<String> {
        let mut c = Connection::open_in_memory().unwrap();
        migrate::migrate(&mut c).unwrap();
        let mut s = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; s.parameter_count()];
        s.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|l| l.unwrap())
            .collect()
    }

    /// A refresh's cost must not grow with the number of grants: every table the rotation
    /// reads is searched by key, none is scanned or copied into a temporary index.
    #[test]
    fn rotation_searches_by_key_and_scans_nothing() {
        let p = plan(ROTATE_REFRESH);
        assert!(
            p.iter()
                .all(|l| !l.contains("SCAN") && !l.contains("LIST SUBQUERY")),
            "{p:#?}"
        );
        assert!(p.iter().any(|l| l.contains("SEARCH f USING")), "{p:#?}");
    }

    /// A jwt-bearer redemption by verified e-mail searches an index, whatever the number of
    /// End-Users (it scanned and parsed every user's record).
    #[test]
    fn verified_email_lookup_searches_an_index() {
        let p = plan(USER_BY_VERIFIED_EMAIL);
        assert!(
            p.iter()
                .any(|l| l.contains("SEARCH users USING INDEX users_verified_email")),
            "{p:#?}"
        );
        assert!(p.iter().all(|l| !l.contains("SCAN")), "{p:#?}");
    }

    /// Once the log is long, the checkpoint thread's pass ends with a second checkpoint while
    /// nobody writes, which copies what the writer appended during the first, unlocked one, so
    /// the next commit starts the log over (the writer's own checkpoint did that on the request
    /// path).
    #[test]
    fn a_long_log_is_copied_entirely_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open(&path).unwrap();
        w.pragma_update(None, "journal_mode", "WAL").unwrap();
        w.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        w.execute_batch("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
            .unwrap();
        let mut n = 0u32;
        let mut commit = |w: &Connection| {
            n += 1;
            w.execute(
                "INSERT INTO t (k, v) VALUES (?1, zeroblob(3000))",
                [n.to_be_bytes()],
            )
            .unwrap();
        };
        // each commit appends a page or two: past the threshold, bounded in count
        for _ in 0..RESTART_AT_FRAMES {
            commit(&w);
        }
        // a reader's snapshot keeps the first, unlocked checkpoint from copying the commits
        // after it, as the writer's appends during that checkpoint would
        let at = conn::file(&path);
        let reader = open(&at, false).unwrap();
        reader
            .execute_batch("BEGIN; SELECT count(*) FROM t;")
            .unwrap();
        for _ in 0..10 {
            commit(&w);
        }
        let ckpt = Arc::new(Mutex::new(open(&at, false).unwrap()));
        let left = checkpoint::pass(&ckpt, |c| {
            reader.execute_batch("COMMIT").unwrap();
            let c = c.lock().unwrap();
            Ok(
                c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                    .unwrap(),
            )
        })
        .unwrap();
        commit(&w);
        let frames: i64 = ckpt
            .lock()
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        assert!(left >= RESTART_AT_FRAMES, "{left}");
        assert!(frames < 10, "the log holds {frames} frames after the pass");
    }

    /// The WAL is cut back (`journal_size_limit`) only when it has outgrown what the writer
    /// lets it reach before checkpointing itself, i.e. after the checkpoint thread stalled. A
    /// limit below that made the request that restarted the log truncate the file on most
    /// restarts; on a file system mounted with `discard` the truncation waits for the device
    /// (9 ms seen). Refresh p99 at 1,000/s on such a disk: 6.5–11.6 ms with an 8 MiB limit,
    /// 2.0–2.9 ms with this one.
    #[tokio::test]
    async fn wal_is_cut_back_only_after_a_stalled_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (kek, _) = Kek::generate().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db"), kek)
            .await
            .unwrap();
        let (limit, pages, page) = s
            .with_connection(|c| {
                let get = |p: &str| c.pragma_query_value(None, p, |r| r.get::<_, i64>(0));
                Ok((
                    get("journal_size_limit")?,
                    get("wal_autocheckpoint")?,
                    get("page_size")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            (limit, pages),
            (JOURNAL_SIZE_LIMIT, WRITER_CHECKPOINT_PAGES)
        );
        // the thread restarts the log before the writer would checkpoint it itself
        assert!(RESTART_AT_FRAMES < pages, "{RESTART_AT_FRAMES} vs {pages}");
        // a WAL frame is a page plus its 24-byte header; the WAL itself has a 32-byte header
        let reached = 32 + pages * (page + 24);
        assert!(limit >= 3 * reached / 2, "limit {limit} vs {reached}");
    }
}
