//! The authorization endpoint's decisions: validate the request, decide whether the End-User
//! must log in or consent, and issue the code.
//!
//! Errors come in two kinds, because where they go is a security decision: while the client
//! or `redirect_uri` is not established, the End-User sees an error page and nothing is
//! redirected ([`AuthorizeError::Page`]); afterwards refusals go back to the registered redirect
//! URI with `state` and `iss` ([`AuthorizeError::Redirect`]). A store failure is never a
//! refusal: it is a page with the provider's error (503 while the database is away), wherever
//! it happens.

use crate::events::{EventType, SecurityEvent};
use std::collections::BTreeSet;

use keybound_proto::keybinding::RequestedBinding;
use keybound_proto::wire::{AuthorizationRequest, ErrorResponse, ResponseType};
use keybound_store::{
    AuthorizationCode, BrowserSession, Client, ClientAuthMethod, Consent, TokenHash,
};

use crate::passkey::Strength;
use crate::refusal::{AuthorizeRefusal as Why, RequestRefusal};
use crate::{Endpoint, OpError, Provider, SUPPORTED_SCOPES};

/// `prompt` values (OIDC Core 3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: no interaction allowed
    pub none: bool,
    /// `login`: re-authenticate
    pub login: bool,
    /// `consent`: ask again
    pub consent: bool,
}

/// A request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedAuthorization {
    /// the client
    pub client: Client,
    /// the registered redirect URI it named
    pub redirect_uri: String,
    /// what the authorization endpoint returns
    pub response_type: ResponseType,
    /// OIDC Token Bound Authentication: `tbh` of the referred Token Binding ID verified on
    /// the user agent's connection (set by the server; never from a request parameter)
    pub tbh: Option<String>,
    /// how the response travels
    pub response_mode: ResponseMode,
    /// granted scopes (unknown ones dropped)
    pub scopes: Vec<String>,
    /// `state`
    pub state: Option<String>,
    /// `nonce`
    pub nonce: Option<String>,
    /// PKCE S256 challenge
    pub code_challenge: Option<String>,
    /// `prompt`
    pub prompt: Prompt,
    /// `max_age`
    pub max_age: Option<u64>,
    /// `login_hint`
    pub login_hint: Option<String>,
    /// the `acr` asked for (`acr_values`, the `claims` parameter, the client's
    /// `default_acr_values`)
    pub acr: RequestedAcr,
    /// Key Binding / DPoP key binding requested
    pub binding: RequestedBinding,
    /// RFC 8707 resources the request names (registered for the client)
    pub resources: Vec<String>,
}

/// The `acr` an authorization request asks for: OIDC Core 5.5.1.1's essential `acr` from the
/// `claims` parameter if there is one, else `acr_values` (3.1.2.1), else the client's
/// `default_acr_values` (OIDC Dynamic Client Registration §2). Every value this OP knows is
/// enforced: the End-User signs in again, more strongly, until the sign-in satisfies the
/// weakest of them ([`crate::passkey::weakest_of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedAcr {
    /// the values, in order of preference
    pub values: Vec<String>,
    /// asked as an essential claim
    pub essential: bool,
}

impl RequestedAcr {
    /// From the request's `acr_values` and `claims` and the client's defaults.
    pub fn of_request(
        acr_values: Option<&str>,
        claims: Option<&str>,
        client_defaults: &[String],
    ) -> Result<Self, Why> {
        if let Some(claims) = claims {
            let v: serde_json::Value =
                serde_json::from_str(claims).map_err(|e| Why::ClaimsParameter(e.to_string()))?;
            if !v.is_object() {
                return Err(Why::ClaimsParameter("not an object".into()));
            }
            let acr = &v["id_token"]["acr"];
            let mut values: Vec<String> = match (&acr["values"], &acr["value"]) {
                (serde_json::Value::Array(a), _) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                (_, serde_json::Value::String(one)) => vec![one.clone()],
                _ => Vec::new(),
            };
            values.dedup();
            let essential = acr["essential"].as_bool().unwrap_or(false);
            if essential && !values.is_empty() && crate::passkey::weakest_of(&values).is_none() {
                return Err(Why::UnknownEssentialAcr(values));
            }
            if !values.is_empty() {
                return Ok(RequestedAcr { values, essential });
            }
        }
        let values: Vec<String> = match acr_values {
            Some(a) => a.split_whitespace().map(str::to_owned).collect(),
            None => client_defaults.to_vec(),
        };
        Ok(RequestedAcr {
            values,
            essential: false,
        })
    }
}

