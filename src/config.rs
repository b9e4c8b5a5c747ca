//! Configuration: every `CAMPUSPAY_*` variable of CONTRACT.md, read once at start into
//! typed fields. A bad value stops the start with one line naming the variable; secrets
//! are `SecretString` and never printed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::wechat::crypto::EncodingAesKey;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/campus-pay.db?mode=rwc";
pub const DEFAULT_SCHOOL_NAME: &str = "武威职业学院";
/// What every key the program puts in Redis starts with.
pub const DEFAULT_REDIS_PREFIX: &str = "campus-pay:";
pub const DEFAULT_WECHAT_API_BASE: &str = "https://api.weixin.qq.com";
pub const DEFAULT_WECHAT_OAUTH_BASE: &str = "https://open.weixin.qq.com";
pub const DEFAULT_WECHATPAY_API_BASE: &str = "https://api.mch.weixin.qq.com";
pub const DEFAULT_ALIPAY_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
pub const DEFAULT_ABC_GATEWAY: &str = "https://pay.abchina.com/ebus/ReceiveMerchantTrxReqServlet";
pub const DEFAULT_CLEANUP_SCHEDULE: &str = "0 0 3 * * *";
/// 10:30 Beijing: WeChat Pay's bill of the day before is ready after 10:00.
pub const DEFAULT_RECONCILE_SCHEDULE: &str = "0 30 10 * * *";

/// One line that names the variable and the problem, never the value of a secret.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: String,
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &str, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            reason: reason.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Without a trailing slash, so `format!("{}/h5", public_url)` is right.
    pub public_url: Url,
    pub database_url: SecretString,
    pub redis_url: Option<SecretString>,
    /// What every Redis key starts with (`CAMPUSPAY_REDIS_PREFIX`): instances that
    /// share data share it; tests give theirs a prefix of their own.
    pub redis_prefix: String,
    pub school_name: String,
    pub order_ttl: Duration,
    /// How long one call to WeChat Pay or Alipay may take
    /// (`CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS`); `None`: each channel's own default.
    pub upstream_timeout: Option<Duration>,
    /// How long a client has to send a request's headers, and then its body and our
    /// answer to be ready (`CAMPUSPAY_REQUEST_TIMEOUT_SECONDS`, default 30).
    pub request_timeout: Duration,
    pub wechat: Option<WechatAccountConfig>,
    pub wechat_api_base: Url,
    pub wechat_oauth_base: Url,
    pub wechat_pay: Option<WechatPayConfig>,
    pub wechat_pay_api_base: Url,
    pub alipay: Option<AlipayConfig>,
    pub alipay_gateway: Url,
    pub abc: Option<AbcConfig>,
    pub abc_gateway: Url,
    pub cleanup: CleanupConfig,
    /// When yesterday's bills are reconciled (cron, seconds first, Beijing time).
    pub reconcile_schedule: cron::Schedule,
}

/// The official account. Present only when app id, secret and token are all set.
#[derive(Clone, Debug)]
pub struct WechatAccountConfig {
    pub appid: String,
    pub secret: SecretString,
    pub token: SecretString,
    /// When set, safe and compatible mode are accepted.
    pub aes_key: Option<EncodingAesKey>,
}

#[derive(Clone, Debug)]
pub struct WechatPayConfig {
    pub mchid: String,
    pub cert_serial: String,
    pub private_key_pem: SecretString,
    pub apiv3_key: SecretString,
    pub public_key_pem: String,
    pub public_key_id: String,
}

