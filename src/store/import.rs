//! Applying checked import rows (`crate::import`) to the database, all or nothing.
//!
//! Each import is one transaction: it reads what exists for the file's keys (in
//! chunks of [`CHUNK`] keys, never one query per row), decides every row, and writes
//! only when no row is bad. A dry run (`apply = false`) makes the same decisions and
//! writes nothing, for the console's preview.
//!
//! - Students are keyed by the ID number. A new one starts on the initial password:
//!   `password_hash` is empty and `must_change_password` set, and the file's own
//!   initial password (`初始密码`) is kept as `initial_password_hash`. Argon2 is slow
//!   by design, so each distinct initial password is hashed once per import (a whole
//!   class often gets `000000`). A known student's details are updated when they
//!   differ; their passwords are never touched.
//! - Fee items are keyed by (student, academic year, item). An item that is paid, in
//!   an open order or waived keeps its amount: a row that would change it is a bad
//!   row; the same amount is fine. Changing an unpaid (or deferred) item's amount is
//!   a conditional update, so an order that takes the item meanwhile is never
//!   undercut: the import then fails and says to try again.
//!
//! An applied import from a file (the console, the CLI) writes its audit row
//! (`import.students`, `import.fees`) in the same transaction.
//!
//! On SQLite an applying import takes the write lock up front (an IMMEDIATE
//! transaction), so a server in another process writing between our reads and our
//! writes cannot make the commit fail.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use serde_json::json;

use super::audit::write_audit;
use super::entities::{fee_items, students};
use super::{AuditEntry, FeeItemStatus, Gender as StoredGender, Store, StoreError};
use crate::domain::password::{PasswordHashError, hash_password};
use crate::domain::student::Gender;
use crate::import::{FeeRow, FirstSeen, ImportRejected, ImportSummary, RowProblem, StudentRow};

/// Keys per `IN (…)` list and rows per multi-row `INSERT`: well within both
/// backends' limits on bound parameters (16 columns × 500 rows).
const CHUNK: usize = 500;

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// Bad rows: nothing was written. Every problem is listed.
    #[error("{} 行有问题，未导入任何数据", .0.bad_lines())]
    Rejected(ImportRejected),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing an initial password failed (a broken random number generator).
    #[error("cannot hash an initial password")]
    PasswordHash(#[source] PasswordHashError),
}

impl From<ImportRejected> for ImportFailure {
    fn from(rejected: ImportRejected) -> ImportFailure {
        ImportFailure::Rejected(rejected)
    }
}

impl Store {
    /// Imports students keyed by their ID number: new ones added, changed ones
    /// updated, the rest counted unchanged. With `apply = false` nothing is written.
    pub async fn import_students(
        &self,
        rows: &[StudentRow],
        now: DateTime<Utc>,
        apply: bool,
    ) -> Result<ImportSummary, ImportFailure> {
        self.import_students_from(rows, now, apply, None).await
    }

    /// [`Store::import_students`], and when applied with `file` given, its audit row
    /// (`import.students`) in the import's own transaction.
    pub async fn import_students_from(
        &self,
        rows: &[StudentRow],
        now: DateTime<Utc>,
        apply: bool,
        file: Option<&ImportedFile<'_>>,
    ) -> Result<ImportSummary, ImportFailure> {
        reject_problems(duplicate_students(rows))?;
        let txn = self.begin_import(apply).await?;
        let id_cards: Vec<&str> = rows.iter().map(|row| row.id_card.as_str()).collect();
        let existing = existing_students(&txn, &id_cards).await?;

        let mut summary = ImportSummary::default();
        let mut new_rows = Vec::new();
        let mut changes = Vec::new();
        for row in rows {
            match existing.get(row.id_card.as_str()) {
                None => new_rows.push(row),
                Some(stored) => match student_change(stored, row) {
                    Some(change) => changes.push(change),
                    None => summary.unchanged += 1,
                },
            }
        }
        summary.added = new_rows.len();
        summary.updated = changes.len();
        if !apply {
            rollback(txn).await?;
            return Ok(summary);
        }

        let hashes = hash_initial_passwords(&new_rows).await?;
        for chunk in new_rows.chunks(CHUNK) {
            let models = chunk.iter().map(|row| new_student(row, &hashes, now));
            students::Entity::insert_many(models)
                .exec_without_returning(&txn)
                .await
                .map_err(StoreError::query("insert imported students"))?;
        }
        for change in changes {
            students::Entity::update_many()
                .set(change.columns)
                .col_expr(students::Column::UpdatedAt, Expr::value(now))
                .filter(students::Column::Id.eq(change.student_id))
                .exec(&txn)
                .await
                .map_err(StoreError::query("update an imported student"))?;
        }
        if let Some(file) = file {
            write_audit(
                &txn,
                &file.audit("import.students", rows.len(), summary),
                now,
            )
            .await?;
        }
        commit(txn).await?;
        Ok(summary)
    }

