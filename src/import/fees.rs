//! The fees file: `身份证号`/`id_card`, `学年`/`academic_year` (`2026-2027`),
//! `项目`/`item` (`学费`, `住宿费`, …), `金额`/`amount` in yuan with at most two
//! decimals. Keyed by (ID number, academic year, item).
//!
//! Whether the student exists and whether an item may still change is the store's
//! to say (`Store::import_fees`); this module checks what the file alone shows.

use std::fmt;

use super::{
    ColumnSpec, FirstSeen, Parsed, Reasons, Table, column_cell, locate_columns, parse_id_card_cell,
};
use crate::domain::id_card::IdCardNumber;
use crate::domain::money::{Fen, MoneyError};

/// Longest item name, in characters (the database's column).
pub const MAX_ITEM_CHARS: usize = 64;

/// One fee item as the file gives it, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRow {
    /// The line in the file.
    pub line: usize,
    pub id_card: IdCardNumber,
    /// `2026-2027`.
    pub academic_year: String,
    pub item: String,
    /// More than zero.
    pub amount: Fen,
}

const ID_CARD: usize = 0;
const ACADEMIC_YEAR: usize = 1;
const ITEM: usize = 2;
const AMOUNT: usize = 3;

const COLUMNS: [ColumnSpec; 4] = [
    ColumnSpec {
        chinese: "身份证号",
        english: "id_card",
        aliases: &["身份证号码", "身份证"],
        required: true,
    },
    ColumnSpec {
        chinese: "学年",
        english: "academic_year",
        aliases: &[],
        required: true,
    },
    ColumnSpec {
        chinese: "项目",
        english: "item",
        aliases: &["收费项目", "缴费项目"],
        required: true,
    },
    ColumnSpec {
        chinese: "金额",
        english: "amount",
        aliases: &[],
        required: true,
    },
];

/// Every row checked: the fee items, or every bad row.
pub fn parse_fees(table: &Table) -> Result<Vec<FeeRow>, super::ImportRejected> {
    parse_fees_partially(table).into_result()
}

/// The good rows and the problems of the bad ones (a missing column: no rows and one
/// problem at the header's line).
pub fn parse_fees_partially(table: &Table) -> Parsed<FeeRow> {
    let columns = match locate_columns(table, &COLUMNS) {
        Ok(columns) => columns,
        Err(problem) => return Parsed::rejected(problem),
    };
    let cell = |row, column| column_cell(&columns, row, column);
    let mut parsed = Parsed {
        rows: Vec::with_capacity(table.rows.len()),
        problems: Vec::new(),
    };
    let mut first_seen = FirstSeen::new();
    for row in &table.rows {
        let mut reasons = Reasons::new();
        let id_card = reasons.check(parse_id_card_cell(cell(row, ID_CARD)));
        let academic_year = reasons.check(parse_academic_year(cell(row, ACADEMIC_YEAR)));
        let item = reasons.check(check_item(cell(row, ITEM)));
        let amount = reasons.check(parse_amount(cell(row, AMOUNT)));
        if let (Some(id_card), Some(academic_year), Some(item)) = (&id_card, &academic_year, item) {
            let key = (id_card.clone(), academic_year.clone(), item.to_owned());
            if let Some(first) = first_seen.earlier_line(key, row.line) {
                reasons.push(format!(
                    "与第{first}行重复（同一身份证号 {}、学年和项目）",
                    id_card.masked()
                ));
            }
        }
        if let Some(problem) = reasons.into_problem(row.line) {
            parsed.problems.push(problem);
            continue;
        }
        // No reasons: every field is there.
        let fee = || {
            Some(FeeRow {
                line: row.line,
                id_card: id_card?,
                academic_year: academic_year?,
                item: item?.to_owned(),
                amount: amount?,
            })
        };
        parsed.rows.extend(fee());
    }
    parsed
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeeFieldError {
    #[error("学年应写作如 2026-2027（相邻的两年）")]
    AcademicYear,
    #[error("请填写项目")]
    ItemEmpty,
    #[error("项目不能超过{MAX_ITEM_CHARS}个字")]
    ItemTooLong,
    #[error("{0}")]
    Amount(MoneyError),
    #[error("金额应大于0")]
    AmountZero,
}

/// `2026-2027` (also with a full-width or typographic dash), two consecutive years
/// in 2000..=2099, given back in the ASCII form.
pub fn parse_academic_year(input: &str) -> Result<String, FeeFieldError> {
    let input = input.trim();
    let (first, second) = input
        .split_once(['-', '－', '–', '—'])
        .ok_or(FeeFieldError::AcademicYear)?;
    let year = |text: &str| {
        let text = text.trim();
        if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<i32>().ok()
        } else {
            None
        }
    };
    match (year(first), year(second)) {
        (Some(first), Some(second)) if (2000..=2098).contains(&first) && second == first + 1 => {
            Ok(format!("{first}-{second}"))
        }
        _ => Err(FeeFieldError::AcademicYear),
    }
}

