//! The XML that WeChat pushes to our server URL: ordinary messages and events, plus the
//! safe-mode envelope that carries them encrypted.
//!
//! Parsing is two steps: quick-xml fills a flat struct of optional strings (unknown
//! elements are ignored), then [`Message`] is built from it. Only the envelope
//! (`ToUserName`, `FromUserName`, `CreateTime`, `MsgType`, and `Event` for events) is
//! required. A text field WeChat left out reads as empty, and numbers are `Option`s,
//! so one odd message is still answered instead of making WeChat retry it.

use quick_xml::events::Event as XmlEvent;
use serde::Deserialize;

/// Why a pushed document was refused. Short, fixed messages: they never echo input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the body is not well-formed XML")]
    Malformed,
    #[error("the root element is not <xml>")]
    NotWechatRoot,
    #[error("the <{0}> element is missing or empty")]
    MissingField(&'static str),
    #[error("<CreateTime> is not an integer")]
    BadCreateTime,
}

/// The safe-mode body: `<xml><ToUserName>…</ToUserName><Encrypt>…</Encrypt></xml>`
/// (compatible mode adds the plaintext elements beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedEnvelope {
    pub to_user_name: Option<String>,
    pub encrypt: String,
}

/// A message or event pushed by WeChat.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Our account's original id (`gh_…`).
    pub to_user_name: String,
    /// The follower's openid.
    pub from_user_name: String,
    /// Seconds since the epoch.
    pub create_time: i64,
    pub kind: MessageKind,
}

/// What the follower sent. `msg_id` is `None` when WeChat's `MsgId` is absent or not a
/// 64-bit integer.
#[derive(Clone, Debug, PartialEq)]
pub enum MessageKind {
    Text {
        content: String,
        msg_id: Option<i64>,
    },
    Image {
        pic_url: String,
        media_id: String,
        msg_id: Option<i64>,
    },
    Voice {
        media_id: String,
        format: String,
        /// Speech recognition, when the account has it switched on.
        recognition: Option<String>,
        msg_id: Option<i64>,
    },
    Video {
        media_id: String,
        thumb_media_id: String,
        msg_id: Option<i64>,
    },
    ShortVideo {
        media_id: String,
        thumb_media_id: String,
        msg_id: Option<i64>,
    },
    Location {
        latitude: Option<f64>,
        longitude: Option<f64>,
        scale: Option<u32>,
        label: String,
        msg_id: Option<i64>,
    },
    Link {
        title: String,
        description: String,
        url: String,
        msg_id: Option<i64>,
    },
    Event(Event),
    /// A message type this code does not know (WeChat adds some now and then).
    Other {
        msg_type: String,
        msg_id: Option<i64>,
    },
}

/// An event (`MsgType` `event`). WeChat's spelling of the names varies in case
/// (`subscribe`, `SCAN`, `CLICK`…), so they are matched case-insensitively.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `event_key` is `qrscene_<scene>` when the follower came through a QR code.
    Subscribe {
        event_key: Option<String>,
        ticket: Option<String>,
    },
    Unsubscribe,
    /// A follower scanned one of our QR codes; `event_key` is the bare scene value.
    Scan {
        event_key: String,
        ticket: Option<String>,
    },
    /// The periodic location report (every 5 s while the chat is open, if enabled).
    Location {
        latitude: Option<f64>,
        longitude: Option<f64>,
        precision: Option<f64>,
    },
    Click {
        key: String,
    },
    View {
        url: String,
        menu_id: Option<String>,
    },
    ScancodePush {
        key: String,
        scan_result: String,
    },
    ScancodeWaitmsg {
        key: String,
        scan_result: String,
    },
    PicSysphoto {
        key: String,
    },
    PicPhotoOrAlbum {
        key: String,
    },
    PicWeixin {
        key: String,
    },
    LocationSelect {
        key: String,
    },
    /// `key` is the mini program page path.
    ViewMiniprogram {
        key: String,
    },
    /// `status` is `success`, `failed:user block` or `failed: system failed`.
    TemplateSendJobFinish {
        msg_id: Option<i64>,
        status: String,
    },
    MassSendJobFinish {
        msg_id: Option<i64>,
        status: String,
    },
    Other {
        event: String,
        event_key: Option<String>,
    },
}

