//! Throttling of failed sign-ins, per account and per client address.
//!
//! Each account and each address may fail a number of times; past it, each
//! further attempt must wait a delay that doubles with every failure (1 s,
//! 2 s, 4 s, ...) up to the window's length. No fixed lock: a user is
//! delayed at most one window after an attacker's last guess, and a steady
//! attacker gets about one guess per window once the delay is capped (96 a
//! day with the defaults; there is no hard stop at NIST 800-63B's 100
//! consecutive failures). Failures are forgotten once a key has been idle
//! for a window. An attempt is reserved when it is checked, before the
//! password is hashed, and refunded only when it succeeds: counting after
//! the slow hash let a burst of parallel guesses all pass the check before
//! any was counted.

use std::time::Duration;

use super::CounterKey;
use crate::{clock::Timestamp, error::Error};

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

/// One key's run of failures: a row of the shared counter table, or an
/// entry of this process's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRun {
    /// When the run began: an attempt's refund applies only within the run
    /// it was counted in.
    pub started: Timestamp,
    /// The latest attempt counted.
    pub last: Timestamp,
    /// Attempts counted and not refunded.
    pub attempts: u32,
    /// Attempts refused in this run.
    pub refused: u64,
}

/// The first delay past the free failures; each further failure doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);

impl FailureRun {
    /// A run with nothing counted yet.
    pub fn fresh(now: Timestamp) -> Self {
        Self { started: now, last: now, attempts: 0, refused: 0 }
    }

    /// This run at `now`, or a fresh one after `idle` without attempts.
    pub fn at(self, now: Timestamp, idle: Duration) -> Self {
        if now.duration_since(self.last) >= idle { Self::fresh(now) } else { self }
    }

    /// When the next attempt may come, given `limit` free failures. A free
    /// failure may come at any time, even "before" the last one: replicas'
    /// clocks differ by a little.
    fn next_allowed(&self, limit: u32, longest: Duration) -> Timestamp {
        if self.attempts < limit {
            return Timestamp::from_unix_millis(i64::MIN);
        }
        let doublings = (self.attempts - limit).min(30);
        let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(longest);
        self.last.saturating_add(delay)
    }
}

/// Checks `runs` (each taken [`FailureRun::at`] `now`) against their free
/// failures, and counts one attempt in every run, or, when any run must
/// still wait, one refusal in those that must. Both counter stores decide
/// with this, on runs they hold locked.
pub fn reserve(runs: &mut [(FailureRun, u32)], now: Timestamp, longest: Duration) -> Result<(), Refusal> {
    let mut refusal: Option<Refusal> = None;
    for (run, limit) in runs.iter_mut() {
        let allowed_at = run.next_allowed(*limit, longest);
        if now < allowed_at {
            run.refused = run.refused.saturating_add(1);
            let this = Refusal { retry_after: allowed_at.duration_since(now), refused: run.refused };
            refusal = Some(match refusal {
                Some(other) if other.retry_after >= this.retry_after => other,
                _ => this,
            });
        }
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    for (run, _) in runs.iter_mut() {
        run.attempts = run.attempts.saturating_add(1);
        // A replica whose clock lags must not shorten the others' delays.
        run.last = run.last.max(now);
    }
    Ok(())
}

/// An attempt counted against the limits until it is refunded. Dropping it
/// leaves it counted: a cancelled guess is a guess.
#[derive(Debug)]
#[must_use = "an attempt stays counted as failed unless it is refunded"]
pub struct Attempt {
    /// Each key it was counted against, with the start of that key's run.
    pub counted: Vec<(CounterKey, Timestamp)>,
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

/// The counter of an account's failed sign-ins.
pub(crate) fn account_key(account: &str) -> CounterKey {
    CounterKey::new("failed_sign_in_account", account)
}

/// The counter of an address's failed sign-ins. An IPv6 host usually holds
/// a whole /64: count the network, as the request budgets do, or one host
/// gets 2^64 budgets.
pub(crate) fn address_key(ip: &str) -> CounterKey {
    match super::budget::network_of(ip) {
        Some(network) => CounterKey::new("failed_sign_in_ip", network),
        None => CounterKey::new("failed_sign_in_ip", ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_longest_wait_and_count_in_each_run_that_waits() {
        let now = Timestamp::from_unix_millis(1_000_000);
        let mut runs = [(FailureRun::fresh(now), 1), (FailureRun::fresh(now), 3)];
        reserve(&mut runs, now, Duration::from_secs(60)).unwrap();
        assert_eq!(runs.map(|(run, _)| run.attempts), [1, 1]);
        let refusal = reserve(&mut runs, now, Duration::from_secs(60)).unwrap_err();
        assert_eq!(refusal, Refusal { retry_after: Duration::from_secs(1), refused: 1 });
        // Nothing counted in either run, a refusal in the one that waits.
        assert_eq!(runs.map(|(run, _)| (run.attempts, run.refused)), [(1, 1), (1, 0)]);
    }

    #[test]
    fn a_lagging_clock_gets_its_free_failures_and_keeps_the_delay() {
        let now = Timestamp::from_unix_millis(1_000_000);
        let lagging = Timestamp::from_unix_millis(999_800);
        let mut runs = [(FailureRun::fresh(now), 2)];
        reserve(&mut runs, now, Duration::from_secs(60)).unwrap();
        reserve(&mut runs, lagging, Duration::from_secs(60)).unwrap();
        assert_eq!(runs[0].0.last, now);
        let refusal = reserve(&mut runs, lagging, Duration::from_secs(60)).unwrap_err();
        assert_eq!(refusal.retry_after, Duration::from_millis(1_200));
    }

    #[test]
    fn milestones_are_sparse() {
        let refused = |refused| Refusal { retry_after: Duration::ZERO, refused };
        let milestones: Vec<u64> = (1..=1000).filter(|n| refused(*n).is_milestone()).collect();
        assert_eq!(milestones, [1, 10, 100, 1000]);
    }
}
