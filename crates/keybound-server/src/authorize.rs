//! The authorization endpoint and its pages: GET/POST authorization requests, and the login and
//! consent forms (posted back here with the original parameters). The session cookie and CSRF
//! tokens are [`crate::session`]'s.

use std::sync::Arc;

use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keybound_op::par::REQUEST_URI_PREFIX;
use keybound_op::passkey::Strength;
use keybound_op::refusal::PageRefusal;
use keybound_op::{paths, Interaction, LoginPrompt, OpError, ValidatedAuthorization};
use keybound_store::{BrowserSession, TokenHash};

use crate::error::{form_note, page_failed as failed, page_refused as refused, Failure};
use crate::forms::PageForm;
use crate::peer::{ClientAddr, TokenBinding};
use crate::response::{html, html_with_script, respond};
use crate::session::{
    csrf_ok, current_session, derive, form_secret, open_referral, pushed_mark_ok, seal_referral,
    set_cookie, sign_in, sign_in_with_passkey, FormScope, PasskeyResponse, SignedIn,
};
use crate::{forms, pages, AppState};

/// What a page whose CSRF check failed tells the End-User to do.
const START_AGAIN: &str = "Go back to the app and start again.";

const INTERNAL: [&str; 10] = [
    "kb_dbsc",
    "kb_action",
    "csrf",
    "username",
    "password",
    "decision",
    "kb_tbr",
    "kb_par",
    "kb_passkey_state",
    "kb_passkey_credential",
];

/// `GET /authorize`
pub async fn authorize_get(
    State(state): State<Arc<AppState>>,
    ClientAddr(source): ClientAddr,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = forms::pairs(q.unwrap_or_default().as_bytes());
    handle(&state, &headers, pairs, source, &tb).await
}

/// `POST /authorize` (authorization requests by POST, and our login and consent forms)
pub async fn authorize_post(
    State(state): State<Arc<AppState>>,
    ClientAddr(source): ClientAddr,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    handle(&state, &headers, pairs, source, &tb).await
}

struct Step<'a> {
    state: &'a AppState,
    headers: &'a HeaderMap,
    v: &'a ValidatedAuthorization,
    params: &'a [(String, String)],
    /// the session cookie's hash, to clear the freshness marker once the code is issued
    session_hash: Option<TokenHash>,
    /// the connection's Token Binding
    tb: &'a crate::peer::TokenBindingContext,
    /// the referred Token Binding ID in effect for this request (verified on this request,
    /// or carried sealed through our forms from the request that verified it)
    referred: Option<keybound_proto::tokbind::TokenBindingId>,
    /// the authorization request's fingerprint
    fingerprint: &'a str,
    /// the parameters came from a pushed request (RFC 9126)
    pushed: bool,
    /// the page that waits for a DBSC registration posted this request (`kb_dbsc`)
    waited_for_dbsc: bool,
}

