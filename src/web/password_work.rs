//! Bounds password hashing and verification. Each argon2 call takes 19 MiB and a core
//! for tens of milliseconds; run at any concurrency, a burst of sign-ins (40 made-up
//! console names at once) took the process from 1.0 to 1.8 GB. Here at most one call
//! per core runs at once; a request that cannot get a turn within [`WAIT`] is answered
//! "系统繁忙，请稍后再试" (503) instead of queueing without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How long a request waits for a turn before it is told the system is busy.
pub const WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PasswordWorkError {
    /// No turn within the wait: answered 503, and the guess is not counted.
    #[error("password hashing is at capacity")]
    Busy,
    #[error("password hashing panicked: {0}")]
    Panicked(String),
}

impl From<PasswordWorkError> for crate::web::error::AppError {
    fn from(error: PasswordWorkError) -> Self {
        match error {
            PasswordWorkError::Busy => crate::web::error::AppError::Busy("password hashing"),
            PasswordWorkError::Panicked(_) => {
                crate::web::error::AppError::Internal(anyhow::Error::from(error))
            }
        }
    }
}

/// The turns at password hashing, shared by every request of the process.
pub struct PasswordWork {
    turns: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    running: Arc<AtomicUsize>,
    /// The most calls ever seen running at once (for tests and the curious).
    peak: Arc<AtomicUsize>,
}

impl PasswordWork {
    /// One turn per core this process may use.
    pub fn sized_to_cores() -> PasswordWork {
        let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
        PasswordWork::new(cores, WAIT)
    }

    pub fn new(capacity: usize, wait: Duration) -> PasswordWork {
        let capacity = capacity.max(1);
        PasswordWork {
            turns: Arc::new(Semaphore::new(capacity)),
            capacity,
            wait,
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Runs `work` (a hash or a verification) on the blocking pool once a turn is free.
    /// The turn is held by the blocking task itself, so a request that is dropped while
    /// its hash runs still keeps its turn until the hash is done: memory stays bounded.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PasswordWorkError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| PasswordWorkError::Busy)?
            .map_err(|_| PasswordWorkError::Busy)?;
        let running = self.running.clone();
        let peak = self.peak.clone();
        tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = work();
            running.fetch_sub(1, Ordering::SeqCst);
            drop(turn);
            result
        })
        .await
        .map_err(|error| PasswordWorkError::Panicked(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_finds_every_turn_taken_is_told_busy_after_the_wait() {
        let work = Arc::new(PasswordWork::new(1, Duration::from_millis(50)));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let holder = {
            let work = work.clone();
            tokio::spawn(async move {
                work.run(move || {
                    let _ = started.send(());
                    let _ = held.recv();
                })
                .await
            })
        };
        running.await.expect("the first call runs");
        assert!(matches!(
            work.run(|| ()).await,
            Err(PasswordWorkError::Busy)
        ));
        release.send(()).expect("holder waits");
        holder.await.expect("joined").expect("ran");
        assert_eq!(work.run(|| 7).await.expect("a turn is free again"), 7);
        assert_eq!(work.peak(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_never_runs_more_than_the_capacity_at_once() {
        let work = Arc::new(PasswordWork::new(2, Duration::from_secs(30)));
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let work = work.clone();
                tokio::spawn(async move {
                    work.run(|| {
                        // Some real work, so that calls overlap if they are let to.
                        crate::domain::password::hash_password("burst-password-1")
                            .map(|hash| hash.len())
                    })
                    .await
                })
            })
            .collect();
        for call in calls {
            assert!(call.await.expect("joined").expect("ran").expect("hashed") > 0);
        }
        assert!(work.peak() <= 2, "{}", work.peak());
        assert!(work.peak() >= 1);
    }
}
