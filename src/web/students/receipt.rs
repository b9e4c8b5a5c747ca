//! `GET /orders/{no}/receipt` (PC) and `GET /h5/orders/{no}/receipt` (mobile): the
//! receipt (缴费凭证) of a paid order, for the student who paid it. Behind the same
//! gate as the result page; anyone else's order, or an order not paid, is 404.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Gate, gate, page_response};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::Surface;
use crate::web::views::receipt::{self as views, ReceiptView};

pub async fn receipt(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Response, AppError> {
    let student = match gate(&state, &headers, surface, false).await? {
        Gate::Open(_, student) => student,
        Gate::Elsewhere(response) => return Ok(response),
    };
    let found = state.store.receipt_of(&number).await?;
    let Some(record) = found.filter(|record| record.student_id == student.id) else {
        return Ok(AppError::NotFound.into_response());
    };
    let view = ReceiptView::from_record(&record)
        .map_err(|error| anyhow::anyhow!("a receipt's total has no capital form: {error}"))?;
    let markup = views::receipt(surface, &state.config.school_name, &view);
    Ok(page_response(&state, StatusCode::OK, None, markup))
}
