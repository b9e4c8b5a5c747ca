//! Brute-force protection for sign-in forms, with counters in the cache so that every
//! instance agrees.
//!
//! - an account (ID number) is locked for [`WINDOW`] after [`ACCOUNT_LIMIT`] failures;
//! - a WeChat user (openid) is refused after [`OPENID_LIMIT`] failures in the window;
//! - a client address is refused after [`ADDRESS_LIMIT`] failures: higher than the
//!   others, because a campus network puts thousands of students behind one NAT address.
//!
//! An attempt is counted before its password is checked ([`LoginGuard::reserve`]), so
//! that guesses arriving together are held to the same limits as guesses one by one.
//! IPv6 clients are counted per /64 ([`counted_network`]).
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

/// A guess counted before it is checked: every counter of the attempt was raised and
/// none went over its limit. The outcome decides what happens to the counts:
/// [`LoginGuard::failed`] keeps them, [`LoginGuard::succeeded`] clears the account's
/// and gives the client's back, [`LoginGuard::release`] gives all back (the guess was
/// never checked). Dropped without either, the counts stay: a guess whose outcome is
/// unknown counts as a failure.
#[must_use = "a reservation ends as failed, succeeded or released"]
pub struct Reservation {
    account_key: String,
    client_keys: Vec<String>,
}

/// One counter an attempt raises, its limit, and what being over it means.
struct Counter {
    key: String,
    limit: i64,
    refusal: fn(Duration) -> Refusal,
}

impl LoginGuard {
    pub fn new(cache: SharedCache, door: &'static str) -> LoginGuard {
        LoginGuard { cache, door }
    }

    /// Counts the attempt against the account and the client before its password is
    /// looked at. Each counter is raised atomically and read in the same step, so of
    /// any number of simultaneous guesses at most the limit get a reservation; a guess
    /// over any limit takes its counts back and is refused.
    pub async fn reserve(
        &self,
        attempt: &Attempt<'_>,
    ) -> CacheResult<Result<Reservation, Refusal>> {
        let mut raised: Vec<&str> = Vec::new();
        let counters = self.counters(attempt);
        for counter in &counters {
            let count = match self.cache.increment(&counter.key, WINDOW).await {
                Ok(count) => count,
                Err(error) => {
                    self.take_back(&raised).await;
                    return Err(error);
                }
            };
            raised.push(&counter.key);
            if count > counter.limit {
                let wait = self.cache.time_to_live(&counter.key).await;
                self.take_back(&raised).await;
                let wait = wait?.unwrap_or(WINDOW);
                return Ok(Err((counter.refusal)(wait)));
            }
        }
        let mut keys = counters.into_iter().map(|counter| counter.key);
        let account_key = keys.next().unwrap_or_default();
        Ok(Ok(Reservation {
            account_key,
            client_keys: keys.collect(),
        }))
    }

    /// The guess was checked and wrong: its counts stay.
    pub fn failed(&self, reservation: Reservation) {
        drop(reservation);
    }

    /// The guess was right: the account's counter is cleared (not the client's: one
    /// right password must not reset a guesser's budget for other accounts), and the
    /// client's counts for this guess are given back.
    pub async fn succeeded(&self, reservation: Reservation) -> CacheResult<()> {
        self.cache.delete(&reservation.account_key).await?;
        for key in &reservation.client_keys {
            self.cache.decrement(key).await?;
        }
        Ok(())
    }

    /// The guess was never checked (the server was too busy): every count is given back.
    pub async fn release(&self, reservation: Reservation) -> CacheResult<()> {
        self.cache.decrement(&reservation.account_key).await?;
        for key in &reservation.client_keys {
            self.cache.decrement(key).await?;
        }
        Ok(())
    }

    /// Unlocks an account (the finance office's reset).
    pub async fn unlock(&self, account: &str) -> CacheResult<()> {
        self.cache.delete(&self.account_key(account)).await
    }

    /// Failed (and in-flight) guesses from `address` in the current window.
    pub async fn failures_from(&self, address: IpAddr) -> CacheResult<i64> {
        let raw = self.cache.get(&self.address_key(address)).await?;
        Ok(raw.and_then(|raw| raw.parse().ok()).unwrap_or(0))
    }

    /// Gives back counts raised by a reservation that did not complete. Best effort:
    /// a count that cannot be given back errs on the side of the lock.
    async fn take_back(&self, keys: &[&str]) {
        for key in keys {
            if let Err(error) = self.cache.decrement(key).await {
                tracing::warn!(%error, "cannot give back a sign-in count");
            }
        }
    }

