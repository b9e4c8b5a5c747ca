//! Orders: the number the channel knows them by, what they say they are for, and what
//! a payment report does to them. Pure: times and randomness come from the caller.

use chrono::{DateTime, Utc};

use super::money::Fen;

/// Our order number, within WeChat Pay's and Alipay's rules: 6 to 32 characters of
/// `[0-9A-Za-z_-|*]`. Ours are `CP` + the Beijing-time second it was made + 10 random
/// characters: sortable by time in a bill, unguessable, and 26 characters long.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutTradeNo(String);

const RANDOM_LEN: usize = 10;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

impl OutTradeNo {
    /// A new number made at `now` from `random` bytes (at least [`RANDOM_LEN`]).
    pub fn generate(now: DateTime<Utc>, random: &[u8; RANDOM_LEN]) -> OutTradeNo {
        let beijing = now.with_timezone(&beijing_offset());
        let mut number = format!("CP{}", beijing.format("%Y%m%d%H%M%S"));
        number.extend(
            random
                .iter()
                .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()])),
        );
        OutTradeNo(number)
    }

    /// Accepts a number in the channels' format (what a notification or a bill says).
    pub fn parse(input: &str) -> Option<OutTradeNo> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|' | '*');
        ((6..=32).contains(&input.len()) && input.chars().all(allowed))
            .then(|| OutTradeNo(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OutTradeNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Beijing time, which the channels and the college's bills use.
pub fn beijing_offset() -> chrono::FixedOffset {
    // 8 hours is always a valid offset.
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"))
}

/// WeChat Pay allows 127 of description; counted in UTF-8 bytes here, the stricter
/// reading (a Chinese character is three).
pub const DESCRIPTION_MAX_BYTES: usize = 127;

/// What the payer sees in their bill: the school and the items, e.g.
/// `武威职业学院-2026-2027学年学费、住宿费`; cut to the channel's limit.
pub fn order_description(school: &str, items: &[(&str, &str)]) -> String {
    let mut years: Vec<&str> = items.iter().map(|(year, _)| *year).collect();
    years.dedup();
    let names: Vec<&str> = items.iter().map(|(_, item)| *item).collect();
    let year = match years.as_slice() {
        [one] => format!("{one}学年"),
        _ => String::new(),
    };
    let full = format!("{school}-{year}{}", names.join("、"));
    if full.len() <= DESCRIPTION_MAX_BYTES {
        return full;
    }
    let ellipsis = '…';
    let room = DESCRIPTION_MAX_BYTES - ellipsis.len_utf8();
    let mut cut = String::with_capacity(DESCRIPTION_MAX_BYTES);
    for c in full.chars() {
        if cut.len() + c.len_utf8() > room {
            break;
        }
        cut.push(c);
    }
    cut.push(ellipsis);
    cut
}

/// Where an order stands, as far as a payment report is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    Open,
    Paid,
    Closed,
    Refunded,
}

/// What a verified payment report (notification, query, bill) does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentVerdict {
    /// The order becomes paid, and its items with it.
    Apply,
    /// Already paid by this very payment: nothing changes, the channel hears success.
    AlreadyApplied,
    /// The channel says a different amount than we asked: refused, shown to the office.
    AmountMismatch { expected: Fen, reported: Fen },
    /// Paid, but we had closed the order: the money is real, so it is recorded and shown
    /// to the finance office; the items are settled by it if nothing else paid them.
    PaidAfterClose,
    /// Paid twice over, or after a refund: recorded for the finance office.
    Conflicting,
}

