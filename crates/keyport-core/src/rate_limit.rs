//! Throttling of failed sign-ins, per account and per client address.
//!
//! Each account and each address may fail a number of times; past it, each
//! further attempt must wait a delay that doubles with every failure (1 s,
//! 2 s, 4 s, ...) up to the window's length. No fixed lock: a user is
//! delayed at most one window after an attacker's last guess, and a steady
//! attacker gets about one guess per window once the delay is capped (96 a
//! day with the defaults; there is no hard stop at NIST 800-63B's 100
//! consecutive failures). Failures are forgotten once a key has
//! been idle for a window. Counted in memory on each replica. An attempt is
//! reserved when it is checked, before the password is hashed, and refunded
//! only when it succeeds: counting after the slow hash let a burst of
//! parallel guesses all pass the check before any was counted.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    clock::{Clock, Timestamp},
    error::Error,
};

/// Limits on failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failures an account may have before delays start.
    pub per_account: u32,
    /// Failures a client IP may have before delays start.
    pub per_ip: u32,
    /// The longest delay, and the idle time after which failures are forgotten.
    pub window: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self { per_account: 10, per_ip: 100, window: Duration::from_secs(15 * 60) }
    }
}

/// Most keys tracked at once; beyond it, finished windows are swept.
const MAX_KEYS: usize = 100_000;

/// Counts failed sign-ins and refuses attempts over the limits.
#[derive(Clone)]
pub struct SignInLimiter {
    limits: SignInLimits,
    clock: Arc<dyn Clock>,
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the key's run of failures began: an attempt's refund applies
    /// only within the run it was counted in.
    started: Timestamp,
    /// The latest attempt counted.
    last: Timestamp,
    attempts: u32,
    refused: u64,
}

/// The first delay past the free failures; each further failure doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);

impl Window {
    /// When the next attempt may come, given `limit` free failures.
    fn next_allowed(&self, limit: u32, longest: Duration) -> Timestamp {
        if self.attempts < limit {
            return self.last;
        }
        let doublings = (self.attempts - limit).min(30);
        let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(longest);
        self.last.saturating_add(delay)
    }
}

/// An attempt counted against the limits until [`SignInLimiter::succeeded`]
/// refunds it. Dropping it leaves it counted: a cancelled guess is a guess.
#[derive(Debug)]
#[must_use = "an attempt stays counted as failed unless it is refunded"]
pub struct Attempt {
    /// Each key it was counted against, with the start of that key's window.
    counted: Vec<(String, Timestamp)>,
}

/// Why an attempt was refused, and whether to write it to the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// When the limiting window ends.
    pub retry_after: Duration,
    /// Refusals of this key in its window so far, this one included.
    pub refused: u64,
}

impl Refusal {
    /// Whether this refusal deserves an audit row: the 1st, 10th, 100th, ...
    /// of its window, so a flood writes a handful of rows, not one per try.
    pub fn is_milestone(&self) -> bool {
        let mut n = self.refused;
        while n >= 10 && n.is_multiple_of(10) {
            n /= 10;
        }
        n == 1
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Error::RateLimited { retry_after: refusal.retry_after }
    }
}

impl SignInLimiter {
    /// A limiter with `limits`, reading time from `clock`.
    pub fn new(limits: SignInLimits, clock: Arc<dyn Clock>) -> Self {
        Self { limits, clock, windows: Arc::default() }
    }

    /// Reserves an attempt for the account and the address, atomically with
    /// the check: refused when either has used up its failures.
    pub fn reserve(&self, account: &str, ip: Option<&str>) -> std::result::Result<Attempt, Refusal> {
        let now = self.clock.now();
        let window = self.limits.window;
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock must fail closed, not open.
            return Err(Refusal { retry_after: window, refused: 0 });
        };
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| now.duration_since(w.last) < window);
        }
        let account_key = account_key(account);
        let ip_key = ip.map(ip_key);
        let keys = std::iter::once((&account_key, self.limits.per_account))
            .chain(ip_key.as_ref().map(|key| (key, self.limits.per_ip)));
        let mut refusal: Option<Refusal> = None;
        for (key, limit) in keys.clone() {
            let current = current_window(&mut windows, key, now, window);
            let allowed_at = current.next_allowed(limit, window);
            if now < allowed_at {
                current.refused = current.refused.saturating_add(1);
                let retry_after = allowed_at.duration_since(now);
                let this = Refusal { retry_after, refused: current.refused };
                refusal = Some(match refusal {
                    Some(other) if other.retry_after >= this.retry_after => other,
                    _ => this,
                });
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        let mut counted = Vec::with_capacity(2);
        for (key, _) in keys {
            let current = current_window(&mut windows, key, now, window);
            current.attempts = current.attempts.saturating_add(1);
            current.last = now;
            counted.push((key.clone(), current.started));
        }
        Ok(Attempt { counted })
    }

    /// Refunds a successful attempt to the account and the address. Only
    /// this attempt: earlier failures stay counted, so a user's sign-in in
    /// the middle of someone's guessing does not hand them a fresh window.
    pub fn succeeded(&self, attempt: Attempt) {
        let Ok(mut windows) = self.windows.lock() else { return };
        for (key, started) in attempt.counted {
            if let Some(window) = windows.get_mut(&key)
                && window.started == started
            {
                window.attempts = window.attempts.saturating_sub(1);
            }
        }
    }
}

