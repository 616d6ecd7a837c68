//! Router-level tests: the whole axum app in process (no socket), driven like a browser and a
//! client would drive it. Each acceptance refusal of the OP issue has a test here, with the
//! HTTP status and OAuth error code it must produce.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(clippy::many_single_char_names)] // short names for requests and responses read well here

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use keybound_jose::{b64, jws, Algorithm, Jkt, PrivateKey};
use keybound_proto::dpop::ProofBuilder;
use keybound_proto::idtoken::{self, BindingRequirement, IdTokenChecks};
use keybound_store::{Client, ClientAuthMethod};
use keybound_testkit::browser::{hidden_fields, Browser, HttpRequest, RouterTransport};
use keybound_testkit::keys;
use keybound_testkit::op::{
    basic, client, OpBuilder, ALICE, REDIRECT, T0, TOKEN_REDIRECT, VERIFIER,
};
use serde_json::{json, Value};

const ISS: &str = "http://127.0.0.1:8080";

/// The whole OP in process, driven through the testkit's browser (its cookie jar) straight
/// into the router.
struct App {
    browser: Browser<RouterTransport>,
    /// the management listener's router (`/metrics`)
    management: Browser<RouterTransport>,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn location(&self) -> String {
        self.headers[header::LOCATION].to_str().unwrap().to_owned()
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_owned()
    }
}

/// Clients `pub`, `conf` (HTTP Basic), `nonce` (must use DPoP nonces) and `strict`
/// (`dpop_bound_access_tokens`); with `nonces`, the OP issues DPoP nonces.
async fn app_with(nonces: bool) -> App {
    let mut b = OpBuilder::new()
        .client(client("pub", ClientAuthMethod::None))
        .client(client("conf", ClientAuthMethod::ClientSecretBasic))
        .client(Client {
            require_dpop_nonce: true,
            ..client("nonce", ClientAuthMethod::None)
        })
        .client(Client {
            dpop_bound_access_tokens: true,
            ..client("strict", ClientAuthMethod::None)
        });
    if nonces {
        b = b.nonces();
    }
    let (public, management) = b.build_at(ISS).await.routers();
    App {
        browser: Browser::new(RouterTransport(public)),
        management: Browser::new(RouterTransport(management)),
    }
}

async fn app() -> App {
    app_with(false).await
}

/// The OP (client `pub`) seen from one address: every request's peer is `peer`, as behind a
/// NAT.
async fn app_at(peer: &str) -> App {
    app_behind(peer, &[]).await
}

/// [`app_at`] with `trusted` as the trusted proxies.
async fn app_behind(peer: &str, trusted: &[&str]) -> App {
    let op = OpBuilder::new().client(client("pub", ClientAuthMethod::None));
    app_from(op, peer, trusted, keybound_server::TokenBindingMode::Off).await
}

/// The OP `op` builds, every request's peer `peer`, with `trusted` proxies and Token Binding
/// mode `token_binding`.
async fn app_from(
    op: OpBuilder,
    peer: &str,
    trusted: &[&str],
    token_binding: keybound_server::TokenBindingMode,
) -> App {
    let config = keybound_server::ServerConfig {
        trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        token_binding,
        ..keybound_server::ServerConfig::default()
    };
    let (public, management) = op.build_at(ISS).await.routers_with(config);
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    App {
        browser: Browser::new(RouterTransport(
            public.layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        )),
        management: Browser::new(RouterTransport(management)),
    }
}

/// The CSRF token a page's form carries.
fn csrf_of(page: &str) -> String {
    hidden_fields(page)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap()
        .1
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

impl App {
    async fn send(&mut self, req: Request<Body>) -> Resp {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        let r = self
            .browser
            .request(HttpRequest {
                method: parts.method.to_string(),
                url: format!("{ISS}{}", parts.uri),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                    .collect(),
                body: Some(body),
            })
            .await
            .unwrap();
        let mut headers = axum::http::HeaderMap::new();
        for (k, v) in &r.headers {
            headers.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Resp {
            status: StatusCode::from_u16(r.status).unwrap(),
            headers,
            body: String::from_utf8(r.body).unwrap(),
        }
    }

    /// `/metrics` from the management listener.
    async fn metrics(&mut self) -> String {
        self.management
            .get(&format!("{ISS}/metrics"))
            .await
            .unwrap()
            .body
    }

    fn cookie(&self, name: &str) -> String {
        self.browser.cookie(name).unwrap().to_owned()
    }

    async fn get(&mut self, uri: &str) -> Resp {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post_form(&mut self, uri: &str, body: String, headers: &[(&str, &str)]) -> Resp {
        let mut b =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// Submit the single form on an HTML page (its hidden fields) with extra fields.
    async fn submit(&mut self, page: &str, extra: &[(&str, &str)]) -> Resp {
        self.submit_to("/authorize", page, extra).await
    }

    async fn submit_to(&mut self, action: &str, page: &str, extra: &[(&str, &str)]) -> Resp {
        let mut fields = hidden_fields(page);
        for (k, v) in extra {
            fields.push(((*k).to_owned(), (*v).to_owned()));
        }
        let body = serde_urlencoded::to_string(&fields).unwrap();
        self.post_form(action, body, &[]).await
    }

    /// Sign in (as the standard End-User, unless the session lives on) and consent; the code.
    async fn code_for(&mut self, client: &str, scope: &str, jkt: Option<&Jkt>) -> String {
        let uri = format!("{ISS}{}", authorize_uri(client, scope, jkt));
        let redirect = self
            .browser
            .sign_in(&uri, None, ALICE.0, ALICE.1)
            .await
            .unwrap();
        // the browser follows the login and consent forms to a 303 back to the client
        assert!(redirect.starts_with(REDIRECT), "{redirect}");
        let url = url::Url::parse(&redirect).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert!(q.contains_key("code"), "{redirect}");
        assert_eq!(q["iss"], ISS);
        assert_eq!(q["state"], "s1");
        q["code"].clone()
    }

    async fn token(&mut self, pairs: &[(&str, &str)], dpop: Option<&str>) -> Resp {
        let mut h = vec![];
        if let Some(p) = dpop {
            h.push(("DPoP", p));
        }
        self.post_form("/token", form_body(pairs), &h).await
    }
}

fn authorize_uri(client: &str, scope: &str, jkt: Option<&Jkt>) -> String {
    let mut p = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client.to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("scope", scope.to_owned()),
        ("state", "s1".to_owned()),
        ("nonce", "n1".to_owned()),
        (
            "code_challenge",
            keybound_jose::sha256_b64(VERIFIER.as_bytes()),
        ),
        ("code_challenge_method", "S256".to_owned()),
    ];
    if let Some(j) = jkt {
        p.push(("dpop_jkt", j.to_string()));
    }
    format!("/authorize?{}", serde_urlencoded::to_string(&p).unwrap())
}

fn code_grant<'a>(client: &'a str, code: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client),
    ]
}

fn proof_at(key: &PrivateKey, jti: &str, iat: u64, code: Option<&str>) -> String {
    let b = ProofBuilder::new("POST", &format!("{ISS}/token"), iat, jti);
    match code {
        Some(c) => b.c_s256(c),
        None => b,
    }
    .sign(key)
    .unwrap()
}

fn proof(key: &PrivateKey, jti: &str, code: Option<&str>) -> String {
    proof_at(key, jti, T0, code)
}

