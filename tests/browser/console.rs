//! The finance office's console in Chromium at a PC's 1280 px: signing in, every
//! section reached from the side bar, readable without sideways scrolling, a
//! screenshot of each under `target/screenshots/console-*.png`.

use anyhow::{Result, ensure};
use campus_pay::store::AdminRole;
use thirtyfour::By;

use super::app;
use super::chrome::{self, Chrome};
use super::support::admin::{ADMIN_PASSWORD, FINANCE};

/// The side bar's sections: link text, path, and the page's heading.
const SECTIONS: [(&str, &str, &str); 7] = [
    ("概览", "/admin", "概览"),
    ("学生", "/admin/students", "学生"),
    ("导入与收费项目", "/admin/fees", "导入与收费项目"),
    ("缴费记录", "/admin/payments", "缴费记录"),
    ("欠费统计", "/admin/arrears", "欠费统计"),
    ("公众号关注者", "/admin/followers", "公众号关注者"),
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
