//! The cashier page that plays the payer scanning the code.

use super::*;

// ---- the cashier ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct CashierParams {
    pub(super) qr_code: Option<String>,
    pub(super) return_to: Option<String>,
}

impl CashierParams {
    /// Only http(s) links back: never `javascript:`.
    pub(super) fn return_link(&self) -> Option<Url> {
        kit::return_link(self.return_to.as_deref())
    }

    pub(super) fn order_number(&self, shared: &Shared) -> Option<String> {
        let code = self.qr_code.as_deref().filter(|code| !code.is_empty())?;
        shared.state().qr_codes.get(code).cloned()
    }
}

pub(super) fn yuan_label(fen: i64) -> String {
    format!("¥{}", kit::yuan(fen))
}

const LOOK: CashierLook = CashierLook {
    background: "#f5f5f5",
    button: "#1677ff",
    brand: "支付宝 沙箱",
};

pub(super) fn cashier_refusal(error: &AlipayPayError, back: Option<&Url>) -> Response {
    match error {
        AlipayPayError::UnknownOrder(_) => LOOK.message(
            StatusCode::NOT_FOUND,
            "二维码无效",
            "找不到这笔交易，请返回商户页面重新下单。",
            back,
        ),
        AlipayPayError::AlreadyPaid(_) => {
            LOOK.message(StatusCode::OK, "该交易已支付", "请勿重复支付。", back)
        }
        AlipayPayError::Expired(..) => LOOK.message(
            StatusCode::OK,
            "二维码已过期",
            "请返回商户页面重新下单。",
            back,
        ),
        AlipayPayError::Closed(_) | AlipayPayError::NotPaid(_) => LOOK.message(
            StatusCode::OK,
            "支付失败，本笔交易已关闭",
            "请返回商户页面重新下单。",
            back,
        ),
    }
}

/// Scanning the code: the trade is created (WAIT_BUYER_PAY) and shown with a
/// 确认支付 button.
pub(super) async fn cashier_page(
    State(shared): SharedState,
    Query(params): Query<CashierParams>,
) -> Response {
    let back = params.return_link();
    let Some(number) = params.order_number(&shared) else {
        return cashier_refusal(&AlipayPayError::UnknownOrder(String::new()), back.as_ref());
    };
    let trade = match shared.scan(&number) {
        Ok(trade) => trade,
        Err(error) => return cashier_refusal(&error, back.as_ref()),
    };
    let body = html! {
        p { "付款给 " strong { "沙箱学院（" (SELLER_EMAIL) "）" } }
        p { (trade.subject) }
        p class="amount" { (yuan_label(trade.total_fen)) }
        p class="note" { "当面付 · 商户订单号 " (trade.out_trade_no) }
        form method="post" action=(CASHIER_PATH) {
            input type="hidden" name="qr_code" value=(trade.qr_code);
            @if let Some(back) = &back {
                input type="hidden" name="return_to" value=(back.as_str());
            }
            button type="submit" { "确认支付" }
        }
        p class="note" { "这是模拟的支付宝收银台，不会产生真实扣款。" }
    };
    LOOK.page("支付宝", body).into_response()
}

pub(super) async fn cashier_pay(
    State(shared): SharedState,
    Form(params): Form<CashierParams>,
) -> Response {
    let back = params.return_link();
    let Some(number) = params.order_number(&shared) else {
        return cashier_refusal(&AlipayPayError::UnknownOrder(String::new()), back.as_ref());
    };
    match shared.mark_paid(&number) {
        Ok(paid) => {
            let delivering = shared.clone();
            let out_trade_no = number.clone();
            shared.spawn_background(async move {
                if let Err(error) = deliver(delivering, out_trade_no).await {
                    tracing::warn!(%error, "the Alipay sandbox could not notify");
                }
            });
            let fen = price_fen(&paid.total_amount).unwrap_or_default();
            let body = html! {
                h1 { "支付成功" }
                p class="amount" { (yuan_label(fen)) }
                p class="note" { "支付宝交易号 " (paid.trade_no) }
                @if let Some(back) = &back {
                    p { a href=(back.as_str()) { "返回商户页面" } }
                }
            };
            LOOK.page("支付成功", body).into_response()
        }
        Err(error) => cashier_refusal(&error, back.as_ref()),
    }
}
