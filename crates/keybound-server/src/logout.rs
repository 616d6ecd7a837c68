//! Logging out: the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0), the OP's own
//! sign-out form (`POST /logout`), and the delivery of back-channel logout tokens.
//!
//! Both ways out end the session through [`sign_out`]: the provider marks the session logged
//! out and signs a logout token for every client it signed in to that registered a
//! back-channel logout URI; the session is deleted and its cookie cleared; the tokens are
//! POSTed by a background task ([`Deliveries`]) so a slow or dead RP never holds up the
//! End-User's logout. Who may end a session, and whether to ask first, is the provider's
//! decision (`keybound_op::logout`); this module only speaks HTTP.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use keybound_op::logout::{EndSession, EndSessionRequest, LogoutDelivery};
use keybound_op::refusal::PageRefusal;
use keybound_op::{paths, Form, OpError};
use keybound_store::{BrowserSession, TokenHash};

use crate::error::{page_failed as failed, page_refused as refused};
use crate::forms::PageForm;
use crate::peer::TokenBinding;
use crate::response::{html, see_other};
use crate::session::{csrf_ok, csrf_token, current_session, set_cookie, FormScope};
use crate::{forms, pages, AppState};

/// Time for one POST of a logout token.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per logout token (a network error or a 5xx is tried again; an RP's 4xx is final).
const DELIVERY_ATTEMPTS: u32 = 3;
/// Wait before the second attempt; doubled before each later one.
const DELIVERY_BACKOFF: Duration = Duration::from_secs(1);

/// The HTTP client that delivers back-channel logout tokens: no redirects followed (the RP
/// registered the URI it answers at), a timeout per attempt.
#[derive(Debug, Clone)]
pub struct Deliveries {
    http: reqwest::Client,
}

impl Default for Deliveries {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Deliveries { http }
    }
}

impl Deliveries {
    /// POST each token in the background (Back-Channel Logout §2.5), with bounded retries; the
    /// outcome is logged (client and URI, never the token).
    pub fn send(&self, deliveries: Vec<LogoutDelivery>) {
        for d in deliveries {
            let http = self.http.clone();
            tokio::spawn(async move { deliver(&http, &d).await });
        }
    }
}

