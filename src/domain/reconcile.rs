//! Matching a channel's bill against our orders, line by line. Pure: the job hands
//! in the bill's payments and our orders (those paid on the bill's day on that
//! channel, and those the bill names from any day) and gets one finding per line.
//!
//! The rules: paid on both sides, same amount: fine. Paid at the channel, not with us:
//! to be applied (through the same idempotent path as a notification). Paid with us
//! but absent from the bill: flagged, never reverted. Amounts that differ: flagged,
//! nothing applied. A trade number we never made: flagged.

use std::collections::HashSet;

/// A payment line of the bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledPayment {
    pub out_trade_no: String,
    pub channel_trade_no: String,
    pub amount_fen: i64,
}

/// One of our orders, as matching needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurOrder {
    pub out_trade_no: String,
    /// The channel's transaction we recorded, if any.
    pub channel_trade_no: Option<String>,
    pub amount_fen: i64,
    /// Paid with us (refunded later counts: it was paid that day).
    pub paid: bool,
}

/// What one line came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Matched {
        out_trade_no: String,
    },
    /// Paid at the channel, not (or not by this transaction) with us.
    ToApply(BilledPayment),
    /// Paid with us, absent from the bill.
    MissingAtChannel {
        out_trade_no: String,
        channel_trade_no: Option<String>,
        our_amount_fen: i64,
    },
    AmountMismatch {
        out_trade_no: String,
        channel_trade_no: String,
        our_amount_fen: i64,
        channel_amount_fen: i64,
    },
    /// A trade number we never made.
    UnknownAtUs(BilledPayment),
}

/// One finding per bill line, then one per paid order of ours the bill lacks. An
/// order in `ours` that is paid must be of the bill's day (or named by the bill).
pub fn reconcile(bill: &[BilledPayment], ours: &[OurOrder]) -> Vec<Finding> {
    let mut findings: Vec<Finding> = bill.iter().map(|line| judge(line, ours)).collect();
    let named: HashSet<&str> = bill.iter().map(|line| line.out_trade_no.as_str()).collect();
    findings.extend(
        ours.iter()
            .filter(|order| order.paid && !named.contains(order.out_trade_no.as_str()))
            .map(|order| Finding::MissingAtChannel {
                out_trade_no: order.out_trade_no.clone(),
                channel_trade_no: order.channel_trade_no.clone(),
                our_amount_fen: order.amount_fen,
            }),
    );
    findings
}

fn judge(line: &BilledPayment, ours: &[OurOrder]) -> Finding {
    let Some(order) = ours
        .iter()
        .find(|order| order.out_trade_no == line.out_trade_no)
    else {
        return Finding::UnknownAtUs(line.clone());
    };
    if order.amount_fen != line.amount_fen {
        return Finding::AmountMismatch {
            out_trade_no: line.out_trade_no.clone(),
            channel_trade_no: line.channel_trade_no.clone(),
            our_amount_fen: order.amount_fen,
            channel_amount_fen: line.amount_fen,
        };
    }
    // The very transaction we recorded: matched, whatever became of the order since
    // (refunded; closed with the payment noted for the office).
    if order.channel_trade_no.as_deref() == Some(line.channel_trade_no.as_str()) {
        return Finding::Matched {
            out_trade_no: line.out_trade_no.clone(),
        };
    }
    // Unpaid with us, or paid by another transaction (a second payment): applying it
    // settles the first and records the second for the office.
    Finding::ToApply(line.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billed(number: &str, trade: &str, fen: i64) -> BilledPayment {
        BilledPayment {
            out_trade_no: number.into(),
            channel_trade_no: trade.into(),
            amount_fen: fen,
        }
    }

    fn ours(number: &str, trade: Option<&str>, fen: i64, paid: bool) -> OurOrder {
        OurOrder {
            out_trade_no: number.into(),
            channel_trade_no: trade.map(Into::into),
            amount_fen: fen,
            paid,
        }
    }

    #[test]
    fn paid_on_both_sides_for_the_same_amount_matches() {
        let findings = reconcile(
            &[billed("CP1", "42001", 450_000)],
            &[ours("CP1", Some("42001"), 450_000, true)],
        );
        assert_eq!(
            findings,
            [Finding::Matched {
                out_trade_no: "CP1".into()
            }]
        );
    }

    #[test]
    fn paid_at_the_channel_only_is_to_be_applied() {
        for order in [
            ours("CP1", None, 450_000, false),
            // Paid with us by another transaction: a second payment.
            ours("CP1", Some("42000"), 450_000, true),
        ] {
            let findings = reconcile(&[billed("CP1", "42001", 450_000)], &[order]);
            assert_eq!(
                findings,
                [Finding::ToApply(billed("CP1", "42001", 450_000))]
            );
        }
    }

    #[test]
    fn paid_with_us_but_absent_from_the_bill_is_flagged() {
        let findings = reconcile(
            &[],
            &[
                ours("CP1", Some("42001"), 450_000, true),
                // Named by nobody and not paid: nothing to say.
                ours("CP2", None, 100, false),
            ],
        );
        assert_eq!(
            findings,
            [Finding::MissingAtChannel {
                out_trade_no: "CP1".into(),
                channel_trade_no: Some("42001".into()),
                our_amount_fen: 450_000
            }]
        );
    }

    #[test]
    fn different_amounts_are_flagged_and_never_applied() {
        for order in [
            ours("CP1", Some("42001"), 450_000, true),
            ours("CP1", None, 450_000, false),
        ] {
            let findings = reconcile(&[billed("CP1", "42001", 450_001)], &[order]);
            assert_eq!(
                findings,
                [Finding::AmountMismatch {
                    out_trade_no: "CP1".into(),
                    channel_trade_no: "42001".into(),
                    our_amount_fen: 450_000,
                    channel_amount_fen: 450_001
                }]
            );
        }
    }

    #[test]
    fn a_trade_number_we_never_made_is_unknown_at_us() {
        let findings = reconcile(&[billed("XX1", "42009", 1)], &[]);
        assert_eq!(findings, [Finding::UnknownAtUs(billed("XX1", "42009", 1))]);
    }

    #[test]
    fn a_refunded_or_closed_order_with_the_billed_transaction_matches() {
        let findings = reconcile(
            &[billed("CP1", "42001", 100), billed("CP2", "42002", 200)],
            &[
                ours("CP1", Some("42001"), 100, true),
                ours("CP2", Some("42002"), 200, false),
            ],
        );
        assert!(
            findings
                .iter()
                .all(|finding| matches!(finding, Finding::Matched { .. }))
        );
    }
}
