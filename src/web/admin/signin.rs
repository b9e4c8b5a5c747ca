//! Signing in to the console: username and password, with the same lockout as the
//! students' door (counters of their own), a fresh session id on success.

use std::net::SocketAddr;

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
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::login_guard::{Attempt, LoginGuard};
use crate::web::students::client_address;
use crate::web::views::admin as console_views;

pub const WRONG_CREDENTIALS: &str = "用户名或密码错误";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(form).post(sign_in))
        .route("/admin/logout", post(sign_out))
}

async fn form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let sessions = state.admin_sessions();
    let now = state.clock.now();
    let mut session = sessions
        .load_or_create(&headers, now)
        .await
        .map_err(anyhow::Error::from)?;
    if session.data.admin_id.is_some() {
        return Ok(redirect("/admin"));
    }
    sessions
        .save(&mut session, now)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(sign_in_page(&state, &session, StatusCode::OK, None, ""))
}

fn sign_in_page(
    state: &AppState,
    session: &crate::web::session::Session,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
) -> Response {
    let markup = console_views::sign_in(
        &state.config.school_name,
        &session.data.csrf,
        error,
        username,
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
    let Some(mut session) = sessions
        .load(&headers, now)
        .await
        .map_err(anyhow::Error::from)?
    else {
        return Ok(redirect("/admin/login"));
    };
    if !session.csrf_matches(&form.csrf) {
        tracing::warn!("console sign-in refused: CSRF token missing or wrong");
        return Err(AppError::Forbidden);
    }
    let username = form.username.trim().to_owned();
    if username.is_empty() || form.password.is_empty() {
        return Ok(sign_in_page(
            &state,
            &session,
            StatusCode::OK,
            Some("请输入用户名和密码"),
            &username,
        ));
    }
    let guard = LoginGuard::new(state.cache.clone(), "admin");
    let attempt = Attempt {
        account: &username,
        address: client_address(Some(peer), &headers),
        openid: None,
    };
    if let Some(refusal) = guard.check(&attempt).await.map_err(anyhow::Error::from)? {
        tracing::warn!(admin = %username, "console sign-in refused: locked");
        return Ok(sign_in_page(
            &state,
            &session,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&refusal.message()),
            &username,
        ));
    }
    let admin = state
        .store
        .find_admin_by_username(&username)
        .await
        .map_err(anyhow::Error::from)?;
    let hash = admin.as_ref().map(|admin| admin.password_hash.clone());
    let typed = form.password;
    let matches = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => password::verify_password(&typed, &hash),
        None => {
            // Spend the same time on an unknown name as on a wrong password.
            let _ = password::hash_password(&typed);
            false
        }
    })
    .await
    .map_err(|error| AppError::Internal(anyhow::anyhow!("password check panicked: {error}")))?;
    let Some(admin) = admin.filter(|_| matches) else {
        guard
            .record_failure(&attempt)
            .await
            .map_err(anyhow::Error::from)?;
        tracing::info!(admin = %username, "console sign-in refused: wrong credentials");
        return Ok(sign_in_page(
            &state,
            &session,
            StatusCode::OK,
            Some(WRONG_CREDENTIALS),
            &username,
        ));
    };
    guard
        .record_success(&attempt)
        .await
        .map_err(anyhow::Error::from)?;
    sessions
        .renew(&mut session)
        .await
        .map_err(anyhow::Error::from)?;
    session.data.admin_id = Some(admin.id);
    sessions
        .save(&mut session, now)
        .await
        .map_err(anyhow::Error::from)?;
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
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(admin = %admin.username, "admin signed in");
    let mut response = redirect("/admin");
    sessions.set_cookie(response.headers_mut(), &session);
    Ok(response)
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
    sessions
        .destroy(&console.session)
        .await
        .map_err(anyhow::Error::from)?;
    let mut response = redirect("/admin/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, sessions.clearing_cookie());
    Ok(response)
}
