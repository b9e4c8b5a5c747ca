//! WeChat Pay's daily trade bill (交易账单): `GET /v3/bill/tradebill` answers, signed
//! like every answer, with a `download_url` and the SHA1 of the bill; the download is
//! a GET signed by us whose body WeChat does NOT sign, so the SHA1 is what vouches
//! for it. A bill whose hash or summary line disagrees with its lines is corrupt and
//! nothing of it is used.
//!
//! The file (bill_type `ALL`): a header line, one line per payment or refund whose
//! every field starts with a backtick (`` ` ``, so that Excel keeps long numbers), a
//! summary header (`总交易单数,…`) and the summary line. Amounts are yuan. Columns are
//! found by their header names, so the older layout (`总金额` instead of
//! `应结订单金额`/`订单金额`) reads too.

use std::io::Read;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use sha1::{Digest, Sha1};

use super::client::{PayApiError, WechatPayClient, decode, error_from_answer};
use crate::domain::money::Fen;
use crate::domain::order::beijing_offset;
use crate::pay::{BillLine, BillLineKind};

const TRADEBILL: &str = "v3/bill/tradebill";
/// A college's busiest day is tens of thousands of lines: a few MiB. Anything far
/// beyond is not a bill of ours.
const MAX_BILL_BYTES: u64 = 64 * 1024 * 1024;
const SUMMARY_FIRST_COLUMN: &str = "总交易单数";

/// Why a trade bill could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TradeBillError {
    /// `NO_STATEMENT_EXIST` (no trade that day) or `STATEMENT_CREATING` (not yet).
    #[error("WeChat Pay has no bill for that day: {0}")]
    NoBill(String),
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Api(#[from] PayApiError),
}

#[derive(Deserialize)]
struct TradeBillAnswer {
    hash_type: String,
    hash_value: String,
    download_url: String,
}

impl WechatPayClient {
    /// Every payment and refund line of `day`'s `ALL` bill, checked against its SHA1
    /// and its summary line.
    #[tracing::instrument(skip(self))]
    pub async fn trade_bill(
        &self,
        day: NaiveDate,
        gzip: bool,
    ) -> Result<Vec<BillLine>, TradeBillError> {
        const API: &str = "trade bill";
        let mut url = self.endpoint(TRADEBILL)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("bill_date", &day.format("%Y-%m-%d").to_string());
            query.append_pair("bill_type", "ALL");
            if gzip {
                query.append_pair("tar_type", "GZIP");
            }
        }
        let answer = self.exchange(API, Method::GET, url, None).await?;
        if !answer.status.is_success() {
            return Err(match error_from_answer(API, "", &answer) {
                PayApiError::Rejected { code, message, .. }
                    if code == "NO_STATEMENT_EXIST" || code == "STATEMENT_CREATING" =>
                {
                    TradeBillError::NoBill(format!("{code}: {message}"))
                }
                other => other.into(),
            });
        }
        let found: TradeBillAnswer = decode(API, &answer.body)?;
        if !found.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(TradeBillError::Corrupt(format!(
                "账单摘要类型 {} 无法校验",
                found.hash_type
            )));
        }
        let bytes = self.download_bill(&found.download_url).await?;
        read_bill(&bytes, gzip, &found.hash_value)
    }

    /// The signed GET of the file; its body is checked by the caller (SHA1).
    async fn download_bill(&self, download_url: &str) -> Result<Vec<u8>, TradeBillError> {
        const API: &str = "download bill";
        let url = url::Url::parse(download_url)
            .map_err(|error| TradeBillError::Corrupt(format!("账单下载地址无效：{error}")))?;
        let transport = |source| PayApiError::Transport { api: API, source };
        let response = self
            .signed_request(Method::GET, url, None)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BILL_BYTES)
        {
            return Err(TradeBillError::Corrupt("账单文件过大".into()));
        }
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(PayApiError::Rejected {
                api: API,
                status: status.as_u16(),
                code: String::new(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            }
            .into());
        }
        Ok(body.to_vec())
    }
}

