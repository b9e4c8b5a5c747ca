//! The books check from the outside (`support::books`) catches what it claims to:
//! first on books written by hand (one disagreement at a time), then on the real app
//! and sandboxes: money a channel took for an order we had closed, and an order our
//! tables say is paid that no channel charged.

use campus_pay::sandbox::ledger::{ChannelRecord, ChannelRefund, Charge, Upstream};
use campus_pay::store::OrderStatus;
use chrono::Utc;
use reqwest::StatusCode;
use sea_orm::ConnectionTrait;

use crate::support::TestApp;
use crate::support::books::{
    OurBooks, OurItem, OurLine, OurOrder, OurRefund, books_verdict, check_books, compare,
};
use crate::support::browser::{Browser, Page, element_text};
use crate::support::seed::{ZHANG_SAN, paying_app};

/// 张三's three items, in fen.
const TOTAL_FEN: i64 = 605_050;

// ---- Books written by hand ------------------------------------------------------------

const NUMBER: &str = "CP20260901000000000000000001";
const WECHAT_TX: &str = "4200000000202609010000000001";

/// One WeChat Pay order of 100 fen for item 7, paid at WeChat and here.
fn paid_at_wechat() -> (Vec<ChannelRecord>, OurBooks) {
    let channel = ChannelRecord {
        upstream: Upstream::WechatPay,
        out_trade_no: NUMBER.to_owned(),
        asked_fen: 100,
        charge: Some(Charge {
            amount_fen: 100,
            at: Utc::now(),
            transaction_id: Some(WECHAT_TX.to_owned()),
        }),
        closed: false,
        refunds: Vec::new(),
    };
    let ours = OurBooks {
        orders: vec![OurOrder {
            id: 1,
            out_trade_no: NUMBER.to_owned(),
            channel: "wechat_native".to_owned(),
            amount_fen: 100,
            status: "paid".to_owned(),
            channel_trade_no: Some(WECHAT_TX.to_owned()),
            has_paid_at: true,
            exception: None,
        }],
        lines: vec![OurLine {
            order_id: 1,
            fee_item_id: 7,
            amount_fen: 100,
        }],
        items: vec![OurItem {
            id: 7,
            status: "paid".to_owned(),
            paid_order_id: Some(1),
        }],
        refunds: Vec::new(),
        accepted_notifications: 1,
    };
    (vec![channel], ours)
}

/// The check's complaints, which must name `what`.
fn complaints(channels: &[ChannelRecord], ours: &OurBooks, what: &str) -> Vec<String> {
    let verdict = compare(channels, ours);
    assert!(
        verdict.violations.iter().any(|line| line.contains(what)),
        "no complaint names {what:?}: {:#?}",
        verdict.violations
    );
    verdict.violations
}

#[test]
fn balanced_books_pass() {
    let (channels, ours) = paid_at_wechat();
    let verdict = compare(&channels, &ours);
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
    assert_eq!(verdict.summary.paid_orders, [NUMBER]);
    assert_eq!(verdict.summary.received_fen, 100);
    assert_eq!(verdict.summary.kept_applied_fen, 100);
}

#[test]
fn a_charge_at_the_channel_with_no_order_here_is_named() {
    let (mut channels, ours) = paid_at_wechat();
    let mut stray = channels[0].clone();
    stray.out_trade_no = "CP20260901000000000000000002".to_owned();
    channels.push(stray);
    let found = complaints(
        &channels,
        &ours,
        "WeChat Pay charged 100 fen for CP20260901000000000000000002: we have no such order",
    );
    assert!(
        found
            .iter()
            .any(|line| line.contains("the channels kept 200 fen")),
        "{found:#?}"
    );
}

#[test]
fn an_order_paid_here_that_no_channel_charged_is_named() {
    let (mut channels, ours) = paid_at_wechat();
    channels[0].charge = None;
    complaints(
        &channels,
        &ours,
        &format!(
            "order {NUMBER} is paid here with channel number Some(\"{WECHAT_TX}\"): WeChat Pay never charged it"
        ),
    );
}

