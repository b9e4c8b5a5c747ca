//! A loopback stand-in for Alipay's OpenAPI gateway (`openapi.alipay.com/gateway.do`)
//! as a 当面付 (face-to-face, QR code) merchant app in public-key mode sees it, plus a
//! cashier page that plays the payer scanning the code with the Alipay app.
//!
//! It is Alipay's side, written from Alipay's docs and sharing nothing with our client
//! in `pay::alipay`: it verifies every request's RSA2 `sign` with the app public key
//! (应用公钥) and answers `40002 isv.invalid-signature` otherwise, signs every answer
//! and notification with its own "Alipay key" (支付宝公钥 is [`ALIPAY_PUBLIC_KEY_PEM`]),
//! escapes `/` as `\/` in its JSON as the real gateway does (so only the exact text
//! verifies), and refuses what Alipay refuses with Alipay's codes. Its crypto is a few
//! local lines on purpose: a bug in our signer cannot agree with itself here.
//!
//! What it plays, as Alipay does:
//! - the trade exists only once the code is scanned ([`AlipaySandbox::scan`], the
//!   cashier page): before that, query and close answer `ACQ.TRADE_NOT_EXIST`. Source:
//!   Alipay's engineer quoted in "支付宝扫码支付关闭订单" (腾讯云开发者社区,
//!   <https://cloud.tencent.com/developer/article/1096089>): "预下单并没有创建订单，所以
//!   根据商户订单号操作订单，比如查询或者关闭，会报错订单不存在。当用户扫码后订单才会创建，
//!   用户扫码之前二维码有效期2小时";
//! - a close that answered `ACQ.TRADE_NOT_EXIST` did nothing: the code can still be
//!   scanned and paid until it lapses. Alipay's page "alipay.trade.close(统一收单交易
//!   关闭接口)" (<https://docs.open.alipay.com/api_1/alipay.trade.close>) documents the
//!   close of an existing, unpaid trade and answers a missing one with "交易不存在"
//!   only; it promises nothing about the code. Merchants report that the real service
//!   is kinder and refuses the code afterwards ("本笔交易已关闭", V2EX thread summarised
//!   at <http://news.fishai.com.cn/news/4471614>), but that is not documented, so the
//!   app must not rely on it: [`AlipaySandbox::lock_codes_closed_before_scan`] plays
//!   that reported behaviour when a test wants it;
//! - the code can be scanned for at most two hours (same source as above), and the
//!   trade paid until its `time_expire` (`timeout_express`; 3 hours without), after
//!   which it is closed. For 扫码支付 the relative `timeout_express` counts from the
//!   scan ("如何使用timeout_express订单超时时间-参数解读系列", 支付宝技术支持,
//!   <https://developer.aliyun.com/article/707654>); the sandbox counts it from the
//!   precreate, which is stricter and what the app's absolute `time_expire` means;
//! - a precreate repeated with the same parameters gives the same code; with others,
//!   `ACQ.CONTEXT_INCONSISTENT`; once paid or closed, `ACQ.TRADE_HAS_SUCCESS` /
//!   `ACQ.TRADE_HAS_CLOSE`;
//! - closing a paid or closed trade answers `ACQ.TRADE_STATUS_ERROR` ("只有等待买家付款
//!   状态下才能发起交易关闭", the close page's error table, mirrored at
//!   <http://zhifubao.apifox.cn/api-126371943>);
//! - `trade_status` is one of `WAIT_BUYER_PAY` (交易创建，等待买家付款), `TRADE_CLOSED`
//!   (未付款交易超时关闭，或支付完成后全额退款), `TRADE_SUCCESS`, `TRADE_FINISHED`
//!   ("alipay.trade.query(统一收单线下交易查询)",
//!   <https://docs.open.alipay.com/api_1/alipay.trade.query>); the sandbox never reaches
//!   `TRADE_FINISHED` (the refund period does not end in a test);
//! - a payment sends a form-encoded, RSA2-signed `trade_status_sync` notification to
//!   the order's `notify_url`, delivered only when answered with exactly `success`,
//!   and retried on Alipay's schedule ([`NOTIFICATION_RETRIES`], "异步通知说明",
//!   <https://opendocs.alipay.com/open/270/105902>).
//!
//! - a refund (`alipay.trade.refund`) is synchronous: `fund_change` Y; the same
//!   `out_request_no` again is the same refund (`fund_change` N, nothing moves), with
//!   another amount `ACQ.CONTEXT_INCONSISTENT`; more than what is left of the payment,
//!   `ACQ.REASON_TRADE_REFUND_FEE_ERR`; without `out_request_no` only the full amount
//!   (`ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`); a trade refunded in full is `TRADE_CLOSED`.
//!   Sources: "统一收单交易退款接口" ("同一笔交易累计提交的退款金额不能超过原始交易总金额",
//!   "重试时退款请求号不能变更", mirrored at <https://zhifubao.apifox.cn/doc-3290173>)
//!   and Alipay support's "退款参数out_request_no -参数解读系列" (全额退款不传，部分退款
//!   必传; the two sub_codes; "再次调用…fund_change N", copied at
//!   <https://553668.com/manong/375725.html>). `alipay.trade.fastpay.refund.query`
//!   says `REFUND_SUCCESS` for a refund it has and leaves `refund_status` out otherwise;
//! - `alipay.data.dataservice.bill.downloadurl.query` (`trade`, a past Beijing day
//!   with payments or refunds, else `isp.bill_not_exist`) gives a link, good for 30
//!   seconds, to the day's ZIP of GBK CSV files built from what the sandbox recorded
//!   (see [`crate::sandbox::alipay_bills`]; [`AlipaySandbox::tamper_bills`] spoils it).
//!
//! Test hooks: duplicate notifications ([`AlipaySandbox::set_notification_copies`]),
//! lost ones ([`AlipaySandbox::pay_silently`]), retries, forged and modified ones
//! ([`AlipayTamper`]), answers whose signature fails ([`AlipayResponseTamper`]) and
//! injected failures ([`AlipaySandbox::fail_next`]).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use maud::{DOCTYPE, Markup, html};
use rand::RngExt;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::clock::Clock;
pub use crate::sandbox::alipay_bills::AlipayBillTamper;
use crate::sandbox::alipay_bills::{BillEntry, bill_zip};

/// The demo school's app private key (应用私钥), published: sandbox and tests only.
pub const APP_PRIVATE_KEY_PEM: &str = include_str!("keys/alipay_app_private_key.pem");

/// The public half of the key the sandbox signs with (its 支付宝公钥); campus-pay
/// verifies answers and notifications with it.
pub const ALIPAY_PUBLIC_KEY_PEM: &str = include_str!("keys/alipay_public_key.pem");

const APP_PUBLIC_KEY_PEM: &str = include_str!("keys/alipay_app_public_key.pem");
const ALIPAY_PRIVATE_KEY_PEM: &str = include_str!("keys/alipay_private_key.pem");

/// An app id in the form of Alipay's sandbox apps (16 digits, `9021…`), for the demo.
pub const SANDBOX_APP_ID: &str = "9021000140651234";
/// The seller (the school's Alipay account), `2088…` like every Alipay user id.
pub const SELLER_ID: &str = "2088721000000001";
/// Another merchant's PID, for notifications about a trade that is not ours.
pub const OTHER_SELLER_ID: &str = "2088721000000002";
pub const SELLER_EMAIL: &str = "finance@sandbox-college.example";
/// Who pays in the cashier or through [`AlipaySandbox::pay`].
pub const BUYER_ID: &str = "2088102000000001";
pub const BUYER_LOGON_ID: &str = "stu***@example.com";

pub const GATEWAY_PATH: &str = "/gateway.do";
/// The cashier page (GET scans and shows it, POST pays).
pub const CASHIER_PATH: &str = "/sandbox/alipay/cashier";
/// Where bill links point (Alipay's is `dwbillcenter.alipay.com/downloadBillFile.resource`).
pub const BILL_PATH: &str = "/downloadBillFile.resource";
/// Alipay: a bill link not used within 30 seconds expires.
const BILL_LINK_LIFETIME: TimeDelta = TimeDelta::seconds(30);

/// Requests whose `timestamp` is further than this from the sandbox's clock are
/// refused (the sandbox's choice; Alipay documents no figure).
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);
/// Alipay: "二维码最长有效期是2小时".
const MAX_QR_LIFETIME: TimeDelta = TimeDelta::hours(2);
/// Alipay: 当面付's default `timeout_express` is 3h.
const DEFAULT_TRADE_LIFETIME: TimeDelta = TimeDelta::hours(3);
/// `time_expire` / `timeout_express` range: 1m to 15d.
const MIN_TRADE_LIFETIME: TimeDelta = TimeDelta::minutes(1);
const MAX_TRADE_LIFETIME: TimeDelta = TimeDelta::days(15);
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Alipay's retries of a notification not answered `success`: "25 小时以内完成 8 次通知
/// (通知的间隔频率一般是：4m,10m,10m,1h,2h,6h,15h)" (支付宝 "异步通知说明",
/// <https://opendocs.alipay.com/open/270/105902>).
pub const NOTIFICATION_RETRIES: [Duration; 7] = [
    Duration::from_secs(4 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(15 * 3600),
];
const LOWER_ALPHANUMERIC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";

/// The API methods the sandbox serves; [`AlipaySandbox::calls_to`] and friends take
/// these names.
pub mod methods {
    pub const PRECREATE: &str = "alipay.trade.precreate";
    pub const QUERY: &str = "alipay.trade.query";
    pub const CLOSE: &str = "alipay.trade.close";
    pub const REFUND: &str = "alipay.trade.refund";
    pub const REFUND_QUERY: &str = "alipay.trade.fastpay.refund.query";
    pub const BILL_URL: &str = "alipay.data.dataservice.bill.downloadurl.query";
    pub const ALL: [&str; 6] = [PRECREATE, QUERY, CLOSE, REFUND, REFUND_QUERY, BILL_URL];
}

/// `code`s of Alipay's public error table (公共错误码).
pub mod codes {
    pub const SUCCESS: &str = "10000";
    pub const UNAVAILABLE: &str = "20000";
    pub const MISSING_ARGUMENTS: &str = "40001";
    pub const INVALID_ARGUMENTS: &str = "40002";
    pub const BUSINESS_FAILED: &str = "40004";
}

/// `sub_code`s the sandbox answers with, as Alipay spells them.
pub mod sub_codes {
    pub const MISSING_METHOD: &str = "isv.missing-method";
    pub const MISSING_SIGNATURE: &str = "isv.missing-signature";
    pub const MISSING_SIGNATURE_TYPE: &str = "isv.missing-signature-type";
    pub const MISSING_APP_ID: &str = "isv.missing-app-id";
    pub const MISSING_TIMESTAMP: &str = "isv.missing-timestamp";
    pub const MISSING_VERSION: &str = "isv.missing-version";
    pub const INVALID_PARAMETER: &str = "isv.invalid-parameter";
    pub const INVALID_METHOD: &str = "isv.invalid-method";
    pub const INVALID_FORMAT: &str = "isv.invalid-format";
    pub const INVALID_SIGNATURE_TYPE: &str = "isv.invalid-signature-type";
    pub const INVALID_SIGNATURE: &str = "isv.invalid-signature";
    pub const INVALID_APP_ID: &str = "isv.invalid-app-id";
    pub const INVALID_TIMESTAMP: &str = "isv.invalid-timestamp";
    pub const INVALID_CHARSET: &str = "isv.invalid-charset";
    pub const ACQ_INVALID_PARAMETER: &str = "ACQ.INVALID_PARAMETER";
    pub const CONTEXT_INCONSISTENT: &str = "ACQ.CONTEXT_INCONSISTENT";
    pub const TRADE_HAS_SUCCESS: &str = "ACQ.TRADE_HAS_SUCCESS";
    pub const TRADE_HAS_CLOSE: &str = "ACQ.TRADE_HAS_CLOSE";
    pub const TRADE_NOT_EXIST: &str = "ACQ.TRADE_NOT_EXIST";
    pub const TRADE_STATUS_ERROR: &str = "ACQ.TRADE_STATUS_ERROR";
    pub const SYSTEM_ERROR: &str = "ACQ.SYSTEM_ERROR";
    pub const UNKNOWN_ERROR: &str = "isp.unknow-error";
    pub const REFUND_FEE_ERR: &str = "ACQ.REASON_TRADE_REFUND_FEE_ERR";
    pub const REFUND_AMT_NOT_EQUAL_TOTAL: &str = "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL";
    pub const BILL_NOT_EXIST: &str = "isp.bill_not_exist";
}

/// Where a precreated order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxTradeStatus {
    /// Precreated, code not scanned yet: there is no trade at Alipay.
    NotScanned,
    WaitBuyerPay,
    TradeSuccess,
    /// Closed by `alipay.trade.close` or by expiry (before or after the scan).
    TradeClosed,
}

impl SandboxTradeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxTradeStatus::NotScanned => "NOT_SCANNED",
            SandboxTradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            SandboxTradeStatus::TradeSuccess => "TRADE_SUCCESS",
            SandboxTradeStatus::TradeClosed => "TRADE_CLOSED",
        }
    }
}

/// An order as the sandbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipaySandboxTrade {
    pub out_trade_no: String,
    pub status: SandboxTradeStatus,
    pub app_id: String,
    pub subject: String,
    /// Yuan, as the precreate sent it.
    pub total_amount: String,
    pub total_fen: i64,
    pub notify_url: Option<String>,
    /// As the precreate sent them.
    pub time_expire: Option<String>,
    pub timeout_express: Option<String>,
    pub qr_code: String,
    pub created_at: DateTime<Utc>,
    /// The code cannot be scanned from then on (two hours at most).
    pub scan_before: DateTime<Utc>,
    /// The trade cannot be paid from then on.
    pub pay_before: DateTime<Utc>,
    /// Assigned when the code is scanned (the trade is created then): 28 digits.
    pub trade_no: Option<String>,
    pub scanned_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub buyer_id: Option<String>,
    /// The same for every copy and retry of the payment's notification.
    pub notify_id: Option<String>,
}

