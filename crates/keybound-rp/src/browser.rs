//! The one headless form browser: it drives keybound's own no-JavaScript pages (login, consent,
//! device code entry) like a person with a browser would — GET a page, post its form with the
//! hidden fields (CSRF token included) and the cookies, follow redirects inside the OP — over
//! any [`Transport`]. It signs in for `keybound login --username` and `keybound demo` (so it
//! belongs to the RP library the binary is built on, not to the test kit), the load tool and
//! the tests; not a way to collect other people's passwords.

use std::collections::BTreeMap;

use crate::RpError;
pub use crate::{HttpRequest, HttpResponse, Transport};

/// What went wrong while browsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// The transport failed; its error is the source.
    #[error("the browser's request failed")]
    Transport(#[source] RpError),
    /// The OP answered something the browser cannot continue from.
    #[error("{0}")]
    Page(String),
    /// The login form came back with 401.
    #[error("wrong username or password")]
    WrongPassword,
}

impl From<RpError> for BrowserError {
    fn from(e: RpError) -> Self {
        BrowserError::Transport(e)
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `name`/`value` pairs of the hidden inputs of a keybound page's first form (a login page
/// also has a passkey form, posted by its script).
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    const OPEN: &str = "<input type=\"hidden\" name=\"";
    let mut out = Vec::new();
    let first_form = html
        .find("<form")
        .and_then(|i| html[i..].find("</form>").map(|end| &html[i..i + end]));
    let mut rest = first_form.unwrap_or(html);
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

/// What a person fills into one of the OP's pages: credentials into the login form, "allow"
/// into the consent form; `None` for any other page.
fn answer<'a>(
    page: &Page,
    username: &'a str,
    password: &'a str,
) -> Option<Vec<(&'a str, &'a str)>> {
    if page.body.contains("name=\"password\"") {
        Some(vec![("username", username), ("password", password)])
    } else if page.body.contains("name=\"decision\"") {
        Some(vec![("decision", "allow")])
    } else {
        None
    }
}

/// The `action` of the first `<form method="post" action="…">` on a page.
pub fn form_action(html: &str) -> Option<String> {
    const OPEN: &str = "<form method=\"post\" action=\"";
    let i = html.find(OPEN)? + OPEN.len();
    let end = html[i..].find('"')?;
    Some(unescape(&html[i..i + end]))
}

/// The value of the first `<input … name="NAME" value="…">` on a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let i = html.find(&key)? + key.len();
    let end = html[i..].find('"')?;
    Some(unescape(&html[i..i + end]))
}

/// A page as the browser saw it.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status
    pub status: u16,
    /// `Location`, for redirects
    pub location: Option<String>,
    /// the body as text
    pub body: String,
}

impl Page {
    fn from(r: &HttpResponse) -> Self {
        Page {
            status: r.status,
            location: r.header("location").map(str::to_owned),
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }
    }
}

/// A headless browser: a transport and a cookie jar kept across requests, so a second
/// authorization reuses the OP session (and remembered consent).
pub struct Browser<T: Transport> {
    transport: T,
    cookies: BTreeMap<String, String>,
    /// headers sent with every request (e.g. `X-Forwarded-For` behind a test proxy)
    extra_headers: Vec<(String, String)>,
}

/// A copy with the same cookies (another tab of the same browser profile).
impl<T: Transport + Clone> Clone for Browser<T> {
    fn clone(&self) -> Self {
        Browser {
            transport: self.transport.clone(),
            cookies: self.cookies.clone(),
            extra_headers: self.extra_headers.clone(),
        }
    }
}

