//! The database schema of campus-pay, as a sequence of migrations.
//!
//! Every change is a new migration appended to [`Migrator::migrations`]; a migration
//! that has landed is never edited, because databases in the field have already
//! applied it. Migrations use the schema builder only (no raw SQL), so the same
//! sequence runs on SQLite (the embedded default) and PostgreSQL (production).

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_initial_schema;
mod m20261130_000001_order_payment_details;
mod m20261201_000001_console;
mod m20261201_000002_refunds_reconciliation_receipts;
mod m20261201_000003_order_request_id;
mod m20261207_000001_refund_item_effect;

/// The ordered list of every migration campus-pay has ever had.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial_schema::Migration),
            Box::new(m20261130_000001_order_payment_details::Migration),
            Box::new(m20261201_000001_console::Migration),
            Box::new(m20261201_000002_refunds_reconciliation_receipts::Migration),
            Box::new(m20261201_000003_order_request_id::Migration),
            Box::new(m20261207_000001_refund_item_effect::Migration),
        ]
    }
}
