//! The client's address: the socket peer, or — only when that peer is a configured trusted
//! proxy — the address the proxy forwarded (`Forwarded: for=`, RFC 7239, else
//! `X-Forwarded-For`). Throttling per address (passwords, device codes) keys on this.
//!
//! Anyone can send a forwarding header, so it is read only from trusted proxies, and the chain
//! is walked from the nearest hop outwards: the first address that is not a trusted proxy is
//! the client (a client cannot pick its address by prepending entries). A malformed or
//! obfuscated entry (`unknown`, `_hidden`) stops the walk at the proxy that reported it, so the
//! proxy's own address is throttled rather than an address nobody vouched for.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::{forms, AppState};

/// The client's address for this request (`None` when the server runs without connection
/// info, as in-process tests do).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<Arc<AppState>> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|c| c.0.ip());
        Ok(ClientAddr(peer.map(|p| {
            client_address(p, &parts.headers, &state.config.trusted_proxies)
        })))
    }
}

fn trusted(addr: IpAddr, proxies: &[IpNet]) -> bool {
    let addr = canonical(addr);
    proxies.iter().any(|n| n.contains(&addr))
}

/// IPv4-mapped IPv6 addresses compare as IPv4 (a dual-stack listener reports them).
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// One `for=` value of RFC 7239: `192.0.2.43`, `"[2001:db8::1]:4711"`, `"192.0.2.43:80"`.
fn parse_forwarded_node(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The forwarded chain, client first, as the proxies wrote it; `None` entries are unparseable.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded = forms::header_values(headers, "forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|h| h.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_forwarded_node(v))
            })
            .collect();
    }
    forms::header_values(headers, "x-forwarded-for")
        .iter()
        .flat_map(|h| h.split(','))
        .map(parse_forwarded_node)
        .collect()
}

/// The client's address given the socket `peer`, the request headers and the trusted proxies.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let mut current = canonical(peer);
    if !trusted(current, proxies) {
        return current;
    }
    for hop in forwarded_chain(headers).into_iter().rev() {
        match hop {
            Some(addr) => {
                current = canonical(addr);
                if !trusted(current, proxies) {
                    return current;
                }
            }
            None => return current,
        }
    }
    current
}

/// The Token Binding IDs of the user agent's connection, as a trusted TLS terminator forwarded
/// them (draft-ietf-tokbind-ttrp, as Apache mod_token_binding sends them:
/// `Sec-Provided-Token-Binding-ID` and `Sec-Referred-Token-Binding-ID`, base64url
/// TokenBindingIDs). From any peer that is not a configured trusted proxy these headers are
/// ignored — anyone can send a header, and a `tbh` must only ever name a binding verified on the
/// user agent's connection. A malformed or repeated header counts as none (fail closed).
#[derive(Debug, Clone, Default)]
pub struct TokenBindingContext {
    /// the binding the user agent uses with this server
    pub provided: Option<keybound_proto::tokbind::TokenBindingId>,
    /// the binding it uses with the RP that sent it here (for `cnf.tbh`)
    pub referred: Option<keybound_proto::tokbind::TokenBindingId>,
}

/// The request's [`TokenBindingContext`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenBinding(pub TokenBindingContext);

fn forwarded_tb_id(
    headers: &HeaderMap,
    name: &str,
) -> Option<keybound_proto::tokbind::TokenBindingId> {
    let values = forms::header_values(headers, name);
    let [one] = values.as_slice() else {
        return None;
    };
    let bytes = keybound_jose::b64::decode(one.trim()).ok()?;
    keybound_proto::tokbind::TokenBindingId::from_bytes(&bytes).ok()
}

/// The binding the native listener's middleware verified for this request (its
/// `Sec-Token-Binding` over the connection's EKM), if any.
#[cfg(feature = "token-binding")]
fn native(parts: &Parts) -> TokenBindingContext {
    parts
        .extensions
        .get::<keybound_tls::VerifiedTokenBinding>()
        .map(|v| TokenBindingContext {
            provided: Some(v.0.provided.clone()),
            referred: v.0.referred.clone(),
        })
        .unwrap_or_default()
}

/// Built without the native listener (feature `token-binding` off): no request carries a
/// binding it verified.
#[cfg(not(feature = "token-binding"))]
fn native(_: &Parts) -> TokenBindingContext {
    TokenBindingContext::default()
}

impl FromRequestParts<Arc<AppState>> for TokenBinding {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match state.config.token_binding {
            crate::TokenBindingMode::Off => Ok(TokenBinding::default()),
            // set only by the native listener's middleware, after verifying the request's
            // Sec-Token-Binding over its connection's EKM
            crate::TokenBindingMode::Native => Ok(TokenBinding(native(parts))),
            crate::TokenBindingMode::Proxy => {
                let from_proxy = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
                    .await
                    .ok()
                    .is_some_and(|c| trusted(c.0.ip(), &state.config.trusted_proxies));
                if !from_proxy {
                    return Ok(TokenBinding::default());
                }
                Ok(TokenBinding(TokenBindingContext {
                    provided: forwarded_tb_id(&parts.headers, "sec-provided-token-binding-id"),
                    referred: forwarded_tb_id(&parts.headers, "sec-referred-token-binding-id"),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|_| unreachable!()),
                v.parse().unwrap_or_else(|_| unreachable!()),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| s.parse().unwrap_or_else(|_| unreachable!()))
            .collect()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.8"),
        ]);
        assert_eq!(
            client_address(ip("203.0.113.9"), &h, &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("203.0.113.9"), &h, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn x_forwarded_for_from_a_trusted_proxy() {
        let p = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.2")]);
        // the walk stops at the first untrusted hop: a client-supplied "1.2.3.4" is ignored
        assert_eq!(client_address(ip("10.0.0.1"), &h, &p), ip("198.51.100.7"));
        // several headers are one list
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &p), ip("198.51.100.7"));
        // no header: the proxy itself
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers(&[]), &p),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rfc7239_forwarded_takes_precedence() {
        let p = nets(&["10.0.0.1/32", "::1/128"]);
        let h = headers(&[
            (
                "forwarded",
                r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.1"#,
            ),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(client_address(ip("::1"), &h, &p), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &p), ip("192.0.2.60"));
    }

    #[test]
    fn obfuscated_or_garbage_hops_stop_at_the_reporting_proxy() {
        let p = nets(&["10.0.0.0/8"]);
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &p), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "198.51.100.7, not-an-ip, 10.0.0.3")]);
        assert_eq!(client_address(ip("10.0.0.1"), &h, &p), ip("10.0.0.3"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_proxies() {
        let p = nets(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), &h, &p),
            ip("198.51.100.7")
        );
    }
}
