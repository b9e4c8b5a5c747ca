//! The follower check (issue 6): pages through every follower, reads their remarks,
//! and sorts each one: bound to a student, remark following the rule, still within
//! the grace period after subscribing, or non-compliant. Then acts on the
//! non-compliant per `CAMPUSPAY_CLEANUP_ACTION`, and puts a bound student's drifted
//! remark back to the rule's, unless it is a dry run.
//!
//! WeChat has no API to remove a follower: the most it allows is a tag for the office
//! to see, or the blacklist. The report says so.
//!
//! One run at a time across instances (a lock in the cache). Each run has its row in
//! `follower_check_runs` from its start, saved after every page and at its end. An
//! API error (a quota, 45009, included) stops the run cleanly: it records the last
//! follower it finished with, in user/get's order, and the next real run starts
//! user/get after it. "Finished with" means sorted and, when needed, tagged or
//! blacklisted and its remark corrected: the followers are worked through in order,
//! so that what lies before the resume point is done and nothing after it is, and
//! the two runs together act on every follower exactly once. A dry run looks at
//! everything, changes nothing, and neither uses nor moves the resume point.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::cache::{CacheError, CacheLock, SharedCache};
use crate::clock::Clock;
use crate::config::{CleanupAction, CleanupConfig};
use crate::domain::remark::{remark_follows_rule, remark_for};
use crate::domain::student::name_key;
use crate::store::{
    AuditEntry, CheckCounts, CheckProgress, NewCheckRun, RemarkStudent, Store, StoreError,
};
use crate::wechat::api::{
    ApiClient, ApiError, BATCH_BLACKLIST_MAX, BATCH_TAGGING_MAX, BATCHGET_MAX, UserInfo, UserPage,
};

pub const LOCK_KEY: &str = "job:followers:lock";
/// Longer than a run over a large account can take.
const LOCK_TTL: Duration = Duration::from_secs(3600);
/// The tag given to non-compliant followers in `tag` mode.
pub const CLEANUP_TAG: &str = "待清理";
/// The report lists at most this many non-compliant openids.
pub const LISTED_MAX: usize = 50;
/// The audit log's action for a run.
pub const AUDIT_ACTION: &str = "followers.check";
/// The actor of runs started by `campus-pay followers cleanup`.
pub const ACTOR_CLI: &str = "cli";
/// The actor of runs started by `CAMPUSPAY_CLEANUP_SCHEDULE`.
pub const ACTOR_SCHEDULE: &str = "schedule";
/// WeChat's answer to a `next_openid` it does not know (the follower left).
const INVALID_OPENID: i64 = 40003;

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
    /// The run's row in `follower_check_runs`.
    pub run_id: i64,
    pub action: CleanupAction,
    pub dry_run: bool,
    /// Followers finished with by this run (those before its resume point when it
    /// stopped early, or after where it resumed).
    pub counts: CheckCounts,
    /// Every non-compliant follower finished with, in WeChat's order.
    pub non_compliant: Vec<String>,
    /// Why the run stopped early, if it did; the counts are those so far.
    pub stopped: Option<String>,
    /// The follower this run started after, when it carried on after a stopped run.
    pub resumed_after: Option<String>,
    /// Where the next real run starts: set only when a real run stopped early.
    pub resume_after: Option<String>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "关注者检查（{}）", mode_label(self.dry_run, self.action))?;
        if let Some(openid) = &self.resumed_after {
            writeln!(f, "接续上次中途停止的检查：从 {openid} 之后开始")?;
        }
        let counts = &self.counts;
        writeln!(
            f,
            "关注者共 {}，本次检查 {}：已绑定 {}，备注合规 {}，宽限期内 {}，已取关 {}，不合规 {}",
            counts.total,
            counts.checked,
            counts.bound,
            counts.compliant,
            counts.within_grace,
            counts.left,
            self.non_compliant.len()
        )?;
        match (self.dry_run, self.action) {
            (false, CleanupAction::Tag) => writeln!(f, "已打标签：{}", counts.acted_on)?,
            (false, CleanupAction::Blacklist) => writeln!(f, "已拉黑：{}", counts.acted_on)?,
            _ => {}
        }
        if !self.dry_run {
            writeln!(f, "已更正绑定学生的备注：{}", counts.remarks_corrected)?;
        }
        writeln!(f, "注意：{NO_REMOVAL_API}")?;
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
            writeln!(f, "检查中途停止：{reason}（以上为停止前已处理完的关注者）")?;
            match &self.resume_after {
                Some(openid) => writeln!(f, "下次检查将从 {openid} 之后继续")?,
                None if !self.dry_run => writeln!(f, "下次检查将从头开始")?,
                None => {}
            }
        }
        Ok(())
    }
}

