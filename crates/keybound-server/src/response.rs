//! The HTML responses of the End-User's pages: the security headers every page carries, the
//! `303` redirect, and the authorization response as the user agent needs it (a redirect, or a
//! `form_post` page whose CSP allows only its own script). Its own module because both the
//! authorization handler and the one error form ([`crate::error`]) answer with them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::pages;

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // the page's words depend on Accept-Language
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    r
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The one inline script of a `form_post` page, allowed by its hash.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

/// The authorization response as the user agent needs it: a `303` to the redirect URI (query or
/// fragment), or for `form_post` a page that posts the parameters there. Its CSP allows only
/// that script (by hash) and only that form target.
pub(crate) fn respond(r: &keybound_op::AuthorizationResponse) -> Response {
    if let Some(url) = r.url() {
        return see_other(&url);
    }
    html_with_script(
        StatusCode::OK,
        pages::form_post(&r.redirect_uri, &r.params, FORM_POST_SCRIPT),
        FORM_POST_SCRIPT,
    )
}

/// An HTML page whose one inline `script` may run (allowed by its hash in the CSP) and fetch
/// from this origin (`connect-src 'self'`: the passkey button asks for its options).
pub(crate) fn html_with_script(status: StatusCode, body: String, script: &str) -> Response {
    let mut resp = html(status, body);
    // CSP hashes are standard base64 (with padding), not base64url
    let mut hash: String = keybound_jose::sha256_b64(script.as_bytes())
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while hash.len() % 4 != 0 {
        hash.push('=');
    }
    // no form-action: Chromium applies it along the redirect chain, so it would stop an RP
    // whose callback answers the post with a redirect to another origin; the page's forms
    // are ours (their actions and fields escaped) and only its own script may run
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; connect-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert("content-security-policy", v);
    }
    resp
}
