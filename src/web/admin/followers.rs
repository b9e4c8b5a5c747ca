//! The follower check on the console: the runs and their reports, 预检 (a dry run),
//! the real run from a dry run's report, and pushing the menu.
//!
//! A run is started in the request (the lock taken, its row and audit row written)
//! and worked through in the background; the browser goes to its report, which says
//! 进行中 and refreshes itself until the run is done.

use std::path::Path;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::paging::PageNumber;
use super::{Console, redirect};
use crate::jobs::followers::{CheckError, FollowerCheck, NO_REMOVAL_API};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::followers::{self as views, BUSY, Message, NO_ACCOUNT, Settings};
use crate::wechat::menu::{DEFAULT_MENU_PATH, push_menu};

const PER_PAGE: u64 = 20;
/// How often a running report reloads itself, in seconds.
const REFRESH_SECONDS: &str = "3";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/followers", get(list))
        .route("/admin/followers/runs/{id}", get(show))
        .route("/admin/followers/check", post(check))
        .route("/admin/menu/push", post(menu))
}

impl AppState {
    /// The follower check over this app's account, database, cache and clock; `None`
    /// without an official account.
    pub fn follower_check(&self) -> Option<FollowerCheck> {
        let account = self.account.as_ref()?;
        Some(FollowerCheck {
            api: account.api.clone(),
            store: self.store.clone(),
            cache: self.cache.clone(),
            clock: self.clock.clone(),
            config: self.config.cleanup.clone(),
        })
    }
}

fn settings<'a>(state: &'a AppState, console: &'a Console) -> Settings<'a> {
    let cleanup = &state.config.cleanup;
    Settings {
        account: state.account.is_some(),
        can_change: console.can_change(),
        csrf: console.csrf(),
        action: cleanup.action.as_str(),
        grace_days: cleanup.grace_days,
        schedule: cleanup.schedule.source(),
        no_removal: NO_REMOVAL_API,
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    page: PageNumber,
    /// Set when a run could not start because another one holds the lock.
    #[serde(default)]
    busy: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let message = Message {
        error: query.busy.is_some().then_some(BUSY),
        notice: None,
    };
    list_page(&state, &console, query.page, &message).await
}

async fn list_page(
    state: &AppState,
    console: &Console,
    page: PageNumber,
    message: &Message<'_>,
) -> Result<Response, AppError> {
    let (runs, total) = state
        .store
        .check_runs(PER_PAGE, page.offset(PER_PAGE))
        .await?;
    let content = views::list(
        &settings(state, console),
        message,
        &runs,
        page.get(),
        PER_PAGE,
        total,
    );
    Ok(console.page(state, Section::Followers, "公众号关注者检查", content))
}

#[derive(Debug, Default, Deserialize)]
struct RunQuery {
    #[serde(default)]
    page: PageNumber,
}

async fn show(
    State(state): State<AppState>,
    console: Console,
    UrlPath(id): UrlPath<i64>,
    Query(query): Query<RunQuery>,
) -> Result<Response, AppError> {
    let run = state.store.check_run(id).await?.ok_or(AppError::NotFound)?;
    let content = views::run(&settings(&state, &console), &run, query.page.get());
    let title = format!("关注者检查 #{id}");
    let mut response = console.page(&state, Section::Followers, &title, content);
    if run.finished_at.is_none() {
        response
            .headers_mut()
            .insert("refresh", HeaderValue::from_static(REFRESH_SECONDS));
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
struct CheckQuery {
    /// `1` for 预检.
    #[serde(default)]
    dry_run: Option<String>,
}

/// Starts a run (预检 with `?dry_run=1`) and shows its report.
async fn check(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<CheckQuery>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let Some(check) = state.follower_check() else {
        return Err(AppError::BadRequest(NO_ACCOUNT.to_owned()));
    };
    let dry_run = matches!(query.dry_run.as_deref(), Some("1" | "true"));
    let started = match check.start(&console.admin.username, dry_run).await {
        Ok(started) => started,
        Err(CheckError::AlreadyRunning) => return Ok(redirect("/admin/followers?busy=1")),
        Err(error) => return Err(AppError::Internal(error.into())),
    };
    let run_id = started.run_id();
    state.background.spawn(async move {
        if let Err(error) = started.finish().await {
            tracing::error!(error = ?error, run = run_id, "follower check from the console failed");
        }
    });
    Ok(redirect(&format!("/admin/followers/runs/{run_id}")))
}

/// Pushes `menus/default.json`, as `campus-pay menu push` does, and says how it went.
async fn menu(
    State(state): State<AppState>,
    console: Console,
    Form(form): Form<ChangeForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let Some(account) = state.account.clone() else {
        return Err(AppError::BadRequest(NO_ACCOUNT.to_owned()));
    };
    let path = Path::new(DEFAULT_MENU_PATH);
    let pushed = push_menu(&account.api, path, &state.config.public_url).await;
    match pushed {
        Ok(menu) => {
            let audit = console
                .audit("menu.push", "menu")
                .after(serde_json::json!({ "file": DEFAULT_MENU_PATH, "menu": menu }));
            state.store.record_audit(&audit, state.clock.now()).await?;
            let notice = format!("菜单已推送：{DEFAULT_MENU_PATH}（微信返回 errcode 0）");
            let message = Message {
                error: None,
                notice: Some(&notice),
            };
            list_page(&state, &console, PageNumber::default(), &message).await
        }
        Err(error) => {
            let reason = format!("菜单推送失败：{:#}", anyhow::Error::from(error));
            tracing::warn!(%reason, "menu push from the console failed");
            let message = Message {
                error: Some(&reason),
                notice: None,
            };
            list_page(&state, &console, PageNumber::default(), &message).await
        }
    }
}
