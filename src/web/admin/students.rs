//! The console's students: the search, a student's own page (the only one with the
//! full ID number, every viewing logged), and the office's changes to a student:
//! details corrected, password reset to the initial one, WeChat unbound.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, debug_handler};
use serde::Deserialize;

use super::paging::PageNumber;
use super::{Console, redirect};
use crate::domain::student::{
    Gender, StudentFieldError, check_class_name, check_major, check_name, check_student_no,
    parse_grade,
};
use crate::store::{
    CorrectOutcome, STUDENT_VIEW, StudentCorrection, StudentDetails, StudentSearch, UnbindOutcome,
};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::login_guard::LoginGuard;
use crate::web::session::end_student_sessions;
use crate::web::students::remark;
use crate::web::views::admin::Section;
use crate::web::views::admin::students as views;

const PER_PAGE: u64 = 50;
/// The changes listed on a student's page.
const HISTORY_ROWS: u64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/students", get(list))
        .route("/admin/students/search", post(search))
        .route("/admin/students/{id}", get(show))
        .route("/admin/students/{id}/correct", post(correct))
        .route("/admin/students/{id}/reset-password", post(reset_password))
        .route("/admin/students/{id}/unbind", post(unbind))
}

/// The audit target of a student.
fn target(student_id: i64) -> String {
    format!("student:{student_id}")
}

fn student_path(student_id: i64, done: Done) -> String {
    format!("/admin/students/{student_id}?done={}", done.key())
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: PageNumber,
}

async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    if looks_like_whole_id_number(&query.q) {
        // It is in the address already (and in nginx's log): do not reward that with
        // an answer; the box posts it instead.
        let content = views::list(
            &views::Searched::NotInAddress,
            &[],
            console.csrf(),
            1,
            PER_PAGE,
            0,
        );
        return Ok(console.page(&state, Section::Students, "学生", content));
    }
    results_page(
        &state,
        &console,
        &StudentSearch::from_input(&query.q),
        query.page,
    )
    .await
}

#[derive(Debug, Deserialize)]
struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    q: String,
}

/// The search box posts, so that a whole ID number never travels in a URL (proxies and
/// browsers keep URLs). Anything else goes back to the list's address, where the pager
/// works.
async fn search(
    State(state): State<AppState>,
    console: Console,
    Form(form): Form<SearchForm>,
) -> Result<Response, AppError> {
    if !console.session.csrf_matches(&form.csrf) {
        tracing::warn!(admin = %console.admin.username, "student search refused: CSRF token missing or wrong");
        return Err(AppError::Forbidden);
    }
    if !looks_like_whole_id_number(&form.q) {
        return Ok(redirect(&views::list_path(form.q.trim(), 1)));
    }
    results_page(
        &state,
        &console,
        &StudentSearch::from_input(&form.q),
        PageNumber::default(),
    )
    .await
}

async fn results_page(
    state: &AppState,
    console: &Console,
    search: &StudentSearch,
    page: PageNumber,
) -> Result<Response, AppError> {
    let (rows, total) = state
        .store
        .search_students(search, PER_PAGE, page.offset(PER_PAGE), state.clock.now())
        .await?;
    // A whole ID number is not echoed into the list page (box or links): only masked.
    let shown = match search {
        StudentSearch::IdCard(number) => views::Searched::IdCard(number.masked()),
        StudentSearch::Everyone => views::Searched::Nothing,
        StudentSearch::Text { text, .. } => views::Searched::Text(text),
    };
    let content = views::list(&shown, &rows, console.csrf(), page.get(), PER_PAGE, total);
    Ok(console.page(state, Section::Students, "学生", content))
}

/// A whole resident ID number, valid or not (15 or 18 characters: digits, the last may
/// be `X`): what must not be put in an address. Endings (4–6 characters), names and
/// student numbers of other lengths may.
fn looks_like_whole_id_number(text: &str) -> bool {
    let text = text.trim();
    let Some((last, body)) = text.as_bytes().split_last() else {
        return false;
    };
    matches!(text.len(), 15 | 18)
        && body.iter().all(u8::is_ascii_digit)
        && (last.is_ascii_digit() || matches!(last, b'x' | b'X'))
}

