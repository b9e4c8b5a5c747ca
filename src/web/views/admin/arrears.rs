//! The arrears pages: totals by grade, class or major, and the students of one group
//! with what they owe.

use maud::{Markup, html};
use url::form_urlencoded;

use super::payments::masked_id_card;
use super::{pager, yuan};
use crate::store::{ArrearsGroup, ArrearsGrouping, ArrearsKey, ArrearsStudent, OwedItem};

/// The `major` value that selects the students imported without one.
pub const NO_MAJOR: &str = "（未填专业）";

/// The scope as typed (forms are filled back in with it, links carry it).
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    pub grade: &'a str,
    pub class: &'a str,
    pub major: &'a str,
}

impl Scope<'_> {
    /// The query string of this scope, plus `extra`.
    pub fn query(&self, extra: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("grade", self.grade),
            ("class", self.class),
            ("major", self.major),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        query.finish()
    }

    /// A description for headings, e.g. `2026级 汽修1班`.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.grade.is_empty() {
            parts.push(format!("{}级", self.grade));
        }
        if !self.class.is_empty() {
            parts.push(self.class.to_owned());
        }
        if !self.major.is_empty() {
            parts.push(self.major.to_owned());
        }
        if parts.is_empty() {
            "全校".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

fn grouping_code(grouping: ArrearsGrouping) -> &'static str {
    match grouping {
        ArrearsGrouping::Grade => "grade",
        ArrearsGrouping::Class => "class",
        ArrearsGrouping::Major => "major",
    }
}

/// The group's scope: the page's scope narrowed to the group.
fn group_scope<'a>(scope: &Scope<'a>, key: &'a ArrearsKey, grade: &'a str) -> Scope<'a> {
    match key {
        ArrearsKey::Grade(_) => Scope {
            grade,
            ..scope.clone()
        },
        ArrearsKey::Class { class_name, .. } => Scope {
            grade,
            class: class_name,
            ..scope.clone()
        },
        ArrearsKey::Major(major) => Scope {
            major: major.as_deref().unwrap_or(NO_MAJOR),
            ..scope.clone()
        },
    }
}

pub struct GroupsPage<'a> {
    pub grouping: ArrearsGrouping,
    pub scope: Scope<'a>,
    pub error: Option<&'a str>,
    pub groups: &'a [ArrearsGroup],
}

pub fn groups(view: &GroupsPage<'_>) -> Markup {
    let scope = &view.scope;
    let code = grouping_code(view.grouping);
    let (students, items, owed, deferred) = view.groups.iter().fold((0, 0, 0, 0), |sum, group| {
        (
            sum.0 + group.students,
            sum.1 + group.items,
            sum.2 + group.owed_fen,
            sum.3 + group.deferred_fen,
        )
    });
    html! {
        (super::flash(view.error, None))
        div class="actions" {
            @for (grouping, label) in [(ArrearsGrouping::Grade, "按年级"), (ArrearsGrouping::Class, "按班级"), (ArrearsGrouping::Major, "按专业")] {
                a class={ "btn small" @if grouping != view.grouping { " secondary" } }
                    href={ "/admin/arrears?" (scope.query(&[("by", grouping_code(grouping))])) } { (label) }
            }
            a class="btn small secondary" href={ "/admin/arrears/students?" (scope.query(&[])) } { "学生名单" }
            a class="btn small" id="export" href={ "/admin/arrears/export.csv?" (scope.query(&[])) } { "导出名单 CSV（给辅导员）" }
        }
        form method="get" action="/admin/arrears" class="filters" {
            input type="hidden" name="by" value=(code);
            label { "年级" input type="text" name="grade" value=(scope.grade) placeholder="如 2026"; }
            label { "班级" input type="text" name="class" value=(scope.class) placeholder="如 汽修1班"; }
            label { "专业" input type="text" name="major" value=(scope.major); }
            button type="submit" class="btn small" { "筛选" }
        }
        p class="hint" { "欠费：未缴及支付中的项目，以及缓缴期已过的项目；缓缴中的另列，已减免的不计。" }
        table class="grid arrears" id="arrears-groups" {
            thead { tr {
                @match view.grouping {
                    ArrearsGrouping::Grade => th { "年级" },
                    ArrearsGrouping::Class => { th { "年级" } th { "班级" } },
                    ArrearsGrouping::Major => th { "专业" },
                }
                th class="num" { "欠费人数" } th class="num" { "欠费项目数" }
                th class="num" { "欠费金额（元）" } th class="num" { "缓缴金额（元）" } th {}
            } }
            tbody {
                @for group in view.groups {
                    @let grade = match &group.key {
                        ArrearsKey::Grade(grade) | ArrearsKey::Class { grade, .. } => grade.to_string(),
                        ArrearsKey::Major(_) => scope.grade.to_owned(),
                    };
                    @let link = format!("/admin/arrears/students?{}", group_scope(scope, &group.key, &grade).query(&[]));
                    tr {
                        @match &group.key {
                            ArrearsKey::Grade(grade) => td { a href=(link) { (grade) "级" } },
                            ArrearsKey::Class { grade, class_name } => { td { (grade) "级" } td { a href=(link) { (class_name) } } },
                            ArrearsKey::Major(major) => td { a href=(link) { (major.as_deref().unwrap_or(NO_MAJOR)) } },
                        }
                        td class="num" { (group.students) }
                        td class="num" { (group.items) }
                        td class="num" { (yuan(group.owed_fen)) }
                        td class="num" { (yuan(group.deferred_fen)) }
                        td { a href=(link) { "名单" } }
                    }
                }
                @if view.groups.is_empty() {
                    tr { td colspan="7" class="empty" { "没有欠费" } }
                }
            }
            tfoot {
                tr id="arrears-total" {
                    td colspan=(if view.grouping == ArrearsGrouping::Class { 2 } else { 1 }) { strong { "合计" } }
                    td class="num" { strong { (students) } }
                    td class="num" { strong { (items) } }
                    td class="num" { strong { (yuan(owed)) } }
                    td class="num" { strong { (yuan(deferred)) } }
                    td {}
                }
            }
        }
    }
}

