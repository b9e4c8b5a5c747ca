//! The PC portal's other channels: Alipay (QR from `alipay.trade.precreate`) and the
//! Agricultural Bank of China (its own payment page, and a scan code), against their
//! sandboxes, with the same guarantees as WeChat Pay: paid once, lost notifications
//! found by query, forged ones refused, expiry closing the trade at the channel.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::sandbox::abc::Tamper as AbcTamper;
use campus_pay::sandbox::alipay::{AlipayTamper, SandboxTradeStatus, methods};
use campus_pay::store::{FeeItemStatus, NotificationVerdict, OrderStatus};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::browser::{Browser, element_text};
use crate::support::seed::ZHANG_SAN;
use crate::support::seed::{item_statuses, paying_app};

/// Posts the fee list's ticked items to `path` (a channel's button).
async fn pay_with(browser: &mut Browser<'_>, path: &str) -> crate::support::browser::Page {
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    browser.post(path, &form).await
}

async fn post_form(app: &TestApp, path: &str, body: Vec<u8>) -> (StatusCode, String) {
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

#[tokio::test]
async fn the_channel_choice_offers_all_three_configured_channels() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let choice = pay_with(&mut browser, "/pay").await;
    for channel in [
        "支付宝",
        "微信",
        "中国农业银行",
        "channel-alipay",
        "channel-abc-scan",
        "channel-abc-page",
    ] {
        assert!(choice.body.contains(channel), "{channel}");
    }
}

#[tokio::test]
async fn alipay_by_qr_code_paid_once_and_forgeries_refused() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let qr = pay_with(&mut browser, "/pay/alipay").await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    assert!(qr.body.contains("<svg") && qr.body.contains("支付宝"));
    let number = element_text(&qr.body, "order-number").expect("number");
    let trade = app
        .alipay
        .transaction(&number)
        .expect("precreated at Alipay");
    assert_eq!(
        trade.total_amount, "6050.50",
        "yuan with two decimals on the wire"
    );

    for tamper in [
        AlipayTamper::BadSignature,
        AlipayTamper::WrongAmount("0.01".into()),
        AlipayTamper::WrongAppId,
        AlipayTamper::UnknownOrder("CP20260901000000NOSUCH0001".into()),
    ] {
        let body = app
            .alipay
            .notification_for(&number, tamper.clone())
            .expect("built");
        let (_, answer) = post_form(&app, "/pay/notify/alipay", body.into_bytes()).await;
        assert_ne!(answer, "success", "{tamper:?}");
        assert_eq!(
            item_statuses(&app).await,
            [FeeItemStatus::InOrder; 3],
            "{tamper:?} changed nothing"
        );
    }

    app.alipay.set_notification_copies(5);
    let paid = app.alipay.pay(&number).await.expect("paid");
    assert!(
        paid.notification_answers
            .iter()
            .all(|(_, body)| body == "success"),
        "{:?}",
        paid.notification_answers
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    let store = &app.state.store;
    assert_eq!(
        store
            .count_notifications(NotificationVerdict::Accepted)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .count_notifications(NotificationVerdict::Duplicate)
            .await
            .expect("count"),
        4
    );
    let result = browser.get(&format!("/orders/{number}")).await;
    assert!(result.body.contains("缴费成功"));
}

#[tokio::test]
async fn alipay_lost_notification_is_found_and_expiry_closes_the_trade() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let first = element_text(
        &pay_with(&mut browser, "/pay/alipay").await.body,
        "order-number",
    )
    .expect("number");
    // Never paid: expiry closes it at Alipay and frees the items.
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(report.closed, 1, "{report:?}");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Unpaid; 3]);
    assert_eq!(
        app.alipay.calls_to(methods::CLOSE),
        1,
        "closed at Alipay first"
    );
    assert!(
        app.alipay.pay(&first).await.is_err(),
        "a closed code cannot be paid"
    );
    if let Some(trade) = app.alipay.transaction(&first) {
        assert_ne!(trade.status, SandboxTradeStatus::TradeSuccess);
    }

    // Paid, notification lost: the page's question finds it.
    let second = element_text(
        &pay_with(&mut browser, "/pay/alipay").await.body,
        "order-number",
    )
    .expect("number");
    app.alipay.pay_silently(&second).expect("paid");
    app.clock.advance(Duration::from_secs(10));
    let status = browser.get(&format!("/orders/{second}/status")).await;
    assert_eq!(status.body, r#"{"status":"paid"}"#);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

/// The order number the sandbox's bank page will send the browser back to.
fn order_from_bank_redirect(location: &str) -> String {
    let url = url::Url::parse(location).expect("an absolute URL to the bank");
    let return_to = url
        .query_pairs()
        .find(|(key, _)| key == "return_to")
        .map(|(_, value)| value.into_owned())
        .expect("return_to");
    return_to.rsplit('/').next().expect("number").to_owned()
}

#[tokio::test]
async fn abc_page_payment_goes_through_the_banks_page_and_is_confirmed_by_the_server() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let to_bank = pay_with(&mut browser, "/pay/abc/page").await;
    assert_eq!(to_bank.status, StatusCode::SEE_OTHER, "{}", to_bank.body);
    let location = to_bank.location.expect("the bank's page");
    assert!(
        location.starts_with(
            app.abc
                .gateway_url()
                .origin()
                .ascii_serialization()
                .as_str()
        ),
        "{location}"
    );
    let number = order_from_bank_redirect(&location);

    // Coming back before paying shows no success: the server decides, not the redirect.
    let early = browser.get(&format!("/orders/{number}")).await;
    assert!(!early.body.contains("缴费成功"));

    for tamper in [
        AbcTamper::Amount,
        AbcTamper::ForeignKey,
        AbcTamper::OtherMerchant,
    ] {
        app.abc.pay_silently(&number).ok();
        let body = app.abc.notification_for(&number, tamper).expect("built");
        let (status, _) = post_form(&app, "/pay/notify/abc", body).await;
        assert!(status.is_client_error(), "{tamper:?}: {status}");
        let order = app
            .state
            .store
            .find_order(&number)
            .await
            .expect("query")
            .expect("exists");
        assert_eq!(
            order.status,
            OrderStatus::Created,
            "{tamper:?} changed nothing"
        );
    }
    let genuine = app
        .abc
        .notification_for(&number, AbcTamper::None)
        .expect("built");
    for _ in 0..3 {
        let (status, _) = post_form(&app, "/pay/notify/abc", genuine.clone()).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    assert_eq!(
        app.state
            .store
            .count_notifications(NotificationVerdict::Accepted)
            .await
            .expect("count"),
        1
    );
    let result = browser.get(&format!("/orders/{number}")).await;
    assert!(result.body.contains("缴费成功"));
}

#[tokio::test]
async fn abc_scan_code_paid_without_a_notification_is_found_by_query() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let qr = pay_with(&mut browser, "/pay/abc/scan").await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    assert!(qr.body.contains("<svg"));
    let number = element_text(&qr.body, "order-number").expect("number");
    app.abc.pay_silently(&number).expect("paid at the bank");
    app.clock.advance(Duration::from_secs(10));
    let status = browser.get(&format!("/orders/{number}/status")).await;
    assert_eq!(status.body, r#"{"status":"paid"}"#);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test]
async fn abc_expiry_releases_an_unpaid_order_after_asking_the_bank() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let to_bank = pay_with(&mut browser, "/pay/abc/page").await;
    let number = order_from_bank_redirect(&to_bank.location.expect("the bank's page"));
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(report.closed, 1, "{report:?}");
    let order = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(order.status, OrderStatus::Closed);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Unpaid; 3]);
}
