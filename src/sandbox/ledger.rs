//! The channels' side of the books: what each payment sandbox recorded, order by
//! order (charged, closed, refunded), in one shape for every provider. Read-only
//! views over the sandboxes' own records, so that a test can compare them with our
//! orders, items and refunds without going through any of our code.

use chrono::{DateTime, Utc};

/// Which sandbox recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    WechatPay,
    Alipay,
    Abc,
}

impl Upstream {
    pub fn name(self) -> &'static str {
        match self {
            Upstream::WechatPay => "WeChat Pay",
            Upstream::Alipay => "Alipay",
            Upstream::Abc => "ABC",
        }
    }
}

/// One of our order numbers as a channel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub upstream: Upstream,
    pub out_trade_no: String,
    /// What we asked the channel to collect, fen.
    pub asked_fen: i64,
    /// The money the payer paid, once paid.
    pub charge: Option<Charge>,
    /// The channel will take no (more) money for it: closed by us, or by its own
    /// timeout. (Alipay also says closed for a trade refunded in full.)
    pub closed: bool,
    /// The refunds the channel made or is making on it, in the order asked.
    pub refunds: Vec<ChannelRefund>,
}

/// A payment the channel took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub amount_fen: i64,
    pub at: DateTime<Utc>,
    /// The channel's own number for the payment, when it gives one.
    pub transaction_id: Option<String>,
}

/// A refund at the channel, under our refund number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRefund {
    pub out_refund_no: String,
    pub amount_fen: i64,
    /// The money is back with the payer (else it is on its way).
    pub succeeded: bool,
}

impl ChannelRecord {
    /// Fen the channel kept for us: charged minus the refunds that succeeded.
    pub fn kept_fen(&self) -> i64 {
        let charged = self.charge.as_ref().map_or(0, |charge| charge.amount_fen);
        charged - self.refunded_fen()
    }

    /// Fen given back to the payer (refunds that succeeded).
    pub fn refunded_fen(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|refund| refund.succeeded)
            .map(|refund| refund.amount_fen)
            .sum()
    }
}
