//! `/metrics` after real flows: a webhook message, a forged and a real WeChat Pay
//! notification, a payment started in WeChat. Read over HTTP, as Prometheus does.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::metrics::{JobResult, UpstreamObserver, UpstreamOutcome};
use campus_pay::sandbox::wechat_pay::Tamper;
use campus_pay::sandbox::wechat_push::{self, EncryptionMode};
use reqwest::StatusCode;

use crate::support::browser::{Browser, element_text};
use crate::support::seed::{ZHANG_SAN, paying_app};
use crate::support::{ACCOUNT, TestApp, now};

const FOLLOWER: &str = "oyORnuP8q7ou2gfYjqLzSIWZf0rs";

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .expect("scraped");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition");
    text
}

/// The value of one series (`name{labels}`), if the exposition has it.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.split(' ').next()?.parse().ok())
}

fn assert_value(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in\n{text}");
}

/// 张三 ticks all his items in WeChat and reaches the pay page: the order's number.
async fn start_paying_in_wechat(app: &TestApp) -> String {
    let mut browser = Browser::signed_in_h5(app, "o_zhang", ZHANG_SAN, "31002X").await;
    let fees = browser.get("/h5/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let paying = browser.post("/h5/pay", &form).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    element_text(&paying.body, "order-number").expect("the page shows the order number")
}

async fn post_wechat_notification(app: &TestApp, number: &str, tamper: Tamper) -> StatusCode {
    let notification = app.pay.notification_for(number, tamper).expect("built");
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body(notification.body.clone());
    for (name, value) in &notification.headers {
        request = request.header(name, value);
    }
    request.send().await.expect("sent").status()
}

#[tokio::test]
async fn a_scrape_shows_messages_payments_refusals_and_upstream_calls() {
    let app = paying_app().await;
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "查询", 41, now());
    app.send(&xml, EncryptionMode::Plaintext).await;

    let number = start_paying_in_wechat(&app).await;
    let forged = post_wechat_notification(&app, &number, Tamper::WrongKey).await;
    assert_eq!(forged, StatusCode::UNAUTHORIZED);
    let paid = app.pay.pay(&number).await.expect("paid in the sandbox");
    assert_eq!(
        paid.notification_answers.first().map(|(status, _)| *status),
        Some(204)
    );
    // A copy of the real notification changes nothing and is counted as such.
    let copy = post_wechat_notification(&app, &number, Tamper::None).await;
    assert_eq!(copy, StatusCode::NO_CONTENT);

    let text = scrape(&app).await;
    assert_value(
        &text,
        r#"campuspay_webhook_messages_total{kind="text"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_http_requests_total{route="/wechat",method="POST",status="200"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_orders_started_total{channel="wechat_jsapi"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_payments_total{channel="wechat",outcome="applied"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_payments_total{channel="wechat",outcome="duplicate"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_notifications_refused_total{channel="wechat",reason="signature"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_http_requests_total{route="/pay/notify/wechat",method="POST",status="401"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"campuspay_http_requests_total{route="/pay/notify/wechat",method="POST",status="204"}"#,
        2.0,
    );
    let jsapi_ok = value(
        &text,
        r#"campuspay_upstream_requests_total{upstream="wechatpay",api="jsapi",outcome="ok"}"#,
    );
    assert!(jsapi_ok.is_some_and(|calls| calls >= 1.0), "{text}");
    let jsapi_timed = value(
        &text,
        r#"campuspay_upstream_request_duration_seconds_count{upstream="wechatpay",api="jsapi"}"#,
    );
    assert!(jsapi_timed.is_some_and(|calls| calls >= 1.0), "{text}");
    // The database figures were read: nothing is left for the office.
    assert_value(&text, "campuspay_orders_paid_unapplied", 0.0);
    assert_value(&text, "campuspay_reconciliation_mismatches_open", 0.0);
    assert_value(&text, "campuspay_ready", 1.0);
    assert!(!text.contains("campuspay_scrape_errors_total{"), "{text}");
}

#[tokio::test]
async fn paths_no_route_matches_share_one_series_and_templates_hide_values() {
    let app = paying_app().await;
    for path in ["/no/such/page", "/wp-login.php", "/.env"] {
        let response = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let number = start_paying_in_wechat(&app).await;
    let text = scrape(&app).await;
    assert_value(
        &text,
        r#"campuspay_http_requests_total{route="unmatched",method="GET",status="404"}"#,
        3.0,
    );
    for path in ["/no/such/page", "wp-login", "/.env", number.as_str()] {
        assert!(!text.contains(path), "{path} leaked into a label:\n{text}");
    }
    // The scrape itself is counted by the next one, under its own route.
    let again = scrape(&app).await;
    assert_value(
        &again,
        r#"campuspay_http_requests_total{route="/metrics",method="GET",status="200"}"#,
        1.0,
    );
}

#[tokio::test]
async fn a_payment_after_close_shows_as_paid_after_close_and_left_for_the_office() {
    let app = paying_app().await;
    let number = start_paying_in_wechat(&app).await;
    // The order expires and is closed at WeChat; then the payment arrives anyway.
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(report.closed, 1, "{report:?}");
    let late = post_wechat_notification(&app, &number, Tamper::None).await;
    assert!(late.is_success(), "{late}");

    let text = scrape(&app).await;
    assert_value(
        &text,
        r#"campuspay_payments_total{channel="wechat",outcome="paid_after_close"}"#,
        1.0,
    );
    assert_eq!(
        value(
            &text,
            r#"campuspay_payments_total{channel="wechat",outcome="applied"}"#
        ),
        None
    );
    assert_value(&text, "campuspay_orders_paid_unapplied", 1.0);
    assert_value(
        &text,
        r#"campuspay_upstream_requests_total{upstream="wechatpay",api="close",outcome="ok"}"#,
        1.0,
    );
}

/// Every metric the dashboard and the alert rules query is one the program exposes.
#[tokio::test]
async fn the_dashboard_and_alerts_query_only_metrics_that_exist() {
    let app = paying_app().await;
    // A family is declared once it has a series: give each one.
    let metrics = &app.state.metrics;
    metrics.http_request("/wechat", "POST", 200, Duration::from_millis(1));
    metrics.webhook_message("text");
    metrics.webhook_refused("bad_signature");
    metrics.payment("wechat", "applied");
    metrics.order_started("wechat_jsapi");
    metrics.notification_refused("wechat", "signature");
    UpstreamObserver::new(metrics.clone(), "wechat").call(
        "token",
        UpstreamOutcome::Ok,
        Duration::from_millis(1),
    );
    metrics.job_run("order_sweep", JobResult::Ok, chrono::Utc::now());
    metrics.scrape_error("orders_paid_unapplied");
    let text = scrape(&app).await;
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    for file in [
        "deploy/grafana-dashboard.json",
        "deploy/prometheus-alerts.yml",
    ] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let source = std::fs::read_to_string(&path).expect("the deploy file");
        let mut names: Vec<&str> = source
            .match_indices("campuspay_")
            .map(|(at, _)| {
                let rest = &source[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 5, "{file} queries campus-pay's metrics");
        for name in names {
            let base = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                declared.contains(&base),
                "{file} queries {name}, which /metrics does not declare"
            );
        }
    }
}
