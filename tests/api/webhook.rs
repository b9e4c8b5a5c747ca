//! `/wechat` as WeChat uses it, and as an attacker would.

use campus_pay::sandbox::wechat_push::{self, EncryptionMode, WechatPush};
use campus_pay::wechat::crypto::{EncodingAesKey, MessageCrypto};
use campus_pay::wechat::message::{MessageKind, parse_message};
use campus_pay::wechat::signature;

use crate::support::{
    ACCOUNT, AES_KEY, Options, PUBLIC_URL, TOKEN, now, spawn_app, spawn_app_with,
};

const FOLLOWER: &str = "oyORnuP8q7ou2gfYjqLzSIWZf0rs";

fn reply_text(reply_xml: &str) -> String {
    let message = parse_message(reply_xml).expect("the reply is a WeChat message");
    assert_eq!(
        message.to_user_name, FOLLOWER,
        "the reply goes back to the follower"
    );
    assert_eq!(
        message.from_user_name, ACCOUNT,
        "the reply comes from the account"
    );
    match message.kind {
        MessageKind::Text { content, .. } => content,
        other => panic!("expected a text reply, got {other:?}"),
    }
}

#[tokio::test]
async fn the_server_check_echoes_echostr_raw() {
    let app = spawn_app().await;
    let response = app
        .get_wechat(&app.push.verification_query("5927782489442352469"))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "5927782489442352469");
}

#[tokio::test]
async fn a_wrong_signature_gets_401_and_no_echo() {
    let app = spawn_app().await;
    let forged = WechatPush {
        token: "not-the-token".into(),
        appid: app.push.appid.clone(),
        aes_key: None,
    };
    let response = app
        .get_wechat(&forged.verification_query("echo-me-please"))
        .await;
    assert_eq!(response.status, 401);
    assert!(!response.body.contains("echo-me-please"));
    let unsigned = app
        .get_wechat("echostr=echo-me-please&timestamp=1&nonce=2")
        .await;
    assert_eq!(unsigned.status, 401);
    assert!(!unsigned.body.contains("echo-me-please"));
}

#[tokio::test]
async fn a_keyword_in_plaintext_mode_gets_the_payment_link() {
    let app = spawn_app().await;
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "缴费", 6054768590064713728, now());
    let reply = app.send(&xml, EncryptionMode::Plaintext).await;
    assert!(reply_text(&reply).contains(&format!("{PUBLIC_URL}/h5")));
}

#[tokio::test]
async fn compatible_and_safe_mode_messages_get_encrypted_replies() {
    let app = spawn_app().await;
    for (mode, msg_id) in [(EncryptionMode::Compatible, 11), (EncryptionMode::Safe, 12)] {
        let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "住宿费", msg_id, now());
        let post = app.push.signed_post(&xml, mode);
        let response = app.post_wechat(&post).await;
        assert_eq!(response.status, 200);
        assert!(response.body.contains("<Encrypt>"), "{}", response.body);
        assert!(
            !response.body.contains("住宿费"),
            "the reply is not in clear"
        );
        let reply = app.push.open_reply(&post, &response.body).unwrap();
        assert!(reply_text(&reply).contains(&format!("{PUBLIC_URL}/h5")));
    }
}

