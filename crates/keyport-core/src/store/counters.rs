//! Storage of the throttling counters (see [`crate::throttle`]).

use std::time::Duration;

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    clock::Timestamp,
    throttle::{
        CounterKey,
        budget::Rate,
        failures::{Attempt, Refusal},
    },
};

/// Where the throttling counters live. Not part of [`super::Store`]: an
/// SQLite deployment is one process and counts in its memory; replicas on
/// PostgreSQL share a table. Each method is atomic: parallel callers on any
/// replica get exactly the budget between them.
#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Takes one token from `key`'s bucket under `rate` at `now`
    /// ([`Rate::take`]): `Ok(Err(wait))` when the bucket is empty for `wait`.
    async fn take_token(&self, key: &CounterKey, rate: Rate, now: Timestamp) -> StoreResult<Result<(), Duration>>;

    /// Counts an attempt against every key (each with its free failures)
    /// when none must wait, or a refusal in those that must
    /// ([`crate::throttle::failures::reserve`]), with `window` as the
    /// longest delay and the idle time that starts a run afresh.
    async fn reserve_attempt(
        &self,
        keys: &[(CounterKey, u32)],
        window: Duration,
        now: Timestamp,
    ) -> StoreResult<Result<Attempt, Refusal>>;

    /// Takes `attempt` back from each run it was counted in, if that run
    /// has not started afresh since.
    async fn refund_attempt(&self, attempt: &Attempt) -> StoreResult<()>;

    /// Deletes buckets that are full again and runs idle for `idle`;
    /// returns how many.
    async fn delete_idle_counters(&self, now: Timestamp, idle: Duration) -> StoreResult<u64>;
}
