//! The sandbox's refunds (API v3, direct merchant): `POST /v3/refund/domestic/refunds`
//! and `GET /v3/refund/domestic/refunds/{out_refund_no}`, checked, signed and recorded
//! like every other call, and the signed, encrypted `REFUND.SUCCESS` notification.
//!
//! As WeChat: the refund number is the key (the same request again gets the same
//! refund; the same number with other amounts is `INVALID_REQUEST`), the total must be
//! the paid order's, and the refunds of an order cannot exceed it (`NOT_ENOUGH`). A
//! refund answers `PROCESSING`; it succeeds at once in the background (the demo), or
//! when the test says so ([`WechatPaySandbox::complete_refund`]) after
//! [`WechatPaySandbox::hold_refunds`]. Misbehaviour for the tests: an answer lost on
//! the way (the refund still happens), a refusal, notifications sent twice.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value, json};

use super::{
    ALPHANUMERIC, ApiError, DIGITS, Notification, PayState, RecordedCall, Reply, ResponseTamper,
    SANDBOX_PUBLIC_KEY_ID, Shared, TradeState, WechatPaySandbox, aes_gcm_encrypt,
    check_content_headers, check_notify_url, format_time, header_text, is_acknowledged,
    optional_text, post_notification, random_string, required_object, required_text, wechat_time,
};

pub mod refund_paths {
    pub const REFUNDS: &str = "/v3/refund/domestic/refunds";
    pub const QUERY_REFUND: &str = "/v3/refund/domestic/refunds/{out_refund_no}";
}

pub const NOT_ENOUGH: &str = "NOT_ENOUGH";

/// A refund's state at the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundState {
    Processing,
    Success,
}

impl RefundState {
    fn as_str(self) -> &'static str {
        match self {
            RefundState::Processing => "PROCESSING",
            RefundState::Success => "SUCCESS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRefund {
    pub out_refund_no: String,
    pub refund_id: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub reason: Option<String>,
    pub notify_url: Option<String>,
    /// Fen.
    pub refund: i64,
    pub total: i64,
    pub status: RefundState,
    pub create_time: DateTime<FixedOffset>,
    pub success_time: Option<DateTime<FixedOffset>>,
    /// The same for every copy and retry of its notification.
    pub notification_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundSandboxError {
    #[error("the sandbox has no refund {0}")]
    UnknownRefund(String),
    #[error("refund {0} has no notify_url")]
    NoNotifyUrl(String),
}

/// The refunds' book, beside the orders'.
pub(super) struct Refunds {
    book: Mutex<RefundBook>,
}

impl Default for Refunds {
    fn default() -> Self {
        Self {
            book: Mutex::new(RefundBook {
                settle_at_once: true,
                copies: 1,
                ..RefundBook::default()
            }),
        }
    }
}

#[derive(Default)]
struct RefundBook {
    refunds: HashMap<String, SandboxRefund>,
    created: Vec<String>,
    settle_at_once: bool,
    copies: usize,
    lose_answers: usize,
    refusals: VecDeque<(u16, String, String)>,
    notification_answers: Vec<(String, u16, String)>,
}

impl Refunds {
    fn book(&self) -> MutexGuard<'_, RefundBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every refund, in the order asked (the trade bill lists the day's).
    pub(super) fn in_order(&self) -> Vec<SandboxRefund> {
        let book = self.book();
        book.created
            .iter()
            .filter_map(|number| book.refunds.get(number).cloned())
            .collect()
    }
}

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(refund_paths::REFUNDS, post(apply))
        .route("/v3/refund/domestic/refunds/{out_refund_no}", get(query))
}

impl WechatPaySandbox {
    /// Refunds stay `PROCESSING` until [`Self::complete_refund`].
    pub fn hold_refunds(&self) {
        self.shared.refunds.book().settle_at_once = false;
    }

    /// Each refund notification is sent this many times at once.
    pub fn set_refund_notification_copies(&self, copies: usize) {
        self.shared.refunds.book().copies = copies.max(1);
    }

    /// The next refund is carried out but its answer is lost on the way (an unsigned
    /// gateway error): our side cannot know what happened.
    pub fn lose_next_refund_answer(&self) {
        self.shared.refunds.book().lose_answers += 1;
    }

    /// The next refund is refused, signed, with this status, code and message.
    pub fn refuse_next_refund(&self, status: u16, code: &str, message: &str) {
        let refusal = (status, code.to_owned(), message.to_owned());
        self.shared.refunds.book().refusals.push_back(refusal);
    }

    /// Every refund, in the order asked.
    pub fn refunds(&self) -> Vec<SandboxRefund> {
        let book = self.shared.refunds.book();
        book.created
            .iter()
            .filter_map(|number| book.refunds.get(number).cloned())
            .collect()
    }

