//! Refunds: one row per refund asked of a channel, keyed by our refund number
//! (`out_refund_no`), which every retry of the same refund reuses.
//!
//! A refund is recorded (`requested`) with its audit row before any channel is asked,
//! inside a transaction that also checks it does not exceed what was paid. The
//! channel's answers then move it on by conditional updates: a final state
//! (`succeeded`, `failed`) never goes back, and the same news twice changes nothing.
//!
//! What the refund does to its items (`domain::refund`: keep paid for a true
//! duplicate, owed again, or amount lowered) is planned and fixed when the refund is
//! recorded, under locks on the order and its items, and carried out exactly when the
//! money is back, in the success's own transaction. Until then every total counts the
//! refund as given back; a failure changes no item. A duplicate's items are pointed at
//! the order that covers them when the refund is recorded (true whatever the outcome).

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rand::RngExt as _;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::audit::{AuditEntry, write_audit};
use super::entities::{fee_items, order_items, orders, refunds};
use super::{FeeItemStatus, OrderRecord, OrderStatus, RefundKind, RefundStatus, Store, StoreError};
use crate::domain::refund::{
    ItemAfter, ItemEffect, ItemStanding, PlanError, PlannedItem, plan_refund,
};

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
    /// On success the item goes back to unpaid (refunds before issue 13).
    pub unpays_item: bool,
    pub effect: ItemEffect,
    /// What each item shows once the money is back; empty for refunds before it.
    pub plan: Vec<PlannedItem>,
}

impl From<refunds::Model> for RefundRecord {
    fn from(row: refunds::Model) -> RefundRecord {
        let plan = if row.item_plan.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&row.item_plan).unwrap_or_else(|error| {
                tracing::error!(out_refund_no = %row.out_refund_no, %error, "a refund's plan cannot be read");
                Vec::new()
            })
        };
        RefundRecord {
            unpays_item: row.unpay_item,
            effect: ItemEffect::from_code(&row.item_effect),
            plan,
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

/// What part of an order a refund gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundScope {
    /// Everything the order has left.
    WholeOrder,
    /// Part (or all) of what the order paid for one item.
    Item { fee_item_id: i64, amount_fen: i64 },
}

/// A refund to record.
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub out_trade_no: &'a str,
    pub scope: RefundScope,
    pub effect: ItemEffect,
    pub reason: &'a str,
    /// What the order had left when the office confirmed: a different figure now means
    /// someone else refunded meanwhile, and nothing is recorded.
    pub expected_left_fen: Option<i64>,
    pub requested_by: &'a str,
    pub now: DateTime<Utc>,
}

/// What a refund would give back and do to the items, as the confirmation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    pub amount_fen: i64,
    pub order_left_fen: i64,
    pub items: Vec<PlannedItem>,
}

