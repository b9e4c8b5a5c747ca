//! End-to-end WeChat Pay payments per second, beside the raw RSA-2048 signing rate of
//! the same machine in the same run.
//!
//! `cargo bench --bench payments` (release build). One process, three tokio runtimes,
//! their threads named so that each side's CPU time can be read from
//! `/proc/self/task`:
//!
//! - `cp-app`: the application as `campus-pay serve` builds it (`App::build`, the same
//!   log filter), on PostgreSQL (a fresh schema `cp_bench_<uuid>`, dropped afterwards)
//!   and Redis (keys under a fresh prefix, deleted afterwards), serving
//!   `/pay/notify/wechat` on loopback with `CAMPUSPAY_PUBLIC_URL=http://127.0.0.1:PORT`;
//! - `cp-wxpay`: the WeChat Pay sandbox (`WechatPaySandbox`), which verifies our
//!   requests, signs its answers and notifications and encrypts their resources;
//! - `cp-drv`: the load driver (one thread).
//!
//! The students and their fee items go in through the real import (CSV text through
//! `read_table_bytes`, `parse_students`/`parse_fees`, `Store::import_students`/
//! `import_fees`): one item per student, valid 18-character ID numbers (ISO 7064
//! MOD 11-2 check character, born 1990–2008).
//!
//! One payment, each for its own student, timed from its start to the notification's
//! 204:
//! 1. `Checkout::start(student, [item], WechatJsapi, openid)` on the app's runtime:
//!    the order is taken in a transaction, the JSAPI prepay is signed and POSTed to the
//!    sandbox, its signed answer verified, and the bridge's `paySign` signed;
//! 2. `WechatPaySandbox::pay(out_trade_no)` on the sandbox's runtime: the sandbox marks
//!    it paid and POSTs the signed, AES-256-GCM encrypted notification to the app,
//!    which verifies, decrypts, applies and records it, answering 204.
//!
//! RSA per payment: our side signs 2 (the request's `Authorization`, `paySign`) and
//! verifies 2 (the prepay answer, the notification); the sandbox, on this same
//! machine, signs 2 (its answer, the notification) and verifies 1 (our request).
//! The signing rate is measured with `MerchantKey::sign_sha256_base64` on one thread
//! per core for a fixed time, before and after the payments; the verifying rate
//! likewise with `WechatPayPublicKey::verify_sha256`. The payments are set against
//! the signing-bound limit (signing rate / 2) and against the limit of all the RSA
//! work on this machine (4 signatures, 3 verifications: with the sandbox here, about
//! half the former by construction), both wall-clock (sharing the machine with
//! whatever else runs) and by CPU time (what idle cores would do, our side alone
//! included: the sandbox is WeChat's work in production).
//!
//! Afterwards the books are checked: every order paid exactly once, with the
//! sandbox's transaction, every item paid by its order, one accepted notification
//! per order and none refused or duplicated, every `paySign` valid for its prepay_id.
//!
//! - `CAMPUSPAY_BENCH_DATABASE_URL`: PostgreSQL (default
//!   `postgres://postgres@127.0.0.1:5432/test`);
//! - `CAMPUSPAY_BENCH_REDIS_URL`: Redis (default `redis://127.0.0.1:6379`);
//! - `CAMPUSPAY_BENCH_PAYMENTS`: payments in the main pass (default 10,000);
//! - `CAMPUSPAY_BENCH_CONCURRENCY`: payments in flight in the main pass (default 32);
//! - `CAMPUSPAY_BENCH_LOW_CONCURRENCY`: further, smaller passes (a tenth of the
//!   payments each) at these concurrencies, comma-separated, for the latency with
//!   less queueing (default `4,1`; empty or `0`: none);
//! - `CAMPUSPAY_BENCH_RSA_SECONDS`: length of each RSA measurement (default 3);
//! - `RUST_LOG`: overrides the log filter, as for `serve`.

#[path = "common/procfs.rs"]
mod procfs;

use procfs::{local_ports_to, parse_stat};
use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use campus_pay::background::Background;
use campus_pay::cache::{RedisCache, SharedCache};
use campus_pay::clock::Clock;
use campus_pay::config::{Config, Variables};
use campus_pay::domain::id_card::{IdCardNumber, check_character};
use campus_pay::import::fees::parse_fees;
use campus_pay::import::read::read_table_bytes;
use campus_pay::import::students::parse_students;
use campus_pay::pay::Prepaid;
use campus_pay::pay::checkout::{Checkout, Started};
use campus_pay::pay::wechatpay::signing::{JsapiPayParams, pay_sign_message};
use campus_pay::pay::wechatpay::{MerchantKey, WechatPayPublicKey};
use campus_pay::sandbox::merchant::{self, sandbox_merchant, write_key_files};
use campus_pay::sandbox::wechat_pay::{
    MERCHANT_PRIVATE_KEY_PEM, TradeState as SandboxState, WechatPaySandbox,
};
use campus_pay::store::{NotificationVerdict, OrderStatus, PaymentChannel, Store};
use campus_pay::web::{App, Services};
use chrono::NaiveDate;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use tokio::runtime::{Handle, Runtime};

const DATABASE_VAR: &str = "CAMPUSPAY_BENCH_DATABASE_URL";
const REDIS_VAR: &str = "CAMPUSPAY_BENCH_REDIS_URL";
const PAYMENTS_VAR: &str = "CAMPUSPAY_BENCH_PAYMENTS";
const CONCURRENCY_VAR: &str = "CAMPUSPAY_BENCH_CONCURRENCY";
const LOW_CONCURRENCY_VAR: &str = "CAMPUSPAY_BENCH_LOW_CONCURRENCY";
const RSA_SECONDS_VAR: &str = "CAMPUSPAY_BENCH_RSA_SECONDS";
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_PAYMENTS: usize = 10_000;
const DEFAULT_CONCURRENCY: usize = 32;
const DEFAULT_LOW_CONCURRENCY: &str = "4,1";
const DEFAULT_RSA_SECONDS: usize = 3;
/// Payments before the timed passes (pools and connections warm), per task.
const WARM_UP_ROUNDS: usize = 2;

