//! `fee_items`: what a student owes for one academic year and one item.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "fee_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub student_id: i64,
    /// e.g. "2026-2027".
    pub academic_year: String,
    /// e.g. "学费".
    pub item: String,
    pub amount_fen: i64,
    pub status: FeeItemStatus,
    pub deferred_until: Option<DateTimeUtc>,
    pub paid_order_id: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Where a fee item stands. An item is `InOrder` while exactly one open order holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum FeeItemStatus {
    #[sea_orm(string_value = "unpaid")]
    Unpaid,
    #[sea_orm(string_value = "in_order")]
    InOrder,
    #[sea_orm(string_value = "paid")]
    Paid,
    #[sea_orm(string_value = "waived")]
    Waived,
    #[sea_orm(string_value = "deferred")]
    Deferred,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::students::Entity",
        from = "Column::StudentId",
        to = "super::students::Column::Id"
    )]
    Student,
    /// The order that paid this item; the orders that merely carried it are
    /// reached through `order_items`.
    #[sea_orm(
        belongs_to = "super::orders::Entity",
        from = "Column::PaidOrderId",
        to = "super::orders::Column::Id"
    )]
    PaidOrder,
    #[sea_orm(has_many = "super::order_items::Entity")]
    OrderItems,
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

impl ActiveModelBehavior for ActiveModel {}
