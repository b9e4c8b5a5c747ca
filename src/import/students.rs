//! The students file: `身份证号`/`id_card`, `姓名`/`name`, `性别`/`gender`,
//! `年级`/`grade`, `班级`/`class`, optional `专业`/`major`, `学号`/`student_no` and
//! `初始密码`/`initial_password`. Keyed by the ID number.
//!
//! An optional column that is absent, or a cell of it that is empty, means "not
//! given": a re-import leaves the stored value as it is (the console corrects a
//! student's details one by one).

use std::fmt;

use super::{
    ColumnSpec, FirstSeen, Parsed, Reasons, Table, column_cell, locate_columns, parse_id_card_cell,
};
use crate::domain::id_card::IdCardNumber;
use crate::domain::password::MAX_PASSWORD_CHARS;
use crate::domain::student::{
    Gender, check_class_name, check_major, check_name, check_student_no, parse_grade,
};

/// One student as the file gives them, every field checked.
#[derive(Clone, PartialEq, Eq)]
pub struct StudentRow {
    /// The line in the file.
    pub line: usize,
    pub id_card: IdCardNumber,
    pub name: String,
    pub gender: Gender,
    /// Four-digit year of entry.
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    /// The file's initial password (the manual's `000000`); `None`: the last six
    /// characters of the ID number.
    pub initial_password: Option<String>,
}

/// The ID number masked, the initial password left out.
impl fmt::Debug for StudentRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StudentRow")
            .field("line", &self.line)
            .field("id_card", &self.id_card)
            .field("name", &self.name)
            .field("gender", &self.gender)
            .field("grade", &self.grade)
            .field("class_name", &self.class_name)
            .field("major", &self.major)
            .field("student_no", &self.student_no)
            .field(
                "initial_password",
                &self.initial_password.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

const ID_CARD: usize = 0;
const NAME: usize = 1;
const GENDER: usize = 2;
const GRADE: usize = 3;
const CLASS: usize = 4;
const MAJOR: usize = 5;
const STUDENT_NO: usize = 6;
const INITIAL_PASSWORD: usize = 7;

const COLUMNS: [ColumnSpec; 8] = [
    ColumnSpec {
        chinese: "身份证号",
        english: "id_card",
        aliases: &["身份证号码", "身份证"],
        required: true,
    },
    ColumnSpec {
        chinese: "姓名",
        english: "name",
        aliases: &[],
        required: true,
    },
    ColumnSpec {
        chinese: "性别",
        english: "gender",
        aliases: &[],
        required: true,
    },
    ColumnSpec {
        chinese: "年级",
        english: "grade",
        aliases: &[],
        required: true,
    },
    ColumnSpec {
        chinese: "班级",
        english: "class",
        aliases: &["class_name"],
        required: true,
    },
    ColumnSpec {
        chinese: "专业",
        english: "major",
        aliases: &[],
        required: false,
    },
    ColumnSpec {
        chinese: "学号",
        english: "student_no",
        aliases: &[],
        required: false,
    },
    ColumnSpec {
        chinese: "初始密码",
        english: "initial_password",
        aliases: &[],
        required: false,
    },
];

/// Every row checked: the students, or every bad row.
pub fn parse_students(table: &Table) -> Result<Vec<StudentRow>, super::ImportRejected> {
    parse_students_partially(table).into_result()
}

/// The good rows and the problems of the bad ones (a missing column: no rows and one
/// problem at the header's line).
pub fn parse_students_partially(table: &Table) -> Parsed<StudentRow> {
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
        let name = reasons.check(check_name(cell(row, NAME)));
        let gender = reasons.check(Gender::parse(cell(row, GENDER)));
        let grade = reasons.check(parse_grade(cell(row, GRADE)));
        let class_name = reasons.check(check_class_name(cell(row, CLASS)));
        let major = reasons.check(check_major(cell(row, MAJOR)));
        let student_no = reasons.check(check_student_no(cell(row, STUDENT_NO)));
        let initial_password = reasons.check(check_initial_password(cell(row, INITIAL_PASSWORD)));
        if let Some(id_card) = &id_card
            && let Some(first) = first_seen.earlier_line(id_card.clone(), row.line)
        {
            reasons.push(format!("身份证号与第{first}行重复（{}）", id_card.masked()));
        }
        if let Some(problem) = reasons.into_problem(row.line) {
            parsed.problems.push(problem);
            continue;
        }
        // No reasons: every field is there.
        let student = || {
            Some(StudentRow {
                line: row.line,
                id_card: id_card?,
                name: name?,
                gender: gender?,
                grade: grade?,
                class_name: class_name?.to_owned(),
                major: major?.map(str::to_owned),
                student_no: student_no?.map(str::to_owned),
                initial_password: initial_password?.map(str::to_owned),
            })
        };
        parsed.rows.extend(student());
    }
    parsed
}

