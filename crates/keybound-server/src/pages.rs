//! The OP's HTML pages: login, consent, account, device, logout, error. Plain forms; the only
//! scripts are the `form_post` page's and the passkey button's ([`PASSKEY_SCRIPT`]), each
//! allowed by its hash in the page's CSP. Every value that reaches the page is HTML-escaped
//! here, the catalogue's words included. The words come from the End-User's language and the
//! look from the operator's theme ([`crate::theme`]); the markup — which fields, warnings and
//! scripts a page has — is the same in every theme and language.

use keybound_op::ConsentPrompt;

use crate::theme::{page_context, PageContext, LOGO_PATH, STYLESHEET_PATH};

/// Escape text for HTML element content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `key`'s words, escaped.
fn t(c: &PageContext, key: &str) -> String {
    esc(c.words.t(key))
}

/// `key`'s words, escaped, with `{name}` filled in by HTML the caller built (escaped values).
fn tf(c: &PageContext, key: &str, values: &[(&str, &str)]) -> String {
    let mut out = esc(c.words.t(key));
    for (name, html) in values {
        out = out.replace(&format!("{{{name}}}"), html);
    }
    out
}

/// The page around `body`: the End-User's language, the theme's colours (light and dark), its
/// logo and stylesheet, a header and one `main` landmark.
fn layout(title: &str, body: &str) -> String {
    let c = page_context();
    let theme = &c.theme;
    let product = esc(&theme.product_name);
    let logo = if theme.has_logo() {
        format!("<img id=\"logo\" src=\"{LOGO_PATH}\" alt=\"\" height=\"40\">")
    } else {
        String::new()
    };
    let stylesheet = if theme.has_stylesheet() {
        format!("<link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t} · {product}</title>\
<style>{vars}\
body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;background:var(--kb-bg);color:var(--kb-text)}}\
header{{display:flex;align-items:center;gap:.6rem;margin-bottom:1.5rem;font-weight:600}}\
h1{{font-size:1.4rem}}h2{{font-size:1.15rem}}label{{display:block;margin:.8rem 0 .2rem}}\
input[type=text],input[type=password]{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box;color:var(--kb-text);background:var(--kb-bg);border:1px solid var(--kb-text);border-radius:4px}}\
button{{margin:1rem .5rem 0 0;padding:.5rem 1.2rem;font-size:1rem;border-radius:4px;border:2px solid var(--kb-primary);background:var(--kb-primary);color:var(--kb-on-primary);cursor:pointer}}\
button.secondary{{background:var(--kb-bg);color:var(--kb-text);border-color:var(--kb-text)}}\
button:disabled{{opacity:.6}}a{{color:var(--kb-primary)}}\
.error{{color:#8a1111;background:#fdecec;padding:.6rem;border-radius:4px}}.note{{color:inherit}}\
li form{{display:inline-block;margin-right:.5rem}}\
.key{{font-family:monospace;word-break:break-all;padding:.4rem;border:1px solid var(--kb-text);border-radius:4px}}ul{{padding-left:1.2rem}}\
@media (prefers-color-scheme: dark){{.error{{color:#ffc9c3;background:#4a1212}}}}</style>{stylesheet}</head>\
<body>\n<header>{logo}<span id=\"product\">{product}</span></header>\n<main>\n{body}\n</main>\n</body></html>\n",
        lang = esc(c.words.lang()),
        t = esc(title),
        vars = theme.css_variables(),
    )
}

fn hidden(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the passkey button of a page does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyStep {
    /// sign in with any passkey of this site (discoverable, no username)
    SignIn,
    /// confirm the signed-in End-User with one of their passkeys (after their password)
    SecondFactor,
}

/// The login form: what it posts, and what it offers.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// where the form posts (the authorization endpoint, the device page, the account page)
    pub action: &'a str,
    /// hidden fields carried (the authorization request)
    pub fields: &'a [(String, String)],
    /// the form's CSRF token
    pub csrf: &'a str,
    /// the app the End-User signs in to (`None`: their account page)
    pub client_name: Option<&'a str>,
    /// `login_hint`
    pub login_hint: Option<&'a str>,
    /// a note (wrong password, …)
    pub error: Option<&'a str>,
    /// offer the username and password form
    pub password: bool,
    /// offer a passkey (`None`: this OP has no passkeys, or the page cannot use them)
    pub passkey: Option<PasskeyStep>,
    /// why the End-User must sign in (again, more strongly)
    pub reason: Option<&'a str>,
}

/// The login form; posts back to `action` with the hidden fields. Its passkey button runs
/// [`PASSKEY_SCRIPT`] (the page must be sent with [`crate::response::html_with_script`]).
pub fn login(l: &Login<'_>) -> String {
    let c = page_context();
    let err = l.error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let to = l.client_name.map_or(String::new(), |app| {
        format!(
            "<p>{}</p>\n",
            tf(
                &c,
                "login.to_continue",
                &[("app", &format!("<strong>{}</strong>", esc(app)))]
            )
        )
    });
    let reason = l.reason.map_or(String::new(), |r| {
        format!("<p role=\"status\">{}</p>\n", esc(r))
    });
    let password = if l.password {
        format!(
            "<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<label for=\"username\">{user_label}</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{hint}\" autocomplete=\"username webauthn\" required autofocus>\n\
<label for=\"password\">{pw_label}</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
<button type=\"submit\">{submit}</button>\n</form>",
            action = esc(l.action),
            hidden = hidden(l.fields),
            csrf = esc(l.csrf),
            hint = esc(l.login_hint.unwrap_or("")),
            user_label = t(&c, "login.username"),
            pw_label = t(&c, "login.password"),
            submit = t(&c, "login.submit"),
        )
    } else {
        String::new()
    };
    let passkey = l.passkey.map_or(String::new(), |step| {
        let or = if l.password {
            format!("<p>{}</p>\n", t(&c, "login.or"))
        } else {
            String::new()
        };
        format!("{or}{}", passkey_form(&c, l.action, l.fields, l.csrf, step))
    });
    let title = c.words.t("login.title");
    layout(
        title,
        &format!(
            "<h1>{}</h1>\n{to}{reason}{err}\n{password}\n{passkey}",
            esc(title)
        ),
    )
}

/// The form of the passkey button: the script fills in the ceremony's state and the
/// credential and posts it to `action` (`kb_action=passkey`).
fn passkey_form(
    c: &PageContext,
    action: &str,
    fields: &[(String, String)],
    csrf: &str,
    step: PasskeyStep,
) -> String {
    let (label, mode) = match step {
        PasskeyStep::SignIn => (t(c, "passkey.sign_in"), "sign_in"),
        PasskeyStep::SecondFactor => (t(c, "passkey.confirm"), "second_factor"),
    };
    format!(
        "<form method=\"post\" action=\"{action}\" id=\"passkey-form\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"passkey\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_passkey_state\" value=\"\">\
<input type=\"hidden\" name=\"kb_passkey_credential\" value=\"\">\n\
<button type=\"button\" id=\"passkey-sign-in\" data-ceremony=\"get\" data-mode=\"{mode}\" \
data-options=\"{options}\" {words}>{label}</button>\n</form>\n\
<p id=\"passkey-message\" class=\"note\" role=\"status\"></p>\n<script>{script}</script>",
        action = esc(action),
        hidden = hidden(fields),
        csrf = esc(csrf),
        options = esc(keybound_op::paths::PASSKEY_OPTIONS),
        words = passkey_words(c),
        script = PASSKEY_SCRIPT,
    )
}

/// The passkey script's words, as data attributes of its button (the script is the same in
/// every language: its hash is in the CSP).
fn passkey_words(c: &PageContext) -> String {
    format!(
        "data-unsupported=\"{}\" data-closed=\"{}\" data-failed=\"{}\"",
        t(c, "passkey.unsupported"),
        t(c, "passkey.closed"),
        t(c, "passkey.failed")
    )
}

/// The passkey pages' one script: the button `#passkey-sign-in` (or `#add-passkey`) asks the
/// OP for the ceremony's options, runs `navigator.credentials.get` (or `.create`), and posts
/// the credential as JSON with the sealed state in its form (`#passkey-form`). Allowed by its
/// hash in the page's CSP, like the `form_post` page's script.
pub const PASSKEY_SCRIPT: &str = r"(()=>{const b=document.getElementById('passkey-sign-in')||document.getElementById('add-passkey');if(!b)return;const m=document.getElementById('passkey-message');const P=window.PublicKeyCredential;if(!P||!P.parseRequestOptionsFromJSON){b.disabled=true;m.textContent=b.dataset.unsupported;return;}b.addEventListener('click',async()=>{const f=document.getElementById('passkey-form');const create=b.dataset.ceremony==='create';if(create&&!f.reportValidity())return;b.disabled=true;m.textContent='';try{const r=await fetch(b.dataset.options,{method:'POST',credentials:'same-origin',headers:{'content-type':'application/x-www-form-urlencoded'},body:new URLSearchParams({csrf:f.elements.csrf.value,ceremony:create?'register':'sign_in',mode:b.dataset.mode||''})});const j=await r.json();if(!r.ok)throw new Error(j.error_description||b.dataset.failed);const c=create?await navigator.credentials.create({publicKey:P.parseCreationOptionsFromJSON(j.options)}):await navigator.credentials.get({publicKey:P.parseRequestOptionsFromJSON(j.options)});f.elements.kb_passkey_state.value=j.state;f.elements.kb_passkey_credential.value=JSON.stringify(c.toJSON());f.submit();}catch(e){m.textContent=e&&e.name==='NotAllowedError'?b.dataset.closed:String(e&&e.message||e);b.disabled=false;}});})();";

/// The one script of the page that waits for a DBSC registration: it asks `data-status` every
/// 250 ms whether the session is bound, and after 10 s at most posts its form (which carries
/// `kb_dbsc=waited`, so an unbound session is then refused, not asked again).
pub const DBSC_WAIT_SCRIPT: &str = "(()=>{const f=document.getElementById('dbsc-form');let n=0;const go=()=>{clearInterval(t);f.submit();};const t=setInterval(async()=>{n+=1;try{const r=await fetch(f.dataset.status,{credentials:'same-origin',cache:'no-store'});if((await r.json()).bound||n>=40)go();}catch(e){if(n>=40)go();}},250);})();";

/// The page shown while the browser binds the session to its key (DBSC required): it posts
/// the authorization request back once the binding is there (or after 10 s), and without
/// scripts on a click.
pub fn dbsc_wait(action: &str, fields: &[(String, String)], status: &str) -> String {
    let c = page_context();
    let title = c.words.t("dbsc.title");
    layout(
        title,
        &format!(
            "<h1>{h}</h1>\n<p role=\"status\">{binding}</p>\n\
<form method=\"post\" action=\"{action}\" id=\"dbsc-form\" data-status=\"{status}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_dbsc\" value=\"waited\">\n\
<noscript><button type=\"submit\">{cont}</button></noscript>\n</form>\n<script>{script}</script>",
            h = esc(title),
            binding = t(&c, "dbsc.binding"),
            cont = t(&c, "common.continue"),
            action = esc(action),
            status = esc(status),
            hidden = hidden(fields),
            script = DBSC_WAIT_SCRIPT,
        ),
    )
}

/// One of the End-User's passkeys as the account page lists it.
#[derive(Debug, Clone)]
pub struct PasskeyItem {
    /// credential id (base64url)
    pub id: String,
    /// the End-User's name for it
    pub name: String,
    /// when added, for people (UTC date)
    pub created: String,
    /// when last used, for people
    pub last_used: Option<String>,
}

/// An app the End-User allowed, as the account page lists it.
#[derive(Debug, Clone)]
pub struct AppItem {
    /// its client id
    pub client_id: String,
    /// its name
    pub name: String,
    /// what it was allowed
    pub scopes: Vec<String>,
}

/// What the account page lets the End-User do with their passkeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manage<'a> {
    /// add, rename, remove
    Yes,
    /// confirm with a passkey first (a password session of an account that has one)
    ConfirmFirst,
    /// rename and remove only: this OP cannot offer passkeys (why)
    NoNewPasskeys(&'a str),
}

/// The account page: the End-User's passkeys (`#passkeys`, one `li` each) and, when they may
/// change them, rename and remove forms and the add button (`#add-passkey`).
pub struct Account<'a> {
    /// where its forms post
    pub action: &'a str,
    /// the forms' CSRF token
    pub csrf: &'a str,
    /// who is signed in
    pub username: &'a str,
    /// how (the session's acr)
    pub acr: &'a str,
    /// their passkeys
    pub passkeys: &'a [PasskeyItem],
    /// the apps they allowed
    pub apps: &'a [AppItem],
    /// what they may do
    pub manage: Manage<'a>,
    /// what was just done
    pub note: Option<&'a str>,
    /// what went wrong
    pub error: Option<&'a str>,
}