#[derive(Clone, Debug)]
pub struct AlipayConfig {
    pub appid: String,
    pub private_key_pem: SecretString,
    pub public_key_pem: String,
    /// `CAMPUSPAY_ALIPAY_SELLER_ID`: the merchant's PID (`2088…`); when set, a
    /// notification must carry it as `seller_id`.
    pub seller_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct AbcConfig {
    pub merchant_id: String,
    pub cert_file: PathBuf,
    pub cert_password: SecretString,
    pub trustpay_cert_file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct CleanupConfig {
    pub schedule: cron::Schedule,
    pub grace_days: u32,
    pub action: CleanupAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupAction {
    Report,
    Tag,
    Blacklist,
}

impl CleanupAction {
    /// The name `CAMPUSPAY_CLEANUP_ACTION` and the run reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Tag => "tag",
            Self::Blacklist => "blacklist",
        }
    }
}

impl FromStr for CleanupAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "report" => Ok(Self::Report),
            "tag" => Ok(Self::Tag),
            "blacklist" => Ok(Self::Blacklist),
            _ => Err("expected report, tag or blacklist".into()),
        }
    }
}

/// Where variables come from: the process environment (after `.env`), or a map in tests.
pub struct Variables(HashMap<String, String>);

impl Variables {
    /// The process environment, after loading `.env` from the working directory (its
    /// values never override variables that are already set).
    pub fn from_process() -> Self {
        // A missing .env is the normal case; a malformed one is reported by the values it breaks.
        let _ = dotenvy::dotenv();
        Self(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("CAMPUSPAY_"))
                .collect(),
        )
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// A set, non-blank value; blank counts as unset so `VAR=` in a .env file means "default".
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse_or<T: FromStr>(&self, name: &str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.get(name).unwrap_or(default);
        raw.parse::<T>()
            .map_err(|e| ConfigError::new(name, format!("invalid value: {}", one_line(&e))))
    }

    fn url_or(&self, name: &str, default: &str) -> Result<Url, ConfigError> {
        let url: Url = self.parse_or(name, default)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(name, "must be an http:// or https:// URL"));
        }
        Ok(url)
    }

    /// All of a group of variables, or none of them; a partial group is an error naming
    /// the first missing variable.
    fn group(&self, names: &[&str]) -> Result<Option<Vec<String>>, ConfigError> {
        let values: Vec<Option<&str>> = names.iter().map(|n| self.get(n)).collect();
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut present = Vec::with_capacity(names.len());
        for (name, value) in names.iter().zip(values) {
            let given: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| self.get(n).is_some())
                .collect();
            match value {
                Some(v) => present.push(v.to_owned()),
                None => {
                    return Err(ConfigError::new(
                        name,
                        format!("must be set together with {}", given.join(", ")),
                    ));
                }
            }
        }
        Ok(Some(present))
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_variables(&Variables::from_process())
    }

    pub fn from_variables(vars: &Variables) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: vars.parse_or("CAMPUSPAY_LISTEN", DEFAULT_LISTEN)?,
            public_url: public_url(vars)?,
            database_url: database_url(vars)?,
            redis_url: redis_url(vars)?,
            redis_prefix: redis_prefix(vars)?,
            school_name: vars
                .get("CAMPUSPAY_SCHOOL_NAME")
                .unwrap_or(DEFAULT_SCHOOL_NAME)
                .to_owned(),
            order_ttl: order_ttl(vars)?,
            upstream_timeout: upstream_timeout(vars)?,
            request_timeout: request_timeout(vars)?,
            wechat: wechat_account(vars)?,
            wechat_api_base: vars.url_or("CAMPUSPAY_WECHAT_API_BASE", DEFAULT_WECHAT_API_BASE)?,
            wechat_oauth_base: vars
                .url_or("CAMPUSPAY_WECHAT_OAUTH_BASE", DEFAULT_WECHAT_OAUTH_BASE)?,
            wechat_pay: wechat_pay(vars)?,
            wechat_pay_api_base: vars
                .url_or("CAMPUSPAY_WECHATPAY_API_BASE", DEFAULT_WECHATPAY_API_BASE)?,
            alipay: alipay(vars)?,
            alipay_gateway: vars.url_or("CAMPUSPAY_ALIPAY_GATEWAY", DEFAULT_ALIPAY_GATEWAY)?,
            abc: abc(vars)?,
            abc_gateway: vars.url_or("CAMPUSPAY_ABC_GATEWAY", DEFAULT_ABC_GATEWAY)?,
            cleanup: cleanup(vars)?,
            reconcile_schedule: cron_schedule(
                vars,
                "CAMPUSPAY_RECONCILE_SCHEDULE",
                DEFAULT_RECONCILE_SCHEDULE,
            )?,
        })
    }

    /// `public_url` joined with an absolute path such as `/h5`.
    pub fn public_link(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }

    /// The lines `demo` and `serve` print at start: what is configured, no secrets.
    pub fn summary(&self) -> Vec<String> {
        let on_off = |b: bool| if b { "configured" } else { "not configured" };
        vec![
            format!("listen       {}", self.listen),
            format!("public url   {}", self.public_url),
            format!(
                "database     {}",
                redact_url(self.database_url.expose_secret())
            ),
            format!(
                "cache        {}",
                self.redis_url
                    .as_ref()
                    .map(|u| redact_url(u.expose_secret()))
                    .unwrap_or_else(|| "in-process".into())
            ),
            format!(
                "wechat       {}{}",
                on_off(self.wechat.is_some()),
                match &self.wechat {
                    Some(w) if w.aes_key.is_some() => " (safe and compatible mode accepted)",
                    Some(_) => " (plaintext mode)",
                    None => "",
                }
            ),
            format!("wechat pay   {}", on_off(self.wechat_pay.is_some())),
            format!("alipay       {}", on_off(self.alipay.is_some())),
            format!("abc          {}", on_off(self.abc.is_some())),
        ]
    }
}

