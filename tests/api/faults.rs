//! The service under faults: Redis and PostgreSQL going away and coming back (behind
//! a fault proxy, so the shared servers keep serving the other tests), an instance
//! killed between prepay and notification, and WeChat Pay hanging or failing. Each
//! test ends by checking the books against what the sandboxes recorded
//! (`support::books`): every order charged at a channel paid here once, for its
//! amount, no item paid twice, no item held by an order that is not open, every order
//! whole.

use std::sync::Arc;
use std::time::Duration;

use campus_pay::cache::{RedisCache, SharedCache};
use campus_pay::clock::Clock;
use campus_pay::sandbox::wechat_pay::{codes, paths};
use campus_pay::sandbox::wechat_push::{EncryptionMode, text_xml};
use campus_pay::store::testing::fresh_store;
use campus_pay::store::{OrderStatus, Store};
use reqwest::StatusCode;

use crate::support::books::check_books;
use crate::support::browser::{Browser, Page, element_text};
use crate::support::fault_proxy::FaultProxy;
use crate::support::seed::{LI_SI, ZHANG_SAN};
use crate::support::{ACCOUNT, Options, TestApp, fresh_cache, now, spawn_app_with};

/// Long enough for any condition a test waits on (conditions are polled, never slept for).
const PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// Waits until `$condition` (an expression, `.await` allowed) holds, failing the test
/// after [`PATIENCE`].
macro_rules! eventually {
    ($what:expr, $condition:expr) => {{
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !$condition {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting: {}",
                $what
            );
            tokio::time::sleep(POLL).await;
        }
    }};
}

/// The ticked form of the fee list (every item), as the browser posts it.
fn ticked_form(fees: &Page) -> Vec<(String, String)> {
    let mut form = vec![("csrf".to_owned(), fees.csrf())];
    form.extend(
        Browser::item_ids(fees)
            .into_iter()
            .map(|id| ("item".to_owned(), id)),
    );
    form
}

async fn post_form(browser: &mut Browser<'_>, url: &str, form: &[(String, String)]) -> Page {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post(url, &pairs).await
}

/// 张三 on PC: fee list, 确认支付, the WeChat QR code page (or what came instead).
async fn pay_on_pc(browser: &mut Browser<'_>) -> Page {
    let fees = browser.get("/fees").await;
    assert_eq!(fees.status, StatusCode::OK, "{}", fees.body);
    let form = ticked_form(&fees);
    let confirm = post_form(browser, "/confirm", &form).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    post_form(browser, "/pay/wechat", &form).await
}

fn order_number(page: &Page) -> String {
    element_text(&page.body, "order-number").expect("the page shows the order number")
}

async fn order_status(store: &Store, number: &str) -> Option<OrderStatus> {
    store
        .find_order(number)
        .await
        .ok()
        .flatten()
        .map(|order| order.status)
}

// ---- the upstream hangs or fails -----------------------------------------------------

/// WeChat Pay calls give up after a second here (the default is ten).
fn short_upstream_timeout() -> Options {
    Options {
        public_url_is_self: true,
        extra_config: vec![("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS", "1".to_owned())],
        ..Options::default()
    }
}

