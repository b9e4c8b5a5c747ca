//! The fee list and the confirmation step.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::{Surface, alerts, card_class, office_note, page};
use crate::domain::fee_item::deferral_date;
use crate::domain::money::Fen;
use crate::store::{FeeItemRecord, FeeItemStatus};

/// Who the page is about. The ID number arrives masked.
#[derive(Debug, Clone)]
pub struct StudentHeader {
    pub name: String,
    pub gender: &'static str,
    pub masked_id_card: String,
    pub grade: i32,
    pub class_name: String,
}

/// A student's items, sorted for the page: what can be paid now by academic year,
/// and what is settled or on hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeList {
    /// Academic year → items payable now, oldest year first.
    pub payable: BTreeMap<String, Vec<FeeLine>>,
    /// Items that cannot be ticked: paid, waived, deferred.
    pub settled: Vec<SettledLine>,
}

/// An item that cannot be paid now, and for a deferred one the date its deferral
/// runs to (`2026-12-31`, Beijing time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledLine {
    pub line: FeeLine,
    pub deferred_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    pub id: i64,
    pub academic_year: String,
    pub item: String,
    pub amount: Fen,
    pub status: &'static str,
}

impl FeeList {
    /// The items as they stand at `now`: a deferral whose date has passed is owed
    /// again, shown and payable as 待缴.
    pub fn from_records(records: &[FeeItemRecord], now: DateTime<Utc>) -> FeeList {
        let mut list = FeeList::default();
        for record in records {
            let payable = record.payable_now(now);
            let line = FeeLine {
                id: record.id,
                academic_year: record.academic_year.clone(),
                item: record.item.clone(),
                amount: Fen(record.amount_fen),
                status: if payable {
                    "待缴"
                } else {
                    status_label(record.status)
                },
            };
            // An item in an unfinished payment is still owed: the student may pay it
            // again (the old order is closed at its channel first).
            if payable || record.status == FeeItemStatus::InOrder {
                list.payable
                    .entry(record.academic_year.clone())
                    .or_default()
                    .push(line);
            } else {
                let deferred_until = record
                    .deferral_holds(now)
                    .then_some(record.deferred_until)
                    .flatten()
                    .map(deferral_date);
                list.settled.push(SettledLine {
                    line,
                    deferred_until,
                });
            }
        }
        list
    }

    pub fn total_payable(&self) -> Fen {
        self.payable
            .values()
            .flatten()
            .map(|line| line.amount)
            .sum()
    }

    pub fn owes_nothing(&self) -> bool {
        self.payable.is_empty()
    }
}

fn status_label(status: FeeItemStatus) -> &'static str {
    match status {
        FeeItemStatus::Unpaid => "待缴",
        FeeItemStatus::InOrder => "有未完成的支付",
        FeeItemStatus::Paid => "已缴",
        FeeItemStatus::Waived => "已减免",
        FeeItemStatus::Deferred => "缓缴（绿色通道）",
    }
}

fn student_cells(student: &StudentHeader) -> Markup {
    html! {
        div class="cells" id="student" {
            div class="cell" { span class="label" { "姓名" } span class="value" id="student-name" { (student.name) } }
            div class="cell" { span class="label" { "性别" } span class="value" { (student.gender) } }
            div class="cell" { span class="label" { "身份证号" } span class="value" id="student-id-card" { (student.masked_id_card) } }
            div class="cell" { span class="label" { "年级班级" } span class="value" { (student.grade) "级 " (student.class_name) } }
        }
    }
}

/// The fee list: every payable item ticked, the total, and the button on.
pub fn fee_list(
    surface: Surface,
    school: &str,
    csrf: &str,
    student: &StudentHeader,
    list: &FeeList,
    notice: Option<&str>,
) -> Markup {
    let button = match surface {
        Surface::Mobile => "缴费",
        Surface::Pc => "学费缴费",
    };
    page(
        surface,
        school,
        "缴费项目",
        html! {
            div class=(card_class(surface, false)) {
                (alerts(None, notice))
                p class="cells-title" { "学生信息" }
                (student_cells(student))
                @if list.owes_nothing() {
                    div class="empty" id="no-arrears" {
                        p class="big" { "无欠费" }
                        p class="tips" { "你目前没有需要缴纳的费用。" }
                    }
                } @else {
                    form id="fee-form" method="post" action=(surface.path("/confirm")) {
                        input type="hidden" name="csrf" value=(csrf);
                        @for (year, lines) in &list.payable {
                            p class="cells-title" { (year) " 学年" }
                            div class="cells" {
                                @for line in lines {
                                    label class="cell check" for=(format!("item-{}", line.id)) {
                                        input type="checkbox" name="item" id=(format!("item-{}", line.id))
                                            value=(line.id) data-fen=(line.amount.0) checked;
                                        span class="item" {
                                            (line.item)
                                            @if line.status != "待缴" { " " span class="status" { (line.status) } }
                                        }
                                        span class="amount" { "¥" (line.amount) }
                                    }
                                }
                            }
                        }
                        div class="total" {
                            span { "合计" }
                            strong id="total" { "¥" (list.total_payable()) }
                        }
                        div class="btn-area" {
                            button class="btn" type="submit" id="pay-button" { (button) }
                        }
                    }
                    script src="/assets/fees.js" defer {}
                }
                @if !list.settled.is_empty() {
                    p class="cells-title" { "其他项目" }
                    div class="cells" id="settled" {
                        @for settled in &list.settled {
                            @let line = &settled.line;
                            div class="cell" {
                                span class="item" style="flex:1" { (line.academic_year) " " (line.item) }
                                span class="amount" { "¥" (line.amount) }
                                span class="status" {
                                    (line.status)
                                    @if let Some(until) = &settled.deferred_until { "，至 " (until) }
                                }
                            }
                        }
                    }
                }
                @if surface == Surface::Pc {
                    div class="foot-links" {
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button class="linkish" type="submit" { "退出登录" }
                        }
                    }
                }
                (office_note())
            }
        },
    )
}

