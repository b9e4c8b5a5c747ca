//! Paying in the browser: inside WeChat (JSAPI, with the test playing WeChat's
//! `WeixinJSBridge`) and on PC (the channel, the QR code the page watches), against
//! the WeChat Pay sandbox. The pages must take the server's word for 缴费成功, never
//! the bridge's callback.

use anyhow::{Context as _, Result, ensure};
use axum::http::Method;
use campus_pay::pay::wechatpay::keys::WechatPayPublicKey;
use campus_pay::pay::wechatpay::signing::pay_sign_message;
use campus_pay::sandbox::wechat_pay::TradeState;
use serde::Deserialize;
use serde_json::{Value, json};
use thirtyfour::common::command::FormatRequestData;
use thirtyfour::{By, RequestData, SessionId};

use super::chrome::{self, Chrome};
use super::support::seed::{LI_SI, ZHANG_SAN};
use super::support::{APPID, TestApp};
use super::{
    NEW_PASSWORD, app, check_page, check_readable, choose_password, h5_bind, h5_open_bind, pc_login,
};

/// The merchant key the sandbox school signs `paySign` with (its public half).
const MERCHANT_PUBLIC_PEM: &str = include_str!("../../src/sandbox/keys/merchant_public_key.pem");

/// WeChat as the test plays it, in every page before the page's own scripts:
///
/// - `WeixinJSBridge.invoke` records what it was given in `window.__invoked` and keeps
///   the callback; `window.__answer('ok' | 'cancel' | 'fail')` answers it a moment
///   later, as WeChat's cashier would (`false` when nothing is waiting).
/// - With `sessionStorage['cp-test-bridge'] = 'late'`, the bridge is not there when
///   the page loads: `window.__bridgeReady()` brings it and fires
///   `WeixinJSBridgeReady`, as WeChat does when its bridge comes after the page.
/// - `fetch` (what the waiting pages poll with) is counted in `window.__net`; with
///   `held` set, new requests never answer, so that only the test moves the page.
const WECHAT_STUB: &str = r#"
(function () {
  window.__invoked = [];
  var pending = null;
  var bridge = {
    invoke: function (name, params, callback) {
      window.__invoked.push({ name: name, params: params });
      pending = callback;
    }
  };
  var late = false;
  try { late = window.sessionStorage.getItem('cp-test-bridge') === 'late'; } catch (e) {}
  if (late) {
    window.__bridgeReady = function () {
      window.WeixinJSBridge = bridge;
      document.dispatchEvent(new Event('WeixinJSBridgeReady'));
    };
  } else {
    window.WeixinJSBridge = bridge;
  }
  window.__answer = function (answer) {
    var callback = pending;
    if (!callback) return false;
    pending = null;
    setTimeout(function () {
      callback({ err_msg: 'get_brand_wcpay_request:' + answer });
    }, 100);
    return true;
  };
  var realFetch = window.fetch;
  var net = window.__net = { started: 0, inFlight: 0, held: false };
  window.fetch = function () {
    net.started++;
    if (net.held) return new Promise(function () {});
    net.inFlight++;
    return realFetch.apply(window, arguments).finally(function () { net.inFlight--; });
  };
})();
"#;

/// chromedriver's `goog/cdp/execute`: one Chrome DevTools command (thirtyfour's own
/// CDP helpers are behind its `cdp` feature, which this crate does not enable).
#[derive(Debug)]
struct DevToolsCommand {
    method: &'static str,
    params: Value,
}

impl FormatRequestData for DevToolsCommand {
    fn format_request(&self, session_id: &SessionId) -> RequestData {
        RequestData::new(
            Method::POST,
            format!("/session/{session_id}/goog/cdp/execute"),
        )
        .add_body(json!({ "cmd": self.method, "params": self.params }))
    }
}

/// From now on every page this browser opens has [`WECHAT_STUB`] before its scripts.
async fn play_wechat(chrome: &Chrome) -> Result<()> {
    chrome
        .handle()
        .cmd(DevToolsCommand {
            method: "Page.addScriptToEvaluateOnNewDocument",
            params: json!({ "source": WECHAT_STUB }),
        })
        .await
        .context("Page.addScriptToEvaluateOnNewDocument")?;
    Ok(())
}

