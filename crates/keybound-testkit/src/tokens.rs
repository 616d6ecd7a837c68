//! Key-bound ID Tokens as an OP issues them, for consuming-component tests and benchmarks
//! that need one without running the OP.

use keybound_jose::{Algorithm, PrivateKey};
use keybound_proto::idtoken::{Audience, IdTokenBuilder};
use keybound_proto::keybinding::Profile;

/// The `kid` the OP key of [`bound_id_token`] signs under (`JwkSet::signing_key(op, OP_KID)`).
pub const OP_KID: &str = "op-1";

/// A key-bound ID Token (`typ: dpop+id_token`, `cnf.jwk` = `client`'s public key) for `sub`
/// `alice` and audience `aud`, issued by `iss` at `now` for `ttl` seconds, signed ES256 by `op`
/// under [`OP_KID`]. `extra` may change the builder (nonce, claims) before signing.
pub fn bound_id_token_with(
    op: &PrivateKey,
    client: &PrivateKey,
    iss: &str,
    aud: &str,
    now: u64,
    ttl: u64,
    extra: impl FnOnce(IdTokenBuilder) -> IdTokenBuilder,
) -> String {
    let b = IdTokenBuilder::new(iss, "alice", Audience::from(aud), now, ttl)
        .bind(Profile::KeyBinding, client.public_jwk());
    extra(b)
        .sign(op, Algorithm::ES256, Some(OP_KID))
        .expect("ES256 signing with a test key")
}

/// [`bound_id_token_with`] without changes.
pub fn bound_id_token(
    op: &PrivateKey,
    client: &PrivateKey,
    iss: &str,
    aud: &str,
    now: u64,
    ttl: u64,
) -> String {
    bound_id_token_with(op, client, iss, aud, now, ttl, |b| b)
}
