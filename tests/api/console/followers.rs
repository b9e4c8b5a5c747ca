//! The follower check and the menu on the console: the runs listed, 预检 first and
//! the real run from its report, the menu pushed to the sandbox, and the refusals
//! (viewer, missing or wrong CSRF token) that run nothing and leave no audit row.

use campus_pay::jobs::followers::ACTOR_CLI;
use campus_pay::sandbox::wechat_api::{SandboxFollower, paths};
use campus_pay::store::AdminRole;
use chrono::TimeDelta;
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::Page;
use crate::support::seed::ZHANG_SAN;
use crate::support::{PUBLIC_URL, spawn_app};

const NO_REMOVAL: &str = "微信没有移除关注者的接口";

/// 张三 bound as `o_bound` with a remark that drifted, one compliant follower, and
/// three whose remarks follow no rule.
async fn app_with_followers() -> TestApp {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let now = app.clock.now();
    let student = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .unwrap()
        .expect("seeded");
    app.state
        .store
        .bind_wechat(student.id, "o_bound", now)
        .await
        .unwrap();
    let old = now - TimeDelta::days(30);
    let follower = |openid: &str, remark: &str| SandboxFollower {
        openid: openid.into(),
        subscribe_time: old,
        remark: remark.into(),
    };
    app.sandbox.add_followers(vec![
        follower("o_bound", "张三同学"),
        follower("o_good", "26汽修1班王五"),
        follower("o_bad_1", "张三"),
        follower("o_bad_2", ""),
        follower("o_bad_3", "🐱"),
    ]);
    app
}

fn run_path(page: &Page) -> String {
    let location = page.location.clone().unwrap_or_default();
    assert!(
        page.status.is_redirection() && location.starts_with("/admin/followers/runs/"),
        "{:?} {location}",
        page.status
    );
    location
}

/// The APIs that change something at WeChat.
fn changes_upstream(app: &TestApp) -> usize {
    [
        paths::TAGS_CREATE,
        paths::BATCH_TAGGING,
        paths::BATCH_BLACKLIST,
        paths::UPDATE_REMARK,
        paths::MENU_CREATE,
    ]
    .iter()
    .map(|api| app.sandbox.calls_to(api))
    .sum()
}

#[tokio::test]
async fn the_page_lists_the_runs_and_only_finance_gets_the_buttons() {
    let app = app_with_followers().await;
    let check = app.state.follower_check().expect("configured");
    let report = check.run(ACTOR_CLI, true).await.unwrap();

    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let page = finance.get("/admin/followers").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("/admin/followers/runs/{}", report.run_id))
    );
    assert!(page.body.contains("命令行") && page.body.contains("预检（不改动公众号）"));
    assert!(page.body.contains("推送菜单") && page.body.contains(NO_REMOVAL));
    // The test apps schedule the check for February 30th (never).
    assert!(page.body.contains("0 0 0 30 2 *"), "the schedule is shown");

    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let page = viewer.get("/admin/followers").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("/admin/followers/runs/{}", report.run_id))
    );
    assert!(
        !page.body.contains("/admin/followers/check") && !page.body.contains("/admin/menu/push")
    );
    let run = viewer
        .get(&format!("/admin/followers/runs/{}", report.run_id))
        .await;
    assert_eq!(run.status, StatusCode::OK);
    assert!(run.body.contains("o_bad_1") && !run.body.contains("按此结果执行"));
    assert_eq!(
        viewer.get("/admin/followers/runs/999999").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_dry_run_from_the_console_then_the_real_run_from_its_report() {
    let app = app_with_followers().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;

    let started = console
        .post("/admin/followers/check?dry_run=1", &[("csrf", &csrf)])
        .await;
    let dry_path = run_path(&started);
    app.drain_background().await;
    let dry = console.get(&dry_path).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert!(dry.body.contains("完成") && dry.body.contains("预检（不改动公众号）"));
    for openid in ["o_bad_1", "o_bad_2", "o_bad_3"] {
        assert!(dry.body.contains(openid), "{openid}");
    }
    assert!(!dry.body.contains("o_good"));
    assert!(dry.body.contains("按此结果执行"));
    assert_eq!(
        changes_upstream(&app),
        0,
        "a dry run changes nothing upstream"
    );
    let audit = app.audit_rows("followers.check").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, FINANCE);
    let after = audit[0].entry.after.clone().unwrap();
    assert_eq!(
        (after["dry_run"].clone(), after["action"].clone()),
        (true.into(), "report".into())
    );

    // The real run, from the dry run's report (the test app's action is `report`:
    // only the bound student's remark changes at WeChat).
    let executed = console
        .post("/admin/followers/check", &[("csrf", &dry.csrf())])
        .await;
    let real_path = run_path(&executed);
    assert_ne!(real_path, dry_path);
    app.drain_background().await;
    let real = console.get(&real_path).await;
    assert_eq!(real.status, StatusCode::OK);
    assert!(real.body.contains("完成") && real.body.contains("仅报告"));
    assert!(real.body.contains("o_bad_1") && !real.body.contains("按此结果执行"));
    assert_eq!(
        app.sandbox.remarks().get("o_bound").map(String::as_str),
        Some("26汽修1班张三")
    );
    let (runs, total) = app.state.store.check_runs(10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert!(!runs[0].dry_run && runs[1].dry_run);
    assert_eq!(runs[0].counts.remarks_corrected, 1);
    assert_eq!(runs[0].non_compliant_count, 3);
    assert!(
        runs[0].non_compliant.is_empty(),
        "a listing leaves the lists out"
    );
    let audit = app.audit_rows("followers.check").await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].entry.after.as_ref().unwrap()["dry_run"], false);
    assert_eq!(
        audit[0].entry.target,
        format!("follower_check_run:{}", runs[0].id)
    );

    let list = console.get("/admin/followers").await;
    assert!(list.body.contains(&real_path) && list.body.contains(&dry_path));
}

