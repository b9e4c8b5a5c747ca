//! The RSA keys of WeChat Pay v3: the merchant's private key, which signs our
//! requests and the JSAPI `paySign`, and WeChat Pay's public keys, which sign its
//! responses and notifications. Those come either as a "WeChat Pay public key"
//! (微信支付公钥, SPKI PEM, id `PUB_KEY_ID_…`) or inside a platform certificate
//! (平台证书, X.509 PEM, id = the certificate's serial number).
//!
//! Errors describe what is wrong with a key, never its content.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey};
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};
use sha2::Sha256;
use x509_cert::Certificate;
use x509_cert::der::{DecodePem, Encode};

use crate::pay::keys::{self, PrivateKeyError};

/// WeChat Pay's scheme is `SHA256-RSA2048`; shorter keys are refused.
pub const MIN_RSA_BITS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no private key found: expected a PEM block `BEGIN PRIVATE KEY` (PKCS#8) or \
         `BEGIN RSA PRIVATE KEY` (PKCS#1), like apiclient_key.pem"
    )]
    NotAPrivateKey,
    #[error("the private key is encrypted; export it without a passphrase (PKCS#8)")]
    EncryptedPrivateKey,
    #[error("the {what} could not be read ({reason})")]
    Unreadable { what: &'static str, reason: String },
    #[error("the {what} is an RSA key of {bits} bits; WeChat Pay needs at least {MIN_RSA_BITS}")]
    TooShort { what: &'static str, bits: u32 },
    #[error("the private key does not produce signatures its own public half accepts")]
    Inconsistent,
}

/// The merchant API private key (`apiclient_key.pem`). Signs with RSA-SHA256,
/// PKCS#1 v1.5; `Debug` shows only its size.
pub struct MerchantKey {
    /// aws-lc's key: signing is its hot path (two signatures per payment).
    signing: aws_lc_rs::signature::RsaKeyPair,
    bits: u32,
}

impl MerchantKey {
    /// Reads a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
    /// Refuses keys under 2048 bits and keys that fail a sign-and-verify self test,
    /// so that signing later cannot fail.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let private_key = decode_private_key(pem)?;
        let bits = modulus_bits(private_key.as_public_key());
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort {
                what: "merchant private key",
                bits,
            });
        }
        let verifying = VerifyingKey::<Sha256>::new(private_key.to_public_key());
        let der = private_key
            .to_pkcs8_der()
            .map_err(|_| KeyError::Inconsistent)?;
        let signing = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|_| KeyError::Inconsistent)?;
        let key = Self { signing, bits };
        // Signed by aws-lc, verified by the rsa crate: the key and both code paths agree.
        let probe = b"campus-pay key self test";
        let signature = key.try_sign(probe).ok_or(KeyError::Inconsistent)?;
        let signature =
            Signature::try_from(signature.as_slice()).map_err(|_| KeyError::Inconsistent)?;
        verifying
            .verify(probe, &signature)
            .map_err(|_| KeyError::Inconsistent)?;
        Ok(key)
    }

    /// `Base64(RSA-SHA256-PKCS1v15(message))`, the form every WeChat Pay v3
    /// signature takes.
    pub fn sign_sha256_base64(&self, message: &[u8]) -> String {
        // The self test in `from_pem` proved this key signs; PKCS#1 v1.5 over a
        // SHA-256 digest has no other input-dependent failure.
        STANDARD.encode(self.try_sign(message).unwrap_or_default())
    }

    fn try_sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let mut signature = vec![0; self.signing.public_modulus_len()];
        self.signing
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .ok()?;
        Some(signature)
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl fmt::Debug for MerchantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantKey")
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
            what: "merchant private key",
            reason,
        },
    })
}

fn modulus_bits(key: &PublicKey) -> u32 {
    key.n().bit_width()
}

/// A key WeChat Pay signs with: the WeChat Pay public key or a platform
/// certificate's key. Verifies RSA-SHA256, PKCS#1 v1.5 signatures.
#[derive(Clone)]
pub struct WechatPayPublicKey {
    verifying: VerifyingKey<Sha256>,
    bits: u32,
}

