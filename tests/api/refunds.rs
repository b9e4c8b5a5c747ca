//! Refunds from the console through WeChat Pay (API v3) against its sandbox: a true
//! duplicate refunded whole (its items stay paid, booked to the order that covers
//! them), a lone payment that cannot be refunded as one, a full refund that makes the
//! items owed again, a withdrawal that lowers an item's amount, the confirmation step
//! and the choice without a default, a lost answer resolved by querying the same refund
//! number, a refusal that changes no item, two clerks at once, forged notifications,
//! and who may. The receipt and the lists after each kind of refund.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::sandbox::wechat_pay::{Notification, ResponseTamper, refund_paths};
use campus_pay::store::{
    AdminRole, FeeItemStatus, NotificationVerdict, OrderStatus, RefundKind, RefundRecord,
    RefundStatus,
};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::books::check_books;
use crate::support::browser::{Browser, NEW_PASSWORD, Page, element_text, hidden_value};
use crate::support::seed::{ZHANG_SAN, item_statuses, paying_app};

/// 张三 pays all three items (¥6050.50) by WeChat Native; the order's number.
async fn paid_order(app: &TestApp) -> String {
    let mut browser = Browser::signed_in_pc(app, ZHANG_SAN, "31002X").await;
    let fees = browser.get("/fees").await;
    let csrf = fees.csrf();
    let ids = Browser::item_ids(&fees);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let page = browser.post("/pay/wechat", &form).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let number = element_text(&page.body, "order-number").expect("order number");
    app.pay.pay(&number).await.expect("paid in the sandbox");
    assert_eq!(item_statuses(app).await, [FeeItemStatus::Paid; 3]);
    number
}

pub(crate) async fn refunds_of(app: &TestApp, number: &str) -> Vec<RefundRecord> {
    let order = app
        .state
        .store
        .find_order(number)
        .await
        .expect("reads")
        .expect("order");
    app.state
        .store
        .refunds_of_order(order.id)
        .await
        .expect("reads")
}

async fn only_refund(app: &TestApp, number: &str) -> RefundRecord {
    let refunds = refunds_of(app, number).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    refunds[0].clone()
}

/// The order's 学费 line: the item's id and what the order charged for it.
async fn first_line(app: &TestApp, number: &str) -> (i64, i64) {
    let order = app
        .state
        .store
        .find_order(number)
        .await
        .expect("reads")
        .expect("order");
    let lines = app.state.store.order_lines(order.id).await.expect("lines");
    let tuition = lines
        .iter()
        .find(|line| line.item == "学费")
        .expect("a 学费 line");
    (tuition.fee_item_id, tuition.amount_fen)
}

