//! Imports against a real database: SQLite, and PostgreSQL when
//! `CAMPUSPAY_TEST_DATABASE_URL` is set.

use chrono::TimeZone;
use sea_orm::{ActiveModelTrait, EntityTrait};

use super::*;
use crate::domain::id_card::{IdCardNumber, check_character};
use crate::domain::money::Fen;
use crate::domain::password::verify_password;
use crate::store::testing::fresh_store;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 8, 0, 0).unwrap()
}

/// A valid ID number, distinct for each `n` below 10^7.
fn id_card(n: u32) -> IdCardNumber {
    let body = format!("62{:04}20070315{:03}", n / 1000, n % 1000);
    let check = check_character(body.as_bytes()).unwrap();
    IdCardNumber::parse(&format!("{body}{}", char::from(check))).unwrap()
}

fn student(line: usize, n: u32, name: &str) -> StudentRow {
    StudentRow {
        line,
        id_card: id_card(n),
        name: name.to_owned(),
        gender: Gender::Male,
        grade: 2026,
        class_name: "汽修1班".to_owned(),
        major: Some("汽车检测与维修技术".to_owned()),
        student_no: None,
        initial_password: None,
    }
}

fn fee(line: usize, n: u32, item: &str, yuan: i64) -> FeeRow {
    FeeRow {
        line,
        id_card: id_card(n),
        academic_year: "2026-2027".to_owned(),
        item: item.to_owned(),
        amount: Fen(yuan * 100),
    }
}

fn summary(added: usize, updated: usize, unchanged: usize) -> ImportSummary {
    ImportSummary {
        added,
        updated,
        unchanged,
    }
}

