//! `follower_check_runs`: each run of the follower check, with its report.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "follower_check_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub started_at: DateTimeUtc,
    /// Absent while the run is going (or when its process died).
    pub finished_at: Option<DateTimeUtc>,
    /// An admin's username, `cli` or `schedule`.
    pub actor: String,
    pub dry_run: bool,
    /// `report`, `tag` or `blacklist`.
    pub action: String,
    pub total: i64,
    pub checked: i64,
    pub bound: i64,
    pub compliant: i64,
    pub within_grace: i64,
    pub left_count: i64,
    pub non_compliant_count: i64,
    pub acted_on: i64,
    pub remarks_corrected: i64,
    /// The non-compliant openids, a JSON array of strings.
    #[sea_orm(column_type = "JsonBinary")]
    pub non_compliant: Json,
    #[sea_orm(column_type = "Text", nullable)]
    pub stopped: Option<String>,
    /// When the run stopped early: the last follower it finished with.
    pub resume_after: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