/// One `WeixinJSBridge.invoke` the page made.
#[derive(Debug, Deserialize)]
struct Invoked {
    name: String,
    params: BridgeParams,
}

/// What `getBrandWCPayRequest` takes.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct BridgeParams {
    app_id: String,
    time_stamp: String,
    nonce_str: String,
    package: String,
    sign_type: String,
    pay_sign: String,
}

/// Waits for the page's `count`-th `invoke`, and returns it.
async fn invoked(chrome: &Chrome, count: usize) -> Result<Invoked> {
    chrome
        .eventually("return window.__invoked.length;", count)
        .await?;
    let mut all: Vec<Invoked> = chrome.js("return window.__invoked;").await?;
    all.pop().context("no invoke recorded")
}

/// The cashier's answer to the pending `invoke`.
async fn answer(chrome: &Chrome, answer: &str) -> Result<()> {
    let answered: bool = chrome
        .js(&format!("return window.__answer('{answer}');"))
        .await?;
    ensure!(answered, "no getBrandWCPayRequest waiting for {answer:?}");
    Ok(())
}

/// What a WeChat cashier would accept: the parameters the page carries, for our
/// official account, an RSA `paySign` by the merchant over a `prepay_id` the sandbox
/// handed out for this order.
fn check_bridge_params(app: &TestApp, invoked: &Invoked, page: &Value, number: &str) -> Result<()> {
    ensure!(invoked.name == "getBrandWCPayRequest", "{}", invoked.name);
    let params = &invoked.params;
    let carried: BridgeParams = serde_json::from_value(page.clone())?;
    ensure!(*params == carried, "{params:?} is not the page's {page}");
    ensure!(params.sign_type == "RSA", "{params:?}");
    ensure!(params.app_id == APPID, "{params:?}");
    ensure!(
        params.time_stamp.parse::<i64>().is_ok() && !params.nonce_str.is_empty(),
        "{params:?}"
    );
    let prepay_id = params
        .package
        .strip_prefix("prepay_id=")
        .with_context(|| format!("package {:?}", params.package))?;
    let transaction = app
        .pay
        .transaction(number)
        .with_context(|| format!("the sandbox has no order {number}"))?;
    ensure!(
        transaction.prepay_ids.iter().any(|id| id == prepay_id),
        "{prepay_id} is not one of {:?}",
        transaction.prepay_ids
    );
    let merchant = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_PEM)?;
    let message = pay_sign_message(
        &params.app_id,
        &params.time_stamp,
        &params.nonce_str,
        &params.package,
    );
    ensure!(
        merchant.verify_sha256(message.as_bytes(), &params.pay_sign),
        "paySign does not verify: {params:?}"
    );
    Ok(())
}

/// The JSAPI page's order number and `data-params`.
async fn jsapi_page(chrome: &Chrome) -> Result<(String, Value)> {
    let number = chrome.text_of("order-number").await?;
    let params: String = chrome
        .find(By::Id("pay-now"))
        .await?
        .attr("data-params")
        .await?
        .context("#pay-now has no data-params")?;
    Ok((number, serde_json::from_str(&params)?))
}

/// Pays `number` in the sandbox, as the student would in WeChat; the notification
/// reaches the app and is taken.
async fn pay_in_sandbox(app: &TestApp, number: &str) -> Result<()> {
    let paid = app.pay.pay(number).await?;
    ensure!(
        paid.notification_answers
            .iter()
            .any(|(status, _)| (200..300).contains(status)),
        "the app did not take the notification: {:?}",
        paid.notification_answers
    );
    Ok(())
}

fn trade_state(app: &TestApp, number: &str) -> Result<TradeState> {
    Ok(app
        .pay
        .transaction(number)
        .with_context(|| format!("the sandbox has no order {number}"))?
        .trade_state)
}

/// [`Chrome::resize`], once more if it fails: on a busy machine the page may still
/// report its old viewport just after the window changed (seen once in ten runs). The
/// second attempt sets the window again and polls the viewport again: no pause between.
async fn resize(chrome: &Chrome, width: u32, height: u32) -> Result<()> {
    if chrome.resize(width, height).await.is_ok() {
        return Ok(());
    }
    chrome.resize(width, height).await
}

async fn result_title(chrome: &Chrome) -> Result<String> {
    chrome.text_of("result-title").await
}

