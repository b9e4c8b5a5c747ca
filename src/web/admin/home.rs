//! The console's first page: where to go, and what needs attention.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use maud::html;

use super::Console;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(home))
}

async fn home(State(state): State<AppState>, console: Console) -> Result<Response, AppError> {
    let content = html! {
        ul class="tiles" {
            li { a href="/admin/students" { strong { "学生" } span { "查询、更正信息、重置密码、解绑微信" } } }
            li { a href="/admin/fees" { strong { "导入与收费项目" } span { "上传学生或收费名单，减免、缓缴" } } }
            li { a href="/admin/payments" { strong { "缴费记录" } span { "订单、异常处理、导出" } } }
            li { a href="/admin/arrears" { strong { "欠费统计" } span { "按年级、班级、专业，导出给辅导员" } } }
            li { a href="/admin/followers" { strong { "公众号关注者" } span { "备注检查、推送菜单" } } }
            li { a href="/admin/audit" { strong { "操作日志" } span { "谁在何时做了什么" } } }
        }
    };
    Ok(console.page(&state, Section::Home, "概览", content))
}