/// A refund the sandbox made (once per `out_request_no`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipaySandboxRefund {
    pub out_request_no: String,
    pub refund_fen: i64,
    pub reason: Option<String>,
    pub refunded_at: DateTime<Utc>,
}

/// One request to the gateway, refused ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The `method` parameter (empty when missing).
    pub method: String,
    /// Query and form parameters together, as decoded.
    pub params: Vec<(String, String)>,
    pub code: String,
    pub sub_code: Option<String>,
}

/// What [`AlipaySandbox::pay`] and friends report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayPaid {
    pub out_trade_no: String,
    pub trade_no: String,
    pub total_amount: String,
    pub gmt_payment: DateTime<Utc>,
    /// `(status, body)` of each notification attempt made before returning; status
    /// 0 means no HTTP answer (the body then says why).
    pub notification_answers: Vec<(u16, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlipayPayError {
    #[error("the sandbox has no order {0}")]
    UnknownOrder(String),
    #[error("order {0} is paid already")]
    AlreadyPaid(String),
    #[error("order {0} is closed")]
    Closed(String),
    #[error("order {0} expired at {1}")]
    Expired(String, DateTime<Utc>),
    #[error("order {0} is not paid, so Alipay would not notify")]
    NotPaid(String),
}

/// How [`AlipaySandbox::notification_for`] departs from what Alipay would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlipayTamper {
    /// Exactly what Alipay sends.
    None,
    /// Genuinely signed, but the amounts say this (yuan).
    WrongAmount(String),
    /// Genuinely signed, for another app (`app_id` and `auth_app_id`).
    WrongAppId,
    /// Signed with a key that is not Alipay's (the app's own).
    BadSignature,
    /// Genuinely signed, for this other out_trade_no (and a fresh trade_no).
    UnknownOrder(String),
    /// Genuinely signed, with this `trade_status` (`WAIT_BUYER_PAY`, `TRADE_CLOSED`…).
    TradeStatus(String),
    /// Genuinely signed for our app, paid to another merchant (`seller_id`).
    OtherSeller,
}

/// How [`AlipaySandbox::tamper_next_responses`] spoils an answer. The request itself
/// takes effect as usual: only its answer cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlipayResponseTamper {
    /// Signed with a key that is not Alipay's.
    BadSignature,
    /// No `sign` at all.
    Unsigned,
    /// Signed, then a member added to the signed content.
    Edited,
}

pub struct AlipaySandbox {
    base_url: Url,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl AlipaySandbox {
    /// A gateway at loopback for the app `app_id` (its keys are the sandbox keys).
    pub async fn spawn(app_id: &str, clock: Clock) -> std::io::Result<Self> {
        if app_id.is_empty() || !app_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an Alipay app id is digits",
            ));
        }
        LazyLock::force(&KEYS);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(NOTIFICATION_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{address}/")).map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            app_id: app_id.to_owned(),
            clock: clock.split_off(),
            http,
            state: Mutex::new(GatewayState::default()),
            background: Mutex::new(JoinSet::new()),
        });
        let app = Router::new()
            .route(GATEWAY_PATH, post(gateway))
            .route(CASHIER_PATH, get(cashier_page).post(cashier_pay))
            .route(BILL_PATH, get(download_bill))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the Alipay sandbox stopped");
            }
        });
        Ok(Self {
            base_url,
            shared,
            server,
        })
    }

    /// Plays what merchants report and Alipay does not document: a close answered
    /// `ACQ.TRADE_NOT_EXIST` (before the scan) also makes the code unpayable
    /// ("本笔交易已关闭" when it is scanned later). Off by default: the app must cope
    /// with the documented worst case, a code that stays payable.
    pub fn lock_codes_closed_before_scan(&self, lock: bool) {
        self.shared.state().lock_codes_closed_before_scan = lock;
    }

    /// Sets Alipay's clock this far ahead of the app's (negative: behind): its
    /// `timestamp`s, `notify_time`s, `gmt_payment`s and its check of our requests'
    /// `timestamp` all use it.
    pub fn set_clock_skew(&self, skew: TimeDelta) {
        self.shared.clock.set_skew(skew);
    }

    /// The gateway URL to configure (`CAMPUSPAY_ALIPAY_GATEWAY`), `…/gateway.do`.
    pub fn base_url(&self) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(GATEWAY_PATH);
        url
    }

    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }

    /// The cashier for a precreated code (what scanning the PC page's QR code with
    /// the Alipay app stands for); `return_to` becomes the link shown after paying.
    pub fn cashier_url(&self, qr_code: &str, return_to: Option<&str>) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(CASHIER_PATH);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("qr_code", qr_code);
            if let Some(return_to) = return_to {
                query.append_pair("return_to", return_to);
            }
        }
        url
    }

    /// As if the payer scanned the code: the trade now exists (WAIT_BUYER_PAY).
    pub fn scan(&self, out_trade_no: &str) -> Result<AlipaySandboxTrade, AlipayPayError> {
        self.shared.scan(out_trade_no)
    }

    /// As if the payer scanned and paid: TRADE_SUCCESS, then the notification is
    /// sent; returns after its HTTP answer(s).
    pub async fn pay(&self, out_trade_no: &str) -> Result<AlipayPaid, AlipayPayError> {
        let mut paid = self.shared.mark_paid(out_trade_no)?;
        paid.notification_answers = deliver(self.shared.clone(), out_trade_no.to_owned()).await?;
        Ok(paid)
    }

    /// Paid, and the notification never arrives: only a query finds out.
    pub fn pay_silently(&self, out_trade_no: &str) -> Result<AlipayPaid, AlipayPayError> {
        self.shared.mark_paid(out_trade_no)
    }

    /// Sends a paid order's notification (again): same notify_id, fresh
    /// notify_time and signature. Honours the copies switch.
    pub async fn send_notification(
        &self,
        out_trade_no: &str,
    ) -> Result<Vec<(u16, String)>, AlipayPayError> {
        deliver(self.shared.clone(), out_trade_no.to_owned()).await
    }

    /// The form body Alipay would POST for this order now, possibly tampered with,
    /// for the test to POST itself. For an order not paid yet it describes the
    /// payment as it would be (a fresh trade_no) and the order stays unpaid: use that
    /// with an [`AlipayTamper`] to forge.
    pub fn notification_for(
        &self,
        out_trade_no: &str,
        tamper: AlipayTamper,
    ) -> Result<String, AlipayPayError> {
        let mut trade = self.shared.trade_as_paid(out_trade_no)?;
        let now = self.shared.clock.now();
        let mut status = "TRADE_SUCCESS".to_owned();
        let mut app_id = self.shared.app_id.clone();
        let mut seller_id = SELLER_ID;
        match &tamper {
            AlipayTamper::WrongAmount(amount) => trade.total_amount.clone_from(amount),
            AlipayTamper::WrongAppId => app_id = other_app_id(&app_id),
            AlipayTamper::UnknownOrder(other) => {
                trade.out_trade_no.clone_from(other);
                trade.trade_no = Some(new_trade_no(now));
            }
            AlipayTamper::TradeStatus(other) => status.clone_from(other),
            AlipayTamper::OtherSeller => seller_id = OTHER_SELLER_ID,
            AlipayTamper::None | AlipayTamper::BadSignature => {}
        }
        let mut params = notification_params(&trade, &app_id, &status, now);
        for (name, value) in &mut params {
            if name == "seller_id" {
                *value = seller_id.to_owned();
            }
        }
        let key = if tamper == AlipayTamper::BadSignature {
            &KEYS.forger
        } else {
            &KEYS.alipay
        };
        Ok(signed_form(&params, key))
    }

    /// Each notification is sent `copies` times concurrently (at least once).
    pub fn set_notification_copies(&self, copies: usize) {
        self.shared.state().notification_copies = copies.max(1);
    }

    /// After a notification is not answered `success`, it is due again after each of
    /// these pauses in turn, on the sandbox's clock, until one is; the default is
    /// Alipay's [`NOTIFICATION_RETRIES`]. Nothing is sent on its own: a test advances
    /// the clock and calls [`Self::deliver_due_retries`].
    pub fn set_notification_retries(&self, schedule: Vec<Duration>) {
        self.shared.state().retry_schedule = schedule;
    }

    /// Sends every retry that is due by the sandbox's clock (each one as often as its
    /// schedule says it would have been sent by now, stopping at the first `success`),
    /// and returns how many were sent.
    pub async fn deliver_due_retries(&self) -> usize {
        deliver_due_retries(&self.shared).await
    }

    /// Where time is real (the demo, the benches): looks for due retries every
    /// `period` in the background until the sandbox is dropped. Tests call
    /// [`Self::deliver_due_retries`] instead.
    pub fn deliver_retries_every(&self, period: Duration) {
        let shared = self.shared.clone();
        self.shared.spawn_background(async move {
            loop {
                tokio::time::sleep(period).await;
                deliver_due_retries(&shared).await;
            }
        });
    }

    /// Every order, in the order they were precreated.
    pub fn transactions(&self) -> Vec<AlipaySandboxTrade> {
        let now = self.shared.clock.now();
        let mut state = self.shared.state();
        for order in state.orders.values_mut() {
            order.settle(now);
        }
        state
            .creation_order
            .iter()
            .filter_map(|number| state.orders.get(number))
            .map(|order| order.trade.clone())
            .collect()
    }

    pub fn transaction(&self, out_trade_no: &str) -> Option<AlipaySandboxTrade> {
        let now = self.shared.clock.now();
        let mut state = self.shared.state();
        state.orders.get_mut(out_trade_no).map(|order| {
            order.settle(now);
            order.trade.clone()
        })
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.state().calls.clone()
    }

    /// Requests whose `method` was this (refused ones included).
    pub fn calls_to(&self, method: &str) -> usize {
        let state = self.shared.state();
        state
            .calls
            .iter()
            .filter(|call| call.method == method)
            .count()
    }

    /// `(out_trade_no, status, body)` of every notification attempt, in the order
    /// the answers came; status 0 means no HTTP answer.
    pub fn notification_answers(&self) -> Vec<(String, u16, String)> {
        self.shared.state().notification_answers.clone()
    }

    /// The next `times` well-signed requests for `method` are answered with this
    /// `code`/`sub_code` (signed) after the signature check; nothing happens.
    /// E.g. `("20000", "isp.unknow-error")` or `("40004", "ACQ.SYSTEM_ERROR")`.
    pub fn fail_next(&self, method: &str, code: &str, sub_code: &str, times: usize) {
        let mut state = self.shared.state();
        let queue = state
            .injected_failures
            .entry(method.to_owned())
            .or_default();
        queue.extend(std::iter::repeat_n(
            (code.to_owned(), sub_code.to_owned()),
            times,
        ));
    }

    /// The next `times` requests for `method` are held `duration` before they are
    /// handled, as when the gateway is slow: a caller that gives up sooner never sees
    /// the answer (and the held request may still take effect, or be dropped with its
    /// connection: the caller cannot know which).
    pub fn hang_next(&self, method: &str, duration: Duration, times: usize) {
        let mut state = self.shared.state();
        let queue = state.hangs.entry(method.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(duration, times));
    }

    /// The refunds made on an order, in order.
    pub fn refunds(&self, out_trade_no: &str) -> Vec<AlipaySandboxRefund> {
        let state = self.shared.state();
        state
            .orders
            .get(out_trade_no)
            .map(|order| order.refunds.clone())
            .unwrap_or_default()
    }

    /// The sandbox's side of the books, order by order (read-only): what it charged
    /// and when, whether it still takes money, and the refunds under each order (a
    /// refund here is synchronous: made is succeeded).
    pub fn ledger(&self) -> Vec<crate::sandbox::ledger::ChannelRecord> {
        use crate::sandbox::ledger::{ChannelRecord, ChannelRefund, Charge, Upstream};
        self.transactions()
            .into_iter()
            .map(|trade| ChannelRecord {
                upstream: Upstream::Alipay,
                asked_fen: trade.total_fen,
                charge: trade.paid_at.map(|at| Charge {
                    amount_fen: trade.total_fen,
                    at,
                    transaction_id: trade.trade_no.clone(),
                }),
                closed: trade.status == SandboxTradeStatus::TradeClosed,
                refunds: self
                    .refunds(&trade.out_trade_no)
                    .into_iter()
                    .map(|refund| ChannelRefund {
                        out_refund_no: refund.out_request_no,
                        amount_fen: refund.refund_fen,
                        succeeded: true,
                    })
                    .collect(),
                out_trade_no: trade.out_trade_no,
            })
            .collect()
    }

    /// Every bill served from now on is spoiled this way (they add up), until
    /// [`AlipaySandbox::clear_bill_tampers`].
    pub fn tamper_bills(&self, tamper: AlipayBillTamper) {
        self.shared.state().bill_tampers.push(tamper);
    }

    pub fn clear_bill_tampers(&self) {
        self.shared.state().bill_tampers.clear();
    }

    /// The next `times` answers to `method` cannot be verified, though the request
    /// took effect.
    pub fn tamper_next_responses(&self, method: &str, tamper: AlipayResponseTamper, times: usize) {
        let mut state = self.shared.state();
        let queue = state.response_tampers.entry(method.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(tamper, times));
    }
}

impl Drop for AlipaySandbox {
    fn drop(&mut self) {
        self.server.abort();
        self.shared
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
    }
}

// ---- keys and crypto, local on purpose ----------------------------------------------

struct Keys {
    alipay: SigningKey<Sha256>,
    app: VerifyingKey<Sha256>,
    /// Signs forgeries: a real key that is not Alipay's (the app's own).
    forger: SigningKey<Sha256>,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let private = |pem: &str| {
        rsa::PrivateKey::from_pkcs8_pem(pem)
            .map(SigningKey::<Sha256>::new)
            .expect("the sandbox's PKCS#8 keys parse")
    };
    let app = rsa::PublicKey::from_public_key_pem(APP_PUBLIC_KEY_PEM)
        .map(VerifyingKey::<Sha256>::new)
        .expect("the sandbox's SPKI keys parse");
    Keys {
        alipay: private(ALIPAY_PRIVATE_KEY_PEM),
        app,
        forger: private(APP_PRIVATE_KEY_PEM),
    }
});

