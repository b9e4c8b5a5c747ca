//! Receipts (缴费凭证) in the console: check a verification code (a read: no audit
//! row, viewers may), see a paid order's receipt, and record its provincial e-bill
//! (财政电子票据) number and status (finance only, audited as `order.ebill`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{Console, redirect};
use crate::domain::receipt::{EbillStatus, ReceiptCode, parse_ebill_number};
use crate::store::{EbillOutcome, ReceiptRecord};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::receipts as views;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/receipts", get(check))
        .route("/admin/receipts/{out_trade_no}", get(detail))
        .route("/admin/receipts/{out_trade_no}/ebill", post(record_ebill))
}

#[derive(Debug, Default, Deserialize)]
struct CheckQuery {
    #[serde(default)]
    code: String,
}

/// `GET /admin/receipts?code=…`: is this code one of our receipts?
async fn check(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<CheckQuery>,
) -> Result<Response, AppError> {
    let typed = query.code.trim();
    let found = match (typed.is_empty(), ReceiptCode::parse(typed)) {
        (true, _) => None,
        (false, None) => Some(None),
        (false, Some(code)) => Some(state.store.receipt_by_code(&code).await?),
    };
    let checked = match &found {
        None => views::Checked::NotAsked,
        Some(None) => views::Checked::NotFound,
        Some(Some(receipt)) => views::Checked::Found(receipt),
    };
    let content = views::check(typed, &checked);
    Ok(console.page(&state, Section::Payments, "凭证查验", content))
}

#[derive(Debug, Default, Deserialize)]
struct DetailQuery {
    #[serde(default)]
    done: String,
}

/// `GET /admin/receipts/{no}`: a paid order's receipt and its e-bill.
async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(out_trade_no): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, AppError> {
    let receipt = paid_receipt(&state, &out_trade_no).await?;
    let notice = (!query.done.is_empty()).then_some("已登记财政电子票据，并记入操作日志。");
    Ok(detail_page(
        &state,
        &console,
        &receipt,
        StatusCode::OK,
        None,
        notice,
        None,
    ))
}

fn detail_page(
    state: &AppState,
    console: &Console,
    receipt: &ReceiptRecord,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
    typed_number: Option<&str>,
) -> Response {
    let content = views::detail(&views::DetailPage {
        receipt,
        can_change: console.can_change(),
        csrf: console.csrf(),
        error,
        notice,
        typed_number,
    });
    let title = format!("缴费凭证 {}", receipt.out_trade_no);
    let mut response = console.page(state, Section::Payments, &title, content);
    *response.status_mut() = status;
    response
}

async fn paid_receipt(state: &AppState, out_trade_no: &str) -> Result<ReceiptRecord, AppError> {
    state
        .store
        .receipt_of(out_trade_no)
        .await?
        .ok_or(AppError::NotFound)
}

#[derive(Debug, Deserialize)]
struct EbillForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    number: String,
}

/// `POST /admin/receipts/{no}/ebill`: records the e-bill's status and number.
async fn record_ebill(
    State(state): State<AppState>,
    console: Console,
    Path(out_trade_no): Path<String>,
    Form(form): Form<EbillForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let receipt = paid_receipt(&state, &out_trade_no).await?;
    let parsed = EbillStatus::parse(&form.status)
        .ok_or_else(|| "请选择票据状态".to_owned())
        .and_then(|status| {
            parse_ebill_number(&form.number)
                .map(|number| (status, number))
                .map_err(|error| error.to_string())
        });
    let (status, number) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => {
            return Ok(detail_page(
                &state,
                &console,
                &receipt,
                StatusCode::BAD_REQUEST,
                Some(&message),
                None,
                Some(form.number.trim()),
            ));
        }
    };
    let entry = console.audit("order.ebill", format!("order:{}", receipt.order_id));
    let outcome = state
        .store
        .record_ebill(&out_trade_no, status, &number, entry, state.clock.now())
        .await?;
    match outcome {
        EbillOutcome::Recorded => {
            tracing::info!(admin = %console.admin.username, %out_trade_no, "e-bill recorded");
            Ok(redirect(&format!("/admin/receipts/{out_trade_no}?done=1")))
        }
        EbillOutcome::Unchanged => Ok(detail_page(
            &state,
            &console,
            &receipt,
            StatusCode::OK,
            None,
            Some("票据状态与票据号未变，未作更改。"),
            None,
        )),
        EbillOutcome::NotFound => Err(AppError::NotFound),
    }
}
