//! Orders and the fee items they hold: taking items into an order (exclusively),
//! releasing them when an order closes, applying a payment exactly once, and the
//! notifications channels sent.
//!
//! Every change of an item's status is a conditional update whose row count is
//! checked, inside a transaction: two requests for the same items, or ten copies of
//! the same notification, cannot both win.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{fee_items, order_items, orders, payment_notifications};
use super::fees::{fee_state, payable_condition};
use super::receipts::new_receipt_code;
use super::{
    FeeItemStatus, NotificationChannel, NotificationVerdict, OrderStatus, PaymentChannel, Store,
    StoreError,
};
use crate::domain::fee_item::payable_now;
use crate::domain::money::Fen;
use crate::domain::order::{OrderState, PaymentVerdict, judge_payment};

/// An order as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub id: i64,
    pub out_trade_no: String,
    pub student_id: i64,
    pub channel: PaymentChannel,
    pub amount_fen: i64,
    pub status: OrderStatus,
    pub channel_trade_no: Option<String>,
    pub payer_openid: Option<String>,
    pub description: String,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the channel was last asked about it (the query job, a waiting page).
    pub last_queried_at: Option<DateTime<Utc>>,
    pub exception: Option<String>,
    /// The page request that created it (`X-Request-Id`), for following it in the logs.
    pub request_id: Option<String>,
}

impl From<orders::Model> for OrderRecord {
    fn from(row: orders::Model) -> OrderRecord {
        OrderRecord {
            id: row.id,
            out_trade_no: row.out_trade_no,
            student_id: row.student_id,
            channel: row.channel,
            amount_fen: row.amount_fen,
            status: row.status,
            channel_trade_no: row.channel_trade_no,
            payer_openid: row.payer_openid,
            description: row.description.unwrap_or_default(),
            expires_at: row.expires_at,
            paid_at: row.paid_at,
            closed_at: row.closed_at,
            created_at: row.created_at,
            last_queried_at: row.last_queried_at,
            exception: row.exception,
            request_id: row.request_id,
        }
    }
}

/// One line of an order: the item and what the order charges for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub fee_item_id: i64,
    pub academic_year: String,
    pub item: String,
    pub amount_fen: i64,
}

/// What a new order is to be.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub out_trade_no: &'a str,
    pub student_id: i64,
    pub channel: PaymentChannel,
    pub item_ids: &'a [i64],
    pub payer_openid: Option<&'a str>,
    pub description: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The page request asking for it (`X-Request-Id`), kept for the logs.
    pub request_id: Option<&'a str>,
}

/// What asking for an order for some items came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOutcome {
    /// A new order now holds the items.
    Created(OrderRecord),
    /// The same student asked again for the same items on the same channel: the order
    /// that already holds them.
    Existing(OrderRecord),
    /// Some items are held by other open orders, which must be closed at their
    /// channel first.
    Blocked(Vec<OrderRecord>),
    /// Some items are not the student's, or no longer payable (paid, waived…).
    Unavailable,
}

/// A verified report from a channel that an order was paid.
#[derive(Debug, Clone)]
pub struct PaymentReport<'a> {
    pub out_trade_no: &'a str,
    pub channel_trade_no: &'a str,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
    pub payer_openid: Option<&'a str>,
}

/// What applying a payment report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The order and its items are now paid.
    Applied(OrderRecord),
    /// Already applied (a duplicate): nothing changed.
    AlreadyApplied(OrderRecord),
    /// Paid after we closed it; recorded as an exception for the finance office.
    /// `settled`: the items were still unpaid and are now paid by it; otherwise they
    /// were paid by another order (a true duplicate, to refund) or changed (waived).
    /// `repeated`: this payment was already recorded on the order (a copy of the
    /// report), so it is not news for the office a second time.
    PaidAfterClose {
        order: OrderRecord,
        settled: bool,
        repeated: bool,
    },
    /// Paid after we closed it, while other open orders (`holders`) hold its items:
    /// recorded on the order; the caller closes the holders and applies it again.
    /// `repeated` as for `PaidAfterClose`.
    PaidWhileHeld {
        order: OrderRecord,
        holders: Vec<OrderRecord>,
        repeated: bool,
    },
    /// The amount differs from the order's: refused and recorded.
    AmountMismatch(OrderRecord),
    /// A second payment for a paid or refunded order: recorded. `repeated`: the same
    /// second payment was already noted (a copy of its report).
    Conflicting { order: OrderRecord, repeated: bool },
    /// No such order of ours.
    UnknownOrder,
}