fn rsa2_sign(key: &SigningKey<Sha256>, content: &str) -> String {
    let signature: Signature = key.sign(content.as_bytes());
    STANDARD.encode(signature.to_bytes())
}

fn rsa2_verify(key: &VerifyingKey<Sha256>, content: &str, signature_b64: &str) -> bool {
    let Ok(raw) = STANDARD.decode(signature_b64) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    key.verify(content.as_bytes(), &signature).is_ok()
}

/// Alipay's `k=v&k=v` over the sorted parameters, leaving out `skip` and (when
/// `skip_empty`) empty values.
fn sorted_content(params: &[(String, String)], skip: &[&str], skip_empty: bool) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(name, value)| {
            !skip.contains(&name.as_str()) && (!skip_empty || !value.is_empty())
        })
        .collect();
    kept.sort();
    kept.iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A notification's form body: signed over everything but `sign` and `sign_type`.
fn signed_form(params: &[(String, String)], key: &SigningKey<Sha256>) -> String {
    let sign = rsa2_sign(key, &sorted_content(params, &["sign", "sign_type"], false));
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        body.append_pair(name, value);
    }
    body.append_pair("sign", &sign);
    body.finish()
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is an offset")
}

/// `yyyy-MM-dd HH:mm:ss`, Beijing time.
fn alipay_time(time: DateTime<Utc>) -> String {
    time.with_timezone(&china())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn parse_alipay_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    china()
        .from_local_datetime(&naive)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

/// 28 digits like Alipay's `2019081522001468450512505578`: date, `22001`, 15 digits.
fn new_trade_no(now: DateTime<Utc>) -> String {
    let date = now.with_timezone(&china()).format("%Y%m%d");
    format!("{date}22001{}", random_string(DIGITS, 15))
}

/// `https://qr.alipay.com/bax0…` like Alipay's codes.
fn new_qr_code() -> String {
    format!(
        "https://qr.alipay.com/bax0{}",
        random_string(LOWER_ALPHANUMERIC, 20)
    )
}

fn other_app_id(app_id: &str) -> String {
    if app_id == "2021000000000001" {
        "2021000000000002".to_owned()
    } else {
        "2021000000000001".to_owned()
    }
}

/// Alipay's yuan (`Price`): digits, at most two decimals, 0.01 to 100000000.
fn price_fen(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 2
        || (text.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let fen = whole.parse::<i64>().ok()? * 100 + format!("{fraction:0<2}").parse::<i64>().ok()?;
    (1..=10_000_000_000).contains(&fen).then_some(fen)
}

/// `90m`, `2h`, `1d`, `1c` (today, until midnight): a duration from `now`.
fn timeout_express(text: &str, now: DateTime<Utc>) -> Option<TimeDelta> {
    if text == "1c" {
        let today = now.with_timezone(&china()).date_naive();
        let midnight = today.succ_opt()?.and_hms_opt(0, 0, 0)?;
        let midnight = china().from_local_datetime(&midnight).single()?;
        return Some(midnight.with_timezone(&Utc) - now);
    }
    let unit = text.chars().last()?;
    let number: i64 = text.get(..text.len() - 1)?.parse().ok()?;
    if number <= 0 || !text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match unit {
        'm' => TimeDelta::try_minutes(number),
        'h' => TimeDelta::try_hours(number),
        'd' => TimeDelta::try_days(number),
        _ => None,
    }
}

/// JSON in the gateway's style: members in the given order, `/` written `\/`.
fn alipay_json(members: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (index, (name, value)) in members.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*name).to_string());
        out.push(':');
        out.push_str(&value.to_string().replace('/', "\\/"));
    }
    out.push('}');
    out
}

// ---- state ------------------------------------------------------------------------

struct Shared {
    base_url: Url,
    app_id: String,
    clock: Clock,
    http: reqwest::Client,
    state: Mutex<GatewayState>,
    /// Notifications sent in the background (cashier, retries); aborted on drop.
    background: Mutex<JoinSet<()>>,
}

struct GatewayState {
    orders: HashMap<String, Order>,
    creation_order: Vec<String>,
    /// qr_code → out_trade_no.
    qr_codes: HashMap<String, String>,
    /// trade_no → out_trade_no.
    trade_nos: HashMap<String, String>,
    calls: Vec<RecordedCall>,
    injected_failures: HashMap<String, VecDeque<(String, String)>>,
    hangs: HashMap<String, VecDeque<Duration>>,
    response_tampers: HashMap<String, VecDeque<AlipayResponseTamper>>,
    notification_answers: Vec<(String, u16, String)>,
    notification_copies: usize,
    retry_schedule: Vec<Duration>,
    /// Notifications not acknowledged yet, each with its next time.
    pending_retries: Vec<PendingRetry>,
    /// token → (bill day, link issued at).
    bill_links: HashMap<String, (NaiveDate, DateTime<Utc>)>,
    bill_tampers: Vec<AlipayBillTamper>,
    /// A close answered `ACQ.TRADE_NOT_EXIST` also kills the code (reported, not
    /// documented: see the module's comment).
    lock_codes_closed_before_scan: bool,
}

impl Default for GatewayState {
    fn default() -> Self {
        Self {
            orders: HashMap::new(),
            creation_order: Vec::new(),
            qr_codes: HashMap::new(),
            trade_nos: HashMap::new(),
            calls: Vec::new(),
            injected_failures: HashMap::new(),
            hangs: HashMap::new(),
            response_tampers: HashMap::new(),
            notification_answers: Vec::new(),
            notification_copies: 1,
            retry_schedule: NOTIFICATION_RETRIES.to_vec(),
            pending_retries: Vec::new(),
            bill_links: HashMap::new(),
            bill_tampers: Vec::new(),
            lock_codes_closed_before_scan: false,
        }
    }
}

/// A notification to send again at `due` (sandbox clock), then after each pause left.
struct PendingRetry {
    trade: AlipaySandboxTrade,
    url: String,
    due: DateTime<Utc>,
    remaining: VecDeque<Duration>,
}

struct Order {
    trade: AlipaySandboxTrade,
    /// What the first precreate asked for: a repeat must ask for exactly this.
    params: PrecreateParams,
    refunds: Vec<AlipaySandboxRefund>,
}

impl Order {
    /// Expiry closes: an unscanned code after `scan_before`, a waiting trade after
    /// `pay_before`.
    fn settle(&mut self, now: DateTime<Utc>) {
        let trade = &mut self.trade;
        let deadline = match trade.status {
            SandboxTradeStatus::NotScanned => trade.scan_before,
            SandboxTradeStatus::WaitBuyerPay => trade.pay_before,
            _ => return,
        };
        if now >= deadline {
            trade.status = SandboxTradeStatus::TradeClosed;
            trade.closed_at = Some(deadline);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PrecreateParams {
    total_amount: String,
    subject: String,
    body: Option<String>,
    product_code: Option<String>,
    time_expire: Option<String>,
    timeout_express: Option<String>,
    notify_url: Option<String>,
}

/// A refusal: `code`, `sub_code`, `sub_msg`.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    sub_code: String,
    sub_msg: String,
}

impl Refusal {
    fn new(code: &'static str, sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self {
            code,
            sub_code: sub_code.to_owned(),
            sub_msg: sub_msg.into(),
        }
    }

    fn missing(sub_code: &str, sub_msg: &str) -> Self {
        Self::new(codes::MISSING_ARGUMENTS, sub_code, sub_msg)
    }

    fn invalid(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ARGUMENTS, sub_code, sub_msg)
    }

    fn business(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        Self::new(codes::BUSINESS_FAILED, sub_code, sub_msg)
    }

    fn parameter(sub_msg: impl Into<String>) -> Self {
        Self::business(sub_codes::ACQ_INVALID_PARAMETER, sub_msg)
    }

    fn msg(&self) -> &'static str {
        match self.code {
            codes::UNAVAILABLE => "Service Currently Unavailable",
            codes::MISSING_ARGUMENTS => "Missing Required Arguments",
            codes::INVALID_ARGUMENTS => "Invalid Arguments",
            _ => "Business Failed",
        }
    }

    fn content(&self) -> String {
        alipay_json(&[
            ("code", json!(self.code)),
            ("msg", json!(self.msg())),
            ("sub_code", json!(self.sub_code)),
            ("sub_msg", json!(self.sub_msg)),
        ])
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, GatewayState> {
        // A panicking test thread must not take the sandbox down for the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut background = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Reap what has finished so the set does not grow without bound.
        while background.try_join_next().is_some() {}
        background.spawn(task);
    }

    fn scan(&self, out_trade_no: &str) -> Result<AlipaySandboxTrade, AlipayPayError> {
        let now = self.clock.now();
        let mut guard = self.state();
        let state = &mut *guard;
        let order = state
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        order.settle(now);
        let trade = &mut order.trade;
        match trade.status {
            SandboxTradeStatus::NotScanned => {
                let trade_no = new_trade_no(now);
                trade.status = SandboxTradeStatus::WaitBuyerPay;
                trade.trade_no = Some(trade_no.clone());
                trade.scanned_at = Some(now);
                state.trade_nos.insert(trade_no, out_trade_no.to_owned());
                Ok(trade.clone())
            }
            SandboxTradeStatus::WaitBuyerPay => Ok(trade.clone()),
            SandboxTradeStatus::TradeSuccess => {
                Err(AlipayPayError::AlreadyPaid(out_trade_no.to_owned()))
            }
            SandboxTradeStatus::TradeClosed => Err(closed_or_expired(trade)),
        }
    }

    fn mark_paid(&self, out_trade_no: &str) -> Result<AlipayPaid, AlipayPayError> {
        self.scan(out_trade_no)?;
        let now = self.clock.now();
        let mut state = self.state();
        let order = state
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        order.settle(now);
        let trade = &mut order.trade;
        if trade.status != SandboxTradeStatus::WaitBuyerPay {
            return Err(closed_or_expired(trade));
        }
        trade.status = SandboxTradeStatus::TradeSuccess;
        trade.paid_at = Some(now);
        trade.buyer_id = Some(BUYER_ID.to_owned());
        trade.notify_id = Some(format!(
            "{}0022{}",
            now.with_timezone(&china()).format("%Y%m%d"),
            random_string(DIGITS, 22)
        ));
        Ok(AlipayPaid {
            out_trade_no: out_trade_no.to_owned(),
            trade_no: trade.trade_no.clone().unwrap_or_default(),
            total_amount: trade.total_amount.clone(),
            gmt_payment: now,
            notification_answers: Vec::new(),
        })
    }

    /// The order as its payment's notification describes it; for an unpaid order, as
    /// the payment would be, without paying it.
    fn trade_as_paid(&self, out_trade_no: &str) -> Result<AlipaySandboxTrade, AlipayPayError> {
        let now = self.clock.now();
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        let mut trade = order.trade.clone();
        if trade.status != SandboxTradeStatus::TradeSuccess {
            trade.trade_no = Some(trade.trade_no.clone().unwrap_or_else(|| new_trade_no(now)));
            trade.scanned_at.get_or_insert(now);
            trade.paid_at = Some(now);
            trade.buyer_id = Some(BUYER_ID.to_owned());
            trade.notify_id = Some(format!(
                "{}0022{}",
                now.with_timezone(&china()).format("%Y%m%d"),
                random_string(DIGITS, 22)
            ));
        }
        Ok(trade)
    }

    /// A paid order's notification parameters (unsigned) and where to send them.
    fn outgoing_notification(
        &self,
        out_trade_no: &str,
    ) -> Result<(Option<String>, AlipaySandboxTrade), AlipayPayError> {
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| AlipayPayError::UnknownOrder(out_trade_no.to_owned()))?;
        if order.trade.status != SandboxTradeStatus::TradeSuccess {
            return Err(AlipayPayError::NotPaid(out_trade_no.to_owned()));
        }
        Ok((order.trade.notify_url.clone(), order.trade.clone()))
    }

    fn record_answers(&self, out_trade_no: &str, answers: &[(u16, String)]) {
        let mut state = self.state();
        for (status, body) in answers {
            let entry = (out_trade_no.to_owned(), *status, body.clone());
            state.notification_answers.push(entry);
        }
    }
}

fn closed_or_expired(trade: &AlipaySandboxTrade) -> AlipayPayError {
    match trade.closed_at {
        Some(at) if at == trade.pay_before || at == trade.scan_before => {
            AlipayPayError::Expired(trade.out_trade_no.clone(), at)
        }
        _ => AlipayPayError::Closed(trade.out_trade_no.clone()),
    }
}

