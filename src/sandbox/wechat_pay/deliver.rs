//! Notification delivery: the first post, then WeChat's retry schedule, driven by
//! the sandbox's clock.

use super::*;

pub(super) fn is_acknowledged(status: u16) -> bool {
    matches!(status, 200 | 204)
}

pub(super) async fn post_notification(
    http: &reqwest::Client,
    url: &str,
    notification: &Notification,
) -> (u16, String) {
    let mut request = http.post(url).body(notification.body.clone());
    for (name, value) in &notification.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    kit::send(request).await
}

/// Sends a paid order's notification: after the delay, `copies` at once; retries in
/// the background when none was acknowledged and a schedule is set.
pub(super) async fn deliver(
    shared: Arc<Shared>,
    out_trade_no: String,
) -> Result<Vec<(u16, String)>, PayError> {
    let (url, transaction, id) = shared.outgoing_notification(&out_trade_no)?;
    let (copies, delay, schedule) = {
        let state = shared.state();
        (
            state.notification_copies,
            state.notification_delay,
            state.retry_schedule.clone(),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let notification = shared.build_notification(&transaction, &id, None);
    let mut attempts = JoinSet::new();
    for _ in 0..copies {
        let http = shared.http.clone();
        let url = url.clone();
        let notification = notification.clone();
        attempts.spawn(async move { post_notification(&http, &url, &notification).await });
    }
    let mut answers = Vec::with_capacity(copies);
    while let Some(joined) = attempts.join_next().await {
        let answer = joined.unwrap_or_else(|error| (0, error.to_string()));
        shared.record_answers(&out_trade_no, std::slice::from_ref(&answer));
        answers.push(answer);
    }
    let acknowledged = answers.iter().any(|(status, _)| is_acknowledged(*status));
    let mut schedule: VecDeque<Duration> = schedule.into();
    if let (false, Some(first)) = (acknowledged, schedule.pop_front()) {
        let due = after(shared.clock.now(), first);
        shared.state().pending_retries.push(PendingRetry {
            out_trade_no,
            transaction,
            id,
            url,
            due,
            remaining: schedule,
        });
    }
    Ok(answers)
}

/// A notification to send again at `due` (sandbox clock), then after each pause left.
pub(super) struct PendingRetry {
    pub(super) out_trade_no: String,
    pub(super) transaction: Value,
    pub(super) id: String,
    pub(super) url: String,
    pub(super) due: DateTime<Utc>,
    pub(super) remaining: VecDeque<Duration>,
}

/// Sends the retries due by the sandbox's clock; see
/// [`WechatPaySandbox::deliver_due_retries`].
pub(super) async fn deliver_due_retries(shared: &Arc<Shared>) -> usize {
    let now = shared.clock.now();
    let due: Vec<PendingRetry> = {
        let mut state = shared.state();
        let (due, later) = std::mem::take(&mut state.pending_retries)
            .into_iter()
            .partition(|retry| retry.due <= now);
        state.pending_retries = later;
        due
    };
    let mut sent = 0;
    for mut retry in due {
        while retry.due <= now {
            let notification = shared.build_notification(&retry.transaction, &retry.id, None);
            let answer = post_notification(&shared.http, &retry.url, &notification).await;
            sent += 1;
            shared.record_answers(&retry.out_trade_no, std::slice::from_ref(&answer));
            if is_acknowledged(answer.0) {
                break;
            }
            let Some(pause) = retry.remaining.pop_front() else {
                break;
            };
            retry.due = after(retry.due, pause);
            if retry.due > now {
                shared.state().pending_retries.push(retry);
                break;
            }
        }
    }
    sent
}
