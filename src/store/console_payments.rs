//! What the console shows of payments: orders filtered by state, channel, day and
//! number (a page, its totals, or all of them in chunks for the export), one order
//! with its items and notifications, and the exceptions the office resolves with a
//! note.
//!
//! A resolution is a conditional update (only an unresolved exception matches), so
//! two admins resolving the same one at once cannot both win; its audit row is
//! written in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, Func};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select,
};
use serde_json::json;

use super::audit::write_audit;
use super::entities::{orders, payment_notifications, refunds, students};
use super::{
    AuditEntry, NotificationChannel, NotificationVerdict, OrderLine, OrderStatus, PaymentChannel,
    RefundStatus, Store, StoreError,
};

/// Which orders to list. Every part is optional; they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub status: Option<OrderStatus>,
    pub channel: Option<PaymentChannel>,
    /// Created at or after this moment.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this moment.
    pub created_before: Option<DateTime<Utc>>,
    /// Part of our order number or of the channel's transaction number.
    pub number: Option<String>,
}

/// One order as the console lists it, with who it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub id: i64,
    pub out_trade_no: String,
    pub student_id: i64,
    pub student_name: String,
    /// The full ID number: the pages and the export mask it.
    pub id_card: String,
    pub grade: i32,
    pub class_name: String,
    pub channel: PaymentChannel,
    pub amount_fen: i64,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub channel_trade_no: Option<String>,
    pub exception: Option<String>,
    pub resolution: Option<Resolution>,
}

/// How the office settled an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub at: DateTime<Utc>,
    pub by: String,
    pub note: String,
}

/// What a filter selects in all: how many orders, and how many of them are paid and
/// for how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentTotals {
    pub orders: u64,
    pub paid_orders: u64,
    pub paid_fen: i64,
    /// Given back (or on its way back: every refund that has not failed) from the paid
    /// orders counted in `paid_fen`; what was kept is the difference.
    pub refunded_fen: i64,
}

impl PaymentTotals {
    /// What the paid orders brought in and the school still holds.
    pub fn kept_fen(&self) -> i64 {
        self.paid_fen - self.refunded_fen
    }
}

/// One order in full, for its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDetail {
    pub order: PaymentRow,
    pub description: Option<String>,
    pub payer_openid: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub lines: Vec<OrderLine>,
    pub notifications: Vec<NotificationRecord>,
}

/// A notification as received, with our verdict and, for a refused one, the office's
/// resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: i64,
    pub channel: NotificationChannel,
    pub out_trade_no: Option<String>,
    pub order_id: Option<i64>,
    pub received_at: DateTime<Utc>,
    pub verdict: NotificationVerdict,
    pub reason: Option<String>,
    pub raw_body: String,
    pub resolution: Option<Resolution>,
}

/// Exceptions to show: the newest `limit` of each kind, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExceptionList {
    pub orders: Vec<PaymentRow>,
    pub orders_total: u64,
    pub notifications: Vec<NotificationRecord>,
    pub notifications_total: u64,
}

/// What resolving an exception came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveOutcome {
    Resolved,
    /// Someone resolved it before: nothing changed.
    AlreadyResolved,
    /// No such exception (no such row, or nothing to resolve on it).
    NotFound,
}

fn resolution(
    at: Option<DateTime<Utc>>,
    by: Option<String>,
    note: Option<String>,
) -> Option<Resolution> {
    at.map(|at| Resolution {
        at,
        by: by.unwrap_or_default(),
        note: note.unwrap_or_default(),
    })
}

fn payment_row(order: orders::Model, student: Option<students::Model>) -> PaymentRow {
    let (student_name, id_card, grade, class_name) = match student {
        Some(student) => (
            student.name,
            student.id_card,
            student.grade,
            student.class_name,
        ),
        None => Default::default(),
    };
    PaymentRow {
        id: order.id,
        out_trade_no: order.out_trade_no,
        student_id: order.student_id,
        student_name,
        id_card,
        grade,
        class_name,
        channel: order.channel,
        amount_fen: order.amount_fen,
        status: order.status,
        created_at: order.created_at,
        paid_at: order.paid_at,
        closed_at: order.closed_at,
        channel_trade_no: order.channel_trade_no,
        exception: order.exception,
        resolution: resolution(
            order.exception_resolved_at,
            order.exception_resolved_by,
            order.exception_note,
        ),
    }
}

