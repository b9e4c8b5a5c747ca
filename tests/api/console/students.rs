//! The console's students section over HTTP: the search (ID numbers masked in every
//! list), a student's own page (the full number, its viewing logged), and the office's
//! three changes (details, password, WeChat binding) with their refusals and audit rows.

use campus_pay::domain::id_card::check_character;
use campus_pay::import::read::read_table_bytes;
use campus_pay::import::students::parse_students;
use campus_pay::store::{
    AdminRole, NewOrder, NotificationChannel, NotificationVerdict, PaymentChannel,
    ReceivedNotification, StudentAccount, TakeOutcome,
};
use campus_pay::web::students::captcha_key;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestApp;
use crate::support::admin::{FINANCE, VIEWER};
use crate::support::browser::{Browser, NEW_PASSWORD, Page};
use crate::support::seed::{LI_SI, WANG_WU, ZHANG_SAN};
use crate::support::spawn_app;

const FULL_ID_NUMBERS: [&str; 3] = [ZHANG_SAN, LI_SI, WANG_WU];

async fn seeded_app() -> TestApp {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    app
}

async fn student(app: &TestApp, id_card: &str) -> StudentAccount {
    app.state
        .store
        .find_student_by_id_card(id_card)
        .await
        .expect("query")
        .expect("the student exists")
}

/// Imports more students, as the office's file would.
async fn import(app: &TestApp, csv: &str) {
    let rows = parse_students(&read_table_bytes("students.csv", csv.as_bytes()).expect("reads"))
        .expect("valid students");
    app.state
        .store
        .import_students(&rows, app.clock.now(), true)
        .await
        .expect("imported");
}

fn assert_masked_only(page: &Page) {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for full in FULL_ID_NUMBERS {
        assert!(!page.body.contains(full), "a list shows a full ID number");
        assert!(!page.body.contains(&full.to_lowercase()));
    }
}

/// The names the results table lists.
fn listed(page: &Page) -> Vec<&'static str> {
    ["张三", "李四", "王五", "赵六"]
        .into_iter()
        .filter(|name| page.body.contains(&format!(">{name}</a>")))
        .collect()
}

fn search_path(q: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", q)
        .finish();
    format!("/admin/students?{query}")
}

/// Types `q` in the search box and submits it: the box posts; anything but a whole ID
/// number comes back as the list's address, which is followed.
async fn search(console: &mut Browser<'_>, q: &str) -> Page {
    let csrf = console.console_csrf().await;
    let answer = console
        .post("/admin/students/search", &[("csrf", &csrf), ("q", q)])
        .await;
    match answer.location.clone() {
        Some(to) if answer.status == StatusCode::SEE_OTHER => {
            assert!(
                !to.contains(&ZHANG_SAN[..15]) && !to.contains(&LI_SI[..15]),
                "no ID number in an address: {to}"
            );
            console.get(&to).await
        }
        _ => answer,
    }
}

#[tokio::test]
async fn the_list_finds_students_by_each_key_and_masks_every_id_number() {
    let app = seeded_app().await;
    // 张三 gets a student number, as a re-import with the column would give him.
    import(
        &app,
        "身份证号,姓名,性别,年级,班级,学号\n11010519491231002X,张三,男,2026,汽修1班,2026010101\n",
    )
    .await;
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;

    let everyone = console.get("/admin/students").await;
    assert_masked_only(&everyone);
    assert_eq!(listed(&everyone), ["张三", "李四", "王五"]);
    for shown in [
        "110105********002X",
        "620622********0025",
        "2026010101",
        "汽车检测与维修技术",
        "6,050.50",
        "5,000.00",
        "未绑定",
    ] {
        assert!(everyone.body.contains(shown), "the list shows {shown}");
    }
    assert!(!everyone.body.contains("已绑定"), "nobody is bound yet");

    let cases: [(&str, &[&str]); 11] = [
        (ZHANG_SAN, &["张三"]),
        ("11010519491231002x", &["张三"]),
        ("002x", &["张三"]),
        ("31002X", &["张三"]),
        ("0025", &["李四"]),
        ("7803x", &["王五"]),
        ("李", &["李四"]),
        ("汽修", &["张三", "王五"]),
        ("电子商务2", &["李四"]),
        ("2026010101", &["张三"]),
        // Student numbers match whole; a wrong check digit is not an ID number.
        ("202601010", &[]),
    ];
    for (q, expected) in cases {
        let page = search(&mut console, q).await;
        assert_masked_only(&page);
        assert_eq!(listed(&page), expected, "search {q:?}");
    }
    let by_wrong_check_digit = search(&mut console, "110105194912310021").await;
    assert_eq!(listed(&by_wrong_check_digit), Vec::<&str>::new());
    // Wildcards are taken literally.
    for q in ["%", "_"] {
        assert_eq!(listed(&search(&mut console, q).await), Vec::<&str>::new());
    }
    assert!(
        app.audit_rows("student.").await.is_empty(),
        "a search is not a viewing"
    );
}

