//! Throttling of failed sign-ins, per account and per client address.
//!
//! Fixed windows counted in memory on each replica: cheap, and enough to turn
//! online guessing from thousands of tries a minute into a handful. Counting
//! happens before the password is hashed, so a throttled attempt costs
//! nothing.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    clock::{Clock, Timestamp},
    error::{Error, Result},
};

/// Limits on failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failures allowed per account within `window`.
    pub per_account: u32,
    /// Failures allowed per client IP within `window`.
    pub per_ip: u32,
    /// Length of a counting window.
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
    started: Timestamp,
    failures: u32,
}

impl SignInLimiter {
    /// A limiter with `limits`, reading time from `clock`.
    pub fn new(limits: SignInLimits, clock: Arc<dyn Clock>) -> Self {
        Self { limits, clock, windows: Arc::default() }
    }

    /// Fails with [`Error::RateLimited`] when the account or the address has
    /// used up its failures.
    pub fn check(&self, account: &str, ip: Option<&str>) -> Result<()> {
        let now = self.clock.now();
        let windows = self.windows.lock().map_err(|_| Error::Internal("rate limiter poisoned".into()))?;
        let over = |key: String, limit: u32| {
            windows
                .get(&key)
                .filter(|w| now.duration_since(w.started) < self.limits.window && w.failures >= limit)
                .map(|w| self.limits.window.saturating_sub(now.duration_since(w.started)))
        };
        let account_wait = over(account_key(account), self.limits.per_account);
        let ip_wait = ip.and_then(|ip| over(ip_key(ip), self.limits.per_ip));
        match account_wait.max(ip_wait) {
            Some(retry_after) => Err(Error::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt against the account and the address.
    pub fn record_failure(&self, account: &str, ip: Option<&str>) {
        let now = self.clock.now();
        let Ok(mut windows) = self.windows.lock() else { return };
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| now.duration_since(w.started) < self.limits.window);
        }
        let keys = std::iter::once(account_key(account)).chain(ip.map(ip_key));
        for key in keys {
            let window = windows.entry(key).or_insert(Window { started: now, failures: 0 });
            if now.duration_since(window.started) >= self.limits.window {
                *window = Window { started: now, failures: 0 };
            }
            window.failures = window.failures.saturating_add(1);
        }
    }

    /// Forgets the account's failures after a successful sign-in.
    pub fn record_success(&self, account: &str) {
        if let Ok(mut windows) = self.windows.lock() {
            windows.remove(&account_key(account));
        }
    }
}

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter() -> (SignInLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        let limits = SignInLimits { per_account: 3, per_ip: 5, window: Duration::from_secs(60) };
        (SignInLimiter::new(limits, clock.clone()), clock)
    }

    #[test]
    fn account_is_limited_after_its_failures_until_the_window_ends() {
        let (limiter, clock) = limiter();
        for _ in 0..3 {
            limiter.check("a@b.co", None).unwrap();
            limiter.record_failure("a@b.co", None);
        }
        assert!(matches!(limiter.check("a@b.co", None), Err(Error::RateLimited { .. })));
        assert!(limiter.check("other@b.co", None).is_ok());
        clock.advance(Duration::from_secs(61));
        assert!(limiter.check("a@b.co", None).is_ok());
    }

    #[test]
    fn address_is_limited_across_accounts() {
        let (limiter, _) = limiter();
        for i in 0..5 {
            limiter.record_failure(&format!("user{i}@b.co"), Some("10.0.0.1"));
        }
        assert!(matches!(limiter.check("fresh@b.co", Some("10.0.0.1")), Err(Error::RateLimited { .. })));
        assert!(limiter.check("fresh@b.co", Some("10.0.0.2")).is_ok());
    }

    #[test]
    fn success_clears_the_account() {
        let (limiter, _) = limiter();
        for _ in 0..3 {
            limiter.record_failure("a@b.co", None);
        }
        limiter.record_success("a@b.co");
        assert!(limiter.check("a@b.co", None).is_ok());
    }
}
