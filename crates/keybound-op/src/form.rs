//! Form-encoded request parameters (token, device authorization, revocation, introspection).
//!
//! Its own module because every endpoint and the client authentication read it: keeping it
//! beside one of them made that module and client authentication import each other.

use std::collections::BTreeMap;

use crate::refusal::RequestRefusal;
use crate::OpError;

/// Form parameters with RFC 6749 §3.2's rule: none may appear twice.
#[derive(Debug, Clone, Default)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// From decoded `application/x-www-form-urlencoded` pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OpError> {
        let mut m = BTreeMap::new();
        for (k, v) in pairs {
            if m.contains_key(&k) {
                return Err(RequestRefusal::DuplicateParameter(k).into());
            }
            m.insert(k, v);
        }
        Ok(Form(m))
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OpError> {
        self.get(name)
            .ok_or_else(|| RequestRefusal::MissingParameter(name.to_owned()).into())
    }
}

/// A form-posting request as the server received it: token, device authorization.
#[derive(Debug, Clone, Copy)]
pub struct FormRequest<'a> {
    /// the form body
    pub form: &'a Form,
    /// `Authorization` header
    pub authorization: Option<&'a str>,
    /// every `DPoP` header value
    pub dpop: &'a [&'a str],
}
