//! The WeChat Pay v3 API client (direct merchant): JSAPI and Native prepay, query
//! by `out_trade_no`, close, and the JSAPI parameters for the page.
//!
//! Every request carries the merchant's `Authorization` and `Wechatpay-Serial:
//! <public key id>` (so that WeChat signs its answer with that key); every answer
//! is verified before it is believed. An answer that fails verification, or none
//! at all, means "outcome unknown": query later, never treat it as failed.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::keys::MerchantKey;
use super::notify::TradeState;
use super::signing::{JsapiPayParams, RequestSigner, canonical_url, new_nonce};
use super::verify::{HEADER_SERIAL, ResponseVerifier, SignatureHeaders, VerifyError};
use crate::clock::Clock;
use crate::metrics::{UpstreamObserver, UpstreamOutcome};

/// Production host; `api2.mch.weixin.qq.com` is the backup in another region.
pub const DEFAULT_API_BASE: &str = "https://api.mch.weixin.qq.com/";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const USER_AGENT: &str = concat!("campus-pay/", env!("CARGO_PKG_VERSION"), " (WeChat Pay v3)");

const JSAPI_PREPAY: &str = "v3/pay/transactions/jsapi";
const NATIVE_PREPAY: &str = "v3/pay/transactions/native";
const BY_OUT_TRADE_NO: &str = "v3/pay/transactions/out-trade-no/";

/// WeChat's limits (direct-merchant JSAPI/Native docs).
const OUT_TRADE_NO_LEN: std::ops::RangeInclusive<usize> = 6..=32;
const MAX_DESCRIPTION_CHARS: usize = 127;
const MAX_ATTACH_CHARS: usize = 128;

pub struct WechatPayClientConfig {
    /// `DEFAULT_API_BASE` in production, the sandbox in tests and the demo.
    pub api_base: Url,
    /// The official account's app id the payments belong to.
    pub appid: String,
    pub mchid: String,
    /// Serial number of the merchant API certificate (`serial_no` in `Authorization`).
    pub merchant_serial: String,
    pub merchant_key: MerchantKey,
    /// `PUB_KEY_ID_…`, sent as `Wechatpay-Serial` on every request.
    pub public_key_id: String,
    pub verifier: ResponseVerifier,
    /// For the whole exchange; connecting gets at most 5 s of it.
    pub timeout: Duration,
    /// Request timestamps and the freshness check of answers.
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum PayApiError {
    /// No answer (connection refused, timeout, reset): WeChat may have acted.
    #[error("WeChat Pay could not be reached for {api}: {source}")]
    Transport {
        api: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// An answer came, but its signature did not check out: WeChat may have acted.
    #[error("WeChat Pay's answer to {api} (HTTP {status}) is not believed: {reason}")]
    Unverified {
        api: &'static str,
        status: u16,
        reason: VerifyError,
    },
    /// WeChat answered (verified) and refused.
    #[error("WeChat Pay refused {api}: HTTP {status} {code}: {message}")]
    Rejected {
        api: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// `ORDER_NOT_EXIST` (verified).
    #[error("WeChat Pay has no order {out_trade_no}")]
    NotFound { out_trade_no: String },
    /// `ORDERPAID` (v2's spelling, which v3 kept) or `ORDER_PAID` (verified):
    /// closing came too late, or a prepay for a paid order; apply the payment.
    #[error("WeChat Pay order {out_trade_no} is already paid")]
    OrderPaid { out_trade_no: String },
    /// `ORDER_CLOSED` (verified).
    #[error("WeChat Pay order {out_trade_no} is already closed")]
    OrderClosed { out_trade_no: String },
    /// A verified success answer we could not read: WeChat did something.
    #[error("WeChat Pay's answer to {api} could not be read: {detail}")]
    Decode { api: &'static str, detail: String },
    /// Refused before sending: the request breaks WeChat's rules.
    #[error("not sent to WeChat Pay: {0}")]
    InvalidRequest(&'static str),
    #[error("WeChat Pay client setup: {0}")]
    Setup(String),
}

impl PayApiError {
    /// Whether WeChat may have carried out the call despite the error. Money-moving
    /// callers must then keep the order open and query it later.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            PayApiError::Transport { .. }
            | PayApiError::Unverified { .. }
            | PayApiError::Decode { .. } => true,
            PayApiError::Rejected { status, .. } => *status >= 500,
            PayApiError::NotFound { .. }
            | PayApiError::OrderPaid { .. }
            | PayApiError::OrderClosed { .. }
            | PayApiError::InvalidRequest(_)
            | PayApiError::Setup(_) => false,
        }
    }

    /// WeChat's error code of a refusal that has no variant of its own.
    pub fn code(&self) -> Option<&str> {
        match self {
            PayApiError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What a prepay needs. The amount is in fen; `time_expire` is sent as RFC 3339
/// with the offset it carries (use +08:00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepayRequest {
    pub description: String,
    pub out_trade_no: String,
    pub time_expire: DateTime<FixedOffset>,
    pub notify_url: String,
    pub amount_fen: i64,
    pub attach: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepayId(pub String);

/// `weixin://wxpay/bizpayurl?pr=…`, to be shown as a QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeUrl(pub String);

/// An order as a query finds it. Compare app id, merchant and amount with our
/// order before believing a SUCCESS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionState {
    pub trade_state: TradeState,
    pub trade_state_desc: Option<String>,
    pub out_trade_no: String,
    pub appid: Option<String>,
    pub mchid: Option<String>,
    pub transaction_id: Option<String>,
    pub amount_total: Option<i64>,
    pub success_time: Option<DateTime<FixedOffset>>,
    pub payer_openid: Option<String>,
}

pub struct WechatPayClient {
    http: reqwest::Client,
    api_base: Url,
    appid: String,
    signer: RequestSigner,
    public_key_id: String,
    verifier: ResponseVerifier,
    clock: Clock,
    observer: UpstreamObserver,
}

/// An answer whose signature checked out (or a 401 WeChat could not sign).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Vec<u8>,
}

#[derive(Serialize)]
struct PrepayBody<'a> {
    appid: &'a str,
    mchid: &'a str,
    description: &'a str,
    out_trade_no: &'a str,
    time_expire: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attach: Option<&'a str>,
    notify_url: &'a str,
    amount: AmountBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<PayerBody<'a>>,
}

#[derive(Serialize)]
struct AmountBody {
    total: i64,
    currency: &'static str,
}

#[derive(Serialize)]
struct PayerBody<'a> {
    openid: &'a str,
}

#[derive(Serialize)]
struct CloseBody<'a> {
    mchid: &'a str,
}

#[derive(Deserialize)]
struct PrepayIdAnswer {
    prepay_id: String,
}

#[derive(Deserialize)]
struct CodeUrlAnswer {
    code_url: String,
}

#[derive(Deserialize)]
struct QueryAnswer {
    trade_state: TradeState,
    #[serde(default)]
    trade_state_desc: Option<String>,
    out_trade_no: String,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    mchid: Option<String>,
    #[serde(default)]
    transaction_id: Option<String>,
    #[serde(default)]
    success_time: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    payer: Option<QueryPayer>,
    #[serde(default)]
    amount: Option<QueryAmount>,
}

#[derive(Deserialize)]
struct QueryPayer {
    #[serde(default)]
    openid: Option<String>,
}

#[derive(Deserialize)]
struct QueryAmount {
    #[serde(default)]
    total: Option<i64>,
}

/// `{code, message, detail?}`
#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

impl WechatPayClient {
    pub fn new(config: WechatPayClientConfig) -> Result<Self, PayApiError> {
        let http = http_client(config.timeout)?;
        let api_base = directory_url(config.api_base)?;
        Ok(Self {
            http,
            api_base,
            appid: config.appid,
            signer: RequestSigner {
                mchid: config.mchid,
                merchant_serial: config.merchant_serial,
                key: config.merchant_key,
            },
            public_key_id: config.public_key_id,
            verifier: config.verifier,
            clock: config.clock,
            observer: UpstreamObserver::default(),
        })
    }

