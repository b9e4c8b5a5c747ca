//! Term start: thousands of students follow the official account, open the fee page
//! and pay within minutes, on two instances behind one proxy. Run by hand, not in CI.
//!
//! `cargo bench --bench term_start` (release build). The parts, as in production:
//!
//! - two instances of the release binary (`campus-pay serve --no-migrate`, child
//!   processes), each on its own loopback port, configured through `CAMPUSPAY_*`
//!   variables as an operator's `campus-pay.env` would be, on one PostgreSQL schema
//!   (`tl_bench_<uuid>`, chosen through the URL's `options[search_path]`, dropped
//!   afterwards) and one Redis database (`CAMPUSPAY_BENCH_REDIS_URL`, by default DB 7:
//!   FLUSHDB before and after, so it must be one nobody else uses);
//! - migrations by `campus-pay migrate`, students and fee items (two per student) by
//!   `campus-pay import students|fees FILE`, from CSV files the bench writes;
//! - a loopback proxy in this process (`tl-proxy` thread): TCP round robin per
//!   connection over the two instances, standing for nginx. It is the public URL
//!   (`CAMPUSPAY_PUBLIC_URL`), so OAuth redirects and payment notifications come
//!   through it. Being TCP-level it cannot add `X-Real-IP`; the driver sends the one
//!   nginx would: every student the same campus NAT address (the sign-in guard counts
//!   failures only, by account, openid and address, so 20,000 successful sign-ins from
//!   one address lock nobody out);
//! - the sandboxes in this process (`tl-sbx` threads): WeChat (OAuth, user info,
//!   remarks), WeChat Pay (every notification sent twice at once, after a delay, and
//!   retried on failure) and Alipay (likewise: two copies after the same delay, which
//!   the driver waits out since that sandbox has no delay switch);
//! - the driver (`tl-drv` threads): students arriving at a fixed rate (open loop).
//!
//! Each student (by number: 60% JSAPI inside WeChat, 25% WeChat Native and 15% Alipay
//! on the PC portal), one browser with one session cookie:
//! 1. `follow`: a signed, encrypted (safe mode) subscribe event to `/wechat`;
//! 2. `open`: H5, `/h5` → the sandbox's OAuth authorize → `/h5/oauth/callback` →
//!    `/h5` → the bind form (new students); PC, `/` and its `/captcha` image;
//! 3. `sign-in`: H5 new students bind (`POST /h5/bind`, ID number and initial
//!    password); PC students log in (`POST /login`; the captcha's answer is read from
//!    Redis, where the app stored it: a student would read the picture). One argon2
//!    verification each;
//! 4. `password`: new students choose their password (form and `POST`: one argon2
//!    hash);
//! 5. `fees` (the fee list), `confirm`, `choose` (PC: the channel choice page),
//!    `prepay` (`/h5/pay` JSAPI, `/pay/wechat` Native QR, `/pay/alipay` QR: the
//!    channel's signed API call);
//! 6. the sandbox pays; while the notification is on its way the page polls
//!    `…/orders/N/status` every 2 s as pay.js does (`poll`); `notify` is the time the
//!    two concurrent notification copies take to be answered (the delay excluded);
//! 7. `paid visible`: after the notification's answer, the status shows `paid` and
//!    the result page 缴费成功;
//! 8. `fees after`: the fee list says 无欠费.
//!
//! Students from "last term" (`CAMPUSPAY_BENCH_RETURNING` percent) are bound and past
//! their first password change already: seeded through SQL (the hash of one password,
//! computed once, and the openid), so H5 returning students skip steps 3–4 and PC ones
//! skip step 4. Argon2 is measured where it happens, not hidden.
//!
//! Rates: a search (`CAMPUSPAY_BENCH_SEARCH_RATES` students per minute, each for
//! `CAMPUSPAY_BENCH_SEARCH_SECONDS`) finds the highest rate at which every step's p99
//! is under `CAMPUSPAY_BENCH_TARGET_MS` with no error; then the full run of
//! `CAMPUSPAY_BENCH_STUDENTS` at `CAMPUSPAY_BENCH_RATE` (default: the rate found).
//! Each pass has its own students. Afterwards the books, from the database: every
//! order a sandbox reports paid is paid once here with one accepted notification, no
//! fee item is in two paid orders, every student who completed has both items paid,
//! every notification answered with success, and every request answered; and the
//! check the fault tests end with (`tests/api/support/books/compare.rs`): each
//! sandbox's ledger against our orders, items and refunds, disagreements listed.
//!
//! - `CAMPUSPAY_BENCH_DATABASE_URL`: PostgreSQL (default
//!   `postgres://postgres@127.0.0.1:5432/test`);
//! - `CAMPUSPAY_BENCH_REDIS_URL`: a Redis database of its own (default
//!   `redis://127.0.0.1:6379/7`), flushed before and after;
//! - `CAMPUSPAY_BENCH_STUDENTS`: students in the full run (default 20,000; 0: none);
//! - `CAMPUSPAY_BENCH_RATE`: their arrival rate, students per minute (default: the
//!   highest passing rate of the search, else the lowest searched);
//! - `CAMPUSPAY_BENCH_SEARCH_RATES`: rates to try, comma-separated (default
//!   `150,300,450,600,900`; empty: no search; the search stops at the first rate
//!   that fails);
//! - `CAMPUSPAY_BENCH_SEARCH_SECONDS`: length of each search pass (default 60);
//! - `CAMPUSPAY_BENCH_TARGET_MS`: the p99 every step must stay under (default 200);
//! - `CAMPUSPAY_BENCH_RETURNING`: percent of students bound last term (default 50);
//! - `CAMPUSPAY_BENCH_NOTIFY_DELAY_MS`: the notifications' delay (default 1000);
//! - `RUST_LOG`: the instances' log filter (default `info`, as deployed); their logs
//!   go to `campus-pay-term-start-<id>/instance-N.log` in the temp directory, kept
//!   when the run fails.
//!
//! Interrupting the run (Ctrl-C) kills the instances; the schema and the Redis
//! database are then left as they are (their names are printed at the start).

/// The books from the outside, shared with the API tests.
#[path = "../tests/api/support/books/compare.rs"]
mod books;
#[path = "common/procfs.rs"]
mod procfs;

use procfs::{local_ports_to, parse_stat};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use campus_pay::clock::Clock;
use campus_pay::domain::id_card::IdCardNumber;
use campus_pay::domain::password::{hash_password, initial_password, verify_password};
use campus_pay::pay::wechatpay::MerchantKey;
use campus_pay::sandbox::alipay::{AlipaySandbox, SANDBOX_APP_ID, SandboxTradeStatus};
use campus_pay::sandbox::merchant;
use campus_pay::sandbox::wechat_api::WechatSandbox;
use campus_pay::sandbox::wechat_pay::{
    MERCHANT_PRIVATE_KEY_PEM, TradeState as WechatTradeState, WechatPaySandbox,
};
use campus_pay::sandbox::wechat_push::PushAesKey;
use campus_pay::sandbox::wechat_push::{EncryptionMode, WechatPush, subscribe_xml};
use chrono::NaiveDate;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const DATABASE_VAR: &str = "CAMPUSPAY_BENCH_DATABASE_URL";
const REDIS_VAR: &str = "CAMPUSPAY_BENCH_REDIS_URL";
const STUDENTS_VAR: &str = "CAMPUSPAY_BENCH_STUDENTS";
const RATE_VAR: &str = "CAMPUSPAY_BENCH_RATE";
const SEARCH_RATES_VAR: &str = "CAMPUSPAY_BENCH_SEARCH_RATES";
const SEARCH_SECONDS_VAR: &str = "CAMPUSPAY_BENCH_SEARCH_SECONDS";
const TARGET_VAR: &str = "CAMPUSPAY_BENCH_TARGET_MS";
const RETURNING_VAR: &str = "CAMPUSPAY_BENCH_RETURNING";
const DELAY_VAR: &str = "CAMPUSPAY_BENCH_NOTIFY_DELAY_MS";

