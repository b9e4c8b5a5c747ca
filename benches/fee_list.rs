//! Load benchmark of the fee list (`GET /fees`) for signed-in students.
//!
//! `cargo bench --bench fee_list` (release build). One process, two tokio runtimes:
//! the application (`App`, as `campus-pay serve` builds it, with the same log filter)
//! on a runtime whose threads are named `cp-app`, and the load driver (hyper http1
//! keep-alive connections) on a one-thread runtime named `cp-drv`. The thread names let
//! the benchmark read each side's CPU time from `/proc/self/task`, so the driver's
//! share of the two cores is measured rather than guessed; the PostgreSQL backends
//! serving this process (found by their client ports) and `redis-server` are read from
//! `/proc` too, and whatever else kept the machine busy is reported as "other load".
//!
//! Data goes in the way the finance office puts it in: CSV text through the real import
//! (`read_table_bytes`, `parse_students`/`parse_fees`, `Store::import_students`/
//! `import_fees`), 3 fee items per student. Each student then gets a chosen password
//! (one argon2 hash, reused) and one signed-in session made with the app's own session
//! API in the app's cache. Request `i` asks for student `i mod students`'s list, and
//! every response is checked after the timed window: status 200 and that student's
//! name in the page.
//!
//! Backends: a SQLite file in a fresh temporary directory with the in-process cache by
//! default; PostgreSQL (a fresh schema `cp_bench_<uuid>`, dropped afterwards) when
//! `CAMPUSPAY_BENCH_DATABASE_URL` is set, and Redis (keys under a fresh prefix,
//! deleted afterwards) when `CAMPUSPAY_BENCH_REDIS_URL` is set.
//!
//! Three tables:
//! - HTTP: a bare axum handler (what the HTTP stack and the driver cost alone), the real
//!   app, and a prototype of the page that reads the student and the items in one query
//!   (same session API, rendering and middleware), to size that change;
//! - the parts of a request, each alone on the app's runtime: the session lookup, each
//!   query, the rendering, the whole router without sockets, and the in-process cache
//!   with few and many live keys;
//! - what-if variants of the request's database work on a second pool with the store's
//!   settings: today's SQL, the student lookup without sea-orm's `LIMIT ?` (on SQLite a
//!   bound LIMIT makes the statement re-prepare on every execution), one joined query,
//!   and (SQLite) that query on a read-only pool of several connections.
//!
//! - `CAMPUSPAY_BENCH_REQUESTS`: timed requests per scenario (default 20,000);
//! - `CAMPUSPAY_BENCH_STUDENTS`: students seeded (default 5,000, at most 50,000);
//! - `CAMPUSPAY_BENCH_CONNECTIONS`: keep-alive connections (default 64);
//! - `RUST_LOG`: overrides the log filter, as for `serve` (`RUST_LOG=off` measures the
//!   app without its request spans).

#[path = "common/procfs.rs"]
mod procfs;

use procfs::{local_ports_to, parse_stat};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use campus_pay::background::Background;
use campus_pay::cache::{Cache, MemoryCache, RedisCache, SharedCache};
use campus_pay::clock::Clock;
use campus_pay::config::{Config, Variables};
use campus_pay::domain::id_card::{IdCardNumber, check_character};
use campus_pay::domain::password::hash_password;
use campus_pay::import::fees::parse_fees;
use campus_pay::import::read::read_table_bytes;
use campus_pay::import::students::parse_students;
use campus_pay::store::{FeeItemRecord, FeeItemStatus, Store};
use campus_pay::web::session::{COOKIE_NAME, Sessions};
use campus_pay::web::views::Surface;
use campus_pay::web::views::fees::{FeeList, StudentHeader, fee_list};
use campus_pay::web::{App, AppState, Services};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveEnum as _, ConnectOptions, ConnectionTrait, Database, DatabaseBackend,
    DatabaseConnection, Statement,
};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tower::ServiceExt as _;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const DATABASE_VAR: &str = "CAMPUSPAY_BENCH_DATABASE_URL";
const REDIS_VAR: &str = "CAMPUSPAY_BENCH_REDIS_URL";
const REQUESTS_VAR: &str = "CAMPUSPAY_BENCH_REQUESTS";
const STUDENTS_VAR: &str = "CAMPUSPAY_BENCH_STUDENTS";
const CONNECTIONS_VAR: &str = "CAMPUSPAY_BENCH_CONNECTIONS";
const DEFAULT_REQUESTS: usize = 20_000;
const DEFAULT_STUDENTS: usize = 5_000;
const DEFAULT_CONNECTIONS: usize = 64;
/// The generated names and ID numbers are distinct up to here.
const MAX_STUDENTS: usize = 50_000;

/// What `campus-pay serve` installs (src/cli.rs).
const SERVE_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn";
/// Thread names: the app's runtime (workers and blocking pool) and the driver's.
const APP_THREAD: &str = "cp-app";
const DRIVER_THREAD: &str = "cp-drv";
/// Each SQLite connection runs on a thread of its own, named by sqlx.
const SQLITE_THREAD: &str = "sqlx-sqlite";
const APP_WORKERS: usize = 2;

/// The store's pool settings (src/store/mod.rs), for the what-if pools.
const SQLITE_MAX_CONNECTIONS: u32 = 1;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// The one-task parts take microseconds: they run this many times more often, so that
/// their CPU time spans many clock ticks.
const SINGLE_TASK_FACTOR: usize = 20;
/// Connections of the read-only what-if pool on SQLite.
const SQLITE_READ_CONNECTIONS: u32 = 4;

/// Every student's chosen password (one hash for all).
const PASSWORD: &str = "Bench#2026fees";
const SCHOOL: &str = "武威职业学院";

const SURNAMES: [char; 20] = [
    '王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭',
    '何', '高', '林', '罗',
];
const GIVEN: [char; 50] = [
    '伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明',
    '超', '秀', '霞', '平', '刚', '桂', '英', '华', '玉', '兰', '萍', '红', '梅', '鑫', '波', '斌',
    '宇', '浩', '凯', '健', '俊', '帆', '帅', '旭', '宁', '龙', '林', '欣', '怡', '佳', '琪', '晨',
    '阳', '雪',
];

