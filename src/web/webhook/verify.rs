//! Turning a request to `/wechat` into a message we can believe, in this order:
//! signature (401, no echo), timestamp freshness (401), body size (413), safe-mode
//! signature and decryption (401/400), XML parsing (400). The handler only ever sees
//! a verified message.

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::web::{Account, AppState};
use crate::wechat::crypto::CryptoError;
use crate::wechat::message::{Message, parse_encrypted_envelope, parse_message};
use crate::wechat::signature;

pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// WeChat signs with its current time and retries within seconds; anything older than
/// this is a replay.
const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

#[derive(Debug, Default, Deserialize)]
pub struct WebhookQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

pub struct VerifiedMessage {
    pub message: Message,
    pub timestamp: String,
    pub nonce: String,
    /// The message came encrypted (compatible or safe mode), so the reply is too.
    pub encrypted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the official account is not configured")]
    NotConfigured,
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    #[error("signature mismatch")]
    BadSignature,
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    #[error("body larger than 64 KiB")]
    TooLarge,
    #[error("body unreadable")]
    Unreadable,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("malformed XML: {0}")]
    MalformedXml(String),
    #[error("encrypted message received but no EncodingAESKey is configured")]
    SafeModeNotConfigured,
    #[error("unsupported encrypt_type")]
    UnsupportedEncryption,
    #[error("ciphertext for another app id")]
    WrongAppId,
    #[error("undecryptable ciphertext")]
    Undecryptable,
}

impl Rejection {
    /// A short, stable name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::NotConfigured => "not_configured",
            Rejection::MissingParameter(_) => "missing_parameter",
            Rejection::BadSignature => "bad_signature",
            Rejection::StaleTimestamp => "stale_timestamp",
            Rejection::TooLarge => "too_large",
            Rejection::Unreadable => "unreadable",
            Rejection::NotUtf8 => "not_utf8",
            Rejection::MalformedXml(_) => "malformed_xml",
            Rejection::SafeModeNotConfigured => "safe_mode_not_configured",
            Rejection::UnsupportedEncryption => "unsupported_encryption",
            Rejection::WrongAppId => "wrong_appid",
            Rejection::Undecryptable => "undecryptable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NotConfigured => StatusCode::NOT_FOUND,
            Rejection::MissingParameter(_)
            | Rejection::BadSignature
            | Rejection::StaleTimestamp
            | Rejection::WrongAppId => StatusCode::UNAUTHORIZED,
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Unreadable
            | Rejection::NotUtf8
            | Rejection::MalformedXml(_)
            | Rejection::SafeModeNotConfigured
            | Rejection::UnsupportedEncryption
            | Rejection::Undecryptable => StatusCode::BAD_REQUEST,
        }
    }
}

fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, Rejection> {
    value.as_deref().ok_or(Rejection::MissingParameter(name))
}

fn account(state: &AppState) -> Result<&Account, Rejection> {
    state.account.as_deref().ok_or(Rejection::NotConfigured)
}

/// The `signature` every request carries: sha1 over token, timestamp and nonce.
fn check_url_signature<'q>(
    account: &Account,
    query: &'q WebhookQuery,
) -> Result<(&'q str, &'q str), Rejection> {
    let signature = required(&query.signature, "signature")?;
    let timestamp = required(&query.timestamp, "timestamp")?;
    let nonce = required(&query.nonce, "nonce")?;
    let token = account.token.expose_secret();
    if !signature::verify(signature, &[token, timestamp, nonce]) {
        return Err(Rejection::BadSignature);
    }
    Ok((timestamp, nonce))
}

/// GET: the server check. Returns the `echostr` to echo raw.
pub fn server_check(state: &AppState, query: &WebhookQuery) -> Result<String, Rejection> {
    let account = account(state)?;
    check_url_signature(account, query)?;
    Ok(required(&query.echostr, "echostr")?.to_owned())
}

/// POST: a message, verified and parsed.
pub async fn verified_message(
    state: &AppState,
    query: &WebhookQuery,
    body: Body,
) -> Result<VerifiedMessage, Rejection> {
    let account = account(state)?;
    let (timestamp, nonce) = check_url_signature(account, query)?;
    check_fresh(state, timestamp)?;
    let body = read_body(body).await?;
    let (message, encrypted) = match query.encrypt_type.as_deref() {
        Some("aes") => (
            decrypt_message(account, query, timestamp, nonce, &body)?,
            true,
        ),
        None | Some("raw") => (parse(&body)?, false),
        Some(_) => return Err(Rejection::UnsupportedEncryption),
    };
    Ok(VerifiedMessage {
        message,
        timestamp: timestamp.to_owned(),
        nonce: nonce.to_owned(),
        encrypted,
    })
}

fn check_fresh(state: &AppState, timestamp: &str) -> Result<(), Rejection> {
    let sent: i64 = timestamp.parse().map_err(|_| Rejection::StaleTimestamp)?;
    let skew = (state.clock.now().timestamp() - sent).abs();
    if skew > MAX_CLOCK_SKEW_SECONDS {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(())
}

/// Reads at most 64 KiB; a longer body (declared or streamed) is refused without
/// reading the rest.
async fn read_body(body: Body) -> Result<String, Rejection> {
    let collected = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|error| {
            if error.downcast_ref::<LengthLimitError>().is_some() {
                Rejection::TooLarge
            } else {
                Rejection::Unreadable
            }
        })?;
    String::from_utf8(collected.to_bytes().to_vec()).map_err(|_| Rejection::NotUtf8)
}

fn parse(xml: &str) -> Result<Message, Rejection> {
    parse_message(xml).map_err(|e| Rejection::MalformedXml(e.to_string()))
}

/// Compatible and safe mode: `msg_signature` covers the ciphertext, the ciphertext
/// carries our app id.
fn decrypt_message(
    account: &Account,
    query: &WebhookQuery,
    timestamp: &str,
    nonce: &str,
    body: &str,
) -> Result<Message, Rejection> {
    let crypto = account
        .crypto
        .as_ref()
        .ok_or(Rejection::SafeModeNotConfigured)?;
    let msg_signature = required(&query.msg_signature, "msg_signature")?;
    let envelope =
        parse_encrypted_envelope(body).map_err(|e| Rejection::MalformedXml(e.to_string()))?;
    let token = account.token.expose_secret();
    if !signature::verify(msg_signature, &[token, timestamp, nonce, &envelope.encrypt]) {
        return Err(Rejection::BadSignature);
    }
    let plaintext = crypto.decrypt(&envelope.encrypt).map_err(|e| match e {
        CryptoError::AppIdMismatch => Rejection::WrongAppId,
        _ => Rejection::Undecryptable,
    })?;
    parse(&plaintext)
}
