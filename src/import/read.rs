//! Reading an import file into a [`Table`] of trimmed text cells, each row with the
//! line a person sees in the file (the header being line 1).
//!
//! - `.csv`: UTF-8 with or without a BOM, otherwise GBK (GB18030, its superset), as a
//!   Chinese Excel saves "CSV (逗号分隔)". The encoding is decided by the BOM, then by
//!   whether the bytes are valid UTF-8: GBK text is almost never valid UTF-8.
//! - `.xlsx`: the first sheet. Numbers come out as a person reads them: `2018.0`
//!   as `2018`, `1200.5` as `1200.5`, and float noise from formulas
//!   (`0.30000000000000004`) rounded away at ten decimals.
//!
//! Fully empty rows are skipped (they keep their place in the line count).

use std::io::Cursor;
use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Duration, NaiveDate};

/// Larger files are refused before they are read: a term's roll of a whole college
/// is a few megabytes.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// A file's header and rows, every cell trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    /// The line of the header: 1 unless the file starts with empty rows.
    pub header_line: usize,
    pub rows: Vec<Row>,
}

/// One row below the header. `cells` may be shorter or longer than the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The line in the file (CSV: where the record starts; XLSX: the sheet's row
    /// number).
    pub line: usize,
    pub cells: Vec<String>,
}

impl Row {
    /// The cell in column `index`, or `""` past the end of a short row.
    pub fn cell(&self, index: usize) -> &str {
        self.cells.get(index).map_or("", String::as_str)
    }
}

/// Why a file cannot be read at all. Messages are for the finance office.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("无法读取文件 {file}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("文件 {file} 太大（超过{}MB）", MAX_FILE_BYTES / 1024 / 1024)]
    TooLarge { file: String },
    #[error("{file}：旧版 Excel（.xls）文件请在 Excel 中另存为 .xlsx 或 CSV 后再导入")]
    OldExcel { file: String },
    #[error("{file}：不支持的文件类型，只接受 .csv 或 .xlsx")]
    UnsupportedType { file: String },
    #[error("{file}：CSV 文件既不是 UTF-8 也不是 GBK 编码，请在 Excel 中另存为“CSV UTF-8”")]
    Encoding { file: String },
    #[error("{file}：CSV 第{line}行格式不正确")]
    Csv {
        file: String,
        line: usize,
        #[source]
        source: csv::Error,
    },
    #[error("{file}：无法读取这个 Excel 文件（{reason}）")]
    Xlsx { file: String, reason: String },
    #[error("{file}：Excel 文件中没有工作表")]
    NoSheet { file: String },
    #[error("{file}：文件是空的，第一行应为表头")]
    Empty { file: String },
}

/// Reads `path` by its extension.
pub fn read_table(path: &Path) -> Result<Table, ReadError> {
    let file = path.display().to_string();
    let io_error = |source| ReadError::Io {
        file: file.clone(),
        source,
    };
    // Refuse an unsupported type before touching the file.
    kind_of(&file)?;
    let size = std::fs::metadata(path).map_err(io_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge { file });
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    read_table_bytes(&file, &bytes)
}

/// Reads an uploaded file; `file_name` gives the type by its extension and names
/// the file in errors.
pub fn read_table_bytes(file_name: &str, bytes: &[u8]) -> Result<Table, ReadError> {
    let file = file_name.to_owned();
    if u64::try_from(bytes.len()).map_or(true, |len| len > MAX_FILE_BYTES) {
        return Err(ReadError::TooLarge { file });
    }
    let lines = match kind_of(file_name)? {
        Kind::Csv => csv_lines(&file, bytes)?,
        Kind::Xlsx => xlsx_lines(&file, bytes)?,
    };
    into_table(file, lines)
}

enum Kind {
    Csv,
    Xlsx,
}

fn kind_of(file_name: &str) -> Result<Kind, ReadError> {
    let extension = Path::new(file_name)
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(Kind::Csv),
        Some("xlsx") => Ok(Kind::Xlsx),
        Some("xls") => Err(ReadError::OldExcel {
            file: file_name.to_owned(),
        }),
        _ => Err(ReadError::UnsupportedType {
            file: file_name.to_owned(),
        }),
    }
}

/// The first non-empty line is the header; the other non-empty lines are rows.
fn into_table(file: String, lines: Vec<Row>) -> Result<Table, ReadError> {
    let mut lines = lines
        .into_iter()
        .filter(|row| row.cells.iter().any(|cell| !cell.is_empty()));
    let Some(header) = lines.next() else {
        return Err(ReadError::Empty { file });
    };
    Ok(Table {
        headers: header.cells,
        header_line: header.line,
        rows: lines.collect(),
    })
}

