//! Refunds (API v3, direct merchant): `POST /v3/refund/domestic/refunds` to ask,
//! `GET /v3/refund/domestic/refunds/{out_refund_no}` to find out where one stands.
//!
//! WeChat keys a refund by our `out_refund_no`: asking again with the same number and
//! the same amount gives back the refund it already has, so a retry after a lost
//! answer is safe. A new number would be a second refund; callers never make one for
//! a refund whose outcome is unknown. Signing, the verification of every answer and
//! the error typing are the client's ([`WechatPayClient`]), not repeated here.

use chrono::{DateTime, FixedOffset};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{PayApiError, WechatPayClient, decode, error_from_answer, to_json};

const REFUNDS: &str = "v3/refund/domestic/refunds";
/// WeChat's limits for `out_refund_no` and `reason`.
const OUT_REFUND_NO_LEN: std::ops::RangeInclusive<usize> = 1..=64;
const MAX_REASON_CHARS: usize = 80;

/// What a refund asks for; amounts in fen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundApply {
    pub out_trade_no: String,
    pub out_refund_no: String,
    /// Shown to the payer in WeChat (at most 80 characters).
    pub reason: Option<String>,
    pub notify_url: Option<String>,
    pub refund_fen: i64,
    /// What the order paid: WeChat checks it against the transaction.
    pub total_fen: i64,
}

/// `status` of an answer, `refund_status` of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RefundStatus {
    Success,
    /// Closed by WeChat (or the merchant): the money did not go back.
    Closed,
    Processing,
    /// The payer's account could not take it (card cancelled or frozen): the
    /// merchant must act in the merchant platform.
    Abnormal,
    Other(String),
}

impl RefundStatus {
    pub fn as_str(&self) -> &str {
        match self {
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Closed => "CLOSED",
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Abnormal => "ABNORMAL",
            RefundStatus::Other(other) => other,
        }
    }
}

impl From<String> for RefundStatus {
    fn from(wire: String) -> Self {
        match wire.as_str() {
            "SUCCESS" => RefundStatus::Success,
            "CLOSED" => RefundStatus::Closed,
            "PROCESSING" => RefundStatus::Processing,
            "ABNORMAL" => RefundStatus::Abnormal,
            _ => RefundStatus::Other(wire),
        }
    }
}

impl From<RefundStatus> for String {
    fn from(status: RefundStatus) -> Self {
        status.as_str().to_owned()
    }
}

/// Amounts of a refund, in fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmount {
    pub total: i64,
    pub refund: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// A refund as an answer (apply or query) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub out_refund_no: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    pub status: RefundStatus,
    /// Present once SUCCESS; WeChat has been seen to send it empty before.
    #[serde(default, deserialize_with = "lenient_time")]
    pub success_time: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub user_received_account: Option<String>,
    pub amount: RefundAmount,
}

#[derive(Serialize)]
struct RefundBody<'a> {
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_url: Option<&'a str>,
    amount: RefundAmountBody,
}

#[derive(Serialize)]
struct RefundAmountBody {
    refund: i64,
    total: i64,
    currency: &'static str,
}

/// An absent or empty time is no time; anything else must be RFC 3339.
fn lenient_time<'de, D>(deserializer: D) -> Result<Option<DateTime<FixedOffset>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

