//! The operator's API, `/admin/v1/…`: JSON over HTTP for what `keybound admin` does on the
//! database, served on the management listener (never the public one unless an operator
//! says so). Every operation is one entry of [`operations`], which both builds the router and
//! writes the OpenAPI 3.1 document (`/admin/v1/openapi.json`), so the document cannot name a
//! route that does not exist or miss one that does; the schemas come from the documents'
//! types (`keybound_op::admin`).
//!
//! Authorization is the provider's ([`keybound_op::Provider::authorize_admin`]): a DPoP-bound
//! access token of the client credentials grant with the scope `keybound:admin`. The resource
//! metadata (RFC 9728) at `/.well-known/oauth-protected-resource/admin/v1` names the OP that
//! issues such tokens, so a client needs only this API's URL. Refusals are RFC 9457 problem
//! documents chosen by the one mapping (`OpError::wire` at `Endpoint::Admin`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Json, Router};
use keybound_op::admin::{
    etag, AdminCaller, ClientDoc, IssuerDoc, KeyDoc, LinkDoc, Page, PageRequest, PasskeyDoc,
    Precondition, RegistrationTokenDoc, RegistrationTokenRequest, UserDoc, ADMIN_SCOPE,
};
use keybound_op::refusal::AdminRefusal;
use keybound_op::{OpError, ResourceRequest};
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::Failure;
use crate::{forms, AppState};

/// Where the API is mounted.
pub const BASE: &str = "/admin/v1";

/// The RFC 9728 metadata path of the API's resource identifier (`{origin}/admin/v1`).
pub const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource/admin/v1";

/// How the API learns its own external URL (for the DPoP proof's `htu`).
#[derive(Debug, Clone)]
pub enum AdminOrigin {
    /// a fixed origin (`https://op.example` when served on the public listener)
    Fixed(String),
    /// `http://` and the request's `Host` (the management listener, plain HTTP)
    FromHost,
}

impl AdminOrigin {
    fn of(&self, headers: &HeaderMap) -> String {
        match self {
            AdminOrigin::Fixed(o) => o.trim_end_matches('/').to_owned(),
            AdminOrigin::FromHost => format!(
                "http://{}",
                forms::header_str(headers, header::HOST).unwrap_or("localhost")
            ),
        }
    }
}

/// The authorised caller of an admin operation.
#[derive(Debug)]
pub struct Caller(pub AdminCaller);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let origin = parts
            .extensions
            .get::<AdminOrigin>()
            .cloned()
            .unwrap_or(AdminOrigin::FromHost);
        // RFC 9449 §4.3: htu without query and fragment
        let htu = format!("{}{}", origin.of(&parts.headers), parts.uri.path());
        let dpop = forms::header_values(&parts.headers, "dpop");
        let req = ResourceRequest {
            authorization: forms::header_str(&parts.headers, header::AUTHORIZATION),
            dpop: &dpop,
            htm: parts.method.as_str(),
            htu: &htu,
        };
        match state.provider.authorize_admin(req).await {
            Ok(c) => Ok(Caller(c)),
            Err(e) => Err(refused(e, state)),
        }
    }
}

fn refused(e: OpError, state: &AppState) -> Response {
    Failure::admin(e, &state.dpop_algs).into_response()
}

/// A JSON body of type `T`, or the problem saying why it is not one.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, OpError> {
    serde_json::from_slice(bytes).map_err(|e| AdminRefusal::Body(e.to_string()).into())
}

fn precondition(headers: &HeaderMap) -> Precondition {
    Precondition {
        if_match: forms::header_str(headers, header::IF_MATCH).map(str::to_owned),
        if_none_match_any: forms::header_str(headers, header::IF_NONE_MATCH)
            .is_some_and(|v| v.trim() == "*"),
    }
}

