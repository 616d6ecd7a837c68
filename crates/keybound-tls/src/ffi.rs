//! The one unsafe module: OpenSSL's hooks for the `token_binding` TLS extension (RFC 8472,
//! type 24), which the `openssl` crate does not wrap.
//!
//! Why it must be here: negotiation happens inside the handshake, so it needs
//! `SSL_CTX_add_custom_ext` (to send and receive extension 24) and
//! `SSL_client_hello_get0_ext` (to see, while choosing, whether the client offered extended
//! master secret and renegotiation indication, without which RFC 8472 §4 forbids Token
//! Binding). Everything else (EKM export, certificates, streams) uses the safe API.
//!
//! State lives in the `SSL` object's ex_data (one [`Negotiation`] per connection, owned by
//! OpenSSL and dropped with the `SSL`); the callbacks only read or write it and copy bytes.
//! Every callback is infallible in Rust terms: it never panics across the FFI boundary (no
//! unwrap, no indexing that can fail) and reports problems with OpenSSL's return values.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uchar, c_uint, c_void};
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContextBuilder, SslRef};

/// TLS extension type of `token_binding` (RFC 8472 §2).
pub(crate) const TOKEN_BINDING: c_uint = 24;
const EXTENDED_MASTER_SECRET: c_uint = 23;
const RENEGOTIATION_INFO: c_uint = 0xff01;
/// `TLS_EMPTY_RENEGOTIATION_INFO_SCSV`: a client's other way to signal RFC 5746.
const RENEGOTIATION_SCSV: [u8; 2] = [0x00, 0xff];
/// `SSL_CTRL_GET_RI_SUPPORT` (the macro `SSL_get_secure_renegotiation_support`).
const SSL_CTRL_GET_RI_SUPPORT: c_int = 76;
/// TLS alert `unsupported_extension` (RFC 8472 §4: the client's answer to a bad server choice).
const ALERT_UNSUPPORTED_EXTENSION: c_int = 110;

/// The Token Binding protocol version keybound speaks: 1.0 (RFC 8471). Drafts used 0.x.
pub(crate) const VERSION: [u8; 2] = [1, 0];

/// One connection's Token Binding negotiation.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    /// client: the key parameters offered, most preferred first
    pub offered: Vec<u8>,
    /// the key parameters both sides agreed on
    pub chosen: Option<u8>,
    /// the extension body this side sends (kept here so the pointer handed to OpenSSL stays
    /// valid until OpenSSL has copied it)
    out: Vec<u8>,
    /// client: the server's answer was unacceptable (the handshake is aborted)
    pub refused: Option<&'static str>,
}

impl Negotiation {
    /// A client's record before its handshake: what it offers.
    pub(crate) fn offering(offered: Vec<u8>) -> Self {
        Negotiation {
            offered,
            ..Negotiation::default()
        }
    }
}

static INDEX: OnceLock<Index<Ssl, Negotiation>> = OnceLock::new();

/// The ex_data slot for [`Negotiation`] (allocated once per process).
pub(crate) fn index() -> Result<Index<Ssl, Negotiation>, ErrorStack> {
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let fresh = Ssl::new_ex_index::<Negotiation>()?;
    Ok(*INDEX.get_or_init(|| fresh))
}

/// The bytes of an extension the client sent, from inside the ClientHello callback.
fn client_hello_ext(ssl: &mut SslRef, ext: c_uint) -> Option<&[u8]> {
    let mut out: *const c_uchar = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: called only from the ClientHello callback, where OpenSSL keeps the parsed
    // ClientHello alive; on success `out`/`len` describe bytes inside it, which live at least
    // as long as this `&mut SslRef` borrow (the callback's duration).
    let found = unsafe {
        openssl_sys::SSL_client_hello_get0_ext(ssl.as_ptr(), ext, &raw mut out, &raw mut len)
    };
    if found != 1 {
        return None;
    }
    if out.is_null() || len == 0 {
        return Some(&[]);
    }
    // SAFETY: see above; `out` is non-null and points to `len` readable bytes.
    Some(unsafe { std::slice::from_raw_parts(out, len) })
}

