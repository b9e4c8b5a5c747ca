//! Arrears (欠费): what students still owe, summed by grade, class or major in SQL,
//! and the students of one group with the items they owe.
//!
//! An item is owed while it is `unpaid` or `in_order` (an open order does not pay it),
//! or `deferred` to a date that has passed (the domain's payable rule: the deferral
//! has lapsed). A deferral that still holds is counted apart; waived and paid items
//! are not arrears.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, Func};
use sea_orm::{
    ColumnTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Select,
};

use super::console_payments::bigint_sum;
use super::entities::{fee_items, students};
use super::fees::owed_condition;
use super::{FeeItemStatus, Store, StoreError};

/// How the totals are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrearsGrouping {
    Grade,
    /// A class within its grade (the same class name recurs across grades).
    Class,
    Major,
}

/// Which students count. Every part is optional; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArrearsScope {
    pub grade: Option<i32>,
    pub class_name: Option<String>,
    pub major: Option<MajorScope>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MajorScope {
    Named(String),
    /// Students imported without a major.
    Missing,
}

/// One group's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrearsKey {
    Grade(i32),
    Class { grade: i32, class_name: String },
    Major(Option<String>),
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrearsGroup {
    pub key: ArrearsKey,
    /// Students with at least one owed item.
    pub students: u64,
    pub items: u64,
    pub owed_fen: i64,
    /// Items on the green channel whose deferral still holds.
    pub deferred_fen: i64,
}

/// A student who owes, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrearsStudent {
    pub student_id: i64,
    pub name: String,
    /// The full ID number: the pages and the export mask it.
    pub id_card: String,
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    pub owed_fen: i64,
    pub items: Vec<OwedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedItem {
    pub academic_year: String,
    pub item: String,
    pub amount_fen: i64,
}

/// The items whose deferral still holds at `now` (no date: until the office lifts it).
fn deferral_holds(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(fee_items::Column::Status.eq(FeeItemStatus::Deferred))
        .add(
            Condition::any()
                .add(fee_items::Column::DeferredUntil.is_null())
                .add(fee_items::Column::DeferredUntil.gte(now)),
        )
}

/// Fee items joined to their students, narrowed to `scope`.
fn in_scope(scope: &ArrearsScope) -> Select<fee_items::Entity> {
    let mut select = fee_items::Entity::find()
        .select_only()
        .join(JoinType::InnerJoin, fee_items::Relation::Student.def());
    if let Some(grade) = scope.grade {
        select = select.filter(students::Column::Grade.eq(grade));
    }
    if let Some(class_name) = &scope.class_name {
        select = select.filter(students::Column::ClassName.eq(class_name.as_str()));
    }
    match &scope.major {
        Some(MajorScope::Named(major)) => {
            select = select.filter(students::Column::Major.eq(major.as_str()));
        }
        Some(MajorScope::Missing) => {
            select = select.filter(students::Column::Major.is_null());
        }
        None => {}
    }
    select
}

