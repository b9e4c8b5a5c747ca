//! The follower check on `CAMPUSPAY_CLEANUP_SCHEDULE`: a cron expression (seconds
//! first) read in Beijing time, whatever the server's zone. Each instance keeps the
//! schedule; the check's lock makes one of them run it, and the others say so in the
//! log and wait for the next time.
//!
//! "Now" is the app's [`Clock`], looked at again at least every [`LOOK_AGAIN`], so a
//! clock moved forward (tests, or a host waking from suspend) is noticed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tokio::task::JoinHandle;

use super::followers::{ACTOR_SCHEDULE, CheckError, FollowerCheck};
use crate::metrics::{JobResult, Metrics};

/// The follower check's name in metrics.
const JOB: &str = "follower_check";

/// The longest single sleep between looks at the clock.
pub const LOOK_AGAIN: Duration = Duration::from_secs(60);

/// Asia/Shanghai: UTC+8 all year (no daylight saving since 1991).
fn beijing() -> FixedOffset {
    crate::domain::order::beijing_offset()
}

/// The first time `schedule` names strictly after `after`, reading the expression in
/// Beijing time. `None` when it names no future time (e.g. `0 0 0 30 2 *`).
pub fn next_run(schedule: &cron::Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule
        .after(&after.with_timezone(&beijing()))
        .next()
        .map(|at| at.with_timezone(&Utc))
}

/// How long to sleep before looking at the clock again.
pub fn wait(now: DateTime<Utc>, due: DateTime<Utc>) -> Duration {
    (due - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(LOOK_AGAIN)
}

/// The running schedule; dropping it stops it (a run in progress stops at its next
/// await, and the next real run resumes after what it finished with).
pub struct ScheduleHandle(Option<JoinHandle<()>>);

impl Drop for ScheduleHandle {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Starts the schedule, when there is an account to check.
pub fn spawn(check: Option<FollowerCheck>, metrics: Arc<Metrics>) -> ScheduleHandle {
    match check {
        Some(check) => ScheduleHandle(Some(tokio::spawn(run(check, metrics)))),
        None => {
            tracing::info!("no official account configured: the follower check is not scheduled");
            ScheduleHandle(None)
        }
    }
}

/// Runs the check at every time the schedule names, forever.
pub async fn run(check: FollowerCheck, metrics: Arc<Metrics>) {
    let schedule = check.config.schedule.clone();
    let Some(mut due) = next_run(&schedule, check.clock.now()) else {
        tracing::warn!(
            schedule = schedule.source(),
            "CAMPUSPAY_CLEANUP_SCHEDULE names no future time; the follower check will not run on its own"
        );
        return;
    };
    tracing::info!(next = %due, schedule = schedule.source(), "follower check scheduled");
    loop {
        let now = check.clock.now();
        if now < due {
            tokio::time::sleep(wait(now, due)).await;
            continue;
        }
        let result = run_once(&check).await;
        metrics.job_run(JOB, result, check.clock.now());
        match next_run(&schedule, check.clock.now()) {
            Some(next) => due = next,
            None => return,
        }
    }
}

/// A run stopped early by an API error counts as failed: its remarks are not all checked.
async fn run_once(check: &FollowerCheck) -> JobResult {
    match check.run(ACTOR_SCHEDULE, false).await {
        Ok(report) => {
            tracing::info!(
                run = report.run_id,
                stopped = report.stopped.is_some(),
                "scheduled follower check done"
            );
            if report.stopped.is_some() {
                JobResult::Failed
            } else {
                JobResult::Ok
            }
        }
        Err(CheckError::AlreadyRunning) => {
            tracing::info!("scheduled follower check skipped: another run holds the lock");
            JobResult::Skipped
        }
        Err(error) => {
            tracing::error!(error = ?error, "scheduled follower check failed");
            JobResult::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn schedule(expression: &str) -> cron::Schedule {
        expression.parse().unwrap()
    }

    #[test]
    fn three_in_the_morning_is_beijing_time() {
        let nightly = schedule("0 0 3 * * *");
        // 10:00 Beijing on 1 March: the next 03:00 Beijing is 19:00 UTC that day.
        assert_eq!(
            next_run(&nightly, utc("2026-03-01T02:00:00Z")),
            Some(utc("2026-03-01T19:00:00Z"))
        );
        // 02:59:59 Beijing (18:59:59 UTC the day before): one second to go.
        assert_eq!(
            next_run(&nightly, utc("2026-03-01T18:59:59Z")),
            Some(utc("2026-03-01T19:00:00Z"))
        );
    }

    #[test]
    fn the_next_run_is_strictly_after_now() {
        let nightly = schedule("0 0 3 * * *");
        assert_eq!(
            next_run(&nightly, utc("2026-03-01T19:00:00Z")),
            Some(utc("2026-03-02T19:00:00Z"))
        );
    }

    #[test]
    fn weekdays_and_month_ends_are_read_in_beijing() {
        // Mondays at 01:30 Beijing: Sunday 17:30 UTC.
        let mondays = schedule("0 30 1 * * Mon");
        assert_eq!(
            next_run(&mondays, utc("2026-03-04T00:00:00Z")),
            Some(utc("2026-03-08T17:30:00Z"))
        );
        // The 1st at 00:00 Beijing is the last day of the month before, 16:00 UTC.
        let monthly = schedule("0 0 0 1 * *");
        assert_eq!(
            next_run(&monthly, utc("2026-03-15T00:00:00Z")),
            Some(utc("2026-03-31T16:00:00Z"))
        );
    }

    #[test]
    fn a_schedule_with_no_future_time_has_no_next_run() {
        assert_eq!(
            next_run(&schedule("0 0 0 30 2 *"), utc("2026-03-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn the_wait_is_never_longer_than_a_minute_nor_negative() {
        let now = utc("2026-03-01T00:00:00Z");
        assert_eq!(
            wait(now, utc("2026-03-01T00:00:10Z")),
            Duration::from_secs(10)
        );
        assert_eq!(wait(now, utc("2026-03-01T05:00:00Z")), LOOK_AGAIN);
        assert_eq!(wait(now, utc("2026-02-28T00:00:00Z")), Duration::ZERO);
    }
}
