//! `keybound inspect`: what is this token, what does it claim, which key is it bound to?
//!
//! Decoding is lenient enough to show a token keybound would refuse (and say why), but any
//! input that is not a JWT or a TokenBindingMessage at all is a one-line error.

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Context as _};
use keybound_jose::{b64, Jws, PublicJwk};
use keybound_proto::cnf::Cnf;
use keybound_proto::tokbind::{TokenBindingMessage, TokenBindingType};
use serde_json::Value;

/// Inspect `input` and return the report.
pub fn run(input: &str) -> anyhow::Result<String> {
    if input.is_empty() {
        bail!("nothing to inspect: expected a JWT or a Sec-Token-Binding value");
    }
    if input.contains('.') {
        inspect_jwt(input)
    } else {
        inspect_token_binding(input)
    }
}

fn decode_json(segment: &str, what: &str) -> anyhow::Result<Value> {
    let bytes = b64::decode(segment).with_context(|| format!("{what} is not base64url"))?;
    let v: Value = serde_json::from_slice(&bytes).with_context(|| format!("{what} is not JSON"))?;
    if !v.is_object() {
        bail!("{what} is not a JSON object");
    }
    Ok(v)
}

fn kind(typ: Option<&str>, claims: &Value) -> &'static str {
    match typ {
        Some("dpop+jwt") => "DPoP proof (RFC 9449)",
        Some("dpop+id_token") => "key-bound ID Token (OpenID Connect Key Binding)",
        Some("id_token+cnf") => "key-bound ID Token (Key Binding draft 00 profile)",
        Some("at+jwt" | "application/at+jwt") => "JWT access token (RFC 9068)",
        Some("oauth-id-jag+jwt") => "Identity Assertion JWT Authorization Grant (ID-JAG)",
        _ if claims.get("cnf").and_then(|c| c.get("tbh")).is_some() => {
            "token-bound ID Token (OpenID Connect Token Bound Authentication)"
        }
        _ if claims.get("nonce").is_some() || claims.get("auth_time").is_some() => {
            "ID Token (OpenID Connect Core)"
        }
        _ => "JWT",
    }
}

fn describe_key(jwk: &PublicJwk) -> String {
    format!(
        "{} key, thumbprint (jkt) {}",
        jwk.describe(),
        jwk.thumbprint()
    )
}

fn inspect_jwt(input: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = input.split('.').collect();
    if parts.len() != 3 {
        bail!(
            "a JWS compact JWT has 3 dot-separated parts, this has {}",
            parts.len()
        );
    }
    let header = decode_json(parts[0], "header")?;
    let claims = decode_json(parts[1], "payload")?;
    b64::decode(parts[2]).context("signature is not base64url")?;
    let typ = header.get("typ").and_then(Value::as_str);
    let mut out = String::new();
    writeln!(out, "kind:      {}", kind(typ, &claims))?;
    writeln!(
        out,
        "header:    {}",
        serde_json::to_string_pretty(&header)?.replace('\n', "\n           ")
    )?;
    writeln!(
        out,
        "claims:    {}",
        serde_json::to_string_pretty(&claims)?.replace('\n', "\n           ")
    )?;
    for t in ["iat", "exp", "auth_time"] {
        if let Some(n) = claims.get(t).and_then(Value::as_u64) {
            writeln!(out, "{t:<9} {n} ({})", utc(n))?;
        }
    }
    if let Some(cnf) = claims.get("cnf") {
        match Cnf::from_value(cnf) {
            Ok(c) => {
                if let Some(jwk) = &c.jwk {
                    writeln!(out, "cnf.jwk:   {}", describe_key(jwk))?;
                }
                if let Some(jkt) = &c.jkt {
                    writeln!(out, "cnf.jkt:   {jkt}")?;
                }
                if let Some(tbh) = &c.tbh {
                    writeln!(out, "cnf.tbh:   {tbh} (SHA-256 of a Token Binding ID)")?;
                }
            }
            Err(e) => writeln!(out, "cnf:       INVALID: {e}")?,
        }
    }
    match Jws::parse(input) {
        Ok(jws) => {
            if let Some(jwk) = &jws.header().jwk {
                writeln!(out, "jwk:       {} (from the header)", describe_key(jwk))?;
                if typ == Some("dpop+jwt") {
                    let verdict = match jws.verify(jwk, &keybound_jose::Algorithm::ALL) {
                        Ok(()) => "valid for the header key".to_owned(),
                        Err(e) => format!("INVALID: {e}"),
                    };
                    writeln!(out, "signature: {verdict}")?;
                }
            } else {
                writeln!(
                    out,
                    "signature: not verified (inspect does not fetch issuer keys)"
                )?;
            }
        }
        Err(e) => writeln!(out, "warning: keybound would refuse this token: {e}")?,
    }
    Ok(out)
}

fn inspect_token_binding(input: &str) -> anyhow::Result<String> {
    let msg = TokenBindingMessage::from_header(input)
        .map_err(|e| anyhow!("not a JWT, and not a Sec-Token-Binding value: {e}"))?;
    let mut out = String::new();
    writeln!(
        out,
        "kind:      Sec-Token-Binding TokenBindingMessage (RFC 8471/8473), {} binding(s)",
        msg.bindings.len()
    )?;
    for (i, b) in msg.bindings.iter().enumerate() {
        let t = match b.tb_type {
            TokenBindingType::Provided => "provided".to_owned(),
            TokenBindingType::Referred => "referred".to_owned(),
            TokenBindingType::Other(v) => format!("type {v}"),
        };
        writeln!(
            out,
            "binding {}: {t}, key parameters {}",
            i + 1,
            b.id.key_parameters.name()
        )?;
        writeln!(out, "  tbh:       {}", b.id.tbh()?)?;
        match b.id.to_public_jwk() {
            Ok(jwk) => writeln!(out, "  key:       {}", describe_key(&jwk))?,
            Err(e) => writeln!(out, "  key:       {e}")?,
        }
        writeln!(
            out,
            "  signature: {} bytes (verifiable only with the connection's EKM)",
            b.signature.len()
        )?;
    }
    if let Err(e) = msg.http_bindings() {
        writeln!(out, "warning: not a valid HTTP Token Binding message: {e}")?;
    }
    Ok(out)
}

/// Format a Unix time as an RFC 3339 UTC timestamp (civil-from-days, no time-zone database).
#[allow(clippy::many_single_char_names)] // the names of the published civil-from-days algorithm
fn utc(t: u64) -> String {
    let days = i64::try_from(t / 86_400).unwrap_or(i64::MAX / 2);
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_761_937_449), "2025-10-31T19:04:09Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
