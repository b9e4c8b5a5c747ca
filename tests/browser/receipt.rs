//! The receipt (缴费凭证) in Chromium: after paying on PC, the result page's
//! 查看缴费凭证 opens it, with the capitals, the channel and the code; at 1280 px and
//! on a 375 px phone (nothing sideways, nothing cut off); the print stylesheet leaves
//! only the receipt.

use anyhow::{Result, ensure};
use thirtyfour::By;

use super::chrome::{self, Chrome};
use super::support::seed::ZHANG_SAN;
use super::{NEW_PASSWORD, app, check_page, check_readable, choose_password, pc_login};

/// Whether `selector` is laid out (not `display: none`) under the print stylesheet:
/// the stylesheet's `@media print` rules read back from the CSSOM.
async fn hidden_in_print(chrome: &Chrome, selector: &str) -> Result<bool> {
    chrome
        .js(&format!(
            "var hidden = false, el = document.querySelector({selector:?});
             Array.from(document.styleSheets).forEach(function (sheet) {{
               Array.from(sheet.cssRules).forEach(function (rule) {{
                 if (!rule.media || rule.media.mediaText.indexOf('print') < 0) return;
                 Array.from(rule.cssRules).forEach(function (inner) {{
                   if (inner.style && inner.style.display === 'none' && el && el.closest(inner.selectorText))
                     hidden = true;
                 }});
               }});
             }});
             return hidden;"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pc_the_paid_result_opens_a_printable_receipt() -> Result<()> {
    let Some(chrome) = chrome::launch("receipt at 1280px", 1280, 900).await else {
        return Ok(());
    };
    let app = app().await;
    chrome.visit(&format!("{}/", app.url), "/").await?;
    pc_login(&chrome, &app, ZHANG_SAN, "31002X", "/password").await?;
    choose_password(&chrome, NEW_PASSWORD, "/fees").await?;
    chrome.submit(By::Id("pay-button"), "/confirm").await?;
    chrome.submit(By::Id("confirm-button"), "/pay").await?;
    chrome
        .submit(By::Id("channel-wechat"), "/pay/wechat")
        .await?;
    let number = chrome.text_of("order-number").await?;
    app.pay.pay(&number).await?;
    chrome.wait_for_path(&format!("/orders/{number}")).await?;
    ensure!(chrome.text_of("result-title").await? == "缴费成功");

    chrome
        .submit(By::Id("view-receipt"), &format!("/orders/{number}/receipt"))
        .await?;
    ensure!(chrome.text_of("receipt-capitals").await? == "人民币陆仟零伍拾元伍角");
    ensure!(chrome.text_of("receipt-total").await? == "¥6050.50");
    ensure!(chrome.text_of("receipt-channel").await? == "微信支付");
    ensure!(chrome.text_of("receipt-order").await? == number);
    ensure!(chrome.text_of("receipt-ebill").await? == "财政电子票据：未开具");
    let code = chrome.text_of("receipt-code").await?;
    ensure!(code.len() == 19 && code.matches('-').count() == 3, "{code}");
    let text = chrome.page_text().await?;
    ensure!(text.contains("110105********002X") && !text.contains(ZHANG_SAN));
    check_page(&chrome, "pc-1280-receipt").await?;

    // Printed: the school and the receipt stay; the page's frame and buttons go.
    for selector in [".topbar", "#print-receipt", ".office"] {
        ensure!(
            hidden_in_print(&chrome, selector).await?,
            "{selector} is printed"
        );
    }
    for selector in ["#receipt", "#receipt-school", "#receipt-code"] {
        ensure!(
            !hidden_in_print(&chrome, selector).await?,
            "{selector} is not printed"
        );
    }

    chrome.resize(375, 812).await?;
    check_readable(&chrome, "the receipt").await?;
    check_page(&chrome, "pc-375-receipt").await?;

    chrome.close().await
}