/// The elements we read, all optional: required ones are checked while converting, so
/// the error can name the missing element.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawMessage {
    to_user_name: Option<String>,
    from_user_name: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    msg_id: Option<String>,
    /// Template and mass-send reports spell it `MsgID`.
    #[serde(rename = "MsgID")]
    msg_id_upper: Option<String>,
    content: Option<String>,
    pic_url: Option<String>,
    media_id: Option<String>,
    format: Option<String>,
    recognition: Option<String>,
    thumb_media_id: Option<String>,
    #[serde(rename = "Location_X")]
    location_x: Option<String>,
    #[serde(rename = "Location_Y")]
    location_y: Option<String>,
    scale: Option<String>,
    label: Option<String>,
    title: Option<String>,
    description: Option<String>,
    url: Option<String>,
    event: Option<String>,
    event_key: Option<String>,
    ticket: Option<String>,
    latitude: Option<String>,
    longitude: Option<String>,
    precision: Option<String>,
    menu_id: Option<String>,
    scan_code_info: Option<RawScanCodeInfo>,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawScanCodeInfo {
    scan_result: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawEnvelope {
    to_user_name: Option<String>,
    encrypt: Option<String>,
}

/// Parses a plaintext (or decrypted) message pushed by WeChat.
pub fn parse_message(xml: &str) -> Result<Message, XmlError> {
    let raw: RawMessage = deserialize_wechat_xml(xml)?;
    raw.into_message()
}

/// Reads the `Encrypt` element (and `ToUserName`, if present) of a safe- or
/// compatible-mode body.
pub fn parse_encrypted_envelope(xml: &str) -> Result<EncryptedEnvelope, XmlError> {
    let raw: RawEnvelope = deserialize_wechat_xml(xml)?;
    Ok(EncryptedEnvelope {
        to_user_name: non_empty(raw.to_user_name),
        encrypt: required(raw.encrypt, "Encrypt")?,
    })
}

fn deserialize_wechat_xml<T: for<'de> Deserialize<'de>>(xml: &str) -> Result<T, XmlError> {
    // quick-xml's deserializer accepts any root name, so check it ourselves.
    check_root_is_xml(xml)?;
    quick_xml::de::from_str(xml).map_err(|_| XmlError::Malformed)
}

fn check_root_is_xml(xml: &str) -> Result<(), XmlError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().map_err(|_| XmlError::Malformed)? {
            XmlEvent::Start(root) | XmlEvent::Empty(root) => {
                return match root.name().as_ref() {
                    "xml" => Ok(()),
                    _ => Err(XmlError::NotWechatRoot),
                };
            }
            XmlEvent::Text(text) if !text.trim().is_empty() => {
                return Err(XmlError::Malformed);
            }
            XmlEvent::Eof => return Err(XmlError::Malformed),
            // The declaration, comments, a doctype, whitespace: look further.
            _ => {}
        }
    }
}

impl RawMessage {
    fn into_message(mut self) -> Result<Message, XmlError> {
        let to_user_name = required(self.to_user_name.take(), "ToUserName")?;
        let from_user_name = required(self.from_user_name.take(), "FromUserName")?;
        let create_time = required(self.create_time.take(), "CreateTime")?
            .trim()
            .parse()
            .map_err(|_| XmlError::BadCreateTime)?;
        let msg_type = required(self.msg_type.take(), "MsgType")?;
        Ok(Message {
            to_user_name,
            from_user_name,
            create_time,
            kind: self.into_kind(msg_type)?,
        })
    }

    fn into_kind(self, msg_type: String) -> Result<MessageKind, XmlError> {
        let msg_id = parse_trimmed(self.msg_id.as_deref());
        let kind = match msg_type.to_ascii_lowercase().as_str() {
            "text" => MessageKind::Text {
                content: text(self.content),
                msg_id,
            },
            "image" => MessageKind::Image {
                pic_url: text(self.pic_url),
                media_id: text(self.media_id),
                msg_id,
            },
            "voice" => MessageKind::Voice {
                media_id: text(self.media_id),
                format: text(self.format),
                recognition: non_empty(self.recognition),
                msg_id,
            },
            "video" => MessageKind::Video {
                media_id: text(self.media_id),
                thumb_media_id: text(self.thumb_media_id),
                msg_id,
            },
            "shortvideo" => MessageKind::ShortVideo {
                media_id: text(self.media_id),
                thumb_media_id: text(self.thumb_media_id),
                msg_id,
            },
            "location" => MessageKind::Location {
                latitude: finite_number(self.location_x.as_deref()),
                longitude: finite_number(self.location_y.as_deref()),
                scale: parse_trimmed(self.scale.as_deref()),
                label: text(self.label),
                msg_id,
            },
            "link" => MessageKind::Link {
                title: text(self.title),
                description: text(self.description),
                url: text(self.url),
                msg_id,
            },
            "event" => MessageKind::Event(self.into_event()?),
            _ => MessageKind::Other { msg_type, msg_id },
        };
        Ok(kind)
    }

