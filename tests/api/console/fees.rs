//! The console's fees over HTTP: imports through the browser (upload, preview with
//! every bad row, apply once), the item listing, waive / defer / restore with their
//! audit rows, a deferral as the student sees it, and the refusals for a viewer and
//! for a missing or wrong CSRF token on every change.

use std::path::Path;
use std::time::Duration;

use campus_pay::store::{
    AdminRole, FeeItemRecord, FeeItemStatus, NewOrder, PaymentChannel, PaymentReport, TakeOutcome,
};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::{Browser, NEW_PASSWORD, Page, element_text};
use crate::support::seed::{FEES_CSV, LI_SI, STUDENTS_CSV, ZHANG_SAN};
use crate::support::spawn_app;

/// The students of `tests/fixtures/students_utf8_bom.csv`, whose fees
/// `fees_gbk.csv` lists.
const FIXTURE_STUDENT: &str = "620602200703150011";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).expect("fixture")
}

async fn upload(
    console: &mut Browser<'_>,
    csrf: &str,
    kind: &str,
    file_name: &str,
    bytes: Vec<u8>,
) -> Page {
    let form = Form::new()
        .text("csrf", csrf.to_owned())
        .text("kind", kind.to_owned())
        .part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
    console.post_multipart("/admin/fees/upload", form).await
}

/// The kept upload's token, which the preview carries (`data-token`).
fn token_of(page: &Page) -> String {
    let marker = "data-token=\"";
    let start = page.body.find(marker).expect("a preview") + marker.len();
    let end = page.body[start..].find('"').expect("token ends");
    page.body[start..start + end].to_owned()
}

fn can_apply(page: &Page) -> bool {
    page.body.contains("确认导入") && page.body.contains("name=\"token\"")
}

fn summary(page: &Page) -> (String, String, String) {
    let cell = |id| element_text(&page.body, id).unwrap_or_default();
    (cell("added"), cell("updated"), cell("unchanged"))
}

async fn apply(console: &mut Browser<'_>, csrf: &str, token: &str) -> Page {
    console
        .post("/admin/fees/apply", &[("csrf", csrf), ("token", token)])
        .await
}

async fn items_of(app: &TestApp, id_card: &str) -> Vec<FeeItemRecord> {
    let Some(student) = app
        .state
        .store
        .find_student_by_id_card(id_card)
        .await
        .expect("query")
    else {
        return Vec::new();
    };
    app.state
        .store
        .fee_items_of(student.id)
        .await
        .expect("items")
}

async fn student_exists(app: &TestApp, id_card: &str) -> bool {
    app.state
        .store
        .find_student_by_id_card(id_card)
        .await
        .expect("query")
        .is_some()
}

#[tokio::test]
async fn good_files_are_previewed_then_applied_once_with_their_audit_rows() {
    let app = spawn_app().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let page = console.get("/admin/fees").await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "上传并预览",
        "身份证号/id_card",
        "学年/academic_year",
        "金额/amount",
    ] {
        assert!(page.body.contains(shown), "{shown}");
    }
    let csrf = page.csrf();

    let students = STUDENTS_CSV.as_bytes().to_vec();
    let preview = upload(
        &mut console,
        &csrf,
        "students",
        "名单.csv",
        students.clone(),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(preview.body.contains("可以导入"), "{}", preview.body);
    assert_eq!(summary(&preview), ("3".into(), "0".into(), "0".into()));
    assert!(can_apply(&preview));
    assert!(
        !student_exists(&app, ZHANG_SAN).await,
        "a preview writes nothing"
    );
    assert!(app.audit_rows("import.").await.is_empty());

    let token = token_of(&preview);
    let applied = apply(&mut console, &csrf, &token).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert!(applied.body.contains("新增 3 行，更新 0 行，未变 0 行"));
    assert!(student_exists(&app, ZHANG_SAN).await);
    let rows = app.audit_rows("import.students").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, FINANCE);
    let after = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(after["file"], "名单.csv");
    assert_eq!(after["sha256"], hex::encode(Sha256::digest(&students)));
    assert_eq!(after["rows"], 3);
    assert_eq!(after["added"], 3);
    assert_eq!(after["updated"], 0);
    assert_eq!(after["unchanged"], 0);

    // The same token again: refused, nothing imported twice.
    let again = apply(&mut console, &csrf, &token).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("未导入任何数据"), "{}", again.body);
    assert_eq!(app.audit_rows("import.students").await.len(), 1);

    let fees = upload(
        &mut console,
        &csrf,
        "fees",
        "fees.csv",
        FEES_CSV.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(summary(&fees), ("4".into(), "0".into(), "0".into()));
    let fees_token = token_of(&fees);
    let applied = apply(&mut console, &csrf, &fees_token).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert_eq!(items_of(&app, ZHANG_SAN).await.len(), 3);
    assert_eq!(items_of(&app, LI_SI).await.len(), 1);
    let rows = app.audit_rows("import.fees").await;
    assert_eq!(rows.len(), 1);
    let after = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(after["rows"], 4);
    assert_eq!(after["added"], 4);
    let again = apply(&mut console, &csrf, &fees_token).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(items_of(&app, ZHANG_SAN).await.len(), 3);
    assert_eq!(app.audit_rows("import.fees").await.len(), 1);

    // The same file again is previewed as unchanged.
    let unchanged = upload(&mut console, &csrf, "students", "名单.csv", students).await;
    assert_eq!(summary(&unchanged), ("0".into(), "0".into(), "3".into()));

    // The listing finds the items, and links to each one's page.
    let listing = console
        .get("/admin/fees?year=2026-2027&item=学费&status=unpaid")
        .await;
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(
        listing.body.matches("/admin/fees/items/").count(),
        2,
        "{}",
        listing.body
    );
    assert!(listing.body.contains("110105********002X"));
    assert!(!listing.body.contains(ZHANG_SAN), "ID numbers are masked");
}

