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
    state: Mutex<State>,
}

struct State {
    entries: HashMap<String, Entry>,
    last_purge: DateTime<Utc>,
}

/// Expired entries are invisible at once (every access checks the key it touches) and
/// removed in bulk at most this often, so that a call costs the same with 50,000 dedup
/// keys alive as with 5.
const PURGE_EVERY: chrono::Duration = chrono::Duration::seconds(1);

impl MemoryCache {
    pub fn new(clock: Clock) -> Self {
        let now = clock.now();
        Self {
            clock,
            state: Mutex::new(State {
                entries: HashMap::new(),
                last_purge: now,
            }),
        }
    }

    /// Runs `f` on the entries with `key`'s own entry dropped first if it expired, so
    /// no caller sees an expired value.
    fn with_entries<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut HashMap<String, Entry>, DateTime<Utc>) -> T,
    ) -> CacheResult<T> {
        let now = self.clock.now();
        let mut state = self
            .state
            .lock()
            .map_err(|_| CacheError::Unavailable("in-process cache poisoned".into()))?;
        if now - state.last_purge >= PURGE_EVERY || now < state.last_purge {
            state.entries.retain(|_, entry| entry.expires_at > now);
            state.last_purge = now;
        }
        if state
            .entries
            .get(key)
            .is_some_and(|entry| entry.expires_at <= now)
        {
            state.entries.remove(key);
        }
        Ok(f(&mut state.entries, now))
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(3650))
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        self.with_entries(key, |entries, _| entries.get(key).map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()> {
        self.with_entries(key, |entries, now| {
            let entry = Entry {
                value: value.to_owned(),
                expires_at: expiry(now, ttl),
            };
            entries.insert(key.to_owned(), entry);
        })
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool> {
        self.with_entries(key, |entries, now| {
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
        self.with_entries(key, |entries, _| {
            entries.remove(key);
        })
    }

    async fn take(&self, key: &str) -> CacheResult<Option<String>> {
        self.with_entries(key, |entries, _| entries.remove(key).map(|e| e.value))
    }

    async fn delete_if_equals(&self, key: &str, expected: &str) -> CacheResult<bool> {
        self.with_entries(key, |entries, _| {
            if entries.get(key).is_some_and(|e| e.value == expected) {
                entries.remove(key);
                true
            } else {
                false
            }
        })
    }

    async fn increment(&self, key: &str, ttl: Duration) -> CacheResult<i64> {
        self.with_entries(key, |entries, now| {
            let entry = entries.entry(key.to_owned()).or_insert_with(|| Entry {
                value: "0".into(),
                expires_at: expiry(now, ttl),
            });
            let next = entry.value.parse::<i64>().unwrap_or(0).saturating_add(1);
            entry.value = next.to_string();
            next
        })
    }

    async fn decrement(&self, key: &str) -> CacheResult<()> {
        self.with_entries(key, |entries, _| {
            if let Some(entry) = entries.get_mut(key) {
                let count = entry.value.parse::<i64>().unwrap_or(0);
                entry.value = count.saturating_sub(1).max(0).to_string();
            }
        })
    }

    async fn time_to_live(&self, key: &str) -> CacheResult<Option<Duration>> {
        self.with_entries(key, |entries, now| {
            entries
                .get(key)
                .and_then(|e| (e.expires_at - now).to_std().ok())
        })
    }

    async fn ping(&self) -> CacheResult<()> {
        self.with_entries("", |_, _| ())
    }
}
