//! A loopback stand-in for WeChat Pay API v3 (`api.mch.weixin.qq.com`) as a direct
//! merchant in public-key mode sees it, plus a cashier page that plays the payer.
//!
//! It is WeChat's side, written from WeChat's docs and sharing nothing with our client
//! in `pay::wechatpay`: it verifies every request's `Authorization` with the merchant
//! public key (401 `SIGN_ERROR` otherwise), signs every answer and notification with
//! its own "WeChat Pay public key" (微信支付公钥, [`SANDBOX_PUBLIC_KEY_ID`]), encrypts
//! notification resources with the merchant's APIv3 key, and refuses what WeChat
//! refuses with WeChat's HTTP statuses and codes. Its crypto is small and local on
//! purpose: a bug in our signer cannot agree with itself here.
//!
//! What it plays, beyond the happy path: duplicate notifications (concurrent copies),
//! late ones, lost ones ([`WechatPaySandbox::pay_silently`]), forged and modified ones
//! ([`Tamper`]), answers whose signature fails on purpose ([`ResponseTamper`]),
//! injected failures ([`WechatPaySandbox::fail_next`]) and slow answers
//! ([`WechatPaySandbox::hang_next`]).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::signature::RsaKeyPair;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, html};
use rand::RngExt;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::clock::Clock;

#[path = "wechat_pay_bills.rs"]
mod bills;
#[path = "wechat_pay_refunds.rs"]
mod refunds;
pub use refunds::{
    NOT_ENOUGH, RefundSandboxError, RefundState as SandboxRefundState, SandboxRefund, refund_paths,
};

/// The ID of the sandbox's "WeChat Pay public key": `Wechatpay-Serial` on every answer
/// and notification. Requests that carry a `Wechatpay-Serial` must carry this one.
pub const SANDBOX_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_01142321349124100000000000000000";

/// The demo school's merchant API private key (published: sandbox and tests only).
pub const MERCHANT_PRIVATE_KEY_PEM: &str = include_str!("keys/merchant_private_key.pem");

/// The public half of the key the sandbox signs with; campus-pay verifies with it.
pub const WECHATPAY_PUBLIC_KEY_PEM: &str = include_str!("keys/wechatpay_public_key.pem");

const MERCHANT_PUBLIC_KEY_PEM: &str = include_str!("keys/merchant_public_key.pem");
const WECHATPAY_PRIVATE_KEY_PEM: &str = include_str!("keys/wechatpay_private_key.pem");

/// Who pays a Native (QR) order in the cashier or through [`WechatPaySandbox::pay`].
pub const NATIVE_PAYER_OPENID: &str = "o_sandbox_native_payer";

/// The value WeChat's signature probes start with; they must fail verification.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";

const AUTH_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// Requests and answers older or newer than this are refused (WeChat: 5 minutes).
const CLOCK_SKEW_SECS: i64 = 300;
/// An order without `time_expire` can be paid for this long (WeChat's default).
const DEFAULT_ORDER_LIFETIME: TimeDelta = TimeDelta::days(7);
/// A `time_expire` sooner than this after the order is pushed back to it.
const MIN_ORDER_LIFETIME: TimeDelta = TimeDelta::minutes(1);
const MAX_ORDER_LIFETIME: TimeDelta = TimeDelta::days(90);
/// WeChat gives up on a notification attempt after a few seconds.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(5);
/// WeChat's retries of a notification not acknowledged: "15s/15s/30s/3m/10m/20m/30m/
/// 30m/30m/60m/3h/3h/3h/6h/6h (总计 24h4m)" (支付通知 API,
/// <https://pay.weixin.qq.com/docs/partner/apis/partner-native-payment/payment-notice.html>,
/// quoted in `wechat-anchors.md`).
pub const NOTIFICATION_RETRIES: [Duration; 15] = [
    Duration::from_secs(15),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(3 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(20 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(6 * 3600),
];
const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// The business codes the sandbox answers with, as WeChat spells them.
pub mod codes {
    pub const SIGN_ERROR: &str = "SIGN_ERROR";
    pub const PARAM_ERROR: &str = "PARAM_ERROR";
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const APPID_MCHID_NOT_MATCH: &str = "APPID_MCHID_NOT_MATCH";
    /// Prepay or close of a paid order. APIv3 keeps v2's spelling here, without an
    /// underscore: merchants' code in the wild matches `{"code":"ORDERPAID"}` on
    /// HTTP 400 (the v3 docs' error tables do not list it).
    pub const ORDER_PAID: &str = "ORDERPAID";
    pub const ORDER_CLOSED: &str = "ORDER_CLOSED";
    pub const ORDER_NOT_EXIST: &str = "ORDER_NOT_EXIST";
    pub const RESOURCE_NOT_EXISTS: &str = "RESOURCE_NOT_EXISTS";
    pub const SYSTEM_ERROR: &str = "SYSTEM_ERROR";
}

/// The routes the sandbox answers; [`WechatPaySandbox::calls_to`] and
/// [`WechatPaySandbox::fail_next`] take either these templates or a concrete path.
pub mod paths {
    pub const JSAPI: &str = "/v3/pay/transactions/jsapi";
    pub const NATIVE: &str = "/v3/pay/transactions/native";
    pub const QUERY_BY_OUT_TRADE_NO: &str = "/v3/pay/transactions/out-trade-no/{out_trade_no}";
    pub const QUERY_BY_TRANSACTION_ID: &str = "/v3/pay/transactions/id/{transaction_id}";
    pub const CLOSE: &str = "/v3/pay/transactions/out-trade-no/{out_trade_no}/close";
    /// Public-key merchants have no platform certificates: always 404.
    pub const CERTIFICATES: &str = "/v3/certificates";
    /// Any other `/v3/...` path.
    pub const UNKNOWN: &str = "/v3/{unknown}";
    /// The cashier page (GET shows it, POST pays).
    pub const CASHIER: &str = "/sandbox/cashier";

    pub(super) const OUT_TRADE_NO_PREFIX: &str = "/v3/pay/transactions/out-trade-no/";
    pub(super) const TRANSACTION_ID_PREFIX: &str = "/v3/pay/transactions/id/";

    /// The concrete query path for one order (without `?mchid=`).
    pub fn query(out_trade_no: &str) -> String {
        format!("{OUT_TRADE_NO_PREFIX}{out_trade_no}")
    }

    pub fn close(out_trade_no: &str) -> String {
        format!("{OUT_TRADE_NO_PREFIX}{out_trade_no}/close")
    }
}

/// The merchant the sandbox knows: requests must come from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxMerchant {
    pub appid: String,
    pub mchid: String,
    /// The merchant API certificate serial our `Authorization` must name.
    pub merchant_serial: String,
    /// The APIv3 key (32 ASCII bytes) that encrypts notification resources.
    pub apiv3_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeType {
    Jsapi,
    Native,
}

impl TradeType {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeType::Jsapi => "JSAPI",
            TradeType::Native => "NATIVE",
        }
    }
}

/// The `trade_state`s a JSAPI or Native order goes through (REVOKED, USERPAYING and
/// PAYERROR belong to micropay; REFUND comes with refunds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    NotPay,
    Success,
    Closed,
}

impl TradeState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::NotPay => "NOTPAY",
            TradeState::Success => "SUCCESS",
            TradeState::Closed => "CLOSED",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            TradeState::NotPay => "订单未支付",
            TradeState::Success => "支付成功",
            TradeState::Closed => "订单已关闭",
        }
    }
}

/// An order as the sandbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxTransaction {
    pub out_trade_no: String,
    pub trade_type: TradeType,
    pub trade_state: TradeState,
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub attach: Option<String>,
    pub notify_url: String,
    /// Fen.
    pub total: i64,
    /// The JSAPI payer from the prepay; the Native payer once paid.
    pub openid: Option<String>,
    /// As the first prepay gave it.
    pub time_expire: Option<DateTime<FixedOffset>>,
    /// When payment stops being possible (time_expire, bounded; 7 days without).
    pub pay_before: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Every prepay_id handed out for it (JSAPI), in order.
    pub prepay_ids: Vec<String>,
    /// Every code_url handed out for it (Native), in order.
    pub code_urls: Vec<String>,
    pub transaction_id: Option<String>,
    pub success_time: Option<DateTime<FixedOffset>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The notification `id`, the same for every retry and duplicate.
    pub notification_id: Option<String>,
}

/// One request to `/v3/...`, refused ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub method: String,
    /// The route template, one of [`paths`].
    pub route: &'static str,
    /// The concrete path, without the query.
    pub path: String,
    /// Path and query exactly as received (what the signature covers).
    pub uri: String,
    pub body: String,
    pub wechatpay_serial: Option<String>,
    pub status: u16,
}

/// What [`WechatPaySandbox::pay`] and friends report.
#[derive(Debug, Clone, PartialEq)]
pub struct PaidTransaction {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub success_time: DateTime<FixedOffset>,
    pub total: i64,
    /// The transaction as the query (and the notification's resource) shows it.
    pub transaction: Value,
    /// `(status, body)` of each notification attempt made before returning; status 0
    /// means no HTTP answer (the body then says why).
    pub notification_answers: Vec<(u16, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("the sandbox has no order {0}")]
    UnknownOrder(String),
    #[error("order {0} is paid already")]
    AlreadyPaid(String),
    #[error("order {0} is closed")]
    Closed(String),
    #[error("order {0} expired at {1}")]
    Expired(String, DateTime<Utc>),
    #[error("order {0} is not paid, so WeChat would not notify")]
    NotPaid(String),
}

/// How [`WechatPaySandbox::notification_for`] departs from what WeChat would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// Exactly what WeChat sends.
    None,
    /// Genuinely signed and encrypted, but `amount.total`/`payer_total` say this.
    WrongAmount(i64),
    /// A signature probe: `Wechatpay-Signature: WECHATPAY/SIGNTEST/…`, must fail.
    Signtest,
    /// Correctly signed ten minutes ago.
    StaleTimestamp,
    /// Signed with a key that is not WeChat's (the merchant's own), same serial.
    WrongKey,
    /// Genuinely signed and encrypted, for this other out_trade_no.
    UnknownOrder(String),
    /// Genuinely signed and encrypted (with our APIv3 key), but the transaction names
    /// another `appid`: what a merchant serving several apps receives for the others.
    OtherAppId,
    /// Genuinely signed and encrypted, but the transaction names another `mchid`.
    OtherMerchant,
    /// Genuinely signed and encrypted, but `trade_state` is this (`NOTPAY`, `CLOSED`,
    /// `PAYERROR`, `REFUND`…) instead of `SUCCESS`, and `success_time` is absent.
    TradeState(String),
}

/// An app id and a merchant id that are not the sandbox merchant's.
const OTHER_APPID: &str = "wx0000000000000000";
const OTHER_MCHID: &str = "1900000000";

/// How [`WechatPaySandbox::tamper_next_responses`] spoils an answer's signature. The
/// request itself takes effect as usual: only its answer cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseTamper {
    Signtest,
    WrongKey,
    StaleTimestamp,
    /// Signed correctly but names another public key ID.
    UnknownSerial,
}

/// A notification exactly as it would be POSTed: headers (names as WeChat sends
/// them) and the raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Notification {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

