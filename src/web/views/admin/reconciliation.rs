//! Reconciliation on the console: the runs, the form that starts one, and one run's
//! lines, each linking to its order.

use maud::{Markup, html};

use super::{beijing, csrf_field, flash, pager, yuan};
use crate::domain::provider::Provider;
use crate::jobs::reconcile::{channel_label, kind_label};
use crate::store::{ReconciliationLine, ReconciliationRunRecord, RunStatus};

pub const BUSY: &str = "同一渠道同一天的对账正在进行，请稍后再试。";

/// What the form needs.
pub struct Form<'a> {
    /// `finance`: the form is shown.
    pub can_change: bool,
    pub csrf: &'a str,
    /// Yesterday (Beijing), `YYYY-MM-DD`.
    pub default_day: &'a str,
    /// The channels configured; the others are listed as such.
    pub configured: &'a [Provider],
    /// `CAMPUSPAY_RECONCILE_SCHEDULE`.
    pub schedule: &'a str,
}

fn status(run: &ReconciliationRunRecord) -> Markup {
    let flagged =
        run.counts.missing_at_channel + run.counts.amount_mismatch + run.counts.unknown_at_us;
    html! {
        @match run.status {
            RunStatus::Running => span class="badge warn" { "进行中" },
            RunStatus::Failed => span class="badge warn" { "失败" },
            _ if flagged > 0 => span class="badge warn" { "有差异" },
            _ => span class="badge ok" { "一致" },
        }
    }
}

fn actor_label(actor: &str) -> &str {
    match actor {
        "schedule" => "定时任务",
        "cli" => "命令行",
        admin => admin,
    }
}

pub fn list(
    form: &Form<'_>,
    error: Option<&str>,
    runs: &[ReconciliationRunRecord],
    page: u64,
    per_page: u64,
    total: u64,
) -> Markup {
    html! {
        (flash(error, None))
        div class="panel" {
            p {
                "每天 " code { (form.schedule) } " （北京时间，秒 分 时 日 月 周）自动核对前一天的账单。"
                "渠道已收、我方未入账的，按通知同样的方式补入账（不会重复入账）；"
                "我方已收而渠道账单没有的、金额不符的，只标出，不做任何回退。"
            }
        }
        @if form.can_change {
            form method="post" action="/admin/reconciliation/run" class="filters reconcile-form" {
                (csrf_field(form.csrf))
                label { "账单日期" input type="date" name="date" value=(form.default_day) required; }
                label { "渠道"
                    select name="channel" {
                        @for channel in Provider::ALL {
                            option value=(channel.code()) {
                                (channel.label())
                                @if !form.configured.contains(&channel) { "（未配置）" }
                            }
                        }
                    }
                }
                button type="submit" class="btn" id="reconcile-run" { "开始对账" }
            }
        }
        h2 { "对账记录" }
        table class="grid reconcile-runs" {
            thead {
                tr {
                    th { "编号" } th { "账单日期" } th { "渠道" } th { "发起人" } th { "开始时间" }
                    th class="num" { "账单笔数" } th class="num" { "一致" } th class="num" { "补入账" }
                    th class="num" { "我方有、渠道无" } th class="num" { "金额不符" } th class="num" { "我方无此单号" }
                    th { "状态" }
                }
            }
            tbody {
                @for run in runs {
                    tr {
                        td { a href=(format!("/admin/reconciliation/runs/{}", run.id)) { "#" (run.id) } }
                        td class="nowrap" { (run.bill_date) }
                        td { (channel_label(&run.channel)) }
                        td { (actor_label(&run.actor)) }
                        td class="nowrap" { (beijing(run.started_at)) }
                        td class="num" { (run.counts.bill_lines) }
                        td class="num" { (run.counts.matched) }
                        td class="num" { (run.counts.applied) }
                        td class="num" { (run.counts.missing_at_channel) }
                        td class="num" { (run.counts.amount_mismatch) }
                        td class="num" { (run.counts.unknown_at_us) }
                        td class="nowrap" { (status(run)) }
                    }
                }
                @if runs.is_empty() { tr { td colspan="12" class="empty" { "还没有对账记录" } } }
            }
        }
        (pager(page, per_page, total, |page| format!("/admin/reconciliation?page={page}")))
    }
}

fn amount(fen: Option<i64>) -> Markup {
    html! { @if let Some(fen) = fen { (yuan(fen)) } @else { "-" } }
}

pub fn run(run: &ReconciliationRunRecord, lines: &[ReconciliationLine]) -> Markup {
    html! {
        p { a href="/admin/reconciliation" { "← 返回对账记录" } }
        div class="panel" {
            dl {
                dt { "状态" } dd { (status(run)) }
                dt { "渠道" } dd { (channel_label(&run.channel)) }
                dt { "账单日期" } dd { (run.bill_date) }
                dt { "发起人" } dd { (actor_label(&run.actor)) }
                dt { "开始" } dd { (beijing(run.started_at)) }
                dt { "结束" } dd { @if let Some(at) = run.finished_at { (beijing(at)) } @else { "进行中" } }
                @if let Some(error) = &run.error {
                    dt { "失败原因" } dd class="reconcile-error" { (error) }
                } @else {
                    dt { "账单笔数（含退款）" } dd { (run.counts.bill_lines) }
                    dt { "一致" } dd { (run.counts.matched) }
                    dt { "补入账 / 补记退款" } dd { (run.counts.applied) }
                    dt { "我方有、渠道账单无" } dd { (run.counts.missing_at_channel) }
                    dt { "金额不符" } dd { (run.counts.amount_mismatch) }
                    dt { "我方无此订单或退款单" } dd { (run.counts.unknown_at_us) }
                }
            }
        }
        @if run.error.is_none() {
            div class="actions" {
                a class="btn secondary small" id="reconcile-export"
                    href=(format!("/admin/reconciliation/runs/{}/lines.csv", run.id)) { "导出 CSV" }
            }
            h2 { "差异明细（" (lines.len()) "）" }
            table class="grid reconcile-lines" {
                thead {
                    tr {
                        th { "类型" } th { "商户订单号" } th { "渠道交易号" }
                        th class="num" { "我方金额" } th class="num" { "渠道金额" } th { "说明" }
                    }
                }
                tbody {
                    @for line in lines {
                        tr {
                            td class="nowrap" { (kind_label(&line.kind)) }
                            td {
                                @if line.kind == "unknown_at_us" || line.kind == "refund_unknown_at_us" {
                                    code { (line.out_trade_no) }
                                } @else {
                                    a href=(format!("/admin/payments/{}", line.out_trade_no)) { code { (line.out_trade_no) } }
                                }
                            }
                            td { code { (line.channel_trade_no.as_deref().unwrap_or("-")) } }
                            td class="num" { (amount(line.our_amount_fen)) }
                            td class="num" { (amount(line.channel_amount_fen)) }
                            td { (line.note.as_deref().unwrap_or("")) }
                        }
                    }
                    @if lines.is_empty() { tr { td colspan="6" class="empty" { "账单与我方记录全部一致" } } }
                }
            }
        }
    }
}
