//! What a refund does to the fee items it gives money back for (issue 13): the effect
//! the office chose (`keep_paid` for a true duplicate, `owe_again`, `lower_amount`) and
//! the plan fixed when the refund was recorded: which item gets how much back.
//!
//! Refunds recorded before this have no plan: the duplicate ones kept their items
//! paid, the withdrawal ones made their item unpaid when `unpay_item` was ticked and
//! otherwise left it alone (`unchanged`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Kind,
    UnpayItem,
    ItemEffect,
    ItemPlan,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Refunds::Table)
                    .add_column(string_len(Refunds::ItemEffect, 16).default("unchanged"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Refunds::Table)
                    .add_column(text(Refunds::ItemPlan).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Refunds::Table)
                    .value(Refunds::ItemEffect, "keep_paid")
                    .and_where(Expr::col(Refunds::Kind).eq("duplicate"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Refunds::Table)
                    .value(Refunds::ItemEffect, "owe_again")
                    .and_where(Expr::col(Refunds::Kind).eq("withdrawal"))
                    .and_where(Expr::col(Refunds::UnpayItem).eq(true))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Refunds::Table)
                    .drop_column(Refunds::ItemPlan)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Refunds::Table)
                    .drop_column(Refunds::ItemEffect)
                    .to_owned(),
            )
            .await
    }
}
