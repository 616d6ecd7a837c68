//! # keybound-store-postgres
//!
//! The PostgreSQL backend of keybound's store traits, for deployments beyond one machine: any
//! number of `keybound serve` nodes share one database (and two secrets), and nothing one node
//! needs lives only in another's memory. The sibling of keybound-store-sqlite, with the same
//! tables and the same conformance suite.
//!
//! Why it is correct with many nodes:
//! - every single-use operation is **one conditional statement**: a code is consumed by
//!   `UPDATE … WHERE redeemed_at IS NULL … RETURNING`, a replayed `jti` is an
//!   `INSERT … ON CONFLICT … DO UPDATE … WHERE expired` that affects no row, a device poll
//!   applies `slow_down` and records itself in one `UPDATE`; two nodes racing block on the row
//!   and the second re-evaluates the condition (READ COMMITTED) or fails serialization;
//! - refresh rotation and grant revocation are **one transaction whose first statement writes**;
//! - a guessing count (`counters`) changes in one transaction that first makes sure its row
//!   exists, then locks it (`SELECT … FOR UPDATE`) and writes what the caller's rule returns: a
//!   concurrent change on another node waits for the lock and sees the result;
//! - **serialization failures** (SQLSTATE 40001, as CockroachDB and YugabyteDB raise them under
//!   SERIALIZABLE; 40P01 deadlocks) roll the whole operation back and it is retried a bounded
//!   number of times ([`MAX_ATTEMPTS`]); every operation is idempotent when it did not commit;
//! - migrations take no advisory lock (distributed engines lack them): a node that loses a race
//!   to create the schema retries once the winner's migration is recorded.
//!
//! Features a distributed engine lacks and this crate therefore avoids: advisory locks,
//! `SKIP LOCKED`, triggers, sequences whose order matters, `LISTEN/NOTIFY`.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use keybound_jose::Algorithm;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row as _};

use keybound_store::{
    AuthorizationCode, BrowserSession, Client, ClientStore, CodeLookup, CodeStore, Consent,
    ConsentStore, Count, CountChange, CounterStore, DeviceAuthorization, DeviceDecision,
    DevicePoll, DeviceStore, Expiring, FirstRefreshFor, GrantStore, HealthStore, IssuerStore, Kek,
    KeyState, NewRefresh, Passkey, PasskeyStore, ProofMark, PurgeStore, PushedRequest,
    PushedRequestStore, RefreshLookup, RefreshStore, RefreshToken, RegistrationStore,
    RegistrationToken, ReplayStore, Result, SessionStore, SigningKeyRecord, SigningKeyStore,
    StoreError, TokenHash, TrustedIssuer, User, UserStore,
};

/// How often an operation is tried when the database reports a serialization failure.
pub const MAX_ATTEMPTS: u32 = 6;

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PgOptions {
    /// connections per node
    pub max_connections: u32,
    /// how long a request waits for a connection before failing (so `/healthz` answers 503
    /// within a few seconds while the database is unreachable)
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    kek: Kek,
}

fn t(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn data<T: serde::de::DeserializeOwned>(r: &PgRow) -> Result<T> {
    Ok(serde_json::from_str(
        r.try_get::<&str, _>("data").map_err(db)?,
    )?)
}

fn db(e: sqlx::Error) -> StoreError {
    if unreachable(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Database(Box::new(e))
    }
}

/// The server could not be reached or is going away: no pooled connection in time, a socket
/// or TLS failure, SQLSTATE class 08 (connection exception) or 57P01–57P03 (shutdown, crash
/// recovery, not yet accepting connections).
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// A unique-constraint violation is a [`StoreError::Conflict`] described by `what`.
fn conflict_or_db(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::Conflict(what()),
        _ => db(e),
    }
}

/// Whether `e` is worth trying again: a serialization failure or a deadlock.
fn retryable(e: &StoreError) -> bool {
    let StoreError::Database(b) = e else {
        return false;
    };
    b.downcast_ref::<sqlx::Error>()
        .and_then(|e| match e {
            sqlx::Error::Database(d) => d.code(),
            _ => None,
        })
        .is_some_and(|c| c == "40001" || c == "40P01")
}

/// Run `op` until it succeeds, fails otherwise, or [`MAX_ATTEMPTS`] serialization failures.
async fn retrying<T, F, Fut>(op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    // one span per store operation, retries included (OpenTelemetry, when tracing is on)
    tracing::Instrument::instrument(
        retrying_unspanned(op),
        tracing::debug_span!("store.query", db.system = "postgresql"),
    )
    .await
}

async fn retrying_unspanned<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, "serialization failure; retrying");
                // a short, growing, jittered pause so racing nodes do not collide again
                let jitter = u64::from(keybound_jose::random_b64(1).as_bytes()[0] % 8);
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

const INSERT_KEY: &str = "INSERT INTO signing_keys
    (kid, alg, state, created_at, activated_at, retired_at, seq, sealed)
    VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signing_keys), $7)";