#[tokio::test]
async fn a_new_follower_is_welcomed_and_recorded_and_a_repeat_subscribe_reactivates_them() {
    let app = spawn_app().await;
    let t0 = now();
    let welcome = app
        .send(
            &wechat_push::subscribe_xml(ACCOUNT, FOLLOWER, t0, Some("qrscene_2026")),
            EncryptionMode::Safe,
        )
        .await;
    let welcome = reply_text(&welcome);
    assert!(welcome.contains("年级+班级+姓名") && welcome.contains("18汽修张三"));
    assert!(welcome.contains(&format!("{PUBLIC_URL}/h5")));
    app.drain_background().await;
    let follower = app
        .state
        .store
        .find_follower(FOLLOWER)
        .await
        .unwrap()
        .unwrap();
    assert!(follower.subscribed);
    assert_eq!(follower.subscribe_scene.as_deref(), Some("qrscene_2026"));

    let goodbye = app
        .send(
            &wechat_push::unsubscribe_xml(ACCOUNT, FOLLOWER, t0 + 1),
            EncryptionMode::Safe,
        )
        .await;
    assert_eq!(goodbye, "success");
    app.drain_background().await;
    let follower = app
        .state
        .store
        .find_follower(FOLLOWER)
        .await
        .unwrap()
        .unwrap();
    assert!(!follower.subscribed);
    assert!(follower.unsubscribed_at.is_some());

    app.send(
        &wechat_push::subscribe_xml(ACCOUNT, FOLLOWER, t0 + 2, None),
        EncryptionMode::Plaintext,
    )
    .await;
    app.drain_background().await;
    let again = app
        .state
        .store
        .find_follower(FOLLOWER)
        .await
        .unwrap()
        .unwrap();
    assert!(again.subscribed);
    assert_eq!(again.id, follower.id, "the same follower, reactivated");
    assert_eq!(app.state.store.count_followers().await.unwrap(), 1);
}

#[tokio::test]
async fn menu_clicks_and_unhandled_kinds_are_answered() {
    let app = spawn_app().await;
    let contact = app
        .send(
            &wechat_push::click_xml(ACCOUNT, FOLLOWER, "CONTACT", now()),
            EncryptionMode::Plaintext,
        )
        .await;
    assert!(reply_text(&contact).contains("行树楼103室 计财处结算中心1号窗口"));
    let view = app
        .send(
            &wechat_push::view_xml(ACCOUNT, FOLLOWER, &format!("{PUBLIC_URL}/h5"), now()),
            EncryptionMode::Plaintext,
        )
        .await;
    assert_eq!(view, "success");
    let unknown = format!(
        "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{FOLLOWER}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_get_card]]></Event></xml>",
        now()
    );
    assert_eq!(app.send(&unknown, EncryptionMode::Safe).await, "success");
    let chit_chat = app
        .send(
            &wechat_push::text_xml(ACCOUNT, FOLLOWER, "你好", 77, now()),
            EncryptionMode::Plaintext,
        )
        .await;
    assert!(reply_text(&chit_chat).contains("关键词"));
}

#[tokio::test]
async fn a_retry_storm_gets_four_identical_answers_and_one_side_effect() {
    let app = spawn_app().await;
    let xml = wechat_push::subscribe_xml(ACCOUNT, FOLLOWER, now(), None);
    let post = app.push.signed_post(&xml, EncryptionMode::Safe);
    let (a, b, c, d) = tokio::join!(
        app.post_wechat(&post),
        app.post_wechat(&post),
        app.post_wechat(&post),
        app.post_wechat(&post)
    );
    let replies: Vec<String> = [a, b, c, d]
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, 200);
            app.push.open_reply(&post, &r.body).unwrap()
        })
        .collect();
    assert!(replies.iter().all(|r| r == &replies[0]), "{replies:#?}");
    assert!(reply_text(&replies[0]).contains("年级+班级+姓名"));
    assert_eq!(app.state.metrics.webhook_messages("event_subscribe"), 1);
    assert_eq!(app.state.metrics.webhook_retries(), 3);
    app.drain_background().await;
    assert_eq!(app.state.store.count_followers().await.unwrap(), 1);
}

// The in-process cache is one instance by definition; CI's second pass runs this.
#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "needs Redis (two instances share one cache): set CAMPUSPAY_TEST_REDIS_URL"
)]
async fn a_retry_reaching_another_instance_gets_the_same_answer() {
    assert!(
        std::env::var("CAMPUSPAY_TEST_REDIS_URL").is_ok(),
        "needs CAMPUSPAY_TEST_REDIS_URL: the in-process cache is one instance"
    );
    let first = spawn_app().await;
    let second = first.second_instance().await;
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "查询", 99, now());
    let post = first.push.signed_post(&xml, EncryptionMode::Plaintext);
    let one = first.post_wechat(&post).await;
    let two = second.post_wechat(&post).await;
    assert_eq!(one.body, two.body);
    assert_eq!(first.state.metrics.webhook_messages("text"), 1);
    assert_eq!(second.state.metrics.webhook_messages("text"), 0);
    assert_eq!(second.state.metrics.webhook_retries(), 1);
}

