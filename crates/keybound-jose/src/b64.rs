//! base64url without padding (RFC 7515 §2), strict on input.
//!
//! JOSE mandates unpadded base64url. Accepting padding or stray characters makes two encodings
//! of one token, which breaks hash-based bindings (`ath`, `c_s256`, thumbprints), so decoding
//! rejects `=`, any non-alphabet byte, impossible lengths and non-zero trailing bits.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use crate::Error;

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encode bytes as unpadded base64url.
pub fn encode(data: impl AsRef<[u8]>) -> String {
    STRICT.encode(data)
}

/// Decode unpadded base64url, rejecting padding and non-alphabet bytes.
pub fn decode(s: &str) -> Result<Vec<u8>, Error> {
    if s.contains('=') {
        return Err(Error::Base64Padding);
    }
    STRICT.decode(s).map_err(|e| Error::Base64(e.to_string()))
}

/// Decode into a fixed-size array, with a length error naming `member`.
pub fn decode_exact<const N: usize>(s: &str, member: &'static str) -> Result<[u8; N], Error> {
    let v = decode(s)?;
    <[u8; N]>::try_from(v.as_slice()).map_err(|_| Error::BadLength {
        member,
        expected: N,
        got: v.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_padding() {
        assert_eq!(encode(b"a"), "YQ");
        assert_eq!(decode("YQ").unwrap(), b"a");
    }

    #[test]
    fn rejects_padding() {
        assert_eq!(decode("YQ=="), Err(Error::Base64Padding));
    }

    #[test]
    fn rejects_non_alphabet() {
        assert!(matches!(decode("YQ+/"), Err(Error::Base64(_))));
        assert!(matches!(decode("Y Q"), Err(Error::Base64(_))));
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "YR" decodes to 'a' with non-zero trailing bits
        assert!(matches!(decode("YR"), Err(Error::Base64(_))));
    }

    #[test]
    fn rejects_impossible_length() {
        assert!(matches!(decode("Y"), Err(Error::Base64(_))));
    }
}
