//! What the follower check asks of the database: which openids are bound to a
//! student (and to whom, so a drifted remark can be put right), which students a
//! remark may name, and each run's report in `follower_check_runs`.
//!
//! A run's row is written when it starts, saved as it goes (after each page of
//! followers) and at its end, so an interrupted run is visible. `resume_after` is
//! where the next real run starts: the last follower the run finished with, while it
//! goes and when it stopped early; none once a run reached the end. Dry runs neither
//! read nor set it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, Iterable, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use super::audit::write_audit;
use super::entities::{follower_check_runs as runs, followers, students};
use super::{AuditEntry, Store, StoreError};

/// A student as the remark rule sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemarkStudent {
    pub name: String,
    pub grade: i32,
    pub class_name: String,
}

/// A remark names its student at its end; names are not longer than this.
const NAME_MAX_CHARS: usize = 20;

/// A student's name as the remark carries it (`domain::student::name_key`): without the
/// whitespace a name can hold (`阿依 古丽`), so the remark's suffix `阿依古丽` finds it.
/// Imports store one ordinary space; tabs and full-width spaces are for older rows.
const NAME_KEY_SQL: &str = "REPLACE(REPLACE(REPLACE(\"name\", ' ', ''), '\u{3000}', ''), '\t', '')";

/// A run as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckRun<'a> {
    /// An admin's username, `cli` or `schedule`.
    pub actor: &'a str,
    pub dry_run: bool,
    /// `report`, `tag` or `blacklist`.
    pub action: &'a str,
    /// Where a real run starts (the previous run's resume point); `None` from the start.
    pub resume_after: Option<&'a str>,
}

/// What a run has sorted and done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCounts {
    /// Followers as user/get counts them.
    pub total: u64,
    /// Followers the run finished with.
    pub checked: u64,
    pub bound: u64,
    pub compliant: u64,
    pub within_grace: u64,
    pub left: u64,
    /// Non-compliant followers tagged or blacklisted upstream.
    pub acted_on: u64,
    /// Bound students' remarks put back to the rule's.
    pub remarks_corrected: u64,
}

/// A run's state, saved as it goes and at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckProgress<'a> {
    pub counts: CheckCounts,
    pub non_compliant: &'a [String],
    /// Why the run stopped early.
    pub stopped: Option<&'a str>,
    pub resume_after: Option<&'a str>,
    /// Set when the run ends (reached the end or stopped).
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run as the console and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRunRecord {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    /// `None` while it runs (or when its process died).
    pub finished_at: Option<DateTime<Utc>>,
    pub actor: String,
    pub dry_run: bool,
    pub action: String,
    pub counts: CheckCounts,
    pub non_compliant_count: u64,
    /// The non-compliant openids, in WeChat's order.
    pub non_compliant: Vec<String>,
    pub stopped: Option<String>,
    pub resume_after: Option<String>,
    /// A real run that carried on where the previous one stopped: the follower it
    /// started after.
    pub resumed_after: Option<String>,
}

impl CheckRunRecord {
    fn from_row(row: runs::Model, resumed_after: Option<String>) -> CheckRunRecord {
        let non_compliant = serde_json::from_value(row.non_compliant).unwrap_or_else(|error| {
            tracing::warn!(%error, run = row.id, "a follower check run's list is not a list of openids");
            Vec::new()
        });
        CheckRunRecord {
            id: row.id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            actor: row.actor,
            dry_run: row.dry_run,
            action: row.action,
            counts: CheckCounts {
                total: unsigned(row.total),
                checked: unsigned(row.checked),
                bound: unsigned(row.bound),
                compliant: unsigned(row.compliant),
                within_grace: unsigned(row.within_grace),
                left: unsigned(row.left_count),
                acted_on: unsigned(row.acted_on),
                remarks_corrected: unsigned(row.remarks_corrected),
            },
            non_compliant_count: unsigned(row.non_compliant_count),
            non_compliant,
            stopped: row.stopped,
            resume_after: row.resume_after,
            resumed_after,
        }
    }
}