/// Some parsers (cron) explain over several lines with a caret under the input; the
/// contract promises one line.
fn one_line(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.chars().all(|c| c == '^'))
        .collect();
    parts.join(": ")
}

/// Strips the password from a connection URL for display.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "(unparsable URL)".into(),
    }
}

fn public_url(vars: &Variables) -> Result<Url, ConfigError> {
    let url = vars.url_or("CAMPUSPAY_PUBLIC_URL", DEFAULT_PUBLIC_URL)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "CAMPUSPAY_PUBLIC_URL",
            "must not carry a query or fragment (it prefixes notify_url and OAuth redirect_uri)",
        ));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_owned();
    Url::parse(&trimmed).map_err(|e| ConfigError::new("CAMPUSPAY_PUBLIC_URL", e.to_string()))
}

fn database_url(vars: &Variables) -> Result<SecretString, ConfigError> {
    let raw = vars
        .get("CAMPUSPAY_DATABASE_URL")
        .unwrap_or(DEFAULT_DATABASE_URL);
    let supported = ["sqlite:", "postgres://", "postgresql://"];
    if !supported.iter().any(|p| raw.starts_with(p)) {
        return Err(ConfigError::new(
            "CAMPUSPAY_DATABASE_URL",
            "must start with sqlite: or postgres://",
        ));
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn redis_url(vars: &Variables) -> Result<Option<SecretString>, ConfigError> {
    let Some(raw) = vars.get("CAMPUSPAY_REDIS_URL") else {
        return Ok(None);
    };
    if !(raw.starts_with("redis://") || raw.starts_with("rediss://")) {
        return Err(ConfigError::new(
            "CAMPUSPAY_REDIS_URL",
            "must start with redis:// or rediss://",
        ));
    }
    Ok(Some(SecretString::from(raw.to_owned())))
}

fn redis_prefix(vars: &Variables) -> Result<String, ConfigError> {
    let prefix = vars
        .get("CAMPUSPAY_REDIS_PREFIX")
        .unwrap_or(DEFAULT_REDIS_PREFIX);
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            "CAMPUSPAY_REDIS_PREFIX",
            "must not contain spaces, e.g. campus-pay:",
        ));
    }
    Ok(prefix.to_owned())
}

