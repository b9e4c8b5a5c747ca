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
//!
//! A file is what anyone with a console login (or a copied file on the server) hands
//! us, so nothing in it is taken at its word: an `.xlsx` is a zip whose parts are
//! counted as they unpack ([`MAX_UNPACKED_BYTES`]) before the sheet is read, the sheet
//! is read cell by cell (never as the range it claims: one far-away cell once asked
//! for 512 GiB and aborted the process), and rows and columns are capped
//! ([`MAX_ROWS`], [`MAX_COLUMNS`]) for CSV and XLSX alike.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Duration, NaiveDate};

/// Larger files are refused before they are read: a term's roll of a whole college
/// is a few megabytes.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Rows below the header: a whole college's roll is a few tens of thousands.
pub const MAX_ROWS: usize = 100_000;

/// Columns with anything in them: our files have a dozen at most.
pub const MAX_COLUMNS: usize = 64;

/// What an `.xlsx`'s parts may come to unpacked, all together.
pub const MAX_UNPACKED_BYTES: u64 = 50 * 1024 * 1024;

/// Parts in an `.xlsx`: Excel writes about a dozen.
const MAX_ZIP_ENTRIES: usize = 1_000;

/// Distinct strings a sheet may declare: the reader reserves room for what the file
/// claims, so a claim is checked against this and against the part's own size.
const MAX_SHARED_STRINGS: u64 = 2_000_000;

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
    #[error("{file}：解压后超过{}MB，不像是学生或收费名单，请检查文件", MAX_UNPACKED_BYTES / 1024 / 1024)]
    UnpackedTooLarge { file: String },
    #[error("{file}：第{line}行超出{MAX_ROWS}行的上限，请分成几个文件导入")]
    TooManyRows { file: String, line: usize },
    #[error("{file}：第{line}行有超过{MAX_COLUMNS}列的内容，请删去多余的列")]
    TooManyColumns { file: String, line: usize },
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
        Kind::Xlsx => {
            check_zip(&file, bytes)?;
            xlsx_lines(&file, bytes)?
        }
    };
    into_table(file, lines)
}

/// Refuses a CSV row with content beyond [`MAX_ROWS`] below the header (`rows_before`
/// counts the rows with content before it, the header included) or with content
/// beyond [`MAX_COLUMNS`], naming its line.
fn check_row_bounds(
    file: &str,
    line: usize,
    rows_before: usize,
    cells: &[String],
) -> Result<(), ReadError> {
    if rows_before > MAX_ROWS {
        return Err(ReadError::TooManyRows {
            file: file.to_owned(),
            line,
        });
    }
    if cells.iter().skip(MAX_COLUMNS).any(|cell| !cell.is_empty()) {
        return Err(ReadError::TooManyColumns {
            file: file.to_owned(),
            line,
        });
    }
    Ok(())
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
    // Rows with content so far, the header included.
    let mut with_content = 0;
    let mut record = csv::StringRecord::new();
    loop {
        let before = reader.position().clone();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record_line(&text, record.position().unwrap_or(&before));
                let mut cells: Vec<String> =
                    record.iter().map(|cell| cell.trim().to_owned()).collect();
                if cells.iter().any(|cell| !cell.is_empty()) {
                    check_row_bounds(file, line, with_content, &cells)?;
                    with_content += 1;
                }
                // Empty cells past the last column are trailing commas: dropped.
                cells.truncate(MAX_COLUMNS);
                rows.push(Row { line, cells });
            }
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

/// Unpacks every part of the zip, counting, before the workbook reader sees it: the
/// parts' declared sizes are checked first, then the bytes that really come out (a
/// zip bomb declares small and expands), stopping at [`MAX_UNPACKED_BYTES`]. Also
/// checks what the shared strings part claims to hold.
fn check_zip(file: &str, bytes: &[u8]) -> Result<(), ReadError> {
    let broken = |reason: String| ReadError::Xlsx {
        file: file.to_owned(),
        reason,
    };
    let too_large = || ReadError::UnpackedTooLarge {
        file: file.to_owned(),
    };
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|error| broken(error.to_string()))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(broken(format!("超过{MAX_ZIP_ENTRIES}个部件")));
    }
    let mut declared: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|error| broken(error.to_string()))?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > MAX_UNPACKED_BYTES {
        return Err(too_large());
    }
    let mut unpacked: u64 = 0;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|error| broken(error.to_string()))?;
        let shared_strings = entry
            .name()
            .is_ok_and(|name| name.to_ascii_lowercase().ends_with("sharedstrings.xml"));
        // One byte more than may remain: reading it proves the part too large.
        let allowed = MAX_UNPACKED_BYTES - unpacked;
        let mut limited = (&mut entry).take(allowed + 1);
        let size = if shared_strings {
            let mut part = Vec::new();
            limited
                .read_to_end(&mut part)
                .map_err(|error| broken(error.to_string()))?;
            check_shared_strings_claim(file, &part)?;
            part.len() as u64
        } else {
            std::io::copy(&mut limited, &mut std::io::sink())
                .map_err(|error| broken(error.to_string()))?
        };
        if size > allowed {
            return Err(too_large());
        }
        unpacked += size;
    }
    Ok(())
}

