//! The students section: the search with its results (ID numbers masked), and a
//! student's own page (the full ID number, items, orders, notifications, the changes
//! made to them, and the office's forms).

use maud::{Markup, html};
use url::form_urlencoded;

use super::{beijing, csrf_field, flash, pager, yuan};
use crate::domain::student::{
    MAX_CLASS_CHARS, MAX_MAJOR_CHARS, MAX_NAME_CHARS, MAX_STUDENT_NO_CHARS,
};
use crate::store::{
    AuditRecord, FeeItemStatus, Gender, NotificationVerdict, OrderRecord, OrderStatus,
    StudentDetails, StudentFeeRow, StudentListRow, StudentNotificationRow, StudentRecord,
};

/// What the list was searched for, as the page may show it.
pub enum Searched<'a> {
    Nothing,
    /// A whole ID number: shown masked, never put back in the box.
    IdCard(String),
    Text(&'a str),
    /// A whole ID number came in the address: not searched, the box must post it.
    NotInAddress,
}

impl Searched<'_> {
    /// What goes back in the search box and the pager's links.
    fn echo(&self) -> &str {
        match self {
            Searched::Text(text) => text,
            Searched::Nothing | Searched::IdCard(_) | Searched::NotInAddress => "",
        }
    }
}

/// The list's address for a text search (never a whole ID number: the box posts those).
pub fn list_path(text: &str, page: u64) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !text.is_empty() {
        query.append_pair("q", text);
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        "/admin/students".to_owned()
    } else {
        format!("/admin/students?{query}")
    }
}

pub fn list(
    searched: &Searched<'_>,
    rows: &[StudentListRow],
    csrf: &str,
    page: u64,
    per_page: u64,
    total: u64,
) -> Markup {
    let echo = searched.echo();
    let link = |page: u64| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", echo)
            .append_pair("page", &page.to_string())
            .finish();
        format!("/admin/students?{query}")
    };
    html! {
        // Posted, so that a whole ID number stays out of addresses and logs.
        form method="post" action="/admin/students/search" class="filters" {
            (csrf_field(csrf))
            label {
                "身份证号、姓名、班级或学号"
                input type="text" name="q" value=(echo) class="search"
                    placeholder="身份证号（全部或后4至6位）、姓名、班级、学号" autofocus;
            }
            button type="submit" class="btn small" { "查询" }
            @if !matches!(searched, Searched::Nothing) {
                a href="/admin/students" class="btn small secondary" { "全部学生" }
            }
        }
        @if matches!(searched, Searched::NotInAddress) {
            p class="searched" { "为保护个人信息，完整身份证号不在网址中查询，请在上面的搜索框中输入后点“查询”" }
        }
        @if let Searched::IdCard(masked) = searched {
            p class="searched" { "按身份证号 " (masked) " 查询" }
        }
        table class="grid students" {
            thead {
                tr {
                    th { "身份证号" } th { "姓名" } th { "性别" } th { "年级" } th { "班级" }
                    th { "专业" } th { "学号" } th { "微信绑定" } th class="num" { "欠费（元）" }
                }
            }
            tbody {
                @for row in rows {
                    tr {
                        td class="nowrap" { a href=(format!("/admin/students/{}", row.id)) { (row.id_card_masked) } }
                        td { a href=(format!("/admin/students/{}", row.id)) { (row.name) } }
                        td { (gender_label(row.gender)) }
                        td { (row.grade) }
                        td { (row.class_name) }
                        td { (row.major.as_deref().unwrap_or("")) }
                        td { (row.student_no.as_deref().unwrap_or("")) }
                        td { (bound_badge(row.bound)) }
                        td class="num" { (yuan(row.owed_fen)) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="9" class="empty" { "没有找到学生" } } }
            }
        }
        (pager(page, per_page, total, link))
    }
}

/// The correction form's fields as text: the stored details, or what was typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetailsForm {
    pub name: String,
    pub gender: String,
    pub grade: String,
    pub class_name: String,
    pub major: String,
    pub student_no: String,
}

impl DetailsForm {
    pub fn of(student: &StudentDetails) -> DetailsForm {
        DetailsForm {
            name: student.name.clone(),
            gender: gender_label(student.gender).to_owned(),
            grade: student.grade.to_string(),
            class_name: student.class_name.clone(),
            major: student.major.clone().unwrap_or_default(),
            student_no: student.student_no.clone().unwrap_or_default(),
        }
    }
}

