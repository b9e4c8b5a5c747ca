//! `reconciliation_runs`: one channel's bill for one day, matched against our orders.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reconciliation_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `wechat`, `alipay` or `abc`.
    pub channel: String,
    /// The bill's day, `YYYY-MM-DD` (Beijing).
    pub bill_date: String,
    pub actor: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub status: RunStatus,
    pub bill_lines: i64,
    pub matched: i64,
    pub applied: i64,
    pub missing_at_channel: i64,
    pub amount_mismatch: i64,
    pub unknown_at_us: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Where a run stands. The stored strings are `running`, `done` and `failed`;
/// they never change (runs already written are read back by them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RunStatus {
    /// Started, not finished (or its process died: a later run takes over).
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl RunStatus {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
        }
    }

    /// A stored string read back; `None` for anything else.
    pub fn parse(stored: &str) -> Option<RunStatus> {
        [RunStatus::Running, RunStatus::Done, RunStatus::Failed]
            .into_iter()
            .find(|status| status.as_str() == stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_states_keep_their_stored_strings() {
        for (status, stored) in [
            (RunStatus::Running, "running"),
            (RunStatus::Done, "done"),
            (RunStatus::Failed, "failed"),
        ] {
            assert_eq!(status.as_str(), stored);
            assert_eq!(status.to_value(), stored, "what sea-orm writes");
            assert_eq!(RunStatus::parse(stored), Some(status));
        }
        assert_eq!(RunStatus::parse("Done"), None);
    }
}