/// The shared strings part says how many strings it holds (`<sst uniqueCount=…>`), and
/// the reader reserves that much room up front: a claim larger than the part could
/// hold (a string takes at least `<si><t></t></si>`) or than any roll needs is refused.
fn check_shared_strings_claim(file: &str, part: &[u8]) -> Result<(), ReadError> {
    let mut reader = quick_xml::Reader::from_reader(part);
    let mut buffer = Vec::new();
    loop {
        match reader.read_event_into(&mut buffer) {
            Ok(
                quick_xml::events::Event::Start(element) | quick_xml::events::Event::Empty(element),
            ) if element.local_name().as_ref() == "sst" => {
                let claimed = element
                    .attributes()
                    .flatten()
                    .find(|attribute| attribute.key.local_name().as_ref() == "uniqueCount")
                    .and_then(|attribute| attribute.value.trim().parse::<u64>().ok());
                let room = (part.len() as u64 / 16).min(MAX_SHARED_STRINGS);
                return match claimed {
                    Some(claimed) if claimed > room => Err(ReadError::Xlsx {
                        file: file.to_owned(),
                        reason: format!("共享字符串表声称有{claimed}项，与文件内容不符"),
                    }),
                    _ => Ok(()),
                };
            }
            // Malformed XML is left for the workbook reader to report.
            Ok(quick_xml::events::Event::Eof) | Err(_) => return Ok(()),
            Ok(_) => buffer.clear(),
        }
    }
}