/// What the office's "apply this payment to its items" came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlaggedOutcome {
    /// The order and its items are now paid by the payment.
    Applied(Box<OrderRecord>),
    /// Not a closed order holding a payment (paid meanwhile, never paid, no such order).
    NotFlagged,
    /// Its items are not all owed: paid by another order, held, waived. The reason.
    ItemsNotOwed(&'static str),
}

/// A notification as received, with our verdict.
#[derive(Debug, Clone)]
pub struct ReceivedNotification<'a> {
    pub channel: NotificationChannel,
    pub out_trade_no: Option<&'a str>,
    /// The order it matched, when the caller already knows it.
    pub order_id: Option<i64>,
    pub headers: &'a str,
    pub raw_body: &'a str,
    pub verdict: NotificationVerdict,
    pub reason: Option<&'a str>,
    pub received_at: DateTime<Utc>,
}

impl Store {
    /// Takes the student's items into a new order, exclusively; or returns the open
    /// order that already holds exactly them; or says what stands in the way.
    pub async fn take_items_into_order(
        &self,
        new: &NewOrder<'_>,
    ) -> Result<TakeOutcome, StoreError> {
        if new.item_ids.is_empty() {
            return Ok(TakeOutcome::Unavailable);
        }
        let txn = self.begin_write("begin taking items").await?;
        let outcome = take_items(&txn, new).await?;
        let keep = matches!(outcome, TakeOutcome::Created(_));
        commit_if(txn, keep, "commit a new order", "roll back taking items").await?;
        Ok(outcome)
    }

