//! Passive replies (被动回复): the XML we return in the response to a pushed message.
//!
//! WeChat waits five seconds for it. When there is nothing to say, answer [`SUCCESS`]
//! (or an empty body), never an XML with empty content: that makes the client show
//! "该公众号暂时无法提供服务".

use std::borrow::Cow;

/// The body that acknowledges a message without replying to it.
pub const SUCCESS: &str = "success";

/// WeChat shows at most this many articles in one news reply.
pub const MAX_ARTICLES: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Text {
        content: String,
    },
    /// Build it with [`Reply::news`], which checks there are 1 to [`MAX_ARTICLES`].
    News {
        articles: Vec<Article>,
    },
}

/// One entry of a news (图文) reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Article {
    pub title: String,
    pub description: String,
    pub pic_url: String,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("a news reply needs 1 to {MAX_ARTICLES} articles, not {0}")]
    ArticleCount(usize),
}

impl Reply {
    pub fn text(content: impl Into<String>) -> Self {
        Self::Text {
            content: content.into(),
        }
    }

    pub fn news(articles: Vec<Article>) -> Result<Self, ReplyError> {
        if (1..=MAX_ARTICLES).contains(&articles.len()) {
            Ok(Self::News { articles })
        } else {
            Err(ReplyError::ArticleCount(articles.len()))
        }
    }

    /// The reply as WeChat reads it. `to_user` is the follower's openid (the message's
    /// `FromUserName`), `from_user` our account (its `ToUserName`), `create_time` in
    /// seconds. A news reply built by hand with more than [`MAX_ARTICLES`] keeps only
    /// the first ones, since WeChat would refuse the whole reply.
    pub fn to_xml(&self, to_user: &str, from_user: &str, create_time: i64) -> String {
        let mut xml = String::with_capacity(256);
        xml.push_str("<xml><ToUserName>");
        push_cdata(&mut xml, to_user);
        xml.push_str("</ToUserName><FromUserName>");
        push_cdata(&mut xml, from_user);
        xml.push_str("</FromUserName><CreateTime>");
        xml.push_str(&create_time.to_string());
        xml.push_str("</CreateTime>");
        match self {
            Self::Text { content } => push_text_body(&mut xml, content),
            Self::News { articles } => push_news_body(&mut xml, articles),
        }
        xml.push_str("</xml>");
        xml
    }
}

fn push_text_body(xml: &mut String, content: &str) {
    xml.push_str("<MsgType><![CDATA[text]]></MsgType><Content>");
    push_cdata(xml, content);
    xml.push_str("</Content>");
}

fn push_news_body(xml: &mut String, articles: &[Article]) {
    let shown = &articles[..articles.len().min(MAX_ARTICLES)];
    xml.push_str("<MsgType><![CDATA[news]]></MsgType><ArticleCount>");
    xml.push_str(&shown.len().to_string());
    xml.push_str("</ArticleCount><Articles>");
    for article in shown {
        push_article(xml, article);
    }
    xml.push_str("</Articles>");
}

fn push_article(xml: &mut String, article: &Article) {
    xml.push_str("<item><Title>");
    push_cdata(xml, &article.title);
    xml.push_str("</Title><Description>");
    push_cdata(xml, &article.description);
    xml.push_str("</Description><PicUrl>");
    push_cdata(xml, &article.pic_url);
    xml.push_str("</PicUrl><Url>");
    push_cdata(xml, &article.url);
    xml.push_str("</Url></item>");
}

/// Appends `value` as CDATA. A `]]>` inside would end the section early, so it is
/// split across two sections (`]]]]><![CDATA[>`); characters XML 1.0 cannot carry at
/// all (most control characters) are dropped, since WeChat would reject the document.
pub(crate) fn push_cdata(out: &mut String, value: &str) {
    // Dropping characters first: removing one between `]]` and `>` would create a `]]>`.
    let value = without_xml_invalid_chars(value);
    out.push_str("<![CDATA[");
    out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]>");
}

