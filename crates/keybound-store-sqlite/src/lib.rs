//! # keybound-store-sqlite
//!
//! The SQLite backend of keybound's store traits (WAL, embedded migrations): the default for
//! one machine. Administration and migrations run on sqlx; what every token and authorization
//! request does runs on rusqlite in the calling thread (module `hot`, for speed). A crate of
//! its own so that the traits (and `keybound-op`, which only sees them) do not compile a
//! database driver; the PostgreSQL backend is its sibling.
//!
//! Every atomic trait operation is one conditional statement (`UPDATE … WHERE … RETURNING`,
//! `INSERT … ON CONFLICT … WHERE`) or one transaction whose first statement writes, so two
//! connections — or two processes on the same file — can never both redeem a code, rotate a
//! refresh token or accept a replayed proof.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

mod hot;

use async_trait::async_trait;
use keybound_jose::Algorithm;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

use keybound_store::{
    AuthorizationCode, BrowserSession, Client, ClientStore, CodeLookup, CodeStore, Consent,
    ConsentStore, DeviceAuthorization, DeviceDecision, DevicePoll, DeviceStore, Expiring,
    FirstRefreshFor, GrantStore, HealthStore, IssuerStore, Kek, KeyState, NewRefresh, PurgeStore,
    PushedRequest, PushedRequestStore, RefreshLookup, RefreshStore, RefreshToken,
    RegistrationStore, RegistrationToken, ReplayStore, Result, SessionStore, SigningKeyRecord,
    SigningKeyStore, StoreError, TokenHash, TrustedIssuer, User, UserStore,
};

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    /// administration reads (several connections: WAL readers never wait for the writer)
    pool: SqlitePool,
    /// administration writes and migrations, on one connection (rare: they meet the token
    /// path's writer in SQLite's busy handler)
    writer: SqlitePool,
    /// every operation of the token and authorization endpoints, on rusqlite in the calling
    /// thread (module `hot`)
    hot: hot::Hot,
    kek: Kek,
    /// counts of failed attempts and verified secrets: one process is the whole deployment,
    /// so they live in its memory
    counters: keybound_store::LocalCounters,
}

keybound_store::local_counter_store!(SqliteStore, counters);

fn t(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The JSON document in a row's `data` column (every record is stored that way).
fn data<T: serde::de::DeserializeOwned>(r: &sqlx::sqlite::SqliteRow) -> Result<T> {
    Ok(serde_json::from_str(
        r.try_get::<&str, _>("data").map_err(db)?,
    )?)
}

/// A database failure, with its cause kept for the operator.
fn db(e: sqlx::Error) -> StoreError {
    // the pool had no connection within its acquire timeout (every one busy): nothing decided
    if matches!(e, sqlx::Error::PoolTimedOut) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Database(Box::new(e))
    }
}