fn order_ttl(vars: &Variables) -> Result<Duration, ConfigError> {
    let minutes: u64 = vars.parse_or("CAMPUSPAY_ORDER_TTL_MINUTES", "15")?;
    // WeChat Pay bumps anything under a minute to a minute; a day is already far more
    // than a student needs and keeps fee items from being held for long.
    if !(1..=1440).contains(&minutes) {
        return Err(ConfigError::new(
            "CAMPUSPAY_ORDER_TTL_MINUTES",
            "must be between 1 and 1440",
        ));
    }
    Ok(Duration::from_secs(minutes * 60))
}

fn upstream_timeout(vars: &Variables) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = vars.get("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS") else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(seconds) if (1..=120).contains(&seconds) => Ok(Some(Duration::from_secs(seconds))),
        _ => Err(ConfigError::new(
            "CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS",
            "must be a whole number of seconds between 1 and 120",
        )),
    }
}

fn request_timeout(vars: &Variables) -> Result<Duration, ConfigError> {
    const NAME: &str = "CAMPUSPAY_REQUEST_TIMEOUT_SECONDS";
    let raw = vars.get(NAME).unwrap_or("30");
    match raw.trim().parse::<u64>() {
        Ok(seconds) if (1..=600).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        _ => Err(ConfigError::new(
            NAME,
            "must be a whole number of seconds between 1 and 600",
        )),
    }
}

fn wechat_account(vars: &Variables) -> Result<Option<WechatAccountConfig>, ConfigError> {
    let names = [
        "CAMPUSPAY_WECHAT_APPID",
        "CAMPUSPAY_WECHAT_SECRET",
        "CAMPUSPAY_WECHAT_TOKEN",
    ];
    let aes_key = match vars.get("CAMPUSPAY_WECHAT_AES_KEY") {
        Some(raw) => Some(EncodingAesKey::parse(raw).map_err(|_| {
            ConfigError::new(
                "CAMPUSPAY_WECHAT_AES_KEY",
                "must be the 43-character EncodingAESKey (letters and digits)",
            )
        })?),
        None => None,
    };
    let Some(values) = vars.group(&names)? else {
        if aes_key.is_some() {
            return Err(ConfigError::new(
                "CAMPUSPAY_WECHAT_APPID",
                "must be set together with CAMPUSPAY_WECHAT_AES_KEY",
            ));
        }
        return Ok(None);
    };
    let [appid, secret, token] = <[String; 3]>::try_from(values)
        .map_err(|_| ConfigError::new("CAMPUSPAY_WECHAT_APPID", "internal: group size"))?;
    if !token.chars().all(|c| c.is_ascii_alphanumeric()) || !(3..=32).contains(&token.len()) {
        return Err(ConfigError::new(
            "CAMPUSPAY_WECHAT_TOKEN",
            "must be 3 to 32 letters or digits, as the account's admin panel requires",
        ));
    }
    Ok(Some(WechatAccountConfig {
        appid,
        secret: SecretString::from(secret),
        token: SecretString::from(token),
        aes_key,
    }))
}

fn read_pem(variable: &str, path: &str, label_hint: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(variable, format!("cannot read {path}: {e}")))?;
    if !text.contains("-----BEGIN") || !text.contains(label_hint) {
        return Err(ConfigError::new(
            variable,
            format!("{path} is not a PEM file holding a {label_hint}"),
        ));
    }
    Ok(text)
}

