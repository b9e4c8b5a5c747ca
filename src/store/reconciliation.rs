//! Reconciliation with the channels' bills: our side of a day (the orders paid on it
//! through a channel, and the orders a bill names), and each run's report in
//! `reconciliation_runs` with every line that did not simply agree in
//! `reconciliation_lines`.
//!
//! A run's row is written when it starts (`running`, with its audit row), and closed
//! once: `done` with its counts and lines in one transaction, or `failed` with why.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::audit::write_audit;
use super::entities::reconciliation_runs::RunStatus;
use super::entities::{
    orders, reconciliation_lines as lines, reconciliation_runs as runs, refunds,
};
use super::{
    AuditEntry, OrderRecord, OrderStatus, PaymentChannel, RefundRecord, RefundStatus, Store,
    StoreError,
};

/// `IN (…)` lists are cut to this many numbers (both backends' bound-parameter
/// limits are far above).
const NUMBERS_PER_QUERY: usize = 500;

/// A run as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReconciliationRun<'a> {
    /// `wechat`, `alipay` or `abc`.
    pub channel: &'a str,
    /// `YYYY-MM-DD` (Beijing).
    pub bill_date: &'a str,
    /// An admin's username, `cli` or `schedule`.
    pub actor: &'a str,
}

/// What a run counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconciliationCounts {
    /// Lines in the bill (payments and refunds).
    pub bill_lines: i64,
    pub matched: i64,
    pub applied: i64,
    pub missing_at_channel: i64,
    pub amount_mismatch: i64,
    pub unknown_at_us: i64,
}

/// A line that did not simply agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationLine {
    /// `applied`, `missing_at_channel`, `amount_mismatch`, `unknown_at_us`, or
    /// `exception` (applying it left the order for the office: a second payment); for
    /// a refund line, `refund_applied`, `refund_missing_at_channel`,
    /// `refund_amount_mismatch`, `refund_unknown_at_us` (the note names the refund).
    pub kind: String,
    pub out_trade_no: String,
    pub channel_trade_no: Option<String>,
    pub our_amount_fen: Option<i64>,
    pub channel_amount_fen: Option<i64>,
    pub note: Option<String>,
}

/// A run as the console and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationRunRecord {
    pub id: i64,
    pub channel: String,
    pub bill_date: String,
    pub actor: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub counts: ReconciliationCounts,
    pub error: Option<String>,
}

impl From<runs::Model> for ReconciliationRunRecord {
    fn from(row: runs::Model) -> Self {
        ReconciliationRunRecord {
            id: row.id,
            channel: row.channel,
            bill_date: row.bill_date,
            actor: row.actor,
            started_at: row.started_at,
            finished_at: row.finished_at,
            status: row.status,
            counts: ReconciliationCounts {
                bill_lines: row.bill_lines,
                matched: row.matched,
                applied: row.applied,
                missing_at_channel: row.missing_at_channel,
                amount_mismatch: row.amount_mismatch,
                unknown_at_us: row.unknown_at_us,
            },
            error: row.error,
        }
    }
}

impl From<lines::Model> for ReconciliationLine {
    fn from(row: lines::Model) -> Self {
        ReconciliationLine {
            kind: row.kind,
            out_trade_no: row.out_trade_no,
            channel_trade_no: row.channel_trade_no,
            our_amount_fen: row.our_amount_fen,
            channel_amount_fen: row.channel_amount_fen,
            note: row.note,
        }
    }
}

