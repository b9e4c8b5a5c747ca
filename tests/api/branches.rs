//! Branches that never ran before issue 14: a close that fails or hangs during the
//! sweep (the items stay held, the run counts as failed, the next pass closes), and
//! other students' (or unpayable) items posted to every pay endpoint (no order, no
//! prepay at any sandbox).

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once_counted;
use campus_pay::pay::alipay::client::PRECREATE;
use campus_pay::sandbox::alipay::{SandboxTradeStatus, methods as alipay_methods};
use campus_pay::sandbox::wechat_pay::{TradeState, codes, paths};
use campus_pay::store::{AuditEntry, FeeItemChange, FeeItemStatus, OrderStatus};
use reqwest::StatusCode;

use crate::support::browser::{Browser, NEW_PASSWORD, element_text};
use crate::support::seed::{LI_SI, ZHANG_SAN, item_statuses};
use crate::support::{Options, TestApp, spawn_app_with};

// ---- a close that fails or hangs during the sweep -----------------------------------

/// Channel calls give up after a second (the default is ten), so a hang is a timeout
/// well inside the test.
async fn app_with_short_upstream_timeout() -> TestApp {
    let app = spawn_app_with(Options {
        public_url_is_self: true,
        extra_config: vec![("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS", "1".to_owned())],
        ..Options::default()
    })
    .await;
    app.seed_students_and_fees().await;
    app
}

/// The channels that close an unpaid order when asked (the bank cannot: its orders
/// are held until its own timeout instead).
#[derive(Debug, Clone, Copy)]
enum Closer {
    WechatPay,
    Alipay,
}

/// Longer than the upstream timeout above.
const HANG: Duration = Duration::from_secs(3);

impl Closer {
    /// Where 张三 asks for the QR code.
    fn pay_path(self) -> &'static str {
        match self {
            Closer::WechatPay => "/pay/wechat",
            Closer::Alipay => "/pay/alipay",
        }
    }

    /// The channel answers the next close with its system error.
    fn fail_next_close(self, app: &TestApp) {
        match self {
            Closer::WechatPay => app.pay.fail_next(paths::CLOSE, 500, codes::SYSTEM_ERROR, 1),
            Closer::Alipay => {
                app.alipay
                    .fail_next(alipay_methods::CLOSE, "20000", "isp.unknow-error", 1);
            }
        }
    }

    /// The channel holds the next close past our timeout.
    fn hang_next_close(self, app: &TestApp) {
        match self {
            Closer::WechatPay => app.pay.hang_next(paths::CLOSE, HANG, 1),
            Closer::Alipay => app.alipay.hang_next(alipay_methods::CLOSE, HANG, 1),
        }
    }

    /// Whether the channel holds the order closed (it can no longer be paid there).
    fn closed_there(self, app: &TestApp, number: &str) -> bool {
        match self {
            Closer::WechatPay => {
                app.pay.transaction(number).expect("known").trade_state == TradeState::Closed
            }
            Closer::Alipay => {
                app.alipay.transaction(number).expect("known").status
                    == SandboxTradeStatus::TradeClosed
            }
        }
    }
}

/// 张三 asks for a QR code for all his items: the order's number.
async fn open_qr_order(app: &TestApp, closer: Closer) -> String {
    let mut browser = Browser::signed_in_pc(app, ZHANG_SAN, "31002X").await;
    let fees = browser.get("/fees").await;
    let csrf = fees.csrf();
    let ids = Browser::item_ids(&fees);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let page = browser.post(closer.pay_path(), &form).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    element_text(&page.body, "order-number").expect("the page shows the order number")
}

