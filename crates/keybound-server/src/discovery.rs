//! Discovery (OpenID Connect Discovery 1.0 / RFC 8414) and the JWK Set, built from the same
//! path constants the router uses.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keybound_op::{SUPPORTED_CLAIMS, SUPPORTED_SCOPES};
use keybound_proto::wire::ProviderMetadata;

use crate::AppState;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The provider metadata document.
pub fn metadata(state: &AppState) -> ProviderMetadata {
    let mut m = base_metadata(state);
    // OIDC Token Bound Authentication §5.2, when Token Binding is on
    if state.config.token_binding != crate::TokenBindingMode::Off {
        m.extra.insert(
            "op_id_token_token_binding_supported".to_owned(),
            true.into(),
        );
        m.extra.insert(
            "id_token_token_binding_cnf_values_supported".to_owned(),
            serde_json::json!(["tbh"]),
        );
    }
    m
}

fn base_metadata(state: &AppState) -> ProviderMetadata {
    let c = &state.provider.config;
    let e = &c.endpoints;
    let algs: Vec<String> = c
        .dpop
        .allowed_algs
        .iter()
        .map(|a| a.name().to_owned())
        .collect();
    ProviderMetadata {
        issuer: c.issuer.clone(),
        authorization_endpoint: e.authorization.clone(),
        token_endpoint: e.token.clone(),
        jwks_uri: e.jwks.clone(),
        userinfo_endpoint: Some(e.userinfo.clone()),
        revocation_endpoint: Some(e.revocation.clone()),
        introspection_endpoint: Some(e.introspection.clone()),
        device_authorization_endpoint: Some(e.device_authorization.clone()),
        registration_endpoint: Some(e.registration.clone()),
        scopes_supported: strings(&SUPPORTED_SCOPES),
        response_types_supported: strings(&[
            "code",
            "id_token",
            "id_token token",
            "code id_token",
            "code token",
            "code id_token token",
        ]),
        response_modes_supported: strings(&["query", "fragment", "form_post"]),
        grant_types_supported: strings(&[
            "authorization_code",
            "implicit",
            "refresh_token",
            keybound_proto::wire::grant_type::CLIENT_CREDENTIALS,
            keybound_proto::wire::grant_type::DEVICE_CODE,
            keybound_proto::wire::grant_type::TOKEN_EXCHANGE,
            keybound_proto::wire::grant_type::JWT_BEARER,
        ]),
        subject_types_supported: strings(&["public"]),
        id_token_signing_alg_values_supported: strings(&["ES256"]),
        token_endpoint_auth_methods_supported: strings(&[
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ]),
        token_endpoint_auth_signing_alg_values_supported: algs.clone(),
        claims_supported: strings(&SUPPORTED_CLAIMS),
        code_challenge_methods_supported: strings(&["S256"]),
        dpop_signing_alg_values_supported: algs,
        authorization_response_iss_parameter_supported: true,
        // OIDC Discovery: request_uri_parameter_supported defaults to true, so say no (the
        // only request_uri accepted is this server's own from PAR)
        extra: [
            ("request_parameter_supported".to_owned(), true.into()),
            (
                "request_object_signing_alg_values_supported".to_owned(),
                serde_json::json!(keybound_jose::Algorithm::ALL
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()),
            ),
            ("request_uri_parameter_supported".to_owned(), false.into()),
            // OIDC Discovery §3: the acr values this OP issues (weakest first) and the claims
            // parameter (its essential acr is honoured)
            (
                "acr_values_supported".to_owned(),
                serde_json::json!(keybound_op::passkey::acr::SUPPORTED),
            ),
            ("claims_parameter_supported".to_owned(), true.into()),
            // RFC 9126 §5
            (
                "pushed_authorization_request_endpoint".to_owned(),
                e.par.clone().into(),
            ),
            (
                "require_pushed_authorization_requests".to_owned(),
                (c.require_par || c.fapi2).into(),
            ),
            // RP-Initiated Logout 1.0 §2.1, Back-Channel Logout 1.0 §2.1 (sid in logout
            // tokens and ID Tokens)
            (
                "end_session_endpoint".to_owned(),
                e.end_session.clone().into(),
            ),
            ("backchannel_logout_supported".to_owned(), true.into()),
            (
                "backchannel_logout_session_supported".to_owned(),
                true.into(),
            ),
            // identity chaining (draft-ietf-oauth-identity-chaining §2.3, ID-JAG §4.4)
            (
                "identity_chaining_requested_token_types_supported".to_owned(),
                serde_json::json!([keybound_proto::wire::token_type::ID_JAG]),
            ),
            // ID-JAG §4.4: this server redeems ID-JAGs (from the issuers it trusts; the list
            // is not published)
            (
                "authorization_grant_profiles_supported".to_owned(),
                serde_json::json!(["urn:ietf:params:oauth:grant-profile:id-jag"]),
            ),
        ]
        .into_iter()
        .collect(),
        ..ProviderMetadata::default()
    }
}

/// `GET /.well-known/openid-configuration`
pub async fn discovery(State(state): State<Arc<AppState>>) -> Response {
    let mut r = Json(metadata(&state)).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// `GET /jwks`: next, current and recently retired keys.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    match state.provider.jwks().await {
        Ok(set) => {
            let mut r = Json(set.to_value()).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
        Err(e) => crate::error::Failure::api(e).into_response(),
    }
}

/// `GET /healthz`: the store answers (a round trip on every call, bounded by the pool's
/// acquire timeout) and a signing key is available.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if let Err(e) = state.provider.store().ping().await {
        tracing::warn!(error = %e, "health check: the store does not answer");
        return unhealthy("store unavailable\n");
    }
    match state.provider.current_key().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => unhealthy("no signing key or store unavailable\n"),
    }
}

/// A failed health check: 503 with `Retry-After`, like every endpoint while the store is away.
fn unhealthy(why: &'static str) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}
