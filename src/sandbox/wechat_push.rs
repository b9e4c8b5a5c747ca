//! WeChat's server pushing to our webhook, for the demo and the tests: the signed GET
//! that checks the server URL, signed POSTs in each encryption mode, sample messages,
//! and the reading of our reply the way WeChat reads it.
//!
//! The wire structs here are the sandbox's own, so a misspelled element in `wechat`
//! cannot agree with itself; so are its signatures and safe-mode crypto
//! (`src/sandbox/push_crypto.rs`), so a bug in our webhook's crypto cannot either.
//!
//! Where each rule comes from (`../shared/research/wechat-anchors.md` quotes the pages):
//! - every request's query starts `signature`, `timestamp`, `nonce`; POSTs add `openid`,
//!   and in 兼容/安全模式 `encrypt_type=aes` and `msg_signature` (§2.1, official
//!   "接入指南" and "消息加解密说明");
//! - 兼容模式 sends the plaintext elements with `<Encrypt>` beside them, 安全模式 only
//!   `<ToUserName>` and `<Encrypt>`; a 安全模式 reply must be encrypted, `success` or
//!   empty (§2.1-2.2, the official FAQ copy cited there);
//! - an encrypted reply carries `Encrypt`, `MsgSignature`, `TimeStamp`, `Nonce`, its
//!   signature made with the token over its own timestamp and nonce (§2.2);
//! - the timestamp is WeChat's clock: tests that skew it against the app's use
//!   [`WechatPush::signed_post_at`].

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngExt;
use serde::Deserialize;
use url::form_urlencoded;

pub use super::push_crypto::{PushAesKey, PushCryptoError};
use super::push_crypto::{decrypt, encrypt, sorted_sha1};

/// What WeChat takes as "no reply" besides an empty body.
const SUCCESS: &str = "success";

/// The three settings of 消息加解密方式 in the account's console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionMode {
    /// 明文模式: the message as is.
    Plaintext,
    /// 兼容模式: the plaintext elements and `<Encrypt>` side by side; either reply works.
    Compatible,
    /// 安全模式: only `<Encrypt>`; the reply must be encrypted too.
    Safe,
}

/// The account as WeChat's server knows it.
#[derive(Clone, Debug)]
pub struct WechatPush {
    pub token: String,
    pub appid: String,
    /// Needed for [`EncryptionMode::Compatible`] and [`EncryptionMode::Safe`].
    pub aes_key: Option<PushAesKey>,
}

/// One POST to the server URL: append `?{query}` to it and send `body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPost {
    pub query: String,
    pub body: String,
    pub timestamp: String,
    pub nonce: String,
    /// How the body was sent, which decides what reply WeChat accepts.
    pub mode: EncryptionMode,
}

/// Why WeChat would not accept our reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenReplyError {
    #[error("safe mode needs an encrypted reply (or `success`)")]
    PlaintextInSafeMode,
    #[error("the reply is encrypted but the message was sent in plaintext")]
    UnexpectedEncryption,
    #[error("the encrypted reply has no <{0}>")]
    MissingField(&'static str),
    #[error("the reply's MsgSignature does not match our token")]
    BadSignature,
    #[error("no EncodingAESKey is configured")]
    NoAesKey,
    #[error("the encrypted reply does not open: {0}")]
    Crypto(#[from] PushCryptoError),
}

/// The elements of a pushed message the sandbox needs to address the POST.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct PushedHeader {
    to_user_name: Option<String>,
    from_user_name: Option<String>,
}

/// An encrypted passive reply, as WeChat reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EncryptedReply {
    encrypt: Option<String>,
    msg_signature: Option<String>,
    time_stamp: Option<String>,
    nonce: Option<String>,
}

impl WechatPush {
    /// The query of WeChat's GET when the server URL is saved in the console. Our
    /// server must answer with `echostr`, unchanged.
    pub fn verification_query(&self, echostr: &str) -> String {
        let mut query = self.signed_query(&unix_now().to_string(), &fresh_nonce());
        query.append_pair("echostr", echostr);
        query.finish()
    }

    /// Signs (and in compatible and safe mode encrypts) `xml` for a POST, now.
    ///
    /// # Panics
    /// If `mode` encrypts and `aes_key` is not set: a mistake in the test's setup.
    pub fn signed_post(&self, xml: &str, mode: EncryptionMode) -> SignedPost {
        self.signed_post_at(xml, mode, unix_now(), &fresh_nonce())
    }

