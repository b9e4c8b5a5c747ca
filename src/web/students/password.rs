//! The first-login password change (also open to any signed-in student).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::signin::hash_new_password;
use super::{Gate, csrf_refused, gate, page_response, save_and_redirect};
use crate::domain::id_card::IdCardNumber;
use crate::domain::password::check_new_password;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::Surface;
use crate::web::views::signin::change_password;

pub async fn form(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (session, _) = match gate(&state, &headers, surface, true).await? {
        Gate::Open(session, student) => (session, student),
        Gate::Elsewhere(response) => return Ok(response),
    };
    let markup = change_password(surface, &state.config.school_name, &session.data.csrf, None);
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    new_password_again: String,
}

pub async fn change(
    surface: Surface,
    State(state): State<AppState>,
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
    let refuse = |message: &str| {
        let markup = change_password(
            surface,
            &state.config.school_name,
            &session.data.csrf,
            Some(message),
        );
        page_response(&state, StatusCode::BAD_REQUEST, None, markup)
    };
    if form.new_password != form.new_password_again {
        return Ok(refuse("两次输入的新密码不一致"));
    }
    let id_card = IdCardNumber::parse(&student.id_card)
        .map_err(|_| anyhow::anyhow!("a stored ID number does not parse"))?;
    if let Err(rule) = check_new_password(&form.new_password, &id_card) {
        return Ok(refuse(&rule.to_string()));
    }
    let hash = hash_new_password(form.new_password).await?;
    state
        .store
        .set_student_password(student.id, &hash, state.clock.now())
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(student = student.id, "student changed the password");
    session.data.notice = Some("新密码已设置，请牢记。".to_owned());
    save_and_redirect(&state, &mut session, &surface.path("/fees")).await
}
