//! The invariants of a soak with faults (issue 26 item 10), as a ledger the load writes and a
//! checker that reads it. The load records what the OP *granted* — every successful use of a
//! single-use artefact, every DPoP proof an answer accepted, every token it was given — and
//! every 5xx; [`Ledger::violations`] says which invariant any of that breaks. Kept apart from
//! the load so that a test can plant a violation in a real ledger and see it caught.

use std::collections::{BTreeMap, BTreeSet};

/// How a received token is checked at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// a DPoP access token with `openid`: UserInfo with a fresh proof by the client's key
    UserInfo,
    /// an access token of a confidential client: introspection by that client
    Introspection,
}

/// A token a client was given.
#[derive(Debug, Clone)]
pub struct Received {
    /// the token
    pub token: String,
    /// how to check it
    pub check: Check,
    /// until when it is valid (Unix seconds)
    pub expires_at: u64,
    /// the refresh family or grant it belongs to, if a rule can revoke it
    pub family: Option<String>,
}

/// What the load saw.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// successful uses of single-use artefacts, by (kind, value)
    pub uses: BTreeMap<(String, String), u32>,
    /// accepted DPoP proofs, by `jti`
    pub proofs: BTreeMap<String, u32>,
    /// refresh tokens that gave a successor, by the token they were rotated from
    pub successors: BTreeMap<String, BTreeSet<String>>,
    /// every 5xx: status, `Retry-After`, what was asked
    pub server_errors: Vec<(u16, Option<String>, String)>,
    /// tokens clients were given
    pub tokens: Vec<Received>,
    /// families revoked by a rule (a refresh retried after a cut and refused as reuse)
    pub revoked: BTreeSet<String>,
    /// answers that none of the rules explain
    pub unexplained: Vec<String>,
    /// requests sent, and those that got no answer (a node killed mid-request)
    pub requests: u64,
    /// requests cut off
    pub cut: u64,
}

impl Ledger {
    /// A successful use of the single-use `value` of `kind`.
    pub fn used(&mut self, kind: &str, value: &str) {
        *self
            .uses
            .entry((kind.to_owned(), value.to_owned()))
            .or_insert(0) += 1;
    }

    /// An answer accepted the proof with `jti`.
    pub fn accepted(&mut self, jti: &str) {
        *self.proofs.entry(jti.to_owned()).or_insert(0) += 1;
    }

    /// `from` was rotated into `to`.
    pub fn rotated(&mut self, from: &str, to: &str) {
        self.successors
            .entry(from.to_owned())
            .or_default()
            .insert(to.to_owned());
    }

    /// An answer with `status` to `what`: 5xx are recorded.
    pub fn answered(&mut self, status: u16, retry_after: Option<&str>, what: &str) {
        self.requests += 1;
        if status == 0 {
            self.cut += 1;
        }
        if status >= 500 {
            self.server_errors
                .push((status, retry_after.map(str::to_owned), what.to_owned()));
        }
    }

    /// Every invariant the ledger breaks, one line each (empty: none).
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        for ((kind, value), n) in &self.uses {
            if *n > 1 {
                v.push(format!("{kind} used {n} times: {value}"));
            }
        }
        for (jti, n) in &self.proofs {
            if *n > 1 {
                v.push(format!("DPoP proof accepted {n} times: jti {jti}"));
            }
        }
        for (from, to) in &self.successors {
            if to.len() > 1 {
                v.push(format!(
                    "refresh family forked at {from}: {} successors",
                    to.len()
                ));
            }
        }
        for (status, retry_after, what) in &self.server_errors {
            if *status != 503 || retry_after.is_none() {
                v.push(format!(
                    "{what}: HTTP {status} (Retry-After {})",
                    retry_after.as_deref().unwrap_or("none")
                ));
            }
        }
        v.extend(self.unexplained.iter().map(|u| format!("unexplained: {u}")));
        v
    }

    /// The tokens that must still verify at `now`: not expired, not revoked by a rule.
    pub fn live_tokens(&self, now: u64) -> impl Iterator<Item = &Received> {
        self.tokens.iter().filter(move |t| {
            now + 5 < t.expires_at && t.family.as_ref().is_none_or(|f| !self.revoked.contains(f))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_invariant_is_checked() {
        let mut l = Ledger::default();
        l.used("code", "c1");
        l.accepted("j1");
        l.rotated("r1", "r2");
        l.answered(503, Some("1"), "refresh");
        assert!(l.violations().is_empty(), "{:?}", l.violations());
        let mut twice = l.clone();
        twice.used("code", "c1");
        assert_eq!(twice.violations(), ["code used 2 times: c1"]);
        let mut replay = l.clone();
        replay.accepted("j1");
        assert_eq!(replay.violations().len(), 1);
        let mut fork = l.clone();
        fork.rotated("r1", "r3");
        assert_eq!(fork.violations().len(), 1);
        let mut crash = l.clone();
        crash.answered(500, None, "token");
        crash.answered(503, None, "token");
        assert_eq!(crash.violations().len(), 2);
    }
}
