//! The payments pages: the order list with its filters and totals, one order with its
//! items and notifications, and the exceptions to resolve.

use maud::{Markup, html};
use url::form_urlencoded;

use super::{beijing, csrf_field, flash, pager, yuan};
use crate::domain::id_card::IdCardNumber;
use crate::store::{
    ExceptionList, NotificationRecord, NotificationVerdict, OrderStatus, PaymentChannel,
    PaymentDetail, PaymentRow, PaymentTotals, Resolution,
};

/// The longest resolution note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// The channels as the filter and the export name them: code, label.
pub const CHANNELS: [(PaymentChannel, &str); 5] = [
    (PaymentChannel::WechatJsapi, "wechat_jsapi"),
    (PaymentChannel::WechatNative, "wechat_native"),
    (PaymentChannel::Alipay, "alipay"),
    (PaymentChannel::AbcPage, "abc_page"),
    (PaymentChannel::AbcScan, "abc_scan"),
];

/// The order states as the filter names them.
pub const STATUSES: [(OrderStatus, &str); 4] = [
    (OrderStatus::Created, "created"),
    (OrderStatus::Paid, "paid"),
    (OrderStatus::Closed, "closed"),
    (OrderStatus::Refunded, "refunded"),
];

pub fn status_label(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Created => "待支付",
        OrderStatus::Paid => "已支付",
        OrderStatus::Closed => "已关闭",
        OrderStatus::Refunded => "已退款",
    }
}

fn verdict_label(verdict: NotificationVerdict) -> Markup {
    html! {
        @match verdict {
            NotificationVerdict::Accepted => span class="badge ok" { "已入账" },
            NotificationVerdict::Duplicate => span class="badge" { "重复通知" },
            NotificationVerdict::Refused => span class="badge warn" { "已拒绝" },
        }
    }
}

/// Why a notification was refused, from the label the notify path stored.
pub fn reason_label(reason: &str) -> &str {
    match reason {
        "signature" | "bad_signature" => "签名验证失败（可能伪造）",
        "signature_probe" => "签名探测请求",
        "signature_headers" | "unsigned" | "sign_type" => "缺少或错误的签名信息",
        "unknown_serial" => "未知的平台公钥",
        "certificate_expired" => "平台证书已过期",
        "stale" => "时间戳过期（可能是重放）",
        "malformed" | "missing_field" => "格式错误",
        "decrypt" => "无法解密",
        "event" => "非支付成功事件",
        "not_ours" => "商户号或应用号不符",
        "not_paid" => "通知的交易未支付",
        "amount" => "金额与订单不符",
        "unknown_order" => "没有这个订单",
        "not_configured" => "该渠道未开通",
        "exception" => "需人工核对",
        other => other,
    }
}

/// The ID number as lists show it: the birth date hidden.
pub fn masked_id_card(id_card: &str) -> String {
    IdCardNumber::parse(id_card)
        .map(|id| id.masked())
        .unwrap_or_else(|_| "******************".to_owned())
}

/// The filters as typed (the form is filled back in with them, links carry them).
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub status: &'a str,
    pub channel: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub q: &'a str,
}

impl Filter<'_> {
    /// The query string of these filters, plus `extra`.
    pub fn query(&self, extra: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", self.status),
            ("channel", self.channel),
            ("from", self.from),
            ("to", self.to),
            ("q", self.q),
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
}

pub struct ListPage<'a> {
    pub filter: Filter<'a>,
    pub error: Option<&'a str>,
    pub rows: &'a [PaymentRow],
    pub totals: PaymentTotals,
    pub page: u64,
    pub per_page: u64,
    pub open_exceptions: u64,
}