/// The fingerprint of an authorization request: SHA-256 over its parameters as sent (without
/// our form fields). A login counts as fresh only for the request with this fingerprint.
fn fingerprint(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    keybound_jose::sha256_b64(
        serde_urlencoded::to_string(sorted)
            .unwrap_or_default()
            .as_bytes(),
    )
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    pairs: Vec<(String, String)>,
    source: Option<IpAddr>,
    tb: &crate::peer::TokenBindingContext,
) -> Response {
    let (internal, params): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(k, _)| INTERNAL.contains(&k.as_str()));
    let field = |n: &str| {
        internal
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    // RFC 9126: a request_uri of this server's stands for the pushed parameters, taken out of
    // the store at this, its one use (another request_uri is refused by validation, as
    // request_uri_not_supported)
    let ours = param("request_uri").filter(|u| u.starts_with(REQUEST_URI_PREFIX));
    let (params, pushed) = if let Some(uri) = ours {
        let client_id = param("client_id").unwrap_or_default();
        match state.provider.take_pushed_request(uri, client_id).await {
            Ok(p) => (p, true),
            Err(e) => return failed(e),
        }
    } else {
        // … or were pushed, and come back through the OP's own forms with its mark
        let marked = field("kb_par")
            .is_some_and(|m| pushed_mark_ok(state, headers, m, &fingerprint(&params)));
        (params, marked)
    };
    // RFC 9101: a request object by value, opened into the parameters it signs (once; the
    // forms then carry the parameters)
    let params = match state.provider.open_request_object(params).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let req = match keybound_op::par::authorization_request(&params) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let validated = if pushed {
        state.provider.validate_pushed_authorization(&req).await
    } else {
        state.provider.validate_authorization(&req).await
    };
    let mut v = match validated {
        Ok(v) => v,
        Err(e) => return Failure::from(e).into_response(),
    };
    let this_request = fingerprint(&params);
    // OIDC Token Bound Authentication §3: the referred Token Binding ID verified for this user
    // agent (on this request, or sealed into our forms by the request that carried it), for
    // clients that registered support for Token Bound ID Tokens (§5.1)
    let referred = match &tb.referred {
        Some(id) => Some(id.clone()),
        None => open_referral(state, headers, field("kb_tbr"), &this_request, tb),
    };
    if v.client.token_bound_id_tokens {
        v.tbh = referred.as_ref().and_then(|id| id.tbh().ok());
    }
    let (session_hash, session) = match current_session(state, headers, tb).await {
        Ok(Some((h, s))) => (Some(h), Some(s)),
        Ok(None) => (None, None),
        Err(e) => return failed(e),
    };
    let step = Step {
        state,
        headers,
        v: &v,
        params: &params,
        session_hash,
        tb,
        referred: if v.client.token_bound_id_tokens {
            referred
        } else {
            None
        },
        fingerprint: &this_request,
        pushed,
        waited_for_dbsc: field("kb_dbsc") == Some("waited"),
    };
    // fresh: this session's login was performed for this very request (OP state)
    let fresh = session
        .as_ref()
        .is_some_and(|s| s.fresh_for.as_deref() == Some(this_request.as_str()));
    let prompt = step.prompt(session.as_ref());
    match field("kb_action") {
        None => step.next(session.as_ref(), fresh, false, None).await,
        Some("login") => {
            if !csrf_ok(state, headers, field("csrf"), FormScope::BeforeSignIn) {
                return refused(PageRefusal::Csrf(START_AGAIN));
            }
            let (Some(u), Some(p)) = (field("username"), field("password")) else {
                return step.login_page(&prompt, Some(PageRefusal::MissingCredentials.into()));
            };
            match sign_in(state, u, p, Some(this_request.clone()), source, tb).await {
                Ok(Some(signed_in)) => {
                    step.next(Some(&signed_in.session), true, false, Some(&signed_in))
                        .await
                }
                Ok(None) => step.login_page(&prompt, Some(PageRefusal::WrongPassword.into())),
                Err(e) => failed(e),
            }
        }
        Some("passkey") => {
            if !csrf_ok(state, headers, field("csrf"), FormScope::BeforeSignIn) {
                return refused(PageRefusal::Csrf(START_AGAIN));
            }
            let response = PasskeyResponse {
                state: field("kb_passkey_state").unwrap_or_default(),
                credential: field("kb_passkey_credential").unwrap_or_default(),
            };
            let fresh_for = Some(this_request.clone());
            match sign_in_with_passkey(
                state,
                headers,
                &response,
                session.as_ref(),
                fresh_for,
                source,
                tb,
            )
            .await
            {
                Ok(signed_in) => {
                    step.next(Some(&signed_in.session), true, false, Some(&signed_in))
                        .await
                }
                Err(e @ OpError::Refused(_)) => step.login_page(&prompt, Some(e)),
                Err(e) => failed(e),
            }
        }
        Some("consent") => {
            if !csrf_ok(state, headers, field("csrf"), FormScope::Session) {
                return refused(PageRefusal::Csrf(START_AGAIN));
            }
            let Some(sess) = session else {
                return step.login_page(&prompt, Some(PageRefusal::SessionEnded.into()));
            };
            match field("decision") {
                Some("allow") => {
                    if let Err(e) = state.provider.record_consent(&v, &sess.sub).await {
                        return failed(e);
                    }
                    step.next(Some(&sess), fresh, true, None).await
                }
                Some("deny") => Failure::from(state.provider.access_denied(&v)).into_response(),
                _ => refused(PageRefusal::ChooseDecision("Allow or Deny")),
            }
        }
        Some(other) => refused(PageRefusal::UnknownAction(other.to_owned())),
    }
}