#[test]
fn a_charge_for_an_order_still_open_here_is_named() {
    let (channels, mut ours) = paid_at_wechat();
    ours.orders[0].status = "created".to_owned();
    ours.orders[0].channel_trade_no = None;
    ours.items[0].status = "in_order".to_owned();
    ours.items[0].paid_order_id = None;
    complaints(&channels, &ours, "the money is not in our books");
}

#[test]
fn a_charge_of_another_amount_is_named() {
    let (mut channels, ours) = paid_at_wechat();
    if let Some(charge) = channels[0].charge.as_mut() {
        charge.amount_fen = 90;
    }
    complaints(
        &channels,
        &ours,
        &format!("WeChat Pay charged 90 fen for {NUMBER}, our order is for 100 fen"),
    );
}

#[test]
fn refunds_that_disagree_in_count_or_amount_are_named() {
    let (mut channels, mut ours) = paid_at_wechat();
    let refund = |amount_fen| ChannelRefund {
        out_refund_no: "RF1".to_owned(),
        amount_fen,
        succeeded: true,
    };
    channels[0].refunds.push(refund(40));
    complaints(
        &channels,
        &ours,
        "WeChat Pay refunded 40 fen of CP20260901000000000000000001 as RF1: we have no such refund",
    );
    ours.refunds.push(OurRefund {
        out_refund_no: "RF1".to_owned(),
        order_id: 1,
        amount_fen: 30,
        status: "succeeded".to_owned(),
    });
    complaints(
        &channels,
        &ours,
        "refund RF1: 40 fen at the channel, 30 here",
    );
    channels[0].refunds.clear();
    complaints(
        &channels,
        &ours,
        "refund RF1 is succeeded here, the channel has None",
    );
    channels[0].refunds.push(refund(30));
    let verdict = compare(&channels, &ours);
    assert!(verdict.violations.is_empty(), "{:#?}", verdict.violations);
    assert_eq!(verdict.summary.kept_applied_fen, 70);
}

#[test]
fn an_item_paid_by_two_orders_is_named() {
    let (mut channels, mut ours) = paid_at_wechat();
    let second = "CP20260901000000000000000003";
    let mut record = channels[0].clone();
    record.out_trade_no = second.to_owned();
    if let Some(charge) = record.charge.as_mut() {
        charge.transaction_id = Some("4200000000202609010000000003".to_owned());
    }
    channels.push(record);
    let mut order = ours.orders[0].clone();
    order.id = 2;
    order.out_trade_no = second.to_owned();
    order.channel_trade_no = Some("4200000000202609010000000003".to_owned());
    ours.orders.push(order);
    ours.lines.push(OurLine {
        order_id: 2,
        fee_item_id: 7,
        amount_fen: 100,
    });
    complaints(&channels, &ours, "item 7 is paid by");
}

#[test]
fn a_paid_item_without_its_paid_order_is_named() {
    let (channels, mut ours) = paid_at_wechat();
    ours.items.push(OurItem {
        id: 8,
        status: "paid".to_owned(),
        paid_order_id: None,
    });
    complaints(
        &channels,
        &ours,
        "item 8 is paid, by order None, which is not a paid order carrying it",
    );
}

// ---- The real app and sandboxes -----------------------------------------------------

/// Posts the fee list's ticked items to `path` (a channel's button).
async fn pay_with(browser: &mut Browser<'_>, path: &str) -> Page {
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    browser.post(path, &form).await
}

