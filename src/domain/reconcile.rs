//! Matching a channel's bill against our orders, line by line. Pure: the job hands
//! in the bill's payments and our orders (those paid on the bill's day on that
//! channel, and those the bill names from any day) and gets one finding per line.
//!
//! The rules: paid on both sides, same amount: fine. Paid at the channel, not with us:
//! to be applied (through the same idempotent path as a notification). Paid with us
//! but absent from the bill: flagged, never reverted. Amounts that differ: flagged,
//! nothing applied. A trade number we never made: flagged. Refund lines are matched
//! against our refunds (by our refund number) by the same rules ([`reconcile_refunds`]).

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

/// A refund line of the bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BilledRefund {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub channel_trade_no: String,
    pub amount_fen: i64,
}

/// Where one of our refunds stands, as matching needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OurRefundStand {
    Succeeded,
    /// Requested or processing: the money may be back already.
    Open,
    Failed,
}

/// One of our refunds: those that succeeded on the bill's day, and those the bill
/// names from any day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurRefund {
    pub out_refund_no: String,
    pub out_trade_no: String,
    pub amount_fen: i64,
    pub stand: OurRefundStand,
}

/// What one refund line (or one refund of ours the bill lacks) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundFinding {
    Matched {
        out_refund_no: String,
    },
    /// Refunded at the channel, still open with us: to be applied as a query answer.
    ToApply(BilledRefund),
    /// Refunded at the channel, but we recorded it as failed: never changed here
    /// (a final state does not go back), flagged for the office.
    FailedWithUs(BilledRefund),
    /// Succeeded with us, absent from the bill.
    MissingAtChannel {
        out_refund_no: String,
        out_trade_no: String,
        our_amount_fen: i64,
    },
    AmountMismatch {
        billed: BilledRefund,
        our_amount_fen: i64,
    },
    /// A refund number we never made.
    UnknownAtUs(BilledRefund),
}

/// One finding per refund line of the bill, then one per refund of ours that
/// succeeded and the bill lacks. The same rules as the payments': what the channel
/// vouches for and we lack is applied, what we have and the channel lacks is flagged
/// and never reverted, different amounts change nothing.
pub fn reconcile_refunds(bill: &[BilledRefund], ours: &[OurRefund]) -> Vec<RefundFinding> {
    let mut findings: Vec<RefundFinding> =
        bill.iter().map(|line| judge_refund(line, ours)).collect();
    let named: HashSet<&str> = bill
        .iter()
        .map(|line| line.out_refund_no.as_str())
        .collect();
    findings.extend(
        ours.iter()
            .filter(|refund| {
                refund.stand == OurRefundStand::Succeeded
                    && !named.contains(refund.out_refund_no.as_str())
            })
            .map(|refund| RefundFinding::MissingAtChannel {
                out_refund_no: refund.out_refund_no.clone(),
                out_trade_no: refund.out_trade_no.clone(),
                our_amount_fen: refund.amount_fen,
            }),
    );
    findings
}

fn judge_refund(line: &BilledRefund, ours: &[OurRefund]) -> RefundFinding {
    let Some(refund) = ours
        .iter()
        .find(|refund| refund.out_refund_no == line.out_refund_no)
    else {
        return RefundFinding::UnknownAtUs(line.clone());
    };
    if refund.amount_fen != line.amount_fen {
        return RefundFinding::AmountMismatch {
            billed: line.clone(),
            our_amount_fen: refund.amount_fen,
        };
    }
    match refund.stand {
        OurRefundStand::Succeeded => RefundFinding::Matched {
            out_refund_no: line.out_refund_no.clone(),
        },
        OurRefundStand::Open => RefundFinding::ToApply(line.clone()),
        OurRefundStand::Failed => RefundFinding::FailedWithUs(line.clone()),
    }
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

    fn billed_refund(number: &str, fen: i64) -> BilledRefund {
        BilledRefund {
            out_refund_no: number.into(),
            out_trade_no: "CP1".into(),
            channel_trade_no: "42001".into(),
            amount_fen: fen,
        }
    }

    fn our_refund(number: &str, fen: i64, stand: OurRefundStand) -> OurRefund {
        OurRefund {
            out_refund_no: number.into(),
            out_trade_no: "CP1".into(),
            amount_fen: fen,
            stand,
        }
    }

    #[test]
    fn a_refund_succeeded_on_both_sides_for_the_same_amount_matches() {
        let findings = reconcile_refunds(
            &[billed_refund("RF1", 100)],
            &[our_refund("RF1", 100, OurRefundStand::Succeeded)],
        );
        assert_eq!(
            findings,
            [RefundFinding::Matched {
                out_refund_no: "RF1".into()
            }]
        );
    }

    #[test]
    fn a_refund_open_with_us_and_billed_is_to_be_applied() {
        let findings = reconcile_refunds(
            &[billed_refund("RF1", 100)],
            &[our_refund("RF1", 100, OurRefundStand::Open)],
        );
        assert_eq!(
            findings,
            [RefundFinding::ToApply(billed_refund("RF1", 100))]
        );
    }

    #[test]
    fn a_refund_failed_with_us_but_billed_is_flagged_not_applied() {
        let findings = reconcile_refunds(
            &[billed_refund("RF1", 100)],
            &[our_refund("RF1", 100, OurRefundStand::Failed)],
        );
        assert_eq!(
            findings,
            [RefundFinding::FailedWithUs(billed_refund("RF1", 100))]
        );
    }

    #[test]
    fn a_refund_succeeded_with_us_but_absent_from_the_bill_is_flagged() {
        let findings = reconcile_refunds(
            &[],
            &[
                our_refund("RF1", 100, OurRefundStand::Succeeded),
                // Not (yet) succeeded: nothing to say.
                our_refund("RF2", 200, OurRefundStand::Open),
                our_refund("RF3", 300, OurRefundStand::Failed),
            ],
        );
        assert_eq!(
            findings,
            [RefundFinding::MissingAtChannel {
                out_refund_no: "RF1".into(),
                out_trade_no: "CP1".into(),
                our_amount_fen: 100
            }]
        );
    }

    #[test]
    fn refund_amounts_that_differ_are_flagged_whatever_our_stand() {
        for stand in [
            OurRefundStand::Succeeded,
            OurRefundStand::Open,
            OurRefundStand::Failed,
        ] {
            let findings = reconcile_refunds(
                &[billed_refund("RF1", 101)],
                &[our_refund("RF1", 100, stand)],
            );
            assert_eq!(
                findings,
                [RefundFinding::AmountMismatch {
                    billed: billed_refund("RF1", 101),
                    our_amount_fen: 100
                }]
            );
        }
    }

    #[test]
    fn a_refund_number_we_never_made_is_unknown_at_us() {
        let findings = reconcile_refunds(&[billed_refund("RFX", 1)], &[]);
        assert_eq!(
            findings,
            [RefundFinding::UnknownAtUs(billed_refund("RFX", 1))]
        );
    }
}
