//! The binary itself: commands, their output, their exit codes.

use std::process::{Command, Output};

use crate::support::spawn_app;

fn campus_pay(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_campus-pay"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    // Only what the test gives: the developer's own CAMPUSPAY_* must not leak in.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAMPUSPAY_")) {
        command.env_remove(key);
    }
    command.env("RUST_LOG", "error");
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn menu_push_publishes_the_default_menu_and_reports_wechats_answer() {
    let app = spawn_app().await;
    let base = app.sandbox.base_url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let env = [
            ("CAMPUSPAY_PUBLIC_URL", "https://pay.example.edu.cn"),
            ("CAMPUSPAY_WECHAT_APPID", crate::support::APPID),
            ("CAMPUSPAY_WECHAT_SECRET", crate::support::SECRET),
            ("CAMPUSPAY_WECHAT_TOKEN", crate::support::TOKEN),
            ("CAMPUSPAY_WECHAT_API_BASE", base.as_str()),
        ];
        campus_pay(&["menu", "push"], &env)
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("errcode 0"));
    let menus = app.sandbox.menus();
    assert_eq!(menus.len(), 1);
    let menu = menus[0].to_string();
    assert!(menu.contains("学生缴费"));
    assert!(menu.contains("https://pay.example.edu.cn/h5"));
    assert!(menu.contains("缴费指南") && menu.contains("联系我们"));
    assert!(!menu.contains("{PUBLIC_URL}"));
}

#[tokio::test]
async fn menu_push_refuses_an_invalid_menu_before_calling_wechat() {
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("cp-menu-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"button":[{"type":"view","name":"学生缴费学生缴费学生缴费","url":"{PUBLIC_URL}/h5"}]}"#,
    )
    .unwrap();
    let base = app.sandbox.base_url().to_string();
    let path = file.to_string_lossy().into_owned();
    let output = tokio::task::spawn_blocking(move || {
        let env = [
            ("CAMPUSPAY_WECHAT_APPID", crate::support::APPID),
            ("CAMPUSPAY_WECHAT_SECRET", crate::support::SECRET),
            ("CAMPUSPAY_WECHAT_TOKEN", crate::support::TOKEN),
            ("CAMPUSPAY_WECHAT_API_BASE", base.as_str()),
        ];
        campus_pay(&["menu", "push", &path], &env)
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let line = stderr(&output);
    assert_eq!(line.trim().lines().count(), 1, "{line}");
    assert!(line.contains("button[0].name"), "{line}");
    assert!(app.sandbox.menus().is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_the_variable() {
    let output = campus_pay(&["serve"], &[("CAMPUSPAY_ORDER_TTL_MINUTES", "soon")]);
    assert!(!output.status.success());
    let line = stderr(&output);
    assert_eq!(line.trim().lines().count(), 1, "{line}");
    assert!(line.contains("CAMPUSPAY_ORDER_TTL_MINUTES"), "{line}");
}

#[test]
fn a_bad_aes_key_is_named_and_never_printed() {
    let key = "this-is-not-a-valid-key";
    let output = campus_pay(
        &["serve"],
        &[
            ("CAMPUSPAY_WECHAT_APPID", "wx1"),
            ("CAMPUSPAY_WECHAT_SECRET", "s"),
            ("CAMPUSPAY_WECHAT_TOKEN", "token1"),
            ("CAMPUSPAY_WECHAT_AES_KEY", key),
        ],
    );
    assert!(!output.status.success());
    let line = stderr(&output);
    assert!(
        line.contains("CAMPUSPAY_WECHAT_AES_KEY") && !line.contains(key),
        "{line}"
    );
}

#[test]
fn migrate_applies_the_schema_to_an_empty_database() {
    let dir = std::env::temp_dir().join(format!("cp-migrate-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/fresh.db?mode=rwc", dir.display());
    let output = campus_pay(&["migrate"], &[("CAMPUSPAY_DATABASE_URL", url.as_str())]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.join("fresh.db").exists());
    let again = campus_pay(&["migrate"], &[("CAMPUSPAY_DATABASE_URL", url.as_str())]);
    assert!(again.status.success(), "{}", stderr(&again));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn followers_cleanup_prints_the_report_and_a_dry_run_changes_nothing() {
    use campus_pay::sandbox::wechat_api::{SandboxFollower, paths};
    let app = spawn_app().await;
    let old = chrono::Utc::now() - chrono::TimeDelta::days(30);
    app.sandbox.add_followers(
        (0..60)
            .map(|i| SandboxFollower {
                openid: format!("o_cli_{i}"),
                subscribe_time: old,
                remark: "张三".into(),
            })
            .collect(),
    );
    let base = app.sandbox.base_url().to_string();
    let dir = std::env::temp_dir().join(format!("cp-followers-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/cli.db?mode=rwc", dir.display());
    let run = move |args: &'static [&'static str]| {
        let env = [
            ("CAMPUSPAY_DATABASE_URL", url.as_str()),
            ("CAMPUSPAY_WECHAT_APPID", crate::support::APPID),
            ("CAMPUSPAY_WECHAT_SECRET", crate::support::SECRET),
            ("CAMPUSPAY_WECHAT_TOKEN", crate::support::TOKEN),
            ("CAMPUSPAY_WECHAT_API_BASE", base.as_str()),
            ("CAMPUSPAY_CLEANUP_ACTION", "tag"),
        ];
        campus_pay(args, &env)
    };
    let output = tokio::task::spawn_blocking(move || run(&["followers", "cleanup", "--dry-run"]))
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("试运行"), "{stdout}");
    assert!(stdout.contains("不合规 60"), "{stdout}");
    assert!(stdout.contains("微信没有移除关注者的接口"), "{stdout}");
    assert!(stdout.contains("报告已保存"), "{stdout}");
    assert!(
        stdout.contains("o_cli_49") && !stdout.contains("o_cli_50"),
        "{stdout}"
    );
    assert_eq!(app.sandbox.calls_to(paths::BATCH_TAGGING), 0);
    assert!(app.sandbox.tags().is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn admin_add_creates_an_admin_once_and_refuses_weak_passwords() {
    let dir = std::env::temp_dir().join(format!("cp-admin-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}/admins.db?mode=rwc", dir.display());
    let password = "Jicaichu2026";
    let env = [
        ("CAMPUSPAY_DATABASE_URL", url.as_str()),
        ("CAMPUSPAY_ADMIN_PASSWORD", password),
    ];
    let created = campus_pay(&["admin", "add", "caiwu01"], &env);
    assert!(created.status.success(), "{}", stderr(&created));
    let printed = String::from_utf8_lossy(&created.stdout).into_owned() + &stderr(&created);
    assert!(
        printed.contains("caiwu01") && !printed.contains(password),
        "{printed}"
    );

    let again = campus_pay(&["admin", "add", "caiwu01"], &env);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"));

    let weak = campus_pay(
        &["admin", "add", "viewer01", "--role", "viewer"],
        &[
            ("CAMPUSPAY_DATABASE_URL", url.as_str()),
            ("CAMPUSPAY_ADMIN_PASSWORD", "short"),
        ],
    );
    assert!(!weak.status.success());
    assert_eq!(stderr(&weak).lines().count(), 1, "{}", stderr(&weak));
    assert!(!stderr(&weak).contains("short"));
    let bad_role = campus_pay(&["admin", "add", "viewer01", "--role", "boss"], &env);
    assert!(stderr(&bad_role).contains("--role"));
    std::fs::remove_dir_all(dir).ok();
}