#[derive(Debug, thiserror::Error)]
#[error("初始密码不能超过{MAX_PASSWORD_CHARS}位")]
struct InitialPasswordTooLong;

fn check_initial_password(password: &str) -> Result<Option<&str>, InitialPasswordTooLong> {
    let password = password.trim();
    if password.is_empty() {
        Ok(None)
    } else if password.chars().count() > MAX_PASSWORD_CHARS {
        Err(InitialPasswordTooLong)
    } else {
        Ok(Some(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::RowProblem;
    use crate::import::read::read_table_bytes;

    fn has_problem(problems: &[RowProblem], line: usize, text: &str) -> bool {
        problems
            .iter()
            .any(|problem| problem.line == line && problem.reason.contains(text))
    }

    fn table(text: &str) -> Table {
        read_table_bytes("students.csv", text.as_bytes()).unwrap()
    }

    #[test]
    fn a_good_file_with_chinese_headers() {
        let rows = parse_students(&table(
            "身份证号,姓名,性别,年级,班级,专业,学号,初始密码\n\
             11010519491231002x,张三,男,2026,汽修1班,汽车检测与维修技术,2026001,000000\n\
             620602200704160027,李四,女,18级,会计2班,,,\n",
        ))
        .unwrap();
        assert_eq!(rows.len(), 2);
        let first = &rows[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.id_card.as_str(), "11010519491231002X");
        assert_eq!(first.name, "张三");
        assert_eq!(first.gender, Gender::Male);
        assert_eq!(first.grade, 2026);
        assert_eq!(first.class_name, "汽修1班");
        assert_eq!(first.major.as_deref(), Some("汽车检测与维修技术"));
        assert_eq!(first.student_no.as_deref(), Some("2026001"));
        assert_eq!(first.initial_password.as_deref(), Some("000000"));
        let second = &rows[1];
        assert_eq!(second.grade, 2018);
        assert_eq!(second.gender, Gender::Female);
        assert_eq!(second.major, None);
        assert_eq!(second.student_no, None);
        assert_eq!(second.initial_password, None);
        let debug = format!("{first:?}");
        assert!(!debug.contains("11010519491231002X") && !debug.contains("000000"));
    }

    #[test]
    fn english_headers_in_another_order_with_extra_columns() {
        let rows = parse_students(&table(
            "序号,class,name,id_card,grade,gender\n1,汽修1班,张三,11010519491231002X,26,M\n",
        ))
        .unwrap();
        assert_eq!(rows[0].name, "张三");
        assert_eq!(rows[0].class_name, "汽修1班");
        assert_eq!(rows[0].grade, 2026);
    }

    #[test]
    fn a_missing_column_rejects_the_file_at_line_one() {
        let rejected = parse_students(&table("身份证号,姓名,年级\n11010519491231002X,张三,2026\n"))
            .unwrap_err();
        assert_eq!(rejected.problems.len(), 1);
        let problem = &rejected.problems[0];
        assert_eq!(problem.line, 1);
        assert!(problem.reason.contains("性别"), "{problem}");
        assert!(problem.reason.contains("班级"), "{problem}");
    }

    #[test]
    fn a_column_given_twice_rejects_the_file() {
        let rejected = parse_students(&table("身份证号,姓名,name,性别,年级,班级\n")).unwrap_err();
        assert!(has_problem(&rejected.problems, 1, "姓名"), "{rejected}");
    }

    #[test]
    fn every_bad_row_is_listed_with_every_reason() {
        let parsed = parse_students_partially(&table(
            "身份证号,姓名,性别,年级,班级\n\
             11010519491231002X,张三,男,2026,汽修1班\n\
             110105194912310021,李四,女,2026,汽修1班\n\
             620602200704160027,王五,未知,1999,汽修1班\n\
             11010519491231002X,张三,男,2026,汽修1班\n\
             11010119900307803X,,女,2026,\n",
        ));
        assert_eq!(parsed.rows.len(), 1);
        let problems = &parsed.problems;
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(has_problem(problems, 3, "校验位"));
        assert!(has_problem(problems, 4, "性别"));
        assert!(has_problem(problems, 4, "年级"));
        assert!(has_problem(problems, 5, "与第2行重复"));
        assert!(has_problem(problems, 5, "110105********002X"));
        assert!(has_problem(problems, 6, "姓名"));
        assert!(has_problem(problems, 6, "班级"));
        for problem in problems {
            assert!(!problem.reason.contains("11010519491231002X"), "{problem}");
        }
    }
}
