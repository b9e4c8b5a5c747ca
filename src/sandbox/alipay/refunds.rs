//! Refunds and bills at the gateway: `alipay.trade.refund`, the refund query, the
//! bill link and the bill download.

use super::*;

// ---- refunds and bills ------------------------------------------------------------

/// The bill account as it appears in bills: the seller's pid and `0156`.
pub(super) fn bill_account() -> String {
    format!("{SELLER_ID}0156")
}

pub(super) fn beijing_day(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&china()).date_naive()
}

impl Shared {
    pub(super) fn refund(
        &self,
        biz: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        let text = |name: &str| {
            biz.get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        };
        let amount = text("refund_amount")
            .ok_or_else(|| Refusal::parameter("参数有误: 缺少 refund_amount"))?;
        let refund_fen = price_fen(amount).ok_or_else(|| {
            Refusal::parameter("参数有误: refund_amount 单位为元，精确到小数点后两位")
        })?;
        let reason = text("refund_reason").map(str::to_owned);
        if reason.as_ref().is_some_and(|r| r.chars().count() > 256) {
            return Err(Refusal::parameter("参数有误: refund_reason 超过256个字符"));
        }
        let given_request_no = text("out_request_no");
        if given_request_no.is_some_and(|number| number.len() > 64) {
            return Err(Refusal::parameter("参数有误: out_request_no 超过64个字符"));
        }
        let mut state = self.state();
        let order = Self::named(&mut state, biz)?.ok_or_else(not_exist)?;
        order.settle(now);
        let Some(trade_no) = order.trade.trade_no.clone() else {
            return Err(not_exist());
        };
        // Without out_request_no, Alipay takes the order number: one full refund.
        let request_no = given_request_no
            .unwrap_or(&order.trade.out_trade_no)
            .to_owned();
        let refunded: i64 = order.refunds.iter().map(|r| r.refund_fen).sum();
        if let Some(existing) = order
            .refunds
            .iter()
            .find(|r| r.out_request_no == request_no)
        {
            if existing.refund_fen != refund_fen {
                return Err(Refusal::business(
                    sub_codes::CONTEXT_INCONSISTENT,
                    "交易信息被篡改（同一退款请求号的退款金额不一致）",
                ));
            }
            let at = existing.refunded_at;
            return Ok(refund_content(&order.trade, &trade_no, "N", refunded, at));
        }
        let total = order.trade.total_fen;
        match order.trade.status {
            SandboxTradeStatus::TradeSuccess => {}
            // Refunded in full already: only the amount check below can answer.
            SandboxTradeStatus::TradeClosed if refunded == total => {}
            _ => {
                return Err(Refusal::business(
                    sub_codes::TRADE_STATUS_ERROR,
                    "交易状态不合法",
                ));
            }
        }
        if given_request_no.is_none() && refund_fen != total {
            return Err(Refusal::business(
                sub_codes::REFUND_AMT_NOT_EQUAL_TOTAL,
                "撤销或退款金额与订单金额不一致",
            ));
        }
        if refunded + refund_fen > total {
            return Err(Refusal::business(
                sub_codes::REFUND_FEE_ERR,
                "退款金额超限（退款总额不能大于订单金额）",
            ));
        }
        order.refunds.push(AlipaySandboxRefund {
            out_request_no: request_no,
            refund_fen,
            reason,
            refunded_at: now,
        });
        if refunded + refund_fen == total {
            order.trade.status = SandboxTradeStatus::TradeClosed;
            order.trade.closed_at = Some(now);
        }
        Ok(refund_content(
            &order.trade,
            &trade_no,
            "Y",
            refunded + refund_fen,
            now,
        ))
    }

    pub(super) fn refund_query(
        &self,
        biz: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        let wants_time = biz
            .get("query_options")
            .and_then(Value::as_array)
            .is_some_and(|options| options.iter().any(|o| o == "gmt_refund_pay"));
        let given = biz
            .get("out_request_no")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let mut state = self.state();
        let order = Self::named(&mut state, biz)?.ok_or_else(not_exist)?;
        order.settle(now);
        let trade = &order.trade;
        let Some(trade_no) = &trade.trade_no else {
            return Err(not_exist());
        };
        let request_no = given.unwrap_or_else(|| trade.out_trade_no.clone());
        let mut members: Vec<(&str, Value)> =
            vec![("code", json!(codes::SUCCESS)), ("msg", json!("Success"))];
        match order
            .refunds
            .iter()
            .find(|r| r.out_request_no == request_no)
        {
            Some(refund) => {
                if wants_time {
                    members.push(("gmt_refund_pay", json!(alipay_time(refund.refunded_at))));
                }
                members.extend([
                    ("out_request_no", json!(request_no)),
                    ("out_trade_no", json!(trade.out_trade_no)),
                    ("refund_amount", json!(kit::yuan(refund.refund_fen))),
                    ("refund_status", json!("REFUND_SUCCESS")),
                    ("total_amount", json!(trade.total_amount)),
                    ("trade_no", json!(trade_no)),
                ]);
            }
            // Not received (or refused): Alipay leaves refund_status out.
            None => members.extend([
                ("out_request_no", json!(request_no)),
                ("out_trade_no", json!(trade.out_trade_no)),
                ("trade_no", json!(trade_no)),
            ]),
        }
        Ok(alipay_json(&members))
    }

