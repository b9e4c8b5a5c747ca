//! The console's fees pages: imports (upload, preview with every bad row, apply),
//! the item listing, and one item's page with the office's waive / defer / restore.

use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};
use url::form_urlencoded;

use super::{beijing, csrf_field, flash, pager, yuan};
use crate::domain::fee_item::{MAX_REASON_CHARS, deferral_date};
use crate::domain::order::beijing_offset;
use crate::import::{ImportSummary, RowProblem};
use crate::store::{FeeItemDetail, FeeItemListRow, FeeItemStatus};

/// The statuses the listing filters by: (query value, label).
pub const STATUS_CHOICES: [(&str, &str); 5] = [
    ("unpaid", "待缴"),
    ("in_order", "支付中"),
    ("paid", "已缴"),
    ("waived", "已减免"),
    ("deferred", "缓缴"),
];

/// The listing's filters as typed (echoed back into the form and the pager).
pub struct ItemFilter<'a> {
    pub year: &'a str,
    pub item: &'a str,
    pub status: &'a str,
}

/// The academic years and item names there are.
pub struct Choices<'a> {
    pub years: &'a [String],
    pub items: &'a [String],
}

/// One page of the listing.
pub struct ItemPage<'a> {
    pub rows: &'a [FeeItemListRow],
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// `/admin/fees`: the upload form with the file formats, then the item listing.
pub fn overview(
    csrf: &str,
    can_change: bool,
    notice: Option<&str>,
    filter: &ItemFilter<'_>,
    choices: &Choices<'_>,
    listing: &ItemPage<'_>,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        (flash(None, notice))
        h2 { "导入学生名单或收费项目" }
        (upload_form(csrf, can_change, None))
        h2 { "收费项目" }
        (item_filters(filter, choices))
        (item_table(listing.rows, now))
        (pager(listing.page, listing.per_page, listing.total, |page| listing_link(filter, page)))
    }
}

/// The upload form and the note on file formats; `error` says why the last upload
/// was refused.
pub fn upload_form(csrf: &str, can_change: bool, error: Option<&str>) -> Markup {
    html! {
        div class="panel" id="upload" {
            (flash(error, None))
            @if can_change {
                form method="post" action="/admin/fees/upload" enctype="multipart/form-data" class="actions" {
                    (csrf_field(csrf))
                    label {
                        "导入类型"
                        select name="kind" required {
                            option value="students" { "学生名单" }
                            option value="fees" { "收费项目" }
                        }
                    }
                    label { "文件（.csv 或 .xlsx，10MB 以内）" input type="file" name="file" accept=".csv,.xlsx" required; }
                    button type="submit" class="btn" { "上传并预览" }
                }
            } @else {
                p class="fees-note" { "只读账号不能导入。" }
            }
            (format_note())
        }
    }
}

fn format_note() -> Markup {
    html! {
        div class="fees-format" {
            p { "第一行为表头，中文或英文列名均可；CSV 可为 UTF-8（含或不含 BOM）或 Excel 另存的 GBK 编码，Excel 请用 .xlsx（第一个工作表）。上传后先预览，确认无误再导入；有任何问题行时整个文件不导入。" }
            table class="grid" {
                thead { tr { th { "类型" } th { "必填列" } th { "可选列" } th { "说明" } } }
                tbody {
                    tr {
                        td { "学生名单" }
                        td { "身份证号/id_card，姓名/name，性别/gender（男/女），年级/grade（如 2018 或 18），班级/class（如 汽修1班）" }
                        td { "专业/major，学号/student_no，初始密码/initial_password" }
                        td { "按身份证号识别：重复导入会更新，不会重复。初始密码默认为身份证号后六位。" }
                    }
                    tr {
                        td { "收费项目" }
                        td { "身份证号/id_card，学年/academic_year（如 2026-2027），项目/item（如 学费），金额/amount（元，最多两位小数）" }
                        td { "—" }
                        td { "按（身份证号、学年、项目）识别；学生须已导入。已缴费或支付中的项目不能修改金额。" }
                    }
                }
            }
        }
    }
}

fn item_filters(filter: &ItemFilter<'_>, choices: &Choices<'_>) -> Markup {
    html! {
        form method="get" action="/admin/fees" class="filters" {
            label {
                "学年"
                select name="year" {
                    option value="" { "全部" }
                    @for year in choices.years {
                        option value=(year) selected[year == filter.year] { (year) }
                    }
                }
            }
            label {
                "项目"
                select name="item" {
                    option value="" { "全部" }
                    @for item in choices.items {
                        option value=(item) selected[item == filter.item] { (item) }
                    }
                }
            }
            label {
                "状态"
                select name="status" {
                    option value="" { "全部" }
                    @for (value, label) in STATUS_CHOICES {
                        option value=(value) selected[value == filter.status] { (label) }
                    }
                }
            }
            button type="submit" class="btn small" { "筛选" }
        }
    }
}

