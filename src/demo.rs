//! `campus-pay demo`: a complete demo school on the embedded defaults (SQLite file,
//! in-process cache) with the sandbox playing WeChat. Needs no credentials and reaches
//! no network.

use std::net::SocketAddr;

use anyhow::Context;
use rand::RngExt;

use crate::config::{Config, Variables};
use crate::domain::password::hash_password;
use crate::import::fees::parse_fees;
use crate::import::read::read_table_bytes;
use crate::import::students::parse_students;
use crate::sandbox::abc::AbcSandbox;
use crate::sandbox::alipay::{AlipaySandbox, SANDBOX_APP_ID};
use crate::sandbox::merchant;
use crate::sandbox::wechat_api::WechatSandbox;
use crate::sandbox::wechat_pay::WechatPaySandbox;
use crate::sandbox::wechat_push::PushAesKey;
use crate::sandbox::wechat_push::{self, EncryptionMode, WechatPush};
use crate::store::AdminRole;
use crate::web::{App, Services, shutdown_signal};

const DEMO_APPID: &str = "wxd3m0campuspay01";
const DEMO_ACCOUNT: &str = "gh_campuspay_demo";
const DEMO_TOKEN: &str = "campuspaydemo";
const DEMO_DATABASE: &str = "sqlite://data/campus-pay-demo.db?mode=rwc";
/// Where the demo writes the published sandbox merchant keys it configures.
const DEMO_KEY_DIR: &str = "data/demo-keys";
const DEMO_SCHOOL: &str = "武威职业学院";
/// The demo starts from a clean school every time (passwords changed in an earlier run
/// would otherwise no longer match the logins printed below).
const DEMO_DATABASE_FILES: [&str; 3] = [
    "data/campus-pay-demo.db",
    "data/campus-pay-demo.db-wal",
    "data/campus-pay-demo.db-shm",
];

/// The demo school's students, as the finance office would import them.
const DEMO_STUDENTS_CSV: &str = "身份证号,姓名,性别,年级,班级,专业,初始密码
11010519491231002X,张三,男,2026,汽修1班,汽车检测与维修技术,
620622200703150025,李四,女,2025,电子商务2班,电子商务,000000
11010119900307803X,王五,男,2026,汽修1班,汽车检测与维修技术,
";
const DEMO_FEES_CSV: &str = "身份证号,学年,项目,金额
11010519491231002X,2026-2027,学费,4500
11010519491231002X,2026-2027,住宿费,1200
11010519491231002X,2025-2026,教材费,350.50
620622200703150025,2026-2027,学费,5000
620622200703150025,2026-2027,住宿费,1000
";
/// (ID number, name, initial password, what the student sees).
const DEMO_LOGINS: [(&str, &str, &str, &str); 3] = [
    ("11010519491231002X", "张三", "31002X", "three unpaid items"),
    (
        "620622200703150025",
        "李四",
        "000000",
        "initial password given by the import",
    ),
    (
        "11010119900307803X",
        "王五",
        "07803X",
        "owes nothing: 无欠费",
    ),
];

