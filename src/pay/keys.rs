//! The one loader of the merchant private keys every provider signs with (WeChat
//! Pay's `apiclient_key.pem`, Alipay's app private key, ABC's merchant key): an
//! unencrypted RSA key in PEM, PKCS#8 or PKCS#1. Each provider adds its own checks
//! (size, self test) and its own hint of which file was meant.
//!
//! Errors describe what is wrong with a key, never its content.

use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;

const PKCS8_LABEL: &str = "-----BEGIN PRIVATE KEY-----";
const PKCS1_LABEL: &str = "-----BEGIN RSA PRIVATE KEY-----";
const ENCRYPTED_LABEL: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// Why a PEM text is not a private key we can sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateKeyError {
    #[error(
        "no private key found: expected a PEM block `BEGIN PRIVATE KEY` (PKCS#8) or \
         `BEGIN RSA PRIVATE KEY` (PKCS#1)"
    )]
    NotAPrivateKey,
    /// A passphrase-protected key: we never hold a passphrase, so it is refused by name.
    #[error("the private key is encrypted; export it without a passphrase (PKCS#8)")]
    Encrypted,
    #[error("the private key could not be read ({0})")]
    Unreadable(String),
}

/// Reads an RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`); surrounding whitespace is ignored.
pub fn decode_private_key(pem: &str) -> Result<PrivateKey, PrivateKeyError> {
    let pem = pem.trim();
    let unreadable = |error: &dyn std::fmt::Display| PrivateKeyError::Unreadable(error.to_string());
    if pem.contains(ENCRYPTED_LABEL) {
        Err(PrivateKeyError::Encrypted)
    } else if pem.contains(PKCS8_LABEL) {
        PrivateKey::from_pkcs8_pem(pem).map_err(|error| unreadable(&error))
    } else if pem.contains(PKCS1_LABEL) {
        PrivateKey::from_pkcs1_pem(pem).map_err(|error| unreadable(&error))
    } else {
        Err(PrivateKeyError::NotAPrivateKey)
    }
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::LineEnding;

    use super::*;

    const PKCS8: &str = include_str!("../sandbox/keys/abc_merchant_private_key.pem");

    #[test]
    fn pkcs8_and_pkcs1_read_to_the_same_key() {
        let from_pkcs8 = decode_private_key(PKCS8).expect("pkcs8");
        let pkcs1 = from_pkcs8.to_pkcs1_pem(LineEnding::LF).expect("pkcs1");
        let from_pkcs1 = decode_private_key(&format!("\n  {}\n", pkcs1.as_str())).expect("pkcs1");
        assert_eq!(from_pkcs8, from_pkcs1);
    }

    #[test]
    fn what_is_not_a_usable_key_is_refused_by_name() {
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(
            decode_private_key(encrypted),
            Err(PrivateKeyError::Encrypted)
        );
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----";
        assert_eq!(
            decode_private_key(public),
            Err(PrivateKeyError::NotAPrivateKey)
        );
        assert_eq!(decode_private_key(""), Err(PrivateKeyError::NotAPrivateKey));
        let garbled = "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----";
        assert!(matches!(
            decode_private_key(garbled),
            Err(PrivateKeyError::Unreadable(_))
        ));
    }
}