    /// Reports each exchange with WeChat Pay to `observer`.
    pub fn observed(mut self, observer: UpstreamObserver) -> Self {
        self.observer = observer;
        self
    }

    pub fn appid(&self) -> &str {
        &self.appid
    }

    pub fn mchid(&self) -> &str {
        &self.signer.mchid
    }

    /// The keys answers are checked against; notifications use the same.
    pub fn verifier(&self) -> &ResponseVerifier {
        &self.verifier
    }

    /// `POST /v3/pay/transactions/jsapi`: an order the student pays inside WeChat.
    #[tracing::instrument(skip_all, fields(out_trade_no = %request.out_trade_no))]
    pub async fn jsapi_prepay(
        &self,
        request: &PrepayRequest,
        payer_openid: &str,
    ) -> Result<PrepayId, PayApiError> {
        if payer_openid.is_empty() {
            return Err(PayApiError::InvalidRequest(
                "a JSAPI order needs the payer's openid",
            ));
        }
        let body = self.prepay_body(request, Some(payer_openid))?;
        let answer: PrepayIdAnswer = self
            .prepay("jsapi prepay", JSAPI_PREPAY, &request.out_trade_no, body)
            .await?;
        Ok(PrepayId(answer.prepay_id))
    }

    /// `POST /v3/pay/transactions/native`: an order paid by scanning a QR code.
    #[tracing::instrument(skip_all, fields(out_trade_no = %request.out_trade_no))]
    pub async fn native_prepay(&self, request: &PrepayRequest) -> Result<CodeUrl, PayApiError> {
        let body = self.prepay_body(request, None)?;
        let answer: CodeUrlAnswer = self
            .prepay("native prepay", NATIVE_PREPAY, &request.out_trade_no, body)
            .await?;
        Ok(CodeUrl(answer.code_url))
    }

