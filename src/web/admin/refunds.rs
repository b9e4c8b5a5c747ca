//! Refunds from an order's console page (issues 7 and 13): the 退款 section, and
//! `POST /admin/payments/{out_trade_no}/refund` in two steps. The first POST checks
//! the form and answers with a confirmation naming the amount, the student and what
//! each item will show afterwards; only the second, confirmed POST records the refund
//! (with its audit row) and asks the channel.
//!
//! What the items show is the office's choice and has no default: they stay paid only
//! for a true duplicate (another paid order covers them, named on the page and checked
//! again by the store under locks); otherwise the refunded amount is owed again or the
//! item's amount is lowered by it. The reason is typed every time.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::Markup;
use serde::Deserialize;
use serde_json::json;

use super::payments::order_page;
use super::{Console, redirect};
use crate::domain::money::Fen;
use crate::domain::refund::ItemEffect;
use crate::pay::refunds::{RefundAsk, RefundError, Refunds};
use crate::store::{CreateRefund, PaymentDetail, RefundScope};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::views::admin::Section;
use crate::web::views::admin::payments as views;

/// The 退款 section of an order's page: what is left, whether the order is a true
/// duplicate (and of which order), the forms, the refunds so far.
pub(super) async fn section(
    state: &AppState,
    console: &Console,
    detail: &PaymentDetail,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Markup, AppError> {
    let order = &detail.order;
    let store = &state.store;
    let refunds = store.refunds_of_order(order.id).await?;
    let refundable = store.refundable(order.id).await?;
    let took_money = order.paid_at.is_some() && order.channel_trade_no.is_some();
    let refundable = refundable.filter(|_| took_money);
    let items = detail
        .lines
        .iter()
        .map(|line| {
            let left = refundable
                .as_ref()
                .and_then(|refundable| refundable.item_left(line.fee_item_id))
                .unwrap_or(0);
            let label = format!("{} {}", line.academic_year, line.item);
            (line.fee_item_id, label, left)
        })
        .collect();
    // A true duplicate: every item covered by another paid order.
    let duplicate_of = match store
        .preview_refund(
            &order.out_trade_no,
            RefundScope::WholeOrder,
            ItemEffect::KeepPaid,
        )
        .await?
    {
        Ok(plan) => covering_orders(&plan.items),
        Err(_) => Vec::new(),
    };
    Ok(views::refunds(&views::RefundsSection {
        out_trade_no: &order.out_trade_no,
        refundable: refundable.is_some(),
        order_left_fen: refundable.map_or(0, |refundable| refundable.order_left_fen),
        items,
        duplicate_of: &duplicate_of,
        refunds: &refunds,
        can_change: console.can_change(),
        csrf: console.csrf(),
        error,
        notice,
    }))
}

/// The distinct orders a duplicate's plan names.
fn covering_orders(plan: &[crate::domain::refund::PlannedItem]) -> Vec<String> {
    let mut orders: Vec<String> = Vec::new();
    for planned in plan {
        if let crate::domain::refund::ItemAfter::StaysPaid { covered_by } = &planned.after
            && !orders.contains(covered_by)
        {
            orders.push(covered_by.clone());
        }
    }
    orders
}

#[derive(Debug, Deserialize)]
pub(super) struct RefundForm {
    #[serde(default)]
    csrf: String,
    /// `order` (everything left) or `item`.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    fee_item_id: Option<i64>,
    #[serde(default)]
    amount: String,
    /// `keep_paid`, `owe_again` or `lower_amount`: required, never defaulted.
    #[serde(default)]
    effect: String,
    #[serde(default)]
    reason: String,
    /// `1` on the confirmation's own form: only then does money move.
    #[serde(default)]
    confirmed: String,
    /// What the order had left (fen) when the confirmation was shown.
    #[serde(default)]
    expected_left: Option<i64>,
}

/// What the form asks for, checked. Nothing is assumed: a missing choice is refused.
fn refund_ask(form: &RefundForm) -> Result<RefundAsk, &'static str> {
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err("请填写退款原因");
    }
    if reason.chars().count() > views::MAX_REFUND_REASON_CHARS {
        return Err("退款原因不能超过80字");
    }
    let scope = match form.scope.as_str() {
        "order" => RefundScope::WholeOrder,
        "item" => {
            let fee_item_id = form.fee_item_id.ok_or("请选择退款项目")?;
            let amount = Fen::parse_yuan(form.amount.trim()).map_err(|_| "退款金额格式不正确")?;
            if amount.0 <= 0 {
                return Err("退款金额必须大于0");
            }
            RefundScope::Item {
                fee_item_id,
                amount_fen: amount.0,
            }
        }
        _ => return Err("请选择全额退款或按项目退款"),
    };
    let effect = ItemEffect::from_form(&form.effect).ok_or(
        "请选择退款后项目如何处理：改为未缴（学生重新缴纳）、调减应缴金额，或（重复缴费时）保持已缴",
    )?;
    Ok(RefundAsk {
        scope,
        effect,
        reason: reason.to_owned(),
        expected_left_fen: form.expected_left,
    })
}

