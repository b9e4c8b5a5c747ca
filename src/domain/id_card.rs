//! The resident ID number (居民身份证号码, GB 11643-1999): 17 digits and a check
//! character, the birth date at positions 7–14.
//!
//! An [`IdCardNumber`] is always valid and upper-case. Its `Debug` and `Display` print
//! the masked form (`110105********123X`), so that a number which reaches a log line or
//! an error message by accident is never printed in full; [`IdCardNumber::as_str`] is
//! the only way to the full number.

use std::fmt;

use chrono::NaiveDate;

/// The number of characters of a resident ID number.
pub const ID_CARD_LEN: usize = 18;

/// ISO 7064 MOD 11-2 weights of the first 17 digits.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder of the weighted sum modulo 11.
const CHECK_CHARACTERS: [u8; 11] = *b"10X98765432";

/// Why a string is not a resident ID number. The messages are shown to students and
/// to the finance office as they are, and never quote the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdCardError {
    #[error("请填写身份证号")]
    Empty,
    #[error("身份证号应为18位")]
    Length,
    #[error("身份证号只能由数字组成，最后一位可以是X")]
    Characters,
    #[error("身份证号中的出生日期不正确")]
    BirthDate,
    #[error("身份证号校验位不正确")]
    CheckDigit,
}

/// A valid 18-character resident ID number, with a trailing `x` read as `X`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdCardNumber(String);

impl IdCardNumber {
    /// Reads a number as a student types it or a roll holds it: surrounding
    /// whitespace is ignored and a trailing `x` is read as `X`.
    pub fn parse(input: &str) -> Result<IdCardNumber, IdCardError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(IdCardError::Empty);
        }
        if input.chars().count() != ID_CARD_LEN {
            return Err(IdCardError::Length);
        }
        // 18 characters; all ASCII from here on, so byte offsets are character offsets.
        let bytes = input.as_bytes();
        let (body, last) = match bytes.split_last() {
            Some((last, body)) if body.iter().all(u8::is_ascii_digit) => (body, *last),
            _ => return Err(IdCardError::Characters),
        };
        let last = last.to_ascii_uppercase();
        if !(last.is_ascii_digit() || last == b'X') {
            return Err(IdCardError::Characters);
        }
        if !plausible_birth_date(&input[6..14]) {
            return Err(IdCardError::BirthDate);
        }
        if check_character(body) != Some(last) {
            return Err(IdCardError::CheckDigit);
        }
        Ok(IdCardNumber(input.to_ascii_uppercase()))
    }

    /// The full number, `X` upper case. For the database and the password rule only:
    /// anything shown or logged uses [`masked`](Self::masked).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first six and the last four characters, the birth date hidden:
    /// `110105********123X`.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }

    /// The last six characters (`X` upper case): the default initial password.
    pub fn last_six(&self) -> &str {
        &self.0[12..]
    }
}

/// The check character (`0`–`9` or `X`) of the first 17 digits of an ID number;
/// `None` unless given exactly 17 ASCII digits.
pub fn check_character(first_17: &[u8]) -> Option<u8> {
    if first_17.len() != WEIGHTS.len() || !first_17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first_17
        .iter()
        .zip(WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    // The remainder is below 11, the length of the table.
    CHECK_CHARACTERS.get((sum % 11) as usize).copied()
}

/// `YYYYMMDD`, a real calendar date in 1900..=2100.
fn plausible_birth_date(digits: &str) -> bool {
    let field = |range: std::ops::Range<usize>| digits.get(range)?.parse::<u32>().ok();
    let (Some(year), Some(month), Some(day)) = (field(0..4), field(4..6), field(6..8)) else {
        return false;
    };
    (1900..=2100).contains(&year)
        && i32::try_from(year)
            .ok()
            .and_then(|year| NaiveDate::from_ymd_opt(year, month, day))
            .is_some()
}

impl fmt::Display for IdCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masked, like `Display`: a full number must not reach a log through `{:?}`.
impl fmt::Debug for IdCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdCardNumber({})", self.masked())
    }
}

impl std::str::FromStr for IdCardNumber {
    type Err = IdCardError;

