//! The device flow's HTTP side: the device authorization endpoint and the `/device`
//! verification page (code entry, login, consent with the phishing warning, approve/deny).
//!
//! **User-code guessing is bounded without locking out innocent users** (RFC 8628 §5.1). Wrong
//! codes count per browser (its CSRF token), per client address and, once signed in, per
//! account. Past the per-address limit an anonymous browser gets no verdict on a code: it is
//! asked to sign in first, and its codes then count against its account. Someone behind the
//! same NAT as a guesser therefore still gets through with a correct code, while a guesser
//! needs an account (whose password guessing is throttled on its own) for every 20 guesses.
//! A sign-in on this page checks the password before the code, so a wrong password reveals
//! nothing about a code either.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use keybound_jose::Jkt;
use keybound_op::refusal::PageRefusal;
use keybound_op::{paths, DeviceRequestFacts, OpError};
use keybound_store::{BrowserSession, Count, Store, TokenHash};

use crate::error::{form_message, form_note, page_failed as failed, page_refused as refused};
use crate::forms::PageForm;
use crate::peer::ClientAddr;
use crate::peer::TokenBinding;
use crate::response::html;
use crate::session::{
    csrf_ok, csrf_token, current_session, derive, set_cookie, sign_in, sign_in_with_passkey,
    FormScope, PasskeyResponse,
};
use crate::token::FormRequest;
use crate::{forms, pages, AppState};

/// Wrong user codes allowed in one window per browser, per client address (anonymous
/// browsers) and per signed-in account.
const PER_BROWSER: u32 = 5;
const PER_ADDRESS: u32 = 20;
const PER_ACCOUNT: u32 = 20;
const WINDOW: u64 = 900;

/// The store key of wrong user codes entered by `who`.
fn attempts_key(who: &str) -> TokenHash {
    TokenHash::of(&format!("device-code\0{who}"))
}

/// Whether `who` entered `limit` wrong codes in the current window (a guess costs at least one
/// request per attempt). The counts are the store's: on PostgreSQL every node sees them.
async fn blocked(store: &dyn Store, who: &str, limit: u32, now: u64) -> Result<bool, OpError> {
    Ok(store
        .count(&attempts_key(who), now)
        .await?
        .is_some_and(|c| c.n >= limit))
}

/// Count a wrong code of `who`: a window of [`WINDOW`] seconds starts with the first.
async fn wrong(store: &dyn Store, who: &str, now: u64) -> Result<(), OpError> {
    let rule = |c: Option<Count>| {
        Some(match c {
            Some(c) => Count {
                n: c.n.saturating_add(1),
                ..c
            },
            None => Count {
                n: 1,
                at: now,
                expires_at: now + WINDOW,
            },
        })
    };
    store.change_count(&attempts_key(who), now, &rule).await?;
    Ok(())
}

/// Who is entering a code, for the attempt limits.
struct Guesser {
    browser: String,
    address: Option<String>,
    account: Option<String>,
}

/// What the limits allow for the next code entry.
enum Gate {
    Open,
    /// too many wrong codes from this browser or account
    Closed,
    /// too many wrong codes from this address: sign in first
    SignInFirst,
}

impl Guesser {
    async fn gate(&self, store: &dyn Store, now: u64) -> Result<Gate, OpError> {
        if blocked(store, &self.browser, PER_BROWSER, now).await? {
            return Ok(Gate::Closed);
        }
        Ok(match (&self.account, &self.address) {
            (Some(a), _) if blocked(store, a, PER_ACCOUNT, now).await? => Gate::Closed,
            (None, Some(ip)) if blocked(store, ip, PER_ADDRESS, now).await? => Gate::SignInFirst,
            _ => Gate::Open,
        })
    }

    async fn wrong_code(&self, store: &dyn Store, now: u64) -> Result<(), OpError> {
        wrong(store, &self.browser, now).await?;
        match (&self.account, &self.address) {
            (Some(a), _) => wrong(store, a, now).await,
            (None, Some(ip)) => wrong(store, ip, now).await,
            (None, None) => Ok(()),
        }
    }
}

