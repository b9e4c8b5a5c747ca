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
use maud::html;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::clock::Clock;
use crate::sandbox::kit::{self, CashierLook, after, china, random_string};

mod api;
mod cashier;
mod deliver;
mod state;
mod validate;
use api::*;
use cashier::*;
use deliver::*;
use state::*;
use validate::*;

mod bills;
mod refunds;
pub use refunds::{
    NOT_ENOUGH, RefundSandboxError, RefundState as SandboxRefundState, SandboxRefund, refund_paths,
};

/// The ID of the sandbox's "WeChat Pay public key": `Wechatpay-Serial` on every answer
/// and notification. Requests that carry a `Wechatpay-Serial` must carry this one.
pub const SANDBOX_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_01142321349124100000000000000000";

/// The demo school's merchant API private key (published: sandbox and tests only).
pub const MERCHANT_PRIVATE_KEY_PEM: &str = include_str!("../keys/merchant_private_key.pem");

/// The public half of the key the sandbox signs with; campus-pay verifies with it.
pub const WECHATPAY_PUBLIC_KEY_PEM: &str = include_str!("../keys/wechatpay_public_key.pem");

const MERCHANT_PUBLIC_KEY_PEM: &str = include_str!("../keys/merchant_public_key.pem");
const WECHATPAY_PRIVATE_KEY_PEM: &str = include_str!("../keys/wechatpay_private_key.pem");

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

#[cfg(test)]
mod tests;
