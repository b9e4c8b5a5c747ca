//! A fee item's standing for the student: whether it may be paid now, and the
//! finance office's two ways of lifting it, waiving (减免) and deferring (缓缴,
//! 绿色通道). Pure: the time comes from the caller.
//!
//! The payable rule lives here and only here; the store's conditional update that
//! takes items into an order is its SQL mirror (`status = unpaid OR (status =
//! deferred AND deferred_until < now)`).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

use super::order::beijing_offset;

/// Where an item stands, as far as paying it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeState {
    Unpaid,
    /// Held by an open order.
    InOrder,
    Paid,
    Waived,
    /// On the green channel until `deferred_until`.
    Deferred,
}

/// Whether the student may take the item into a new order at `now`: unpaid, or
/// deferred to a moment that has passed (then it is owed again). A deferral without
/// a date holds until the office lifts it.
pub fn payable_now(
    state: FeeState,
    deferred_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match state {
        FeeState::Unpaid => true,
        FeeState::Deferred => deferred_until.is_some_and(|until| until < now),
        FeeState::InOrder | FeeState::Paid | FeeState::Waived => false,
    }
}

/// Whether a deferral still holds at `now` (the student sees 缓缴, not 待缴).
pub fn deferral_holds(
    state: FeeState,
    deferred_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    state == FeeState::Deferred && !payable_now(state, deferred_until, now)
}

/// The longest reason the office may give, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// Why a waiver or deferral form is refused. Messages are shown as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeeActionError {
    #[error("请填写原因")]
    ReasonEmpty,
    #[error("原因不能超过{MAX_REASON_CHARS}个字")]
    ReasonTooLong,
    #[error("缓缴日期应写成 YYYY-MM-DD，如 2026-12-31")]
    DateMalformed,
    #[error("缓缴日期应在今天之后")]
    DateNotInFuture,
}

/// The reason for a waiver or deferral, trimmed: required, at most
/// [`MAX_REASON_CHARS`] characters.
pub fn check_reason(input: &str) -> Result<String, FeeActionError> {
    let reason = input.trim();
    if reason.is_empty() {
        return Err(FeeActionError::ReasonEmpty);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(FeeActionError::ReasonTooLong);
    }
    Ok(reason.to_owned())
}

/// The end of a deferral given as `YYYY-MM-DD`: the last second of that day in
/// Beijing time. The day must come after today (Beijing time) at `now`.
pub fn deferral_end(input: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, FeeActionError> {
    let date = NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d")
        .map_err(|_| FeeActionError::DateMalformed)?;
    let today = now.with_timezone(&beijing_offset()).date_naive();
    if date <= today {
        return Err(FeeActionError::DateNotInFuture);
    }
    let last_second = date.and_time(NaiveTime::MIN) + Duration::days(1) - Duration::seconds(1);
    beijing_offset()
        .from_local_datetime(&last_second)
        .single()
        .map(|at| at.with_timezone(&Utc))
        .ok_or(FeeActionError::DateMalformed)
}

/// The Beijing date a deferral runs to, as the pages show it (`2026-12-31`).
pub fn deferral_date(until: DateTime<Utc>) -> String {
    until
        .with_timezone(&beijing_offset())
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn only_unpaid_items_and_lapsed_deferrals_are_payable() {
        let now = at("2026-09-01T12:00:00+08:00");
        assert!(payable_now(FeeState::Unpaid, None, now));
        for settled in [FeeState::InOrder, FeeState::Paid, FeeState::Waived] {
            assert!(!payable_now(settled, None, now), "{settled:?}");
        }
        let later = Some(at("2026-12-31T23:59:59+08:00"));
        let earlier = Some(at("2026-08-31T23:59:59+08:00"));
        assert!(!payable_now(FeeState::Deferred, later, now));
        assert!(payable_now(FeeState::Deferred, earlier, now));
        assert!(
            !payable_now(FeeState::Deferred, None, now),
            "no date: held until lifted"
        );
    }

    #[test]
    fn a_deferral_holds_through_its_last_second_then_the_item_is_owed() {
        let until = Some(at("2026-12-31T23:59:59+08:00"));
        let last_second = at("2026-12-31T23:59:59+08:00");
        let next_day = at("2027-01-01T00:00:00+08:00");
        assert!(deferral_holds(FeeState::Deferred, until, last_second));
        assert!(!payable_now(FeeState::Deferred, until, last_second));
        assert!(!deferral_holds(FeeState::Deferred, until, next_day));
        assert!(payable_now(FeeState::Deferred, until, next_day));
        assert!(!deferral_holds(FeeState::Unpaid, until, last_second));
    }

    #[test]
    fn a_deferral_runs_to_the_end_of_its_day_in_beijing() {
        let now = at("2026-09-01T23:30:00+08:00");
        let end = deferral_end("2026-12-31", now).unwrap();
        assert_eq!(end, at("2026-12-31T23:59:59+08:00"));
        assert_eq!(deferral_date(end), "2026-12-31");
        assert_eq!(
            deferral_end(" 2026-09-02 ", now).unwrap(),
            at("2026-09-02T23:59:59+08:00")
        );
    }

    #[test]
    fn a_deferral_must_end_after_today_in_beijing() {
        // 16:30 UTC on 1 September is already 2 September in Beijing.
        let now = at("2026-09-01T16:30:00Z");
        assert_eq!(
            deferral_end("2026-09-02", now),
            Err(FeeActionError::DateNotInFuture)
        );
        assert_eq!(
            deferral_end("2026-08-01", now),
            Err(FeeActionError::DateNotInFuture)
        );
        assert!(deferral_end("2026-09-03", now).is_ok());
        for malformed in ["", "2026/12/31", "2026-02-30", "明天"] {
            assert_eq!(
                deferral_end(malformed, now),
                Err(FeeActionError::DateMalformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_reason_is_required_and_at_most_two_hundred_characters() {
        assert_eq!(check_reason("  家庭经济困难  ").unwrap(), "家庭经济困难");
        assert_eq!(check_reason("   "), Err(FeeActionError::ReasonEmpty));
        assert!(check_reason(&"困".repeat(200)).is_ok());
        assert_eq!(
            check_reason(&"困".repeat(201)),
            Err(FeeActionError::ReasonTooLong)
        );
    }
}
