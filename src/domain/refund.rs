//! What a refund does to the fee items it gives money back for (issue 13). Pure: the
//! store gathers where each item stands and asks [`plan_refund`] what may happen.
//!
//! The rule that keeps the books right: an item stays paid after a refund only when
//! another paid order covers it (a true duplicate). Any other refund either makes the
//! item owed again or lowers its amount by what was given back, as the office chooses;
//! there is no default. Waiving a fee is its own act elsewhere, so a refund never
//! lowers an item to nothing.
//!
//! When the items change: money counts as given back from the moment the refund is
//! recorded (every total subtracts refunds that have not failed), while the items
//! change only when the channel says the money is back, in that news's own
//! transaction. So while the outcome is unknown the books say less was kept, never
//! more; a refund that fails leaves the items exactly as they were (nothing to undo,
//! nothing lost), and a student can never pay an item again while the first payment
//! may still be kept.

use serde::{Deserialize, Serialize};

/// What the office chose for the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemEffect {
    /// A true duplicate: another paid order covers every item, which stays paid.
    KeepPaid,
    /// The refunded amount is owed again: the item becomes payable.
    OweAgain,
    /// The item's amount is lowered by the refund (a withdrawal's pro-rated fee).
    LowerAmount,
    /// Refunds recorded before issue 13 that left their item alone.
    Unchanged,
}

impl ItemEffect {
    /// As forms and the database name it.
    pub fn code(self) -> &'static str {
        match self {
            ItemEffect::KeepPaid => "keep_paid",
            ItemEffect::OweAgain => "owe_again",
            ItemEffect::LowerAmount => "lower_amount",
            ItemEffect::Unchanged => "unchanged",
        }
    }

    /// The choices a clerk may make (`unchanged` is history only).
    pub fn from_form(code: &str) -> Option<ItemEffect> {
        match code {
            "keep_paid" => Some(ItemEffect::KeepPaid),
            "owe_again" => Some(ItemEffect::OweAgain),
            "lower_amount" => Some(ItemEffect::LowerAmount),
            _ => None,
        }
    }

    pub fn from_code(code: &str) -> ItemEffect {
        ItemEffect::from_form(code).unwrap_or(ItemEffect::Unchanged)
    }
}

/// One item of the order being refunded, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemStanding {
    pub fee_item_id: i64,
    /// What this refund would give back for it.
    pub refund_fen: i64,
    /// The item's amount as it stands (already lowered by earlier refunds).
    pub item_amount_fen: i64,
    /// The item is paid, and by the order being refunded.
    pub paid_by_this_order: bool,
    /// Another paid order that carries this item and has given none of it back.
    pub covered_by: Option<String>,
    /// Other refunds of this item (or of the whole order) not final yet.
    pub pending_fen: i64,
}

/// What an item will show once the refund succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "after")]
pub enum ItemAfter {
    /// Still paid, by the covering order.
    StaysPaid { covered_by: String },
    /// Payable again, for its whole amount (the refunded amount).
    OwedAgain { amount_fen: i64 },
    /// Paid, at a lower amount.
    Lowered { from_fen: i64, to_fen: i64 },
    /// Not paid by this order (already owed or settled elsewhere): left as it is.
    AsItIs,
}

/// One line of a refund's plan: fixed when the refund is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedItem {
    pub fee_item_id: i64,
    pub refund_fen: i64,
    #[serde(flatten)]
    pub after: ItemAfter,
}

/// Why a refund cannot do what was asked to its items.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("项目未由其他已支付订单缴清，不是重复缴费，不能保持已缴")]
    NotADuplicate,
    #[error(
        "只有退还该项目的全部已缴金额（且没有其他退款在办理）时，才能改为未缴；部分退款请选择调减应缴金额"
    )]
    PartOwedAgain,
    #[error("调减后应缴金额将为 0，等同免缴；免缴请在费用管理中单独办理，退款请选择改为未缴")]
    LowersToNothing,
    #[error("该项目不是由本订单缴清的，不能调减其金额")]
    NotPaidHere,
    #[error("没有可退的项目")]
    NothingToRefund,
    #[error("项目另由订单 {0} 缴清：这是重复缴费，请选择保持已缴（或先退那一笔）")]
    CoveredElsewhere(String),
}

/// What each item will show after a refund with `effect` succeeds, or why it may not.
pub fn plan_refund(
    effect: ItemEffect,
    items: &[ItemStanding],
) -> Result<Vec<PlannedItem>, PlanError> {
    let items: Vec<&ItemStanding> = items.iter().filter(|item| item.refund_fen > 0).collect();
    if items.is_empty() {
        return Err(PlanError::NothingToRefund);
    }
    items
        .into_iter()
        .map(|item| {
            Ok(PlannedItem {
                fee_item_id: item.fee_item_id,
                refund_fen: item.refund_fen,
                after: item_after(effect, item)?,
            })
        })
        .collect()
}

