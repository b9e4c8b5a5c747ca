//! Load benchmark of the webhook (`/wechat`) beside a bare axum handler.
//!
//! `cargo bench --bench webhook` (release build). The binary plays three roles,
//! chosen by `CAMPUSPAY_BENCH_ROLE`:
//!
//! - unset: the driver. It starts itself twice as child servers, drives each scenario
//!   with 32 keep-alive connections, and prints one markdown table;
//! - `bare`: an axum router whose `POST /wechat` returns a constant reply XML;
//! - `app`: the real application (SQLite file in a fresh temporary directory,
//!   in-process cache), as `campus-pay serve` builds it.
//!
//! The driver shares the machine's cores with the servers, so the fair figure is the
//! server's CPU time per request (utime + stime of the child, from `/proc`), compared
//! with the bare handler's. Every request is built before its timed window, and every
//! response is checked after it (status 200 and the expected content, safe-mode
//! replies decrypted and verified), so the benchmark cannot measure errors.
//!
//! `CAMPUSPAY_BENCH_REQUESTS` sets the requests per scenario (default 20,000).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use campus_pay::config::{Config, Variables};
use campus_pay::sandbox::wechat_push::PushAesKey;
use campus_pay::sandbox::wechat_push::{self, EncryptionMode, SignedPost, WechatPush};
use campus_pay::web::{App, Services};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use tokio::net::TcpStream;

const ROLE_VAR: &str = "CAMPUSPAY_BENCH_ROLE";
const DATABASE_VAR: &str = "CAMPUSPAY_BENCH_DATABASE_URL";
const REQUESTS_VAR: &str = "CAMPUSPAY_BENCH_REQUESTS";
const DEFAULT_REQUESTS: usize = 20_000;
const CONNECTIONS: usize = 32;

const TOKEN: &str = "campusbenchtoken";
const APPID: &str = "wx2c2769f8efd9abc2";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
/// Our official account's `gh_` id, the `ToUserName` of every pushed message.
const ACCOUNT: &str = "gh_10f6c3c3ac5a";
/// A keyword the app answers with the payment link.
const TEXT_CONTENT: &str = "我要缴费";
/// In the app's answer to [`TEXT_CONTENT`].
const TEXT_ANSWER: &str = "点此缴费";
/// In the app's welcome.
const WELCOME_ANSWER: &str = "欢迎关注";

/// What the bare handler answers: a passive text reply about the size of the app's
/// answer to a text message.
const BARE_XML: &str = "<xml><ToUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></ToUserName>\
<FromUserName><![CDATA[gh_10f6c3c3ac5a]]></FromUserName><CreateTime>1700000000</CreateTime>\
<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[缴纳学费、住宿费等费用：\
<a href=\"http://127.0.0.1:8080/h5\">点此缴费</a>，绑定后勾选项目即可用微信支付。]]></Content></xml>";

/// Linux reports process times in clock ticks of `sysconf(_SC_CLK_TCK)`, which is 100
/// on every Linux we deploy to (x86-64 and arm64 alike).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match std::env::var(ROLE_VAR).as_deref() {
        Ok("bare") => runtime.block_on(serve_bare()),
        Ok("app") => runtime.block_on(serve_app()),
        Ok(other) => bail!("unknown {ROLE_VAR}={other}"),
        Err(_) => runtime.block_on(drive()),
    }
}

// ---------------------------------------------------------------------------------
// The servers.

/// A child exits when the driver does: its stdin is the driver's pipe.
fn exit_with_the_driver() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

fn announce(port: u16) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // The driver reads this first line; nothing else is printed on stdout.
    let _ = writeln!(stdout, "{port}");
    let _ = stdout.flush();
}

async fn serve_bare() -> anyhow::Result<()> {
    use axum::Router;
    use axum::routing::post;
    exit_with_the_driver();
    // Reads the body, as the webhook does, so both leave the connection alike.
    async fn reply(_body: Bytes) -> impl axum::response::IntoResponse {
        ([(CONTENT_TYPE, "application/xml")], BARE_XML)
    }
    let router = Router::new().route("/wechat", post(reply));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?.port());
    axum::serve(listener, router).await?;
    Ok(())
}

