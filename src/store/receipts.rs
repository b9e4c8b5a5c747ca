//! Receipts (缴费凭证): a paid order with its student and items, found by its number
//! (the student's page, the console) or by its verification code (the console's
//! check); and the provincial e-bill's number and status as the office records them.
//!
//! The code is set in the transaction that marks the order paid (`orders.rs`); an
//! order paid before receipts existed gets one the first time its receipt is asked
//! for, by a conditional update (only a missing code is filled in).

use chrono::{DateTime, Utc};
use rand::RngExt as _;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use super::audit::write_audit;
use super::entities::{orders, refunds, students};
use super::{AuditEntry, OrderLine, OrderStatus, PaymentChannel, RefundStatus, Store, StoreError};
use crate::domain::receipt::{EbillStatus, RECEIPT_CODE_LEN, ReceiptCode};

/// A paid order as its receipt shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecord {
    pub order_id: i64,
    pub out_trade_no: String,
    pub student_id: i64,
    pub student_name: String,
    /// The full ID number: pages mask it.
    pub id_card: String,
    pub grade: i32,
    pub class_name: String,
    pub channel: PaymentChannel,
    pub channel_trade_no: Option<String>,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
    /// As stored: 16 symbols, no dashes.
    pub receipt_code: String,
    pub ebill_status: Option<EbillStatus>,
    pub ebill_number: Option<String>,
    pub lines: Vec<OrderLine>,
    /// Every refund of the order that has not failed, oldest first.
    pub refunds: Vec<ReceiptRefund>,
    /// Refunded in full: the receipt is void (作废).
    pub void: bool,
}

/// A refund as a receipt shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRefund {
    pub amount_fen: i64,
    /// Back with the payer; otherwise still on its way.
    pub succeeded: bool,
    /// When it succeeded, or when it was asked for.
    pub at: DateTime<Utc>,
}

impl ReceiptRecord {
    /// What has been given back (or is on its way back).
    pub fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|refund| refund.amount_fen).sum()
    }
}

/// What recording an e-bill did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EbillOutcome {
    Recorded,
    /// The same status and number were already recorded: nothing written.
    Unchanged,
    /// No paid order with that number.
    NotFound,
}

/// A fresh code for an order being paid. 80 random bits: a clash is not expected,
/// and the unique index refuses one (the payment's transaction then fails and the
/// channel's retry gets another code).
pub(super) fn new_receipt_code() -> String {
    let random: [u8; RECEIPT_CODE_LEN] = rand::rng().random();
    ReceiptCode::generate(&random).as_str().to_owned()
}

impl Store {
    /// The receipt of a paid order (or one refunded since: its receipt shows the
    /// refunds and that it is void), by our order number; `None` for anything else.
    pub async fn receipt_of(
        &self,
        out_trade_no: &str,
    ) -> Result<Option<ReceiptRecord>, StoreError> {
        let found = orders::Entity::find()
            .filter(orders::Column::OutTradeNo.eq(out_trade_no))
            .filter(orders::Column::Status.is_in([OrderStatus::Paid, OrderStatus::Refunded]))
            .find_also_related(students::Entity)
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a receipt's order"))?;
        self.receipt_from(found).await
    }

    /// The receipt whose verification code is `code`; `None` when none is.
    pub async fn receipt_by_code(
        &self,
        code: &ReceiptCode,
    ) -> Result<Option<ReceiptRecord>, StoreError> {
        let found = orders::Entity::find()
            .filter(orders::Column::ReceiptCode.eq(code.as_str()))
            .filter(orders::Column::Status.is_in([OrderStatus::Paid, OrderStatus::Refunded]))
            .find_also_related(students::Entity)
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a receipt by its code"))?;
        self.receipt_from(found).await
    }