/// One POST of the refund form (the first step unless `confirmed=1` is among the
/// fields), with the page's token.
pub(crate) async fn refund_form(
    console: &mut Browser<'_>,
    number: &str,
    fields: &[(&str, &str)],
) -> Page {
    let page = console.get(&format!("/admin/payments/{number}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    console
        .post(&format!("/admin/payments/{number}/refund"), &form)
        .await
}

/// The refund asked for, then confirmed from the confirmation's own form: its hidden
/// fields are what the second POST sends. The confirmation page and the answer.
async fn confirmed_refund(
    console: &mut Browser<'_>,
    number: &str,
    fields: &[(&str, &str)],
) -> (Page, Page) {
    let confirmation = refund_form(console, number, fields).await;
    assert_eq!(confirmation.status, StatusCode::OK, "{}", confirmation.body);
    assert!(
        confirmation.body.contains("请确认退款"),
        "{}",
        confirmation.body
    );
    let fields = confirmation_fields(&confirmation);
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let done = console
        .post(&format!("/admin/payments/{number}/refund"), &fields)
        .await;
    (confirmation, done)
}

/// The hidden fields of a confirmation page's form, as a browser would send them.
pub(crate) fn confirmation_fields(page: &Page) -> Vec<(&'static str, String)> {
    let form = &page.body[page
        .body
        .find("class=\"refund confirm\"")
        .expect("the confirm form")..];
    [
        "csrf",
        "confirmed",
        "expected_left",
        "effect",
        "reason",
        "scope",
        "fee_item_id",
        "amount",
    ]
    .into_iter()
    .filter_map(|name| hidden_value(form, name).map(|value| (name, value)))
    .collect()
}

async fn post_refund_notification(app: &TestApp, notification: &Notification) -> StatusCode {
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat/refund", app.url))
        .body(notification.body.clone());
    for (name, value) in &notification.headers {
        request = request.header(name, value);
    }
    request.send().await.expect("sent").status()
}

pub(crate) fn refund_posts(app: &TestApp) -> usize {
    app.pay
        .calls()
        .iter()
        .filter(|call| call.route == refund_paths::REFUNDS)
        .count()
}

/// The whole of an order, its items owed again once the money is back.
const WHOLE_OWED_AGAIN: [(&str, &str); 3] = [
    ("scope", "order"),
    ("effect", "owe_again"),
    ("reason", "学生申请退款"),
];

fn refunded(number: &str) -> String {
    format!("/admin/payments/{number}?refund=1")
}

/// A true duplicate, as it happens: 张三 pays order 1 at WeChat, but our side had
/// already closed it (the close raced the payment) and released the items; he pays
/// them again in order 2; then order 1's notification arrives: paid after close, its
/// items already paid by order 2. Both numbers.
pub(crate) async fn duplicate_payment(app: &TestApp) -> (String, String) {
    let mut browser = Browser::signed_in_pc(app, ZHANG_SAN, "31002X").await;
    let order = async |browser: &mut Browser<'_>| {
        let fees = browser.get("/fees").await;
        let csrf = fees.csrf();
        let ids = Browser::item_ids(&fees);
        assert_eq!(ids.len(), 3, "{}", fees.body);
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend(ids.iter().map(|id| ("item", id.as_str())));
        let page = browser.post("/pay/wechat", &form).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        element_text(&page.body, "order-number").expect("order number")
    };
    let first = order(&mut browser).await;
    app.pay.pay_silently(&first).expect("paid at WeChat");
    let store = &app.state.store;
    let record = store
        .find_order(&first)
        .await
        .expect("reads")
        .expect("order");
    assert!(
        store
            .release_order(record.id, app.clock.now())
            .await
            .expect("released")
    );
    let second = order(&mut browser).await;
    app.pay.pay(&second).await.expect("paid in the sandbox");
    assert_eq!(item_statuses(app).await, [FeeItemStatus::Paid; 3]);
    let late = app
        .pay
        .notification_for(&first, campus_pay::sandbox::wechat_pay::Tamper::None)
        .expect("built");
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body(late.body.clone());
    for (name, value) in &late.headers {
        request = request.header(name, value);
    }
    assert!(request.send().await.expect("sent").status().is_success());
    let record = store
        .find_order(&first)
        .await
        .expect("reads")
        .expect("order");
    assert!(
        record.paid_at.is_some() && record.exception.is_some(),
        "{record:?}"
    );
    (first, second)
}

/// 张三's items as (amount, status): 教材费 (2025-2026), then 学费 and 住宿费.
async fn items_of_zhang_san(app: &TestApp) -> Vec<(i64, FeeItemStatus)> {
    let store = &app.state.store;
    let student = store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    let items = store.fee_items_of(student.id).await.expect("items");
    items
        .iter()
        .map(|item| (item.amount_fen, item.status))
        .collect()
}

/// 张三 signing in again on PC, with the password he chose when he paid.
async fn zhang_san_again(app: &TestApp) -> Browser<'_> {
    let mut browser = Browser::new(app);
    let signed_in = browser.pc_login(ZHANG_SAN, NEW_PASSWORD).await;
    assert!(signed_in.status.is_redirection(), "{}", signed_in.body);
    browser
}

/// What the arrears say 张三 owes (0 when he is not listed).
async fn zhang_san_owes(app: &TestApp) -> i64 {
    let owing = app
        .state
        .store
        .students_owing(&Default::default(), app.clock.now(), 100, 0)
        .await
        .expect("arrears");
    owing
        .iter()
        .find(|student| student.id_card == ZHANG_SAN)
        .map_or(0, |student| student.owed_fen)
}

