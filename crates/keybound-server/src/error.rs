//! The one place where errors become HTTP. Every handler answers a refusal with a
//! [`Failure`]: the provider's [`OpError`] and the kind of endpoint it happened at. Its status,
//! OAuth code and description come from [`OpError::wire`] (keybound-op, the one mapping); this
//! module only chooses the form: a JSON body (RFC 6749 §5.2) at token-style endpoints, a JSON
//! body with a `WWW-Authenticate` challenge at protected resources (RFC 6750 §3, RFC 9449
//! §7.1), an HTML error page or a redirect with the error for the End-User's pages. It adds
//! `DPoP-Nonce`, `Retry-After` and `Cache-Control: no-store`.
//!
//! Internal failures show the client only a generic message and a request id; their cause
//! travels in an [`InternalCause`] response extension to the metrics middleware, which logs it
//! with the same request id.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keybound_op::{AuthorizeError, Endpoint, OpError, WireError};
use keybound_proto::wire::{challenge, ErrorCode, ErrorResponse};

use crate::{forms, pages};

/// The OAuth error code of a response, carried as a response extension so the metrics
/// middleware can count errors per endpoint and code.
#[derive(Debug, Clone, Copy)]
pub struct OAuthErrorCode(pub ErrorCode);

/// The cause of an internal failure, for the log (never sent to the client).
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// Headers every token-style response carries.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Put `nonce` into a `DPoP-Nonce` header.
pub fn nonce_header(headers: &mut HeaderMap, nonce: Option<&str>) {
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert("dpop-nonce", v);
    }
}

/// Which authentication scheme a resource request used (the challenge carries the error
/// only on that scheme, RFC 9449 §7.1).
fn scheme_used(headers: &HeaderMap) -> Option<&'static str> {
    let auth = forms::header_str(headers, header::AUTHORIZATION)?;
    let scheme = auth.split(' ').next().unwrap_or("");
    if scheme.eq_ignore_ascii_case("dpop") {
        Some("DPoP")
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some("Bearer")
    } else {
        None
    }
}

fn uses_basic(headers: &HeaderMap) -> bool {
    forms::header_str(headers, header::AUTHORIZATION)
        .is_some_and(|a| a.len() > 6 && a[..6].eq_ignore_ascii_case("basic "))
}

/// A refusal at any endpoint, in the form its endpoint kind calls for. The error is mapped to
/// the wire once, when the failure is made.
#[derive(Debug)]
pub struct Failure {
    at: Endpoint,
    wire: WireError,
    /// an internal failure's cause, for the log
    cause: Option<String>,
    /// `WWW-Authenticate` value, when the endpoint kind has one
    challenge: Option<String>,
    /// for authorization errors once the redirect URI is established
    redirect: Option<keybound_op::AuthorizationResponse>,
    /// the RFC 9457 problem type, at the admin API
    problem: Option<String>,
    /// the End-User's words for it, on pages (a catalogue key)
    words: Option<&'static str>,
}

impl Failure {
    #[allow(clippy::needless_pass_by_value)] // the error ends here: a failure is all that is left of it
    fn new(error: OpError, at: Endpoint) -> Self {
        Failure {
            at,
            words: page_words(&error),
            wire: error.wire(at),
            cause: error.is_internal().then(|| error.to_string()),
            challenge: None,
            redirect: None,
            problem: None,
        }
    }

    /// At a token-style endpoint (token, device authorization, revocation, introspection):
    /// a client that tried HTTP Basic and failed gets a `Basic` challenge (RFC 6749 §5.2).
    pub fn token(error: OpError, headers: &HeaderMap) -> Self {
        let mut f = Failure::new(error, Endpoint::Token);
        if f.wire.code == Some(ErrorCode::InvalidClient) && uses_basic(headers) {
            f.challenge = Some("Basic realm=\"keybound\"".to_owned());
        }
        f
    }

    /// At an API endpoint without client authentication (JWKS): a JSON error.
    pub fn api(error: OpError) -> Self {
        Failure::new(error, Endpoint::Token)
    }

    /// At the registration endpoint: JSON errors (RFC 7591 §3.2.2); a missing or unusable
    /// initial access token is a `Bearer` challenge (RFC 6750 §3.1).
    pub fn registration(error: OpError) -> Self {
        let mut f = Failure::new(error, Endpoint::Token);
        if f.wire.code == Some(ErrorCode::InvalidToken) {
            let e = (ErrorCode::InvalidToken, f.wire.description.as_str());
            f.challenge = Some(challenge("Bearer", Some(e), None));
        }
        f
    }

