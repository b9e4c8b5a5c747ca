//! Students sign in and see what they owe: the H5 flow through WeChat OAuth and
//! binding, the PC portal with its captcha, and what keeps both safe (lockout, CSRF,
//! idle sessions), all over HTTP against the sandbox.

use std::time::Duration;

use campus_pay::sandbox::wechat_api::paths;
use campus_pay::web::session::{IDLE_TIMEOUT, Sessions};
use campus_pay::web::students::captcha_key;
use reqwest::StatusCode;

use crate::support::browser::{Browser, Page};
use crate::support::seed::{LI_SI, WANG_WU, ZHANG_SAN};
use crate::support::{PUBLIC_URL, TestApp, spawn_app};

const NEW_PASSWORD: &str = "Campus2026pay";

/// Binds `id_card` from WeChat user `openid` with `password`, from a fresh browser.
async fn bind<'a>(
    app: &'a TestApp,
    openid: &str,
    id_card: &str,
    password: &str,
) -> (Browser<'a>, Page) {
    let mut browser = Browser::new(app);
    let back = browser.wechat_oauth(openid).await;
    assert!(
        back.redirects_to("/h5"),
        "{:?} {}",
        back.location,
        back.body
    );
    let entry = browser.get("/h5").await;
    assert!(entry.redirects_to("/h5/bind"), "{:?}", entry.location);
    let form = browser.get("/h5/bind").await;
    assert_eq!(form.status, StatusCode::OK);
    let bound = browser
        .post(
            "/h5/bind",
            &[
                ("csrf", &form.csrf()),
                ("id_card", id_card),
                ("id_card_again", id_card),
                ("password", password),
            ],
        )
        .await;
    (browser, bound)
}

