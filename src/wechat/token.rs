//! The official account's access token: one per appid, kept in the shared cache so
//! that every instance uses the same one, and fetched by one caller at a time.
//!
//! Several fetchers racing each other is how accounts end up in a 40001 loop (see the
//! research notes, §4.1), so a fetch happens only under a cache lock, after checking
//! once more that nobody fetched while we waited. We use `stable_token` in normal mode:
//! it returns the same token while it is valid, so a second fetch is harmless anyway.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use url::Url;

use super::api::{self, ApiError};
use crate::cache::{CacheLock, SharedCache};
use crate::metrics::UpstreamObserver;

pub(super) const STABLE_TOKEN_PATH: &str = "cgi-bin/stable_token";

/// Refresh this long before WeChat's expiry; `stable_token` renews in the last 5 min.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);
/// Keep even a short-lived token this long, so a near-expiry answer cannot cause a
/// fetch per call.
const MIN_CACHE_TTL: Duration = Duration::from_secs(60);
/// Longer than the HTTP client's 10 s timeout, so a live holder never loses the lock
/// mid-fetch, yet short enough that a crashed holder blocks others only briefly.
const LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a caller waits for someone else's fetch before giving up.
const WAIT_BUDGET: Duration = Duration::from_secs(3);
/// How often a caller looks for the token another instance is fetching.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// An access token. Its `Debug` hides the value so it cannot slip into a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

/// The body of `POST /cgi-bin/stable_token`.
#[derive(Serialize)]
struct StableTokenRequest<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

#[derive(Deserialize)]
struct StableTokenReply {
    access_token: String,
    expires_in: u64,
}

pub struct TokenKeeper {
    http: reqwest::Client,
    stable_token_url: Url,
    appid: String,
    secret: SecretString,
    cache: SharedCache,
    token_key: String,
    lock_key: String,
    /// Callers in this process queue here instead of polling the cache.
    local_gate: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
    observer: UpstreamObserver,
}

impl TokenKeeper {
    /// `api_base` must end with `/` (as `ApiClient` makes it).
    pub fn new(
        http: reqwest::Client,
        api_base: &Url,
        appid: &str,
        secret: SecretString,
        cache: SharedCache,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            http,
            stable_token_url: api::endpoint(api_base, STABLE_TOKEN_PATH)?,
            appid: appid.to_owned(),
            secret,
            cache,
            token_key: format!("wechat:access_token:{appid}"),
            lock_key: format!("wechat:access_token_lock:{appid}"),
            local_gate: tokio::sync::Mutex::new(()),
            refreshes: AtomicU64::new(0),
            observer: UpstreamObserver::default(),
        })
    }

    /// Reports each token fetch (the call, and the refresh) to `observer`.
    pub fn observed(mut self, observer: UpstreamObserver) -> Self {
        self.observer = observer;
        self
    }

    /// The cached token, or a fresh one fetched by this caller or another.
    pub async fn access_token(&self) -> Result<AccessToken, ApiError> {
        match self.cached().await? {
            Some(token) => Ok(token),
            None => self.refresh().await,
        }
    }

    /// Drops `failed` from the cache if it is still the cached token; true when
    /// dropped. A token someone already replaced stays, so one stale caller cannot
    /// throw away the fresh token another caller just fetched.
    pub async fn invalidate_if_current(&self, failed: &AccessToken) -> Result<bool, ApiError> {
        Ok(self
            .cache
            .delete_if_equals(&self.token_key, failed.expose())
            .await?)
    }

    /// How many tokens this keeper fetched from WeChat since it was built.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    async fn cached(&self) -> Result<Option<AccessToken>, ApiError> {
        Ok(self.cache.get(&self.token_key).await?.map(AccessToken))
    }

    async fn refresh(&self) -> Result<AccessToken, ApiError> {
        let deadline = Instant::now() + WAIT_BUDGET;
        let _gate = tokio::time::timeout_at(deadline, self.local_gate.lock())
            .await
            .map_err(|_| busy())?;
        if let Some(token) = self.cached().await? {
            return Ok(token);
        }
        loop {
            if let Some(lock) =
                CacheLock::try_acquire(&self.cache, &self.lock_key, LOCK_TTL).await?
            {
                let fetched = self.fetch_unless_cached().await;
                release(lock).await;
                return fetched;
            }
            // Another instance holds the lock; its token lands in the cache shortly.
            if Instant::now() >= deadline {
                return Err(busy());
            }
            tokio::time::sleep_until((Instant::now() + POLL_INTERVAL).min(deadline)).await;
            if let Some(token) = self.cached().await? {
                return Ok(token);
            }
        }
    }

    /// Under the lock: someone may have stored a token between our miss and the lock.
    async fn fetch_unless_cached(&self) -> Result<AccessToken, ApiError> {
        if let Some(token) = self.cached().await? {
            return Ok(token);
        }
        let reply = self.fetch_stable_token().await?;
        let ttl = cache_ttl(reply.expires_in);
        self.cache
            .set(&self.token_key, &reply.access_token, ttl)
            .await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        self.observer.token_refreshed();
        tracing::info!(
            appid = %self.appid,
            expires_in = reply.expires_in,
            cached_for_secs = ttl.as_secs(),
            "fetched a WeChat access token"
        );
        Ok(AccessToken(reply.access_token))
    }

    async fn fetch_stable_token(&self) -> Result<StableTokenReply, ApiError> {
        let body = StableTokenRequest {
            grant_type: "client_credential",
            appid: &self.appid,
            secret: self.secret.expose_secret(),
            force_refresh: false,
        };
        let exchange = async {
            let response = self
                .http
                .post(self.stable_token_url.clone())
                .json(&body)
                .send()
                .await
                .map_err(|error| api::transport(STABLE_TOKEN_PATH, error))?;
            api::read_reply(STABLE_TOKEN_PATH, response).await
        };
        api::observe(&self.observer, STABLE_TOKEN_PATH, exchange).await
    }
}