pub fn list(view: &ListPage<'_>) -> Markup {
    let filter = &view.filter;
    let link = |page: u64| {
        format!(
            "/admin/payments?{}",
            filter.query(&[("page", &page.to_string())])
        )
    };
    html! {
        (flash(view.error, None))
        div class="actions" {
            a class="btn secondary small" href="/admin/payments/exceptions" {
                "异常待处理 "
                @if view.open_exceptions > 0 { span class="badge warn" id="open-exceptions" { (view.open_exceptions) } }
                @else { span class="badge ok" id="open-exceptions" { "0" } }
            }
            a class="btn small" id="export" href={ "/admin/payments/export.csv?" (filter.query(&[])) } { "导出 CSV（当前筛选的全部订单）" }
        }
        form method="get" action="/admin/payments" class="filters" {
            label { "状态"
                select name="status" {
                    option value="" { "全部" }
                    @for (status, code) in STATUSES {
                        option value=(code) selected[filter.status == code] { (status_label(status)) }
                    }
                }
            }
            label { "渠道"
                select name="channel" {
                    option value="" { "全部" }
                    @for (channel, code) in CHANNELS {
                        option value=(code) selected[filter.channel == code] { (channel.label()) }
                    }
                }
            }
            label { "下单日期从（北京时间）" input type="date" name="from" value=(filter.from); }
            label { "到（含）" input type="date" name="to" value=(filter.to); }
            label { "订单号 / 渠道交易号" input type="text" name="q" value=(filter.q) placeholder="可输入部分"; }
            button type="submit" class="btn small" { "筛选" }
        }
        p class="totals" id="payment-totals" {
            "符合条件的订单 " strong { (view.totals.orders) } " 笔，其中已支付 "
            strong { (view.totals.paid_orders) } " 笔，合计 "
            strong id="paid-sum" { (yuan(view.totals.paid_fen)) } " 元"
            @if view.totals.refunded_fen != 0 {
                "，其中已退或在退 " strong id="refunded-sum" { (yuan(view.totals.refunded_fen)) } " 元，实收 "
                strong id="kept-sum" { (yuan(view.totals.kept_fen())) } " 元"
            }
            "。"
            span class="hint" { "日期按下单时间（北京时间）筛选。" }
        }
        table class="grid payments" {
            thead { tr {
                th { "订单号" } th { "学生" } th { "渠道" } th class="num" { "金额（元）" }
                th { "状态" } th { "下单时间" } th { "支付时间" } th { "渠道交易号" } th { "异常" }
            } }
            tbody {
                @for row in view.rows {
                    tr {
                        td class="nowrap" { a href={ "/admin/payments/" (row.out_trade_no) } { (row.out_trade_no) } }
                        td { (student_cell(row)) }
                        td class="nowrap" { (row.channel.label()) }
                        td class="num" { (yuan(row.amount_fen)) }
                        td class="nowrap" { (status_label(row.status)) }
                        td class="nowrap" { (beijing(row.created_at)) }
                        td class="nowrap" { @if let Some(paid) = row.paid_at { (beijing(paid)) } }
                        td { @if let Some(number) = &row.channel_trade_no { code { (number) } } }
                        td { (exception_badge(row)) }
                    }
                }
                @if view.rows.is_empty() { tr { td colspan="9" class="empty" { "没有符合条件的订单" } } }
            }
        }
        (pager(view.page, view.per_page, view.totals.orders, link))
    }
}

fn student_cell(row: &PaymentRow) -> Markup {
    html! {
        a href={ "/admin/students/" (row.student_id) } { (row.student_name) }
        br;
        span class="muted nowrap" { (masked_id_card(&row.id_card)) }
    }
}

fn exception_badge(row: &PaymentRow) -> Markup {
    html! {
        @if let Some(exception) = &row.exception {
            @if row.resolution.is_some() {
                span class="badge ok" title=(exception) { "异常已处理" }
            } @else {
                span class="badge warn" title=(exception) { "异常" }
            }
        }
    }
}

