//! The PC portal's other channels in the browser: 支付宝 (a QR code the page watches,
//! paid in the Alipay sandbox) and 中国农业银行 (the bank's own payment page, where the
//! student types a card number and is sent back to our result page).

use anyhow::{Context as _, Result, ensure};
use campus_pay::sandbox::abc::PAY_PAGE_PATH;
use thirtyfour::By;

use super::chrome::{self, Chrome};
use super::support::TestApp;
use super::support::seed::ZHANG_SAN;
use super::{NEW_PASSWORD, app, check_page, choose_password, pc_login};

/// A card number of the bank's (19 digits).
const CARD_NUMBER: &str = "6228480000000000000";

/// Login (first password change) → the list → 学费缴费 → 下一步: the channel page.
async fn pc_to_channels(chrome: &Chrome, app: &TestApp) -> Result<()> {
    chrome.visit(&format!("{}/", app.url), "/").await?;
    pc_login(chrome, app, ZHANG_SAN, "31002X", "/password").await?;
    choose_password(chrome, NEW_PASSWORD, "/fees").await?;
    ensure!(chrome.text_of("pay-button").await? == "学费缴费");
    chrome.submit(By::Id("pay-button"), "/confirm").await?;
    ensure!(chrome.text_of("confirm-button").await? == "下一步");
    chrome.submit(By::Id("confirm-button"), "/pay").await?;
    let heading = chrome.find(By::Css("h1")).await?.text().await?;
    ensure!(heading == "选择支付方式", "{heading}");
    Ok(())
}

/// The result page says 缴费成功 for `number`, for the whole ¥6050.50.
async fn paid_result(chrome: &Chrome, number: &str) -> Result<()> {
    let title = chrome.text_of("result-title").await?;
    ensure!(title == "缴费成功", "{title}");
    ensure!(chrome.text_of("order-number").await? == number);
    ensure!(chrome.text_of("total").await? == "¥6050.50");
    let items = chrome.text_of("order-items").await?;
    for name in ["学费", "住宿费", "教材费"] {
        ensure!(items.contains(name), "{items}");
    }
    Ok(())
}

