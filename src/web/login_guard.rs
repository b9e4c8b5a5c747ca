//! Brute-force protection for sign-in forms, with counters in the cache so that every
//! instance agrees.
//!
//! - an account (ID number) is locked for [`WINDOW`] after [`ACCOUNT_LIMIT`] failures;
//! - a WeChat user (openid) is refused after [`OPENID_LIMIT`] failures in the window;
//! - a client address is refused after [`ADDRESS_LIMIT`] failures: higher than the
//!   others, because a campus network puts thousands of students behind one NAT address.
//!
//! Keys hold a SHA-256 of the ID number, never the number itself.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{CacheResult, SharedCache};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const ACCOUNT_LIMIT: i64 = 5;
pub const OPENID_LIMIT: i64 = 5;
pub const ADDRESS_LIMIT: i64 = 30;

/// Who is trying to sign in.
pub struct Attempt<'a> {
    /// The account, as typed (normalised by the caller).
    pub account: &'a str,
    pub address: Option<IpAddr>,
    pub openid: Option<&'a str>,
}

/// Why an attempt is refused before its password is even looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for this account; try again after the wait.
    AccountLocked { wait: Duration },
    /// Too many failures from this client.
    ClientThrottled { wait: Duration },
}

impl Refusal {
    /// What the page says, in minutes rounded up.
    pub fn message(&self) -> String {
        let wait = match self {
            Refusal::AccountLocked { wait } | Refusal::ClientThrottled { wait } => wait,
        };
        let minutes = wait.as_secs().div_ceil(60).max(1);
        match self {
            Refusal::AccountLocked { .. } => {
                format!("密码错误次数过多，该账号已锁定，请{minutes}分钟后再试")
            }
            Refusal::ClientThrottled { .. } => {
                format!("尝试次数过多，请{minutes}分钟后再试")
            }
        }
    }
}

#[derive(Clone)]
pub struct LoginGuard {
    cache: SharedCache,
    /// `student` or `admin`: separate counters for separate doors.
    door: &'static str,
}

impl LoginGuard {
    pub fn new(cache: SharedCache, door: &'static str) -> LoginGuard {
        LoginGuard { cache, door }
    }

    /// Refuses the attempt when any of its counters is at its limit.
    pub async fn check(&self, attempt: &Attempt<'_>) -> CacheResult<Option<Refusal>> {
        let account_key = self.account_key(attempt.account);
        if let Some(wait) = self.over_limit(&account_key, ACCOUNT_LIMIT).await? {
            return Ok(Some(Refusal::AccountLocked { wait }));
        }
        for (key, limit) in self.client_keys(attempt) {
            if let Some(wait) = self.over_limit(&key, limit).await? {
                return Ok(Some(Refusal::ClientThrottled { wait }));
            }
        }
        Ok(None)
    }

    /// Counts a failed attempt against the account and the client.
    pub async fn record_failure(&self, attempt: &Attempt<'_>) -> CacheResult<()> {
        self.cache
            .increment(&self.account_key(attempt.account), WINDOW)
            .await?;
        for (key, _) in self.client_keys(attempt) {
            self.cache.increment(&key, WINDOW).await?;
        }
        Ok(())
    }

    /// A success clears the account's counter (not the client's: one right password
    /// must not reset a guesser's budget for other accounts).
    pub async fn record_success(&self, attempt: &Attempt<'_>) -> CacheResult<()> {
        self.cache.delete(&self.account_key(attempt.account)).await
    }

    /// Unlocks an account (the finance office's reset).
    pub async fn unlock(&self, account: &str) -> CacheResult<()> {
        self.cache.delete(&self.account_key(account)).await
    }

    async fn over_limit(&self, key: &str, limit: i64) -> CacheResult<Option<Duration>> {
        let failures = match self.cache.get(key).await? {
            Some(raw) => raw.parse::<i64>().unwrap_or(0),
            None => 0,
        };
        if failures < limit {
            return Ok(None);
        }
        let wait = self.cache.time_to_live(key).await?.unwrap_or(WINDOW);
        Ok(Some(wait))
    }

    fn account_key(&self, account: &str) -> String {
        let digest = Sha256::digest(account.as_bytes());
        format!("login:{}:account:{}", self.door, hex::encode(&digest[..16]))
    }

    fn client_keys(&self, attempt: &Attempt<'_>) -> Vec<(String, i64)> {
        let mut keys = Vec::with_capacity(2);
        if let Some(address) = attempt.address {
            keys.push((
                format!("login:{}:address:{address}", self.door),
                ADDRESS_LIMIT,
            ));
        }
        if let Some(openid) = attempt.openid {
            keys.push((format!("login:{}:openid:{openid}", self.door), OPENID_LIMIT));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::MemoryCache;
    use crate::clock::Clock;

    fn attempt<'a>(account: &'a str, openid: Option<&'a str>) -> Attempt<'a> {
        Attempt {
            account,
            address: Some(IpAddr::from([10, 0, 0, 1])),
            openid,
        }
    }

    #[tokio::test]
    async fn five_failures_lock_the_account_for_the_window() {
        let clock = Clock::system();
        let guard = LoginGuard::new(Arc::new(MemoryCache::new(clock.clone())), "student");
        let account = "11010519491231002X";
        for _ in 0..ACCOUNT_LIMIT {
            assert_eq!(
                guard.check(&attempt(account, None)).await.expect("ok"),
                None
            );
            guard
                .record_failure(&attempt(account, None))
                .await
                .expect("ok");
        }
        let refusal = guard.check(&attempt(account, None)).await.expect("ok");
        assert!(matches!(refusal, Some(Refusal::AccountLocked { .. })));
        assert!(refusal.expect("locked").message().contains("15分钟"));
        // Another account from the same address is not locked by these five.
        assert_eq!(
            guard.check(&attempt("other", None)).await.expect("ok"),
            None
        );
        clock.advance(WINDOW + Duration::from_secs(1));
        assert_eq!(
            guard.check(&attempt(account, None)).await.expect("ok"),
            None
        );
    }

    #[tokio::test]
    async fn a_wechat_user_guessing_many_accounts_is_throttled() {
        let clock = Clock::system();
        let guard = LoginGuard::new(Arc::new(MemoryCache::new(clock)), "student");
        for n in 0..OPENID_LIMIT {
            let account = format!("account-{n}");
            guard
                .record_failure(&attempt(&account, Some("o_guesser")))
                .await
                .expect("ok");
        }
        let refusal = guard
            .check(&attempt("fresh-account", Some("o_guesser")))
            .await
            .expect("ok");
        assert!(matches!(refusal, Some(Refusal::ClientThrottled { .. })));
    }

    #[tokio::test]
    async fn success_clears_the_account_but_not_the_client() {
        let clock = Clock::system();
        let guard = LoginGuard::new(Arc::new(MemoryCache::new(clock)), "student");
        for _ in 0..ACCOUNT_LIMIT - 1 {
            guard
                .record_failure(&attempt("a", Some("o")))
                .await
                .expect("ok");
        }
        guard
            .record_success(&attempt("a", Some("o")))
            .await
            .expect("ok");
        guard
            .record_failure(&attempt("a", Some("o")))
            .await
            .expect("ok");
        assert!(matches!(
            guard.check(&attempt("a", Some("o"))).await.expect("ok"),
            Some(Refusal::ClientThrottled { .. })
        ));
    }
}
