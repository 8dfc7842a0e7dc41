//! [`MemoryCounters`]: the throttling counters in this process's memory.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;

use super::{
    CounterKey,
    budget::Rate,
    failures::{self, Attempt, FailureRun, Refusal},
};
use crate::{
    clock::Timestamp,
    store::{CounterStore, StoreError, StoreResult},
};

/// Most keys tracked at once. Past it, idle entries are swept, and if that
/// is not enough, new buckets share their scope's
/// [overflow](CounterKey::overflow) bucket.
const MAX_KEYS: usize = 100_000;

/// Buckets and failure runs of one process, each behind one lock, so every
/// call is atomic.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    buckets: Mutex<HashMap<CounterKey, Timestamp>>,
    runs: Mutex<HashMap<CounterKey, FailureRun>>,
}

/// A poisoned lock fails the call (and so refuses it), never admits it.
fn lock<T>(table: &Mutex<T>) -> StoreResult<MutexGuard<'_, T>> {
    table.lock().map_err(|_| StoreError::Other("throttling counters poisoned".into()))
}

#[async_trait]
impl CounterStore for MemoryCounters {
    async fn take_token(&self, key: &CounterKey, rate: Rate, now: Timestamp) -> StoreResult<Result<(), Duration>> {
        let mut buckets = lock(&self.buckets)?;
        let mut key = key;
        let overflow;
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, full_at| *full_at > now);
            if buckets.len() >= MAX_KEYS {
                overflow = key.overflow();
                key = &overflow;
            }
        }
        Ok(rate.take(buckets.get(key).copied(), now).map(|full_at| {
            buckets.insert(key.clone(), full_at);
        }))
    }

    async fn reserve_attempt(
        &self,
        keys: &[(CounterKey, u32)],
        window: Duration,
        now: Timestamp,
    ) -> StoreResult<Result<Attempt, Refusal>> {
        let mut table = lock(&self.runs)?;
        if table.len() >= MAX_KEYS {
            table.retain(|_, run| now.duration_since(run.last) < window);
        }
        let mut runs: Vec<(FailureRun, u32)> = keys
            .iter()
            .map(|(key, limit)| {
                let run = table.get(key).map_or(FailureRun::fresh(now), |run| run.at(now, window));
                (run, *limit)
            })
            .collect();
        let outcome = failures::reserve(&mut runs, now, window);
        for ((key, _), (run, _)) in keys.iter().zip(&runs) {
            table.insert(key.clone(), *run);
        }
        let counted = keys.iter().zip(&runs).map(|((key, _), (run, _))| (key.clone(), run.started)).collect();
        Ok(outcome.map(|()| Attempt { counted }))
    }

    async fn refund_attempt(&self, attempt: &Attempt) -> StoreResult<()> {
        let mut table = lock(&self.runs)?;
        for (key, started) in &attempt.counted {
            if let Some(run) = table.get_mut(key)
                && run.started == *started
            {
                run.attempts = run.attempts.saturating_sub(1);
            }
        }
        Ok(())
    }

    async fn delete_idle_counters(&self, now: Timestamp, idle: Duration) -> StoreResult<u64> {
        let mut deleted = 0;
        {
            let mut buckets = lock(&self.buckets)?;
            let before = buckets.len();
            buckets.retain(|_, full_at| *full_at > now);
            deleted += before - buckets.len();
        }
        let mut runs = lock(&self.runs)?;
        let before = runs.len();
        runs.retain(|_, run| now.duration_since(run.last) < idle);
        deleted += before - runs.len();
        Ok(deleted as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_table_puts_new_subjects_in_one_overflow_bucket() {
        let counters = MemoryCounters::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let busy = now.saturating_add(Duration::from_secs(3600));
        {
            let mut buckets = counters.buckets.lock().unwrap();
            for n in 0..MAX_KEYS {
                buckets.insert(CounterKey::new("sign_up", n), busy);
            }
        }
        let rate = Rate::per_minute(1, 1);
        assert!(counters.take_token(&CounterKey::new("sign_up", "a"), rate, now).await.unwrap().is_ok());
        assert!(counters.take_token(&CounterKey::new("sign_up", "b"), rate, now).await.unwrap().is_err());
        assert_eq!(counters.buckets.lock().unwrap().len(), MAX_KEYS + 1);
    }
}
