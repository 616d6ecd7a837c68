//! The operator's API (`/admin/v1/…`) and `keybound admin`: one set of operations over the
//! store, called by the HTTP handlers of the admin API and by the command line when it works
//! on the database directly, so the two cannot disagree about what a command does.
//!
//! Who may call it is decided here too ([`Provider::authorize_admin`]): an access token this
//! OP issued by the client credentials grant, bound to a DPoP key (a Bearer token is refused:
//! an operator's token that leaks from a CI log must be useless), with the scope
//! [`ADMIN_SCOPE`], to a client that still has that scope registered. Documents are in
//! [`docs`]; entity tags ([`etag`]) make updates conditional (`If-Match`), so two operators
//! editing the same client cannot overwrite each other unnoticed.

mod docs;

pub use docs::{
    ClientDoc, ExchangeDoc, IssuerDoc, KeyDoc, LinkDoc, Page, PageRequest, PasskeyDoc, Put,
    RegistrationTokenDoc, RegistrationTokenRequest, Shown, UserDoc,
};

use base64::Engine as _;
use keybound_proto::wire::grant_type;
use keybound_store::{Client, ClientAuthMethod, ExchangePolicy, SubjectMode, TrustedIssuer, User};
use serde::Serialize;

use crate::events::{Change, EventType, SecurityEvent};
use crate::refusal::{AdminRefusal as Why, RegistrationRefusal};
use crate::resource::ResourceRequest;
use crate::{register, OpError, Provider};

/// The scope of an access token for the admin API.
pub const ADMIN_SCOPE: &str = "keybound:admin";

/// Items per page unless asked otherwise, and the most a page holds.
const PAGE_DEFAULT: u32 = 100;
const PAGE_MAX: u32 = 1000;

/// Who makes an admin change (for the audit record): an admin client through the API, or a
/// local user on the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCaller {
    /// `client:<id>` or `local:<user>`
    pub actor: String,
}

impl AdminCaller {
    /// The admin client `id`, through the API.
    pub fn client(id: &str) -> Self {
        AdminCaller {
            actor: format!("client:{id}"),
        }
    }

    /// A user of this machine, on the database.
    pub fn local(user: &str) -> Self {
        AdminCaller {
            actor: format!("local:{user}"),
        }
    }
}

/// Conditions of a write (RFC 9110 §13): `If-Match` names the entity tag the writer read;
/// `If-None-Match: *` writes only what does not exist yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    /// the entity tag the writer last read (quoted, as sent)
    pub if_match: Option<String>,
    /// create only
    pub if_none_match_any: bool,
}

/// Write-only members: a secret shown once is not part of the version it was shown with.
const WRITE_ONLY: [&str; 2] = ["client_secret", "password"];

/// A document as anyone may read it back: without write-only members (a secret shown once).
/// The entity tag and the audit record are taken of this.
pub fn public_value<T: Serialize>(doc: &T) -> serde_json::Value {
    // serializing a document of plain data cannot fail; null would only make every If-Match
    // fail, never pass, and an audit record say less
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    if let Some(m) = value.as_object_mut() {
        for k in WRITE_ONLY {
            m.remove(k);
        }
    }
    value
}

/// The entity tag of a document: a strong tag over its public JSON form (RFC 9110 §8.8.3), so
/// the answer to a `PUT` and a later `GET` carry the same tag.
pub fn etag<T: Serialize>(doc: &T) -> String {
    let json = serde_json::to_vec(&public_value(doc)).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
    format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..18])
    )
}

