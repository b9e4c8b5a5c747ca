//! Payment channels: one [`Channel`] trait (prepay, query, close) and its
//! implementations, and [`checkout`], which puts orders, channels and the store
//! together by the rules of DESIGN.md ("Rules that keep money right").
//!
//! - [`wechatpay`]: our own thin WeChat Pay API v3 client (DEVELOPERS.md says why);
//! - [`wechat`]: WeChat Pay as a [`Channel`] (JSAPI in WeChat, Native QR on PC), and
//!   its notifications.

pub mod abc;
pub mod alipay;
pub mod checkout;
pub mod ebill;
pub mod keys;
pub mod refunds;
pub mod wechat;
pub mod wechatpay;

use chrono::{DateTime, Utc};

use crate::store::PaymentChannel;

/// What a channel is asked to collect.
#[derive(Debug, Clone)]
pub struct PrepayOrder<'a> {
    pub kind: PaymentChannel,
    pub out_trade_no: &'a str,
    pub description: &'a str,
    pub amount_fen: i64,
    pub expires_at: DateTime<Utc>,
    pub notify_url: &'a str,
    /// The payer inside WeChat (JSAPI).
    pub payer_openid: Option<&'a str>,
}

/// What the student's page needs to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepaid {
    /// Parameters for `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`, as JSON.
    JsBridge(serde_json::Value),
    /// A code to show as a QR code (`weixin://wxpay/bizpayurl?pr=…`, Alipay's
    /// `https://qr.alipay.com/…`, the bank's scan code).
    QrCode(String),
    /// A page of the channel's own to send the browser to (the bank's payment page,
    /// where the card number is entered on the bank's side).
    Redirect(String),
}

/// A payment the channel vouches for (its answer verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPayment {
    pub channel_trade_no: String,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
    pub payer_openid: Option<String>,
}

/// An order as the channel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelState {
    Paid(ChannelPayment),
    /// Still payable, or being paid.
    Unpaid,
    Closed,
    /// The channel never saw it (prepay failed before reaching it).
    NotFound,
    /// Refunded, or a state we do not act on; shown to the office as is.
    Other(String),
}

/// What closing an order at the channel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Closed (or never known there): the items may be released.
    Closed,
    /// Too late: it was paid. Query and apply instead of releasing.
    AlreadyPaid,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// No trustworthy answer (timeout, unverifiable reply): the channel may have acted.
    /// Keep the order open and ask again later; never treat it as failed.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The channel answered and refused.
    #[error("refused by the channel: {code}: {message}")]
    Refused { code: String, message: String },
    /// The channel refused because the order is paid already (each provider maps its
    /// own codes: WeChat Pay `ORDERPAID`/`ORDER_PAID`, Alipay `ACQ.TRADE_HAS_SUCCESS`).
    /// Ask it for the payment.
    #[error("already paid at the channel: {code}: {message}")]
    AlreadyPaid { code: String, message: String },
    /// This provider offers no such interface (named: `refund`, `bill`...) here.
    #[error("this channel has no {0} interface here")]
    Unsupported(&'static str),
}

/// A refund asked of a channel. `out_refund_no` is ours and every retry of the same
/// refund sends the same one (the channel then answers with the refund it already has).
#[derive(Debug, Clone)]
pub struct RefundRequest<'a> {
    pub out_trade_no: &'a str,
    pub out_refund_no: &'a str,
    /// What the order paid (WeChat Pay wants both).
    pub total_fen: i64,
    pub refund_fen: i64,
    pub reason: &'a str,
    /// Where the channel sends the refund's outcome (WeChat Pay), if it does.
    pub notify_url: &'a str,
}

/// A refund as the channel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundState {
    /// Accepted, money on its way.
    Processing { channel_refund_no: Option<String> },
    Succeeded {
        channel_refund_no: String,
        succeeded_at: DateTime<Utc>,
    },
    /// Refused or abnormal (`ABNORMAL`, `CLOSED`): the office must act.
    Failed { reason: String },
    /// The channel does not know this refund number.
    NotFound,
}

/// One line of a channel's daily bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    pub out_trade_no: String,
    pub channel_trade_no: String,
    pub kind: BillLineKind,
    /// Paid (a payment) or refunded (a refund), in fen, positive.
    pub amount_fen: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillLineKind {
    Payment,
    Refund { out_refund_no: String },
}

/// Why a bill could not be had.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    /// The channel has no bill for that day (yet, or no trade on it).
    #[error("no bill for that day")]
    NoBill,
    /// The file does not match its published hash, or cannot be read.
    #[error("the bill is corrupt: {0}")]
    Corrupt(String),
    #[error("this channel offers no bill download")]
    Unsupported,
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn prepay(&self, order: &PrepayOrder<'_>) -> Result<Prepaid, ChannelError>;
    async fn query(&self, out_trade_no: &str) -> Result<ChannelState, ChannelError>;
    async fn close(&self, out_trade_no: &str) -> Result<Closed, ChannelError>;

    /// Whether `close` really closes an unpaid order at the channel. A channel that
    /// cannot (the bank: its page stays payable until the order's own timeout, our
    /// expiry) keeps its order's items held until that time has passed and a query
    /// says unpaid; see `checkout::Checkout::close`.
    fn closes_unpaid_orders(&self) -> bool;

    /// Asks for a refund. Idempotent by `out_refund_no` at the channel.
    async fn refund(&self, request: &RefundRequest<'_>) -> Result<RefundState, ChannelError>;

    /// Where a refund stands.
    async fn query_refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
    ) -> Result<RefundState, ChannelError>;

    /// Every payment and refund of `day` (a Beijing day), from the channel's bill.
    async fn bill(&self, day: chrono::NaiveDate) -> Result<Vec<BillLine>, BillError>;
}
