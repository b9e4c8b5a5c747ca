//! The bill parser against a fixture written by hand in Alipay's shape (GBK, comment
//! lines, tab-ended values, a 退款 with a negative amount), zipped as Alipay zips it.

use std::io::Write;

use chrono::TimeZone;

use super::*;

const DETAIL: &str = "#支付宝业务明细查询\r
#账号：[20887210000000010156]\r
#起始日期：[2026年11月29日 00:00:00]   终止日期：[2026年11月30日 00:00:00]\r
#-----------------------------------------业务明细列表----------------------------------------\r
支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r
2026112922001400000000000001\t,CP20261129A1\t,交易,武威职业学院-2026学年学费,2026-11-29 09:59:40,2026-11-29 10:00:05,,,,,stu***@example.com,4800.00,4800.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,0.00,0.00,\r
2026112922001400000000000002\t,CP20261129B2\t,交易,\"武威职业学院-住宿费, 教材费\",2026-11-29 23:59:00,2026-11-29 23:59:59,,,,,stu***@example.com,0.01,0.01,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,0.00,0.00,\r
2026112922001400000000000001\t,CP20261129A1\t,退款,武威职业学院-2026学年学费,2026-11-29 15:00:00,2026-11-29 15:00:01,,,,,stu***@example.com,-1200.50,-1200.50,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,RF20261129X1\t,0.00,0.00,\r
#-----------------------------------------业务明细列表结束------------------------------------\r
#交易合计：2笔，商家实收共4800.01元，商家优惠共0.00元\r
#退款合计：1笔，商家实收退款共-1200.50元，商家优惠退款共0.00元\r
#导出时间：[2026年11月30日 09:02:11]\r
";

const SUMMARY: &str = "#支付宝业务汇总查询\r
#账号：[20887210000000010156]\r
#起始日期：[2026年11月29日 00:00:00]   终止日期：[2026年11月30日 00:00:00]\r
#-----------------------------------------业务汇总列表----------------------------------------\r
门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）\r
合计,,2,1,3599.51,3599.51,0.00,0.00,0.00,0.00,0.00,3599.51\r
#-----------------------------------------业务汇总列表结束------------------------------------\r
#导出时间：[2026年11月30日 09:02:11]\r
";

const DETAIL_NAME: &str = "20887210000000010156_20261129_业务明细.csv";
const SUMMARY_NAME: &str = "20887210000000010156_20261129_业务明细(汇总).csv";

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "the fixture is GBK-encodable");
    bytes.into_owned()
}

/// A ZIP whose entry names are GBK bytes without the UTF-8 flag, as Alipay's are.
fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        let name = gbk(name);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .name(&name);
        writer.start_file_with_options(options).expect("entry");
        writer.write_all(&gbk(text)).expect("write");
    }
    writer.finish().expect("zip").into_inner()
}

fn beijing(text: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").expect("time");
    crate::domain::order::beijing_offset()
        .from_local_datetime(&naive)
        .single()
        .expect("one time")
        .with_timezone(&Utc)
}