/// A document with its entity tag.
fn tagged<T: Serialize>(status: StatusCode, doc: &T) -> Response {
    let mut r = (status, Json(doc)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(doc)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    crate::error::no_store(r.headers_mut());
    r
}

fn plain<T: Serialize>(status: StatusCode, doc: &T) -> Response {
    let mut r = (status, Json(doc)).into_response();
    crate::error::no_store(r.headers_mut());
    r
}

type Answer = Result<Response, OpError>;

/// Run `f`, answering its refusal as a problem.
async fn answer(state: &AppState, f: impl std::future::Future<Output = Answer>) -> Response {
    match f.await {
        Ok(r) => r,
        Err(e) => refused(e, state),
    }
}

fn put_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

// ---- handlers ----

type St = State<Arc<AppState>>;

async fn list_clients(State(s): St, _c: Caller, q: Query<PageRequest>) -> Response {
    answer(&s, async {
        Ok(plain(StatusCode::OK, &s.provider.admin_clients(&q).await?))
    })
    .await
}

async fn get_client(State(s): St, _c: Caller, Path(id): Path<String>) -> Response {
    answer(&s, async {
        Ok(tagged(StatusCode::OK, &s.provider.admin_client(&id).await?))
    })
    .await
}

async fn put_client(
    State(s): St,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    b: Bytes,
) -> Response {
    answer(&s, async {
        let put = s
            .provider
            .admin_put_client(&c, &id, body(&b)?, &precondition(&h))
            .await?;
        Ok(tagged(put_status(put.created), &put.doc))
    })
    .await
}

async fn delete_client(
    State(s): St,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(&s, async {
        s.provider
            .admin_delete_client(&c, &id, &precondition(&h))
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn list_users(State(s): St, _c: Caller, q: Query<PageRequest>) -> Response {
    answer(&s, async {
        Ok(plain(StatusCode::OK, &s.provider.admin_users(&q).await?))
    })
    .await
}

async fn get_user(State(s): St, _c: Caller, Path(u): Path<String>) -> Response {
    answer(&s, async {
        Ok(tagged(StatusCode::OK, &s.provider.admin_user(&u).await?))
    })
    .await
}

#[allow(clippy::many_single_char_names)] // state, caller, headers, path, body
async fn put_user(
    State(s): St,
    Caller(c): Caller,
    h: HeaderMap,
    Path(u): Path<String>,
    b: Bytes,
) -> Response {
    answer(&s, async {
        let put = s
            .provider
            .admin_put_user(&c, &u, body(&b)?, &precondition(&h))
            .await?;
        Ok(tagged(put_status(put.created), &put.doc))
    })
    .await
}

async fn delete_user(
    State(s): St,
    Caller(c): Caller,
    h: HeaderMap,
    Path(u): Path<String>,
) -> Response {
    answer(&s, async {
        s.provider
            .admin_delete_user(&c, &u, &precondition(&h))
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn link_user(State(s): St, Caller(c): Caller, Path(u): Path<String>, b: Bytes) -> Response {
    answer(&s, async {
        s.provider.admin_link_user(&c, &u, &body(&b)?).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn list_passkeys(State(s): St, _c: Caller, Path(u): Path<String>) -> Response {
    answer(&s, async {
        Ok(plain(StatusCode::OK, &s.provider.admin_passkeys(&u).await?))
    })
    .await
}

async fn delete_passkey(
    State(s): St,
    Caller(c): Caller,

    Path((u, id)): Path<(String, String)>,
) -> Response {
    answer(&s, async {
        s.provider.admin_delete_passkey(&c, &u, &id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn list_issuers(State(s): St, _c: Caller, q: Query<PageRequest>) -> Response {
    answer(&s, async {
        Ok(plain(StatusCode::OK, &s.provider.admin_issuers(&q).await?))
    })
    .await
}

async fn get_issuer(State(s): St, _c: Caller, Path(i): Path<String>) -> Response {
    answer(&s, async {
        Ok(tagged(StatusCode::OK, &s.provider.admin_issuer(&i).await?))
    })
    .await
}

#[allow(clippy::many_single_char_names)] // state, caller, headers, path, body
async fn put_issuer(
    State(s): St,
    Caller(c): Caller,
    h: HeaderMap,
    Path(i): Path<String>,
    b: Bytes,
) -> Response {
    answer(&s, async {
        let put = s
            .provider
            .admin_put_issuer(&c, &i, body(&b)?, &precondition(&h))
            .await?;
        Ok(tagged(put_status(put.created), &put.doc))
    })
    .await
}

async fn delete_issuer(
    State(s): St,
    Caller(c): Caller,
    h: HeaderMap,
    Path(i): Path<String>,
) -> Response {
    answer(&s, async {
        s.provider
            .admin_delete_issuer(&c, &i, &precondition(&h))
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn list_keys(State(s): St, _c: Caller) -> Response {
    answer(&s, async {
        Ok(plain(StatusCode::OK, &s.provider.admin_keys().await?))
    })
    .await
}

async fn rotate_keys(State(s): St, Caller(c): Caller) -> Response {
    answer(&s, async {
        Ok(plain(
            StatusCode::OK,
            &s.provider.admin_rotate_keys(&c).await?,
        ))
    })
    .await
}

async fn registration_token(State(s): St, Caller(c): Caller, b: Bytes) -> Response {
    answer(&s, async {
        // an empty body asks for the defaults
        let r: RegistrationTokenRequest = if b.is_empty() {
            body(&Bytes::from_static(b"{}"))?
        } else {
            body(&b)?
        };
        Ok(plain(
            StatusCode::CREATED,
            &s.provider.admin_registration_token(&c, &r).await?,
        ))
    })
    .await
}

/// `GET /admin/v1/openapi.json`
async fn openapi(State(s): St) -> Response {
    plain(
        StatusCode::OK,
        &openapi_document(&s.provider.config.endpoints.token),
    )
}

/// `GET /.well-known/oauth-protected-resource/admin/v1` (RFC 9728 §3)
async fn resource_metadata(
    State(s): St,
    h: HeaderMap,
    origin: Option<axum::Extension<AdminOrigin>>,
) -> Response {
    let origin = origin.map_or(AdminOrigin::FromHost, |o| o.0);
    plain(
        StatusCode::OK,
        &json!({
            "resource": format!("{}{BASE}", origin.of(&h)),
            "authorization_servers": [s.provider.config.issuer],
            "scopes_supported": [ADMIN_SCOPE],
            "bearer_methods_supported": ["header"],
            "dpop_bound_access_tokens_required": true,
            "dpop_signing_alg_values_supported": s.dpop_algs.split(' ').collect::<Vec<_>>(),
        }),
    )
}

// ---- the operations: router and document from one table ----

/// The schema of a document type, as the generator references it.
type SchemaOf = fn(&mut SchemaGenerator) -> schemars::Schema;

/// What an operation takes and answers, for the OpenAPI document.
struct Operation {
    method: &'static str,
    /// axum's path syntax (`{name}` segments), which is also OpenAPI's
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    request: Option<SchemaOf>,
    /// success status and its body schema (`None`: no body)
    response: (u16, Option<SchemaOf>),
    paged: bool,
    conditional: bool,
    handler: MethodRouter<Arc<AppState>>,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

#[allow(clippy::too_many_lines)] // one entry per operation reads as the table it is
fn operations() -> Vec<Operation> {
    let op = |method, path, id, summary, handler| Operation {
        method,
        path,
        id,
        summary,
        request: None,
        response: (204, None),
        paged: false,
        conditional: false,
        handler,
    };
    vec![
        Operation {
            response: (200, Some(schema::<Page<ClientDoc>>)),
            paged: true,
            ..op("get", "/admin/v1/clients", "listClients", "List clients", get(list_clients))
        },
        Operation {
            response: (200, Some(schema::<ClientDoc>)),
            ..op("get", "/admin/v1/clients/{client_id}", "getClient", "Read a client", get(get_client))
        },
        Operation {
            request: Some(schema::<ClientDoc>),
            response: (200, Some(schema::<ClientDoc>)),
            conditional: true,
            ..op("put", "/admin/v1/clients/{client_id}", "putClient", "Register or replace a client (201 when new; a generated client_secret is in the response once)", put(put_client))
        },
        Operation {
            conditional: true,
            ..op("delete", "/admin/v1/clients/{client_id}", "deleteClient", "Remove a client", delete(delete_client))
        },
        Operation {
            response: (200, Some(schema::<Page<UserDoc>>)),
            paged: true,
            ..op("get", "/admin/v1/users", "listUsers", "List users", get(list_users))
        },
        Operation {
            response: (200, Some(schema::<UserDoc>)),
            ..op("get", "/admin/v1/users/{username}", "getUser", "Read a user", get(get_user))
        },
        Operation {
            request: Some(schema::<UserDoc>),
            response: (200, Some(schema::<UserDoc>)),
            conditional: true,
            ..op("put", "/admin/v1/users/{username}", "putUser", "Create or replace a user (201 when new; a generated password is in the response once)", put(put_user))
        },
        Operation {
            conditional: true,
            ..op("delete", "/admin/v1/users/{username}", "deleteUser", "Remove a user", delete(delete_user))
        },
        Operation {
            request: Some(schema::<LinkDoc>),
            ..op("post", "/admin/v1/users/{username}/links", "linkUser", "Link a subject at a trusted issuer to this user", post(link_user))
        },
        Operation {
            response: (200, Some(schema::<Vec<PasskeyDoc>>)),
            ..op("get", "/admin/v1/users/{username}/passkeys", "listPasskeys", "List a user's passkeys", get(list_passkeys))
        },
        op("delete", "/admin/v1/users/{username}/passkeys/{credential_id}", "deletePasskey", "Remove one of a user's passkeys", delete(delete_passkey)),
        Operation {
            response: (200, Some(schema::<Page<IssuerDoc>>)),
            paged: true,
            ..op("get", "/admin/v1/issuers", "listIssuers", "List trusted issuers", get(list_issuers))
        },
        Operation {
            response: (200, Some(schema::<IssuerDoc>)),
            ..op("get", "/admin/v1/issuers/{issuer}", "getIssuer", "Read a trusted issuer (its identifier percent-encoded)", get(get_issuer))
        },
        Operation {
            request: Some(schema::<IssuerDoc>),
            response: (200, Some(schema::<IssuerDoc>)),
            conditional: true,
            ..op("put", "/admin/v1/issuers/{issuer}", "putIssuer", "Trust an issuer or change its settings (201 when new)", put(put_issuer))
        },
        Operation {
            conditional: true,
            ..op("delete", "/admin/v1/issuers/{issuer}", "deleteIssuer", "Forget a trusted issuer and its links", delete(delete_issuer))
        },
        Operation {
            response: (200, Some(schema::<Vec<KeyDoc>>)),
            ..op("get", "/admin/v1/keys", "listKeys", "List signing keys", get(list_keys))
        },
        Operation {
            response: (200, Some(schema::<Vec<KeyDoc>>)),
            ..op("post", "/admin/v1/keys/rotate", "rotateKeys", "Rotate the signing keys: current → retired, next → current, a new next", post(rotate_keys))
        },
        Operation {
            request: Some(schema::<RegistrationTokenRequest>),
            response: (201, Some(schema::<RegistrationTokenDoc>)),
            ..op("post", "/admin/v1/registration-tokens", "createRegistrationToken", "Make an initial access token for dynamic registration (shown once)", post(registration_token))
        },
    ]
}

/// The admin API's routes, answering on whatever listener they are merged into; `origin`
/// says how the API learns its own URL.
pub fn router(state: Arc<AppState>, origin: AdminOrigin) -> Router {
    let mut r = Router::new()
        .route(&format!("{BASE}/openapi.json"), get(openapi))
        .route(RESOURCE_METADATA, get(resource_metadata));
    for o in operations() {
        r = r.route(o.path, o.handler);
    }
    r.layer(axum::Extension(origin))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::events::context,
        ))
        .with_state(state)
}

/// The OpenAPI 3.1 document of the admin API, written from [`operations`].
pub fn openapi_document(token_endpoint: &str) -> Value {
    let mut g = SchemaGenerator::new(schemars::generate::SchemaSettings::draft2020_12().with(
        |s| {
            s.definitions_path = "/components/schemas".into();
        },
    ));
    let problem = json!({
        "description": "refused: an RFC 9457 problem document",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    });
    let mut paths = Map::new();
    for o in operations() {
        let mut params = Vec::new();
        for seg in o.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        if o.paged {
            params.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "description": "items per page (default 100)"}));
            params.push(json!({"name": "after", "in": "query", "schema": {"type": "string"}, "description": "the `next` of the previous page"}));
        }
        if o.conditional {
            params.push(json!({"name": "If-Match", "in": "header", "schema": {"type": "string"}, "description": "the ETag last read: the change applies only to that version (else 412)"}));
            if o.method == "put" {
                params.push(json!({"name": "If-None-Match", "in": "header", "schema": {"type": "string", "const": "*"}, "description": "create only (else 412)"}));
            }
        }
        let mut responses = Map::new();
        let (status, body) = o.response;
        let ok = match body {
            Some(f) => {
                json!({"description": "done", "content": {"application/json": {"schema": f(&mut g)}}})
            }
            None => json!({"description": "done"}),
        };
        responses.insert(status.to_string(), ok);
        if o.method == "put" {
            responses.insert("201".into(), responses[&status.to_string()].clone());
        }
        responses.insert("4XX".into(), problem.clone());
        let mut operation = json!({
            "operationId": o.id,
            "summary": o.summary,
            "parameters": params,
            "responses": responses,
            "security": [{"dpop": [ADMIN_SCOPE]}],
        });
        if let Some(f) = o.request {
            operation["requestBody"] = json!({"required": o.id != "createRegistrationToken", "content": {"application/json": {"schema": f(&mut g)}}});
        }
        paths
            .entry(o.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(o.method.to_owned(), operation));
    }
    let mut schemas = g.take_definitions(true);
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details; `error` is the OAuth error code",
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "error": {"type": "string"}
            },
            "required": ["type", "title", "status"]
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "keybound admin API",
            "version": "1",
            "description": "Manage a keybound OpenID Provider. Every call needs a DPoP-bound access token with the scope keybound:admin from the client credentials grant (RFC 9449); Bearer tokens are refused.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "dpop": {
                    "type": "oauth2",
                    "description": "client credentials with a DPoP proof (RFC 9449); send Authorization: DPoP <token> and a fresh DPoP proof with every call",
                    "flows": {"clientCredentials": {
                        "tokenUrl": token_endpoint,
                        "scopes": {ADMIN_SCOPE: "manage this OP"}
                    }}
                }
            }
        }
    })
}

/// Every operation as `(method, path)`, for tests that hold the document against the routes.
pub fn operation_list() -> Vec<(&'static str, &'static str)> {
    operations().iter().map(|o| (o.method, o.path)).collect()
}
