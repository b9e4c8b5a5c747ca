//! Sessions of students (and later admins), kept in the cache so that every instance
//! behind the proxy sees the same ones.
//!
//! The cookie holds only a random id; what the session knows lives under
//! `session:{id}` and expires after [`IDLE_TIMEOUT`] without a request. Every session
//! carries its own CSRF token, which every form posts back.

use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::cache::{CacheError, SharedCache};

pub const COOKIE_NAME: &str = "cp_session";
/// The console's own cookie, sent only to `/admin`: a student's session and an
/// admin's never mix, and a link from elsewhere never carries the admin's cookie.
pub const ADMIN_COOKIE_NAME: &str = "cp_admin";
/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Refreshing the expiry on every request would double the cache's writes under load;
/// a session touched within this window keeps its expiry.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// What a session knows. Kept small: it is read on every page.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionData {
    pub csrf: String,
    /// The signed-in student.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_id: Option<i64>,
    /// The signed-in admin (console sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_id: Option<i64>,
    /// The WeChat user, once OAuth told us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    /// The `state` of the OAuth round trip in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_state: Option<String>,
    /// A one-time message for the next page (e.g. "the old WeChat account was unbound").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// When the expiry was last pushed back.
    pub touched_at: i64,
    /// Where the student signed in: a session opens only its own surface's pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_on: Option<SignedInOn>,
    /// When the student signed in (seconds): a student's session lasts at most
    /// [`STUDENT_SESSION_MAX_AGE`], however busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_at: Option<i64>,
    /// The student's session generation when this session signed in; a password
    /// change, a reset or an unbinding starts a new one and ends the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    /// Signed in by typing the password in this session (not recognised by the
    /// WeChat binding): the first-login change may then skip asking for it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password_typed: bool,
}

/// The surface a student's session was signed in on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignedInOn {
    /// The PC portal, by ID number, password and captcha.
    Pc,
    /// The H5 pages, by the WeChat binding.
    H5,
}

/// The longest a student's session lives, however busy. It also bounds how long a
/// session generation must be remembered (see [`end_student_sessions`]).
pub const STUDENT_SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);

fn generation_key(student_id: i64) -> String {
    format!("student-sessions:{student_id}")
}

/// The student's current session generation; empty until anything ended their sessions.
pub async fn student_generation(
    cache: &SharedCache,
    student_id: i64,
) -> Result<String, SessionError> {
    Ok(cache
        .get(&generation_key(student_id))
        .await?
        .unwrap_or_default())
}

/// Ends every session of the student, on both surfaces, by starting a new generation;
/// returns it, so that the session making a change can carry on in it.
///
/// The generation is kept a little longer than a session can live: when it expires,
/// every session that signed in before it was set is past its maximum age anyway, so
/// none comes back to life.
pub async fn end_student_sessions(
    cache: &SharedCache,
    student_id: i64,
) -> Result<String, SessionError> {
    let generation = random_token(12);
    let keep = STUDENT_SESSION_MAX_AGE + Duration::from_secs(60 * 60);
    cache
        .set(&generation_key(student_id), &generation, keep)
        .await?;
    Ok(generation)
}

impl SessionData {
    /// Marks the session as the student's, signed in now on `on` in `generation`.
    pub fn sign_in_student(
        &mut self,
        student_id: i64,
        on: SignedInOn,
        generation: String,
        password_typed: bool,
        now: DateTime<Utc>,
    ) {
        self.student_id = Some(student_id);
        self.signed_in_on = Some(on);
        self.signed_in_at = Some(now.timestamp());
        self.generation = Some(generation);
        self.password_typed = password_typed;
    }

    /// Forgets the student and the WeChat user, so that only a new OAuth round trip
    /// (which only that user can complete) brings a binding back.
    pub fn sign_out_student(&mut self) {
        self.forget_student();
        self.openid = None;
    }

    /// Forgets the student but keeps the WeChat user OAuth proved: for a session whose
    /// binding moved away, whose next step is the binding form.
    pub fn forget_student(&mut self) {
        self.student_id = None;
        self.signed_in_on = None;
        self.signed_in_at = None;
        self.generation = None;
        self.password_typed = false;
    }

    /// Whether the student's sign-in still holds: not too old, and in the student's
    /// current generation.
    pub fn student_sign_in_holds(&self, current_generation: &str, now: DateTime<Utc>) -> bool {
        let max_age = i64::try_from(STUDENT_SESSION_MAX_AGE.as_secs()).unwrap_or(i64::MAX);
        let young = self
            .signed_in_at
            .is_some_and(|at| now.timestamp() - at <= max_age);
        young && self.generation.as_deref() == Some(current_generation)
    }
}

/// A loaded session: its id and data.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub data: SessionData,
}

