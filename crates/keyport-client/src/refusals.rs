//! Tokens Keyport refused, remembered briefly so that junk or stale cookies
//! replayed on every request do not each cost a `GetSession` call.
//!
//! A token refused as unknown, revoked or expired can never become valid
//! again, so serving the refusal is always right, stream or no stream. The
//! map holds keyed hashes, not tokens: its memory is bounded by the entry
//! count whatever the attacker sends.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    clock::Clock,
    error::{Error, Reason},
};

#[derive(Debug)]
pub(crate) struct Refusals {
    ttl: Duration,
    max_entries: usize,
    // Keyed per process: nobody outside can aim at a collision.
    hasher: RandomState,
    entries: Mutex<HashMap<u64, (Error, Instant)>>,
    clock: Arc<dyn Clock>,
}

impl Refusals {
    pub(crate) fn new(ttl: Duration, max_entries: usize, clock: Arc<dyn Clock>) -> Self {
        Self { ttl, max_entries, hasher: RandomState::new(), entries: Mutex::default(), clock }
    }

    /// The remembered refusal of `token`, if it is still fresh.
    pub(crate) fn get(&self, token: &str) -> Option<Error> {
        let entries = self.entries.lock().ok()?;
        let (error, until) = entries.get(&self.hasher.hash_one(token))?;
        (self.clock.now() < *until).then(|| error.clone())
    }

    /// Remembers `error` for `token` if it is a refusal that cannot change.
    pub(crate) fn remember(&self, token: &str, error: &Error) {
        if self.ttl.is_zero() || self.max_entries == 0 || !is_final(error) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        let now = self.clock.now();
        if entries.len() >= self.max_entries {
            entries.retain(|_, (_, until)| *until > now);
            // Still full of fresh refusals (a flood of distinct junk): start
            // over rather than grow; each costs one more call at worst.
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(self.hasher.hash_one(token), (error.clone(), now + self.ttl));
    }

    /// How many refusals are remembered.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|entries| entries.len()).unwrap_or(0)
    }
}

/// Unknown, revoked or expired: the token is dead for good.
fn is_final(error: &Error) -> bool {
    matches!(error.reason(), Reason::Unauthenticated | Reason::SessionExpired)
}

#[cfg(test)]
mod tests {
    use tonic::Status;

    use super::*;
    use crate::clock::{ManualClock, SystemClock};

    #[test]
    fn remembers_final_refusals_only() {
        let refusals = Refusals::new(Duration::from_secs(30), 10, Arc::new(SystemClock));
        refusals.remember("kp_a.x", &Status::unauthenticated("no").into());
        refusals.remember("kp_b.x", &Status::unavailable("down").into());
        refusals.remember("kp_c.x", &Status::invalid_argument("bad").into());
        assert_eq!(refusals.get("kp_a.x").map(|e| e.reason().clone()), Some(Reason::Unauthenticated));
        assert!(refusals.get("kp_b.x").is_none(), "an outage is not a verdict on the token");
        assert!(refusals.get("kp_c.x").is_none());
        assert!(refusals.get("kp_a.y").is_none());
    }

    #[test]
    fn stays_within_its_bound() {
        let refusals = Refusals::new(Duration::from_secs(30), 3, Arc::new(SystemClock));
        for i in 0..10 {
            refusals.remember(&format!("kp_{i}.x"), &Status::unauthenticated("no").into());
            assert!(refusals.len() <= 3);
        }
        assert!(refusals.get("kp_9.x").is_some(), "the newest refusal is kept");
    }

    #[test]
    fn refusals_expire() {
        let clock = Arc::new(ManualClock::new());
        let refusals = Refusals::new(Duration::from_secs(30), 3, clock.clone());
        refusals.remember("kp_a.x", &Status::unauthenticated("no").into());
        clock.advance(Duration::from_secs(29));
        assert!(refusals.get("kp_a.x").is_some(), "still within its 30 s");
        clock.advance(Duration::from_secs(1));
        assert!(refusals.get("kp_a.x").is_none(), "gone at 30 s");
    }
}
