//! What paying needs beyond the first cut: the description sent to the channel (a
//! repeated prepay must send the same one), when the channel was last asked about an
//! order (the query job), and an exception note for the finance office (a payment
//! that arrived for an order we had closed, an amount that does not match).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len_null, text_null, timestamp_with_time_zone_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orders {
    Table,
    Description,
    LastQueriedAt,
    Exception,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let columns = [
            string_len_null(Orders::Description, 128),
            timestamp_with_time_zone_null(Orders::LastQueriedAt),
            text_null(Orders::Exception),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Orders::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Orders::Exception,
            Orders::LastQueriedAt,
            Orders::Description,
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
        Ok(())
    }
}
