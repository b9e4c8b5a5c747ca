//! The message kinds as metric labels: a fixed list, whatever WeChat sends.

use crate::wechat::message::{Event, MessageKind};

/// `text`, `image`…, `event_subscribe`, `event_click`…; kinds this code does not
/// know are `other` and `event_other`.
pub(super) fn kind_label(kind: &MessageKind) -> &'static str {
    match kind {
        MessageKind::Text { .. } => "text",
        MessageKind::Image { .. } => "image",
        MessageKind::Voice { .. } => "voice",
        MessageKind::Video { .. } => "video",
        MessageKind::ShortVideo { .. } => "shortvideo",
        MessageKind::Location { .. } => "location",
        MessageKind::Link { .. } => "link",
        MessageKind::Event(event) => event_label(event),
        MessageKind::Other { .. } => "other",
    }
}

fn event_label(event: &Event) -> &'static str {
    match event {
        Event::Subscribe { .. } => "event_subscribe",
        Event::Unsubscribe => "event_unsubscribe",
        Event::Scan { .. } => "event_scan",
        Event::Location { .. } => "event_location",
        Event::Click { .. } => "event_click",
        Event::View { .. } => "event_view",
        Event::ScancodePush { .. } | Event::ScancodeWaitmsg { .. } => "event_scancode",
        Event::PicSysphoto { .. } | Event::PicPhotoOrAlbum { .. } | Event::PicWeixin { .. } => {
            "event_pic"
        }
        Event::LocationSelect { .. } => "event_location_select",
        Event::ViewMiniprogram { .. } => "event_view_miniprogram",
        Event::TemplateSendJobFinish { .. } => "event_templatesendjobfinish",
        Event::MassSendJobFinish { .. } => "event_masssendjobfinish",
        Event::Other { .. } => "event_other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_and_events_share_one_label_each() {
        let unknown = MessageKind::Other {
            msg_type: "hologram".into(),
            msg_id: None,
        };
        assert_eq!(kind_label(&unknown), "other");
        let event = MessageKind::Event(Event::Other {
            event: "teleport".into(),
            event_key: None,
        });
        assert_eq!(kind_label(&event), "event_other");
        let click = MessageKind::Event(Event::Click { key: "fees".into() });
        assert_eq!(kind_label(&click), "event_click");
    }
}
