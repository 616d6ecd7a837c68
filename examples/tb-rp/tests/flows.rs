//! OpenID Connect Token Bound Authentication end to end on loopback: the test user agent signs
//! in at the example RP through keybound's OP, both over TLS 1.2 with Token Binding, with the OP
//! behind its native listener and behind a TLS terminator (proxy mode). Each flow ends with the
//! RP having accepted `cnf.tbh`; each attack ends with a refusal and its reason.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use keybound_rp::tokbind::TbPolicy;
use keybound_testkit::browser::{form_action, hidden_fields};
use keybound_testkit::op::ALICE;
use keybound_testkit::tb::{Federation, FederationOptions, OpFront, TbTransport};

async fn federation(front: OpFront) -> Federation {
    Federation::start(FederationOptions {
        front,
        ..FederationOptions::default()
    })
    .await
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Sign in with `flow` and return the RP's answer (status, JSON).
async fn sign_in(
    f: &Federation,
    b: &mut keybound_testkit::browser::Browser<TbTransport>,
    flow: &str,
) -> (u16, serde_json::Value) {
    let page = b
        .browse(&f.login_url(flow), ALICE.0, ALICE.1)
        .await
        .unwrap();
    (page.status, json(&page.body))
}

/// TBA §3/§4: for each flow and each way the OP gets Token Binding, the ID Token's `cnf.tbh` is
/// the hash of the browser's Token Binding ID with the RP, and the RP accepts it.
#[tokio::test]
async fn tba_3_4_every_flow_ends_with_the_rp_accepting_tbh() {
    for front in [OpFront::Native, OpFront::Proxy] {
        let f = federation(front).await;
        for flow in [
            "code",
            "implicit",
            "hybrid",
            "implicit&mode=fragment",
            "hybrid&mode=fragment",
        ] {
            let mut b = f.browser();
            let expected = b.transport().token_binding_id(&f.rp).tbh().unwrap();
            let (status, body) = sign_in(&f, &mut b, flow).await;
            assert_eq!(status, 200, "{front:?} {flow}: {body}");
            assert_eq!(body["sub"], ALICE.2, "{front:?} {flow}");
            assert_eq!(
                body["tbh"], expected,
                "{front:?} {flow}: tbh = the RP-side binding"
            );
            assert_eq!(body["token_binding"], expected);
            // the RP session works on this browser's binding
            let me = b.get(&format!("{}/me", f.rp)).await.unwrap();
            assert_eq!(me.status, 200, "{}", me.body);
        }
    }
}

/// A second sign-in reuses the OP session (no login form, so the referred binding arrives on
/// the request that issues the response) and still binds.
#[tokio::test]
async fn tba_3_with_an_existing_op_session() {
    let f = federation(OpFront::Native).await;
    let mut b = f.browser();
    assert_eq!(sign_in(&f, &mut b, "implicit").await.0, 200);
    let (status, body) = sign_in(&f, &mut b, "code").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tbh"],
        b.transport().token_binding_id(&f.rp).tbh().unwrap()
    );
}

/// TBA §4 (MUST): an ID Token whose `tbh` names another binding than the RP's connection is
/// refused — here the user agent refers a different key to the OP than it uses with the RP.
#[tokio::test]
async fn tba_4_referred_id_other_than_the_rps_is_fatal() {
    for front in [OpFront::Native, OpFront::Proxy] {
        let f = federation(front).await;
        for flow in ["code", "implicit", "hybrid"] {
            let mut b = f.browser_with(|roots| TbTransport::new(roots).with_foreign_referrals());
            let (status, body) = sign_in(&f, &mut b, flow).await;
            assert_eq!(status, 401, "{front:?} {flow}: {body}");
            assert_eq!(body["error"], "token_binding");
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("names another Token Binding"),
                "{body}"
            );
        }
    }
}