/// The `trade_status_sync` parameters of a paid trade (without `sign`).
fn notification_params(
    trade: &AlipaySandboxTrade,
    app_id: &str,
    trade_status: &str,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let amount = trade.total_amount.clone();
    let fund_bill_list = format!(r#"[{{"amount":"{amount}","fundChannel":"ALIPAYACCOUNT"}}]"#);
    let time = |at: Option<DateTime<Utc>>| alipay_time(at.unwrap_or(now));
    [
        ("gmt_create", time(trade.scanned_at)),
        ("charset", "utf-8".to_owned()),
        ("seller_email", SELLER_EMAIL.to_owned()),
        ("subject", trade.subject.clone()),
        ("buyer_id", trade.buyer_id.clone().unwrap_or_default()),
        ("invoice_amount", amount.clone()),
        ("notify_id", trade.notify_id.clone().unwrap_or_default()),
        ("fund_bill_list", fund_bill_list),
        ("notify_type", "trade_status_sync".to_owned()),
        ("trade_status", trade_status.to_owned()),
        ("receipt_amount", amount.clone()),
        ("buyer_pay_amount", amount.clone()),
        ("sign_type", "RSA2".to_owned()),
        ("app_id", app_id.to_owned()),
        ("seller_id", SELLER_ID.to_owned()),
        ("gmt_payment", time(trade.paid_at)),
        ("notify_time", alipay_time(now)),
        ("version", "1.0".to_owned()),
        ("out_trade_no", trade.out_trade_no.clone()),
        ("total_amount", amount),
        ("trade_no", trade.trade_no.clone().unwrap_or_default()),
        ("auth_app_id", app_id.to_owned()),
        ("buyer_logon_id", BUYER_LOGON_ID.to_owned()),
        ("point_amount", "0.00".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Sends the retries due by the sandbox's clock; see
/// [`AlipaySandbox::deliver_due_retries`].
async fn deliver_due_retries(shared: &Arc<Shared>) -> usize {
    let now = shared.clock.now();
    let due: Vec<PendingRetry> = {
        let mut state = shared.state();
        let (due, later) = std::mem::take(&mut state.pending_retries)
            .into_iter()
            .partition(|retry| retry.due <= now);
        state.pending_retries = later;
        due
    };
    let mut sent = 0;
    for mut retry in due {
        while retry.due <= now {
            let params = notification_params(
                &retry.trade,
                &shared.app_id,
                "TRADE_SUCCESS",
                shared.clock.now(),
            );
            let body = signed_form(&params, &KEYS.alipay);
            let answer = post_notification(&shared.http, &retry.url, body).await;
            sent += 1;
            shared.record_answers(&retry.trade.out_trade_no, std::slice::from_ref(&answer));
            if is_acknowledged(answer.0, &answer.1) {
                break;
            }
            let Some(pause) = retry.remaining.pop_front() else {
                break;
            };
            retry.due = after(retry.due, pause);
            if retry.due > now {
                shared.state().pending_retries.push(retry);
                break;
            }
        }
    }
    sent
}

/// `pause` after `at`; never, if that is past the calendar.
fn after(at: DateTime<Utc>, pause: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(pause)
        .ok()
        .and_then(|pause| at.checked_add_signed(pause))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn is_acknowledged(status: u16, body: &str) -> bool {
    status == 200 && body == "success"
}

async fn post_notification(http: &reqwest::Client, url: &str, body: String) -> (u16, String) {
    let request = http
        .post(url)
        .header(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body);
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Sends a paid order's notification: `copies` at once, freshly signed; retries in
/// the background when none was acknowledged and a schedule is set. An order
/// without `notify_url` is not notified.
async fn deliver(
    shared: Arc<Shared>,
    out_trade_no: String,
) -> Result<Vec<(u16, String)>, AlipayPayError> {
    let (url, trade) = shared.outgoing_notification(&out_trade_no)?;
    let Some(url) = url else {
        return Ok(Vec::new());
    };
    let (copies, schedule) = {
        let state = shared.state();
        (state.notification_copies, state.retry_schedule.clone())
    };
    let params = notification_params(&trade, &shared.app_id, "TRADE_SUCCESS", shared.clock.now());
    let body = signed_form(&params, &KEYS.alipay);
    let mut attempts = JoinSet::new();
    for _ in 0..copies {
        let http = shared.http.clone();
        let url = url.clone();
        let body = body.clone();
        attempts.spawn(async move { post_notification(&http, &url, body).await });
    }
    let mut answers = Vec::with_capacity(copies);
    while let Some(joined) = attempts.join_next().await {
        let answer = joined.unwrap_or_else(|error| (0, error.to_string()));
        shared.record_answers(&out_trade_no, std::slice::from_ref(&answer));
        answers.push(answer);
    }
    let acknowledged = answers
        .iter()
        .any(|(status, body)| is_acknowledged(*status, body));
    let mut schedule: VecDeque<Duration> = schedule.into();
    if let (false, Some(first)) = (acknowledged, schedule.pop_front()) {
        let due = after(shared.clock.now(), first);
        shared.state().pending_retries.push(PendingRetry {
            trade,
            url,
            due,
            remaining: schedule,
        });
    }
    Ok(answers)
}

// ---- the gateway ------------------------------------------------------------------

/// What goes back: the member it comes under, its content, whether it is signed.
struct Answer {
    member: String,
    content: String,
    signed: bool,
}

type SharedState = State<Arc<Shared>>;

/// `POST /gateway.do`: query and form parameters together, checked as the gateway
/// checks them, answered as `{"<method>_response":{…},"sign":"…"}`.
async fn gateway(State(shared): SharedState, uri: Uri, body: Bytes) -> Response {
    let mut params: Vec<(String, String)> = Vec::new();
    let query = uri.query().unwrap_or_default().as_bytes();
    for (name, value) in
        url::form_urlencoded::parse(query).chain(url::form_urlencoded::parse(&body))
    {
        if !params.iter().any(|(seen, _)| *seen == name) {
            params.push((name.into_owned(), value.into_owned()));
        }
    }
    let method = params
        .iter()
        .find(|(name, _)| name == "method")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let known = methods::ALL.contains(&method.as_str());
    let member = if known {
        format!("{}_response", method.replace('.', "_"))
    } else {
        "error_response".to_owned()
    };
    let hang = shared
        .state()
        .hangs
        .get_mut(&method)
        .and_then(VecDeque::pop_front);
    if let Some(duration) = hang {
        tokio::time::sleep(duration).await;
    }
    let (answer, code, sub_code) = match shared.handle(&method, &params) {
        Ok(content) => (
            Answer {
                member,
                content,
                signed: true,
            },
            codes::SUCCESS.to_owned(),
            None,
        ),
        Err((refusal, signed)) => (
            Answer {
                member,
                content: refusal.content(),
                signed,
            },
            refusal.code.to_owned(),
            Some(refusal.sub_code),
        ),
    };
    let tamper = {
        let mut state = shared.state();
        let tamper = state
            .response_tampers
            .get_mut(&method)
            .and_then(VecDeque::pop_front);
        state.calls.push(RecordedCall {
            method,
            params,
            code,
            sub_code,
        });
        tamper
    };
    let body = answer_body(&answer, tamper);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

fn answer_body(answer: &Answer, tamper: Option<AlipayResponseTamper>) -> String {
    let member = Value::from(answer.member.as_str()).to_string();
    if !answer.signed || tamper == Some(AlipayResponseTamper::Unsigned) {
        return format!("{{{member}:{}}}", answer.content);
    }
    let keys = &*KEYS;
    let (content, sign) = match tamper {
        Some(AlipayResponseTamper::BadSignature) => (
            answer.content.clone(),
            rsa2_sign(&keys.forger, &answer.content),
        ),
        Some(AlipayResponseTamper::Edited) => {
            let sign = rsa2_sign(&keys.alipay, &answer.content);
            let base = answer.content.strip_suffix('}').unwrap_or(&answer.content);
            (format!(r#"{base},"edited":"1"}}"#), sign)
        }
        _ => (
            answer.content.clone(),
            rsa2_sign(&keys.alipay, &answer.content),
        ),
    };
    format!("{{{member}:{content},\"sign\":{}}}", Value::from(sign))
}

type Refused = (Refusal, bool);

impl Shared {
    /// The answer's content, or a refusal and whether it is signed (not for an
    /// unknown app: the gateway has no key to sign with for it).
    fn handle(&self, method: &str, params: &[(String, String)]) -> Result<String, Refused> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .filter(|value| !value.is_empty())
        };
        let signed = |refusal: Refusal| (refusal, true);
        if method.is_empty() {
            return Err((
                Refusal::missing(sub_codes::MISSING_METHOD, "缺少方法名参数"),
                false,
            ));
        }
        let Some(app_id) = get("app_id") else {
            return Err((
                Refusal::missing(sub_codes::MISSING_APP_ID, "缺少appId参数"),
                false,
            ));
        };
        if app_id != self.app_id {
            return Err((
                Refusal::invalid(sub_codes::INVALID_APP_ID, "无效的AppID参数"),
                false,
            ));
        }
        if !methods::ALL.contains(&method) {
            return Err(signed(Refusal::invalid(
                sub_codes::INVALID_METHOD,
                "不存在的方法名",
            )));
        }
        if get("format").is_some_and(|format| !format.eq_ignore_ascii_case("json")) {
            return Err(signed(Refusal::invalid(
                sub_codes::INVALID_FORMAT,
                "无效的数据格式",
            )));
        }
        if !get("charset").is_some_and(|charset| charset.eq_ignore_ascii_case("utf-8")) {
            return Err(signed(Refusal::invalid(
                sub_codes::INVALID_CHARSET,
                "字符集错误（沙箱只接受 utf-8）",
            )));
        }
        match get("sign_type") {
            None => {
                return Err(signed(Refusal::missing(
                    sub_codes::MISSING_SIGNATURE_TYPE,
                    "缺少签名类型参数",
                )));
            }
            Some("RSA2") => {}
            Some(_) => {
                return Err(signed(Refusal::invalid(
                    sub_codes::INVALID_SIGNATURE_TYPE,
                    "无效的签名类型",
                )));
            }
        }
        let Some(sign) = get("sign") else {
            return Err(signed(Refusal::missing(
                sub_codes::MISSING_SIGNATURE,
                "缺少签名参数",
            )));
        };
        let Some(timestamp) = get("timestamp") else {
            return Err(signed(Refusal::missing(
                sub_codes::MISSING_TIMESTAMP,
                "缺少时间戳参数",
            )));
        };
        let now = self.clock.now();
        if parse_alipay_time(timestamp).is_none_or(|sent| (sent - now).abs() > CLOCK_SKEW) {
            return Err(signed(Refusal::invalid(
                sub_codes::INVALID_TIMESTAMP,
                "非法的时间戳参数（格式 yyyy-MM-dd HH:mm:ss，与支付宝时间相差不超过15分钟）",
            )));
        }
        match get("version") {
            None => {
                return Err(signed(Refusal::missing(
                    sub_codes::MISSING_VERSION,
                    "缺少版本参数",
                )));
            }
            Some("1.0") => {}
            Some(_) => {
                return Err(signed(Refusal::invalid(
                    sub_codes::INVALID_PARAMETER,
                    "参数无效: version",
                )));
            }
        }
        let content = sorted_content(params, &["sign"], true);
        if !rsa2_verify(&KEYS.app, &content, sign) {
            return Err(signed(Refusal::invalid(
                sub_codes::INVALID_SIGNATURE,
                format!(
                    "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"
                ),
            )));
        }
        if let Some((code, sub_code)) = self
            .state()
            .injected_failures
            .get_mut(method)
            .and_then(VecDeque::pop_front)
        {
            let code = match code.as_str() {
                codes::UNAVAILABLE => codes::UNAVAILABLE,
                codes::MISSING_ARGUMENTS => codes::MISSING_ARGUMENTS,
                codes::INVALID_ARGUMENTS => codes::INVALID_ARGUMENTS,
                _ => codes::BUSINESS_FAILED,
            };
            return Err(signed(Refusal::new(code, &sub_code, "沙箱注入的失败")));
        }
        let biz: Map<String, Value> = match get("biz_content").map(serde_json::from_str) {
            Some(Ok(Value::Object(biz))) => biz,
            _ => {
                return Err(signed(Refusal::parameter(
                    "参数有误: biz_content 应为 JSON 对象",
                )));
            }
        };
        let notify_url = get("notify_url").map(str::to_owned);
        match method {
            methods::PRECREATE => self.precreate(&biz, notify_url, now).map_err(signed),
            methods::QUERY => self.query(&biz, now).map_err(signed),
            methods::CLOSE => self.close(&biz, now).map_err(signed),
            methods::REFUND => self.refund(&biz, now).map_err(signed),
            methods::REFUND_QUERY => self.refund_query(&biz, now).map_err(signed),
            _ => self.bill_url(&biz, now).map_err(signed),
        }
    }

    fn precreate(
        &self,
        biz: &Map<String, Value>,
        notify_url: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        let text = |name: &str| -> Result<Option<String>, Refusal> {
            match biz.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if text.is_empty() => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(Refusal::parameter(format!("参数有误: {name} 应为字符串"))),
            }
        };
        let out_trade_no = text("out_trade_no")?
            .ok_or_else(|| Refusal::parameter("参数有误: 缺少 out_trade_no"))?;
        if out_trade_no.len() > 64
            || !out_trade_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Refusal::parameter(
                "参数有误: out_trade_no 只能包含字母、数字、下划线，64个字符以内",
            ));
        }
        let total_amount = text("total_amount")?
            .ok_or_else(|| Refusal::parameter("参数有误: 缺少 total_amount"))?;
        let total_fen = price_fen(&total_amount).ok_or_else(|| {
            Refusal::parameter(
                "参数有误: total_amount 单位为元，精确到小数点后两位，取值范围[0.01,100000000]",
            )
        })?;
        let subject =
            text("subject")?.ok_or_else(|| Refusal::parameter("参数有误: 缺少 subject"))?;
        if subject.chars().count() > 256 {
            return Err(Refusal::parameter("参数有误: subject 超过256个字符"));
        }
        let product_code = text("product_code")?;
        if product_code
            .as_deref()
            .is_some_and(|code| !matches!(code, "FACE_TO_FACE_PAYMENT" | "QR_CODE_OFFLINE"))
        {
            return Err(Refusal::parameter("参数有误: product_code"));
        }
        let time_expire = text("time_expire")?;
        let timeout = text("timeout_express")?;
        let lifetime = match (&time_expire, &timeout) {
            (Some(at), _) => parse_alipay_time(at).map(|at| at - now).ok_or_else(|| {
                Refusal::parameter("参数有误: time_expire 格式为yyyy-MM-dd HH:mm:ss")
            })?,
            (None, Some(express)) => timeout_express(express, now)
                .ok_or_else(|| Refusal::parameter("参数有误: timeout_express"))?,
            (None, None) => DEFAULT_TRADE_LIFETIME,
        };
        if let Some(url) = &notify_url
            && (url.len() > 256
                || !Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https")))
        {
            return Err(Refusal::parameter("参数有误: notify_url 应为 http(s) 地址"));
        }
        let params = PrecreateParams {
            total_amount: total_amount.clone(),
            subject: subject.clone(),
            body: text("body")?,
            product_code,
            time_expire: time_expire.clone(),
            timeout_express: timeout.clone(),
            notify_url: notify_url.clone(),
        };
        let mut guard = self.state();
        let state = &mut *guard;
        if let Some(order) = state.orders.get_mut(&out_trade_no) {
            order.settle(now);
            return match order.trade.status {
                SandboxTradeStatus::TradeSuccess => Err(Refusal::business(
                    sub_codes::TRADE_HAS_SUCCESS,
                    "交易已被支付",
                )),
                SandboxTradeStatus::TradeClosed => Err(Refusal::business(
                    sub_codes::TRADE_HAS_CLOSE,
                    "交易已经关闭",
                )),
                _ if order.params != params => Err(Refusal::business(
                    sub_codes::CONTEXT_INCONSISTENT,
                    "交易信息被篡改",
                )),
                _ => Ok(precreate_content(&out_trade_no, &order.trade.qr_code)),
            };
        }
        // Checked for a new order only: a repeat of the same precreate late in the
        // order's life still gets its code back.
        if !(MIN_TRADE_LIFETIME..=MAX_TRADE_LIFETIME).contains(&lifetime) {
            return Err(Refusal::parameter("参数有误: 订单超时时间范围为1m～15d"));
        }
        let qr_code = new_qr_code();
        let pay_before = now + lifetime;
        let trade = AlipaySandboxTrade {
            out_trade_no: out_trade_no.clone(),
            status: SandboxTradeStatus::NotScanned,
            app_id: self.app_id.clone(),
            subject,
            total_amount,
            total_fen,
            notify_url,
            time_expire,
            timeout_express: timeout,
            qr_code: qr_code.clone(),
            created_at: now,
            scan_before: pay_before.min(now + MAX_QR_LIFETIME),
            pay_before,
            trade_no: None,
            scanned_at: None,
            paid_at: None,
            closed_at: None,
            buyer_id: None,
            notify_id: None,
        };
        state.qr_codes.insert(qr_code.clone(), out_trade_no.clone());
        state.creation_order.push(out_trade_no.clone());
        state.orders.insert(
            out_trade_no.clone(),
            Order {
                trade,
                params,
                refunds: Vec::new(),
            },
        );
        Ok(precreate_content(&out_trade_no, &qr_code))
    }

    /// The order a query or close names (`trade_no` first, as Alipay does).
    fn named<'a>(
        state: &'a mut GatewayState,
        biz: &Map<String, Value>,
    ) -> Result<Option<&'a mut Order>, Refusal> {
        let text = |name: &str| {
            biz.get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        let number = match (text("trade_no"), text("out_trade_no")) {
            (Some(trade_no), _) => state.trade_nos.get(trade_no).cloned(),
            (None, Some(number)) => Some(number.to_owned()),
            (None, None) => {
                return Err(Refusal::parameter(
                    "参数有误: out_trade_no 和 trade_no 不能同时为空",
                ));
            }
        };
        Ok(number.and_then(|number| state.orders.get_mut(&number)))
    }

    fn query(&self, biz: &Map<String, Value>, now: DateTime<Utc>) -> Result<String, Refusal> {
        let mut state = self.state();
        let order = Self::named(&mut state, biz)?;
        let Some(order) = order else {
            return Err(not_exist());
        };
        order.settle(now);
        let trade = &order.trade;
        let Some(trade_no) = &trade.trade_no else {
            // Never scanned: no trade at Alipay.
            return Err(not_exist());
        };
        let paid = trade.status == SandboxTradeStatus::TradeSuccess;
        let paid_amount = if paid {
            trade.total_amount.clone()
        } else {
            "0.00".to_owned()
        };
        let mut members: Vec<(&str, Value)> = vec![
            ("code", json!(codes::SUCCESS)),
            ("msg", json!("Success")),
            ("buyer_logon_id", json!(BUYER_LOGON_ID)),
            ("buyer_pay_amount", json!(paid_amount)),
            ("buyer_user_id", json!(BUYER_ID)),
            ("buyer_user_type", json!("PRIVATE")),
            ("invoice_amount", json!(paid_amount)),
            ("out_trade_no", json!(trade.out_trade_no)),
            ("point_amount", json!("0.00")),
            ("receipt_amount", json!(paid_amount)),
        ];
        if let (true, Some(paid_at)) = (paid, trade.paid_at) {
            members.push(("send_pay_date", json!(alipay_time(paid_at))));
        }
        members.extend([
            ("total_amount", json!(trade.total_amount)),
            ("trade_no", json!(trade_no)),
            ("trade_status", json!(trade.status.as_str())),
        ]);
        Ok(alipay_json(&members))
    }

    fn close(&self, biz: &Map<String, Value>, now: DateTime<Utc>) -> Result<String, Refusal> {
        let mut state = self.state();
        let lock_unscanned = state.lock_codes_closed_before_scan;
        let order = Self::named(&mut state, biz)?;
        let Some(order) = order else {
            return Err(not_exist());
        };
        order.settle(now);
        let trade = &mut order.trade;
        match trade.status {
            SandboxTradeStatus::NotScanned => {
                // No trade before the scan, so nothing to close: "交易不存在"
                // (alipay.trade.close's error table, docs.open.alipay.com/api_1/
                // alipay.trade.close). The code lives on unless a test asked for the
                // lock merchants report (see the module's comment).
                if lock_unscanned {
                    trade.status = SandboxTradeStatus::TradeClosed;
                    trade.closed_at = Some(now);
                }
                Err(not_exist())
            }
            SandboxTradeStatus::WaitBuyerPay => {
                trade.status = SandboxTradeStatus::TradeClosed;
                trade.closed_at = Some(now);
                Ok(alipay_json(&[
                    ("code", json!(codes::SUCCESS)),
                    ("msg", json!("Success")),
                    ("out_trade_no", json!(trade.out_trade_no)),
                    ("trade_no", json!(trade.trade_no)),
                ]))
            }
            SandboxTradeStatus::TradeClosed if trade.trade_no.is_none() => Err(not_exist()),
            SandboxTradeStatus::TradeSuccess | SandboxTradeStatus::TradeClosed => Err(
                Refusal::business(sub_codes::TRADE_STATUS_ERROR, "交易状态不合法"),
            ),
        }
    }
}

fn not_exist() -> Refusal {
    Refusal::business(sub_codes::TRADE_NOT_EXIST, "交易不存在")
}

// ---- refunds and bills ------------------------------------------------------------

/// The bill account as it appears in bills: the seller's pid and `0156`.
fn bill_account() -> String {
    format!("{SELLER_ID}0156")
}

/// Yuan as Alipay's answers write it: `1200.50`.
fn plain_yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn beijing_day(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&china()).date_naive()
}

impl Shared {
    fn refund(&self, biz: &Map<String, Value>, now: DateTime<Utc>) -> Result<String, Refusal> {
        let text = |name: &str| {
            biz.get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        let amount = text("refund_amount")
            .ok_or_else(|| Refusal::parameter("参数有误: 缺少 refund_amount"))?;
        let refund_fen = price_fen(amount).ok_or_else(|| {
            Refusal::parameter("参数有误: refund_amount 单位为元，精确到小数点后两位")
        })?;
        let reason = text("refund_reason").map(str::to_owned);
        if reason.as_ref().is_some_and(|r| r.chars().count() > 256) {
            return Err(Refusal::parameter("参数有误: refund_reason 超过256个字符"));
        }
        let given_request_no = text("out_request_no");
        if given_request_no.is_some_and(|number| number.len() > 64) {
            return Err(Refusal::parameter("参数有误: out_request_no 超过64个字符"));
        }
        let mut state = self.state();
        let order = Self::named(&mut state, biz)?.ok_or_else(not_exist)?;
        order.settle(now);
        let Some(trade_no) = order.trade.trade_no.clone() else {
            return Err(not_exist());
        };
        // Without out_request_no, Alipay takes the order number: one full refund.
        let request_no = given_request_no
            .unwrap_or(&order.trade.out_trade_no)
            .to_owned();
        let refunded: i64 = order.refunds.iter().map(|r| r.refund_fen).sum();
        if let Some(existing) = order
            .refunds
            .iter()
            .find(|r| r.out_request_no == request_no)
        {
            if existing.refund_fen != refund_fen {
                return Err(Refusal::business(
                    sub_codes::CONTEXT_INCONSISTENT,
                    "交易信息被篡改（同一退款请求号的退款金额不一致）",
                ));
            }
            let at = existing.refunded_at;
            return Ok(refund_content(&order.trade, &trade_no, "N", refunded, at));
        }
        let total = order.trade.total_fen;
        match order.trade.status {
            SandboxTradeStatus::TradeSuccess => {}
            // Refunded in full already: only the amount check below can answer.
            SandboxTradeStatus::TradeClosed if refunded == total => {}
            _ => {
                return Err(Refusal::business(
                    sub_codes::TRADE_STATUS_ERROR,
                    "交易状态不合法",
                ));
            }
        }
        if given_request_no.is_none() && refund_fen != total {
            return Err(Refusal::business(
                sub_codes::REFUND_AMT_NOT_EQUAL_TOTAL,
                "撤销或退款金额与订单金额不一致",
            ));
        }
        if refunded + refund_fen > total {
            return Err(Refusal::business(
                sub_codes::REFUND_FEE_ERR,
                "退款金额超限（退款总额不能大于订单金额）",
            ));
        }
        order.refunds.push(AlipaySandboxRefund {
            out_request_no: request_no,
            refund_fen,
            reason,
            refunded_at: now,
        });
        if refunded + refund_fen == total {
            order.trade.status = SandboxTradeStatus::TradeClosed;
            order.trade.closed_at = Some(now);
        }
        Ok(refund_content(
            &order.trade,
            &trade_no,
            "Y",
            refunded + refund_fen,
            now,
        ))
    }

    fn refund_query(
        &self,
        biz: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        let wants_time = biz
            .get("query_options")
            .and_then(Value::as_array)
            .is_some_and(|options| options.iter().any(|o| o == "gmt_refund_pay"));
        let given = biz
            .get("out_request_no")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let mut state = self.state();
        let order = Self::named(&mut state, biz)?.ok_or_else(not_exist)?;
        order.settle(now);
        let trade = &order.trade;
        let Some(trade_no) = &trade.trade_no else {
            return Err(not_exist());
        };
        let request_no = given.unwrap_or_else(|| trade.out_trade_no.clone());
        let mut members: Vec<(&str, Value)> =
            vec![("code", json!(codes::SUCCESS)), ("msg", json!("Success"))];
        match order
            .refunds
            .iter()
            .find(|r| r.out_request_no == request_no)
        {
            Some(refund) => {
                if wants_time {
                    members.push(("gmt_refund_pay", json!(alipay_time(refund.refunded_at))));
                }
                members.extend([
                    ("out_request_no", json!(request_no)),
                    ("out_trade_no", json!(trade.out_trade_no)),
                    ("refund_amount", json!(plain_yuan(refund.refund_fen))),
                    ("refund_status", json!("REFUND_SUCCESS")),
                    ("total_amount", json!(trade.total_amount)),
                    ("trade_no", json!(trade_no)),
                ]);
            }
            // Not received (or refused): Alipay leaves refund_status out.
            None => members.extend([
                ("out_request_no", json!(request_no)),
                ("out_trade_no", json!(trade.out_trade_no)),
                ("trade_no", json!(trade_no)),
            ]),
        }
        Ok(alipay_json(&members))
    }

    fn bill_url(&self, biz: &Map<String, Value>, now: DateTime<Utc>) -> Result<String, Refusal> {
        let text = |name: &str| biz.get(name).and_then(Value::as_str).unwrap_or_default();
        if text("bill_type") != "trade" {
            return Err(Refusal::parameter(
                "参数有误: bill_type（沙箱只提供 trade 账单）",
            ));
        }
        let date = text("bill_date");
        let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .filter(|_| date.len() == 10)
            .ok_or_else(|| Refusal::parameter("参数有误: bill_date 日账单格式为yyyy-MM-dd"))?;
        let no_bill = || Refusal::business(sub_codes::BILL_NOT_EXIST, "账单不存在");
        // Bills are T+1: never for today or later.
        if day >= beijing_day(now) {
            return Err(no_bill());
        }
        let mut state = self.state();
        if bill_entries(&state, day).is_empty() {
            return Err(no_bill());
        }
        let token = random_string(LOWER_ALPHANUMERIC, 32);
        state.bill_links.insert(token.clone(), (day, now));
        let account = bill_account();
        let stamp = day.format("%Y%m%d").to_string();
        let mut url = self.base_url.clone();
        url.set_path(BILL_PATH);
        url.query_pairs_mut()
            .append_pair("token", &token)
            .append_pair("userId", &account)
            .append_pair("fileType", "csv.zip")
            .append_pair("bizDates", &stamp)
            .append_pair("bizType", "trade")
            .append_pair("downloadFileName", &format!("{account}_{stamp}.csv.zip"))
            .append_pair("timestamp", &now.timestamp_millis().to_string());
        Ok(alipay_json(&[
            ("code", json!(codes::SUCCESS)),
            ("msg", json!("Success")),
            ("bill_download_url", json!(url.as_str())),
        ]))
    }
}

fn refund_content(
    trade: &AlipaySandboxTrade,
    trade_no: &str,
    fund_change: &str,
    refunded_fen: i64,
    at: DateTime<Utc>,
) -> String {
    alipay_json(&[
        ("code", json!(codes::SUCCESS)),
        ("msg", json!("Success")),
        ("buyer_logon_id", json!(BUYER_LOGON_ID)),
        ("buyer_user_id", json!(BUYER_ID)),
        ("fund_change", json!(fund_change)),
        ("gmt_refund_pay", json!(alipay_time(at))),
        ("out_trade_no", json!(trade.out_trade_no)),
        ("refund_fee", json!(plain_yuan(refunded_fen))),
        ("send_back_fee", json!(plain_yuan(refunded_fen))),
        ("trade_no", json!(trade_no)),
    ])
}

/// The day's payments and refunds (Beijing day), by time.
fn bill_entries(state: &GatewayState, day: NaiveDate) -> Vec<BillEntry> {
    let mut entries = Vec::new();
    for order in state
        .creation_order
        .iter()
        .filter_map(|number| state.orders.get(number))
    {
        let trade = &order.trade;
        let (Some(trade_no), Some(paid_at)) = (&trade.trade_no, trade.paid_at) else {
            continue;
        };
        let entry = |created_at, finished_at, amount_fen, request_no| BillEntry {
            trade_no: trade_no.clone(),
            out_trade_no: trade.out_trade_no.clone(),
            subject: trade.subject.clone(),
            created_at,
            finished_at,
            amount_fen,
            request_no,
        };
        if beijing_day(paid_at) == day {
            let created = trade.scanned_at.unwrap_or(paid_at);
            entries.push(entry(created, paid_at, trade.total_fen, None));
        }
        for refund in &order.refunds {
            if beijing_day(refund.refunded_at) == day {
                entries.push(entry(
                    refund.refunded_at,
                    refund.refunded_at,
                    -refund.refund_fen,
                    Some(refund.out_request_no.clone()),
                ));
            }
        }
    }
    entries.sort_by_key(|entry| entry.finished_at);
    entries
}

/// `GET /downloadBillFile.resource?token=…`: the ZIP, once per link within 30 s.
async fn download_bill(
    State(shared): SharedState,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let now = shared.clock.now();
    let (zip, day) = {
        let mut state = shared.state();
        let link = params
            .get("token")
            .and_then(|token| state.bill_links.remove(token));
        let Some((day, _)) = link.filter(|(_, at)| now - *at <= BILL_LINK_LIFETIME) else {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
                "下载超时，请重新下载",
            )
                .into_response();
        };
        let entries = bill_entries(&state, day);
        let zip = bill_zip(
            &bill_account(),
            day,
            entries,
            BUYER_LOGON_ID,
            &state.bill_tampers,
            now,
        );
        (zip, day)
    };
    let file_name = format!("{}_{}.csv.zip", bill_account(), day.format("%Y%m%d"));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename={file_name}"),
            ),
        ],
        zip,
    )
        .into_response()
}

