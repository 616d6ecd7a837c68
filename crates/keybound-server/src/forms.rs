//! Request parsing shared by the handlers: form and query pairs, the form content type,
//! cookies and header values. Duplicate parameters are refused where the pairs become a
//! request (`keybound_op::Form` for token-style endpoints, the authorization handler for
//! `/authorize`); the externally visible URL of an endpoint comes from the provider's
//! configured endpoints, never from the request.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use keybound_op::refusal::RequestRefusal;
use keybound_op::OpError;

/// Decode `application/x-www-form-urlencoded` bytes into pairs.
pub fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// Whether the request body's media type (parameters aside) is `media`.
fn has_media_type(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
        })
}

/// The value of field `name` among `pairs` (the first, if it repeats).
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the request body is a form.
pub fn is_form(headers: &HeaderMap) -> bool {
    has_media_type(headers, "application/x-www-form-urlencoded")
}

/// Whether the request body is JSON (dynamic client registration).
pub fn is_json(headers: &HeaderMap) -> bool {
    has_media_type(headers, "application/json")
}

/// Require a form body.
pub fn require_form(headers: &HeaderMap) -> Result<(), OpError> {
    if is_form(headers) {
        Ok(())
    } else {
        Err(RequestRefusal::NotAForm.into())
    }
}

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// All values of a header, as strings (invalid UTF-8 values are skipped).
pub fn header_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// One header as a string.
pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The form body of a POST to an End-User page (login, consent, device, logout): a body that is
/// not a form is refused with an HTML error page.
pub(crate) struct PageForm(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_form(req.headers()) {
            return Err(crate::error::page_refused(RequestRefusal::NotAForm));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(PageForm(pairs(&body)))
    }
}
