//! The follower check over the WeChat sandbox: thousands of followers across pages,
//! WeChat's batch limits, dry runs, tags, the blacklist, the stored reports, drifted
//! remarks put right, and runs that stop on an API error and the next that resumes.

use std::time::Duration;

use campus_pay::cache::CacheLock;
use campus_pay::config::CleanupAction;
use campus_pay::jobs::followers::{
    ACTOR_CLI, CLEANUP_TAG, CheckError, CheckReport, FollowerCheck, LOCK_KEY,
};
use campus_pay::sandbox::wechat_api::{SandboxFollower, paths};
use campus_pay::store::CheckRunRecord;
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

fn checker(app: &TestApp, action: CleanupAction) -> FollowerCheck {
    let mut check = app
        .state
        .follower_check()
        .expect("the account is configured");
    check.config.action = action;
    check.config.grace_days = GRACE_DAYS;
    check
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
    checker(app, action).run(ACTOR_CLI, dry_run).await
}

async fn stored(app: &TestApp, report: &CheckReport) -> CheckRunRecord {
    app.state
        .store
        .check_run(report.run_id)
        .await
        .expect("reads")
        .expect("the run has its row")
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

fn tagged(app: &TestApp) -> Vec<String> {
    app.sandbox
        .tag_batches()
        .into_iter()
        .flat_map(|(_, openids)| openids)
        .collect()
}

/// The APIs that change something at WeChat.
const CHANGING_APIS: [&str; 4] = [
    paths::TAGS_CREATE,
    paths::BATCH_TAGGING,
    paths::BATCH_BLACKLIST,
    paths::UPDATE_REMARK,
];

#[tokio::test]
async fn the_check_sorts_25000_followers_tags_exactly_the_non_compliant_and_stores_its_report() {
    const COUNT: usize = 25_000;
    let app = app_with_followers(COUNT).await;

    let dry = check(&app, CleanupAction::Tag, true).await;
    assert_eq!(dry.stopped, None);
    assert_eq!(dry.counts.total, COUNT as u64);
    assert_eq!(dry.counts.checked, COUNT as u64);
    assert_eq!(dry.counts.bound, 2);
    assert_eq!(dry.counts.compliant, count_of(COUNT, Kind::Compliant));
    assert_eq!(dry.counts.within_grace, count_of(COUNT, Kind::New));
    assert_eq!(dry.counts.left, 0);
    assert_eq!(dry.non_compliant, expected_non_compliant(COUNT));
    assert_eq!(dry.counts.acted_on, 0);
    assert_eq!(dry.counts.remarks_corrected, 0);
    // Three pages of at most 10,000, and the empty one that says the list ended.
    assert_eq!(app.sandbox.calls_to(paths::USER_GET), 4);
    let batches = sent_lists(&app, paths::USER_INFO_BATCHGET, "user_list");
    assert_eq!(batches.len(), 250);
    assert!(batches.iter().all(|&size| size == 100), "{batches:?}");
    // A dry run changes nothing upstream.
    for api in CHANGING_APIS {
        assert_eq!(app.sandbox.calls_to(api), 0, "{api}");
    }
    let text = dry.to_string();
    assert!(text.contains("试运行") && text.contains("微信没有移除关注者的接口"));

    // The report is stored: counts, the whole list, finished, nothing to resume.
    let row = stored(&app, &dry).await;
    assert!(row.dry_run && row.finished_at.is_some());
    assert_eq!((row.actor.as_str(), row.action.as_str()), ("cli", "tag"));
    assert_eq!(row.counts, dry.counts);
    assert_eq!(row.non_compliant_count, dry.non_compliant.len() as u64);
    assert_eq!(row.non_compliant, dry.non_compliant);
    assert_eq!(
        (row.stopped, row.resume_after, row.resumed_after),
        (None, None, None)
    );

    let tagged_run = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(tagged_run.stopped, None);
    assert_eq!(tagged_run.non_compliant, dry.non_compliant);
    assert_eq!(tagged_run.counts.acted_on, dry.non_compliant.len() as u64);
    // 张三 and 李四 are bound with a remark that is not the rule's.
    assert_eq!(tagged_run.counts.remarks_corrected, 2);
    let tags = app.sandbox.tags();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].1, CLEANUP_TAG);
    let batches = app.sandbox.tag_batches();
    assert!(
        batches
            .iter()
            .all(|(tag, openids)| *tag == tags[0].0 && openids.len() == 50)
    );
    assert_eq!(tagged(&app), dry.non_compliant);
    assert_eq!(app.sandbox.calls_to(paths::BATCH_BLACKLIST), 0);
    let row = stored(&app, &tagged_run).await;
    assert!(!row.dry_run);
    assert_eq!(row.counts, tagged_run.counts);
    assert_eq!(row.non_compliant, tagged_run.non_compliant);
    assert_eq!((row.resume_after, row.resumed_after), (None, None));

    // A second run finds the tag rather than creating another, and the remarks are
    // right by now.
    let again = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(again.stopped, None);
    assert_eq!(again.counts.remarks_corrected, 0);
    assert_eq!(app.sandbox.tags().len(), 1);
    assert_eq!(app.sandbox.calls_to(paths::TAGS_CREATE), 1);

    // Every run left its audit row, newest first.
    let audit = app.audit_rows("followers.check").await;
    assert_eq!(audit.len(), 3);
    assert_eq!(
        audit[2].entry.target,
        format!("follower_check_run:{}", dry.run_id)
    );
    assert_eq!(audit[2].entry.after.as_ref().unwrap()["dry_run"], true);
    assert_eq!(audit[0].entry.after.as_ref().unwrap()["action"], "tag");
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
    assert_eq!(report.counts.acted_on, all.len() as u64);
    assert_eq!(app.sandbox.calls_to(paths::BATCH_TAGGING), 0);
}

