//! `POST /pay/notify/{wechat,alipay,abc}`: the channels' payment notifications. Each
//! provider's raw body is verified before anything else reads it; a notification that
//! names one of our orders is stored with our verdict (one that fails verification,
//! or names no order of ours, is only counted and logged in one short line: anyone can
//! post those, and storing them filled the disk and the office's exception list); a
//! payment is applied through the same idempotent path
//! as a query ([`crate::pay::checkout::Checkout::apply`]). Each provider then hears its
//! own words: WeChat 204 or `{"code":"FAIL",…}`, Alipay the text `success` only when
//! accepted, the bank 200 or a 4xx. A refusal makes the channel send it again, so a
//! transient failure on our side heals on the retry.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use crate::domain::provider::Provider;
use crate::pay::ChannelPayment;
use crate::pay::checkout::{CheckoutError, Settled};
use crate::store::{NotificationChannel, NotificationVerdict, ReceivedNotification};

/// The channels' notifications are a few KiB at most.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(Provider::WechatPay.notify_path(), post(wechat))
        .route("/pay/notify/wechat/refund", post(wechat_refund))
        .route(Provider::Alipay.notify_path(), post(alipay))
        .route(Provider::Abc.notify_path(), post(abc))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// What became of a notification, in our words.
enum Outcome {
    /// Applied now, or already applied (a copy), or recorded for the office.
    Accepted,
    /// Not believed or not applicable: `(label, status)`.
    Refused(&'static str, StatusCode),
    /// Believed, but we could not apply it now: the channel must send it again.
    Failed,
}

/// The notification as received, for the record.
struct Received<'a> {
    channel: NotificationChannel,
    headers: &'a HeaderMap,
    body: &'a [u8],
    /// Who sent it (the peer, or nginx's `X-Real-IP`), for the log of a refusal.
    peer: SocketAddr,
}

async fn wechat(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        channel: NotificationChannel::Wechat,
        headers: &headers,
        body: &body,
        peer,
    };
    let outcome = match state.wechat_pay.clone() {
        None => Outcome::Refused("not_configured", StatusCode::NOT_FOUND),
        Some(pay) => match pay.read_notification(&headers, &body, state.clock.now()) {
            Err(refused) => {
                refuse_unread(&state, &received, refused.label(), refused.http_status()).await
            }
            Ok(notice) => {
                let transaction = &notice.transaction;
                let payment = ChannelPayment {
                    channel_trade_no: transaction.transaction_id.clone(),
                    amount_fen: transaction.amount.total,
                    paid_at: transaction
                        .success_time
                        .map_or(state.clock.now(), |time| time.with_timezone(&chrono::Utc)),
                    payer_openid: transaction.payer.as_ref().map(|payer| payer.openid.clone()),
                };
                apply_verified(&state, &received, &transaction.out_trade_no, &payment).await
            }
        },
    };
    wechat_answer(outcome)
}

/// WeChat Pay's refund notifications: verified like payments, matched to our refund
/// by its number, order and amount, applied through the same path as a query.
async fn wechat_refund(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        channel: NotificationChannel::Wechat,
        headers: &headers,
        body: &body,
        peer,
    };
    let outcome = match state.wechat_pay.clone() {
        None => Outcome::Refused("not_configured", StatusCode::NOT_FOUND),
        Some(pay) => match pay.read_refund_notification(&headers, &body, state.clock.now()) {
            Err(refused) => {
                refuse_unread(&state, &received, refused.label(), refused.http_status()).await
            }
            Ok(notice) => apply_refund(&state, &received, &notice.refund).await,
        },
    };
    wechat_answer(outcome)
}

