//! The console's arrears over HTTP: totals by grade, class and major, exact to the fen
//! for the seeded school (seed.rs's FEES_CSV, summed by hand below); an item paid
//! through the sandbox leaves them, a deferred one moves to its own column; the
//! students' list and its CSV for the counsellors.
//!
//! The seeded fees: 张三 (2026级 汽修1班, 汽车检测与维修技术) owes 学费 4500, 住宿费
//! 1200 and 教材费 350.50, i.e. 605,050 fen in 3 items; 李四 (2025级 电子商务2班,
//! 电子商务) 学费 5000, i.e. 500,000 fen; 王五 nothing. In all 1,105,050 fen, 4 items,
//! 2 students.

use campus_pay::store::{AdminRole, FeeItemStatus};
use reqwest::StatusCode;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::{Browser, element_text};
use crate::support::seed::{LI_SI, ZHANG_SAN, paying_app};

/// The cells' texts of the table row (`<tr>…</tr>`) holding `needle`, tags dropped.
fn row_cells(body: &str, needle: &str) -> Option<Vec<String>> {
    let at = body.find(needle)?;
    let start = body[..at].rfind("<tr")?;
    let end = at + body[at..].find("</tr>")?;
    let row = &body[start..end];
    let cells = row
        .split("<td")
        .skip(1)
        .map(|cell| {
            let mut text = String::new();
            let mut in_tag = true; // the rest of the opening `<td …>`
            for c in cell.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text.trim().to_owned()
        })
        .collect();
    Some(cells)
}

fn total_row(body: &str) -> Vec<String> {
    row_cells(body, "id=\"arrears-total\"").expect("a total row")
}

/// 李四 pays his 学费 on PC through the WeChat Pay sandbox.
async fn li_si_pays(app: &TestApp) {
    let mut browser = Browser::signed_in_pc(app, LI_SI, "000000").await;
    let fees = browser.get("/fees").await;
    let ids = Browser::item_ids(&fees);
    let csrf = fees.csrf();
    let qr = browser
        .post("/pay/wechat", &[("csrf", &csrf), ("item", &ids[0])])
        .await;
    assert_eq!(qr.status, StatusCode::OK, "{}", qr.body);
    let number = element_text(&qr.body, "order-number").expect("number");
    app.pay.pay(&number).await.expect("paid");
}

#[tokio::test]
async fn totals_by_grade_class_and_major_are_exact_and_follow_payments_and_deferrals() {
    let app = paying_app().await;
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;

    let by_grade = console.get("/admin/arrears").await;
    assert_eq!(by_grade.status, StatusCode::OK);
    let body = &by_grade.body;
    assert_eq!(
        row_cells(body, "2026级").expect("2026")[..5],
        ["2026级", "1", "3", "6,050.50", "0.00"]
    );
    assert_eq!(
        row_cells(body, "2025级").expect("2025")[..5],
        ["2025级", "1", "1", "5,000.00", "0.00"]
    );
    assert_eq!(
        total_row(body)[..5],
        ["合计", "2", "4", "11,050.50", "0.00"]
    );
    assert!(
        body.contains("/admin/arrears/students?grade=2026"),
        "groups link to their students"
    );

    let by_class = console.get("/admin/arrears?by=class").await;
    assert_eq!(
        row_cells(&by_class.body, ">汽修1班<").expect("class")[..6],
        ["2026级", "汽修1班", "1", "3", "6,050.50", "0.00"]
    );
    assert_eq!(
        row_cells(&by_class.body, ">电子商务2班<").expect("class")[..6],
        ["2025级", "电子商务2班", "1", "1", "5,000.00", "0.00"]
    );
    let by_major = console.get("/admin/arrears?by=major").await;
    assert_eq!(
        row_cells(&by_major.body, ">汽车检测与维修技术<").expect("major")[..5],
        ["汽车检测与维修技术", "1", "3", "6,050.50", "0.00"]
    );
    let one_grade = console.get("/admin/arrears?by=major&grade=25").await;
    assert_eq!(
        total_row(&one_grade.body)[..5],
        ["合计", "1", "1", "5,000.00", "0.00"]
    );
    assert!(!one_grade.body.contains("汽车检测与维修技术<"));

    // 住宿费 on the green channel: out of what is owed, into the deferred column.
    app.state
        .store
        .set_fee_item_status_for_tests(ZHANG_SAN, "2026-2027", "住宿费", FeeItemStatus::Deferred)
        .await;
    // 李四 pays: his item leaves the arrears, and so does his grade.
    li_si_pays(&app).await;
    let after = console.get("/admin/arrears").await;
    assert_eq!(
        row_cells(&after.body, "2026级").expect("2026")[..5],
        ["2026级", "1", "2", "4,850.50", "1,200.00"]
    );
    assert!(
        row_cells(&after.body, "2025级").is_none(),
        "nothing owed in 2025"
    );
    assert_eq!(
        total_row(&after.body)[..5],
        ["合计", "1", "2", "4,850.50", "1,200.00"]
    );
    let by_class = console.get("/admin/arrears?by=class").await;
    assert!(!by_class.body.contains("电子商务2班"));
}

