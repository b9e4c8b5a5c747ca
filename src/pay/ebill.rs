//! The hook point for a provincial e-bill (财政电子票据) interface.
//!
//! Why here and not in `domain`: issuing an e-bill is a call to an outside financial
//! system (the province's 财政电子票据 platform), with the same shape as a payment
//! channel: async, fallible, an adapter per provider, its settings from `Config`.
//! `domain` stays pure (`domain::receipt` holds the e-bill's status and the rules of
//! its number); the adapters live beside the channels, whose integrations they mirror.
//!
//! Today the college issues e-bills in the province's own system, and the finance
//! office records each bill's number in the console (`POST /admin/receipts/{no}/ebill`,
//! audited as `order.ebill`). [`ManualEbill`] is that: it issues nothing, and says so.
//! A province that offers an interface gets its own implementation; whoever calls it
//! then stores the answer through the same store call the console uses
//! (`Store::record_ebill`), so the receipt and the audit log read the same either way.

use chrono::{DateTime, Utc};

use crate::domain::money::Fen;

/// What an e-bill is issued for: one paid order.
#[derive(Debug, Clone)]
pub struct EbillRequest<'a> {
    pub out_trade_no: &'a str,
    /// The payer as the bill names them (the student's name).
    pub payer_name: &'a str,
    pub amount: Fen,
    /// (academic year, item, amount), as the order's lines.
    pub items: &'a [(String, String, Fen)],
    pub paid_at: DateTime<Utc>,
}

/// An e-bill the province issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedEbill {
    /// The number printed on it (票据代码 + 票据号码, as the province joins them).
    pub number: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EbillError {
    /// No interface: the office issues the bill in the province's system and records
    /// its number in the console.
    #[error("e-bills are issued by hand and recorded in the console")]
    Manual,
    /// The province refused (its code and message, for the office).
    #[error("the e-bill platform refused: {code}")]
    Refused { code: String, message: String },
    /// No trustworthy answer: it may have been issued. Ask again before re-sending.
    #[error("e-bill outcome unknown: {0}")]
    OutcomeUnknown(String),
}

/// A provincial e-bill interface.
#[async_trait::async_trait]
pub trait EbillIssuer: Send + Sync {
    /// Issues the e-bill for a paid order. Idempotent by `out_trade_no` at the
    /// province: a retry after [`EbillError::OutcomeUnknown`] must not issue twice.
    async fn issue(&self, request: &EbillRequest<'_>) -> Result<IssuedEbill, EbillError>;

    /// Voids an issued e-bill (红冲), e.g. after a refund.
    async fn void(&self, number: &str, reason: &str) -> Result<(), EbillError>;
}

/// The only implementation so far: bills are issued by hand, outside campus-pay.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManualEbill;

#[async_trait::async_trait]
impl EbillIssuer for ManualEbill {
    async fn issue(&self, _request: &EbillRequest<'_>) -> Result<IssuedEbill, EbillError> {
        Err(EbillError::Manual)
    }

    async fn void(&self, _number: &str, _reason: &str) -> Result<(), EbillError> {
        Err(EbillError::Manual)
    }
}