/// What `campus-pay serve` installs (src/cli.rs).
const SERVE_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn";
const APP_THREAD: &str = "cp-app";
const SANDBOX_THREAD: &str = "cp-wxpay";
const DRIVER_THREAD: &str = "cp-drv";
const RSA_THREAD: &str = "cp-rsa";
const APP_WORKERS: usize = 2;
const SANDBOX_WORKERS: usize = 2;

const APPID: &str = "wx2c2769f8efd9abc2";
const SECRET: &str = "sandbox-app-secret-0001";
const TOKEN: &str = "campusbenchtoken";
const SCHOOL: &str = "武威职业学院";
/// The store's pool (src/store/mod.rs), for the report.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// RSA operations per payment, by side (see the module's documentation).
const OUR_SIGNATURES: f64 = 2.0;
const OUR_VERIFICATIONS: f64 = 2.0;
const SANDBOX_SIGNATURES: f64 = 2.0;
const SANDBOX_VERIFICATIONS: f64 = 1.0;

/// The merchant's public half, to check every `paySign`.
const MERCHANT_PUBLIC_KEY_PEM: &str = include_str!("../src/sandbox/keys/merchant_public_key.pem");

/// Where the ID numbers' districts are: 凉州区, 民勤县, 古浪县, 天祝县 (武威市).
const REGIONS: [&str; 4] = ["620602", "620621", "620622", "620623"];
/// ISO 7064 MOD 11-2, as GB 11643 applies it.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
/// Coprime with the number of days in 1990–2008, so birthdays spread over the range.
const BIRTH_STRIDE: u64 = 2_749;
const MAX_STUDENTS: usize = 1_000_000;

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
    let app_runtime = runtime(APP_THREAD, APP_WORKERS)?;
    let sandbox_runtime = runtime(SANDBOX_THREAD, SANDBOX_WORKERS)?;
    let driver_runtime = runtime(DRIVER_THREAD, 1)?;
    let backend = app_runtime.block_on(Backend::open(&settings))?;
    let bench = Bench {
        app: &app_runtime,
        sandbox: &sandbox_runtime,
        driver: &driver_runtime,
        backend: &backend,
        settings: &settings,
    };
    let outcome = bench.run();
    if let Err(error) = app_runtime.block_on(backend.clean_up()) {
        eprintln!("warning: cleanup failed: {error:#}");
    }
    outcome
}

fn runtime(name: &str, workers: usize) -> anyhow::Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()?)
}

// ---------------------------------------------------------------------------------
// Settings and the backend.