async fn deliver(http: &reqwest::Client, d: &LogoutDelivery) {
    let mut wait = DELIVERY_BACKOFF;
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let sent = http
            .post(&d.uri)
            .header("cache-control", "no-store")
            .form(&[("logout_token", d.logout_token.as_str())])
            .send()
            .await;
        let retry = match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(client_id = %d.client_id, uri = %d.uri, "back-channel logout delivered");
                return;
            }
            Ok(r) => {
                let status = r.status();
                tracing::warn!(client_id = %d.client_id, uri = %d.uri, %status, attempt, "back-channel logout refused by the client");
                status.is_server_error()
            }
            Err(e) => {
                tracing::warn!(client_id = %d.client_id, uri = %d.uri, error = %e, attempt, "back-channel logout not delivered");
                true
            }
        };
        if !retry || attempt == DELIVERY_ATTEMPTS {
            return;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

/// End the session stored under `key`: the provider's end of it (mark, logout tokens), then
/// the store's; the logout tokens go out in the background.
async fn sign_out(
    state: &AppState,
    key: &TokenHash,
    session: &BrowserSession,
) -> Result<(), OpError> {
    let deliveries = state.provider.end_session(session).await?;
    state.provider.store().delete_session(key).await?;
    state.logout.send(deliveries);
    Ok(())
}

/// `GET /end_session`: RP-Initiated Logout §2 by query.
pub async fn end_session_get(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = forms::pairs(q.unwrap_or_default().as_bytes());
    end_session(&state, &headers, &tb, pairs).await
}

/// `POST /end_session`: RP-Initiated Logout §2 by form, and the confirmation form.
pub async fn end_session_post(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    end_session(&state, &headers, &tb, pairs).await
}

async fn end_session(
    state: &AppState,
    headers: &HeaderMap,
    tb: &crate::peer::TokenBindingContext,
    pairs: Vec<(String, String)>,
) -> Response {
    let form = match Form::from_pairs(pairs) {
        Ok(f) => f,
        Err(e) => return refused(e),
    };
    let request = EndSessionRequest {
        id_token_hint: form.get("id_token_hint"),
        client_id: form.get("client_id"),
        post_logout_redirect_uri: form.get("post_logout_redirect_uri"),
        state: form.get("state"),
    };
    let end = match state.provider.end_session_request(request).await {
        Ok(e) => e,
        Err(e) => return refused(e),
    };
    let current = match current_session(state, headers, tb).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let Some((key, session)) = current else {
        // no session here (already signed out, or another browser): nothing to end
        return finished(state, &end, false);
    };
    match form.get("kb_action") {
        // the End-User answered the confirmation page
        Some("logout") => {
            if !csrf_ok(state, headers, form.get("csrf"), FormScope::Session) {
                return refused(PageRefusal::Csrf("Go back to the app and sign out again."));
            }
            match form.get("decision") {
                Some("yes") => {}
                Some("no") => return finished(state, &end, true),
                _ => return refused(PageRefusal::ChooseDecision("Sign out or Stay signed in")),
            }
        }
        Some(other) => return refused(PageRefusal::UnknownAction(other.to_owned())),
        // §2: ask unless the hint names this very session
        None if !end.names(&session) => return confirm(state, headers, &end),
        None => {}
    }
    if let Err(e) = sign_out(state, &key, &session).await {
        return failed(e);
    }
    finished(state, &end, false)
}

/// The confirmation page (§2: the OP asks when the hint is missing or names another session):
/// a form tied to this session's CSRF token, carrying the request's client, redirect URI and
/// state (checked again when it comes back).
fn confirm(state: &AppState, headers: &HeaderMap, end: &EndSession) -> Response {
    // a session is current here, so the form secret is its cookie (no pre-session cookie)
    let (csrf, _) = csrf_token(state, headers);
    let mut fields = Vec::new();
    for (name, value) in [
        ("client_id", &end.client_id),
        ("post_logout_redirect_uri", &end.post_logout_redirect_uri),
        ("state", &end.state),
    ] {
        if let Some(v) = value {
            fields.push((name.to_owned(), v.clone()));
        }
    }
    html(
        StatusCode::OK,
        pages::logout_confirm(paths::END_SESSION, &fields, &csrf),
    )
}

/// After logging out, or declining to (`stayed`): to the client's registered post-logout
/// redirect URI with `state` (§3), else the provider's own page. Unless the End-User stayed,
/// the session cookie is cleared.
fn finished(state: &AppState, end: &EndSession, stayed: bool) -> Response {
    let mut r = match end.redirect() {
        Some(url) => see_other(&url),
        None => html(StatusCode::OK, pages::signed_out(stayed)),
    };
    if !stayed {
        set_cookie(&mut r, &state.clear_session_cookie());
    }
    r
}

/// `POST /logout`: the OP's own sign-out form (CSRF-checked with the session's token).
pub async fn logout(
    State(state): State<Arc<AppState>>,
    TokenBinding(tb): TokenBinding,
    headers: HeaderMap,
    PageForm(pairs): PageForm,
) -> Response {
    let csrf = pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    let current = match current_session(&state, &headers, &tb).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    if let Some((key, session)) = current {
        if !csrf_ok(&state, &headers, csrf.as_deref(), FormScope::Session) {
            return refused(PageRefusal::Csrf("Go back and sign out again."));
        }
        if let Err(e) = sign_out(&state, &key, &session).await {
            return failed(e);
        }
    }
    let mut r = html(StatusCode::OK, pages::signed_out(false));
    set_cookie(&mut r, &state.clear_session_cookie());
    r
}
