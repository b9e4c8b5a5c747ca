//! WeChat Pay APIv3 for a direct merchant: our requests signed with the merchant
//! key, WeChat's answers and notifications verified by `Wechatpay-Serial` (the
//! WeChat Pay public key and platform certificates side by side), notification
//! resources decrypted with the APIv3 key, and a small typed client for JSAPI and
//! Native prepay, query and close.
//!
//! Why our own and not `wechat-pay-rust-sdk` (DEVELOPERS.md, "Why our own WeChat
//! Pay client"): that crate has no order query or close, does not verify response
//! signatures, has no public-key (`PUB_KEY_ID_…`) mode, returns HTTP errors as
//! `Ok`, and pulls `rsa 0.9` (RUSTSEC-2023-0071). The protocol is small enough
//! that a thin client we can test against the official vectors is the safer path.
//!
//! The rule every caller keeps: an answer that fails verification, or no answer,
//! means the outcome is unknown ([`PayApiError::outcome_unknown`]): query later,
//! never mark the payment failed.

pub mod aead;
pub mod bill;
pub mod client;
pub mod keys;
pub mod notify;
pub mod refund;
pub mod signing;
pub mod verify;

pub use aead::{AeadError, ApiV3Key, decrypt_resource, encrypt_resource};
pub use client::{
    CodeUrl, DEFAULT_API_BASE, PayApiError, PrepayId, PrepayRequest, TransactionState,
    WechatPayClient, WechatPayClientConfig,
};
pub use keys::{KeyError, MerchantKey, PlatformCertificate, WechatPayPublicKey};
pub use notify::{
    NotifyError, TradeState, Transaction, TransactionNotice, parse_transaction_notification,
};
pub use signing::JsapiPayParams;
pub use verify::{ResponseVerifier, VerifyError};