/// Every record with its line, cells trimmed.
fn csv_lines(file: &str, bytes: &[u8]) -> Result<Vec<Row>, ReadError> {
    let text = decode_csv(file, bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let before = reader.position().clone();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => rows.push(Row {
                line: record_line(&text, record.position().unwrap_or(&before)),
                cells: record.iter().map(|cell| cell.trim().to_owned()).collect(),
            }),
            Err(source) => {
                let line = record_line(&text, source.position().unwrap_or(&before));
                return Err(ReadError::Csv {
                    file: file.to_owned(),
                    line,
                    source,
                });
            }
        }
    }
    Ok(rows)
}

/// The line a record starts on. The csv crate's position is where the reader stood
/// before the record, which is before any blank lines it skipped to reach it.
fn record_line(text: &str, position: &csv::Position) -> usize {
    let skipped_blank_lines = usize::try_from(position.byte())
        .ok()
        .and_then(|start| text.as_bytes().get(start..))
        .map_or(0, |rest| {
            rest.iter()
                .take_while(|byte| matches!(byte, b'\n' | b'\r'))
                .filter(|byte| **byte == b'\n')
                .count()
        });
    usize::try_from(position.line())
        .unwrap_or(usize::MAX)
        .saturating_add(skipped_blank_lines)
}

/// UTF-8 (BOM stripped) when the bytes are UTF-8, GB18030 otherwise.
fn decode_csv(file: &str, bytes: &[u8]) -> Result<String, ReadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
        .ok_or_else(|| ReadError::Encoding {
            file: file.to_owned(),
        })
}

/// The first sheet's rows, numbered as Excel numbers them.
fn xlsx_lines(file: &str, bytes: &[u8]) -> Result<Vec<Row>, ReadError> {
    let xlsx_error = |error: calamine::XlsxError| ReadError::Xlsx {
        file: file.to_owned(),
        reason: error.to_string(),
    };
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(xlsx_error)?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| ReadError::NoSheet {
            file: file.to_owned(),
        })?
        .map_err(xlsx_error)?;
    let Some((first_row, _)) = range.start() else {
        return Ok(Vec::new());
    };
    let first_line = usize::try_from(first_row).unwrap_or(usize::MAX);
    Ok(range
        .rows()
        .enumerate()
        .map(|(index, cells)| Row {
            line: first_line.saturating_add(index).saturating_add(1),
            cells: cells.iter().map(cell_text).collect(),
        })
        .collect())
}

/// A cell as a person reads it in Excel, trimmed.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => text.trim().to_owned(),
        Data::Int(number) => number.to_string(),
        Data::Float(number) => number_text(*number),
        Data::Bool(value) => if *value { "TRUE" } else { "FALSE" }.to_owned(),
        Data::DateTime(value) => excel_date_text(value.as_f64()),
        Data::DateTimeIso(text) | Data::DurationIso(text) => text.trim().to_owned(),
        Data::Error(error) => error.to_string(),
    }
}