impl WechatPayPublicKey {
    /// Reads an SPKI PEM (`BEGIN PUBLIC KEY`), the form the merchant console
    /// offers for download as `pub_key.pem`.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = PublicKey::from_public_key_pem(pem).map_err(|error| KeyError::Unreadable {
            what: "WeChat Pay public key",
            reason: error.to_string(),
        })?;
        Self::from_rsa(key, "WeChat Pay public key")
    }

    fn from_rsa(key: PublicKey, what: &'static str) -> Result<Self, KeyError> {
        let bits = modulus_bits(&key);
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort { what, bits });
        }
        Ok(Self {
            verifying: VerifyingKey::new(key),
            bits,
        })
    }

    /// Whether `signature_b64` is this key's RSA-SHA256 signature of `message`.
    /// Anything that is not base64 of a well-formed signature is simply `false`.
    pub fn verify_sha256(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(raw) = STANDARD.decode(signature_b64) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(raw.as_slice()) else {
            return false;
        };
        self.verifying.verify(message, &signature).is_ok()
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }
}

impl fmt::Debug for WechatPayPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatPayPublicKey")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// A WeChat Pay platform certificate (`/v3/certificates`, or saved by hand): its
/// serial number (upper-case hex, as `Wechatpay-Serial` carries it), its expiry,
/// and its public key. The certificate chain is not checked: like the public key,
/// the certificate is trusted because the operator configured it.
#[derive(Debug, Clone)]
pub struct PlatformCertificate {
    pub serial: String,
    pub not_after: DateTime<Utc>,
    pub key: WechatPayPublicKey,
}

impl PlatformCertificate {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let unreadable = |reason: String| KeyError::Unreadable {
            what: "platform certificate",
            reason,
        };
        let certificate =
            Certificate::from_pem(pem.trim()).map_err(|error| unreadable(error.to_string()))?;
        let tbs = certificate.tbs_certificate();
        let spki_der = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|error| unreadable(error.to_string()))?;
        let key = PublicKey::from_public_key_der(&spki_der)
            .map_err(|error| unreadable(format!("not an RSA key: {error}")))?;
        let not_after = DateTime::<Utc>::from(tbs.validity().not_after.to_system_time());
        Ok(Self {
            serial: serial_hex(tbs.serial_number().as_bytes()),
            not_after,
            key: WechatPayPublicKey::from_rsa(key, "platform certificate key")?,
        })
    }
}