    /// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…`
    #[tracing::instrument(skip(self))]
    pub async fn query_by_out_trade_no(
        &self,
        out_trade_no: &str,
    ) -> Result<TransactionState, PayApiError> {
        const API: &str = "query order";
        check_out_trade_no(out_trade_no)?;
        let mut url = self.order_url(out_trade_no, None)?;
        url.query_pairs_mut()
            .append_pair("mchid", &self.signer.mchid);
        let answer = self.exchange(API, Method::GET, url, None).await?;
        if !answer.status.is_success() {
            return Err(error_from_answer(API, out_trade_no, &answer));
        }
        let found: QueryAnswer = decode(API, &answer.body)?;
        Ok(TransactionState {
            trade_state: found.trade_state,
            trade_state_desc: found.trade_state_desc,
            out_trade_no: found.out_trade_no,
            appid: found.appid,
            mchid: found.mchid,
            transaction_id: found.transaction_id,
            amount_total: found.amount.and_then(|amount| amount.total),
            success_time: found.success_time,
            payer_openid: found.payer.and_then(|payer| payer.openid),
        })
    }

    /// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` (204).
    #[tracing::instrument(skip(self))]
    pub async fn close(&self, out_trade_no: &str) -> Result<(), PayApiError> {
        const API: &str = "close order";
        check_out_trade_no(out_trade_no)?;
        let url = self.order_url(out_trade_no, Some("close"))?;
        let body = to_json(&CloseBody {
            mchid: &self.signer.mchid,
        })?;
        let answer = self.exchange(API, Method::POST, url, Some(body)).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(error_from_answer(API, out_trade_no, &answer))
        }
    }

    /// The object for `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`, signed
    /// with the merchant key. The page's `ok` is not proof of payment.
    pub fn jsapi_pay_params(&self, prepay_id: &PrepayId, now: DateTime<Utc>) -> JsapiPayParams {
        JsapiPayParams::sign(
            &self.signer.key,
            &self.appid,
            &prepay_id.0,
            now.timestamp(),
            &new_nonce(),
        )
    }

    fn prepay_body(
        &self,
        request: &PrepayRequest,
        payer_openid: Option<&str>,
    ) -> Result<String, PayApiError> {
        check_prepay(request)?;
        to_json(&PrepayBody {
            appid: &self.appid,
            mchid: &self.signer.mchid,
            description: &request.description,
            out_trade_no: &request.out_trade_no,
            time_expire: request
                .time_expire
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            attach: request.attach.as_deref(),
            notify_url: &request.notify_url,
            amount: AmountBody {
                total: request.amount_fen,
                currency: "CNY",
            },
            payer: payer_openid.map(|openid| PayerBody { openid }),
        })
    }

    pub(super) fn endpoint(&self, path: &str) -> Result<Url, PayApiError> {
        self.api_base
            .join(path)
            .map_err(|error| PayApiError::Setup(format!("API URL for {path}: {error}")))
    }

    /// `…/out-trade-no/{out_trade_no}[/{action}]`. The order number is escaped as
    /// a path segment the way the official Go SDK escapes it (`|` → `%7C`, `*` →
    /// `%2A`), and the signature covers the escaped form that is sent.
    fn order_url(&self, out_trade_no: &str, action: Option<&str>) -> Result<Url, PayApiError> {
        let mut path = format!("{BY_OUT_TRADE_NO}{}", escape_out_trade_no(out_trade_no));
        if let Some(action) = action {
            path.push('/');
            path.push_str(action);
        }
        self.endpoint(&path)
    }