#[tokio::test]
async fn a_gbk_csv_and_an_xlsx_preview_as_the_cli_reads_them() {
    let app = spawn_app().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    let students = upload(
        &mut console,
        &csrf,
        "students",
        "students_utf8_bom.csv",
        fixture("students_utf8_bom.csv"),
    )
    .await;
    assert_eq!(summary(&students), ("3".into(), "0".into(), "0".into()));
    let applied = apply(&mut console, &csrf, &token_of(&students)).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert!(student_exists(&app, FIXTURE_STUDENT).await);

    let gbk = upload(
        &mut console,
        &csrf,
        "fees",
        "fees_gbk.csv",
        fixture("fees_gbk.csv"),
    )
    .await;
    assert_eq!(gbk.status, StatusCode::OK, "{}", gbk.body);
    assert!(gbk.body.contains("可以导入"), "{}", gbk.body);
    assert_eq!(summary(&gbk), ("5".into(), "0".into(), "0".into()));

    let xlsx = upload(
        &mut console,
        &csrf,
        "students",
        "students.xlsx",
        fixture("students.xlsx"),
    )
    .await;
    assert_eq!(xlsx.status, StatusCode::OK, "{}", xlsx.body);
    assert_eq!(summary(&xlsx), ("3".into(), "0".into(), "0".into()));
    assert!(can_apply(&xlsx));
    // Previews only: no fee item, no second import.
    assert!(items_of(&app, FIXTURE_STUDENT).await.is_empty());
    assert_eq!(app.audit_rows("import.").await.len(), 1);
}

#[tokio::test]
async fn a_file_with_bad_rows_lists_every_one_and_cannot_be_applied() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    // Line 2 is good; 3: unknown student (the database says so); 4: bad amount and
    // 5: bad ID number (the file says so); 6: a good update, not applied either.
    let bad = "身份证号,学年,项目,金额
11010519491231002X,2027-2028,学费,4600
620602200703150011,2026-2027,学费,5000
620622200703150025,2026-2027,住宿费,十二
110105194912310021,2026-2027,学费,100
620622200703150025,2026-2027,学费,5100
";
    let preview = upload(
        &mut console,
        &csrf,
        "fees",
        "bad.csv",
        bad.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    for line in ["第3行：", "第4行：", "第5行："] {
        assert!(preview.body.contains(line), "{line} in {}", preview.body);
    }
    assert!(preview.body.contains("没有这个学生"));
    assert!(!preview.body.contains("第2行：") && !preview.body.contains("第6行："));
    assert!(preview.body.contains("3 行有问题，不能导入"));
    assert!(!can_apply(&preview), "no apply button");

    // A forged apply with the preview's token: refused, nothing written.
    let forged = apply(&mut console, &csrf, &token_of(&preview)).await;
    assert_eq!(forged.status, StatusCode::CONFLICT);
    assert!(forged.body.contains("未导入任何数据"));
    // And a made-up token is refused too.
    let made_up = apply(&mut console, &csrf, "not-a-token").await;
    assert_eq!(made_up.status, StatusCode::CONFLICT);
    let zhang = items_of(&app, ZHANG_SAN).await;
    assert_eq!(zhang.len(), 3, "the good line 2 was not imported either");
    let li = items_of(&app, LI_SI).await;
    assert_eq!(li[0].amount_fen, 500_000, "line 6's update was not applied");
    assert!(app.audit_rows("import.").await.is_empty());
}

