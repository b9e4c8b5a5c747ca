//! The daily trade bill: `alipay.data.dataservice.bill.downloadurl.query` with
//! `bill_type: "trade"` gives a short-lived URL, which serves a ZIP of GBK CSV files:
//!
//! - `…_业务明细.csv`: `#` comment lines above and below, then a Chinese header and one
//!   line per 交易 (payment) or 退款 (refund). Alipay ends most values with a tab (so
//!   Excel keeps long numbers as text); refunds carry negative amounts and our refund
//!   number in 退款批次号/请求号.
//! - `…_业务明细(汇总).csv`: the day's totals (a 合计 line), checked against the lines.
//!
//! Entry names are GBK without the ZIP's UTF-8 flag, so they are read from their raw
//! bytes. Anything that does not read as this layout is [`BillError::Corrupt`]: a bill
//! that is half understood must not reconcile.

use std::io::{Cursor, Read};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::client::{AlipayApiError, AlipayClient};
use super::parse_beijing_time;
use crate::domain::money::Fen;
use crate::pay::{BillError, BillLine, BillLineKind};

pub const BILL_URL_QUERY: &str = "alipay.data.dataservice.bill.downloadurl.query";
/// The answer for a day without a bill (none yet, or nothing happened).
pub const BILL_NOT_EXIST: &str = "isp.bill_not_exist";

/// No real daily bill of a college comes near these; a larger file is refused.
const MAX_ZIP_BYTES: usize = 64 * 1024 * 1024;
const MAX_CSV_BYTES: u64 = 256 * 1024 * 1024;

const DETAIL_SUFFIX: &str = "业务明细.csv";
const SUMMARY_SUFFIX: &str = "业务明细(汇总).csv";

mod column {
    pub const TRADE_NO: &str = "支付宝交易号";
    pub const OUT_TRADE_NO: &str = "商户订单号";
    pub const KIND: &str = "业务类型";
    pub const CREATED: &str = "创建时间";
    pub const FINISHED: &str = "完成时间";
    pub const AMOUNT: &str = "订单金额（元）";
    pub const RECEIVED: &str = "商家实收（元）";
    pub const REQUEST_NO: &str = "退款批次号/请求号";
    pub const TRADE_COUNT: &str = "交易订单总笔数";
    pub const REFUND_COUNT: &str = "退款订单总笔数";
    pub const TOTAL: &str = "合计";
}

fn corrupt(detail: impl Into<String>) -> BillError {
    BillError::Corrupt(detail.into())
}

impl AlipayClient {
    /// The download URL of `day`'s trade bill; `Ok(None)` when Alipay has none.
    pub async fn bill_download_url(
        &self,
        day: NaiveDate,
    ) -> Result<Option<String>, AlipayApiError> {
        let biz_content = json!({
            "bill_type": "trade",
            "bill_date": day.format("%Y-%m-%d").to_string(),
        });
        match self.call(BILL_URL_QUERY, &biz_content, None).await {
            Ok(content) => match content.get("bill_download_url").and_then(Value::as_str) {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Ok(Some(url.to_owned()))
                }
                _ => Err(AlipayApiError::Decode {
                    method: BILL_URL_QUERY,
                    detail: "no bill_download_url".into(),
                }),
            },
            Err(AlipayApiError::Business { sub_code, .. }) if sub_code == BILL_NOT_EXIST => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// The ZIP behind a download URL (valid for 30 seconds, Alipay says).
    pub async fn download_bill(&self, url: &str) -> Result<Vec<u8>, BillError> {
        let unknown =
            |detail: String| BillError::Channel(crate::pay::ChannelError::OutcomeUnknown(detail));
        let response = self
            .http()
            .get(url)
            .send()
            .await
            .map_err(|error| unknown(format!("the bill download failed: {error}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unknown(format!("the bill download answered HTTP {status}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unknown(format!("the bill download broke off: {error}")))?;
        if bytes.len() > MAX_ZIP_BYTES {
            return Err(corrupt("the bill is larger than any daily bill could be"));
        }
        Ok(bytes.to_vec())
    }
}

/// The lines of a bill ZIP as downloaded, its summary checked.
pub fn parse_bill_zip(bytes: &[u8]) -> Result<Vec<BillLine>, BillError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|error| corrupt(format!("not a ZIP: {error}")))?;
    let mut detail = None;
    let mut summary = None;
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|error| corrupt(format!("ZIP entry {index}: {error}")))?;
        let name = entry_name(file.name_raw());
        let slot = if name.ends_with(SUMMARY_SUFFIX) {
            &mut summary
        } else if name.ends_with(DETAIL_SUFFIX) {
            &mut detail
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(corrupt(format!("two files like {name}")));
        }
        let mut raw = Vec::new();
        (&mut file)
            .take(MAX_CSV_BYTES)
            .read_to_end(&mut raw)
            .map_err(|error| corrupt(format!("{name}: {error}")))?;
        *slot = Some((name, decode_gbk(&raw)?));
    }
    let (detail_name, detail) = detail.ok_or_else(|| corrupt("no 业务明细 file in the ZIP"))?;
    let (summary_name, summary) =
        summary.ok_or_else(|| corrupt("no 业务明细(汇总) file in the ZIP"))?;
    let lines = parse_detail(&detail).map_err(|error| prefixed(&detail_name, error))?;
    let totals = parse_summary(&summary).map_err(|error| prefixed(&summary_name, error))?;
    check_totals(&lines, &totals)?;
    Ok(lines.into_iter().map(|line| line.line).collect())
}

