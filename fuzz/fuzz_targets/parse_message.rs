//! Any bytes pushed to the webhook: parsing must return, never panic.
#![no_main]

use campus_pay_fuzz::wechat::message::{parse_encrypted_envelope, parse_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = parse_message(xml) {
        assert!(!message.from_user_name.trim().is_empty());
        let _ = message.dedup_key();
    }
    let _ = parse_encrypted_envelope(xml);
});
