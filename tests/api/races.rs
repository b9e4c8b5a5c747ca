//! Races that only PostgreSQL can lose (SQLite has one writer; these pass there too):
//! one payment reported at once by its notification, the student's status poll, the
//! sweep and reconciliation; copies of a late payment's notification at once; two
//! refunds that together exceed what is left (the row lock in `store/refunds.rs`), at
//! the exact boundary, through the service and through the console.

use std::collections::HashMap;
use std::time::Duration;

use campus_pay::domain::order::beijing_offset;
use campus_pay::domain::provider::Provider;
use campus_pay::domain::receipt::ReceiptCode;
use campus_pay::domain::refund::ItemEffect;
use campus_pay::jobs::orders::sweep_once;
use campus_pay::jobs::reconcile::ACTOR_CLI;
use campus_pay::pay::refunds::{RefundAsk, RefundError, Refunds};
use campus_pay::sandbox::wechat_pay::{Notification, Tamper};
use campus_pay::store::{
    AdminRole, AuditEntry, FeeItemStatus, NotificationVerdict, OrderLine, OrderRecord, OrderStatus,
    PaymentFilter, RefundRecord, RefundScope, RefundStatus,
};
use reqwest::StatusCode;
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};

use crate::refunds::{
    confirmation_fields, duplicate_payment, refund_form, refund_posts, refunds_of,
};
use crate::support::TestApp;
use crate::support::admin::FINANCE;
use crate::support::browser::{Browser, element_text};
use crate::support::seed::{ZHANG_SAN, item_statuses, paying_app};

/// Every order in the database with its lines, read through the store (not the pages).
pub(crate) async fn orders_in_database(app: &TestApp) -> Vec<(OrderRecord, Vec<OrderLine>)> {
    let store = &app.state.store;
    let rows = store
        .payments_page(&PaymentFilter::default(), 1000, 0)
        .await
        .expect("orders");
    let mut orders = Vec::new();
    for row in rows {
        let order = store
            .find_order(&row.out_trade_no)
            .await
            .expect("reads")
            .expect("listed orders exist");
        let lines = store.order_lines(order.id).await.expect("lines");
        orders.push((order, lines));
    }
    orders
}

