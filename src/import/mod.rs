//! The finance office's import files (CONTRACT.md, "Import files"): reading them
//! ([`read`]), checking every row ([`students`], [`fees`]), and the words for the
//! outcome. Applying the rows is the store's (`Store::import_students`,
//! `Store::import_fees`), in one transaction: a file with any bad row imports nothing.
//!
//! No IO beyond reading the file; no SQL. Problems name rows by their line in the
//! file (the header being line 1) and never quote a full ID number.

pub mod fees;
pub mod read;
pub mod students;

use std::collections::HashMap;
use std::fmt;

use crate::domain::id_card::IdCardNumber;

pub use self::fees::{FeeRow, parse_fees, parse_fees_partially};
pub use self::read::{ReadError, Row, Table, read_table, read_table_bytes};
pub use self::students::{StudentRow, parse_students, parse_students_partially};

/// One bad row: its line in the file and why, in words for the finance office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: usize,
    pub reason: String,
}

impl RowProblem {
    pub fn new(line: usize, reason: impl Into<String>) -> RowProblem {
        RowProblem {
            line,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "第{}行：{}", self.line, self.reason)
    }
}

/// A file refused as a whole, with every bad row (in line order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportRejected {
    pub problems: Vec<RowProblem>,
}

impl ImportRejected {
    /// The problems sorted by line (stable: a row's problems keep their order).
    pub fn new(mut problems: Vec<RowProblem>) -> ImportRejected {
        problems.sort_by_key(|problem| problem.line);
        ImportRejected { problems }
    }

    /// How many lines have a problem.
    pub fn bad_lines(&self) -> usize {
        let mut lines: Vec<usize> = self.problems.iter().map(|problem| problem.line).collect();
        lines.dedup();
        lines.len()
    }
}

/// One `第N行：reason` line per problem.
impl fmt::Display for ImportRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "新增 {} 行，更新 {} 行，未变 {} 行",
            self.added, self.updated, self.unchanged
        )
    }
}

/// The rows that passed the file's own checks and the problems of those that did
/// not. The console and the CLI check the good rows against the database too, so
/// that one run lists every bad row, not only those the file alone shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<R> {
    pub rows: Vec<R>,
    pub problems: Vec<RowProblem>,
}

impl<R> Parsed<R> {
    /// The rows, or every problem.
    pub fn into_result(self) -> Result<Vec<R>, ImportRejected> {
        if self.problems.is_empty() {
            Ok(self.rows)
        } else {
            Err(ImportRejected::new(self.problems))
        }
    }

    fn rejected(problem: RowProblem) -> Parsed<R> {
        Parsed {
            rows: Vec::new(),
            problems: vec![problem],
        }
    }
}

/// A column an import file has, by its Chinese and English header names.
pub(crate) struct ColumnSpec {
    pub chinese: &'static str,
    pub english: &'static str,
    /// Other names seen in the college's templates.
    pub aliases: &'static [&'static str],
    pub required: bool,
}

impl ColumnSpec {
    fn matches(&self, header: &str) -> bool {
        let header = normalized_header(header);
        header == self.chinese
            || header == self.english
            || self.aliases.iter().any(|alias| header == *alias)
    }

    fn name(&self) -> String {
        format!("{}（{}）", self.chinese, self.english)
    }
}

/// A header as compared: no whitespace, ASCII lower case, without a unit or note in
/// brackets (`金额（元）`) or a required-field star (`*姓名`).
fn normalized_header(header: &str) -> String {
    let header = header
        .split(['(', '（'])
        .next()
        .unwrap_or(header)
        .trim_matches(|c: char| c == '*' || c == '＊' || c.is_whitespace());
    header
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Where each spec's column is (`None` for an optional column the file lacks), or the
/// problem that refuses the whole file: required columns missing, or a column given
/// twice. Reported at the header's line.
pub(crate) fn locate_columns(
    table: &Table,
    specs: &[ColumnSpec],
) -> Result<Vec<Option<usize>>, RowProblem> {
    let mut located = Vec::with_capacity(specs.len());
    let mut missing = Vec::new();
    for spec in specs {
        let mut found = table
            .headers
            .iter()
            .enumerate()
            .filter(|(_, header)| spec.matches(header))
            .map(|(index, _)| index);
        let first = found.next();
        if found.next().is_some() {
            return Err(RowProblem::new(
                table.header_line,
                format!("表头中“{}”列出现了不止一次", spec.name()),
            ));
        }
        if first.is_none() && spec.required {
            missing.push(spec.name());
        }
        located.push(first);
    }
    if missing.is_empty() {
        Ok(located)
    } else {
        Err(RowProblem::new(
            table.header_line,
            format!("缺少必需的列：{}", missing.join("、")),
        ))
    }
}

/// The cell of `row` in the column `locate_columns` found for `spec_index`; `""`
/// when the file lacks that (optional) column.
pub(crate) fn column_cell<'row>(
    columns: &[Option<usize>],
    row: &'row Row,
    spec_index: usize,
) -> &'row str {
    columns
        .get(spec_index)
        .copied()
        .flatten()
        .map_or("", |index| row.cell(index))
}

