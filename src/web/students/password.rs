//! Changing the password: the first-login change, and any signed-in student's.
//!
//! The current password is asked for, except in the first-login change right after
//! the student typed it to sign in; checking it counts as a guess like any sign-in. A
//! change ends every other session of the student, on both surfaces.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::signin::{SignInRefused, check_credentials, client_address, hash_new_password};
use super::{Gate, csrf_refused, gate, page_response, save_and_redirect};
use crate::domain::id_card::IdCardNumber;
use crate::domain::password::check_new_password;
use crate::store::StudentAccount;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::session::{Session, end_student_sessions};
use crate::web::views::Surface;
use crate::web::views::signin::change_password;

pub const WRONG_CURRENT_PASSWORD: &str = "当前密码错误";

/// Whether the form must ask for the current password: always, except for the
/// first-login change in the session that signed in by typing it.
fn asks_current_password(session: &Session, student: &StudentAccount) -> bool {
    !(student.must_change_password && session.data.password_typed)
}

pub async fn form(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (session, student) = match gate(&state, &headers, surface, true).await? {
        Gate::Open(session, student) => (session, student),
        Gate::Elsewhere(response) => return Ok(response),
    };
    let markup = change_password(
        surface,
        &state.config.school_name,
        &session.data.csrf,
        None,
        asks_current_password(&session, &student),
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

pub async fn change(
    surface: Surface,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AppError> {
    let (mut session, student) = match gate(&state, &headers, surface, true).await? {
        Gate::Open(session, student) => (session, student),
        Gate::Elsewhere(response) => return Ok(response),
    };
    if !session.csrf_matches(&form.csrf) {
        return Ok(csrf_refused(&state, surface));
    }
    let ask_current = asks_current_password(&session, &student);
    let refuse = |status: StatusCode, message: &str| {
        let markup = change_password(
            surface,
            &state.config.school_name,
            &session.data.csrf,
            Some(message),
            ask_current,
        );
        page_response(&state, status, None, markup)
    };
    if form.new_password != form.new_password_again {
        return Ok(refuse(StatusCode::BAD_REQUEST, "两次输入的新密码不一致"));
    }
    let id_card = IdCardNumber::parse(&student.id_card)
        .map_err(|_| anyhow::anyhow!("a stored ID number does not parse"))?;
    if let Err(rule) = check_new_password(&form.new_password, &id_card) {
        return Ok(refuse(StatusCode::BAD_REQUEST, &rule.to_string()));
    }
    if ask_current {
        let address = client_address(Some(peer), &headers);
        let openid = session.data.openid.as_deref();
        let checked = check_credentials(
            &state,
            &student.id_card,
            &form.current_password,
            address,
            openid,
        )
        .await?;
        match checked {
            Ok(account) if account.id == student.id => {}
            Ok(_) | Err(SignInRefused::WrongCredentials) | Err(SignInRefused::Form(_)) => {
                tracing::info!(
                    student = student.id,
                    "password change refused: wrong current password"
                );
                return Ok(refuse(StatusCode::UNAUTHORIZED, WRONG_CURRENT_PASSWORD));
            }
            Err(refused @ SignInRefused::Locked(_)) => {
                return Ok(refuse(StatusCode::TOO_MANY_REQUESTS, refused.message()));
            }
        }
    }
    let hash = hash_new_password(&state, form.new_password).await?;
    state
        .store
        .set_student_password(student.id, &hash, state.clock.now())
        .await?;
    // Every other session ends; this one carries on in the new generation.
    let generation = end_student_sessions(&state.cache, student.id).await?;
    session.data.generation = Some(generation);
    session.data.password_typed = false;
    tracing::info!(student = student.id, "student changed the password");
    session.data.notice = Some("新密码已设置，请牢记。".to_owned());
    save_and_redirect(&state, &mut session, &surface.path("/fees")).await
}
