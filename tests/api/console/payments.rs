//! The console's payments over HTTP: a real payment through the WeChat Pay sandbox in
//! the list, its filters and its page; a forged notification and a payment after
//! close as exceptions the office resolves (once, by finance, with the form's token);
//! the CSV export.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::sandbox::wechat_pay::{Notification, Tamper};
use campus_pay::store::{AdminRole, OrderStatus};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::{Browser, Page, element_text};
use crate::support::seed::{LI_SI, ZHANG_SAN, paying_app};

/// 张三 in WeChat: all three items into one order (wechat_jsapi). Its number.
async fn zhang_san_orders(app: &TestApp) -> String {
    let mut browser = Browser::signed_in_h5(app, "o_zhang", ZHANG_SAN, "31002X").await;
    let fees = browser.get("/h5/fees").await;
    let ids = Browser::item_ids(&fees);
    assert_eq!(ids.len(), 3);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let paying = browser.post("/h5/pay", &form).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    element_text(&paying.body, "order-number").expect("the order number")
}

/// 李四 on PC: his one item into a QR-code order (wechat_native), left unpaid.
async fn li_si_orders(app: &TestApp) -> String {
    let mut browser = Browser::signed_in_pc(app, LI_SI, "000000").await;
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    assert_eq!(ids.len(), 1);
    let csrf = fees.csrf();
    let qr = browser
        .post("/pay/wechat", &[("csrf", &csrf), ("item", &ids[0])])
        .await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    element_text(&qr.body, "order-number").expect("the order number")
}

async fn post_notification(app: &TestApp, notification: &Notification) -> StatusCode {
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body(notification.body.clone());
    for (name, value) in &notification.headers {
        request = request.header(name, value);
    }
    request.send().await.expect("sent").status()
}

/// Today in Beijing on the app's clock, shifted by `days`, as `YYYY-MM-DD`.
fn beijing_date(app: &TestApp, days: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    (app.clock.now().with_timezone(&offset).date_naive() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// The markup of the element with `id` up to the end of its table.
fn table<'a>(body: &'a str, id: &str) -> &'a str {
    let start = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {body}"));
    let end = body[start..]
        .find("</table>")
        .map_or(body.len(), |end| start + end);
    &body[start..end]
}