pub fn detail(detail: &PaymentDetail, can_change: bool, csrf: &str) -> Markup {
    let order = &detail.order;
    html! {
        div class="actions" { a class="btn secondary small" href="/admin/payments" { "返回缴费记录" } }
        div class="panel" {
            dl {
                dt { "订单号" } dd id="order-number" { (order.out_trade_no) }
                dt { "学生" } dd { (student_cell(order)) " " (order.grade) "级 " (order.class_name) }
                dt { "渠道" } dd { (order.channel.label()) }
                dt { "金额" } dd { (yuan(order.amount_fen)) " 元" }
                dt { "状态" } dd id="order-status" { (status_label(order.status)) }
                dt { "下单时间" } dd { (beijing(order.created_at)) }
                dt { "支付截止" } dd { (beijing(detail.expires_at)) }
                dt { "支付时间" } dd { @if let Some(at) = order.paid_at { (beijing(at)) } @else { "—" } }
                dt { "关闭时间" } dd { @if let Some(at) = order.closed_at { (beijing(at)) } @else { "—" } }
                dt { "渠道交易号" } dd { @if let Some(number) = &order.channel_trade_no { code { (number) } } @else { "—" } }
                dt { "付款人 openid" } dd { @if let Some(openid) = &detail.payer_openid { code { (openid) } } @else { "—" } }
                dt { "商品描述" } dd { (detail.description.as_deref().unwrap_or("—")) }
            }
        }
        @if let Some(exception) = &order.exception {
            h2 { "异常" }
            div class="panel" id="order-exception" {
                p { span class="badge warn" { "异常" } " " (exception) }
                @if let Some(resolution) = &order.resolution {
                    (resolution_line(resolution))
                } @else if can_change {
                    (resolve_form(&format!("/admin/payments/exceptions/order/{}/resolve", order.id), csrf))
                } @else {
                    p class="muted" { "尚未处理" }
                }
            }
        }
        h2 { "缴费项目" }
        table class="grid" id="order-items" {
            thead { tr { th { "学年" } th { "项目" } th class="num" { "金额（元）" } } }
            tbody {
                @for line in &detail.lines {
                    tr { td { (line.academic_year) } td { (line.item) } td class="num" { (yuan(line.amount_fen)) } }
                }
            }
        }
        h2 { "支付通知" }
        table class="grid" id="order-notifications" {
            thead { tr { th { "收到时间" } th { "来自" } th { "结果" } th { "原因" } th { "原文" } } }
            tbody {
                @for notification in &detail.notifications {
                    tr {
                        td class="nowrap" { (beijing(notification.received_at)) }
                        td class="nowrap" { (notification.channel.provider().label()) }
                        td { (verdict_label(notification.verdict)) }
                        td { @if let Some(reason) = &notification.reason { (reason_label(reason)) } }
                        td { (raw_body(notification)) }
                    }
                }
                @if detail.notifications.is_empty() { tr { td colspan="5" class="empty" { "尚未收到通知" } } }
            }
        }
    }
}

/// How much of a raw body a page shows (a refused one may be 64 KiB of noise).
const RAW_BODY_SHOWN: usize = 4000;

fn raw_body(notification: &NotificationRecord) -> Markup {
    let body = &notification.raw_body;
    let shown: String = body.chars().take(RAW_BODY_SHOWN).collect();
    html! {
        details {
            summary { "查看原文（" (body.len()) " 字节）" }
            pre class="raw" { (shown) @if shown.len() < body.len() { "…" } }
        }
    }
}

fn resolution_line(resolution: &Resolution) -> Markup {
    html! {
        p class="resolution" {
            span class="badge ok" { "已处理" } " "
            (resolution.by) "，" (beijing(resolution.at)) "：" (resolution.note)
        }
    }
}

fn resolve_form(action: &str, csrf: &str) -> Markup {
    html! {
        form method="post" action=(action) class="resolve" {
            (csrf_field(csrf))
            label { "处理说明（必填，不超过" (MAX_NOTE_CHARS) "字）"
                textarea name="note" rows="2" maxlength=(MAX_NOTE_CHARS) required {}
            }
            button type="submit" class="btn small" { "标记为已处理" }
        }
    }
}