struct Settings {
    payments: usize,
    concurrency: usize,
    low_concurrency: Vec<usize>,
    rsa_time: Duration,
    database_url: String,
    redis_url: String,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let payments = count_var(PAYMENTS_VAR, DEFAULT_PAYMENTS, 1)?;
        let concurrency = count_var(CONCURRENCY_VAR, DEFAULT_CONCURRENCY, 1)?;
        let low_concurrency: Vec<usize> = std::env::var(LOW_CONCURRENCY_VAR)
            .unwrap_or_else(|_| DEFAULT_LOW_CONCURRENCY.to_owned())
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<usize>()
                    .with_context(|| format!("{LOW_CONCURRENCY_VAR}: {part}"))
            })
            .filter(|parsed| !matches!(parsed, Ok(0)))
            .collect::<anyhow::Result<_>>()?;
        let rsa_seconds = count_var(RSA_SECONDS_VAR, DEFAULT_RSA_SECONDS, 1)?;
        let text = |name, default: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let settings = Settings {
            payments,
            concurrency,
            low_concurrency,
            rsa_time: Duration::from_secs(rsa_seconds as u64),
            database_url: text(DATABASE_VAR, DEFAULT_DATABASE_URL),
            redis_url: text(REDIS_VAR, DEFAULT_REDIS_URL),
        };
        ensure!(
            settings.students() <= MAX_STUDENTS,
            "{} payments in all (warm-up and every pass); at most {MAX_STUDENTS}",
            settings.students()
        );
        Ok(settings)
    }

    fn warm_up(&self) -> usize {
        WARM_UP_ROUNDS * self.concurrency
    }

    /// Payments in each low-concurrency pass.
    fn low_payments(&self, concurrency: usize) -> usize {
        (self.payments / 10).max(concurrency)
    }

    /// One student, so one payment, for each of: the warm-up, the main pass and the
    /// low-concurrency passes.
    fn students(&self) -> usize {
        self.warm_up()
            + self.payments
            + self
                .low_concurrency
                .iter()
                .map(|&concurrency| self.low_payments(concurrency))
                .sum::<usize>()
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

struct Backend {
    store: Store,
    cache: SharedCache,
    clock: Clock,
    database_url: String,
    admin: DatabaseConnection,
    schema: String,
    postgres_port: u16,
    redis: redis::Client,
    redis_prefix: String,
    key_dir: PathBuf,
}

impl Backend {
    async fn open(settings: &Settings) -> anyhow::Result<Backend> {
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let url = settings.database_url.clone();
        let parsed = url::Url::parse(&url).with_context(|| DATABASE_VAR.to_owned())?;
        ensure!(
            matches!(parsed.scheme(), "postgres" | "postgresql"),
            "{DATABASE_VAR} must be a postgres:// URL"
        );
        let schema = format!("cp_bench_{run_id}");
        let admin = Database::connect(url.as_str())
            .await
            .with_context(|| format!("{DATABASE_VAR}={url}: cannot connect"))?;
        admin
            .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
            .await?;
        let store = Store::connect_with_schema(&url, &schema).await?;
        store.migrate().await?;
        let clock = Clock::system();
        let redis_prefix = format!("campus-pay-bench-{run_id}:");
        let cache: SharedCache = Arc::new(
            RedisCache::connect(&settings.redis_url, &redis_prefix)
                .await
                .with_context(|| format!("{REDIS_VAR}={}: cannot connect", settings.redis_url))?,
        );
        let redis = redis::Client::open(settings.redis_url.as_str())?;
        let key_dir = std::env::temp_dir().join(format!("campus-pay-bench-payments-{run_id}"));
        Ok(Backend {
            store,
            cache,
            clock,
            database_url: url,
            admin,
            schema,
            postgres_port: parsed.port().unwrap_or(5432),
            redis,
            redis_prefix,
            key_dir,
        })
    }

    fn services(&self) -> Services {
        Services {
            store: self.store.clone(),
            cache: self.cache.clone(),
            clock: self.clock.clone(),
            background: Background::new(),
        }
    }

    /// `sql` with `{s}` standing for our schema, one row of integers.
    async fn numbers(&self, sql: &str) -> anyhow::Result<Vec<i64>> {
        let sql = sql.replace("{s}", &format!("\"{}\"", self.schema));
        let row = self
            .admin
            .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
            .await?
            .context("no row")?;
        let mut values = Vec::new();
        let mut index = 0;
        while let Ok(value) = row.try_get_by_index::<Option<i64>>(index) {
            values.push(value.unwrap_or(0));
            index += 1;
        }
        Ok(values)
    }

    /// The PostgreSQL backends serving this process (found by the local ports of our
    /// sockets to the server), so that other users of the server are not counted.
    async fn our_postgres_pids(&self) -> anyhow::Result<Vec<u32>> {
        let ports = local_ports_to("self", self.postgres_port);
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let rows = self
            .admin
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

    async fn clean_up(self) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.key_dir);
        let mut connection = self.redis.get_multiplexed_async_connection().await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.redis_prefix))
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        drop(self.store);
        self.admin
            .execute_unprepared(&format!(
                "SET lock_timeout = 5000; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .with_context(|| format!("cannot drop the schema {}", self.schema))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Data.

/// The number of days from 1990-01-01 to 2008-12-31.
fn birth_days() -> u64 {
    let first = NaiveDate::from_ymd_opt(1990, 1, 1).expect("a date");
    let last = NaiveDate::from_ymd_opt(2008, 12, 31).expect("a date");
    (last - first).num_days() as u64 + 1
}

/// The check character of 17 digits (ISO 7064 MOD 11-2).
fn id_check(first_17: &str) -> char {
    let sum: u32 = first_17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    char::from(ID_CHECK[(sum % 11) as usize])
}

/// An 18-character ID number, distinct for each `n` below [`MAX_STUDENTS`]: born on
/// a day of 1990–2008 (spread by a stride), the sequence's parity giving the gender.
fn id_card(n: usize) -> String {
    let days = birth_days();
    let n64 = n as u64;
    let block = n64 / days;
    let day = (n64 % days) * BIRTH_STRIDE % days;
    let birth = NaiveDate::from_ymd_opt(1990, 1, 1).expect("a date") + chrono::Days::new(day);
    // Within a block the day tells students apart, across blocks the sequence does.
    let sequence = block * 2 + n64 % 2;
    let first_17 = format!(
        "{}{}{sequence:03}",
        REGIONS[n % REGIONS.len()],
        birth.format("%Y%m%d")
    );
    format!("{first_17}{}", id_check(&first_17))
}

fn gender(n: usize) -> &'static str {
    if n % 2 == 1 { "男" } else { "女" }
}

/// A three-character name.
fn student_name(n: usize) -> String {
    [
        SURNAMES[n % SURNAMES.len()],
        GIVEN[(n / SURNAMES.len()) % GIVEN.len()],
        GIVEN[(n / (SURNAMES.len() * GIVEN.len())) % GIVEN.len()],
    ]
    .iter()
    .collect()
}

/// Yuan with two decimals, in the file, and in fen, as the order must charge it.
fn amount(n: usize) -> (String, i64) {
    let yuan = 3_000 + (n % 500) as i64;
    let cents = (n % 100) as i64;
    (format!("{yuan}.{cents:02}"), yuan * 100 + cents)
}

/// A 28-character openid, like WeChat's.
fn openid(n: usize) -> String {
    format!("oBench{n:0>22}")
}

/// One payment to make: a student and their one item.
struct Job {
    student_id: i64,
    item_id: i64,
    amount_fen: i64,
    openid: String,
}

/// Imports the students and their fee items and returns one job per student, in the
/// order generated.
async fn seed(store: &Store, clock: &Clock, count: usize) -> anyhow::Result<Vec<Job>> {
    let mut students_csv = String::from("身份证号,姓名,性别,年级,班级,专业,初始密码\n");
    let mut fees_csv = String::from("身份证号,学年,项目,金额\n");
    let mut cards = Vec::with_capacity(count);
    for n in 0..count {
        let card = id_card(n);
        // Our check character agrees with the program's, and the number parses.
        let ours = card.as_bytes()[17];
        ensure!(
            check_character(&card.as_bytes()[..17]) == Some(ours),
            "check character of {card}"
        );
        IdCardNumber::parse(&card).map_err(|error| anyhow::anyhow!("{card}: {error}"))?;
        let (yuan, fen) = amount(n);
        students_csv.push_str(&format!(
            "{card},{},{},2026,汽修{}班,汽车检测与维修技术,000000\n",
            student_name(n),
            gender(n),
            n % 40 + 1
        ));
        fees_csv.push_str(&format!("{card},2026-2027,学费,{yuan}\n"));
        cards.push((card, fen, openid(n)));
    }
    let now = clock.now();
    let students = parse_students(&read_table_bytes("students.csv", students_csv.as_bytes())?)?;
    let summary = store.import_students(&students, now, true).await?;
    ensure!(summary.added == count, "students added: {summary:?}");
    let fees = parse_fees(&read_table_bytes("fees.csv", fees_csv.as_bytes())?)?;
    let summary = store.import_fees(&fees, now, true).await?;
    ensure!(summary.added == count, "fee items added: {summary:?}");
    futures_util::stream::iter(cards)
        .map(|(card, amount_fen, openid)| async move {
            let student = store
                .find_student_by_id_card(&card)
                .await?
                .context("an imported student is missing")?;
            let items = store.fee_items_of(student.id).await?;
            ensure!(items.len() == 1, "{} items", items.len());
            ensure!(
                items[0].amount_fen == amount_fen,
                "the stored amount differs"
            );
            Ok::<_, anyhow::Error>(Job {
                student_id: student.id,
                item_id: items[0].id,
                amount_fen,
                openid,
            })
        })
        .buffered(16)
        .try_collect()
        .await
}

// ---------------------------------------------------------------------------------
// CPU accounting.

#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    app: u64,
    sandbox: u64,
    /// Every other thread of this process: the driver, and the main thread waiting.
    driver: u64,
    /// The PostgreSQL backends serving us.
    postgres: u64,
    /// `redis-server`.
    redis: u64,
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
                if comm.starts_with(APP_THREAD) {
                    ticks.app += used;
                } else if comm.starts_with(SANDBOX_THREAD) {
                    ticks.sandbox += used;
                } else if !comm.starts_with(RSA_THREAD) {
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
                match parse_stat(&stat) {
                    Some((_, used)) if postgres_pids.contains(&pid) => ticks.postgres += used,
                    Some(("redis-server", used)) => ticks.redis += used,
                    _ => {}
                }
            }
        }
        ticks.machine_busy = machine_busy();
        ticks
    }

    fn since(self, before: Ticks) -> Ticks {
        Ticks {
            app: self.app.saturating_sub(before.app),
            sandbox: self.sandbox.saturating_sub(before.sandbox),
            driver: self.driver.saturating_sub(before.driver),
            postgres: self.postgres.saturating_sub(before.postgres),
            redis: self.redis.saturating_sub(before.redis),
            machine_busy: self.machine_busy.saturating_sub(before.machine_busy),
        }
    }

    fn ours(self) -> u64 {
        self.app + self.sandbox + self.driver + self.postgres + self.redis
    }
}