impl ValidatedAuthorization {
    /// The scope string.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Where an authorization error goes.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Show an error page; never redirect: the client or redirect URI is not established
    /// (unknown client, unregistered redirect URI), or the provider failed (a store failure
    /// answers 503 with `Retry-After`, never a refusal).
    Page(OpError),
    /// Redirect to the client with an error.
    Redirect {
        /// the registered redirect URI
        redirect_uri: String,
        /// how the response travels (the request's `response_mode`)
        mode: ResponseMode,
        /// the request's `state`
        state: Option<String>,
        /// this provider's issuer (RFC 9207)
        iss: String,
        /// why
        reason: Why,
    },
}

impl From<OpError> for AuthorizeError {
    fn from(e: OpError) -> Self {
        AuthorizeError::Page(e)
    }
}

impl From<keybound_store::StoreError> for AuthorizeError {
    fn from(e: keybound_store::StoreError) -> Self {
        AuthorizeError::Page(e.into())
    }
}

impl AuthorizeError {
    /// The error as the provider's one mapping puts it on the wire (at the End-User's pages).
    pub fn wire(&self) -> crate::WireError {
        match self {
            AuthorizeError::Page(e) => e.wire(Endpoint::Page),
            AuthorizeError::Redirect { reason, .. } => {
                OpError::from(reason.clone()).wire(Endpoint::Page)
            }
        }
    }

    /// The OAuth error code it is answered with.
    pub fn code(&self) -> Option<keybound_proto::wire::ErrorCode> {
        self.wire().code
    }

    /// The provider's error, for the server's one response form.
    pub fn into_error(self) -> OpError {
        match self {
            AuthorizeError::Page(e) => e,
            AuthorizeError::Redirect { reason, .. } => reason.into(),
        }
    }

    /// The error response for the client (RFC 6749 §4.1.2.1 with RFC 9207 `iss`), for
    /// [`AuthorizeError::Redirect`].
    pub fn error_response(&self) -> Option<ErrorResponse> {
        let AuthorizeError::Redirect { state, iss, .. } = self else {
            return None;
        };
        let w = self.wire();
        Some(ErrorResponse {
            error: w.code?,
            error_description: Some(w.description),
            error_uri: None,
            state: state.clone(),
            iss: Some(iss.clone()),
        })
    }

    /// The error response for the client, for [`AuthorizeError::Redirect`].
    pub fn response(&self) -> Option<AuthorizationResponse> {
        match self {
            AuthorizeError::Page(_) => None,
            AuthorizeError::Redirect {
                redirect_uri, mode, ..
            } => {
                let error = self.error_response()?;
                let mut params = vec![("error".to_owned(), error.error.as_str().to_owned())];
                if let Some(d) = &error.error_description {
                    params.push(("error_description".into(), d.clone()));
                }
                if let Some(s) = &error.state {
                    params.push(("state".into(), s.clone()));
                }
                if let Some(i) = &error.iss {
                    params.push(("iss".into(), i.clone()));
                }
                Some(AuthorizationResponse {
                    redirect_uri: redirect_uri.clone(),
                    mode: *mode,
                    params,
                })
            }
        }
    }

    /// The URL to redirect to, for a [`AuthorizeError::Redirect`] by query or fragment.
    pub fn redirect_url(&self) -> Option<String> {
        self.response().and_then(|r| r.url())
    }
}