pub struct WechatPaySandbox {
    base_url: Url,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl WechatPaySandbox {
    pub async fn spawn(merchant: SandboxMerchant, clock: Clock) -> std::io::Result<Self> {
        if merchant.apiv3_key.len() != 32 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the APIv3 key must be 32 bytes",
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
            merchant,
            clock: clock.split_off(),
            http,
            state: Mutex::new(PayState::default()),
            background: Mutex::new(JoinSet::new()),
            bills: bills::Bills::default(),
            refunds: refunds::Refunds::default(),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the WeChat Pay sandbox stopped");
            }
        });
        Ok(Self {
            base_url,
            shared,
            server,
        })
    }

    /// Serves `https://api.mch.weixin.qq.com/` and the cashier.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// Sets WeChat's clock this far ahead of the app's (negative: behind). WeChat
    /// refuses a request whose timestamp is more than five minutes off its own, and
    /// signs with its own time ("时间戳…与当前时间相差不能超过5分钟", the API v3 signing
    /// rules); the app must accept a small skew and refuse a large one.
    pub fn set_clock_skew(&self, skew: TimeDelta) {
        self.shared.clock.set_skew(skew);
    }

    pub fn merchant(&self) -> &SandboxMerchant {
        &self.shared.merchant
    }

    /// The cashier for a JSAPI order (where the demo sends a browser instead of
    /// `WeixinJSBridge`); `return_to` becomes the link shown after paying.
    pub fn cashier_url_for_prepay(&self, prepay_id: &str, return_to: Option<&str>) -> Url {
        self.cashier_url("prepay_id", prepay_id, return_to)
    }

    /// The cashier for a Native order (what the PC page's QR code stands for).
    pub fn cashier_url_for_code_url(&self, code_url: &str, return_to: Option<&str>) -> Url {
        self.cashier_url("code_url", code_url, return_to)
    }

    fn cashier_url(&self, key: &str, value: &str, return_to: Option<&str>) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(paths::CASHIER);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(key, value);
            if let Some(return_to) = return_to {
                query.append_pair("return_to", return_to);
            }
        }
        url
    }

    /// The payee the cashier names (default 沙箱商户).
    pub fn set_payee_name(&self, name: &str) {
        self.shared.state().payee_name = name.to_owned();
    }

    /// As if the payer paid: SUCCESS, then the notification is sent; returns after
    /// its HTTP answer(s) (and after [`Self::set_notification_delay`]).
    pub async fn pay(&self, out_trade_no: &str) -> Result<PaidTransaction, PayError> {
        let mut paid = self.shared.mark_paid(out_trade_no)?;
        paid.notification_answers = deliver(self.shared.clone(), out_trade_no.to_owned()).await?;
        Ok(paid)
    }

    /// Paid, and the notification never arrives: only a query finds out.
    pub fn pay_silently(&self, out_trade_no: &str) -> Result<PaidTransaction, PayError> {
        self.shared.mark_paid(out_trade_no)
    }

    /// Sends a paid order's notification (again): same id and resource, fresh
    /// signature. Honours the copies and delay switches.
    pub async fn send_notification(
        &self,
        out_trade_no: &str,
    ) -> Result<Vec<(u16, String)>, PayError> {
        deliver(self.shared.clone(), out_trade_no.to_owned()).await
    }

    /// The notification WeChat would send for this order now, possibly tampered
    /// with, for the test to POST itself. For an order not paid yet it describes the
    /// payment as it would be (a fresh transaction_id) and the order stays unpaid:
    /// use that with a [`Tamper`] to forge.
    pub fn notification_for(
        &self,
        out_trade_no: &str,
        tamper: Tamper,
    ) -> Result<Notification, PayError> {
        let (mut transaction, id) = self.shared.notification_resource(out_trade_no)?;
        match &tamper {
            Tamper::WrongAmount(total) => {
                transaction["amount"]["total"] = json!(total);
                transaction["amount"]["payer_total"] = json!(total);
            }
            Tamper::UnknownOrder(other) => {
                transaction["out_trade_no"] = json!(other);
                let now = self.shared.clock.now();
                transaction["transaction_id"] = json!(new_transaction_id(now));
            }
            Tamper::OtherAppId => transaction["appid"] = json!(OTHER_APPID),
            Tamper::OtherMerchant => transaction["mchid"] = json!(OTHER_MCHID),
            Tamper::TradeState(state) => {
                transaction["trade_state"] = json!(state);
                if let Some(fields) = transaction.as_object_mut() {
                    fields.remove("success_time");
                }
            }
            _ => {}
        }
        let signing = match tamper {
            Tamper::Signtest => Some(ResponseTamper::Signtest),
            Tamper::StaleTimestamp => Some(ResponseTamper::StaleTimestamp),
            Tamper::WrongKey => Some(ResponseTamper::WrongKey),
            _ => None,
        };
        Ok(self.shared.build_notification(&transaction, &id, signing))
    }

    /// Each notification is sent `copies` times concurrently (at least once).
    pub fn set_notification_copies(&self, copies: usize) {
        self.shared.state().notification_copies = copies.max(1);
    }

    /// Each notification waits this long before it is sent.
    pub fn set_notification_delay(&self, delay: Duration) {
        self.shared.state().notification_delay = delay;
    }

    /// After a notification gets no 200/204, it is due again after each of these
    /// pauses in turn, on the sandbox's clock, until one succeeds; the default is
    /// WeChat's [`NOTIFICATION_RETRIES`]. Nothing is sent on its own: a test advances
    /// the clock and calls [`Self::deliver_due_retries`].
    pub fn set_notification_retries(&self, schedule: Vec<Duration>) {
        self.shared.state().retry_schedule = schedule;
    }

    /// Sends every retry that is due by the sandbox's clock (each as often as its
    /// schedule says it would have been sent by now, stopping at the first 200/204),
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

    /// Every order, in the order they were created.
    pub fn transactions(&self) -> Vec<SandboxTransaction> {
        let state = self.shared.state();
        state
            .creation_order
            .iter()
            .filter_map(|no| state.orders.get(no))
            .map(|order| order.tx.clone())
            .collect()
    }

    pub fn transaction(&self, out_trade_no: &str) -> Option<SandboxTransaction> {
        let state = self.shared.state();
        state.orders.get(out_trade_no).map(|order| order.tx.clone())
    }

    /// The sandbox's side of the books, order by order (read-only): what it charged
    /// and when, whether it still takes money, and the refunds under each order.
    pub fn ledger(&self) -> Vec<crate::sandbox::ledger::ChannelRecord> {
        use crate::sandbox::ledger::{ChannelRecord, ChannelRefund, Charge, Upstream};
        let now = self.shared.clock.now();
        let refunds = self.refunds();
        self.transactions()
            .into_iter()
            .map(|tx| ChannelRecord {
                upstream: Upstream::WechatPay,
                asked_fen: tx.total,
                charge: match (tx.trade_state, tx.success_time) {
                    (TradeState::Success, Some(at)) => Some(Charge {
                        amount_fen: tx.total,
                        at: at.with_timezone(&Utc),
                        transaction_id: tx.transaction_id.clone(),
                    }),
                    _ => None,
                },
                closed: tx.trade_state == TradeState::Closed
                    || (tx.trade_state == TradeState::NotPay && now >= tx.pay_before),
                refunds: refunds
                    .iter()
                    .filter(|refund| refund.out_trade_no == tx.out_trade_no)
                    .map(|refund| ChannelRefund {
                        out_refund_no: refund.out_refund_no.clone(),
                        amount_fen: refund.refund,
                        succeeded: refund.status == refunds::RefundState::Success,
                    })
                    .collect(),
                out_trade_no: tx.out_trade_no,
            })
            .collect()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.state().calls.clone()
    }

    /// Requests to `path`: a route template from [`paths`] or a concrete path.
    pub fn calls_to(&self, path: &str) -> usize {
        let state = self.shared.state();
        state
            .calls
            .iter()
            .filter(|call| call.route == path || call.path == path)
            .count()
    }

    /// `(out_trade_no, status, body)` of every notification attempt, in the order the
    /// answers came; status 0 means no HTTP answer.
    pub fn notification_answers(&self) -> Vec<(String, u16, String)> {
        self.shared.state().notification_answers.clone()
    }

    /// The next `times` requests to `path` (template or concrete) are answered
    /// `status {"code": code, …}`, signed, before any other check; nothing happens.
    pub fn fail_next(&self, path: &str, status: u16, code: &str, times: usize) {
        let mut state = self.shared.state();
        let queue = state.injected_failures.entry(path.to_owned()).or_default();
        queue.extend(std::iter::repeat_n((status, code.to_owned()), times));
    }

    /// The next `times` requests to `path` (template or concrete) are held for
    /// `duration` before they are handled, as when WeChat Pay is slow: a caller that
    /// gives up sooner never sees the answer (and, its connection closed, the held
    /// request may be dropped unhandled: the caller cannot know which).
    pub fn hang_next(&self, path: &str, duration: Duration, times: usize) {
        let mut state = self.shared.state();
        let queue = state.hangs.entry(path.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(duration, times));
    }

    /// How many requests a hang holds right now.
    pub fn held_requests(&self) -> usize {
        self.shared.state().held
    }

    /// The next `times` answers to `path` carry a signature that fails verification,
    /// though the request took effect.
    pub fn tamper_next_responses(&self, path: &str, tamper: ResponseTamper, times: usize) {
        let mut state = self.shared.state();
        let queue = state.response_tampers.entry(path.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(tamper, times));
    }
}

impl Drop for WechatPaySandbox {
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
//
// WeChat's side signs and encrypts with aws-lc-rs, while our verifier
// (`pay::wechatpay::keys`) checks signatures with the `rsa` crate and our decryptor
// (`pay::wechatpay::aead`) opens with `aes-gcm`: a bug in either of ours cannot agree
// with itself here. (Our own signer is aws-lc-rs, so requests are checked with `rsa`.)
// RSA-SHA256 PKCS#1 v1.5 and AEAD_AES_256_GCM as WeChat Pay's API v3 documents them
// (签名生成 / 证书和回调报文解密); checked against the official Go SDK's vectors in
// `wechat-anchors.md` §3.6 below.

struct Keys {
    wechatpay: RsaKeyPair,
    merchant: VerifyingKey<Sha256>,
    /// Signs forgeries: a real key that is not WeChat's.
    forger: RsaKeyPair,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let private = |pem: &str| {
        pem_der(pem)
            .and_then(|der| RsaKeyPair::from_pkcs8(&der).ok())
            .expect("the sandbox's PKCS#8 keys parse")
    };
    let merchant = rsa::PublicKey::from_public_key_pem(MERCHANT_PUBLIC_KEY_PEM)
        .map(VerifyingKey::<Sha256>::new)
        .expect("the sandbox's SPKI keys parse");
    Keys {
        wechatpay: private(WECHATPAY_PRIVATE_KEY_PEM),
        merchant,
        forger: private(MERCHANT_PRIVATE_KEY_PEM),
    }
});

/// The DER inside a PEM block: the base64 lines between the armour.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).ok()
}

/// Base64 of RSA-SHA256 PKCS#1 v1.5 over `message`.
fn rsa_sign(key: &RsaKeyPair, message: &[u8]) -> String {
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .expect("an RSA key signs any message");
    STANDARD.encode(signature)
}