#[tokio::test]
async fn a_file_that_went_bad_after_its_preview_is_refused_at_apply() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    let change = "身份证号,学年,项目,金额\n620622200703150025,2026-2027,学费,5100\n";
    let preview = upload(
        &mut console,
        &csrf,
        "fees",
        "fees.csv",
        change.as_bytes().to_vec(),
    )
    .await;
    assert!(can_apply(&preview), "{}", preview.body);
    // Meanwhile 李四 starts paying the item: the update would undercut the order.
    let item = items_of(&app, LI_SI).await[0].clone();
    take_into_order(&app, LI_SI, item.id, "CPTESTAPPLY0001").await;
    let refused = apply(&mut console, &csrf, &token_of(&preview)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("第2行："), "{}", refused.body);
    assert_eq!(items_of(&app, LI_SI).await[0].amount_fen, 500_000);
    assert!(app.audit_rows("import.").await.is_empty());
}

#[tokio::test]
async fn other_file_types_and_oversized_bodies_are_refused_clearly() {
    let app = spawn_app().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    let text = upload(
        &mut console,
        &csrf,
        "students",
        "名单.txt",
        STUDENTS_CSV.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(text.status, StatusCode::BAD_REQUEST);
    assert!(
        text.body.contains("不支持的文件类型，只接受 .csv 或 .xlsx"),
        "{}",
        text.body
    );
    assert!(!text.body.contains("data-token"));

    let huge = vec![b'a'; 11 * 1024 * 1024];
    let too_large = upload(&mut console, &csrf, "students", "big.csv", huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_large.body.contains("文件太大"), "{}", too_large.body);
    assert!(!student_exists(&app, ZHANG_SAN).await);
    assert!(app.audit_rows("import.").await.is_empty());
}

/// 张三's first item as listed (2025-2026 教材费, 350.50).
async fn first_item(app: &TestApp) -> FeeItemRecord {
    items_of(app, ZHANG_SAN).await[0].clone()
}

#[tokio::test]
async fn waive_defer_and_restore_change_the_item_and_leave_audit_rows() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let item = first_item(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let path = format!("/admin/fees/items/{}", item.id);
    let page = console.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("张三") && page.body.contains("110105********002X"));
    let student = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .unwrap()
        .unwrap();
    assert!(
        page.body
            .contains(&format!("/admin/students/{}", student.id))
    );
    assert!(page.body.contains("waive-form") && page.body.contains("defer-form"));
    let csrf = page.csrf();

    let waived = console
        .post(
            &format!("{path}/waive"),
            &[("csrf", &csrf), ("reason", "建档立卡贫困户，全额减免")],
        )
        .await;
    assert!(
        waived.redirects_to(&format!("{path}?done=waived")),
        "{:?} {}",
        waived.location,
        waived.body
    );
    let shown = console.get(&format!("{path}?done=waived")).await;
    assert!(shown.body.contains("已减免该项目") && shown.body.contains("建档立卡贫困户"));
    assert_eq!(first_item(&app).await.status, FeeItemStatus::Waived);
    let rows = app.audit_rows("fee_item.waive").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, FINANCE);
    assert_eq!(rows[0].entry.target, format!("fee_item:{}", item.id));
    let before = rows[0].entry.before.as_ref().expect("before");
    let after = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(before["status"], "unpaid");
    assert_eq!(before["note"], serde_json::Value::Null);
    assert_eq!(before["amount"], "350.50");
    assert_eq!(after["status"], "waived");
    assert_eq!(after["note"], "建档立卡贫困户，全额减免");
    assert_eq!(after["amount"], "350.50");

    // Waiving it again is refused and writes nothing.
    let again = console
        .post(
            &format!("{path}/waive"),
            &[("csrf", &csrf), ("reason", "再次")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(app.audit_rows("fee_item.waive").await.len(), 1);

    let restored = console
        .post(&format!("{path}/restore"), &[("csrf", &csrf)])
        .await;
    assert!(restored.redirects_to(&format!("{path}?done=restored")));
    let record = first_item(&app).await;
    assert_eq!(record.status, FeeItemStatus::Unpaid);
    let rows = app.audit_rows("fee_item.restore").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.before.as_ref().unwrap()["status"], "waived");
    assert_eq!(rows[0].entry.after.as_ref().unwrap()["status"], "unpaid");

    // A reason is required, and at most 200 characters; the date must be a future day.
    let until = in_days(&app, 30);
    for (form, message) in [
        (
            vec![("until", until.as_str()), ("reason", "  ")],
            "请填写原因",
        ),
        (
            vec![("until", until.as_str()), ("reason", &"困".repeat(201))],
            "原因不能超过200个字",
        ),
        (
            vec![("until", "2020-01-01"), ("reason", "缓缴")],
            "缓缴日期应在今天之后",
        ),
        (vec![("until", "明年"), ("reason", "缓缴")], "YYYY-MM-DD"),
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form);
        let refused = console.post(&format!("{path}/defer"), &fields).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{message}");
        assert!(
            refused.body.contains(message),
            "{message}: {}",
            refused.body
        );
    }
    let empty = console
        .post(&format!("{path}/waive"), &[("csrf", &csrf), ("reason", "")])
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(first_item(&app).await.status, FeeItemStatus::Unpaid);
    assert!(app.audit_rows("fee_item.defer").await.is_empty());

    let deferred = console
        .post(
            &format!("{path}/defer"),
            &[
                ("csrf", &csrf),
                ("until", &until),
                ("reason", "绿色通道：助学贷款办理中"),
            ],
        )
        .await;
    assert!(
        deferred.redirects_to(&format!("{path}?done=deferred")),
        "{}",
        deferred.body
    );
    let record = first_item(&app).await;
    assert_eq!(record.status, FeeItemStatus::Deferred);
    assert!(record.deferred_until.expect("a date") > app.clock.now());
    let rows = app.audit_rows("fee_item.defer").await;
    assert_eq!(rows.len(), 1);
    let after = rows[0].entry.after.as_ref().unwrap();
    assert_eq!(after["status"], "deferred");
    assert_eq!(after["deferred_until"], until.as_str());
    assert_eq!(after["note"], "绿色通道：助学贷款办理中");
    let shown = console.get(&path).await;
    assert!(
        shown.body.contains(&format!("缓缴至 {until}")),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("restore-form"));

    // A deferred item may be restored, too.
    console
        .post(&format!("{path}/restore"), &[("csrf", &csrf)])
        .await;
    assert_eq!(first_item(&app).await.status, FeeItemStatus::Unpaid);
    assert_eq!(app.audit_rows("fee_item.restore").await.len(), 2);
}

