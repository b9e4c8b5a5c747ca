//! Checking what WeChat Pay signed: API responses and notifications alike carry
//! `Wechatpay-Timestamp`, `Wechatpay-Nonce`, `Wechatpay-Signature` and
//! `Wechatpay-Serial`; the signature covers `TIMESTAMP\nNONCE\nBODY\n` over the raw
//! body bytes, under the key the serial names.
//!
//! Keys are held by serial: the WeChat Pay public key (`PUB_KEY_ID_…`) and any
//! platform certificates, side by side, since during a migration WeChat signs with
//! either. The caller passes the time: nothing here reads a clock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use super::keys::{PlatformCertificate, WechatPayPublicKey};

pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";

/// A signature this far (or further) from our clock is refused, as the official
/// SDKs do.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// WeChat Pay sends deliberately wrong signatures with this prefix to check that
/// merchants verify. They must fail.
pub const SIGNATURE_PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {0} header cannot be read")]
    InvalidHeader(&'static str),
    #[error("no WeChat Pay key is configured for serial {0}")]
    UnknownSerial(String),
    #[error("the platform certificate {serial} expired at {not_after}")]
    CertificateExpired {
        serial: String,
        not_after: DateTime<Utc>,
    },
    #[error(
        "the signature's timestamp {timestamp} is {skew_seconds} s from our clock \
         (limit {MAX_CLOCK_SKEW_SECONDS} s)"
    )]
    Stale { timestamp: i64, skew_seconds: i64 },
    #[error("a WECHATPAY/SIGNTEST/ probe signature, refused as WeChat Pay expects")]
    SignatureProbe,
    #[error("the signature does not verify")]
    BadSignature,
}

impl VerifyError {
    /// A short, stable name for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) | VerifyError::InvalidHeader(_) => "signature_headers",
            VerifyError::UnknownSerial(_) => "unknown_serial",
            VerifyError::CertificateExpired { .. } => "certificate_expired",
            VerifyError::Stale { .. } => "stale",
            VerifyError::SignatureProbe => "signature_probe",
            VerifyError::BadSignature => "signature",
        }
    }
}

/// The four signature headers, read but not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// Exactly as sent: the signed message uses the header text, not the number.
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub serial: String,
}

impl SignatureHeaders {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, VerifyError> {
        Ok(Self {
            timestamp: required_header(headers, HEADER_TIMESTAMP)?,
            nonce: required_header(headers, HEADER_NONCE)?,
            signature: required_header(headers, HEADER_SIGNATURE)?,
            serial: required_header(headers, HEADER_SERIAL)?,
        })
    }

    /// Whether any of the four is present: unsigned answers (a proxy's 502, say)
    /// have none.
    pub fn any_present(headers: &HeaderMap) -> bool {
        [
            HEADER_TIMESTAMP,
            HEADER_NONCE,
            HEADER_SIGNATURE,
            HEADER_SERIAL,
        ]
        .iter()
        .any(|name| headers.contains_key(*name))
    }
}

fn required_header(headers: &HeaderMap, name: &'static str) -> Result<String, VerifyError> {
    let value = headers.get(name).ok_or(VerifyError::MissingHeader(name))?;
    let text = value
        .to_str()
        .map_err(|_| VerifyError::InvalidHeader(name))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(VerifyError::MissingHeader(name));
    }
    Ok(text.to_owned())
}