    fn into_event(self) -> Result<Event, XmlError> {
        let name = required(self.event, "Event")?;
        let key = self.event_key.clone().unwrap_or_default();
        let scan_result = || text(self.scan_code_info.and_then(|info| info.scan_result));
        // Template and mass-send reports use `MsgID`; accept `MsgId` too.
        let report_msg_id = || parse_trimmed(self.msg_id_upper.or(self.msg_id).as_deref());
        let event = match name.to_ascii_lowercase().as_str() {
            "subscribe" => Event::Subscribe {
                event_key: non_empty(self.event_key),
                ticket: non_empty(self.ticket),
            },
            "unsubscribe" => Event::Unsubscribe,
            "scan" => Event::Scan {
                event_key: key,
                ticket: non_empty(self.ticket),
            },
            "location" => Event::Location {
                latitude: finite_number(self.latitude.as_deref()),
                longitude: finite_number(self.longitude.as_deref()),
                precision: finite_number(self.precision.as_deref()),
            },
            "click" => Event::Click { key },
            "view" => Event::View {
                url: key,
                menu_id: non_empty(self.menu_id),
            },
            "scancode_push" => Event::ScancodePush {
                key,
                scan_result: scan_result(),
            },
            "scancode_waitmsg" => Event::ScancodeWaitmsg {
                key,
                scan_result: scan_result(),
            },
            "pic_sysphoto" => Event::PicSysphoto { key },
            "pic_photo_or_album" => Event::PicPhotoOrAlbum { key },
            "pic_weixin" => Event::PicWeixin { key },
            "location_select" => Event::LocationSelect { key },
            "view_miniprogram" => Event::ViewMiniprogram { key },
            "templatesendjobfinish" => Event::TemplateSendJobFinish {
                msg_id: report_msg_id(),
                status: text(self.status),
            },
            "masssendjobfinish" => Event::MassSendJobFinish {
                msg_id: report_msg_id(),
                status: text(self.status),
            },
            _ => Event::Other {
                event: name,
                event_key: non_empty(self.event_key),
            },
        };
        Ok(event)
    }
}

fn required(value: Option<String>, element: &'static str) -> Result<String, XmlError> {
    non_empty(value).ok_or(XmlError::MissingField(element))
}

/// WeChat sends `<EventKey><![CDATA[]]></EventKey>` for "no key"; treat it as absent.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn text(value: Option<String>) -> String {
    value.unwrap_or_default()
}

/// Numbers may come padded with whitespace when a client pretty-prints the XML.
fn parse_trimmed<T: std::str::FromStr>(value: Option<&str>) -> Option<T> {
    value.and_then(|v| v.trim().parse().ok())
}

/// A coordinate or precision; `NaN` and infinities parse as `f64` but mean nothing here.
fn finite_number(value: Option<&str>) -> Option<f64> {
    parse_trimmed::<f64>(value).filter(|n| n.is_finite())
}

impl Message {
    /// The key under which retries of this message are recognised (WeChat resends up
    /// to three times). MsgId alone has collided across users, so the sender and time
    /// are part of it; events have no MsgId and use sender, time, name and key.
    pub fn dedup_key(&self) -> String {
        let from = &self.from_user_name;
        let time = self.create_time;
        match self.kind.msg_id() {
            Some(msg_id) => format!("msg:{msg_id}:{from}:{time}"),
            None => {
                let name = self.kind.event_name();
                let key = self.kind.event_key().unwrap_or_default();
                format!("evt:{from}:{time}:{name}:{key}")
            }
        }
    }
}

impl MessageKind {
    /// WeChat's `MsgType` for this kind.
    pub fn msg_type(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Voice { .. } => "voice",
            Self::Video { .. } => "video",
            Self::ShortVideo { .. } => "shortvideo",
            Self::Location { .. } => "location",
            Self::Link { .. } => "link",
            Self::Event(_) => "event",
            Self::Other { msg_type, .. } => msg_type,
        }
    }

    /// The `MsgId` of an ordinary message; events have none.
    pub fn msg_id(&self) -> Option<i64> {
        match self {
            Self::Text { msg_id, .. }
            | Self::Image { msg_id, .. }
            | Self::Voice { msg_id, .. }
            | Self::Video { msg_id, .. }
            | Self::ShortVideo { msg_id, .. }
            | Self::Location { msg_id, .. }
            | Self::Link { msg_id, .. }
            | Self::Other { msg_id, .. } => *msg_id,
            Self::Event(_) => None,
        }
    }

    /// The event's name, or the message type for a message without a MsgId.
    fn event_name(&self) -> &str {
        match self {
            Self::Event(event) => event.name(),
            other => other.msg_type(),
        }
    }

    fn event_key(&self) -> Option<String> {
        match self {
            Self::Event(event) => event.key(),
            _ => None,
        }
    }
}

