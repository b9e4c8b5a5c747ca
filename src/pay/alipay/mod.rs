//! Alipay (支付宝) as a [`Channel`]: 当面付's `alipay.trade.precreate` gives the QR code
//! the PC page shows, `alipay.trade.query` and `alipay.trade.close` follow the order,
//! and the asynchronous notifications come to `/pay/notify/alipay`.
//!
//! - [`sign`]: RSA2 signing of requests, verification of answers over their exact
//!   text and of notifications, with the published vectors of Alipay's SDKs;
//! - [`client`]: the OpenAPI gateway client;
//! - [`notify`]: reading a notification.
//!
//! Two things Alipay does that WeChat does not, and how they map:
//! - the trade exists at Alipay only once the QR code is scanned: before that, query
//!   and close answer `ACQ.TRADE_NOT_EXIST`. Query maps it to
//!   [`ChannelState::NotFound`] (still payable until its `time_expire`); close maps it
//!   to [`Closed::Closed`] and the items are released. Alipay does not document that
//!   such a code is dead afterwards (merchants report "本笔交易已关闭" when it is
//!   scanned later, but nothing promises it), so a payment may still come for the
//!   closed order until its `time_expire`: it arrives as a late payment, applied if
//!   its items are still owed (another open order holding them is closed first),
//!   flagged for a refund if another order paid them (`store::orders::apply_payment`,
//!   tested in `tests/api/sandboxes.rs`).
//! - closing a trade that is not waiting for payment answers `ACQ.TRADE_STATUS_ERROR`
//!   whether it is paid or already closed; close then queries to tell which.

pub mod bill;
pub mod client;
pub mod notify;
pub mod refund;
pub mod sign;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use secrecy::ExposeSecret;

pub use client::{AlipayApiError, AlipayClient, AlipayClientConfig, PrecreateRequest, TradeQuery};
pub use notify::{AlipayNotice, AlipayNotificationRefused};
pub use sign::{AlipayPublicKey, AppPrivateKey, KeyError};

use super::{
    BillError, BillLine, Channel, ChannelError, ChannelPayment, ChannelState, Closed, Prepaid,
    PrepayOrder, RefundRequest, RefundState,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::money::Fen;
use crate::domain::order::beijing_offset;
use crate::store::PaymentChannel;

/// How long one call to Alipay may take before its outcome counts as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Trade not (yet) at Alipay: never scanned, or never created.
pub const TRADE_NOT_EXIST: &str = "ACQ.TRADE_NOT_EXIST";
/// A create or precreate refused because the trade is paid already.
const TRADE_HAS_SUCCESS: &str = "ACQ.TRADE_HAS_SUCCESS";
/// Close refused because the trade is not waiting for payment (paid or closed);
/// the two `REASON_*` spellings are the v3 API's for the same.
const STATUS_ERRORS: [&str; 3] = [
    "ACQ.TRADE_STATUS_ERROR",
    "ACQ.REASON_TRADE_STATUS_INVALID",
    "ACQ.REASON_ILLEGAL_STATUS",
];

/// Alipay's `trade_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeStatus {
    /// 交易创建，等待买家付款 (the QR code was scanned).
    WaitBuyerPay,
    /// 未付款交易超时关闭，或支付完成后全额退款.
    TradeClosed,
    /// 交易支付成功.
    TradeSuccess,
    /// 交易结束，不可退款 (after success, when the refund period ends).
    TradeFinished,
    Other(String),
}

impl TradeStatus {
    pub fn parse(text: &str) -> TradeStatus {
        match text {
            "WAIT_BUYER_PAY" => TradeStatus::WaitBuyerPay,
            "TRADE_CLOSED" => TradeStatus::TradeClosed,
            "TRADE_SUCCESS" => TradeStatus::TradeSuccess,
            "TRADE_FINISHED" => TradeStatus::TradeFinished,
            other => TradeStatus::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
            TradeStatus::Other(other) => other,
        }
    }

    /// Success and finished are both "paid".
    pub fn is_paid(&self) -> bool {
        matches!(self, TradeStatus::TradeSuccess | TradeStatus::TradeFinished)
    }
}

/// Fen as Alipay's yuan: `120050` → `"1200.50"`.
pub fn yuan(fen: i64) -> String {
    Fen(fen).to_yuan()
}

