//! The one place where errors become HTTP: status codes, JSON bodies (RFC 6749 §5.2),
//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9449 §7.1), `DPoP-Nonce` headers, and
//! `Cache-Control: no-store`. Bad input is always a 4xx with a description, never a 500.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keybound_op::{OpError, ResourceError};
use keybound_proto::wire::{ErrorCode, ErrorResponse};

/// The OAuth error code of a response, carried as a response extension so the metrics
/// middleware can count errors per endpoint and code.
#[derive(Debug, Clone, Copy)]
pub struct OAuthErrorCode(pub ErrorCode);

/// HTTP status for an OAuth error code at a token-style endpoint.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::InsufficientScope | ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Headers every token-style response carries.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn nonce_header(headers: &mut HeaderMap, nonce: Option<&String>) {
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert("dpop-nonce", v);
    }
}

/// A token, revocation or introspection endpoint error.
#[derive(Debug)]
pub struct TokenError {
    /// the decision
    pub error: OpError,
    /// the client tried HTTP Basic (answer 401 with a Basic challenge)
    pub basic: bool,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let e = self.error;
        if e.code == ErrorCode::ServerError {
            tracing::error!(description = %e.description, "token endpoint failure");
        }
        let body = ErrorResponse::new(e.code, e.description.clone());
        let mut resp = (status_of(e.code), axum::Json(body)).into_response();
        resp.extensions_mut().insert(OAuthErrorCode(e.code));
        let h = resp.headers_mut();
        no_store(h);
        nonce_header(h, e.dpop_nonce.as_ref());
        if e.code == ErrorCode::InvalidClient && self.basic {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"keybound\""),
            );
        }
        resp
    }
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

/// A protected-resource error: 401/403 with a `WWW-Authenticate` challenge.
#[derive(Debug)]
pub struct ResourceFailure {
    /// the decision
    pub error: ResourceError,
    /// the `algs` to advertise with a DPoP challenge
    pub algs: String,
}

impl IntoResponse for ResourceFailure {
    fn into_response(self) -> Response {
        let e = self.error;
        let status = match e.code {
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut challenge = format!(
            "{} error=\"{}\", error_description=\"{}\"",
            e.scheme,
            e.code.as_str(),
            quote(&e.description)
        );
        if e.scheme == "DPoP" {
            challenge.push_str(&format!(", algs=\"{}\"", self.algs));
        }
        let body = ErrorResponse::new(e.code, e.description.clone());
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(OAuthErrorCode(e.code));
        let h = resp.headers_mut();
        no_store(h);
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        nonce_header(h, e.dpop_nonce.as_ref());
        resp
    }
}
