//! Paying: the JSAPI page inside WeChat, the channel choice and the QR code on PC,
//! and the result (缴费成功, or still waiting).

use maud::{Markup, PreEscaped, html};

use super::fees::FeeLine;
use super::{Surface, alerts, card_class, office_note, page};
use crate::domain::money::Fen;

/// What every payment page shows of the order.
#[derive(Debug, Clone)]
pub struct OrderSummary {
    pub out_trade_no: String,
    pub lines: Vec<FeeLine>,
    pub total: Fen,
    /// Beijing time, for the student.
    pub time: String,
}

fn order_cells(order: &OrderSummary) -> Markup {
    html! {
        div class="cells" id="order-items" {
            @for line in &order.lines {
                div class="cell" {
                    span class="item" style="flex:1" { (line.academic_year) " " (line.item) }
                    span class="amount" { "¥" (line.amount) }
                }
            }
        }
        div class="total" { span { "合计" } strong id="total" { "¥" (order.total) } }
        div class="cells" {
            div class="cell" { span class="label" { "订单号" } span class="value" id="order-number" { (order.out_trade_no) } }
        }
    }
}

/// Inside WeChat: 立即支付 opens WeChat's cashier.
pub fn jsapi(
    school: &str,
    order: &OrderSummary,
    params_json: &str,
    result_url: &str,
    sandbox_cashier: Option<&str>,
) -> Markup {
    page(
        Surface::Mobile,
        school,
        "确认支付",
        html! {
            p class="cells-title" { "缴费项目" }
            (order_cells(order))
            div class="cells" {
                div class="cell" { span class="label" { "收款方" } span class="value" id="payee" { (school) } }
            }
            p class="tips" { "学校不会通过电话、短信或微信向你索要银行卡号、密码或验证码。" }
            div class="error" id="pay-message" role="alert" {}
            div class="btn-area" {
                button class="btn" type="button" id="pay-now" data-params=(params_json) data-result-url=(result_url) data-autostart="1" { "立即支付" }
            }
            div class="btn-area" { a class="btn secondary" id="check-result" href=(result_url) { "我已付款，查询结果" } }
            @if let Some(cashier) = sandbox_cashier {
                p class="tips" { "演示环境：" a id="sandbox-cashier" href=(cashier) { "在沙箱收银台模拟支付" } }
            }
            (office_note())
            script src="/assets/pay.js" defer {}
        },
    )
}

/// A channel the PC portal offers.
#[derive(Debug, Clone)]
pub struct ChannelChoice {
    pub label: &'static str,
    pub action: &'static str,
    pub hint: &'static str,
}

/// PC: 支付宝, 微信, 中国农业银行 — those configured.
pub fn choose_channel(
    school: &str,
    csrf: &str,
    lines: &[FeeLine],
    channels: &[ChannelChoice],
    notice: Option<&str>,
) -> Markup {
    let total: Fen = lines.iter().map(|line| line.amount).sum();
    page(
        Surface::Pc,
        school,
        "选择支付方式",
        html! {
            @if let Some(notice) = notice { div class="notice" role="status" id="bank-hold" { (notice) } }
            div class=(card_class(Surface::Pc, false)) {
                p class="cells-title" { "应缴合计 " strong { "¥" (total) } "，请选择支付方式" }
                div class="cells channels" {
                    @for channel in channels {
                        form method="post" action=(channel.action) class="cell" {
                            input type="hidden" name="csrf" value=(csrf);
                            @for line in lines { input type="hidden" name="item" value=(line.id); }
                            button type="submit" id=(format!("channel-{}", channel.action.trim_start_matches("/pay/").replace('/', "-"))) {
                                strong { (channel.label) } " " span class="status" { (channel.hint) }
                            }
                        }
                    }
                }
                div class="btn-area" { a class="btn secondary" href="/fees" { "返回缴费项目" } }
                (office_note())
            }
        },
    )
}

/// PC: the QR code to scan, watched until paid.
pub fn qr_code(
    school: &str,
    order: &OrderSummary,
    channel_label: &str,
    svg: &str,
    status_url: &str,
    result_url: &str,
    sandbox_cashier: Option<&str>,
) -> Markup {
    page(
        Surface::Pc,
        school,
        "扫码支付",
        html! {
            div class=(card_class(Surface::Pc, false)) data-poll-url=(status_url) data-done-url=(result_url) {
                div class="qr" id="qr-code" {
                    (PreEscaped(svg))
                    p class="hint" { "请使用" (channel_label) "扫一扫，支付 " strong { "¥" (order.total) } }
                }
                (order_cells(order))
                div class="cells" {
                    div class="cell" { span class="label" { "收款方" } span class="value" id="payee" { (school) } }
                }
                p class="tips" { "支付完成后本页会自动跳转；也可" a href=(result_url) id="check-result" { "点此查询结果" } "。" }
                @if let Some(cashier) = sandbox_cashier {
                    p class="tips" { "演示环境：" a id="sandbox-cashier" href=(cashier) target="_blank" { "在沙箱收银台模拟扫码支付" } }
                }
                (office_note())
                script src="/assets/pay.js" defer {}
            }
        },
    )
}

/// Where an order ended up, in the student's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Paid,
    Waiting,
    Closed,
    UnderReview,
    /// Paid, then refunded in full: the receipt is void.
    Refunded,
}

pub fn result(
    surface: Surface,
    school: &str,
    order: &OrderSummary,
    kind: ResultKind,
    status_url: &str,
    self_url: &str,
) -> Markup {
    let (icon, title, text) = match kind {
        ResultKind::Paid => ("✓", "缴费成功", "款项已入账，缴费项目已更新。"),
        ResultKind::Waiting => (
            "…",
            "等待支付结果",
            "尚未收到支付结果。如已付款，请稍候，本页会自动刷新。",
        ),
        ResultKind::Closed => (
            "!",
            "订单已关闭",
            "该订单未支付，已关闭。如需缴费，请返回重新选择。",
        ),
        ResultKind::UnderReview => (
            "!",
            "支付已收到，正在核对",
            "我们已收到该笔支付，计财处正在核对，请勿重复缴费。",
        ),
        ResultKind::Refunded => (
            "!",
            "已退款",
            "该笔缴费已全额退款，款项原路退回，缴费凭证已作废。退款后的缴费项目请返回查看。",
        ),
    };
    let waiting = kind == ResultKind::Waiting;
    page(
        surface,
        school,
        title,
        html! {
            div class=(card_class(surface, false)) data-poll-url=[waiting.then_some(status_url)] data-done-url=[waiting.then_some(self_url)] {
                div class="result" id="result" {
                    div class=(if kind == ResultKind::Paid { "icon" } else { "icon wait" }) { (icon) }
                    h2 id="result-title" { (title) }
                    p class="tips" { (text) }
                }
                (order_cells(order))
                div class="cells" {
                    div class="cell" { span class="label" { "时间" } span class="value" id="order-time" { (order.time) } }
                }
                @if waiting {
                    div class="btn-area" { a class="btn" href=(self_url) id="check-result" { "重新查询" } }
                }
                @if kind == ResultKind::Paid || kind == ResultKind::Refunded {
                    div class="btn-area" { a class="btn" href=(format!("{self_url}/receipt")) id="view-receipt" { "查看缴费凭证" } }
                }
                div class="btn-area" { a class="btn secondary" href=(surface.path("/fees")) id="back-to-fees" { "返回缴费项目" } }
                (alerts(None, None))
                (office_note())
                @if waiting { script src="/assets/pay.js" defer {} }
            }
        },
    )
}
