//! Any `Encrypt` value, and any ciphertext bytes: decryption must return, never panic.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use campus_pay_fuzz::wechat::crypto::{EncodingAesKey, MessageCrypto};
use libfuzzer_sys::fuzz_target;

/// The key and app id of the official WXBizMsgCrypt Python sample, which the corpus's
/// `ok_*` entries are encrypted with.
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wx2c2769f8efd9abc2";

fuzz_target!(|data: &[u8]| {
    let Ok(key) = EncodingAesKey::parse(KEY) else {
        return;
    };
    let crypto = MessageCrypto::new(key, APPID);
    // As text, the input is an `Encrypt` value (the corpus files are base64)...
    let _ = crypto.decrypt(&String::from_utf8_lossy(data));
    // ...and as bytes, a ciphertext, so that AES, unpadding and the layout checks run.
    let _ = crypto.decrypt(&STANDARD.encode(data));
});
