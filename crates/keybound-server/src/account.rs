//! The End-User's account page (`/account`: their passkeys — list, add, rename, remove) and
//! the passkey ceremonies' options (`/passkey/options`, asked for by the pages' script).
//!
//! Every form here carries the CSRF token of [`crate::session`]; a passkey ceremony's sealed
//! state is tied to the same secret cookie, so a ceremony started in one browser cannot be
//! finished in another. Once an account has a passkey, only a sign-in that used one may change
//! its passkeys ([`keybound_op::Provider::may_manage_passkeys`]): a password session is asked
//! to confirm with a passkey first.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use keybound_op::passkey::Strength;
use keybound_op::refusal::PageRefusal;
use keybound_op::{paths, LoginPrompt, OpError};
use keybound_store::BrowserSession;

use crate::authorize::{login_offer, login_response};
use crate::error::{form_note, page_failed as failed, page_refused as refused, Failure};
use crate::forms::PageForm;
use crate::peer::{ClientAddr, TokenBinding, TokenBindingContext};
use crate::response::{html, html_with_script, see_other};
use crate::session::{
    csrf_ok, csrf_token, current_session, existing_form_secret, set_cookie, sign_in,
    sign_in_with_passkey, FormScope, PasskeyResponse, SignedIn,
};
use crate::{forms, pages, AppState};

/// What the account page tells the End-User to do after a failed CSRF check.
const RELOAD: &str = "Reload your account page and try again.";

/// `GET /account`
pub async fn account_get(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let done = forms::pairs(q.unwrap_or_default().as_bytes())
        .into_iter()
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v);
    let words = crate::theme::page_context().words;
    let note = match done.as_deref() {
        Some("added") => Some(words.t("account.done.added")),
        Some("renamed") => Some(words.t("account.done.renamed")),
        Some("removed") => Some(words.t("account.done.removed")),
        Some("revoked") => Some(words.t("account.done.revoked")),
        _ => None,
    };
    match current_session(&state, &headers, &tb).await {
        Ok(Some((_, session))) => account_page(&state, &headers, &session, note, None).await,
        Ok(None) => sign_in_page(&state, &headers, None, None),
        Err(e) => failed(e),
    }
}

/// `POST /account`: sign in (password or passkey), add, rename or remove a passkey, withdraw
/// an app's access.
pub async fn account_post(
    State(state): State<Arc<AppState>>,
    ClientAddr(source): ClientAddr,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    let field = |n: &str| forms::field(&pairs, n);
    let session = match current_session(&state, &headers, &tb).await {
        Ok(s) => s.map(|(_, s)| s),
        Err(e) => return failed(e),
    };
    let action = field("kb_action").unwrap_or_default();
    let scope = match action {
        "login" | "passkey" => FormScope::BeforeSignIn,
        _ => FormScope::Session,
    };
    if !csrf_ok(&state, &headers, field("csrf"), scope) {
        return refused(PageRefusal::Csrf(RELOAD));
    }
    let passkey = PasskeyResponse {
        state: field("kb_passkey_state").unwrap_or_default(),
        credential: field("kb_passkey_credential").unwrap_or_default(),
    };
    match action {
        "login" => {
            let (Some(u), Some(p)) = (field("username"), field("password")) else {
                return sign_in_page(
                    &state,
                    &headers,
                    session.as_ref(),
                    Some(PageRefusal::MissingCredentials.into()),
                );
            };
            match sign_in(&state, u, p, None, source, &tb).await {
                Ok(Some(signed_in)) => to_account(None, Some(&signed_in)),
                Ok(None) => sign_in_page(
                    &state,
                    &headers,
                    session.as_ref(),
                    Some(PageRefusal::WrongPassword.into()),
                ),
                Err(e) => failed(e),
            }
        }
        "passkey" => {
            let current = session.as_ref();
            match sign_in_with_passkey(&state, &headers, &passkey, current, None, source, &tb).await
            {
                Ok(signed_in) => to_account(None, Some(&signed_in)),
                Err(e @ OpError::Refused(_)) => sign_in_page(&state, &headers, current, Some(e)),
                Err(e) => failed(e),
            }
        }
        "add" | "rename" | "remove" | "revoke_consent" => {
            let Some(session) = session else {
                return sign_in_page(
                    &state,
                    &headers,
                    None,
                    Some(PageRefusal::SessionEnded.into()),
                );
            };
            let done = if action == "revoke_consent" {
                // withdrawing access only takes away: any session of the End-User may
                let client_id = field("client_id").unwrap_or_default();
                state
                    .provider
                    .revoke_consent(&session.sub, client_id)
                    .await
                    .map(|_| "revoked")
            } else {
                manage(&state, &headers, &session, action, &passkey, &pairs).await
            };
            match done {
                Ok(done) => to_account(Some(done), None),
                Err(e @ OpError::Refused(_)) => {
                    account_page(&state, &headers, &session, None, Some(e)).await
                }
                Err(e) => failed(e),
            }
        }
        other => refused(PageRefusal::UnknownAction(other.to_owned())),
    }
}