impl From<payment_notifications::Model> for NotificationRecord {
    fn from(row: payment_notifications::Model) -> NotificationRecord {
        NotificationRecord {
            id: row.id,
            channel: row.channel,
            out_trade_no: row.out_trade_no,
            order_id: row.order_id,
            received_at: row.received_at,
            verdict: row.verdict,
            reason: row.reason,
            raw_body: row.raw_body,
            resolution: resolution(row.resolved_at, row.resolved_by, row.resolution_note),
        }
    }
}

/// `select` narrowed to the orders `filter` selects.
fn filtered(mut select: Select<orders::Entity>, filter: &PaymentFilter) -> Select<orders::Entity> {
    if let Some(status) = filter.status {
        select = select.filter(orders::Column::Status.eq(status));
    }
    if let Some(channel) = filter.channel {
        select = select.filter(orders::Column::Channel.eq(channel));
    }
    if let Some(from) = filter.created_from {
        select = select.filter(orders::Column::CreatedAt.gte(from));
    }
    if let Some(before) = filter.created_before {
        select = select.filter(orders::Column::CreatedAt.lt(before));
    }
    if let Some(number) = &filter.number {
        select = select.filter(
            Condition::any()
                .add(orders::Column::OutTradeNo.contains(number.as_str()))
                .add(orders::Column::ChannelTradeNo.contains(number.as_str())),
        );
    }
    select
}

/// `CAST(COALESCE(SUM(expr), 0) AS BIGINT)`: PostgreSQL sums BIGINT into NUMERIC,
/// and an empty sum is NULL.
pub(super) fn bigint_sum(expr: impl Into<Expr>) -> Expr {
    Func::cast_as(
        Func::coalesce([Func::sum(expr).into(), Expr::val(0i64)]),
        Alias::new("BIGINT"),
    )
    .into()
}

impl Store {
    /// A page of the orders `filter` selects, newest first, with their students.
    pub async fn payments_page(
        &self,
        filter: &PaymentFilter,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let rows = filtered(orders::Entity::find(), filter)
            .find_also_related(students::Entity)
            .order_by_desc(orders::Column::CreatedAt)
            .order_by_desc(orders::Column::Id)
            .limit(limit.max(1))
            .offset(offset)
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list payments"))?;
        Ok(rows
            .into_iter()
            .map(|(order, student)| payment_row(order, student))
            .collect())
    }

    /// Up to `limit` of the orders `filter` selects whose id is above `after_id`, by
    /// id: the export reads all of them this way, a chunk at a time.
    pub async fn payments_after(
        &self,
        filter: &PaymentFilter,
        after_id: i64,
        limit: u64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let rows = filtered(orders::Entity::find(), filter)
            .filter(orders::Column::Id.gt(after_id))
            .find_also_related(students::Entity)
            .order_by_asc(orders::Column::Id)
            .limit(limit.max(1))
            .all(&self.reads)
            .await
            .map_err(StoreError::query("read payments for the export"))?;
        Ok(rows
            .into_iter()
            .map(|(order, student)| payment_row(order, student))
            .collect())
    }

    /// How many orders `filter` selects, and the paid ones' count and sum: one query.
    pub async fn payments_totals(
        &self,
        filter: &PaymentFilter,
    ) -> Result<PaymentTotals, StoreError> {
        let paid = || orders::Column::Status.eq(OrderStatus::Paid);
        let amount = Expr::col((orders::Entity, orders::Column::AmountFen));
        let totals: Option<(i64, i64, i64)> = filtered(orders::Entity::find(), filter)
            .select_only()
            .expr_as(
                Func::count(Expr::col((orders::Entity, orders::Column::Id))),
                "orders",
            )
            .expr_as(
                bigint_sum(Expr::case(paid(), Expr::val(1i64)).finally(Expr::val(0i64))),
                "paid_orders",
            )
            .expr_as(
                bigint_sum(Expr::case(paid(), amount).finally(Expr::val(0i64))),
                "paid_fen",
            )
            .into_tuple()
            .one(&self.reads)
            .await
            .map_err(StoreError::query("total payments"))?;
        let (orders, paid_orders, paid_fen) = totals.unwrap_or_default();
        // Refunds count as given back from the moment they are recorded (issue 13), so
        // the total never says more was kept than was.
        let paid_ids = filtered(orders::Entity::find(), filter)
            .filter(paid())
            .select_only()
            .column(orders::Column::Id)
            .into_query();
        let refunded_fen: Option<i64> = refunds::Entity::find()
            .filter(refunds::Column::OrderId.in_subquery(paid_ids))
            .filter(refunds::Column::Status.ne(RefundStatus::Failed))
            .select_only()
            .expr_as(
                bigint_sum(Expr::col((refunds::Entity, refunds::Column::AmountFen))),
                "refunded_fen",
            )
            .into_tuple()
            .one(&self.reads)
            .await
            .map_err(StoreError::query("total refunds of payments"))?;
        Ok(PaymentTotals {
            orders: u64::try_from(orders).unwrap_or_default(),
            paid_orders: u64::try_from(paid_orders).unwrap_or_default(),
            paid_fen,
            refunded_fen: refunded_fen.unwrap_or_default(),
        })
    }