    /// [`Self::signed_post`] with a chosen time and nonce, for tests that drive a clock
    /// or replay a request.
    ///
    /// # Panics
    /// If `mode` encrypts and `aes_key` is not set.
    pub fn signed_post_at(
        &self,
        xml: &str,
        mode: EncryptionMode,
        timestamp: i64,
        nonce: &str,
    ) -> SignedPost {
        let timestamp = timestamp.to_string();
        let header: PushedHeader = quick_xml::de::from_str(xml).unwrap_or_default();
        let mut query = self.signed_query(&timestamp, nonce);
        query.append_pair(
            "openid",
            header.from_user_name.as_deref().unwrap_or_default(),
        );
        let body = match mode {
            EncryptionMode::Plaintext => xml.to_owned(),
            EncryptionMode::Compatible => {
                let encrypt = self.encrypt_into_query(&mut query, xml, &timestamp, nonce);
                compatible_body(xml, &encrypt)
            }
            EncryptionMode::Safe => {
                let encrypt = self.encrypt_into_query(&mut query, xml, &timestamp, nonce);
                safe_body(header.to_user_name.as_deref().unwrap_or_default(), &encrypt)
            }
        };
        SignedPost {
            query: query.finish(),
            body,
            timestamp,
            nonce: nonce.to_owned(),
            mode,
        }
    }

    /// Reads our server's answer to `post` as WeChat would, returning the reply's
    /// plaintext XML (or the body itself when it is not encrypted: `success`, empty, or
    /// a plaintext reply). An encrypted reply must carry a `MsgSignature` made with our
    /// token over its own `TimeStamp` and `Nonce`.
    pub fn open_reply(
        &self,
        post: &SignedPost,
        response_body: &str,
    ) -> Result<String, OpenReplyError> {
        let encrypted = quick_xml::de::from_str::<EncryptedReply>(response_body)
            .ok()
            .filter(|reply| reply.encrypt.is_some());
        match (encrypted, post.mode) {
            (None, EncryptionMode::Safe) if !is_acknowledgement(response_body) => {
                Err(OpenReplyError::PlaintextInSafeMode)
            }
            (None, _) => Ok(response_body.to_owned()),
            (Some(_), EncryptionMode::Plaintext) => Err(OpenReplyError::UnexpectedEncryption),
            (Some(reply), _) => self.open_encrypted(reply),
        }
    }

    fn open_encrypted(&self, reply: EncryptedReply) -> Result<String, OpenReplyError> {
        let field = |value: Option<String>, name| value.ok_or(OpenReplyError::MissingField(name));
        let encrypt = field(reply.encrypt, "Encrypt")?;
        let signature = field(reply.msg_signature, "MsgSignature")?;
        let timestamp = field(reply.time_stamp, "TimeStamp")?;
        let nonce = field(reply.nonce, "Nonce")?;
        if sorted_sha1(&[&self.token, &timestamp, &nonce, &encrypt]) != signature {
            return Err(OpenReplyError::BadSignature);
        }
        let key = self.aes_key.as_ref().ok_or(OpenReplyError::NoAesKey)?;
        Ok(decrypt(key, &self.appid, &encrypt)?)
    }

    /// `signature`, `timestamp` and `nonce`: the start of every query WeChat sends.
    fn signed_query(
        &self,
        timestamp: &str,
        nonce: &str,
    ) -> form_urlencoded::Serializer<'static, String> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("signature", &sorted_sha1(&[&self.token, timestamp, nonce]))
            .append_pair("timestamp", timestamp)
            .append_pair("nonce", nonce);
        query
    }

    /// Encrypts `xml`, adds `encrypt_type` and `msg_signature` to the query, and returns
    /// the `Encrypt` value.
    fn encrypt_into_query(
        &self,
        query: &mut form_urlencoded::Serializer<'static, String>,
        xml: &str,
        timestamp: &str,
        nonce: &str,
    ) -> String {
        let Some(key) = &self.aes_key else {
            panic!("WechatPush needs an aes_key for compatible or safe mode");
        };
        let random: [u8; 16] = rand::rng().random();
        let encrypt = encrypt(key, &self.appid, &random, xml);
        query.append_pair("encrypt_type", "aes").append_pair(
            "msg_signature",
            &sorted_sha1(&[&self.token, timestamp, nonce, &encrypt]),
        );
        encrypt
    }
}