fn precreate_content(out_trade_no: &str, qr_code: &str) -> String {
    alipay_json(&[
        ("code", json!(codes::SUCCESS)),
        ("msg", json!("Success")),
        ("out_trade_no", json!(out_trade_no)),
        ("qr_code", json!(qr_code)),
    ])
}

// ---- the cashier ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CashierParams {
    qr_code: Option<String>,
    return_to: Option<String>,
}

impl CashierParams {
    /// Only http(s) links back: never `javascript:`.
    fn return_link(&self) -> Option<Url> {
        self.return_to
            .as_deref()
            .and_then(|link| Url::parse(link).ok())
            .filter(|link| matches!(link.scheme(), "http" | "https"))
    }

    fn order_number(&self, shared: &Shared) -> Option<String> {
        let code = self.qr_code.as_deref().filter(|code| !code.is_empty())?;
        shared.state().qr_codes.get(code).cloned()
    }
}

fn yuan_label(fen: i64) -> String {
    format!("¥{}.{:02}", fen / 100, fen % 100)
}

fn cashier_layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style {
                    "body{font-family:sans-serif;background:#f5f5f5;margin:0;padding:24px;text-align:center}"
                    ".card{background:#fff;border-radius:8px;max-width:420px;margin:0 auto;padding:24px}"
                    ".amount{font-size:36px;font-weight:bold;margin:16px 0}"
                    "button{background:#1677ff;color:#fff;border:0;border-radius:6px;font-size:18px;padding:12px 48px}"
                    ".note{color:#888;font-size:13px}"
                }
            }
            body {
                div class="card" {
                    p class="note" { "支付宝 沙箱" }
                    (body)
                }
            }
        }
    }
}

