//! Request budgets per client address for the public RPCs (sign-up,
//! sign-in, social sign-in, the calls that send mail or take an email
//! token), whatever their outcome: a flood from one address is refused
//! before it costs a password hash, a mail or a call to a provider. The
//! same [`Buckets`] cap the mails one recipient gets.
//!
//! Each (action, address) pair has a token bucket, kept as the generic cell
//! rate algorithm's one timestamp (the "theoretical arrival time"): a burst
//! of `burst` requests passes at once, then one per `1 / per_minute`.
//! Counted in memory on each replica. IPv6 addresses are counted by their
//! /64 network, which one host usually holds whole.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    clock::{Clock, Timestamp},
    error::Error,
};

/// A public RPC with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicAction {
    /// `SignUp`.
    SignUp,
    /// `SignIn`.
    SignIn,
    /// `StartOAuth`.
    StartOAuth,
    /// `FinishOAuth`.
    FinishOAuth,
    /// `RequestPasswordReset`.
    RequestPasswordReset,
    /// `RequestEmailVerification`.
    RequestEmailVerification,
    /// `StartEmailSignIn`.
    StartEmailSignIn,
    /// `RequestEmailChange`.
    RequestEmailChange,
    /// `RequestPasswordSetup`.
    RequestPasswordSetup,
    /// `VerifyEmail`, `ResetPassword` and `FinishEmailSignIn`: presenting
    /// an email token or code.
    UseEmailToken,
}

/// The budget of each public RPC per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests an address may make at once, after a quiet spell. Zero
    /// turns the budgets off.
    pub burst: u32,
    /// Requests per minute an address may keep making after its burst.
    pub per_minute: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { burst: 100, per_minute: 600 }
    }
}

/// Most keys tracked at once. Past it, idle buckets are swept, and if that
/// is not enough new keys share one bucket (or are refused): a flood from
/// many addresses stays limited as a whole instead of growing memory.
const MAX_KEYS: usize = 100_000;

/// Token buckets by key, each kept as the generic cell rate algorithm's one
/// timestamp: `burst` at once, then one per `interval`.
pub(crate) struct Buckets<K> {
    burst: u32,
    interval: Duration,
    clock: Arc<dyn Clock>,
    /// Each bucket's theoretical arrival time: when it is full again.
    table: Mutex<HashMap<K, Timestamp>>,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    /// Buckets of `burst` refilled one per `interval`; a zero burst or
    /// interval admits everything.
    pub(crate) fn new(burst: u32, interval: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { burst, interval, clock, table: Mutex::default() }
    }

    /// Takes one token from `key`'s bucket, or refuses with
    /// [`Error::RateLimited`] saying when one will be free. When the table
    /// is full, a new key uses `overflow`'s bucket, or is refused without one.
    pub(crate) fn admit(&self, key: K, overflow: Option<K>) -> Result<(), Error> {
        if self.burst == 0 || self.interval.is_zero() {
            return Ok(());
        }
        let tolerance = self.interval.saturating_mul(self.burst - 1);
        let now = self.clock.now();
        let Ok(mut table) = self.table.lock() else {
            // A poisoned lock must fail closed, not open.
            return Err(Error::RateLimited { retry_after: self.interval });
        };
        let mut key = key;
        if table.len() >= MAX_KEYS && !table.contains_key(&key) {
            table.retain(|_, full_at| *full_at > now);
            if table.len() >= MAX_KEYS {
                key = overflow.ok_or(Error::RateLimited { retry_after: self.interval })?;
            }
        }
        let full_at = table.get(&key).copied().filter(|at| *at > now).unwrap_or(now);
        let waiting = full_at.duration_since(now);
        if waiting > tolerance {
            return Err(Error::RateLimited { retry_after: waiting - tolerance });
        }
        table.insert(key, full_at.saturating_add(self.interval));
        Ok(())
    }

    #[cfg(test)]
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<K, Timestamp>> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Admits or refuses public requests by their client address.
#[derive(Clone)]
pub struct RequestLimiter {
    buckets: Arc<Buckets<(PublicAction, Key)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    /// Callers whose address is unknown, or arrive when the table is full.
    Shared,
}

impl RequestLimiter {
    /// A limiter with `limits`, reading time from `clock`.
    pub fn new(limits: RequestLimits, clock: Arc<dyn Clock>) -> Self {
        let interval = match limits.per_minute {
            0 => Duration::ZERO,
            per_minute => Duration::from_secs(60) / per_minute,
        };
        Self { buckets: Arc::new(Buckets::new(limits.burst, interval, clock)) }
    }

