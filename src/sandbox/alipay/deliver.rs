//! Notification delivery: the signed `trade_status_sync` form, the first post, then
//! Alipay's retry schedule, driven by the sandbox's clock.

use super::*;

/// The `trade_status_sync` parameters of a paid trade (without `sign`).
pub(super) fn notification_params(
    trade: &AlipaySandboxTrade,
    app_id: &str,
    trade_status: &str,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let amount = trade.total_amount.clone();
    let fund_bill_list = format!(r#"[{{"amount":"{amount}","fundChannel":"ALIPAYACCOUNT"}}]"#);
    let time = |at: Option<DateTime<Utc>>| alipay_time(at.unwrap_or(now));
    [
        ("gmt_create", time(trade.scanned_at)),
        ("charset", "utf-8".to_owned()),
        ("seller_email", SELLER_EMAIL.to_owned()),
        ("subject", trade.subject.clone()),
        ("buyer_id", trade.buyer_id.clone().unwrap_or_default()),
        ("invoice_amount", amount.clone()),
        ("notify_id", trade.notify_id.clone().unwrap_or_default()),
        ("fund_bill_list", fund_bill_list),
        ("notify_type", "trade_status_sync".to_owned()),
        ("trade_status", trade_status.to_owned()),
        ("receipt_amount", amount.clone()),
        ("buyer_pay_amount", amount.clone()),
        ("sign_type", "RSA2".to_owned()),
        ("app_id", app_id.to_owned()),
        ("seller_id", SELLER_ID.to_owned()),
        ("gmt_payment", time(trade.paid_at)),
        ("notify_time", alipay_time(now)),
        ("version", "1.0".to_owned()),
        ("out_trade_no", trade.out_trade_no.clone()),
        ("total_amount", amount),
        ("trade_no", trade.trade_no.clone().unwrap_or_default()),
        ("auth_app_id", app_id.to_owned()),
        ("buyer_logon_id", BUYER_LOGON_ID.to_owned()),
        ("point_amount", "0.00".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Sends the retries due by the sandbox's clock; see
/// [`AlipaySandbox::deliver_due_retries`].
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
            let params = notification_params(
                &retry.trade,
                &shared.app_id,
                "TRADE_SUCCESS",
                shared.clock.now(),
            );
            let body = signed_form(&params, &KEYS.alipay);
            let answer = post_notification(&shared.http, &retry.url, body).await;
            sent += 1;
            shared.record_answers(&retry.trade.out_trade_no, std::slice::from_ref(&answer));
            if is_acknowledged(answer.0, &answer.1) {
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

pub(super) fn is_acknowledged(status: u16, body: &str) -> bool {
    status == 200 && body == "success"
}

pub(super) async fn post_notification(
    http: &reqwest::Client,
    url: &str,
    body: String,
) -> (u16, String) {
    let request = http
        .post(url)
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body);
    kit::send(request).await
}

/// Sends a paid order's notification: `copies` at once, freshly signed; retries in
/// the background when none was acknowledged and a schedule is set. An order
/// without `notify_url` is not notified.
pub(super) async fn deliver(
    shared: Arc<Shared>,
    out_trade_no: String,
) -> Result<Vec<(u16, String)>, AlipayPayError> {
    let (url, trade) = shared.outgoing_notification(&out_trade_no)?;
    let Some(url) = url else {
        return Ok(Vec::new());
    };
    let (copies, schedule) = {
        let state = shared.state();
        (state.notification_copies, state.retry_schedule.clone())
    };
    let params = notification_params(&trade, &shared.app_id, "TRADE_SUCCESS", shared.clock.now());
    let body = signed_form(&params, &KEYS.alipay);
    let mut attempts = JoinSet::new();
    for _ in 0..copies {
        let http = shared.http.clone();
        let url = url.clone();
        let body = body.clone();
        attempts.spawn(async move { post_notification(&http, &url, body).await });
    }
    let mut answers = Vec::with_capacity(copies);
    while let Some(joined) = attempts.join_next().await {
        let answer = joined.unwrap_or_else(|error| (0, error.to_string()));
        shared.record_answers(&out_trade_no, std::slice::from_ref(&answer));
        answers.push(answer);
    }
    let acknowledged = answers
        .iter()
        .any(|(status, body)| is_acknowledged(*status, body));
    let mut schedule: VecDeque<Duration> = schedule.into();
    if let (false, Some(first)) = (acknowledged, schedule.pop_front()) {
        let due = after(shared.clock.now(), first);
        shared.state().pending_retries.push(PendingRetry {
            trade,
            url,
            due,
            remaining: schedule,
        });
    }
    Ok(answers)
}
