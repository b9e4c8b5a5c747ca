//! The official account's followers, as the webhook's subscribe and unsubscribe
//! events record them.
//!
//! WeChat may deliver an event twice, two instances may handle the same openid at
//! once, and a retried event may arrive after a newer one. So each event is one
//! atomic upsert on `openid` (never read-then-insert), and it changes a row only when
//! nothing newer than the event has been recorded there: the event's time decides,
//! not its arrival. Events in the same instant apply in arrival order.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::entities::followers::{self, Column};
use super::{Store, StoreError};

/// A follower as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerRecord {
    pub id: i64,
    pub openid: String,
    /// Follows the account now.
    pub subscribed: bool,
    /// The latest subscribe; kept after an unsubscribe.
    pub subscribed_at: Option<DateTime<Utc>>,
    /// The latest unsubscribe; cleared by a later subscribe.
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub subscribe_scene: Option<String>,
    pub remark: Option<String>,
    /// The student bound to this openid, if any.
    pub student_id: Option<i64>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub compliance: Option<String>,
}

impl From<followers::Model> for FollowerRecord {
    fn from(row: followers::Model) -> FollowerRecord {
        FollowerRecord {
            id: row.id,
            openid: row.openid,
            subscribed: row.subscribed,
            subscribed_at: row.subscribed_at,
            unsubscribed_at: row.unsubscribed_at,
            subscribe_scene: row.subscribe_scene,
            remark: row.remark,
            student_id: row.student_id,
            last_checked_at: row.last_checked_at,
            compliance: row.compliance,
        }
    }
}

impl Store {
    /// Records a subscribe that happened at `at`: a new row for a new openid, or the
    /// same row reactivated for one we knew (`unsubscribed_at` cleared). Returns the
    /// follower as stored afterwards.
    pub async fn record_subscribe(
        &self,
        openid: &str,
        at: DateTime<Utc>,
        scene: Option<&str>,
    ) -> Result<FollowerRecord, StoreError> {
        let subscribe = followers::ActiveModel {
            openid: Set(openid.to_owned()),
            subscribed: Set(true),
            subscribed_at: Set(Some(at)),
            unsubscribed_at: Set(None),
            subscribe_scene: Set(scene.map(str::to_owned)),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        };
        let on_repeat = [
            Column::Subscribed,
            Column::SubscribedAt,
            Column::UnsubscribedAt,
            Column::SubscribeScene,
            Column::UpdatedAt,
        ];
        self.upsert_event(subscribe, &on_repeat, at, "record a subscribe")
            .await?;
        self.expect_follower(openid).await
    }

    /// Records an unsubscribe that happened at `at`. A follower we never saw
    /// subscribe (one from before this program) gets a row too, so that the follower
    /// check knows they left. Returns the follower as stored afterwards.
    pub async fn record_unsubscribe(
        &self,
        openid: &str,
        at: DateTime<Utc>,
    ) -> Result<FollowerRecord, StoreError> {
        let unsubscribe = followers::ActiveModel {
            openid: Set(openid.to_owned()),
            subscribed: Set(false),
            unsubscribed_at: Set(Some(at)),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        };
        let on_repeat = [
            Column::Subscribed,
            Column::UnsubscribedAt,
            Column::UpdatedAt,
        ];
        self.upsert_event(unsubscribe, &on_repeat, at, "record an unsubscribe")
            .await?;
        self.expect_follower(openid).await
    }

    pub async fn find_follower(&self, openid: &str) -> Result<Option<FollowerRecord>, StoreError> {
        let row = followers::Entity::find()
            .filter(Column::Openid.eq(openid))
            .one(&self.db)
            .await
            .map_err(StoreError::query("find a follower"))?;
        Ok(row.map(FollowerRecord::from))
    }

    /// How many follow the account now. Those who left keep their row (their history
    /// matters to the follower check) but are not counted.
    pub async fn count_followers(&self) -> Result<u64, StoreError> {
        followers::Entity::find()
            .filter(Column::Subscribed.eq(true))
            .count(&self.db)
            .await
            .map_err(StoreError::query("count followers"))
    }

    /// Inserts `event` as a new row, or on a known openid copies `on_repeat` columns
    /// onto the existing row, unless that row already holds a later event.
    async fn upsert_event(
        &self,
        event: followers::ActiveModel,
        on_repeat: &[Column],
        at: DateTime<Utc>,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        let on_conflict = OnConflict::column(Column::Openid)
            .update_columns(on_repeat.iter().copied())
            .action_cond_where(recorded_nothing_after(at))
            .to_owned();
        followers::Entity::insert(event)
            .on_conflict(on_conflict)
            .exec_without_returning(&self.db)
            .await
            .map_err(StoreError::query(operation))?;
        Ok(())
    }

    async fn expect_follower(&self, openid: &str) -> Result<FollowerRecord, StoreError> {
        self.find_follower(openid)
            .await?
            .ok_or(StoreError::Inconsistent(
                "a follower row is missing after its upsert",
            ))
    }
}

