//! RFC 9126 pushed authorization requests (PAR).
//!
//! The client sends its authorization request to the PAR endpoint, authenticated as at the
//! token endpoint, and gets a `request_uri` (`urn:ietf:params:oauth:request_uri:…`, 256 bits,
//! stored hashed) to send the browser with instead of the parameters. The request is validated
//! when pushed — every refusal the authorization endpoint would give, as a JSON error
//! (RFC 9126 §2.3) — and again when used, by the same function.
//!
//! **Binding.** A DPoP proof at the PAR endpoint binds the authorization code to its key
//! exactly as `dpop_jkt` does (RFC 9449 §10.1): the proof is checked in full, and its
//! thumbprint becomes the request's `dpop_jkt`; a `dpop_jkt` that names another key is refused.
//! Key Binding's parameters (`bound_key`, `dpop_jkt`) work through PAR unchanged.
//!
//! **One use.** The authorization endpoint takes the pushed request out of the store at its
//! first use (RFC 9126 §7.3: one statement, so two nodes cannot both use it), only for the
//! client that pushed it, before it expires (`par_ttl`, 60 s). From then on the sign-in and
//! consent forms carry the parameters the way they carry any request, with a server MAC
//! (`kb_par`, keyed by the key-encryption key and the browser's form secret) that tells the
//! endpoint they came from a pushed request — so a client required to push cannot skip it by
//! posting parameters itself.

use keybound_proto::wire::AuthorizationRequest;
use keybound_store::{PushedRequest, TokenHash};

use crate::proof::ProofRequest;
use crate::refusal::{AuthorizeRefusal as Why, RequestRefusal};
use crate::{FormRequest, OpError, Provider};

/// What every `request_uri` of this server starts with (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Parameters that authenticate the client at the PAR endpoint: not part of the request.
const CREDENTIALS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// The PAR endpoint's answer (RFC 9126 §2.2, status 201).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    /// the reference to send in the authorization request
    pub request_uri: String,
    /// seconds until it expires
    pub expires_in: u64,
    /// `DPoP-Nonce` for the response, when nonces are in use (a header, not in the body)
    #[serde(skip)]
    pub dpop_nonce: Option<String>,
}

/// An authorization request from its parameters (query or form), each at most once
/// (RFC 6749 §3.1) but `resource`, which RFC 8707 §2 lets repeat.
pub fn authorization_request(params: &[(String, String)]) -> Result<AuthorizationRequest, OpError> {
    let (resources, single): (Vec<_>, Vec<_>) =
        params.iter().partition(|(k, _)| k.as_str() == "resource");
    for (i, (k, _)) in single.iter().enumerate() {
        if single[..i].iter().any(|(k2, _)| k2 == k) {
            return Err(RequestRefusal::DuplicateParameter(k.clone()).into());
        }
    }
    let encoded = serde_urlencoded::to_string(&single)
        .map_err(|e| OpError::from(Why::Malformed(e.to_string())))?;
    let mut req: AuthorizationRequest = serde_urlencoded::from_str(&encoded)
        .map_err(|e| OpError::from(Why::Malformed(e.to_string())))?;
    req.resources = resources
        .into_iter()
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .collect();
    Ok(req)
}

impl Provider {
    /// `POST /par`: authenticate the client, check the DPoP proof, validate the request, store
    /// it, answer its `request_uri`.
    pub async fn push_authorization(
        &self,
        facts: FormRequest<'_>,
        pairs: Vec<(String, String)>,
    ) -> Result<Pushed, OpError> {
        let client = self
            .authenticate_client(facts.authorization, facts.form)
            .await?;
        self.fapi2_client_authentication(&client)?;
        let params: Vec<(String, String)> = pairs
            .into_iter()
            .filter(|(k, _)| !CREDENTIALS.contains(&k.as_str()))
            .collect();
        if params.iter().any(|(k, _)| k == "request_uri") {
            return Err(Why::RequestUriPushed.into());
        }
        let mut params = params;
        match params.iter().find(|(k, _)| k == "client_id") {
            Some((_, id)) if *id != client.client_id => {
                return Err(Why::PushedClientId {
                    pushed: id.clone(),
                    authenticated: client.client_id.clone(),
                }
                .into())
            }
            Some(_) => {}
            None => params.push(("client_id".into(), client.client_id.clone())),
        }
        // RFC 9126 §3: a signed request object inside the pushed request (its client_id, when
        // it names one, must be the outer one: the authenticated client's)
        let mut params = self.open_request_object(params).await?;
        // RFC 9449 §10.1: a proof here binds the code to its key, as dpop_jkt does
        let proof = self
            .verify_proof(ProofRequest::post(
                facts.dpop,
                &self.config.endpoints.par,
                &client,
            ))
            .await?;
        let named = params
            .iter()
            .find(|(k, _)| k == "dpop_jkt")
            .map(|(_, v)| v.as_str());
        if let Some(jkt) = crate::proof::dpop_jkt(named, proof.as_ref())? {
            if named.is_none() {
                params.push(("dpop_jkt".into(), jkt));
            }
        }
        // every refusal the authorization endpoint would give, now, as JSON (RFC 9126 §2.3)
        let req = authorization_request(&params)?;
        self.validate_pushed_authorization(&req)
            .await
            .map_err(crate::AuthorizeError::into_error)?;
        let request_uri = format!("{REQUEST_URI_PREFIX}{}", self.random_token());
        let record = PushedRequest {
            client_id: client.client_id.clone(),
            params,
            expires_at: self.now() + self.config.par_ttl,
        };
        self.store
            .put_pushed(&TokenHash::of(&request_uri), &record)
            .await?;
        Ok(Pushed {
            request_uri,
            expires_in: self.config.par_ttl,
            dpop_nonce: self.next_nonce(),
        })
    }

    /// The parameters of the pushed request `request_uri`, taken out of the store (its one
    /// use), for `client_id`. A `request_uri` that is not this server's is
    /// `request_uri_not_supported`; an unknown, used or expired one, or one another client
    /// pushed, `invalid_request_uri`.
    pub async fn take_pushed_request(
        &self,
        request_uri: &str,
        client_id: &str,
    ) -> Result<Vec<(String, String)>, OpError> {
        if !request_uri.starts_with(REQUEST_URI_PREFIX) {
            return Err(Why::RequestUri.into());
        }
        let pushed = self
            .store
            .take_pushed(&TokenHash::of(request_uri), self.now())
            .await?
            .ok_or(Why::PushedRequestUnusable)?;
        if pushed.client_id != client_id {
            return Err(Why::PushedByAnotherClient(client_id.to_owned()).into());
        }
        Ok(pushed.params)
    }

    /// The MAC that marks an authorization request's parameters (by their fingerprint) as
    /// taken from a pushed request, for the browser with `form_secret`.
    pub fn pushed_mark(&self, fingerprint: &str, form_secret: &str) -> String {
        keybound_jose::b64::encode(self.store.secret_mac().tag(&[
            "pushed authorization request",
            fingerprint,
            form_secret,
        ]))
    }

    /// Whether `mark` is [`Provider::pushed_mark`] of these parameters for this browser.
    pub fn is_pushed_mark(&self, mark: &str, fingerprint: &str, form_secret: &str) -> bool {
        keybound_jose::ct_eq(
            mark.as_bytes(),
            self.pushed_mark(fingerprint, form_secret).as_bytes(),
        )
    }
}
