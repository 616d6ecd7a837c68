//! The key-encryption key that seals signing keys at rest (AES-256-GCM).
//!
//! It is kept outside the database — in a 0600 file in the data directory, or in the
//! `KEYBOUND_KEK` environment variable (base64url of 32 bytes) — so a copied database alone
//! does not reveal the OP's signing keys.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::StoreError;

/// Environment variable that supplies the key-encryption key.
pub const KEK_ENV: &str = "KEYBOUND_KEK";
/// File name of the key-encryption key inside the data directory.
pub const KEK_FILE: &str = "kek.key";

/// A 256-bit key-encryption key.
pub struct Kek {
    key: LessSafeKey,
    mac: crate::SecretMac,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::Kek(format!("expected 32 bytes, got {}", bytes.len())))?;
        Ok(Kek {
            key: LessSafeKey::new(unbound),
            mac: crate::SecretMac::derive(bytes),
        })
    }

    /// A fresh random key (for tests and the in-memory store).
    pub fn generate() -> Result<(Self, Zeroizing<[u8; 32]>), StoreError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(raw.as_mut())
            .map_err(|_| StoreError::Kek("random number generator failed".into()))?;
        Ok((Self::from_bytes(raw.as_ref())?, raw))
    }

    /// From `value` of [`KEK_ENV`] (base64url, 32 bytes).
    pub fn from_b64(value: &str) -> Result<Self, StoreError> {
        let raw = Zeroizing::new(
            keybound_jose::b64::decode(value.trim())
                .map_err(|e| StoreError::Kek(format!("{KEK_ENV}: {e}")))?,
        );
        Self::from_bytes(&raw)
    }

    /// The KEK from [`KEK_ENV`] if set, else from `data_dir/kek.key`, creating that file with
    /// mode 0600 on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, StoreError> {
        if let Ok(v) = std::env::var(KEK_ENV) {
            return Self::from_b64(&v);
        }
        let path = data_dir.join(KEK_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_permissions(&path)?;
                Self::from_b64(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (_, raw) = Self::generate()?;
                let text = Zeroizing::new(keybound_jose::b64::encode(raw.as_ref()));
                // another node may have written its own first: that one is the KEK
                let text = create_private_once(&path, &text)?;
                Self::from_b64(&text)
            }
            Err(e) => Err(StoreError::Kek(format!("{}: {e}", path.display()))),
        }
    }

    /// The key verified client secrets are remembered under (derived from this key, so the
    /// same on every node that shares it).
    pub fn secret_mac(&self) -> &crate::SecretMac {
        &self.mac
    }

    /// Seal `plaintext`, binding it to `aad` (the key id): `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("random number generator failed".into()))?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| StoreError::Crypto("seal failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Open what [`Kek::seal`] produced for the same `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StoreError::Crypto("sealed key too short".into()));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Crypto("bad nonce".into()))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| {
                StoreError::Crypto(
                    "cannot open a sealed signing key: wrong key-encryption key or corrupted row"
                        .into(),
                )
            })?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

/// Create the owner-only file `path` with `text` unless it exists, atomically; the file's
/// text either way. Several nodes may start at once on one data directory: each writes a
/// private file under a unique name and links it into place, which fails if another node's file
/// got there first; then that (complete) file wins.
pub fn create_private_once(path: &Path, text: &str) -> Result<Zeroizing<String>, StoreError> {
    let failed = |e: std::io::Error| StoreError::Kek(format!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}",
        std::process::id(),
        keybound_jose::random_b64(8)
    ));
    write_private(&tmp, text.as_bytes())?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Zeroizing::new(
            std::fs::read_to_string(path).map_err(failed)?,
        )),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::Kek(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::Kek(format!("{}: {e}", path.display())))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    std::fs::write(path, bytes).map_err(|e| StoreError::Kek(format!("{}: {e}", path.display())))
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| StoreError::Kek(format!("{}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(StoreError::Kek(format!(
            "{} is readable by others (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), StoreError> {
    Ok(())
}