#[tokio::test]
async fn a_body_over_64_kib_gets_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(70 * 1024);
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, &padding, 1, now());
    let post = app.push.signed_post(&xml, EncryptionMode::Plaintext);
    assert_eq!(app.post_wechat(&post).await.status, 413);
    // Streamed without a length, the limit holds too.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..80).map(|_| Ok("y".repeat(1024))).collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    assert_eq!(app.post_wechat_raw(&post.query, stream).await.status, 413);
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn malformed_xml_gets_400() {
    let app = spawn_app().await;
    for body in [
        "<xml><ToUserName>",
        "not xml at all",
        "<xml></xml>",
        "\u{0}\u{1}<<>>",
    ] {
        let post = app.push.signed_post(body, EncryptionMode::Plaintext);
        let response = app.post_wechat(&post).await;
        assert_eq!(response.status, 400, "{body:?}");
    }
    let post = app.push.signed_post(
        "<xml><Encrypt><![CDATA[bm90IGEgY2lwaGVydGV4dA==]]></Encrypt></xml>",
        EncryptionMode::Plaintext,
    );
    assert_eq!(app.post_wechat(&post).await.status, 400);
}

#[tokio::test]
async fn a_forged_body_signature_gets_401() {
    let app = spawn_app().await;
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "缴费", 5, now());
    let post = app.push.signed_post(&xml, EncryptionMode::Safe);
    let forged_query = post
        .query
        .split('&')
        .map(|pair| {
            if pair.starts_with("msg_signature=") {
                "msg_signature=0000000000000000000000000000000000000000".to_owned()
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(
        app.post_wechat_raw(&forged_query, post.body.clone())
            .await
            .status,
        401
    );
    let forged_token = WechatPush {
        token: "wrongtoken".into(),
        appid: app.push.appid.clone(),
        aes_key: app.push.aes_key.clone(),
    };
    let post = forged_token.signed_post(&xml, EncryptionMode::Plaintext);
    assert_eq!(app.post_wechat(&post).await.status, 401);
    assert_eq!(app.state.metrics.webhook_messages("text"), 0);
    assert_eq!(app.state.metrics.webhook_refusals("bad_signature"), 2);
}

#[tokio::test]
async fn a_ciphertext_for_another_app_id_gets_401() {
    let app = spawn_app().await;
    let key = EncodingAesKey::parse(AES_KEY).unwrap();
    let other = MessageCrypto::new(key, "wxsomeotherapp0001");
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "缴费", 6, now());
    let encrypt = other.encrypt(&xml);
    let (timestamp, nonce) = (now().to_string(), "1320562132".to_owned());
    let query = format!(
        "signature={}&timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={}",
        signature::url_signature(TOKEN, &timestamp, &nonce),
        signature::msg_signature(TOKEN, &timestamp, &nonce, &encrypt),
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    assert_eq!(app.post_wechat_raw(&query, body).await.status, 401);
}

#[tokio::test]
async fn a_replayed_request_after_the_window_gets_401() {
    let app = spawn_app().await;
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "缴费", 7, now());
    let post = app.push.signed_post(&xml, EncryptionMode::Plaintext);
    assert_eq!(app.post_wechat(&post).await.status, 200);
    app.clock.advance(std::time::Duration::from_secs(301));
    assert_eq!(app.post_wechat(&post).await.status, 401);
}

#[tokio::test]
async fn an_encrypted_message_without_a_configured_key_gets_400() {
    let app = spawn_app_with(Options {
        aes_key: false,
        ..Options::default()
    })
    .await;
    let xml = wechat_push::text_xml(ACCOUNT, FOLLOWER, "缴费", 8, now());
    let post = app.push.signed_post(&xml, EncryptionMode::Safe);
    assert_eq!(app.post_wechat(&post).await.status, 400);
    // Plaintext still works on an account without a key.
    let reply = app.send(&xml, EncryptionMode::Plaintext).await;
    assert!(reply_text(&reply).contains("/h5"));
}

#[tokio::test]
async fn readiness_checks_the_database_and_the_cache() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
