//! The schema against the entities: every table takes and gives back a row, the
//! unique rules refuse duplicates, and migrating twice is harmless. Runs on SQLite,
//! and on PostgreSQL when `CAMPUSPAY_TEST_DATABASE_URL` is set.

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DbErr, EntityTrait, SqlErr};

use super::entities::{
    admins, audit_log, fee_items, followers, order_items, orders, payment_notifications, students,
};
use super::testing::{fresh_store, fresh_unmigrated_store};
use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 8, 30, 15).unwrap()
}

fn student(id_card: &str) -> students::ActiveModel {
    students::ActiveModel {
        id_card: Set(id_card.to_owned()),
        name: Set("张三".to_owned()),
        gender: Set(Gender::Male),
        grade: Set(2018),
        class_name: Set("汽修1班".to_owned()),
        major: Set(Some("汽车检测与维修技术".to_owned())),
        student_no: Set(None),
        password_hash: Set("$argon2id$v=19$stub".to_owned()),
        initial_password_hash: Set(None),
        must_change_password: Set(true),
        failed_logins: Set(0),
        locked_until: Set(None),
        wechat_openid: Set(None),
        bound_at: Set(None),
        created_at: Set(now()),
        updated_at: Set(now()),
        ..Default::default()
    }
}

fn fee_item(student_id: i64, item: &str) -> fee_items::ActiveModel {
    fee_items::ActiveModel {
        student_id: Set(student_id),
        academic_year: Set("2026-2027".to_owned()),
        item: Set(item.to_owned()),
        amount_fen: Set(550_000),
        status: Set(FeeItemStatus::Unpaid),
        deferred_until: Set(None),
        paid_order_id: Set(None),
        note: Set(None),
        created_at: Set(now()),
        updated_at: Set(now()),
        ..Default::default()
    }
}

fn order(student_id: i64, out_trade_no: &str) -> orders::ActiveModel {
    orders::ActiveModel {
        out_trade_no: Set(out_trade_no.to_owned()),
        student_id: Set(student_id),
        channel: Set(PaymentChannel::WechatJsapi),
        amount_fen: Set(550_000),
        status: Set(OrderStatus::Created),
        channel_trade_no: Set(None),
        payer_openid: Set(Some("o-payer".to_owned())),
        expires_at: Set(now() + chrono::Duration::minutes(15)),
        paid_at: Set(None),
        closed_at: Set(None),
        created_at: Set(now()),
        updated_at: Set(now()),
        ..Default::default()
    }
}

fn follower(openid: &str) -> followers::ActiveModel {
    followers::ActiveModel {
        openid: Set(openid.to_owned()),
        subscribed: Set(true),
        subscribed_at: Set(Some(now())),
        created_at: Set(now()),
        updated_at: Set(now()),
        ..Default::default()
    }
}

fn assert_unique_violation(result: Result<impl std::fmt::Debug, DbErr>, rule: &str) {
    match result {
        Err(error) => assert!(
            matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
            "{rule}: expected a unique violation, got {error:?}"
        ),
        Ok(row) => panic!("{rule}: a duplicate was accepted: {row:?}"),
    }
}