#[tokio::test]
async fn report_mode_only_corrects_bound_students_remarks() {
    let app = app_with_followers(500).await;
    let report = check(&app, CleanupAction::Report, false).await;
    assert_eq!(report.non_compliant, expected_non_compliant(500));
    assert_eq!(report.counts.acted_on, 0);
    assert_eq!(report.counts.remarks_corrected, 2);
    for api in [
        paths::TAGS_GET,
        paths::BATCH_TAGGING,
        paths::BATCH_BLACKLIST,
    ] {
        assert_eq!(app.sandbox.calls_to(api), 0, "{api}");
    }
}

#[tokio::test]
async fn a_bound_students_drifted_remark_is_corrected_but_not_in_a_dry_run() {
    let app = app_with_followers(20).await;
    let dry = check(&app, CleanupAction::Tag, true).await;
    assert_eq!(dry.counts.remarks_corrected, 0);
    assert_eq!(app.sandbox.calls_to(paths::UPDATE_REMARK), 0);
    assert!(app.sandbox.remarks().is_empty());

    // WeChat refuses the first correction: the run stops before anything else, with
    // nothing to resume from, and the next one does it all.
    app.sandbox.fail_next(paths::UPDATE_REMARK, 45009, 1);
    let refused = check(&app, CleanupAction::Tag, false).await;
    assert!(refused.stopped.as_deref().unwrap().contains("45009"));
    assert_eq!(refused.counts.checked, 0);
    assert_eq!(refused.counts.remarks_corrected, 0);
    assert_eq!(refused.resume_after, None);
    assert!(app.sandbox.tag_batches().is_empty());

    let fixed = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(fixed.stopped, None);
    assert_eq!(fixed.counts.remarks_corrected, 2);
    assert_eq!(fixed.counts.checked, 20);
    let remarks = app.sandbox.remarks();
    assert_eq!(remarks.get("o0").map(String::as_str), Some("26汽修1班张三"));
    assert_eq!(
        remarks.get("o1").map(String::as_str),
        Some("25电子商务李四")
    );
    assert_eq!(remarks.len(), 2, "only bound students' remarks are set");
    assert_eq!(tagged(&app), expected_non_compliant(20));
    assert_eq!(stored(&app, &fixed).await.counts.remarks_corrected, 2);
}

/// The position (in user/get order) of the `n`th non-compliant follower, from 1.
fn nth_non_compliant(count: usize, n: usize) -> usize {
    (0..count)
        .filter(|&i| kind(i) == Kind::NonCompliant)
        .nth(n - 1)
        .expect("that many")
}

