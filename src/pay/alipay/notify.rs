//! Alipay's asynchronous notification (异步通知, `notify_type=trade_status_sync`): a
//! form-encoded POST to the `notify_url` of the precreate, signed RSA2 over the
//! sorted parameters without `sign` and `sign_type`.
//!
//! Alipay resends anything not answered with the seven bytes `success` (for about a
//! day: 4m, 10m, 10m, 1h, 2h, 6h, 15h). So:
//! - a payment (`TRADE_SUCCESS`, `TRADE_FINISHED`) that verifies and is ours is an
//!   [`AlipayNotice`]: the caller checks it against the order, applies it once, and
//!   answers `success` (copies too);
//! - a verified notification of ours that is not a payment (`WAIT_BUYER_PAY`,
//!   `TRADE_CLOSED`, …) is [`AlipayNotificationRefused::NotPaid`], which
//!   [`AlipayNotificationRefused::acknowledge`]s: answer `success`, apply nothing
//!   (otherwise Alipay would resend it for a day);
//! - anything else (unreadable, unsigned, forged, another app's) is answered `fail`,
//!   and Alipay keeps trying, which is what a real notification hitting a bug needs.

use chrono::{DateTime, Utc};

use super::sign::{AlipayPublicKey, notification_sign_content};
use super::{TradeStatus, parse_beijing_time, yuan_to_fen};
use crate::pay::ChannelPayment;

/// The body of the answer that stops Alipay resending.
pub const ACKNOWLEDGED: &str = "success";
/// What anything else is answered (any other body makes Alipay resend).
pub const NOT_ACKNOWLEDGED: &str = "fail";

/// A payment Alipay vouches for (signature verified, our app). Compare the order
/// number and amount with our order before applying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayNotice {
    pub notify_id: Option<String>,
    pub app_id: String,
    pub out_trade_no: String,
    /// Alipay's trade number (支付宝交易号), 28 digits.
    pub trade_no: String,
    pub total_amount_fen: i64,
    /// `TradeSuccess` or `TradeFinished`.
    pub trade_status: TradeStatus,
    /// `gmt_payment` (Beijing time); `notify_time`, or the time it was read, without it.
    pub paid_at: DateTime<Utc>,
    /// The payer's Alipay user id (`2088…`).
    pub buyer_id: Option<String>,
    /// The merchant paid (`seller_id`, a PID `2088…`), as Alipay sent it.
    pub seller_id: Option<String>,
}

impl AlipayNotice {
    /// The payment as the checkout applies it.
    pub fn payment(&self) -> ChannelPayment {
        ChannelPayment {
            channel_trade_no: self.trade_no.clone(),
            amount_fen: self.total_amount_fen,
            paid_at: self.paid_at,
            payer_openid: None,
        }
    }
}

