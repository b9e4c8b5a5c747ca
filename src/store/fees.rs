//! A student's fee items, as the fee list shows them.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::fee_items;
use super::{FeeItemStatus, Store, StoreError};
use crate::domain::fee_item::{self, FeeState};

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

impl FeeItemRecord {
    /// Whether the student may pay it now (the rule is `domain::fee_item`'s).
    pub fn payable_now(&self, now: DateTime<Utc>) -> bool {
        fee_item::payable_now(fee_state(self.status), self.deferred_until, now)
    }

    /// Whether it is on the green channel at `now` (shown as deferred, not payable).
    pub fn deferral_holds(&self, now: DateTime<Utc>) -> bool {
        fee_item::deferral_holds(fee_state(self.status), self.deferred_until, now)
    }
}

pub(super) fn fee_state(status: FeeItemStatus) -> FeeState {
    match status {
        FeeItemStatus::Unpaid => FeeState::Unpaid,
        FeeItemStatus::InOrder => FeeState::InOrder,
        FeeItemStatus::Paid => FeeState::Paid,
        FeeItemStatus::Waived => FeeState::Waived,
        FeeItemStatus::Deferred => FeeState::Deferred,
    }
}

/// The rows `domain::fee_item::payable_now` says may be paid at `now`, as SQL:
/// `status = unpaid OR (status = deferred AND deferred_until < now)`. For the
/// conditional updates that take items, so that they agree with the pages.
pub(super) fn payable_condition(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(fee_items::Column::Status.eq(FeeItemStatus::Unpaid))
        .add(
            Condition::all()
                .add(fee_items::Column::Status.eq(FeeItemStatus::Deferred))
                .add(fee_items::Column::DeferredUntil.lt(now)),
        )
}

/// The items a student owes at `now`: payable ones and those in an open order (still
/// owed until the order is paid). The console's lists and arrears count these.
pub(super) fn owed_condition(now: DateTime<Utc>) -> Condition {
    payable_condition(now).add(fee_items::Column::Status.eq(FeeItemStatus::InOrder))
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
