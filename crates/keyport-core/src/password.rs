//! Passwords: the policy a new password must meet, and argon2id hashing on a
//! bounded pool off the async runtime.
//!
//! Hashing is deliberately slow (~18 ms at OWASP parameters), so it never
//! runs on a runtime worker: a semaphore with one permit per core admits
//! hashes to a few dedicated hashing threads, callers wait a bounded time for a permit,
//! and past a bounded queue they fail fast with [`Error::Overloaded`]. A
//! sign-in flood therefore cannot starve session checks.

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use unicode_normalization::UnicodeNormalization;

use crate::{
    common_passwords,
    email::Email,
    error::{Error, Result},
    hash_pool::HashPool,
    observe,
};

/// Rules a new password must meet. No composition rules (NIST 800-63B
/// 3.1.1.2): length bounds, not a common password, not the owner's email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (after NFKC) a new password may have.
    pub min_length: usize,
    /// Most characters a password may have; bounds the hashing cost of abuse.
    pub max_length: usize,
    /// Refuse the passwords of [`crate::common_passwords`], without case.
    pub refuse_common: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 8, max_length: 256, refuse_common: true }
    }
}

/// Shortest email local part a password may not contain; a shorter one
/// (`jo@...`) would refuse too many good passwords, so it is only refused
/// as the whole password.
const MIN_LOCAL_PART_CONTAINED: usize = 3;

/// A password after NFKC normalisation; never printed.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl PasswordPolicy {
    /// Checks a password being set (sign-up, change) for the account of
    /// `owner`: length bounds apply, and it may not be a common password nor
    /// be or contain the email (its local part, from three characters).
    pub fn new_password(&self, field: &'static str, raw: &str, owner: &Email) -> Result<Password> {
        let password = self.normalise(field, raw)?;
        if password.0.chars().count() < self.min_length {
            return Err(Error::WeakPassword { min_length: self.min_length });
        }
        let folded = password.0.to_lowercase();
        let email = owner.as_str().to_lowercase();
        let local = email.rsplit_once('@').map_or(email.as_str(), |(local, _)| local);
        if folded == email
            || folded == local
            || (local.chars().count() >= MIN_LOCAL_PART_CONTAINED && folded.contains(local))
        {
            return Err(Error::PasswordContainsEmail);
        }
        if self.refuse_common && common_passwords::is_listed(&folded) {
            return Err(Error::PasswordTooCommon);
        }
        Ok(password)
    }

    /// Checks a password being presented (sign-in, confirmation). Only
    /// emptiness and the upper bound are checked: the minimum may have risen
    /// since the password was set.
    pub fn presented_password(&self, field: &'static str, raw: &str) -> Result<Password> {
        self.normalise(field, raw)
    }

    fn normalise(&self, field: &'static str, raw: &str) -> Result<Password> {
        if raw.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        // Bound the input before normalising: NFKC can expand text up to 18x.
        if raw.chars().count() > self.max_length {
            return Err(Error::PasswordTooLong { max_length: self.max_length });
        }
        let normalised: String = raw.nfkc().collect();
        if normalised.chars().count() > self.max_length {
            return Err(Error::PasswordTooLong { max_length: self.max_length });
        }
        Ok(Password(normalised))
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// How the hashing pool admits work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes that run at once; one per core by default.
    pub workers: usize,
    /// Callers allowed to wait for a worker; more fail at once.
    pub max_queue: usize,
    /// Longest a caller waits for a worker before failing.
    pub max_wait: Duration,
}

impl Default for HashingLimits {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Self { workers, max_queue: 64 * workers, max_wait: Duration::from_secs(2) }
    }
}

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password matches; `rehash` holds a new hash when the stored one
    /// used other parameters than the current ones.
    Match {
        /// Replacement hash at the current parameters, if one is due.
        rehash: Option<String>,
    },
    /// The password does not match (or there was no account).
    Mismatch,
}

/// Hashes and verifies passwords with argon2id on a bounded pool.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon: Argon2<'static>,
    pool: HashPool,
    params: HashParams,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: HashingLimits,
    /// A real hash of a random password, verified when the account does not
    /// exist so that an unknown email costs what a wrong password costs.
    decoy: String,
}