fn corrupt_message(result: Result<Vec<BillLine>, BillError>) -> String {
    match result {
        Err(BillError::Corrupt(message)) => message,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn alipays_zip_reads_as_payments_and_refunds_in_fen() {
    let lines =
        parse_bill_zip(&zip_of(&[(DETAIL_NAME, DETAIL), (SUMMARY_NAME, SUMMARY)])).expect("parses");
    assert_eq!(
        lines,
        vec![
            BillLine {
                out_trade_no: "CP20261129A1".into(),
                channel_trade_no: "2026112922001400000000000001".into(),
                kind: BillLineKind::Payment,
                amount_fen: 480_000,
                at: beijing("2026-11-29 10:00:05"),
            },
            BillLine {
                out_trade_no: "CP20261129B2".into(),
                channel_trade_no: "2026112922001400000000000002".into(),
                kind: BillLineKind::Payment,
                amount_fen: 1,
                at: beijing("2026-11-29 23:59:59"),
            },
            BillLine {
                out_trade_no: "CP20261129A1".into(),
                channel_trade_no: "2026112922001400000000000001".into(),
                kind: BillLineKind::Refund {
                    out_refund_no: "RF20261129X1".into(),
                },
                amount_fen: 120_050,
                at: beijing("2026-11-29 15:00:01"),
            },
        ]
    );
    // 23:59:59 Beijing is still the 29th, 15:59:59 UTC.
    assert_eq!(lines[1].at.to_rfc3339(), "2026-11-29T15:59:59+00:00");
}

#[test]
fn utf8_entry_names_are_read_too() {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in [(DETAIL_NAME, DETAIL), (SUMMARY_NAME, SUMMARY)] {
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        writer.write_all(&gbk(text)).expect("write");
    }
    let zip = writer.finish().expect("zip").into_inner();
    assert_eq!(parse_bill_zip(&zip).expect("parses").len(), 3);
}

#[test]
fn what_is_not_alipays_bill_is_corrupt() {
    let good = zip_of(&[(DETAIL_NAME, DETAIL), (SUMMARY_NAME, SUMMARY)]);
    assert!(corrupt_message(parse_bill_zip(b"<html>error</html>")).contains("not a ZIP"));
    assert!(corrupt_message(parse_bill_zip(&good[..good.len() / 2])).contains("not a ZIP"));
    assert!(
        corrupt_message(parse_bill_zip(&zip_of(&[(SUMMARY_NAME, SUMMARY)]))).contains("业务明细")
    );
    assert!(corrupt_message(parse_bill_zip(&zip_of(&[(DETAIL_NAME, DETAIL)]))).contains("汇总"));

    let cases = [
        ("4800.00,4800.00", "4800.001,4800.001", "订单金额"),
        ("4800.00,4800.00", "4,800.00,4800.00", "values"),
        (",交易,", ",冻结,", "业务类型"),
        (",RF20261129X1\t,", ",,", "业务类型"),
        ("-1200.50,-1200.50", "1200.50,1200.50", "业务类型"),
        ("2026-11-29 10:00:05", "2026/11/29 10:00:05", "time"),
        ("退款批次号/请求号", "退款单号", "退款批次号/请求号"),
    ];
    for (from, to, expected) in cases {
        let detail = DETAIL.replacen(from, to, 1);
        let message = corrupt_message(parse_bill_zip(&zip_of(&[
            (DETAIL_NAME, &detail),
            (SUMMARY_NAME, SUMMARY),
        ])));
        assert!(message.contains(expected), "{from} → {to}: {message}");
        assert!(message.contains(DETAIL_NAME), "{message}");
    }
}

#[test]
fn the_summary_must_add_up() {
    for (from, to) in [
        ("合计,,2,1,", "合计,,3,1,"),
        ("合计,,2,1,", "合计,,2,0,"),
        ("3599.51,3599.51,0.00", "3599.52,3599.51,0.00"),
        ("3599.51,3599.51,0.00", "3599.51,3599.50,0.00"),
    ] {
        let summary = SUMMARY.replacen(from, to, 1);
        let message = corrupt_message(parse_bill_zip(&zip_of(&[
            (DETAIL_NAME, DETAIL),
            (SUMMARY_NAME, &summary),
        ])));
        assert!(message.contains("summary"), "{to}: {message}");
    }
    let no_total = SUMMARY.replacen("合计", "小计", 1);
    let message = corrupt_message(parse_bill_zip(&zip_of(&[
        (DETAIL_NAME, DETAIL),
        (SUMMARY_NAME, &no_total),
    ])));
    assert!(message.contains("合计"), "{message}");
}

#[test]
fn a_day_with_only_the_header_is_an_empty_bill() {
    let detail: String = DETAIL
        .lines()
        .filter(|line| !line.starts_with("2026"))
        .map(|line| format!("{line}\n"))
        .collect();
    let summary = SUMMARY.replacen("合计,,2,1,3599.51,3599.51", "合计,,0,0,0.00,0.00", 1);
    let lines = parse_bill_zip(&zip_of(&[(DETAIL_NAME, &detail), (SUMMARY_NAME, &summary)]))
        .expect("parses");
    assert!(lines.is_empty());
}