    /// The account's counter first (its refusal names the lock), then the client's.
    fn counters(&self, attempt: &Attempt<'_>) -> Vec<Counter> {
        let mut counters = vec![Counter {
            key: self.account_key(attempt.account),
            limit: ACCOUNT_LIMIT,
            refusal: |wait| Refusal::AccountLocked { wait },
        }];
        if let Some(address) = attempt.address {
            counters.push(Counter {
                key: self.address_key(address),
                limit: ADDRESS_LIMIT,
                refusal: |wait| Refusal::ClientThrottled { wait },
            });
        }
        if let Some(openid) = attempt.openid {
            counters.push(Counter {
                key: format!("login:{}:openid:{openid}", self.door),
                limit: OPENID_LIMIT,
                refusal: |wait| Refusal::ClientThrottled { wait },
            });
        }
        counters
    }

    fn account_key(&self, account: &str) -> String {
        let digest = Sha256::digest(account.as_bytes());
        format!("login:{}:account:{}", self.door, hex::encode(&digest[..16]))
    }

    fn address_key(&self, address: IpAddr) -> String {
        format!("login:{}:address:{}", self.door, counted_network(address))
    }
}

/// The network a client's failures are counted against: the IPv4 address itself, an
/// IPv6 client's /64. One IPv6 subscriber (one home, one phone) is handed a whole /64
/// and may pick any of its 2^64 addresses: counted per address, it would never be
/// throttled. An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) counts as itself.
pub fn counted_network(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::sync::Arc;

    use super::*;
    use crate::cache::{MemoryCache, RedisCache};
    use crate::clock::Clock;

    fn attempt<'a>(account: &'a str, openid: Option<&'a str>) -> Attempt<'a> {
        Attempt {
            account,
            address: Some(IpAddr::from([10, 0, 0, 1])),
            openid,
        }
    }

    fn memory_guard(clock: &Clock) -> LoginGuard {
        LoginGuard::new(Arc::new(MemoryCache::new(clock.clone())), "student")
    }

    /// The in-process cache always; Redis too when `CAMPUSPAY_TEST_REDIS_URL` is set.
    async fn guards() -> Vec<LoginGuard> {
        let mut all = vec![memory_guard(&Clock::system())];
        if let Ok(url) = std::env::var("CAMPUSPAY_TEST_REDIS_URL") {
            let prefix = format!("cp_test:{}:", uuid::Uuid::new_v4());
            let redis = RedisCache::connect(&url, &prefix)
                .await
                .expect("CAMPUSPAY_TEST_REDIS_URL is set but Redis is unreachable");
            all.push(LoginGuard::new(Arc::new(redis), "student"));
        }
        all
    }

    async fn fail_once(guard: &LoginGuard, attempt: &Attempt<'_>) -> Result<(), Refusal> {
        let reservation = guard.reserve(attempt).await.expect("cache")?;
        guard.failed(reservation);
        Ok(())
    }

    #[tokio::test]
    async fn five_failures_lock_the_account_for_the_window() {
        let clock = Clock::system();
        let guard = memory_guard(&clock);
        let account = "11010519491231002X";
        for _ in 0..ACCOUNT_LIMIT {
            assert_eq!(fail_once(&guard, &attempt(account, None)).await, Ok(()));
        }
        let refusal = fail_once(&guard, &attempt(account, None)).await;
        assert!(matches!(refusal, Err(Refusal::AccountLocked { .. })));
        assert!(refusal.expect_err("locked").message().contains("15分钟"));
        // Another account from the same address is not locked by these five.
        assert_eq!(fail_once(&guard, &attempt("other", None)).await, Ok(()));
        clock.advance(WINDOW + Duration::from_secs(1));
        assert_eq!(fail_once(&guard, &attempt(account, None)).await, Ok(()));
    }

    #[tokio::test]
    async fn a_wechat_user_guessing_many_accounts_is_throttled() {
        let guard = memory_guard(&Clock::system());
        for n in 0..OPENID_LIMIT {
            let account = format!("account-{n}");
            assert_eq!(
                fail_once(&guard, &attempt(&account, Some("o_guesser"))).await,
                Ok(())
            );
        }
        let refusal = fail_once(&guard, &attempt("fresh-account", Some("o_guesser"))).await;
        assert!(matches!(refusal, Err(Refusal::ClientThrottled { .. })));
        // The refused guess took its count on the fresh account back.
        assert_eq!(
            guard
                .cache
                .get(&guard.account_key("fresh-account"))
                .await
                .expect("cache")
                .as_deref(),
            Some("0")
        );
    }

    #[tokio::test]
    async fn success_clears_the_account_but_not_the_client() {
        let guard = memory_guard(&Clock::system());
        for _ in 0..ACCOUNT_LIMIT - 1 {
            fail_once(&guard, &attempt("a", Some("o")))
                .await
                .expect("counted");
        }
        let right = guard
            .reserve(&attempt("a", Some("o")))
            .await
            .expect("cache")
            .expect("reserved");
        guard.succeeded(right).await.expect("cache");
        fail_once(&guard, &attempt("a", Some("o")))
            .await
            .expect("counted");
        assert!(matches!(
            fail_once(&guard, &attempt("a", Some("o"))).await,
            Err(Refusal::ClientThrottled { .. })
        ));
    }

    #[tokio::test]
    async fn a_released_guess_counts_for_nothing() {
        let guard = memory_guard(&Clock::system());
        for _ in 0..ACCOUNT_LIMIT * 3 {
            let reservation = guard
                .reserve(&attempt("a", Some("o")))
                .await
                .expect("cache")
                .expect("reserved");
            guard.release(reservation).await.expect("cache");
        }
        assert_eq!(fail_once(&guard, &attempt("a", Some("o"))).await, Ok(()));
    }

    /// The n-th guesser of a burst: account, openid, address.
    type Guesser = fn(usize) -> (String, Option<String>, IpAddr);

    /// Many guesses at once, each held until all have asked: no more than the limit are
    /// let through to the password check, on every cache backend and for every counter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn simultaneous_guesses_get_no_more_reservations_than_the_limit() {
        for guard in guards().await {
            let cases: [(&str, Guesser, i64); 3] = [
                (
                    "one account from many clients",
                    |n| {
                        (
                            "acct".into(),
                            None,
                            IpAddr::from([10, 1, (n / 250) as u8, (n % 250) as u8]),
                        )
                    },
                    ACCOUNT_LIMIT,
                ),
                (
                    "one WeChat user, many accounts",
                    |n| {
                        (
                            format!("acct-{n}"),
                            Some("o_many".into()),
                            IpAddr::from([10, 2, (n / 250) as u8, (n % 250) as u8]),
                        )
                    },
                    OPENID_LIMIT,
                ),
                (
                    "one address, many accounts",
                    |n| (format!("addr-acct-{n}"), None, IpAddr::from([10, 3, 3, 3])),
                    ADDRESS_LIMIT,
                ),
            ];
            for (case, who, limit) in cases {
                let attempts = 25 + limit as usize;
                let barrier = Arc::new(tokio::sync::Barrier::new(attempts));
                let guesses: Vec<_> = (0..attempts)
                    .map(|n| {
                        let guard = guard.clone();
                        let barrier = barrier.clone();
                        let (account, openid, address) = who(n);
                        tokio::spawn(async move {
                            barrier.wait().await;
                            let attempt = Attempt {
                                account: &account,
                                address: Some(address),
                                openid: openid.as_deref(),
                            };
                            let outcome = guard.reserve(&attempt).await.expect("cache");
                            outcome.map(|reservation| guard.failed(reservation)).is_ok()
                        })
                    })
                    .collect();
                let mut reserved = 0;
                for guess in guesses {
                    reserved += i64::from(guess.await.expect("joined"));
                }
                assert_eq!(reserved, limit, "{case}");
            }
        }
    }

    #[test]
    fn ipv6_clients_count_per_64_and_ipv4_per_address() {
        let one: IpAddr = "2001:db8:aa:bb:1:2:3:4".parse().expect("v6");
        let same_64: IpAddr = "2001:db8:aa:bb:ffff::9".parse().expect("v6");
        let next_64: IpAddr = "2001:db8:aa:bc::1".parse().expect("v6");
        assert_eq!(counted_network(one), "2001:db8:aa:bb::/64");
        assert_eq!(counted_network(one), counted_network(same_64));
        assert_ne!(counted_network(one), counted_network(next_64));
        assert_eq!(counted_network(IpAddr::from([10, 0, 0, 1])), "10.0.0.1");
        assert_ne!(
            counted_network(IpAddr::from([10, 0, 0, 1])),
            counted_network(IpAddr::from([10, 0, 0, 2]))
        );
        let mapped = IpAddr::V6(Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001]));
        assert_eq!(counted_network(mapped), "10.0.0.1");
    }

    #[tokio::test]
    async fn addresses_of_one_ipv6_64_share_one_budget() {
        let guard = memory_guard(&Clock::system());
        for n in 0..ADDRESS_LIMIT {
            let address: IpAddr = format!("2001:db8:aa:bb::{:x}", n + 1).parse().expect("v6");
            let account = format!("acct-{n}");
            let attempt = Attempt {
                account: &account,
                address: Some(address),
                openid: None,
            };
            fail_once(&guard, &attempt).await.expect("counted");
        }
        let fresh: IpAddr = "2001:db8:aa:bb:dead:beef:0:1".parse().expect("v6");
        let refused = fail_once(
            &guard,
            &Attempt {
                account: "fresh",
                address: Some(fresh),
                openid: None,
            },
        )
        .await;
        assert!(matches!(refused, Err(Refusal::ClientThrottled { .. })));
        assert_eq!(
            guard.failures_from(fresh).await.expect("cache"),
            ADDRESS_LIMIT
        );
    }
}
