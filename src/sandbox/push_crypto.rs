//! The push sandbox's own signatures and safe-mode crypto, written from WeChat's
//! documentation and sharing nothing with `crate::wechat`, so that a bug in our
//! webhook's crypto cannot agree with itself in the tests.
//!
//! Where each rule comes from (all in `../shared/research/wechat-anchors.md`, which
//! quotes the official pages and samples):
//! - `signature` / `msg_signature`: SHA1 over the token, timestamp, nonce (and the
//!   `Encrypt` value) sorted as strings and joined, lower-case hex (§2.1; official
//!   "消息加解密说明", wechatpy `crypto/__init__.py::_get_signature`).
//! - The key: `Base64_Decode(EncodingAESKey + "=")`, 32 bytes, AES-256-CBC with the IV
//!   the key's first 16 bytes; real keys end in a character with discarded bits, which
//!   WeChat accepts (§2.2, official technical plan).
//! - The plaintext: `random(16) ‖ msg_len(4, big-endian) ‖ msg ‖ appid`, PKCS#7-padded
//!   to a multiple of 32 bytes (1 to 32 pad bytes), base64 on the wire (§2.2).
//!
//! Checked against the official test vectors quoted in §3 (tests below).

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use sha1::{Digest, Sha1};

/// WeChat's block for PKCS#7 in safe mode: twice AES's.
const WECHAT_PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const LENGTH_LEN: usize = 4;

/// The EncodingAESKey's last character usually carries bits base64 would discard.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Why the sandbox could not use a key or open a ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushCryptoError {
    #[error("an EncodingAESKey is 43 letters or digits")]
    BadKey,
    #[error("the ciphertext is not base64 of whole AES blocks")]
    BadCiphertext,
    #[error("the padding or layout inside the ciphertext is wrong")]
    BadPlaintext,
    #[error("the message was encrypted for another app id")]
    OtherAppId,
}

/// The 32-byte AES key behind a 43-character EncodingAESKey, as WeChat's server holds it.
#[derive(Clone)]
pub struct PushAesKey([u8; 32]);

impl std::fmt::Debug for PushAesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushAesKey(..)")
    }
}

