//! What every answer carries whatever its handler (framing, sniffing, referrer and
//! caching headers), and exports that a spreadsheet opens without running anything.

use campus_pay::import::fees::parse_fees;
use campus_pay::import::read::read_table_bytes;
use campus_pay::import::students::parse_students;
use campus_pay::store::AdminRole;
use reqwest::StatusCode;

use crate::support::admin::FINANCE;
use crate::support::spawn_app;

#[tokio::test]
async fn every_answer_forbids_framing_and_sniffing_and_pages_are_not_cached() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let signed_in = console.get("/admin/students").await;
    assert_eq!(signed_in.status, StatusCode::OK);

    let cases = [
        ("/", StatusCode::OK),
        ("/h5", StatusCode::FOUND),
        ("/admin/login", StatusCode::OK),
        ("/healthz", StatusCode::OK),
        ("/no/such/page", StatusCode::NOT_FOUND),
        ("/assets/app.css", StatusCode::OK),
    ];
    for (path, status) in cases {
        let response = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), status, "{path}");
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        let cache = headers["cache-control"].to_str().expect("ascii");
        if path.starts_with("/assets/") {
            assert!(cache.starts_with("public"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
    // A refused notification answers with the same headers.
    let refused = app
        .client
        .post(format!("{}/pay/notify/wechat", app.url))
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert!(refused.status().is_client_error() || refused.status().is_server_error());
    assert_eq!(refused.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn exports_keep_formulas_in_names_and_classes_as_text() {
    let app = spawn_app().await;
    let now = app.clock.now();
    let students = "身份证号,姓名,性别,年级,班级,学号\n\
        11010519491231002X,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"点我\"\")\",男,2026,@汽修1班,-1+1\n";
    let students = parse_students(&read_table_bytes("s.csv", students.as_bytes()).expect("reads"))
        .expect("valid students");
    app.state
        .store
        .import_students(&students, now, true)
        .await
        .expect("imported");
    let fees = "身份证号,学年,项目,金额\n11010519491231002X,2026-2027,学费,4500\n";
    let fees = parse_fees(&read_table_bytes("f.csv", fees.as_bytes()).expect("reads"))
        .expect("valid fees");
    app.state
        .store
        .import_fees(&fees, now, true)
        .await
        .expect("imported");

    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let (status, _, bytes) = console.download("/admin/arrears/export.csv").await;
    assert_eq!(status, StatusCode::OK);
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let row = reader
        .records()
        .next()
        .expect("one student owes")
        .expect("a CSV row");
    assert_eq!(&row[1], "'@汽修1班");
    assert_eq!(&row[3], "'-1+1");
    assert_eq!(&row[4], "'=HYPERLINK(\"http://evil.example\",\"点我\")");
    assert_eq!(&row[7], "4500.00", "amounts stay numbers");
}
