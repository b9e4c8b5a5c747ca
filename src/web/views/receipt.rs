//! The receipt (缴费凭证) a student opens after paying, printable on A5 or A4: the
//! school, the student, the items, the total in figures and in capitals, the channel
//! and its transaction number, our order number, the time, the verification code,
//! and the provincial e-bill's status.

use maud::{Markup, html};

use super::{Surface, card_class, office_note, page};
use crate::domain::id_card::IdCardNumber;
use crate::domain::money::Fen;
use crate::domain::receipt::{CapitalError, capital_amount, ebill_line, grouped};
use crate::store::{PaymentChannel, ReceiptRecord};

/// Everything the receipt prints, ready to show (ID masked, time in Beijing).
#[derive(Debug, Clone)]
pub struct ReceiptView {
    pub student_name: String,
    pub masked_id_card: String,
    pub grade: i32,
    pub class_name: String,
    pub lines: Vec<ReceiptLine>,
    pub total: Fen,
    /// `人民币陆仟零伍拾元伍角`.
    pub total_in_capitals: String,
    pub channel: PaymentChannel,
    pub channel_trade_no: String,
    pub out_trade_no: String,
    /// Beijing time, `2026-09-01 10:00:00`.
    pub paid_at: String,
    /// `XXXX-XXXX-XXXX-XXXX`.
    pub code: String,
    /// `财政电子票据：未开具`, or its status and number.
    pub ebill_line: String,
    /// The refunds of the payment that have not failed.
    pub refunds: Vec<RefundLine>,
    /// Refunded in full: the receipt is void (作废).
    pub void: bool,
}

/// A refund as the receipt prints it.
#[derive(Debug, Clone)]
pub struct RefundLine {
    pub amount: Fen,
    /// Back with the payer; otherwise still on its way.
    pub succeeded: bool,
    /// Beijing time: when it succeeded, or when it was asked for.
    pub at: String,
}

impl ReceiptView {
    /// What the receipt prints of a stored receipt: the ID masked, Beijing time, the
    /// total in capitals.
    pub fn from_record(record: &ReceiptRecord) -> Result<ReceiptView, CapitalError> {
        let total = Fen(record.amount_fen);
        Ok(ReceiptView {
            student_name: record.student_name.clone(),
            masked_id_card: masked(&record.id_card),
            grade: record.grade,
            class_name: record.class_name.clone(),
            lines: record
                .lines
                .iter()
                .map(|line| ReceiptLine {
                    academic_year: line.academic_year.clone(),
                    item: line.item.clone(),
                    amount: Fen(line.amount_fen),
                })
                .collect(),
            total,
            total_in_capitals: capital_amount(total)?,
            channel: record.channel,
            channel_trade_no: record.channel_trade_no.clone().unwrap_or_default(),
            out_trade_no: record.out_trade_no.clone(),
            paid_at: super::beijing(record.paid_at),
            code: grouped(&record.receipt_code),
            ebill_line: ebill_line(record.ebill_status, record.ebill_number.as_deref()),
            refunds: record
                .refunds
                .iter()
                .map(|refund| RefundLine {
                    amount: Fen(refund.amount_fen),
                    succeeded: refund.succeeded,
                    at: super::beijing(refund.at),
                })
                .collect(),
            void: record.void,
        })
    }
}

/// The ID number as pages show it; a stored number that no longer parses is hidden
/// whole rather than shown.
pub fn masked(id_card: &str) -> String {
    IdCardNumber::parse(id_card)
        .map(|id| id.masked())
        .unwrap_or_else(|_| "******************".to_owned())
}

#[derive(Debug, Clone)]
pub struct ReceiptLine {
    pub academic_year: String,
    pub item: String,
    pub amount: Fen,
}

pub fn receipt(surface: Surface, school: &str, receipt: &ReceiptView) -> Markup {
    let back = surface.path(&format!("/orders/{}", receipt.out_trade_no));
    page(
        surface,
        school,
        "缴费凭证",
        html! {
            div class=(card_class(surface, false)) {
            article class="receipt" id="receipt" {
                header class="receipt-head" {
                    @if receipt.void {
                        div class="receipt-void" id="receipt-void" role="alert" { "作废：该笔缴费已全额退款，本凭证无效" }
                    }
                    div class="receipt-school" id="receipt-school" { (school) }
                    h2 { "缴费凭证" }
                    div class="receipt-code" { "验证码 " strong id="receipt-code" { (receipt.code) } }
                }
                table class="receipt-grid" id="receipt-student" {
                    tr {
                        th { "姓名" } td id="receipt-name" { (receipt.student_name) }
                        th { "身份证号" } td id="receipt-id-card" { (receipt.masked_id_card) }
                    }
                    tr {
                        th { "年级" } td id="receipt-grade" { (receipt.grade) "级" }
                        th { "班级" } td id="receipt-class" { (receipt.class_name) }
                    }
                }
                table class="receipt-grid receipt-items" id="receipt-items" {
                    thead { tr { th { "学年" } th { "项目" } th class="num" { "金额（元）" } } }
                    tbody {
                        @for line in &receipt.lines {
                            tr {
                                td { (line.academic_year) }
                                td { (line.item) }
                                td class="num" { (line.amount) }
                            }
                        }
                    }
                    tfoot {
                        tr {
                            th colspan="2" { "合计（小写）" }
                            td class="num" id="receipt-total" { "¥" (receipt.total) }
                        }
                        tr {
                            th { "合计（大写）" }
                            td colspan="2" id="receipt-capitals" { (receipt.total_in_capitals) }
                        }
                    }
                }
                table class="receipt-grid" id="receipt-payment" {
                    tr {
                        th { "支付渠道" } td id="receipt-channel" { (receipt.channel.provider().label()) }
                        th { "渠道交易号" } td id="receipt-trade-no" { (receipt.channel_trade_no) }
                    }
                    tr {
                        th { "订单号" } td id="receipt-order" { (receipt.out_trade_no) }
                        th { "支付时间" } td { span id="receipt-paid-at" { (receipt.paid_at) } "（北京时间）" }
                    }
                }
                @if !receipt.refunds.is_empty() {
                    table class="receipt-grid receipt-refunds" id="receipt-refunds" {
                        thead { tr { th { "退款" } th class="num" { "金额（元）" } th { "时间（北京时间）" } } }
                        tbody {
                            @for refund in &receipt.refunds {
                                tr {
                                    td { @if refund.succeeded { "已退款" } @else { "退款处理中" } }
                                    td class="num" { (refund.amount) }
                                    td { (refund.at) }
                                }
                            }
                        }
                    }
                }
                p class="receipt-ebill" id="receipt-ebill" { (receipt.ebill_line) }
                p class="receipt-note" {
                    "本凭证为网上缴费的支付凭证，不是财政电子票据。财政电子票据由学校计财处开具，"
                    "以省财政电子票据平台查验为准。凭证真伪可凭验证码向计财处查验。"
                }
            }
            div class="btn-area no-print" {
                button class="btn" type="button" id="print-receipt" onclick="window.print()" { "打印凭证" }
            }
            div class="btn-area no-print" {
                a class="btn secondary" href=(back) id="back-to-result" { "返回缴费结果" }
            }
            (office_note())
            }
        },
    )
}