fn busy() -> ApiError {
    ApiError::TokenBusy {
        waited: WAIT_BUDGET,
    }
}

async fn release(lock: CacheLock) {
    // Failing to release only delays others until the lock's ttl runs out.
    if let Err(error) = lock.release().await {
        tracing::warn!(error = %error, "could not release the access token lock");
    }
}

/// How long to keep a token WeChat says lives `expires_in` seconds.
fn cache_ttl(expires_in: u64) -> Duration {
    Duration::from_secs(expires_in)
        .saturating_sub(EXPIRY_MARGIN)
        .max(MIN_CACHE_TTL)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::MemoryCache;
    use crate::clock::Clock;

    fn keeper(cache: SharedCache) -> TokenKeeper {
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        let secret = SecretString::from("secret");
        TokenKeeper::new(reqwest::Client::new(), &base, "wxappid", secret, cache).unwrap()
    }

    fn memory_cache() -> SharedCache {
        Arc::new(MemoryCache::new(Clock::system()))
    }

    #[test]
    fn tokens_are_kept_five_minutes_less_than_wechat_allows_but_at_least_a_minute() {
        assert_eq!(cache_ttl(7200), Duration::from_secs(6900));
        assert_eq!(cache_ttl(400), Duration::from_secs(100));
        assert_eq!(cache_ttl(300), Duration::from_secs(60));
        assert_eq!(cache_ttl(0), Duration::from_secs(60));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = AccessToken("ACCESS_TOKEN_VALUE".into());
        assert!(!format!("{token:?}").contains("ACCESS_TOKEN_VALUE"));
    }

    #[tokio::test]
    async fn a_cached_token_is_returned_without_fetching() {
        let cache = memory_cache();
        cache
            .set(
                "wechat:access_token:wxappid",
                "cached",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let keeper = keeper(cache);
        assert_eq!(keeper.access_token().await.unwrap().expose(), "cached");
        assert_eq!(keeper.refresh_count(), 0);
    }

    #[tokio::test]
    async fn invalidation_drops_only_the_token_that_failed() {
        let cache = memory_cache();
        let keeper = keeper(cache.clone());
        cache
            .set(
                "wechat:access_token:wxappid",
                "newer",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        let stale = AccessToken("older".into());
        assert!(!keeper.invalidate_if_current(&stale).await.unwrap());
        assert_eq!(
            cache.get("wechat:access_token:wxappid").await.unwrap(),
            Some("newer".into())
        );
        let current = AccessToken("newer".into());
        assert!(keeper.invalidate_if_current(&current).await.unwrap());
        assert_eq!(
            cache.get("wechat:access_token:wxappid").await.unwrap(),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_gives_up_when_another_instance_holds_the_lock_too_long() {
        let cache = memory_cache();
        // Another instance took the lock and never stores a token.
        let _held = CacheLock::try_acquire(&cache, "wechat:access_token_lock:wxappid", LOCK_TTL)
            .await
            .unwrap()
            .unwrap();
        let keeper = keeper(cache);
        let started = Instant::now();
        let error = keeper.access_token().await.unwrap_err();
        assert!(matches!(error, ApiError::TokenBusy { .. }), "{error:?}");
        assert!(started.elapsed() <= WAIT_BUDGET + POLL_INTERVAL);
        assert_eq!(keeper.refresh_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_caller_takes_the_token_another_instance_stored() {
        let cache = memory_cache();
        let held = CacheLock::try_acquire(&cache, "wechat:access_token_lock:wxappid", LOCK_TTL)
            .await
            .unwrap()
            .unwrap();
        let keeper = keeper(cache.clone());
        let waiting = tokio::spawn(async move { keeper.access_token().await });
        // The other instance finishes its fetch while we poll.
        tokio::task::yield_now().await;
        cache
            .set(
                "wechat:access_token:wxappid",
                "theirs",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        held.release().await.unwrap();
        let token = waiting.await.unwrap().unwrap();
        assert_eq!(token.expose(), "theirs");
    }
}