/// The signed message: `TIMESTAMP\nNONCE\nBODY\n`.
pub fn response_signature_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(nonce.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

#[derive(Debug, Clone)]
struct TrustedKey {
    key: WechatPayPublicKey,
    /// Platform certificates expire; public keys do not.
    not_after: Option<DateTime<Utc>>,
}

/// WeChat Pay's keys, by serial, and the check of a signed answer against them.
#[derive(Debug, Clone, Default)]
pub struct ResponseVerifier {
    keys: HashMap<String, TrustedKey>,
}

impl ResponseVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// A verifier holding one WeChat Pay public key, the usual setup.
    pub fn with_public_key(key_id: impl Into<String>, key: WechatPayPublicKey) -> Self {
        let mut verifier = Self::new();
        verifier.add_public_key(key_id, key);
        verifier
    }

    /// Trusts `key` for answers whose `Wechatpay-Serial` is `key_id`
    /// (`PUB_KEY_ID_…`).
    pub fn add_public_key(&mut self, key_id: impl Into<String>, key: WechatPayPublicKey) {
        let trusted = TrustedKey {
            key,
            not_after: None,
        };
        self.keys.insert(key_id.into(), trusted);
    }

    /// Trusts a platform certificate's key under its serial, until it expires.
    pub fn add_platform_certificate(&mut self, certificate: PlatformCertificate) {
        let trusted = TrustedKey {
            key: certificate.key,
            not_after: Some(certificate.not_after),
        };
        self.keys.insert(certificate.serial, trusted);
    }

    /// The serials this verifier knows, sorted.
    pub fn serials(&self) -> Vec<&str> {
        let mut serials: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        serials.sort_unstable();
        serials
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a response or notification: its headers, then its raw body.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        raw_body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let signed = SignatureHeaders::from_headers(headers)?;
        self.verify_signed(&signed, raw_body, now)
    }

    /// Key by serial, then freshness, then the signature itself.
    pub fn verify_signed(
        &self,
        signed: &SignatureHeaders,
        raw_body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let trusted = self.trusted_key(&signed.serial, now)?;
        check_freshness(&signed.timestamp, now)?;
        if signed.signature.starts_with(SIGNATURE_PROBE_PREFIX) {
            return Err(VerifyError::SignatureProbe);
        }
        let message = response_signature_message(&signed.timestamp, &signed.nonce, raw_body);
        if trusted.key.verify_sha256(&message, &signed.signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn trusted_key(&self, serial: &str, now: DateTime<Utc>) -> Result<&TrustedKey, VerifyError> {
        let trusted = self
            .keys
            .get(serial)
            .ok_or_else(|| VerifyError::UnknownSerial(serial.to_owned()))?;
        match trusted.not_after {
            Some(not_after) if now > not_after => Err(VerifyError::CertificateExpired {
                serial: serial.to_owned(),
                not_after,
            }),
            _ => Ok(trusted),
        }
    }
}

fn check_freshness(timestamp: &str, now: DateTime<Utc>) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::InvalidHeader(HEADER_TIMESTAMP))?;
    let skew_seconds = now.timestamp().saturating_sub(timestamp).saturating_abs();
    if skew_seconds >= MAX_CLOCK_SKEW_SECONDS {
        return Err(VerifyError::Stale {
            timestamp,
            skew_seconds,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pay::wechatpay::keys::MerchantKey;
    use crate::pay::wechatpay::keys::tests::{
        GO_SDK_CERTIFICATE_PEM, GO_SDK_PUBLIC_PEM, GO_SDK_SIGNATURE_OF_SOURCE,
        WECHATPAY_PRIVATE_PEM, WECHATPAY_PUBLIC_PEM,
    };
    use reqwest::header::HeaderValue;

    /// wechat-anchors §3.6 (c), wechatpay-go `core/notify/notify_test.go`.
    pub(crate) const NOTIFY_TIMESTAMP: i64 = 1624523846;
    pub(crate) const NOTIFY_NONCE: &str = "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz";
    pub(crate) const NOTIFY_SERIAL: &str = "D7CE59D1F522D701";
    pub(crate) const NOTIFY_SIGNATURE: &str = "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q==";
    pub(crate) const NOTIFY_BODY: &str = r#"{"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17","create_time":"2021-06-24T16:37:26+08:00","resource_type":"encrypt-resource","event_type":"PAYSCORE.USER_OPEN_SERVICE","summary":"签约成功","resource":{"original_type":"payscore","algorithm":"AEAD_AES_256_GCM","ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==","associated_data":"payscore","nonce":"Kj7QIyUiYx1q"}}"#;

    pub(crate) const SANDBOX_KEY_ID: &str = "PUB_KEY_ID_01142321349124100000000000000000";

    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid time")
    }

    pub(crate) fn signature_headers(
        timestamp: &str,
        nonce: &str,
        signature: &str,
        serial: &str,
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (HEADER_TIMESTAMP, timestamp),
            (HEADER_NONCE, nonce),
            (HEADER_SIGNATURE, signature),
            (HEADER_SERIAL, serial),
        ] {
            headers.insert(name, HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    /// Signs like the sandbox: the sandbox's WeChat Pay key, the sandbox key id.
    pub(crate) fn sandbox_signed_headers(body: &[u8], timestamp: i64, nonce: &str) -> HeaderMap {
        let key = MerchantKey::from_pem(WECHATPAY_PRIVATE_PEM).expect("sandbox WeChat Pay key");
        let timestamp = timestamp.to_string();
        let message = response_signature_message(&timestamp, nonce, body);
        let signature = key.sign_sha256_base64(&message);
        signature_headers(&timestamp, nonce, &signature, SANDBOX_KEY_ID)
    }

    pub(crate) fn sandbox_verifier() -> ResponseVerifier {
        let key = WechatPayPublicKey::from_pem(WECHATPAY_PUBLIC_PEM).expect("sandbox public key");
        ResponseVerifier::with_public_key(SANDBOX_KEY_ID, key)
    }

    fn certificate_verifier() -> ResponseVerifier {
        let mut verifier = ResponseVerifier::new();
        let certificate = PlatformCertificate::from_pem(GO_SDK_CERTIFICATE_PEM).expect("cert");
        verifier.add_platform_certificate(certificate);
        verifier
    }

    fn notify_headers() -> HeaderMap {
        signature_headers(
            &NOTIFY_TIMESTAMP.to_string(),
            NOTIFY_NONCE,
            NOTIFY_SIGNATURE,
            NOTIFY_SERIAL,
        )
    }

    #[test]
    fn go_sdk_notification_signature_verifies_with_the_certificate() {
        let verifier = certificate_verifier();
        assert_eq!(verifier.serials(), [NOTIFY_SERIAL]);
        verifier
            .verify(
                &notify_headers(),
                NOTIFY_BODY.as_bytes(),
                at(NOTIFY_TIMESTAMP),
            )
            .expect("the official notification verifies");
    }

    #[test]
    fn go_sdk_notification_verifies_with_the_public_key_under_the_cert_serial() {
        let key = WechatPayPublicKey::from_pem(GO_SDK_PUBLIC_PEM).expect("public key");
        let verifier = ResponseVerifier::with_public_key(NOTIFY_SERIAL, key);
        verifier
            .verify(
                &notify_headers(),
                NOTIFY_BODY.as_bytes(),
                at(NOTIFY_TIMESTAMP),
            )
            .expect("the official notification verifies");
    }

    #[test]
    fn one_changed_body_byte_fails() {
        let body = NOTIFY_BODY.replace("签约成功", "签约失败");
        assert_eq!(
            certificate_verifier().verify(&notify_headers(), body.as_bytes(), at(NOTIFY_TIMESTAMP)),
            Err(VerifyError::BadSignature)
        );
        // Re-serialised JSON (a space after a colon) is not the signed body.
        let body = NOTIFY_BODY.replacen("\"id\":", "\"id\": ", 1);
        assert_eq!(
            certificate_verifier().verify(&notify_headers(), body.as_bytes(), at(NOTIFY_TIMESTAMP)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn freshness_window_is_under_300_seconds_either_way() {
        let verifier = certificate_verifier();
        let body = NOTIFY_BODY.as_bytes();
        let headers = notify_headers();
        for offset in [-299, 299] {
            verifier
                .verify(&headers, body, at(NOTIFY_TIMESTAMP + offset))
                .expect("inside the window");
        }
        for offset in [-300, 300, 86_400] {
            assert!(matches!(
                verifier.verify(&headers, body, at(NOTIFY_TIMESTAMP + offset)),
                Err(VerifyError::Stale { .. })
            ));
        }
    }

    #[test]
    fn signature_probe_fails() {
        let headers = signature_headers(
            &NOTIFY_TIMESTAMP.to_string(),
            NOTIFY_NONCE,
            &format!("{SIGNATURE_PROBE_PREFIX}{NOTIFY_SIGNATURE}"),
            NOTIFY_SERIAL,
        );
        assert_eq!(
            certificate_verifier().verify(&headers, NOTIFY_BODY.as_bytes(), at(NOTIFY_TIMESTAMP)),
            Err(VerifyError::SignatureProbe)
        );
    }

    /// wechatpay-go `sha256withrsa_pubkey_verifier_test.go`: id `F5765756002FDD77`,
    /// message "source".
    #[test]
    fn go_sdk_pubkey_verifier_cases() {
        let key = WechatPayPublicKey::from_pem(GO_SDK_PUBLIC_PEM).expect("public key");
        let verifier = ResponseVerifier::with_public_key("F5765756002FDD77", key);
        let key = &verifier.keys["F5765756002FDD77"].key;
        assert!(key.verify_sha256(b"source", GO_SDK_SIGNATURE_OF_SOURCE));
        assert!(!key.verify_sha256(b"wrong source", GO_SDK_SIGNATURE_OF_SOURCE));
        assert!(!key.verify_sha256(b"", GO_SDK_SIGNATURE_OF_SOURCE));
        assert!(!key.verify_sha256(b"source", ""));
        assert!(!key.verify_sha256(b"source", "invalid base64 signature"));

        let headers =
            |serial: &str, signature: &str| signature_headers("1624523846", "N", signature, serial);
        assert_eq!(
            verifier.verify(&headers("", "x"), b"", at(1624523846)),
            Err(VerifyError::MissingHeader(HEADER_SERIAL))
        );
        assert_eq!(
            verifier.verify(&headers("invalid serial number", "x"), b"", at(1624523846)),
            Err(VerifyError::UnknownSerial(
                "invalid serial number".to_owned()
            ))
        );
        assert_eq!(
            verifier.verify(&headers("F5765756002FDD77", ""), b"", at(1624523846)),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        );
        assert_eq!(
            verifier.verify(
                &headers("F5765756002FDD77", "invalid base64 signature"),
                b"",
                at(1624523846)
            ),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn public_key_and_certificate_work_side_by_side() {
        let mut verifier = certificate_verifier();
        let sandbox = WechatPayPublicKey::from_pem(WECHATPAY_PUBLIC_PEM).expect("public key");
        verifier.add_public_key(SANDBOX_KEY_ID, sandbox);
        verifier
            .verify(
                &notify_headers(),
                NOTIFY_BODY.as_bytes(),
                at(NOTIFY_TIMESTAMP),
            )
            .expect("certificate-signed");
        let body = br#"{"prepay_id":"wx1"}"#;
        let now = 1_700_000_000;
        verifier
            .verify(&sandbox_signed_headers(body, now, "N1"), body, at(now))
            .expect("public-key-signed");

        // The right signature under the wrong serial is refused.
        let mut wrong_serial = sandbox_signed_headers(body, now, "N1");
        wrong_serial.insert(HEADER_SERIAL, HeaderValue::from_static(NOTIFY_SERIAL));
        assert_eq!(
            verifier.verify(&wrong_serial, body, at(now)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn expired_certificates_are_refused() {
        let verifier = certificate_verifier();
        let before_expiry = at(1_934_000_000); // 2031-04-15; it ends 2031-04-25
        let expired = at(1_950_000_000);
        let headers = signature_headers(&expired.timestamp().to_string(), "N", "x", NOTIFY_SERIAL);
        assert!(matches!(
            verifier.verify(&headers, b"", expired),
            Err(VerifyError::CertificateExpired { .. })
        ));
        let headers = signature_headers(
            &before_expiry.timestamp().to_string(),
            "N",
            "x",
            NOTIFY_SERIAL,
        );
        assert_eq!(
            verifier.verify(&headers, b"", before_expiry),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn empty_body_signs_as_an_empty_last_line() {
        assert_eq!(response_signature_message("1", "N", b""), b"1\nN\n\n");
        let verifier = sandbox_verifier();
        verifier
            .verify(&sandbox_signed_headers(b"", 5_000, "N"), b"", at(5_000))
            .expect("204-style empty body");
    }

    #[test]
    fn missing_and_unreadable_headers_are_named() {
        let verifier = sandbox_verifier();
        assert_eq!(
            verifier.verify(&HeaderMap::new(), b"", at(0)),
            Err(VerifyError::MissingHeader(HEADER_TIMESTAMP))
        );
        let headers = signature_headers("soon", "N", "x", SANDBOX_KEY_ID);
        assert_eq!(
            verifier.verify(&headers, b"", at(0)),
            Err(VerifyError::InvalidHeader(HEADER_TIMESTAMP))
        );
        assert!(!SignatureHeaders::any_present(&HeaderMap::new()));
        assert!(SignatureHeaders::any_present(&headers));
    }
}
