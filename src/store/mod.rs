//! The database: sea-orm entities and the queries the rest of the program needs.
//! The only place SQL lives.
//!
//! The rest of the program holds a [`Store`] and calls its methods; it never sees a
//! sea-orm type. Records come back as plain structs, statuses as the enums
//! re-exported here.
//!
//! Two backends, one schema (the `migrations` crate): SQLite for the embedded
//! single-instance default, PostgreSQL in production and CI.

mod accounts;
mod admins;
mod arrears;
mod audit;
mod console_fees;
mod console_payments;
mod console_students;
mod entities;
mod fees;
mod follower_check;
mod followers;
mod gauges;
mod import;
mod orders;
mod receipts;
mod reconciliation;
mod refunds;
pub mod testing;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use self::accounts::{BindOutcome, StudentAccount};
pub use self::admins::AdminAccount;
pub use self::arrears::{
    ArrearsGroup, ArrearsGrouping, ArrearsKey, ArrearsScope, ArrearsStudent, MajorScope, OwedItem,
};
pub use self::audit::{AuditEntry, AuditQuery, AuditRecord};
pub use self::console_fees::{FeeItemChange, FeeItemDetail, FeeItemListRow, FeeItemQuery};
pub use self::console_payments::{
    ExceptionList, NotificationRecord, PaymentDetail, PaymentFilter, PaymentRow, PaymentTotals,
    Resolution, ResolveOutcome,
};
pub use self::console_students::{
    CorrectOutcome, STUDENT_VIEW, StudentCorrection, StudentDetails, StudentFeeRow, StudentListRow,
    StudentNotificationRow, StudentRecord, StudentSearch, UnbindOutcome,
};
pub use self::entities::{
    AdminRole, FeeItemStatus, Gender, NotificationChannel, NotificationVerdict, OrderStatus,
    PaymentChannel, RefundKind, RefundStatus, RunStatus,
};
pub use self::fees::FeeItemRecord;
pub use self::follower_check::{
    CheckCounts, CheckProgress, CheckRunRecord, NewCheckRun, RemarkStudent,
};
pub use self::followers::FollowerRecord;
pub use self::import::{ImportFailure, ImportedFile};
pub use self::orders::{
    ApplyOutcome, FlaggedOutcome, NewOrder, OrderLine, OrderRecord, PaymentReport,
    ReceivedNotification, TakeOutcome,
};
pub use self::receipts::{EbillOutcome, ReceiptRecord, ReceiptRefund};
pub use self::reconciliation::{
    NewReconciliationRun, ReconciliationCounts, ReconciliationLine, ReconciliationRunRecord,
};
pub use self::refunds::{
    CreateRefund, NewRefund, RefundNews, RefundPlan, RefundRecord, RefundScope, Refundable,
};

/// What went wrong talking to the database. Messages name the operation, never the
/// rows involved (ID numbers, openids, amounts stay out of logs); the driver's own
/// error is kept as the source.
#[derive(thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
    #[error("a schema search path needs a PostgreSQL database")]
    SchemaNeedsPostgres,
    #[error("invalid schema name {0:?}: use lower-case letters, digits and _ (at most 63)")]
    InvalidSchemaName(String),
    #[error("cannot create the directory {} for the SQLite database", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the {backend} database")]
    Connect {
        backend: &'static str,
        #[source]
        source: DbErr,
    },
    #[error("cannot apply the database migrations")]
    Migrate(#[source] DbErr),
    #[error("the database does not answer")]
    Unreachable(#[source] DbErr),
    #[error("database query failed: {operation}")]
    Query {
        operation: &'static str,
        #[source]
        source: DbErr,
    },
    #[error("database inconsistency: {0}")]
    Inconsistent(&'static str),
}

/// The error and its causes, each by its message. Not the drivers' `Debug`: that
/// carries PostgreSQL's `detail`, which quotes the offending row (`Key (id_card)=…`).
impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&error_chain(self))
    }
}

