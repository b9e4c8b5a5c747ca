//! The OpenAPI gateway client (`https://openapi.alipay.com/gateway.do`): the common
//! parameters, the RSA2 `sign`, and the three calls a QR-code (当面付) payment needs:
//! `alipay.trade.precreate`, `alipay.trade.query`, `alipay.trade.close`.
//!
//! On the wire, as Alipay's own SDKs send it: one POST whose URL query carries the
//! common parameters and `sign`, and whose form body (`application/x-www-form-urlencoded;
//! charset=utf-8`) carries `biz_content`; the gateway reads both. Every answer is
//! verified (see [`super::sign::verify_response`]) before anything in it is believed:
//! an answer that fails, or none at all, means the outcome is unknown.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};
use url::Url;

use super::sign::{AlipayPublicKey, AppPrivateKey, request_sign_content, verify_response};
use super::{beijing_time, yuan};
use crate::clock::Clock;
use crate::metrics::{UpstreamObserver, UpstreamOutcome};

pub const PRECREATE: &str = "alipay.trade.precreate";
pub const QUERY: &str = "alipay.trade.query";
pub const CLOSE: &str = "alipay.trade.close";

/// `code` of a call that succeeded.
pub const CODE_SUCCESS: &str = "10000";
/// `code` of "service currently unavailable": Alipay may or may not have acted.
pub const CODE_UNAVAILABLE: &str = "20000";

const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const USER_AGENT: &str = concat!(
    "campus-pay/",
    env!("CARGO_PKG_VERSION"),
    " (Alipay OpenAPI)"
);
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";
/// Alipay's limits: `out_trade_no` String(64), `subject` String(256), amounts up to
/// 100 000 000 yuan.
const MAX_OUT_TRADE_NO: usize = 64;
const MAX_SUBJECT_CHARS: usize = 256;
const MAX_AMOUNT_FEN: i64 = 100_000_000 * 100;

pub struct AlipayClientConfig {
    /// The gateway (`…/gateway.do`): production, or the sandbox in tests and the demo.
    pub gateway: Url,
    pub app_id: String,
    pub app_key: AppPrivateKey,
    pub alipay_key: AlipayPublicKey,
    /// For the whole exchange; connecting gets at most 5 s of it.
    pub timeout: Duration,
    /// Request timestamps.
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum AlipayApiError {
    /// No answer (connection refused, timeout, reset): Alipay may have acted.
    #[error("Alipay could not be reached for {method}: {source}")]
    Transport {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// An answer came, but it cannot be believed (bad or missing signature, not
    /// Alipay's format, HTTP error): Alipay may have acted.
    #[error("Alipay's answer to {method} (HTTP {status}) is not believed: {reason}")]
    Unverified {
        method: &'static str,
        status: u16,
        reason: String,
    },
    /// A verified answer other than `10000`.
    #[error("Alipay refused {method}: {code} {msg}: {sub_code} {sub_msg}")]
    Business {
        method: &'static str,
        code: String,
        msg: String,
        sub_code: String,
        sub_msg: String,
    },
    /// A verified success we could not make sense of: Alipay did something.
    #[error("Alipay's answer to {method} could not be read: {detail}")]
    Decode {
        method: &'static str,
        detail: String,
    },
    /// Refused before sending: the request breaks Alipay's rules.
    #[error("not sent to Alipay: {0}")]
    InvalidRequest(String),
    #[error("Alipay client setup: {0}")]
    Setup(String),
}

impl AlipayApiError {
    /// Whether Alipay may have carried out the call despite the error: then keep the
    /// order open and query it later, never treat it as failed. `20000`, `isp.*`
    /// and `*SYSTEM_ERROR` (Alipay: "重新发起请求 / 查询") count as unknown.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            AlipayApiError::Transport { .. }
            | AlipayApiError::Unverified { .. }
            | AlipayApiError::Decode { .. } => true,
            AlipayApiError::Business { code, sub_code, .. } => {
                code == CODE_UNAVAILABLE
                    || sub_code.starts_with("isp.")
                    || sub_code.starts_with("aop.unknow")
                    || sub_code.ends_with("SYSTEM_ERROR")
            }
            AlipayApiError::InvalidRequest(_) | AlipayApiError::Setup(_) => false,
        }
    }

    /// How the call ended, for metrics; `None` when nothing was sent.
    pub fn upstream_outcome(&self) -> Option<UpstreamOutcome> {
        match self {
            AlipayApiError::Transport { source, .. } => Some(UpstreamOutcome::of_transport(source)),
            AlipayApiError::Unverified { status, .. } => {
                Some(match UpstreamOutcome::of_status(*status) {
                    UpstreamOutcome::Ok => UpstreamOutcome::Unverifiable,
                    by_status => by_status,
                })
            }
            AlipayApiError::Business { .. } => Some(UpstreamOutcome::Refused),
            AlipayApiError::Decode { .. } => Some(UpstreamOutcome::Undecodable),
            AlipayApiError::InvalidRequest(_) | AlipayApiError::Setup(_) => None,
        }
    }

