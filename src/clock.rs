//! The time the program believes it is. Production uses the system clock; tests use
//! a manual clock they can advance, so nothing waits for real time to pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; shared by every clone.
    offset_ms: Arc<AtomicI64>,
    /// Milliseconds this clock is off from the one it was split from
    /// ([`Clock::split_off`]): a simulated upstream's own clock error. Shared by the
    /// clones made after the split, not by the clock split from.
    skew_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let skew = self.skew_ms.load(Ordering::Relaxed);
        Utc::now() + Duration::milliseconds(offset.saturating_add(skew))
    }

    /// A clock that advances with this one but can be set off from it with
    /// [`Clock::set_skew`]: how a sandbox keeps its own, slightly wrong, time.
    pub fn split_off(&self) -> Self {
        Self {
            offset_ms: self.offset_ms.clone(),
            skew_ms: Arc::new(AtomicI64::new(self.skew_ms.load(Ordering::Relaxed))),
        }
    }

    /// Sets how far this clock (and its clones since the split) is ahead of the clock
    /// it was split from; negative is behind.
    pub fn set_skew(&self, skew: Duration) {
        self.skew_ms
            .store(skew.num_milliseconds(), Ordering::Relaxed);
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

    #[test]
    fn a_split_clock_advances_together_but_keeps_its_own_skew() {
        let app = Clock::system();
        let upstream = app.split_off();
        upstream.set_skew(Duration::seconds(-120));
        let behind = app.now() - upstream.now();
        assert!((119..=121).contains(&behind.num_seconds()), "{behind}");
        app.advance(std::time::Duration::from_secs(3600));
        let behind = app.now() - upstream.now();
        assert!((119..=121).contains(&behind.num_seconds()), "{behind}");
        assert!((app.now() - app.clone().now()).num_seconds().abs() <= 1);
    }
}