/// The order sweep's runs by result, as `/metrics` shows them.
async fn sweep_runs(app: &TestApp, result: &str) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .expect("scraped")
        .text()
        .await
        .expect("body");
    let series = format!(r#"campuspay_job_runs_total{{job_name="order_sweep",result="{result}"}}"#);
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.strip_prefix(' '))
        .and_then(|value| value.split(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

async fn status_of(app: &TestApp, number: &str) -> OrderStatus {
    app.state
        .store
        .find_order(number)
        .await
        .expect("reads")
        .expect("the order")
        .status
}

/// One counted pass, as the scheduled job runs it.
async fn counted_sweep(app: &TestApp) -> campus_pay::pay::checkout::SweepReport {
    sweep_once_counted(&app.state.checkout, &app.state.cache, &app.state.metrics)
        .await
        .expect("the pass runs")
        .expect("the sweep lock is free")
}

/// An expired order whose close fails, then hangs: each pass counts a failure and
/// leaves the items held by the order; the pass after the channel recovers closes it
/// there, then here, and releases them.
async fn close_fails_then_hangs_then_goes_through(closer: Closer) {
    let app = app_with_short_upstream_timeout().await;
    let number = open_qr_order(&app, closer).await;
    if let Closer::Alipay = closer {
        // Scanned: a trade exists at Alipay, so its close really closes something.
        app.alipay.scan(&number).expect("scanned");
    }
    app.clock.advance(Duration::from_secs(16 * 60));
    let (ok_before, failed_before) = (
        sweep_runs(&app, "ok").await,
        sweep_runs(&app, "failed").await,
    );

    closer.fail_next_close(&app);
    let failed = counted_sweep(&app).await;
    assert_eq!(
        (failed.closed, failed.failed),
        (0, 1),
        "{closer:?}: {failed:?}"
    );
    assert_eq!(status_of(&app, &number).await, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    assert_eq!(sweep_runs(&app, "failed").await, failed_before + 1.0);

    // Past our timeout the outcome is unknown: the order may be closed there or not.
    closer.hang_next_close(&app);
    let hung = counted_sweep(&app).await;
    assert_eq!((hung.closed, hung.failed), (0, 1), "{closer:?}: {hung:?}");
    assert_eq!(status_of(&app, &number).await, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    assert_eq!(sweep_runs(&app, "failed").await, failed_before + 2.0);
    assert_eq!(
        sweep_runs(&app, "ok").await,
        ok_before,
        "no pass counted as fine"
    );

    let next = counted_sweep(&app).await;
    assert_eq!((next.closed, next.failed), (1, 0), "{closer:?}: {next:?}");
    assert!(closer.closed_there(&app, &number), "{closer:?}");
    assert_eq!(status_of(&app, &number).await, OrderStatus::Closed);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Unpaid; 3]);
    assert_eq!(sweep_runs(&app, "ok").await, ok_before + 1.0);
    assert_eq!(sweep_runs(&app, "failed").await, failed_before + 2.0);
}

#[tokio::test]
async fn a_wechat_pay_close_that_fails_or_hangs_keeps_the_items_held_until_a_pass_closes_it() {
    close_fails_then_hangs_then_goes_through(Closer::WechatPay).await;
}

#[tokio::test]
async fn an_alipay_close_that_fails_or_hangs_keeps_the_items_held_until_a_pass_closes_it() {
    close_fails_then_hangs_then_goes_through(Closer::Alipay).await;
}

// ---- items that are not the student's to pay, at every pay endpoint ------------------

/// Every request that would ask a channel to collect: WeChat Pay (JSAPI and Native),
/// Alipay's precreate, and the bank's orders.
fn prepay_requests(app: &TestApp) -> usize {
    app.pay.calls_to(paths::JSAPI)
        + app.pay.calls_to(paths::NATIVE)
        + app.alipay.calls_to(PRECREATE)
        + app.abc.order_count()
}

async fn orders_in_database(app: &TestApp) -> usize {
    crate::races::orders_in_database(app).await.len()
}

/// The student's item ids by name (学费, 住宿费, 教材费).
async fn item_id(app: &TestApp, id_card: &str, name: &str) -> i64 {
    let store = &app.state.store;
    let student = store
        .find_student_by_id_card(id_card)
        .await
        .expect("reads")
        .expect("seeded");
    store
        .fee_items_of(student.id)
        .await
        .expect("items")
        .iter()
        .find(|item| item.item == name)
        .map(|item| item.id)
        .expect("the item is seeded")
}

#[tokio::test]
async fn other_students_and_unpayable_items_get_no_order_and_no_prepay_at_any_endpoint() {
    let app = crate::support::seed::paying_app().await;
    // 张三 in WeChat (bound, password chosen) and on PC with that password.
    let mut phone = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let mut pc = Browser::new(&app);
    let signed_in = pc.pc_login(ZHANG_SAN, NEW_PASSWORD).await;
    assert!(signed_in.status.is_redirection(), "{}", signed_in.body);
    let h5_csrf = phone.get("/h5/fees").await.csrf();
    let pc_csrf = pc.get("/fees").await.csrf();

    // 张三's items: 学费, 住宿费 (deferred past today), 教材费 (waived); 李四's 学费.
    let tuition = item_id(&app, ZHANG_SAN, "学费").await;
    let lodging = item_id(&app, ZHANG_SAN, "住宿费").await;
    let books = item_id(&app, ZHANG_SAN, "教材费").await;
    let li_si = item_id(&app, LI_SI, "学费").await;
    let store = &app.state.store;
    let now = app.clock.now();
    let office = || AuditEntry::new("test", "fee.change", "fee_item");
    store
        .defer_fee_item(
            lodging,
            now + chrono::Duration::days(30),
            "缓缴",
            office(),
            now,
        )
        .await
        .map(|change| assert_eq!(change, FeeItemChange::Changed))
        .expect("deferred");
    store
        .waive_fee_item(books, "减免", office(), now)
        .await
        .map(|change| assert_eq!(change, FeeItemChange::Changed))
        .expect("waived");

    let cases: [(&str, Vec<i64>); 7] = [
        ("another student's item", vec![li_si]),
        ("another student's item, twice", vec![li_si, li_si]),
        (
            "own item twice with another student's",
            vec![tuition, li_si, tuition],
        ),
        ("own and another student's", vec![tuition, li_si]),
        ("a deferred item", vec![lodging]),
        ("a waived item", vec![books]),
        (
            "payable, deferred and waived",
            vec![tuition, lodging, books],
        ),
    ];
    let pc_endpoints = [
        "/confirm",
        "/pay",
        "/pay/wechat",
        "/pay/alipay",
        "/pay/abc/scan",
        "/pay/abc/page",
    ];
    let h5_endpoints = ["/h5/confirm", "/h5/pay"];
    for (what, items) in &cases {
        let texts: Vec<String> = items.iter().map(i64::to_string).collect();
        for (browser, csrf, endpoints) in [
            (&mut pc, &pc_csrf, &pc_endpoints[..]),
            (&mut phone, &h5_csrf, &h5_endpoints[..]),
        ] {
            for endpoint in endpoints {
                let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
                form.extend(texts.iter().map(|id| ("item", id.as_str())));
                let page = browser.post(endpoint, &form).await;
                assert_eq!(
                    page.status,
                    StatusCode::CONFLICT,
                    "{what} at {endpoint}: {}",
                    page.body
                );
                assert!(
                    page.body.contains("请重新选择"),
                    "{what} at {endpoint}: {}",
                    page.body
                );
                assert_eq!(orders_in_database(&app).await, 0, "{what} at {endpoint}");
                assert_eq!(prepay_requests(&app), 0, "{what} at {endpoint}");
            }
        }
    }
    // Nothing changed hands: 李四 still owes his 学费, 张三's items are as the office
    // left them (教材费 waived, 学费 owed, 住宿费 deferred).
    let li_student = store
        .find_student_by_id_card(LI_SI)
        .await
        .expect("reads")
        .expect("seeded");
    let li_items = store.fee_items_of(li_student.id).await.expect("items");
    assert_eq!(li_items[0].status, FeeItemStatus::Unpaid);
    assert_eq!(
        item_statuses(&app).await,
        [
            FeeItemStatus::Waived,
            FeeItemStatus::Unpaid,
            FeeItemStatus::Deferred
        ]
    );

    // The counts above would have seen a prepay: the payable item goes through, and
    // ticked twice it is in the order once, charged once.
    let tuition_text = tuition.to_string();
    let page = pc
        .post(
            "/pay/wechat",
            &[
                ("csrf", &pc_csrf),
                ("item", &tuition_text),
                ("item", &tuition_text),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let orders = crate::races::orders_in_database(&app).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    let (order, lines) = &orders[0];
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].fee_item_id, tuition);
    assert_eq!(order.amount_fen, 450_000);
    assert_eq!(prepay_requests(&app), 1);
    let prepay = app
        .pay
        .transaction(&order.out_trade_no)
        .expect("prepaid at WeChat");
    assert_eq!(prepay.total, 450_000);
}