#[tokio::test]
async fn a_whole_id_number_is_searched_by_post_and_never_travels_in_an_address() {
    let app = seeded_app().await;
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;
    // Typed in the box: found, shown masked, nothing to put in an address.
    let found = search(&mut console, ZHANG_SAN).await;
    assert_eq!(
        found.status,
        StatusCode::OK,
        "answered in place, not redirected"
    );
    assert_eq!(listed(&found), ["张三"]);
    assert_masked_only(&found);
    assert!(found.body.contains("action=\"/admin/students/search\""));
    assert!(found.body.contains("method=\"post\""));
    // In the address (a bookmark, a link pasted from elsewhere): not searched.
    for number in [ZHANG_SAN, "11010519491231002x", "110105194912310021"] {
        let page = console.get(&search_path(number)).await;
        assert_masked_only(&page);
        assert_eq!(listed(&page), Vec::<&str>::new(), "{number}");
        assert!(
            page.body.contains("完整身份证号不在网址中查询"),
            "{}",
            page.body
        );
    }
    // Endings, names and student numbers still work from an address (the pager).
    assert_eq!(listed(&console.get(&search_path("002X")).await), ["张三"]);
    // The search posts a CSRF token like every console form.
    let forged = console
        .post(
            "/admin/students/search",
            &[("csrf", "forged"), ("q", ZHANG_SAN)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_list_is_paged_fifty_at_a_time() {
    let app = seeded_app().await;
    let mut csv = String::from("身份证号,姓名,性别,年级,班级\n");
    for n in 0..55 {
        let first_17 = format!("62062220070316{n:03}");
        let check = check_character(first_17.as_bytes()).expect("17 digits") as char;
        csv.push_str(&format!("{first_17}{check},学生{n},女,2026,测试{n}班\n"));
    }
    import(&app, &csv).await;
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let rows = |page: &Page| page.body.matches("<a href=\"/admin/students/").count() / 2;
    let first = search(&mut console, "测试").await;
    assert_eq!(rows(&first), 50);
    assert!(first.body.contains("共 55 条"));
    let second = console
        .get("/admin/students?q=%E6%B5%8B%E8%AF%95&page=2")
        .await;
    assert_eq!(rows(&second), 5);
    let all_second = console.get("/admin/students?page=2").await;
    assert_eq!(rows(&all_second), 8, "58 students in all");
}

/// Puts 张三's items into an Alipay order and records a refused notification for it.
async fn order_with_a_refused_notification(app: &TestApp, student_id: i64) -> String {
    let items = app
        .state
        .store
        .fee_items_of(student_id)
        .await
        .expect("items");
    let ids: Vec<i64> = items
        .iter()
        .filter(|item| item.item == "学费" || item.item == "住宿费")
        .map(|item| item.id)
        .collect();
    let now = app.clock.now();
    let outcome = app
        .state
        .store
        .take_items_into_order(&NewOrder {
            out_trade_no: "CP20261201TEST0001",
            student_id,
            channel: PaymentChannel::Alipay,
            item_ids: &ids,
            payer_openid: None,
            description: "武威职业学院 学费",
            now,
            expires_at: now + chrono::Duration::minutes(15),
            request_id: None,
        })
        .await
        .expect("order");
    let TakeOutcome::Created(order) = outcome else {
        panic!("order created: {outcome:?}")
    };
    app.state
        .store
        .record_notification(&ReceivedNotification {
            channel: NotificationChannel::Alipay,
            out_trade_no: Some(&order.out_trade_no),
            order_id: Some(order.id),
            headers: "",
            raw_body: "{}",
            verdict: NotificationVerdict::Refused,
            reason: Some("金额不符"),
            received_at: now,
        })
        .await
        .expect("notification");
    order.out_trade_no
}

#[tokio::test]
async fn a_students_page_shows_the_full_id_number_and_logs_the_viewing() {
    let app = seeded_app().await;
    let zhang = student(&app, ZHANG_SAN).await;
    let out_trade_no = order_with_a_refused_notification(&app, zhang.id).await;
    let mut console = app.console_as(VIEWER, AdminRole::Viewer).await;

    let page = console.get(&format!("/admin/students/{}", zhang.id)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for shown in [
        ZHANG_SAN,
        "张三",
        "汽修1班",
        "2025-2026",
        "教材费",
        "350.50",
        "4,500.00",
        "支付中",
        out_trade_no.as_str(),
        "支付宝",
        "5,700.00",
        "已拒绝",
        "金额不符",
        "初始密码",
    ] {
        assert!(page.body.contains(shown), "the page shows {shown}");
    }
    // A viewer sees no forms.
    assert!(!page.body.contains("/correct") && !page.body.contains("/reset-password"));

    let viewed = app.audit_rows("student.view").await;
    assert_eq!(viewed.len(), 1);
    assert_eq!(viewed[0].entry.actor, VIEWER);
    assert_eq!(viewed[0].entry.target, format!("student:{}", zhang.id));

    // The list still owes the items in the open order.
    let list = search(&mut console, "张三").await;
    assert!(list.body.contains("6,050.50"));

    let unknown = console.get("/admin/students/999999").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(app.audit_rows("student.view").await.len(), 1);
}

fn details<'a>(
    csrf: &'a str,
    name: &'a str,
    gender: &'a str,
    grade: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("gender", gender),
        ("grade", grade),
        ("class_name", "汽修2班"),
        ("major", "汽车检测与维修技术"),
        ("student_no", "2025020101"),
    ]
}

#[tokio::test]
async fn correcting_details_shows_them_audits_the_change_and_moves_the_remark() {
    let app = seeded_app().await;
    app.state
        .store
        .record_subscribe("o_zhang", app.clock.now(), None)
        .await
        .expect("follower");
    let _h5 = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    app.drain_background().await;
    assert_eq!(
        app.sandbox.remarks().get("o_zhang").map(String::as_str),
        Some("26汽修1班张三")
    );
    let zhang = student(&app, ZHANG_SAN).await;
    let path = format!("/admin/students/{}", zhang.id);
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = console.get(&path).await.csrf();

    let corrected = console
        .post(
            &format!("{path}/correct"),
            &details(&csrf, "张珊", "女", "25"),
        )
        .await;
    assert!(
        corrected.redirects_to(&format!("{path}?done=corrected")),
        "{:?} {}",
        corrected.location,
        corrected.body
    );
    let page = console.get(&format!("{path}?done=corrected")).await;
    for shown in [
        "张珊",
        "女",
        "2025",
        "汽修2班",
        "2025020101",
        "已更正学生信息",
    ] {
        assert!(page.body.contains(shown), "the page shows {shown}");
    }
    let rows = app.audit_rows("student.correct").await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0].entry;
    assert_eq!(row.actor, FINANCE);
    assert_eq!(row.target, format!("student:{}", zhang.id));
    assert_eq!(
        row.before,
        Some(
            json!({"name": "张三", "gender": "男", "grade": 2026, "class_name": "汽修1班", "student_no": null})
        )
    );
    assert_eq!(
        row.after,
        Some(
            json!({"name": "张珊", "gender": "女", "grade": 2025, "class_name": "汽修2班", "student_no": "2025020101"})
        )
    );
    let written = format!("{:?}{:?}", row.before, row.after);
    assert!(!written.contains(ZHANG_SAN) && !written.contains("major"));
    // The page lists the change.
    assert!(page.body.contains("更正信息") && page.body.contains(FINANCE));

    // The bound follower's remark follows the new details.
    app.drain_background().await;
    assert_eq!(
        app.sandbox.remarks().get("o_zhang").map(String::as_str),
        Some("25汽修2班张珊")
    );

    // The same details again: nothing to write.
    let again = console
        .post(
            &format!("{path}/correct"),
            &details(&csrf, "张珊", "女", "2025"),
        )
        .await;
    assert!(again.redirects_to(&format!("{path}?done=unchanged")));
    assert_eq!(app.audit_rows("student.correct").await.len(), 1);

    // Bad details are refused on the page; nothing changes.
    let before = student(&app, ZHANG_SAN).await;
    for (gender, grade, says) in [
        ("女", "1999", "年级应为入学年份"),
        ("女", "二〇一八", "年级应为入学年份"),
        ("未知", "2025", "性别应为"),
    ] {
        let refused = console
            .post(
                &format!("{path}/correct"),
                &details(&csrf, "张三", gender, grade),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{grade} {gender}"
        );
        assert!(refused.body.contains(says), "{}", refused.body);
        assert_eq!(student(&app, ZHANG_SAN).await, before);
    }
    let empty_name = console
        .post(
            &format!("{path}/correct"),
            &details(&csrf, " ", "女", "2025"),
        )
        .await;
    assert!(empty_name.body.contains("请填写姓名"));
    assert_eq!(student(&app, ZHANG_SAN).await, before);
    assert_eq!(app.audit_rows("student.correct").await.len(), 1);
}

/// One PC sign-in attempt, captcha read from the cache.
async fn pc_sign_in(browser: &mut Browser<'_>, id_card: &str, password: &str) -> Page {
    let page = browser.get("/").await;
    let (status, _) = browser.get_bytes("/captcha").await;
    assert_eq!(status, StatusCode::OK);
    let session = browser.session.clone().expect("a session");
    let answer = browser
        .app
        .state
        .cache
        .get(&captcha_key(&session))
        .await
        .expect("cache")
        .expect("captcha answer");
    browser
        .post(
            "/login",
            &[
                ("csrf", &page.csrf()),
                ("id_card", id_card),
                ("password", password),
                ("captcha", &answer),
            ],
        )
        .await
}

#[tokio::test]
async fn a_password_reset_brings_back_the_initial_password_and_clears_the_lockout() {
    let app = seeded_app().await;
    let _chosen = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;
    let mut guesser = Browser::new(&app);
    assert!(
        pc_sign_in(&mut guesser, ZHANG_SAN, "31002X")
            .await
            .body
            .contains("身份证号或密码错误")
    );
    for _ in 0..4 {
        pc_sign_in(&mut guesser, ZHANG_SAN, "wrong-guess").await;
    }
    let locked = pc_sign_in(&mut guesser, ZHANG_SAN, NEW_PASSWORD).await;
    assert!(locked.body.contains("锁定"), "{}", locked.body);

    let zhang = student(&app, ZHANG_SAN).await;
    let path = format!("/admin/students/{}", zhang.id);
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let page = console.get(&path).await;
    assert!(page.body.contains("学生已自行设置"));
    let reset = console
        .post(&format!("{path}/reset-password"), &[("csrf", &page.csrf())])
        .await;
    assert!(
        reset.redirects_to(&format!("{path}?done=password")),
        "{:?}",
        reset.location
    );
    let after = console.get(&format!("{path}?done=password")).await;
    assert!(after.body.contains("已将密码重置为初始密码"));
    assert!(after.body.contains("初始密码（登录后须修改）"));

    let stored = student(&app, ZHANG_SAN).await;
    assert!(stored.password_hash.is_empty() && stored.must_change_password);
    let rows = app.audit_rows("student.reset_password").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, FINANCE);
    assert_eq!(rows[0].entry.target, format!("student:{}", zhang.id));
    let written = format!("{:?}{:?}", rows[0].entry.before, rows[0].entry.after);
    assert!(!written.contains("argon2") && !written.contains(&zhang.password_hash));

    // The lockout is gone and the initial password opens the account, which must
    // then choose a new one (signed_in_pc asserts the way through /password).
    let _again = Browser::signed_in_pc(&app, ZHANG_SAN, "31002X").await;

    // An import's own initial password (李四's 000000) is the one restored.
    let li = student(&app, LI_SI).await;
    let _li = Browser::signed_in_pc(&app, LI_SI, "000000").await;
    let li_path = format!("/admin/students/{}", li.id);
    let csrf = console.get(&li_path).await.csrf();
    console
        .post(&format!("{li_path}/reset-password"), &[("csrf", &csrf)])
        .await;
    let _li_again = Browser::signed_in_pc(&app, LI_SI, "000000").await;
}

