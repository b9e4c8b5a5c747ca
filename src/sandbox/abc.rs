//! A loopback stand-in for the Agricultural Bank of China's 网上支付平台 (TrustPay
//! V3.0.0 JSON): the merchant gateway (`PayReq`, `OLScanPayOrderReq`, `Query`), a page
//! that plays the bank's payment page (the card number is entered here, on the
//! bank's side), and signed result notifications.
//!
//! It is the bank's side, sharing nothing with `pay::abc`: it finds the signed
//! `Message` text by plain string search, as the bank's SDKs do, verifies it with the
//! merchant certificate, and signs its answers and notifications with its own
//! "TrustPay" key. A bug in our signer cannot agree with itself here.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngExt;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;
use url::Url;
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

use crate::clock::Clock;
use crate::domain::order::beijing_offset;

/// The demo school's ABC merchant number.
pub const MERCHANT_ID: &str = "103881999999999";
/// The merchant certificate and key as the bank issues them (PKCS#12), and its password.
pub const MERCHANT_P12: &[u8] = include_bytes!("keys/abc_merchant.p12");
pub const MERCHANT_P12_PASSWORD: &str = "sandbox-abc";
/// The same private key as PEM (what `CAMPUSPAY_ABC_CERT_FILE` takes for now).
pub const MERCHANT_PRIVATE_KEY_PEM: &str = include_str!("keys/abc_merchant_private_key.pem");
/// The sandbox bank's certificate (what `CAMPUSPAY_ABC_TRUSTPAY_CERT_FILE` names).
pub const TRUSTPAY_CERT_PEM: &str = include_str!("keys/abc_trustpay_cert.pem");

const MERCHANT_CERT_PEM: &str = include_str!("keys/abc_merchant_cert.pem");
const TRUSTPAY_PRIVATE_KEY_PEM: &str = include_str!("keys/abc_trustpay_private_key.pem");