/// Busy clock ticks of the whole machine: user nice system irq softirq steal.
fn machine_busy() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&index| fields.get(index))
        .sum()
}

fn ticks_to_micros(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / CLOCK_TICKS_PER_SECOND as f64
}

/// Cores busy with something other than `ours` during `wall`.
fn other_cores(machine_busy: u64, ours: u64, wall: Duration) -> f64 {
    ((machine_busy as f64 - ours as f64) / (wall.as_secs_f64() * CLOCK_TICKS_PER_SECOND as f64))
        .max(0.0)
}

// ---------------------------------------------------------------------------------
// The raw RSA rates.

struct RsaRate {
    name: String,
    threads: usize,
    ops: u64,
    per_second: f64,
    /// CPU per operation, in µs (this process's RSA threads).
    cpu: f64,
    other_cores: f64,
}

/// Runs `op` on `threads` threads for `time` and counts.
fn rsa_rate(
    name: &str,
    threads: usize,
    time: Duration,
    op: Arc<dyn Fn() + Send + Sync>,
) -> anyhow::Result<RsaRate> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, count, barrier, op) =
                (stop.clone(), count.clone(), barrier.clone(), op.clone());
            std::thread::Builder::new()
                .name(RSA_THREAD.to_owned())
                .spawn(move || {
                    barrier.wait();
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) {
                        op();
                        done += 1;
                    }
                    count.fetch_add(done, Ordering::Relaxed);
                })
        })
        .collect::<Result<_, _>>()?;
    let busy_before = machine_busy();
    let cpu_before = rsa_thread_ticks();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    // The threads' ticks must be read while they exist.
    let cpu_after = rsa_thread_ticks();
    let busy_after = machine_busy();
    let wall = start.elapsed();
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("an RSA thread panicked"))?;
    }
    let ops = count.load(Ordering::Relaxed);
    ensure!(ops > 0, "no RSA operation completed");
    let cpu = cpu_after.saturating_sub(cpu_before);
    Ok(RsaRate {
        name: name.to_owned(),
        threads,
        ops,
        per_second: ops as f64 / wall.as_secs_f64(),
        cpu: ticks_to_micros(cpu) / ops as f64,
        other_cores: other_cores(busy_after.saturating_sub(busy_before), cpu, wall),
    })
}

/// CPU ticks of this process's RSA threads.
fn rsa_thread_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let (comm, used) = parse_stat(&stat)?;
            comm.starts_with(RSA_THREAD).then_some(used)
        })
        .sum()
}

/// A message the size of a prepay request's signed text.
fn sample_message() -> Vec<u8> {
    let body = format!(
        r#"{{"appid":"{APPID}","mchid":"1900000109","description":"{SCHOOL}-2026-2027学费","out_trade_no":"CP20260901123456ABCDEF0123","time_expire":"2026-09-01T12:49:56+08:00","notify_url":"http://127.0.0.1:43210/pay/notify/wechat","amount":{{"total":345099,"currency":"CNY"}},"payer":{{"openid":"oBench0000000000000000001234"}}}}"#
    );
    format!(
        "POST\n/v3/pay/transactions/jsapi\n1788246000\n593BEC0C930BF1AFEB40B4A08C8FB242\n{body}\n"
    )
    .into_bytes()
}

fn signing_rate(name: &str, threads: usize, time: Duration) -> anyhow::Result<RsaRate> {
    let key = Arc::new(MerchantKey::from_pem(MERCHANT_PRIVATE_KEY_PEM)?);
    ensure!(
        key.bits() == 2048,
        "the sandbox key has {} bits",
        key.bits()
    );
    let message = sample_message();
    rsa_rate(
        name,
        threads,
        time,
        Arc::new(move || {
            std::hint::black_box(key.sign_sha256_base64(std::hint::black_box(&message)));
        }),
    )
}

fn verifying_rate(name: &str, threads: usize, time: Duration) -> anyhow::Result<RsaRate> {
    let key = MerchantKey::from_pem(MERCHANT_PRIVATE_KEY_PEM)?;
    let public = Arc::new(WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_KEY_PEM)?);
    let message = sample_message();
    let signature = key.sign_sha256_base64(&message);
    ensure!(public.verify_sha256(&message, &signature), "no match");
    rsa_rate(
        name,
        threads,
        time,
        Arc::new(move || {
            assert!(public.verify_sha256(std::hint::black_box(&message), &signature));
        }),
    )
}

// ---------------------------------------------------------------------------------
// Payments.

/// What the driver needs to pay: the app's checkout on its runtime, the sandbox on
/// its own.
struct Payer {
    checkout: Checkout,
    app: Handle,
    sandbox: Arc<WechatPaySandbox>,
    sandbox_runtime: Handle,
    jobs: Vec<Job>,
}

