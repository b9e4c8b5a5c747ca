//! Students pay: WeChat Pay JSAPI in WeChat and Native on PC, against the WeChat Pay
//! sandbox (which checks our signatures and signs its answers and notifications), and
//! everything that must not move money: forged, stale, probing, wrong-amount and
//! unknown-order notifications, duplicates, lost notifications, expiry.

use std::time::Duration;

use campus_pay::jobs::orders::sweep_once;
use campus_pay::pay::wechatpay::WechatPayPublicKey;
use campus_pay::pay::wechatpay::signing::pay_sign_message;
use campus_pay::sandbox::wechat_pay::{Notification, Tamper, TradeState as SandboxState};
use campus_pay::store::{FeeItemStatus, NotificationVerdict, OrderStatus};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::browser::{Browser, Page, element_text};
use crate::support::seed::ZHANG_SAN;
use crate::support::seed::{item_statuses, paying_app};

const MERCHANT_PUBLIC_KEY: &str = include_str!("../../src/sandbox/keys/merchant_public_key.pem");

/// Fee list → 确认支付 → the payment page, for all ticked items.
async fn start_paying(browser: &mut Browser<'_>, prefix: &str, pay_path: &str) -> Page {
    let fees = browser.get(&format!("{prefix}/fees")).await;
    let ids = Browser::item_ids(&fees);
    assert_eq!(ids.len(), 3);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let confirm = browser.post(&format!("{prefix}/confirm"), &form).await;
    assert_eq!(confirm.status, StatusCode::OK);
    let paying = browser.post(pay_path, &form).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    paying
}

fn order_number(page: &Page) -> String {
    element_text(&page.body, "order-number").expect("the page shows the order number")
}

async fn post_notification(app: &TestApp, notification: &Notification) -> (StatusCode, String) {
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

#[tokio::test]
async fn a_student_pays_in_wechat_and_sees_it_paid_at_once() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let paying = start_paying(&mut browser, "/h5", "/h5/pay").await;
    for shown in [
        "确认支付",
        "立即支付",
        "武威职业学院",
        "¥6050.50",
        "我已付款，查询结果",
    ] {
        assert!(paying.body.contains(shown), "{shown}");
    }

    // The bridge parameters are signed with the merchant key, as WeChat checks them.
    let params = paying
        .body
        .split("data-params=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("params");
    let params: serde_json::Value =
        serde_json::from_str(&params.replace("&quot;", "\"")).expect("JSON");
    let text = |key: &str| params[key].as_str().expect(key).to_owned();
    assert_eq!(text("signType"), "RSA");
    assert!(text("package").starts_with("prepay_id="));
    let message = pay_sign_message(
        &text("appId"),
        &text("timeStamp"),
        &text("nonceStr"),
        &text("package"),
    );
    let merchant = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_KEY).expect("key");
    assert!(merchant.verify_sha256(message.as_bytes(), &text("paySign")));

    // Before paying, the result page waits; the items are held by the order.
    let number = order_number(&paying);
    let waiting = browser.get(&format!("/h5/orders/{number}")).await;
    assert!(waiting.body.contains("等待支付结果"));
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);

    // WeChat's cashier takes the money and notifies us.
    let paid = app.pay.pay(&number).await.expect("paid in the sandbox");
    assert_eq!(
        paid.notification_answers.first().map(|(status, _)| *status),
        Some(204)
    );
    let result = browser.get(&format!("/h5/orders/{number}")).await;
    assert!(result.body.contains("缴费成功"), "{}", result.body);
    assert!(result.body.contains(&number));
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    let fees = browser.get("/h5/fees").await;
    assert!(fees.body.contains("无欠费"), "never invited to pay twice");
    assert_eq!(
        app.state
            .store
            .count_notifications(NotificationVerdict::Accepted)
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn the_order_keeps_the_page_request_id_for_the_notification_logs() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let fees = browser.get("/h5/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let nginx_id = "4f0c9a1e2b3d4c5e6f708192a3b4c5d6";
    let paying = browser
        .post_with_request_id("/h5/pay", &form, nginx_id)
        .await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    let number = order_number(&paying);

    let order = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("read")
        .expect("the order exists");
    assert_eq!(order.request_id.as_deref(), Some(nginx_id));

    // The notification arrives in WeChat's own request; the order still names the page's.
    app.pay.pay(&number).await.expect("paid in the sandbox");
    let paid = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("read")
        .expect("the order exists");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.request_id.as_deref(), Some(nginx_id));
}