    /// Closes an open order and gives its items back (after the channel closed it).
    /// False when the order was no longer open (paid meanwhile, or closed already).
    pub async fn release_order(
        &self,
        order_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin_write("begin releasing an order").await?;
        let closed = orders::Entity::update_many()
            .col_expr(orders::Column::Status, Expr::value(OrderStatus::Closed))
            .col_expr(orders::Column::ClosedAt, Expr::value(Some(now)))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now))
            .filter(orders::Column::Id.eq(order_id))
            .filter(orders::Column::Status.eq(OrderStatus::Created))
            .exec(&txn)
            .await
            .map_err(StoreError::query("close an order"))?;
        if closed.rows_affected != 1 {
            txn.rollback()
                .await
                .map_err(StoreError::query("roll back releasing"))?;
            return Ok(false);
        }
        let item_ids = item_ids_of(&txn, order_id).await?;
        fee_items::Entity::update_many()
            .col_expr(
                fee_items::Column::Status,
                Expr::value(FeeItemStatus::Unpaid),
            )
            .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
            .filter(fee_items::Column::Id.is_in(item_ids))
            .filter(fee_items::Column::Status.eq(FeeItemStatus::InOrder))
            .exec(&txn)
            .await
            .map_err(StoreError::query("release an order's items"))?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit releasing an order"))?;
        Ok(true)
    }

    /// Applies a verified payment report, exactly once however many copies arrive
    /// and however concurrently.
    pub async fn apply_payment(
        &self,
        report: &PaymentReport<'_>,
        now: DateTime<Utc>,
    ) -> Result<ApplyOutcome, StoreError> {
        let txn = self.begin_write("begin applying a payment").await?;
        let outcome = apply_in(&txn, report, now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit a payment"))?;
        Ok(outcome)
    }

    /// The office applies a payment flagged on a closed order (money received after we
    /// closed it) to the order's items, when every one of them is still owed and no
    /// other order paid them; the exception is resolved and the audit row written in
    /// the same transaction.
    pub async fn apply_flagged_payment(
        &self,
        order_id: i64,
        entry: super::audit::AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<FlaggedOutcome, StoreError> {
        let txn = self.begin_write("begin applying a flagged payment").await?;
        let outcome = apply_flagged_in(&txn, order_id, entry, now).await?;
        let keep = matches!(outcome, FlaggedOutcome::Applied(_));
        commit_if(
            txn,
            keep,
            "commit applying a flagged payment",
            "roll back applying a flagged payment",
        )
        .await?;
        Ok(outcome)
    }

    pub async fn find_order(&self, out_trade_no: &str) -> Result<Option<OrderRecord>, StoreError> {
        let row = orders::Entity::find()
            .filter(orders::Column::OutTradeNo.eq(out_trade_no))
            .one(&self.db)
            .await
            .map_err(StoreError::query("find an order"))?;
        Ok(row.map(OrderRecord::from))
    }

    /// The items an order charges for, in the order they were taken.
    pub async fn order_lines(&self, order_id: i64) -> Result<Vec<OrderLine>, StoreError> {
        let rows = order_items::Entity::find()
            .filter(order_items::Column::OrderId.eq(order_id))
            .find_also_related(fee_items::Entity)
            .order_by_asc(order_items::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list an order's items"))?;
        Ok(rows
            .into_iter()
            .map(|(line, item)| OrderLine {
                fee_item_id: line.fee_item_id,
                academic_year: item
                    .as_ref()
                    .map(|i| i.academic_year.clone())
                    .unwrap_or_default(),
                item: item.map(|i| i.item).unwrap_or_default(),
                amount_fen: line.amount_fen,
            })
            .collect())
    }

    /// Closed orders with a payment that arrived while another order held their items
    /// (still unresolved), sharing an item with `order_id`.
    pub async fn late_payments_waiting_on(
        &self,
        order_id: i64,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let item_ids = item_ids_of(&self.db, order_id).await?;
        let rows = order_items::Entity::find()
            .filter(order_items::Column::FeeItemId.is_in(item_ids))
            .filter(order_items::Column::OrderId.ne(order_id))
            .find_also_related(orders::Entity)
            .all(&self.db)
            .await
            .map_err(StoreError::query("find payments waiting on an order"))?;
        let held_note = late_payment_note(LatePayment::Held);
        let mut waiting: Vec<orders::Model> = rows
            .into_iter()
            .filter_map(|(_, order)| order)
            .filter(|order| {
                order.status == OrderStatus::Closed
                    && order.exception.as_deref() == Some(held_note)
                    && order.exception_resolved_at.is_none()
                    && order.channel_trade_no.is_some()
                    && order.paid_at.is_some()
            })
            .collect();
        waiting.sort_by_key(|order| order.id);
        waiting.dedup_by_key(|order| order.id);
        Ok(waiting.into_iter().map(OrderRecord::from).collect())
    }

    /// The student's open orders on `channels`, newest first.
    pub async fn open_orders_of_student(
        &self,
        student_id: i64,
        channels: &[PaymentChannel],
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows = orders::Entity::find()
            .filter(orders::Column::StudentId.eq(student_id))
            .filter(orders::Column::Status.eq(OrderStatus::Created))
            .filter(orders::Column::Channel.is_in(channels.iter().copied()))
            .order_by_desc(orders::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list a student's open orders"))?;
        Ok(rows.into_iter().map(OrderRecord::from).collect())
    }

    /// Open orders whose time is up, oldest first.
    pub async fn expired_open_orders(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows = orders::Entity::find()
            .filter(orders::Column::Status.eq(OrderStatus::Created))
            .filter(orders::Column::ExpiresAt.lte(now))
            .order_by_asc(orders::Column::ExpiresAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list expired orders"))?;
        Ok(rows.into_iter().map(OrderRecord::from).collect())
    }

    /// Open orders made before `made_before` that the channel has not been asked about
    /// since `asked_before`: their notification may be lost.
    pub async fn open_orders_to_query(
        &self,
        made_before: DateTime<Utc>,
        asked_before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows = orders::Entity::find()
            .filter(orders::Column::Status.eq(OrderStatus::Created))
            .filter(orders::Column::CreatedAt.lte(made_before))
            .filter(
                Condition::any()
                    .add(orders::Column::LastQueriedAt.is_null())
                    .add(orders::Column::LastQueriedAt.lte(asked_before)),
            )
            .order_by_asc(orders::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list orders to query"))?;
        Ok(rows.into_iter().map(OrderRecord::from).collect())
    }

    pub async fn mark_order_queried(
        &self,
        order_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        orders::Entity::update_many()
            .col_expr(orders::Column::LastQueriedAt, Expr::value(Some(now)))
            .filter(orders::Column::Id.eq(order_id))
            .exec(&self.db)
            .await
            .map_err(StoreError::query("mark an order queried"))?;
        Ok(())
    }

    /// Stores a notification as received, whatever its verdict.
    pub async fn record_notification(
        &self,
        notification: &ReceivedNotification<'_>,
    ) -> Result<(), StoreError> {
        payment_notifications::ActiveModel {
            channel: Set(notification.channel),
            out_trade_no: Set(notification.out_trade_no.map(str::to_owned)),
            order_id: Set(notification.order_id),
            received_at: Set(notification.received_at),
            headers: Set(notification.headers.to_owned()),
            raw_body: Set(notification.raw_body.to_owned()),
            verdict: Set(notification.verdict),
            reason: Set(notification.reason.map(str::to_owned)),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .map_err(StoreError::query("record a notification"))?;
        Ok(())
    }

    /// How many notifications were stored with `verdict` (for tests and the console).
    pub async fn count_notifications(
        &self,
        verdict: NotificationVerdict,
    ) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        payment_notifications::Entity::find()
            .filter(payment_notifications::Column::Verdict.eq(verdict))
            .count(&self.db)
            .await
            .map_err(StoreError::query("count notifications"))
    }
}

async fn take_items(
    txn: &DatabaseTransaction,
    new: &NewOrder<'_>,
) -> Result<TakeOutcome, StoreError> {
    let items = fee_items::Entity::find()
        .filter(fee_items::Column::Id.is_in(new.item_ids.iter().copied()))
        .filter(fee_items::Column::StudentId.eq(new.student_id))
        .all(txn)
        .await
        .map_err(StoreError::query("read the items to order"))?;
    if items.len() != new.item_ids.len() {
        return Ok(TakeOutcome::Unavailable);
    }
    if items
        .iter()
        .any(|item| item.status == FeeItemStatus::InOrder)
    {
        return held_by_open_orders(txn, new).await;
    }
    // Unpaid, or deferred to a date that has passed (the rule of `domain::fee_item`).
    if items
        .iter()
        .any(|item| !payable_now(fee_state(item.status), item.deferred_until, new.now))
    {
        return Ok(TakeOutcome::Unavailable);
    }
    let taken = fee_items::Entity::update_many()
        .col_expr(
            fee_items::Column::Status,
            Expr::value(FeeItemStatus::InOrder),
        )
        .col_expr(fee_items::Column::UpdatedAt, Expr::value(new.now))
        .filter(fee_items::Column::Id.is_in(new.item_ids.iter().copied()))
        .filter(fee_items::Column::StudentId.eq(new.student_id))
        .filter(payable_condition(new.now))
        .exec(txn)
        .await
        .map_err(StoreError::query("take items into an order"))?;
    if taken.rows_affected != new.item_ids.len() as u64 {
        // Another request took some of them between our read and our update.
        return Ok(TakeOutcome::Unavailable);
    }
    let amount: Fen = items.iter().map(|item| Fen(item.amount_fen)).sum();
    let order = orders::ActiveModel {
        out_trade_no: Set(new.out_trade_no.to_owned()),
        student_id: Set(new.student_id),
        channel: Set(new.channel),
        amount_fen: Set(amount.0),
        status: Set(OrderStatus::Created),
        payer_openid: Set(new.payer_openid.map(str::to_owned)),
        description: Set(Some(new.description.to_owned())),
        request_id: Set(new.request_id.map(str::to_owned)),
        expires_at: Set(new.expires_at),
        created_at: Set(new.now),
        updated_at: Set(new.now),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(StoreError::query("insert an order"))?;
    let lines = items.iter().map(|item| order_items::ActiveModel {
        order_id: Set(order.id),
        fee_item_id: Set(item.id),
        amount_fen: Set(item.amount_fen),
        ..Default::default()
    });
    order_items::Entity::insert_many(lines)
        .exec(txn)
        .await
        .map_err(StoreError::query("insert an order's items"))?;
    Ok(TakeOutcome::Created(OrderRecord::from(order)))
}

/// Some items are in open orders: the one that holds exactly these items for this
/// channel and payer is handed back; otherwise the orders in the way are named.
async fn held_by_open_orders(
    txn: &DatabaseTransaction,
    new: &NewOrder<'_>,
) -> Result<TakeOutcome, StoreError> {
    let holding = order_items::Entity::find()
        .filter(order_items::Column::FeeItemId.is_in(new.item_ids.iter().copied()))
        .find_also_related(orders::Entity)
        .all(txn)
        .await
        .map_err(StoreError::query("find the orders holding items"))?;
    let mut open: Vec<orders::Model> = holding
        .into_iter()
        .filter_map(|(_, order)| order)
        .filter(|order| order.status == OrderStatus::Created)
        .collect();
    open.sort_by_key(|order| order.id);
    open.dedup_by_key(|order| order.id);
    if let [order] = open.as_slice() {
        let same_items = {
            let mut held = item_ids_of(txn, order.id).await?;
            let mut wanted = new.item_ids.to_vec();
            held.sort_unstable();
            wanted.sort_unstable();
            held == wanted
        };
        let same_payer = order.payer_openid.as_deref() == new.payer_openid;
        if same_items && order.channel == new.channel && same_payer && order.expires_at > new.now {
            return Ok(TakeOutcome::Existing(OrderRecord::from(order.clone())));
        }
    }
    if open.is_empty() {
        // In order, but no open order holds them: a state repair for the office.
        return Err(StoreError::Inconsistent(
            "items in order without an open order",
        ));
    }
    Ok(TakeOutcome::Blocked(
        open.into_iter().map(OrderRecord::from).collect(),
    ))
}

async fn item_ids_of(txn: &impl ConnectionTrait, order_id: i64) -> Result<Vec<i64>, StoreError> {
    let lines = order_items::Entity::find()
        .filter(order_items::Column::OrderId.eq(order_id))
        .all(txn)
        .await
        .map_err(StoreError::query("read an order's items"))?;
    Ok(lines.into_iter().map(|line| line.fee_item_id).collect())
}

fn order_state(status: OrderStatus) -> OrderState {
    match status {
        OrderStatus::Created => OrderState::Open,
        OrderStatus::Paid => OrderState::Paid,
        OrderStatus::Closed => OrderState::Closed,
        OrderStatus::Refunded => OrderState::Refunded,
    }
}

async fn apply_in(
    txn: &DatabaseTransaction,
    report: &PaymentReport<'_>,
    now: DateTime<Utc>,
) -> Result<ApplyOutcome, StoreError> {
    // Locked (PostgreSQL; SQLite has one writer): copies of one report arriving at
    // once (the notification, the page's poll, the sweep, reconciliation) are judged
    // one after the other, each seeing what the one before wrote.
    let mut select =
        orders::Entity::find().filter(orders::Column::OutTradeNo.eq(report.out_trade_no));
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        select = select.lock_exclusive();
    }
    let Some(order) = select
        .one(txn)
        .await
        .map_err(StoreError::query("read the paid order"))?
    else {
        return Ok(ApplyOutcome::UnknownOrder);
    };
    let same_transaction = order.channel_trade_no.as_deref() == Some(report.channel_trade_no);
    let verdict = judge_payment(
        order_state(order.status),
        Fen(order.amount_fen),
        Fen(report.amount_fen),
        same_transaction,
    );
    match verdict {
        PaymentVerdict::Apply => mark_paid(txn, order, report, now).await,
        PaymentVerdict::AlreadyApplied => {
            Ok(ApplyOutcome::AlreadyApplied(OrderRecord::from(order)))
        }
        PaymentVerdict::PaidAfterClose => paid_after_close(txn, order, report, now).await,
        PaymentVerdict::AmountMismatch { expected, reported } => {
            let note = format!("渠道报告的金额 {reported} 元与订单金额 {expected} 元不符，未入账");
            let order = note_exception(txn, order, &note, now).await?;
            Ok(ApplyOutcome::AmountMismatch(OrderRecord::from(order)))
        }
        PaymentVerdict::Conflicting => {
            let note = format!(
                "订单已{}，渠道又报告一笔支付（交易号 {}），需核实退款",
                if order.status == OrderStatus::Refunded {
                    "退款"
                } else {
                    "支付"
                },
                report.channel_trade_no
            );
            let repeated = order.exception.as_deref() == Some(note.as_str());
            let order = note_exception(txn, order, &note, now).await?;
            Ok(ApplyOutcome::Conflicting {
                order: OrderRecord::from(order),
                repeated,
            })
        }
    }
}

/// Open → paid, with its items; exactly one of concurrent copies gets here first, the
/// others find the order paid when their update matches nothing.
async fn mark_paid(
    txn: &DatabaseTransaction,
    order: orders::Model,
    report: &PaymentReport<'_>,
    now: DateTime<Utc>,
) -> Result<ApplyOutcome, StoreError> {
    let updated = orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(OrderStatus::Paid))
        .col_expr(
            orders::Column::ChannelTradeNo,
            Expr::value(Some(report.channel_trade_no)),
        )
        .col_expr(orders::Column::PaidAt, Expr::value(Some(report.paid_at)))
        // The receipt's verification code, in the same update that makes it paid.
        .col_expr(
            orders::Column::ReceiptCode,
            Expr::value(Some(new_receipt_code())),
        )
        .col_expr(orders::Column::UpdatedAt, Expr::value(now))
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::Status.eq(OrderStatus::Created))
        .exec(txn)
        .await
        .map_err(StoreError::query("mark an order paid"))?;
    if updated.rows_affected != 1 {
        // A concurrent copy won; judge again against what it wrote.
        let current = reread(txn, order.id).await?;
        let same = current.channel_trade_no.as_deref() == Some(report.channel_trade_no);
        return Ok(if current.status == OrderStatus::Paid && same {
            ApplyOutcome::AlreadyApplied(OrderRecord::from(current))
        } else {
            ApplyOutcome::Conflicting {
                order: OrderRecord::from(current),
                repeated: false,
            }
        });
    }
    let item_ids = item_ids_of(txn, order.id).await?;
    let settled = settle_items(txn, order.id, &item_ids, &[FeeItemStatus::InOrder], now).await?;
    let mut paid = reread(txn, order.id).await?;
    if settled != item_ids.len() as u64 {
        // An item left the order meanwhile (waived by the office?): the money is in,
        // so the office must see it.
        paid = note_exception(txn, paid, "订单中部分项目状态已变，需人工核对", now).await?;
    }
    Ok(ApplyOutcome::Applied(OrderRecord::from(paid)))
}

/// Where a closed order's items stand when money arrives for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LatePayment {
    /// Every item still owed: the payment settles them.
    Settles,
    /// Some item was paid by another order: this payment is a duplicate to refund.
    Duplicate,
    /// Some item is in another order, not paid (yet): that order must be settled first.
    Held,
    /// Some item was waived or removed meanwhile: the office decides.
    Changed,
}

/// Owed means unpaid, or deferred (a deferral only moves the due date).
const OWED: [FeeItemStatus; 2] = [FeeItemStatus::Unpaid, FeeItemStatus::Deferred];

fn judge_late_payment(order_id: i64, wanted: usize, items: &[fee_items::Model]) -> LatePayment {
    let paid_by_other = |item: &fee_items::Model| {
        item.status == FeeItemStatus::Paid && item.paid_order_id != Some(order_id)
    };
    if items.iter().any(paid_by_other) {
        LatePayment::Duplicate
    } else if items.len() != wanted {
        LatePayment::Changed
    } else if items.iter().all(|item| OWED.contains(&item.status)) {
        LatePayment::Settles
    } else if items
        .iter()
        .any(|item| item.status == FeeItemStatus::InOrder)
    {
        LatePayment::Held
    } else {
        LatePayment::Changed
    }
}

/// What the order's exception says for each case (the office reads these).
fn late_payment_note(late: LatePayment) -> &'static str {
    match late {
        LatePayment::Settles => "订单关闭后收到支付，已按此笔入账",
        LatePayment::Duplicate => "订单关闭后收到支付，项目已由其他订单缴清，需退款",
        LatePayment::Held => "订单关闭后收到支付，项目正在另一订单中支付，待核对",
        LatePayment::Changed => "订单关闭后收到支付，项目已减免或变更，需人工核对（入账或退款）",
    }
}

/// The money came for an order we closed. When its items are still owed they are
/// settled by it (the student paid them); when another order paid them it is a second
/// payment to refund; when another open order holds them the caller settles that one
/// first; otherwise the office decides. The payment is recorded on the order in every
/// case, so no money is ever out of sight.
async fn paid_after_close(
    txn: &DatabaseTransaction,
    order: orders::Model,
    report: &PaymentReport<'_>,
    now: DateTime<Utc>,
) -> Result<ApplyOutcome, StoreError> {
    // The same transaction already on the closed order: a copy of a report we have.
    let repeated = order.channel_trade_no.as_deref() == Some(report.channel_trade_no);
    let item_ids = item_ids_of(txn, order.id).await?;
    let items = fee_items::Entity::find()
        .filter(fee_items::Column::Id.is_in(item_ids.iter().copied()))
        .all(txn)
        .await
        .map_err(StoreError::query("read a closed order's items"))?;
    let mut late = judge_late_payment(order.id, item_ids.len(), &items);
    if late == LatePayment::Settles
        && settle_items(txn, order.id, &item_ids, &OWED, now).await? != item_ids.len() as u64
    {
        return Err(StoreError::Inconsistent(
            "a closed order's owed items changed inside its transaction",
        ));
    }
    let holders = if late == LatePayment::Held {
        open_orders_holding(txn, order.id, &item_ids).await?
    } else {
        Vec::new()
    };
    if late == LatePayment::Held && holders.is_empty() {
        late = LatePayment::Changed;
    }
    let settled = late == LatePayment::Settles;
    let status = if settled {
        OrderStatus::Paid
    } else {
        OrderStatus::Closed
    };
    let update = orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(status))
        .col_expr(
            orders::Column::ChannelTradeNo,
            Expr::value(Some(report.channel_trade_no)),
        )
        .col_expr(orders::Column::PaidAt, Expr::value(Some(report.paid_at)))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now));
    // Paid by it: the receipt's verification code, in the same update.
    let update = if settled && order.receipt_code.is_none() {
        update.col_expr(
            orders::Column::ReceiptCode,
            Expr::value(Some(new_receipt_code())),
        )
    } else {
        update
    };
    with_exception(update, &order, late_payment_note(late))
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::Status.eq(OrderStatus::Closed))
        .exec(txn)
        .await
        .map_err(StoreError::query("record a payment after close"))?;
    let order = OrderRecord::from(reread(txn, order.id).await?);
    if late == LatePayment::Held {
        return Ok(ApplyOutcome::PaidWhileHeld {
            order,
            holders,
            repeated,
        });
    }
    Ok(ApplyOutcome::PaidAfterClose {
        order,
        settled,
        repeated,
    })
}