/// Server: decide in the ClientHello callback. Negotiates Token Binding 1.0 with the first of
/// the client's key parameters that `supported` contains, only when the client also offered
/// extended master secret and renegotiation indication (which OpenSSL then always negotiates):
/// RFC 8472 §4. A malformed or draft-version extension is answered with no Token Binding.
pub(crate) fn server_choose(ssl: &mut SslRef, supported: &[u8]) -> Result<(), ErrorStack> {
    let Some(tb) = client_hello_ext(ssl, TOKEN_BINDING).map(<[u8]>::to_vec) else {
        return Ok(());
    };
    let ems = client_hello_ext(ssl, EXTENDED_MASTER_SECRET).is_some();
    let ri = client_hello_ext(ssl, RENEGOTIATION_INFO).is_some()
        || ssl
            .client_hello_ciphers()
            .is_some_and(|c| c.chunks_exact(2).any(|s| s == RENEGOTIATION_SCSV));
    let chosen = match tb.as_slice() {
        [major, minor, n, params @ ..] if usize::from(*n) == params.len() && !params.is_empty() => {
            if [*major, *minor] < VERSION {
                tracing::debug!(
                    major,
                    minor,
                    "Token Binding: draft version offered; not negotiated"
                );
                None
            } else {
                params.iter().copied().find(|p| supported.contains(p))
            }
        }
        _ => {
            tracing::debug!("Token Binding: malformed extension in ClientHello; not negotiated");
            None
        }
    };
    let chosen = match chosen {
        Some(p) if ems && ri => Some(p),
        Some(_) => {
            tracing::debug!(ems, ri, "Token Binding: not negotiated without extended master secret and renegotiation indication (RFC 8472 §4)");
            None
        }
        None => None,
    };
    let out = chosen.map_or_else(Vec::new, |p| vec![VERSION[0], VERSION[1], 1, p]);
    ssl.set_ex_data(
        index()?,
        Negotiation {
            chosen,
            out,
            ..Negotiation::default()
        },
    );
    Ok(())
}