impl<T: Transport> std::fmt::Debug for Browser<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("cookies", &self.cookies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Browser<T> {
    /// A browser with an empty cookie jar.
    pub fn new(transport: T) -> Self {
        Browser {
            transport,
            cookies: BTreeMap::new(),
            extra_headers: Vec::new(),
        }
    }

    /// Send `name: value` with every request from now on (a load test posing as a client
    /// behind a trusted proxy sends `X-Forwarded-For`).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The transport (the user agent underneath).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// Set a cookie as if another site had planted it for this host (a sibling subdomain or
    /// another port on the same host can do that): the attacker's move in CSRF tests.
    pub fn plant_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    /// Forget all cookies (a new browser profile).
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Send any request with this browser's cookies, keeping the cookies it sets.
    pub async fn request(&mut self, mut req: HttpRequest) -> Result<HttpResponse, BrowserError> {
        for (k, v) in &self.extra_headers {
            req = req.header(k, v);
        }
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("Cookie", &self.cookie_header())
        };
        let r = self.transport.send(req).await?;
        for (k, v) in &r.headers {
            if k == "set-cookie" {
                if let Some((name, value)) = v.split(';').next().and_then(|kv| kv.split_once('=')) {
                    self.cookies
                        .insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        Ok(r)
    }

    async fn send(&mut self, req: HttpRequest) -> Result<Page, BrowserError> {
        self.request(req).await.map(|r| Page::from(&r))
    }

    /// GET `url`.
    pub async fn get(&mut self, url: &str) -> Result<Page, BrowserError> {
        self.send(HttpRequest::get(url)).await
    }

    /// POST `fields` as a form to `action`.
    pub async fn post(
        &mut self,
        action: &str,
        fields: &[(String, String)],
    ) -> Result<Page, BrowserError> {
        let body =
            serde_urlencoded::to_string(fields).map_err(|e| BrowserError::Page(e.to_string()))?;
        self.send(HttpRequest::post_form(action, body.into_bytes()))
            .await
    }

    /// Submit the form of `page` to `action`: its hidden fields, then `extra` (which may
    /// repeat a hidden field's name to change it).
    pub async fn submit(
        &mut self,
        action: &str,
        page: &Page,
        extra: &[(&str, &str)],
    ) -> Result<Page, BrowserError> {
        let mut fields = hidden_fields(&page.body);
        for (k, v) in extra {
            fields.retain(|(f, _)| f != k);
            fields.push(((*k).to_owned(), (*v).to_owned()));
        }
        self.post(action, &fields).await
    }

    /// Sign in as `username` and consent; returns the redirect URL carrying the code (or an
    /// error). Redirects inside the OP are followed (carrying cookies) until one leads to
    /// `redirect_uri`, or, without one, the first redirect is the answer.
    pub async fn sign_in(
        &mut self,
        authorization_url: &str,
        redirect_uri: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<String, BrowserError> {
        let base =
            url::Url::parse(authorization_url).map_err(|e| BrowserError::Page(e.to_string()))?;
        let action = base
            .join("/authorize")
            .map_err(|e| BrowserError::Page(e.to_string()))?
            .to_string();
        let mut page = self.get(authorization_url).await?;
        for _ in 0..12 {
            if let Some(location) = page.location.clone().filter(|_| page.status / 100 == 3) {
                let next = base
                    .join(&location)
                    .map_err(|e| BrowserError::Page(e.to_string()))?
                    .to_string();
                match redirect_uri {
                    Some(ru) if !next.starts_with(ru) => {
                        page = self.get(&next).await?;
                        continue;
                    }
                    _ => return Ok(next),
                }
            }
            let Some(extra) = answer(&page, username, password) else {
                return Err(BrowserError::Page(format!(
                    "the OP answered HTTP {} without a form or redirect",
                    page.status
                )));
            };
            page = self.submit(&action, &page, &extra).await?;
            if page.status == 401 {
                return Err(BrowserError::WrongPassword);
            }
        }
        Err(BrowserError::Page("too many interaction steps".into()))
    }

    /// Browse from `start` like a person at a web RP: follow redirects across sites, sign in
    /// and consent on the OP's forms, submit `form_post` pages (what their script does), and
    /// for a redirect with a fragment, load the page and post the fragment's parameters to its
    /// form (what an RP's fragment page script does). Returns the first page that asks for
    /// nothing more (the RP's answer).
    pub async fn browse(
        &mut self,
        start: &str,
        username: &str,
        password: &str,
    ) -> Result<Page, BrowserError> {
        self.browse_steps(start, username, password, false).await
    }

    /// [`Browser::browse`], but stop at the OP's `form_post` page without posting it (what
    /// an attacker who intercepts the authorization response would hold).
    pub async fn browse_to_form_post(
        &mut self,
        start: &str,
        username: &str,
        password: &str,
    ) -> Result<Page, BrowserError> {
        self.browse_steps(start, username, password, true).await
    }

    async fn browse_steps(
        &mut self,
        start: &str,
        username: &str,
        password: &str,
        stop_at_form_post: bool,
    ) -> Result<Page, BrowserError> {
        let join = |base: &str, href: &str| {
            url::Url::parse(base)
                .and_then(|b| b.join(href))
                .map_err(|e| BrowserError::Page(e.to_string()))
        };
        let mut current = start.to_owned();
        let mut page = self.get(start).await?;
        for _ in 0..16 {
            if let Some(location) = page.location.clone().filter(|_| page.status / 100 == 3) {
                let mut next = join(&current, &location)?;
                let fragment = next.fragment().map(str::to_owned);
                next.set_fragment(None);
                current = next.to_string();
                page = self.get(&current).await?;
                if let Some(fragment) = fragment.filter(|_| page.status == 200) {
                    let action = form_action(&page.body).ok_or_else(|| {
                        BrowserError::Page("a fragment response but no page to post it".into())
                    })?;
                    let fields: Vec<(String, String)> =
                        url::form_urlencoded::parse(fragment.as_bytes())
                            .into_owned()
                            .collect();
                    current = join(&current, &action)?.to_string();
                    page = self.post(&current, &fields).await?;
                }
                continue;
            }
            let extra = match answer(&page, username, password) {
                Some(extra) => extra,
                None if page.status == 200 && page.body.contains("<noscript><p>Continue") => {
                    if stop_at_form_post {
                        return Ok(page);
                    }
                    Vec::new() // a form_post page
                }
                None => return Ok(page),
            };
            let action = form_action(&page.body)
                .ok_or_else(|| BrowserError::Page("a form without an action".into()))?;
            current = join(&current, &action)?.to_string();
            page = self.submit(&current, &page, &extra).await?;
            if page.status == 401 && extra.first().is_some_and(|(k, _)| *k == "username") {
                return Err(BrowserError::WrongPassword);
            }
        }
        Err(BrowserError::Page("too many steps".into()))
    }

    /// Approve a device authorization on keybound's `/device` pages: open
    /// `verification_uri_complete` (the code is pre-filled), submit it, sign in if the jar
    /// holds no session, and approve.
    pub async fn approve_device(
        &mut self,
        verification_uri_complete: &str,
        username: &str,
        password: &str,
    ) -> Result<(), BrowserError> {
        let base = url::Url::parse(verification_uri_complete)
            .map_err(|e| BrowserError::Page(e.to_string()))?;
        let action = base
            .join(base.path())
            .map_err(|e| BrowserError::Page(e.to_string()))?
            .to_string();
        let mut page = self.get(verification_uri_complete).await?;
        for _ in 0..6 {
            let decided = page.body.contains("name=\"decision\"");
            let code;
            let extra: Vec<(&str, &str)> = if decided {
                vec![("decision", "allow")]
            } else if page.body.contains("name=\"password\"") {
                vec![("username", username), ("password", password)]
            } else if let Some(c) =
                input_value(&page.body, "user_code").filter(|_| page.status == 200)
            {
                code = c;
                vec![("user_code", code.as_str())]
            } else {
                return Err(BrowserError::Page(format!(
                    "the device page answered HTTP {} without the expected form",
                    page.status
                )));
            };
            page = self.submit(&action, &page, &extra).await?;
            if page.status == 401 {
                return Err(BrowserError::WrongPassword);
            }
            if decided {
                return if page.status == 200 {
                    Ok(())
                } else {
                    Err(BrowserError::Page(format!(
                        "approving the device code failed with HTTP {}",
                        page.status
                    )))
                };
            }
        }
        Err(BrowserError::Page("too many device page steps".into()))
    }
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