/// Whether an order holds a payment the office may apply: closed, with the channel's
/// transaction and its time recorded (money came after we closed it).
pub fn holds_flagged_payment(order: &OrderRecord) -> bool {
    order.status == OrderStatus::Closed
        && order.channel_trade_no.is_some()
        && order.paid_at.is_some()
        && order.exception.is_some()
}

async fn apply_flagged_in(
    txn: &DatabaseTransaction,
    order_id: i64,
    entry: super::audit::AuditEntry,
    now: DateTime<Utc>,
) -> Result<FlaggedOutcome, StoreError> {
    let Some(order) = orders::Entity::find_by_id(order_id)
        .one(txn)
        .await
        .map_err(StoreError::query("read a flagged order"))?
    else {
        return Ok(FlaggedOutcome::NotFlagged);
    };
    if !holds_flagged_payment(&OrderRecord::from(order.clone())) {
        return Ok(FlaggedOutcome::NotFlagged);
    }
    let item_ids = item_ids_of(txn, order.id).await?;
    let items = fee_items::Entity::find()
        .filter(fee_items::Column::Id.is_in(item_ids.iter().copied()))
        .all(txn)
        .await
        .map_err(StoreError::query("read a flagged order's items"))?;
    let late = judge_late_payment(order.id, item_ids.len(), &items);
    if late != LatePayment::Settles {
        return Ok(FlaggedOutcome::ItemsNotOwed(match late {
            LatePayment::Duplicate => "项目已由其他订单缴清，只能退款",
            LatePayment::Held => "项目正在另一订单中支付，请待该订单结束后再入账",
            _ => "项目已减免或变更，不能入账",
        }));
    }
    if settle_items(txn, order.id, &item_ids, &OWED, now).await? != item_ids.len() as u64 {
        return Ok(FlaggedOutcome::ItemsNotOwed(
            "项目状态刚刚发生变化，请刷新后重试",
        ));
    }
    let note = "财务处已将此笔支付入账到订单项目";
    let update = orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(OrderStatus::Paid))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now))
        .col_expr(orders::Column::ExceptionResolvedAt, Expr::value(Some(now)))
        .col_expr(
            orders::Column::ExceptionResolvedBy,
            Expr::value(Some(entry.actor.as_str())),
        )
        .col_expr(orders::Column::ExceptionNote, Expr::value(Some(note)));
    let update = if order.receipt_code.is_none() {
        update.col_expr(
            orders::Column::ReceiptCode,
            Expr::value(Some(new_receipt_code())),
        )
    } else {
        update
    };
    let updated = update
        .filter(orders::Column::Id.eq(order.id))
        .filter(orders::Column::Status.eq(OrderStatus::Closed))
        .exec(txn)
        .await
        .map_err(StoreError::query("apply a flagged payment"))?;
    if updated.rows_affected != 1 {
        return Ok(FlaggedOutcome::NotFlagged);
    }
    let entry = entry
        .before(serde_json::json!({
            "out_trade_no": order.out_trade_no,
            "status": "closed",
            "exception": order.exception,
            "items": item_ids,
        }))
        .after(serde_json::json!({
            "out_trade_no": order.out_trade_no,
            "status": "paid",
            "channel_trade_no": order.channel_trade_no,
            "amount_fen": order.amount_fen,
            "items_paid": item_ids,
        }));
    super::audit::write_audit(txn, &entry, now).await?;
    let paid = reread(txn, order.id).await?;
    Ok(FlaggedOutcome::Applied(Box::new(OrderRecord::from(paid))))
}

