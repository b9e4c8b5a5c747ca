//! Issue 13's holes between channels: the bank's page that stays payable after we
//! "close" its order, a signed bank message that is not a payment, a notification of
//! one provider about another's order, Alipay's seller, and the bank's transaction
//! number. Each payment ends applied once or flagged for the office, never lost and
//! never counted twice.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::sandbox::abc::Tamper as AbcTamper;
use campus_pay::sandbox::alipay::AlipayTamper;
use campus_pay::sandbox::wechat_pay::TradeState;
use campus_pay::store::{
    AdminRole, ArrearsScope, AuditEntry, FeeItemStatus, NotificationVerdict, OrderRecord,
    OrderStatus, PaymentFilter,
};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::FINANCE;
use crate::support::browser::{Browser, Page, element_text};
use crate::support::seed::ZHANG_SAN;
use crate::support::seed::{item_statuses, paying_app};

/// 张三's three items, in fen.
const TOTAL_FEN: i64 = 605_050;

/// Posts the fee list's ticked items to `path` (a channel's button).
pub(crate) async fn pay_with(browser: &mut Browser<'_>, path: &str) -> Page {
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    browser.post(path, &form).await
}

pub(crate) async fn post_form(app: &TestApp, path: &str, body: Vec<u8>) -> (StatusCode, String) {
    let response = app
        .client
        .post(format!("{}{path}", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sent");
    (response.status(), response.text().await.expect("body"))
}

/// Opens the bank's page for every item; returns our order number and the page's URL.
async fn open_bank_page(browser: &mut Browser<'_>) -> (String, String) {
    let to_bank = pay_with(browser, "/pay/abc/page").await;
    assert_eq!(to_bank.status, StatusCode::SEE_OTHER, "{}", to_bank.body);
    let location = to_bank.location.expect("the bank's page");
    let url = url::Url::parse(&location).expect("absolute");
    let return_to = url
        .query_pairs()
        .find(|(key, _)| key == "return_to")
        .map(|(_, value)| value.into_owned())
        .expect("return_to");
    let number = return_to.rsplit('/').next().expect("number").to_owned();
    (number, location)
}

/// Pays on the bank's page as the student would: the card number on the bank's form.
async fn pay_on_bank_page(app: &TestApp, page_url: &str) -> (StatusCode, String) {
    let token = url::Url::parse(page_url)
        .expect("absolute")
        .query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .expect("token");
    let form_url = app.abc.pay_page_url("").as_str().replace("?token=", "");
    let answer = app
        .client
        .post(form_url)
        .form(&[
            ("token", token.as_str()),
            ("card_number", "6228480010000000018"),
        ])
        .send()
        .await
        .expect("sent");
    (answer.status(), answer.text().await.expect("body"))
}

pub(crate) async fn order(app: &TestApp, number: &str) -> OrderRecord {
    app.state
        .store
        .find_order(number)
        .await
        .expect("query")
        .expect("exists")
}

async fn students_owing(app: &TestApp) -> u64 {
    app.state
        .store
        .count_students_owing(&ArrearsScope::default(), app.clock.now())
        .await
        .expect("count")
}

pub(crate) async fn paid_fen(app: &TestApp) -> i64 {
    app.state
        .store
        .payments_totals(&PaymentFilter::default())
        .await
        .expect("totals")
        .paid_fen
}

/// The bank's order has lapsed (its timeout and our margin passed) and the sweep has
/// closed it after asking the bank.
async fn let_the_bank_order_lapse(app: &TestApp, number: &str) {
    app.clock.advance(Duration::from_secs(16 * 60 + 5));
    sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(order(app, number).await.status, OrderStatus::Closed);
}

/// (a) While the bank's page can still be paid, no other channel is offered or
/// started: paying both is impossible. Paying at the bank then settles the items.
#[tokio::test]
async fn while_the_banks_page_is_payable_no_other_channel_can_take_the_items() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let (bank_no, page_url) = open_bank_page(&mut browser).await;

    // The pages say so, with the time the bank's page stays open.
    let fees = browser.get("/fees").await;
    assert!(
        fees.body.contains("中国农业银行发起一笔缴费"),
        "{}",
        fees.body
    );
    assert!(fees.body.contains(&bank_no));
    let choice = pay_with(&mut browser, "/pay").await;
    assert_eq!(choice.status, StatusCode::OK, "{}", choice.body);
    assert!(choice.body.contains("id=\"bank-hold\""), "{}", choice.body);
    assert!(choice.body.contains("channel-abc-page"));
    for other in ["channel-wechat", "channel-alipay", "channel-abc-scan"] {
        assert!(!choice.body.contains(other), "{other} offered while held");
    }
    // Asking for WeChat anyway (an old form) is refused, and nothing reaches WeChat.
    let refused = pay_with(&mut browser, "/pay/wechat").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body.contains("农行支付尚未结束"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("不能改用其他方式支付"));
    assert!(app.pay.transactions().is_empty(), "no WeChat order");
    let alipay = pay_with(&mut browser, "/pay/alipay").await;
    assert_eq!(alipay.status, StatusCode::CONFLICT, "{}", alipay.body);
    let owing = students_owing(&app).await;

    // Paying on the bank's page (within its timeout) settles the items once.
    let (status, _) = pay_on_bank_page(&app, &page_url).await;
    assert!(status.is_success(), "{status}");
    let paid = order(&app, &bank_no).await;
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    let again = pay_with(&mut browser, "/pay/wechat").await;
    assert_ne!(again.status, StatusCode::OK, "{}", again.body);
    assert!(app.pay.transactions().is_empty(), "never a second charge");
    assert_eq!(paid_fen(&app).await, TOTAL_FEN);
    assert_eq!(students_owing(&app).await, owing - 1, "张三 owes nothing");
}

/// (a) After the bank's timeout its page refuses to pay; the student pays by WeChat;
/// a bank payment that arrives anyway for the closed order is flagged for a refund
/// (the items are paid by WeChat), never silently counted twice.
#[tokio::test]
async fn after_the_banks_timeout_its_page_refuses_and_a_late_second_payment_is_flagged() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let (bank_no, page_url) = open_bank_page(&mut browser).await;
    let owing = students_owing(&app).await;
    // Just past the bank's timeout, within our margin for its clock: still held.
    app.clock.advance(Duration::from_secs(15 * 60 + 10));
    sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(order(&app, &bank_no).await.status, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    let held = pay_with(&mut browser, "/pay/wechat").await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.body);
    let_the_bank_order_lapse(&app, &bank_no).await;
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Unpaid; 3]);

    // The bank's page, run on the app's clock, refuses now.
    let page = app.client.get(&page_url).send().await.expect("sent");
    assert!(page.text().await.expect("body").contains("订单已超时"));
    let (status, _) = pay_on_bank_page(&app, &page_url).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        app.abc
            .transaction(&bank_no)
            .expect("known")
            .paid_at
            .is_none()
    );

    let qr = pay_with(&mut browser, "/pay/wechat").await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    let wechat_no = element_text(&qr.body, "order-number").expect("number");
    app.pay.pay(&wechat_no).await.expect("paid by WeChat");
    assert_eq!(order(&app, &wechat_no).await.status, OrderStatus::Paid);

    // A bank that took the money anyway: its genuine notification is flagged.
    let late = app
        .abc
        .notification_for(&bank_no, AbcTamper::None)
        .expect("built");
    let (status, _) = post_form(&app, "/pay/notify/abc", late).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "recorded, so the bank stops sending"
    );
    let flagged = order(&app, &bank_no).await;
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert_eq!(
        flagged.exception.as_deref(),
        Some("订单关闭后收到支付，项目已由其他订单缴清，需退款")
    );
    assert!(flagged.channel_trade_no.is_some(), "the money is on record");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(paid_fen(&app).await, TOTAL_FEN, "counted once");
    assert_eq!(students_owing(&app).await, owing - 1);

    // The console shows it with both ways on; applying is refused (paid elsewhere).
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let detail = console.get(&format!("/admin/payments/{bank_no}")).await;
    assert!(
        detail.body.contains("id=\"flagged-payment\""),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("href=\"#refunds-title\""));
    let csrf = console.console_csrf().await;
    let apply = format!("/admin/payments/{bank_no}/flagged/apply");
    let refused = console.post(&apply, &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("只能退款"));
    assert_eq!(order(&app, &bank_no).await.status, OrderStatus::Closed);
}