fn rejected(result: Result<ImportSummary, ImportFailure>) -> Vec<RowProblem> {
    match result {
        Err(ImportFailure::Rejected(rejected)) => rejected.problems,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn new_students_start_on_the_initial_password() {
    let store = fresh_store().await;
    let mut with_password = student(3, 2, "李四");
    with_password.initial_password = Some("000000".to_owned());
    let mut also_000000 = student(4, 3, "王五");
    also_000000.initial_password = Some("000000".to_owned());
    let rows = [student(2, 1, "张三"), with_password, also_000000];

    let done = store.import_students(&rows, now(), true).await.unwrap();

    assert_eq!(done, summary(3, 0, 0));
    let plain = store.student_for_tests(id_card(1).as_str()).await.unwrap();
    assert_eq!(plain.name, "张三");
    assert_eq!(plain.gender, StoredGender::Male);
    assert_eq!(plain.grade, 2026);
    assert_eq!(plain.class_name, "汽修1班");
    assert_eq!(plain.major.as_deref(), Some("汽车检测与维修技术"));
    assert_eq!(plain.password_hash, "");
    assert_eq!(plain.initial_password_hash, None);
    assert!(plain.must_change_password);

    let first = store.student_for_tests(id_card(2).as_str()).await.unwrap();
    let second = store.student_for_tests(id_card(3).as_str()).await.unwrap();
    let hash = first.initial_password_hash.unwrap();
    assert!(verify_password("000000", &hash));
    assert_eq!(
        second.initial_password_hash,
        Some(hash),
        "hashed once, reused"
    );
    assert_eq!(first.password_hash, "");
}

#[tokio::test]
async fn re_importing_the_same_students_changes_nothing() {
    let store = fresh_store().await;
    let rows = [student(2, 1, "张三"), student(3, 2, "李四")];
    store.import_students(&rows, now(), true).await.unwrap();

    let again = store.import_students(&rows, now(), true).await.unwrap();

    assert_eq!(again, summary(0, 0, 2));
    assert_eq!(store.count_students_for_tests().await, 2);
}

#[tokio::test]
async fn a_changed_student_is_updated_and_keeps_their_password() {
    let store = fresh_store().await;
    store
        .import_students(&[student(2, 1, "张三")], now(), true)
        .await
        .unwrap();
    let stored = store.student_for_tests(id_card(1).as_str()).await.unwrap();
    // The student has chosen a password since.
    students::ActiveModel {
        id: sea_orm::ActiveValue::Unchanged(stored.id),
        password_hash: Set("$argon2id$chosen".to_owned()),
        must_change_password: Set(false),
        ..Default::default()
    }
    .update(&store.db)
    .await
    .unwrap();

    let mut changed = student(2, 1, "张三丰");
    changed.gender = Gender::Female;
    changed.grade = 2025;
    changed.class_name = "汽修2班".to_owned();
    changed.major = None; // not given: kept
    changed.student_no = Some("2025001".to_owned());
    changed.initial_password = Some("000000".to_owned()); // not for a known student
    let later = now() + chrono::Duration::days(1);
    let done = store
        .import_students(&[changed], later, true)
        .await
        .unwrap();

    assert_eq!(done, summary(0, 1, 0));
    let after = store.student_for_tests(id_card(1).as_str()).await.unwrap();
    assert_eq!(after.name, "张三丰");
    assert_eq!(after.gender, StoredGender::Female);
    assert_eq!(after.grade, 2025);
    assert_eq!(after.class_name, "汽修2班");
    assert_eq!(after.major.as_deref(), Some("汽车检测与维修技术"));
    assert_eq!(after.student_no.as_deref(), Some("2025001"));
    assert_eq!(after.password_hash, "$argon2id$chosen");
    assert_eq!(after.initial_password_hash, None);
    assert!(!after.must_change_password);
    let row = students::Entity::find_by_id(stored.id)
        .one(&store.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.updated_at, later);
    assert_eq!(row.created_at, now());
}

#[tokio::test]
async fn a_dry_run_reports_the_same_and_writes_nothing() {
    let store = fresh_store().await;
    store
        .import_students(&[student(2, 1, "张三")], now(), true)
        .await
        .unwrap();
    let rows = [
        student(2, 1, "张三丰"),
        student(3, 2, "李四"),
        student(4, 3, "王五"),
    ];

    let preview = store.import_students(&rows, now(), false).await.unwrap();

    assert_eq!(preview, summary(2, 1, 0));
    assert_eq!(store.count_students_for_tests().await, 1);
    let kept = store.student_for_tests(id_card(1).as_str()).await.unwrap();
    assert_eq!(kept.name, "张三");
    assert_eq!(
        store.import_students(&rows, now(), true).await.unwrap(),
        preview
    );
}

#[tokio::test]
async fn duplicate_rows_are_refused_even_without_the_parser() {
    let store = fresh_store().await;
    let problems = rejected(
        store
            .import_students(&[student(2, 1, "张三"), student(5, 1, "张三")], now(), true)
            .await,
    );
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 5);
    assert!(problems[0].reason.contains("第2行"), "{problems:?}");
    assert_eq!(store.count_students_for_tests().await, 0);
}

async fn store_with_students(count: u32) -> crate::store::testing::TestStore {
    let store = fresh_store().await;
    let rows: Vec<_> = (1..=count)
        .map(|n| student(n as usize + 1, n, &format!("学生{n}")))
        .collect();
    store.import_students(&rows, now(), true).await.unwrap();
    store
}

#[tokio::test]
async fn fee_items_are_added_then_unchanged_on_re_import() {
    let store = store_with_students(2).await;
    let rows = [
        fee(2, 1, "学费", 5500),
        fee(3, 1, "住宿费", 1200),
        fee(4, 2, "学费", 4800),
    ];

    assert_eq!(
        store.import_fees(&rows, now(), true).await.unwrap(),
        summary(3, 0, 0)
    );
    assert_eq!(
        store
            .fee_item_for_tests(id_card(1).as_str(), "2026-2027", "住宿费")
            .await,
        Some((120_000, FeeItemStatus::Unpaid))
    );
    assert_eq!(
        store.import_fees(&rows, now(), true).await.unwrap(),
        summary(0, 0, 3)
    );
    assert_eq!(store.count_fee_items_for_tests().await, 3);
}

#[tokio::test]
async fn an_unknown_student_is_a_bad_row_and_nothing_is_imported() {
    let store = store_with_students(1).await;
    let rows = [
        fee(2, 1, "学费", 5500),
        fee(3, 9, "学费", 5500),
        fee(4, 8, "学费", 1),
    ];

    let problems = rejected(store.import_fees(&rows, now(), true).await);

    let lines: Vec<_> = problems.iter().map(|problem| problem.line).collect();
    assert_eq!(lines, [3, 4]);
    assert_eq!(
        problems[0].reason,
        format!("没有这个学生（身份证号 {}）", id_card(9).masked())
    );
    assert!(!problems[0].reason.contains(id_card(9).as_str()));
    assert_eq!(store.count_fee_items_for_tests().await, 0, "all or nothing");
}

#[tokio::test]
async fn an_item_paid_or_in_an_order_keeps_its_amount() {
    let store = store_with_students(1).await;
    let first = [
        fee(2, 1, "学费", 5500),
        fee(3, 1, "住宿费", 1200),
        fee(4, 1, "教材费", 300),
        fee(5, 1, "体检费", 50),
        fee(6, 1, "保险费", 100),
    ];
    store.import_fees(&first, now(), true).await.unwrap();
    let key = id_card(1);
    for (item, status) in [
        ("学费", FeeItemStatus::Paid),
        ("住宿费", FeeItemStatus::InOrder),
        ("教材费", FeeItemStatus::Waived),
        ("体检费", FeeItemStatus::Deferred),
    ] {
        store
            .set_fee_item_status_for_tests(key.as_str(), "2026-2027", item, status)
            .await;
    }
    let changed = [
        fee(2, 1, "学费", 6000),
        fee(3, 1, "住宿费", 1300),
        fee(4, 1, "教材费", 350),
        fee(5, 1, "体检费", 60),
        fee(6, 1, "保险费", 120),
    ];

    let problems = rejected(store.import_fees(&changed, now(), true).await);

    let reasons: Vec<_> = problems
        .iter()
        .map(|problem| (problem.line, problem.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "该项目已缴费，不能修改"),
            (3, "该项目正在支付中，不能修改"),
            (4, "该项目已减免，不能修改"),
        ]
    );
    assert_eq!(
        store
            .fee_item_for_tests(key.as_str(), "2026-2027", "保险费")
            .await,
        Some((10_000, FeeItemStatus::Unpaid)),
        "the good rows were not applied either"
    );

    // The same amounts are fine, and a deferred or unpaid item may change.
    let fine = [
        fee(2, 1, "学费", 5500),
        fee(3, 1, "住宿费", 1200),
        fee(4, 1, "教材费", 300),
        fee(5, 1, "体检费", 60),
        fee(6, 1, "保险费", 120),
    ];
    assert_eq!(
        store.import_fees(&fine, now(), true).await.unwrap(),
        summary(0, 2, 3)
    );
    assert_eq!(
        store
            .fee_item_for_tests(key.as_str(), "2026-2027", "体检费")
            .await,
        Some((6_000, FeeItemStatus::Deferred))
    );
    assert_eq!(
        store
            .fee_item_for_tests(key.as_str(), "2026-2027", "学费")
            .await,
        Some((550_000, FeeItemStatus::Paid))
    );
}