/// The downloaded file: gunzipped when asked for so, checked against `sha1_hex` (of
/// the uncompressed bill), then read.
pub fn read_bill(
    bytes: &[u8],
    gzip: bool,
    sha1_hex: &str,
) -> Result<Vec<BillLine>, TradeBillError> {
    let plain = if gzip { gunzip(bytes)? } else { bytes.to_vec() };
    let actual = hex::encode(Sha1::digest(&plain));
    if !actual.eq_ignore_ascii_case(sha1_hex.trim()) {
        return Err(TradeBillError::Corrupt(format!(
            "账单 SHA1 校验失败（应为 {sha1_hex}，实为 {actual}）"
        )));
    }
    let text = std::str::from_utf8(&plain)
        .map_err(|_| TradeBillError::Corrupt("账单不是 UTF-8 文本".into()))?;
    parse_trade_bill(text)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, TradeBillError> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_BILL_BYTES + 1)
        .read_to_end(&mut plain)
        .map_err(|error| TradeBillError::Corrupt(format!("账单无法解压：{error}")))?;
    if plain.len() as u64 > MAX_BILL_BYTES {
        return Err(TradeBillError::Corrupt("账单文件过大".into()));
    }
    Ok(plain)
}

fn corrupt(why: impl Into<String>) -> TradeBillError {
    TradeBillError::Corrupt(why.into())
}

/// One line split into its fields, each without its leading backtick.
fn fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|field| {
            let field = field.trim();
            field.strip_prefix('`').unwrap_or(field).trim()
        })
        .collect()
}

/// Where each column we read sits.
struct Columns {
    count: usize,
    time: usize,
    transaction_id: usize,
    out_trade_no: usize,
    state: usize,
    /// 应结订单金额 (older bills: 总金额): what the summary adds up.
    settled: usize,
    /// 订单金额: what the payer was asked for (our order's amount).
    ordered: usize,
    out_refund_no: usize,
    refunded: usize,
    /// 申请退款金额: what we asked to refund.
    refund_asked: usize,
}

impl Columns {
    fn find(header: &[&str]) -> Result<Columns, TradeBillError> {
        let position = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| header.iter().position(|column| column == name))
                .ok_or_else(|| corrupt(format!("账单缺少“{}”列", names[0])))
        };
        let settled = position(&["应结订单金额", "总金额"])?;
        let refunded = position(&["退款金额"])?;
        Ok(Columns {
            count: header.len(),
            time: position(&["交易时间"])?,
            transaction_id: position(&["微信订单号"])?,
            out_trade_no: position(&["商户订单号"])?,
            state: position(&["交易状态"])?,
            settled,
            ordered: position(&["订单金额"]).unwrap_or(settled),
            out_refund_no: position(&["商户退款单号"])?,
            refunded,
            refund_asked: position(&["申请退款金额"]).unwrap_or(refunded),
        })
    }
}

/// Reads the bill's text (see the module's doc). Every data line must parse and the
/// summary must add up, or the whole bill is refused.
pub fn parse_trade_bill(text: &str) -> Result<Vec<BillLine>, TradeBillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let Some((header, rest)) = lines.split_first() else {
        return Err(corrupt("账单为空"));
    };
    let columns = Columns::find(&fields(header))?;
    let summary_at = rest
        .iter()
        .position(|line| fields(line).first() == Some(&SUMMARY_FIRST_COLUMN))
        .ok_or_else(|| corrupt("账单缺少汇总行"))?;
    let (data, summary) = rest.split_at(summary_at);
    let [summary_header, summary_values] = summary else {
        return Err(corrupt("账单汇总部分应为两行"));
    };
    let mut bill = Vec::new();
    let mut settled_total = Fen::ZERO;
    let mut refunded_total = Fen::ZERO;
    for (index, line) in data.iter().enumerate() {
        // The header is line 1 of the file.
        let number = index + 2;
        let row = fields(line);
        if row.len() != columns.count {
            return Err(corrupt(format!(
                "账单第{number}行有 {} 列，表头有 {} 列",
                row.len(),
                columns.count
            )));
        }
        let amount = |column: usize| {
            Fen::parse_yuan(row[column])
                .map_err(|error| corrupt(format!("账单第{number}行金额“{}”：{error}", row[column])))
        };
        settled_total += amount(columns.settled)?;
        refunded_total += amount(columns.refunded)?;
        let at = beijing_time(row[columns.time]).ok_or_else(|| {
            corrupt(format!(
                "账单第{number}行交易时间“{}”无法识别",
                row[columns.time]
            ))
        })?;
        let kind = match row[columns.state] {
            "SUCCESS" => BillLineKind::Payment,
            "REFUND" => BillLineKind::Refund {
                out_refund_no: row[columns.out_refund_no].to_owned(),
            },
            // Paid then revoked (micropay only): no money stayed with us.
            "REVOKED" => continue,
            other => return Err(corrupt(format!("账单第{number}行交易状态“{other}”未知"))),
        };
        let amount_fen = match kind {
            BillLineKind::Payment => amount(columns.ordered)?,
            BillLineKind::Refund { .. } => amount(columns.refund_asked)?,
        };
        bill.push(BillLine {
            out_trade_no: row[columns.out_trade_no].to_owned(),
            channel_trade_no: row[columns.transaction_id].to_owned(),
            kind,
            amount_fen: amount_fen.0,
            at,
        });
    }
    check_summary(
        summary_header,
        summary_values,
        data.len(),
        settled_total,
        refunded_total,
    )?;
    Ok(bill)
}

