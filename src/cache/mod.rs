//! What must be shared between instances: tokens, sessions, locks, dedup keys,
//! counters. One trait, two implementations: Redis for production, in-process for
//! the embedded single-instance default.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

pub type CacheResult<T> = Result<T, CacheError>;

#[async_trait::async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> CacheResult<Option<String>>;

    /// Sets `key`, replacing any value, expiring after `ttl`.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()>;

    /// Sets `key` only when it is absent; true when this call set it. The building
    /// block of dedup keys and locks.
    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool>;

    async fn delete(&self, key: &str) -> CacheResult<()>;

    /// Reads `key` and deletes it in one step; the value to exactly one caller however
    /// many ask at once. One-use things (captcha answers) are taken, never read and
    /// then deleted.
    async fn take(&self, key: &str) -> CacheResult<Option<String>>;

    /// Deletes `key` only while it still holds `expected`; true when deleted. Releases
    /// a lock only by its holder, and drops a token only if it is the one that failed.
    async fn delete_if_equals(&self, key: &str, expected: &str) -> CacheResult<bool>;

    /// Adds one to a counter and returns the new value; the first increment starts
    /// the counter's `ttl` (a fixed window, as rate limits need).
    async fn increment(&self, key: &str, ttl: Duration) -> CacheResult<i64>;

    /// Takes one back from a counter that [`Cache::increment`] raised, keeping its
    /// window; nothing when the counter is gone (expired) or already at zero, so a late
    /// release never creates a key or drives one negative.
    async fn decrement(&self, key: &str) -> CacheResult<()>;

    /// Time left before `key` expires; `None` when the key is absent.
    async fn time_to_live(&self, key: &str) -> CacheResult<Option<Duration>>;

    /// Round trip to the backend, for readiness checks.
    async fn ping(&self) -> CacheResult<()>;
}

pub type SharedCache = Arc<dyn Cache>;

/// A lock held in the cache, so that one instance among many does a piece of work.
pub struct CacheLock {
    cache: SharedCache,
    key: String,
    holder: String,
}

impl CacheLock {
    /// Takes the lock if free. The ttl bounds how long a crashed holder blocks others.
    pub async fn try_acquire(
        cache: &SharedCache,
        key: &str,
        ttl: Duration,
    ) -> CacheResult<Option<CacheLock>> {
        let holder = uuid::Uuid::new_v4().to_string();
        if cache.set_if_absent(key, &holder, ttl).await? {
            Ok(Some(CacheLock {
                cache: cache.clone(),
                key: key.to_owned(),
                holder,
            }))
        } else {
            Ok(None)
        }
    }

    pub async fn release(self) -> CacheResult<bool> {
        self.cache.delete_if_equals(&self.key, &self.holder).await
    }
}

#[cfg(test)]
mod contract_tests {
    //! The same contract for every backend: in-process always, Redis when
    //! `CAMPUSPAY_TEST_REDIS_URL` is set (CI always sets it).
    use super::*;
    use crate::clock::Clock;

    async fn backends() -> Vec<(SharedCache, Option<Clock>)> {
        let clock = Clock::system();
        let mut all: Vec<(SharedCache, Option<Clock>)> =
            vec![(Arc::new(MemoryCache::new(clock.clone())), Some(clock))];
        if let Ok(url) = std::env::var("CAMPUSPAY_TEST_REDIS_URL") {
            let prefix = format!("cp_test:{}:", uuid::Uuid::new_v4());
            let redis = RedisCache::connect(&url, &prefix)
                .await
                .expect("CAMPUSPAY_TEST_REDIS_URL is set but Redis is unreachable");
            all.push((Arc::new(redis), None));
        }
        all
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn get_returns_what_set_stored_and_none_for_absent_keys() {
        for (cache, _) in backends().await {
            assert_eq!(cache.get("k").await.unwrap(), None);
            cache.set("k", "v1", MINUTE).await.unwrap();
            cache.set("k", "v2", MINUTE).await.unwrap();
            assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v2"));
            cache.delete("k").await.unwrap();
            assert_eq!(cache.get("k").await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn set_applies_the_ttl() {
        for (cache, clock) in backends().await {
            cache.set("t", "v", MINUTE).await.unwrap();
            let left = cache.time_to_live("t").await.unwrap().unwrap();
            assert!(left <= MINUTE && left > Duration::from_secs(50), "{left:?}");
            assert_eq!(cache.time_to_live("absent").await.unwrap(), None);
            if let Some(clock) = clock {
                clock.advance(Duration::from_secs(61));
                assert_eq!(cache.get("t").await.unwrap(), None);
                assert_eq!(cache.time_to_live("t").await.unwrap(), None);
            }
        }
    }

    #[tokio::test]
    async fn set_if_absent_sets_once_until_expiry() {
        for (cache, clock) in backends().await {
            assert!(cache.set_if_absent("d", "first", MINUTE).await.unwrap());
            assert!(!cache.set_if_absent("d", "second", MINUTE).await.unwrap());
            assert_eq!(cache.get("d").await.unwrap().as_deref(), Some("first"));
            if let Some(clock) = clock {
                clock.advance(Duration::from_secs(61));
                assert!(cache.set_if_absent("d", "third", MINUTE).await.unwrap());
            }
        }
    }

    #[tokio::test]
    async fn set_if_absent_has_one_winner_under_concurrency() {
        for (cache, _) in backends().await {
            let attempts = (0..16).map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    cache
                        .set_if_absent("race", &i.to_string(), MINUTE)
                        .await
                        .unwrap()
                })
            });
            let mut winners = 0;
            for attempt in attempts {
                winners += usize::from(attempt.await.unwrap());
            }
            assert_eq!(winners, 1);
        }
    }