pub struct StudentsPage<'a> {
    pub scope: Scope<'a>,
    pub students: &'a [ArrearsStudent],
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

pub fn students(view: &StudentsPage<'_>) -> Markup {
    let scope = &view.scope;
    let link = |page: u64| {
        format!(
            "/admin/arrears/students?{}",
            scope.query(&[("page", &page.to_string())])
        )
    };
    html! {
        div class="actions" {
            a class="btn small secondary" href={ "/admin/arrears?" (scope.query(&[("by", "class")])) } { "返回欠费统计" }
            a class="btn small" id="export" href={ "/admin/arrears/export.csv?" (scope.query(&[])) } { "导出名单 CSV（给辅导员）" }
        }
        p { "范围：" strong { (scope.describe()) } "，欠费学生 " strong { (view.total) } " 人。" }
        table class="grid" id="arrears-students" {
            thead { tr {
                th { "年级" } th { "班级" } th { "专业" } th { "学号" } th { "姓名" } th { "身份证号" }
                th { "欠费项目" } th class="num" { "欠费金额（元）" }
            } }
            tbody {
                @for student in view.students {
                    tr {
                        td class="nowrap" { (student.grade) }
                        td class="nowrap" { (student.class_name) }
                        td { (student.major.as_deref().unwrap_or("")) }
                        td class="nowrap" { (student.student_no.as_deref().unwrap_or("")) }
                        td class="nowrap" { a href={ "/admin/students/" (student.student_id) } { (student.name) } }
                        td class="nowrap" { (masked_id_card(&student.id_card)) }
                        td { (owed_summary(&student.items, |fen| yuan(fen).into_string())) }
                        td class="num" { (yuan(student.owed_fen)) }
                    }
                }
                @if view.students.is_empty() { tr { td colspan="8" class="empty" { "没有欠费学生" } } }
            }
        }
        (pager(view.page, view.per_page, view.total, link))
    }
}

/// What a student owes in one line: `学费 4,500.00；住宿费 1,200.00`, each item with
/// its academic year in front when they span more than one. `amount` prints fen.
pub fn owed_summary(items: &[OwedItem], amount: impl Fn(i64) -> String) -> String {
    let several_years = items
        .iter()
        .any(|item| item.academic_year != items[0].academic_year);
    items
        .iter()
        .map(|item| {
            if several_years {
                format!(
                    "{} {} {}",
                    item.academic_year,
                    item.item,
                    amount(item.amount_fen)
                )
            } else {
                format!("{} {}", item.item, amount(item.amount_fen))
            }
        })
        .collect::<Vec<_>>()
        .join("；")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(year: &str, name: &str, fen: i64) -> OwedItem {
        OwedItem {
            academic_year: year.into(),
            item: name.into(),
            amount_fen: fen,
        }
    }

    #[test]
    fn a_summary_names_the_year_only_when_it_varies() {
        let one_year = [
            item("2026-2027", "学费", 450_000),
            item("2026-2027", "住宿费", 120_000),
        ];
        assert_eq!(
            owed_summary(&one_year, |fen| yuan(fen).into_string()),
            "学费 4,500.00；住宿费 1,200.00"
        );
        let two_years = [
            item("2026-2027", "学费", 450_000),
            item("2025-2026", "教材费", 35_050),
        ];
        assert_eq!(
            owed_summary(&two_years, |fen| crate::domain::money::Fen(fen).to_string()),
            "2026-2027 学费 4500.00；2025-2026 教材费 350.50"
        );
        assert_eq!(owed_summary(&[], |fen| fen.to_string()), "");
    }

    #[test]
    fn scope_links_carry_only_what_was_set() {
        let scope = Scope {
            grade: "2026",
            class: "汽修1班",
            major: "",
        };
        assert_eq!(
            scope.query(&[("page", "2")]),
            "grade=2026&class=%E6%B1%BD%E4%BF%AE1%E7%8F%AD&page=2"
        );
        assert_eq!(scope.describe(), "2026级 汽修1班");
        assert_eq!(Scope::default().describe(), "全校");
    }
}