fn unsigned(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

fn signed(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

impl Store {
    /// Those of `openids` bound to a student, each with their student: by the
    /// follower row's student, or by the student's own openid.
    pub async fn bound_students(
        &self,
        openids: &[&str],
    ) -> Result<HashMap<String, RemarkStudent>, StoreError> {
        let mut bound = HashMap::new();
        if openids.is_empty() {
            return Ok(bound);
        }
        let by_follower: Vec<(String, i64)> = followers::Entity::find()
            .select_only()
            .column(followers::Column::Openid)
            .column(followers::Column::StudentId)
            .filter(followers::Column::Openid.is_in(openids.iter().copied()))
            .filter(followers::Column::StudentId.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find bound followers"))?;
        let student_ids: HashSet<i64> = by_follower.iter().map(|(_, id)| *id).collect();
        let by_id: HashMap<i64, RemarkStudent> = students::Entity::find()
            .select_only()
            .column(students::Column::Id)
            .column(students::Column::Name)
            .column(students::Column::Grade)
            .column(students::Column::ClassName)
            .filter(students::Column::Id.is_in(student_ids))
            .into_tuple::<(i64, String, i32, String)>()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find the students of bound followers"))?
            .into_iter()
            .map(|(id, name, grade, class_name)| {
                let student = RemarkStudent {
                    name,
                    grade,
                    class_name,
                };
                (id, student)
            })
            .collect();
        for (openid, student_id) in by_follower {
            if let Some(student) = by_id.get(&student_id) {
                bound.insert(openid, student.clone());
            }
        }
        let by_student: Vec<(Option<String>, String, i32, String)> = students::Entity::find()
            .select_only()
            .column(students::Column::WechatOpenid)
            .column(students::Column::Name)
            .column(students::Column::Grade)
            .column(students::Column::ClassName)
            .filter(students::Column::WechatOpenid.is_in(openids.iter().copied()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find bound students"))?;
        // The student's own openid is the binding itself: it wins over a stale row.
        for (openid, name, grade, class_name) in by_student {
            if let Some(openid) = openid {
                let student = RemarkStudent {
                    name,
                    grade,
                    class_name,
                };
                bound.insert(openid, student);
            }
        }
        Ok(bound)
    }

    /// The students whose name ends one of `remarks` (whitespace left out), the only
    /// ones those remarks can follow the rule for.
    pub async fn students_named_in(
        &self,
        remarks: &[&str],
    ) -> Result<Vec<RemarkStudent>, StoreError> {
        let names: HashSet<String> = remarks
            .iter()
            .flat_map(|remark| name_suffixes(remark))
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i32, String)> = students::Entity::find()
            .select_only()
            .column(students::Column::Name)
            .column(students::Column::Grade)
            .column(students::Column::ClassName)
            .filter(sea_orm::sea_query::ExprTrait::is_in(
                Expr::cust(NAME_KEY_SQL),
                names,
            ))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find students named in remarks"))?;
        Ok(rows
            .into_iter()
            .map(|(name, grade, class_name)| RemarkStudent {
                name,
                grade,
                class_name,
            })
            .collect())
    }
}

impl Store {
    /// Where the next real run starts: the resume point of the latest real run.
    pub async fn check_resume_point(&self) -> Result<Option<String>, StoreError> {
        let latest: Option<Option<String>> = runs::Entity::find()
            .select_only()
            .column(runs::Column::ResumeAfter)
            .filter(runs::Column::DryRun.eq(false))
            .order_by_desc(runs::Column::Id)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(StoreError::query("find the follower check's resume point"))?;
        Ok(latest.flatten())
    }

    /// Records a run's start, with its audit row (whose target becomes the run), in one
    /// transaction; returns the run's id.
    pub async fn start_check_run(
        &self,
        run: &NewCheckRun<'_>,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let txn = self.begin_write("start a follower check run").await?;
        let row = runs::ActiveModel {
            started_at: Set(now),
            finished_at: Set(None),
            actor: Set(run.actor.to_owned()),
            dry_run: Set(run.dry_run),
            action: Set(run.action.to_owned()),
            total: Set(0),
            checked: Set(0),
            bound: Set(0),
            compliant: Set(0),
            within_grace: Set(0),
            left_count: Set(0),
            non_compliant_count: Set(0),
            acted_on: Set(0),
            remarks_corrected: Set(0),
            non_compliant: Set(serde_json::json!([])),
            stopped: Set(None),
            // Until it finishes with a follower, the run stands where it started.
            resume_after: Set(run.resume_after.map(str::to_owned)),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(StoreError::query("start a follower check run"))?;
        let mut audit = audit.clone();
        audit.target = format!("follower_check_run:{}", row.id);
        write_audit(&txn, &audit, now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("start a follower check run"))?;
        Ok(row.id)
    }

    /// Saves a run's counts, list and resume point (as it goes, and at its end).
    pub async fn save_check_run(
        &self,
        id: i64,
        progress: &CheckProgress<'_>,
    ) -> Result<(), StoreError> {
        let counts = progress.counts;
        let non_compliant = serde_json::to_value(progress.non_compliant)
            .map_err(|_| StoreError::Inconsistent("openids that are not JSON strings"))?;
        let updated = runs::Entity::update_many()
            .col_expr(runs::Column::Total, Expr::value(signed(counts.total)))
            .col_expr(runs::Column::Checked, Expr::value(signed(counts.checked)))
            .col_expr(runs::Column::Bound, Expr::value(signed(counts.bound)))
            .col_expr(
                runs::Column::Compliant,
                Expr::value(signed(counts.compliant)),
            )
            .col_expr(
                runs::Column::WithinGrace,
                Expr::value(signed(counts.within_grace)),
            )
            .col_expr(runs::Column::LeftCount, Expr::value(signed(counts.left)))
            .col_expr(
                runs::Column::NonCompliantCount,
                Expr::value(signed(progress.non_compliant.len() as u64)),
            )
            .col_expr(runs::Column::ActedOn, Expr::value(signed(counts.acted_on)))
            .col_expr(
                runs::Column::RemarksCorrected,
                Expr::value(signed(counts.remarks_corrected)),
            )
            .col_expr(runs::Column::NonCompliant, Expr::value(non_compliant))
            .col_expr(
                runs::Column::Stopped,
                Expr::value(progress.stopped.map(str::to_owned)),
            )
            .col_expr(
                runs::Column::ResumeAfter,
                Expr::value(progress.resume_after.map(str::to_owned)),
            )
            .col_expr(runs::Column::FinishedAt, Expr::value(progress.finished_at))
            .filter(runs::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(StoreError::query("save a follower check run"))?;
        if updated.rows_affected != 1 {
            return Err(StoreError::Inconsistent(
                "a follower check run without its row",
            ));
        }
        Ok(())
    }

    /// The runs, newest first, and how many there are in all; without their lists of
    /// openids (`non_compliant` is empty; `non_compliant_count` says how many).
    pub async fn check_runs(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<CheckRunRecord>, u64), StoreError> {
        let total = runs::Entity::find()
            .count(&self.db)
            .await
            .map_err(StoreError::query("count follower check runs"))?;
        // Each row's list can hold thousands of openids: a listing leaves them out.
        let without_list =
            runs::Column::iter().filter(|column| !matches!(column, runs::Column::NonCompliant));
        let rows = runs::Entity::find()
            .select_only()
            .columns(without_list)
            .column_as(Expr::value(serde_json::json!([])), "non_compliant")
            .order_by_desc(runs::Column::Id)
            .offset(offset)
            .limit(limit.max(1))
            .into_model::<runs::Model>()
            .all(&self.db)
            .await
            .map_err(StoreError::query("list follower check runs"))?;
        let mut resumed = self.resumed_after(&rows).await?;
        let records = rows
            .into_iter()
            .map(|row| {
                let resumed_after = resumed.remove(&row.id).flatten();
                CheckRunRecord::from_row(row, resumed_after)
            })
            .collect();
        Ok((records, total))
    }

    pub async fn check_run(&self, id: i64) -> Result<Option<CheckRunRecord>, StoreError> {
        let Some(row) = runs::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a follower check run"))?
        else {
            return Ok(None);
        };
        let mut resumed = self.resumed_after(std::slice::from_ref(&row)).await?;
        let resumed_after = resumed.remove(&row.id).flatten();
        Ok(Some(CheckRunRecord::from_row(row, resumed_after)))
    }

    /// For each real run among `rows`, where it started: a real run starts after the
    /// resume point of the real run before it.
    async fn resumed_after(
        &self,
        rows: &[runs::Model],
    ) -> Result<HashMap<i64, Option<String>>, StoreError> {
        let real: Vec<i64> = rows
            .iter()
            .filter(|row| !row.dry_run)
            .map(|row| row.id)
            .collect();
        let Some(&newest) = real.iter().max() else {
            return Ok(HashMap::new());
        };
        // The real runs from the newest listed down, with one more: each one's
        // predecessor is the next in this list.
        let chain: Vec<(i64, Option<String>)> = runs::Entity::find()
            .select_only()
            .column(runs::Column::Id)
            .column(runs::Column::ResumeAfter)
            .filter(runs::Column::DryRun.eq(false))
            .filter(runs::Column::Id.lte(newest))
            .order_by_desc(runs::Column::Id)
            .limit(real.len() as u64 + 1)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find where follower check runs started"))?;
        let mut started = HashMap::new();
        for pair in chain.windows(2) {
            started.insert(pair[0].0, pair[1].1.clone());
        }
        Ok(started)
    }
}

/// Every ending of the remark (without whitespace) up to [`NAME_MAX_CHARS`].
fn name_suffixes(remark: &str) -> Vec<String> {
    let chars: Vec<char> = remark.chars().filter(|c| !c.is_whitespace()).collect();
    (1..=chars.len().min(NAME_MAX_CHARS))
        .map(|length| chars[chars.len() - length..].iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_skip_whitespace_and_stop_at_the_longest_name() {
        assert_eq!(name_suffixes("18 张三"), ["三", "张三", "8张三", "18张三"]);
        assert!(name_suffixes("").is_empty());
        assert_eq!(name_suffixes(&"啊".repeat(30)).len(), NAME_MAX_CHARS);
    }
}
