//! The follower check and the menu on the console: the runs, one run's report with
//! its non-compliant list, and the buttons (预检 first; the real run only from a dry
//! run's report).

use maud::{Markup, html};

use super::{beijing, csrf_field, flash, pager};
use crate::store::CheckRunRecord;

/// What the page says of the account and the check's settings.
pub struct Settings<'a> {
    /// An official account is configured: the buttons work.
    pub account: bool,
    /// `finance`: the buttons are shown.
    pub can_change: bool,
    pub csrf: &'a str,
    /// `report`, `tag` or `blacklist`.
    pub action: &'a str,
    pub grace_days: u32,
    /// The cron expression, read in Beijing time.
    pub schedule: &'a str,
    /// The sentence that WeChat cannot remove followers.
    pub no_removal: &'a str,
}

/// A one-time message: an error, or a notice.
pub struct Message<'a> {
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub const NO_ACCOUNT: &str =
    "未配置公众号（CAMPUSPAY_WECHAT_APPID 等），无法检查关注者或推送菜单。";
pub const BUSY: &str = "另一次关注者检查正在进行，请稍后再试。";

/// How `CAMPUSPAY_CLEANUP_ACTION` reads.
fn action_label(action: &str) -> &'static str {
    match action {
        "tag" => "打标签“待清理”",
        "blacklist" => "拉黑",
        "report" => "仅报告",
        _ => "未知",
    }
}

fn run_mode(run: &CheckRunRecord) -> &'static str {
    if run.dry_run {
        "预检（不改动公众号）"
    } else {
        action_label(&run.action)
    }
}

fn status(run: &CheckRunRecord) -> Markup {
    html! {
        @if run.finished_at.is_none() {
            span class="badge warn" { "进行中" }
        } @else if run.stopped.is_some() {
            span class="badge warn" { "中途停止" }
        } @else {
            span class="badge ok" { "完成" }
        }
        @if run.resumed_after.is_some() {
            " " span class="badge" { "接续上次" }
        }
    }
}

pub fn list(
    settings: &Settings<'_>,
    message: &Message<'_>,
    runs: &[CheckRunRecord],
    page: u64,
    per_page: u64,
    total: u64,
) -> Markup {
    html! {
        (flash(message.error, message.notice))
        div class="panel" {
            dl {
                dt { "公众号" }
                dd { @if settings.account { "已配置" } @else { (NO_ACCOUNT) } }
                dt { "处理方式" }
                dd { (action_label(settings.action)) " （CAMPUSPAY_CLEANUP_ACTION）" }
                dt { "宽限期" }
                dd { "关注后 " (settings.grace_days) " 天内不算不合规" }
                dt { "定时检查" }
                dd { code { (settings.schedule) } " （北京时间，秒 分 时 日 月 周）" }
            }
            p class="followers-note" { (settings.no_removal) }
        }
        @if settings.can_change {
            div class="actions followers-actions" {
                form method="post" action="/admin/followers/check?dry_run=1" {
                    (csrf_field(settings.csrf))
                    button type="submit" class="btn" id="followers-dry-run" disabled[!settings.account] { "预检（不改动公众号）" }
                }
                form method="post" action="/admin/menu/push" {
                    (csrf_field(settings.csrf))
                    button type="submit" class="btn secondary" id="menu-push" disabled[!settings.account] { "推送菜单" }
                }
                @if !settings.account { span class="followers-note" { (NO_ACCOUNT) } }
            }
            p class="followers-note" { "先预检，在预检报告页确认后再“按此结果执行”。推送菜单会把 menus/default.json 发布到公众号。" }
        }
        h2 { "检查记录" }
        table class="grid followers-runs" {
            thead {
                tr {
                    th { "编号" } th { "开始时间" } th { "发起人" } th { "方式" }
                    th class="num" { "关注者" } th class="num" { "本次检查" } th class="num" { "已绑定" }
                    th class="num" { "备注合规" } th class="num" { "宽限期内" } th class="num" { "已取关" }
                    th class="num" { "不合规" } th class="num" { "已处理" } th class="num" { "备注更正" }
                    th { "状态" }
                }
            }
            tbody {
                @for run in runs {
                    tr {
                        td { a href=(format!("/admin/followers/runs/{}", run.id)) { "#" (run.id) } }
                        td class="nowrap" { (beijing(run.started_at)) }
                        td { (actor_label(&run.actor)) }
                        td { (run_mode(run)) }
                        td class="num" { (run.counts.total) }
                        td class="num" { (run.counts.checked) }
                        td class="num" { (run.counts.bound) }
                        td class="num" { (run.counts.compliant) }
                        td class="num" { (run.counts.within_grace) }
                        td class="num" { (run.counts.left) }
                        td class="num" { (run.non_compliant_count) }
                        td class="num" { (run.counts.acted_on) }
                        td class="num" { (run.counts.remarks_corrected) }
                        td class="nowrap" { (status(run)) }
                    }
                }
                @if runs.is_empty() { tr { td colspan="14" class="empty" { "还没有检查记录" } } }
            }
        }
        (pager(page, per_page, total, |page| format!("/admin/followers?page={page}")))
    }
}