fn wechat_pay(vars: &Variables) -> Result<Option<WechatPayConfig>, ConfigError> {
    let names = [
        "CAMPUSPAY_WECHATPAY_MCHID",
        "CAMPUSPAY_WECHATPAY_CERT_SERIAL",
        "CAMPUSPAY_WECHATPAY_PRIVATE_KEY_FILE",
        "CAMPUSPAY_WECHATPAY_APIV3_KEY",
        "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_FILE",
        "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_ID",
    ];
    let Some(values) = vars.group(&names)? else {
        return Ok(None);
    };
    let [
        mchid,
        cert_serial,
        private_key_file,
        apiv3_key,
        public_key_file,
        public_key_id,
    ] = <[String; 6]>::try_from(values)
        .map_err(|_| ConfigError::new(names[0], "internal: group size"))?;
    if !mchid.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::new(
            names[0],
            "must be the digits of the merchant id",
        ));
    }
    if apiv3_key.len() != 32 {
        return Err(ConfigError::new(names[3], "must be exactly 32 bytes"));
    }
    if !public_key_id.starts_with("PUB_KEY_ID_") {
        return Err(ConfigError::new(names[5], "must start with PUB_KEY_ID_"));
    }
    Ok(Some(WechatPayConfig {
        mchid,
        cert_serial,
        private_key_pem: SecretString::from(read_pem(names[2], &private_key_file, "PRIVATE KEY")?),
        apiv3_key: SecretString::from(apiv3_key),
        public_key_pem: read_pem(names[4], &public_key_file, "PUBLIC KEY")?,
        public_key_id,
    }))
}

fn alipay(vars: &Variables) -> Result<Option<AlipayConfig>, ConfigError> {
    let names = [
        "CAMPUSPAY_ALIPAY_APPID",
        "CAMPUSPAY_ALIPAY_PRIVATE_KEY_FILE",
        "CAMPUSPAY_ALIPAY_PUBLIC_KEY_FILE",
    ];
    let seller_id = alipay_seller_id(vars)?;
    let Some(values) = vars.group(&names)? else {
        if seller_id.is_some() {
            return Err(ConfigError::new(
                ALIPAY_SELLER_ID,
                "set without CAMPUSPAY_ALIPAY_APPID and its keys",
            ));
        }
        return Ok(None);
    };
    let [appid, private_key_file, public_key_file] = <[String; 3]>::try_from(values)
        .map_err(|_| ConfigError::new(names[0], "internal: group size"))?;
    Ok(Some(AlipayConfig {
        appid,
        private_key_pem: SecretString::from(read_pem(names[1], &private_key_file, "PRIVATE KEY")?),
        public_key_pem: read_pem(names[2], &public_key_file, "PUBLIC KEY")?,
        seller_id,
    }))
}

const ALIPAY_SELLER_ID: &str = "CAMPUSPAY_ALIPAY_SELLER_ID";

/// The merchant's PID as Alipay writes it: `2088` and twelve more digits.
fn alipay_seller_id(vars: &Variables) -> Result<Option<String>, ConfigError> {
    let Some(pid) = vars.get(ALIPAY_SELLER_ID) else {
        return Ok(None);
    };
    if pid.len() != 16 || !pid.starts_with("2088") || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::new(
            ALIPAY_SELLER_ID,
            "must be the merchant's PID: 16 digits starting 2088",
        ));
    }
    Ok(Some(pid.to_owned()))
}

fn abc(vars: &Variables) -> Result<Option<AbcConfig>, ConfigError> {
    let names = [
        "CAMPUSPAY_ABC_MERCHANT_ID",
        "CAMPUSPAY_ABC_CERT_FILE",
        "CAMPUSPAY_ABC_CERT_PASSWORD",
        "CAMPUSPAY_ABC_TRUSTPAY_CERT_FILE",
    ];
    let Some(values) = vars.group(&names)? else {
        return Ok(None);
    };
    let [merchant_id, cert_file, cert_password, trustpay_cert_file] =
        <[String; 4]>::try_from(values)
            .map_err(|_| ConfigError::new(names[0], "internal: group size"))?;
    for (name, path) in [(names[1], &cert_file), (names[3], &trustpay_cert_file)] {
        std::fs::metadata(path)
            .map_err(|e| ConfigError::new(name, format!("cannot read {path}: {e}")))?;
    }
    Ok(Some(AbcConfig {
        merchant_id,
        cert_file: cert_file.into(),
        cert_password: SecretString::from(cert_password),
        trustpay_cert_file: trustpay_cert_file.into(),
    }))
}

