//! The receipt (缴费凭证) a student prints after paying: the amount in capital
//! numerals (大写金额) as Chinese finance writes it, the verification code the
//! console checks, and the status of the provincial e-bill (财政电子票据), which is a
//! separate document the office records. Pure: randomness comes from the caller.
//!
//! # 大写金额: the convention followed
//! The People's Bank of China's 《正确填写票据和结算凭证的基本规定》 (annex to
//! 《支付结算办法》, 银发〔1997〕393号; reproduced e.g. at
//! <http://m.studyofnet.com/432243873.html>), the rules banks and finance offices use:
//! - the amount starts with `人民币`, directly followed by the numerals;
//! - an amount that ends at 元 ends with `整` (we write 整, not the allowed 正); one
//!   ending at 角 may omit it (we do), one ending at 分 never has it;
//! - a zero (or a run of zeros) between two non-zero digits of the yuan is written as
//!   one `零` (`1010` → 壹仟零壹拾, `10005` → 壹万零伍). Where the rules allow either
//!   (a zero in the 万 place before a non-zero 千: `107000` → 壹拾万零柒仟 or
//!   壹拾万柒仟) we write the 零, the reading that leaves no gap to fill in;
//! - 角 zero and 分 not: `零` after 元 (`10005.05` → 壹万零伍元零伍分), as required;
//!   元 digit zero and 角 not (`6050.50`): no 零 after 元, which the rules allow;
//! - a leading ten is written `壹拾` (`100000` → 壹拾万元整, `16` → 壹拾陆元整), never
//!   a bare 拾, so that nothing can be written in front of it;
//! - no yuan at all: the 元 is left out (`0.50` → 人民币伍角); nothing: 人民币零元整.

use super::money::Fen;

const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
/// Within a group of four digits, from the ones up.
const PLACES: [&str; 4] = ["", "拾", "佰", "仟"];
/// The groups of four, from the ones up: up to 千亿 (9999 9999 9999 元).
const GROUPS: [&str; 3] = ["", "万", "亿"];

/// The largest amount written in capitals: 9999 9999 9999.99 元.
pub const MAX_CAPITAL_FEN: i64 = 1_000_000_000_000 * 100 - 1;

/// Why an amount has no capital form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapitalError {
    #[error("金额不能为负数")]
    Negative,
    #[error("金额超出大写范围")]
    TooLarge,
}

/// `Fen(605_050)` → `人民币陆仟零伍拾元伍角`, by the rules above.
pub fn capital_amount(amount: Fen) -> Result<String, CapitalError> {
    if amount.0 < 0 {
        return Err(CapitalError::Negative);
    }
    if amount.0 > MAX_CAPITAL_FEN {
        return Err(CapitalError::TooLarge);
    }
    let yuan = amount.0 / 100;
    let jiao = usize::try_from(amount.0 / 10 % 10).unwrap_or_default();
    let fen = usize::try_from(amount.0 % 10).unwrap_or_default();
    let mut text = String::from("人民币");
    if yuan > 0 {
        text.push_str(&capital_yuan(yuan));
        text.push('元');
    }
    match (jiao, fen) {
        (0, 0) if yuan == 0 => text.push_str("零元整"),
        (0, 0) => text.push('整'),
        (0, fen) => {
            if yuan > 0 {
                text.push('零');
            }
            push_digit(&mut text, fen, "分");
        }
        (jiao, 0) => push_digit(&mut text, jiao, "角"),
        (jiao, fen) => {
            push_digit(&mut text, jiao, "角");
            push_digit(&mut text, fen, "分");
        }
    }
    Ok(text)
}

fn push_digit(text: &mut String, digit: usize, unit: &str) {
    text.push(DIGITS[digit]);
    text.push_str(unit);
}

/// A positive whole number of yuan (below 10^12) in capitals, without 元.
fn capital_yuan(yuan: i64) -> String {
    // Digits from the highest place down, with their place index (0 = ones).
    let digits: Vec<usize> = yuan
        .to_string()
        .bytes()
        .map(|byte| usize::from(byte - b'0'))
        .collect();
    let top = digits.len() - 1;
    let mut text = String::new();
    let mut zeros_pending = false;
    let mut group_has_digit = false;
    for (index, digit) in digits.iter().copied().enumerate() {
        let place = top - index;
        if digit == 0 {
            zeros_pending = true;
        } else {
            if zeros_pending {
                text.push('零');
                zeros_pending = false;
            }
            text.push(DIGITS[digit]);
            text.push_str(PLACES[place % 4]);
            group_has_digit = true;
        }
        if place.is_multiple_of(4) {
            if group_has_digit {
                text.push_str(GROUPS[place / 4]);
            }
            group_has_digit = false;
        }
    }
    text
}