async fn choose_password(browser: &mut Browser<'_>, prefix: &str) -> Page {
    let form = browser.get(&format!("{prefix}/password")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    browser
        .post(
            &format!("{prefix}/password"),
            &[
                ("csrf", &form.csrf()),
                ("new_password", NEW_PASSWORD),
                ("new_password_again", NEW_PASSWORD),
            ],
        )
        .await
}

#[tokio::test]
async fn h5_first_visit_binds_sets_a_password_and_shows_the_fees() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut browser = Browser::new(&app);

    // /h5 sends the student to WeChat with a state bound to their session.
    let start = browser.get("/h5").await;
    assert_eq!(start.status, StatusCode::FOUND);
    let authorize = start.location.clone().expect("redirect");
    assert!(authorize.contains("scope=snsapi_base"), "{authorize}");
    assert!(authorize.ends_with("#wechat_redirect"));
    let callback =
        url::form_urlencoded::byte_serialize(format!("{PUBLIC_URL}/h5/oauth/callback").as_bytes())
            .collect::<String>();
    assert!(
        authorize.contains(&format!("redirect_uri={callback}")),
        "{authorize}"
    );

    let back = browser.wechat_oauth("o_zhang").await;
    assert!(
        back.redirects_to("/h5"),
        "the code leaves the address bar: {:?}",
        back.location
    );
    assert!(browser.get("/h5").await.redirects_to("/h5/bind"));

    // The bind form asks for the ID number twice and the password.
    let form = browser.get("/h5/bind").await;
    for label in [
        "身份证号",
        "确认身份证号",
        "密码",
        "行树楼103室 计财处结算中心1号窗口",
    ] {
        assert!(form.body.contains(label), "{label}");
    }
    let csrf = form.csrf();
    let mismatch = browser
        .post(
            "/h5/bind",
            &[
                ("csrf", &csrf),
                ("id_card", ZHANG_SAN),
                ("id_card_again", LI_SI),
                ("password", "31002X"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert!(mismatch.body.contains("两次输入的身份证号不一致"));
    let wrong = browser
        .post(
            "/h5/bind",
            &[
                ("csrf", &csrf),
                ("id_card", ZHANG_SAN),
                ("id_card_again", ZHANG_SAN),
                ("password", "123456"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("身份证号或密码错误"));

    // Lower-case x, as students type it, with the initial password (last six, X upper).
    let bound = browser
        .post(
            "/h5/bind",
            &[
                ("csrf", &csrf),
                ("id_card", "11010519491231002x"),
                ("id_card_again", ZHANG_SAN),
                ("password", "31002X"),
            ],
        )
        .await;
    assert!(
        bound.redirects_to("/h5/password"),
        "{:?} {}",
        bound.location,
        bound.body
    );
    assert!(
        browser.get("/h5/fees").await.redirects_to("/h5/password"),
        "no fees before a new password"
    );

    // The new password must follow the rule.
    let form = browser.get("/h5/password").await;
    for weak in ["short1", "onlyletters", "12345678", "1231002X"] {
        let refused = browser
            .post(
                "/h5/password",
                &[
                    ("csrf", &form.csrf()),
                    ("new_password", weak),
                    ("new_password_again", weak),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{weak} refused");
    }
    assert!(
        choose_password(&mut browser, "/h5")
            .await
            .redirects_to("/h5/fees")
    );

    let fees = browser.get("/h5/fees").await;
    assert_eq!(fees.status, StatusCode::OK);
    for shown in [
        "张三",
        "男",
        "110105********002X",
        "2026级 汽修1班",
        "2025-2026 学年",
        "2026-2027 学年",
        "学费",
        "¥4500.00",
        "¥350.50",
        "¥6050.50",
        "缴费",
        "新密码已设置",
    ] {
        assert!(fees.body.contains(shown), "the fee list shows {shown}");
    }
    assert!(!fees.body.contains(ZHANG_SAN), "never the full ID number");
    assert_eq!(fees.body.matches("type=\"checkbox\"").count(), 3);
    assert_eq!(
        fees.body.matches(" checked").count(),
        3,
        "every item ticked by default"
    );

    // The remark is set in the background: grade + class + name.
    app.drain_background().await;
    assert_eq!(
        app.sandbox.remarks().get("o_zhang").map(String::as_str),
        Some("26汽修1班张三")
    );

    // Every later visit, from a fresh browser: straight to the fee list.
    let mut later = Browser::new(&app);
    assert!(later.wechat_oauth("o_zhang").await.redirects_to("/h5"));
    assert!(later.get("/h5").await.redirects_to("/h5/fees"));
    let fees = later.get("/h5/fees").await;
    assert!(fees.body.contains("张三"));
}

#[tokio::test]
async fn an_oauth_code_works_once_and_a_foreign_state_is_refused() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let start = browser.get("/h5").await;
    let authorize = start
        .location
        .expect("redirect")
        .replace("#wechat_redirect", "");
    let wechat = app.client.get(&authorize).send().await.expect("sandbox");
    let back = wechat.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let code_url = back.clone();
    assert!(browser.get(&back).await.redirects_to("/h5"));

    // The same code again, with a state this session did send: WeChat says 40163.
    let mut other = Browser::new(&app);
    let start = other.get("/h5").await;
    let location = start.location.expect("redirect");
    let state = location
        .split("state=")
        .nth(1)
        .and_then(|rest| rest.split(['&', '#']).next())
        .expect("state");
    let code = code_url
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("code");
    let reused = other
        .get(&format!("/h5/oauth/callback?code={code}&state={state}"))
        .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert!(reused.body.contains("授权已失效"));
    assert_eq!(app.sandbox.calls_to(paths::SNS_ACCESS_TOKEN), 2);

    // A state from another session (a link someone was sent) is refused before WeChat.
    let mut stranger = Browser::new(&app);
    let code = app.sandbox.issue_oauth_code("o_victim");
    let forged = stranger
        .get(&format!("/h5/oauth/callback?code={code}&state={state}"))
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.sandbox.calls_to(paths::SNS_ACCESS_TOKEN),
        2,
        "the code was not spent"
    );
}

#[tokio::test]
async fn the_initial_password_can_be_the_one_the_import_gave() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let (_, refused) = bind(&app, "o_li", LI_SI, "150025").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "not the last six when the import gave one"
    );
    let (mut browser, bound) = bind(&app, "o_li", LI_SI, "000000").await;
    assert!(bound.redirects_to("/h5/password"));
    assert!(
        choose_password(&mut browser, "/h5")
            .await
            .redirects_to("/h5/fees")
    );
    let fees = browser.get("/h5/fees").await;
    assert!(fees.body.contains("李四") && fees.body.contains("¥5000.00"));
    app.drain_background().await;
    assert_eq!(
        app.sandbox.remarks().get("o_li").map(String::as_str),
        Some("25电子商务李四"),
        "shortened to 20 bytes, never the name"
    );
}

#[tokio::test]
async fn rebinding_from_another_wechat_account_unbinds_the_old_one_and_says_so() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let (mut old_phone, bound) = bind(&app, "o_old_phone", ZHANG_SAN, "31002X").await;
    assert!(bound.redirects_to("/h5/password"));
    assert!(
        choose_password(&mut old_phone, "/h5")
            .await
            .redirects_to("/h5/fees")
    );

    let (mut new_phone, rebound) = bind(&app, "o_new_phone", ZHANG_SAN, NEW_PASSWORD).await;
    assert!(rebound.redirects_to("/h5/fees"), "{:?}", rebound.location);
    let fees = new_phone.get("/h5/fees").await;
    assert!(
        fees.body.contains("该微信号已解除绑定"),
        "the page says the old account was unbound"
    );

    let student = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(student.wechat_openid.as_deref(), Some("o_new_phone"));
    assert!(
        app.state
            .store
            .find_student_by_openid("o_old_phone")
            .await
            .expect("query")
            .is_none()
    );
    // The old phone's session no longer opens the fee list.
    assert!(old_phone.get("/h5/fees").await.redirects_to("/h5"));
}

#[tokio::test]
async fn a_failed_remark_update_is_retried_in_the_background() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    app.sandbox.fail_next(paths::UPDATE_REMARK, 45009, 1);
    let (_, bound) = bind(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    assert!(bound.status.is_redirection());
    app.drain_background().await;
    assert_eq!(app.sandbox.calls_to(paths::UPDATE_REMARK), 2);
    assert_eq!(
        app.sandbox.remarks().get("o_zhang").map(String::as_str),
        Some("26汽修1班张三")
    );
}

/// The PC portal's login page, its captcha, and the answer as the cache holds it.
async fn portal_login_form(browser: &mut Browser<'_>) -> (String, String) {
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let (status, png) = browser.get_bytes("/captcha").await;
    assert_eq!(status, StatusCode::OK);
    assert!(png.starts_with(b"\x89PNG"));
    let session = browser.session.clone().expect("a session cookie");
    let answer = browser
        .app
        .state
        .cache
        .get(&captcha_key(&session))
        .await
        .expect("cache")
        .expect("the captcha's answer is in the cache");
    (page.csrf(), answer)
}

async fn portal_login(browser: &mut Browser<'_>, id_card: &str, password: &str) -> Page {
    let (csrf, answer) = portal_login_form(browser).await;
    browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("id_card", id_card),
                ("password", password),
                ("captcha", &answer.to_lowercase()),
            ],
        )
        .await
}

