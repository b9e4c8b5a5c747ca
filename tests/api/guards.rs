//! The guards that must not give way (issue 13): guesses that arrive together are held
//! to the same limits as guesses one by one, on every door; a captcha is used once
//! even when its answer is posted many times at once; a session opens only its own
//! surface and only while what signed it in holds; password changes ask for the
//! current password and end the student's other sessions; argon2 runs in turns; the
//! console asks for a captcha after failures from an address.
//!
//! The bursts run on a multi-threaded runtime so that the app's requests really run
//! side by side.

use campus_pay::store::AdminRole;
use campus_pay::web::students::captcha_key;
use futures_util::future::join_all;
use reqwest::StatusCode;

use crate::support::admin::{ADMIN_PASSWORD, FINANCE};
use crate::support::browser::{Browser, NEW_PASSWORD, Page};
use crate::support::seed::{LI_SI, WANG_WU, ZHANG_SAN};
use crate::support::{TestApp, spawn_app};

const BURST: usize = 25;
const LIMIT: usize = 5;

/// How a burst went: answers that reached the password check, and those refused
/// before it.
struct Tally {
    checked: usize,
    refused: usize,
    signed_in: usize,
}

/// `locked`: the refusals expected (any one of them).
fn tally(pages: &[Page], wrong: &str, locked: &[&str]) -> Tally {
    let mut tally = Tally {
        checked: 0,
        refused: 0,
        signed_in: 0,
    };
    for page in pages {
        if page.status.is_redirection() {
            tally.checked += 1;
            tally.signed_in += 1;
        } else if page.body.contains(wrong) {
            tally.checked += 1;
        } else if page.status == StatusCode::TOO_MANY_REQUESTS
            && locked.iter().any(|refusal| page.body.contains(refusal))
        {
            tally.refused += 1;
        } else if page.status == StatusCode::SERVICE_UNAVAILABLE {
            // Too busy to check: neither checked nor counted.
        } else {
            panic!("unexpected answer {}: {}", page.status, page.body);
        }
    }
    tally
}

/// A PC browser from its own address, on the login page with a captcha drawn: the
/// CSRF token and the captcha's answer.
async fn pc_ready(app: &TestApp, n: usize) -> (Browser<'_>, String, String) {
    let mut browser = Browser::new(app);
    browser.address = format!("198.18.{}.{}", n / 200, n % 200 + 1);
    let page = browser.get("/").await;
    let (status, _) = browser.get_bytes("/captcha").await;
    assert_eq!(status, StatusCode::OK);
    let session = browser.session.clone().expect("a session");
    let answer = app
        .state
        .cache
        .get(&captcha_key(&session))
        .await
        .expect("cache")
        .expect("an answer");
    (browser, page.csrf(), answer)
}

/// Posts every prepared PC login at once; `password(n)` is the n-th guess.
async fn pc_burst(
    app: &TestApp,
    id_card: &str,
    password: impl Fn(usize) -> &'static str,
) -> Vec<Page> {
    let mut ready = Vec::new();
    for n in 0..BURST {
        ready.push(pc_ready(app, n).await);
    }
    join_all(
        ready
            .iter_mut()
            .enumerate()
            .map(|(n, (browser, csrf, answer))| {
                let guess = password(n);
                async move {
                    browser
                        .post(
                            "/login",
                            &[
                                ("csrf", csrf.as_str()),
                                ("id_card", id_card),
                                ("password", guess),
                                ("captcha", answer.as_str()),
                            ],
                        )
                        .await
                }
            }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_pc_guesses_are_held_to_five_and_lock_the_account() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let pages = pc_burst(&app, ZHANG_SAN, |_| "000001").await;
    let burst = tally(&pages, "身份证号或密码错误", &["锁定"]);
    assert!(burst.checked <= LIMIT, "{} guesses checked", burst.checked);
    assert!(burst.refused >= BURST - LIMIT, "{} refused", burst.refused);

    // The right password, after the limit was reached, waits too.
    let (mut late, csrf, answer) = pc_ready(&app, 250).await;
    let right = late
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
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        right.body
    );

    // A burst with the right password last among them: still no more than five checked.
    let pages = pc_burst(&app, WANG_WU, |n| {
        if n == BURST - 1 { "07803X" } else { "000001" }
    })
    .await;
    let mixed = tally(&pages, "身份证号或密码错误", &["锁定"]);
    assert!(mixed.checked <= LIMIT, "{} guesses checked", mixed.checked);
    assert!(mixed.signed_in <= 1);
}

/// A phone that went through OAuth as `openid` and has the binding form open: its
/// CSRF token.
async fn h5_ready<'a>(app: &'a TestApp, openid: &str, n: usize) -> (Browser<'a>, String) {
    let mut browser = Browser::new(app);
    browser.address = format!("198.19.{}.{}", n / 200, n % 200 + 1);
    assert!(browser.wechat_oauth(openid).await.redirects_to("/h5"));
    assert!(browser.get("/h5").await.redirects_to("/h5/bind"));
    let form = browser.get("/h5/bind").await;
    assert_eq!(form.status, StatusCode::OK);
    (browser, form.csrf())
}

