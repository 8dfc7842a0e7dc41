//! A fixed set of threads that compute password hashes.
//!
//! Each argon2id hash allocates its whole memory cost (19 MiB by default).
//! On tokio's elastic blocking pool those allocations land on whichever of
//! many threads runs the job, and the allocator keeps a cache per thread:
//! resident memory climbed to hundreds of MB after a burst of sign-ups. A
//! few long-lived threads bound it to about `workers` × the memory cost.
//!
//! A job owns its admission permit, not the caller's future: a caller that
//! is cancelled (a client deadline) frees its place as soon as a worker
//! reaches its job, which is then skipped rather than hashed for nobody.
//! Jobs are only queued with a permit, so the queue holds at most as many
//! jobs as there are permits.

use std::{
    sync::{Arc, Mutex, mpsc},
    thread,
};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// Runs closures on `workers` dedicated threads, in arrival order.
pub(crate) struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    /// Starts `workers` threads; they end when the pool is dropped.
    pub(crate) fn new(workers: usize) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers.max(1) {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(format!("keyport-hash-{index}"))
                .spawn(move || {
                    loop {
                        // Hold the lock only to take a job, not while running it.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| Error::Internal(format!("hashing thread: {e}")))?;
        }
        Ok(Self { jobs: Mutex::new(jobs) })
    }

    /// Runs `work` on a pool thread, holding `permit` until it is done, and
    /// waits for its result. If the caller stops waiting before a thread
    /// takes the job, the job is skipped and the permit released.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            if done.is_closed() {
                return;
            }
            let _ = done.send(work());
        });
        self.jobs
            .lock()
            .map_err(|_| Error::Internal("hashing pool poisoned".into()))?
            .send(job)
            .map_err(|_| Error::Internal("hashing pool stopped".into()))?;
        result.await.map_err(|_| Error::Internal("hashing job dropped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_its_own_threads_in_order() {
        let pool = HashPool::new(2).unwrap();
        let permits = Arc::new(Semaphore::new(2));
        let permit = permits.clone().acquire_owned().await.unwrap();
        let name = pool.run(permit, || Ok(thread::current().name().map(str::to_owned))).await.unwrap();
        assert!(name.unwrap().starts_with("keyport-hash-"));
        let mut out = Vec::new();
        for i in 1..=8 {
            let permit = permits.clone().acquire_owned().await.unwrap();
            out.push(pool.run(permit, move || Ok(i)).await.unwrap());
        }
        assert_eq!(out, (1..=8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn jobs_of_callers_that_left_are_skipped_and_free_their_permit() {
        let pool = Arc::new(HashPool::new(1).unwrap());
        let permits = Arc::new(Semaphore::new(2));
        // Occupy the only thread until released.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let (pool, permit) = (pool.clone(), permits.clone().acquire_owned().await.unwrap());
            tokio::spawn(async move { pool.run(permit, move || Ok(released.recv().is_ok())).await })
        };
        // A second caller queues its job, then is cancelled.
        let ran = Arc::new(AtomicUsize::new(0));
        let cancelled = {
            let (pool, permit, ran) = (pool.clone(), permits.clone().acquire_owned().await.unwrap(), ran.clone());
            tokio::spawn(async move {
                pool.run(permit, move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        cancelled.abort();
        let _ = cancelled.await;
        release.send(()).unwrap();
        assert!(blocker.await.unwrap().unwrap());
        // Both permits come back, and the cancelled job never ran.
        let both = permits.clone().acquire_many_owned(2).await.unwrap();
        drop(both);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
