//! Receipts in the console: checking a receipt's verification code, and one paid
//! order's receipt with its provincial e-bill (财政电子票据) form.

use maud::{Markup, html};

use super::payments::masked_id_card;
use super::{beijing, csrf_field, flash, yuan};
use crate::domain::receipt::{EbillStatus, grouped};
use crate::store::ReceiptRecord;

/// What a check came to.
pub enum Checked<'a> {
    /// No code typed yet.
    NotAsked,
    /// 无此凭证.
    NotFound,
    Found(&'a ReceiptRecord),
}

pub fn check(typed: &str, checked: &Checked<'_>) -> Markup {
    html! {
        form method="get" action="/admin/receipts" class="filters" {
            label { "凭证验证码" input type="text" name="code" id="receipt-code-input" value=(typed) placeholder="XXXX-XXXX-XXXX-XXXX" autocomplete="off" autofocus; }
            button type="submit" class="btn small" id="check-receipt" { "查验" }
        }
        @match checked {
            Checked::NotAsked => p class="hint" { "输入学生缴费凭证上的验证码（有无短横线、大小写均可），查验凭证是否由本系统开出。" },
            Checked::NotFound => div class="error" role="alert" id="receipt-check-result" { "无此凭证" },
            Checked::Found(receipt) => div class="panel" id="receipt-check-result" {
                @if receipt.void {
                    p id="receipt-check-verdict" { span class="badge danger" { "凭证已作废" } " 该笔缴费已全额退款。" }
                } @else if receipt.refunds.is_empty() {
                    p id="receipt-check-verdict" { span class="badge ok" { "凭证有效" } }
                } @else {
                    p id="receipt-check-verdict" { span class="badge warn" { "凭证有效（部分退款）" } " 已退或在退 " (yuan(receipt.refunded_fen())) " 元，见下表。" }
                }
                (summary(receipt))
                p { a href=(format!("/admin/receipts/{}", receipt.out_trade_no)) id="receipt-detail-link" { "查看凭证与财政电子票据" } }
            },
        }
    }
}

/// The order a receipt stands for.
fn summary(receipt: &ReceiptRecord) -> Markup {
    html! {
        dl class="receipt-summary" {
            dt { "订单号" } dd id="check-order" { a href=(format!("/admin/payments/{}", receipt.out_trade_no)) { (receipt.out_trade_no) } }
            dt { "学生" } dd id="check-student" { (receipt.student_name) " " (masked_id_card(&receipt.id_card)) }
            dt { "班级" } dd { (receipt.grade) "级 " (receipt.class_name) }
            dt { "金额（元）" } dd id="check-amount" { (yuan(receipt.amount_fen)) }
            dt { "支付时间" } dd id="check-paid-at" { (beijing(receipt.paid_at)) }
            dt { "支付渠道" } dd { (receipt.channel.provider().label()) " " (receipt.channel_trade_no.as_deref().unwrap_or("")) }
            dt { "验证码" } dd { code { (grouped(&receipt.receipt_code)) } }
        }
        table class="grid" id="check-items" {
            thead { tr { th { "学年" } th { "项目" } th class="num" { "金额（元）" } } }
            tbody {
                @for line in &receipt.lines {
                    tr { td { (line.academic_year) } td { (line.item) } td class="num" { (yuan(line.amount_fen)) } }
                }
            }
        }
        @if !receipt.refunds.is_empty() {
            table class="grid" id="check-refunds" {
                thead { tr { th { "退款" } th class="num" { "金额（元）" } th { "时间" } } }
                tbody {
                    @for refund in &receipt.refunds {
                        tr {
                            td { @if refund.succeeded { "已退款" } @else { "退款处理中" } }
                            td class="num" { (yuan(refund.amount_fen)) }
                            td class="nowrap" { (beijing(refund.at)) }
                        }
                    }
                }
            }
        }
    }
}

pub struct DetailPage<'a> {
    pub receipt: &'a ReceiptRecord,
    pub can_change: bool,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    /// The form as posted, when it is shown again with an error.
    pub typed_number: Option<&'a str>,
}

pub fn detail(page: &DetailPage<'_>) -> Markup {
    let receipt = page.receipt;
    let status = receipt.ebill_status;
    let number = page
        .typed_number
        .or(receipt.ebill_number.as_deref())
        .unwrap_or("");
    html! {
        (flash(page.error, page.notice))
        div class="panel" { (summary(receipt)) }
        h2 { "财政电子票据" }
        p id="ebill-current" {
            @match status {
                None => "未开具",
                Some(status) => {
                    (status.label())
                    @if let Some(number) = &receipt.ebill_number { "，票据号 " code { (number) } }
                }
            }
        }
        p class="hint" { "财政电子票据在省财政电子票据平台开具后，在此登记票据号；学生的缴费凭证随即显示。" }
        @if page.can_change {
            form method="post" action=(format!("/admin/receipts/{}/ebill", receipt.out_trade_no)) class="filters" id="ebill-form" {
                (csrf_field(page.csrf))
                label { "状态"
                    select name="status" id="ebill-status" {
                        option value="issued" selected[status != Some(EbillStatus::Voided)] { "已开具" }
                        option value="voided" selected[status == Some(EbillStatus::Voided)] { "已作废" }
                    }
                }
                label { "票据号" input type="text" name="number" id="ebill-number" value=(number) maxlength="64" required; }
                button type="submit" class="btn small" id="record-ebill" { "登记" }
            }
        }
    }
}