/// The End-Users with this verified e-mail address (two at most: one is an answer, two are
/// ambiguous). Its expressions are those of the index `users_verified_email` (migration 0002).
const USER_BY_VERIFIED_EMAIL: &str = "SELECT data FROM users
     WHERE ((data::jsonb) ->> 'email_verified') = 'true'
       AND lower((data::jsonb) ->> 'email') = lower($1)
       AND ((data::jsonb) ->> 'provisioned_by') IS NULL
     LIMIT 2";

impl PgStore {
    /// Connect to `url` (`postgres://…`) and apply the embedded migrations.
    pub async fn connect(url: &str, kek: Kek, options: PgOptions) -> Result<Self> {
        let opts: PgConnectOptions = url.parse().map_err(db)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(opts)
            .await
            .map_err(db)?;
        Self::migrate(&pool).await?;
        Ok(PgStore { pool, kek })
    }

    /// Apply the embedded migrations (idempotent; safe on several nodes at once).
    pub async fn migrate(pool: &PgPool) -> Result<()> {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_locking(false);
        let mut attempt = 0;
        loop {
            match migrator.run(pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration raced another node; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(StoreError::Database(Box::new(e))),
            }
        }
    }

    /// The connection pool (for tests that inspect rows directly).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn key_from_row(&self, row: &PgRow) -> Result<SigningKeyRecord> {
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

    async fn one<T: serde::de::DeserializeOwned>(&self, sql: &str, key: &str) -> Result<Option<T>> {
        retrying(|| async {
            let row = sqlx::query(sql)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            row.map(|r| data(&r)).transpose()
        })
        .await
    }

    async fn all<T: serde::de::DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        retrying(|| async {
            let rows = sqlx::query(sql).fetch_all(&self.pool).await.map_err(db)?;
            rows.iter().map(data).collect()
        })
        .await
    }

    async fn delete_one(&self, sql: &str, key: &str) -> Result<bool> {
        retrying(|| async {
            let n = sqlx::query(sql)
                .bind(key)
                .execute(&self.pool)
                .await
                .map_err(db)?
                .rows_affected();
            Ok(n > 0)
        })
        .await
    }

    /// Run `sql` with `binds` of text, once, retrying serialization failures.
    async fn exec_text(&self, sql: &str, binds: &[&str]) -> Result<u64> {
        retrying(|| async {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            Ok(q.execute(&self.pool).await.map_err(db)?.rows_affected())
        })
        .await
    }
}

#[async_trait]
impl HealthStore for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl ClientStore for PgStore {
    async fn put_client(&self, client: &Client) -> Result<()> {
        let json = serde_json::to_string(client)?;
        self.exec_text(
            "INSERT INTO clients (client_id, data) VALUES ($1, $2)
             ON CONFLICT (client_id) DO UPDATE SET data = EXCLUDED.data",
            &[&client.client_id, &json],
        )
        .await?;
        Ok(())
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        self.one("SELECT data FROM clients WHERE client_id = $1", client_id)
            .await
    }
    async fn clients(&self) -> Result<Vec<Client>> {
        self.all("SELECT data FROM clients ORDER BY client_id")
            .await
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        self.delete_one("DELETE FROM clients WHERE client_id = $1", client_id)
            .await
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn put_user(&self, user: &User) -> Result<()> {
        let json = serde_json::to_string(user)?;
        retrying(|| async {
            sqlx::query(
                "INSERT INTO users (sub, username, data) VALUES ($1, $2, $3)
                 ON CONFLICT (sub) DO UPDATE SET username = EXCLUDED.username, data = EXCLUDED.data",
            )
            .bind(&user.sub)
            .bind(&user.username)
            .bind(&json)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_db(e, || format!("username '{}' is taken", user.username)))?;
            Ok(())
        })
        .await
    }
    async fn user(&self, sub: &str) -> Result<Option<User>> {
        self.one("SELECT data FROM users WHERE sub = $1", sub).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.one("SELECT data FROM users WHERE username = $1", username)
            .await
    }
    async fn users(&self) -> Result<Vec<User>> {
        self.all("SELECT data FROM users ORDER BY username").await
    }
    async fn delete_user(&self, sub: &str) -> Result<bool> {
        self.delete_one("DELETE FROM users WHERE sub = $1", sub)
            .await
    }
}

