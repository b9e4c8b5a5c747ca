//! Our Alipay client against [`AlipaySandbox`] over loopback HTTP: real signatures both
//! ways, the sandbox's own crypto on the other side.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use chrono::TimeDelta;
use secrecy::ExposeSecret;
use url::Url;

use super::*;
use crate::config::Variables;
use crate::pay::{Channel, ChannelError, ChannelState, Closed, Prepaid, PrepayOrder};
use crate::sandbox::alipay::{
    ALIPAY_PUBLIC_KEY_PEM, APP_PRIVATE_KEY_PEM, AlipayResponseTamper, AlipaySandbox, AlipayTamper,
    SANDBOX_APP_ID, SandboxTradeStatus, methods, sub_codes,
};

const NOTIFY_URL: &str = "https://pay.example.edu.cn/pay/notify/alipay";

pub(super) struct World {
    pub(super) sandbox: AlipaySandbox,
    pub(super) alipay: Alipay,
    pub(super) clock: Clock,
}

fn client_for(gateway: Url, app_id: &str, app_key_pem: &str, clock: &Clock) -> AlipayClient {
    AlipayClient::new(AlipayClientConfig {
        gateway,
        app_id: app_id.to_owned(),
        app_key: AppPrivateKey::from_pem(app_key_pem).expect("app key"),
        alipay_key: AlipayPublicKey::from_pem(ALIPAY_PUBLIC_KEY_PEM).expect("alipay key"),
        timeout: Duration::from_secs(5),
        clock: clock.clone(),
    })
    .expect("client")
}

impl World {
    pub(super) async fn start() -> World {
        let clock = Clock::system();
        let sandbox = AlipaySandbox::spawn(SANDBOX_APP_ID, clock.clone())
            .await
            .expect("sandbox");
        let client = client_for(
            sandbox.base_url(),
            SANDBOX_APP_ID,
            APP_PRIVATE_KEY_PEM,
            &clock,
        );
        World {
            sandbox,
            alipay: Alipay::new(client, clock.clone()),
            clock,
        }
    }

