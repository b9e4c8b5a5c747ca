//! Input that once took the server down or filled it up (issue 13): a fee form with
//! megabytes of item ids, and the like. Each test ends with the app still answering.

use std::io::Write;
use std::process::Command;

use campus_pay::sandbox::wechat_pay::Tamper;
use campus_pay::store::{AdminRole, NotificationVerdict};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};

use crate::support::admin::FINANCE;
use crate::support::browser::{Browser, element_text};
use crate::support::seed::{ZHANG_SAN, item_statuses, paying_app};
use crate::support::{Options, TestApp, spawn_app, spawn_app_with};

async fn still_answers(app: &TestApp) {
    let healthz = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("the app still answers");
    assert_eq!(healthz.status(), StatusCode::OK);
}

/// More than 64 distinct items in one form is no student's selection: 422 at 确认支付 and
/// at every way of paying, before anything is compared; nothing is ordered. A form of
/// 2 MiB of ids is refused the same way (it was once compared id by id, pairwise).
#[tokio::test]
async fn a_fee_form_with_too_many_items_is_refused_and_orders_nothing() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let fees = browser.get("/fees").await;
    assert_eq!(fees.status, StatusCode::OK, "{}", fees.body);
    let csrf = fees.csrf();
    let real = Browser::item_ids(&fees);
    let before = item_statuses(&app).await;

    let many: Vec<String> = (1_000_000..1_000_065).map(|id| id.to_string()).collect();
    for url in ["/confirm", "/pay/wechat", "/pay/alipay"] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(real.iter().map(|id| ("item", id.as_str())));
        form.extend(many.iter().map(|id| ("item", id.as_str())));
        let answer = browser.post(url, &form).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert!(
            answer.body.contains("所选项目过多"),
            "{url}: {}",
            answer.body
        );
    }

    // 2 MiB of ids (under the body limit): the same answer, promptly.
    let mut huge = format!("csrf={csrf}");
    let mut id = 0u64;
    while huge.len() < 2_000_000 {
        huge.push_str(&format!("&item={id}"));
        id += 1;
    }
    let started = std::time::Instant::now();
    let answer = app
        .client
        .post(format!("{}/confirm", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "cookie",
            format!("cp_session={}", browser.session.clone().expect("signed in")),
        )
        .body(huge)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // At the cap it is an ordinary selection: the real items still confirm.
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend(real.iter().map(|id| ("item", id.as_str())));
    let confirm = browser.post("/confirm", &form).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(item_statuses(&app).await, before, "nothing was ordered");
    still_answers(&app).await;
}

/// An `.xlsx` written by hand (zip + XML): one sheet whose `<sheetData>` is `rows`.
fn xlsx(rows: &str, dimension: &str) -> Vec<u8> {
    let parts = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_owned(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned(),
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_owned(),
        ),
        (
            "xl/worksheets/sheet1.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>"#
            ),
        ),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(name, options).expect("a part");
        zip.write_all(content.as_bytes()).expect("written");
    }
    zip.finish().expect("a zip").into_inner()
}

/// The attack's file: A1, then one cell at the far corner of the sheet. Read as the
/// range it claims, that is 1,048,576 × 16,384 cells: the process aborted.
fn far_corner_xlsx() -> Vec<u8> {
    let bytes = xlsx(
        r#"<row r="1"><c r="A1" t="inlineStr"><is><t>身份证号</t></is></c></row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>"#,
        "A1:XFD1048576",
    );
    assert!(bytes.len() < 2048, "{} bytes", bytes.len());
    bytes
}

/// A zip bomb: a sheet of 60 MiB of blanks, a small file.
fn bomb_xlsx() -> Vec<u8> {
    let padding = " ".repeat(60 * 1024 * 1024);
    xlsx(
        &format!(
            r#"<row r="1"><c r="A1" t="inlineStr"><is><t>身份证号</t></is></c></row>{padding}"#
        ),
        "A1",
    )
}

