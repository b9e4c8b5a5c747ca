//! A headless Chromium for one test: its own chromedriver on a free port, one session
//! with the viewport the test asks for, and both gone when the test ends, also when
//! it panics (the session is closed by thirtyfour's drop, then chromedriver and
//! anything it left behind are killed by process id).

use std::collections::HashMap;
use std::io::Write as _;
use std::ops::Deref;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::de::DeserializeOwned;
use thirtyfour::prelude::*;

/// How long a page, a driver or a condition may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(50);

const BROWSER_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
];

/// Where the screenshots go.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

struct Binaries {
    browser: PathBuf,
    driver: PathBuf,
}

/// The browser (`CAMPUSPAY_TEST_BROWSER`, else `/usr/bin/chromium`) and chromedriver
/// (`CAMPUSPAY_TEST_CHROMEDRIVER`, else the first on `PATH`), or what is missing.
fn binaries() -> Result<Binaries, String> {
    let browser = std::env::var_os("CAMPUSPAY_TEST_BROWSER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !browser.is_file() {
        return Err(format!("no browser at {}", browser.display()));
    }
    let driver = match std::env::var_os("CAMPUSPAY_TEST_CHROMEDRIVER") {
        Some(path) => Some(PathBuf::from(path)).filter(|path| path.is_file()),
        None => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromedriver"))
                .find(|path| path.is_file())
        }),
    };
    let Some(driver) = driver else {
        return Err("no chromedriver found".to_owned());
    };
    Ok(Binaries { browser, driver })
}

/// A browser for the test `test` with a `width`×`height` viewport; `None` (after saying
/// so) when there is no browser here, unless `CAMPUSPAY_REQUIRE_BROWSER=1`.
pub async fn launch(test: &str, width: u32, height: u32) -> Option<Chrome> {
    let binaries = match binaries() {
        Ok(binaries) => binaries,
        Err(missing) => {
            if std::env::var("CAMPUSPAY_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("{test}: {missing}, and CAMPUSPAY_REQUIRE_BROWSER=1 requires a browser");
            }
            // Straight to stderr, past the test harness's capture: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipped browser test {test}: {missing} (CAMPUSPAY_REQUIRE_BROWSER=1 makes this fail)"
            );
            return None;
        }
    };
    let chrome = Chrome::start(&binaries, width, height)
        .await
        .unwrap_or_else(|error| panic!("{test}: the browser does not start: {error:#}"));
    Some(chrome)
}

/// A chromedriver child process, killed (with whatever it started) on drop.
struct DriverProcess {
    child: Child,
    url: String,
}

impl DriverProcess {
    /// Starts chromedriver on a port it binds itself (`--port=0`) and reads which one
    /// from its first lines: no port is picked here, released and bound again.
    async fn spawn(path: &Path) -> Result<DriverProcess> {
        let mut child = Command::new(path)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a terminal's Ctrl-C goes to the test, not to it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot run {}", path.display()))?;
        let stdout = child.stdout.take().context("chromedriver's stdout")?;
        let mut process = DriverProcess {
            child,
            url: String::new(),
        };
        let port = tokio::time::timeout(TIMEOUT, announced_port(stdout))
            .await
            .context("chromedriver did not say its port")??;
        process.url = format!("http://127.0.0.1:{port}");
        process.wait_until_ready().await?;
        Ok(process)
    }

    /// Polls `/status` until chromedriver says it is ready.
    async fn wait_until_ready(&mut self) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("chromedriver exited ({status})");
            }
            let ready = match client.get(format!("{}/status", self.url)).send().await {
                Ok(response) if response.status().is_success() => response
                    .json::<serde_json::Value>()
                    .await
                    .map(|status| status["value"]["ready"] == true)
                    .unwrap_or(false),
                _ => false,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("chromedriver at {} did not become ready", self.url);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// What chromedriver prints once it listens.
const STARTED_ON_PORT: &str = "ChromeDriver was started successfully on port ";

/// The port chromedriver announces on `stdout`. A thread reads it, and keeps reading
/// to the end afterwards so that chromedriver never blocks on a full pipe.
async fn announced_port(stdout: std::process::ChildStdout) -> Result<u16> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut sender = Some(sender);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let port = line
                .split_once(STARTED_ON_PORT)
                .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse::<u16>().ok());
            if let Some(port) = port
                && let Some(sender) = sender.take()
            {
                let _ = sender.send(port);
            }
        }
    });
    receiver
        .await
        .context("chromedriver ended before saying its port")
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // Normally the session is closed by now and chromedriver is alone; if the browser
        // is still there, it goes too (found before chromedriver dies, while it is still
        // chromedriver's descendant).
        let pid = self.child.id();
        let leftovers: Vec<String> = descendants(pid).iter().map(u32::to_string).collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !leftovers.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&leftovers)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Every process below `root`, from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid …": comm may hold spaces and parentheses.
            let Some(ppid) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse().ok())
            else {
                continue;
            };
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// One browser session. Fields drop in order: the session first, then chromedriver.
pub struct Chrome {
    driver: Option<WebDriver>,
    _process: DriverProcess,
}

impl Deref for Chrome {
    type Target = WebDriver;

