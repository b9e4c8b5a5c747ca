//! The audit log, newest first, filtered by who, what and on what.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::Console;
use super::paging::PageNumber;
use crate::store::AuditQuery;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::audit as views;

const PER_PAGE: u64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/audit", get(list))
}

#[derive(Debug, Default, Deserialize)]
struct Filter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    page: PageNumber,
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let page = filter.page.get();
    let query = AuditQuery {
        actor: non_empty(&filter.actor),
        action_prefix: non_empty(&filter.action),
        target: non_empty(&filter.target),
        limit: PER_PAGE,
        offset: filter.page.offset(PER_PAGE),
    };
    let (rows, total) = state.store.audit_log(&query).await?;
    let content = views::list(
        &views::Filter {
            actor: &filter.actor,
            action: &filter.action,
            target: &filter.target,
        },
        &rows,
        page,
        PER_PAGE,
        total,
    );
    Ok(console.page(&state, Section::Audit, "操作日志", content))
}
