//! The console's students: the search over the rolls, one student's whole record (items,
//! orders, the notifications matched to them), and the office's three changes to a
//! student (details corrected, password reset, WeChat unbound), each written in one
//! transaction with its audit row.
//!
//! Lists carry the ID number masked: only [`StudentDetails`], read for the student's
//! own page, holds it in full.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Map, Value, json};

use super::audit::write_audit;
use super::entities::{audit_log, fee_items, followers, orders, payment_notifications, students};
use super::fees::owed_condition;
use super::{
    AuditEntry, AuditRecord, FeeItemStatus, Gender as StoredGender, NotificationChannel,
    NotificationVerdict, OrderRecord, Store, StoreError,
};
use crate::domain::id_card::{ID_CARD_LEN, IdCardNumber};
use crate::domain::student::Gender;

/// What the office typed in the search box, read as the keys it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudentSearch {
    /// Nothing typed: every student, in the order imported.
    Everyone,
    /// A whole valid ID number (a trailing `x` read as `X`): that student.
    IdCard(IdCardNumber),
    /// Anything else: name or class containing it, or the student number equal to
    /// it, or (when it looks like one) the last 4–6 characters of the ID number.
    Text {
        text: String,
        id_card_ending: Option<String>,
    },
}

/// The shortest and longest ending of an ID number the search accepts.
const ID_ENDING_CHARS: std::ops::RangeInclusive<usize> = 4..=6;

impl StudentSearch {
    pub fn from_input(input: &str) -> StudentSearch {
        let text = input.trim();
        if text.is_empty() {
            return StudentSearch::Everyone;
        }
        if let Ok(id_card) = IdCardNumber::parse(text) {
            return StudentSearch::IdCard(id_card);
        }
        StudentSearch::Text {
            text: text.to_owned(),
            id_card_ending: id_card_ending(text),
        }
    }
}

/// `text` as the end of an ID number (digits, the last may be `x`/`X`), upper case.
fn id_card_ending(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let (last, body) = bytes.split_last()?;
    let plausible = ID_ENDING_CHARS.contains(&bytes.len())
        && body.iter().all(u8::is_ascii_digit)
        && (last.is_ascii_digit() || *last == b'X');
    plausible.then_some(upper)
}

/// The masked form of a stored ID number; stored numbers are valid, but a row that is
/// not still never shows more than its first six and last four characters.
fn masked(id_card: &str) -> String {
    match IdCardNumber::parse(id_card) {
        Ok(number) => number.masked(),
        Err(_) => {
            let chars: Vec<char> = id_card.chars().collect();
            if chars.len() == ID_CARD_LEN {
                let head: String = chars[..6].iter().collect();
                let tail: String = chars[14..].iter().collect();
                format!("{head}********{tail}")
            } else {
                "******".to_owned()
            }
        }
    }
}

/// `%`, `_` and the escape character itself taken literally in a LIKE pattern.
const LIKE_ESCAPE: char = '!';

fn like_contains(text: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape(LIKE_ESCAPE)
}

/// One student in the search results. The ID number is masked here already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentListRow {
    pub id: i64,
    pub id_card_masked: String,
    pub name: String,
    pub gender: StoredGender,
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    pub bound: bool,
    /// Unpaid and in-order items, in fen.
    pub owed_fen: i64,
}

/// A student as their own console page shows them, the full ID number included.
#[derive(Clone, PartialEq, Eq)]
pub struct StudentDetails {
    pub id: i64,
    pub id_card: String,
    pub name: String,
    pub gender: StoredGender,
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    /// Still on the initial password (empty hash).
    pub on_initial_password: bool,
    pub must_change_password: bool,
    pub wechat_openid: Option<String>,
    pub bound_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Never prints the ID number.
impl std::fmt::Debug for StudentDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudentDetails")
            .field("id", &self.id)
            .field("id_card", &masked(&self.id_card))
            .field("bound", &self.wechat_openid.is_some())
            .finish_non_exhaustive()
    }
}