fn rsa_verify(key: &VerifyingKey<Sha256>, message: &[u8], signature_b64: &str) -> bool {
    let Ok(raw) = STANDARD.decode(signature_b64) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// AEAD_AES_256_GCM as WeChat uses it: base64(ciphertext ‖ 16-byte tag).
fn aes_gcm_encrypt(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> String {
    let key = UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .expect("the APIv3 key is 32 bytes (checked)");
    let nonce = Nonce::try_assume_unique_for_key(nonce).expect("nonces are 12 bytes");
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut sealed)
        .expect("AES-GCM encrypts any notification-sized message");
    STANDARD.encode(sealed)
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

/// `2024-06-15T10:00:00+08:00`, as WeChat writes times.
fn wechat_time(time: DateTime<Utc>) -> DateTime<FixedOffset> {
    let seconds = time.timestamp();
    DateTime::from_timestamp(seconds, 0)
        .unwrap_or(time)
        .with_timezone(&china())
}

fn format_time(time: &DateTime<FixedOffset>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// 28 digits like WeChat's `4200002177202406153917234567`.
fn new_transaction_id(now: DateTime<Utc>) -> String {
    let date = now.with_timezone(&china()).format("%Y%m%d");
    format!(
        "4200{}{date}{}",
        random_string(DIGITS, 6),
        random_string(DIGITS, 10)
    )
}

/// `wx` + time + random, 36 characters like `wx201410272009395522657a690389285100`.
fn new_prepay_id(now: DateTime<Utc>) -> String {
    let time = now.with_timezone(&china()).format("%Y%m%d%H%M%S");
    format!("wx{time}{}", random_string(HEX, 20))
}

fn new_code_url() -> String {
    format!(
        "weixin://wxpay/bizpayurl?pr={}",
        random_string(ALPHANUMERIC, 9)
    )
}

// ---- state ------------------------------------------------------------------------

struct Shared {
    merchant: SandboxMerchant,
    clock: Clock,
    http: reqwest::Client,
    state: Mutex<PayState>,
    /// Notifications sent in the background (cashier, retries); aborted on drop.
    background: Mutex<JoinSet<()>>,
    bills: bills::Bills,
    refunds: refunds::Refunds,
}

struct PayState {
    orders: HashMap<String, Order>,
    creation_order: Vec<String>,
    /// prepay_id or code_url → out_trade_no.
    handles: HashMap<String, String>,
    /// transaction_id → out_trade_no.
    transaction_ids: HashMap<String, String>,
    /// Nonces seen in verified requests, with their timestamps.
    nonces: HashMap<String, i64>,
    calls: Vec<RecordedCall>,
    injected_failures: HashMap<String, VecDeque<(u16, String)>>,
    hangs: HashMap<String, VecDeque<Duration>>,
    /// Requests being held by [`WechatPaySandbox::hang_next`] right now.
    held: usize,
    response_tampers: HashMap<String, VecDeque<ResponseTamper>>,
    notification_answers: Vec<(String, u16, String)>,
    notification_copies: usize,
    notification_delay: Duration,
    retry_schedule: Vec<Duration>,
    /// Notifications not acknowledged yet, each with its next time.
    pending_retries: Vec<PendingRetry>,
    payee_name: String,
}

impl Default for PayState {
    fn default() -> Self {
        Self {
            orders: HashMap::new(),
            creation_order: Vec::new(),
            handles: HashMap::new(),
            transaction_ids: HashMap::new(),
            nonces: HashMap::new(),
            calls: Vec::new(),
            injected_failures: HashMap::new(),
            hangs: HashMap::new(),
            held: 0,
            response_tampers: HashMap::new(),
            notification_answers: Vec::new(),
            notification_copies: 1,
            notification_delay: Duration::ZERO,
            retry_schedule: NOTIFICATION_RETRIES.to_vec(),
            pending_retries: Vec::new(),
            payee_name: "沙箱商户".to_owned(),
        }
    }
}

impl PayState {
    /// The first queued item for the route template or the concrete path.
    fn pop_for<T>(queues: &mut HashMap<String, VecDeque<T>>, route: &str, path: &str) -> Option<T> {
        for key in [path, route] {
            if let Some(item) = queues.get_mut(key).and_then(VecDeque::pop_front) {
                return Some(item);
            }
        }
        None
    }
}

struct Order {
    tx: SandboxTransaction,
    /// What the first prepay asked for: a repeat must ask for exactly this.
    params: PrepayParams,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PrepayParams {
    trade_type: TradeType,
    appid: String,
    mchid: String,
    description: String,
    out_trade_no: String,
    time_expire: Option<String>,
    attach: Option<String>,
    notify_url: String,
    total: i64,
    openid: Option<String>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, PayState> {
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

    /// The transaction as the query API shows it.
    fn transaction_json(tx: &SandboxTransaction) -> Value {
        let mut value = json!({
            "appid": tx.appid,
            "mchid": tx.mchid,
            "out_trade_no": tx.out_trade_no,
            "trade_state": tx.trade_state.as_str(),
            "trade_state_desc": tx.trade_state.description(),
        });
        if tx.trade_state == TradeState::Success {
            value["transaction_id"] = json!(tx.transaction_id);
            value["trade_type"] = json!(tx.trade_type.as_str());
            value["bank_type"] = json!("OTHERS");
            value["success_time"] = json!(tx.success_time.as_ref().map(format_time));
            value["payer"] = json!({ "openid": tx.openid });
            value["amount"] = json!({
                "total": tx.total,
                "payer_total": tx.total,
                "currency": "CNY",
                "payer_currency": "CNY",
            });
            if let Some(attach) = &tx.attach {
                value["attach"] = json!(attach);
            }
        } else {
            // Unpaid orders come back thin: no trade_type, payer, currency.
            value["amount"] = json!({ "total": tx.total, "payer_currency": "CNY" });
        }
        value
    }

    fn mark_paid(&self, out_trade_no: &str) -> Result<PaidTransaction, PayError> {
        let now = self.clock.now();
        let mut guard = self.state();
        let state = &mut *guard;
        let order = state
            .orders
            .get_mut(out_trade_no)
            .ok_or_else(|| PayError::UnknownOrder(out_trade_no.to_owned()))?;
        match order.tx.trade_state {
            TradeState::Success => return Err(PayError::AlreadyPaid(out_trade_no.to_owned())),
            TradeState::Closed => return Err(PayError::Closed(out_trade_no.to_owned())),
            TradeState::NotPay if now >= order.tx.pay_before => {
                return Err(PayError::Expired(
                    out_trade_no.to_owned(),
                    order.tx.pay_before,
                ));
            }
            TradeState::NotPay => {}
        }
        let transaction_id = new_transaction_id(now);
        let success_time = wechat_time(now);
        let tx = &mut order.tx;
        tx.trade_state = TradeState::Success;
        tx.transaction_id = Some(transaction_id.clone());
        tx.success_time = Some(success_time);
        if tx.openid.is_none() {
            tx.openid = Some(NATIVE_PAYER_OPENID.to_owned());
        }
        tx.notification_id = Some(uuid::Uuid::new_v4().to_string());
        state
            .transaction_ids
            .insert(transaction_id.clone(), out_trade_no.to_owned());
        Ok(PaidTransaction {
            out_trade_no: out_trade_no.to_owned(),
            transaction_id,
            success_time,
            total: tx.total,
            transaction: Self::transaction_json(tx),
            notification_answers: Vec::new(),
        })
    }

    /// The plaintext and id of an order's notification; for an unpaid order, as the
    /// payment would be, without paying it.
    fn notification_resource(&self, out_trade_no: &str) -> Result<(Value, String), PayError> {
        let now = self.clock.now();
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| PayError::UnknownOrder(out_trade_no.to_owned()))?;
        if order.tx.trade_state == TradeState::Success {
            let id = order.tx.notification_id.clone().unwrap_or_default();
            return Ok((Self::transaction_json(&order.tx), id));
        }
        let mut as_paid = order.tx.clone();
        as_paid.trade_state = TradeState::Success;
        as_paid.transaction_id = Some(new_transaction_id(now));
        as_paid.success_time = Some(wechat_time(now));
        as_paid
            .openid
            .get_or_insert_with(|| NATIVE_PAYER_OPENID.to_owned());
        let id = uuid::Uuid::new_v4().to_string();
        Ok((Self::transaction_json(&as_paid), id))
    }

    /// The `Wechatpay-*` headers over `body`, as WeChat signs answers and
    /// notifications, possibly spoilt.
    fn wechatpay_headers(
        &self,
        body: &[u8],
        tamper: Option<ResponseTamper>,
    ) -> Vec<(String, String)> {
        let mut timestamp = self.clock.now().timestamp();
        if tamper == Some(ResponseTamper::StaleTimestamp) {
            timestamp -= 2 * CLOCK_SKEW_SECS;
        }
        let nonce = random_string(ALPHANUMERIC, 32);
        let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let keys = &*KEYS;
        let signature = match tamper {
            Some(ResponseTamper::Signtest) => {
                let noise: Vec<u8> = random_string(ALPHANUMERIC, 256).into_bytes();
                format!("{SIGNTEST_PREFIX}{}", STANDARD.encode(noise))
            }
            Some(ResponseTamper::WrongKey) => rsa_sign(&keys.forger, &message),
            _ => rsa_sign(&keys.wechatpay, &message),
        };
        let serial = if tamper == Some(ResponseTamper::UnknownSerial) {
            "PUB_KEY_ID_00000000000000000000000000000000".to_owned()
        } else {
            SANDBOX_PUBLIC_KEY_ID.to_owned()
        };
        vec![
            ("Wechatpay-Nonce".to_owned(), nonce),
            ("Wechatpay-Signature".to_owned(), signature),
            ("Wechatpay-Timestamp".to_owned(), timestamp.to_string()),
            ("Wechatpay-Serial".to_owned(), serial),
            (
                "Wechatpay-Signature-Type".to_owned(),
                "WECHATPAY2-SHA256-RSA2048".to_owned(),
            ),
        ]
    }

    fn build_notification(
        &self,
        transaction: &Value,
        id: &str,
        tamper: Option<ResponseTamper>,
    ) -> Notification {
        let nonce = random_string(ALPHANUMERIC, 12);
        let plaintext = transaction.to_string();
        let ciphertext = aes_gcm_encrypt(
            self.merchant.apiv3_key.as_bytes(),
            nonce.as_bytes(),
            b"transaction",
            plaintext.as_bytes(),
        );
        let create_time = format_time(&wechat_time(self.clock.now()));
        let body = json!({
            "id": id,
            "create_time": create_time,
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": "transaction",
                "nonce": nonce,
            },
        })
        .to_string();
        let mut headers = self.wechatpay_headers(body.as_bytes(), tamper);
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        Notification { headers, body }
    }

    /// A paid order's notification for sending, and where to.
    fn outgoing_notification(
        &self,
        out_trade_no: &str,
    ) -> Result<(String, Value, String), PayError> {
        let state = self.state();
        let order = state
            .orders
            .get(out_trade_no)
            .ok_or_else(|| PayError::UnknownOrder(out_trade_no.to_owned()))?;
        if order.tx.trade_state != TradeState::Success {
            return Err(PayError::NotPaid(out_trade_no.to_owned()));
        }
        let id = order.tx.notification_id.clone().unwrap_or_default();
        Ok((
            order.tx.notify_url.clone(),
            Self::transaction_json(&order.tx),
            id,
        ))
    }

    fn record_answers(&self, out_trade_no: &str, answers: &[(u16, String)]) {
        let mut state = self.state();
        for (status, body) in answers {
            let entry = (out_trade_no.to_owned(), *status, body.clone());
            state.notification_answers.push(entry);
        }
    }
}

fn is_acknowledged(status: u16) -> bool {
    matches!(status, 200 | 204)
}

async fn post_notification(
    http: &reqwest::Client,
    url: &str,
    notification: &Notification,
) -> (u16, String) {
    let mut request = http.post(url).body(notification.body.clone());
    for (name, value) in &notification.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        }
        Err(error) => (0, error.to_string()),
    }
}

/// Sends a paid order's notification: after the delay, `copies` at once; retries in
/// the background when none was acknowledged and a schedule is set.
async fn deliver(
    shared: Arc<Shared>,
    out_trade_no: String,
) -> Result<Vec<(u16, String)>, PayError> {
    let (url, transaction, id) = shared.outgoing_notification(&out_trade_no)?;
    let (copies, delay, schedule) = {
        let state = shared.state();
        (
            state.notification_copies,
            state.notification_delay,
            state.retry_schedule.clone(),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let notification = shared.build_notification(&transaction, &id, None);
    let mut attempts = JoinSet::new();
    for _ in 0..copies {
        let http = shared.http.clone();
        let url = url.clone();
        let notification = notification.clone();
        attempts.spawn(async move { post_notification(&http, &url, &notification).await });
    }
    let mut answers = Vec::with_capacity(copies);
    while let Some(joined) = attempts.join_next().await {
        let answer = joined.unwrap_or_else(|error| (0, error.to_string()));
        shared.record_answers(&out_trade_no, std::slice::from_ref(&answer));
        answers.push(answer);
    }
    let acknowledged = answers.iter().any(|(status, _)| is_acknowledged(*status));
    let mut schedule: VecDeque<Duration> = schedule.into();
    if let (false, Some(first)) = (acknowledged, schedule.pop_front()) {
        let due = after(shared.clock.now(), first);
        shared.state().pending_retries.push(PendingRetry {
            out_trade_no,
            transaction,
            id,
            url,
            due,
            remaining: schedule,
        });
    }
    Ok(answers)
}

/// A notification to send again at `due` (sandbox clock), then after each pause left.
struct PendingRetry {
    out_trade_no: String,
    transaction: Value,
    id: String,
    url: String,
    due: DateTime<Utc>,
    remaining: VecDeque<Duration>,
}

/// Sends the retries due by the sandbox's clock; see
/// [`WechatPaySandbox::deliver_due_retries`].
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
            let notification = shared.build_notification(&retry.transaction, &retry.id, None);
            let answer = post_notification(&shared.http, &retry.url, &notification).await;
            sent += 1;
            shared.record_answers(&retry.out_trade_no, std::slice::from_ref(&answer));
            if is_acknowledged(answer.0) {
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

// ---- WeChat Pay's errors ------------------------------------------------------------

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    detail: Option<Box<Value>>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            detail: None,
        }
    }

    fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message)
    }

    fn order_not_exist() -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::ORDER_NOT_EXIST, "订单不存在")
    }

    fn order_paid() -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::ORDER_PAID, "订单已支付")
    }

    fn order_closed() -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::ORDER_CLOSED, "订单已关闭")
    }

    /// `PARAM_ERROR` naming the field, in WeChat's words.
    fn param(
        location: &str,
        pointer: &str,
        label: &str,
        rule: &str,
        value: Option<&Value>,
    ) -> Self {
        let message = format!("输入源“/{location}{pointer}”映射到值字段“{label}”{rule}");
        let mut detail = json!({ "location": location, "field": pointer });
        if let Some(value) = value {
            detail["value"] = value.clone();
        }
        Self::new(StatusCode::BAD_REQUEST, codes::PARAM_ERROR, message).with_detail(detail)
    }

    /// 401 `SIGN_ERROR` with what the sandbox signed, as WeChat shows it.
    fn sign(message: &str, method: &Method, uri: &str, signed: Option<&[u8]>) -> Self {
        let (length, truncated) = match signed {
            Some(signed) => (signed.len(), truncate_sign_message(signed)),
            None => (0, String::new()),
        };
        Self::new(StatusCode::UNAUTHORIZED, codes::SIGN_ERROR, message).with_detail(json!({
            "detail": { "issue": "sign not match" },
            "field": "signature",
            "location": "authorization",
            "sign_information": {
                "method": method.as_str(),
                "url": uri,
                "sign_message_length": length,
                "truncated_sign_message": truncated,
            },
        }))
    }

    fn body(&self) -> Vec<u8> {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(detail) = &self.detail {
            body["detail"] = (**detail).clone();
        }
        body.to_string().into_bytes()
    }
}

/// The four header lines of the signed message and the first character of the body,
/// as WeChat's `truncated_sign_message` shows them.
fn truncate_sign_message(signed: &[u8]) -> String {
    let text = String::from_utf8_lossy(signed);
    let mut out = String::new();
    for (index, line) in text.split('\n').enumerate() {
        if index < 4 {
            out.push_str(line);
            out.push('\n');
        } else {
            out.extend(line.chars().take(1));
            out.push('\n');
            break;
        }
    }
    out
}

/// A successful answer: status and JSON body (none for 204).
struct Reply {
    status: StatusCode,
    body: Option<Value>,
}