#[tokio::test]
async fn unbinding_sends_the_students_h5_session_back_to_binding() {
    let app = seeded_app().await;
    app.state
        .store
        .record_subscribe("o_zhang", app.clock.now(), None)
        .await
        .expect("follower");
    let mut phone = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    assert_eq!(phone.get("/h5/fees").await.status, StatusCode::OK);
    let zhang = student(&app, ZHANG_SAN).await;
    let path = format!("/admin/students/{}", zhang.id);
    let mut console = app.console_as(FINANCE, AdminRole::Finance).await;
    let page = console.get(&path).await;
    assert!(page.body.contains("已绑定") && page.body.contains("/unbind"));

    let unbound = console
        .post(&format!("{path}/unbind"), &[("csrf", &page.csrf())])
        .await;
    assert!(
        unbound.redirects_to(&format!("{path}?done=unbound")),
        "{:?}",
        unbound.location
    );
    let after = console.get(&format!("{path}?done=unbound")).await;
    assert!(after.body.contains("已解除微信绑定") && !after.body.contains("/unbind"));

    let stored = student(&app, ZHANG_SAN).await;
    assert_eq!(stored.wechat_openid, None);
    let follower = app
        .state
        .store
        .find_follower("o_zhang")
        .await
        .expect("query")
        .expect("follower");
    assert_eq!(follower.student_id, None);
    let rows = app.audit_rows("student.unbind").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entry.actor, FINANCE);
    assert_eq!(
        rows[0].entry.before.as_ref().map(|b| &b["wechat_openid"]),
        Some(&json!("o_zhang"))
    );

    // The phone's session is sent back to binding on its next request.
    assert!(phone.get("/h5/fees").await.redirects_to("/h5"));
    assert!(phone.get("/h5").await.redirects_to("/h5/bind"));

    // Unbinding again changes nothing and writes nothing.
    let again = console
        .post(&format!("{path}/unbind"), &[("csrf", &page.csrf())])
        .await;
    assert!(again.redirects_to(&format!("{path}?done=not_bound")));
    assert_eq!(app.audit_rows("student.unbind").await.len(), 1);
}