/// Commits what `txn` wrote when the outcome is to be kept, rolls it back otherwise.
async fn commit_if(
    txn: DatabaseTransaction,
    keep: bool,
    committing: &'static str,
    rolling_back: &'static str,
) -> Result<(), StoreError> {
    if keep {
        txn.commit().await.map_err(StoreError::query(committing))
    } else {
        txn.rollback()
            .await
            .map_err(StoreError::query(rolling_back))
    }
}

/// The open orders other than `order_id` that hold any of `item_ids`.
async fn open_orders_holding(
    txn: &DatabaseTransaction,
    order_id: i64,
    item_ids: &[i64],
) -> Result<Vec<OrderRecord>, StoreError> {
    let holding = order_items::Entity::find()
        .filter(order_items::Column::FeeItemId.is_in(item_ids.iter().copied()))
        .filter(order_items::Column::OrderId.ne(order_id))
        .find_also_related(orders::Entity)
        .all(txn)
        .await
        .map_err(StoreError::query(
            "find the orders holding a closed order's items",
        ))?;
    let mut open: Vec<orders::Model> = holding
        .into_iter()
        .filter_map(|(_, order)| order)
        .filter(|order| order.status == OrderStatus::Created)
        .collect();
    open.sort_by_key(|order| order.id);
    open.dedup_by_key(|order| order.id);
    Ok(open.into_iter().map(OrderRecord::from).collect())
}

