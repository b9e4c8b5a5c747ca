//! Orders on both backends: exclusive taking, one application per payment however
//! many copies arrive at once, release, and payments after close.

use std::sync::Arc;

use chrono::{Duration, Utc};

use super::*;
use crate::import::fees::parse_fees;
use crate::import::read::read_table_bytes;
use crate::import::students::parse_students;
use crate::store::testing::{TestStore, fresh_store};

const ID_CARD: &str = "11010519491231002X";

async fn school() -> (Arc<TestStore>, i64, Vec<i64>) {
    let store = Arc::new(fresh_store().await);
    let now = Utc::now();
    let students = "身份证号,姓名,性别,年级,班级\n11010519491231002X,张三,男,2026,汽修1班\n";
    let students = parse_students(&read_table_bytes("s.csv", students.as_bytes()).expect("reads"))
        .expect("valid");
    store
        .import_students(&students, now, true)
        .await
        .expect("students");
    let fees = "身份证号,学年,项目,金额\n11010519491231002X,2026-2027,学费,4500\n11010519491231002X,2026-2027,住宿费,1200\n";
    let fees =
        parse_fees(&read_table_bytes("f.csv", fees.as_bytes()).expect("reads")).expect("valid");
    store.import_fees(&fees, now, true).await.expect("fees");
    let student = store
        .find_student_by_id_card(ID_CARD)
        .await
        .expect("query")
        .expect("exists");
    let items = store.fee_items_of(student.id).await.expect("items");
    (
        store,
        student.id,
        items.iter().map(|item| item.id).collect(),
    )
}

fn new_order<'a>(number: &'a str, student_id: i64, items: &'a [i64]) -> NewOrder<'a> {
    let now = Utc::now();
    NewOrder {
        out_trade_no: number,
        student_id,
        channel: PaymentChannel::WechatNative,
        item_ids: items,
        payer_openid: None,
        description: "武威职业学院-2026-2027学年学费、住宿费",
        now,
        expires_at: now + Duration::minutes(15),
        request_id: Some("req-test"),
    }
}

async fn statuses(store: &Store, student_id: i64) -> Vec<FeeItemStatus> {
    store
        .fee_items_of(student_id)
        .await
        .expect("items")
        .iter()
        .map(|item| item.status)
        .collect()
}

#[tokio::test]
async fn twenty_concurrent_attempts_leave_exactly_one_order_holding_the_items() {
    let (store, student, items) = school().await;
    let mut attempts = Vec::new();
    for n in 0..20 {
        let store = store.clone();
        let items = items.clone();
        attempts.push(tokio::spawn(async move {
            let number = format!("CPTEST{n:04}");
            store
                .take_items_into_order(&new_order(&number, student, &items))
                .await
        }));
    }
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.expect("joined").expect("no database error") {
            TakeOutcome::Created(order) => {
                created += 1;
                assert_eq!(order.amount_fen, 570_000);
            }
            TakeOutcome::Unavailable | TakeOutcome::Blocked(_) | TakeOutcome::Existing(_) => {}
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        statuses(&store, student).await,
        [FeeItemStatus::InOrder, FeeItemStatus::InOrder]
    );
}

#[tokio::test]
async fn asking_again_for_the_same_items_returns_the_open_order() {
    let (store, student, items) = school().await;
    let TakeOutcome::Created(first) = store
        .take_items_into_order(&new_order("CPFIRST01", student, &items))
        .await
        .expect("ok")
    else {
        panic!("created");
    };
    let again = store
        .take_items_into_order(&new_order("CPSECOND1", student, &items))
        .await
        .expect("ok");
    assert_eq!(again, TakeOutcome::Existing(first.clone()));
    // One of them on its own is held by that order: it must be closed first.
    let blocked = store
        .take_items_into_order(&new_order("CPTHIRD01", student, &items[..1]))
        .await
        .expect("ok");
    assert_eq!(blocked, TakeOutcome::Blocked(vec![first]));
}

