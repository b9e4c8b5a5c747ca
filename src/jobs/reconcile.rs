//! Reconciliation: one channel's bill for one Beijing day, matched line by line
//! against our orders ([`crate::domain::reconcile`]). A payment the channel has and we
//! lack (a lost notification) is applied through [`Checkout::apply`], the same
//! idempotent path as a notification, so running a day again applies nothing twice.
//! A payment we have and the bill lacks, or one whose amount differs, is flagged and
//! never reverted.
//!
//! Each run has its row from its start (`running`), then `done` with its counts and
//! every line that did not simply agree, or `failed` with why (a bill that fails its
//! hash is matched against nothing). One run at a time per channel and day, across
//! instances (a lock in the cache). Started by the console, `campus-pay reconcile`,
//! or `CAMPUSPAY_RECONCILE_SCHEDULE` (yesterday's bills, every configured channel).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::json;
use tokio::task::JoinHandle;

use super::schedule::{next_run, wait};
use crate::cache::{CacheError, CacheLock, SharedCache};
use crate::domain::money::Fen;
use crate::domain::order::beijing_offset;
use crate::domain::provider::Provider;
use crate::domain::reconcile::{
    BilledPayment, BilledRefund, Finding, OurOrder, OurRefund, OurRefundStand, RefundFinding,
    reconcile, reconcile_refunds,
};
use crate::metrics::{JobResult, Metrics};
use crate::pay::checkout::{Checkout, CheckoutError, Settled};
use crate::pay::refunds::Refunds;
use crate::pay::{BillError, BillLine, BillLineKind, ChannelPayment, RefundState};
use crate::store::{
    AuditEntry, NewReconciliationRun, OrderRecord, OrderStatus, PaymentChannel,
    ReconciliationCounts, ReconciliationLine, ReconciliationRunRecord, RefundRecord, RefundStatus,
    StoreError,
};

/// The audit log's action for a run.
pub const AUDIT_ACTION: &str = "reconcile.run";
/// The actor of runs started by `campus-pay reconcile`.
pub const ACTOR_CLI: &str = "cli";
/// The actor of runs started by `CAMPUSPAY_RECONCILE_SCHEDULE`.
pub const ACTOR_SCHEDULE: &str = "schedule";
/// Longer than downloading and matching one day can take.
const LOCK_TTL: Duration = Duration::from_secs(15 * 60);

/// The label of a stored channel name (the name itself when unknown).
pub fn channel_label(stored: &str) -> &str {
    match Provider::parse(stored) {
        Some(provider) => provider.label(),
        None => stored,
    }
}

/// A day as `YYYY-MM-DD`, strictly.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    (day.format("%Y-%m-%d").to_string() == text.trim()).then_some(day)
}

/// `[00:00, 24:00)` of a Beijing day, in UTC.
fn day_bounds(day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = day
        .and_hms_opt(0, 0, 0)?
        .and_local_timezone(beijing_offset())
        .single()?
        .with_timezone(&Utc);
    Some((start, start + TimeDelta::days(1)))
}

/// Yesterday in Beijing, as of `now`.
pub fn beijing_yesterday(now: DateTime<Utc>) -> NaiveDate {
    let today = now.with_timezone(&beijing_offset()).date_naive();
    today.pred_opt().unwrap_or(today)
}

/// What a run found: its row and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub run: ReconciliationRunRecord,
    pub lines: Vec<ReconciliationLine>,
}

impl ReconcileReport {
    pub fn failed(&self) -> bool {
        self.run.status != crate::store::RunStatus::Done
    }
}