/// A unique-constraint violation is a [`StoreError::Conflict`] described by `what`; anything
/// else a database failure.
fn conflict_or_db(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what()),
        _ => db(e),
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and run migrations.
    pub async fn open(path: &Path, kek: Kek) -> Result<Self> {
        Self::connect(SqliteConnectOptions::new().filename(path), kek).await
    }

    /// Open from a `sqlite:` URL naming a file. An in-memory database is refused: the token
    /// endpoint's connections (module `hot`) and sqlx's would each see their own (use keybound's
    /// memory store instead).
    pub async fn open_url(url: &str, kek: Kek) -> Result<Self> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Database(
                "an in-memory SQLite database is not supported: name a file (sqlite:path/to/op.db)"
                    .into(),
            ));
        }
        Self::connect(SqliteConnectOptions::from_str(url).map_err(db)?, kek).await
    }

    async fn connect(opts: SqliteConnectOptions, kek: Kek) -> Result<Self> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // No ping before each acquire (sqlx's default): a connection to a local file does not go
        // stale like a network one, and with sqlx's per-connection worker thread every ping is a
        // cross-thread round-trip that cost as much as the query it guarded (docs/performance.md).
        //
        // Several processes may start at once on one file. Switching a new file to WAL takes a
        // lock that the busy timeout does not cover ("database is locked"), and sqlx's SQLite
        // migrator takes no lock, so the loser of a race fails a migration (which rolls back
        // whole). Either way the loser opens again once the winner is done; the attempts are
        // bounded (5 s).
        let mut attempt = 0;
        let writer = loop {
            let opened = async {
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .connect_with(opts.clone())
                    .await
                    .map_err(db)?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(&writer)
                    .await
                    .map_err(|e| StoreError::Database(Box::new(e)))?;
                Ok::<_, StoreError>(writer)
            }
            .await;
            match opened {
                Ok(w) => break w,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "opening raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let path = opts.get_filename().to_owned();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(db)?;
        let hot = hot::Hot::open(&path)?;
        Ok(SqliteStore {
            pool,
            writer,
            hot,
            kek,
            counters: keybound_store::LocalCounters::default(),
        })
    }

    /// The connection pool (for tests that inspect rows directly).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn key_from_row(&self, row: &sqlx::sqlite::SqliteRow) -> Result<SigningKeyRecord> {
        let kid: String = row.try_get("kid").map_err(db)?;
        let alg: String = row.try_get("alg").map_err(db)?;
        let state: String = row.try_get("state").map_err(db)?;
        let sealed: Vec<u8> = row.try_get("sealed").map_err(db)?;
        Ok(SigningKeyRecord {
            alg: Algorithm::parse(&alg).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            state: KeyState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("key state '{state}'")))?,
            created_at: u(row.try_get("created_at").map_err(db)?),
            activated_at: row
                .try_get::<Option<i64>, _>("activated_at")
                .map_err(db)?
                .map(u),
            retired_at: row
                .try_get::<Option<i64>, _>("retired_at")
                .map_err(db)?
                .map(u),
            pkcs8: self.kek.open(&kid, &sealed)?,
            kid,
        })
    }
}