/// The key's run of failures at `now`, started afresh after `idle` without
/// attempts.
fn current_window<'a>(
    windows: &'a mut HashMap<String, Window>,
    key: &str,
    now: Timestamp,
    idle: Duration,
) -> &'a mut Window {
    let fresh = Window { started: now, last: now, attempts: 0, refused: 0 };
    let window = windows.entry(key.to_owned()).or_insert(fresh);
    if now.duration_since(window.last) >= idle {
        *window = fresh;
    }
    window
}

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

/// An IPv6 host usually holds a whole /64: count the network, as the
/// request budgets do, or one host gets 2^64 budgets.
fn ip_key(ip: &str) -> String {
    match crate::request_limit::network_of(ip) {
        Some(network) => format!("ip:{network}"),
        None => format!("ip:{ip}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::clock::ManualClock;

    fn limiter() -> (SignInLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        let limits = SignInLimits { per_account: 3, per_ip: 5, window: Duration::from_secs(60) };
        (SignInLimiter::new(limits, clock.clone()), clock)
    }

    #[test]
    fn past_its_free_failures_an_account_waits_a_doubling_delay() {
        let (limiter, clock) = limiter();
        for _ in 0..3 {
            let _failed = limiter.reserve("a@b.co", None).unwrap();
        }
        assert!(limiter.reserve("other@b.co", None).is_ok());
        // 1 s, then 2 s, 4 s, ... after each further failure.
        for delay in [1, 2, 4, 8, 16, 32] {
            let refusal = limiter.reserve("a@b.co", None).unwrap_err();
            assert_eq!(refusal.retry_after, Duration::from_secs(delay));
            clock.advance(Duration::from_secs(delay) - Duration::from_millis(1));
            assert!(limiter.reserve("a@b.co", None).is_err(), "not before {delay} s");
            clock.advance(Duration::from_millis(1));
            let _failed = limiter.reserve("a@b.co", None).unwrap();
        }
        // Capped at the window (60 s here), never a lock.
        assert_eq!(limiter.reserve("a@b.co", None).unwrap_err().retry_after, Duration::from_secs(60));
        clock.advance(Duration::from_secs(60));
        let _failed = limiter.reserve("a@b.co", None).unwrap();
        // A window without attempts forgets the failures.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            let _failed = limiter.reserve("a@b.co", None).unwrap();
        }
    }

    #[test]
    fn an_ipv6_network_is_one_address() {
        let (limiter, _) = limiter();
        for i in 0..5 {
            let _failed = limiter.reserve(&format!("user{i}@b.co"), Some(&format!("2001:db8:1:2::{i}"))).unwrap();
        }
        assert!(limiter.reserve("fresh@b.co", Some("2001:db8:1:2:ffff::1")).is_err());
        assert!(limiter.reserve("fresh@b.co", Some("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn address_is_limited_across_accounts() {
        let (limiter, _) = limiter();
        for i in 0..5 {
            let _failed = limiter.reserve(&format!("user{i}@b.co"), Some("10.0.0.1")).unwrap();
        }
        assert!(limiter.reserve("fresh@b.co", Some("10.0.0.1")).is_err());
        assert!(limiter.reserve("fresh@b.co", Some("10.0.0.2")).is_ok());
    }

    #[test]
    fn success_refunds_only_its_own_attempt() {
        let (limiter, _) = limiter();
        for _ in 0..2 {
            let _failed = limiter.reserve("a@b.co", Some("10.0.0.1")).unwrap();
        }
        for _ in 0..5 {
            let attempt = limiter.reserve("a@b.co", Some("10.0.0.1")).unwrap();
            limiter.succeeded(attempt);
        }
        // The two failures still count: one more reaches the limit of 3.
        let _failed = limiter.reserve("a@b.co", Some("10.0.0.1")).unwrap();
        assert!(limiter.reserve("a@b.co", Some("10.0.0.1")).is_err());
        // The address has 3 failures of its 5.
        let _failed = limiter.reserve("z@b.co", Some("10.0.0.1")).unwrap();
        let _failed = limiter.reserve("y@b.co", Some("10.0.0.1")).unwrap();
        assert!(limiter.reserve("x@b.co", Some("10.0.0.1")).is_err());
    }

    #[test]
    fn a_burst_of_parallel_attempts_gets_exactly_the_limit() {
        let (limiter, _) = limiter();
        let barrier = Barrier::new(32);
        let admitted = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..32)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        limiter.reserve("a@b.co", None).is_ok()
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).filter(|admitted| *admitted).count()
        });
        assert_eq!(admitted, 3);
    }

    #[test]
    fn refusals_are_counted_and_milestones_are_sparse() {
        let (limiter, _) = limiter();
        for _ in 0..3 {
            let _failed = limiter.reserve("a@b.co", None).unwrap();
        }
        let milestones: Vec<u64> = (0..1000)
            .filter_map(|_| limiter.reserve("a@b.co", None).err())
            .filter(Refusal::is_milestone)
            .map(|r| r.refused)
            .collect();
        assert_eq!(milestones, [1, 10, 100, 1000]);
    }
}
