//! Agricultural Bank of China (中国农业银行 网上支付平台, "TrustPay") as a [`Channel`]:
//! page payment (`PayReq`: the bank's page, where the card number is entered on the
//! bank's side) and the one-code-many-scans order (`OLScanPayOrderReq`: a QR code for
//! the ABC app), the order query, and the result notification.
//!
//! The wire format is in [`wire`]; where each fact comes from, and what is still a
//! guess, is in docs/abc-trustpay.md.

pub mod wire;

use secrecy::ExposeSecret;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::{Value, json};
use url::Url;

use self::wire::{MerchantSigner, Opened, TrustPayVerifier};
use super::{
    BillError, BillLine, Channel, ChannelError, ChannelPayment, ChannelState, Closed, Prepaid,
    PrepayOrder, RefundRequest, RefundState,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::order::beijing_offset;
use crate::metrics::{UpstreamObserver, UpstreamOutcome};
use crate::store::PaymentChannel;

/// How long one call to the bank may take before its outcome counts as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The bank's PHP SDK posts with this content type.
const REQUEST_CONTENT_TYPE: &str = "text/html";
/// Immediate payment (as opposed to pre-authorisation, `PreAuthPay`).
const PAY_TYPE_ID: &str = "ImmediatePay";
/// Guess: `0202` is what the integrations found send; the bank assigns the allowed
/// commodity types per merchant (error 2311 otherwise).
const COMMODITY_TYPE: &str = "0202";
/// `1`: ABC card payment (the manual's "enter an ABC card number"); `A` would merge
/// all payment methods on the bank's page.
const PAYMENT_TYPE: &str = "1";
/// `1`: internet (PC).
const PAYMENT_LINK_TYPE: &str = "1";
/// `1`: server notification (the bank POSTs to `ResultNotifyURL`); `0` would send
/// the browser there instead.
const NOTIFY_TYPE_SERVER: &str = "1";
/// Transactions.
const TRX_PAY: &str = "PayReq";
const TRX_SCAN: &str = "OLScanPayOrderReq";
const TRX_QUERY: &str = "Query";
/// Answer codes that mean "nobody knows yet" rather than a refusal.
const OUTCOME_UNKNOWN_CODES: &[&str] = &["EUNKWN"];
/// Guess: the SDK's error table says 2307 is 无此订单 (no such order).
const ORDER_NOT_FOUND_CODES: &[&str] = &["2307"];
/// The `TrxType` of the bank's payment-result notification. Every other signed
/// message of the bank (its answer to a `PayReq`, a `Query`, …) carries its own
/// `TrxType` and says nothing about a payment, so only this one may pay an order.
const TRX_PAYMENT_RESULT: &str = "PayResult";

/// The bank's test and production gateways (TrustMerchant.properties of the demos).
pub const TEST_GATEWAY: &str = "https://pay.test.abchina.com/ebus/ReceiveMerchantTrxReqServlet";
pub const PRODUCTION_GATEWAY: &str = "https://pay.abchina.com/ebus/ReceiveMerchantTrxReqServlet";

pub struct Abc {
    merchant_id: String,
    signer: MerchantSigner,
    verifier: TrustPayVerifier,
    gateway: Url,
    http: reqwest::Client,
    clock: Clock,
    observer: UpstreamObserver,
}

#[derive(Debug, thiserror::Error)]
pub enum AbcSetupError {
    #[error("CAMPUSPAY_ABC_MERCHANT_ID: {0}")]
    MerchantId(String),
    #[error("CAMPUSPAY_ABC_CERT_FILE: {0}")]
    MerchantKey(String),
    #[error("CAMPUSPAY_ABC_TRUSTPAY_CERT_FILE: {0}")]
    TrustPayCertificate(String),
    #[error("CAMPUSPAY_ABC_GATEWAY: {0}")]
    Gateway(String),
}

impl Abc {
    /// ABC from the configuration: `None` when it is not configured; an error (which
    /// stops the start) when configured but unusable.
    ///
    /// `CAMPUSPAY_ABC_CERT_FILE` must (for now) be the merchant's private key as PEM,
    /// extracted from the bank's PKCS#12 file: no small pure-Rust PKCS#12 reader fits
    /// our crypto versions (docs/abc-trustpay.md). A PKCS#12 file is recognised and
    /// refused with the command that converts it.
    pub fn from_config(config: &Config, clock: Clock) -> Result<Option<Abc>, AbcSetupError> {
        let Some(abc) = &config.abc else {
            return Ok(None);
        };
        let key = std::fs::read(&abc.cert_file).map_err(|error| {
            AbcSetupError::MerchantKey(format!("{}: {error}", abc.cert_file.display()))
        })?;
        let key = merchant_key_pem(&key, abc.cert_password.expose_secret())?;
        let trustpay = std::fs::read(&abc.trustpay_cert_file).map_err(|error| {
            AbcSetupError::TrustPayCertificate(format!(
                "{}: {error}",
                abc.trustpay_cert_file.display()
            ))
        })?;
        Abc::new(
            &abc.merchant_id,
            &key,
            &trustpay,
            config.abc_gateway.clone(),
            clock,
        )
        .map(Some)
    }

    /// From the key (PEM) and certificate contents (the sandbox and tests use this).
    pub fn new(
        merchant_id: &str,
        merchant_key: &[u8],
        trustpay_certificate: &[u8],
        gateway: Url,
        clock: Clock,
    ) -> Result<Abc, AbcSetupError> {
        if merchant_id.is_empty() || !merchant_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AbcSetupError::MerchantId(
                "the bank's merchant number is digits only".into(),
            ));
        }
        let signer = match std::str::from_utf8(merchant_key) {
            Ok(pem) if pem.trim_start().starts_with("-----BEGIN") => MerchantSigner::from_pem(pem)
                .map_err(|e| AbcSetupError::MerchantKey(e.to_string()))?,
            _ => {
                return Err(AbcSetupError::MerchantKey(
                    "a PKCS#12 (.pfx) file cannot be read yet: give its private key as PEM \
                     (openssl pkcs12 -in merchant.pfx -nocerts -nodes -legacy | openssl pkey -out merchant_key.pem)"
                        .into(),
                ));
            }
        };
        let verifier = TrustPayVerifier::from_certificate(trustpay_certificate)
            .map_err(|error| AbcSetupError::TrustPayCertificate(error.to_string()))?;
        if !matches!(gateway.scheme(), "https" | "http") {
            return Err(AbcSetupError::Gateway("not an http(s) URL".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|error| AbcSetupError::Gateway(error.to_string()))?;
        Ok(Abc {
            merchant_id: merchant_id.to_owned(),
            signer,
            verifier,
            gateway,
            http,
            clock,
            observer: UpstreamObserver::default(),
        })
    }

    /// Reports each call to the bank's gateway to `observer`.
    pub fn observed(mut self, observer: UpstreamObserver) -> Abc {
        self.observer = observer;
        self
    }

    pub fn merchant_id(&self) -> &str {
        &self.merchant_id
    }

    /// Signs and posts one `TrxRequest`; returns the verified answer when its
    /// `ReturnCode` is `0000`.
    async fn call(&self, trx_request: Value) -> Result<Opened, ChannelError> {
        let api = api_label(trx_request.get("TrxType").and_then(Value::as_str));
        let started = tokio::time::Instant::now();
        let answer = self.call_unobserved(trx_request).await;
        let outcome = match &answer {
            Ok(_) => UpstreamOutcome::Ok,
            Err((outcome, _)) => *outcome,
        };
        self.observer.call(api, outcome, started.elapsed());
        answer.map_err(|(_, error)| error)
    }

    async fn call_unobserved(
        &self,
        trx_request: Value,
    ) -> Result<Opened, (UpstreamOutcome, ChannelError)> {
        let message = json!({
            "Version": wire::VERSION,
            "Format": wire::FORMAT,
            "Merchant": {"ECMerchantType": wire::EC_MERCHANT_TYPE, "MerchantID": self.merchant_id},
            "TrxRequest": trx_request,
        });
        let body = wire::seal(&message, &self.signer);
        let unknown = |outcome, what: String| (outcome, ChannelError::OutcomeUnknown(what));
        let unreachable = |error: reqwest::Error| {
            let outcome = UpstreamOutcome::of_transport(&error);
            unknown(outcome, format!("ABC gateway: {error}"))
        };
        let response = self
            .http
            .post(self.gateway.clone())
            .header(reqwest::header::CONTENT_TYPE, REQUEST_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let outcome = UpstreamOutcome::of_status(status.as_u16());
            return Err(unknown(
                outcome,
                format!("ABC gateway answered HTTP {status}"),
            ));
        }
        let unreadable = UpstreamOutcome::Undecodable;
        let text = wire::decode_text(&bytes)
            .ok_or_else(|| unknown(unreadable, "ABC answer is not GB18030 text".into()))?;
        let opened = wire::open(&text)
            .map_err(|error| unknown(unreadable, format!("ABC answer: {error}")))?;
        let unverifiable = UpstreamOutcome::Unverifiable;
        if !opened.verified_by(&self.verifier) {
            return Err(unknown(
                unverifiable,
                "ABC answer signature does not verify".into(),
            ));
        }
        if opened
            .merchant_id()
            .is_some_and(|id| !id.is_empty() && id != self.merchant_id)
        {
            return Err(unknown(
                unverifiable,
                "ABC answer is for another merchant".into(),
            ));
        }
        let code = opened.field("ReturnCode").unwrap_or_default().to_owned();
        if code == wire::RETURN_CODE_OK {
            return Ok(opened);
        }
        let message = opened.field("ErrorMessage").unwrap_or_default().to_owned();
        let refused = UpstreamOutcome::Refused;
        if code.is_empty() || OUTCOME_UNKNOWN_CODES.contains(&code.as_str()) {
            return Err(unknown(refused, format!("ABC: {code} {message}")));
        }
        Err((refused, ChannelError::Refused { code, message }))
    }

    fn order_fields(&self, order: &PrepayOrder<'_>) -> Value {
        let now = self.clock.now().with_timezone(&beijing_offset());
        let expires = order.expires_at.with_timezone(&beijing_offset());
        json!({
            "PayTypeID": PAY_TYPE_ID,
            "OrderNo": order.out_trade_no,
            "OrderAmount": wire::yuan(order.amount_fen),
            "CurrencyCode": wire::CURRENCY_CODE,
            "OrderDate": now.format("%Y/%m/%d").to_string(),
            "OrderTime": now.format("%H:%M:%S").to_string(),
            "orderTimeoutDate": expires.format("%Y%m%d%H%M%S").to_string(),
            "OrderDesc": order.description,
            "CommodityType": COMMODITY_TYPE,
            "InstallmentMark": "0",
            "OrderItems": [{"ProductName": order.description}],
        })
    }

    fn trx_request(&self, trx_type: &str, order: &PrepayOrder<'_>) -> Value {
        json!({
            "TrxType": trx_type,
            "PaymentType": PAYMENT_TYPE,
            "PaymentLinkType": PAYMENT_LINK_TYPE,
            "NotifyType": NOTIFY_TYPE_SERVER,
            "ResultNotifyURL": order.notify_url,
            "IsBreakAccount": "0",
            "Order": self.order_fields(order),
        })
    }

    /// Verifies a result notification (the form body the bank POSTs to
    /// `ResultNotifyURL`: `MSG=<base64 of the signed message in GB18030>`), and checks
    /// it is for our merchant and says paid. The order number and amount are checked
    /// against the order by the caller.
    pub fn read_notification(
        &self,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<AbcNotice, AbcNotificationRefused> {
        use AbcNotificationRefused as Refused;
        let msg = url::form_urlencoded::parse(body)
            .find(|(name, _)| name == "MSG")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| Refused::Malformed("no MSG field".into()))?;
        let compact: String = msg.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let raw = STANDARD
            .decode(compact)
            .map_err(|_| Refused::Malformed("MSG is not base64".into()))?;
        let text =
            wire::decode_text(&raw).ok_or_else(|| Refused::Malformed("not GB18030".into()))?;
        let opened = wire::open(&text).map_err(|error| Refused::Malformed(error.to_string()))?;
        if !opened.verified_by(&self.verifier) {
            return Err(Refused::BadSignature);
        }
        if opened
            .merchant_id()
            .is_some_and(|id| id != self.merchant_id)
        {
            return Err(Refused::NotOurs);
        }
        // The bank signs its answers to our requests with the same key: an answer to a
        // payment request ("0000", the order, its amount) must not pass for a payment.
        let trx_type = opened.field("TrxType").unwrap_or_default();
        if trx_type != TRX_PAYMENT_RESULT {
            return Err(Refused::NotAPaymentResult(trx_type.to_owned()));
        }
        if opened.field("ReturnCode") != Some(wire::RETURN_CODE_OK) {
            return Err(Refused::NotPaid);
        }
        let out_trade_no = opened
            .field("OrderNo")
            .filter(|no| !no.is_empty())
            .ok_or_else(|| Refused::Malformed("no OrderNo".into()))?
            .to_owned();
        let amount_fen = opened
            .field("Amount")
            .or_else(|| opened.field("OrderAmount"))
            .and_then(wire::fen)
            .ok_or_else(|| Refused::Malformed("no readable Amount".into()))?;
        let bank_trade_no = transaction_number(opened.field("iRspRef"), &out_trade_no);
        let paid_at = host_time(opened.field("HostDate"), opened.field("HostTime")).unwrap_or(now);
        Ok(AbcNotice {
            out_trade_no,
            bank_trade_no,
            amount_fen,
            paid_at,
        })
    }
}

/// The bank's `HostDate` (`yyyy/MM/dd`) and `HostTime` (`HH:mm:ss`), Beijing time.
fn host_time(date: Option<&str>, time: Option<&str>) -> Option<DateTime<Utc>> {
    let date = NaiveDate::parse_from_str(date?, "%Y/%m/%d").ok()?;
    let time = NaiveTime::parse_from_str(time?, "%H:%M:%S").ok()?;
    beijing_offset()
        .from_local_datetime(&date.and_time(time))
        .single()
        .map(|at| at.with_timezone(&Utc))
}

/// The bank's number for the payment of an order, by one rule for the notification
/// and the query alike (else one payment could look like two, and be refunded as a
/// duplicate): `iRspRef`, the bank's transaction reference, when it is given; else
/// our order number, which the bank lets be paid only once. (`VoucherNo` is not used:
/// the query does not carry it.)
fn transaction_number(i_rsp_ref: Option<&str>, out_trade_no: &str) -> String {
    i_rsp_ref
        .map(str::trim)
        .filter(|reference| !reference.is_empty())
        .unwrap_or(out_trade_no)
        .to_owned()
}

/// A verified result notification that says paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbcNotice {
    pub out_trade_no: String,
    /// By [`transaction_number`]: `iRspRef`, else the order number.
    pub bank_trade_no: String,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
}