/// `POST /device_authorization`
pub async fn device_authorization(State(state): State<Arc<AppState>>, r: FormRequest) -> Response {
    let dpop = r.dpop();
    let facts = DeviceRequestFacts {
        form: &r.form,
        authorization: r.authorization(),
        dpop: &dpop,
    };
    let result = state.provider.device_authorization(facts).await;
    r.answer(result, None)
}

fn with_cookie(mut r: Response, cookie: Option<String>) -> Response {
    if let Some(c) = cookie {
        set_cookie(&mut r, &c);
    }
    r
}

/// `GET /device[?user_code=…]`: the code-entry form (pre-filled from
/// `verification_uri_complete`, but always confirmed by the End-User).
pub async fn device_get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let prefill = forms::pairs(q.unwrap_or_default().as_bytes())
        .into_iter()
        .find(|(k, _)| k == "user_code")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let (csrf, cookie) = csrf_token(&state, &headers);
    with_cookie(
        html(
            StatusCode::OK,
            pages::device_entry(paths::DEVICE, &csrf, &prefill, None),
        ),
        cookie,
    )
}

/// `POST /device`: code entry, login and consent.
pub async fn device_post(
    State(state): State<Arc<AppState>>,
    ClientAddr(ip): ClientAddr,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    let field = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let action = field("kb_action").unwrap_or("code");
    let scope = if action == "consent" {
        FormScope::Session
    } else {
        FormScope::BeforeSignIn
    };
    let Some(csrf) = field("csrf").filter(|c| csrf_ok(&state, &headers, Some(c), scope)) else {
        return refused(PageRefusal::Csrf("Open the device page again."));
    };
    let typed = field("user_code").unwrap_or("");
    let page = Page {
        state: &state,
        headers: &headers,
        typed,
    };
    let mut session = match current_session(&state, &headers, &tb).await {
        Ok(s) => s.map(|(_, s)| s),
        Err(e) => return failed(e),
    };
    // a sign-in is checked before the code, so a wrong password says nothing about a code
    let mut signed_in = None;
    if action == "login" {
        let (Some(u), Some(p)) = (field("username"), field("password")) else {
            return page.login(None, Some(PageRefusal::MissingCredentials));
        };
        match sign_in(&state, u, p, None, ip, &tb).await {
            Ok(Some(s)) => {
                session = Some(s.session.clone());
                signed_in = Some(s);
            }
            Ok(None) => return page.login(None, Some(PageRefusal::WrongPassword)),
            Err(e) => return failed(e),
        }
    }
    // the passkey button of the login form: a discoverable passkey signs the End-User in
    if action == "passkey" {
        let response = PasskeyResponse {
            state: field("kb_passkey_state").unwrap_or_default(),
            credential: field("kb_passkey_credential").unwrap_or_default(),
        };
        match sign_in_with_passkey(&state, &headers, &response, session.as_ref(), None, ip, &tb)
            .await
        {
            Ok(s) => {
                session = Some(s.session.clone());
                signed_in = Some(s);
            }
            Err(e @ OpError::Refused(_)) => return page.login(None, Some(e)),
            Err(e) => return failed(e),
        }
    }
    let with_session = |mut r: Response| {
        if let Some(s) = &signed_in {
            s.apply(&mut r);
        }
        r
    };
    let now = state.provider.now();
    let guesser = Guesser {
        browser: format!("b:{csrf}"),
        address: ip.map(|i| format!("ip:{i}")),
        account: session.as_ref().map(|s| format!("sub:{}", s.sub)),
    };
    // forms in this answer: right after sign-in, the new session's token
    let (csrf, cookie) = match &signed_in {
        Some(s) => (derive(&s.form_secret), None),
        None => csrf_token(&state, &headers),
    };
    let store = &**state.provider.store();
    let gate = match guesser.gate(store, now).await {
        Ok(g) => g,
        Err(e) => return failed(e),
    };
    match gate {
        Gate::Open => {}
        Gate::Closed => {
            return failed(OpError::Throttled {
                description:
                    "Too many wrong codes. Wait 15 minutes, then enter the code shown on your device again."
                        .into(),
                retry_after: WINDOW,
            })
        }
        Gate::SignInFirst => {
            return page.login_with(
                StatusCode::OK,
                None,
                Some("Many wrong codes were entered from your network. Sign in, and your code will be checked for your account."),
            )
        }
    }
    let found = match state.provider.device_lookup(typed).await {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let Some((hash, auth, client)) = found else {
        if let Err(e) = guesser.wrong_code(store, now).await {
            return failed(e);
        }
        let (status, message) = form_message(PageRefusal::UnknownUserCode);
        let body = pages::device_entry(paths::DEVICE, &csrf, typed, Some(&message));
        return with_session(with_cookie(html(status, body), cookie));
    };
    let shown = format!("{}-{}", &auth.user_code[..4], &auth.user_code[4..]);
    let scopes: Vec<String> = auth.scope.split(' ').map(str::to_owned).collect();
    let consent = |csrf: &str| {
        pages::device_consent(
            paths::DEVICE,
            csrf,
            &shown,
            &client.name,
            &scopes,
            auth.dpop_jkt
                .as_ref()
                .map(Jkt::as_str)
                .filter(|_| auth.bound_key),
        )
    };
    match (action, session) {
        ("code" | "login" | "passkey", None) => page.login(Some(&client.name), None::<PageRefusal>),
        ("code" | "login" | "passkey", Some(_)) => {
            with_session(with_cookie(html(StatusCode::OK, consent(&csrf)), cookie))
        }
        ("consent", Some(sess)) => decide(&state, &hash, &sess, field("decision")).await,
        ("consent", None) => page.login(Some(&client.name), Some(PageRefusal::SessionEnded)),
        (other, _) => refused(PageRefusal::UnknownAction(other.to_owned())),
    }
}

/// The device page's login form for the code as typed.
struct Page<'a> {
    state: &'a AppState,
    headers: &'a HeaderMap,
    typed: &'a str,
}