#[tokio::test]
async fn the_students_list_and_its_export_name_what_each_owes() {
    let app = paying_app().await;
    app.state
        .store
        .set_fee_item_status_for_tests(ZHANG_SAN, "2026-2027", "住宿费", FeeItemStatus::Waived)
        .await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    let all = console.get("/admin/arrears/students").await;
    assert_eq!(all.status, StatusCode::OK);
    let zhang = row_cells(&all.body, "110105********002X").expect("张三");
    assert_eq!(
        zhang,
        [
            "2026",
            "汽修1班",
            "汽车检测与维修技术",
            "",
            "张三",
            "110105********002X",
            "2026-2027 学费 4,500.00；2025-2026 教材费 350.50",
            "4,850.50",
        ]
    );
    let li = row_cells(&all.body, "620622********0025").expect("李四");
    assert_eq!(li[6], "学费 5,000.00");
    assert!(!all.body.contains("王五"), "owes nothing");
    assert!(!all.body.contains(ZHANG_SAN) && !all.body.contains(LI_SI));
    // The later grade first: 张三 (2026) before 李四 (2025).
    assert!(all.body.find("张三") < all.body.find("李四"));

    let class = console
        .get("/admin/arrears/students?grade=2025&class=%E7%94%B5%E5%AD%90%E5%95%86%E5%8A%A12%E7%8F%AD")
        .await;
    assert!(class.body.contains("李四") && !class.body.contains("张三"));
    let by_major = console
        .get("/admin/arrears/students?major=%E7%94%B5%E5%AD%90%E5%95%86%E5%8A%A1")
        .await;
    assert!(by_major.body.contains("李四") && !by_major.body.contains("张三"));

    let (status, content_type, bytes) = console.download("/admin/arrears/export.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"));
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    assert_eq!(
        text,
        "年级,班级,专业,学号,姓名,身份证号,欠费项目,欠费金额(元)\r\n\
         2026,汽修1班,汽车检测与维修技术,,张三,110105********002X,2026-2027 学费 4500.00；2025-2026 教材费 350.50,4850.50\r\n\
         2025,电子商务2班,电子商务,,李四,620622********0025,学费 5000.00,5000.00\r\n"
    );
    let (_, _, bytes) = console
        .download("/admin/arrears/export.csv?grade=2026")
        .await;
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("张三") && !text.contains("李四"));

    let rows = app.audit_rows("arrears.export").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].entry.actor, FINANCE);
    let after = rows[0].entry.after.as_ref().expect("after");
    assert_eq!(after["scope"]["grade"], "2026");
    assert_eq!(after["rows"], 1);
    assert_eq!(rows[1].entry.after.as_ref().expect("after")["rows"], 2);

    // Viewers may read and export too; strangers may not.
    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let (status, _, _) = viewer.download("/admin/arrears/export.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.audit_rows("arrears.export").await.len(), 3);
    let mut stranger = Browser::console(&app);
    assert!(
        stranger
            .get("/admin/arrears")
            .await
            .redirects_to("/admin/login")
    );
    let (status, _, _) = stranger.download("/admin/arrears/export.csv").await;
    assert!(status.is_redirection());
    assert_eq!(
        console
            .get("/admin/arrears/students?grade=abc")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}