#[tokio::test]
async fn pc_portal_login_with_captcha_password_change_and_fee_list() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut browser = Browser::new(&app);
    let (csrf, answer) = portal_login_form(&mut browser).await;
    let page = browser.get("/").await;
    for label in ["身份证号", "密码", "验证码", "登录"] {
        assert!(page.body.contains(label), "{label}");
    }

    // A wrong captcha is refused and uses the captcha up.
    let wrong = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("id_card", ZHANG_SAN),
                ("password", "31002X"),
                ("captcha", "zzzz"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("验证码错误"));
    let replayed = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("id_card", ZHANG_SAN),
                ("password", "31002X"),
                ("captcha", &answer),
            ],
        )
        .await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(replayed.body.contains("验证码已过期"), "single use");

    let signed_in = portal_login(&mut browser, ZHANG_SAN, "31002X").await;
    assert!(
        signed_in.redirects_to("/password"),
        "{:?} {}",
        signed_in.location,
        signed_in.body
    );
    assert!(
        choose_password(&mut browser, "")
            .await
            .redirects_to("/fees")
    );
    let fees = browser.get("/fees").await;
    for shown in [
        "张三",
        "110105********002X",
        "学费缴费",
        "¥6050.50",
        "退出登录",
    ] {
        assert!(fees.body.contains(shown), "{shown}");
    }

    // 学费缴费 goes on to the confirmation with the ticked items.
    let marker = "name=\"item\" id=\"item-";
    let ids: Vec<String> = fees
        .body
        .match_indices(marker)
        .map(|(at, _)| {
            let rest = &fees.body[at + marker.len()..];
            rest[..rest.find('"').expect("id ends")].to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    let csrf = fees.csrf();
    let confirm = browser
        .post(
            "/confirm",
            &[("csrf", &csrf), ("item", &ids[0]), ("item", &ids[1])],
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("确认支付")
            && confirm.body.contains("下一步")
            && confirm.body.contains("武威职业学院")
    );
    let foreign = browser
        .post("/confirm", &[("csrf", &csrf), ("item", "999999")])
        .await;
    assert_eq!(
        foreign.status,
        StatusCode::CONFLICT,
        "someone else's or unknown item"
    );
    let none = browser.post("/confirm", &[("csrf", &csrf)]).await;
    assert_eq!(none.status, StatusCode::CONFLICT);

    // Logging out ends the session on the server.
    let session = browser.session.clone().expect("session");
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert!(out.redirects_to("/"));
    assert!(
        app.state
            .cache
            .get(&Sessions::key(&session))
            .await
            .expect("cache")
            .is_none()
    );
    browser.session = Some(session);
    assert!(browser.get("/fees").await.redirects_to("/"));

    // And the new password is the one that works now.
    let mut again = Browser::new(&app);
    assert!(portal_login(&mut again, ZHANG_SAN, "31002X").await.status == StatusCode::UNAUTHORIZED);
    assert!(
        portal_login(&mut again, ZHANG_SAN, NEW_PASSWORD)
            .await
            .redirects_to("/fees")
    );
}

#[tokio::test]
async fn a_student_who_owes_nothing_sees_no_arrears() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut browser = Browser::new(&app);
    assert!(
        portal_login(&mut browser, WANG_WU, "07803X")
            .await
            .redirects_to("/password")
    );
    choose_password(&mut browser, "").await;
    let fees = browser.get("/fees").await;
    assert!(fees.body.contains("无欠费"));
    assert!(!fees.body.contains("学费缴费"));
}

