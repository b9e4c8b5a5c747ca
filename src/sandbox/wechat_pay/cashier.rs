//! The cashier page that plays the payer.

use super::*;

// ---- the cashier page ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct CashierParams {
    pub(super) prepay_id: Option<String>,
    pub(super) code_url: Option<String>,
    pub(super) return_to: Option<String>,
}

impl CashierParams {
    pub(super) fn handle(&self) -> Option<&str> {
        self.prepay_id
            .as_deref()
            .or(self.code_url.as_deref())
            .filter(|handle| !handle.is_empty())
    }

    /// Only http(s) links back: never `javascript:`.
    pub(super) fn return_link(&self) -> Option<Url> {
        kit::return_link(self.return_to.as_deref())
    }
}

pub(super) struct CashierView {
    pub(super) payee: String,
    pub(super) description: String,
    pub(super) out_trade_no: String,
    pub(super) total: i64,
    pub(super) trade_type: TradeType,
    pub(super) trade_state: TradeState,
    pub(super) expired: bool,
}

impl Shared {
    pub(super) fn cashier_order(&self, params: &CashierParams) -> Option<CashierView> {
        let now = self.clock.now();
        let state = self.state();
        let number = state.handles.get(params.handle()?)?;
        let order = state.orders.get(number)?;
        Some(CashierView {
            payee: state.payee_name.clone(),
            description: order.tx.description.clone(),
            out_trade_no: order.tx.out_trade_no.clone(),
            total: order.tx.total,
            trade_type: order.tx.trade_type,
            trade_state: order.tx.trade_state,
            expired: now >= order.tx.pay_before,
        })
    }
}

pub(super) fn yuan(fen: i64) -> String {
    format!("¥{}", kit::yuan(fen))
}

const LOOK: CashierLook = CashierLook {
    background: "#ededed",
    button: "#07c160",
    brand: "微信支付 沙箱",
};

pub(super) async fn cashier_page(
    State(shared): SharedState,
    Query(params): Query<CashierParams>,
) -> Response {
    let back = params.return_link();
    let Some(view) = shared.cashier_order(&params) else {
        return LOOK.message(
            StatusCode::NOT_FOUND,
            "订单不存在",
            "找不到这笔订单，请返回商户页面重新下单。",
            back.as_ref(),
        );
    };
    match view.trade_state {
        TradeState::Success => {
            return LOOK.message(
                StatusCode::OK,
                "该订单已支付",
                "请勿重复支付。",
                back.as_ref(),
            );
        }
        TradeState::Closed => {
            return LOOK.message(
                StatusCode::OK,
                "订单已关闭",
                "请返回商户页面重新下单。",
                back.as_ref(),
            );
        }
        TradeState::NotPay if view.expired => {
            return LOOK.message(
                StatusCode::OK,
                "订单已过期",
                "请返回商户页面重新下单。",
                back.as_ref(),
            );
        }
        TradeState::NotPay => {}
    }
    let kind = match view.trade_type {
        TradeType::Jsapi => "公众号支付",
        TradeType::Native => "扫码支付",
    };
    let body = html! {
        p { "付款给 " strong { (view.payee) } }
        p { (view.description) }
        p class="amount" { (yuan(view.total)) }
        p class="note" { (kind) " · 商户订单号 " (view.out_trade_no) }
        form method="post" action=(paths::CASHIER) {
            @if let Some(prepay_id) = &params.prepay_id {
                input type="hidden" name="prepay_id" value=(prepay_id);
            }
            @if let Some(code_url) = &params.code_url {
                input type="hidden" name="code_url" value=(code_url);
            }
            @if let Some(back) = &back {
                input type="hidden" name="return_to" value=(back.as_str());
            }
            button type="submit" { "确认支付" }
        }
        p class="note" { "这是模拟的微信收银台，不会产生真实扣款。" }
    };
    LOOK.page("微信支付", body).into_response()
}

pub(super) async fn cashier_pay(
    State(shared): SharedState,
    Form(params): Form<CashierParams>,
) -> Response {
    let back = params.return_link();
    let number = params
        .handle()
        .and_then(|handle| shared.state().handles.get(handle).cloned());
    let Some(number) = number else {
        return LOOK.message(
            StatusCode::NOT_FOUND,
            "订单不存在",
            "找不到这笔订单，请返回商户页面重新下单。",
            back.as_ref(),
        );
    };
    match shared.mark_paid(&number) {
        Ok(paid) => {
            let delivering = shared.clone();
            let out_trade_no = number.clone();
            shared.spawn_background(async move {
                if let Err(error) = deliver(delivering, out_trade_no).await {
                    tracing::warn!(%error, "the sandbox could not notify");
                }
            });
            let body = html! {
                h1 { "支付成功" }
                p class="amount" { (yuan(paid.total)) }
                p class="note" { "微信支付单号 " (paid.transaction_id) }
                @if let Some(back) = &back {
                    p { a href=(back.as_str()) { "返回商户页面" } }
                }
            };
            LOOK.page("支付成功", body).into_response()
        }
        Err(PayError::AlreadyPaid(_)) => LOOK.message(
            StatusCode::OK,
            "该订单已支付",
            "请勿重复支付。",
            back.as_ref(),
        ),
        Err(PayError::Closed(_)) => LOOK.message(
            StatusCode::OK,
            "订单已关闭",
            "请返回商户页面重新下单。",
            back.as_ref(),
        ),
        Err(PayError::Expired(..)) => LOOK.message(
            StatusCode::OK,
            "订单已过期",
            "请返回商户页面重新下单。",
            back.as_ref(),
        ),
        Err(error) => LOOK.message(
            StatusCode::BAD_REQUEST,
            "支付失败",
            &error.to_string(),
            back.as_ref(),
        ),
    }
}
