//! Receipts (缴费凭证): the student's printable receipt of a paid order (capital
//! numerals, the channel's transaction number, the verification code, the e-bill
//! line), the console's code check, and the e-bill the office records.

use campus_pay::domain::order::beijing_offset;
use campus_pay::store::AdminRole;
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::{Browser, NEW_PASSWORD, Page, element_text};
use crate::support::seed::{LI_SI, WANG_WU, ZHANG_SAN, paying_app};

/// Ticks every payable item and asks for a WeChat Native QR code on PC: the order.
async fn pc_order(browser: &mut Browser<'_>) -> String {
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    assert!(!ids.is_empty());
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let qr = browser.post("/pay/wechat", &form).await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    element_text(&qr.body, "order-number").expect("order number")
}

/// 张三 pays all three items (4500 + 1200 + 350.50 = 6050.50) in WeChat: the order.
async fn zhang_san_pays_in_wechat(app: &TestApp) -> String {
    let mut browser = Browser::signed_in_h5(app, "o_zhang", ZHANG_SAN, "31002X").await;
    let fees = browser.get("/h5/fees").await;
    let ids = Browser::item_ids(&fees);
    assert_eq!(ids.len(), 3);
    let csrf = fees.csrf();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(ids.iter().map(|id| ("item", id.as_str())));
    let paying = browser.post("/h5/pay", &form).await;
    assert_eq!(paying.status, StatusCode::OK, "{}", paying.body);
    let number = element_text(&paying.body, "order-number").expect("order number");
    app.pay.pay(&number).await.expect("paid in the sandbox");
    let result = browser.get(&format!("/h5/orders/{number}")).await;
    assert!(result.body.contains("缴费成功"), "{}", result.body);
    assert!(result.body.contains("查看缴费凭证"));
    assert!(
        result
            .body
            .contains(&format!("href=\"/h5/orders/{number}/receipt\"")),
        "the paid result page links its receipt"
    );
    number
}

/// 张三 on the PC portal (his password chosen in WeChat).
async fn zhang_san_on_pc(app: &TestApp) -> Browser<'_> {
    let mut browser = Browser::new(app);
    let signed_in = browser.pc_login(ZHANG_SAN, NEW_PASSWORD).await;
    assert!(signed_in.redirects_to("/fees"), "{:?}", signed_in.location);
    browser
}

fn text(page: &Page, id: &str) -> String {
    element_text(&page.body, id).unwrap_or_else(|| panic!("#{id} in {}", page.body))
}

