//! Refunds from the console through WeChat Pay (API v3) against its sandbox: a
//! duplicate refunded whole (the item stays paid), a withdrawal refund that makes the
//! item unpaid only once the money is back, a lost answer resolved by querying the
//! same refund number, a refusal, over-refunding, forged notifications, and who may.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::sandbox::wechat_pay::{Notification, ResponseTamper, refund_paths};
use campus_pay::store::{
    AdminRole, FeeItemStatus, NotificationVerdict, RefundKind, RefundRecord, RefundStatus,
};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::{Browser, element_text};
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

async fn refunds_of(app: &TestApp, number: &str) -> Vec<RefundRecord> {
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

/// The order's first item (its id) and what the order charged for it.
async fn first_line(app: &TestApp, number: &str) -> (i64, i64) {
    let order = app
        .state
        .store
        .find_order(number)
        .await
        .expect("reads")
        .expect("order");
    let lines = app.state.store.order_lines(order.id).await.expect("lines");
    (lines[0].fee_item_id, lines[0].amount_fen)
}

async fn refund_form(
    console: &mut Browser<'_>,
    number: &str,
    fields: &[(&str, &str)],
) -> crate::support::browser::Page {
    let page = console.get(&format!("/admin/payments/{number}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    console
        .post(&format!("/admin/payments/{number}/refund"), &form)
        .await
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

fn refund_posts(app: &TestApp) -> usize {
    app.pay
        .calls()
        .iter()
        .filter(|call| call.route == refund_paths::REFUNDS)
        .count()
}

#[tokio::test]
async fn a_duplicate_is_refunded_whole_once_and_the_items_stay_paid() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    app.pay.set_refund_notification_copies(2);
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    let page = console.get(&format!("/admin/payments/{number}")).await;
    for shown in ["退款", "全额退款", "退款成功后该项目改为未缴", "6,050.50"] {
        assert!(page.body.contains(shown), "{shown}");
    }
    let done = refund_form(
        &mut console,
        &number,
        &[("kind", "duplicate"), ("reason", "重复缴费退款")],
    )
    .await;
    assert!(
        done.redirects_to(&format!("/admin/payments/{number}?refund=1")),
        "{}",
        done.body
    );
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(refund.kind, RefundKind::Duplicate);
    assert_eq!(refund.amount_fen, 605_050);
    assert_eq!(refund.requested_by, FINANCE);
    assert!(refund.channel_refund_no.is_some());

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
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Succeeded);
    assert!(refund.finished_at.is_some());
    let store = &app.state.store;
    assert_eq!(
        store
            .count_notifications(NotificationVerdict::Duplicate)
            .await
            .expect("count"),
        1
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);

    let audit = app.audit_rows("refund.").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, FINANCE);
    assert_eq!(audit[0].entry.action, "refund.request");
    assert_eq!(
        audit[0].entry.target,
        format!("refund:{}", refund.out_refund_no)
    );
    let page = console.get(&format!("/admin/payments/{number}")).await;
    assert!(page.body.contains("退款成功"));
    assert!(page.body.contains(&refund.out_refund_no));
    assert!(!page.body.contains("全额退款"), "nothing left to refund");
    assert_eq!(refund_posts(&app), 1);
}

#[tokio::test]
async fn a_withdrawal_refund_makes_the_item_unpaid_only_when_the_money_is_back() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let (item, charged) = first_line(&app, &number).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let item_text = item.to_string();
    let done = refund_form(
        &mut console,
        &number,
        &[
            ("kind", "withdrawal"),
            ("fee_item_id", &item_text),
            ("amount", "100.00"),
            ("reason", "退学，按月退还"),
            ("unpay_item", "1"),
        ],
    )
    .await;
    assert!(done.status.is_redirection(), "{}", done.body);
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.amount_fen, 10_000);
    assert!(refund.unpays_item);
    assert_eq!(refund.fee_item_id, Some(item));
    assert_eq!(refund.status, RefundStatus::Processing);
    assert_eq!(
        item_statuses(&app).await,
        [FeeItemStatus::Paid; 3],
        "still paid while the money is on its way"
    );

    // More than is left of that item: refused before any call.
    let one_fen_too_many = charged - 10_000 + 1;
    let too_much = format!("{}.{:02}", one_fen_too_many / 100, one_fen_too_many % 100);
    let refused = refund_form(
        &mut console,
        &number,
        &[
            ("kind", "withdrawal"),
            ("fee_item_id", &item_text),
            ("amount", &too_much),
            ("reason", "再退"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("超过可退余额"), "{}", refused.body);
    assert_eq!(refund_posts(&app), 1, "nothing sent for the refused one");

    let answers = app
        .pay
        .complete_refund(&refund.out_refund_no)
        .await
        .expect("completed");
    assert_eq!(answers[0].0, 204);
    let statuses = item_statuses(&app).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == FeeItemStatus::Unpaid)
            .count(),
        1
    );
    assert_eq!(
        refunds_of(&app, &number).await[0].status,
        RefundStatus::Succeeded
    );
}

#[tokio::test]
async fn a_lost_answer_is_resolved_by_querying_the_same_refund_number() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    app.pay.lose_next_refund_answer();
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let done = refund_form(
        &mut console,
        &number,
        &[("kind", "duplicate"), ("reason", "重复缴费退款")],
    )
    .await;
    assert!(done.status.is_redirection(), "{}", done.body);
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Requested, "outcome unknown");

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
    let seen = app.pay.refunds();
    assert_eq!(seen.len(), 1, "WeChat saw one refund number");
    assert_eq!(seen[0].out_refund_no, refund.out_refund_no);
    assert_eq!(refund_posts(&app), 1, "queried, never sent again");
    assert!(
        app.pay
            .calls()
            .iter()
            .any(|call| call.route == refund_paths::QUERY_REFUND)
    );
}

#[tokio::test]
async fn a_refusal_by_wechat_leaves_the_refund_failed_with_its_message() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    app.pay
        .refuse_next_refund(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起");
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    refund_form(
        &mut console,
        &number,
        &[("kind", "duplicate"), ("reason", "重复缴费退款")],
    )
    .await;
    let refund = only_refund(&app, &number).await;
    assert_eq!(refund.status, RefundStatus::Failed);
    let failure = refund.failure.clone().expect("a failure text");
    assert!(failure.contains("基本账户余额不足"), "{failure}");
    let page = console.get(&format!("/admin/payments/{number}")).await;
    assert!(page.body.contains("退款失败"));
    assert!(
        page.body.contains("全额退款"),
        "a failed refund frees the amount"
    );
}

#[tokio::test]
async fn forged_refund_notifications_are_refused_and_change_nothing() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let number = paid_order(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    refund_form(
        &mut console,
        &number,
        &[("kind", "duplicate"), ("reason", "重复缴费退款")],
    )
    .await;
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
        !page.body.contains("全额退款"),
        "no refund form for a viewer"
    );
    let csrf = page.csrf();
    let denied = viewer
        .post(
            &format!("/admin/payments/{number}/refund"),
            &[("csrf", &csrf), ("kind", "duplicate"), ("reason", "x")],
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let no_token = finance
        .post(
            &format!("/admin/payments/{number}/refund"),
            &[("csrf", "wrong"), ("kind", "duplicate"), ("reason", "x")],
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(refunds_of(&app, &number).await.is_empty());
    assert_eq!(refund_posts(&app), 0, "nothing sent to WeChat");
    assert!(app.audit_rows("refund.").await.is_empty());
}
