//! The TrustPay V3.0.0 JSON wire format: the signed envelope, GB18030, the bank's
//! certificate, and money in yuan. Every choice that public material does not settle
//! is one named constant or function here; docs/abc-trustpay.md lists them.

use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::PublicKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde_json::Value;
use sha1::Sha1;
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::domain::money::Fen;
use crate::pay::keys::decode_private_key;

pub const VERSION: &str = "V3.0.0";
pub const FORMAT: &str = "JSON";
pub const EC_MERCHANT_TYPE: &str = "EBUS";
pub const SIGNATURE_ALGORITHM: &str = "SHA1withRSA";
/// ISO 4217 numeric for CNY, as every public example sends it.
pub const CURRENCY_CODE: &str = "156";
/// The only answer code that means success.
pub const RETURN_CODE_OK: &str = "0000";

/// The text is encoded, signed and posted in GB18030. Guess (see the docs): the
/// bank's demos are configured for GB2312/GBK, of which GB18030 is the superset; for
/// ASCII-only messages every choice gives the same bytes.
pub fn encode_text(text: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(text).0.into_owned()
}

/// Strict GB18030 decoding: malformed bytes are refused, never replaced, so that a
/// decoded text encodes back to exactly the bytes the bank signed.
pub fn decode_text(bytes: &[u8]) -> Option<String> {
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Key(String),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// The merchant's private key; signs `Message` texts.
#[derive(Clone)]
pub struct MerchantSigner {
    key: SigningKey<Sha1>,
}

impl MerchantSigner {
    /// A PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM key.
    pub fn from_pem(pem: &str) -> Result<Self, WireError> {
        let key = decode_private_key(pem)
            .map_err(|error| WireError::Key(format!("not an RSA private key PEM: {error}")))?;
        Ok(Self {
            key: SigningKey::<Sha1>::new(key),
        })
    }

    /// Base64 of SHA1withRSA (PKCS#1 v1.5) over the message's GB18030 bytes.
    pub fn sign(&self, message_text: &str) -> String {
        let signature: Signature = self.key.sign(&encode_text(message_text));
        STANDARD.encode(signature.to_bytes())
    }
}

/// The bank's (TrustPay) certificate; verifies answers and notifications.
#[derive(Clone)]
pub struct TrustPayVerifier {
    key: VerifyingKey<Sha1>,
}

impl TrustPayVerifier {
    /// The certificate as PEM or as DER (`TrustPay.cer` is distributed as DER).
    pub fn from_certificate(bytes: &[u8]) -> Result<Self, WireError> {
        let certificate = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            Certificate::from_pem(bytes.trim_ascii())
        } else {
            Certificate::from_der(bytes)
        }
        .map_err(|error| WireError::Key(format!("not an X.509 certificate: {error}")))?;
        let spki = certificate
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|error| WireError::Key(error.to_string()))?;
        let key = PublicKey::from_public_key_der(&spki)
            .map_err(|error| WireError::Key(format!("not an RSA certificate: {error}")))?;
        Ok(Self {
            key: VerifyingKey::<Sha1>::new(key),
        })
    }

    pub fn verify(&self, message_text: &str, signature_b64: &str) -> bool {
        let Ok(raw) = STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(raw.as_slice()) else {
            return false;
        };
        self.key
            .verify(&encode_text(message_text), &signature)
            .is_ok()
    }
}

/// The request envelope, as the bank's PHP SDK composes it:
/// `{"Message":<message>,"Signature-Algorithm":"SHA1withRSA","Signature":"<b64>"}`,
/// where `<message>` is byte for byte the text that was signed. Returns the body in
/// GB18030.
pub fn seal(message: &Value, signer: &MerchantSigner) -> Vec<u8> {
    let text = message.to_string();
    let signature = signer.sign(&text);
    encode_text(&format!(
        "{{\"Message\":{text},\"Signature-Algorithm\":\"{SIGNATURE_ALGORITHM}\",\"Signature\":\"{signature}\"}}"
    ))
}

