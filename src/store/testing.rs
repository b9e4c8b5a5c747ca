//! A fresh, migrated, empty store for each test.
//!
//! By default a SQLite file in its own temporary directory. When
//! `CAMPUSPAY_TEST_DATABASE_URL` is set (CI always sets it), a new PostgreSQL schema
//! `cp_test_<uuid>` in that database instead, so tests run side by side without
//! seeing each other's rows. Either is removed when the [`TestStore`] is dropped.
//!
//! Compiled into the library (not only under `cfg(test)`) so that the integration
//! tests in `tests/` can use it too.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Store, StoreError};

/// Where CI points the tests at PostgreSQL.
pub const TEST_DATABASE_URL_VAR: &str = "CAMPUSPAY_TEST_DATABASE_URL";

/// A store that cleans up after itself. Derefs to [`Store`]; clone that
/// (`(*test_store).clone()`) to hand the app its own handle, but keep the
/// `TestStore` alive as long as the app runs.
pub struct TestStore {
    store: Store,
    url: String,
    home: Home,
}

/// What to remove afterwards.
enum Home {
    SqliteDirectory(PathBuf),
    PostgresSchema(String),
}

/// A migrated, empty store of its own. Panics (failing the test) when it cannot make
/// one, in particular when `CAMPUSPAY_TEST_DATABASE_URL` is set but unreachable: CI
/// must not quietly fall back to SQLite.
pub async fn fresh_store() -> TestStore {
    let test_store = fresh_unmigrated_store().await;
    if let Err(error) = test_store.migrate().await {
        panic!("cannot migrate the test database: {error:?}");
    }
    test_store
}

/// Like [`fresh_store`], without the tables: for testing the migrations themselves.
pub async fn fresh_unmigrated_store() -> TestStore {
    match std::env::var(TEST_DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => fresh_postgres_schema(url.trim()).await,
        _ => fresh_sqlite_file().await,
    }
}

impl TestStore {
    /// The database URL and, on PostgreSQL, the schema this store lives in, for
    /// building a `Config` that points at the same data
    /// (`Store::connect_with_schema(url, schema)`).
    pub fn url_and_schema(&self) -> (&str, Option<&str>) {
        (&self.url, self.schema())
    }

    /// One URL that `Store::connect` opens onto this very store: on PostgreSQL the
    /// schema travels in the URL as a connection option (`search_path`), so a
    /// `Config` that only has a database URL needs nothing else.
    pub fn database_url(&self) -> String {
        match self.schema() {
            None => self.url.clone(),
            Some(schema) => {
                let separator = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{separator}options[search_path]={schema}", self.url)
            }
        }
    }
}

impl TestStore {
    /// The pool itself, for tests that check the books with SQL of their own instead
    /// of the store's queries (a bug in a query must not hide behind itself).
    pub fn connection(&self) -> &sea_orm::DatabaseConnection {
        &self.store.db
    }
}

impl TestStore {
    fn schema(&self) -> Option<&str> {
        match &self.home {
            Home::SqliteDirectory(_) => None,
            Home::PostgresSchema(schema) => Some(schema),
        }
    }
}

impl Deref for TestStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        match &self.home {
            Home::SqliteDirectory(directory) => remove_sqlite_directory(directory),
            Home::PostgresSchema(schema) => drop_postgres_schema(&self.url, schema),
        }
    }
}

async fn fresh_sqlite_file() -> TestStore {
    let directory =
        std::env::temp_dir().join(format!("campus-pay-test-{}", uuid::Uuid::new_v4().simple()));
    // The directory holds the database and its -wal and -shm companions, so that
    // one removal takes all three.
    let url = format!("sqlite://{}?mode=rwc", directory.join("store.db").display());
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|error| panic!("cannot open a test SQLite database: {error:?}"));
    TestStore {
        store,
        url,
        home: Home::SqliteDirectory(directory),
    }
}

async fn fresh_postgres_schema(url: &str) -> TestStore {
    let schema = format!("cp_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(url).await.unwrap_or_else(|error| {
        panic!("{TEST_DATABASE_URL_VAR} is set but its database is unreachable: {error:?}")
    });
    let created = admin
        .execute_unprepared(
            "create a test schema",
            &format!("CREATE SCHEMA \"{schema}\""),
        )
        .await;
    if let Err(error) = created {
        panic!("cannot create the test schema {schema}: {error:?}");
    }
    // Best effort: the pool would close on drop anyway.
    let _ = admin.close().await;
    let store = Store::connect_with_schema(url, &schema)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test schema {schema}: {error:?}"));
    TestStore {
        store,
        url: url.to_owned(),
        home: Home::PostgresSchema(schema),
    }
}