impl SqliteStore {
    /// The record in `data` of the row `sql` selects by its one key parameter.
    async fn one<T: serde::de::DeserializeOwned>(&self, sql: &str, key: &str) -> Result<Option<T>> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| data(&r)).transpose()
    }

    /// Every record in `data` of the rows `sql` selects.
    async fn all<T: serde::de::DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(data).collect()
    }

    /// Run the `DELETE` `sql` with its one key parameter; whether a row went.
    async fn delete_one(&self, sql: &str, key: &str) -> Result<bool> {
        let n = sqlx::query(sql)
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n > 0)
    }
}

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn put_client(&self, client: &Client) -> Result<()> {
        sqlx::query(
            "INSERT INTO clients (client_id, data) VALUES (?1, ?2)
             ON CONFLICT (client_id) DO UPDATE SET data = excluded.data",
        )
        .bind(&client.client_id)
        .bind(serde_json::to_string(client)?)
        .execute(&self.writer)
        .await
        .map_err(db)?;
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
        self.delete_one("DELETE FROM clients WHERE client_id = ?1", client_id)
            .await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn put_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (sub, username, data) VALUES (?1, ?2, ?3)
             ON CONFLICT (sub) DO UPDATE SET username = excluded.username, data = excluded.data",
        )
        .bind(&user.sub)
        .bind(&user.username)
        .bind(serde_json::to_string(user)?)
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, || format!("username '{}' is taken", user.username)))?;
        Ok(())
    }
    async fn user(&self, sub: &str) -> Result<Option<User>> {
        // on the token path (profile and email claims, token exchange): in the calling thread
        self.hot
            .lookup("SELECT data FROM users WHERE sub = ?1", [sub])
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.one("SELECT data FROM users WHERE username = ?1", username)
            .await
    }
    async fn users(&self) -> Result<Vec<User>> {
        self.all("SELECT data FROM users ORDER BY username").await
    }
    async fn delete_user(&self, sub: &str) -> Result<bool> {
        self.delete_one("DELETE FROM users WHERE sub = ?1", sub)
            .await
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

/// Insert `key` (sealed as `sealed`) with the next `seq`.
async fn insert_key<'c, E>(
    exec: E,
    key: &SigningKeyRecord,
    sealed: Vec<u8>,
) -> std::result::Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query(INSERT_KEY)
        .bind(&key.kid)
        .bind(key.alg.name())
        .bind(key.state.as_str())
        .bind(t(key.created_at))
        .bind(key.activated_at.map(t))
        .bind(key.retired_at.map(t))
        .bind(sealed)
        .execute(exec)
        .await?;
    Ok(())
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let sealed = self.kek.seal(&key.kid, &key.pkcs8)?;
        insert_key(&self.writer, key, sealed)
            .await
            .map_err(|e| conflict_or_db(e, || key.conflict_message()))
    }
    async fn put_signing_keys_if_absent(&self, keys: &[SigningKeyRecord]) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        for key in keys {
            let sealed = self.kek.seal(&key.kid, &key.pkcs8)?;
            // the first statement writes, so another process waits for the lock (busy
            // timeout) and then finds our keys through the unique index
            match insert_key(&mut *tx, key, sealed).await {
                Ok(()) => {}
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(false),
                Err(e) => return Err(db(e)),
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY seq, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(|r| self.key_from_row(r)).collect()
    }
    async fn rotate_signing_keys(&self, new_next: &SigningKeyRecord, now: u64) -> Result<()> {
        let sealed = self.kek.seal(&new_next.kid, &new_next.pkcs8)?;
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired', retired_at = ?1 WHERE state = 'current'",
        )
        .bind(t(now))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'current', activated_at = ?1 WHERE state = 'next'",
        )
        .bind(t(now))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let next = SigningKeyRecord {
            state: KeyState::Next,
            activated_at: None,
            retired_at: None,
            ..new_next.clone()
        };
        insert_key(&mut *tx, &next, sealed)
            .await
            .map_err(|e| conflict_or_db(e, || next.conflict_message()))?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }
    async fn purge_retired_keys(&self, before: u64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ?1")
                .bind(t(before))
                .execute(&self.writer)
                .await
                .map_err(db)?
                .rows_affected(),
        )
    }
}

#[async_trait]
impl CodeStore for SqliteStore {
    async fn insert_code(&self, hash: &TokenHash, code: &AuthorizationCode) -> Result<()> {
        self.hot.insert_code(hash, code)
    }
    async fn find_code(&self, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
        self.hot.find_code(hash, now)
    }
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        now: u64,
        first: Option<NewRefresh<'_>>,
    ) -> Result<CodeLookup> {
        self.hot.redeem_code(hash, now, first)
    }
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn insert_refresh(&self, hash: &TokenHash, token: &RefreshToken) -> Result<()> {
        self.hot.insert_refresh(hash, token)
    }
    async fn find_refresh(&self, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
        self.hot.find_refresh(hash, now)
    }
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_token: &RefreshToken,
        now: u64,
    ) -> Result<RefreshLookup> {
        self.hot.rotate_refresh(old, new, new_token, now)
    }
    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<()> {
        self.hot.revoke_family(family_id, now)
    }
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn revoke_grant(&self, grant_id: &str, now: u64) -> Result<()> {
        self.hot.revoke_grant(grant_id, now)
    }
    async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool> {
        self.hot.is_grant_revoked(grant_id)
    }
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consent(&self, sub: &str, client_id: &str) -> Result<Option<Consent>> {
        self.hot.consent(sub, client_id)
    }
    async fn put_consent(&self, consent: &Consent) -> Result<()> {
        self.hot.put_consent(consent)
    }
}

