//! The WeChat Pay sandbox's trade bills (a child of `wechat_pay`, sharing its state
//! and its checks): `GET /v3/bill/tradebill` answers, signed, with the SHA1 of the
//! day's `ALL` bill and a download URL; `GET /v3/billdownload/file?token=…` (our
//! request signed, WeChat's answer not) serves the file, gzipped when the bill was
//! asked for with `tar_type=GZIP`. The bill lists the payments the sandbox really
//! recorded that day (Beijing time), and the refunds that succeeded that day
//! (交易状态 `REFUND`, with 微信退款单号, 商户退款单号, 退款金额, 退款类型, 退款状态 and
//! 申请退款金额; 应结订单金额 and 订单金额 zero), in WeChat's shape: Chinese header,
//! every field behind a backtick, summary header and line.
//!
//! Test switches: a payment whose notification was lost is simply
//! [`WechatPaySandbox::pay_silently`] (the bill has it, we do not);
//! [`WechatPaySandbox::bill_add_payment`] adds a line for an order we never made,
//! [`WechatPaySandbox::bill_change_amount`] changes a line's amount,
//! [`WechatPaySandbox::bill_leave_out`] drops a payment we have, and
//! [`WechatPaySandbox::corrupt_next_bill_hash`] spoils the next hash.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::json;
use sha1::{Digest, Sha1};

use crate::sandbox::kit::yuan;

use super::{
    ALPHANUMERIC, ApiError, RecordedCall, Reply, Shared, SharedState, TradeState, TradeType,
    WechatPaySandbox, header_text, new_transaction_id, random_string,
};

pub const TRADEBILL: &str = "/v3/bill/tradebill";
pub const BILL_DOWNLOAD: &str = "/v3/billdownload/file";

const HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// The switches and the files handed out.
#[derive(Default)]
pub(super) struct Bills(Mutex<BillState>);

#[derive(Default)]
struct BillState {
    /// Lines for orders the merchant never made: (out_trade_no, fen, time).
    added: Vec<(String, i64, DateTime<FixedOffset>, String)>,
    amounts: HashMap<String, i64>,
    left_out: HashSet<String>,
    corrupt_hashes: usize,
    /// token → (bytes as served, gzipped or not).
    files: HashMap<String, Vec<u8>>,
}

impl Bills {
    fn state(&self) -> MutexGuard<'_, BillState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WechatPaySandbox {
    /// The bill of the day `out_trade_no` is paid (now, by the sandbox's clock) shows a
    /// payment for an order the merchant never made.
    pub fn bill_add_payment(&self, out_trade_no: &str, total_fen: i64) {
        let now = super::wechat_time(self.shared.clock.now());
        let id = new_transaction_id(self.shared.clock.now());
        self.shared
            .bills
            .state()
            .added
            .push((out_trade_no.to_owned(), total_fen, now, id));
    }

    /// The bill shows this amount for `out_trade_no`'s payment.
    pub fn bill_change_amount(&self, out_trade_no: &str, total_fen: i64) {
        self.shared
            .bills
            .state()
            .amounts
            .insert(out_trade_no.to_owned(), total_fen);
    }

    /// The bill leaves `out_trade_no`'s payment out.
    pub fn bill_leave_out(&self, out_trade_no: &str) {
        self.shared
            .bills
            .state()
            .left_out
            .insert(out_trade_no.to_owned());
    }

    /// The next tradebill answer gives a SHA1 that the file does not have.
    pub fn corrupt_next_bill_hash(&self) {
        self.shared.bills.state().corrupt_hashes += 1;
    }

    /// The `ALL` bill of `day` as the sandbox would serve it.
    pub fn trade_bill_text(&self, day: NaiveDate) -> String {
        self.shared.bill_text(day)
    }
}

pub(super) fn routes() -> axum::Router<std::sync::Arc<Shared>> {
    axum::Router::new()
        .route(TRADEBILL, get(tradebill))
        .route(BILL_DOWNLOAD, get(download))
}

/// What a refund line adds: WeChat's refund number, ours, and what was refunded.
struct RefundPart {
    refund_id: String,
    out_refund_no: String,
    fen: i64,
}

/// A bill line: (time, appid, transaction id, out_trade_no, openid, trade type,
/// description, fen paid); a refund line has `refund` and pays nothing.
struct Line {
    time: DateTime<FixedOffset>,
    appid: String,
    transaction_id: String,
    out_trade_no: String,
    openid: String,
    trade_type: &'static str,
    description: String,
    fen: i64,
    refund: Option<RefundPart>,
}

/// WeChat's fee (0.6%), five decimals as the bill prints it.
fn fee(fen: i64) -> String {
    let thousandths = fen * 6;
    format!("{}.{:05}", thousandths / 100_000, (thousandths % 100_000))
}

