//! The console's first page: what needs attention today, and where to go.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::Console;
use crate::store::{ArrearsGrouping, ArrearsScope, CheckRunRecord};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::{Section, beijing, yuan};

pub fn router() -> Router<AppState> {
    Router::new().route("/admin", get(home))
}

/// The figures the first page shows.
struct Attention {
    open_order_exceptions: u64,
    open_refused_notifications: u64,
    students_owing: u64,
    owed_fen: i64,
    last_check: Option<CheckRunRecord>,
}

async fn attention(state: &AppState) -> Result<Attention, AppError> {
    let store = &state.store;
    let exceptions = store.payment_exceptions(false, 1).await?;
    let groups = store
        .arrears_groups(
            ArrearsGrouping::Grade,
            &ArrearsScope::default(),
            state.clock.now(),
        )
        .await?;
    let (runs, _) = store.check_runs(1, 0).await?;
    Ok(Attention {
        open_order_exceptions: exceptions.orders_total,
        open_refused_notifications: exceptions.notifications_total,
        students_owing: groups.iter().map(|group| group.students).sum(),
        owed_fen: groups.iter().map(|group| group.owed_fen).sum(),
        last_check: runs.into_iter().next(),
    })
}

async fn home(State(state): State<AppState>, console: Console) -> Result<Response, AppError> {
    let attention = attention(&state).await?;
    let content = html! {
        (attention_panel(&attention))
        ul class="tiles" {
            li { a href="/admin/students" { strong { "学生" } span { "查询、更正信息、重置密码、解绑微信" } } }
            li { a href="/admin/fees" { strong { "导入与收费项目" } span { "上传学生或收费名单，减免、缓缴" } } }
            li { a href="/admin/payments" { strong { "缴费记录" } span { "订单、异常处理、导出" } } }
            li { a href="/admin/receipts" { strong { "凭证查验" } span { "按验证码查验缴费凭证，登记财政电子票据" } } }
            li { a href="/admin/arrears" { strong { "欠费统计" } span { "按年级、班级、专业，导出给辅导员" } } }
            li { a href="/admin/followers" { strong { "公众号关注者" } span { "备注检查、推送菜单" } } }
            li { a href="/admin/audit" { strong { "操作日志" } span { "谁在何时做了什么" } } }
        }
    };
    Ok(console.page(&state, Section::Home, "概览", content))
}

fn attention_panel(attention: &Attention) -> Markup {
    let exceptions = attention.open_order_exceptions + attention.open_refused_notifications;
    html! {
        div class="panel" id="attention" {
            dl {
                dt { "待处理异常" }
                dd id="open-exceptions" {
                    @if exceptions == 0 {
                        span class="badge ok" { "无" }
                    } @else {
                        a href="/admin/payments/exceptions" class="badge warn" {
                            (attention.open_order_exceptions) " 笔订单，"
                            (attention.open_refused_notifications) " 条被拒通知"
                        }
                    }
                }
                dt { "欠费" }
                dd id="owed" {
                    a href="/admin/arrears" {
                        (attention.students_owing) " 名学生，共 " (yuan(attention.owed_fen)) " 元"
                    }
                }
                dt { "关注者检查" }
                dd id="last-check" {
                    @match &attention.last_check {
                        None => "尚未运行",
                        Some(run) => {
                            a href=(format!("/admin/followers/runs/{}", run.id)) {
                                (beijing(run.started_at))
                                @if run.dry_run { "（预检）" }
                                @if run.finished_at.is_none() { " 进行中或中断" }
                                @else if run.stopped.is_some() { " 中途停止" }
                                @else { " 不合规 " (run.non_compliant_count) " 人" }
                            }
                        }
                    }
                }
            }
        }
    }
}