    pub fn refund(&self, out_refund_no: &str) -> Option<SandboxRefund> {
        self.shared
            .refunds
            .book()
            .refunds
            .get(out_refund_no)
            .cloned()
    }

    /// `(out_refund_no, status, body)` of every refund notification attempt.
    pub fn refund_notification_answers(&self) -> Vec<(String, u16, String)> {
        self.shared.refunds.book().notification_answers.clone()
    }

    /// The money is back with the payer, and the notification is lost: only a query
    /// finds out.
    pub fn complete_refund_silently(&self, out_refund_no: &str) -> Result<(), RefundSandboxError> {
        settle(&self.shared, out_refund_no)
    }

    /// The money is back with the payer: SUCCESS, and the notification sent (as many
    /// copies as set); returns their answers.
    pub async fn complete_refund(
        &self,
        out_refund_no: &str,
    ) -> Result<Vec<(u16, String)>, RefundSandboxError> {
        settle(&self.shared, out_refund_no)?;
        notify(self.shared.clone(), out_refund_no).await
    }

    /// The refund's notification as WeChat would send it now, for the test to POST:
    /// with another refund amount, or a spoilt signature, when asked.
    pub fn refund_notification_for(
        &self,
        out_refund_no: &str,
        refund_amount: Option<i64>,
        tamper: Option<ResponseTamper>,
    ) -> Result<Notification, RefundSandboxError> {
        let mut refund = self
            .refund(out_refund_no)
            .ok_or_else(|| RefundSandboxError::UnknownRefund(out_refund_no.to_owned()))?;
        if let Some(amount) = refund_amount {
            refund.refund = amount;
        }
        if refund.status != RefundState::Success {
            refund.status = RefundState::Success;
            refund.success_time = Some(wechat_time(self.shared.clock.now()));
        }
        Ok(self.shared.refund_notification(&refund, tamper))
    }
}

impl Shared {
    fn refund_json(refund: &SandboxRefund) -> Value {
        let mut value = json!({
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": refund.transaction_id,
            "out_trade_no": refund.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": format_time(&refund.create_time),
            "status": refund.status.as_str(),
            "funds_account": "AVAILABLE",
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "from": [],
                "payer_total": refund.total,
                "payer_refund": refund.refund,
                "settlement_refund": refund.refund,
                "settlement_total": refund.total,
                "discount_refund": 0,
                "currency": "CNY",
                "refund_fee": 0,
            },
        });
        if let Some(time) = &refund.success_time {
            value["success_time"] = json!(format_time(time));
        }
        value
    }

    fn refund_notification(
        &self,
        refund: &SandboxRefund,
        tamper: Option<ResponseTamper>,
    ) -> Notification {
        let resource = json!({
            "mchid": self.merchant.mchid,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status.as_str(),
            "success_time": refund.success_time.as_ref().map(format_time),
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "payer_total": refund.total,
                "payer_refund": refund.refund,
            },
        });
        let nonce = random_string(ALPHANUMERIC, 12);
        let ciphertext = aes_gcm_encrypt(
            self.merchant.apiv3_key.as_bytes(),
            nonce.as_bytes(),
            b"refund",
            resource.to_string().as_bytes(),
        );
        let body = json!({
            "id": refund.notification_id,
            "create_time": format_time(&wechat_time(self.clock.now())),
            "resource_type": "encrypt-resource",
            "event_type": "REFUND.SUCCESS",
            "summary": "退款成功",
            "resource": {
                "original_type": "refund",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": "refund",
                "nonce": nonce,
            },
        })
        .to_string();
        let mut headers = self.wechatpay_headers(body.as_bytes(), tamper);
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        Notification { headers, body }
    }

    /// A refund request, as WeChat takes it.
    fn apply_refund(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                super::codes::PARAM_ERROR,
                "请求体不是合法的 JSON",
            )
        })?;
        let ask = RefundAsk::read(&value)?;
        let (transaction_id, total) = self.paid_order(&ask.out_trade_no)?;
        if ask.total != total {
            return Err(ApiError::invalid_request("订单金额与原订单金额不一致"));
        }
        let now = wechat_time(self.clock.now());
        let mut book = self.refunds.book();
        if let Some(existing) = book.refunds.get(&ask.out_refund_no) {
            let same = existing.out_trade_no == ask.out_trade_no
                && existing.refund == ask.refund
                && existing.total == ask.total;
            if !same {
                return Err(ApiError::invalid_request(
                    "退款单号已存在，但请求参数与原退款申请不一致",
                ));
            }
            return Ok(Reply::json(Self::refund_json(existing)));
        }
        if let Some((status, code, message)) = book.refusals.pop_front() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            return Err(ApiError::new(status, &code, message));
        }
        let refunded: i64 = book
            .refunds
            .values()
            .filter(|refund| refund.out_trade_no == ask.out_trade_no)
            .map(|refund| refund.refund)
            .sum();
        if refunded + ask.refund > total {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                NOT_ENOUGH,
                "订单可退金额不足",
            ));
        }
        let refund = SandboxRefund {
            refund_id: format!("50{}", random_string(DIGITS, 28)),
            out_refund_no: ask.out_refund_no.clone(),
            out_trade_no: ask.out_trade_no,
            transaction_id,
            reason: ask.reason,
            notify_url: ask.notify_url,
            refund: ask.refund,
            total,
            status: RefundState::Processing,
            create_time: now,
            success_time: None,
            notification_id: uuid::Uuid::new_v4().to_string(),
        };
        let answer = Self::refund_json(&refund);
        book.created.push(ask.out_refund_no.clone());
        book.refunds.insert(ask.out_refund_no, refund);
        Ok(Reply::json(answer))
    }

    fn paid_order(&self, out_trade_no: &str) -> Result<(String, i64), ApiError> {
        let state = self.state();
        let order = state.orders.get(out_trade_no).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                super::codes::RESOURCE_NOT_EXISTS,
                "订单不存在",
            )
        })?;
        match (&order.tx.trade_state, &order.tx.transaction_id) {
            (TradeState::Success, Some(id)) => Ok((id.clone(), order.tx.total)),
            _ => Err(ApiError::invalid_request("订单未支付，不能退款")),
        }
    }

    fn query_refund(&self, out_refund_no: &str) -> Result<Reply, ApiError> {
        let book = self.refunds.book();
        let refund = book.refunds.get(out_refund_no).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                super::codes::RESOURCE_NOT_EXISTS,
                "退款单不存在",
            )
        })?;
        Ok(Reply::json(Self::refund_json(refund)))
    }
}