impl AbcNotice {
    /// The payment as the checkout applies it.
    pub fn payment(&self) -> ChannelPayment {
        ChannelPayment {
            channel_trade_no: self.bank_trade_no.clone(),
            amount_fen: self.amount_fen,
            paid_at: self.paid_at,
            payer_openid: None,
        }
    }
}

/// Why a notification was not accepted; `label` names it in metrics and the record.
#[derive(Debug, thiserror::Error)]
pub enum AbcNotificationRefused {
    #[error("unreadable notification: {0}")]
    Malformed(String),
    #[error("the notification's signature does not verify with the bank's certificate")]
    BadSignature,
    #[error("the notification is for another merchant")]
    NotOurs,
    #[error("the notification does not say paid")]
    NotPaid,
    /// Signed by the bank, but not a payment-result notification (`TrxType`).
    #[error("the bank's message is not a payment result (TrxType {0:?})")]
    NotAPaymentResult(String),
}

impl AbcNotificationRefused {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::NotOurs => "not_ours",
            Self::NotPaid => "not_paid",
            Self::NotAPaymentResult(_) => "not_a_payment_result",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadSignature => 401,
            _ => 400,
        }
    }
}

/// The query's `Order` field: base64 of a GB18030 JSON object.
fn decode_order(encoded: &str) -> Option<Value> {
    let raw = STANDARD.decode(encoded.trim()).ok()?;
    let text = wire::decode_text(&raw)?;
    serde_json::from_str::<Value>(&text)
        .ok()
        .filter(Value::is_object)
}