    /// One order by its number, with its items and every notification about it
    /// (matched to it, or naming its number).
    pub async fn payment_detail(
        &self,
        out_trade_no: &str,
    ) -> Result<Option<PaymentDetail>, StoreError> {
        let Some((order, student)) = orders::Entity::find()
            .filter(orders::Column::OutTradeNo.eq(out_trade_no))
            .find_also_related(students::Entity)
            .one(&self.reads)
            .await
            .map_err(StoreError::query("find an order for the console"))?
        else {
            return Ok(None);
        };
        let description = order.description.clone();
        let payer_openid = order.payer_openid.clone();
        let expires_at = order.expires_at;
        let order_id = order.id;
        let notifications = payment_notifications::Entity::find()
            .filter(
                Condition::any()
                    .add(payment_notifications::Column::OrderId.eq(order_id))
                    .add(payment_notifications::Column::OutTradeNo.eq(out_trade_no)),
            )
            .order_by_asc(payment_notifications::Column::ReceivedAt)
            .order_by_asc(payment_notifications::Column::Id)
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list an order's notifications"))?;
        Ok(Some(PaymentDetail {
            order: payment_row(order, student),
            description,
            payer_openid,
            expires_at,
            lines: self.order_lines(order_id).await?,
            notifications: notifications
                .into_iter()
                .map(NotificationRecord::from)
                .collect(),
        }))
    }

    /// Exceptions not yet resolved (`resolved` false) or resolved ones, newest first
    /// (by when they arose, or when they were resolved), `limit` of each kind.
    pub async fn payment_exceptions(
        &self,
        resolved: bool,
        limit: u64,
    ) -> Result<ExceptionList, StoreError> {
        let mut orders_query =
            orders::Entity::find().filter(orders::Column::Exception.is_not_null());
        let mut notifications_query = payment_notifications::Entity::find()
            .filter(payment_notifications::Column::Verdict.eq(NotificationVerdict::Refused));
        if resolved {
            orders_query = orders_query
                .filter(orders::Column::ExceptionResolvedAt.is_not_null())
                .order_by_desc(orders::Column::ExceptionResolvedAt);
            notifications_query = notifications_query
                .filter(payment_notifications::Column::ResolvedAt.is_not_null())
                .order_by_desc(payment_notifications::Column::ResolvedAt);
        } else {
            orders_query = orders_query
                .filter(orders::Column::ExceptionResolvedAt.is_null())
                .order_by_desc(orders::Column::UpdatedAt);
            notifications_query = notifications_query
                .filter(payment_notifications::Column::ResolvedAt.is_null())
                .order_by_desc(payment_notifications::Column::ReceivedAt);
        }
        let orders_total = orders_query
            .clone()
            .count(&self.reads)
            .await
            .map_err(StoreError::query("count order exceptions"))?;
        let notifications_total = notifications_query
            .clone()
            .count(&self.reads)
            .await
            .map_err(StoreError::query("count refused notifications"))?;
        let order_rows = orders_query
            .order_by_desc(orders::Column::Id)
            .find_also_related(students::Entity)
            .limit(limit.max(1))
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list order exceptions"))?;
        let notification_rows = notifications_query
            .order_by_desc(payment_notifications::Column::Id)
            .limit(limit.max(1))
            .all(&self.reads)
            .await
            .map_err(StoreError::query("list refused notifications"))?;
        Ok(ExceptionList {
            orders: order_rows
                .into_iter()
                .map(|(order, student)| payment_row(order, student))
                .collect(),
            orders_total,
            notifications: notification_rows
                .into_iter()
                .map(NotificationRecord::from)
                .collect(),
            notifications_total,
        })
    }