impl PasswordHasher {
    /// A hasher with the given cost and admission limits.
    pub fn new(params: HashParams, limits: HashingLimits) -> Result<Self> {
        let argon = argon2(params)?;
        let mut decoy_password = [0u8; 32];
        getrandom::fill(&mut decoy_password).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        // Through the allocating API on purpose: the calling thread is not a
        // hashing thread and should not keep 19 MiB of working memory.
        let decoy =
            password_hash::PasswordHasher::hash_password(&argon, &decoy_password, &SaltString::generate(&mut OsRng))
                .map(|hash| hash.to_string())
                .map_err(|e| Error::Internal(format!("hashing: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                argon,
                pool: HashPool::new(limits.workers)?,
                params,
                permits: Arc::new(Semaphore::new(limits.workers.max(1))),
                waiting: AtomicUsize::new(0),
                limits,
                decoy,
            }),
        })
    }

    /// Hashes and verifications running on the pool's threads right now.
    pub fn running(&self) -> usize {
        self.inner.limits.workers.max(1).saturating_sub(self.inner.permits.available_permits())
    }

    /// Callers waiting for a hashing thread right now.
    pub fn queued(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String> {
        let inner = Arc::clone(&self.inner);
        self.run(move || hash_with(&inner.argon, password.0.as_bytes())).await
    }

    /// Verifies `password` against `stored`, or against a decoy when there is
    /// no stored hash (unknown account), so both cases take the same time.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<Verification> {
        let inner = Arc::clone(&self.inner);
        self.run(move || {
            let exists = stored.is_some();
            let phc = stored.as_deref().unwrap_or(&inner.decoy);
            let parsed = PasswordHash::new(phc).map_err(|e| Error::Internal(format!("stored hash: {e}")))?;
            let matches = verify_with(&parsed, password.0.as_bytes())?;
            if !(exists && matches) {
                return Ok(Verification::Mismatch);
            }
            let rehash = if uses_params(&parsed, inner.params) {
                None
            } else {
                Some(hash_with(&inner.argon, password.0.as_bytes())?)
            };
            Ok(Verification::Match { rehash })
        })
        .await
    }

    /// Runs `work` on a hashing thread once a permit is free.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        // A duration for a histogram, on tokio's clock like the wait itself.
        let asked = tokio::time::Instant::now();
        let Some(permit) = self.admit().await else {
            observe::hashing_rejected();
            tracing::warn!("password hashing pool saturated");
            return Err(Error::Overloaded);
        };
        observe::hashing_waited(asked.elapsed());
        self.inner.pool.run(permit, work).await
    }

    /// A permit to hash: at once if one is free, else after a bounded wait
    /// in a bounded queue; `None` when the queue is full or the wait ran out.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let inner = &self.inner;
        if let Ok(permit) = Arc::clone(&inner.permits).try_acquire_owned() {
            return Some(permit);
        }
        // Leaves the queue however this future ends, cancellation included.
        let _place = QueuePlace::take(&inner.waiting, inner.limits.max_queue)?;
        let acquire = Arc::clone(&inner.permits).acquire_owned();
        tokio::time::timeout(inner.limits.max_wait, acquire).await.ok()?.ok()
    }
}

/// A caller's place in the queue for a hashing permit, given back on drop.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(waiting: &'a AtomicUsize, max_queue: usize) -> Option<Self> {
        waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_queue).then_some(n + 1)).ok()?;
        Some(Self(waiting))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn argon2(params: HashParams) -> Result<Argon2<'static>> {
    let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

thread_local! {
    /// This thread's argon2 working memory, reused from hash to hash. A fresh
    /// 19 MiB allocation per hash made glibc's heap grow by about that much
    /// per sign-up (its mmap threshold adapts upwards after the first free).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2 into `out` with this thread's reusable working memory.
fn argon2_into(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> password_hash::Result<()> {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = argon.params().block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]).map_err(Into::into)
    })
}

/// A new PHC string for `password`: what `PasswordHasher::hash_password`
/// builds, with the memory reused.
fn hash_with(argon: &Argon2<'static>, password: &[u8]) -> Result<String> {
    let failed = |e: password_hash::Error| Error::Internal(format!("hashing: {e}"));
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buffer).map_err(failed)?;
    let output_len = argon.params().output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(output_len, |out| argon2_into(argon, password, salt_bytes, out)).map_err(failed)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the stored hash, under the stored hash's own