    #[tokio::test]
    async fn delete_if_equals_only_deletes_the_expected_value() {
        for (cache, _) in backends().await {
            cache.set("tok", "old", MINUTE).await.unwrap();
            assert!(!cache.delete_if_equals("tok", "other").await.unwrap());
            assert_eq!(cache.get("tok").await.unwrap().as_deref(), Some("old"));
            assert!(cache.delete_if_equals("tok", "old").await.unwrap());
            assert_eq!(cache.get("tok").await.unwrap(), None);
            assert!(!cache.delete_if_equals("tok", "old").await.unwrap());
        }
    }

    #[tokio::test]
    async fn counters_count_within_their_window() {
        for (cache, clock) in backends().await {
            assert_eq!(cache.increment("c", MINUTE).await.unwrap(), 1);
            assert_eq!(cache.increment("c", MINUTE).await.unwrap(), 2);
            assert_eq!(cache.increment("c", MINUTE).await.unwrap(), 3);
            let left = cache.time_to_live("c").await.unwrap().unwrap();
            assert!(left <= MINUTE);
            if let Some(clock) = clock {
                clock.advance(Duration::from_secs(61));
                assert_eq!(cache.increment("c", MINUTE).await.unwrap(), 1);
            }
        }
    }

    #[tokio::test]
    async fn take_gives_the_value_to_exactly_one_caller() {
        for (cache, _) in backends().await {
            assert_eq!(cache.take("once").await.unwrap(), None);
            cache.set("once", "answer", MINUTE).await.unwrap();
            let takers: Vec<_> = (0..16)
                .map(|_| {
                    let cache = cache.clone();
                    tokio::spawn(async move { cache.take("once").await.unwrap() })
                })
                .collect();
            let mut taken = Vec::new();
            for taker in takers {
                taken.extend(taker.await.unwrap());
            }
            assert_eq!(taken, vec!["answer".to_owned()]);
            assert_eq!(cache.get("once").await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn decrement_takes_back_an_increment_but_never_creates_a_key() {
        for (cache, _) in backends().await {
            cache.decrement("absent").await.unwrap();
            assert_eq!(cache.get("absent").await.unwrap(), None);
            assert_eq!(cache.increment("n", MINUTE).await.unwrap(), 1);
            assert_eq!(cache.increment("n", MINUTE).await.unwrap(), 2);
            cache.decrement("n").await.unwrap();
            cache.decrement("n").await.unwrap();
            cache.decrement("n").await.unwrap();
            assert_eq!(cache.get("n").await.unwrap().as_deref(), Some("0"));
            assert!(
                cache.time_to_live("n").await.unwrap().is_some(),
                "the window stays"
            );
            assert_eq!(cache.increment("n", MINUTE).await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn locks_exclude_others_and_release_only_by_their_holder() {
        for (cache, _) in backends().await {
            let lock = CacheLock::try_acquire(&cache, "job", MINUTE).await.unwrap();
            let lock = lock.expect("a free lock is taken");
            assert!(
                CacheLock::try_acquire(&cache, "job", MINUTE)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(lock.release().await.unwrap());
            let again = CacheLock::try_acquire(&cache, "job", MINUTE).await.unwrap();
            assert!(again.is_some());
        }
    }

    #[tokio::test]
    async fn ping_answers() {
        for (cache, _) in backends().await {
            cache.ping().await.unwrap();
        }
    }
}
