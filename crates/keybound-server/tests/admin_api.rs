//! The admin API (issue 28 item 1) over the routers in process: who may call it (a DPoP-bound
//! client-credentials token with keybound:admin, on the management listener only), what its
//! refusals look like (RFC 9457), conditional updates (ETag / If-Match), paging, and the
//! OpenAPI document held against the routes. `keybound admin --server` drives the same API
//! over loopback in crates/keybound/tests/admin_cli.rs.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use axum::body::Body;
use axum::http::{Request, StatusCode};
use keybound_jose::key::KeyKind;
use keybound_jose::PrivateKey;
use keybound_testkit::op::{admin_client, resource_proof, OpBuilder, TestOp, T0};
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// The management listener's origin as the test's requests name it (`Host`).
const MGMT: &str = "http://mgmt.test";

struct Api {
    public: axum::Router,
    mgmt: axum::Router,
    token: String,
    key: PrivateKey,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn op() -> TestOp {
    OpBuilder::new().client(admin_client("ops")).build().await
}

/// An admin API with a DPoP-bound keybound:admin token of client `ops`.
async fn api() -> Api {
    let op = op().await;
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let token = op
        .client_credentials_token("ops", "keybound:admin", Some(&key))
        .await;
    let (public, mgmt) = op.routers();
    Api {
        public,
        mgmt,
        token,
        key,
    }
}

/// `GET path` on `router` without credentials, as the management listener's Host.
async fn get_plain(router: &axum::Router, path: &str) -> Answer {
    let req = Request::get(path)
        .header("host", "mgmt.test")
        .body(Body::empty())
        .unwrap();
    send(router, req).await
}

async fn send(router: &axum::Router, req: Request<Body>) -> Answer {
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

impl Api {
    /// `method path` on the management router with the token and a proof by `key`.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: &PrivateKey,
    ) -> axum::http::request::Builder {
        let url = format!("{MGMT}{path}");
        let htu = url.split('?').next().unwrap().to_owned();
        let proof = resource_proof(key, method, &htu, &self.token, T0);
        let b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "mgmt.test")
            .header("authorization", format!("DPoP {}", self.token))
            .header("dpop", proof);
        match body {
            Some(_) => b.header("content-type", "application/json"),
            None => b,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut b = self.request(method, path, body.as_ref(), &self.key);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = body.map_or(Body::empty(), |v| Body::from(v.to_string()));
        send(&self.mgmt, b.body(body).unwrap()).await
    }
}

fn is_problem(a: &Answer, status: u16, error: &str) {
    assert_eq!(a.status.as_u16(), status, "{:?}", a.body);
    assert_eq!(
        a.headers["content-type"], "application/problem+json",
        "{:?}",
        a.body
    );
    assert_eq!(a.body["status"], status);
    assert_eq!(a.body["error"], error, "{:?}", a.body);
    assert!(a.body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:keybound:problem:"));
    assert!(!a.body["detail"].as_str().unwrap().is_empty());
}

/// Acceptance: a Bearer token is refused, even one with keybound:admin.
#[tokio::test]
async fn admin_refuses_a_bearer_token() {
    let op = op().await;
    let bearer = op
        .client_credentials_token("ops", "keybound:admin", None)
        .await;
    let (_, mgmt) = op.routers();
    for scheme in ["Bearer", "DPoP"] {
        let a = send(
            &mgmt,
            Request::get("/admin/v1/clients")
                .header("host", "mgmt.test")
                .header("authorization", format!("{scheme} {bearer}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 401, "{scheme}: {:?}", a.body);
        assert!(a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("DPoP"));
        assert_eq!(a.body["error"], "invalid_token", "{scheme}: {:?}", a.body);
    }
}

/// Acceptance: a proof by another key than the token's is refused.
#[tokio::test]
async fn admin_refuses_a_proof_by_another_key() {
    let api = api().await;
    let other = PrivateKey::generate(KeyKind::Es256).unwrap();
    let req = api
        .request("GET", "/admin/v1/clients", None, &other)
        .body(Body::empty())
        .unwrap();
    let a = send(&api.mgmt, req).await;
    // RFC 9449 §7.1: the token's binding does not match
    is_problem(&a, 401, "invalid_token");
    // and without any proof
    let a = send(
        &api.mgmt,
        Request::get("/admin/v1/clients")
            .header("host", "mgmt.test")
            .header("authorization", format!("DPoP {}", api.token))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 401, "{:?}", a.body);
    // and a proof for another URL
    let proof = resource_proof(
        &api.key,
        "GET",
        "http://elsewhere.test/admin/v1/clients",
        &api.token,
        T0,
    );
    let a = send(
        &api.mgmt,
        Request::get("/admin/v1/clients")
            .header("host", "mgmt.test")
            .header("authorization", format!("DPoP {}", api.token))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    is_problem(&a, 401, "invalid_dpop_proof");
}

/// Acceptance: a token without keybound:admin is refused (403 insufficient_scope).
#[tokio::test]
async fn admin_refuses_a_token_without_the_admin_scope() {
    let op = op().await;
    let key = PrivateKey::generate(KeyKind::Es256).unwrap();
    let token = op
        .client_credentials_token("ops", "other", Some(&key))
        .await;
    let (_, mgmt) = op.routers();
    let api = Api {
        public: axum::Router::new(),
        mgmt,
        token,
        key,
    };
    let a = api.call("GET", "/admin/v1/users", None).await;
    is_problem(&a, 403, "insufficient_scope");
    assert!(a.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
}

/// Acceptance: the public listener does not serve the API, with a valid token or without.
#[tokio::test]
async fn admin_api_is_not_on_the_public_listener() {
    let api = api().await;
    for path in [
        "/admin/v1/clients",
        "/admin/v1/openapi.json",
        "/.well-known/oauth-protected-resource/admin/v1",
    ] {
        let req = api
            .request("GET", path, None, &api.key)
            .body(Body::empty())
            .unwrap();
        let a = send(&api.public, req).await;
        assert_eq!(a.status, 404, "{path}");
    }
    // the management listener answers the same request
    assert_eq!(api.call("GET", "/admin/v1/clients", None).await.status, 200);
}

/// PUT creates (201) and replaces (200) with an ETag; a stale If-Match and If-None-Match: *
/// on an existing client are 412; DELETE, then 404 as a problem.
#[tokio::test]
async fn admin_clients_with_etags() {
    let api = api().await;
    let doc = json!({
        "client_name": "Web app",
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": ["https://app.example/cb"],
        "dpop_bound_access_tokens": true,
    });
    let a = api
        .call("PUT", "/admin/v1/clients/web", Some(doc.clone()))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let secret = a.body["client_secret"]
        .as_str()
        .expect("a generated secret, once");
    assert!(secret.len() >= 20);
    let tag1 = a.headers["etag"].to_str().unwrap().to_owned();
    let got = api.call("GET", "/admin/v1/clients/web", None).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("client_secret").is_none(), "never shown again");
    assert_eq!(got.body["client_id"], "web");
    assert_eq!(got.body["dpop_bound_access_tokens"], true);
    assert_eq!(got.headers["etag"], tag1.as_str());
    // PUT what GET gave, changed, under If-Match: replaced, the secret kept
    let mut changed = got.body.clone();
    changed["client_name"] = "Web app 2".into();
    let a = api
        .call_with(
            "PUT",
            "/admin/v1/clients/web",
            Some(changed.clone()),
            &[("if-match", &tag1)],
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert!(
        a.body.get("client_secret").is_none(),
        "the existing secret is kept"
    );
    let tag2 = a.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(tag1, tag2);
    // the old tag no longer matches
    let a = api
        .call_with(
            "PUT",
            "/admin/v1/clients/web",
            Some(changed.clone()),
            &[("if-match", &tag1)],
        )
        .await;
    is_problem(&a, 412, "invalid_request");
    assert_eq!(a.body["type"], "urn:keybound:problem:precondition-failed");
    let a = api
        .call_with(
            "PUT",
            "/admin/v1/clients/web",
            Some(changed),
            &[("if-none-match", "*")],
        )
        .await;
    is_problem(&a, 412, "invalid_request");
    // a rule of client registration: the code grant without a redirect URI
    let a = api
        .call(
            "PUT",
            "/admin/v1/clients/bad",
            Some(json!({"redirect_uris": []})),
        )
        .await;
    is_problem(&a, 400, "invalid_redirect_uri");
    // a typo in a member is refused, not dropped
    let a = api
        .call(
            "PUT",
            "/admin/v1/clients/bad",
            Some(json!({"redirect_uri": ["https://a.example/cb"]})),
        )
        .await;
    is_problem(&a, 400, "invalid_request");
    assert!(a.body["detail"].as_str().unwrap().contains("redirect_uri"));
    // delete with a stale tag: refused; with the current one: gone
    let a = api
        .call_with(
            "DELETE",
            "/admin/v1/clients/web",
            None,
            &[("if-match", &tag1)],
        )
        .await;
    assert_eq!(a.status, 412);
    let a = api
        .call_with(
            "DELETE",
            "/admin/v1/clients/web",
            None,
            &[("if-match", &tag2)],
        )
        .await;
    assert_eq!(a.status, 204);
    let a = api.call("GET", "/admin/v1/clients/web", None).await;
    is_problem(&a, 404, "invalid_request");
    assert_eq!(a.body["type"], "urn:keybound:problem:not-found");
}

/// Lists come a page at a time, in id order, `next` naming where the following page starts.
#[tokio::test]
async fn admin_users_in_pages() {
    let api = api().await;
    for name in ["carol", "bob", "dave"] {
        let a = api
            .call(
                "PUT",
                &format!("/admin/v1/users/{name}"),
                Some(json!({"email": format!("{name}@example.com")})),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        assert!(
            a.body["password"].as_str().is_some(),
            "a generated password, once"
        );
        assert_eq!(a.body["email_verified"], true);
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    for _ in 0..5 {
        let path = if after.is_empty() {
            "/admin/v1/users?limit=2".to_owned()
        } else {
            format!("/admin/v1/users?limit=2&after={after}")
        };
        let a = api.call("GET", &path, None).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        let items = a.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for i in items {
            assert!(i.get("password").is_none());
            seen.push(i["username"].as_str().unwrap().to_owned());
        }
        match a.body["next"].as_str() {
            Some(n) => after = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["alice", "bob", "carol", "dave"]);
    is_problem(
        &api.call("GET", "/admin/v1/users?limit=0", None).await,
        400,
        "invalid_request",
    );
}

/// The OpenAPI document names exactly the routes: each documented operation is answered
/// (401 without credentials: routed, not 404/405), and each path is under /admin/v1.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let api = api().await;
    let a = get_plain(&api.mgmt, "/admin/v1/openapi.json").await;
    assert_eq!(a.status, 200);
    let doc = a.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/admin/v1/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            documented.push((method.clone(), path.clone()));
            // every schema reference resolves in components
            let text = op.to_string();
            for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
                let name = &r[..r.find('"').unwrap()];
                assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
            }
            let concrete = path
                .replace("{client_id}", "x")
                .replace("{username}", "x")
                .replace("{credential_id}", "x")
                .replace("{issuer}", "https%3A%2F%2Fidp.example");
            let a = send(
                &api.mgmt,
                Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&concrete)
                    .header("host", "mgmt.test")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(a.status, 401, "{method} {path}: routed and protected");
        }
    }
    let mut listed: Vec<(String, String)> = keybound_server::admin::operation_list()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    listed.sort();
    documented.sort();
    assert_eq!(documented, listed);
    assert!(doc["components"]["schemas"]["ClientDoc"]["properties"]["redirect_uris"].is_object());
    // an undocumented path under the API is not routed
    let a = api.call("GET", "/admin/v1/secrets", None).await;
    assert_eq!(a.status, 404);
}

/// RFC 9728: the resource metadata names this OP and demands DPoP.
#[tokio::test]
async fn resource_metadata_names_the_op() {
    let api = api().await;
    let a = get_plain(&api.mgmt, "/.well-known/oauth-protected-resource/admin/v1").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["resource"], "http://mgmt.test/admin/v1");
    assert_eq!(
        a.body["authorization_servers"][0],
        keybound_testkit::op::ISS
    );
    assert_eq!(a.body["dpop_bound_access_tokens_required"], true);
}