/// `/h5/fees` → 缴费 → `/h5/confirm`, everything ticked.
async fn h5_to_confirmation(
    chrome: &Chrome,
    app: &TestApp,
    id: &str,
    password: &str,
) -> Result<()> {
    h5_open_bind(chrome, app).await?;
    h5_bind(chrome, id, id, password, "/h5/password").await?;
    choose_password(chrome, NEW_PASSWORD, "/h5/fees").await?;
    chrome.submit(By::Id("pay-button"), "/h5/confirm").await
}

#[tokio::test(flavor = "multi_thread")]
async fn h5_cancelled_in_the_cashier_then_paid() -> Result<()> {
    let Some(chrome) = chrome::launch("h5 pay at 375px", 375, 812).await else {
        return Ok(());
    };
    let app = app().await;
    play_wechat(&chrome).await?;

    h5_to_confirmation(&chrome, &app, ZHANG_SAN, "31002X").await?;
    ensure!(chrome.text_of("total").await? == "¥6050.50");
    check_page(&chrome, "h5-375-pay-confirm").await?;

    // 立即支付: the JSAPI page, and WeChat's cashier opens by itself.
    chrome.submit(By::Id("confirm-button"), "/h5/pay").await?;
    let (number, carried) = jsapi_page(&chrome).await?;
    ensure!(number.starts_with("CP"), "{number}");
    ensure!(chrome.text_of("total").await? == "¥6050.50");
    let first = invoked(&chrome, 1).await?;
    check_bridge_params(&app, &first, &carried, &number)?;
    ensure!(
        chrome
            .js::<bool>("return document.getElementById('pay-now').disabled;")
            .await?,
        "立即支付 can be pressed again while the cashier is open"
    );

    // The student cancels: said so, 立即支付 again, nothing paid.
    answer(&chrome, "cancel").await?;
    chrome
        .eventually(
            "var m = document.getElementById('pay-message');
             return [m.textContent, m.getBoundingClientRect().height > 0,
                     document.getElementById('pay-now').disabled];",
            ("已取消支付，可再次点击“立即支付”。".to_owned(), true, false),
        )
        .await?;
    ensure!(chrome.current_url().await?.path() == "/h5/pay");
    ensure!(trade_state(&app, &number)? == TradeState::NotPay);
    check_page(&chrome, "h5-375-pay-jsapi").await?;

    // Again, and this time the student pays: the same order, the result page.
    chrome.find(By::Id("pay-now")).await?.click().await?;
    let second = invoked(&chrome, 2).await?;
    ensure!(second.params == first.params, "{second:?} != {first:?}");
    pay_in_sandbox(&app, &number).await?;
    answer(&chrome, "ok").await?;
    chrome
        .wait_for_path(&format!("/h5/orders/{number}"))
        .await?;
    ensure!(result_title(&chrome).await? == "缴费成功");
    ensure!(chrome.text_of("order-number").await? == number);
    ensure!(chrome.text_of("total").await? == "¥6050.50");
    let paid_items = chrome.text_of("order-items").await?;
    for name in ["学费", "住宿费", "教材费"] {
        ensure!(paid_items.contains(name), "{paid_items}");
    }
    check_page(&chrome, "h5-375-pay-success").await?;

    // Nothing left to pay.
    chrome.submit(By::Id("back-to-fees"), "/h5/fees").await?;
    let none = chrome.text_of("no-arrears").await?;
    ensure!(none.contains("无欠费"), "{none}");
    ensure!(chrome.find_all(By::Id("pay-button")).await?.is_empty());

    chrome.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn h5_an_ok_from_the_bridge_is_not_a_payment() -> Result<()> {
    let Some(chrome) = chrome::launch("h5 early ok at 375px", 375, 812).await else {
        return Ok(());
    };
    let app = app().await;
    play_wechat(&chrome).await?;

    h5_to_confirmation(&chrome, &app, LI_SI, "000000").await?;
    chrome.submit(By::Id("confirm-button"), "/h5/pay").await?;
    let (number, carried) = jsapi_page(&chrome).await?;
    let opened = invoked(&chrome, 1).await?;
    check_bridge_params(&app, &opened, &carried, &number)?;
    ensure!(chrome.text_of("total").await? == "¥5000.00");

    // The JSAPI page on a 360px phone: nothing sideways, nothing cut off.
    resize(&chrome, 360, 740).await?;
    check_readable(&chrome, "the JSAPI page").await?;
    check_page(&chrome, "h5-360-pay-jsapi").await?;
    resize(&chrome, 375, 812).await?;

    // "ok" without a payment (an early or lying callback): the server says wait.
    answer(&chrome, "ok").await?;
    let result = format!("/h5/orders/{number}");
    chrome.wait_for_path(&result).await?;
    ensure!(result_title(&chrome).await? == "等待支付结果");
    let text = chrome.page_text().await?;
    ensure!(!text.contains("缴费成功"), "{text}");
    ensure!(chrome.text_of("order-number").await? == number);
    ensure!(chrome.text_of("check-result").await? == "重新查询");
    check_page(&chrome, "h5-375-pay-waiting").await?;

    // The page keeps asking the server, and stays while the answer is "open".
    chrome
        .eventually(
            "return window.__net.started > 0 && window.__net.inFlight === 0;",
            true,
        )
        .await?;
    ensure!(chrome.current_url().await?.path() == result);
    ensure!(result_title(&chrome).await? == "等待支付结果");
    ensure!(trade_state(&app, &number)? == TradeState::NotPay);

    // Paid now; the page's own polling held, so that 重新查询 is what finds out.
    chrome
        .js::<bool>("window.__net.held = true; return true;")
        .await?;
    chrome
        .eventually("return window.__net.inFlight;", 0)
        .await?;
    pay_in_sandbox(&app, &number).await?;
    chrome.submit(By::Id("check-result"), &result).await?;
    ensure!(result_title(&chrome).await? == "缴费成功");
    ensure!(chrome.text_of("order-number").await? == number);
    ensure!(chrome.find_all(By::Id("check-result")).await?.is_empty());
    check_page(&chrome, "h5-375-pay-checked").await?;

    chrome.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn pc_pays_by_scanning_and_the_page_moves_on_by_itself() -> Result<()> {
    let Some(chrome) = chrome::launch("pc pay at 1280px", 1280, 900).await else {
        return Ok(());
    };
    let app = app().await;
    // No WeChat on a PC; the stub's count of the page's requests is what is wanted.
    play_wechat(&chrome).await?;

    chrome.visit(&format!("{}/", app.url), "/").await?;
    pc_login(&chrome, &app, ZHANG_SAN, "31002X", "/password").await?;
    choose_password(&chrome, NEW_PASSWORD, "/fees").await?;
    ensure!(chrome.text_of("pay-button").await? == "学费缴费");
    chrome.submit(By::Id("pay-button"), "/confirm").await?;
    ensure!(chrome.text_of("confirm-button").await? == "下一步");
    chrome.submit(By::Id("confirm-button"), "/pay").await?;

    // The channels.
    let heading = chrome.find(By::Css("h1")).await?.text().await?;
    ensure!(heading == "选择支付方式", "{heading}");
    let wechat = chrome.text_of("channel-wechat").await?;
    ensure!(wechat.contains("微信"), "{wechat}");
    ensure!(chrome.page_text().await?.contains("¥6050.50"));
    check_page(&chrome, "pc-1280-pay-channels").await?;
    resize(&chrome, 360, 740).await?;
    check_readable(&chrome, "the channel choice").await?;
    check_page(&chrome, "pc-360-pay-channels").await?;
    resize(&chrome, 1280, 900).await?;

    // 微信: a QR code to scan.
    chrome
        .submit(By::Id("channel-wechat"), "/pay/wechat")
        .await?;
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
    ensure!(chrome.text_of("total").await? == "¥6050.50");
    let transaction = app
        .pay
        .transaction(&number)
        .context("the sandbox has no order")?;
    ensure!(
        transaction.total == 605_050 && transaction.code_urls.len() == 1,
        "{transaction:?}"
    );
    check_page(&chrome, "pc-1280-pay-qr").await?;

    // On a 360px phone: nothing sideways, nothing cut off.
    resize(&chrome, 360, 740).await?;
    check_readable(&chrome, "the QR page").await?;
    check_page(&chrome, "pc-360-pay-qr").await?;
    resize(&chrome, 1280, 900).await?;

    // Not paid: the page asks the server, and stays. Paid: it goes to the result by
    // itself.
    chrome
        .eventually(
            "return window.__net.started > 0 && window.__net.inFlight === 0;",
            true,
        )
        .await?;
    ensure!(chrome.current_url().await?.path() == "/pay/wechat");
    pay_in_sandbox(&app, &number).await?;
    chrome.wait_for_path(&format!("/orders/{number}")).await?;
    ensure!(result_title(&chrome).await? == "缴费成功");
    ensure!(chrome.text_of("order-number").await? == number);
    check_page(&chrome, "pc-1280-pay-success").await?;

    chrome.submit(By::Id("back-to-fees"), "/fees").await?;
    let none = chrome.text_of("no-arrears").await?;
    ensure!(none.contains("无欠费"), "{none}");

    chrome.close().await
}

#[tokio::test(flavor = "multi_thread")]
async fn h5_a_bridge_that_comes_late_opens_one_cashier() -> Result<()> {
    let Some(chrome) = chrome::launch("h5 late bridge at 375px", 375, 812).await else {
        return Ok(());
    };
    let app = app().await;
    play_wechat(&chrome).await?;

    h5_to_confirmation(&chrome, &app, ZHANG_SAN, "31002X").await?;
    chrome
        .js::<bool>("sessionStorage.setItem('cp-test-bridge', 'late'); return true;")
        .await?;
    chrome.submit(By::Id("confirm-button"), "/h5/pay").await?;
    let (number, carried) = jsapi_page(&chrome).await?;
    ensure!(
        chrome
            .js::<bool>("return typeof window.WeixinJSBridge === 'undefined';")
            .await?
    );

    // Pressed twice before the bridge is there: asked to wait for WeChat, no cashier.
    for _ in 0..2 {
        chrome.find(By::Id("pay-now")).await?.click().await?;
    }
    ensure!(chrome.text_of("pay-message").await? == "请在微信中打开本页面完成支付。");
    ensure!(
        chrome
            .js::<usize>("return window.__invoked.length;")
            .await?
            == 0
    );

    // The bridge comes: one cashier (not one per press), and the hint goes.
    chrome
        .js::<bool>("window.__bridgeReady(); return true;")
        .await?;
    let opened = invoked(&chrome, 1).await?;
    check_bridge_params(&app, &opened, &carried, &number)?;
    // A second cashier could only come from work the bridge's arrival queued (its event
    // handlers run at once, the page's deferred start is a zero-delay timer): a marker
    // timer queued after them has run, so they have too.
    chrome
        .js::<bool>(
            "window.__settled = false;
             setTimeout(function () { window.__settled = true; }, 0);
             return true;",
        )
        .await?;
    chrome.eventually("return window.__settled;", true).await?;
    let count: usize = chrome.js("return window.__invoked.length;").await?;
    ensure!(count == 1, "{count} cashiers opened for one payment");
    ensure!(
        !chrome
            .find(By::Id("pay-message"))
            .await?
            .is_displayed()
            .await?,
        "the page still says to open it in WeChat"
    );
    answer(&chrome, "cancel").await?;
    chrome
        .eventually(
            "return document.getElementById('pay-message').textContent;",
            "已取消支付，可再次点击“立即支付”。".to_owned(),
        )
        .await?;
    let count: usize = chrome.js("return window.__invoked.length;").await?;
    ensure!(count == 1, "{count} cashiers opened for one payment");

    // Later, from the list again: the same order, and with nothing pressed the
    // cashier opens when the bridge comes.
    chrome
        .visit(&format!("{}/h5/fees", app.url), "/h5/fees")
        .await?;
    chrome.submit(By::Id("pay-button"), "/h5/confirm").await?;
    chrome.submit(By::Id("confirm-button"), "/h5/pay").await?;
    let (again, carried) = jsapi_page(&chrome).await?;
    ensure!(again == number, "{again} is not the open order {number}");
    ensure!(
        chrome
            .js::<usize>("return window.__invoked.length;")
            .await?
            == 0
    );
    chrome
        .js::<bool>("window.__bridgeReady(); return true;")
        .await?;
    let opened = invoked(&chrome, 1).await?;
    check_bridge_params(&app, &opened, &carried, &number)?;
    pay_in_sandbox(&app, &number).await?;
    answer(&chrome, "ok").await?;
    chrome
        .wait_for_path(&format!("/h5/orders/{number}"))
        .await?;
    ensure!(result_title(&chrome).await? == "缴费成功");

    chrome.close().await
}
