//! The Redis cache: what several instances share. Every key gets a prefix so that
//! tests (and, if ever needed, several deployments) can share one Redis.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{Cache, CacheError, CacheResult};

pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    delete_if_equals: Script,
    increment_with_window: Script,
    take: Script,
    decrement_if_positive: Script,
}

impl RedisCache {
    pub async fn connect(url: &str, prefix: &str) -> CacheResult<Self> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            delete_if_equals: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
            ),
            increment_with_window: Script::new(
                "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n",
            ),
            // GET and DEL in one script rather than GETDEL: Redis before 6.2 lacks it.
            take: Script::new(
                "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v",
            ),
            // DECR on an absent key would create it without an expiry: only when present.
            decrement_if_positive: Script::new(
                "local v = tonumber(redis.call('GET', KEYS[1])) if v and v > 0 then return redis.call('DECR', KEYS[1]) end return 0",
            ),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

fn unavailable(error: redis::RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        let mut connection = self.connection.clone();
        connection.get(self.key(key)).await.map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> CacheResult<bool> {
        let mut connection = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> CacheResult<()> {
        let mut connection = self.connection.clone();
        connection
            .del::<_, ()>(self.key(key))
            .await
            .map_err(unavailable)
    }

    async fn take(&self, key: &str) -> CacheResult<Option<String>> {
        let mut connection = self.connection.clone();
        self.take
            .key(self.key(key))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn delete_if_equals(&self, key: &str, expected: &str) -> CacheResult<bool> {
        let mut connection = self.connection.clone();
        let deleted: i64 = self
            .delete_if_equals
            .key(self.key(key))
            .arg(expected)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(deleted == 1)
    }

    async fn increment(&self, key: &str, ttl: Duration) -> CacheResult<i64> {
        let mut connection = self.connection.clone();
        self.increment_with_window
            .key(self.key(key))
            .arg(millis(ttl))
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn decrement(&self, key: &str) -> CacheResult<()> {
        let mut connection = self.connection.clone();
        self.decrement_if_positive
            .key(self.key(key))
            .invoke_async::<i64>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn time_to_live(&self, key: &str) -> CacheResult<Option<Duration>> {
        let mut connection = self.connection.clone();
        let ms: i64 = connection.pttl(self.key(key)).await.map_err(unavailable)?;
        // -2: no such key; -1: no expiry (we never set one, but say "absent" rather than lie).
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn ping(&self) -> CacheResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
