//! `order_items`: which fee items an order pays, and how much of each.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: i64,
    pub fee_item_id: i64,
    /// The item's amount when the order was made, so a later correction of the item
    /// does not change what this order charged.
    pub amount_fen: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::orders::Entity",
        from = "Column::OrderId",
        to = "super::orders::Column::Id"
    )]
    Order,
    #[sea_orm(
        belongs_to = "super::fee_items::Entity",
        from = "Column::FeeItemId",
        to = "super::fee_items::Column::Id"
    )]
    FeeItem,
}

impl Related<super::orders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Order.def()
    }
}

impl Related<super::fee_items::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FeeItem.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
