//! What the account says to a follower, and what it must remember. Pure: the handler
//! sends the reply and performs the effect.

use chrono::{DateTime, TimeZone, Utc};

use crate::web::text::{MENU_STUDENT_PAYMENT, OFFICE_LOCATION, REMARK_EXAMPLE};
use crate::wechat::menu::keys::{
    CONTACT as MENU_KEY_CONTACT, PAY_FAQ as MENU_KEY_PAY_FAQ, PAY_GUIDE as MENU_KEY_PAY_GUIDE,
};
use crate::wechat::message::{Event, Message, MessageKind};
use crate::wechat::reply::Reply;

/// What the answers need to know about the school and where its pages are.
pub struct Context<'a> {
    pub school_name: &'a str,
    /// The mobile pages (`/h5`), the target of the menu 学生缴费.
    pub h5_url: String,
    /// The PC portal (`/`).
    pub portal_url: String,
}

/// Something to remember after answering; done off the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Subscribed {
        openid: String,
        at: DateTime<Utc>,
        scene: Option<String>,
    },
    Unsubscribed {
        openid: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug)]
pub struct Answer {
    /// `None` means WeChat gets `success`: nothing to show the follower.
    pub reply: Option<Reply>,
    pub effect: Option<Effect>,
}

impl Answer {
    fn say(content: String) -> Answer {
        Answer {
            reply: Some(Reply::Text { content }),
            effect: None,
        }
    }

    fn silent() -> Answer {
        Answer {
            reply: None,
            effect: None,
        }
    }
}

pub fn answer(message: &Message, ctx: &Context) -> Answer {
    match &message.kind {
        MessageKind::Event(event) => answer_event(event, message, ctx),
        MessageKind::Text { content, .. } => Answer::say(answer_text(content, ctx)),
        // A picture or a voice note cannot be read here; a guide beats silence.
        MessageKind::Image { .. }
        | MessageKind::Voice { .. }
        | MessageKind::Video { .. }
        | MessageKind::ShortVideo { .. }
        | MessageKind::Location { .. }
        | MessageKind::Link { .. } => Answer::say(guide(ctx)),
        MessageKind::Other { .. } => Answer::silent(),
    }
}

fn answer_event(event: &Event, message: &Message, ctx: &Context) -> Answer {
    let at = wechat_time(message.create_time);
    let openid = message.from_user_name.clone();
    match event {
        Event::Subscribe { event_key, .. } => Answer {
            reply: Some(Reply::Text {
                content: welcome(ctx),
            }),
            effect: Some(Effect::Subscribed {
                openid,
                at,
                scene: subscribe_scene(event_key.as_deref()),
            }),
        },
        Event::Unsubscribe => Answer {
            reply: None,
            effect: Some(Effect::Unsubscribed { openid, at }),
        },
        Event::Click { key } => Answer::say(answer_menu_click(key, ctx)),
        _ => Answer::silent(),
    }
}

/// WeChat's CreateTime is Unix seconds; a nonsense value falls back to the epoch
/// rather than failing the follower's message.
fn wechat_time(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().unwrap_or_default()
}

/// `qrscene_123` when the follower came from a parametric QR code, else a direct follow.
fn subscribe_scene(event_key: Option<&str>) -> Option<String> {
    event_key
        .filter(|key| !key.is_empty())
        .map(|key| key.to_owned())
}

fn pay_link(ctx: &Context, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", ctx.h5_url, text)
}

fn welcome(ctx: &Context) -> String {
    format!(
        "欢迎关注{school}计财处！\n\n\
         缴纳学费、住宿费等费用，请点击下方菜单「{menu}」，或{link}。\n\n\
         首次缴费请用身份证号和密码绑定，绑定后系统会把您的备注设置为 年级+班级+姓名（例如 {example}）。\
         备注不符合要求的关注者将被定期清理。\n\n\
         信息有误请到{office}办理。",
        school = ctx.school_name,
        menu = MENU_STUDENT_PAYMENT,
        link = pay_link(ctx, "点此缴费"),
        example = REMARK_EXAMPLE,
        office = OFFICE_LOCATION,
    )
}

