//! The first cut of the schema: students and their fee items, orders and the
//! notifications that pay them, the official account's followers, the finance
//! office's admins and the audit log.
//!
//! Conventions every later migration keeps:
//! - ids are `BIGINT` (auto-increment), so no table outgrows its keys;
//! - money is `BIGINT` fen, never a decimal or a float;
//! - instants are `TIMESTAMP WITH TIME ZONE` written by the program's clock (no
//!   server-side `now()` defaults, so tests can drive time);
//! - statuses are short strings whose values the entities' enums own (no database
//!   enum types or value checks, so adding a status needs no table rebuild on SQLite);
//! - unique rules are named unique indexes (`ux_…`), plain indexes `idx_…`, foreign
//!   keys `fk_…`, so a later migration can name what it changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Lengths shared by several tables.
const OPENID_LEN: u32 = 64;
const PASSWORD_HASH_LEN: u32 = 255;
const STATUS_LEN: u32 = 16;
const NAME_LEN: u32 = 64;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_students(manager).await?;
        create_orders(manager).await?;
        create_fee_items(manager).await?;
        create_order_items(manager).await?;
        create_payment_notifications(manager).await?;
        create_followers(manager).await?;
        create_admins(manager).await?;
        create_audit_log(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents, so no foreign key blocks a drop.
        for table in [
            AuditLog::Table.into_iden(),
            Admins::Table.into_iden(),
            Followers::Table.into_iden(),
            PaymentNotifications::Table.into_iden(),
            OrderItems::Table.into_iden(),
            FeeItems::Table.into_iden(),
            Orders::Table.into_iden(),
            Students::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    /// Both backends have transactional DDL: a failure half-way leaves no
    /// half-built schema behind (SQLite would otherwise run without a transaction).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

async fn create_students(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Students::Table)
                .col(big_pk_auto(Students::Id))
                .col(string_len(Students::IdCard, 18))
                .col(string_len(Students::Name, NAME_LEN))
                .col(string_len(Students::Gender, 4))
                .col(integer(Students::Grade))
                .col(string_len(Students::ClassName, NAME_LEN))
                .col(string_len_null(Students::Major, 128))
                .col(string_len_null(Students::StudentNo, 32))
                .col(string_len(Students::PasswordHash, PASSWORD_HASH_LEN))
                .col(string_len_null(
                    Students::InitialPasswordHash,
                    PASSWORD_HASH_LEN,
                ))
                .col(boolean(Students::MustChangePassword).default(true))
                .col(integer(Students::FailedLogins).default(0))
                .col(timestamp_with_time_zone_null(Students::LockedUntil))
                .col(string_len_null(Students::WechatOpenid, OPENID_LEN))
                .col(timestamp_with_time_zone_null(Students::BoundAt))
                .col(timestamp_with_time_zone(Students::CreatedAt))
                .col(timestamp_with_time_zone(Students::UpdatedAt))
                .to_owned(),
        )
        .await?;
    create_unique_index(manager, Students::Table, &[Students::IdCard]).await?;
    // Several NULLs are allowed on both backends: unbound students have none.
    create_unique_index(manager, Students::Table, &[Students::WechatOpenid]).await
}

async fn create_orders(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Orders::Table)
                .col(big_pk_auto(Orders::Id))
                // WeChat Pay caps out_trade_no at 32 characters.
                .col(string_len(Orders::OutTradeNo, 32))
                .col(big_integer(Orders::StudentId))
                .col(string_len(Orders::Channel, STATUS_LEN))
                .col(fen(Orders::AmountFen))
                .col(string_len(Orders::Status, STATUS_LEN))
                .col(string_len_null(Orders::ChannelTradeNo, 64))
                .col(string_len_null(Orders::PayerOpenid, OPENID_LEN))
                .col(timestamp_with_time_zone(Orders::ExpiresAt))
                .col(timestamp_with_time_zone_null(Orders::PaidAt))
                .col(timestamp_with_time_zone_null(Orders::ClosedAt))
                .col(timestamp_with_time_zone(Orders::CreatedAt))
                .col(timestamp_with_time_zone(Orders::UpdatedAt))
                .foreign_key(&mut references(
                    Orders::Table,
                    Orders::StudentId,
                    Students::Table,
                    Students::Id,
                ))
                .to_owned(),
        )
        .await?;
    create_unique_index(manager, Orders::Table, &[Orders::OutTradeNo]).await?;
    // The expiry job looks for open orders past their deadline.
    create_index(manager, Orders::Table, &[Orders::Status, Orders::ExpiresAt]).await?;
    create_index(manager, Orders::Table, &[Orders::StudentId]).await
}

