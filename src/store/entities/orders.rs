//! `orders`: one attempt to pay some fee items through one channel.

use sea_orm::entity::prelude::*;

use crate::domain::provider::{Method, Provider, channel_label};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Our order number as the channel knows it (at most 32 characters).
    #[sea_orm(unique)]
    pub out_trade_no: String,
    pub student_id: i64,
    pub channel: PaymentChannel,
    pub amount_fen: i64,
    pub status: OrderStatus,
    /// The channel's own transaction number, once paid.
    pub channel_trade_no: Option<String>,
    pub payer_openid: Option<String>,
    pub expires_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// What the channel was told the order is for; a repeated prepay sends the same.
    pub description: Option<String>,
    /// When the channel was last asked about this order (the query job).
    pub last_queried_at: Option<DateTimeUtc>,
    /// Something the finance office must look at (paid after close, amount mismatch).
    #[sea_orm(column_type = "Text", nullable)]
    pub exception: Option<String>,
    /// When and by whom the exception was looked at, and what was decided.
    pub exception_resolved_at: Option<DateTimeUtc>,
    pub exception_resolved_by: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub exception_note: Option<String>,
    /// The receipt's verification code, set when the order is paid.
    pub receipt_code: Option<String>,
    /// The provincial e-bill (财政电子票据), once the office records it.
    pub ebill_number: Option<String>,
    pub ebill_status: Option<String>,
    /// The id of the page request that created the order (`X-Request-Id`), so that the
    /// notification's log lines can name it.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum OrderStatus {
    #[sea_orm(string_value = "created")]
    Created,
    #[sea_orm(string_value = "paid")]
    Paid,
    #[sea_orm(string_value = "closed")]
    Closed,
    #[sea_orm(string_value = "refunded")]
    Refunded,
}

/// How the student pays: the provider and the kind of page or code it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum PaymentChannel {
    /// WeChat Pay inside WeChat (H5 pages).
    #[sea_orm(string_value = "wechat_jsapi")]
    WechatJsapi,
    /// WeChat Pay by scanning a QR code (PC portal).
    #[sea_orm(string_value = "wechat_native")]
    WechatNative,
    #[sea_orm(string_value = "alipay")]
    Alipay,
    /// Agricultural Bank of China, its payment page.
    #[sea_orm(string_value = "abc_page")]
    AbcPage,
    /// Agricultural Bank of China, by scanning a code.
    #[sea_orm(string_value = "abc_scan")]
    AbcScan,
}

impl PaymentChannel {
    pub fn provider(self) -> Provider {
        match self {
            PaymentChannel::WechatJsapi | PaymentChannel::WechatNative => Provider::WechatPay,
            PaymentChannel::Alipay => Provider::Alipay,
            PaymentChannel::AbcPage | PaymentChannel::AbcScan => Provider::Abc,
        }
    }

    pub fn method(self) -> Method {
        match self {
            PaymentChannel::WechatJsapi => Method::InAccount,
            PaymentChannel::WechatNative | PaymentChannel::Alipay | PaymentChannel::AbcScan => {
                Method::Scan
            }
            PaymentChannel::AbcPage => Method::Page,
        }
    }

    /// As the console names it.
    pub fn label(self) -> &'static str {
        channel_label(self.provider(), self.method())
    }

    /// The channels of `provider`, in the order the console lists them.
    pub fn of(provider: Provider) -> Vec<PaymentChannel> {
        <PaymentChannel as sea_orm::Iterable>::iter()
            .filter(|channel| channel.provider() == provider)
            .collect()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::students::Entity",
        from = "Column::StudentId",
        to = "super::students::Column::Id"
    )]
    Student,
    #[sea_orm(has_many = "super::order_items::Entity")]
    OrderItems,
    #[sea_orm(has_many = "super::payment_notifications::Entity")]
    PaymentNotifications,
}

impl Related<super::students::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Student.def()
    }
}

impl Related<super::order_items::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrderItems.def()
    }
}

impl Related<super::payment_notifications::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PaymentNotifications.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