fn actor_label(actor: &str) -> String {
    match actor {
        "schedule" => "定时任务".to_owned(),
        "cli" => "命令行".to_owned(),
        admin => admin.to_owned(),
    }
}

/// The non-compliant list is shown this many at a time.
pub const LISTED_PER_PAGE: u64 = 200;

pub fn run(settings: &Settings<'_>, run: &CheckRunRecord, list_page: u64) -> Markup {
    let offset = usize::try_from((list_page.max(1) - 1) * LISTED_PER_PAGE).unwrap_or(usize::MAX);
    let shown = run
        .non_compliant
        .iter()
        .enumerate()
        .skip(offset)
        .take(LISTED_PER_PAGE as usize);
    let can_execute =
        settings.can_change && run.dry_run && run.finished_at.is_some() && run.stopped.is_none();
    html! {
        p { a href="/admin/followers" { "← 返回检查记录" } }
        div class="panel" {
            dl {
                dt { "状态" } dd { (status(run)) }
                dt { "方式" } dd { (run_mode(run)) }
                dt { "发起人" } dd { (actor_label(&run.actor)) }
                dt { "开始" } dd { (beijing(run.started_at)) }
                dt { "结束" } dd { @if let Some(at) = run.finished_at { (beijing(at)) } @else { "进行中" } }
                @if let Some(openid) = &run.resumed_after {
                    dt { "接续" } dd { "接续上次中途停止的检查，从 " code { (openid) } " 之后开始" }
                }
                dt { "关注者" } dd { (run.counts.total) }
                dt { "本次检查" } dd { (run.counts.checked) }
                dt { "已绑定" } dd { (run.counts.bound) }
                dt { "备注合规" } dd { (run.counts.compliant) }
                dt { "宽限期内" } dd { (run.counts.within_grace) }
                dt { "已取关" } dd { (run.counts.left) }
                dt { "不合规" } dd { (run.non_compliant_count) }
                @if !run.dry_run {
                    dt { "已处理" } dd { (run.counts.acted_on) " （" (action_label(&run.action)) "）" }
                    dt { "备注更正" } dd { (run.counts.remarks_corrected) }
                }
                @if let Some(reason) = &run.stopped {
                    dt { "中途停止" } dd class="followers-stopped" { (reason) }
                    @if !run.dry_run {
                        dt { "下次" } dd {
                            @if let Some(openid) = &run.resume_after {
                                "下次检查从 " code { (openid) } " 之后继续"
                            } @else { "下次检查从头开始" }
                        }
                    }
                }
            }
            p class="followers-note" { (settings.no_removal) }
        }
        @if can_execute {
            div class="actions" {
                form method="post" action="/admin/followers/check" {
                    (csrf_field(settings.csrf))
                    button type="submit" class="btn danger" id="followers-execute" disabled[!settings.account] { "按此结果执行" }
                }
                span class="followers-note" {
                    "将按当前设置（" (action_label(settings.action)) "）处理不合规的关注者，并更正已绑定学生的备注。"
                }
            }
        }
        h2 { "不合规的关注者（" (run.non_compliant.len()) "）" }
        table class="grid followers-list" {
            thead { tr { th class="num" { "序号" } th { "openid" } } }
            tbody {
                @for (index, openid) in shown {
                    tr { td class="num" { (index + 1) } td { code { (openid) } } }
                }
                @if run.non_compliant.is_empty() { tr { td colspan="2" class="empty" { "没有不合规的关注者" } } }
            }
        }
        (pager(list_page, LISTED_PER_PAGE, run.non_compliant.len() as u64, |page| {
            format!("/admin/followers/runs/{}?page={page}", run.id)
        }))
    }
}
