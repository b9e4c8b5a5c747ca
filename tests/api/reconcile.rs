//! Reconciliation against the WeChat Pay sandbox's trade bill (WeChat's shape:
//! backticks, Chinese header, summary, gzipped, SHA1): a clean day, a payment whose
//! notification was lost (applied once, never twice), a payment the bill lacks
//! (flagged, not reverted), an amount that differs, an order we never made, a bill
//! failing its hash (a failed run, nothing changed), the CLI on a bad date, and the
//! console (finance runs one; viewer and a missing CSRF token are refused; CSV with BOM).
//! Refunds too: a WeChat day with payments and refunds all matched, a refund whose
//! notification and query both went missing found by the bill and applied once; and
//! Alipay's bill (zipped GBK CSV, past days only): a clean day with a refund, and a
//! tampered payment amount flagged.

use std::process::Command;
use std::time::Duration;

use campus_pay::clock::Clock;
use campus_pay::domain::order::beijing_offset;
use campus_pay::domain::provider::Provider;
use campus_pay::domain::refund::ItemEffect;
use campus_pay::jobs::reconcile::{ACTOR_CLI, ReconcileReport, beijing_yesterday};
use campus_pay::pay::checkout::Started;
use campus_pay::pay::refunds::{RefundAsk, Refunds};
use campus_pay::sandbox::alipay::AlipayBillTamper;
use campus_pay::sandbox::wechat_pay::refund_paths;
use campus_pay::store::{
    AdminRole, AuditEntry, FeeItemStatus, OrderStatus, PaymentChannel, RefundRecord, RefundScope,
    RefundStatus,
};
use chrono::{NaiveDate, NaiveTime};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::seed::{LI_SI, ZHANG_SAN, item_statuses, paying_app};

/// The demo school, its clock (shared with the sandboxes) moved on to the next 10:00
/// in Beijing. A test here pays, moves minutes at most and reconciles "today": that must
/// be the payment's own day however near midnight the suite runs.
async fn reconciling_app() -> TestApp {
    let app = paying_app().await;
    move_to_beijing(&app.clock, at(10, 0, 0));
    app
}

fn at(hour: u32, minute: u32, second: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, second).expect("a time of day")
}

/// Moves `clock` forward to the next `time` of day in Beijing.
fn move_to_beijing(clock: &Clock, time: NaiveTime) {
    let now = clock.now().with_timezone(&beijing_offset());
    let mut next = now
        .date_naive()
        .and_time(time)
        .and_local_timezone(beijing_offset())
        .single()
        .expect("a fixed offset has every time once");
    if next < now {
        next += chrono::Duration::days(1);
    }
    clock.advance((next - now).to_std().expect("forward"));
}

/// The Beijing day `number` was paid on, by our books: the day whose bill lists it.
async fn paid_day(app: &TestApp, number: &str) -> NaiveDate {
    app.state
        .store
        .find_order(number)
        .await
        .unwrap()
        .expect("order")
        .paid_at
        .expect("paid")
        .with_timezone(&beijing_offset())
        .date_naive()
}

fn today(app: &TestApp) -> NaiveDate {
    app.clock
        .now()
        .with_timezone(&beijing_offset())
        .date_naive()
}

/// An open WeChat Native order for all of the student's items.
async fn order_for(app: &TestApp, id_card: &str) -> String {
    order_on(app, id_card, PaymentChannel::WechatNative).await
}

/// An open order on `channel` for all of the student's items.
async fn order_on(app: &TestApp, id_card: &str, channel: PaymentChannel) -> String {
    order_of_items(app, id_card, channel, |_| true).await
}

