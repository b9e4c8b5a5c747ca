//! Refunds: one row per refund asked of a channel, keyed by our refund number
//! (`out_refund_no`), which every retry of the same refund reuses.
//!
//! A refund is recorded (`requested`) with its audit row before any channel is asked,
//! inside a transaction that also checks it does not exceed what was paid. The
//! channel's answers then move it on by conditional updates: a final state
//! (`succeeded`, `failed`) never goes back, and the same news twice changes nothing.
//!
//! "The item becomes unpaid when the refund succeeds" (`unpay_item`) is fixed when the
//! refund is recorded and never changes, so the promise made to the office at the
//! console is kept exactly when the money is back, in the success's own transaction.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rand::RngExt as _;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::audit::{AuditEntry, write_audit};
use super::entities::{fee_items, order_items, orders, refunds};
use super::{FeeItemStatus, OrderRecord, RefundKind, RefundStatus, Store, StoreError};

/// Our refund numbers start with this.
const REFUND_PREFIX: &str = "RF";
const REFUND_RANDOM_LEN: usize = 12;
const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz";

/// A refund as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: i64,
    pub out_refund_no: String,
    pub order_id: i64,
    pub fee_item_id: Option<i64>,
    pub amount_fen: i64,
    pub reason: String,
    pub kind: RefundKind,
    pub status: RefundStatus,
    pub channel_refund_no: Option<String>,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_queried_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    /// On success the item goes back to unpaid.
    pub unpays_item: bool,
}

impl From<refunds::Model> for RefundRecord {
    fn from(row: refunds::Model) -> RefundRecord {
        RefundRecord {
            unpays_item: row.unpay_item,
            id: row.id,
            out_refund_no: row.out_refund_no,
            order_id: row.order_id,
            fee_item_id: row.fee_item_id,
            amount_fen: row.amount_fen,
            reason: row.reason,
            kind: row.kind,
            status: row.status,
            channel_refund_no: row.channel_refund_no,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            finished_at: row.finished_at,
            last_queried_at: row.last_queried_at,
            failure: row.failure,
        }
    }
}

impl RefundRecord {
    pub fn is_final(&self) -> bool {
        matches!(self.status, RefundStatus::Succeeded | RefundStatus::Failed)
    }
}

/// A refund to record.
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub out_trade_no: &'a str,
    pub kind: RefundKind,
    /// The item a withdrawal refund is for.
    pub fee_item_id: Option<i64>,
    pub amount_fen: i64,
    pub reason: &'a str,
    /// A withdrawal only: the item is unpaid again once the refund succeeds.
    pub unpay_item: bool,
    pub requested_by: &'a str,
    pub now: DateTime<Utc>,
}

/// What recording a refund came to. Nothing is written unless `Created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefund {
    Created(RefundRecord),
    UnknownOrder,
    /// The order has no money to give back (never paid).
    NotPaid,
    /// A withdrawal must name an item of this order.
    NotAnItemOfTheOrder,
    /// More than what is left: `left_fen` may still be refunded.
    TooMuch {
        left_fen: i64,
    },
}

/// What a channel said about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundNews {
    Processing {
        channel_refund_no: Option<String>,
    },
    Succeeded {
        channel_refund_no: String,
        at: DateTime<Utc>,
    },
    Failed {
        reason: String,
    },
}

/// What is left to refund of an order, and of each of its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refundable {
    pub order_left_fen: i64,
    /// `(fee_item_id, what the order charged for it, what is left of it)`.
    pub items: Vec<(i64, i64, i64)>,
}

impl Refundable {
    pub fn item_left(&self, fee_item_id: i64) -> Option<i64> {
        self.items
            .iter()
            .find(|(id, _, _)| *id == fee_item_id)
            .map(|(_, _, left)| (*left).min(self.order_left_fen))
    }
}

