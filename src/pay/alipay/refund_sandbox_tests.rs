//! Refunds and the daily bill: our client against [`AlipaySandbox`] over loopback, real
//! signatures both ways.

use std::time::Duration;

use chrono::NaiveDate;

use super::sandbox_tests::World;
use super::*;
use crate::pay::{BillError, BillLineKind, Channel, ChannelError, RefundRequest, RefundState};
use crate::sandbox::alipay::{AlipayBillTamper, AlipayResponseTamper, methods};

const REFUND_NOTIFY: &str = "https://pay.example.edu.cn/pay/notify/alipay";

fn request<'a>(
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    refund_fen: i64,
) -> RefundRequest<'a> {
    RefundRequest {
        out_trade_no,
        out_refund_no,
        total_fen: 480_000,
        refund_fen,
        reason: "重复缴费退款",
        notify_url: REFUND_NOTIFY,
    }
}

/// A trade of 4800.00 paid in the sandbox; its Alipay trade number.
async fn paid(world: &World, number: &str) -> String {
    world.prepay(number, 480_000).await;
    world.sandbox.pay_silently(number).expect("pay").trade_no
}

fn failed_with(state: RefundState, code: &str) {
    match state {
        RefundState::Failed { reason } => assert!(reason.contains(code), "{reason}"),
        other => panic!("expected Failed with {code}, got {other:?}"),
    }
}

fn today(world: &World) -> NaiveDate {
    world
        .clock
        .now()
        .with_timezone(&crate::domain::order::beijing_offset())
        .date_naive()
}

#[tokio::test]
async fn a_refund_is_made_once_however_often_it_is_asked() {
    let world = World::start().await;
    let trade_no = paid(&world, "CP20261130R1").await;
    let asked = request("CP20261130R1", "RF20261130R1", 120_050);

    let RefundState::Succeeded {
        channel_refund_no,
        succeeded_at,
    } = world.alipay.refund(&asked).await.expect("refund")
    else {
        panic!("expected the refund to succeed");
    };
    assert_eq!(channel_refund_no, trade_no);
    assert!((world.clock.now() - succeeded_at).num_seconds().abs() < 5);
    let books = world.sandbox.refunds("CP20261130R1");
    assert_eq!(books.len(), 1);
    assert_eq!(books[0].out_request_no, "RF20261130R1");
    assert_eq!(books[0].refund_fen, 120_050);
    assert_eq!(books[0].reason.as_deref(), Some("重复缴费退款"));

    // Asked again (a retry): Alipay says fund_change N, the query says it is done.
    for _ in 0..2 {
        let again = world.alipay.refund(&asked).await.expect("again");
        assert!(matches!(again, RefundState::Succeeded { .. }), "{again:?}");
    }
    assert_eq!(world.sandbox.refunds("CP20261130R1").len(), 1);
    assert_eq!(world.sandbox.calls_to(methods::REFUND), 3);

    let queried = world
        .alipay
        .query_refund("CP20261130R1", "RF20261130R1")
        .await
        .expect("query");
    let RefundState::Succeeded {
        channel_refund_no,
        succeeded_at: at,
    } = queried
    else {
        panic!("expected the query to find it, got {queried:?}");
    };
    assert_eq!(channel_refund_no, trade_no);
    assert_eq!(at.timestamp(), books[0].refunded_at.timestamp());
    // A number Alipay never saw, on a trade it knows and on one it does not.
    assert_eq!(
        world
            .alipay
            .query_refund("CP20261130R1", "RF20261130ZZ")
            .await
            .expect("query"),
        RefundState::NotFound
    );
    assert_eq!(
        world
            .alipay
            .query_refund("CP20261130NONE", "RF20261130R1")
            .await
            .expect("query"),
        RefundState::NotFound
    );
    // Partly refunded, the trade is still paid.
    assert!(matches!(
        world.alipay.query("CP20261130R1").await.expect("query"),
        ChannelState::Paid(_)
    ));
}

