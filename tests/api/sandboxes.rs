//! Issue 14's sandboxes that must not be kinder than the real services: an Alipay code
//! closed before its scan and paid anyway, WeChat Pay notifications that are genuine
//! but not ours or not paid, and every provider's clock off from ours.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::sandbox::abc::Tamper as AbcTamper;
use campus_pay::sandbox::alipay::{SandboxTradeStatus, methods};
use campus_pay::sandbox::wechat_pay::{Notification, Tamper, TradeState};
use campus_pay::sandbox::wechat_push::{EncryptionMode, text_xml};
use campus_pay::store::{FeeItemStatus, NotificationVerdict, OrderStatus};
use chrono::TimeDelta;
use reqwest::StatusCode;

use crate::channel_guards::{order, paid_fen, pay_with, post_form};
use crate::support::browser::{Browser, element_text};
use crate::support::seed::ZHANG_SAN;
use crate::support::seed::{item_statuses, paying_app};
use crate::support::{ACCOUNT, TestApp};

/// 张三's three items, in fen.
const TOTAL_FEN: i64 = 605_050;

/// Starts paying on `path` and returns our order number from the QR page.
async fn open_qr(browser: &mut Browser<'_>, path: &str) -> String {
    let page = pay_with(browser, path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    element_text(&page.body, "order-number").expect("number")
}

async fn accepted_notifications(app: &TestApp) -> u64 {
    app.state
        .store
        .count_notifications(NotificationVerdict::Accepted)
        .await
        .expect("count")
}

async fn post_wechat_pay(app: &TestApp, notification: &Notification) -> (StatusCode, String) {
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body(notification.body.clone());
    for (name, value) in &notification.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("sent");
    (response.status(), response.text().await.expect("body"))
}

async fn sweep(app: &TestApp) {
    sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
}

// ---- Alipay: a code closed before its scan ------------------------------------------

/// The student opens Alipay's code, switches to WeChat (our close of the Alipay order
/// answers `ACQ.TRADE_NOT_EXIST`: no trade before the scan), pays by WeChat, then
/// scans the old code, which Alipay does not promise to refuse. The second payment is
/// recorded and flagged for a refund, never counted twice and never lost.
#[tokio::test]
async fn an_alipay_code_paid_after_its_order_closed_unscanned_is_flagged_when_paid_elsewhere() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let alipay_no = open_qr(&mut browser, "/pay/alipay").await;
    let wechat_no = open_qr(&mut browser, "/pay/wechat").await;
    assert_eq!(order(&app, &alipay_no).await.status, OrderStatus::Closed);
    assert_eq!(app.alipay.calls_to(methods::CLOSE), 1, "closed at Alipay");
    app.pay.pay(&wechat_no).await.expect("paid by WeChat");
    assert_eq!(order(&app, &wechat_no).await.status, OrderStatus::Paid);

    let late = app.alipay.pay(&alipay_no).await.expect("the old code pays");
    assert_eq!(
        late.notification_answers,
        [(200, "success".to_owned())],
        "recorded, so Alipay stops sending"
    );
    let flagged = order(&app, &alipay_no).await;
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert_eq!(
        flagged.exception.as_deref(),
        Some("订单关闭后收到支付，项目已由其他订单缴清，需退款")
    );
    assert_eq!(flagged.channel_trade_no, Some(late.trade_no));
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(paid_fen(&app).await, TOTAL_FEN, "counted once");
}

/// The same code paid while the WeChat order is still open: the Alipay payment settles
/// the items and the WeChat order is closed at WeChat, so it cannot take money too.
#[tokio::test]
async fn an_alipay_code_paid_after_its_order_closed_unscanned_settles_items_still_owed() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let alipay_no = open_qr(&mut browser, "/pay/alipay").await;
    let wechat_no = open_qr(&mut browser, "/pay/wechat").await;
    assert_eq!(order(&app, &alipay_no).await.status, OrderStatus::Closed);

    let late = app.alipay.pay(&alipay_no).await.expect("the old code pays");
    assert_eq!(late.notification_answers, [(200, "success".to_owned())]);
    let applied = order(&app, &alipay_no).await;
    assert_eq!(applied.status, OrderStatus::Paid);
    assert_eq!(
        applied.exception.as_deref(),
        Some("订单关闭后收到支付，已按此笔入账")
    );
    assert_eq!(order(&app, &wechat_no).await.status, OrderStatus::Closed);
    assert_eq!(
        app.pay.transaction(&wechat_no).expect("known").trade_state,
        TradeState::Closed,
        "closed at WeChat, so it cannot be paid too"
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(paid_fen(&app).await, TOTAL_FEN);
    assert_eq!(accepted_notifications(&app).await, 1);
}

