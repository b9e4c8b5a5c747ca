//! The console's fee items: finding them (by academic year, item and status), one
//! item with its student, and the office's three changes to an item: waive (减免),
//! defer (缓缴, 绿色通道) and restore (back to unpaid). Each change is a conditional
//! update whose row count is checked, written in one transaction with its audit row:
//! an item that an order took meanwhile, or that was paid, is never changed.
//!
//! Records carry the student's ID number masked: the full number is shown only on
//! the student's own page.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value, json};

use super::audit::write_audit;
use super::entities::{fee_items, order_items, orders, students};
use super::fees::fee_state;
use super::{AuditEntry, FeeItemStatus, OrderStatus, Store, StoreError};
use crate::domain::fee_item::{deferral_date, payable_now};
use crate::domain::id_card::IdCardNumber;
use crate::domain::money::Fen;

/// One fee item with its student, for the item's console page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeItemDetail {
    pub id: i64,
    pub student_id: i64,
    pub student_name: String,
    pub id_card_masked: String,
    pub grade: i32,
    pub class_name: String,
    pub academic_year: String,
    pub item: String,
    pub amount_fen: i64,
    pub status: FeeItemStatus,
    pub deferred_until: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// The order that paid it, by its number.
    pub paid_order: Option<String>,
    /// The open order holding it, by its number.
    pub open_order: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FeeItemDetail {
    /// Whether the student may pay it now (the rule is `domain::fee_item`'s).
    pub fn payable_now(&self, now: DateTime<Utc>) -> bool {
        payable_now(fee_state(self.status), self.deferred_until, now)
    }
}

/// Which items to list, in the order imported, and how many.
#[derive(Debug, Clone, Default)]
pub struct FeeItemQuery {
    pub academic_year: Option<String>,
    pub item: Option<String>,
    pub status: Option<FeeItemStatus>,
    pub limit: u64,
    pub offset: u64,
}

/// One row of the item listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeItemListRow {
    pub id: i64,
    pub student_id: i64,
    pub student_name: String,
    pub id_card_masked: String,
    pub class_name: String,
    pub academic_year: String,
    pub item: String,
    pub amount_fen: i64,
    pub status: FeeItemStatus,
    pub deferred_until: Option<DateTime<Utc>>,
}

/// What an office change to an item came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeeItemChange {
    /// Done, with its audit row.
    Changed,
    /// No such item.
    NotFound,
    /// The item's status does not allow it (paid, in an open order…): nothing
    /// changed.
    Refused(FeeItemStatus),
    /// An order took it, or an import changed it, between our read and our write:
    /// nothing changed.
    ChangedMeanwhile,
}

/// A change the office makes to an item: the statuses it may start from, and what
/// the item becomes.
struct ItemChange<'a> {
    allowed: fn(&fee_items::Model, DateTime<Utc>) -> bool,
    status: FeeItemStatus,
    deferred_until: Option<DateTime<Utc>>,
    note: Option<&'a str>,
}

impl Store {
    /// One item with its student and the orders that paid or hold it.
    pub async fn fee_item_detail(&self, id: i64) -> Result<Option<FeeItemDetail>, StoreError> {
        let Some((item, student)) = fee_items::Entity::find_by_id(id)
            .find_also_related(students::Entity)
            .one(&self.db)
            .await
            .map_err(StoreError::query("read a fee item"))?
        else {
            return Ok(None);
        };
        let Some(student) = student else {
            return Err(StoreError::Inconsistent("a fee item without its student"));
        };
        let paid_order = match item.paid_order_id {
            Some(order_id) => orders::Entity::find_by_id(order_id)
                .one(&self.db)
                .await
                .map_err(StoreError::query("read the order that paid an item"))?
                .map(|order| order.out_trade_no),
            None => None,
        };
        let open_order = open_order_holding(&self.db, item.id).await?;
        Ok(Some(FeeItemDetail {
            id: item.id,
            student_id: student.id,
            student_name: student.name,
            id_card_masked: masked(&student.id_card),
            grade: student.grade,
            class_name: student.class_name,
            academic_year: item.academic_year,
            item: item.item,
            amount_fen: item.amount_fen,
            status: item.status,
            deferred_until: item.deferred_until,
            note: item.note,
            paid_order,
            open_order,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }))
    }

