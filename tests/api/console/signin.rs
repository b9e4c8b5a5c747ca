//! Signing in to the console: wrong passwords, lockout, sessions of their own, sign-out.

use campus_pay::store::AdminRole;
use reqwest::StatusCode;

use crate::support::admin::{ADMIN_PASSWORD, FINANCE, VIEWER};
use crate::support::browser::Browser;
use crate::support::spawn_app;

#[tokio::test]
async fn an_admin_signs_in_sees_the_console_and_signs_out() {
    let app = spawn_app().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let home = console.get("/admin").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("缴费记录") && home.body.contains(FINANCE));
    // What needs attention, on a fresh school: nothing.
    assert!(home.body.contains("待处理异常") && home.body.contains("尚未运行"));
    assert!(home.body.contains("0 名学生，共 0.00 元"), "{}", home.body);
    let signed_in = app.audit_rows("admin.sign_in").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(signed_in[0].entry.actor, FINANCE);

    let csrf = home.csrf();
    let out = console.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert!(out.redirects_to("/admin/login"), "{:?}", out.location);
    assert!(console.session.is_none(), "the cookie is cleared");
    let after = console.get("/admin").await;
    assert!(after.redirects_to("/admin/login"));
}

#[tokio::test]
async fn pages_need_a_signed_in_admin_and_a_student_session_is_not_one() {
    let app = spawn_app().await;
    let mut stranger = Browser::console(&app);
    for path in [
        "/admin",
        "/admin/audit",
        "/admin/students",
        "/admin/payments",
    ] {
        let page = stranger.get(path).await;
        assert!(
            page.redirects_to("/admin/login"),
            "{path}: {:?}",
            page.status
        );
    }
    // A student's cookie means nothing on the console.
    app.seed_students_and_fees().await;
    let mut student = Browser::signed_in_pc(&app, crate::support::seed::ZHANG_SAN, "31002X").await;
    student.cookie_name = "cp_admin";
    let page = student.get("/admin").await;
    assert!(page.redirects_to("/admin/login"));
}

#[tokio::test]
async fn wrong_passwords_get_one_answer_and_five_lock_the_name() {
    let app = spawn_app().await;
    app.create_admin(FINANCE, AdminRole::Finance).await;
    let mut browser = Browser::console(&app);
    let unknown = browser.sign_in_to_console("nobody", "whatever").await;
    let wrong = browser.sign_in_to_console(FINANCE, "wrong-password").await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(unknown.body.contains("用户名或密码错误"));
    assert!(wrong.body.contains("用户名或密码错误"));
    for _ in 0..4 {
        browser.sign_in_to_console(FINANCE, "wrong-password").await;
    }
    let locked = browser.sign_in_to_console(FINANCE, ADMIN_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body.contains("锁定"), "{}", locked.body);
    assert!(browser.get("/admin").await.redirects_to("/admin/login"));
    // Another admin is not locked out by it.
    let other = app.console_as(VIEWER, AdminRole::Viewer).await;
    assert!(other.session.is_some());
}

#[tokio::test]
async fn sign_in_without_the_form_token_is_refused() {
    let app = spawn_app().await;
    app.create_admin(FINANCE, AdminRole::Finance).await;
    let mut browser = Browser::console(&app);
    browser.get("/admin/login").await;
    let forged = browser
        .post(
            "/admin/login",
            &[
                ("csrf", "forged"),
                ("username", FINANCE),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(browser.get("/admin").await.redirects_to("/admin/login"));
}

#[tokio::test]
async fn the_session_cookie_is_the_consoles_own() {
    let app = spawn_app().await;
    app.create_admin(FINANCE, AdminRole::Finance).await;
    let response = app
        .client
        .get(format!("{}/admin/login", app.url))
        .send()
        .await
        .expect("answers");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("cp_admin="), "{cookie}");
    assert!(cookie.contains("Path=/admin") && cookie.contains("SameSite=Strict"));
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
}

#[tokio::test]
async fn the_audit_log_lists_rows_and_filters_them() {
    let app = spawn_app().await;
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;
    let page = console.get("/admin/audit?action=admin.").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("admin.sign_in"), "{}", page.body);
    let none = console.get("/admin/audit?actor=someone-else").await;
    assert!(none.body.contains("没有记录"));
}
