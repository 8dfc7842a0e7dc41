//! The time the client's caches go by: the system's monotonic clock, or a
//! manual one that tests move by hand. Nothing else in the crate reads the
//! time (clippy's `disallowed-methods` holds it to that).

use std::{
    fmt::Debug,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A monotonic clock.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the one place the client reads the time")]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it: cache
/// lifetimes tested without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock stopped at the present instant.
    pub fn new() -> Self {
        Self { start: SystemClock.now(), elapsed: Mutex::new(Duration::ZERO) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut elapsed) = self.elapsed.lock() {
            *elapsed += by;
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed.lock().map_or(Duration::ZERO, |elapsed| *elapsed)
    }
}