fn listing_link(filter: &ItemFilter<'_>, page: u64) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("year", filter.year)
        .append_pair("item", filter.item)
        .append_pair("status", filter.status)
        .append_pair("page", &page.to_string())
        .finish();
    format!("/admin/fees?{query}")
}

fn item_table(rows: &[FeeItemListRow], now: DateTime<Utc>) -> Markup {
    html! {
        table class="grid" id="fee-items" {
            thead { tr {
                th { "学生" } th { "身份证号" } th { "班级" } th { "学年" } th { "项目" }
                th class="num" { "金额（元）" } th { "状态" } th {}
            } }
            tbody {
                @for row in rows {
                    tr {
                        td { a href=(format!("/admin/students/{}", row.student_id)) { (row.student_name) } }
                        td class="nowrap" { (row.id_card_masked) }
                        td { (row.class_name) }
                        td class="nowrap" { (row.academic_year) }
                        td { (row.item) }
                        td class="num" { (yuan(row.amount_fen)) }
                        td { (status_badge(row.status, row.deferred_until, now)) }
                        td { a href=(item_path(row.id)) { "查看" } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="8" class="empty" { "没有收费项目" } } }
            }
        }
    }
}

pub fn item_path(id: i64) -> String {
    format!("/admin/fees/items/{id}")
}

/// An item's status as the office reads it; a lapsed deferral is owed again.
fn status_badge(
    status: FeeItemStatus,
    deferred_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Markup {
    let (class, text) = match (status, deferred_until) {
        (FeeItemStatus::Unpaid, _) => ("badge warn", "待缴".to_owned()),
        (FeeItemStatus::InOrder, _) => ("badge", "支付中".to_owned()),
        (FeeItemStatus::Paid, _) => ("badge ok", "已缴".to_owned()),
        (FeeItemStatus::Waived, _) => ("badge ok", "已减免".to_owned()),
        (FeeItemStatus::Deferred, Some(until)) if until < now => (
            "badge warn",
            format!("缓缴已到期（{}），待缴", deferral_date(until)),
        ),
        (FeeItemStatus::Deferred, Some(until)) => {
            ("badge", format!("缓缴至 {}", deferral_date(until)))
        }
        (FeeItemStatus::Deferred, None) => ("badge", "缓缴".to_owned()),
    };
    html! { span class=(class) { (text) } }
}

/// What a dry run of an uploaded file found.
pub enum PreviewOutcome<'a> {
    /// No bad row: what applying would do.
    Ready(ImportSummary),
    /// Every bad row, in line order.
    Bad(&'a [RowProblem]),
}

/// The file a preview is about.
pub struct PreviewFile<'a> {
    pub kind_label: &'a str,
    pub file_name: &'a str,
    pub sha256: &'a str,
    pub rows: usize,
    /// The kept upload, which `确认导入` posts back.
    pub token: &'a str,
}

/// The preview: the summary and the apply button, or every bad row and no button.
pub fn preview(csrf: &str, file: &PreviewFile<'_>, outcome: &PreviewOutcome<'_>) -> Markup {
    html! {
        section id="preview" data-token=(file.token) {
            (file_panel(file))
            @match outcome {
                PreviewOutcome::Ready(summary) => {
                    (summary_table(summary))
                    div class="notice" role="status" id="ready" { "可以导入：没有问题行。确认后将在一个事务中全部导入。" }
                    form method="post" action="/admin/fees/apply" class="actions" {
                        (csrf_field(csrf))
                        input type="hidden" name="token" value=(file.token);
                        button type="submit" class="btn" id="apply" { "确认导入" }
                        a class="btn secondary" href="/admin/fees" { "取消" }
                    }
                }
                PreviewOutcome::Bad(problems) => {
                    div class="error" role="alert" {
                        (bad_lines(problems)) " 行有问题，不能导入。请在文件中改正后重新上传。"
                    }
                    (problem_list(problems))
                    div class="actions" { a class="btn secondary" href="/admin/fees" { "重新上传" } }
                }
            }
        }
    }
}

fn file_panel(file: &PreviewFile<'_>) -> Markup {
    html! {
        div class="panel" {
            dl {
                dt { "类型" } dd { (file.kind_label) }
                dt { "文件" } dd id="file-name" { (file.file_name) }
                dt { "数据行" } dd { (file.rows) }
                dt { "SHA-256" } dd { code class="json" { (file.sha256) } }
            }
        }
    }
}

fn summary_table(summary: &ImportSummary) -> Markup {
    html! {
        table class="grid fees-summary" id="summary" {
            thead { tr { th class="num" { "新增" } th class="num" { "更新" } th class="num" { "未变" } } }
            tbody { tr {
                td class="num" id="added" { (summary.added) }
                td class="num" id="updated" { (summary.updated) }
                td class="num" id="unchanged" { (summary.unchanged) }
            } }
        }
    }
}

fn bad_lines(problems: &[RowProblem]) -> usize {
    let mut lines: Vec<usize> = problems.iter().map(|problem| problem.line).collect();
    lines.dedup();
    lines.len()
}

fn problem_list(problems: &[RowProblem]) -> Markup {
    html! {
        ol class="fees-problems" id="problems" {
            @for problem in problems { li { (problem.to_string()) } }
        }
    }
}

/// After applying: what was imported.
pub fn applied(kind_label: &str, file_name: &str, summary: &ImportSummary) -> Markup {
    html! {
        div class="notice" role="status" id="applied" {
            (kind_label) "已导入（" (file_name) "）：" (summary.to_string())
        }
        (summary_table(summary))
        div class="actions" { a class="btn secondary" href="/admin/fees" { "返回" } }
    }
}

/// An apply that did not happen: why, and every bad row when there are some.
pub fn apply_refused(message: &str, problems: &[RowProblem]) -> Markup {
    html! {
        div class="error" role="alert" id="apply-refused" { (message) }
        @if !problems.is_empty() { (problem_list(problems)) }
        div class="actions" { a class="btn secondary" href="/admin/fees" { "返回重新上传" } }
    }
}

/// One item: its student, where it stands, and the office's forms when allowed.
pub fn item(
    detail: &FeeItemDetail,
    csrf: &str,
    can_change: bool,
    now: DateTime<Utc>,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    html! {
        (flash(error, notice))
        div class="panel" id="fee-item" {
            dl {
                dt { "学生" }
                dd {
                    a href=(format!("/admin/students/{}", detail.student_id)) id="student-link" { (detail.student_name) }
                    " " (detail.id_card_masked) " · " (detail.grade) "级 " (detail.class_name)
                }
                dt { "学年" } dd { (detail.academic_year) }
                dt { "项目" } dd { (detail.item) }
                dt { "金额" } dd { (yuan(detail.amount_fen)) " 元" }
                dt { "状态" } dd id="item-status" { (status_badge(detail.status, detail.deferred_until, now)) }
                @if let Some(note) = &detail.note { dt { "备注" } dd id="item-note" { (note) } }
                @if let Some(order) = &detail.paid_order { dt { "缴费订单" } dd { code { (order) } } }
                @if let Some(order) = &detail.open_order { dt { "支付中订单" } dd { code { (order) } } }
                dt { "更新时间" } dd { (beijing(detail.updated_at)) }
            }
        }
        @if can_change { (item_actions(detail, csrf, now)) }
        div class="actions" {
            a class="btn secondary" href="/admin/fees" { "返回收费项目" }
            a class="btn secondary" href=(format!("/admin/audit?target=fee_item:{}", detail.id)) { "操作记录" }
        }
    }
}

fn item_actions(detail: &FeeItemDetail, csrf: &str, now: DateTime<Utc>) -> Markup {
    let path = item_path(detail.id);
    let waivable = matches!(
        detail.status,
        FeeItemStatus::Unpaid | FeeItemStatus::Deferred
    );
    let restorable = matches!(
        detail.status,
        FeeItemStatus::Waived | FeeItemStatus::Deferred
    );
    let deferrable = detail.payable_now(now);
    let tomorrow = (now.with_timezone(&beijing_offset()) + Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    html! {
        @match detail.status {
            FeeItemStatus::InOrder => p class="fees-note" { "该项目正在支付中，不能减免或缓缴；订单关闭后可再操作。" },
            FeeItemStatus::Paid => p class="fees-note" { "该项目已缴费，不能减免或缓缴。" },
            _ => {}
        }
        div class="fees-item-actions" {
            @if waivable {
                form method="post" action=(format!("{path}/waive")) class="panel" id="waive-form" {
                    h2 { "减免" }
                    (csrf_field(csrf))
                    label { "原因（必填，" (MAX_REASON_CHARS) "字以内）"
                        textarea name="reason" maxlength=(MAX_REASON_CHARS) required rows="2" {} }
                    button type="submit" class="btn danger" { "减免该项目" }
                }
            }
            @if deferrable {
                form method="post" action=(format!("{path}/defer")) class="panel" id="defer-form" {
                    h2 { "缓缴（绿色通道）" }
                    (csrf_field(csrf))
                    label { "缓缴至（含当日）" input type="date" name="until" min=(tomorrow) required; }
                    label { "原因（必填，" (MAX_REASON_CHARS) "字以内）"
                        textarea name="reason" maxlength=(MAX_REASON_CHARS) required rows="2" {} }
                    button type="submit" class="btn" { "设为缓缴" }
                }
            }
            @if restorable {
                form method="post" action=(format!("{path}/restore")) class="panel" id="restore-form" {
                    h2 { "恢复为待缴" }
                    (csrf_field(csrf))
                    p class="fees-note" { "撤销减免或缓缴，学生可再次缴纳该项目。" }
                    button type="submit" class="btn secondary" { "恢复为待缴" }
                }
            }
        }
    }
}
