//! A payment that arrived for an order we had closed: the order page's section that
//! shows it, and the page that asks before applying it to the order's items.

use maud::{Markup, html};

use super::payments::masked_id_card;
use super::{beijing, csrf_field, flash, yuan};
use crate::store::{OrderStatus, PaymentDetail};

/// Whether the order holds money received after we closed it.
pub fn holds_money(detail: &PaymentDetail) -> bool {
    let order = &detail.order;
    order.status == OrderStatus::Closed
        && order.channel_trade_no.is_some()
        && order.paid_at.is_some()
        && order.exception.is_some()
}

/// The order page's section: what came in, and the two ways on (apply it to the
/// items, or refund it with the order's refund form below).
pub fn section(detail: &PaymentDetail, can_change: bool) -> Markup {
    if !holds_money(detail) {
        return html! {};
    }
    let order = &detail.order;
    let apply = format!("/admin/payments/{}/flagged/apply", order.out_trade_no);
    html! {
        h2 id="flagged-title" { "关闭后收到的支付" }
        div class="panel" id="flagged-payment" {
            p {
                "此订单关闭后仍收到一笔支付：渠道交易号 "
                code { (order.channel_trade_no.as_deref().unwrap_or_default()) }
                "，金额 " strong { (yuan(order.amount_fen)) } " 元"
                @if let Some(at) = order.paid_at { "，支付时间 " (beijing(at)) }
                "。这笔钱已到账，但尚未计入任何缴费项目。"
            }
            @if order.resolution.is_none() && can_change {
                div class="actions" {
                    a class="btn small" id="flagged-apply" href=(apply) { "入账到订单项目…" }
                    " "
                    a class="btn secondary small" id="flagged-refund" href="#refunds-title" { "退款…" }
                }
                p class="hint" { "入账：仅当这些项目未由其他订单缴清时可用，入账前会再确认。退款：使用下方的退款表单。" }
            }
        }
    }
}

/// What the confirmation page shows.
pub struct ConfirmPage<'a> {
    pub detail: &'a PaymentDetail,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

/// "Apply this payment to the items?": the amount, the student, the items and what
/// they will show afterwards; the button is the confirmation.
pub fn confirm(page: &ConfirmPage<'_>) -> Markup {
    let order = &page.detail.order;
    let action = format!("/admin/payments/{}/flagged/apply", order.out_trade_no);
    let back = format!("/admin/payments/{}", order.out_trade_no);
    html! {
        (flash(page.error, None))
        div class="panel" id="flagged-confirm" {
            p {
                "将订单 " code { (order.out_trade_no) } " 关闭后收到的 "
                strong id="flagged-amount" { (yuan(order.amount_fen)) " 元" }
                "（渠道交易号 " code { (order.channel_trade_no.as_deref().unwrap_or_default()) } "）"
                "入账到学生 " strong id="flagged-student" { (order.student_name) }
                "（" (masked_id_card(&order.id_card)) "，" (order.grade) "级 " (order.class_name) "）的以下项目："
            }
            table {
                thead { tr { th { "学年" } th { "项目" } th { "金额（元）" } } }
                tbody {
                    @for line in &page.detail.lines {
                        tr { td { (line.academic_year) } td { (line.item) } td { (yuan(line.amount_fen)) } }
                    }
                }
            }
            p id="flagged-after" { "入账后：这些项目显示为“已缴”，学生不再欠费；订单改为已支付，可开具收据；此操作记入操作日志。" }
            form method="post" action=(action) {
                (csrf_field(page.csrf))
                button class="btn" id="flagged-confirm-apply" type="submit" { "确认入账" }
                " "
                a class="btn secondary" href=(back) { "取消" }
            }
        }
    }
}