    /// The items `query` selects, in the order imported, and how many there are.
    pub async fn list_fee_items(
        &self,
        query: &FeeItemQuery,
    ) -> Result<(Vec<FeeItemListRow>, u64), StoreError> {
        let mut select = fee_items::Entity::find().find_also_related(students::Entity);
        if let Some(year) = &query.academic_year {
            select = select.filter(fee_items::Column::AcademicYear.eq(year.as_str()));
        }
        if let Some(item) = &query.item {
            select = select.filter(fee_items::Column::Item.eq(item.as_str()));
        }
        if let Some(status) = query.status {
            select = select.filter(fee_items::Column::Status.eq(status));
        }
        let total = select
            .clone()
            .count(&self.reads)
            .await
            .map_err(StoreError::query("count fee items"))?;
        let rows = select
            .order_by_asc(fee_items::Column::Id)
            .offset(query.offset)
            .limit(query.limit.max(1))
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list fee items"))?;
        let rows = rows
            .into_iter()
            .filter_map(|(item, student)| {
                let student = student?;
                Some(FeeItemListRow {
                    id: item.id,
                    student_id: student.id,
                    student_name: student.name,
                    id_card_masked: masked(&student.id_card),
                    class_name: student.class_name,
                    academic_year: item.academic_year,
                    item: item.item,
                    amount_fen: item.amount_fen,
                    status: item.status,
                    deferred_until: item.deferred_until,
                })
            })
            .collect();
        Ok((rows, total))
    }

    /// The academic years and item names there are, for the listing's filters.
    pub async fn fee_item_choices(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let years: Vec<String> = fee_items::Entity::find()
            .select_only()
            .column(fee_items::Column::AcademicYear)
            .distinct()
            .order_by_desc(fee_items::Column::AcademicYear)
            .into_tuple()
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list academic years"))?;
        let items: Vec<String> = fee_items::Entity::find()
            .select_only()
            .column(fee_items::Column::Item)
            .distinct()
            .order_by_asc(fee_items::Column::Item)
            .into_tuple()
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list item names"))?;
        Ok((years, items))
    }

