//! The books from the outside: what each payment sandbox recorded (charged, closed,
//! refunded) against our orders, items and refunds, read with SQL of its own (never
//! the store's queries, so a bug in one of them cannot vouch for itself).
//!
//! Shared by the API tests (`support::books`) and the term-start bench
//! (`benches/term_start.rs`, through `#[path]`); each uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use campus_pay::sandbox::ledger::{ChannelRecord, ChannelRefund, Upstream};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};

/// One of our orders, as its row says.
#[derive(Debug, Clone)]
pub struct OurOrder {
    pub id: i64,
    pub out_trade_no: String,
    pub channel: String,
    pub amount_fen: i64,
    pub status: String,
    pub channel_trade_no: Option<String>,
    pub has_paid_at: bool,
    pub exception: Option<String>,
}

impl OurOrder {
    /// The channel that collects for it.
    fn upstream(&self) -> Option<Upstream> {
        match self.channel.as_str() {
            "wechat_jsapi" | "wechat_native" => Some(Upstream::WechatPay),
            "alipay" => Some(Upstream::Alipay),
            "abc_page" | "abc_scan" => Some(Upstream::Abc),
            _ => None,
        }
    }

    /// Money came in for it, by our books: paid, refunded, or closed with the
    /// channel's payment recorded on it.
    fn holds_payment(&self) -> bool {
        matches!(self.status.as_str(), "paid" | "refunded") || self.channel_trade_no.is_some()
    }