#[tokio::test]
async fn a_student_pays_by_qr_code_on_pc() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let choice = start_paying(&mut browser, "", "/pay").await;
    assert!(choice.body.contains("微信"));
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let qr = browser.post("/pay/wechat", &form).await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    assert!(qr.body.contains("<svg"), "a QR code");
    let number = order_number(&qr);

    let status = browser.get(&format!("/orders/{number}/status")).await;
    assert_eq!(status.body, r#"{"status":"open"}"#);
    // Asking again for the same items gets the same order, not a second one.
    let again = browser.post("/pay/wechat", &form).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(order_number(&again), number);

    app.pay.pay(&number).await.expect("paid");
    let status = browser.get(&format!("/orders/{number}/status")).await;
    assert_eq!(status.body, r#"{"status":"paid"}"#);
    let result = browser.get(&format!("/orders/{number}")).await;
    assert!(result.body.contains("缴费成功"));
    // Another student cannot look at it.
    let mut stranger = Browser::signed_in_pc(&app, crate::support::seed::WANG_WU, "07803X").await;
    assert_eq!(
        stranger.get(&format!("/orders/{number}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_lost_notification_is_found_by_asking_wechat() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    start_paying(&mut browser, "", "/pay").await;
    let fees = browser.get("/fees").await;
    let mut form: Vec<(String, String)> = vec![("csrf".into(), fees.csrf())];
    form.extend(
        Browser::item_ids(&fees)
            .into_iter()
            .map(|id| ("item".to_owned(), id)),
    );
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let number = order_number(&browser.post("/pay/wechat", &form).await);

    app.pay
        .pay_silently(&number)
        .expect("paid without a notification");
    app.clock.advance(Duration::from_secs(10));
    let status = browser.get(&format!("/orders/{number}/status")).await;
    assert_eq!(
        status.body, r#"{"status":"paid"}"#,
        "the page's question made the server ask WeChat"
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test]
async fn the_sweep_queries_quiet_orders_and_closes_expired_ones() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    start_paying(&mut browser, "", "/pay").await;
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let one = [("csrf", csrf.as_str()), ("item", ids[0].as_str())];
    let first = order_number(&browser.post("/pay/wechat", &one).await);

    // Expired and never paid: closed at WeChat, then the item is released.
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(report.closed, 1, "{report:?}");
    assert_eq!(
        app.pay.transaction(&first).expect("known").trade_state,
        SandboxState::Closed
    );
    assert_eq!(item_statuses(&app).await[0], FeeItemStatus::Unpaid);

    // Paid at WeChat, notification lost, then expired: closing finds it paid and applies it.
    let second = order_number(&browser.post("/pay/wechat", &one).await);
    app.pay.pay_silently(&second).expect("paid");
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("lock");
    assert_eq!(report.found_paid, 1, "{report:?}");
    let order = app
        .state
        .store
        .find_order(&second)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await[0], FeeItemStatus::Paid);
}

#[tokio::test]
async fn ten_concurrent_copies_of_a_notification_pay_once() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let number = order_number(&start_paying(&mut browser, "/h5", "/h5/pay").await);
    app.pay.set_notification_copies(10);
    let paid = app.pay.pay(&number).await.expect("paid");
    assert_eq!(paid.notification_answers.len(), 10);
    assert!(
        paid.notification_answers
            .iter()
            .all(|(status, _)| *status == 204),
        "{:?}",
        paid.notification_answers
    );
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
        9
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test]
async fn notifications_that_cannot_be_believed_change_nothing() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let number = order_number(&start_paying(&mut browser, "/h5", "/h5/pay").await);
    app.pay.pay_silently(&number).expect("paid at WeChat");

    let cases = [
        (Tamper::Signtest, StatusCode::UNAUTHORIZED),
        (Tamper::StaleTimestamp, StatusCode::UNAUTHORIZED),
        (Tamper::WrongKey, StatusCode::UNAUTHORIZED),
        (Tamper::WrongAmount(1), StatusCode::BAD_REQUEST),
        (
            Tamper::UnknownOrder("CP20260901000000NOSUCH0001".into()),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (tamper, expected) in cases {
        let notification = app
            .pay
            .notification_for(&number, tamper.clone())
            .expect("built");
        let (status, body) = post_notification(&app, &notification).await;
        assert_eq!(status, expected, "{tamper:?}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(answer["code"], "FAIL", "{tamper:?}");
        assert_eq!(
            item_statuses(&app).await,
            [FeeItemStatus::InOrder; 3],
            "{tamper:?} changed nothing"
        );
    }
    // A body changed after signing, and garbage.
    let mut forged = app
        .pay
        .notification_for(&number, Tamper::None)
        .expect("built");
    forged.body = forged.body.replacen("\"summary\"", "\"summary\" ", 1);
    assert_eq!(
        post_notification(&app, &forged).await.0,
        StatusCode::UNAUTHORIZED
    );
    let garbage = Notification {
        headers: vec![],
        body: "{not json".into(),
    };
    assert_eq!(
        post_notification(&app, &garbage).await.0,
        StatusCode::UNAUTHORIZED
    );
    let huge = Notification {
        headers: vec![],
        body: "x".repeat(200 * 1024),
    };
    assert_eq!(
        post_notification(&app, &huge).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Only the verified one about our order (the wrong amount) is stored for the
    // office; forged, stale, unsigned and unknown-order ones are counted, not kept.
    let store = &app.state.store;
    assert_eq!(
        store
            .count_notifications(NotificationVerdict::Refused)
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .count_notifications(NotificationVerdict::Accepted)
            .await
            .expect("count"),
        0
    );
    let order = store
        .find_order(&number)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(order.status, OrderStatus::Created);

    // The genuine one is still accepted afterwards.
    let genuine = app
        .pay
        .notification_for(&number, Tamper::None)
        .expect("built");
    assert_eq!(
        post_notification(&app, &genuine).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test]
async fn twenty_concurrent_pay_requests_make_one_order() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let session = browser.session.clone().expect("session");
    let mut requests = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = format!("{}/pay/wechat", app.url);
        let mut form: Vec<(String, String)> = vec![("csrf".into(), csrf.clone())];
        form.extend(ids.iter().map(|id| ("item".to_owned(), id.clone())));
        let cookie = format!("cp_session={session}");
        requests.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("sent");
            (response.status(), response.text().await.expect("body"))
        }));
    }
    let mut numbers = std::collections::BTreeSet::new();
    for request in requests {
        let (status, body) = request.await.expect("joined");
        if status == StatusCode::OK {
            numbers.insert(element_text(&body, "order-number").expect("number"));
        }
    }
    // The answers may agree while the database does not: count what was written.
    let orders = crate::races::orders_in_database(&app).await;
    let open: Vec<_> = orders
        .iter()
        .filter(|(order, _)| order.status == OrderStatus::Created)
        .collect();
    assert_eq!(open.len(), 1, "exactly one open order: {orders:?}");
    assert_eq!(orders.len(), 1, "no other order was ever made: {orders:?}");
    let (order, lines) = open[0];
    let mut held: Vec<String> = lines
        .iter()
        .map(|line| line.fee_item_id.to_string())
        .collect();
    held.sort();
    let mut ticked = ids.clone();
    ticked.sort();
    assert_eq!(held, ticked, "the open order holds every ticked item once");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::InOrder; 3]);
    crate::races::assert_no_item_in_two_orders(&orders);
    assert_eq!(
        numbers.iter().collect::<Vec<_>>(),
        [&order.out_trade_no],
        "every page that answered shows that order"
    );
    let orders_at_wechat = app.pay.transactions().len();
    assert_eq!(orders_at_wechat, 1);
}