    /// The `sub_code` of a verified refusal (its `code` when it has none).
    pub fn sub_code(&self) -> Option<&str> {
        match self {
            AlipayApiError::Business { code, sub_code, .. } => {
                Some(if sub_code.is_empty() { code } else { sub_code })
            }
            _ => None,
        }
    }
}

/// What a precreate needs. The amount is in fen; `time_expire` is sent in Beijing
/// time, `yyyy-MM-dd HH:mm:ss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecreateRequest<'a> {
    pub out_trade_no: &'a str,
    pub subject: &'a str,
    pub total_amount_fen: i64,
    pub time_expire: DateTime<Utc>,
    pub notify_url: &'a str,
}

/// A trade as `alipay.trade.query` shows it (fields Alipay leaves out are `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeQuery {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
    pub trade_status: String,
    /// Yuan, as sent.
    pub total_amount: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss`, Beijing time.
    pub send_pay_date: Option<String>,
    pub buyer_user_id: Option<String>,
}

pub struct AlipayClient {
    http: reqwest::Client,
    gateway: Url,
    app_id: String,
    app_key: AppPrivateKey,
    alipay_key: AlipayPublicKey,
    clock: Clock,
    observer: UpstreamObserver,
}

impl AlipayClient {
    pub fn new(config: AlipayClientConfig) -> Result<Self, AlipayApiError> {
        if !matches!(config.gateway.scheme(), "http" | "https") {
            return Err(AlipayApiError::Setup(format!(
                "the gateway must be an http(s) URL, not {}",
                config.gateway
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .timeout(config.timeout)
            .no_proxy()
            .build()
            .map_err(|error| AlipayApiError::Setup(error.to_string()))?;
        Ok(Self {
            http,
            gateway: config.gateway,
            app_id: config.app_id,
            app_key: config.app_key,
            alipay_key: config.alipay_key,
            clock: config.clock,
            observer: UpstreamObserver::default(),
        })
    }

    /// Reports each call to Alipay to `observer`.
    pub fn observed(mut self, observer: UpstreamObserver) -> Self {
        self.observer = observer;
        self
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    pub fn alipay_key(&self) -> &AlipayPublicKey {
        &self.alipay_key
    }

    /// The HTTP client calls go through (its timeouts), for the bill download.
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Every parameter of a call, `sign` last, as they go on the wire.
    pub fn signed_params(
        &self,
        method: &str,
        biz_content: &str,
        notify_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<(&'static str, String)> {
        let mut params: Vec<(&'static str, String)> = vec![
            ("app_id", self.app_id.clone()),
            ("method", method.to_owned()),
            ("format", "JSON".to_owned()),
            ("charset", "utf-8".to_owned()),
            ("sign_type", "RSA2".to_owned()),
            ("timestamp", beijing_time(now)),
            ("version", "1.0".to_owned()),
        ];
        if let Some(notify_url) = notify_url {
            params.push(("notify_url", notify_url.to_owned()));
        }
        params.push(("biz_content", biz_content.to_owned()));
        let content = request_sign_content(params.iter().map(|(k, v)| (*k, v.as_str())));
        params.push(("sign", self.app_key.sign_base64(content.as_bytes())));
        params
    }

    /// One call: signed, sent, its answer verified. `Ok` only for `code` 10000.
    pub async fn call(
        &self,
        method: &'static str,
        biz_content: &Value,
        notify_url: Option<&str>,
    ) -> Result<Map<String, Value>, AlipayApiError> {
        let started = tokio::time::Instant::now();
        let answer = self.call_unobserved(method, biz_content, notify_url).await;
        let outcome = match &answer {
            Ok(_) => Some(UpstreamOutcome::Ok),
            Err(error) => error.upstream_outcome(),
        };
        if let Some(outcome) = outcome {
            self.observer
                .call(api_label(method), outcome, started.elapsed());
        }
        answer
    }

    async fn call_unobserved(
        &self,
        method: &'static str,
        biz_content: &Value,
        notify_url: Option<&str>,
    ) -> Result<Map<String, Value>, AlipayApiError> {
        let biz_content = biz_content.to_string();
        let params = self.signed_params(method, &biz_content, notify_url, self.clock.now());
        let mut url = self.gateway.clone();
        let body = {
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            let mut query = url.query_pairs_mut();
            for (name, value) in &params {
                if *name == "biz_content" {
                    body.append_pair(name, value);
                } else {
                    query.append_pair(name, value);
                }
            }
            body.finish()
        };
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE))
            .body(body)
            .send()
            .await
            .map_err(|source| AlipayApiError::Transport { method, source })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| AlipayApiError::Transport { method, source })?;
        let unverified = |reason: String| AlipayApiError::Unverified {
            method,
            status,
            reason,
        };
        if !(200..300).contains(&status) {
            return Err(unverified("not a 2xx answer".into()));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| unverified("not UTF-8".into()))?;
        let verified = verify_response(text, method, &self.alipay_key)
            .map_err(|error| unverified(error.to_string()))?;
        let content = verified.content;
        let field = |content: &Map<String, Value>, name: &str| {
            content
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let code = field(&content, "code");
        if code == CODE_SUCCESS {
            return Ok(content);
        }
        Err(AlipayApiError::Business {
            method,
            msg: field(&content, "msg"),
            sub_code: field(&content, "sub_code"),
            sub_msg: field(&content, "sub_msg"),
            code,
        })
    }

    /// `alipay.trade.precreate` (当面付, the payer scans): the `qr_code` to show.
    pub async fn precreate(
        &self,
        request: &PrecreateRequest<'_>,
    ) -> Result<String, AlipayApiError> {
        check_out_trade_no(request.out_trade_no)?;
        if request.total_amount_fen <= 0 || request.total_amount_fen > MAX_AMOUNT_FEN {
            return Err(AlipayApiError::InvalidRequest(format!(
                "total_amount must be 0.01 to 100000000.00 yuan, not {} fen",
                request.total_amount_fen
            )));
        }
        let subject = request.subject.trim();
        if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(AlipayApiError::InvalidRequest(
                "subject must be 1 to 256 characters".into(),
            ));
        }
        let biz_content = json!({
            "out_trade_no": request.out_trade_no,
            "total_amount": yuan(request.total_amount_fen),
            "subject": subject,
            "product_code": "FACE_TO_FACE_PAYMENT",
            "time_expire": beijing_time(request.time_expire),
        });
        let content = self
            .call(PRECREATE, &biz_content, Some(request.notify_url))
            .await?;
        let decode = |detail: &str| AlipayApiError::Decode {
            method: PRECREATE,
            detail: detail.to_owned(),
        };
        if content.get("out_trade_no").and_then(Value::as_str) != Some(request.out_trade_no) {
            return Err(decode("the answer is for another out_trade_no"));
        }
        match content.get("qr_code").and_then(Value::as_str) {
            Some(code) if code.starts_with("https://") || code.starts_with("http://") => {
                Ok(code.to_owned())
            }
            _ => Err(decode("no qr_code")),
        }
    }

    /// `alipay.trade.query` by our order number.
    pub async fn query(&self, out_trade_no: &str) -> Result<TradeQuery, AlipayApiError> {
        check_out_trade_no(out_trade_no)?;
        let content = self
            .call(QUERY, &json!({ "out_trade_no": out_trade_no }), None)
            .await?;
        let text = |name: &str| {
            content
                .get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let trade = TradeQuery {
            out_trade_no: text("out_trade_no"),
            trade_no: text("trade_no"),
            trade_status: text("trade_status").ok_or_else(|| AlipayApiError::Decode {
                method: QUERY,
                detail: "no trade_status".into(),
            })?,
            total_amount: text("total_amount"),
            send_pay_date: text("send_pay_date"),
            buyer_user_id: text("buyer_user_id"),
        };
        if trade
            .out_trade_no
            .as_deref()
            .is_some_and(|number| number != out_trade_no)
        {
            return Err(AlipayApiError::Decode {
                method: QUERY,
                detail: "the answer is for another out_trade_no".into(),
            });
        }
        Ok(trade)
    }

    /// `alipay.trade.close` by our order number.
    pub async fn close(&self, out_trade_no: &str) -> Result<(), AlipayApiError> {
        check_out_trade_no(out_trade_no)?;
        self.call(CLOSE, &json!({ "out_trade_no": out_trade_no }), None)
            .await
            .map(drop)
    }
}

/// Alipay: "64个字符以内，仅支持字母、数字、下划线".
/// A short, stable name for each method, for metrics.
fn api_label(method: &str) -> &'static str {
    match method {
        PRECREATE => "precreate",
        QUERY => "query",
        CLOSE => "close",
        super::refund::REFUND => "refund",
        super::refund::REFUND_QUERY => "query_refund",
        super::bill::BILL_URL_QUERY => "bill",
        _ => "other",
    }
}

pub(super) fn check_out_trade_no(number: &str) -> Result<(), AlipayApiError> {
    let ok = !number.is_empty()
        && number.len() <= MAX_OUT_TRADE_NO
        && number
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if ok {
        Ok(())
    } else {
        Err(AlipayApiError::InvalidRequest(format!(
            "out_trade_no {number:?} is not 1 to 64 letters, digits or underscores"
        )))
    }
}