pub const GATEWAY_PATH: &str = "/ebus/ReceiveMerchantTrxReqServlet";
pub const PAY_PAGE_PATH: &str = "/sandbox/abc/pay";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbcKind {
    Page,
    Scan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxAbcOrder {
    pub order_no: String,
    pub kind: AbcKind,
    pub amount_fen: i64,
    pub description: String,
    pub notify_url: String,
    pub token: String,
    /// `iRspRef`, when paid.
    pub rsp_ref: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub card_number: Option<String>,
    /// The order's `orderTimeoutDate`: after it the bank's page refuses to pay.
    pub timeout_at: Option<DateTime<Utc>>,
}

impl SandboxAbcOrder {
    /// Whether the bank still takes a payment for it at `now`.
    pub fn payable_at(&self, now: DateTime<Utc>) -> bool {
        self.paid_at.is_none() && self.timeout_at.is_none_or(|timeout| now < timeout)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayError {
    #[error("no such order")]
    NotFound,
    #[error("already paid")]
    AlreadyPaid,
    #[error("订单已超时，无法支付")]
    TimedOut,
}

/// How [`AbcSandbox::notification_for`] spoils a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// The amount changed after signing.
    Amount,
    /// Signed with a key that is not the bank's.
    ForeignKey,
    /// Properly signed, for another merchant.
    OtherMerchant,
    /// Properly signed, saying the payment failed.
    Failed,
    /// Not a notification at all: the bank's genuinely signed answer to the order's
    /// payment request (`TrxType` `PayReq`, `ReturnCode` 0000, the order and amount).
    PayRequestAnswer,
}

struct Inner {
    orders: HashMap<String, SandboxAbcOrder>,
    /// Whether payments get an `iRspRef` (the bank's reference); without one the
    /// query and the notification both send it empty.
    references: bool,
}

#[derive(Clone)]
pub struct AbcSandbox {
    base: Url,
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    http: reqwest::Client,
}

impl AbcSandbox {
    pub async fn spawn(clock: Clock) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let base = Url::parse(&format!("http://{addr}")).map_err(std::io::Error::other)?;
        let sandbox = AbcSandbox {
            base,
            inner: Arc::new(Mutex::new(Inner {
                orders: HashMap::new(),
                references: true,
            })),
            clock: clock.split_off(),
            http: reqwest::Client::new(),
        };
        let app = Router::new()
            .route(GATEWAY_PATH, post(gateway))
            .route(PAY_PAGE_PATH, get(pay_page).post(pay_submit))
            .with_state(sandbox.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(sandbox)
    }

    /// Sets the bank's clock this far ahead of the app's (negative: behind): its
    /// `orderTimeoutDate` check and its payment times use it.
    pub fn set_clock_skew(&self, skew: chrono::TimeDelta) {
        self.clock.set_skew(skew);
    }

    /// What `CAMPUSPAY_ABC_GATEWAY` should be.
    pub fn gateway_url(&self) -> Url {
        self.base.join(GATEWAY_PATH).expect("gateway path")
    }

    pub fn pay_page_url(&self, token: &str) -> Url {
        let mut url = self.base.join(PAY_PAGE_PATH).expect("pay page path");
        url.query_pairs_mut().append_pair("token", token);
        url
    }

    pub fn transaction(&self, order_no: &str) -> Option<SandboxAbcOrder> {
        self.lock().orders.get(order_no).cloned()
    }

    /// The bank's side of the books, order by order (read-only): what it charged and
    /// when, and whether it still takes money (its `orderTimeoutDate`). The bank
    /// sandbox makes no refunds.
    pub fn ledger(&self) -> Vec<crate::sandbox::ledger::ChannelRecord> {
        use crate::sandbox::ledger::{ChannelRecord, Charge, Upstream};
        let now = self.clock.now();
        let mut orders: Vec<SandboxAbcOrder> = self.lock().orders.values().cloned().collect();
        orders.sort_by(|a, b| a.order_no.cmp(&b.order_no));
        orders
            .into_iter()
            .map(|order| ChannelRecord {
                upstream: Upstream::Abc,
                asked_fen: order.amount_fen,
                charge: order.paid_at.map(|at| Charge {
                    amount_fen: order.amount_fen,
                    at,
                    transaction_id: order.rsp_ref.clone(),
                }),
                closed: order.paid_at.is_none() && !order.payable_at(now),
                refunds: Vec::new(),
                out_trade_no: order.order_no,
            })
            .collect()
    }

    /// How many orders the bank has taken (page and scan alike).
    pub fn order_count(&self) -> usize {
        self.lock().orders.len()
    }

    /// Pays (a scan order is paid this way, as the ABC app would) and sends the
    /// notification; returns the HTTP status the merchant answered with.
    pub async fn pay(&self, order_no: &str) -> Result<(SandboxAbcOrder, u16), PayError> {
        let paid = self.mark_paid(order_no, None)?;
        let status = self.notify(&paid).await;
        Ok((paid, status))
    }

    /// Pays without sending the notification (a lost notification).
    pub fn pay_silently(&self, order_no: &str) -> Result<SandboxAbcOrder, PayError> {
        self.mark_paid(order_no, None)
    }

    /// From now on payments carry an empty `iRspRef`, in the query and the
    /// notification alike (as some of the bank's answers do).
    pub fn leave_out_references(&self) {
        self.lock().references = false;
    }

    /// The form body the bank POSTs to `ResultNotifyURL` for a paid order.
    pub fn notification_for(&self, order_no: &str, tamper: Tamper) -> Option<Vec<u8>> {
        let order = self.transaction(order_no)?;
        if tamper == Tamper::PayRequestAnswer {
            let text = signed_envelope(&message_with(pay_answer(
                &order,
                &self.pay_page_url(&order.token),
            )));
            return Some(notification_body(&text));
        }
        let paid_at = order
            .paid_at
            .unwrap_or_else(|| self.clock.now())
            .with_timezone(&beijing_offset());
        let merchant = if tamper == Tamper::OtherMerchant {
            "103881000000001"
        } else {
            MERCHANT_ID
        };
        let (code, text) = if tamper == Tamper::Failed {
            ("2400", "后台系统响应交易失败")
        } else {
            ("0000", "交易成功")
        };
        let message = json!({
            "Version": "V3.0.0", "Format": "JSON",
            "Merchant": {"ECMerchantType": "EBUS", "MerchantID": merchant},
            "TrxResponse": {
                "ReturnCode": code, "ErrorMessage": text, "TrxType": "PayResult",
                "OrderNo": order.order_no, "Amount": yuan(order.amount_fen),
                "BatchNo": "000001", "VoucherNo": "V".to_owned() + &order.token[..8],
                "HostDate": paid_at.format("%Y/%m/%d").to_string(),
                "HostTime": paid_at.format("%H:%M:%S").to_string(),
                "MerchantRemarks": "", "PayType": "EP001", "NotifyType": "1",
                "iRspRef": order.rsp_ref.clone().unwrap_or_default(),
            }
        });
        let text = message.to_string();
        let signature = if tamper == Tamper::ForeignKey {
            sign_with(MERCHANT_PRIVATE_KEY_PEM, &text)
        } else {
            sign_with(TRUSTPAY_PRIVATE_KEY_PEM, &text)
        };
        let text = if tamper == Tamper::Amount {
            text.replace(&format!("\"{}\"", yuan(order.amount_fen)), "\"0.01\"")
        } else {
            text
        };
        let envelope = format!(
            "{{\"MSG\":{{\"Message\":{text},\"Signature-Algorithm\":\"SHA1withRSA\",\"Signature\":\"{signature}\"}}}}"
        );
        Some(notification_body(&envelope))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_paid(&self, order_no: &str, card: Option<String>) -> Result<SandboxAbcOrder, PayError> {
        let mut inner = self.lock();
        let references = inner.references;
        let order = inner.orders.get_mut(order_no).ok_or(PayError::NotFound)?;
        if order.paid_at.is_some() {
            return Err(PayError::AlreadyPaid);
        }
        // As the bank: an order whose orderTimeoutDate has passed cannot be paid.
        if !order.payable_at(self.clock.now()) {
            return Err(PayError::TimedOut);
        }
        let digits: String = (0..12)
            .map(|_| char::from(b'0' + rand::rng().random_range(0..10u8)))
            .collect();
        order.rsp_ref = references.then_some(digits);
        order.paid_at = Some(self.clock.now());
        order.card_number = card;
        Ok(order.clone())
    }

    async fn notify(&self, order: &SandboxAbcOrder) -> u16 {
        let Some(body) = self.notification_for(&order.order_no, Tamper::None) else {
            return 0;
        };
        match self
            .http
            .post(&order.notify_url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// The bank's answer: `{"MSG":{"Message":…,"Signature-Algorithm":…,"Signature":…}}`
    /// in GB18030, signed with the sandbox's TrustPay key.
    fn answer(&self, trx_response: Value) -> Response {
        let body = signed_envelope(&message_with(trx_response));
        (
            [(header::CONTENT_TYPE, "application/json; charset=GB18030")],
            gb(&body),
        )
            .into_response()
    }

    fn refuse(&self, code: &str, message: &str) -> Response {
        self.answer(json!({"ReturnCode": code, "ErrorMessage": message}))
    }

    fn handle(&self, request: &Value) -> Response {
        let trx = &request["TrxRequest"];
        match trx["TrxType"].as_str().unwrap_or_default() {
            kind @ ("PayReq" | "OLScanPayOrderReq") => {
                let order = &trx["Order"];
                let text = |name: &str| order[name].as_str().unwrap_or_default().to_owned();
                let no = text("OrderNo");
                let amount = fen(&text("OrderAmount"));
                let notify = trx["ResultNotifyURL"].as_str().unwrap_or_default();
                let dates_ok = chrono::NaiveDate::parse_from_str(&text("OrderDate"), "%Y/%m/%d")
                    .is_ok()
                    && chrono::NaiveTime::parse_from_str(&text("OrderTime"), "%H:%M:%S").is_ok();
                let (Some(amount), true, true, true, true) = (
                    amount.filter(|fen| *fen > 0),
                    !no.is_empty() && no.len() <= 60,
                    Url::parse(notify).is_ok(),
                    text("CurrencyCode") == "156" && text("PayTypeID") == "ImmediatePay",
                    dates_ok,
                ) else {
                    return self.refuse("2101", "商户提交的交易资料不合法");
                };
                let kind = if kind == "PayReq" {
                    AbcKind::Page
                } else {
                    AbcKind::Scan
                };
                let timeout_at = order_timeout(&text("orderTimeoutDate"));
                let mut inner = self.lock();
                let order = match inner.orders.get(&no) {
                    Some(existing)
                        if existing.amount_fen == amount
                            && existing.kind == kind
                            && existing.paid_at.is_none() =>
                    {
                        existing.clone()
                    }
                    Some(_) => return self.refuse("2306", "订单状态不允许进行此种交易"),
                    None => {
                        let token: String = (0..20)
                            .map(|_| char::from(b'0' + rand::rng().random_range(0..10u8)))
                            .collect();
                        let created = SandboxAbcOrder {
                            order_no: no.clone(),
                            kind,
                            amount_fen: amount,
                            description: text("OrderDesc"),
                            notify_url: notify.to_owned(),
                            token,
                            rsp_ref: None,
                            paid_at: None,
                            card_number: None,
                            timeout_at,
                        };
                        inner.orders.insert(no.clone(), created.clone());
                        created
                    }
                };
                drop(inner);
                self.answer(pay_answer(&order, &self.pay_page_url(&order.token)))
            }
            "Query" => {
                let no = trx["OrderNo"].as_str().unwrap_or_default();
                let Some(order) = self.transaction(no) else {
                    return self.refuse("2307", "无此订单");
                };
                let at = order.paid_at.map(|at| at.with_timezone(&beijing_offset()));
                let detail = json!({
                    "PayTypeID": "ImmediatePay", "OrderNo": order.order_no,
                    "OrderAmount": yuan(order.amount_fen),
                    "Status": if at.is_some() { "04" } else { "01" },
                    "iRspRef": order.rsp_ref.clone().unwrap_or_default(),
                    "HostDate": at.map(|at| at.format("%Y/%m/%d").to_string()).unwrap_or_default(),
                    "HostTime": at.map(|at| at.format("%H:%M:%S").to_string()).unwrap_or_default(),
                });
                let encoded = STANDARD.encode(gb(&detail.to_string()));
                self.answer(json!({"ReturnCode": "0000", "ErrorMessage": "交易成功",
                    "TrxType": "Query", "Order": encoded}))
            }
            _ => self.refuse("2310", "网上支付平台未开放此种类的交易"),
        }
    }
}

/// The bank's answer to a payment request for `order`.
fn pay_answer(order: &SandboxAbcOrder, page: &Url) -> Value {
    let mut answer = json!({
        "ReturnCode": "0000", "ErrorMessage": "交易成功", "TrxType": kind_name(order.kind),
        "OrderNo": order.order_no, "OrderAmount": yuan(order.amount_fen),
    });
    match order.kind {
        AbcKind::Page => answer["PaymentURL"] = json!(page.to_string()),
        AbcKind::Scan => {
            answer["ScanPayQRURL"] = json!(format!(
                "https://mpay.sandbox.abchina.invalid/BarcodeH5Act.aspx?token={}",
                order.token
            ))
        }
    }
    answer
}

/// The bank's message around a `TrxResponse`.
fn message_with(trx_response: Value) -> Value {
    json!({
        "Version": "V3.0.0", "Format": "JSON",
        "Merchant": {"ECMerchantType": "EBUS", "MerchantID": MERCHANT_ID},
        "TrxResponse": trx_response,
    })
}

/// `{"MSG":{"Message":…,"Signature-Algorithm":…,"Signature":…}}`, signed with the
/// sandbox's TrustPay key.
fn signed_envelope(message: &Value) -> String {
    let text = message.to_string();
    let signature = sign_with(TRUSTPAY_PRIVATE_KEY_PEM, &text);
    format!(
        "{{\"MSG\":{{\"Message\":{text},\"Signature-Algorithm\":\"SHA1withRSA\",\"Signature\":\"{signature}\"}}}}"
    )
}

/// What the bank POSTs to `ResultNotifyURL`: `MSG=<base64 of the GB18030 envelope>`.
fn notification_body(envelope: &str) -> Vec<u8> {
    let msg = STANDARD.encode(gb(envelope));
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("MSG", &msg)
        .finish()
        .into_bytes()
}

/// `orderTimeoutDate` (`yyyyMMddHHmmss`, Beijing time); none when absent or unreadable.
fn order_timeout(text: &str) -> Option<DateTime<Utc>> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S").ok()?;
    naive
        .and_local_timezone(beijing_offset())
        .single()
        .map(|at| at.with_timezone(&Utc))
}

fn kind_name(kind: AbcKind) -> &'static str {
    match kind {
        AbcKind::Page => "PayReq",
        AbcKind::Scan => "OLScanPayOrderReq",
    }
}

async fn gateway(State(sandbox): State<AbcSandbox>, body: Bytes) -> Response {
    let (text, _, malformed) = encoding_rs::GB18030.decode(&body);
    if malformed {
        return sandbox.refuse("2205", "无法辨识商户提交的交易请求报文");
    }
    // As the SDKs do: the Message is what lies between `{"Message":` and the
    // `,"Signature-Algorithm":` that follows it.
    const HEAD: &str = "{\"Message\":";
    const TAIL: &str = ",\"Signature-Algorithm\":\"SHA1withRSA\",\"Signature\":\"";
    let (Some(rest), Some(tail_at)) = (text.strip_prefix(HEAD), text.rfind(TAIL)) else {
        return sandbox.refuse("2301", "商户提交的交易请求报文不完整");
    };
    let Some(message_text) = rest.get(..tail_at.saturating_sub(HEAD.len())) else {
        return sandbox.refuse("2301", "商户提交的交易请求报文不完整");
    };
    let signature = text[tail_at + TAIL.len()..]
        .trim_end()
        .trim_end_matches("\"}");
    if !verify_merchant(message_text, signature) {
        return sandbox.refuse("2302", "商户提交的交易请求报文签名验证失败");
    }
    let Ok(request) = serde_json::from_str::<Value>(message_text) else {
        return sandbox.refuse("2205", "无法辨识商户提交的交易请求报文");
    };
    if request["Version"] != "V3.0.0"
        || request["Format"] != "JSON"
        || request["Merchant"]["ECMerchantType"] != "EBUS"
    {
        return sandbox.refuse("2101", "商户提交的交易资料不合法");
    }
    if request["Merchant"]["MerchantID"] != MERCHANT_ID {
        return sandbox.refuse("2303", "商户提交的商户号与签名所用的证书不匹配");
    }
    sandbox.handle(&request)
}

#[derive(Deserialize)]
struct PagePayQuery {
    token: String,
    return_to: Option<String>,
}

#[derive(Deserialize)]
struct PagePayForm {
    token: String,
    card_number: String,
    return_to: Option<String>,
}

fn order_by_token(sandbox: &AbcSandbox, token: &str) -> Option<SandboxAbcOrder> {
    sandbox
        .lock()
        .orders
        .values()
        .find(|order| order.token == token)
        .cloned()
}

async fn pay_page(
    State(sandbox): State<AbcSandbox>,
    Query(query): Query<PagePayQuery>,
) -> Response {
    let Some(order) = order_by_token(&sandbox, &query.token) else {
        return (StatusCode::NOT_FOUND, "订单不存在").into_response();
    };
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="zh-CN" {
            head { meta charset="utf-8"; title { "中国农业银行 网上支付（沙盒）" } }
            body {
                h1 { "中国农业银行 网上支付（沙盒）" }
                p { "订单号：" (order.order_no) }
                p { "商品：" (order.description) }
                p #amount { "金额：¥" (yuan(order.amount_fen)) }
                @if order.paid_at.is_some() {
                    p #paid { "该订单已支付" }
                } @else if !order.payable_at(sandbox.clock.now()) {
                    p #timed-out { "订单已超时，无法支付" }
                } @else {
                    form method="post" action=(PAY_PAGE_PATH) {
                        input type="hidden" name="token" value=(order.token);
                        @if let Some(back) = &query.return_to {
                            input type="hidden" name="return_to" value=(back);
                        }
                        label { "农行卡号 " input #card_number name="card_number" inputmode="numeric" autocomplete="off"; }
                        button #confirm type="submit" { "确认支付" }
                    }
                }
            }
        }
    };
    Html(page.into_string()).into_response()
}

async fn pay_submit(State(sandbox): State<AbcSandbox>, Form(form): Form<PagePayForm>) -> Response {
    let Some(order) = order_by_token(&sandbox, &form.token) else {
        return (StatusCode::NOT_FOUND, "订单不存在").into_response();
    };
    let card = form.card_number.trim();
    if card.len() < 16 || card.len() > 19 || !card.bytes().all(|b| b.is_ascii_digit()) {
        return (StatusCode::BAD_REQUEST, "卡号有误").into_response();
    }
    let paid = match sandbox.mark_paid(&order.order_no, Some(card.to_owned())) {
        Ok(paid) => paid,
        Err(error) => return (StatusCode::CONFLICT, error.to_string()).into_response(),
    };
    sandbox.notify(&paid).await;
    match form
        .return_to
        .as_deref()
        .and_then(|back| Url::parse(back).ok())
    {
        Some(back) => Redirect::to(back.as_str()).into_response(),
        None => Html("<p id=\"paid\">支付成功</p>".to_owned()).into_response(),
    }
}

fn gb(text: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(text).0.into_owned()
}

fn sign_with(private_key_pem: &str, text: &str) -> String {
    let key = rsa::PrivateKey::from_pkcs8_pem(private_key_pem).expect("sandbox key");
    let signature: Signature = SigningKey::<Sha1>::new(key).sign(&gb(text));
    STANDARD.encode(signature.to_bytes())
}

fn verify_merchant(text: &str, signature_b64: &str) -> bool {
    let certificate = Certificate::from_pem(MERCHANT_CERT_PEM.trim()).expect("merchant cert");
    let spki = certificate
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("spki");
    let key = rsa::PublicKey::from_public_key_der(&spki).expect("merchant key");
    let (Ok(raw), true) = (STANDARD.decode(signature_b64), !signature_b64.is_empty()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha1>::new(key)
        .verify(&gb(text), &signature)
        .is_ok()
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn fen(yuan: &str) -> Option<i64> {
    let (whole, cents) = yuan.split_once('.')?;
    if cents.len() != 2
        || !whole
            .bytes()
            .chain(cents.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(whole.parse::<i64>().ok()? * 100 + cents.parse::<i64>().ok()?)
}