/// The Beijing date `days` from the app's now, as the defer form takes it.
fn in_days(app: &TestApp, days: i64) -> String {
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    (app.clock.now() + chrono::Duration::days(days))
        .with_timezone(&beijing)
        .format("%Y-%m-%d")
        .to_string()
}

async fn take_into_order(
    app: &TestApp,
    id_card: &str,
    item_id: i64,
    out_trade_no: &str,
) -> TakeOutcome {
    let student = app
        .state
        .store
        .find_student_by_id_card(id_card)
        .await
        .unwrap()
        .unwrap();
    let now = app.clock.now();
    app.state
        .store
        .take_items_into_order(&NewOrder {
            out_trade_no,
            student_id: student.id,
            channel: PaymentChannel::WechatNative,
            item_ids: &[item_id],
            payer_openid: None,
            description: "测试",
            now,
            expires_at: now + chrono::Duration::minutes(15),
            request_id: None,
        })
        .await
        .expect("store")
}

#[tokio::test]
async fn items_paid_or_in_an_open_order_are_not_waived_or_deferred() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let items = items_of(&app, ZHANG_SAN).await;
    let (held, paid) = (items[0].clone(), items[1].clone());
    assert!(matches!(
        take_into_order(&app, ZHANG_SAN, held.id, "CPTESTHELD000001").await,
        TakeOutcome::Created(_)
    ));
    let TakeOutcome::Created(order) =
        take_into_order(&app, ZHANG_SAN, paid.id, "CPTESTPAID000001").await
    else {
        panic!("an order for the second item");
    };
    let now = app.clock.now();
    app.state
        .store
        .apply_payment(
            &PaymentReport {
                out_trade_no: &order.out_trade_no,
                channel_trade_no: "4200000000202609010001",
                amount_fen: order.amount_fen,
                paid_at: now,
                payer_openid: None,
            },
            now,
        )
        .await
        .expect("paid");

    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    let until = in_days(&app, 30);
    for (item, status, shown) in [
        (&held, FeeItemStatus::InOrder, "正在支付中"),
        (&paid, FeeItemStatus::Paid, "已缴费"),
    ] {
        let path = format!("/admin/fees/items/{}", item.id);
        let page = console.get(&path).await;
        assert!(!page.body.contains("waive-form") && !page.body.contains("defer-form"));
        for (action, fields) in [
            ("waive", vec![("csrf", csrf.as_str()), ("reason", "减免")]),
            (
                "defer",
                vec![
                    ("csrf", csrf.as_str()),
                    ("until", until.as_str()),
                    ("reason", "缓缴"),
                ],
            ),
            ("restore", vec![("csrf", csrf.as_str())]),
        ] {
            let refused = console.post(&format!("{path}/{action}"), &fields).await;
            assert_eq!(refused.status, StatusCode::CONFLICT, "{action} {status:?}");
            if action != "restore" {
                assert!(refused.body.contains(shown), "{action}: {}", refused.body);
            }
        }
    }
    let now_items = items_of(&app, ZHANG_SAN).await;
    assert_eq!(now_items[0].status, FeeItemStatus::InOrder);
    assert_eq!(now_items[1].status, FeeItemStatus::Paid);
    assert!(app.audit_rows("fee_item.").await.is_empty());
}