/// Add, rename or remove one of the signed-in End-User's passkeys; what was done.
async fn manage(
    state: &AppState,
    headers: &HeaderMap,
    session: &BrowserSession,
    action: &str,
    passkey: &PasskeyResponse<'_>,
    pairs: &[(String, String)],
) -> Result<&'static str, OpError> {
    let field = |n: &str| forms::field(pairs, n);
    let provider = &state.provider;
    provider.may_manage_passkeys(session).await?;
    let sub = &session.sub;
    let id = field("credential_id").unwrap_or_default();
    let name = field("name").unwrap_or_default();
    match action {
        "add" => {
            let secret = existing_form_secret(state, headers)
                .ok_or(keybound_op::refusal::PasskeyRefusal::ForeignCeremony)?;
            provider
                .finish_passkey_registration(sub, &secret, passkey.state, passkey.credential, name)
                .await?;
            Ok("added")
        }
        "rename" => provider
            .rename_passkey(sub, id, name)
            .await
            .map(|()| "renamed"),
        _ => provider.remove_passkey(sub, id).await.map(|()| "removed"),
    }
}

/// `303` back to the account page (after a form: reloading it does not post again), with the
/// new session's cookie after a sign-in.
fn to_account(done: Option<&str>, signed_in: Option<&SignedIn>) -> Response {
    let location = match done {
        Some(d) => format!("{}?done={d}", paths::ACCOUNT),
        None => paths::ACCOUNT.to_owned(),
    };
    let mut r = see_other(&location);
    if let Some(s) = signed_in {
        s.apply(&mut r);
    }
    r
}

/// The sign-in form of the account page (no app: the End-User manages their own account).
/// A password session of an account with passkeys is asked to confirm with one.
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    session: Option<&BrowserSession>,
    error: Option<OpError>,
) -> Response {
    let prompt = LoginPrompt {
        need: Strength::Password,
        current: session.map(|s| (s.sub.clone(), Strength::of_amr(&s.amr))),
    };
    sign_in_form(state, headers, &prompt, None, error)
}

fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    prompt: &LoginPrompt,
    reason: Option<&str>,
    error: Option<OpError>,
) -> Response {
    let (status, error) = form_note(error);
    let (csrf, cookie) = csrf_token(state, headers);
    let offer = login_offer(state, prompt);
    let page = pages::Login {
        action: paths::ACCOUNT,
        fields: &[],
        csrf: &csrf,
        client_name: None,
        login_hint: None,
        error: error.as_deref(),
        password: offer.password,
        passkey: offer.passkey,
        reason: reason.or(offer.reason.as_deref()),
    };
    let mut r = login_response(status, &page);
    if let Some(c) = cookie {
        set_cookie(&mut r, &c);
    }
    r
}

