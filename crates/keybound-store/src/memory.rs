//! In-memory backend: the reference semantics of every trait, for tests and demos. One mutex
//! guards all state, which makes each operation trivially atomic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::{
    AuthorizationCode, BrowserSession, Client, ClientStore, CodeLookup, CodeStore, Consent,
    ConsentStore, Expiring, GrantStore, HealthStore, IssuerStore, KeyState, NewRefresh, Passkey,
    PasskeyStore, ProofMark, PurgeStore, PushedRequest, PushedRequestStore, RefreshLookup,
    RefreshStore, RefreshToken, RegistrationStore, RegistrationToken, ReplayStore, Result,
    SessionStore, SigningKeyRecord, SigningKeyStore, StoreError, TokenHash, TrustedIssuer, User,
    UserStore,
};

#[derive(Default)]
struct Inner {
    clients: BTreeMap<String, Client>,
    users: BTreeMap<String, User>,
    passkeys: BTreeMap<String, Passkey>,
    keys: Vec<SigningKeyRecord>,
    codes: HashMap<TokenHash, (AuthorizationCode, bool)>,
    refresh: HashMap<TokenHash, (RefreshToken, bool)>,
    revoked_families: HashSet<String>,
    revoked_grants: HashSet<String>,
    consents: HashMap<(String, String), Consent>,
    replay: HashMap<[u8; 32], u64>,
    sessions: HashMap<TokenHash, BrowserSession>,
    devices: HashMap<TokenHash, DeviceState>,
    issuers: BTreeMap<String, TrustedIssuer>,
    links: HashMap<(String, String), String>,
    registration_tokens: HashMap<TokenHash, RegistrationToken>,
    pushed: HashMap<TokenHash, PushedRequest>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    counters: crate::LocalCounters,
}

crate::local_counter_store!(MemoryStore, counters);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn put_client(&self, client: &Client) -> Result<()> {
        self.lock()
            .clients
            .insert(client.client_id.clone(), client.clone());
        Ok(())
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        Ok(self.lock().clients.get(client_id).cloned())
    }
    async fn clients(&self) -> Result<Vec<Client>> {
        Ok(self.lock().clients.values().cloned().collect())
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        Ok(self.lock().clients.remove(client_id).is_some())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn put_user(&self, user: &User) -> Result<()> {
        let mut g = self.lock();
        if g.users
            .values()
            .any(|u| u.username == user.username && u.sub != user.sub)
        {
            return Err(StoreError::Conflict(format!(
                "username '{}' is taken",
                user.username
            )));
        }
        g.users.insert(user.sub.clone(), user.clone());
        Ok(())
    }
    async fn user(&self, sub: &str) -> Result<Option<User>> {
        Ok(self.lock().users.get(sub).cloned())
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.username == username)
            .cloned())
    }
    async fn users(&self) -> Result<Vec<User>> {
        let mut v: Vec<User> = self.lock().users.values().cloned().collect();
        v.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(v)
    }
    async fn delete_user(&self, sub: &str) -> Result<bool> {
        let mut g = self.lock();
        g.passkeys.retain(|_, p| p.sub != sub);
        Ok(g.users.remove(sub).is_some())
    }
}

/// Why `key` cannot join `keys`: its kid exists, or it would be a second current or next key.
fn key_conflict(keys: &[SigningKeyRecord], key: &SigningKeyRecord) -> Option<String> {
    if keys.iter().any(|k| k.kid == key.kid) {
        return Some(format!("kid '{}' exists", key.kid));
    }
    (key.state != KeyState::Retired && keys.iter().any(|k| k.state == key.state))
        .then(|| format!("there is already a {} key", key.state.as_str()))
}