    async fn receipt_from(
        &self,
        found: Option<(orders::Model, Option<students::Model>)>,
    ) -> Result<Option<ReceiptRecord>, StoreError> {
        let Some((mut order, Some(student))) = found else {
            return Ok(None);
        };
        let Some(paid_at) = order.paid_at else {
            return Err(StoreError::Inconsistent("a paid order without its time"));
        };
        if order.receipt_code.is_none() {
            order.receipt_code = Some(self.fill_receipt_code(order.id).await?);
        }
        let lines = self.order_lines(order.id).await?;
        let refunds = refunds::Entity::find()
            .filter(refunds::Column::OrderId.eq(order.id))
            .filter(refunds::Column::Status.ne(RefundStatus::Failed))
            .order_by_asc(refunds::Column::Id)
            .all(&self.db)
            .await
            .map_err(StoreError::query("read a receipt's refunds"))?
            .into_iter()
            .map(|refund| ReceiptRefund {
                amount_fen: refund.amount_fen,
                succeeded: refund.status == RefundStatus::Succeeded,
                at: refund.finished_at.unwrap_or(refund.requested_at),
            })
            .collect();
        let void = order.status == OrderStatus::Refunded;
        Ok(Some(ReceiptRecord {
            order_id: order.id,
            out_trade_no: order.out_trade_no,
            student_id: student.id,
            student_name: student.name,
            id_card: student.id_card,
            grade: student.grade,
            class_name: student.class_name,
            channel: order.channel,
            channel_trade_no: order.channel_trade_no,
            amount_fen: order.amount_fen,
            paid_at,
            receipt_code: order.receipt_code.unwrap_or_default(),
            ebill_status: order.ebill_status.as_deref().and_then(EbillStatus::parse),
            ebill_number: order.ebill_number,
            lines,
            refunds,
            void,
        }))
    }

    /// Gives an order paid before receipts existed its code, once: of two requests at
    /// the same time, the second finds the first one's code.
    async fn fill_receipt_code(&self, order_id: i64) -> Result<String, StoreError> {
        let txn = self.begin_write("begin filling a receipt code").await?;
        orders::Entity::update_many()
            .col_expr(
                orders::Column::ReceiptCode,
                Expr::value(Some(new_receipt_code())),
            )
            .filter(orders::Column::Id.eq(order_id))
            .filter(orders::Column::ReceiptCode.is_null())
            .exec(&txn)
            .await
            .map_err(StoreError::query("fill a receipt code"))?;
        let code = current_code(&txn, order_id).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit a receipt code"))?;
        Ok(code)
    }

    /// Records the provincial e-bill of a paid order (`status`, `number`), with its
    /// audit row (`entry`, given its before and after here) in the same transaction.
    pub async fn record_ebill(
        &self,
        out_trade_no: &str,
        status: EbillStatus,
        number: &str,
        entry: AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<EbillOutcome, StoreError> {
        let txn = self.begin_write("begin recording an e-bill").await?;
        let Some(order) = orders::Entity::find()
            .filter(orders::Column::OutTradeNo.eq(out_trade_no))
            .filter(orders::Column::Status.eq(OrderStatus::Paid))
            .one(&txn)
            .await
            .map_err(StoreError::query("read an order for its e-bill"))?
        else {
            return rolled_back(txn, EbillOutcome::NotFound).await;
        };
        if order.ebill_status.as_deref() == Some(status.as_str())
            && order.ebill_number.as_deref() == Some(number)
        {
            return rolled_back(txn, EbillOutcome::Unchanged).await;
        }
        orders::Entity::update_many()
            .col_expr(
                orders::Column::EbillStatus,
                Expr::value(Some(status.as_str())),
            )
            .col_expr(orders::Column::EbillNumber, Expr::value(Some(number)))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now))
            .filter(orders::Column::Id.eq(order.id))
            .exec(&txn)
            .await
            .map_err(StoreError::query("record an e-bill"))?;
        let entry = entry
            .before(json!({
                "out_trade_no": order.out_trade_no,
                "ebill_status": order.ebill_status,
                "ebill_number": order.ebill_number,
            }))
            .after(json!({
                "out_trade_no": order.out_trade_no,
                "ebill_status": status.as_str(),
                "ebill_number": number,
            }));
        write_audit(&txn, &entry, now).await?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit an e-bill"))?;
        Ok(EbillOutcome::Recorded)
    }
}

async fn current_code(txn: &DatabaseTransaction, order_id: i64) -> Result<String, StoreError> {
    orders::Entity::find_by_id(order_id)
        .one(txn)
        .await
        .map_err(StoreError::query("re-read a receipt code"))?
        .and_then(|order| order.receipt_code)
        .ok_or(StoreError::Inconsistent("a receipt code vanished"))
}

async fn rolled_back(
    txn: DatabaseTransaction,
    outcome: EbillOutcome,
) -> Result<EbillOutcome, StoreError> {
    txn.rollback()
        .await
        .map_err(StoreError::query("roll back an e-bill"))?;
    Ok(outcome)
}