/// A verified refund report: believed only for a refund of ours with the same order
/// and amount; a copy is acknowledged and changes nothing.
async fn apply_refund(
    state: &AppState,
    received: &Received<'_>,
    reported: &crate::pay::wechatpay::notify::RefundResource,
) -> Outcome {
    let number = Some(reported.out_trade_no.as_str());
    let ours = match state.store.find_refund(&reported.out_refund_no).await {
        Ok(Some(ours)) => ours,
        Ok(None) => {
            return refuse(
                state,
                received,
                number,
                None,
                "unknown_refund",
                StatusCode::NOT_FOUND,
            )
            .await;
        }
        Err(error) => {
            tracing::error!(?error, "cannot read a refund; WeChat will retry");
            return Outcome::Failed;
        }
    };
    let order = match state.store.find_order_by_id(ours.order_id).await {
        Ok(order) => order,
        Err(error) => {
            tracing::error!(?error, "cannot read a refund's order; WeChat will retry");
            return Outcome::Failed;
        }
    };
    let order_id = Some(ours.order_id);
    let same_order = order.is_some_and(|order| order.out_trade_no == reported.out_trade_no);
    if !same_order || reported.amount.refund != ours.amount_fen {
        return refuse(
            state,
            received,
            number,
            order_id,
            "amount",
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let news = crate::pay::wechat::refund_state_of(
        &reported.refund_status,
        reported.refund_id.clone(),
        reported.success_time,
        state.clock.now(),
    );
    let refunds = crate::pay::refunds::Refunds::from_checkout(&state.checkout);
    match refunds.apply(&ours.out_refund_no, &news).await {
        Ok((_, changed)) => {
            let verdict = if changed {
                NotificationVerdict::Accepted
            } else {
                NotificationVerdict::Duplicate
            };
            record(state, received, number, order_id, verdict, Some("refund")).await;
            Outcome::Accepted
        }
        Err(error) => {
            tracing::error!(%error, "cannot apply a verified refund; WeChat will retry");
            Outcome::Failed
        }
    }
}

async fn alipay(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        channel: NotificationChannel::Alipay,
        headers: &headers,
        body: &body,
        peer,
    };
    let outcome = match state.alipay.clone() {
        None => Outcome::Refused("not_configured", StatusCode::NOT_FOUND),
        Some(alipay) => match alipay.read_notification(&body, state.clock.now()) {
            // Ours, verified, but not a payment (WAIT_BUYER_PAY, TRADE_CLOSED): stored
            // and acknowledged, or Alipay resends it for a day.
            Err(refused) if refused.acknowledge() => {
                record(
                    &state,
                    &received,
                    None,
                    None,
                    NotificationVerdict::Duplicate,
                    Some(refused.label()),
                )
                .await;
                Outcome::Accepted
            }
            Err(refused) => {
                refuse_unread(&state, &received, refused.label(), refused.http_status()).await
            }
            Ok(notice) => {
                let payment = ChannelPayment {
                    channel_trade_no: notice.trade_no.clone(),
                    amount_fen: notice.total_amount_fen,
                    paid_at: notice.paid_at,
                    payer_openid: None,
                };
                apply_verified(&state, &received, &notice.out_trade_no, &payment).await
            }
        },
    };
    // Alipay reads only the body: exactly `success` stops its retries.
    match outcome {
        Outcome::Accepted => (StatusCode::OK, "success").into_response(),
        Outcome::Refused(_, status) => (status, "fail").into_response(),
        Outcome::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "fail").into_response(),
    }
}

async fn abc(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        channel: NotificationChannel::Abc,
        headers: &headers,
        body: &body,
        peer,
    };
    let outcome = match state.abc.clone() {
        None => Outcome::Refused("not_configured", StatusCode::NOT_FOUND),
        Some(abc) => match abc.read_notification(&body, state.clock.now()) {
            Err(refused) => {
                refuse_unread(&state, &received, refused.label(), refused.http_status()).await
            }
            Ok(notice) => {
                apply_verified(&state, &received, &notice.out_trade_no, &notice.payment()).await
            }
        },
    };
    match outcome {
        Outcome::Accepted => (StatusCode::OK, "success").into_response(),
        Outcome::Refused(label, status) => (status, label).into_response(),
        Outcome::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "retry").into_response(),
    }
}