/// Hundred-thousandths of a fen as the bill's summary prints its fees (signed).
fn five_decimals(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let value = value.unsigned_abs();
    format!("{sign}{}.{:05}", value / 100_000, value % 100_000)
}

impl Shared {
    fn bill_lines(&self, day: NaiveDate) -> Vec<Line> {
        let switches = self.bills.state();
        let state = self.state();
        let mut lines: Vec<Line> = state
            .creation_order
            .iter()
            .filter_map(|number| state.orders.get(number))
            .map(|order| &order.tx)
            .filter(|tx| tx.trade_state == TradeState::Success)
            .filter(|tx| !switches.left_out.contains(&tx.out_trade_no))
            .filter_map(|tx| {
                let time = tx.success_time?;
                (time.date_naive() == day).then(|| Line {
                    time,
                    appid: tx.appid.clone(),
                    transaction_id: tx.transaction_id.clone().unwrap_or_default(),
                    out_trade_no: tx.out_trade_no.clone(),
                    openid: tx.openid.clone().unwrap_or_default(),
                    trade_type: match tx.trade_type {
                        TradeType::Jsapi => "JSAPI",
                        TradeType::Native => "NATIVE",
                    },
                    description: tx.description.clone(),
                    fen: switches
                        .amounts
                        .get(&tx.out_trade_no)
                        .copied()
                        .unwrap_or(tx.total),
                    refund: None,
                })
            })
            .collect();
        for (number, fen, time, id) in &switches.added {
            if time.date_naive() == day {
                lines.push(Line {
                    time: *time,
                    appid: self.merchant.appid.clone(),
                    transaction_id: id.clone(),
                    out_trade_no: number.clone(),
                    openid: super::NATIVE_PAYER_OPENID.to_owned(),
                    trade_type: "NATIVE",
                    description: "沙箱注入的交易".to_owned(),
                    fen: *fen,
                    refund: None,
                });
            }
        }
        lines.extend(self.refund_lines(&state, day));
        lines.sort_by_key(|line| line.time);
        lines
    }

    /// The refunds that succeeded on `day`, each as a `REFUND` line of its order.
    fn refund_lines(&self, state: &super::PayState, day: NaiveDate) -> Vec<Line> {
        self.refunds
            .in_order()
            .into_iter()
            .filter_map(|refund| {
                let time = refund.success_time?;
                if time.date_naive() != day {
                    return None;
                }
                let order = state.orders.get(&refund.out_trade_no);
                Some(Line {
                    time,
                    appid: order.map_or_else(
                        || self.merchant.appid.clone(),
                        |order| order.tx.appid.clone(),
                    ),
                    transaction_id: refund.transaction_id,
                    out_trade_no: refund.out_trade_no,
                    openid: order
                        .and_then(|order| order.tx.openid.clone())
                        .unwrap_or_default(),
                    trade_type: match order.map(|order| &order.tx.trade_type) {
                        Some(TradeType::Jsapi) => "JSAPI",
                        _ => "NATIVE",
                    },
                    description: order
                        .map(|order| order.tx.description.clone())
                        .unwrap_or_default(),
                    fen: 0,
                    refund: Some(RefundPart {
                        refund_id: refund.refund_id,
                        out_refund_no: refund.out_refund_no,
                        fen: refund.refund,
                    }),
                })
            })
            .collect()
    }

    fn bill_text(&self, day: NaiveDate) -> String {
        let lines = self.bill_lines(day);
        let mut text = format!("{HEADER}\r\n");
        let mut total = 0;
        let mut refunded = 0;
        let mut fees = 0;
        for line in &lines {
            let refund_fen = line.refund.as_ref().map_or(0, |refund| refund.fen);
            total += line.fen;
            refunded += refund_fen;
            // A refund gives its share of the fee back.
            fees += line.fen * 6 - refund_fen * 6;
            // WeChat's bill is not quoted CSV: a comma inside a field would split it.
            let description = line.description.replace(',', "，");
            let refund = line.refund.as_ref();
            let fields = [
                line.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                line.appid.clone(),
                self.merchant.mchid.clone(),
                "0".into(),
                String::new(),
                line.transaction_id.clone(),
                line.out_trade_no.clone(),
                line.openid.clone(),
                line.trade_type.into(),
                if line.refund.is_some() {
                    "REFUND"
                } else {
                    "SUCCESS"
                }
                .into(),
                "OTHERS".into(),
                "CNY".into(),
                yuan(line.fen),
                "0.00".into(),
                refund.map_or_else(|| "0".into(), |refund| refund.refund_id.clone()),
                refund.map_or_else(|| "0".into(), |refund| refund.out_refund_no.clone()),
                yuan(refund_fen),
                "0.00".into(),
                refund.map_or_else(String::new, |_| "ORIGINAL".into()),
                refund.map_or_else(String::new, |_| "SUCCESS".into()),
                description,
                String::new(),
                match refund {
                    Some(_) => format!("-{}", fee(refund_fen)),
                    None => fee(line.fen),
                },
                "0.60%".into(),
                yuan(line.fen),
                yuan(refund_fen),
                String::new(),
            ];
            text.push_str(&backticked(&fields));
        }
        text.push_str(SUMMARY_HEADER);
        text.push_str("\r\n");
        let summary = [
            lines.len().to_string(),
            yuan(total),
            yuan(refunded),
            "0.00".into(),
            five_decimals(fees),
            yuan(total),
            yuan(refunded),
        ];
        text.push_str(&backticked(&summary));
        text
    }