#[tokio::test]
async fn a_paid_order_has_a_receipt_with_every_field_for_its_student_only() {
    let app = paying_app().await;
    let number = zhang_san_pays_in_wechat(&app).await;
    let order = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("reads")
        .expect("exists");
    let trade_no = order.channel_trade_no.clone().expect("paid");
    let paid_at = order
        .paid_at
        .expect("paid")
        .with_timezone(&beijing_offset())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();

    let mut pc = zhang_san_on_pc(&app).await;
    let receipt = pc.get(&format!("/orders/{number}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.body);
    assert_eq!(text(&receipt, "receipt-school"), "武威职业学院");
    assert!(receipt.body.contains("缴费凭证"));
    assert_eq!(text(&receipt, "receipt-name"), "张三");
    assert_eq!(text(&receipt, "receipt-id-card"), "110105********002X");
    assert!(
        !receipt.body.contains(ZHANG_SAN),
        "never the full ID number"
    );
    assert_eq!(text(&receipt, "receipt-grade"), "2026级");
    assert_eq!(text(&receipt, "receipt-class"), "汽修1班");
    for shown in [
        "2026-2027",
        "学费",
        "4500.00",
        "住宿费",
        "1200.00",
        "2025-2026",
        "教材费",
        "350.50",
    ] {
        assert!(receipt.body.contains(shown), "{shown}");
    }
    assert_eq!(text(&receipt, "receipt-total"), "¥6050.50");
    assert_eq!(text(&receipt, "receipt-capitals"), "人民币陆仟零伍拾元伍角");
    assert_eq!(text(&receipt, "receipt-channel"), "微信支付");
    assert_eq!(text(&receipt, "receipt-trade-no"), trade_no);
    assert_eq!(text(&receipt, "receipt-order"), number);
    assert_eq!(text(&receipt, "receipt-paid-at"), paid_at);
    assert_eq!(text(&receipt, "receipt-ebill"), "财政电子票据：未开具");
    assert!(receipt.body.contains("不是财政电子票据"));
    let code = text(&receipt, "receipt-code");
    assert_eq!(code.len(), 19, "{code}");
    assert_eq!(code.matches('-').count(), 3, "{code}");
    assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");

    // The same receipt on mobile; the code never changes once given.
    let mut h5 = Browser::new(&app);
    h5.wechat_oauth("o_zhang").await;
    let mobile = h5.get(&format!("/h5/orders/{number}/receipt")).await;
    assert_eq!(mobile.status, StatusCode::OK, "{}", mobile.body);
    assert_eq!(text(&mobile, "receipt-code"), code);
    assert_eq!(text(&mobile, "receipt-capitals"), "人民币陆仟零伍拾元伍角");

    // Another student, and nobody signed in, do not see it.
    let mut stranger = Browser::signed_in_pc(&app, WANG_WU, "07803X").await;
    let refused = stranger.get(&format!("/orders/{number}/receipt")).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(!refused.body.contains(&code));
    let mut anonymous = Browser::new(&app);
    let away = anonymous.get(&format!("/orders/{number}/receipt")).await;
    assert!(away.redirects_to("/"), "{:?}", away.location);
}

#[tokio::test]
async fn an_unpaid_order_has_no_receipt() {
    let app = paying_app().await;
    let mut li_si = Browser::signed_in_pc(&app, LI_SI, "000000").await;
    let number = pc_order(&mut li_si).await;
    let waiting = li_si.get(&format!("/orders/{number}")).await;
    assert!(waiting.body.contains("等待支付结果"));
    assert!(!waiting.body.contains("查看缴费凭证"));
    let receipt = li_si.get(&format!("/orders/{number}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::NOT_FOUND);
    assert_eq!(
        li_si
            .get("/orders/CP00000000000000NOSUCHONE/receipt")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    assert_eq!(
        console
            .get(&format!("/admin/receipts/{number}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let csrf = console.console_csrf().await;
    let posted = console
        .post(
            &format!("/admin/receipts/{number}/ebill"),
            &[("csrf", &csrf), ("status", "issued"), ("number", "6201-1")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::NOT_FOUND);
    assert!(app.audit_rows("order.ebill").await.is_empty());
}

#[tokio::test]
async fn the_console_checks_a_code_with_or_without_dashes() {
    let app = paying_app().await;
    let number = zhang_san_pays_in_wechat(&app).await;
    let mut pc = zhang_san_on_pc(&app).await;
    let receipt = pc.get(&format!("/orders/{number}/receipt")).await;
    let code = text(&receipt, "receipt-code");

    // A viewer may check (a read): nothing is written to the audit log.
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;
    let home = console.get("/admin").await;
    assert!(
        home.body.contains("href=\"/admin/receipts\""),
        "a tile on the first page"
    );
    let empty = console.get("/admin/receipts").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(!empty.body.contains("无此凭证"));
    let undashed = code.replace('-', "").to_lowercase();
    for typed in [code.clone(), undashed, format!(" {} ", code.to_lowercase())] {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &typed)
            .finish();
        let found = console.get(&format!("/admin/receipts?{query}")).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.body);
        assert!(found.body.contains("凭证有效"), "{typed}: {}", found.body);
        assert!(found.body.contains(&number));
        assert!(found.body.contains("张三 110105********002X"));
        assert_eq!(text(&found, "check-amount"), "6,050.50");
        assert!(found.body.contains("住宿费"));
        assert!(!found.body.contains(ZHANG_SAN));
    }
    // A code of ours in shape but not issued, and one that cannot be ours.
    let mut wrong = code.replace('-', "");
    let last = if wrong.ends_with('Z') { "Y" } else { "Z" };
    wrong.replace_range(15.., last);
    for typed in [wrong.as_str(), "ABCD-1234", "0000-0000-0000-0000"] {
        let missing = console.get(&format!("/admin/receipts?code={typed}")).await;
        assert_eq!(missing.status, StatusCode::OK);
        assert!(missing.body.contains("无此凭证"), "{typed}");
        assert!(!missing.body.contains(&number));
    }
    assert!(
        app.audit_rows("")
            .await
            .iter()
            .all(|row| !row.entry.action.contains("receipt"))
    );
}

#[tokio::test]
async fn the_office_records_the_e_bill_and_the_receipt_shows_it() {
    let app = paying_app().await;
    let number = zhang_san_pays_in_wechat(&app).await;
    let order_id = app
        .state
        .store
        .find_order(&number)
        .await
        .expect("reads")
        .expect("exists")
        .id;
    let mut pc = zhang_san_on_pc(&app).await;
    let receipt_url = format!("/orders/{number}/receipt");
    let ebill_url = format!("/admin/receipts/{number}/ebill");

    // A viewer sees the receipt but no form, and is refused a change.
    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let seen = viewer.get(&format!("/admin/receipts/{number}")).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert!(seen.body.contains("未开具"));
    assert!(!seen.body.contains("ebill-form"));
    let viewer_csrf = seen.csrf();
    let refused = viewer
        .post(
            &ebill_url,
            &[
                ("csrf", &viewer_csrf),
                ("status", "issued"),
                ("number", "6201-0012345678"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // Finance without the right token is refused too.
    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    for csrf in ["", "not-the-token"] {
        let refused = finance
            .post(
                &ebill_url,
                &[
                    ("csrf", csrf),
                    ("status", "issued"),
                    ("number", "6201-0012345678"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{csrf:?}");
    }
    assert!(app.audit_rows("order.ebill").await.is_empty());
    assert_eq!(
        text(&pc.get(&receipt_url).await, "receipt-ebill"),
        "财政电子票据：未开具"
    );

    // A bad number is refused with the form shown again.
    let page = finance.get(&format!("/admin/receipts/{number}")).await;
    assert!(page.body.contains("ebill-form"));
    let csrf = page.csrf();
    let bad = finance
        .post(
            &ebill_url,
            &[("csrf", &csrf), ("status", "issued"), ("number", "票据 1")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("票据号只能包含"));
    assert!(app.audit_rows("order.ebill").await.is_empty());

    // Recorded: the receipt shows it; one audit row with before and after.
    let recorded = finance
        .post(
            &ebill_url,
            &[
                ("csrf", &csrf),
                ("status", "issued"),
                ("number", "6201-0012345678"),
            ],
        )
        .await;
    assert!(
        recorded.redirects_to(&format!("/admin/receipts/{number}?done=1")),
        "{:?} {}",
        recorded.location,
        recorded.body
    );
    assert_eq!(
        text(&pc.get(&receipt_url).await, "receipt-ebill"),
        "财政电子票据：已开具，票据号 6201-0012345678"
    );
    let rows = app.audit_rows("order.ebill").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, FINANCE);
    assert_eq!(rows[0].entry.target, format!("order:{order_id}"));
    let before = rows[0].entry.before.as_ref().expect("before");
    assert_eq!(before["ebill_status"], serde_json::Value::Null);
    assert_eq!(before["ebill_number"], serde_json::Value::Null);
    let after = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(after["ebill_status"], "issued");
    assert_eq!(after["ebill_number"], "6201-0012345678");

    // The same again changes nothing; voiding is another audited change.
    let again = finance
        .post(
            &ebill_url,
            &[
                ("csrf", &csrf),
                ("status", "issued"),
                ("number", "6201-0012345678"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("未作更改"));
    assert_eq!(app.audit_rows("order.ebill").await.len(), 1);
    let voided = finance
        .post(
            &ebill_url,
            &[
                ("csrf", &csrf),
                ("status", "voided"),
                ("number", "6201-0012345678"),
            ],
        )
        .await;
    assert!(voided.status.is_redirection());
    assert_eq!(
        text(&pc.get(&receipt_url).await, "receipt-ebill"),
        "财政电子票据：已作废，票据号 6201-0012345678"
    );
    let rows = app.audit_rows("order.ebill").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].entry.before.as_ref().expect("before")["ebill_status"],
        "issued"
    );
    assert_eq!(
        rows[0].entry.after.as_ref().expect("after")["ebill_status"],
        "voided"
    );

    // The viewer's refused attempt after all this still changed nothing.
    let refused = viewer
        .post(
            &ebill_url,
            &[
                ("csrf", &viewer_csrf),
                ("status", "issued"),
                ("number", "X"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_rows("order.ebill").await.len(), 2);
}