impl From<students::Model> for StudentDetails {
    fn from(row: students::Model) -> StudentDetails {
        StudentDetails {
            id: row.id,
            on_initial_password: row.password_hash.is_empty(),
            id_card: row.id_card,
            name: row.name,
            gender: row.gender,
            grade: row.grade,
            class_name: row.class_name,
            major: row.major,
            student_no: row.student_no,
            must_change_password: row.must_change_password,
            wechat_openid: row.wechat_openid,
            bound_at: row.bound_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A fee item on the student's page, with the office's note and any deferral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentFeeRow {
    pub id: i64,
    pub academic_year: String,
    pub item: String,
    pub amount_fen: i64,
    pub status: FeeItemStatus,
    pub deferred_until: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// A payment notification matched to one of the student's orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentNotificationRow {
    pub id: i64,
    pub out_trade_no: Option<String>,
    pub received_at: DateTime<Utc>,
    pub channel: NotificationChannel,
    pub verdict: NotificationVerdict,
    pub reason: Option<String>,
}

/// A student's items, orders (newest first) and the notifications for those orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentRecord {
    pub fees: Vec<StudentFeeRow>,
    pub orders: Vec<OrderRecord>,
    pub notifications: Vec<StudentNotificationRow>,
}

/// The details the office may correct, already checked (the import's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentCorrection {
    pub name: String,
    pub gender: Gender,
    /// Four-digit year of entry.
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
}

/// What a correction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectOutcome {
    /// Stored, with its audit row; the student as they now are.
    Corrected(Box<StudentDetails>),
    /// The form equals what is stored: nothing written.
    Unchanged,
    NotFound,
}

/// What unbinding came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnbindOutcome {
    Unbound,
    /// Not bound: nothing written.
    NotBound,
    NotFound,
}

/// The audit action of a look at a student's page (the full ID number).
pub const STUDENT_VIEW: &str = "student.view";

fn stored_gender(gender: Gender) -> StoredGender {
    match gender {
        Gender::Male => StoredGender::Male,
        Gender::Female => StoredGender::Female,
    }
}

fn gender_text(gender: StoredGender) -> &'static str {
    match gender {
        StoredGender::Male => "男",
        StoredGender::Female => "女",
    }
}

impl Store {
    /// One page of the students `search` finds, and how many it finds in all.
    pub async fn search_students(
        &self,
        search: &StudentSearch,
        limit: u64,
        offset: u64,
        now: DateTime<Utc>,
    ) -> Result<(Vec<StudentListRow>, u64), StoreError> {
        let select = students::Entity::find().filter(search_condition(search));
        let total = select
            .clone()
            .count(&self.reads)
            .await
            .map_err(StoreError::query("count students found"))?;
        let rows = select
            .order_by_asc(students::Column::Id)
            .offset(offset)
            .limit(limit.max(1))
            .all(&self.reads)
            .await
            .map_err(StoreError::query("search students"))?;
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let owed = self.owed_by(&ids, now).await?;
        let found = rows
            .into_iter()
            .map(|row| StudentListRow {
                owed_fen: owed.get(&row.id).copied().unwrap_or(0),
                id: row.id,
                id_card_masked: masked(&row.id_card),
                name: row.name,
                gender: row.gender,
                grade: row.grade,
                class_name: row.class_name,
                major: row.major,
                student_no: row.student_no,
                bound: row.wechat_openid.is_some(),
            })
            .collect();
        Ok((found, total))
    }

