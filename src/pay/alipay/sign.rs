//! RSA2 as Alipay's OpenAPI gateway uses it: SHA256withRSA (PKCS#1 v1.5), base64.
//!
//! - Requests: every non-empty parameter but `sign` (so `sign_type` is signed), sorted
//!   by name, joined as `k=v&k=v` with the raw (not URL-encoded) values, signed with
//!   the app private key (应用私钥).
//! - Answers: the exact text of the `<method>_response` member (`.` → `_`), as it
//!   stands in the body, verified with Alipay's public key (支付宝公钥) against the
//!   `sign` beside it. Never a re-serialisation: Alipay signs its own bytes (it writes
//!   `\/` in URLs, for one), so anything but the original text fails.
//! - Notifications: every parameter but `sign` and `sign_type`, sorted, `k=v&…`,
//!   verified with Alipay's public key.
//!
//! Errors describe what is wrong with a key, never its content.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};
use sha2::Sha256;

use crate::pay::keys::{self, PrivateKeyError};

/// RSA2 means a 2048-bit key; Alipay's key tool makes nothing shorter.
pub const MIN_RSA_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no private key found: expected a PEM block `BEGIN PRIVATE KEY` (PKCS#8) or \
         `BEGIN RSA PRIVATE KEY` (PKCS#1), the app private key (应用私钥) from Alipay's key tool"
    )]
    NotAPrivateKey,
    #[error("the private key is encrypted; export it without a passphrase (PKCS#8)")]
    EncryptedPrivateKey,
    #[error("the {what} could not be read ({reason})")]
    Unreadable { what: &'static str, reason: String },
    #[error("the {what} is an RSA key of {bits} bits; RSA2 needs at least {MIN_RSA_BITS}")]
    TooShort { what: &'static str, bits: u32 },
    #[error("the private key does not produce signatures its own public half accepts")]
    Inconsistent,
}

/// The app private key (应用私钥): signs our requests. `Debug` shows only its size.
pub struct AppPrivateKey {
    signing: SigningKey<Sha256>,
    public: PublicKey,
    bits: u32,
}

impl AppPrivateKey {
    /// Reads a PKCS#8 (`BEGIN PRIVATE KEY`, what Alipay's key tool calls "PKCS8(JAVA
    /// 适用)") or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM. Refuses keys under 2048 bits
    /// and keys that fail a sign-and-verify self test, so that signing cannot fail later.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let private_key = decode_private_key(pem)?;
        let public = private_key.to_public_key();
        let bits = public.n().bit_width();
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort {
                what: "app private key",
                bits,
            });
        }
        let verifying = VerifyingKey::<Sha256>::new(public.clone());
        let signing = SigningKey::<Sha256>::new(private_key);
        let probe = b"campus-pay alipay key self test";
        let signature = signing
            .try_sign(probe)
            .map_err(|_| KeyError::Inconsistent)?;
        verifying
            .verify(probe, &signature)
            .map_err(|_| KeyError::Inconsistent)?;
        Ok(Self {
            signing,
            public,
            bits,
        })
    }

    /// `base64(SHA256withRSA(content))`, the `sign` of a request.
    pub fn sign_base64(&self, content: &[u8]) -> String {
        // The self test in `from_pem` proved this key signs; PKCS#1 v1.5 over a
        // SHA-256 digest has no other input-dependent failure.
        let signature: Signature = self.signing.sign(content);
        STANDARD.encode(signature.to_bytes())
    }

    /// Whether `key` is this key's own public half (the 应用公钥), a common mix-up
    /// with Alipay's public key (支付宝公钥).
    pub fn is_public_half(&self, key: &AlipayPublicKey) -> bool {
        key.verifying.as_ref() == &self.public
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl fmt::Debug for AppPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppPrivateKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// The shared loader ([`crate::pay::keys`]), its refusals worded as this provider's.
fn decode_private_key(pem: &str) -> Result<PrivateKey, KeyError> {
    keys::decode_private_key(pem).map_err(|error| match error {
        PrivateKeyError::NotAPrivateKey => KeyError::NotAPrivateKey,
        PrivateKeyError::Encrypted => KeyError::EncryptedPrivateKey,
        PrivateKeyError::Unreadable(reason) => KeyError::Unreadable {
            what: "app private key",
            reason,
        },
    })
}

/// Alipay's public key (支付宝公钥, SPKI PEM `BEGIN PUBLIC KEY`): verifies answers
/// and notifications.
#[derive(Clone)]
pub struct AlipayPublicKey {
    verifying: VerifyingKey<Sha256>,
    bits: u32,
}

impl AlipayPublicKey {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key =
            PublicKey::from_public_key_pem(pem.trim()).map_err(|error| KeyError::Unreadable {
                what: "Alipay public key",
                reason: error.to_string(),
            })?;
        let bits = key.n().bit_width();
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort {
                what: "Alipay public key",
                bits,
            });
        }
        Ok(Self {
            verifying: VerifyingKey::new(key),
            bits,
        })
    }

    /// Whether `signature_b64` is Alipay's RSA2 signature of `content`. Anything that
    /// is not base64 of a well-formed signature is simply `false`.
    pub fn verify_base64(&self, content: &[u8], signature_b64: &str) -> bool {
        let Ok(raw) = STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(raw.as_slice()) else {
            return false;
        };
        self.verifying.verify(content, &signature).is_ok()
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl fmt::Debug for AlipayPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlipayPublicKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// What a request's `sign` covers: the non-empty parameters but `sign`, sorted by
/// name (byte order), `k=v` joined with `&`, values as they are (not URL-encoded).
pub fn request_sign_content<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(name, value)| *name != "sign" && !name.is_empty() && !value.is_empty())
        .collect();
    pairs.sort_unstable();
    join_pairs(&pairs)
}

