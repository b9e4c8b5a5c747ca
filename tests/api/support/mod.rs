//! `spawn_app`: the real application on a loopback port bound once (never picked,
//! released and bound again), with a fresh database (SQLite file, or a PostgreSQL
//! schema with `CAMPUSPAY_TEST_DATABASE_URL`), a fresh cache (in-process, or a prefixed
//! Redis with `CAMPUSPAY_TEST_REDIS_URL`), a manual clock, and the WeChat sandbox.

pub mod admin;
pub mod books;
pub mod browser;
pub mod fault_proxy;
pub mod seed;

use std::sync::Arc;

use campus_pay::background::Background;
use campus_pay::cache::{MemoryCache, RedisCache, SharedCache};
use campus_pay::clock::Clock;
use campus_pay::config::{Config, Variables};
use campus_pay::sandbox::abc::AbcSandbox;
use campus_pay::sandbox::alipay::{AlipaySandbox, SANDBOX_APP_ID};
use campus_pay::sandbox::merchant;
use campus_pay::sandbox::wechat_api::WechatSandbox;
use campus_pay::sandbox::wechat_pay::WechatPaySandbox;
use campus_pay::sandbox::wechat_push::PushAesKey;
use campus_pay::sandbox::wechat_push::{EncryptionMode, SignedPost, WechatPush};
use campus_pay::store::testing::{TestStore, fresh_store};
use campus_pay::web::{App, AppState, Services};

pub const APPID: &str = "wx2c2769f8efd9abc2";
pub const SECRET: &str = "sandbox-app-secret-0001";
pub const TOKEN: &str = "spamtest";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const ACCOUNT: &str = "gh_10f6c3c3ac5a";
pub const PUBLIC_URL: &str = "https://pay.example.edu.cn";

pub struct TestApp {
    pub url: String,
    pub state: AppState,
    pub sandbox: WechatSandbox,
    /// WeChat Pay at loopback.
    pub pay: WechatPaySandbox,
    /// Alipay's gateway at loopback.
    pub alipay: AlipaySandbox,
    /// The Agricultural Bank of China's gateway and payment page at loopback.
    pub abc: AbcSandbox,
    pub push: WechatPush,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub store: Arc<TestStore>,
}