#[tokio::test]
async fn paying_on_another_channel_closes_the_first_order_at_wechat() {
    let app = paying_app().await;
    let mut pc = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let fees = pc.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let on_pc = order_number(&pc.post("/pay/wechat", &form).await);

    // The same student opens WeChat and pays the same items there.
    let mut phone = Browser::new(&app);
    assert!(phone.wechat_oauth("o_zhang").await.redirects_to("/h5"));
    let form_page = phone.get("/h5/bind").await;
    let bound = phone
        .post(
            "/h5/bind",
            &[
                ("csrf", &form_page.csrf()),
                ("id_card", ZHANG_SAN),
                ("id_card_again", ZHANG_SAN),
                ("password", crate::support::browser::NEW_PASSWORD),
            ],
        )
        .await;
    assert!(bound.redirects_to("/h5/fees"), "{:?}", bound.location);
    let in_wechat = order_number(&start_paying(&mut phone, "/h5", "/h5/pay").await);
    assert_ne!(in_wechat, on_pc);
    assert_eq!(
        app.pay.transaction(&on_pc).expect("known").trade_state,
        SandboxState::Closed,
        "closed at WeChat first"
    );
    let first = app
        .state
        .store
        .find_order(&on_pc)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(first.status, OrderStatus::Closed);
    app.pay.pay(&in_wechat).await.expect("paid");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}