/// Check `pre` against the current document (`None`: it does not exist).
fn check_precondition<T: Serialize>(
    pre: &Precondition,
    current: Option<&T>,
    kind: &'static str,
    id: &str,
) -> Result<(), OpError> {
    match (current, pre) {
        (
            Some(_),
            Precondition {
                if_none_match_any: true,
                ..
            },
        ) => Err(Why::Exists {
            kind,
            id: id.to_owned(),
        }
        .into()),
        (
            None,
            Precondition {
                if_match: Some(_), ..
            },
        ) => Err(Why::NotFound {
            kind,
            id: id.to_owned(),
        }
        .into()),
        (
            Some(doc),
            Precondition {
                if_match: Some(tag),
                ..
            },
        ) if tag.trim() != "*" && tag.trim() != etag(doc) => Err(Why::Changed {
            kind,
            id: id.to_owned(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// One page of `items` (sorted by `key`) after `page.after`.
fn paged<T, K: Fn(&T) -> &str>(
    mut items: Vec<T>,
    page: &PageRequest,
    key: K,
) -> Result<Page<T>, OpError> {
    let limit = page.limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(Why::PageLimit { max: PAGE_MAX }.into());
    }
    items.sort_by(|a, b| key(a).cmp(key(b)));
    if let Some(after) = &page.after {
        items.retain(|i| key(i) > after.as_str());
    }
    let limit = limit as usize;
    let next = (items.len() > limit).then(|| key(&items[limit - 1]).to_owned());
    items.truncate(limit);
    Ok(Page { items, next })
}

impl Provider {
    /// Record an admin change by `by`: `action` on `target`, the documents before and after.
    fn changed<T: Serialize>(
        &self,
        by: &AdminCaller,
        action: &'static str,
        target: String,
        before: Option<&T>,
        after: Option<&T>,
    ) {
        let mut e = SecurityEvent::new(EventType::AdminChange);
        e.change = Some(Change {
            actor: by.actor.clone(),
            action,
            target,
            before: before.map(public_value),
            after: after.map(public_value),
        });
        self.event(e);
    }

    /// Record a put: create or replace.
    fn put_recorded<T: Serialize>(&self, by: &AdminCaller, kind: &str, id: &str, put: &Put<T>) {
        let action = if put.created { "create" } else { "replace" };
        self.changed(
            by,
            action,
            format!("{kind} {id}"),
            put.before.as_ref(),
            Some(&put.doc),
        );
    }

    /// Authorize a request to the admin API: a DPoP-bound access token of the client
    /// credentials grant with [`ADMIN_SCOPE`], whose client still has that scope.
    pub async fn authorize_admin(&self, r: ResourceRequest<'_>) -> Result<AdminCaller, OpError> {
        let at = self.authorize_resource(r).await?;
        if at.jkt().is_none() {
            return Err(Why::NotBound.into());
        }
        if !at.has_scope(ADMIN_SCOPE) {
            return Err(Why::Scope.into());
        }
        // a client's own token (client credentials), never an End-User's
        if at.sub != at.client_id {
            return Err(Why::EndUserToken.into());
        }
        let still = self
            .registered_client(&at.client_id)
            .await?
            .is_some_and(|c| c.scopes.iter().any(|s| s == ADMIN_SCOPE));
        if !still {
            return Err(Why::NoLongerAdmin(at.client_id).into());
        }
        Ok(AdminCaller::client(&at.client_id))
    }

    // ---- clients ----

    /// Clients, a page at a time.
    pub async fn admin_clients(&self, page: &PageRequest) -> Result<Page<ClientDoc>, OpError> {
        let clients = self.store.clients().await?;
        let p = paged(clients, page, |c| c.client_id.as_str())?;
        Ok(Page {
            items: p.items.iter().map(ClientDoc::of).collect(),
            next: p.next,
        })
    }

    /// One client.
    pub async fn admin_client(&self, client_id: &str) -> Result<ClientDoc, OpError> {
        let c = self.store.client(client_id).await?.ok_or(Why::NotFound {
            kind: "client",
            id: client_id.to_owned(),
        })?;
        Ok(ClientDoc::of(&c))
    }

    /// Register or replace a client from its document, under the rules dynamic registration
    /// applies too ([`crate::check_client`]).
    pub async fn admin_put_client(
        &self,
        by: &AdminCaller,
        client_id: &str,
        doc: ClientDoc,
        pre: &Precondition,
    ) -> Result<Put<ClientDoc>, OpError> {
        if doc.client_id.as_deref().is_some_and(|id| id != client_id) {
            return Err(Why::PathMismatch {
                member: "client_id",
            }
            .into());
        }
        if client_id.is_empty() || client_id.len() > 255 {
            return Err(Why::Invalid {
                member: "client_id",
                reason: "1 to 255 characters".into(),
            }
            .into());
        }
        let existing = self.store.client(client_id).await?;
        let before = existing.as_ref().map(ClientDoc::of);
        check_precondition(pre, before.as_ref(), "client", client_id)?;
        let created_at = existing.as_ref().map_or(self.now(), |c| c.created_at);
        let mut client = doc.to_client(client_id, created_at)?;
        crate::check_client(&client).map_err(Why::Client)?;
        let secret_method = matches!(
            client.auth_method,
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost
        );
        let mut generated = None;
        match (&doc.client_secret, secret_method) {
            (Some(_), false) => {
                return Err(Why::Invalid {
                    member: "client_secret",
                    reason: "only for client_secret_basic and client_secret_post".into(),
                }
                .into())
            }
            (Some(s), true) => client.secret_hash = Some(self.hashes.hash(&s.0).await?),
            (None, true) => {
                if let Some(kept) = existing.as_ref().and_then(|c| c.secret_hash.clone()) {
                    client.secret_hash = Some(kept);
                } else {
                    let s = self.random_token();
                    client.secret_hash = Some(self.hashes.hash(&s).await?);
                    generated = Some(Shown(s));
                }
            }
            (None, false) => {}
        }
        self.store.put_client(&client).await?;
        self.clients.forget(client_id);
        let mut out = ClientDoc::of(&client);
        out.client_secret = generated;
        let put = Put {
            doc: out,
            created: existing.is_none(),
            before,
        };
        self.put_recorded(by, "client", client_id, &put);
        Ok(put)
    }

    /// Remove a client; the document it was.
    pub async fn admin_delete_client(
        &self,
        by: &AdminCaller,
        client_id: &str,
        pre: &Precondition,
    ) -> Result<ClientDoc, OpError> {
        let before = self.admin_client(client_id).await?;
        check_precondition(pre, Some(&before), "client", client_id)?;
        if !self.store.delete_client(client_id).await? {
            return Err(Why::NotFound {
                kind: "client",
                id: client_id.to_owned(),
            }
            .into());
        }
        self.clients.forget(client_id);
        self.changed(
            by,
            "delete",
            format!("client {client_id}"),
            Some(&before),
            None,
        );
        Ok(before)
    }

    // ---- users ----

    async fn user_named(&self, username: &str) -> Result<User, OpError> {
        self.store.user_by_username(username).await?.ok_or_else(|| {
            Why::NotFound {
                kind: "user",
                id: username.to_owned(),
            }
            .into()
        })
    }

    /// Users, a page at a time (by username).
    pub async fn admin_users(&self, page: &PageRequest) -> Result<Page<UserDoc>, OpError> {
        let users = self.store.users().await?;
        let p = paged(users, page, |u| u.username.as_str())?;
        Ok(Page {
            items: p.items.iter().map(UserDoc::of).collect(),
            next: p.next,
        })
    }

    /// One user.
    pub async fn admin_user(&self, username: &str) -> Result<UserDoc, OpError> {
        Ok(UserDoc::of(&self.user_named(username).await?))
    }

    /// Create or replace a user; `sub` and `created_at` of an existing user stay.
    pub async fn admin_put_user(
        &self,
        by: &AdminCaller,
        username: &str,
        doc: UserDoc,
        pre: &Precondition,
    ) -> Result<Put<UserDoc>, OpError> {
        if doc.username.as_deref().is_some_and(|u| u != username) {
            return Err(Why::PathMismatch { member: "username" }.into());
        }
        if username.is_empty() || username.len() > 255 || username.trim() != username {
            return Err(Why::Invalid {
                member: "username",
                reason: "1 to 255 characters, no leading or trailing spaces".into(),
            }
            .into());
        }
        let existing = self.store.user_by_username(username).await?;
        let before = existing.as_ref().map(UserDoc::of);
        check_precondition(pre, before.as_ref(), "user", username)?;
        if let (Some(sent), Some(u)) = (&doc.sub, &existing) {
            if sent != &u.sub {
                return Err(Why::ReadOnly { member: "sub" }.into());
            }
        }
        let mut generated = None;
        let password_hash = match (&doc.password, &existing) {
            (Some(p), _) => self.hashes.hash(&p.0).await?,
            (None, Some(u)) => u.password_hash.clone(),
            (None, None) => {
                let p = keybound_jose::random_b64(12);
                let h = self.hashes.hash(&p).await?;
                generated = Some(Shown(p));
                h
            }
        };
        let user = User {
            sub: existing
                .as_ref()
                .map_or_else(|| keybound_jose::random_b64(12), |u| u.sub.clone()),
            username: username.to_owned(),
            password_hash,
            name: doc.name.clone(),
            email_verified: doc.email_verified.unwrap_or(doc.email.is_some()),
            email: doc.email.clone(),
            provisioned_by: existing.as_ref().and_then(|u| u.provisioned_by.clone()),
            require_passkey: doc.require_passkey,
            created_at: existing.as_ref().map_or(self.now(), |u| u.created_at),
        };
        self.store.put_user(&user).await?;
        let mut out = UserDoc::of(&user);
        out.password = generated;
        let put = Put {
            doc: out,
            created: existing.is_none(),
            before,
        };
        self.put_recorded(by, "user", username, &put);
        Ok(put)
    }

    /// Remove a user (their grants, sessions and passkeys go with them in the store).
    pub async fn admin_delete_user(
        &self,
        by: &AdminCaller,
        username: &str,
        pre: &Precondition,
    ) -> Result<UserDoc, OpError> {
        let u = self.user_named(username).await?;
        let before = UserDoc::of(&u);
        check_precondition(pre, Some(&before), "user", username)?;
        self.store.delete_user(&u.sub).await?;
        self.changed(
            by,
            "delete",
            format!("user {username}"),
            Some(&before),
            None,
        );
        Ok(before)
    }

    /// Link a subject at a trusted issuer to a local user.
    pub async fn admin_link_user(
        &self,
        by: &AdminCaller,
        username: &str,
        link: &LinkDoc,
    ) -> Result<(), OpError> {
        let u = self.user_named(username).await?;
        if self.store.issuer(&link.issuer).await?.is_none() {
            return Err(Why::NotFound {
                kind: "trusted issuer",
                id: link.issuer.clone(),
            }
            .into());
        }
        if link.subject.is_empty() {
            return Err(Why::Invalid {
                member: "subject",
                reason: "the user's sub at that issuer, not empty".into(),
            }
            .into());
        }
        self.store
            .link_user(&link.issuer, &link.subject, &u.sub)
            .await?;
        self.changed(by, "link", format!("user {username}"), None, Some(link));
        Ok(())
    }

    /// A user's passkeys.
    pub async fn admin_passkeys(&self, username: &str) -> Result<Vec<PasskeyDoc>, OpError> {
        let u = self.user_named(username).await?;
        Ok(self
            .store
            .passkeys_of(&u.sub)
            .await?
            .iter()
            .map(PasskeyDoc::of)
            .collect())
    }

    /// Remove one of a user's passkeys (a lost one: they sign in otherwise and add another).
    pub async fn admin_delete_passkey(
        &self,
        by: &AdminCaller,
        username: &str,
        credential_id: &str,
    ) -> Result<PasskeyDoc, OpError> {
        let u = self.user_named(username).await?;
        let not_found = || Why::NotFound {
            kind: "passkey",
            id: credential_id.to_owned(),
        };
        let before = self
            .store
            .passkeys_of(&u.sub)
            .await?
            .iter()
            .find(|p| p.credential_id == credential_id)
            .map(PasskeyDoc::of)
            .ok_or_else(not_found)?;
        // the one removal (and its security event) the account page uses too
        match self.remove_passkey(&u.sub, credential_id).await {
            Err(e) if e.is_internal() => return Err(e),
            // removed in between by its owner
            Err(_) => return Err(not_found().into()),
            Ok(()) => {}
        }
        self.changed(
            by,
            "delete",
            format!("passkey {credential_id} of {username}"),
            Some(&before),
            None,
        );
        Ok(before)
    }

    // ---- trusted issuers ----

    /// Trusted issuers, a page at a time.
    pub async fn admin_issuers(&self, page: &PageRequest) -> Result<Page<IssuerDoc>, OpError> {
        let issuers = self.store.issuers().await?;
        let p = paged(issuers, page, |i| i.issuer.as_str())?;
        Ok(Page {
            items: p.items.iter().map(IssuerDoc::of).collect(),
            next: p.next,
        })
    }

    /// One trusted issuer.
    pub async fn admin_issuer(&self, issuer: &str) -> Result<IssuerDoc, OpError> {
        let i = self.store.issuer(issuer).await?.ok_or(Why::NotFound {
            kind: "trusted issuer",
            id: issuer.to_owned(),
        })?;
        Ok(IssuerDoc::of(&i))
    }

    /// Trust an issuer, or change its settings.
    pub async fn admin_put_issuer(
        &self,
        by: &AdminCaller,
        issuer: &str,
        doc: IssuerDoc,
        pre: &Precondition,
    ) -> Result<Put<IssuerDoc>, OpError> {
        if doc.issuer.as_deref().is_some_and(|i| i != issuer) {
            return Err(Why::PathMismatch { member: "issuer" }.into());
        }
        for (member, u) in [("issuer", issuer), ("jwks_uri", doc.jwks_uri.as_str())] {
            if crate::register::absolute_uri(u).is_none() {
                return Err(Why::Invalid {
                    member,
                    reason: format!("'{u}' must be an absolute URL without a fragment"),
                }
                .into());
            }
        }
        let subject = match doc.subject.as_deref() {
            None => SubjectMode::default(),
            Some(s) => SubjectMode::parse(s).ok_or_else(|| Why::Invalid {
                member: "subject",
                reason: format!("'{s}': expected link, email or provision"),
            })?,
        };
        let existing = self.store.issuer(issuer).await?;
        let before = existing.as_ref().map(IssuerDoc::of);
        check_precondition(pre, before.as_ref(), "trusted issuer", issuer)?;
        let record = TrustedIssuer {
            issuer: issuer.to_owned(),
            jwks_uri: doc.jwks_uri,
            subject,
            single_use: doc.single_use,
            allow_unbound: doc.allow_unbound,
            enabled: doc.enabled.unwrap_or(true),
            created_at: existing.as_ref().map_or(self.now(), |i| i.created_at),
        };
        self.store.put_issuer(&record).await?;
        let put = Put {
            doc: IssuerDoc::of(&record),
            created: existing.is_none(),
            before,
        };
        self.put_recorded(by, "trusted issuer", issuer, &put);
        Ok(put)
    }

    /// Forget an issuer and its links.
    pub async fn admin_delete_issuer(
        &self,
        by: &AdminCaller,
        issuer: &str,
        pre: &Precondition,
    ) -> Result<IssuerDoc, OpError> {
        let before = self.admin_issuer(issuer).await?;
        check_precondition(pre, Some(&before), "trusted issuer", issuer)?;
        self.store.delete_issuer(issuer).await?;
        self.changed(
            by,
            "delete",
            format!("trusted issuer {issuer}"),
            Some(&before),
            None,
        );
        Ok(before)
    }

    // ---- signing keys and registration tokens ----

    /// The signing keys (made first if there are none).
    pub async fn admin_keys(&self) -> Result<Vec<KeyDoc>, OpError> {
        self.ensure_signing_keys().await?;
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| KeyDoc {
                kid: k.kid,
                alg: k.alg.name().to_owned(),
                state: k.state.as_str().to_owned(),
                created_at: k.created_at,
            })
            .collect())
    }

    /// Rotate the signing keys; the keys after.
    pub async fn admin_rotate_keys(&self, by: &AdminCaller) -> Result<Vec<KeyDoc>, OpError> {
        let before = self.admin_keys().await?;
        self.rotate_signing_keys().await?;
        let after = self.admin_keys().await?;
        self.changed(
            by,
            "rotate",
            "signing keys".into(),
            Some(&before),
            Some(&after),
        );
        Ok(after)
    }

    /// An initial access token for dynamic registration.
    pub async fn admin_registration_token(
        &self,
        by: &AdminCaller,
        r: &RegistrationTokenRequest,
    ) -> Result<RegistrationTokenDoc, OpError> {
        if r.ttl == 0 {
            return Err(Why::Invalid {
                member: "ttl",
                reason: "at least one second".into(),
            }
            .into());
        }
        let token = self.create_registration_token(r.ttl, r.uses).await?;
        // the request, never the token
        self.changed(by, "issue", "registration token".into(), None, Some(r));
        Ok(RegistrationTokenDoc {
            token: Shown(token),
            expires_at: self.now().saturating_add(r.ttl),
            uses: r.uses,
        })
    }
}

impl ClientDoc {
    /// The document of a stored client (never its secret).
    pub fn of(c: &Client) -> Self {
        let mut grants = c.grant_types.clone();
        if c.jwt_bearer {
            grants.push(grant_type::JWT_BEARER.to_owned());
        }
        if c.exchange.is_some() {
            grants.push(grant_type::TOKEN_EXCHANGE.to_owned());
        }
        ClientDoc {
            client_id: Some(c.client_id.clone()),
            client_name: Some(c.name.clone()),
            token_endpoint_auth_method: Some(c.auth_method.as_str().to_owned()),
            client_secret: None,
            redirect_uris: c.redirect_uris.clone(),
            grant_types: Some(grants),
            response_types: Some(c.response_types.clone()),
            scope: (!c.scopes.is_empty()).then(|| c.scopes.join(" ")),
            resources: c.resources.clone(),
            jwks: c.jwks.as_ref().and_then(|j| serde_json::to_value(j).ok()),
            dpop_bound_access_tokens: c.dpop_bound_access_tokens,
            require_pushed_authorization_requests: c.require_par,
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            default_acr_values: c.default_acr_values.clone(),
            key_binding_profile: Some(c.key_binding_profile.name().to_owned()),
            id_token_token_binding_cnf: c.token_bound_id_tokens.then(|| "tbh".to_owned()),
            require_dpop_nonce: c.require_dpop_nonce,
            fapi2: c.fapi2,
            web_origins: c.web_origins.clone(),
            require_dbsc: c.require_dbsc,
            token_exchange: c.exchange.clone().map(ExchangeDoc::from),
            client_id_issued_at: Some(c.created_at),
        }
    }

    /// The client this document describes (secret not set: the caller decides it).
    fn to_client(&self, client_id: &str, created_at: u64) -> Result<Client, OpError> {
        let bad = |member: &'static str, reason: String| -> OpError {
            Why::Invalid { member, reason }.into()
        };
        let client = |r: RegistrationRefusal| OpError::from(Why::Client(r));
        let method =
            register::auth_method(self.token_endpoint_auth_method.as_deref().unwrap_or("none"))
                .map_err(client)?;
        let mut jwt_bearer = false;
        let mut exchange_grant = false;
        let mut grants = Vec::new();
        match &self.grant_types {
            None => {
                // the classic grants, and token exchange when a policy says what it gives
                grants = keybound_store::classic_grants();
                exchange_grant = self.token_exchange.is_some();
            }
            Some(list) => {
                for g in list {
                    match g.as_str() {
                        grant_type::JWT_BEARER => jwt_bearer = true,
                        grant_type::TOKEN_EXCHANGE => exchange_grant = true,
                        grant_type::AUTHORIZATION_CODE
                        | grant_type::REFRESH_TOKEN
                        | grant_type::CLIENT_CREDENTIALS
                        | grant_type::DEVICE_CODE => {
                            if !grants.contains(g) {
                                grants.push(g.clone());
                            }
                        }
                        other => {
                            return Err(client(RegistrationRefusal::GrantType(other.to_owned())))
                        }
                    }
                }
            }
        }
        if exchange_grant != self.token_exchange.is_some() {
            return Err(bad(
                "token_exchange",
                "the token-exchange grant and a token_exchange policy go together".into(),
            ));
        }
        let response_types = match &self.response_types {
            None => vec!["code".to_owned()],
            Some(list) => register::response_types(list)
                .map_err(client)?
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
        };
        let profile = register::profile(self.key_binding_profile.as_deref()).map_err(client)?;
        let token_bound =
            register::tbh_cnf(self.id_token_token_binding_cnf.as_deref()).map_err(client)?;
        let jwks = self
            .jwks
            .as_ref()
            .map(register::jwks)
            .transpose()
            .map_err(client)?;
        let exchange = match &self.token_exchange {
            None => None,
            Some(x) => {
                if x.audiences.is_empty() {
                    return Err(bad(
                        "token_exchange.audiences",
                        "at least one resource AS issuer".into(),
                    ));
                }
                for (iss, id) in &x.audiences {
                    if crate::register::absolute_uri(iss).is_none() || id.is_empty() {
                        return Err(bad(
                            "token_exchange.audiences",
                            format!("'{iss}' → '{id}': an absolute issuer URL and a client id"),
                        ));
                    }
                }
                if let Some(r) = x
                    .resources
                    .iter()
                    .find(|r| crate::register::absolute_uri(r).is_none())
                {
                    return Err(bad(
                        "token_exchange.resources",
                        format!("'{r}' must be an absolute URI without a fragment"),
                    ));
                }
                Some(ExchangePolicy::from(x.clone()))
            }
        };
        Ok(Client {
            name: self
                .client_name
                .clone()
                .unwrap_or_else(|| client_id.to_owned()),
            redirect_uris: self.redirect_uris.clone(),
            key_binding_profile: profile,
            require_dpop_nonce: self.require_dpop_nonce,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            jwks,
            exchange,
            jwt_bearer,
            grant_types: grants,
            response_types,
            token_bound_id_tokens: token_bound,
            resources: self.resources.clone(),
            scopes: self
                .scope
                .as_deref()
                .unwrap_or("")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            require_par: self.require_pushed_authorization_requests,
            fapi2: self.fapi2,
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            web_origins: self.web_origins.clone(),
            default_acr_values: self.default_acr_values.clone(),
            require_dbsc: self.require_dbsc,
            ..Client::new(client_id, method, created_at)
        })
    }
}

/// The policy's document and back: the same members, one conversion each way.
impl From<ExchangePolicy> for ExchangeDoc {
    fn from(p: ExchangePolicy) -> Self {
        ExchangeDoc {
            audiences: p.audiences,
            scopes: p.scopes,
            resources: p.resources,
            allow_unbound: p.allow_unbound,
            allow_public: p.allow_public,
            acr_values: p.acr_values,
            max_auth_age: p.max_auth_age,
        }
    }
}

impl From<ExchangeDoc> for ExchangePolicy {
    fn from(x: ExchangeDoc) -> Self {
        ExchangePolicy {
            audiences: x.audiences,
            scopes: x.scopes,
            resources: x.resources,
            allow_unbound: x.allow_unbound,
            allow_public: x.allow_public,
            acr_values: x.acr_values,
            max_auth_age: x.max_auth_age,
        }
    }
}

impl UserDoc {
    /// The document of a stored user (never the password hash).
    pub fn of(u: &User) -> Self {
        UserDoc {
            username: Some(u.username.clone()),
            sub: Some(u.sub.clone()),
            password: None,
            name: u.name.clone(),
            email: u.email.clone(),
            email_verified: Some(u.email_verified),
            require_passkey: u.require_passkey,
            provisioned_by: u.provisioned_by.clone(),
            created_at: Some(u.created_at),
        }
    }
}

impl PasskeyDoc {
    /// The document of a stored passkey (never its key).
    pub fn of(p: &keybound_store::Passkey) -> Self {
        PasskeyDoc {
            credential_id: p.credential_id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

impl IssuerDoc {
    /// The document of a trusted issuer.
    pub fn of(i: &TrustedIssuer) -> Self {
        IssuerDoc {
            issuer: Some(i.issuer.clone()),
            jwks_uri: i.jwks_uri.clone(),
            subject: Some(i.subject.as_str().to_owned()),
            single_use: i.single_use,
            allow_unbound: i.allow_unbound,
            enabled: Some(i.enabled),
            created_at: Some(i.created_at),
        }
    }
}
