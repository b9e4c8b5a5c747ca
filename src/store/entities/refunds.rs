//! `refunds`: money sent back through a channel, keyed by our refund number, which
//! every retry of the same refund reuses.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refunds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub out_refund_no: String,
    pub order_id: i64,
    /// The item a partial refund is for; absent for a whole duplicate payment.
    pub fee_item_id: Option<i64>,
    pub amount_fen: i64,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    pub kind: RefundKind,
    /// On success, the item goes back to unpaid.
    pub unpay_item: bool,
    /// What the items show once the money is back: `domain::refund::ItemEffect`'s code.
    pub item_effect: String,
    /// The plan fixed when the refund was recorded: JSON of
    /// `Vec<domain::refund::PlannedItem>`; empty for refunds recorded before it.
    #[sea_orm(column_type = "Text")]
    pub item_plan: String,
    pub status: RefundStatus,
    pub channel_refund_no: Option<String>,
    pub requested_by: String,
    pub requested_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub last_queried_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RefundKind {
    /// The whole of a second payment for items already paid.
    #[sea_orm(string_value = "duplicate")]
    Duplicate,
    /// Part (or all) of one item, e.g. for a student who withdraws.
    #[sea_orm(string_value = "withdrawal")]
    Withdrawal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RefundStatus {
    /// Recorded, not yet accepted by the channel (or its answer was lost: query).
    #[sea_orm(string_value = "requested")]
    Requested,
    /// Accepted by the channel, money on its way.
    #[sea_orm(string_value = "processing")]
    Processing,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Refused or abnormal at the channel; the office must act.
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