/// The four totals, after the group's key columns.
fn with_totals(select: Select<fee_items::Entity>, now: DateTime<Utc>) -> Select<fee_items::Entity> {
    let amount = || Expr::col((fee_items::Entity, fee_items::Column::AmountFen));
    let student = Expr::col((fee_items::Entity, fee_items::Column::StudentId));
    select
        .expr_as(
            Func::count_distinct(Expr::case(owed_condition(now), student)),
            "students",
        )
        .expr_as(
            bigint_sum(Expr::case(owed_condition(now), Expr::val(1i64)).finally(Expr::val(0i64))),
            "items",
        )
        .expr_as(
            bigint_sum(Expr::case(owed_condition(now), amount()).finally(Expr::val(0i64))),
            "owed_fen",
        )
        .expr_as(
            bigint_sum(Expr::case(deferral_holds(now), amount()).finally(Expr::val(0i64))),
            "deferred_fen",
        )
        .filter(
            Condition::any()
                .add(owed_condition(now))
                .add(deferral_holds(now)),
        )
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

impl Store {
    /// What is owed, grouped: one GROUP BY query. Groups in key order.
    pub async fn arrears_groups(
        &self,
        grouping: ArrearsGrouping,
        scope: &ArrearsScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<ArrearsGroup>, StoreError> {
        let error = StoreError::query("total arrears");
        let base = in_scope(scope);
        let groups = match grouping {
            ArrearsGrouping::Grade => {
                let rows: Vec<(i32, i64, i64, i64, i64)> =
                    with_totals(base.column(students::Column::Grade), now)
                        .group_by(students::Column::Grade)
                        .order_by_desc(students::Column::Grade)
                        .into_tuple()
                        .all(&self.reads)
                        .await
                        .map_err(error)?;
                rows.into_iter()
                    .map(|(grade, students, items, owed, deferred)| {
                        group(ArrearsKey::Grade(grade), students, items, owed, deferred)
                    })
                    .collect()
            }
            ArrearsGrouping::Class => {
                let rows: Vec<(i32, String, i64, i64, i64, i64)> = with_totals(
                    base.column(students::Column::Grade)
                        .column(students::Column::ClassName),
                    now,
                )
                .group_by(students::Column::Grade)
                .group_by(students::Column::ClassName)
                .order_by_desc(students::Column::Grade)
                .order_by_asc(students::Column::ClassName)
                .into_tuple()
                .all(&self.reads)
                .await
                .map_err(error)?;
                rows.into_iter()
                    .map(|(grade, class_name, students, items, owed, deferred)| {
                        let key = ArrearsKey::Class { grade, class_name };
                        group(key, students, items, owed, deferred)
                    })
                    .collect()
            }
            ArrearsGrouping::Major => {
                let rows: Vec<(Option<String>, i64, i64, i64, i64)> =
                    with_totals(base.column(students::Column::Major), now)
                        .group_by(students::Column::Major)
                        .order_by_asc(students::Column::Major)
                        .into_tuple()
                        .all(&self.reads)
                        .await
                        .map_err(error)?;
                rows.into_iter()
                    .map(|(major, students, items, owed, deferred)| {
                        group(ArrearsKey::Major(major), students, items, owed, deferred)
                    })
                    .collect()
            }
        };
        Ok(groups)
    }

    /// How many students in `scope` owe something at `now`.
    pub async fn count_students_owing(
        &self,
        scope: &ArrearsScope,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let total: Option<i64> = in_scope(scope)
            .expr(Func::count_distinct(Expr::col((
                fee_items::Entity,
                fee_items::Column::StudentId,
            ))))
            .filter(owed_condition(now))
            .into_tuple()
            .one(&self.reads)
            .await
            .map_err(StoreError::query("count students owing"))?;
        Ok(count(total.unwrap_or_default()))
    }

    /// The students in `scope` who owe at `now`, by grade, class and name, `limit`
    /// from `offset`, each with the items owed: two queries whatever the page size.
    pub async fn students_owing(
        &self,
        scope: &ArrearsScope,
        now: DateTime<Utc>,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<ArrearsStudent>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            i32,
            String,
            Option<String>,
            Option<String>,
            i64,
        );
        let columns = [
            students::Column::Id,
            students::Column::Name,
            students::Column::IdCard,
            students::Column::Grade,
            students::Column::ClassName,
            students::Column::Major,
            students::Column::StudentNo,
        ];
        let mut select = in_scope(scope);
        for column in columns {
            select = select.column(column).group_by(column);
        }
        let rows: Vec<Row> = select
            .expr_as(
                bigint_sum(Expr::col((fee_items::Entity, fee_items::Column::AmountFen))),
                "owed_fen",
            )
            .filter(owed_condition(now))
            .order_by_desc(students::Column::Grade)
            .order_by_asc(students::Column::ClassName)
            .order_by_asc(students::Column::Name)
            .order_by_asc(students::Column::Id)
            .limit(limit.max(1))
            .offset(offset)
            .into_tuple()
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list students owing"))?;
        let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        let mut items = self.owed_items(&ids, now).await?;
        Ok(rows
            .into_iter()
            .map(
                |(student_id, name, id_card, grade, class_name, major, student_no, owed_fen)| {
                    ArrearsStudent {
                        student_id,
                        name,
                        id_card,
                        grade,
                        class_name,
                        major,
                        student_no,
                        owed_fen,
                        items: items.remove(&student_id).unwrap_or_default(),
                    }
                },
            )
            .collect())
    }

    /// The items each of `student_ids` owes at `now`, by year and item.
    async fn owed_items(
        &self,
        student_ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<i64, Vec<OwedItem>>, StoreError> {
        let mut owed_by_student = std::collections::HashMap::new();
        if student_ids.is_empty() {
            return Ok(owed_by_student);
        }
        let rows = fee_items::Entity::find()
            .filter(fee_items::Column::StudentId.is_in(student_ids.iter().copied()))
            .filter(owed_condition(now))
            .order_by_desc(fee_items::Column::AcademicYear)
            .order_by_asc(fee_items::Column::Id)
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list owed items"))?;
        for row in rows {
            owed_by_student
                .entry(row.student_id)
                .or_insert_with(Vec::new)
                .push(OwedItem {
                    academic_year: row.academic_year,
                    item: row.item,
                    amount_fen: row.amount_fen,
                });
        }
        Ok(owed_by_student)
    }
}

fn group(
    key: ArrearsKey,
    students: i64,
    items: i64,
    owed_fen: i64,
    deferred_fen: i64,
) -> ArrearsGroup {
    ArrearsGroup {
        key,
        students: count(students),
        items: count(items),
        owed_fen,
        deferred_fen,
    }
}