    fn from_str(input: &str) -> Result<IdCardNumber, IdCardError> {
        IdCardNumber::parse(input)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Computes the check character independently of `check_character` (the table
    /// as arithmetic), so that the known numbers below are verified, not assumed.
    fn expected_check(first_17: &str) -> char {
        let sum: u32 = first_17
            .chars()
            .enumerate()
            .map(|(i, c)| c.to_digit(10).unwrap() * ((1u32 << (17 - i)) % 11))
            .sum();
        match (12 - sum % 11) % 11 {
            10 => 'X',
            n => char::from_digit(n, 10).unwrap(),
        }
    }

    const KNOWN_VALID: [&str; 5] = [
        "11010519491231002X",
        "11010119900307803X",
        "110101199003074477",
        "620602200703150011",
        "62060220071028021X",
    ];

    #[test]
    fn the_known_numbers_are_valid_by_an_independent_computation() {
        for number in KNOWN_VALID {
            let (body, check) = number.split_at(17);
            assert_eq!(expected_check(body).to_string(), check, "{number}");
        }
    }

    #[test]
    fn known_valid_numbers_parse() {
        for number in KNOWN_VALID {
            let id = IdCardNumber::parse(number).unwrap();
            assert_eq!(id.as_str(), number);
        }
    }

    #[test]
    fn a_lower_case_x_and_surrounding_spaces_are_accepted() {
        let id = IdCardNumber::parse("  11010519491231002x\t").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.last_six(), "31002X");
    }

    #[test]
    fn masked_shows_the_first_six_and_the_last_four() {
        let id = IdCardNumber::parse("11010519491231002X").unwrap();
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(id.to_string(), "110105********002X");
        let debug = format!("{id:?}");
        assert!(debug.contains("110105********002X"), "{debug}");
        assert!(!debug.contains("11010519491231002X"), "{debug}");
    }

    #[test]
    fn each_kind_of_bad_number_has_its_error() {
        use IdCardError::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("11010519491231002", Length),
            ("11010519491231002XX", Length),
            ("1101051949123100２X", Characters),
            ("11010519491231002Y", Characters),
            ("1101051949123100X2", Characters),
            ("110105194913310023", BirthDate),
            ("110105194902300023", BirthDate),
            ("110105189912310023", BirthDate),
            ("110105210101010023", BirthDate),
            // A right check digit, but born in 1880: no student.
            ("440524188001010014", BirthDate),
            ("110105194912310021", CheckDigit),
            ("620602200703150012", CheckDigit),
        ];
        for (input, error) in cases {
            assert_eq!(IdCardNumber::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn a_leap_day_is_a_birth_date_only_in_a_leap_year() {
        let with_date = |date: &str| {
            let body = format!("110105{date}123");
            format!("{body}{}", expected_check(&body))
        };
        assert!(IdCardNumber::parse(&with_date("20000229")).is_ok());
        assert_eq!(
            IdCardNumber::parse(&with_date("19000229")),
            Err(IdCardError::BirthDate)
        );
    }

    #[test]
    fn messages_are_chinese_and_never_quote_the_number() {
        let error = IdCardNumber::parse("110105194912310021").unwrap_err();
        assert_eq!(error.to_string(), "身份证号校验位不正确");
    }

    fn valid_body() -> impl Strategy<Value = String> {
        (
            "[1-9][0-9]{5}",
            1900i32..=2100,
            1u32..=12,
            1u32..=28,
            "[0-9]{3}",
        )
            .prop_map(|(region, year, month, day, serial)| {
                format!("{region}{year:04}{month:02}{day:02}{serial}")
            })
    }

    proptest! {
        #[test]
        fn seventeen_digits_and_their_check_character_parse(body in valid_body()) {
            let number = format!("{body}{}", expected_check(&body));
            let id = IdCardNumber::parse(&number).unwrap();
            prop_assert_eq!(id.as_str(), number.as_str());
            prop_assert_eq!(id.masked().len(), 18);
        }

        #[test]
        fn any_other_check_character_fails(body in valid_body(), other in "[0-9X]") {
            let right = expected_check(&body).to_string();
            prop_assume!(other != right);
            let number = format!("{body}{other}");
            prop_assert_eq!(IdCardNumber::parse(&number), Err(IdCardError::CheckDigit));
        }

        #[test]
        fn any_input_parses_or_fails_without_panicking(input in "\\PC{0,24}") {
            let _ = IdCardNumber::parse(&input);
        }
    }
}