    /// Records the call as every other `/v3/` call is recorded.
    fn record_bill_call(
        &self,
        route: &'static str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        status: StatusCode,
    ) {
        let raw_uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        self.state().calls.push(RecordedCall {
            method: method.to_string(),
            route,
            path: uri.path().to_owned(),
            uri: raw_uri,
            body: String::new(),
            wechatpay_serial: header_text(headers, "wechatpay-serial").map(str::to_owned),
            status: status.as_u16(),
        });
    }

    fn answer_tradebill(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Reply, ApiError> {
        let raw_uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        self.injected_failure(TRADEBILL, uri.path())?;
        self.check_authorization(method, &raw_uri, headers, b"")?;
        let query: HashMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let day = query
            .get("bill_date")
            .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                ApiError::param(
                    "query",
                    "/bill_date",
                    "账单日期",
                    "格式应为 yyyy-MM-DD",
                    None,
                )
            })?;
        if query.get("bill_type").is_some_and(|kind| kind != "ALL") {
            return Err(ApiError::param(
                "query",
                "/bill_type",
                "账单类型",
                "沙箱只提供 ALL",
                None,
            ));
        }
        let gzip = match query.get("tar_type").map(String::as_str) {
            None => false,
            Some("GZIP") => true,
            Some(_) => {
                return Err(ApiError::param(
                    "query",
                    "/tar_type",
                    "压缩类型",
                    "只能为 GZIP",
                    None,
                ));
            }
        };
        if self.bill_lines(day).is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "NO_STATEMENT_EXIST",
                "账单文件不存在",
            ));
        }
        let text = self.bill_text(day);
        let mut hash = hex::encode(Sha1::digest(text.as_bytes()));
        let mut switches = self.bills.state();
        if switches.corrupt_hashes > 0 {
            switches.corrupt_hashes -= 1;
            hash = hex::encode(Sha1::digest(format!("{text}corrupt").as_bytes()));
        }
        let bytes = if gzip {
            gzipped(text.as_bytes())
        } else {
            text.into_bytes()
        };
        let token = random_string(ALPHANUMERIC, 48);
        switches.files.insert(token.clone(), bytes);
        let host = header_text(headers, "host").unwrap_or("127.0.0.1");
        Ok(Reply::json(json!({
            "hash_type": "SHA1",
            "hash_value": hash,
            "download_url": format!("http://{host}{BILL_DOWNLOAD}?token={token}"),
        })))
    }

    fn answer_download(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Vec<u8>, ApiError> {
        let raw_uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
        self.check_authorization(method, &raw_uri, headers, b"")?;
        let token = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        self.bills
            .state()
            .files
            .get(&token)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_NOT_EXISTS",
                    "下载地址已失效",
                )
            })
    }
}

fn backticked(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|field| format!("`{field}"))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

async fn tradebill(
    State(shared): SharedState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let (status, body) = match shared.answer_tradebill(&method, &uri, &headers) {
        Ok(reply) => (
            reply.status,
            reply
                .body
                .map(|body| body.to_string().into_bytes())
                .unwrap_or_default(),
        ),
        Err(error) => (error.status, error.body()),
    };
    shared.record_bill_call(TRADEBILL, &method, &uri, &headers, status);
    shared.signed_response(status, body, None)
}

/// The file itself: WeChat does not sign it (the SHA1 vouches for it).
async fn download(
    State(shared): SharedState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match shared.answer_download(&method, &uri, &headers) {
        Ok(bytes) => {
            shared.record_bill_call(BILL_DOWNLOAD, &method, &uri, &headers, StatusCode::OK);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                bytes,
            )
                .into_response()
        }
        Err(error) => {
            shared.record_bill_call(BILL_DOWNLOAD, &method, &uri, &headers, error.status);
            shared.signed_response(error.status, error.body(), None)
        }
    }
}