/// How an authorization response travels to the client (OAuth 2.0 Multiple Response Type
/// Encoding Practices §2.1, OAuth 2.0 Form Post Response Mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResponseMode {
    /// in the redirect URI's query (the code flow's default)
    #[default]
    Query,
    /// in the redirect URI's fragment
    Fragment,
    /// as an HTML form the user agent posts to the redirect URI
    FormPost,
}

impl ResponseMode {
    /// From the `response_mode` parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(ResponseMode::Query),
            "fragment" => Some(ResponseMode::Fragment),
            "form_post" => Some(ResponseMode::FormPost),
            _ => None,
        }
    }
}

/// An authorization response (success or error) for the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// the registered redirect URI
    pub redirect_uri: String,
    /// how it travels
    pub mode: ResponseMode,
    /// its parameters, in order
    pub params: Vec<(String, String)>,
}

impl AuthorizationResponse {
    /// The URL to redirect the user agent to; `None` for `form_post` (a form is posted).
    pub fn url(&self) -> Option<String> {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            ser.append_pair(k, v);
        }
        let encoded = ser.finish();
        match self.mode {
            ResponseMode::Query => {
                let sep = if self.redirect_uri.contains('?') {
                    '&'
                } else {
                    '?'
                };
                Some(format!("{}{sep}{encoded}", self.redirect_uri))
            }
            ResponseMode::Fragment => Some(format!("{}#{encoded}", self.redirect_uri)),
            ResponseMode::FormPost => None,
        }
    }
}

/// What the browser must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// show the login page: the End-User must sign in, at least this strongly
    Login(LoginPrompt),
    /// show the consent page
    Consent(ConsentPrompt),
    /// issue the code and redirect
    Issue,
}

/// What the login page must ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPrompt {
    /// the weakest sign-in that will do
    pub need: Strength,
    /// the End-User already signed in, and how strongly (a stronger sign-in, or a passkey
    /// after their password, steps them up)
    pub current: Option<(String, Strength)>,
}

/// What the consent page must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPrompt {
    /// client display name
    pub client_name: String,
    /// scopes asked for
    pub scopes: Vec<String>,
    /// the key to bind (its thumbprint), for `bound_key` requests
    pub bound_jkt: Option<String>,
}

impl Provider {
    fn redirect_error(
        &self,
        v_redirect: &str,
        mode: ResponseMode,
        state: Option<&String>,
        reason: Why,
    ) -> AuthorizeError {
        AuthorizeError::Redirect {
            redirect_uri: v_redirect.to_owned(),
            mode,
            state: state.cloned(),
            iss: self.config.issuer.clone(),
            reason,
        }
    }

    /// Validate an authorization request sent by the browser itself.
    pub async fn validate_authorization(
        &self,
        req: &AuthorizationRequest,
    ) -> Result<ValidatedAuthorization, AuthorizeError> {
        self.validate(req, false).await
    }

    /// Validate an authorization request that was pushed (RFC 9126): at the PAR endpoint, and
    /// at the authorization endpoint once taken from the store (or carried by the OP's own
    /// forms with its mark).
    pub async fn validate_pushed_authorization(
        &self,
        req: &AuthorizationRequest,
    ) -> Result<ValidatedAuthorization, AuthorizeError> {
        self.validate(req, true).await
    }