async fn serve_app() -> anyhow::Result<()> {
    exit_with_the_driver();
    let database_url = std::env::var(DATABASE_VAR).context(DATABASE_VAR)?;
    let config = Config::from_variables(&Variables::from_pairs([
        ("CAMPUSPAY_LISTEN", "127.0.0.1:0"),
        ("CAMPUSPAY_DATABASE_URL", database_url.as_str()),
        ("CAMPUSPAY_WECHAT_APPID", APPID),
        ("CAMPUSPAY_WECHAT_SECRET", "x"),
        ("CAMPUSPAY_WECHAT_TOKEN", TOKEN),
        ("CAMPUSPAY_WECHAT_AES_KEY", AES_KEY),
        // Nothing listens there; the webhook's path never calls WeChat.
        ("CAMPUSPAY_WECHAT_API_BASE", "http://127.0.0.1:9"),
    ]))?;
    let services = Services::connect(&config, true).await?;
    let app = App::build(config, services).await?;
    announce(app.local_addr()?.port());
    app.run_until_stopped(std::future::pending()).await
}

// ---------------------------------------------------------------------------------
// The driver.

/// A child server, killed when dropped (also on a panic or an early `?`).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(role: &str, database_url: &str) -> anyhow::Result<Server> {
        let child = Command::new(std::env::current_exe()?)
            .env(ROLE_VAR, role)
            .env(DATABASE_VAR, database_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {role} server"))?;
        let mut server = Server { child, port: 0 };
        let stdout = server.child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        server.port = line
            .trim()
            .parse()
            .with_context(|| format!("the {role} server printed {line:?}, not its port"))?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory for the app's SQLite file, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let path =
            std::env::temp_dir().join(format!("campus-pay-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses; the fields after its closing
    // parenthesis start at field 3 (state), so utime (14) and stime (15) are the 12th
    // and 13th of them.
    let after_name = &stat[stat.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn ticks_to_micros(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / CLOCK_TICKS_PER_SECOND as f64
}

/// Waits until the process has used no CPU for 300 ms: its background work is done.
async fn wait_until_idle(pid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = cpu_ticks(pid)?;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = cpu_ticks(pid)?;
        if now == last {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "server {pid} never went idle");
        last = now;
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// What a response must be.
enum Expect {
    /// Exactly these bytes.
    Exact(Bytes),
    /// A passive text reply to `to` containing `needle`, in plaintext or, when `post`
    /// was encrypted, encrypted and signed.
    Reply {
        post: SignedPost,
        to: String,
        needle: &'static str,
    },
}

/// One prepared request and what its response must be.
struct Exchange {
    request: Request<Full<Bytes>>,
    expect: Expect,
}

fn request(method: Method, path_and_query: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "text/xml")
        .body(Full::new(body))
        .expect("a valid request")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bare,
    ServerCheck,
    Text(EncryptionMode),
    Subscribe(EncryptionMode),
}

/// Builds fresh requests: every message gets its own MsgId and follower, so the
/// webhook's dedup never answers from the cache.
struct Generator {
    push: WechatPush,
    next: u64,
}

impl Generator {
    /// A 28-character openid, like WeChat's, starting with `o{tag}`.
    fn openid(tag: &str, n: u64) -> String {
        format!("o{tag}{n:0>width$}", width = 27 - tag.len())
    }

    fn exchanges(&mut self, kind: Kind, tag: &str, count: usize) -> Vec<Exchange> {
        (0..count).map(|_| self.exchange(kind, tag)).collect()
    }

    fn exchange(&mut self, kind: Kind, tag: &str) -> Exchange {
        self.next += 1;
        let n = self.next;
        let now = unix_now();
        let message = |xml: String, mode, needle| {
            let post = self.push.signed_post(&xml, mode);
            Exchange {
                request: request(
                    Method::POST,
                    &format!("/wechat?{}", post.query),
                    Bytes::from(post.body.clone()),
                ),
                expect: Expect::Reply {
                    post,
                    to: Self::openid(tag, n),
                    needle,
                },
            }
        };
        match kind {
            Kind::Bare => Exchange {
                request: request(
                    Method::POST,
                    "/wechat",
                    Bytes::from(wechat_push::text_xml(
                        ACCOUNT,
                        &Self::openid(tag, n),
                        TEXT_CONTENT,
                        n as i64,
                        now,
                    )),
                ),
                expect: Expect::Exact(Bytes::from_static(BARE_XML.as_bytes())),
            },
            Kind::ServerCheck => {
                let echostr = format!("59277824894{n:08}");
                Exchange {
                    request: request(
                        Method::GET,
                        &format!("/wechat?{}", self.push.verification_query(&echostr)),
                        Bytes::new(),
                    ),
                    expect: Expect::Exact(Bytes::from(echostr)),
                }
            }
            Kind::Text(mode) => message(
                wechat_push::text_xml(
                    ACCOUNT,
                    &Self::openid(tag, n),
                    TEXT_CONTENT,
                    6_054_768_590_064_713_728 + n as i64,
                    now,
                ),
                mode,
                TEXT_ANSWER,
            ),
            Kind::Subscribe(mode) => message(
                wechat_push::subscribe_xml(ACCOUNT, &Self::openid(tag, n), now, None),
                mode,
                WELCOME_ANSWER,
            ),
        }
    }
}

fn check(
    push: &WechatPush,
    expect: &Expect,
    status: StatusCode,
    body: &Bytes,
) -> anyhow::Result<()> {
    ensure!(status == StatusCode::OK, "status {status}: {body:?}");
    match expect {
        Expect::Exact(expected) => ensure!(body == expected, "unexpected body {body:?}"),
        Expect::Reply { post, to, needle } => {
            let text = std::str::from_utf8(body)?;
            if post.mode != EncryptionMode::Plaintext {
                ensure!(text.contains("<Encrypt>"), "not encrypted: {text}");
            }
            let reply = push
                .open_reply(post, text)
                .map_err(|error| anyhow::anyhow!("{error}: {text}"))?;
            ensure!(
                reply.contains(&format!("<ToUserName><![CDATA[{to}]]></ToUserName>"))
                    && reply.contains("<MsgType><![CDATA[text]]></MsgType>")
                    && reply.contains(needle),
                "unexpected reply {reply}"
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

/// Sends every exchange over `senders` (round-robin) and checks every response.
/// Returns the connections, the latencies and the wall time of the load.
async fn load(
    push: &WechatPush,
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
    // Checked after the timed window, so that the driver's work (decrypting safe-mode
    // replies) does not compete with the server for the cores.
    ensure!(outcomes.len() == expects.len(), "responses missing");
    let mut latencies = Vec::with_capacity(outcomes.len());
    for (index, outcome) in outcomes {
        check(push, &expects[index], outcome.status, &outcome.body)
            .with_context(|| format!("request {index}"))?;
        latencies.push(outcome.latency);
    }
    Ok((senders, latencies, wall))
}

struct Row {
    name: String,
    requests: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    cpu_micros_per_request: f64,
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

struct Bench {
    push: WechatPush,
    generator: Generator,
    requests: usize,
    warmup: usize,
    bare: Server,
    app: Server,
    database: DatabaseConnection,
}

impl Bench {
    async fn followers_with_prefix(&self, tag: &str) -> anyhow::Result<i64> {
        count_followers(&self.database, tag).await
    }

    /// Waits until the subscribes of `tag` are all recorded by the app's background
    /// work.
    async fn wait_for_followers(&self, tag: &str, expected: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let recorded = self.followers_with_prefix(tag).await?;
            if recorded == expected as i64 {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{recorded} of {expected} subscribes of {tag} recorded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One scenario: warm-up, then `requests` timed requests on 32 connections, with
    /// the server's CPU time read before and after (background work included).
    async fn scenario(&mut self, name: &str, kind: Kind, tag: &str) -> anyhow::Result<Row> {
        let server = if kind == Kind::Bare {
            &self.bare
        } else {
            &self.app
        };
        let (pid, port) = (server.pid(), server.port);
        let warmup = self.generator.exchanges(kind, tag, self.warmup);
        let timed = self.generator.exchanges(kind, tag, self.requests);
        let mut senders = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            senders.push(connect(port).await?);
        }
        let (senders, _, _) = load(&self.push, senders, warmup).await?;
        let subscribes = matches!(kind, Kind::Subscribe(_));
        if subscribes {
            self.wait_for_followers(tag, self.warmup).await?;
        }
        wait_until_idle(pid).await?;

        let before = cpu_ticks(pid)?;
        let (_, mut latencies, wall) = load(&self.push, senders, timed).await?;
        if subscribes {
            self.wait_for_followers(tag, self.warmup + self.requests)
                .await?;
        }
        wait_until_idle(pid).await?;
        let after = cpu_ticks(pid)?;

        latencies.sort_unstable();
        Ok(Row {
            name: name.to_owned(),
            requests: self.requests,
            per_second: self.requests as f64 / wall.as_secs_f64(),
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            cpu_micros_per_request: ticks_to_micros(after - before) / self.requests as f64,
        })
    }

    /// Text messages while the app's database is unusable: the driver holds SQLite's
    /// write lock, and a subscribe every 500 ms keeps the app's only pooled connection
    /// waiting on it (each write waits out the 5 s busy timeout, and the next one is
    /// already queued). A text message that touched the database would wait too.
    async fn text_with_database_locked(
        &mut self,
        name: &str,
        tag: &str,
    ) -> anyhow::Result<(Row, Probe)> {
        let (pid, port) = (self.app.pid(), self.app.port);
        let warmup =
            self.generator
                .exchanges(Kind::Text(EncryptionMode::Plaintext), tag, self.warmup);
        let timed =
            self.generator
                .exchanges(Kind::Text(EncryptionMode::Plaintext), tag, self.requests);
        let blocker_tag = "BLK";
        let blockers =
            self.generator
                .exchanges(Kind::Subscribe(EncryptionMode::Plaintext), blocker_tag, 400);
        let mut senders = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            senders.push(connect(port).await?);
        }
        let (senders, _, _) = load(&self.push, senders, warmup).await?;
        wait_until_idle(pid).await?;

        let lock = self.database.begin().await?;
        lock.execute_unprepared("CREATE TABLE bench_write_lock (x INTEGER)")
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let trickle = tokio::spawn(send_blockers(
            self.push.clone(),
            port,
            blockers,
            stop.clone(),
        ));
        // Let the first blocker take the app's connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let probe = tokio::spawn(probe_readiness(port));

        let before = cpu_ticks(pid)?;
        let (_, mut latencies, wall) = load(&self.push, senders, timed).await?;
        let after = cpu_ticks(pid)?;

        let probe = probe.await??;
        stop.store(true, Ordering::Relaxed);
        let blockers_sent = trickle.await??;
        let recorded = count_followers(&lock, blocker_tag).await?;
        lock.rollback().await?;
        ensure!(
            recorded == 0,
            "{recorded} subscribes were written while the database was locked"
        );
        latencies.sort_unstable();
        Ok((
            Row {
                name: format!("{name} ({blockers_sent} subscribes queued on the lock)"),
                requests: self.requests,
                per_second: self.requests as f64 / wall.as_secs_f64(),
                p50: percentile(&latencies, 50),
                p99: percentile(&latencies, 99),
                cpu_micros_per_request: ticks_to_micros(after - before) / self.requests as f64,
            },
            probe,
        ))
    }
}

async fn count_followers(database: &impl ConnectionTrait, tag: &str) -> anyhow::Result<i64> {
    let row = database
        .query_one_raw(sea_orm::Statement::from_string(
            database.get_database_backend(),
            format!("SELECT COUNT(*) FROM followers WHERE openid LIKE 'o{tag}%'"),
        ))
        .await?
        .context("no count")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Sends one subscribe every 500 ms until stopped; each is answered at once (the
/// welcome) while its database write queues behind the lock.
async fn send_blockers(
    push: WechatPush,
    port: u16,
    blockers: Vec<Exchange>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<usize> {
    let mut senders = vec![connect(port).await?];
    let mut sent = 0;
    for blocker in blockers {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (back, _, _) = load(&push, senders, vec![blocker]).await?;
        senders = back;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(sent)
}

/// `GET /readyz` pings the database through the same pool: it shows whether the pool
/// was really held while the text messages were answered.
struct Probe {
    status: StatusCode,
    latency: Duration,
}

async fn probe_readiness(port: u16) -> anyhow::Result<Probe> {
    let mut sender = connect(port).await?;
    let start = Instant::now();
    let response = sender
        .send_request(request(Method::GET, "/readyz", Bytes::new()))
        .await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(Probe {
        status,
        latency: start.elapsed(),
    })
}

fn requests_per_scenario() -> anyhow::Result<usize> {
    match std::env::var(REQUESTS_VAR) {
        Ok(raw) => {
            let count: usize = raw
                .parse()
                .with_context(|| format!("{REQUESTS_VAR}={raw}"))?;
            ensure!(count >= 100, "{REQUESTS_VAR} must be at least 100");
            Ok(count)
        }
        Err(_) => Ok(DEFAULT_REQUESTS),
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

async fn drive() -> anyhow::Result<()> {
    let requests = requests_per_scenario()?;
    let temp = TempDir::new()?;
    let database_url = format!("sqlite://{}/bench.db?mode=rwc", temp.path().display());
    let bare = Server::start("bare", &database_url)?;
    let app = Server::start("app", &database_url)?;
    let database = Database::connect(database_url.as_str()).await?;
    let push = WechatPush {
        token: TOKEN.into(),
        appid: APPID.into(),
        aes_key: Some(PushAesKey::parse(AES_KEY).expect("a valid key")),
    };
    let mut bench = Bench {
        generator: Generator {
            push: push.clone(),
            next: 0,
        },
        push,
        requests,
        warmup: (requests / 10).clamp(100, 2_000),
        bare,
        app,
        database,
    };
    eprintln!(
        "webhook benchmark: {requests} requests per scenario, {CONNECTIONS} connections, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    use EncryptionMode::{Plaintext, Safe};
    let scenarios = [
        ("bare axum handler, POST (constant XML)", Kind::Bare, "BAR"),
        ("GET server check", Kind::ServerCheck, "GET"),
        ("plaintext text message", Kind::Text(Plaintext), "TXT"),
        ("plaintext subscribe", Kind::Subscribe(Plaintext), "SUB"),
        ("safe-mode text message", Kind::Text(Safe), "STX"),
        ("safe-mode subscribe", Kind::Subscribe(Safe), "SSU"),
    ];
    let mut rows = Vec::new();
    for (name, kind, tag) in scenarios {
        eprintln!("  {name}…");
        rows.push(bench.scenario(name, kind, tag).await?);
    }
    eprintln!("  plaintext text message, database locked…");
    let (locked, probe) = bench
        .text_with_database_locked("plaintext text message, database locked", "LCK")
        .await?;
    rows.push(locked);

    let bare_cpu = rows[0].cpu_micros_per_request;
    println!("| scenario | requests | requests/s | p50 | p99 | server CPU/request | vs bare |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.1} µs | {:.2}x |",
            row.name,
            row.requests,
            row.per_second,
            micros(row.p50),
            micros(row.p99),
            row.cpu_micros_per_request,
            row.cpu_micros_per_request / bare_cpu,
        );
    }
    println!();
    println!(
        "While the database was locked, GET /readyz (a database ping through the same pool) answered {} after {:.2} s.",
        probe.status.as_u16(),
        probe.latency.as_secs_f64()
    );
    Ok(())
}