/// Linux reports process times in clock ticks of `sysconf(_SC_CLK_TCK)`, which is 100
/// on every Linux we deploy to (x86-64 and arm64 alike).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    campus_pay::telemetry::init(SERVE_LOG_FILTER);
    let app_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(APP_WORKERS)
        .thread_name(APP_THREAD)
        .enable_all()
        .build()?;
    let driver_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(DRIVER_THREAD)
        .enable_all()
        .build()?;
    let backend = app_runtime.block_on(Backend::open(&settings))?;
    let mut sessions = Vec::new();
    let bench = Bench {
        app: &app_runtime,
        driver: &driver_runtime,
        backend: &backend,
        settings: &settings,
    };
    let outcome = bench.run(&mut sessions);
    if let Err(error) = app_runtime.block_on(backend.clean_up(&sessions)) {
        eprintln!("warning: cleanup failed: {error:#}");
    }
    outcome
}

// ---------------------------------------------------------------------------------
// Settings and backends.

struct Settings {
    requests: usize,
    students: usize,
    connections: usize,
    database_url: Option<String>,
    redis_url: Option<String>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let requests = count_var(REQUESTS_VAR, DEFAULT_REQUESTS, 100)?;
        let students = count_var(STUDENTS_VAR, DEFAULT_STUDENTS, 1)?;
        ensure!(
            students <= MAX_STUDENTS,
            "{STUDENTS_VAR} must be at most {MAX_STUDENTS}"
        );
        let connections = count_var(CONNECTIONS_VAR, DEFAULT_CONNECTIONS, 1)?;
        let non_empty = |name| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Ok(Settings {
            requests,
            students,
            connections,
            database_url: non_empty(DATABASE_VAR),
            redis_url: non_empty(REDIS_VAR),
        })
    }
}

fn count_var(name: &str, default: usize, minimum: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(raw) => {
            let count: usize = raw
                .trim()
                .parse()
                .with_context(|| format!("{name}={raw}"))?;
            ensure!(count >= minimum, "{name} must be at least {minimum}");
            Ok(count)
        }
        Err(_) => Ok(default),
    }
}

/// Where the data lives, to be removed afterwards.
enum Home {
    SqliteDirectory(PathBuf),
    PostgresSchema {
        admin: DatabaseConnection,
        schema: String,
        port: u16,
    },
}

struct Backend {
    store: Store,
    cache: SharedCache,
    clock: Clock,
    /// The store's URL: for `Config` (the app is handed its services ready-made) and
    /// the what-if pools.
    database_url: String,
    home: Home,
    redis: Option<redis::Client>,
    label: String,
}