fn guide(ctx: &Context) -> String {
    format!(
        "您好！缴费请点击菜单「{menu}」或{link}。\n\
         回复以下关键词获取帮助：缴费、查询、密码、绑定、联系。",
        menu = MENU_STUDENT_PAYMENT,
        link = pay_link(ctx, "点此缴费"),
    )
}

fn pay_steps(ctx: &Context) -> String {
    format!(
        "缴费流程：\n\
         1. 点击菜单「{menu}」（或{link}）；\n\
         2. 首次使用输入身份证号和密码绑定（初始密码为身份证号后六位，字母X大写），按提示修改密码；\n\
         3. 核对姓名、班级和欠费项目，勾选要缴的项目，点「缴费」；\n\
         4. 在「确认支付」页核对金额和收款单位 {school}，点「立即支付」完成微信支付；\n\
         5. 页面显示「缴费成功」即完成。\n\
         电脑上缴费请打开 {portal} ，可用支付宝、微信或中国农业银行。",
        menu = MENU_STUDENT_PAYMENT,
        link = pay_link(ctx, "点此缴费"),
        school = ctx.school_name,
        portal = ctx.portal_url,
    )
}

fn faq(ctx: &Context) -> String {
    format!(
        "常见问题：\n\
         · 已付款仍显示欠费：请勿重复缴费，在缴费页点「我已付款，查询结果」，系统会向微信查询。\n\
         · 忘记密码：请到{office}重置。\n\
         · 姓名、班级或金额有误：请到{office}更正。\n\
         · 学校不会向您索要银行卡号或验证码，请认准收款单位 {school}。",
        office = OFFICE_LOCATION,
        school = ctx.school_name,
    )
}

fn contact() -> String {
    format!(
        "计财处结算中心\n地点：{OFFICE_LOCATION}\n\
         学籍信息、缴费金额有误或需要重置密码，请本人携带身份证到窗口办理。"
    )
}

fn answer_menu_click(key: &str, ctx: &Context) -> String {
    match key {
        MENU_KEY_PAY_GUIDE => pay_steps(ctx),
        MENU_KEY_PAY_FAQ => faq(ctx),
        MENU_KEY_CONTACT => contact(),
        _ => guide(ctx),
    }
}

