//! [`SharedCounters`]: the throttling counters in PostgreSQL, shared by
//! every replica, so N replicas give a flood the budget of one.
//!
//! A bucket take is one statement: the upsert runs [`Rate::take`] under the
//! row's lock, and PostgreSQL re-checks its `WHERE` against the latest
//! committed row when a parallel caller got there first. A sign-in attempt
//! locks the runs of its keys (in digest order, so two callers never wait
//! on each other crosswise), decides with the same
//! [`failures::reserve`] as the memory counters, and writes them back in
//! one transaction.

use std::time::Duration;

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    store::{CounterStore, StoreError, StoreResult},
    throttle::{
        CounterKey,
        budget::Rate,
        failures::{self, Attempt, FailureRun, Refusal},
    },
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, TransactionTrait, Value};

use crate::db_error::classify;

/// The throttling counters in PostgreSQL's `rate_buckets` and
/// `failure_runs` tables (see [`SeaStore::shared_counters`](crate::SeaStore::shared_counters)).
#[derive(Debug, Clone)]
pub struct SharedCounters {
    db: DatabaseConnection,
}

impl SharedCounters {
    pub(crate) fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn statement(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Admits when the bucket is full at most `tolerance` from now, moving its
/// full time one interval on: [`Rate::take`], as one statement.
const TAKE_TOKEN: &str = "INSERT INTO rate_buckets (key_hash, full_at) VALUES ($1, $2) \
     ON CONFLICT (key_hash) DO UPDATE SET full_at = GREATEST(rate_buckets.full_at, $3) + $4 \
     WHERE rate_buckets.full_at <= $5 \
     RETURNING full_at";

/// Locks a key's run (creating an empty one) and reads it.
const LOCK_RUN: &str = "INSERT INTO failure_runs (key_hash, started, last, attempts, refused) \
     VALUES ($1, $2, $2, 0, 0) \
     ON CONFLICT (key_hash) DO UPDATE SET key_hash = EXCLUDED.key_hash \
     RETURNING started, last, attempts, refused";

const WRITE_RUN: &str =
    "UPDATE failure_runs SET started = $2, last = $3, attempts = $4, refused = $5 WHERE key_hash = $1";

const REFUND: &str =
    "UPDATE failure_runs SET attempts = attempts - 1 WHERE key_hash = $1 AND started = $2 AND attempts > 0";

fn run_from_row(row: &QueryResult) -> StoreResult<FailureRun> {
    let get = |column: &str| row.try_get::<i64>("", column).map_err(classify);
    let attempts = row.try_get::<i32>("", "attempts").map_err(classify)?;
    Ok(FailureRun {
        started: Timestamp::from_unix_millis(get("started")?),
        last: Timestamp::from_unix_millis(get("last")?),
        attempts: u32::try_from(attempts).unwrap_or(0),
        refused: u64::try_from(get("refused")?).unwrap_or(0),
    })
}

#[async_trait]
impl CounterStore for SharedCounters {
    async fn take_token(&self, key: &CounterKey, rate: Rate, now: Timestamp) -> StoreResult<Result<(), Duration>> {
        let digest = key.digest().to_vec();
        let first_full_at = rate.take(None, now).unwrap_or(now);
        let taken = self
            .db
            .query_one_raw(statement(
                TAKE_TOKEN,
                [
                    digest.clone().into(),
                    first_full_at.unix_millis().into(),
                    now.unix_millis().into(),
                    millis(rate.interval).into(),
                    now.saturating_add(rate.tolerance()).unix_millis().into(),
                ],
            ))
            .await
            .map_err(classify)?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        let row = self
            .db
            .query_one_raw(statement("SELECT full_at FROM rate_buckets WHERE key_hash = $1", [digest.into()]))
            .await
            .map_err(classify)?;
        let full_at = row.map(|row| row.try_get::<i64>("", "full_at")).transpose().map_err(classify)?;
        // Gone meanwhile (swept): a refill's wait is an honest upper bound.
        let wait = full_at.map_or(rate.interval, |full_at| {
            Timestamp::from_unix_millis(full_at).duration_since(now.saturating_add(rate.tolerance()))
        });
        Ok(Err(wait))
    }

    /// On a task of its own, run to its end: a caller cancelled inside the
    /// transaction would otherwise leave the runs locked until sqlx next
    /// uses that connection (it rolls a dropped transaction back lazily),
    /// and every sign-in with the same keys, the same client address
    /// included, would wait for it (seen as a 20 s stall in the e2e test of
    /// cancelled completions).
    async fn reserve_attempt(
        &self,
        keys: &[(CounterKey, u32)],
        window: Duration,
        now: Timestamp,
    ) -> StoreResult<Result<Attempt, Refusal>> {
        let (db, keys) = (self.db.clone(), keys.to_vec());
        tokio::spawn(async move { reserve_in(&db, &keys, window, now).await })
            .await
            .map_err(|error| StoreError::Other(format!("the sign-in attempt task failed: {error}")))?
    }

    async fn refund_attempt(&self, attempt: &Attempt) -> StoreResult<()> {
        for (key, started) in &attempt.counted {
            let values: [Value; 2] = [key.digest().to_vec().into(), started.unix_millis().into()];
            self.db.execute_raw(statement(REFUND, values)).await.map_err(classify)?;
        }
        Ok(())
    }

    async fn delete_idle_counters(&self, now: Timestamp, idle: Duration) -> StoreResult<u64> {
        let full = self
            .db
            .execute_raw(statement("DELETE FROM rate_buckets WHERE full_at <= $1", [now.unix_millis().into()]))
            .await
            .map_err(classify)?;
        let idle_since = now.saturating_sub(idle).unix_millis();
        let idle = self
            .db
            .execute_raw(statement("DELETE FROM failure_runs WHERE last <= $1", [idle_since.into()]))
            .await
            .map_err(classify)?;
        Ok(full.rows_affected() + idle.rows_affected())
    }
}

/// Locks, decides and writes back the runs of `keys`, in one transaction.
async fn reserve_in(
    db: &DatabaseConnection,
    keys: &[(CounterKey, u32)],
    window: Duration,
    now: Timestamp,
) -> StoreResult<Result<Attempt, Refusal>> {
    let mut ordered: Vec<(&CounterKey, u32, Vec<u8>)> =
        keys.iter().map(|(key, limit)| (key, *limit, key.digest().to_vec())).collect();
    ordered.sort_by(|a, b| a.2.cmp(&b.2));
    ordered.dedup_by(|a, b| a.2 == b.2);
    let txn = db.begin().await.map_err(classify)?;
    let mut runs = Vec::with_capacity(ordered.len());
    for (_, limit, digest) in &ordered {
        let row = txn
            .query_one_raw(statement(LOCK_RUN, [digest.clone().into(), now.unix_millis().into()]))
            .await
            .map_err(classify)?
            .ok_or_else(|| StoreError::Other("the failure run upsert returned nothing".into()))?;
        runs.push((run_from_row(&row)?.at(now, window), *limit));
    }
    let outcome = failures::reserve(&mut runs, now, window);
    for ((_, _, digest), (run, _)) in ordered.iter().zip(&runs) {
        let values: [Value; 5] = [
            digest.clone().into(),
            run.started.unix_millis().into(),
            run.last.unix_millis().into(),
            i32::try_from(run.attempts).unwrap_or(i32::MAX).into(),
            i64::try_from(run.refused).unwrap_or(i64::MAX).into(),
        ];
        txn.execute_raw(statement(WRITE_RUN, values)).await.map_err(classify)?;
    }
    txn.commit().await.map_err(classify)?;
    let counted = ordered.iter().zip(&runs).map(|((key, _, _), (run, _))| ((*key).clone(), run.started)).collect();
    Ok(outcome.map(|()| Attempt { counted }))
}
