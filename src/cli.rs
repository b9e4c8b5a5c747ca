//! The command line: one binary, the commands of CONTRACT.md. Every failure ends in
//! one line naming the problem and a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};

use crate::cache::{MemoryCache, RedisCache, SharedCache};
use crate::clock::Clock;
use crate::config::{Config, WechatAccountConfig};
use crate::import::read::MAX_FILE_BYTES;
use crate::import::{
    ImportRejected, ImportSummary, ReadError, RowProblem, parse_fees_partially,
    parse_students_partially, read_table_bytes,
};
use crate::jobs::followers::{ACTOR_CLI, FollowerCheck};
use crate::store::{ImportFailure, ImportedFile, Store};
use crate::web::{App, Services, shutdown_signal};
use crate::wechat::api::{ApiClient, ApiClientConfig};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(
    name = "campus-pay",
    version,
    about = "校园缴费: the fee-payment platform of a college"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a complete demo school on the embedded defaults, with the built-in sandbox.
    Demo,
    /// Serve for real with the CAMPUSPAY_* configuration.
    Serve {
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// The official account's menu.
    Menu {
        #[command(subcommand)]
        action: MenuAction,
    },
    /// Import students or fee items from a .csv (UTF-8 or GBK) or .xlsx file: all
    /// rows or none.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// The finance office's console accounts.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// The official account's followers.
    Followers {
        #[command(subcommand)]
        action: FollowersAction,
    },
    /// Match a channel's bill for a day against our orders, apply payments the
    /// channel has and we lack, flag the rest, and print the report.
    Reconcile {
        /// The bill's day (Beijing), YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// wechat, alipay or abc.
        #[arg(long, default_value = "wechat")]
        channel: String,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an admin. The password comes from CAMPUSPAY_ADMIN_PASSWORD, or is read
    /// from standard input.
    Add {
        username: String,
        /// `finance` (everything) or `viewer` (read-only).
        #[arg(long, default_value = "finance")]
        role: String,
    },
}

#[derive(Subcommand)]
enum FollowersAction {
    /// Check every follower's remark against the rule and act on the non-compliant
    /// per CAMPUSPAY_CLEANUP_ACTION (report, tag or blacklist).
    Cleanup {
        /// Sort the followers and report, changing nothing at WeChat.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum ImportWhat {
    /// Students: 身份证号, 姓名, 性别, 年级, 班级, and optionally 专业, 学号, 初始密码.
    Students {
        file: PathBuf,
        /// Check the file and report what would change, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Fee items: 身份证号, 学年, 项目, 金额 (yuan).
    Fees {
        file: PathBuf,
        /// Check the file and report what would change, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum MenuAction {
    /// Push a menu definition to the official account.
    Push {
        /// The menu JSON (the menu API's own shape).
        #[arg(default_value = "menus/default.json")]
        file: PathBuf,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` puts the whole chain of context on one line.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo => crate::demo::run().await,
        Command::Serve { no_migrate } => serve(!no_migrate).await,
        Command::Migrate => migrate().await,
        Command::Menu {
            action: MenuAction::Push { file },
        } => push_menu(&file).await,
        Command::Import { what } => import(what).await,
        Command::Followers {
            action: FollowersAction::Cleanup { dry_run },
        } => followers_cleanup(dry_run).await,
        Command::Admin {
            action: AdminAction::Add { username, role },
        } => add_admin(&username, &role).await,
        Command::Reconcile { date, channel } => reconcile(&date, &channel).await,
    }
}

async fn serve(migrate: bool) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    for line in config.summary() {
        tracing::info!("{line}");
    }
    let services = Services::connect(&config, migrate).await?;
    let app = App::build(config, services).await?;
    tracing::info!("campus-pay listening on http://{}", app.local_addr()?);
    app.run_until_stopped(shutdown_signal()).await
}

/// `admin add USERNAME`: argon2id like the students' passwords, never printed.
async fn add_admin(username: &str, role: &str) -> anyhow::Result<()> {
    let role = match role {
        "finance" => crate::store::AdminRole::Finance,
        "viewer" => crate::store::AdminRole::Viewer,
        other => anyhow::bail!("--role: {other:?} is neither finance nor viewer"),
    };
    let valid_name = (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid_name {
        anyhow::bail!("USERNAME: 3 to 32 letters, digits, '_', '.' or '-'");
    }
    let password = match std::env::var("CAMPUSPAY_ADMIN_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            eprintln!("password for {username} (input is shown; prefer CAMPUSPAY_ADMIN_PASSWORD):");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let strong = password.chars().count() >= 10
        && password.chars().any(|c| c.is_ascii_alphabetic())
        && password.chars().any(|c| c.is_ascii_digit());
    if !strong {
        anyhow::bail!("CAMPUSPAY_ADMIN_PASSWORD: at least 10 characters, with letters and digits");
    }
    let hash =
        tokio::task::spawn_blocking(move || crate::domain::password::hash_password(&password))
            .await
            .context("password hashing stopped")?
            .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))?;
    let config = Config::from_env()?;
    let store = open_migrated_store(&config).await?;
    if !store
        .create_admin(username, &hash, role, chrono::Utc::now())
        .await
        .context("cannot create the admin")?
    {
        anyhow::bail!("USERNAME: {username} already exists");
    }
    println!("admin {username} created");
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    open_migrated_store(&config).await?;
    println!("migrations applied");
    Ok(())
}

/// The configured database, with any pending migrations applied.
async fn open_migrated_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config.database_url.expose_secret())
        .await
        .context("cannot open the database (CAMPUSPAY_DATABASE_URL)")?;
    store
        .migrate()
        .await
        .context("cannot apply the database migrations")?;
    Ok(store)
}

/// Reads and checks the whole file, checks the good rows against the database too
/// (unknown students, paid items), and applies them only when no row is bad. Every
/// bad row is printed (`第N行：…`, on stdout) before the one-line error.
async fn import(what: ImportWhat) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let (file, dry_run) = match &what {
        ImportWhat::Students { file, dry_run } | ImportWhat::Fees { file, dry_run } => {
            (file, *dry_run)
        }
    };
    let file_name = file.display().to_string();
    let bytes = read_import_file(file)?;
    let table = read_table_bytes(&file_name, &bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    // The audit row of an applied import names the CLI as its actor.
    let source = ImportedFile {
        actor: "cli",
        file_name: &file_name,
        sha256: &sha256,
    };
    let store = open_migrated_store(&config).await?;
    let now = Utc::now();
    let (problems, outcome) = match what {
        ImportWhat::Students { .. } => {
            let parsed = parse_students_partially(&table);
            let apply = !dry_run && parsed.problems.is_empty();
            let outcome = store
                .import_students_from(&parsed.rows, now, apply, Some(&source))
                .await;
            (parsed.problems, outcome)
        }
        ImportWhat::Fees { .. } => {
            let parsed = parse_fees_partially(&table);
            let apply = !dry_run && parsed.problems.is_empty();
            let outcome = store
                .import_fees_from(&parsed.rows, now, apply, Some(&source))
                .await;
            (parsed.problems, outcome)
        }
    };
    report_import(problems, outcome, dry_run)
}

/// The file's bytes (an oversized one refused before it is read), so that the
/// audit row can name their SHA-256; `read_table_bytes` then judges its type.
fn read_import_file(path: &std::path::Path) -> Result<Vec<u8>, ReadError> {
    let file = path.display().to_string();
    let io_error = |source| ReadError::Io {
        file: file.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge { file });
    }
    std::fs::read(path).map_err(io_error)
}

fn report_import(
    mut problems: Vec<RowProblem>,
    outcome: Result<ImportSummary, ImportFailure>,
    dry_run: bool,
) -> anyhow::Result<()> {
    match outcome {
        Ok(summary) if problems.is_empty() => {
            if dry_run {
                println!("预览（未写入任何数据）：{summary}");
            } else {
                println!("导入完成：{summary}");
            }
            return Ok(());
        }
        Ok(_) => {}
        Err(ImportFailure::Rejected(rejected)) => problems.extend(rejected.problems),
        Err(failure) => return Err(failure).context("导入失败，未导入任何数据"),
    }
    let rejected = ImportRejected::new(problems);
    println!("{rejected}");
    bail!(
        "导入失败：{} 行有问题，未导入任何数据",
        rejected.bad_lines()
    )
}

async fn push_menu(file: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let Some(wechat) = &config.wechat else {
        bail!("CAMPUSPAY_WECHAT_APPID: the official account must be configured to push a menu");
    };
    let cache = open_cache(&config).await?;
    let api = api_client(&config, wechat, cache)?;
    crate::wechat::menu::push_menu(&api, file, &config.public_url).await?;
    println!("menu pushed: WeChat answered errcode 0 (ok)");
    Ok(())
}

/// The configured cache: Redis when set, else one in this process.
async fn open_cache(config: &Config) -> anyhow::Result<SharedCache> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(
            RedisCache::connect(url.expose_secret(), &config.redis_prefix)
                .await
                .context("cannot reach Redis (CAMPUSPAY_REDIS_URL)")?,
        ),
        None => Arc::new(MemoryCache::new(Clock::system())),
    })
}

fn api_client(
    config: &Config,
    wechat: &WechatAccountConfig,
    cache: SharedCache,
) -> anyhow::Result<ApiClient> {
    Ok(ApiClient::new(
        ApiClientConfig {
            appid: wechat.appid.clone(),
            secret: wechat.secret.clone(),
            api_base: config.wechat_api_base.clone(),
        },
        cache,
    )?)
}

/// Prints the report (stored too, for the console); a run stopped by a WeChat error
/// prints what it found and where the next run resumes, then fails.
async fn followers_cleanup(dry_run: bool) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let Some(wechat) = &config.wechat else {
        bail!("CAMPUSPAY_WECHAT_APPID: the official account must be configured to check followers");
    };
    let store = open_migrated_store(&config).await?;
    let cache = open_cache(&config).await?;
    let check = FollowerCheck {
        api: api_client(&config, wechat, cache.clone())?,
        store,
        cache,
        clock: Clock::system(),
        config: config.cleanup.clone(),
    };
    let report = check.run(ACTOR_CLI, dry_run).await?;
    print!("{report}");
    println!(
        "报告已保存（第 {} 次检查），管理后台“公众号关注者”可查看。",
        report.run_id
    );
    if let Some(reason) = &report.stopped {
        bail!("the follower check stopped early: {reason}");
    }
    Ok(())
}

/// `reconcile --date YYYY-MM-DD [--channel …]`: one run, stored like the console's;
/// a run that failed (no bill, a bill failing its hash) prints why and fails.
async fn reconcile(date: &str, channel: &str) -> anyhow::Result<()> {
    use crate::domain::provider::Provider;
    use crate::jobs::reconcile::{ACTOR_CLI, parse_day};
    let Some(day) = parse_day(date) else {
        bail!("--date: {date:?} is not a day as YYYY-MM-DD");
    };
    let Some(channel) = Provider::parse(channel) else {
        bail!("--channel: {channel:?} is none of wechat, alipay, abc");
    };
    let config = Config::from_env()?;
    let services = Services::connect(&config, true).await?;
    let state = crate::web::AppState::new(config, services)?;
    let report = state
        .reconciler()
        .reconcile(channel, day, ACTOR_CLI)
        .await?;
    print!("{report}");
    if let Some(error) = &report.run.error {
        bail!("reconciliation run {} failed: {error}", report.run.id);
    }
    Ok(())
}
