//! The students' pages, rendered with maud. Views take plain data and return markup;
//! they never touch the store or the session.

pub mod admin;
pub mod fees;
pub mod pay;
pub mod receipt;
pub mod signin;

use maud::{DOCTYPE, Markup, html};

use crate::web::text::OFFICE_LOCATION;

/// Where a student is: the H5 pages inside WeChat, or the PC portal. The same steps,
/// under different paths and layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Mobile,
    Pc,
}

impl Surface {
    /// The path of a step on this surface: `path("/fees")` is `/h5/fees` or `/fees`.
    pub fn path(self, step: &str) -> String {
        match self {
            Surface::Mobile => format!("/h5{step}"),
            Surface::Pc => step.to_owned(),
        }
    }

    /// Where a student who is not signed in starts.
    pub fn entry(self) -> &'static str {
        match self {
            Surface::Mobile => "/h5",
            Surface::Pc => "/",
        }
    }
}

/// Shared frame of every page: the school, the title, the content, and where to go
/// when the details are wrong.
pub fn page(surface: Surface, school: &str, title: &str, content: Markup) -> Markup {
    let body_class = match surface {
        Surface::Mobile => "mobile",
        Surface::Pc => "pc",
    };
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover";
                meta name="format-detection" content="telephone=no";
                title { (title) " - " (school) }
                link rel="stylesheet" href="/assets/app.css";
            }
            body class=(body_class) {
                header class="topbar" {
                    div class="school" { (school) " 计财处" }
                    h1 { (title) }
                }
                main { (content) }
            }
        }
    }
}

/// A Beijing-time timestamp (`2026-09-01 10:30:00`), as the office and the students
/// read them.
pub fn beijing(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&crate::domain::order::beijing_offset())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The line every page ends with.
pub fn office_note() -> Markup {
    html! {
        p class="office" {
            "个人信息或缴费项目有误，请到 " strong { (OFFICE_LOCATION) } " 更正。"
        }
    }
}

/// An error or notice above a form.
pub fn alerts(error: Option<&str>, notice: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error { div class="error" role="alert" { (error) } }
        @if let Some(notice) = notice { div class="notice" role="status" { (notice) } }
    }
}

/// A page with one message and one way on.
pub fn message_page(
    surface: Surface,
    school: &str,
    title: &str,
    message: &str,
    link: (&str, &str),
) -> Markup {
    page(
        surface,
        school,
        title,
        html! {
            div class=(card_class(surface, true)) {
                div class="empty" { p { (message) } }
                div class="btn-area" { a class="btn" href=(link.0) { (link.1) } }
                (office_note())
            }
        },
    )
}

/// PC pages sit in a card; mobile pages run edge to edge.
pub fn card_class(surface: Surface, narrow: bool) -> &'static str {
    match (surface, narrow) {
        (Surface::Mobile, _) => "flow",
        (Surface::Pc, true) => "card narrow",
        (Surface::Pc, false) => "card",
    }
}