/// What the report says of removal, in the CLI and on the console.
pub const NO_REMOVAL_API: &str = "微信没有移除关注者的接口，本检查不会也无法让任何人取消关注。";

/// How a run's mode reads in the report and on the console.
pub fn mode_label(dry_run: bool, action: CleanupAction) -> &'static str {
    match (dry_run, action) {
        (true, _) => "试运行（未对微信做任何改动）",
        (false, CleanupAction::Report) => "仅报告",
        (false, CleanupAction::Tag) => "打标签“待清理”",
        (false, CleanupAction::Blacklist) => "拉黑",
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

/// What a run needs.
#[derive(Clone)]
pub struct FollowerCheck {
    pub api: ApiClient,
    pub store: Store,
    pub cache: SharedCache,
    pub clock: Clock,
    pub config: CleanupConfig,
}

impl FollowerCheck {
    /// One whole run, if no other instance is running one. An API error stops the run
    /// cleanly: the report then carries the counts so far and the reason.
    pub async fn run(&self, actor: &str, dry_run: bool) -> Result<CheckReport, CheckError> {
        self.start(actor, dry_run).await?.finish().await
    }

    /// Takes the lock and records the run's start (with its audit row): from here the
    /// run is visible. [`StartedCheck::finish`] does the work.
    pub async fn start(&self, actor: &str, dry_run: bool) -> Result<StartedCheck, CheckError> {
        let Some(lock) = CacheLock::try_acquire(&self.cache, LOCK_KEY, LOCK_TTL).await? else {
            return Err(CheckError::AlreadyRunning);
        };
        match self.record_start(actor, dry_run).await {
            Ok((run_id, resumed_after)) => Ok(StartedCheck {
                check: self.clone(),
                lock,
                run_id,
                dry_run,
                resumed_after,
            }),
            Err(error) => {
                release(lock).await;
                Err(error.into())
            }
        }
    }

    async fn record_start(
        &self,
        actor: &str,
        dry_run: bool,
    ) -> Result<(i64, Option<String>), StoreError> {
        let resumed_after = if dry_run {
            None
        } else {
            self.store.check_resume_point().await?
        };
        let action = self.config.action.as_str();
        let audit = AuditEntry::new(actor, AUDIT_ACTION, "").after(json!({
            "dry_run": dry_run,
            "action": action,
            "resumed_after": resumed_after,
        }));
        let run = NewCheckRun {
            actor,
            dry_run,
            action,
            resume_after: resumed_after.as_deref(),
        };
        let run_id = self
            .store
            .start_check_run(&run, &audit, self.clock.now())
            .await?;
        Ok((run_id, resumed_after))
    }
}

/// A run whose row exists and which holds the lock.
pub struct StartedCheck {
    check: FollowerCheck,
    lock: CacheLock,
    run_id: i64,
    dry_run: bool,
    resumed_after: Option<String>,
}

impl StartedCheck {
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// Works through every follower (from the resume point, for a real run), saves
    /// the report and lets the lock go.
    pub async fn finish(self) -> Result<CheckReport, CheckError> {
        let StartedCheck {
            check,
            lock,
            run_id,
            dry_run,
            resumed_after,
        } = self;
        let mut run = Run::new(&check, run_id, dry_run, resumed_after);
        let outcome = run.followers().await;
        let saved = run.end(outcome, check.clock.now()).await;
        release(lock).await;
        let report = saved?;
        tracing::info!(
            run = report.run_id,
            checked = report.counts.checked,
            non_compliant = report.non_compliant.len(),
            acted_on = report.counts.acted_on,
            remarks_corrected = report.counts.remarks_corrected,
            stopped = report.stopped.is_some(),
            "follower check"
        );
        Ok(report)
    }
}

async fn release(lock: CacheLock) {
    if let Err(error) = lock.release().await {
        tracing::warn!(%error, "cannot release the follower check lock; it expires by itself");
    }
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

/// A sorted follower the run has not finished with yet.
struct Sorted {
    openid: String,
    standing: Standing,
    /// A bound student's remark, when theirs drifted from it.
    remark_due: Option<String>,
}

/// What finishing with a follower takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Nothing,
    /// Tag or blacklist it.
    Act,
    CorrectRemark,
}

struct Run<'a> {
    check: &'a FollowerCheck,
    run_id: i64,
    now: DateTime<Utc>,
    dry_run: bool,
    resumed_after: Option<String>,
    /// Sorted followers not finished with, in WeChat's order.
    queue: VecDeque<Sorted>,
    counts: CheckCounts,
    non_compliant: Vec<String>,
    /// The last follower finished with (or where the run started).
    done_through: Option<String>,
    tag_id: Option<i64>,
}