    /// Closed, with a payment that came afterwards, shown to the office.
    fn is_flagged_late_payment(&self) -> bool {
        self.status == "closed"
            && self.channel_trade_no.is_some()
            && self.has_paid_at
            && self.exception.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct OurLine {
    pub order_id: i64,
    pub fee_item_id: i64,
    pub amount_fen: i64,
}

#[derive(Debug, Clone)]
pub struct OurItem {
    pub id: i64,
    pub status: String,
    pub paid_order_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct OurRefund {
    pub out_refund_no: String,
    pub order_id: i64,
    pub amount_fen: i64,
    pub status: String,
}

/// Our side, row by row.
#[derive(Debug, Clone, Default)]
pub struct OurBooks {
    pub orders: Vec<OurOrder>,
    pub lines: Vec<OurLine>,
    pub items: Vec<OurItem>,
    pub refunds: Vec<OurRefund>,
    pub accepted_notifications: i64,
}

/// Reads our tables (in `schema` when given, else the connection's own).
pub async fn read_ours(db: &impl ConnectionTrait, schema: Option<&str>) -> Result<OurBooks, DbErr> {
    let prefix = schema.map_or_else(String::new, |schema| format!("\"{schema}\"."));
    let rows = |sql: String| {
        let statement = Statement::from_string(db.get_database_backend(), sql);
        db.query_all_raw(statement)
    };
    let orders = rows(format!(
        "SELECT id, out_trade_no, channel, amount_fen, status, channel_trade_no, \
         CAST(CASE WHEN paid_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_paid_at, \
         exception FROM {prefix}orders ORDER BY id"
    ))
    .await?;
    let lines = rows(format!(
        "SELECT order_id, fee_item_id, amount_fen FROM {prefix}order_items ORDER BY id"
    ))
    .await?;
    let items = rows(format!(
        "SELECT id, status, paid_order_id FROM {prefix}fee_items ORDER BY id"
    ))
    .await?;
    let refunds = rows(format!(
        "SELECT out_refund_no, order_id, amount_fen, status FROM {prefix}refunds ORDER BY id"
    ))
    .await?;
    let accepted = rows(format!(
        "SELECT CAST(count(*) AS BIGINT) AS n FROM {prefix}payment_notifications \
         WHERE verdict = 'accepted'"
    ))
    .await?;
    Ok(OurBooks {
        orders: orders.iter().map(order_of).collect::<Result<_, _>>()?,
        lines: lines.iter().map(line_of).collect::<Result<_, _>>()?,
        items: items.iter().map(item_of).collect::<Result<_, _>>()?,
        refunds: refunds.iter().map(refund_of).collect::<Result<_, _>>()?,
        accepted_notifications: accepted
            .first()
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0),
    })
}

fn order_of(row: &QueryResult) -> Result<OurOrder, DbErr> {
    Ok(OurOrder {
        id: row.try_get("", "id")?,
        out_trade_no: row.try_get("", "out_trade_no")?,
        channel: row.try_get("", "channel")?,
        amount_fen: row.try_get("", "amount_fen")?,
        status: row.try_get("", "status")?,
        channel_trade_no: row.try_get("", "channel_trade_no")?,
        has_paid_at: row.try_get::<i64>("", "has_paid_at")? == 1,
        exception: row.try_get("", "exception")?,
    })
}

fn line_of(row: &QueryResult) -> Result<OurLine, DbErr> {
    Ok(OurLine {
        order_id: row.try_get("", "order_id")?,
        fee_item_id: row.try_get("", "fee_item_id")?,
        amount_fen: row.try_get("", "amount_fen")?,
    })
}

fn item_of(row: &QueryResult) -> Result<OurItem, DbErr> {
    Ok(OurItem {
        id: row.try_get("", "id")?,
        status: row.try_get("", "status")?,
        paid_order_id: row.try_get("", "paid_order_id")?,
    })
}

fn refund_of(row: &QueryResult) -> Result<OurRefund, DbErr> {
    Ok(OurRefund {
        out_refund_no: row.try_get("", "out_refund_no")?,
        order_id: row.try_get("", "order_id")?,
        amount_fen: row.try_get("", "amount_fen")?,
        status: row.try_get("", "status")?,
    })
}

/// What the two sides hold, once they agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Our orders with status paid, in the order they were made.
    pub paid_orders: Vec<String>,
    /// Our open orders, in the order they were made.
    pub open_orders: Vec<String>,
    /// Closed orders holding a payment that came afterwards, shown to the office.
    pub flagged_orders: Vec<String>,
    /// Orders the channels charged.
    pub charged_orders: usize,
    /// Fen the channels received, and gave back (refunds that succeeded).
    pub received_fen: i64,
    pub refunded_fen: i64,
    /// Fen our books count as kept: applied to items (paid and refunded orders) and
    /// held on flagged orders. Their sum is what the channels kept.
    pub kept_applied_fen: i64,
    pub kept_flagged_fen: i64,
    /// Refunds the channels made or are making, each matched with one of ours.
    pub channel_refunds: usize,
    /// Orders we closed without payment that their channel would still take money
    /// for (not a wrong book, a payment that could still come: a late payment).
    pub closed_here_payable_there: Vec<String>,
    pub accepted_notifications: i64,
}

impl Summary {
    pub fn describe(&self) -> String {
        format!(
            "{} orders charged at the channels, {} fen received, {} fen refunded; ours: {} \
             paid ({} fen kept on items), {} flagged ({} fen), {} open; {} refunds matched; \
             {} accepted notifications; closed here but payable there: {}",
            self.charged_orders,
            self.received_fen,
            self.refunded_fen,
            self.paid_orders.len(),
            self.kept_applied_fen,
            self.flagged_orders.len(),
            self.kept_flagged_fen,
            self.open_orders.len(),
            self.channel_refunds,
            self.accepted_notifications,
            first_few(&self.closed_here_payable_there),
        )
    }
}

/// A list of order numbers short enough to read (a load test has thousands).
fn first_few(numbers: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown = numbers[..numbers.len().min(SHOWN)].join(", ");
    match numbers.len() {
        0 => "none".to_owned(),
        n if n <= SHOWN => shown,
        n => format!("{shown} and {} more", n - SHOWN),
    }
}

/// The comparison: the summary, and every way the two sides disagree (empty when the
/// books balance).
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub summary: Summary,
    pub violations: Vec<String>,
}

/// Compares what the channels recorded with our books.
pub fn compare(channels: &[ChannelRecord], ours: &OurBooks) -> Verdict {
    let mut check = Check::new(ours);
    check.orders_whole();
    check.channel_charges(channels);
    check.our_payments(channels);
    check.refunds(channels);
    check.items();
    check.totals(channels);
    check.closed_orders(channels);
    check.verdict.summary.accepted_notifications = ours.accepted_notifications;
    check.verdict
}

struct Check<'a> {
    ours: &'a OurBooks,
    orders_by_number: HashMap<&'a str, &'a OurOrder>,
    orders_by_id: HashMap<i64, &'a OurOrder>,
    lines_of: BTreeMap<i64, Vec<&'a OurLine>>,
    refunds_of: HashMap<i64, Vec<&'a OurRefund>>,
    verdict: Verdict,
}