#[tokio::test]
async fn a_run_in_progress_shows_as_such_and_a_second_waits_its_turn() {
    let app = app_with_followers().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let check = app.state.follower_check().expect("configured");
    let started = check.start(ACTOR_CLI, false).await.unwrap();
    let path = format!("/admin/followers/runs/{}", started.run_id());
    let page = console.get(&path).await;
    assert!(page.body.contains("进行中"), "{}", page.body);

    let csrf = console.console_csrf().await;
    let busy = console
        .post("/admin/followers/check?dry_run=1", &[("csrf", &csrf)])
        .await;
    assert!(
        busy.redirects_to("/admin/followers?busy=1"),
        "{:?}",
        busy.location
    );
    assert!(
        console
            .get("/admin/followers?busy=1")
            .await
            .body
            .contains("另一次关注者检查正在进行")
    );
    assert_eq!(app.state.store.check_runs(10, 0).await.unwrap().1, 1);

    started.finish().await.unwrap();
    assert!(console.get(&path).await.body.contains("完成"));
}

#[tokio::test]
async fn the_menu_is_pushed_from_the_console_as_the_cli_pushes_it() {
    let app = spawn_app().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    let page = console.post("/admin/menu/push", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("菜单已推送"), "{}", page.body);
    let menus = app.sandbox.menus();
    assert_eq!(menus.len(), 1);
    let menu = menus[0].to_string();
    assert!(menu.contains("学生缴费") && menu.contains(&format!("{PUBLIC_URL}/h5")));
    assert!(!menu.contains("{PUBLIC_URL}"));
    let audit = app.audit_rows("menu.push").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, FINANCE);
    assert_eq!(audit[0].entry.after.as_ref().unwrap()["menu"], menus[0]);

    // WeChat refusing it is shown, and leaves no audit row.
    app.sandbox.fail_next(paths::MENU_CREATE, 45009, 1);
    let refused = console.post("/admin/menu/push", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(
        refused.body.contains("菜单推送失败") && refused.body.contains("45009"),
        "{}",
        refused.body
    );
    assert_eq!(app.audit_rows("menu.push").await.len(), 1);
}

#[tokio::test]
async fn viewers_and_forms_without_the_token_are_refused_and_nothing_runs() {
    let app = app_with_followers().await;
    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let viewer_csrf = viewer.console_csrf().await;
    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    finance.console_csrf().await;
    for path in [
        "/admin/followers/check?dry_run=1",
        "/admin/followers/check",
        "/admin/menu/push",
    ] {
        let by_viewer = viewer.post(path, &[("csrf", &viewer_csrf)]).await;
        assert_eq!(by_viewer.status, StatusCode::FORBIDDEN, "viewer {path}");
        let without = finance.post(path, &[]).await;
        assert_eq!(without.status, StatusCode::FORBIDDEN, "no token {path}");
        let forged = finance.post(path, &[("csrf", "forged")]).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "wrong token {path}");
    }
    app.drain_background().await;
    assert_eq!(app.state.store.check_runs(10, 0).await.unwrap().1, 0);
    assert_eq!(app.sandbox.calls_to(paths::USER_GET), 0);
    assert_eq!(changes_upstream(&app), 0);
    assert!(app.audit_rows("followers.check").await.is_empty());
    assert!(app.audit_rows("menu.push").await.is_empty());
}