/// `error: cause: cause…` on one line, skipping a cause that only repeats the
/// message before it (sea-orm's and sqlx's layers each restate the driver's).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_message = cause.to_string();
        if !message.contains(&cause_message) {
            message.push_str(": ");
            message.push_str(&cause_message);
        }
        source = cause.source();
    }
    message
}

impl StoreError {
    /// For `map_err`: wraps a driver error with the name of what we were doing.
    fn query(operation: &'static str) -> impl FnOnce(DbErr) -> StoreError {
        move |source| StoreError::Query { operation, source }
    }
}

/// The database behind the program: a connection pool. Cheap to clone; clones share
/// the pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// For the hot reads outside transactions (the fee list): on a SQLite file, a
    /// small pool of read-only connections beside the one writer (WAL lets readers run
    /// while it writes, and a connection that never writes cannot hit the failed
    /// upgrade that keeps the writer single); elsewhere the same pool as `db`.
    reads: DatabaseConnection,
}

/// Read-only SQLite connections for the hot reads.
const SQLITE_READ_CONNECTIONS: u32 = 4;

/// Pool settings. SQLite gets a single connection: its deferred transactions can fail
/// outright (not wait) when a second connection writes between their read and their
/// write, and one connection makes that impossible within a process. The busy timeout
/// still covers a second process (a CLI import while `demo` serves).
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
const SQLITE_MAX_CONNECTIONS: u32 = 1;
/// How long a request waits for a pooled connection (or a first connection) before
/// failing, rather than hanging behind a stuck database.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// A connection idle this long is pinged before use; busy ones are not, to save a
/// round trip per query. Short, because a database restart kills every pooled
/// connection without the pool noticing: pinged, the idle ones are replaced before a
/// request gets them, and only the requests in flight at the restart fail (with 30
/// seconds, the next requests after the restart failed too, one per dead connection).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const SLOW_STATEMENT: Duration = Duration::from_secs(1);
/// Namespace of our PostgreSQL advisory locks (the second key is per schema).
const MIGRATION_LOCK_CLASS: i32 = 0x6370_6d67; // "cpmg"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

impl Store {
    /// Opens a pool on `url`: `sqlite://path/to/file.db` (the file and its directory
    /// are created when missing, unless the URL sets its own `mode=`) or
    /// `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of(url)?;
        let options = match backend {
            Backend::Sqlite => sqlite_options(url)?,
            Backend::Postgres => postgres_options(url),
        };
        open(backend, options).await
    }

    /// Opens a PostgreSQL pool whose connections work inside `schema` (their
    /// `search_path`), which must exist. Tests use it to give each test its own schema.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Store, StoreError> {
        if Backend::of(url)? != Backend::Postgres {
            return Err(StoreError::SchemaNeedsPostgres);
        }
        check_schema_name(schema)?;
        let mut options = postgres_options(url);
        options.set_schema_search_path(schema);
        open(Backend::Postgres, options).await
    }

    /// Applies the migrations this database has not seen yet; a no-op when it is up
    /// to date.
    ///
    /// Safe when several instances (or a `migrate` command beside a running `serve`)
    /// start at once: the whole run, from reading which migrations are pending to
    /// recording them, is one transaction that holds the database's migration lock,
    /// so the second waits and then finds nothing left to do. Without it both would
    /// apply the same migration and one would fail.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let txn = self.begin_migration().await.map_err(StoreError::Migrate)?;
        Migrator::up(&txn, None)
            .await
            .map_err(StoreError::Migrate)?;
        txn.commit().await.map_err(StoreError::Migrate)
    }

    /// PostgreSQL: an advisory lock per schema, released with the transaction (so a
    /// crashed instance cannot leave it held). SQLite: an IMMEDIATE transaction,
    /// which takes the write lock up front. Both backends have transactional DDL.
    async fn begin_migration(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return self
                .db
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await;
        }
        let txn = self.db.begin().await?;
        let take_lock = Query::select()
            .expr(
                Func::cust("pg_advisory_xact_lock")
                    .arg(MIGRATION_LOCK_CLASS)
                    .arg(Func::cust("hashtext").arg(Expr::cust("current_schema()"))),
            )
            .to_owned();
        txn.execute(&take_lock).await?;
        Ok(txn)
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (IMMEDIATE): a deferred one can fail outright when another process (a CLI
    /// import beside `serve`) writes between its first read and its first write.
    async fn begin_write(
        &self,
        operation: &'static str,
    ) -> Result<DatabaseTransaction, StoreError> {
        let sqlite = self.db.get_database_backend() == DatabaseBackend::Sqlite;
        let options = TransactionOptions {
            sqlite_transaction_mode: sqlite.then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(StoreError::query(operation))
    }

    /// One round trip, for the readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::Unreachable)
    }

    /// Runs one statement that is not a query (DDL). For `testing`, which creates
    /// and drops schemas; everything else goes through typed queries.
    async fn execute_unprepared(
        &self,
        operation: &'static str,
        sql: &str,
    ) -> Result<(), StoreError> {
        self.db
            .execute_unprepared(sql)
            .await
            .map(drop)
            .map_err(StoreError::query(operation))
    }

    async fn close(self) -> Result<(), StoreError> {
        // Closing a pool twice (when `reads` is `db`) is harmless.
        if let Err(error) = self.reads.close().await {
            tracing::debug!(?error, "closing the read pool");
        }
        self.db
            .close()
            .await
            .map_err(StoreError::query("close the pool"))
    }
}