fn item_after(effect: ItemEffect, item: &ItemStanding) -> Result<ItemAfter, PlanError> {
    match effect {
        ItemEffect::KeepPaid => item
            .covered_by
            .clone()
            .map(|covered_by| ItemAfter::StaysPaid { covered_by })
            .ok_or(PlanError::NotADuplicate),
        ItemEffect::OweAgain if !item.paid_by_this_order => Ok(ItemAfter::AsItIs),
        // Another payment holds money for it: making it owed, or cheaper, would show a
        // fee as owed (or lowered) that was paid.
        ItemEffect::OweAgain | ItemEffect::LowerAmount if item.covered_by.is_some() => Err(
            PlanError::CoveredElsewhere(item.covered_by.clone().unwrap_or_default()),
        ),
        ItemEffect::OweAgain => {
            let whole = item.refund_fen == item.item_amount_fen && item.pending_fen == 0;
            if whole {
                Ok(ItemAfter::OwedAgain {
                    amount_fen: item.item_amount_fen,
                })
            } else {
                Err(PlanError::PartOwedAgain)
            }
        }
        ItemEffect::LowerAmount if !item.paid_by_this_order => Err(PlanError::NotPaidHere),
        ItemEffect::LowerAmount => {
            // Refunds still on their way may lower it too: count them as done.
            let to_fen = item.item_amount_fen - item.pending_fen - item.refund_fen;
            if to_fen > 0 {
                Ok(ItemAfter::Lowered {
                    from_fen: item.item_amount_fen,
                    to_fen: item.item_amount_fen - item.refund_fen,
                })
            } else {
                Err(PlanError::LowersToNothing)
            }
        }
        // Never chosen now; kept for refunds recorded before the rule.
        ItemEffect::Unchanged => Ok(ItemAfter::AsItIs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid_here(refund_fen: i64, item_amount_fen: i64) -> ItemStanding {
        ItemStanding {
            fee_item_id: 1,
            refund_fen,
            item_amount_fen,
            paid_by_this_order: true,
            covered_by: None,
            pending_fen: 0,
        }
    }

    #[test]
    fn only_a_covered_item_stays_paid() {
        let lone = paid_here(500, 500);
        assert_eq!(
            plan_refund(ItemEffect::KeepPaid, std::slice::from_ref(&lone)),
            Err(PlanError::NotADuplicate)
        );
        let covered = ItemStanding {
            covered_by: Some("CP2".into()),
            ..lone.clone()
        };
        // One item of two not covered: the whole refund is refused.
        assert_eq!(
            plan_refund(ItemEffect::KeepPaid, &[covered.clone(), lone]),
            Err(PlanError::NotADuplicate)
        );
        let plan =
            plan_refund(ItemEffect::KeepPaid, std::slice::from_ref(&covered)).expect("a duplicate");
        assert_eq!(
            plan[0].after,
            ItemAfter::StaysPaid {
                covered_by: "CP2".into()
            }
        );
        // Paid twice: it may not be made owed, nor lowered, by refunding one of them.
        for effect in [ItemEffect::OweAgain, ItemEffect::LowerAmount] {
            assert_eq!(
                plan_refund(effect, std::slice::from_ref(&covered)),
                Err(PlanError::CoveredElsewhere("CP2".into()))
            );
        }
    }

    #[test]
    fn owed_again_only_for_the_whole_item() {
        let plan = plan_refund(ItemEffect::OweAgain, &[paid_here(500, 500)]).expect("whole");
        assert_eq!(plan[0].after, ItemAfter::OwedAgain { amount_fen: 500 });
        assert_eq!(
            plan_refund(ItemEffect::OweAgain, &[paid_here(100, 500)]),
            Err(PlanError::PartOwedAgain)
        );
        let pending = ItemStanding {
            pending_fen: 100,
            ..paid_here(500, 500)
        };
        assert_eq!(
            plan_refund(ItemEffect::OweAgain, &[pending]),
            Err(PlanError::PartOwedAgain)
        );
    }

    #[test]
    fn lowering_never_reaches_nothing() {
        let plan = plan_refund(ItemEffect::LowerAmount, &[paid_here(100, 500)]).expect("part");
        assert_eq!(
            plan[0].after,
            ItemAfter::Lowered {
                from_fen: 500,
                to_fen: 400
            }
        );
        assert_eq!(
            plan_refund(ItemEffect::LowerAmount, &[paid_here(500, 500)]),
            Err(PlanError::LowersToNothing)
        );
        let pending = ItemStanding {
            pending_fen: 400,
            ..paid_here(100, 500)
        };
        assert_eq!(
            plan_refund(ItemEffect::LowerAmount, &[pending]),
            Err(PlanError::LowersToNothing)
        );
    }

    #[test]
    fn items_with_nothing_to_give_back_are_left_out() {
        assert_eq!(
            plan_refund(ItemEffect::OweAgain, &[paid_here(0, 500)]),
            Err(PlanError::NothingToRefund)
        );
        let elsewhere = ItemStanding {
            paid_by_this_order: false,
            ..paid_here(500, 500)
        };
        let plan = plan_refund(
            ItemEffect::OweAgain,
            &[paid_here(0, 300), elsewhere.clone()],
        )
        .expect("plan");
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].after, ItemAfter::AsItIs);
        assert_eq!(
            plan_refund(ItemEffect::LowerAmount, &[elsewhere]),
            Err(PlanError::NotPaidHere)
        );
    }

    #[test]
    fn effects_are_chosen_never_defaulted() {
        assert_eq!(ItemEffect::from_form(""), None);
        assert_eq!(ItemEffect::from_form("unchanged"), None);
        for effect in [
            ItemEffect::KeepPaid,
            ItemEffect::OweAgain,
            ItemEffect::LowerAmount,
        ] {
            assert_eq!(ItemEffect::from_form(effect.code()), Some(effect));
        }
    }
}
