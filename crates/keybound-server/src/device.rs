//! The device flow's HTTP side: the device authorization endpoint and the `/device`
//! verification page (code entry, login, consent with the phishing warning, approve/deny),
//! with attempt limits against user-code guessing per browser (CSRF cookie) and per source
//! address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use keybound_jose::Jkt;
use keybound_op::{paths, DeviceRequestFacts, OpError};
use keybound_proto::wire::ErrorCode;

use crate::authorize::html;
use crate::error::{page_failed as failed, page_refused as refused, page_status};
use crate::session::{csrf_ok, csrf_token, current_session, set_cookie, sign_in, FormScope};
use crate::token::FormRequest;
use crate::{forms, pages, AppState};

/// Failed user-code attempts allowed per browser and per source address in one window.
const PER_BROWSER: u32 = 5;
const PER_ADDRESS: u32 = 20;
const WINDOW: u64 = 900;

/// Counts failed user-code attempts (per node; a guess costs at least one request per attempt).
#[derive(Debug, Default)]
pub struct AttemptLimiter {
    counts: Mutex<HashMap<String, (u32, u64)>>,
}

impl AttemptLimiter {
    fn blocked(&self, key: &str, limit: u32, now: u64) -> bool {
        let g = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        g.get(key)
            .is_some_and(|(n, start)| now < start + WINDOW && *n >= limit)
    }

    fn fail(&self, key: &str, now: u64) {
        let mut g = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if g.len() > 100_000 {
            g.retain(|_, (_, start)| now < *start + WINDOW);
        }
        let e = g.entry(key.to_owned()).or_insert((0, now));
        if now >= e.1 + WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
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
pub async fn device_post(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = req.headers().clone();
    if !forms::is_form(&headers) {
        return refused(
            ErrorCode::InvalidRequest,
            "the form must be application/x-www-form-urlencoded",
        );
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return refused(ErrorCode::InvalidRequest, "the form is too large");
    };
    let pairs = forms::pairs(&body);
    let field = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let scope = if field("kb_action") == Some("consent") {
        FormScope::Session
    } else {
        FormScope::BeforeSignIn
    };
    if !csrf_ok(&state, &headers, field("csrf"), scope) {
        return refused(
            ErrorCode::AccessDenied,
            "This form expired or was not sent by this site (CSRF check failed). Open the device page again.",
        );
    }
    let now = state.provider.now();
    let browser_key = format!(
        "b:{}",
        forms::cookie(&headers, "kb_csrf").unwrap_or_default()
    );
    let ip_key = ip.map(|i| format!("ip:{i}"));
    let limited = state
        .device_attempts
        .blocked(&browser_key, PER_BROWSER, now)
        || ip_key
            .as_ref()
            .is_some_and(|k| state.device_attempts.blocked(k, PER_ADDRESS, now));
    if limited {
        return failed(OpError::Throttled {
            description:
                "Too many wrong codes. Wait 15 minutes, then enter the code shown on your device again."
                    .into(),
            retry_after: WINDOW,
        });
    }
    let (csrf, cookie) = csrf_token(&state, &headers);
    let typed = field("user_code").unwrap_or("");
    let found = match state.provider.device_lookup(typed).await {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let Some((hash, auth, client)) = found else {
        state.device_attempts.fail(&browser_key, now);
        if let Some(k) = &ip_key {
            state.device_attempts.fail(k, now);
        }
        let page = pages::device_entry(paths::DEVICE, &csrf, typed, Some("That code is not valid, has expired, or was already used. Check the code on your device."));
        return with_cookie(html(page_status(ErrorCode::InvalidRequest), page), cookie);
    };
    let shown = format!("{}-{}", &auth.user_code[..4], &auth.user_code[4..]);
    let session = current_session(&state, &headers).await.map(|(_, s)| s);
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
    let login = |csrf: &str, error: Option<&str>| {
        pages::login(
            paths::DEVICE,
            &[("user_code".into(), shown.clone())],
            csrf,
            &client.name,
            None,
            error,
        )
    };
    match (field("kb_action").unwrap_or("code"), session) {
        ("code", None) => with_cookie(html(StatusCode::OK, login(&csrf, None)), cookie),
        ("code", Some(_)) => with_cookie(html(StatusCode::OK, consent(&csrf)), cookie),
        ("login", _) => {
            let (Some(u), Some(p)) = (field("username"), field("password")) else {
                return with_cookie(
                    html(
                        page_status(ErrorCode::InvalidRequest),
                        login(&csrf, Some("Enter your username and password.")),
                    ),
                    cookie,
                );
            };
            match sign_in(&state, u, p, None, ip).await {
                Ok(Some(signed_in)) => {
                    let mut r = html(StatusCode::OK, consent(&signed_in.csrf));
                    set_cookie(&mut r, &signed_in.set_cookie);
                    r
                }
                Ok(None) => with_cookie(
                    html(
                        page_status(ErrorCode::LoginRequired),
                        login(&csrf, Some("Wrong username or password.")),
                    ),
                    cookie,
                ),
                Err(e) => failed(e),
            }
        }
        ("consent", Some(sess)) => {
            let approve = match field("decision") {
                Some("allow") => true,
                Some("deny") => false,
                _ => return refused(ErrorCode::InvalidRequest, "choose Approve or Deny"),
            };
            match state.provider.device_decide(&hash, &sess, approve).await {
                Ok(true) => html(StatusCode::OK, pages::device_done(approve)),
                Ok(false) => refused(
                    ErrorCode::InvalidRequest,
                    "This code was already used or has expired.",
                ),
                Err(e) => failed(e),
            }
        }
        ("consent", None) => with_cookie(
            html(
                page_status(ErrorCode::LoginRequired),
                login(&csrf, Some("Your session ended; sign in again.")),
            ),
            cookie,
        ),
        (other, _) => refused(
            ErrorCode::InvalidRequest,
            &format!("unknown form action '{other}'"),
        ),
    }
}