#[tokio::test]
async fn refunds_alipay_refuses_fail_with_its_code() {
    let world = World::start().await;
    paid(&world, "CP20261130R2").await;
    let first = request("CP20261130R2", "RF20261130A", 300_000);
    assert!(matches!(
        world.alipay.refund(&first).await.expect("refund"),
        RefundState::Succeeded { .. }
    ));
    // More than what is left (1800.00).
    let over = request("CP20261130R2", "RF20261130B", 180_001);
    failed_with(
        world.alipay.refund(&over).await.expect("answer"),
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
    );
    // The same refund number for another amount.
    let changed = request("CP20261130R2", "RF20261130A", 100);
    failed_with(
        world.alipay.refund(&changed).await.expect("answer"),
        "ACQ.CONTEXT_INCONSISTENT",
    );
    assert_eq!(world.sandbox.refunds("CP20261130R2").len(), 1);
    // A trade scanned, not paid.
    world.prepay("CP20261130R3", 480_000).await;
    world.sandbox.scan("CP20261130R3").expect("scan");
    failed_with(
        world
            .alipay
            .refund(&request("CP20261130R3", "RF20261130C", 100))
            .await
            .expect("answer"),
        "ACQ.TRADE_STATUS_ERROR",
    );
    // The rest, exactly: refunded in full, Alipay closes the trade.
    let rest = request("CP20261130R2", "RF20261130D", 180_000);
    assert!(matches!(
        world.alipay.refund(&rest).await.expect("refund"),
        RefundState::Succeeded { .. }
    ));
    assert_eq!(
        world.alipay.query("CP20261130R2").await.expect("query"),
        ChannelState::Closed
    );
    failed_with(
        world
            .alipay
            .refund(&request("CP20261130R2", "RF20261130E", 1))
            .await
            .expect("answer"),
        "ACQ.REASON_TRADE_REFUND_FEE_ERR",
    );
    // Refused before sending: nothing for Alipay to refuse.
    let too_much = RefundRequest {
        total_fen: 100,
        ..request("CP20261130R2", "RF20261130F", 200)
    };
    assert!(matches!(
        world.alipay.refund(&too_much).await,
        Err(ChannelError::Refused { .. })
    ));
}

#[tokio::test]
async fn an_untrusted_answer_is_an_unknown_outcome_that_a_query_settles() {
    let world = World::start().await;
    paid(&world, "CP20261130R4").await;
    let asked = request("CP20261130R4", "RF20261130U", 100);

    // SYSTEM_ERROR: nothing happened, but we cannot know that.
    world
        .sandbox
        .fail_next(methods::REFUND, "40004", "ACQ.SYSTEM_ERROR", 1);
    assert!(matches!(
        world.alipay.refund(&asked).await,
        Err(ChannelError::OutcomeUnknown(_))
    ));
    assert!(world.sandbox.refunds("CP20261130R4").is_empty());
    assert_eq!(
        world
            .alipay
            .query_refund("CP20261130R4", "RF20261130U")
            .await
            .expect("query"),
        RefundState::NotFound
    );

    // A forged answer: the refund was made, the answer is not believed.
    world
        .sandbox
        .tamper_next_responses(methods::REFUND, AlipayResponseTamper::BadSignature, 1);
    assert!(matches!(
        world.alipay.refund(&asked).await,
        Err(ChannelError::OutcomeUnknown(_))
    ));
    assert_eq!(world.sandbox.refunds("CP20261130R4").len(), 1);
    assert!(matches!(
        world
            .alipay
            .query_refund("CP20261130R4", "RF20261130U")
            .await
            .expect("query"),
        RefundState::Succeeded { .. }
    ));
    // The retry with the same number is the same refund.
    assert!(matches!(
        world.alipay.refund(&asked).await.expect("retry"),
        RefundState::Succeeded { .. }
    ));
    assert_eq!(world.sandbox.refunds("CP20261130R4").len(), 1);

    world
        .sandbox
        .tamper_next_responses(methods::REFUND_QUERY, AlipayResponseTamper::Edited, 1);
    assert!(matches!(
        world
            .alipay
            .query_refund("CP20261130R4", "RF20261130U")
            .await,
        Err(ChannelError::OutcomeUnknown(_))
    ));
}

/// Two payments and a refund today; the clock then moves to tomorrow, when
/// today's bill exists.
async fn a_day_of_trades(world: &World) -> (NaiveDate, String, String) {
    let first = paid(world, "CP20261130B1").await;
    world.prepay("CP20261130B2", 100).await;
    let second = world
        .sandbox
        .pay_silently("CP20261130B2")
        .expect("pay")
        .trade_no;
    world.prepay("CP20261130B3", 100).await; // never paid: not in the bill
    let refund = RefundRequest {
        total_fen: 480_000,
        ..request("CP20261130B1", "RF20261130B1", 120_050)
    };
    assert!(matches!(
        world.alipay.refund(&refund).await.expect("refund"),
        RefundState::Succeeded { .. }
    ));
    let day = today(world);
    world.clock.advance(Duration::from_secs(24 * 3600));
    (day, first, second)
}