fn cashier_message(status: StatusCode, title: &str, message: &str, back: Option<&Url>) -> Response {
    let body = html! {
        h1 { (title) }
        p { (message) }
        @if let Some(back) = back {
            p { a href=(back.as_str()) { "返回商户页面" } }
        }
    };
    (status, cashier_layout(title, body)).into_response()
}

fn cashier_refusal(error: &AlipayPayError, back: Option<&Url>) -> Response {
    match error {
        AlipayPayError::UnknownOrder(_) => cashier_message(
            StatusCode::NOT_FOUND,
            "二维码无效",
            "找不到这笔交易，请返回商户页面重新下单。",
            back,
        ),
        AlipayPayError::AlreadyPaid(_) => {
            cashier_message(StatusCode::OK, "该交易已支付", "请勿重复支付。", back)
        }
        AlipayPayError::Expired(..) => cashier_message(
            StatusCode::OK,
            "二维码已过期",
            "请返回商户页面重新下单。",
            back,
        ),
        AlipayPayError::Closed(_) | AlipayPayError::NotPaid(_) => cashier_message(
            StatusCode::OK,
            "支付失败，本笔交易已关闭",
            "请返回商户页面重新下单。",
            back,
        ),
    }
}

/// Scanning the code: the trade is created (WAIT_BUYER_PAY) and shown with a
/// 确认支付 button.
async fn cashier_page(State(shared): SharedState, Query(params): Query<CashierParams>) -> Response {
    let back = params.return_link();
    let Some(number) = params.order_number(&shared) else {
        return cashier_refusal(&AlipayPayError::UnknownOrder(String::new()), back.as_ref());
    };
    let trade = match shared.scan(&number) {
        Ok(trade) => trade,
        Err(error) => return cashier_refusal(&error, back.as_ref()),
    };
    let body = html! {
        p { "付款给 " strong { "沙箱学院（" (SELLER_EMAIL) "）" } }
        p { (trade.subject) }
        p class="amount" { (yuan_label(trade.total_fen)) }
        p class="note" { "当面付 · 商户订单号 " (trade.out_trade_no) }
        form method="post" action=(CASHIER_PATH) {
            input type="hidden" name="qr_code" value=(trade.qr_code);
            @if let Some(back) = &back {
                input type="hidden" name="return_to" value=(back.as_str());
            }
            button type="submit" { "确认支付" }
        }
        p class="note" { "这是模拟的支付宝收银台，不会产生真实扣款。" }
    };
    cashier_layout("支付宝", body).into_response()
}