/// Every change, as (path suffix, form fields besides `csrf`).
const CHANGES: [(&str, &[(&str, &str)]); 3] = [
    (
        "correct",
        &[
            ("name", "张珊"),
            ("gender", "女"),
            ("grade", "2025"),
            ("class_name", "汽修2班"),
            ("major", ""),
            ("student_no", ""),
        ],
    ),
    ("reset-password", &[]),
    ("unbind", &[]),
];

fn with_csrf<'a>(csrf: Option<&'a str>, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    csrf.map(|csrf| ("csrf", csrf))
        .into_iter()
        .chain(fields.iter().copied())
        .collect()
}

#[tokio::test]
async fn viewers_and_forms_without_the_token_change_nothing() {
    let app = seeded_app().await;
    let _phone = Browser::signed_in_h5(&app, "o_zhang", ZHANG_SAN, "31002X").await;
    let before = student(&app, ZHANG_SAN).await;
    assert!(before.wechat_openid.is_some() && !before.password_hash.is_empty());
    let path = format!("/admin/students/{}", before.id);

    let mut viewer = app.console_as(VIEWER, AdminRole::Viewer).await;
    let viewer_csrf = viewer.console_csrf().await;
    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let finance_csrf = finance.console_csrf().await;
    for (action, fields) in CHANGES {
        let url = format!("{path}/{action}");
        let by_viewer = viewer
            .post(&url, &with_csrf(Some(&viewer_csrf), fields))
            .await;
        assert_eq!(by_viewer.status, StatusCode::FORBIDDEN, "viewer {action}");
        let without = finance.post(&url, &with_csrf(None, fields)).await;
        assert_eq!(without.status, StatusCode::FORBIDDEN, "no token {action}");
        let wrong = finance.post(&url, &with_csrf(Some("forged"), fields)).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "wrong token {action}");
        // The viewer's token is the viewer's session's, not the finance admin's.
        let crossed = finance
            .post(&url, &with_csrf(Some(&viewer_csrf), fields))
            .await;
        assert_eq!(
            crossed.status,
            StatusCode::FORBIDDEN,
            "crossed token {action}"
        );
    }
    assert_eq!(student(&app, ZHANG_SAN).await, before);
    for action in [
        "student.correct",
        "student.reset_password",
        "student.unbind",
    ] {
        assert!(app.audit_rows(action).await.is_empty(), "{action}");
    }
    // The same form with the finance admin's own token goes through.
    let (action, fields) = CHANGES[0];
    let done = finance
        .post(
            &format!("{path}/{action}"),
            &with_csrf(Some(&finance_csrf), fields),
        )
        .await;
    assert!(
        done.redirects_to(&format!("{path}?done=corrected")),
        "{:?}",
        done.location
    );
    assert_eq!(app.audit_rows("student.correct").await.len(), 1);
}

#[tokio::test]
async fn an_unknown_student_is_not_found_and_nothing_is_written() {
    let app = seeded_app().await;
    let mut finance = app.console_as(FINANCE, AdminRole::Finance).await;
    let csrf = finance.console_csrf().await;
    assert_eq!(
        finance.get("/admin/students/424242").await.status,
        StatusCode::NOT_FOUND
    );
    for (action, fields) in CHANGES {
        let page = finance
            .post(
                &format!("/admin/students/424242/{action}"),
                &with_csrf(Some(&csrf), fields),
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert!(app.audit_rows("student.").await.is_empty());
}