impl Backend {
    async fn open(settings: &Settings) -> anyhow::Result<Backend> {
        let clock = Clock::system();
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let (store, database_url, home, database_label) = match &settings.database_url {
            None => {
                let directory =
                    std::env::temp_dir().join(format!("campus-pay-bench-fees-{run_id}"));
                let url = format!("sqlite://{}?mode=rwc", directory.join("bench.db").display());
                let store = Store::connect(&url).await?;
                (store, url, Home::SqliteDirectory(directory), "SQLite file")
            }
            Some(url) => {
                let parsed = url::Url::parse(url).with_context(|| DATABASE_VAR.to_owned())?;
                ensure!(
                    matches!(parsed.scheme(), "postgres" | "postgresql"),
                    "{DATABASE_VAR} must be a postgres:// URL"
                );
                let schema = format!("cp_bench_{run_id}");
                let admin = Database::connect(url.as_str())
                    .await
                    .with_context(|| format!("{DATABASE_VAR}: cannot connect"))?;
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                    .await?;
                let store = Store::connect_with_schema(url, &schema).await?;
                let home = Home::PostgresSchema {
                    admin,
                    schema,
                    port: parsed.port().unwrap_or(5432),
                };
                (store, url.clone(), home, "PostgreSQL")
            }
        };
        store.migrate().await?;
        let (cache, redis, cache_label): (SharedCache, _, _) = match &settings.redis_url {
            None => (
                Arc::new(MemoryCache::new(clock.clone())),
                None,
                "in-process cache",
            ),
            Some(url) => (
                Arc::new(RedisCache::connect(url, &format!("campus-pay-bench-{run_id}:")).await?),
                Some(redis::Client::open(url.as_str())?),
                "Redis",
            ),
        };
        Ok(Backend {
            store,
            cache,
            clock,
            database_url,
            home,
            redis,
            label: format!("{database_label} + {cache_label}"),
        })
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.home, Home::SqliteDirectory(_))
    }

    fn sql_backend(&self) -> DatabaseBackend {
        if self.is_sqlite() {
            DatabaseBackend::Sqlite
        } else {
            DatabaseBackend::Postgres
        }
    }

    fn services(&self) -> Services {
        Services {
            store: self.store.clone(),
            cache: self.cache.clone(),
            clock: self.clock.clone(),
            background: Background::new(),
        }
    }

    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::from_variables(&Variables::from_pairs([
            ("CAMPUSPAY_LISTEN", "127.0.0.1:0"),
            ("CAMPUSPAY_DATABASE_URL", self.database_url.as_str()),
            ("CAMPUSPAY_SCHOOL_NAME", SCHOOL),
        ]))?)
    }

    /// A second pool on the same data with the store's settings (src/store/mod.rs),
    /// for trying queries the store does not have. `read_only` (SQLite): a pool of
    /// several read-only connections beside the store's single one.
    async fn what_if_pool(&self, read_only: bool) -> anyhow::Result<DatabaseConnection> {
        let mut options = ConnectOptions::new(self.database_url.clone());
        options
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(600))
            .max_lifetime(Duration::from_secs(1_800))
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .sqlx_logging(true)
            .sqlx_logging_level(log::LevelFilter::Debug)
            .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, Duration::from_secs(1));
        match &self.home {
            Home::SqliteDirectory(_) if read_only => {
                options.max_connections(SQLITE_READ_CONNECTIONS);
                options.map_sqlx_sqlite_opts(|sqlite| {
                    sqlite.read_only(true).busy_timeout(Duration::from_secs(5))
                });
            }
            Home::SqliteDirectory(_) => {
                options.max_connections(SQLITE_MAX_CONNECTIONS);
                options.map_sqlx_sqlite_opts(|sqlite| {
                    sqlite
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                });
            }
            Home::PostgresSchema { schema, .. } => {
                options.max_connections(POSTGRES_MAX_CONNECTIONS);
                options.set_schema_search_path(schema.clone());
                options.set_application_name("campus-pay-bench");
            }
        }
        Ok(Database::connect(options).await?)
    }

    /// The PostgreSQL backends serving this process's connections (found by the local
    /// ports of our sockets to the server), so that other users of the server are not
    /// counted.
    async fn our_postgres_pids(&self) -> anyhow::Result<Vec<u32>> {
        let Home::PostgresSchema { admin, port, .. } = &self.home else {
            return Ok(Vec::new());
        };
        let ports = local_ports_to("self", *port);
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let rows = admin
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                format!(
                    "SELECT pid FROM pg_stat_activity WHERE client_addr IS NOT NULL \
                     AND client_port IN ({})",
                    list.join(",")
                ),
            ))
            .await?;
        rows.iter()
            .map(|row| Ok(u32::try_from(row.try_get_by_index::<i32>(0)?)?))
            .collect()
    }

    /// Index and sequential scans of the students and fee_items tables in our schema
    /// (PostgreSQL only): how many queries the requests really made.
    async fn table_scans(&self) -> anyhow::Result<Option<(i64, i64)>> {
        let Home::PostgresSchema { admin, schema, .. } = &self.home else {
            return Ok(None);
        };
        let rows = admin
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                format!(
                    "SELECT relname::text, (COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0))::bigint \
                     FROM pg_stat_user_tables WHERE schemaname = '{schema}' \
                     AND relname IN ('students', 'fee_items')"
                ),
            ))
            .await?;
        let (mut students, mut fee_items) = (0, 0);
        for row in rows {
            let table: String = row.try_get_by_index(0)?;
            let scans: i64 = row.try_get_by_index(1)?;
            match table.as_str() {
                "students" => students = scans,
                "fee_items" => fee_items = scans,
                _ => {}
            }
        }
        Ok(Some((students, fee_items)))
    }

    /// Redis's GET and SET calls so far, server-wide (Redis only).
    async fn redis_calls(&self) -> anyhow::Result<Option<(u64, u64)>> {
        let Some(client) = &self.redis else {
            return Ok(None);
        };
        let mut connection = client.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await?;
        let calls = |command: &str| -> u64 {
            info.lines()
                .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
                .and_then(|rest| rest.split(',').next())
                .and_then(|calls| calls.parse().ok())
                .unwrap_or(0)
        };
        Ok(Some((calls("get"), calls("set"))))
    }

    async fn clean_up(self, sessions: &[String]) -> anyhow::Result<()> {
        if self.redis.is_some() {
            for id in sessions {
                self.cache.delete(&Sessions::key(id)).await?;
            }
        }
        match self.home {
            Home::SqliteDirectory(directory) => {
                std::fs::remove_dir_all(&directory)
                    .with_context(|| format!("cannot remove {}", directory.display()))?;
            }
            Home::PostgresSchema { admin, schema, .. } => {
                admin
                    .execute_unprepared(&format!(
                        "SET lock_timeout = 5000; DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    ))
                    .await
                    .with_context(|| format!("cannot drop the schema {schema}"))?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Data.

/// A seeded, signed-in student.
struct Student {
    id: i64,
    name: String,
    session: String,
}

/// An 18-character ID number from 武威市凉州区, born in 2006, distinct for each `n`
/// below [`MAX_STUDENTS`]; the sequence digit's parity gives the gender.
fn id_card(n: usize) -> String {
    let birth = NaiveDate::from_ymd_opt(2006, 1, 1).expect("a date")
        + chrono::Days::new((n / 1_000) as u64);
    let first_17 = format!("620602{}{:03}", birth.format("%Y%m%d"), n % 1_000);
    let check = check_character(first_17.as_bytes()).expect("17 digits");
    format!("{first_17}{}", char::from(check))
}

/// A three-character name, distinct for each `n` below [`MAX_STUDENTS`].
fn student_name(n: usize) -> String {
    [
        SURNAMES[n % SURNAMES.len()],
        GIVEN[(n / SURNAMES.len()) % GIVEN.len()],
        GIVEN[(n / (SURNAMES.len() * GIVEN.len())) % GIVEN.len()],
    ]
    .iter()
    .collect()
}

fn gender(n: usize) -> &'static str {
    if n % 2 == 1 { "男" } else { "女" }
}

/// Imports the students and their fee items, gives every student a chosen password,
/// and returns their ids and names, in the order generated.
async fn seed(store: &Store, clock: &Clock, count: usize) -> anyhow::Result<Vec<(i64, String)>> {
    let mut students_csv = String::from("身份证号,姓名,性别,年级,班级,专业,初始密码\n");
    let mut fees_csv = String::from("身份证号,学年,项目,金额\n");
    let mut cards = Vec::with_capacity(count);
    for n in 0..count {
        let card = id_card(n);
        let name = student_name(n);
        students_csv.push_str(&format!(
            "{card},{name},{},2026,汽修{}班,汽车检测与维修技术,000000\n",
            gender(n),
            n % 40 + 1
        ));
        fees_csv.push_str(&format!(
            "{card},2026-2027,学费,4500\n{card},2026-2027,住宿费,1200.00\n{card},2025-2026,教材费,350.5\n"
        ));
        cards.push((card, name));
    }
    let now = clock.now();
    let students = parse_students(&read_table_bytes("students.csv", students_csv.as_bytes())?)?;
    let summary = store.import_students(&students, now, true).await?;
    ensure!(summary.added == count, "students added: {summary:?}");
    let fees = parse_fees(&read_table_bytes("fees.csv", fees_csv.as_bytes())?)?;
    let summary = store.import_fees(&fees, now, true).await?;
    ensure!(summary.added == 3 * count, "fee items added: {summary:?}");

    let hash = tokio::task::spawn_blocking(|| hash_password(PASSWORD)).await??;
    let seeded: Vec<(i64, String)> = futures_util::stream::iter(cards)
        .map(|(card, name)| async move {
            let student = store
                .find_student_by_id_card(&card)
                .await?
                .context("an imported student is missing")?;
            ensure!(student.name == name, "the stored name differs");
            Ok::<_, anyhow::Error>((student.id, name))
        })
        .buffered(16)
        .try_collect()
        .await?;
    futures_util::stream::iter(seeded.iter())
        .map(|(id, _)| store.set_student_password(*id, &hash, now))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(seeded)
}

/// One signed-in session per student, in the app's cache, made by the app's own
/// session API (what `/login` saves).
async fn sign_in(state: &AppState, seeded: &[(i64, String)]) -> anyhow::Result<Vec<Student>> {
    let sessions = state.sessions();
    let now = state.clock.now();
    let mut students = Vec::with_capacity(seeded.len());
    for (id, name) in seeded {
        let mut session = sessions.create();
        session.data.student_id = Some(*id);
        sessions.save(&mut session, now).await?;
        students.push(Student {
            id: *id,
            name: name.clone(),
            session: session.id,
        });
    }
    Ok(students)
}

/// Saves every session again, so that none is due for its periodic touch (a write)
/// during what follows: the figures are of the read path.
async fn refresh_sessions(state: AppState, students: Arc<Vec<Student>>) -> anyhow::Result<()> {
    let sessions = state.sessions();
    let now = state.clock.now();
    for student in students.iter() {
        let headers = cookie_headers(&student.session);
        let mut session = sessions
            .load(&headers, now)
            .await?
            .context("session lost")?;
        sessions.save(&mut session, now).await?;
    }
    Ok(())
}

fn cookie_headers(session: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        format!("{COOKIE_NAME}={session}")
            .parse()
            .expect("a valid cookie"),
    );
    headers
}

/// What identifies a student's page.
fn name_marker(name: &str) -> String {
    format!("id=\"student-name\">{name}<")
}

// ---------------------------------------------------------------------------------
// CPU accounting.

#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    /// The app's runtime threads and SQLite's connection threads.
    app: u64,
    /// Every other thread of this process: the driver, and the main thread waiting.
    driver: u64,
    /// The PostgreSQL backends serving us, and `redis-server`.
    services: u64,
    machine_busy: u64,
}

impl Ticks {
    fn now(postgres_pids: &[u32]) -> Ticks {
        let mut ticks = Ticks::default();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                let Some((comm, used)) = parse_stat(&stat) else {
                    continue;
                };
                if comm.starts_with(APP_THREAD) || comm.starts_with(SQLITE_THREAD) {
                    ticks.app += used;
                } else {
                    ticks.driver += used;
                }
            }
        }
        if let Ok(processes) = std::fs::read_dir("/proc") {
            for process in processes.flatten() {
                let Some(pid) = process
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, used)) = parse_stat(&stat)
                    && (comm == "redis-server" || postgres_pids.contains(&pid))
                {
                    ticks.services += used;
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            ticks.machine_busy = [0, 1, 2, 5, 6, 7]
                .iter()
                .filter_map(|&index| fields.get(index))
                .sum();
        }
        ticks
    }

    fn since(self, before: Ticks) -> Ticks {
        Ticks {
            app: self.app.saturating_sub(before.app),
            driver: self.driver.saturating_sub(before.driver),
            services: self.services.saturating_sub(before.services),
            machine_busy: self.machine_busy.saturating_sub(before.machine_busy),
        }
    }
}

