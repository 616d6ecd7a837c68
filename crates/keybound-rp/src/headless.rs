//! Signing in through keybound's own login and consent forms without a browser — for
//! `keybound demo`, tests and scripted checks against a keybound OP. The forms need no
//! JavaScript, so following them is: GET the authorization URL, post the login form (with its
//! hidden fields and CSRF token, carrying the cookies), post "allow" on the consent page, and
//! read the redirect.

use std::collections::BTreeMap;

use crate::{HttpRequest, HttpResponse, RpError, Transport};

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `name`/`value` pairs of the hidden inputs of a keybound page.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    const OPEN: &str = "<input type=\"hidden\" name=\"";
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(OPEN) {
        rest = &rest[i + OPEN.len()..];
        let Some(end_name) = rest.find('"') else {
            break;
        };
        let name = &rest[..end_name];
        rest = &rest[end_name..];
        let Some(v) = rest.strip_prefix("\" value=\"") else {
            continue;
        };
        let Some(end_value) = v.find('"') else { break };
        out.push((unescape(name), unescape(&v[..end_value])));
        rest = &v[end_value..];
    }
    out
}

/// Cookies kept across sign-ins, so a second authorization in the same "browser" reuses the
/// OP session (and remembered consent) instead of signing in again.
#[derive(Debug, Default, Clone)]
pub struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, r: &HttpResponse) {
        for (k, v) in &r.headers {
            if k == "set-cookie" {
                if let Some((name, value)) = v.split(';').next().and_then(|kv| kv.split_once('=')) {
                    self.0.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Post a form with the jar's cookies, keep the cookies it sets; a 401 is a wrong password.
async fn submit(
    jar: &mut Jar,
    transport: &dyn Transport,
    action: &str,
    fields: &[(String, String)],
) -> Result<HttpResponse, RpError> {
    let body = serde_urlencoded::to_string(fields).map_err(|e| RpError::Callback(e.to_string()))?;
    let r = transport
        .send(HttpRequest::post_form(action, body.into_bytes()).header("Cookie", &jar.header()))
        .await?;
    jar.absorb(&r);
    if r.status == 401 {
        return Err(RpError::Callback("wrong username or password".into()));
    }
    Ok(r)
}

/// Sign in as `username` and consent; returns the redirect URL carrying the code (or error).
pub async fn sign_in(
    transport: &dyn Transport,
    authorization_url: &str,
    username: &str,
    password: &str,
) -> Result<String, RpError> {
    sign_in_to(transport, authorization_url, None, username, password).await
}

/// Like [`sign_in`], but follows redirects inside the OP (carrying cookies) until one leads to
/// `redirect_uri` — for OPs whose interaction pages redirect before and after the forms.
pub async fn sign_in_to(
    transport: &dyn Transport,
    authorization_url: &str,
    redirect_uri: Option<&str>,
    username: &str,
    password: &str,
) -> Result<String, RpError> {
    sign_in_with(
        &mut Jar::default(),
        transport,
        authorization_url,
        redirect_uri,
        username,
        password,
    )
    .await
}

/// Like [`sign_in_to`], with a cookie jar that persists between calls.
pub async fn sign_in_with(
    jar: &mut Jar,
    transport: &dyn Transport,
    authorization_url: &str,
    redirect_uri: Option<&str>,
    username: &str,
    password: &str,
) -> Result<String, RpError> {
    let base = url::Url::parse(authorization_url).map_err(|e| RpError::Callback(e.to_string()))?;
    let action = base
        .join("/authorize")
        .map_err(|e| RpError::Callback(e.to_string()))?
        .to_string();
    let r = transport
        .send(HttpRequest::get(authorization_url).header("Cookie", &jar.header()))
        .await?;
    jar.absorb(&r);
    let mut r = r;
    for _ in 0..12 {
        if matches!(r.status, 301 | 302 | 303 | 307) {
            let location = r
                .header("location")
                .map(str::to_owned)
                .ok_or_else(|| RpError::Callback("redirect without Location".into()))?;
            let next = base
                .join(&location)
                .map_err(|e| RpError::Callback(e.to_string()))?
                .to_string();
            match redirect_uri {
                Some(ru) if !next.starts_with(ru) => {
                    r = transport
                        .send(HttpRequest::get(&next).header("Cookie", &jar.header()))
                        .await?;
                    jar.absorb(&r);
                    continue;
                }
                _ => return Ok(next),
            }
        }
        let html = String::from_utf8_lossy(&r.body).into_owned();
        let mut fields = hidden_fields(&html);
        if html.contains("name=\"password\"") {
            fields.push(("username".into(), username.into()));
            fields.push(("password".into(), password.into()));
        } else if html.contains("name=\"decision\"") {
            fields.push(("decision".into(), "allow".into()));
        } else {
            return Err(RpError::Callback(format!(
                "the OP answered HTTP {} without a form or redirect",
                r.status
            )));
        }
        r = submit(jar, transport, &action, &fields).await?;
    }
    Err(RpError::Callback("too many interaction steps".into()))
}

/// The value of the first `<input … name="NAME" value="…">` on a keybound page.
fn input_value(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let i = html.find(&key)? + key.len();
    let end = html[i..].find('"')?;
    Some(unescape(&html[i..i + end]))
}

/// Approve a device authorization on keybound's `/device` pages, as the End-User would in a
/// browser: open `verification_uri_complete` (the code is pre-filled), submit it, sign in if
/// the jar holds no session, and approve. For tests, load runs and scripted checks.
pub async fn approve_device(
    jar: &mut Jar,
    transport: &dyn Transport,
    verification_uri_complete: &str,
    username: &str,
    password: &str,
) -> Result<(), RpError> {
    let base =
        url::Url::parse(verification_uri_complete).map_err(|e| RpError::Callback(e.to_string()))?;
    let action = base
        .join(base.path())
        .map_err(|e| RpError::Callback(e.to_string()))?
        .to_string();
    let mut r = transport
        .send(HttpRequest::get(verification_uri_complete).header("Cookie", &jar.header()))
        .await?;
    jar.absorb(&r);
    for _ in 0..6 {
        let html = String::from_utf8_lossy(&r.body).into_owned();
        let mut fields = hidden_fields(&html);
        let decided = html.contains("name=\"decision\"");
        if decided {
            fields.push(("decision".into(), "allow".into()));
        } else if html.contains("name=\"password\"") {
            fields.push(("username".into(), username.into()));
            fields.push(("password".into(), password.into()));
        } else if let Some(code) = input_value(&html, "user_code").filter(|_| r.status == 200) {
            if !fields.iter().any(|(k, _)| k == "user_code") {
                fields.push(("user_code".into(), code));
            }
        } else {
            return Err(RpError::Callback(format!(
                "the device page answered HTTP {} without the expected form",
                r.status
            )));
        }
        r = submit(jar, transport, &action, &fields).await?;
        if decided {
            return if r.status == 200 {
                Ok(())
            } else {
                Err(RpError::Callback(format!(
                    "approving the device code failed with HTTP {}",
                    r.status
                )))
            };
        }
    }
    Err(RpError::Callback("too many device page steps".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hidden_fields() {
        let html = r#"<input type="hidden" name="state" value="a&amp;b"><input type="hidden" name="csrf" value="x">"#;
        assert_eq!(
            hidden_fields(html),
            vec![("state".into(), "a&b".into()), ("csrf".into(), "x".into())]
        );
    }
}