/// The fields of a refund request, checked as WeChat checks them.
struct RefundAsk {
    out_trade_no: String,
    out_refund_no: String,
    reason: Option<String>,
    notify_url: Option<String>,
    refund: i64,
    total: i64,
}

impl RefundAsk {
    fn read(value: &Value) -> Result<RefundAsk, ApiError> {
        let empty = Map::new();
        let object = value.as_object().unwrap_or(&empty);
        let out_trade_no =
            required_text(object, "out_trade_no", "/out_trade_no", "商户订单号", 6, 32)?;
        let out_refund_no = required_text(
            object,
            "out_refund_no",
            "/out_refund_no",
            "商户退款单号",
            1,
            64,
        )?;
        let reason = optional_text(object, "reason", "/reason", "退款原因", 1, 240)?;
        let notify_url = optional_text(
            object,
            "notify_url",
            "/notify_url",
            "退款结果回调url",
            1,
            255,
        )?;
        if let Some(url) = notify_url {
            check_notify_url(url, object.get("notify_url"))?;
        }
        let amount = required_object(object, "amount", "金额信息")?;
        let fen = |key: &str, label: &str| -> Result<i64, ApiError> {
            let pointer = format!("/amount/{key}");
            match amount.get(key).and_then(Value::as_i64) {
                Some(fen) if fen > 0 => Ok(fen),
                _ => Err(ApiError::param(
                    "body",
                    &pointer,
                    label,
                    "整数规则校验失败，必须为正整数",
                    amount.get(key),
                )),
            }
        };
        let refund = fen("refund", "退款金额")?;
        let total = fen("total", "原订单金额")?;
        if amount.get("currency").and_then(Value::as_str) != Some("CNY") {
            return Err(ApiError::param(
                "body",
                "/amount/currency",
                "退款币种",
                "枚举规则校验失败，只支持 CNY",
                amount.get("currency"),
            ));
        }
        Ok(RefundAsk {
            out_trade_no: out_trade_no.to_owned(),
            out_refund_no: out_refund_no.to_owned(),
            reason: reason.map(str::to_owned),
            notify_url: notify_url.map(str::to_owned),
            refund,
            total,
        })
    }
}