    /// Imports fee items keyed by (student, academic year, item). A row for an
    /// unknown student, or one that would change an item already paid, in an open
    /// order or waived, is a bad row. With `apply = false` nothing is written.
    pub async fn import_fees(
        &self,
        rows: &[FeeRow],
        now: DateTime<Utc>,
        apply: bool,
    ) -> Result<ImportSummary, ImportFailure> {
        self.import_fees_from(rows, now, apply, None).await
    }

    /// [`Store::import_fees`], and when applied with `file` given, its audit row
    /// (`import.fees`) in the import's own transaction.
    pub async fn import_fees_from(
        &self,
        rows: &[FeeRow],
        now: DateTime<Utc>,
        apply: bool,
        file: Option<&ImportedFile<'_>>,
    ) -> Result<ImportSummary, ImportFailure> {
        reject_problems(duplicate_fees(rows))?;
        let txn = self.begin_import(apply).await?;
        let id_cards: Vec<&str> = rows.iter().map(|row| row.id_card.as_str()).collect();
        let student_ids = student_ids(&txn, &id_cards).await?;
        let ids: Vec<i64> = student_ids.values().copied().collect();
        let existing = existing_fee_items(&txn, &ids).await?;

        let mut summary = ImportSummary::default();
        let mut problems = Vec::new();
        let mut new_items = Vec::new();
        let mut amount_changes = Vec::new();
        for row in rows {
            let Some(&student_id) = student_ids.get(row.id_card.as_str()) else {
                problems.push(RowProblem::new(
                    row.line,
                    format!("没有这个学生（身份证号 {}）", row.id_card.masked()),
                ));
                continue;
            };
            let key = (student_id, row.academic_year.clone(), row.item.clone());
            match existing.get(&key) {
                None => new_items.push((student_id, row)),
                Some(stored) if stored.amount_fen == row.amount.0 => summary.unchanged += 1,
                Some(stored) => match frozen_reason(stored.status) {
                    Some(reason) => problems.push(RowProblem::new(row.line, reason)),
                    None => amount_changes.push((stored.id, row)),
                },
            }
        }
        if !problems.is_empty() {
            rollback(txn).await?;
            return Err(ImportRejected::new(problems).into());
        }
        summary.added = new_items.len();
        summary.updated = amount_changes.len();
        if !apply {
            rollback(txn).await?;
            return Ok(summary);
        }

        for chunk in new_items.chunks(CHUNK) {
            let models = chunk
                .iter()
                .map(|(student_id, row)| new_fee_item(*student_id, row, now));
            fee_items::Entity::insert_many(models)
                .exec_without_returning(&txn)
                .await
                .map_err(StoreError::query("insert imported fee items"))?;
        }
        for (fee_item_id, row) in amount_changes {
            let result = fee_items::Entity::update_many()
                .col_expr(fee_items::Column::AmountFen, Expr::value(row.amount.0))
                .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
                .filter(fee_items::Column::Id.eq(fee_item_id))
                .filter(fee_items::Column::Status.is_in(AMOUNT_MAY_CHANGE))
                .exec(&txn)
                .await
                .map_err(StoreError::query("update an imported fee item"))?;
            if result.rows_affected != 1 {
                problems.push(RowProblem::new(
                    row.line,
                    "该项目刚刚进入支付或已缴费，未修改；请稍后重新导入",
                ));
            }
        }
        if !problems.is_empty() {
            rollback(txn).await?;
            return Err(ImportRejected::new(problems).into());
        }
        if let Some(file) = file {
            write_audit(&txn, &file.audit("import.fees", rows.len(), summary), now).await?;
        }
        commit(txn).await?;
        Ok(summary)
    }