#[tokio::test]
async fn a_days_bill_lists_its_payments_and_refunds() {
    let world = World::start().await;
    // Nothing yet, and nothing for today before the day is over.
    assert!(matches!(
        world.alipay.bill(today(&world)).await,
        Err(BillError::NoBill)
    ));
    let (day, first, second) = a_day_of_trades(&world).await;
    let lines = world.alipay.bill(day).await.expect("bill");
    let seen: Vec<(&str, &str, &BillLineKind, i64)> = lines
        .iter()
        .map(|line| {
            (
                line.out_trade_no.as_str(),
                line.channel_trade_no.as_str(),
                &line.kind,
                line.amount_fen,
            )
        })
        .collect();
    let refund = BillLineKind::Refund {
        out_refund_no: "RF20261130B1".into(),
    };
    assert_eq!(
        seen,
        vec![
            (
                "CP20261130B1",
                first.as_str(),
                &BillLineKind::Payment,
                480_000
            ),
            ("CP20261130B2", second.as_str(), &BillLineKind::Payment, 100),
            ("CP20261130B1", first.as_str(), &refund, 120_050),
        ]
    );
    let paid_at = world
        .sandbox
        .transaction("CP20261130B1")
        .and_then(|trade| trade.paid_at)
        .expect("paid");
    assert_eq!(lines[0].at.timestamp(), paid_at.timestamp());
    // The day before: no trades, no bill. Today (the new day): none yet.
    let before = day.pred_opt().expect("a day before");
    assert!(matches!(
        world.alipay.bill(before).await,
        Err(BillError::NoBill)
    ));
    assert!(matches!(
        world.alipay.bill(today(&world)).await,
        Err(BillError::NoBill)
    ));
}

#[tokio::test]
async fn the_sandboxs_tampered_bills_show_up_or_are_refused() {
    let world = World::start().await;
    let (day, _, _) = a_day_of_trades(&world).await;

    world.sandbox.tamper_bills(AlipayBillTamper::ExtraPayment {
        out_trade_no: "CP20261130XX".into(),
        amount_fen: 4_500,
    });
    world.sandbox.tamper_bills(AlipayBillTamper::PaymentAmount {
        out_trade_no: "CP20261130B2".into(),
        amount_fen: 200,
    });
    let lines = world.alipay.bill(day).await.expect("still a good bill");
    let amount_of = |number: &str| {
        lines
            .iter()
            .find(|line| line.out_trade_no == number && line.kind == BillLineKind::Payment)
            .map(|line| line.amount_fen)
    };
    assert_eq!(amount_of("CP20261130XX"), Some(4_500));
    assert_eq!(amount_of("CP20261130B2"), Some(200));
    assert_eq!(lines.len(), 4);

    for (tamper, expected) in [
        (AlipayBillTamper::BrokenZip, "not a ZIP"),
        (AlipayBillTamper::NoDetailFile, "no 业务明细 file"),
        (AlipayBillTamper::WrongSummary, "summary"),
        (AlipayBillTamper::UnreadableLine, "订单金额"),
    ] {
        world.sandbox.clear_bill_tampers();
        world.sandbox.tamper_bills(tamper.clone());
        match world.alipay.bill(day).await {
            Err(BillError::Corrupt(message)) => {
                assert!(message.contains(expected), "{tamper:?}: {message}");
            }
            other => panic!("{tamper:?}: expected Corrupt, got {other:?}"),
        }
    }

    // An answer that cannot be believed is not a bill.
    world.sandbox.clear_bill_tampers();
    world
        .sandbox
        .tamper_next_responses(methods::BILL_URL, AlipayResponseTamper::Unsigned, 1);
    assert!(matches!(
        world.alipay.bill(day).await,
        Err(BillError::Channel(ChannelError::OutcomeUnknown(_)))
    ));
    assert_eq!(world.alipay.bill(day).await.expect("bill").len(), 3);
}