/// Register extension 24 on a context: the server answers the client's offer with the choice
/// [`server_choose`] made; the client sends its offer and checks the answer.
pub(crate) fn register(builder: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    let context = openssl_sys::SSL_EXT_CLIENT_HELLO
        | openssl_sys::SSL_EXT_TLS1_2_SERVER_HELLO
        | openssl_sys::SSL_EXT_TLS1_2_AND_BELOW_ONLY;
    // SAFETY: `builder` owns a valid SSL_CTX; the callbacks are `extern "C"` functions with
    // the signatures OpenSSL expects and take no argument pointers (null add/parse args).
    let rc = unsafe {
        openssl_sys::SSL_CTX_add_custom_ext(
            builder.as_ptr(),
            TOKEN_BINDING,
            context,
            Some(add_cb),
            None,
            std::ptr::null_mut(),
            Some(parse_cb),
            std::ptr::null_mut(),
        )
    };
    if rc == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// The connection's negotiation record, if any.
fn negotiation<'a>(ssl: *mut openssl_sys::SSL) -> Option<&'a mut Negotiation> {
    let index = index().ok()?;
    // SAFETY: OpenSSL passes the callback a valid SSL for the duration of the call; the
    // returned reference does not outlive the callback that asked for it.
    let ssl = unsafe { SslRef::from_ptr_mut(ssl) };
    ssl.ex_data_mut(index)
}

unsafe extern "C" fn add_cb(
    ssl: *mut openssl_sys::SSL,
    _ext_type: c_uint,
    context: c_uint,
    out: *mut *const c_uchar,
    outlen: *mut usize,
    _x: *mut openssl_sys::X509,
    _chainidx: usize,
    _al: *mut c_int,
    _add_arg: *mut c_void,
) -> c_int {
    let Some(n) = negotiation(ssl) else {
        return 0; // nothing to send
    };
    if context & openssl_sys::SSL_EXT_CLIENT_HELLO != 0 {
        if n.offered.is_empty() {
            return 0;
        }
        let Ok(count) = u8::try_from(n.offered.len()) else {
            return 0;
        };
        n.out = vec![VERSION[0], VERSION[1], count];
        n.out.extend_from_slice(&n.offered);
    } else if n.chosen.is_none() || n.out.is_empty() {
        return 0; // server: Token Binding not negotiated, no extension in ServerHello
    }
    // SAFETY: `out`/`outlen` are valid out-pointers from OpenSSL; `n.out` lives in the SSL's
    // ex_data and is not touched again before OpenSSL copies it into the handshake message.
    unsafe {
        *out = n.out.as_ptr();
        *outlen = n.out.len();
    }
    1
}

unsafe extern "C" fn parse_cb(
    ssl: *mut openssl_sys::SSL,
    _ext_type: c_uint,
    context: c_uint,
    input: *const c_uchar,
    inlen: usize,
    _x: *mut openssl_sys::X509,
    _chainidx: usize,
    al: *mut c_int,
    _parse_arg: *mut c_void,
) -> c_int {
    if context & openssl_sys::SSL_EXT_TLS1_2_SERVER_HELLO == 0 {
        return 1; // server side: the ClientHello callback already decided
    }
    let data: &[u8] = if input.is_null() || inlen == 0 {
        &[]
    } else {
        // SAFETY: OpenSSL passes `inlen` readable bytes at `input` for the call's duration.
        unsafe { std::slice::from_raw_parts(input, inlen) }
    };
    let Some(n) = negotiation(ssl) else {
        // SAFETY: `al` is a valid out-pointer from OpenSSL.
        unsafe { *al = ALERT_UNSUPPORTED_EXTENSION };
        return 0;
    };
    match client_check(&n.offered, data) {
        Ok(chosen) => {
            n.chosen = chosen;
            1
        }
        Err(why) => {
            n.refused = Some(why);
            // SAFETY: `al` is a valid out-pointer from OpenSSL.
            unsafe { *al = ALERT_UNSUPPORTED_EXTENSION };
            0
        }
    }
}

/// Client: RFC 8472 §4's checks of the server's answer. `Ok(None)`: a lower version than
/// ours, continue without Token Binding.
pub(crate) fn client_check(offered: &[u8], data: &[u8]) -> Result<Option<u8>, &'static str> {
    if offered.is_empty() {
        return Err("the server sent token_binding although the client did not offer it");
    }
    let [major, minor, 1, param] = data else {
        return Err("the server's token_binding must name exactly one key parameter");
    };
    if [*major, *minor] > VERSION {
        return Err("the server chose a higher Token Binding version than offered");
    }
    if !offered.contains(param) {
        return Err("the server chose key parameters the client did not offer");
    }
    if [*major, *minor] < VERSION {
        return Ok(None);
    }
    Ok(Some(*param))
}

/// After the handshake: were extended master secret and renegotiation indication negotiated
/// (the client cannot tell while parsing ServerHello; both sides check again here)?
pub(crate) fn ems_and_ri(ssl: &SslRef) -> bool {
    // SAFETY: `ssl` is a valid SSL after its handshake; both calls only read flags.
    unsafe {
        openssl_sys::SSL_get_extms_support(ssl.as_ptr()) == 1
            && openssl_sys::SSL_ctrl(
                ssl.as_ptr(),
                SSL_CTRL_GET_RI_SUPPORT,
                0,
                std::ptr::null_mut(),
            ) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::client_check;

    #[test]
    fn rfc8472_4_client_checks_the_servers_choice() {
        assert_eq!(client_check(&[2, 1], &[1, 0, 1, 2]), Ok(Some(2)));
        assert!(client_check(&[], &[1, 0, 1, 2]).is_err());
        assert!(client_check(&[2], &[1, 0, 2, 2, 1]).is_err());
        assert!(client_check(&[2], &[1, 1, 1, 2]).is_err());
        assert!(client_check(&[2], &[1, 0, 1, 0]).is_err());
        assert_eq!(client_check(&[2], &[0, 13, 1, 2]), Ok(None));
    }
}