fn check_item(item: &str) -> Result<&str, FeeFieldError> {
    let item = item.trim();
    if item.is_empty() {
        Err(FeeFieldError::ItemEmpty)
    } else if item.chars().count() > MAX_ITEM_CHARS {
        Err(FeeFieldError::ItemTooLong)
    } else {
        Ok(item)
    }
}

/// An amount owed: yuan with at most two decimals, more than zero.
fn parse_amount(input: &str) -> Result<Fen, FeeFieldError> {
    match Fen::parse_yuan(input) {
        Ok(Fen(0)) => Err(FeeFieldError::AmountZero),
        Ok(amount) => Ok(amount),
        Err(error) => Err(FeeFieldError::Amount(error)),
    }
}

impl fmt::Display for FeeRow {
    /// `第N行（110105********002X 2026-2027 学费 5500.00）`, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "第{}行（{} {} {} {}）",
            self.line, self.id_card, self.academic_year, self.item, self.amount
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::RowProblem;
    use crate::import::read::read_table_bytes;

    fn table(text: &str) -> Table {
        read_table_bytes("fees.csv", text.as_bytes()).unwrap()
    }

    fn has_problem(problems: &[RowProblem], line: usize, text: &str) -> bool {
        problems
            .iter()
            .any(|problem| problem.line == line && problem.reason.contains(text))
    }

    #[test]
    fn a_good_file() {
        let rows = parse_fees(&table(
            "身份证号,学年,项目,金额（元）\n\
             11010519491231002x,2026-2027,学费,5500\n\
             11010519491231002X,2026－2027,住宿费,1200.5\n",
        ))
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id_card.as_str(), "11010519491231002X");
        assert_eq!(rows[0].academic_year, "2026-2027");
        assert_eq!(rows[0].item, "学费");
        assert_eq!(rows[0].amount, Fen(550_000));
        assert_eq!(rows[1].academic_year, "2026-2027");
        assert_eq!(rows[1].amount, Fen(120_050));
        assert_eq!(
            rows[1].to_string(),
            "第3行（110105********002X 2026-2027 住宿费 1200.50）"
        );
    }

    #[test]
    fn academic_years_are_two_consecutive_years() {
        assert_eq!(
            parse_academic_year(" 2026-2027 ").as_deref(),
            Ok("2026-2027")
        );
        assert_eq!(
            parse_academic_year("2026 — 2027").as_deref(),
            Ok("2026-2027")
        );
        for input in [
            "",
            "2026",
            "2026-2028",
            "2027-2026",
            "26-27",
            "2026/2027",
            "1999-2000",
            "2026-2027-2028",
        ] {
            assert_eq!(
                parse_academic_year(input),
                Err(FeeFieldError::AcademicYear),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_missing_column_rejects_the_file_at_line_one() {
        let rejected = parse_fees(&table(
            "身份证号,学年,项目\n11010519491231002X,2026-2027,学费\n",
        ))
        .unwrap_err();
        assert_eq!(rejected.problems.len(), 1);
        assert!(
            has_problem(&rejected.problems, 1, "金额（amount）"),
            "{rejected}"
        );
    }

    #[test]
    fn every_bad_row_is_listed() {
        let parsed = parse_fees_partially(&table(
            "id_card,academic_year,item,amount\n\
             11010519491231002X,2026-2027,学费,5500\n\
             11010519491231002X,2026-2027,住宿费,1200.505\n\
             11010519491231002X,2026-2028,教材费,300\n\
             11010519491231002X,2026-2027,学费,5500\n\
             110105194912310021,2026-2027,学费,-1\n\
             620602200704160027,2026-2027,,0\n",
        ));
        assert_eq!(parsed.rows.len(), 1);
        let problems = &parsed.problems;
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(has_problem(problems, 3, "金额最多两位小数"));
        assert!(has_problem(problems, 4, "学年"));
        assert!(has_problem(problems, 5, "与第2行重复"));
        assert!(has_problem(problems, 6, "校验位"));
        assert!(has_problem(problems, 6, "负数"));
        assert!(has_problem(problems, 7, "请填写项目"));
        assert!(has_problem(problems, 7, "金额应大于0"));
    }

    #[test]
    fn the_same_item_in_another_year_is_not_a_duplicate() {
        let rows = parse_fees(&table(
            "身份证号,学年,项目,金额\n\
             11010519491231002X,2026-2027,学费,5500\n\
             11010519491231002X,2027-2028,学费,5500\n",
        ))
        .unwrap();
        assert_eq!(rows.len(), 2);
    }
}