    /// Marks an order's exception resolved by `entry.actor` with `note`, once; the
    /// audit row (`entry`, given its before and after here) in the same transaction.
    pub async fn resolve_order_exception(
        &self,
        order_id: i64,
        note: &str,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<ResolveOutcome, StoreError> {
        let txn = self
            .begin_write("begin resolving an order exception")
            .await?;
        let Some(order) = orders::Entity::find_by_id(order_id)
            .one(&txn)
            .await
            .map_err(StoreError::query("read an order exception"))?
            .filter(|order| order.exception.is_some())
        else {
            return rolled_back(txn, ResolveOutcome::NotFound).await;
        };
        let updated = orders::Entity::update_many()
            .col_expr(orders::Column::ExceptionResolvedAt, Expr::value(Some(now)))
            .col_expr(
                orders::Column::ExceptionResolvedBy,
                Expr::value(Some(entry.actor.as_str())),
            )
            .col_expr(orders::Column::ExceptionNote, Expr::value(Some(note)))
            .filter(orders::Column::Id.eq(order_id))
            .filter(orders::Column::Exception.is_not_null())
            .filter(orders::Column::ExceptionResolvedAt.is_null())
            .exec(&txn)
            .await
            .map_err(StoreError::query("resolve an order exception"))?;
        if updated.rows_affected != 1 {
            return rolled_back(txn, ResolveOutcome::AlreadyResolved).await;
        }
        let actor = entry.actor.clone();
        let entry = entry
            .before(json!({
                "out_trade_no": order.out_trade_no,
                "status": format!("{:?}", order.status).to_lowercase(),
                "exception": order.exception,
                "resolved_at": null,
            }))
            .after(json!({
                "out_trade_no": order.out_trade_no,
                "exception": order.exception,
                "resolved_at": now,
                "resolved_by": actor,
                "note": note,
            }));
        write_audit(&txn, &entry, now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit resolving an order exception"))?;
        Ok(ResolveOutcome::Resolved)
    }

    /// Marks a refused notification resolved by `entry.actor` with `note`, once; the
    /// audit row in the same transaction.
    pub async fn resolve_notification(
        &self,
        notification_id: i64,
        note: &str,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<ResolveOutcome, StoreError> {
        let txn = self.begin_write("begin resolving a notification").await?;
        let Some(notification) = payment_notifications::Entity::find_by_id(notification_id)
            .one(&txn)
            .await
            .map_err(StoreError::query("read a refused notification"))?
            .filter(|row| row.verdict == NotificationVerdict::Refused)
        else {
            return rolled_back(txn, ResolveOutcome::NotFound).await;
        };
        let updated = payment_notifications::Entity::update_many()
            .col_expr(
                payment_notifications::Column::ResolvedAt,
                Expr::value(Some(now)),
            )
            .col_expr(
                payment_notifications::Column::ResolvedBy,
                Expr::value(Some(entry.actor.as_str())),
            )
            .col_expr(
                payment_notifications::Column::ResolutionNote,
                Expr::value(Some(note)),
            )
            .filter(payment_notifications::Column::Id.eq(notification_id))
            .filter(payment_notifications::Column::Verdict.eq(NotificationVerdict::Refused))
            .filter(payment_notifications::Column::ResolvedAt.is_null())
            .exec(&txn)
            .await
            .map_err(StoreError::query("resolve a notification"))?;
        if updated.rows_affected != 1 {
            return rolled_back(txn, ResolveOutcome::AlreadyResolved).await;
        }
        let actor = entry.actor.clone();
        let entry = entry
            .before(json!({
                "out_trade_no": notification.out_trade_no,
                "reason": notification.reason,
                "received_at": notification.received_at,
                "resolved_at": null,
            }))
            .after(json!({
                "out_trade_no": notification.out_trade_no,
                "reason": notification.reason,
                "resolved_at": now,
                "resolved_by": actor,
                "note": note,
            }));
        write_audit(&txn, &entry, now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit resolving a notification"))?;
        Ok(ResolveOutcome::Resolved)
    }
}

async fn rolled_back(
    txn: DatabaseTransaction,
    outcome: ResolveOutcome,
) -> Result<ResolveOutcome, StoreError> {
    txn.rollback()
        .await
        .map_err(StoreError::query("roll back a resolution"))?;
    Ok(outcome)
}