/// The student asks again after the retry message and pays once.
async fn retry_and_pay_once(app: &TestApp, browser: &mut Browser<'_>) {
    let paying = pay_on_pc(browser).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    let number = order_number(&paying);
    let paid = app.pay.pay(&number).await.expect("paid in the sandbox");
    assert_eq!(
        paid.notification_answers.first().map(|(status, _)| *status),
        Some(204)
    );
    let result = browser.get(&format!("/orders/{number}")).await;
    assert!(result.body.contains("缴费成功"), "{}", result.body);
    let books = check_books(app).await;
    assert_eq!(books.paid_orders, [number]);
    assert!(books.open_orders.is_empty(), "{books:?}");
    assert_eq!(books.accepted_notifications, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_prepay_gives_the_retry_message_while_other_pages_answer() {
    let app = spawn_app_with(short_upstream_timeout()).await;
    app.seed_students_and_fees().await;
    let mut zhang = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let mut li = Browser::signed_in_pc(&app, LI_SI, "000000").await;
    app.pay.hang_next(paths::NATIVE, Duration::from_secs(3), 1);

    let others_while_it_hangs = async {
        eventually!("the prepay is held", app.pay.held_requests() == 1);
        let health = app
            .client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .expect("sent");
        assert_eq!(health.status(), StatusCode::OK);
        let fees = li.get("/fees").await;
        assert_eq!(fees.status, StatusCode::OK);
        assert!(fees.body.contains("学费"));
        assert_eq!(app.pay.held_requests(), 1, "answered while the prepay hung");
    };
    let (hung, ()) = tokio::join!(pay_on_pc(&mut zhang), others_while_it_hangs);
    assert_eq!(
        hung.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        hung.body
    );
    assert!(hung.body.contains("支付通道暂时繁忙"), "{}", hung.body);
    // Outcome unknown: the order stays open (the sweep will ask), nothing half-written.
    let books = check_books(&app).await;
    assert_eq!(books.open_orders.len(), 1, "{books:?}");
    assert!(books.paid_orders.is_empty());

    eventually!("the held prepay ends", app.pay.held_requests() == 0);
    retry_and_pay_once(&app, &mut zhang).await;
}

#[tokio::test]
async fn a_failing_prepay_gives_the_retry_message_and_the_retry_pays_once() {
    let app = spawn_app_with(short_upstream_timeout()).await;
    app.seed_students_and_fees().await;
    let mut zhang = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    app.pay
        .fail_next(paths::NATIVE, 500, codes::SYSTEM_ERROR, 1);
    let failed = pay_on_pc(&mut zhang).await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.body
    );
    assert!(failed.body.contains("支付通道暂时繁忙"), "{}", failed.body);
    check_books(&app).await;
    retry_and_pay_once(&app, &mut zhang).await;
}

// ---- PostgreSQL restarts -------------------------------------------------------------

/// Connections the pool holds when PostgreSQL goes away.
const POOLED: usize = 8;
/// How long PostgreSQL is away: longer than the store's ping-if-idle threshold, as any
/// real restart is.
const RESTART: Duration = Duration::from_millis(1_500);

#[tokio::test]
#[cfg_attr(
    not(pg_tests),
    ignore = "needs PostgreSQL (restarted behind a proxy): set CAMPUSPAY_TEST_DATABASE_URL"
)]
async fn a_postgres_restart_fails_requests_cleanly_and_the_retried_notification_applies_once() {
    let database_url = std::env::var("CAMPUSPAY_TEST_DATABASE_URL")
        .expect("needs CAMPUSPAY_TEST_DATABASE_URL (PostgreSQL fault test)");
    let test_store = Arc::new(fresh_store().await);
    let (_, schema) = test_store.url_and_schema();
    let schema = schema.expect("a PostgreSQL schema").to_owned();
    let (proxy, proxied_url) = FaultProxy::in_front_of(&database_url).await;
    let app_store = Store::connect_with_schema(&proxied_url, &schema)
        .await
        .expect("the schema through the proxy");
    let cache = fresh_cache(&Clock::system()).await;
    let app = spawn_app_with(Options {
        share_with: Some((test_store.clone(), cache)),
        app_store: Some(app_store),
        public_url_is_self: true,
        ..Options::default()
    })
    .await;
    app.seed_students_and_fees().await;
    let mut zhang = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let paying = pay_on_pc(&mut zhang).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    let number = order_number(&paying);

    // Several connections in the pool, as under load: a restart kills them all.
    let warm = (0..POOLED).map(|_| app.state.store.find_order(&number));
    for found in futures_util::future::join_all(warm).await {
        found.expect("the database answers");
    }

    proxy.cut();
    let cut_at = std::time::Instant::now();
    // Pages fail with the short message, not a hang or a stack trace.
    let fees = zhang.get("/fees").await;
    assert!(fees.status.is_server_error(), "{}", fees.status);
    assert!(fees.body.contains("系统繁忙"), "{}", fees.body);
    let ready = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The notification is refused with WeChat's FAIL and a 5xx, so WeChat sends it again
    // on its schedule (the sandbox's clock: the first retry 15 s later).
    let paid = app.pay.pay(&number).await.expect("paid in the sandbox");
    let (status, body) = paid
        .notification_answers
        .first()
        .expect("one attempt")
        .clone();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("\"FAIL\""), "{body}");
    assert_eq!(
        order_status(&test_store, &number).await,
        Some(OrderStatus::Created)
    );
    // WeChat's first retry (15 s later on the sandbox's clock) meets PostgreSQL still away
    // and is refused the same way.
    app.clock.advance(Duration::from_secs(15));
    assert_eq!(
        app.pay.deliver_due_retries().await,
        1,
        "WeChat's first retry"
    );
    let (_, status, body) = app.pay.notification_answers()[1].clone();
    assert_eq!(status, 500, "{body}");
    // The outage itself lasts RESTART of real time (the pool's idle check reads real
    // time), as a real restart does: this is the fault's length, not a wait for an event.
    let outage_left = RESTART.saturating_sub(cut_at.elapsed());
    tokio::time::sleep(outage_left).await;
    proxy.restore();

    // Back: the dead pooled connections are replaced before any request gets one.
    for _ in 0..POOLED {
        let fees = zhang.get("/fees").await;
        assert_eq!(fees.status, StatusCode::OK, "{}", fees.body);
    }
    app.clock.advance(Duration::from_secs(15));
    assert_eq!(
        app.pay.deliver_due_retries().await,
        1,
        "WeChat's second retry, 15 s after the first"
    );
    assert_eq!(
        order_status(&test_store, &number).await,
        Some(OrderStatus::Paid),
        "the retried notification applies"
    );
    // Every refusal was WeChat's FAIL with a 5xx; the first 204 stops the retries.
    let answers = app.pay.notification_answers();
    let (acknowledged, refused) = answers.split_last().expect("answers");
    assert_eq!(acknowledged.1, 204, "{answers:?}");
    for (_, status, body) in refused {
        assert_eq!(*status, 500, "{body}");
        assert!(body.contains("\"FAIL\""), "{body}");
    }
    let books = check_books(&app).await;
    assert_eq!(books.paid_orders, [number]);
    assert_eq!(books.accepted_notifications, 1, "applied once");
}