/// Insert `key` (sealed as `sealed`) with the next `seq`.
async fn insert_key<'c, E>(
    exec: E,
    key: &SigningKeyRecord,
    sealed: &[u8],
) -> std::result::Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
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
impl SigningKeyStore for PgStore {
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let sealed = self.kek.seal(&key.kid, &key.pkcs8)?;
        retrying(|| async {
            insert_key(&self.pool, key, &sealed)
                .await
                .map_err(|e| conflict_or_db(e, || key.conflict_message()))
        })
        .await
    }
    async fn put_signing_keys_if_absent(&self, keys: &[SigningKeyRecord]) -> Result<bool> {
        let sealed = keys
            .iter()
            .map(|k| self.kek.seal(&k.kid, &k.pkcs8))
            .collect::<Result<Vec<_>>>()?;
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            for (key, sealed) in keys.iter().zip(&sealed) {
                match insert_key(&mut *tx, key, sealed).await {
                    Ok(()) => {}
                    // another node's key set (it blocked us until it committed)
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(false),
                    Err(e) => return Err(db(e)),
                }
            }
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
        .await
    }
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        retrying(|| async {
            let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY seq, kid")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            rows.iter().map(|r| self.key_from_row(r)).collect()
        })
        .await
    }
    async fn rotate_signing_keys(&self, new_next: &SigningKeyRecord, now: u64) -> Result<()> {
        let next = SigningKeyRecord {
            state: KeyState::Next,
            activated_at: None,
            retired_at: None,
            ..new_next.clone()
        };
        let sealed = self.kek.seal(&next.kid, &next.pkcs8)?;
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query(
                "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'current'",
            )
            .bind(t(now))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query(
                "UPDATE signing_keys SET state = 'current', activated_at = $1 WHERE state = 'next'",
            )
            .bind(t(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or_db(e, || "another rotation ran at the same time".into()))?;
            insert_key(&mut *tx, &next, &sealed)
                .await
                .map_err(|e| conflict_or_db(e, || next.conflict_message()))?;
            tx.commit().await.map_err(db)?;
            Ok(())
        })
        .await
    }
    async fn purge_retired_keys(&self, before: u64) -> Result<u64> {
        retrying(|| async {
            Ok(
                sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < $1")
                    .bind(t(before))
                    .execute(&self.pool)
                    .await
                    .map_err(db)?
                    .rows_affected(),
            )
        })
        .await
    }
}

