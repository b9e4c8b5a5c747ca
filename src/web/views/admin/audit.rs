//! The audit log page.

use maud::{Markup, html};
use url::form_urlencoded;

use super::{beijing, pager};
use crate::store::AuditRecord;

pub struct Filter<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
}

pub fn list(
    filter: &Filter<'_>,
    rows: &[AuditRecord],
    page: u64,
    per_page: u64,
    total: u64,
) -> Markup {
    let link = |page: u64| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", filter.actor)
            .append_pair("action", filter.action)
            .append_pair("target", filter.target)
            .append_pair("page", &page.to_string())
            .finish();
        format!("/admin/audit?{query}")
    };
    html! {
        form method="get" action="/admin/audit" class="filters" {
            label { "操作人" input type="text" name="actor" value=(filter.actor); }
            label { "操作" input type="text" name="action" value=(filter.action) placeholder="如 student."; }
            label { "对象" input type="text" name="target" value=(filter.target) placeholder="如 student:42"; }
            button type="submit" class="btn small" { "筛选" }
        }
        table class="grid audit" {
            thead { tr { th { "时间" } th { "操作人" } th { "操作" } th { "对象" } th { "之前" } th { "之后" } } }
            tbody {
                @for row in rows {
                    tr {
                        td class="nowrap" { (beijing(row.at)) }
                        td { (row.entry.actor) }
                        td { code { (row.entry.action) } }
                        td { (row.entry.target) }
                        td { (json_cell(row.entry.before.as_ref())) }
                        td { (json_cell(row.entry.after.as_ref())) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="6" class="empty" { "没有记录" } } }
            }
        }
        (pager(page, per_page, total, link))
    }
}

fn json_cell(value: Option<&serde_json::Value>) -> Markup {
    html! {
        @if let Some(value) = value {
            code class="json" { (serde_json::to_string(value).unwrap_or_default()) }
        }
    }
}