/// (b) The bank's payment for its closed order arrives while a WeChat order holds the
/// items: the WeChat order is closed at WeChat and the bank's payment settles the
/// items (paid, not owed, in the paid totals). The old code noted a false
/// "paid by another order" and left the items owed once WeChat expired.
#[tokio::test]
async fn a_bank_payment_arriving_while_wechat_holds_the_items_is_applied_to_them() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let (bank_no, _) = open_bank_page(&mut browser).await;
    let_the_bank_order_lapse(&app, &bank_no).await;
    let qr = pay_with(&mut browser, "/pay/wechat").await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    let wechat_no = element_text(&qr.body, "order-number").expect("number");
    let owing = students_owing(&app).await;

    let late = app
        .abc
        .notification_for(&bank_no, AbcTamper::None)
        .expect("built");
    let (status, _) = post_form(&app, "/pay/notify/abc", late).await;
    assert_eq!(status, StatusCode::OK);

    let accepted = app
        .state
        .store
        .count_notifications(NotificationVerdict::Accepted)
        .await
        .expect("count");
    assert_eq!(accepted, 1, "recorded as the payment it is, not as a copy");
    let bank = order(&app, &bank_no).await;
    assert_eq!(bank.status, OrderStatus::Paid);
    assert_eq!(
        bank.exception.as_deref(),
        Some("订单关闭后收到支付，已按此笔入账")
    );
    let wechat = order(&app, &wechat_no).await;
    assert_eq!(wechat.status, OrderStatus::Closed);
    assert_eq!(
        app.pay.transaction(&wechat_no).expect("known").trade_state,
        TradeState::Closed,
        "closed at WeChat, so it cannot be paid too"
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(students_owing(&app).await, owing - 1, "张三 owes nothing");
    assert_eq!(paid_fen(&app).await, TOTAL_FEN);
    // Expiry later changes nothing.
    app.clock.advance(Duration::from_secs(20 * 60));
    sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    let result = browser.get(&format!("/orders/{bank_no}")).await;
    assert!(result.body.contains("缴费成功"));
}