async fn apply(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = shared.checked(
        &method,
        &uri,
        &headers,
        &body,
        refund_paths::REFUNDS,
        |shared| shared.apply_refund(&body),
    );
    let settled = result.as_ref().ok().and_then(|reply| {
        reply.body.as_ref().and_then(|body| {
            let processing = body["status"] == "PROCESSING";
            processing.then(|| {
                body["out_refund_no"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
    });
    let lose = result.is_ok() && {
        let mut book = shared.refunds.book();
        let lose = book.lose_answers > 0;
        book.lose_answers = book.lose_answers.saturating_sub(1);
        lose
    };
    if let Some(number) = settled
        && shared.refunds.book().settle_at_once
    {
        let settling = shared.clone();
        shared.spawn_background(async move {
            if settle(&settling, &number).is_ok() {
                let _ = notify(settling, &number).await;
            }
        });
    }
    let response = shared.answer(&method, &uri, &body, refund_paths::REFUNDS, result);
    if lose {
        // Carried out, but what reaches us is a gateway's unsigned error page.
        return (StatusCode::BAD_GATEWAY, "502 Bad Gateway").into_response();
    }
    response
}

async fn query(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(out_refund_no): axum::extract::Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let template = refund_paths::QUERY_REFUND;
    let result = shared.checked(&method, &uri, &headers, &body, template, |shared| {
        shared.query_refund(&out_refund_no)
    });
    shared.answer(&method, &uri, &body, template, result)
}

impl Shared {
    /// WeChat's checks of every call, then `handle`.
    fn checked(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        template: &'static str,
        handle: impl FnOnce(&Shared) -> Result<Reply, ApiError>,
    ) -> Result<Reply, ApiError> {
        self.injected_failure(template, uri.path())?;
        self.check_authorization(method, &raw_uri(uri), headers, body)?;
        check_content_headers(method, headers)?;
        if let Some(serial) = header_text(headers, "wechatpay-serial")
            && serial != SANDBOX_PUBLIC_KEY_ID
        {
            return Err(ApiError::invalid_request(format!(
                "Wechatpay-Serial {serial} 对应的微信支付公钥或平台证书不存在"
            )));
        }
        handle(self)
    }

    /// Recorded and signed, as the other calls.
    fn answer(
        &self,
        method: &Method,
        uri: &Uri,
        body: &[u8],
        template: &'static str,
        result: Result<Reply, ApiError>,
    ) -> Response {
        let (status, answer) = match result {
            Ok(reply) => (
                reply.status,
                reply
                    .body
                    .map(|body| body.to_string().into_bytes())
                    .unwrap_or_default(),
            ),
            Err(error) => (error.status, error.body()),
        };
        let tamper = {
            let mut state = self.state();
            let tamper = PayState::pop_for(&mut state.response_tampers, template, uri.path());
            state.calls.push(RecordedCall {
                method: method.to_string(),
                route: template,
                path: uri.path().to_owned(),
                uri: raw_uri(uri),
                body: String::from_utf8_lossy(body).into_owned(),
                wechatpay_serial: None,
                status: status.as_u16(),
            });
            tamper
        };
        self.signed_response(status, answer, tamper)
    }
}

fn raw_uri(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

/// PROCESSING → SUCCESS (once).
fn settle(shared: &Shared, out_refund_no: &str) -> Result<(), RefundSandboxError> {
    let now = wechat_time(shared.clock.now());
    let mut book = shared.refunds.book();
    let refund = book
        .refunds
        .get_mut(out_refund_no)
        .ok_or_else(|| RefundSandboxError::UnknownRefund(out_refund_no.to_owned()))?;
    if refund.status == RefundState::Processing {
        refund.status = RefundState::Success;
        refund.success_time = Some(now);
    }
    Ok(())
}

/// Sends the refund's notification, `copies` at once.
async fn notify(
    shared: Arc<Shared>,
    out_refund_no: &str,
) -> Result<Vec<(u16, String)>, RefundSandboxError> {
    let (refund, copies) = {
        let book = shared.refunds.book();
        let refund = book
            .refunds
            .get(out_refund_no)
            .cloned()
            .ok_or_else(|| RefundSandboxError::UnknownRefund(out_refund_no.to_owned()))?;
        (refund, book.copies)
    };
    let url = refund
        .notify_url
        .clone()
        .ok_or_else(|| RefundSandboxError::NoNotifyUrl(out_refund_no.to_owned()))?;
    let notification = shared.refund_notification(&refund, None);
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..copies {
        let (http, url, notification) = (shared.http.clone(), url.clone(), notification.clone());
        attempts.spawn(async move { post_notification(&http, &url, &notification).await });
    }
    let mut answers = Vec::with_capacity(copies);
    while let Some(joined) = attempts.join_next().await {
        answers.push(joined.unwrap_or_else(|error| (0, error.to_string())));
    }
    let mut book = shared.refunds.book();
    for (status, body) in &answers {
        let entry = (out_refund_no.to_owned(), *status, body.clone());
        book.notification_answers.push(entry);
    }
    if !answers.iter().any(|(status, _)| is_acknowledged(*status)) {
        tracing::warn!(out_refund_no, "no refund notification was acknowledged");
    }
    Ok(answers)
}
