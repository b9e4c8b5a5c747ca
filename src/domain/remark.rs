//! The follower remark rule (CONTRACT.md, "The remark rule"): a follower's remark is
//! the two-digit grade, the class as imported and the student's name, e.g.
//! `26汽修1班张三`.
//!
//! WeChat refuses remarks over about 20 bytes (UTF-8: a Chinese character is three),
//! so a long class is shortened: first a trailing `班` goes, then the class's last
//! characters one at a time. The name is never shortened; when even an empty class
//! does not fit, the remark is grade + name, whatever its length.

use super::student::{name_key, short_grade};

/// WeChat's limit on a remark, in UTF-8 bytes.
pub const REMARK_MAX_BYTES: usize = 20;

/// The remark for a student: grade + class + name within [`REMARK_MAX_BYTES`],
/// shortening the class (never the name) when needed.
pub fn remark_for(grade: i32, class_name: &str, name: &str) -> String {
    let grade = short_grade(grade);
    let name = name_key(name);
    class_shortenings(&without_whitespace(class_name))
        .into_iter()
        .map(|class| format!("{grade}{class}{name}"))
        .find(|remark| remark.len() <= REMARK_MAX_BYTES)
        .unwrap_or_else(|| format!("{grade}{name}"))
}

/// Whether a follower's remark follows the rule for this student: exactly
/// [`remark_for`], or grade + any (non-empty) shortening of the class by the same
/// procedure + name, with the grade in two or four digits. Whitespace anywhere is
/// ignored. Grade + name alone complies only when the rule itself comes to that,
/// since it no longer says which class.
pub fn remark_follows_rule(remark: &str, grade: i32, class_name: &str, name: &str) -> bool {
    let remark = without_whitespace(remark);
    if remark.is_empty() {
        return false;
    }
    if remark == remark_for(grade, class_name, name) {
        return true;
    }
    let name = name_key(name);
    let Some(rest) = remark.strip_suffix(name.as_str()) else {
        return false;
    };
    let shortenings = class_shortenings(&without_whitespace(class_name));
    [short_grade(grade), grade.to_string()]
        .iter()
        .filter_map(|prefix| rest.strip_prefix(prefix.as_str()))
        .any(|class| !class.is_empty() && shortenings.iter().any(|s| s == class))
}