#[tokio::test]
async fn a_run_stopped_by_a_quota_is_resumed_by_the_next_and_together_they_tag_each_once() {
    const COUNT: usize = 25_000;
    const TAG_CALLS_ALLOWED: usize = 130;
    let app = app_with_followers(COUNT).await;
    app.sandbox
        .fail_after(paths::BATCH_TAGGING, TAG_CALLS_ALLOWED, 45009, 1);
    let first = check(&app, CleanupAction::Tag, false).await;
    let stopped = first.stopped.as_deref().expect("stopped");
    assert!(stopped.contains("45009"), "{stopped}");
    let done = TAG_CALLS_ALLOWED * 50;
    assert_eq!(first.counts.acted_on, done as u64);
    // Finished with: everyone before the first follower of the refused call.
    let refused_at = nth_non_compliant(COUNT, done + 1);
    let resume_after = format!("o{}", refused_at - 1);
    assert_eq!(first.counts.checked, refused_at as u64);
    assert_eq!(first.resume_after.as_deref(), Some(resume_after.as_str()));
    assert_eq!(first.non_compliant, expected_non_compliant(COUNT)[..done]);
    assert!(
        first
            .to_string()
            .contains(&format!("下次检查将从 {resume_after} 之后继续"))
    );
    let row = stored(&app, &first).await;
    assert!(row.finished_at.is_some());
    assert!(row.stopped.as_deref().unwrap().contains("45009"));
    assert_eq!(row.resume_after.as_deref(), Some(resume_after.as_str()));
    assert_eq!(row.counts, first.counts);

    let second = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(second.stopped, None);
    assert_eq!(second.resumed_after.as_deref(), Some(resume_after.as_str()));
    assert!(second.to_string().contains("接续上次中途停止的检查"));
    assert_eq!(second.resume_after, None);
    // The second run's counts cover only the rest.
    assert_eq!(second.counts.total, COUNT as u64);
    assert_eq!(second.counts.checked, (COUNT - refused_at) as u64);
    assert_eq!(second.counts.remarks_corrected, 0, "done by the first run");
    assert_eq!(second.non_compliant, expected_non_compliant(COUNT)[done..]);
    assert_eq!(
        first.counts.acted_on + second.counts.acted_on,
        expected_non_compliant(COUNT).len() as u64
    );
    // Together: every non-compliant follower tagged exactly once, in order.
    assert_eq!(tagged(&app), expected_non_compliant(COUNT));
    let row = stored(&app, &second).await;
    assert_eq!(row.resumed_after.as_deref(), Some(resume_after.as_str()));
    assert_eq!(row.resume_after, None);
    assert_eq!(app.state.store.check_resume_point().await.unwrap(), None);

    // Reached the end: the next run starts from the beginning.
    let third = check(&app, CleanupAction::Report, false).await;
    assert_eq!(third.resumed_after, None);
    assert_eq!(third.counts.checked, COUNT as u64);
}

#[tokio::test]
async fn a_batchget_failure_leaves_unacted_followers_to_the_next_run() {
    const COUNT: usize = 1_000;
    let app = app_with_followers(COUNT).await;
    // Three reads of 100 go through; the blacklist calls so far are full ones of 20.
    app.sandbox
        .fail_after(paths::USER_INFO_BATCHGET, 3, 45009, 1);
    let first = check(&app, CleanupAction::Blacklist, false).await;
    assert!(first.stopped.as_deref().unwrap().contains("45009"));
    let blacklisted: Vec<String> = app
        .sandbox
        .blacklist_batches()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(blacklisted.len() % 20, 0);
    assert_eq!(first.non_compliant, blacklisted);
    assert!(first.counts.checked < 300);
    let resume_after = first.resume_after.clone().expect("a resume point");

    let second = check(&app, CleanupAction::Blacklist, false).await;
    assert_eq!(second.stopped, None);
    assert_eq!(second.resumed_after, Some(resume_after));
    assert_eq!(first.counts.checked + second.counts.checked, COUNT as u64);
    let all: Vec<String> = app
        .sandbox
        .blacklist_batches()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(all, expected_non_compliant(COUNT));
}

