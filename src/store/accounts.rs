//! Students as sign-in sees them: find by ID number or WeChat openid, bind WeChat,
//! change the password.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::entities::{followers, students};
use super::{Gender, Store, StoreError};

/// A student with what sign-in needs. The password hashes never leave the server.
#[derive(Clone, PartialEq, Eq)]
pub struct StudentAccount {
    pub id: i64,
    pub id_card: String,
    pub name: String,
    pub gender: Gender,
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    /// Empty while the student is still on the initial password (see
    /// `initial_password_hash`): imports do not hash thousands of passwords nobody chose.
    pub password_hash: String,
    /// The import's explicit initial password (e.g. `000000`); `None` means the last
    /// six characters of the ID number.
    pub initial_password_hash: Option<String>,
    pub must_change_password: bool,
    pub wechat_openid: Option<String>,
}

/// Never prints the ID number or the hashes.
impl std::fmt::Debug for StudentAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudentAccount")
            .field("id", &self.id)
            .field("must_change_password", &self.must_change_password)
            .field("bound", &self.wechat_openid.is_some())
            .finish_non_exhaustive()
    }
}

impl From<students::Model> for StudentAccount {
    fn from(row: students::Model) -> StudentAccount {
        StudentAccount {
            id: row.id,
            id_card: row.id_card,
            name: row.name,
            gender: row.gender,
            grade: row.grade,
            class_name: row.class_name,
            major: row.major,
            student_no: row.student_no,
            password_hash: row.password_hash,
            initial_password_hash: row.initial_password_hash,
            must_change_password: row.must_change_password,
            wechat_openid: row.wechat_openid,
        }
    }
}

/// What binding changed besides the binding itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOutcome {
    /// The student was bound to another WeChat account, which is now unbound.
    pub replaced_openid: Option<String>,
    /// This WeChat account was bound to another student, who is now unbound.
    pub replaced_student: Option<i64>,
}

impl Store {
    pub async fn find_student_by_id_card(
        &self,
        id_card: &str,
    ) -> Result<Option<StudentAccount>, StoreError> {
        let row = students::Entity::find()
            .filter(students::Column::IdCard.eq(id_card))
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a student by ID number"))?;
        Ok(row.map(StudentAccount::from))
    }

    /// Every signed-in page asks this: on the read pool, and without `.one()`'s
    /// `LIMIT ?`, which makes SQLite re-prepare the statement on every call.
    pub async fn find_student(
        &self,
        student_id: i64,
    ) -> Result<Option<StudentAccount>, StoreError> {
        let rows = students::Entity::find()
            .filter(students::Column::Id.eq(student_id))
            .all(&self.reads)
            .await
            .map_err(StoreError::query("find a student"))?;
        Ok(rows.into_iter().next().map(StudentAccount::from))
    }

    pub async fn find_student_by_openid(
        &self,
        openid: &str,
    ) -> Result<Option<StudentAccount>, StoreError> {
        let row = students::Entity::find()
            .filter(students::Column::WechatOpenid.eq(openid))
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a student by openid"))?;
        Ok(row.map(StudentAccount::from))
    }

    /// Binds `openid` to the student, in one transaction: an openid belongs to one
    /// student and a student to one openid, so whichever binding stood in the way is
    /// undone (and reported, so the page can say so). The follower rows follow.
    pub async fn bind_wechat(
        &self,
        student_id: i64,
        openid: &str,
        now: DateTime<Utc>,
    ) -> Result<BindOutcome, StoreError> {
        let txn = self
            .db
            .begin()
            .await
            .map_err(StoreError::query("begin binding"))?;
        let student = students::Entity::find_by_id(student_id)
            .one(&txn)
            .await
            .map_err(StoreError::query("read the student to bind"))?
            .ok_or(StoreError::Inconsistent(
                "binding a student that does not exist",
            ))?;
        let holder = students::Entity::find()
            .filter(students::Column::WechatOpenid.eq(openid))
            .one(&txn)
            .await
            .map_err(StoreError::query("find the openid's student"))?;
        let mut outcome = BindOutcome::default();
        if let Some(holder) = holder.filter(|holder| holder.id != student_id) {
            students::Entity::update_many()
                .col_expr(
                    students::Column::WechatOpenid,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    students::Column::BoundAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(students::Column::UpdatedAt, Expr::value(now))
                .filter(students::Column::Id.eq(holder.id))
                .exec(&txn)
                .await
                .map_err(StoreError::query("unbind the openid's previous student"))?;
            outcome.replaced_student = Some(holder.id);
        }
        outcome.replaced_openid = student.wechat_openid.clone().filter(|old| old != openid);
        students::Entity::update(students::ActiveModel {
            id: Set(student_id),
            wechat_openid: Set(Some(openid.to_owned())),
            bound_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await
        .map_err(StoreError::query("bind the student"))?;
        followers::Entity::update_many()
            .col_expr(
                followers::Column::StudentId,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(followers::Column::UpdatedAt, Expr::value(now))
            .filter(followers::Column::StudentId.eq(student_id))
            .filter(followers::Column::Openid.ne(openid))
            .exec(&txn)
            .await
            .map_err(StoreError::query("unbind the student's previous follower"))?;
        followers::Entity::update_many()
            .col_expr(followers::Column::StudentId, Expr::value(Some(student_id)))
            .col_expr(followers::Column::UpdatedAt, Expr::value(now))
            .filter(followers::Column::Openid.eq(openid))
            .exec(&txn)
            .await
            .map_err(StoreError::query("bind the follower"))?;
        txn.commit()
            .await
            .map_err(StoreError::query("commit binding"))?;
        Ok(outcome)
    }

    /// Stores a new password the student chose; the initial one stops working.
    pub async fn set_student_password(
        &self,
        student_id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = students::Entity::update_many()
            .col_expr(students::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(students::Column::MustChangePassword, Expr::value(false))
            .col_expr(students::Column::UpdatedAt, Expr::value(now))
            .filter(students::Column::Id.eq(student_id))
            .exec(&self.db)
            .await
            .map_err(StoreError::query("set a student's password"))?;
        if result.rows_affected != 1 {
            return Err(StoreError::Inconsistent(
                "no student to set the password of",
            ));
        }
        Ok(())
    }

    /// Records the remark WeChat now shows for `openid` (after `updateremark`).
    pub async fn set_follower_remark(
        &self,
        openid: &str,
        remark: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        followers::Entity::update_many()
            .col_expr(followers::Column::Remark, Expr::value(remark))
            .col_expr(followers::Column::UpdatedAt, Expr::value(now))
            .filter(followers::Column::Openid.eq(openid))
            .exec(&self.db)
            .await
            .map_err(StoreError::query("record a follower's remark"))?;
        Ok(())
    }
}