/// A signed envelope as received: the exact text of its `Message` and the signature.
#[derive(Debug, Clone)]
pub struct Opened {
    pub message_text: String,
    pub message: Value,
    pub algorithm: Option<String>,
    pub signature: String,
}

impl Opened {
    /// Checks the signature over the exact `Message` text as it appeared.
    pub fn verified_by(&self, verifier: &TrustPayVerifier) -> bool {
        self.algorithm
            .as_deref()
            .is_none_or(|algorithm| algorithm == SIGNATURE_ALGORITHM)
            && verifier.verify(&self.message_text, &self.signature)
    }

    /// A field of the answer: in `TrxResponse` when the bank nests it there, else in
    /// `Message` itself (both shapes occur in published answers).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.message
            .get("TrxResponse")
            .and_then(|inner| inner.get(name))
            .or_else(|| self.message.get(name))
            .and_then(Value::as_str)
    }

    pub fn merchant_id(&self) -> Option<&str> {
        self.message
            .get("Merchant")
            .and_then(|merchant| merchant.get("MerchantID"))
            .and_then(Value::as_str)
    }
}

/// Opens `{"MSG":{"Message":…,"Signature-Algorithm":…,"Signature":…}}` (answers) or
/// the same without the `MSG` wrapper.
pub fn open(text: &str) -> Result<Opened, WireError> {
    let malformed = |what: &str| WireError::Malformed(what.to_owned());
    let text = text.trim_start_matches('\u{feff}').trim();
    let outer = members(text).ok_or_else(|| malformed("not a JSON object"))?;
    let envelope = match outer.iter().find(|(key, _)| key == "MSG") {
        Some((_, range)) => &text[range.clone()],
        None => text,
    };
    let inner = members(envelope).ok_or_else(|| malformed("MSG is not a JSON object"))?;
    let span = |name: &str| {
        inner
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, range)| &envelope[range.clone()])
    };
    let message_text = span("Message").ok_or_else(|| malformed("no Message"))?;
    let message: Value = serde_json::from_str(message_text)
        .map_err(|error| WireError::Malformed(error.to_string()))?;
    if !message.is_object() {
        return Err(malformed("Message is not an object"));
    }
    let string = |name: &str| -> Result<Option<String>, WireError> {
        match span(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw)
                .map(Some)
                .map_err(|_| WireError::Malformed(format!("{name} is not a string"))),
        }
    };
    let signature = string("Signature")?.ok_or_else(|| malformed("no Signature"))?;
    Ok(Opened {
        message_text: message_text.to_owned(),
        message,
        algorithm: string("Signature-Algorithm")?,
        signature,
    })
}

/// The members of a JSON object with the byte range of each value's text, or `None`
/// when `text` is not one well-formed object.
fn members(text: &str) -> Option<Vec<(String, Range<usize>)>> {
    let bytes = text.as_bytes();
    let mut at = skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(bytes, at + 1);
    let mut out = Vec::new();
    if bytes.get(at) == Some(&b'}') {
        return (skip_ws(bytes, at + 1) == bytes.len()).then_some(out);
    }
    loop {
        let key_end = skip_string(bytes, at)?;
        let key: String = serde_json::from_str(&text[at..key_end]).ok()?;
        at = skip_ws(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_ws(bytes, at + 1);
        let end = skip_value(bytes, start)?;
        out.push((key, start..end));
        at = skip_ws(bytes, end);
        match bytes.get(at) {
            Some(b',') => at = skip_ws(bytes, at + 1),
            Some(b'}') => return (skip_ws(bytes, at + 1) == bytes.len()).then_some(out),
            _ => return None,
        }
    }
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        at += 1;
    }
    at
}

