//! # keybound-store
//!
//! Everything the OpenID Provider must remember, behind traits, so the provider logic
//! (`keybound-op`) is written once and runs on any backend: the in-memory one here (tests,
//! demos), SQLite (`keybound-store-sqlite`: one machine, the default) and, later, PostgreSQL
//! (many machines). Backends live in crates of their own, so nothing that only uses the traits
//! compiles a database driver.
//!
//! The traits are shaped by two rules of ARCHITECTURE.md §3:
//!
//! - **Cluster-safe by construction**: state two OP nodes must agree on is changed only by
//!   single atomic operations — [`CodeStore::redeem_code`], [`RefreshStore::rotate_refresh`],
//!   [`ReplayStore::check_and_insert`], [`SigningKeyStore::rotate_signing_keys`] — never by
//!   read-modify-write in the caller. Each maps to one conditional `UPDATE`/`INSERT … ON
//!   CONFLICT` (or one transaction) in SQL, which PostgreSQL runs the same way.
//! - **Nothing secret at rest in clear**: codes, refresh tokens and session ids are stored under
//!   their SHA-256 ([`TokenHash`]); passwords and client secrets as argon2id PHC strings (hashed
//!   by the caller); signing keys sealed with AES-256-GCM under a key-encryption key ([`Kek`])
//!   that lives outside the database.
//!
//! Times are Unix seconds passed in by the caller.

mod counters;
mod error;
mod kek;
mod memory;
pub mod model;

use async_trait::async_trait;

pub use counters::{Count, CountChange, CounterStore, LocalCounters, SecretMac};
pub use error::StoreError;
pub use kek::{create_private_once, Kek};
pub use memory::MemoryStore;
pub use model::*;

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// SHA-256 of a secret token (code, refresh token, session id): what the store keys on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hash a token as received on the wire.
    pub fn of(token: &str) -> Self {
        TokenHash(keybound_jose::sha256(token.as_bytes()))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenHash({}…)",
            &keybound_jose::b64::encode(self.0)[..8]
        )
    }
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Insert or replace a client.
    async fn put_client(&self, client: &Client) -> Result<()>;
    /// A client by id.
    async fn client(&self, client_id: &str) -> Result<Option<Client>>;
    /// All clients, ordered by id.
    async fn clients(&self) -> Result<Vec<Client>>;
    /// Delete a client; whether it existed.
    async fn delete_client(&self, client_id: &str) -> Result<bool>;
}

/// End-Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Insert or replace a user; usernames are unique ([`StoreError::Conflict`]).
    async fn put_user(&self, user: &User) -> Result<()>;
    /// A user by subject identifier.
    async fn user(&self, sub: &str) -> Result<Option<User>>;
    /// A user by login name.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// All users, ordered by username.
    async fn users(&self) -> Result<Vec<User>>;
    /// Delete a user; whether it existed.
    async fn delete_user(&self, sub: &str) -> Result<bool>;
}

/// The OP's signing keys (sealed at rest).
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Add a key (its state says whether it is next, current or retired). There is at most one
    /// current and one next key: a second is a [`StoreError::Conflict`].
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// Add all of `keys` or none, atomically: `false` (nothing added) when one of them would be
    /// a second current or next key, i.e. another node created the key set first. Two nodes
    /// starting at once on an empty store so create one key set between them.
    async fn put_signing_keys_if_absent(&self, keys: &[SigningKeyRecord]) -> Result<bool>;
    /// Every key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Atomically: current → retired, next → current, `new_next` becomes next.
    async fn rotate_signing_keys(&self, new_next: &SigningKeyRecord, now: u64) -> Result<()>;
    /// Forget retired keys retired before `before`; how many.
    async fn purge_retired_keys(&self, before: u64) -> Result<u64>;
}