impl Step<'_> {
    async fn next(
        &self,
        session: Option<&BrowserSession>,
        fresh: bool,
        consented: bool,
        signed_in: Option<&SignedIn>,
    ) -> Response {
        let mut resp = match self
            .state
            .provider
            .next_interaction(self.v, session, fresh, consented)
            .await
        {
            Err(e) => Failure::from(e).into_response(),
            Ok(Interaction::Login(p)) => self.login_page(&p, None),
            // DBSC required and this session not bound yet: wait for the browser's key
            Ok(Interaction::Consent(_) | Interaction::Issue)
                if crate::dbsc::required(self.state, &self.v.client)
                    && session.is_some_and(|s| s.dbsc.is_none()) =>
            {
                return self.dbsc_wait(signed_in);
            }
            Ok(Interaction::Consent(p)) => {
                // right after sign-in, the new session's token (the browser has not sent its
                // cookie yet)
                let (secret, cookie) = match signed_in {
                    Some(s) => (s.form_secret.clone(), None),
                    None => form_secret(self.state, self.headers),
                };
                let csrf = derive(&secret);
                let mut r = html(
                    StatusCode::OK,
                    pages::consent(paths::AUTHORIZE, &self.form_fields(&secret), &csrf, &p),
                );
                if let Some(c) = cookie {
                    set_cookie(&mut r, &c);
                }
                r
            }
            Ok(Interaction::Issue) => match session {
                Some(s) => match self.issue(s, signed_in.map(|i| &i.key)).await {
                    Ok(r) => respond(&r),
                    Err(e) => failed(e),
                },
                None => failed(OpError::internal(
                    "issue step reached without a browser session",
                )),
            },
        };
        if let Some(s) = signed_in {
            s.apply(&mut resp);
        }
        resp
    }

    /// Issue the code. The session (`key`: the one signed in with this request, else the
    /// browser's) remembers the client for logout, and a login made for this request stops
    /// counting as fresh (a replay of the same request needs a new login).
    async fn issue(
        &self,
        s: &BrowserSession,
        key: Option<&TokenHash>,
    ) -> Result<keybound_op::AuthorizationResponse, OpError> {
        if let Some(key) = key.or(self.session_hash.as_ref()) {
            let mut updated = BrowserSession {
                fresh_for: None,
                ..s.clone()
            };
            let remembered = updated.signed_in_to(&self.v.client.client_id);
            if remembered || s.fresh_for.is_some() {
                let store = self.state.provider.store();
                // a DBSC registration that landed since this request read the session keeps
                // its key (the browser registers in the background right after sign-in)
                if updated.dbsc.is_none() {
                    updated.dbsc = store
                        .session(key, self.state.provider.now())
                        .await?
                        .and_then(|fresh| fresh.dbsc);
                }
                store.put_session(key, &updated).await?;
            }
        }
        self.state.provider.issue_code(self.v, s).await
    }

    /// The hidden fields of our forms: the authorization request, the sealed referral, and
    /// the mark of a pushed request.
    fn form_fields(&self, secret: &str) -> Vec<(String, String)> {
        let mut fields = self.params.to_vec();
        if self.pushed {
            let mark = self.state.provider.pushed_mark(self.fingerprint, secret);
            fields.push(("kb_par".to_owned(), mark));
        }
        if let Some(sealed) = self
            .referred
            .as_ref()
            .and_then(|id| seal_referral(secret, self.fingerprint, id, self.tb))
        {
            fields.push(("kb_tbr".to_owned(), sealed));
        }
        fields
    }

    /// The page that offers DBSC for this session and waits for the browser to register its
    /// key, then posts the request back; after it waited, an unbound session is refused.
    fn dbsc_wait(&self, signed_in: Option<&SignedIn>) -> Response {
        if self.waited_for_dbsc {
            return refused(keybound_op::refusal::DbscRefusal::Required);
        }
        let key = signed_in.map(|s| &s.key).or(self.session_hash.as_ref());
        let Some(offer) = key.and_then(|k| crate::dbsc::offer(self.state, k)) else {
            // DBSC off at this OP while the client requires it: nothing can bind the session
            return refused(keybound_op::refusal::DbscRefusal::Required);
        };
        let (secret, cookie) = match signed_in {
            Some(s) => (s.form_secret.clone(), None),
            None => form_secret(self.state, self.headers),
        };
        let mut r = html_with_script(
            StatusCode::OK,
            pages::dbsc_wait(
                paths::AUTHORIZE,
                &self.form_fields(&secret),
                paths::DBSC_STATUS,
            ),
            pages::DBSC_WAIT_SCRIPT,
        );
        match signed_in {
            // the sign-in's cookie and its own offer
            Some(s) => s.apply(&mut r),
            None => {
                if let Ok(v) = axum::http::HeaderValue::from_str(&offer) {
                    r.headers_mut()
                        .insert(keybound_proto::dbsc::REGISTRATION_HEADER, v);
                }
            }
        }
        if let Some(c) = cookie {
            set_cookie(&mut r, &c);
        }
        r
    }

    /// The login prompt of this request before the provider decided (a form shown again):
    /// the `acr` it asks for, and who is signed in.
    fn prompt(&self, session: Option<&BrowserSession>) -> LoginPrompt {
        LoginPrompt {
            need: keybound_op::passkey::weakest_of(&self.v.acr.values)
                .unwrap_or(Strength::Password),
            current: session.map(|s| (s.sub.clone(), Strength::of_amr(&s.amr))),
        }
    }

    fn login_page(&self, prompt: &LoginPrompt, error: Option<OpError>) -> Response {
        let (status, error) = form_note(error);
        let (secret, cookie) = form_secret(self.state, self.headers);
        let csrf = derive(&secret);
        let fields = self.form_fields(&secret);
        let offer = login_offer(self.state, prompt);
        let page = pages::Login {
            action: paths::AUTHORIZE,
            fields: &fields,
            csrf: &csrf,
            client_name: Some(&self.v.client.name),
            login_hint: self.v.login_hint.as_deref(),
            error: error.as_deref(),
            password: offer.password,
            passkey: offer.passkey,
            reason: offer.reason.as_deref(),
        };
        let mut r = login_response(status, &page);
        if let Some(c) = cookie {
            set_cookie(&mut r, &c);
        }
        r
    }
}