const BINARY: &str = env!("CARGO_BIN_EXE_campus-pay");
const APPID: &str = "wx2c2769f8efd9abc2";
const SECRET: &str = "sandbox-app-secret-0001";
const TOKEN: &str = "termstarttoken";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const ACCOUNT: &str = "gh_10f6c3c3ac5a";
const SCHOOL: &str = "武威职业学院";
/// The key prefix `campus-pay serve` gives its Redis keys (src/web/mod.rs).
const REDIS_PREFIX: &str = "campus-pay:";
/// Where every student seems to come from: the campus network's one NAT address.
const CAMPUS_NAT: &str = "172.16.0.1";
/// What returning students chose last term.
const RETURNING_PASSWORD: &str = "Campus2025pay";
const NEW_PASSWORD: &str = "Campus2026pay";
/// pay.js polls the order's status this often.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
const NOTIFICATION_COPIES: usize = 2;
const INSTANCES: usize = 2;

const DRIVER_THREAD: &str = "tl-drv";
const SANDBOX_THREAD: &str = "tl-sbx";
const PROXY_THREAD: &str = "tl-proxy";

/// Districts of 武威市 for the ID numbers.
const REGIONS: [&str; 4] = ["620602", "620621", "620622", "620623"];
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";
const SURNAMES: [char; 10] = ['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周'];
const GIVEN: [char; 20] = [
    '伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明',
    '超', '秀', '霞', '平',
];
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let driver = runtime(DRIVER_THREAD, 2)?;
    let sandboxes = runtime(SANDBOX_THREAD, 2)?;
    let proxy = runtime(PROXY_THREAD, 1)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let work_dir = std::env::temp_dir().join(format!("campus-pay-term-start-{run_id}"));
    std::fs::create_dir_all(&work_dir)?;
    let backend = driver.block_on(Backend::open(&settings, &run_id))?;
    println!(
        "schema {}, Redis {}, work directory {}",
        backend.schema,
        settings.redis_url,
        work_dir.display()
    );
    let instances = Arc::new(Mutex::new(Instances::default()));
    install_interrupt_handler(&proxy, instances.clone());
    // A panic still cleans up: the instances, the schema, the Redis DB.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(
            &settings, &driver, &sandboxes, &proxy, &backend, &instances, &work_dir,
        )
    }))
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the run panicked")));
    if let Ok(mut instances) = instances.lock() {
        instances.stop();
    }
    if let Err(error) = driver.block_on(backend.clean_up()) {
        eprintln!("warning: cleanup failed: {error:#}");
    }
    match &outcome {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&work_dir);
        }
        Err(_) => eprintln!("instance logs kept in {}", work_dir.display()),
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

/// Ctrl-C: no orphaned instances.
fn install_interrupt_handler(proxy: &Runtime, instances: Arc<Mutex<Instances>>) {
    proxy.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            if let Ok(mut instances) = instances.lock() {
                instances.stop();
            }
            eprintln!("interrupted: instances stopped; the schema and Redis DB are left");
            std::process::exit(130);
        }
    });
}

// ---------------------------------------------------------------------------------
// Settings.

struct Settings {
    database_url: String,
    redis_url: String,
    students: usize,
    rate: Option<f64>,
    search_rates: Vec<f64>,
    search_time: Duration,
    target: Duration,
    returning_percent: usize,
    notify_delay: Duration,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let text = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .unwrap_or_else(|| default.to_owned())
        };
        let number = |name: &str, default: &str| -> anyhow::Result<f64> {
            let raw = text(name, default);
            raw.parse::<f64>()
                .ok()
                .filter(|value| value.is_finite() && *value >= 0.0)
                .with_context(|| format!("{name}={raw}: a number ≥ 0"))
        };
        let search_rates = text(SEARCH_RATES_VAR, "150,300,450,600,900")
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<f64>()
                    .ok()
                    .filter(|rate| *rate > 0.0)
                    .with_context(|| format!("{SEARCH_RATES_VAR}: {part}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rate = match std::env::var(RATE_VAR) {
            Ok(_) => Some(number(RATE_VAR, "0")?).filter(|rate| *rate > 0.0),
            Err(_) => None,
        };
        let returning_percent = number(RETURNING_VAR, "50")? as usize;
        ensure!(returning_percent <= 100, "{RETURNING_VAR}: at most 100");
        Ok(Settings {
            database_url: text(DATABASE_VAR, "postgres://postgres@127.0.0.1:5432/test"),
            redis_url: text(REDIS_VAR, "redis://127.0.0.1:6379/7"),
            students: number(STUDENTS_VAR, "20000")? as usize,
            rate,
            search_rates,
            search_time: Duration::from_secs_f64(number(SEARCH_SECONDS_VAR, "60")?),
            target: Duration::from_secs_f64(number(TARGET_VAR, "200")? / 1000.0),
            returning_percent,
            notify_delay: Duration::from_secs_f64(number(DELAY_VAR, "1000")? / 1000.0),
        })
    }

    fn search_students(&self, rate: f64) -> usize {
        ((rate * self.search_time.as_secs_f64() / 60.0).round() as usize).max(1)
    }
}

// ---------------------------------------------------------------------------------
// PostgreSQL and Redis.

struct Backend {
    admin: DatabaseConnection,
    schema: String,
    /// What the instances get as `CAMPUSPAY_DATABASE_URL`: the schema in the URL.
    instance_database_url: String,
    redis: redis::Client,
}

impl Backend {
    async fn open(settings: &Settings, run_id: &str) -> anyhow::Result<Backend> {
        let url = url::Url::parse(&settings.database_url).context(DATABASE_VAR)?;
        ensure!(
            matches!(url.scheme(), "postgres" | "postgresql") && url.query().is_none(),
            "{DATABASE_VAR} must be a postgres:// URL without a query"
        );
        let schema = format!("tl_bench_{run_id}");
        let admin = Database::connect(url.as_str())
            .await
            .with_context(|| format!("{DATABASE_VAR}: cannot connect"))?;
        admin
            .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
            .await?;
        let mut instance_url = url.clone();
        instance_url
            .query_pairs_mut()
            .append_pair("options[search_path]", &schema);
        let redis = redis::Client::open(settings.redis_url.as_str()).context(REDIS_VAR)?;
        let backend = Backend {
            admin,
            schema,
            instance_database_url: instance_url.to_string(),
            redis,
        };
        backend.flush_redis().await?;
        Ok(backend)
    }

    async fn flush_redis(&self) -> anyhow::Result<()> {
        let mut connection = self.redis.get_multiplexed_async_connection().await?;
        let _: () = redis::cmd("FLUSHDB").query_async(&mut connection).await?;
        Ok(())
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let sql = sql.replace("{s}", &format!("\"{}\"", self.schema));
        self.admin.execute_unprepared(&sql).await?;
        Ok(())
    }

    /// `sql` with `{s}` standing for our schema: one row of integers.
    async fn numbers(&self, sql: &str) -> anyhow::Result<Vec<i64>> {
        let sql = sql.replace("{s}", &format!("\"{}\"", self.schema));
        let row = self
            .admin
            .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
            .await?
            .context("no row")?;
        let mut values = Vec::new();
        while let Ok(value) = row.try_get_by_index::<Option<i64>>(values.len()) {
            values.push(value.unwrap_or(0));
        }
        Ok(values)
    }