/// The order's `Status` in a query answer: 01 unpaid, 02 no answer yet, 03 funds
/// requested, 04 paid, 05 refunded, 07 authorisation confirmed, 00 authorisation
/// cancelled, 99 failed. Only 04 is believed as paid; 03/05/07/00/99 go to the office.
fn state_of(
    out_trade_no: &str,
    order: &Value,
    now: DateTime<Utc>,
) -> Result<ChannelState, ChannelError> {
    let get = |name: &str| order.get(name).and_then(Value::as_str);
    if get("OrderNo").is_some_and(|no| no != out_trade_no) {
        return Err(ChannelError::OutcomeUnknown(
            "ABC query answered for another order".into(),
        ));
    }
    match get("Status").unwrap_or_default() {
        "04" => {
            let amount_fen = get("OrderAmount").and_then(wire::fen).ok_or_else(|| {
                ChannelError::OutcomeUnknown("a paid ABC order without a readable amount".into())
            })?;
            Ok(ChannelState::Paid(ChannelPayment {
                channel_trade_no: transaction_number(get("iRspRef"), out_trade_no),
                amount_fen,
                paid_at: host_time(get("HostDate"), get("HostTime")).unwrap_or(now),
                payer_openid: None,
            }))
        }
        "01" | "02" => Ok(ChannelState::Unpaid),
        other => Ok(ChannelState::Other(format!("ABC status {other}"))),
    }
}