/// How many characters a receipt code has (without its dashes).
pub const RECEIPT_CODE_LEN: usize = 16;
/// 32 symbols without the ones people confuse (0/O, 1/I): five random bits each, and
/// 256 is a multiple of 32, so a random byte maps to a symbol without bias.
const CODE_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The receipt's verification code: 16 symbols (80 random bits), stored without
/// dashes, shown as `XXXX-XXXX-XXXX-XXXX`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptCode(String);

impl ReceiptCode {
    /// A new code from `random` bytes (the caller's randomness).
    pub fn generate(random: &[u8; RECEIPT_CODE_LEN]) -> ReceiptCode {
        ReceiptCode(
            random
                .iter()
                .map(|byte| char::from(CODE_ALPHABET[usize::from(*byte) % CODE_ALPHABET.len()]))
                .collect(),
        )
    }

    /// A code as someone typed it: with or without dashes or spaces, any case.
    /// `None` when it cannot be one of ours.
    pub fn parse(input: &str) -> Option<ReceiptCode> {
        let code: String = input
            .chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\u{3000}'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let ours = code.len() == RECEIPT_CODE_LEN
            && code.bytes().all(|byte| CODE_ALPHABET.contains(&byte));
        ours.then_some(ReceiptCode(code))
    }

    /// As stored: 16 symbols, no dashes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As shown and printed: `XXXX-XXXX-XXXX-XXXX`.
    pub fn grouped(&self) -> String {
        grouped(&self.0)
    }
}

/// A stored code in groups of four (whatever its length).
pub fn grouped(code: &str) -> String {
    code.chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|chunk| chunk.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The provincial e-bill as the office records it. Stored in `orders.ebill_status`
/// as `issued` / `voided`; no row means not issued yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EbillStatus {
    Issued,
    Voided,
}

impl EbillStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EbillStatus::Issued => "issued",
            EbillStatus::Voided => "voided",
        }
    }

    pub fn parse(input: &str) -> Option<EbillStatus> {
        match input.trim() {
            "issued" => Some(EbillStatus::Issued),
            "voided" => Some(EbillStatus::Voided),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            EbillStatus::Issued => "已开具",
            EbillStatus::Voided => "已作废",
        }
    }
}

/// The longest e-bill number accepted (the column holds 64).
pub const EBILL_NUMBER_MAX: usize = 64;

/// Why a typed e-bill number is refused. Messages are shown as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EbillNumberError {
    #[error("请填写票据号")]
    Empty,
    #[error("票据号只能包含字母、数字和短横线，最长64位")]
    Invalid,
}

/// An e-bill number as typed: trimmed; letters, digits and `-` (the provinces print
/// 票据代码 and 票据号码 as digits, sometimes joined by a dash).
pub fn parse_ebill_number(input: &str) -> Result<String, EbillNumberError> {
    let number = input.trim();
    if number.is_empty() {
        return Err(EbillNumberError::Empty);
    }
    let fits = number.len() <= EBILL_NUMBER_MAX
        && number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !fits {
        return Err(EbillNumberError::Invalid);
    }
    Ok(number.to_owned())
}

