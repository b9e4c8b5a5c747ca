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
//!   (see the `bills` module; [`AlipaySandbox::tamper_bills`] spoils it).
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
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use maud::html;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::clock::Clock;
use crate::sandbox::kit::{self, CashierLook, after, china, random_string};

mod bills;
mod cashier;
mod deliver;
mod gateway;
mod refunds;
mod state;
mod validate;
pub use bills::AlipayBillTamper;
use bills::{BillEntry, bill_zip};
use cashier::*;
use deliver::*;
use gateway::*;
use refunds::*;
use state::*;
use validate::*;

/// The demo school's app private key (应用私钥), published: sandbox and tests only.
pub const APP_PRIVATE_KEY_PEM: &str = include_str!("../keys/alipay_app_private_key.pem");

/// The public half of the key the sandbox signs with (its 支付宝公钥); campus-pay
/// verifies answers and notifications with it.
pub const ALIPAY_PUBLIC_KEY_PEM: &str = include_str!("../keys/alipay_public_key.pem");

const APP_PUBLIC_KEY_PEM: &str = include_str!("../keys/alipay_app_public_key.pem");
const ALIPAY_PRIVATE_KEY_PEM: &str = include_str!("../keys/alipay_private_key.pem");

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

#[cfg(test)]
mod tests;