#[async_trait::async_trait]
impl Channel for Abc {
    async fn prepay(&self, order: &PrepayOrder<'_>) -> Result<Prepaid, ChannelError> {
        let unknown = |what: &str| ChannelError::OutcomeUnknown(what.to_owned());
        let (trx_type, scan) = match order.kind {
            PaymentChannel::AbcPage => (TRX_PAY, false),
            PaymentChannel::AbcScan => (TRX_SCAN, true),
            other => {
                return Err(ChannelError::Refused {
                    code: "WRONG_CHANNEL".into(),
                    message: format!("ABC cannot serve {other:?}"),
                });
            }
        };
        let answer = self.call(self.trx_request(trx_type, order)).await?;
        if answer
            .field("OrderNo")
            .is_some_and(|no| no != order.out_trade_no)
        {
            return Err(unknown("ABC answered for another order"));
        }
        if scan {
            let code = scan_code_of(&answer)
                .ok_or_else(|| unknown("ABC scan order answered without a code"))?;
            return Ok(Prepaid::QrCode(code.to_owned()));
        }
        let url = answer
            .field("PaymentURL")
            .and_then(|url| Url::parse(url).ok())
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .ok_or_else(|| unknown("ABC page payment answered without a PaymentURL"))?;
        Ok(Prepaid::Redirect(url.to_string()))
    }

