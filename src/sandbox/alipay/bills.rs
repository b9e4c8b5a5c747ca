//! The Alipay sandbox's daily trade bill (`bill_type=trade`), as Alipay serves it: a
//! ZIP named `<account>_<yyyyMMdd>.csv.zip` holding two GBK CSV files whose names are
//! GBK too (no UTF-8 flag): `<account>_<yyyyMMdd>_业务明细.csv`, the lines between `#`
//! comment lines, values ending in a tab, refunds negative with their 退款批次号/请求号;
//! and `<account>_<yyyyMMdd>_业务明细(汇总).csv`, the day's 合计.
//!
//! Written from Alipay's layout, sharing nothing with `pay::alipay::bill`.
//! [`AlipayBillTamper`] spoils a bill the ways a reconciliation must notice.

use std::io::{Cursor, Write};

use chrono::{DateTime, NaiveDate, Utc};
use zip::write::SimpleFileOptions;

use crate::sandbox::kit::{china, yuan};

/// One 交易 or 退款 line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillEntry {
    pub trade_no: String,
    pub out_trade_no: String,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Positive for a payment, negative for a refund.
    pub amount_fen: i64,
    /// A refund's `out_request_no`.
    pub request_no: Option<String>,
}

/// How the next bills depart from the sandbox's books (they stay until cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlipayBillTamper {
    /// The download is a ZIP cut short.
    BrokenZip,
    /// A ZIP with the summary only.
    NoDetailFile,
    /// A 交易 line for an order the sandbox never saw paid (summary agrees).
    ExtraPayment {
        out_trade_no: String,
        amount_fen: i64,
    },
    /// This order's 交易 line says another amount (summary agrees).
    PaymentAmount {
        out_trade_no: String,
        amount_fen: i64,
    },
    /// The 合计 says one 交易 more than the lines.
    WrongSummary,
    /// A line whose 订单金额 is not a number.
    UnreadableLine,
}

const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";
const RULE: &str = "-----------------------------------------";

fn beijing(time: DateTime<Utc>) -> DateTime<chrono::FixedOffset> {
    time.with_timezone(&china())
}

