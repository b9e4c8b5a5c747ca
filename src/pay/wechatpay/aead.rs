//! `AEAD_AES_256_GCM`, the encryption of notification resources (and of platform
//! certificates): key = the merchant's APIv3 key (32 ASCII bytes), nonce =
//! `resource.nonce` (12 ASCII bytes), associated data = `resource.associated_data`
//! (may be empty), ciphertext = Base64(encrypted bytes ‖ 16-byte tag).

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};

pub const API_V3_KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("the APIv3 key must be exactly {API_V3_KEY_LEN} bytes; this one has {len}")]
    KeyLength { len: usize },
    #[error("the resource nonce must be {NONCE_LEN} bytes; this one has {len}")]
    NonceLength { len: usize },
    #[error("the resource ciphertext is not valid base64")]
    Base64,
    #[error("the resource does not decrypt under our APIv3 key (wrong key, or altered)")]
    Authentication,
}

/// The merchant's APIv3 key (set in the merchant console): exactly 32 bytes.
/// `Debug` never shows it.
pub struct ApiV3Key(SecretBox<[u8; API_V3_KEY_LEN]>);

impl ApiV3Key {
    pub fn new(bytes: &[u8]) -> Result<Self, AeadError> {
        let key: [u8; API_V3_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| AeadError::KeyLength { len: bytes.len() })?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key(..)")
    }
}

