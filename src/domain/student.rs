//! A student's details as the college's rolls write them: gender, grade (year of
//! entry), and the limits on names that the pages and the database share.

use std::fmt;

/// The earliest and latest grade (year of entry) the program accepts.
pub const GRADES: std::ops::RangeInclusive<i32> = 2000..=2099;

/// Longest name and class name, in characters (the database's columns).
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_CLASS_CHARS: usize = 64;
pub const MAX_MAJOR_CHARS: usize = 128;
pub const MAX_STUDENT_NO_CHARS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
}

/// Why a student's field is not acceptable. Messages are shown as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StudentFieldError {
    #[error("性别应为“男”或“女”")]
    Gender,
    #[error("年级应为入学年份，如 2018、18 或 2018级（2000至2099年）")]
    Grade,
    #[error("请填写姓名")]
    NameEmpty,
    #[error("姓名不能超过{MAX_NAME_CHARS}个字")]
    NameTooLong,
    #[error("请填写班级")]
    ClassEmpty,
    #[error("班级不能超过{MAX_CLASS_CHARS}个字")]
    ClassTooLong,
    #[error("专业不能超过{MAX_MAJOR_CHARS}个字")]
    MajorTooLong,
    #[error("学号不能超过{MAX_STUDENT_NO_CHARS}个字符")]
    StudentNoTooLong,
}

impl Gender {
    /// `男`/`女`, `M`/`F`, `male`/`female` (any case, surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Gender, StudentFieldError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "男" | "m" | "male" => Ok(Gender::Male),
            "女" | "f" | "female" => Ok(Gender::Female),
            _ => Err(StudentFieldError::Gender),
        }
    }

    pub fn as_chinese(self) -> &'static str {
        match self {
            Gender::Male => "男",
            Gender::Female => "女",
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_chinese())
    }
}

/// The four-digit year of entry from `2018`, `18`, `2018级` or `18级`.
pub fn parse_grade(input: &str) -> Result<i32, StudentFieldError> {
    let input = input.trim();
    let digits = input.strip_suffix('级').unwrap_or(input).trim_end();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StudentFieldError::Grade);
    }
    let grade = match digits.len() {
        2 | 4 => digits
            .parse::<i32>()
            .map_err(|_| StudentFieldError::Grade)?,
        _ => return Err(StudentFieldError::Grade),
    };
    let grade = if digits.len() == 2 {
        2000 + grade
    } else {
        grade
    };
    if GRADES.contains(&grade) {
        Ok(grade)
    } else {
        Err(StudentFieldError::Grade)
    }
}

/// The two-digit form of a grade: 2018 → `"18"`, 2005 → `"05"`.
pub fn short_grade(grade: i32) -> String {
    format!("{:02}", grade.rem_euclid(100))
}

/// A name as given, in its one written form ([`normalize_name`]): required and at most
/// [`MAX_NAME_CHARS`].
pub fn check_name(name: &str) -> Result<String, StudentFieldError> {
    let name = normalize_name(name);
    check_required(
        &name,
        MAX_NAME_CHARS,
        StudentFieldError::NameEmpty,
        StudentFieldError::NameTooLong,
    )?;
    Ok(name)
}