#[tokio::test]
async fn five_failures_lock_the_account_and_unknown_ids_look_the_same() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let unknown = "110101200001010010";
    let mut browser = Browser::new(&app);
    let wrong = portal_login(&mut browser, ZHANG_SAN, "000001").await;
    let missing = portal_login(&mut browser, unknown, "000001").await;
    assert_eq!(wrong.status, missing.status);
    assert!(
        wrong.body.contains("身份证号或密码错误") && missing.body.contains("身份证号或密码错误")
    );

    for n in 0..4 {
        // Different addresses: the account's own counter locks it.
        browser.address = format!("198.51.100.{n}");
        assert_eq!(
            portal_login(&mut browser, ZHANG_SAN, "000001").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    browser.address = "198.51.100.200".into();
    let locked = portal_login(&mut browser, ZHANG_SAN, "31002X").await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password waits too"
    );
    assert!(locked.body.contains("15分钟"));
    // Another student is not affected.
    assert!(
        portal_login(&mut browser, WANG_WU, "07803X")
            .await
            .redirects_to("/password")
    );
}

#[tokio::test]
async fn a_wechat_user_guessing_is_slowed_down() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    for n in 0..5 {
        let (_, refused) = bind(
            &app,
            "o_guesser",
            [ZHANG_SAN, LI_SI, WANG_WU][n % 3],
            "999999",
        )
        .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    let (_, throttled) = bind(&app, "o_guesser", WANG_WU, "07803X").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        app.state
            .store
            .find_student_by_openid("o_guesser")
            .await
            .expect("query")
            .is_none()
    );
}