/// Authorization codes, single use.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Store a new code under its hash.
    async fn insert_code(&self, hash: &TokenHash, code: &AuthorizationCode) -> Result<()>;
    /// Look a code up without consuming it (to check the DPoP proof first).
    async fn find_code(&self, hash: &TokenHash, now: u64) -> Result<CodeLookup>;
    /// Atomically consume a code: exactly one caller ever gets `Active` back; the others see
    /// `Redeemed`. The winner's `first` refresh token is stored in the same transaction.
    ///
    /// With `proof`, the DPoP proof that came with the request is recorded first, in the same
    /// write ([`ReplayStore::check_and_insert`]'s rule): if it was seen before, nothing is
    /// consumed and the answer is `Replayed`. Otherwise it stays recorded whatever the code's
    /// state.
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        now: u64,
        first: Option<NewRefresh<'_>>,
        proof: Option<&ProofMark>,
    ) -> Result<CodeLookup>;
}

/// The first refresh token of a grant, written by the redemption that issues it (code or device
/// code) in that redemption's own transaction: after a crash either the artefact is still
/// unused (the client may retry) or both are written — never a consumed code whose refresh
/// token is missing.
pub type NewRefresh<'a> = (&'a TokenHash, &'a RefreshToken);

/// Builds the first refresh token for a device code's approved decision (it carries the
/// End-User), or none (no `offline_access`).
pub type FirstRefreshFor<'a> =
    dyn Fn(&DeviceDecision) -> Option<(TokenHash, RefreshToken)> + Send + Sync + 'a;

/// Refresh tokens, in rotation families.
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Store a refresh token (starting its family if new).
    async fn insert_refresh(&self, hash: &TokenHash, token: &RefreshToken) -> Result<()>;
    /// Look a token up without using it (to check the DPoP proof first).
    async fn find_refresh(&self, hash: &TokenHash, now: u64) -> Result<RefreshLookup>;
    /// Atomically use `old` and store `new` in the same family. Using an already-used token
    /// revokes its whole grant — every family and every access token — in the same
    /// transaction and answers `Reused` (OAuth 2.0 Security BCP §4.14.2).
    ///
    /// With `proof`, the request's DPoP proof is recorded first in the same write, as
    /// [`CodeStore::redeem_code`] does: a proof seen before changes nothing (`Replayed`).
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_token: &RefreshToken,
        now: u64,
        proof: Option<&ProofMark>,
    ) -> Result<RefreshLookup>;
    /// Revoke a family (RFC 7009 revocation of any of its tokens).
    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<()>;
}

/// Grants: everything issued from one code. Revoking one revokes its access tokens (by `gid`)
/// and its refresh families.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Revoke a grant and every refresh family issued under it.
    async fn revoke_grant(&self, grant_id: &str, now: u64) -> Result<()>;
    /// Whether a grant was revoked.
    async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool>;
}

/// RFC 8628 device authorizations. Rate limiting (`slow_down`) and redemption are atomic and
/// stored, so they hold across OP nodes.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Store a new device authorization under the device code's hash, with its first interval.
    async fn insert_device(
        &self,
        hash: &TokenHash,
        auth: &DeviceAuthorization,
        interval: u64,
    ) -> Result<()>;
    /// Look a device code up without polling it (to learn the bound key first).
    async fn find_device(&self, hash: &TokenHash, now: u64) -> Result<Option<DeviceAuthorization>>;
    /// A pending, unexpired authorization by its normalised user code (the verification page).
    async fn device_by_user_code(
        &self,
        user_code: &str,
        now: u64,
    ) -> Result<Option<(TokenHash, DeviceAuthorization)>>;
    /// Record the End-User's decision; `false` unless the authorization was pending and live.
    async fn decide_device(
        &self,
        hash: &TokenHash,
        decision: &DeviceDecision,
        now: u64,
    ) -> Result<bool>;
    /// One poll: `slow_down` (interval += 5, stored) when polled sooner than the interval after
    /// the previous poll, else the state; an approved code is consumed by exactly one poll,
    /// which stores `first`'s refresh token in the consuming transaction.
    async fn poll_device(
        &self,
        hash: &TokenHash,
        now: u64,
        first: &FirstRefreshFor<'_>,
    ) -> Result<DevicePoll>;
}