/// The end of the string that starts at `at` (just past its closing quote).
fn skip_string(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while let Some(byte) = bytes.get(i) {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

/// Fen to the bank's yuan with two decimals: 120050 → "1200.50".
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

/// The bank's yuan to fen, read by the one wire parser ([`Fen::parse_wire_yuan`]):
/// "1200.50", "1200.5" and "1200" are read; anything else (signs, exponents, three
/// decimals, spaces, over 100 000 000 yuan) is refused.
pub fn fen(yuan: &str) -> Option<i64> {
    Fen::parse_wire_yuan(yuan).ok().map(|fen| fen.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MERCHANT_KEY: &str = include_str!("../../sandbox/keys/abc_merchant_private_key.pem");
    const MERCHANT_CERT: &str = include_str!("../../sandbox/keys/abc_merchant_cert.pem");

    #[test]
    fn money_converts_at_the_edge() {
        assert_eq!(yuan(120050), "1200.50");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(0), "0.00");
        assert_eq!(fen("1200.50"), Some(120050));
        assert_eq!(fen("1200.5"), Some(120050));
        assert_eq!(fen("0.01"), Some(1));
        assert_eq!(fen("12"), Some(1200));
        for bad in ["", "1.", ".5", "1.001", "-1.00", "1e3", " 1.00", "1,00"] {
            assert_eq!(fen(bad), None, "{bad}");
        }
    }

    #[test]
    fn gb18030_signing_round_trips_with_chinese_text() {
        let signer = MerchantSigner::from_pem(MERCHANT_KEY).unwrap();
        let verifier = TrustPayVerifier::from_certificate(MERCHANT_CERT.as_bytes()).unwrap();
        let message = json!({
            "Version": VERSION, "Format": FORMAT,
            "Merchant": {"ECMerchantType": EC_MERCHANT_TYPE, "MerchantID": "103881999999999"},
            "TrxRequest": {"TrxType": "PayReq", "Order": {"OrderDesc": "2026学年学费（计算机系）𠀀",
                "OrderItems": [{"ProductName": "学费\"引号\"\\斜杠"}]}}
        });
        let body = seal(&message, &signer);
        // The body is GB18030, not UTF-8: 学 is D1 A7 there.
        assert!(body.windows(2).any(|w| w == [0xD1, 0xA7]));
        let text = decode_text(&body).unwrap();
        let opened = open(&text).unwrap();
        assert_eq!(opened.message, message);
        assert_eq!(opened.message_text, message.to_string());
        assert!(opened.verified_by(&verifier));
        // The signature is over GB18030 bytes: over UTF-8 bytes it would not verify.
        let utf8_sig = {
            let key = decode_private_key(MERCHANT_KEY).unwrap();
            let signature: Signature =
                SigningKey::<Sha1>::new(key).sign(opened.message_text.as_bytes());
            STANDARD.encode(signature.to_bytes())
        };
        assert!(!verifier.verify(&opened.message_text, &utf8_sig));
        // One changed character anywhere in the message breaks it.
        let tampered = text.replace("计算机系", "计算机糸");
        assert!(!open(&tampered).unwrap().verified_by(&verifier));
    }

    #[test]
    fn the_exact_message_text_is_verified_whatever_its_spacing() {
        // Answers are verified over the Message text as it appears, not re-serialized.
        let signer = MerchantSigner::from_pem(MERCHANT_KEY).unwrap();
        let verifier = TrustPayVerifier::from_certificate(MERCHANT_CERT.as_bytes()).unwrap();
        let message_text = "{ \"Version\" : \"V3.0.0\",\"ErrorMessage\":\"交易成功\", \"N\": [1, {\"a\": \"}\"}] }";
        let signature = signer.sign(message_text);
        let body = format!(
            "{{\"MSG\" : {{\"Message\":{message_text} , \"Signature-Algorithm\":\"SHA1withRSA\",\"Signature\":\"{signature}\"}}}}\r\n"
        );
        let opened = open(&body).unwrap();
        assert_eq!(opened.message_text, message_text);
        assert!(opened.verified_by(&verifier));
        assert_eq!(opened.field("ErrorMessage"), Some("交易成功"));
    }

    #[test]
    fn answers_in_both_published_shapes_are_read() {
        // The PayReq answer published with the Go port (flat) and the scan-order answer
        // published in a .NET integration's report (nested TrxResponse).
        let flat = r#"{"MSG":{"Message":{"Version":"V3.0.0","Format":"JSON","Merchant":{"ECMerchantType":"EBUS","MerchantID":"103882200000958"},"ReturnCode":"0000","ErrorMessage":"交易成功","TrxType":"PayReq","OrderNo":"ON2021456440301001","PaymentURL":"https://pay.test.abchina.com/perbankold/PaymentModeNewAct.ebf?TOKEN=16124277721648016933","OrderAmount":"1.00","OneQRForAll":"http://mpay.test.abchina.com/mpay/mobileBank/zh_CN/EBusinessModule/BarcodeH5Act.aspx?token=16124277721648016933"},"Signature-Algorithm":"SHA1withRSA","Signature":"J1vXDnsTgbgmnpS/yLzu2m94A82mmva+P+2oGX52gqoV7CS2QWdLBqXf7uz/5P6Obq4ow0H7rraT1YA3xNd1FQbuOZCrwEx61yaEJbMludbKjhtm/B8dXcmPqnW+DzOzcuGr2yU8vCMt8DEH0rouei6q3AugOatV6NCf2bTTMyM="}}"#;
        let opened = open(flat).unwrap();
        assert_eq!(opened.field("ReturnCode"), Some(RETURN_CODE_OK));
        assert_eq!(opened.field("OrderAmount").and_then(fen), Some(100));
        assert!(opened.field("PaymentURL").unwrap().contains("TOKEN="));
        assert_eq!(opened.merchant_id(), Some("103882200000958"));
        assert!(opened.message_text.starts_with("{\"Version\":\"V3.0.0\""));
        assert!(
            opened
                .message_text
                .ends_with("token=16124277721648016933\"}")
        );

        let nested = r#"{"MSG":{"Message":{"Version":"V3.0.0","Format":"JSON","Common":{"Channel":"EBUS"},"Merchant":{"ECMerchantType":"EBUS","MerchantID":""},"TrxResponse":{"ReturnCode":"EUNKWN","ErrorMessage":"交易结果未知，请进行查证明确交易结果，No message available"}},"Signature-Algorithm":"SHA1withRSA","Signature":"AAAA"}}"#;
        let opened = open(nested).unwrap();
        assert_eq!(opened.field("ReturnCode"), Some("EUNKWN"));
        assert_eq!(opened.signature, "AAAA");
    }

    #[test]
    fn the_request_shape_matches_the_sdk() {
        // The bank's PHP SDK composes the message as
        // {"Version":"V3.0.0","Format":"JSON","Merchant":{"ECMerchantType":"EBUS","MerchantID":…},"TrxRequest":…}
        let signer = MerchantSigner::from_pem(MERCHANT_KEY).unwrap();
        let message = json!({"Version": VERSION, "Format": FORMAT,
            "Merchant": {"ECMerchantType": EC_MERCHANT_TYPE, "MerchantID": "1"},
            "TrxRequest": {"TrxType": "Query"}});
        let body = String::from_utf8(seal(&message, &signer)).unwrap();
        assert!(body.starts_with(
            "{\"Message\":{\"Version\":\"V3.0.0\",\"Format\":\"JSON\",\"Merchant\":{\"ECMerchantType\":\"EBUS\",\"MerchantID\":\"1\"},\"TrxRequest\":{\"TrxType\":\"Query\"}},\"Signature-Algorithm\":\"SHA1withRSA\",\"Signature\":\""
        ));
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        for bad in [
            "",
            "[]",
            "{\"Message\":{}}",
            "{\"Message\":{},\"Signature\":1}",
            "{\"Message\":{} x",
            "{\"Message\":\"s\",\"Signature\":\"a\"}",
        ] {
            assert!(open(bad).is_err(), "{bad}");
        }
        assert!(decode_text(&[0x81]).is_none());
    }
}