fn without_xml_invalid_chars(value: &str) -> Cow<'_, str> {
    if value.chars().all(is_xml_char) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(value.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// XML 1.0's `Char` production (Rust's `char` already excludes surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::message::{MessageKind, parse_message};

    fn article(n: usize) -> Article {
        Article {
            title: format!("标题{n}"),
            description: format!("description {n}"),
            pic_url: format!("https://example.edu.cn/{n}.png"),
            url: format!("https://example.edu.cn/h5?item={n}&x=1"),
        }
    }

    /// Reads `(element name, text)` pairs back with quick-xml, CDATA joined to text
    /// (entity references are not needed by these tests and are skipped).
    fn leaf_values(xml: &str) -> Vec<(String, String)> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut values = Vec::new();
        let mut current = String::new();
        let mut text = String::new();
        loop {
            match reader.read_event().expect("well-formed reply") {
                Event::Start(start) => {
                    current = start.name().as_ref().to_owned();
                    text.clear();
                }
                Event::Text(t) => text.push_str(&t.xml10_content()),
                Event::CData(c) => text.push_str(&c.xml10_content()),
                Event::End(_) if !current.is_empty() => {
                    values.push((std::mem::take(&mut current), std::mem::take(&mut text)));
                }
                Event::Eof => return values,
                _ => {}
            }
        }
    }

    #[test]
    fn a_text_reply_is_exact() {
        let xml = Reply::text("你好").to_xml("oUser", "gh_account", 1_700_000_000);
        assert_eq!(
            xml,
            "<xml><ToUserName><![CDATA[oUser]]></ToUserName>\
             <FromUserName><![CDATA[gh_account]]></FromUserName>\
             <CreateTime>1700000000</CreateTime>\
             <MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[你好]]></Content></xml>"
        );
    }

    #[test]
    fn a_news_reply_is_exact() {
        let reply = Reply::news(vec![article(1)]).expect("one article");
        assert_eq!(
            reply.to_xml("oUser", "gh_account", 42),
            "<xml><ToUserName><![CDATA[oUser]]></ToUserName>\
             <FromUserName><![CDATA[gh_account]]></FromUserName>\
             <CreateTime>42</CreateTime>\
             <MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount>\
             <Articles><item><Title><![CDATA[标题1]]></Title>\
             <Description><![CDATA[description 1]]></Description>\
             <PicUrl><![CDATA[https://example.edu.cn/1.png]]></PicUrl>\
             <Url><![CDATA[https://example.edu.cn/h5?item=1&x=1]]></Url></item></Articles></xml>"
        );
    }

    #[test]
    fn news_needs_one_to_eight_articles() {
        assert_eq!(Reply::news(vec![]), Err(ReplyError::ArticleCount(0)));
        let nine = (0..9).map(article).collect();
        assert_eq!(Reply::news(nine), Err(ReplyError::ArticleCount(9)));
        let eight: Vec<_> = (0..8).map(article).collect();
        let xml = Reply::news(eight).expect("eight").to_xml("o", "g", 1);
        assert!(xml.contains("<ArticleCount>8</ArticleCount>"));
        assert_eq!(xml.matches("<item>").count(), 8);
    }

    #[test]
    fn a_hand_built_news_with_too_many_articles_is_cut_to_eight() {
        let reply = Reply::News {
            articles: (0..12).map(article).collect(),
        };
        let xml = reply.to_xml("o", "g", 1);
        assert!(xml.contains("<ArticleCount>8</ArticleCount>"));
        assert_eq!(xml.matches("<item>").count(), 8);
    }

    #[test]
    fn a_value_containing_the_cdata_terminator_round_trips() {
        let tricky = "a]]>b ]]]]> <![CDATA[ & <tag> ]]";
        let xml = Reply::text(tricky).to_xml("o]]>u", "gh", 7);
        let message = parse_message(&xml).expect("our reply parses");
        assert_eq!(message.to_user_name, "o]]>u");
        match message.kind {
            MessageKind::Text { content, .. } => assert_eq!(content, tricky),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn news_values_containing_the_cdata_terminator_round_trip() {
        let mut tricky = article(1);
        tricky.title = "]]>".into();
        tricky.url = "https://x/?a=]]>&b=<".into();
        let xml = Reply::news(vec![tricky.clone()])
            .expect("one")
            .to_xml("o", "g", 1);
        let values = leaf_values(&xml);
        assert!(values.contains(&("Title".into(), tricky.title)));
        assert!(values.contains(&("Url".into(), tricky.url)));
    }

    #[test]
    fn characters_xml_cannot_carry_are_dropped() {
        let xml = Reply::text("a\u{0}b\u{1b}c\td\u{FFFE}]]\u{7}>").to_xml("o", "g", 1);
        let message = parse_message(&xml).expect("still well-formed");
        match message.kind {
            MessageKind::Text { content, .. } => assert_eq!(content, "abc\td]]>"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn the_acknowledgement_is_the_bare_word() {
        assert_eq!(SUCCESS, "success");
    }
}