/// Keywords a student would type, checked in this order (the first topic that matches wins).
fn answer_text(content: &str, ctx: &Context) -> String {
    let text = content.trim().to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if has(&["帮助", "help", "?", "？", "怎么"]) {
        pay_steps(ctx)
    } else if has(&["密码"]) {
        format!(
            "初始密码为身份证号后六位（字母X大写），首次登录须修改。忘记密码请到{OFFICE_LOCATION}重置。"
        )
    } else if has(&["绑定", "解绑"]) {
        format!(
            "点击菜单「{MENU_STUDENT_PAYMENT}」，用身份证号和密码绑定一次，以后直接进入缴费页。需要解绑请到{OFFICE_LOCATION}办理。"
        )
    } else if has(&["查询", "欠费", "账单", "记录"]) {
        format!("查询欠费和缴费记录：{}。", pay_link(ctx, "点此查看"))
    } else if has(&["缴费", "交费", "学费", "住宿费", "教材费", "付款", "支付"]) {
        format!(
            "缴纳学费、住宿费等费用：{}，绑定后勾选项目即可用微信支付。",
            pay_link(ctx, "点此缴费")
        )
    } else if has(&["联系", "电话", "地址", "窗口", "人工"]) {
        contact()
    } else {
        guide(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            school_name: "武威职业学院",
            h5_url: "https://pay.example.edu.cn/h5".into(),
            portal_url: "https://pay.example.edu.cn/".into(),
        }
    }

    fn message(kind: MessageKind) -> Message {
        Message {
            to_user_name: "gh_account".into(),
            from_user_name: "oFollower".into(),
            create_time: 1_700_000_000,
            kind,
        }
    }

    fn text_of(answer: &Answer) -> &str {
        match &answer.reply {
            Some(Reply::Text { content }) => content,
            other => panic!("expected a text reply, got {other:?}"),
        }
    }

    fn text(content: &str) -> Message {
        message(MessageKind::Text {
            content: content.into(),
            msg_id: Some(1),
        })
    }

    #[test]
    fn a_new_follower_is_welcomed_with_the_remark_rule_and_remembered() {
        let answer = answer(
            &message(MessageKind::Event(Event::Subscribe {
                event_key: Some("qrscene_42".into()),
                ticket: None,
            })),
            &ctx(),
        );
        let welcome = text_of(&answer);
        assert!(welcome.contains("年级+班级+姓名"));
        assert!(welcome.contains("18汽修张三"));
        assert!(welcome.contains("https://pay.example.edu.cn/h5"));
        assert!(welcome.contains(OFFICE_LOCATION));
        assert_eq!(
            answer.effect,
            Some(Effect::Subscribed {
                openid: "oFollower".into(),
                at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
                scene: Some("qrscene_42".into()),
            })
        );
    }

    #[test]
    fn an_unsubscribe_is_remembered_silently() {
        let answer = answer(&message(MessageKind::Event(Event::Unsubscribe)), &ctx());
        assert!(answer.reply.is_none());
        assert!(matches!(answer.effect, Some(Effect::Unsubscribed { .. })));
    }

    #[test]
    fn payment_keywords_get_the_h5_link() {
        for word in ["缴费", "学费", "住宿费", "我要交费", "教材费怎么付款"] {
            let reply = answer(&text(word), &ctx());
            assert!(
                text_of(&reply).contains("https://pay.example.edu.cn/h5"),
                "{word}"
            );
            assert!(reply.effect.is_none());
        }
    }

    #[test]
    fn each_topic_gets_its_own_answer() {
        assert!(text_of(&answer(&text("查询"), &ctx())).contains("查询欠费"));
        assert!(text_of(&answer(&text("帮助"), &ctx())).contains("缴费流程"));
        assert!(text_of(&answer(&text("忘记密码了"), &ctx())).contains("后六位"));
        assert!(text_of(&answer(&text("怎么绑定"), &ctx())).contains("缴费流程"));
        assert!(text_of(&answer(&text("解绑"), &ctx())).contains("解绑"));
        assert!(text_of(&answer(&text("电话多少"), &ctx())).contains(OFFICE_LOCATION));
    }

    #[test]
    fn anything_else_gets_a_short_guide_not_silence() {
        let reply = answer(&text("你好"), &ctx());
        assert!(text_of(&reply).contains("关键词"));
        let image = message(MessageKind::Image {
            pic_url: "http://x".into(),
            media_id: "m".into(),
            msg_id: Some(2),
        });
        assert!(text_of(&answer(&image, &ctx())).contains("关键词"));
    }

    #[test]
    fn menu_clicks_answer_their_keys() {
        let click = |key: &str| {
            message(MessageKind::Event(Event::Click {
                key: key.to_owned(),
            }))
        };
        assert!(text_of(&answer(&click(MENU_KEY_PAY_GUIDE), &ctx())).contains("立即支付"));
        assert!(text_of(&answer(&click(MENU_KEY_PAY_FAQ), &ctx())).contains("重复缴费"));
        assert!(text_of(&answer(&click(MENU_KEY_CONTACT), &ctx())).contains(OFFICE_LOCATION));
        assert!(text_of(&answer(&click("UNKNOWN"), &ctx())).contains("关键词"));
    }

    #[test]
    fn kinds_we_do_not_handle_are_answered_success() {
        let view = message(MessageKind::Event(Event::View {
            url: "https://pay.example.edu.cn/h5".into(),
            menu_id: None,
        }));
        assert!(answer(&view, &ctx()).reply.is_none());
        let other = message(MessageKind::Other {
            msg_type: "miniprogrampage".into(),
            msg_id: Some(3),
        });
        assert!(answer(&other, &ctx()).reply.is_none());
    }
}
