//! Work pushed off the request path (upstream calls, slow writes). Tracked so that
//! shutdown and tests can wait for it instead of sleeping.

use std::future::Future;

use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` in the background; failures are the task's own to log.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(work);
    }

    /// Waits until every task spawned so far has finished.
    pub async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }
}