/// What a notification's `sign` covers: every parameter but `sign` and `sign_type`,
/// sorted by name, `k=v` joined with `&`, values URL-decoded once (as the form
/// parser gives them).
pub fn notification_sign_content<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(name, _)| *name != "sign" && *name != "sign_type")
        .collect();
    pairs.sort_unstable();
    join_pairs(&pairs)
}

fn join_pairs(pairs: &[(&str, &str)]) -> String {
    let mut content = String::new();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            content.push('&');
        }
        content.push_str(name);
        content.push('=');
        content.push_str(value);
    }
    content
}

/// The member name an answer to `method` comes under: `alipay.trade.query` →
/// `alipay_trade_query_response`.
pub fn response_member(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// The gateway's own errors (unknown method, …) come under this member instead.
pub const ERROR_RESPONSE_MEMBER: &str = "error_response";

/// Why an answer cannot be believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer is not a JSON object")]
    NotJson,
    #[error("the answer has no `{0}` (nor `error_response`)")]
    NoResponseMember(String),
    #[error("the answer carries no `sign`")]
    Unsigned,
    #[error("the answer's `sign` is not a string")]
    SignNotAString,
    #[error("the answer's signature does not verify with Alipay's public key")]
    BadSignature,
    #[error("the signed content is not a JSON object")]
    ContentNotAnObject,
}

/// An answer whose signature checked out: which member it came under, its exact
/// text, and that text parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedResponse<'a> {
    pub member: &'a str,
    pub raw: &'a str,
    pub content: serde_json::Map<String, serde_json::Value>,
}