/// A name as stored and shown: trimmed, and every run of whitespace inside it (two
/// spaces, a tab, a full-width space) one ordinary space: `阿依　古丽` is `阿依 古丽`.
pub fn normalize_name(name: &str) -> String {
    name.split(char::is_whitespace)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A name as remarks carry it and as it is looked up by: without any whitespace, so
/// `阿依 古丽` and the remark `26汽修1班阿依古丽` meet. The remark rule, the follower
/// check and its query in the store all compare names by this key.
pub fn name_key(name: &str) -> String {
    name.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A class name as given, trimmed: required and at most [`MAX_CLASS_CHARS`].
pub fn check_class_name(class_name: &str) -> Result<&str, StudentFieldError> {
    check_required(
        class_name,
        MAX_CLASS_CHARS,
        StudentFieldError::ClassEmpty,
        StudentFieldError::ClassTooLong,
    )
}

/// An optional major: empty means not given.
pub fn check_major(major: &str) -> Result<Option<&str>, StudentFieldError> {
    check_optional(major, MAX_MAJOR_CHARS, StudentFieldError::MajorTooLong)
}

/// An optional student number: empty means not given.
pub fn check_student_no(student_no: &str) -> Result<Option<&str>, StudentFieldError> {
    check_optional(
        student_no,
        MAX_STUDENT_NO_CHARS,
        StudentFieldError::StudentNoTooLong,
    )
}

fn check_required(
    value: &str,
    max_chars: usize,
    empty: StudentFieldError,
    too_long: StudentFieldError,
) -> Result<&str, StudentFieldError> {
    match check_optional(value, max_chars, too_long)? {
        Some(value) => Ok(value),
        None => Err(empty),
    }
}

fn check_optional(
    value: &str,
    max_chars: usize,
    too_long: StudentFieldError,
) -> Result<Option<&str>, StudentFieldError> {
    let value = value.trim();
    if value.is_empty() {
        Ok(None)
    } else if value.chars().count() > max_chars {
        Err(too_long)
    } else {
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genders_in_the_rolls_spellings() {
        for input in ["男", " 男 ", "M", "m", "male", "Male"] {
            assert_eq!(Gender::parse(input), Ok(Gender::Male), "{input:?}");
        }
        for input in ["女", "F", "f", "female", "FEMALE"] {
            assert_eq!(Gender::parse(input), Ok(Gender::Female), "{input:?}");
        }
        for input in ["", "男性", "x", "1", "boy"] {
            assert_eq!(
                Gender::parse(input),
                Err(StudentFieldError::Gender),
                "{input:?}"
            );
        }
        assert_eq!(Gender::Male.as_chinese(), "男");
        assert_eq!(Gender::Female.to_string(), "女");
    }

    #[test]
    fn grades_in_four_or_two_digits_with_or_without_ji() {
        let cases = [
            ("2018", 2018),
            ("18", 2018),
            ("2018级", 2018),
            ("18级", 2018),
            (" 2026 ", 2026),
            ("00", 2000),
            ("2099", 2099),
        ];
        for (input, grade) in cases {
            assert_eq!(parse_grade(input), Ok(grade), "{input:?}");
        }
        for input in [
            "",
            "级",
            "1999",
            "2100",
            "8",
            "218",
            "20188",
            "二〇一八",
            "2018.0",
            "-18",
        ] {
            assert_eq!(
                parse_grade(input),
                Err(StudentFieldError::Grade),
                "{input:?}"
            );
        }
    }

    #[test]
    fn one_written_form_and_one_key_for_a_name() {
        assert_eq!(normalize_name("  Li   Ming "), "Li Ming");
        assert_eq!(normalize_name("阿依\u{3000}古丽"), "阿依 古丽");
        assert_eq!(name_key("阿依 古丽"), "阿依古丽");
        assert_eq!(
            name_key(&normalize_name(" 阿依\t古丽 ")),
            name_key("阿依古丽")
        );
    }

    #[test]
    fn short_grades_have_two_digits() {
        assert_eq!(short_grade(2018), "18");
        assert_eq!(short_grade(2026), "26");
        assert_eq!(short_grade(2005), "05");
    }

    #[test]
    fn names_and_classes_are_required_and_bounded() {
        assert_eq!(check_name(" 张三 "), Ok("张三".to_owned()));
        assert_eq!(
            check_name(" 阿依\u{3000}\t 古丽 "),
            Ok("阿依 古丽".to_owned())
        );
        assert_eq!(check_name(" "), Err(StudentFieldError::NameEmpty));
        assert_eq!(
            check_name(&"张".repeat(65)),
            Err(StudentFieldError::NameTooLong)
        );
        assert_eq!(check_class_name("汽修1班"), Ok("汽修1班"));
        assert_eq!(check_class_name(""), Err(StudentFieldError::ClassEmpty));
        assert_eq!(check_major(""), Ok(None));
        assert_eq!(
            check_major(" 汽车检测与维修技术 "),
            Ok(Some("汽车检测与维修技术"))
        );
        assert_eq!(
            check_student_no(&"1".repeat(33)),
            Err(StudentFieldError::StudentNoTooLong)
        );
    }
}