/// 返回缴费项目: nothing left to pay.
async fn nothing_left(chrome: &Chrome) -> Result<()> {
    chrome.submit(By::Id("back-to-fees"), "/fees").await?;
    let none = chrome.text_of("no-arrears").await?;
    ensure!(none.contains("无欠费"), "{none}");
    ensure!(chrome.find_all(By::Id("pay-button")).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pc_pays_with_alipay() -> Result<()> {
    let Some(chrome) = chrome::launch("pc alipay at 1280px", 1280, 900).await else {
        return Ok(());
    };
    let app = app().await;
    pc_to_channels(&chrome, &app).await?;

    let label = chrome.text_of("channel-alipay").await?;
    ensure!(label.contains("支付宝"), "{label}");
    chrome
        .submit(By::Id("channel-alipay"), "/pay/alipay")
        .await?;

    // The QR code, for Alipay.
    let number = chrome.text_of("order-number").await?;
    ensure!(number.starts_with("CP"), "{number}");
    let (svgs, width, height): (usize, f64, f64) = chrome
        .js("var svg = document.querySelector('#qr-code svg');
             var box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
             return [document.querySelectorAll('#qr-code svg').length, box.width, box.height];")
        .await?;
    ensure!(
        svgs == 1 && width >= 200.0 && width == height,
        "the QR code: {svgs} svg, {width}×{height}"
    );
    let hint = chrome.find(By::Css("#qr-code .hint")).await?.text().await?;
    ensure!(
        hint.contains("支付宝") && hint.contains("¥6050.50"),
        "{hint}"
    );
    ensure!(chrome.text_of("total").await? == "¥6050.50");
    let trade = app
        .alipay
        .transaction(&number)
        .context("not precreated at Alipay")?;
    ensure!(trade.total_amount == "6050.50", "{trade:?}");
    check_page(&chrome, "pc-1280-alipay-qr").await?;

    // Not paid yet: the page asks the server and stays. The page's own polls, seen
    // from inside it, witness that: it has read two answers (the second comes one poll
    // after the first was handled) and is still here.
    chrome.js::<bool>(RECORD_POLLS).await?;
    chrome
        .eventually("return window.__polled.length >= 2;", true)
        .await?;
    let polled: Vec<String> = chrome.js("return window.__polled;").await?;
    ensure!(
        polled.iter().all(|status| status == "open"),
        "the page was told {polled:?}"
    );
    ensure!(chrome.current_url().await?.path() == "/pay/alipay");

    // Paid in Alipay: the notification is taken, and the page moves on by itself.
    let paid = app.alipay.pay(&number).await?;
    ensure!(
        paid.notification_answers
            .iter()
            .any(|(_, body)| body == "success"),
        "the app did not take the notification: {:?}",
        paid.notification_answers
    );
    chrome.wait_for_path(&format!("/orders/{number}")).await?;
    paid_result(&chrome, &number).await?;
    check_page(&chrome, "pc-1280-alipay-success").await?;

    nothing_left(&chrome).await?;
    chrome.close().await
}

/// Wraps the page's `fetch` so that `window.__polled` lists the status each poll read.
const RECORD_POLLS: &str = "window.__polled = [];
    var fetchOriginal = window.fetch;
    window.fetch = function () {
      return fetchOriginal.apply(this, arguments).then(function (response) {
        response.clone().json()
          .then(function (answer) { window.__polled.push(answer.status); })
          .catch(function () { window.__polled.push('unreadable'); });
        return response;
      });
    };
    return true;";

#[tokio::test(flavor = "multi_thread")]
async fn pc_pays_on_the_banks_page() -> Result<()> {
    let Some(chrome) = chrome::launch("pc abc page at 1280px", 1280, 900).await else {
        return Ok(());
    };
    let app = app().await;
    pc_to_channels(&chrome, &app).await?;

    let label = chrome.text_of("channel-abc-page").await?;
    ensure!(label.contains("中国农业银行"), "{label}");

    // To the bank's own page (its origin, not ours).
    chrome.press(By::Id("channel-abc-page")).await?;
    chrome.wait_for_path(PAY_PAGE_PATH).await?;
    let here = chrome.current_url().await?;
    let bank = app.abc.gateway_url();
    ensure!(
        here.origin() == bank.origin(),
        "{here} is not the bank's page"
    );
    let text = chrome.page_text().await?;
    ensure!(
        text.contains("中国农业银行") && text.contains("¥6050.50"),
        "{text}"
    );
    let number = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("订单号："))
        .map(str::to_owned)
        .with_context(|| format!("no order number on the bank's page:\n{text}"))?;
    ensure!(number.starts_with("CP"), "{number}");
    chrome.screenshot_page("pc-1280-abc-bank-page").await?;

    // The card number, 确认支付: back on our result page, paid.
    chrome.fill("card_number", CARD_NUMBER).await?;
    let confirm = chrome.find(By::Id("confirm")).await?.text().await?;
    ensure!(confirm == "确认支付", "{confirm}");
    chrome.press(By::Id("confirm")).await?;
    let result = format!("/orders/{number}");
    chrome.wait_for_path(&result).await?;
    let back = chrome.current_url().await?;
    ensure!(
        back.as_str().starts_with(app.url.as_str()),
        "{back} is not our page"
    );
    paid_result(&chrome, &number).await?;
    let order = app
        .abc
        .transaction(&number)
        .context("the bank has no order")?;
    ensure!(
        order.card_number.as_deref() == Some(CARD_NUMBER),
        "{order:?}"
    );
    check_page(&chrome, "pc-1280-abc-success").await?;

    nothing_left(&chrome).await?;
    chrome.close().await
}
