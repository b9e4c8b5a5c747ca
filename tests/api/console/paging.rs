//! Every console list reads `?page=` as a bounded number: a huge page, zero, a negative
//! number and garbage each answer a list page. `?page=18446744073709551615` once
//! wrapped the offset and panicked inside the SQL layer (or in the handler itself, in a
//! debug build); a negative or non-numeric page was a bare 400.

use campus_pay::jobs::followers::ACTOR_CLI;
use campus_pay::store::AdminRole;
use reqwest::StatusCode;

use crate::support::admin::FINANCE;
use crate::support::spawn_app;

const HOSTILE_PAGES: [&str; 7] = [
    "18446744073709551615",
    "9223372036854775808",
    "99999999999999999999999999",
    "0",
    "-1",
    "abc",
    "",
];

#[tokio::test]
async fn every_console_list_answers_any_page_number() {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let check = app.state.follower_check().expect("configured");
    let run = check.run(ACTOR_CLI, true).await.expect("a dry run");
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;

    let run_page = format!("/admin/followers/runs/{}", run.run_id);
    let lists = [
        "/admin/students",
        "/admin/fees",
        "/admin/payments",
        "/admin/arrears/students",
        "/admin/audit",
        "/admin/followers",
        run_page.as_str(),
        "/admin/reconciliation",
    ];
    for list in lists {
        for page in HOSTILE_PAGES {
            let url = format!("{list}?page={page}");
            let answer = console.get(&url).await;
            assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.body);
        }
        // A page past the end is an honest, empty list; page 1 still lists.
        let first = console.get(&format!("{list}?page=1")).await;
        assert_eq!(first.status, StatusCode::OK, "{list}");
    }
    // Seeded students are on page 1 and on no page a huge number reaches.
    let first = console.get("/admin/students?page=1").await;
    let huge = console
        .get("/admin/students?page=18446744073709551615")
        .await;
    assert!(first.body.contains("张三"), "{}", first.body);
    assert!(!huge.body.contains("张三"), "{}", huge.body);
    let healthz = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("the app still answers");
    assert_eq!(healthz.status(), StatusCode::OK);
}