    /// A prepay: POST `body` to `path`, read a JSON success answer.
    async fn prepay<T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        out_trade_no: &str,
        body: String,
    ) -> Result<T, PayApiError> {
        let url = self.endpoint(path)?;
        let answer = self.exchange(api, Method::POST, url, Some(body)).await?;
        if !answer.status.is_success() {
            return Err(error_from_answer(api, out_trade_no, &answer));
        }
        decode(api, &answer.body)
    }

    /// Signs, sends, reads and verifies one exchange.
    pub(super) async fn exchange(
        &self,
        api: &'static str,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<Answer, PayApiError> {
        let started = tokio::time::Instant::now();
        let answer = self.exchange_unobserved(api, method, url, body).await;
        let outcome = match &answer {
            Ok(answer) if answer.status.is_success() => UpstreamOutcome::Ok,
            Ok(answer) if answer.status.is_server_error() => UpstreamOutcome::Http5xx,
            // A verified refusal: WeChat Pay's own error code.
            Ok(_) => UpstreamOutcome::Refused,
            Err(PayApiError::Transport { source, .. }) => UpstreamOutcome::of_transport(source),
            Err(_) => UpstreamOutcome::Unverifiable,
        };
        self.observer
            .call(api_label(api), outcome, started.elapsed());
        answer
    }

    async fn exchange_unobserved(
        &self,
        api: &'static str,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<Answer, PayApiError> {
        let request = self.signed_request(method, url, body);
        let transport = |source| PayApiError::Transport { api, source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        self.check_signature(api, status, &headers, &body)?;
        Ok(Answer { status, body })
    }

    pub(super) fn signed_request(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> reqwest::RequestBuilder {
        let timestamp = self.clock.now().timestamp();
        let nonce = new_nonce();
        let body_text = body.as_deref().unwrap_or("");
        let authorization = self.signer.authorization(
            method.as_str(),
            &canonical_url(&url),
            body_text,
            timestamp,
            &nonce,
        );
        let request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, authorization)
            .header(HEADER_SERIAL, &self.public_key_id);
        match body {
            Some(body) => request.header(CONTENT_TYPE, "application/json").body(body),
            None => request,
        }
    }

    /// WeChat cannot sign its answer when it could not authenticate us (401);
    /// such an answer changed nothing and is taken as it is. Every other answer
    /// must verify.
    fn check_signature(
        &self,
        api: &'static str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), PayApiError> {
        if status == StatusCode::UNAUTHORIZED && !SignatureHeaders::any_present(headers) {
            return Ok(());
        }
        self.verifier
            .verify(headers, body, self.clock.now())
            .map_err(|reason| {
                tracing::warn!(api, status = status.as_u16(), %reason, "WeChat Pay answer failed verification");
                PayApiError::Unverified {
                    api,
                    status: status.as_u16(),
                    reason,
                }
            })
    }
}

/// A short, stable name for each API, for metrics.
fn api_label(api: &'static str) -> &'static str {
    match api {
        "jsapi prepay" => "jsapi",
        "native prepay" => "native",
        "query order" => "query",
        "close order" => "close",
        "refund" => "refund",
        "query refund" => "query_refund",
        "trade bill" => "bill",
        _ => "other",
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, PayApiError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .default_headers(headers)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|error| PayApiError::Setup(error.to_string()))
}

fn directory_url(mut base: Url) -> Result<Url, PayApiError> {
    if base.cannot_be_a_base() {
        return Err(PayApiError::Setup(format!(
            "the WeChat Pay API base {base} cannot hold API paths"
        )));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, PayApiError> {
    serde_json::to_string(value)
        .map_err(|_| PayApiError::InvalidRequest("the request could not be serialised"))
}

pub(super) fn decode<T: DeserializeOwned>(
    api: &'static str,
    body: &[u8],
) -> Result<T, PayApiError> {
    serde_json::from_slice(body).map_err(|error| PayApiError::Decode {
        api,
        detail: error.to_string(),
    })
}

fn check_out_trade_no(out_trade_no: &str) -> Result<(), PayApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '|' | '*');
    if OUT_TRADE_NO_LEN.contains(&out_trade_no.len()) && out_trade_no.chars().all(allowed) {
        Ok(())
    } else {
        Err(PayApiError::InvalidRequest(
            "out_trade_no must be 6-32 characters of [0-9A-Za-z_-|*]",
        ))
    }
}

/// Only for numbers that passed `check_out_trade_no`: the rest of its
/// alphabet needs no escaping.
fn escape_out_trade_no(out_trade_no: &str) -> String {
    out_trade_no.replace('|', "%7C").replace('*', "%2A")
}

fn check_prepay(request: &PrepayRequest) -> Result<(), PayApiError> {
    check_out_trade_no(&request.out_trade_no)?;
    if request.amount_fen <= 0 {
        return Err(PayApiError::InvalidRequest(
            "the amount must be at least 1 fen",
        ));
    }
    if request.description.is_empty() || request.description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(PayApiError::InvalidRequest(
            "the description must be 1-127 characters",
        ));
    }
    if request
        .attach
        .as_ref()
        .is_some_and(|attach| attach.chars().count() > MAX_ATTACH_CHARS)
    {
        return Err(PayApiError::InvalidRequest(
            "attach must be at most 128 characters",
        ));
    }
    Ok(())
}

/// A verified (or unsigned 401) error answer, typed.
pub(super) fn error_from_answer(
    api: &'static str,
    out_trade_no: &str,
    answer: &Answer,
) -> PayApiError {
    let status = answer.status.as_u16();
    let error: ErrorAnswer = serde_json::from_slice(&answer.body).unwrap_or(ErrorAnswer {
        code: String::new(),
        message: String::from_utf8_lossy(&answer.body)
            .chars()
            .take(200)
            .collect(),
        detail: None,
    });
    if error.code == "SIGN_ERROR" {
        log_sign_error(api, error.detail.as_ref());
    }
    let out_trade_no = out_trade_no.to_owned();
    match error.code.as_str() {
        "ORDER_NOT_EXIST" => PayApiError::NotFound { out_trade_no },
        "ORDERPAID" | "ORDER_PAID" => PayApiError::OrderPaid { out_trade_no },
        "ORDER_CLOSED" => PayApiError::OrderClosed { out_trade_no },
        _ => PayApiError::Rejected {
            api,
            status,
            code: error.code,
            message: error.message,
        },
    }
}