#[tokio::test]
async fn a_lone_payment_cannot_be_refunded_as_a_duplicate_and_nothing_is_prefilled() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    let page = console.get(&format!("/admin/payments/{number}")).await;
    assert!(page.body.contains("全额退款"));
    assert!(page.body.contains("不是重复缴费"), "{}", page.body);
    assert!(
        !page.body.contains("value=\"keep_paid\""),
        "no keep-paid choice"
    );
    assert!(
        !page.body.contains("value=\"重复缴费退款\""),
        "no pre-filled reason"
    );
    assert!(!page.body.contains("checked"), "no default choice");

    // Today's one-click form, and a forged keep-paid choice even when confirmed.
    let old = refund_form(
        &mut console,
        &number,
        &[("kind", "duplicate"), ("reason", "重复缴费退款")],
    )
    .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST, "{}", old.body);
    let forged = refund_form(
        &mut console,
        &number,
        &[
            ("scope", "order"),
            ("effect", "keep_paid"),
            ("reason", "重复缴费退款"),
            ("confirmed", "1"),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.body.contains("不是重复缴费"), "{}", forged.body);
    assert!(refunds_of(&app, &number).await.is_empty());
    assert_eq!(refund_posts(&app), 0, "nothing sent to WeChat");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test]
async fn a_refund_needs_a_chosen_outcome_and_a_typed_reason() {
    let app = paying_app().await;
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let no_choice = refund_form(
        &mut console,
        &number,
        &[("scope", "order"), ("reason", "退学"), ("confirmed", "1")],
    )
    .await;
    assert_eq!(no_choice.status, StatusCode::BAD_REQUEST);
    assert!(
        no_choice.body.contains("请选择退款后项目如何处理"),
        "{}",
        no_choice.body
    );
    let no_reason = refund_form(
        &mut console,
        &number,
        &[("scope", "order"), ("effect", "owe_again"), ("reason", " ")],
    )
    .await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    assert!(no_reason.body.contains("请填写退款原因"));
    // Part of an item cannot be "owed again" (the item is paid or owed whole), and
    // lowering a whole item to nothing would be a waiver.
    let (item, charged) = first_line(&app, &number).await;
    let item = item.to_string();
    let part = refund_form(
        &mut console,
        &number,
        &[
            ("scope", "item"),
            ("fee_item_id", &item),
            ("amount", "100.00"),
            ("effect", "owe_again"),
            ("reason", "退学"),
        ],
    )
    .await;
    assert_eq!(part.status, StatusCode::BAD_REQUEST);
    assert!(part.body.contains("调减应缴金额"), "{}", part.body);
    let whole = format!("{}.{:02}", charged / 100, charged % 100);
    let to_nothing = refund_form(
        &mut console,
        &number,
        &[
            ("scope", "item"),
            ("fee_item_id", &item),
            ("amount", &whole),
            ("effect", "lower_amount"),
            ("reason", "退学"),
        ],
    )
    .await;
    assert_eq!(to_nothing.status, StatusCode::BAD_REQUEST);
    assert!(to_nothing.body.contains("等同免缴"), "{}", to_nothing.body);
    assert!(refunds_of(&app, &number).await.is_empty());
    assert_eq!(refund_posts(&app), 0);
}