/// What a login page offers for `prompt`.
pub(crate) struct LoginOffer {
    pub password: bool,
    pub passkey: Option<pages::PasskeyStep>,
    pub reason: Option<String>,
}

/// The one decision of what a login page offers: the password form while a password helps,
/// the passkey button while this OP has passkeys — discoverable, or as second factor for the
/// End-User signed in with their password when a password and a passkey are needed.
pub(crate) fn login_offer(state: &AppState, prompt: &LoginPrompt) -> LoginOffer {
    let available = state.provider.passkeys_available();
    let passkeys = available.is_ok();
    let words = crate::theme::page_context().words;
    let has_password = prompt
        .current
        .as_ref()
        .is_some_and(|(_, s)| *s == Strength::Password);
    let (password, passkey, reason) = match prompt.need {
        Strength::Password => (true, passkeys.then_some(pages::PasskeyStep::SignIn), None),
        Strength::Passkey => (
            false,
            passkeys.then_some(pages::PasskeyStep::SignIn),
            Some(words.t("login.reason.passkey").to_owned()),
        ),
        Strength::PasswordAndPasskey if has_password => (
            false,
            passkeys.then_some(pages::PasskeyStep::SecondFactor),
            Some(words.t("login.reason.confirm").to_owned()),
        ),
        Strength::PasswordAndPasskey => (
            true,
            None,
            Some(words.t("login.reason.password_then_passkey").to_owned()),
        ),
    };
    let reason = match (&available, prompt.need) {
        (Err(why), need) if need > Strength::Password => Some(format!(
            "This sign-in needs a passkey, and this server cannot offer passkeys: {why}"
        )),
        _ => reason,
    };
    LoginOffer {
        password,
        passkey,
        reason,
    }
}

/// A login page, with its passkey script allowed when it has the button.
pub(crate) fn login_response(status: StatusCode, page: &pages::Login<'_>) -> Response {
    if page.passkey.is_some() {
        html_with_script(status, pages::login(page), pages::PASSKEY_SCRIPT)
    } else {
        html(status, pages::login(page))
    }
}