/// A payment made, as the driver saw it.
struct Paid {
    job: usize,
    out_trade_no: String,
    order_id: i64,
    transaction_id: String,
    params: serde_json::Value,
    /// `Checkout::start`: order, prepay, paySign.
    start: Duration,
    /// `WechatPaySandbox::pay`: notification signed, sent, applied, answered.
    notify: Duration,
    total: Duration,
}

impl Payer {
    async fn pay(&self, index: usize) -> anyhow::Result<Paid> {
        let job = &self.jobs[index];
        let begun = Instant::now();
        let checkout = self.checkout.clone();
        let (student_id, item_id, openid) = (job.student_id, job.item_id, job.openid.clone());
        let started = self
            .app
            .spawn(async move {
                checkout
                    .start(
                        student_id,
                        &[item_id],
                        PaymentChannel::WechatJsapi,
                        Some(&openid),
                        None,
                    )
                    .await
            })
            .await??;
        let start = begun.elapsed();
        let Started::Ready { order, prepaid } = started else {
            bail!("checkout did not start: {started:?}");
        };
        let Prepaid::JsBridge(params) = prepaid else {
            bail!("not a JSAPI bridge: {prepaid:?}");
        };
        ensure!(
            order.status == OrderStatus::Created
                && order.student_id == job.student_id
                && order.amount_fen == job.amount_fen,
            "unexpected order {order:?}"
        );
        let sandbox = self.sandbox.clone();
        let number = order.out_trade_no.clone();
        let paid = self
            .sandbox_runtime
            .spawn(async move { sandbox.pay(&number).await })
            .await??;
        let total = begun.elapsed();
        ensure!(
            paid.notification_answers.len() == 1 && paid.notification_answers[0].0 == 204,
            "the notification was answered {:?}",
            paid.notification_answers
        );
        ensure!(
            paid.total == job.amount_fen,
            "the sandbox charged {}",
            paid.total
        );
        Ok(Paid {
            job: index,
            out_trade_no: order.out_trade_no,
            order_id: order.id,
            transaction_id: paid.transaction_id,
            params,
            start,
            notify: total - start,
            total,
        })
    }
}

/// The outcome of one pass.
struct Pass {
    name: String,
    concurrency: usize,
    paid: Vec<Paid>,
    failed: Vec<(usize, String)>,
    wall: Duration,
    cpu: Ticks,
}

/// Pays for jobs `range` with `tasks` tasks on the current runtime, each payment after
/// the previous one of its task. A failed payment is recorded, not fatal: the books
/// must show it.
async fn pay_all(
    payer: Arc<Payer>,
    range: Range<usize>,
    tasks: usize,
) -> (Vec<Paid>, Vec<(usize, String)>) {
    let handles: Vec<_> = (0..tasks.min(range.len()))
        .map(|task| {
            let payer = payer.clone();
            let range = range.clone();
            tokio::spawn(async move {
                let mut paid = Vec::with_capacity(range.len() / tasks + 1);
                let mut failed = Vec::new();
                for index in (range.start + task..range.end).step_by(tasks) {
                    match payer.pay(index).await {
                        Ok(done) => paid.push(done),
                        Err(error) => failed.push((index, format!("{error:#}"))),
                    }
                }
                (paid, failed)
            })
        })
        .collect();
    let mut paid = Vec::with_capacity(range.len());
    let mut failed = Vec::new();
    for handle in handles {
        match handle.await {
            Ok((done, errors)) => {
                paid.extend(done);
                failed.extend(errors);
            }
            Err(error) => failed.push((usize::MAX, format!("a driver task failed: {error}"))),
        }
    }
    (paid, failed)
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn sorted(durations: impl Iterator<Item = Duration>) -> Vec<Duration> {
    let mut all: Vec<Duration> = durations.collect();
    all.sort_unstable();
    all
}

fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Waits until the app's and the sandbox's threads have used no CPU for 300 ms.
async fn wait_until_idle() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let busy = || {
        let ticks = Ticks::now(&[]);
        ticks.app + ticks.sandbox
    };
    let mut last = busy();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = busy();
        if now == last {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the app never went idle");
        last = now;
    }
}

// ---------------------------------------------------------------------------------
// The books.

struct Books {
    checks: Vec<(String, bool)>,
}

impl Books {
    fn check(&mut self, what: String, ok: bool) {
        self.checks.push((what, ok));
    }

    fn balanced(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }
}