/// 张三 signs in on the PC portal again with the password chosen at first login.
async fn student_signs_in_again(app: &TestApp) -> Browser<'_> {
    let mut browser = Browser::new(app);
    let signed_in = browser.pc_login(ZHANG_SAN, NEW_PASSWORD).await;
    assert!(
        signed_in.redirects_to("/fees"),
        "{:?} {}",
        signed_in.location,
        signed_in.body
    );
    browser
}

#[tokio::test]
async fn a_deferred_item_is_not_payable_until_its_date_has_passed() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let item = first_item(&app).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.console_csrf().await;
    let until = in_days(&app, 2);
    let deferred = console
        .post(
            &format!("/admin/fees/items/{}/defer", item.id),
            &[("csrf", &csrf), ("until", &until), ("reason", "绿色通道")],
        )
        .await;
    assert!(deferred.status.is_redirection(), "{}", deferred.body);

    let mut student = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let fees = student.get("/fees").await;
    let ticked = Browser::item_ids(&fees);
    assert_eq!(ticked.len(), 2, "the deferred item cannot be ticked");
    assert!(!ticked.contains(&item.id.to_string()));
    assert!(
        fees.body.contains("缓缴（绿色通道）") && fees.body.contains(&until),
        "{}",
        fees.body
    );
    let id = item.id.to_string();
    let confirm = student
        .post("/confirm", &[("csrf", &fees.csrf()), ("item", &id)])
        .await;
    assert_eq!(confirm.status, StatusCode::CONFLICT);
    assert!(matches!(
        take_into_order(&app, ZHANG_SAN, item.id, "CPTESTDEFER00001").await,
        TakeOutcome::Unavailable
    ));

    // Three days on, the deferral has run out: owed again, shown and payable as 待缴.
    app.clock.advance(Duration::from_secs(3 * 24 * 3600));
    let mut student = student_signs_in_again(&app).await;
    let fees = student.get("/fees").await;
    let ticked = Browser::item_ids(&fees);
    assert_eq!(ticked.len(), 3, "{}", fees.body);
    assert!(ticked.contains(&id));
    assert!(!fees.body.contains("缓缴（绿色通道）"));
    let confirm = student
        .post("/confirm", &[("csrf", &fees.csrf()), ("item", &id)])
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(matches!(
        take_into_order(&app, ZHANG_SAN, item.id, "CPTESTDEFER00002").await,
        TakeOutcome::Created(_)
    ));
    assert_eq!(first_item(&app).await.status, FeeItemStatus::InOrder);
}

