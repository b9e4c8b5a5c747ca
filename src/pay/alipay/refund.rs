//! Refunds: `alipay.trade.refund` and `alipay.trade.fastpay.refund.query`.
//!
//! Alipay's refund is synchronous: a verified `fund_change: "Y"` means the money went
//! back. A refund asked again with the same `out_request_no` is not refunded twice:
//! Alipay answers with `fund_change: "N"` (nothing changed *this* time), so that
//! answer is settled by a refund query, which says `REFUND_SUCCESS` for a refund it
//! has. The refund query answers without `refund_status` for a refund it does not
//! know (never received, or refused).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::client::{AlipayApiError, AlipayClient, check_out_trade_no};
use super::{TRADE_NOT_EXIST, parse_beijing_time, yuan};
use crate::pay::{RefundRequest, RefundState};

pub const REFUND: &str = "alipay.trade.refund";
pub const REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";

/// `refund_status` of a refund that went through.
const REFUND_SUCCESS: &str = "REFUND_SUCCESS";
/// Alipay: `out_request_no` String(64); `refund_reason` String(256).
const MAX_OUT_REQUEST_NO: usize = 64;
const MAX_REASON_CHARS: usize = 256;

/// What `alipay.trade.refund` answered (verified, code 10000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAnswer {
    pub trade_no: Option<String>,
    /// `Y` when this call moved money.
    pub fund_changed: bool,
    /// Everything refunded on the trade so far, yuan as sent.
    pub refund_fee: Option<String>,
    pub gmt_refund_pay: Option<DateTime<Utc>>,
}

/// What `alipay.trade.fastpay.refund.query` answered (verified, code 10000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundQueryAnswer {
    pub trade_no: Option<String>,
    /// `REFUND_SUCCESS`, or `None`: Alipay has no refund by that number.
    pub refund_status: Option<String>,
    pub refund_amount: Option<String>,
    pub gmt_refund_pay: Option<DateTime<Utc>>,
}

fn text(content: &Map<String, Value>, name: &str) -> Option<String> {
    content
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn check_request_no(number: &str) -> Result<(), AlipayApiError> {
    let ok = !number.is_empty()
        && number.len() <= MAX_OUT_REQUEST_NO
        && number
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if ok {
        Ok(())
    } else {
        Err(AlipayApiError::InvalidRequest(format!(
            "out_request_no {number:?} is not 1 to 64 letters, digits, '_' or '-'"
        )))
    }
}

/// An answer for another order than the one asked about is not believed.
fn check_same_order(
    method: &'static str,
    content: &Map<String, Value>,
    out_trade_no: &str,
) -> Result<(), AlipayApiError> {
    match text(content, "out_trade_no") {
        Some(number) if number != out_trade_no => Err(AlipayApiError::Decode {
            method,
            detail: "the answer is for another out_trade_no".into(),
        }),
        _ => Ok(()),
    }
}

impl AlipayClient {
    /// `alipay.trade.refund`: always with our refund number as `out_request_no`, so
    /// a retry is the same refund at Alipay.
    pub async fn refund(
        &self,
        request: &RefundRequest<'_>,
    ) -> Result<RefundAnswer, AlipayApiError> {
        check_out_trade_no(request.out_trade_no)?;
        check_request_no(request.out_refund_no)?;
        if request.refund_fen <= 0 || request.refund_fen > request.total_fen {
            return Err(AlipayApiError::InvalidRequest(format!(
                "refund_amount must be 0.01 yuan up to the order's {} fen, not {} fen",
                request.total_fen, request.refund_fen
            )));
        }
        let reason: String = request
            .reason
            .trim()
            .chars()
            .take(MAX_REASON_CHARS)
            .collect();
        let mut biz_content = json!({
            "out_trade_no": request.out_trade_no,
            "refund_amount": yuan(request.refund_fen),
            "out_request_no": request.out_refund_no,
        });
        if !reason.is_empty() {
            biz_content["refund_reason"] = Value::from(reason);
        }
        let content = self.call(REFUND, &biz_content, None).await?;
        check_same_order(REFUND, &content, request.out_trade_no)?;
        let fund_change = text(&content, "fund_change");
        let fund_changed = match fund_change.as_deref() {
            Some("Y") => true,
            Some("N") => false,
            _ => {
                return Err(AlipayApiError::Decode {
                    method: REFUND,
                    detail: "no fund_change Y or N".into(),
                });
            }
        };
        Ok(RefundAnswer {
            trade_no: text(&content, "trade_no"),
            fund_changed,
            refund_fee: text(&content, "refund_fee"),
            gmt_refund_pay: text(&content, "gmt_refund_pay")
                .as_deref()
                .and_then(parse_beijing_time),
        })
    }

    /// `alipay.trade.fastpay.refund.query` by our order and refund numbers, asking
    /// for the refund's time.
    pub async fn query_refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundQueryAnswer, AlipayApiError> {
        check_out_trade_no(out_trade_no)?;
        check_request_no(out_refund_no)?;
        let biz_content = json!({
            "out_trade_no": out_trade_no,
            "out_request_no": out_refund_no,
            "query_options": ["gmt_refund_pay"],
        });
        let content = self.call(REFUND_QUERY, &biz_content, None).await?;
        check_same_order(REFUND_QUERY, &content, out_trade_no)?;
        if text(&content, "out_request_no").is_some_and(|number| number != out_refund_no) {
            return Err(AlipayApiError::Decode {
                method: REFUND_QUERY,
                detail: "the answer is for another out_request_no".into(),
            });
        }
        Ok(RefundQueryAnswer {
            trade_no: text(&content, "trade_no"),
            refund_status: text(&content, "refund_status"),
            refund_amount: text(&content, "refund_amount"),
            gmt_refund_pay: text(&content, "gmt_refund_pay")
                .as_deref()
                .and_then(parse_beijing_time),
        })
    }
}

/// A refund query's answer as a [`RefundState`]. A success must name the amount we
/// asked for: anything else is not what we think it is.
pub fn refund_state(
    answer: RefundQueryAnswer,
    refund_fen: Option<i64>,
    now: DateTime<Utc>,
) -> Result<RefundState, String> {
    match answer.refund_status.as_deref() {
        None => Ok(RefundState::NotFound),
        Some(REFUND_SUCCESS) => {
            let amount = answer.refund_amount.as_deref().and_then(super::yuan_to_fen);
            if let (Some(asked), Some(amount)) = (refund_fen, amount)
                && asked != amount
            {
                return Err(format!(
                    "Alipay's refund by that number is {amount} fen, not the {asked} fen asked"
                ));
            }
            Ok(RefundState::Succeeded {
                channel_refund_no: answer.trade_no.unwrap_or_default(),
                succeeded_at: answer.gmt_refund_pay.unwrap_or(now),
            })
        }
        // Alipay documents only REFUND_SUCCESS; anything else is shown as is.
        Some(other) => Ok(RefundState::Failed {
            reason: format!("refund_status {other}"),
        }),
    }
}

/// Whether a refusal to a refund query means "no such trade, so no such refund".
pub fn is_unknown_trade(error: &AlipayApiError) -> bool {
    matches!(error, AlipayApiError::Business { sub_code, .. } if sub_code == TRADE_NOT_EXIST)
}