/// Six or seven fields, seconds first, read in Beijing time (the job converts).
fn cron_schedule(
    vars: &Variables,
    name: &str,
    default: &str,
) -> Result<cron::Schedule, ConfigError> {
    let raw = vars.get(name).unwrap_or(default);
    raw.parse().map_err(|error| {
        ConfigError::new(
            name,
            format!(
                "invalid cron expression (seconds first, Beijing time, e.g. {default:?}): {}",
                one_line(&error)
            ),
        )
    })
}

fn cleanup(vars: &Variables) -> Result<CleanupConfig, ConfigError> {
    let grace_days: u32 = vars.parse_or("CAMPUSPAY_CLEANUP_GRACE_DAYS", "7")?;
    if grace_days > 365 {
        return Err(ConfigError::new(
            "CAMPUSPAY_CLEANUP_GRACE_DAYS",
            "must be at most 365",
        ));
    }
    Ok(CleanupConfig {
        schedule: cron_schedule(vars, "CAMPUSPAY_CLEANUP_SCHEDULE", DEFAULT_CLEANUP_SCHEDULE)?,
        grace_days,
        action: vars.parse_or("CAMPUSPAY_CLEANUP_ACTION", "report")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_variables(&Variables::from_pairs(pairs.iter().copied()))
    }

    fn error_line(pairs: &[(&str, &str)]) -> String {
        match config(pairs) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_the_embedded_single_instance_setup() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(c.public_link("/h5"), "http://127.0.0.1:8080/h5");
        assert_eq!(c.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(c.redis_url.is_none());
        assert_eq!(c.redis_prefix, "campus-pay:");
        assert_eq!(c.school_name, "武威职业学院");
        assert_eq!(c.order_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert!(c.wechat.is_none() && c.wechat_pay.is_none());
        assert!(c.alipay.is_none() && c.abc.is_none());
        assert_eq!(c.wechat_api_base.as_str(), "https://api.weixin.qq.com/");
        assert_eq!(c.cleanup.grace_days, 7);
        assert_eq!(c.cleanup.action, CleanupAction::Report);
    }

    #[test]
    fn the_upstream_timeout_is_each_channels_own_unless_set() {
        assert_eq!(config(&[]).unwrap().upstream_timeout, None);
        let c = config(&[("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS", " 4 ")]).unwrap();
        assert_eq!(c.upstream_timeout, Some(Duration::from_secs(4)));
    }

    #[test]
    fn a_public_url_keeps_its_path_without_a_trailing_slash() {
        let c = config(&[("CAMPUSPAY_PUBLIC_URL", "https://pay.example.edu.cn/campus/")]).unwrap();
        assert_eq!(c.public_link("/h5"), "https://pay.example.edu.cn/campus/h5");
    }

    #[test]
    fn every_bad_value_is_one_line_naming_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("CAMPUSPAY_LISTEN", "not-an-address"),
            ("CAMPUSPAY_PUBLIC_URL", "ftp://x"),
            ("CAMPUSPAY_PUBLIC_URL", "https://x/?a=b"),
            ("CAMPUSPAY_DATABASE_URL", "mysql://x"),
            ("CAMPUSPAY_REDIS_URL", "http://x"),
            ("CAMPUSPAY_REDIS_PREFIX", "campus pay:"),
            ("CAMPUSPAY_ORDER_TTL_MINUTES", "0"),
            ("CAMPUSPAY_ORDER_TTL_MINUTES", "ten"),
            ("CAMPUSPAY_REQUEST_TIMEOUT_SECONDS", "0"),
            ("CAMPUSPAY_REQUEST_TIMEOUT_SECONDS", "forever"),
            ("CAMPUSPAY_WECHAT_API_BASE", "::"),
            ("CAMPUSPAY_CLEANUP_SCHEDULE", "every night"),
            ("CAMPUSPAY_CLEANUP_GRACE_DAYS", "-1"),
            ("CAMPUSPAY_CLEANUP_ACTION", "delete"),
            ("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS", "0"),
            ("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS", "121"),
            ("CAMPUSPAY_UPSTREAM_TIMEOUT_SECONDS", "1.5"),
        ];
        for (name, value) in cases {
            let line = error_line(&[(name, value)]);
            assert!(line.starts_with(&format!("{name}: ")), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn the_alipay_seller_id_is_optional_and_must_be_a_pid() {
        let dir = std::env::temp_dir().join(format!("cp-config-alipay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let private_key = dir.join("app_private_key.pem");
        let public_key = dir.join("alipay_public_key.pem");
        std::fs::write(&private_key, crate::sandbox::alipay::APP_PRIVATE_KEY_PEM).unwrap();
        std::fs::write(&public_key, crate::sandbox::alipay::ALIPAY_PUBLIC_KEY_PEM).unwrap();
        let (private_key, public_key) = (
            private_key.display().to_string(),
            public_key.display().to_string(),
        );
        let alipay = |seller: Option<&str>| {
            let mut pairs = vec![
                ("CAMPUSPAY_ALIPAY_APPID", "9021000140651234"),
                ("CAMPUSPAY_ALIPAY_PRIVATE_KEY_FILE", private_key.as_str()),
                ("CAMPUSPAY_ALIPAY_PUBLIC_KEY_FILE", public_key.as_str()),
            ];
            pairs.extend(seller.map(|pid| ("CAMPUSPAY_ALIPAY_SELLER_ID", pid)));
            config(&pairs)
        };
        let unset = alipay(None).unwrap().alipay.unwrap();
        assert_eq!(unset.seller_id, None);
        let set = alipay(Some(" 2088721000000001 ")).unwrap().alipay.unwrap();
        assert_eq!(set.seller_id.as_deref(), Some("2088721000000001"));
        for bad in [
            "2088",
            "1088721000000001",
            "2088-21000000001",
            "20887210000000012",
        ] {
            let line = match alipay(Some(bad)) {
                Ok(_) => panic!("{bad} accepted"),
                Err(error) => error.to_string(),
            };
            assert!(line.starts_with("CAMPUSPAY_ALIPAY_SELLER_ID: "), "{line}");
        }
        let alone = error_line(&[("CAMPUSPAY_ALIPAY_SELLER_ID", "2088721000000001")]);
        assert!(alone.starts_with("CAMPUSPAY_ALIPAY_SELLER_ID: "), "{alone}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_account_needs_appid_secret_and_token_together() {
        let line = error_line(&[("CAMPUSPAY_WECHAT_APPID", "wx123")]);
        assert!(line.starts_with("CAMPUSPAY_WECHAT_SECRET: "), "{line}");
        let c = config(&[
            ("CAMPUSPAY_WECHAT_APPID", "wx123"),
            ("CAMPUSPAY_WECHAT_SECRET", "s3cret-value"),
            ("CAMPUSPAY_WECHAT_TOKEN", "token123"),
        ])
        .unwrap();
        let wechat = c.wechat.unwrap();
        assert_eq!(wechat.appid, "wx123");
        assert!(wechat.aes_key.is_none());
    }

    #[test]
    fn a_bad_aes_key_is_refused_without_echoing_it() {
        let key = "tooshort-secret";
        let line = error_line(&[
            ("CAMPUSPAY_WECHAT_APPID", "wx123"),
            ("CAMPUSPAY_WECHAT_SECRET", "s"),
            ("CAMPUSPAY_WECHAT_TOKEN", "token123"),
            ("CAMPUSPAY_WECHAT_AES_KEY", key),
        ]);
        assert!(line.starts_with("CAMPUSPAY_WECHAT_AES_KEY: "), "{line}");
        assert!(!line.contains(key));
    }

    #[test]
    fn a_good_aes_key_with_trailing_bits_is_accepted() {
        let c = config(&[
            ("CAMPUSPAY_WECHAT_APPID", "wx123"),
            ("CAMPUSPAY_WECHAT_SECRET", "s"),
            ("CAMPUSPAY_WECHAT_TOKEN", "token123"),
            (
                "CAMPUSPAY_WECHAT_AES_KEY",
                "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            ),
        ])
        .unwrap();
        assert!(c.wechat.unwrap().aes_key.is_some());
    }

    #[test]
    fn secrets_never_appear_in_debug_output_or_the_summary() {
        let c = config(&[
            ("CAMPUSPAY_WECHAT_APPID", "wx123"),
            ("CAMPUSPAY_WECHAT_SECRET", "very-secret-app-secret"),
            ("CAMPUSPAY_WECHAT_TOKEN", "tokenvalue42"),
            (
                "CAMPUSPAY_DATABASE_URL",
                "postgres://app:dbpassw0rd@db/campus",
            ),
        ])
        .unwrap();
        let shown = format!("{c:?}\n{}", c.summary().join("\n"));
        for secret in ["very-secret-app-secret", "tokenvalue42", "dbpassw0rd"] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn wechat_pay_settings_must_be_complete_and_usable() {
        let line = error_line(&[("CAMPUSPAY_WECHATPAY_MCHID", "1900000109")]);
        assert!(
            line.starts_with("CAMPUSPAY_WECHATPAY_CERT_SERIAL: "),
            "{line}"
        );
        let line = error_line(&[
            ("CAMPUSPAY_WECHATPAY_MCHID", "1900000109"),
            ("CAMPUSPAY_WECHATPAY_CERT_SERIAL", "ABC"),
            (
                "CAMPUSPAY_WECHATPAY_PRIVATE_KEY_FILE",
                "/nonexistent/key.pem",
            ),
            (
                "CAMPUSPAY_WECHATPAY_APIV3_KEY",
                "0123456789abcdef0123456789abcdef",
            ),
            (
                "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_FILE",
                "/nonexistent/pub.pem",
            ),
            (
                "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_ID",
                "PUB_KEY_ID_0114232134912410000000000000",
            ),
        ]);
        assert!(
            line.starts_with("CAMPUSPAY_WECHATPAY_PRIVATE_KEY_FILE: cannot read"),
            "{line}"
        );
        let line = error_line(&[
            ("CAMPUSPAY_WECHATPAY_MCHID", "1900000109"),
            ("CAMPUSPAY_WECHATPAY_CERT_SERIAL", "ABC"),
            (
                "CAMPUSPAY_WECHATPAY_PRIVATE_KEY_FILE",
                "/nonexistent/key.pem",
            ),
            ("CAMPUSPAY_WECHATPAY_APIV3_KEY", "short"),
            (
                "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_FILE",
                "/nonexistent/pub.pem",
            ),
            (
                "CAMPUSPAY_WECHATPAY_PUBLIC_KEY_ID",
                "PUB_KEY_ID_0114232134912410000000000000",
            ),
        ]);
        assert!(
            line.starts_with("CAMPUSPAY_WECHATPAY_APIV3_KEY: "),
            "{line}"
        );
        assert!(!line.contains("short"));
    }

    #[test]
    fn the_cleanup_schedule_is_cron_with_seconds_first() {
        let line = error_line(&[("CAMPUSPAY_CLEANUP_SCHEDULE", "0 3 * * *")]);
        assert!(line.starts_with("CAMPUSPAY_CLEANUP_SCHEDULE: "), "{line}");
        assert!(line.contains("seconds first"), "{line}");
        let c = config(&[("CAMPUSPAY_CLEANUP_SCHEDULE", "0 30 2 * * Mon")]).unwrap();
        assert_eq!(c.cleanup.schedule.source(), "0 30 2 * * Mon");
        assert_eq!(c.cleanup.action.as_str(), "report");
    }

    #[test]
    fn the_reconcile_schedule_defaults_to_half_past_ten() {
        let c = config(&[]).unwrap();
        assert_eq!(c.reconcile_schedule.source(), DEFAULT_RECONCILE_SCHEDULE);
        let line = error_line(&[("CAMPUSPAY_RECONCILE_SCHEDULE", "every morning")]);
        assert!(line.starts_with("CAMPUSPAY_RECONCILE_SCHEDULE: "), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
    }
}
