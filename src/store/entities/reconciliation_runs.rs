//! `reconciliation_runs`: one channel's bill for one day, matched against our orders.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconciliation_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `wechat`, `alipay` or `abc`.
    pub channel: String,
    /// The bill's day, `YYYY-MM-DD` (Beijing).
    pub bill_date: String,
    pub actor: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub bill_lines: i64,
    pub matched: i64,
    pub applied: i64,
    pub missing_at_channel: i64,
    pub amount_mismatch: i64,
    pub unknown_at_us: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
