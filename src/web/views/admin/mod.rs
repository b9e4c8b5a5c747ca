//! The console's pages, rendered with maud: a frame with the sections down the side,
//! tables that read well on a PC, forms that carry the CSRF token. Views take plain
//! data and return markup; they never touch the store or the session.

pub mod arrears;
pub mod audit;
pub mod fees;
pub mod flagged;
pub mod followers;
pub mod payments;
pub mod receipts;
pub mod reconciliation;
pub mod students;

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The console's sections, in the order the side bar lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Students,
    Fees,
    Payments,
    Arrears,
    Reconciliation,
    Followers,
    Audit,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Home,
        Section::Students,
        Section::Fees,
        Section::Payments,
        Section::Arrears,
        Section::Reconciliation,
        Section::Followers,
        Section::Audit,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Home => "概览",
            Section::Students => "学生",
            Section::Fees => "导入与收费项目",
            Section::Payments => "缴费记录",
            Section::Arrears => "欠费统计",
            Section::Reconciliation => "对账",
            Section::Followers => "公众号关注者",
            Section::Audit => "操作日志",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Home => "/admin",
            Section::Students => "/admin/students",
            Section::Fees => "/admin/fees",
            Section::Payments => "/admin/payments",
            Section::Arrears => "/admin/arrears",
            Section::Reconciliation => "/admin/reconciliation",
            Section::Followers => "/admin/followers",
            Section::Audit => "/admin/audit",
        }
    }
}

/// What every console page's frame shows.
pub struct Frame<'a> {
    pub school: &'a str,
    pub admin: &'a str,
    /// `finance` (true) or `viewer`: viewers see no change buttons.
    pub can_change: bool,
    pub csrf: &'a str,
    pub section: Section,
}

pub fn page(frame: &Frame<'_>, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - 计财处管理后台" }
                link rel="stylesheet" href="/assets/app.css";
            }
            body class="console" {
                header class="console-top" {
                    div class="brand" { (frame.school) " 计财处 · 缴费管理" }
                    div class="who" {
                        span { (frame.admin) }
                        span class="role" { @if frame.can_change { "财务" } @else { "只读" } }
                        form method="post" action="/admin/logout" class="inline" {
                            (csrf_field(frame.csrf))
                            button type="submit" class="link" { "退出" }
                        }
                    }
                }
                div class="console-body" {
                    nav class="console-nav" {
                        @for section in Section::ALL {
                            a href=(section.path())
                                class=[(section == frame.section).then_some("active")] {
                                (section.label())
                            }
                        }
                    }
                    main class="console-main" {
                        h1 { (title) }
                        (content)
                    }
                }
            }
        }
    }
}

/// The hidden field every console form posts back.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A one-time message above the content.
pub fn flash(error: Option<&str>, notice: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error { div class="error" role="alert" { (error) } }
        @if let Some(notice) = notice { div class="notice" role="status" { (notice) } }
    }
}

/// Previous / next links for a listing of `total` rows shown `per_page` at a time.
/// `link(page)` builds the URL of a page (1-based).
pub fn pager(page: u64, per_page: u64, total: u64, link: impl Fn(u64) -> String) -> Markup {
    let pages = total.div_ceil(per_page.max(1)).max(1);
    html! {
        div class="pager" {
            span { "共 " (total) " 条，第 " (page) "/" (pages) " 页" }
            @if page > 1 { a href=(link(page - 1)) { "上一页" } }
            @if page < pages { a href=(link(page + 1)) { "下一页" } }
        }
    }
}

/// The sign-in page (outside the frame).
/// The console's sign-in; `captcha`: ask for the picture's characters too (after a few
/// failures from the client's address).
pub fn sign_in(
    school: &str,
    csrf: &str,
    error: Option<&str>,
    username: &str,
    captcha: bool,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "登录 - 计财处管理后台" }
                link rel="stylesheet" href="/assets/app.css";
            }
            body class="console" {
                main class="console-signin card narrow" {
                    h1 { (school) " 计财处" }
                    p class="sub" { "缴费管理后台" }
                    (flash(error, None))
                    form method="post" action="/admin/login" {
                        (csrf_field(csrf))
                        label { "用户名" input id="username" type="text" name="username" value=(username) autocomplete="username" required autofocus; }
                        label { "密码" input id="password" type="password" name="password" autocomplete="current-password" required; }
                        @if captcha {
                            label class="captcha" {
                                "验证码"
                                input id="captcha" type="text" name="captcha" maxlength="8" autocomplete="off" required;
                                a href="/admin/login" title="看不清？换一张" {
                                    img id="captcha-image" src="/admin/captcha" alt="验证码图片，点击换一张" width="120" height="40";
                                }
                            }
                        }
                        button id="sign-in" type="submit" class="btn" { "登录" }
                    }
                }
            }
        }
    }
}

/// An amount in fen as yuan with two decimals, e.g. `4,500.00`.
pub fn yuan(fen: i64) -> Markup {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    let whole = (fen / 100).to_string();
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    PreEscaped(format!("{sign}{grouped}.{:02}", fen % 100))
}

pub use super::beijing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_groups_thousands_and_keeps_two_decimals() {
        assert_eq!(yuan(450_000).into_string(), "4,500.00");
        assert_eq!(yuan(35_050).into_string(), "350.50");
        assert_eq!(yuan(5).into_string(), "0.05");
        assert_eq!(yuan(123_456_789).into_string(), "1,234,567.89");
        assert_eq!(yuan(-100).into_string(), "-1.00");
    }
}