#[async_trait]
impl ReplayStore for SqliteStore {
    async fn check_and_insert(&self, digest: &[u8; 32], expires_at: u64, now: u64) -> Result<bool> {
        self.hot.check_and_insert(digest, expires_at, now)
    }
}

#[async_trait]
impl PurgeStore for SqliteStore {
    async fn purge_expired(&self, kind: Expiring, now: u64, limit: u32) -> Result<u64> {
        if let Some(n) = self.counters.purge(kind, now, limit) {
            return Ok(n);
        }
        // every table has an index on expires_at; the LIMIT keeps one statement short
        let sql = match kind {
            Expiring::Counters | Expiring::VerifiedSecrets => return Ok(0),
            Expiring::PushedRequests => "DELETE FROM pushed_requests WHERE rowid IN (SELECT rowid FROM pushed_requests WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::Replay => "DELETE FROM replay WHERE rowid IN (SELECT rowid FROM replay WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::Codes => "DELETE FROM auth_codes WHERE rowid IN (SELECT rowid FROM auth_codes WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::DeviceCodes => "DELETE FROM device_codes WHERE rowid IN (SELECT rowid FROM device_codes WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::Sessions => "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
            Expiring::RefreshTokens => "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens WHERE expires_at <= ?1 LIMIT ?2)",
        };
        // on the token endpoint's writer: a purge queues with token requests instead of meeting
        // them in SQLite's busy handler
        self.hot.delete_batch(sql, now, limit)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_session(&self, hash: &TokenHash, session: &BrowserSession) -> Result<()> {
        self.hot.put_session(hash, session)
    }
    async fn session(&self, hash: &TokenHash, now: u64) -> Result<Option<BrowserSession>> {
        self.hot.session(hash, now)
    }
    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.hot.delete_session(hash)
    }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_device(
        &self,
        hash: &TokenHash,
        auth: &DeviceAuthorization,
        interval: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO device_codes (device_hash, user_code, data, interval, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&hash.0[..])
        .bind(&auth.user_code)
        .bind(serde_json::to_string(auth)?)
        .bind(t(interval))
        .bind(t(auth.expires_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, || "device code or user code exists".into()))?;
        Ok(())
    }

    async fn find_device(&self, hash: &TokenHash, now: u64) -> Result<Option<DeviceAuthorization>> {
        self.hot.find_device(hash, now)
    }

    async fn device_by_user_code(
        &self,
        user_code: &str,
        now: u64,
    ) -> Result<Option<(TokenHash, DeviceAuthorization)>> {
        let row = sqlx::query(
            "SELECT device_hash, data FROM device_codes WHERE user_code = ?1 AND decision IS NULL AND expires_at > ?2",
        )
        .bind(user_code)
        .bind(t(now))
        .fetch_optional(&self.pool)
        .await.map_err(db)?;
        row.map(|r| {
            let h: Vec<u8> = r.try_get("device_hash").map_err(db)?;
            let h: [u8; 32] = h
                .try_into()
                .map_err(|_| StoreError::Corrupt("device hash length".into()))?;
            Ok((TokenHash(h), data(&r)?))
        })
        .transpose()
    }

    async fn decide_device(
        &self,
        hash: &TokenHash,
        decision: &DeviceDecision,
        now: u64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE device_codes SET decision = ?1 WHERE device_hash = ?2 AND decision IS NULL AND expires_at > ?3",
        )
        .bind(serde_json::to_string(decision)?)
        .bind(&hash.0[..])
        .bind(t(now))
        .execute(&self.writer)
        .await.map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn poll_device(
        &self,
        hash: &TokenHash,
        now: u64,
        first: &FirstRefreshFor<'_>,
    ) -> Result<DevicePoll> {
        self.hot.poll_device(hash, now, first)
    }
}

#[async_trait]
impl IssuerStore for SqliteStore {
    async fn put_issuer(&self, issuer: &TrustedIssuer) -> Result<()> {
        sqlx::query(
            "INSERT INTO trusted_issuers (issuer, data) VALUES (?1, ?2)
             ON CONFLICT (issuer) DO UPDATE SET data = excluded.data",
        )
        .bind(&issuer.issuer)
        .bind(serde_json::to_string(issuer)?)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }
    async fn issuer(&self, issuer: &str) -> Result<Option<TrustedIssuer>> {
        // issuer, link and e-mail lookups are on every jwt-bearer redemption: in the calling thread
        self.hot.lookup(
            "SELECT data FROM trusted_issuers WHERE issuer = ?1",
            [issuer],
        )
    }
    async fn issuers(&self) -> Result<Vec<TrustedIssuer>> {
        self.all("SELECT data FROM trusted_issuers ORDER BY issuer")
            .await
    }
    async fn delete_issuer(&self, issuer: &str) -> Result<bool> {
        self.delete_one("DELETE FROM trusted_issuers WHERE issuer = ?1", issuer)
            .await
    }
    async fn link_user(&self, issuer: &str, external_sub: &str, sub: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_links (issuer, external_sub, sub) VALUES (?1, ?2, ?3)
             ON CONFLICT (issuer, external_sub) DO UPDATE SET sub = excluded.sub",
        )
        .bind(issuer)
        .bind(external_sub)
        .bind(sub)
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, || format!("no trusted issuer '{issuer}' to link to")))?;
        Ok(())
    }
    async fn linked_user(&self, issuer: &str, external_sub: &str) -> Result<Option<User>> {
        self.hot.lookup(
            "SELECT u.data FROM user_links l JOIN users u ON u.sub = l.sub
             WHERE l.issuer = ?1 AND l.external_sub = ?2",
            [issuer, external_sub],
        )
    }
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>> {
        self.hot.lookup_unique(USER_BY_VERIFIED_EMAIL, [email])
    }
}

