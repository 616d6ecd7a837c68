//! Security events: one record per thing an operator's SIEM must see — sign-ins that
//! succeeded or failed and why, throttling, passkeys registered or removed, a refresh token
//! or code used twice (and the grant revoked), a replayed DPoP proof, consent, logout, a key
//! rotation, and every change made through the admin operations (who, what, before and
//! after).
//!
//! The provider decides *that* something happened and says it here, as data; where the
//! record goes (JSON lines on stdout or to a rotated file, a Prometheus counter) and what the
//! request adds to it (request id, source address, trace id) is the server's business
//! ([`EventSink`]). Nothing secret is ever put in an event: no password, token, code, proof or
//! client secret — the documents of admin changes are their public view
//! ([`crate::admin::public_value`]), as an operator reads them back.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum EventType {
    /// An End-User signed in (password, passkey, or both).
    #[serde(rename = "sign_in.succeeded")]
    SignInSucceeded,
    /// A sign-in failed (`reason`: unknown account, wrong password, passkey refused).
    #[serde(rename = "sign_in.failed")]
    SignInFailed,
    /// Too many wrong secrets: an attempt was refused before it was checked.
    #[serde(rename = "sign_in.throttled")]
    Throttled,
    /// A passkey was added to an account.
    #[serde(rename = "passkey.registered")]
    PasskeyRegistered,
    /// A passkey was removed (by its owner or an operator).
    #[serde(rename = "passkey.removed")]
    PasskeyRemoved,
    /// A rotated refresh token came back: its grant was revoked (RFC 9700 §4.14.2).
    #[serde(rename = "refresh_token.reused")]
    RefreshReuse,
    /// A used authorization code came back: its grant was revoked (RFC 6749 §4.1.2).
    #[serde(rename = "code.reused")]
    CodeReuse,
    /// A DPoP proof was presented a second time (RFC 9449 §11.1).
    #[serde(rename = "dpop.replayed")]
    DpopReplay,
    /// An End-User consented to a client.
    #[serde(rename = "consent.granted")]
    ConsentGranted,
    /// An End-User withdrew their consent to a client (its grants were revoked).
    #[serde(rename = "consent.revoked")]
    ConsentRevoked,
    /// An OP session ended (logout).
    #[serde(rename = "session.logged_out")]
    Logout,
    /// The signing keys were rotated.
    #[serde(rename = "keys.rotated")]
    KeyRotated,
    /// An operator changed something through the admin operations.
    #[serde(rename = "admin.changed")]
    AdminChange,
}

impl EventType {
    /// Every type, for counters that start at zero.
    pub const ALL: [EventType; 13] = [
        EventType::SignInSucceeded,
        EventType::SignInFailed,
        EventType::Throttled,
        EventType::PasskeyRegistered,
        EventType::PasskeyRemoved,
        EventType::RefreshReuse,
        EventType::CodeReuse,
        EventType::DpopReplay,
        EventType::ConsentGranted,
        EventType::ConsentRevoked,
        EventType::Logout,
        EventType::KeyRotated,
        EventType::AdminChange,
    ];

    /// Its name in records and in the Prometheus label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SignInSucceeded => "sign_in.succeeded",
            EventType::SignInFailed => "sign_in.failed",
            EventType::Throttled => "sign_in.throttled",
            EventType::PasskeyRegistered => "passkey.registered",
            EventType::PasskeyRemoved => "passkey.removed",
            EventType::RefreshReuse => "refresh_token.reused",
            EventType::CodeReuse => "code.reused",
            EventType::DpopReplay => "dpop.replayed",
            EventType::ConsentGranted => "consent.granted",
            EventType::ConsentRevoked => "consent.revoked",
            EventType::Logout => "session.logged_out",
            EventType::KeyRotated => "keys.rotated",
            EventType::AdminChange => "admin.changed",
        }
    }
}

/// One security event, as the provider knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityEvent {
    /// what happened
    #[serde(rename = "type")]
    pub kind: EventType,
    /// the client concerned
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// the End-User concerned (`sub`), when known
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// why, in a word or two (`wrong_password`, `grant_revoked`, a method)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// an admin change: who made it, to what, before and after
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub change: Option<Change>,
}

/// What an admin change was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// who: `client:<id>` through the admin API, `local:<user>` on the database
    pub actor: String,
    /// `create`, `replace`, `delete`, `link`, `rotate`, `issue`
    pub action: &'static str,
    /// the kind of thing and its id (`client web`)
    pub target: String,
    /// the document before (public view)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// the document after (public view)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl SecurityEvent {
    /// An event of `kind` with nothing else known yet.
    pub fn new(kind: EventType) -> Self {
        SecurityEvent {
            kind,
            client_id: None,
            subject: None,
            reason: None,
            change: None,
        }
    }

    /// … concerning client `id`.
    #[must_use]
    pub fn client(mut self, id: &str) -> Self {
        self.client_id = Some(id.to_owned());
        self
    }

    /// … concerning End-User `sub`.
    #[must_use]
    pub fn subject(mut self, sub: &str) -> Self {
        self.subject = Some(sub.to_owned());
        self
    }

    /// … because of `reason`.
    #[must_use]
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }
}

/// Where events go. The server's sink writes them with the request's context; the provider
/// only calls [`EventSink::record`], which must not block for long (a line to a buffer).
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Record `event`.
    fn record(&self, event: SecurityEvent);
}

/// No sink: events are dropped (a provider in a library test, `events = "off"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _event: SecurityEvent) {}
}
