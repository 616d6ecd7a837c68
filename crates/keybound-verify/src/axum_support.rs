//! axum integration: the [`KeyBound`] and [`DpopAccess`] extractors, the [`require_key_bound`]
//! middleware, and per-route step-up ([`require_access_step_up`], [`require_key_bound_step_up`],
//! RFC 9470). All answer a refused presentation with `401` and `WWW-Authenticate: DPoP
//! error=…` (with `acr_values`/`max_age` for a step-up), plus a `DPoP-Nonce` when this service
//! demands nonces (RFC 9449 §7.1, §9).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keybound_proto::presentation::ID_TOKEN_HEADER;
use keybound_proto::wire::challenge_with;

use crate::{
    AccessPresentation, HttpPresentation, StepUp, VerifiedAccess, VerifiedIdentity, Verifier,
    VerifyError,
};

/// A request whose key-bound ID Token and proof verified: a handler that takes
/// `KeyBound(who): KeyBound`, with an `Arc<Verifier>` in its state, runs only for a request
/// with an `ID-Token` header and a fresh DPoP proof by the key in its `cnf`; any other gets
/// `401` with `WWW-Authenticate: DPoP error=…` saying why.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use axum::body::Body;
/// use axum::http::{Request, StatusCode};
/// use axum::routing::get;
/// use axum::Router;
/// use keybound_jose::key::KeyKind;
/// use keybound_jose::{JwkSet, PrivateKey};
/// use keybound_proto::dpop::ProofBuilder;
/// use keybound_proto::idtoken::{Audience, IdTokenBuilder};
/// use keybound_proto::keybinding::Profile;
/// use keybound_verify::axum_support::KeyBound;
/// use keybound_verify::{ManualClock, MemoryReplayCache, StaticJwks, TrustedIssuer, Verifier, VerifierConfig};
/// use tower::ServiceExt as _;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let now = 1_700_000_000;
/// let op_key = PrivateKey::generate(KeyKind::Es256).unwrap();
/// let verifier = Verifier::new(
///     VerifierConfig::new(
///         TrustedIssuer::new("https://op.example", "https://op.example/jwks"),
///         vec!["app".into()],
///         "https://api.example",
///     ),
///     Arc::new(StaticJwks(JwkSet::signing_key(&op_key, "k1"))),
///     Arc::new(MemoryReplayCache::new(10_000)),
///     Arc::new(ManualClock::new(now)),
/// );
/// let api = Router::new()
///     .route("/hello", get(|KeyBound(who): KeyBound| async move { format!("hello {}", who.sub) }))
///     .with_state(Arc::new(verifier));
///
/// // the app's ID Token, bound to its key, presented with a proof over this request
/// let app_key = PrivateKey::generate(KeyKind::Es256).unwrap();
/// let id_token = IdTokenBuilder::new("https://op.example", "alice", Audience::One("app".into()), now, 300)
///     .bind(Profile::KeyBinding, app_key.public_jwk())
///     .sign(&op_key, op_key.default_alg(), Some("k1"))
///     .unwrap();
/// let proof = ProofBuilder::new("GET", "https://api.example/hello", now, "jti-1")
///     .ath_for(&id_token)
///     .sign(&app_key)
///     .unwrap();
/// let request = |with_proof: bool| {
///     let r = Request::get("/hello").header("ID-Token", &id_token);
///     if with_proof { r.header("DPoP", &proof) } else { r }.body(Body::empty()).unwrap()
/// };
/// let ok = api.clone().oneshot(request(true)).await.unwrap();
/// assert_eq!(ok.status(), StatusCode::OK);
///
/// // without the proof: refused, and the challenge says why
/// let refused = api.oneshot(request(false)).await.unwrap();
/// assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
/// let why = refused.headers()["www-authenticate"].to_str().unwrap();
/// assert!(why.starts_with("DPoP") && why.contains("invalid_dpop_proof"), "{why}");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KeyBound(pub VerifiedIdentity);