fn prefixed(name: &str, error: BillError) -> BillError {
    match error {
        BillError::Corrupt(detail) => corrupt(format!("{name}: {detail}")),
        other => other,
    }
}

/// Entry names: UTF-8 when they are, else GBK as Alipay writes them.
fn entry_name(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(name) => name.to_owned(),
        Err(_) => encoding_rs::GBK
            .decode_without_bom_handling(raw)
            .0
            .into_owned(),
    }
}

fn decode_gbk(raw: &[u8]) -> Result<String, BillError> {
    let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(raw);
    if had_errors {
        return Err(corrupt("not GBK text"));
    }
    Ok(text.trim_start_matches('\u{feff}').to_owned())
}

/// The CSV records of a file, comment lines (`#…`) and blank lines left out, each
/// value without Alipay's trailing tab; with the line number in the file.
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, BillError> {
    let mut kept = String::new();
    let mut numbers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
        numbers.push(index + 1);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(kept.as_bytes());
    let mut out = Vec::new();
    for (record, number) in reader.records().zip(numbers) {
        let record = record.map_err(|error| corrupt(format!("line {number}: {error}")))?;
        out.push((
            number,
            record.iter().map(|value| value.trim().to_owned()).collect(),
        ));
    }
    Ok(out)
}

/// Where each named column is in a header.
struct Header(Vec<String>);

impl Header {
    fn index(&self, name: &str) -> Result<usize, BillError> {
        self.0
            .iter()
            .position(|column| column == name)
            .ok_or_else(|| corrupt(format!("no column {name}")))
    }
}

/// A signed amount in yuan (`35.80`, `-35.80`) as fen, exactly.
fn signed_fen(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(magnitude) => Fen::parse_yuan(magnitude).ok().map(|fen| -fen.0),
        None => Fen::parse_yuan(text).ok().map(|fen| fen.0),
    }
}

struct DetailLine {
    line: BillLine,
    /// 商家实收, signed as in the file.
    received_fen: i64,
}

