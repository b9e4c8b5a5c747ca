//! Paying the ticked items: inside WeChat with JSAPI (`/h5/pay`), on PC by choosing a
//! channel (`/pay`) and scanning a QR code (`/pay/wechat`); then the result page and
//! the status the pages poll. The server, not the browser, says whether it is paid.

use axum::Json;
use axum::extract::{Path, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qrcode::QrCode;
use qrcode::render::svg;

use super::fees::{TickedItems, payable_selection, read_ticked, too_many_items};
use super::{Gate, csrf_refused, gate, message, page_response};
use crate::domain::money::Fen;
use crate::domain::order::beijing_offset;
use crate::pay::checkout::{CheckoutError, Settled, Started, held_until};
use crate::pay::{ChannelError, Prepaid};
use crate::store::{OrderRecord, PaymentChannel, StudentAccount};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::request_id;
use crate::web::session::Session;
use crate::web::views::Surface;
use crate::web::views::fees::FeeLine;
use crate::web::views::pay::{self as views, ChannelChoice, OrderSummary, ResultKind};

/// The signed-in student and their ticked, still payable items; or the page to show.
async fn ticked_payable(
    state: &AppState,
    headers: &HeaderMap,
    surface: Surface,
    form: &[u8],
) -> Result<Result<(Session, StudentAccount, TickedItems, Vec<FeeLine>), Response>, AppError> {
    let (session, student) = match gate(state, headers, surface, false).await? {
        Gate::Open(session, student) => (*session, *student),
        Gate::Elsewhere(response) => return Ok(Err(response)),
    };
    let ticked = read_ticked(form);
    if ticked.too_many {
        return Ok(Err(too_many_items(state, surface)));
    }
    if !session.csrf_matches(&ticked.csrf) {
        return Ok(Err(csrf_refused(state, surface)));
    }
    match payable_selection(state, &student, &ticked).await? {
        Ok(lines) => Ok(Ok((session, student, ticked, lines))),
        Err(reason) => Ok(Err(reselect(state, surface, reason))),
    }
}

fn reselect(state: &AppState, surface: Surface, reason: &str) -> Response {
    message(
        state,
        surface,
        StatusCode::CONFLICT,
        "请重新选择",
        reason,
        (&surface.path("/fees"), "返回缴费项目"),
    )
}

/// `POST /h5/pay`: 立即支付 inside WeChat.
pub async fn jsapi(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Result<Response, AppError> {
    let surface = Surface::Mobile;
    let (session, student, ticked, _) =
        match ticked_payable(&state, &headers, surface, &form).await? {
            Ok(found) => found,
            Err(response) => return Ok(response),
        };
    let openid = session.data.openid.as_deref();
    let started = state
        .checkout
        .start(
            student.id,
            &ticked.items,
            PaymentChannel::WechatJsapi,
            openid,
            request_id::of(&headers),
        )
        .await;
    let (order, prepaid) = match started_or_page(&state, surface, started) {
        Ok(ready) => ready,
        Err(response) => return Ok(*response),
    };
    let Prepaid::JsBridge(params) = prepaid else {
        return Err(anyhow::anyhow!("JSAPI prepay returned no bridge parameters").into());
    };
    let summary = summary_of(&state, &order).await?;
    let result_url = format!("/h5/orders/{}", order.out_trade_no);
    let cashier = sandbox_cashier(&state, &params, &result_url);
    let markup = views::jsapi(
        &state.config.school_name,
        &summary,
        &params.to_string(),
        &result_url,
        cashier.as_deref(),
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

/// `POST /pay` on PC: which channel?
pub async fn choose(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Result<Response, AppError> {
    let surface = Surface::Pc;
    let (session, student, _, lines) =
        match ticked_payable(&state, &headers, surface, &form).await? {
            Ok(found) => found,
            Err(response) => return Ok(response),
        };
    let mut channels = offered_channels(&state);
    if channels.is_empty() {
        return Ok(not_open(&state, surface));
    }
    // While the bank's page of an earlier order can still be paid, only that way is
    // offered: another channel now could charge the student twice.
    let hold = bank_hold(&state, student.id).await?;
    if let Some(held) = &hold {
        let action = match held.order.channel {
            PaymentChannel::AbcScan => "/pay/abc/scan",
            _ => "/pay/abc/page",
        };
        channels.retain(|channel| channel.action == action);
    }
    let notice = hold.as_ref().map(|held| held.text.as_str());
    let markup = views::choose_channel(
        &state.config.school_name,
        &session.data.csrf,
        &lines,
        &channels,
        notice,
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

/// The PC channels that are configured, in the manual's order.
fn offered_channels(state: &AppState) -> Vec<ChannelChoice> {
    let mut channels = Vec::new();
    if state.checkout.channels.alipay.is_some() {
        channels.push(ChannelChoice {
            label: "支付宝",
            action: "/pay/alipay",
            hint: "使用支付宝扫码支付",
        });
    }
    if state.checkout.channels.wechat.is_some() {
        channels.push(ChannelChoice {
            label: "微信",
            action: "/pay/wechat",
            hint: "使用微信扫码支付",
        });
    }
    if state.checkout.channels.abc.is_some() {
        channels.push(ChannelChoice {
            label: "中国农业银行",
            action: "/pay/abc/scan",
            hint: "使用农行掌上银行扫码支付",
        });
        channels.push(ChannelChoice {
            label: "中国农业银行",
            action: "/pay/abc/page",
            hint: "在农行网上支付页面输入银行卡号支付",
        });
    }
    channels
}

/// `POST /pay/wechat`: a WeChat Native QR code.
pub async fn wechat_qr(
    state: State<AppState>,
    headers: HeaderMap,
    form: RawForm,
) -> Result<Response, AppError> {
    qr(state, headers, form, PaymentChannel::WechatNative).await
}

/// `POST /pay/alipay`: an Alipay QR code (`alipay.trade.precreate`).
pub async fn alipay_qr(
    state: State<AppState>,
    headers: HeaderMap,
    form: RawForm,
) -> Result<Response, AppError> {
    qr(state, headers, form, PaymentChannel::Alipay).await
}

/// `POST /pay/abc/scan`: a code for the ABC mobile banking app.
pub async fn abc_qr(
    state: State<AppState>,
    headers: HeaderMap,
    form: RawForm,
) -> Result<Response, AppError> {
    qr(state, headers, form, PaymentChannel::AbcScan).await
}

/// A QR code for `kind`, watched until paid.
async fn qr(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(form): RawForm,
    kind: PaymentChannel,
) -> Result<Response, AppError> {
    let surface = Surface::Pc;
    let (_, student, ticked, _) = match ticked_payable(&state, &headers, surface, &form).await? {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let started = state
        .checkout
        .start(
            student.id,
            &ticked.items,
            kind,
            None,
            request_id::of(&headers),
        )
        .await;
    let (order, prepaid) = match started_or_page(&state, surface, started) {
        Ok(ready) => ready,
        Err(response) => return Ok(*response),
    };
    let Prepaid::QrCode(code) = prepaid else {
        return Err(anyhow::anyhow!("a QR channel returned no code").into());
    };
    let svg = QrCode::new(code.as_bytes())
        .map_err(|error| anyhow::anyhow!("cannot draw the QR code: {error}"))?
        .render::<svg::Color<'_>>()
        .min_dimensions(220, 220)
        .build();
    let summary = summary_of(&state, &order).await?;
    let result_url = format!("/orders/{}", order.out_trade_no);
    let status_url = format!("{result_url}/status");
    let return_to = state.config.public_link(&result_url);
    let (label, cashier) = match kind {
        PaymentChannel::Alipay => (
            "支付宝",
            sandbox_link(
                &state.config.alipay_gateway,
                "sandbox/alipay/cashier",
                &[("qr_code", &code), ("return_to", &return_to)],
            ),
        ),
        PaymentChannel::AbcScan => ("农行掌上银行", None),
        _ => (
            "微信",
            sandbox_link(
                &state.config.wechat_pay_api_base,
                "sandbox/cashier",
                &[("code_url", &code), ("return_to", &return_to)],
            ),
        ),
    };
    let markup = views::qr_code(
        &state.config.school_name,
        &summary,
        label,
        &svg,
        &status_url,
        &result_url,
        cashier.as_deref(),
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

/// `POST /pay/abc/page`: to the bank's own payment page (the card number is entered
/// there, never here); the bank sends the student back to the result page, which asks
/// the server, not the redirect.
pub async fn abc_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Result<Response, AppError> {
    let surface = Surface::Pc;
    let (_, student, ticked, _) = match ticked_payable(&state, &headers, surface, &form).await? {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let started = state
        .checkout
        .start(
            student.id,
            &ticked.items,
            PaymentChannel::AbcPage,
            None,
            request_id::of(&headers),
        )
        .await;
    let (order, prepaid) = match started_or_page(&state, surface, started) {
        Ok(ready) => ready,
        Err(response) => return Ok(*response),
    };
    let Prepaid::Redirect(mut url) = prepaid else {
        return Err(anyhow::anyhow!("the bank's page payment returned no page").into());
    };
    // The sandbox plays the bank's return: it needs to be told where to.
    if is_loopback(&state.config.abc_gateway) {
        let return_to = state
            .config
            .public_link(&format!("/orders/{}", order.out_trade_no));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .finish();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query);
    }
    Ok(super::redirect(&state, None, &url))
}

/// The order, or the page that says why there is none.
fn started_or_page(
    state: &AppState,
    surface: Surface,
    started: Result<Started, CheckoutError>,
) -> Result<(OrderRecord, Prepaid), Box<Response>> {
    let back = (surface.path("/fees"), "返回缴费项目");
    let page = |status, title: &str, text: &str| {
        Box::new(message(
            state,
            surface,
            status,
            title,
            text,
            (&back.0, back.1),
        ))
    };
    match started {
        Ok(Started::Ready { order, prepaid }) => {
            tracing::Span::current().record("out_trade_no", order.out_trade_no.as_str());
            tracing::info!(channel = ?order.channel, amount_fen = order.amount_fen, "order ready to pay");
            let channel = crate::web::observe::payment_channel_label(order.channel);
            state.metrics.order_started(channel);
            Ok((*order, prepaid))
        }
        Ok(Started::AlreadyPaid) => Err(page(
            StatusCode::CONFLICT,
            "已缴费",
            "所选项目已缴费，无需重复支付。",
        )),
        Ok(Started::Unavailable) => Err(Box::new(reselect(
            state,
            surface,
            "所选项目已缴费或正在支付，请返回刷新后重新选择。",
        ))),
        Err(CheckoutError::ChannelNotConfigured(_)) => Err(Box::new(not_open(state, surface))),
        Err(CheckoutError::StillHeld) => Err(page(
            StatusCode::CONFLICT,
            "正在处理",
            "所选项目有一笔支付正在处理，请稍后刷新缴费项目。",
        )),
        Err(CheckoutError::HeldByChannel { order, until }) => Err(page(
            StatusCode::CONFLICT,
            "农行支付尚未结束",
            &bank_hold_text(&order, until),
        )),
        Err(CheckoutError::Channel(ChannelError::OutcomeUnknown(error))) => {
            tracing::warn!(%error, "prepay outcome unknown; the order sweep will query it");
            Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "支付通道繁忙",
                "支付通道暂时繁忙，请稍后再试。",
            ))
        }
        Err(CheckoutError::Channel(
            refused @ (ChannelError::Refused { .. }
            | ChannelError::AlreadyPaid { .. }
            | ChannelError::Unsupported(_)),
        )) => {
            tracing::warn!(error = %refused, "prepay refused by the channel");
            Err(page(
                StatusCode::BAD_GATEWAY,
                "暂时无法支付",
                "支付通道暂时无法受理，请稍后再试。",
            ))
        }
        Err(
            error @ (CheckoutError::Store(_)
            | CheckoutError::UnknownOrder
            | CheckoutError::OtherProvider),
        ) => {
            tracing::error!(?error, "cannot start a payment");
            Err(page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "系统繁忙",
                "系统繁忙，请稍后再试。",
            ))
        }
    }
}

/// An open order at the bank whose page can still be paid, and what to tell the student.
pub(super) struct BankHold {
    pub(super) order: OrderRecord,
    pub(super) text: String,
}

/// The student's open order on a channel that cannot close it (the bank), while its
/// page can still be paid.
pub(super) async fn bank_hold(
    state: &AppState,
    student_id: i64,
) -> Result<Option<BankHold>, AppError> {
    let unclosable = [PaymentChannel::AbcPage, PaymentChannel::AbcScan];
    let open = state
        .store
        .open_orders_of_student(student_id, &unclosable)
        .await?;
    let now = state.clock.now();
    Ok(open.into_iter().find_map(|order| {
        let until = held_until(&order);
        (now < until).then(|| BankHold {
            text: bank_hold_text(&order, until),
            order,
        })
    }))
}

/// What a student is told while an order at the bank holds the items: the bank's page
/// can still be paid until its time is up, so offering another channel now could
/// charge them twice.
pub(super) fn bank_hold_text(order: &OrderRecord, until: chrono::DateTime<chrono::Utc>) -> String {
    let until = until.with_timezone(&beijing_offset()).format("%H:%M");
    format!(
        "您已在中国农业银行发起一笔缴费（订单号 {}，金额 {} 元），在 {until} 前仍可在农行支付页面完成支付。\
         为避免重复扣款，{until} 之前不能改用其他方式支付；如已在农行付款，请勿重复缴费，稍后刷新即可看到结果。",
        order.out_trade_no,
        Fen(order.amount_fen),
    )
}

fn not_open(state: &AppState, surface: Surface) -> Response {
    message(
        state,
        surface,
        StatusCode::SERVICE_UNAVAILABLE,
        "暂未开通",
        "在线支付尚未开通，请留意学校通知。",
        (&surface.path("/fees"), "返回缴费项目"),
    )
}

/// The signed-in student's own order, or a response saying there is none.
async fn own_order(
    state: &AppState,
    headers: &HeaderMap,
    surface: Surface,
    number: &str,
) -> Result<Result<OrderRecord, Response>, AppError> {
    let student = match gate(state, headers, surface, false).await? {
        Gate::Open(_, student) => student,
        Gate::Elsewhere(response) => return Ok(Err(response)),
    };
    let order = state.store.find_order(number).await?;
    match order.filter(|order| order.student_id == student.id) {
        Some(order) => {
            let span = tracing::Span::current();
            span.record("out_trade_no", order.out_trade_no.as_str());
            if let Some(origin) = &order.request_id {
                span.record("origin_request_id", origin.as_str());
            }
            Ok(Ok(order))
        }
        None => Ok(Err(AppError::NotFound.into_response())),
    }
}

async fn settle(state: &AppState, order: &OrderRecord) -> Settled {
    match state.checkout.refresh(order).await {
        Ok(settled) => settled,
        Err(error) => {
            tracing::warn!(%error, out_trade_no = %order.out_trade_no, "cannot refresh an order; showing what we know");
            Settled::Open(order.clone())
        }
    }
}

/// `GET /h5/orders/{no}`, `GET /orders/{no}`: 缴费成功, or still waiting.
pub async fn result(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Response, AppError> {
    let order = match own_order(&state, &headers, surface, &number).await? {
        Ok(order) => order,
        Err(response) => return Ok(response),
    };
    let (kind, order) = match settle(&state, &order).await {
        Settled::Paid(order) => (ResultKind::Paid, order),
        Settled::Open(order) => (ResultKind::Waiting, order),
        Settled::Closed(order) => (ResultKind::Closed, order),
        Settled::Exception(order) => (ResultKind::UnderReview, order),
    };
    // Refunded in full: never shown as paid, closed or under review (issue 13).
    let kind = if order.status == crate::store::OrderStatus::Refunded {
        ResultKind::Refunded
    } else {
        kind
    };
    let summary = summary_of(&state, &order).await?;
    let self_url = surface.path(&format!("/orders/{number}"));
    let status_url = format!("{self_url}/status");
    let markup = views::result(
        surface,
        &state.config.school_name,
        &summary,
        kind,
        &status_url,
        &self_url,
    );
    Ok(page_response(&state, StatusCode::OK, None, markup))
}

/// `GET …/orders/{no}/status`: what the waiting pages poll.
pub async fn status(
    surface: Surface,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Response, AppError> {
    let order = match own_order(&state, &headers, surface, &number).await? {
        Ok(order) => order,
        Err(response) => return Ok(response),
    };
    let status = match settle(&state, &order).await {
        Settled::Paid(_) => "paid",
        Settled::Open(_) => "open",
        Settled::Closed(_) => "closed",
        Settled::Exception(_) => "exception",
    };
    let mut response = Json(serde_json::json!({ "status": status })).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn summary_of(state: &AppState, order: &OrderRecord) -> Result<OrderSummary, AppError> {
    let lines = state.store.order_lines(order.id).await?;
    let time = order
        .paid_at
        .unwrap_or(order.created_at)
        .with_timezone(&beijing_offset());
    Ok(OrderSummary {
        out_trade_no: order.out_trade_no.clone(),
        lines: lines
            .into_iter()
            .map(|line| FeeLine {
                id: line.fee_item_id,
                academic_year: line.academic_year,
                item: line.item,
                amount: Fen(line.amount_fen),
                status: "",
            })
            .collect(),
        total: Fen(order.amount_fen),
        time: time.format("%Y-%m-%d %H:%M:%S").to_string(),
    })
}

/// Whether a channel's base URL points at a loopback sandbox (the demo and the tests):
/// only then do pages offer the sandbox's cashier.
fn is_loopback(base: &url::Url) -> bool {
    match base.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    }
}

/// `path` at the sandbox behind `base`, with `query`; `None` in production.
fn sandbox_link(base: &url::Url, path: &str, query: &[(&str, &str)]) -> Option<String> {
    if !is_loopback(base) {
        return None;
    }
    let mut link = base.join(&format!("/{path}")).ok()?;
    link.query_pairs_mut().extend_pairs(query);
    Some(link.to_string())
}

fn sandbox_cashier(
    state: &AppState,
    params: &serde_json::Value,
    result_url: &str,
) -> Option<String> {
    let prepay_id = params
        .get("package")?
        .as_str()?
        .strip_prefix("prepay_id=")?;
    let return_to = state.config.public_link(result_url);
    sandbox_link(
        &state.config.wechat_pay_api_base,
        "sandbox/cashier",
        &[("prepay_id", prepay_id), ("return_to", &return_to)],
    )
}