fn ticks_to_micros(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / CLOCK_TICKS_PER_SECOND as f64
}

/// Waits until the app's threads have used no CPU for 300 ms.
async fn wait_until_idle() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Ticks::now(&[]).app;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = Ticks::now(&[]).app;
        if now == last {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the app never went idle");
        last = now;
    }
}

// ---------------------------------------------------------------------------------
// Measurements.

struct Row {
    name: String,
    ops: usize,
    concurrency: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// Per operation, in µs.
    app_cpu: f64,
    driver_cpu: f64,
    services_cpu: f64,
    /// Cores busy with anything else on the machine during the window.
    other_cores: f64,
}

impl Row {
    fn new(
        name: String,
        concurrency: usize,
        mut latencies: Vec<Duration>,
        wall: Duration,
        cpu: Ticks,
    ) -> Row {
        latencies.sort_unstable();
        let ops = latencies.len();
        let per_op = |ticks: u64| ticks_to_micros(ticks) / ops as f64;
        let ours = cpu.app + cpu.driver + cpu.services;
        let other_cores = (cpu.machine_busy as f64 - ours as f64)
            / (wall.as_secs_f64() * CLOCK_TICKS_PER_SECOND as f64);
        Row {
            name,
            ops,
            concurrency,
            per_second: ops as f64 / wall.as_secs_f64(),
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            app_cpu: per_op(cpu.app),
            driver_cpu: per_op(cpu.driver),
            services_cpu: per_op(cpu.services),
            other_cores: other_cores.max(0.0),
        }
    }
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn micros(duration: Duration) -> String {
    let us = duration.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

/// Runs `op(0..count)` from `tasks` tasks on the current runtime, each op after the
/// previous one of its task; returns every op's latency and the wall time.
async fn concurrently<F, Fut>(
    count: usize,
    tasks: usize,
    op: Arc<F>,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count / tasks + 1);
                for index in (task..count).step_by(tasks) {
                    let begun = Instant::now();
                    op(index).await.with_context(|| format!("op {index}"))?;
                    latencies.push(begun.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    for handle in handles {
        latencies.extend(handle.await??);
    }
    Ok((latencies, start.elapsed()))
}

// ---------------------------------------------------------------------------------
// The HTTP driver.

/// What a response must be.
enum Expect {
    Exact(Bytes),
    Contains(String),
}

struct Exchange {
    request: Request<Full<Bytes>>,
    expect: Expect,
}

fn fees_request(session: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri("/fees")
        .header(HOST, "127.0.0.1")
        .header(COOKIE, format!("{COOKIE_NAME}={session}"))
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

fn exchanges(students: &[Student], count: usize, page: Option<&Bytes>) -> Vec<Exchange> {
    (0..count)
        .map(|index| {
            let student = &students[index % students.len()];
            Exchange {
                request: fees_request(&student.session),
                expect: match page {
                    Some(page) => Expect::Exact(page.clone()),
                    None => Expect::Contains(name_marker(&student.name)),
                },
            }
        })
        .collect()
}

fn check(expect: &Expect, status: StatusCode, body: &Bytes) -> anyhow::Result<()> {
    ensure!(
        status == StatusCode::OK,
        "status {status}: {}",
        String::from_utf8_lossy(body)
    );
    match expect {
        Expect::Exact(page) => ensure!(body == page, "unexpected body"),
        Expect::Contains(marker) => {
            let text = std::str::from_utf8(body)?;
            ensure!(
                text.contains(marker.as_str()),
                "not the student's page: {text}"
            );
        }
    }
    Ok(())
}

async fn connect(port: u16) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

struct Outcome {
    status: StatusCode,
    body: Bytes,
    latency: Duration,
}

/// Sends `requests` one after another on one keep-alive connection.
async fn run_connection(
    mut sender: SendRequest<Full<Bytes>>,
    requests: Vec<(usize, Request<Full<Bytes>>)>,
) -> anyhow::Result<(SendRequest<Full<Bytes>>, Vec<(usize, Outcome)>)> {
    let mut outcomes = Vec::with_capacity(requests.len());
    for (index, request) in requests {
        let start = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let latency = start.elapsed();
        outcomes.push((
            index,
            Outcome {
                status,
                body,
                latency,
            },
        ));
    }
    Ok((sender, outcomes))
}

/// Sends every exchange over `senders` (round-robin), then checks every response.
/// Returns the connections, the latencies and the wall time of the load.
async fn load(
    senders: Vec<SendRequest<Full<Bytes>>>,
    exchanges: Vec<Exchange>,
) -> anyhow::Result<(Vec<SendRequest<Full<Bytes>>>, Vec<Duration>, Duration)> {
    let connections = senders.len();
    let mut expects = Vec::with_capacity(exchanges.len());
    let mut chunks: Vec<Vec<(usize, Request<Full<Bytes>>)>> =
        (0..connections).map(|_| Vec::new()).collect();
    for (index, exchange) in exchanges.into_iter().enumerate() {
        chunks[index % connections].push((index, exchange.request));
        expects.push(exchange.expect);
    }
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(chunks)
        .map(|(sender, chunk)| tokio::spawn(run_connection(sender, chunk)))
        .collect();
    let mut senders = Vec::with_capacity(connections);
    let mut outcomes = Vec::with_capacity(expects.len());
    for task in tasks {
        let (sender, done) = task.await??;
        senders.push(sender);
        outcomes.extend(done);
    }
    let wall = start.elapsed();
    ensure!(outcomes.len() == expects.len(), "responses missing");
    let mut latencies = Vec::with_capacity(outcomes.len());
    for (index, outcome) in outcomes {
        check(&expects[index], outcome.status, &outcome.body)
            .with_context(|| format!("request {index}"))?;
        latencies.push(outcome.latency);
    }
    Ok((senders, latencies, wall))
}

// ---------------------------------------------------------------------------------
// The servers besides the app.

/// Serves `router` on a free port of the current runtime, as `App` does.
async fn serve(router: Router) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = axum::serve(listener, service).await {
            eprintln!("a bench server stopped: {error}");
        }
    });
    Ok(port)
}

/// `GET /fees` answering a constant page of the real page's size, without the app's
/// middleware: what the HTTP stack and the driver cost on their own.
fn bare_router(page: Bytes) -> Router {
    Router::new().route(
        "/fees",
        axum::routing::get(move || {
            let page = page.clone();
            async move {
                (
                    [
                        (CONTENT_TYPE, "text/html; charset=utf-8"),
                        (CACHE_CONTROL, "no-store"),
                    ],
                    page,
                )
            }
        }),
    )
}

/// The middleware of `campus_pay::web::router`, as it wraps every route.
fn with_app_layers(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

// ---------------------------------------------------------------------------------
// The what-if queries and the prototype page.

const STUDENT_COLUMNS: &str = r#""students"."id", "students"."id_card", "students"."name", "students"."gender", "students"."grade", "students"."class_name", "students"."major", "students"."student_no", "students"."password_hash", "students"."initial_password_hash", "students"."must_change_password", "students"."failed_logins", "students"."locked_until", "students"."wechat_openid", "students"."bound_at", "students"."created_at", "students"."updated_at""#;
const FEE_ITEM_COLUMNS: &str = r#""fee_items"."id", "fee_items"."student_id", "fee_items"."academic_year", "fee_items"."item", "fee_items"."amount_fen", "fee_items"."status", "fee_items"."deferred_until", "fee_items"."paid_order_id", "fee_items"."note", "fee_items"."created_at", "fee_items"."updated_at""#;

/// Placeholder `n` (from 1) in the backend's syntax.
fn placeholder(backend: DatabaseBackend, n: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// `Store::find_student`'s SQL as sea-orm sends it (`.one()` adds `LIMIT ?`), or
/// without the limit.
fn student_sql(backend: DatabaseBackend, with_limit: bool) -> String {
    let limit = if with_limit {
        format!(" LIMIT {}", placeholder(backend, 2))
    } else {
        String::new()
    };
    format!(
        r#"SELECT {STUDENT_COLUMNS} FROM "students" WHERE "students"."id" = {}{limit}"#,
        placeholder(backend, 1)
    )
}

/// `Store::fee_items_of`'s SQL as sea-orm sends it.
fn fee_items_sql(backend: DatabaseBackend) -> String {
    format!(
        r#"SELECT {FEE_ITEM_COLUMNS} FROM "fee_items" WHERE "fee_items"."student_id" = {} ORDER BY "fee_items"."academic_year" ASC, "fee_items"."id" ASC"#,
        placeholder(backend, 1)
    )
}

/// What the page needs of the student and the items, in one round trip.
fn joined_sql(backend: DatabaseBackend) -> String {
    format!(
        r#"SELECT "s"."id_card", "s"."name", "s"."gender", "s"."grade", "s"."class_name", "s"."must_change_password",
  "f"."id" AS "fee_id", "f"."academic_year", "f"."item", "f"."amount_fen", "f"."status", "f"."deferred_until", "f"."updated_at"
FROM "students" AS "s" LEFT JOIN "fee_items" AS "f" ON "f"."student_id" = "s"."id"
WHERE "s"."id" = {} ORDER BY "f"."academic_year" ASC, "f"."id" ASC"#,
        placeholder(backend, 1)
    )
}

/// The SQL of each way of reading the page's data, in the backend's syntax.
struct Queries {
    /// `Store::find_student`'s, with the `LIMIT ?` of `.one()`.
    student_limited: String,
    student: String,
    fee_items: String,
    joined: String,
}

impl Queries {
    fn new(backend: DatabaseBackend) -> Queries {
        Queries {
            student_limited: student_sql(backend, true),
            student: student_sql(backend, false),
            fee_items: fee_items_sql(backend),
            joined: joined_sql(backend),
        }
    }
}

/// One way of doing a request's database work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Today's two queries, the student's with `LIMIT ?`.
    Today,
    /// The two queries, the student's without the limit.
    NoLimit,
    /// One joined query.
    Joined,
}

/// What the page shows, read the `variant` way.
struct PageData {
    header: StudentHeader,
    must_change_password: bool,
    records: Vec<FeeItemRecord>,
}

async fn page_data(
    db: &DatabaseConnection,
    queries: &Queries,
    variant: Variant,
    student_id: i64,
) -> anyhow::Result<Option<PageData>> {
    let backend = db.get_database_backend();
    let statement = |sql: &str, values: Vec<sea_orm::Value>| {
        Statement::from_sql_and_values(backend, sql, values)
    };
    if variant == Variant::Joined {
        let rows = db
            .query_all_raw(statement(&queries.joined, vec![student_id.into()]))
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let (header, must_change_password) = student_of(first)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            records.extend(record_of(row, "fee_id")?);
        }
        return Ok(Some(PageData {
            header,
            must_change_password,
            records,
        }));
    }
    let student = if variant == Variant::Today {
        statement(
            &queries.student_limited,
            vec![student_id.into(), 1_u64.into()],
        )
    } else {
        statement(&queries.student, vec![student_id.into()])
    };
    let Some(row) = db.query_one_raw(student).await? else {
        return Ok(None);
    };
    let (header, must_change_password) = student_of(&row)?;
    let rows = db
        .query_all_raw(statement(&queries.fee_items, vec![student_id.into()]))
        .await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        records.extend(record_of(row, "id")?);
    }
    Ok(Some(PageData {
        header,
        must_change_password,
        records,
    }))
}