#[async_trait]
impl HealthStore for MemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl SigningKeyStore for MemoryStore {
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let mut g = self.lock();
        if let Some(why) = key_conflict(&g.keys, key) {
            return Err(StoreError::Conflict(why));
        }
        g.keys.push(key.clone());
        Ok(())
    }
    async fn put_signing_keys_if_absent(&self, keys: &[SigningKeyRecord]) -> Result<bool> {
        let mut g = self.lock();
        let mut all = g.keys.clone();
        for k in keys {
            if key_conflict(&all, k).is_some() {
                return Ok(false);
            }
            all.push(k.clone());
        }
        g.keys = all;
        Ok(true)
    }
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        Ok(self.lock().keys.clone())
    }
    async fn rotate_signing_keys(&self, new_next: &SigningKeyRecord, now: u64) -> Result<()> {
        let mut g = self.lock();
        if g.keys.iter().any(|k| k.kid == new_next.kid) {
            return Err(StoreError::Conflict(format!(
                "kid '{}' exists",
                new_next.kid
            )));
        }
        for k in &mut g.keys {
            match k.state {
                KeyState::Current => {
                    k.state = KeyState::Retired;
                    k.retired_at = Some(now);
                }
                KeyState::Next => {
                    k.state = KeyState::Current;
                    k.activated_at = Some(now);
                }
                KeyState::Retired => {}
            }
        }
        let mut n = new_next.clone();
        n.state = KeyState::Next;
        g.keys.push(n);
        Ok(())
    }
    async fn purge_retired_keys(&self, before: u64) -> Result<u64> {
        let mut g = self.lock();
        let n = g.keys.len();
        g.keys.retain(|k| {
            !(k.state == KeyState::Retired && k.retired_at.is_some_and(|t| t < before))
        });
        Ok((n - g.keys.len()) as u64)
    }
}

fn code_state(entry: Option<&(AuthorizationCode, bool)>, now: u64) -> CodeLookup {
    entry.map_or(CodeLookup::NotFound, |(c, redeemed)| {
        CodeLookup::classify(c.clone(), *redeemed, c.expires_at, now)
    })
}

#[async_trait]
impl CodeStore for MemoryStore {
    async fn insert_code(&self, hash: &TokenHash, code: &AuthorizationCode) -> Result<()> {
        let mut g = self.lock();
        if g.codes.contains_key(hash) {
            return Err(StoreError::Conflict("code exists".into()));
        }
        g.codes.insert(*hash, (code.clone(), false));
        Ok(())
    }
    async fn find_code(&self, hash: &TokenHash, now: u64) -> Result<CodeLookup> {
        Ok(code_state(self.lock().codes.get(hash), now))
    }
    async fn redeem_code(
        &self,
        hash: &TokenHash,
        now: u64,
        first: Option<NewRefresh<'_>>,
        proof: Option<&ProofMark>,
    ) -> Result<CodeLookup> {
        let mut g = self.lock();
        if !mark_proof(&mut g, proof, now) {
            return Ok(CodeLookup::Replayed);
        }
        let state = code_state(g.codes.get(hash), now);
        if let CodeLookup::Active(_) = state {
            if let Some((h, t)) = first {
                insert_refresh_in(&mut g, h, t)?;
            }
            if let Some(e) = g.codes.get_mut(hash) {
                e.1 = true;
            }
        }
        Ok(state)
    }
}

fn insert_refresh_in(g: &mut Inner, hash: &TokenHash, token: &RefreshToken) -> Result<()> {
    if g.refresh.contains_key(hash) {
        return Err(StoreError::Conflict("refresh token exists".into()));
    }
    g.refresh.insert(*hash, (token.clone(), false));
    Ok(())
}

fn refresh_state(g: &Inner, hash: &TokenHash, now: u64) -> RefreshLookup {
    g.refresh
        .get(hash)
        .map_or(RefreshLookup::NotFound, |(t, used)| {
            let revoked = g.revoked_families.contains(&t.family_id);
            RefreshLookup::classify(t.clone(), revoked, *used, t.expires_at, now)
        })
}

#[async_trait]
impl RefreshStore for MemoryStore {
    async fn insert_refresh(&self, hash: &TokenHash, token: &RefreshToken) -> Result<()> {
        insert_refresh_in(&mut self.lock(), hash, token)
    }
    async fn find_refresh(&self, hash: &TokenHash, now: u64) -> Result<RefreshLookup> {
        Ok(refresh_state(&self.lock(), hash, now))
    }
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        new: &TokenHash,
        new_token: &RefreshToken,
        now: u64,
        proof: Option<&ProofMark>,
    ) -> Result<RefreshLookup> {
        let mut g = self.lock();
        if !mark_proof(&mut g, proof, now) {
            return Ok(RefreshLookup::Replayed);
        }
        let state = refresh_state(&g, old, now);
        match &state {
            RefreshLookup::Active(t) => {
                if t.family_id != new_token.family_id {
                    return Err(StoreError::Conflict(
                        "rotation must stay in the family".into(),
                    ));
                }
                if let Some(e) = g.refresh.get_mut(old) {
                    e.1 = true;
                }
                g.refresh.insert(*new, (new_token.clone(), false));
            }
            RefreshLookup::Reused(t) => revoke_grant_in(&mut g, &t.grant_id),
            _ => {}
        }
        Ok(state)
    }
    async fn revoke_family(&self, family_id: &str, _now: u64) -> Result<()> {
        self.lock().revoked_families.insert(family_id.to_owned());
        Ok(())
    }
}

