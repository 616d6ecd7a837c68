//! The store conformance suite (keybound-testkit) against the in-memory reference backend,
//! and the key-encryption key file.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use keybound_store::{Kek, MemoryStore, Store};
use zeroize::Zeroizing;

#[allow(clippy::unused_async)] // the shape every backend constructor has
async fn memory() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

keybound_testkit::store_conformance!(memory);

#[test]
fn kek_file_is_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Kek::load_or_create(dir.path()).unwrap();
    let sealed = a.seal("kid", b"secret").unwrap();
    let b = Kek::load_or_create(dir.path()).unwrap();
    assert_eq!(*b.open("kid", &sealed).unwrap(), b"secret");
    assert!(
        b.open("other-kid", &sealed).is_err(),
        "sealed key is bound to its kid"
    );
    assert_eq!(format!("{b:?}"), "Kek(<redacted>)");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.path().join("kek.key");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Kek::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
    let _unused: Zeroizing<Vec<u8>> = Zeroizing::new(vec![]);
}
