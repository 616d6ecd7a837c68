//! Token, userinfo, revocation and introspection handlers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keybound_op::token::Form;
use keybound_op::{ResourceRequest, TokenRequestFacts};

use crate::error::{no_store, ResourceFailure, TokenError};
use crate::{forms, AppState};

fn uses_basic(headers: &HeaderMap) -> bool {
    forms::header_str(headers, header::AUTHORIZATION)
        .is_some_and(|a| a.len() > 6 && a[..6].eq_ignore_ascii_case("basic "))
}

fn ok_json(v: impl serde::Serialize) -> Response {
    let mut r = Json(v).into_response();
    no_store(r.headers_mut());
    r
}

fn failed(headers: &HeaderMap, error: keybound_op::OpError) -> Response {
    TokenError {
        error,
        basic: uses_basic(headers),
    }
    .into_response()
}

fn parse_form(headers: &HeaderMap, body: &Bytes) -> Result<Form, TokenError> {
    let basic = uses_basic(headers);
    forms::require_form(headers).map_err(|error| TokenError { error, basic })?;
    Form::from_pairs(forms::pairs(body)).map_err(|error| TokenError { error, basic })
}

/// `POST /token`
pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let dpop = forms::header_values(&headers, "dpop");
    let facts = TokenRequestFacts {
        form: &form,
        authorization: forms::header_str(&headers, header::AUTHORIZATION),
        dpop: &dpop,
    };
    match state.provider.token(facts).await {
        Ok(ok) => {
            let mut r = ok_json(ok.response);
            if let Some(v) = ok.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                r.headers_mut().insert("dpop-nonce", v);
            }
            r
        }
        Err(error) => failed(&headers, error),
    }
}

/// `GET|POST /userinfo`
pub async fn userinfo(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let dpop = forms::header_values(&headers, "dpop");
    let req = ResourceRequest {
        authorization: forms::header_str(&headers, header::AUTHORIZATION),
        dpop: &dpop,
        htm: method.as_str(),
        // the externally visible URL of this endpoint, not what a proxy forwarded
        htu: &state.provider.config.endpoints.userinfo,
    };
    match state.provider.userinfo(req).await {
        Ok(claims) => ok_json(claims),
        Err(error) => ResourceFailure {
            error,
            algs: keybound_jose::Algorithm::list(&state.provider.config.dpop.allowed_algs)
                .replace(", ", " "),
        }
        .into_response(),
    }
}

/// `POST /revoke` (RFC 7009): 200 for any token, known or not.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let auth = forms::header_str(&headers, header::AUTHORIZATION);
    match state.provider.revoke(auth, &form).await {
        Ok(()) => {
            let mut r = axum::http::StatusCode::OK.into_response();
            no_store(r.headers_mut());
            r
        }
        Err(error) => failed(&headers, error),
    }
}

/// `POST /introspect` (RFC 7662)
pub async fn introspect(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match parse_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let auth = forms::header_str(&headers, header::AUTHORIZATION);
    match state.provider.introspect(auth, &form).await {
        Ok(v) => ok_json(v),
        Err(error) => failed(&headers, error),
    }
}