/// The account page.
pub fn account(a: &Account<'_>) -> String {
    let c = page_context();
    let note = a.note.map_or(String::new(), |n| {
        format!("<p class=\"note\" role=\"status\">{}</p>\n", esc(n))
    });
    let err = a.error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>\n", esc(e))
    });
    let changes = a.manage != Manage::ConfirmFirst;
    let items = a
        .passkeys
        .iter()
        .map(|p| {
            let name = esc(&p.name);
            let used = p.last_used.as_deref().map_or_else(
                || t(&c, "account.never_used"),
                |u| tf(&c, "account.last_used", &[("date", &esc(u))]),
            );
            let forms = if changes {
                format!(
                    "\n<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_action\" value=\"rename\"><input type=\"hidden\" name=\"credential_id\" value=\"{id}\">\
<label>{new_name} <input type=\"text\" name=\"name\" maxlength=\"64\" required value=\"{name}\"></label>\
<button type=\"submit\">{rename}</button></form>\n\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_action\" value=\"remove\"><input type=\"hidden\" name=\"credential_id\" value=\"{id}\">\
<button type=\"submit\" class=\"secondary\">{remove}</button></form>",
                    id = esc(&p.id),
                    action = esc(a.action),
                    csrf = esc(a.csrf),
                    new_name = tf(&c, "account.new_name", &[("name", &name)]),
                    rename = t(&c, "account.rename"),
                    remove = tf(&c, "account.remove", &[("name", &name)]),
                )
            } else {
                String::new()
            };
            format!(
                "<li data-credential-id=\"{id}\"><strong class=\"passkey-name\">{name}</strong> \
<small>{added}, {used}</small>{forms}</li>",
                id = esc(&p.id),
                added = tf(&c, "account.added", &[("date", &esc(&p.created))]),
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let list = if a.passkeys.is_empty() {
        format!(
            "<p id=\"passkeys-none\">{}</p>\n<ul id=\"passkeys\"></ul>",
            t(&c, "account.none")
        )
    } else {
        format!("<ul id=\"passkeys\">\n{items}\n</ul>")
    };
    let add = match a.manage {
        Manage::Yes => format!(
            "<form method=\"post\" action=\"{action}\" id=\"passkey-form\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"kb_action\" value=\"add\">\
<input type=\"hidden\" name=\"kb_passkey_state\" value=\"\"><input type=\"hidden\" name=\"kb_passkey_credential\" value=\"\">\n\
<label for=\"passkey-name\">{name_label}</label>\
<input type=\"text\" id=\"passkey-name\" name=\"name\" maxlength=\"64\" required value=\"{default_name}\">\n\
<button type=\"button\" id=\"add-passkey\" data-ceremony=\"create\" data-options=\"{options}\" {words}>{add}</button>\n</form>\n\
<p id=\"passkey-message\" class=\"note\" role=\"status\"></p>\n<script>{script}</script>",
            action = esc(a.action),
            csrf = esc(a.csrf),
            options = esc(keybound_op::paths::PASSKEY_OPTIONS),
            name_label = t(&c, "account.name_for_new"),
            default_name = t(&c, "account.default_name"),
            add = t(&c, "account.add"),
            words = passkey_words(&c),
            script = PASSKEY_SCRIPT,
        ),
        Manage::ConfirmFirst => format!(
            "<p class=\"note\">{}</p>\n{}",
            t(&c, "account.confirm_first"),
            passkey_form(&c, a.action, &[], a.csrf, PasskeyStep::SecondFactor)
        ),
        Manage::NoNewPasskeys(why) => format!("<p class=\"note\">{}</p>", esc(why)),
    };
    let apps = if a.apps.is_empty() {
        format!("<p id=\"apps-none\">{}</p>", t(&c, "account.apps_none"))
    } else {
        let items = a
            .apps
            .iter()
            .map(|app| {
                let name = esc(&app.name);
                let scopes = app
                    .scopes
                    .iter()
                    .map(|s| esc(s))
                    .collect::<Vec<_>>()
                    .join(" ");
                format!(
                    "<li data-client-id=\"{id}\"><strong>{name}</strong> <small>({scopes})</small>\n\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_action\" value=\"revoke_consent\"><input type=\"hidden\" name=\"client_id\" value=\"{id}\">\
<button type=\"submit\" class=\"secondary\">{revoke}</button></form></li>",
                    id = esc(&app.client_id),
                    action = esc(a.action),
                    csrf = esc(a.csrf),
                    revoke = tf(&c, "account.revoke", &[("name", &name)]),
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        format!("<ul id=\"apps\">\n{items}\n</ul>")
    };
    let title = c.words.t("account.title");
    layout(
        title,
        &format!(
            "<h1>{h}</h1>\n<p>{signed_in_as} <strong id=\"username\">{user}</strong> \
<small id=\"acr\">({acr})</small></p>\n{note}{err}<h2>{passkeys}</h2>\n{list}\n{add}\n\
<h2>{apps_heading}</h2>\n{apps}",
            h = esc(title),
            signed_in_as = t(&c, "account.signed_in_as"),
            passkeys = t(&c, "account.passkeys"),
            apps_heading = t(&c, "account.apps"),
            user = esc(a.username),
            acr = esc(a.acr),
        ),
    )
}

/// Whether a page has the passkey script (its CSP must allow it).
pub fn has_passkey_script(html: &str) -> bool {
    html.contains(PASSKEY_SCRIPT)
}

/// A scope in words, with its name beside it.
fn scope_item(c: &PageContext, scope: &str) -> String {
    let key = match scope {
        "openid" | "profile" | "email" | "offline_access" | "bound_key" => format!("scope.{scope}"),
        _ => "scope.other".to_owned(),
    };
    format!("<li>{} <small>({})</small></li>", t(c, &key), esc(scope))
}

/// The consent form.
pub fn consent(action: &str, fields: &[(String, String)], csrf: &str, p: &ConsentPrompt) -> String {
    let c = page_context();
    let scopes = p
        .scopes
        .iter()
        .map(|s| scope_item(&c, s))
        .collect::<String>();
    let key = p.bound_jkt.as_deref().map_or(String::new(), |jkt| {
        format!(
            "<p>{}</p><p class=\"key\" id=\"key-thumbprint\">{}</p><p>{}</p>",
            t(&c, "consent.bound"),
            esc(jkt),
            t(&c, "consent.only_if"),
        )
    });
    layout(
        c.words.t("consent.title"),
        &format!(
            "<h1>{heading}</h1>\n<p>{asks}</p><ul>{scopes}</ul>\n{key}\n\
<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"consent\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<button type=\"submit\" name=\"decision\" value=\"allow\">{allow}</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">{deny}</button>\n</form>",
            heading = tf(&c, "consent.heading", &[("app", &format!("<strong>{}</strong>", esc(&p.client_name)))]),
            asks = t(&c, "consent.asks"),
            allow = t(&c, "consent.allow"),
            deny = t(&c, "consent.deny"),
            action = esc(action),
            hidden = hidden(fields),
            csrf = esc(csrf),
        ),
    )
}

/// The device verification page: type (or confirm) the code shown on the device.
pub fn device_entry(action: &str, csrf: &str, prefill: &str, error: Option<&str>) -> String {
    let c = page_context();
    let err = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let title = c.words.t("device.title");
    layout(
        title,
        &format!(
            "<h1>{h}</h1>\n<p>{enter}</p>\n{err}\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"kb_action\" value=\"code\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<label for=\"user_code\">{code}</label><input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"{prefill}\" autocomplete=\"off\" autocapitalize=\"characters\" required autofocus>\n\
<button type=\"submit\">{cont}</button>\n</form>",
            h = esc(title),
            enter = t(&c, "device.enter"),
            code = t(&c, "device.code"),
            cont = t(&c, "common.continue"),
            action = esc(action),
            csrf = esc(csrf),
            prefill = esc(prefill),
        ),
    )
}

/// The device consent page: which app, which scopes, which key, and the phishing warning.
pub fn device_consent(
    action: &str,
    csrf: &str,
    user_code: &str,
    client_name: &str,
    scopes: &[String],
    jkt: Option<&str>,
) -> String {
    let c = page_context();
    let scopes = scopes.iter().map(|s| scope_item(&c, s)).collect::<String>();
    let key = jkt.map_or(String::new(), |j| {
        format!(
            "<p>{}</p><p class=\"key\" id=\"key-thumbprint\">{}</p>",
            t(&c, "device.bound"),
            esc(j)
        )
    });
    layout(
        c.words.t("device.consent_title"),
        &format!(
            "<h1>{heading}</h1>\n\
<p class=\"error\" role=\"note\">{warning}</p>\n\
<p>{asks}</p><ul>{scopes}</ul>\n{key}\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"kb_action\" value=\"consent\">\
<input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<button type=\"submit\" name=\"decision\" value=\"allow\">{approve}</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">{deny}</button>\n</form>",
            heading = tf(&c, "device.heading", &[("app", &format!("<strong>{}</strong>", esc(client_name)))]),
            warning = tf(&c, "device.warning", &[("code", &format!("<strong>{}</strong>", esc(user_code)))]),
            asks = t(&c, "device.asks"),
            approve = t(&c, "device.approve"),
            deny = t(&c, "device.deny"),
            code = esc(user_code),
            action = esc(action),
            csrf = esc(csrf),
        ),
    )
}

/// After the decision.
pub fn device_done(approved: bool) -> String {
    let c = page_context();
    let (title, message) = if approved {
        ("device.connected_title", "device.connected")
    } else {
        ("device.denied_title", "device.denied")
    };
    layout(
        c.words.t(title),
        &format!(
            "<h1>{}</h1>\n<p id=\"done\">{}</p>",
            t(&c, title),
            t(&c, message)
        ),
    )
}

/// OAuth 2.0 Form Post Response Mode: a form of `params` the user agent posts to `action` at
/// once (`script`, allowed by its hash in the page's CSP), or on a click without scripts.
pub fn form_post(action: &str, params: &[(String, String)], script: &str) -> String {
    let c = page_context();
    layout(
        c.words.t("form_post.title"),
        &format!(
            "<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<noscript><p>{text}</p><button type=\"submit\">{cont}</button></noscript>\n\
</form>\n<script>{script}</script>",
            action = esc(action),
            hidden = hidden(params),
            text = t(&c, "form_post.continue"),
            cont = t(&c, "common.continue"),
        ),
    )
}

/// RP-Initiated Logout §2: ask the End-User whether to sign out of the OP.
pub fn logout_confirm(action: &str, fields: &[(String, String)], csrf: &str) -> String {
    let c = page_context();
    let product = esc(&c.theme.product_name);
    layout(
        c.words.t("logout.title"),
        &format!(
            "<h1>{heading}</h1>\n<p>{explain}</p>\n\
<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"logout\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<button type=\"submit\" name=\"decision\" value=\"yes\">{yes}</button>\
<button type=\"submit\" name=\"decision\" value=\"no\" class=\"secondary\">{no}</button>\n</form>",
            heading = tf(&c, "logout.heading", &[("product", &product)]),
            explain = tf(&c, "logout.explain", &[("product", &product)]),
            yes = t(&c, "logout.yes"),
            no = t(&c, "logout.no"),
            action = esc(action),
            hidden = hidden(fields),
            csrf = esc(csrf),
        ),
    )
}

/// After a logout without a redirect back to an app: signed out, or still signed in (the
/// End-User declined).
pub fn signed_out(stayed: bool) -> String {
    let c = page_context();
    let product = esc(&c.theme.product_name);
    let (title, message) = if stayed {
        ("still_signed_in.title", "still_signed_in.message")
    } else {
        ("signed_out.title", "signed_out.message")
    };
    layout(
        c.words.t(title),
        &format!(
            "<h1>{}</h1>\n<p role=\"status\">{}</p>",
            t(&c, title),
            tf(&c, message, &[("product", &product)])
        ),
    )
}

/// An error page (never a redirect to an unverified URI): what happened, what to do, and the
/// request's reference for the app's support.
pub fn error(message: &str) -> String {
    let c = page_context();
    let reference = crate::events::REQUEST
        .try_with(|r| r.request_id.clone())
        .unwrap_or_default();
    let reference = if reference.is_empty() {
        String::new()
    } else {
        format!(" <strong id=\"reference\">{}</strong>", esc(&reference))
    };
    let title = c.words.t("error.title");
    layout(
        title,
        &format!(
            "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n<p id=\"what-to-do\">{}{reference}</p>",
            esc(title),
            esc(message),
            t(&c, "error.what_to_do"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(
            esc("<a href=\"x\" onclick='y'>&</a>"),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        let page = login(&Login {
            action: "/authorize",
            fields: &[("state".into(), "\"><script>".into())],
            csrf: "c",
            client_name: Some("<b>App</b>"),
            login_hint: None,
            error: None,
            password: true,
            passkey: None,
            reason: None,
        });
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>App</b>"));
    }
}