async fn create_fee_items(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(FeeItems::Table)
                .col(big_pk_auto(FeeItems::Id))
                .col(big_integer(FeeItems::StudentId))
                .col(string_len(FeeItems::AcademicYear, 16))
                .col(string_len(FeeItems::Item, NAME_LEN))
                .col(fen(FeeItems::AmountFen))
                .col(string_len(FeeItems::Status, STATUS_LEN))
                .col(timestamp_with_time_zone_null(FeeItems::DeferredUntil))
                .col(big_integer_null(FeeItems::PaidOrderId))
                .col(text_null(FeeItems::Note))
                .col(timestamp_with_time_zone(FeeItems::CreatedAt))
                .col(timestamp_with_time_zone(FeeItems::UpdatedAt))
                .foreign_key(&mut references(
                    FeeItems::Table,
                    FeeItems::StudentId,
                    Students::Table,
                    Students::Id,
                ))
                .foreign_key(&mut references(
                    FeeItems::Table,
                    FeeItems::PaidOrderId,
                    Orders::Table,
                    Orders::Id,
                ))
                .to_owned(),
        )
        .await?;
    // The fee import is keyed by (student, academic year, item); this index also
    // serves "the items of a student".
    create_unique_index(
        manager,
        FeeItems::Table,
        &[FeeItems::StudentId, FeeItems::AcademicYear, FeeItems::Item],
    )
    .await?;
    create_index(manager, FeeItems::Table, &[FeeItems::Status]).await
}

async fn create_order_items(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(OrderItems::Table)
                .col(big_pk_auto(OrderItems::Id))
                .col(big_integer(OrderItems::OrderId))
                .col(big_integer(OrderItems::FeeItemId))
                .col(fen(OrderItems::AmountFen))
                .foreign_key(&mut references(
                    OrderItems::Table,
                    OrderItems::OrderId,
                    Orders::Table,
                    Orders::Id,
                ))
                .foreign_key(&mut references(
                    OrderItems::Table,
                    OrderItems::FeeItemId,
                    FeeItems::Table,
                    FeeItems::Id,
                ))
                .to_owned(),
        )
        .await?;
    create_unique_index(
        manager,
        OrderItems::Table,
        &[OrderItems::OrderId, OrderItems::FeeItemId],
    )
    .await?;
    // "Which orders ever carried this item", for the finance office's history.
    create_index(manager, OrderItems::Table, &[OrderItems::FeeItemId]).await
}

async fn create_payment_notifications(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(PaymentNotifications::Table)
                .col(big_pk_auto(PaymentNotifications::Id))
                .col(string_len(PaymentNotifications::Channel, STATUS_LEN))
                // Unbounded: a notification is stored as received, before we know
                // whether its order number is one of ours.
                .col(string_null(PaymentNotifications::OutTradeNo))
                .col(big_integer_null(PaymentNotifications::OrderId))
                .col(timestamp_with_time_zone(PaymentNotifications::ReceivedAt))
                .col(text(PaymentNotifications::Headers))
                .col(text(PaymentNotifications::RawBody))
                .col(string_len(PaymentNotifications::Verdict, STATUS_LEN))
                .col(text_null(PaymentNotifications::Reason))
                .foreign_key(&mut references(
                    PaymentNotifications::Table,
                    PaymentNotifications::OrderId,
                    Orders::Table,
                    Orders::Id,
                ))
                .to_owned(),
        )
        .await?;
    create_index(
        manager,
        PaymentNotifications::Table,
        &[PaymentNotifications::OutTradeNo],
    )
    .await?;
    // The finance office reads the newest notifications first.
    create_index(
        manager,
        PaymentNotifications::Table,
        &[PaymentNotifications::ReceivedAt],
    )
    .await
}

async fn create_followers(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Followers::Table)
                .col(big_pk_auto(Followers::Id))
                .col(string_len(Followers::Openid, OPENID_LEN))
                .col(boolean(Followers::Subscribed))
                .col(timestamp_with_time_zone_null(Followers::SubscribedAt))
                .col(timestamp_with_time_zone_null(Followers::UnsubscribedAt))
                .col(string_len_null(Followers::SubscribeScene, 64))
                .col(string_len_null(Followers::Remark, NAME_LEN))
                .col(big_integer_null(Followers::StudentId))
                .col(timestamp_with_time_zone_null(Followers::LastCheckedAt))
                .col(string_len_null(Followers::Compliance, 32))
                .col(timestamp_with_time_zone(Followers::CreatedAt))
                .col(timestamp_with_time_zone(Followers::UpdatedAt))
                .foreign_key(&mut references(
                    Followers::Table,
                    Followers::StudentId,
                    Students::Table,
                    Students::Id,
                ))
                .to_owned(),
        )
        .await?;
    // The upsert on subscribe relies on this index (ON CONFLICT (openid)).
    create_unique_index(manager, Followers::Table, &[Followers::Openid]).await?;
    create_index(manager, Followers::Table, &[Followers::StudentId]).await
}