/// Finds the `<method>_response` (or `error_response`) member at the top level of
/// `body`, verifies its exact text against the `sign` beside it, and parses that
/// same text (so what was verified is what is read).
///
/// Like Alipay's Java SDK, a text holding `\/` that fails is tried once more with
/// `/` (an old gateway signed the unescaped form); both spell the same JSON.
pub fn verify_response<'a>(
    body: &'a str,
    method: &str,
    key: &AlipayPublicKey,
) -> Result<VerifiedResponse<'a>, ResponseError> {
    let members = top_level_members(body).ok_or(ResponseError::NotJson)?;
    let expected = response_member(method);
    let (member, raw) = members
        .iter()
        .find(|(name, _)| *name == expected)
        .or_else(|| {
            members
                .iter()
                .find(|(name, _)| *name == ERROR_RESPONSE_MEMBER)
        })
        .copied()
        .ok_or(ResponseError::NoResponseMember(expected))?;
    let (_, sign_raw) = members
        .iter()
        .find(|(name, _)| *name == "sign")
        .ok_or(ResponseError::Unsigned)?;
    let sign: String = serde_json::from_str(sign_raw).map_err(|_| ResponseError::SignNotAString)?;
    let verified = key.verify_base64(raw.as_bytes(), &sign)
        || (raw.contains("\\/") && key.verify_base64(raw.replace("\\/", "/").as_bytes(), &sign));
    if !verified {
        return Err(ResponseError::BadSignature);
    }
    let content = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(ResponseError::ContentNotAnObject),
    };
    Ok(VerifiedResponse {
        member,
        raw,
        content,
    })
}