// ---- Redis stops and comes back ------------------------------------------------------

#[tokio::test]
#[cfg_attr(
    not(redis_tests),
    ignore = "needs Redis (stopped behind a proxy): set CAMPUSPAY_TEST_REDIS_URL"
)]
async fn without_redis_the_webhook_answers_payments_apply_and_students_sign_in_again() {
    let redis_url = std::env::var("CAMPUSPAY_TEST_REDIS_URL")
        .expect("needs CAMPUSPAY_TEST_REDIS_URL (Redis fault test)");
    let (proxy, proxied_url) = FaultProxy::in_front_of(&redis_url).await;
    let prefix = format!("cp_test:{}:", uuid::Uuid::new_v4().simple());
    let cache: SharedCache = Arc::new(
        RedisCache::connect(&proxied_url, &prefix)
            .await
            .expect("Redis through the proxy"),
    );
    let app = spawn_app_with(Options {
        share_with: Some((Arc::new(fresh_store().await), cache)),
        public_url_is_self: true,
        ..Options::default()
    })
    .await;
    app.seed_students_and_fees().await;
    let mut zhang = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let paying = pay_on_pc(&mut zhang).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    let number = order_number(&paying);

    proxy.cut();
    // The webhook answers without its dedup keys.
    let follower = "oyORnuP8q7ou2gfYjqLzSIWZf0rs";
    for msg_id in [7_001, 7_001] {
        let xml = text_xml(ACCOUNT, follower, "缴费", msg_id, now());
        let reply = app.send(&xml, EncryptionMode::Safe).await;
        assert!(!reply.is_empty());
    }
    // A student whose session cannot be read is sent to sign in, not shown a 500; the
    // sign-in page itself says to come back later.
    let fees = zhang.get("/fees").await;
    assert!(
        fees.redirects_to("/"),
        "{} {:?}",
        fees.status,
        fees.location
    );
    let sign_in = zhang.get("/").await;
    assert_eq!(
        sign_in.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        sign_in.body
    );
    // Payments do not need the cache.
    let paid = app.pay.pay(&number).await.expect("paid in the sandbox");
    assert_eq!(
        paid.notification_answers.first().map(|(status, _)| *status),
        Some(204)
    );

    proxy.restore();
    // The session was never lost: once Redis answers, the student is signed in again.
    eventually!(
        "the session reads again",
        zhang.get("/fees").await.status == StatusCode::OK
    );
    let fees = zhang.get("/fees").await;
    assert!(fees.body.contains("无欠费"), "{}", fees.body);
    let books = check_books(&app).await;
    assert_eq!(books.paid_orders, [number]);
    assert_eq!(books.accepted_notifications, 1);
}

// ---- an instance is killed between prepay and notification ---------------------------

/// A `campus-pay serve` child process; killed (SIGKILL) when dropped, so that a failing
/// test leaves no orphan behind.
struct Instance {
    child: std::process::Child,
    address: std::net::SocketAddr,
    /// Its key files and log; removed after a test that passed.
    home: Option<std::path::PathBuf>,
}