/// The office's message for a refund that may not be recorded.
fn refused_message(refused: &RefundError) -> Option<String> {
    Some(match refused {
        RefundError::TooMuch { left_fen } => format!(
            "退款金额超过可退余额（可退 {} 元），未提交",
            Fen(*left_fen).to_yuan()
        ),
        RefundError::NotPaid => "该订单未收到支付，不能退款".to_owned(),
        RefundError::NotAnItemOfTheOrder => "所选项目不属于该订单".to_owned(),
        RefundError::ChannelNotConfigured(_) => "该支付渠道未配置，无法退款".to_owned(),
        RefundError::Refused(why) => format!("{why}，未提交"),
        RefundError::Changed { left_fen } => format!(
            "确认后订单的可退余额已变为 {} 元（可能有人同时办理了退款），未提交，请重新确认",
            Fen(*left_fen).to_yuan()
        ),
        RefundError::UnknownOrder | RefundError::Store(_) => return None,
    })
}

fn refusal(created: CreateRefund) -> RefundError {
    match created {
        CreateRefund::UnknownOrder | CreateRefund::Created(_) => RefundError::UnknownOrder,
        CreateRefund::NotPaid => RefundError::NotPaid,
        CreateRefund::NotAnItemOfTheOrder => RefundError::NotAnItemOfTheOrder,
        CreateRefund::TooMuch { left_fen } => RefundError::TooMuch { left_fen },
        CreateRefund::Refused(why) => RefundError::Refused(why),
        CreateRefund::Changed { left_fen } => RefundError::Changed { left_fen },
    }
}

/// `POST /admin/payments/{out_trade_no}/refund`: finance only. Unconfirmed, it shows
/// what would happen; confirmed, it records the refund (with its audit row) before the
/// channel is asked.
pub(super) async fn refund(
    State(state): State<AppState>,
    console: Console,
    Path(out_trade_no): Path<String>,
    Form(form): Form<RefundForm>,
) -> Result<Response, AppError> {
    console.authorize_change(&form.csrf)?;
    let Some(detail) = state.store.payment_detail(&out_trade_no).await? else {
        return Err(AppError::NotFound);
    };
    let refused = |message: String| {
        let state = state.clone();
        let console = &console;
        let out_trade_no = out_trade_no.clone();
        async move {
            let status = StatusCode::BAD_REQUEST;
            order_page(&state, console, &out_trade_no, status, Some(&message), None).await
        }
    };
    let ask = match refund_ask(&form) {
        Ok(ask) => ask,
        Err(message) => return refused(message.to_owned()).await,
    };
    if form.confirmed != "1" {
        let preview = state
            .store
            .preview_refund(&out_trade_no, ask.scope, ask.effect)
            .await?;
        let plan = match preview {
            Ok(plan) => plan,
            Err(created) => match refused_message(&refusal(created)) {
                Some(message) => return refused(message).await,
                None => return Err(AppError::NotFound),
            },
        };
        let content = views::refund_confirmation(&views::RefundConfirmation {
            order: &detail.order,
            lines: &detail.lines,
            plan: &plan,
            scope: ask.scope,
            effect: ask.effect,
            reason: &ask.reason,
            csrf: console.csrf(),
        });
        let title = format!("确认退款 {}", detail.order.out_trade_no);
        return Ok(console.page(&state, Section::Payments, &title, content));
    }
    let (scope, fee_item_id) = match ask.scope {
        RefundScope::WholeOrder => ("order", None),
        RefundScope::Item { fee_item_id, .. } => ("item", Some(fee_item_id)),
    };
    let entry = console
        .audit("refund.request", format!("order:{out_trade_no}"))
        .after(json!({
            "out_trade_no": out_trade_no,
            "scope": scope,
            "fee_item_id": fee_item_id,
            "effect": ask.effect.code(),
            "reason": ask.reason,
        }));
    let refunds = Refunds::from_checkout(&state.checkout);
    match refunds.request(&out_trade_no, &ask, entry).await {
        Ok(refund) => {
            tracing::info!(admin = %console.admin.username, out_refund_no = %refund.out_refund_no, "refund requested");
            Ok(redirect(&format!(
                "/admin/payments/{out_trade_no}?refund=1"
            )))
        }
        Err(RefundError::UnknownOrder) => Err(AppError::NotFound),
        Err(RefundError::Store(error)) => Err(error.into()),
        Err(other) => match refused_message(&other) {
            Some(message) => refused(message).await,
            None => Err(AppError::NotFound),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(scope: &str, effect: &str, reason: &str) -> RefundForm {
        RefundForm {
            csrf: String::new(),
            scope: scope.into(),
            fee_item_id: Some(7),
            amount: "12.34".into(),
            effect: effect.into(),
            reason: reason.into(),
            confirmed: String::new(),
            expected_left: None,
        }
    }

    #[test]
    fn a_refund_needs_a_reason_a_scope_and_a_chosen_effect() {
        assert_eq!(
            refund_ask(&form("order", "owe_again", "  ")).err(),
            Some("请填写退款原因")
        );
        let no_choice = refund_ask(&form("order", "", "退学")).expect_err("no default");
        assert!(
            no_choice.contains("请选择退款后项目如何处理"),
            "{no_choice}"
        );
        assert!(refund_ask(&form("", "owe_again", "退学")).is_err());
        let ask = refund_ask(&form("item", "lower_amount", " 退学 ")).expect("valid");
        assert_eq!(
            ask.scope,
            RefundScope::Item {
                fee_item_id: 7,
                amount_fen: 1234
            }
        );
        assert_eq!(ask.effect, ItemEffect::LowerAmount);
        assert_eq!(ask.reason, "退学");
    }
}