    async fn validate(
        &self,
        req: &AuthorizationRequest,
        pushed: bool,
    ) -> Result<ValidatedAuthorization, AuthorizeError> {
        let page = |r: Why| AuthorizeError::Page(r.into());
        if req.client_id.is_empty() {
            return Err(page(Why::NoClientId));
        }
        // a store failure here is the provider's (503), never "unknown client"
        let client = self
            .registered_client(&req.client_id)
            .await?
            .ok_or_else(|| page(Why::UnknownClient(req.client_id.clone())))?;
        let redirect_uri = req
            .redirect_uri
            .clone()
            .ok_or_else(|| page(Why::NoRedirectUri))?;
        if !client.redirect_uris.contains(&redirect_uri) {
            return Err(page(Why::UnregisteredRedirectUri {
                uri: redirect_uri,
                client: client.client_id.clone(),
            }));
        }
        let state = req.state.as_ref();
        // the response type and mode first, so every later error travels the way the client
        // asked (fragment by default for responses with tokens)
        let response_type = ResponseType::parse(&req.response_type);
        let default_mode = match response_type {
            Some(t) if t.front_channel_tokens() => ResponseMode::Fragment,
            _ => ResponseMode::Query,
        };
        let mode = match req.response_mode.as_deref() {
            None => default_mode,
            Some(m) => ResponseMode::parse(m).ok_or_else(|| {
                self.redirect_error(
                    &redirect_uri,
                    default_mode,
                    state,
                    Why::ResponseMode(m.to_owned()),
                )
            })?,
        };
        let err = |r: Why| self.redirect_error(&redirect_uri, mode, state, r);
        // OIDC Core §6: request objects are not supported; say so rather than ignore them
        if req.request.is_some() {
            return Err(err(Why::RequestObject));
        }
        if req.request_uri.is_some() {
            return Err(err(Why::RequestUri));
        }
        // FAPI 2.0 Security Profile §5.3.2.2: pushed, code, PKCE
        self.fapi2_authorization(
            &client,
            pushed,
            ResponseType::parse(&req.response_type) == Some(ResponseType::CODE),
            req.code_challenge.is_some(),
        )
        .map_err(|r| err(Why::Fapi2(r)))?;
        // RFC 9126 §5–6: a client (or every client) that must push
        if !pushed && (client.require_par || self.config.require_par) {
            return Err(err(Why::PushRequired(client.client_id.clone())));
        }
        let Some(response_type) = response_type else {
            return Err(err(Why::UnsupportedResponseType(req.response_type.clone())));
        };
        if !client
            .response_types
            .iter()
            .any(|r| r == response_type.as_str())
        {
            return Err(err(Why::ResponseTypeNotRegistered {
                client: client.client_id.clone(),
                response_type: response_type.as_str(),
            }));
        }
        if response_type.front_channel_tokens() {
            // OIDC Core 3.2.2.1: tokens go only to an https redirect URI that is not localhost,
            // checked again here for clients registered before the rule; never redirected to
            if !url::Url::parse(&redirect_uri)
                .is_ok_and(|u| crate::register::token_safe_redirect(&u))
            {
                return Err(AuthorizeError::Page(
                    Why::TokenUnsafeRedirectUri(redirect_uri.clone()).into(),
                ));
            }
            // Multiple Response Type Encoding §2.1: tokens never travel in the query
            if mode == ResponseMode::Query {
                return Err(err(Why::QueryWithTokens));
            }
            // OIDC Core 3.2.2.1, 3.3.2.11: the nonce is required
            if req.nonce.as_deref().is_none_or(str::is_empty) {
                return Err(err(Why::NonceRequired));
            }
            // Key Binding ID1 §1.4: never with the implicit or hybrid flows
            if req.scope.split(' ').any(|s| s == "bound_key") {
                return Err(err(Why::BoundKeyFrontChannel));
            }
        }
        if !response_type.code && req.dpop_jkt.is_some() {
            return Err(err(Why::DpopJktWithoutCode));
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in req.scope.split(' ').filter(|s| !s.is_empty()) {
            if SUPPORTED_SCOPES.contains(&s) && !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(err(RequestRefusal::OpenidScopeRequired.into()));
        }
        let binding = req
            .requested_binding()
            .map_err(|e| err(RequestRefusal::Binding(e).into()))?;
        // RFC 8707 §2: each resource an absolute URI the client registered (invalid_target)
        let resources = crate::grant::audience(&client, &req.resources, None)
            .map_err(|e| err(Why::Target(e)))?
            .unwrap_or_default();
        match (
            req.code_challenge.as_deref(),
            req.code_challenge_method.as_deref(),
        ) {
            (Some(_), Some("S256")) => {}
            (Some(_), m) => return Err(err(Why::ChallengeMethod(m.map(str::to_owned)))),
            (None, Some(_)) => return Err(err(Why::MethodWithoutChallenge)),
            (None, None) if client.auth_method == ClientAuthMethod::None && response_type.code => {
                return Err(err(Why::PkceRequired))
            }
            (None, None) => {}
        }
        if let Some(ch) = &req.code_challenge {
            if ch.len() != 43 || keybound_jose::b64::decode(ch).is_err() {
                return Err(err(Why::ChallengeShape));
            }
        }
        let mut prompt = Prompt::default();
        for p in req
            .prompt
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|p| !p.is_empty())
        {
            match p {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                other => return Err(err(Why::UnknownPrompt(other.to_owned()))),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(err(Why::PromptNoneCombined));
        }
        let acr = RequestedAcr::of_request(
            req.acr_values.as_deref(),
            req.claims.as_deref(),
            &client.default_acr_values,
        )
        .map_err(err)?;
        Ok(ValidatedAuthorization {
            client,
            response_type,
            tbh: None,
            response_mode: mode,
            redirect_uri: redirect_uri.clone(),
            scopes,
            state: req.state.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            prompt,
            max_age: req.max_age,
            login_hint: req.login_hint.clone(),
            acr,
            binding,
            resources,
        })
    }

    /// Decide the next step for a validated request. `fresh_login` is true right after the
    /// End-User authenticated in this very interaction.
    pub async fn next_interaction(
        &self,
        v: &ValidatedAuthorization,
        session: Option<&BrowserSession>,
        fresh_login: bool,
        consented_now: bool,
    ) -> Result<Interaction, AuthorizeError> {
        let err =
            |r: Why| self.redirect_error(&v.redirect_uri, v.response_mode, v.state.as_ref(), r);
        let now = self.now();
        let from_request = crate::passkey::weakest_of(&v.acr.values).unwrap_or(Strength::Password);
        let Some(session) = session else {
            return if v.prompt.none {
                Err(err(Why::NotSignedIn))
            } else {
                Ok(Interaction::Login(LoginPrompt {
                    need: from_request,
                    current: None,
                }))
            };
        };
        let have = Strength::of_amr(&session.amr);
        let login = |need: Strength| {
            Interaction::Login(LoginPrompt {
                need,
                current: Some((session.sub.clone(), have)),
            })
        };
        let too_old = v
            .max_age
            .is_some_and(|m| now.saturating_sub(session.auth_time) > m);
        if (v.prompt.login || too_old) && !fresh_login {
            return if v.prompt.none {
                Err(err(Why::AuthenticationTooOld))
            } else {
                Ok(login(from_request))
            };
        }
        let need = from_request.max(self.account_requires(&session.sub).await?);
        if have < need {
            return if v.prompt.none {
                Err(err(Why::SignInTooWeak {
                    have: have.acr(),
                    need: need.acr(),
                }))
            } else {
                Ok(login(need))
            };
        }
        if consented_now {
            return Ok(Interaction::Issue);
        }
        // a store failure is the provider's (503 page), never a refusal to the client
        let consent = self
            .store
            .consent(&session.sub, &v.client.client_id)
            .await?;
        let bound_jkt = match &v.binding {
            RequestedBinding::BoundIdToken(j) => Some(j),
            _ => None,
        };
        let covered = consent.as_ref().is_some_and(|c| {
            v.scopes.iter().all(|s| c.scopes.contains(s))
                && bound_jkt.is_none_or(|j| c.bound_jkts.contains(j))
        });
        if covered && !v.prompt.consent {
            return Ok(Interaction::Issue);
        }
        if v.prompt.none {
            return Err(err(Why::ConsentRequired));
        }
        Ok(Interaction::Consent(ConsentPrompt {
            client_name: v.client.name.clone(),
            scopes: v.scopes.clone(),
            bound_jkt: bound_jkt.map(ToString::to_string),
        }))
    }

    /// The sign-in the End-User's account demands: a password and a passkey once the account
    /// requires a passkey (`keybound admin user add --require-passkey`), else a password.
    pub async fn account_requires(&self, sub: &str) -> Result<Strength, OpError> {
        let user = self.store.user(sub).await?;
        Ok(if user.is_some_and(|u| u.require_passkey) {
            Strength::PasswordAndPasskey
        } else {
            Strength::Password
        })
    }

    /// Remember the End-User's consent (scopes, and the key bound for this client).
    pub async fn record_consent(
        &self,
        v: &ValidatedAuthorization,
        sub: &str,
    ) -> Result<(), OpError> {
        let mut c = self
            .store
            .consent(sub, &v.client.client_id)
            .await?
            .unwrap_or(Consent {
                sub: sub.to_owned(),
                client_id: v.client.client_id.clone(),
                scopes: BTreeSet::new(),
                bound_jkts: BTreeSet::new(),
                updated_at: 0,
            });
        c.scopes.extend(v.scopes.iter().cloned());
        if let RequestedBinding::BoundIdToken(j) = &v.binding {
            c.bound_jkts.insert(j.clone());
        }
        c.updated_at = self.now();
        self.store.put_consent(&c).await?;
        self.event(
            SecurityEvent::new(EventType::ConsentGranted)
                .client(&c.client_id)
                .subject(&c.sub),
        );
        Ok(())
    }

    /// The End-User denied consent: the error redirect.
    pub fn access_denied(&self, v: &ValidatedAuthorization) -> AuthorizeError {
        self.redirect_error(
            &v.redirect_uri,
            v.response_mode,
            v.state.as_ref(),
            Why::Denied,
        )
    }

    /// Issue what `v` asked for — a code, and for the implicit and hybrid flows an ID Token
    /// and an access token from here — as the response in the requested mode (with `state`
    /// and `iss`).
    pub async fn issue_code(
        &self,
        v: &ValidatedAuthorization,
        session: &BrowserSession,
    ) -> Result<AuthorizationResponse, OpError> {
        let now = self.now();
        let grant_id = self.random_id();
        let mut params = Vec::new();
        let code = if v.response_type.code {
            let code = self.random_token();
            let (dpop_jkt, bound_key) = match &v.binding {
                RequestedBinding::None => (None, false),
                RequestedBinding::DpopOnly(j) => (Some(j.clone()), false),
                RequestedBinding::BoundIdToken(j) => (Some(j.clone()), true),
            };
            let record = AuthorizationCode {
                grant_id: grant_id.clone(),
                client_id: v.client.client_id.clone(),
                redirect_uri: v.redirect_uri.clone(),
                sub: session.sub.clone(),
                scope: v.scope(),
                nonce: v.nonce.clone(),
                code_challenge: v.code_challenge.clone(),
                auth_time: session.auth_time,
                acr: Some(session_acr(v, session).to_owned()),
                amr: session.amr.clone(),
                dpop_jkt,
                bound_key,
                tbh: v.tbh.clone(),
                resources: v.resources.clone(),
                sid: session.session_id().map(str::to_owned),
                created_at: now,
                expires_at: now + self.code_ttl(&v.client),
            };
            self.store
                .insert_code(&TokenHash::of(&code), &record)
                .await?;
            params.push(("code".to_owned(), code.clone()));
            Some(code)
        } else {
            None
        };
        if v.response_type.front_channel_tokens() {
            let scope = v.scope();
            let grant = crate::grant::Grant {
                client: &v.client,
                who: crate::grant::Authorized {
                    grant_id: &grant_id,
                    sub: &session.sub,
                    scope: &scope,
                    auth_time: Some(session.auth_time),
                    acr: Some(session_acr(v, session)),
                    amr: &session.amr,
                    nonce: v.nonce.as_deref(),
                    resources: &v.resources,
                    sid: session.session_id(),
                },
                id_token_key: None,
                tbh: v.tbh.as_deref(),
                // RFC 8707 §2: the front-channel access token is for the resources asked for
                audience: (!v.resources.is_empty()).then(|| v.resources.clone()),
            };
            params.extend(
                self.front_channel(&grant, v.response_type, code.as_deref())
                    .await?,
            );
        }
        if let Some(s) = &v.state {
            params.push(("state".into(), s.clone()));
        }
        params.push(("iss".into(), self.config.issuer.clone()));
        Ok(AuthorizationResponse {
            redirect_uri: v.redirect_uri.clone(),
            mode: v.response_mode,
            params,
        })
    }

    /// The apps `sub` allowed: each consent with the client's name (the account page lists
    /// them so the End-User can withdraw one).
    pub async fn consents(&self, sub: &str) -> Result<Vec<(Consent, String)>, OpError> {
        let mut out = Vec::new();
        for c in self.store.consents_of(sub).await? {
            let name = self
                .registered_client(&c.client_id)
                .await?
                .map_or_else(|| c.client_id.clone(), |client| client.name);
            out.push((c, name));
        }
        Ok(out)
    }

    /// Withdraw `sub`'s consent to `client_id`: the client's grants from this End-User are
    /// revoked (refresh tokens, and the access tokens of those grants), and its next
    /// authorization asks again. `false` when there was none.
    pub async fn revoke_consent(&self, sub: &str, client_id: &str) -> Result<bool, OpError> {
        let had = self
            .store
            .revoke_consent(sub, client_id, self.now())
            .await?;
        if had {
            self.event(
                SecurityEvent::new(EventType::ConsentRevoked)
                    .client(client_id)
                    .subject(sub)
                    .reason("grants_revoked"),
            );
        }
        Ok(had)
    }

    /// Check a username and password; the session to start on success.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<BrowserSession>, OpError> {
        self.login_from(username, password, None).await
    }