pub struct ExceptionsPage<'a> {
    pub open: &'a ExceptionList,
    pub resolved: &'a ExceptionList,
    pub can_change: bool,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub fn exceptions(view: &ExceptionsPage<'_>) -> Markup {
    let open = view.open;
    html! {
        (flash(view.error, view.notice))
        div class="actions" { a class="btn secondary small" href="/admin/payments" { "返回缴费记录" } }
        h2 { "待处理的订单异常（" (open.orders_total) "）" }
        p class="hint" { "订单关闭后才收到的支付、金额不符、重复支付：核对渠道账单后写明处理结果。" }
        (order_exceptions(&open.orders, view.can_change.then_some(view.csrf), "open-order-exceptions"))
        h2 { "被拒绝的支付通知（" (open.notifications_total) "）" }
        p class="hint" { "签名不符（可能伪造）、没有这个订单、金额不符等，均未入账。" }
        (notification_exceptions(&open.notifications, view.can_change.then_some(view.csrf), "open-notifications"))
        h2 { "已处理" }
        (order_exceptions(&view.resolved.orders, None, "resolved-order-exceptions"))
        (notification_exceptions(&view.resolved.notifications, None, "resolved-notifications"))
    }
}

/// `csrf` is given when the rows get a resolve form.
fn order_exceptions(rows: &[PaymentRow], csrf: Option<&str>, id: &str) -> Markup {
    html! {
        table class="grid" id=(id) {
            thead { tr {
                th { "订单号" } th { "学生" } th { "渠道" } th class="num" { "金额（元）" } th { "状态" }
                th { "支付时间" } th { "异常" } th { "处理" }
            } }
            tbody {
                @for row in rows {
                    tr {
                        td class="nowrap" { a href={ "/admin/payments/" (row.out_trade_no) } { (row.out_trade_no) } }
                        td { (student_cell(row)) }
                        td class="nowrap" { (row.channel.label()) }
                        td class="num" { (yuan(row.amount_fen)) }
                        td class="nowrap" { (status_label(row.status)) }
                        td class="nowrap" { @if let Some(at) = row.paid_at { (beijing(at)) } }
                        td { (row.exception.as_deref().unwrap_or_default()) }
                        td {
                            @if let Some(resolution) = &row.resolution { (resolution_line(resolution)) }
                            @else if let Some(csrf) = csrf {
                                (resolve_form(&format!("/admin/payments/exceptions/order/{}/resolve", row.id), csrf))
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="8" class="empty" { "没有" } } }
            }
        }
    }
}

fn notification_exceptions(rows: &[NotificationRecord], csrf: Option<&str>, id: &str) -> Markup {
    html! {
        table class="grid" id=(id) {
            thead { tr { th { "收到时间" } th { "来自" } th { "订单号" } th { "原因" } th { "原文" } th { "处理" } } }
            tbody {
                @for row in rows {
                    tr {
                        td class="nowrap" { (beijing(row.received_at)) }
                        td class="nowrap" { (row.channel.provider().label()) }
                        td class="nowrap" {
                            @match (&row.out_trade_no, row.order_id) {
                                (Some(number), Some(_)) => a href={ "/admin/payments/" (number) } { (number) },
                                (Some(number), None) => (number),
                                (None, _) => "—",
                            }
                        }
                        td { (row.reason.as_deref().map(reason_label).unwrap_or("—")) }
                        td { (raw_body(row)) }
                        td {
                            @if let Some(resolution) = &row.resolution { (resolution_line(resolution)) }
                            @else if let Some(csrf) = csrf {
                                (resolve_form(&format!("/admin/payments/exceptions/notification/{}/resolve", row.id), csrf))
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="6" class="empty" { "没有" } } }
            }
        }
    }
}

// ---- refunds (issues 7 and 13) ---------------------------------------------------------

/// The longest refund reason, in characters (WeChat Pay shows at most 80).
pub const MAX_REFUND_REASON_CHARS: usize = 80;

/// The 退款 section of an order page.
pub struct RefundsSection<'a> {
    pub out_trade_no: &'a str,
    /// Whether money came in for this order (paid, or paid after close).
    pub refundable: bool,
    pub order_left_fen: i64,
    /// `(fee_item_id, label, what is left of it)`.
    pub items: Vec<(i64, String, i64)>,
    /// The paid orders that cover every item of this one (a true duplicate); empty
    /// when it is not a duplicate.
    pub duplicate_of: &'a [String],
    pub refunds: &'a [crate::store::RefundRecord],
    pub can_change: bool,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub fn refund_status_label(status: crate::store::RefundStatus) -> Markup {
    use crate::store::RefundStatus;
    match status {
        RefundStatus::Requested => html! { span class="badge warn" { "已申请，待渠道确认" } },
        RefundStatus::Processing => html! { span class="badge warn" { "退款处理中" } },
        RefundStatus::Succeeded => html! { span class="badge ok" { "退款成功" } },
        RefundStatus::Failed => html! { span class="badge danger" { "退款失败" } },
    }
}

fn refund_kind_label(refund: &crate::store::RefundRecord) -> &'static str {
    use crate::domain::refund::ItemEffect;
    let whole = refund.fee_item_id.is_none();
    match (refund.effect, whole) {
        (ItemEffect::KeepPaid, _) => "重复缴费退款（项目保持已缴）",
        (ItemEffect::OweAgain, true) => "全额退款（项目改为未缴）",
        (ItemEffect::OweAgain, false) => "按项目退款（项目改为未缴）",
        (ItemEffect::LowerAmount, _) => "按项目退款（调减应缴金额）",
        (ItemEffect::Unchanged, _) if refund.unpays_item => "部分退款（成功后项目改为未缴）",
        (ItemEffect::Unchanged, _) => "部分退款",
    }
}

/// The choice of what the items show afterwards: radio buttons, none ticked.
fn effect_choices(keep_paid: Option<&[String]>, lower: bool) -> Markup {
    html! {
        fieldset class="refund-effect" {
            legend { "退款成功后，项目如何处理（必选）" }
            @if let Some(covers) = keep_paid {
                label class="check" {
                    input type="radio" name="effect" value="keep_paid" required;
                    " 保持已缴：重复缴费，项目已由订单 " (covers.join("、")) " 缴清"
                }
            }
            label class="check" {
                input type="radio" name="effect" value="owe_again" required;
                " 改为未缴：退还的金额由学生重新缴纳"
            }
            @if lower {
                label class="check" {
                    input type="radio" name="effect" value="lower_amount" required;
                    " 调减应缴金额：按退还金额调低该项目金额（如退学按月折算），项目仍为已缴"
                }
            }
        }
    }
}

pub fn refunds(view: &RefundsSection<'_>) -> Markup {
    let action = format!("/admin/payments/{}/refund", view.out_trade_no);
    let duplicate = (!view.duplicate_of.is_empty()).then_some(view.duplicate_of);
    html! {
        h2 id="refunds-title" { "退款" }
        div class="panel refunds" id="order-refunds" {
            (flash(view.error, view.notice))
            @if view.refundable {
                p { "可退余额：" strong id="refund-left" { (yuan(view.order_left_fen)) } " 元" }
                @if let Some(covers) = duplicate {
                    p class="notice" id="refund-duplicate-of" {
                        "重复缴费：本订单的项目已由订单 "
                        @for (index, cover) in covers.iter().enumerate() {
                            @if index > 0 { "、" }
                            a href={ "/admin/payments/" (cover) } { (cover) }
                        }
                        " 缴清。"
                    }
                } @else if view.order_left_fen > 0 {
                    p class="muted" id="refund-not-duplicate" {
                        "没有其他已支付的订单缴清本订单的项目，不是重复缴费：退款后项目须改为未缴或调减应缴金额。"
                    }
                }
            } @else {
                p class="muted" { "该订单未收到支付，无可退款项。" }
            }
            @if view.refundable && view.can_change && view.order_left_fen > 0 {
                div class="refund-forms" {
                    form method="post" action=(action) class="refund whole" {
                        h3 { "全额退款" }
                        (csrf_field(view.csrf))
                        input type="hidden" name="scope" value="order";
                        p class="muted" { "退回本订单可退余额的全部 " (yuan(view.order_left_fen)) " 元。下一步会列出退款后各项目的状态，确认后才提交。" }
                        (effect_choices(duplicate, false))
                        label { "退款原因（必填）"
                            input type="text" name="reason" maxlength=(MAX_REFUND_REASON_CHARS) required;
                        }
                        button type="submit" class="btn small danger" { "全额退款…" }
                    }
                    form method="post" action=(action) class="refund item" {
                        h3 { "按项目退款（如退学）" }
                        (csrf_field(view.csrf))
                        input type="hidden" name="scope" value="item";
                        label { "项目"
                            select name="fee_item_id" required {
                                @for (id, label, left) in &view.items {
                                    option value=(id) disabled[*left <= 0] { (label) "（可退 " (yuan(*left)) " 元）" }
                                }
                            }
                        }
                        label { "退款金额（元）"
                            input type="text" name="amount" inputmode="decimal" required placeholder="例如 1200.00";
                        }
                        (effect_choices(duplicate, true))
                        label { "退款原因（必填）"
                            input type="text" name="reason" maxlength=(MAX_REFUND_REASON_CHARS) required;
                        }
                        button type="submit" class="btn small danger" { "申请退款…" }
                    }
                }
            }
            table class="grid" id="refund-list" {
                thead { tr {
                    th { "退款单号" } th { "类型" } th class="num" { "金额（元）" } th { "状态" }
                    th { "原因" } th { "申请人" } th { "申请时间" } th { "完成时间" } th { "渠道退款单号" } th { "失败原因" }
                } }
                tbody {
                    @for refund in view.refunds {
                        tr {
                            td { code { (refund.out_refund_no) } }
                            td { (refund_kind_label(refund)) }
                            td class="num" { (yuan(refund.amount_fen)) }
                            td class="refund-status" { (refund_status_label(refund.status)) }
                            td { (refund.reason) }
                            td { (refund.requested_by) }
                            td class="nowrap" { (beijing(refund.requested_at)) }
                            td class="nowrap" { @if let Some(at) = refund.finished_at { (beijing(at)) } @else { "—" } }
                            td { @if let Some(number) = &refund.channel_refund_no { code { (number) } } @else { "—" } }
                            td { (refund.failure.as_deref().unwrap_or("")) }
                        }
                    }
                    @if view.refunds.is_empty() { tr { td colspan="10" class="empty" { "暂无退款" } } }
                }
            }
        }
    }
}

/// The confirmation step of a refund: what will be given back, to whom, and what
/// each item will show; its form repeats the choices with `confirmed=1`.
pub struct RefundConfirmation<'a> {
    pub order: &'a PaymentRow,
    pub lines: &'a [crate::store::OrderLine],
    pub plan: &'a crate::store::RefundPlan,
    pub scope: crate::store::RefundScope,
    pub effect: crate::domain::refund::ItemEffect,
    pub reason: &'a str,
    pub csrf: &'a str,
}

/// What an item will show once the refund succeeds, in the office's words.
pub fn item_after_text(after: &crate::domain::refund::ItemAfter) -> String {
    use crate::domain::money::Fen;
    use crate::domain::refund::ItemAfter;
    match after {
        ItemAfter::StaysPaid { covered_by } => format!("仍为已缴（由订单 {covered_by} 缴清）"),
        ItemAfter::OwedAgain { amount_fen } => {
            format!("改为未缴：学生须重新缴纳 {} 元", Fen(*amount_fen))
        }
        ItemAfter::Lowered { from_fen, to_fen } => format!(
            "仍为已缴，应缴金额由 {} 元调减为 {} 元",
            Fen(*from_fen),
            Fen(*to_fen)
        ),
        ItemAfter::AsItIs => "不变（该项目不是由本订单缴清的）".to_owned(),
    }
}

pub fn refund_confirmation(view: &RefundConfirmation<'_>) -> Markup {
    use crate::store::RefundScope;
    let order = view.order;
    let plan = view.plan;
    let action = format!("/admin/payments/{}/refund", order.out_trade_no);
    let label = |fee_item_id: i64| {
        view.lines
            .iter()
            .find(|line| line.fee_item_id == fee_item_id)
            .map(|line| format!("{} {}", line.academic_year, line.item))
            .unwrap_or_else(|| format!("项目 {fee_item_id}"))
    };
    html! {
        div class="actions" { a class="btn secondary small" href={ "/admin/payments/" (order.out_trade_no) } { "返回，不退款" } }
        div class="panel confirm" id="refund-confirm" {
            h2 { "请确认退款" }
            p id="refund-confirm-summary" {
                "将向 " strong { (order.student_name) } "（" (masked_id_card(&order.id_card)) "，"
                (order.grade) "级 " (order.class_name) "）原路退回 "
                strong id="refund-confirm-amount" { (yuan(plan.amount_fen)) } " 元，"
                "来自订单 " code { (order.out_trade_no) } "（" (order.channel.label()) "，实付 " (yuan(order.amount_fen)) " 元）。"
            }
            p { "退款原因：" (view.reason) }
            table class="grid" id="refund-confirm-items" {
                thead { tr { th { "项目" } th class="num" { "退还（元）" } th { "退款成功后" } } }
                tbody {
                    @for planned in &plan.items {
                        tr {
                            td { (label(planned.fee_item_id)) }
                            td class="num" { (yuan(planned.refund_fen)) }
                            td class="item-after" { (item_after_text(&planned.after)) }
                        }
                    }
                }
            }
            p class="hint" {
                "提交后即向支付渠道申请退款，资金原路退回，无法撤销。退款金额自提交起即不再计入实收；"
                "项目在渠道确认退款成功时才按上表改变，退款失败则项目保持不变。"
            }
            form method="post" action=(action) class="refund confirm" {
                (csrf_field(view.csrf))
                input type="hidden" name="confirmed" value="1";
                input type="hidden" name="expected_left" value=(plan.order_left_fen);
                input type="hidden" name="effect" value=(view.effect.code());
                input type="hidden" name="reason" value=(view.reason);
                @match view.scope {
                    RefundScope::WholeOrder => input type="hidden" name="scope" value="order";,
                    RefundScope::Item { fee_item_id, amount_fen } => {
                        input type="hidden" name="scope" value="item";
                        input type="hidden" name="fee_item_id" value=(fee_item_id);
                        input type="hidden" name="amount" value=(crate::domain::money::Fen(amount_fen));
                    }
                }
                button type="submit" class="btn danger" id="refund-confirm-button" {
                    "确认退款 " (yuan(plan.amount_fen)) " 元"
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_links_carry_only_what_was_set() {
        let filter = Filter {
            status: "paid",
            q: "CP2026 01",
            ..Filter::default()
        };
        assert_eq!(
            filter.query(&[("page", "2")]),
            "status=paid&q=CP2026+01&page=2"
        );
        assert_eq!(Filter::default().query(&[]), "");
    }

    #[test]
    fn ids_are_masked_and_bad_ones_hidden_entirely() {
        assert_eq!(masked_id_card("11010519491231002X"), "110105********002X");
        assert_eq!(masked_id_card("not an id"), "******************");
    }
}