impl Session {
    /// Checks a posted CSRF token against the session's, in constant time.
    pub fn csrf_matches(&self, posted: &str) -> bool {
        !self.data.csrf.is_empty() && bool::from(self.data.csrf.as_bytes().ct_eq(posted.as_bytes()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("session data in the cache is unreadable")]
    Corrupt(#[from] serde_json::Error),
}

/// Reads and writes sessions in the cache.
#[derive(Clone)]
pub struct Sessions {
    cache: SharedCache,
    secure_cookie: bool,
    cookie: CookieSpec,
}

/// Which cookie carries the session.
#[derive(Debug, Clone, Copy)]
struct CookieSpec {
    name: &'static str,
    path: &'static str,
    same_site: &'static str,
}

const STUDENT_COOKIE: CookieSpec = CookieSpec {
    name: COOKIE_NAME,
    path: "/",
    // Lax: the OAuth round trip comes back from WeChat as a top-level GET.
    same_site: "Lax",
};

const ADMIN_COOKIE: CookieSpec = CookieSpec {
    name: ADMIN_COOKIE_NAME,
    path: "/admin",
    same_site: "Strict",
};

impl Sessions {
    /// `secure_cookie`: mark the cookie `Secure` (the public URL is https).
    pub fn new(cache: SharedCache, secure_cookie: bool) -> Sessions {
        Sessions {
            cache,
            secure_cookie,
            cookie: STUDENT_COOKIE,
        }
    }

    /// The console's sessions: cookie `cp_admin`, path `/admin`, `SameSite=Strict`.
    pub fn for_admins(cache: SharedCache, secure_cookie: bool) -> Sessions {
        Sessions {
            cache,
            secure_cookie,
            cookie: ADMIN_COOKIE,
        }
    }

    /// The cache key of a session, public so that tests can read what the session holds
    /// (the captcha's answer) the way a second instance would.
    pub fn key(id: &str) -> String {
        format!("session:{id}")
    }

    /// The session named by the request's cookie, if it exists and has not expired.
    /// Pushes its expiry back when it was last touched a while ago.
    ///
    /// A session that cannot be read (the cache is down, or holds something else) counts
    /// as none: the person is asked to sign in again rather than shown an error, and
    /// the cookie is left alone, so the session is theirs again once the cache is back.
    pub async fn load(
        &self,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, SessionError> {
        let Some(id) = cookie_value(headers, self.cookie.name) else {
            return Ok(None);
        };
        if !looks_like_session_id(&id) {
            return Ok(None);
        }
        let raw = match self.cache.get(&Self::key(&id)).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            Err(error) => {
                tracing::warn!(%error, "cannot read a session; treating the request as signed out");
                return Ok(None);
            }
        };
        let data = match serde_json::from_str(&raw) {
            Ok(data) => data,
            Err(error) => {
                tracing::warn!(%error, "unreadable session data; treating the request as signed out");
                return Ok(None);
            }
        };
        let mut session = Session { id, data };
        if now.timestamp() - session.data.touched_at >= TOUCH_INTERVAL_SECONDS
            && let Err(error) = self.save(&mut session, now).await
        {
            // The session was read: serve this request; the next one tries again.
            tracing::warn!(%error, "cannot push a session's expiry back");
        }
        Ok(Some(session))
    }

    /// A new, empty session (not yet saved).
    pub fn create(&self) -> Session {
        Session {
            id: random_token(32),
            data: SessionData {
                csrf: random_token(24),
                ..SessionData::default()
            },
        }
    }

    /// The request's session, or a new one.
    pub async fn load_or_create(
        &self,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<Session, SessionError> {
        Ok(match self.load(headers, now).await? {
            Some(session) => session,
            None => self.create(),
        })
    }

    pub async fn save(
        &self,
        session: &mut Session,
        now: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        session.data.touched_at = now.timestamp();
        let raw = serde_json::to_string(&session.data)?;
        self.cache
            .set(&Self::key(&session.id), &raw, IDLE_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Signing in (or out) gets a fresh session id, so that an id planted before
    /// sign-in is worth nothing after it (session fixation).
    pub async fn renew(&self, session: &mut Session) -> Result<(), SessionError> {
        self.cache.delete(&Self::key(&session.id)).await?;
        session.id = random_token(32);
        session.data.csrf = random_token(24);
        Ok(())
    }

    pub async fn destroy(&self, session: &Session) -> Result<(), SessionError> {
        self.cache.delete(&Self::key(&session.id)).await?;
        Ok(())
    }

    /// The `Set-Cookie` that hands `session` to the browser.
    pub fn cookie(&self, session: &Session) -> HeaderValue {
        let max_age = IDLE_TIMEOUT.as_secs();
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let CookieSpec {
            name,
            path,
            same_site,
        } = self.cookie;
        let value = format!(
            "{name}={}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}",
            session.id
        );
        // The id is URL-safe base64: always a valid header value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` that makes the browser forget its session.
    pub fn clearing_cookie(&self) -> HeaderValue {
        let CookieSpec {
            name,
            path,
            same_site,
        } = self.cookie;
        let value = format!("{name}=; Path={path}; HttpOnly; SameSite={same_site}; Max-Age=0");
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Adds the session cookie to a response's headers.
    pub fn set_cookie(&self, headers: &mut HeaderMap, session: &Session) {
        headers.append(SET_COOKIE, self.cookie(session));
    }
}

/// `len` random bytes as URL-safe base64.
pub fn random_token(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn looks_like_session_id(id: &str) -> bool {
    (40..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::MemoryCache;
    use crate::clock::Clock;

    fn headers_with_cookie(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(cookie).expect("ascii"));
        headers
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let headers = headers_with_cookie("a=1; cp_session=abc; b=2");
        assert_eq!(cookie_value(&headers, COOKIE_NAME).as_deref(), Some("abc"));
        assert_eq!(cookie_value(&headers, "missing"), None);
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_on_https() {
        let clock = Clock::system();
        let cache: SharedCache = Arc::new(MemoryCache::new(clock));
        let session = Sessions::new(cache.clone(), true).create();
        let cookie = Sessions::new(cache.clone(), true).cookie(&session);
        let cookie = cookie.to_str().expect("ascii");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(cookie.ends_with("; Secure"));
        let plain = Sessions::new(cache, false).cookie(&session);
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }

    #[tokio::test]
    async fn a_saved_session_loads_and_expires_after_the_idle_timeout() {
        let clock = Clock::system();
        let cache: SharedCache = Arc::new(MemoryCache::new(clock.clone()));
        let sessions = Sessions::new(cache, false);
        let mut session = sessions.create();
        session.data.student_id = Some(7);
        sessions
            .save(&mut session, clock.now())
            .await
            .expect("saved");
        let headers = headers_with_cookie(&format!("cp_session={}", session.id));
        let loaded = sessions.load(&headers, clock.now()).await.expect("loads");
        assert_eq!(loaded.map(|s| s.data.student_id), Some(Some(7)));
        clock.advance(IDLE_TIMEOUT + Duration::from_secs(1));
        assert!(
            sessions
                .load(&headers, clock.now())
                .await
                .expect("loads")
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_unknown_or_malformed_id_is_no_session() {
        let clock = Clock::system();
        let cache: SharedCache = Arc::new(MemoryCache::new(clock.clone()));
        let sessions = Sessions::new(cache, false);
        for cookie in ["cp_session=short", "cp_session=../../etc/passwd", "other=1"] {
            let headers = headers_with_cookie(cookie);
            assert!(
                sessions
                    .load(&headers, clock.now())
                    .await
                    .expect("ok")
                    .is_none()
            );
        }
    }

    /// A cache whose backend is down: every call fails.
    struct DownCache;

    #[async_trait::async_trait]
    impl crate::cache::Cache for DownCache {
        async fn get(&self, _: &str) -> crate::cache::CacheResult<Option<String>> {
            Err(down())
        }
        async fn set(&self, _: &str, _: &str, _: Duration) -> crate::cache::CacheResult<()> {
            Err(down())
        }
        async fn set_if_absent(
            &self,
            _: &str,
            _: &str,
            _: Duration,
        ) -> crate::cache::CacheResult<bool> {
            Err(down())
        }
        async fn delete(&self, _: &str) -> crate::cache::CacheResult<()> {
            Err(down())
        }
        async fn delete_if_equals(&self, _: &str, _: &str) -> crate::cache::CacheResult<bool> {
            Err(down())
        }
        async fn take(&self, _: &str) -> crate::cache::CacheResult<Option<String>> {
            Err(down())
        }
        async fn decrement(&self, _: &str) -> crate::cache::CacheResult<()> {
            Err(down())
        }
        async fn increment(&self, _: &str, _: Duration) -> crate::cache::CacheResult<i64> {
            Err(down())
        }
        async fn time_to_live(&self, _: &str) -> crate::cache::CacheResult<Option<Duration>> {
            Err(down())
        }
        async fn ping(&self) -> crate::cache::CacheResult<()> {
            Err(down())
        }
    }

    fn down() -> CacheError {
        CacheError::Unavailable("connection refused".into())
    }

    #[tokio::test]
    async fn a_session_the_cache_cannot_give_back_counts_as_signed_out() {
        let clock = Clock::system();
        let sessions = Sessions::new(Arc::new(DownCache), false);
        let id = random_token(32);
        let headers = headers_with_cookie(&format!("cp_session={id}"));
        let loaded = sessions
            .load(&headers, clock.now())
            .await
            .expect("no error");
        assert!(loaded.is_none());
    }

    #[tokio::test]
    async fn unreadable_session_data_counts_as_signed_out() {
        let clock = Clock::system();
        let cache: SharedCache = Arc::new(MemoryCache::new(clock.clone()));
        let id = random_token(32);
        cache
            .set(&Sessions::key(&id), "{not json", IDLE_TIMEOUT)
            .await
            .expect("set");
        let sessions = Sessions::new(cache, false);
        let headers = headers_with_cookie(&format!("cp_session={id}"));
        let loaded = sessions
            .load(&headers, clock.now())
            .await
            .expect("no error");
        assert!(loaded.is_none());
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let clock = Clock::system();
        let sessions = Sessions::new(Arc::new(MemoryCache::new(clock)), false);
        let session = sessions.create();
        assert!(session.csrf_matches(&session.data.csrf.clone()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches("forged"));
    }
}
