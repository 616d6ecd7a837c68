//! Client authentication at the token, revocation and introspection endpoints: `none`
//! (public clients, PKCE does the work), `client_secret_basic`, `client_secret_post` and
//! `private_key_jwt` (RFC 7523 with `jti` replay protection). A client must use exactly the
//! method it registered, and exactly one method per request.

use base64::Engine as _;
use keybound_jose::{Algorithm, Jws};
use keybound_store::{Client, ClientAuthMethod};
use serde_json::Value;

use crate::refusal::{AssertionDefect, ClientAuthRefusal as Why};
use crate::{Form, OpError, Provider};

/// RFC 7523 client assertion type.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn basic(header: &str) -> Option<Result<(String, String), OpError>> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bad = || OpError::from(Why::MalformedBasic);
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(i, p)| (form_decode(i), form_decode(p)))
            })
            .ok_or_else(bad),
    )
}

impl Provider {
    /// Authenticate the client of a token-endpoint-style request from its `Authorization`
    /// header and form.
    pub async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        form: &Form,
    ) -> Result<Client, OpError> {
        let basic = authorization.and_then(basic).transpose()?;
        let assertion = form.get("client_assertion");
        let post_secret = form.get("client_secret");
        let used = usize::from(basic.is_some())
            + usize::from(assertion.is_some())
            + usize::from(post_secret.is_some());
        if used > 1 {
            return Err(Why::SeveralMethods.into());
        }
        let form_id = form.get("client_id");
        if let Some((id, secret)) = basic {
            if form_id.is_some_and(|f| f != id) {
                return Err(Why::BasicIdMismatch.into());
            }
            return self
                .secret_client(&id, &secret, ClientAuthMethod::ClientSecretBasic)
                .await;
        }
        if let Some(secret) = post_secret {
            let id = form_id.ok_or(Why::SecretWithoutId)?;
            return self
                .secret_client(id, secret, ClientAuthMethod::ClientSecretPost)
                .await;
        }
        if let Some(assertion) = assertion {
            if form.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
                return Err(Why::AssertionType.into());
            }
            return self.assertion_client(assertion, form_id).await;
        }
        let id = form_id.ok_or(Why::NoCredentials)?;
        let client = self.known_client(id).await?;
        if client.auth_method != ClientAuthMethod::None {
            return Err(Why::MustAuthenticate {
                client: id.to_owned(),
                method: client.auth_method.as_str(),
            }
            .into());
        }
        Ok(client)
    }

    async fn known_client(&self, id: &str) -> Result<Client, OpError> {
        self.registered_client(id)
            .await?
            .ok_or_else(|| Why::UnknownClient(id.to_owned()).into())
    }

    /// A registered client, from the cache if read less than `client_cache_ttl` ago. Unknown
    /// ids are never cached (so nobody can fill the cache), and a client is always re-read once
    /// its entry is older than the TTL.
    pub(crate) async fn registered_client(&self, id: &str) -> Result<Option<Client>, OpError> {
        let now = self.now();
        let ttl = self.config.client_cache_ttl;
        if ttl > 0 {
            if let Some(c) = self.clients.get(id, now, ttl) {
                return Ok(Some(c));
            }
        }
        let client = self.store.client(id).await?;
        if let (Some(c), true) = (&client, ttl > 0) {
            self.clients.put(c, now);
        }
        Ok(client)
    }

    async fn secret_client(
        &self,
        id: &str,
        secret: &str,
        method: ClientAuthMethod,
    ) -> Result<Client, OpError> {
        let client = self.known_client(id).await?;
        if client.auth_method != method {
            return Err(Why::WrongMethod {
                client: id.to_owned(),
                registered: client.auth_method.as_str(),
                used: method.as_str(),
            }
            .into());
        }
        let Some(phc) = client.secret_hash.as_deref() else {
            return Err(Why::Failed.into());
        };
        // a secret verified moments ago (same registration, on any node) is recognised
        // without argon2
        let now = self.now();
        if self.recognised_secret(id, phc, secret, now).await? {
            return Ok(client);
        }
        // RFC 6749 §2.3.1: guessing is throttled per client id, before any hashing
        let key = format!("client\0{id}");
        let attempt = self
            .begin_attempt(
                (key.as_str(), self.config.throttle.free_failures),
                &[],
                "client secrets",
            )
            .await?;
        // attempts at one client take turns: the ones queued behind the first verification of
        // this secret find it recognised now, instead of each running argon2 in turn (a
        // confidential client's first burst of 32 requests waited 1.6 s for 32 runs)
        if self.recognised_secret(id, phc, secret, now).await? {
            attempt.succeeded().await?;
            return Ok(client);
        }
        if !self.hashes.verify(phc, secret).await? {
            attempt.failed().await?;
            return Err(Why::Failed.into());
        }
        attempt.succeeded().await?;
        let mac = self.store.secret_mac().of(id, phc, secret);
        self.store
            .put_verified_secret(id, &mac, now + SECRET_TTL)
            .await?;
        Ok(client)
    }

    /// Whether `secret` was verified against `phc` for client `id` in the last
    /// [`SECRET_TTL`] seconds ([`keybound_store::CounterStore`]: shared by every node on
    /// PostgreSQL). Client secrets are high-entropy values the OP generated or an operator set;
    /// what the store keeps is an HMAC under a key derived from the key-encryption key.
    async fn recognised_secret(
        &self,
        id: &str,
        phc: &str,
        secret: &str,
        now: u64,
    ) -> Result<bool, OpError> {
        Ok(match self.store.verified_secret(id, now).await? {
            Some(mac) => keybound_jose::ct_eq(&mac, &self.store.secret_mac().of(id, phc, secret)),
            None => false,
        })
    }

    async fn assertion_client(
        &self,
        assertion: &str,
        form_id: Option<&str>,
    ) -> Result<Client, OpError> {
        let bad = |d: AssertionDefect| OpError::from(Why::Assertion(d));
        let malformed = |e: keybound_jose::Error| bad(AssertionDefect::Malformed(e.to_string()));
        let jws = Jws::parse(assertion).map_err(malformed)?;
        let claims: Value = jws.payload_json().map_err(malformed)?;
        let s = |n: &str| claims.get(n).and_then(Value::as_str);
        let iss = s("iss").ok_or_else(|| bad(AssertionDefect::IssRequired))?;
        if s("sub") != Some(iss) {
            return Err(bad(AssertionDefect::SubNotIss));
        }
        if form_id.is_some_and(|f| f != iss) {
            return Err(Why::AssertionIdMismatch.into());
        }
        let client = self.known_client(iss).await?;
        if client.auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err(Why::WrongMethod {
                client: iss.to_owned(),
                registered: client.auth_method.as_str(),
                used: ClientAuthMethod::PrivateKeyJwt.as_str(),
            }
            .into());
        }
        let keys = client.jwks.clone().unwrap_or_default();
        if keys.verify(&jws, &Algorithm::ALL).is_err() {
            return Err(bad(AssertionDefect::Signature));
        }
        // rfc7523bis: the audience is the issuer; the token endpoint URL only for legacy clients
        let aud_ok = |a: &str| {
            a == self.config.issuer
                || (self.config.legacy_assertion_audience && a == self.config.endpoints.token)
        };
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => aud_ok(a),
            Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).any(aud_ok),
            _ => false,
        };
        if !aud_ok {
            return Err(bad(AssertionDefect::Audience(self.config.issuer.clone())));
        }
        let now = self.now();
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(AssertionDefect::ExpRequired))?;
        if now >= exp.saturating_add(30) {
            return Err(bad(AssertionDefect::Expired));
        }
        let iat = claims.get("iat").and_then(Value::as_u64);
        if iat.is_some_and(|iat| iat > now + 30) {
            return Err(bad(AssertionDefect::IatInFuture));
        }
        // a bounded lifetime: an assertion valid for years is a long-lived secret
        let max = self.config.client_assertion_max_lifetime;
        if exp > iat.unwrap_or(now).saturating_add(max) {
            return Err(bad(AssertionDefect::LifetimeTooLong(max)));
        }
        let jti = s("jti")
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| bad(AssertionDefect::JtiRequired))?;
        let digest = keybound_jose::sha256(format!("client-assertion\0{iss}\0{jti}").as_bytes());
        if !self
            .store
            .check_and_insert(&digest, exp.saturating_add(60), now)
            .await?
        {
            return Err(bad(AssertionDefect::Replayed));
        }
        Ok(client)
    }
}

/// How long a verified client secret is recognised without argon2: a confidential client's
/// every token request would otherwise cost an argon2 run (19 MiB, ~20 ms of CPU: measured as
/// the whole cost of a token exchange).
const SECRET_TTL: u64 = 300;

/// Registered clients read recently, by `client_id`, with the time they were read: the token
/// endpoint needs the client on every request, and with SQLite each read is a round-trip to a
/// connection thread (docs/performance.md).
#[derive(Debug, Default)]
pub(crate) struct ClientCache(std::sync::RwLock<std::collections::HashMap<String, (Client, u64)>>);

impl ClientCache {
    fn get(&self, id: &str, now: u64, ttl: u64) -> Option<Client> {
        let g = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get(id)
            .filter(|(_, at)| now < at.saturating_add(ttl) && now >= *at)
            .map(|(c, _)| c.clone())
    }

    fn put(&self, client: &Client, now: u64) {
        let mut g = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.insert(client.client_id.clone(), (client.clone(), now));
    }

    /// Drop a client changed or removed through this provider (other nodes re-read it
    /// within `client_cache_ttl`).
    pub(crate) fn forget(&self, id: &str) {
        let mut g = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.remove(id);
    }
}