async fn h5_burst<'a>(
    ready: &mut [(Browser<'a>, String)],
    id_card: impl Fn(usize) -> &'static str,
    password: &str,
) -> Vec<Page> {
    join_all(ready.iter_mut().enumerate().map(|(n, (browser, csrf))| {
        let id_card = id_card(n);
        async move {
            browser
                .post(
                    "/h5/bind",
                    &[
                        ("csrf", csrf.as_str()),
                        ("id_card", id_card),
                        ("id_card_again", id_card),
                        ("password", password),
                    ],
                )
                .await
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_h5_binding_guesses_are_held_to_five_per_id_number_and_per_openid() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;

    // One ID number, guessed from many WeChat users at once.
    let mut phones = Vec::new();
    for n in 0..BURST {
        phones.push(h5_ready(&app, &format!("o_phone_{n}"), n).await);
    }
    let pages = h5_burst(&mut phones, |_| ZHANG_SAN, "000001").await;
    let burst = tally(&pages, "身份证号或密码错误", &["锁定"]);
    assert!(burst.checked <= LIMIT, "{} guesses checked", burst.checked);
    assert!(burst.refused >= BURST - LIMIT);
    let (mut late, csrf) = h5_ready(&app, "o_late", 240).await;
    let right = late
        .post(
            "/h5/bind",
            &[
                ("csrf", &csrf),
                ("id_card", ZHANG_SAN),
                ("id_card_again", ZHANG_SAN),
                ("password", "31002X"),
            ],
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);

    // One WeChat user, guessing several ID numbers at once.
    let mut sessions = Vec::new();
    for n in 0..BURST {
        sessions.push(h5_ready(&app, "o_guesser", 100 + n).await);
    }
    let pages = h5_burst(&mut sessions, |n| [LI_SI, WANG_WU][n % 2], "999999").await;
    let guessed = tally(&pages, "身份证号或密码错误", &["尝试次数过多", "锁定"]);
    assert!(
        guessed.checked <= LIMIT,
        "{} guesses checked",
        guessed.checked
    );
    assert!(guessed.refused >= BURST - LIMIT);
    assert!(
        app.state
            .store
            .find_student_by_openid("o_guesser")
            .await
            .expect("query")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_console_guesses_are_held_to_five_and_lock_the_name() {
    let app = spawn_app().await;
    app.create_admin(FINANCE, AdminRole::Finance).await;
    let mut ready = Vec::new();
    for n in 0..BURST {
        let mut browser = Browser::console(&app);
        browser.address = format!("198.20.{}.{}", n / 200, n % 200 + 1);
        let form = browser.get("/admin/login").await;
        ready.push((browser, form.csrf()));
    }
    let pages = join_all(ready.iter_mut().map(|(browser, csrf)| async move {
        browser
            .post(
                "/admin/login",
                &[
                    ("csrf", csrf.as_str()),
                    ("username", FINANCE),
                    ("password", "wrong-password"),
                ],
            )
            .await
    }))
    .await;
    let burst = tally(&pages, "用户名或密码错误", &["锁定"]);
    assert!(burst.checked <= LIMIT, "{} guesses checked", burst.checked);
    assert!(burst.refused >= BURST - LIMIT);
    let mut late = Browser::console(&app);
    late.address = "198.20.9.9".into();
    let right = late.sign_in_to_console(FINANCE, ADMIN_PASSWORD).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_captcha_answer_posted_many_times_at_once_passes_once() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let (browser, csrf, answer) = pc_ready(&app, 0).await;
    let session = browser.session.clone().expect("a session");
    let posts = (0..12).map(|_| {
        let request = app
            .client
            .post(format!("{}/login", app.url))
            .header("cookie", format!("cp_session={session}"))
            .header("x-real-ip", "198.18.0.1")
            .form(&[
                ("csrf", csrf.as_str()),
                ("id_card", ZHANG_SAN),
                ("password", "000001"),
                ("captcha", answer.as_str()),
            ]);
        async move {
            let response = request.send().await.expect("answers");
            let status = response.status();
            (status, response.text().await.expect("body"))
        }
    });
    let answers = join_all(posts).await;
    let past_the_captcha = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    let used_up = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::BAD_REQUEST && body.contains("验证码已过期")
        })
        .count();
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(past_the_captcha, 1, "{statuses:?}");
    assert_eq!(used_up, answers.len() - 1);
}

/// Binds `id_card` from `openid` (initial password `initial`) and chooses the new one.
async fn bound_phone<'a>(
    app: &'a TestApp,
    openid: &str,
    id_card: &str,
    initial: &str,
) -> Browser<'a> {
    Browser::signed_in_h5(app, openid, id_card, initial).await
}

#[tokio::test]
async fn a_displaced_wechat_session_opens_nothing_on_either_surface() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut old_phone = bound_phone(&app, "o_old", ZHANG_SAN, "31002X").await;
    let old_page = old_phone.get("/h5/fees").await;
    assert_eq!(old_page.status, StatusCode::OK);
    // The token an attacker holding the old phone's cookie would have.
    let old_csrf = old_page.csrf();
    // Even before anything happens, an H5 session is not a PC one.
    assert!(old_phone.get("/fees").await.redirects_to("/"));

    // Rebound from another WeChat: the old phone's session is done, on both surfaces.
    let mut new_phone = Browser::new(&app);
    assert!(new_phone.wechat_oauth("o_new").await.redirects_to("/h5"));
    new_phone.get("/h5").await;
    let form = new_phone.get("/h5/bind").await;
    let rebound = new_phone
        .post(
            "/h5/bind",
            &[
                ("csrf", &form.csrf()),
                ("id_card", ZHANG_SAN),
                ("id_card_again", ZHANG_SAN),
                ("password", NEW_PASSWORD),
            ],
        )
        .await;
    assert!(rebound.redirects_to("/h5/fees"), "{:?}", rebound.location);
    let fees = old_phone.get("/fees").await;
    assert!(
        fees.redirects_to("/"),
        "{} {:?}",
        fees.status,
        fees.location
    );
    let hijack = old_phone
        .post(
            "/password",
            &[
                ("csrf", &old_csrf),
                ("new_password", "Hijacked2026x"),
                ("new_password_again", "Hijacked2026x"),
            ],
        )
        .await;
    assert!(hijack.redirects_to("/"), "{:?}", hijack.location);
    assert!(old_phone.get("/h5/fees").await.redirects_to("/h5"));
    assert!(!old_phone.get("/h5/password").await.status.is_success());
    // The student still signs in with their own password.
    let mut pc = Browser::new(&app);
    assert!(
        pc.pc_login(ZHANG_SAN, NEW_PASSWORD)
            .await
            .redirects_to("/fees")
    );
    assert_eq!(new_phone.get("/h5/fees").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_offices_unbinding_and_reset_end_the_students_sessions_on_both_surfaces() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut phone = bound_phone(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let mut pc = Browser::new(&app);
    assert!(
        pc.pc_login(ZHANG_SAN, NEW_PASSWORD)
            .await
            .redirects_to("/fees")
    );
    assert_eq!(pc.get("/fees").await.status, StatusCode::OK);
    let zhang = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    let path = format!("/admin/students/{}", zhang.id);
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    let page = console.get(&path).await;
    let unbound = console
        .post(&format!("{path}/unbind"), &[("csrf", &page.csrf())])
        .await;
    assert!(unbound.status.is_redirection());
    assert!(phone.get("/h5/fees").await.redirects_to("/h5"));
    assert!(phone.get("/fees").await.redirects_to("/"));
    assert!(
        pc.get("/fees").await.redirects_to("/"),
        "the unbinding ends PC sessions too"
    );

    // Signed in again on PC; the office's reset ends that session as well.
    let mut pc = Browser::new(&app);
    assert!(
        pc.pc_login(ZHANG_SAN, NEW_PASSWORD)
            .await
            .redirects_to("/fees")
    );
    let page = console.get(&path).await;
    let reset = console
        .post(&format!("{path}/reset-password"), &[("csrf", &page.csrf())])
        .await;
    assert!(reset.status.is_redirection());
    assert!(pc.get("/fees").await.redirects_to("/"));
    assert!(pc.get("/password").await.redirects_to("/"));
}

#[tokio::test]
async fn a_password_change_asks_for_the_current_one_and_ends_the_other_sessions() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    // The first-login change right after typing the initial password does not ask.
    let mut phone = bound_phone(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let mut pc = Browser::new(&app);
    assert!(
        pc.pc_login(ZHANG_SAN, NEW_PASSWORD)
            .await
            .redirects_to("/fees")
    );
    let mut other_pc = Browser::new(&app);
    assert!(
        other_pc
            .pc_login(ZHANG_SAN, NEW_PASSWORD)
            .await
            .redirects_to("/fees")
    );

    let form = pc.get("/password").await;
    assert!(form.body.contains("当前密码"), "a later change asks for it");
    let csrf = form.csrf();
    let without = pc
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("new_password", "Another2026pw"),
                ("new_password_again", "Another2026pw"),
            ],
        )
        .await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    assert!(without.body.contains("当前密码错误"));
    let wrong = pc
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current_password", "Wrong2026pw"),
                ("new_password", "Another2026pw"),
                ("new_password_again", "Another2026pw"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        other_pc.get("/fees").await.status,
        StatusCode::OK,
        "nothing changed yet"
    );

    let changed = pc
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current_password", NEW_PASSWORD),
                ("new_password", "Another2026pw"),
                ("new_password_again", "Another2026pw"),
            ],
        )
        .await;
    assert!(
        changed.redirects_to("/fees"),
        "{:?} {}",
        changed.location,
        changed.body
    );
    assert_eq!(
        pc.get("/fees").await.status,
        StatusCode::OK,
        "this session carries on"
    );
    assert!(other_pc.get("/fees").await.redirects_to("/"));
    assert!(phone.get("/h5/fees").await.redirects_to("/h5"));
    // The phone comes back only through WeChat's OAuth (its binding still holds).
    assert!(phone.wechat_oauth("o_zhang").await.redirects_to("/h5"));
    assert!(phone.get("/h5").await.redirects_to("/h5/fees"));
    assert_eq!(phone.get("/h5/fees").await.status, StatusCode::OK);
    // Recognised by the binding, not by a typed password: a change there asks for it.
    assert!(phone.get("/h5/password").await.body.contains("当前密码"));
}