    pub(super) fn bill_url(
        &self,
        biz: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        let text = |name: &str| biz.get(name).and_then(Value::as_str).unwrap_or_default();
        if text("bill_type") != "trade" {
            return Err(Refusal::parameter(
                "参数有误: bill_type（沙箱只提供 trade 账单）",
            ));
        }
        let date = text("bill_date");
        let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .filter(|_| date.len() == 10)
            .ok_or_else(|| Refusal::parameter("参数有误: bill_date 日账单格式为yyyy-MM-dd"))?;
        let no_bill = || Refusal::business(sub_codes::BILL_NOT_EXIST, "账单不存在");
        // Bills are T+1: never for today or later.
        if day >= beijing_day(now) {
            return Err(no_bill());
        }
        let mut state = self.state();
        if bill_entries(&state, day).is_empty() {
            return Err(no_bill());
        }
        let token = random_string(LOWER_ALPHANUMERIC, 32);
        state.bill_links.insert(token.clone(), (day, now));
        let account = bill_account();
        let stamp = day.format("%Y%m%d").to_string();
        let mut url = self.base_url.clone();
        url.set_path(BILL_PATH);
        url.query_pairs_mut()
            .append_pair("token", &token)
            .append_pair("userId", &account)
            .append_pair("fileType", "csv.zip")
            .append_pair("bizDates", &stamp)
            .append_pair("bizType", "trade")
            .append_pair("downloadFileName", &format!("{account}_{stamp}.csv.zip"))
            .append_pair("timestamp", &now.timestamp_millis().to_string());
        Ok(alipay_json(&[
            ("code", json!(codes::SUCCESS)),
            ("msg", json!("Success")),
            ("bill_download_url", json!(url.as_str())),
        ]))
    }
}

pub(super) fn refund_content(
    trade: &AlipaySandboxTrade,
    trade_no: &str,
    fund_change: &str,
    refunded_fen: i64,
    at: DateTime<Utc>,
) -> String {
    alipay_json(&[
        ("code", json!(codes::SUCCESS)),
        ("msg", json!("Success")),
        ("buyer_logon_id", json!(BUYER_LOGON_ID)),
        ("buyer_user_id", json!(BUYER_ID)),
        ("fund_change", json!(fund_change)),
        ("gmt_refund_pay", json!(alipay_time(at))),
        ("out_trade_no", json!(trade.out_trade_no)),
        ("refund_fee", json!(kit::yuan(refunded_fen))),
        ("send_back_fee", json!(kit::yuan(refunded_fen))),
        ("trade_no", json!(trade_no)),
    ])
}

/// The day's payments and refunds (Beijing day), by time.
pub(super) fn bill_entries(state: &GatewayState, day: NaiveDate) -> Vec<BillEntry> {
    let mut entries = Vec::new();
    for order in state
        .creation_order
        .iter()
        .filter_map(|number| state.orders.get(number))
    {
        let trade = &order.trade;
        let (Some(trade_no), Some(paid_at)) = (&trade.trade_no, trade.paid_at) else {
            continue;
        };
        let entry = |created_at, finished_at, amount_fen, request_no| BillEntry {
            trade_no: trade_no.clone(),
            out_trade_no: trade.out_trade_no.clone(),
            subject: trade.subject.clone(),
            created_at,
            finished_at,
            amount_fen,
            request_no,
        };
        if beijing_day(paid_at) == day {
            let created = trade.scanned_at.unwrap_or(paid_at);
            entries.push(entry(created, paid_at, trade.total_fen, None));
        }
        for refund in &order.refunds {
            if beijing_day(refund.refunded_at) == day {
                entries.push(entry(
                    refund.refunded_at,
                    refund.refunded_at,
                    -refund.refund_fen,
                    Some(refund.out_request_no.clone()),
                ));
            }
        }
    }
    entries.sort_by_key(|entry| entry.finished_at);
    entries
}

/// `GET /downloadBillFile.resource?token=…`: the ZIP, once per link within 30 s.
pub(super) async fn download_bill(
    State(shared): SharedState,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let now = shared.clock.now();
    let (zip, day) = {
        let mut state = shared.state();
        let link = params
            .get("token")
            .and_then(|token| state.bill_links.remove(token));
        let Some((day, _)) = link.filter(|(_, at)| now - *at <= BILL_LINK_LIFETIME) else {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
                "下载超时，请重新下载",
            )
                .into_response();
        };
        let entries = bill_entries(&state, day);
        let zip = bill_zip(
            &bill_account(),
            day,
            entries,
            BUYER_LOGON_ID,
            &state.bill_tampers,
            now,
        );
        (zip, day)
    };
    let file_name = format!("{}_{}.csv.zip", bill_account(), day.format("%Y%m%d"));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename={file_name}"),
            ),
        ],
        zip,
    )
        .into_response()
}
