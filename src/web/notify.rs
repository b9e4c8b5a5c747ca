//! `POST /pay/notify/wechat`: WeChat Pay's payment notifications. The raw body is
//! verified before anything else reads it; every notification is stored with our
//! verdict; a payment is applied through the same idempotent path as a query.
//! Accepted: 204. Refused: 4xx/5xx with `{"code":"FAIL","message":…}`, so that WeChat
//! sends it again (a transient failure on our side heals on the retry).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use crate::pay::ChannelPayment;
use crate::pay::checkout::Settled;
use crate::store::{NotificationChannel, NotificationVerdict, ReceivedNotification};

/// WeChat's notifications are about 1 KiB.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pay/notify/wechat", post(wechat))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn wechat(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(pay) = state.wechat_pay.clone() else {
        return fail(StatusCode::NOT_FOUND, "WeChat Pay is not configured");
    };
    let now = state.clock.now();
    let notice = match pay.read_notification(&headers, &body, now) {
        Ok(notice) => notice,
        Err(refused) => {
            tracing::warn!(reason = refused.label(), "WeChat Pay notification refused");
            state.metrics.notification_refused(refused.label());
            record(
                &state,
                &headers,
                &body,
                None,
                NotificationVerdict::Refused,
                Some(refused.label()),
            )
            .await;
            let status =
                StatusCode::from_u16(refused.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            return fail(status, refused.reason());
        }
    };
    let transaction = &notice.transaction;
    let payment = ChannelPayment {
        channel_trade_no: transaction.transaction_id.clone(),
        amount_fen: transaction.amount.total,
        paid_at: transaction
            .success_time
            .map_or(now, |time| time.with_timezone(&chrono::Utc)),
        payer_openid: transaction.payer.as_ref().map(|payer| payer.openid.clone()),
    };
    let number = transaction.out_trade_no.clone();
    let known = match state.store.find_order(&number).await {
        Ok(order) => order,
        Err(error) => return store_failed(&error),
    };
    if known.is_none() {
        state.metrics.notification_refused("unknown_order");
        record(
            &state,
            &headers,
            &body,
            Some(&number),
            NotificationVerdict::Refused,
            Some("unknown_order"),
        )
        .await;
        return fail(StatusCode::NOT_FOUND, "unknown out_trade_no");
    }
    match state.checkout.apply(&number, &payment).await {
        Ok((Settled::Paid(_), first_time)) => {
            let verdict = if !first_time {
                NotificationVerdict::Duplicate
            } else {
                NotificationVerdict::Accepted
            };
            record(&state, &headers, &body, Some(&number), verdict, None).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok((Settled::Exception(order), _)) if order.amount_fen != payment.amount_fen => {
            state.metrics.notification_refused("amount");
            record(
                &state,
                &headers,
                &body,
                Some(&number),
                NotificationVerdict::Refused,
                Some("amount"),
            )
            .await;
            fail(StatusCode::BAD_REQUEST, "amount does not match the order")
        }
        Ok(_) => {
            // Real money the office must see (paid after close, a second payment): it is
            // recorded on the order, so WeChat may stop sending it.
            record(
                &state,
                &headers,
                &body,
                Some(&number),
                NotificationVerdict::Accepted,
                Some("exception"),
            )
            .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => {
            tracing::error!(%error, out_trade_no = %number, "cannot apply a verified payment; WeChat will retry");
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporarily unable to apply",
            )
        }
    }
}

fn store_failed(error: &crate::store::StoreError) -> Response {
    tracing::error!(
        ?error,
        "cannot read orders for a notification; WeChat will retry"
    );
    fail(
        StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily unable to apply",
    )
}

/// Stores the notification as received. A failure to store is logged, not fatal: the
/// verdict stands and WeChat's own record remains.
async fn record(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    out_trade_no: Option<&str>,
    verdict: NotificationVerdict,
    reason: Option<&str>,
) {
    let headers_text: String = headers
        .iter()
        .filter(|(name, _)| {
            name.as_str().starts_with("wechatpay-") || name.as_str() == "content-type"
        })
        .map(|(name, value)| format!("{}: {}\n", name, value.to_str().unwrap_or("<binary>")))
        .collect();
    let notification = ReceivedNotification {
        channel: NotificationChannel::Wechat,
        out_trade_no,
        headers: &headers_text,
        raw_body: &String::from_utf8_lossy(body),
        verdict,
        reason,
        received_at: state.clock.now(),
    };
    if let Err(error) = state.store.record_notification(&notification).await {
        tracing::error!(?error, "cannot store a notification");
    }
}

/// WeChat's failure answer.
fn fail(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"code": "FAIL", "message": message});
    (status, axum::Json(body)).into_response()
}