impl Reply {
    fn json(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

// ---- routes -----------------------------------------------------------------------

type SharedState = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::CASHIER, get(cashier_page).post(cashier_pay))
        .merge(bills::routes())
        .merge(refunds::routes())
        .fallback(api)
        .with_state(shared)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Jsapi,
    Native,
    QueryByOutTradeNo(String),
    QueryByTransactionId(String),
    Close(String),
    Certificates,
    Unknown,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        let post = method == Method::POST;
        let get = method == Method::GET;
        if path == paths::JSAPI && post {
            return Route::Jsapi;
        }
        if path == paths::NATIVE && post {
            return Route::Native;
        }
        if path == paths::CERTIFICATES && get {
            return Route::Certificates;
        }
        if let Some(rest) = path.strip_prefix(paths::OUT_TRADE_NO_PREFIX) {
            if let Some(number) = rest.strip_suffix("/close")
                && post
                && !number.contains('/')
            {
                return Route::Close(percent_decode(number));
            }
            if get && !rest.contains('/') {
                return Route::QueryByOutTradeNo(percent_decode(rest));
            }
        }
        if let Some(id) = path.strip_prefix(paths::TRANSACTION_ID_PREFIX)
            && get
            && !id.contains('/')
        {
            return Route::QueryByTransactionId(percent_decode(id));
        }
        Route::Unknown
    }

    fn template(&self) -> &'static str {
        match self {
            Route::Jsapi => paths::JSAPI,
            Route::Native => paths::NATIVE,
            Route::QueryByOutTradeNo(_) => paths::QUERY_BY_OUT_TRADE_NO,
            Route::QueryByTransactionId(_) => paths::QUERY_BY_TRANSACTION_ID,
            Route::Close(_) => paths::CLOSE,
            Route::Certificates => paths::CERTIFICATES,
            Route::Unknown => paths::UNKNOWN,
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything under `/v3/`: recorded, checked as WeChat checks, answered signed.
async fn api(
    State(shared): SharedState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !uri.path().starts_with("/v3/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let route = Route::parse(&method, uri.path());
    let hang = {
        let mut state = shared.state();
        let hang = PayState::pop_for(&mut state.hangs, route.template(), uri.path());
        state.held += usize::from(hang.is_some());
        hang
    };
    if let Some(duration) = hang {
        // Counted down even when the caller gives up and the connection is dropped.
        let _held = HeldRequest(shared.clone());
        tokio::time::sleep(duration).await;
    }
    let raw_uri = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let (status, answer) = match shared.handle(&route, &method, &uri, &raw_uri, &headers, &body) {
        Ok(reply) => {
            let body = reply.body.map(|body| body.to_string().into_bytes());
            (reply.status, body.unwrap_or_default())
        }
        Err(error) => (error.status, error.body()),
    };
    let tamper = {
        let mut state = shared.state();
        let tamper = PayState::pop_for(&mut state.response_tampers, route.template(), uri.path());
        state.calls.push(RecordedCall {
            method: method.to_string(),
            route: route.template(),
            path: uri.path().to_owned(),
            uri: raw_uri,
            body: String::from_utf8_lossy(&body).into_owned(),
            wechatpay_serial: header_text(&headers, "wechatpay-serial").map(str::to_owned),
            status: status.as_u16(),
        });
        tamper
    };
    shared.signed_response(status, answer, tamper)
}

/// One request held by a hang, for as long as it lives.
struct HeldRequest(Arc<Shared>);

impl Drop for HeldRequest {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.held = state.held.saturating_sub(1);
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

impl Shared {
    fn signed_response(
        &self,
        status: StatusCode,
        body: Vec<u8>,
        tamper: Option<ResponseTamper>,
    ) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in self.wechatpay_headers(&body, tamper) {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(name, value);
            }
        }
        let request_id = random_string(HEX, 40).to_uppercase();
        if let Ok(value) = HeaderValue::try_from(request_id) {
            headers.insert("request-id", value);
        }
        if !body.is_empty() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        (status, headers, body).into_response()
    }

    fn handle(
        &self,
        route: &Route,
        method: &Method,
        uri: &Uri,
        raw_uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply, ApiError> {
        self.injected_failure(route.template(), uri.path())?;
        self.check_authorization(method, raw_uri, headers, body)?;
        check_content_headers(method, headers)?;
        if let Some(serial) = header_text(headers, "wechatpay-serial")
            && serial != SANDBOX_PUBLIC_KEY_ID
        {
            return Err(ApiError::invalid_request(format!(
                "Wechatpay-Serial {serial} 对应的微信支付公钥或平台证书不存在"
            )));
        }
        match route {
            Route::Jsapi => self.prepay(TradeType::Jsapi, body),
            Route::Native => self.prepay(TradeType::Native, body),
            Route::QueryByOutTradeNo(number) => {
                self.check_query_mchid(uri.query())?;
                let state = self.state();
                let order = state
                    .orders
                    .get(number)
                    .ok_or_else(ApiError::order_not_exist)?;
                Ok(Reply::json(Self::transaction_json(&order.tx)))
            }
            Route::QueryByTransactionId(id) => {
                self.check_query_mchid(uri.query())?;
                let state = self.state();
                let order = state
                    .transaction_ids
                    .get(id)
                    .and_then(|number| state.orders.get(number))
                    .ok_or_else(ApiError::order_not_exist)?;
                Ok(Reply::json(Self::transaction_json(&order.tx)))
            }
            Route::Close(number) => self.close(number, body),
            Route::Certificates => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::RESOURCE_NOT_EXISTS,
                "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥",
            )),
            Route::Unknown => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::RESOURCE_NOT_EXISTS,
                "请求的资源不存在",
            )),
        }
    }

    fn injected_failure(&self, route: &str, path: &str) -> Result<(), ApiError> {
        let mut state = self.state();
        match PayState::pop_for(&mut state.injected_failures, route, path) {
            Some((status, code)) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Err(ApiError::new(
                    status,
                    &code,
                    "failure injected by the sandbox",
                ))
            }
            None => Ok(()),
        }
    }

    /// WeChat's merchant-side check of `Authorization`.
    fn check_authorization(
        &self,
        method: &Method,
        uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError> {
        let refuse =
            |message: &str, signed: Option<&[u8]>| ApiError::sign(message, method, uri, signed);
        let Some(authorization) = header_text(headers, "authorization") else {
            return Err(refuse("缺少 Authorization 请求头", None));
        };
        let fields = parse_authorization(authorization).map_err(|why| refuse(why, None))?;
        let mut message = format!(
            "{}\n{uri}\n{}\n{}\n",
            method.as_str(),
            fields.timestamp,
            fields.nonce_str
        )
        .into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let signed = Some(message.as_slice());
        if fields.mchid != self.merchant.mchid {
            return Err(refuse("Authorization 中的商户号不存在或与请求不符", signed));
        }
        if fields.serial_no != self.merchant.merchant_serial {
            return Err(refuse(
                "商户证书序列号有误，请确认证书序列号与私钥匹配",
                signed,
            ));
        }
        let Ok(timestamp) = fields.timestamp.parse::<i64>() else {
            return Err(refuse("Authorization 中的 timestamp 格式错误", signed));
        };
        let now = self.clock.now().timestamp();
        if (now - timestamp).abs() > CLOCK_SKEW_SECS {
            return Err(refuse("请求的时间戳已过期，请确认服务器时间", signed));
        }
        if fields.nonce_str.is_empty() || fields.nonce_str.len() > 32 {
            return Err(refuse("Authorization 中的 nonce_str 不合法", signed));
        }
        if !rsa_verify(&KEYS.merchant, &message, fields.signature) {
            return Err(refuse("错误的签名，验签失败", signed));
        }
        let mut state = self.state();
        state
            .nonces
            .retain(|_, seen| (now - *seen).abs() <= 2 * CLOCK_SKEW_SECS);
        if state.nonces.contains_key(fields.nonce_str) {
            return Err(refuse("nonce_str 重复，请求可能被重放", signed));
        }
        state.nonces.insert(fields.nonce_str.to_owned(), timestamp);
        Ok(())
    }

    fn check_query_mchid(&self, query: Option<&str>) -> Result<(), ApiError> {
        let mchid = query.and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "mchid")
                .map(|(_, value)| value.into_owned())
        });
        match mchid {
            None => Err(ApiError::param(
                "query",
                "/mchid",
                "直连商户号",
                "必填性规则校验失败，此字段为必填项",
                None,
            )),
            Some(mchid) if mchid != self.merchant.mchid => {
                Err(ApiError::invalid_request("mchid 与发起请求的商户号不一致"))
            }
            Some(_) => Ok(()),
        }
    }

    fn prepay(&self, trade_type: TradeType, body: &[u8]) -> Result<Reply, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::PARAM_ERROR,
                "请求体不是合法的 JSON",
            )
        })?;
        let params = validate_prepay(trade_type, &value)?;
        if params.mchid != self.merchant.mchid {
            return Err(ApiError::invalid_request(
                "请求体中的 mchid 与发起请求的商户号不一致",
            ));
        }
        if params.appid != self.merchant.appid {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::APPID_MCHID_NOT_MATCH,
                "AppID和mch_id不匹配",
            ));
        }
        let now = self.clock.now();
        let mut guard = self.state();
        let state = &mut *guard;
        let number = params.out_trade_no.clone();
        if let Some(order) = state.orders.get(&number) {
            match order.tx.trade_state {
                TradeState::Success => return Err(ApiError::order_paid()),
                TradeState::Closed => return Err(ApiError::order_closed()),
                TradeState::NotPay => {}
            }
            if order.params != params {
                return Err(ApiError::invalid_request("201 商户订单号重复"));
            }
        } else {
            let order = new_order(params, now);
            state.creation_order.push(number.clone());
            state.orders.insert(number.clone(), order);
        }
        let order = state
            .orders
            .get_mut(&number)
            .expect("the order was found or inserted above");
        let reply = match trade_type {
            TradeType::Jsapi => {
                let prepay_id = new_prepay_id(now);
                order.tx.prepay_ids.push(prepay_id.clone());
                state.handles.insert(prepay_id.clone(), number);
                json!({ "prepay_id": prepay_id })
            }
            TradeType::Native => {
                let code_url = new_code_url();
                order.tx.code_urls.push(code_url.clone());
                state.handles.insert(code_url.clone(), number);
                json!({ "code_url": code_url })
            }
        };
        Ok(Reply::json(reply))
    }

    fn close(&self, number: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::PARAM_ERROR,
                "请求体不是合法的 JSON",
            )
        })?;
        let object = value.as_object().cloned().unwrap_or_default();
        let mchid = required_text(&object, "mchid", "/mchid", "直连商户号", 1, 32)?;
        if mchid != self.merchant.mchid {
            return Err(ApiError::invalid_request(
                "请求体中的 mchid 与发起请求的商户号不一致",
            ));
        }
        let now = self.clock.now();
        let mut state = self.state();
        let order = state
            .orders
            .get_mut(number)
            .ok_or_else(ApiError::order_not_exist)?;
        match order.tx.trade_state {
            TradeState::Success => Err(ApiError::order_paid()),
            // Closing twice is harmless: WeChat answers 204 again.
            TradeState::Closed => Ok(Reply::no_content()),
            TradeState::NotPay => {
                order.tx.trade_state = TradeState::Closed;
                order.tx.closed_at = Some(now);
                Ok(Reply::no_content())
            }
        }
    }
}

fn new_order(params: PrepayParams, now: DateTime<Utc>) -> Order {
    let time_expire = params
        .time_expire
        .as_deref()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok());
    let pay_before = match time_expire {
        Some(time) => time
            .with_timezone(&Utc)
            .clamp(now + MIN_ORDER_LIFETIME, now + MAX_ORDER_LIFETIME),
        None => now + DEFAULT_ORDER_LIFETIME,
    };
    let tx = SandboxTransaction {
        out_trade_no: params.out_trade_no.clone(),
        trade_type: params.trade_type,
        trade_state: TradeState::NotPay,
        appid: params.appid.clone(),
        mchid: params.mchid.clone(),
        description: params.description.clone(),
        attach: params.attach.clone(),
        notify_url: params.notify_url.clone(),
        total: params.total,
        openid: params.openid.clone(),
        time_expire,
        pay_before,
        created_at: now,
        prepay_ids: Vec::new(),
        code_urls: Vec::new(),
        transaction_id: None,
        success_time: None,
        closed_at: None,
        notification_id: None,
    };
    Order { tx, params }
}

/// `Accept` on every call and `Content-Type` on POST, both `application/json`.
fn check_content_headers(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let accept = header_text(headers, "accept").unwrap_or("");
    // The docs say "请设置为application/json"; `*/*` (reqwest's default) is not that.
    if !accept.contains("application/json") {
        return Err(ApiError::invalid_request("Http头Accept未设置或者值不合法"));
    }
    if method == Method::POST {
        let content_type = header_text(headers, "content-type").unwrap_or("");
        if !content_type.trim_start().starts_with("application/json") {
            return Err(ApiError::invalid_request(
                "Http头Content-Type值必须为application/json",
            ));
        }
    }
    Ok(())
}

struct AuthorizationFields<'a> {
    mchid: &'a str,
    nonce_str: &'a str,
    timestamp: &'a str,
    serial_no: &'a str,
    signature: &'a str,
}

/// `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",…`, fields in any order.
fn parse_authorization(header: &str) -> Result<AuthorizationFields<'_>, &'static str> {
    let rest = header
        .strip_prefix(AUTH_SCHEME)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or("Authorization 的认证类型不是 WECHATPAY2-SHA256-RSA2048")?;
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or("Authorization 格式错误")?;
        let value = value
            .strip_prefix('"')
            .and_then(|value| value.strip_suffix('"'))
            .ok_or("Authorization 的字段值必须用双引号括起来")?;
        if fields.insert(key.trim(), value).is_some() {
            return Err("Authorization 中有重复的字段");
        }
    }
    let field = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or("Authorization 缺少必需的字段")
    };
    Ok(AuthorizationFields {
        mchid: field("mchid")?,
        nonce_str: field("nonce_str")?,
        timestamp: field("timestamp")?,
        serial_no: field("serial_no")?,
        signature: field("signature")?,
    })
}

// ---- prepay parameters, as WeChat validates them ---------------------------------

fn is_out_trade_no_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|' | '*')
}

/// A string field's length in bytes within `min..=max`; `None` when absent or null.
fn optional_text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    pointer: &str,
    label: &str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = object.get(key).filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let Some(text) = value.as_str() else {
        return Err(ApiError::param(
            "body",
            pointer,
            label,
            "类型规则校验失败，应为字符串",
            Some(value),
        ));
    };
    let length = text.len();
    if length < min {
        let rule = format!("字符串规则校验失败，字节数 {length}，小于最小值 {min}");
        return Err(ApiError::param("body", pointer, label, &rule, Some(value)));
    }
    if length > max {
        let rule = format!("字符串规则校验失败，字节数 {length}，大于最大值 {max}");
        return Err(ApiError::param("body", pointer, label, &rule, Some(value)));
    }
    Ok(Some(text))
}

fn required_text<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    pointer: &str,
    label: &str,
    min: usize,
    max: usize,
) -> Result<&'a str, ApiError> {
    optional_text(object, key, pointer, label, min, max)?.ok_or_else(|| {
        ApiError::param(
            "body",
            pointer,
            label,
            "必填性规则校验失败，此字段为必填项",
            None,
        )
    })
}