    /// Applying: SQLite's write lock up front. A dry run only reads.
    async fn begin_import(&self, apply: bool) -> Result<DatabaseTransaction, StoreError> {
        let sqlite = self.db.get_database_backend() == DatabaseBackend::Sqlite;
        let options = TransactionOptions {
            sqlite_transaction_mode: (apply && sqlite).then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(StoreError::query("begin an import"))
    }
}

/// The file an applied import came from and who applied it, for its audit row.
#[derive(Debug, Clone, Copy)]
pub struct ImportedFile<'a> {
    /// An admin's username, or `cli`.
    pub actor: &'a str,
    pub file_name: &'a str,
    /// The SHA-256 of the file's bytes, in lower-case hex.
    pub sha256: &'a str,
}

impl ImportedFile<'_> {
    fn audit(&self, action: &str, rows: usize, summary: ImportSummary) -> AuditEntry {
        AuditEntry::new(self.actor, action, format!("file:{}", self.file_name)).after(json!({
            "file": self.file_name,
            "sha256": self.sha256,
            "rows": rows,
            "added": summary.added,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
        }))
    }
}

/// The statuses whose amount an import may change.
const AMOUNT_MAY_CHANGE: [FeeItemStatus; 2] = [FeeItemStatus::Unpaid, FeeItemStatus::Deferred];

/// Why a stored item's amount must stay, or `None` when it may change.
fn frozen_reason(status: FeeItemStatus) -> Option<&'static str> {
    match status {
        FeeItemStatus::Unpaid | FeeItemStatus::Deferred => None,
        FeeItemStatus::Paid => Some("该项目已缴费，不能修改"),
        FeeItemStatus::InOrder => Some("该项目正在支付中，不能修改"),
        FeeItemStatus::Waived => Some("该项目已减免，不能修改"),
    }
}

fn reject_problems(problems: Vec<RowProblem>) -> Result<(), ImportFailure> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ImportRejected::new(problems).into())
    }
}

/// The parsers refuse duplicate keys already; rows built another way are checked
/// again, since two rows for one key would make the outcome depend on their order.
fn duplicate_students(rows: &[StudentRow]) -> Vec<RowProblem> {
    let mut first_seen = FirstSeen::new();
    rows.iter()
        .filter_map(|row| {
            let first = first_seen.earlier_line(row.id_card.as_str(), row.line)?;
            Some(RowProblem::new(
                row.line,
                format!("身份证号与第{first}行重复（{}）", row.id_card.masked()),
            ))
        })
        .collect()
}

fn duplicate_fees(rows: &[FeeRow]) -> Vec<RowProblem> {
    let mut first_seen = FirstSeen::new();
    rows.iter()
        .filter_map(|row| {
            let key = (row.id_card.as_str(), &row.academic_year, &row.item);
            let first = first_seen.earlier_line(key, row.line)?;
            Some(RowProblem::new(
                row.line,
                format!(
                    "与第{first}行重复（同一身份证号 {}、学年和项目）",
                    row.id_card.masked()
                ),
            ))
        })
        .collect()
}

/// The stored students among `id_cards`, by ID number.
async fn existing_students(
    txn: &DatabaseTransaction,
    id_cards: &[&str],
) -> Result<HashMap<String, students::Model>, StoreError> {
    let mut found = HashMap::with_capacity(id_cards.len());
    for chunk in distinct(id_cards).chunks(CHUNK) {
        let rows = students::Entity::find()
            .filter(students::Column::IdCard.is_in(chunk.iter().copied()))
            .all(txn)
            .await
            .map_err(StoreError::query("find the students of an import"))?;
        found.extend(rows.into_iter().map(|row| (row.id_card.clone(), row)));
    }
    Ok(found)
}