#[derive(Clone)]
pub struct Options {
    pub aes_key: bool,
    /// Share another app's database and cache (a second instance).
    pub share_with: Option<(Arc<TestStore>, SharedCache)>,
    /// `CAMPUSPAY_PUBLIC_URL` is the app's own `http://127.0.0.1:PORT` instead of
    /// [`PUBLIC_URL`]: what a real browser needs (OAuth comes back to the app, and the
    /// cookies are not `Secure`).
    pub public_url_is_self: bool,
    /// The app talks to the database through this store instead of the test store's
    /// own pool (e.g. the same data behind a fault proxy).
    pub app_store: Option<campus_pay::store::Store>,
    /// More `CAMPUSPAY_*` settings, e.g. `CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS`.
    pub extra_config: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            aes_key: true,
            share_with: None,
            public_url_is_self: false,
            app_store: None,
            extra_config: Vec::new(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn fresh_cache(clock: &Clock) -> SharedCache {
    match std::env::var("CAMPUSPAY_TEST_REDIS_URL") {
        Ok(url) => {
            let prefix = format!("cp_test:{}:", uuid::Uuid::new_v4().simple());
            Arc::new(
                RedisCache::connect(&url, &prefix)
                    .await
                    .expect("CAMPUSPAY_TEST_REDIS_URL is set but Redis is unreachable"),
            )
        }
        Err(_) => Arc::new(MemoryCache::new(clock.clone())),
    }
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let sandbox = WechatSandbox::spawn(APPID, SECRET)
        .await
        .expect("the WeChat sandbox starts");
    let clock = Clock::system();
    let (store, cache) = match options.share_with {
        Some(shared) => shared,
        None => (Arc::new(fresh_store().await), fresh_cache(&clock).await),
    };
    let api_base = sandbox.base_url().to_string();
    let pay = WechatPaySandbox::spawn(merchant::sandbox_merchant(APPID), clock.clone())
        .await
        .expect("the WeChat Pay sandbox starts");
    let key_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wechatpay-keys-{}", uuid::Uuid::new_v4().simple()));
    let key_files = merchant::write_key_files(&key_dir).expect("key files written");
    let mut pay_settings = merchant::settings(pay.base_url().as_str(), &key_files);
    let alipay = AlipaySandbox::spawn(SANDBOX_APP_ID, clock.clone())
        .await
        .expect("the Alipay sandbox starts");
    pay_settings.extend(
        merchant::alipay_settings(alipay.base_url().as_str(), &key_dir)
            .expect("Alipay keys written"),
    );
    let abc = AbcSandbox::spawn(clock.clone())
        .await
        .expect("the bank sandbox starts");
    pay_settings.extend(
        merchant::abc_settings(abc.gateway_url().as_str(), &key_dir).expect("ABC keys written"),
    );
    pay_settings.extend(options.extra_config.iter().cloned());
    let services = Services {
        store: options
            .app_store
            .clone()
            .unwrap_or_else(|| (*store).clone()),
        cache,
        clock: clock.clone(),
        background: Background::new(),
    };
    // Bound once, here: the public URL may need the port before the config exists.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    let listen = address.to_string();
    let public_url = if options.public_url_is_self {
        format!("http://{address}")
    } else {
        PUBLIC_URL.to_owned()
    };
    let pairs = config_pairs(
        &listen,
        &public_url,
        &api_base,
        options.aes_key,
        &pay_settings,
    );
    let config = Config::from_variables(&Variables::from_pairs(pairs)).expect("test config");
    let app = App::build_on(listener, config, services).expect("the app builds");
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let push = WechatPush {
        token: TOKEN.into(),
        appid: APPID.into(),
        aes_key: Some(PushAesKey::parse(AES_KEY).expect("test key")),
    };
    TestApp {
        url: format!("http://{address}"),
        state,
        sandbox,
        pay,
        alipay,
        abc,
        push,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        clock,
        store,
    }
}

pub fn config_pairs<'a>(
    listen: &'a str,
    public_url: &'a str,
    api_base: &'a str,
    aes_key: bool,
    pay_settings: &'a [(&'static str, String)],
) -> Vec<(&'static str, &'a str)> {
    let mut pairs = vec![
        ("CAMPUSPAY_LISTEN", listen),
        ("CAMPUSPAY_PUBLIC_URL", public_url),
        ("CAMPUSPAY_WECHAT_APPID", APPID),
        ("CAMPUSPAY_WECHAT_SECRET", SECRET),
        ("CAMPUSPAY_WECHAT_TOKEN", TOKEN),
        ("CAMPUSPAY_WECHAT_API_BASE", api_base),
        ("CAMPUSPAY_WECHAT_OAUTH_BASE", api_base),
        // The scheduled follower check never fires inside a test (February 30th): tests
        // run checks themselves.
        ("CAMPUSPAY_CLEANUP_SCHEDULE", "0 0 0 30 2 *"),
        ("CAMPUSPAY_RECONCILE_SCHEDULE", "0 0 0 30 2 *"),
    ];
    if aes_key {
        pairs.push(("CAMPUSPAY_WECHAT_AES_KEY", AES_KEY));
    }
    pairs.extend(
        pay_settings
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    pairs
}

pub struct WebhookResponse {
    pub status: u16,
    pub body: String,
}

impl TestApp {
    /// A second instance on the same database and cache, as behind one nginx.
    pub async fn second_instance(&self) -> TestApp {
        spawn_app_with(Options {
            aes_key: true,
            share_with: Some((self.store.clone(), self.state.cache.clone())),
            ..Options::default()
        })
        .await
    }

    pub async fn get_wechat(&self, query: &str) -> WebhookResponse {
        let response = self
            .client
            .get(format!("{}/wechat?{query}", self.url))
            .send()
            .await
            .expect("request sent");
        WebhookResponse {
            status: response.status().as_u16(),
            body: response.text().await.expect("body"),
        }
    }

    pub async fn post_wechat(&self, post: &SignedPost) -> WebhookResponse {
        self.post_wechat_raw(&post.query, post.body.clone()).await
    }

    pub async fn post_wechat_raw(
        &self,
        query: &str,
        body: impl Into<reqwest::Body>,
    ) -> WebhookResponse {
        let response = self
            .client
            .post(format!("{}/wechat?{query}", self.url))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .expect("request sent");
        WebhookResponse {
            status: response.status().as_u16(),
            body: response.text().await.expect("body"),
        }
    }

    /// Sends `xml` the way WeChat does in `mode`, and returns the reply's plaintext.
    pub async fn send(&self, xml: &str, mode: EncryptionMode) -> String {
        let post = self.push.signed_post(xml, mode);
        let response = self.post_wechat(&post).await;
        assert_eq!(response.status, 200, "{}", response.body);
        self.push
            .open_reply(&post, &response.body)
            .expect("the reply opens")
    }

    pub async fn drain_background(&self) {
        self.state.background.drain().await;
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
