//! The OP's HTML pages: login, consent, account, error. Plain forms; the only scripts are the
//! `form_post` page's and the passkey button's ([`PASSKEY_SCRIPT`]), each allowed by its hash
//! in the page's CSP. Every value that reaches the page is HTML-escaped here.

use keybound_op::ConsentPrompt;

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

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t} · keybound</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}label{{display:block;margin:.8rem 0 .2rem}}input[type=text],input[type=password]\
{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}button{{margin:1rem .5rem 0 0;padding:.5rem 1.2rem;font-size:1rem}}\
.error{{color:#a00;background:#fee;padding:.6rem;border-radius:4px}}.note{{color:#333}}li form{{display:inline-block;margin-right:.5rem}}.key{{font-family:monospace;word-break:break-all;background:#f4f4f4;padding:.4rem}}\
ul{{padding-left:1.2rem}}</style></head><body>\n{body}\n</body></html>\n",
        t = esc(title)
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
    let err = l.error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let to = l.client_name.map_or(String::new(), |c| {
        format!("<p>to continue to <strong>{}</strong></p>\n", esc(c))
    });
    let reason = l.reason.map_or(String::new(), |r| {
        format!("<p role=\"status\">{}</p>\n", esc(r))
    });
    let password = if l.password {
        format!(
            "<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"login\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{hint}\" autocomplete=\"username webauthn\" required autofocus>\n\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
<button type=\"submit\">Sign in</button>\n</form>",
            action = esc(l.action),
            hidden = hidden(l.fields),
            csrf = esc(l.csrf),
            hint = esc(l.login_hint.unwrap_or("")),
        )
    } else {
        String::new()
    };
    let passkey = l.passkey.map_or(String::new(), |step| {
        let or = if l.password { "<p>or</p>\n" } else { "" };
        format!("{or}{}", passkey_form(l.action, l.fields, l.csrf, step))
    });
    layout(
        "Sign in",
        &format!("<h1>Sign in</h1>\n{to}{reason}{err}\n{password}\n{passkey}"),
    )
}

/// The form of the passkey button: the script fills in the ceremony's state and the
/// credential and posts it to `action` (`kb_action=passkey`).
fn passkey_form(
    action: &str,
    fields: &[(String, String)],
    csrf: &str,
    step: PasskeyStep,
) -> String {
    let (label, mode) = match step {
        PasskeyStep::SignIn => ("Sign in with a passkey", "sign_in"),
        PasskeyStep::SecondFactor => ("Confirm with your passkey", "second_factor"),
    };
    format!(
        "<form method=\"post\" action=\"{action}\" id=\"passkey-form\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"passkey\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_passkey_state\" value=\"\">\
<input type=\"hidden\" name=\"kb_passkey_credential\" value=\"\">\n\
<button type=\"button\" id=\"passkey-sign-in\" data-ceremony=\"get\" data-mode=\"{mode}\" \
data-options=\"{options}\">{label}</button>\n</form>\n\
<p id=\"passkey-message\" class=\"note\" role=\"status\"></p>\n<script>{script}</script>",
        action = esc(action),
        hidden = hidden(fields),
        csrf = esc(csrf),
        options = esc(keybound_op::paths::PASSKEY_OPTIONS),
        script = PASSKEY_SCRIPT,
    )
}

/// The passkey pages' one script: the button `#passkey-sign-in` (or `#add-passkey`) asks the
/// OP for the ceremony's options, runs `navigator.credentials.get` (or `.create`), and posts
/// the credential as JSON with the sealed state in its form (`#passkey-form`). Allowed by its
/// hash in the page's CSP, like the `form_post` page's script.
pub const PASSKEY_SCRIPT: &str = r"(()=>{const b=document.getElementById('passkey-sign-in')||document.getElementById('add-passkey');if(!b)return;const m=document.getElementById('passkey-message');const P=window.PublicKeyCredential;if(!P||!P.parseRequestOptionsFromJSON){b.disabled=true;m.textContent='This browser cannot use passkeys here.';return;}b.addEventListener('click',async()=>{const f=document.getElementById('passkey-form');const create=b.dataset.ceremony==='create';if(create&&!f.reportValidity())return;b.disabled=true;m.textContent='';try{const r=await fetch(b.dataset.options,{method:'POST',credentials:'same-origin',headers:{'content-type':'application/x-www-form-urlencoded'},body:new URLSearchParams({csrf:f.elements.csrf.value,ceremony:create?'register':'sign_in',mode:b.dataset.mode||''})});const j=await r.json();if(!r.ok)throw new Error(j.error_description||'The passkey could not be started.');const c=create?await navigator.credentials.create({publicKey:P.parseCreationOptionsFromJSON(j.options)}):await navigator.credentials.get({publicKey:P.parseRequestOptionsFromJSON(j.options)});f.elements.kb_passkey_state.value=j.state;f.elements.kb_passkey_credential.value=JSON.stringify(c.toJSON());f.submit();}catch(e){m.textContent=e&&e.name==='NotAllowedError'?'The passkey prompt was closed or timed out; try again.':String(e&&e.message||e);b.disabled=false;}});})();";

/// The one script of the page that waits for a DBSC registration: it asks `data-status` every
/// 250 ms whether the session is bound, and after 10 s at most posts its form (which carries
/// `kb_dbsc=waited`, so an unbound session is then refused, not asked again).
pub const DBSC_WAIT_SCRIPT: &str = "(()=>{const f=document.getElementById('dbsc-form');let n=0;const go=()=>{clearInterval(t);f.submit();};const t=setInterval(async()=>{n+=1;try{const r=await fetch(f.dataset.status,{credentials:'same-origin',cache:'no-store'});if((await r.json()).bound||n>=40)go();}catch(e){if(n>=40)go();}},250);})();";

/// The page shown while the browser binds the session to its key (DBSC required): it posts
/// the authorization request back once the binding is there (or after 10 s), and without
/// scripts on a click.
pub fn dbsc_wait(action: &str, fields: &[(String, String)], status: &str) -> String {
    layout(
        "Securing your sign-in",
        &format!(
            "<h1>Securing your sign-in</h1>\n<p role=\"status\">Binding this sign-in to this device…</p>\n\
<form method=\"post\" action=\"{action}\" id=\"dbsc-form\" data-status=\"{status}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_dbsc\" value=\"waited\">\n\
<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n<script>{script}</script>",
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
    /// what they may do
    pub manage: Manage<'a>,
    /// what was just done
    pub note: Option<&'a str>,
    /// what went wrong
    pub error: Option<&'a str>,
}

/// The account page.
pub fn account(a: &Account<'_>) -> String {
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
            let used = p
                .last_used
                .as_deref()
                .map_or("never used".to_owned(), |u| format!("last used {}", esc(u)));
            let forms = if changes {
                format!(
                    "\n<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_action\" value=\"rename\"><input type=\"hidden\" name=\"credential_id\" value=\"{id}\">\
<label>New name <input type=\"text\" name=\"name\" maxlength=\"64\" required value=\"{name}\"></label>\
<button type=\"submit\">Rename</button></form>\n\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"kb_action\" value=\"remove\"><input type=\"hidden\" name=\"credential_id\" value=\"{id}\">\
<button type=\"submit\">Remove</button></form>",
                    id = esc(&p.id),
                    name = esc(&p.name),
                    action = esc(a.action),
                    csrf = esc(a.csrf),
                )
            } else {
                String::new()
            };
            format!(
                "<li data-credential-id=\"{id}\"><strong class=\"passkey-name\">{name}</strong> \
<small>added {created}, {used}</small>{forms}</li>",
                id = esc(&p.id),
                name = esc(&p.name),
                created = esc(&p.created),
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let add = match a.manage {
        Manage::Yes => format!(
            "<form method=\"post\" action=\"{action}\" id=\"passkey-form\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"kb_action\" value=\"add\">\
<input type=\"hidden\" name=\"kb_passkey_state\" value=\"\"><input type=\"hidden\" name=\"kb_passkey_credential\" value=\"\">\n\
<label for=\"passkey-name\">Name for the new passkey</label>\
<input type=\"text\" id=\"passkey-name\" name=\"name\" maxlength=\"64\" required value=\"Passkey\">\n\
<button type=\"button\" id=\"add-passkey\" data-ceremony=\"create\" data-options=\"{options}\">Add a passkey</button>\n</form>\n\
<p id=\"passkey-message\" class=\"note\" role=\"status\"></p>\n<script>{script}</script>",
            action = esc(a.action),
            csrf = esc(a.csrf),
            options = esc(keybound_op::paths::PASSKEY_OPTIONS),
            script = PASSKEY_SCRIPT,
        ),
        Manage::ConfirmFirst => format!(
            "<p class=\"note\">Confirm with one of your passkeys to add, rename or remove passkeys.</p>\n{}",
            passkey_form(a.action, &[], a.csrf, PasskeyStep::SecondFactor)
        ),
        Manage::NoNewPasskeys(why) => format!("<p class=\"note\">{}</p>", esc(why)),
    };
    layout(
        "Your account",
        &format!(
            "<h1>Your account</h1>\n<p>Signed in as <strong id=\"username\">{user}</strong> \
<small id=\"acr\">({acr})</small></p>\n{note}{err}<h2>Passkeys</h2>\n<ul id=\"passkeys\">\n{items}\n</ul>\n{add}",
            user = esc(a.username),
            acr = esc(a.acr),
        ),
    )
}

/// Whether a page has the passkey script (its CSP must allow it).
pub fn has_passkey_script(html: &str) -> bool {
    html.contains(PASSKEY_SCRIPT)
}

fn describe_scope(s: &str) -> &'static str {
    match s {
        "openid" => "Sign you in with your account",
        "profile" => "See your name and username",
        "email" => "See your email address",
        "offline_access" => "Stay signed in when you are not using it",
        "bound_key" => "Bind this sign-in to a key that only the app holds",
        _ => "Other access",
    }
}

/// The consent form.
pub fn consent(action: &str, fields: &[(String, String)], csrf: &str, p: &ConsentPrompt) -> String {
    let scopes = p
        .scopes
        .iter()
        .map(|s| format!("<li>{} <small>({})</small></li>", describe_scope(s), esc(s)))
        .collect::<String>();
    let key = p.bound_jkt.as_deref().map_or(String::new(), |jkt| {
        format!(
            "<p>The app will be able to prove that it received this sign-in: your sign-in is \
bound to the app's key with thumbprint</p><p class=\"key\" id=\"key-thumbprint\">{}</p>\
<p>Only approve if you are signing in to this app yourself.</p>",
            esc(jkt)
        )
    });
    layout(
        "Allow access",
        &format!(
            "<h1>Allow <strong>{client}</strong>?</h1>\n<p>The app asks to:</p><ul>{scopes}</ul>\n{key}\n\
<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"consent\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>",
            client = esc(&p.client_name),
            action = esc(action),
            hidden = hidden(fields),
            csrf = esc(csrf),
        ),
    )
}

/// The device verification page: type (or confirm) the code shown on the device.
pub fn device_entry(action: &str, csrf: &str, prefill: &str, error: Option<&str>) -> String {
    let err = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    layout(
        "Connect a device",
        &format!(
            "<h1>Connect a device</h1>\n<p>Enter the code shown on your device.</p>\n{err}\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"kb_action\" value=\"code\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<label for=\"user_code\">Code</label><input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"{prefill}\" autocomplete=\"off\" autocapitalize=\"characters\" required autofocus>\n\
<button type=\"submit\">Continue</button>\n</form>",
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
    let scopes = scopes
        .iter()
        .map(|s| format!("<li>{} <small>({})</small></li>", describe_scope(s), esc(s)))
        .collect::<String>();
    let key = jkt.map_or(String::new(), |j| {
        format!(
            "<p>The device will be able to prove that it received this sign-in: it is bound to \
the device's key with thumbprint</p><p class=\"key\" id=\"key-thumbprint\">{}</p>",
            esc(j)
        )
    });
    layout(
        "Allow device",
        &format!(
            "<h1>Allow <strong>{client}</strong> on your device?</h1>\n\
<p class=\"error\" role=\"note\">Only approve if the code <strong>{code}</strong> is shown on a device you hold. \
If someone sent you this code, deny: they are trying to sign in as you.</p>\n\
<p>The device asks to:</p><ul>{scopes}</ul>\n{key}\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"kb_action\" value=\"consent\">\
<input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<button type=\"submit\" name=\"decision\" value=\"allow\">Approve</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>",
            client = esc(client_name),
            code = esc(user_code),
            action = esc(action),
            csrf = esc(csrf),
        ),
    )
}

/// After the decision.
pub fn device_done(approved: bool) -> String {
    if approved {
        layout("Device connected", "<h1>Device connected</h1>\n<p id=\"done\">You can return to your device; it will finish signing in by itself.</p>")
    } else {
        layout(
            "Device denied",
            "<h1>Request denied</h1>\n<p id=\"done\">The device was not given access.</p>",
        )
    }
}

/// An error page (never a redirect to an unverified URI).
/// OAuth 2.0 Form Post Response Mode: a form of `params` the user agent posts to `action` at
/// once (`script`, allowed by its hash in the page's CSP), or on a click without scripts.
pub fn form_post(action: &str, params: &[(String, String)], script: &str) -> String {
    layout(
        "Continuing",
        &format!(
            "<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<noscript><p>Continue to the application.</p><button type=\"submit\">Continue</button></noscript>\n\
</form>\n<script>{script}</script>",
            action = esc(action),
            hidden = hidden(params),
        ),
    )
}

/// RP-Initiated Logout §2: ask the End-User whether to sign out of the OP.
pub fn logout_confirm(action: &str, fields: &[(String, String)], csrf: &str) -> String {
    layout(
        "Sign out",
        &format!(
            "<h1>Sign out of keybound?</h1>\n<p>An app asked to end your keybound session. \
Signing out ends it for every app you signed in to with it.</p>\n\
<form method=\"post\" action=\"{action}\">\n{hidden}\n\
<input type=\"hidden\" name=\"kb_action\" value=\"logout\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
<button type=\"submit\" name=\"decision\" value=\"yes\">Sign out</button>\
<button type=\"submit\" name=\"decision\" value=\"no\">Stay signed in</button>\n</form>",
            action = esc(action),
            hidden = hidden(fields),
            csrf = esc(csrf),
        ),
    )
}

/// After a logout without a redirect back to an app: signed out, or still signed in (the
/// End-User declined).
pub fn signed_out(stayed: bool) -> String {
    let (title, message) = if stayed {
        ("Still signed in", "You are still signed in to keybound.")
    } else {
        ("Signed out", "You are signed out of keybound.")
    };
    layout(
        title,
        &format!(
            "<h1>{}</h1>\n<p role=\"status\">{}</p>",
            esc(title),
            esc(message)
        ),
    )
}

pub fn error(title: &str, message: &str) -> String {
    layout(
        title,
        &format!(
            "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>",
            esc(title),
            esc(message)
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
