//! Counts read at each `/metrics` scrape: small, and bounded by what they scan.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::reconciliation_runs::RunStatus;
use super::entities::{orders, reconciliation_runs as runs};
use super::{Store, StoreError};
use crate::domain::provider::Provider;

impl Store {
    /// Orders holding money the channel reported that did not settle their items and
    /// that the finance office has not resolved: the console's "订单异常" count.
    pub async fn count_open_order_exceptions(&self) -> Result<u64, StoreError> {
        orders::Entity::find()
            .filter(orders::Column::Exception.is_not_null())
            .filter(orders::Column::ExceptionResolvedAt.is_null())
            .count(&self.reads)
            .await
            .map_err(StoreError::query("count open order exceptions"))
    }

    /// Lines that did not agree (missing at the channel, another amount, unknown to
    /// us) in each channel's latest finished reconciliation. A later clean run of the
    /// channel closes them.
    pub async fn count_open_reconciliation_mismatches(&self) -> Result<u64, StoreError> {
        let mut total: i64 = 0;
        for provider in Provider::ALL {
            let latest = runs::Entity::find()
                .filter(runs::Column::Channel.eq(provider.code()))
                .filter(runs::Column::Status.eq(RunStatus::Done))
                .order_by_desc(runs::Column::Id)
                .limit(1)
                .one(&self.reads)
                .await
                .map_err(StoreError::query("read the latest reconciliation run"))?;
            if let Some(run) = latest {
                total += run.missing_at_channel + run.amount_mismatch + run.unknown_at_us;
            }
        }
        Ok(u64::try_from(total).unwrap_or(0))
    }
}