/// A bank payment for a closed order whose items a second bank order holds (which
/// cannot be closed before its own timeout) waits, flagged; the office cannot apply it
/// while they are held; when that order lapses, the payment settles the items before
/// the student is asked to pay again.
#[tokio::test]
async fn a_payment_waiting_on_another_bank_order_settles_the_items_when_it_lapses() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let (first_no, _) = open_bank_page(&mut browser).await;
    let_the_bank_order_lapse(&app, &first_no).await;
    let (second_no, _) = open_bank_page(&mut browser).await;
    assert_ne!(first_no, second_no);
    let owing = students_owing(&app).await;

    let late = app
        .abc
        .notification_for(&first_no, AbcTamper::None)
        .expect("built");
    let (status, _) = post_form(&app, "/pay/notify/abc", late).await;
    assert_eq!(status, StatusCode::OK);
    let flagged = order(&app, &first_no).await;
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert_eq!(
        flagged.exception.as_deref(),
        Some("订单关闭后收到支付，项目正在另一订单中支付，待核对")
    );
    assert_eq!(order(&app, &second_no).await.status, OrderStatus::Created);

    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let apply = format!("/admin/payments/{first_no}/flagged/apply");
    let csrf = console.console_csrf().await;
    let held = console.post(&apply, &[("csrf", &csrf)]).await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.body);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);

    let_the_bank_order_lapse(&app, &second_no).await;
    let settled = order(&app, &first_no).await;
    assert_eq!(settled.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(students_owing(&app).await, owing - 1);
    assert_eq!(paid_fen(&app).await, TOTAL_FEN);
}

/// A payment the checkout could not settle (an item was waived meanwhile) is applied
/// by the office once the items are owed again: asked first, CSRF-checked, audited.
#[tokio::test]
async fn the_office_applies_a_flagged_payment_to_items_nothing_else_paid() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let (bank_no, _) = open_bank_page(&mut browser).await;
    let_the_bank_order_lapse(&app, &bank_no).await;
    let store = &app.state.store;
    let student = store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    let item = store.fee_items_of(student.id).await.expect("items")[0].id;
    let office = |action: &str| AuditEntry::new("caiwu", action, format!("fee_item:{item}"));
    store
        .waive_fee_item(item, "助学金", office("fee_item.waive"), app.clock.now())
        .await
        .expect("waived");

    let late = app
        .abc
        .notification_for(&bank_no, AbcTamper::None)
        .expect("built");
    let (status, _) = post_form(&app, "/pay/notify/abc", late).await;
    assert_eq!(status, StatusCode::OK);
    let flagged = order(&app, &bank_no).await;
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert!(
        flagged
            .exception
            .as_deref()
            .is_some_and(|note| note.contains("项目已减免或变更")),
        "{:?}",
        flagged.exception
    );
    assert_eq!(paid_fen(&app).await, 0);

    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let detail = console.get(&format!("/admin/payments/{bank_no}")).await;
    assert!(
        detail.body.contains("id=\"flagged-apply\""),
        "{}",
        detail.body
    );
    let apply = format!("/admin/payments/{bank_no}/flagged/apply");
    // The waived item is not owed: applying is refused.
    let csrf = console.console_csrf().await;
    let refused = console.post(&apply, &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);

    store
        .restore_fee_item(item, office("fee_item.restore"), app.clock.now())
        .await
        .expect("restored");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Unpaid; 3]);
    let owing = students_owing(&app).await;

    // The page asks first, naming the amount, the student and what the items become.
    let ask = console.get(&apply).await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(ask.body.contains("6,050.50 元"), "{}", ask.body);
    assert!(ask.body.contains("张三"));
    assert!(ask.body.contains("已缴"));
    // Without the session's CSRF token nothing happens.
    let forged = console.post(&apply, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(order(&app, &bank_no).await.status, OrderStatus::Closed);

    let done = console.post(&apply, &[("csrf", &ask.csrf())]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let paid = order(&app, &bank_no).await;
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(students_owing(&app).await, owing - 1);
    assert_eq!(paid_fen(&app).await, TOTAL_FEN);
    let audit = app.audit_rows("order.apply_flagged_payment").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, FINANCE);
    // Once applied it is not applicable again.
    let twice = console.post(&apply, &[("csrf", &ask.csrf())]).await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
}

