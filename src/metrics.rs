//! Counters the program keeps about itself. Shared by every clone of the state; read
//! by tests now and by `/metrics` later.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Webhook messages answered for the first time (their effects performed).
    pub webhook_messages: AtomicU64,
    /// Copies of a message already seen (WeChat's retries), answered from the cache.
    pub webhook_retries: AtomicU64,
    /// Webhook requests refused (bad signature, malformed, too large…).
    pub webhook_refused: AtomicU64,
    /// Payment notifications refused (signature, amount, unknown order…).
    pub notifications_refused: AtomicU64,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused payment notification; `reason` is logged with it (labels per
    /// reason come with `/metrics`).
    pub fn notification_refused(&self, reason: &'static str) {
        tracing::debug!(reason, "notification refused");
        Metrics::count(&self.notifications_refused);
    }

    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