impl Instance {
    /// Starts `campus-pay serve` on the test app's sandboxes and database, with
    /// `public_url` as the address WeChat and browsers use and, on Redis, the keys
    /// under `redis_keys`, and waits until ready. The child binds port 0 itself and
    /// logs the address it got: no port is picked here, released and bound again.
    async fn start(
        app: &TestApp,
        name: &str,
        public_url: &str,
        redis_keys: &RedisKeys,
    ) -> Instance {
        let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("faults-{name}-{}", uuid::Uuid::new_v4().simple()));
        let key_files = campus_pay::sandbox::merchant::write_key_files(&home).expect("keys");
        let pay_settings =
            campus_pay::sandbox::merchant::settings(app.pay.base_url().as_str(), &key_files);
        let api_base = app.sandbox.base_url().to_string();
        let pairs =
            crate::support::config_pairs("127.0.0.1:0", public_url, &api_base, true, &pay_settings);
        let log_path = home.join("serve.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_campus-pay"));
        for (variable, _) in std::env::vars() {
            if variable.starts_with("CAMPUSPAY_") {
                command.env_remove(variable);
            }
        }
        command
            .arg("serve")
            .current_dir(&home)
            .envs(pairs)
            .env("CAMPUSPAY_DATABASE_URL", app.store.database_url())
            // The line naming the bound address is logged at info.
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if let Some(redis_url) = &redis_keys.url {
            // The instances share their keys with each other, never with production.
            command
                .env("CAMPUSPAY_REDIS_URL", redis_url)
                .env("CAMPUSPAY_REDIS_PREFIX", &redis_keys.prefix);
        }
        let mut child = command.spawn().expect("campus-pay serve starts");
        let Some(address) = bound_address(&mut child, &log_path).await else {
            let _ = child.kill();
            panic!("instance {name} did not start: see {}", log_path.display());
        };
        let mut instance = Instance {
            child,
            address,
            home: Some(home),
        };
        if !instance.ready(&app.client).await {
            instance.home = None;
            panic!(
                "instance {name} never became ready: see {}",
                log_path.display()
            );
        }
        instance
    }

    /// Waits for `/readyz`; false when the process ended first.
    async fn ready(&mut self, client: &reqwest::Client) -> bool {
        let url = format!("http://{}/readyz", self.address);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tokio::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            let answer = client.get(&url).send().await;
            if answer.is_ok_and(|answer| answer.status() == StatusCode::OK) {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    fn kill(&mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown, no draining.
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(home) = self.home.take().filter(|_| !std::thread::panicking()) {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

/// What `campus-pay serve` logs once it has bound its port.
const LISTENING: &str = "campus-pay listening on http://";

/// The address a starting child bound, read from its log; none if it ended first.
async fn bound_address(
    child: &mut std::process::Child,
    log: &std::path::Path,
) -> Option<std::net::SocketAddr> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let logged = text
            .lines()
            .find_map(|line| line.split_once(LISTENING))
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok());
        if logged.is_some() {
            return logged;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// On Redis, a key prefix of one test's own for the instances it starts; every key
/// under it is deleted when this is dropped, whether the test passed or not.
struct RedisKeys {
    url: Option<String>,
    prefix: String,
}

impl RedisKeys {
    fn new() -> RedisKeys {
        RedisKeys {
            url: std::env::var("CAMPUSPAY_TEST_REDIS_URL").ok(),
            prefix: format!("cp_test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The keys under the prefix now (none without Redis).
    fn keys(&self) -> Vec<String> {
        let Some(mut connection) = self.connection() else {
            return Vec::new();
        };
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut connection)
            .expect("KEYS")
    }

    fn connection(&self) -> Option<redis::Connection> {
        let url = self.url.as_deref()?;
        let client = redis::Client::open(url).expect("the Redis URL");
        Some(client.get_connection().expect("Redis answers"))
    }

    /// Deletes every key under the prefix.
    fn delete_all(&self) {
        let keys = self.keys();
        if let (false, Some(mut connection)) = (keys.is_empty(), self.connection()) {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut connection);
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// A phone's browser inside WeChat, talking to whatever is behind `base` (nginx).
struct Phone {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Phone {
    fn new(base: &str, client: &reqwest::Client) -> Phone {
        Phone {
            base: base.to_owned(),
            client: client.clone(),
            cookie: None,
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let request = self.client.get(self.absolute(url));
        self.send(request).await
    }

    async fn post(&mut self, url: &str, form: &[(String, String)]) -> Page {
        let request = self.client.post(self.absolute(url)).form(form);
        self.send(request).await
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Page {
        if let Some(cookie) = &self.cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let response = request.send().await.expect("request sent");
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let pair = value
                .to_str()
                .expect("ascii")
                .split(';')
                .next()
                .unwrap_or("");
            if pair.starts_with("cp_session=") {
                self.cookie = Some(pair.to_owned());
            }
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body: response.text().await.expect("body"),
        }
    }

    /// OAuth as `openid`, binding to `id_card`, the first password change, the fee
    /// list, 立即支付: returns the order number.
    async fn start_paying(&mut self, openid: &str, id_card: &str, initial: &str) -> String {
        let to_wechat = self.get("/h5").await;
        let authorize = to_wechat.location.expect("a redirect to WeChat");
        let authorize = authorize.replace("#wechat_redirect", "") + "&sandbox_openid=" + openid;
        let back = self.get(&authorize).await;
        let callback = back.location.expect("WeChat sends the browser back");
        assert!(self.get(&callback).await.redirects_to("/h5"));
        assert!(self.get("/h5").await.redirects_to("/h5/bind"));
        let form = self.get("/h5/bind").await;
        let bind = [
            ("csrf", form.csrf()),
            ("id_card", id_card.to_owned()),
            ("id_card_again", id_card.to_owned()),
            ("password", initial.to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value));
        let bound = self.post("/h5/bind", &bind).await;
        assert!(bound.redirects_to("/h5/password"), "{}", bound.body);
        let form = self.get("/h5/password").await;
        let password = [
            ("csrf", form.csrf()),
            ("new_password", "Campus2026pay".to_owned()),
            ("new_password_again", "Campus2026pay".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value));
        assert!(
            self.post("/h5/password", &password)
                .await
                .redirects_to("/h5/fees")
        );
        let fees = self.get("/h5/fees").await;
        let paying = self.post("/h5/pay", &ticked_form(&fees)).await;
        assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
        order_number(&paying)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_leaves_the_notification_to_the_other_and_the_sweep_spares_it() {
    // The sandboxes, the database and (for the sweep) an in-process instance.
    let app = crate::support::spawn_app().await;
    app.seed_students_and_fees().await;
    let placeholder: std::net::SocketAddr = "127.0.0.1:9".parse().expect("address");
    let nginx = FaultProxy::start(placeholder).await;
    let public_url = format!("http://{}", nginx.address());
    let redis_keys = RedisKeys::new();
    let mut a = Instance::start(&app, "a", &public_url, &redis_keys).await;
    let b = Instance::start(&app, "b", &public_url, &redis_keys).await;
    nginx.retarget(a.address);

    let mut zhang = Phone::new(&public_url, &app.client);
    let paid_number = zhang
        .start_paying("o_zhang_kill", ZHANG_SAN, "31002X")
        .await;
    let mut li = Phone::new(&public_url, &app.client);
    let abandoned_number = li.start_paying("o_li_kill", LI_SI, "000000").await;

    // A dies between prepay and notification; nginx sends the traffic to B.
    a.kill();
    nginx.retarget(b.address);
    let paid = app
        .pay
        .pay(&paid_number)
        .await
        .expect("paid in the sandbox");
    assert_eq!(
        paid.notification_answers.first().map(|(status, _)| *status),
        Some(204),
        "{:?}",
        paid.notification_answers
    );
    assert_eq!(
        order_status(&app.store, &paid_number).await,
        Some(OrderStatus::Paid)
    );

    // After expiry the sweep closes the abandoned order and releases its items, and
    // leaves the paid one alone.
    app.clock.advance(Duration::from_secs(16 * 60));
    let report = campus_pay::jobs::orders::sweep_once(&app.state.checkout, &app.state.cache)
        .await
        .expect("sweep")
        .expect("the sweep lock is free");
    assert_eq!((report.closed, report.found_paid, report.failed), (1, 0, 0));
    assert_eq!(
        order_status(&app.store, &abandoned_number).await,
        Some(OrderStatus::Closed)
    );
    assert_eq!(
        order_status(&app.store, &paid_number).await,
        Some(OrderStatus::Paid)
    );
    assert_eq!(app.pay.calls_to(&paths::close(&paid_number)), 0);
    let books = check_books(&app).await;
    assert_eq!(books.paid_orders, [paid_number]);
    assert!(books.open_orders.is_empty(), "{books:?}");
    assert_eq!(books.accepted_notifications, 1);
    drop(b);
    // The instances kept their keys (sessions, locks) under the test's own prefix,
    // and none of them stays behind.
    if redis_keys.url.is_some() {
        assert!(
            !redis_keys.keys().is_empty(),
            "no keys under {}",
            redis_keys.prefix
        );
        redis_keys.delete_all();
        assert_eq!(redis_keys.keys(), Vec::<String>::new());
    }
}