/// TBA §4/§6 downgrade: an ID Token without `tbh` although the browser negotiated Token
/// Binding, under each policy. The `tbh` is missing because the browser did not refer its
/// binding (as if an attacker stripped it) or because the client is not registered for it.
#[tokio::test]
async fn tba_6_missing_tbh_under_each_downgrade_setting() {
    for (policy, accepted) in [
        (TbPolicy::Off, true),
        (TbPolicy::IfSupported, false),
        (TbPolicy::Required, false),
    ] {
        let f = Federation::start(FederationOptions {
            policy,
            ..FederationOptions::default()
        })
        .await;
        let mut b = f.browser_with(|roots| TbTransport::new(roots).without_referrals());
        let (status, body) = sign_in(&f, &mut b, "implicit").await;
        if accepted {
            assert_eq!(status, 200, "{policy:?}: {body}");
            assert!(body["tbh"].is_null());
        } else {
            assert_eq!(status, 401, "{policy:?}: {body}");
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("downgrade"),
                "{body}"
            );
        }
        let f = Federation::start(FederationOptions {
            policy,
            client_token_bound: false,
            ..FederationOptions::default()
        })
        .await;
        let (status, body) = sign_in(&f, &mut f.browser(), "code").await;
        assert_eq!(
            status == 200,
            accepted,
            "{policy:?}, unregistered client: {body}"
        );
    }
    // if-supported: an OP that does not advertise Token Bound ID Tokens is no downgrade;
    // required still refuses
    for (policy, accepted) in [(TbPolicy::IfSupported, true), (TbPolicy::Required, false)] {
        let f = Federation::start(FederationOptions {
            front: OpFront::Off,
            policy,
            ..FederationOptions::default()
        })
        .await;
        let (status, body) = sign_in(&f, &mut f.browser(), "hybrid").await;
        assert_eq!(
            status == 200,
            accepted,
            "{policy:?}, OP without Token Binding: {body}"
        );
    }
}

/// A stolen authorization response (the form_post body with the ID Token) replayed from
/// another browser is refused, even with the victim's state cookie.
#[tokio::test]
async fn a_stolen_id_token_is_refused_on_another_connection() {
    let f = federation(OpFront::Native).await;
    let mut victim = f.browser();
    // the victim's authorization response, intercepted before it reaches the RP
    let page = victim
        .browse_to_form_post(&f.login_url("implicit"), ALICE.0, ALICE.1)
        .await
        .unwrap();
    let state_cookie = victim.cookie("rp_state").unwrap().to_owned();
    let callback = form_action(&page.body).unwrap();
    let stolen = hidden_fields(&page.body);
    assert!(stolen.iter().any(|(k, _)| k == "id_token"));
    let mut attacker = f.browser();
    attacker.plant_cookie("rp_state", &state_cookie);
    let r = attacker.post(&callback, &stolen).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    let body = json(&r.body);
    assert_eq!(body["error"], "token_binding");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("another Token Binding"));
}

/// Cookies are bound too: the RP's session cookie and the OP's session cookie, copied into
/// another browser, do not work there.
#[tokio::test]
async fn copied_cookies_fail_on_another_connection() {
    let f = federation(OpFront::Native).await;
    let mut victim = f.browser();
    assert_eq!(sign_in(&f, &mut victim, "code").await.0, 200);
    let mut thief = f.browser();
    thief.plant_cookie("rp_session", victim.cookie("rp_session").unwrap());
    let me = thief.get(&format!("{}/me", f.rp)).await.unwrap();
    assert_eq!(me.status, 401, "{}", me.body);
    assert!(me.body.contains("bound to another Token Binding"));
    // the OP's session cookie: the victim is signed in at the OP; the thief with the copied
    // cookie is shown the login form
    thief.plant_cookie(
        "__Host-kb_session",
        victim.cookie("__Host-kb_session").unwrap(),
    );
    let login = thief.get(&f.login_url("code")).await.unwrap();
    let at_op = thief.get(login.location.as_deref().unwrap()).await.unwrap();
    assert!(at_op.body.contains("name=\"password\""), "{}", at_op.body);
    // while the victim's own browser goes straight through (no password asked)
    let login = victim.get(&f.login_url("code")).await.unwrap();
    let at_op = victim
        .get(login.location.as_deref().unwrap())
        .await
        .unwrap();
    assert!(!at_op.body.contains("name=\"password\""));
}

/// Key Binding ID1 §1.4 through the native listener: `bound_key` with `id_token` is refused.
#[tokio::test]
async fn kb_id1_bound_key_with_id_token_is_refused() {
    let f = federation(OpFront::Native).await;
    let mut b = f.browser();
    let url = format!(
        "{}/authorize?response_type=id_token&client_id=tb-web&redirect_uri={}&scope=openid%20bound_key&nonce=n&state=s",
        f.issuer,
        url_escape(&format!("{}/callback", f.rp))
    );
    let page = b.get(&url).await.unwrap();
    let location = page.location.unwrap_or_default();
    assert!(location.contains("error=invalid_request"), "{location}");
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
