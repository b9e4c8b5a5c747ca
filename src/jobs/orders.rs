//! The order sweep: every [`INTERVAL`], expired orders are closed at their channel
//! (then their items released) and open orders that went quiet are queried, so a lost
//! notification costs minutes, not days.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{CacheLock, SharedCache};
use crate::metrics::{JobResult, Metrics};
use crate::pay::checkout::{Checkout, SweepReport};

pub const INTERVAL: Duration = Duration::from_secs(30);
/// An open order without news for this long is queried.
pub const QUIET_FOR: Duration = Duration::from_secs(120);
const BATCH: u64 = 200;
const LOCK_KEY: &str = "job:orders:lock";
/// Longer than one pass can take with every channel call timing out.
const LOCK_TTL: Duration = Duration::from_secs(300);
/// The jobs' names in metrics.
const ORDER_SWEEP: &str = "order_sweep";
const REFUND_SWEEP: &str = "refund_sweep";

/// One pass, if no other instance is running one. `None` when another holds the lock.
pub async fn sweep_once(
    checkout: &Checkout,
    cache: &SharedCache,
) -> anyhow::Result<Option<SweepReport>> {
    sweep_pass(checkout, cache, None).await
}

/// [`sweep_once`], counting each sweep's result in `metrics` as the scheduled runs do.
pub async fn sweep_once_counted(
    checkout: &Checkout,
    cache: &SharedCache,
    metrics: &Metrics,
) -> anyhow::Result<Option<SweepReport>> {
    sweep_pass(checkout, cache, Some(metrics)).await
}

/// [`sweep_once`], counting each sweep's result in `metrics` when given.
async fn sweep_pass(
    checkout: &Checkout,
    cache: &SharedCache,
    metrics: Option<&Metrics>,
) -> anyhow::Result<Option<SweepReport>> {
    let count = |job, result| {
        if let Some(metrics) = metrics {
            metrics.job_run(job, result, checkout.clock.now());
        }
    };
    let Some(lock) = CacheLock::try_acquire(cache, LOCK_KEY, LOCK_TTL).await? else {
        count(ORDER_SWEEP, JobResult::Skipped);
        count(REFUND_SWEEP, JobResult::Skipped);
        return Ok(None);
    };
    let report = checkout.sweep(QUIET_FOR, BATCH).await;
    count(REFUND_SWEEP, sweep_refunds(checkout).await);
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, "cannot release the order sweep lock; it expires by itself");
    }
    count(ORDER_SWEEP, order_sweep_result(&report));
    let report = report?;
    if report != SweepReport::default() {
        tracing::info!(
            closed = report.closed,
            found_paid = report.found_paid,
            failed = report.failed,
            "order sweep"
        );
    }
    Ok(Some(report))
}

/// A pass that could not close or query some order failed, though it finished: that
/// order's items stay held (or its payment unseen) until a later pass gets through, and
/// the alert on failed runs must see it.
fn order_sweep_result<E>(report: &Result<SweepReport, E>) -> JobResult {
    match report {
        Ok(report) if report.failed == 0 => JobResult::Ok,
        _ => JobResult::Failed,
    }
}

/// Refunds whose outcome is unknown or still processing are queried (same number).
async fn sweep_refunds(checkout: &Checkout) -> JobResult {
    match crate::pay::refunds::Refunds::from_checkout(checkout)
        .sweep(BATCH)
        .await
    {
        Ok(report) => {
            if report.queried > 0 {
                tracing::info!(
                    queried = report.queried,
                    finished = report.finished,
                    "refund sweep"
                );
            }
            JobResult::Ok
        }
        Err(error) => {
            tracing::warn!(%error, "refund sweep failed; retrying next interval");
            JobResult::Failed
        }
    }
}

/// Sweeps forever; the caller aborts it on shutdown (a pass stops at any await, and
/// every step of a pass is a transaction or a channel call that is safe to repeat).
pub async fn run(checkout: Checkout, cache: SharedCache, metrics: Arc<Metrics>) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = sweep_pass(&checkout, &cache, Some(&metrics)).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "order sweep failed; retrying next interval"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_with_an_order_it_could_not_close_counts_as_failed() {
        let clean: Result<SweepReport, ()> = Ok(SweepReport {
            closed: 2,
            ..SweepReport::default()
        });
        assert_eq!(order_sweep_result(&clean), JobResult::Ok);
        let one_failed: Result<SweepReport, ()> = Ok(SweepReport {
            closed: 1,
            failed: 1,
            ..SweepReport::default()
        });
        assert_eq!(order_sweep_result(&one_failed), JobResult::Failed);
        assert_eq!(
            order_sweep_result(&Err::<SweepReport, ()>(())),
            JobResult::Failed
        );
    }
}