/// The first sheet's rows, numbered as Excel numbers them, read cell by cell: only
/// cells with something in them take memory, whatever range the sheet claims.
fn xlsx_lines(file: &str, bytes: &[u8]) -> Result<Vec<Row>, ReadError> {
    let xlsx_error = |error: calamine::XlsxError| ReadError::Xlsx {
        file: file.to_owned(),
        reason: error.to_string(),
    };
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).map_err(xlsx_error)?;
    let Some(first_sheet) = workbook.sheet_names().into_iter().next() else {
        return Err(ReadError::NoSheet {
            file: file.to_owned(),
        });
    };
    let mut cells = workbook
        .worksheet_cells_reader(&first_sheet)
        .map_err(xlsx_error)?;
    // Sheet row index (from 0) to the row's cells, each row at most MAX_COLUMNS wide.
    let mut rows: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    while let Some(cell) = cells.next_cell().map_err(xlsx_error)? {
        let (row, column) = cell.get_position();
        let text = cell_text(&Data::from(cell.get_value().clone()));
        if text.is_empty() {
            // Formatting alone (Excel writes styled empty cells anywhere): nothing to read.
            continue;
        }
        let line = usize::try_from(row).unwrap_or(usize::MAX).saturating_add(1);
        let column = usize::try_from(column).unwrap_or(usize::MAX);
        if column >= MAX_COLUMNS {
            return Err(ReadError::TooManyColumns {
                file: file.to_owned(),
                line,
            });
        }
        // The header on line 1 and MAX_ROWS below it; a far-away row is refused by its
        // number, before it takes any memory.
        if line > MAX_ROWS + 1 {
            return Err(ReadError::TooManyRows {
                file: file.to_owned(),
                line,
            });
        }
        let cells_of_row = rows.entry(row).or_default();
        if cells_of_row.len() <= column {
            cells_of_row.resize(column + 1, String::new());
        }
        cells_of_row[column] = text;
    }
    Ok(rows
        .into_iter()
        .map(|(row, cells)| Row {
            line: usize::try_from(row).unwrap_or(usize::MAX).saturating_add(1),
            cells,
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

    /// An `.xlsx` written by hand: the parts Excel writes, `sheet` as the first
    /// sheet's `<sheetData>` and, when given, a shared strings part.
    fn xlsx(sheet_data: &str, dimension: &str, shared_strings: Option<&str>) -> Vec<u8> {
        use std::io::Write;
        let mut parts = vec![
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_owned(),
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_owned(),
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_owned(),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_owned(),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="{dimension}"/><sheetData>{sheet_data}</sheetData></worksheet>"#
                ),
            ),
        ];
        if let Some(strings) = shared_strings {
            parts.push(("xl/sharedStrings.xml", strings.to_owned()));
        }
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in parts {
            zip.start_file(name, options).unwrap();
            zip.write_all(content.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn inline(reference: &str, text: &str) -> String {
        format!(r#"<c r="{reference}" t="inlineStr"><is><t>{text}</t></is></c>"#)
    }

    #[test]
    fn a_hand_written_xlsx_reads_cell_by_cell() {
        let sheet = format!(
            r#"<row r="1">{}{}</row><row r="3">{}<c r="B3"><v>2026</v></c><c r="XFD3" s="1"/></row>"#,
            inline("A1", "姓名"),
            inline("B1", "年级"),
            inline("A3", " 张三 "),
        );
        let table = read_table_bytes("x.xlsx", &xlsx(&sheet, "A1:XFD3", None)).unwrap();
        assert_eq!(table.headers, ["姓名", "年级"]);
        assert_eq!(table.rows.len(), 1);
        assert_eq!(table.rows[0].line, 3);
        assert_eq!(
            cells(&table.rows[0]),
            ["张三", "2026"],
            "styled empty cells are nothing"
        );
    }

    /// A1 and one cell at the sheet's far corner: 1.5 KB that once made the reader
    /// allocate 512 GiB and abort the process.
    #[test]
    fn a_sheet_claiming_a_huge_range_is_refused_without_allocating_it() {
        let far_row = format!(
            r#"<row r="1">{}</row><row r="1048576">{}</row>"#,
            inline("A1", "姓名"),
            inline("A1048576", "x"),
        );
        let bytes = xlsx(&far_row, "A1:A1048576", None);
        assert!(bytes.len() < 2048);
        let error = read_table_bytes("far.xlsx", &bytes).unwrap_err();
        assert!(
            matches!(
                error,
                ReadError::TooManyRows {
                    line: 1_048_576,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("100000行"), "{error}");

        let far_corner = format!(
            r#"<row r="1">{}</row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>"#,
            inline("A1", "姓名"),
        );
        let error =
            read_table_bytes("corner.xlsx", &xlsx(&far_corner, "A1:XFD1048576", None)).unwrap_err();
        assert!(
            matches!(error, ReadError::TooManyColumns { .. }),
            "{error:?}"
        );

        let wide = format!(
            r#"<row r="1">{}<c r="BM1"><v>1</v></c></row>"#,
            inline("A1", "姓名")
        );
        let error = read_table_bytes("wide.xlsx", &xlsx(&wide, "A1:BM1", None)).unwrap_err();
        assert!(
            matches!(error, ReadError::TooManyColumns { line: 1, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("64列"), "{error}");
        // Column 64 (BL) is the last one allowed.
        let widest = format!(
            r#"<row r="1">{}<c r="BL1"><v>1</v></c></row>"#,
            inline("A1", "姓名")
        );
        assert!(read_table_bytes("widest.xlsx", &xlsx(&widest, "A1:BL1", None)).is_ok());
    }

    /// A zip bomb: a few KiB that unpack to more than 50 MiB are refused as they unpack.
    #[test]
    fn an_xlsx_that_unpacks_past_the_cap_is_refused() {
        let padding = " ".repeat(usize::try_from(MAX_UNPACKED_BYTES).unwrap() + 1);
        let sheet = format!(r#"<row r="1">{}</row>{padding}"#, inline("A1", "姓名"));
        let bytes = xlsx(&sheet, "A1", None);
        assert!(bytes.len() < 200 * 1024, "{} bytes", bytes.len());
        let error = read_table_bytes("bomb.xlsx", &bytes).unwrap_err();
        assert!(
            matches!(error, ReadError::UnpackedTooLarge { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("50MB"), "{error}");
    }

    /// The reader reserves room for the strings the file says it has: a claim of a
    /// trillion is refused instead of aborting on the allocation.
    #[test]
    fn a_shared_strings_part_claiming_too_many_strings_is_refused() {
        let sheet = r#"<row r="1"><c r="A1" t="s"><v>0</v></c></row>"#;
        let lying = r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1000000000000"><si><t>姓名</t></si></sst>"#;
        let error = read_table_bytes("lying.xlsx", &xlsx(sheet, "A1", Some(lying))).unwrap_err();
        assert!(matches!(error, ReadError::Xlsx { .. }), "{error:?}");
        let honest = lying.replace("1000000000000", "1");
        let table = read_table_bytes("honest.xlsx", &xlsx(sheet, "A1", Some(&honest))).unwrap();
        assert_eq!(table.headers, ["姓名"]);
    }

    #[test]
    fn a_csv_over_the_row_or_column_cap_is_refused() {
        let mut text = "姓名\n".to_owned();
        text.push_str(&"张三\n".repeat(MAX_ROWS));
        assert_eq!(csv(text.as_bytes()).rows.len(), MAX_ROWS);
        text.push_str("李四\n");
        let error = read_table_bytes("x.csv", text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ReadError::TooManyRows { line, .. } if line == MAX_ROWS + 2),
            "{error:?}"
        );
        let wide = format!("姓名{}\n", ",".repeat(70));
        assert_eq!(
            csv(wide.as_bytes()).headers.len(),
            MAX_COLUMNS,
            "trailing commas"
        );
        let wide = format!("姓名{},x\n", ",".repeat(70));
        let error = read_table_bytes("x.csv", wide.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ReadError::TooManyColumns { line: 1, .. }),
            "{error:?}"
        );
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
