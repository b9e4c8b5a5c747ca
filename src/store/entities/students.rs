//! `students`: who owes fees, keyed by the resident ID number.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "students")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub id_card: String,
    pub name: String,
    pub gender: Gender,
    /// Four-digit year of entry, e.g. 2018.
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    pub password_hash: String,
    /// Set when the import gave an explicit initial password, so that a reset
    /// restores that one rather than the ID-number default.
    pub initial_password_hash: Option<String>,
    pub must_change_password: bool,
    pub failed_logins: i32,
    pub locked_until: Option<DateTimeUtc>,
    #[sea_orm(unique)]
    pub wechat_openid: Option<String>,
    pub bound_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// As the college's rolls write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(4))")]
pub enum Gender {
    #[sea_orm(string_value = "男")]
    Male,
    #[sea_orm(string_value = "女")]
    Female,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::fee_items::Entity")]
    FeeItems,
    #[sea_orm(has_many = "super::orders::Entity")]
    Orders,
    #[sea_orm(has_many = "super::followers::Entity")]
    Followers,
}

impl Related<super::fee_items::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::FeeItems.def()
    }
}

impl Related<super::orders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Orders.def()
    }
}

impl Related<super::followers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Followers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