/// A proof with arbitrary header and claims, signed by `key`.
#[allow(clippy::needless_pass_by_value)] // call sites read better with json!() by value
fn forged(key: &PrivateKey, header: Value, claims: Value) -> String {
    jws::sign(
        key.default_alg(),
        header.as_object().unwrap(),
        claims.to_string().as_bytes(),
        key,
    )
    .unwrap()
}

async fn check_id_token(
    app: &mut App,
    id_token: &str,
    client: &str,
    jkt: Option<&Jkt>,
) -> idtoken::ValidatedIdToken {
    let jwks = keybound_jose::JwkSet::from_value(&app.get("/jwks").await.json()).unwrap();
    let auds = vec![client.to_owned()];
    let checks = IdTokenChecks {
        nonce: Some("n1"),
        binding: jkt.map_or(BindingRequirement::Unbound, |j| BindingRequirement::Bound {
            expected_jkt: Some(j),
            accept_draft00: false,
        }),
        ..IdTokenChecks::new(ISS, &auds, T0)
    };
    idtoken::validate(id_token, &jwks, &checks).unwrap()
}

#[tokio::test]
async fn discovery_lists_key_binding_and_dpop() {
    let mut a = app().await;
    let r = a.get("/.well-known/openid-configuration").await;
    assert_eq!(r.status, StatusCode::OK);
    let m = r.json();
    assert_eq!(m["issuer"], ISS);
    assert_eq!(m["token_endpoint"], format!("{ISS}/token"));
    for s in ["openid", "profile", "email", "offline_access", "bound_key"] {
        assert!(
            m["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(s)),
            "KB-D1 {s}"
        );
    }
    assert_eq!(
        m["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
    );
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    // OIDC Discovery §3: the acr values keybound issues, and the claims parameter
    assert_eq!(
        m["acr_values_supported"],
        json!([
            "urn:keybound:acr:pwd",
            "urn:keybound:acr:passkey",
            "urn:keybound:acr:mfa"
        ])
    );
    assert_eq!(m["claims_parameter_supported"], true);
    assert!(m["claims_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("acr")));
    assert_eq!(
        m["response_types_supported"],
        json!([
            "code",
            "id_token",
            "id_token token",
            "code id_token",
            "code token",
            "code id_token token"
        ])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!([
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    let j = a.get("/jwks").await;
    assert!(j.headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    assert_eq!(
        j.json()["keys"].as_array().unwrap().len(),
        2,
        "current and next"
    );
}

#[tokio::test]
async fn key_bound_flow_over_http() {
    let mut a = app().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let code = a
        .code_for("pub", "openid profile offline_access bound_key", Some(&jkt))
        .await;
    let r = a
        .token(
            &code_grant("pub", &code),
            Some(&proof(&key, "1", Some(&code))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let t = r.json();
    assert_eq!(t["token_type"], "DPoP");
    let id = check_id_token(&mut a, t["id_token"].as_str().unwrap(), "pub", Some(&jkt)).await;
    assert_eq!(id.typ.as_deref(), Some("dpop+id_token"));
    // userinfo: DPoP works, Bearer is refused with a DPoP challenge
    let at = t["access_token"].as_str().unwrap();
    let up = ProofBuilder::new("GET", &format!("{ISS}/userinfo"), T0, "u1")
        .ath_for(at)
        .sign(&key)
        .unwrap();
    let ok = a
        .send(
            Request::get("/userinfo")
                .header("authorization", format!("DPoP {at}"))
                .header("dpop", up)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.json()["name"], "Alice");
    let bearer = a
        .send(
            Request::get("/userinfo")
                .header("authorization", format!("Bearer {at}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
    let chal = bearer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    // the error goes on the scheme the client used; DPoP is offered beside it (DP-R3, DP-R4)
    assert!(chal.starts_with("Bearer error=\"invalid_token\""), "{chal}");
    assert!(chal.contains(", DPoP algs=\""), "{chal}");
    // refresh keeps cnf
    let rt = t["refresh_token"].as_str().unwrap();
    let r2 = a
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", "pub"),
            ],
            Some(&proof(&key, "2", None)),
        )
        .await;
    assert_eq!(r2.status, StatusCode::OK, "{}", r2.body);
    let id2 = r2.json()["id_token"].as_str().unwrap().to_owned();
    let jws = keybound_jose::Jws::parse(&id2).unwrap();
    let claims: Value = jws.payload_json().unwrap();
    assert_eq!(claims["cnf"]["jwk"], key.public_jwk().to_value());
}

#[tokio::test]
async fn token_endpoint_refusals_with_status_and_code() {
    let mut a = app().await;
    let key = keys::es256_a();
    let other = keys::es256_b();
    let jkt = key.public_jwk().thumbprint();
    let code = a
        .code_for("pub", "openid offline_access bound_key", Some(&jkt))
        .await;
    let g = code_grant("pub", &code);
    let htu = format!("{ISS}/token");
    let std_claims = |jti: &str| json!({"jti": jti, "htm": "POST", "htu": htu, "iat": T0, "c_s256": keybound_proto::keybinding::c_s256(&code)});
    let hdr = |k: &PrivateKey| json!({"typ": "dpop+jwt", "jwk": k.public_jwk().to_value()});
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "proof by another key",
            proof(&other, "a", Some(&code)),
            "invalid_grant",
        ),
        (
            "c_s256 missing",
            proof(&key, "b", None),
            "invalid_dpop_proof",
        ),
        (
            "c_s256 mismatch",
            proof(&key, "c", Some("another-code")),
            "invalid_dpop_proof",
        ),
        (
            "stale iat",
            proof_at(&key, "d", T0 - 300, Some(&code)),
            "invalid_dpop_proof",
        ),
        (
            "future iat",
            proof_at(&key, "e", T0 + 300, Some(&code)),
            "invalid_dpop_proof",
        ),
        (
            "wrong htm",
            ProofBuilder::new("GET", &htu, T0, "f")
                .c_s256(&code)
                .sign(&key)
                .unwrap(),
            "invalid_dpop_proof",
        ),
        (
            "wrong htu",
            ProofBuilder::new("POST", "http://127.0.0.1:8080/other", T0, "g")
                .c_s256(&code)
                .sign(&key)
                .unwrap(),
            "invalid_dpop_proof",
        ),
        (
            "wrong typ",
            forged(
                &key,
                json!({"typ": "dpop+id_token", "jwk": key.public_jwk().to_value()}),
                std_claims("h"),
            ),
            "invalid_dpop_proof",
        ),
        (
            "jwk with d",
            forged(
                &key,
                json!({"typ": "dpop+jwt", "jwk": serde_json::from_str::<Value>(&key.to_private_jwk().unwrap()).unwrap()}),
                std_claims("i"),
            ),
            "invalid_dpop_proof",
        ),
    ];
    // alg none and HS256: hand-built, no valid signature
    let none_h = b64::encode(
        json!({"typ":"dpop+jwt","alg":"none","jwk":key.public_jwk().to_value()}).to_string(),
    );
    let hs_h = b64::encode(
        json!({"typ":"dpop+jwt","alg":"HS256","jwk":key.public_jwk().to_value()}).to_string(),
    );
    let body = b64::encode(std_claims("j").to_string());
    cases.push((
        "alg none",
        format!("{none_h}.{body}."),
        "invalid_dpop_proof",
    ));
    cases.push(("HS256", format!("{hs_h}.{body}.AAAA"), "invalid_dpop_proof"));
    let _ = hdr;
    for (what, p, code_expected) in &cases {
        let r = a.token(&g, Some(p)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.error(), *code_expected, "{what}: {}", r.body);
    }
    // PKCE and redirect_uri mismatch
    let mut bad = g.clone();
    bad[3] = ("code_verifier", "x".repeat(43).leak());
    let r = a.token(&bad, Some(&proof(&key, "k", Some(&code)))).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "PKCE"
    );
    let mut bad = g.clone();
    bad[2] = ("redirect_uri", "http://127.0.0.1:9999/other");
    let r = a.token(&bad, Some(&proof(&key, "l", Some(&code)))).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "redirect_uri"
    );
    // the code survived all of that
    let good = proof(&key, "m", Some(&code));
    let ok = a.token(&g, Some(&good)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // replayed proof
    let r = a.token(&g, Some(&good)).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
        "replay"
    );
    // code reuse revokes what it issued
    let r = a.token(&g, Some(&proof(&key, "n", Some(&code)))).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "code reuse"
    );
    let at = ok.json()["access_token"].as_str().unwrap().to_owned();
    let up = ProofBuilder::new("GET", &format!("{ISS}/userinfo"), T0, "u")
        .ath_for(&at)
        .sign(&key)
        .unwrap();
    let r = a
        .send(
            Request::get("/userinfo")
                .header("authorization", format!("DPoP {at}"))
                .header("dpop", up)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "access token of a reused code is revoked"
    );
}

#[tokio::test]
async fn refresh_with_another_key_and_reuse_over_http() {
    let mut a = app().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let code = a
        .code_for("pub", "openid offline_access bound_key", Some(&jkt))
        .await;
    let t = a
        .token(
            &code_grant("pub", &code),
            Some(&proof(&key, "1", Some(&code))),
        )
        .await
        .json();
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let rf = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", "pub"),
    ];
    let r = a
        .token(&rf, Some(&proof(&keys::es256_b(), "2", None)))
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert_eq!(
        a.token(&rf, Some(&proof(&key, "3", None))).await.status,
        StatusCode::OK
    );
    let r = a.token(&rf, Some(&proof(&key, "4", None))).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("reuse"));
}

#[tokio::test]
async fn dpop_without_dpop_jkt_gives_id_token_without_cnf() {
    let mut a = app().await;
    let key = keys::es256_a();
    let code = a.code_for("pub", "openid", None).await;
    let r = a
        .token(&code_grant("pub", &code), Some(&proof(&key, "1", None)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = check_id_token(&mut a, r.json()["id_token"].as_str().unwrap(), "pub", None).await;
    assert!(id.claims.cnf.is_none());
}

#[tokio::test]
async fn use_dpop_nonce_then_retry_with_same_code() {
    let mut a = app_with(true).await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let code = a.code_for("nonce", "openid bound_key", Some(&jkt)).await;
    let g = code_grant("nonce", &code);
    let r = a.token(&g, Some(&proof(&key, "1", Some(&code)))).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "use_dpop_nonce")
    );
    let nonce = r.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let p = ProofBuilder::new("POST", &format!("{ISS}/token"), T0, "2")
        .c_s256(&code)
        .nonce(&nonce)
        .sign(&key)
        .unwrap();
    let ok = a.token(&g, Some(&p)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(
        ok.headers.contains_key("dpop-nonce"),
        "the next nonce is advertised"
    );
}

#[tokio::test]
async fn confidential_client_needs_its_secret() {
    let mut a = app().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let code = a.code_for("conf", "openid bound_key", Some(&jkt)).await;
    let g: Vec<(&str, &str)> = code_grant("conf", &code)
        .into_iter()
        .filter(|(k, _)| *k != "client_id")
        .collect();
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("conf:nope")
    );
    // client authentication comes first (ARCHITECTURE §3.3): with wrong credentials even a
    // broken proof is answered invalid_client ...
    let broken = proof(&key, "0", Some("another code"));
    let r = a
        .post_form(
            "/token",
            form_body(&g),
            &[("authorization", &wrong), ("dpop", &broken)],
        )
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let p = proof(&key, "1", Some(&code));
    let r = a
        .post_form(
            "/token",
            form_body(&g),
            &[("authorization", &wrong), ("dpop", &p)],
        )
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    assert!(r.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let right = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("conf:s3cret")
    );
    // ... and a valid proof sent with wrong credentials was never recorded: the same proof
    // with the right credentials succeeds (were proofs checked first, it would be a replay)
    let r = a
        .post_form(
            "/token",
            form_body(&g),
            &[("authorization", &right), ("dpop", &p)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn authorization_errors_pages_and_redirects() {
    let mut a = app().await;
    // unregistered redirect_uri: page, never a redirect
    let r = a.get("/authorize?response_type=code&client_id=pub&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.headers.get(header::LOCATION).is_none());
    assert!(r.body.contains("not registered"));
    // bound_key without dpop_jkt: invalid_request to the redirect URI
    let r = a.get(&authorize_uri("pub", "openid bound_key", None)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with(REDIRECT) && r.location().contains("error=invalid_request"));
    // malformed dpop_jkt
    let r = a
        .get(&format!(
            "{}&dpop_jkt=abc",
            authorize_uri("pub", "openid bound_key", None)
        ))
        .await;
    assert!(r.location().contains("error=invalid_request"));
}

#[tokio::test]
async fn login_wrong_password_and_csrf() {
    let mut a = app().await;
    let jkt = keys::es256_a().public_jwk().thumbprint();
    let page = a
        .get(&authorize_uri("pub", "openid bound_key", Some(&jkt)))
        .await;
    let wrong = a
        .submit(&page.body, &[("username", "alice"), ("password", "nope")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong username or password"));
    // tampered CSRF token
    let tampered = page.body.replace(
        &format!("value=\"{}\"", csrf_of(&page.body)),
        "value=\"forged-forged-forged-forged-forged\"",
    );
    let r = a
        .submit(
            &tampered,
            &[("username", "alice"), ("password", "wonderland")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("CSRF"));
    // the real form works, and the consent page names the key
    let consent = a
        .submit(
            &page.body,
            &[("username", "alice"), ("password", "wonderland")],
        )
        .await;
    assert_eq!(consent.status, StatusCode::OK);
    assert!(consent.body.contains(jkt.as_str()));
    assert!(consent.body.contains("will be able to prove"));
    let cookie = a.cookie("kb_session");
    assert!(!cookie.is_empty());
}

#[tokio::test]
async fn bad_input_is_never_a_500() {
    let mut a = app().await;
    for body in [
        "",
        "grant_type=authorization_code",
        "grant_type=x&grant_type=y",
        "%%%",
        "grant_type=refresh_token&refresh_token=nope&client_id=pub",
    ] {
        let r = a.post_form("/token", body.to_owned(), &[]).await;
        assert!(r.status.is_client_error(), "{body}: {}", r.status);
        assert!(!r.error().is_empty(), "{body}");
    }
    let r = a
        .send(
            Request::post("/token")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.get("/authorize?client_id=pub&max_age=abc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a
        .send(
            Request::get("/userinfo")
                .header("authorization", "DPoP garbage")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let m = a.metrics().await;
    assert!(m.contains("keybound_http_requests_total{path=\"/token\",status=\"400\"}"));
    assert_eq!(a.get("/healthz").await.status, StatusCode::OK);
    let _ = Algorithm::ES256;
}

#[tokio::test]
async fn revocation_and_introspection_over_http() {
    let mut a = app().await;
    let key = keys::es256_a();
    let jkt = key.public_jwk().thumbprint();
    let code = a
        .code_for("conf", "openid offline_access bound_key", Some(&jkt))
        .await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("conf:s3cret")
    );
    let g: Vec<(&str, &str)> = code_grant("conf", &code)
        .into_iter()
        .filter(|(k, _)| *k != "client_id")
        .collect();
    let p = proof(&key, "1", Some(&code));
    let t = a
        .post_form(
            "/token",
            form_body(&g),
            &[("authorization", &basic), ("dpop", &p)],
        )
        .await
        .json();
    let (at, rt) = (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    );
    let i = a
        .post_form(
            "/introspect",
            form_body(&[("token", &at)]),
            &[("authorization", &basic)],
        )
        .await
        .json();
    assert_eq!(
        (
            i["active"].clone(),
            i["cnf"]["jkt"].clone(),
            i["token_type"].clone()
        ),
        (json!(true), json!(jkt.as_str()), json!("DPoP"))
    );
    let i = a
        .post_form(
            "/introspect",
            form_body(&[("token", &rt)]),
            &[("authorization", &basic)],
        )
        .await
        .json();
    assert_eq!(
        i["cnf"]["jkt"],
        jkt.as_str(),
        "Key Binding refresh tokens are bound for confidential clients too"
    );
    // revoke the refresh token: the family is gone
    let r = a
        .post_form(
            "/revoke",
            form_body(&[("token", &rt)]),
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let p = proof(&key, "2", None);
    let r = a
        .post_form(
            "/token",
            form_body(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
            &[("authorization", &basic), ("dpop", &p)],
        )
        .await;
    assert_eq!(r.error(), "invalid_grant");
    // revoke the access token: introspection says inactive
    assert_eq!(
        a.post_form(
            "/revoke",
            form_body(&[("token", &at)]),
            &[("authorization", &basic)]
        )
        .await
        .status,
        StatusCode::OK
    );
    let i = a
        .post_form(
            "/introspect",
            form_body(&[("token", &at)]),
            &[("authorization", &basic)],
        )
        .await
        .json();
    assert_eq!(i["active"], false);
    // unknown tokens are fine to revoke; clients must authenticate
    assert_eq!(
        a.post_form(
            "/revoke",
            form_body(&[("token", "nope")]),
            &[("authorization", &basic)]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        a.post_form("/revoke", form_body(&[("token", "nope")]), &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let m = a.metrics().await;
    assert!(
        m.contains("keybound_oauth_errors_total{path=\"/token\",error=\"invalid_grant\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn dpop_token_endpoint_checklist() {
    let mut a = app().await;
    let key = keys::es256_a();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("conf:s3cret")
    );
    // DP-T4: no proof, no binding: a Bearer token
    let code = a.code_for("pub", "openid", None).await;
    let r = a.token(&code_grant("pub", &code), None).await;
    assert_eq!(r.json()["token_type"], "Bearer", "{}", r.body);
    // DP-T7: a client registered with dpop_bound_access_tokens must send a proof
    let code = a.code_for("strict", "openid", None).await;
    let r = a.token(&code_grant("strict", &code), None).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    // DP-T6: outside Key Binding, a confidential client's refresh token is not key-bound
    let code = a.code_for("conf", "openid offline_access", None).await;
    let g: Vec<(&str, &str)> = code_grant("conf", &code)
        .into_iter()
        .filter(|(k, _)| *k != "client_id")
        .collect();
    let p = proof(&key, "t6", None);
    let t = a
        .post_form(
            "/token",
            form_body(&g),
            &[("authorization", &basic), ("dpop", &p)],
        )
        .await
        .json();
    assert_eq!(t["token_type"], "DPoP");
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let i = a
        .post_form(
            "/introspect",
            form_body(&[("token", &rt)]),
            &[("authorization", &basic)],
        )
        .await
        .json();
    assert!(i["cnf"].is_null(), "{i}");
    // KB-RF4: a rotated Key Binding refresh token stays bound to the same key
    let jkt = key.public_jwk().thumbprint();
    let code = a
        .code_for("pub", "openid offline_access bound_key", Some(&jkt))
        .await;
    let t = a
        .token(
            &code_grant("pub", &code),
            Some(&proof(&key, "rf4-1", Some(&code))),
        )
        .await
        .json();
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let t2 = a
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", "pub"),
            ],
            Some(&proof(&key, "rf4-2", None)),
        )
        .await
        .json();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    let r = a
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt2),
                ("client_id", "pub"),
            ],
            Some(&proof(&keys::es256_b(), "rf4-3", None)),
        )
        .await;
    assert_eq!(
        r.error(),
        "invalid_grant",
        "the rotated token is still bound"
    );
    // KB-S3: an ID Token is not an access token
    let id_token = t["id_token"].as_str().unwrap();
    let up = ProofBuilder::new("GET", &format!("{ISS}/userinfo"), T0, "s3")
        .ath_for(id_token)
        .sign(&key)
        .unwrap();
    let r = a
        .send(
            Request::get("/userinfo")
                .header("authorization", format!("DPoP {id_token}"))
                .header("dpop", up)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("at+jwt"), "{}", r.body);
}

async fn device_start(a: &mut App, key: &PrivateKey) -> Value {
    let jkt = key.public_jwk().thumbprint();
    let r = a
        .post_form(
            "/device_authorization",
            form_body(&[
                ("client_id", "pub"),
                ("scope", "openid bound_key"),
                ("dpop_jkt", jkt.as_str()),
            ]),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    r.json()
}

async fn device_submit(a: &mut App, page: &str, extra: &[(&str, &str)]) -> Resp {
    a.submit_to("/device", page, extra).await
}

#[tokio::test]
async fn device_flow_over_http() {
    let mut a = app().await;
    let m = a.get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        m["device_authorization_endpoint"],
        format!("{ISS}/device_authorization")
    );
    assert!(m["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("urn:ietf:params:oauth:grant-type:device_code")));
    let key = keys::es256_a();
    let d = device_start(&mut a, &key).await;
    let (dc, uc) = (
        d["device_code"].as_str().unwrap().to_owned(),
        d["user_code"].as_str().unwrap().to_owned(),
    );
    // verification_uri_complete pre-fills the code, which the End-User still confirms
    let complete = d["verification_uri_complete"]
        .as_str()
        .unwrap()
        .replace(ISS, "");
    let entry = a.get(&complete).await;
    assert!(
        entry.body.contains(&format!("value=\"{uc}\"")),
        "{}",
        entry.body
    );
    let login = device_submit(
        &mut a,
        &entry.body,
        &[("user_code", &uc.to_lowercase().replace('-', " "))],
    )
    .await;
    assert!(login.body.contains("name=\"password\""), "{}", login.body);
    let consent = device_submit(
        &mut a,
        &login.body,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent
        .body
        .contains(key.public_jwk().thumbprint().as_str()));
    assert!(consent.body.contains("Only approve if the code"));
    let poll = |jti: &'static str| {
        ProofBuilder::new("POST", &format!("{ISS}/token"), T0, jti)
            .c_s256(&dc)
            .sign(&key)
            .unwrap()
    };
    let g = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", dc.as_str()),
        ("client_id", "pub"),
    ];
    let r = a.token(&g, Some(&poll("d1"))).await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );
    let done = device_submit(&mut a, &consent.body, &[("decision", "allow")]).await;
    assert!(done.body.contains("Device connected"), "{}", done.body);
    // polled again at the same instant: slow_down; the clock here does not move, so that is
    // what the device sees until it waits — the op tests cover the interval arithmetic
    let r = a.token(&g, Some(&poll("d2"))).await;
    assert_eq!(r.error(), "slow_down");
}

#[tokio::test]
async fn device_page_wrong_codes_are_limited() {
    let mut a = app().await;
    let entry = a.get("/device").await;
    for i in 0..5 {
        let r = device_submit(&mut a, &entry.body, &[("user_code", "BCDF-GHJK")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "attempt {i}");
        assert!(r.body.contains("not valid"));
    }
    let r = device_submit(&mut a, &entry.body, &[("user_code", "BCDF-GHJK")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many wrong codes"));
    // a forged CSRF token is refused before anything else
    let forged = entry.body.replace(
        &csrf_of(&entry.body),
        "forged-forged-forged-forged-forged-forged",
    );
    assert_eq!(
        device_submit(&mut a, &forged, &[("user_code", "BCDF-GHJK")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn device_deny_is_access_denied() {
    let mut a = app().await;
    let key = keys::es256_a();
    let d = device_start(&mut a, &key).await;
    let (dc, uc) = (
        d["device_code"].as_str().unwrap().to_owned(),
        d["user_code"].as_str().unwrap().to_owned(),
    );
    let entry = a.get("/device").await;
    let login = device_submit(&mut a, &entry.body, &[("user_code", &uc)]).await;
    let consent = device_submit(
        &mut a,
        &login.body,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    let done = device_submit(&mut a, &consent.body, &[("decision", "deny")]).await;
    assert!(done.body.contains("Request denied"));
    let p = ProofBuilder::new("POST", &format!("{ISS}/token"), T0, "x")
        .c_s256(&dc)
        .sign(&key)
        .unwrap();
    let r = a
        .token(
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &dc),
                ("client_id", "pub"),
            ],
            Some(&p),
        )
        .await;
    // DF-4: every token-endpoint error is HTTP 400 (RFC 6749 §5.2), access_denied too
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "access_denied")
    );
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
}

/// DF-4 / RFC 6749 §5.2: at the token endpoint every error is 400 except `invalid_client`
/// (401); the device grant's errors (`authorization_pending`, `slow_down`, `expired_token`,
/// `access_denied`) are no exception.
#[tokio::test]
async fn df4_token_endpoint_errors_are_400_except_invalid_client() {
    let mut a = app().await;
    let key = keys::es256_a();
    let d = device_start(&mut a, &key).await;
    let dc = d["device_code"].as_str().unwrap().to_owned();
    let g = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", dc.as_str()),
        ("client_id", "pub"),
    ];
    let poll = |jti: &str| {
        ProofBuilder::new("POST", &format!("{ISS}/token"), T0, jti)
            .c_s256(&dc)
            .sign(&key)
            .unwrap()
    };
    let mut seen = Vec::new();
    for (i, want) in ["authorization_pending", "slow_down"].iter().enumerate() {
        let r = a.token(&g, Some(&poll(&format!("df4-{i}")))).await;
        assert_eq!(r.error(), *want, "{}", r.body);
        seen.push((r.status, r.error()));
    }
    // unsupported grant type, missing parameter, unknown client
    let r = a
        .token(&[("grant_type", "password"), ("client_id", "pub")], None)
        .await;
    seen.push((r.status, r.error()));
    let r = a
        .token(
            &[("grant_type", "authorization_code"), ("client_id", "pub")],
            None,
        )
        .await;
    seen.push((r.status, r.error()));
    for (status, error) in &seen {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{error}");
    }
    let r = a
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "nobody"),
            ],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
}

/// DP-R4 / RFC 6750 §3.1: userinfo without credentials answers 401 with a `DPoP` challenge
/// (with `algs`) and a `Bearer` challenge, and no error code.
#[tokio::test]
async fn dp_r4_userinfo_without_credentials_offers_both_schemes_without_error() {
    let mut a = app().await;
    let r = a.get("/userinfo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let chal = r.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(chal.contains("DPoP algs=\"ES256"), "{chal}");
    assert!(chal.contains("Bearer"), "{chal}");
    assert!(
        !chal.contains("error"),
        "RFC 6750 §3.1: no error code: {chal}"
    );
}

/// Issue 10 item 1 (OIDC Core 3.1.2.1 `prompt=login`, `max_age`): with a live session, a
/// request demanding a fresh login cannot be satisfied by posting the consent form with the
/// session's `auth_time` — freshness is decided from the OP's own state (a login performed for
/// this very request), never from a form field.
#[tokio::test]
async fn prompt_login_cannot_be_satisfied_by_a_posted_form_field() {
    let mut a = app().await;
    // a session (the End-User signed in and consented once)
    a.code_for("pub", "openid", None).await;
    let uri = format!("{}&prompt=login", authorize_uri("pub", "openid", None));
    let login = a.get(&uri).await;
    assert!(login.body.contains("name=\"password\""), "{}", login.body);
    // the attacker at the browser skips the password and posts the consent step directly
    let params: Vec<(String, String)> = url::Url::parse(&format!("{ISS}{uri}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let mut fields: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let csrf = csrf_of(&login.body);
    let auth_time = T0.to_string();
    fields.extend([
        ("kb_action", "consent"),
        ("decision", "allow"),
        ("kb_fresh", auth_time.as_str()),
        ("csrf", csrf.as_str()),
    ]);
    let r = a.post_form("/authorize", form_body(&fields), &[]).await;
    assert_ne!(
        r.status,
        StatusCode::SEE_OTHER,
        "no code without a fresh login: {:?}",
        r.headers.get(header::LOCATION)
    );
    assert!(r.body.contains("name=\"password\""), "{}", r.body);
    // and with the password, the login is fresh and a code is issued
    let done = a
        .browser
        .sign_in(&format!("{ISS}{uri}"), None, ALICE.0, ALICE.1)
        .await
        .unwrap();
    assert!(done.contains("code="), "{done}");
}

/// The authorization request's parameters of `uri` plus our form fields, as a form body.
fn authorize_form(uri: &str, extra: &[(&str, &str)]) -> String {
    let mut fields: Vec<(String, String)> = url::Url::parse(&format!("{ISS}{uri}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    fields.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    serde_urlencoded::to_string(&fields).unwrap()
}

/// POST the consent step of the authorization request `uri` (Allow) with CSRF token `csrf`,
/// as a cross-site form would.
async fn allow_consent(a: &mut App, uri: &str, csrf: &str) -> Resp {
    a.post_form(
        "/authorize",
        authorize_form(
            uri,
            &[
                ("kb_action", "consent"),
                ("decision", "allow"),
                ("csrf", csrf),
            ],
        ),
        &[],
    )
    .await
}

/// Issue 10 item 6: a CSRF cookie planted for the OP's host (by a sibling subdomain or another
/// loopback port) with a value the attacker knows does not let a cross-site POST approve
/// consent for the attacker's key: the token is derived from the End-User's session.
#[tokio::test]
async fn issue10_item6_planted_csrf_cookie_cannot_approve_consent() {
    let mut a = app().await;
    a.code_for("pub", "openid", None).await; // the victim is signed in
    let attacker = keys::es256_b().public_jwk().thumbprint();
    let known = "attacker-knows-this-value-attacker-knows-it";
    a.browser.plant_cookie("kb_csrf", known);
    let uri = authorize_uri("pub", "openid bound_key", Some(&attacker));
    let r = allow_consent(&mut a, &uri, known).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        r.headers.get(header::LOCATION)
    );
    assert!(r.body.contains("CSRF"), "{}", r.body);
    // the page's own token still works
    let page = a.get(&uri).await;
    assert!(page.body.contains("name=\"decision\""), "{}", page.body);
    let ok = a.submit(&page.body, &[("decision", "allow")]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert!(ok.location().contains("code="));
}

/// Issue 10 item 6: the CSRF token rotates at login; the token of the login form does not
/// approve consent in the session that login started.
#[tokio::test]
async fn issue10_item6_csrf_token_rotates_at_login() {
    let mut a = app().await;
    let jkt = keys::es256_a().public_jwk().thumbprint();
    let uri = authorize_uri("pub", "openid bound_key", Some(&jkt));
    let login = a.get(&uri).await;
    let before = csrf_of(&login.body);
    let consent = a
        .submit(&login.body, &[("username", ALICE.0), ("password", ALICE.1)])
        .await;
    assert!(
        consent.body.contains("name=\"decision\""),
        "{}",
        consent.body
    );
    let after = csrf_of(&consent.body);
    assert_ne!(before, after, "the CSRF token must change at login");
    let stale = allow_consent(&mut a, &uri, &before).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    let ok = a.submit(&consent.body, &[("decision", "allow")]).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

/// Issue 10 item 6: under https the OP's cookies carry the `__Host-` prefix (host-only,
/// `Secure`, `Path=/`), so no sibling subdomain can set them.
#[tokio::test]
async fn issue10_item6_host_prefix_under_https() {
    let iss = "https://op.example";
    let (public, _) = OpBuilder::new()
        .client(client("pub", ClientAuthMethod::None))
        .build_at(iss)
        .await
        .routers();
    let mut b = Browser::new(RouterTransport(public.clone()));
    let redirect = b
        .sign_in(
            &format!("{iss}{}", authorize_uri("pub", "openid", None)),
            None,
            ALICE.0,
            ALICE.1,
        )
        .await
        .unwrap();
    assert!(redirect.contains("code="), "{redirect}");
    assert!(b.cookie("__Host-kb_session").is_some());
    assert!(b.cookie("__Host-kb_csrf").is_some());
    assert!(b.cookie("kb_session").is_none() && b.cookie("kb_csrf").is_none());
    let r = b
        .request(HttpRequest::get(&format!(
            "{iss}{}",
            authorize_uri("pub", "openid", None)
        )))
        .await
        .unwrap();
    assert_eq!(r.status, 303, "the session is reused");
    let mut c = Browser::new(RouterTransport(public));
    let r = c
        .request(HttpRequest::get(&format!(
            "{iss}{}",
            authorize_uri("pub", "openid", None)
        )))
        .await
        .unwrap();
    let set: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(!set.is_empty());
    for v in set {
        assert!(v.starts_with("__Host-"), "{v}");
        assert!(v.contains("; Secure") && v.contains("; Path=/"), "{v}");
        assert!(!v.to_ascii_lowercase().contains("domain="), "{v}");
    }
}

/// Issue 10 item 8: wrong codes from one address (a NAT, a proxy) do not stop an End-User at
/// that address from entering a correct code. Past the address's limit an anonymous browser
/// learns nothing about codes and is asked to sign in first; codes are then limited per account.
#[tokio::test]
async fn issue10_item8_guessers_at_one_address_do_not_lock_out_a_correct_code() {
    let mut a = app_at("203.0.113.5:4000").await;
    // guessers behind the same address, with fresh cookies every five guesses
    for i in 0..30 {
        if i % 5 == 0 {
            a.browser.clear_cookies();
        }
        let entry = a.get("/device").await;
        device_submit(&mut a, &entry.body, &[("user_code", "BCDF-GHJK")]).await;
    }
    // guessing stays bounded: an anonymous browser there gets no verdict on a code
    a.browser.clear_cookies();
    let entry = a.get("/device").await;
    let r = device_submit(&mut a, &entry.body, &[("user_code", "BCDF-GHJK")]).await;
    assert!(r.body.contains("name=\"password\""), "{}", r.body);
    assert!(!r.body.contains("not valid"), "{}", r.body);
    // an End-User at the same address with a real code gets through
    let key = keys::es256_a();
    let d = device_start(&mut a, &key).await;
    let uc = d["user_code"].as_str().unwrap().to_owned();
    a.browser.clear_cookies();
    let entry = a.get("/device").await;
    let login = device_submit(&mut a, &entry.body, &[("user_code", &uc)]).await;
    assert_ne!(
        login.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        login.body
    );
    assert!(login.body.contains("name=\"password\""), "{}", login.body);
    let consent = device_submit(
        &mut a,
        &login.body,
        &[("username", ALICE.0), ("password", ALICE.1)],
    )
    .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent
        .body
        .contains(key.public_jwk().thumbprint().as_str()));
    let done = device_submit(&mut a, &consent.body, &[("decision", "allow")]).await;
    assert!(done.body.contains("Device connected"), "{}", done.body);
}

/// Guess wrong user codes from `n` fresh browsers of five guesses each, with `headers`.
async fn guess_codes(a: &mut App, browsers: usize, headers: &[(&str, &str)]) {
    for _ in 0..browsers {
        a.browser.clear_cookies();
        let entry = a.get("/device").await;
        for _ in 0..5 {
            let mut fields = hidden_fields(&entry.body);
            fields.push(("user_code".into(), "BCDF-GHJK".into()));
            let body = serde_urlencoded::to_string(&fields).unwrap();
            a.post_form("/device", body, headers).await;
        }
    }
}

/// A code entry from a fresh browser with `headers`: its answer.
async fn enter_code(a: &mut App, code: &str, headers: &[(&str, &str)]) -> Resp {
    a.browser.clear_cookies();
    let entry = a.get("/device").await;
    let mut fields = hidden_fields(&entry.body);
    fields.push(("user_code".into(), code.into()));
    let body = serde_urlencoded::to_string(&fields).unwrap();
    a.post_form("/device", body, headers).await
}

/// Issue 10 item 8: signed in, wrong codes count per account: fresh browsers (each signed in
/// anew) do not reset it.
#[tokio::test]
async fn issue10_item8_signed_in_guessing_is_bounded_per_account() {
    let mut a = app_at("203.0.113.5:4000").await;
    for browser in 0..5 {
        a.browser.clear_cookies();
        a.code_for("pub", "openid", None).await; // signed in
        let entry = a.get("/device").await;
        for i in 0..5 {
            let r = device_submit(&mut a, &entry.body, &[("user_code", "BCDF-GHJK")]).await;
            let expected = if browser == 4 {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(r.status, expected, "browser {browser}, guess {i}");
        }
    }
}

/// Issue 10 item 8: behind a configured trusted proxy, the forwarded address is the one
/// limited; the same headers from anyone else are ignored.
#[tokio::test]
async fn issue10_item8_forwarded_address_only_from_a_trusted_proxy() {
    let a_hdr = [("x-forwarded-for", "198.51.100.7")];
    let b_hdr = [("forwarded", "for=198.51.100.8")];
    // trusted: guessers at .7 do not affect .8
    let mut a = app_behind("127.0.0.1:5000", &["127.0.0.1/32"]).await;
    guess_codes(&mut a, 5, &a_hdr).await;
    let r = enter_code(&mut a, "BCDF-GHJK", &a_hdr).await;
    assert!(r.body.contains("Many wrong codes"), "{}", r.body);
    let r = enter_code(&mut a, "BCDF-GHJK", &b_hdr).await;
    assert!(r.body.contains("not valid"), "{}", r.body);
    // not trusted: the headers are ignored, the peer is the address
    let mut a = app_behind("127.0.0.1:5000", &["10.0.0.0/8"]).await;
    guess_codes(&mut a, 5, &a_hdr).await;
    let r = enter_code(&mut a, "BCDF-GHJK", &b_hdr).await;
    assert!(r.body.contains("Many wrong codes"), "{}", r.body);
}

/// Issue 10 item 5: the background purge removes expired rows and counts them on `/metrics`.
#[tokio::test]
async fn issue10_item5_background_purge_removes_expired_rows() {
    let op = OpBuilder::new().build_at(ISS).await;
    let (store, clock) = (op.store.clone(), op.clock.clone());
    assert!(store.check_and_insert(&[1; 32], T0 + 1, T0).await.unwrap());
    assert!(store.check_and_insert(&[2; 32], T0 + 1, T0).await.unwrap());
    assert!(store
        .check_and_insert(&[3; 32], T0 + 500, T0)
        .await
        .unwrap());
    clock.advance(2);
    let state = keybound_server::AppState::new(op.p);
    // one row per statement: the pass works off its backlog in several statements
    let task = keybound_server::spawn_purge(state.clone(), std::time::Duration::from_millis(5), 1);
    let want = "keybound_purged_rows_total{kind=\"replay\"} 2";
    for _ in 0..400 {
        if state.metrics.render().contains(want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(
        state.metrics.render().contains(want),
        "{}",
        state.metrics.render()
    );
    // the live entry is still there: its jti is still a replay
    assert!(!store
        .check_and_insert(&[3; 32], T0 + 500, T0 + 2)
        .await
        .unwrap());
}

/// ID-JAG §4.4, identity chaining §2.3: discovery lists token exchange, jwt-bearer, the ID-JAG
/// token type and grant profile.
#[tokio::test]
async fn discovery_lists_token_exchange_jwt_bearer_and_id_jag() {
    let mut a = app().await;
    let m = a.get("/.well-known/openid-configuration").await.json();
    assert!(m["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("urn:ietf:params:oauth:grant-type:token-exchange")));
    assert_eq!(
        m["identity_chaining_requested_token_types_supported"],
        json!(["urn:ietf:params:oauth:token-type:id-jag"])
    );
    assert!(m["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer")));
    assert_eq!(
        m["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
}

/// RFC 7591 over HTTP: discovery names the endpoint; no token is a 401 with a Bearer
/// challenge; a JSON registration with an initial access token is 201 `no-store` with the
/// client and its secret; bad metadata is 400 `invalid_client_metadata`.
#[tokio::test]
async fn rfc7591_registration_over_http() {
    let op = OpBuilder::new().build_at(ISS).await;
    let token = op.p.create_registration_token(600, None).await.unwrap();
    let (public, _) = op.routers();
    let mut a = App {
        browser: Browser::new(RouterTransport(public.clone())),
        management: Browser::new(RouterTransport(public)),
    };
    let m = a.get("/.well-known/openid-configuration").await.json();
    assert_eq!(m["registration_endpoint"], format!("{ISS}/register"));
    let post = |auth: Option<String>, body: &'static str| {
        let mut b = Request::post("/register").header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::from(body)).unwrap()
    };
    let r = a
        .send(post(
            None,
            r#"{"redirect_uris":["https://app.example/cb"]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    let r = a
        .send(post(
            Some(format!("Bearer {token}")),
            r#"{"redirect_uris":["https://app.example/cb"],"client_name":"Web"}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let v = r.json();
    assert!(v["client_id"].is_string() && v["client_secret"].is_string());
    assert_eq!(v["client_name"], "Web");
    let r = a
        .send(post(
            Some(format!("Bearer {token}")),
            r#"{"redirect_uris":["https://app.example/cb"],"response_types":["token"]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), "invalid_client_metadata");
}

/// OAuth 2.0 Form Post Response Mode and the fragment mode for the code flow; errors travel the
/// way the client asked; an unknown response_mode is refused in the query.
#[tokio::test]
async fn response_modes_form_post_and_fragment() {
    let mut a = app().await;
    let m = a.get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        m["response_modes_supported"],
        json!(["query", "fragment", "form_post"])
    );
    a.code_for("pub", "openid", None).await; // signed in, consented
    let with_mode = |mode: &str| {
        format!(
            "{}&response_mode={mode}",
            authorize_uri("pub", "openid", None)
        )
    };
    // form_post: a page that posts code, state and iss to the redirect URI
    let r = a.get(&with_mode("form_post")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains(&format!("action=\"{REDIRECT}\"")),
        "{}",
        r.body
    );
    let fields: HashMap<String, String> = hidden_fields(&r.body).into_iter().collect();
    assert!(fields.contains_key("code") && fields["state"] == "s1" && fields["iss"] == ISS);
    // the CSP allows exactly the page's one script, by the hash of what the page carries
    // (CSP hashes are standard base64 with padding), and no form-action: Chromium applies
    // form-action along the redirect chain, so an RP whose callback answers with a redirect
    // would be stopped (interop/browser.test.mjs proves it in the browser)
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    let script = r
        .body
        .split("<script>")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .unwrap();
    assert_eq!(script, "document.forms[0].submit()");
    let digest = keybound_jose::sha256(script.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(digest);
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}'")),
        "{csp} does not allow the page's script ({hash})"
    );
    assert_eq!(r.body.matches("<script").count(), 1, "one script only");
    assert!(!csp.contains("form-action"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // fragment
    let r = a.get(&with_mode("fragment")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.location().starts_with(&format!("{REDIRECT}#code=")),
        "{}",
        r.location()
    );
    // an error in fragment mode travels in the fragment
    let bad_scope = authorize_uri("pub", "profile", None) + "&response_mode=fragment";
    let r = a.get(&bad_scope).await;
    assert!(
        r.location()
            .starts_with(&format!("{REDIRECT}#error=invalid_scope")),
        "{}",
        r.location()
    );
    // an unknown mode: refused, in the query
    let r = a.get(&with_mode("web_message")).await;
    assert!(
        r.location()
            .starts_with(&format!("{REDIRECT}?error=invalid_request")),
        "{}",
        r.location()
    );
}

/// A Token Binding ID as a TLS terminator forwards it (base64url TokenBindingID bytes).
fn forwarded_tb_id(seed: u8) -> (String, String) {
    let id = keybound_proto::tokbind::TokenBindingId {
        key_parameters: keybound_proto::tokbind::KeyParameters::EcdsaP256,
        key: keybound_proto::tokbind::TbPublicKey::Ec {
            point: vec![seed; 64],
        },
    };
    (b64::encode(id.to_bytes().unwrap()), id.tbh().unwrap())
}

/// An app behind `peer` (trusted proxies `trusted`) whose client `tb` may use the code, implicit
/// and hybrid flows; its browser sends `Sec-Referred-Token-Binding-ID`.
async fn tb_app(
    peer: &str,
    trusted: &[&str],
    referred: &str,
    token_binding: keybound_server::TokenBindingMode,
) -> App {
    let op = OpBuilder::new()
        .client(Client {
            response_types: vec!["code".into(), "id_token".into()],
            token_bound_id_tokens: true,
            redirect_uris: vec![REDIRECT.into(), TOKEN_REDIRECT.into()],
            ..client("tb", ClientAuthMethod::None)
        })
        .client(client("plain", ClientAuthMethod::None));
    let mut app = app_from(op, peer, trusted, token_binding).await;
    app.browser = app
        .browser
        .with_header("sec-referred-token-binding-id", referred);
    app
}

fn id_token_cnf(id_token: &str) -> Value {
    let jws = keybound_jose::Jws::parse(id_token).unwrap();
    let claims: Value = jws.payload_json().unwrap();
    claims["cnf"].clone()
}

/// OIDC Token Bound Authentication §3 through a trusted TLS terminator: the referred Token
/// Binding ID becomes `cnf.tbh` — at once in an implicit ID Token, and through the code in the
/// token endpoint's; from an untrusted peer the header is ignored (no `tbh`).
#[tokio::test]
async fn token_bound_id_tokens_through_a_trusted_proxy() {
    let (header, tbh) = forwarded_tb_id(7);
    let proxy = keybound_server::TokenBindingMode::Proxy;
    let mut a = tb_app("127.0.0.1:5000", &["127.0.0.1/32"], &header, proxy).await;
    // the implicit flow's tokens go to the client's https redirect URI
    let implicit = authorize_uri("tb", "openid", None)
        .replace("response_type=code", "response_type=id_token")
        .replace(
            &serde_urlencoded::to_string([("redirect_uri", REDIRECT)]).unwrap(),
            &serde_urlencoded::to_string([("redirect_uri", TOKEN_REDIRECT)]).unwrap(),
        );
    let redirect = a
        .browser
        .sign_in(&format!("{ISS}{implicit}"), None, ALICE.0, ALICE.1)
        .await
        .unwrap();
    let fragment: HashMap<String, String> = url::form_urlencoded::parse(
        url::Url::parse(&redirect)
            .unwrap()
            .fragment()
            .unwrap()
            .as_bytes(),
    )
    .into_owned()
    .collect();
    assert_eq!(id_token_cnf(&fragment["id_token"])["tbh"], tbh.as_str());
    // the code flow: the tbh travels with the code to the token endpoint's ID Token
    let code = a.code_for("tb", "openid", None).await;
    let t = a.token(&code_grant("tb", &code), None).await.json();
    assert_eq!(
        id_token_cnf(t["id_token"].as_str().unwrap())["tbh"],
        tbh.as_str()
    );
    // discovery says so (Token Bound Authentication §5.2)
    // a client that did not register support for Token Bound ID Tokens gets none
    let code = a.code_for("plain", "openid", None).await;
    let t = a.token(&code_grant("plain", &code), None).await.json();
    assert_eq!(id_token_cnf(t["id_token"].as_str().unwrap()), Value::Null);
    let m = a.get("/.well-known/openid-configuration").await.json();
    assert_eq!(m["op_id_token_token_binding_supported"], true);
    assert_eq!(
        m["id_token_token_binding_cnf_values_supported"],
        json!(["tbh"])
    );
    // the same header from a peer that is not a trusted proxy: ignored
    let mut b = tb_app("127.0.0.1:5000", &[], &header, proxy).await;
    let code = b.code_for("tb", "openid", None).await;
    let t = b.token(&code_grant("tb", &code), None).await.json();
    assert_eq!(id_token_cnf(t["id_token"].as_str().unwrap()), Value::Null);
    // Token Binding off: ignored even from a trusted proxy, and not advertised
    let off = keybound_server::TokenBindingMode::Off;
    let mut c = tb_app("127.0.0.1:5000", &["127.0.0.1/32"], &header, off).await;
    let code = c.code_for("tb", "openid", None).await;
    let t = c.token(&code_grant("tb", &code), None).await.json();
    assert_eq!(id_token_cnf(t["id_token"].as_str().unwrap()), Value::Null);
    let m = c.get("/.well-known/openid-configuration").await.json();
    assert!(m.get("op_id_token_token_binding_supported").is_none());
}

/// Issue 10 item 13: `/metrics` is not on the public listener; the management router serves it.
#[tokio::test]
async fn metrics_only_on_the_management_listener() {
    let mut a = app().await;
    assert_eq!(a.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(a.get("/metrics").await.status, StatusCode::NOT_FOUND);
    assert!(a.metrics().await.contains("keybound_http_requests_total"));
}

/// Issue 23 item 2, RFC 9126 through the browser: the client pushes its request (HTTP Basic),
/// the browser brings only `client_id` and `request_uri`, signs in and consents through the
/// OP's forms (which carry the pushed parameters with the OP's mark) and lands on the client
/// with a code for the pushed `state`; the `request_uri` then no longer works. A client that
/// must push is refused without it, and a form whose pushed parameters were edited loses the
/// mark and is refused the same way. Discovery names the endpoint.
#[tokio::test]
async fn rfc9126_par_through_the_browser() {
    let op = OpBuilder::new()
        .client(client("conf", ClientAuthMethod::ClientSecretBasic))
        .client(Client {
            require_par: true,
            ..client("must-push", ClientAuthMethod::ClientSecretBasic)
        });
    let (public, _) = op.build_at(ISS).await.routers();
    let mut a = App {
        browser: Browser::new(RouterTransport(public.clone())),
        management: Browser::new(RouterTransport(public)),
    };
    let m = a.get("/.well-known/openid-configuration").await.json();
    assert_eq!(
        m["pushed_authorization_request_endpoint"],
        format!("{ISS}/par")
    );
    assert_eq!(m["require_pushed_authorization_requests"], false);

    let push = |client: &'static str| {
        let body = authorize_uri(client, "openid", None)
            .trim_start_matches("/authorize?")
            .to_owned();
        (body, basic(client))
    };
    let (body, auth) = push("conf");
    let r = a.post_form("/par", body, &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let request_uri = r.json()["request_uri"].as_str().unwrap().to_owned();
    let by_reference = format!(
        "{ISS}/authorize?{}",
        form_body(&[("client_id", "conf"), ("request_uri", &request_uri)])
    );
    let redirect = a
        .browser
        .sign_in(&by_reference, None, ALICE.0, ALICE.1)
        .await
        .unwrap();
    let q: HashMap<String, String> = url::Url::parse(&redirect)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(q.contains_key("code"), "{redirect}");
    assert_eq!(q["state"], "s1");
    let used = a.get(by_reference.trim_start_matches(ISS)).await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST, "{}", used.body);
    assert!(used.body.contains("already used"), "{}", used.body);

    // a client that must push: refused directly, served by reference
    let direct = a.get(&authorize_uri("must-push", "openid", None)).await;
    assert_eq!(direct.status, StatusCode::SEE_OTHER);
    assert!(
        direct.location().contains("error=invalid_request"),
        "{}",
        direct.location()
    );
    let (body, auth) = push("must-push");
    let r = a.post_form("/par", body, &[("authorization", &auth)]).await;
    let request_uri = r.json()["request_uri"].as_str().unwrap().to_owned();
    let page = a
        .get(&format!(
            "/authorize?{}",
            form_body(&[("client_id", "must-push"), ("request_uri", &request_uri)])
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("kb_par"),
        "the consent form carries the mark"
    );
    // edited pushed parameters lose the mark
    let edited: Vec<(String, String)> = hidden_fields(&page.body)
        .into_iter()
        .map(|(k, v)| {
            if k == "state" {
                (k, "forged".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut fields = edited;
    fields.push(("decision".into(), "allow".into()));
    let r = a
        .post_form(
            "/authorize",
            serde_urlencoded::to_string(&fields).unwrap(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.location().contains("error=invalid_request"),
        "{}",
        r.location()
    );
    // the untouched form is served
    let r = a.submit(&page.body, &[("decision", "allow")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().contains("code="), "{}", r.location());
}