/// Alipay's yuan as fen, read by the one wire parser ([`Fen::parse_wire_yuan`]:
/// strictly, at most 100 000 000 yuan, Alipay's own ceiling).
pub fn yuan_to_fen(text: &str) -> Option<i64> {
    Fen::parse_wire_yuan(text).ok().map(|fen| fen.0)
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time, as Alipay writes and reads times.
pub fn beijing_time(time: DateTime<Utc>) -> String {
    time.with_timezone(&beijing_offset())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Reads Alipay's `yyyy-MM-dd HH:mm:ss` (Beijing time).
pub fn parse_beijing_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    beijing_offset()
        .from_local_datetime(&naive)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

pub struct Alipay {
    client: AlipayClient,
    clock: Clock,
    /// `CAMPUSPAY_ALIPAY_SELLER_ID`: when set, notifications must carry it.
    seller_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlipaySetupError {
    #[error("CAMPUSPAY_ALIPAY_APPID: {0}")]
    AppId(String),
    #[error("CAMPUSPAY_ALIPAY_PRIVATE_KEY_FILE: {0}")]
    PrivateKey(String),
    #[error("CAMPUSPAY_ALIPAY_PUBLIC_KEY_FILE: {0}")]
    PublicKey(String),
    #[error("CAMPUSPAY_ALIPAY_GATEWAY: {0}")]
    Client(String),
}

impl Alipay {
    /// Alipay from the configuration: `None` when it is not configured; an error
    /// (which stops the start) naming the variable when it is configured but unusable.
    pub fn from_config(config: &Config, clock: Clock) -> Result<Option<Alipay>, AlipaySetupError> {
        let Some(alipay) = &config.alipay else {
            return Ok(None);
        };
        let app_id = alipay.appid.trim();
        if app_id.is_empty() || app_id.len() > 32 || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AlipaySetupError::AppId(
                "must be the app's digits (APPID, like 2021000000000000)".into(),
            ));
        }
        let app_key = AppPrivateKey::from_pem(alipay.private_key_pem.expose_secret())
            .map_err(|error| AlipaySetupError::PrivateKey(error.to_string()))?;
        let alipay_key = AlipayPublicKey::from_pem(&alipay.public_key_pem)
            .map_err(|error| AlipaySetupError::PublicKey(error.to_string()))?;
        if app_key.is_public_half(&alipay_key) {
            return Err(AlipaySetupError::PublicKey(
                "this is the app's own public key (应用公钥); configure Alipay's public key \
                 (支付宝公钥) from the open platform console"
                    .into(),
            ));
        }
        let client = AlipayClient::new(AlipayClientConfig {
            gateway: config.alipay_gateway.clone(),
            app_id: app_id.to_owned(),
            app_key,
            alipay_key,
            timeout: config.upstream_timeout.unwrap_or(CALL_TIMEOUT),
            clock: clock.clone(),
        })
        .map_err(|error| AlipaySetupError::Client(error.to_string()))?;
        Ok(Some(
            Alipay::new(client, clock).with_seller_id(alipay.seller_id.clone()),
        ))
    }

    pub fn new(client: AlipayClient, clock: Clock) -> Alipay {
        Alipay {
            client,
            clock,
            seller_id: None,
        }
    }

    /// Notifications must name this merchant PID as `seller_id` (none: not checked).
    pub fn with_seller_id(mut self, seller_id: Option<String>) -> Alipay {
        self.seller_id = seller_id;
        self
    }

    /// Reports each call to Alipay to `observer`.
    pub fn observed(self, observer: crate::metrics::UpstreamObserver) -> Alipay {
        Alipay {
            client: self.client.observed(observer),
            clock: self.clock,
            seller_id: self.seller_id,
        }
    }

    pub fn app_id(&self) -> &str {
        self.client.app_id()
    }

    pub fn client(&self) -> &AlipayClient {
        &self.client
    }

    /// Verifies a notification (form body as received) and checks it is for our app
    /// and a payment. Order number and amount are checked against the order by the
    /// caller. A refusal that [`AlipayNotificationRefused::acknowledge`]s is still
    /// answered `success`.
    pub fn read_notification(
        &self,
        form_body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<AlipayNotice, AlipayNotificationRefused> {
        let notice =
            notify::parse_notification(form_body, self.client.alipay_key(), self.app_id(), now)?;
        notify::check_seller(&notice, self.seller_id.as_deref())?;
        Ok(notice)
    }

    /// A query's paid status is believed only with a trade number, our order number
    /// and an amount that reads. (The answer carries no app id: it is bound to our app
    /// by the signed request it answers.)
    fn state_of(
        &self,
        out_trade_no: &str,
        trade: TradeQuery,
    ) -> Result<ChannelState, ChannelError> {
        let status = TradeStatus::parse(&trade.trade_status);
        match status {
            TradeStatus::TradeSuccess | TradeStatus::TradeFinished => {
                let amount_fen = trade.total_amount.as_deref().and_then(yuan_to_fen);
                let ours = trade.out_trade_no.as_deref() == Some(out_trade_no);
                let (Some(channel_trade_no), Some(amount_fen), true) =
                    (trade.trade_no, amount_fen, ours)
                else {
                    return Err(ChannelError::OutcomeUnknown(
                        "a paid answer without our order number, a trade number or an amount"
                            .into(),
                    ));
                };
                Ok(ChannelState::Paid(ChannelPayment {
                    channel_trade_no,
                    amount_fen,
                    paid_at: trade
                        .send_pay_date
                        .as_deref()
                        .and_then(parse_beijing_time)
                        .unwrap_or_else(|| self.clock.now()),
                    payer_openid: None,
                }))
            }
            TradeStatus::WaitBuyerPay => Ok(ChannelState::Unpaid),
            TradeStatus::TradeClosed => Ok(ChannelState::Closed),
            TradeStatus::Other(other) => Ok(ChannelState::Other(other)),
        }
    }
}

/// The order description as a `subject`, which Alipay says must not hold `/`, `=` or
/// `&`: those become their full-width forms (／＝＆), which read the same.
pub fn subject_of(description: &str) -> String {
    description
        .chars()
        .map(|c| match c {
            '/' => '／',
            '=' => '＝',
            '&' => '＆',
            other => other,
        })
        .collect()
}

fn channel_error(error: AlipayApiError) -> ChannelError {
    if error.outcome_unknown() {
        return ChannelError::OutcomeUnknown(error.to_string());
    }
    if is_sub_code(&error, &[TRADE_HAS_SUCCESS]) {
        return ChannelError::AlreadyPaid {
            code: TRADE_HAS_SUCCESS.to_owned(),
            message: error.to_string(),
        };
    }
    ChannelError::Refused {
        code: error.sub_code().unwrap_or("REFUSED").to_owned(),
        message: error.to_string(),
    }
}

fn is_sub_code(error: &AlipayApiError, codes: &[&str]) -> bool {
    matches!(error, AlipayApiError::Business { sub_code, .. } if codes.contains(&sub_code.as_str()))
}

#[async_trait::async_trait]
impl Channel for Alipay {
    /// `alipay.trade.close` closes an unpaid trade at once (or it never existed).
    fn closes_unpaid_orders(&self) -> bool {
        true
    }

    async fn prepay(&self, order: &PrepayOrder<'_>) -> Result<Prepaid, ChannelError> {
        if order.kind != PaymentChannel::Alipay {
            return Err(ChannelError::Refused {
                code: "WRONG_CHANNEL".into(),
                message: format!("Alipay cannot serve {:?}", order.kind),
            });
        }
        let subject = subject_of(order.description);
        let request = PrecreateRequest {
            out_trade_no: order.out_trade_no,
            subject: &subject,
            total_amount_fen: order.amount_fen,
            time_expire: order.expires_at,
            notify_url: order.notify_url,
        };
        let qr_code = self
            .client
            .precreate(&request)
            .await
            .map_err(channel_error)?;
        Ok(Prepaid::QrCode(qr_code))
    }

    async fn query(&self, out_trade_no: &str) -> Result<ChannelState, ChannelError> {
        match self.client.query(out_trade_no).await {
            Ok(trade) => self.state_of(out_trade_no, trade),
            Err(error) if is_sub_code(&error, &[TRADE_NOT_EXIST]) => Ok(ChannelState::NotFound),
            Err(error) => Err(channel_error(error)),
        }
    }

    async fn close(&self, out_trade_no: &str) -> Result<Closed, ChannelError> {
        match self.client.close(out_trade_no).await {
            Ok(()) => Ok(Closed::Closed),
            Err(error) if is_sub_code(&error, &[TRADE_NOT_EXIST]) => Ok(Closed::Closed),
            Err(error) if is_sub_code(&error, &STATUS_ERRORS) => {
                match self.query(out_trade_no).await? {
                    ChannelState::Paid(_) => Ok(Closed::AlreadyPaid),
                    ChannelState::Closed | ChannelState::NotFound => Ok(Closed::Closed),
                    state => Err(ChannelError::OutcomeUnknown(format!(
                        "Alipay refused to close ({error}) yet reports {state:?}"
                    ))),
                }
            }
            Err(error) => Err(channel_error(error)),
        }
    }

    /// Synchronous at Alipay: `fund_change: Y` is a refund done. `N` is a repeat of a
    /// refund number (nothing moved this time), settled by a query. A verified
    /// refusal is the office's to act on ([`RefundState::Failed`] with Alipay's code).
    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundState, ChannelError> {
        match self.client.refund(request).await {
            Ok(answer) if answer.fund_changed => Ok(RefundState::Succeeded {
                channel_refund_no: answer.trade_no.unwrap_or_default(),
                succeeded_at: answer.gmt_refund_pay.unwrap_or_else(|| self.clock.now()),
            }),
            Ok(_) => match self.settle_refund(request).await? {
                // Alipay answered for this number, so it holds it; not seen by the
                // query yet (Alipay: ask again after ten seconds).
                RefundState::NotFound => Ok(RefundState::Processing {
                    channel_refund_no: None,
                }),
                state => Ok(state),
            },
            Err(error) if error.outcome_unknown() => {
                Err(ChannelError::OutcomeUnknown(error.to_string()))
            }
            Err(error @ client::AlipayApiError::Business { .. }) => Ok(RefundState::Failed {
                reason: format!("{}: {error}", error.sub_code().unwrap_or("REFUSED")),
            }),
            Err(error) => Err(channel_error(error)),
        }
    }

    async fn query_refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundState, ChannelError> {
        match self.client.query_refund(out_trade_no, out_refund_no).await {
            Ok(answer) => refund::refund_state(answer, None, self.clock.now())
                .map_err(ChannelError::OutcomeUnknown),
            Err(error) if refund::is_unknown_trade(&error) => Ok(RefundState::NotFound),
            Err(error) => Err(channel_error(error)),
        }
    }

    async fn bill(&self, day: chrono::NaiveDate) -> Result<Vec<BillLine>, BillError> {
        let url = self
            .client
            .bill_download_url(day)
            .await
            .map_err(|error| BillError::Channel(channel_error(error)))?
            .ok_or(BillError::NoBill)?;
        let zip = self.client.download_bill(&url).await?;
        bill::parse_bill_zip(&zip)
    }
}

impl Alipay {
    /// A refund's state by query, the amount checked against the request.
    async fn settle_refund(
        &self,
        request: &RefundRequest<'_>,
    ) -> Result<RefundState, ChannelError> {
        let answer = self
            .client
            .query_refund(request.out_trade_no, request.out_refund_no)
            .await
            .map_err(channel_error)?;
        refund::refund_state(answer, Some(request.refund_fen), self.clock.now())
            .map_err(ChannelError::OutcomeUnknown)
    }
}

#[cfg(test)]
mod sandbox_tests;

#[cfg(test)]
mod refund_sandbox_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_goes_both_ways_strictly() {
        assert_eq!(yuan(120_050), "1200.50");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(100), "1.00");
        assert_eq!(yuan_to_fen("1200.50"), Some(120_050));
        assert_eq!(yuan_to_fen("1200.5"), Some(120_050));
        assert_eq!(yuan_to_fen("1200"), Some(120_000));
        assert_eq!(yuan_to_fen("0.01"), Some(1));
        assert_eq!(yuan_to_fen("100000000.00"), Some(10_000_000_000));
        for bad in [
            "",
            "1200.505",
            "-1.00",
            "+1.00",
            " 1.00",
            "1,200.00",
            "1e3",
            ".5",
            "5.",
            "100000000.01",
            "1.0.0",
            "１２",
        ] {
            assert_eq!(yuan_to_fen(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn subjects_avoid_the_characters_alipay_forbids() {
        assert_eq!(
            subject_of("武威职业学院-2024学年学费/住宿费 A&B=C"),
            "武威职业学院-2024学年学费／住宿费 A＆B＝C"
        );
    }

    #[test]
    fn times_are_beijing_time() {
        let time = DateTime::parse_from_rfc3339("2024-06-15T02:03:04Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(beijing_time(time), "2024-06-15 10:03:04");
        assert_eq!(parse_beijing_time("2024-06-15 10:03:04"), Some(time));
        assert_eq!(parse_beijing_time("2024-06-15T10:03:04"), None);
    }

    #[test]
    fn trade_statuses_read_and_print() {
        for text in [
            "WAIT_BUYER_PAY",
            "TRADE_CLOSED",
            "TRADE_SUCCESS",
            "TRADE_FINISHED",
            "X",
        ] {
            assert_eq!(TradeStatus::parse(text).as_str(), text);
        }
        assert!(TradeStatus::TradeFinished.is_paid());
        assert!(!TradeStatus::WaitBuyerPay.is_paid());
    }
}