/// The account page of the signed-in End-User. A password session of an account with passkeys
/// sees them but must confirm with one before changing them.
async fn account_page(
    state: &AppState,
    headers: &HeaderMap,
    session: &BrowserSession,
    note: Option<&str>,
    error: Option<OpError>,
) -> Response {
    let provider = &state.provider;
    let may_manage = match provider.may_manage_passkeys(session).await {
        Ok(()) => true,
        Err(OpError::Refused(_)) => false,
        Err(e) => return failed(e),
    };
    let user = match provider.store().user(&session.sub).await {
        Ok(Some(u)) => u,
        Ok(None) => return sign_in_page(state, headers, None, None),
        Err(e) => return failed(e),
    };
    let passkeys = match provider.store().passkeys_of(&session.sub).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let items: Vec<pages::PasskeyItem> = passkeys
        .iter()
        .map(|p| pages::PasskeyItem {
            id: p.credential_id.clone(),
            name: p.name.clone(),
            created: when(p.created_at),
            last_used: p.last_used_at.map(when),
        })
        .collect();
    let apps: Vec<pages::AppItem> = match provider.consents(&session.sub).await {
        Ok(list) => list
            .into_iter()
            .map(|(c, name)| pages::AppItem {
                client_id: c.client_id,
                name,
                scopes: c.scopes.into_iter().collect(),
            })
            .collect(),
        Err(e) => return failed(e),
    };
    let (status, error) = form_note(error);
    let (csrf, cookie) = csrf_token(state, headers);
    let available = provider.passkeys_available();
    let manage = match (&available, may_manage) {
        (Err(why), _) => pages::Manage::NoNewPasskeys(why),
        (Ok(()), true) => pages::Manage::Yes,
        (Ok(()), false) => pages::Manage::ConfirmFirst,
    };
    let body = pages::account(&pages::Account {
        action: paths::ACCOUNT,
        csrf: &csrf,
        username: &user.username,
        acr: Strength::of_amr(&session.amr).acr(),
        passkeys: &items,
        apps: &apps,
        manage,
        note,
        error: error.as_deref(),
    });
    let mut r = if pages::has_passkey_script(&body) {
        html_with_script(status, body, pages::PASSKEY_SCRIPT)
    } else {
        html(status, body)
    };
    if let Some(c) = cookie {
        set_cookie(&mut r, &c);
    }
    r
}

/// A time for people: the HTTP date form (UTC).
fn when(unix: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
}

/// `POST /passkey/options`: start a ceremony for the page's passkey button — `register` for the
/// signed-in End-User (account page), `sign_in` discoverable, or with `mode=second_factor` for
/// the End-User signed in with their password. JSON `{options, state}`; refusals as JSON errors.
pub async fn passkey_options(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    match start(&state, &headers, &tb, &pairs).await {
        Ok(ceremony) => {
            let mut r = axum::Json(ceremony).into_response();
            crate::error::no_store(r.headers_mut());
            r
        }
        Err(e) => Failure::api(e).into_response(),
    }
}

async fn start(
    state: &AppState,
    headers: &HeaderMap,
    tb: &TokenBindingContext,
    pairs: &[(String, String)],
) -> Result<keybound_op::passkey::Ceremony, OpError> {
    let field = |n: &str| forms::field(pairs, n);
    let register = match field("ceremony") {
        Some("register") => true,
        Some("sign_in") => false,
        other => return Err(PageRefusal::UnknownAction(other.unwrap_or("").to_owned()).into()),
    };
    let second_factor = field("mode") == Some("second_factor");
    let scope = if register || second_factor {
        FormScope::Session
    } else {
        FormScope::BeforeSignIn
    };
    if !csrf_ok(state, headers, field("csrf"), scope) {
        return Err(PageRefusal::Csrf(RELOAD).into());
    }
    let secret = existing_form_secret(state, headers)
        .ok_or(keybound_op::refusal::PasskeyRefusal::ForeignCeremony)?;
    let session = current_session(state, headers, tb).await?.map(|(_, s)| s);
    let provider = &state.provider;
    match (register, second_factor, session) {
        (true, _, Some(s)) => {
            provider.may_manage_passkeys(&s).await?;
            provider.start_passkey_registration(&s.sub, &secret).await
        }
        (false, true, Some(s)) => provider.start_passkey_sign_in(&secret, Some(&s.sub)).await,
        (false, false, _) => provider.start_passkey_sign_in(&secret, None).await,
        (_, _, None) => Err(PageRefusal::SessionEnded.into()),
    }
}