/// What a change came to, carried back to the student's page in `?done=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Corrected,
    Unchanged,
    PasswordReset,
    Unbound,
    NotBound,
}

impl Done {
    const ALL: [Done; 5] = [
        Done::Corrected,
        Done::Unchanged,
        Done::PasswordReset,
        Done::Unbound,
        Done::NotBound,
    ];

    fn key(self) -> &'static str {
        match self {
            Done::Corrected => "corrected",
            Done::Unchanged => "unchanged",
            Done::PasswordReset => "password",
            Done::Unbound => "unbound",
            Done::NotBound => "not_bound",
        }
    }

    fn from_key(key: &str) -> Option<Done> {
        Done::ALL.into_iter().find(|done| done.key() == key)
    }

    fn message(self) -> &'static str {
        match self {
            Done::Corrected => "已更正学生信息",
            Done::Unchanged => "信息与原来相同，没有修改",
            Done::PasswordReset => "已将密码重置为初始密码，学生下次登录时须修改密码",
            Done::Unbound => "已解除微信绑定",
            Done::NotBound => "该学生没有绑定微信，无需解除",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ShowQuery {
    #[serde(default)]
    done: String,
}

async fn show(
    State(state): State<AppState>,
    console: Console,
    Path(student_id): Path<i64>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, AppError> {
    let notice = Done::from_key(&query.done).map(Done::message);
    student_page(&state, &console, student_id, None, notice, None).await
}

/// The student's page: details (full ID number), items, orders, notifications, the
/// changes made to them, and (for `finance`) the forms. Writes `student.view`.
async fn student_page(
    state: &AppState,
    console: &Console,
    student_id: i64,
    error: Option<&str>,
    notice: Option<&str>,
    typed: Option<views::DetailsForm>,
) -> Result<Response, AppError> {
    let store = &state.store;
    let student = store
        .student_details(student_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let record = store.student_record(student_id).await?;
    let history = store
        .student_changes(&target(student_id), HISTORY_ROWS)
        .await?;
    store
        .record_audit(
            &console.audit(STUDENT_VIEW, target(student_id)),
            state.clock.now(),
        )
        .await?;
    tracing::info!(admin = %console.admin.username, student = student_id, "student page viewed");
    let form = typed.unwrap_or_else(|| views::DetailsForm::of(&student));
    let content = views::student(&views::StudentPage {
        student: &student,
        record: &record,
        history: &history,
        audit_target: &target(student_id),
        can_change: console.can_change(),
        csrf: console.csrf(),
        error,
        notice,
        form: &form,
    });
    Ok(console.page(
        state,
        Section::Students,
        &format!("学生：{}", student.name),
        content,
    ))
}

#[derive(Debug, Default, Deserialize)]
struct CorrectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    gender: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    class_name: String,
    #[serde(default)]
    major: String,
    #[serde(default)]
    student_no: String,
}

impl CorrectForm {
    /// Checked with the import's rules; the first problem found.
    fn correction(&self) -> Result<StudentCorrection, StudentFieldError> {
        Ok(StudentCorrection {
            name: check_name(&self.name)?,
            gender: Gender::parse(&self.gender)?,
            grade: parse_grade(&self.grade)?,
            class_name: check_class_name(&self.class_name)?.to_owned(),
            major: check_major(&self.major)?.map(str::to_owned),
            student_no: check_student_no(&self.student_no)?.map(str::to_owned),
        })
    }

    fn typed(&self) -> views::DetailsForm {
        views::DetailsForm {
            name: self.name.clone(),
            gender: self.gender.clone(),
            grade: self.grade.clone(),
            class_name: self.class_name.clone(),
            major: self.major.clone(),
            student_no: self.student_no.clone(),
        }
    }
}

#[debug_handler]
async fn correct(
    State(state): State<AppState>,
    console: Console,
    Path(student_id): Path<i64>,
    Form(form): Form<CorrectForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let correction = match form.correction() {
        Ok(correction) => correction,
        Err(problem) => {
            let message = format!("未修改：{problem}");
            let mut page = student_page(
                &state,
                &console,
                student_id,
                Some(&message),
                None,
                Some(form.typed()),
            )
            .await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(page);
        }
    };
    let entry = console.audit("student.correct", target(student_id));
    let outcome = state
        .store
        .correct_student(student_id, &correction, entry, state.clock.now())
        .await?;
    let done = match outcome {
        CorrectOutcome::NotFound => return Err(AppError::NotFound),
        CorrectOutcome::Unchanged => Done::Unchanged,
        CorrectOutcome::Corrected(student) => {
            tracing::info!(admin = %console.admin.username, student = student_id, "student details corrected");
            follow_remark(&state, &student).await?;
            Done::Corrected
        }
    };
    Ok(redirect(&student_path(student_id, done)))
}

/// A bound student's follower remark follows their new details, set in the
/// background as binding sets it.
async fn follow_remark(state: &AppState, student: &StudentDetails) -> Result<(), AppError> {
    let Some(openid) = &student.wechat_openid else {
        return Ok(());
    };
    let account = state.store.find_student(student.id).await?;
    if let Some(account) = account {
        remark::set_in_background(state, openid, &account);
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf: String,
}

async fn reset_password(
    State(state): State<AppState>,
    console: Console,
    Path(student_id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let entry = console.audit("student.reset_password", target(student_id));
    let id_card = state
        .store
        .reset_student_password(student_id, entry, state.clock.now())
        .await?
        .ok_or(AppError::NotFound)?;
    // A student locked out by wrong guesses can sign in at once with the initial one.
    LoginGuard::new(state.cache.clone(), "student")
        .unlock(&id_card)
        .await?;
    // Whoever was signed in with the old password is signed in no longer.
    end_student_sessions(&state.cache, student_id).await?;
    tracing::info!(admin = %console.admin.username, student = student_id, "student password reset");
    Ok(redirect(&student_path(student_id, Done::PasswordReset)))
}

async fn unbind(
    State(state): State<AppState>,
    console: Console,
    Path(student_id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let entry = console.audit("student.unbind", target(student_id));
    let outcome = state
        .store
        .unbind_student_wechat(student_id, entry, state.clock.now())
        .await?;
    let done = match outcome {
        UnbindOutcome::NotFound => return Err(AppError::NotFound),
        UnbindOutcome::NotBound => Done::NotBound,
        UnbindOutcome::Unbound => {
            // The binding signed those sessions in; without it they end, on both surfaces.
            end_student_sessions(&state.cache, student_id).await?;
            tracing::info!(admin = %console.admin.username, student = student_id, "student unbound from WeChat");
            Done::Unbound
        }
    };
    Ok(redirect(&student_path(student_id, done)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_round_trips_through_its_key() {
        for done in Done::ALL {
            assert_eq!(Done::from_key(done.key()), Some(done));
        }
        assert_eq!(Done::from_key("anything"), None);
    }

    fn form(grade: &str, gender: &str) -> CorrectForm {
        CorrectForm {
            name: " 张三 ".into(),
            gender: gender.into(),
            grade: grade.into(),
            class_name: "汽修1班".into(),
            ..CorrectForm::default()
        }
    }

    #[test]
    fn whole_id_numbers_are_told_from_what_may_go_in_an_address() {
        for whole in [
            "11010519491231002X",
            "11010519491231002x",
            "110105194912310021",
            "110105491231002",
        ] {
            assert!(looks_like_whole_id_number(whole), "{whole}");
        }
        for other in [
            "002X",
            "31002x",
            "2026010101",
            "张三",
            "",
            "11010519491231002Y",
        ] {
            assert!(!looks_like_whole_id_number(other), "{other}");
        }
    }

    #[test]
    fn corrections_follow_the_import_rules() {
        let correction = form("18", "男").correction().expect("valid");
        assert_eq!(correction.grade, 2018);
        assert_eq!(correction.name, "张三");
        assert_eq!(correction.major, None);
        assert_eq!(
            form("1999", "男").correction(),
            Err(StudentFieldError::Grade)
        );
        assert_eq!(
            form("2018", "未知").correction(),
            Err(StudentFieldError::Gender)
        );
    }
}