#[tokio::test]
async fn a_fee_dry_run_writes_nothing() {
    let store = store_with_students(1).await;
    let rows = [fee(2, 1, "学费", 5500)];
    assert_eq!(
        store.import_fees(&rows, now(), false).await.unwrap(),
        summary(1, 0, 0)
    );
    assert_eq!(store.count_fee_items_for_tests().await, 0);
}

#[tokio::test]
async fn an_empty_import_does_nothing() {
    let store = fresh_store().await;
    assert_eq!(
        store.import_students(&[], now(), true).await.unwrap(),
        summary(0, 0, 0)
    );
    assert_eq!(
        store.import_fees(&[], now(), true).await.unwrap(),
        summary(0, 0, 0)
    );
}

/// More rows than one chunk of keys or inserts, with one shared initial password.
#[tokio::test]
async fn a_large_import_goes_in_chunks() {
    let store = fresh_store().await;
    let count = 2 * CHUNK as u32 + 37;
    let students: Vec<_> = (1..=count)
        .map(|n| {
            let mut row = student(n as usize + 1, n, &format!("学生{n}"));
            row.initial_password = Some("000000".to_owned());
            row
        })
        .collect();
    let started = std::time::Instant::now();
    assert_eq!(
        store.import_students(&students, now(), true).await.unwrap(),
        summary(count as usize, 0, 0)
    );
    let fees: Vec<_> = (1..=count)
        .flat_map(|n| {
            let line = 2 * n as usize;
            [fee(line, n, "学费", 5500), fee(line + 1, n, "住宿费", 1200)]
        })
        .collect();
    assert_eq!(
        store.import_fees(&fees, now(), true).await.unwrap(),
        summary(2 * count as usize, 0, 0)
    );
    assert_eq!(
        store.import_fees(&fees, now(), true).await.unwrap(),
        summary(0, 0, 2 * count as usize)
    );
    assert_eq!(store.count_students_for_tests().await, u64::from(count));
    assert_eq!(
        store.count_fee_items_for_tests().await,
        2 * u64::from(count)
    );
    eprintln!(
        "{count} students and {} fee items (twice) in {:?}",
        2 * count,
        started.elapsed()
    );
}