/// An open order on `channel` for the student's items whose position `pick` keeps.
async fn order_of_items(
    app: &TestApp,
    id_card: &str,
    channel: PaymentChannel,
    pick: impl Fn(usize) -> bool,
) -> String {
    let store = &app.state.store;
    let student = store
        .find_student_by_id_card(id_card)
        .await
        .unwrap()
        .expect("seeded");
    let items: Vec<i64> = store
        .fee_items_of(student.id)
        .await
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(position, _)| pick(*position))
        .map(|(_, item)| item.id)
        .collect();
    match app
        .state
        .checkout
        .start(student.id, &items, channel, None, None)
        .await
        .expect("order started")
    {
        Started::Ready { order, .. } => order.out_trade_no,
        other => panic!("no order: {other:?}"),
    }
}

/// An order paid at the sandbox, its notification applied.
async fn paid_order(app: &TestApp, id_card: &str) -> String {
    let number = order_for(app, id_card).await;
    let paid = app.pay.pay(&number).await.expect("paid");
    assert_eq!(paid.notification_answers[0].0, 204);
    number
}

async fn reconcile_today(app: &TestApp) -> ReconcileReport {
    app.state
        .reconciler()
        .reconcile(Provider::WechatPay, today(app), ACTOR_CLI)
        .await
        .expect("a run")
}

async fn order_status(app: &TestApp, number: &str) -> OrderStatus {
    app.state
        .store
        .find_order(number)
        .await
        .unwrap()
        .expect("order")
        .status
}

#[tokio::test]
async fn a_day_whose_payments_all_match_is_clean() {
    let app = reconciling_app().await;
    paid_order(&app, ZHANG_SAN).await;
    paid_order(&app, LI_SI).await;
    let report = reconcile_today(&app).await;
    assert_eq!(report.run.status.as_str(), "done", "{report}");
    assert_eq!(report.run.counts.bill_lines, 2);
    assert_eq!(report.run.counts.matched, 2);
    assert!(report.lines.is_empty(), "{report}");
    assert!(report.to_string().contains("全部一致"));
    // The bill was asked for gzipped and downloaded with a signed request.
    let calls = app.pay.calls();
    let asked = calls
        .iter()
        .find(|call| call.path == "/v3/bill/tradebill")
        .expect("tradebill called");
    assert!(asked.uri.contains("bill_type=ALL") && asked.uri.contains("tar_type=GZIP"));
    assert!(
        calls
            .iter()
            .any(|call| call.path == "/v3/billdownload/file" && call.status == 200)
    );
    let audit = app.audit_rows("reconcile.run").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, "cli");
    assert_eq!(
        audit[0].entry.target,
        format!("reconciliation_run:{}", report.run.id)
    );
}

#[tokio::test]
async fn a_payment_whose_notification_was_lost_is_applied_once() {
    let app = reconciling_app().await;
    let number = order_for(&app, ZHANG_SAN).await;
    app.pay
        .pay_silently(&number)
        .expect("paid, notification lost");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);

    let first = reconcile_today(&app).await;
    assert_eq!(first.run.counts.applied, 1, "{first}");
    assert_eq!(first.lines.len(), 1);
    assert_eq!(first.lines[0].kind, "applied");
    assert_eq!(first.lines[0].out_trade_no, number);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(order_status(&app, &number).await, OrderStatus::Paid);

    let again = reconcile_today(&app).await;
    assert_eq!(again.run.counts.applied, 0, "{again}");
    assert_eq!(again.run.counts.matched, 1);
    assert!(again.lines.is_empty());
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(app.audit_rows("reconcile.run").await.len(), 2);
}