/// Remembered consent, including the keys already bound per client and user.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The consent `sub` gave `client_id`, if any.
    async fn consent(&self, sub: &str, client_id: &str) -> Result<Option<Consent>>;
    /// Insert or replace.
    async fn put_consent(&self, consent: &Consent) -> Result<()>;
    /// Every consent `sub` gave, by client id.
    async fn consents_of(&self, sub: &str) -> Result<Vec<Consent>>;
    /// Withdraw `sub`'s consent to `client_id` and, in the same transaction, revoke every
    /// grant of that End-User and client that has a refresh token (its access tokens die with
    /// it); `false` when there was no consent. The client's next authorization asks again.
    async fn revoke_consent(&self, sub: &str, client_id: &str, now: u64) -> Result<bool>;
}

/// A DPoP proof to record in the replay cache together with what its request consumes (one
/// write instead of two: [`CodeStore::redeem_code`], [`RefreshStore::rotate_refresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofMark {
    /// the proof's replay digest
    pub digest: [u8; 32],
    /// when the entry may go (the proof is too old to be accepted after it)
    pub expires_at: u64,
}

/// Replay detection for DPoP proofs and client assertions (`jti`s), by 32-byte digest.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Record `digest` until `expires_at`. `true` if it was not seen (or its entry expired),
    /// `false` for a replay. Atomic: of two concurrent calls exactly one gets `true`.
    async fn check_and_insert(&self, digest: &[u8; 32], expires_at: u64, now: u64) -> Result<bool>;
    /// Whether `digest` is recorded and not expired (a read: the caller records it later, with
    /// what the request consumes).
    async fn replay_seen(&self, digest: &[u8; 32], now: u64) -> Result<bool>;
}

/// The kinds of rows that expire and are purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiring {
    /// replay entries (`jti` digests)
    Replay,
    /// authorization codes
    Codes,
    /// device codes
    DeviceCodes,
    /// browser sessions
    Sessions,
    /// refresh tokens (their families, small and needed for revocation, stay)
    RefreshTokens,
    /// counts of failed attempts ([`CounterStore`])
    Counters,
    /// client secrets verified recently ([`CounterStore`])
    VerifiedSecrets,
    /// pushed authorization requests never used ([`PushedRequestStore`])
    PushedRequests,
}

impl Expiring {
    /// Every kind.
    pub const ALL: [Expiring; 8] = [
        Expiring::Replay,
        Expiring::Codes,
        Expiring::DeviceCodes,
        Expiring::Sessions,
        Expiring::RefreshTokens,
        Expiring::Counters,
        Expiring::VerifiedSecrets,
        Expiring::PushedRequests,
    ];

    /// Its name in reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiring::Replay => "replay",
            Expiring::Codes => "codes",
            Expiring::DeviceCodes => "device_codes",
            Expiring::Sessions => "sessions",
            Expiring::RefreshTokens => "refresh_tokens",
            Expiring::Counters => "counters",
            Expiring::VerifiedSecrets => "verified_secrets",
            Expiring::PushedRequests => "pushed_requests",
        }
    }
}

/// Removal of expired rows, so that the store does not grow with traffic (anonymous junk
/// requests leave replay entries behind). Bounded: one call deletes at most `limit` rows, so a
/// purge never holds the database for long; deleting an expired row twice is harmless, so
/// every node of a deployment may purge at once.
#[async_trait]
pub trait PurgeStore: Send + Sync {
    /// Delete up to `limit` rows of `kind` that expired at or before `now`; how many.
    async fn purge_expired(&self, kind: Expiring, now: u64, limit: u32) -> Result<u64>;
}

/// Identity providers trusted for the jwt-bearer grant, and the links from their subjects to
/// local users.
#[async_trait]
pub trait IssuerStore: Send + Sync {
    /// Insert or replace.
    async fn put_issuer(&self, issuer: &TrustedIssuer) -> Result<()>;
    /// By issuer identifier.
    async fn issuer(&self, issuer: &str) -> Result<Option<TrustedIssuer>>;
    /// All, by issuer identifier.
    async fn issuers(&self) -> Result<Vec<TrustedIssuer>>;
    /// Remove; whether it existed (its links go with it).
    async fn delete_issuer(&self, issuer: &str) -> Result<bool>;
    /// Link `external_sub` at `issuer` to the local user `sub` (replacing an earlier link).
    async fn link_user(&self, issuer: &str, external_sub: &str, sub: &str) -> Result<()>;
    /// The local user linked to `external_sub` at `issuer`.
    async fn linked_user(&self, issuer: &str, external_sub: &str) -> Result<Option<User>>;
    /// The local user with this verified e-mail address (case-insensitive), if exactly one.
    /// End-Users provisioned from another issuer's ID-JAG (`provisioned_by`) are not local
    /// accounts and are never found here.
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>>;
}