    /// Waives an unpaid or deferred item (减免): it is owed no more. `reason` becomes
    /// its note. Refused for an item paid, in an open order, or waived already.
    pub async fn waive_fee_item(
        &self,
        id: i64,
        reason: &str,
        audit: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<FeeItemChange, StoreError> {
        let change = ItemChange {
            allowed: |item, _| {
                matches!(item.status, FeeItemStatus::Unpaid | FeeItemStatus::Deferred)
            },
            status: FeeItemStatus::Waived,
            deferred_until: None,
            note: Some(reason),
        };
        self.change_fee_item(id, &change, audit, now).await
    }

    /// Defers an item the student owes now (unpaid, or a deferral that has run out)
    /// until `until`: shown as deferred and not payable until then.
    pub async fn defer_fee_item(
        &self,
        id: i64,
        until: DateTime<Utc>,
        reason: &str,
        audit: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<FeeItemChange, StoreError> {
        let change = ItemChange {
            allowed: |item, now| payable_now(fee_state(item.status), item.deferred_until, now),
            status: FeeItemStatus::Deferred,
            deferred_until: Some(until),
            note: Some(reason),
        };
        self.change_fee_item(id, &change, audit, now).await
    }

    /// Undoes a waiver or a deferral: the item is unpaid again, without a note.
    pub async fn restore_fee_item(
        &self,
        id: i64,
        audit: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<FeeItemChange, StoreError> {
        let change = ItemChange {
            allowed: |item, _| {
                matches!(item.status, FeeItemStatus::Waived | FeeItemStatus::Deferred)
            },
            status: FeeItemStatus::Unpaid,
            deferred_until: None,
            note: None,
        };
        self.change_fee_item(id, &change, audit, now).await
    }

    /// Reads the item, checks the change is allowed, and updates it only while it is
    /// still as read (status and amount): an order that takes it, or an import that
    /// changes it, between our read and our write leaves it untouched.
    async fn change_fee_item(
        &self,
        id: i64,
        change: &ItemChange<'_>,
        audit: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<FeeItemChange, StoreError> {
        let txn = self.begin_write("begin changing a fee item").await?;
        let outcome = change_in(&txn, id, change, audit, now).await?;
        if outcome == FeeItemChange::Changed {
            txn.commit()
                .await
                .map_err(StoreError::query("commit a fee item change"))?;
        } else {
            txn.rollback()
                .await
                .map_err(StoreError::query("roll back a fee item change"))?;
        }
        Ok(outcome)
    }
}

async fn change_in(
    txn: &DatabaseTransaction,
    id: i64,
    change: &ItemChange<'_>,
    audit: AuditEntry,
    now: DateTime<Utc>,
) -> Result<FeeItemChange, StoreError> {
    let Some(item) = fee_items::Entity::find_by_id(id)
        .one(txn)
        .await
        .map_err(StoreError::query("read the fee item to change"))?
    else {
        return Ok(FeeItemChange::NotFound);
    };
    if !(change.allowed)(&item, now) {
        return Ok(FeeItemChange::Refused(item.status));
    }
    let note = change.note.map(str::to_owned);
    let updated = fee_items::Entity::update_many()
        .col_expr(fee_items::Column::Status, Expr::value(change.status))
        .col_expr(
            fee_items::Column::DeferredUntil,
            Expr::value(change.deferred_until),
        )
        .col_expr(fee_items::Column::Note, Expr::value(note.clone()))
        .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
        .filter(fee_items::Column::Id.eq(item.id))
        .filter(fee_items::Column::Status.eq(item.status))
        .filter(fee_items::Column::AmountFen.eq(item.amount_fen))
        .exec(txn)
        .await
        .map_err(StoreError::query("change a fee item"))?;
    if updated.rows_affected != 1 {
        return Ok(FeeItemChange::ChangedMeanwhile);
    }
    let before = audit_state(
        item.status,
        item.note.as_deref(),
        item.amount_fen,
        item.deferred_until,
    );
    let after = audit_state(
        change.status,
        note.as_deref(),
        item.amount_fen,
        change.deferred_until,
    );
    write_audit(txn, &audit.before(before).after(after), now).await?;
    Ok(FeeItemChange::Changed)
}

/// An item as its audit rows record it: amounts in yuan, the deferral as a date.
fn audit_state(
    status: FeeItemStatus,
    note: Option<&str>,
    amount_fen: i64,
    deferred_until: Option<DateTime<Utc>>,
) -> Value {
    let mut state = json!({
        "status": status.to_value(),
        "note": note,
        "amount": Fen(amount_fen).to_string(),
    });
    if let (Some(until), Some(object)) = (deferred_until, state.as_object_mut()) {
        object.insert("deferred_until".into(), json!(deferral_date(until)));
    }
    state
}

/// The number of the open order holding item `id`, if one does.
async fn open_order_holding(
    db: &impl sea_orm::ConnectionTrait,
    id: i64,
) -> Result<Option<String>, StoreError> {
    let holding = order_items::Entity::find()
        .filter(order_items::Column::FeeItemId.eq(id))
        .find_also_related(orders::Entity)
        .all(db)
        .await
        .map_err(StoreError::query("find the order holding an item"))?;
    Ok(holding
        .into_iter()
        .filter_map(|(_, order)| order)
        .find(|order| order.status == OrderStatus::Created)
        .map(|order| order.out_trade_no))
}

/// A stored ID number masked; one that does not parse shows nothing of itself.
fn masked(id_card: &str) -> String {
    IdCardNumber::parse(id_card)
        .map(|number| number.masked())
        .unwrap_or_else(|_| "******************".to_owned())
}