/// The ids in the resolve forms' actions of `kind` (`order` or `notification`).
fn resolve_ids(markup: &str, kind: &str) -> Vec<String> {
    let marker = format!("/admin/payments/exceptions/{kind}/");
    markup
        .match_indices(&marker)
        .map(|(at, _)| {
            let rest = &markup[at + marker.len()..];
            rest[..rest.find('/').expect("ends")].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_paid_order_shows_in_the_list_under_its_filters_and_on_its_page() {
    let app = paying_app().await;
    let number = zhang_san_orders(&app).await;
    let paid = app.pay.pay(&number).await.expect("paid in the sandbox");
    let student = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;

    let all = console.get("/admin/payments").await;
    assert_eq!(all.status, StatusCode::OK);
    let grid = table(&all.body, "payment-totals");
    for shown in [
        number.as_str(),
        "张三",
        "110105********002X",
        &format!("/admin/students/{}", student.id),
        "微信（公众号内）",
        "6,050.50",
        "已支付",
        paid.transaction_id.as_str(),
    ] {
        assert!(grid.contains(shown), "{shown}: {grid}");
    }
    assert!(!all.body.contains(ZHANG_SAN), "never the full ID number");
    assert_eq!(
        element_text(&all.body, "paid-sum").as_deref(),
        Some("6,050.50")
    );

    let today = beijing_date(&app, 0);
    let tomorrow = beijing_date(&app, 1);
    let yesterday = beijing_date(&app, -1);
    let finds = [
        "status=paid".to_owned(),
        "channel=wechat_jsapi".to_owned(),
        format!("from={today}&to={today}"),
        format!("q={}", &number[4..12]),
        format!("status=paid&channel=wechat_jsapi&from={yesterday}&to={today}"),
    ];
    for query in finds {
        let page = console.get(&format!("/admin/payments?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert!(page.body.contains(&number), "{query} finds it");
    }
    let misses = [
        "status=closed".to_owned(),
        "status=created".to_owned(),
        "channel=wechat_native".to_owned(),
        "channel=alipay".to_owned(),
        format!("from={tomorrow}"),
        format!("to={yesterday}"),
        "q=NOSUCHORDER".to_owned(),
    ];
    for query in misses {
        let page = console.get(&format!("/admin/payments?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert!(!page.body.contains(&number), "{query} leaves it out");
        assert!(page.body.contains("没有符合条件的订单"), "{query}");
        assert_eq!(
            element_text(&page.body, "paid-sum").as_deref(),
            Some("0.00")
        );
    }
    for bad in ["status=lost", "channel=cash", "from=2026/09/01"] {
        let page = console.get(&format!("/admin/payments?{bad}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    let detail = console.get(&format!("/admin/payments/{number}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    let items = table(&detail.body, "order-items");
    for shown in [
        "2026-2027",
        "学费",
        "4,500.00",
        "住宿费",
        "1,200.00",
        "2025-2026",
        "教材费",
        "350.50",
    ] {
        assert!(items.contains(shown), "{shown}: {items}");
    }
    let notifications = table(&detail.body, "order-notifications");
    assert!(notifications.contains("已入账"), "{notifications}");
    assert!(notifications.contains("<details>"), "the raw body, folded");
    assert!(detail.body.contains(&paid.transaction_id));
    assert_eq!(
        console.get("/admin/payments/CP20260901NOSUCH").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn exceptions_are_resolved_once_with_a_note_by_finance_only() {
    let app = paying_app().await;
    let number = zhang_san_orders(&app).await;
    // A verified notification about our order with another amount: refused and kept
    // for the office (a forged one is only counted: anyone can send those).
    let wrong_amount = app
        .pay
        .notification_for(&number, Tamper::WrongAmount(1))
        .expect("built");
    assert_eq!(
        post_notification(&app, &wrong_amount).await,
        StatusCode::BAD_REQUEST
    );
    // The order expires and is closed at WeChat; then the payment arrives anyway.
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(report.closed, 1, "{report:?}");
    let late = app
        .pay
        .notification_for(&number, Tamper::None)
        .expect("built");
    assert!(post_notification(&app, &late).await.is_success());
    let order = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("query")
        .expect("exists");
    assert!(order.exception.is_some(), "paid after close: {order:?}");
    assert_eq!(order.status, OrderStatus::Paid);

    // A viewer sees them, without forms; the first page counts them.
    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let home = viewer.get("/admin").await;
    assert!(
        home.body.contains("1 笔订单，1 条被拒通知"),
        "{}",
        home.body
    );
    let seen = viewer.get("/admin/payments/exceptions").await;
    assert_eq!(seen.status, StatusCode::OK);
    let open_orders = table(&seen.body, "open-order-exceptions");
    assert!(open_orders.contains(&number), "{open_orders}");
    assert!(open_orders.contains("订单关闭后收到支付"));
    let open_notifications = table(&seen.body, "open-notifications");
    assert!(
        open_notifications.contains("金额与订单不符"),
        "{open_notifications}"
    );
    assert!(!seen.body.contains("标记为已处理"), "no forms for a viewer");
    let listed = viewer.get("/admin/payments").await;
    assert_eq!(
        element_text(&listed.body, "open-exceptions").as_deref(),
        Some("2")
    );

    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let page = finance.get("/admin/payments/exceptions").await;
    let order_ids = resolve_ids(table(&page.body, "open-order-exceptions"), "order");
    assert_eq!(order_ids, [order.id.to_string()]);
    let notification_ids = resolve_ids(table(&page.body, "open-notifications"), "notification");
    assert_eq!(notification_ids.len(), 1);
    let order_action = format!("/admin/payments/exceptions/order/{}/resolve", order.id);
    let notification_action = format!(
        "/admin/payments/exceptions/notification/{}/resolve",
        notification_ids[0]
    );
    let finance_csrf = page.csrf();
    let viewer_csrf = seen.csrf();
    let note = "已核对微信账单，按此笔入账";

    // Refusals change nothing and leave no audit row.
    for action in [&order_action, &notification_action] {
        let by_viewer = viewer
            .post(action, &[("csrf", &viewer_csrf), ("note", note)])
            .await;
        assert_eq!(by_viewer.status, StatusCode::FORBIDDEN, "viewer: {action}");
        let forged = finance
            .post(action, &[("csrf", "forged"), ("note", note)])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "wrong csrf: {action}");
        let missing = finance.post(action, &[("note", note)]).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "no csrf: {action}");
        for empty in ["", "   "] {
            let refused = finance
                .post(action, &[("csrf", &finance_csrf), ("note", empty)])
                .await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "empty note");
            assert!(refused.body.contains("请填写处理说明"));
        }
        let long = "退".repeat(501);
        let refused = finance
            .post(action, &[("csrf", &finance_csrf), ("note", &long)])
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "501 characters");
    }
    assert!(app.audit_rows("order.resolve_exception").await.is_empty());
    assert!(app.audit_rows("notification.resolve").await.is_empty());
    let unchanged = finance.get("/admin/payments/exceptions").await;
    assert_eq!(
        resolve_ids(table(&unchanged.body, "open-order-exceptions"), "order").len(),
        1
    );
    assert_eq!(
        resolve_ids(table(&unchanged.body, "open-notifications"), "notification").len(),
        1
    );

    // Finance resolves both.
    let resolved = finance
        .post(&order_action, &[("csrf", &finance_csrf), ("note", note)])
        .await;
    assert!(
        resolved.redirects_to("/admin/payments/exceptions?done=1"),
        "{:?} {}",
        resolved.status,
        resolved.body
    );
    let resolved = finance
        .post(
            &notification_action,
            &[
                ("csrf", &finance_csrf),
                ("note", "金额不符，未入账，已与微信核对"),
            ],
        )
        .await;
    assert!(resolved.status.is_redirection(), "{}", resolved.body);

    let rows = app.audit_rows("order.resolve_exception").await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0].entry;
    assert_eq!(row.actor, FINANCE);
    assert_eq!(row.target, format!("order:{}", order.id));
    let before = row.before.as_ref().expect("before");
    let after = row.after.as_ref().expect("after");
    assert!(before["resolved_at"].is_null());
    assert_eq!(before["out_trade_no"], number.as_str());
    assert_eq!(after["note"], note);
    assert_eq!(after["resolved_by"], FINANCE);
    let rows = app.audit_rows("notification.resolve").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, FINANCE);
    assert_eq!(
        rows[0].entry.target,
        format!("notification:{}", notification_ids[0])
    );
    assert_eq!(
        rows[0].entry.before.as_ref().expect("before")["reason"],
        "amount"
    );

    // Gone from the open lists, shown under 已处理 with who and the note.
    let after_page = finance.get("/admin/payments/exceptions?done=1").await;
    assert!(after_page.body.contains("已标记为已处理"));
    assert!(!table(&after_page.body, "open-order-exceptions").contains(&number));
    assert!(
        resolve_ids(
            table(&after_page.body, "open-notifications"),
            "notification"
        )
        .is_empty()
    );
    let done = table(&after_page.body, "resolved-order-exceptions");
    assert!(
        done.contains(&number) && done.contains(note) && done.contains(FINANCE),
        "{done}"
    );
    let done = table(&after_page.body, "resolved-notifications");
    assert!(done.contains("金额不符，未入账，已与微信核对"), "{done}");
    let listed = finance.get("/admin/payments").await;
    assert!(listed.body.contains("异常已处理"));
    assert_eq!(
        element_text(&listed.body, "open-exceptions").as_deref(),
        Some("0")
    );
    let detail = finance.get(&format!("/admin/payments/{number}")).await;
    assert!(
        detail.body.contains(note),
        "the order's page shows the resolution"
    );

    // A second resolution is refused and changes nothing.
    let again = finance
        .post(
            &order_action,
            &[("csrf", &finance_csrf), ("note", "再次处理")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let again = finance
        .post(
            &notification_action,
            &[("csrf", &finance_csrf), ("note", "再次处理")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(app.audit_rows("order.resolve_exception").await.len(), 1);
    assert_eq!(app.audit_rows("notification.resolve").await.len(), 1);
    let unknown = finance
        .post(
            "/admin/payments/exceptions/order/999999/resolve",
            &[("csrf", &finance_csrf), ("note", note)],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

fn csv_lines(bytes: &[u8]) -> Vec<String> {
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    assert!(text.ends_with("\r\n"), "CRLF rows");
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "no bare LF row ends"
    );
    text.split_terminator("\r\n").map(str::to_owned).collect()
}

const PAYMENTS_HEADER: &str =
    "订单号,身份证号,姓名,年级,班级,渠道,金额(元),状态,创建时间,支付时间,渠道交易号,异常";

#[tokio::test]
async fn the_export_opens_in_excel_with_masked_ids_and_the_filtered_rows() {
    let app = paying_app().await;
    let zhang = zhang_san_orders(&app).await;
    let paid = app.pay.pay(&zhang).await.expect("paid");
    let li = li_si_orders(&app).await;
    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let listed = viewer.get("/admin/payments").await;
    assert!(listed.body.contains(&zhang) && listed.body.contains(&li));
    assert!(listed.body.contains("符合条件的订单 <strong>2</strong>"));
    assert_eq!(
        element_text(&listed.body, "paid-sum").as_deref(),
        Some("6,050.50"),
        "the sum counts paid orders only"
    );

    let (status, content_type, bytes) = viewer.download("/admin/payments/export.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let lines = csv_lines(&bytes);
    assert_eq!(lines[0], PAYMENTS_HEADER);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let text = lines.join("\n");
    assert!(
        !text.contains(ZHANG_SAN) && !text.contains(LI_SI),
        "masked only"
    );
    let zhang_row = lines
        .iter()
        .find(|line| line.starts_with(&zhang))
        .expect("张三's row");
    let fields: Vec<&str> = zhang_row.split(',').collect();
    assert_eq!(fields[1], "110105********002X");
    assert_eq!(fields[2], "张三");
    assert_eq!(fields[3], "2026");
    assert_eq!(fields[4], "汽修1班");
    assert_eq!(fields[5], "微信（公众号内）");
    assert_eq!(fields[6], "6050.50", "a number Excel reads");
    assert_eq!(fields[7], "已支付");
    assert!(!fields[9].is_empty(), "paid at");
    assert_eq!(fields[10].trim_start_matches('\t'), paid.transaction_id);
    let li_row = lines
        .iter()
        .find(|line| line.starts_with(&li))
        .expect("李四's row");
    assert!(li_row.contains("620622********0025") && li_row.contains("5000.00"));
    assert!(li_row.contains("待支付") && li_row.contains("微信（扫码）"));

    let (_, _, bytes) = viewer
        .download("/admin/payments/export.csv?status=paid&channel=wechat_jsapi")
        .await;
    let lines = csv_lines(&bytes);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with(&zhang));
    let tomorrow = beijing_date(&app, 1);
    let (_, _, bytes) = viewer
        .download(&format!("/admin/payments/export.csv?from={tomorrow}"))
        .await;
    assert_eq!(csv_lines(&bytes), [PAYMENTS_HEADER]);

    let rows = app.audit_rows("payments.export").await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|row| row.entry.actor == VIEWER));
    let newest = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(newest["filters"]["from"], tomorrow.as_str());
    assert_eq!(newest["rows"], 0);
    let filtered = rows[1].entry.after.as_ref().expect("after");
    assert_eq!(filtered["filters"]["status"], "paid");
    assert_eq!(filtered["rows"], 1);

    let mut stranger = Browser::console(&app);
    let (status, _, _) = stranger.download("/admin/payments/export.csv").await;
    assert!(status.is_redirection(), "signed-in admins only");
    let bad: Page = viewer.get("/admin/payments/export.csv?status=lost").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.audit_rows("payments.export").await.len(), 3);
}
