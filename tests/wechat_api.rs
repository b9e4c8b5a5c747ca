//! The WeChat API client against the loopback sandbox, over real HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use campus_pay::cache::{MemoryCache, SharedCache};
use campus_pay::clock::Clock;
use campus_pay::sandbox::wechat_api::{WechatSandbox, paths};
use campus_pay::wechat::api::{
    ApiClient, ApiClientConfig, ApiError, OauthIdentity, oauth_authorize_url,
};
use campus_pay::wechat::menu::{MenuError, load_menu};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

const APPID: &str = "wxcampuspay00001";
const SECRET: &str = "campus-pay-test-secret";
const DEFAULT_MENU: &str = include_str!("../menus/default.json");

struct TestEnv {
    sandbox: WechatSandbox,
    sandbox_clock: Clock,
    cache: SharedCache,
    client: ApiClient,
}

impl TestEnv {
    /// The sandbox keeps its own clock, so a test can age WeChat's tokens without
    /// aging our cache.
    async fn start() -> TestEnv {
        let sandbox_clock = Clock::system();
        let sandbox = WechatSandbox::spawn_with_clock(APPID, SECRET, sandbox_clock.clone())
            .await
            .unwrap();
        let cache: SharedCache = Arc::new(MemoryCache::new(Clock::system()));
        let client = client_for(&sandbox.base_url(), SECRET, cache.clone());
        TestEnv {
            sandbox,
            sandbox_clock,
            cache,
            client,
        }
    }

    /// Another instance of campus-pay: its own client, the same cache.
    fn another_instance(&self) -> ApiClient {
        client_for(&self.sandbox.base_url(), SECRET, self.cache.clone())
    }
}

fn client_for(api_base: &Url, secret: &str, cache: SharedCache) -> ApiClient {
    let config = ApiClientConfig {
        appid: APPID.to_owned(),
        secret: SecretString::from(secret),
        api_base: api_base.clone(),
    };
    ApiClient::new(config, cache).unwrap()
}

fn public_url() -> Url {
    Url::parse("https://pay.example.edu.cn").unwrap()
}