/// A verified payment report: matched to our order and applied once.
async fn apply_verified(
    state: &AppState,
    received: &Received<'_>,
    out_trade_no: &str,
    payment: &ChannelPayment,
) -> Outcome {
    let span = tracing::Span::current();
    span.record("out_trade_no", out_trade_no);
    let applied = state
        .checkout
        .apply_notified(received.channel, out_trade_no, payment)
        .await;
    state.metrics.payment(
        received.channel.provider().code(),
        payment_outcome(&applied),
    );
    match applied {
        Ok((Settled::Paid(order), first_time)) => {
            if let Some(origin) = &order.request_id {
                span.record("origin_request_id", origin.as_str());
            }
            if first_time {
                tracing::info!(channel = ?received.channel, amount_fen = order.amount_fen, "payment applied");
            }
            let verdict = if first_time {
                NotificationVerdict::Accepted
            } else {
                NotificationVerdict::Duplicate
            };
            record(
                state,
                received,
                Some(out_trade_no),
                Some(order.id),
                verdict,
                None,
            )
            .await;
            Outcome::Accepted
        }
        Ok((Settled::Exception(order), _)) if order.amount_fen != payment.amount_fen => {
            let (number, id) = (Some(out_trade_no), Some(order.id));
            refuse(
                state,
                received,
                number,
                id,
                "amount",
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(CheckoutError::OtherProvider) => {
            // Genuinely signed by one provider, about an order of another: not ours to
            // apply, whatever it says.
            let number = Some(out_trade_no);
            let reason = "other_provider";
            refuse(
                state,
                received,
                number,
                None,
                reason,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(CheckoutError::UnknownOrder) => {
            let number = Some(out_trade_no);
            refuse(
                state,
                received,
                number,
                None,
                "unknown_order",
                StatusCode::NOT_FOUND,
            )
            .await
        }
        Ok((settled, first_time)) => {
            // Real money the office must see (paid after close, a second payment): it is
            // recorded on the order, so the channel may stop sending it. A copy of a
            // report already recorded is a duplicate: one accepted row per payment.
            let id = Some(settled.order().id);
            let verdict = if first_time {
                NotificationVerdict::Accepted
            } else {
                NotificationVerdict::Duplicate
            };
            record(
                state,
                received,
                Some(out_trade_no),
                id,
                verdict,
                Some("exception"),
            )
            .await;
            Outcome::Accepted
        }
        Err(error) => {
            tracing::error!(%error, out_trade_no, "cannot apply a verified payment; the channel will retry");
            Outcome::Failed
        }
    }
}

/// Refuses a notification: counted by channel and reason, logged in one short line
/// (size, reason, address; never the body), and stored for the office only when it is
/// a verified notification about one of our orders (`order_id`). A refusal before
/// verification, or one naming no order of ours, is anyone's to send as often as they
/// like: it must cost no disk and put nothing on the office's exception list.
async fn refuse(
    state: &AppState,
    received: &Received<'_>,
    out_trade_no: Option<&str>,
    order_id: Option<i64>,
    label: &'static str,
    status: StatusCode,
) -> Outcome {
    let channel = received.channel.provider().code();
    let address = crate::web::students::client_address(Some(received.peer), received.headers)
        .map_or_else(|| "-".to_owned(), |address| address.to_string());
    tracing::warn!(
        channel,
        reason = label,
        size = received.body.len(),
        %address,
        stored = order_id.is_some(),
        "payment notification refused"
    );
    state.metrics.notification_refused(channel, label);
    if order_id.is_some() {
        record(
            state,
            received,
            out_trade_no,
            order_id,
            NotificationVerdict::Refused,
            Some(label),
        )
        .await;
    }
    Outcome::Refused(label, status)
}

/// What applying a verified payment came to, as a metric label: `applied`,
/// `paid_after_close` (settled, but after we closed the order), `duplicate` (a copy),
/// `exception` (left for the finance office: paid after close with the items gone, a
/// second payment, another amount), `unknown_order`, or `failed` (to be retried).
fn payment_outcome(applied: &Result<(Settled, bool), CheckoutError>) -> &'static str {
    match applied {
        // Settled, but noted for the office: it came after we had closed the order.
        Ok((Settled::Paid(order), true)) if order.exception.is_some() => "paid_after_close",
        Ok((Settled::Paid(_), true)) => "applied",
        Ok((Settled::Paid(_), false)) => "duplicate",
        Ok((Settled::Exception(_), true)) => "exception",
        Ok((Settled::Exception(_), false)) => "duplicate",
        // The store answers a report only with Paid or Exception; keep the rest apart.
        Ok((Settled::Open(_) | Settled::Closed(_), _)) => "not_applied",
        Err(CheckoutError::UnknownOrder) => "unknown_order",
        Err(CheckoutError::OtherProvider) => "other_provider",
        Err(_) => "failed",
    }
}

/// Stores the notification as received. A failure to store is logged, not fatal: the
/// verdict stands and the channel's own record remains.
async fn record(
    state: &AppState,
    received: &Received<'_>,
    out_trade_no: Option<&str>,
    order_id: Option<i64>,
    verdict: NotificationVerdict,
    reason: Option<&str>,
) {
    let headers_text: String = received
        .headers
        .iter()
        .filter(|(name, _)| {
            name.as_str().starts_with("wechatpay-") || name.as_str() == "content-type"
        })
        .map(|(name, value)| format!("{}: {}\n", name, value.to_str().unwrap_or("<binary>")))
        .collect();
    let notification = ReceivedNotification {
        channel: received.channel,
        out_trade_no,
        order_id,
        headers: &headers_text,
        raw_body: &String::from_utf8_lossy(received.body),
        verdict,
        reason,
        received_at: state.clock.now(),
    };
    if let Err(error) = state.store.record_notification(&notification).await {
        tracing::error!(?error, "cannot store a notification");
    }
}

/// WeChat's failure answer.
/// WeChat Pay's answer for an outcome: 204 when accepted, `{"code":"FAIL",…}` otherwise
/// (payment and refund notifications alike).
fn wechat_answer(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Accepted => StatusCode::NO_CONTENT.into_response(),
        Outcome::Refused(label, status) => wechat_fail(status, label),
        Outcome::Failed => wechat_fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily unable to apply",
        ),
    }
}

/// A notification that could not be read or verified: counted and logged, never
/// stored; answered with the status its reason calls for (400 when it names none).
async fn refuse_unread(
    state: &AppState,
    received: &Received<'_>,
    label: &'static str,
    http_status: u16,
) -> Outcome {
    let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::BAD_REQUEST);
    refuse(state, received, None, None, label, status).await
}

fn wechat_fail(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"code": "FAIL", "message": message});
    (status, axum::Json(body)).into_response()
}