    async fn query(&self, out_trade_no: &str) -> Result<ChannelState, ChannelError> {
        let request = json!({
            "TrxType": TRX_QUERY,
            "PayTypeID": PAY_TYPE_ID,
            "OrderNo": out_trade_no,
            "QueryDetail": "0",
        });
        match self.call(request).await {
            Ok(answer) => {
                let order = answer
                    .field("Order")
                    .and_then(decode_order)
                    .ok_or_else(|| {
                        ChannelError::OutcomeUnknown("ABC query answered without an Order".into())
                    })?;
                state_of(out_trade_no, &order, self.clock.now())
            }
            Err(ChannelError::Refused { code, .. })
                if ORDER_NOT_FOUND_CODES.contains(&code.as_str()) =>
            {
                Ok(ChannelState::NotFound)
            }
            Err(error) => Err(error),
        }
    }

    /// The bank's page stays payable until the order's `orderTimeoutDate` (our expiry):
    /// the checkout holds the items until then.
    fn closes_unpaid_orders(&self) -> bool {
        false
    }

    /// No refund interface of the bank is wired here: the office refunds by hand.
    async fn refund(&self, _request: &RefundRequest<'_>) -> Result<RefundState, ChannelError> {
        Err(ChannelError::Unsupported("refund"))
    }

    async fn query_refund(
        &self,
        _out_trade_no: &str,
        _out_refund_no: &str,
    ) -> Result<RefundState, ChannelError> {
        Err(ChannelError::Unsupported("refund"))
    }

    /// No bill download of the bank is wired here.
    async fn bill(&self, _day: chrono::NaiveDate) -> Result<Vec<BillLine>, BillError> {
        Err(BillError::Unsupported)
    }

    /// Public material shows no transaction that closes an unpaid order: the bank's
    /// order lapses at its `orderTimeoutDate` (our expiry). So closing asks the bank
    /// and says `Closed` only when the query shows it unpaid (or never seen); the
    /// checkout asks only once that time has passed.
    async fn close(&self, out_trade_no: &str) -> Result<Closed, ChannelError> {
        match self.query(out_trade_no).await? {
            ChannelState::Unpaid | ChannelState::NotFound | ChannelState::Closed => {
                Ok(Closed::Closed)
            }
            ChannelState::Paid(_) => Ok(Closed::AlreadyPaid),
            ChannelState::Other(state) => Err(ChannelError::Refused {
                code: "ABC_STATE".into(),
                message: format!("cannot close an order in {state}"),
            }),
        }
    }
}