/// The bank's signed answer to our payment request, posted as a notification, pays
/// nothing: only a payment-result notification does.
#[tokio::test]
async fn a_signed_bank_message_that_is_not_a_payment_result_is_refused() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let (bank_no, _) = open_bank_page(&mut browser).await;
    let answer = app
        .abc
        .notification_for(&bank_no, AbcTamper::PayRequestAnswer)
        .expect("built");
    let (status, body) = post_form(&app, "/pay/notify/abc", answer).await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(order(&app, &bank_no).await.status, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    assert_eq!(paid_fen(&app).await, 0);
}

/// One payment at the bank has one transaction number, whether the notification or
/// the query reports it, with or without the bank's `iRspRef`: a copy is a copy, not a
/// second payment.
#[tokio::test]
async fn the_banks_transaction_number_is_the_same_by_query_and_by_notification() {
    for with_reference in [true, false] {
        let app = paying_app().await;
        if !with_reference {
            app.abc.leave_out_references();
        }
        let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
        let (bank_no, _) = open_bank_page(&mut browser).await;
        app.abc.pay_silently(&bank_no).expect("paid at the bank");
        // Found by query first (the notification was slow).
        app.clock.advance(Duration::from_secs(10));
        let status = browser.get(&format!("/orders/{bank_no}/status")).await;
        assert_eq!(status.body, r#"{"status":"paid"}"#);
        let by_query = order(&app, &bank_no).await.channel_trade_no;
        // Then the notification arrives: the same payment, acknowledged as a copy.
        let late = app
            .abc
            .notification_for(&bank_no, AbcTamper::None)
            .expect("built");
        let (status, _) = post_form(&app, "/pay/notify/abc", late).await;
        assert_eq!(status, StatusCode::OK);
        let after = order(&app, &bank_no).await;
        assert_eq!(
            after.channel_trade_no, by_query,
            "iRspRef given: {with_reference}"
        );
        assert_eq!(after.exception, None, "no second payment seen");
        assert_eq!(paid_fen(&app).await, TOTAL_FEN);
    }
}

/// A genuine Alipay notification naming a WeChat order's number (and amount) is not
/// applied to it.
#[tokio::test]
async fn an_alipay_notification_about_another_channels_order_is_refused() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let alipay_qr = pay_with(&mut browser, "/pay/alipay").await;
    let alipay_no = element_text(&alipay_qr.body, "order-number").expect("number");
    // The student switches to WeChat: the Alipay order closes, WeChat holds the items.
    let wechat_qr = pay_with(&mut browser, "/pay/wechat").await;
    assert_eq!(wechat_qr.status, StatusCode::OK, "{}", wechat_qr.body);
    let wechat_no = element_text(&wechat_qr.body, "order-number").expect("number");
    let forged = app
        .alipay
        .notification_for(&alipay_no, AlipayTamper::UnknownOrder(wechat_no.clone()))
        .expect("built");
    let (_, answer) = post_form(&app, "/pay/notify/alipay", forged.into_bytes()).await;
    assert_ne!(answer, "success");
    assert_eq!(order(&app, &wechat_no).await.status, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    assert_eq!(paid_fen(&app).await, 0);
}

/// With the merchant's PID configured (the test app sets the sandbox's), a genuine
/// notification paid to another seller is refused; the right seller's is applied.
#[tokio::test]
async fn an_alipay_notification_for_another_seller_is_refused() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let qr = pay_with(&mut browser, "/pay/alipay").await;
    let number = element_text(&qr.body, "order-number").expect("number");
    let other = app
        .alipay
        .notification_for(&number, AlipayTamper::OtherSeller)
        .expect("built");
    let (_, answer) = post_form(&app, "/pay/notify/alipay", other.into_bytes()).await;
    assert_ne!(answer, "success");
    assert_eq!(order(&app, &number).await.status, OrderStatus::Created);
    let genuine = app
        .alipay
        .notification_for(&number, AlipayTamper::None)
        .expect("built");
    let (_, answer) = post_form(&app, "/pay/notify/alipay", genuine.into_bytes()).await;
    assert_eq!(answer, "success");
    assert_eq!(order(&app, &number).await.status, OrderStatus::Paid);
}
