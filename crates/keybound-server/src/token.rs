//! Token, pushed authorization request, userinfo, revocation, introspection and registration
//! handlers: each parses its request into the
//! provider's facts, calls one provider function, and answers success as `no-store` JSON or a
//! refusal as a [`Failure`] of its endpoint kind.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keybound_op::refusal::RegistrationRefusal;
use keybound_op::{Form, OpError, ResourceRequest, TokenRequestFacts};

use crate::error::{no_store, nonce_header, Failure};
use crate::{forms, AppState};

/// A `no-store` JSON success, with the next `DPoP-Nonce` when there is one.
pub(crate) fn ok_json(v: impl serde::Serialize, nonce: Option<&str>) -> Response {
    let mut r = Json(v).into_response();
    no_store(r.headers_mut());
    nonce_header(r.headers_mut(), nonce);
    r
}

/// The prelude of every form-posting endpoint, as an extractor: the body must be a form
/// without repeated parameters; `DPoP` and `Authorization` are read from the headers. A
/// malformed request is refused before the handler runs.
pub(crate) struct FormRequest {
    pub(crate) headers: HeaderMap,
    pub(crate) form: Form,
}

impl FormRequest {
    pub(crate) fn authorization(&self) -> Option<&str> {
        forms::header_str(&self.headers, header::AUTHORIZATION)
    }

    pub(crate) fn dpop(&self) -> Vec<&str> {
        forms::header_values(&self.headers, "dpop")
    }

    /// Answer a token-style endpoint's result.
    pub(crate) fn answer<T: serde::Serialize>(
        &self,
        result: Result<T, OpError>,
        nonce: Option<&str>,
    ) -> Response {
        match result {
            Ok(v) => ok_json(v, nonce),
            Err(e) => Failure::token(e, &self.headers).into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for FormRequest {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // take the headers out rather than clone them (every token request passes here)
        let (mut parts, body) = req.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        let req = Request::from_parts(parts, body);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match forms::require_form(&headers).and_then(|()| Form::from_pairs(forms::pairs(&body))) {
            Ok(form) => Ok(FormRequest { headers, form }),
            Err(e) => Err(Failure::token(e, &headers).into_response()),
        }
    }
}

/// `POST /token`
pub async fn token(State(state): State<Arc<AppState>>, r: FormRequest) -> Response {
    let dpop = r.dpop();
    let facts = TokenRequestFacts {
        form: &r.form,
        authorization: r.authorization(),
        dpop: &dpop,
    };
    match state.provider.token(facts).await {
        Ok(ok) => r.answer(Ok(ok.response), ok.dpop_nonce.as_deref()),
        Err(e) => r.answer::<()>(Err(e), None),
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
        Ok(claims) => ok_json(claims, None),
        Err(e) => Failure::resource(e, &headers, &state.dpop_algs).into_response(),
    }
}

/// `POST /revoke` (RFC 7009): 200 for any token, known or not.
pub async fn revoke(State(state): State<Arc<AppState>>, r: FormRequest) -> Response {
    match state.provider.revoke(r.authorization(), &r.form).await {
        Ok(()) => {
            let mut resp = axum::http::StatusCode::OK.into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => r.answer::<()>(Err(e), None),
    }
}

/// `POST /introspect` (RFC 7662)
pub async fn introspect(State(state): State<Arc<AppState>>, r: FormRequest) -> Response {
    let result = state.provider.introspect(r.authorization(), &r.form).await;
    r.answer(result, None)
}

/// `POST /register` (RFC 7591): a JSON metadata document; `201 Created` with the registration.
pub async fn register(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !forms::is_json(&headers) {
        return Failure::registration(RegistrationRefusal::NotJson.into()).into_response();
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.provider.register(authorization, &body).await {
        Ok(v) => {
            let mut r = (axum::http::StatusCode::CREATED, Json(v)).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => Failure::registration(e).into_response(),
    }
}

/// `POST /par` (RFC 9126): 201 with the `request_uri`; refusals as at the token endpoint.
pub async fn par(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let pairs = forms::pairs(&body);
    let form = match forms::require_form(&headers).and_then(|()| Form::from_pairs(pairs.clone())) {
        Ok(f) => f,
        Err(e) => return Failure::token(e, &headers).into_response(),
    };
    let dpop = forms::header_values(&headers, "dpop");
    let facts = TokenRequestFacts {
        form: &form,
        authorization: forms::header_str(&headers, header::AUTHORIZATION),
        dpop: &dpop,
    };
    match state.provider.push_authorization(facts, pairs).await {
        Ok(pushed) => {
            let mut r = (axum::http::StatusCode::CREATED, Json(&pushed)).into_response();
            no_store(r.headers_mut());
            nonce_header(r.headers_mut(), pushed.dpop_nonce.as_deref());
            r
        }
        Err(e) => Failure::token(e, &headers).into_response(),
    }
}