/// What recording a refund came to. Nothing is written unless `Created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefund {
    Created(Box<RefundRecord>),
    UnknownOrder,
    /// The order has no money to give back (never paid).
    NotPaid,
    /// A withdrawal must name an item of this order.
    NotAnItemOfTheOrder,
    /// More than what is left: `left_fen` may still be refunded.
    TooMuch {
        left_fen: i64,
    },
    /// The items cannot end up as the office chose.
    Refused(PlanError),
    /// The order's refundable amount changed since the office confirmed.
    Changed {
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
    /// What a refund would do, read without locks: for the office's confirmation step.
    /// The same checks run again, under locks, when the confirmed refund is recorded.
    pub async fn preview_refund(
        &self,
        out_trade_no: &str,
        scope: RefundScope,
        effect: ItemEffect,
    ) -> Result<Result<RefundPlan, CreateRefund>, StoreError> {
        let Some(order) = orders::Entity::find()
            .filter(orders::Column::OutTradeNo.eq(out_trade_no))
            .one(&self.db)
            .await
            .map_err(StoreError::query("read an order to refund"))?
        else {
            return Ok(Err(CreateRefund::UnknownOrder));
        };
        plan_in(&self.db, &order, scope, effect).await
    }

    /// Records a refund (`requested`) with its audit row, after checking in the same
    /// transaction, with the order and its items locked, that it does not exceed what
    /// the order (and the item) paid, counting every refund that has not failed, and
    /// that its items can end up as the office chose.
    pub async fn create_refund(
        &self,
        new: &NewRefund<'_>,
        audit: &AuditEntry,
    ) -> Result<CreateRefund, StoreError> {
        let txn = self.begin_write("record a refund").await?;
        let Some(order) = order_for_update(&txn, new.out_trade_no).await? else {
            return Ok(CreateRefund::UnknownOrder);
        };
        lock_items_of(&txn, order.id).await?;
        let plan = match plan_in(&txn, &order, new.scope, new.effect).await? {
            Ok(plan) => plan,
            Err(refused) => return Ok(refused),
        };
        if let Some(expected) = new.expected_left_fen
            && expected != plan.order_left_fen
        {
            return Ok(CreateRefund::Changed {
                left_fen: plan.order_left_fen,
            });
        }
        if new.effect == ItemEffect::KeepPaid {
            point_items_at_their_cover(&txn, &order, &plan.items, new.now).await?;
        }
        let fee_item_id = match new.scope {
            RefundScope::WholeOrder => None,
            RefundScope::Item { fee_item_id, .. } => Some(fee_item_id),
        };
        let kind = if new.effect == ItemEffect::KeepPaid {
            RefundKind::Duplicate
        } else {
            RefundKind::Withdrawal
        };
        let item_plan = serde_json::to_string(&plan.items)
            .map_err(|_| StoreError::Inconsistent("a refund plan that cannot be written"))?;
        let row = refunds::ActiveModel {
            out_refund_no: Set(new_out_refund_no(new.out_trade_no)),
            unpay_item: Set(new.effect == ItemEffect::OweAgain),
            item_effect: Set(new.effect.code().to_owned()),
            item_plan: Set(item_plan),
            order_id: Set(order.id),
            fee_item_id: Set(fee_item_id),
            amount_fen: Set(plan.amount_fen),
            reason: Set(new.reason.to_owned()),
            kind: Set(kind),
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
        // The amount and what each item will show, as decided under the locks.
        if let Some(serde_json::Value::Object(after)) = audit.after.as_mut() {
            after.insert("amount_fen".into(), plan.amount_fen.into());
            after.insert(
                "items".into(),
                serde_json::to_value(&plan.items).unwrap_or_default(),
            );
        }
        write_audit(&txn, &audit, new.now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit a refund"))?;
        Ok(CreateRefund::Created(Box::new(record)))
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
                if won {
                    carry_out_plan(&txn, &current, now).await?;
                    mark_order_refunded_when_whole(&txn, current.order_id, now).await?;
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

    /// The fee items booked as paid by an order (a duplicate's items move to the
    /// order that covers them).
    pub async fn items_paid_by_order(&self, order_id: i64) -> Result<Vec<i64>, StoreError> {
        let rows = fee_items::Entity::find()
            .filter(fee_items::Column::PaidOrderId.eq(order_id))
            .filter(fee_items::Column::Status.eq(FeeItemStatus::Paid))
            .order_by_asc(fee_items::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("list the items an order paid"))?;
        Ok(rows.into_iter().map(|row| row.id).collect())
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

/// What a refund of `scope` would give back and do to the items with `effect`; or
/// why it may not be recorded.
async fn plan_in(
    db: &impl ConnectionTrait,
    order: &orders::Model,
    scope: RefundScope,
    effect: ItemEffect,
) -> Result<Result<RefundPlan, CreateRefund>, StoreError> {
    if order.paid_at.is_none() || order.channel_trade_no.is_none() {
        return Ok(Err(CreateRefund::NotPaid));
    }
    let refundable = refundable_in(db, order).await?;
    let order_left_fen = refundable.order_left_fen;
    let (amount_fen, per_item) = match scope {
        RefundScope::WholeOrder => {
            if order_left_fen <= 0 {
                return Ok(Err(CreateRefund::TooMuch { left_fen: 0 }));
            }
            // Each item gets back what is left of it, never more than the order has.
            let mut remaining = order_left_fen;
            let per_item: Vec<(i64, i64)> = refundable
                .items
                .iter()
                .map(|(id, _, item_left)| {
                    let back = (*item_left).min(remaining);
                    remaining -= back;
                    (*id, back)
                })
                .collect();
            (order_left_fen, per_item)
        }
        RefundScope::Item {
            fee_item_id,
            amount_fen,
        } => {
            let Some(left_fen) = refundable.item_left(fee_item_id) else {
                return Ok(Err(CreateRefund::NotAnItemOfTheOrder));
            };
            if amount_fen <= 0 || amount_fen > left_fen {
                return Ok(Err(CreateRefund::TooMuch { left_fen }));
            }
            (amount_fen, vec![(fee_item_id, amount_fen)])
        }
    };
    let standings = item_standings(db, order, &per_item).await?;
    Ok(match plan_refund(effect, &standings) {
        Ok(items) => Ok(RefundPlan {
            amount_fen,
            order_left_fen,
            items,
        }),
        Err(why) => Err(CreateRefund::Refused(why)),
    })
}

/// Where each item of `per_item` (`(fee_item_id, what this refund gives back)`)
/// stands: its amount, whether this order paid it, which other paid order covers it,
/// what other refunds of it are still on their way.
async fn item_standings(
    db: &impl ConnectionTrait,
    order: &orders::Model,
    per_item: &[(i64, i64)],
) -> Result<Vec<ItemStanding>, StoreError> {
    let ids: Vec<i64> = per_item.iter().map(|(id, _)| *id).collect();
    let items = fee_items::Entity::find()
        .filter(fee_items::Column::Id.is_in(ids.clone()))
        .all(db)
        .await
        .map_err(StoreError::query("read the items to refund"))?;
    let pending = refunds::Entity::find()
        .filter(refunds::Column::OrderId.eq(order.id))
        .filter(refunds::Column::Status.is_in([RefundStatus::Requested, RefundStatus::Processing]))
        .all(db)
        .await
        .map_err(StoreError::query("read an order's refunds on their way"))?;
    let covers = covering_orders(db, order.id, &ids).await?;
    Ok(per_item
        .iter()
        .filter_map(|(id, refund_fen)| {
            let item = items.iter().find(|item| item.id == *id)?;
            let paid = item.status == FeeItemStatus::Paid;
            Some(ItemStanding {
                fee_item_id: *id,
                refund_fen: *refund_fen,
                item_amount_fen: item.amount_fen,
                paid_by_this_order: paid && item.paid_order_id == Some(order.id),
                covered_by: covers
                    .iter()
                    .find(|(item_id, _)| paid && item_id == id)
                    .map(|(_, cover)| cover.out_trade_no.clone()),
                pending_fen: pending
                    .iter()
                    .filter(|refund| refund.fee_item_id == Some(*id))
                    .map(|refund| refund.amount_fen)
                    .sum(),
            })
        })
        .collect())
}

/// For each of `item_ids`, the orders other than `order_id` that carry it, took money
/// for it (paid, or paid after close) and have given none of it back (no refund of it, nor of their whole, that has not
/// failed): `(item id, order)`, oldest order first.
async fn covering_orders(
    db: &impl ConnectionTrait,
    order_id: i64,
    item_ids: &[i64],
) -> Result<Vec<(i64, orders::Model)>, StoreError> {
    let lines = order_items::Entity::find()
        .filter(order_items::Column::FeeItemId.is_in(item_ids.to_vec()))
        .filter(order_items::Column::OrderId.ne(order_id))
        .find_also_related(orders::Entity)
        .order_by_asc(order_items::Column::OrderId)
        .all(db)
        .await
        .map_err(StoreError::query("find orders covering the same items"))?;
    let paid: Vec<(i64, orders::Model)> = lines
        .into_iter()
        .filter_map(|(line, other)| Some((line.fee_item_id, other?)))
        // Paid, or paid after we had closed it: money we hold either way.
        .filter(|(_, other)| {
            matches!(other.status, OrderStatus::Paid | OrderStatus::Closed)
                && other.paid_at.is_some()
                && other.channel_trade_no.is_some()
        })
        .collect();
    if paid.is_empty() {
        return Ok(paid);
    }
    let given = refunds::Entity::find()
        .filter(refunds::Column::OrderId.is_in(paid.iter().map(|(_, other)| other.id)))
        .filter(refunds::Column::Status.ne(RefundStatus::Failed))
        .all(db)
        .await
        .map_err(StoreError::query("read refunds of covering orders"))?;
    Ok(paid
        .into_iter()
        .filter(|(item_id, other)| {
            !given.iter().any(|refund| {
                refund.order_id == other.id
                    && (refund.fee_item_id.is_none() || refund.fee_item_id == Some(*item_id))
            })
        })
        .collect())
}

/// Locks the fee items an order carries (PostgreSQL; SQLite has a single writer), in
/// id order, after the order itself: two clerks refunding two orders that cover each
/// other wait for one another here, and the second sees the first's refund.
async fn lock_items_of(txn: &DatabaseTransaction, order_id: i64) -> Result<(), StoreError> {
    if txn.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let ids: Vec<i64> = order_items::Entity::find()
        .filter(order_items::Column::OrderId.eq(order_id))
        .all(txn)
        .await
        .map_err(StoreError::query("read an order's items to lock"))?
        .into_iter()
        .map(|line| line.fee_item_id)
        .collect();
    fee_items::Entity::find()
        .filter(fee_items::Column::Id.is_in(ids))
        .order_by_asc(fee_items::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await
        .map_err(StoreError::query("lock an order's items"))?;
    Ok(())
}

/// A true duplicate: the items this order paid are booked to the order that covers
/// them, so that refunding that one later finds them.
async fn point_items_at_their_cover(
    txn: &DatabaseTransaction,
    order: &orders::Model,
    plan: &[PlannedItem],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for planned in plan {
        let ItemAfter::StaysPaid { covered_by } = &planned.after else {
            continue;
        };
        let Some(cover) = orders::Entity::find()
            .filter(orders::Column::OutTradeNo.eq(covered_by.as_str()))
            .one(txn)
            .await
            .map_err(StoreError::query("read a covering order"))?
        else {
            return Err(StoreError::Inconsistent("a covering order vanished"));
        };
        fee_items::Entity::update_many()
            .col_expr(fee_items::Column::PaidOrderId, Expr::value(Some(cover.id)))
            .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
            .filter(fee_items::Column::Id.eq(planned.fee_item_id))
            .filter(fee_items::Column::Status.eq(FeeItemStatus::Paid))
            .filter(fee_items::Column::PaidOrderId.eq(order.id))
            .exec(txn)
            .await
            .map_err(StoreError::query("book a duplicate's item to its cover"))?;
    }
    Ok(())
}

/// The money is back: each item becomes what the plan said. Each update is
/// conditional on the item still standing as planned (paid by this order, at the
/// planned amount), so it can never unpay or lower an item someone else settled.
async fn carry_out_plan(
    txn: &DatabaseTransaction,
    refund: &refunds::Model,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let record = RefundRecord::from(refund.clone());
    if record.plan.is_empty() {
        // Recorded before plans existed: its promise was `unpay_item`.
        if refund.unpay_item {
            unpay_item(txn, refund, now).await?;
        }
        return Ok(());
    }
    for planned in &record.plan {
        let paid_here = || {
            fee_items::Entity::update_many()
                .col_expr(fee_items::Column::UpdatedAt, Expr::value(now))
                .filter(fee_items::Column::Id.eq(planned.fee_item_id))
                .filter(fee_items::Column::Status.eq(FeeItemStatus::Paid))
                .filter(fee_items::Column::PaidOrderId.eq(refund.order_id))
        };
        let changed = match &planned.after {
            ItemAfter::StaysPaid { .. } | ItemAfter::AsItIs => continue,
            ItemAfter::OwedAgain { amount_fen } => paid_here()
                .col_expr(
                    fee_items::Column::Status,
                    Expr::value(FeeItemStatus::Unpaid),
                )
                .col_expr(
                    fee_items::Column::PaidOrderId,
                    Expr::value(Option::<i64>::None),
                )
                .filter(fee_items::Column::AmountFen.eq(*amount_fen))
                .exec(txn)
                .await
                .map_err(StoreError::query("make a refunded item owed again"))?,
            ItemAfter::Lowered { .. } => paid_here()
                .col_expr(
                    fee_items::Column::AmountFen,
                    sea_orm::sea_query::ExprTrait::sub(
                        Expr::col(fee_items::Column::AmountFen),
                        planned.refund_fen,
                    ),
                )
                .filter(fee_items::Column::AmountFen.gt(planned.refund_fen))
                .exec(txn)
                .await
                .map_err(StoreError::query("lower a refunded item's amount"))?,
        };
        if changed.rows_affected != 1 {
            tracing::error!(
                out_refund_no = %refund.out_refund_no,
                fee_item_id = planned.fee_item_id,
                "a refunded item no longer stands as planned; left for the office"
            );
        }
    }
    Ok(())
}

/// Once everything the order took has been given back, it is refunded (已退款).
async fn mark_order_refunded_when_whole(
    txn: &DatabaseTransaction,
    order_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(order) = orders::Entity::find_by_id(order_id)
        .one(txn)
        .await
        .map_err(StoreError::query("read a refunded order"))?
    else {
        return Ok(());
    };
    let back: i64 = refunds::Entity::find()
        .filter(refunds::Column::OrderId.eq(order_id))
        .filter(refunds::Column::Status.eq(RefundStatus::Succeeded))
        .all(txn)
        .await
        .map_err(StoreError::query("sum an order's refunds"))?
        .iter()
        .map(|refund| refund.amount_fen)
        .sum();
    if back < order.amount_fen {
        return Ok(());
    }
    orders::Entity::update_many()
        .col_expr(orders::Column::Status, Expr::value(OrderStatus::Refunded))
        .col_expr(orders::Column::UpdatedAt, Expr::value(now))
        .filter(orders::Column::Id.eq(order_id))
        .filter(orders::Column::Status.is_in([OrderStatus::Paid, OrderStatus::Closed]))
        .exec(txn)
        .await
        .map_err(StoreError::query("mark an order refunded"))?;
    Ok(())
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

/// A refund from before issue 13 with "unpaid after success" ticked: the item this
/// order paid is owed again.
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
