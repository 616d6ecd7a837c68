//! [`Secret`]: a shared secret as a value — a client secret, a password — that can be used
//! where it is needed and shows nowhere else. `Debug` and `Display` print a placeholder, so a
//! configuration struct, a parsed command line or an error that holds one can be logged
//! whole; the bytes are wiped when the value is dropped. One type for every crate that carries
//! such secrets (the RP library, the consuming component, the command line), so none has to
//! remember to hand-write a redacting `Debug`.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string that never shows in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wrap `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

/// From a configuration file: a plain string.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Parsing from text (a command-line flag or an environment variable) cannot fail.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let s = Secret::new("hunter2-planted");
        assert_eq!(s.expose(), "hunter2-planted");
        for shown in [format!("{s:?}"), format!("{s}"), format!("{:?}", Some(&s))] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
