//! `reconciliation_lines`: every line of a run that did not simply agree.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconciliation_lines")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: i64,
    /// `applied`, `missing_at_channel`, `amount_mismatch` or `unknown_at_us`.
    pub kind: String,
    pub out_trade_no: String,
    pub channel_trade_no: Option<String>,
    pub our_amount_fen: Option<i64>,
    pub channel_amount_fen: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