async fn cashier_pay(State(shared): SharedState, Form(params): Form<CashierParams>) -> Response {
    let back = params.return_link();
    let Some(number) = params.order_number(&shared) else {
        return cashier_refusal(&AlipayPayError::UnknownOrder(String::new()), back.as_ref());
    };
    match shared.mark_paid(&number) {
        Ok(paid) => {
            let delivering = shared.clone();
            let out_trade_no = number.clone();
            shared.spawn_background(async move {
                if let Err(error) = deliver(delivering, out_trade_no).await {
                    tracing::warn!(%error, "the Alipay sandbox could not notify");
                }
            });
            let fen = price_fen(&paid.total_amount).unwrap_or_default();
            let body = html! {
                h1 { "支付成功" }
                p class="amount" { (yuan_label(fen)) }
                p class="note" { "支付宝交易号 " (paid.trade_no) }
                @if let Some(back) = &back {
                    p { a href=(back.as_str()) { "返回商户页面" } }
                }
            };
            cashier_layout("支付成功", body).into_response()
        }
        Err(error) => cashier_refusal(&error, back.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::post;

    use super::*;

    const APP_ID: &str = "9021000140600001";

    /// Our side of the wire, written here with rsa directly.
    fn app_sign(content: &str) -> String {
        let key = SigningKey::<Sha256>::new(
            rsa::PrivateKey::from_pkcs8_pem(APP_PRIVATE_KEY_PEM).expect("app key"),
        );
        rsa2_sign(&key, content)
    }

    fn alipay_public() -> VerifyingKey<Sha256> {
        VerifyingKey::new(rsa::PublicKey::from_public_key_pem(ALIPAY_PUBLIC_KEY_PEM).unwrap())
    }

    /// `(raw content, sign)` of `{"<member>":CONTENT,"sign":"SIGN"}`, cut by hand.
    fn split_answer<'a>(body: &'a str, member: &str) -> (&'a str, Option<String>) {
        let rest = body
            .strip_prefix(&format!("{{\"{member}\":"))
            .unwrap_or_else(|| panic!("no {member} in {body}"));
        match rest.rsplit_once(",\"sign\":") {
            Some((content, sign)) => {
                let sign: String = serde_json::from_str(sign.strip_suffix('}').unwrap()).unwrap();
                (content, Some(sign))
            }
            None => (rest.strip_suffix('}').unwrap(), None),
        }
    }

    struct Reply {
        member: String,
        raw: String,
        sign: Option<String>,
        json: Value,
    }

    impl Reply {
        fn verifies(&self) -> bool {
            self.sign
                .as_deref()
                .is_some_and(|sign| rsa2_verify(&alipay_public(), &self.raw, sign))
        }

        fn code(&self) -> &str {
            self.json["code"].as_str().unwrap_or_default()
        }

        fn sub_code(&self) -> &str {
            self.json["sub_code"].as_str().unwrap_or_default()
        }

        /// A signed, verified success.
        fn ok(self) -> Self {
            assert!(self.verifies(), "unverified: {}", self.raw);
            assert_eq!(self.code(), "10000", "{}", self.raw);
            self
        }

        /// A signed, verified refusal with this code and sub_code.
        fn refused(self, code: &str, sub_code: &str) -> Self {
            assert!(self.verifies(), "unverified: {}", self.raw);
            assert_eq!(
                (self.code(), self.sub_code()),
                (code, sub_code),
                "{}",
                self.raw
            );
            self
        }
    }

    struct Probe {
        sandbox: AlipaySandbox,
        clock: Clock,
        http: reqwest::Client,
    }

    impl Probe {
        async fn start() -> Probe {
            let clock = Clock::system();
            let sandbox = AlipaySandbox::spawn(APP_ID, clock.clone()).await.unwrap();
            let http = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            Probe {
                sandbox,
                clock,
                http,
            }
        }

        /// The common parameters and `biz_content`, unsigned.
        fn params(&self, method: &str, biz: &Value) -> Vec<(String, String)> {
            [
                ("app_id", APP_ID.to_owned()),
                ("method", method.to_owned()),
                ("format", "JSON".to_owned()),
                ("charset", "utf-8".to_owned()),
                ("sign_type", "RSA2".to_owned()),
                ("timestamp", alipay_time(self.clock.now())),
                ("version", "1.0".to_owned()),
                (
                    "notify_url",
                    "https://pay.example.edu.cn/pay/notify/alipay".to_owned(),
                ),
                ("biz_content", biz.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        }

        fn signed(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
            let content = {
                let mut pairs: Vec<&(String, String)> =
                    params.iter().filter(|(_, v)| !v.is_empty()).collect();
                pairs.sort();
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            };
            params.push(("sign".to_owned(), app_sign(&content)));
            params
        }

        /// POSTs `query` in the URL and `form` in the body.
        async fn send_split(
            &self,
            query: &[(String, String)],
            form: &[(String, String)],
            member: &str,
        ) -> Reply {
            let mut url = self.sandbox.base_url();
            url.query_pairs_mut().extend_pairs(query);
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            let response = self
                .http
                .post(url)
                .header(
                    header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded;charset=utf-8",
                )
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let text = response.text().await.unwrap();
            let (raw, sign) = split_answer(&text, member);
            Reply {
                member: member.to_owned(),
                raw: raw.to_owned(),
                sign,
                json: serde_json::from_str(raw).unwrap(),
            }
        }

        async fn send(&self, params: &[(String, String)], member: &str) -> Reply {
            self.send_split(&[], params, member).await
        }

        async fn call(&self, method: &str, biz: &Value) -> Reply {
            let params = Self::signed(self.params(method, biz));
            let member = format!("{}_response", method.replace('.', "_"));
            self.send(&params, &member).await
        }

        fn order(&self, number: &str, amount: &str) -> Value {
            json!({
                "out_trade_no": number,
                "total_amount": amount,
                "subject": "沙箱学院-2024学年学费",
                "product_code": "FACE_TO_FACE_PAYMENT",
                "time_expire": alipay_time(self.clock.now() + TimeDelta::minutes(15)),
            })
        }

        async fn precreate(&self, number: &str) -> String {
            let reply = self
                .call(methods::PRECREATE, &self.order(number, "1200.50"))
                .await
                .ok();
            reply.json["qr_code"].as_str().unwrap().to_owned()
        }

        async fn query(&self, number: &str) -> Reply {
            self.call(methods::QUERY, &json!({ "out_trade_no": number }))
                .await
        }

        async fn close(&self, number: &str) -> Reply {
            self.call(methods::CLOSE, &json!({ "out_trade_no": number }))
                .await
        }
    }

    fn with(params: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            params.iter().filter(|(k, _)| k != name).cloned().collect();
        if let Some(value) = value {
            out.push((name.to_owned(), value.to_owned()));
        }
        out
    }

    #[tokio::test]
    async fn precreate_is_answered_signed_over_its_exact_text_and_is_idempotent() {
        let probe = Probe::start().await;
        // One order, sent twice: its time_expire must not move between the calls.
        let order = probe.order("CP2024A1", "1200.50");
        let reply = probe.call(methods::PRECREATE, &order).await.ok();
        assert_eq!(reply.member, "alipay_trade_precreate_response");
        let qr_code = reply.json["qr_code"].as_str().unwrap().to_owned();
        assert!(
            qr_code.starts_with("https://qr.alipay.com/bax0"),
            "{qr_code}"
        );
        assert_eq!(qr_code.len(), "https://qr.alipay.com/".len() + 24);
        // Written with `\/` as the gateway does: only this exact text verifies.
        assert!(
            reply
                .raw
                .contains(r#""qr_code":"https:\/\/qr.alipay.com\/bax0"#)
        );
        assert!(reply.raw.starts_with(r#"{"code":"10000","msg":"Success","#));
        let reserialised = serde_json::to_string(&reply.json).unwrap();
        assert!(!rsa2_verify(
            &alipay_public(),
            &reserialised,
            reply.sign.as_deref().unwrap()
        ));

        let again = probe.call(methods::PRECREATE, &order).await.ok();
        assert_eq!(again.json["qr_code"], qr_code.as_str());
        probe
            .call(methods::PRECREATE, &probe.order("CP2024A1", "1200.51"))
            .await
            .refused("40004", sub_codes::CONTEXT_INCONSISTENT);
        assert_eq!(probe.sandbox.calls_to(methods::PRECREATE), 3);
        let trade = probe.sandbox.transaction("CP2024A1").unwrap();
        assert_eq!(trade.status, SandboxTradeStatus::NotScanned);
        assert_eq!(trade.total_fen, 120_050);
        assert_eq!(trade.qr_code, qr_code);
        assert_eq!(
            trade.notify_url.as_deref(),
            Some("https://pay.example.edu.cn/pay/notify/alipay")
        );
    }

    #[tokio::test]
    async fn the_gateway_reads_the_query_and_the_body_together() {
        let probe = Probe::start().await;
        let params =
            Probe::signed(probe.params(methods::PRECREATE, &probe.order("CP2024Q1", "9.90")));
        let (form, query): (Vec<_>, Vec<_>) =
            params.into_iter().partition(|(k, _)| k == "biz_content");
        probe
            .send_split(&query, &form, "alipay_trade_precreate_response")
            .await
            .ok();
        assert_eq!(
            probe.sandbox.transaction("CP2024Q1").unwrap().total_fen,
            990
        );
    }

    /// Parameters, and the code and sub_code they are refused with.
    type Case = (Vec<(String, String)>, &'static str, &'static str);

    #[tokio::test]
    async fn bad_requests_are_refused_as_the_gateway_refuses_them() {
        let probe = Probe::start().await;
        let base = probe.params(methods::PRECREATE, &probe.order("CP2024B1", "1.00"));
        let member = "alipay_trade_precreate_response";
        let cases: Vec<Case> = vec![
            (base.clone(), "40001", sub_codes::MISSING_SIGNATURE),
            (
                Probe::signed(with(&base, "sign_type", None)),
                "40001",
                sub_codes::MISSING_SIGNATURE_TYPE,
            ),
            (
                Probe::signed(with(&base, "sign_type", Some("RSA"))),
                "40002",
                sub_codes::INVALID_SIGNATURE_TYPE,
            ),
            (
                Probe::signed(with(&base, "charset", Some("GBK"))),
                "40002",
                sub_codes::INVALID_CHARSET,
            ),
            (
                Probe::signed(with(&base, "format", Some("XML"))),
                "40002",
                sub_codes::INVALID_FORMAT,
            ),
            (
                Probe::signed(with(&base, "timestamp", None)),
                "40001",
                sub_codes::MISSING_TIMESTAMP,
            ),
            (
                Probe::signed(with(
                    &base,
                    "timestamp",
                    Some(&alipay_time(probe.clock.now() - TimeDelta::minutes(20))),
                )),
                "40002",
                sub_codes::INVALID_TIMESTAMP,
            ),
            (
                Probe::signed(with(&base, "timestamp", Some("2024-06-15T10:00:00+08:00"))),
                "40002",
                sub_codes::INVALID_TIMESTAMP,
            ),
            (
                Probe::signed(with(&base, "version", Some("2.0"))),
                "40002",
                sub_codes::INVALID_PARAMETER,
            ),
            (
                Probe::signed(with(&base, "version", None)),
                "40001",
                sub_codes::MISSING_VERSION,
            ),
            // Signed, then a parameter changed.
            (
                with(
                    &Probe::signed(base.clone()),
                    "notify_url",
                    Some("https://evil.example/notify"),
                ),
                "40002",
                sub_codes::INVALID_SIGNATURE,
            ),
            // Signed with a key that is not the app's.
            (
                {
                    let mut params = base.clone();
                    let content = sorted_content(&params, &["sign"], true);
                    params.push(("sign".into(), rsa2_sign(&KEYS.alipay, &content)));
                    params
                },
                "40002",
                sub_codes::INVALID_SIGNATURE,
            ),
            // `sign_type` left out of the signed content (the notification rule).
            (
                {
                    let mut params = base.clone();
                    let content = sorted_content(&params, &["sign", "sign_type"], true);
                    params.push(("sign".into(), app_sign(&content)));
                    params
                },
                "40002",
                sub_codes::INVALID_SIGNATURE,
            ),
        ];
        for (params, code, sub_code) in cases {
            let reply = probe.send(&params, member).await;
            reply.refused(code, sub_code);
        }
        let reply = probe
            .send(
                &Probe::signed(with(&base, "sign", Some("bm90IGEgc2lnbmF0dXJl"))),
                member,
            )
            .await
            .refused("40002", sub_codes::INVALID_SIGNATURE);
        assert!(
            reply.json["sub_msg"]
                .as_str()
                .unwrap()
                .contains("网关生成的验签字符串为：app_id=9021000140600001&biz_content="),
            "{}",
            reply.raw
        );
        // Another app: the gateway has no key to sign with for it.
        let reply = probe
            .send(
                &Probe::signed(with(&base, "app_id", Some("2021000000000009"))),
                member,
            )
            .await;
        assert_eq!(
            (reply.code(), reply.sub_code()),
            ("40002", sub_codes::INVALID_APP_ID)
        );
        assert!(reply.sign.is_none());
        // An unknown method comes back as error_response.
        let unknown = Probe::signed(with(&base, "method", Some("alipay.trade.pay")));
        probe
            .send(&unknown, "error_response")
            .await
            .refused("40002", sub_codes::INVALID_METHOD);
        assert!(probe.sandbox.transactions().is_empty());
        assert_eq!(probe.sandbox.calls_to(methods::PRECREATE), 15);
        assert_eq!(probe.sandbox.calls_to("alipay.trade.pay"), 1);
    }

    #[tokio::test]
    async fn precreate_parameters_are_checked() {
        let probe = Probe::start().await;
        let now = probe.clock.now();
        let good = probe.order("CP2024P1", "1.00");
        let changed = |name: &str, value: Value| {
            let mut biz = good.clone();
            if value.is_null() {
                biz.as_object_mut().unwrap().remove(name);
            } else {
                biz[name] = value;
            }
            biz
        };
        let bad = [
            changed("total_amount", json!("0")),
            changed("total_amount", json!("0.00")),
            changed("total_amount", json!("0.001")),
            changed("total_amount", json!("-1.00")),
            changed("total_amount", json!("1e2")),
            changed("total_amount", json!("1,000.00")),
            changed("total_amount", json!("100000000.01")),
            changed("total_amount", json!(12.5)),
            changed("total_amount", Value::Null),
            changed("subject", Value::Null),
            changed("subject", json!("学".repeat(257))),
            changed("out_trade_no", json!("CP-2024")),
            changed("out_trade_no", json!("C".repeat(65))),
            changed("out_trade_no", Value::Null),
            changed("product_code", json!("FAST_INSTANT_TRADE_PAY")),
            changed(
                "time_expire",
                json!(alipay_time(now - TimeDelta::minutes(1))),
            ),
            changed("time_expire", json!(alipay_time(now + TimeDelta::days(16)))),
            changed("time_expire", json!("2024/06/15 10:00")),
            {
                let mut biz = changed("time_expire", Value::Null);
                biz["timeout_express"] = json!("1.5h");
                biz
            },
        ];
        for biz in bad {
            probe
                .call(methods::PRECREATE, &biz)
                .await
                .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
        }
        let params = Probe::signed(with(
            &probe.params(methods::PRECREATE, &good),
            "notify_url",
            Some("ftp://pay.example.edu.cn/notify"),
        ));
        probe
            .send(&params, "alipay_trade_precreate_response")
            .await
            .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
        let params = Probe::signed(with(
            &probe.params(methods::PRECREATE, &good),
            "biz_content",
            Some("not json"),
        ));
        probe
            .send(&params, "alipay_trade_precreate_response")
            .await
            .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
        assert!(probe.sandbox.transactions().is_empty());

        let mut relative = changed("time_expire", Value::Null);
        relative["timeout_express"] = json!("30m");
        probe.call(methods::PRECREATE, &relative).await.ok();
        let trade = probe.sandbox.transaction("CP2024P1").unwrap();
        assert_eq!(trade.pay_before, trade.created_at + TimeDelta::minutes(30));
        let defaulted = probe.order("CP2024P2", "0.01");
        let mut defaulted = defaulted.as_object().unwrap().clone();
        defaulted.remove("time_expire");
        probe
            .call(methods::PRECREATE, &Value::Object(defaulted))
            .await
            .ok();
        let trade = probe.sandbox.transaction("CP2024P2").unwrap();
        assert_eq!(trade.pay_before, trade.created_at + TimeDelta::hours(3));
        assert_eq!(trade.scan_before, trade.created_at + TimeDelta::hours(2));
    }

    #[tokio::test]
    async fn query_and_close_follow_alipays_states() {
        let probe = Probe::start().await;
        // Precreated, not scanned: no trade at Alipay yet.
        probe.precreate("CP2024S1").await;
        probe
            .query("CP2024S1")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);
        let scanned = probe.sandbox.scan("CP2024S1").unwrap();
        let trade_no = scanned.trade_no.clone().unwrap();
        assert_eq!(trade_no.len(), 28);
        assert!(trade_no.bytes().all(|b| b.is_ascii_digit()));
        let waiting = probe.query("CP2024S1").await.ok();
        assert_eq!(waiting.json["trade_status"], "WAIT_BUYER_PAY");
        assert_eq!(waiting.json["trade_no"], trade_no.as_str());
        assert_eq!(waiting.json["total_amount"], "1200.50");
        assert!(waiting.json.get("send_pay_date").is_none());
        let by_trade_no = probe
            .call(methods::QUERY, &json!({ "trade_no": trade_no }))
            .await
            .ok();
        assert_eq!(by_trade_no.json["out_trade_no"], "CP2024S1");
        let closed = probe.close("CP2024S1").await.ok();
        assert_eq!(closed.json["trade_no"], trade_no.as_str());
        assert_eq!(
            probe.query("CP2024S1").await.ok().json["trade_status"],
            "TRADE_CLOSED"
        );
        probe
            .close("CP2024S1")
            .await
            .refused("40004", sub_codes::TRADE_STATUS_ERROR);
        let qr = probe
            .call(methods::PRECREATE, &probe.order("CP2024S1", "1200.50"))
            .await
            .refused("40004", sub_codes::TRADE_HAS_CLOSE);
        assert!(qr.json.get("qr_code").is_none());
        assert_eq!(
            probe.sandbox.pay_silently("CP2024S1"),
            Err(AlipayPayError::Closed("CP2024S1".into()))
        );

        // Closed before the scan: "no such trade", and nothing was closed: the code
        // can still be scanned and paid (documented); with the reported lock, not.
        probe.precreate("CP2024S2").await;
        probe
            .close("CP2024S2")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);
        probe
            .query("CP2024S2")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);
        let scanned = probe.sandbox.scan("CP2024S2").unwrap();
        assert_eq!(scanned.status, SandboxTradeStatus::WaitBuyerPay);
        probe.sandbox.lock_codes_closed_before_scan(true);
        probe.precreate("CP2024S4").await;
        probe
            .close("CP2024S4")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);
        assert_eq!(
            probe.sandbox.scan("CP2024S4"),
            Err(AlipayPayError::Closed("CP2024S4".into()))
        );
        probe.sandbox.lock_codes_closed_before_scan(false);

        // Paid.
        probe.precreate("CP2024S3").await;
        let paid = probe.sandbox.pay_silently("CP2024S3").unwrap();
        let reply = probe.query("CP2024S3").await.ok();
        assert_eq!(reply.json["trade_status"], "TRADE_SUCCESS");
        assert_eq!(reply.json["trade_no"], paid.trade_no.as_str());
        assert_eq!(reply.json["buyer_pay_amount"], "1200.50");
        assert_eq!(reply.json["buyer_user_id"], BUYER_ID);
        assert_eq!(
            reply.json["send_pay_date"],
            alipay_time(paid.gmt_payment).as_str()
        );
        probe
            .close("CP2024S3")
            .await
            .refused("40004", sub_codes::TRADE_STATUS_ERROR);
        probe
            .call(methods::PRECREATE, &probe.order("CP2024S3", "1200.50"))
            .await
            .refused("40004", sub_codes::TRADE_HAS_SUCCESS);
        assert_eq!(
            probe.sandbox.pay_silently("CP2024S3"),
            Err(AlipayPayError::AlreadyPaid("CP2024S3".into()))
        );
        probe
            .query("CP2024S9")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);
        probe
            .call(methods::QUERY, &json!({}))
            .await
            .refused("40004", sub_codes::ACQ_INVALID_PARAMETER);
    }

    #[tokio::test]
    async fn orders_cannot_be_paid_after_they_expire() {
        let probe = Probe::start().await;
        probe.precreate("CP2024E1").await; // time_expire: 15 minutes
        probe.precreate("CP2024E2").await;
        probe.sandbox.scan("CP2024E2").unwrap();
        probe.clock.advance(Duration::from_secs(16 * 60));
        let trade = probe.sandbox.transaction("CP2024E1").unwrap();
        assert_eq!(trade.status, SandboxTradeStatus::TradeClosed);
        assert_eq!(
            probe.sandbox.pay_silently("CP2024E1"),
            Err(AlipayPayError::Expired(
                "CP2024E1".into(),
                trade.scan_before
            ))
        );
        probe
            .query("CP2024E1")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);
        // Scanned, then expired: Alipay closed it.
        assert_eq!(
            probe.query("CP2024E2").await.ok().json["trade_status"],
            "TRADE_CLOSED"
        );
        assert!(matches!(
            probe.sandbox.pay_silently("CP2024E2"),
            Err(AlipayPayError::Expired(..))
        ));
        probe
            .close("CP2024E2")
            .await
            .refused("40004", sub_codes::TRADE_STATUS_ERROR);

        // The code itself lasts two hours, whatever time_expire says.
        let mut biz = probe.order("CP2024E3", "5.00");
        biz["time_expire"] = json!(alipay_time(probe.clock.now() + TimeDelta::hours(5)));
        probe.call(methods::PRECREATE, &biz).await.ok();
        probe.clock.advance(Duration::from_secs(2 * 3600 + 60));
        assert!(matches!(
            probe.sandbox.scan("CP2024E3"),
            Err(AlipayPayError::Expired(..))
        ));
    }

    struct Receiver {
        url: String,
        received: Arc<Mutex<Vec<(String, String)>>>,
        answer: Arc<Mutex<(u16, String)>>,
        server: JoinHandle<()>,
    }

    impl Receiver {
        /// Our notification endpoint, reduced to recording `(content type, body)`
        /// and answering what it is told (`200 success` at first).
        async fn start() -> Receiver {
            let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
            let answer = Arc::new(Mutex::new((200, "success".to_owned())));
            let app = Router::new().route(
                "/pay/notify/alipay",
                post({
                    let received = received.clone();
                    let answer = answer.clone();
                    move |headers: axum::http::HeaderMap, body: String| async move {
                        let content_type = headers
                            .get(header::CONTENT_TYPE)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        received.lock().unwrap().push((content_type, body));
                        let (status, body) = answer.lock().unwrap().clone();
                        (StatusCode::from_u16(status).unwrap(), body)
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .unwrap();
            let url = format!(
                "http://{}/pay/notify/alipay",
                listener.local_addr().unwrap()
            );
            let server = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Receiver {
                url,
                received,
                answer,
                server,
            }
        }

        fn received(&self) -> Vec<(String, String)> {
            self.received.lock().unwrap().clone()
        }

        fn answer(&self, status: u16, body: &str) {
            *self.answer.lock().unwrap() = (status, body.to_owned());
        }

        async fn wait_for(&self, count: usize) -> Vec<(String, String)> {
            for _ in 0..300 {
                let received = self.received();
                if received.len() >= count {
                    return received;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{count} notifications never arrived");
        }
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    impl Probe {
        async fn precreate_to(&self, number: &str, notify_url: &str) -> String {
            let params = Probe::signed(with(
                &self.params(methods::PRECREATE, &self.order(number, "1200.50")),
                "notify_url",
                Some(notify_url),
            ));
            let reply = self
                .send(&params, "alipay_trade_precreate_response")
                .await
                .ok();
            reply.json["qr_code"].as_str().unwrap().to_owned()
        }
    }

    fn form_params(body: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Alipay's rule, independently: sorted, without sign and sign_type.
    fn notification_verifies(params: &[(String, String)]) -> bool {
        let mut pairs: Vec<&(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "sign" && k != "sign_type")
            .collect();
        pairs.sort();
        let content = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        rsa2_verify(&alipay_public(), &content, param(params, "sign"))
    }

    #[tokio::test]
    async fn paying_sends_a_signed_form_notification() {
        let probe = Probe::start().await;
        let receiver = Receiver::start().await;
        probe.precreate_to("CP2024N1", &receiver.url).await;
        let paid = probe.sandbox.pay("CP2024N1").await.unwrap();
        assert_eq!(paid.notification_answers, vec![(200, "success".to_owned())]);
        assert_eq!(paid.trade_no.len(), 28);
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        let (content_type, body) = &received[0];
        assert!(content_type.starts_with("application/x-www-form-urlencoded"));
        let params = form_params(body);
        assert!(notification_verifies(&params), "{body}");
        assert_eq!(param(&params, "notify_type"), "trade_status_sync");
        assert_eq!(param(&params, "trade_status"), "TRADE_SUCCESS");
        assert_eq!(param(&params, "app_id"), APP_ID);
        assert_eq!(param(&params, "auth_app_id"), APP_ID);
        assert_eq!(param(&params, "out_trade_no"), "CP2024N1");
        assert_eq!(param(&params, "trade_no"), paid.trade_no);
        assert_eq!(param(&params, "total_amount"), "1200.50");
        assert_eq!(param(&params, "sign_type"), "RSA2");
        assert_eq!(param(&params, "subject"), "沙箱学院-2024学年学费");
        assert_eq!(param(&params, "buyer_id"), BUYER_ID);
        assert_eq!(param(&params, "gmt_payment"), alipay_time(paid.gmt_payment));
        let notify_id = param(&params, "notify_id").to_owned();
        assert!(!notify_id.is_empty());
        let trade = probe.sandbox.transaction("CP2024N1").unwrap();
        assert_eq!(trade.status, SandboxTradeStatus::TradeSuccess);
        assert_eq!(trade.notify_id.as_deref(), Some(notify_id.as_str()));

        // Sent again: the same notify_id, signed afresh.
        probe.sandbox.send_notification("CP2024N1").await.unwrap();
        let again = form_params(&receiver.received()[1].1);
        assert!(notification_verifies(&again));
        assert_eq!(param(&again, "notify_id"), notify_id);
        assert_eq!(
            probe.sandbox.notification_answers(),
            vec![
                ("CP2024N1".to_owned(), 200, "success".to_owned()),
                ("CP2024N1".to_owned(), 200, "success".to_owned()),
            ]
        );
        assert_eq!(
            probe.sandbox.send_notification("CP2024N9").await,
            Err(AlipayPayError::UnknownOrder("CP2024N9".into()))
        );
    }

    #[tokio::test]
    async fn notifications_count_only_when_answered_exactly_success() {
        let probe = Probe::start().await;
        let receiver = Receiver::start().await;
        probe.precreate_to("CP2024R1", &receiver.url).await;
        receiver.answer(200, "SUCCESS");
        probe.sandbox.set_notification_copies(3);
        let paid = probe.sandbox.pay("CP2024R1").await.unwrap();
        assert_eq!(paid.notification_answers.len(), 3);
        // Alipay's schedule, on its clock: nothing before 4 minutes, then one retry.
        assert_eq!(probe.sandbox.deliver_due_retries().await, 0);
        probe.clock.advance(Duration::from_secs(4 * 60));
        assert_eq!(probe.sandbox.deliver_due_retries().await, 1);
        assert_eq!(receiver.received().len(), 4);
        // 20 minutes on, two retries are due (at 14 and 24 minutes): the first is
        // answered `success`, so the second is never sent.
        probe.clock.advance(Duration::from_secs(20 * 60));
        receiver.answer(200, "success");
        assert_eq!(
            probe.sandbox.deliver_due_retries().await,
            1,
            "stops at `success`"
        );
        probe.clock.advance(Duration::from_secs(25 * 3600));
        assert_eq!(probe.sandbox.deliver_due_retries().await, 0);
        assert_eq!(receiver.received().len(), 5);
        let answers = probe.sandbox.notification_answers();
        assert_eq!(answers.last().unwrap().2, "success");
        assert_eq!(answers.iter().filter(|a| a.2 == "SUCCESS").count(), 4);
        for (_, body) in receiver.received() {
            assert!(notification_verifies(&form_params(&body)));
        }
        assert!(!is_acknowledged(500, "success"));
        assert!(!is_acknowledged(200, "success\n"));
        assert!(is_acknowledged(200, "success"));

        // No notify_url: nothing is sent.
        let params = Probe::signed(with(
            &probe.params(methods::PRECREATE, &probe.order("CP2024R2", "1.00")),
            "notify_url",
            None,
        ));
        probe
            .send(&params, "alipay_trade_precreate_response")
            .await
            .ok();
        assert!(
            probe
                .sandbox
                .pay("CP2024R2")
                .await
                .unwrap()
                .notification_answers
                .is_empty()
        );
    }

    #[tokio::test]
    async fn tampered_notifications_differ_as_intended() {
        let probe = Probe::start().await;
        probe.precreate("CP2024T1").await;
        let genuine = form_params(
            &probe
                .sandbox
                .notification_for("CP2024T1", AlipayTamper::None)
                .unwrap(),
        );
        assert!(notification_verifies(&genuine));
        assert_eq!(param(&genuine, "trade_status"), "TRADE_SUCCESS");
        // Describing a payment did not make one.
        assert_eq!(
            probe.sandbox.transaction("CP2024T1").unwrap().status,
            SandboxTradeStatus::NotScanned
        );
        let form =
            |tamper| form_params(&probe.sandbox.notification_for("CP2024T1", tamper).unwrap());
        let amount = form(AlipayTamper::WrongAmount("0.01".into()));
        assert!(notification_verifies(&amount));
        assert_eq!(param(&amount, "total_amount"), "0.01");
        let app = form(AlipayTamper::WrongAppId);
        assert!(notification_verifies(&app));
        assert_ne!(param(&app, "app_id"), APP_ID);
        assert_eq!(param(&app, "app_id"), param(&app, "auth_app_id"));
        let forged = form(AlipayTamper::BadSignature);
        assert!(!notification_verifies(&forged));
        let other = form(AlipayTamper::UnknownOrder("CP2024ZZ".into()));
        assert!(notification_verifies(&other));
        assert_eq!(param(&other, "out_trade_no"), "CP2024ZZ");
        let closed = form(AlipayTamper::TradeStatus("TRADE_CLOSED".into()));
        assert!(notification_verifies(&closed));
        assert_eq!(param(&closed, "trade_status"), "TRADE_CLOSED");
        assert_eq!(
            probe
                .sandbox
                .notification_for("CP2024T9", AlipayTamper::None),
            Err(AlipayPayError::UnknownOrder("CP2024T9".into()))
        );
        // Once paid, the genuine notification is the payment's.
        let paid = probe.sandbox.pay_silently("CP2024T1").unwrap();
        let real = form(AlipayTamper::None);
        assert_eq!(param(&real, "trade_no"), paid.trade_no);
        assert_eq!(
            param(&real, "notify_id"),
            probe
                .sandbox
                .transaction("CP2024T1")
                .unwrap()
                .notify_id
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_cashier_scans_pays_notifies_and_links_back() {
        let probe = Probe::start().await;
        let receiver = Receiver::start().await;
        let qr_code = probe.precreate_to("CP2024C1", &receiver.url).await;
        let back = "https://pay.example.edu.cn/pc/pay/result?no=CP2024C1";
        let page = probe
            .http
            .get(probe.sandbox.cashier_url(&qr_code, Some(back)))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("确认支付") && html.contains("¥1200.50"),
            "{html}"
        );
        assert!(html.contains("沙箱学院-2024学年学费"));
        assert_eq!(
            probe.sandbox.transaction("CP2024C1").unwrap().status,
            SandboxTradeStatus::WaitBuyerPay
        );
        let paid = probe
            .http
            .post(probe.sandbox.base_url().join(CASHIER_PATH).unwrap())
            .form(&[("qr_code", qr_code.as_str()), ("return_to", back)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(paid.contains("支付成功") && paid.contains(back), "{paid}");
        let received = receiver.wait_for(1).await;
        assert!(notification_verifies(&form_params(&received[0].1)));
        assert_eq!(
            probe.sandbox.transaction("CP2024C1").unwrap().status,
            SandboxTradeStatus::TradeSuccess
        );
        let again = probe
            .http
            .get(
                probe
                    .sandbox
                    .cashier_url(&qr_code, Some("javascript:alert(1)")),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(again.contains("该交易已支付") && !again.contains("javascript"));
        let unknown = probe
            .http
            .get(
                probe
                    .sandbox
                    .cashier_url("https://qr.alipay.com/nothing", None),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        // A code closed before it was scanned, where Alipay locks it (as reported).
        probe.sandbox.lock_codes_closed_before_scan(true);
        let dead = probe.precreate("CP2024C2").await;
        probe.close("CP2024C2").await;
        let page = probe
            .http
            .get(probe.sandbox.cashier_url(&dead, None))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("本笔交易已关闭"), "{page}");
    }

    #[tokio::test]
    async fn injected_failures_and_spoilt_answers() {
        let probe = Probe::start().await;
        probe.precreate("CP2024F1").await;
        probe
            .sandbox
            .fail_next(methods::QUERY, "20000", sub_codes::UNKNOWN_ERROR, 1);
        probe
            .sandbox
            .fail_next(methods::QUERY, "40004", sub_codes::SYSTEM_ERROR, 1);
        let unavailable = probe
            .query("CP2024F1")
            .await
            .refused("20000", sub_codes::UNKNOWN_ERROR);
        assert_eq!(unavailable.json["msg"], "Service Currently Unavailable");
        probe
            .query("CP2024F1")
            .await
            .refused("40004", sub_codes::SYSTEM_ERROR);
        probe
            .query("CP2024F1")
            .await
            .refused("40004", sub_codes::TRADE_NOT_EXIST);

        // Scanned, so that there is a trade to close.
        probe.sandbox.scan("CP2024F1").unwrap();
        let tampers = Arc::new(AtomicUsize::new(0));
        for tamper in [
            AlipayResponseTamper::BadSignature,
            AlipayResponseTamper::Unsigned,
            AlipayResponseTamper::Edited,
        ] {
            probe
                .sandbox
                .tamper_next_responses(methods::CLOSE, tamper, 1);
            let reply = probe.close("CP2024F1").await;
            assert!(!reply.verifies(), "{tamper:?}: {}", reply.raw);
            tampers.fetch_add(1, Ordering::SeqCst);
        }
        // The first close took effect though its answer could not be believed.
        assert_eq!(
            probe.sandbox.transaction("CP2024F1").unwrap().status,
            SandboxTradeStatus::TradeClosed
        );
        assert!(probe.close("CP2024F1").await.verifies());
        assert_eq!(tampers.load(Ordering::SeqCst), 3);
        let calls = probe.sandbox.calls();
        assert_eq!(calls.len(), 8);
        assert_eq!(calls[1].sub_code.as_deref(), Some(sub_codes::UNKNOWN_ERROR));
        assert_eq!(calls[0].code, "10000");
    }

    #[test]
    fn prices_and_timeouts_read_as_alipay_reads_them() {
        assert_eq!(price_fen("1200.50"), Some(120_050));
        assert_eq!(price_fen("1200.5"), Some(120_050));
        assert_eq!(price_fen("0.01"), Some(1));
        assert_eq!(price_fen("100000000"), Some(10_000_000_000));
        for bad in [
            "0",
            "0.00",
            "5.",
            ".5",
            "1.234",
            "-1",
            "1e2",
            "",
            "100000000.01",
        ] {
            assert_eq!(price_fen(bad), None, "{bad}");
        }
        let now = DateTime::parse_from_rfc3339("2024-06-15T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timeout_express("90m", now), Some(TimeDelta::minutes(90)));
        assert_eq!(timeout_express("2h", now), Some(TimeDelta::hours(2)));
        assert_eq!(timeout_express("15d", now), Some(TimeDelta::days(15)));
        // 10:00 in Beijing: until midnight.
        assert_eq!(timeout_express("1c", now), Some(TimeDelta::hours(14)));
        for bad in ["1.5h", "0m", "m", "10s", "-5m", ""] {
            assert_eq!(timeout_express(bad, now), None, "{bad}");
        }
    }
}