async fn create_admins(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Admins::Table)
                .col(big_pk_auto(Admins::Id))
                .col(string_len(Admins::Username, NAME_LEN))
                .col(string_len(Admins::PasswordHash, PASSWORD_HASH_LEN))
                .col(string_len(Admins::Role, STATUS_LEN))
                .col(integer(Admins::FailedLogins).default(0))
                .col(timestamp_with_time_zone_null(Admins::LockedUntil))
                .col(timestamp_with_time_zone(Admins::CreatedAt))
                .to_owned(),
        )
        .await?;
    create_unique_index(manager, Admins::Table, &[Admins::Username]).await
}

async fn create_audit_log(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(big_pk_auto(AuditLog::Id))
                .col(timestamp_with_time_zone(AuditLog::At))
                .col(string_len(AuditLog::Actor, NAME_LEN))
                .col(string_len(AuditLog::Action, NAME_LEN))
                .col(string_len(AuditLog::Target, 255))
                // jsonb on PostgreSQL (queryable), text on SQLite.
                .col(json_binary_null(AuditLog::Before))
                .col(json_binary_null(AuditLog::After))
                .to_owned(),
        )
        .await?;
    create_index(manager, AuditLog::Table, &[AuditLog::At]).await
}

/// An amount of money in fen: a whole number, never negative. The check is named
/// `ck_<column>` (check names need only be unique per table).
fn fen<T: IntoIden + Copy>(column: T) -> ColumnDef {
    let name = format!("ck_{}", column.into_iden());
    big_integer(column)
        .check(Check::named(name, Expr::col(column).gte(0)))
        .to_owned()
}

/// A foreign key named `fk_<table>_<column>`. Rows are never deleted out from under
/// money records, so deleting a referenced row is refused.
fn references<T, C, RT, RC>(
    table: T,
    column: C,
    ref_table: RT,
    ref_column: RC,
) -> ForeignKeyCreateStatement
where
    T: IntoIden,
    C: IntoIden,
    RT: IntoIden,
    RC: IntoIden,
{
    let table = table.into_iden();
    let column = column.into_iden();
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(ref_table, ref_column)
        .on_delete(ForeignKeyAction::Restrict)
        .on_update(ForeignKeyAction::Restrict)
        .to_owned()
}

async fn create_index<T, C>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: &[C],
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden + Copy,
{
    manager
        .create_index(index_on("idx", table, columns).to_owned())
        .await
}

async fn create_unique_index<T, C>(
    manager: &SchemaManager<'_>,
    table: T,
    columns: &[C],
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden + Copy,
{
    manager
        .create_index(index_on("ux", table, columns).unique().to_owned())
        .await
}

/// An index named `<prefix>_<table>_<col>_<col>…`; index names are per schema on
/// PostgreSQL and per database on SQLite, so the table name keeps them apart.
fn index_on<T, C>(prefix: &str, table: T, columns: &[C]) -> IndexCreateStatement
where
    T: IntoIden,
    C: IntoIden + Copy,
{
    let table = table.into_iden();
    let mut name = format!("{prefix}_{table}");
    let mut index = Index::create();
    for column in columns {
        let column = column.into_iden();
        name.push('_');
        name.push_str(&column.to_string());
        index.col(column);
    }
    index.name(name).table(table).to_owned()
}

#[derive(DeriveIden, Clone, Copy)]
enum Students {
    Table,
    Id,
    IdCard,
    Name,
    Gender,
    Grade,
    ClassName,
    Major,
    StudentNo,
    PasswordHash,
    InitialPasswordHash,
    MustChangePassword,
    FailedLogins,
    LockedUntil,
    WechatOpenid,
    BoundAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum FeeItems {
    Table,
    Id,
    StudentId,
    AcademicYear,
    Item,
    AmountFen,
    Status,
    DeferredUntil,
    PaidOrderId,
    Note,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    OutTradeNo,
    StudentId,
    Channel,
    AmountFen,
    Status,
    ChannelTradeNo,
    PayerOpenid,
    ExpiresAt,
    PaidAt,
    ClosedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    FeeItemId,
    AmountFen,
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentNotifications {
    Table,
    Id,
    Channel,
    OutTradeNo,
    OrderId,
    ReceivedAt,
    Headers,
    RawBody,
    Verdict,
    Reason,
}

#[derive(DeriveIden, Clone, Copy)]
enum Followers {
    Table,
    Id,
    Openid,
    Subscribed,
    SubscribedAt,
    UnsubscribedAt,
    SubscribeScene,
    Remark,
    StudentId,
    LastCheckedAt,
    Compliance,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Admins {
    Table,
    Id,
    Username,
    PasswordHash,
    Role,
    FailedLogins,
    LockedUntil,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Before,
    After,
}