/// Decides what a payment of `reported` for an order of `expected` in `state` does.
/// `same_transaction`: the report names the channel transaction already recorded.
pub fn judge_payment(
    state: OrderState,
    expected: Fen,
    reported: Fen,
    same_transaction: bool,
) -> PaymentVerdict {
    if reported != expected {
        return PaymentVerdict::AmountMismatch { expected, reported };
    }
    match state {
        OrderState::Open => PaymentVerdict::Apply,
        // A late copy of the payment a refund has since given back: still that payment.
        OrderState::Paid | OrderState::Refunded if same_transaction => {
            PaymentVerdict::AlreadyApplied
        }
        OrderState::Paid | OrderState::Refunded => PaymentVerdict::Conflicting,
        OrderState::Closed => PaymentVerdict::PaidAfterClose,
    }
}

/// When an order made at `now` stops being payable.
pub fn expiry(now: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::minutes(15))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_late_copy_of_a_refunded_payment_is_that_payment_not_a_new_one() {
        let fen = Fen(100);
        assert_eq!(
            judge_payment(OrderState::Refunded, fen, fen, true),
            PaymentVerdict::AlreadyApplied
        );
        assert_eq!(
            judge_payment(OrderState::Refunded, fen, fen, false),
            PaymentVerdict::Conflicting
        );
    }

    #[test]
    fn numbers_carry_beijing_time_and_fit_the_channels_rules() {
        let now = Utc
            .with_ymd_and_hms(2026, 8, 31, 16, 30, 5)
            .single()
            .expect("valid");
        let number = OutTradeNo::generate(now, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 255]);
        assert_eq!(number.as_str().len(), 26);
        assert!(number.as_str().starts_with("CP20260901003005"), "{number}");
        assert!(OutTradeNo::parse(number.as_str()).is_some());
    }

    proptest! {
        #[test]
        fn every_generated_number_parses(random in proptest::array::uniform10(any::<u8>()), seconds in 0i64..4_000_000_000) {
            let now = Utc.timestamp_opt(seconds, 0).single().expect("valid");
            let number = OutTradeNo::generate(now, &random);
            prop_assert!(OutTradeNo::parse(number.as_str()).is_some());
        }
    }

    #[test]
    fn foreign_numbers_outside_the_rules_are_refused() {
        for bad in [
            "",
            "12345",
            "CP 2026",
            "订单123456",
            &"X".repeat(33),
            "CP2026;drop",
        ] {
            assert!(OutTradeNo::parse(bad).is_none(), "{bad}");
        }
        assert!(OutTradeNo::parse("a_b-c|d*e").is_some());
    }

    #[test]
    fn descriptions_name_the_school_the_year_and_the_items() {
        let one_year = order_description(
            "武威职业学院",
            &[("2026-2027", "学费"), ("2026-2027", "住宿费")],
        );
        assert_eq!(one_year, "武威职业学院-2026-2027学年学费、住宿费");
        let two_years = order_description(
            "武威职业学院",
            &[("2025-2026", "教材费"), ("2026-2027", "学费")],
        );
        assert_eq!(two_years, "武威职业学院-教材费、学费");
        let long = order_description("学校", &vec![("2026-2027", "很长的项目名称"); 40]);
        assert!(long.len() <= DESCRIPTION_MAX_BYTES && long.len() > DESCRIPTION_MAX_BYTES - 6);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_payment_is_applied_once_and_never_for_a_different_amount() {
        let fen = Fen(450_000);
        assert_eq!(
            judge_payment(OrderState::Open, fen, fen, false),
            PaymentVerdict::Apply
        );
        assert_eq!(
            judge_payment(OrderState::Paid, fen, fen, true),
            PaymentVerdict::AlreadyApplied
        );
        assert_eq!(
            judge_payment(OrderState::Paid, fen, fen, false),
            PaymentVerdict::Conflicting
        );
        assert_eq!(
            judge_payment(OrderState::Closed, fen, fen, false),
            PaymentVerdict::PaidAfterClose
        );
        assert_eq!(
            judge_payment(OrderState::Open, fen, Fen(1), false),
            PaymentVerdict::AmountMismatch {
                expected: fen,
                reported: Fen(1)
            }
        );
    }
}
