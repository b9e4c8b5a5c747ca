//! Alipay's field formats: the yuan `Price` and the `timeout_express` lifetime.

use super::*;

/// Alipay's yuan (`Price`): digits, at most two decimals, 0.01 to 100000000.
pub(super) fn price_fen(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 2
        || (text.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let fen = whole.parse::<i64>().ok()? * 100 + format!("{fraction:0<2}").parse::<i64>().ok()?;
    (1..=10_000_000_000).contains(&fen).then_some(fen)
}

/// `90m`, `2h`, `1d`, `1c` (today, until midnight): a duration from `now`.
pub(super) fn timeout_express(text: &str, now: DateTime<Utc>) -> Option<TimeDelta> {
    if text == "1c" {
        let today = now.with_timezone(&china()).date_naive();
        let midnight = today.succ_opt()?.and_hms_opt(0, 0, 0)?;
        let midnight = china().from_local_datetime(&midnight).single()?;
        return Some(midnight.with_timezone(&Utc) - now);
    }
    let unit = text.chars().last()?;
    let number: i64 = text.get(..text.len() - 1)?.parse().ok()?;
    if number <= 0 || !text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match unit {
        'm' => TimeDelta::try_minutes(number),
        'h' => TimeDelta::try_hours(number),
        'd' => TimeDelta::try_days(number),
        _ => None,
    }
}