    /// At a protected resource accepting `DPoP` and `Bearer`, advertising `algs` (DP-R4).
    pub fn resource(error: OpError, headers: &HeaderMap, algs: &str) -> Self {
        let mut f = Failure::new(error, Endpoint::Resource);
        let err = f.wire.code.map(|c| (c, f.wire.description.as_str()));
        let dpop = |e| challenge("DPoP", e, Some(algs));
        let bearer = |e| challenge("Bearer", e, None);
        let value = match (scheme_used(headers), err) {
            // RFC 6750 §3.1: no credentials, no error code; both schemes offered
            (_, None) => format!("{}, {}", dpop(None), bearer(None)),
            (Some("Bearer"), Some(e)) => format!("{}, {}", bearer(Some(e)), dpop(None)),
            (_, Some(e)) => dpop(Some(e)),
        };
        f.challenge = Some(value);
        f
    }

    /// At the admin API: an RFC 9457 problem document; its authorization refusals carry a
    /// `DPoP` challenge (only DPoP is accepted there).
    pub fn admin(error: OpError, algs: &str) -> Self {
        let problem = error.problem_type();
        let mut f = Failure::new(error, Endpoint::Admin);
        if matches!(f.wire.status, 401 | 403) {
            let err = f.wire.code.map(|c| (c, f.wire.description.as_str()));
            f.challenge = Some(challenge("DPoP", err, Some(algs)));
        }
        f.problem = Some(problem);
        f
    }

    /// On an End-User page: an HTML error page.
    pub fn page(error: OpError) -> Self {
        Failure::new(error, Endpoint::Page)
    }
}

/// What an End-User is told of a refusal, in their language: the catalogue key of the
/// refusals End-Users meet on pages. Others show the provider's description (written for the
/// developer of the app that sent them here).
fn page_words(e: &OpError) -> Option<&'static str> {
    use keybound_op::refusal::{PageRefusal as P, Refusal};
    match e {
        OpError::Refused(Refusal::Page(p)) => match p {
            P::MissingCredentials => Some("message.missing_credentials"),
            P::WrongPassword => Some("message.wrong_password"),
            P::SessionEnded => Some("message.session_ended"),
            P::Csrf(_) => Some("message.csrf"),
            P::UnknownUserCode => Some("message.unknown_user_code"),
            P::UserCodeUsed => Some("message.user_code_used"),
            _ => None,
        },
        _ => None,
    }
}

/// The text of a page refusal: the End-User's words when it has some, else the description.
fn page_text(words: Option<&'static str>, description: &str) -> String {
    match words {
        Some(key) => crate::theme::page_context().words.t(key).to_owned(),
        None => description.to_owned(),
    }
}

/// An End-User page that shows a form again with a message (a wrong password, a missing field,
/// an unknown device code): the one mapping's status for `why` on pages, and its message.
pub(crate) fn form_message(why: impl Into<OpError>) -> (StatusCode, String) {
    let e = why.into();
    let w = e.wire(Endpoint::Page);
    let status = StatusCode::from_u16(w.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, page_text(page_words(&e), &w.description))
}

/// A form shown for the first time (200, no note) or again for `why`.
pub(crate) fn form_note(why: Option<impl Into<OpError>>) -> (StatusCode, Option<String>) {
    match why.map(form_message) {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    }
}

/// An End-User page refusing for `why`.
pub(crate) fn page_refused(why: impl Into<OpError>) -> Response {
    Failure::page(why.into()).into_response()
}

/// An End-User page failing with a provider or store error.
pub(crate) fn page_failed(e: impl Into<OpError>) -> Response {
    Failure::page(e.into()).into_response()
}

impl From<AuthorizeError> for Failure {
    fn from(e: AuthorizeError) -> Self {
        let redirect = e.response();
        Failure {
            redirect,
            ..Failure::page(e.into_error())
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if let Some(r) = &self.redirect {
            return crate::response::respond(r);
        }
        let w = self.wire;
        let status = StatusCode::from_u16(w.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = match (self.at, &self.problem) {
            (Endpoint::Page, _) => {
                crate::response::html(status, pages::error(&page_text(self.words, &w.description)))
            }
            (_, Some(kind)) => {
                let mut body = serde_json::json!({
                    "type": kind,
                    "title": status.canonical_reason().unwrap_or("Refused"),
                    "status": w.status,
                    "detail": w.description,
                });
                if let Some(code) = w.code {
                    body["error"] = code.as_str().into();
                }
                let mut r = (status, axum::Json(body)).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                r
            }
            (_, None) => match w.code {
                Some(code) => {
                    let body = ErrorResponse::new(code, w.description.clone());
                    (status, axum::Json(body)).into_response()
                }
                None => status.into_response(),
            },
        };
        if let Some(code) = w.code {
            resp.extensions_mut().insert(OAuthErrorCode(code));
        }
        if let Some(cause) = self.cause {
            resp.extensions_mut().insert(InternalCause(cause));
        }
        let h = resp.headers_mut();
        no_store(h);
        nonce_header(h, w.dpop_nonce.as_deref());
        if let Some(v) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(s) = w.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