async fn check_books(
    backend: &Backend,
    sandbox: &WechatPaySandbox,
    jobs: &[Job],
    paid: &[&Paid],
    failed: usize,
) -> anyhow::Result<Books> {
    let total = jobs.len() as i64;
    let expected_fen: i64 = jobs.iter().map(|job| job.amount_fen).sum();
    let mut books = Books { checks: Vec::new() };
    books.check(
        format!(
            "payments completed by the driver: {} of {total}, {failed} failed",
            paid.len()
        ),
        paid.len() as i64 == total && failed == 0,
    );

    // Orders.
    let orders = backend
        .numbers(
            "SELECT count(*), count(*) FILTER (WHERE status = 'paid'), \
             count(*) FILTER (WHERE status <> 'paid'), count(DISTINCT student_id), \
             COALESCE(sum(amount_fen) FILTER (WHERE status = 'paid'), 0)::bigint, \
             count(*) FILTER (WHERE exception IS NOT NULL) FROM {s}.orders",
        )
        .await?;
    books.check(
        format!(
            "orders: {} in all, {} paid, {} not paid, {} students, {} with an exception",
            orders[0], orders[1], orders[2], orders[3], orders[5]
        ),
        orders[0] == total
            && orders[1] == total
            && orders[2] == 0
            && orders[3] == total
            && orders[5] == 0,
    );
    books.check(
        format!(
            "money: the paid orders hold {} fen; the items imported {expected_fen} fen",
            orders[4]
        ),
        orders[4] == expected_fen,
    );

    // Each order as the store's API gives it, against the sandbox's transaction.
    let store = &backend.store;
    let matching: Vec<bool> = futures_util::stream::iter(paid.iter())
        .map(|done| async move {
            let order = store.find_order(&done.out_trade_no).await?;
            let job = &jobs[done.job];
            Ok::<_, anyhow::Error>(order.is_some_and(|order| {
                order.id == done.order_id
                    && order.status == OrderStatus::Paid
                    && order.amount_fen == job.amount_fen
                    && order.student_id == job.student_id
                    && order.channel_trade_no.as_deref() == Some(done.transaction_id.as_str())
                    && order.paid_at.is_some()
                    && order.exception.is_none()
            }))
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let good = matching.iter().filter(|ok| **ok).count();
    books.check(
        format!(
            "Store::find_order: {good} of {} orders paid with the sandbox's transaction_id and amount",
            paid.len()
        ),
        good == paid.len(),
    );

    // Items.
    let items = backend
        .numbers(
            "SELECT count(*), count(*) FILTER (WHERE f.status = 'paid'), \
             count(*) FILTER (WHERE f.status = 'paid' AND o.status = 'paid' \
               AND o.student_id = f.student_id), \
             count(*) FILTER (WHERE f.status <> 'paid') \
             FROM {s}.fee_items f LEFT JOIN {s}.orders o ON o.id = f.paid_order_id",
        )
        .await?;
    books.check(
        format!(
            "fee items: {} in all, {} paid, {} paid by a paid order of their student, {} not paid",
            items[0], items[1], items[2], items[3]
        ),
        items[0] == total && items[1] == total && items[2] == total && items[3] == 0,
    );
    let lines = backend
        .numbers(
            "SELECT count(*), count(DISTINCT order_id), count(DISTINCT fee_item_id) \
             FROM {s}.order_items",
        )
        .await?;
    books.check(
        format!(
            "order lines: {} for {} orders and {} items",
            lines[0], lines[1], lines[2]
        ),
        lines.iter().all(|count| *count == total),
    );

    // Notifications.
    let accepted = store
        .count_notifications(NotificationVerdict::Accepted)
        .await? as i64;
    let duplicate = store
        .count_notifications(NotificationVerdict::Duplicate)
        .await? as i64;
    let refused = store
        .count_notifications(NotificationVerdict::Refused)
        .await? as i64;
    let distinct = backend
        .numbers(
            "SELECT count(DISTINCT out_trade_no), count(DISTINCT order_id) \
             FROM {s}.payment_notifications WHERE verdict = 'accepted' AND reason IS NULL",
        )
        .await?;
    books.check(
        format!(
            "notifications: {accepted} accepted (for {} orders), {duplicate} duplicate, {refused} refused",
            distinct[1]
        ),
        accepted == total
            && distinct[0] == total
            && distinct[1] == total
            && duplicate == 0
            && refused == 0,
    );

    // The sandbox's side.
    let transactions = sandbox.transactions();
    let successful = transactions
        .iter()
        .filter(|tx| tx.trade_state == SandboxState::Success)
        .count();
    books.check(
        format!(
            "sandbox: {} transactions, {successful} paid",
            transactions.len()
        ),
        transactions.len() as i64 == total && successful as i64 == total,
    );
    let answers = sandbox.notification_answers();
    let acknowledged = answers
        .iter()
        .filter(|(_, status, _)| *status == 204)
        .count();
    books.check(
        format!(
            "sandbox: {} notifications sent, {acknowledged} answered 204",
            answers.len()
        ),
        answers.len() as i64 == total && acknowledged as i64 == total,
    );

    // Every paySign, for the prepay_id the sandbox handed out for that order.
    let merchant = WechatPayPublicKey::from_pem(MERCHANT_PUBLIC_KEY_PEM)?;
    let prepay_ids: HashMap<&str, &[String]> = transactions
        .iter()
        .map(|tx| (tx.out_trade_no.as_str(), tx.prepay_ids.as_slice()))
        .collect();
    let mut signed = 0;
    for done in paid {
        let Ok(params) = serde_json::from_value::<JsapiPayParams>(done.params.clone()) else {
            continue;
        };
        let message = pay_sign_message(
            &params.app_id,
            &params.time_stamp,
            &params.nonce_str,
            &params.package,
        );
        let prepay_id = params.package.strip_prefix("prepay_id=").unwrap_or("");
        let handed_out = prepay_ids
            .get(done.out_trade_no.as_str())
            .is_some_and(|ids| ids.iter().any(|id| id == prepay_id));
        if params.app_id == APPID
            && params.sign_type == "RSA"
            && handed_out
            && merchant.verify_sha256(message.as_bytes(), &params.pay_sign)
        {
            signed += 1;
        }
    }
    books.check(
        format!(
            "paySign: {signed} of {} valid for the sandbox's prepay_id",
            paid.len()
        ),
        signed == paid.len(),
    );
    Ok(books)
}

// ---------------------------------------------------------------------------------
// The run.

struct Bench<'a> {
    app: &'a Runtime,
    sandbox: &'a Runtime,
    driver: &'a Runtime,
    backend: &'a Backend,
    settings: &'a Settings,
}

impl Bench<'_> {
    fn run(&self) -> anyhow::Result<()> {
        let settings = self.settings;
        let backend = self.backend;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        // The raw RSA rates, before anything else runs.
        let mut rsa = vec![
            signing_rate(
                "RSA-2048 sign, before the payments",
                cores,
                settings.rsa_time,
            )?,
            verifying_rate("RSA-2048 verify", cores, settings.rsa_time)?,
        ];

        // The sandbox, and the app configured against it.
        let sandbox = Arc::new(self.sandbox.block_on(WechatPaySandbox::spawn(
            sandbox_merchant(APPID),
            backend.clock.clone(),
        ))?);
        let key_files = write_key_files(&backend.key_dir)?;
        let pay_settings = merchant::settings(sandbox.base_url().as_str(), &key_files);
        // The port must be known before the config: take a free one and let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let public_url = format!("http://127.0.0.1:{port}");
        let mut pairs = vec![
            ("CAMPUSPAY_LISTEN", listen.as_str()),
            ("CAMPUSPAY_PUBLIC_URL", public_url.as_str()),
            ("CAMPUSPAY_DATABASE_URL", backend.database_url.as_str()),
            ("CAMPUSPAY_SCHOOL_NAME", SCHOOL),
            ("CAMPUSPAY_WECHAT_APPID", APPID),
            ("CAMPUSPAY_WECHAT_SECRET", SECRET),
            ("CAMPUSPAY_WECHAT_TOKEN", TOKEN),
            // Nothing listens there; payments never call the official account's API.
            ("CAMPUSPAY_WECHAT_API_BASE", "http://127.0.0.1:9"),
            ("CAMPUSPAY_WECHAT_OAUTH_BASE", "http://127.0.0.1:9"),
        ];
        pairs.extend(
            pay_settings
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        );
        let config = Config::from_variables(&Variables::from_pairs(pairs))?;
        let app = self.app.block_on(App::build(config, backend.services()))?;
        let state = app.state().clone();
        ensure!(
            state.wechat_pay.is_some(),
            "WeChat Pay is not configured in the app"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = self.app.spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));

        // The students, one item each.
        let seed_start = Instant::now();
        let jobs = self
            .app
            .block_on(seed(&backend.store, &backend.clock, settings.students()))?;
        let seed_time = seed_start.elapsed();
        let payer = Arc::new(Payer {
            checkout: state.checkout.clone(),
            app: self.app.handle().clone(),
            sandbox: sandbox.clone(),
            sandbox_runtime: self.sandbox.handle().clone(),
            jobs,
        });

        // Warm-up, then the passes.
        let warm_up = 0..settings.warm_up();
        let main = warm_up.end..warm_up.end + settings.payments;
        let mut next = main.end;
        let (warm_paid, warm_failed) =
            self.driver
                .block_on(pay_all(payer.clone(), warm_up, settings.concurrency));
        self.app.block_on(wait_until_idle())?;
        let postgres_pids = self.app.block_on(backend.our_postgres_pids())?;
        let mut passes = vec![self.pass(
            &format!("payments, concurrency {}", settings.concurrency),
            &payer,
            main,
            settings.concurrency,
            &postgres_pids,
        )?];
        for &concurrency in &settings.low_concurrency {
            let range = next..next + settings.low_payments(concurrency);
            next = range.end;
            self.app.block_on(wait_until_idle())?;
            passes.push(self.pass(
                &format!("payments, concurrency {concurrency}"),
                &payer,
                range,
                concurrency,
                &postgres_pids,
            )?);
        }
        rsa.insert(
            1,
            signing_rate(
                "RSA-2048 sign, after the payments",
                cores,
                settings.rsa_time,
            )?,
        );
        let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

        // The books, over every payment made (warm-up included).
        let all_paid: Vec<&Paid> = warm_paid
            .iter()
            .chain(passes.iter().flat_map(|pass| pass.paid.iter()))
            .collect();
        let failures: Vec<&(usize, String)> = warm_failed
            .iter()
            .chain(passes.iter().flat_map(|pass| pass.failed.iter()))
            .collect();
        let books = self.app.block_on(check_books(
            backend,
            &sandbox,
            &payer.jobs,
            &all_paid,
            failures.len(),
        ))?;
        let _ = stop.send(());
        match self
            .app
            .block_on(async { tokio::time::timeout(Duration::from_secs(15), server).await })
        {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => eprintln!("warning: the app stopped with {error:#}"),
            Ok(Err(error)) => eprintln!("warning: the app's task failed: {error}"),
            Err(_) => eprintln!("warning: the app did not stop within 15 s"),
        }

        self.report(&rsa, &passes, &books, cores, postgres_pids.len());
        println!(
            "Seeding {} students with one fee item each through the import took {:.1} s; \
             {} warm-up payments ({} concurrent) came first and are in the books.",
            settings.students(),
            seed_time.as_secs_f64(),
            settings.warm_up(),
            settings.concurrency
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
        for (index, error) in failures.iter().take(5) {
            eprintln!("payment {index} failed: {error}");
        }
        ensure!(books.balanced(), "the books do not balance");
        Ok(())
    }

    fn pass(
        &self,
        name: &str,
        payer: &Arc<Payer>,
        range: Range<usize>,
        concurrency: usize,
        postgres_pids: &[u32],
    ) -> anyhow::Result<Pass> {
        let before = Ticks::now(postgres_pids);
        let start = Instant::now();
        let (paid, failed) = self
            .driver
            .block_on(pay_all(payer.clone(), range, concurrency));
        let wall = start.elapsed();
        let cpu = Ticks::now(postgres_pids).since(before);
        Ok(Pass {
            name: name.to_owned(),
            concurrency,
            paid,
            failed,
            wall,
            cpu,
        })
    }

    fn report(
        &self,
        rsa: &[RsaRate],
        passes: &[Pass],
        books: &Books,
        cores: usize,
        postgres_backends: usize,
    ) {
        let settings = self.settings;
        println!();
        println!(
            "### Payments end to end — PostgreSQL + Redis, WeChat Pay sandbox on loopback \
             ({cores} cores; app runtime {APP_WORKERS} workers, sandbox runtime \
             {SANDBOX_WORKERS} workers, driver 1 thread, same process; store pool of \
             {POSTGRES_MAX_CONNECTIONS}, {postgres_backends} PostgreSQL backends)"
        );
        println!();
        println!(
            "| scenario | ops | concurrency | ops/s | p50 | p99 | app CPU/op | sandbox CPU/op | \
             driver CPU/op | PostgreSQL CPU/op | Redis CPU/op | total CPU/op | other load |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for rate in rsa {
            println!(
                "| {} ({} threads) | {} | {} | {:.0} | | | | | | | | {:.0} µs | {:.2} cores |",
                rate.name,
                rate.threads,
                rate.ops,
                rate.threads,
                rate.per_second,
                rate.cpu,
                rate.other_cores
            );
        }
        for pass in passes {
            let ops = pass.paid.len().max(1);
            let per_op = |ticks: u64| ticks_to_micros(ticks) / ops as f64;
            let totals = sorted(pass.paid.iter().map(|paid| paid.total));
            let starts = sorted(pass.paid.iter().map(|paid| paid.start));
            let notifies = sorted(pass.paid.iter().map(|paid| paid.notify));
            println!(
                "| {}: order + prepay + paySign + notification → 204 | {}{} | {} | {:.1} | {} | {} | \
                 {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.2} cores |",
                pass.name,
                pass.paid.len(),
                if pass.failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failed)", pass.failed.len())
                },
                pass.concurrency,
                pass.paid.len() as f64 / pass.wall.as_secs_f64(),
                millis(percentile(&totals, 50)),
                millis(percentile(&totals, 99)),
                per_op(pass.cpu.app),
                per_op(pass.cpu.sandbox),
                per_op(pass.cpu.driver),
                per_op(pass.cpu.postgres),
                per_op(pass.cpu.redis),
                per_op(pass.cpu.ours()),
                other_cores(pass.cpu.machine_busy, pass.cpu.ours(), pass.wall),
            );
            println!(
                "| … of which Checkout::start (order, signed prepay, verified answer, paySign) \
                 | | | | {} | {} | | | | | | | |",
                millis(percentile(&starts, 50)),
                millis(percentile(&starts, 99)),
            );
            println!(
                "| … of which WechatPaySandbox::pay (signed, encrypted notification; verified, \
                 applied, recorded) | | | | {} | {} | | | | | | | |",
                millis(percentile(&notifies, 50)),
                millis(percentile(&notifies, 99)),
            );
        }
        println!();

        // Limits and ratios. Wall-clock: the rates as measured, sharing the machine with
        // whatever else ran. CPU: from the CPU time each operation took, so what idle
        // cores would do.
        let signing: Vec<&RsaRate> = rsa
            .iter()
            .filter(|rate| rate.name.contains("sign"))
            .collect();
        let mean = |values: &mut dyn Iterator<Item = f64>| {
            let (sum, count) =
                values.fold((0.0, 0), |(sum, count), value| (sum + value, count + 1));
            sum / f64::from(count.max(1))
        };
        let sign_rate = mean(&mut signing.iter().map(|rate| rate.per_second));
        let sign_cpu = mean(&mut signing.iter().map(|rate| rate.cpu));
        let verifying = rsa.iter().find(|rate| rate.name.contains("verify"));
        let verify_rate = verifying.map_or(f64::INFINITY, |rate| rate.per_second);
        let verify_cpu = verifying.map_or(0.0, |rate| rate.cpu);
        let signing_bound = sign_rate / OUR_SIGNATURES;
        let all_rsa = 1.0
            / ((OUR_SIGNATURES + SANDBOX_SIGNATURES) / sign_rate
                + (OUR_VERIFICATIONS + SANDBOX_VERIFICATIONS) / verify_rate);
        let core_micros = cores as f64 * 1e6;
        let idle_signing_bound = core_micros / (OUR_SIGNATURES * sign_cpu);
        let our_rsa = OUR_SIGNATURES * sign_cpu + OUR_VERIFICATIONS * verify_cpu;
        let sandbox_rsa = SANDBOX_SIGNATURES * sign_cpu + SANDBOX_VERIFICATIONS * verify_cpu;
        println!(
            "RSA-2048: signing {sign_rate:.0}/s on {cores} threads (mean of before and after; \
             {sign_cpu:.0} µs of CPU per signature), verifying {verify_rate:.0}/s \
             ({verify_cpu:.0} µs per verification)."
        );
        println!(
            "Limits, wall-clock: signing-bound (2 signatures a payment: the request and \
             paySign) {signing_bound:.0} payments/s; all RSA work on this machine (our 2 \
             signatures + 2 verifications, the sandbox's 2 + 1) {all_rsa:.0} payments/s, \
             {:.2} of the signing-bound limit by construction. By CPU (idle cores): \
             signing-bound {idle_signing_bound:.0} payments/s.",
            all_rsa / signing_bound
        );
        for pass in passes {
            let rate = pass.paid.len() as f64 / pass.wall.as_secs_f64();
            let ops = pass.paid.len().max(1) as f64;
            let per_op = |ticks: u64| ticks_to_micros(ticks) / ops;
            let app = per_op(pass.cpu.app);
            let sandbox = per_op(pass.cpu.sandbox);
            let total = per_op(pass.cpu.ours());
            let ours = app + per_op(pass.cpu.postgres) + per_op(pass.cpu.redis);
            let rsa_total = our_rsa + sandbox_rsa;
            let mean_latency =
                pass.paid.iter().map(|paid| paid.total).sum::<Duration>() / ops as u32;
            println!(
                "{}: {rate:.1} payments/s = {:.2} of the signing-bound limit (target ≥ 0.5), \
                 {:.2} of the all-RSA limit. By CPU: a payment took {total:.0} µs here, RSA \
                 {rsa_total:.0} of it ({:.0}%): app {app:.0} µs (RSA {our_rsa:.0}), sandbox \
                 {sandbox:.0} µs (RSA {sandbox_rsa:.0}); idle cores would do {:.0}/s = {:.2} of \
                 the signing-bound limit; our side alone (app + PostgreSQL + Redis, \
                 {ours:.0} µs, the sandbox elsewhere as in production) {:.0}/s = {:.2}. \
                 Little's law: {} in flight / {rate:.1}/s = {} mean latency (measured {}).",
                pass.name,
                rate / signing_bound,
                rate / all_rsa,
                100.0 * rsa_total / total.max(1.0),
                core_micros / total.max(1.0),
                core_micros / total.max(1.0) / idle_signing_bound,
                core_micros / ours.max(1.0),
                core_micros / ours.max(1.0) / idle_signing_bound,
                pass.concurrency,
                millis(Duration::from_secs_f64(
                    pass.concurrency as f64 / rate.max(1e-9)
                )),
                millis(mean_latency),
            );
        }
        println!();
        println!(
            "Books ({} payments: {} warm-up, {} in the main pass, {} in the others):",
            settings.students(),
            settings.warm_up(),
            settings.payments,
            settings.students() - settings.warm_up() - settings.payments
        );
        for (what, ok) in &books.checks {
            println!("- {} {what}", if *ok { "✓" } else { "✗" });
        }
        println!();
        let main = &passes[0];
        let main_rate = main.paid.len() as f64 / main.wall.as_secs_f64();
        let main_p99 = percentile(&sorted(main.paid.iter().map(|paid| paid.total)), 99);
        if main_rate < 0.5 * signing_bound || main_p99 > Duration::from_millis(50) {
            eprintln!(
                "target (≥ 0.5 of the signing-bound limit, p99 < 50 ms) missed: {:.2}, p99 {}",
                main_rate / signing_bound,
                millis(main_p99)
            );
        }
    }
}