impl<'a> Run<'a> {
    fn new(
        check: &'a FollowerCheck,
        run_id: i64,
        dry_run: bool,
        resumed_after: Option<String>,
    ) -> Self {
        Run {
            check,
            run_id,
            now: check.clock.now(),
            dry_run,
            done_through: resumed_after.clone(),
            resumed_after,
            queue: VecDeque::new(),
            counts: CheckCounts::default(),
            non_compliant: Vec::new(),
            tag_id: None,
        }
    }

    /// Every page of user/get, from the resume point; the report is saved after each.
    async fn followers(&mut self) -> Result<(), RunError> {
        let mut next = self.resumed_after.clone();
        let mut first = true;
        loop {
            let page = self.page(next.as_deref(), first).await?;
            first = false;
            self.counts.total = page.total;
            for chunk in page.openids.chunks(BATCHGET_MAX) {
                self.sort(chunk).await?;
                self.work_through(false).await?;
            }
            let next_openid = match page.next_openid {
                Some(openid) if !page.openids.is_empty() => openid,
                _ => break,
            };
            self.save(None, None).await?;
            next = Some(next_openid);
        }
        self.work_through(true).await
    }

    /// One page. A resume point WeChat no longer knows (that follower left) restarts
    /// the run from the beginning rather than failing every night.
    async fn page(&mut self, next: Option<&str>, first: bool) -> Result<UserPage, RunError> {
        match self.check.api.user_get(next).await {
            Err(error) if first && next.is_some() && error.errcode() == Some(INVALID_OPENID) => {
                tracing::warn!(
                    "the follower check's resume point is gone; starting from the beginning"
                );
                self.resumed_after = None;
                self.done_through = None;
                Ok(self.check.api.user_get(None).await?)
            }
            page => Ok(page?),
        }
    }

