//! `campus-pay import students|fees FILE` through the real binary, against a fresh
//! database (SQLite, or a PostgreSQL schema with `CAMPUSPAY_TEST_DATABASE_URL`).
//!
//! Fixtures in tests/fixtures: `students_utf8_bom.csv` (three students, UTF-8 with a
//! BOM), `fees_gbk.csv` (their five fee items, GBK as Excel saves it) and
//! `students.xlsx` (three other students); `make_fixtures.py` regenerates the binary
//! ones. Files with bad rows are written by the tests themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use campus_pay::domain::password::verify_password;
use campus_pay::store::FeeItemStatus;
use campus_pay::store::testing::{TestStore, fresh_store};

/// The students of `students_utf8_bom.csv`, in file order.
const ZHANG_SAN: &str = "620602200703150011";
const LI_SI: &str = "620602200704160027";
const WANG_WU: &str = "62060220071028021X";
/// The students of `students.xlsx`.
const ZHAO_LIU: &str = "620602200705170032";
const SUN_BA: &str = "620602200807190050";
/// Valid, but in no fixture.
const NOBODY: &str = "11010519491231002X";
const YEAR: &str = "2026-2027";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A scratch file with `contents`, removed with its directory on drop.
struct Scratch {
    directory: PathBuf,
    file: PathBuf,
}