/// 张三 starts paying everything by `path`; the order's number.
async fn start_order(browser: &mut Browser<'_>, path: &str) -> String {
    let page = pay_with(browser, path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    element_text(&page.body, "order-number").expect("the page shows the order number")
}

async fn order_id(app: &TestApp, number: &str) -> i64 {
    app.store
        .find_order(number)
        .await
        .expect("query")
        .expect("exists")
        .id
}

/// Money a channel took for an order we had closed: until it is on record for the
/// office, the check fails naming the order; once the late notification has flagged
/// it, the check passes and counts the money as flagged, beside the payment that paid
/// the items.
#[tokio::test]
async fn money_a_channel_took_for_an_order_we_closed_fails_the_books_until_the_office_sees_it() {
    let app = paying_app().await;
    let mut zhang = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let wechat_no = start_order(&mut zhang, "/pay/wechat").await;
    // Closed here while WeChat still takes money for it (the window a close leaves,
    // as with the bank's timeout or a code scanned after our close).
    let released = app
        .store
        .release_order(order_id(&app, &wechat_no).await, app.clock.now())
        .await
        .expect("released");
    assert!(released);
    let before = check_books(&app).await;
    assert_eq!(
        before.closed_here_payable_there,
        std::slice::from_ref(&wechat_no)
    );

    let alipay_no = start_order(&mut zhang, "/pay/alipay").await;
    app.alipay.pay(&alipay_no).await.expect("paid by Alipay");
    app.pay
        .pay_silently(&wechat_no)
        .expect("WeChat takes the money for the order we closed");

    let verdict = books_verdict(&app).await;
    let named = verdict.violations.iter().any(|line| {
        line.contains(&format!("WeChat Pay charged {wechat_no}"))
            && line.contains("the money is not in our books")
    });
    assert!(named, "{:#?}", verdict.violations);
    assert!(
        verdict
            .violations
            .iter()
            .any(|line| line.contains(&format!("the channels kept {}", 2 * TOTAL_FEN))),
        "{:#?}",
        verdict.violations
    );

    let answers = app.pay.send_notification(&wechat_no).await.expect("sent");
    assert!(
        answers.iter().all(|(status, _)| *status == 204),
        "{answers:?}"
    );
    let flagged = app
        .store
        .find_order(&wechat_no)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert!(flagged.exception.is_some(), "shown to the office");
    let books = check_books(&app).await;
    assert_eq!(books.paid_orders, [alipay_no]);
    assert_eq!(books.flagged_orders, [wechat_no]);
    assert_eq!(books.received_fen, 2 * TOTAL_FEN);
    assert_eq!(
        (books.kept_applied_fen, books.kept_flagged_fen),
        (TOTAL_FEN, TOTAL_FEN)
    );
}

/// Our tables say paid (written behind the app's back, as a bug in a query would),
/// and no channel charged: the check names the order and the difference in money.
#[tokio::test]
async fn an_order_marked_paid_that_no_channel_charged_fails_the_books() {
    let app = paying_app().await;
    let mut zhang = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let number = start_order(&mut zhang, "/pay/wechat").await;
    let id = order_id(&app, &number).await;
    let db = app.store.connection();
    db.execute_unprepared(&format!(
        "UPDATE orders SET status = 'paid', channel_trade_no = '{WECHAT_TX}' WHERE id = {id}"
    ))
    .await
    .expect("order marked paid");
    db.execute_unprepared(&format!(
        "UPDATE fee_items SET status = 'paid', paid_order_id = {id} WHERE status = 'in_order'"
    ))
    .await
    .expect("items marked paid");

    let verdict = books_verdict(&app).await;
    let expected = [
        format!(
            "order {number} is paid here with channel number Some(\"{WECHAT_TX}\"): WeChat Pay never charged it"
        ),
        format!("the channels kept 0 fen; our books count {TOTAL_FEN} applied + 0 flagged"),
    ];
    for line in &expected {
        assert!(
            verdict.violations.iter().any(|found| found.contains(line)),
            "missing {line:?} in {:#?}",
            verdict.violations
        );
    }
    assert_eq!(
        verdict.violations.len(),
        expected.len(),
        "{:#?}",
        verdict.violations
    );
}
