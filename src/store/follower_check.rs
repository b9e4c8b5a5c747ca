//! What the follower check asks of the database: which openids are bound to a
//! student, and which students a remark may name.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::{followers, students};
use super::{Store, StoreError};

/// A student as the remark rule sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemarkStudent {
    pub name: String,
    pub grade: i32,
    pub class_name: String,
}

/// A remark names its student at its end; names are not longer than this.
const NAME_MAX_CHARS: usize = 20;

impl Store {
    /// Those of `openids` bound to a student: by the follower row's student, or by
    /// the student's own openid.
    pub async fn bound_openids(&self, openids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut bound = HashSet::new();
        if openids.is_empty() {
            return Ok(bound);
        }
        let by_follower: Vec<String> = followers::Entity::find()
            .select_only()
            .column(followers::Column::Openid)
            .filter(followers::Column::Openid.is_in(openids.iter().copied()))
            .filter(followers::Column::StudentId.is_not_null())
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find bound followers"))?;
        bound.extend(by_follower);
        let by_student: Vec<Option<String>> = students::Entity::find()
            .select_only()
            .column(students::Column::WechatOpenid)
            .filter(students::Column::WechatOpenid.is_in(openids.iter().copied()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find bound students"))?;
        bound.extend(by_student.into_iter().flatten());
        Ok(bound)
    }

    /// The students whose name ends one of `remarks` (whitespace left out), the only
    /// ones those remarks can follow the rule for.
    pub async fn students_named_in(
        &self,
        remarks: &[&str],
    ) -> Result<Vec<RemarkStudent>, StoreError> {
        let names: HashSet<String> = remarks
            .iter()
            .flat_map(|remark| name_suffixes(remark))
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i32, String)> = students::Entity::find()
            .select_only()
            .column(students::Column::Name)
            .column(students::Column::Grade)
            .column(students::Column::ClassName)
            .filter(students::Column::Name.is_in(names))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(StoreError::query("find students named in remarks"))?;
        Ok(rows
            .into_iter()
            .map(|(name, grade, class_name)| RemarkStudent {
                name,
                grade,
                class_name,
            })
            .collect())
    }
}

/// Every ending of the remark (without whitespace) up to [`NAME_MAX_CHARS`].
fn name_suffixes(remark: &str) -> Vec<String> {
    let chars: Vec<char> = remark.chars().filter(|c| !c.is_whitespace()).collect();
    (1..=chars.len().min(NAME_MAX_CHARS))
        .map(|length| chars[chars.len() - length..].iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_skip_whitespace_and_stop_at_the_longest_name() {
        assert_eq!(name_suffixes("18 张三"), ["三", "张三", "8张三", "18张三"]);
        assert!(name_suffixes("").is_empty());
        assert_eq!(name_suffixes(&"啊".repeat(30)).len(), NAME_MAX_CHARS);
    }
}