    fn deref(&self) -> &WebDriver {
        self.driver.as_ref().expect("the browser is open")
    }
}

impl Chrome {
    async fn start(binaries: &Binaries, width: u32, height: u32) -> Result<Chrome> {
        let process = DriverProcess::spawn(&binaries.driver).await?;
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&binaries.browser.to_string_lossy())?;
        for arg in BROWSER_ARGS {
            caps.add_arg(arg)?;
        }
        caps.add_arg(&format!("--window-size={width},{height}"))?;
        let driver = WebDriver::new(process.url.clone(), caps).await?;
        let chrome = Chrome {
            driver: Some(driver),
            _process: process,
        };
        chrome.resize(width, height).await?;
        Ok(chrome)
    }

    /// Ends the session properly (the browser exits), then chromedriver.
    pub async fn close(mut self) -> Result<()> {
        if let Some(driver) = self.driver.take() {
            driver.quit().await?;
        }
        Ok(())
    }

    /// Makes the viewport (`innerWidth`×`innerHeight`) `width`×`height`.
    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        // The window has a frame, and a headless window reports its new viewport a moment
        // after the resize: grow it by the difference, a few times if need be.
        let (mut outer_width, mut outer_height) = (width, height);
        let mut inner = (0, 0);
        for _ in 0..5 {
            self.set_window_rect(0, 0, outer_width, outer_height)
                .await?;
            for _ in 0..10 {
                inner = self
                    .js::<(u32, u32)>("return [window.innerWidth, window.innerHeight];")
                    .await?;
                if inner == (width, height) {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            outer_width = (outer_width + width).saturating_sub(inner.0.min(outer_width));
            outer_height = (outer_height + height).saturating_sub(inner.1.min(outer_height));
        }
        bail!("the viewport is {inner:?}, not {width}×{height}")
    }

    /// Runs `script` (a function body) and reads what it returns.
    pub async fn js<T: DeserializeOwned>(&self, script: &str) -> Result<T> {
        let ret = self.execute(script, Vec::new()).await?;
        ret.convert()
            .with_context(|| format!("unexpected result of {script}: {}", ret.json()))
    }

    /// Polls `script` (a function body returning a JSON value) until it returns
    /// `expected`; fails with the last value after [`TIMEOUT`]. Errors while a page is
    /// being replaced count as "not yet".
    pub async fn eventually<T>(&self, script: &str, expected: T) -> Result<()>
    where
        T: DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let last = self.js::<T>(script).await;
            if matches!(&last, Ok(value) if *value == expected) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "waited {TIMEOUT:?} for {script} to be {expected:?}; last: {last:?} at {}",
                    self.current_url()
                        .await
                        .map(|u| u.to_string())
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Opens `url` and waits for the page that ends up at `path`.
    pub async fn visit(&self, url: &str, path: &str) -> Result<()> {
        self.goto(url).await?;
        self.wait_for_path(path).await
    }

    /// Waits until the page at `path` has loaded.
    pub async fn wait_for_path(&self, path: &str) -> Result<()> {
        self.eventually(
            "return [location.pathname, document.readyState];",
            (path.to_owned(), "complete".to_owned()),
        )
        .await
    }

    /// Clicks the button (or link) matched by `by` and waits for the next page to have
    /// loaded at `path` (a new document, also when a form comes back to its own path).
    pub async fn submit(&self, by: By, path: &str) -> Result<()> {
        self.press(by).await?;
        self.wait_for_path(path).await
    }

    /// Clicks the button (or link) matched by `by` and waits for the next page, wherever
    /// it is.
    pub async fn press(&self, by: By) -> Result<()> {
        self.execute("window.cpBeforeSubmit = true;", Vec::new())
            .await?;
        self.find(by).await?.click().await?;
        self.eventually(
            "return [typeof window.cpBeforeSubmit, document.readyState];",
            ("undefined".to_owned(), "complete".to_owned()),
        )
        .await
    }

    /// Types `text` into the (emptied) field with id `id`.
    pub async fn fill(&self, id: &str, text: &str) -> Result<()> {
        let field = self.find(By::Id(id)).await?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    /// The text of the element with id `id`, as shown.
    pub async fn text_of(&self, id: &str) -> Result<String> {
        Ok(self.find(By::Id(id)).await?.text().await?)
    }

    /// The page's visible text.
    pub async fn page_text(&self) -> Result<String> {
        self.js("return document.body.innerText;").await
    }

    /// The value of the cookie `name`.
    pub async fn cookie(&self, name: &str) -> Result<String> {
        Ok(self.get_named_cookie(name).await?.value)
    }

    /// Saves the whole page (not only the viewport) as `target/screenshots/{name}.png`.
    pub async fn screenshot_page(&self, name: &str) -> Result<PathBuf> {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        let (width, height, full): (u32, u32, u32) = self
            .js("return [window.innerWidth, window.innerHeight,
                         Math.ceil(document.documentElement.scrollHeight)];")
            .await?;
        if full > height {
            self.resize(width, full).await?;
            let taken = self.screenshot(&path).await;
            self.resize(width, height).await?;
            taken?;
        } else {
            self.screenshot(&path).await?;
        }
        Ok(path)
    }
}