impl Page<'_> {
    /// The login form, carrying the code as typed; `client` when the code is known, shown
    /// again for `why` when there is one.
    fn login(&self, client: Option<&str>, why: Option<impl Into<OpError>>) -> Response {
        let (status, note) = form_note(why);
        self.login_with(status, client, note.as_deref())
    }

    /// The login form with a status and a note.
    fn login_with(
        &self,
        status: StatusCode,
        client: Option<&str>,
        error: Option<&str>,
    ) -> Response {
        let (csrf, cookie) = csrf_token(self.state, self.headers);
        // a password, or a discoverable passkey while this OP has passkeys
        let passkey = self
            .state
            .provider
            .passkeys_available()
            .is_ok()
            .then_some(pages::PasskeyStep::SignIn);
        let r = crate::authorize::login_response(
            status,
            &pages::Login {
                action: paths::DEVICE,
                fields: &[("user_code".into(), self.typed.to_owned())],
                csrf: &csrf,
                client_name: Some(client.unwrap_or("your device")),
                login_hint: None,
                error,
                password: true,
                passkey,
                reason: None,
            },
        );
        with_cookie(r, cookie)
    }
}

async fn decide(
    state: &AppState,
    hash: &keybound_store::TokenHash,
    session: &BrowserSession,
    decision: Option<&str>,
) -> Response {
    let approve = match decision {
        Some("allow") => true,
        Some("deny") => false,
        _ => return refused(PageRefusal::ChooseDecision("Approve or Deny")),
    };
    match state.provider.device_decide(hash, session, approve).await {
        Ok(true) => html(StatusCode::OK, pages::device_done(approve)),
        Ok(false) => refused(PageRefusal::UserCodeUsed),
        Err(e) => failed(e),
    }
}