/// No item is in two orders that are open or paid.
pub(crate) fn assert_no_item_in_two_orders(orders: &[(OrderRecord, Vec<OrderLine>)]) {
    let mut holder: HashMap<i64, &str> = HashMap::new();
    for (order, lines) in orders {
        if !matches!(order.status, OrderStatus::Created | OrderStatus::Paid) {
            continue;
        }
        for line in lines {
            if let Some(other) = holder.insert(line.fee_item_id, &order.out_trade_no) {
                panic!(
                    "item {} is in {other} and {}",
                    line.fee_item_id, order.out_trade_no
                );
            }
        }
    }
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

async fn notifications(app: &TestApp, verdict: NotificationVerdict) -> u64 {
    app.state
        .store
        .count_notifications(verdict)
        .await
        .expect("count")
}

async fn order(app: &TestApp, number: &str) -> OrderRecord {
    app.state
        .store
        .find_order(number)
        .await
        .expect("reads")
        .expect("the order")
}

/// 张三 on PC with a WeChat Native order for all his items: his browser and the number.
async fn open_order(app: &TestApp) -> (Browser<'_>, String) {
    let mut browser = Browser::signed_in_pc(app, ZHANG_SAN, "31002X").await;
    let number = order_all(&mut browser).await;
    (browser, number)
}

/// A WeChat Native order for every item the fee list offers: its number.
async fn order_all(browser: &mut Browser<'_>) -> String {
    let fees = browser.get("/fees").await;
    let csrf = fees.csrf();
    let ids = Browser::item_ids(&fees);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let page = browser.post("/pay/wechat", &form).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    element_text(&page.body, "order-number").expect("order number")
}

/// The student's result page asking "paid yet?", as its script does.
async fn poll_status(app: &TestApp, session: &str, number: &str) -> StatusCode {
    app.client
        .get(format!("{}/orders/{number}/status", app.url))
        .header("cookie", format!("cp_session={session}"))
        .send()
        .await
        .expect("sent")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_payment_reported_by_every_path_at_once_is_applied_once() {
    let app = paying_app().await;
    let (mut browser, number) = open_order(&app).await;
    let session = browser.session.clone().expect("session");
    // Paid at WeChat; its notification is held back so that every path finds it at once.
    app.pay.pay_silently(&number).expect("paid at WeChat");
    let notification = app
        .pay
        .notification_for(&number, Tamper::None)
        .expect("built");
    // Quiet long enough for the sweep and the page to query; not yet expired.
    app.clock.advance(Duration::from_secs(3 * 60));
    // The bill of the day the payment was made, Beijing time (not of "now": three
    // minutes later may be the next day).
    let paid_on = app
        .pay
        .transaction(&number)
        .and_then(|transaction| transaction.success_time)
        .expect("paid")
        .with_timezone(&beijing_offset())
        .date_naive();
    let reconciler = app.state.reconciler();

    // All at once; on PostgreSQL the order's writes wait at a gate until at least two
    // paths are in the middle of applying it.
    let gate = WriteGate::shut(&app, "orders").await;
    let opener = async {
        if let Some(gate) = gate {
            gate.wait_for_waiting(2).await;
            gate.open().await;
        }
    };
    let (first, second, poll_one, poll_two, sweep, reconciled, ()) = tokio::join!(
        post_notification(&app, &notification),
        post_notification(&app, &notification),
        poll_status(&app, &session, &number),
        poll_status(&app, &session, &number),
        sweep_once(&app.state.checkout, &app.state.cache),
        reconciler.reconcile(Provider::WechatPay, paid_on, ACTOR_CLI),
        opener,
    );
    assert_eq!(
        (first, second),
        (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT)
    );
    assert_eq!((poll_one, poll_two), (StatusCode::OK, StatusCode::OK));
    let sweep = sweep.expect("sweep").expect("the sweep lock is free");
    assert_eq!(sweep.failed, 0, "{sweep:?}");
    let reconciled = reconciled.expect("a reconciliation run");
    assert!(
        reconciled
            .lines
            .iter()
            .all(|line| line.kind == "applied" && line.out_trade_no == number),
        "only this payment, applied at most once: {reconciled}"
    );

    // One applied payment: the order paid with WeChat's transaction, each item paid once.
    let paid = order(&app, &number).await;
    let transaction = app.pay.transaction(&number).expect("known");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.channel_trade_no, transaction.transaction_id);
    assert!(paid.exception.is_none(), "{paid:?}");
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
    let orders = orders_in_database(&app).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_no_item_in_two_orders(&orders);
    // One receipt code: the one stored, the one the receipt shows, and it finds this
    // order.
    let stored = app
        .state
        .store
        .receipt_of(&number)
        .await
        .expect("reads")
        .expect("a receipt");
    let receipt = browser.get(&format!("/orders/{number}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::OK);
    let shown = element_text(&receipt.body, "receipt-code").expect("a code");
    let shown = ReceiptCode::parse(&shown).expect("a well-formed code");
    assert_eq!(shown.as_str(), stored.receipt_code);
    let found = app
        .state
        .store
        .receipt_by_code(&shown)
        .await
        .expect("reads")
        .expect("the code finds a receipt");
    assert_eq!(found.out_trade_no, number);
    // The two copies: at most one applied it (none when another path was first), the
    // other recorded as a duplicate; reconciliation applied it only if no one had.
    let accepted = notifications(&app, NotificationVerdict::Accepted).await;
    let duplicates = notifications(&app, NotificationVerdict::Duplicate).await;
    assert_eq!(accepted + duplicates, 2, "both copies recorded");
    assert!(accepted <= 1, "{accepted} accepted rows for one payment");
    assert!(
        i64::try_from(accepted).expect("small") + reconciled.run.counts.applied <= 1,
        "applied by a notification ({accepted}) and by reconciliation ({})",
        reconciled.run.counts.applied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_of_a_late_payment_arriving_at_once_record_one_accepted_notification() {
    let app = paying_app().await;
    // Order 1 paid at WeChat after we closed it, its items since paid by order 2; its
    // first notification has been recorded (accepted, flagged for a refund).
    let (first, second) = duplicate_payment(&app).await;
    assert_eq!(notifications(&app, NotificationVerdict::Accepted).await, 2);
    let late = app
        .pay
        .notification_for(&first, Tamper::None)
        .expect("built");
    // WeChat sends it again, three times at once.
    let answers =
        futures_util::future::join_all((0..3).map(|_| post_notification(&app, &late))).await;
    assert!(answers.iter().all(StatusCode::is_success), "{answers:?}");
    assert_eq!(
        notifications(&app, NotificationVerdict::Accepted).await,
        2,
        "one accepted row per payment (order 1's and order 2's)"
    );
    assert_eq!(notifications(&app, NotificationVerdict::Duplicate).await, 3);
    let flagged = order(&app, &first).await;
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert!(flagged.exception.is_some(), "{flagged:?}");
    assert_eq!(order(&app, &second).await.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

/// Fails on PostgreSQL without the order's row lock in `store/orders.rs` (`apply_in`):
/// the first copies of a late payment, arriving together, would each find the payment
/// not yet on the order and each be recorded as accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_copies_of_a_late_payment_arriving_at_once_record_one_accepted_notification() {
    let app = paying_app().await;
    // Order 1 paid at WeChat while our side closed it; its items since paid by order 2.
    let (mut browser, first) = open_order(&app).await;
    app.pay.pay_silently(&first).expect("paid at WeChat");
    let released = app
        .state
        .store
        .release_order(order(&app, &first).await.id, app.clock.now())
        .await
        .expect("released");
    assert!(released);
    let second = order_all(&mut browser).await;
    app.pay.pay(&second).await.expect("paid in the sandbox");
    assert_eq!(notifications(&app, NotificationVerdict::Accepted).await, 1);
    let late = app
        .pay
        .notification_for(&first, Tamper::None)
        .expect("built");

    // Its notification, twice at once, the first time it comes.
    let gate = WriteGate::shut(&app, "orders").await;
    let opener = async {
        if let Some(gate) = gate {
            gate.wait_for_waiting(2).await;
            gate.open().await;
        }
    };
    let (a, b, ()) = tokio::join!(
        post_notification(&app, &late),
        post_notification(&app, &late),
        opener
    );
    assert!(a.is_success() && b.is_success(), "{a} / {b}");
    assert_eq!(
        notifications(&app, NotificationVerdict::Accepted).await,
        2,
        "one accepted row per payment (order 2's and order 1's)"
    );
    assert_eq!(notifications(&app, NotificationVerdict::Duplicate).await, 1);
    let flagged = order(&app, &first).await;
    assert_eq!(flagged.status, OrderStatus::Closed);
    assert!(flagged.exception.is_some(), "{flagged:?}");
    assert_eq!(order(&app, &second).await.status, OrderStatus::Paid);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

// ---- two refunds that together exceed what is left ------------------------------------

/// The duplicate order's line for `name`: its item id and what the order charged.
async fn line_of(app: &TestApp, number: &str, name: &str) -> (i64, i64) {
    let lines = app
        .state
        .store
        .order_lines(order(app, number).await.id)
        .await
        .expect("lines");
    let line = lines
        .iter()
        .find(|line| line.item == name)
        .expect("the line");
    (line.fee_item_id, line.amount_fen)
}

/// Part of one item of a true duplicate, given back, its items staying paid.
fn part_of(fee_item_id: i64, amount_fen: i64) -> RefundAsk {
    RefundAsk {
        scope: RefundScope::Item {
            fee_item_id,
            amount_fen,
        },
        effect: ItemEffect::KeepPaid,
        reason: "重复缴费".into(),
        expected_left_fen: None,
    }
}

async fn refund(
    refunds: &Refunds,
    number: &str,
    ask: &RefundAsk,
) -> Result<RefundRecord, RefundError> {
    refunds
        .request(number, ask, AuditEntry::new(FINANCE, "refund.request", ""))
        .await
}

/// Refunds of the order that have not failed, for one item.
async fn live_refunds_of_item(app: &TestApp, number: &str, item: i64) -> Vec<RefundRecord> {
    refunds_of(app, number)
        .await
        .into_iter()
        .filter(|refund| refund.fee_item_id == Some(item) && refund.status != RefundStatus::Failed)
        .collect()
}

/// On PostgreSQL, a transaction of the test's own that holds every write to one table
/// (`LOCK TABLE … IN SHARE MODE`: reads and row locks go on, writes wait), so that two
/// requests are both under way before either writes: the interleaving that a missing
/// row lock loses happens every time, not by luck. `None` on SQLite (one writer:
/// nothing to interleave).
struct WriteGate {
    connection: DatabaseConnection,
    holder: DatabaseTransaction,
    pid: i32,
}

impl WriteGate {
    async fn shut(app: &TestApp, table: &str) -> Option<WriteGate> {
        let (url, Some(schema)) = app.store.url_and_schema() else {
            return None;
        };
        let connection = Database::connect(url)
            .await
            .expect("a connection of its own");
        let holder = connection.begin().await.expect("a transaction");
        holder
            .execute_unprepared(&format!("LOCK TABLE \"{schema}\".{table} IN SHARE MODE"))
            .await
            .expect("refunds locked");
        let pid = holder
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_backend_pid() AS pid",
            ))
            .await
            .expect("pid")
            .expect("a row")
            .try_get::<i32>("", "pid")
            .expect("an int");
        Some(WriteGate {
            connection,
            holder,
            pid,
        })
    }

    /// Waits until `count` sessions wait on the gate, directly or behind one that does.
    async fn wait_for_waiting(&self, count: i64) {
        let sql = "WITH RECURSIVE blocked(pid) AS ( \
                   SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) \
                   UNION SELECT a.pid FROM pg_stat_activity a JOIN blocked b \
                   ON b.pid = ANY(pg_blocking_pids(a.pid))) \
                   SELECT count(*)::bigint AS n FROM blocked";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let waiting = self
                .connection
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [self.pid.into()],
                ))
                .await
                .expect("pg_stat_activity")
                .expect("a row")
                .try_get::<i64>("", "n")
                .expect("a count");
            if waiting >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{waiting} of {count} requests reached the gate"
            );
            // Polling for an event (the sessions queued on the lock), not proving that
            // nothing happens.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn open(self) {
        self.holder.rollback().await.expect("released");
        self.connection.close().await.expect("closed");
    }
}

/// Both refunds at once; on PostgreSQL both are in flight before either is written.
async fn two_refunds_at_once(
    app: &TestApp,
    number: &str,
    asks: [&RefundAsk; 2],
) -> [Result<RefundRecord, RefundError>; 2] {
    let refunds = Refunds::from_checkout(&app.state.checkout);
    let gate = WriteGate::shut(app, "refunds").await;
    let opener = async {
        if let Some(gate) = gate {
            gate.wait_for_waiting(2).await;
            gate.open().await;
        }
    };
    let (a, b, ()) = tokio::join!(
        refund(&refunds, number, asks[0]),
        refund(&refunds, number, asks[1]),
        opener
    );
    [a, b]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_refunds_at_once_exactly_what_is_left_both_go() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let (duplicate, _) = duplicate_payment(&app).await;
    let (tuition, charged) = line_of(&app, &duplicate, "学费").await;
    assert_eq!(charged % 2, 0);
    let half = part_of(tuition, charged / 2);

    let [a, b] = two_refunds_at_once(&app, &duplicate, [&half, &half]).await;
    a.expect("the first half");
    b.expect("the second half");
    let recorded = live_refunds_of_item(&app, &duplicate, tuition).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(refunds_of(&app, &duplicate).await.len(), 2);
    assert_eq!(refund_posts(&app), 2);
    assert_eq!(
        app.pay.refunds().iter().map(|r| r.refund).sum::<i64>(),
        charged,
        "WeChat Pay was asked for exactly what the order paid for it"
    );
    // Nothing is left of it: not one more fen.
    let refunds = Refunds::from_checkout(&app.state.checkout);
    assert!(matches!(
        refund(&refunds, &duplicate, &part_of(tuition, 1)).await,
        Err(RefundError::TooMuch { left_fen: 0 })
    ));
    assert_eq!(refunds_of(&app, &duplicate).await.len(), 2);
    assert_eq!(refund_posts(&app), 2);
}

/// Fails without the row locks of `store/refunds.rs` (the order's, `order_for_update`,
/// and its items', `lock_items_of`: either alone serializes two refunds of one order):
/// both refunds read "nothing given back yet" and both are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_refunds_at_once_one_fen_over_what_is_left_only_one_goes() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let (duplicate, _) = duplicate_payment(&app).await;
    let (tuition, charged) = line_of(&app, &duplicate, "学费").await;
    let (over, exact) = (
        part_of(tuition, charged / 2 + 1),
        part_of(tuition, charged / 2),
    );

    let [a, b] = two_refunds_at_once(&app, &duplicate, [&over, &exact]).await;
    assert_eq!(
        [&a, &b].iter().filter(|outcome| outcome.is_ok()).count(),
        1,
        "{a:?} / {b:?}"
    );
    let refused = [&a, &b]
        .into_iter()
        .find_map(|outcome| outcome.as_ref().err())
        .expect("one refused");
    assert!(
        matches!(refused, RefundError::TooMuch { .. }),
        "{refused:?}"
    );
    // One refund row, one refund at WeChat Pay, for the same amount, within what was paid.
    let all = refunds_of(&app, &duplicate).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(refund_posts(&app), 1);
    let at_wechat = app.pay.refunds();
    assert_eq!(at_wechat.len(), 1);
    assert_eq!(at_wechat[0].refund, all[0].amount_fen);
    assert!(all[0].amount_fen <= charged);
    assert_eq!(item_statuses(&app).await, [FeeItemStatus::Paid; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clerks_refunding_halves_at_once_through_the_console_never_exceed_what_was_paid() {
    let app = paying_app().await;
    app.pay.hold_refunds();
    let (duplicate, _) = duplicate_payment(&app).await;
    let (tuition, charged) = line_of(&app, &duplicate, "学费").await;
    let item = tuition.to_string();
    let half = format!("{}.{:02}", charged / 2 / 100, charged / 2 % 100);
    let half_and_a_fen = format!("{}.{:02}", (charged / 2 + 1) / 100, (charged / 2 + 1) % 100);
    let fields = |amount: &str| -> Vec<(&'static str, String)> {
        vec![
            ("scope", "item".to_owned()),
            ("fee_item_id", item.clone()),
            ("amount", amount.to_owned()),
            ("effect", "keep_paid".to_owned()),
            ("reason", "重复缴费".to_owned()),
        ]
    };
    let mut first = app.console_as(FINANCE, AdminRole::Finance).await;
    let mut second = app.console_as("finance2", AdminRole::Finance).await;
    let confirm = async |console: &mut Browser<'_>, amount: &str| {
        let asked = fields(amount);
        let asked: Vec<(&str, &str)> = asked.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let page = refund_form(console, &duplicate, &asked).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        confirmation_fields(&page)
    };
    let one = confirm(&mut first, &half_and_a_fen).await;
    let two = confirm(&mut second, &half).await;
    let one: Vec<(&str, &str)> = one.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let two: Vec<(&str, &str)> = two.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let url = format!("/admin/payments/{duplicate}/refund");
    let (a, b) = tokio::join!(first.post(&url, &one), second.post(&url, &two));
    let won = [&a, &b]
        .iter()
        .filter(|page| page.status.is_redirection())
        .count();
    assert_eq!(won, 1, "{} / {}", a.body, b.body);
    let lost = if a.status.is_redirection() { &b } else { &a };
    assert_eq!(lost.status, StatusCode::BAD_REQUEST, "{}", lost.body);
    assert!(
        lost.body.contains("超过可退余额") || lost.body.contains("请重新确认"),
        "{}",
        lost.body
    );
    assert_eq!(
        live_refunds_of_item(&app, &duplicate, tuition).await.len(),
        1
    );
    assert_eq!(refund_posts(&app), 1);

    // The clerk who lost asks again, for what he meant: it fits only if the winner took
    // the half; after the half-and-a-fen, half is one fen too many.
    let (again, amount) = if a.status.is_redirection() {
        (&mut second, half.clone())
    } else {
        (&mut first, half_and_a_fen.clone())
    };
    let asked = fields(&amount);
    let asked: Vec<(&str, &str)> = asked.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let page = refund_form(again, &duplicate, &asked).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("超过可退余额"), "{}", page.body);
    let given: i64 = live_refunds_of_item(&app, &duplicate, tuition)
        .await
        .iter()
        .map(|refund| refund.amount_fen)
        .sum();
    assert!(given <= charged, "{given} of {charged}");
    assert_eq!(refund_posts(&app), 1);
}