/// Decrypts a notification resource to its plaintext bytes (JSON).
pub fn decrypt_resource(
    key: &ApiV3Key,
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError> {
    open::<Aes256Gcm>(key.expose(), nonce, associated_data, ciphertext_b64)
}

/// Encrypts `plaintext` the way WeChat Pay does, for the sandbox's notifications.
/// `nonce` must be 12 bytes and never reused with the same key.
pub fn encrypt_resource(
    key: &ApiV3Key,
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, AeadError> {
    seal::<Aes256Gcm>(key.expose(), nonce, associated_data, plaintext)
}

fn nonce_bytes(nonce: &str) -> Result<Nonce<aes_gcm::aead::consts::U12>, AeadError> {
    Nonce::try_from(nonce.as_bytes()).map_err(|_| AeadError::NonceLength { len: nonce.len() })
}

fn cipher<C: KeyInit>(key: &[u8]) -> Result<C, AeadError> {
    C::new_from_slice(key).map_err(|_| AeadError::KeyLength { len: key.len() })
}

fn open<C>(
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError>
where
    C: KeyInit + Aead<NonceSize = aes_gcm::aead::consts::U12>,
{
    let nonce = nonce_bytes(nonce)?;
    let sealed = STANDARD
        .decode(ciphertext_b64)
        .map_err(|_| AeadError::Base64)?;
    let payload = Payload {
        msg: &sealed,
        aad: associated_data.as_bytes(),
    };
    cipher::<C>(key)?
        .decrypt(&nonce, payload)
        .map_err(|_| AeadError::Authentication)
}

fn seal<C>(
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, AeadError>
where
    C: KeyInit + Aead<NonceSize = aes_gcm::aead::consts::U12>,
{
    let nonce = nonce_bytes(nonce)?;
    let payload = Payload {
        msg: plaintext,
        aad: associated_data.as_bytes(),
    };
    let sealed = cipher::<C>(key)?
        .encrypt(&nonce, payload)
        .map_err(|_| AeadError::Authentication)?;
    Ok(STANDARD.encode(sealed))
}

/// The official Go SDK's vectors use 16-byte keys (AES-128-GCM). Production never
/// accepts those; the tests reach the same code through this door.
#[cfg(test)]
pub(crate) fn decrypt_resource_aes128_for_vectors(
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError> {
    open::<aes_gcm::Aes128Gcm>(key, nonce, associated_data, ciphertext_b64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wechat-anchors §3.6 (e): a 32-byte key, cross-checked with Python `cryptography`.
    const KEY_32: &[u8] = b"abcdefghijklmnopqrstuvwxyz123456";
    const NONCE: &str = "0123456789ab";
    const AAD: &str = "transaction";
    const PLAINTEXT: &str = r#"{"mchid":"1900000109","out_trade_no":"WWZY2025090100000001","trade_state":"SUCCESS","amount":{"total":150000,"currency":"CNY"}}"#;
    const CIPHERTEXT: &str = "AQfVc95VzuOgKLrKsAYA5B2Bg91aK1qdga4OeqwaqnU2dVU6/ZcynFIosEIAQ0T+4t+FN58ZsEzucGk2p6lxnO1ZkGYAGuMLGFclCmWIYvZz89KY3boPm0hGFrrr4BuQ999GFeud99MTBAs1Zy+VJEYYw99b7QZW/WZ9LTYGGwNZxvv8Qb4yvXrLV4sjD54=";

    /// wechatpay-go `utils/aes_test.go`.
    const GO_KEY_16: &[u8] = b"testAPIv3Key0000";
    const GO_NONCE: &str = "wCq51qZv4Yfg";
    const GO_AAD: &str = "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8";
    const GO_CIPHERTEXT: &str = "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC";

    fn key_32() -> ApiV3Key {
        ApiV3Key::new(KEY_32).expect("32-byte key")
    }

    #[test]
    fn aes_256_vector_encrypts_exactly() {
        let sealed = encrypt_resource(&key_32(), NONCE, AAD, PLAINTEXT.as_bytes()).expect("seal");
        assert_eq!(sealed, CIPHERTEXT);
    }

    #[test]
    fn aes_256_vector_decrypts_exactly() {
        let opened = decrypt_resource(&key_32(), NONCE, AAD, CIPHERTEXT).expect("open");
        assert_eq!(opened, PLAINTEXT.as_bytes());
    }

    #[test]
    fn aes_256_refuses_wrong_aad_nonce_and_tampering() {
        let key = key_32();
        assert_eq!(
            decrypt_resource(&key, NONCE, "certificate", CIPHERTEXT),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            decrypt_resource(&key, "0123456789ac", AAD, CIPHERTEXT),
            Err(AeadError::Authentication)
        );
        let mut tampered = STANDARD.decode(CIPHERTEXT).expect("b64");
        tampered[0] ^= 1;
        assert_eq!(
            decrypt_resource(&key, NONCE, AAD, &STANDARD.encode(tampered)),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            decrypt_resource(&key, "short", AAD, CIPHERTEXT),
            Err(AeadError::NonceLength { len: 5 })
        );
    }

    #[test]
    fn empty_associated_data_round_trips() {
        let key = key_32();
        let sealed = encrypt_resource(&key, NONCE, "", b"{}").expect("seal");
        assert_eq!(
            decrypt_resource(&key, NONCE, "", &sealed).expect("open"),
            b"{}"
        );
    }

    #[test]
    fn only_32_byte_keys_are_accepted() {
        assert_eq!(
            ApiV3Key::new(GO_KEY_16).err(),
            Some(AeadError::KeyLength { len: 16 })
        );
        assert_eq!(
            ApiV3Key::new(b"not a aes key").err(),
            Some(AeadError::KeyLength { len: 13 })
        );
        assert_eq!(
            ApiV3Key::new(&[0; 33]).err(),
            Some(AeadError::KeyLength { len: 33 })
        );
        assert_eq!(format!("{:?}", key_32()), "ApiV3Key(..)");
    }

    #[test]
    fn go_sdk_vector_decrypts() {
        let opened =
            decrypt_resource_aes128_for_vectors(GO_KEY_16, GO_NONCE, GO_AAD, GO_CIPHERTEXT)
                .expect("Go SDK vector");
        assert_eq!(opened, b"Hello World");
    }

    #[test]
    fn go_sdk_must_fail_cases_fail() {
        let open = |key: &[u8], ciphertext: &str| {
            decrypt_resource_aes128_for_vectors(key, GO_NONCE, GO_AAD, ciphertext)
        };
        assert_eq!(open(GO_KEY_16, "invalid cipher"), Err(AeadError::Base64));
        assert_eq!(
            open(GO_KEY_16, "SGVsbG8gV29ybGQK"),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            open(b"testAPIv3Key1111", GO_CIPHERTEXT),
            Err(AeadError::Authentication)
        );
        assert_eq!(
            open(b"not a aes key", GO_CIPHERTEXT),
            Err(AeadError::KeyLength { len: 13 })
        );
    }
}
