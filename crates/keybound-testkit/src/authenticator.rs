//! A software WebAuthn authenticator for tests: answers the OP's creation and request options
//! (WebAuthn JSON, as `PublicKeyCredential.parse…OptionsFromJSON` takes them) with what a
//! browser's `credential.toJSON()` would send — a `none` attestation on registration, an ES256
//! assertion on sign-in. It is honest where the OP must be strict (RP ID hash, origin in the
//! client data, flags, signature counter) and every one of those can be made wrong on purpose.
//! Browser tests use Chromium's virtual authenticator instead; this one lets the provider's
//! rules be tested without a browser.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use ciborium::Value as Cbor;
use serde_json::{json, Value};

/// Authenticator data flags (WebAuthn §6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

/// One credential the authenticator holds.
#[derive(Clone)]
struct Credential {
    id: Vec<u8>,
    pkcs8: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
    counter: u32,
}

/// A software authenticator with resident (discoverable) credentials.
#[derive(Clone)]
pub struct SoftAuthenticator {
    credentials: Vec<Credential>,
    /// the page's origin, as the browser puts it into the client data
    pub origin: String,
    /// whether it verifies the user (PIN, biometric): the UV flag
    pub user_verified: bool,
    /// how much the signature counter moves per signature (0: it keeps none)
    pub counter_step: u32,
}

impl std::fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("origin", &self.origin)
            .field("credentials", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    keybound_jose::b64::encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    keybound_jose::b64::decode(v.as_str().expect("a base64url string")).expect("base64url")
}

fn cbor(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("CBOR encodes");
    out
}

impl SoftAuthenticator {
    /// An authenticator used from pages of `origin`, verifying the user, counting by 1.
    pub fn new(origin: &str) -> Self {
        SoftAuthenticator {
            credentials: Vec::new(),
            origin: origin.to_owned(),
            user_verified: true,
            counter_step: 1,
        }
    }

    /// How many credentials it holds.
    pub fn len(&self) -> usize {
        self.credentials.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Move every credential to another RP ID: what a credential made for another site (a
    /// phishing page's) would sign.
    pub fn retarget(&mut self, rp_id: &str) {
        for c in &mut self.credentials {
            rp_id.clone_into(&mut c.rp_id);
        }
    }

    fn flags(&self) -> u8 {
        if self.user_verified {
            UP | UV
        } else {
            UP
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create` for `options` (the `publicKey` member): a new resident
    /// credential, answered as `toJSON()` would.
    ///
    /// # Panics
    /// When the options lack what WebAuthn requires (a test's mistake).
    pub fn create(&mut self, options: &Value) -> Value {
        let rp_id = options["rp"]["id"].as_str().expect("rp.id").to_owned();
        let user_handle = unb64(&options["user"]["id"]);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("key generation")
            .as_ref()
            .to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).expect("key");
        let point = key.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let id = keybound_jose::sha256(&pkcs8)[..16].to_vec();
        let cose = cbor(&Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (Cbor::Integer((-2).into()), Cbor::Bytes(x.to_vec())),
            (Cbor::Integer((-3).into()), Cbor::Bytes(y.to_vec())),
        ]));
        let mut auth_data = keybound_jose::sha256(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags() | AT);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&u16::try_from(id.len()).expect("short id").to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose);
        let attestation = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]));
        let challenge = options["challenge"].as_str().expect("challenge");
        let client_data = self.client_data("webauthn.create", challenge);
        self.credentials.push(Credential {
            id: id.clone(),
            pkcs8,
            rp_id,
            user_handle,
            counter: 0,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {"credProps": {"rk": true}},
        })
    }

    /// `navigator.credentials.get` for `options`: an assertion by the first credential for the
    /// options' RP ID (`rpId`, or `rp_id` when the options name none) that the options allow
    /// (any, for a discoverable request). `None`: it holds no such credential.
    pub fn get(&mut self, options: &Value, rp_id: &str) -> Option<Value> {
        let rp_id = options["rpId"].as_str().unwrap_or(rp_id).to_owned();
        let allowed: Vec<Vec<u8>> = options["allowCredentials"]
            .as_array()
            .map(|a| a.iter().map(|c| unb64(&c["id"])).collect())
            .unwrap_or_default();
        let flags = self.flags();
        let step = self.counter_step;
        let challenge = options["challenge"].as_str().expect("challenge").to_owned();
        let client_data = self.client_data("webauthn.get", &challenge);
        let cred = self
            .credentials
            .iter_mut()
            .find(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))?;
        cred.counter += step;
        let mut auth_data = keybound_jose::sha256(rp_id.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&cred.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&keybound_jose::sha256(&client_data));
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &cred.pkcs8).expect("key");
        let sig = key.sign(&SystemRandom::new(), &signed).expect("signature");
        Some(json!({
            "id": b64(&cred.id),
            "rawId": b64(&cred.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(sig.as_ref()),
                "userHandle": b64(&cred.user_handle),
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }))
    }
}
