//! What the finance office's console and the follower check need:
//! - `follower_check_runs`: each run's report (counts, the non-compliant list, why it
//!   stopped) and where the next run resumes when it stopped early;
//! - exceptions resolved with a note: on orders (paid after close, amount mismatch) and
//!   on refused payment notifications;
//! - the audit log looked up by its target (a student's page lists what was done to
//!   them).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME_LEN: u32 = 64;
const OPENID_LEN: u32 = 64;

#[derive(DeriveIden)]
enum FollowerCheckRuns {
    Table,
    Id,
    StartedAt,
    FinishedAt,
    Actor,
    DryRun,
    Action,
    Total,
    Checked,
    Bound,
    Compliant,
    WithinGrace,
    LeftCount,
    NonCompliantCount,
    ActedOn,
    RemarksCorrected,
    NonCompliant,
    Stopped,
    ResumeAfter,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    ExceptionResolvedAt,
    ExceptionResolvedBy,
    ExceptionNote,
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentNotifications {
    Table,
    ResolvedAt,
    ResolvedBy,
    ResolutionNote,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Target,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_follower_check_runs(manager).await?;
        add_columns(
            manager,
            Orders::Table,
            vec![
                timestamp_with_time_zone_null(Orders::ExceptionResolvedAt),
                string_len_null(Orders::ExceptionResolvedBy, NAME_LEN),
                text_null(Orders::ExceptionNote),
            ],
        )
        .await?;
        add_columns(
            manager,
            PaymentNotifications::Table,
            vec![
                timestamp_with_time_zone_null(PaymentNotifications::ResolvedAt),
                string_len_null(PaymentNotifications::ResolvedBy, NAME_LEN),
                text_null(PaymentNotifications::ResolutionNote),
            ],
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_target")
                    .table(AuditLog::Table)
                    .col(AuditLog::Target)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_audit_log_target")
                    .table(AuditLog::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            PaymentNotifications::ResolutionNote,
            PaymentNotifications::ResolvedBy,
            PaymentNotifications::ResolvedAt,
        ] {
            drop_column(manager, PaymentNotifications::Table, column).await?;
        }
        for column in [
            Orders::ExceptionNote,
            Orders::ExceptionResolvedBy,
            Orders::ExceptionResolvedAt,
        ] {
            drop_column(manager, Orders::Table, column).await?;
        }
        manager
            .drop_table(Table::drop().table(FollowerCheckRuns::Table).to_owned())
            .await
    }
}

async fn create_follower_check_runs(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(FollowerCheckRuns::Table)
                .col(big_pk_auto(FollowerCheckRuns::Id))
                .col(timestamp_with_time_zone(FollowerCheckRuns::StartedAt))
                .col(timestamp_with_time_zone_null(FollowerCheckRuns::FinishedAt))
                .col(string_len(FollowerCheckRuns::Actor, NAME_LEN))
                .col(boolean(FollowerCheckRuns::DryRun))
                .col(string_len(FollowerCheckRuns::Action, 16))
                .col(big_integer(FollowerCheckRuns::Total).default(0))
                .col(big_integer(FollowerCheckRuns::Checked).default(0))
                .col(big_integer(FollowerCheckRuns::Bound).default(0))
                .col(big_integer(FollowerCheckRuns::Compliant).default(0))
                .col(big_integer(FollowerCheckRuns::WithinGrace).default(0))
                .col(big_integer(FollowerCheckRuns::LeftCount).default(0))
                .col(big_integer(FollowerCheckRuns::NonCompliantCount).default(0))
                .col(big_integer(FollowerCheckRuns::ActedOn).default(0))
                .col(big_integer(FollowerCheckRuns::RemarksCorrected).default(0))
                // The non-compliant openids as a JSON array (jsonb on PostgreSQL).
                .col(json_binary(FollowerCheckRuns::NonCompliant))
                .col(text_null(FollowerCheckRuns::Stopped))
                // The last follower (in WeChat's order) this run finished with, when it
                // stopped early: the next run starts after it.
                .col(string_len_null(FollowerCheckRuns::ResumeAfter, OPENID_LEN))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_follower_check_runs_started_at")
                .table(FollowerCheckRuns::Table)
                .col(FollowerCheckRuns::StartedAt)
                .to_owned(),
        )
        .await
}

/// One column per statement: SQLite's ALTER TABLE adds one at a time.
async fn add_columns<T: IntoIden + Copy>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

async fn drop_column<T: IntoIden, C: IntoIden>(
    manager: &SchemaManager<'_>,
    table: T,
    column: C,
) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(column).to_owned())
        .await
}
