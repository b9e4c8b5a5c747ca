//! Money in fen (分), integer end to end. Yuan strings (`1200.50`) are parsed and
//! printed at the edges only: import files, pages, the channels' wire formats.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

/// The largest amount an import or a form accepts: one million yuan.
pub const MAX_YUAN: i64 = 1_000_000;
const FEN_PER_YUAN: i64 = 100;
/// The largest amount read from a provider's wire format: Alipay's documented
/// ceiling for one trade, 100 000 000 yuan. No fee comes near it; the limit is
/// there so a garbled amount is refused instead of believed.
pub const WIRE_MAX: Fen = Fen(100_000_000 * FEN_PER_YUAN);

/// An amount in fen. Displays as yuan with two decimals (`1200.50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(pub i64);

/// Why a string is not an amount in yuan. Messages are shown as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("请填写金额")]
    Empty,
    #[error("金额不能为负数")]
    Negative,
    #[error("金额不能含千位分隔符（逗号）")]
    ThousandsSeparator,
    #[error("金额最多两位小数")]
    TooManyDecimals,
    #[error("金额应为数字，如 1200 或 1200.50")]
    NotANumber,
    #[error("金额不能超过{limit_yuan}元")]
    TooLarge { limit_yuan: i64 },
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    /// Reads a non-negative amount in yuan with at most two decimals, as typed in
    /// a form or an import file: `1200`, `1200.5`, `1200.50`, `0.01`. Surrounding
    /// whitespace is ignored; the limit is [`MAX_YUAN`]; otherwise as
    /// [`Fen::parse_yuan_up_to`].
    pub fn parse_yuan(input: &str) -> Result<Fen, MoneyError> {
        Fen::parse_yuan_up_to(input.trim(), Fen(MAX_YUAN * FEN_PER_YUAN))
    }

    /// Reads an amount in yuan as a provider's wire format carries it, exactly
    /// (no whitespace), up to [`WIRE_MAX`].
    pub fn parse_wire_yuan(text: &str) -> Result<Fen, MoneyError> {
        Fen::parse_yuan_up_to(text, WIRE_MAX)
    }

    /// The one yuan parser: digits, then at most two decimals (`1200`, `1200.5`,
    /// `1200.50`), at most `limit`. The text is read as it is: spaces, a sign,
    /// thousands separators, an exponent, a bare `.5` or `5.` are refused.
    pub fn parse_yuan_up_to(text: &str, limit: Fen) -> Result<Fen, MoneyError> {
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if text.contains([',', '，']) {
            return Err(MoneyError::ThousandsSeparator);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::NotANumber);
        }
        let fraction = fraction.unwrap_or("");
        if fraction.len() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        let too_large = MoneyError::TooLarge {
            limit_yuan: limit.0 / FEN_PER_YUAN,
        };
        // Leading zeros aside, more than 15 digits is over any limit an i64 of
        // fen can hold, so it is refused before it could overflow.
        let significant = whole.trim_start_matches('0');
        if significant.len() > 15 {
            return Err(too_large);
        }
        let yuan: i64 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| MoneyError::NotANumber)?
        };
        let cents: i64 = match fraction.len() {
            0 => 0,
            1 => {
                fraction
                    .parse::<i64>()
                    .map_err(|_| MoneyError::NotANumber)?
                    * 10
            }
            _ => fraction.parse().map_err(|_| MoneyError::NotANumber)?,
        };
        let fen = yuan * FEN_PER_YUAN + cents;
        if fen > limit.0 {
            return Err(too_large);
        }
        Ok(Fen(fen))
    }

    /// Yuan with two decimals: `Fen(120050)` → `"1200.50"`.
    pub fn to_yuan(self) -> String {
        self.to_string()
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per_yuan = FEN_PER_YUAN.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / per_yuan, abs % per_yuan)
    }
}

impl Add for Fen {
    type Output = Fen;

    fn add(self, other: Fen) -> Fen {
        Fen(self.0 + other.0)
    }
}

impl AddAssign for Fen {
    fn add_assign(&mut self, other: Fen) {
        self.0 += other.0;
    }
}