/// 确认支付: the ticked items, their total and the payee.
pub fn confirm(
    surface: Surface,
    school: &str,
    csrf: &str,
    lines: &[FeeLine],
    error: Option<&str>,
) -> Markup {
    let total: Fen = lines.iter().map(|line| line.amount).sum();
    let button = match surface {
        Surface::Mobile => "立即支付",
        Surface::Pc => "下一步",
    };
    page(
        surface,
        school,
        "确认支付",
        html! {
            div class=(card_class(surface, false)) {
                (alerts(error, None))
                p class="cells-title" { "缴费项目" }
                div class="cells" id="confirm-items" {
                    @for line in lines {
                        div class="cell" {
                            span class="item" style="flex:1" { (line.academic_year) " " (line.item) }
                            span class="amount" { "¥" (line.amount) }
                        }
                    }
                }
                div class="total" { span { "合计" } strong id="total" { "¥" (total) } }
                div class="cells" {
                    div class="cell" { span class="label" { "收款方" } span class="value" id="payee" { (school) } }
                }
                p class="tips" { "学校不会通过电话、短信或微信向你索要银行卡号、密码或验证码。" }
                form method="post" action=(surface.path("/pay")) {
                    input type="hidden" name="csrf" value=(csrf);
                    @for line in lines { input type="hidden" name="item" value=(line.id); }
                    div class="btn-area" { button class="btn" type="submit" id="confirm-button" { (button) } }
                }
                div class="btn-area" { a class="btn secondary" href=(surface.path("/fees")) { "返回修改" } }
                (office_note())
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, year: &str, item: &str, fen: i64, status: FeeItemStatus) -> FeeItemRecord {
        FeeItemRecord {
            id,
            academic_year: year.into(),
            item: item.into(),
            amount_fen: fen,
            status,
            deferred_until: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn payable_items_group_by_year_and_the_rest_are_listed_apart() {
        let list = FeeList::from_records(
            &[
                record(1, "2026-2027", "学费", 450_000, FeeItemStatus::Unpaid),
                record(2, "2025-2026", "住宿费", 120_000, FeeItemStatus::Unpaid),
                record(3, "2026-2027", "住宿费", 120_000, FeeItemStatus::Paid),
                record(4, "2026-2027", "教材费", 35_050, FeeItemStatus::Unpaid),
            ],
            Utc::now(),
        );
        let years: Vec<_> = list.payable.keys().cloned().collect();
        assert_eq!(years, ["2025-2026", "2026-2027"]);
        assert_eq!(list.total_payable(), Fen(605_050));
        assert_eq!(list.settled.len(), 1);
        assert_eq!(list.settled[0].line.status, "已缴");
    }

    #[test]
    fn an_item_in_an_unfinished_payment_is_still_owed() {
        let list = FeeList::from_records(
            &[record(1, "2026-2027", "学费", 1, FeeItemStatus::InOrder)],
            Utc::now(),
        );
        assert!(!list.owes_nothing());
        assert_eq!(list.total_payable(), Fen(1));
    }

    #[test]
    fn a_deferred_item_waits_until_its_date_then_is_owed_again() {
        let now = Utc::now();
        let mut deferred = record(1, "2026-2027", "学费", 450_000, FeeItemStatus::Deferred);
        deferred.deferred_until = Some(now + chrono::Duration::days(30));
        let list = FeeList::from_records(std::slice::from_ref(&deferred), now);
        assert!(list.owes_nothing());
        assert_eq!(list.settled[0].line.status, "缓缴（绿色通道）");
        let until = deferral_date(now + chrono::Duration::days(30));
        assert_eq!(
            list.settled[0].deferred_until.as_deref(),
            Some(until.as_str())
        );

        let later = FeeList::from_records(&[deferred], now + chrono::Duration::days(31));
        assert_eq!(later.total_payable(), Fen(450_000));
        assert_eq!(later.payable["2026-2027"][0].status, "待缴");
        assert!(later.settled.is_empty());
    }

    #[test]
    fn nothing_payable_means_no_arrears() {
        let list = FeeList::from_records(
            &[record(1, "2026-2027", "学费", 1, FeeItemStatus::Paid)],
            Utc::now(),
        );
        assert!(list.owes_nothing());
        let page = fee_list(
            Surface::Mobile,
            "武威职业学院",
            "csrf",
            &StudentHeader {
                name: "张三".into(),
                gender: "男",
                masked_id_card: "110105********002X".into(),
                grade: 2026,
                class_name: "汽修1班".into(),
            },
            &list,
            None,
        )
        .into_string();
        assert!(page.contains("无欠费") && page.contains("已缴"));
        assert!(page.contains("行树楼103室 计财处结算中心1号窗口"));
    }

    #[test]
    fn the_list_escapes_what_the_import_wrote() {
        let list = FeeList::from_records(
            &[record(1, "2026-2027", "<script>", 1, FeeItemStatus::Unpaid)],
            Utc::now(),
        );
        let page =
            confirm(Surface::Pc, "学校", "t", &list.payable["2026-2027"], None).into_string();
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"));
    }
}