#[tokio::test]
async fn forms_without_the_session_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut browser = Browser::new(&app);
    assert!(browser.wechat_oauth("o_zhang").await.redirects_to("/h5"));
    let forged = browser
        .post(
            "/h5/bind",
            &[
                ("csrf", "forged"),
                ("id_card", ZHANG_SAN),
                ("id_card_again", ZHANG_SAN),
                ("password", "31002X"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        app.state
            .store
            .find_student_by_openid("o_zhang")
            .await
            .expect("query")
            .is_none()
    );

    let mut pc = Browser::new(&app);
    let (_, answer) = portal_login_form(&mut pc).await;
    let no_token = pc
        .post(
            "/login",
            &[
                ("id_card", ZHANG_SAN),
                ("password", "31002X"),
                ("captcha", &answer),
            ],
        )
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    // Without any session at all (another site posting the form).
    let mut stranger = Browser::new(&app);
    let cross_site = stranger
        .post(
            "/login",
            &[
                ("csrf", "x"),
                ("id_card", ZHANG_SAN),
                ("password", "31002X"),
                ("captcha", "x"),
            ],
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);

    let signed_in = portal_login(&mut pc, ZHANG_SAN, "31002X").await;
    assert!(signed_in.redirects_to("/password"));
    let forged_password = pc
        .post(
            "/password",
            &[
                ("csrf", "forged"),
                ("new_password", NEW_PASSWORD),
                ("new_password_again", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged_password.status, StatusCode::FORBIDDEN);
    let student = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    assert!(student.must_change_password, "the password did not change");
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut browser = Browser::new(&app);
    assert!(
        portal_login(&mut browser, ZHANG_SAN, "31002X")
            .await
            .redirects_to("/password")
    );
    choose_password(&mut browser, "").await;
    assert_eq!(browser.get("/fees").await.status, StatusCode::OK);
    let key = Sessions::key(&browser.session.clone().expect("session"));
    assert_expires_in_thirty_minutes(&app, &key).await;

    // 29 idle minutes: still signed in, and that request pushes the expiry back.
    let_idle(&app, &key, IDLE_TIMEOUT - Duration::from_secs(60)).await;
    assert_eq!(browser.get("/fees").await.status, StatusCode::OK);
    assert_expires_in_thirty_minutes(&app, &key).await;

    // Thirty idle minutes: the cache has dropped the session by itself.
    let_idle(&app, &key, IDLE_TIMEOUT + Duration::from_secs(1)).await;
    assert_eq!(app.state.cache.get(&key).await.expect("cache"), None);
    assert!(browser.get("/fees").await.redirects_to("/"));
}

/// The expiry the cache holds for `key` (Redis: its PTTL) is the idle timeout, give or
/// take the moments the test itself took.
async fn assert_expires_in_thirty_minutes(app: &TestApp, key: &str) {
    let left = app
        .state
        .cache
        .time_to_live(key)
        .await
        .expect("cache")
        .expect("the session is stored with an expiry");
    assert!(
        left <= IDLE_TIMEOUT && left > IDLE_TIMEOUT - Duration::from_secs(10),
        "{left:?}"
    );
}

/// `idle` passes without a request. The app's clock moves on (the in-process cache
/// expires by it). Redis keeps its own time, which no test clock moves: there the
/// same time passes for `key` by taking `idle` off its TTL; when nothing is left,
/// the key gets Redis's smallest TTL and Redis itself expires it.
async fn let_idle(app: &TestApp, key: &str, idle: Duration) {
    app.clock.advance(idle);
    if std::env::var("CAMPUSPAY_TEST_REDIS_URL").is_err() {
        return;
    }
    let cache = &app.state.cache;
    let left = cache
        .time_to_live(key)
        .await
        .expect("cache")
        .expect("a TTL");
    let value = cache.get(key).await.expect("cache").expect("stored");
    let remaining = left.saturating_sub(idle).max(Duration::from_millis(1));
    cache.set(key, &value, remaining).await.expect("cache");
    if left > idle {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.time_to_live(key).await.expect("cache").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis kept {key} 10 s past a 1 ms TTL"
        );
        tokio::task::yield_now().await;
    }
}