/// WeChat accepts these in every mode as "no reply".
fn is_acknowledgement(body: &str) -> bool {
    body.is_empty() || body == SUCCESS
}

/// 兼容模式 keeps every plaintext element and adds `<Encrypt>` before `</xml>`.
fn compatible_body(xml: &str, encrypt: &str) -> String {
    let mut element = String::from("<Encrypt>");
    push_cdata(&mut element, encrypt);
    element.push_str("</Encrypt>\n");
    match xml.rfind("</xml>") {
        Some(end) => format!("{}{element}{}", &xml[..end], &xml[end..]),
        None => format!("{xml}{element}"),
    }
}

/// Wraps `text` in CDATA; a `]]>` inside is split across two sections.
fn push_cdata(xml: &mut String, text: &str) {
    xml.push_str("<![CDATA[");
    xml.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
    xml.push_str("]]>");
}

fn safe_body(to_user_name: &str, encrypt: &str) -> String {
    let mut body = String::from("<xml><ToUserName>");
    push_cdata(&mut body, to_user_name);
    body.push_str("</ToUserName><Encrypt>");
    push_cdata(&mut body, encrypt);
    body.push_str("</Encrypt></xml>");
    body
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// WeChat's nonces are decimal numbers of nine or ten digits.
fn fresh_nonce() -> String {
    rand::rng()
        .random_range(100_000_000u32..=u32::MAX)
        .to_string()
}

/// The start every pushed document shares. `to` is our account (`gh_…`), `from` the
/// follower's openid; elements are one per line, as WeChat sends them.
fn envelope(to: &str, from: &str, create_time: i64, msg_type: &str) -> String {
    let mut xml = String::from("<xml><ToUserName>");
    push_cdata(&mut xml, to);
    xml.push_str("</ToUserName>\n<FromUserName>");
    push_cdata(&mut xml, from);
    xml.push_str(&format!(
        "</FromUserName>\n<CreateTime>{create_time}</CreateTime>\n<MsgType>"
    ));
    push_cdata(&mut xml, msg_type);
    xml.push_str("</MsgType>\n");
    xml
}

fn push_element(xml: &mut String, name: &str, value: &str) {
    xml.push_str(&format!("<{name}>"));
    push_cdata(xml, value);
    xml.push_str(&format!("</{name}>\n"));
}

fn event_xml(to: &str, from: &str, create_time: i64, event: &str, key: Option<&str>) -> String {
    let mut xml = envelope(to, from, create_time, "event");
    push_element(&mut xml, "Event", event);
    if let Some(key) = key {
        push_element(&mut xml, "EventKey", key);
    }
    xml.push_str("</xml>");
    xml
}

/// A follower's text message.
pub fn text_xml(to: &str, from: &str, content: &str, msg_id: i64, create_time: i64) -> String {
    let mut xml = envelope(to, from, create_time, "text");
    push_element(&mut xml, "Content", content);
    xml.push_str(&format!("<MsgId>{msg_id}</MsgId>\n</xml>"));
    xml
}

/// A follower's picture.
pub fn image_xml(
    to: &str,
    from: &str,
    pic_url: &str,
    media_id: &str,
    msg_id: i64,
    create_time: i64,
) -> String {
    let mut xml = envelope(to, from, create_time, "image");
    push_element(&mut xml, "PicUrl", pic_url);
    push_element(&mut xml, "MediaId", media_id);
    xml.push_str(&format!("<MsgId>{msg_id}</MsgId>\n</xml>"));
    xml
}

/// A follow. `event_key` is `qrscene_<scene>` when it came through a QR code; an
/// ordinary follow carries an empty `EventKey`, as WeChat sends it.
pub fn subscribe_xml(to: &str, from: &str, create_time: i64, event_key: Option<&str>) -> String {
    event_xml(
        to,
        from,
        create_time,
        "subscribe",
        Some(event_key.unwrap_or_default()),
    )
}

pub fn unsubscribe_xml(to: &str, from: &str, create_time: i64) -> String {
    event_xml(to, from, create_time, "unsubscribe", Some(""))
}

/// A tap on a `click` menu button with this `key`.
pub fn click_xml(to: &str, from: &str, key: &str, create_time: i64) -> String {
    event_xml(to, from, create_time, "CLICK", Some(key))
}

/// A tap on a `view` menu button that opens `url`.
pub fn view_xml(to: &str, from: &str, url: &str, create_time: i64) -> String {
    event_xml(to, from, create_time, "VIEW", Some(url))
}

#[cfg(test)]
mod tests {
    use super::*;
    // The tests read the sandbox's output with our webhook's code: that is the
    // interoperability being tested, from the other side.
    use crate::wechat::crypto::{EncodingAesKey, MessageCrypto};
    use crate::wechat::message::{Event, MessageKind, parse_encrypted_envelope, parse_message};
    use crate::wechat::reply::Reply;
    use crate::wechat::signature::{self, url_signature};

    const TOKEN: &str = "campus-token";
    const APPID: &str = "wx2c2769f8efd9abc2";
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const ACCOUNT: &str = "gh_10f6c3c3ac5a";
    const FOLLOWER: &str = "oyORnuP8q7ou2gfYjqLzSIWZf0rs";

    fn push() -> WechatPush {
        WechatPush {
            token: TOKEN.into(),
            appid: APPID.into(),
            aes_key: Some(PushAesKey::parse(KEY).expect("valid key")),
        }
    }

    fn our_crypto() -> MessageCrypto {
        MessageCrypto::new(EncodingAesKey::parse(KEY).expect("valid key"), APPID)
    }

    fn query_value(query: &str, name: &str) -> Option<String> {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    fn query_names(query: &str) -> Vec<String> {
        form_urlencoded::parse(query.as_bytes())
            .map(|(key, _)| key.into_owned())
            .collect()
    }

    /// What our webhook does with a POST: check `signature`, and in encrypted modes
    /// `msg_signature`, then decrypt.
    fn receive(post: &SignedPost) -> String {
        let value = |name| query_value(&post.query, name).expect(name);
        let (timestamp, nonce) = (value("timestamp"), value("nonce"));
        assert_eq!(
            (timestamp.as_str(), nonce.as_str()),
            (post.timestamp.as_str(), post.nonce.as_str())
        );
        assert!(signature::verify(
            &value("signature"),
            &[TOKEN, &timestamp, &nonce]
        ));
        if post.mode == EncryptionMode::Plaintext {
            assert_eq!(query_value(&post.query, "encrypt_type"), None);
            return post.body.clone();
        }
        assert_eq!(value("encrypt_type"), "aes");
        let envelope = parse_encrypted_envelope(&post.body).expect("an envelope");
        assert!(signature::verify(
            &value("msg_signature"),
            &[TOKEN, &timestamp, &nonce, &envelope.encrypt]
        ));
        our_crypto().decrypt(&envelope.encrypt).expect("decrypts")
    }

    #[test]
    fn the_verification_query_is_signed_and_carries_echostr_intact() {
        let echostr = "5927782489442352469 &=?中";
        let query = push().verification_query(echostr);
        assert_eq!(
            query_names(&query),
            ["signature", "timestamp", "nonce", "echostr"]
        );
        let value = |name| query_value(&query, name).expect(name);
        assert!(signature::verify(
            &value("signature"),
            &[TOKEN, &value("timestamp"), &value("nonce")]
        ));
        assert_eq!(value("echostr"), echostr);
        assert!(!query.contains(' '), "url-encoded: {query}");
    }

    #[test]
    fn each_verification_query_has_a_fresh_nonce() {
        let first = push().verification_query("e");
        let second = push().verification_query("e");
        assert_ne!(query_value(&first, "nonce"), query_value(&second, "nonce"));
    }

    #[test]
    fn plaintext_mode_signs_the_url_and_sends_the_xml() {
        let xml = text_xml(
            ACCOUNT,
            FOLLOWER,
            "我要缴费",
            6_054_768_590_064_713_728,
            1_700_000_000,
        );
        let post = push().signed_post(&xml, EncryptionMode::Plaintext);
        assert_eq!(
            query_names(&post.query),
            ["signature", "timestamp", "nonce", "openid"]
        );
        assert_eq!(
            query_value(&post.query, "openid").as_deref(),
            Some(FOLLOWER)
        );
        assert_eq!(post.body, xml);
        let message = parse_message(&receive(&post)).expect("parses");
        assert_eq!(
            message.kind,
            MessageKind::Text {
                content: "我要缴费".into(),
                msg_id: Some(6_054_768_590_064_713_728)
            }
        );
    }

    #[test]
    fn compatible_mode_sends_both_forms() {
        let xml = click_xml(ACCOUNT, FOLLOWER, "MY_FEES", 1_700_000_000);
        let post = push().signed_post(&xml, EncryptionMode::Compatible);
        assert_eq!(
            query_names(&post.query),
            [
                "signature",
                "timestamp",
                "nonce",
                "openid",
                "encrypt_type",
                "msg_signature"
            ]
        );
        // A server that ignores `<Encrypt>` still reads the message...
        let plain = parse_message(&post.body).expect("plaintext elements");
        // ...and one that decrypts reads the same message.
        let decrypted = receive(&post);
        assert_eq!(decrypted, xml);
        assert_eq!(parse_message(&decrypted).expect("parses"), plain);
        assert_eq!(
            plain.kind,
            MessageKind::Event(Event::Click {
                key: "MY_FEES".into()
            })
        );
    }

    #[test]
    fn safe_mode_sends_only_the_ciphertext() {
        let xml = subscribe_xml(ACCOUNT, FOLLOWER, 1_700_000_000, Some("qrscene_42"));
        let post = push().signed_post(&xml, EncryptionMode::Safe);
        assert_eq!(
            parse_encrypted_envelope(&post.body)
                .expect("envelope")
                .to_user_name
                .as_deref(),
            Some(ACCOUNT)
        );
        assert!(!post.body.contains(FOLLOWER));
        assert!(parse_message(&post.body).is_err());
        let message = parse_message(&receive(&post)).expect("parses");
        assert_eq!(
            message.kind,
            MessageKind::Event(Event::Subscribe {
                event_key: Some("qrscene_42".into()),
                ticket: None
            })
        );
    }

    #[test]
    fn a_chosen_time_and_nonce_are_used_as_given() {
        let xml = unsubscribe_xml(ACCOUNT, FOLLOWER, 1);
        let post =
            push().signed_post_at(&xml, EncryptionMode::Plaintext, 1_409_735_669, "1320562132");
        assert_eq!(post.timestamp, "1409735669");
        assert_eq!(post.nonce, "1320562132");
        assert_eq!(
            query_value(&post.query, "signature"),
            Some(url_signature(TOKEN, "1409735669", "1320562132"))
        );
    }

    #[test]
    fn a_malformed_body_is_still_sent_so_the_webhook_can_refuse_it() {
        let post = push().signed_post("<xml><oops", EncryptionMode::Safe);
        assert_eq!(query_value(&post.query, "openid").as_deref(), Some(""));
        assert_eq!(receive(&post), "<xml><oops");
    }

    #[test]
    #[should_panic(expected = "aes_key")]
    fn encrypting_without_a_key_is_a_setup_mistake() {
        let mut push = push();
        push.aes_key = None;
        push.signed_post("<xml/>", EncryptionMode::Safe);
    }

    #[test]
    fn the_sample_builders_parse_as_their_kinds() {
        let parsed = |xml: String| parse_message(&xml).expect("parses");
        let image = parsed(image_xml(
            ACCOUNT,
            FOLLOWER,
            "http://mmbiz.qpic.cn/x",
            "media",
            9,
            5,
        ));
        assert_eq!(
            image.kind,
            MessageKind::Image {
                pic_url: "http://mmbiz.qpic.cn/x".into(),
                media_id: "media".into(),
                msg_id: Some(9)
            }
        );
        assert_eq!(
            (image.from_user_name.as_str(), image.create_time),
            (FOLLOWER, 5)
        );
        assert_eq!(
            parsed(subscribe_xml(ACCOUNT, FOLLOWER, 5, None)).kind,
            MessageKind::Event(Event::Subscribe {
                event_key: None,
                ticket: None
            })
        );
        assert_eq!(
            parsed(unsubscribe_xml(ACCOUNT, FOLLOWER, 5)).kind,
            MessageKind::Event(Event::Unsubscribe)
        );
        assert_eq!(
            parsed(view_xml(
                ACCOUNT,
                FOLLOWER,
                "https://pay.example.edu.cn/h5?a=1&b=2",
                5
            ))
            .kind,
            MessageKind::Event(Event::View {
                url: "https://pay.example.edu.cn/h5?a=1&b=2".into(),
                menu_id: None
            })
        );
    }

    #[test]
    fn builders_keep_awkward_content_intact() {
        let content = "a]]>b <c> & 中";
        let message = parse_message(&text_xml(ACCOUNT, FOLLOWER, content, 1, 1)).expect("parses");
        assert_eq!(
            message.kind,
            MessageKind::Text {
                content: content.into(),
                msg_id: Some(1)
            }
        );
    }

    #[test]
    fn an_encrypted_reply_is_verified_and_opened() {
        let post = push().signed_post(
            &text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1),
            EncryptionMode::Safe,
        );
        let reply = Reply::text("你好").to_xml(FOLLOWER, ACCOUNT, 2);
        let body = our_crypto().encrypted_reply_xml(TOKEN, &reply, "1700000001", "777");
        assert_eq!(push().open_reply(&post, &body), Ok(reply.clone()));
        let compatible = push().signed_post(
            &text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1),
            EncryptionMode::Compatible,
        );
        assert_eq!(push().open_reply(&compatible, &body), Ok(reply));
    }

    #[test]
    fn an_encrypted_reply_signed_with_another_token_is_refused() {
        let post = push().signed_post(
            &text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1),
            EncryptionMode::Safe,
        );
        let body = our_crypto().encrypted_reply_xml("not-our-token", "<xml/>", "1", "2");
        assert_eq!(
            push().open_reply(&post, &body),
            Err(OpenReplyError::BadSignature)
        );
        let unsigned = body
            .replace("<MsgSignature>", "<Other>")
            .replace("</MsgSignature>", "</Other>");
        assert_eq!(
            push().open_reply(&post, &unsigned),
            Err(OpenReplyError::MissingField("MsgSignature"))
        );
    }

    #[test]
    fn a_reply_encrypted_for_another_app_is_refused() {
        let post = push().signed_post(
            &text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1),
            EncryptionMode::Safe,
        );
        let other_app = MessageCrypto::new(EncodingAesKey::parse(KEY).expect("key"), "wx_other");
        let body = other_app.encrypted_reply_xml(TOKEN, "<xml/>", "1", "2");
        assert_eq!(
            push().open_reply(&post, &body),
            Err(OpenReplyError::Crypto(PushCryptoError::OtherAppId))
        );
    }

    #[test]
    fn safe_mode_accepts_only_encrypted_replies_or_an_acknowledgement() {
        let post = push().signed_post(
            &text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1),
            EncryptionMode::Safe,
        );
        let plaintext_reply = Reply::text("x").to_xml(FOLLOWER, ACCOUNT, 2);
        assert_eq!(
            push().open_reply(&post, &plaintext_reply),
            Err(OpenReplyError::PlaintextInSafeMode)
        );
        assert_eq!(push().open_reply(&post, SUCCESS).as_deref(), Ok(SUCCESS));
        assert_eq!(push().open_reply(&post, "").as_deref(), Ok(""));
    }

    #[test]
    fn plaintext_and_compatible_mode_take_a_plaintext_reply_as_is() {
        let reply = Reply::text("x").to_xml(FOLLOWER, ACCOUNT, 2);
        for mode in [EncryptionMode::Plaintext, EncryptionMode::Compatible] {
            let post = push().signed_post(&text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1), mode);
            assert_eq!(push().open_reply(&post, &reply), Ok(reply.clone()));
            assert_eq!(push().open_reply(&post, SUCCESS).as_deref(), Ok(SUCCESS));
        }
    }

    #[test]
    fn plaintext_mode_does_not_expect_an_encrypted_reply() {
        let post = push().signed_post(
            &text_xml(ACCOUNT, FOLLOWER, "hi", 1, 1),
            EncryptionMode::Plaintext,
        );
        let body = our_crypto().encrypted_reply_xml(TOKEN, "<xml/>", "1", "2");
        assert_eq!(
            push().open_reply(&post, &body),
            Err(OpenReplyError::UnexpectedEncryption)
        );
    }
}