/// How a line's kind reads.
pub fn kind_label(kind: &str) -> &str {
    match kind {
        "applied" => "渠道已收、我方补入账",
        "missing_at_channel" => "我方已收、渠道账单无",
        "amount_mismatch" => "金额不符",
        "unknown_at_us" => "我方无此订单",
        "exception" => "已记为异常",
        "refund_applied" => "渠道已退款、我方补记退款成功",
        "refund_missing_at_channel" => "我方退款成功、渠道账单无",
        "refund_amount_mismatch" => "退款金额不符",
        "refund_unknown_at_us" => "我方无此退款单",
        other => other,
    }
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = &self.run;
        writeln!(
            f,
            "对账：{} {}（第 {} 次对账）",
            channel_label(&run.channel),
            run.bill_date,
            run.id
        )?;
        if let Some(error) = &run.error {
            return writeln!(f, "对账失败：{error}");
        }
        let counts = &run.counts;
        writeln!(
            f,
            "账单 {} 笔：一致 {}，补入账 {}，我方已收渠道无 {}，金额不符 {}，我方无此订单 {}",
            counts.bill_lines,
            counts.matched,
            counts.applied,
            counts.missing_at_channel,
            counts.amount_mismatch,
            counts.unknown_at_us
        )?;
        if self.lines.is_empty() {
            return writeln!(f, "全部一致。");
        }
        for line in &self.lines {
            let amount =
                |fen: Option<i64>| fen.map_or_else(|| "-".to_owned(), |fen| Fen(fen).to_yuan());
            writeln!(
                f,
                "  {}  {}  渠道交易号 {}  我方 {}  渠道 {}  {}",
                kind_label(&line.kind),
                line.out_trade_no,
                line.channel_trade_no.as_deref().unwrap_or("-"),
                amount(line.our_amount_fen),
                amount(line.channel_amount_fen),
                line.note.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("another reconciliation of this channel and day is running")]
    AlreadyRunning,
    #[error("reconciliation lock: {0}")]
    Lock(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run needs: the orders and channels (through the checkout) and the cache.
#[derive(Clone)]
pub struct Reconciler {
    pub checkout: Checkout,
    pub cache: SharedCache,
}

/// What matching came to, before it is stored.
#[derive(Default)]
struct Outcome {
    counts: ReconciliationCounts,
    lines: Vec<ReconciliationLine>,
}

impl Reconciler {
    /// One run of `channel`'s bill for `day`, if no other instance is running the same.
    /// A bill that cannot be had (unsupported, corrupt, unreachable) makes a `failed`
    /// run, not an error.
    pub async fn reconcile(
        &self,
        channel: Provider,
        day: NaiveDate,
        actor: &str,
    ) -> Result<ReconcileReport, ReconcileError> {
        let bill_date = day.format("%Y-%m-%d").to_string();
        let key = format!("job:reconcile:{}:{bill_date}", channel.code());
        let Some(lock) = CacheLock::try_acquire(&self.cache, &key, LOCK_TTL).await? else {
            return Err(ReconcileError::AlreadyRunning);
        };
        let result = self.run_locked(channel, day, &bill_date, actor).await;
        if let Err(error) = lock.release().await {
            tracing::warn!(%error, "cannot release the reconciliation lock; it expires by itself");
        }
        result
    }

    async fn run_locked(
        &self,
        channel: Provider,
        day: NaiveDate,
        bill_date: &str,
        actor: &str,
    ) -> Result<ReconcileReport, ReconcileError> {
        let store = &self.checkout.store;
        let audit = AuditEntry::new(actor, AUDIT_ACTION, "").after(json!({
            "channel": channel.code(),
            "bill_date": bill_date,
        }));
        let run = NewReconciliationRun {
            channel: channel.code(),
            bill_date,
            actor,
        };
        let run_id = store
            .start_reconciliation_run(&run, &audit, self.checkout.clock.now())
            .await?;
        match self.work(channel, day).await {
            Ok(outcome) => {
                store
                    .finish_reconciliation_run(
                        run_id,
                        &outcome.counts,
                        &outcome.lines,
                        self.checkout.clock.now(),
                    )
                    .await?;
            }
            Err(reason) => {
                tracing::warn!(run = run_id, channel = channel.code(), %reason, "reconciliation failed");
                store
                    .fail_reconciliation_run(run_id, &reason, self.checkout.clock.now())
                    .await?;
            }
        }
        let run = store
            .reconciliation_run(run_id)
            .await?
            .ok_or(StoreError::Inconsistent("a reconciliation run vanished"))?;
        let lines = store.reconciliation_lines(run_id).await?;
        tracing::info!(
            run = run.id,
            channel = %run.channel,
            day = %run.bill_date,
            status = run.status.as_str(),
            applied = run.counts.applied,
            flagged = lines.len(),
            "reconciliation"
        );
        Ok(ReconcileReport { run, lines })
    }

    /// Fetches the bill, reads our side and matches them. `Err` says, in the office's
    /// words, why the run failed.
    async fn work(&self, channel: Provider, day: NaiveDate) -> Result<Outcome, String> {
        let store = &self.checkout.store;
        let Some(source) = self.checkout.channels.for_provider(channel) else {
            return Err(format!("{}未配置，无法对账", channel.label()));
        };
        let (from, to) = day_bounds(day).ok_or_else(|| format!("日期 {day} 无效"))?;
        let paid_that_day = store
            .orders_paid_between(&PaymentChannel::of(channel), from, to)
            .await
            .map_err(|error| format!("读取我方订单失败：{error}"))?;
        let refunded_that_day = store
            .refunds_succeeded_between(&PaymentChannel::of(channel), from, to)
            .await
            .map_err(|error| format!("读取我方退款失败：{error}"))?;
        let bill = match source.bill(day).await {
            Ok(bill) => bill,
            // No bill and nothing paid or refunded with us: a day without trade.
            Err(BillError::NoBill) if paid_that_day.is_empty() && refunded_that_day.is_empty() => {
                Vec::new()
            }
            Err(BillError::NoBill) => {
                return Err(format!(
                    "{}没有该日账单（尚未生成？），而我方当日有 {} 笔已缴订单、{} 笔成功退款；请稍后重新对账",
                    channel.label(),
                    paid_that_day.len(),
                    refunded_that_day.len()
                ));
            }
            Err(BillError::Unsupported) => {
                return Err(format!("{}不支持下载对账单（不支持）", channel.label()));
            }
            Err(BillError::Corrupt(why)) => {
                return Err(format!("账单校验失败，未核对、未入账任何一笔：{why}"));
            }
            Err(BillError::Channel(error)) => return Err(format!("获取账单失败：{error}")),
        };
        let ours = self.our_side(&bill, paid_that_day).await?;
        let mut outcome = self.settle(&bill, &ours).await?;
        let our_refunds = self.our_refunds(&bill, refunded_that_day).await?;
        self.settle_refunds(&bill, &our_refunds, &mut outcome)
            .await?;
        Ok(outcome)
    }

    /// Our orders paid that day, and every order the bill names, once each.
    async fn our_side(
        &self,
        bill: &[BillLine],
        paid_that_day: Vec<OrderRecord>,
    ) -> Result<Vec<OurOrder>, String> {
        let numbers: Vec<&str> = bill.iter().map(|line| line.out_trade_no.as_str()).collect();
        let named = self
            .checkout
            .store
            .orders_numbered(&numbers)
            .await
            .map_err(|error| format!("读取账单所列订单失败：{error}"))?;
        let mut by_id: HashMap<i64, OrderRecord> = HashMap::new();
        for order in paid_that_day.into_iter().chain(named) {
            by_id.entry(order.id).or_insert(order);
        }
        let mut orders: Vec<OrderRecord> = by_id.into_values().collect();
        orders.sort_by_key(|order| order.id);
        Ok(orders
            .into_iter()
            .map(|order| OurOrder {
                paid: matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded),
                out_trade_no: order.out_trade_no,
                channel_trade_no: order.channel_trade_no,
                amount_fen: order.amount_fen,
            })
            .collect())
    }

    /// Matches, applies what the channel has and we lack, and counts.
    async fn settle(&self, bill: &[BillLine], ours: &[OurOrder]) -> Result<Outcome, String> {
        let payments: Vec<&BillLine> = bill
            .iter()
            .filter(|line| line.kind == BillLineKind::Payment)
            .collect();
        let billed: Vec<BilledPayment> = payments
            .iter()
            .map(|line| BilledPayment {
                out_trade_no: line.out_trade_no.clone(),
                channel_trade_no: line.channel_trade_no.clone(),
                amount_fen: line.amount_fen,
            })
            .collect();
        let mut outcome = Outcome::default();
        outcome.counts.bill_lines = i64::try_from(bill.len()).unwrap_or(i64::MAX);
        for finding in reconcile(&billed, ours) {
            match finding {
                Finding::Matched { .. } => outcome.counts.matched += 1,
                Finding::ToApply(payment) => {
                    let at = payments
                        .iter()
                        .find(|line| line.out_trade_no == payment.out_trade_no)
                        .map_or_else(|| self.checkout.clock.now(), |line| line.at);
                    self.apply(&payment, at, &mut outcome).await?;
                }
                Finding::MissingAtChannel {
                    out_trade_no,
                    channel_trade_no,
                    our_amount_fen,
                } => {
                    outcome.counts.missing_at_channel += 1;
                    outcome.lines.push(ReconciliationLine {
                        kind: "missing_at_channel".into(),
                        out_trade_no,
                        channel_trade_no,
                        our_amount_fen: Some(our_amount_fen),
                        channel_amount_fen: None,
                        note: Some("我方已入账，渠道账单中没有这笔；未做任何回退，请核实".into()),
                    });
                }
                Finding::AmountMismatch {
                    out_trade_no,
                    channel_trade_no,
                    our_amount_fen,
                    channel_amount_fen,
                } => {
                    outcome.counts.amount_mismatch += 1;
                    outcome.lines.push(ReconciliationLine {
                        kind: "amount_mismatch".into(),
                        out_trade_no,
                        channel_trade_no: Some(channel_trade_no),
                        our_amount_fen: Some(our_amount_fen),
                        channel_amount_fen: Some(channel_amount_fen),
                        note: Some("金额不一致，未做任何入账或回退，请核实".into()),
                    });
                }
                Finding::UnknownAtUs(payment) => {
                    outcome.counts.unknown_at_us += 1;
                    outcome.lines.push(ReconciliationLine {
                        kind: "unknown_at_us".into(),
                        out_trade_no: payment.out_trade_no,
                        channel_trade_no: Some(payment.channel_trade_no),
                        our_amount_fen: None,
                        channel_amount_fen: Some(payment.amount_fen),
                        note: Some("我方没有这个订单号，请核实".into()),
                    });
                }
            }
        }
        Ok(outcome)
    }

    /// A payment the channel vouches for (its bill) and we lack: applied as a
    /// notification would be.
    async fn apply(
        &self,
        payment: &BilledPayment,
        at: DateTime<Utc>,
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        let report = ChannelPayment {
            channel_trade_no: payment.channel_trade_no.clone(),
            amount_fen: payment.amount_fen,
            paid_at: at,
            payer_openid: None,
        };
        let line = |kind: &str, note: String| ReconciliationLine {
            kind: kind.to_owned(),
            out_trade_no: payment.out_trade_no.clone(),
            channel_trade_no: Some(payment.channel_trade_no.clone()),
            our_amount_fen: None,
            channel_amount_fen: Some(payment.amount_fen),
            note: Some(note),
        };
        match self.checkout.apply(&payment.out_trade_no, &report).await {
            Ok((Settled::Paid(order), true)) => {
                outcome.counts.applied += 1;
                let mut applied = line(
                    "applied",
                    "渠道已收款而我方未入账（通知丢失），已按账单入账".into(),
                );
                applied.our_amount_fen = Some(order.amount_fen);
                outcome.lines.push(applied);
            }
            // A notification or a query got there first.
            Ok((Settled::Paid(_), false)) => outcome.counts.matched += 1,
            Ok((settled, _)) => {
                let order = settled.order();
                let note = order
                    .exception
                    .clone()
                    .unwrap_or_else(|| "已记入订单异常，请在缴费记录中处理".into());
                let mut exception = line("exception", note);
                exception.our_amount_fen = Some(order.amount_fen);
                outcome.lines.push(exception);
            }
            Err(CheckoutError::UnknownOrder) => {
                outcome.counts.unknown_at_us += 1;
                outcome
                    .lines
                    .push(line("unknown_at_us", "我方没有这个订单号，请核实".into()));
            }
            Err(error) => {
                return Err(format!(
                    "入账 {} 时出错：{error}（已入账的不会重复入账，可重新对账）",
                    payment.out_trade_no
                ));
            }
        }
        Ok(())
    }

    /// Our refunds that succeeded that day, and every refund the bill names, once each.
    async fn our_refunds(
        &self,
        bill: &[BillLine],
        refunded_that_day: Vec<(RefundRecord, String)>,
    ) -> Result<Vec<OurRefund>, String> {
        let numbers: Vec<&str> = bill
            .iter()
            .filter_map(|line| match &line.kind {
                BillLineKind::Refund { out_refund_no } => Some(out_refund_no.as_str()),
                BillLineKind::Payment => None,
            })
            .collect();
        let named = self
            .checkout
            .store
            .refunds_numbered(&numbers)
            .await
            .map_err(|error| format!("读取账单所列退款失败：{error}"))?;
        let mut by_id: HashMap<i64, (RefundRecord, String)> = HashMap::new();
        for (refund, out_trade_no) in refunded_that_day.into_iter().chain(named) {
            by_id.entry(refund.id).or_insert((refund, out_trade_no));
        }
        let mut refunds: Vec<(RefundRecord, String)> = by_id.into_values().collect();
        refunds.sort_by_key(|(refund, _)| refund.id);
        Ok(refunds
            .into_iter()
            .map(|(refund, out_trade_no)| OurRefund {
                stand: match refund.status {
                    RefundStatus::Succeeded => OurRefundStand::Succeeded,
                    RefundStatus::Failed => OurRefundStand::Failed,
                    _ => OurRefundStand::Open,
                },
                out_refund_no: refund.out_refund_no,
                out_trade_no,
                amount_fen: refund.amount_fen,
            })
            .collect())
    }

    /// Matches the bill's refund lines against our refunds and applies what the
    /// channel refunded and we still hold open. Refund findings are counted in the
    /// run's columns beside the payments' (its counts are of bill lines and our
    /// records, whatever their kind): matched → `matched`, applied → `applied`,
    /// absent from the bill → `missing_at_channel`, differing amounts (and a refund
    /// the channel made that we recorded as failed: what was given back differs) →
    /// `amount_mismatch`, a refund number we never made → `unknown_at_us`. The lines
    /// say which are refunds (`refund_…`).
    async fn settle_refunds(
        &self,
        bill: &[BillLine],
        ours: &[OurRefund],
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        let billed: Vec<(BilledRefund, chrono::DateTime<Utc>)> = bill
            .iter()
            .filter_map(|line| match &line.kind {
                BillLineKind::Refund { out_refund_no } => Some((
                    BilledRefund {
                        out_refund_no: out_refund_no.clone(),
                        out_trade_no: line.out_trade_no.clone(),
                        channel_trade_no: line.channel_trade_no.clone(),
                        amount_fen: line.amount_fen,
                    },
                    line.at,
                )),
                BillLineKind::Payment => None,
            })
            .collect();
        let lines: Vec<BilledRefund> = billed.iter().map(|(line, _)| line.clone()).collect();
        for finding in reconcile_refunds(&lines, ours) {
            match finding {
                RefundFinding::Matched { .. } => outcome.counts.matched += 1,
                RefundFinding::ToApply(refund) => {
                    let at = billed
                        .iter()
                        .find(|(line, _)| line.out_refund_no == refund.out_refund_no)
                        .map_or_else(|| self.checkout.clock.now(), |(_, at)| *at);
                    self.apply_refund(&refund, at, outcome).await?;
                }
                RefundFinding::FailedWithUs(refund) => {
                    outcome.counts.amount_mismatch += 1;
                    outcome.lines.push(refund_line(
                        "refund_amount_mismatch",
                        &refund,
                        None,
                        "渠道账单显示已退款，我方记为退款失败；未做任何更改，请核实",
                    ));
                }
                RefundFinding::MissingAtChannel {
                    out_refund_no,
                    out_trade_no,
                    our_amount_fen,
                } => {
                    outcome.counts.missing_at_channel += 1;
                    outcome.lines.push(ReconciliationLine {
                        kind: "refund_missing_at_channel".into(),
                        out_trade_no,
                        channel_trade_no: None,
                        our_amount_fen: Some(our_amount_fen),
                        channel_amount_fen: None,
                        note: Some(format!(
                            "退款单 {out_refund_no}：我方已记退款成功，渠道账单中没有；未做任何回退，请核实"
                        )),
                    });
                }
                RefundFinding::AmountMismatch {
                    billed,
                    our_amount_fen,
                } => {
                    outcome.counts.amount_mismatch += 1;
                    outcome.lines.push(refund_line(
                        "refund_amount_mismatch",
                        &billed,
                        Some(our_amount_fen),
                        "退款金额不一致，未做任何更改，请核实",
                    ));
                }
                RefundFinding::UnknownAtUs(refund) => {
                    outcome.counts.unknown_at_us += 1;
                    outcome.lines.push(refund_line(
                        "refund_unknown_at_us",
                        &refund,
                        None,
                        "我方没有这个退款单号，请核实",
                    ));
                }
            }
        }
        Ok(())
    }

    /// A refund the channel's bill shows done and we still hold open: applied as a
    /// query's answer would be ([`Refunds::apply`]), so a notification or a query
    /// that gets there too changes nothing more.
    async fn apply_refund(
        &self,
        refund: &BilledRefund,
        at: DateTime<Utc>,
        outcome: &mut Outcome,
    ) -> Result<(), String> {
        let refunds = Refunds::from_checkout(&self.checkout);
        let ours = self
            .checkout
            .store
            .find_refund(&refund.out_refund_no)
            .await
            .map_err(|error| format!("读取退款 {} 失败：{error}", refund.out_refund_no))?;
        // The bill carries the transaction, not the channel's refund number: keep the
        // one the channel's answer gave us. Alipay's refund number is its trade number,
        // and a WeChat refund whose answer was lost has none yet: the transaction then.
        let channel_refund_no = ours
            .as_ref()
            .and_then(|ours| ours.channel_refund_no.clone())
            .unwrap_or_else(|| refund.channel_trade_no.clone());
        let state = RefundState::Succeeded {
            channel_refund_no,
            succeeded_at: at,
        };
        let (record, changed) =
            refunds
                .apply(&refund.out_refund_no, &state)
                .await
                .map_err(|error| {
                    format!(
                        "补记退款 {} 时出错：{error}（已补记的不会重复，可重新对账）",
                        refund.out_refund_no
                    )
                })?;
        match (record.status, changed) {
            (RefundStatus::Succeeded, true) => {
                outcome.counts.applied += 1;
                outcome.lines.push(refund_line(
                    "refund_applied",
                    refund,
                    Some(record.amount_fen),
                    &format!(
                        "退款单 {}：渠道已退款而我方未得知（通知与查询均未到），已按账单记为退款成功",
                        refund.out_refund_no
                    ),
                ));
            }
            // A notification or a query got there first.
            (RefundStatus::Succeeded, false) => outcome.counts.matched += 1,
            _ => {
                outcome.counts.amount_mismatch += 1;
                outcome.lines.push(refund_line(
                    "refund_amount_mismatch",
                    refund,
                    None,
                    "渠道账单显示已退款，我方记为退款失败；未做任何更改，请核实",
                ));
            }
        }
        Ok(())
    }

    /// The channels with a channel configured, in the order the office lists them.
    pub fn configured_channels(&self) -> Vec<Provider> {
        Provider::ALL
            .into_iter()
            .filter(|channel| self.checkout.channels.for_provider(*channel).is_some())
            .collect()
    }
}

/// A reconciliation line about a billed refund; the note names our refund number.
fn refund_line(
    kind: &str,
    refund: &BilledRefund,
    our_amount_fen: Option<i64>,
    note: &str,
) -> ReconciliationLine {
    let note = if note.starts_with("退款单") {
        note.to_owned()
    } else {
        format!("退款单 {}：{note}", refund.out_refund_no)
    };
    ReconciliationLine {
        kind: kind.to_owned(),
        out_trade_no: refund.out_trade_no.clone(),
        channel_trade_no: Some(refund.channel_trade_no.clone()),
        our_amount_fen,
        channel_amount_fen: Some(refund.amount_fen),
        note: Some(note),
    }
}

/// The running schedule; dropping it stops it.
pub struct ReconcileSchedule(Option<JoinHandle<()>>);

impl Drop for ReconcileSchedule {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Reconciles yesterday's bills of every configured channel at each time `schedule`
/// names (Beijing time), forever.
pub fn spawn_schedule(
    reconciler: Reconciler,
    schedule: cron::Schedule,
    metrics: Arc<Metrics>,
) -> ReconcileSchedule {
    if reconciler.configured_channels().is_empty() {
        tracing::info!("no payment channel configured: reconciliation is not scheduled");
        return ReconcileSchedule(None);
    }
    ReconcileSchedule(Some(tokio::spawn(run_schedule(
        reconciler, schedule, metrics,
    ))))
}

/// Each channel's reconciliation is its own job in metrics.
fn job_name(channel: Provider) -> &'static str {
    match channel {
        Provider::WechatPay => "reconcile_wechat",
        Provider::Alipay => "reconcile_alipay",
        Provider::Abc => "reconcile_abc",
    }
}

async fn run_schedule(reconciler: Reconciler, schedule: cron::Schedule, metrics: Arc<Metrics>) {
    let clock = reconciler.checkout.clock.clone();
    let Some(mut due) = next_run(&schedule, clock.now()) else {
        tracing::warn!(
            schedule = schedule.source(),
            "CAMPUSPAY_RECONCILE_SCHEDULE names no future time; reconciliation will not run on its own"
        );
        return;
    };
    tracing::info!(next = %due, schedule = schedule.source(), "reconciliation scheduled");
    loop {
        let now = clock.now();
        if now < due {
            tokio::time::sleep(wait(now, due)).await;
            continue;
        }
        let day = beijing_yesterday(now);
        for channel in reconciler.configured_channels() {
            let result = match reconciler.reconcile(channel, day, ACTOR_SCHEDULE).await {
                Ok(report) => {
                    tracing::info!(
                        run = report.run.id,
                        failed = report.failed(),
                        "scheduled reconciliation done"
                    );
                    if report.failed() {
                        JobResult::Failed
                    } else {
                        JobResult::Ok
                    }
                }
                Err(ReconcileError::AlreadyRunning) => {
                    tracing::info!(
                        channel = channel.code(),
                        "scheduled reconciliation skipped: another run holds the lock"
                    );
                    JobResult::Skipped
                }
                Err(error) => {
                    tracing::error!(error = ?error, channel = channel.code(), "scheduled reconciliation failed");
                    JobResult::Failed
                }
            };
            metrics.job_run(job_name(channel), result, clock.now());
        }
        match next_run(&schedule, clock.now()) {
            Some(next) => due = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_strictly_year_month_day() {
        assert_eq!(parse_day("2026-09-01"), NaiveDate::from_ymd_opt(2026, 9, 1));
        for bad in ["2026-9-1", "2026-02-30", "20260901", "yesterday", ""] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_beijing_day_starts_at_four_pm_utc_the_day_before() {
        let (from, to) = day_bounds(NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-08-31T16:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-09-01T16:00:00+00:00");
    }

    #[test]
    fn yesterday_is_read_in_beijing() {
        // 01:00 Beijing on 2 September is 17:00 UTC on 1 September.
        let now = DateTime::parse_from_rfc3339("2026-09-01T17:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            beijing_yesterday(now),
            NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()
        );
    }
}
