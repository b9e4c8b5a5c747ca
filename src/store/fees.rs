//! A student's fee items, as the fee list shows them.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::fee_items;
use super::{FeeItemStatus, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeItemRecord {
    pub id: i64,
    pub academic_year: String,
    pub item: String,
    pub amount_fen: i64,
    pub status: FeeItemStatus,
    pub deferred_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl From<fee_items::Model> for FeeItemRecord {
    fn from(row: fee_items::Model) -> FeeItemRecord {
        FeeItemRecord {
            id: row.id,
            academic_year: row.academic_year,
            item: row.item,
            amount_fen: row.amount_fen,
            status: row.status,
            deferred_until: row.deferred_until,
            updated_at: row.updated_at,
        }
    }
}

impl Store {
    /// Every fee item of a student, oldest academic year first, in the order imported.
    pub async fn fee_items_of(&self, student_id: i64) -> Result<Vec<FeeItemRecord>, StoreError> {
        let rows = fee_items::Entity::find()
            .filter(fee_items::Column::StudentId.eq(student_id))
            .order_by_asc(fee_items::Column::AcademicYear)
            .order_by_asc(fee_items::Column::Id)
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list a student's fee items"))?;
        Ok(rows.into_iter().map(FeeItemRecord::from).collect())
    }
}
