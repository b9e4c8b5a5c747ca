//! The follower check (issue 6): pages through every follower, reads their remarks,
//! and sorts each one: bound to a student, remark following the rule, still within
//! the grace period after subscribing, or non-compliant. Then acts on the
//! non-compliant per `CAMPUSPAY_CLEANUP_ACTION`, unless it is a dry run.
//!
//! WeChat has no API to remove a follower: the most it allows is a tag for the office
//! to see, or the blacklist. The report says so.
//!
//! Not yet: storing each run's report, the schedule, resuming where a failed run
//! stopped, and correcting a bound student's drifted remark.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::cache::{CacheError, CacheLock, SharedCache};
use crate::clock::Clock;
use crate::config::{CleanupAction, CleanupConfig};
use crate::domain::remark::remark_follows_rule;
use crate::store::{RemarkStudent, Store, StoreError};
use crate::wechat::api::{
    ApiClient, ApiError, BATCH_BLACKLIST_MAX, BATCH_TAGGING_MAX, BATCHGET_MAX, UserInfo,
};

const LOCK_KEY: &str = "job:followers:lock";
/// Longer than a run over a large account can take.
const LOCK_TTL: Duration = Duration::from_secs(3600);
/// The tag given to non-compliant followers in `tag` mode.
pub const CLEANUP_TAG: &str = "待清理";
/// The report lists at most this many non-compliant openids.
pub const LISTED_MAX: usize = 50;

/// Where one follower stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Bound to a student: kept, whatever the remark.
    Bound,
    /// The remark follows the rule for an existing student.
    Compliant,
    /// Not compliant yet, but subscribed within the grace period.
    WithinGrace,
    NonCompliant,
    /// No longer follows (left between the list and the read).
    Left,
}

/// Sorts one follower. `candidates` are the students whose name may end the remark.
pub fn classify(
    info: &UserInfo,
    bound: bool,
    candidates: &[RemarkStudent],
    now: DateTime<Utc>,
    grace_days: u32,
) -> Standing {
    if !info.subscribe {
        return Standing::Left;
    }
    if bound {
        return Standing::Bound;
    }
    let follows = candidates.iter().any(|student| {
        remark_follows_rule(
            &info.remark,
            student.grade,
            &student.class_name,
            &student.name,
        )
    });
    if follows {
        return Standing::Compliant;
    }
    let grace = TimeDelta::days(i64::from(grace_days));
    match info.subscribe_time {
        Some(subscribed) if now - subscribed < grace => Standing::WithinGrace,
        _ => Standing::NonCompliant,
    }
}

/// What one run found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub action: CleanupAction,
    pub dry_run: bool,
    /// Followers as user/get counts them.
    pub total: u64,
    /// Followers sorted so far.
    pub checked: u64,
    pub bound: u64,
    pub compliant: u64,
    pub within_grace: u64,
    pub left: u64,
    /// Every non-compliant follower found, in WeChat's order.
    pub non_compliant: Vec<String>,
    /// Non-compliant followers tagged or blacklisted upstream by this run.
    pub acted_on: u64,
    /// Why the run stopped early, if it did; the counts are those so far.
    pub stopped: Option<String>,
}

impl CheckReport {
    fn new(config: &CleanupConfig, dry_run: bool) -> Self {
        CheckReport {
            action: config.action,
            dry_run,
            total: 0,
            checked: 0,
            bound: 0,
            compliant: 0,
            within_grace: 0,
            left: 0,
            non_compliant: Vec::new(),
            acted_on: 0,
            stopped: None,
        }
    }