/// A request whose access token (RFC 9068) and DPoP proof verified: an API handler takes
/// `DpopAccess(access): DpopAccess` with an `Arc<Verifier>` in its state. A Bearer token is
/// refused unless [`crate::VerifierConfig::with_bearer`] allows it.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use axum::body::Body;
/// use axum::http::{Request, StatusCode};
/// use axum::routing::get;
/// use axum::{Json, Router};
/// use keybound_jose::JwkSet;
/// use keybound_verify::axum_support::DpopAccess;
/// use keybound_verify::{MemoryReplayCache, StaticJwks, SystemClock, TrustedIssuer, Verifier, VerifierConfig};
/// use tower::ServiceExt as _;
///
/// async fn orders(DpopAccess(access): DpopAccess) -> Json<serde_json::Value> {
///     // the End-User, the client and the key its proof was made with
///     Json(serde_json::json!({ "sub": access.sub, "client": access.client_id }))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let verifier = Verifier::new(
///     VerifierConfig::new(
///         TrustedIssuer::new("https://as.example", "https://as.example/jwks"),
///         vec!["https://api.example".into()],
///         "https://api.example",
///     ),
///     Arc::new(StaticJwks(JwkSet { keys: vec![] })),
///     Arc::new(MemoryReplayCache::new(10_000)),
///     Arc::new(SystemClock),
/// );
/// let api = Router::new().route("/orders", get(orders)).with_state(Arc::new(verifier));
///
/// // no token: 401 with a DPoP challenge
/// let r = api.oneshot(Request::get("/orders").body(Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
/// assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("DPoP"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DpopAccess(pub VerifiedAccess);

/// A refusal, as an HTTP response.
#[derive(Debug)]
pub struct Refusal {
    error: VerifyError,
    nonce: Option<String>,
    algs: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let description = self.error.to_string();
        let code = self.error.code();
        let status = match self.error {
            VerifyError::ReplayCacheFull | VerifyError::ReplayCacheUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            VerifyError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        };
        // the same challenge builder as the provider's resources (RFC 9449 §7.1), with what
        // a step-up needs (RFC 9470 §3)
        let step_up = match &self.error {
            VerifyError::InsufficientUserAuthentication { required, .. } => Some(required),
            _ => None,
        };
        let challenge = challenge_with(
            "DPoP",
            Some((code, &description)),
            Some(&self.algs),
            step_up,
        );
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut r = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(n) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            r.headers_mut().insert("dpop-nonce", n);
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

fn dpop_headers(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("dpop")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

impl Refusal {
    /// The refusal of `error` by `verifier` (with a fresh nonce when it demands them): what a
    /// handler returns when its own check fails, e.g. [`Verifier::check_sign_in`].
    pub fn new(verifier: &Verifier, error: VerifyError) -> Self {
        let nonce = match &error {
            VerifyError::NonceRequired(n) => Some(n.clone()),
            _ => verifier.fresh_nonce(),
        };
        Refusal {
            error,
            nonce,
            algs: keybound_jose::Algorithm::list(&verifier.config().proof.allowed_algs)
                .replace(", ", " "),
        }
    }
}

/// Verify the presentation carried by `headers` for `method` `path`.
pub async fn verify_request(
    verifier: &Verifier,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<VerifiedIdentity, Refusal> {
    let dpop = dpop_headers(headers);
    let id_token = headers.get(ID_TOKEN_HEADER).and_then(|v| v.to_str().ok());
    verifier
        .verify_http(HttpPresentation {
            id_token,
            dpop: &dpop,
            htm: method,
            path,
        })
        .await
        .map_err(|error| Refusal::new(verifier, error))
}

/// Verify the access token and proof carried by `headers` for `method` `path`.
pub async fn verify_access_request(
    verifier: &Verifier,
    method: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<VerifiedAccess, Refusal> {
    let dpop = dpop_headers(headers);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    verifier
        .verify_access_token(AccessPresentation {
            authorization,
            dpop: &dpop,
            htm: method,
            path,
        })
        .await
        .map_err(|error| Refusal::new(verifier, error))
}

impl<S> FromRequestParts<S> for DpopAccess
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        verify_access_request(
            &verifier,
            parts.method.as_str(),
            parts.uri.path(),
            &parts.headers,
        )
        .await
        .map(DpopAccess)
    }
}

impl<S> FromRequestParts<S> for KeyBound
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        verify_request(
            &verifier,
            parts.method.as_str(),
            parts.uri.path(),
            &parts.headers,
        )
        .await
        .map(KeyBound)
    }
}