/// The page's header and whether the student must change the password first.
fn student_of(row: &sea_orm::QueryResult) -> anyhow::Result<(StudentHeader, bool)> {
    let id_card: String = row.try_get("", "id_card")?;
    let header = StudentHeader {
        name: row.try_get("", "name")?,
        gender: if row.try_get::<String>("", "gender")? == "男" {
            "男"
        } else {
            "女"
        },
        masked_id_card: IdCardNumber::parse(&id_card)
            .map(|id| id.masked())
            .unwrap_or_else(|_| "******************".to_owned()),
        grade: row.try_get("", "grade")?,
        class_name: row.try_get("", "class_name")?,
    };
    Ok((header, row.try_get("", "must_change_password")?))
}

/// A fee item; `None` for the joined query's row of a student without items.
fn record_of(row: &sea_orm::QueryResult, id_column: &str) -> anyhow::Result<Option<FeeItemRecord>> {
    let Some(id) = row.try_get::<Option<i64>>("", id_column)? else {
        return Ok(None);
    };
    Ok(Some(FeeItemRecord {
        id,
        academic_year: row.try_get("", "academic_year")?,
        item: row.try_get("", "item")?,
        amount_fen: row.try_get("", "amount_fen")?,
        status: FeeItemStatus::try_from_value(&row.try_get::<String>("", "status")?)?,
        deferred_until: row.try_get::<Option<DateTime<Utc>>>("", "deferred_until")?,
        updated_at: row.try_get("", "updated_at")?,
    }))
}