#[tokio::test]
async fn migrating_twice_is_harmless() {
    let store = fresh_store().await; // already migrated once

    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    store.ping().await.unwrap();
    assert_eq!(store.count_followers().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_both_migrate() {
    let store = fresh_unmigrated_store().await;
    let (first, second) = (Store::clone(&store), Store::clone(&store));

    let (first, second) = tokio::join!(first.migrate(), second.migrate());

    first.unwrap();
    second.unwrap();
    assert_eq!(store.count_followers().await.unwrap(), 0);
}

#[tokio::test]
async fn students_round_trip_and_refuse_a_second_id_card() {
    let store = fresh_store().await;
    let mut with_everything = student("62062219980101123X");
    with_everything.student_no = Set(Some("2018010203".to_owned()));
    with_everything.initial_password_hash = Set(Some("$argon2id$initial".to_owned()));
    with_everything.wechat_openid = Set(Some("o-bound".to_owned()));
    with_everything.bound_at = Set(Some(now()));
    with_everything.gender = Set(Gender::Female);

    let inserted = with_everything.insert(&store.db).await.unwrap();
    let read = students::Entity::find_by_id(inserted.id)
        .one(&store.db)
        .await
        .unwrap();

    assert_eq!(read.as_ref(), Some(&inserted));
    assert_eq!(inserted.gender, Gender::Female);
    assert_eq!(inserted.created_at, now());
    assert_unique_violation(
        student("62062219980101123X").insert(&store.db).await,
        "students.id_card",
    );
}

#[tokio::test]
async fn a_store_error_keeps_the_offending_row_out_of_its_message_and_debug() {
    let store = fresh_store().await;
    student("620622199801011301")
        .insert(&store.db)
        .await
        .unwrap();
    let duplicate = student("620622199801011301")
        .insert(&store.db)
        .await
        .unwrap_err();

    let error = StoreError::query("insert a student")(duplicate);

    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(
            !shown.contains("620622199801011301"),
            "row data in {shown:?}"
        );
    }
    assert!(format!("{error:?}").contains("insert a student"));
}

#[tokio::test]
async fn students_refuse_a_second_binding_of_one_openid_but_allow_many_unbound() {
    let store = fresh_store().await;
    let mut first = student("620622199801011230");
    first.wechat_openid = Set(Some("o-one".to_owned()));
    first.insert(&store.db).await.unwrap();
    student("620622199801011231")
        .insert(&store.db)
        .await
        .unwrap();
    student("620622199801011232")
        .insert(&store.db)
        .await
        .unwrap();

    let mut second = student("620622199801011233");
    second.wechat_openid = Set(Some("o-one".to_owned()));
    assert_unique_violation(second.insert(&store.db).await, "students.wechat_openid");
}

#[tokio::test]
async fn fee_items_round_trip_and_refuse_a_second_item_of_the_same_year() {
    let store = fresh_store().await;
    let student = student("620622199801011234")
        .insert(&store.db)
        .await
        .unwrap();
    let mut deferred = fee_item(student.id, "学费");
    deferred.status = Set(FeeItemStatus::Deferred);
    deferred.deferred_until = Set(Some(now() + chrono::Duration::days(30)));
    deferred.note = Set(Some("缓缴".to_owned()));

    let inserted = deferred.insert(&store.db).await.unwrap();
    let read = fee_items::Entity::find_by_id(inserted.id)
        .one(&store.db)
        .await
        .unwrap();

    assert_eq!(read, Some(inserted));
    fee_item(student.id, "住宿费")
        .insert(&store.db)
        .await
        .unwrap();
    let mut next_year = fee_item(student.id, "学费");
    next_year.academic_year = Set("2027-2028".to_owned());
    next_year.insert(&store.db).await.unwrap();
    assert_unique_violation(
        fee_item(student.id, "学费").insert(&store.db).await,
        "fee_items (student, year, item)",
    );
}

#[tokio::test]
async fn fee_items_refuse_a_negative_amount_and_an_unknown_student() {
    let store = fresh_store().await;
    let student = student("620622199801011235")
        .insert(&store.db)
        .await
        .unwrap();
    let mut negative = fee_item(student.id, "学费");
    negative.amount_fen = Set(-1);

    assert!(negative.insert(&store.db).await.is_err());
    let orphan = fee_item(student.id + 1000, "学费").insert(&store.db).await;
    assert!(
        matches!(
            orphan.as_ref().map_err(DbErr::sql_err),
            Err(Some(SqlErr::ForeignKeyConstraintViolation(_)))
        ),
        "expected a foreign key violation, got {orphan:?}"
    );
}

#[tokio::test]
async fn orders_and_their_items_round_trip_and_refuse_duplicates() {
    let store = fresh_store().await;
    let student = student("620622199801011236")
        .insert(&store.db)
        .await
        .unwrap();
    let item = fee_item(student.id, "学费")
        .insert(&store.db)
        .await
        .unwrap();
    let placed = order(student.id, "CP20260901083015000001")
        .insert(&store.db)
        .await
        .unwrap();
    let line = order_items::ActiveModel {
        order_id: Set(placed.id),
        fee_item_id: Set(item.id),
        amount_fen: Set(item.amount_fen),
        ..Default::default()
    };

    let line = line.insert(&store.db).await.unwrap();

    let read_order = orders::Entity::find_by_id(placed.id)
        .one(&store.db)
        .await
        .unwrap();
    assert_eq!(read_order, Some(placed));
    let read_line = order_items::Entity::find_by_id(line.id)
        .one(&store.db)
        .await
        .unwrap();
    assert_eq!(read_line, Some(line.clone()));
    assert_unique_violation(
        order(student.id, "CP20260901083015000001")
            .insert(&store.db)
            .await,
        "orders.out_trade_no",
    );
    let mut same_line = order_items::ActiveModel::from(line);
    same_line.id = sea_orm::ActiveValue::NotSet;
    assert_unique_violation(
        same_line.reset_all().insert(&store.db).await,
        "order_items (order, fee item)",
    );
}

#[tokio::test]
async fn a_paid_order_marks_its_item() {
    let store = fresh_store().await;
    let student = student("620622199801011237")
        .insert(&store.db)
        .await
        .unwrap();
    let mut paid = order(student.id, "CP20260901083015000002");
    paid.status = Set(OrderStatus::Paid);
    paid.channel = Set(PaymentChannel::AbcScan);
    paid.channel_trade_no = Set(Some("4200002026090112345678".to_owned()));
    paid.paid_at = Set(Some(now()));
    let paid = paid.insert(&store.db).await.unwrap();
    let mut item = fee_item(student.id, "教材费");
    item.status = Set(FeeItemStatus::Paid);
    item.paid_order_id = Set(Some(paid.id));

    let item = item.insert(&store.db).await.unwrap();

    let read = fee_items::Entity::find_by_id(item.id)
        .one(&store.db)
        .await
        .unwrap();
    assert_eq!(read.and_then(|item| item.paid_order_id), Some(paid.id));
}

#[tokio::test]
async fn payment_notifications_round_trip() {
    let store = fresh_store().await;
    let student = student("620622199801011238")
        .insert(&store.db)
        .await
        .unwrap();
    let order = order(student.id, "CP20260901083015000003")
        .insert(&store.db)
        .await
        .unwrap();
    let matched = payment_notifications::ActiveModel {
        channel: Set(NotificationChannel::Wechat),
        out_trade_no: Set(Some(order.out_trade_no.clone())),
        order_id: Set(Some(order.id)),
        received_at: Set(now()),
        headers: Set("Wechatpay-Serial: PUB_KEY_ID_0000".to_owned()),
        raw_body: Set(r#"{"id":"EV-1","resource":{}}"#.to_owned()),
        verdict: Set(NotificationVerdict::Accepted),
        reason: Set(None),
        ..Default::default()
    };
    let unreadable = payment_notifications::ActiveModel {
        channel: Set(NotificationChannel::Alipay),
        out_trade_no: Set(None),
        order_id: Set(None),
        received_at: Set(now()),
        headers: Set(String::new()),
        raw_body: Set("not a form".to_owned()),
        verdict: Set(NotificationVerdict::Refused),
        reason: Set(Some("bad signature".to_owned())),
        ..Default::default()
    };

    for notification in [matched, unreadable] {
        let inserted = notification.insert(&store.db).await.unwrap();
        let read = payment_notifications::Entity::find_by_id(inserted.id)
            .one(&store.db)
            .await
            .unwrap();
        assert_eq!(read, Some(inserted));
    }
}

#[tokio::test]
async fn followers_round_trip_and_refuse_a_second_openid() {
    let store = fresh_store().await;
    let student = student("620622199801011239")
        .insert(&store.db)
        .await
        .unwrap();
    let mut bound = follower("o-follower");
    bound.remark = Set(Some("18汽修1班张三".to_owned()));
    bound.student_id = Set(Some(student.id));
    bound.compliance = Set(Some("bound".to_owned()));
    bound.last_checked_at = Set(Some(now()));

    let inserted = bound.insert(&store.db).await.unwrap();
    let read = followers::Entity::find_by_id(inserted.id)
        .one(&store.db)
        .await
        .unwrap();

    assert_eq!(read, Some(inserted));
    assert_unique_violation(
        follower("o-follower").insert(&store.db).await,
        "followers.openid",
    );
}

#[tokio::test]
async fn admins_round_trip_and_refuse_a_second_username() {
    let store = fresh_store().await;
    let admin = |username: &str, role: AdminRole| admins::ActiveModel {
        username: Set(username.to_owned()),
        password_hash: Set("$argon2id$stub".to_owned()),
        role: Set(role),
        failed_logins: Set(0),
        locked_until: Set(None),
        created_at: Set(now()),
        ..Default::default()
    };

    let finance = admin("caiwu", AdminRole::Finance)
        .insert(&store.db)
        .await
        .unwrap();
    let viewer = admin("chakan", AdminRole::Viewer)
        .insert(&store.db)
        .await
        .unwrap();

    for inserted in [finance, viewer] {
        let read = admins::Entity::find_by_id(inserted.id)
            .one(&store.db)
            .await
            .unwrap();
        assert_eq!(read, Some(inserted));
    }
    assert_unique_violation(
        admin("caiwu", AdminRole::Viewer).insert(&store.db).await,
        "admins.username",
    );
}

#[tokio::test]
async fn audit_log_round_trips_json() {
    let store = fresh_store().await;
    let entry = audit_log::ActiveModel {
        at: Set(now()),
        actor: Set("caiwu".to_owned()),
        action: Set("student.reset_password".to_owned()),
        target: Set("student:1".to_owned()),
        before: Set(Some(serde_json::json!({"must_change_password": false}))),
        after: Set(Some(serde_json::json!({"must_change_password": true}))),
        ..Default::default()
    };

    let inserted = entry.insert(&store.db).await.unwrap();
    let read = audit_log::Entity::find_by_id(inserted.id)
        .one(&store.db)
        .await
        .unwrap();

    assert_eq!(read, Some(inserted));
}

#[tokio::test]
async fn the_url_of_a_test_store_opens_the_same_data() {
    let store = fresh_store().await;
    store
        .record_subscribe("o-shared", now(), None)
        .await
        .unwrap();

    let same = Store::connect(&store.database_url()).await.unwrap();

    assert!(same.find_follower("o-shared").await.unwrap().is_some());
}

#[tokio::test]
async fn a_sqlite_file_and_its_directory_are_created() {
    let directory = std::env::temp_dir().join(format!(
        "campus-pay-connect-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let file = directory.join("nested").join("campus-pay.db");

    let store = Store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    assert!(file.exists());
    store.close().await.unwrap();
    std::fs::remove_dir_all(directory).unwrap();
}

#[tokio::test]
async fn an_in_memory_sqlite_database_works() {
    let store = Store::connect("sqlite::memory:").await.unwrap();

    store.migrate().await.unwrap();

    assert_eq!(store.count_followers().await.unwrap(), 0);
}

#[test]
fn a_url_of_another_database_is_refused_without_echoing_it() {
    let error = Backend::of("mysql://root:secret@localhost/db").unwrap_err();

    assert!(matches!(error, StoreError::UnsupportedUrl));
    assert!(!error.to_string().contains("secret"));
}

#[test]
fn sqlite_urls_get_create_mode_unless_they_chose_one() {
    assert_eq!(
        with_create_mode("sqlite://data/a.db"),
        "sqlite://data/a.db?mode=rwc"
    );
    assert_eq!(
        with_create_mode("sqlite://data/a.db?cache=shared"),
        "sqlite://data/a.db?cache=shared&mode=rwc"
    );
    assert_eq!(
        with_create_mode("sqlite://a.db?mode=ro"),
        "sqlite://a.db?mode=ro"
    );
}

#[test]
fn only_plain_schema_names_are_accepted() {
    assert!(check_schema_name("cp_test_0123abcd").is_ok());
    for bad in ["", "Public", "a\"b", "a;drop", "1abc", &"x".repeat(64)] {
        assert!(check_schema_name(bad).is_err(), "{bad:?} was accepted");
    }
}