async fn open(backend: Backend, options: ConnectOptions) -> Result<Store, StoreError> {
    let url = options.get_url().to_owned();
    let db = connect_pool(backend, options).await?;
    let reads = match backend {
        Backend::Sqlite if !is_in_memory(&url) => {
            connect_pool(backend, sqlite_read_options(&url)).await?
        }
        _ => db.clone(),
    };
    Ok(Store { db, reads })
}

async fn connect_pool(
    backend: Backend,
    options: ConnectOptions,
) -> Result<DatabaseConnection, StoreError> {
    Database::connect(options)
        .await
        .map_err(|source| StoreError::Connect {
            backend: backend.name(),
            source,
        })
}

/// The read-only pool of a SQLite file the writer pool has opened (and created).
fn sqlite_read_options(url: &str) -> ConnectOptions {
    let mut options = pool_options(url.to_owned(), SQLITE_READ_CONNECTIONS);
    options.map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
    });
    options
}

/// Settings both backends share.
fn pool_options(url: String, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(IDLE_TIMEOUT)
        .max_lifetime(MAX_LIFETIME)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        // Statements (SQL text only, never bound values) at debug; slow ones warn.
        .sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, SLOW_STATEMENT);
    options
}

fn postgres_options(url: &str) -> ConnectOptions {
    // libpq accepts both schemes; sea-orm only the short one.
    let url = match url.strip_prefix("postgresql://") {
        Some(rest) => format!("postgres://{rest}"),
        None => url.to_owned(),
    };
    let mut options = pool_options(url, POSTGRES_MAX_CONNECTIONS);
    options.set_application_name("campus-pay");
    options
}

fn sqlite_options(url: &str) -> Result<ConnectOptions, StoreError> {
    let url = with_create_mode(url);
    if !is_in_memory(&url) {
        create_parent_directory(&url)?;
    }
    let mut options = pool_options(url, SQLITE_MAX_CONNECTIONS);
    options.map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            // Readers do not block the writer, and a commit is one append.
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only a power
            // cut can lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
    });
    Ok(options)
}

/// The embedded default must work on a fresh machine, so a file URL without a
/// `mode=` is opened read-write-create.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

fn create_parent_directory(url: &str) -> Result<(), StoreError> {
    let parsed = SqliteConnectOptions::from_str(url).map_err(|_| StoreError::UnsupportedUrl)?;
    match parsed.get_filename().parent() {
        Some(dir) if dir != Path::new("") => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDirectory {
                path: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Schema names reach SQL as identifiers (`search_path`, `CREATE SCHEMA`), so only
/// plain ones are accepted.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(StoreError::InvalidSchemaName(schema.to_owned()))
    }
}

#[cfg(test)]
mod tests;
