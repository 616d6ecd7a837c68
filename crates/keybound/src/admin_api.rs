//! Where `keybound admin` acts: on the store directly (the provider's admin operations, as
//! before), or through a running server's admin API (`--server URL --key FILE --client-id ID`).
//! Both run the same operations of `keybound_op::admin` — locally in this process, remotely
//! in the server's — so a command means the same whichever way it runs.
//!
//! Through the API, the client authenticates with `private_key_jwt` by the key file and gets
//! a client-credentials token with `keybound:admin` bound to a fresh DPoP key of this process
//! (so a token that leaks is useless without a key that never left memory). The API's
//! resource metadata (RFC 9728) names the OP that issues the token.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use keybound_jose::key::KeyKind;
use keybound_jose::PrivateKey;
use keybound_op::admin::{
    etag, AdminCaller, ClientDoc, IssuerDoc, KeyDoc, LinkDoc, Page, PageRequest, PasskeyDoc,
    Precondition, Put, RegistrationTokenDoc, RegistrationTokenRequest, UserDoc, ADMIN_SCOPE,
};
use keybound_op::{OpError, Provider};
use keybound_rp::{HttpRequest, HttpResponse, ReqwestTransport, Rp, RpConfig};
use keybound_verify::SystemClock;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The admin operations' executor.
pub enum Backend {
    /// this process, on the store
    Local(Box<Provider>),
    /// a server's admin API
    Remote(Box<Remote>),
}

