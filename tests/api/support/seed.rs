//! Students and fees for the flows, imported the way the finance office imports them.

use campus_pay::import::fees::parse_fees;
use campus_pay::import::read::read_table_bytes;
use campus_pay::import::students::parse_students;

use super::TestApp;

/// 张三, 2026级 汽修1班, initial password = last six of the ID (`31002X`).
pub const ZHANG_SAN: &str = "11010519491231002X";
/// 李四, 2025级 电子商务2班, initial password given by the import: `000000`.
pub const LI_SI: &str = "620622200703150025";
/// 王五, owes nothing.
pub const WANG_WU: &str = "11010119900307803X";

pub const STUDENTS_CSV: &str = "身份证号,姓名,性别,年级,班级,专业,初始密码
11010519491231002x,张三,男,2026,汽修1班,汽车检测与维修技术,
620622200703150025,李四,女,25,电子商务2班,电子商务,000000
11010119900307803X,王五,男,2026,汽修1班,汽车检测与维修技术,
";

pub const FEES_CSV: &str = "身份证号,学年,项目,金额
11010519491231002X,2026-2027,学费,4500
11010519491231002X,2026-2027,住宿费,1200.00
11010519491231002X,2025-2026,教材费,350.5
620622200703150025,2026-2027,学费,5000
";

impl TestApp {
    pub async fn seed_students_and_fees(&self) {
        let now = self.clock.now();
        let students = parse_students(
            &read_table_bytes("students.csv", STUDENTS_CSV.as_bytes()).expect("reads"),
        )
        .expect("valid students");
        self.state
            .store
            .import_students(&students, now, true)
            .await
            .expect("students import");
        let fees = parse_fees(&read_table_bytes("fees.csv", FEES_CSV.as_bytes()).expect("reads"))
            .expect("valid fees");
        self.state
            .store
            .import_fees(&fees, now, true)
            .await
            .expect("fees import");
    }
}

/// An app whose public URL is its own address (so the payment sandboxes' notifications
/// reach it), with the demo school imported.
pub async fn paying_app() -> TestApp {
    let app = super::spawn_app_with(super::Options {
        public_url_is_self: true,
        ..super::Options::default()
    })
    .await;
    app.seed_students_and_fees().await;
    app
}

/// 张三's items' statuses, in the order imported.
pub async fn item_statuses(app: &TestApp) -> Vec<campus_pay::store::FeeItemStatus> {
    let student = app
        .state
        .store
        .find_student_by_id_card(ZHANG_SAN)
        .await
        .expect("query")
        .expect("exists");
    let items = app
        .state
        .store
        .fee_items_of(student.id)
        .await
        .expect("items");
    items.iter().map(|item| item.status).collect()
}
