//! Signing in to the console: username and password, with the same lockout as the
//! students' door (counters of their own, each guess counted before it is checked),
//! a captcha after a few failures from an address, argon2 in turn with the rest of the
//! process, a fresh session id on success.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, debug_handler};
use serde::Deserialize;

use super::{Console, no_store, redirect};
use crate::domain::password;
use crate::store::AdminAccount;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::login_guard::{Attempt, LoginGuard};
use crate::web::students::captcha;
use crate::web::students::client_address;
use crate::web::views::admin as console_views;

pub const WRONG_CREDENTIALS: &str = "用户名或密码错误";

/// Failures from one address after which the sign-in asks for a captcha too.
pub const CAPTCHA_AFTER_FAILURES: i64 = 3;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(form).post(sign_in))
        .route("/admin/captcha", get(captcha_image))
        .route("/admin/logout", post(sign_out))
}

async fn form(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let sessions = state.admin_sessions();
    let now = state.clock.now();
    let mut session = sessions.load_or_create(&headers, now).await?;
    if session.data.admin_id.is_some() {
        return Ok(redirect("/admin"));
    }
    sessions.save(&mut session, now).await?;
    let captcha = captcha_needed(&state, client_address(Some(peer), &headers)).await?;
    Ok(sign_in_page(
        &state,
        &session,
        StatusCode::OK,
        None,
        "",
        captcha,
    ))
}

/// `GET /admin/captcha`: the students' captcha, kept beside the console's session.
async fn captcha_image(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    captcha::image_for(&state, &state.admin_sessions(), &headers).await
}

/// Whether the sign-in from `address` must pass a captcha: after a few failures from
/// it, so that guessing from one place costs a picture per guess.
async fn captcha_needed(state: &AppState, address: Option<IpAddr>) -> Result<bool, AppError> {
    let Some(address) = address else {
        return Ok(true);
    };
    let failures = LoginGuard::new(state.cache.clone(), "admin")
        .failures_from(address)
        .await?;
    Ok(failures >= CAPTCHA_AFTER_FAILURES)
}

fn sign_in_page(
    state: &AppState,
    session: &crate::web::session::Session,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
    captcha: bool,
) -> Response {
    let markup = console_views::sign_in(
        &state.config.school_name,
        &session.data.csrf,
        error,
        username,
        captcha,
    );
    let mut response = no_store((status, markup).into_response());
    state
        .admin_sessions()
        .set_cookie(response.headers_mut(), session);
    response
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    captcha: String,
}

#[debug_handler]
async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, AppError> {
    let sessions = state.admin_sessions();
    let now = state.clock.now();
    let Some(mut session) = sessions.load(&headers, now).await? else {
        return Ok(redirect("/admin/login"));
    };
    if !session.csrf_matches(&form.csrf) {
        tracing::warn!("console sign-in refused: CSRF token missing or wrong");
        return Err(AppError::Forbidden);
    }
    let address = client_address(Some(peer), &headers);
    let captcha = captcha_needed(&state, address).await?;
    let username = form.username.trim().to_owned();
    if username.is_empty() || form.password.is_empty() {
        return Ok(sign_in_page(
            &state,
            &session,
            StatusCode::OK,
            Some("请输入用户名和密码"),
            &username,
            captcha,
        ));
    }
    if captcha && let Err(refused) = captcha::check(&state, &session.id, &form.captcha).await? {
        return Ok(sign_in_page(
            &state,
            &session,
            StatusCode::BAD_REQUEST,
            Some(refused.message()),
            &username,
            true,
        ));
    }
    let guard = LoginGuard::new(state.cache.clone(), "admin");
    let attempt = Attempt {
        account: &username,
        address,
        openid: None,
    };
    let reservation = match guard.reserve(&attempt).await? {
        Ok(reservation) => reservation,
        Err(refusal) => {
            tracing::warn!(admin = %username, "console sign-in refused: locked");
            return Ok(sign_in_page(
                &state,
                &session,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&refusal.message()),
                &username,
                captcha,
            ));
        }
    };
    let admin = match verify_admin(&state, &username, form.password).await {
        Ok(admin) => admin,
        Err(error) => {
            // Not checked (busy, database down): the guess does not count.
            if let Err(cache) = guard.release(reservation).await {
                tracing::warn!(error = %cache, "cannot give back a sign-in count");
            }
            return Err(error);
        }
    };
    let Some(admin) = admin else {
        guard.failed(reservation);
        tracing::info!(admin = %username, "console sign-in refused: wrong credentials");
        let captcha = captcha_needed(&state, address).await?;
        return Ok(sign_in_page(
            &state,
            &session,
            StatusCode::OK,
            Some(WRONG_CREDENTIALS),
            &username,
            captcha,
        ));
    };
    guard.succeeded(reservation).await?;
    sessions.renew(&mut session).await?;
    session.data.admin_id = Some(admin.id);
    sessions.save(&mut session, now).await?;
    state
        .store
        .record_audit(
            &crate::store::AuditEntry::new(
                &admin.username,
                "admin.sign_in",
                format!("admin:{}", admin.id),
            ),
            now,
        )
        .await?;
    tracing::info!(admin = %admin.username, "admin signed in");
    let mut response = redirect("/admin");
    sessions.set_cookie(response.headers_mut(), &session);
    Ok(response)
}

/// The admin `username` names, when `typed` is their password. One argon2 call either
/// way (an unknown name is hashed, so it takes as long as a wrong password), in turn
/// with every other hash of the process.
async fn verify_admin(
    state: &AppState,
    username: &str,
    typed: String,
) -> Result<Option<AdminAccount>, AppError> {
    let admin = state.store.find_admin_by_username(username).await?;
    let hash = admin.as_ref().map(|admin| admin.password_hash.clone());
    let matches = state
        .password_work
        .run(move || match hash {
            Some(hash) => password::verify_password(&typed, &hash),
            None => {
                let _ = password::hash_password(&typed);
                false
            }
        })
        .await?;
    Ok(admin.filter(|_| matches))
}

#[derive(Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    console: Console,
    Form(form): Form<SignOutForm>,
) -> Result<Response, AppError> {
    if !console.session.csrf_matches(&form.csrf) {
        return Err(AppError::Forbidden);
    }
    let sessions = state.admin_sessions();
    sessions.destroy(&console.session).await?;
    let mut response = redirect("/admin/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, sessions.clearing_cookie());
    Ok(response)
}