/// Everything a student's page shows.
pub struct StudentPage<'a> {
    pub student: &'a StudentDetails,
    pub record: &'a StudentRecord,
    pub history: &'a [AuditRecord],
    /// `student:{id}`, for the link to the full audit log.
    pub audit_target: &'a str,
    pub can_change: bool,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub form: &'a DetailsForm,
}

pub fn student(page: &StudentPage<'_>) -> Markup {
    let student = page.student;
    html! {
        p { a href="/admin/students" { "← 返回学生列表" } }
        (flash(page.error, page.notice))
        div class="panel" id="student-details" {
            dl {
                dt { "身份证号" } dd id="id-card" { (student.id_card) }
                dt { "姓名" } dd id="name" { (student.name) }
                dt { "性别" } dd { (gender_label(student.gender)) }
                dt { "年级" } dd { (student.grade) }
                dt { "班级" } dd { (student.class_name) }
                dt { "专业" } dd { (student.major.as_deref().unwrap_or("—")) }
                dt { "学号" } dd { (student.student_no.as_deref().unwrap_or("—")) }
                dt { "密码" } dd { (password_state(student)) }
                dt { "微信绑定" } dd id="binding" {
                    @match student.bound_at {
                        Some(at) if student.wechat_openid.is_some() => { (bound_badge(true)) " " (beijing(at)) }
                        _ => { (bound_badge(student.wechat_openid.is_some())) }
                    }
                }
            }
        }
        @if page.can_change { (change_forms(page)) }
        h2 { "收费项目" }
        (fees_table(&page.record.fees))
        h2 { "订单" }
        (orders_table(&page.record.orders))
        h2 { "支付通知" }
        (notifications_table(&page.record.notifications))
        h2 { "修改记录" }
        (history_table(page.history))
        p class="sub" {
            "查看记录见"
            a href=(format!("/admin/audit?target={}", page.audit_target)) { "操作日志" }
        }
    }
}

fn password_state(student: &StudentDetails) -> &'static str {
    match (student.on_initial_password, student.must_change_password) {
        (true, _) => "初始密码（登录后须修改）",
        (false, true) => "须在下次登录时修改",
        (false, false) => "学生已自行设置",
    }
}

fn change_forms(page: &StudentPage<'_>) -> Markup {
    let student = page.student;
    let form = page.form;
    let action = |what: &str| format!("/admin/students/{}/{what}", student.id);
    html! {
        div class="panel" id="correct" {
            h2 { "更正信息" }
            form method="post" action=(action("correct")) class="correct" {
                (csrf_field(page.csrf))
                label { "姓名" input type="text" name="name" value=(form.name) required maxlength=(MAX_NAME_CHARS); }
                label { "性别"
                    select name="gender" {
                        @for option in ["男", "女"] {
                            option value=(option) selected[form.gender == option] { (option) }
                        }
                    }
                }
                label { "年级" input type="text" name="grade" value=(form.grade) required placeholder="如 2018 或 18" class="short"; }
                label { "班级" input type="text" name="class_name" value=(form.class_name) required maxlength=(MAX_CLASS_CHARS); }
                label { "专业" input type="text" name="major" value=(form.major) maxlength=(MAX_MAJOR_CHARS); }
                label { "学号" input type="text" name="student_no" value=(form.student_no) maxlength=(MAX_STUDENT_NO_CHARS); }
                button type="submit" class="btn small" { "保存更正" }
            }
        }
        div class="actions" {
            form method="post" action=(action("reset-password")) class="inline" {
                (csrf_field(page.csrf))
                button type="submit" class="btn small danger" { "重置为初始密码" }
            }
            @if student.wechat_openid.is_some() {
                form method="post" action=(action("unbind")) class="inline" {
                    (csrf_field(page.csrf))
                    button type="submit" class="btn small danger" { "解除微信绑定" }
                }
            }
        }
    }
}

fn fees_table(fees: &[StudentFeeRow]) -> Markup {
    html! {
        table class="grid" id="fees" {
            thead { tr { th { "学年" } th { "项目" } th class="num" { "金额（元）" } th { "状态" } th { "备注" } th {} } }
            tbody {
                @for fee in fees {
                    tr {
                        td { (fee.academic_year) }
                        td { (fee.item) }
                        td class="num" { (yuan(fee.amount_fen)) }
                        td {
                            (fee_status(fee.status))
                            @if let Some(until) = fee.deferred_until { " 至 " (beijing_date(until)) }
                        }
                        td { (fee.note.as_deref().unwrap_or("")) }
                        // Waive, defer and restore live on the item's own page.
                        td { a href=(format!("/admin/fees/items/{}", fee.id)) { "减免/缓缴" } }
                    }
                }
                @if fees.is_empty() { tr { td colspan="6" class="empty" { "没有收费项目" } } }
            }
        }
    }
}

