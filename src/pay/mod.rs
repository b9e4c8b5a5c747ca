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
}

#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    async fn prepay(&self, order: &PrepayOrder<'_>) -> Result<Prepaid, ChannelError>;
    async fn query(&self, out_trade_no: &str) -> Result<ChannelState, ChannelError>;
    async fn close(&self, out_trade_no: &str) -> Result<Closed, ChannelError>;
}