/// Where Alipay does lock the code (as merchants report), the old code is refused and
/// nothing changes: the sandbox can play both, and the app is right either way.
#[tokio::test]
async fn an_alipay_code_locked_by_the_close_cannot_be_paid() {
    let app = paying_app().await;
    app.alipay.lock_codes_closed_before_scan(true);
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let alipay_no = open_qr(&mut browser, "/pay/alipay").await;
    let wechat_no = open_qr(&mut browser, "/pay/wechat").await;
    assert!(app.alipay.pay(&alipay_no).await.is_err());
    assert_eq!(
        app.alipay.transaction(&alipay_no).expect("known").status,
        SandboxTradeStatus::TradeClosed
    );
    assert_eq!(order(&app, &wechat_no).await.status, OrderStatus::Created);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    assert_eq!(paid_fen(&app).await, 0);
}

// ---- WeChat Pay: genuine notifications that are not ours, or not a payment ----------

/// Signed by WeChat and encrypted with our APIv3 key, so only the checks after
/// decryption can refuse them: another app id, another merchant, a state other than
/// SUCCESS. Each is refused with its reason, nothing is applied, the items stay owed.
#[tokio::test]
async fn genuine_wechat_pay_notifications_for_another_app_merchant_or_state_are_refused() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let number = open_qr(&mut browser, "/pay/wechat").await;
    let cases = [
        (Tamper::OtherAppId, "not_ours"),
        (Tamper::OtherMerchant, "not_ours"),
        (Tamper::TradeState("NOTPAY".into()), "not_paid"),
        (Tamper::TradeState("PAYERROR".into()), "not_paid"),
        (Tamper::TradeState("CLOSED".into()), "not_paid"),
    ];
    for (tamper, reason) in cases {
        let notification = app
            .pay
            .notification_for(&number, tamper.clone())
            .expect("built");
        let (status, body) = post_wechat_pay(&app, &notification).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tamper:?}: {body}");
        assert!(
            body.contains("\"FAIL\"") && body.contains(reason),
            "{tamper:?}: {body}"
        );
        assert_eq!(
            order(&app, &number).await.status,
            OrderStatus::Created,
            "{tamper:?}"
        );
        assert_eq!(
            item_statuses(&app).await,
            [FeeItemStatus::InOrder; 3],
            "{tamper:?}"
        );
    }
    assert_eq!(accepted_notifications(&app).await, 0);
    assert_eq!(paid_fen(&app).await, 0);
    // The genuine one still applies: the refusals were about the contents alone.
    let paid = app.pay.pay(&number).await.expect("paid");
    assert_eq!(
        paid.notification_answers.first().map(|(status, _)| *status),
        Some(204)
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

// ---- Clocks that disagree ------------------------------------------------------------

/// WeChat's servers 3 minutes ahead of ours, then 4 behind: our signed requests are
/// within its five minutes, its answers and notification within ours. Paid once.
#[tokio::test]
async fn wechat_pay_works_with_its_clock_a_few_minutes_off() {
    for skew in [TimeDelta::minutes(3), TimeDelta::minutes(-4)] {
        let app = paying_app().await;
        app.pay.set_clock_skew(skew);
        let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
        let number = open_qr(&mut browser, "/pay/wechat").await;
        let paid = app.pay.pay(&number).await.expect("paid");
        assert_eq!(
            paid.notification_answers.first().map(|(status, _)| *status),
            Some(204),
            "{skew}: {:?}",
            paid.notification_answers
        );
        assert_eq!(
            order(&app, &number).await.status,
            OrderStatus::Paid,
            "{skew}"
        );
        assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    }
}

/// WeChat's clock 6 minutes ahead: beyond the five minutes on each side. Its
/// notification is refused as stale (WeChat retries), nothing is applied; once the
/// clocks agree again, the same payment's notification is accepted.
#[tokio::test]
async fn a_wechat_pay_clock_beyond_five_minutes_is_refused_clearly() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let number = open_qr(&mut browser, "/pay/wechat").await;
    app.pay.set_clock_skew(TimeDelta::minutes(6));
    let paid = app.pay.pay(&number).await.expect("paid at WeChat");
    let (status, body) = paid.notification_answers.first().expect("sent").clone();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"stale\""), "{body}");
    assert_eq!(order(&app, &number).await.status, OrderStatus::Created);
    assert_eq!(accepted_notifications(&app).await, 0);
    // Our own requests are refused by WeChat too: the status poll learns nothing.
    app.clock.advance(Duration::from_secs(10));
    let status = browser.get(&format!("/orders/{number}/status")).await;
    assert_ne!(status.body, r#"{"status":"paid"}"#);

    app.pay.set_clock_skew(TimeDelta::zero());
    let answers = app.pay.send_notification(&number).await.expect("sent");
    assert_eq!(answers.first().map(|(status, _)| *status), Some(204));
    assert_eq!(order(&app, &number).await.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

/// Alipay's gateway 4 minutes ahead, then 3 behind: its request-time check, its
/// `gmt_payment` and `notify_time` all on its own clock. Paid once.
#[tokio::test]
async fn alipay_works_with_its_clock_a_few_minutes_off() {
    for skew in [TimeDelta::minutes(4), TimeDelta::minutes(-3)] {
        let app = paying_app().await;
        app.alipay.set_clock_skew(skew);
        let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
        let number = open_qr(&mut browser, "/pay/alipay").await;
        let paid = app.alipay.pay(&number).await.expect("paid");
        assert_eq!(
            paid.notification_answers,
            [(200, "success".to_owned())],
            "{skew}"
        );
        let record = order(&app, &number).await;
        assert_eq!(record.status, OrderStatus::Paid, "{skew}");
        assert_eq!(
            record.paid_at.map(|at| at.timestamp()),
            Some(paid.gmt_payment.timestamp()),
            "Alipay's time, as it said"
        );
        assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    }
}

/// The bank's clock 3 minutes ahead: its page refuses a little before our expiry, and
/// the order still closes normally after it.
#[tokio::test]
async fn the_bank_ahead_of_us_refuses_its_page_early_and_the_order_still_closes() {
    let app = paying_app().await;
    app.abc.set_clock_skew(TimeDelta::minutes(3));
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let number = open_qr(&mut browser, "/pay/abc/scan").await;
    // 13 minutes in by our clock, 16 by the bank's: past its orderTimeoutDate.
    app.clock.advance(Duration::from_secs(13 * 60));
    assert!(app.abc.pay_silently(&number).is_err(), "the bank refuses");
    assert_eq!(order(&app, &number).await.status, OrderStatus::Created);
    app.clock.advance(Duration::from_secs(3 * 60 + 5));
    sweep(&app).await;
    assert_eq!(order(&app, &number).await.status, OrderStatus::Closed);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Unpaid; 3]);
    assert_eq!(paid_fen(&app).await, 0);
}