/// DER integers carry a leading zero byte when the top bit is set; the serial
/// WeChat Pay prints has none.
fn serial_hex(der_bytes: &[u8]) -> String {
    let significant = match der_bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    hex::encode_upper(significant)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MERCHANT_PRIVATE_PEM: &str =
        include_str!("../../sandbox/keys/merchant_private_key.pem");
    pub(crate) const MERCHANT_PUBLIC_PEM: &str =
        include_str!("../../sandbox/keys/merchant_public_key.pem");
    pub(crate) const WECHATPAY_PRIVATE_PEM: &str =
        include_str!("../../sandbox/keys/wechatpay_private_key.pem");
    pub(crate) const WECHATPAY_PUBLIC_PEM: &str =
        include_str!("../../sandbox/keys/wechatpay_public_key.pem");

    /// wechatpay-go `utils/sign_test.go`: the PKCS#8 "TESTING KEY", label restored.
    pub(crate) const GO_SDK_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDZUJN33V+dSfvd
fL0Mu+39XrZNXFFMQSy1V15FpncHeV47SmV0TzTqZc7hHB0ddqAdDi8Z5k3TKqb7
6sOwYr5TcAfuR6PIPaleyE0/0KrljBum2Isa2Nyq7Dgc3ElBQ6YN4l/a+DpvKaz1
FSKmKrhLNskqokWVSlu4g8OlKlbPXQ9ibII14MZRQrrkTmHYHzfi7GXXM0thAKuR
0HNvyhTHBh4/lrYM3GaMvmWwkwvsMavnOex6+eioZHBOb1/EIZ/LzC6zuHArPpyW
3daGaZ1rtQB1vVzTyERAVVFsXXgBHvfFud3w3ShsJYk8JvMwK2RpJ5/gV0QSARcm
LDRUAlPzAgMBAAECggEBAMc7rDeUaXiWv6bMGbZ3BTXpg1FhdddnWUnYE8HfX/km
OFI7XtBHXcgYFpcjYz4D5787pcsk7ezPidAj58zqenuclmjKnUmT3pfbI5eCA2v4
C9HnbYDrmUPK1ZcADtka4D6ScDccpNYNa1g2TFHzkIrEa6H+q7S3O2fqxY/DRVtN
0JIXalBb8daaqL5QVzSmM2BMVnHy+YITJWIkP2a3pKs9C0W65JGDsnG0wVrHinHF
+cnhFZIbaPEI//DAFMc9NkrWOKVRTEgcCUxCFaHOZVNxDWZD7A2ZfJB2rK6eg//y
gEiFDR2h6mTaDowMB4YF2n2dsIO4/dCG8vPHI20jn4ECgYEA/ZGu6lEMlO0XZnam
AZGtiNgLcCfM/C2ZERZE7QTRPZH1WdK92Al9ndldsswFw4baJrJLCmghjF/iG4zi
hhBvLnOLksnZUfjdumxoHDWXo2QBWbI5QsWIE7AuTiWgWj1I7X4fCXSQf6i+M/y2
6TogQ7d0ANpZFyOkTNMn/tiJvLECgYEA22XqlamG/yfAGWery5KNH2DGlTIyd6xJ
WtJ9j3jU99lZ0bCQ5xhiBbU9ImxCi3zgTsoqLWgA/p00HhNFNoUcTl9ofc0G3zwT
D1y0ZzcnVKxGJdZ6ohW52V0hJStAigtjYAsUgjm7//FH7PiQDBDP1Wa6xSRkDQU/
aSbQxvEE8+MCgYEA3bb8krW7opyM0XL9RHH0oqsFlVO30Oit5lrqebS0oHl3Zsr2
ZGgoBlWBsEzk3UqUhTFwm/DhJLTSJ/TQPRkxnhQ5/mewNhS9C7yua7wQkzVmWN+V
YeUGTvDGDF6qDz12/vJAgSwDDRym8x4NcXD5tTw7mmNRcwIfL22SkysThIECgYAV
BgccoEoXWS/HP2/u6fQr9ZIR6eV8Ij5FPbZacTG3LlS1Cz5XZra95UgebFFUHHtC
EY1JHJY7z8SWvTH8r3Su7eWNaIAoFBGffzqqSVazfm6aYZsOvRY6BfqPHT3p/H1h
Tq6AbBffxrcltgvXnCTORjHPglU0CjSxVs7awW3AEQKBgB5WtaC8VLROM7rkfVIq
+RXqE5vtJfa3e3N7W3RqxKp4zHFAPfr82FK5CX2bppEaxY7SEZVvVInKDc5gKdG/
jWNRBmvvftZhY59PILHO2X5vO4FXh7suEjy6VIh0gsnK36mmRboYIBGsNuDHjXLe
BDa+8mDLkWu5nHEhOxy2JJZl
-----END PRIVATE KEY-----";

    /// wechatpay-go `core/auth/verifiers/sha256withrsa_pubkey_verifier_test.go`
    /// (`testPubKey`, id `F5765756002FDD77`): the public half of the key above.
    pub(crate) const GO_SDK_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2VCTd91fnUn73Xy9DLvt
/V62TVxRTEEstVdeRaZ3B3leO0pldE806mXO4RwdHXagHQ4vGeZN0yqm++rDsGK+
U3AH7kejyD2pXshNP9Cq5YwbptiLGtjcquw4HNxJQUOmDeJf2vg6byms9RUipiq4
SzbJKqJFlUpbuIPDpSpWz10PYmyCNeDGUUK65E5h2B834uxl1zNLYQCrkdBzb8oU
xwYeP5a2DNxmjL5lsJML7DGr5znsevnoqGRwTm9fxCGfy8wus7hwKz6clt3Whmmd
a7UAdb1c08hEQFVRbF14AR73xbnd8N0obCWJPCbzMCtkaSef4FdEEgEXJiw0VAJT
8wIDAQAB
-----END PUBLIC KEY-----";

    /// wechatpay-go `core/notify/notify_test.go` (`wechatPayCertificate`), serial
    /// `D7CE59D1F522D701`: a certificate for the same key pair.
    pub(crate) const GO_SDK_CERTIFICATE_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDVzCCAj+gAwIBAgIJANfOWdH1ItcBMA0GCSqGSIb3DQEBCwUAMEIxCzAJBgNV
BAYTAlhYMRUwEwYDVQQHDAxEZWZhdWx0IENpdHkxHDAaBgNVBAoME0RlZmF1bHQg
Q29tcGFueSBMdGQwHhcNMjEwNDI3MDg1NTIzWhcNMzEwNDI1MDg1NTIzWjBCMQsw
CQYDVQQGEwJYWDEVMBMGA1UEBwwMRGVmYXVsdCBDaXR5MRwwGgYDVQQKDBNEZWZh
dWx0IENvbXBhbnkgTHRkMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA
2VCTd91fnUn73Xy9DLvt/V62TVxRTEEstVdeRaZ3B3leO0pldE806mXO4RwdHXag
HQ4vGeZN0yqm++rDsGK+U3AH7kejyD2pXshNP9Cq5YwbptiLGtjcquw4HNxJQUOm
DeJf2vg6byms9RUipiq4SzbJKqJFlUpbuIPDpSpWz10PYmyCNeDGUUK65E5h2B83
4uxl1zNLYQCrkdBzb8oUxwYeP5a2DNxmjL5lsJML7DGr5znsevnoqGRwTm9fxCGf
y8wus7hwKz6clt3Whmmda7UAdb1c08hEQFVRbF14AR73xbnd8N0obCWJPCbzMCtk
aSef4FdEEgEXJiw0VAJT8wIDAQABo1AwTjAdBgNVHQ4EFgQUT1c7nd/SUO76HSoZ
umNUJv1R5PwwHwYDVR0jBBgwFoAUT1c7nd/SUO76HSoZumNUJv1R5PwwDAYDVR0T
BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEAfTjxKRQMzNB/U6ZoCUS+BSNfa2Oh
0plMN6ZuzwiVVZwg1jywvv5yv04koS7Pd4i9E4gt9ZBUQXlpq+A3oOCEEHNRR6b2
kyazGRM7s0OP5X21WrbpSmKmU6K7hkfx30yYs08LVs/Q8DIhvaj1FCFeJzUCzYn/
fHMq4tsbKO0dKAeydPM/nrUZBmaYQVKMVOORGLFjFKVO7JV6Kq/R86ouhjEPgJOe
2xulNBUcjicqtZlBdEh/PWCYP2SpGVDclKm8jeo175T3EVAkdKzzmfpxtMmnMlmq
cTJOU9TxuGvNASMtjj7pYIerTx+xgZDXEVBWFW9PjJ0TV06tCRsgSHItgg==
-----END CERTIFICATE-----";

    /// wechatpay-go `utils/sign_test.go` (`testAlgorithmExpectSignature`): "source".
    pub(crate) const GO_SDK_SIGNATURE_OF_SOURCE: &str = "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg==";

    #[test]
    fn go_sdk_signature_vector_is_reproduced() {
        let key = MerchantKey::from_pem(GO_SDK_PRIVATE_PEM).expect("Go SDK test key");
        assert_eq!(
            key.sign_sha256_base64(b"source"),
            GO_SDK_SIGNATURE_OF_SOURCE
        );
    }

    #[test]
    fn go_sdk_public_key_verifies_the_vector_and_nothing_else() {
        let key = WechatPayPublicKey::from_pem(GO_SDK_PUBLIC_PEM).expect("Go SDK public key");
        assert!(key.verify_sha256(b"source", GO_SDK_SIGNATURE_OF_SOURCE));
        assert!(!key.verify_sha256(b"wrong source", GO_SDK_SIGNATURE_OF_SOURCE));
        assert!(!key.verify_sha256(b"", GO_SDK_SIGNATURE_OF_SOURCE));
        assert!(!key.verify_sha256(b"source", ""));
        assert!(!key.verify_sha256(b"source", "invalid base64 signature"));
    }

    #[test]
    fn certificate_yields_its_serial_expiry_and_the_same_key() {
        let certificate =
            PlatformCertificate::from_pem(GO_SDK_CERTIFICATE_PEM).expect("Go SDK certificate");
        assert_eq!(certificate.serial, "D7CE59D1F522D701");
        assert_eq!(
            certificate.not_after.to_rfc3339(),
            "2031-04-25T08:55:23+00:00"
        );
        assert!(
            certificate
                .key
                .verify_sha256(b"source", GO_SDK_SIGNATURE_OF_SOURCE)
        );
    }

    #[test]
    fn sandbox_keys_round_trip() {
        let merchant = MerchantKey::from_pem(MERCHANT_PRIVATE_PEM).expect("merchant key");
        let merchant_public = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_PEM).expect("public");
        let signature = merchant.sign_sha256_base64("签名 message".as_bytes());
        assert!(merchant_public.verify_sha256("签名 message".as_bytes(), &signature));

        let wechatpay = MerchantKey::from_pem(WECHATPAY_PRIVATE_PEM).expect("wechatpay key");
        let wechatpay_public = WechatPayPublicKey::from_pem(WECHATPAY_PUBLIC_PEM).expect("public");
        let signature = wechatpay.sign_sha256_base64(b"x");
        assert!(wechatpay_public.verify_sha256(b"x", &signature));
        assert!(!merchant_public.verify_sha256(b"x", &signature));
        assert_eq!(merchant.bits(), 2048);
    }

    #[test]
    fn pkcs1_private_keys_are_read_too() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = decode_private_key(GO_SDK_PRIVATE_PEM).expect("pkcs8");
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .expect("pkcs1 pem");
        assert!(pkcs1.contains("-----BEGIN RSA PRIVATE KEY-----"));
        let merchant = MerchantKey::from_pem(&pkcs1).expect("pkcs1 merchant key");
        assert_eq!(
            merchant.sign_sha256_base64(b"source"),
            GO_SDK_SIGNATURE_OF_SOURCE
        );
    }

    #[test]
    fn short_keys_are_refused() {
        // openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024
        let short = "-----BEGIN PRIVATE KEY-----
MIICdQIBADANBgkqhkiG9w0BAQEFAASCAl8wggJbAgEAAoGBANSMnv3eI32mUuia
StwxcG8sRUs9sIuKeBqsio/Juh8js8yYODxXHOBPTv4tWn58VOhKrwcL/d5InS/e
xSE1YXMTdHG8NniTrtvg7jFViI38bKce9gh4AngfmQlkH+WTRY4W2RrHXb+s5aii
hJowSZxqaLCgIBB4djNI0FbpJutPAgMBAAECgYA4EYA/Z8Hk+2MTiOAGheQq73q4
BmXz6WsVXj6O/5/hZwGfDuiGwlQTt9gWpNAiXZnoTQsuyLMHWBBe+Fz4DaTOw1Nk
OPtxyarAUooHf8Sv3anOOfkvEfzMvzA/hGaJTQvd+21vwA6XnAAONdqWoKYruwxf
fxhnX1T7sXE1nhg8gQJBAO34oKfBXQfT16rrrpqouk0M1A8Q/Dal3h747Qg5SLk1
WygK2e43+E1/rG1TfdNKwUUYaGGxIQ9SQpfrPPxKJ5kCQQDkpvG2C/1DK4rTacfi
2mILKK5mnm2V4zHuqdgOGVlkltjpL/BUfihbI36MfNx2oY9t7igWv95bGODXFgpq
s9snAkBB+TDI8UGSXvemigpxFB/6JnlP5/yURe3LlmVYZ1EzD4jDFCcQ9PFgwumR
sZjrkAj+1+JwWwP4VGzj4zKYGxLZAkBjeqKU4ph4fdwzaMVXVE3trvBZoznoSWVz
AaAHWk4DLoIGyh2UlSK3rDSlqLk+P8IoQMJeS3HRTnyb93HmxINnAkAuxEP/hQy/
gBlnbFTCeeZaqfOE4o3G8fC2TXn8qd3zlWU++Z5P3QgVMxf1DkwDZV8go/LorNew
GJU10F96p3+p
-----END PRIVATE KEY-----";
        match MerchantKey::from_pem(short) {
            Err(KeyError::TooShort { bits, .. }) => assert_eq!(bits, 1024),
            other => panic!("expected TooShort, got {other:?}"),
        }
    }

    #[test]
    fn wrong_pem_kinds_are_named() {
        assert!(matches!(
            MerchantKey::from_pem(WECHATPAY_PUBLIC_PEM),
            Err(KeyError::NotAPrivateKey)
        ));
        assert!(matches!(
            MerchantKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"),
            Err(KeyError::EncryptedPrivateKey)
        ));
        assert!(matches!(
            WechatPayPublicKey::from_pem(MERCHANT_PRIVATE_PEM),
            Err(KeyError::Unreadable { .. })
        ));
        assert!(matches!(
            PlatformCertificate::from_pem(WECHATPAY_PUBLIC_PEM),
            Err(KeyError::Unreadable { .. })
        ));
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let key = MerchantKey::from_pem(MERCHANT_PRIVATE_PEM).expect("merchant key");
        assert_eq!(format!("{key:?}"), "MerchantKey { bits: 2048, .. }");
        let error = MerchantKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----",
        )
        .expect_err("garbage");
        assert!(!error.to_string().contains("not base64!"), "{error}");
    }
}