/// The summary line must count the data lines and add up their amounts.
fn check_summary(
    header: &str,
    values: &str,
    lines: usize,
    settled: Fen,
    refunded: Fen,
) -> Result<(), TradeBillError> {
    let header = fields(header);
    let values = fields(values);
    if header.len() != values.len() {
        return Err(corrupt("账单汇总行与其表头列数不符"));
    }
    let value = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| header.iter().position(|column| column == name))
            .map(|index| values[index])
            .ok_or_else(|| corrupt(format!("账单汇总缺少“{}”", names[0])))
    };
    let count = value(&[SUMMARY_FIRST_COLUMN])?;
    if count.parse::<usize>().ok() != Some(lines) {
        return Err(corrupt(format!(
            "账单汇总的总交易单数 {count} 与明细 {lines} 行不符"
        )));
    }
    let settled_text = value(&["应结订单总金额", "总交易额"])?;
    if !same_amount(settled_text, settled) {
        return Err(corrupt(format!(
            "账单汇总的应结订单总金额 {settled_text} 与明细合计 {settled} 不符"
        )));
    }
    let refunded_text = value(&["退款总金额", "总退款金额"])?;
    if !same_amount(refunded_text, refunded) {
        return Err(corrupt(format!(
            "账单汇总的退款总金额 {refunded_text} 与明细合计 {refunded} 不符"
        )));
    }
    Ok(())
}

/// A summary total in yuan equals `fen`. Totals can pass the one-million-yuan bound
/// of [`Fen::parse_yuan`], so a total it refuses is compared as printed.
fn same_amount(text: &str, fen: Fen) -> bool {
    match Fen::parse_yuan(text) {
        Ok(parsed) => parsed == fen,
        Err(_) => text == fen.to_yuan(),
    }
}