impl<'a> Check<'a> {
    fn new(ours: &'a OurBooks) -> Check<'a> {
        let mut lines_of: BTreeMap<i64, Vec<&OurLine>> = BTreeMap::new();
        for line in &ours.lines {
            lines_of.entry(line.order_id).or_default().push(line);
        }
        let mut refunds_of: HashMap<i64, Vec<&OurRefund>> = HashMap::new();
        for refund in &ours.refunds {
            refunds_of.entry(refund.order_id).or_default().push(refund);
        }
        Check {
            ours,
            orders_by_number: ours
                .orders
                .iter()
                .map(|order| (order.out_trade_no.as_str(), order))
                .collect(),
            orders_by_id: ours.orders.iter().map(|order| (order.id, order)).collect(),
            lines_of,
            refunds_of,
            verdict: Verdict::default(),
        }
    }

    fn fail(&mut self, violation: String) {
        self.verdict.violations.push(violation);
    }

    /// Every order has lines that add up to its amount.
    fn orders_whole(&mut self) {
        for order in &self.ours.orders {
            let lines = self.lines_of.get(&order.id).map_or(&[][..], Vec::as_slice);
            let total: i64 = lines.iter().map(|line| line.amount_fen).sum();
            if lines.is_empty() || total != order.amount_fen {
                self.fail(format!(
                    "order {}: {} lines add up to {total} fen, the order says {}",
                    order.out_trade_no,
                    lines.len(),
                    order.amount_fen
                ));
            }
            match order.status.as_str() {
                "paid" => self
                    .verdict
                    .summary
                    .paid_orders
                    .push(order.out_trade_no.clone()),
                "created" => self
                    .verdict
                    .summary
                    .open_orders
                    .push(order.out_trade_no.clone()),
                _ => {}
            }
            if order.is_flagged_late_payment() {
                self.verdict
                    .summary
                    .flagged_orders
                    .push(order.out_trade_no.clone());
            }
        }
    }

    /// Every order a channel charged is, here, paid (or refunded) or a late payment
    /// flagged for the office, for the same amount and under the channel's number.
    fn channel_charges(&mut self, channels: &[ChannelRecord]) {
        for record in channels {
            let Some(charge) = &record.charge else {
                continue;
            };
            let (no, at) = (&record.out_trade_no, record.upstream.name());
            self.verdict.summary.charged_orders += 1;
            self.verdict.summary.received_fen += charge.amount_fen;
            let Some(order) = self.orders_by_number.get(no.as_str()).copied() else {
                self.fail(format!(
                    "{at} charged {} fen for {no}: we have no such order",
                    charge.amount_fen
                ));
                continue;
            };
            if order.upstream() != Some(record.upstream) {
                self.fail(format!(
                    "{at} charged {no}, our order is for {}",
                    order.channel
                ));
            }
            if charge.amount_fen != order.amount_fen {
                self.fail(format!(
                    "{at} charged {} fen for {no}, our order is for {} fen",
                    charge.amount_fen, order.amount_fen
                ));
            }
            let recorded = matches!(order.status.as_str(), "paid" | "refunded")
                || order.is_flagged_late_payment();
            if !recorded {
                self.fail(format!(
                    "{at} charged {no} at {}: ours is {} (channel number {:?}, exception {:?}): \
                     the money is not in our books",
                    charge.at, order.status, order.channel_trade_no, order.exception
                ));
            }
            if let Some(transaction_id) = &charge.transaction_id
                && order.channel_trade_no.as_ref() != Some(transaction_id)
            {
                self.fail(format!(
                    "{no}: {at}'s number is {transaction_id}, ours {:?}",
                    order.channel_trade_no
                ));
            }
            if order.status == "refunded" && record.refunded_fen() != order.amount_fen {
                self.fail(format!(
                    "{no} is refunded here, {at} gave back {} of {} fen",
                    record.refunded_fen(),
                    charge.amount_fen
                ));
            }
        }
    }

    /// Every order that holds a payment here was charged at its channel.
    fn our_payments(&mut self, channels: &[ChannelRecord]) {
        let charged: HashMap<(Upstream, &str), &ChannelRecord> = channels
            .iter()
            .filter(|record| record.charge.is_some())
            .map(|record| ((record.upstream, record.out_trade_no.as_str()), record))
            .collect();
        for order in &self.ours.orders {
            if !order.holds_payment() {
                continue;
            }
            let found = order
                .upstream()
                .and_then(|upstream| charged.get(&(upstream, order.out_trade_no.as_str())));
            if found.is_none() {
                self.fail(format!(
                    "order {} is {} here with channel number {:?}: {} never charged it",
                    order.out_trade_no,
                    order.status,
                    order.channel_trade_no,
                    order.upstream().map_or("no channel", Upstream::name)
                ));
            }
        }
    }

    /// Every refund a channel made is one of ours, for the same order and amount, and
    /// succeeded here exactly when it succeeded there; every refund that succeeded or
    /// is processing here is at the channel.
    fn refunds(&mut self, channels: &[ChannelRecord]) {
        let ours: HashMap<&str, &OurRefund> = self
            .ours
            .refunds
            .iter()
            .map(|refund| (refund.out_refund_no.as_str(), refund))
            .collect();
        let mut at_channels: HashMap<&str, &ChannelRefund> = HashMap::new();
        for record in channels {
            for refund in &record.refunds {
                at_channels.insert(refund.out_refund_no.as_str(), refund);
                self.verdict.summary.channel_refunds += 1;
                let no = &refund.out_refund_no;
                let Some(our) = ours.get(no.as_str()) else {
                    self.fail(format!(
                        "{} refunded {} fen of {} as {no}: we have no such refund",
                        record.upstream.name(),
                        refund.amount_fen,
                        record.out_trade_no
                    ));
                    continue;
                };
                let order = self.orders_by_id.get(&our.order_id);
                if order.map(|order| order.out_trade_no.as_str())
                    != Some(record.out_trade_no.as_str())
                {
                    self.fail(format!(
                        "refund {no} is on {} at the channel, on another order here",
                        record.out_trade_no
                    ));
                }
                if our.amount_fen != refund.amount_fen {
                    self.fail(format!(
                        "refund {no}: {} fen at the channel, {} here",
                        refund.amount_fen, our.amount_fen
                    ));
                }
                let agrees = if refund.succeeded {
                    our.status == "succeeded"
                } else {
                    matches!(our.status.as_str(), "requested" | "processing")
                };
                if !agrees {
                    self.fail(format!(
                        "refund {no}: {} at the channel, {} here",
                        if refund.succeeded {
                            "succeeded"
                        } else {
                            "on its way"
                        },
                        our.status
                    ));
                }
            }
        }
        for our in &self.ours.refunds {
            let there = at_channels.get(our.out_refund_no.as_str());
            let missing = match our.status.as_str() {
                "succeeded" => there.is_none_or(|refund| !refund.succeeded),
                "processing" => there.is_none(),
                _ => false,
            };
            if missing {
                self.fail(format!(
                    "refund {} is {} here, the channel has {:?}",
                    our.out_refund_no, our.status, there
                ));
            }
        }
    }

    /// No item paid by two orders unless the other is flagged or being refunded; a paid
    /// item points at a paid order that carries it; a held item is in exactly one open
    /// order, and every item of an open order is held.
    fn items(&mut self) {
        let mut paid_by: HashMap<i64, Vec<&OurOrder>> = HashMap::new();
        let mut held_by: HashMap<i64, Vec<&OurOrder>> = HashMap::new();
        for order in &self.ours.orders {
            let lines = self.lines_of.get(&order.id).map_or(&[][..], Vec::as_slice);
            let into = match order.status.as_str() {
                "paid" => &mut paid_by,
                "created" => &mut held_by,
                _ => continue,
            };
            for line in lines {
                into.entry(line.fee_item_id).or_default().push(order);
            }
        }
        let items: HashMap<i64, &OurItem> =
            self.ours.items.iter().map(|item| (item.id, item)).collect();
        for item in &self.ours.items {
            let payers = paid_by.get(&item.id).map_or(&[][..], Vec::as_slice);
            let unflagged: Vec<&str> = payers
                .iter()
                .filter(|order| order.exception.is_none() && !self.gives_back(order))
                .map(|order| order.out_trade_no.as_str())
                .collect();
            if unflagged.len() > 1 {
                self.fail(format!(
                    "item {} is paid by {unflagged:?}, none flagged or refunded",
                    item.id
                ));
            }
            let holders = held_by.get(&item.id).map_or(&[][..], Vec::as_slice);
            match item.status.as_str() {
                "paid" => {
                    let by = item.paid_order_id.and_then(|id| self.orders_by_id.get(&id));
                    let carried = by.is_some_and(|order| {
                        order.status == "paid" && payers.iter().any(|payer| payer.id == order.id)
                    });
                    if !carried {
                        self.fail(format!(
                            "item {} is paid, by order {:?}, which is not a paid order carrying it",
                            item.id,
                            by.map(|order| (&order.out_trade_no, &order.status))
                        ));
                    }
                }
                "in_order" if holders.len() != 1 => self.fail(format!(
                    "item {} is held, by {} open orders (a closed order's hold?)",
                    item.id,
                    holders.len()
                )),
                _ => {}
            }
        }
        for (item_id, holders) in &held_by {
            let status = items.get(item_id).map(|item| item.status.as_str());
            if status != Some("in_order") {
                let numbers: Vec<&str> = holders.iter().map(|o| o.out_trade_no.as_str()).collect();
                self.fail(format!(
                    "item {item_id} is in open order(s) {numbers:?} but is {status:?}"
                ));
            }
        }
        // A paid order with nothing to explain (no exception, no refund) paid its items.
        for (item_id, payers) in &paid_by {
            for order in payers {
                if order.exception.is_some() || self.gives_back(order) {
                    continue;
                }
                let item = items.get(item_id);
                if item.is_none_or(|item| {
                    item.status != "paid" || item.paid_order_id != Some(order.id)
                }) {
                    self.fail(format!(
                        "order {} is paid, without exception or refund, but item {item_id} is {:?}",
                        order.out_trade_no,
                        item.map(|item| (&item.status, item.paid_order_id))
                    ));
                }
            }
        }
    }

    /// Whether money of the order is being or has been given back (refunds that have
    /// not failed).
    fn gives_back(&self, order: &OurOrder) -> bool {
        self.refunds_of
            .get(&order.id)
            .is_some_and(|refunds| refunds.iter().any(|refund| refund.status != "failed"))
    }

    /// What the channels kept equals what our books count as kept (applied + flagged).
    fn totals(&mut self, channels: &[ChannelRecord]) {
        let kept_at_channels: i64 = channels.iter().map(ChannelRecord::kept_fen).sum();
        self.verdict.summary.refunded_fen = channels.iter().map(ChannelRecord::refunded_fen).sum();
        let (mut applied, mut flagged) = (0, 0);
        for order in &self.ours.orders {
            if !order.holds_payment() {
                continue;
            }
            let given_back: i64 = self.refunds_of.get(&order.id).map_or(0, |refunds| {
                refunds
                    .iter()
                    .filter(|refund| refund.status == "succeeded")
                    .map(|refund| refund.amount_fen)
                    .sum()
            });
            let kept = order.amount_fen - given_back;
            if order.status == "closed" {
                flagged += kept;
            } else {
                applied += kept;
            }
        }
        self.verdict.summary.kept_applied_fen = applied;
        self.verdict.summary.kept_flagged_fen = flagged;
        if kept_at_channels != applied + flagged {
            self.fail(format!(
                "the channels kept {kept_at_channels} fen; our books count {applied} applied \
                 + {flagged} flagged = {}",
                applied + flagged
            ));
        }
    }

    /// Orders we closed without payment that their channel still holds payable.
    fn closed_orders(&mut self, channels: &[ChannelRecord]) {
        let open_there: HashMap<(Upstream, &str), &ChannelRecord> = channels
            .iter()
            .filter(|record| record.charge.is_none() && !record.closed)
            .map(|record| ((record.upstream, record.out_trade_no.as_str()), record))
            .collect();
        for order in &self.ours.orders {
            if order.status != "closed" || order.holds_payment() {
                continue;
            }
            let payable = order.upstream().is_some_and(|upstream| {
                open_there.contains_key(&(upstream, order.out_trade_no.as_str()))
            });
            if payable {
                self.verdict
                    .summary
                    .closed_here_payable_there
                    .push(order.out_trade_no.clone());
            }
        }
    }
}
