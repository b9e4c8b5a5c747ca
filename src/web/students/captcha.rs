//! The portal's image captcha: one per session, single use, five minutes.
//!
//! The answer lives in the cache under [`captcha_key`], beside the session, so that
//! any instance can check it; the integration tests read it there the way a second
//! instance would.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use captcha::Captcha;
use captcha::filters::{Noise, Wave};

use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::session::Sessions;

pub const CAPTCHA_TTL: Duration = Duration::from_secs(5 * 60);
/// Letters and digits a person reads without doubt (no 0/O, 1/l/I, 2/Z, 5/S).
const CAPTCHA_CHARS: &[char] = &[
    '3', '4', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', 'h', 'k', 'm', 'n', 'p', 'r', 't',
    'u', 'v', 'w', 'x', 'y', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'K', 'M', 'N', 'P', 'R', 'T',
    'U', 'V', 'W', 'X', 'Y',
];
const CAPTCHA_LENGTH: u32 = 4;

/// Where the answer of a session's current captcha is kept.
pub fn captcha_key(session_id: &str) -> String {
    format!("captcha:{session_id}")
}

/// `GET /captcha`: a new picture, replacing the session's previous one.
pub async fn image(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    image_for(&state, &state.sessions(), &headers).await
}

/// A new picture for the session `sessions` finds in `headers` (the students' or the
/// console's), its answer kept under [`captcha_key`] of that session.
pub async fn image_for(
    state: &AppState,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut session = sessions.load_or_create(headers, now).await?;
    let (answer, png) = tokio::task::spawn_blocking(draw)
        .await
        .map_err(|error| anyhow::anyhow!("captcha drawing panicked: {error}"))?
        .ok_or_else(|| anyhow::anyhow!("the captcha could not be encoded as PNG"))?;
    state
        .cache
        .set(&captcha_key(&session.id), &answer, CAPTCHA_TTL)
        .await?;
    sessions.save(&mut session, now).await?;
    let mut response = (StatusCode::OK, png).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    sessions.set_cookie(headers, &session);
    Ok(response)
}

fn draw() -> Option<(String, Vec<u8>)> {
    let mut captcha = Captcha::new();
    captcha
        .set_chars(CAPTCHA_CHARS)
        .add_chars(CAPTCHA_LENGTH)
        .apply_filter(Noise::new(0.15))
        .apply_filter(Wave::new(2.0, 8.0).horizontal())
        .view(160, 60);
    let answer = captcha.chars_as_string();
    captcha.as_png().map(|png| (answer, png))
}

/// Why a typed captcha was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum CaptchaRefused {
    Expired,
    Wrong,
}

impl CaptchaRefused {
    pub fn message(&self) -> &'static str {
        match self {
            CaptchaRefused::Expired => "验证码已过期，请点击图片换一张",
            CaptchaRefused::Wrong => "验证码错误，请重新输入",
        }
    }
}

/// Checks the typed answer, case-insensitively, and uses the captcha up whatever the
/// outcome: one picture, one try. The answer is taken from the cache in one step, so
/// that of simultaneous posts of one answer only one gets past it.
pub async fn check(
    state: &AppState,
    session_id: &str,
    typed: &str,
) -> Result<Result<(), CaptchaRefused>, AppError> {
    let key = captcha_key(session_id);
    let expected = state.cache.take(&key).await?;
    let Some(expected) = expected else {
        return Ok(Err(CaptchaRefused::Expired));
    };
    if expected.eq_ignore_ascii_case(typed.trim()) {
        Ok(Ok(()))
    } else {
        Ok(Err(CaptchaRefused::Wrong))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captcha_is_a_png_with_four_readable_characters() {
        let (answer, png) = draw().expect("drawn");
        assert_eq!(answer.chars().count(), 4);
        assert!(answer.chars().all(|c| CAPTCHA_CHARS.contains(&c)));
        assert!(png.starts_with(b"\x89PNG"));
    }
}
