//! Password and client-secret hashing: argon2id (RFC 9106) PHC strings, default parameters of
//! the `argon2` crate (19 MiB, t = 2, p = 1, OWASP's minimum).
//!
//! A verification costs tens of milliseconds of CPU on purpose, so the provider never runs one
//! on an async thread: [`HashPool`] runs them on `hash_concurrency` threads of its own; the rest wait for a turn without holding a thread, and a check
//! that waits longer than `hash_queue_wait` is refused as busy (429) instead of piling up.
//! Parallel sign-ins therefore cannot stall other requests (`/healthz`, token requests).

use argon2::password_hash::rand_core::{CryptoRng, Error as RandError, RngCore};
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::Argon2;

use crate::OpError;

/// aws-lc-rs randomness behind the `rand_core` traits the `password-hash` API wants.
struct AwsLcRng;

impl RngCore for AwsLcRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // Invariant: the OS RNG only fails without an entropy source, which aws-lc treats as
        // fatal too.
        self.try_fill_bytes(dest)
            .expect("operating system random number generator failed");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RandError> {
        use aws_lc_rs::rand::SecureRandom as _;
        aws_lc_rs::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| {
                RandError::from(
                    core::num::NonZeroU32::new(RandError::CUSTOM_START)
                        .unwrap_or(core::num::NonZeroU32::MIN),
                )
            })
    }
}

impl CryptoRng for AwsLcRng {}

/// Hash `secret` into an argon2id PHC string (in this thread's argon2 memory, as [`verify`]).
pub fn hash(secret: &str) -> String {
    let salt = SaltString::generate(&mut AwsLcRng);
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut salt_buf = [0u8; 64];
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    // Invariant: a generated salt decodes, and the default parameters with a buffer of their
    // own block count cannot fail.
    let raw = salt.decode_b64(&mut salt_buf).expect("a generated salt");
    argon2_in_thread_memory(&argon, params.block_count(), secret, raw, &mut out)
        .expect("argon2 with default parameters");
    PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params)
            .expect("default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).expect("a 32-byte output")),
    }
    .to_string()
}

/// Largest argon2 memory a stored hash may ask for (256 MiB): a corrupt or hostile PHC string
/// must not make a check allocate without bound.
const MAX_BLOCKS: u32 = 256 * 1024;

thread_local! {
    /// This thread's argon2 working memory, kept for the thread's life. Allocating and freeing
    /// 19 MiB per check makes glibc raise its mmap threshold and keep the freed blocks on its
    /// heaps, fragmenting them: 20 000 sign-in attempts grew a server to 250 MB (measured);
    /// one buffer per hashing thread keeps it at `hash_concurrency` × 19 MiB.
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// argon2 of `secret` with `salt` into `out`, in this thread's working memory ([`MEMORY`],
/// grown to `blocks` when smaller).
fn argon2_in_thread_memory(
    argon: &Argon2<'_>,
    blocks: usize,
    secret: &str,
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        argon.hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut memory[..blocks])
    })
}

/// Whether `secret` matches the argon2 PHC string `hash`; the outputs are compared in constant
/// time. A hash this build cannot read (other algorithm, absurd parameters) never matches.
pub fn verify(hash: &str, secret: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(h.algorithm),
        argon2::Params::try_from(&h),
    ) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    if params.m_cost() > MAX_BLOCKS {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    let computed = argon2_in_thread_memory(&argon, blocks, secret, salt, &mut out);
    computed.is_ok() && keybound_jose::ct_eq(&out, expected.as_bytes())
}

/// Every hashing thread is taken and the wait for one ran out.
fn busy() -> OpError {
    OpError::Throttled {
        description: "too many secrets are being checked right now; try again".into(),
        retry_after: 1,
    }
}

