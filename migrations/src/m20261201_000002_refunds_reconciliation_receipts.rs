//! Issue 7: refunds, reconciliation with the channels' bills, receipts.
//! - `refunds`: one row per refund asked of a channel, keyed by our refund number
//!   (`out_refund_no`), which every retry reuses;
//! - `reconciliation_runs` and `reconciliation_lines`: each day's bill matched against
//!   our orders, and every line that did not simply agree;
//! - on `orders`: the receipt's verification code, and the provincial e-bill
//!   (财政电子票据) number and status once the office records them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME_LEN: u32 = 64;
const STATUS_LEN: u32 = 16;

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Id,
    OutRefundNo,
    OrderId,
    FeeItemId,
    AmountFen,
    Reason,
    Kind,
    UnpayItem,
    Status,
    ChannelRefundNo,
    RequestedBy,
    RequestedAt,
    FinishedAt,
    LastQueriedAt,
    Failure,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    ReceiptCode,
    EbillNumber,
    EbillStatus,
}

#[derive(DeriveIden)]
enum FeeItems {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ReconciliationRuns {
    Table,
    Id,
    Channel,
    BillDate,
    Actor,
    StartedAt,
    FinishedAt,
    Status,
    BillLines,
    Matched,
    Applied,
    MissingAtChannel,
    AmountMismatch,
    UnknownAtUs,
    Error,
}

#[derive(DeriveIden)]
enum ReconciliationLines {
    Table,
    Id,
    RunId,
    Kind,
    OutTradeNo,
    ChannelTradeNo,
    OurAmountFen,
    ChannelAmountFen,
    Note,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_refunds(manager).await?;
        create_reconciliation(manager).await?;
        for mut column in [
            string_len_null(Orders::ReceiptCode, 32),
            string_len_null(Orders::EbillNumber, NAME_LEN),
            string_len_null(Orders::EbillStatus, STATUS_LEN),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Orders::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ux_orders_receipt_code")
                    .table(Orders::Table)
                    .col(Orders::ReceiptCode)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_orders_receipt_code")
                    .table(Orders::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Orders::EbillStatus,
            Orders::EbillNumber,
            Orders::ReceiptCode,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Orders::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            ReconciliationLines::Table.into_iden(),
            ReconciliationRuns::Table.into_iden(),
            Refunds::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn create_refunds(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Refunds::Table)
                .col(big_pk_auto(Refunds::Id))
                .col(string_len(Refunds::OutRefundNo, NAME_LEN))
                .col(big_integer(Refunds::OrderId))
                // The item a partial refund is for; absent for a whole duplicate payment.
                .col(big_integer_null(Refunds::FeeItemId))
                .col(big_integer(Refunds::AmountFen).check(Expr::col(Refunds::AmountFen).gt(0)))
                .col(text(Refunds::Reason))
                // `duplicate` (a second payment) or `withdrawal` (part of an item).
                .col(string_len(Refunds::Kind, STATUS_LEN))
                // When the refund succeeds, the item goes back to unpaid (the office's
                // choice for a withdrawal; a duplicate refund leaves the item paid).
                .col(boolean(Refunds::UnpayItem).default(false))
                .col(string_len(Refunds::Status, STATUS_LEN))
                .col(string_len_null(Refunds::ChannelRefundNo, NAME_LEN))
                .col(string_len(Refunds::RequestedBy, NAME_LEN))
                .col(timestamp_with_time_zone(Refunds::RequestedAt))
                .col(timestamp_with_time_zone_null(Refunds::FinishedAt))
                .col(timestamp_with_time_zone_null(Refunds::LastQueriedAt))
                .col(text_null(Refunds::Failure))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refunds_order_id")
                        .from(Refunds::Table, Refunds::OrderId)
                        .to(Orders::Table, Orders::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refunds_fee_item_id")
                        .from(Refunds::Table, Refunds::FeeItemId)
                        .to(FeeItems::Table, FeeItems::Id),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("ux_refunds_out_refund_no")
                .table(Refunds::Table)
                .col(Refunds::OutRefundNo)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_refunds_order_id")
                .table(Refunds::Table)
                .col(Refunds::OrderId)
                .to_owned(),
        )
        .await
}

async fn create_reconciliation(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ReconciliationRuns::Table)
                .col(big_pk_auto(ReconciliationRuns::Id))
                // `wechat`, `alipay` or `abc`.
                .col(string_len(ReconciliationRuns::Channel, STATUS_LEN))
                // The bill's day, `YYYY-MM-DD` (Beijing).
                .col(string_len(ReconciliationRuns::BillDate, 10))
                .col(string_len(ReconciliationRuns::Actor, NAME_LEN))
                .col(timestamp_with_time_zone(ReconciliationRuns::StartedAt))
                .col(timestamp_with_time_zone_null(
                    ReconciliationRuns::FinishedAt,
                ))
                // `running`, `done`, `failed`.
                .col(string_len(ReconciliationRuns::Status, STATUS_LEN))
                .col(big_integer(ReconciliationRuns::BillLines).default(0))
                .col(big_integer(ReconciliationRuns::Matched).default(0))
                .col(big_integer(ReconciliationRuns::Applied).default(0))
                .col(big_integer(ReconciliationRuns::MissingAtChannel).default(0))
                .col(big_integer(ReconciliationRuns::AmountMismatch).default(0))
                .col(big_integer(ReconciliationRuns::UnknownAtUs).default(0))
                .col(text_null(ReconciliationRuns::Error))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_reconciliation_runs_bill_date")
                .table(ReconciliationRuns::Table)
                .col(ReconciliationRuns::BillDate)
                .col(ReconciliationRuns::Channel)
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table(ReconciliationLines::Table)
                .col(big_pk_auto(ReconciliationLines::Id))
                .col(big_integer(ReconciliationLines::RunId))
                // `applied`, `missing_at_channel`, `amount_mismatch`, `unknown_at_us`.
                .col(string_len(ReconciliationLines::Kind, 32))
                .col(string_len(ReconciliationLines::OutTradeNo, NAME_LEN))
                .col(string_len_null(
                    ReconciliationLines::ChannelTradeNo,
                    NAME_LEN,
                ))
                .col(big_integer_null(ReconciliationLines::OurAmountFen))
                .col(big_integer_null(ReconciliationLines::ChannelAmountFen))
                .col(text_null(ReconciliationLines::Note))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_reconciliation_lines_run_id")
                        .from(ReconciliationLines::Table, ReconciliationLines::RunId)
                        .to(ReconciliationRuns::Table, ReconciliationRuns::Id),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_reconciliation_lines_run_id")
                .table(ReconciliationLines::Table)
                .col(ReconciliationLines::RunId)
                .to_owned(),
        )
        .await
}