/// The members of a JSON object as `(raw name, exact value text)`, at the top level
/// only; `None` unless `text` is one well-formed object (values are checked only as
/// far as finding where they end: the caller parses what it uses).
pub fn top_level_members(text: &str) -> Option<Vec<(&str, &str)>> {
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_whitespace(bytes, at + 1);
    let mut members = Vec::new();
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            if bytes.get(at) != Some(&b'"') {
                return None;
            }
            let name_end = string_end(bytes, at)?;
            let name = text.get(at + 1..name_end - 1)?;
            at = skip_whitespace(bytes, name_end);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at = skip_whitespace(bytes, at + 1);
            let value_end = value_end(bytes, at)?;
            members.push((name, text.get(at..value_end)?));
            at = skip_whitespace(bytes, value_end);
            match bytes.get(at) {
                Some(b',') => at = skip_whitespace(bytes, at + 1),
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_whitespace(bytes, at) == bytes.len()).then_some(members)
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// `bytes[start]` is `"`; the index just past the closing quote.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// The index just past the JSON value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while let Some(byte) = bytes.get(at) {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SANDBOX_APP_PRIVATE_PEM: &str =
        include_str!("../../sandbox/keys/alipay_app_private_key.pem");
    pub(crate) const SANDBOX_APP_PUBLIC_PEM: &str =
        include_str!("../../sandbox/keys/alipay_app_public_key.pem");
    pub(crate) const SANDBOX_ALIPAY_PRIVATE_PEM: &str =
        include_str!("../../sandbox/keys/alipay_private_key.pem");
    pub(crate) const SANDBOX_ALIPAY_PUBLIC_PEM: &str =
        include_str!("../../sandbox/keys/alipay_public_key.pem");

    /// alipay-sdk-java-all `src/test/resources/fixture/privateKey.json`, entry
    /// `ProdCert` (the app key of app 2019091767145019), PEM armour added.
    const JAVA_SDK_PROD_CERT_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCO5ajRITPs5rqH
3bsMUQvx3gHGFtUtf2JqERBe9RFdm7eMXsXLNKd4TxhMTNSF7q+xxGX3NY7Kvu1N
pIUaDRFbGnQWTLFT07XN2oroh1jf4FIkm+LjP4ZwEUElLdTO5hF8aSUc9JFibElK
o3MdgaL7tNHBhWyGRl7/x/OkMwXz6UXfagE99K30omW9wo7YnlTE6utMJliHXfP9
a2aRsvhBFwRhpFzkKBkwYFF6H0CM8K1ooAEzbf/jYMetLjjTHiUy5NUWKPtRf1do
ljYLBAqoVOtvN4kOknI5lIazlVbodtEzkmhcdsXMzQtQsOaj/oRrSE52LhiEw1cU
oaNZPtOFAgMBAAECggEAYwQ4alE7jdiDQEogpnQydrKDQCPqK9Cs/Ro94c6m7dpM
4XN6U0h1EySbjaNfUD8Id4HDtfziqRKLlNV/dYHAmQRHlHwoFBILVE0vG9lNeDQU
N1HdceI+4cDTB1Qutf8t9qtVEC9X3n9yecmwpq2BpjCxeAtgG9r/UPXYmdrRMSVW
Gp/bpGjmbhm1EtEtCPKjkzSC0WdALvFosK1xnjHFwCcT+R4r2N7GKE0HyvjP0PQF
RuR4/7oA4MuLhgzLfxbeWS8sDci1PhW7PolSVb1jp0v7HQ85qtx3NCgezBqAc+Ot
pmM3ZN/DUz062IxJFs9Rhl77PiRyJegULSuOBoYtsQKBgQDFDThfBLzByYCV7Oca
5IUODyT7wiKBUhC6qBuNWmfEsGfGMw06d2twemFG98/KBDV8kcYGK5XL/6dpsPDE
ZFPV65vc7A9f2KnglaFyaPKduA8msRaxxLp5Oj/Nwuvnd0rTL2TPK0t8JH1oo8LD
dAvh449P89yzTqB3L8+ioq7XTwKBgQC5pSE0hUYFsx/9bgMHB4PuN4r1WJNhGy5J
5SQABmklnnUWiiCtt0rE23//tT7UICB4AqePt+Qa7zjEjV1DTIZccmPuX2yje9ay
ZbPXJLJT/tGawBlzuO5aLjbfkMDQy67nV8NE8rZ7c5aQLNsv3XA1fucwLauc2XJk
vwHJ88Jy6wKBgQC5hhvn4ibxcQ0emwBvom3fccTJP9uK1EAp7TKboF2IounhgplW
za6bJK3HynOZaOMO2JSPpKORgK8XZF8bGLaR9xU1KA/FltFCQL7TYBnlArFJJXwP
fQBwOLZvvLCsqfUJ5lpMbx/Pzu9AAMbTjMPPNpfsl9XYABQ2gw5DulVRIwKBgF0x
7I11KkXKOpD7HUH2H+ECuRuZr8Lb5kzqXzwz+60K8zSxet46WaqhloxD7JqI1kPo
8T1Qz45F8XWakesrC3h1ZH1SIjOgA5PjQnkKzwsjrQ3GygAyIlXbRWjOPj2TQuaY
RErknX8z863FFvPccmwonN6uzqwa7TZuPPOpD0CpAoGAG8HpnPrWT93skha2o9CT
2ISnptlAts6a2wcMGrKgM77zQiFpR/P/eHcJTyJdlp8ap6sEGIwQM430CqR41Za/
0L/uRkbGi2gjBcdz+2OlyvsWIhPAWAGqI4lYB7K/NWtzSBvI8Zdzw4brAgH9GrbI
Bqd/VV81KXf13kBnsRjBwA0=
-----END PRIVATE KEY-----";

    /// alipay-sdk-java-all `src/test/java/com/alipay/api/RSACheckTest.java`,
    /// `should_pass_rsa_check_when_sign_type_is_rsa2`: the RSA2 `sign` of these
    /// parameters (`rsaCheckV2` keeps `sign_type` in the content, as request signing does).
    const JAVA_SDK_RSA2_PARAMS: [(&str, &str); 3] = [
        ("method", "koubei.marketing.data.indicator.query"),
        ("app_id", "2019090366875133"),
        ("sign_type", "RSA2"),
    ];
    const JAVA_SDK_RSA2_SIGN: &str = "JzoDc8VxY1/w6yN9WdWV10aipS3YcRpK+jw4xfLybf90ZK9L3AHLUJbNLWVnHW3IuLoJbBeSGVxSbPBhe4ggPklcYUkPowgtlZ6YlthuQDtjF23h2obXuXkQRd+RPbDWvOA5AYQjsKH8uSHil5aRARewPIPhukl9Mn4HEovUccsBR/RirQFSGmGYiMM0zvhVSR7pXZDEhiADzvzAkvVVTI1/HbNqcoBU4ctSPAGsuDPO/mah1+IwGQAuPP6xoEPL+3zQ0wztQCwHT2o8aQmxFJ9a09q8ybRprHaNjCgTaLDeTWE0o1pllZIE8c7wnG3cOuj6quYjTcQyLm6P4M87Zw==";
    /// Same file, `should_pass_rsa_check_when_charset_is_utf8`: with a Chinese value.
    const JAVA_SDK_UTF8_PARAMS: [(&str, &str); 4] = [
        ("method", "koubei.marketing.data.indicator.query"),
        ("app_id", "2019090366875133"),
        ("extra", "中文测试"),
        ("sign_type", "RSA2"),
    ];
    const JAVA_SDK_UTF8_SIGN: &str = "KrRGUY3/2JX3KtlLgus8CbK0xuUIBDCpOdJkVzJDefez6HvlA8RA6uCVj2rrMd7DgVfarG5SROdSnkZbf8MLKHbVoFqi9w0QCvto9mc8n3ezfWejZECJVCZhbJ3OslB+4gij9+F70usrnCNEJZm02ntyNdVzcqMbgdRMB93BJIRC1jjmCotpXgXWrRdTb/SfhIAkoHqgGi2aCUHuLDInLGZCn8NeziGWMnFOic6/sE/nMpwriOmwLb2nyzD0fGiolwuuxlOGMcBHAb22J8XqchFHyCpbs2A/rWdJMjhUfqsErbtZQM93fi1xfL2pUa9RMWX0Q81Qk7iSEeHCR+NGyQ==";

    /// alipay-sdk-nodejs-all `test/fixtures/alipay-public-key.pem` (commit bf1c026),
    /// wrapped at 64: the Alipay (sandbox gateway) public key its response test uses.
    const NODE_SDK_ALIPAY_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk7LzhmMa2c4qQd4fqAqe
nfbuFoA7stPKvoS1LrZEsVnOOGUUjwoa1oU9xsSPjcOWhIerU/VAN4J95GIAXx59
ipcleIyfLn2FhHXPgLJpvo+b2jJFyn/1/DbeJDh+0yDVAOf50Z7HhI0mdUhFMkXl
T7BU0ZMtJf/TmISFEfhDU/w6qFd6D42L97byAkq0K6LroglSVF24GqJEa7hSeUIk
ZWj7RasykXrc2uVJ1+ejkXE0LyPxa2AHykMGbJLf5SiZvaNzUZgnKIR36mLOHpQ/
2JCXxhXZYUWHzy0kMH54JcUEeksFWBYLGvLjV1phbcUIc3Q76tIuqApY6E222OoZ
ZQIDAQAB
-----END PUBLIC KEY-----";

    /// alipay-sdk-nodejs-all `test/alipay.test.ts`, `checkResponseSign` "should work":
    /// an answer captured from Alipay's gateway ("从实测中获取").
    pub(crate) const NODE_SDK_RESPONSE_BODY: &str = r#"{"alipay_open_file_upload_response":{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"},"sign":"F+LDzpTNiavn7xVZPGuPCSSVRSmWzJGgtuji6tVELGEaqMaNj0jRKXUEr5nloZJBBmwEnddOyCjjepMmrTKTvoOqQ0Efxpr/R1iEeHTHVbb/Q8TTh6Up5gHJDkILdaWS2q1cWeQ6VT+HQY9P3WRXS7uhILHuDODIhpAyCu5KhWGt0rMCIG+Im6NODJP2oohtSCtmTFXg58HH587Z2y2bdbjzOxLvzD9IrU1imghXQ2S/Q+wMIvRk9on6cWnBLkrNvJKapA2ReNGWOwyuASvB9zDVzhMPbR+3mfRGkVDxsq5HYLjBKGskJMXHw0HuugZij6ScRuaLPODhmHwr/pJ9yw=="}"#;

    fn node_sdk_key() -> AlipayPublicKey {
        AlipayPublicKey::from_pem(NODE_SDK_ALIPAY_PUBLIC_PEM).expect("node SDK public key")
    }

    #[test]
    fn java_sdk_rsa2_vectors_are_reproduced() {
        let key = AppPrivateKey::from_pem(JAVA_SDK_PROD_CERT_PRIVATE_PEM).expect("Java SDK key");
        let content = request_sign_content(JAVA_SDK_RSA2_PARAMS);
        assert_eq!(
            content,
            "app_id=2019090366875133&method=koubei.marketing.data.indicator.query&sign_type=RSA2"
        );
        assert_eq!(key.sign_base64(content.as_bytes()), JAVA_SDK_RSA2_SIGN);

        let content = request_sign_content(JAVA_SDK_UTF8_PARAMS);
        assert_eq!(
            content,
            "app_id=2019090366875133&extra=中文测试&method=koubei.marketing.data.indicator.query&sign_type=RSA2"
        );
        assert_eq!(key.sign_base64(content.as_bytes()), JAVA_SDK_UTF8_SIGN);
    }

    #[test]
    fn pkcs1_form_of_the_java_sdk_key_signs_the_same() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = decode_private_key(JAVA_SDK_PROD_CERT_PRIVATE_PEM).expect("pkcs8");
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .expect("pkcs1 pem");
        let key = AppPrivateKey::from_pem(&pkcs1).expect("pkcs1 app key");
        let content = request_sign_content(JAVA_SDK_RSA2_PARAMS);
        assert_eq!(key.sign_base64(content.as_bytes()), JAVA_SDK_RSA2_SIGN);
    }

    #[test]
    fn request_content_skips_sign_and_empty_values_and_sorts_by_name() {
        let content = request_sign_content([
            ("timestamp", "2024-06-15 10:00:00"),
            ("sign", "xxx"),
            ("app_id", "2021000000000000"),
            ("notify_url", ""),
            ("biz_content", r#"{"out_trade_no":"A1"}"#),
            ("sign_type", "RSA2"),
        ]);
        assert_eq!(
            content,
            r#"app_id=2021000000000000&biz_content={"out_trade_no":"A1"}&sign_type=RSA2&timestamp=2024-06-15 10:00:00"#
        );
    }

    #[test]
    fn node_sdk_response_verifies_over_its_exact_text() {
        let verified = verify_response(
            NODE_SDK_RESPONSE_BODY,
            "alipay.open.file.upload",
            &node_sdk_key(),
        )
        .expect("captured answer verifies");
        assert_eq!(verified.member, "alipay_open_file_upload_response");
        assert_eq!(
            verified.raw,
            r#"{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}"#
        );
        assert_eq!(
            verified.content["file_id"],
            "CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"
        );
    }

    #[test]
    fn a_reserialised_or_edited_response_fails() {
        let key = node_sdk_key();
        // Same JSON value, other text: keys reordered (what a serialiser that sorts
        // keys would produce).
        let reordered = NODE_SDK_RESPONSE_BODY.replace(
            r#"{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}"#,
            r#"{"code":"10000","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr","msg":"Success"}"#,
        );
        assert_eq!(
            verify_response(&reordered, "alipay.open.file.upload", &key),
            Err(ResponseError::BadSignature)
        );
        // Same JSON value, whitespace added.
        let spaced = NODE_SDK_RESPONSE_BODY.replace(r#""code":"10000""#, r#""code": "10000""#);
        assert_eq!(
            verify_response(&spaced, "alipay.open.file.upload", &key),
            Err(ResponseError::BadSignature)
        );
        // A value edited.
        let edited = NODE_SDK_RESPONSE_BODY.replace("CAxAToWB1Js", "CAxAToWB1Jt");
        assert_eq!(
            verify_response(&edited, "alipay.open.file.upload", &key),
            Err(ResponseError::BadSignature)
        );
        // Another key entirely.
        let other = AlipayPublicKey::from_pem(SANDBOX_ALIPAY_PUBLIC_PEM).expect("sandbox key");
        assert_eq!(
            verify_response(NODE_SDK_RESPONSE_BODY, "alipay.open.file.upload", &other),
            Err(ResponseError::BadSignature)
        );
    }

    #[test]
    fn whitespace_around_members_does_not_change_the_signed_text() {
        // The Node SDK's "include \r\n\s" case: formatting between members is not
        // part of what is signed.
        let body = NODE_SDK_RESPONSE_BODY
            .replacen(
                r#"{"alipay_open_file_upload_response":"#,
                "{\"alipay_open_file_upload_response\"\n  :\n  ",
                1,
            )
            .replacen(r#"},"sign":"#, "},\n\n   \"sign\"  :  ", 1);
        assert!(verify_response(&body, "alipay.open.file.upload", &node_sdk_key()).is_ok());
    }

    #[test]
    fn answers_without_the_member_or_sign_are_refused() {
        let key = node_sdk_key();
        assert_eq!(
            verify_response(NODE_SDK_RESPONSE_BODY, "alipay.trade.query", &key),
            Err(ResponseError::NoResponseMember(
                "alipay_trade_query_response".into()
            ))
        );
        let unsigned = r#"{"alipay_trade_query_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}"#;
        assert_eq!(
            verify_response(unsigned, "alipay.trade.query", &key),
            Err(ResponseError::Unsigned)
        );
        assert_eq!(
            verify_response("<html>502</html>", "alipay.trade.query", &key),
            Err(ResponseError::NotJson)
        );
        assert_eq!(
            verify_response(
                r#"{"alipay_trade_query_response":{},"sign":1}"#,
                "alipay.trade.query",
                &key
            ),
            Err(ResponseError::SignNotAString)
        );
    }

    #[test]
    fn a_sign_member_inside_the_content_is_not_the_signature() {
        // Node SDK's "include sign key in data": the content's own "sign" is content.
        let app = AppPrivateKey::from_pem(SANDBOX_ALIPAY_PRIVATE_PEM).expect("sandbox key");
        let raw = r#"{"code":"10000","sign":"xxx","msg":"Success"}"#;
        let body = format!(
            r#"{{"alipay_trade_close_response":{raw},"sign":"{}"}}"#,
            app.sign_base64(raw.as_bytes())
        );
        let key = AlipayPublicKey::from_pem(SANDBOX_ALIPAY_PUBLIC_PEM).expect("public");
        let verified = verify_response(&body, "alipay.trade.close", &key).expect("verifies");
        assert_eq!(verified.raw, raw);
    }

    #[test]
    fn escaped_slashes_are_signed_as_written() {
        let alipay = AppPrivateKey::from_pem(SANDBOX_ALIPAY_PRIVATE_PEM).expect("sandbox key");
        let key = AlipayPublicKey::from_pem(SANDBOX_ALIPAY_PUBLIC_PEM).expect("public");
        let raw =
            r#"{"code":"10000","msg":"Success","qr_code":"https:\/\/qr.alipay.com\/bax01234"}"#;
        let body = format!(
            r#"{{"alipay_trade_precreate_response":{raw},"sign":"{}"}}"#,
            alipay.sign_base64(raw.as_bytes())
        );
        let verified = verify_response(&body, "alipay.trade.precreate", &key).expect("verifies");
        assert_eq!(
            verified.content["qr_code"],
            "https://qr.alipay.com/bax01234"
        );
        // The older gateway's form: signed unescaped, sent escaped.
        let body = format!(
            r#"{{"alipay_trade_precreate_response":{raw},"sign":"{}"}}"#,
            alipay.sign_base64(raw.replace("\\/", "/").as_bytes())
        );
        assert!(verify_response(&body, "alipay.trade.precreate", &key).is_ok());
    }

    #[test]
    fn top_level_members_are_exact_slices() {
        let text = r#" { "a" : {"x":[1,{"y":"}"}]} , "b":"q\"}" ,"c":-1.5e3,"d":null } "#;
        let members = top_level_members(text).expect("object");
        assert_eq!(
            members,
            vec![
                ("a", r#"{"x":[1,{"y":"}"}]}"#),
                ("b", r#""q\"}""#),
                ("c", "-1.5e3"),
                ("d", "null"),
            ]
        );
        assert_eq!(top_level_members("{}"), Some(vec![]));
        assert_eq!(top_level_members(r#"{"a":1} trailing"#), None);
        assert_eq!(top_level_members(r#"{"a":{"b":1}"#), None);
        assert_eq!(top_level_members(r#"["a"]"#), None);
        assert_eq!(top_level_members(r#"{"a":"unterminated}"#), None);
    }

    #[test]
    fn sandbox_keys_round_trip_and_are_told_apart() {
        let app = AppPrivateKey::from_pem(SANDBOX_APP_PRIVATE_PEM).expect("app key");
        let app_public = AlipayPublicKey::from_pem(SANDBOX_APP_PUBLIC_PEM).expect("app public");
        let alipay = AppPrivateKey::from_pem(SANDBOX_ALIPAY_PRIVATE_PEM).expect("alipay key");
        let alipay_public = AlipayPublicKey::from_pem(SANDBOX_ALIPAY_PUBLIC_PEM).expect("public");
        let content = "out_trade_no=CP1&subject=武威职业学院-学费";
        let by_app = app.sign_base64(content.as_bytes());
        assert!(app_public.verify_base64(content.as_bytes(), &by_app));
        assert!(!alipay_public.verify_base64(content.as_bytes(), &by_app));
        let by_alipay = alipay.sign_base64(content.as_bytes());
        assert!(alipay_public.verify_base64(content.as_bytes(), &by_alipay));
        assert!(!alipay_public.verify_base64(b"out_trade_no=CP2", &by_alipay));
        assert!(!alipay_public.verify_base64(content.as_bytes(), "not base64!"));
        assert!(!alipay_public.verify_base64(content.as_bytes(), ""));
        assert!(app.is_public_half(&app_public));
        assert!(!app.is_public_half(&alipay_public));
        assert_eq!(app.bits(), 2048);
    }

    #[test]
    fn wrong_key_kinds_and_short_keys_are_named() {
        assert!(matches!(
            AppPrivateKey::from_pem(SANDBOX_ALIPAY_PUBLIC_PEM),
            Err(KeyError::NotAPrivateKey)
        ));
        assert!(matches!(
            AppPrivateKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"),
            Err(KeyError::EncryptedPrivateKey)
        ));
        assert!(matches!(
            AlipayPublicKey::from_pem(SANDBOX_APP_PRIVATE_PEM),
            Err(KeyError::Unreadable { .. })
        ));
        // The public half of the 1024-bit key in `pay::wechatpay::keys` tests.
        let short = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDUjJ793iN9plLomkrcMXBvLEVL
PbCLingarIqPybofI7PMmDg8VxzgT07+LVp+fFToSq8HC/3eSJ0v3sUhNWFzE3Rx
vDZ4k67b4O4xVYiN/GynHvYIeAJ4H5kJZB/lk0WOFtkax12/rOWoooSaMEmcamiw
oCAQeHYzSNBW6SbrTwIDAQAB
-----END PUBLIC KEY-----";
        match AlipayPublicKey::from_pem(short) {
            Err(KeyError::TooShort { bits, .. }) => assert_eq!(bits, 1024),
            other => panic!("expected TooShort, got {other:?}"),
        }
        let error = AppPrivateKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----",
        )
        .expect_err("garbage");
        assert!(!error.to_string().contains("not base64!"), "{error}");
        let key = AppPrivateKey::from_pem(SANDBOX_APP_PRIVATE_PEM).expect("app key");
        assert_eq!(format!("{key:?}"), "AppPrivateKey { bits: 2048, .. }");
    }
}