/// Middleware for whole routers: `router.layer(axum::middleware::from_fn_with_state(verifier,
/// require_key_bound))`. The verified identity is added to the request's extensions.
pub async fn require_key_bound(
    State(verifier): State<Arc<Verifier>>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    match verify_request(&verifier, &method, &path, req.headers()).await {
        Ok(identity) => {
            req.extensions_mut().insert(KeyBound(identity));
            next.run(req).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// A route that demands a sign-in (RFC 9470): the verifier and what it requires.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepUpRoute {
    /// the verifier
    pub verifier: Arc<Verifier>,
    /// the `acr` values it accepts and the longest time since the End-User authenticated
    pub required: StepUp,
}

impl StepUpRoute {
    /// A route verified by `verifier` that demands the sign-in `required`.
    pub fn new(verifier: Arc<Verifier>, required: StepUp) -> Self {
        StepUpRoute { verifier, required }
    }
}

/// What a step-up route verifies: an access token or a key-bound ID Token presentation.
trait Presented: Sized {
    /// Verify the presentation carried by the request.
    async fn verified(
        v: &Verifier,
        method: &str,
        path: &str,
        h: &HeaderMap,
    ) -> Result<Self, Refusal>;
    /// The sign-in it describes.
    fn signed_in(&self) -> crate::SignIn<'_>;
    /// Hand it to the handler.
    fn into_extension(self, req: &mut Request);
}

impl Presented for VerifiedAccess {
    async fn verified(
        v: &Verifier,
        method: &str,
        path: &str,
        h: &HeaderMap,
    ) -> Result<Self, Refusal> {
        verify_access_request(v, method, path, h).await
    }
    fn signed_in(&self) -> crate::SignIn<'_> {
        self.sign_in()
    }
    fn into_extension(self, req: &mut Request) {
        req.extensions_mut().insert(DpopAccess(self));
    }
}

impl Presented for VerifiedIdentity {
    async fn verified(
        v: &Verifier,
        method: &str,
        path: &str,
        h: &HeaderMap,
    ) -> Result<Self, Refusal> {
        verify_request(v, method, path, h).await
    }
    fn signed_in(&self) -> crate::SignIn<'_> {
        self.sign_in()
    }
    fn into_extension(self, req: &mut Request) {
        req.extensions_mut().insert(KeyBound(self));
    }
}

/// The one step-up check of both middlewares: verify, then the sign-in against the route's
/// demand.
async fn step_up<P: Presented>(route: &StepUpRoute, mut req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let v = &route.verifier;
    let checked = P::verified(v, &method, &path, req.headers())
        .await
        .and_then(|p| {
            v.check_sign_in(p.signed_in(), &route.required)
                .map(|()| p)
                .map_err(|e| Refusal::new(v, e))
        });
    match checked {
        Ok(p) => {
            p.into_extension(&mut req);
            next.run(req).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Middleware for a route taking DPoP access tokens whose sign-in must meet `required`:
/// `.route_layer(from_fn_with_state(StepUpRoute::new(…), require_access_step_up))`. A token that
/// falls short is answered `401` with `error="insufficient_user_authentication"` and the
/// `acr_values`/`max_age` to sign in with; the verified access is added to the extensions.
pub async fn require_access_step_up(
    State(route): State<StepUpRoute>,
    req: Request,
    next: Next,
) -> Response {
    step_up::<VerifiedAccess>(&route, req, next).await
}

/// Middleware for a route taking key-bound ID Token presentations whose sign-in must meet
/// `required` (as [`require_access_step_up`]); the verified identity is added to the
/// extensions.
pub async fn require_key_bound_step_up(
    State(route): State<StepUpRoute>,
    req: Request,
    next: Next,
) -> Response {
    step_up::<VerifiedIdentity>(&route, req, next).await
}
