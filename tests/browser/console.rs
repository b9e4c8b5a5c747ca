//! The finance office's console in Chromium at a PC's 1280 px: signing in, every
//! section reached from the side bar, readable without sideways scrolling, a
//! screenshot of each under `target/screenshots/console-*.png`.

use anyhow::{Context as _, Result, ensure};
use campus_pay::store::AdminRole;
use thirtyfour::By;

use super::app;
use super::chrome::{self, Chrome};
use super::support::TestApp;
use super::support::admin::{ADMIN_PASSWORD, FINANCE};
use super::support::seed::ZHANG_SAN;

/// The side bar's sections: link text, path, and the page's heading.
const SECTIONS: [(&str, &str, &str); 8] = [
    ("概览", "/admin", "概览"),
    ("学生", "/admin/students", "学生"),
    ("导入与收费项目", "/admin/fees", "导入与收费项目"),
    ("缴费记录", "/admin/payments", "缴费记录"),
    ("欠费统计", "/admin/arrears", "欠费统计"),
    ("对账", "/admin/reconciliation", "对账"),
    ("公众号关注者", "/admin/followers", "公众号关注者检查"),
    ("操作日志", "/admin/audit", "操作日志"),
];

/// Nothing wider than the window, and a heading.
async fn check_console_page(chrome: &Chrome, shot: &str, heading: &str) -> Result<()> {
    let (scroll, inner, h1): (f64, f64, String) = chrome
        .js("var h = document.querySelector('h1');
             return [document.documentElement.scrollWidth, window.innerWidth,
                     h ? h.innerText : ''];")
        .await?;
    ensure!(
        scroll <= inner,
        "{shot}: scrolls sideways ({scroll} > {inner})"
    );
    ensure!(
        h1 == heading,
        "{shot}: heading {h1:?}, expected {heading:?}"
    );
    chrome.screenshot_page(shot).await?;
    Ok(())
}

/// Signs `FINANCE` in through the form.
async fn sign_in(chrome: &Chrome, app: &TestApp) -> Result<()> {
    app.create_admin(FINANCE, AdminRole::Finance).await;
    chrome
        .visit(&format!("{}/admin", app.url), "/admin/login")
        .await?;
    chrome.fill("username", FINANCE).await?;
    chrome.fill("password", ADMIN_PASSWORD).await?;
    chrome.submit(By::Id("sign-in"), "/admin").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_office_finds_a_student_resets_the_password_and_waives_an_item() -> Result<()> {
    let Some(chrome) = chrome::launch("console student at 1280px", 1280, 800).await else {
        return Ok(());
    };
    let app = app().await;
    sign_in(&chrome, &app).await?;

    chrome
        .visit(&format!("{}/admin/students", app.url), "/admin/students")
        .await?;
    chrome.find(By::Name("q")).await?.send_keys("张三").await?;
    chrome
        .submit(By::Css("form button[type=submit].small"), "/admin/students")
        .await?;
    let listed = chrome.page_text().await?;
    ensure!(listed.contains("110105********002X") && !listed.contains(ZHANG_SAN));
    chrome.press(By::LinkText("张三")).await?;
    ensure!(
        chrome.text_of("id-card").await? == ZHANG_SAN,
        "the full number, here only"
    );
    check_console_page(&chrome, "console-student", "学生：张三").await?;
    let student_path: String = chrome.js("return location.pathname;").await?;
    chrome
        .submit(
            By::XPath("//button[normalize-space()='重置为初始密码']"),
            &student_path,
        )
        .await?;
    let text = chrome.page_text().await?;
    ensure!(
        text.contains("初始密码"),
        "a notice says what happened:\n{text}"
    );
    ensure!(!app.audit_rows("student.reset_password").await.is_empty());

    // The first of 张三's items, from the fee items' list.
    chrome
        .visit(&format!("{}/admin/fees", app.url), "/admin/fees")
        .await?;
    chrome
        .press(By::XPath(
            "//table[@id='fee-items']//a[normalize-space()='查看']",
        ))
        .await?;
    chrome
        .find(By::Css("#waive-form textarea"))
        .await?
        .send_keys("建档立卡，学院批准全免")
        .await?;
    let item_path: String = chrome.js("return location.pathname;").await?;
    chrome
        .submit(By::Css("#waive-form button"), &item_path)
        .await?;
    let status = chrome.text_of("item-status").await?;
    ensure!(status.contains("已减免"), "{status}");
    chrome.screenshot_page("console-fee-item-waived").await?;
    chrome.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_office_uploads_a_fees_file_previews_it_and_applies_it() -> Result<()> {
    let Some(chrome) = chrome::launch("console upload at 1280px", 1280, 800).await else {
        return Ok(());
    };
    let app = app().await;
    sign_in(&chrome, &app).await?;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("console-upload-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("2027学年收费.csv");
    std::fs::write(
        &file,
        "身份证号,学年,项目,金额\n11010119900307803X,2027-2028,学费,4800\n",
    )?;

    chrome
        .visit(&format!("{}/admin/fees", app.url), "/admin/fees")
        .await?;
    let kind = chrome.find(By::Css("select[name=kind]")).await?;
    kind.find(By::Css("option[value=fees]"))
        .await?
        .click()
        .await?;
    chrome
        .find(By::Css("input[type=file]"))
        .await?
        .send_keys(file.to_str().context("a UTF-8 path")?)
        .await?;
    chrome
        .press(By::XPath("//button[normalize-space()='上传并预览']"))
        .await?;
    ensure!(chrome.text_of("added").await? == "1");
    chrome.screenshot_page("console-upload-preview").await?;
    chrome.press(By::Id("apply")).await?;
    let applied = chrome.text_of("applied").await?;
    ensure!(applied.contains('1'), "{applied}");
    chrome.screenshot_page("console-upload-applied").await?;
    ensure!(app.audit_rows("import.fees").await.len() == 1);
    chrome.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_office_signs_in_and_walks_every_section() -> Result<()> {
    let Some(chrome) = chrome::launch("console at 1280px", 1280, 800).await else {
        return Ok(());
    };
    let app = app().await;
    app.create_admin(FINANCE, AdminRole::Finance).await;

    chrome
        .visit(&format!("{}/admin", app.url), "/admin/login")
        .await?;
    chrome.screenshot_page("console-sign-in").await?;
    chrome.fill("username", FINANCE).await?;
    chrome.fill("password", "not-the-password").await?;
    chrome.submit(By::Id("sign-in"), "/admin/login").await?;
    ensure!(chrome.page_text().await?.contains("用户名或密码错误"));
    chrome.fill("password", ADMIN_PASSWORD).await?;
    chrome.submit(By::Id("sign-in"), "/admin").await?;

    for (link, path, heading) in SECTIONS {
        chrome
            .submit(
                By::XPath(format!("//nav//a[normalize-space()='{link}']")),
                path,
            )
            .await?;
        let shot = format!("console-{}", path.trim_start_matches('/').replace('/', "-"));
        check_console_page(&chrome, &shot, heading).await?;
    }

    chrome
        .submit(By::Css("header button.link"), "/admin/login")
        .await?;
    chrome
        .visit(&format!("{}/admin/audit", app.url), "/admin/login")
        .await?;
    chrome.close().await
}
