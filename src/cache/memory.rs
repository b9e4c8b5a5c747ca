//! The in-process cache of the embedded default: one instance only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Cache, CacheError, CacheResult};
use crate::clock::Clock;

struct Entry {
    value: String,
    expires_at: DateTime<Utc>,
}

pub struct MemoryCache {
    clock: Clock,
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryCache {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the live entries (expired ones removed first, so no caller sees them).
    fn with_entries<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Entry>, DateTime<Utc>) -> T,
    ) -> CacheResult<T> {
        let now = self.clock.now();
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| CacheError::Unavailable("in-process cache poisoned".into()))?;
        // Purging on every call keeps the map bounded by what is alive; the embedded
        // default holds at most a few thousand keys.
        entries.retain(|_, entry| entry.expires_at > now);
        Ok(f(&mut entries, now))
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(3650))
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        self.with_entries(|entries, _| entries.get(key).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()> {
        self.with_entries(|entries, now| {
            let entry = Entry {
                value: value.to_owned(),
                expires_at: expiry(now, ttl),
            };
            entries.insert(key.to_owned(), entry);
        })
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool> {
        self.with_entries(|entries, now| {
            if entries.contains_key(key) {
                return false;
            }
            let entry = Entry {
                value: value.to_owned(),
                expires_at: expiry(now, ttl),
            };
            entries.insert(key.to_owned(), entry);
            true
        })
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        self.with_entries(|entries, _| {
            entries.remove(key);
        })
    }

    async fn delete_if_equals(&self, key: &str, expected: &str) -> CacheResult<bool> {
        self.with_entries(|entries, _| {
            if entries.get(key).is_some_and(|e| e.value == expected) {
                entries.remove(key);
                true
            } else {
                false
            }
        })
    }

    async fn increment(&self, key: &str, ttl: Duration) -> CacheResult<i64> {
        self.with_entries(|entries, now| {
            let entry = entries.entry(key.to_owned()).or_insert_with(|| Entry {
                value: "0".into(),
                expires_at: expiry(now, ttl),
            });
            let next = entry.value.parse::<i64>().unwrap_or(0).saturating_add(1);
            entry.value = next.to_string();
            next
        })
    }

    async fn time_to_live(&self, key: &str) -> CacheResult<Option<Duration>> {
        self.with_entries(|entries, now| {
            entries
                .get(key)
                .and_then(|e| (e.expires_at - now).to_std().ok())
        })
    }

    async fn ping(&self) -> CacheResult<()> {
        self.with_entries(|_, _| ())
    }
}