impl Store {
    /// Records a refund (`requested`) with its audit row, after checking in the same
    /// transaction that it does not exceed what the order (and the item) paid, counting
    /// every refund that has not failed.
    pub async fn create_refund(
        &self,
        new: &NewRefund<'_>,
        audit: &AuditEntry,
    ) -> Result<CreateRefund, StoreError> {
        let txn = self.begin_write("record a refund").await?;
        let Some(order) = order_for_update(&txn, new.out_trade_no).await? else {
            return Ok(CreateRefund::UnknownOrder);
        };
        if order.paid_at.is_none() || order.channel_trade_no.is_none() {
            return Ok(CreateRefund::NotPaid);
        }
        let refundable = refundable_in(&txn, &order).await?;
        let left = match new.fee_item_id {
            None => Some(refundable.order_left_fen),
            Some(item) => refundable.item_left(item),
        };
        let Some(left_fen) = left else {
            return Ok(CreateRefund::NotAnItemOfTheOrder);
        };
        if new.amount_fen <= 0 || new.amount_fen > left_fen {
            return Ok(CreateRefund::TooMuch { left_fen });
        }
        let unpays =
            new.unpay_item && new.kind == RefundKind::Withdrawal && new.fee_item_id.is_some();
        let row = refunds::ActiveModel {
            out_refund_no: Set(new_out_refund_no(new.out_trade_no)),
            unpay_item: Set(unpays),
            order_id: Set(order.id),
            fee_item_id: Set(new.fee_item_id),
            amount_fen: Set(new.amount_fen),
            reason: Set(new.reason.to_owned()),
            kind: Set(new.kind),
            status: Set(RefundStatus::Requested),
            requested_by: Set(new.requested_by.to_owned()),
            requested_at: Set(new.now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(StoreError::query("insert a refund"))?;
        let record = RefundRecord::from(row);
        let mut audit = audit.clone();
        audit.target = format!("refund:{}", record.out_refund_no);
        write_audit(&txn, &audit, new.now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit a refund"))?;
        Ok(CreateRefund::Created(record))
    }

    /// Applies a channel's news. Returns the refund as it now stands and whether this
    /// changed it (false for a copy, or for news about a refund already final).
    pub async fn apply_refund_news(
        &self,
        out_refund_no: &str,
        news: &RefundNews,
        now: DateTime<Utc>,
    ) -> Result<Option<(RefundRecord, bool)>, StoreError> {
        let txn = self.begin_write("apply a refund's news").await?;
        let Some(current) = refund_row(&txn, out_refund_no).await? else {
            return Ok(None);
        };
        let changed = match news {
            RefundNews::Processing { channel_refund_no } => {
                let update = refunds::Entity::update_many()
                    .col_expr(
                        refunds::Column::Status,
                        Expr::value(RefundStatus::Processing),
                    )
                    .col_expr(refunds::Column::LastQueriedAt, Expr::value(Some(now)));
                let update = match channel_refund_no {
                    Some(number) => update.col_expr(
                        refunds::Column::ChannelRefundNo,
                        Expr::value(Some(number.clone())),
                    ),
                    None => update,
                };
                update
                    .filter(refunds::Column::Id.eq(current.id))
                    .filter(refunds::Column::Status.eq(RefundStatus::Requested))
                    .exec(&txn)
                    .await
                    .map_err(StoreError::query("mark a refund processing"))?
                    .rows_affected
                    == 1
            }
            RefundNews::Succeeded {
                channel_refund_no,
                at,
            } => {
                let won = finish(
                    &txn,
                    current.id,
                    RefundStatus::Succeeded,
                    Some(channel_refund_no),
                    None,
                    *at,
                )
                .await?;
                if won && current.unpay_item {
                    unpay_item(&txn, &current, now).await?;
                }
                won
            }
            RefundNews::Failed { reason } => {
                finish(
                    &txn,
                    current.id,
                    RefundStatus::Failed,
                    None,
                    Some(reason),
                    now,
                )
                .await?
            }
        };
        let row = refund_row(&txn, out_refund_no)
            .await?
            .ok_or(StoreError::Inconsistent(
                "a refund vanished inside its transaction",
            ))?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit a refund's news"))?;
        Ok(Some((RefundRecord::from(row), changed)))
    }

    /// Notes that the channel was asked about a refund (and gave no news that moved it).
    pub async fn mark_refund_queried(
        &self,
        refund_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        refunds::Entity::update_many()
            .col_expr(refunds::Column::LastQueriedAt, Expr::value(Some(now)))
            .filter(refunds::Column::Id.eq(refund_id))
            .exec(&self.db)
            .await
            .map_err(StoreError::query("mark a refund queried"))?;
        Ok(())
    }

    pub async fn find_refund(
        &self,
        out_refund_no: &str,
    ) -> Result<Option<RefundRecord>, StoreError> {
        Ok(refund_row(&self.db, out_refund_no)
            .await?
            .map(RefundRecord::from))
    }

    /// An order's refunds, oldest first.
    pub async fn refunds_of_order(&self, order_id: i64) -> Result<Vec<RefundRecord>, StoreError> {
        let rows = refunds::Entity::find()
            .filter(refunds::Column::OrderId.eq(order_id))
            .order_by_asc(refunds::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list an order's refunds"))?;
        Ok(rows.into_iter().map(RefundRecord::from).collect())
    }

    /// Refunds not final and not asked about for `quiet_for`, oldest first.
    pub async fn refunds_to_query(
        &self,
        now: DateTime<Utc>,
        quiet_for: std::time::Duration,
        limit: u64,
    ) -> Result<Vec<RefundRecord>, StoreError> {
        let quiet = TimeDelta::from_std(quiet_for).unwrap_or(TimeDelta::MAX);
        let since = now
            .checked_sub_signed(quiet)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let rows = refunds::Entity::find()
            .filter(
                refunds::Column::Status.is_in([RefundStatus::Requested, RefundStatus::Processing]),
            )
            .filter(
                sea_orm::Condition::any()
                    .add(
                        sea_orm::Condition::all()
                            .add(refunds::Column::LastQueriedAt.is_null())
                            .add(refunds::Column::RequestedAt.lte(since)),
                    )
                    .add(refunds::Column::LastQueriedAt.lte(since)),
            )
            .order_by_asc(refunds::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list refunds to query"))?;
        Ok(rows.into_iter().map(RefundRecord::from).collect())
    }

    /// The order a refund gives money back from.
    pub async fn find_order_by_id(&self, order_id: i64) -> Result<Option<OrderRecord>, StoreError> {
        let row = orders::Entity::find_by_id(order_id)
            .one(&self.db)
            .await
            .map_err(StoreError::query("read a refund's order"))?;
        Ok(row.map(OrderRecord::from))
    }

    /// What is left to refund of an order and its items (refunds that have not failed
    /// count as given back).
    pub async fn refundable(&self, order_id: i64) -> Result<Option<Refundable>, StoreError> {
        let Some(order) = orders::Entity::find_by_id(order_id)
            .one(&self.db)
            .await
            .map_err(StoreError::query("read an order to refund"))?
        else {
            return Ok(None);
        };
        Ok(Some(refundable_in(&self.db, &order).await?))
    }
}

/// `RF` + the order's date (`CP20250901…` → `20250901`) + random: unique, ≤ 64.
fn new_out_refund_no(out_trade_no: &str) -> String {
    let prefix = REFUND_PREFIX;
    let date: String = out_trade_no
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take(8)
        .collect();
    let mut rng = rand::rng();
    let random: String = (0..REFUND_RANDOM_LEN)
        .map(|_| ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char)
        .collect();
    format!("{prefix}{date}{random}")
}

/// The order, locked against a concurrent refund of it (PostgreSQL; SQLite has a
/// single writer anyway).
async fn order_for_update(
    txn: &DatabaseTransaction,
    out_trade_no: &str,
) -> Result<Option<orders::Model>, StoreError> {
    let mut select = orders::Entity::find().filter(orders::Column::OutTradeNo.eq(out_trade_no));
    if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        select = select.lock_exclusive();
    }
    select
        .one(txn)
        .await
        .map_err(StoreError::query("read an order to refund"))
}

async fn refundable_in(
    db: &impl ConnectionTrait,
    order: &orders::Model,
) -> Result<Refundable, StoreError> {
    let given = refunds::Entity::find()
        .filter(refunds::Column::OrderId.eq(order.id))
        .filter(refunds::Column::Status.ne(RefundStatus::Failed))
        .all(db)
        .await
        .map_err(StoreError::query("sum an order's refunds"))?;
    let lines = order_items::Entity::find()
        .filter(order_items::Column::OrderId.eq(order.id))
        .order_by_asc(order_items::Column::Id)
        .all(db)
        .await
        .map_err(StoreError::query("read an order's items to refund"))?;
    let order_given: i64 = given.iter().map(|refund| refund.amount_fen).sum();
    let items = lines
        .iter()
        .map(|line| {
            let item_given: i64 = given
                .iter()
                .filter(|refund| refund.fee_item_id == Some(line.fee_item_id))
                .map(|refund| refund.amount_fen)
                .sum();
            (
                line.fee_item_id,
                line.amount_fen,
                (line.amount_fen - item_given).max(0),
            )
        })
        .collect();
    Ok(Refundable {
        order_left_fen: (order.amount_fen - order_given).max(0),
        items,
    })
}

async fn refund_row(
    db: &impl ConnectionTrait,
    out_refund_no: &str,
) -> Result<Option<refunds::Model>, StoreError> {
    refunds::Entity::find()
        .filter(refunds::Column::OutRefundNo.eq(out_refund_no))
        .one(db)
        .await
        .map_err(StoreError::query("read a refund"))
}

/// Not final → final, once: the update matches nothing for a refund already final.
async fn finish(
    txn: &DatabaseTransaction,
    refund_id: i64,
    status: RefundStatus,
    channel_refund_no: Option<&String>,
    failure: Option<&String>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut update = refunds::Entity::update_many()
        .col_expr(refunds::Column::Status, Expr::value(status))
        .col_expr(refunds::Column::FinishedAt, Expr::value(Some(at)));
    if let Some(number) = channel_refund_no {
        update = update.col_expr(
            refunds::Column::ChannelRefundNo,
            Expr::value(Some(number.clone())),
        );
    }
    if let Some(failure) = failure {
        update = update.col_expr(refunds::Column::Failure, Expr::value(Some(failure.clone())));
    }
    let result = update
        .filter(refunds::Column::Id.eq(refund_id))
        .filter(refunds::Column::Status.is_in([RefundStatus::Requested, RefundStatus::Processing]))
        .exec(txn)
        .await
        .map_err(StoreError::query("finish a refund"))?;
    Ok(result.rows_affected == 1)
}

/// The office ticked "unpaid after success": the item this order paid is owed again.
/// An item since waived, or paid by another order, is left as it is.
async fn unpay_item(
    txn: &DatabaseTransaction,
    refund: &refunds::Model,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(item_id) = refund.fee_item_id else {
        return Ok(());
    };
    fee_items::Entity::update_many()
        .col_expr(
            fee_items::Column::Status,
            Expr::value(FeeItemStatus::Unpaid),
        )
        .col_expr(
            fee_items::Column::PaidOrderId,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
        .filter(fee_items::Column::Id.eq(item_id))
        .filter(fee_items::Column::Status.eq(FeeItemStatus::Paid))
        .filter(fee_items::Column::PaidOrderId.eq(refund.order_id))
        .exec(txn)
        .await
        .map_err(StoreError::query("make a refunded item unpaid"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_numbers_carry_the_order_date() {
        let number = new_out_refund_no("CP20250901120000ABCD");
        assert!(number.starts_with("RF20250901"), "{number}");
        assert_eq!(number.len(), 2 + 8 + REFUND_RANDOM_LEN);
        assert!(number.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(number, new_out_refund_no("CP20250901120000ABCD"));
    }

    #[test]
    fn an_item_can_get_back_no_more_than_the_order_has_left() {
        let refundable = Refundable {
            order_left_fen: 300,
            items: vec![(1, 500, 500), (2, 100, 40)],
        };
        assert_eq!(refundable.item_left(1), Some(300));
        assert_eq!(refundable.item_left(2), Some(40));
        assert_eq!(refundable.item_left(3), None);
    }
}
