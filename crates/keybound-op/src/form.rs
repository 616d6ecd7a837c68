//! Form-encoded request parameters (token, device authorization, revocation, introspection).
//!
//! Its own module because every endpoint and the client authentication read it: keeping it
//! beside one of them made that module and client authentication import each other.

use std::collections::BTreeMap;

use crate::refusal::RequestRefusal;
use crate::OpError;

/// Form parameters with RFC 6749 §3.2's rule: none may appear twice — except `resource`,
/// which RFC 8707 §2 lets a client repeat to name several resources.
#[derive(Debug, Clone, Default)]
pub struct Form {
    params: BTreeMap<String, String>,
    resources: Vec<String>,
}

impl Form {
    /// From decoded `application/x-www-form-urlencoded` pairs.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, OpError> {
        let mut params = BTreeMap::new();
        let mut resources = Vec::new();
        for (k, v) in pairs {
            if k == "resource" {
                if !v.is_empty() {
                    resources.push(v);
                }
                continue;
            }
            if params.contains_key(&k) {
                return Err(RequestRefusal::DuplicateParameter(k).into());
            }
            params.insert(k, v);
        }
        Ok(Form { params, resources })
    }

    /// Every `resource` (RFC 8707 §2), in order.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        if name == "resource" {
            return self.resources.first().map(String::as_str);
        }
        self.params
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