#[tokio::test]
async fn a_dry_run_neither_uses_nor_moves_the_resume_point() {
    const COUNT: usize = 3_000;
    let app = app_with_followers(COUNT).await;
    app.sandbox.fail_after(paths::BATCH_TAGGING, 5, 45009, 1);
    let stopped = check(&app, CleanupAction::Tag, false).await;
    let resume_after = stopped.resume_after.clone().expect("a resume point");
    let changes_before: Vec<usize> = CHANGING_APIS
        .iter()
        .map(|api| app.sandbox.calls_to(api))
        .collect();

    let dry = check(&app, CleanupAction::Tag, true).await;
    assert_eq!(dry.resumed_after, None, "a dry run looks at everyone");
    assert_eq!(dry.counts.checked, COUNT as u64);
    assert_eq!(dry.non_compliant, expected_non_compliant(COUNT));
    assert_eq!(dry.resume_after, None);
    let changes_after: Vec<usize> = CHANGING_APIS
        .iter()
        .map(|api| app.sandbox.calls_to(api))
        .collect();
    assert_eq!(
        changes_before, changes_after,
        "a dry run changes nothing upstream"
    );
    let row = stored(&app, &dry).await;
    assert_eq!((row.resume_after, row.resumed_after), (None, None));
    assert_eq!(
        app.state.store.check_resume_point().await.unwrap(),
        Some(resume_after.clone())
    );

    // The next real run still resumes where the stopped one left off.
    let resumed = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(resumed.resumed_after, Some(resume_after));
    assert_eq!(tagged(&app), expected_non_compliant(COUNT));
}

#[tokio::test]
async fn a_resume_point_that_left_restarts_from_the_beginning() {
    let app = app_with_followers(200).await;
    app.sandbox.fail_after(paths::BATCH_TAGGING, 1, 45009, 1);
    let stopped = check(&app, CleanupAction::Tag, false).await;
    assert!(stopped.resume_after.is_some());
    // The follower at the resume point is gone from WeChat's list: user/get refuses
    // it (40003), as WeChat does for an openid it does not know.
    app.sandbox.fail_next(paths::USER_GET, 40003, 1);
    let next = check(&app, CleanupAction::Tag, false).await;
    assert_eq!(next.stopped, None);
    assert_eq!(next.resumed_after, None);
    assert_eq!(next.counts.checked, 200);
}

#[tokio::test]
async fn one_run_at_a_time() {
    let app = app_with_followers(10).await;
    let lock = CacheLock::try_acquire(&app.state.cache, LOCK_KEY, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("free");
    let refused = try_check(&app, CleanupAction::Tag, false).await;
    assert!(
        matches!(refused, Err(CheckError::AlreadyRunning)),
        "{refused:?}"
    );
    assert_eq!(app.sandbox.calls_to(paths::USER_GET), 0);
    let (runs, _) = app.state.store.check_runs(10, 0).await.unwrap();
    assert!(runs.is_empty(), "a refused run leaves no row");
    lock.release().await.unwrap();
    assert!(try_check(&app, CleanupAction::Tag, true).await.is_ok());
}

/// A name with an inner space (here a full-width one, as a roll typed in Excel has it)
/// is one name everywhere: the import stores one written form, the remark rule leaves
/// the space out, and the check finds the student by the remark without it. Such a
/// follower once read as non-compliant (and could be blacklisted).
#[tokio::test]
async fn a_follower_of_a_student_whose_name_has_an_inner_space_complies() {
    use campus_pay::import::read::read_table_bytes;
    use campus_pay::import::students::parse_students;

    let app = spawn_app().await;
    let now = app.clock.now();
    let roll =
        "身份证号,姓名,性别,年级,班级\n650102200608010027,阿依\u{3000}古丽,女,2026,汽修1班\n";
    let students = parse_students(&read_table_bytes("students.csv", roll.as_bytes()).unwrap())
        .expect("a valid roll");
    assert_eq!(students[0].name, "阿依 古丽", "one written form");
    app.state
        .store
        .import_students(&students, now, true)
        .await
        .expect("imported");
    let old = now - TimeDelta::days(30);
    let follower = |openid: &str, remark: &str| SandboxFollower {
        openid: openid.into(),
        subscribe_time: old,
        remark: remark.into(),
    };
    app.sandbox.add_followers(vec![
        // What the rule (and binding) writes: no space.
        follower("o_rule", "26汽修1班阿依古丽"),
        // Typed by hand with the space: whitespace is ignored by the rule.
        follower("o_typed", "26汽修1班阿依 古丽"),
        follower("o_other", "26汽修1班古丽"),
    ]);

    let report = check(&app, CleanupAction::Blacklist, false).await;
    assert_eq!(report.counts.compliant, 2, "{report:?}");
    assert_eq!(report.non_compliant, ["o_other"]);
    assert!(
        !app.sandbox
            .calls()
            .iter()
            .filter(|call| call.api == paths::BATCH_BLACKLIST)
            .any(|call| call.body.contains("o_rule") || call.body.contains("o_typed")),
        "a compliant follower is never blacklisted"
    );
}