fn required_object<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    label: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    let pointer = format!("/{key}");
    match object.get(key) {
        None | Some(Value::Null) => Err(ApiError::param(
            "body",
            &pointer,
            label,
            "必填性规则校验失败，此字段为必填项",
            None,
        )),
        Some(Value::Object(inner)) => Ok(inner),
        Some(other) => Err(ApiError::param(
            "body",
            &pointer,
            label,
            "类型规则校验失败，应为对象",
            Some(other),
        )),
    }
}

fn validate_prepay(trade_type: TradeType, body: &Value) -> Result<PrepayParams, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::param(
            "body",
            "",
            "请求体",
            "类型规则校验失败，应为对象",
            None,
        ));
    };
    let appid = required_text(object, "appid", "/appid", "应用ID", 1, 32)?;
    let mchid = required_text(object, "mchid", "/mchid", "直连商户号", 1, 32)?;
    let description = required_text(object, "description", "/description", "商品描述", 1, 127)?;
    let out_trade_no = required_text(object, "out_trade_no", "/out_trade_no", "商户订单号", 6, 32)?;
    if !out_trade_no.chars().all(is_out_trade_no_char) {
        return Err(ApiError::param(
            "body",
            "/out_trade_no",
            "商户订单号",
            "字符串规则校验失败，只能是数字、大小写字母_-|*",
            object.get("out_trade_no"),
        ));
    }
    let time_expire = optional_text(object, "time_expire", "/time_expire", "交易结束时间", 1, 64)?;
    if let Some(text) = time_expire
        && DateTime::parse_from_rfc3339(text).is_err()
    {
        return Err(ApiError::param(
            "body",
            "/time_expire",
            "交易结束时间",
            "时间格式规则校验失败，应为 RFC 3339 格式，如 2015-05-20T13:29:35+08:00",
            object.get("time_expire"),
        ));
    }
    let attach = optional_text(object, "attach", "/attach", "附加数据", 0, 128)?;
    let notify_url = required_text(object, "notify_url", "/notify_url", "通知地址", 1, 255)?;
    check_notify_url(notify_url, object.get("notify_url"))?;

    let amount = required_object(object, "amount", "订单金额")?;
    let total = match amount.get("total") {
        None | Some(Value::Null) => {
            return Err(ApiError::param(
                "body",
                "/amount/total",
                "总金额",
                "必填性规则校验失败，此字段为必填项",
                None,
            ));
        }
        Some(value) => value.as_i64().ok_or_else(|| {
            ApiError::param(
                "body",
                "/amount/total",
                "总金额",
                "类型规则校验失败，应为整数（单位：分）",
                Some(value),
            )
        })?,
    };
    if total < 1 {
        let rule = format!("整数规则校验失败，值 {total}，小于最小值 1");
        return Err(ApiError::param(
            "body",
            "/amount/total",
            "总金额",
            &rule,
            amount.get("total"),
        ));
    }
    let currency = optional_text(amount, "currency", "/amount/currency", "货币类型", 1, 16)?;
    if currency.is_some_and(|currency| currency != "CNY") {
        return Err(ApiError::param(
            "body",
            "/amount/currency",
            "货币类型",
            "枚举规则校验失败，境内商户号仅支持 CNY",
            amount.get("currency"),
        ));
    }

    let openid = match trade_type {
        TradeType::Jsapi => {
            let payer = required_object(object, "payer", "支付者")?;
            Some(required_text(payer, "openid", "/payer/openid", "用户标识", 1, 128)?.to_owned())
        }
        TradeType::Native => None,
    };
    Ok(PrepayParams {
        trade_type,
        appid: appid.to_owned(),
        mchid: mchid.to_owned(),
        description: description.to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        time_expire: time_expire.map(str::to_owned),
        attach: attach.map(str::to_owned),
        notify_url: notify_url.to_owned(),
        total,
        openid,
    })
}

/// Public HTTPS without a query string; the sandbox also takes plain HTTP to a
/// loopback host, where the tests and the demo listen.
fn check_notify_url(text: &str, value: Option<&Value>) -> Result<(), ApiError> {
    let refuse = |rule: &str| ApiError::param("body", "/notify_url", "通知地址", rule, value);
    let url = Url::parse(text).map_err(|_| refuse("URL 规则校验失败，不是合法的 URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("URL 规则校验失败，通知地址不能携带参数"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(refuse("URL 规则校验失败，通知地址必须为 HTTPS")),
    }
}

// ---- the cashier page ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct CashierParams {
    prepay_id: Option<String>,
    code_url: Option<String>,
    return_to: Option<String>,
}

impl CashierParams {
    fn handle(&self) -> Option<&str> {
        self.prepay_id
            .as_deref()
            .or(self.code_url.as_deref())
            .filter(|handle| !handle.is_empty())
    }

    /// Only http(s) links back: never `javascript:`.
    fn return_link(&self) -> Option<Url> {
        self.return_to
            .as_deref()
            .and_then(|link| Url::parse(link).ok())
            .filter(|link| matches!(link.scheme(), "http" | "https"))
    }
}

struct CashierView {
    payee: String,
    description: String,
    out_trade_no: String,
    total: i64,
    trade_type: TradeType,
    trade_state: TradeState,
    expired: bool,
}

impl Shared {
    fn cashier_order(&self, params: &CashierParams) -> Option<CashierView> {
        let now = self.clock.now();
        let state = self.state();
        let number = state.handles.get(params.handle()?)?;
        let order = state.orders.get(number)?;
        Some(CashierView {
            payee: state.payee_name.clone(),
            description: order.tx.description.clone(),
            out_trade_no: order.tx.out_trade_no.clone(),
            total: order.tx.total,
            trade_type: order.tx.trade_type,
            trade_state: order.tx.trade_state,
            expired: now >= order.tx.pay_before,
        })
    }
}

