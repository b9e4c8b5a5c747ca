//! The time the program believes it is. Production uses the system clock; tests use
//! a manual clock they can advance, so nothing waits for real time to pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; shared by every clone.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(other.now() - before >= Duration::seconds(3600));
    }
}
