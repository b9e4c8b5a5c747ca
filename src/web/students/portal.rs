//! The PC portal's door: `/` shows the login (身份证号, 密码, 验证码), `/login` checks
//! it, `/logout` ends the session.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::captcha;
use super::signin::{SignInRefused, check_credentials, client_address};
use super::{
    after_sign_in, csrf_refused, page_response, redirect, save_and_redirect, sign_in_student,
};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::session::{Session, SignedInOn};
use crate::web::views::Surface;
use crate::web::views::signin::{FormState, portal_login};

/// `GET /`: the login, or the fee list for a student already signed in.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let mut session = sessions.load_or_create(&headers, now).await?;
    if session.data.student_id.is_some() && session.data.signed_in_on == Some(SignedInOn::Pc) {
        return Ok(redirect(&state, None, "/fees"));
    }
    sessions.save(&mut session, now).await?;
    let markup = portal_login(
        &state.config.school_name,
        &session.data.csrf,
        &FormState::default(),
    );
    Ok(page_response(
        &state,
        StatusCode::OK,
        Some(&session),
        markup,
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id_card: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    captcha: String,
}

/// `POST /login`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let Some(mut session) = sessions.load(&headers, now).await? else {
        return Ok(csrf_refused(&state, Surface::Pc));
    };
    if !session.csrf_matches(&form.csrf) {
        return Ok(csrf_refused(&state, Surface::Pc));
    }
    if let Err(refused) = captcha::check(&state, &session.id, &form.captcha).await? {
        return Ok(login_refused(
            &state,
            &session,
            &form,
            StatusCode::BAD_REQUEST,
            refused.message(),
        ));
    }
    let address = client_address(Some(peer), &headers);
    let student =
        match check_credentials(&state, &form.id_card, &form.password, address, None).await? {
            Ok(student) => student,
            Err(refused) => {
                let status = match refused {
                    SignInRefused::Form(_) => StatusCode::BAD_REQUEST,
                    SignInRefused::WrongCredentials => StatusCode::UNAUTHORIZED,
                    SignInRefused::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
                };
                return Ok(login_refused(
                    &state,
                    &session,
                    &form,
                    status,
                    refused.message(),
                ));
            }
        };
    sessions.renew(&mut session).await?;
    sign_in_student(&state, &mut session, student.id, Surface::Pc, true).await?;
    save_and_redirect(&state, &mut session, &after_sign_in(Surface::Pc, &student)).await
}

fn login_refused(
    state: &AppState,
    session: &Session,
    form: &LoginForm,
    status: StatusCode,
    message: &str,
) -> Response {
    let markup = portal_login(
        &state.config.school_name,
        &session.data.csrf,
        &FormState {
            error: Some(message),
            notice: None,
            id_card: form.id_card.trim(),
        },
    );
    page_response(state, status, None, markup)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: the session ends here, not only in the browser.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response, AppError> {
    let sessions = state.sessions();
    let Some(session) = sessions.load(&headers, state.clock.now()).await? else {
        return Ok(redirect(&state, None, "/"));
    };
    if !session.csrf_matches(&form.csrf) {
        return Ok(csrf_refused(&state, Surface::Pc));
    }
    sessions.destroy(&session).await?;
    let mut response = redirect(&state, None, "/");
    response
        .headers_mut()
        .insert(SET_COOKIE, sessions.clearing_cookie());
    Ok(response)
}