    /// Takes one request of `action` from the budget of `address`, or
    /// refuses with [`Error::RateLimited`] saying when one will be free.
    pub fn admit(&self, action: PublicAction, address: Option<&str>) -> Result<(), Error> {
        let key = address.and_then(network_of).map_or(Key::Shared, Key::Address);
        self.buckets.admit((action, key), Some((action, Key::Shared)))
    }
}

/// The address a budget belongs to: an IPv4 address, or an IPv6 /64.
pub(crate) fn network_of(address: &str) -> Option<IpAddr> {
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                Some(IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)))
            }
        },
        v4 => Some(v4),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;
    use crate::clock::ManualClock;

    fn limiter(burst: u32, per_minute: u32) -> (RequestLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::starting_now());
        (RequestLimiter::new(RequestLimits { burst, per_minute }, clock.clone()), clock)
    }

    fn retry_after(result: Result<(), Error>) -> Option<Duration> {
        match result {
            Err(Error::RateLimited { retry_after }) => Some(retry_after),
            _ => None,
        }
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let (limiter, clock) = limiter(3, 60);
        for _ in 0..3 {
            limiter.admit(PublicAction::SignUp, Some("203.0.113.7")).unwrap();
        }
        let wait = retry_after(limiter.admit(PublicAction::SignUp, Some("203.0.113.7"))).unwrap();
        assert_eq!(wait, Duration::from_secs(1));
        clock.advance(Duration::from_millis(999));
        assert!(retry_after(limiter.admit(PublicAction::SignUp, Some("203.0.113.7"))).is_some());
        clock.advance(Duration::from_millis(1));
        limiter.admit(PublicAction::SignUp, Some("203.0.113.7")).unwrap();
        assert!(retry_after(limiter.admit(PublicAction::SignUp, Some("203.0.113.7"))).is_some());
        // A quiet spell refills the whole burst, and no more.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            limiter.admit(PublicAction::SignUp, Some("203.0.113.7")).unwrap();
        }
        assert!(retry_after(limiter.admit(PublicAction::SignUp, Some("203.0.113.7"))).is_some());
    }

    #[test]
    fn addresses_and_actions_have_budgets_of_their_own() {
        let (limiter, _) = limiter(1, 1);
        limiter.admit(PublicAction::SignIn, Some("203.0.113.7")).unwrap();
        assert!(retry_after(limiter.admit(PublicAction::SignIn, Some("203.0.113.7"))).is_some());
        limiter.admit(PublicAction::SignUp, Some("203.0.113.7")).unwrap();
        limiter.admit(PublicAction::SignIn, Some("203.0.113.8")).unwrap();
        // One IPv6 /64 is one budget; the same address mapped into IPv6 is
        // the IPv4 address.
        limiter.admit(PublicAction::SignIn, Some("2001:db8:1:2::1")).unwrap();
        assert!(retry_after(limiter.admit(PublicAction::SignIn, Some("2001:db8:1:2:ffff::9"))).is_some());
        limiter.admit(PublicAction::SignIn, Some("2001:db8:1:3::1")).unwrap();
        assert!(retry_after(limiter.admit(PublicAction::SignIn, Some("::ffff:203.0.113.8"))).is_some());
        // Unknown and unparseable addresses share one budget.
        limiter.admit(PublicAction::SignIn, None).unwrap();
        assert!(retry_after(limiter.admit(PublicAction::SignIn, Some("not an address"))).is_some());
        assert!(retry_after(limiter.admit(PublicAction::SignIn, Some(""))).is_some());
    }

    #[test]
    fn zero_turns_the_budgets_off() {
        let (limiter, _) = limiter(0, 60);
        for _ in 0..1_000 {
            limiter.admit(PublicAction::SignUp, Some("203.0.113.7")).unwrap();
        }
    }

    #[test]
    fn parallel_callers_get_exactly_the_burst() {
        let (limiter, _) = limiter(5, 1);
        let barrier = Barrier::new(16);
        let admitted = std::thread::scope(|scope| {
            let callers: Vec<_> = (0..16)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        limiter.admit(PublicAction::SignUp, Some("198.51.100.1")).is_ok()
                    })
                })
                .collect();
            callers.into_iter().map(|caller| caller.join().unwrap()).filter(|admitted| *admitted).count()
        });
        assert_eq!(admitted, 5);
    }

    #[test]
    fn a_full_table_puts_new_addresses_in_one_shared_bucket() {
        let (limiter, _) = limiter(1, 1);
        {
            let mut buckets = limiter.buckets.table();
            let busy = limiter.buckets.clock.now().saturating_add(Duration::from_secs(3600));
            for n in 0..MAX_KEYS as u32 {
                buckets.insert((PublicAction::SignUp, Key::Address(IpAddr::from(n.to_be_bytes()))), busy);
            }
        }
        limiter.admit(PublicAction::SignUp, Some("203.0.113.7")).unwrap();
        assert!(retry_after(limiter.admit(PublicAction::SignUp, Some("203.0.113.8"))).is_some());
        assert_eq!(limiter.buckets.table().len(), MAX_KEYS + 1);
    }
}