fn parse_detail(text: &str) -> Result<Vec<DetailLine>, BillError> {
    let mut rows = records(text)?.into_iter();
    let (_, header) = rows.next().ok_or_else(|| corrupt("no header line"))?;
    let header = Header(header);
    let at = |name| header.index(name);
    let (trade_no, out_trade_no, kind, created, finished, amount, received, request_no) = (
        at(column::TRADE_NO)?,
        at(column::OUT_TRADE_NO)?,
        at(column::KIND)?,
        at(column::CREATED)?,
        at(column::FINISHED)?,
        at(column::AMOUNT)?,
        at(column::RECEIVED)?,
        at(column::REQUEST_NO)?,
    );
    let width = header.0.len();
    let mut lines = Vec::new();
    for (number, row) in rows {
        let bad = |what: &str| corrupt(format!("line {number}: {what}"));
        if row.len() != width {
            return Err(bad(&format!("{} values under {width} columns", row.len())));
        }
        let signed = signed_fen(&row[amount]).ok_or_else(|| bad("订单金额 is not an amount"))?;
        let received_fen =
            signed_fen(&row[received]).ok_or_else(|| bad("商家实收 is not an amount"))?;
        let kind = match row[kind].as_str() {
            "交易" if signed > 0 => BillLineKind::Payment,
            "退款" if signed < 0 && !row[request_no].is_empty() => BillLineKind::Refund {
                out_refund_no: row[request_no].clone(),
            },
            "交易" | "退款" => {
                return Err(bad("amount or refund number does not fit 业务类型"));
            }
            other => return Err(bad(&format!("unknown 业务类型 {other:?}"))),
        };
        let time = if row[finished].is_empty() {
            &row[created]
        } else {
            &row[finished]
        };
        let at: DateTime<Utc> = parse_beijing_time(time).ok_or_else(|| bad("time unreadable"))?;
        if row[trade_no].is_empty() || row[out_trade_no].is_empty() {
            return Err(bad("no 支付宝交易号 or 商户订单号"));
        }
        lines.push(DetailLine {
            line: BillLine {
                out_trade_no: row[out_trade_no].clone(),
                channel_trade_no: row[trade_no].clone(),
                kind,
                amount_fen: signed.abs(),
                at,
            },
            received_fen,
        });
    }
    Ok(lines)
}

/// The 合计 line of the summary.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    trades: usize,
    refunds: usize,
    /// 订单金额 and 商家实收, net of refunds.
    amount_fen: i64,
    received_fen: i64,
}

fn parse_summary(text: &str) -> Result<Totals, BillError> {
    let mut rows = records(text)?.into_iter();
    let (_, header) = rows.next().ok_or_else(|| corrupt("no header line"))?;
    let header = Header(header);
    let (trades, refunds, amount, received) = (
        header.index(column::TRADE_COUNT)?,
        header.index(column::REFUND_COUNT)?,
        header.index(column::AMOUNT)?,
        header.index(column::RECEIVED)?,
    );
    let (number, total) = rows
        .find(|(_, row)| row.iter().take(2).any(|value| value == column::TOTAL))
        .ok_or_else(|| corrupt("no 合计 line"))?;
    let bad = |what: &str| corrupt(format!("line {number}: {what}"));
    let cell = |index: usize| total.get(index).map(String::as_str).unwrap_or_default();
    Ok(Totals {
        trades: cell(trades).parse().map_err(|_| bad("交易订单总笔数"))?,
        refunds: cell(refunds).parse().map_err(|_| bad("退款订单总笔数"))?,
        amount_fen: signed_fen(cell(amount)).ok_or_else(|| bad("订单金额"))?,
        received_fen: signed_fen(cell(received)).ok_or_else(|| bad("商家实收"))?,
    })
}

fn check_totals(lines: &[DetailLine], totals: &Totals) -> Result<(), BillError> {
    let mut found = Totals {
        trades: 0,
        refunds: 0,
        amount_fen: 0,
        received_fen: 0,
    };
    for line in lines {
        match line.line.kind {
            BillLineKind::Payment => {
                found.trades += 1;
                found.amount_fen += line.line.amount_fen;
            }
            BillLineKind::Refund { .. } => {
                found.refunds += 1;
                found.amount_fen -= line.line.amount_fen;
            }
        }
        found.received_fen += line.received_fen;
    }
    if &found != totals {
        return Err(corrupt(format!(
            "the summary says {} 交易 / {} 退款 / 订单金额 {} / 商家实收 {}, the lines add up \
             to {} / {} / {} / {}",
            totals.trades,
            totals.refunds,
            Fen(totals.amount_fen),
            Fen(totals.received_fen),
            found.trades,
            found.refunds,
            Fen(found.amount_fen),
            Fen(found.received_fen),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