/// A session with a server's admin API.
pub struct Remote {
    rp: Rp,
    dpop: PrivateKey,
    token: String,
    /// `{origin}/admin/v1`
    base: String,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(local)`
fn local(e: OpError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// This machine's user, who makes changes on the database (for the audit record).
fn me() -> AdminCaller {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    AdminCaller::local(&user)
}

/// A path segment, percent-encoded (issuer identifiers are URLs).
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn query(page: &PageRequest) -> String {
    let mut q = Vec::new();
    if let Some(l) = page.limit {
        q.push(format!("limit={l}"));
    }
    if let Some(a) = &page.after {
        q.push(format!("after={}", seg(a)));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

impl Remote {
    /// Connect: discover the OP from the API's resource metadata, and get a DPoP-bound token.
    pub async fn connect(server: &str, key_file: &Path, client_id: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(key_file)
            .with_context(|| format!("reading {}", key_file.display()))?;
        let key = PrivateKey::from_pem(&pem).context("--key: a PEM private key")?;
        let server = server.trim_end_matches('/');
        let transport = Arc::new(ReqwestTransport::new()?);
        let meta_url = format!("{server}{}", keybound_server::admin::RESOURCE_METADATA);
        let r = keybound_rp::Transport::send(transport.as_ref(), HttpRequest::get(&meta_url))
            .await
            .with_context(|| format!("reaching the admin API at {server}"))?;
        if r.status != 200 {
            bail!("{meta_url}: HTTP {} (is the admin API served there? it is on the management listener by default)", r.status);
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&r.body).context("the resource metadata")?;
        let issuer = meta["authorization_servers"][0]
            .as_str()
            .context("the resource metadata names no authorization server")?;
        let base = meta["resource"]
            .as_str()
            .map_or_else(|| format!("{server}/admin/v1"), str::to_owned);
        let rp = Rp::new(
            RpConfig::new(issuer, client_id, "http://127.0.0.1/unused")
                .with_client_key(Arc::new(key)),
            transport,
            Arc::new(SystemClock),
        );
        let dpop = PrivateKey::generate(KeyKind::Es256)?;
        let t = rp
            .client_credentials(&dpop, ADMIN_SCOPE)
            .await
            .with_context(|| format!("a {ADMIN_SCOPE} token from {issuer} for '{client_id}'"))?;
        Ok(Remote {
            rp,
            dpop,
            token: t.access_token,
            base,
        })
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> anyhow::Result<HttpResponse> {
        let mut req = HttpRequest {
            method: method.to_owned(),
            url: format!("{}{path}", self.base),
            headers: Vec::new(),
            body,
        };
        if req.body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        let r = self.rp.send_api(&self.dpop, &self.token, &req).await?;
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        let problem: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        match problem["detail"].as_str() {
            Some(d) => bail!("{d}"),
            None => bail!("{method} {}: HTTP {}", req.url, r.status),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
        if_match: Option<&str>,
    ) -> anyhow::Result<(T, HttpResponse)> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let r = self.send(method, path, body, if_match).await?;
        let t = serde_json::from_slice(&r.body)
            .with_context(|| format!("{method} {path}: an unexpected answer"))?;
        Ok((t, r))
    }

    async fn put<T: DeserializeOwned + Serialize>(
        &self,
        path: &str,
        doc: &T,
        pre: &Precondition,
    ) -> anyhow::Result<Put<T>> {
        let (doc, r) = self
            .json("PUT", path, Some(doc), pre.if_match.as_deref())
            .await?;
        Ok(Put {
            doc,
            created: r.status == 201,
            before: None,
        })
    }
}

const NONE: Option<&()> = None;

impl Backend {
    /// Every page of a list.
    async fn all<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
    where
        F: FnMut(PageRequest) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Page<T>>>,
    {
        let mut out = Vec::new();
        let mut after = None;
        // bounded: a million items at 1000 a page
        for _ in 0..1000 {
            let p = page(PageRequest {
                limit: Some(1000),
                after: after.take(),
            })
            .await?;
            out.extend(p.items);
            match p.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
        bail!("more than a million items")
    }

    /// Every client.
    pub async fn clients(&self) -> anyhow::Result<Vec<ClientDoc>> {
        Self::all(|p| async move {
            match self {
                Backend::Local(op) => op.admin_clients(&p).await.map_err(local),
                Backend::Remote(r) => Ok(r
                    .json("GET", &format!("/clients{}", query(&p)), NONE, None)
                    .await?
                    .0),
            }
        })
        .await
    }

    /// Register or replace a client.
    pub async fn put_client(&self, id: &str, doc: ClientDoc) -> anyhow::Result<Put<ClientDoc>> {
        let pre = Precondition::default();
        match self {
            Backend::Local(op) => op
                .admin_put_client(&me(), id, doc, &pre)
                .await
                .map_err(local),
            Backend::Remote(r) => r.put(&format!("/clients/{}", seg(id)), &doc, &pre).await,
        }
    }

    /// Remove a client.
    pub async fn delete_client(&self, id: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(op) => op
                .admin_delete_client(&me(), id, &Precondition::default())
                .await
                .map(drop)
                .map_err(local),
            Backend::Remote(r) => r
                .send("DELETE", &format!("/clients/{}", seg(id)), None, None)
                .await
                .map(drop),
        }
    }

    /// Every user.
    pub async fn users(&self) -> anyhow::Result<Vec<UserDoc>> {
        Self::all(|p| async move {
            match self {
                Backend::Local(op) => op.admin_users(&p).await.map_err(local),
                Backend::Remote(r) => Ok(r
                    .json("GET", &format!("/users{}", query(&p)), NONE, None)
                    .await?
                    .0),
            }
        })
        .await
    }

    /// Create or replace a user.
    pub async fn put_user(&self, username: &str, doc: UserDoc) -> anyhow::Result<Put<UserDoc>> {
        let pre = Precondition::default();
        match self {
            Backend::Local(op) => op
                .admin_put_user(&me(), username, doc, &pre)
                .await
                .map_err(local),
            Backend::Remote(r) => {
                r.put(&format!("/users/{}", seg(username)), &doc, &pre)
                    .await
            }
        }
    }

    /// Remove a user.
    pub async fn delete_user(&self, username: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(op) => op
                .admin_delete_user(&me(), username, &Precondition::default())
                .await
                .map(drop)
                .map_err(local),
            Backend::Remote(r) => r
                .send("DELETE", &format!("/users/{}", seg(username)), None, None)
                .await
                .map(drop),
        }
    }

    /// Link a subject at a trusted issuer to a user.
    pub async fn link_user(&self, username: &str, link: &LinkDoc) -> anyhow::Result<()> {
        match self {
            Backend::Local(op) => op
                .admin_link_user(&me(), username, link)
                .await
                .map_err(local),
            Backend::Remote(r) => {
                let body = serde_json::to_vec(link)?;
                r.send(
                    "POST",
                    &format!("/users/{}/links", seg(username)),
                    Some(body),
                    None,
                )
                .await
                .map(drop)
            }
        }
    }

    /// A user's passkeys.
    pub async fn passkeys(&self, username: &str) -> anyhow::Result<Vec<PasskeyDoc>> {
        match self {
            Backend::Local(op) => op.admin_passkeys(username).await.map_err(local),
            Backend::Remote(r) => Ok(r
                .json(
                    "GET",
                    &format!("/users/{}/passkeys", seg(username)),
                    NONE,
                    None,
                )
                .await?
                .0),
        }
    }

    /// Remove one of a user's passkeys.
    pub async fn delete_passkey(&self, username: &str, credential_id: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(op) => op
                .admin_delete_passkey(&me(), username, credential_id)
                .await
                .map(drop)
                .map_err(local),
            Backend::Remote(r) => r
                .send(
                    "DELETE",
                    &format!("/users/{}/passkeys/{}", seg(username), seg(credential_id)),
                    None,
                    None,
                )
                .await
                .map(drop),
        }
    }

    /// Every trusted issuer.
    pub async fn issuers(&self) -> anyhow::Result<Vec<IssuerDoc>> {
        Self::all(|p| async move {
            match self {
                Backend::Local(op) => op.admin_issuers(&p).await.map_err(local),
                Backend::Remote(r) => Ok(r
                    .json("GET", &format!("/issuers{}", query(&p)), NONE, None)
                    .await?
                    .0),
            }
        })
        .await
    }

    /// One trusted issuer and its entity tag.
    pub async fn issuer(&self, issuer: &str) -> anyhow::Result<(IssuerDoc, String)> {
        match self {
            Backend::Local(op) => {
                let doc = op.admin_issuer(issuer).await.map_err(local)?;
                let tag = etag(&doc);
                Ok((doc, tag))
            }
            Backend::Remote(r) => {
                let (doc, resp) = r
                    .json("GET", &format!("/issuers/{}", seg(issuer)), NONE, None)
                    .await?;
                let tag = resp.header("etag").unwrap_or("").to_owned();
                Ok((doc, tag))
            }
        }
    }

    /// Trust an issuer or change its settings (under `pre`).
    pub async fn put_issuer(
        &self,
        issuer: &str,
        doc: IssuerDoc,
        pre: &Precondition,
    ) -> anyhow::Result<Put<IssuerDoc>> {
        match self {
            Backend::Local(op) => op
                .admin_put_issuer(&me(), issuer, doc, pre)
                .await
                .map_err(local),
            Backend::Remote(r) => r.put(&format!("/issuers/{}", seg(issuer)), &doc, pre).await,
        }
    }

    /// Forget an issuer.
    pub async fn delete_issuer(&self, issuer: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(op) => op
                .admin_delete_issuer(&me(), issuer, &Precondition::default())
                .await
                .map(drop)
                .map_err(local),
            Backend::Remote(r) => r
                .send("DELETE", &format!("/issuers/{}", seg(issuer)), None, None)
                .await
                .map(drop),
        }
    }

    /// The signing keys.
    pub async fn keys(&self) -> anyhow::Result<Vec<KeyDoc>> {
        match self {
            Backend::Local(op) => op.admin_keys().await.map_err(local),
            Backend::Remote(r) => Ok(r.json("GET", "/keys", NONE, None).await?.0),
        }
    }

    /// Rotate the signing keys.
    pub async fn rotate_keys(&self) -> anyhow::Result<Vec<KeyDoc>> {
        match self {
            Backend::Local(op) => op.admin_rotate_keys(&me()).await.map_err(local),
            Backend::Remote(r) => Ok(r.json("POST", "/keys/rotate", NONE, None).await?.0),
        }
    }

    /// An initial access token.
    pub async fn registration_token(
        &self,
        req: &RegistrationTokenRequest,
    ) -> anyhow::Result<RegistrationTokenDoc> {
        match self {
            Backend::Local(op) => op.admin_registration_token(&me(), req).await.map_err(local),
            Backend::Remote(r) => Ok(r
                .json("POST", "/registration-tokens", Some(req), None)
                .await?
                .0),
        }
    }
}