fn beijing_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    naive
        .and_local_timezone(beijing_offset())
        .single()
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use chrono::TimeZone;

    use super::*;

    const HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
    const SUMMARY: &str = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

    /// Two payments and a refund, in WeChat's shape (CRLF as the download has it).
    fn bill_text(count: &str, settled: &str) -> String {
        [
            HEADER.to_owned(),
            "`2026-09-01 10:00:05,`wx2c2769f8efd9abc2,`1900000109,`0,`,`4200001234202609011234567890,`CP20260901100000ABCDEF0123,`o_zhang,`JSAPI,`SUCCESS,`OTHERS,`CNY,`6050.50,`0.00,`0,`0,`0.00,`0.00,`,`,`武威职业学院-学费、住宿费,`,`36.30000,`0.60%,`6050.50,`0.00,`".to_owned(),
            "`2026-09-01 23:59:59,`wx2c2769f8efd9abc2,`1900000109,`0,`,`4200001234202609011234567891,`CP20260901235959ABCDEF0124,`o_li,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`武威职业学院-教材费,`,`0.00000,`0.60%,`0.01,`0.00,`".to_owned(),
            "`2026-09-01 12:00:00,`wx2c2769f8efd9abc2,`1900000109,`0,`,`4200001234202608311234567892,`CP20260831090000ABCDEF0125,`o_wang,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300001234202609010000000001,`RF20260901120000000001,`1200.00,`0.00,`ORIGINAL,`PROCESSING,`武威职业学院-住宿费,`,`-7.20000,`0.60%,`0.00,`1200.00,`".to_owned(),
            SUMMARY.to_owned(),
            format!("`{count},`{settled},`1200.00,`0.00,`29.10000,`6050.51,`1200.00"),
        ]
        .join("\r\n")
            + "\r\n"
    }

    fn sha1(bytes: &[u8]) -> String {
        hex::encode(Sha1::digest(bytes))
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn expected() -> Vec<BillLine> {
        let at = |h, m, s| {
            beijing_offset()
                .with_ymd_and_hms(2026, 9, 1, h, m, s)
                .single()
                .unwrap()
                .with_timezone(&Utc)
        };
        vec![
            BillLine {
                out_trade_no: "CP20260901100000ABCDEF0123".into(),
                channel_trade_no: "4200001234202609011234567890".into(),
                kind: BillLineKind::Payment,
                amount_fen: 605_050,
                at: at(10, 0, 5),
            },
            BillLine {
                out_trade_no: "CP20260901235959ABCDEF0124".into(),
                channel_trade_no: "4200001234202609011234567891".into(),
                kind: BillLineKind::Payment,
                amount_fen: 1,
                at: at(23, 59, 59),
            },
            BillLine {
                out_trade_no: "CP20260831090000ABCDEF0125".into(),
                channel_trade_no: "4200001234202608311234567892".into(),
                kind: BillLineKind::Refund {
                    out_refund_no: "RF20260901120000000001".into(),
                },
                amount_fen: 120_000,
                at: at(12, 0, 0),
            },
        ]
    }

    #[test]
    fn a_plain_bill_reads_into_payments_and_refunds_in_fen() {
        let text = bill_text("3", "6050.51");
        let lines = read_bill(text.as_bytes(), false, &sha1(text.as_bytes())).unwrap();
        assert_eq!(lines, expected());
        // 23:59:59 Beijing is still that day, 15:59:59 UTC.
        assert_eq!(lines[1].at.to_rfc3339(), "2026-09-01T15:59:59+00:00");
    }

    #[test]
    fn a_gzipped_bill_is_checked_against_the_hash_of_the_plain_text() {
        let text = bill_text("3", "6050.51");
        let packed = gzip(text.as_bytes());
        let lines = read_bill(&packed, true, &sha1(text.as_bytes()).to_uppercase()).unwrap();
        assert_eq!(lines, expected());
        // The hash of the gzip itself is not the bill's.
        assert!(matches!(
            read_bill(&packed, true, &sha1(&packed)),
            Err(TradeBillError::Corrupt(_))
        ));
    }

    #[test]
    fn a_bill_failing_its_hash_is_corrupt() {
        let text = bill_text("3", "6050.51");
        let hash = sha1(text.as_bytes());
        let tampered = text.replace("`6050.50,`0.00,`0,", "`6050.60,`0.00,`0,");
        let error = read_bill(tampered.as_bytes(), false, &hash).unwrap_err();
        assert!(
            matches!(&error, TradeBillError::Corrupt(why) if why.contains("SHA1")),
            "{error}"
        );
        assert!(matches!(
            read_bill(b"not gzip at all", true, &hash),
            Err(TradeBillError::Corrupt(_))
        ));
    }

    #[test]
    fn a_summary_that_disagrees_with_the_lines_is_corrupt() {
        for (count, settled) in [("2", "6050.51"), ("3", "6050.50"), ("x", "6050.51")] {
            let text = bill_text(count, settled);
            assert!(
                matches!(parse_trade_bill(&text), Err(TradeBillError::Corrupt(_))),
                "{count} {settled}"
            );
        }
        let without_summary: String = bill_text("3", "6050.51")
            .lines()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse_trade_bill(&without_summary).is_err());
    }

    #[test]
    fn a_line_with_a_missing_field_or_a_bad_amount_is_corrupt() {
        let text = bill_text("3", "6050.51").replacen("`0.01,`0.00,`0,", "`0.01,`0,", 1);
        assert!(parse_trade_bill(&text).is_err());
        let text = bill_text("3", "6050.51").replacen("`0.01,", "`0.001,", 1);
        assert!(parse_trade_bill(&text).is_err());
    }

    #[test]
    fn a_day_without_trades_has_only_the_summary() {
        let text =
            format!("{HEADER}\r\n{SUMMARY}\r\n`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\r\n");
        assert_eq!(parse_trade_bill(&text).unwrap(), Vec::new());
    }

    #[test]
    fn totals_beyond_a_million_yuan_still_compare() {
        assert!(same_amount("1500000.00", Fen(150_000_000)));
        assert!(!same_amount("1500000.01", Fen(150_000_000)));
        assert!(same_amount("0.06", Fen(6)));
    }
}
