//! Reconciliation on the console: the runs (day, channel, counts, status), a form to
//! reconcile one channel's bill for a day (finance only), a run's page with every line
//! that did not simply agree (each linking to its order), and its CSV.
//!
//! A run is done in the request: one bill download and one pass over a day's orders.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

use super::paging::PageNumber;
use super::payments::write_csv;
use super::{Console, csv_bytes, csv_download, csv_writer, redirect};
use crate::domain::money::Fen;
use crate::domain::provider::Provider;
use crate::jobs::reconcile::{
    ReconcileError, Reconciler, beijing_yesterday, kind_label, parse_day,
};
use crate::store::{ReconciliationLine, ReconciliationRunRecord};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::reconciliation::{self as views, BUSY, Form as RunForm};

const PER_PAGE: u64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/reconciliation", get(list))
        .route("/admin/reconciliation/run", post(run))
        .route("/admin/reconciliation/runs/{id}", get(show))
        .route("/admin/reconciliation/runs/{id}/lines.csv", get(export))
}

impl AppState {
    /// Reconciliation over this app's orders, channels and cache.
    pub fn reconciler(&self) -> Reconciler {
        Reconciler {
            checkout: self.checkout.clone(),
            cache: self.cache.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    page: PageNumber,
    /// Set when a run could not start because the same one is running.
    #[serde(default)]
    busy: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let error = query.busy.is_some().then_some(BUSY);
    list_page(&state, &console, query.page, error).await
}

async fn list_page(
    state: &AppState,
    console: &Console,
    page: PageNumber,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let (runs, total) = state
        .store
        .reconciliation_runs(PER_PAGE, page.offset(PER_PAGE))
        .await?;
    let yesterday = beijing_yesterday(state.clock.now())
        .format("%Y-%m-%d")
        .to_string();
    let form = RunForm {
        can_change: console.can_change(),
        csrf: console.csrf(),
        default_day: &yesterday,
        configured: &state.reconciler().configured_channels(),
        schedule: state.config.reconcile_schedule.source(),
    };
    let content = views::list(&form, error, &runs, page.get(), PER_PAGE, total);
    Ok(console.page(state, Section::Reconciliation, "对账", content))
}

#[derive(Debug, Default, Deserialize)]
struct RunRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    channel: String,
}

/// Reconciles one channel's bill for one day and shows the run.
async fn run(
    State(state): State<AppState>,
    console: Console,
    Form(form): Form<RunRequest>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let Some(day) = parse_day(&form.date) else {
        let error = format!("日期“{}”无效，应为 YYYY-MM-DD", form.date);
        return list_page(&state, &console, PageNumber::default(), Some(&error)).await;
    };
    let Some(channel) = Provider::parse(&form.channel) else {
        let error = format!("渠道“{}”无效", form.channel);
        return list_page(&state, &console, PageNumber::default(), Some(&error)).await;
    };
    match state
        .reconciler()
        .reconcile(channel, day, &console.admin.username)
        .await
    {
        Ok(report) => Ok(redirect(&format!(
            "/admin/reconciliation/runs/{}",
            report.run.id
        ))),
        Err(ReconcileError::AlreadyRunning) => Ok(redirect("/admin/reconciliation?busy=1")),
        Err(error) => Err(AppError::Internal(error.into())),
    }
}

/// A stored run and its lines, or 404.
async fn run_and_lines(
    state: &AppState,
    id: i64,
) -> Result<(ReconciliationRunRecord, Vec<ReconciliationLine>), AppError> {
    let run = state
        .store
        .reconciliation_run(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let lines = state.store.reconciliation_lines(id).await?;
    Ok((run, lines))
}

async fn show(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let (run, lines) = run_and_lines(&state, id).await?;
    let title = format!("对账 #{id}");
    let content = views::run(&run, &lines);
    Ok(console.page(&state, Section::Reconciliation, &title, content))
}

const EXPORT_HEADER: [&str; 7] = [
    "类型",
    "商户订单号",
    "渠道交易号",
    "我方金额（元）",
    "渠道金额（元）",
    "说明",
    "对账日期",
];

/// A run's lines as CSV (UTF-8 with BOM, for Excel); the export is audited.
async fn export(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let (run, lines) = run_and_lines(&state, id).await?;
    let amount = |fen: Option<i64>| fen.map(|fen| Fen(fen).to_yuan()).unwrap_or_default();
    let mut writer = csv_writer();
    write_csv(&mut writer, EXPORT_HEADER)?;
    for line in &lines {
        write_csv(
            &mut writer,
            [
                kind_label(&line.kind).to_owned(),
                line.out_trade_no.clone(),
                line.channel_trade_no.clone().unwrap_or_default(),
                amount(line.our_amount_fen),
                amount(line.channel_amount_fen),
                line.note.clone().unwrap_or_default(),
                run.bill_date.clone(),
            ],
        )?;
    }
    let entry = console
        .audit("reconcile.export", format!("reconciliation_run:{id}"))
        .after(json!({ "rows": lines.len() }));
    state.store.record_audit(&entry, state.clock.now()).await?;
    let filename = format!("reconciliation-{}-{}-{id}.csv", run.channel, run.bill_date);
    Ok(csv_download(&filename, csv_bytes(writer)?))
}
