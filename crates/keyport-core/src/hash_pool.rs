//! A fixed set of threads that compute password hashes.
//!
//! Each argon2id hash allocates its whole memory cost (19 MiB by default).
//! On tokio's elastic blocking pool those allocations land on whichever of
//! many threads runs the job, and the allocator keeps a cache per thread:
//! resident memory climbed to hundreds of MB after a burst of sign-ups. A
//! few long-lived threads bound it to about `workers` × the memory cost.

use std::{
    sync::{Arc, Mutex, mpsc},
    thread,
};

use tokio::sync::oneshot;

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

    /// Runs `work` on a pool thread and waits for its result.
    pub(crate) async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
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
    use super::*;

    #[tokio::test]
    async fn runs_jobs_on_its_own_threads() {
        let pool = HashPool::new(2).unwrap();
        let name = pool.run(|| Ok(thread::current().name().map(str::to_owned))).await.unwrap();
        assert!(name.unwrap().starts_with("keyport-hash-"));
        let results = futures_join(&pool).await;
        assert_eq!(results, (1..=8).collect::<Vec<_>>());
    }

    async fn futures_join(pool: &HashPool) -> Vec<u32> {
        let mut out = Vec::new();
        for i in 1..=8 {
            out.push(pool.run(move || Ok(i)).await.unwrap());
        }
        out
    }
}