/// Marks the items of `item_ids` that are in one of the `from` states paid by
/// `order_id`; how many it marked (the caller compares with how many it meant).
async fn settle_items(
    txn: &DatabaseTransaction,
    order_id: i64,
    item_ids: &[i64],
    from: &[FeeItemStatus],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let result = fee_items::Entity::update_many()
        .col_expr(fee_items::Column::Status, Expr::value(FeeItemStatus::Paid))
        .col_expr(fee_items::Column::PaidOrderId, Expr::value(Some(order_id)))
        .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
        .filter(fee_items::Column::Id.is_in(item_ids.iter().copied()))
        .filter(fee_items::Column::Status.is_in(from.iter().copied()))
        .exec(txn)
        .await
        .map_err(StoreError::query("mark items paid"))?;
    Ok(result.rows_affected)
}

async fn note_exception(
    txn: &DatabaseTransaction,
    order: orders::Model,
    note: &str,
    now: DateTime<Utc>,
) -> Result<orders::Model, StoreError> {
    let update =
        orders::Entity::update_many().col_expr(orders::Column::UpdatedAt, Expr::value(now));
    with_exception(update, &order, note)
        .filter(orders::Column::Id.eq(order.id))
        .exec(txn)
        .await
        .map_err(StoreError::query("note an order exception"))?;
    reread(txn, order.id).await
}

/// Sets the order's exception. A new exception reopens it for the finance office (a
/// resolution of an earlier one no longer stands); the same one again (a duplicate
/// notification) leaves a resolution as it is.
fn with_exception(
    update: sea_orm::UpdateMany<orders::Entity>,
    order: &orders::Model,
    note: &str,
) -> sea_orm::UpdateMany<orders::Entity> {
    let update = update.col_expr(orders::Column::Exception, Expr::value(Some(note)));
    if order.exception.as_deref() == Some(note) {
        return update;
    }
    update
        .col_expr(
            orders::Column::ExceptionResolvedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            orders::Column::ExceptionResolvedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            orders::Column::ExceptionNote,
            Expr::value(Option::<String>::None),
        )
}

async fn reread(txn: &DatabaseTransaction, order_id: i64) -> Result<orders::Model, StoreError> {
    orders::Entity::find_by_id(order_id)
        .one(txn)
        .await
        .map_err(StoreError::query("re-read an order"))?
        .ok_or(StoreError::Inconsistent(
            "an order vanished inside its transaction",
        ))
}

#[cfg(test)]
#[path = "orders_tests.rs"]
mod tests;