/// The ids of the stored students among `id_cards`, by ID number.
async fn student_ids(
    txn: &DatabaseTransaction,
    id_cards: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut found = HashMap::with_capacity(id_cards.len());
    for chunk in distinct(id_cards).chunks(CHUNK) {
        let rows: Vec<(i64, String)> = students::Entity::find()
            .select_only()
            .column(students::Column::Id)
            .column(students::Column::IdCard)
            .filter(students::Column::IdCard.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(StoreError::query("find the students of a fee import"))?;
        found.extend(rows.into_iter().map(|(id, id_card)| (id_card, id)));
    }
    Ok(found)
}

type FeeKey = (i64, String, String);

/// Every stored fee item of these students, by (student, academic year, item).
async fn existing_fee_items(
    txn: &DatabaseTransaction,
    student_ids: &[i64],
) -> Result<HashMap<FeeKey, fee_items::Model>, StoreError> {
    let mut found = HashMap::new();
    for chunk in student_ids.chunks(CHUNK) {
        let rows = fee_items::Entity::find()
            .filter(fee_items::Column::StudentId.is_in(chunk.iter().copied()))
            .all(txn)
            .await
            .map_err(StoreError::query("find the fee items of an import"))?;
        found.extend(rows.into_iter().map(|row| {
            let key = (row.student_id, row.academic_year.clone(), row.item.clone());
            (key, row)
        }));
    }
    Ok(found)
}

fn distinct<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The columns of a stored student that this row changes, or `None`. Optional
/// fields the file leaves empty are not changes.
fn student_change(stored: &students::Model, row: &StudentRow) -> Option<StudentChange> {
    let gender = stored_gender(row.gender);
    let mut change = students::ActiveModel::default();
    let mut changed = false;
    if stored.name != row.name {
        change.name = Set(row.name.clone());
        changed = true;
    }
    if stored.gender != gender {
        change.gender = Set(gender);
        changed = true;
    }
    if stored.grade != row.grade {
        change.grade = Set(row.grade);
        changed = true;
    }
    if stored.class_name != row.class_name {
        change.class_name = Set(row.class_name.clone());
        changed = true;
    }
    if let Some(major) = &row.major
        && stored.major.as_ref() != Some(major)
    {
        change.major = Set(Some(major.clone()));
        changed = true;
    }
    if let Some(student_no) = &row.student_no
        && stored.student_no.as_ref() != Some(student_no)
    {
        change.student_no = Set(Some(student_no.clone()));
        changed = true;
    }
    changed.then_some(StudentChange {
        student_id: stored.id,
        columns: change,
    })
}

/// An update of a stored student: only the changed columns are set.
struct StudentChange {
    student_id: i64,
    columns: students::ActiveModel,
}

fn stored_gender(gender: Gender) -> StoredGender {
    match gender {
        Gender::Male => StoredGender::Male,
        Gender::Female => StoredGender::Female,
    }
}

/// A PHC string for each distinct initial password of the new students, computed
/// off the async runtime (argon2 takes tens of milliseconds each).
async fn hash_initial_passwords(
    new_rows: &[&StudentRow],
) -> Result<HashMap<String, String>, ImportFailure> {
    let passwords: BTreeSet<String> = new_rows
        .iter()
        .filter_map(|row| row.initial_password.clone())
        .collect();
    if passwords.is_empty() {
        return Ok(HashMap::new());
    }
    let hashed = tokio::task::spawn_blocking(move || {
        passwords
            .into_iter()
            .map(|password| {
                let hash = hash_password(&password)?;
                Ok((password, hash))
            })
            .collect::<Result<HashMap<_, _>, PasswordHashError>>()
    })
    .await;
    match hashed {
        Ok(hashes) => hashes.map_err(ImportFailure::PasswordHash),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ImportFailure::PasswordHash(PasswordHashError::Interrupted)),
    }
}

fn new_student(
    row: &StudentRow,
    hashes: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> students::ActiveModel {
    students::ActiveModel {
        id_card: Set(row.id_card.as_str().to_owned()),
        name: Set(row.name.clone()),
        gender: Set(stored_gender(row.gender)),
        grade: Set(row.grade),
        class_name: Set(row.class_name.clone()),
        major: Set(row.major.clone()),
        student_no: Set(row.student_no.clone()),
        // Empty: still on the initial password, which sign-in checks instead.
        password_hash: Set(String::new()),
        initial_password_hash: Set(row
            .initial_password
            .as_ref()
            .and_then(|password| hashes.get(password).cloned())),
        must_change_password: Set(true),
        failed_logins: Set(0),
        locked_until: Set(None),
        wechat_openid: Set(None),
        bound_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

fn new_fee_item(student_id: i64, row: &FeeRow, now: DateTime<Utc>) -> fee_items::ActiveModel {
    fee_items::ActiveModel {
        student_id: Set(student_id),
        academic_year: Set(row.academic_year.clone()),
        item: Set(row.item.clone()),
        amount_fen: Set(row.amount.0),
        status: Set(FeeItemStatus::Unpaid),
        deferred_until: Set(None),
        paid_order_id: Set(None),
        note: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

async fn commit(txn: DatabaseTransaction) -> Result<(), StoreError> {
    txn.commit()
        .await
        .map_err(StoreError::query("commit an import"))
}

async fn rollback(txn: DatabaseTransaction) -> Result<(), StoreError> {
    txn.rollback()
        .await
        .map_err(StoreError::query("roll back an import"))
}

#[cfg(test)]
mod tests;
