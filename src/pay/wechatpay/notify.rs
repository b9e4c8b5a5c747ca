//! Payment notifications (`TRANSACTION.SUCCESS`): the signature over the raw body
//! is checked before anything else is read, then the envelope is parsed and its
//! resource decrypted into the transaction.
//!
//! What this does not do: compare the transaction with our order (app id,
//! merchant, order number, amount). The caller must, before believing it.

use chrono::{DateTime, FixedOffset, Utc};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::aead::{AeadError, ApiV3Key, decrypt_resource};
use super::verify::{ResponseVerifier, VerifyError};

pub const EVENT_TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";
pub const RESOURCE_TYPE_ENCRYPTED: &str = "encrypt-resource";
pub const RESOURCE_ALGORITHM: &str = "AEAD_AES_256_GCM";

/// The notification as it arrives: `{id, create_time, event_type, resource_type,
/// summary, resource}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEnvelope {
    pub id: String,
    pub create_time: String,
    pub event_type: String,
    pub resource_type: String,
    #[serde(default)]
    pub summary: String,
    pub resource: EncryptedResource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
    #[serde(default)]
    pub original_type: String,
}

/// `trade_state`: SUCCESS is paid; NOTPAY, USERPAYING and ACCEPT are not yet;
/// CLOSED, REVOKED and PAYERROR will not be; REFUND was paid, then refunded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TradeState {
    Success,
    Refund,
    NotPay,
    Closed,
    Revoked,
    UserPaying,
    PayError,
    Accept,
    /// A state this code does not know; never treated as paid.
    Other(String),
}

impl TradeState {
    pub fn as_str(&self) -> &str {
        match self {
            TradeState::Success => "SUCCESS",
            TradeState::Refund => "REFUND",
            TradeState::NotPay => "NOTPAY",
            TradeState::Closed => "CLOSED",
            TradeState::Revoked => "REVOKED",
            TradeState::UserPaying => "USERPAYING",
            TradeState::PayError => "PAYERROR",
            TradeState::Accept => "ACCEPT",
            TradeState::Other(other) => other,
        }
    }

    /// The money arrived (REFUND means it arrived and some went back).
    pub fn is_paid(&self) -> bool {
        matches!(self, TradeState::Success | TradeState::Refund)
    }
}

impl From<String> for TradeState {
    fn from(wire: String) -> Self {
        match wire.as_str() {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            "ACCEPT" => TradeState::Accept,
            _ => TradeState::Other(wire),
        }
    }
}

impl From<TradeState> for String {
    fn from(state: TradeState) -> Self {
        state.as_str().to_owned()
    }
}

/// The decrypted resource of a payment notification (also the body of a query
/// answer for a paid order). Fields WeChat may omit are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub trade_state: TradeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    pub amount: TransactionAmount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub openid: String,
}

/// Amounts in fen, as integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionAmount {
    pub total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

/// A verified, decrypted payment notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionNotice {
    /// WeChat's notification id: the same payment notified twice has the same id.
    pub notification_id: String,
    pub event_type: String,
    pub create_time: String,
    pub summary: String,
    pub transaction: Transaction,
    /// The decrypted resource exactly as WeChat sent it, for the record.
    pub resource_plaintext: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("signature check failed: {0}")]
    Signature(#[from] VerifyError),
    #[error("not a WeChat Pay notification: {0}")]
    Malformed(String),
    #[error("resource algorithm {0} is not {RESOURCE_ALGORITHM}")]
    UnsupportedAlgorithm(String),
    /// Verified, but not a payment (a refund notification sent here, say).
    #[error("event {0} is not {EVENT_TRANSACTION_SUCCESS}")]
    UnexpectedEvent(String),
    #[error("the resource could not be decrypted: {0}")]
    Decrypt(#[from] AeadError),
    #[error("the decrypted resource is not a transaction: {0}")]
    MalformedResource(String),
}

impl NotifyError {
    /// A short, stable name for metrics and for the stored verdict.
    pub fn metric_label(&self) -> &'static str {
        match self {
            NotifyError::Signature(error) => error.metric_label(),
            NotifyError::Malformed(_)
            | NotifyError::UnsupportedAlgorithm(_)
            | NotifyError::MalformedResource(_) => "malformed",
            NotifyError::UnexpectedEvent(_) => "event",
            NotifyError::Decrypt(_) => "decrypt",
        }
    }

    /// The short reason for `{"code":"FAIL","message":…}`. Tells WeChat nothing
    /// about our keys.
    pub fn reason(&self) -> &'static str {
        match self {
            NotifyError::Signature(VerifyError::Stale { .. }) => "timestamp out of range",
            NotifyError::Signature(_) => "signature verification failed",
            NotifyError::Malformed(_) | NotifyError::UnsupportedAlgorithm(_) => {
                "malformed notification"
            }
            NotifyError::UnexpectedEvent(_) => "unexpected event type",
            NotifyError::Decrypt(_) => "resource decryption failed",
            NotifyError::MalformedResource(_) => "malformed resource",
        }
    }

    /// The status to answer with: 401 for what failed verification, 500 when we
    /// cannot decrypt (likely our key; WeChat will retry), 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            NotifyError::Signature(_) => 401,
            NotifyError::Decrypt(_) => 500,
            _ => 400,
        }
    }

    /// `{"code":"FAIL","message":"…"}`
    pub fn fail_body(&self) -> String {
        serde_json::json!({ "code": "FAIL", "message": self.reason() }).to_string()
    }
}

