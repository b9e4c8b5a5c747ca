//! The follower check over the WeChat sandbox: thousands of followers across pages,
//! WeChat's batch limits, dry runs, tags, the blacklist, and a failure mid-run.

use std::collections::HashSet;
use std::time::Duration;

use campus_pay::cache::CacheLock;
use campus_pay::config::{CleanupAction, CleanupConfig};
use campus_pay::jobs::followers::{CLEANUP_TAG, CheckError, CheckReport, run_check};
use campus_pay::sandbox::wechat_api::{SandboxFollower, paths};
use chrono::TimeDelta;
use serde_json::Value;

use crate::support::seed::{LI_SI, ZHANG_SAN};
use crate::support::{TestApp, spawn_app};

const GRACE_DAYS: u32 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bound,
    Compliant,
    New,
    NonCompliant,
}

/// Followers `o{i}`: the first two bound to 张三 and 李四 (with useless remarks),
/// then a rotation of compliant remarks, newcomers, and two kinds of non-compliant.
fn kind(i: usize) -> Kind {
    match (i, i % 4) {
        (0 | 1, _) => Kind::Bound,
        (_, 0) => Kind::Compliant,
        (_, 1) => Kind::New,
        _ => Kind::NonCompliant,
    }
}

async fn app_with_followers(count: usize) -> TestApp {
    let app = spawn_app().await;
    app.seed_students_and_fees().await;
    let now = app.clock.now();
    let store = &app.state.store;
    for (openid, id_card) in [("o0", ZHANG_SAN), ("o1", LI_SI)] {
        let student = store
            .find_student_by_id_card(id_card)
            .await
            .unwrap()
            .expect("seeded");
        store.bind_wechat(student.id, openid, now).await.unwrap();
    }
    let compliant = [
        "26汽修1班张三",
        "25电子商务李四",
        "26 汽修 王五",
        "2026汽修王五",
    ];
    let non_compliant = ["张三", "", "🐱喵", "18汽修张三", "26电子商务李四"];
    let followers = (0..count)
        .map(|i| {
            let old = now - TimeDelta::days(30);
            let (subscribe_time, remark) = match kind(i) {
                Kind::Bound => (old, "随便".to_owned()),
                Kind::Compliant => (old, compliant[i / 4 % compliant.len()].to_owned()),
                Kind::New => (now - TimeDelta::days(1), String::new()),
                Kind::NonCompliant => (old, non_compliant[i % non_compliant.len()].to_owned()),
            };
            SandboxFollower {
                openid: format!("o{i}"),
                subscribe_time,
                remark,
            }
        })
        .collect();
    app.sandbox.add_followers(followers);
    app
}

fn config(app: &TestApp, action: CleanupAction) -> CleanupConfig {
    CleanupConfig {
        action,
        grace_days: GRACE_DAYS,
        ..app.state.config.cleanup.clone()
    }
}

async fn check(app: &TestApp, action: CleanupAction, dry_run: bool) -> CheckReport {
    try_check(app, action, dry_run)
        .await
        .expect("the check runs")
}

async fn try_check(
    app: &TestApp,
    action: CleanupAction,
    dry_run: bool,
) -> Result<CheckReport, CheckError> {
    let api = &app.state.account.as_ref().expect("configured").api;
    run_check(
        api,
        &app.state.store,
        &app.state.cache,
        &app.clock,
        &config(app, action),
        dry_run,
    )
    .await
}

fn expected_non_compliant(count: usize) -> Vec<String> {
    (0..count)
        .filter(|&i| kind(i) == Kind::NonCompliant)
        .map(|i| format!("o{i}"))
        .collect()
}

fn count_of(count: usize, wanted: Kind) -> u64 {
    (0..count).filter(|&i| kind(i) == wanted).count() as u64
}

/// The openid lists sent to `api`, one per call.
fn sent_lists(app: &TestApp, api: &str, field: &str) -> Vec<usize> {
    app.sandbox
        .calls()
        .into_iter()
        .filter(|call| call.api == api)
        .map(|call| {
            let body: Value = serde_json::from_str(&call.body).unwrap();
            body[field].as_array().unwrap().len()
        })
        .collect()
}