/// The fee list served another way: the same session API, rendering and middleware as
/// the app, the data read the `variant` way from `db`.
#[derive(Clone)]
struct Prototype {
    db: DatabaseConnection,
    queries: Arc<Queries>,
    variant: Variant,
    sessions: Sessions,
    clock: Clock,
}

fn prototype_router(prototype: Prototype) -> Router {
    with_app_layers(
        Router::new()
            .route("/fees", axum::routing::get(prototype_fees))
            .with_state(prototype),
    )
}

async fn prototype_fees(State(prototype): State<Prototype>, headers: HeaderMap) -> Response {
    match prototype_page(&prototype, &headers).await {
        Ok(response) => response,
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")).into_response(),
    }
}

async fn prototype_page(prototype: &Prototype, headers: &HeaderMap) -> anyhow::Result<Response> {
    let now = prototype.clock.now();
    let elsewhere = || Ok(StatusCode::SEE_OTHER.into_response());
    let Some(mut session) = prototype.sessions.load(headers, now).await? else {
        return elsewhere();
    };
    let Some(student_id) = session.data.student_id else {
        return elsewhere();
    };
    let data = page_data(
        &prototype.db,
        &prototype.queries,
        prototype.variant,
        student_id,
    )
    .await?;
    let Some(data) = data.filter(|data| !data.must_change_password) else {
        return elsewhere();
    };
    let list = FeeList::from_records(&data.records, now);
    let notice = session.data.notice.take();
    if notice.is_some() {
        prototype.sessions.save(&mut session, now).await?;
    }
    let markup = fee_list(
        Surface::Pc,
        SCHOOL,
        &session.data.csrf,
        &data.header,
        &list,
        notice.as_deref(),
    );
    let mut response = (StatusCode::OK, markup).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /fees` through a router in-process; the body.
async fn oneshot_fees(router: Router, session: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let request = axum::http::Request::builder()
        .uri("/fees")
        .header(COOKIE, format!("{COOKIE_NAME}={session}"))
        .body(Body::empty())?;
    let response = router.oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((status, body))
}

// ---------------------------------------------------------------------------------
// The run.

struct Bench<'a> {
    app: &'a Runtime,
    driver: &'a Runtime,
    backend: &'a Backend,
    settings: &'a Settings,
}

impl Bench<'_> {
    /// Runs `work` (which returns latencies and wall time) with the CPU counters read
    /// around it, the PostgreSQL backends serving us looked up just before.
    fn measured(
        &self,
        name: &str,
        concurrency: usize,
        work: impl FnOnce() -> anyhow::Result<(Vec<Duration>, Duration)>,
    ) -> anyhow::Result<Row> {
        self.app.block_on(wait_until_idle())?;
        let pids = self.app.block_on(self.backend.our_postgres_pids())?;
        let before = Ticks::now(&pids);
        let (latencies, wall) = work()?;
        let cpu = Ticks::now(&pids).since(before);
        Ok(Row::new(name.to_owned(), concurrency, latencies, wall, cpu))
    }

    /// One part on the app's runtime: a warm-up of a tenth, then `count` ops from
    /// `tasks` tasks.
    fn part<F, Fut>(&self, name: &str, count: usize, tasks: usize, op: F) -> anyhow::Result<Row>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        eprintln!("  {name}…");
        let op = Arc::new(op);
        self.app
            .block_on(concurrently((count / 10).max(tasks), tasks, op.clone()))?;
        self.measured(name, tasks, || {
            self.app.block_on(concurrently(count, tasks, op))
        })
    }

    /// Warm-up, then the timed load, CPU measured around the timed part only.
    /// `between` runs on the app's runtime after the warm-up.
    fn http(
        &self,
        name: &str,
        port: u16,
        (warmup, timed): (Vec<Exchange>, Vec<Exchange>),
        between: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<Row> {
        eprintln!("  {name}…");
        let connections = self.settings.connections;
        let senders = self.driver.block_on(async {
            let mut senders = Vec::with_capacity(connections);
            for _ in 0..connections {
                senders.push(connect(port).await?);
            }
            Ok::<_, anyhow::Error>(senders)
        })?;
        let (senders, _, _) = self.driver.block_on(load(senders, warmup))?;
        self.app.block_on(between)?;
        self.measured(name, connections, || {
            let (_, latencies, wall) = self.driver.block_on(load(senders, timed))?;
            Ok((latencies, wall))
        })
    }

    fn run(&self, sessions_out: &mut Vec<String>) -> anyhow::Result<()> {
        let (app, backend, settings) = (self.app, self.backend, self.settings);
        let requests = settings.requests;
        let connections = settings.connections;
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        eprintln!(
            "fee list benchmark ({}): {} students × 3 items, {requests} requests per scenario, \
             {connections} connections, {cores} cores",
            backend.label, settings.students
        );
        let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        eprintln!("  seeding through the import…");
        let seed_start = Instant::now();
        let seeded = app.block_on(seed(&backend.store, &backend.clock, settings.students))?;
        let seed_time = seed_start.elapsed();

        let (state, port, stop) = app.block_on(async {
            let built = App::build(backend.config()?, backend.services()).await?;
            let state = built.state().clone();
            let port = built.local_addr()?.port();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(error) = built.run_until_stopped(shutdown).await {
                    eprintln!("the app stopped: {error:#}");
                }
            });
            Ok::<_, anyhow::Error>((state, port, stop))
        })?;
        let students = Arc::new(app.block_on(sign_in(&state, &seeded))?);
        sessions_out.extend(students.iter().map(|student| student.session.clone()));
        let warmup = settings.students.max(requests / 10);
        let refresh = || refresh_sessions(state.clone(), students.clone());

        // The app's own page for the first student: the bare server's answer, and what
        // the prototype must produce byte for byte.
        let real_router = campus_pay::web::router(state.clone());
        let (status, page) =
            app.block_on(oneshot_fees(real_router.clone(), &students[0].session))?;
        check(
            &Expect::Contains(name_marker(&students[0].name)),
            status,
            &page,
        )?;

        let queries = Arc::new(Queries::new(backend.sql_backend()));
        let pool = app.block_on(backend.what_if_pool(false))?;
        let pool_size = if backend.is_sqlite() {
            SQLITE_MAX_CONNECTIONS
        } else {
            POSTGRES_MAX_CONNECTIONS
        };
        let read_pool = if backend.is_sqlite() {
            Some(app.block_on(backend.what_if_pool(true))?)
        } else {
            None
        };
        // The ways tried: a control (today's queries, the store's pool settings), then
        // the changes; the flag: also served over HTTP as a prototype of the page.
        let mut ways = vec![
            (
                format!("today's two queries (student `… LIMIT ?`), pool of {pool_size}"),
                pool.clone(),
                Variant::Today,
                true,
            ),
            (
                format!("two queries, student without LIMIT, pool of {pool_size}"),
                pool.clone(),
                Variant::NoLimit,
                false,
            ),
            (
                format!("one joined query, pool of {pool_size}"),
                pool.clone(),
                Variant::Joined,
                true,
            ),
        ];
        if let Some(read_pool) = &read_pool {
            ways.push((
                format!(
                    "two queries, student without LIMIT, read-only pool of {SQLITE_READ_CONNECTIONS}"
                ),
                read_pool.clone(),
                Variant::NoLimit,
                true,
            ));
            ways.push((
                format!("one joined query, read-only pool of {SQLITE_READ_CONNECTIONS}"),
                read_pool.clone(),
                Variant::Joined,
                true,
            ));
        }
        let prototype = |db: &DatabaseConnection, variant| Prototype {
            db: db.clone(),
            queries: queries.clone(),
            variant,
            sessions: state.sessions(),
            clock: state.clock.clone(),
        };
        for (name, db, variant, _) in &ways {
            let (status, prototype_page) = app.block_on(oneshot_fees(
                prototype_router(prototype(db, *variant)),
                &students[0].session,
            ))?;
            ensure!(
                status == StatusCode::OK && prototype_page == page,
                "the prototype ({name}) answers another page than the app's"
            );
        }

        // HTTP.
        let mut http_rows = Vec::new();
        let bare_port = app.block_on(serve(bare_router(page.clone())))?;
        http_rows.push(self.http(
            "bare axum handler, constant page of the same size",
            bare_port,
            (
                exchanges(&students, warmup, Some(&page)),
                exchanges(&students, requests, Some(&page)),
            ),
            async { Ok(()) },
        )?);
        let scans_before = app.block_on(backend.table_scans())?;
        let redis_before = app.block_on(backend.redis_calls())?;
        http_rows.push(self.http(
            &format!("GET /fees, the app ({})", backend.label),
            port,
            (
                exchanges(&students, warmup, None),
                exchanges(&students, requests, None),
            ),
            refresh(),
        )?);
        let redis_after = app.block_on(backend.redis_calls())?;
        // PostgreSQL's backends report their counters within a second of going idle.
        app.block_on(async { tokio::time::sleep(Duration::from_millis(2_500)).await });
        let scans_after = app.block_on(backend.table_scans())?;
        // The prototypes: the control, and the changes worth having (the LIMIT alone
        // is in the what-if table only).
        for (name, db, variant, _) in ways.iter().filter(|way| way.3) {
            let prototype_port = app.block_on(serve(prototype_router(prototype(db, *variant))))?;
            http_rows.push(self.http(
                &format!("prototype: {name}"),
                prototype_port,
                (
                    exchanges(&students, warmup, None),
                    exchanges(&students, requests, None),
                ),
                refresh(),
            )?);
        }

        // The parts of a request.
        app.block_on(refresh())?;
        let mut parts = Vec::new();
        {
            let sessions = state.sessions();
            let clock = state.clock.clone();
            let students = students.clone();
            let headers: Arc<Vec<HeaderMap>> = Arc::new(
                students
                    .iter()
                    .map(|student| cookie_headers(&student.session))
                    .collect(),
            );
            parts.push(self.part(
                "session lookup (Sessions::load: cache GET + JSON)",
                requests,
                connections,
                move |index| {
                    let (sessions, clock, students, headers) = (
                        sessions.clone(),
                        clock.clone(),
                        students.clone(),
                        headers.clone(),
                    );
                    async move {
                        let slot = index % students.len();
                        let session = sessions.load(&headers[slot], clock.now()).await?;
                        ensure!(
                            session.and_then(|s| s.data.student_id) == Some(students[slot].id),
                            "wrong session"
                        );
                        Ok(())
                    }
                },
            )?);
        }
        {
            let (store, students) = (backend.store.clone(), students.clone());
            parts.push(
                self.part("Store::find_student", requests, connections, move |index| {
                    let (store, students) = (store.clone(), students.clone());
                    async move {
                        let student = &students[index % students.len()];
                        let found = store.find_student(student.id).await?;
                        ensure!(
                            found.is_some_and(|s| s.name == student.name),
                            "wrong student"
                        );
                        Ok(())
                    }
                })?,
            );
        }
        {
            let (store, students) = (backend.store.clone(), students.clone());
            parts.push(
                self.part("Store::fee_items_of", requests, connections, move |index| {
                    let (store, students) = (store.clone(), students.clone());
                    async move {
                        let student = &students[index % students.len()];
                        let items = store.fee_items_of(student.id).await?;
                        ensure!(items.len() == 3, "{} items", items.len());
                        Ok(())
                    }
                })?,
            );
        }
        {
            let (store, students) = (backend.store.clone(), students.clone());
            parts.push(self.part(
                "both, one after the other (a request's database work)",
                requests,
                connections,
                move |index| {
                    let (store, students) = (store.clone(), students.clone());
                    async move {
                        let student = &students[index % students.len()];
                        let found = store.find_student(student.id).await?;
                        ensure!(found.is_some(), "no student");
                        let items = store.fee_items_of(student.id).await?;
                        ensure!(items.len() == 3, "{} items", items.len());
                        Ok(())
                    }
                },
            )?);
        }
        {
            let records = app.block_on(backend.store.fee_items_of(students[0].id))?;
            let header = StudentHeader {
                name: students[0].name.clone(),
                gender: gender(0),
                masked_id_card: "620602********0008".to_owned(),
                grade: 2026,
                class_name: "汽修1班".to_owned(),
            };
            parts.push(self.part(
                "render: FeeList + maud page (one task)",
                requests * SINGLE_TASK_FACTOR,
                1,
                move |_| {
                    let list = FeeList::from_records(&records, Utc::now());
                    let page = fee_list(
                        Surface::Pc,
                        SCHOOL,
                        "csrf-token-of-32-characters-xxxx",
                        &header,
                        &list,
                        None,
                    )
                    .into_string();
                    async move {
                        ensure!(!page.is_empty(), "empty page");
                        Ok(())
                    }
                },
            )?);
        }
        {
            let students = students.clone();
            parts.push(self.part(
                "whole router via oneshot, no sockets",
                requests,
                connections,
                move |index| {
                    let (router, students) = (real_router.clone(), students.clone());
                    async move {
                        let student = &students[index % students.len()];
                        let (status, body) = oneshot_fees(router, &student.session).await?;
                        check(&Expect::Contains(name_marker(&student.name)), status, &body)
                    }
                },
            )?);
        }
        for keys in [10, settings.students] {
            let cache = Arc::new(MemoryCache::new(Clock::system()));
            let value =
                serde_json::json!({"csrf": "x".repeat(32), "student_id": 1, "touched_at": 0})
                    .to_string();
            app.block_on(async {
                for key in 0..keys {
                    cache
                        .set(
                            &format!("session:{key}"),
                            &value,
                            Duration::from_secs(1_800),
                        )
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            })?;
            parts.push(self.part(
                &format!("MemoryCache::get, {keys} live keys (one task)"),
                requests * SINGLE_TASK_FACTOR,
                1,
                move |index| {
                    let cache = cache.clone();
                    async move {
                        let found = cache.get(&format!("session:{}", index % keys)).await?;
                        ensure!(found.is_some(), "missing key");
                        Ok(())
                    }
                },
            )?);
        }

        // The ways, on the database work alone.
        let mut what_ifs = Vec::new();
        for (name, db, variant, _) in ways {
            let (queries, students) = (queries.clone(), students.clone());
            what_ifs.push(self.part(&name, requests, connections, move |index| {
                let (db, queries, students) = (db.clone(), queries.clone(), students.clone());
                async move {
                    let student = &students[index % students.len()];
                    let data = page_data(&db, &queries, variant, student.id)
                        .await?
                        .context("no student")?;
                    ensure!(data.header.name == student.name, "wrong student");
                    ensure!(data.records.len() == 3, "{} items", data.records.len());
                    Ok(())
                }
            })?);
        }

        let _ = stop.send(());
        let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        // The report.
        println!();
        println!(
            "### GET /fees — {} ({} students × 3 items, {connections} connections, {cores} cores; \
             app runtime {APP_WORKERS} workers, driver 1 thread, same process)",
            backend.label, settings.students
        );
        println!();
        println!(
            "| scenario | requests | requests/s | p50 | p99 | app CPU/req | driver CPU/req | \
             db+cache server CPU/req | other load |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &http_rows {
            println!(
                "| {} | {} | {:.0} | {} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.2} cores |",
                row.name,
                row.ops,
                row.per_second,
                micros(row.p50),
                micros(row.p99),
                row.app_cpu,
                row.driver_cpu,
                row.services_cpu,
                row.other_cores,
            );
        }
        for (title, rows) in [
            (
                "Parts of a request, each alone on the app's runtime:",
                &parts,
            ),
            (
                "What-if: a request's database work on a second pool with the store's settings:",
                &what_ifs,
            ),
        ] {
            println!();
            println!("{title}");
            println!();
            println!(
                "| part | ops | concurrency | ops/s | p50 | p99 | app CPU/op | db+cache server CPU/op | other load |"
            );
            println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for row in rows {
                println!(
                    "| {} | {} | {} | {:.0} | {} | {} | {:.1} µs | {:.1} µs | {:.2} cores |",
                    row.name,
                    row.ops,
                    row.concurrency,
                    row.per_second,
                    micros(row.p50),
                    micros(row.p99),
                    row.app_cpu,
                    row.services_cpu,
                    row.other_cores,
                );
            }
        }
        println!();
        let total = (requests + warmup) as f64;
        if let (Some(before), Some(after)) = (scans_before, scans_after) {
            println!(
                "PostgreSQL scans during the app's GET /fees scenario (warm-up included): \
                 students {:.2}/request, fee_items {:.2}/request.",
                (after.0 - before.0) as f64 / total,
                (after.1 - before.1) as f64 / total,
            );
        }
        if let (Some(before), Some(after)) = (redis_before, redis_after) {
            println!(
                "Redis calls during the app's GET /fees scenario (server-wide; warm-up and one \
                 session refresh of {} included): GET {:.2}/request, SET {:.2}/request.",
                settings.students,
                (after.0 - before.0) as f64 / total,
                (after.1 - before.1) as f64 / total,
            );
        }
        let real = &http_rows[1];
        let per_request = real.app_cpu + real.services_cpu;
        println!(
            "Seeding {} students and {} fee items through the import took {:.1} s.",
            settings.students,
            3 * settings.students,
            seed_time.as_secs_f64()
        );
        println!(
            "The app's CPU per request with its database and cache servers: {per_request:.0} µs, \
             so at most {:.0} requests/s on {cores} otherwise idle cores.",
            cores as f64 * 1e6 / per_request
        );
        println!(
            "Load average before: {}; after: {}.",
            load_before.trim(),
            load_after.trim()
        );
        println!(
            "Log filter: {}.",
            std::env::var("RUST_LOG").unwrap_or_else(|_| SERVE_LOG_FILTER.to_owned())
        );
        if real.per_second < 5_000.0 || real.p99 > Duration::from_millis(20) {
            eprintln!("target (≥ 5,000 requests/s, p99 < 20 ms at 64 connections) missed");
        }
        Ok(())
    }
}
