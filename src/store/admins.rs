//! The finance office's console accounts.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::entities::admins;
use super::{AdminRole, Store, StoreError};

impl Store {
    /// Creates an admin; false when the username is taken (nothing changed).
    pub async fn create_admin(
        &self,
        username: &str,
        password_hash: &str,
        role: AdminRole,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let taken = admins::Entity::find()
            .filter(admins::Column::Username.eq(username))
            .one(&self.db)
            .await
            .map_err(StoreError::query("look up an admin"))?;
        if taken.is_some() {
            return Ok(false);
        }
        admins::ActiveModel {
            username: Set(username.to_owned()),
            password_hash: Set(password_hash.to_owned()),
            role: Set(role),
            failed_logins: Set(0),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .map_err(StoreError::query("create an admin"))?;
        Ok(true)
    }
}

/// An admin as sign-in and the console see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccount {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: AdminRole,
}

impl From<admins::Model> for AdminAccount {
    fn from(row: admins::Model) -> AdminAccount {
        AdminAccount {
            id: row.id,
            username: row.username,
            password_hash: row.password_hash,
            role: row.role,
        }
    }
}

impl Store {
    pub async fn find_admin_by_username(
        &self,
        username: &str,
    ) -> Result<Option<AdminAccount>, StoreError> {
        let row = admins::Entity::find()
            .filter(admins::Column::Username.eq(username))
            .one(&self.db)
            .await
            .map_err(StoreError::query("look up an admin"))?;
        Ok(row.map(AdminAccount::from))
    }

    pub async fn find_admin(&self, id: i64) -> Result<Option<AdminAccount>, StoreError> {
        let row = admins::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(StoreError::query("look up an admin"))?;
        Ok(row.map(AdminAccount::from))
    }
}