/// Whole numbers without a decimal point (an ID number or a grade stored as a
/// number), others to at most ten decimals with trailing zeros dropped.
fn number_text(number: f64) -> String {
    if !number.is_finite() {
        return number.to_string();
    }
    if number.fract() == 0.0 {
        return format!("{number:.0}");
    }
    let text = format!("{number:.10}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// An Excel date serial as `YYYY-MM-DD` (time of day dropped).
fn excel_date_text(serial: f64) -> String {
    // Excel counts days from 1899-12-30 (its 1900 leap-year bug included).
    let date = NaiveDate::from_ymd_opt(1899, 12, 30).and_then(|epoch| {
        let days = serial.floor();
        if days.abs() > 1e7 {
            return None;
        }
        // Bounded just above, so the conversion is exact.
        epoch.checked_add_signed(Duration::days(days as i64))
    });
    match date {
        Some(date) => date.format("%Y-%m-%d").to_string(),
        None => number_text(serial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(bytes: &[u8]) -> Table {
        read_table_bytes("students.csv", bytes).unwrap()
    }

    fn cells(row: &Row) -> Vec<&str> {
        row.cells.iter().map(String::as_str).collect()
    }

    #[test]
    fn utf8_csv_with_and_without_bom() {
        let text = "身份证号,姓名\n11010519491231002X,张三\n";
        for bytes in [
            text.as_bytes().to_vec(),
            [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
        ] {
            let table = csv(&bytes);
            assert_eq!(table.headers, ["身份证号", "姓名"]);
            assert_eq!(table.header_line, 1);
            assert_eq!(table.rows.len(), 1);
            assert_eq!(table.rows[0].line, 2);
            assert_eq!(cells(&table.rows[0]), ["11010519491231002X", "张三"]);
        }
    }

    #[test]
    fn gbk_csv_as_excel_saves_it() {
        let text = "身份证号,学年,项目,金额\r\n11010519491231002X,2026-2027,住宿费,1200\r\n";
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err(), "really not UTF-8");
        let table = csv(&bytes);
        assert_eq!(table.headers, ["身份证号", "学年", "项目", "金额"]);
        assert_eq!(
            cells(&table.rows[0]),
            ["11010519491231002X", "2026-2027", "住宿费", "1200"]
        );
    }

    #[test]
    fn bytes_neither_utf8_nor_gbk_are_refused() {
        let error = read_table_bytes("x.csv", b"a,b\n\x80\xff,1\n").unwrap_err();
        assert!(matches!(error, ReadError::Encoding { .. }), "{error:?}");
    }

    #[test]
    fn a_quoted_newline_does_not_shift_the_lines_after_it() {
        let text = "姓名,备注\n张三,\"第一行\n第二行\"\n李四,无\n";
        let table = csv(text.as_bytes());
        assert_eq!(table.rows[0].line, 2);
        assert_eq!(table.rows[0].cells[1], "第一行\n第二行");
        assert_eq!(table.rows[1].line, 4, "李四 is on the file's fourth line");
    }

    #[test]
    fn empty_rows_are_skipped_but_keep_their_line() {
        let text = "\n姓名,班级\n ,\n张三,汽修1班\n,,\n李四,汽修2班";
        let table = csv(text.as_bytes());
        assert_eq!(table.header_line, 2);
        let lines: Vec<_> = table.rows.iter().map(|row| row.line).collect();
        assert_eq!(lines, [4, 6]);
    }

    #[test]
    fn cells_are_trimmed_and_short_rows_read_as_empty() {
        let table = csv("a,b,c\n 1 ,\u{3000}2\u{3000}\n".as_bytes());
        assert_eq!(cells(&table.rows[0]), ["1", "2"]);
        assert_eq!(table.rows[0].cell(2), "");
    }

    #[test]
    fn an_empty_file_has_no_header() {
        for bytes in [b"".as_slice(), b"\xEF\xBB\xBF", b"\n,\n"] {
            let error = read_table_bytes("x.csv", bytes).unwrap_err();
            assert!(matches!(error, ReadError::Empty { .. }), "{error:?}");
        }
    }

    #[test]
    fn other_file_types_are_refused_by_name() {
        let error = read_table_bytes("students.xls", b"").unwrap_err();
        assert!(error.to_string().contains(".xlsx"), "{error}");
        let error = read_table_bytes("students.txt", b"a").unwrap_err();
        assert!(matches!(error, ReadError::UnsupportedType { .. }));
        assert!(error.to_string().contains(".csv"), "{error}");
        assert!(read_table_bytes("STUDENTS.CSV", b"a\n1").is_ok());
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let error = read_table(Path::new("/nonexistent/students.csv")).unwrap_err();
        assert!(matches!(error, ReadError::Io { .. }));
        assert!(error.to_string().contains("students.csv"), "{error}");
    }

    #[test]
    fn a_broken_xlsx_is_refused() {
        let error = read_table_bytes("x.xlsx", b"not a zip").unwrap_err();
        assert!(matches!(error, ReadError::Xlsx { .. }), "{error:?}");
    }

    #[test]
    fn numbers_read_as_a_person_reads_them() {
        assert_eq!(number_text(2018.0), "2018");
        assert_eq!(number_text(1200.5), "1200.5");
        assert_eq!(number_text(1200.05), "1200.05");
        assert_eq!(number_text(1200.505), "1200.505");
        assert_eq!(number_text(0.1 + 0.2), "0.3");
        assert_eq!(number_text(-0.0), "-0");
        assert_eq!(number_text(110_105_194_912_310_020.0), "110105194912310016");
        assert_eq!(excel_date_text(45_536.0), "2024-09-01");
    }

    /// tests/fixtures/students.xlsx, made by tests/fixtures/make_fixtures.py: the ID
    /// numbers as text, the grade and student number as numbers, an empty row, and
    /// a second sheet that is not read.
    #[test]
    fn the_xlsx_fixture_reads_its_first_sheet() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/students.xlsx");
        let table = read_table(&path).unwrap();
        assert_eq!(table.header_line, 1);
        assert_eq!(
            table.headers,
            ["身份证号", "姓名", "性别", "年级", "班级", "专业", "学号"]
        );
        assert_eq!(table.rows.len(), 3);
        assert_eq!(table.rows[0].line, 2);
        assert_eq!(table.rows[0].cell(0), "620602200705170032");
        assert_eq!(table.rows[0].cell(3), "2026");
        assert_eq!(table.rows[0].cell(6), "2026101");
        assert_eq!(table.rows[1].cell(5), "", "an empty cell");
        assert_eq!(table.rows[2].line, 5, "the blank row 4 keeps its place");
        assert_eq!(table.rows[2].cell(0), "620602200807190050");
        assert_eq!(table.rows[2].cell(3), "26");
    }
}