    fn count(&mut self, openid: &str, standing: Standing) {
        self.checked += 1;
        match standing {
            Standing::Bound => self.bound += 1,
            Standing::Compliant => self.compliant += 1,
            Standing::WithinGrace => self.within_grace += 1,
            Standing::Left => self.left += 1,
            Standing::NonCompliant => self.non_compliant.push(openid.to_owned()),
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match (self.dry_run, self.action) {
            (true, _) => "试运行（未对微信做任何改动）",
            (false, CleanupAction::Report) => "仅报告",
            (false, CleanupAction::Tag) => "打标签“待清理”",
            (false, CleanupAction::Blacklist) => "拉黑",
        };
        writeln!(f, "关注者检查（{mode}）")?;
        writeln!(
            f,
            "关注者共 {}，已检查 {}：已绑定 {}，备注合规 {}，宽限期内 {}，已取关 {}，不合规 {}",
            self.total,
            self.checked,
            self.bound,
            self.compliant,
            self.within_grace,
            self.left,
            self.non_compliant.len()
        )?;
        match (self.dry_run, self.action) {
            (false, CleanupAction::Tag) => writeln!(f, "已打标签：{}", self.acted_on)?,
            (false, CleanupAction::Blacklist) => writeln!(f, "已拉黑：{}", self.acted_on)?,
            _ => {}
        }
        writeln!(
            f,
            "注意：微信没有移除关注者的接口，本检查不会也无法让任何人取消关注。"
        )?;
        if !self.non_compliant.is_empty() {
            let shown = self.non_compliant.len().min(LISTED_MAX);
            writeln!(
                f,
                "不合规的关注者（前 {shown} 个，共 {}）：",
                self.non_compliant.len()
            )?;
            for openid in &self.non_compliant[..shown] {
                writeln!(f, "  {openid}")?;
            }
        }
        if let Some(reason) = &self.stopped {
            writeln!(f, "检查中途停止：{reason}（以上为停止前的结果）")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("another follower check is running")]
    AlreadyRunning,
    #[error("follower check lock: {0}")]
    Lock(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One whole run, if no other instance is running one. An API error stops the run
/// cleanly: the report then carries the counts so far and the reason.
pub async fn run_check(
    api: &ApiClient,
    store: &Store,
    cache: &SharedCache,
    clock: &Clock,
    config: &CleanupConfig,
    dry_run: bool,
) -> Result<CheckReport, CheckError> {
    let Some(lock) = CacheLock::try_acquire(cache, LOCK_KEY, LOCK_TTL).await? else {
        return Err(CheckError::AlreadyRunning);
    };
    let mut run = Run {
        api,
        store,
        now: clock.now(),
        config,
        dry_run,
        report: CheckReport::new(config, dry_run),
        tag_id: None,
    };
    let outcome = run.pages().await;
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, "cannot release the follower check lock; it expires by itself");
    }
    let mut report = run.report;
    match outcome {
        Ok(()) => {}
        Err(RunError::Api(error)) => {
            tracing::warn!(%error, "follower check stopped on a WeChat error");
            report.stopped = Some(error.to_string());
        }
        Err(RunError::Store(error)) => return Err(error.into()),
    }
    tracing::info!(
        checked = report.checked,
        non_compliant = report.non_compliant.len(),
        acted_on = report.acted_on,
        "follower check"
    );
    Ok(report)
}

enum RunError {
    Api(ApiError),
    Store(StoreError),
}

impl From<ApiError> for RunError {
    fn from(error: ApiError) -> Self {
        RunError::Api(error)
    }
}

impl From<StoreError> for RunError {
    fn from(error: StoreError) -> Self {
        RunError::Store(error)
    }
}

struct Run<'a> {
    api: &'a ApiClient,
    store: &'a Store,
    now: DateTime<Utc>,
    config: &'a CleanupConfig,
    dry_run: bool,
    report: CheckReport,
    tag_id: Option<i64>,
}

impl Run<'_> {
    async fn pages(&mut self) -> Result<(), RunError> {
        let mut next: Option<String> = None;
        loop {
            let page = self.api.user_get(next.as_deref()).await?;
            self.report.total = page.total;
            if page.openids.is_empty() {
                return Ok(());
            }
            let mut non_compliant = Vec::new();
            for chunk in page.openids.chunks(BATCHGET_MAX) {
                non_compliant.extend(self.sort(chunk).await?);
            }
            self.act(&non_compliant).await?;
            match page.next_openid {
                Some(openid) => next = Some(openid),
                None => return Ok(()),
            }
        }
    }

    /// Sorts up to [`BATCHGET_MAX`] followers; returns the non-compliant ones.
    async fn sort(&mut self, openids: &[String]) -> Result<Vec<String>, RunError> {
        let openids: Vec<&str> = openids.iter().map(String::as_str).collect();
        let infos = self.api.user_info_batchget(&openids).await?;
        let bound = self.store.bound_openids(&openids).await?;
        let remarks: Vec<&str> = infos
            .iter()
            .filter(|info| info.subscribe && !bound.contains(&info.openid))
            .map(|info| info.remark.as_str())
            .filter(|remark| !remark.trim().is_empty())
            .collect();
        let students = self.store.students_named_in(&remarks).await?;
        let mut by_name: HashMap<&str, Vec<RemarkStudent>> = HashMap::new();
        for student in &students {
            by_name
                .entry(student.name.as_str())
                .or_default()
                .push(student.clone());
        }
        let mut non_compliant = Vec::new();
        for info in &infos {
            let candidates: Vec<RemarkStudent> = by_name
                .iter()
                .filter(|(name, _)| without_whitespace(&info.remark).ends_with(*name))
                .flat_map(|(_, students)| students.iter().cloned())
                .collect();
            let standing = classify(
                info,
                bound.contains(&info.openid),
                &candidates,
                self.now,
                self.config.grace_days,
            );
            self.report.count(&info.openid, standing);
            if standing == Standing::NonCompliant {
                non_compliant.push(info.openid.clone());
            }
        }
        // Followers WeChat did not answer for are not counted as checked.
        let answered: HashSet<&str> = infos.iter().map(|info| info.openid.as_str()).collect();
        let missing = openids
            .iter()
            .filter(|openid| !answered.contains(*openid))
            .count();
        if missing > 0 {
            tracing::warn!(missing, "user/info/batchget left followers out");
        }
        Ok(non_compliant)
    }