pub async fn run() -> anyhow::Result<()> {
    let secret = random_alphanumeric(32);
    let aes_key = random_alphanumeric(43);
    let sandbox = WechatSandbox::spawn(DEMO_APPID, &secret)
        .await
        .context("cannot start the WeChat sandbox")?;
    let listen = std::env::var("CAMPUSPAY_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let public_url = format!("http://{listen}");
    let api_base = sandbox.base_url().to_string();
    let clock = crate::clock::Clock::system();
    let pay = WechatPaySandbox::spawn(merchant::sandbox_merchant(DEMO_APPID), clock.clone())
        .await
        .context("cannot start the WeChat Pay sandbox")?;
    pay.set_payee_name(DEMO_SCHOOL);
    let key_files = merchant::write_key_files(std::path::Path::new(DEMO_KEY_DIR))
        .context("cannot write the sandbox merchant keys under data/")?;
    let mut pay_settings = merchant::settings(pay.base_url().as_str(), &key_files);
    let alipay = AlipaySandbox::spawn(SANDBOX_APP_ID, clock.clone())
        .await
        .context("cannot start the Alipay sandbox")?;
    let key_dir = std::path::Path::new(DEMO_KEY_DIR);
    pay_settings.extend(
        merchant::alipay_settings(alipay.base_url().as_str(), key_dir)
            .context("cannot write the sandbox Alipay keys under data/")?,
    );
    let abc = AbcSandbox::spawn(clock.clone())
        .await
        .context("cannot start the bank sandbox")?;
    pay_settings.extend(
        merchant::abc_settings(abc.gateway_url().as_str(), key_dir)
            .context("cannot write the sandbox ABC keys under data/")?,
    );
    let mut pairs = vec![
        ("CAMPUSPAY_LISTEN", listen.as_str()),
        ("CAMPUSPAY_PUBLIC_URL", public_url.as_str()),
        ("CAMPUSPAY_DATABASE_URL", DEMO_DATABASE),
        ("CAMPUSPAY_WECHAT_APPID", DEMO_APPID),
        ("CAMPUSPAY_WECHAT_SECRET", secret.as_str()),
        ("CAMPUSPAY_WECHAT_TOKEN", DEMO_TOKEN),
        ("CAMPUSPAY_WECHAT_AES_KEY", aes_key.as_str()),
        ("CAMPUSPAY_WECHAT_API_BASE", api_base.as_str()),
        ("CAMPUSPAY_WECHAT_OAUTH_BASE", api_base.as_str()),
    ];
    pairs.extend(
        pay_settings
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    let config = Config::from_variables(&Variables::from_pairs(pairs))?;
    for file in DEMO_DATABASE_FILES {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot reset the demo database {file}"));
            }
        }
    }
    let services = Services::connect(&config, true).await?;
    seed_the_school(&services).await?;
    seed_the_office(&services).await?;
    let app = App::build(config, services).await?;
    let address = app.local_addr()?;
    let push = WechatPush {
        token: DEMO_TOKEN.into(),
        appid: DEMO_APPID.into(),
        aes_key: Some(PushAesKey::parse(&aes_key)?),
    };
    let server = tokio::spawn(app.run_until_stopped(shutdown_signal()));
    print_banner(address, &sandbox);
    print_student_pages(address);
    print_console(address);
    show_a_conversation(address, &push).await?;
    print_try_it_yourself(address, &push);
    server.await.context("the server task failed")?
}

/// Imports the demo school through the same path as `campus-pay import`.
async fn seed_the_school(services: &Services) -> anyhow::Result<()> {
    let now = services.clock.now();
    let students = read_table_bytes("students.csv", DEMO_STUDENTS_CSV.as_bytes())?;
    let students = parse_students(&students)?;
    services
        .store
        .import_students(&students, now, true)
        .await
        .map_err(|error| anyhow::anyhow!("cannot import the demo students: {error}"))?;
    let fees = read_table_bytes("fees.csv", DEMO_FEES_CSV.as_bytes())?;
    let fees = parse_fees(&fees)?;
    services
        .store
        .import_fees(&fees, now, true)
        .await
        .map_err(|error| anyhow::anyhow!("cannot import the demo fees: {error}"))?;
    Ok(())
}

/// The finance office's demo accounts: a `finance` admin and a read-only `viewer`.
const DEMO_ADMINS: [(&str, AdminRole, &str); 2] = [
    (
        "caiwu",
        AdminRole::Finance,
        "imports, corrects, waives, resolves, runs the follower check",
    ),
    ("chakan", AdminRole::Viewer, "reads only"),
];
/// Their password in the demo (a real deployment creates admins with `admin add`).
const DEMO_ADMIN_PASSWORD: &str = "demo-Office-2026";