/// Why a notification was not taken as a payment; `label` names it in metrics and
/// the record, `answer` is the body to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlipayNotificationRefused {
    #[error("the notification is not a readable form: {0}")]
    Malformed(&'static str),
    #[error("the notification carries no sign")]
    Unsigned,
    #[error("the notification is signed with {0}, not RSA2")]
    UnsupportedSignType(String),
    #[error("the notification's signature does not verify with Alipay's public key")]
    BadSignature,
    #[error("the notification is for another app ({0})")]
    NotOurs(String),
    /// Signed by Alipay for our app, but paid to another merchant (`seller_id`).
    #[error("the notification is for another seller ({0})")]
    OtherSeller(String),
    #[error("the notification's {0} is missing or unreadable")]
    MissingField(&'static str),
    /// Verified and ours, but not a payment: acknowledged, nothing applied.
    #[error("the notification says {trade_status}, not paid")]
    NotPaid {
        trade_status: String,
        out_trade_no: Option<String>,
    },
}

impl AlipayNotificationRefused {
    /// Whether to answer `success` anyway: only for our own verified notifications
    /// that are not payments (Alipay would otherwise resend them for a day).
    pub fn acknowledge(&self) -> bool {
        matches!(self, AlipayNotificationRefused::NotPaid { .. })
    }

    /// The body to answer with: `success` when acknowledged, `fail` otherwise.
    pub fn answer(&self) -> &'static str {
        if self.acknowledge() {
            ACKNOWLEDGED
        } else {
            NOT_ACKNOWLEDGED
        }
    }

    /// 200 for what is acknowledged, 401 for what failed verification, 400 otherwise.
    /// (Alipay looks only at the body; the status is for our logs.)
    pub fn http_status(&self) -> u16 {
        match self {
            AlipayNotificationRefused::NotPaid { .. } => 200,
            AlipayNotificationRefused::Unsigned | AlipayNotificationRefused::BadSignature => 401,
            _ => 400,
        }
    }

    /// A short reason for the record; nothing about our keys.
    pub fn reason(&self) -> &'static str {
        match self {
            AlipayNotificationRefused::Malformed(_) => "not a readable notification",
            AlipayNotificationRefused::Unsigned => "unsigned",
            AlipayNotificationRefused::UnsupportedSignType(_) => "sign_type is not RSA2",
            AlipayNotificationRefused::BadSignature => "signature does not verify",
            AlipayNotificationRefused::NotOurs(_) => "not for this app",
            AlipayNotificationRefused::OtherSeller(_) => "not for this merchant",
            AlipayNotificationRefused::MissingField(_) => "a required field is missing",
            AlipayNotificationRefused::NotPaid { .. } => "not a successful payment",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            AlipayNotificationRefused::Malformed(_) => "malformed",
            AlipayNotificationRefused::Unsigned => "unsigned",
            AlipayNotificationRefused::UnsupportedSignType(_) => "sign_type",
            AlipayNotificationRefused::BadSignature => "bad_signature",
            AlipayNotificationRefused::NotOurs(_) => "not_ours",
            AlipayNotificationRefused::OtherSeller(_) => "other_seller",
            AlipayNotificationRefused::MissingField(_) => "missing_field",
            AlipayNotificationRefused::NotPaid { .. } => "not_paid",
        }
    }
}