#[tokio::test]
async fn ten_concurrent_copies_of_a_payment_apply_it_once() {
    let (store, student, items) = school().await;
    let TakeOutcome::Created(order) = store
        .take_items_into_order(&new_order("CPPAY0001", student, &items))
        .await
        .expect("ok")
    else {
        panic!("created");
    };
    let mut copies = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        copies.push(tokio::spawn(async move {
            let report = PaymentReport {
                out_trade_no: "CPPAY0001",
                channel_trade_no: "4200000000202609010000000001",
                amount_fen: 570_000,
                paid_at: Utc::now(),
                payer_openid: None,
            };
            store.apply_payment(&report, Utc::now()).await
        }));
    }
    let mut applied = 0;
    for copy in copies {
        match copy.await.expect("joined").expect("no database error") {
            ApplyOutcome::Applied(_) => applied += 1,
            ApplyOutcome::AlreadyApplied(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(
        statuses(&store, student).await,
        [FeeItemStatus::Paid, FeeItemStatus::Paid]
    );
    let paid = store
        .find_order("CPPAY0001")
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.id, order.id);
    assert!(paid.exception.is_none());
}

#[tokio::test]
async fn a_wrong_amount_changes_nothing_but_is_noted() {
    let (store, student, items) = school().await;
    store
        .take_items_into_order(&new_order("CPWRONG01", student, &items))
        .await
        .expect("ok");
    let report = PaymentReport {
        out_trade_no: "CPWRONG01",
        channel_trade_no: "4200000000202609010000000002",
        amount_fen: 1,
        paid_at: Utc::now(),
        payer_openid: None,
    };
    let outcome = store.apply_payment(&report, Utc::now()).await.expect("ok");
    assert!(
        matches!(outcome, ApplyOutcome::AmountMismatch(ref order) if order.status == OrderStatus::Created && order.exception.is_some())
    );
    assert_eq!(
        statuses(&store, student).await,
        [FeeItemStatus::InOrder, FeeItemStatus::InOrder]
    );
    let unknown = PaymentReport {
        out_trade_no: "CPNOSUCH01",
        ..report
    };
    assert_eq!(
        store.apply_payment(&unknown, Utc::now()).await.expect("ok"),
        ApplyOutcome::UnknownOrder
    );
}

#[tokio::test]
async fn a_released_order_frees_its_items_and_a_late_payment_still_counts() {
    let (store, student, items) = school().await;
    let TakeOutcome::Created(order) = store
        .take_items_into_order(&new_order("CPLATE001", student, &items))
        .await
        .expect("ok")
    else {
        panic!("created");
    };
    assert!(store.release_order(order.id, Utc::now()).await.expect("ok"));
    assert!(
        !store.release_order(order.id, Utc::now()).await.expect("ok"),
        "only once"
    );
    assert_eq!(
        statuses(&store, student).await,
        [FeeItemStatus::Unpaid, FeeItemStatus::Unpaid]
    );

    let report = PaymentReport {
        out_trade_no: "CPLATE001",
        channel_trade_no: "4200000000202609010000000003",
        amount_fen: 570_000,
        paid_at: Utc::now(),
        payer_openid: None,
    };
    let outcome = store.apply_payment(&report, Utc::now()).await.expect("ok");
    assert!(
        matches!(outcome, ApplyOutcome::PaidAfterClose { settled: true, .. }),
        "{outcome:?}"
    );
    assert_eq!(
        statuses(&store, student).await,
        [FeeItemStatus::Paid, FeeItemStatus::Paid]
    );
    let order = store
        .find_order("CPLATE001")
        .await
        .expect("query")
        .expect("exists");
    assert!(order.exception.is_some(), "the office sees it");
}

#[tokio::test]
async fn a_late_payment_for_items_paid_since_is_kept_for_a_refund() {
    let (store, student, items) = school().await;
    let TakeOutcome::Created(first) = store
        .take_items_into_order(&new_order("CPLATE002", student, &items))
        .await
        .expect("ok")
    else {
        panic!("created");
    };
    store.release_order(first.id, Utc::now()).await.expect("ok");
    store
        .take_items_into_order(&new_order("CPLATE003", student, &items))
        .await
        .expect("ok");
    let pay = |number: &'static str, trade: &'static str| PaymentReport {
        out_trade_no: number,
        channel_trade_no: trade,
        amount_fen: 570_000,
        paid_at: Utc::now(),
        payer_openid: None,
    };
    assert!(matches!(
        store
            .apply_payment(&pay("CPLATE003", "T3"), Utc::now())
            .await
            .expect("ok"),
        ApplyOutcome::Applied(_)
    ));
    let late = store
        .apply_payment(&pay("CPLATE002", "T2"), Utc::now())
        .await
        .expect("ok");
    assert!(
        matches!(late, ApplyOutcome::PaidAfterClose { settled: false, ref order, .. } if order.status == OrderStatus::Closed && order.exception.is_some())
    );
    assert_eq!(
        statuses(&store, student).await,
        [FeeItemStatus::Paid, FeeItemStatus::Paid]
    );
}

#[test]
fn a_late_payment_is_a_duplicate_only_when_another_order_paid_the_items() {
    let item = |id: i64, status: FeeItemStatus, paid_by: Option<i64>| fee_items::Model {
        id,
        student_id: 1,
        academic_year: "2026-2027".into(),
        item: "学费".into(),
        amount_fen: 100,
        status,
        deferred_until: None,
        paid_order_id: paid_by,
        note: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    use FeeItemStatus::{Deferred, InOrder, Paid, Unpaid, Waived};
    let judge = |items: &[fee_items::Model]| judge_late_payment(7, 2, items);
    let owed = [item(1, Unpaid, None), item(2, Deferred, None)];
    assert_eq!(judge(&owed), LatePayment::Settles);
    let held = [item(1, Unpaid, None), item(2, InOrder, None)];
    assert_eq!(judge(&held), LatePayment::Held);
    let paid_elsewhere = [item(1, InOrder, None), item(2, Paid, Some(8))];
    assert_eq!(judge(&paid_elsewhere), LatePayment::Duplicate);
    let waived = [item(1, Unpaid, None), item(2, Waived, None)];
    assert_eq!(judge(&waived), LatePayment::Changed);
    assert_eq!(judge(&owed[..1]), LatePayment::Changed, "an item gone");
    assert_eq!(
        late_payment_note(LatePayment::Duplicate),
        "订单关闭后收到支付，项目已由其他订单缴清，需退款"
    );
}
