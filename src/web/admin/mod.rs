//! The finance office's console (`/admin`): sign-in, then students, fees, payments,
//! arrears, the follower check and the audit log.
//!
//! Every page goes through [`Console`], the extractor that finds the signed-in admin
//! (or sends the browser to the sign-in page). Every change goes through
//! [`Console::authorize_change`]: the `finance` role and the session's CSRF token,
//! checked before anything is touched. Every change writes its audit row in the
//! store, in the same transaction as the change.

mod arrears;
mod audit;
mod fees;
mod flagged;
mod followers;
mod home;
mod paging;
mod payments;
mod receipts;
mod reconciliation;
mod refunds;
mod signin;
mod students;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::Markup;

use super::AppState;
use super::error::AppError;
use super::session::{Session, Sessions};
use super::views::admin::{self as console_views, Section};
use crate::store::{AdminAccount, AdminRole, AuditEntry};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(signin::router())
        .merge(home::router())
        .merge(students::router())
        .merge(fees::router())
        .merge(payments::router())
        .merge(flagged::router())
        .merge(receipts::router())
        .merge(arrears::router())
        .merge(reconciliation::router())
        .merge(followers::router())
        .merge(audit::router())
}

impl AppState {
    /// The console's sessions (cookie `cp_admin` on `/admin`).
    pub fn admin_sessions(&self) -> Sessions {
        Sessions::for_admins(
            self.cache.clone(),
            self.config.public_url.scheme() == "https",
        )
    }
}

/// A request from a signed-in admin.
pub struct Console {
    pub session: Session,
    pub admin: AdminAccount,
}

impl FromRequestParts<AppState> for Console {
    /// Not signed in: to the sign-in page. Infrastructure failures: the error page.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Console, Response> {
        match signed_in(state, &parts.headers).await {
            Ok(Some(console)) => Ok(console),
            Ok(None) => Err(redirect("/admin/login")),
            Err(error) => Err(error.into_response()),
        }
    }
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Console>, AppError> {
    let session = state
        .admin_sessions()
        .load(headers, state.clock.now())
        .await?;
    let Some(session) = session else {
        return Ok(None);
    };
    let Some(admin_id) = session.data.admin_id else {
        return Ok(None);
    };
    // Read on every request, so that a removed admin or a changed role takes effect
    // at once rather than when the session expires.
    let admin = state.store.find_admin(admin_id).await?;
    Ok(admin.map(|admin| Console { session, admin }))
}

impl Console {
    pub fn can_change(&self) -> bool {
        self.admin.role == AdminRole::Finance
    }

    /// A change may go ahead: the admin is `finance` and the form carries the session's
    /// CSRF token. Refused otherwise, before anything is touched.
    pub fn authorize_change(&self, posted_csrf: &str) -> Result<(), AppError> {
        if !self.session.csrf_matches(posted_csrf) {
            tracing::warn!(admin = %self.admin.username, "console form refused: CSRF token missing or wrong");
            return Err(AppError::Forbidden);
        }
        if !self.can_change() {
            tracing::warn!(admin = %self.admin.username, "console change refused: viewer");
            return Err(AppError::Forbidden);
        }
        Ok(())
    }

    /// An audit entry by this admin.
    pub fn audit(&self, action: &str, target: impl Into<String>) -> AuditEntry {
        AuditEntry::new(&self.admin.username, action, target)
    }

    pub fn csrf(&self) -> &str {
        &self.session.data.csrf
    }

    /// A console page in the frame, never cached.
    pub fn page(
        &self,
        state: &AppState,
        section: Section,
        title: &str,
        content: Markup,
    ) -> Response {
        let markup = console_views::page(
            &console_views::Frame {
                school: &state.config.school_name,
                admin: &self.admin.username,
                can_change: self.can_change(),
                csrf: self.csrf(),
                section,
            },
            title,
            content,
        );
        no_store((StatusCode::OK, markup).into_response())
    }
}

/// `303 See Other` to `to`, never cached.
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A CSV download that Excel opens cleanly: UTF-8 with a byte-order mark, CRLF rows.
/// `filename` is ASCII (the header's plain form); the rows come from `csv::Writer`.
pub fn csv_download(filename: &str, body: Vec<u8>) -> Response {
    let mut bytes = Vec::with_capacity(body.len() + 3);
    bytes.extend_from_slice("\u{feff}".as_bytes());
    bytes.extend_from_slice(&body);
    let disposition = format!("attachment; filename=\"{filename}\"");
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    no_store(response)
}

/// A `csv::Writer` whose rows end in CRLF, as Excel writes them.
pub fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// A CSV cell that a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return (a student's name `=HYPERLINK(…)`, a note) gets a leading
/// `'`, which Excel and WPS show as text. Numbers stay numbers (`-12.50`), and so does
/// a long number kept as text by its leading tab (`payments::excel_text`).
pub fn formula_safe(cell: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let starts_dangerously = matches!(
        cell.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if !starts_dangerously || is_plain_number(cell) || is_tab_kept_number(cell) {
        return std::borrow::Cow::Borrowed(cell);
    }
    let mut safe = Vec::with_capacity(cell.len() + 1);
    safe.push(b'\'');
    safe.extend_from_slice(cell);
    std::borrow::Cow::Owned(safe)
}

/// `-12`, `-12.50`, `+3`: a number Excel reads as a number and nothing else.
fn is_plain_number(cell: &[u8]) -> bool {
    let digits = cell
        .strip_prefix(b"-")
        .or_else(|| cell.strip_prefix(b"+"))
        .unwrap_or(cell);
    let (whole, fraction) = match digits.iter().position(|byte| *byte == b'.') {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &b""[..]),
    };
    !whole.is_empty()
        && whole.iter().all(u8::is_ascii_digit)
        && fraction.iter().all(u8::is_ascii_digit)
}

fn is_tab_kept_number(cell: &[u8]) -> bool {
    cell.strip_prefix(b"\t")
        .is_some_and(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
}

/// The bytes a `csv_writer` wrote.
pub fn csv_bytes(writer: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, AppError> {
    writer
        .into_inner()
        .map_err(|error| AppError::Internal(anyhow::anyhow!("cannot finish the CSV: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(cell: &str) -> String {
        String::from_utf8(formula_safe(cell.as_bytes()).into_owned()).expect("UTF-8")
    }

    #[test]
    fn text_that_a_spreadsheet_would_run_is_kept_as_text() {
        for formula in [
            "=HYPERLINK(\"http://evil.example\",\"点我\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A9)",
            "\t=1+1",
            "\r=1+1",
            "-",
        ] {
            assert_eq!(safe(formula), format!("'{formula}"), "{formula:?}");
        }
    }

    #[test]
    fn numbers_names_and_tab_kept_numbers_pass_unchanged() {
        for kept in [
            "张三",
            "汽修1班",
            "5000.00",
            "-12.50",
            "+3",
            "\t4200000000202612010000000001",
            "",
            "a=b",
        ] {
            assert_eq!(safe(kept), kept, "{kept:?}");
        }
    }
}