    /// The PostgreSQL backends serving `pids` (by the local ports of their sockets).
    async fn postgres_pids_of(&self, pids: &[u32], postgres_port: u16) -> Vec<u32> {
        let ports: Vec<String> = pids
            .iter()
            .flat_map(|pid| local_ports_to(&pid.to_string(), postgres_port))
            .map(|port| port.to_string())
            .collect();
        if ports.is_empty() {
            return Vec::new();
        }
        let sql = format!(
            "SELECT pid FROM pg_stat_activity WHERE client_port IN ({})",
            ports.join(",")
        );
        let Ok(rows) = self
            .admin
            .query_all_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
            .await
        else {
            return Vec::new();
        };
        rows.iter()
            .filter_map(|row| row.try_get_by_index::<i32>(0).ok())
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect()
    }

    async fn clean_up(self) -> anyhow::Result<()> {
        self.flush_redis().await?;
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
// The instances and the proxy.

#[derive(Default)]
struct Instances {
    children: Vec<Child>,
}

impl Instances {
    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    fn stop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The variables an operator would put in `campus-pay.env`, for this bench.
struct Environment {
    pairs: Vec<(&'static str, String)>,
}

impl Environment {
    fn command(&self, args: &[&str], log: Option<&Path>) -> anyhow::Result<Command> {
        let mut command = Command::new(BINARY);
        command.args(args).env_clear();
        for name in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
        for (name, value) in &self.pairs {
            command.env(name, value);
        }
        command.stdin(Stdio::null());
        if let Some(log) = log {
            let file = std::fs::File::create(log)?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        Ok(command)
    }

    /// Runs a one-shot subcommand (migrate, import) and fails with its output.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.command(args, None)?.output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(output.status.success(), "campus-pay {args:?}: {text}");
        Ok(text)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Round robin per connection, as nginx's default upstream balancing.
async fn proxy(listener: TcpListener, backends: Vec<SocketAddr>, counts: Arc<Vec<AtomicU64>>) {
    let next = AtomicUsize::new(0);
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let index = next.fetch_add(1, Ordering::Relaxed) % backends.len();
        counts[index].fetch_add(1, Ordering::Relaxed);
        let backend = backends[index];
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(backend).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

async fn wait_until_ready(client: &reqwest::Client, address: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .get(format!("http://{address}/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "instance at {address} not ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------
// Students.

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Channel {
    Jsapi,
    Native,
    Alipay,
}

impl Channel {
    fn of(n: usize) -> Channel {
        match n % 20 {
            0..12 => Channel::Jsapi,
            12..17 => Channel::Native,
            _ => Channel::Alipay,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Channel::Jsapi => "/h5",
            Channel::Native | Channel::Alipay => "",
        }
    }
}

fn id_check(first_17: &str) -> char {
    let sum: u32 = first_17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    char::from(ID_CHECK[(sum % 11) as usize])
}

/// A valid ID number, distinct for every `n` below 365 × 10 × 500 × 4.
fn id_card(n: usize) -> String {
    let birth = NaiveDate::from_ymd_opt(2006, 1, 1).expect("a date")
        + chrono::Days::new((n % 3_650) as u64);
    let sequence = n / 3_650 % 1_000;
    let first_17 = format!(
        "{}{}{sequence:03}",
        REGIONS[n / 3_650_000 % REGIONS.len()],
        birth.format("%Y%m%d")
    );
    format!("{first_17}{}", id_check(&first_17))
}

fn student_name(n: usize) -> String {
    [
        SURNAMES[n % SURNAMES.len()],
        GIVEN[n / SURNAMES.len() % GIVEN.len()],
        GIVEN[n / (SURNAMES.len() * GIVEN.len()) % GIVEN.len()],
    ]
    .iter()
    .collect()
}

fn openid(n: usize) -> String {
    format!("oTerm{n:0>23}")
}

fn is_returning(n: usize, percent: usize) -> bool {
    // Spread over the channels: 37 is coprime with 20 and 100.
    n * 37 % 100 < percent
}

/// Writes the two import files for students `0..count`.
fn write_import_files(dir: &Path, count: usize) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut students = String::from("身份证号,姓名,性别,年级,班级,专业\n");
    let mut fees = String::from("身份证号,学年,项目,金额\n");
    for n in 0..count {
        let card = id_card(n);
        let gender = if n % 2 == 1 { "男" } else { "女" };
        students.push_str(&format!(
            "{card},{},{gender},2026,汽修{}班,汽车检测与维修技术\n",
            student_name(n),
            n % 40 + 1
        ));
        fees.push_str(&format!("{card},2026-2027,学费,{}.00\n", 3_000 + n % 500));
        fees.push_str(&format!("{card},2026-2027,住宿费,{}.50\n", 800 + n % 200));
    }
    let students_file = dir.join("students.csv");
    let fees_file = dir.join("fees.csv");
    std::fs::write(&students_file, students)?;
    std::fs::write(&fees_file, fees)?;
    Ok((students_file, fees_file))
}

/// Last term's students: bound (H5) and past the first password change, through SQL.
async fn seed_returning(backend: &Backend, count: usize, percent: usize) -> anyhow::Result<()> {
    let hash = hash_password(RETURNING_PASSWORD).map_err(|error| anyhow::anyhow!("{error}"))?;
    let returning: Vec<usize> = (0..count).filter(|&n| is_returning(n, percent)).collect();
    for chunk in returning.chunks(2_000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|&n| {
                let openid = match Channel::of(n) {
                    Channel::Jsapi => format!("'{}'", openid(n)),
                    _ => "NULL".to_owned(),
                };
                format!("('{}', {openid})", id_card(n))
            })
            .collect();
        backend
            .execute(&format!(
                "UPDATE {{s}}.students AS s SET password_hash = '{hash}', \
                 must_change_password = false, wechat_openid = v.openid, \
                 bound_at = CASE WHEN v.openid IS NULL THEN NULL ELSE now() END, \
                 updated_at = now() \
                 FROM (VALUES {}) AS v(id_card, openid) WHERE s.id_card = v.id_card",
                values.join(",")
            ))
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Measurements.

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Step {
    Follow,
    Open,
    SignIn,
    Password,
    Fees,
    Confirm,
    Choose,
    Prepay,
    Poll,
    Notify,
    PaidVisible,
    FeesAfter,
}

const STEPS: [Step; 12] = [
    Step::Follow,
    Step::Open,
    Step::SignIn,
    Step::Password,
    Step::Fees,
    Step::Confirm,
    Step::Choose,
    Step::Prepay,
    Step::Poll,
    Step::Notify,
    Step::PaidVisible,
    Step::FeesAfter,
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Follow => "follow",
            Step::Open => "open",
            Step::SignIn => "sign-in",
            Step::Password => "password",
            Step::Fees => "fees",
            Step::Confirm => "confirm",
            Step::Choose => "choose",
            Step::Prepay => "prepay",
            Step::Poll => "poll",
            Step::Notify => "notify",
            Step::PaidVisible => "paid visible",
            Step::FeesAfter => "fees after",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Step::Follow => "subscribe event",
            Step::Open => "H5 OAuth chain / PC login page + captcha",
            Step::SignIn => "bind or login: argon2 verify",
            Step::Password => "form + change: argon2 hash",
            Step::Fees => "fee list",
            Step::Confirm => "confirm page",
            Step::Choose => "PC channel choice",
            Step::Prepay => "order + channel API (RSA)",
            Step::Poll => "status while waiting",
            Step::Notify => "2 copies answered",
            Step::PaidVisible => "status + result page",
            Step::FeesAfter => "无欠费",
        }
    }
}

#[derive(Default)]
struct Recorder {
    samples: Mutex<HashMap<Step, Vec<u32>>>,
    errors: Mutex<HashMap<Step, (u64, String)>>,
    requests: AtomicU64,
    unanswered: AtomicU64,
    completed: AtomicU64,
    late_paid: AtomicU64,
}

impl Recorder {
    fn record(&self, step: Step, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        if let Ok(mut samples) = self.samples.lock() {
            samples.entry(step).or_default().push(micros);
        }
    }

    fn error(&self, step: Step, message: String) {
        if let Ok(mut errors) = self.errors.lock() {
            let entry = errors.entry(step).or_insert((0, message));
            entry.0 += 1;
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

// ---------------------------------------------------------------------------------
// One student's browser.

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')?;
        Some(self.body[start..start + end].to_owned())
    }

    fn element_text(&self, id: &str) -> Option<String> {
        let marker = format!("id=\"{id}\">");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('<')?;
        Some(self.body[start..start + end].to_owned())
    }

    fn item_ids(&self) -> Vec<String> {
        let marker = "name=\"item\" id=\"item-";
        self.body
            .match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &self.body[at + marker.len()..];
                rest.find('"').map(|end| rest[..end].to_owned())
            })
            .collect()
    }

    fn redirects_to(&self, path: &str) -> bool {
        self.status.is_redirection() && self.location.as_deref() == Some(path)
    }
}

/// Why a student stopped.
struct Failure {
    step: Step,
    message: String,
}

type StepResult<T> = Result<T, Failure>;

struct World {
    client: reqwest::Client,
    public_url: String,
    push: WechatPush,
    redis: redis::aio::MultiplexedConnection,
    wechat_pay: Arc<WechatPaySandbox>,
    alipay: Arc<AlipaySandbox>,
    sandbox_runtime: tokio::runtime::Handle,
    notify_delay: Duration,
    returning_percent: usize,
    recorder: Arc<Recorder>,
}

struct Browser<'a> {
    world: &'a World,
    session: Option<String>,
    step: Step,
}

impl<'a> Browser<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> StepResult<T> {
        Err(Failure {
            step: self.step,
            message: message.into(),
        })
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.world.public_url)
        } else {
            url.to_owned()
        }
    }

    async fn get(&mut self, url: &str) -> StepResult<Page> {
        let request = self.world.client.get(self.absolute(url));
        self.send(request).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> StepResult<Page> {
        let request = self.world.client.post(self.absolute(url)).form(form);
        self.send(request).await
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> StepResult<Page> {
        self.world.recorder.requests.fetch_add(1, Ordering::Relaxed);
        request = request.header("x-real-ip", CAMPUS_NAT);
        if let Some(session) = &self.session {
            request = request.header(COOKIE, format!("cp_session={session}"));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                self.world
                    .recorder
                    .unanswered
                    .fetch_add(1, Ordering::Relaxed);
                return self.fail(format!("no answer: {error}"));
            }
        };
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value.to_str().ok().and_then(|v| v.split(';').next());
            if let Some(("cp_session", id)) = pair.and_then(|pair| pair.split_once('=')) {
                self.session = (!id.is_empty()).then(|| id.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match response.text().await {
            Ok(body) => body,
            Err(error) => {
                self.world
                    .recorder
                    .unanswered
                    .fetch_add(1, Ordering::Relaxed);
                return self.fail(format!("body lost: {error}"));
            }
        };
        if status.is_server_error() {
            return self.fail(format!("{status}: {}", truncate(&body)));
        }
        Ok(Page {
            status,
            location,
            body,
        })
    }

    async fn expect_ok(&mut self, page: StepResult<Page>, needle: &str) -> StepResult<Page> {
        let page = page?;
        if page.status != StatusCode::OK || !page.body.contains(needle) {
            return self.fail(format!(
                "{} without {needle:?}: {}",
                page.status,
                truncate(&page.body)
            ));
        }
        Ok(page)
    }

    fn expect_redirect(&self, page: &Page, to: &str) -> StepResult<()> {
        if page.redirects_to(to) {
            Ok(())
        } else {
            self.fail(format!(
                "{} to {:?} instead of {to}: {}",
                page.status,
                page.location,
                truncate(&page.body)
            ))
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(160).collect()
}

/// Times `step` and records its duration (or its error).
macro_rules! timed {
    ($browser:expr, $step:expr, $body:expr) => {{
        $browser.step = $step;
        let started = Instant::now();
        let outcome = $body;
        if outcome.is_ok() {
            $browser.world.recorder.record($step, started.elapsed());
        }
        outcome
    }};
}

async fn student(world: Arc<World>, n: usize) {
    let recorder = world.recorder.clone();
    match student_steps(&world, n).await {
        Ok(()) => {
            recorder.completed.fetch_add(1, Ordering::Relaxed);
        }
        Err(failure) => recorder.error(failure.step, failure.message),
    }
}

async fn student_steps(world: &World, n: usize) -> StepResult<()> {
    let channel = Channel::of(n);
    let returning = is_returning(n, world.returning_percent);
    let card = id_card(n);
    let openid = openid(n);
    let prefix = channel.prefix();
    let mut browser = Browser {
        world,
        session: None,
        step: Step::Follow,
    };
    timed!(browser, Step::Follow, follow(&mut browser, &openid).await)?;
    let after_open = timed!(
        browser,
        Step::Open,
        open(&mut browser, channel, returning, &openid).await
    )?;
    if channel != Channel::Jsapi || !returning {
        let password = if returning {
            RETURNING_PASSWORD.to_owned()
        } else {
            let parsed = IdCardNumber::parse(&card).map_err(|error| Failure {
                step: Step::SignIn,
                message: error.to_string(),
            })?;
            initial_password(&parsed)
        };
        let next = if returning {
            format!("{prefix}/fees")
        } else {
            format!("{prefix}/password")
        };
        timed!(
            browser,
            Step::SignIn,
            sign_in(&mut browser, channel, &card, &password, &after_open, &next).await
        )?;
        if !returning {
            timed!(
                browser,
                Step::Password,
                choose_password(&mut browser, prefix).await
            )?;
        }
    }
    let fees = timed!(browser, Step::Fees, {
        let page = browser.get(&format!("{prefix}/fees")).await;
        browser.expect_ok(page, "name=\"item\"").await
    })?;
    let items = fees.item_ids();
    let Some(csrf) = fees.hidden("csrf") else {
        return browser.fail("the fee list has no CSRF field");
    };
    if items.len() != 2 {
        return browser.fail(format!("{} items on the fee list", items.len()));
    }
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend(items.iter().map(|id| ("item", id.as_str())));
    timed!(browser, Step::Confirm, {
        let page = browser.post(&format!("{prefix}/confirm"), &form).await;
        browser.expect_ok(page, "csrf").await
    })?;
    if channel != Channel::Jsapi {
        timed!(browser, Step::Choose, {
            let page = browser.post("/pay", &form).await;
            browser.expect_ok(page, "channel-").await
        })?;
    }
    let pay_path = match channel {
        Channel::Jsapi => "/h5/pay",
        Channel::Native => "/pay/wechat",
        Channel::Alipay => "/pay/alipay",
    };
    let paying = timed!(browser, Step::Prepay, {
        let page = browser.post(pay_path, &form).await;
        browser.expect_ok(page, "order-number").await
    })?;
    let Some(number) = paying.element_text("order-number") else {
        return browser.fail("no order number");
    };
    pay_and_watch(&mut browser, channel, &number).await?;
    timed!(browser, Step::FeesAfter, {
        let page = browser.get(&format!("{prefix}/fees")).await;
        browser.expect_ok(page, "无欠费").await
    })?;
    Ok(())
}

async fn follow(browser: &mut Browser<'_>, openid: &str) -> StepResult<()> {
    let xml = subscribe_xml(ACCOUNT, openid, chrono::Utc::now().timestamp(), None);
    let post = browser.world.push.signed_post(&xml, EncryptionMode::Safe);
    let request = browser
        .world
        .client
        .post(format!(
            "{}/wechat?{}",
            browser.world.public_url, post.query
        ))
        .header("content-type", "text/xml")
        .body(post.body.clone());
    let answer = browser.send(request).await?;
    if answer.status != StatusCode::OK {
        return browser.fail(format!("{}: {}", answer.status, truncate(&answer.body)));
    }
    Ok(())
}

/// H5: the OAuth round trip ending on the bind form (new) or the redirect to the fee
/// list (returning). PC: the login page and its captcha. Returns the page to sign in
/// from (H5 bind form, PC login page).
async fn open(
    browser: &mut Browser<'_>,
    channel: Channel,
    returning: bool,
    openid: &str,
) -> StepResult<Page> {
    if channel != Channel::Jsapi {
        let page = browser.get("/").await;
        let page = browser.expect_ok(page, "captcha").await?;
        let captcha = browser.get("/captcha").await?;
        if captcha.status != StatusCode::OK {
            return browser.fail(format!("captcha: {}", captcha.status));
        }
        return Ok(page);
    }
    let start = browser.get("/h5").await?;
    let Some(authorize) = start.location.filter(|_| start.status == StatusCode::FOUND) else {
        return browser.fail(format!("/h5: {}", start.status));
    };
    let authorize = authorize.replace("#wechat_redirect", "") + "&sandbox_openid=" + openid;
    let at_wechat = browser.get(&authorize).await?;
    let Some(back) = at_wechat.location else {
        return browser.fail(format!("authorize: {}", at_wechat.status));
    };
    let callback = browser.get(&back).await?;
    browser.expect_redirect(&callback, "/h5")?;
    let entry = browser.get("/h5").await?;
    if returning {
        browser.expect_redirect(&entry, "/h5/fees")?;
        return Ok(entry);
    }
    browser.expect_redirect(&entry, "/h5/bind")?;
    let form = browser.get("/h5/bind").await;
    browser.expect_ok(form, "csrf").await
}

async fn sign_in(
    browser: &mut Browser<'_>,
    channel: Channel,
    card: &str,
    password: &str,
    form_page: &Page,
    next: &str,
) -> StepResult<()> {
    let Some(csrf) = form_page.hidden("csrf") else {
        return browser.fail("no CSRF field to sign in with");
    };
    let answer = if channel == Channel::Jsapi {
        browser
            .post(
                "/h5/bind",
                &[
                    ("csrf", &csrf),
                    ("id_card", card),
                    ("id_card_again", card),
                    ("password", password),
                ],
            )
            .await?
    } else {
        let captcha = captcha_answer(browser).await?;
        browser
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("id_card", card),
                    ("password", password),
                    ("captcha", &captcha),
                ],
            )
            .await?
    };
    browser.expect_redirect(&answer, next)
}

/// What the student reads off the captcha picture: the app's own answer in Redis.
async fn captcha_answer(browser: &Browser<'_>) -> StepResult<String> {
    let Some(session) = &browser.session else {
        return browser.fail("no session for the captcha");
    };
    let mut redis = browser.world.redis.clone();
    let key = format!(
        "{REDIS_PREFIX}{}",
        campus_pay::web::students::captcha_key(session)
    );
    let answer: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .or_else(|error| browser.fail(format!("Redis: {error}")))?;
    match answer {
        Some(answer) => Ok(answer),
        None => browser.fail("no captcha answer in Redis"),
    }
}

async fn choose_password(browser: &mut Browser<'_>, prefix: &str) -> StepResult<()> {
    let form = browser.get(&format!("{prefix}/password")).await;
    let form = browser.expect_ok(form, "csrf").await?;
    let Some(csrf) = form.hidden("csrf") else {
        return browser.fail("no CSRF field on the password form");
    };
    let chosen = browser
        .post(
            &format!("{prefix}/password"),
            &[
                ("csrf", &csrf),
                ("new_password", NEW_PASSWORD),
                ("new_password_again", NEW_PASSWORD),
            ],
        )
        .await?;
    browser.expect_redirect(&chosen, &format!("{prefix}/fees"))
}

/// The channel takes the money (on the sandboxes' threads) while the page polls; then
/// the paid order must show at once.
async fn pay_and_watch(
    browser: &mut Browser<'_>,
    channel: Channel,
    number: &str,
) -> StepResult<()> {
    let world = browser.world;
    let delay = world.notify_delay;
    let out_trade_no = number.to_owned();
    let mut paying = match channel {
        Channel::Jsapi | Channel::Native => {
            let sandbox = world.wechat_pay.clone();
            world.sandbox_runtime.spawn(async move {
                let started = Instant::now();
                let answers = sandbox
                    .pay(&out_trade_no)
                    .await
                    .map(|paid| paid.notification_answers)
                    .map_err(|error| error.to_string());
                (started.elapsed().saturating_sub(delay), answers)
            })
        }
        Channel::Alipay => {
            let sandbox = world.alipay.clone();
            world.sandbox_runtime.spawn(async move {
                tokio::time::sleep(delay).await;
                let started = Instant::now();
                let answers = sandbox
                    .pay(&out_trade_no)
                    .await
                    .map(|paid| paid.notification_answers)
                    .map_err(|error| error.to_string());
                (started.elapsed(), answers)
            })
        }
    };
    let prefix = channel.prefix();
    let status_path = format!("{prefix}/orders/{number}/status");
    let outcome = loop {
        tokio::select! {
            done = &mut paying => break done,
            () = tokio::time::sleep(POLL_INTERVAL) => {
                timed!(browser, Step::Poll, {
                    let page = browser.get(&status_path).await;
                    browser.expect_ok(page, "status").await
                })?;
            }
        }
    };
    browser.step = Step::Notify;
    let (took, answers) = match outcome {
        Ok((took, Ok(answers))) => (took, answers),
        Ok((_, Err(error))) => return browser.fail(format!("the sandbox cannot pay: {error}")),
        Err(error) => return browser.fail(format!("the payment task: {error}")),
    };
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            !(matches!(status, 200 | 204) && (channel != Channel::Alipay || body == "success"))
        })
        .count();
    if answers.len() != NOTIFICATION_COPIES || refused > 0 {
        return browser.fail(format!("notification answers {answers:?}"));
    }
    world.recorder.record(Step::Notify, took);
    let result_path = format!("{prefix}/orders/{number}");
    timed!(browser, Step::PaidVisible, {
        let mut polls = 0;
        loop {
            let status = browser.get(&status_path).await;
            let status = browser.expect_ok(status, "status").await?;
            if status.body.contains("\"paid\"") {
                break;
            }
            polls += 1;
            if polls == 1 {
                world.recorder.late_paid.fetch_add(1, Ordering::Relaxed);
            }
            if polls > 10 {
                return browser.fail(format!("still {} after the notification", status.body));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = browser.get(&result_path).await;
        browser.expect_ok(result, "缴费成功").await.map(|_| ())
    })
}

// ---------------------------------------------------------------------------------
// CPU.

fn process_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_stat(&stat).map(|(_, ticks)| ticks))
        .unwrap_or(0)
}

#[derive(Clone, Copy, Default)]
struct Ticks {
    instances: u64,
    postgres: u64,
    redis: u64,
    sandboxes: u64,
    driver: u64,
    proxy: u64,
    machine: u64,
}

impl Ticks {
    fn now(instance_pids: &[u32], postgres_pids: &[u32]) -> Ticks {
        let mut ticks = Ticks {
            instances: instance_pids.iter().map(|pid| process_ticks(*pid)).sum(),
            postgres: postgres_pids.iter().map(|pid| process_ticks(*pid)).sum(),
            ..Ticks::default()
        };
        for task in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            match parse_stat(&stat) {
                Some((comm, used)) if comm.starts_with(SANDBOX_THREAD) => ticks.sandboxes += used,
                Some((comm, used)) if comm.starts_with(PROXY_THREAD) => ticks.proxy += used,
                Some((_, used)) => ticks.driver += used,
                None => {}
            }
        }
        for process in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
                continue;
            };
            if let Some(("redis-server", used)) = parse_stat(&stat) {
                ticks.redis += used;
            }
        }
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        ticks.machine = [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&index| fields.get(index))
            .sum();
        ticks
    }