/// An ID number cell. Excel turns a long number it was not told is text into
/// `1.10105E+17`, losing digits; that gets its own explanation.
pub(crate) fn parse_id_card_cell(cell: &str) -> Result<IdCardNumber, String> {
    IdCardNumber::parse(cell).map_err(|error| {
        let scientific = cell.contains(['E', 'e'])
            && cell
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'E' | 'e' | '+'));
        if scientific {
            "身份证号被 Excel 存成了数字（科学计数法），请把该列设为文本，重新填写后再导出"
                .to_owned()
        } else {
            error.to_string()
        }
    })
}

/// The first line each key was seen on, to name it when a later row repeats it.
pub(crate) struct FirstSeen<K>(HashMap<K, usize>);

impl<K: std::hash::Hash + Eq> FirstSeen<K> {
    pub fn new() -> FirstSeen<K> {
        FirstSeen(HashMap::new())
    }

    /// `None` the first time `key` is seen, else the line it was first seen on.
    pub fn earlier_line(&mut self, key: K, line: usize) -> Option<usize> {
        match self.0.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(line);
                None
            }
        }
    }
}

/// Collects a row's field problems, joined into one reason.
pub(crate) struct Reasons(Vec<String>);

impl Reasons {
    pub fn new() -> Reasons {
        Reasons(Vec::new())
    }

    /// The value, or `None` after noting the error.
    pub fn check<T, E: fmt::Display>(&mut self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error.to_string());
                None
            }
        }
    }

    pub fn push(&mut self, reason: impl Into<String>) {
        self.0.push(reason.into());
    }

    pub fn into_problem(self, line: usize) -> Option<RowProblem> {
        if self.0.is_empty() {
            None
        } else {
            Some(RowProblem::new(line, self.0.join("；")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_as_a_sentence() {
        let summary = ImportSummary {
            added: 3,
            updated: 1,
            unchanged: 10,
        };
        assert_eq!(summary.to_string(), "新增 3 行，更新 1 行，未变 10 行");
    }

    #[test]
    fn a_rejection_lists_every_problem_in_line_order() {
        let rejected = ImportRejected::new(vec![
            RowProblem::new(5, "金额最多两位小数"),
            RowProblem::new(2, "身份证号校验位不正确"),
            RowProblem::new(5, "另一个问题"),
        ]);
        assert_eq!(
            rejected.to_string(),
            "第2行：身份证号校验位不正确\n第5行：金额最多两位小数\n第5行：另一个问题"
        );
        assert_eq!(rejected.bad_lines(), 2);
    }

    #[test]
    fn an_id_number_excel_made_a_number_is_explained() {
        let reason = parse_id_card_cell("1.10105E+17").unwrap_err();
        assert!(reason.contains("科学计数法"), "{reason}");
        assert_eq!(
            parse_id_card_cell("1101051949").unwrap_err(),
            "身份证号应为18位"
        );
        assert!(parse_id_card_cell("11010519491231002x").is_ok());
    }

    #[test]
    fn headers_match_with_notes_stars_and_case_aside() {
        let spec = ColumnSpec {
            chinese: "金额",
            english: "amount",
            aliases: &[],
            required: true,
        };
        for header in [
            "金额",
            " 金额 ",
            "金额（元）",
            "金额(元)",
            "*金额",
            "Amount",
            "AMOUNT ",
        ] {
            assert!(spec.matches(header), "{header:?}");
        }
        for header in ["金", "amounts", "应缴金额"] {
            assert!(!spec.matches(header), "{header:?}");
        }
    }
}