/// Verifies, parses and decrypts a payment notification. `raw_body` must be the
/// bytes as received: no JSON round trip before this.
pub fn parse_transaction_notification(
    headers: &HeaderMap,
    raw_body: &[u8],
    verifier: &ResponseVerifier,
    key: &ApiV3Key,
    now: DateTime<Utc>,
) -> Result<TransactionNotice, NotifyError> {
    verifier.verify(headers, raw_body, now)?;
    let envelope = parse_envelope(raw_body)?;
    if envelope.event_type != EVENT_TRANSACTION_SUCCESS {
        return Err(NotifyError::UnexpectedEvent(envelope.event_type));
    }
    let plaintext = decrypt_envelope(&envelope, key)?;
    let transaction = parse_transaction(&plaintext)?;
    Ok(TransactionNotice {
        notification_id: envelope.id,
        event_type: envelope.event_type,
        create_time: envelope.create_time,
        summary: envelope.summary,
        transaction,
        resource_plaintext: plaintext,
    })
}

/// Reads the envelope of an already verified body.
pub fn parse_envelope(raw_body: &[u8]) -> Result<NotificationEnvelope, NotifyError> {
    let envelope: NotificationEnvelope = serde_json::from_slice(raw_body)
        .map_err(|error| NotifyError::Malformed(error.to_string()))?;
    if envelope.resource.algorithm != RESOURCE_ALGORITHM {
        return Err(NotifyError::UnsupportedAlgorithm(
            envelope.resource.algorithm,
        ));
    }
    Ok(envelope)
}

fn decrypt_envelope(
    envelope: &NotificationEnvelope,
    key: &ApiV3Key,
) -> Result<String, NotifyError> {
    let resource = &envelope.resource;
    let plaintext = decrypt_resource(
        key,
        &resource.nonce,
        &resource.associated_data,
        &resource.ciphertext,
    )?;
    String::from_utf8(plaintext).map_err(|_| NotifyError::MalformedResource("not UTF-8".to_owned()))
}

fn parse_transaction(plaintext: &str) -> Result<Transaction, NotifyError> {
    serde_json::from_str(plaintext)
        .map_err(|error| NotifyError::MalformedResource(error.to_string()))
}

// ---- refund notifications ------------------------------------------------------------

pub const EVENT_REFUND_SUCCESS: &str = "REFUND.SUCCESS";
pub const EVENT_REFUND_ABNORMAL: &str = "REFUND.ABNORMAL";
pub const EVENT_REFUND_CLOSED: &str = "REFUND.CLOSED";

/// The decrypted resource of a refund notification (`original_type` "refund").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResource {
    pub mchid: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_status: super::refund::RefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<DateTime<FixedOffset>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    pub amount: super::refund::RefundAmount,
}

/// A verified, decrypted refund notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotice {
    pub notification_id: String,
    pub event_type: String,
    pub refund: RefundResource,
    pub resource_plaintext: String,
}

