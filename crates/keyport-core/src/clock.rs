//! Time, injected: domain code asks a [`Clock`], never the system directly,
//! so expiry is tested by moving a [`ManualClock`] instead of sleeping.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A point in time: milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// A fresh UUIDv7 bearing this time: ids sort by creation, and follow
    /// the injected clock like every other time.
    pub fn uuid_v7(self) -> uuid::Uuid {
        // Shared, so ids made in one millisecond (a stopped test clock
        // included) still sort in the order they were made.
        static CONTEXT: std::sync::Mutex<uuid::ContextV7> = std::sync::Mutex::new(uuid::ContextV7::new());
        let millis = u64::try_from(self.0).unwrap_or(0);
        let (seconds, nanos) = (millis / 1000, (millis % 1000) as u32 * 1_000_000);
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(&CONTEXT, seconds, nanos))
    }

    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// This time plus `duration`, saturating instead of overflowing.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This time minus `duration`, saturating instead of overflowing.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// How long after `earlier` this time is; zero when it is not later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the one place the domain reads the time")]
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until told to move: for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { millis: AtomicI64::new(start.0) }
    }

    /// A clock showing the current system time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(Timestamp::from_unix_millis(1_000));
        assert_eq!(clock.now().unix_millis(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now().unix_millis(), 3_000);
    }

    #[test]
    fn ids_follow_the_clock_and_sort_in_order_made() {
        let at = Timestamp::from_unix_millis(1_700_000_000_123);
        let ids: Vec<uuid::Uuid> = (0..100).map(|_| at.uuid_v7()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "one millisecond, still in order");
        // The shared context never goes back: ids made after others with a
        // later time (other tests, other clocks) carry at least that time.
        let (seconds, nanos) = ids[0].get_timestamp().map(|t| t.to_unix()).unwrap_or_default();
        assert!(u64::from(nanos / 1_000_000) + seconds * 1000 >= 1_700_000_000_123, "{seconds}.{nanos}");
    }

    #[test]
    fn duration_since_never_goes_negative() {
        let early = Timestamp::from_unix_millis(10);
        let late = Timestamp::from_unix_millis(30);
        assert_eq!(late.duration_since(early), Duration::from_millis(20));
        assert_eq!(early.duration_since(late), Duration::ZERO);
    }

    #[test]
    fn saturating_add_does_not_overflow() {
        let t = Timestamp::from_unix_millis(i64::MAX - 1);
        assert_eq!(t.saturating_add(Duration::from_secs(10)).unix_millis(), i64::MAX);
    }
}