    async fn act(&mut self, openids: &[String]) -> Result<(), RunError> {
        if self.dry_run || openids.is_empty() {
            return Ok(());
        }
        let openids: Vec<&str> = openids.iter().map(String::as_str).collect();
        match self.config.action {
            CleanupAction::Report => {}
            CleanupAction::Tag => {
                let tag_id = self.cleanup_tag().await?;
                for chunk in openids.chunks(BATCH_TAGGING_MAX) {
                    self.api.batch_tagging(tag_id, chunk).await?;
                    self.report.acted_on += chunk.len() as u64;
                }
            }
            CleanupAction::Blacklist => {
                for chunk in openids.chunks(BATCH_BLACKLIST_MAX) {
                    self.api.batch_blacklist(chunk).await?;
                    self.report.acted_on += chunk.len() as u64;
                }
            }
        }
        Ok(())
    }

    /// The 待清理 tag's id, created if the account has none.
    async fn cleanup_tag(&mut self) -> Result<i64, ApiError> {
        if let Some(id) = self.tag_id {
            return Ok(id);
        }
        let existing = self
            .api
            .tags_get()
            .await?
            .into_iter()
            .find(|tag| tag.name == CLEANUP_TAG);
        let id = match existing {
            Some(tag) => tag.id,
            None => self.api.tags_create(CLEANUP_TAG).await?.id,
        };
        self.tag_id = Some(id);
        Ok(id)
    }
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    fn info(remark: &str, days_ago: i64) -> UserInfo {
        UserInfo {
            openid: "o1".into(),
            subscribe: true,
            subscribe_time: Some(now() - TimeDelta::days(days_ago)),
            remark: remark.into(),
        }
    }

    fn zhang_san() -> Vec<RemarkStudent> {
        vec![RemarkStudent {
            name: "张三".into(),
            grade: 2026,
            class_name: "汽修1班".into(),
        }]
    }

    #[test]
    fn a_bound_follower_is_kept_whatever_the_remark() {
        assert_eq!(
            classify(&info("", 100), true, &[], now(), 7),
            Standing::Bound
        );
    }

    #[test]
    fn a_remark_following_the_rule_for_a_student_complies() {
        for remark in ["26汽修1班张三", "26汽修张三", "2026汽修1班 张三"] {
            assert_eq!(
                classify(&info(remark, 100), false, &zhang_san(), now(), 7),
                Standing::Compliant,
                "{remark}"
            );
        }
    }

    #[test]
    fn a_remark_for_no_student_or_the_wrong_class_does_not() {
        for remark in ["张三", "25汽修1班张三", "26电商张三", "", "🐱"] {
            assert_eq!(
                classify(&info(remark, 100), false, &zhang_san(), now(), 7),
                Standing::NonCompliant,
                "{remark}"
            );
        }
        assert_eq!(
            classify(&info("26汽修1班张三", 100), false, &[], now(), 7),
            Standing::NonCompliant
        );
    }

    #[test]
    fn new_followers_have_the_grace_period() {
        assert_eq!(
            classify(&info("", 6), false, &[], now(), 7),
            Standing::WithinGrace
        );
        assert_eq!(
            classify(&info("", 7), false, &[], now(), 7),
            Standing::NonCompliant
        );
        assert_eq!(
            classify(&info("", 0), false, &[], now(), 0),
            Standing::NonCompliant
        );
    }

    #[test]
    fn those_who_left_are_counted_apart() {
        let mut left = info("", 100);
        left.subscribe = false;
        left.subscribe_time = None;
        assert_eq!(classify(&left, true, &[], now(), 7), Standing::Left);
    }

    #[test]
    fn the_report_says_wechat_cannot_remove_followers_and_lists_fifty() {
        let mut report = CheckReport {
            action: CleanupAction::Tag,
            dry_run: false,
            total: 60,
            checked: 60,
            bound: 0,
            compliant: 0,
            within_grace: 0,
            left: 0,
            non_compliant: (0..60).map(|i| format!("o{i}")).collect(),
            acted_on: 60,
            stopped: None,
        };
        let text = report.to_string();
        assert!(text.contains("微信没有移除关注者的接口"), "{text}");
        assert!(
            text.contains("  o49\n") && !text.contains("  o50\n"),
            "{text}"
        );
        assert!(text.contains("已打标签：60"), "{text}");
        report.stopped = Some("boom".into());
        assert!(report.to_string().contains("检查中途停止：boom"));
    }
}