    /// [`Provider::login`] from a source address: wrong passwords are throttled per account and
    /// per address ([`crate::ThrottleConfig`]), checked before any hashing.
    #[tracing::instrument(level = "debug", name = "sign_in.password", skip_all)]
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        source: Option<&str>,
    ) -> Result<Option<BrowserSession>, OpError> {
        let account = format!("account\0{username}");
        let address = crate::address_key(source);
        let attempt = self
            .begin_sign_in_attempt(&account, address.as_deref(), "passwords")
            .await?;
        let user = self.store.user_by_username(username).await?;
        // Verify against a dummy hash for unknown users so timing does not reveal usernames.
        let hash = user
            .as_ref()
            .map_or(crate::password::DUMMY_HASH, |u| u.password_hash.as_str());
        let ok = self.hashes.verify(hash, password).await? && user.is_some();
        Ok(match user {
            Some(u) if ok => {
                attempt.succeeded().await?;
                self.event(
                    SecurityEvent::new(EventType::SignInSucceeded)
                        .subject(&u.sub)
                        .reason("pwd"),
                );
                Some(self.new_session(&u.sub, Strength::Password))
            }
            _ => {
                attempt.failed().await?;
                // an operator may know whether the account exists; the End-User is not told
                self.event(match &user {
                    Some(u) => SecurityEvent::new(EventType::SignInFailed)
                        .subject(&u.sub)
                        .reason("wrong_password"),
                    None => SecurityEvent::new(EventType::SignInFailed).reason("unknown_account"),
                });
                None
            }
        })
    }
}

/// The `acr` a token from this session says for request `v`.
fn session_acr(v: &ValidatedAuthorization, session: &BrowserSession) -> &'static str {
    Strength::of_amr(&session.amr).acr_for(&v.acr.values)
}