#[tokio::test]
async fn a_payment_missing_from_the_bill_is_flagged_not_reverted() {
    let app = reconciling_app().await;
    let number = paid_order(&app, ZHANG_SAN).await;
    let other = paid_order(&app, LI_SI).await;
    app.pay.bill_leave_out(&number);
    let report = reconcile_today(&app).await;
    assert_eq!(report.run.status.as_str(), "done");
    assert_eq!(report.run.counts.missing_at_channel, 1, "{report}");
    assert_eq!(report.run.counts.matched, 1);
    let line = &report.lines[0];
    assert_eq!(
        (line.kind.as_str(), line.out_trade_no.as_str()),
        ("missing_at_channel", number.as_str())
    );
    assert_eq!(line.our_amount_fen, Some(605_050));
    assert_eq!(order_status(&app, &number).await, OrderStatus::Paid);
    assert_eq!(order_status(&app, &other).await, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test]
async fn an_amount_mismatch_and_an_order_we_never_made_are_flagged() {
    let app = reconciling_app().await;
    let number = paid_order(&app, ZHANG_SAN).await;
    let silent = order_for(&app, LI_SI).await;
    app.pay.pay_silently(&silent).expect("paid");
    app.pay.bill_change_amount(&number, 605_000);
    app.pay.bill_change_amount(&silent, 1);
    app.pay
        .bill_add_payment("CP20990101000000NOTOURS001", 12_345);
    let report = reconcile_today(&app).await;
    assert_eq!(report.run.counts.amount_mismatch, 2, "{report}");
    assert_eq!(report.run.counts.unknown_at_us, 1);
    assert_eq!(report.run.counts.applied, 0);
    let mismatch = report
        .lines
        .iter()
        .find(|line| line.out_trade_no == number)
        .expect("line");
    assert_eq!(mismatch.kind, "amount_mismatch");
    assert_eq!(
        (mismatch.our_amount_fen, mismatch.channel_amount_fen),
        (Some(605_050), Some(605_000))
    );
    let unknown = report
        .lines
        .iter()
        .find(|line| line.kind == "unknown_at_us")
        .expect("line");
    assert_eq!(unknown.out_trade_no, "CP20990101000000NOTOURS001");
    // Nothing applied for a different amount.
    assert_eq!(order_status(&app, &silent).await, OrderStatus::Created);
}

#[tokio::test]
async fn a_bill_failing_its_hash_fails_the_run_and_changes_nothing() {
    let app = reconciling_app().await;
    let number = order_for(&app, ZHANG_SAN).await;
    app.pay.pay_silently(&number).expect("paid");
    app.pay.corrupt_next_bill_hash();
    let report = reconcile_today(&app).await;
    assert_eq!(report.run.status.as_str(), "failed", "{report}");
    let error = report.run.error.clone().unwrap_or_default();
    assert!(error.contains("SHA1"), "{error}");
    assert!(report.lines.is_empty());
    assert_eq!(report.run.counts.applied, 0);
    assert_eq!(order_status(&app, &number).await, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    // The next bill is sound again and the payment is applied.
    let next = reconcile_today(&app).await;
    assert_eq!(next.run.counts.applied, 1, "{next}");
}

#[tokio::test]
async fn a_channel_without_a_bill_gives_a_clear_failed_run() {
    let app = reconciling_app().await;
    let report = app
        .state
        .reconciler()
        .reconcile(Provider::Abc, today(&app), ACTOR_CLI)
        .await
        .expect("a run, not a crash");
    assert_eq!(report.run.status.as_str(), "failed");
    assert!(
        report
            .run
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("不支持"),
        "{report}"
    );
}

#[tokio::test]
async fn the_cli_refuses_a_bad_date_in_one_line() {
    let output = tokio::task::spawn_blocking(|| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_campus-pay"));
        command
            .args(["reconcile", "--date", "2026-02-30", "--channel", "wechat"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAMPUSPAY_")) {
            command.env_remove(key);
        }
        command.env("RUST_LOG", "error");
        command.output().expect("the binary runs")
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--date"), "{stderr}");
}

#[tokio::test]
async fn the_console_runs_one_for_finance_only_and_exports_its_lines() {
    let app = reconciling_app().await;
    let number = order_for(&app, ZHANG_SAN).await;
    app.pay.pay_silently(&number).expect("paid");
    let day = today(&app).format("%Y-%m-%d").to_string();

    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let list = viewer.get("/admin/reconciliation").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains("开始对账"), "no form for a viewer");
    let csrf = viewer.console_csrf().await;
    let refused = viewer
        .post(
            "/admin/reconciliation/run",
            &[("csrf", &csrf), ("date", &day), ("channel", "wechat")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let refused = finance
        .post(
            "/admin/reconciliation/run",
            &[("date", day.as_str()), ("channel", "wechat")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(app.audit_rows("reconcile.").await.is_empty());
    assert_eq!(order_status(&app, &number).await, OrderStatus::Created);

    let csrf = finance.console_csrf().await;
    let done = finance
        .post(
            "/admin/reconciliation/run",
            &[("csrf", &csrf), ("date", &day), ("channel", "wechat")],
        )
        .await;
    let location = done.location.clone().unwrap_or_default();
    assert!(
        location.starts_with("/admin/reconciliation/runs/"),
        "{:?} {}",
        done.status,
        done.body
    );
    assert_eq!(order_status(&app, &number).await, OrderStatus::Paid);
    let audit = app.audit_rows("reconcile.run").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, FINANCE);

    let page = finance.get(&location).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("渠道已收、我方补入账"), "{}", page.body);
    assert!(page.body.contains(&format!("/admin/payments/{number}")));
    let list = finance.get("/admin/reconciliation").await;
    assert!(list.body.contains(&day) && list.body.contains("微信支付"));

    let (status, content_type, bytes) = finance.download(&format!("{location}/lines.csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "BOM first");
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(text.contains(&number) && text.contains("6050.50"), "{text}");

    // A bad date is said, and nothing runs.
    let bad = finance
        .post(
            "/admin/reconciliation/run",
            &[
                ("csrf", &csrf),
                ("date", "2026-13-01"),
                ("channel", "wechat"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.body.contains("日期"), "{}", bad.body);
    assert_eq!(app.audit_rows("reconcile.run").await.len(), 1);
}

fn refunds(app: &TestApp) -> Refunds {
    Refunds::from_checkout(&app.state.checkout)
}

/// The office refunds `fen` of `number` through the refund service: the whole order
/// (its items owed again), or part of its first item (the item's amount lowered).
async fn refund(app: &TestApp, number: &str, fen: i64) -> RefundRecord {
    let store = &app.state.store;
    let order = store.find_order(number).await.unwrap().expect("order");
    let (scope, effect) = if fen == order.amount_fen {
        (RefundScope::WholeOrder, ItemEffect::OweAgain)
    } else {
        let lines = store.order_lines(order.id).await.unwrap();
        let scope = RefundScope::Item {
            fee_item_id: lines[0].fee_item_id,
            amount_fen: fen,
        };
        (scope, ItemEffect::LowerAmount)
    };
    let ask = RefundAsk {
        scope,
        effect,
        reason: "退款".into(),
        expected_left_fen: None,
    };
    refunds(app)
        .request(number, &ask, AuditEntry::new(FINANCE, "refund.request", ""))
        .await
        .expect("refund recorded")
}

async fn refund_status(app: &TestApp, out_refund_no: &str) -> RefundStatus {
    app.state
        .store
        .find_refund(out_refund_no)
        .await
        .unwrap()
        .expect("refund")
        .status
}

#[tokio::test]
async fn a_wechat_day_with_payments_and_refunds_all_matched_is_clean() {
    let app = reconciling_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app, ZHANG_SAN).await;
    paid_order(&app, LI_SI).await;
    let asked = refund(&app, &number, 10_000).await;
    assert_eq!(asked.status, RefundStatus::Processing);
    let answers = app
        .pay
        .complete_refund(&asked.out_refund_no)
        .await
        .expect("completed");
    assert_eq!(answers[0].0, 204);
    assert_eq!(
        refund_status(&app, &asked.out_refund_no).await,
        RefundStatus::Succeeded
    );
    // WeChat's bill has the refund in its own columns.
    let text = app.pay.trade_bill_text(today(&app));
    let refund_line = text
        .lines()
        .find(|line| line.contains("`REFUND"))
        .expect("a refund line");
    assert!(
        refund_line.contains(&format!("`{}", asked.out_refund_no))
            && refund_line.contains("`100.00")
            && refund_line.contains("`ORIGINAL"),
        "{refund_line}"
    );

    let report = reconcile_today(&app).await;
    assert_eq!(report.run.status.as_str(), "done", "{report}");
    assert_eq!(report.run.counts.bill_lines, 3, "{report}");
    assert_eq!(report.run.counts.matched, 3, "{report}");
    assert_eq!(report.run.counts.applied, 0);
    assert!(report.lines.is_empty(), "{report}");
}

#[tokio::test]
async fn a_wechat_refund_whose_notification_and_query_went_missing_is_applied_once() {
    let app = reconciling_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app, ZHANG_SAN).await;
    let asked = refund(&app, &number, 605_050).await;
    assert_eq!(asked.status, RefundStatus::Processing);
    // The money is back; the notification is lost, and so is every query.
    app.pay
        .complete_refund_silently(&asked.out_refund_no)
        .expect("settled");
    app.pay
        .fail_next(refund_paths::QUERY_REFUND, 500, "SYSTEM_ERROR", 5);
    app.clock.advance(Duration::from_secs(3 * 60));
    refunds(&app).sweep(10).await.expect("swept");
    assert_eq!(
        refund_status(&app, &asked.out_refund_no).await,
        RefundStatus::Processing,
        "the query found nothing"
    );

    let first = reconcile_today(&app).await;
    assert_eq!(first.run.status.as_str(), "done", "{first}");
    assert_eq!(first.run.counts.applied, 1, "{first}");
    assert_eq!(first.run.counts.matched, 1, "the payment");
    assert_eq!(first.lines.len(), 1, "{first}");
    let line = &first.lines[0];
    assert_eq!(line.kind, "refund_applied");
    assert_eq!(line.out_trade_no, number);
    assert_eq!(line.channel_amount_fen, Some(605_050));
    assert!(
        line.note
            .as_deref()
            .unwrap_or("")
            .contains(&asked.out_refund_no),
        "{line:?}"
    );
    let applied = app
        .state
        .store
        .find_refund(&asked.out_refund_no)
        .await
        .unwrap()
        .expect("refund");
    assert_eq!(applied.status, RefundStatus::Succeeded);
    assert_eq!(applied.channel_refund_no, asked.channel_refund_no);
    assert!(first.to_string().contains("渠道已退款、我方补记退款成功"));

    // Again: nothing applied twice; the notification arriving late changes nothing.
    let again = reconcile_today(&app).await;
    assert_eq!(again.run.counts.applied, 0, "{again}");
    assert_eq!(again.run.counts.matched, 2);
    assert!(again.lines.is_empty(), "{again}");
    let late = app
        .pay
        .refund_notification_for(&asked.out_refund_no, None, None)
        .expect("built");
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat/refund", app.url))
        .body(late.body.clone());
    for (name, value) in &late.headers {
        request = request.header(name, value);
    }
    assert!(request.send().await.expect("sent").status().is_success());
    let after = app
        .state
        .store
        .find_refund(&asked.out_refund_no)
        .await
        .unwrap()
        .expect("refund");
    assert_eq!(
        (after.status, after.finished_at, after.channel_refund_no),
        (
            applied.status,
            applied.finished_at,
            applied.channel_refund_no
        ),
        "a late notification changes nothing"
    );
}

/// 张三 pays by Alipay (notification applied); the order's number.
async fn paid_by_alipay(app: &TestApp) -> String {
    let number = order_on(app, ZHANG_SAN, PaymentChannel::Alipay).await;
    app.alipay.pay(&number).await.expect("paid at Alipay");
    assert_eq!(order_status(app, &number).await, OrderStatus::Paid);
    number
}

/// Alipay serves bills for past days only: the clock moves to the next day first.
async fn reconcile_alipay_day(app: &TestApp, day: NaiveDate) -> ReconcileReport {
    app.clock.advance(Duration::from_secs(24 * 60 * 60));
    app.state
        .reconciler()
        .reconcile(Provider::Alipay, day, ACTOR_CLI)
        .await
        .expect("a run")
}

#[tokio::test]
async fn an_alipay_day_with_a_payment_and_a_refund_is_clean() {
    let app = reconciling_app().await;
    let number = paid_by_alipay(&app).await;
    let day = paid_day(&app, &number).await;
    let asked = refund(&app, &number, 20_000).await;
    assert_eq!(
        asked.status,
        RefundStatus::Succeeded,
        "Alipay refunds at once"
    );

    let report = reconcile_alipay_day(&app, day).await;
    assert_eq!(report.run.status.as_str(), "done", "{report}");
    assert_eq!(report.run.channel, "alipay");
    assert_eq!(report.run.counts.bill_lines, 2, "{report}");
    assert_eq!(report.run.counts.matched, 2, "{report}");
    assert!(report.lines.is_empty(), "{report}");
}

#[tokio::test]
async fn a_tampered_alipay_amount_is_flagged_and_nothing_changes() {
    let app = reconciling_app().await;
    let number = paid_by_alipay(&app).await;
    let day = paid_day(&app, &number).await;
    app.alipay.tamper_bills(AlipayBillTamper::PaymentAmount {
        out_trade_no: number.clone(),
        amount_fen: 605_000,
    });
    let report = reconcile_alipay_day(&app, day).await;
    assert_eq!(report.run.status.as_str(), "done", "{report}");
    assert_eq!(report.run.counts.amount_mismatch, 1, "{report}");
    assert_eq!(report.run.counts.matched, 0);
    assert_eq!(report.lines.len(), 1);
    let line = &report.lines[0];
    assert_eq!(line.kind, "amount_mismatch");
    assert_eq!(line.out_trade_no, number);
    assert_eq!(
        (line.our_amount_fen, line.channel_amount_fen),
        (Some(605_050), Some(605_000))
    );
    assert_eq!(order_status(&app, &number).await, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

/// The daily run right after midnight (Beijing) takes yesterday's bills: what was paid
/// at 23:59:30 is on them, by WeChat Pay and by Alipay alike, and what was paid at
/// 00:00:30 (08:00 the day before in UTC) is not.
#[tokio::test]
async fn the_run_after_midnight_takes_the_payments_of_23_59_30_and_not_of_00_00_30() {
    let app = paying_app().await;
    move_to_beijing(&app.clock, at(23, 59, 30));
    let by_wechat = order_of_items(&app, ZHANG_SAN, PaymentChannel::WechatNative, |i| i < 2).await;
    let by_alipay = order_of_items(&app, ZHANG_SAN, PaymentChannel::Alipay, |i| i == 2).await;
    assert_eq!(
        app.pay
            .pay(&by_wechat)
            .await
            .expect("paid")
            .notification_answers[0]
            .0,
        204
    );
    app.alipay.pay(&by_alipay).await.expect("paid at Alipay");
    let day = paid_day(&app, &by_wechat).await;
    assert_eq!(paid_day(&app, &by_alipay).await, day);

    app.clock.advance(Duration::from_secs(60));
    let after_midnight = paid_order(&app, LI_SI).await;
    assert_eq!(
        paid_day(&app, &after_midnight).await,
        day.succ_opt().expect("a next day")
    );
    assert_eq!(beijing_yesterday(app.clock.now()), day, "the run's day");
    for (channel, number) in [
        (Provider::WechatPay, &by_wechat),
        (Provider::Alipay, &by_alipay),
    ] {
        let report = app
            .state
            .reconciler()
            .reconcile(channel, day, ACTOR_CLI)
            .await
            .expect("a run");
        assert_eq!(report.run.status.as_str(), "done", "{report}");
        assert_eq!(report.run.counts.bill_lines, 1, "{report}");
        assert_eq!(report.run.counts.matched, 1, "{report}");
        assert!(report.lines.is_empty(), "{report}");
        assert_eq!(order_status(&app, number).await, OrderStatus::Paid);
    }
}