    fn ours(self) -> u64 {
        self.instances + self.postgres + self.redis + self.sandboxes + self.driver + self.proxy
    }

    fn since(self, before: Ticks) -> Ticks {
        Ticks {
            instances: self.instances.saturating_sub(before.instances),
            postgres: self.postgres.saturating_sub(before.postgres),
            redis: self.redis.saturating_sub(before.redis),
            sandboxes: self.sandboxes.saturating_sub(before.sandboxes),
            driver: self.driver.saturating_sub(before.driver),
            proxy: self.proxy.saturating_sub(before.proxy),
            machine: self.machine.saturating_sub(before.machine),
        }
    }
}

/// The cost of the two deliberate CPU sinks, on one thread.
struct UnitCosts {
    argon2_hash: Duration,
    argon2_verify: Duration,
    rsa_sign: Duration,
}

fn measure_unit_costs() -> anyhow::Result<UnitCosts> {
    const ROUNDS: u32 = 8;
    let started = Instant::now();
    let mut hash = String::new();
    for _ in 0..ROUNDS {
        hash = hash_password(NEW_PASSWORD).map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    let argon2_hash = started.elapsed() / ROUNDS;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        ensure!(verify_password(NEW_PASSWORD, &hash), "argon2 round trip");
    }
    let argon2_verify = started.elapsed() / ROUNDS;
    let key = MerchantKey::from_pem(MERCHANT_PRIVATE_KEY_PEM)?;
    let started = Instant::now();
    for round in 0..ROUNDS * 10 {
        std::hint::black_box(key.sign_sha256_base64(format!("message {round}").as_bytes()));
    }
    let rsa_sign = started.elapsed() / (ROUNDS * 10);
    Ok(UnitCosts {
        argon2_hash,
        argon2_verify,
        rsa_sign,
    })
}

