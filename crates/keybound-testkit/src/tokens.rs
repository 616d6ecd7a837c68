//! Key-bound ID Tokens as an OP issues them, for consuming-component tests and benchmarks
//! that need one without running the OP.

use keybound_jose::{Algorithm, PrivateKey};
use keybound_proto::idtoken::{Audience, IdTokenBuilder};
use keybound_proto::keybinding::Profile;

/// The `kid` the OP key signs under (`JwkSet::signing_key(op, OP_KID)`).
pub const OP_KID: &str = "op-1";

/// A key-bound ID Token (`typ: dpop+id_token`, `cnf.jwk` = `client`'s public key) for `sub`
/// `alice`, signed ES256 by `op` under [`OP_KID`]. Change `iss` or `ttl` with struct update
/// syntax over [`BoundIdToken::new`].
#[derive(Debug, Clone, Copy)]
pub struct BoundIdToken<'a> {
    /// the OP's signing key
    pub op: &'a PrivateKey,
    /// the key the token is bound to
    pub client: &'a PrivateKey,
    /// `iss`
    pub iss: &'a str,
    /// `aud`
    pub aud: &'a str,
    /// `iat`
    pub now: u64,
    /// lifetime in seconds
    pub ttl: u64,
}

impl<'a> BoundIdToken<'a> {
    /// Issued by `https://op.example` to `aud` at `now`, valid 300 s.
    pub fn new(op: &'a PrivateKey, client: &'a PrivateKey, aud: &'a str, now: u64) -> Self {
        BoundIdToken {
            op,
            client,
            iss: "https://op.example",
            aud,
            now,
            ttl: 300,
        }
    }

    /// The signed token.
    pub fn sign(&self) -> String {
        self.sign_with(|b| b)
    }

    /// The signed token, after `extra` changed the builder (nonce, claims).
    pub fn sign_with(&self, extra: impl FnOnce(IdTokenBuilder) -> IdTokenBuilder) -> String {
        let b = IdTokenBuilder::new(
            self.iss,
            "alice",
            Audience::from(self.aud),
            self.now,
            self.ttl,
        )
        .bind(Profile::KeyBinding, self.client.public_jwk());
        extra(b)
            .sign(self.op, Algorithm::ES256, Some(OP_KID))
            .expect("ES256 signing with a test key")
    }
}
