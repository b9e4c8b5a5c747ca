//! The plumbing the payment sandboxes share, written once: amounts in yuan, Beijing
//! time, random identifiers, the retry clock, the locks and background tasks, and the
//! cashier page's frame. Nothing here speaks a provider's protocol or holds its
//! crypto: each sandbox signs with keys and code of its own.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, html};
use rand::RngExt;
use tokio::task::JoinSet;
use url::Url;

/// Fen as yuan with two decimals (`-12.30` for a refund), as bills and JSON write it.
pub(crate) fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Beijing time (UTC+8), the zone both providers write their times in.
pub(crate) fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is an offset")
}

pub(crate) fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// `pause` after `at`; never, if that is past the calendar.
pub(crate) fn after(at: DateTime<Utc>, pause: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(pause)
        .ok()
        .and_then(|pause| at.checked_add_signed(pause))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Posts a notification; its HTTP status and body, or status 0 and the error when
/// nothing came back (what the retry schedule treats as not acknowledged).
pub(crate) async fn send(request: reqwest::RequestBuilder) -> (u16, String) {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Locks a sandbox's state.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the sandbox down for the others.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a notification or other work in the background, in a set the sandbox aborts
/// when it is dropped.
pub(crate) fn spawn_background(
    background: &Mutex<JoinSet<()>>,
    task: impl Future<Output = ()> + Send + 'static,
) {
    let mut background = lock(background);
    // Reap what has finished so the set does not grow without bound.
    while background.try_join_next().is_some() {}
    background.spawn(task);
}

/// The cashier's link back to the merchant: only http(s), never `javascript:`.
pub(crate) fn return_link(return_to: Option<&str>) -> Option<Url> {
    return_to
        .and_then(|link| Url::parse(link).ok())
        .filter(|link| matches!(link.scheme(), "http" | "https"))
}

/// How a provider's cashier page looks: its colours and the brand above the card.
pub(crate) struct CashierLook {
    pub(crate) background: &'static str,
    pub(crate) button: &'static str,
    pub(crate) brand: &'static str,
}

impl CashierLook {
    pub(crate) fn page(&self, title: &str, body: Markup) -> Markup {
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) }
                    style {
                        "body{font-family:sans-serif;background:" (self.background) ";margin:0;padding:24px;text-align:center}"
                        ".card{background:#fff;border-radius:8px;max-width:420px;margin:0 auto;padding:24px}"
                        ".amount{font-size:36px;font-weight:bold;margin:16px 0}"
                        "button{background:" (self.button) ";color:#fff;border:0;border-radius:6px;font-size:18px;padding:12px 48px}"
                        ".note{color:#888;font-size:13px}"
                    }
                }
                body {
                    div class="card" {
                        p class="note" { (self.brand) }
                        (body)
                    }
                }
            }
        }
    }

    /// A page that only says something, with the way back to the merchant if known.
    pub(crate) fn message(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        back: Option<&Url>,
    ) -> Response {
        let body = html! {
            h1 { (title) }
            p { (message) }
            @if let Some(back) = back {
                p { a href=(back.as_str()) { "返回商户页面" } }
            }
        };
        (status, self.page(title, body)).into_response()
    }
}