/// Creates the demo admins as `campus-pay admin add` does.
async fn seed_the_office(services: &Services) -> anyhow::Result<()> {
    let hash = tokio::task::spawn_blocking(|| hash_password(DEMO_ADMIN_PASSWORD))
        .await
        .context("password hashing panicked")?
        .map_err(|error| anyhow::anyhow!("cannot hash the demo admin password: {error}"))?;
    for (username, role, _) in DEMO_ADMINS {
        services
            .store
            .create_admin(username, &hash, role, services.clock.now())
            .await
            .with_context(|| format!("cannot create the demo admin {username}"))?;
    }
    Ok(())
}

fn print_console(address: SocketAddr) {
    println!("The finance office's console:");
    println!("  console          http://{address}/admin");
    for (username, _, what) in DEMO_ADMINS {
        println!("    {username} / {DEMO_ADMIN_PASSWORD}   {what}");
    }
    println!();
}

fn print_student_pages(address: SocketAddr) {
    println!("Students' pages (open them in a browser):");
    println!("  PC portal        http://{address}/");
    println!("  WeChat H5        http://{address}/h5   (the sandbox plays WeChat's OAuth)");
    println!(
        "  demo students    (ID number / initial password; a new password is asked at first login)"
    );
    for (id_card, name, password, note) in DEMO_LOGINS {
        println!("    {name}  {id_card} / {password}   {note}");
    }
    println!(
        "  paying           tick items, 缴费 / 学费缴费, then use the page's link to the sandbox's"
    );
    println!(
        "                   WeChat Pay cashier (确认支付): it pays and sends a signed, encrypted"
    );
    println!("                   notification back, and the page shows 缴费成功");
    println!();
}

fn random_alphanumeric(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn print_banner(address: SocketAddr, sandbox: &WechatSandbox) {
    println!();
    println!("campus-pay demo (embedded defaults: {DEMO_DATABASE}, in-process cache)");
    println!("  webhook          http://{address}/wechat   (token {DEMO_TOKEN}, safe mode on)");
    println!("  health           http://{address}/healthz");
    println!("  WeChat sandbox   {}", sandbox.base_url());
    println!();
}

/// Plays WeChat once: the server check, a new follower in safe mode, a keyword in
/// plaintext, and prints what the account answered.
async fn show_a_conversation(address: SocketAddr, push: &WechatPush) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let webhook = format!("http://{address}/wechat");
    let echo = client
        .get(format!(
            "{webhook}?{}",
            push.verification_query("demo-echo-123")
        ))
        .send()
        .await?
        .text()
        .await?;
    println!("WeChat's server check → echoed {echo:?}");
    let now = chrono::Utc::now().timestamp();
    let follower = "oDemoFollower000000000000001";
    let conversation = [
        (
            "a new follower (safe mode)",
            wechat_push::subscribe_xml(DEMO_ACCOUNT, follower, now, None),
            EncryptionMode::Safe,
        ),
        (
            "the follower types 缴费 (plaintext mode)",
            wechat_push::text_xml(DEMO_ACCOUNT, follower, "缴费", 1, now),
            EncryptionMode::Plaintext,
        ),
    ];
    for (what, xml, mode) in conversation {
        let post = push.signed_post(&xml, mode);
        let response = client
            .post(format!("{webhook}?{}", post.query))
            .body(post.body.clone())
            .send()
            .await?
            .text()
            .await?;
        let reply = push
            .open_reply(&post, &response)
            .map_err(|e| anyhow::anyhow!("cannot open the reply: {e}"))?;
        println!("\n{what} → the account replied:\n{reply}");
    }
    Ok(())
}

fn print_try_it_yourself(address: SocketAddr, push: &WechatPush) {
    let xml = wechat_push::text_xml(
        DEMO_ACCOUNT,
        "oDemoFollower000000000000002",
        "帮助",
        2,
        chrono::Utc::now().timestamp(),
    );
    let post = push.signed_post(&xml, EncryptionMode::Plaintext);
    println!("\nSend a message yourself (valid for 5 minutes, WeChat's replay window):");
    println!(
        "  curl -s 'http://{address}/wechat?{}' --data-binary '{}'",
        post.query,
        post.body.replace('\'', "'\\''")
    );
    println!("\nPress Ctrl-C to stop.");
}