// ---------------------------------------------------------------------------------
// The run.

struct Pass {
    label: String,
    rate: f64,
    students: std::ops::Range<usize>,
}

struct PassReport {
    label: String,
    rate: f64,
    students: usize,
    completed: u64,
    arrival_span: Duration,
    wall: Duration,
    /// (step, count, p50 ms, p99 ms, max ms, errors)
    rows: Vec<(Step, usize, f64, f64, f64, u64)>,
    first_errors: Vec<(Step, String)>,
    requests: u64,
    unanswered: u64,
    late_paid: u64,
    ticks: Ticks,
}

impl PassReport {
    fn passes(&self, target: Duration) -> bool {
        let limit = target.as_secs_f64() * 1000.0;
        self.completed == self.students as u64
            && self
                .rows
                .iter()
                .all(|(_, count, _, p99, _, errors)| *errors == 0 && (*count == 0 || *p99 < limit))
    }

    fn worst_step(&self) -> Option<(Step, f64)> {
        self.rows
            .iter()
            .filter(|row| row.1 > 0)
            .max_by(|a, b| a.3.total_cmp(&b.3))
            .map(|row| (row.0, row.3))
    }

    fn print(&self, settings: &Settings) {
        let minutes = self.wall.as_secs_f64() / 60.0;
        println!();
        println!(
            "== {}: {} students offered at {:.0}/min (arrivals over {:.1} s); {} completed \
             in {:.1} s: {:.0} students/min; {} requests ({:.0}/s), {} unanswered",
            self.label,
            self.students,
            self.rate,
            self.arrival_span.as_secs_f64(),
            self.completed,
            self.wall.as_secs_f64(),
            self.completed as f64 / minutes.max(1e-9),
            self.requests,
            self.requests as f64 / self.wall.as_secs_f64().max(1e-9),
            self.unanswered
        );
        println!(
            "   {:<13} {:<42} {:>7} {:>9} {:>9} {:>9} {:>6}",
            "step", "what", "count", "p50 ms", "p99 ms", "max ms", "errors"
        );
        for (step, count, p50, p99, max, errors) in &self.rows {
            println!(
                "   {:<13} {:<42} {count:>7} {p50:>9.1} {p99:>9.1} {max:>9.1} {errors:>6}",
                step.name(),
                step.what()
            );
        }
        for (step, message) in &self.first_errors {
            println!("   first error at {}: {message}", step.name());
        }
        if self.late_paid > 0 {
            println!(
                "   {} orders not yet paid on the first look after the notification's answer",
                self.late_paid
            );
        }
        let per_student = |ticks: u64| {
            ticks as f64 / CLOCK_TICKS_PER_SECOND * 1000.0 / (self.completed.max(1) as f64)
        };
        let t = self.ticks;
        let wall_ticks = self.wall.as_secs_f64() * CLOCK_TICKS_PER_SECOND;
        println!(
            "   CPU ms per student: instances {:.1}, PostgreSQL {:.1}, Redis {:.1}, sandboxes \
             {:.1}, driver {:.1}, proxy {:.1}; cores busy: ours {:.2}, others' {:.2} (of 2)",
            per_student(t.instances),
            per_student(t.postgres),
            per_student(t.redis),
            per_student(t.sandboxes),
            per_student(t.driver),
            per_student(t.proxy),
            t.ours() as f64 / wall_ticks.max(1e-9),
            t.machine.saturating_sub(t.ours()) as f64 / wall_ticks.max(1e-9)
        );
        let verdict = if self.passes(settings.target) {
            "PASS"
        } else {
            "FAIL"
        };
        if let Some((step, p99)) = self.worst_step() {
            println!(
                "   {verdict}: worst p99 {p99:.1} ms ({}) against {} ms",
                step.name(),
                settings.target.as_millis()
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    settings: &Settings,
    driver: &Runtime,
    sandboxes: &Runtime,
    proxy_runtime: &Runtime,
    backend: &Backend,
    instances: &Arc<Mutex<Instances>>,
    work_dir: &Path,
) -> anyhow::Result<()> {
    let costs = measure_unit_costs()?;
    println!(
        "one thread: argon2 hash {:.1} ms, verify {:.1} ms; RSA-2048 sign {:.2} ms",
        costs.argon2_hash.as_secs_f64() * 1000.0,
        costs.argon2_verify.as_secs_f64() * 1000.0,
        costs.rsa_sign.as_secs_f64() * 1000.0
    );
    let search_total: usize = settings
        .search_rates
        .iter()
        .map(|rate| settings.search_students(*rate))
        .sum();
    let total = search_total + settings.students;
    ensure!(total > 0, "no students to run");
    ensure!(total <= 3_650_000, "at most 3,650,000 students");

    // Sandboxes on their own threads.
    let clock = Clock::system();
    let (wechat, wechat_pay, alipay) = sandboxes.block_on(async {
        let wechat = WechatSandbox::spawn(APPID, SECRET).await?;
        let wechat_pay =
            WechatPaySandbox::spawn(merchant::sandbox_merchant(APPID), clock.clone()).await?;
        let alipay = AlipaySandbox::spawn(SANDBOX_APP_ID, clock.clone()).await?;
        Ok::<_, anyhow::Error>((wechat, Arc::new(wechat_pay), Arc::new(alipay)))
    })?;
    wechat_pay.set_notification_copies(NOTIFICATION_COPIES);
    wechat_pay.set_notification_delay(settings.notify_delay);
    alipay.set_notification_copies(NOTIFICATION_COPIES);
    let retries = vec![Duration::from_secs(5), Duration::from_secs(15)];
    wechat_pay.set_notification_retries(retries.clone());
    alipay.set_notification_retries(retries);
    // Real time here: the sandboxes send their due retries on their own.
    sandboxes.block_on(async {
        wechat_pay.deliver_retries_every(Duration::from_millis(500));
        alipay.deliver_retries_every(Duration::from_millis(500));
    });

    // The operator's environment.
    let proxy_port = free_port()?;
    let public_url = format!("http://127.0.0.1:{proxy_port}");
    let key_files = merchant::write_key_files(&work_dir.join("keys"))?;
    let mut pairs: Vec<(&'static str, String)> = vec![
        ("CAMPUSPAY_PUBLIC_URL", public_url.clone()),
        ("CAMPUSPAY_SCHOOL_NAME", SCHOOL.to_owned()),
        (
            "CAMPUSPAY_DATABASE_URL",
            backend.instance_database_url.clone(),
        ),
        ("CAMPUSPAY_REDIS_URL", settings.redis_url.clone()),
        ("CAMPUSPAY_WECHAT_APPID", APPID.to_owned()),
        ("CAMPUSPAY_WECHAT_SECRET", SECRET.to_owned()),
        ("CAMPUSPAY_WECHAT_TOKEN", TOKEN.to_owned()),
        ("CAMPUSPAY_WECHAT_AES_KEY", AES_KEY.to_owned()),
        ("CAMPUSPAY_WECHAT_API_BASE", wechat.base_url().to_string()),
        ("CAMPUSPAY_WECHAT_OAUTH_BASE", wechat.base_url().to_string()),
        // Not during the run: the follower check and the reconciliation.
        ("CAMPUSPAY_CLEANUP_SCHEDULE", "0 0 0 30 2 *".to_owned()),
        ("CAMPUSPAY_RECONCILE_SCHEDULE", "0 0 0 30 2 *".to_owned()),
    ];
    pairs.extend(merchant::settings(
        wechat_pay.base_url().as_str(),
        &key_files,
    ));
    pairs.extend(merchant::alipay_settings(
        alipay.base_url().as_str(),
        &work_dir.join("keys"),
    )?);
    let mut environment = Environment { pairs };

    // Schema and data, as an operator loads them.
    let started = Instant::now();
    environment.run(&["migrate"])?;
    let (students_file, fees_file) = write_import_files(work_dir, total)?;
    let path = |file: &Path| file.display().to_string();
    environment.run(&["import", "students", &path(&students_file)])?;
    environment.run(&["import", "fees", &path(&fees_file)])?;
    driver.block_on(seed_returning(backend, total, settings.returning_percent))?;
    println!(
        "{total} students and {} fee items imported (returning students seeded) in {:.1} s",
        total * 2,
        started.elapsed().as_secs_f64()
    );

    // Two instances behind the proxy.
    let mut addresses = Vec::new();
    for index in 0..INSTANCES {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        environment
            .pairs
            .retain(|(name, _)| *name != "CAMPUSPAY_LISTEN");
        environment
            .pairs
            .push(("CAMPUSPAY_LISTEN", address.to_string()));
        let log = work_dir.join(format!("instance-{index}.log"));
        let child = environment
            .command(&["serve", "--no-migrate"], Some(&log))?
            .spawn()
            .context("cannot start an instance")?;
        instances
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .children
            .push(child);
        addresses.push(address);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()?;
    driver.block_on(async {
        for address in &addresses {
            wait_until_ready(&client, *address).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let connection_counts = Arc::new(
        (0..INSTANCES)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    let listener = proxy_runtime.block_on(TcpListener::bind(("127.0.0.1", proxy_port)))?;
    proxy_runtime.spawn(proxy(
        listener,
        addresses.clone(),
        connection_counts.clone(),
    ));

    let redis = driver.block_on(backend.redis.get_multiplexed_async_connection())?;
    let push = WechatPush {
        token: TOKEN.into(),
        appid: APPID.into(),
        aes_key: Some(PushAesKey::parse(AES_KEY).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    let instance_pids = instances
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .pids();
    let postgres_port = url::Url::parse(&settings.database_url)?
        .port()
        .unwrap_or(5432);

    let mut passes = Vec::new();
    let mut next = 0;
    for rate in &settings.search_rates {
        let count = settings.search_students(*rate);
        passes.push(Pass {
            label: format!("search at {rate:.0}/min"),
            rate: *rate,
            students: next..next + count,
        });
        next += count;
    }
    let mut reports: Vec<PassReport> = Vec::new();
    for pass in passes {
        let report = run_pass(
            driver,
            &pass,
            settings,
            &client,
            &public_url,
            &push,
            &redis,
            &wechat_pay,
            &alipay,
            sandboxes,
            backend,
            &instance_pids,
            postgres_port,
        )?;
        report.print(settings);
        let failed = !report.passes(settings.target);
        reports.push(report);
        if failed {
            // Faster arrivals would only queue longer: their students stay unused.
            println!("   (higher search rates skipped)");
            break;
        }
    }
    if settings.students > 0 {
        let found = reports
            .iter()
            .filter(|report| report.passes(settings.target))
            .map(|report| report.rate)
            .fold(None, |best: Option<f64>, rate| {
                Some(best.map_or(rate, |b| b.max(rate)))
            });
        let rate = settings
            .rate
            .or(found)
            .or_else(|| settings.search_rates.iter().copied().reduce(f64::min))
            .unwrap_or(600.0);
        let pass = Pass {
            label: format!("full run at {rate:.0}/min"),
            rate,
            students: next..next + settings.students,
        };
        let report = run_pass(
            driver,
            &pass,
            settings,
            &client,
            &public_url,
            &push,
            &redis,
            &wechat_pay,
            &alipay,
            sandboxes,
            backend,
            &instance_pids,
            postgres_port,
        )?;
        report.print(settings);
        reports.push(report);
    }

    println!();
    println!(
        "search summary (target: every step's p99 < {} ms, no error):",
        settings.target.as_millis()
    );
    for report in &reports {
        let (step, p99) = report.worst_step().unwrap_or((Step::Follow, 0.0));
        println!(
            "   {:<22} {:>6} students  {:>5.0}/min done  worst p99 {:>7.1} ms ({:<12}) {}",
            report.label,
            report.students,
            report.completed as f64 * 60.0 / report.wall.as_secs_f64().max(1e-9),
            p99,
            step.name(),
            if report.passes(settings.target) {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    let counts: Vec<u64> = connection_counts
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    println!("proxy connections per instance: {counts:?}");

    // Quiet: retries and background work settle before the books are read.
    driver.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    let completed: u64 = reports.iter().map(|report| report.completed).sum();
    let books = driver.block_on(check_books(backend, &wechat_pay, &alipay, completed))?;
    ensure!(books, "the books do not balance");
    let errors: u64 = reports
        .iter()
        .flat_map(|report| report.rows.iter().map(|row| row.5))
        .sum();
    let unanswered: u64 = reports.iter().map(|report| report.unanswered).sum();
    if errors > 0 || unanswered > 0 {
        bail!("{errors} student(s) stopped by an error, {unanswered} request(s) unanswered");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_pass(
    driver: &Runtime,
    pass: &Pass,
    settings: &Settings,
    client: &reqwest::Client,
    public_url: &str,
    push: &WechatPush,
    redis: &redis::aio::MultiplexedConnection,
    wechat_pay: &Arc<WechatPaySandbox>,
    alipay: &Arc<AlipaySandbox>,
    sandboxes: &Runtime,
    backend: &Backend,
    instance_pids: &[u32],
    postgres_port: u16,
) -> anyhow::Result<PassReport> {
    let recorder = Arc::new(Recorder::default());
    let world = Arc::new(World {
        client: client.clone(),
        public_url: public_url.to_owned(),
        push: push.clone(),
        redis: redis.clone(),
        wechat_pay: wechat_pay.clone(),
        alipay: alipay.clone(),
        sandbox_runtime: sandboxes.handle().clone(),
        notify_delay: settings.notify_delay,
        returning_percent: settings.returning_percent,
        recorder: recorder.clone(),
    });
    println!(
        "\n{}: {} students at {:.0}/min…",
        pass.label,
        pass.students.len(),
        pass.rate
    );
    let postgres_pids = driver.block_on(backend.postgres_pids_of(instance_pids, postgres_port));
    let before = Ticks::now(instance_pids, &postgres_pids);
    let started = Instant::now();
    let arrival_span = driver.block_on(async {
        let interval = Duration::from_secs_f64(60.0 / pass.rate);
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(pass.students.len());
        for (index, n) in pass.students.clone().enumerate() {
            tokio::time::sleep_until(start + interval.mul_f64(index as f64)).await;
            tasks.push(tokio::spawn(student(world.clone(), n)));
        }
        let span = start.elapsed();
        for task in tasks {
            let _ = task.await;
        }
        span
    });
    let wall = started.elapsed();
    // Pools grow during the pass: count every backend that served it.
    let postgres_pids = driver.block_on(backend.postgres_pids_of(instance_pids, postgres_port));
    let ticks = Ticks::now(instance_pids, &postgres_pids).since(before);
    let samples = recorder
        .samples
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let errors = recorder
        .errors
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let rows = STEPS
        .iter()
        .map(|step| {
            let mut values = samples.get(step).cloned().unwrap_or_default();
            values.sort_unstable();
            let errors = errors.get(step).map_or(0, |(count, _)| *count);
            (
                *step,
                values.len(),
                percentile(&values, 0.50),
                percentile(&values, 0.99),
                percentile(&values, 1.0),
                errors,
            )
        })
        .collect();
    let mut first_errors: Vec<(Step, String)> = errors
        .into_iter()
        .map(|(step, (_, message))| (step, message))
        .collect();
    first_errors.sort_by_key(|(step, _)| *step);
    Ok(PassReport {
        label: pass.label.clone(),
        rate: pass.rate,
        students: pass.students.len(),
        completed: recorder.completed.load(Ordering::Relaxed),
        arrival_span,
        wall,
        rows,
        first_errors,
        requests: recorder.requests.load(Ordering::Relaxed),
        unanswered: recorder.unanswered.load(Ordering::Relaxed),
        late_paid: recorder.late_paid.load(Ordering::Relaxed),
        ticks,
    })
}

// ---------------------------------------------------------------------------------
// The books.

async fn check_books(
    backend: &Backend,
    wechat_pay: &WechatPaySandbox,
    alipay: &AlipaySandbox,
    completed: u64,
) -> anyhow::Result<bool> {
    let mut paid_upstream: Vec<String> = wechat_pay
        .transactions()
        .into_iter()
        .filter(|trade| trade.trade_state == WechatTradeState::Success)
        .map(|trade| trade.out_trade_no)
        .collect();
    paid_upstream.extend(
        alipay
            .transactions()
            .into_iter()
            .filter(|trade| trade.status == SandboxTradeStatus::TradeSuccess)
            .map(|trade| trade.out_trade_no),
    );
    let notifications: Vec<(String, u16, String)> = wechat_pay
        .notification_answers()
        .into_iter()
        .chain(alipay.notification_answers())
        .collect();
    let unanswered_notifications = notifications
        .iter()
        .filter(|(_, status, _)| !matches!(status, 200 | 204))
        .count();
    backend
        .execute("CREATE TABLE {s}.upstream_paid (out_trade_no text PRIMARY KEY)")
        .await?;
    for chunk in paid_upstream.chunks(2_000) {
        let values: Vec<String> = chunk.iter().map(|number| format!("('{number}')")).collect();
        backend
            .execute(&format!(
                "INSERT INTO {{s}}.upstream_paid VALUES {}",
                values.join(",")
            ))
            .await?;
    }
    // What the channels say, beside our tables (dropped with the schema).
    let numbers = backend
        .numbers(
            "SELECT \
             (SELECT count(*) FROM {s}.upstream_paid), \
             (SELECT count(*) FROM {s}.orders WHERE status = 'paid'), \
             (SELECT count(*) FROM {s}.upstream_paid u LEFT JOIN {s}.orders o \
                ON o.out_trade_no = u.out_trade_no AND o.status = 'paid' WHERE o.id IS NULL), \
             (SELECT count(*) FROM {s}.orders o LEFT JOIN (SELECT order_id, count(*) AS c \
                FROM {s}.payment_notifications WHERE verdict = 'accepted' GROUP BY order_id) n \
                ON n.order_id = o.id WHERE o.status = 'paid' AND coalesce(n.c, 0) <> 1), \
             (SELECT count(*) FROM (SELECT oi.fee_item_id FROM {s}.order_items oi \
                JOIN {s}.orders o ON o.id = oi.order_id WHERE o.status = 'paid' \
                GROUP BY oi.fee_item_id HAVING count(*) > 1) twice), \
             (SELECT count(*) FROM {s}.fee_items WHERE status = 'paid'), \
             (SELECT count(*) FROM {s}.fee_items f WHERE f.status = 'paid' AND NOT EXISTS \
                (SELECT 1 FROM {s}.order_items oi JOIN {s}.orders o ON o.id = oi.order_id \
                 WHERE oi.fee_item_id = f.id AND o.id = f.paid_order_id AND o.status = 'paid')), \
             (SELECT count(*) FROM {s}.payment_notifications WHERE verdict = 'accepted'), \
             (SELECT count(*) FROM {s}.payment_notifications WHERE verdict = 'duplicate'), \
             (SELECT count(*) FROM {s}.payment_notifications WHERE verdict = 'refused'), \
             (SELECT count(*) FROM {s}.orders WHERE exception IS NOT NULL)",
        )
        .await;
    let numbers = numbers?;
    // The same books again, from the outside: each sandbox's ledger against our rows,
    // by the rules the fault tests use (`tests/api/support/books/compare.rs`).
    let mut ledger = wechat_pay.ledger();
    ledger.extend(alipay.ledger());
    let ours = books::read_ours(&backend.admin, Some(&backend.schema)).await?;
    let outside = books::compare(&ledger, &ours);
    let [
        upstream,
        paid_here,
        upstream_not_paid_here,
        not_once,
        items_twice,
        items_paid,
        items_wrongly_linked,
        accepted,
        duplicates,
        refused,
        exceptions,
    ] = numbers[..]
    else {
        bail!("the books query answered {} numbers", numbers.len());
    };
    let checks = [
        (
            "orders paid at the channels are paid here",
            upstream_not_paid_here == 0 && paid_here == upstream,
        ),
        (
            "every paid order applied exactly once",
            not_once == 0 && accepted == paid_here,
        ),
        ("no fee item in two paid orders", items_twice == 0),
        (
            "every paid item belongs to its paid order",
            items_wrongly_linked == 0,
        ),
        (
            "every completed student has both items paid",
            items_paid >= 2 * completed as i64 && paid_here >= completed as i64,
        ),
        (
            "every notification answered with success",
            unanswered_notifications == 0,
        ),
        (
            "no notification refused, no order in exception",
            refused == 0 && exceptions == 0,
        ),
        (
            "the sandboxes' ledgers and our orders, items and refunds agree",
            outside.violations.is_empty(),
        ),
    ];
    println!();
    println!(
        "books: {upstream} orders paid at the channels, {paid_here} paid here; {items_paid} \
         items paid; notifications: {} sent, {accepted} accepted, {duplicates} duplicates, \
         {refused} refused",
        notifications.len()
    );
    println!("   from the outside: {}", outside.summary.describe());
    let mut balanced = true;
    for (check, ok) in checks {
        println!("   {} {check}", if ok { "ok  " } else { "FAIL" });
        balanced &= ok;
    }
    const SHOWN: usize = 50;
    for violation in outside.violations.iter().take(SHOWN) {
        println!("      {violation}");
    }
    if outside.violations.len() > SHOWN {
        println!("      … and {} more", outside.violations.len() - SHOWN);
    }
    Ok(balanced)
}