/// WeChat shows what it expected us to sign; the usual culprit is a body or URL
/// that differs from what was signed.
fn log_sign_error(api: &'static str, detail: Option<&serde_json::Value>) {
    let expected = detail
        .and_then(|detail| detail.pointer("/sign_information/truncated_sign_message"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("(not given)");
    tracing::warn!(
        api,
        truncated_sign_message = expected,
        "WeChat Pay refused our request signature (SIGN_ERROR)"
    );
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::Uri;
    use axum::response::IntoResponse;
    use chrono::TimeZone;

    use super::*;
    use crate::pay::wechatpay::keys::WechatPayPublicKey;
    use crate::pay::wechatpay::keys::tests::{MERCHANT_PRIVATE_PEM, MERCHANT_PUBLIC_PEM};
    use crate::pay::wechatpay::signing::request_signature_message;
    use crate::pay::wechatpay::verify::tests::{
        SANDBOX_KEY_ID, sandbox_signed_headers, sandbox_verifier,
    };

    const APPID: &str = "wxd678efh567hg6787";
    const MCHID: &str = "1900000109";
    const MERCHANT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

    /// What the fake WeChat Pay saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path_and_query: String,
        headers: HeaderMap,
        body: String,
    }

    type Canned = (StatusCode, HeaderMap, Vec<u8>);

    struct FakeWechatPay {
        base: Url,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl FakeWechatPay {
        async fn spawn(answer: impl Fn(&Seen) -> Canned + Send + Sync + 'static) -> Self {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let answer = Arc::new(answer);
            let recorder = seen.clone();
            let app = Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let answer = answer.clone();
                    let recorder = recorder.clone();
                    async move {
                        let request = Seen {
                            method: method.to_string(),
                            path_and_query: uri
                                .path_and_query()
                                .map(|pq| pq.to_string())
                                .unwrap_or_default(),
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        let canned = answer(&request);
                        recorder.lock().expect("lock").push(request);
                        canned.into_response()
                    }
                },
            );
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Self {
                base: Url::parse(&format!("http://{address}/")).expect("base"),
                seen,
            }
        }

        fn only_request(&self) -> Seen {
            let seen = self.seen.lock().expect("lock");
            assert_eq!(seen.len(), 1, "{seen:?}");
            seen[0].clone()
        }
    }

    fn signed_at(status: StatusCode, body: &str, timestamp: i64) -> Canned {
        let headers = sandbox_signed_headers(body.as_bytes(), timestamp, "ANSWERNONCE");
        (status, headers, body.as_bytes().to_vec())
    }

    fn signed(status: StatusCode, body: &str) -> Canned {
        signed_at(status, body, Utc::now().timestamp())
    }

    fn unsigned(status: StatusCode, body: &str) -> Canned {
        (status, HeaderMap::new(), body.as_bytes().to_vec())
    }

    fn client_with_timeout(base: &Url, timeout: Duration) -> WechatPayClient {
        WechatPayClient::new(WechatPayClientConfig {
            api_base: base.clone(),
            appid: APPID.to_owned(),
            mchid: MCHID.to_owned(),
            merchant_serial: MERCHANT_SERIAL.to_owned(),
            merchant_key: MerchantKey::from_pem(MERCHANT_PRIVATE_PEM).expect("merchant key"),
            public_key_id: SANDBOX_KEY_ID.to_owned(),
            verifier: sandbox_verifier(),
            timeout,
            clock: Clock::system(),
        })
        .expect("client")
    }

    fn client(fake: &FakeWechatPay) -> WechatPayClient {
        client_with_timeout(&fake.base, DEFAULT_TIMEOUT)
    }

    fn prepay_request() -> PrepayRequest {
        let beijing = FixedOffset::east_opt(8 * 3600).expect("offset");
        PrepayRequest {
            description: "示范学院-2025学年学费".to_owned(),
            out_trade_no: "CP20250901000001".to_owned(),
            time_expire: beijing
                .with_ymd_and_hms(2025, 9, 1, 12, 30, 0)
                .single()
                .expect("time"),
            notify_url: "https://pay.example.edu.cn/pay/notify/wechat".to_owned(),
            amount_fen: 150_000,
            attach: None,
        }
    }

    /// Checks the request the way WeChat Pay does: the `Authorization` fields and
    /// the signature over what actually arrived, with the merchant public key.
    fn assert_signed_by_merchant(seen: &Seen) {
        let authorization = seen.headers[AUTHORIZATION].to_str().expect("ascii");
        let fields = authorization
            .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
            .expect("schema");
        let field = |name: &str| {
            fields
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{name} in {fields}"))
                .to_owned()
        };
        assert_eq!(field("mchid"), MCHID);
        assert_eq!(field("serial_no"), MERCHANT_SERIAL);
        let timestamp: i64 = field("timestamp").parse().expect("timestamp");
        assert!((Utc::now().timestamp() - timestamp).abs() < 60);
        let message = request_signature_message(
            &seen.method,
            &seen.path_and_query,
            timestamp,
            &field("nonce_str"),
            &seen.body,
        );
        let merchant_public = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_PEM).expect("public");
        assert!(merchant_public.verify_sha256(message.as_bytes(), &field("signature")));
        assert_eq!(seen.headers[HEADER_SERIAL], SANDBOX_KEY_ID);
        assert_eq!(seen.headers[ACCEPT], "application/json");
        assert!(
            seen.headers[reqwest::header::USER_AGENT]
                .to_str()
                .expect("ascii")
                .starts_with("campus-pay/")
        );
    }

    #[tokio::test]
    async fn jsapi_prepay_sends_a_signed_order_and_believes_a_signed_answer() {
        let fake = FakeWechatPay::spawn(|_| {
            signed(
                StatusCode::OK,
                r#"{"prepay_id":"wx201410272009395522657a690389285100"}"#,
            )
        })
        .await;
        let prepay_id = client(&fake)
            .jsapi_prepay(&prepay_request(), "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
            .await
            .expect("prepay");
        assert_eq!(prepay_id.0, "wx201410272009395522657a690389285100");

        let seen = fake.only_request();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path_and_query, "/v3/pay/transactions/jsapi");
        assert_eq!(seen.headers[CONTENT_TYPE], "application/json");
        assert_signed_by_merchant(&seen);
        let body: serde_json::Value = serde_json::from_str(&seen.body).expect("json");
        assert_eq!(
            body,
            serde_json::json!({
                "appid": APPID,
                "mchid": MCHID,
                "description": "示范学院-2025学年学费",
                "out_trade_no": "CP20250901000001",
                "time_expire": "2025-09-01T12:30:00+08:00",
                "notify_url": "https://pay.example.edu.cn/pay/notify/wechat",
                "amount": {"total": 150000, "currency": "CNY"},
                "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
            })
        );
    }

    #[tokio::test]
    async fn native_prepay_returns_the_code_url_and_sends_no_payer() {
        let fake = FakeWechatPay::spawn(|_| {
            signed(
                StatusCode::OK,
                r#"{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}"#,
            )
        })
        .await;
        let mut request = prepay_request();
        request.attach = Some("fees:12,13".to_owned());
        let code_url = client(&fake).native_prepay(&request).await.expect("prepay");
        assert_eq!(code_url.0, "weixin://wxpay/bizpayurl?pr=p4lpSuKzz");
        let seen = fake.only_request();
        assert_eq!(seen.path_and_query, "/v3/pay/transactions/native");
        let body: serde_json::Value = serde_json::from_str(&seen.body).expect("json");
        assert!(body.get("payer").is_none());
        assert_eq!(body["attach"], "fees:12,13");
        assert_signed_by_merchant(&seen);
    }

    #[tokio::test]
    async fn a_badly_signed_answer_is_unverified_and_the_outcome_unknown() {
        let fake = FakeWechatPay::spawn(|_| {
            let (status, headers, _) = signed(StatusCode::OK, r#"{"prepay_id":"wx1"}"#);
            (status, headers, br#"{"prepay_id":"wx2"}"#.to_vec())
        })
        .await;
        let error = client(&fake)
            .jsapi_prepay(&prepay_request(), "openid")
            .await
            .expect_err("forged");
        assert!(
            matches!(
                error,
                PayApiError::Unverified {
                    reason: VerifyError::BadSignature,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.outcome_unknown());
    }

    #[tokio::test]
    async fn a_stale_answer_is_unverified() {
        let fake = FakeWechatPay::spawn(|_| {
            signed_at(
                StatusCode::OK,
                r#"{"prepay_id":"wx1"}"#,
                Utc::now().timestamp() - 600,
            )
        })
        .await;
        let error = client(&fake)
            .native_prepay(&prepay_request())
            .await
            .expect_err("stale");
        assert!(
            matches!(
                error,
                PayApiError::Unverified {
                    reason: VerifyError::Stale { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.outcome_unknown());
    }

    #[tokio::test]
    async fn an_unsigned_success_or_server_error_is_unverified() {
        let fake = FakeWechatPay::spawn(|seen| {
            if seen.method == "GET" {
                unsigned(
                    StatusCode::OK,
                    r#"{"trade_state":"SUCCESS","out_trade_no":"CP20250901000001"}"#,
                )
            } else {
                unsigned(StatusCode::BAD_GATEWAY, "<html>502</html>")
            }
        })
        .await;
        let client = client(&fake);
        let error = client
            .query_by_out_trade_no("CP20250901000001")
            .await
            .expect_err("unsigned success");
        assert!(matches!(
            error,
            PayApiError::Unverified {
                reason: VerifyError::MissingHeader(_),
                ..
            }
        ));
        let error = client
            .close("CP20250901000001")
            .await
            .expect_err("unsigned 502");
        assert!(matches!(error, PayApiError::Unverified { status: 502, .. }));
        assert!(error.outcome_unknown());
    }

    #[tokio::test]
    async fn sign_error_is_rejected_and_known_not_to_have_happened() {
        let fake = FakeWechatPay::spawn(|_| {
            unsigned(
                StatusCode::UNAUTHORIZED,
                r#"{"code":"SIGN_ERROR","message":"签名错误","detail":{"detail":{"issue":"sign not match"},"field":"signature","location":"authorization","sign_information":{"method":"POST","sign_message_length":100,"truncated_sign_message":"POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{\"appid\":\"wxd678efh567hg6787\"\n","url":"/v3/pay/transactions/jsapi"}}}"#,
            )
        })
        .await;
        let error = client(&fake)
            .jsapi_prepay(&prepay_request(), "openid")
            .await
            .expect_err("sign error");
        match &error {
            PayApiError::Rejected {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!(*status, 401);
                assert_eq!(code, "SIGN_ERROR");
                assert_eq!(message, "签名错误");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert!(!error.outcome_unknown());
        assert_eq!(error.code(), Some("SIGN_ERROR"));
    }

    #[tokio::test]
    async fn signed_rejections_are_typed() {
        let fake = FakeWechatPay::spawn(|seen| match seen.path_and_query.as_str() {
            path if path.ends_with("/PAID000001/close") => signed(
                StatusCode::BAD_REQUEST,
                r#"{"code":"ORDERPAID","message":"订单已支付"}"#,
            ),
            path if path.ends_with("/CLOSED0001/close") => signed(
                StatusCode::BAD_REQUEST,
                r#"{"code":"ORDER_CLOSED","message":"订单已关闭"}"#,
            ),
            path if path.contains("MISSING001") => signed(
                StatusCode::NOT_FOUND,
                r#"{"code":"ORDER_NOT_EXIST","message":"订单不存在"}"#,
            ),
            _ => signed(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"code":"SYSTEM_ERROR","message":"系统错误"}"#,
            ),
        })
        .await;
        let client = client(&fake);
        let paid = client.close("PAID000001").await.expect_err("paid");
        assert!(matches!(paid, PayApiError::OrderPaid { .. }), "{paid:?}");
        assert!(!paid.outcome_unknown());
        let closed = client.close("CLOSED0001").await.expect_err("closed");
        assert!(
            matches!(closed, PayApiError::OrderClosed { .. }),
            "{closed:?}"
        );
        let missing = client
            .query_by_out_trade_no("MISSING001")
            .await
            .expect_err("missing");
        assert!(
            matches!(&missing, PayApiError::NotFound { out_trade_no } if out_trade_no == "MISSING001"),
            "{missing:?}"
        );
        let busy = client.close("OTHER00001").await.expect_err("system error");
        assert!(matches!(busy, PayApiError::Rejected { status: 500, .. }));
        assert!(
            busy.outcome_unknown(),
            "a 500 may still have closed the order"
        );
    }

    #[tokio::test]
    async fn query_reads_the_state_and_close_accepts_204() {
        let fake = FakeWechatPay::spawn(|seen| {
            if seen.method == "GET" {
                signed(
                    StatusCode::OK,
                    r#"{"amount":{"currency":"CNY","payer_currency":"CNY","payer_total":150000,"total":150000},"appid":"wxd678efh567hg6787","attach":"","bank_type":"OTHERS","mchid":"1900000109","out_trade_no":"CP2025|09*01_A-1","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"promotion_detail":[],"success_time":"2025-09-01T12:00:05+08:00","trade_state":"SUCCESS","trade_state_desc":"支付成功","trade_type":"JSAPI","transaction_id":"4200001234202509011234567890"}"#,
                )
            } else {
                signed(StatusCode::NO_CONTENT, "")
            }
        })
        .await;
        let client = client(&fake);
        let state = client
            .query_by_out_trade_no("CP2025|09*01_A-1")
            .await
            .expect("query");
        assert_eq!(state.trade_state, TradeState::Success);
        assert_eq!(state.amount_total, Some(150_000));
        assert_eq!(state.mchid.as_deref(), Some(MCHID));
        assert_eq!(state.appid.as_deref(), Some(APPID));
        assert_eq!(
            state.transaction_id.as_deref(),
            Some("4200001234202509011234567890")
        );
        assert_eq!(
            state.payer_openid.as_deref(),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        assert!(state.success_time.is_some());
        client.close("CP2025|09*01_A-1").await.expect("close");

        let seen = fake.seen.lock().expect("lock").clone();
        assert_eq!(
            seen[0].path_and_query,
            "/v3/pay/transactions/out-trade-no/CP2025%7C09%2A01_A-1?mchid=1900000109"
        );
        assert_eq!(seen[0].body, "");
        assert!(!seen[0].headers.contains_key(CONTENT_TYPE));
        assert_signed_by_merchant(&seen[0]);
        assert_eq!(
            seen[1].path_and_query,
            "/v3/pay/transactions/out-trade-no/CP2025%7C09%2A01_A-1/close"
        );
        assert_eq!(seen[1].body, r#"{"mchid":"1900000109"}"#);
        assert_signed_by_merchant(&seen[1]);
    }

    #[tokio::test]
    async fn a_notpay_query_may_lack_payment_fields() {
        let fake = FakeWechatPay::spawn(|_| {
            signed(
                StatusCode::OK,
                r#"{"amount":{"payer_currency":"CNY","total":1},"appid":"wxd678efh567hg6787","mchid":"1900000109","out_trade_no":"CP20250901000001","promotion_detail":[],"scene_info":{"device_id":""},"trade_state":"NOTPAY","trade_state_desc":"订单未支付"}"#,
            )
        })
        .await;
        let state = client(&fake)
            .query_by_out_trade_no("CP20250901000001")
            .await
            .expect("query");
        assert_eq!(state.trade_state, TradeState::NotPay);
        assert_eq!(state.transaction_id, None);
        assert_eq!(state.payer_openid, None);
        assert_eq!(state.success_time, None);
    }

    #[tokio::test]
    async fn a_silent_server_is_a_transport_error_with_unknown_outcome() {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let base =
            Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("base");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = client_with_timeout(&base, Duration::from_millis(300));
        let error = client
            .jsapi_prepay(&prepay_request(), "openid")
            .await
            .expect_err("timeout");
        assert!(matches!(error, PayApiError::Transport { .. }), "{error:?}");
        assert!(error.outcome_unknown());
    }

    #[tokio::test]
    async fn requests_breaking_wechat_rules_are_not_sent() {
        let fake = FakeWechatPay::spawn(|_| signed(StatusCode::OK, "{}")).await;
        let client = client(&fake);
        let mut request = prepay_request();
        request.out_trade_no = "bad no!".to_owned();
        assert!(matches!(
            client.native_prepay(&request).await,
            Err(PayApiError::InvalidRequest(_))
        ));
        let mut request = prepay_request();
        request.amount_fen = 0;
        assert!(matches!(
            client.native_prepay(&request).await,
            Err(PayApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            client.jsapi_prepay(&prepay_request(), "").await,
            Err(PayApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            client.query_by_out_trade_no("../../x").await,
            Err(PayApiError::InvalidRequest(_))
        ));
        assert!(fake.seen.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_verified_but_unreadable_success_is_decode_with_unknown_outcome() {
        let fake = FakeWechatPay::spawn(|_| signed(StatusCode::OK, r#"{"prepay":"?"}"#)).await;
        let error = client(&fake)
            .jsapi_prepay(&prepay_request(), "openid")
            .await
            .expect_err("decode");
        assert!(matches!(error, PayApiError::Decode { .. }), "{error:?}");
        assert!(error.outcome_unknown());
    }

    #[test]
    fn jsapi_pay_params_are_signed_with_the_merchant_key() {
        let client = client_with_timeout(
            &Url::parse("http://127.0.0.1:9/").expect("url"),
            DEFAULT_TIMEOUT,
        );
        let now = Utc.timestamp_opt(1_756_700_000, 0).single().expect("time");
        let params = client.jsapi_pay_params(&PrepayId("wx2025".to_owned()), now);
        assert_eq!(params.app_id, APPID);
        assert_eq!(params.time_stamp, "1756700000");
        assert_eq!(params.package, "prepay_id=wx2025");
        assert_eq!(params.sign_type, "RSA");
        let message = format!(
            "{APPID}\n1756700000\n{}\nprepay_id=wx2025\n",
            params.nonce_str
        );
        let merchant_public = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_PEM).expect("public");
        assert!(merchant_public.verify_sha256(message.as_bytes(), &params.pay_sign));
    }

    #[test]
    fn an_opaque_api_base_is_refused() {
        let result = WechatPayClient::new(WechatPayClientConfig {
            api_base: Url::parse("mailto:pay@example.com").expect("url"),
            appid: APPID.to_owned(),
            mchid: MCHID.to_owned(),
            merchant_serial: MERCHANT_SERIAL.to_owned(),
            merchant_key: MerchantKey::from_pem(MERCHANT_PRIVATE_PEM).expect("key"),
            public_key_id: SANDBOX_KEY_ID.to_owned(),
            verifier: sandbox_verifier(),
            timeout: DEFAULT_TIMEOUT,
            clock: Clock::system(),
        });
        assert!(matches!(result, Err(PayApiError::Setup(_))));
    }
}
