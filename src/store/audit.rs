//! The audit log: every change an admin (or the CLI, or a job) makes, with who, when,
//! and the record before and after. Changes write their row in the same transaction
//! as the change itself, so there is never a change without its row.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use super::entities::audit_log;
use super::{Store, StoreError};

/// One change, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// An admin's username, `cli`, or a job's name.
    pub actor: String,
    /// What was done, e.g. `student.reset_password`.
    pub action: String,
    /// On what, e.g. `student:42`.
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl AuditEntry {
    pub fn new(actor: &str, action: &str, target: impl Into<String>) -> AuditEntry {
        AuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.into(),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, before: Value) -> AuditEntry {
        self.before = Some(before);
        self
    }

    pub fn after(mut self, after: Value) -> AuditEntry {
        self.after = Some(after);
        self
    }
}

/// A row of the audit log as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub entry: AuditEntry,
}

/// Which rows to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// Actions starting with this, e.g. `student.` for every change to students.
    pub action_prefix: Option<String>,
    pub target: Option<String>,
    pub limit: u64,
    pub offset: u64,
}

/// Writes `entry` on `db` (the change's own transaction).
pub(super) async fn write_audit<C: ConnectionTrait>(
    db: &C,
    entry: &AuditEntry,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    audit_log::ActiveModel {
        at: Set(at),
        actor: Set(entry.actor.clone()),
        action: Set(entry.action.clone()),
        target: Set(entry.target.clone()),
        before: Set(entry.before.clone()),
        after: Set(entry.after.clone()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(StoreError::query("write the audit log"))?;
    Ok(())
}

impl Store {
    /// Records something that changed nothing in the database (a menu pushed, a full
    /// ID number viewed, a follower check started).
    pub async fn record_audit(
        &self,
        entry: &AuditEntry,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        write_audit(&self.db, entry, at).await
    }

    /// The rows `query` selects, newest first, and how many there are in all.
    pub async fn audit_log(
        &self,
        query: &AuditQuery,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let mut select = audit_log::Entity::find();
        if let Some(actor) = &query.actor {
            select = select.filter(audit_log::Column::Actor.eq(actor.as_str()));
        }
        if let Some(prefix) = &query.action_prefix {
            select = select.filter(audit_log::Column::Action.starts_with(prefix.as_str()));
        }
        if let Some(target) = &query.target {
            select = select.filter(audit_log::Column::Target.eq(target.as_str()));
        }
        let total = select
            .clone()
            .count(&self.db)
            .await
            .map_err(StoreError::query("count audit rows"))?;
        let rows = select
            .order_by_desc(audit_log::Column::At)
            .order_by_desc(audit_log::Column::Id)
            .offset(query.offset)
            .limit(query.limit.max(1))
            .all(&self.db)
            .await
            .map_err(StoreError::query("list audit rows"))?;
        let records = rows
            .into_iter()
            .map(|row| AuditRecord {
                id: row.id,
                at: row.at,
                entry: AuditEntry {
                    actor: row.actor,
                    action: row.action,
                    target: row.target,
                    before: row.before,
                    after: row.after,
                },
            })
            .collect();
        Ok((records, total))
    }
}