/// The receipt's e-bill line: `财政电子票据：未开具`, or its status and number.
pub fn ebill_line(status: Option<EbillStatus>, number: Option<&str>) -> String {
    match (status, number) {
        (Some(status), Some(number)) => {
            format!("财政电子票据：{}，票据号 {number}", status.label())
        }
        (Some(status), None) => format!("财政电子票据：{}", status.label()),
        (None, _) => "财政电子票据：未开具".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn capital(fen: i64) -> String {
        capital_amount(Fen(fen)).expect("in range")
    }

    #[test]
    fn amounts_read_as_finance_writes_them() {
        for (fen, expected) in [
            (480_000, "人民币肆仟捌佰元整"),
            (120_050, "人民币壹仟贰佰元伍角"),
            (1, "人民币壹分"),
            (1_000_505, "人民币壹万零伍元零伍分"),
            (10_000_000, "人民币壹拾万元整"),
            (50, "人民币伍角"),
            (101_010, "人民币壹仟零壹拾元壹角"),
            (605_050, "人民币陆仟零伍拾元伍角"),
            (0, "人民币零元整"),
            (1_600, "人民币壹拾陆元整"),
            (1_640_902, "人民币壹万陆仟肆佰零玖元零贰分"),
            (32_504, "人民币叁佰贰拾伍元零肆分"),
            (10_700_053, "人民币壹拾万零柒仟元伍角叁分"),
            (10_000_000_000, "人民币壹亿元整"),
            (10_000_050_000, "人民币壹亿零伍佰元整"),
            (
                12_345_678_912,
                "人民币壹亿贰仟叁佰肆拾伍万陆仟柒佰捌拾玖元壹角贰分",
            ),
            (
                MAX_CAPITAL_FEN,
                "人民币玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分",
            ),
        ] {
            assert_eq!(capital(fen), expected, "{fen} fen");
        }
    }

    #[test]
    fn out_of_range_amounts_have_no_capital_form() {
        assert_eq!(capital_amount(Fen(-1)), Err(CapitalError::Negative));
        assert_eq!(
            capital_amount(Fen(MAX_CAPITAL_FEN + 1)),
            Err(CapitalError::TooLarge)
        );
    }

    /// A plain reader of capital amounts, independent of the writer: digits times
    /// their place, 万 and 亿 scaling what came before them in their section.
    fn read_capital(text: &str) -> Option<i64> {
        let body = text.strip_prefix("人民币")?;
        let (yuan_text, rest) = match body.split_once('元') {
            Some((yuan, rest)) => (yuan, rest),
            None => ("", body),
        };
        let yuan = read_whole(yuan_text)?;
        let mut fen = 0;
        let mut digit = None;
        for c in rest.chars() {
            match c {
                '角' => fen += digit.take()? * 10,
                '分' => fen += digit.take()?,
                '整' | '零' => {}
                c => digit = Some(DIGITS.iter().position(|d| *d == c)? as i64),
            }
        }
        digit.is_none().then_some(yuan * 100 + fen)
    }

    fn read_whole(text: &str) -> Option<i64> {
        let (mut total, mut section, mut digit) = (0i64, 0i64, 0i64);
        for c in text.chars() {
            match c {
                '零' => {}
                '拾' => section += std::mem::take(&mut digit) * 10,
                '佰' => section += std::mem::take(&mut digit) * 100,
                '仟' => section += std::mem::take(&mut digit) * 1000,
                '万' => {
                    total += (section + std::mem::take(&mut digit)) * 10_000;
                    section = 0;
                }
                '亿' => {
                    total = (total + section + std::mem::take(&mut digit)) * 100_000_000;
                    section = 0;
                }
                c => digit = DIGITS.iter().position(|d| *d == c)? as i64,
            }
        }
        Some(total + section + digit)
    }

    const ALLOWED: &str = "人民币零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整";

    proptest! {
        #[test]
        fn every_amount_reads_back_to_itself(fen in 0i64..=10_000_000_000) {
            let text = capital(fen);
            prop_assert!(text.starts_with("人民币"), "{}", text);
            prop_assert!(text.chars().all(|c| ALLOWED.contains(c)), "{}", text);
            prop_assert!(!text.contains("零零"), "{}", text);
            prop_assert_eq!(read_capital(&text), Some(fen), "{}", text);
        }

        #[test]
        fn codes_parse_back_with_or_without_dashes(random in any::<[u8; 16]>()) {
            let code = ReceiptCode::generate(&random);
            prop_assert_eq!(code.as_str().len(), RECEIPT_CODE_LEN);
            prop_assert!(!code.as_str().contains(['0', 'O', '1', 'I']));
            let grouped = code.grouped();
            prop_assert_eq!(grouped.len(), 19);
            for typed in [grouped.clone(), grouped.to_lowercase(), code.as_str().to_owned()] {
                prop_assert_eq!(ReceiptCode::parse(&typed), Some(code.clone()), "{}", typed);
            }
        }
    }

    #[test]
    fn codes_that_cannot_be_ours_are_refused() {
        assert_eq!(ReceiptCode::parse(""), None);
        assert_eq!(ReceiptCode::parse("ABCD-EFGH-JKLM"), None);
        // 0, O, 1 and I are never in a code.
        assert_eq!(ReceiptCode::parse("ABCD-EFGH-JKLM-NP0Q"), None);
        assert_eq!(ReceiptCode::parse("ABCD-EFGH-JKLM-NPIQ"), None);
        assert_eq!(
            ReceiptCode::parse(" abcd efgh-jklm-npqr ").map(|code| code.grouped()),
            Some("ABCD-EFGH-JKLM-NPQR".to_owned())
        );
    }

    #[test]
    fn the_ebill_line_says_whether_it_was_issued() {
        assert_eq!(ebill_line(None, None), "财政电子票据：未开具");
        assert_eq!(
            ebill_line(Some(EbillStatus::Issued), Some("6201-0012345678")),
            "财政电子票据：已开具，票据号 6201-0012345678"
        );
        assert_eq!(
            ebill_line(Some(EbillStatus::Voided), Some("X1")),
            "财政电子票据：已作废，票据号 X1"
        );
        assert_eq!(parse_ebill_number("  "), Err(EbillNumberError::Empty));
        assert_eq!(parse_ebill_number("票据1"), Err(EbillNumberError::Invalid));
        assert_eq!(parse_ebill_number(" 62-01 ").as_deref(), Ok("62-01"));
    }
}