impl WechatPayClient {
    /// `POST /v3/refund/domestic/refunds`. The same `out_refund_no` again returns the
    /// refund WeChat already has.
    #[tracing::instrument(skip_all, fields(out_refund_no = %apply.out_refund_no))]
    pub async fn refund(&self, apply: &RefundApply) -> Result<Refund, PayApiError> {
        const API: &str = "refund";
        let body = refund_body(apply)?;
        let url = self.endpoint(REFUNDS)?;
        let answer = self.exchange(API, Method::POST, url, Some(body)).await?;
        if !answer.status.is_success() {
            return Err(error_from_answer(API, &apply.out_trade_no, &answer));
        }
        decode(API, &answer.body)
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`. A refund WeChat does not
    /// know is `Rejected` with `RESOURCE_NOT_EXISTS` (404).
    #[tracing::instrument(skip(self))]
    pub async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, PayApiError> {
        const API: &str = "query refund";
        check_out_refund_no(out_refund_no)?;
        let url = self.endpoint(&format!("{REFUNDS}/{}", escape(out_refund_no)))?;
        let answer = self.exchange(API, Method::GET, url, None).await?;
        if !answer.status.is_success() {
            return Err(error_from_answer(API, out_refund_no, &answer));
        }
        decode(API, &answer.body)
    }
}

/// The JSON WeChat expects, after checking its rules.
fn refund_body(apply: &RefundApply) -> Result<String, PayApiError> {
    check_out_refund_no(&apply.out_refund_no)?;
    if apply.refund_fen <= 0 || apply.refund_fen > apply.total_fen {
        return Err(PayApiError::InvalidRequest(
            "a refund must be at least 1 fen and at most the order's total",
        ));
    }
    if apply
        .reason
        .as_ref()
        .is_some_and(|reason| reason.chars().count() > MAX_REASON_CHARS)
    {
        return Err(PayApiError::InvalidRequest(
            "the refund reason must be at most 80 characters",
        ));
    }
    to_json(&RefundBody {
        out_trade_no: &apply.out_trade_no,
        out_refund_no: &apply.out_refund_no,
        reason: apply.reason.as_deref().filter(|reason| !reason.is_empty()),
        notify_url: apply.notify_url.as_deref(),
        amount: RefundAmountBody {
            refund: apply.refund_fen,
            total: apply.total_fen,
            currency: "CNY",
        },
    })
}

fn check_out_refund_no(out_refund_no: &str) -> Result<(), PayApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|' | '*' | '@');
    if OUT_REFUND_NO_LEN.contains(&out_refund_no.len()) && out_refund_no.chars().all(allowed) {
        Ok(())
    } else {
        Err(PayApiError::InvalidRequest(
            "out_refund_no must be 1-64 characters of [0-9A-Za-z_-|*@]",
        ))
    }
}

/// Only for numbers that passed `check_out_refund_no`.
fn escape(out_refund_no: &str) -> String {
    out_refund_no
        .replace('|', "%7C")
        .replace('*', "%2A")
        .replace('@', "%40")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply() -> RefundApply {
        RefundApply {
            out_trade_no: "CP20250901120000ABCD".to_owned(),
            out_refund_no: "RF20250901x7Kq2mPz9a".to_owned(),
            reason: Some("重复缴费退款".to_owned()),
            notify_url: Some("https://pay.example.edu.cn/pay/notify/wechat/refund".to_owned()),
            refund_fen: 150_000,
            total_fen: 150_000,
        }
    }

    #[test]
    fn the_request_body_has_wechats_fields_and_amount_object() {
        let body: serde_json::Value =
            serde_json::from_str(&refund_body(&apply()).expect("valid")).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({
                "out_trade_no": "CP20250901120000ABCD",
                "out_refund_no": "RF20250901x7Kq2mPz9a",
                "reason": "重复缴费退款",
                "notify_url": "https://pay.example.edu.cn/pay/notify/wechat/refund",
                "amount": {"refund": 150000, "total": 150000, "currency": "CNY"},
            })
        );
    }

    #[test]
    fn an_empty_reason_and_no_notify_url_are_left_out() {
        let mut apply = apply();
        apply.reason = Some(String::new());
        apply.notify_url = None;
        let body: serde_json::Value =
            serde_json::from_str(&refund_body(&apply).expect("valid")).expect("JSON");
        assert!(body.get("reason").is_none());
        assert!(body.get("notify_url").is_none());
    }

    #[test]
    fn requests_breaking_wechats_rules_are_not_sent() {
        let broken: [fn(&mut RefundApply); 5] = [
            |apply| apply.refund_fen = 0,
            |apply| apply.refund_fen = apply.total_fen + 1,
            |apply| apply.out_refund_no = String::new(),
            |apply| apply.out_refund_no = "RF 1".to_owned(),
            |apply| apply.reason = Some("退".repeat(81)),
        ];
        for spoil in broken {
            let mut apply = apply();
            spoil(&mut apply);
            assert!(matches!(
                refund_body(&apply),
                Err(PayApiError::InvalidRequest(_))
            ));
        }
        assert_eq!(escape("a|b*c@d"), "a%7Cb%2Ac%40d");
    }

    #[test]
    fn a_processing_answer_reads_without_success_time() {
        let answer = r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"RF20250901x7Kq2mPz9a","transaction_id":"4200001234202509011234567890","out_trade_no":"CP20250901120000ABCD","channel":"ORIGINAL","user_received_account":"招商银行信用卡0403","success_time":"","create_time":"2025-09-02T10:00:00+08:00","status":"PROCESSING","funds_account":"AVAILABLE","amount":{"total":150000,"refund":150000,"payer_total":150000,"payer_refund":150000,"settlement_refund":150000,"settlement_total":150000,"discount_refund":0,"currency":"CNY","refund_fee":0}}"#;
        let refund: Refund = serde_json::from_str(answer).expect("reads");
        assert_eq!(refund.status, RefundStatus::Processing);
        assert_eq!(refund.success_time, None);
        assert_eq!(refund.amount.refund, 150_000);
        assert_eq!(refund.refund_id, "50000000382019052709732678859");
    }

    #[test]
    fn a_success_answer_has_its_time_and_unknown_statuses_are_kept() {
        let answer = r#"{"refund_id":"5000","out_refund_no":"RF1","status":"SUCCESS","success_time":"2025-09-02T10:00:05+08:00","amount":{"total":100,"refund":40,"currency":"CNY"}}"#;
        let refund: Refund = serde_json::from_str(answer).expect("reads");
        assert_eq!(refund.status, RefundStatus::Success);
        assert_eq!(
            refund.success_time.map(|time| time.to_rfc3339()),
            Some("2025-09-02T10:00:05+08:00".to_owned())
        );
        let odd = answer.replace("\"SUCCESS\"", "\"SOMETHING_NEW\"");
        let refund: Refund = serde_json::from_str(&odd).expect("reads");
        assert_eq!(
            refund.status,
            RefundStatus::Other("SOMETHING_NEW".to_owned())
        );
        for status in ["SUCCESS", "CLOSED", "PROCESSING", "ABNORMAL"] {
            assert_eq!(RefundStatus::from(status.to_owned()).as_str(), status);
        }
    }
}