impl Scratch {
    fn new(name: &str, contents: &[u8]) -> Scratch {
        let directory =
            std::env::temp_dir().join(format!("cp-import-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).unwrap();
        let file = directory.join(name);
        std::fs::write(&file, contents).unwrap();
        Scratch { directory, file }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.directory).ok();
    }
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn everything(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `campus-pay import WHAT FILE [--dry-run]` on the test store's database.
async fn import(store: &TestStore, what: &str, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "import".to_owned(),
        what.to_owned(),
        file.display().to_string(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let url = store.database_url();
    let output: Output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_campus-pay"));
        command.args(&args).current_dir(env!("CARGO_MANIFEST_DIR"));
        // Only what the test gives: the developer's own CAMPUSPAY_* must not leak in.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAMPUSPAY_")) {
            command.env_remove(key);
        }
        command
            .env("RUST_LOG", "error")
            .env("CAMPUSPAY_DATABASE_URL", url);
        command.output().expect("the binary runs")
    })
    .await
    .unwrap();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_imported(run: &Run, summary: &str) {
    assert!(run.success, "{}", run.everything());
    assert!(
        run.stdout.contains(summary),
        "expected {summary:?} in {}",
        run.everything()
    );
}

/// The run failed naming `bad_lines` bad rows in its one error line, and listed
/// exactly `lines` (each with its reason fragment) on stdout.
fn assert_rejected(run: &Run, bad_lines: usize, lines: &[(usize, &str)]) {
    assert!(!run.success, "{}", run.everything());
    let error = run.stderr.trim();
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains(&format!("导入失败：{bad_lines} 行有问题，未导入任何数据")),
        "{error}"
    );
    let listed: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(listed.len(), lines.len(), "{}", run.stdout);
    for (line, reason) in lines {
        let prefix = format!("第{line}行：");
        assert!(
            listed
                .iter()
                .any(|listed| listed.starts_with(&prefix) && listed.contains(reason)),
            "expected {prefix}…{reason}… in\n{}",
            run.stdout
        );
    }
}

async fn store_with_csv_students() -> TestStore {
    let store = fresh_store().await;
    let run = import(&store, "students", &fixture("students_utf8_bom.csv"), &[]).await;
    assert_imported(&run, "新增 3 行，更新 0 行，未变 0 行");
    store
}

#[tokio::test]
async fn students_from_a_utf8_csv_with_bom_then_again_changes_nothing() {
    let store = store_with_csv_students().await;

    let zhang = store.student_for_tests(ZHANG_SAN).await.unwrap();
    assert_eq!(zhang.name, "张三");
    assert_eq!(zhang.grade, 2026);
    assert_eq!(zhang.class_name, "汽修1班");
    assert_eq!(zhang.student_no.as_deref(), Some("2026001"));
    assert_eq!(zhang.password_hash, "", "still on the initial password");
    assert!(zhang.must_change_password);
    let initial = zhang.initial_password_hash.expect("the file gave 000000");
    assert!(verify_password("000000", &initial));
    let li = store.student_for_tests(LI_SI).await.unwrap();
    assert_eq!(li.grade, 2026, "26 is 2026");
    assert_eq!(li.major, None);
    assert_eq!(li.initial_password_hash, None, "the last six of the ID");
    let wang = store.student_for_tests(WANG_WU).await.expect("x read as X");
    assert_eq!(wang.class_name, "汽车检测与维修技术1班");

    let again = import(&store, "students", &fixture("students_utf8_bom.csv"), &[]).await;
    assert_imported(&again, "新增 0 行，更新 0 行，未变 3 行");
    assert_eq!(store.count_students_for_tests().await, 3);
}

#[tokio::test]
async fn fees_from_a_gbk_csv_then_again_changes_nothing() {
    let store = store_with_csv_students().await;

    let run = import(&store, "fees", &fixture("fees_gbk.csv"), &[]).await;
    assert_imported(&run, "新增 5 行，更新 0 行，未变 0 行");
    assert_eq!(
        store.fee_item_for_tests(ZHANG_SAN, YEAR, "住宿费").await,
        Some((120_050, FeeItemStatus::Unpaid))
    );
    assert_eq!(
        store.fee_item_for_tests(LI_SI, YEAR, "教材费").await,
        Some((35_680, FeeItemStatus::Unpaid))
    );
    assert_eq!(
        store.fee_item_for_tests(WANG_WU, YEAR, "学费").await,
        Some((550_000, FeeItemStatus::Unpaid))
    );

    let again = import(&store, "fees", &fixture("fees_gbk.csv"), &[]).await;
    assert_imported(&again, "新增 0 行，更新 0 行，未变 5 行");
    assert_eq!(store.count_fee_items_for_tests().await, 5);
}

#[tokio::test]
async fn students_from_xlsx_then_again_changes_nothing() {
    let store = fresh_store().await;

    let run = import(&store, "students", &fixture("students.xlsx"), &[]).await;
    assert_imported(&run, "新增 3 行，更新 0 行，未变 0 行");
    let zhao = store.student_for_tests(ZHAO_LIU).await.unwrap();
    assert_eq!(zhao.grade, 2026, "a number in the sheet");
    assert_eq!(zhao.student_no.as_deref(), Some("2026101"), "a number too");
    assert_eq!(zhao.class_name, "汽修2班");
    let sun = store.student_for_tests(SUN_BA).await.unwrap();
    assert_eq!(sun.gender, campus_pay::store::Gender::Male, "M");

    let again = import(&store, "students", &fixture("students.xlsx"), &[]).await;
    assert_imported(&again, "新增 0 行，更新 0 行，未变 3 行");
}

#[tokio::test]
async fn a_changed_student_is_updated() {
    let store = store_with_csv_students().await;
    let file = Scratch::new(
        "changed.csv",
        format!("身份证号,姓名,性别,年级,班级\n{LI_SI},李四,女,2026,会计3班\n").as_bytes(),
    );

    let run = import(&store, "students", &file.file, &[]).await;

    assert_imported(&run, "新增 0 行，更新 1 行，未变 0 行");
    let li = store.student_for_tests(LI_SI).await.unwrap();
    assert_eq!(li.class_name, "会计3班");
    assert_eq!(
        li.student_no.as_deref(),
        Some("2026002"),
        "not in the file: kept"
    );
}

#[tokio::test]
async fn every_bad_student_row_is_listed_and_none_is_imported() {
    let store = fresh_store().await;
    let bad_check_digit = "620602200703150012";
    let file = Scratch::new(
        "students.csv",
        format!(
            "身份证号,姓名,性别,年级,班级\n\
             {ZHANG_SAN},张三,男,2026,汽修1班\n\
             {bad_check_digit},李四,女,2026,汽修1班\n\
             {WANG_WU},王五,未知,2026,汽修1班\n\
             {ZHANG_SAN},张三,男,2026,汽修1班\n\
             {ZHAO_LIU},赵六,男,1999,汽修1班\n"
        )
        .as_bytes(),
    );

    let run = import(&store, "students", &file.file, &[]).await;

    assert_rejected(
        &run,
        4,
        &[
            (3, "身份证号校验位不正确"),
            (4, "性别"),
            (5, "与第2行重复"),
            (6, "年级"),
        ],
    );
    assert_eq!(store.count_students_for_tests().await, 0);
    for id_card in [ZHANG_SAN, bad_check_digit, WANG_WU, ZHAO_LIU] {
        assert!(!run.everything().contains(id_card), "{}", run.everything());
    }
}

#[tokio::test]
async fn every_bad_fee_row_is_listed_and_none_is_imported() {
    let store = store_with_csv_students().await;
    let text = format!(
        "身份证号,学年,项目,金额\r\n\
         {ZHANG_SAN},2026-2027,学费,5500\r\n\
         {NOBODY},2026-2027,学费,5500\r\n\
         {LI_SI},2026-2027,学费,4800.505\r\n\
         {LI_SI},2026-2028,住宿费,1200\r\n\
         {ZHANG_SAN},2026-2027,学费,5500\r\n\
         {WANG_WU},2026-2027,学费,5500\r\n"
    );
    let (gbk, _, _) = encoding_rs::GBK.encode(&text);
    let file = Scratch::new("fees.csv", &gbk);

    let run = import(&store, "fees", &file.file, &[]).await;

    assert_rejected(
        &run,
        4,
        &[
            (3, "没有这个学生（身份证号 110105********002X）"),
            (4, "金额最多两位小数"),
            (5, "学年"),
            (6, "与第2行重复"),
        ],
    );
    assert_eq!(store.count_fee_items_for_tests().await, 0);
    assert!(!run.everything().contains(NOBODY));
}

#[tokio::test]
async fn a_missing_column_is_reported_at_line_one() {
    let store = fresh_store().await;
    let file = Scratch::new(
        "students.csv",
        format!("身份证号,姓名,年级,班级\n{ZHANG_SAN},张三,2026,汽修1班\n").as_bytes(),
    );

    let run = import(&store, "students", &file.file, &[]).await;

    assert_rejected(&run, 1, &[(1, "缺少必需的列：性别（gender）")]);
    assert_eq!(store.count_students_for_tests().await, 0);
}

#[tokio::test]
async fn changing_a_paid_item_is_refused_for_that_row() {
    let store = store_with_csv_students().await;
    assert!(
        import(&store, "fees", &fixture("fees_gbk.csv"), &[])
            .await
            .success
    );
    store
        .set_fee_item_status_for_tests(ZHANG_SAN, YEAR, "学费", FeeItemStatus::Paid)
        .await;
    let changes = Scratch::new(
        "fees.csv",
        format!(
            "身份证号,学年,项目,金额\n\
             {ZHANG_SAN},2026-2027,学费,6000\n\
             {LI_SI},2026-2027,学费,5000\n"
        )
        .as_bytes(),
    );

    let run = import(&store, "fees", &changes.file, &[]).await;

    assert_rejected(&run, 1, &[(2, "该项目已缴费，不能修改")]);
    assert_eq!(
        store.fee_item_for_tests(ZHANG_SAN, YEAR, "学费").await,
        Some((550_000, FeeItemStatus::Paid))
    );
    assert_eq!(
        store.fee_item_for_tests(LI_SI, YEAR, "学费").await,
        Some((480_000, FeeItemStatus::Unpaid)),
        "the good row was not applied either"
    );

    // The paid item at its stored amount is fine; the unpaid one may change.
    let fine = Scratch::new(
        "fees.csv",
        format!(
            "身份证号,学年,项目,金额\n\
             {ZHANG_SAN},2026-2027,学费,5500.00\n\
             {LI_SI},2026-2027,学费,5000\n"
        )
        .as_bytes(),
    );
    let run = import(&store, "fees", &fine.file, &[]).await;
    assert_imported(&run, "新增 0 行，更新 1 行，未变 1 行");
    assert_eq!(
        store.fee_item_for_tests(LI_SI, YEAR, "学费").await,
        Some((500_000, FeeItemStatus::Unpaid))
    );
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let store = fresh_store().await;

    let run = import(
        &store,
        "students",
        &fixture("students_utf8_bom.csv"),
        &["--dry-run"],
    )
    .await;

    assert_imported(&run, "新增 3 行，更新 0 行，未变 0 行");
    assert!(run.stdout.contains("预览"), "{}", run.stdout);
    assert_eq!(store.count_students_for_tests().await, 0);
}

#[tokio::test]
async fn an_unsupported_or_missing_file_is_one_line() {
    let store = fresh_store().await;
    let old_excel = Scratch::new("students.xls", b"\xD0\xCF\x11\xE0");

    let run = import(&store, "students", &old_excel.file, &[]).await;
    assert!(!run.success);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains(".xlsx"), "{}", run.stderr);

    let missing = fixture("no-such-file.csv");
    let run = import(&store, "fees", &missing, &[]).await;
    assert!(!run.success);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("no-such-file.csv"), "{}", run.stderr);
}