#[tokio::test]
async fn wrong_current_passwords_count_towards_the_lockout() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut pc = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let csrf = pc.get("/password").await.csrf();
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            pc.post(
                "/password",
                &[
                    ("csrf", &csrf),
                    ("current_password", "Wrong2026pw"),
                    ("new_password", "Another2026pw"),
                    ("new_password_again", "Another2026pw"),
                ],
            )
            .await,
        );
    }
    let last = last.expect("posted");
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{}", last.body);
    assert!(last.body.contains("锁定"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn console_sign_ins_hash_in_turns_and_a_burst_never_exceeds_them() {
    let app = spawn_app().await;
    let mut ready = Vec::new();
    for n in 0..30 {
        let mut browser = Browser::console(&app);
        browser.address = format!("198.21.{}.{}", n / 200, n % 200 + 1);
        let form = browser.get("/admin/login").await;
        ready.push((browser, form.csrf(), format!("made-up-{n}")));
    }
    let pages = join_all(ready.iter_mut().map(|(browser, csrf, name)| async move {
        browser
            .post(
                "/admin/login",
                &[
                    ("csrf", csrf.as_str()),
                    ("username", name.as_str()),
                    ("password", "whatever-password"),
                ],
            )
            .await
    }))
    .await;
    for page in &pages {
        assert!(
            page.body.contains("用户名或密码错误")
                || (page.status == StatusCode::SERVICE_UNAVAILABLE
                    && page.body.contains("系统繁忙，请稍后再试")),
            "{} {}",
            page.status,
            page.body
        );
    }
    let work = &app.state.password_work;
    assert!(work.peak() >= 1);
    assert!(
        work.peak() <= work.capacity(),
        "{} hashes ran at once, capacity {}",
        work.peak(),
        work.capacity()
    );
}

#[tokio::test]
async fn the_console_asks_for_a_captcha_after_failures_from_an_address() {
    let app = spawn_app().await;
    app.create_admin(FINANCE, AdminRole::Finance).await;
    let mut browser = Browser::console(&app);
    let form = browser.get("/admin/login").await;
    assert!(
        !form.body.contains("name=\"captcha\""),
        "no captcha at first"
    );
    for _ in 0..3 {
        let wrong = browser.sign_in_to_console("nobody", "whatever").await;
        assert!(wrong.body.contains("用户名或密码错误"));
    }
    let form = browser.get("/admin/login").await;
    assert!(form.body.contains("name=\"captcha\"") && form.body.contains("验证码"));
    let without = browser
        .post(
            "/admin/login",
            &[
                ("csrf", &form.csrf()),
                ("username", FINANCE),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST);
    assert!(browser.get("/admin").await.redirects_to("/admin/login"));
    // Another address is not asked.
    let mut elsewhere = Browser::console(&app);
    elsewhere.address = "198.51.100.99".into();
    assert!(
        !elsewhere
            .get("/admin/login")
            .await
            .body
            .contains("name=\"captcha\"")
    );
    // With the picture's characters, the right password signs in.
    let signed_in = browser.sign_in_to_console(FINANCE, ADMIN_PASSWORD).await;
    assert!(
        signed_in.redirects_to("/admin"),
        "{:?} {}",
        signed_in.location,
        signed_in.body
    );
}