/// A verification job for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Verifies secrets on its own `concurrency` threads (started at first use), one at a time
/// each. Dedicated threads rather than tokio's blocking pool: each argon2 run allocates 19 MiB,
/// and the allocator keeps a freed block per thread, so a pool of hundreds of short-lived
/// blocking threads grew the process by hundreds of MB under a sign-in flood (measured: 384 MB
/// peak RSS); with a fixed set the memory is bounded by `concurrency` × 19 MiB.
pub(crate) struct HashPool {
    turns: tokio::sync::Semaphore,
    wait: std::time::Duration,
    threads: usize,
    jobs: std::sync::OnceLock<std::sync::mpsc::Sender<Job>>,
    /// verifications run so far
    runs: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl HashPool {
    pub(crate) fn new(concurrency: usize, wait_secs: u64) -> Self {
        HashPool {
            turns: tokio::sync::Semaphore::new(concurrency.max(1)),
            wait: std::time::Duration::from_secs(wait_secs),
            threads: concurrency.max(1),
            jobs: std::sync::OnceLock::new(),
            runs: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The job queue, starting the threads on first use. They end when the pool is dropped
    /// (the sender goes, `recv` fails).
    fn jobs(&self) -> Result<&std::sync::mpsc::Sender<Job>, OpError> {
        if let Some(tx) = self.jobs.get() {
            return Ok(tx);
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..self.threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("keybound-hash-{i}"))
                .spawn(move || loop {
                    let job = rx
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    match job {
                        // a panicking job loses its answer (the caller sees an internal
                        // error), not the thread
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                })
                .map_err(|e| OpError::internal(format!("starting a hashing thread: {e}")))?;
        }
        // two first callers may race: the loser's threads end at once with its sender
        Ok(self.jobs.get_or_init(|| tx))
    }

    /// Verifications run so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`verify`] on a hashing thread when a turn is free.
    pub(crate) async fn verify(&self, hash: &str, secret: &str) -> Result<bool, OpError> {
        let _turn = tokio::time::timeout(self.wait, self.turns.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hash = hash.to_owned();
        let secret = zeroize::Zeroizing::new(secret.to_owned());
        self.run(move || verify(&hash, &secret)).await
    }

    /// [`hash`] on a hashing thread when a turn is free (a new client's secret).
    pub(crate) async fn hash(&self, secret: &str) -> Result<String, OpError> {
        let _turn = tokio::time::timeout(self.wait, self.turns.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let secret = zeroize::Zeroizing::new(secret.to_owned());
        self.run(move || hash(&secret)).await
    }

    /// `job` on a hashing thread (the caller holds a turn).
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OpError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs()?
            .send(Box::new(move || {
                let _ = done.send(job());
            }))
            .map_err(|_| OpError::internal("the hashing threads are gone"))?;
        answer
            .await
            .map_err(|_| OpError::internal("a hashing job failed inside its thread"))
    }
}

/// argon2id of a random, discarded password: verifying against it always fails but costs what
/// a real verification does, so a login for an unknown username takes as long as a wrong
/// password.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$0Bq0cF6OIsCz7Y8q9mCz3Yq2bO0d1A3Vb6b7m2mWl1c";

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
    use argon2::Argon2;

    /// Our verification agrees with the argon2 crate's own, both ways, including a non-default
    /// parameter set, and refuses what does not match or cannot be read.
    #[test]
    fn verify_agrees_with_the_argon2_crate() {
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap_or_else(|_| unreachable!());
        let theirs = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap_or_else(|_| unreachable!())
            .to_string();
        assert!(super::verify(&theirs, "pw"));
        assert!(!super::verify(&theirs, "pw2"));
        let small = argon2::Params::new(1024, 1, 1, Some(16)).unwrap_or_else(|_| unreachable!());
        let other = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, small)
            .hash_password(b"pw", &salt)
            .unwrap_or_else(|_| unreachable!())
            .to_string();
        assert!(super::verify(&other, "pw"));
        assert!(!super::verify(&other, "px"));
        let ours = super::hash("secret");
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = argon2::PasswordHash::new(&ours).unwrap_or_else(|_| unreachable!());
        assert!(Argon2::default()
            .verify_password(b"secret", &parsed)
            .is_ok());
        assert!(super::verify(&ours, "secret"));
        for bad in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
            "not a hash",
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!super::verify(bad, "secret"), "{bad}");
        }
    }
}