/// algorithm and parameters; the comparison is constant-time (`Output`'s `==`).
fn verify_with(stored: &PasswordHash<'_>, password: &[u8]) -> Result<bool> {
    let invalid = |e: password_hash::Error| Error::Internal(format!("stored hash: {e}"));
    let algorithm = Algorithm::try_from(stored.algorithm).map_err(invalid)?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| Error::Internal(format!("stored hash version: {e}")))?
        .unwrap_or_default();
    let params = Params::try_from(stored).map_err(invalid)?;
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return Err(Error::Internal("stored hash lacks a salt or a hash".into()));
    };
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer).map_err(invalid)?;
    let argon = Argon2::new(algorithm, version, params);
    let computed =
        Output::init_with(expected.len(), |out| argon2_into(&argon, password, salt_bytes, out)).map_err(invalid)?;
    Ok(computed == expected)
}

/// Whether a stored hash is argon2id with exactly the current parameters.
fn uses_params(hash: &PasswordHash<'_>, params: HashParams) -> bool {
    let Ok(stored) = Params::try_from(hash) else {
        return false;
    };
    hash.algorithm == Algorithm::Argon2id.ident()
        && hash.version == Some(Version::V0x13.into())
        && stored.m_cost() == params.memory_kib
        && stored.t_cost() == params.iterations
        && stored.p_cost() == params.parallelism
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    fn hasher(params: HashParams) -> PasswordHasher {
        PasswordHasher::new(params, HashingLimits::default()).unwrap()
    }

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    /// A new password for kate@example.com under the default policy.
    fn checked(raw: &str) -> Result<Password> {
        policy().new_password("p", raw, &Email::parse("email", "Kate.Smith@example.com")?)
    }

    #[test]
    fn common_passwords_and_the_email_are_refused() {
        for common in ["password1", "Password123", "QWERTYUIOP", "iloveyou2"] {
            assert!(matches!(checked(common), Err(Error::PasswordTooCommon)), "{common}");
        }
        for email in ["kate.smith@example.com", "KATE.SMITH", "my kate.smith pass", "xKate.Smith!"] {
            assert!(matches!(checked(email), Err(Error::PasswordContainsEmail)), "{email}");
        }
        assert!(checked("correct horse battery staple").is_ok());
        // Off by configuration: only the list goes, the email rule stays.
        let lenient = PasswordPolicy { refuse_common: false, ..policy() };
        let owner = Email::parse("email", "kate.smith@example.com").unwrap();
        assert!(lenient.new_password("p", "password1", &owner).is_ok());
        assert!(matches!(lenient.new_password("p", "kate.smith1", &owner), Err(Error::PasswordContainsEmail)));
        // A two-letter local part is refused only as the whole password.
        let jo = Email::parse("email", "jo@example.com").unwrap();
        assert!(policy().new_password("p", "jo horse battery", &jo).is_ok());
        assert!(matches!(policy().new_password("p", "jo@example.com", &jo), Err(Error::PasswordContainsEmail)));
    }

    #[test]
    fn policy_bounds_length_in_characters() {
        assert!(matches!(checked("short"), Err(Error::WeakPassword { min_length: 8 })));
        assert!(checked("eight ch").is_ok());
        assert!(checked(&"x".repeat(64)).is_ok());
        assert!(checked(&"é".repeat(256)).is_ok());
        assert!(matches!(checked(&"x".repeat(257)), Err(Error::PasswordTooLong { .. })));
        assert!(matches!(checked(""), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn presented_passwords_skip_the_minimum() {
        assert!(policy().presented_password("p", "short").is_ok());
        assert!(policy().presented_password("p", "").is_err());
        assert!(policy().presented_password("p", &"x".repeat(1_000_000)).is_err());
    }

    #[test]
    fn nfkc_expansion_cannot_bypass_the_maximum() {
        // U+FDFA expands to 18 characters under NFKC.
        let expanding = "\u{FDFA}".repeat(20);
        assert!(matches!(checked(&expanding), Err(Error::PasswordTooLong { .. })));
    }

    #[tokio::test]
    async fn equivalent_unicode_forms_verify() {
        let hasher = hasher(CHEAP);
        // "ﬁ" (U+FB01 ligature) is NFKC-equal to "fi".
        let stored = hasher.hash(checked("pro\u{FB01}le-secret").unwrap()).await.unwrap();
        let outcome =
            hasher.verify(policy().presented_password("p", "profile-secret").unwrap(), Some(stored)).await.unwrap();
        assert_eq!(outcome, Verification::Match { rehash: None });
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_and_verify() {
        let hasher = hasher(CHEAP);
        let stored = hasher.hash(checked("correct horse").unwrap()).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{stored}");
        let ok = hasher.verify(policy().presented_password("p", "correct horse").unwrap(), Some(stored.clone()));
        assert_eq!(ok.await.unwrap(), Verification::Match { rehash: None });
        let bad = hasher.verify(policy().presented_password("p", "wrong horse!").unwrap(), Some(stored));
        assert_eq!(bad.await.unwrap(), Verification::Mismatch);
    }

    #[test]
    fn hashes_interoperate_with_the_argon2_crate() {
        use password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let argon = argon2(CHEAP).unwrap();
        let ours = hash_with(&argon, b"correct horse").unwrap();
        assert!(argon.verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(argon.verify_password(b"wrong horse", &PasswordHash::new(&ours).unwrap()).is_err());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon.hash_password(b"correct horse", &salt).unwrap().to_string();
        assert!(verify_with(&PasswordHash::new(&theirs).unwrap(), b"correct horse").unwrap());
        assert!(!verify_with(&PasswordHash::new(&theirs).unwrap(), b"wrong horse").unwrap());
    }

    #[tokio::test]
    async fn unknown_accounts_never_match() {
        let hasher = hasher(CHEAP);
        let outcome = hasher.verify(policy().presented_password("p", "anything!").unwrap(), None);
        assert_eq!(outcome.await.unwrap(), Verification::Mismatch);
    }

    #[tokio::test]
    async fn changed_parameters_trigger_a_rehash() {
        let old = hasher(CHEAP).hash(checked("correct horse").unwrap()).await.unwrap();
        let stronger = HashParams { memory_kib: 128, ..CHEAP };
        let outcome = hasher(stronger)
            .verify(policy().presented_password("p", "correct horse").unwrap(), Some(old))
            .await
            .unwrap();
        let Verification::Match { rehash: Some(new) } = outcome else {
            panic!("expected a rehash, got {outcome:?}");
        };
        assert!(new.contains("m=128,t=1,p=1"), "{new}");
    }

    #[tokio::test]
    async fn a_full_queue_fails_fast() {
        let hasher =
            PasswordHasher::new(CHEAP, HashingLimits { workers: 1, max_queue: 0, max_wait: Duration::from_secs(5) })
                .unwrap();
        let held = hasher.inner.permits.acquire().await.unwrap();
        let result = hasher.hash(checked("correct horse").unwrap()).await;
        assert!(matches!(result, Err(Error::Overloaded)));
        drop(held);
        assert!(hasher.hash(checked("correct horse").unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn a_busy_pool_fails_after_the_bounded_wait() {
        let hasher = PasswordHasher::new(
            CHEAP,
            HashingLimits { workers: 1, max_queue: 10, max_wait: Duration::from_millis(20) },
        )
        .unwrap();
        let _held = hasher.inner.permits.acquire().await.unwrap();
        let result = hasher.hash(checked("correct horse").unwrap()).await;
        assert!(matches!(result, Err(Error::Overloaded)));
    }

    #[tokio::test]
    async fn cancelled_callers_give_their_queue_place_back() {
        let hasher =
            PasswordHasher::new(CHEAP, HashingLimits { workers: 1, max_queue: 4, max_wait: Duration::from_secs(60) })
                .unwrap();
        let held = hasher.inner.permits.acquire().await.unwrap();
        for _round in 0..3 {
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let hasher = hasher.clone();
                    tokio::spawn(async move { hasher.hash(checked("correct horse")?).await })
                })
                .collect();
            while hasher.inner.waiting.load(Ordering::Acquire) < 4 {
                tokio::task::yield_now().await;
            }
            for waiter in waiters {
                waiter.abort();
                let _ = waiter.await;
            }
            assert_eq!(hasher.inner.waiting.load(Ordering::Acquire), 0);
        }
        drop(held);
        assert!(hasher.hash(checked("correct horse").unwrap()).await.is_ok());
    }
}