#[tokio::test]
async fn a_full_refund_is_confirmed_then_makes_the_items_owed_again_and_voids_the_receipt() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    assert_eq!(zhang_san_owes(&app).await, 0);
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    let (confirmation, done) = confirmed_refund(&mut console, &number, &WHOLE_OWED_AGAIN).await;
    // The confirmation named the amount, the student and every item's outcome.
    let body = &confirmation.body;
    assert_eq!(
        element_text(body, "refund-confirm-amount").as_deref(),
        Some("6,050.50")
    );
    assert!(body.contains("张三") && body.contains("110105********002X"));
    assert_eq!(
        body.matches("改为未缴：学生须重新缴纳").count(),
        3,
        "{body}"
    );
    assert!(body.contains("4500.00") && body.contains("1200.00") && body.contains("350.50"));
    assert!(done.redirects_to(&refunded(&number)), "{}", done.body);

    // Asked, not yet back: the items stay paid; the totals count it as given back.
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(refund.amount_fen, 605_050);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    // The books from WeChat's side: the refund on its way there and here.
    let books = check_books(&app).await;
    assert_eq!((books.channel_refunds, books.refunded_fen), (1, 0));
    let list = console.get("/admin/payments").await;
    assert_eq!(
        element_text(&list.body, "refunded-sum").as_deref(),
        Some("6,050.50")
    );
    assert_eq!(
        element_text(&list.body, "kept-sum").as_deref(),
        Some("0.00")
    );

    app.pay
        .complete_refund(&refund.out_refund_no)
        .await
        .expect("completed");
    assert_eq!(
        only_refund(&app, &number).await.status,
        RefundStatus::Succeeded
    );
    assert_eq!(
        items_of_zhang_san(&app).await,
        [
            (35_050, FeeItemStatus::Unpaid),
            (450_000, FeeItemStatus::Unpaid),
            (120_000, FeeItemStatus::Unpaid)
        ]
    );
    assert_eq!(
        zhang_san_owes(&app).await,
        605_050,
        "owed again, in the arrears"
    );
    let order = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("reads")
        .expect("order");
    assert_eq!(order.status, OrderStatus::Refunded);

    // Every list and export says 已退款; the paid total no longer counts it.
    let books = check_books(&app).await;
    assert_eq!(books.refunded_fen, 605_050);
    assert_eq!(books.kept_applied_fen, 0);
    let list = console.get("/admin/payments").await;
    assert!(list.body.contains("已退款"), "{}", list.body);
    assert_eq!(
        element_text(&list.body, "paid-sum").as_deref(),
        Some("0.00")
    );
    let (status, _, export) = console.download("/admin/payments/export.csv").await;
    assert_eq!(status, StatusCode::OK);
    let export = String::from_utf8_lossy(&export);
    let line = export
        .lines()
        .find(|line| line.contains(&number))
        .expect("the order in the export");
    assert!(line.contains("已退款"), "{line}");

    // The student's receipt shows the refund and is void; so does the check.
    let mut student = zhang_san_again(&app).await;
    let receipt = student.get(&format!("/orders/{number}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.body);
    assert!(receipt.body.contains("作废"), "{}", receipt.body);
    let refunds = element_text(&receipt.body, "receipt-refunds");
    assert!(receipt.body.contains("已退款"), "{refunds:?}");
    assert!(receipt.body.contains("6050.50"));
    let code = element_text(&receipt.body, "receipt-code").expect("a code");
    let result = student.get(&format!("/orders/{number}")).await;
    assert_eq!(
        element_text(&result.body, "result-title").as_deref(),
        Some("已退款")
    );
    let fees = student.get("/fees").await;
    assert_eq!(Browser::item_ids(&fees).len(), 3, "payable again");
    let check = console.get(&format!("/admin/receipts?code={code}")).await;
    assert!(check.body.contains("凭证已作废"), "{}", check.body);
    assert!(!check.body.contains("凭证有效"));
    assert!(check.body.contains("check-refunds"));

    let audit = app.audit_rows("refund.").await;
    assert_eq!(audit.len(), 1);
    let after = audit[0].entry.after.clone().expect("what was asked");
    assert_eq!(after["effect"], "owe_again");
    assert_eq!(after["amount_fen"], 605_050);
    assert_eq!(after["items"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_withdrawal_lowers_the_item_by_the_refund_once_the_money_is_back() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let (item, charged) = first_line(&app, &number).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let item_text = item.to_string();
    let (confirmation, done) = confirmed_refund(
        &mut console,
        &number,
        &[
            ("scope", "item"),
            ("fee_item_id", &item_text),
            ("amount", "1000.00"),
            ("effect", "lower_amount"),
            ("reason", "退学，按月折算"),
        ],
    )
    .await;
    assert!(
        confirmation
            .body
            .contains("应缴金额由 4500.00 元调减为 3500.00 元"),
        "{}",
        confirmation.body
    );
    assert!(done.status.is_redirection(), "{}", done.body);
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.amount_fen, 100_000);
    assert_eq!(refund.fee_item_id, Some(item));
    assert_eq!(charged, 450_000);
    assert_eq!(
        items_of_zhang_san(&app).await[1],
        (charged, FeeItemStatus::Paid)
    );

    app.pay
        .complete_refund(&refund.out_refund_no)
        .await
        .expect("completed");
    assert_eq!(
        items_of_zhang_san(&app).await,
        [
            (35_050, FeeItemStatus::Paid),
            (350_000, FeeItemStatus::Paid),
            (120_000, FeeItemStatus::Paid)
        ]
    );
    assert_eq!(zhang_san_owes(&app).await, 0);
    let order = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("reads")
        .expect("order");
    assert_eq!(order.status, OrderStatus::Paid, "part refunded, still paid");
    let books = check_books(&app).await;
    assert_eq!(
        (books.refunded_fen, books.kept_applied_fen),
        (100_000, 505_050)
    );
    // Kept: 6050.50 - 1000.00, and the item's fee says the same.
    let list = console.get("/admin/payments").await;
    assert_eq!(
        element_text(&list.body, "kept-sum").as_deref(),
        Some("5,050.50")
    );
    let mut student = zhang_san_again(&app).await;
    let receipt = student.get(&format!("/orders/{number}/receipt")).await;
    assert!(receipt.body.contains("receipt-refunds"), "{}", receipt.body);
    assert!(receipt.body.contains("1000.00"));
    assert!(!receipt.body.contains("作废"));
    let code = element_text(&receipt.body, "receipt-code").expect("a code");
    let check = console.get(&format!("/admin/receipts?code={code}")).await;
    assert!(
        check.body.contains("凭证有效（部分退款）"),
        "{}",
        check.body
    );
}

#[tokio::test]
async fn a_whole_item_refund_makes_that_item_owed_again_only_when_the_money_is_back() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let (item, charged) = first_line(&app, &number).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let item_text = item.to_string();
    let whole = format!("{}.{:02}", charged / 100, charged % 100);
    let (_, done) = confirmed_refund(
        &mut console,
        &number,
        &[
            ("scope", "item"),
            ("fee_item_id", &item_text),
            ("amount", &whole),
            ("effect", "owe_again"),
            ("reason", "退学"),
        ],
    )
    .await;
    assert!(done.status.is_redirection(), "{}", done.body);
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(
        item_statuses(&app).await,
        [FeeItemStatus::Paid; 3],
        "still paid while the money is on its way"
    );
    // Nothing is left of that item: refused before any call.
    let refused = refund_form(
        &mut console,
        &number,
        &[
            ("scope", "item"),
            ("fee_item_id", &item_text),
            ("amount", "0.01"),
            ("effect", "lower_amount"),
            ("reason", "再退"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("超过可退余额"), "{}", refused.body);
    assert_eq!(refund_posts(&app), 1, "nothing sent for the refused one");

    app.pay
        .complete_refund(&refund.out_refund_no)
        .await
        .expect("completed");
    assert_eq!(charged, 450_000);
    assert_eq!(
        items_of_zhang_san(&app).await,
        [
            (35_050, FeeItemStatus::Paid),
            (450_000, FeeItemStatus::Unpaid),
            (120_000, FeeItemStatus::Paid)
        ]
    );
    assert_eq!(zhang_san_owes(&app).await, charged);
    let books = check_books(&app).await;
    assert_eq!(
        (books.refunded_fen, books.kept_applied_fen),
        (charged, 605_050 - charged)
    );
}

#[tokio::test]
async fn a_true_duplicate_is_refunded_whole_once_and_its_items_stay_paid() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    app.pay.set_refund_notification_copies(2);
    let (duplicate, kept) = duplicate_payment(&app).await;
    let books = check_books(&app).await;
    assert_eq!(books.flagged_orders, std::slice::from_ref(&duplicate));
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    // The duplicate's page names the order that covers it; that order is no duplicate.
    let page = console.get(&format!("/admin/payments/{duplicate}")).await;
    let named = element_text(&page.body, "refund-duplicate-of");
    assert!(page.body.contains("value=\"keep_paid\""), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("href=\"/admin/payments/{kept}\"")),
        "{named:?}"
    );
    // Either payment may be the one given back: the other names the first.
    let other = console.get(&format!("/admin/payments/{kept}")).await;
    assert!(
        other
            .body
            .contains(&format!("href=\"/admin/payments/{duplicate}\"")),
        "{}",
        other.body
    );
    // Making the items owed, or cheaper, while another payment holds their money is
    // refused: they were paid.
    let owed = refund_form(
        &mut console,
        &kept,
        &[
            ("scope", "order"),
            ("effect", "owe_again"),
            ("reason", "退款"),
            ("confirmed", "1"),
        ],
    )
    .await;
    assert_eq!(owed.status, StatusCode::BAD_REQUEST);
    assert!(owed.body.contains("重复缴费"), "{}", owed.body);

    let (confirmation, done) = confirmed_refund(
        &mut console,
        &duplicate,
        &[
            ("scope", "order"),
            ("effect", "keep_paid"),
            ("reason", "重复缴费"),
        ],
    )
    .await;
    assert_eq!(
        confirmation
            .body
            .matches(&format!("仍为已缴（由订单 {kept} 缴清）"))
            .count(),
        3
    );
    assert!(done.redirects_to(&refunded(&duplicate)), "{}", done.body);
    let refund = only_refund(&app, &duplicate).await;
    assert_eq!(refund.kind, RefundKind::Duplicate);
    assert_eq!(refund.amount_fen, 605_050);
    assert_eq!(refund.requested_by, FINANCE);

    // The money is back; WeChat notifies twice at once: applied once.
    let answers = app
        .pay
        .complete_refund(&refund.out_refund_no)
        .await
        .expect("completed");
    assert_eq!(answers.len(), 2);
    assert!(
        answers.iter().all(|(status, _)| *status == 204),
        "{answers:?}"
    );
    assert_eq!(
        only_refund(&app, &duplicate).await.status,
        RefundStatus::Succeeded
    );
    assert_eq!(
        app.state
            .store
            .count_notifications(NotificationVerdict::Duplicate)
            .await
            .expect("count"),
        1
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(zhang_san_owes(&app).await, 0);
    let store = &app.state.store;
    let kept_order = store
        .find_order(&kept)
        .await
        .expect("reads")
        .expect("order");
    let booked = store
        .items_paid_by_order(kept_order.id)
        .await
        .expect("items");
    assert_eq!(booked.len(), 3, "booked to the order that covers them");
    let refunded_order = store
        .find_order(&duplicate)
        .await
        .expect("reads")
        .expect("order");
    assert_eq!(refunded_order.status, OrderStatus::Refunded);
    let books = check_books(&app).await;
    assert_eq!(books.paid_orders, std::slice::from_ref(&kept));
    assert_eq!(
        (
            books.received_fen,
            books.refunded_fen,
            books.kept_applied_fen
        ),
        (2 * 605_050, 605_050, 605_050)
    );

    let audit = app.audit_rows("refund.").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, FINANCE);
    assert_eq!(audit[0].entry.action, "refund.request");
    assert_eq!(
        audit[0].entry.target,
        format!("refund:{}", refund.out_refund_no)
    );
    let page = console.get(&format!("/admin/payments/{duplicate}")).await;
    assert!(page.body.contains("退款成功"));
    assert!(page.body.contains(&refund.out_refund_no));
    assert!(!page.body.contains("全额退款…"), "nothing left to refund");
    // The order that kept the money is now the one alone: no duplicate any more.
    let other = console.get(&format!("/admin/payments/{kept}")).await;
    assert!(other.body.contains("不是重复缴费"), "{}", other.body);
    assert!(!other.body.contains("value=\"keep_paid\""));
    assert_eq!(refund_posts(&app), 1);
}

#[tokio::test]
async fn two_clerks_confirming_at_once_refund_once() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let mut first = app.console_as(FINANCE, AdminRole::Finance).await;
    let mut second = app.console_as("finance2", AdminRole::Finance).await;
    let one = refund_form(&mut first, &number, &WHOLE_OWED_AGAIN).await;
    let two = refund_form(&mut second, &number, &WHOLE_OWED_AGAIN).await;
    let (one, two) = (confirmation_fields(&one), confirmation_fields(&two));
    let as_refs =
        |fields: &[(&'static str, String)]| -> Vec<(&'static str, String)> { fields.to_vec() };
    let (one, two) = (as_refs(&one), as_refs(&two));
    let one: Vec<(&str, &str)> = one.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let two: Vec<(&str, &str)> = two.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let url = format!("/admin/payments/{number}/refund");
    let (a, b) = tokio::join!(first.post(&url, &one), second.post(&url, &two));
    let won = [&a, &b]
        .iter()
        .filter(|page| page.status.is_redirection())
        .count();
    assert_eq!(won, 1, "{} / {}", a.body, b.body);
    let lost = if a.status.is_redirection() { &b } else { &a };
    assert_eq!(lost.status, StatusCode::BAD_REQUEST);
    assert!(
        lost.body.contains("超过可退余额") || lost.body.contains("请重新确认"),
        "{}",
        lost.body
    );
    let refunds = refunds_of(&app, &number).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refund_posts(&app), 1);
}