fn assert_upstream(result: Result<impl std::fmt::Debug, ApiError>, expected: i64) {
    match result {
        Err(ApiError::Upstream { errcode, .. }) if errcode == expected => {}
        other => panic!("expected WeChat errcode {expected}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_is_fetched_once_and_reused() {
    let env = TestEnv::start().await;
    env.client.update_remark("o_a", "18汽修张三").await.unwrap();
    env.client.update_remark("o_b", "18汽修李四").await.unwrap();
    assert_eq!(env.sandbox.token_fetches(), 1);
    assert_eq!(env.client.token_refreshes(), 1);
    // Kept five minutes less than the 7200 s WeChat granted.
    let key = format!("wechat:access_token:{APPID}");
    let ttl = env.cache.time_to_live(&key).await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_secs(6900) && ttl > Duration::from_secs(6890),
        "{ttl:?}"
    );
}

#[tokio::test]
async fn concurrent_first_calls_on_two_instances_fetch_one_token() {
    let env = TestEnv::start().await;
    let instances = [env.client.clone(), env.another_instance()];
    let calls = (0..16).map(|i| {
        let client = instances[i % 2].clone();
        tokio::spawn(async move { client.update_remark(&format!("o_{i}"), "18汽修张三").await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    assert_eq!(env.sandbox.token_fetches(), 1);
    assert_eq!(
        instances[0].token_refreshes() + instances[1].token_refreshes(),
        1
    );
    assert_eq!(env.sandbox.remarks().len(), 16);
}

#[tokio::test]
async fn a_token_invalidated_upstream_is_dropped_and_the_call_retried_once() {
    let env = TestEnv::start().await;
    env.client.update_remark("o_a", "18汽修张三").await.unwrap();
    env.sandbox.invalidate_tokens();
    env.client.update_remark("o_b", "18汽修李四").await.unwrap();
    assert_eq!(env.sandbox.token_fetches(), 2);
    // The first call, the one refused with 40001, and its retry.
    assert_eq!(env.sandbox.calls_to(paths::UPDATE_REMARK), 3);
    assert_eq!(env.sandbox.remarks()["o_b"], "18汽修李四");
    // The fresh token is cached and works without another fetch.
    env.client.update_remark("o_c", "18汽修王五").await.unwrap();
    assert_eq!(env.sandbox.token_fetches(), 2);
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_the_call_retried() {
    let env = TestEnv::start().await;
    env.client.update_remark("o_a", "18汽修张三").await.unwrap();
    // WeChat's clock says the token is past its life; our cache still holds it.
    env.sandbox_clock.advance(Duration::from_secs(7200));
    env.client.update_remark("o_b", "18汽修李四").await.unwrap();
    assert_eq!(env.sandbox.token_fetches(), 2);
    assert_eq!(env.client.token_refreshes(), 2);
}

#[tokio::test]
async fn a_token_refused_twice_fails_after_exactly_one_retry() {
    let env = TestEnv::start().await;
    env.sandbox.fail_next(paths::UPDATE_REMARK, 40001, 2);
    assert_upstream(env.client.update_remark("o_a", "18汽修张三").await, 40001);
    assert_eq!(env.sandbox.calls_to(paths::UPDATE_REMARK), 2);
}

#[tokio::test]
async fn errors_that_are_not_about_the_token_are_not_retried() {
    let env = TestEnv::start().await;
    env.sandbox.fail_next(paths::UPDATE_REMARK, 45009, 1);
    assert_upstream(env.client.update_remark("o_a", "18汽修张三").await, 45009);
    assert_upstream(
        env.client.update_remark("o_a", "18汽修一班张三丰").await,
        40092,
    );
    assert_eq!(env.sandbox.calls_to(paths::UPDATE_REMARK), 2);
    assert_eq!(env.sandbox.token_fetches(), 1);
}

#[tokio::test]
async fn a_bad_secret_fails_with_the_upstream_errcode_and_is_not_shown() {
    let env = TestEnv::start().await;
    let wrong_secret = "not-the-secret-at-all";
    let client = client_for(&env.sandbox.base_url(), wrong_secret, env.cache.clone());
    let error = client.update_remark("o_a", "18汽修张三").await.unwrap_err();
    assert!(
        matches!(
            &error,
            ApiError::Upstream {
                errcode: 40125,
                api: "cgi-bin/stable_token",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(wrong_secret));
    assert_eq!(env.sandbox.token_fetches(), 1);
    assert_eq!(env.sandbox.calls_to(paths::UPDATE_REMARK), 0);
}

#[tokio::test]
async fn transport_errors_never_show_the_secret() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let base = Url::parse(&format!("http://{address}/")).unwrap();
    let cache: SharedCache = Arc::new(MemoryCache::new(Clock::system()));
    let client = client_for(&base, SECRET, cache);
    let error = client.oauth_exchange_code("the-code").await.unwrap_err();
    assert!(matches!(error, ApiError::Transport { .. }), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("the-code"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_default_menu_lands_in_the_sandbox_exactly_as_validated() {
    let env = TestEnv::start().await;
    let menu = load_menu(DEFAULT_MENU, &public_url()).unwrap();
    env.client.menu_create(&menu).await.unwrap();
    assert_eq!(env.sandbox.menus(), std::slice::from_ref(&menu));
    assert_eq!(
        env.client.menu_get().await.unwrap(),
        json!({ "menu": menu })
    );
}

#[tokio::test]
async fn an_invalid_menu_is_refused_before_any_call() {
    let env = TestEnv::start().await;
    let too_long =
        r#"{"button": [{"type": "view", "name": "学生缴费系统入口", "url": "{PUBLIC_URL}/h5"}]}"#;
    // What `menu push` does: load, and push only what loaded.
    let pushed = match load_menu(too_long, &public_url()) {
        Ok(menu) => Some(env.client.menu_create(&menu).await),
        Err(error) => {
            assert!(matches!(error, MenuError::Invalid(_)), "{error:?}");
            None
        }
    };
    assert!(pushed.is_none());
    assert_eq!(env.sandbox.calls_to(paths::MENU_CREATE), 0);
    assert_eq!(env.sandbox.token_fetches(), 0);
}

#[tokio::test]
async fn an_oauth_code_works_once_and_its_reuse_is_refused() {
    let env = TestEnv::start().await;
    let code = env.sandbox.issue_oauth_code("o_student");
    let identity = env.client.oauth_exchange_code(&code).await.unwrap();
    let expected = OauthIdentity {
        openid: "o_student".into(),
        scope: "snsapi_base".into(),
        is_snapshot_user: false,
    };
    assert_eq!(identity, expected);
    assert_upstream(env.client.oauth_exchange_code(&code).await, 40163);
    assert_upstream(env.client.oauth_exchange_code("never-issued").await, 40029);
    // The exchange authenticates with the secret, not the access token.
    assert_eq!(env.sandbox.token_fetches(), 0);
}

#[tokio::test]
async fn snapshot_page_users_are_flagged() {
    let env = TestEnv::start().await;
    let code = env.sandbox.issue_snapshot_oauth_code("o_snapshot");
    let identity = env.client.oauth_exchange_code(&code).await.unwrap();
    assert!(identity.is_snapshot_user);
}

#[tokio::test]
async fn the_authorize_url_brings_the_student_back_with_a_code_and_the_state() {
    let env = TestEnv::start().await;
    let callback = Url::parse("http://127.0.0.1:8080/h5/oauth/callback").unwrap();
    let authorize = oauth_authorize_url(&env.sandbox.base_url(), APPID, &callback, "st4te");
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser.get(&authorize).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FOUND);
    let location = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap();
    let location = Url::parse(location).unwrap();
    assert!(location.as_str().starts_with(callback.as_str()));
    let pairs: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st4te");
    let identity = env
        .client
        .oauth_exchange_code(&pairs["code"])
        .await
        .unwrap();
    assert_eq!(
        identity.openid,
        campus_pay::sandbox::wechat_api::DEMO_OPENID
    );
}