/// True for an existing row whose latest subscribe and unsubscribe are both no later
/// than `at` (or absent).
fn recorded_nothing_after(at: DateTime<Utc>) -> Condition {
    // The column methods qualify with the table name, which in an upsert's WHERE
    // means the stored row (the proposed one would be `excluded`).
    let not_after = |column: Column| Condition::any().add(column.is_null()).add(column.lte(at));
    Condition::all()
        .add(not_after(Column::SubscribedAt))
        .add(not_after(Column::UnsubscribedAt))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::store::testing::fresh_store;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 1, hour, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn a_first_subscribe_creates_a_subscribed_follower() {
        let store = fresh_store().await;

        let follower = store
            .record_subscribe("o-first", at(8), Some("ADD_SCENE_QR_CODE"))
            .await
            .unwrap();

        assert!(follower.subscribed);
        assert_eq!(follower.openid, "o-first");
        assert_eq!(follower.subscribed_at, Some(at(8)));
        assert_eq!(follower.unsubscribed_at, None);
        assert_eq!(
            follower.subscribe_scene.as_deref(),
            Some("ADD_SCENE_QR_CODE")
        );
        assert_eq!(
            store.find_follower("o-first").await.unwrap(),
            Some(follower)
        );
        assert_eq!(store.count_followers().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_unknown_openid_is_not_found() {
        let store = fresh_store().await;

        assert_eq!(store.find_follower("o-nobody").await.unwrap(), None);
        assert_eq!(store.count_followers().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn subscribe_unsubscribe_resubscribe_keeps_one_row() {
        let store = fresh_store().await;

        let first = store.record_subscribe("o-back", at(8), None).await.unwrap();
        let left = store.record_unsubscribe("o-back", at(9)).await.unwrap();
        assert_eq!(left.id, first.id);
        assert!(!left.subscribed);
        assert_eq!(left.subscribed_at, Some(at(8)), "history is kept");
        assert_eq!(left.unsubscribed_at, Some(at(9)));
        assert_eq!(store.count_followers().await.unwrap(), 0);

        let back = store
            .record_subscribe("o-back", at(10), Some("ADD_SCENE_SEARCH"))
            .await
            .unwrap();
        assert_eq!(back.id, first.id, "the same row is reactivated");
        assert!(back.subscribed);
        assert_eq!(back.subscribed_at, Some(at(10)));
        assert_eq!(back.unsubscribed_at, None);
        assert_eq!(back.subscribe_scene.as_deref(), Some("ADD_SCENE_SEARCH"));
        assert_eq!(store.count_followers().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_unsubscribe_we_never_saw_subscribe_creates_a_row() {
        let store = fresh_store().await;

        let follower = store.record_unsubscribe("o-old", at(9)).await.unwrap();

        assert!(!follower.subscribed);
        assert_eq!(follower.subscribed_at, None);
        assert_eq!(follower.unsubscribed_at, Some(at(9)));
        assert_eq!(store.find_follower("o-old").await.unwrap(), Some(follower));
    }

    #[tokio::test]
    async fn a_repeated_subscribe_changes_nothing_but_the_row_it_had() {
        let store = fresh_store().await;

        let first = store
            .record_subscribe("o-twice", at(8), None)
            .await
            .unwrap();
        let again = store
            .record_subscribe("o-twice", at(8), None)
            .await
            .unwrap();

        assert_eq!(again, first);
    }

    #[tokio::test]
    async fn a_late_retry_of_an_older_event_does_not_undo_a_newer_one() {
        let store = fresh_store().await;
        store.record_subscribe("o-late", at(8), None).await.unwrap();
        store.record_unsubscribe("o-late", at(9)).await.unwrap();

        let after_stale_subscribe = store.record_subscribe("o-late", at(8), None).await.unwrap();
        assert!(!after_stale_subscribe.subscribed);
        assert_eq!(after_stale_subscribe.unsubscribed_at, Some(at(9)));

        store
            .record_subscribe("o-late", at(10), None)
            .await
            .unwrap();
        let after_stale_unsubscribe = store.record_unsubscribe("o-late", at(9)).await.unwrap();
        assert!(after_stale_unsubscribe.subscribed);
        assert_eq!(after_stale_unsubscribe.subscribed_at, Some(at(10)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_subscribes_for_one_openid_leave_one_row() {
        let store = fresh_store().await;
        let subscribes = (0..8).map(|i| {
            let store = (*store).clone();
            tokio::spawn(async move {
                store
                    .record_subscribe("o-race", at(8) + Duration::seconds(i), None)
                    .await
            })
        });

        let mut ids = Vec::new();
        for subscribe in subscribes.collect::<Vec<_>>() {
            ids.push(subscribe.await.unwrap().unwrap().id);
        }

        ids.dedup();
        assert_eq!(ids.len(), 1, "every call saw the same row");
        let rows = followers::Entity::find().count(&store.db).await.unwrap();
        assert_eq!(rows, 1);
        let follower = store.find_follower("o-race").await.unwrap().unwrap();
        assert_eq!(
            follower.subscribed_at,
            Some(at(8) + Duration::seconds(7)),
            "the latest wins"
        );
    }
}