fn remove_sqlite_directory(directory: &Path) {
    if let Err(error) = std::fs::remove_dir_all(directory) {
        // Tests rarely install a tracing subscriber; stderr shows with the test.
        eprintln!(
            "warning: cannot remove the test database {}: {error}",
            directory.display()
        );
    }
}

/// A lock held by a transaction the test left open would make the drop wait forever;
/// better to leave the schema behind.
const DROP_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Drop is synchronous, and may run inside the test's runtime (which cannot be
/// blocked on from within), so the schema is dropped from a thread of its own with
/// its own small runtime and connection.
fn drop_postgres_schema(url: &str, schema: &str) {
    let (url, schema) = (url.to_owned(), schema.to_owned());
    let dropped = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        runtime
            .block_on(drop_schema(&url, &schema))
            .map_err(|error| format!("{error:?}"))
    })
    .join();
    let failure = match dropped {
        Ok(Ok(())) => return,
        Ok(Err(message)) => message,
        Err(_) => "the cleanup thread panicked".to_owned(),
    };
    eprintln!("warning: cannot drop a test schema: {failure}");
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    let admin = Store::connect(url).await?;
    // One round trip, so that the timeout is set on the connection that drops.
    let sql = format!(
        "SET lock_timeout = {}; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE",
        DROP_LOCK_TIMEOUT.as_millis()
    );
    admin.execute_unprepared("drop a test schema", &sql).await?;
    admin.close().await
}

/// A stored student as the import tests look at it (the hashes included: tests check
/// that imports leave them alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStudentForTests {
    pub id: i64,
    pub name: String,
    pub gender: super::Gender,
    pub grade: i32,
    pub class_name: String,
    pub major: Option<String>,
    pub student_no: Option<String>,
    pub password_hash: String,
    pub initial_password_hash: Option<String>,
    pub must_change_password: bool,
}

/// Row counts and direct changes for tests (of imports in particular), through the
/// entities rather than the store's own queries, so that a test does not trust the
/// code it checks. Each panics (failing the test) when the database fails.
impl Store {
    pub async fn count_students_for_tests(&self) -> u64 {
        use sea_orm::{EntityTrait, PaginatorTrait};
        super::entities::students::Entity::find()
            .count(&self.db)
            .await
            .expect("count students")
    }

    pub async fn count_fee_items_for_tests(&self) -> u64 {
        use sea_orm::{EntityTrait, PaginatorTrait};
        super::entities::fee_items::Entity::find()
            .count(&self.db)
            .await
            .expect("count fee items")
    }

    pub async fn student_for_tests(&self, id_card: &str) -> Option<StoredStudentForTests> {
        use super::entities::students::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let row = Entity::find()
            .filter(Column::IdCard.eq(id_card))
            .one(&self.db)
            .await
            .expect("find a student")?;
        Some(StoredStudentForTests {
            id: row.id,
            name: row.name,
            gender: row.gender,
            grade: row.grade,
            class_name: row.class_name,
            major: row.major,
            student_no: row.student_no,
            password_hash: row.password_hash,
            initial_password_hash: row.initial_password_hash,
            must_change_password: row.must_change_password,
        })
    }

    /// The amount and status of one fee item, by the import's key.
    pub async fn fee_item_for_tests(
        &self,
        id_card: &str,
        academic_year: &str,
        item: &str,
    ) -> Option<(i64, super::FeeItemStatus)> {
        let row = self
            .find_fee_item_for_tests(id_card, academic_year, item)
            .await?;
        Some((row.amount_fen, row.status))
    }

    /// Puts one fee item (by the import's key) in `status`, as paying it or taking it
    /// into an order would. Panics when there is no such item.
    pub async fn set_fee_item_status_for_tests(
        &self,
        id_card: &str,
        academic_year: &str,
        item: &str,
        status: super::FeeItemStatus,
    ) {
        use super::entities::fee_items::{Column, Entity};
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let row = self
            .find_fee_item_for_tests(id_card, academic_year, item)
            .await
            .expect("the fee item exists");
        Entity::update_many()
            .col_expr(Column::Status, Expr::value(status))
            .filter(Column::Id.eq(row.id))
            .exec(&self.db)
            .await
            .expect("set a fee item's status");
    }

    async fn find_fee_item_for_tests(
        &self,
        id_card: &str,
        academic_year: &str,
        item: &str,
    ) -> Option<super::entities::fee_items::Model> {
        use super::entities::fee_items::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let student = self.student_for_tests(id_card).await?;
        Entity::find()
            .filter(Column::StudentId.eq(student.id))
            .filter(Column::AcademicYear.eq(academic_year))
            .filter(Column::Item.eq(item))
            .one(&self.db)
            .await
            .expect("find a fee item")
    }
}