    pub(super) fn order<'a>(&self, number: &'a str, amount_fen: i64) -> PrepayOrder<'a> {
        PrepayOrder {
            kind: PaymentChannel::Alipay,
            out_trade_no: number,
            description: "武威职业学院-2024学年学费、住宿费",
            amount_fen,
            expires_at: self.clock.now() + TimeDelta::minutes(15),
            notify_url: NOTIFY_URL,
            payer_openid: None,
        }
    }

    pub(super) async fn prepay(&self, number: &str, amount_fen: i64) -> String {
        match self.alipay.prepay(&self.order(number, amount_fen)).await {
            Ok(Prepaid::QrCode(code)) => code,
            other => panic!("expected a QR code, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn precreate_pay_and_query_round_trip() {
    let world = World::start().await;
    let order = world.order("CP20240615A1", 120_050);
    let Ok(Prepaid::QrCode(code)) = world.alipay.prepay(&order).await else {
        panic!("expected a QR code");
    };
    assert!(code.starts_with("https://qr.alipay.com/"), "{code}");
    let trade = world
        .sandbox
        .transaction("CP20240615A1")
        .expect("precreated");
    assert_eq!(trade.qr_code, code);
    assert_eq!(trade.total_amount, "1200.50");
    assert_eq!(trade.subject, "武威职业学院-2024学年学费、住宿费");
    assert_eq!(trade.notify_url.as_deref(), Some(NOTIFY_URL));
    assert_eq!(
        trade.time_expire.as_deref(),
        Some(beijing_time(order.expires_at).as_str())
    );
    // The same order again, even late in its life: the same code.
    let order = world.order("CP20240615A2", 100);
    let first = world.alipay.prepay(&order).await.expect("prepay");
    world.clock.advance(Duration::from_secs(14 * 60 + 30));
    assert_eq!(world.alipay.prepay(&order).await.expect("again"), first);

    // Not scanned: Alipay has no trade yet.
    assert_eq!(
        world.alipay.query("CP20240615A1").await.expect("query"),
        ChannelState::NotFound
    );
    world.sandbox.scan("CP20240615A1").expect("scan");
    assert_eq!(
        world.alipay.query("CP20240615A1").await.expect("query"),
        ChannelState::Unpaid
    );
    let paid = world.sandbox.pay_silently("CP20240615A1").expect("pay");
    let ChannelState::Paid(payment) = world.alipay.query("CP20240615A1").await.expect("query")
    else {
        panic!("expected paid");
    };
    assert_eq!(payment.amount_fen, 120_050);
    assert_eq!(payment.channel_trade_no, paid.trade_no);
    assert_eq!(payment.paid_at.timestamp(), paid.gmt_payment.timestamp());
    assert_eq!(payment.payer_openid, None);

    // Too late to close: Alipay says TRADE_STATUS_ERROR, a query says paid.
    assert_eq!(
        world.alipay.close("CP20240615A1").await.expect("close"),
        Closed::AlreadyPaid
    );
    // Paid: a new precreate for it is refused with Alipay's sub_code.
    match world
        .alipay
        .prepay(&world.order("CP20240615A1", 120_050))
        .await
    {
        Err(ChannelError::AlreadyPaid { code, .. }) => assert_eq!(code, "ACQ.TRADE_HAS_SUCCESS"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(world.sandbox.calls_to(methods::QUERY), 4);
}

#[tokio::test]
async fn closing_before_and_after_the_scan() {
    let world = World::start().await;
    world.prepay("CP20240615B1", 100).await;
    // Before the scan: ACQ.TRADE_NOT_EXIST, read as closed (the items are released),
    // though Alipay promises nothing about the code: it may still be paid, and that
    // payment then comes in as a late one (tests/api/sandboxes.rs).
    assert_eq!(
        world.alipay.close("CP20240615B1").await.expect("close"),
        Closed::Closed
    );
    assert_eq!(
        world.alipay.query("CP20240615B1").await.expect("query"),
        ChannelState::NotFound
    );
    world
        .sandbox
        .pay_silently("CP20240615B1")
        .expect("still payable");
    assert!(matches!(
        world.alipay.query("CP20240615B1").await.expect("query"),
        ChannelState::Paid(_)
    ));

    world.prepay("CP20240615B2", 100).await;
    world.sandbox.scan("CP20240615B2").expect("scan");
    assert_eq!(
        world.alipay.close("CP20240615B2").await.expect("close"),
        Closed::Closed
    );
    assert_eq!(
        world
            .sandbox
            .transaction("CP20240615B2")
            .expect("trade")
            .status,
        SandboxTradeStatus::TradeClosed
    );
    assert_eq!(
        world.alipay.query("CP20240615B2").await.expect("query"),
        ChannelState::Closed
    );
    // Closing again: TRADE_STATUS_ERROR, and the query says closed.
    assert_eq!(
        world.alipay.close("CP20240615B2").await.expect("close"),
        Closed::Closed
    );
    // Never precreated.
    assert_eq!(
        world.alipay.close("CP20240615B9").await.expect("close"),
        Closed::Closed
    );
    // Expired after the scan: Alipay closed it itself.
    world.prepay("CP20240615B3", 100).await;
    world.sandbox.scan("CP20240615B3").expect("scan");
    world.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        world.alipay.close("CP20240615B3").await.expect("close"),
        Closed::Closed
    );
}

#[tokio::test]
async fn prepay_refusals() {
    let world = World::start().await;
    let mut wrong = world.order("CP20240615C1", 100);
    wrong.kind = PaymentChannel::WechatNative;
    assert!(matches!(
        world.alipay.prepay(&wrong).await,
        Err(ChannelError::Refused { code, .. }) if code == "WRONG_CHANNEL"
    ));
    // Checked before sending.
    for order in [
        world.order("CP20240615C1", 0),
        world.order("CP-20240615", 100),
        PrepayOrder {
            description: " ",
            ..world.order("CP20240615C1", 100)
        },
    ] {
        assert!(matches!(
            world.alipay.prepay(&order).await,
            Err(ChannelError::Refused { code, .. }) if code == "REFUSED"
        ));
    }
    assert_eq!(world.sandbox.calls_to(methods::PRECREATE), 0);
    // Refused by Alipay: the sub_code is the code.
    let past = PrepayOrder {
        expires_at: world.clock.now() - TimeDelta::minutes(1),
        ..world.order("CP20240615C2", 100)
    };
    assert!(matches!(
        world.alipay.prepay(&past).await,
        Err(ChannelError::Refused { code, .. }) if code == sub_codes::ACQ_INVALID_PARAMETER
    ));
    world.prepay("CP20240615C3", 100).await;
    assert!(matches!(
        world.alipay.prepay(&world.order("CP20240615C3", 101)).await,
        Err(ChannelError::Refused { code, .. }) if code == sub_codes::CONTEXT_INCONSISTENT
    ));
}

#[tokio::test]
async fn answers_that_cannot_be_believed_leave_the_outcome_unknown() {
    let world = World::start().await;
    // The precreate took effect at Alipay, its answer cannot be believed.
    for tamper in [
        AlipayResponseTamper::BadSignature,
        AlipayResponseTamper::Unsigned,
        AlipayResponseTamper::Edited,
    ] {
        world
            .sandbox
            .tamper_next_responses(methods::PRECREATE, tamper, 1);
        assert!(
            matches!(
                world.alipay.prepay(&world.order("CP20240615D1", 100)).await,
                Err(ChannelError::OutcomeUnknown(_))
            ),
            "{tamper:?}"
        );
    }
    assert!(world.sandbox.transaction("CP20240615D1").is_some());
    world.sandbox.pay_silently("CP20240615D1").expect("pay");
    world
        .sandbox
        .tamper_next_responses(methods::QUERY, AlipayResponseTamper::Edited, 1);
    assert!(matches!(
        world.alipay.query("CP20240615D1").await,
        Err(ChannelError::OutcomeUnknown(_))
    ));
    assert!(matches!(
        world.alipay.query("CP20240615D1").await,
        Ok(ChannelState::Paid(_))
    ));
    // Alipay's "try again" answers are unknown outcomes too.
    for (code, sub_code) in [("20000", "isp.unknow-error"), ("40004", "ACQ.SYSTEM_ERROR")] {
        world.sandbox.fail_next(methods::CLOSE, code, sub_code, 1);
        assert!(matches!(
            world.alipay.close("CP20240615D1").await,
            Err(ChannelError::OutcomeUnknown(message)) if message.contains(sub_code)
        ));
    }
    // Nobody there.
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("port");
    let dead = Url::parse(&format!(
        "http://{}/gateway.do",
        listener.local_addr().expect("address")
    ))
    .expect("url");
    drop(listener);
    let nowhere = Alipay::new(
        client_for(dead, SANDBOX_APP_ID, APP_PRIVATE_KEY_PEM, &world.clock),
        world.clock.clone(),
    );
    assert!(matches!(
        nowhere.query("CP20240615D1").await,
        Err(ChannelError::OutcomeUnknown(_))
    ));
    // Another app id: the gateway answers unsigned, which is not believed.
    let stranger = Alipay::new(
        client_for(
            world.sandbox.base_url(),
            "2021000000000009",
            APP_PRIVATE_KEY_PEM,
            &world.clock,
        ),
        world.clock.clone(),
    );
    assert!(matches!(
        stranger.query("CP20240615D1").await,
        Err(ChannelError::OutcomeUnknown(message)) if message.contains("sign")
    ));
    // Our key is not the one Alipay knows: a verified refusal.
    let wrong_key = Alipay::new(
        client_for(
            world.sandbox.base_url(),
            SANDBOX_APP_ID,
            super::sign::tests::SANDBOX_ALIPAY_PRIVATE_PEM,
            &world.clock,
        ),
        world.clock.clone(),
    );
    assert!(matches!(
        wrong_key.query("CP20240615D1").await,
        Err(ChannelError::Refused { code, .. }) if code == "isv.invalid-signature"
    ));
}

/// Our notification endpoint, reduced to handing the body to `read_notification`
/// and answering what it says.
struct Endpoint {
    url: String,
    verdicts: Arc<Mutex<Vec<Result<AlipayNotice, AlipayNotificationRefused>>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start(alipay: Arc<Alipay>, clock: Clock) -> Endpoint {
        let verdicts: Arc<Mutex<Vec<_>>> = Arc::default();
        let app = Router::new().route(
            "/pay/notify/alipay",
            post({
                let verdicts = verdicts.clone();
                move |body: axum::body::Bytes| async move {
                    let verdict = alipay.read_notification(&body, clock.now());
                    let answer = match &verdict {
                        Ok(_) => "success",
                        Err(refused) => refused.answer(),
                    };
                    verdicts.lock().expect("lock").push(verdict);
                    answer
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let url = format!(
            "http://{}/pay/notify/alipay",
            listener.local_addr().expect("address")
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Endpoint {
            url,
            verdicts,
            server,
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn the_sandboxs_notifications_verify_and_tampered_ones_are_refused() {
    let world = World::start().await;
    let order = world.order("CP20240615E1", 120_050);
    let World {
        sandbox,
        alipay,
        clock,
    } = world;
    let alipay = Arc::new(alipay);
    let endpoint = Endpoint::start(alipay.clone(), clock.clone()).await;
    let order = PrepayOrder {
        notify_url: &endpoint.url,
        ..order
    };
    alipay.prepay(&order).await.expect("prepay");
    sandbox.set_notification_copies(3);
    let paid = sandbox.pay("CP20240615E1").await.expect("pay");
    assert_eq!(
        paid.notification_answers,
        vec![(200, "success".to_owned()); 3]
    );
    {
        let verdicts = endpoint.verdicts.lock().expect("lock");
        assert_eq!(verdicts.len(), 3);
        for verdict in verdicts.iter() {
            let notice = verdict.as_ref().expect("accepted");
            assert_eq!(notice.out_trade_no, "CP20240615E1");
            assert_eq!(notice.trade_no, paid.trade_no);
            assert_eq!(notice.total_amount_fen, 120_050);
            assert_eq!(notice.trade_status, TradeStatus::TradeSuccess);
            assert_eq!(notice.app_id, SANDBOX_APP_ID);
            assert_eq!(notice.paid_at.timestamp(), paid.gmt_payment.timestamp());
            assert_eq!(
                notice.buyer_id.as_deref(),
                Some(crate::sandbox::alipay::BUYER_ID)
            );
        }
    }

    let now = clock.now();
    let read = |tamper| {
        let body = sandbox
            .notification_for("CP20240615E1", tamper)
            .expect("notification");
        alipay.read_notification(body.as_bytes(), now)
    };
    assert!(read(AlipayTamper::None).is_ok());
    // Genuinely signed: the amount check against the order is the caller's.
    assert_eq!(
        read(AlipayTamper::WrongAmount("0.01".into()))
            .expect("signed")
            .total_amount_fen,
        1
    );
    assert_eq!(
        read(AlipayTamper::UnknownOrder("CP20240615ZZ".into()))
            .expect("signed")
            .out_trade_no,
        "CP20240615ZZ"
    );
    let refused = read(AlipayTamper::WrongAppId).expect_err("not ours");
    assert!(matches!(refused, AlipayNotificationRefused::NotOurs(_)));
    assert_eq!((refused.answer(), refused.label()), ("fail", "not_ours"));
    let refused = read(AlipayTamper::BadSignature).expect_err("forged");
    assert_eq!(refused, AlipayNotificationRefused::BadSignature);
    let refused = read(AlipayTamper::TradeStatus("TRADE_CLOSED".into())).expect_err("closed");
    assert!(refused.acknowledge());
    assert_eq!(refused.answer(), "success");
}

#[test]
fn from_config_reads_the_sandbox_settings_and_names_bad_keys() {
    let dir = std::env::temp_dir().join(format!("campus-pay-alipay-{}", uuid::Uuid::new_v4()));
    let settings = crate::sandbox::merchant::alipay_settings("http://127.0.0.1:9/gateway.do", &dir)
        .expect("settings");
    let pairs =
        |settings: &[(&'static str, String)]| -> Vec<(&'static str, String)> { settings.to_vec() };
    let config_of = |settings: &[(&'static str, String)]| {
        let vars = Variables::from_pairs(settings.iter().map(|(k, v)| (*k, v.as_str())));
        Config::from_variables(&vars).expect("config")
    };
    let config = config_of(&settings);
    assert_eq!(
        config.alipay.as_ref().expect("alipay").appid,
        SANDBOX_APP_ID
    );
    assert!(
        config
            .alipay
            .as_ref()
            .expect("alipay")
            .private_key_pem
            .expose_secret()
            .contains("PRIVATE KEY")
    );
    let alipay = Alipay::from_config(&config, Clock::system())
        .expect("usable")
        .expect("configured");
    assert_eq!(alipay.app_id(), SANDBOX_APP_ID);
    assert!(
        Alipay::from_config(&config_of(&[]), Clock::system())
            .expect("ok")
            .is_none()
    );

    // The app's own public key where Alipay's belongs.
    let own = dir.join("app_public.pem");
    std::fs::write(&own, super::sign::tests::SANDBOX_APP_PUBLIC_PEM).expect("write");
    let mut swapped = pairs(&settings);
    for (name, value) in &mut swapped {
        if *name == "CAMPUSPAY_ALIPAY_PUBLIC_KEY_FILE" {
            *value = own.display().to_string();
        }
    }
    let error = Alipay::from_config(&config_of(&swapped), Clock::system())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.starts_with("CAMPUSPAY_ALIPAY_PUBLIC_KEY_FILE:") && error.contains("应用公钥"),
        "{error}"
    );
    // A private key file that holds no usable key.
    let broken = dir.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let mut swapped = pairs(&settings);
    for (name, value) in &mut swapped {
        if *name == "CAMPUSPAY_ALIPAY_PRIVATE_KEY_FILE" {
            *value = broken.display().to_string();
        }
    }
    let error = Alipay::from_config(&config_of(&swapped), Clock::system())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.starts_with("CAMPUSPAY_ALIPAY_PRIVATE_KEY_FILE:"),
        "{error}"
    );
    // An app id that is not one.
    let mut swapped = pairs(&settings);
    for (name, value) in &mut swapped {
        if *name == "CAMPUSPAY_ALIPAY_APPID" {
            *value = "wx1234".into();
        }
    }
    let error = Alipay::from_config(&config_of(&swapped), Clock::system())
        .err()
        .expect("refused")
        .to_string();
    assert!(error.starts_with("CAMPUSPAY_ALIPAY_APPID:"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