/// The bank's clock 3 minutes behind: more than our one-minute margin, so it can take
/// the money after we released the items. That payment is applied (the items are
/// still owed), never lost; paid with a bank clock just as far ahead, nothing is odd.
#[tokio::test]
async fn the_bank_behind_us_beyond_our_margin_still_ends_with_the_payment_applied() {
    let app = paying_app().await;
    app.abc.set_clock_skew(TimeDelta::minutes(-3));
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let number = open_qr(&mut browser, "/pay/abc/scan").await;
    app.clock.advance(Duration::from_secs(16 * 60 + 5));
    sweep(&app).await;
    assert_eq!(order(&app, &number).await.status, OrderStatus::Closed);

    // 16 minutes by ours, 13 by the bank's: its timeout has not come yet.
    app.abc
        .pay_silently(&number)
        .expect("the bank still takes it");
    let late = app
        .abc
        .notification_for(&number, AbcTamper::None)
        .expect("built");
    let (status, _) = post_form(&app, "/pay/notify/abc", late).await;
    assert_eq!(status, StatusCode::OK);
    let applied = order(&app, &number).await;
    assert_eq!(applied.status, OrderStatus::Paid);
    assert_eq!(
        applied.exception.as_deref(),
        Some("订单关闭后收到支付，已按此笔入账")
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(paid_fen(&app).await, TOTAL_FEN);
}

/// WeChat's push 3 minutes ahead and 4 behind is answered; 6 minutes off is refused
/// as stale (401), before anything is read.
#[tokio::test]
async fn the_webhook_takes_pushes_from_a_clock_a_few_minutes_off_and_refuses_beyond() {
    let app = crate::support::spawn_app().await;
    let now = app.clock.now().timestamp();
    for (offset, accepted) in [(180, true), (-240, true), (360, false), (-360, false)] {
        let xml = text_xml(ACCOUNT, "o_skew", "余额", 70_000 + offset, now + offset);
        let post = app.push.signed_post_at(
            &xml,
            EncryptionMode::Safe,
            now + offset,
            &format!("skew{offset}"),
        );
        let response = app.post_wechat(&post).await;
        if accepted {
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{offset}: {}",
                response.body
            );
        } else {
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{offset}");
        }
    }
}