#[async_trait]
impl CodeStore for PgStore {
    async fn insert_code(&self, hash: &TokenHash, code: &AuthorizationCode) -> Result<()> {
        let json = serde_json::to_string(code)?;
        retrying(|| async {
            sqlx::query("INSERT INTO auth_codes (code_hash, data, expires_at) VALUES ($1, $2, $3)")
                .bind(&hash.0[..])
                .bind(&json)
                .bind(t(code.expires_at))
                .execute(&self.pool)
                .await
                .map_err(|e| conflict_or_db(e, || "code exists".into()))?;
            Ok(())
        })
        .await
    }
    async fn find_code(&self, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
        retrying(|| async {
            let row = sqlx::query(
                "SELECT data, expires_at, redeemed_at FROM auth_codes WHERE code_hash = $1",
            )
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            let Some(r) = row else {
                return Ok(CodeLookup::NotFound);
            };
            let code: AuthorizationCode = data(&r)?;
            Ok(CodeLookup::classify(
                code,
                r.try_get::<Option<i64>, _>("redeemed_at")
                    .map_err(db)?
                    .is_some(),
                u(r.try_get("expires_at").map_err(db)?),
                now,
            ))
        })
        .await
    }
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        now: u64,
        first: Option<NewRefresh<'_>>,
        proof: Option<&ProofMark>,
    ) -> Result<CodeLookup> {
        const REDEEM: &str = "UPDATE auth_codes SET redeemed_at = $1
             WHERE code_hash = $2 AND redeemed_at IS NULL AND expires_at > $1
             RETURNING data";
        enum Won {
            Code(Box<AuthorizationCode>),
            Lost,
            Replayed,
        }
        let won = retrying(|| async {
            if first.is_none() && proof.is_none() {
                // nothing else to write: one statement, no transaction round trips
                let row = sqlx::query(REDEEM)
                    .bind(t(now))
                    .bind(&hash.0[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                return Ok(match row {
                    Some(r) => Won::Code(Box::new(data(&r)?)),
                    None => Won::Lost,
                });
            }
            let mut tx = self.pool.begin().await.map_err(db)?;
            // the proof first: a racing request with the same proof waits for this transaction
            if !mark_proof_in(&mut tx, proof, now).await? {
                return Ok(Won::Replayed);
            }
            // the first statement on the code writes: a racing redemption waits for this
            // transaction
            let row = sqlx::query(REDEEM)
                .bind(t(now))
                .bind(&hash.0[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let won = match row {
                Some(r) => {
                    if let Some((h, token)) = first {
                        insert_refresh_in(&mut tx, h, token, true).await?;
                    }
                    Won::Code(Box::new(data(&r)?))
                }
                None => Won::Lost,
            };
            // the proof stays recorded whatever the code's state
            tx.commit().await.map_err(db)?;
            Ok(won)
        })
        .await?;
        match won {
            Won::Code(code) => Ok(CodeLookup::Active(*code)),
            Won::Replayed => Ok(CodeLookup::Replayed),
            Won::Lost => self.find_code(hash, now).await,
        }
    }
}

/// Revoke a grant inside `conn`'s transaction: its access tokens (by `gid`) and every refresh
/// family issued under it.
async fn revoke_grant_in(conn: &mut sqlx::PgConnection, grant_id: &str, now: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO revoked_grants (grant_id, revoked_at) VALUES ($1, $2)
         ON CONFLICT (grant_id) DO NOTHING",
    )
    .bind(grant_id)
    .bind(t(now))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
    )
    .bind(t(now))
    .bind(grant_id)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn refresh_state(
    conn: &mut sqlx::PgConnection,
    hash: &TokenHash,
    now: u64,
) -> Result<RefreshLookup> {
    let row = sqlx::query(
        "SELECT t.data, t.expires_at, t.used_at, f.revoked_at
         FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id
         WHERE t.token_hash = $1",
    )
    .bind(&hash.0[..])
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(r) = row else {
        return Ok(RefreshLookup::NotFound);
    };
    let tok: RefreshToken = data(&r)?;
    Ok(RefreshLookup::classify(
        tok,
        r.try_get::<Option<i64>, _>("revoked_at")
            .map_err(db)?
            .is_some(),
        r.try_get::<Option<i64>, _>("used_at")
            .map_err(db)?
            .is_some(),
        u(r.try_get("expires_at").map_err(db)?),
        now,
    ))
}

async fn insert_refresh_in(
    conn: &mut sqlx::PgConnection,
    hash: &TokenHash,
    token: &RefreshToken,
    new_family: bool,
) -> Result<()> {
    if new_family {
        sqlx::query(
            "INSERT INTO refresh_families (family_id, grant_id) VALUES ($1, $2)
             ON CONFLICT (family_id) DO NOTHING",
        )
        .bind(&token.family_id)
        .bind(&token.grant_id)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, data, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&hash.0[..])
    .bind(&token.family_id)
    .bind(serde_json::to_string(token)?)
    .bind(t(token.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(|e| conflict_or_db(e, || "refresh token exists".into()))?;
    Ok(())
}

#[async_trait]
impl RefreshStore for PgStore {
    async fn insert_refresh(&self, hash: &TokenHash, token: &RefreshToken) -> Result<()> {
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            insert_refresh_in(&mut tx, hash, token, true).await?;
            tx.commit().await.map_err(db)?;
            Ok(())
        })
        .await
    }
    async fn find_refresh(&self, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
        retrying(|| async {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            refresh_state(&mut conn, hash, now).await
        })
        .await
    }
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_token: &RefreshToken,
        now: u64,
        proof: Option<&ProofMark>,
    ) -> Result<RefreshLookup> {
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            if !mark_proof_in(&mut tx, proof, now).await? {
                return Ok(RefreshLookup::Replayed);
            }
            // the first statement on the token writes: a racing rotation of the same token
            // waits for this transaction and then finds the token used
            let used = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1
                 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
                   AND EXISTS (SELECT 1 FROM refresh_families f
                               WHERE f.family_id = refresh_tokens.family_id AND f.revoked_at IS NULL)
                 RETURNING data",
            )
            .bind(t(now))
            .bind(&old.0[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some(r) = used {
                let tok: RefreshToken = data(&r)?;
                if tok.family_id != new_token.family_id {
                    return Err(StoreError::Conflict(
                        "rotation must stay in the family".into(),
                    ));
                }
                insert_refresh_in(&mut tx, new, new_token, false).await?;
                tx.commit().await.map_err(db)?;
                return Ok(RefreshLookup::Active(tok));
            }
            let state = refresh_state(&mut tx, old, now).await?;
            if let RefreshLookup::Reused(tok) = &state {
                // reuse: the grant (every family, every access token) goes in this transaction
                revoke_grant_in(&mut tx, &tok.grant_id, now).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(state)
        })
        .await
    }
    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<()> {
        retrying(|| async {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(t(now))
            .bind(family_id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl GrantStore for PgStore {
    async fn revoke_grant(&self, grant_id: &str, now: u64) -> Result<()> {
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            revoke_grant_in(&mut tx, grant_id, now).await?;
            tx.commit().await.map_err(db)?;
            Ok(())
        })
        .await
    }
    async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool> {
        retrying(|| async {
            Ok(
                sqlx::query("SELECT 1 FROM revoked_grants WHERE grant_id = $1")
                    .bind(grant_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?
                    .is_some(),
            )
        })
        .await
    }
}

#[async_trait]
impl ConsentStore for PgStore {
    async fn consent(&self, sub: &str, client_id: &str) -> Result<Option<Consent>> {
        retrying(|| async {
            let row = sqlx::query("SELECT data FROM consents WHERE sub = $1 AND client_id = $2")
                .bind(sub)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            row.map(|r| data(&r)).transpose()
        })
        .await
    }
    async fn put_consent(&self, consent: &Consent) -> Result<()> {
        let json = serde_json::to_string(consent)?;
        self.exec_text(
            "INSERT INTO consents (sub, client_id, data) VALUES ($1, $2, $3)
             ON CONFLICT (sub, client_id) DO UPDATE SET data = EXCLUDED.data",
            &[&consent.sub, &consent.client_id, &json],
        )
        .await?;
        Ok(())
    }
    async fn consents_of(&self, sub: &str) -> Result<Vec<Consent>> {
        retrying(|| async {
            let rows = sqlx::query("SELECT data FROM consents WHERE sub = $1 ORDER BY client_id")
                .bind(sub)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            rows.iter().map(data).collect()
        })
        .await
    }
    async fn revoke_consent(&self, sub: &str, client_id: &str, now: u64) -> Result<bool> {
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let had = sqlx::query("DELETE FROM consents WHERE sub = $1 AND client_id = $2")
                .bind(sub)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected()
                > 0;
            // a rare End-User action: a scan of the refresh tokens' records is acceptable
            let grants: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT f.grant_id FROM refresh_families f \
                 JOIN refresh_tokens t ON t.family_id = f.family_id \
                 WHERE f.revoked_at IS NULL \
                 AND (t.data::jsonb ->> 'sub') = $1 AND (t.data::jsonb ->> 'client_id') = $2",
            )
            .bind(sub)
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for g in &grants {
                revoke_grant_in(&mut tx, g, now).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok(had)
        })
        .await
    }
}

#[async_trait]
impl ReplayStore for PgStore {
    async fn check_and_insert(&self, digest: &[u8; 32], expires_at: u64, now: u64) -> Result<bool> {
        let mark = ProofMark {
            digest: *digest,
            expires_at,
        };
        retrying(|| async {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            mark_proof_in(&mut conn, Some(&mark), now).await
        })
        .await
    }
    async fn replay_seen(&self, digest: &[u8; 32], now: u64) -> Result<bool> {
        retrying(|| async {
            let row = sqlx::query("SELECT 1 FROM replay WHERE digest = $1 AND expires_at > $2")
                .bind(&digest[..])
                .bind(t(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            Ok(row.is_some())
        })
        .await
    }
}

/// Record a proof in the replay cache unless it is there and not expired (`false`: a replay);
/// no proof, `true`. The one replay statement, alone or inside a consuming transaction.
async fn mark_proof_in(
    conn: &mut sqlx::PgConnection,
    proof: Option<&ProofMark>,
    now: u64,
) -> Result<bool> {
    let Some(p) = proof else {
        return Ok(true);
    };
    let n = sqlx::query(
        "INSERT INTO replay (digest, expires_at) VALUES ($1, $2)
         ON CONFLICT (digest) DO UPDATE SET expires_at = EXCLUDED.expires_at
         WHERE replay.expires_at <= $3",
    )
    .bind(&p.digest[..])
    .bind(t(p.expires_at))
    .bind(t(now))
    .execute(conn)
    .await
    .map_err(db)?
    .rows_affected();
    Ok(n == 1)
}

#[async_trait]
impl PurgeStore for PgStore {
    async fn purge_expired(&self, kind: Expiring, now: u64, limit: u32) -> Result<u64> {
        // by primary key through the expiry index; deleting a row another node deleted first
        // affects nothing, so every node may purge at once
        let sql = match kind {
            Expiring::Replay => "DELETE FROM replay WHERE digest IN (SELECT digest FROM replay WHERE expires_at <= $1 LIMIT $2)",
            Expiring::Codes => "DELETE FROM auth_codes WHERE code_hash IN (SELECT code_hash FROM auth_codes WHERE expires_at <= $1 LIMIT $2)",
            Expiring::DeviceCodes => "DELETE FROM device_codes WHERE device_hash IN (SELECT device_hash FROM device_codes WHERE expires_at <= $1 LIMIT $2)",
            Expiring::Sessions => "DELETE FROM sessions WHERE session_hash IN (SELECT session_hash FROM sessions WHERE expires_at <= $1 LIMIT $2)",
            Expiring::RefreshTokens => "DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
            Expiring::Counters => "DELETE FROM counters WHERE key IN (SELECT key FROM counters WHERE expires_at <= $1 LIMIT $2)",
            Expiring::PushedRequests => "DELETE FROM pushed_requests WHERE request_hash IN (SELECT request_hash FROM pushed_requests WHERE expires_at <= $1 LIMIT $2)",
            Expiring::VerifiedSecrets => "DELETE FROM verified_secrets WHERE client_id IN (SELECT client_id FROM verified_secrets WHERE expires_at <= $1 LIMIT $2)",
        };
        retrying(|| async {
            Ok(sqlx::query(sql)
                .bind(t(now))
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await
                .map_err(db)?
                .rows_affected())
        })
        .await
    }
}

fn count_of(r: &PgRow) -> Result<Count> {
    Ok(Count {
        n: u32::try_from(r.try_get::<i64, _>("n").map_err(db)?).unwrap_or(u32::MAX),
        at: u(r.try_get("at").map_err(db)?),
        expires_at: u(r.try_get("expires_at").map_err(db)?),
    })
}

#[async_trait]
impl CounterStore for PgStore {
    async fn count(&self, key: &TokenHash, now: u64) -> Result<Option<Count>> {
        let row = sqlx::query(
            "SELECT n, at, expires_at FROM counters WHERE key = $1 AND expires_at > $2",
        )
        .bind(&key.0[..])
        .bind(t(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(count_of).transpose()
    }

    async fn change_count(
        &self,
        key: &TokenHash,
        now: u64,
        change: CountChange<'_>,
    ) -> Result<(Option<Count>, Option<Count>)> {
        // One transaction: make sure the row exists (a concurrent first change waits on the
        // insert's unique index instead of both seeing "none"), lock it, apply the caller's
        // rule, write the result. Any node's concurrent change to the key waits for the lock.
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("INSERT INTO counters (key, n, at, expires_at) VALUES ($1, 0, 0, 0) ON CONFLICT (key) DO NOTHING")
                .bind(&key.0[..])
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let row = sqlx::query("SELECT n, at, expires_at FROM counters WHERE key = $1 FOR UPDATE")
                .bind(&key.0[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let before = row
                .as_ref()
                .map(count_of)
                .transpose()?
                .filter(|c| now < c.expires_at);
            let after = change(before);
            match after {
                Some(c) => sqlx::query(
                    "INSERT INTO counters (key, n, at, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (key) DO UPDATE SET n = EXCLUDED.n, at = EXCLUDED.at, expires_at = EXCLUDED.expires_at",
                )
                .bind(&key.0[..])
                .bind(i64::from(c.n))
                .bind(t(c.at))
                .bind(t(c.expires_at)),
                None => sqlx::query("DELETE FROM counters WHERE key = $1").bind(&key.0[..]),
            }
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok((before, after))
        })
        .await
    }

    fn secret_mac(&self) -> &keybound_store::SecretMac {
        self.kek.secret_mac()
    }

    async fn verified_secret(&self, client_id: &str, now: u64) -> Result<Option<[u8; 32]>> {
        let row = sqlx::query(
            "SELECT mac FROM verified_secrets WHERE client_id = $1 AND expires_at > $2",
        )
        .bind(client_id)
        .bind(t(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(match row {
            Some(r) => <[u8; 32]>::try_from(r.try_get::<&[u8], _>("mac").map_err(db)?).ok(),
            None => None,
        })
    }

    async fn put_verified_secret(
        &self,
        client_id: &str,
        mac: &[u8; 32],
        expires_at: u64,
    ) -> Result<()> {
        retrying(|| async {
            sqlx::query(
                "INSERT INTO verified_secrets (client_id, mac, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (client_id) DO UPDATE SET mac = EXCLUDED.mac, expires_at = EXCLUDED.expires_at",
            )
            .bind(client_id)
            .bind(&mac[..])
            .bind(t(expires_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn put_session(&self, hash: &TokenHash, session: &BrowserSession) -> Result<()> {
        let json = serde_json::to_string(session)?;
        retrying(|| async {
            sqlx::query(
                "INSERT INTO sessions (session_hash, data, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (session_hash) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at",
            )
            .bind(&hash.0[..])
            .bind(&json)
            .bind(t(session.expires_at))
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }
    async fn session(&self, hash: &TokenHash, now: u64) -> Result<Option<BrowserSession>> {
        retrying(|| async {
            let row = sqlx::query(
                "SELECT data FROM sessions WHERE session_hash = $1 AND expires_at > $2",
            )
            .bind(&hash.0[..])
            .bind(t(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(|r| data(&r)).transpose()
        })
        .await
    }
    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        retrying(|| async {
            sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
                .bind(&hash.0[..])
                .execute(&self.pool)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl DeviceStore for PgStore {
    async fn insert_device(
        &self,
        hash: &TokenHash,
        auth: &DeviceAuthorization,
        interval: u64,
    ) -> Result<()> {
        let json = serde_json::to_string(auth)?;
        retrying(|| async {
            sqlx::query(
                "INSERT INTO device_codes (device_hash, user_code, data, poll_interval, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&hash.0[..])
            .bind(&auth.user_code)
            .bind(&json)
            .bind(t(interval))
            .bind(t(auth.expires_at))
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_db(e, || "device code or user code exists".into()))?;
            Ok(())
        })
        .await
    }

    async fn find_device(&self, hash: &TokenHash, now: u64) -> Result<Option<DeviceAuthorization>> {
        retrying(|| async {
            let row = sqlx::query(
                "SELECT data FROM device_codes WHERE device_hash = $1 AND expires_at > $2",
            )
            .bind(&hash.0[..])
            .bind(t(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(|r| data(&r)).transpose()
        })
        .await
    }

    async fn device_by_user_code(
        &self,
        user_code: &str,
        now: u64,
    ) -> Result<Option<(TokenHash, DeviceAuthorization)>> {
        retrying(|| async {
            let row = sqlx::query(
                "SELECT device_hash, data FROM device_codes
                 WHERE user_code = $1 AND decision IS NULL AND expires_at > $2",
            )
            .bind(user_code)
            .bind(t(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(|r| {
                let h: Vec<u8> = r.try_get("device_hash").map_err(db)?;
                let h: [u8; 32] = h
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("device hash length".into()))?;
                Ok((TokenHash(h), data(&r)?))
            })
            .transpose()
        })
        .await
    }

    async fn decide_device(
        &self,
        hash: &TokenHash,
        decision: &DeviceDecision,
        now: u64,
    ) -> Result<bool> {
        let json = serde_json::to_string(decision)?;
        retrying(|| async {
            let n = sqlx::query(
                "UPDATE device_codes SET decision = $1
                 WHERE device_hash = $2 AND decision IS NULL AND expires_at > $3",
            )
            .bind(&json)
            .bind(&hash.0[..])
            .bind(t(now))
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn poll_device(
        &self,
        hash: &TokenHash,
        now: u64,
        first: &FirstRefreshFor<'_>,
    ) -> Result<DevicePoll> {
        // One statement records the poll and applies slow_down (SET sees the old row); polls
        // from two nodes queue on the row, so the second sees the first's last_poll.
        let row = retrying(|| async {
            sqlx::query(
                "UPDATE device_codes SET
                     slowed = (last_poll IS NOT NULL AND $1 < last_poll + poll_interval),
                     poll_interval = poll_interval
                         + CASE WHEN last_poll IS NOT NULL AND $1 < last_poll + poll_interval THEN 5 ELSE 0 END,
                     last_poll = $1
                 WHERE device_hash = $2 AND NOT redeemed AND expires_at > $1
                 RETURNING slowed, poll_interval, decision, data",
            )
            .bind(t(now))
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
        })
        .await?;
        let Some(r) = row else {
            let row = retrying(|| async {
                sqlx::query("SELECT redeemed, data FROM device_codes WHERE device_hash = $1")
                    .bind(&hash.0[..])
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)
            })
            .await?;
            return Ok(match row {
                None => DevicePoll::NotFound,
                Some(r) if r.try_get::<bool, _>("redeemed").map_err(db)? => {
                    DevicePoll::Redeemed(data(&r)?)
                }
                Some(_) => DevicePoll::Expired,
            });
        };
        let interval = u(r.try_get("poll_interval").map_err(db)?);
        if r.try_get::<bool, _>("slowed").map_err(db)? {
            return Ok(DevicePoll::SlowDown { interval });
        }
        let auth: DeviceAuthorization = data(&r)?;
        let decision: Option<DeviceDecision> = r
            .try_get::<Option<&str>, _>("decision")
            .map_err(db)?
            .map(serde_json::from_str)
            .transpose()?;
        Ok(match decision {
            None => DevicePoll::Pending { interval },
            Some(DeviceDecision::Denied) => DevicePoll::Denied,
            Some(dec @ DeviceDecision::Approved { .. }) => {
                let refresh = first(&dec);
                let won = retrying(|| async {
                    let mut tx = self.pool.begin().await.map_err(db)?;
                    let won = sqlx::query(
                        "UPDATE device_codes SET redeemed = TRUE WHERE device_hash = $1 AND NOT redeemed",
                    )
                    .bind(&hash.0[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                    if won == 1 {
                        if let Some((h, token)) = &refresh {
                            insert_refresh_in(&mut tx, h, token, true).await?;
                        }
                        tx.commit().await.map_err(db)?;
                    }
                    Ok(won)
                })
                .await?;
                if won == 1 {
                    DevicePoll::Approved(auth, dec)
                } else {
                    DevicePoll::Redeemed(auth)
                }
            }
        })
    }
}

#[async_trait]
impl IssuerStore for PgStore {
    async fn put_issuer(&self, issuer: &TrustedIssuer) -> Result<()> {
        let json = serde_json::to_string(issuer)?;
        self.exec_text(
            "INSERT INTO trusted_issuers (issuer, data) VALUES ($1, $2)
             ON CONFLICT (issuer) DO UPDATE SET data = EXCLUDED.data",
            &[&issuer.issuer, &json],
        )
        .await?;
        Ok(())
    }
    async fn issuer(&self, issuer: &str) -> Result<Option<TrustedIssuer>> {
        self.one("SELECT data FROM trusted_issuers WHERE issuer = $1", issuer)
            .await
    }
    async fn issuers(&self) -> Result<Vec<TrustedIssuer>> {
        self.all("SELECT data FROM trusted_issuers ORDER BY issuer")
            .await
    }
    async fn delete_issuer(&self, issuer: &str) -> Result<bool> {
        self.delete_one("DELETE FROM trusted_issuers WHERE issuer = $1", issuer)
            .await
    }
    async fn link_user(&self, issuer: &str, external_sub: &str, sub: &str) -> Result<()> {
        retrying(|| async {
            sqlx::query(
                "INSERT INTO user_links (issuer, external_sub, sub) VALUES ($1, $2, $3)
                 ON CONFLICT (issuer, external_sub) DO UPDATE SET sub = EXCLUDED.sub",
            )
            .bind(issuer)
            .bind(external_sub)
            .bind(sub)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                conflict_or_db(e, || format!("no trusted issuer '{issuer}' to link to"))
            })?;
            Ok(())
        })
        .await
    }
    async fn linked_user(&self, issuer: &str, external_sub: &str) -> Result<Option<User>> {
        retrying(|| async {
            let row = sqlx::query(
                "SELECT u.data FROM user_links l JOIN users u ON u.sub = l.sub
                 WHERE l.issuer = $1 AND l.external_sub = $2",
            )
            .bind(issuer)
            .bind(external_sub)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(|r| data(&r)).transpose()
        })
        .await
    }
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>> {
        retrying(|| async {
            let rows = sqlx::query(USER_BY_VERIFIED_EMAIL)
                .bind(email)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
            match rows.as_slice() {
                [r] => Ok(Some(data(r)?)),
                _ => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl RegistrationStore for PgStore {
    async fn put_registration_token(
        &self,
        hash: &TokenHash,
        token: &RegistrationToken,
    ) -> Result<()> {
        retrying(|| async {
            sqlx::query(
                "INSERT INTO registration_tokens (token_hash, uses_left, expires_at, created_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(hash.0.as_slice())
            .bind(token.uses_left.map(i64::from))
            .bind(t(token.expires_at))
            .bind(t(token.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_db(e, || "registration token exists".into()))?;
            Ok(())
        })
        .await
    }
    async fn use_registration_token(&self, hash: &TokenHash, now: u64) -> Result<bool> {
        retrying(|| async {
            let n = sqlx::query(
                "UPDATE registration_tokens SET uses_left = uses_left - 1
                 WHERE token_hash = $1 AND expires_at > $2 AND (uses_left IS NULL OR uses_left > 0)",
            )
            .bind(hash.0.as_slice())
            .bind(t(now))
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }
}

#[async_trait]
impl PushedRequestStore for PgStore {
    async fn put_pushed(&self, hash: &TokenHash, request: &PushedRequest) -> Result<()> {
        let json = serde_json::to_string(request)?;
        retrying(|| async {
            sqlx::query(
                "INSERT INTO pushed_requests (request_hash, data, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(&hash.0[..])
            .bind(&json)
            .bind(t(request.expires_at))
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_db(e, || "pushed request exists".into()))?;
            Ok(())
        })
        .await
    }

    async fn take_pushed(&self, hash: &TokenHash, now: u64) -> Result<Option<PushedRequest>> {
        // one statement: of two nodes taking it, one gets the row
        let row = retrying(|| async {
            sqlx::query(
                "DELETE FROM pushed_requests WHERE request_hash = $1 RETURNING data, expires_at",
            )
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
        })
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if u(row.try_get("expires_at").map_err(db)?) <= now {
            return Ok(None);
        }
        Ok(Some(data(&row)?))
    }
}

#[async_trait]
impl PasskeyStore for PgStore {
    async fn insert_passkey(&self, passkey: &Passkey) -> Result<()> {
        let text = serde_json::to_string(passkey)?;
        retrying(|| async {
            sqlx::query(
                "INSERT INTO passkeys (credential_id, sub, created_at, data) VALUES ($1, $2, $3, $4)",
            )
            .bind(&passkey.credential_id)
            .bind(&passkey.sub)
            .bind(t(passkey.created_at))
            .bind(&text)
            .execute(&self.pool)
            .await
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
            "SELECT data FROM passkeys WHERE credential_id = $1",
            credential_id,
        )
        .await
    }
    async fn passkeys_of(&self, sub: &str) -> Result<Vec<Passkey>> {
        retrying(|| async {
            let rows = sqlx::query(
                "SELECT data FROM passkeys WHERE sub = $1 ORDER BY created_at, credential_id",
            )
            .bind(sub)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(data).collect()
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
        self.change_passkey(credential_id, |p| p.record_use(credential, sign_count, now))
            .await
    }
    async fn rename_passkey(&self, sub: &str, credential_id: &str, name: &str) -> Result<bool> {
        self.change_passkey(credential_id, |p| {
            if p.sub != sub {
                return false;
            }
            name.clone_into(&mut p.name);
            true
        })
        .await
    }
    async fn delete_passkey(&self, sub: &str, credential_id: &str) -> Result<bool> {
        retrying(|| async {
            let n = sqlx::query("DELETE FROM passkeys WHERE credential_id = $1 AND sub = $2")
                .bind(credential_id)
                .bind(sub)
                .execute(&self.pool)
                .await
                .map_err(db)?
                .rows_affected();
            Ok(n > 0)
        })
        .await
    }
}

impl PgStore {
    /// Change a passkey's record by `rule` (`false`: leave it) in one transaction, its row
    /// locked: two nodes accepting sign-ins with one passkey see each other's counters.
    async fn change_passkey(
        &self,
        credential_id: &str,
        rule: impl Fn(&mut Passkey) -> bool + Send + Sync,
    ) -> Result<bool> {
        retrying(|| async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let row = sqlx::query("SELECT data FROM passkeys WHERE credential_id = $1 FOR UPDATE")
                .bind(credential_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            let Some(row) = row else {
                return Ok(false);
            };
            let mut p: Passkey = data(&row)?;
            if !rule(&mut p) {
                return Ok(false);
            }
            sqlx::query("UPDATE passkeys SET data = $1 WHERE credential_id = $2")
                .bind(serde_json::to_string(&p)?)
                .bind(credential_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
    use super::*;
    use keybound_testkit::pg::TestPostgres;

    /// A jwt-bearer redemption by verified e-mail can search an index instead of reading and
    /// parsing every user's record (sequential scans are switched off so the plan shows whether
    /// an index fits the statement at all; with a handful of rows the planner would scan).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verified_email_lookup_can_search_an_index() {
        let url = TestPostgres::shared().fresh_database();
        let (kek, _) = Kek::generate().unwrap();
        let s = PgStore::connect(&url, kek, PgOptions::default())
            .await
            .unwrap();
        let mut c = s.pool().acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *c)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {USER_BY_VERIFIED_EMAIL}"))
            .bind("a@example.com")
            .fetch_all(&mut *c)
            .await
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("users_verified_email")),
            "{plan:#?}"
        );
    }
}
