//! `payment_notifications`: every notification a channel sent us, stored raw before
//! it is applied, with the verdict we gave it.

use sea_orm::entity::prelude::*;

use crate::domain::provider::Provider;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_notifications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub channel: NotificationChannel,
    /// As the notification claims it; absent when it could not be read.
    pub out_trade_no: Option<String>,
    /// The order it matched, if any.
    pub order_id: Option<i64>,
    pub received_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub headers: String,
    #[sea_orm(column_type = "Text")]
    pub raw_body: String,
    pub verdict: NotificationVerdict,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// A refused notification is an exception for the office: when and by whom it
    /// was looked at, and what was decided.
    pub resolved_at: Option<DateTimeUtc>,
    pub resolved_by: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolution_note: Option<String>,
}

/// Which notification endpoint received it. Finer than the provider is not known
/// until the notification is matched to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum NotificationChannel {
    #[sea_orm(string_value = "wechat")]
    Wechat,
    #[sea_orm(string_value = "alipay")]
    Alipay,
    #[sea_orm(string_value = "abc")]
    Abc,
}

impl NotificationChannel {
    /// Whose endpoint received it (the stored value is the provider's code).
    pub fn provider(self) -> Provider {
        match self {
            NotificationChannel::Wechat => Provider::WechatPay,
            NotificationChannel::Alipay => Provider::Alipay,
            NotificationChannel::Abc => Provider::Abc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum NotificationVerdict {
    /// Verified and applied: it moved an order to paid.
    #[sea_orm(string_value = "accepted")]
    Accepted,
    /// Verified, but the order was already paid: answered with success, changed nothing.
    #[sea_orm(string_value = "duplicate")]
    Duplicate,
    /// Not believed (signature, amount, merchant, unknown order…): nothing applied.
    #[sea_orm(string_value = "refused")]
    Refused,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::orders::Entity",
        from = "Column::OrderId",
        to = "super::orders::Column::Id"
    )]
    Order,
}

impl Related<super::orders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Order.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