impl PushAesKey {
    pub fn parse(encoding_aes_key: &str) -> Result<Self, PushCryptoError> {
        if encoding_aes_key.len() != 43
            || !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(PushCryptoError::BadKey);
        }
        let bytes = KEY_BASE64
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| PushCryptoError::BadKey)?;
        bytes
            .try_into()
            .map(PushAesKey)
            .map_err(|_| PushCryptoError::BadKey)
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// SHA1 of the parts sorted and joined, in lower-case hex: both `signature` (token,
/// timestamp, nonce) and `msg_signature` (the same and the `Encrypt` value).
pub fn sorted_sha1(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let digest = Sha1::digest(sorted.concat().as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Encrypts `msg` for `appid` with the given 16 random bytes, base64 on the wire.
pub fn encrypt(key: &PushAesKey, appid: &str, random: &[u8; 16], msg: &str) -> String {
    let length = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let mut plain = Vec::with_capacity(RANDOM_LEN + LENGTH_LEN + msg.len() + appid.len() + 32);
    plain.extend_from_slice(random);
    plain.extend_from_slice(&length.to_be_bytes());
    plain.extend_from_slice(msg.as_bytes());
    plain.extend_from_slice(appid.as_bytes());
    let pad = WECHAT_PAD_BLOCK - plain.len() % WECHAT_PAD_BLOCK;
    // `pad` is 1..=32: it fits a byte.
    plain.resize(plain.len() + pad, pad as u8);
    let ciphertext = cbc::Encryptor::<Aes256>::new(&key.0.into(), &key.iv().into())
        .encrypt_padded_vec::<NoPadding>(&plain);
    STANDARD.encode(ciphertext)
}

/// Opens an `Encrypt` value made for `appid` and returns the message.
pub fn decrypt(key: &PushAesKey, appid: &str, encrypt: &str) -> Result<String, PushCryptoError> {
    let ciphertext = STANDARD
        .decode(encrypt)
        .map_err(|_| PushCryptoError::BadCiphertext)?;
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(PushCryptoError::BadCiphertext);
    }
    let plain = cbc::Decryptor::<Aes256>::new(&key.0.into(), &key.iv().into())
        .decrypt_padded_vec::<NoPadding>(&ciphertext)
        .map_err(|_| PushCryptoError::BadCiphertext)?;
    let pad = usize::from(*plain.last().ok_or(PushCryptoError::BadPlaintext)?);
    if pad == 0 || pad > WECHAT_PAD_BLOCK || pad > plain.len() {
        return Err(PushCryptoError::BadPlaintext);
    }
    let unpadded = &plain[..plain.len() - pad];
    let header = RANDOM_LEN + LENGTH_LEN;
    let length_bytes: [u8; 4] = unpadded
        .get(RANDOM_LEN..header)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(PushCryptoError::BadPlaintext)?;
    let length = usize::try_from(u32::from_be_bytes(length_bytes))
        .map_err(|_| PushCryptoError::BadPlaintext)?;
    let msg = unpadded
        .get(header..header.saturating_add(length))
        .ok_or(PushCryptoError::BadPlaintext)?;
    if &unpadded[header + length..] != appid.as_bytes() {
        return Err(PushCryptoError::OtherAppId);
    }
    String::from_utf8(msg.to_vec()).map_err(|_| PushCryptoError::BadPlaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wechat-anchors.md §3.3: the official Java sample's deterministic encryption.
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const JAVA_APPID: &str = "wxb11529c136998cb6";
    const JAVA_RANDOM: &[u8; 16] = b"aaaabbbbccccdddd";

    fn key() -> PushAesKey {
        PushAesKey::parse(KEY).expect("the official key")
    }

    #[test]
    fn the_key_decodes_as_in_the_official_sample() {
        let hex: String = key().0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
        );
        assert_eq!(
            PushAesKey::parse("short").unwrap_err(),
            PushCryptoError::BadKey
        );
        assert!(PushAesKey::parse(&format!("{}!", &KEY[..42])).is_err());
    }

    #[test]
    fn url_signature_matches_wechatpy() {
        // §3.1
        assert_eq!(
            sorted_sha1(&["test", "1410685589", "test"]),
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        );
    }

    #[test]
    fn encryption_matches_the_official_java_sample() {
        // §3.3: "我是中文abcd123" and a longer reply, then their msg_signature.
        let short = encrypt(&key(), JAVA_APPID, JAVA_RANDOM, "我是中文abcd123");
        assert_eq!(
            short,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(
            sorted_sha1(&["pamtest", "1409304348", "xxxxxx", &short]),
            "82c962d39941aa48552f90ef55aa323dc620cc10"
        );
        let reply = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>";
        assert_eq!(
            encrypt(&key(), JAVA_APPID, JAVA_RANDOM, reply),
            "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
        );
    }

    #[test]
    fn a_full_block_of_padding_matches_the_derived_vector() {
        // §3.3 [derived]: 26 bytes of message make the plaintext a multiple of 32.
        let encrypt_value = encrypt(&key(), JAVA_APPID, JAVA_RANDOM, "<xml>18汽修张三!</xml>");
        assert_eq!(
            encrypt_value,
            "jn1L23DB+6ELqJ+6bruv21b2NH6jUgbdiJatQRPhQueqxJlAa+3U5+vh1T/uckQkk5YsczxmPscwJb+OXMpl3WvpRjrJJmS08AC0MOmBpWDRuD1roATdSpzXRZffCoPA"
        );
        assert_eq!(
            sorted_sha1(&["pamtest", "1409304348", "xxxxxx", &encrypt_value]),
            "9b8564739424407df29db9bac92a26354d3907ed"
        );
    }

    #[test]
    fn decryption_opens_the_official_python_sample() {
        // §3.2
        let encrypt_value = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
        assert_eq!(
            sorted_sha1(&["spamtest", "1409735669", "1320562132", encrypt_value]),
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        );
        let msg = decrypt(&key(), "wx2c2769f8efd9abc2", encrypt_value).expect("opens");
        assert!(msg.starts_with("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"));
        assert!(msg.contains("<Content><![CDATA[abcdteT]]></Content>"));
        assert_eq!(msg.len(), 280);
        assert_eq!(
            decrypt(&key(), "wx_other", encrypt_value),
            Err(PushCryptoError::OtherAppId)
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bad in ["", "not base64!", "YWJj", &STANDARD.encode([7u8; 32])] {
            assert!(decrypt(&key(), JAVA_APPID, bad).is_err(), "{bad}");
        }
    }
}