fn time(time: DateTime<Utc>) -> String {
    beijing(time).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn chinese_date(day: NaiveDate) -> String {
    day.format("%Y年%m月%d日").to_string()
}

/// A CSV value as Alipay writes it (quoted only when it must be).
fn cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn detail_line(entry: &BillEntry, amount: &str, buyer: &str) -> String {
    let kind = if entry.request_no.is_some() {
        "退款"
    } else {
        "交易"
    };
    let request_no = entry
        .request_no
        .as_deref()
        .map(|number| format!("{number}\t"))
        .unwrap_or_default();
    [
        format!("{}\t", entry.trade_no),
        format!("{}\t", entry.out_trade_no),
        kind.to_owned(),
        cell(&entry.subject),
        time(entry.created_at),
        time(entry.finished_at),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        buyer.to_owned(),
        amount.to_owned(),
        amount.to_owned(),
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        String::new(),
        "0.00".into(),
        "0.00".into(),
        request_no,
        "0.00".into(),
        "0.00".into(),
        String::new(),
    ]
    .join(",")
}

fn heading(title: &str, account: &str, day: NaiveDate, list: &str) -> Vec<String> {
    let next = day.succ_opt().unwrap_or(day);
    vec![
        format!("#{title}"),
        format!("#账号：[{account}]"),
        format!(
            "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]",
            chinese_date(day),
            chinese_date(next)
        ),
        format!("#{RULE}{list}{RULE}"),
    ]
}

fn exported(at: DateTime<Utc>) -> String {
    format!(
        "#导出时间：[{}]",
        beijing(at).format("%Y年%m月%d日 %H:%M:%S")
    )
}

/// The ZIP for `day`: `entries` as recorded, then `tampers` applied.
pub fn bill_zip(
    account: &str,
    day: NaiveDate,
    mut entries: Vec<BillEntry>,
    buyer: &str,
    tampers: &[AlipayBillTamper],
    exported_at: DateTime<Utc>,
) -> Vec<u8> {
    let mut unreadable = false;
    let mut summary_extra_trades = 0;
    for tamper in tampers {
        match tamper {
            AlipayBillTamper::ExtraPayment {
                out_trade_no,
                amount_fen,
            } => {
                let at = entries
                    .first()
                    .map_or(exported_at, |entry| entry.finished_at);
                entries.push(BillEntry {
                    trade_no: format!("{}22001999999999999999", day.format("%Y%m%d")),
                    out_trade_no: out_trade_no.clone(),
                    subject: "学费".into(),
                    created_at: at,
                    finished_at: at,
                    amount_fen: *amount_fen,
                    request_no: None,
                });
            }
            AlipayBillTamper::PaymentAmount {
                out_trade_no,
                amount_fen,
            } => {
                for entry in &mut entries {
                    if &entry.out_trade_no == out_trade_no && entry.request_no.is_none() {
                        entry.amount_fen = *amount_fen;
                    }
                }
            }
            AlipayBillTamper::WrongSummary => summary_extra_trades += 1,
            AlipayBillTamper::UnreadableLine => unreadable = true,
            AlipayBillTamper::BrokenZip | AlipayBillTamper::NoDetailFile => {}
        }
    }
    let stamp = day.format("%Y%m%d");
    let trades: Vec<&BillEntry> = entries.iter().filter(|e| e.request_no.is_none()).collect();
    let refunds: Vec<&BillEntry> = entries.iter().filter(|e| e.request_no.is_some()).collect();
    let trade_sum: i64 = trades.iter().map(|e| e.amount_fen).sum();
    let refund_sum: i64 = refunds.iter().map(|e| e.amount_fen).sum();

    let mut detail = heading("支付宝业务明细查询", account, day, "业务明细列表");
    detail.push(DETAIL_HEADER.to_owned());
    for (index, entry) in entries.iter().enumerate() {
        let amount = if unreadable && index == 0 {
            "三十五元".to_owned()
        } else {
            yuan(entry.amount_fen)
        };
        detail.push(detail_line(entry, &amount, buyer));
    }
    detail.extend([
        format!("#{RULE}业务明细列表结束{RULE}"),
        format!(
            "#交易合计：{}笔，商家实收共{}元，商家优惠共0.00元",
            trades.len(),
            yuan(trade_sum)
        ),
        format!(
            "#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共0.00元",
            refunds.len(),
            yuan(refund_sum)
        ),
        exported(exported_at),
    ]);

    let net = yuan(trade_sum + refund_sum);
    let mut summary = heading("支付宝业务汇总查询", account, day, "业务汇总列表");
    summary.push(SUMMARY_HEADER.to_owned());
    summary.push(format!(
        "合计,,{},{},{net},{net},0.00,0.00,0.00,0.00,0.00,{net}",
        trades.len() + summary_extra_trades,
        refunds.len()
    ));
    summary.extend([
        format!("#{RULE}业务汇总列表结束{RULE}"),
        exported(exported_at),
    ]);

    let mut files = Vec::new();
    if !tampers.contains(&AlipayBillTamper::NoDetailFile) {
        files.push((format!("{account}_{stamp}_业务明细.csv"), detail));
    }
    files.push((format!("{account}_{stamp}_业务明细(汇总).csv"), summary));
    let mut zip = write_zip(&files);
    if tampers.contains(&AlipayBillTamper::BrokenZip) {
        zip.truncate(zip.len() / 2);
    }
    zip
}

fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

fn write_zip(files: &[(String, Vec<String>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, lines) in files {
        let name = gbk(name);
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .name(&name);
        let mut text = lines.join("\r\n");
        text.push_str("\r\n");
        // Writing to memory cannot fail short of allocation failure.
        let written = writer
            .start_file_with_options(options)
            .and_then(|()| writer.write_all(&gbk(&text)).map_err(Into::into));
        if let Err(error) = written {
            tracing::error!(%error, "the Alipay sandbox could not write its bill");
        }
    }
    writer.finish().map(Cursor::into_inner).unwrap_or_default()
}