/// Every change the fees section makes, refused for a viewer and for a missing or
/// wrong token, with nothing changed and no audit row.
#[tokio::test]
async fn viewers_and_forms_without_the_right_token_change_nothing() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let items = items_of(&app, ZHANG_SAN).await;
    let (unpaid, waived) = (items[0].clone(), items[1].clone());
    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let finance_csrf = finance.console_csrf().await;
    let waive_path = format!("/admin/fees/items/{}/waive", waived.id);
    let done = finance
        .post(&waive_path, &[("csrf", &finance_csrf), ("reason", "减免")])
        .await;
    assert!(done.status.is_redirection());
    // A kept upload of a new student, for the apply attempts.
    let new_student = "身份证号,姓名,性别,年级,班级\n620602200703150011,赵一,男,2026,汽修1班\n";
    let preview = upload(
        &mut finance,
        &finance_csrf,
        "students",
        "new.csv",
        new_student.as_bytes().to_vec(),
    )
    .await;
    let token = token_of(&preview);

    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let viewer_csrf = viewer.console_csrf().await;
    let audit_before = app.audit_rows("").await.len();
    let page = viewer
        .get(&format!("/admin/fees/items/{}", unpaid.id))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("waive-form"),
        "viewers see no change forms"
    );
    assert!(!viewer.get("/admin/fees").await.body.contains("上传并预览"));
    let until = in_days(&app, 30);

    // (browser, csrf) pairs that must all be refused.
    let attempts: Vec<(&str, bool, String)> = vec![
        ("viewer", false, viewer_csrf.clone()),
        ("no token", true, String::new()),
        ("wrong token", true, "not-the-session-token".to_owned()),
    ];
    for (who, as_finance, csrf) in &attempts {
        let browser = if *as_finance {
            &mut finance
        } else {
            &mut viewer
        };
        let uploaded = upload(
            browser,
            csrf,
            "students",
            "new.csv",
            new_student.as_bytes().to_vec(),
        )
        .await;
        assert_eq!(uploaded.status, StatusCode::FORBIDDEN, "{who}: upload");
        assert!(!uploaded.body.contains("data-token"));
        let applied = apply(browser, csrf, &token).await;
        assert_eq!(applied.status, StatusCode::FORBIDDEN, "{who}: apply");
        for (path, fields) in [
            (
                format!("/admin/fees/items/{}/waive", unpaid.id),
                vec![("csrf", csrf.as_str()), ("reason", "减免")],
            ),
            (
                format!("/admin/fees/items/{}/defer", unpaid.id),
                vec![
                    ("csrf", csrf.as_str()),
                    ("until", until.as_str()),
                    ("reason", "缓缴"),
                ],
            ),
            (
                format!("/admin/fees/items/{}/restore", waived.id),
                vec![("csrf", csrf.as_str())],
            ),
        ] {
            let refused = browser.post(&path, &fields).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{who}: {path}");
        }
    }
    let after = items_of(&app, ZHANG_SAN).await;
    assert_eq!(after[0].status, FeeItemStatus::Unpaid);
    assert_eq!(after[1].status, FeeItemStatus::Waived);
    assert!(!student_exists(&app, "620602200703150011").await);
    assert_eq!(app.audit_rows("").await.len(), audit_before, "no audit row");

    // The kept upload was not consumed by the refused applies: its owner applies it.
    let applied = apply(&mut finance, &finance_csrf, &token).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert!(student_exists(&app, "620602200703150011").await);
}

#[tokio::test]
async fn another_admins_upload_cannot_be_applied() {
    let app = spawn_app().await;
    let mut first = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = first.console_csrf().await;
    let preview = upload(
        &mut first,
        &csrf,
        "students",
        "students.csv",
        STUDENTS_CSV.as_bytes().to_vec(),
    )
    .await;
    let token = token_of(&preview);
    let mut second = app.console_as("caiwu2", AdminRole::Finance).await;
    let second_csrf = second.console_csrf().await;
    let refused = apply(&mut second, &second_csrf, &token).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(!student_exists(&app, ZHANG_SAN).await);
    let applied = apply(&mut first, &csrf, &token).await;
    assert_eq!(applied.status, StatusCode::OK);
    assert!(student_exists(&app, ZHANG_SAN).await);
}

#[tokio::test]
async fn the_cli_import_writes_the_same_audit_row_as_cli() {
    let app = spawn_app().await;
    let directory =
        std::env::temp_dir().join(format!("cp-console-fees-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("students.csv");
    std::fs::write(&file, STUDENTS_CSV).unwrap();
    let url = app.store.database_url();
    let path = file.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_campus-pay"));
        command
            .args(["import", "students"])
            .arg(&path)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAMPUSPAY_")) {
            command.env_remove(key);
        }
        command
            .env("RUST_LOG", "error")
            .env("CAMPUSPAY_DATABASE_URL", url)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&directory).ok();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = app.audit_rows("import.students").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, "cli");
    let after = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(after["file"], file.display().to_string());
    assert_eq!(
        after["sha256"],
        hex::encode(Sha256::digest(STUDENTS_CSV.as_bytes()))
    );
    assert_eq!(after["added"], 3);
}