/// A short, stable name for each transaction type, for metrics.
fn api_label(trx_type: Option<&str>) -> &'static str {
    match trx_type {
        Some(TRX_PAY) => "pay",
        Some(TRX_SCAN) => "scan",
        Some(TRX_QUERY) => "query",
        _ => "other",
    }
}

/// Guess: the scan order's code is in `ScanPayQRURL` (a .NET integration reads it);
/// `PayReq` answers carry the same kind of link in `OneQRForAll`, read as fallback.
fn scan_code_of(answer: &Opened) -> Option<&str> {
    ["ScanPayQRURL", "OneQRForAll"]
        .into_iter()
        .filter_map(|name| answer.field(name))
        .find(|code| !code.is_empty())
}

/// The merchant's private key as PEM: the bank's PKCS#12 (`.pfx`) file opened with its
/// password, or a PEM key given directly (what `openssl pkcs12 -nocerts` writes).
pub fn merchant_key_pem(file: &[u8], password: &str) -> Result<Vec<u8>, AbcSetupError> {
    if file.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Ok(file.to_vec());
    }
    let unreadable =
        |reason: String| AbcSetupError::MerchantKey(format!("the PKCS#12 file: {reason}"));
    let store = p12_keystore::KeyStore::from_pkcs12(
        file,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|error| unreadable(format!("{error} (wrong CAMPUSPAY_ABC_CERT_PASSWORD?)")))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| unreadable("it holds no private key".into()))?;
    let key =
        <rsa::PrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(chain.key().as_der())
            .map_err(|error| unreadable(format!("its key is not an RSA key: {error}")))?;
    let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, rsa::pkcs8::LineEnding::LF)
        .map_err(|error| unreadable(error.to_string()))?;
    Ok(pem.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::routing::post;
    use chrono::TimeDelta;

    use super::*;
    use crate::sandbox::abc::{self as sandbox, AbcSandbox, Tamper};

    type Received = Arc<Mutex<Vec<Vec<u8>>>>;

    #[test]
    fn the_merchant_key_is_read_from_the_pkcs12_file_with_its_password() {
        let pem = merchant_key_pem(sandbox::MERCHANT_P12, sandbox::MERCHANT_P12_PASSWORD)
            .expect("the sandbox's .p12 opens");
        assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let signer = wire::MerchantSigner::from_pem(std::str::from_utf8(&pem).expect("PEM"));
        assert!(signer.is_ok(), "the key signs");
        let wrong = merchant_key_pem(sandbox::MERCHANT_P12, "not-the-password");
        assert!(
            matches!(wrong, Err(AbcSetupError::MerchantKey(message)) if message.contains("CAMPUSPAY_ABC_CERT_PASSWORD"))
        );
        let garbage = merchant_key_pem(b"\x30\x03garbage", "x");
        assert!(matches!(garbage, Err(AbcSetupError::MerchantKey(_))));
        let already_pem = merchant_key_pem(sandbox::MERCHANT_PRIVATE_KEY_PEM.as_bytes(), "");
        assert!(already_pem.is_ok());
    }

    /// A merchant endpoint that records what the bank posts to `ResultNotifyURL`.
    async fn notify_receiver() -> (String, Received) {
        let received: Received = Arc::default();
        let app = Router::new()
            .route(
                "/pay/notify/abc",
                post(|State(seen): State<Received>, body: Bytes| async move {
                    seen.lock().unwrap().push(body.to_vec());
                    "ok"
                }),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/pay/notify/abc"), received)
    }

    async fn setup() -> (Abc, AbcSandbox, String, Received, Clock) {
        let clock = Clock::system();
        let bank = AbcSandbox::spawn(clock.clone()).await.unwrap();
        let abc = Abc::new(
            sandbox::MERCHANT_ID,
            sandbox::MERCHANT_PRIVATE_KEY_PEM.as_bytes(),
            sandbox::TRUSTPAY_CERT_PEM.as_bytes(),
            bank.gateway_url(),
            clock.clone(),
        )
        .unwrap();
        let (notify_url, received) = notify_receiver().await;
        (abc, bank, notify_url, received, clock)
    }

    fn order<'a>(
        kind: PaymentChannel,
        no: &'a str,
        notify_url: &'a str,
        clock: &Clock,
    ) -> PrepayOrder<'a> {
        PrepayOrder {
            kind,
            out_trade_no: no,
            description: "2026学年学费（计算机系）",
            amount_fen: 120050,
            expires_at: clock.now() + TimeDelta::minutes(30),
            notify_url,
            payer_openid: None,
        }
    }

    #[tokio::test]
    async fn page_payment_on_the_banks_page_notifies_and_verifies() {
        let (abc, bank, notify_url, received, clock) = setup().await;
        let no = "CP20260901083015000101";
        let Prepaid::Redirect(url) = abc
            .prepay(&order(PaymentChannel::AbcPage, no, &notify_url, &clock))
            .await
            .unwrap()
        else {
            panic!("not a redirect");
        };
        assert_eq!(abc.query(no).await.unwrap(), ChannelState::Unpaid);
        let tx = bank.transaction(no).unwrap();
        assert_eq!(tx.amount_fen, 120050);
        assert_eq!(tx.description, "2026学年学费（计算机系）");

        // The payer opens the bank's page and enters the card number there.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("确认支付") && page.contains("1200.50"));
        let token = Url::parse(&url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .into_owned();
        let answer = http
            .post(bank.pay_page_url("").as_str().split('?').next().unwrap())
            .form(&[
                ("token", token.as_str()),
                ("card_number", "6228480010000000018"),
                ("return_to", "http://campus.invalid/pc/pay/result"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303);
        assert_eq!(
            answer.headers()["location"],
            "http://campus.invalid/pc/pay/result"
        );

        let body = received.lock().unwrap().pop().expect("notified");
        let notice = abc.read_notification(&body, clock.now()).unwrap();
        assert_eq!(notice.out_trade_no, no);
        assert_eq!(notice.amount_fen, 120050);
        assert_eq!(
            Some(notice.bank_trade_no.clone()),
            bank.transaction(no).unwrap().rsp_ref
        );
        let ChannelState::Paid(paid) = abc.query(no).await.unwrap() else {
            panic!("not paid");
        };
        assert_eq!(paid.amount_fen, 120050);
        assert_eq!(paid.channel_trade_no, notice.bank_trade_no);
        assert_eq!(abc.close(no).await.unwrap(), Closed::AlreadyPaid);
    }

    #[tokio::test]
    async fn scan_order_gives_a_code_and_a_lost_notification_is_found_by_query() {
        let (abc, bank, notify_url, received, clock) = setup().await;
        let no = "CP20260901083015000102";
        let Prepaid::QrCode(code) = abc
            .prepay(&order(PaymentChannel::AbcScan, no, &notify_url, &clock))
            .await
            .unwrap()
        else {
            panic!("not a code");
        };
        assert!(code.contains("token="));
        bank.pay_silently(no).unwrap();
        assert!(received.lock().unwrap().is_empty());
        assert!(
            matches!(abc.query(no).await.unwrap(), ChannelState::Paid(p) if p.amount_fen == 120050)
        );
        // Paying again is refused; the notification (when sent) verifies.
        let (_, status) = bank.pay("nope").await.map(|_| ((), 0)).unwrap_or(((), 404));
        assert_eq!(status, 404);
        let body = bank.notification_for(no, Tamper::None).unwrap();
        assert_eq!(
            abc.read_notification(&body, clock.now())
                .unwrap()
                .amount_fen,
            120050
        );
    }

    #[tokio::test]
    async fn unknown_orders_query_as_not_found_and_close_only_when_unpaid() {
        let (abc, _bank, notify_url, _received, clock) = setup().await;
        assert_eq!(
            abc.query("CP-NEVER-SENT").await.unwrap(),
            ChannelState::NotFound
        );
        let no = "CP20260901083015000103";
        abc.prepay(&order(PaymentChannel::AbcScan, no, &notify_url, &clock))
            .await
            .unwrap();
        assert_eq!(abc.close(no).await.unwrap(), Closed::Closed);
        let wrong = abc
            .prepay(&order(
                PaymentChannel::WechatNative,
                "X",
                &notify_url,
                &clock,
            ))
            .await;
        assert!(matches!(wrong, Err(ChannelError::Refused { .. })));
    }

    #[tokio::test]
    async fn the_bank_refuses_a_request_signed_with_another_key() {
        let (_abc, bank, notify_url, _received, clock) = setup().await;
        let stranger = Abc::new(
            sandbox::MERCHANT_ID,
            include_bytes!("../../sandbox/keys/abc_trustpay_private_key.pem"),
            sandbox::TRUSTPAY_CERT_PEM.as_bytes(),
            bank.gateway_url(),
            clock.clone(),
        )
        .unwrap();
        let refused = stranger
            .prepay(&order(PaymentChannel::AbcPage, "CP1", &notify_url, &clock))
            .await;
        assert!(matches!(refused, Err(ChannelError::Refused { code, .. }) if code == "2302"));
    }

    #[tokio::test]
    async fn tampered_notifications_are_refused() {
        let (abc, bank, notify_url, _received, clock) = setup().await;
        let no = "CP20260901083015000104";
        abc.prepay(&order(PaymentChannel::AbcPage, no, &notify_url, &clock))
            .await
            .unwrap();
        bank.pay_silently(no).unwrap();
        let read = |tamper| {
            abc.read_notification(&bank.notification_for(no, tamper).unwrap(), clock.now())
        };
        assert!(read(Tamper::None).is_ok());
        assert_eq!(read(Tamper::Amount).unwrap_err().label(), "bad_signature");
        assert_eq!(
            read(Tamper::ForeignKey).unwrap_err().label(),
            "bad_signature"
        );
        assert_eq!(read(Tamper::OtherMerchant).unwrap_err().label(), "not_ours");
        assert_eq!(read(Tamper::Failed).unwrap_err().label(), "not_paid");
        assert_eq!(
            abc.read_notification(b"MSG=%%%", clock.now())
                .unwrap_err()
                .label(),
            "malformed"
        );
        assert_eq!(
            abc.read_notification(b"", clock.now()).unwrap_err().label(),
            "malformed"
        );
    }

    #[tokio::test]
    async fn only_a_payment_result_pays_and_one_number_names_the_payment() {
        let (abc, bank, notify_url, _received, clock) = setup().await;
        let no = "CP20260901083015000105";
        abc.prepay(&order(PaymentChannel::AbcPage, no, &notify_url, &clock))
            .await
            .unwrap();
        // The bank's signed answer to the payment request: genuine, "0000", our
        // order and amount, and not a payment.
        let answer = bank.notification_for(no, Tamper::PayRequestAnswer).unwrap();
        let refused = abc.read_notification(&answer, clock.now()).unwrap_err();
        assert_eq!(refused.label(), "not_a_payment_result");

        bank.leave_out_references();
        bank.pay_silently(no).unwrap();
        let notice = abc
            .read_notification(
                &bank.notification_for(no, Tamper::None).unwrap(),
                clock.now(),
            )
            .unwrap();
        let ChannelState::Paid(paid) = abc.query(no).await.unwrap() else {
            panic!("not paid");
        };
        assert_eq!(notice.bank_trade_no, no, "no iRspRef: the order number");
        assert_eq!(paid.channel_trade_no, notice.bank_trade_no);
    }

    #[test]
    fn the_transaction_number_is_irspref_else_the_order_number() {
        assert_eq!(
            transaction_number(Some("123456789012"), "CP1"),
            "123456789012"
        );
        assert_eq!(transaction_number(Some(" "), "CP1"), "CP1");
        assert_eq!(transaction_number(None, "CP1"), "CP1");
    }

    #[tokio::test]
    async fn the_banks_page_refuses_to_pay_after_the_order_timeout() {
        let (abc, bank, notify_url, _received, clock) = setup().await;
        let no = "CP20260901083015000106";
        abc.prepay(&order(PaymentChannel::AbcPage, no, &notify_url, &clock))
            .await
            .unwrap();
        let timeout = bank.transaction(no).unwrap().timeout_at.expect("sent");
        assert!(timeout > clock.now());
        clock.advance(std::time::Duration::from_secs(31 * 60));
        assert_eq!(bank.pay_silently(no), Err(sandbox::PayError::TimedOut));
        assert_eq!(abc.query(no).await.unwrap(), ChannelState::Unpaid);
    }

    #[test]
    fn a_pkcs12_file_is_refused_with_the_conversion_named() {
        let error = Abc::new(
            sandbox::MERCHANT_ID,
            sandbox::MERCHANT_P12,
            sandbox::TRUSTPAY_CERT_PEM.as_bytes(),
            Url::parse(TEST_GATEWAY).unwrap(),
            Clock::system(),
        )
        .err()
        .unwrap();
        assert!(error.to_string().starts_with("CAMPUSPAY_ABC_CERT_FILE: "));
        assert!(error.to_string().contains("openssl pkcs12"));
    }
}