fn yuan(fen: i64) -> String {
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
                    "body{font-family:sans-serif;background:#ededed;margin:0;padding:24px;text-align:center}"
                    ".card{background:#fff;border-radius:8px;max-width:420px;margin:0 auto;padding:24px}"
                    ".amount{font-size:36px;font-weight:bold;margin:16px 0}"
                    "button{background:#07c160;color:#fff;border:0;border-radius:6px;font-size:18px;padding:12px 48px}"
                    ".note{color:#888;font-size:13px}"
                }
            }
            body {
                div class="card" {
                    p class="note" { "微信支付 沙箱" }
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

async fn cashier_page(State(shared): SharedState, Query(params): Query<CashierParams>) -> Response {
    let back = params.return_link();
    let Some(view) = shared.cashier_order(&params) else {
        return cashier_message(
            StatusCode::NOT_FOUND,
            "订单不存在",
            "找不到这笔订单，请返回商户页面重新下单。",
            back.as_ref(),
        );
    };
    match view.trade_state {
        TradeState::Success => {
            return cashier_message(
                StatusCode::OK,
                "该订单已支付",
                "请勿重复支付。",
                back.as_ref(),
            );
        }
        TradeState::Closed => {
            return cashier_message(
                StatusCode::OK,
                "订单已关闭",
                "请返回商户页面重新下单。",
                back.as_ref(),
            );
        }
        TradeState::NotPay if view.expired => {
            return cashier_message(
                StatusCode::OK,
                "订单已过期",
                "请返回商户页面重新下单。",
                back.as_ref(),
            );
        }
        TradeState::NotPay => {}
    }
    let kind = match view.trade_type {
        TradeType::Jsapi => "公众号支付",
        TradeType::Native => "扫码支付",
    };
    let body = html! {
        p { "付款给 " strong { (view.payee) } }
        p { (view.description) }
        p class="amount" { (yuan(view.total)) }
        p class="note" { (kind) " · 商户订单号 " (view.out_trade_no) }
        form method="post" action=(paths::CASHIER) {
            @if let Some(prepay_id) = &params.prepay_id {
                input type="hidden" name="prepay_id" value=(prepay_id);
            }
            @if let Some(code_url) = &params.code_url {
                input type="hidden" name="code_url" value=(code_url);
            }
            @if let Some(back) = &back {
                input type="hidden" name="return_to" value=(back.as_str());
            }
            button type="submit" { "确认支付" }
        }
        p class="note" { "这是模拟的微信收银台，不会产生真实扣款。" }
    };
    cashier_layout("微信支付", body).into_response()
}

async fn cashier_pay(State(shared): SharedState, Form(params): Form<CashierParams>) -> Response {
    let back = params.return_link();
    let number = params
        .handle()
        .and_then(|handle| shared.state().handles.get(handle).cloned());
    let Some(number) = number else {
        return cashier_message(
            StatusCode::NOT_FOUND,
            "订单不存在",
            "找不到这笔订单，请返回商户页面重新下单。",
            back.as_ref(),
        );
    };
    match shared.mark_paid(&number) {
        Ok(paid) => {
            let delivering = shared.clone();
            let out_trade_no = number.clone();
            shared.spawn_background(async move {
                if let Err(error) = deliver(delivering, out_trade_no).await {
                    tracing::warn!(%error, "the sandbox could not notify");
                }
            });
            let body = html! {
                h1 { "支付成功" }
                p class="amount" { (yuan(paid.total)) }
                p class="note" { "微信支付单号 " (paid.transaction_id) }
                @if let Some(back) = &back {
                    p { a href=(back.as_str()) { "返回商户页面" } }
                }
            };
            cashier_layout("支付成功", body).into_response()
        }
        Err(PayError::AlreadyPaid(_)) => cashier_message(
            StatusCode::OK,
            "该订单已支付",
            "请勿重复支付。",
            back.as_ref(),
        ),
        Err(PayError::Closed(_)) => cashier_message(
            StatusCode::OK,
            "订单已关闭",
            "请返回商户页面重新下单。",
            back.as_ref(),
        ),
        Err(PayError::Expired(..)) => cashier_message(
            StatusCode::OK,
            "订单已过期",
            "请返回商户页面重新下单。",
            back.as_ref(),
        ),
        Err(error) => cashier_message(
            StatusCode::BAD_REQUEST,
            "支付失败",
            &error.to_string(),
            back.as_ref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::time::Instant;

    use aes_gcm::Aes256Gcm;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use axum::routing::post;
    use reqwest::header::HeaderMap as ReqwestHeaders;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};

    use super::*;
    use crate::pay::wechatpay::keys::tests::{GO_SDK_PRIVATE_PEM, GO_SDK_SIGNATURE_OF_SOURCE};

    const APPID: &str = "wxd678efh567hg6787";
    const MCHID: &str = "1900000109";
    const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    const APIV3_KEY: &str = "abcdefghijklmnopqrstuvwxyz123456";
    const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

    fn merchant() -> SandboxMerchant {
        SandboxMerchant {
            appid: APPID.to_owned(),
            mchid: MCHID.to_owned(),
            merchant_serial: SERIAL.to_owned(),
            apiv3_key: APIV3_KEY.to_owned(),
        }
    }

    /// Our side of the wire, written here with rsa directly.
    fn merchant_signer() -> SigningKey<Sha256> {
        SigningKey::new(rsa::PrivateKey::from_pkcs8_pem(MERCHANT_PRIVATE_KEY_PEM).unwrap())
    }

    fn merchant_sign(message: &str) -> String {
        let signature: Signature = merchant_signer().sign(message.as_bytes());
        STANDARD.encode(signature.to_bytes())
    }

    fn public_key(pem: &str) -> VerifyingKey<Sha256> {
        VerifyingKey::new(rsa::PublicKey::from_public_key_pem(pem).unwrap())
    }

    /// WeChat's answer/notification check: `TS\nNONCE\nBODY\n` with the public key.
    fn signature_verifies(key_pem: &str, get: impl Fn(&str) -> Option<String>, body: &str) -> bool {
        let (Some(timestamp), Some(nonce), Some(signature)) = (
            get("Wechatpay-Timestamp"),
            get("Wechatpay-Nonce"),
            get("Wechatpay-Signature"),
        ) else {
            return false;
        };
        let message = format!("{timestamp}\n{nonce}\n{body}\n");
        let Ok(raw) = STANDARD.decode(signature) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(raw.as_slice()) else {
            return false;
        };
        public_key(key_pem)
            .verify(message.as_bytes(), &signature)
            .is_ok()
    }

    fn decrypt(resource: &Value) -> Value {
        let cipher = Aes256Gcm::new_from_slice(APIV3_KEY.as_bytes()).unwrap();
        let nonce = resource["nonce"].as_str().unwrap().as_bytes();
        let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::try_from(nonce).unwrap();
        let sealed = STANDARD
            .decode(resource["ciphertext"].as_str().unwrap())
            .unwrap();
        let aad = resource["associated_data"].as_str().unwrap().as_bytes();
        let plain = cipher
            .decrypt(&nonce, Payload { msg: &sealed, aad })
            .unwrap();
        serde_json::from_slice(&plain).unwrap()
    }

    struct Answer {
        status: u16,
        headers: ReqwestHeaders,
        body: String,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_str(&self.body).unwrap_or(Value::Null)
        }

        fn header(&self, name: &str) -> Option<String> {
            self.headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        }

        fn verifies(&self) -> bool {
            signature_verifies(
                WECHATPAY_PUBLIC_KEY_PEM,
                |name| self.header(name),
                &self.body,
            )
        }

        /// Checks the status and that the answer is signed by the sandbox.
        fn expect(self, status: u16) -> Self {
            assert_eq!(self.status, status, "{}", self.body);
            assert!(self.verifies(), "unsigned answer: {}", self.body);
            assert_eq!(
                self.header("Wechatpay-Serial").as_deref(),
                Some(SANDBOX_PUBLIC_KEY_ID)
            );
            assert!(self.header("Request-ID").is_some());
            self
        }

        fn expect_error(self, status: u16, code: &str) -> Value {
            let answer = self.expect(status);
            let json = answer.json();
            assert_eq!(json["code"], code, "{json}");
            json
        }
    }

    /// One request, with every part of the signature under the test's control.
    struct Request {
        method: Method,
        uri: String,
        body: String,
        mchid: String,
        serial: String,
        timestamp: i64,
        nonce: String,
        signature: Option<String>,
        accept: Option<&'static str>,
        content_type: Option<&'static str>,
        reversed_fields: bool,
        authorization: Option<String>,
        wechatpay_serial: Option<&'static str>,
    }

    impl Request {
        fn signed_message(&self) -> String {
            format!(
                "{}\n{}\n{}\n{}\n{}\n",
                self.method, self.uri, self.timestamp, self.nonce, self.body
            )
        }

        fn authorization(&self) -> String {
            if let Some(raw) = &self.authorization {
                return raw.clone();
            }
            let signature = self
                .signature
                .clone()
                .unwrap_or_else(|| merchant_sign(&self.signed_message()));
            let mut fields = [
                format!("mchid=\"{}\"", self.mchid),
                format!("nonce_str=\"{}\"", self.nonce),
                format!("timestamp=\"{}\"", self.timestamp),
                format!("serial_no=\"{}\"", self.serial),
                format!("signature=\"{signature}\""),
            ];
            if self.reversed_fields {
                fields.reverse();
            }
            format!("WECHATPAY2-SHA256-RSA2048 {}", fields.join(","))
        }
    }

    struct Receiver {
        url: String,
        received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
        status: Arc<AtomicU16>,
        server: JoinHandle<()>,
    }

    impl Receiver {
        /// Our notification endpoint, reduced to recording and answering `status`.
        async fn start() -> Receiver {
            let received: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
            let status = Arc::new(AtomicU16::new(204));
            let app = Router::new().route(
                "/pay/notify/wechat",
                post({
                    let received = received.clone();
                    let status = status.clone();
                    move |headers: HeaderMap, body: String| async move {
                        received.lock().unwrap().push((headers, body));
                        let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                        if code.is_success() {
                            code.into_response()
                        } else {
                            (code, r#"{"code":"FAIL","message":"失败"}"#).into_response()
                        }
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .unwrap();
            let url = format!(
                "http://{}/pay/notify/wechat",
                listener.local_addr().unwrap()
            );
            let server = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Receiver {
                url,
                received,
                status,
                server,
            }
        }

        fn received(&self) -> Vec<(HeaderMap, String)> {
            self.received.lock().unwrap().clone()
        }

        fn answer(&self, status: u16) {
            self.status.store(status, Ordering::SeqCst);
        }

        async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, String)> {
            for _ in 0..200 {
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

    struct Probe {
        sandbox: WechatPaySandbox,
        clock: Clock,
        http: reqwest::Client,
        notify_url: String,
    }

    impl Probe {
        async fn start() -> Probe {
            let clock = Clock::system();
            let sandbox = WechatPaySandbox::spawn(merchant(), clock.clone())
                .await
                .unwrap();
            let http = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            Probe {
                sandbox,
                clock,
                http,
                notify_url: "https://pay.example.edu.cn/pay/notify/wechat".to_owned(),
            }
        }

        fn request(&self, method: Method, uri: &str, body: Option<&Value>) -> Request {
            Request {
                method,
                uri: uri.to_owned(),
                body: body.map(Value::to_string).unwrap_or_default(),
                mchid: MCHID.to_owned(),
                serial: SERIAL.to_owned(),
                timestamp: self.clock.now().timestamp(),
                nonce: random_string(ALPHANUMERIC, 32),
                signature: None,
                accept: Some("application/json"),
                content_type: body.map(|_| "application/json"),
                reversed_fields: false,
                authorization: None,
                wechatpay_serial: Some(SANDBOX_PUBLIC_KEY_ID),
            }
        }

        async fn send(&self, request: &Request) -> Answer {
            let url = format!(
                "{}{}",
                self.sandbox.base_url().as_str().trim_end_matches('/'),
                request.uri
            );
            let mut builder = self
                .http
                .request(request.method.clone(), url)
                .header("Authorization", request.authorization())
                .header("User-Agent", "campus-pay-test");
            if let Some(accept) = request.accept {
                builder = builder.header("Accept", accept);
            }
            if let Some(content_type) = request.content_type {
                builder = builder.header("Content-Type", content_type);
            }
            if let Some(serial) = request.wechatpay_serial {
                builder = builder.header("Wechatpay-Serial", serial);
            }
            if request.method == Method::POST {
                builder = builder.body(request.body.clone());
            }
            let response = builder.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.unwrap();
            Answer {
                status,
                headers,
                body,
            }
        }

        async fn post(&self, uri: &str, body: &Value) -> Answer {
            self.send(&self.request(Method::POST, uri, Some(body)))
                .await
        }

        async fn get(&self, uri: &str) -> Answer {
            self.send(&self.request(Method::GET, uri, None)).await
        }

        fn order(&self, number: &str) -> Value {
            json!({
                "appid": APPID,
                "mchid": MCHID,
                "description": "某某职业技术学院-2025学年学费",
                "out_trade_no": number,
                "attach": "student=20250001",
                "notify_url": self.notify_url,
                "amount": { "total": 150_000, "currency": "CNY" },
                "payer": { "openid": OPENID },
            })
        }

        async fn jsapi(&self, number: &str) -> String {
            let answer = self
                .post(paths::JSAPI, &self.order(number))
                .await
                .expect(200);
            answer.json()["prepay_id"].as_str().unwrap().to_owned()
        }

        async fn native(&self, number: &str) -> String {
            let mut body = self.order(number);
            body.as_object_mut().unwrap().remove("payer");
            let answer = self.post(paths::NATIVE, &body).await.expect(200);
            answer.json()["code_url"].as_str().unwrap().to_owned()
        }

        async fn query(&self, number: &str) -> Answer {
            self.get(&format!("{}?mchid={MCHID}", paths::query(number)))
                .await
        }

        async fn close(&self, number: &str) -> Answer {
            self.post(&paths::close(number), &json!({ "mchid": MCHID }))
                .await
        }
    }

    #[tokio::test]
    async fn a_correctly_signed_prepay_is_accepted_and_answered_signed() {
        let probe = Probe::start().await;
        let prepay_id = probe.jsapi("CP2025090100000001").await;
        assert!(prepay_id.starts_with("wx"), "{prepay_id}");
        assert_eq!(prepay_id.len(), 36);

        // Field order in Authorization does not matter.
        let mut body = probe.order("CP2025090100000002");
        body.as_object_mut().unwrap().remove("payer");
        let mut request = probe.request(Method::POST, paths::NATIVE, Some(&body));
        request.reversed_fields = true;
        let answer = probe.send(&request).await.expect(200);
        let code_url = answer.json()["code_url"].as_str().unwrap().to_owned();
        assert!(
            code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
            "{code_url}"
        );

        let transactions = probe.sandbox.transactions();
        assert_eq!(transactions.len(), 2);
        assert_eq!(transactions[0].trade_type, TradeType::Jsapi);
        assert_eq!(transactions[0].openid.as_deref(), Some(OPENID));
        assert_eq!(transactions[0].prepay_ids, vec![prepay_id]);
        assert_eq!(transactions[1].trade_type, TradeType::Native);
        assert_eq!(transactions[1].code_urls, vec![code_url]);
        assert_eq!(probe.sandbox.calls_to(paths::JSAPI), 1);
        let call = &probe.sandbox.calls()[0];
        assert_eq!(call.status, 200);
        assert_eq!(
            call.wechatpay_serial.as_deref(),
            Some(SANDBOX_PUBLIC_KEY_ID)
        );
    }

    #[tokio::test]
    async fn bad_authorizations_are_refused_with_sign_error() {
        let probe = Probe::start().await;
        let body = probe.order("CP2025090100000003");
        let now = probe.clock.now().timestamp();
        let fresh = || probe.request(Method::POST, paths::JSAPI, Some(&body));

        let mut cases: Vec<(&str, Request)> = Vec::new();
        let mut request = fresh();
        request.signature = Some(merchant_sign(
            "POST\n/v3/pay/transactions/jsapi\n1\n2\n{}\n",
        ));
        cases.push(("signature over another message", request));
        let mut request = fresh();
        let message = request.signed_message();
        let wrong_key = SigningKey::<Sha256>::new(
            rsa::PrivateKey::from_pkcs8_pem(WECHATPAY_PRIVATE_KEY_PEM).unwrap(),
        );
        let signature: Signature = wrong_key.sign(message.as_bytes());
        request.signature = Some(STANDARD.encode(signature.to_bytes()));
        cases.push(("signature by another key", request));
        let mut request = fresh();
        request.signature = Some("not base64 at all".to_owned());
        cases.push(("garbage signature", request));
        let mut request = fresh();
        request.serial = "0000000000000000000000000000000000000000".to_owned();
        cases.push(("wrong serial", request));
        let mut request = fresh();
        request.mchid = "1900000999".to_owned();
        cases.push(("wrong mchid", request));
        let mut request = fresh();
        request.timestamp = now - 301;
        cases.push(("stale timestamp", request));
        let mut request = fresh();
        request.timestamp = now + 400;
        cases.push(("future timestamp", request));
        let mut request = fresh();
        request.authorization = Some(
            request
                .authorization()
                .replace("WECHATPAY2-SHA256-RSA2048", "Bearer"),
        );
        cases.push(("wrong scheme", request));
        let mut request = fresh();
        request.authorization = Some(request.authorization().replace(",serial_no=", ",serial="));
        cases.push(("missing field", request));
        let mut request = fresh();
        request.authorization = Some(String::new());
        cases.push(("empty header", request));

        for (case, request) in &cases {
            let json = probe
                .send(request)
                .await
                .expect_error(401, codes::SIGN_ERROR);
            let information = &json["detail"]["sign_information"];
            assert!(
                information["truncated_sign_message"].is_string(),
                "{case}: {json}"
            );
            assert_eq!(information["method"], "POST", "{case}");
        }
        let json = probe
            .send(&cases[0].1)
            .await
            .expect_error(401, codes::SIGN_ERROR);
        let truncated = json["detail"]["sign_information"]["truncated_sign_message"]
            .as_str()
            .unwrap();
        assert!(
            truncated.starts_with("POST\n/v3/pay/transactions/jsapi\n"),
            "{truncated}"
        );
        assert!(truncated.ends_with("\n{\n"), "{truncated}");
        assert!(probe.sandbox.transactions().is_empty());

        // A nonce is good once.
        let request = fresh();
        probe.send(&request).await.expect(200);
        probe
            .send(&request)
            .await
            .expect_error(401, codes::SIGN_ERROR);
        assert_eq!(probe.sandbox.transactions().len(), 1);

        // Missing Authorization on a GET.
        let url = format!(
            "{}{}?mchid={MCHID}",
            probe.sandbox.base_url().as_str().trim_end_matches('/'),
            paths::query("CP2025090100000003")
        );
        let response = probe
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        };
        answer.expect_error(401, codes::SIGN_ERROR);
    }

    #[tokio::test]
    async fn calls_need_json_accept_and_content_type_and_the_sandbox_key_serial() {
        let probe = Probe::start().await;
        let body = probe.order("CP2025090100000004");
        // Without an Accept of its own, reqwest sends `*/*`: not what WeChat asks for.
        let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
        request.accept = None;
        probe
            .send(&request)
            .await
            .expect_error(400, codes::INVALID_REQUEST);
        let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
        request.content_type = Some("text/plain");
        probe
            .send(&request)
            .await
            .expect_error(400, codes::INVALID_REQUEST);
        let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
        request.wechatpay_serial = Some("5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
        probe
            .send(&request)
            .await
            .expect_error(400, codes::INVALID_REQUEST);
        assert!(probe.sandbox.transactions().is_empty());

        let mut request = probe.request(Method::POST, paths::JSAPI, Some(&body));
        request.content_type = Some("application/json; charset=utf-8");
        request.wechatpay_serial = None;
        probe.send(&request).await.expect(200);
    }

    #[tokio::test]
    async fn prepay_parameters_are_checked_field_by_field() {
        let probe = Probe::start().await;
        type Edit = fn(&mut Value);
        let cases: Vec<(&str, Edit)> = vec![
            ("/appid", |body| body["appid"] = Value::Null),
            ("/description", |body| body["description"] = json!("")),
            ("/description", |body| {
                body["description"] = json!("学".repeat(43))
            }),
            ("/description", |body| {
                body.as_object_mut().unwrap().remove("description");
            }),
            ("/out_trade_no", |body| {
                body["out_trade_no"] = json!("12345")
            }),
            ("/out_trade_no", |body| {
                body["out_trade_no"] = json!("1".repeat(33))
            }),
            ("/out_trade_no", |body| {
                body["out_trade_no"] = json!("CP 2025 0901")
            }),
            ("/out_trade_no", |body| {
                body["out_trade_no"] = json!("学费202509010001")
            }),
            ("/out_trade_no", |body| {
                body["out_trade_no"] = json!(20250901000001_i64)
            }),
            ("/time_expire", |body| {
                body["time_expire"] = json!("2025-09-01 12:00:00")
            }),
            ("/attach", |body| body["attach"] = json!("a".repeat(129))),
            ("/notify_url", |body| {
                body["notify_url"] = json!("https://pay.example.edu.cn/notify?order=1");
            }),
            ("/notify_url", |body| {
                body["notify_url"] = json!("http://pay.example.edu.cn/notify");
            }),
            ("/notify_url", |body| {
                body["notify_url"] =
                    json!(format!("https://pay.example.edu.cn/{}", "n".repeat(240)));
            }),
            ("/notify_url", |body| {
                body["notify_url"] = json!("/pay/notify/wechat")
            }),
            ("/amount", |body| body["amount"] = json!(150_000)),
            ("/amount/total", |body| body["amount"]["total"] = json!(0)),
            ("/amount/total", |body| body["amount"]["total"] = json!(-1)),
            ("/amount/total", |body| {
                body["amount"]["total"] = json!("150000")
            }),
            ("/amount/total", |body| {
                body["amount"]["total"] = json!(1500.5)
            }),
            ("/amount/currency", |body| {
                body["amount"]["currency"] = json!("USD")
            }),
            ("/payer", |body| {
                body.as_object_mut().unwrap().remove("payer");
            }),
            ("/payer/openid", |body| body["payer"]["openid"] = json!("")),
        ];
        for (field, edit) in cases {
            let mut body = probe.order("CP2025090100000005");
            edit(&mut body);
            let json = probe
                .post(paths::JSAPI, &body)
                .await
                .expect_error(400, codes::PARAM_ERROR);
            assert_eq!(json["detail"]["field"], field, "{json}");
            let message = json["message"].as_str().unwrap();
            assert!(message.contains(&format!("/body{field}")), "{message}");
        }
        assert!(probe.sandbox.transactions().is_empty());

        let mut body = probe.order("CP2025090100000005");
        body["appid"] = json!("wx0000000000000000");
        probe
            .post(paths::JSAPI, &body)
            .await
            .expect_error(400, codes::APPID_MCHID_NOT_MATCH);
        let mut body = probe.order("CP2025090100000005");
        body["mchid"] = json!("1900000999");
        probe
            .post(paths::JSAPI, &body)
            .await
            .expect_error(400, codes::INVALID_REQUEST);
        let mut request = probe.request(Method::POST, paths::JSAPI, None);
        request.body = "{not json".to_owned();
        request.content_type = Some("application/json");
        probe
            .send(&request)
            .await
            .expect_error(400, codes::PARAM_ERROR);

        // What is allowed at the edges passes.
        let mut body = probe.order("Ab_-|*12");
        body["description"] = json!(format!("{}x", "学".repeat(42)));
        body["attach"] = json!("a".repeat(128));
        body["notify_url"] = json!("http://127.0.0.1:8080/pay/notify/wechat");
        body["time_expire"] = json!("2099-01-01T00:00:00+08:00");
        body["amount"].as_object_mut().unwrap().remove("currency");
        probe.post(paths::JSAPI, &body).await.expect(200);
        let mut body = probe.order("CP2025090100000006");
        body["notify_url"] = json!("http://localhost:8080/pay/notify/wechat");
        probe.post(paths::JSAPI, &body).await.expect(200);
    }

    #[tokio::test]
    async fn prepay_again_with_the_same_parameters_gives_a_fresh_handle_for_the_same_order() {
        let probe = Probe::start().await;
        let first = probe.jsapi("CP2025090100000007").await;
        let second = probe.jsapi("CP2025090100000007").await;
        assert_ne!(first, second);
        let transactions = probe.sandbox.transactions();
        assert_eq!(transactions.len(), 1);
        assert_eq!(transactions[0].prepay_ids, vec![first, second]);

        let mut changed = probe.order("CP2025090100000007");
        changed["amount"]["total"] = json!(150_001);
        let json = probe
            .post(paths::JSAPI, &changed)
            .await
            .expect_error(400, codes::INVALID_REQUEST);
        assert!(json["message"].as_str().unwrap().contains("订单号重复"));
        let mut native = probe.order("CP2025090100000007");
        native.as_object_mut().unwrap().remove("payer");
        probe
            .post(paths::NATIVE, &native)
            .await
            .expect_error(400, codes::INVALID_REQUEST);

        let first = probe.native("CP2025090100000008").await;
        let second = probe.native("CP2025090100000008").await;
        assert_ne!(first, second);
        assert_eq!(probe.sandbox.transactions().len(), 2);
    }

    #[tokio::test]
    async fn query_and_close_follow_wechats_states() {
        let probe = Probe::start().await;
        probe
            .query("CP2025090100000009")
            .await
            .expect_error(404, codes::ORDER_NOT_EXIST);
        probe
            .close("CP2025090100000009")
            .await
            .expect_error(404, codes::ORDER_NOT_EXIST);
        probe
            .get(&paths::query("CP2025090100000009"))
            .await
            .expect_error(400, codes::PARAM_ERROR);

        probe.jsapi("CP2025090100000009").await;
        let json = probe.query("CP2025090100000009").await.expect(200).json();
        assert_eq!(json["trade_state"], "NOTPAY");
        assert_eq!(json["trade_state_desc"], "订单未支付");
        assert_eq!(json["amount"]["total"], 150_000);
        assert_eq!(json["appid"], APPID);
        assert_eq!(json["mchid"], MCHID);
        assert!(json.get("transaction_id").is_none());

        let answer = probe.close("CP2025090100000009").await.expect(204);
        assert!(answer.body.is_empty());
        let json = probe.query("CP2025090100000009").await.expect(200).json();
        assert_eq!(json["trade_state"], "CLOSED");
        probe.close("CP2025090100000009").await.expect(204);
        probe
            .post(paths::JSAPI, &probe.order("CP2025090100000009"))
            .await
            .expect_error(400, codes::ORDER_CLOSED);
        assert_eq!(
            probe.sandbox.pay_silently("CP2025090100000009"),
            Err(PayError::Closed("CP2025090100000009".to_owned()))
        );

        probe.jsapi("CP2025090100000010").await;
        let paid = probe.sandbox.pay_silently("CP2025090100000010").unwrap();
        assert_eq!(paid.transaction_id.len(), 28);
        assert!(paid.transaction_id.chars().all(|c| c.is_ascii_digit()));
        let json = probe.query("CP2025090100000010").await.expect(200).json();
        assert_eq!(json, paid.transaction);
        assert_eq!(json["trade_state"], "SUCCESS");
        assert_eq!(json["trade_state_desc"], "支付成功");
        assert_eq!(json["trade_type"], "JSAPI");
        assert_eq!(json["transaction_id"], paid.transaction_id);
        assert_eq!(json["payer"]["openid"], OPENID);
        assert_eq!(json["attach"], "student=20250001");
        assert_eq!(json["amount"]["payer_total"], 150_000);
        assert_eq!(json["amount"]["currency"], "CNY");
        let success_time = json["success_time"].as_str().unwrap();
        assert!(success_time.ends_with("+08:00"), "{success_time}");
        assert!(DateTime::parse_from_rfc3339(success_time).is_ok());
        let by_id = format!(
            "{}{}?mchid={MCHID}",
            paths::TRANSACTION_ID_PREFIX,
            paid.transaction_id
        );
        assert_eq!(probe.get(&by_id).await.expect(200).json(), json);

        probe
            .close("CP2025090100000010")
            .await
            .expect_error(400, codes::ORDER_PAID);
        probe
            .post(paths::JSAPI, &probe.order("CP2025090100000010"))
            .await
            .expect_error(400, codes::ORDER_PAID);
        assert_eq!(
            probe.sandbox.pay_silently("CP2025090100000010"),
            Err(PayError::AlreadyPaid("CP2025090100000010".to_owned()))
        );
        // `|` and `*` may arrive percent-encoded in the path.
        probe.jsapi("CP|2025*0011").await;
        let json = probe
            .get(&format!("{}?mchid={MCHID}", paths::query("CP%7C2025*0011")))
            .await
            .expect(200)
            .json();
        assert_eq!(json["out_trade_no"], "CP|2025*0011");
    }

    #[tokio::test]
    async fn orders_cannot_be_paid_after_time_expire() {
        let probe = Probe::start().await;
        let expire = wechat_time(probe.clock.now() + TimeDelta::minutes(2));
        let mut body = probe.order("CP2025090100000012");
        body["time_expire"] = json!(format_time(&expire));
        probe.post(paths::JSAPI, &body).await.expect(200);

        let mut soon = probe.order("CP2025090100000013");
        soon["time_expire"] = json!(format_time(&wechat_time(probe.clock.now())));
        probe.post(paths::JSAPI, &soon).await.expect(200);
        let bumped = probe.sandbox.transaction("CP2025090100000013").unwrap();
        assert_eq!(bumped.pay_before - bumped.created_at, MIN_ORDER_LIFETIME);

        probe.clock.advance(Duration::from_secs(180));
        let refused = probe.sandbox.pay_silently("CP2025090100000012");
        assert!(matches!(refused, Err(PayError::Expired(..))), "{refused:?}");
        // WeChat does not close an expired order by itself: the query says NOTPAY.
        let json = probe.query("CP2025090100000012").await.expect(200).json();
        assert_eq!(json["trade_state"], "NOTPAY");
        probe.close("CP2025090100000012").await.expect(204);
    }

    #[tokio::test]
    async fn paying_sends_a_signed_encrypted_notification_of_the_transaction() {
        let mut probe = Probe::start().await;
        let receiver = Receiver::start().await;
        probe.notify_url = receiver.url.clone();
        probe.jsapi("CP2025090100000014").await;
        let paid = probe.sandbox.pay("CP2025090100000014").await.unwrap();
        assert_eq!(paid.notification_answers, vec![(204, String::new())]);

        let received = receiver.received();
        assert_eq!(received.len(), 1);
        let (headers, body) = &received[0];
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        assert!(signature_verifies(WECHATPAY_PUBLIC_KEY_PEM, get, body));
        assert_eq!(
            get("Wechatpay-Serial").as_deref(),
            Some(SANDBOX_PUBLIC_KEY_ID)
        );
        assert_eq!(get("Content-Type").as_deref(), Some("application/json"));
        let timestamp: i64 = get("Wechatpay-Timestamp").unwrap().parse().unwrap();
        assert!((probe.clock.now().timestamp() - timestamp).abs() <= 5);

        let notification: Value = serde_json::from_str(body).unwrap();
        let transaction = probe.sandbox.transaction("CP2025090100000014").unwrap();
        assert_eq!(notification["id"], json!(transaction.notification_id));
        assert_eq!(notification["event_type"], "TRANSACTION.SUCCESS");
        assert_eq!(notification["resource_type"], "encrypt-resource");
        assert_eq!(notification["summary"], "支付成功");
        assert!(
            notification["create_time"]
                .as_str()
                .unwrap()
                .ends_with("+08:00")
        );
        let resource = &notification["resource"];
        assert_eq!(resource["algorithm"], "AEAD_AES_256_GCM");
        assert_eq!(resource["original_type"], "transaction");
        assert_eq!(resource["associated_data"], "transaction");
        let nonce = resource["nonce"].as_str().unwrap();
        assert_eq!(nonce.len(), 12);
        assert!(nonce.chars().all(|c| c.is_ascii_alphanumeric()));

        let plaintext = decrypt(resource);
        assert_eq!(plaintext, paid.transaction);
        let queried = probe.query("CP2025090100000014").await.expect(200).json();
        assert_eq!(plaintext, queried);
        assert_eq!(
            probe.sandbox.notification_answers(),
            vec![("CP2025090100000014".to_owned(), 204, String::new())]
        );
    }

    #[tokio::test]
    async fn notifications_can_be_duplicated_refused_retried_late_or_lost() {
        let mut probe = Probe::start().await;
        let receiver = Receiver::start().await;
        probe.notify_url = receiver.url.clone();
        // No retries until the part about them.
        probe.sandbox.set_notification_retries(Vec::new());

        receiver.answer(500);
        probe.sandbox.set_notification_copies(3);
        probe.jsapi("CP2025090100000015").await;
        let paid = probe.sandbox.pay("CP2025090100000015").await.unwrap();
        assert_eq!(paid.notification_answers.len(), 3);
        assert!(
            paid.notification_answers
                .iter()
                .all(|(status, _)| *status == 500)
        );
        let received = receiver.received();
        assert_eq!(received.len(), 3);
        assert!(received.iter().all(|(_, body)| *body == received[0].1));
        let answers = probe.sandbox.notification_answers();
        assert_eq!(answers.len(), 3);
        assert!(answers.iter().all(|(number, status, body)| {
            number == "CP2025090100000015" && *status == 500 && body.contains("FAIL")
        }));

        receiver.answer(200);
        let again = probe
            .sandbox
            .send_notification("CP2025090100000015")
            .await
            .unwrap();
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|(status, _)| *status == 200));
        let received = receiver.received();
        let id = |body: &str| serde_json::from_str::<Value>(body).unwrap()["id"].clone();
        assert_eq!(id(&received[3].1), id(&received[0].1));

        // Lost: paid, and nothing arrives.
        probe.sandbox.set_notification_copies(1);
        probe.jsapi("CP2025090100000016").await;
        probe.sandbox.pay_silently("CP2025090100000016").unwrap();
        assert_eq!(receiver.received().len(), 6);
        probe.jsapi("CP2025090100000017").await;
        assert_eq!(
            probe.sandbox.send_notification("CP2025090100000017").await,
            Err(PayError::NotPaid("CP2025090100000017".to_owned()))
        );

        // Refused, then retried on WeChat's schedule, on its clock, until acknowledged.
        probe
            .sandbox
            .set_notification_retries(NOTIFICATION_RETRIES.to_vec());
        receiver.answer(503);
        let paid = probe.sandbox.pay("CP2025090100000017").await.unwrap();
        assert_eq!(paid.notification_answers[0].0, 503);
        assert_eq!(probe.sandbox.deliver_due_retries().await, 0, "not yet 15 s");
        probe.clock.advance(Duration::from_secs(30));
        assert_eq!(
            probe.sandbox.deliver_due_retries().await,
            2,
            "at 15 s and 30 s"
        );
        receiver.answer(204);
        probe.clock.advance(Duration::from_secs(30));
        assert_eq!(
            probe.sandbox.deliver_due_retries().await,
            1,
            "at 60 s, acknowledged"
        );
        probe.clock.advance(Duration::from_secs(25 * 3600));
        assert_eq!(probe.sandbox.deliver_due_retries().await, 0, "stopped");
        assert_eq!(receiver.received().len(), 10);
        let answers = probe.sandbox.notification_answers();
        let last = answers.last().unwrap();
        assert_eq!((last.0.as_str(), last.1), ("CP2025090100000017", 204));

        // Late.
        probe
            .sandbox
            .set_notification_delay(Duration::from_millis(200));
        probe.jsapi("CP2025090100000018").await;
        let started = Instant::now();
        probe.sandbox.pay("CP2025090100000018").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));

        // Unreachable: recorded with status 0.
        probe.sandbox.set_notification_delay(Duration::ZERO);
        probe.notify_url = "http://127.0.0.1:9/pay/notify/wechat".to_owned();
        probe.jsapi("CP2025090100000019").await;
        let paid = probe.sandbox.pay("CP2025090100000019").await.unwrap();
        assert_eq!(paid.notification_answers[0].0, 0);
    }

    #[tokio::test]
    async fn tampered_notifications_differ_as_intended() {
        let probe = Probe::start().await;
        probe.jsapi("CP2025090100000020").await;
        let paid = probe.sandbox.pay_silently("CP2025090100000020").unwrap();
        let notification_for = |tamper| {
            probe
                .sandbox
                .notification_for("CP2025090100000020", tamper)
                .unwrap()
        };
        let verifies = |notification: &Notification, pem: &str| {
            signature_verifies(
                pem,
                |name| notification.header(name).map(str::to_owned),
                &notification.body,
            )
        };
        let plaintext = |notification: &Notification| {
            let body: Value = serde_json::from_str(&notification.body).unwrap();
            decrypt(&body["resource"])
        };

        let genuine = notification_for(Tamper::None);
        assert!(verifies(&genuine, WECHATPAY_PUBLIC_KEY_PEM));
        assert_eq!(plaintext(&genuine), paid.transaction);
        assert_eq!(genuine.header("content-type"), Some("application/json"));

        let wrong_amount = notification_for(Tamper::WrongAmount(1));
        assert!(verifies(&wrong_amount, WECHATPAY_PUBLIC_KEY_PEM));
        let resource = plaintext(&wrong_amount);
        assert_eq!(resource["amount"]["total"], 1);
        assert_eq!(resource["amount"]["payer_total"], 1);
        assert_eq!(resource["out_trade_no"], "CP2025090100000020");

        let probe_signature = notification_for(Tamper::Signtest);
        assert!(
            probe_signature
                .header("Wechatpay-Signature")
                .unwrap()
                .starts_with(SIGNTEST_PREFIX)
        );
        assert!(!verifies(&probe_signature, WECHATPAY_PUBLIC_KEY_PEM));
        assert_eq!(plaintext(&probe_signature), paid.transaction);

        let stale = notification_for(Tamper::StaleTimestamp);
        assert!(verifies(&stale, WECHATPAY_PUBLIC_KEY_PEM));
        let timestamp: i64 = stale
            .header("Wechatpay-Timestamp")
            .unwrap()
            .parse()
            .unwrap();
        assert!(probe.clock.now().timestamp() - timestamp > CLOCK_SKEW_SECS);

        let forged = notification_for(Tamper::WrongKey);
        assert_eq!(
            forged.header("Wechatpay-Serial"),
            Some(SANDBOX_PUBLIC_KEY_ID)
        );
        assert!(!verifies(&forged, WECHATPAY_PUBLIC_KEY_PEM));
        assert!(verifies(&forged, MERCHANT_PUBLIC_KEY_PEM));

        let unknown = notification_for(Tamper::UnknownOrder("CP2099123100000001".to_owned()));
        assert!(verifies(&unknown, WECHATPAY_PUBLIC_KEY_PEM));
        let resource = plaintext(&unknown);
        assert_eq!(resource["out_trade_no"], "CP2099123100000001");
        assert_ne!(
            resource["transaction_id"],
            paid.transaction["transaction_id"]
        );

        // For an unpaid order: the payment as it would be; the order stays unpaid.
        probe.jsapi("CP2025090100000021").await;
        let forged = probe
            .sandbox
            .notification_for("CP2025090100000021", Tamper::WrongKey)
            .unwrap();
        let resource = plaintext(&forged);
        assert_eq!(resource["trade_state"], "SUCCESS");
        assert_eq!(resource["out_trade_no"], "CP2025090100000021");
        let state = probe
            .sandbox
            .transaction("CP2025090100000021")
            .unwrap()
            .trade_state;
        assert_eq!(state, TradeState::NotPay);
        assert_eq!(
            probe
                .sandbox
                .notification_for("CP2099123100000001", Tamper::None),
            Err(PayError::UnknownOrder("CP2099123100000001".to_owned()))
        );
    }

    #[tokio::test]
    async fn the_cashier_pays_notifies_and_links_back() {
        let mut probe = Probe::start().await;
        let receiver = Receiver::start().await;
        probe.notify_url = receiver.url.clone();
        probe.sandbox.set_payee_name("某某职业技术学院");
        let prepay_id = probe.jsapi("CP2025090100000022").await;
        let return_to = "http://127.0.0.1:8080/h5/orders/CP2025090100000022?from=cashier&x=1";
        let url = probe
            .sandbox
            .cashier_url_for_prepay(&prepay_id, Some(return_to));
        let page = probe.http.get(url.clone()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        for expected in ["微信支付 沙箱", "某某职业技术学院", "¥1500.00", "确认支付"]
        {
            assert!(page.contains(expected), "{expected} missing from {page}");
        }

        let mut cashier = probe.sandbox.base_url();
        cashier.set_path(paths::CASHIER);
        let form = [("prepay_id", prepay_id.as_str()), ("return_to", return_to)];
        let paid_page = probe
            .http
            .post(cashier.clone())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(paid_page.status(), StatusCode::OK);
        let paid_page = paid_page.text().await.unwrap();
        assert!(paid_page.contains("支付成功"), "{paid_page}");
        assert!(paid_page.contains("from=cashier&amp;x=1"), "{paid_page}");
        let transaction = probe.sandbox.transaction("CP2025090100000022").unwrap();
        assert_eq!(transaction.trade_state, TradeState::Success);
        receiver.wait_for(1).await;

        let again = probe
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(again.contains("该订单已支付"), "{again}");
        let twice = probe
            .http
            .post(cashier.clone())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(twice.text().await.unwrap().contains("该订单已支付"));

        let code_url = probe.native("CP2025090100000023").await;
        let url = probe
            .sandbox
            .cashier_url_for_code_url(&code_url, Some("javascript:alert(1)"));
        let page = probe
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("确认支付") && page.contains("扫码支付"),
            "{page}"
        );
        assert!(!page.contains("javascript:"), "{page}");
        let form = [("code_url", code_url.as_str())];
        probe.http.post(cashier).form(&form).send().await.unwrap();
        let transaction = probe.sandbox.transaction("CP2025090100000023").unwrap();
        assert_eq!(transaction.openid.as_deref(), Some(NATIVE_PAYER_OPENID));

        let url = probe
            .sandbox
            .cashier_url_for_prepay("wx_never_issued", None);
        let missing = probe.http.get(url).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.text().await.unwrap().contains("订单不存在"));
    }

    #[tokio::test]
    async fn a_hung_request_is_held_then_handled() {
        let probe = Probe::start().await;
        probe
            .sandbox
            .hang_next(paths::JSAPI, Duration::from_millis(300), 1);
        let order = probe.order("CP2025090100000031");
        let (answer, held_meanwhile) = tokio::join!(probe.post(paths::JSAPI, &order), async {
            while probe.sandbox.held_requests() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            probe.sandbox.transactions().len()
        });
        assert_eq!(held_meanwhile, 0, "nothing happens while held");
        assert_eq!(answer.status, 200);
        assert_eq!(probe.sandbox.held_requests(), 0);
        assert_eq!(probe.sandbox.transactions().len(), 1);
        // Only the next one hangs.
        probe.query("CP2025090100000031").await.expect(200);
    }

    #[tokio::test]
    async fn injected_failures_and_spoilt_answers() {
        let probe = Probe::start().await;
        probe
            .sandbox
            .fail_next(paths::JSAPI, 500, codes::SYSTEM_ERROR, 1);
        probe
            .post(paths::JSAPI, &probe.order("CP2025090100000024"))
            .await
            .expect_error(500, codes::SYSTEM_ERROR);
        assert!(probe.sandbox.transactions().is_empty());
        probe.jsapi("CP2025090100000024").await;

        probe.sandbox.fail_next(
            &paths::query("CP2025090100000024"),
            429,
            "FREQUENCY_LIMITED",
            1,
        );
        probe
            .query("CP2025090100000024")
            .await
            .expect_error(429, "FREQUENCY_LIMITED");
        probe.query("CP2025090100000024").await.expect(200);
        assert_eq!(probe.sandbox.calls_to(paths::QUERY_BY_OUT_TRADE_NO), 2);
        assert_eq!(
            probe.sandbox.calls_to(&paths::query("CP2025090100000024")),
            2
        );

        // The prepay happens; its answer cannot be trusted.
        for tamper in [
            ResponseTamper::Signtest,
            ResponseTamper::WrongKey,
            ResponseTamper::StaleTimestamp,
            ResponseTamper::UnknownSerial,
        ] {
            probe
                .sandbox
                .tamper_next_responses(paths::NATIVE, tamper, 1);
            let number = format!("CP20250901{:08}", probe.sandbox.transactions().len());
            let mut body = probe.order(&number);
            body.as_object_mut().unwrap().remove("payer");
            let answer = probe.post(paths::NATIVE, &body).await;
            assert_eq!(answer.status, 200);
            assert!(answer.json()["code_url"].is_string());
            let trusted = answer.verifies()
                && answer.header("Wechatpay-Serial").as_deref() == Some(SANDBOX_PUBLIC_KEY_ID)
                && answer
                    .header("Wechatpay-Timestamp")
                    .and_then(|ts| ts.parse::<i64>().ok())
                    .is_some_and(|ts| (probe.clock.now().timestamp() - ts).abs() < CLOCK_SKEW_SECS);
            assert!(!trusted, "{tamper:?}");
            assert!(probe.sandbox.transaction(&number).is_some());
        }

        probe
            .get(paths::CERTIFICATES)
            .await
            .expect_error(404, codes::RESOURCE_NOT_EXISTS);
        probe
            .get("/v3/refund/domestic/refunds/R1")
            .await
            .expect_error(404, codes::RESOURCE_NOT_EXISTS);
    }

    /// wechat-anchors.md §3.6 (a): the official Go SDK's RSA-SHA256 signature of
    /// "source"; (e): the doc example's request message with the same key.
    #[test]
    fn the_sandboxs_own_signer_matches_the_official_vectors() {
        let key = pem_der(GO_SDK_PRIVATE_PEM)
            .and_then(|der| RsaKeyPair::from_pkcs8(&der).ok())
            .expect("the Go SDK's key");
        assert_eq!(rsa_sign(&key, b"source"), GO_SDK_SIGNATURE_OF_SOURCE);
        assert_eq!(
            rsa_sign(
                &key,
                b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
            ),
            "RjVFHMcrr9NsM4SiNmpFx6QPR99WztxatBshmr/6f7pXnt2YSPAhmNrEEAjWgpOcf5Zxbwl2qdPACOsEOeGrnLD81nVK3ucJq50iD0FAyF11knd1C9ic7zV9Jg3zao0+Wx3yAI6jXx6NLBEfNNspCazrQ+IHsUi04tubSBsT+4LHT9j0rL9axFBl7jVYe7uZ1ZQzap8EokLHDQbYw6qPEOs85+a2rnudh3TCPe81oUfe0zPqwEE6sWxxeSCYx+1mbURsOAN4Z8/uKgOIZxbDAkqYWFb7VOaHFeejC1rsxUc7wkw0zQWxae1giswROXii1DorwdJ3CGlPchx0PyDjkQ=="
        );
    }

    /// wechat-anchors.md §3.6 (e): AES-256-GCM with a 32-byte key, as WeChat encrypts
    /// a notification's resource.
    #[test]
    fn the_sandboxs_own_encryption_matches_the_vector() {
        let plaintext = r#"{"mchid":"1900000109","out_trade_no":"WWZY2025090100000001","trade_state":"SUCCESS","amount":{"total":150000,"currency":"CNY"}}"#;
        assert_eq!(
            aes_gcm_encrypt(
                b"abcdefghijklmnopqrstuvwxyz123456",
                b"0123456789ab",
                b"transaction",
                plaintext.as_bytes()
            ),
            "AQfVc95VzuOgKLrKsAYA5B2Bg91aK1qdga4OeqwaqnU2dVU6/ZcynFIosEIAQ0T+4t+FN58ZsEzucGk2p6lxnO1ZkGYAGuMLGFclCmWIYvZz89KY3boPm0hGFrrr4BuQ999GFeud99MTBAs1Zy+VJEYYw99b7QZW/WZ9LTYGGwNZxvv8Qb4yvXrLV4sjD54="
        );
    }
}