    /// What each of `student_ids` owes, in one grouped query (absent: nothing owed).
    async fn owed_by(
        &self,
        student_ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<HashMap<i64, i64>, StoreError> {
        if student_ids.is_empty() {
            return Ok(HashMap::new());
        }
        // PostgreSQL sums a bigint as numeric: cast back so both backends give i64.
        let sum = Func::cast_as(
            Func::sum(Expr::col(fee_items::Column::AmountFen)),
            Alias::new("BIGINT"),
        );
        let sums: Vec<(i64, Option<i64>)> = fee_items::Entity::find()
            .select_only()
            .column(fee_items::Column::StudentId)
            .expr(sum)
            .filter(fee_items::Column::StudentId.is_in(student_ids.iter().copied()))
            .filter(owed_condition(now))
            .group_by(fee_items::Column::StudentId)
            .into_tuple()
            .all(&self.reads)
            .await
            .map_err(StoreError::query("sum what students owe"))?;
        Ok(sums
            .into_iter()
            .map(|(student_id, owed)| (student_id, owed.unwrap_or(0)))
            .collect())
    }

    /// A student for their console page, the full ID number included.
    pub async fn student_details(
        &self,
        student_id: i64,
    ) -> Result<Option<StudentDetails>, StoreError> {
        let row = students::Entity::find_by_id(student_id)
            .one(&self.db)
            .await
            .map_err(StoreError::query("read a student for the console"))?;
        Ok(row.map(StudentDetails::from))
    }

    /// The student's items, orders and the notifications matched to the orders.
    pub async fn student_record(&self, student_id: i64) -> Result<StudentRecord, StoreError> {
        let fees = fee_items::Entity::find()
            .filter(fee_items::Column::StudentId.eq(student_id))
            .order_by_asc(fee_items::Column::AcademicYear)
            .order_by_asc(fee_items::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list a student's items for the console"))?
            .into_iter()
            .map(|row| StudentFeeRow {
                id: row.id,
                academic_year: row.academic_year,
                item: row.item,
                amount_fen: row.amount_fen,
                status: row.status,
                deferred_until: row.deferred_until,
                note: row.note,
            })
            .collect();
        let orders: Vec<OrderRecord> = orders::Entity::find()
            .filter(orders::Column::StudentId.eq(student_id))
            .order_by_desc(orders::Column::CreatedAt)
            .order_by_desc(orders::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list a student's orders"))?
            .into_iter()
            .map(OrderRecord::from)
            .collect();
        let notifications = self.notifications_for(&orders).await?;
        Ok(StudentRecord {
            fees,
            orders,
            notifications,
        })
    }

    /// Notifications matched to `orders`, or naming one of them (a refused one may
    /// not have been matched), newest first.
    async fn notifications_for(
        &self,
        orders: &[OrderRecord],
    ) -> Result<Vec<StudentNotificationRow>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let ids = orders.iter().map(|order| order.id);
        let numbers = orders.iter().map(|order| order.out_trade_no.clone());
        let rows = payment_notifications::Entity::find()
            .filter(
                Condition::any()
                    .add(payment_notifications::Column::OrderId.is_in(ids))
                    .add(payment_notifications::Column::OutTradeNo.is_in(numbers)),
            )
            .order_by_desc(payment_notifications::Column::ReceivedAt)
            .order_by_desc(payment_notifications::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list a student's payment notifications"))?;
        Ok(rows
            .into_iter()
            .map(|row| StudentNotificationRow {
                id: row.id,
                out_trade_no: row.out_trade_no,
                received_at: row.received_at,
                channel: row.channel,
                verdict: row.verdict,
                reason: row.reason,
            })
            .collect())
    }

    /// The latest `limit` changes made to `target` (e.g. `student:42`), newest first.
    /// Viewings are left out: they would soon push the changes off the page (the
    /// audit log page lists them).
    pub async fn student_changes(
        &self,
        target: &str,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = audit_log::Entity::find()
            .filter(audit_log::Column::Target.eq(target))
            .filter(audit_log::Column::Action.ne(STUDENT_VIEW))
            .order_by_desc(audit_log::Column::At)
            .order_by_desc(audit_log::Column::Id)
            .limit(limit.max(1))
            .all(&self.db)
            .await
            .map_err(StoreError::query("list the changes to a student"))?;
        Ok(rows
            .into_iter()
            .map(|row| AuditRecord {
                id: row.id,
                at: row.at,
                entry: AuditEntry {
                    actor: row.actor,
                    action: row.action,
                    target: row.target,
                    before: row.before,
                    after: row.after,
                },
            })
            .collect())
    }

    /// Stores the corrected details, with `entry` carrying the changed fields before
    /// and after (never the ID number).
    pub async fn correct_student(
        &self,
        student_id: i64,
        correction: &StudentCorrection,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<CorrectOutcome, StoreError> {
        let txn = self.begin_write("begin a student correction").await?;
        let Some(stored) = locked_student(&txn, student_id).await? else {
            return Ok(CorrectOutcome::NotFound);
        };
        let Some((before, after)) = correction_diff(&stored, correction) else {
            return Ok(CorrectOutcome::Unchanged);
        };
        let updated = students::Entity::update(students::ActiveModel {
            id: Set(student_id),
            name: Set(correction.name.clone()),
            gender: Set(stored_gender(correction.gender)),
            grade: Set(correction.grade),
            class_name: Set(correction.class_name.clone()),
            major: Set(correction.major.clone()),
            student_no: Set(correction.student_no.clone()),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(StoreError::query("correct a student"))?;
        write_audit(&txn, &entry.before(before).after(after), now).await?;
        commit(txn, "commit a student correction").await?;
        Ok(CorrectOutcome::Corrected(Box::new(StudentDetails::from(
            updated,
        ))))
    }

    /// Back to the initial password: the hash emptied (the initial password opens the
    /// account again) and a change required at the next sign-in. Returns the ID
    /// number (for the sign-in lockout), `None` for an unknown student.
    pub async fn reset_student_password(
        &self,
        student_id: i64,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let txn = self.begin_write("begin a password reset").await?;
        let Some(stored) = locked_student(&txn, student_id).await? else {
            return Ok(None);
        };
        students::Entity::update(students::ActiveModel {
            id: Set(student_id),
            password_hash: Set(String::new()),
            must_change_password: Set(true),
            failed_logins: Set(0),
            locked_until: Set(None),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(StoreError::query("reset a student's password"))?;
        let entry = entry
            .before(json!({
                "password": if stored.password_hash.is_empty() { "initial" } else { "chosen" },
                "must_change_password": stored.must_change_password,
            }))
            .after(json!({ "password": "initial", "must_change_password": true }));
        write_audit(&txn, &entry, now).await?;
        commit(txn, "commit a password reset").await?;
        Ok(Some(stored.id_card))
    }

    /// Undoes the student's WeChat binding, on the student and on any follower row
    /// pointing at them; the openid goes in the audit row's `before`.
    pub async fn unbind_student_wechat(
        &self,
        student_id: i64,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<UnbindOutcome, StoreError> {
        let txn = self.begin_write("begin unbinding").await?;
        let Some(stored) = locked_student(&txn, student_id).await? else {
            return Ok(UnbindOutcome::NotFound);
        };
        let Some(openid) = stored.wechat_openid else {
            return Ok(UnbindOutcome::NotBound);
        };
        students::Entity::update(students::ActiveModel {
            id: Set(student_id),
            wechat_openid: Set(None),
            bound_at: Set(None),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(StoreError::query("unbind a student"))?;
        followers::Entity::update_many()
            .col_expr(
                followers::Column::StudentId,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(followers::Column::UpdatedAt, Expr::value(now))
            .filter(followers::Column::StudentId.eq(student_id))
            .exec(&txn)
            .await
            .map_err(StoreError::query("unbind a student's followers"))?;
        let entry = entry
            .before(json!({ "wechat_openid": openid, "bound_at": stored.bound_at }))
            .after(json!({ "wechat_openid": null, "bound_at": null }));
        write_audit(&txn, &entry, now).await?;
        commit(txn, "commit unbinding").await?;
        Ok(UnbindOutcome::Unbound)
    }
}

/// The student's row read inside the change's transaction (which holds the write
/// lock on SQLite; on PostgreSQL the row is locked for the transaction).
async fn locked_student(
    txn: &DatabaseTransaction,
    student_id: i64,
) -> Result<Option<students::Model>, StoreError> {
    let mut select = students::Entity::find_by_id(student_id);
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        select = select.lock_exclusive();
    }
    select
        .one(txn)
        .await
        .map_err(StoreError::query("read the student to change"))
}

async fn commit(txn: DatabaseTransaction, operation: &'static str) -> Result<(), StoreError> {
    txn.commit().await.map_err(StoreError::query(operation))
}

/// The fields `correction` changes, as `before` and `after` objects; `None` when it
/// changes nothing.
fn correction_diff(
    stored: &students::Model,
    correction: &StudentCorrection,
) -> Option<(Value, Value)> {
    let mut before = Map::new();
    let mut after = Map::new();
    let mut compare = |field: &str, old: Value, new: Value| {
        if old != new {
            before.insert(field.to_owned(), old);
            after.insert(field.to_owned(), new);
        }
    };
    compare("name", json!(stored.name), json!(correction.name));
    compare(
        "gender",
        json!(gender_text(stored.gender)),
        json!(correction.gender.as_chinese()),
    );
    compare("grade", json!(stored.grade), json!(correction.grade));
    compare(
        "class_name",
        json!(stored.class_name),
        json!(correction.class_name),
    );
    compare("major", json!(stored.major), json!(correction.major));
    compare(
        "student_no",
        json!(stored.student_no),
        json!(correction.student_no),
    );
    (!after.is_empty()).then(|| (Value::Object(before), Value::Object(after)))
}

/// Which rows `search` selects.
fn search_condition(search: &StudentSearch) -> Condition {
    match search {
        StudentSearch::Everyone => Condition::all(),
        StudentSearch::IdCard(id_card) => {
            Condition::all().add(students::Column::IdCard.eq(id_card.as_str()))
        }
        StudentSearch::Text {
            text,
            id_card_ending,
        } => {
            let mut any = Condition::any()
                .add(students::Column::Name.like(like_contains(text)))
                .add(students::Column::ClassName.like(like_contains(text)))
                .add(students::Column::StudentNo.eq(text.as_str()));
            if let Some(ending) = id_card_ending {
                any = any.add(students::Column::IdCard.ends_with(ending.as_str()));
            }
            any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_box_reads_id_numbers_endings_and_text() {
        assert_eq!(StudentSearch::from_input("  "), StudentSearch::Everyone);
        match StudentSearch::from_input(" 11010519491231002x ") {
            StudentSearch::IdCard(number) => assert_eq!(number.as_str(), "11010519491231002X"),
            other => panic!("{other:?}"),
        }
        let ending = |input: &str| match StudentSearch::from_input(input) {
            StudentSearch::Text { id_card_ending, .. } => id_card_ending,
            other => panic!("{other:?}"),
        };
        assert_eq!(ending("002x").as_deref(), Some("002X"));
        assert_eq!(ending("1002X").as_deref(), Some("1002X"));
        assert_eq!(ending("31002X").as_deref(), Some("31002X"));
        assert_eq!(ending("150025").as_deref(), Some("150025"));
        // Too short, too long, letters, an x not at the end: not an ending.
        for input in ["002", "231002X", "张三", "汽修1班", "x002", "12a4"] {
            assert_eq!(ending(input), None, "{input:?}");
        }
        // An 18-character number with a wrong check digit is text (finds nothing).
        assert!(matches!(
            StudentSearch::from_input("110105194912310021"),
            StudentSearch::Text {
                id_card_ending: None,
                ..
            }
        ));
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        let pattern = like_contains("50%_!");
        let expected = LikeExpr::new("%50!%!_!!%").escape('!');
        assert_eq!(format!("{pattern:?}"), format!("{expected:?}"));
    }

    #[test]
    fn lists_mask_every_id_number() {
        assert_eq!(masked("11010519491231002X"), "110105********002X");
        assert_eq!(masked("110105194912310021"), "110105********0021");
        assert_eq!(masked("short"), "******");
    }
}