/// The console's upload answers a hostile file with one clear line, and the app (which
/// once aborted, every route with it) still answers.
#[tokio::test]
async fn a_hostile_xlsx_upload_is_refused_with_one_line_and_the_app_survives() {
    let app = spawn_app().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    for (name, bytes, expected) in [
        ("far.xlsx", far_corner_xlsx(), "超过64列"),
        ("bomb.xlsx", bomb_xlsx(), "解压后超过50MB"),
    ] {
        let form = Form::new()
            .text("csrf", csrf.clone())
            .text("kind", "students")
            .part("file", Part::bytes(bytes).file_name(name));
        let page = console.post_multipart("/admin/fees/upload", form).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            page.body
        );
        assert!(page.body.contains(expected), "{name}: {}", page.body);
        still_answers(&app).await;
    }
}

/// `campus-pay import students FILE` reads through the same reader: it exits with one
/// line naming the problem, not with an abort.
#[test]
fn the_cli_import_refuses_a_hostile_xlsx_with_one_line() {
    let dir = std::env::temp_dir().join(format!("cp-hostile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a directory");
    for (name, bytes, expected) in [
        ("far.xlsx", far_corner_xlsx(), "超过64列"),
        ("bomb.xlsx", bomb_xlsx(), "解压后超过50MB"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("written");
        let mut command = Command::new(env!("CARGO_BIN_EXE_campus-pay"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAMPUSPAY_")) {
            command.env_remove(key);
        }
        let database = format!("sqlite://{}/cli.db?mode=rwc", dir.display());
        let output = command
            .args(["import", "students"])
            .arg(&path)
            .env("CAMPUSPAY_DATABASE_URL", database)
            .env("RUST_LOG", "error")
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "exited, not aborted: {stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Every notification stored, whatever its verdict.
async fn stored_notifications(app: &TestApp) -> u64 {
    let mut total = 0;
    for verdict in [
        NotificationVerdict::Accepted,
        NotificationVerdict::Duplicate,
        NotificationVerdict::Refused,
    ] {
        total += app
            .state
            .store
            .count_notifications(verdict)
            .await
            .expect("count");
    }
    total
}

/// The refusals counted for `channel` in /metrics, all reasons together.
async fn refusals_counted(app: &TestApp, channel: &str) -> u64 {
    let metrics = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let series = format!("campuspay_notifications_refused_total{{channel=\"{channel}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with(&series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn open_exceptions(console: &mut Browser<'_>) -> String {
    let listed = console.get("/admin/payments").await;
    element_text(&listed.body, "open-exceptions").unwrap_or_default()
}

/// 200 unsigned or forged posts to each channel's notify address store nothing and put
/// nothing on the office's exception list (they once added a 64 KiB row and an open
/// exception each); they are counted. A verified notification about our order still
/// reaches the office, and a genuine payment is still applied.
#[tokio::test]
async fn refused_notifications_are_counted_not_stored() {
    let app = paying_app().await;
    let mut browser = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let fees = browser.get("/fees").await;
    let csrf = fees.csrf();
    let mut form = vec![("csrf", csrf.as_str())];
    let ids = Browser::item_ids(&fees);
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let qr = browser.post("/pay/wechat", &form).await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    let number = element_text(&qr.body, "order-number").expect("an order");
    app.pay.pay_silently(&number).expect("paid at WeChat");
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    assert_eq!(open_exceptions(&mut console).await, "0");

    let padding = "x".repeat(60 * 1024);
    let wrong_key = app
        .pay
        .notification_for(&number, Tamper::WrongKey)
        .expect("built");
    for round in 0..200 {
        // WeChat: half signed with a key that is not WeChat's, half unsigned and large.
        let mut request = app.client.post(format!("{}/pay/notify/wechat", app.url));
        if round % 2 == 0 {
            request = request.body(wrong_key.body.clone());
            for (name, value) in &wrong_key.headers {
                request = request.header(name, value);
            }
        } else {
            request = request
                .header("content-type", "application/json")
                .body(format!(r#"{{"id":"{round}","padding":"{padding}"}}"#));
        }
        let answer = request.send().await.expect("answered");
        assert!(answer.status().is_client_error(), "{}", answer.status());

        // Alipay and the bank: forms naming our order, unsigned or with a made-up sign.
        let forged_alipay = format!(
            "out_trade_no={number}&trade_no=2026{round}&total_amount=6050.50&trade_status=TRADE_SUCCESS&app_id=2021000000000000&sign_type=RSA2&sign=Zm9yZ2Vk{round}&padding={padding}"
        );
        let forged_abc = format!(
            "MSG=PE1TRz48T3JkZXJObz57bnVtYmVyfTwvT3JkZXJObz48L01TRz4%3D&Signature=Zm9yZ2Vk{round}&padding={padding}"
        );
        for (path, body) in [
            ("/pay/notify/alipay", forged_alipay),
            ("/pay/notify/abc", forged_abc),
        ] {
            let answer = app
                .client
                .post(format!("{}{path}", app.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("answered");
            assert!(
                answer.status().is_client_error(),
                "{path}: {}",
                answer.status()
            );
            assert_ne!(answer.text().await.expect("body"), "success", "{path}");
        }
    }
    assert_eq!(stored_notifications(&app).await, 0, "nothing stored");
    assert_eq!(
        open_exceptions(&mut console).await,
        "0",
        "nothing for the office"
    );
    for channel in ["wechat", "alipay", "abc"] {
        assert!(refusals_counted(&app, channel).await >= 200, "{channel}");
    }

    // Verified, about our order, but with another amount: the office must see that.
    let wrong_amount = app
        .pay
        .notification_for(&number, Tamper::WrongAmount(1))
        .expect("built");
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body(wrong_amount.body.clone());
    for (name, value) in &wrong_amount.headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("answered");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let refused = app
        .state
        .store
        .count_notifications(NotificationVerdict::Refused)
        .await
        .expect("count");
    assert_eq!(refused, 1, "the verified one is kept");
    let page = console.get("/admin/payments/exceptions").await;
    assert!(page.body.contains("金额与订单不符"), "{}", page.body);

    // And the genuine payment is applied.
    let genuine = app
        .pay
        .notification_for(&number, Tamper::None)
        .expect("built");
    let mut request = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body(genuine.body.clone());
    for (name, value) in &genuine.headers {
        request = request.header(name, value);
    }
    assert!(
        request
            .send()
            .await
            .expect("answered")
            .status()
            .is_success()
    );
    let accepted = app
        .state
        .store
        .count_notifications(NotificationVerdict::Accepted)
        .await
        .expect("count");
    assert_eq!(accepted, 1);
    still_answers(&app).await;
}

/// What a raw client hears before the server closes, waiting at most `bound`.
async fn heard_within(stream: &mut tokio::net::TcpStream, bound: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut heard = Vec::new();
    let read = tokio::time::timeout(bound, stream.read_to_end(&mut heard)).await;
    assert!(read.is_ok(), "still held after {bound:?}: {heard:?}");
    String::from_utf8_lossy(&heard).into_owned()
}

/// A request that promises a body and never sends it, and one whose headers never end,
/// are answered (408) or closed within the request timeout: once they were held
/// forever, each holding a connection and a task.
#[tokio::test]
async fn a_stalled_request_is_answered_or_closed_within_the_timeout() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app_with(Options {
        extra_config: vec![("CAMPUSPAY_REQUEST_TIMEOUT_SECONDS", "1".to_owned())],
        ..Options::default()
    })
    .await;
    let address = app.url.trim_start_matches("http://").to_owned();
    // The server's timeout is 1 s; give it plenty, but not forever.
    let bound = std::time::Duration::from_secs(10);

    let started = std::time::Instant::now();
    let mut body_promised = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    body_promised
        .write_all(
            b"POST /pay/notify/wechat HTTP/1.1\r\nHost: campus-pay\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"id\":",
        )
        .await
        .expect("sent");
    let heard = heard_within(&mut body_promised, bound).await;
    assert!(heard.starts_with("HTTP/1.1 408"), "{heard}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "it waited first"
    );

    let mut headers_unfinished = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    headers_unfinished
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: campus-pay\r\nX-Slow: ")
        .await
        .expect("sent");
    let heard = heard_within(&mut headers_unfinished, bound).await;
    // hyper closes a connection whose headers do not come in time.
    assert!(
        heard.is_empty() || heard.starts_with("HTTP/1.1 408"),
        "{heard}"
    );

    // An ordinary request on its own connection is untouched.
    still_answers(&app).await;
}