/// The class as imported, then each shortening in the rule's order, ending with the
/// empty class: `汽修1班`, `汽修1`, `汽修`, `汽`, ``.
fn class_shortenings(class_name: &str) -> Vec<String> {
    let mut shortenings = vec![class_name.to_owned()];
    let mut rest: Vec<char> = class_name.chars().collect();
    if rest.last() == Some(&'班') {
        rest.pop();
        shortenings.push(rest.iter().collect());
    }
    while rest.pop().is_some() {
        shortenings.push(rest.iter().collect());
    }
    shortenings
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_short_class_is_kept_whole() {
        assert_eq!(remark_for(2026, "汽修1班", "张三"), "26汽修1班张三");
        assert_eq!(remark_for(2018, "汽修", "张三"), "18汽修张三");
        assert_eq!(remark_for(2005, "A1", "Li"), "05A1Li");
    }

    #[test]
    fn a_long_class_loses_its_ban_first() {
        // Whole: 2 + 16 + 6 = 24 bytes; without 班 21; without 1 as well, 20.
        assert_eq!(remark_for(2026, "汽车检测1班", "张三"), "26汽车检测张三");
        // Whole: 2 + 13 + 6 = 21 bytes; without 班 18, so the 1 stays.
        assert_eq!(remark_for(2026, "机电一1班", "王五"), "26机电一1王五");
    }

    #[test]
    fn then_its_last_characters_one_at_a_time() {
        assert_eq!(
            remark_for(2026, "汽车检测与维修技术2班", "欧阳娜娜"),
            "26汽车欧阳娜娜"
        );
    }

    #[test]
    fn the_name_is_never_shortened() {
        // Even an empty class does not fit: grade + name, over the limit.
        let long_name = "阿卜杜热合曼买买提";
        assert_eq!(
            remark_for(2026, "汽修1班", long_name),
            format!("26{long_name}")
        );
        // Exactly 20 bytes with no class at all.
        assert_eq!(
            remark_for(2026, "汽修1班", "欧阳娜娜娜娜"),
            "26欧阳娜娜娜娜"
        );
    }

    #[test]
    fn whitespace_in_the_class_or_name_is_left_out() {
        assert_eq!(remark_for(2026, " 汽修 1班 ", " 张 三"), "26汽修1班张三");
    }

    #[test]
    fn remarks_that_follow_the_rule() {
        let follows = |remark| remark_follows_rule(remark, 2026, "汽修1班", "张三");
        assert!(follows("26汽修1班张三"));
        assert!(follows(" 26 汽修1班 张三 "));
        assert!(follows("26汽修1张三"));
        assert!(follows("26汽修张三"));
        assert!(follows("26汽张三"));
        assert!(follows("2026汽修1班张三"));
        assert!(follows("2026汽修张三"));
    }

    #[test]
    fn remarks_that_do_not() {
        let follows = |remark| remark_follows_rule(remark, 2026, "汽修1班", "张三");
        assert!(!follows(""));
        assert!(!follows("张三"));
        assert!(!follows("26张三"), "grade and name alone say no class");
        assert!(!follows("25汽修1班张三"), "another grade");
        assert!(!follows("26汽修1班张"), "a shortened name");
        assert!(
            !follows("26修1班张三"),
            "the class shortened from the front"
        );
        assert!(!follows("26汽修1班李四"));
        assert!(!follows("汽修1班张三26"));
    }

    /// The remarks the issue names, as followers really write them.
    #[test]
    fn real_looking_remarks() {
        let zhang_san_2018 = |remark| remark_follows_rule(remark, 2018, "汽修", "张三");
        assert!(zhang_san_2018("18汽修张三"));
        assert!(zhang_san_2018("18 汽修 张三"), "spaces are left out");
        // 级 is not part of the rule: the office asks for exactly grade+class+name.
        assert!(!zhang_san_2018("18级汽修 张三"));
        assert!(!zhang_san_2018("张三"));
        assert!(!zhang_san_2018("18汽修张三😀"), "an emoji after the name");
        assert!(!zhang_san_2018("😀"));
        assert!(remark_follows_rule(
            "26汽修1班李四",
            2026,
            "汽修1班",
            "李四"
        ));
        // 21 bytes: what the rule would shorten is not accepted whole either way round.
        let long = "26汽修1班李四四";
        assert_eq!(long.len(), 21);
        assert!(!remark_follows_rule(long, 2026, "汽修1班", "李四"));
        assert!(remark_follows_rule(long, 2026, "汽修1班", "李四四"));
    }

    #[test]
    fn a_four_digit_grade_that_starts_like_the_short_one() {
        // Grade 2020: "20" is a prefix of "2020", and both forms must be tried.
        assert!(remark_follows_rule("2020汽修张三", 2020, "汽修1班", "张三"));
        assert!(remark_follows_rule("20汽修张三", 2020, "汽修1班", "张三"));
    }

    #[test]
    fn grade_and_name_comply_when_the_rule_itself_comes_to_that() {
        let name = "阿卜杜热合曼买买提";
        assert!(remark_follows_rule(
            &format!("26{name}"),
            2026,
            "汽修1班",
            name
        ));
    }

    proptest! {
        #[test]
        fn the_remark_fits_unless_grade_and_name_alone_do_not(
            grade in 2000i32..=2099,
            class in "[汽修机电计算机应用0-9]{0,12}班?",
            name in "[张王李欧阳娜]{1,8}",
        ) {
            let remark = remark_for(grade, &class, &name);
            let bare = format!("{}{name}", short_grade(grade));
            prop_assert!(remark.len() <= REMARK_MAX_BYTES || remark == bare);
            prop_assert!(remark.ends_with(&name));
            prop_assert!(remark.starts_with(&short_grade(grade)));
            prop_assert!(remark_follows_rule(&remark, grade, &class, &name));
        }
    }
}