fn orders_table(orders: &[OrderRecord]) -> Markup {
    html! {
        table class="grid" id="orders" {
            thead {
                tr {
                    th { "订单号" } th { "渠道" } th class="num" { "金额（元）" } th { "状态" }
                    th { "创建时间" } th { "支付时间" } th { "异常" }
                }
            }
            tbody {
                @for order in orders {
                    tr {
                        td class="nowrap" { code { (order.out_trade_no) } }
                        td { (order.channel.label()) }
                        td class="num" { (yuan(order.amount_fen)) }
                        td { (order_status(order.status)) }
                        td class="nowrap" { (beijing(order.created_at)) }
                        td class="nowrap" { @if let Some(at) = order.paid_at { (beijing(at)) } }
                        td { @if let Some(exception) = &order.exception { span class="badge warn" { (exception) } } }
                    }
                }
                @if orders.is_empty() { tr { td colspan="7" class="empty" { "没有订单" } } }
            }
        }
    }
}

fn notifications_table(notifications: &[StudentNotificationRow]) -> Markup {
    html! {
        table class="grid" id="notifications" {
            thead { tr { th { "收到时间" } th { "渠道" } th { "订单号" } th { "结果" } th { "原因" } } }
            tbody {
                @for notification in notifications {
                    tr {
                        td class="nowrap" { (beijing(notification.received_at)) }
                        td { (notification.channel.provider().label()) }
                        td class="nowrap" { code { (notification.out_trade_no.as_deref().unwrap_or("")) } }
                        td { (verdict_badge(notification.verdict)) }
                        td { (notification.reason.as_deref().unwrap_or("")) }
                    }
                }
                @if notifications.is_empty() { tr { td colspan="5" class="empty" { "没有支付通知" } } }
            }
        }
    }
}

fn history_table(history: &[AuditRecord]) -> Markup {
    let json = |value: Option<&serde_json::Value>| {
        value
            .map(|value| serde_json::to_string(value).unwrap_or_default())
            .unwrap_or_default()
    };
    html! {
        table class="grid audit" id="history" {
            thead { tr { th { "时间" } th { "操作人" } th { "操作" } th { "之前" } th { "之后" } } }
            tbody {
                @for row in history {
                    tr {
                        td class="nowrap" { (beijing(row.at)) }
                        td { (row.entry.actor) }
                        td { (action_label(&row.entry.action)) " " code { (row.entry.action) } }
                        td { code class="json" { (json(row.entry.before.as_ref())) } }
                        td { code class="json" { (json(row.entry.after.as_ref())) } }
                    }
                }
                @if history.is_empty() { tr { td colspan="5" class="empty" { "没有修改记录" } } }
            }
        }
    }
}

/// A date in Beijing time (a deferral's last day).
fn beijing_date(at: chrono::DateTime<chrono::Utc>) -> String {
    beijing(at).chars().take(10).collect()
}

fn bound_badge(bound: bool) -> Markup {
    html! {
        @if bound { span class="badge ok" { "已绑定" } } @else { span class="badge" { "未绑定" } }
    }
}

fn gender_label(gender: Gender) -> &'static str {
    match gender {
        Gender::Male => "男",
        Gender::Female => "女",
    }
}

fn fee_status(status: FeeItemStatus) -> &'static str {
    match status {
        FeeItemStatus::Unpaid => "未缴",
        FeeItemStatus::InOrder => "支付中",
        FeeItemStatus::Paid => "已缴",
        FeeItemStatus::Waived => "已减免",
        FeeItemStatus::Deferred => "缓缴",
    }
}

fn order_status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Created => "待支付",
        OrderStatus::Paid => "已支付",
        OrderStatus::Closed => "已关闭",
        OrderStatus::Refunded => "已退款",
    }
}

fn verdict_badge(verdict: NotificationVerdict) -> Markup {
    html! {
        @match verdict {
            NotificationVerdict::Accepted => span class="badge ok" { "已入账" },
            NotificationVerdict::Duplicate => span class="badge" { "重复通知" },
            NotificationVerdict::Refused => span class="badge warn" { "已拒绝" },
        }
    }
}

fn action_label(action: &str) -> &'static str {
    match action {
        "student.correct" => "更正信息",
        "student.reset_password" => "重置密码",
        "student.unbind" => "解除微信绑定",
        _ => "",
    }
}
