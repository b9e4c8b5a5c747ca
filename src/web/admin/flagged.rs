//! A payment that arrived for an order we had closed and that the checkout could not
//! settle by itself (its items held, waived, or paid by another order): the office
//! applies it to the order's items when they are still owed, or refunds it with the
//! order's refund form. Applying asks first, is CSRF-checked and audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::{Console, redirect};
use crate::store::FlaggedOutcome;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::flagged as views;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/admin/payments/{out_trade_no}/flagged/apply",
        get(ask).post(apply),
    )
}

/// `GET`: what applying would do, and the button that confirms it.
async fn ask(
    State(state): State<AppState>,
    console: Console,
    Path(out_trade_no): Path<String>,
) -> Result<Response, AppError> {
    confirm_page(&state, &console, &out_trade_no, StatusCode::OK, None).await
}

async fn confirm_page(
    state: &AppState,
    console: &Console,
    out_trade_no: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, AppError> {
    let detail = state
        .store
        .payment_detail(out_trade_no)
        .await?
        .ok_or(AppError::NotFound)?;
    if !views::holds_money(&detail) || !console.can_change() {
        return Err(AppError::NotFound);
    }
    let content = views::confirm(&views::ConfirmPage {
        detail: &detail,
        csrf: console.csrf(),
        error,
    });
    let title = format!("入账确认 {}", detail.order.out_trade_no);
    let mut response = console.page(state, Section::Payments, &title, content);
    *response.status_mut() = status;
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct ApplyForm {
    #[serde(default)]
    csrf: String,
}

/// `POST`: applies the payment to the items, when they are all still owed.
async fn apply(
    State(state): State<AppState>,
    console: Console,
    Path(out_trade_no): Path<String>,
    Form(form): Form<ApplyForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let order = state
        .store
        .find_order(&out_trade_no)
        .await?
        .ok_or(AppError::NotFound)?;
    let entry = console.audit("order.apply_flagged_payment", format!("order:{}", order.id));
    let outcome = state
        .store
        .apply_flagged_payment(order.id, entry, state.clock.now())
        .await?;
    match outcome {
        FlaggedOutcome::Applied(paid) => {
            tracing::info!(admin = %console.admin.username, out_trade_no = %paid.out_trade_no, amount_fen = paid.amount_fen, "flagged payment applied to its items");
            Ok(redirect(&format!("/admin/payments/{}", paid.out_trade_no)))
        }
        FlaggedOutcome::ItemsNotOwed(reason) => {
            confirm_page(
                &state,
                &console,
                &out_trade_no,
                StatusCode::CONFLICT,
                Some(reason),
            )
            .await
        }
        FlaggedOutcome::NotFlagged => Err(AppError::NotFound),
    }
}