/// The parameters of a form body, each once (a repeated name is refused: which one
/// would the signature be about?).
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, AlipayNotificationRefused> {
    if body.is_empty() {
        return Err(AlipayNotificationRefused::Malformed("empty body"));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(AlipayNotificationRefused::Malformed("not UTF-8"));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if params.iter().any(|(seen, _)| *seen == name) {
            return Err(AlipayNotificationRefused::Malformed(
                "a parameter appears twice",
            ));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Ok(params)
}

/// Verifies a notification and reads the payment in it. `app_id` is ours; `now`
/// stands in for the payment time when Alipay gives none.
pub fn parse_notification(
    form_body: &[u8],
    key: &AlipayPublicKey,
    app_id: &str,
    now: DateTime<Utc>,
) -> Result<AlipayNotice, AlipayNotificationRefused> {
    let params = parse_form(form_body)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let sign = get("sign")
        .filter(|sign| !sign.is_empty())
        .ok_or(AlipayNotificationRefused::Unsigned)?;
    if let Some(sign_type) = get("sign_type")
        && sign_type != "RSA2"
    {
        return Err(AlipayNotificationRefused::UnsupportedSignType(
            sign_type.to_owned(),
        ));
    }
    let content = notification_sign_content(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !key.verify_base64(content.as_bytes(), sign) {
        return Err(AlipayNotificationRefused::BadSignature);
    }
    let notified_app = get("app_id").ok_or(AlipayNotificationRefused::MissingField("app_id"))?;
    if notified_app != app_id {
        return Err(AlipayNotificationRefused::NotOurs(notified_app.to_owned()));
    }
    let status = get("trade_status")
        .map(TradeStatus::parse)
        .ok_or(AlipayNotificationRefused::MissingField("trade_status"))?;
    if !status.is_paid() {
        return Err(AlipayNotificationRefused::NotPaid {
            trade_status: status.as_str().to_owned(),
            out_trade_no: get("out_trade_no").map(str::to_owned),
        });
    }
    let required = |name: &'static str| {
        get(name)
            .filter(|value| !value.is_empty())
            .ok_or(AlipayNotificationRefused::MissingField(name))
    };
    let out_trade_no = required("out_trade_no")?.to_owned();
    let trade_no = required("trade_no")?.to_owned();
    let total_amount_fen = yuan_to_fen(required("total_amount")?)
        .ok_or(AlipayNotificationRefused::MissingField("total_amount"))?;
    let paid_at = get("gmt_payment")
        .and_then(parse_beijing_time)
        .or_else(|| get("notify_time").and_then(parse_beijing_time))
        .unwrap_or(now);
    Ok(AlipayNotice {
        notify_id: get("notify_id").map(str::to_owned),
        app_id: notified_app.to_owned(),
        out_trade_no,
        trade_no,
        total_amount_fen,
        trade_status: status,
        paid_at,
        buyer_id: get("buyer_id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        seller_id: get("seller_id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
    })
}

/// When the merchant's PID is configured, the payment must have been made to it: an
/// app can be authorised for several merchants, and a notification about another
/// merchant's trade is not money we received.
pub fn check_seller(
    notice: &AlipayNotice,
    ours: Option<&str>,
) -> Result<(), AlipayNotificationRefused> {
    match ours {
        Some(ours) if notice.seller_id.as_deref() != Some(ours) => Err(
            AlipayNotificationRefused::OtherSeller(notice.seller_id.clone().unwrap_or_default()),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod seller_tests {
    use super::*;

    fn notice(seller_id: Option<&str>) -> AlipayNotice {
        AlipayNotice {
            notify_id: None,
            app_id: "2021000000000001".into(),
            out_trade_no: "CP1".into(),
            trade_no: "2026".into(),
            total_amount_fen: 1,
            trade_status: TradeStatus::TradeSuccess,
            paid_at: DateTime::<Utc>::UNIX_EPOCH,
            buyer_id: None,
            seller_id: seller_id.map(str::to_owned),
        }
    }

    #[test]
    fn the_seller_is_checked_only_when_configured() {
        let ours = Some("2088721000000001");
        assert!(check_seller(&notice(ours), ours).is_ok());
        assert!(check_seller(&notice(Some("2088000000000000")), None).is_ok());
        let other = check_seller(&notice(Some("2088721000000002")), ours).unwrap_err();
        assert_eq!(other.label(), "other_seller");
        assert!(!other.acknowledge());
        let missing = check_seller(&notice(None), ours).unwrap_err();
        assert_eq!(missing.label(), "other_seller");
    }
}

#[cfg(test)]
mod tests {
    use super::super::sign::AppPrivateKey;
    use super::super::sign::tests::{SANDBOX_ALIPAY_PRIVATE_PEM, SANDBOX_ALIPAY_PUBLIC_PEM};
    use super::*;

    /// alipay-sdk-nodejs-all `test/alipay.test.ts`, `checkNotifySign` › "verify sign
    /// should delete sign_type": the Alipay public key of that test (inline there),
    /// wrapped at 64.
    const NODE_SDK_NOTIFY_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqObrdC7hrgAVM98tK0nv
3hSQRGGKT4lBsQjHiGjeYZjOPIPHR5knm2jnnz/YGIXIofVHkA/tAlBAd5DrY7Yp
vI4tP5EONLtZKC2ghBMx7McI2wRD0xiqzxOQr1FuhZGJ8/AUokBzJrzY+aGX2xcO
rxFYRlFilvVLTXg4LWjR1tdPkO6+i7wQZAIVMClPkwVRZEbaERRHlKqTzv2gGv5r
DU8gRoe1LeaN+6BlbTqHWkQcNCUNrA8C6l17XAXGKDsm/9TFWwO8EPHHHCaQdjtV
5/FdcWIt+L8SR1ss7EXTjYDFtxcKVv9rEoY1lX8T4mX+GbXfZHraG5NCF1+XioL5
JwIDAQAB
-----END PUBLIC KEY-----";

    /// The same test's "with sign_type arguments verify success": a real
    /// `trade_status_sync` notification (the SDK takes `fund_bill_list` as an object
    /// and JSON-stringifies it; on the wire it is this string).
    const NODE_SDK_NOTIFICATION: [(&str, &str); 25] = [
        ("gmt_create", "2019-08-15 15:56:22"),
        ("charset", "utf-8"),
        ("seller_email", "z97-yuquerevenue@service.aliyun.com"),
        ("subject", "语雀空间 500人规模"),
        (
            "sign",
            "QfTb8tqE1BMhS5qAnXtvsF3/jBkEvu9q9en0pdbBUDDjvKycZhQb7h8GDs4FKfi049PynaNuatxSgLb/nLWZpXyyh0LEWdK2S6Ri7nPwrVgOs08zugLO20vOQz44y3ti2Ncm8/wZts1Fr2gZ7pShnVX3d1B50hbsXnObT1r/U8ONNQjWXd0HIul4TG+Q3fm3svmSvFEy0WnzuhcyHPX5Gm4ELNctL6Qd5YniGJFNcc7kopHYtI/XD9YCKCH6Ct02rzUs9i11C9CsadtZn+WhxF26Dqt9sGEFajkJ8cxUTLi8+VCpLHsgPE8P0y095uQcDdK0YjCh4x7wVSov+lrmOQ==",
        ),
        ("buyer_id", "2088102534368455"),
        ("invoice_amount", "0.10"),
        ("notify_id", "2019081500222155624068450559358070"),
        (
            "fund_bill_list",
            r#"[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
        ("notify_type", "trade_status_sync"),
        ("trade_status", "TRADE_SUCCESS"),
        ("receipt_amount", "0.10"),
        ("buyer_pay_amount", "0.10"),
        ("sign_type", "RSA2"),
        ("app_id", "2019073166072302"),
        ("seller_id", "2088531891668739"),
        ("gmt_payment", "2019-08-15 15:56:24"),
        ("notify_time", "2019-08-15 15:56:25"),
        ("version", "1.0"),
        ("out_trade_no", "20190815155618536-564-57"),
        ("total_amount", "0.10"),
        ("trade_no", "2019081522001468450512505578"),
        ("auth_app_id", "2019073166072302"),
        ("buyer_logon_id", "xud***@126.com"),
        ("point_amount", "0.00"),
    ];
    const NODE_SDK_APP_ID: &str = "2019073166072302";

    fn form(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            body.append_pair(name, value);
        }
        body.finish().into_bytes()
    }

    fn node_key() -> AlipayPublicKey {
        AlipayPublicKey::from_pem(NODE_SDK_NOTIFY_PUBLIC_PEM).expect("node SDK notify key")
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-06-15T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn replaced(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
        NODE_SDK_NOTIFICATION
            .iter()
            .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
            .collect()
    }

    #[test]
    fn node_sdk_notification_verifies_and_reads() {
        let notice = parse_notification(
            &form(&NODE_SDK_NOTIFICATION),
            &node_key(),
            NODE_SDK_APP_ID,
            now(),
        )
        .expect("the SDK's real notification verifies");
        assert_eq!(notice.out_trade_no, "20190815155618536-564-57");
        assert_eq!(notice.trade_no, "2019081522001468450512505578");
        assert_eq!(notice.total_amount_fen, 10);
        assert_eq!(notice.trade_status, TradeStatus::TradeSuccess);
        assert_eq!(notice.paid_at.to_rfc3339(), "2019-08-15T07:56:24+00:00");
        assert_eq!(notice.buyer_id.as_deref(), Some("2088102534368455"));
        assert_eq!(
            notice.notify_id.as_deref(),
            Some("2019081500222155624068450559358070")
        );
        let payment = notice.payment();
        assert_eq!(payment.amount_fen, 10);
        assert_eq!(payment.channel_trade_no, "2019081522001468450512505578");
    }

    #[test]
    fn sign_type_is_left_out_of_the_signed_content() {
        // The SDK's "without sign_type" case: the same signature holds with or
        // without it, so it was never signed.
        let without: Vec<(&str, &str)> = NODE_SDK_NOTIFICATION
            .iter()
            .copied()
            .filter(|(name, _)| *name != "sign_type")
            .collect();
        assert!(parse_notification(&form(&without), &node_key(), NODE_SDK_APP_ID, now()).is_ok());
        let content = notification_sign_content(NODE_SDK_NOTIFICATION);
        assert!(!content.contains("sign_type") && !content.contains("sign="));
        assert!(content.starts_with("app_id=2019073166072302&auth_app_id="));
        assert!(
            content
                .contains(r#"&fund_bill_list=[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]&"#)
        );
        // Another sign_type than RSA2 is refused before verifying.
        assert_eq!(
            parse_notification(
                &form(&replaced("sign_type", "RSA")),
                &node_key(),
                NODE_SDK_APP_ID,
                now()
            ),
            Err(AlipayNotificationRefused::UnsupportedSignType("RSA".into()))
        );
    }

    #[test]
    fn a_tampered_amount_fails() {
        let refused = parse_notification(
            &form(&replaced("total_amount", "0.01")),
            &node_key(),
            NODE_SDK_APP_ID,
            now(),
        )
        .expect_err("tampered");
        assert_eq!(refused, AlipayNotificationRefused::BadSignature);
        assert_eq!(refused.answer(), "fail");
        assert_eq!(refused.http_status(), 401);
        assert_eq!(refused.label(), "bad_signature");
    }

    #[test]
    fn node_sdk_verify_fail_case_fails() {
        // The SDK's "verify fail": a notification signed by another Alipay key.
        let other: [(&str, &str); 24] = [
            ("app_id", "2018121762595097"),
            ("auth_app_id", "2018121762595097"),
            ("buyer_id", "2088512613526436"),
            ("buyer_logon_id", "152****6706"),
            ("buyer_pay_amount", "0.01"),
            ("charset", "utf-8"),
            (
                "fund_bill_list",
                r#"[{"amount":"0.01","fundChannel":"PCREDIT"}]"#,
            ),
            ("gmt_create", "2019-05-23 14:13:56"),
            ("gmt_payment", "2019-05-23 14:17:13"),
            ("invoice_amount", "0.01"),
            ("notify_id", "2019052300222141714026431019971405"),
            ("notify_time", "2019-05-23 14:17:14"),
            ("notify_type", "trade_status_sync"),
            ("out_trade_no", "tpxy23962362669658"),
            ("point_amount", "0.00"),
            ("receipt_amount", "0.01"),
            ("seller_email", "myapp@alitest.com"),
            ("seller_id", "2088331578818800"),
            (
                "sign",
                "T946S2qyNFAXLhAaRgNMmatxH6SO3MyWYFnTamQOgW1iAcheL/Zz+VoizwvEc6mTEwYewvvKS1wNkMQ1oEajMUHv9+cXQ9IFvU/qKS9Ktvw5xHvCaK0fj7LsVcQ7VxfyT3kSvXUDfKDP4cHSPuSZKwM2ybkzr53bIH9OUTpTQd2d3J0rbdf76OoUt+XF9vwqj7OVE7AGjH2HPWp842DgL/YVy4qeA9N2uFKRevT3YUskjaRxuI/E66reNjTMFhbjEqGLKvMcDD4BaQXnibq9ojAj60589fBwzKk3yWsVQmqGfksMQoheVMtZ3lAw4o2ty3TFngbVFFLwgx8FDpBZ9Q==",
            ),
            ("sign_type", "RSA2"),
            ("subject", "tpxy2222896485"),
            ("total_amount", "0.01"),
            ("trade_no", "111111112019052322001426431037869358"),
            ("trade_status", "TRADE_SUCCESS"),
        ];
        assert_eq!(
            parse_notification(&form(&other), &node_key(), "2018121762595097", now()),
            Err(AlipayNotificationRefused::BadSignature)
        );
    }

    #[test]
    fn missing_sign_and_unreadable_bodies_are_refused() {
        let unsigned: Vec<(&str, &str)> = NODE_SDK_NOTIFICATION
            .iter()
            .copied()
            .filter(|(name, _)| *name != "sign")
            .collect();
        let refused = parse_notification(&form(&unsigned), &node_key(), NODE_SDK_APP_ID, now())
            .expect_err("unsigned");
        assert_eq!(refused, AlipayNotificationRefused::Unsigned);
        assert_eq!(refused.label(), "unsigned");
        assert_eq!(
            parse_notification(b"", &node_key(), NODE_SDK_APP_ID, now()),
            Err(AlipayNotificationRefused::Malformed("empty body"))
        );
        assert_eq!(
            parse_notification(b"\xff\xfe", &node_key(), NODE_SDK_APP_ID, now()),
            Err(AlipayNotificationRefused::Malformed("not UTF-8"))
        );
        let mut doubled = NODE_SDK_NOTIFICATION.to_vec();
        doubled.push(("total_amount", "1000.00"));
        assert_eq!(
            parse_notification(&form(&doubled), &node_key(), NODE_SDK_APP_ID, now()),
            Err(AlipayNotificationRefused::Malformed(
                "a parameter appears twice"
            ))
        );
    }

    #[test]
    fn another_apps_notification_is_not_ours() {
        let refused = parse_notification(
            &form(&NODE_SDK_NOTIFICATION),
            &node_key(),
            "2021000000000000",
            now(),
        )
        .expect_err("another app");
        assert_eq!(
            refused,
            AlipayNotificationRefused::NotOurs(NODE_SDK_APP_ID.into())
        );
        assert!(!refused.acknowledge());
    }

    /// Signs `params` as Alipay does (with the sandbox's Alipay key).
    fn alipay_signed(params: &[(&str, &str)]) -> Vec<u8> {
        let key = AppPrivateKey::from_pem(SANDBOX_ALIPAY_PRIVATE_PEM).expect("sandbox key");
        let sign = key.sign_base64(notification_sign_content(params.iter().copied()).as_bytes());
        let mut all = params.to_vec();
        all.push(("sign", &sign));
        form(&all)
    }

    fn sandbox_key() -> AlipayPublicKey {
        AlipayPublicKey::from_pem(SANDBOX_ALIPAY_PUBLIC_PEM).expect("sandbox public key")
    }

    const APP: &str = "9021000140000000";

    #[test]
    fn verified_notifications_that_are_not_payments_are_acknowledged_unapplied() {
        for status in ["WAIT_BUYER_PAY", "TRADE_CLOSED"] {
            let body = alipay_signed(&[
                ("app_id", APP),
                ("notify_type", "trade_status_sync"),
                ("out_trade_no", "CP20240615100000ABCD"),
                ("trade_no", "2024061522001400001234567890"),
                ("trade_status", status),
                ("total_amount", "1200.50"),
                ("sign_type", "RSA2"),
            ]);
            let refused =
                parse_notification(&body, &sandbox_key(), APP, now()).expect_err("not paid");
            assert_eq!(
                refused,
                AlipayNotificationRefused::NotPaid {
                    trade_status: status.into(),
                    out_trade_no: Some("CP20240615100000ABCD".into()),
                }
            );
            assert!(refused.acknowledge());
            assert_eq!(refused.answer(), "success");
            assert_eq!(refused.http_status(), 200);
            assert_eq!(refused.label(), "not_paid");
        }
    }

    #[test]
    fn finished_trades_are_payments_and_times_fall_back() {
        let body = alipay_signed(&[
            ("app_id", APP),
            ("out_trade_no", "CP20240615100000ABCD"),
            ("trade_no", "2024061522001400001234567890"),
            ("trade_status", "TRADE_FINISHED"),
            ("total_amount", "1200.5"),
            ("notify_time", "2024-06-15 18:00:00"),
            ("subject", "武威职业学院-2024学年学费 & 住宿费"),
        ]);
        let notice = parse_notification(&body, &sandbox_key(), APP, now()).expect("paid");
        assert_eq!(notice.total_amount_fen, 120_050);
        assert_eq!(notice.trade_status, TradeStatus::TradeFinished);
        assert_eq!(notice.paid_at.to_rfc3339(), "2024-06-15T10:00:00+00:00");
        assert_eq!(notice.buyer_id, None);

        let body = alipay_signed(&[
            ("app_id", APP),
            ("out_trade_no", "CP20240615100000ABCD"),
            ("trade_no", "2024061522001400001234567890"),
            ("trade_status", "TRADE_SUCCESS"),
            ("total_amount", "12.345"),
        ]);
        assert_eq!(
            parse_notification(&body, &sandbox_key(), APP, now()),
            Err(AlipayNotificationRefused::MissingField("total_amount"))
        );
        let body = alipay_signed(&[
            ("app_id", APP),
            ("out_trade_no", "CP20240615100000ABCD"),
            ("trade_status", "TRADE_SUCCESS"),
            ("total_amount", "12.34"),
        ]);
        assert_eq!(
            parse_notification(&body, &sandbox_key(), APP, now()),
            Err(AlipayNotificationRefused::MissingField("trade_no"))
        );
    }
}