impl Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        iter.fold(Fen::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Fen> for Fen {
    fn sum<I: Iterator<Item = &'a Fen>>(iter: I) -> Fen {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn amounts_in_yuan_parse_to_fen() {
        let cases = [
            ("1200", 120_000),
            ("1200.5", 120_050),
            ("1200.50", 120_050),
            (" 1200.05 ", 120_005),
            ("0.01", 1),
            ("0", 0),
            ("007.10", 710),
            ("1000000", 100_000_000),
            ("1000000.00", 100_000_000),
        ];
        for (input, fen) in cases {
            assert_eq!(Fen::parse_yuan(input), Ok(Fen(fen)), "{input:?}");
        }
    }

    #[test]
    fn bad_amounts_are_refused_with_their_reason() {
        use MoneyError::*;
        let cases = [
            ("", Empty),
            ("  ", Empty),
            ("-1", Negative),
            ("-0.5", Negative),
            ("1,200.00", ThousandsSeparator),
            (" 1,200.00 ", ThousandsSeparator),
            ("1200.505", TooManyDecimals),
            ("1200.500", TooManyDecimals),
            ("abc", NotANumber),
            ("12元", NotANumber),
            ("1200.", NotANumber),
            (".5", NotANumber),
            ("+5", NotANumber),
            ("1e3", NotANumber),
            ("1 200", NotANumber),
            ("１２００", NotANumber),
            (
                "1000000.01",
                TooLarge {
                    limit_yuan: 1_000_000,
                },
            ),
            (
                "99999999999999999999999",
                TooLarge {
                    limit_yuan: 1_000_000,
                },
            ),
        ];
        for (input, error) in cases {
            assert_eq!(Fen::parse_yuan(input), Err(error), "{input:?}");
        }
        assert_eq!(TooManyDecimals.to_string(), "金额最多两位小数");
    }

    #[test]
    fn wire_amounts_are_read_exactly_up_to_the_wire_limit() {
        let good = [
            ("1200.50", 120_050),
            ("1200.5", 120_050),
            ("1200", 120_000),
            ("0.01", 1),
            ("0", 0),
            ("100000000.00", 10_000_000_000),
        ];
        for (text, fen) in good {
            assert_eq!(Fen::parse_wire_yuan(text), Ok(Fen(fen)), "{text:?}");
        }
        let too_large = MoneyError::TooLarge {
            limit_yuan: 100_000_000,
        };
        let bad = [
            ("", MoneyError::Empty),
            ("0.001", MoneyError::TooManyDecimals),
            ("1200.505", MoneyError::TooManyDecimals),
            ("1.", MoneyError::NotANumber),
            (".5", MoneyError::NotANumber),
            ("-1", MoneyError::Negative),
            ("-1.00", MoneyError::Negative),
            ("+1.00", MoneyError::NotANumber),
            (" 1.00", MoneyError::NotANumber),
            ("1.00 ", MoneyError::NotANumber),
            ("1,200.00", MoneyError::ThousandsSeparator),
            ("1e3", MoneyError::NotANumber),
            ("1.0.0", MoneyError::NotANumber),
            ("１２", MoneyError::NotANumber),
            ("100000000.01", too_large),
            ("999999999999", too_large),
            ("99999999999999999999999", too_large),
        ];
        for (text, error) in bad {
            assert_eq!(Fen::parse_wire_yuan(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn the_limit_is_the_callers_and_named_in_the_refusal() {
        assert_eq!(Fen::parse_yuan_up_to("5.00", Fen(500)), Ok(Fen(500)));
        let refused = Fen::parse_yuan_up_to("5.01", Fen(500));
        assert_eq!(refused, Err(MoneyError::TooLarge { limit_yuan: 5 }));
        assert_eq!(
            MoneyError::TooLarge {
                limit_yuan: MAX_YUAN
            }
            .to_string(),
            "金额不能超过1000000元"
        );
    }

    #[test]
    fn fen_display_as_yuan_with_two_decimals() {
        assert_eq!(Fen(120_000).to_yuan(), "1200.00");
        assert_eq!(Fen(120_050).to_string(), "1200.50");
        assert_eq!(Fen(5).to_string(), "0.05");
        assert_eq!(Fen(0).to_string(), "0.00");
        assert_eq!(Fen(-150).to_string(), "-1.50");
    }

    #[test]
    fn fen_add_sum_and_order() {
        let items = [Fen(550_000), Fen(120_000), Fen(30_050)];
        assert_eq!(items.iter().sum::<Fen>(), Fen(700_050));
        assert_eq!(items.into_iter().sum::<Fen>(), Fen(700_050));
        assert_eq!(Fen(1) + Fen(2), Fen(3));
        assert!(Fen(1) < Fen(2));
        assert_eq!(items.iter().max(), Some(&Fen(550_000)));
        assert_eq!(Fen(i64::MAX).checked_add(Fen(1)), None);
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_amount(fen in 0i64..=100_000_000) {
            prop_assert_eq!(Fen::parse_yuan(&Fen(fen).to_yuan()), Ok(Fen(fen)));
        }

        #[test]
        fn any_input_parses_or_fails_without_panicking(input in "\\PC{0,24}") {
            let _ = Fen::parse_yuan(&input);
            let _ = Fen::parse_wire_yuan(&input);
        }
    }
}