#[tokio::test]
async fn a_lost_answer_is_resolved_by_querying_the_same_refund_number() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    app.pay.lose_next_refund_answer();
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let (_, done) = confirmed_refund(&mut console, &number, &WHOLE_OWED_AGAIN).await;
    assert!(done.status.is_redirection(), "{}", done.body);
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Requested, "outcome unknown");
    check_books(&app).await;
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);

    app.pay
        .complete_refund_silently(&refund.out_refund_no)
        .expect("settled");
    app.clock.advance(Duration::from_secs(3 * 60));
    sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    let after = only_refund(&app, &number).await;
    assert_eq!(after.status, RefundStatus::Succeeded);
    assert_eq!(after.out_refund_no, refund.out_refund_no);
    assert_eq!(
        item_statuses(&app).await,
        [FeeItemStatus::Unpaid; 3],
        "changed by the query's news, as by a notification"
    );
    let seen = app.pay.refunds();
    assert_eq!(seen.len(), 1, "WeChat saw one refund number");
    assert_eq!(seen[0].out_refund_no, refund.out_refund_no);
    assert_eq!(refund_posts(&app), 1, "queried, never sent again");
    assert_eq!(check_books(&app).await.refunded_fen, 605_050);
    assert!(
        app.pay
            .calls()
            .iter()
            .any(|call| call.route == refund_paths::QUERY_REFUND)
    );
}