/// Verifies, parses and decrypts a refund notification, exactly as a payment's:
/// the signature over the raw body first. The caller compares the refund with ours.
pub fn parse_refund_notification(
    headers: &HeaderMap,
    raw_body: &[u8],
    verifier: &ResponseVerifier,
    key: &ApiV3Key,
    now: DateTime<Utc>,
) -> Result<RefundNotice, NotifyError> {
    verifier.verify(headers, raw_body, now)?;
    let envelope = parse_envelope(raw_body)?;
    let refund_event = [
        EVENT_REFUND_SUCCESS,
        EVENT_REFUND_ABNORMAL,
        EVENT_REFUND_CLOSED,
    ]
    .contains(&envelope.event_type.as_str());
    if !refund_event {
        return Err(NotifyError::UnexpectedEvent(envelope.event_type));
    }
    let plaintext = decrypt_envelope(&envelope, key)?;
    let refund = serde_json::from_str(&plaintext)
        .map_err(|error| NotifyError::MalformedResource(error.to_string()))?;
    Ok(RefundNotice {
        notification_id: envelope.id,
        event_type: envelope.event_type,
        refund,
        resource_plaintext: plaintext,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pay::wechatpay::aead::{decrypt_resource_aes128_for_vectors, encrypt_resource};
    use crate::pay::wechatpay::keys::PlatformCertificate;
    use crate::pay::wechatpay::keys::tests::GO_SDK_CERTIFICATE_PEM;
    use crate::pay::wechatpay::verify::tests::{
        NOTIFY_BODY, NOTIFY_NONCE, NOTIFY_SERIAL, NOTIFY_SIGNATURE, NOTIFY_TIMESTAMP, at,
        sandbox_signed_headers, sandbox_verifier, signature_headers,
    };
    use crate::pay::wechatpay::verify::{HEADER_SIGNATURE, SIGNATURE_PROBE_PREFIX};
    use reqwest::header::HeaderValue;

    const API_V3_KEY: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    const NOW: i64 = 1_756_700_000;

    const PAID: &str = r#"{"mchid":"1900000109","appid":"wxd678efh567hg6787","out_trade_no":"WWZY2025090100000001","transaction_id":"4200001234202509011234567890","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2025-09-01T12:00:05+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":150000,"payer_total":150000,"currency":"CNY","payer_currency":"CNY"}}"#;

    pub(crate) fn api_v3_key() -> ApiV3Key {
        ApiV3Key::new(API_V3_KEY).expect("32-byte key")
    }

    /// A notification as the sandbox would send it: encrypted, enveloped, signed.
    pub(crate) fn sandbox_notification(
        event_type: &str,
        resource_plaintext: &str,
        signed_at: i64,
    ) -> (HeaderMap, Vec<u8>) {
        let nonce = "n0nce1234567";
        let ciphertext = encrypt_resource(
            &api_v3_key(),
            nonce,
            "transaction",
            resource_plaintext.as_bytes(),
        )
        .expect("encrypt");
        let envelope = NotificationEnvelope {
            id: "EV-2025".to_owned(),
            create_time: "2025-09-01T12:00:06+08:00".to_owned(),
            event_type: event_type.to_owned(),
            resource_type: RESOURCE_TYPE_ENCRYPTED.to_owned(),
            summary: "支付成功".to_owned(),
            resource: EncryptedResource {
                algorithm: RESOURCE_ALGORITHM.to_owned(),
                ciphertext,
                associated_data: "transaction".to_owned(),
                nonce: nonce.to_owned(),
                original_type: "transaction".to_owned(),
            },
        };
        let body = serde_json::to_vec(&envelope).expect("json");
        (
            sandbox_signed_headers(&body, signed_at, "NOTIFYNONCE"),
            body,
        )
    }

    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TransactionNotice, NotifyError> {
        parse_transaction_notification(headers, body, &sandbox_verifier(), &api_v3_key(), at(NOW))
    }

    #[test]
    fn sandbox_notification_round_trips() {
        let (headers, body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, PAID, NOW);
        let notice = parse(&headers, &body).expect("valid notification");
        assert_eq!(notice.notification_id, "EV-2025");
        assert_eq!(notice.resource_plaintext, PAID);
        let transaction = notice.transaction;
        assert_eq!(transaction.out_trade_no, "WWZY2025090100000001");
        assert_eq!(transaction.trade_state, TradeState::Success);
        assert!(transaction.trade_state.is_paid());
        assert_eq!(transaction.amount.total, 150_000);
        assert_eq!(transaction.amount.payer_total, Some(150_000));
        assert_eq!(transaction.amount.currency, "CNY");
        assert_eq!(
            transaction.payer.map(|payer| payer.openid).as_deref(),
            Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
        );
        assert_eq!(
            transaction.success_time.map(|t| t.to_rfc3339()).as_deref(),
            Some("2025-09-01T12:00:05+08:00")
        );
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let minimal = r#"{"mchid":"1900000109","appid":"wx1","out_trade_no":"ORDER001","transaction_id":"42","trade_state":"SUCCESS","amount":{"total":1,"currency":"CNY"}}"#;
        let (headers, body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, minimal, NOW);
        let transaction = parse(&headers, &body).expect("minimal").transaction;
        assert_eq!(transaction.attach, None);
        assert_eq!(transaction.payer, None);
        assert_eq!(transaction.success_time, None);
        assert_eq!(transaction.amount.payer_total, None);
    }

    #[test]
    fn the_signature_is_checked_before_the_body_is_read() {
        let headers = sandbox_signed_headers(b"{}", NOW, "N");
        assert!(matches!(
            parse(&headers, b"not json at all"),
            Err(NotifyError::Signature(VerifyError::BadSignature))
        ));
        let (mut headers, body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, PAID, NOW);
        let probe = format!("{SIGNATURE_PROBE_PREFIX}AAAA");
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_str(&probe).expect("header"),
        );
        let error = parse(&headers, &body).expect_err("probe");
        assert_eq!(error.metric_label(), "signature_probe");
        assert_eq!(error.http_status(), 401);
    }

    #[test]
    fn stale_and_forged_notifications_are_refused_with_labels() {
        let (headers, body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, PAID, NOW - 3600);
        let error = parse(&headers, &body).expect_err("stale");
        assert_eq!(error.metric_label(), "stale");
        assert_eq!(
            error.fail_body(),
            r#"{"code":"FAIL","message":"timestamp out of range"}"#
        );

        let (headers, _) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, PAID, NOW);
        let wrong_amount = PAID.replace("150000", "1");
        let (_, forged_body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, &wrong_amount, NOW);
        let error = parse(&headers, &forged_body).expect_err("forged");
        assert_eq!(error.metric_label(), "signature");
    }

    #[test]
    fn other_events_and_bad_resources_are_named() {
        let (headers, body) = sandbox_notification("REFUND.SUCCESS", PAID, NOW);
        assert_eq!(
            parse(&headers, &body),
            Err(NotifyError::UnexpectedEvent("REFUND.SUCCESS".to_owned()))
        );
        let (headers, body) =
            sandbox_notification(EVENT_TRANSACTION_SUCCESS, r#"{"mchid":1}"#, NOW);
        let error = parse(&headers, &body).expect_err("not a transaction");
        assert!(matches!(error, NotifyError::MalformedResource(_)));
        assert_eq!(error.metric_label(), "malformed");

        let body = br#"{"id":"x"}"#;
        let headers = sandbox_signed_headers(body, NOW, "N");
        assert!(matches!(
            parse(&headers, body),
            Err(NotifyError::Malformed(_))
        ));
    }

    #[test]
    fn a_resource_under_another_key_fails_to_decrypt() {
        let (headers, body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, PAID, NOW);
        let other_key = ApiV3Key::new(b"vutsrqponmlkjihgfedcba9876543210").expect("key");
        let error = parse_transaction_notification(
            &headers,
            &body,
            &sandbox_verifier(),
            &other_key,
            at(NOW),
        )
        .expect_err("wrong key");
        assert_eq!(error, NotifyError::Decrypt(AeadError::Authentication));
        assert_eq!(error.metric_label(), "decrypt");
        assert_eq!(error.http_status(), 500);
    }

    /// wechat-anchors §3.6 (c): wechatpay-go `TestHandler_ParseNotifyRequest`. The
    /// signature verifies against the certificate; its resource is a PAYSCORE event
    /// under a 16-byte key, so the decryption goes through the test-only AES-128
    /// door and the transaction parse does not apply.
    #[test]
    fn go_sdk_notification_vector() {
        let mut verifier = ResponseVerifier::new();
        verifier.add_platform_certificate(
            PlatformCertificate::from_pem(GO_SDK_CERTIFICATE_PEM).expect("certificate"),
        );
        let headers = signature_headers(
            &NOTIFY_TIMESTAMP.to_string(),
            NOTIFY_NONCE,
            NOTIFY_SIGNATURE,
            NOTIFY_SERIAL,
        );
        verifier
            .verify(&headers, NOTIFY_BODY.as_bytes(), at(NOTIFY_TIMESTAMP))
            .expect("signature");

        let envelope = parse_envelope(NOTIFY_BODY.as_bytes()).expect("envelope");
        assert_eq!(envelope.id, "3119dfba-e649-5eec-ab1e-3412bc4d2e17");
        assert_eq!(envelope.create_time, "2021-06-24T16:37:26+08:00");
        assert_eq!(envelope.resource_type, RESOURCE_TYPE_ENCRYPTED);
        assert_eq!(envelope.event_type, "PAYSCORE.USER_OPEN_SERVICE");
        assert_eq!(envelope.summary, "签约成功");
        assert_eq!(envelope.resource.associated_data, "payscore");
        assert_eq!(envelope.resource.original_type, "payscore");
        let resource = &envelope.resource;
        let plaintext = decrypt_resource_aes128_for_vectors(
            b"testMchAPIv3Key0",
            &resource.nonce,
            &resource.associated_data,
            &resource.ciphertext,
        )
        .expect("decrypt");
        assert_eq!(
            String::from_utf8(plaintext).expect("utf-8"),
            r#"{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c","create_time":"2020-06-30T12:12:00+08:00","out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}"#
        );

        // Through the production entry point: verified, then refused as not a
        // payment, before any decryption.
        let error = parse_transaction_notification(
            &headers,
            NOTIFY_BODY.as_bytes(),
            &verifier,
            &api_v3_key(),
            at(NOTIFY_TIMESTAMP),
        )
        .expect_err("not a payment");
        assert_eq!(
            error,
            NotifyError::UnexpectedEvent("PAYSCORE.USER_OPEN_SERVICE".to_owned())
        );
    }

    #[test]
    fn trade_states_read_and_write_as_wechat_spells_them() {
        for wire in [
            "SUCCESS",
            "REFUND",
            "NOTPAY",
            "CLOSED",
            "REVOKED",
            "USERPAYING",
            "PAYERROR",
            "ACCEPT",
            "SOMETHING_NEW",
        ] {
            let state = TradeState::from(wire.to_owned());
            assert_eq!(state.as_str(), wire);
            assert_eq!(
                serde_json::to_string(&state).expect("json"),
                format!("\"{wire}\"")
            );
        }
        assert!(!TradeState::from("SOMETHING_NEW".to_owned()).is_paid());
        assert!(!TradeState::NotPay.is_paid());
    }

    const REFUNDED: &str = r#"{"mchid":"1900000109","out_trade_no":"CP20250901120000ABCD","transaction_id":"4200001234202509011234567890","out_refund_no":"RF20250901x7Kq2mPz9a","refund_id":"50000000382019052709732678859","refund_status":"SUCCESS","success_time":"2025-09-02T10:00:05+08:00","user_received_account":"支付用户零钱","amount":{"total":150000,"refund":150000,"payer_total":150000,"payer_refund":150000}}"#;

    #[test]
    fn a_refund_notification_is_verified_and_decrypted() {
        let (headers, body) = sandbox_notification(EVENT_REFUND_SUCCESS, REFUNDED, NOW);
        let notice =
            parse_refund_notification(&headers, &body, &sandbox_verifier(), &api_v3_key(), at(NOW))
                .expect("accepted");
        assert_eq!(notice.event_type, EVENT_REFUND_SUCCESS);
        assert_eq!(notice.refund.out_refund_no, "RF20250901x7Kq2mPz9a");
        assert_eq!(
            notice.refund.refund_status,
            crate::pay::wechatpay::refund::RefundStatus::Success
        );
        assert_eq!(notice.refund.amount.refund, 150_000);
        assert_eq!(notice.resource_plaintext, REFUNDED);
    }

    #[test]
    fn a_payment_notification_is_not_a_refund_and_a_stale_refund_is_refused() {
        let (headers, body) = sandbox_notification(EVENT_TRANSACTION_SUCCESS, PAID, NOW);
        let parse = |headers: &HeaderMap, body: &[u8]| {
            parse_refund_notification(headers, body, &sandbox_verifier(), &api_v3_key(), at(NOW))
        };
        assert!(matches!(
            parse(&headers, &body),
            Err(NotifyError::UnexpectedEvent(_))
        ));
        let (headers, body) = sandbox_notification(EVENT_REFUND_SUCCESS, REFUNDED, NOW - 600);
        assert!(matches!(
            parse(&headers, &body),
            Err(NotifyError::Signature(_))
        ));
        // A refund notification is not a payment either.
        let (headers, body) = sandbox_notification(EVENT_REFUND_CLOSED, REFUNDED, NOW);
        assert!(matches!(
            parse_transaction_notification(
                &headers,
                &body,
                &sandbox_verifier(),
                &api_v3_key(),
                at(NOW)
            ),
            Err(NotifyError::UnexpectedEvent(_))
        ));
    }
}