/// Revoke a grant under the store's lock: its access tokens and every family issued under it.
fn revoke_grant_in(g: &mut Inner, grant_id: &str) {
    g.revoked_grants.insert(grant_id.to_owned());
    let families: Vec<String> = g
        .refresh
        .values()
        .filter(|(t, _)| t.grant_id == grant_id)
        .map(|(t, _)| t.family_id.clone())
        .collect();
    g.revoked_families.extend(families);
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn revoke_grant(&self, grant_id: &str, _now: u64) -> Result<()> {
        revoke_grant_in(&mut self.lock(), grant_id);
        Ok(())
    }
    async fn is_grant_revoked(&self, grant_id: &str) -> Result<bool> {
        Ok(self.lock().revoked_grants.contains(grant_id))
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn consent(&self, sub: &str, client_id: &str) -> Result<Option<Consent>> {
        Ok(self
            .lock()
            .consents
            .get(&(sub.to_owned(), client_id.to_owned()))
            .cloned())
    }
    async fn put_consent(&self, consent: &Consent) -> Result<()> {
        self.lock().consents.insert(
            (consent.sub.clone(), consent.client_id.clone()),
            consent.clone(),
        );
        Ok(())
    }
    async fn consents_of(&self, sub: &str) -> Result<Vec<Consent>> {
        let mut out: Vec<Consent> = self
            .lock()
            .consents
            .values()
            .filter(|c| c.sub == sub)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(out)
    }
    async fn revoke_consent(&self, sub: &str, client_id: &str, _now: u64) -> Result<bool> {
        let mut g = self.lock();
        let had = g
            .consents
            .remove(&(sub.to_owned(), client_id.to_owned()))
            .is_some();
        let grants: HashSet<String> = g
            .refresh
            .values()
            .filter(|(t, _)| t.sub == sub && t.client_id == client_id)
            .map(|(t, _)| t.grant_id.clone())
            .collect();
        for grant in grants {
            revoke_grant_in(&mut g, &grant);
        }
        Ok(had)
    }
}

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn check_and_insert(&self, digest: &[u8; 32], expires_at: u64, now: u64) -> Result<bool> {
        let mark = ProofMark {
            digest: *digest,
            expires_at,
        };
        Ok(mark_proof(&mut self.lock(), Some(&mark), now))
    }
    async fn replay_seen(&self, digest: &[u8; 32], now: u64) -> Result<bool> {
        Ok(self.lock().replay.get(digest).is_some_and(|&exp| exp > now))
    }
}

/// Record `proof` unless it is recorded and not expired (`false`: a replay); no proof, `true`.
fn mark_proof(g: &mut Inner, proof: Option<&ProofMark>, now: u64) -> bool {
    let Some(p) = proof else {
        return true;
    };
    match g.replay.get(&p.digest) {
        Some(&exp) if exp > now => false,
        _ => {
            g.replay.insert(p.digest, p.expires_at);
            true
        }
    }
}

/// Remove up to `limit` entries of `map` for which `expired` holds; how many.
pub(crate) fn purge<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    limit: u32,
    expired: impl Fn(&V) -> bool,
) -> u64 {
    let doomed: Vec<K> = map
        .iter()
        .filter(|(_, v)| expired(v))
        .map(|(k, _)| k.clone())
        .take(limit as usize)
        .collect();
    for k in &doomed {
        map.remove(k);
    }
    doomed.len() as u64
}