#[tokio::test]
async fn a_refusal_by_wechat_leaves_the_refund_failed_and_the_items_as_they_were() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    app.pay
        .refuse_next_refund(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起");
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    confirmed_refund(&mut console, &number, &WHOLE_OWED_AGAIN).await;
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Failed);
    let books = check_books(&app).await;
    assert_eq!(
        (books.channel_refunds, books.kept_applied_fen),
        (0, 605_050)
    );
    let failure = refund.failure.clone().expect("a failure text");
    assert!(failure.contains("基本账户余额不足"), "{failure}");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(zhang_san_owes(&app).await, 0);
    let page = console.get(&format!("/admin/payments/{number}")).await;
    assert!(page.body.contains("退款失败"));
    assert!(
        page.body.contains("全额退款…"),
        "a failed refund frees the amount"
    );
    let list = console.get("/admin/payments").await;
    assert!(
        element_text(&list.body, "refunded-sum").is_none(),
        "a failed refund gave nothing back"
    );
}

#[tokio::test]
async fn forged_refund_notifications_are_refused_and_change_nothing() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    confirmed_refund(&mut console, &number, &WHOLE_OWED_AGAIN).await;
    let refund = only_refund(&app, &number).await;
    let forged = app
        .pay
        .refund_notification_for(&refund.out_refund_no, None, Some(ResponseTamper::WrongKey))
        .expect("built");
    assert_eq!(
        post_refund_notification(&app, &forged).await,
        StatusCode::UNAUTHORIZED
    );
    let wrong_amount = app
        .pay
        .refund_notification_for(&refund.out_refund_no, Some(1), None)
        .expect("built");
    assert_eq!(
        post_refund_notification(&app, &wrong_amount).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        only_refund(&app, &number).await.status,
        RefundStatus::Processing
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    // Only the verified one (wrong amount) is kept for the office; the forged one is
    // counted, not stored.
    assert_eq!(
        app.state
            .store
            .count_notifications(NotificationVerdict::Refused)
            .await
            .expect("count"),
        1
    );
    // The genuine one still goes through.
    let genuine = app
        .pay
        .refund_notification_for(&refund.out_refund_no, None, None)
        .expect("built");
    assert_eq!(
        post_refund_notification(&app, &genuine).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        only_refund(&app, &number).await.status,
        RefundStatus::Succeeded
    );
}

#[tokio::test]
async fn viewers_and_forms_without_the_token_cannot_refund() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let page = viewer.get(&format!("/admin/payments/{number}")).await;
    assert!(
        !page.body.contains("全额退款…"),
        "no refund form for a viewer"
    );
    let csrf = page.csrf();
    let mut confirmed: Vec<(&str, &str)> = vec![("csrf", &csrf), ("confirmed", "1")];
    confirmed.extend_from_slice(&WHOLE_OWED_AGAIN);
    let denied = viewer
        .post(&format!("/admin/payments/{number}/refund"), &confirmed)
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    confirmed[0] = ("csrf", "wrong");
    let no_token = finance
        .post(&format!("/admin/payments/{number}/refund"), &confirmed)
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(refunds_of(&app, &number).await.is_empty());
    assert_eq!(refund_posts(&app), 0, "nothing sent to WeChat");
    assert!(app.audit_rows("refund.").await.is_empty());
}