impl Event {
    /// The name as WeChat spells it (unknown events keep the spelling they came with).
    pub fn name(&self) -> &str {
        match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Scan { .. } => "SCAN",
            Self::Location { .. } => "LOCATION",
            Self::Click { .. } => "CLICK",
            Self::View { .. } => "VIEW",
            Self::ScancodePush { .. } => "scancode_push",
            Self::ScancodeWaitmsg { .. } => "scancode_waitmsg",
            Self::PicSysphoto { .. } => "pic_sysphoto",
            Self::PicPhotoOrAlbum { .. } => "pic_photo_or_album",
            Self::PicWeixin { .. } => "pic_weixin",
            Self::LocationSelect { .. } => "location_select",
            Self::ViewMiniprogram { .. } => "view_miniprogram",
            Self::TemplateSendJobFinish { .. } => "TEMPLATESENDJOBFINISH",
            Self::MassSendJobFinish { .. } => "MASSSENDJOBFINISH",
            Self::Other { event, .. } => event,
        }
    }

    /// What tells two events of the same name apart at the same second: the
    /// `EventKey`, or for job reports the id of the job.
    fn key(&self) -> Option<String> {
        match self {
            Self::Subscribe { event_key, .. } | Self::Other { event_key, .. } => event_key.clone(),
            Self::Scan { event_key, .. } => Some(event_key.clone()),
            Self::Click { key }
            | Self::ScancodePush { key, .. }
            | Self::ScancodeWaitmsg { key, .. }
            | Self::PicSysphoto { key }
            | Self::PicPhotoOrAlbum { key }
            | Self::PicWeixin { key }
            | Self::LocationSelect { key }
            | Self::ViewMiniprogram { key } => Some(key.clone()),
            Self::View { url, .. } => Some(url.clone()),
            Self::TemplateSendJobFinish { msg_id, .. } | Self::MassSendJobFinish { msg_id, .. } => {
                msg_id.map(|id| id.to_string())
            }
            Self::Unsubscribe | Self::Location { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Wraps the kind-specific elements in the envelope of WeChat's documentation
    /// samples (pretty-printed, CDATA everywhere, as WeChat sends them).
    fn pushed(msg_type: &str, body: &str) -> String {
        format!(
            "<xml>\n  <ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n  \
             <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n  \
             <CreateTime>1409735668</CreateTime>\n  \
             <MsgType><![CDATA[{msg_type}]]></MsgType>\n  {body}\n</xml>"
        )
    }

    fn event(body: &str) -> Event {
        match parse_message(&pushed("event", body)).expect("parses").kind {
            MessageKind::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn kind(msg_type: &str, body: &str) -> MessageKind {
        parse_message(&pushed(msg_type, body)).expect("parses").kind
    }

    #[test]
    fn the_envelope_is_read() {
        let message =
            parse_message(&pushed("text", "<Content><![CDATA[hi]]></Content>")).expect("parses");
        assert_eq!(message.to_user_name, "gh_10f6c3c3ac5a");
        assert_eq!(message.from_user_name, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
        assert_eq!(message.create_time, 1_409_735_668);
    }

    #[test]
    fn a_text_message_with_a_nineteen_digit_msg_id() {
        // The decrypted message of the official Python sample (anchor 3.2).
        let xml = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>";
        let message = parse_message(xml).expect("parses");
        assert_eq!(
            message.kind,
            MessageKind::Text {
                content: "abcdteT".into(),
                msg_id: Some(6_054_768_590_064_713_728),
            }
        );
        assert_eq!(
            message.dedup_key(),
            "msg:6054768590064713728:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1409735668"
        );
    }

    #[test]
    fn plain_text_values_and_entities_read_like_cdata() {
        let xml = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName>\
                   <CreateTime> 1700000000 </CreateTime><MsgType>text</MsgType>\
                   <Content>学费 &amp; 住宿费 &lt;2024&gt;</Content><MsgId>42</MsgId></xml>";
        let message = parse_message(xml).expect("parses");
        assert_eq!(message.create_time, 1_700_000_000);
        assert_eq!(
            message.kind,
            MessageKind::Text {
                content: "学费 & 住宿费 <2024>".into(),
                msg_id: Some(42),
            }
        );
    }

    #[test]
    fn chinese_content_and_a_declaration_are_fine() {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
            pushed(
                "text",
                "<Content><![CDATA[我要缴费，18汽修张三]]></Content><MsgId>1</MsgId>"
            )
        );
        match parse_message(&xml).expect("parses").kind {
            MessageKind::Text { content, .. } => assert_eq!(content, "我要缴费，18汽修张三"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn image_message() {
        let body = "<PicUrl><![CDATA[http://mmbiz.qpic.cn/abc]]></PicUrl>\
                    <MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId>";
        assert_eq!(
            kind("image", body),
            MessageKind::Image {
                pic_url: "http://mmbiz.qpic.cn/abc".into(),
                media_id: "media_id".into(),
                msg_id: Some(1_234_567_890_123_456),
            }
        );
    }

    #[test]
    fn voice_message_with_and_without_recognition() {
        let plain = "<MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[amr]]></Format>\
                     <MsgId>1234567890123456</MsgId>";
        assert_eq!(
            kind("voice", plain),
            MessageKind::Voice {
                media_id: "media_id".into(),
                format: "amr".into(),
                recognition: None,
                msg_id: Some(1_234_567_890_123_456),
            }
        );
        let recognised = format!("{plain}<Recognition><![CDATA[腾讯微信团队]]></Recognition>");
        match kind("voice", &recognised) {
            MessageKind::Voice { recognition, .. } => {
                assert_eq!(recognition.as_deref(), Some("腾讯微信团队"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn video_and_short_video_messages() {
        let body = "<MediaId><![CDATA[media_id]]></MediaId>\
                    <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId><MsgId>1234567890123456</MsgId>";
        assert_eq!(
            kind("video", body),
            MessageKind::Video {
                media_id: "media_id".into(),
                thumb_media_id: "thumb_media_id".into(),
                msg_id: Some(1_234_567_890_123_456),
            }
        );
        assert_eq!(
            kind("shortvideo", body),
            MessageKind::ShortVideo {
                media_id: "media_id".into(),
                thumb_media_id: "thumb_media_id".into(),
                msg_id: Some(1_234_567_890_123_456),
            }
        );
    }

    #[test]
    fn location_message() {
        let body = "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y>\
                    <Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>1234567890123456</MsgId>";
        assert_eq!(
            kind("location", body),
            MessageKind::Location {
                latitude: Some(23.134521),
                longitude: Some(113.358803),
                scale: Some(20),
                label: "位置信息".into(),
                msg_id: Some(1_234_567_890_123_456),
            }
        );
    }

    #[test]
    fn link_message() {
        let body = "<Title><![CDATA[公众平台官网链接]]></Title>\
                    <Description><![CDATA[公众平台官网链接]]></Description>\
                    <Url><![CDATA[https://mp.weixin.qq.com]]></Url><MsgId>1234567890123456</MsgId>";
        assert_eq!(
            kind("link", body),
            MessageKind::Link {
                title: "公众平台官网链接".into(),
                description: "公众平台官网链接".into(),
                url: "https://mp.weixin.qq.com".into(),
                msg_id: Some(1_234_567_890_123_456),
            }
        );
    }

    #[test]
    fn plain_subscribe_has_no_key() {
        // WeChat sends an empty EventKey for an ordinary subscribe.
        let subscribe =
            event("<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey>");
        assert_eq!(
            subscribe,
            Event::Subscribe {
                event_key: None,
                ticket: None
            }
        );
    }

    #[test]
    fn subscribe_through_a_qr_code() {
        let subscribe = event(
            "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey>\
             <Ticket><![CDATA[TICKET]]></Ticket>",
        );
        assert_eq!(
            subscribe,
            Event::Subscribe {
                event_key: Some("qrscene_123123".into()),
                ticket: Some("TICKET".into())
            }
        );
    }

    #[test]
    fn unsubscribe_and_scan() {
        assert_eq!(
            event("<Event><![CDATA[unsubscribe]]></Event><EventKey><![CDATA[]]></EventKey>"),
            Event::Unsubscribe
        );
        assert_eq!(
            event(
                "<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[SCENE_VALUE]]></EventKey>\
                 <Ticket><![CDATA[TICKET]]></Ticket>"
            ),
            Event::Scan {
                event_key: "SCENE_VALUE".into(),
                ticket: Some("TICKET".into())
            }
        );
    }

    #[test]
    fn location_report_event() {
        let body = "<Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude>\
                    <Longitude>113.352425</Longitude><Precision>119.385040</Precision>";
        assert_eq!(
            event(body),
            Event::Location {
                latitude: Some(23.137466),
                longitude: Some(113.352425),
                precision: Some(119.38504),
            }
        );
    }

    #[test]
    fn menu_click_and_view_events() {
        assert_eq!(
            event("<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MY_FEES]]></EventKey>"),
            Event::Click {
                key: "MY_FEES".into()
            }
        );
        assert_eq!(
            event(
                "<Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[https://pay.example.edu.cn/h5]]></EventKey>\
                 <MenuId>416875512</MenuId>"
            ),
            Event::View {
                url: "https://pay.example.edu.cn/h5".into(),
                menu_id: Some("416875512".into()),
            }
        );
    }

    #[test]
    fn scancode_events_read_the_nested_scan_result() {
        let info = "<EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>\
                    <ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>";
        assert_eq!(
            event(&format!("<Event><![CDATA[scancode_push]]></Event>{info}")),
            Event::ScancodePush {
                key: "6".into(),
                scan_result: "1".into()
            }
        );
        assert_eq!(
            event(&format!(
                "<Event><![CDATA[scancode_waitmsg]]></Event>{info}"
            )),
            Event::ScancodeWaitmsg {
                key: "6".into(),
                scan_result: "1".into()
            }
        );
    }

    #[test]
    fn picture_menu_events_ignore_their_picture_lists() {
        let pics = "<EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item>\
                    <PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>";
        let key = || "6".to_owned();
        for (name, expected) in [
            ("pic_sysphoto", Event::PicSysphoto { key: key() }),
            ("pic_photo_or_album", Event::PicPhotoOrAlbum { key: key() }),
            ("pic_weixin", Event::PicWeixin { key: key() }),
        ] {
            assert_eq!(
                event(&format!("<Event><![CDATA[{name}]]></Event>{pics}")),
                expected
            );
        }
    }

    #[test]
    fn location_select_ignores_its_nested_location() {
        let body = "<Event><![CDATA[location_select]]></Event><EventKey><![CDATA[6]]></EventKey>\
                    <SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y>\
                    <Scale><![CDATA[15]]></Scale><Label><![CDATA[ 广州市海珠区客村艺苑路 106号]]></Label>\
                    <Poiname><![CDATA[]]></Poiname></SendLocationInfo>";
        assert_eq!(event(body), Event::LocationSelect { key: "6".into() });
    }

    #[test]
    fn view_miniprogram_event() {
        let body = "<Event><![CDATA[view_miniprogram]]></Event>\
                    <EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId>";
        assert_eq!(
            event(body),
            Event::ViewMiniprogram {
                key: "pages/index/index".into()
            }
        );
    }

    #[test]
    fn job_reports_read_msg_id_in_either_spelling() {
        assert_eq!(
            event(
                "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>\
                 <Status><![CDATA[failed:user block]]></Status>"
            ),
            Event::TemplateSendJobFinish {
                msg_id: Some(200_163_836),
                status: "failed:user block".into()
            }
        );
        assert_eq!(
            event(
                "<Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgId>1000001625</MsgId>\
                 <Status><![CDATA[err(30003)]]></Status><TotalCount>0</TotalCount>"
            ),
            Event::MassSendJobFinish {
                msg_id: Some(1_000_001_625),
                status: "err(30003)".into()
            }
        );
    }

    #[test]
    fn event_names_match_in_any_case() {
        assert_eq!(
            event("<Event>Subscribe</Event>"),
            Event::Subscribe {
                event_key: None,
                ticket: None
            }
        );
        assert_eq!(
            event("<Event>click</Event><EventKey>K</EventKey>"),
            Event::Click { key: "K".into() }
        );
        assert_eq!(
            event("<Event>templateSendJobFinish</Event><Status>success</Status>"),
            Event::TemplateSendJobFinish {
                msg_id: None,
                status: "success".into()
            }
        );
        assert_eq!(
            kind("TEXT", "<Content>x</Content>"),
            MessageKind::Text {
                content: "x".into(),
                msg_id: None
            }
        );
    }

    #[test]
    fn unknown_events_and_message_types_are_kept_by_name() {
        assert_eq!(
            event("<Event><![CDATA[user_scan_product]]></Event><KeyStr>6901481811083</KeyStr>"),
            Event::Other {
                event: "user_scan_product".into(),
                event_key: None
            }
        );
        assert_eq!(
            kind("miniprogrampage", "<Title>t</Title><MsgId>77</MsgId>"),
            MessageKind::Other {
                msg_type: "miniprogrampage".into(),
                msg_id: Some(77)
            }
        );
    }

    #[test]
    fn unknown_elements_are_ignored() {
        let body = "<Content>x</Content><MsgDataId>xxxx</MsgDataId><Idx>1</Idx>\
                    <Nested><Deep a=\"1\"><Deeper/></Deep></Nested><MsgId>5</MsgId>";
        assert_eq!(
            kind("text", body),
            MessageKind::Text {
                content: "x".into(),
                msg_id: Some(5)
            }
        );
    }

    #[test]
    fn a_missing_or_odd_msg_id_is_none() {
        for body in [
            "<Content>x</Content>",
            "<Content>x</Content><MsgId>abc</MsgId>",
            "<Content>x</Content><MsgId>99999999999999999999</MsgId>",
            "<Content>x</Content><MsgId></MsgId>",
        ] {
            assert_eq!(kind("text", body).msg_id(), None, "{body}");
        }
    }

    #[test]
    fn absent_payload_text_reads_as_empty_and_absent_numbers_as_none() {
        assert_eq!(
            kind("text", ""),
            MessageKind::Text {
                content: String::new(),
                msg_id: None
            }
        );
        assert_eq!(
            kind(
                "location",
                "<Location_X>north</Location_X><Scale>-1</Scale>"
            ),
            MessageKind::Location {
                latitude: None,
                longitude: None,
                scale: None,
                label: String::new(),
                msg_id: None,
            }
        );
        assert_eq!(
            event("<Event>LOCATION</Event><Latitude>NaN</Latitude><Longitude>inf</Longitude>"),
            Event::Location {
                latitude: None,
                longitude: None,
                precision: None
            }
        );
    }

    #[test]
    fn each_envelope_element_is_required() {
        let full = [
            ("ToUserName", "<ToUserName>gh</ToUserName>"),
            ("FromUserName", "<FromUserName>o</FromUserName>"),
            ("CreateTime", "<CreateTime>1</CreateTime>"),
            ("MsgType", "<MsgType>text</MsgType>"),
        ];
        for (missing, _) in full {
            let others: String = full
                .iter()
                .filter(|(name, _)| *name != missing)
                .map(|(_, element)| *element)
                .collect();
            let xml = format!("<xml>{others}<Content>x</Content></xml>");
            assert_eq!(parse_message(&xml), Err(XmlError::MissingField(missing)));
            let blank = format!("<xml>{others}<{missing}><![CDATA[ ]]></{missing}></xml>");
            assert_eq!(parse_message(&blank), Err(XmlError::MissingField(missing)));
        }
    }

    #[test]
    fn an_event_needs_its_name() {
        let xml = pushed("event", "<EventKey>x</EventKey>");
        assert_eq!(parse_message(&xml), Err(XmlError::MissingField("Event")));
    }

    #[test]
    fn create_time_must_be_an_integer() {
        let xml = "<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName>\
                   <CreateTime>yesterday</CreateTime><MsgType>text</MsgType></xml>";
        assert_eq!(parse_message(xml), Err(XmlError::BadCreateTime));
    }

    #[test]
    fn documents_that_are_not_wechat_xml_are_refused() {
        let valid_body = "<ToUserName>g</ToUserName><FromUserName>o</FromUserName>\
                          <CreateTime>1</CreateTime><MsgType>text</MsgType>";
        let cases = [
            ("", XmlError::Malformed),
            ("   ", XmlError::Malformed),
            ("{\"ToUserName\":\"g\"}", XmlError::Malformed),
            ("<xml>", XmlError::Malformed),
            ("<xml><ToUserName>g</xml>", XmlError::Malformed),
            (
                "<xml><ToUserName>&bogus;</ToUserName></xml>",
                XmlError::Malformed,
            ),
            (
                "<xml><Content><b>x</b></Content></xml>",
                XmlError::Malformed,
            ),
            ("<xml/>", XmlError::MissingField("ToUserName")),
        ];
        for (xml, expected) in cases {
            assert_eq!(parse_message(xml), Err(expected), "{xml:?}");
        }
        let wrong_root = format!("<root>{valid_body}</root>");
        assert_eq!(parse_message(&wrong_root), Err(XmlError::NotWechatRoot));
        let text_first = format!("junk<xml>{valid_body}</xml>");
        assert_eq!(parse_message(&text_first), Err(XmlError::Malformed));
    }

    #[test]
    fn entity_declarations_are_not_expanded() {
        let xml = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY boom \"boom\">]>\
                   <xml><ToUserName>&boom;</ToUserName></xml>";
        assert_eq!(parse_message(xml), Err(XmlError::Malformed));
    }

    #[test]
    fn duplicate_elements_are_refused() {
        let xml = pushed("text", "<Content>a</Content><Content>b</Content>");
        assert_eq!(parse_message(&xml), Err(XmlError::Malformed));
    }

    #[test]
    fn error_messages_do_not_echo_the_input() {
        let secret_looking = "<xml><ToUserName>&password123;</ToUserName></xml>";
        let error = parse_message(secret_looking).expect_err("malformed");
        assert!(!error.to_string().contains("password123"));
    }

    #[test]
    fn dedup_keys_of_messages_and_events() {
        let click = parse_message(&pushed(
            "event",
            "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[MY_FEES]]></EventKey>",
        ))
        .expect("parses");
        assert_eq!(
            click.dedup_key(),
            "evt:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1409735668:CLICK:MY_FEES"
        );
        let unsubscribe =
            parse_message(&pushed("event", "<Event>unsubscribe</Event>")).expect("parses");
        assert_eq!(
            unsubscribe.dedup_key(),
            "evt:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1409735668:unsubscribe:"
        );
        let report = parse_message(&pushed(
            "event",
            "<Event>TEMPLATESENDJOBFINISH</Event><MsgID>200163836</MsgID><Status>success</Status>",
        ))
        .expect("parses");
        assert_eq!(
            report.dedup_key(),
            "evt:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1409735668:TEMPLATESENDJOBFINISH:200163836"
        );
    }

    #[test]
    fn a_message_without_msg_id_falls_back_to_the_event_style_key() {
        let message = parse_message(&pushed("text", "<Content>x</Content>")).expect("parses");
        assert_eq!(
            message.dedup_key(),
            "evt:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1409735668:text:"
        );
    }

    #[test]
    fn the_same_msg_id_from_two_followers_gives_two_keys() {
        let first =
            parse_message(&pushed("text", "<Content>x</Content><MsgId>1</MsgId>")).expect("parses");
        let mut second = first.clone();
        second.from_user_name = "another_openid".into();
        assert_ne!(first.dedup_key(), second.dedup_key());
    }

    #[test]
    fn the_safe_mode_envelope() {
        let xml = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
                   <Encrypt><![CDATA[hyzAe4Ozm+/=]]></Encrypt>\n</xml>";
        assert_eq!(
            parse_encrypted_envelope(xml),
            Ok(EncryptedEnvelope {
                to_user_name: Some("gh_10f6c3c3ac5a".into()),
                encrypt: "hyzAe4Ozm+/=".into(),
            })
        );
    }

    #[test]
    fn the_compatible_mode_envelope_carries_both_forms() {
        let xml = pushed(
            "text",
            "<Content>x</Content><MsgId>1</MsgId><Encrypt><![CDATA[abc=]]></Encrypt>",
        );
        assert_eq!(
            parse_encrypted_envelope(&xml).expect("envelope").encrypt,
            "abc="
        );
        assert!(parse_message(&xml).is_ok());
    }

    #[test]
    fn an_envelope_needs_its_encrypt_element() {
        assert_eq!(
            parse_encrypted_envelope("<xml><Encrypt></Encrypt></xml>"),
            Err(XmlError::MissingField("Encrypt"))
        );
        assert_eq!(
            parse_encrypted_envelope("<xml><ToUserName>g</ToUserName></xml>"),
            Err(XmlError::MissingField("Encrypt"))
        );
        assert_eq!(
            parse_encrypted_envelope("<Encrypt>abc</Encrypt>"),
            Err(XmlError::NotWechatRoot)
        );
        assert_eq!(
            parse_encrypted_envelope("garbage"),
            Err(XmlError::Malformed)
        );
    }

    #[test]
    fn deeply_nested_unknown_elements_do_not_overflow_the_stack() {
        let depth = 50_000;
        let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let result = parse_message(&pushed("text", &body));
        assert!(result.is_ok());
    }

    /// A parsed message must have its envelope and a key of the documented shape.
    fn is_sane(result: &Result<Message, XmlError>) -> bool {
        match result {
            Ok(message) => {
                let key = message.dedup_key();
                !message.to_user_name.trim().is_empty()
                    && !message.from_user_name.trim().is_empty()
                    && (key.starts_with("msg:") || key.starts_with("evt:"))
            }
            Err(_) => true,
        }
    }

    #[test]
    fn replays_the_parse_message_fuzz_corpus() {
        // Files named `ok_*` must parse, `err_*` must not; anything else (saved by the
        // fuzzer) only has to come back without a panic.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/parse_message");
        let mut replayed = 0;
        for entry in std::fs::read_dir(dir).expect("the committed corpus") {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable corpus file");
            let result = parse_message(&String::from_utf8_lossy(&bytes));
            assert!(is_sane(&result), "{}", path.display());
            let _ = parse_encrypted_envelope(&String::from_utf8_lossy(&bytes));
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("ok_") {
                assert!(result.is_ok(), "{name}: {result:?}");
            } else if name.starts_with("err_") {
                assert!(result.is_err(), "{name}");
            }
            replayed += 1;
        }
        assert!(replayed >= 12, "only {replayed} corpus files");
    }

    const ELEMENTS: &[&str] = &[
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "MsgId",
        "MsgID",
        "Content",
        "Event",
        "EventKey",
        "Ticket",
        "Location_X",
        "Latitude",
        "Scale",
        "Status",
        "ScanCodeInfo",
        "ScanResult",
        "Encrypt",
        "xml",
    ];

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(input in any::<String>()) {
            prop_assert!(is_sane(&parse_message(&input)));
            let _ = parse_encrypted_envelope(&input);
        }

        #[test]
        fn never_panics_on_xml_like_text(input in "(<[/!?]?[a-zA-Z_]{0,12}>|<!\\[CDATA\\[|\\]\\]>|&[a-z#0-9]{0,5};|[a-z0-9 中]{0,5})*") {
            prop_assert!(is_sane(&parse_message(&input)));
            let _ = parse_encrypted_envelope(&input);
        }

        #[test]
        fn never_panics_on_arbitrary_values_in_real_elements(
            values in proptest::collection::vec(
                (proptest::sample::select(ELEMENTS), any::<String>()), 0..12),
            msg_type in "(text|image|voice|video|shortvideo|location|link|event|[a-z]{0,6})",
            event_name in "(subscribe|unsubscribe|SCAN|LOCATION|CLICK|VIEW|scancode_push|pic_weixin|TEMPLATESENDJOBFINISH|MASSSENDJOBFINISH|[a-z]{0,6})",
        ) {
            let mut xml = format!(
                "<xml><ToUserName>g</ToUserName><FromUserName>o</FromUserName>\
                 <CreateTime>1</CreateTime><MsgType>{msg_type}</MsgType><Event>{event_name}</Event>"
            );
            for (element, value) in values {
                let escaped = quick_xml::escape::escape(value.as_str());
                xml.push_str(&format!("<{element}>{escaped}</{element}>"));
            }
            xml.push_str("</xml>");
            prop_assert!(is_sane(&parse_message(&xml)));
        }

        /// Any text XML can carry survives a reply and a parse. (XML turns `\r` into
        /// `\n` even inside CDATA, so carriage returns are left out.)
        #[test]
        fn text_content_round_trips_through_cdata(content in "[^\u{0}-\u{8}\u{b}-\u{1f}\u{fffe}\u{ffff}]*") {
            let reply = crate::wechat::reply::Reply::text(content.clone()).to_xml("o", "g", 1);
            let parsed = parse_message(&reply).map(|m| m.kind);
            prop_assert_eq!(parsed, Ok(MessageKind::Text { content, msg_id: None }));
        }
    }
}