impl Store {
    /// Orders on `kinds` paid (and possibly refunded since) within `[from, to)`.
    pub async fn orders_paid_between(
        &self,
        kinds: &[PaymentChannel],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows = orders::Entity::find()
            .filter(orders::Column::Channel.is_in(kinds.iter().copied()))
            .filter(orders::Column::Status.is_in([OrderStatus::Paid, OrderStatus::Refunded]))
            .filter(orders::Column::PaidAt.gte(from))
            .filter(orders::Column::PaidAt.lt(to))
            .order_by_asc(orders::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list the orders paid on a day"))?;
        Ok(rows.into_iter().map(OrderRecord::from).collect())
    }

    /// Our orders with any of these numbers, whatever their day or status.
    pub async fn orders_numbered(&self, numbers: &[&str]) -> Result<Vec<OrderRecord>, StoreError> {
        let mut found = Vec::new();
        for chunk in numbers.chunks(NUMBERS_PER_QUERY) {
            let rows = orders::Entity::find()
                .filter(orders::Column::OutTradeNo.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(StoreError::query("find the orders a bill names"))?;
            found.extend(rows.into_iter().map(OrderRecord::from));
        }
        Ok(found)
    }

    /// Our refunds of orders on `kinds` that succeeded within `[from, to)`, each with
    /// its order's number.
    pub async fn refunds_succeeded_between(
        &self,
        kinds: &[PaymentChannel],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(RefundRecord, String)>, StoreError> {
        let rows = refunds::Entity::find()
            .filter(refunds::Column::Status.eq(RefundStatus::Succeeded))
            .filter(refunds::Column::FinishedAt.gte(from))
            .filter(refunds::Column::FinishedAt.lt(to))
            .order_by_asc(refunds::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list the refunds succeeded on a day"))?;
        let found = self.with_order_numbers(rows).await?;
        Ok(found
            .into_iter()
            .filter(|(_, channel, _)| kinds.contains(channel))
            .map(|(refund, _, number)| (refund, number))
            .collect())
    }

    /// Our refunds with any of these refund numbers, whatever their day or status,
    /// each with its order's number.
    pub async fn refunds_numbered(
        &self,
        numbers: &[&str],
    ) -> Result<Vec<(RefundRecord, String)>, StoreError> {
        let mut rows = Vec::new();
        for chunk in numbers.chunks(NUMBERS_PER_QUERY) {
            rows.extend(
                refunds::Entity::find()
                    .filter(refunds::Column::OutRefundNo.is_in(chunk.iter().copied()))
                    .order_by_asc(refunds::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(StoreError::query("find the refunds a bill names"))?,
            );
        }
        let found = self.with_order_numbers(rows).await?;
        Ok(found
            .into_iter()
            .map(|(refund, _, number)| (refund, number))
            .collect())
    }

    /// Each refund with its order's channel and number.
    async fn with_order_numbers(
        &self,
        rows: Vec<refunds::Model>,
    ) -> Result<Vec<(RefundRecord, PaymentChannel, String)>, StoreError> {
        let ids: Vec<i64> = rows.iter().map(|row| row.order_id).collect();
        let mut orders_by_id = std::collections::HashMap::new();
        for chunk in ids.chunks(NUMBERS_PER_QUERY) {
            let found = orders::Entity::find()
                .filter(orders::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(StoreError::query("read the orders of refunds"))?;
            orders_by_id.extend(found.into_iter().map(|order| (order.id, order)));
        }
        rows.into_iter()
            .map(|row| {
                let order = orders_by_id
                    .get(&row.order_id)
                    .ok_or(StoreError::Inconsistent("a refund without its order"))?;
                Ok((
                    RefundRecord::from(row),
                    order.channel,
                    order.out_trade_no.clone(),
                ))
            })
            .collect()
    }

    /// Records a run's start (`running`) with its audit row, whose target becomes the
    /// run, in one transaction; returns the run's id.
    pub async fn start_reconciliation_run(
        &self,
        run: &NewReconciliationRun<'_>,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let txn = self.begin_write("start a reconciliation run").await?;
        let row = runs::ActiveModel {
            channel: Set(run.channel.to_owned()),
            bill_date: Set(run.bill_date.to_owned()),
            actor: Set(run.actor.to_owned()),
            started_at: Set(now),
            finished_at: Set(None),
            status: Set(RunStatus::Running),
            bill_lines: Set(0),
            matched: Set(0),
            applied: Set(0),
            missing_at_channel: Set(0),
            amount_mismatch: Set(0),
            unknown_at_us: Set(0),
            error: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(StoreError::query("start a reconciliation run"))?;
        let mut audit = audit.clone();
        audit.target = format!("reconciliation_run:{}", row.id);
        write_audit(&txn, &audit, now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("start a reconciliation run"))?;
        Ok(row.id)
    }

    /// Closes a running run as `done`, with its counts and lines, in one transaction.
    pub async fn finish_reconciliation_run(
        &self,
        id: i64,
        counts: &ReconciliationCounts,
        found: &[ReconciliationLine],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write("finish a reconciliation run").await?;
        let updated = runs::Entity::update_many()
            .col_expr(runs::Column::Status, Expr::value(RunStatus::Done))
            .col_expr(runs::Column::FinishedAt, Expr::value(Some(now)))
            .col_expr(runs::Column::BillLines, Expr::value(counts.bill_lines))
            .col_expr(runs::Column::Matched, Expr::value(counts.matched))
            .col_expr(runs::Column::Applied, Expr::value(counts.applied))
            .col_expr(
                runs::Column::MissingAtChannel,
                Expr::value(counts.missing_at_channel),
            )
            .col_expr(
                runs::Column::AmountMismatch,
                Expr::value(counts.amount_mismatch),
            )
            .col_expr(runs::Column::UnknownAtUs, Expr::value(counts.unknown_at_us))
            .filter(runs::Column::Id.eq(id))
            .filter(runs::Column::Status.eq(RunStatus::Running))
            .exec(&txn)
            .await
            .map_err(StoreError::query("finish a reconciliation run"))?;
        if updated.rows_affected != 1 {
            return Err(StoreError::Inconsistent(
                "a reconciliation run finished twice or without its row",
            ));
        }
        if !found.is_empty() {
            let rows = found.iter().map(|line| lines::ActiveModel {
                run_id: Set(id),
                kind: Set(line.kind.clone()),
                out_trade_no: Set(line.out_trade_no.clone()),
                channel_trade_no: Set(line.channel_trade_no.clone()),
                our_amount_fen: Set(line.our_amount_fen),
                channel_amount_fen: Set(line.channel_amount_fen),
                note: Set(line.note.clone()),
                ..Default::default()
            });
            lines::Entity::insert_many(rows)
                .exec(&txn)
                .await
                .map_err(StoreError::query("store a reconciliation run's lines"))?;
        }
        txn.commit()
            .await
            .map_err(StoreError::query("finish a reconciliation run"))
    }

    /// Closes a running run as `failed`, saying why.
    pub async fn fail_reconciliation_run(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        runs::Entity::update_many()
            .col_expr(runs::Column::Status, Expr::value(RunStatus::Failed))
            .col_expr(runs::Column::FinishedAt, Expr::value(Some(now)))
            .col_expr(runs::Column::Error, Expr::value(Some(error)))
            .filter(runs::Column::Id.eq(id))
            .filter(runs::Column::Status.eq(RunStatus::Running))
            .exec(&self.db)
            .await
            .map_err(StoreError::query("record a failed reconciliation run"))?;
        Ok(())
    }

    /// The runs, newest first, and how many there are in all.
    pub async fn reconciliation_runs(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<ReconciliationRunRecord>, u64), StoreError> {
        let total = runs::Entity::find()
            .count(&self.db)
            .await
            .map_err(StoreError::query("count reconciliation runs"))?;
        let rows = runs::Entity::find()
            .order_by_desc(runs::Column::Id)
            .offset(offset)
            .limit(limit.max(1))
            .all(&self.db)
            .await
            .map_err(StoreError::query("list reconciliation runs"))?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    pub async fn reconciliation_run(
        &self,
        id: i64,
    ) -> Result<Option<ReconciliationRunRecord>, StoreError> {
        let row = runs::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a reconciliation run"))?;
        Ok(row.map(Into::into))
    }

    /// A run's lines, in the order they were found.
    pub async fn reconciliation_lines(
        &self,
        run_id: i64,
    ) -> Result<Vec<ReconciliationLine>, StoreError> {
        let rows = lines::Entity::find()
            .filter(lines::Column::RunId.eq(run_id))
            .order_by_asc(lines::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list a reconciliation run's lines"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