/// Initial access tokens for dynamic client registration, by hash.
#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// Store a new token.
    async fn put_registration_token(
        &self,
        hash: &TokenHash,
        token: &RegistrationToken,
    ) -> Result<()>;
    /// Spend one use of a live token: `true` if it was live and had a use left (atomic: of two
    /// concurrent calls on a token with one use left, exactly one gets `true`).
    async fn use_registration_token(&self, hash: &TokenHash, now: u64) -> Result<bool>;
}

/// Pushed authorization requests (RFC 9126), by the hash of their `request_uri`.
#[async_trait]
pub trait PushedRequestStore: Send + Sync {
    /// Store a new one.
    async fn put_pushed(&self, hash: &TokenHash, request: &PushedRequest) -> Result<()>;
    /// Take a live one, removing it (RFC 9126 §7.3: one use; atomic: of two concurrent calls,
    /// one gets it).
    async fn take_pushed(&self, hash: &TokenHash, now: u64) -> Result<Option<PushedRequest>>;
}

/// Browser sessions at the OP, keyed by the hash of the cookie value.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Insert or replace.
    async fn put_session(&self, hash: &TokenHash, session: &BrowserSession) -> Result<()>;
    /// A live session.
    async fn session(&self, hash: &TokenHash, now: u64) -> Result<Option<BrowserSession>>;
    /// End a session.
    async fn delete_session(&self, hash: &TokenHash) -> Result<()>;
}

/// End-Users' passkeys (WebAuthn credentials). A passkey goes with its End-User.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Register a passkey; `Conflict` when its credential id is registered already, or its
    /// End-User does not exist.
    async fn insert_passkey(&self, passkey: &Passkey) -> Result<()>;
    /// The passkey with this credential id.
    async fn passkey(&self, credential_id: &str) -> Result<Option<Passkey>>;
    /// An End-User's passkeys, oldest first.
    async fn passkeys_of(&self, sub: &str) -> Result<Vec<Passkey>>;
    /// Record a sign-in with a passkey — the library's updated record, the counter, the time —
    /// atomically and only if [`Passkey::counter_accepts`] the counter against the stored one.
    /// `false`: it did not (a cloned authenticator) or the passkey is gone; nothing changed.
    async fn use_passkey(
        &self,
        credential_id: &str,
        credential: &str,
        sign_count: u32,
        now: u64,
    ) -> Result<bool>;
    /// Rename one of `sub`'s passkeys; `false` when `sub` has none with this id.
    async fn rename_passkey(&self, sub: &str, credential_id: &str, name: &str) -> Result<bool>;
    /// Remove one of `sub`'s passkeys; `false` when `sub` has none with this id.
    async fn delete_passkey(&self, sub: &str, credential_id: &str) -> Result<bool>;
}

/// Whether the store answers: `/healthz` asks on every call, so a load balancer takes a node
/// out while its database is unreachable.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// One round trip to the database (bounded by the backend's connection timeout).
    async fn ping(&self) -> Result<()>;
}

/// Every store the OP needs.
pub trait Store:
    HealthStore
    + DeviceStore
    + ClientStore
    + UserStore
    + SigningKeyStore
    + CodeStore
    + RefreshStore
    + GrantStore
    + ConsentStore
    + ReplayStore
    + SessionStore
    + PurgeStore
    + IssuerStore
    + RegistrationStore
    + CounterStore
    + PushedRequestStore
    + PasskeyStore
{
}

impl<T> Store for T where
    T: HealthStore
        + DeviceStore
        + ClientStore
        + UserStore
        + SigningKeyStore
        + CodeStore
        + RefreshStore
        + GrantStore
        + ConsentStore
        + ReplayStore
        + SessionStore
        + PurgeStore
        + IssuerStore
        + RegistrationStore
        + CounterStore
        + PushedRequestStore
        + PasskeyStore
{
}