#[async_trait]
impl RegistrationStore for SqliteStore {
    async fn put_registration_token(
        &self,
        hash: &TokenHash,
        token: &RegistrationToken,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO registration_tokens (token_hash, uses_left, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(hash.0.as_slice())
        .bind(token.uses_left.map(i64::from))
        .bind(t(token.expires_at))
        .bind(t(token.created_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, || "registration token exists".into()))?;
        Ok(())
    }
    async fn use_registration_token(&self, hash: &TokenHash, now: u64) -> Result<bool> {
        // one conditional statement: spending the last use is atomic
        let n = sqlx::query(
            "UPDATE registration_tokens SET uses_left = uses_left - 1
             WHERE token_hash = ?1 AND expires_at > ?2 AND (uses_left IS NULL OR uses_left > 0)",
        )
        .bind(hash.0.as_slice())
        .bind(t(now))
        .execute(&self.writer)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }
}

#[async_trait]
impl PushedRequestStore for SqliteStore {
    async fn put_pushed(&self, hash: &TokenHash, request: &PushedRequest) -> Result<()> {
        sqlx::query(
            "INSERT INTO pushed_requests (request_hash, data, expires_at) VALUES (?1, ?2, ?3)",
        )
        .bind(hash.0.as_slice())
        .bind(serde_json::to_string(request)?)
        .bind(t(request.expires_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict_or_db(e, || "pushed request exists".into()))?;
        Ok(())
    }
    async fn take_pushed(&self, hash: &TokenHash, now: u64) -> Result<Option<PushedRequest>> {
        // one statement: of two takers, one gets the row
        let row = sqlx::query(
            "DELETE FROM pushed_requests WHERE request_hash = ?1 RETURNING data, expires_at",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get("expires_at").map_err(db)?;
        if u64::try_from(expires_at).unwrap_or(0) <= now {
            return Ok(None);
        }
        Ok(Some(serde_json::from_str(
            row.try_get::<&str, _>("data").map_err(db)?,
        )?))
    }
}