#[tokio::test]
async fn the_check_sorts_25000_followers_and_tags_exactly_the_non_compliant() {
    const COUNT: usize = 25_000;
    let app = app_with_followers(COUNT).await;

    let dry = check(&app, CleanupAction::Tag, true).await;
    assert_eq!(dry.stopped, None);
    assert_eq!(dry.total, COUNT as u64);
    assert_eq!(dry.checked, COUNT as u64);
    assert_eq!(dry.bound, 2);
    assert_eq!(dry.compliant, count_of(COUNT, Kind::Compliant));
    assert_eq!(dry.within_grace, count_of(COUNT, Kind::New));
    assert_eq!(dry.left, 0);
    assert_eq!(dry.non_compliant, expected_non_compliant(COUNT));
    assert_eq!(dry.acted_on, 0);
    // Three pages of at most 10,000, and the empty one that says the list ended.
    assert_eq!(app.sandbox.calls_to(paths::USER_GET), 4);
    let batches = sent_lists(&app, paths::USER_INFO_BATCHGET, "user_list");
    assert_eq!(batches.len(), 250);
    assert!(batches.iter().all(|&size| size == 100), "{batches:?}");
    // A dry run changes nothing upstream.
    for api in [
        paths::TAGS_CREATE,
        paths::BATCH_TAGGING,
        paths::BATCH_BLACKLIST,
    ] {
        assert_eq!(app.sandbox.calls_to(api), 0, "{api}");
    }
    let text = dry.to_string();
    assert!(text.contains("试运行") && text.contains("微信没有移除关注者的接口"));

    let tagged = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(tagged.stopped, None);
    assert_eq!(tagged.non_compliant, dry.non_compliant);
    assert_eq!(tagged.acted_on, dry.non_compliant.len() as u64);
    let tags = app.sandbox.tags();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].1, CLEANUP_TAG);
    let batches = app.sandbox.tag_batches();
    assert!(
        batches
            .iter()
            .all(|(tag, openids)| *tag == tags[0].0 && openids.len() <= 50)
    );
    let all: Vec<String> = batches
        .into_iter()
        .flat_map(|(_, openids)| openids)
        .collect();
    assert_eq!(all, dry.non_compliant);
    assert_eq!(app.sandbox.calls_to(paths::BATCH_BLACKLIST), 0);

    // A second run finds the tag rather than creating another.
    let again = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(again.stopped, None);
    assert_eq!(app.sandbox.tags().len(), 1);
    assert_eq!(app.sandbox.calls_to(paths::TAGS_CREATE), 1);
}

#[tokio::test]
async fn blacklist_mode_blacklists_the_non_compliant_twenty_at_a_time() {
    const COUNT: usize = 1_000;
    let app = app_with_followers(COUNT).await;
    let report = check(&app, CleanupAction::Blacklist, false).await;
    assert_eq!(report.stopped, None);
    let batches = app.sandbox.blacklist_batches();
    assert!(batches.iter().all(|openids| openids.len() <= 20));
    let all: Vec<String> = batches.into_iter().flatten().collect();
    assert_eq!(all, expected_non_compliant(COUNT));
    assert_eq!(report.acted_on, all.len() as u64);
    assert_eq!(app.sandbox.calls_to(paths::BATCH_TAGGING), 0);
}

#[tokio::test]
async fn report_mode_changes_nothing_upstream() {
    let app = app_with_followers(500).await;
    let report = check(&app, CleanupAction::Report, false).await;
    assert_eq!(report.non_compliant, expected_non_compliant(500));
    assert_eq!(report.acted_on, 0);
    for api in [
        paths::TAGS_GET,
        paths::BATCH_TAGGING,
        paths::BATCH_BLACKLIST,
    ] {
        assert_eq!(app.sandbox.calls_to(api), 0, "{api}");
    }
}

#[tokio::test]
async fn an_api_error_stops_the_run_with_the_counts_so_far() {
    const COUNT: usize = 12_000;
    let app = app_with_followers(COUNT).await;
    // The first page is sorted, then tagging it fails.
    app.sandbox.fail_next(paths::BATCH_TAGGING, 45009, 1);
    let report = check(&app, CleanupAction::Tag, false).await;
    let stopped = report.stopped.as_deref().expect("stopped");
    assert!(stopped.contains("45009"), "{stopped}");
    assert_eq!(report.checked, 10_000);
    assert_eq!(report.acted_on, 0);
    assert_eq!(app.sandbox.calls_to(paths::USER_GET), 1);
    assert!(app.sandbox.tag_batches().is_empty());
    assert!(report.to_string().contains("检查中途停止"));

    // The lock was released: the next run goes through.
    let report = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(report.stopped, None);
    let tagged: HashSet<String> = app
        .sandbox
        .tag_batches()
        .into_iter()
        .flat_map(|(_, openids)| openids)
        .collect();
    assert_eq!(tagged.len(), expected_non_compliant(COUNT).len());
}

#[tokio::test]
async fn one_run_at_a_time() {
    let app = app_with_followers(10).await;
    let lock = CacheLock::try_acquire(
        &app.state.cache,
        "job:followers:lock",
        Duration::from_secs(60),
    )
    .await
    .unwrap()
    .expect("free");
    let refused = try_check(&app, CleanupAction::Tag, false).await;
    assert!(
        matches!(refused, Err(CheckError::AlreadyRunning)),
        "{refused:?}"
    );
    assert_eq!(app.sandbox.calls_to(paths::USER_GET), 0);
    lock.release().await.unwrap();
    assert!(try_check(&app, CleanupAction::Tag, true).await.is_ok());
}