    /// Reads and sorts up to [`BATCHGET_MAX`] followers into the queue.
    async fn sort(&mut self, openids: &[String]) -> Result<(), RunError> {
        let openids: Vec<&str> = openids.iter().map(String::as_str).collect();
        let infos = self.check.api.user_info_batchget(&openids).await?;
        let bound = self.check.store.bound_students(&openids).await?;
        let remarks: Vec<&str> = infos
            .iter()
            .filter(|info| info.subscribe && !bound.contains_key(&info.openid))
            .map(|info| info.remark.as_str())
            .filter(|remark| !remark.trim().is_empty())
            .collect();
        let students = self.check.store.students_named_in(&remarks).await?;
        // Keyed as remarks carry names (no whitespace): `阿依 古丽` is `阿依古丽` there.
        let mut by_name: HashMap<String, Vec<RemarkStudent>> = HashMap::new();
        for student in &students {
            by_name
                .entry(name_key(&student.name))
                .or_default()
                .push(student.clone());
        }
        for info in &infos {
            let remark = name_key(&info.remark);
            let candidates: Vec<RemarkStudent> = by_name
                .iter()
                .filter(|(name, _)| remark.ends_with(name.as_str()))
                .flat_map(|(_, students)| students.iter().cloned())
                .collect();
            let student = bound.get(&info.openid);
            let standing = classify(
                info,
                student.is_some(),
                &candidates,
                self.now,
                self.check.config.grace_days,
            );
            let remark_due = match (standing, student) {
                (Standing::Bound, Some(student)) => drifted(&info.remark, student),
                _ => None,
            };
            self.queue.push_back(Sorted {
                openid: info.openid.clone(),
                standing,
                remark_due,
            });
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
        Ok(())
    }

    fn work(&self, sorted: &Sorted) -> Work {
        if self.dry_run {
            return Work::Nothing;
        }
        if sorted.remark_due.is_some() {
            return Work::CorrectRemark;
        }
        if sorted.standing == Standing::NonCompliant
            && self.check.config.action != CleanupAction::Report
        {
            return Work::Act;
        }
        Work::Nothing
    }

    /// Finishes with the queue's followers in order, as far as it can: a tag or
    /// blacklist call waits until it is full (WeChat's batch size), unless `flush`
    /// (the end of the list) or a remark to correct comes after it.
    async fn work_through(&mut self, flush: bool) -> Result<(), RunError> {
        loop {
            while self
                .queue
                .front()
                .is_some_and(|sorted| self.work(sorted) == Work::Nothing)
            {
                self.finish_front(1);
            }
            let Some(front) = self.queue.front() else {
                return Ok(());
            };
            if self.work(front) == Work::CorrectRemark {
                self.correct_front_remark().await?;
                continue;
            }
            let (members, blocked) = self.next_batch();
            if members.len() < self.batch_max() && !blocked && !flush {
                return Ok(());
            }
            let openids: Vec<String> = members
                .iter()
                .map(|&at| self.queue[at].openid.clone())
                .collect();
            self.act(&openids).await?;
            self.counts.acted_on += openids.len() as u64;
            let through = members.last().map_or(0, |last| last + 1);
            self.finish_front(through);
        }
    }

    /// The queue positions of the next tag or blacklist call (up to the batch size,
    /// not past a remark to correct), and whether a remark to correct ends it.
    fn next_batch(&self) -> (Vec<usize>, bool) {
        let mut members = Vec::new();
        for (at, sorted) in self.queue.iter().enumerate() {
            match self.work(sorted) {
                Work::CorrectRemark => return (members, true),
                Work::Act => {
                    members.push(at);
                    if members.len() == self.batch_max() {
                        break;
                    }
                }
                Work::Nothing => {}
            }
        }
        (members, false)
    }

    fn batch_max(&self) -> usize {
        match self.check.config.action {
            CleanupAction::Blacklist => BATCH_BLACKLIST_MAX,
            CleanupAction::Tag | CleanupAction::Report => BATCH_TAGGING_MAX,
        }
    }

    async fn correct_front_remark(&mut self) -> Result<(), RunError> {
        let Some(sorted) = self.queue.front() else {
            return Ok(());
        };
        if let Some(remark) = &sorted.remark_due {
            self.check.api.update_remark(&sorted.openid, remark).await?;
            self.check
                .store
                .set_follower_remark(&sorted.openid, remark, self.check.clock.now())
                .await?;
            self.counts.remarks_corrected += 1;
        }
        self.finish_front(1);
        Ok(())
    }

    /// Counts the queue's first `count` followers as finished with.
    fn finish_front(&mut self, count: usize) {
        for _ in 0..count {
            let Some(sorted) = self.queue.pop_front() else {
                return;
            };
            self.counts.checked += 1;
            match sorted.standing {
                Standing::Bound => self.counts.bound += 1,
                Standing::Compliant => self.counts.compliant += 1,
                Standing::WithinGrace => self.counts.within_grace += 1,
                Standing::Left => self.counts.left += 1,
                Standing::NonCompliant => self.non_compliant.push(sorted.openid.clone()),
            }
            self.done_through = Some(sorted.openid);
        }
    }

    async fn act(&mut self, openids: &[String]) -> Result<(), RunError> {
        let openids: Vec<&str> = openids.iter().map(String::as_str).collect();
        match self.check.config.action {
            CleanupAction::Report => {}
            CleanupAction::Tag => {
                let tag_id = self.cleanup_tag().await?;
                self.check.api.batch_tagging(tag_id, &openids).await?;
            }
            CleanupAction::Blacklist => self.check.api.batch_blacklist(&openids).await?,
        }
        Ok(())
    }

    /// The 待清理 tag's id, created if the account has none.
    async fn cleanup_tag(&mut self) -> Result<i64, ApiError> {
        if let Some(id) = self.tag_id {
            return Ok(id);
        }
        let existing = self
            .check
            .api
            .tags_get()
            .await?
            .into_iter()
            .find(|tag| tag.name == CLEANUP_TAG);
        let id = match existing {
            Some(tag) => tag.id,
            None => self.check.api.tags_create(CLEANUP_TAG).await?.id,
        };
        self.tag_id = Some(id);
        Ok(id)
    }

    /// Where the next real run would start if this one ended now.
    fn resume_point(&self) -> Option<&str> {
        if self.dry_run {
            None
        } else {
            self.done_through.as_deref()
        }
    }

    async fn save(
        &self,
        stopped: Option<&str>,
        finished_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let ended_at_the_end = finished_at.is_some() && stopped.is_none();
        let progress = CheckProgress {
            counts: self.counts,
            non_compliant: &self.non_compliant,
            stopped,
            resume_after: if ended_at_the_end {
                None
            } else {
                self.resume_point()
            },
            finished_at,
        };
        self.check
            .store
            .save_check_run(self.run_id, &progress)
            .await
    }

    /// Records how the run ended and makes its report. A database failure is still
    /// written down when the database lets us (the row then says why it stopped).
    async fn end(
        self,
        outcome: Result<(), RunError>,
        now: DateTime<Utc>,
    ) -> Result<CheckReport, CheckError> {
        let stopped = match outcome {
            Ok(()) => None,
            Err(RunError::Api(error)) => {
                tracing::warn!(%error, "follower check stopped on a WeChat error");
                Some(error.to_string())
            }
            Err(RunError::Store(error)) => {
                let reason = format!("数据库错误：{error}");
                if let Err(also) = self.save(Some(&reason), Some(now)).await {
                    tracing::warn!(error = ?also, "cannot record the follower check's end");
                }
                return Err(error.into());
            }
        };
        self.save(stopped.as_deref(), Some(now)).await?;
        let resume_after = match stopped {
            Some(_) => self.resume_point().map(str::to_owned),
            None => None,
        };
        Ok(CheckReport {
            run_id: self.run_id,
            action: self.check.config.action,
            dry_run: self.dry_run,
            counts: self.counts,
            non_compliant: self.non_compliant,
            stopped,
            resumed_after: self.resumed_after,
            resume_after,
        })
    }
}

/// The rule's remark for a bound student, when theirs is not exactly it.
fn drifted(remark: &str, student: &RemarkStudent) -> Option<String> {
    let expected = remark_for(student.grade, &student.class_name, &student.name);
    (remark != expected).then_some(expected)
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

    fn report(non_compliant: usize) -> CheckReport {
        CheckReport {
            run_id: 1,
            action: CleanupAction::Tag,
            dry_run: false,
            counts: CheckCounts {
                total: 60,
                checked: 60,
                acted_on: non_compliant as u64,
                remarks_corrected: 2,
                ..CheckCounts::default()
            },
            non_compliant: (0..non_compliant).map(|i| format!("o{i}")).collect(),
            stopped: None,
            resumed_after: None,
            resume_after: None,
        }
    }

    #[test]
    fn the_report_says_wechat_cannot_remove_followers_and_lists_fifty() {
        let text = report(60).to_string();
        assert!(text.contains("微信没有移除关注者的接口"), "{text}");
        assert!(
            text.contains("  o49\n") && !text.contains("  o50\n"),
            "{text}"
        );
        assert!(text.contains("已打标签：60"), "{text}");
        assert!(text.contains("已更正绑定学生的备注：2"), "{text}");
        assert!(
            !text.contains("接续") && !text.contains("检查中途停止"),
            "{text}"
        );
    }

    #[test]
    fn the_report_says_where_a_run_resumed_and_where_the_next_will() {
        let mut resumed = report(3);
        resumed.resumed_after = Some("o_before".into());
        resumed.stopped = Some("boom".into());
        resumed.resume_after = Some("o_last".into());
        let text = resumed.to_string();
        assert!(
            text.contains("接续上次中途停止的检查：从 o_before 之后开始"),
            "{text}"
        );
        assert!(text.contains("检查中途停止：boom"), "{text}");
        assert!(text.contains("下次检查将从 o_last 之后继续"), "{text}");
    }

    #[test]
    fn a_bound_students_remark_drifts_when_it_is_not_the_rules() {
        let student = &zhang_san()[0];
        assert_eq!(drifted("26汽修1班张三", student), None);
        assert_eq!(drifted("随便", student).as_deref(), Some("26汽修1班张三"));
        assert_eq!(drifted("", student).as_deref(), Some("26汽修1班张三"));
    }
}