#[async_trait]
impl PurgeStore for MemoryStore {
    async fn purge_expired(&self, kind: Expiring, now: u64, limit: u32) -> Result<u64> {
        if let Some(n) = self.counters.purge(kind, now, limit) {
            return Ok(n);
        }
        let mut g = self.lock();
        Ok(match kind {
            Expiring::Counters | Expiring::VerifiedSecrets => 0,
            Expiring::PushedRequests => purge(&mut g.pushed, limit, |p| p.expires_at <= now),
            Expiring::Replay => purge(&mut g.replay, limit, |exp| *exp <= now),
            Expiring::Codes => purge(&mut g.codes, limit, |(c, _)| c.expires_at <= now),
            Expiring::DeviceCodes => purge(&mut g.devices, limit, |d| d.auth.expires_at <= now),
            Expiring::Sessions => purge(&mut g.sessions, limit, |s| s.expires_at <= now),
            Expiring::RefreshTokens => purge(&mut g.refresh, limit, |(t, _)| t.expires_at <= now),
        })
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put_session(&self, hash: &TokenHash, session: &BrowserSession) -> Result<()> {
        self.lock().sessions.insert(*hash, session.clone());
        Ok(())
    }
    async fn session(&self, hash: &TokenHash, now: u64) -> Result<Option<BrowserSession>> {
        Ok(self
            .lock()
            .sessions
            .get(hash)
            .filter(|s| s.expires_at > now)
            .cloned())
    }
    async fn delete_session(&self, hash: &TokenHash) -> Result<()> {
        self.lock().sessions.remove(hash);
        Ok(())
    }
}

#[derive(Clone)]
pub(crate) struct DeviceState {
    auth: crate::DeviceAuthorization,
    decision: Option<crate::DeviceDecision>,
    redeemed: bool,
    interval: u64,
    last_poll: Option<u64>,
}

#[async_trait]
impl crate::DeviceStore for MemoryStore {
    async fn insert_device(
        &self,
        hash: &TokenHash,
        auth: &crate::DeviceAuthorization,
        interval: u64,
    ) -> Result<()> {
        let mut g = self.lock();
        if g.devices.contains_key(hash)
            || g.devices
                .values()
                .any(|d| d.auth.user_code == auth.user_code)
        {
            return Err(StoreError::Conflict(
                "device code or user code exists".into(),
            ));
        }
        g.devices.insert(
            *hash,
            DeviceState {
                auth: auth.clone(),
                decision: None,
                redeemed: false,
                interval,
                last_poll: None,
            },
        );
        Ok(())
    }
    async fn find_device(
        &self,
        hash: &TokenHash,
        now: u64,
    ) -> Result<Option<crate::DeviceAuthorization>> {
        Ok(self
            .lock()
            .devices
            .get(hash)
            .filter(|d| now < d.auth.expires_at)
            .map(|d| d.auth.clone()))
    }
    async fn device_by_user_code(
        &self,
        user_code: &str,
        now: u64,
    ) -> Result<Option<(TokenHash, crate::DeviceAuthorization)>> {
        Ok(self
            .lock()
            .devices
            .iter()
            .find(|(_, d)| {
                d.auth.user_code == user_code && d.decision.is_none() && now < d.auth.expires_at
            })
            .map(|(h, d)| (*h, d.auth.clone())))
    }
    async fn decide_device(
        &self,
        hash: &TokenHash,
        decision: &crate::DeviceDecision,
        now: u64,
    ) -> Result<bool> {
        let mut g = self.lock();
        match g.devices.get_mut(hash) {
            Some(d) if d.decision.is_none() && now < d.auth.expires_at => {
                d.decision = Some(decision.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn poll_device(
        &self,
        hash: &TokenHash,
        now: u64,
        first: &crate::FirstRefreshFor<'_>,
    ) -> Result<crate::DevicePoll> {
        use crate::{DeviceDecision, DevicePoll};
        let mut g = self.lock();
        let Some(d) = g.devices.get_mut(hash) else {
            return Ok(DevicePoll::NotFound);
        };
        if d.redeemed {
            return Ok(DevicePoll::Redeemed(d.auth.clone()));
        }
        if now >= d.auth.expires_at {
            return Ok(DevicePoll::Expired);
        }
        let too_fast = d.last_poll.is_some_and(|t| now < t + d.interval);
        d.last_poll = Some(now);
        if too_fast {
            d.interval += 5;
            return Ok(DevicePoll::SlowDown {
                interval: d.interval,
            });
        }
        let dec = match &d.decision {
            None => {
                return Ok(DevicePoll::Pending {
                    interval: d.interval,
                })
            }
            Some(DeviceDecision::Denied) => return Ok(DevicePoll::Denied),
            Some(dec @ DeviceDecision::Approved { .. }) => dec.clone(),
        };
        let auth = d.auth.clone();
        if let Some((h, t)) = first(&dec) {
            insert_refresh_in(&mut g, &h, &t)?;
        }
        if let Some(d) = g.devices.get_mut(hash) {
            d.redeemed = true;
        }
        Ok(DevicePoll::Approved(auth, dec))
    }
}

#[async_trait]
impl IssuerStore for MemoryStore {
    async fn put_issuer(&self, issuer: &TrustedIssuer) -> Result<()> {
        self.lock()
            .issuers
            .insert(issuer.issuer.clone(), issuer.clone());
        Ok(())
    }
    async fn issuer(&self, issuer: &str) -> Result<Option<TrustedIssuer>> {
        Ok(self.lock().issuers.get(issuer).cloned())
    }
    async fn issuers(&self) -> Result<Vec<TrustedIssuer>> {
        Ok(self.lock().issuers.values().cloned().collect())
    }
    async fn delete_issuer(&self, issuer: &str) -> Result<bool> {
        let mut g = self.lock();
        g.links.retain(|(i, _), _| i != issuer);
        Ok(g.issuers.remove(issuer).is_some())
    }
    async fn link_user(&self, issuer: &str, external_sub: &str, sub: &str) -> Result<()> {
        self.lock()
            .links
            .insert((issuer.to_owned(), external_sub.to_owned()), sub.to_owned());
        Ok(())
    }
    async fn linked_user(&self, issuer: &str, external_sub: &str) -> Result<Option<User>> {
        let g = self.lock();
        Ok(g.links
            .get(&(issuer.to_owned(), external_sub.to_owned()))
            .and_then(|sub| g.users.get(sub))
            .cloned())
    }
    async fn user_by_verified_email(&self, email: &str) -> Result<Option<User>> {
        let g = self.lock();
        let mut found = g.users.values().filter(|u| {
            u.email_verified
                && u.provisioned_by.is_none()
                && u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        });
        Ok(match (found.next(), found.next()) {
            (Some(u), None) => Some(u.clone()),
            _ => None,
        })
    }
}

#[async_trait]
impl RegistrationStore for MemoryStore {
    async fn put_registration_token(
        &self,
        hash: &TokenHash,
        token: &RegistrationToken,
    ) -> Result<()> {
        self.lock().registration_tokens.insert(*hash, token.clone());
        Ok(())
    }
    async fn use_registration_token(&self, hash: &TokenHash, now: u64) -> Result<bool> {
        let mut g = self.lock();
        let Some(t) = g.registration_tokens.get_mut(hash) else {
            return Ok(false);
        };
        if now >= t.expires_at || t.uses_left == Some(0) {
            return Ok(false);
        }
        if let Some(n) = &mut t.uses_left {
            *n -= 1;
        }
        Ok(true)
    }
}

#[async_trait]
impl PushedRequestStore for MemoryStore {
    async fn put_pushed(&self, hash: &TokenHash, request: &PushedRequest) -> Result<()> {
        let mut g = self.lock();
        if g.pushed.contains_key(hash) {
            return Err(StoreError::Conflict("pushed request exists".into()));
        }
        g.pushed.insert(*hash, request.clone());
        Ok(())
    }
    async fn take_pushed(&self, hash: &TokenHash, now: u64) -> Result<Option<PushedRequest>> {
        Ok(self
            .lock()
            .pushed
            .remove(hash)
            .filter(|p| now < p.expires_at))
    }
}

#[async_trait]
impl PasskeyStore for MemoryStore {
    async fn insert_passkey(&self, passkey: &Passkey) -> Result<()> {
        let mut g = self.lock();
        if !g.users.contains_key(&passkey.sub) {
            return Err(StoreError::Conflict(format!(
                "no End-User '{}'",
                passkey.sub
            )));
        }
        if g.passkeys.contains_key(&passkey.credential_id) {
            return Err(StoreError::Conflict("credential id registered".into()));
        }
        g.passkeys
            .insert(passkey.credential_id.clone(), passkey.clone());
        Ok(())
    }
    async fn passkey(&self, credential_id: &str) -> Result<Option<Passkey>> {
        Ok(self.lock().passkeys.get(credential_id).cloned())
    }
    async fn passkeys_of(&self, sub: &str) -> Result<Vec<Passkey>> {
        let mut all: Vec<Passkey> = self
            .lock()
            .passkeys
            .values()
            .filter(|p| p.sub == sub)
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.credential_id).cmp(&(b.created_at, &b.credential_id)));
        Ok(all)
    }
    async fn use_passkey(
        &self,
        credential_id: &str,
        credential: &str,
        sign_count: u32,
        now: u64,
    ) -> Result<bool> {
        let mut g = self.lock();
        Ok(g.passkeys
            .get_mut(credential_id)
            .is_some_and(|p| p.record_use(credential, sign_count, now)))
    }
    async fn rename_passkey(&self, sub: &str, credential_id: &str, name: &str) -> Result<bool> {
        match self.lock().passkeys.get_mut(credential_id) {
            Some(p) if p.sub == sub => {
                name.clone_into(&mut p.name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn delete_passkey(&self, sub: &str, credential_id: &str) -> Result<bool> {
        let mut g = self.lock();
        if g.passkeys.get(credential_id).is_some_and(|p| p.sub == sub) {
            g.passkeys.remove(credential_id);
            return Ok(true);
        }
        Ok(false)
    }
}
