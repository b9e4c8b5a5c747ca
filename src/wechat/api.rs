//! The official account's server APIs (`api.weixin.qq.com`), typed. Every call that
//! needs the access token goes through [`ApiClient::call`], which adds it, reads
//! WeChat's `{errcode, errmsg}`, and, when WeChat rejects the token, drops it (only if
//! it is still the cached one) and retries exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::token::{AccessToken, TokenKeeper};
use crate::cache::{CacheError, SharedCache};
use crate::metrics::{UpstreamObserver, UpstreamOutcome};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// invalid credential / invalid access_token / access_token expired: the token is
/// at fault, not the request, so a fresh token may succeed.
const TOKEN_REJECTED: [i64; 3] = [40001, 40014, 42001];

const MENU_CREATE: &str = "cgi-bin/menu/create";
const MENU_GET: &str = "cgi-bin/menu/get";
const UPDATE_REMARK: &str = "cgi-bin/user/info/updateremark";
const SNS_ACCESS_TOKEN: &str = "sns/oauth2/access_token";
const USER_GET: &str = "cgi-bin/user/get";
const USER_INFO_BATCHGET: &str = "cgi-bin/user/info/batchget";
const TAGS_GET: &str = "cgi-bin/tags/get";
const TAGS_CREATE: &str = "cgi-bin/tags/create";
const BATCH_TAGGING: &str = "cgi-bin/tags/members/batchtagging";
const BATCH_BLACKLIST: &str = "cgi-bin/tags/members/batchblacklist";

/// user/info/batchget reads at most this many followers a call.
pub const BATCHGET_MAX: usize = 100;
/// tags/members/batchtagging tags at most this many followers a call.
pub const BATCH_TAGGING_MAX: usize = 50;
/// tags/members/batchblacklist blacklists at most this many followers a call.
pub const BATCH_BLACKLIST_MAX: usize = 20;

pub struct ApiClientConfig {
    pub appid: String,
    pub secret: SecretString,
    /// `https://api.weixin.qq.com` in production, the sandbox in tests and the demo.
    pub api_base: Url,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Network, TLS, timeout or HTTP status trouble. The URL is stripped from the
    /// source because its query carries the access token or the secret.
    #[error("could not reach WeChat for {api}: {source}")]
    Transport {
        api: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("WeChat refused {api}: errcode {errcode}, {errmsg}")]
    Upstream {
        errcode: i64,
        errmsg: String,
        api: &'static str,
    },
    /// The answer was not the JSON we expected. `detail` never quotes values, since
    /// they may be tokens.
    #[error("WeChat's answer to {api} could not be read: {detail}")]
    Decode { api: &'static str, detail: String },
    #[error("access token cache: {0}")]
    Cache(#[from] CacheError),
    #[error("another caller is fetching the access token and it did not arrive within {waited:?}")]
    TokenBusy { waited: Duration },
    /// Refused before sending: WeChat would answer 40032.
    #[error("{api} takes at most {limit} openids a call, not {given}")]
    TooMany {
        api: &'static str,
        limit: usize,
        given: usize,
    },
    #[error("the WeChat API base {base} cannot hold API paths")]
    InvalidApiBase { base: Url },
}

impl ApiError {
    /// WeChat's errcode, when WeChat answered with one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Upstream { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// How the call ended, for metrics; `None` when nothing was sent.
    pub fn upstream_outcome(&self) -> Option<UpstreamOutcome> {
        match self {
            ApiError::Transport { source, .. } => Some(UpstreamOutcome::of_transport(source)),
            ApiError::Upstream { .. } => Some(UpstreamOutcome::Refused),
            ApiError::Decode { .. } => Some(UpstreamOutcome::Undecodable),
            ApiError::Cache(_)
            | ApiError::TokenBusy { .. }
            | ApiError::TooMany { .. }
            | ApiError::InvalidApiBase { .. } => None,
        }
    }
}

/// Who came back from the OAuth redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthIdentity {
    pub openid: String,
    pub scope: String,
    /// A "snapshot page" virtual user (朋友圈快照页): not a real person, so it must
    /// not pay or bind.
    pub is_snapshot_user: bool,
}

/// One page of `user/get`: up to 10,000 openids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// All followers of the account.
    pub total: u64,
    /// Openids on this page.
    pub count: u64,
    pub openids: Vec<String>,
    /// Where the next page starts; `None` when WeChat sent none (or an empty one).
    pub next_openid: Option<String>,
}

/// What `user/info/batchget` says of one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub openid: String,
    /// False when the user no longer follows; WeChat then sends nothing else.
    pub subscribe: bool,
    pub subscribe_time: Option<DateTime<Utc>>,
    pub remark: String,
}

/// A user tag of the account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub count: u64,
}

#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_base: Url,
    appid: String,
    secret: SecretString,
    tokens: TokenKeeper,
    observer: UpstreamObserver,
}

impl ApiClient {
    pub fn new(config: ApiClientConfig, cache: SharedCache) -> Result<Self, ApiError> {
        Self::observed(config, cache, UpstreamObserver::default())
    }

    /// [`ApiClient::new`] reporting each call (and each token fetched) to `observer`.
    pub fn observed(
        config: ApiClientConfig,
        cache: SharedCache,
        observer: UpstreamObserver,
    ) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|error| transport("client setup", error))?;
        let api_base = directory_url(config.api_base)?;
        let tokens = TokenKeeper::new(
            http.clone(),
            &api_base,
            &config.appid,
            config.secret.clone(),
            cache,
        )?
        .observed(observer.clone());
        let inner = Inner {
            http,
            api_base,
            appid: config.appid,
            secret: config.secret,
            tokens,
            observer,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn appid(&self) -> &str {
        &self.inner.appid
    }

    /// Access tokens fetched from WeChat by this client, for metrics.
    pub fn token_refreshes(&self) -> u64 {
        self.inner.tokens.refresh_count()
    }

    /// Replaces the account's menu. Validate it first with `menu::load_menu`.
    #[tracing::instrument(skip_all)]
    pub async fn menu_create(&self, menu: &Value) -> Result<(), ApiError> {
        let _: IgnoredAny = self.call(Method::POST, MENU_CREATE, Some(menu)).await?;
        tracing::info!("menu pushed to WeChat");
        Ok(())
    }

    /// The menu as WeChat holds it (`{"menu": {"button": [...]}, ...}`).
    #[tracing::instrument(skip_all)]
    pub async fn menu_get(&self) -> Result<Value, ApiError> {
        self.call(Method::GET, MENU_GET, None::<&()>).await
    }

    /// Sets a follower's remark. WeChat refuses remarks over about 20 bytes (40092),
    /// although its docs say 30; `domain::Remark` keeps within that.
    #[tracing::instrument(skip(self, remark))]
    pub async fn update_remark(&self, openid: &str, remark: &str) -> Result<(), ApiError> {
        #[derive(Serialize)]
        struct UpdateRemarkRequest<'a> {
            openid: &'a str,
            remark: &'a str,
        }
        let body = UpdateRemarkRequest { openid, remark };
        let _: IgnoredAny = self.call(Method::POST, UPDATE_REMARK, Some(&body)).await?;
        Ok(())
    }

    /// One page of the account's followers, starting after `next_openid` (from the
    /// start when `None`).
    #[tracing::instrument(skip_all)]
    pub async fn user_get(&self, next_openid: Option<&str>) -> Result<UserPage, ApiError> {
        #[derive(Deserialize)]
        struct UserGetReply {
            #[serde(default)]
            total: u64,
            #[serde(default)]
            count: u64,
            #[serde(default)]
            data: Option<UserGetData>,
            #[serde(default)]
            next_openid: Option<String>,
        }
        #[derive(Deserialize)]
        struct UserGetData {
            #[serde(default)]
            openid: Vec<String>,
        }
        let query: Vec<(&str, &str)> = next_openid
            .map(|openid| vec![("next_openid", openid)])
            .unwrap_or_default();
        let reply: UserGetReply = self
            .call_with_query(Method::GET, USER_GET, &query, None::<&()>)
            .await?;
        Ok(UserPage {
            total: reply.total,
            count: reply.count,
            openids: reply.data.map(|data| data.openid).unwrap_or_default(),
            next_openid: reply.next_openid.filter(|openid| !openid.is_empty()),
        })
    }

    /// Subscription and remark of up to [`BATCHGET_MAX`] followers; more are refused
    /// before sending.
    #[tracing::instrument(skip_all, fields(count = openids.len()))]
    pub async fn user_info_batchget(&self, openids: &[&str]) -> Result<Vec<UserInfo>, ApiError> {
        #[derive(Serialize)]
        struct BatchgetRequest<'a> {
            user_list: Vec<BatchgetUser<'a>>,
        }
        #[derive(Serialize)]
        struct BatchgetUser<'a> {
            openid: &'a str,
            lang: &'static str,
        }
        #[derive(Deserialize)]
        struct BatchgetReply {
            #[serde(default)]
            user_info_list: Vec<WireUserInfo>,
        }
        #[derive(Deserialize)]
        struct WireUserInfo {
            openid: String,
            #[serde(default)]
            subscribe: i64,
            #[serde(default)]
            subscribe_time: Option<i64>,
            #[serde(default)]
            remark: String,
        }
        check_size(USER_INFO_BATCHGET, BATCHGET_MAX, openids.len())?;
        if openids.is_empty() {
            return Ok(Vec::new());
        }
        let body = BatchgetRequest {
            user_list: openids
                .iter()
                .map(|openid| BatchgetUser {
                    openid,
                    lang: "zh_CN",
                })
                .collect(),
        };
        let reply: BatchgetReply = self
            .call(Method::POST, USER_INFO_BATCHGET, Some(&body))
            .await?;
        Ok(reply
            .user_info_list
            .into_iter()
            .map(|info| UserInfo {
                openid: info.openid,
                subscribe: info.subscribe == 1,
                subscribe_time: info
                    .subscribe_time
                    .and_then(|seconds| DateTime::from_timestamp(seconds, 0)),
                remark: info.remark,
            })
            .collect())
    }

    /// The account's tags.
    #[tracing::instrument(skip_all)]
    pub async fn tags_get(&self) -> Result<Vec<Tag>, ApiError> {
        #[derive(Deserialize)]
        struct TagsReply {
            #[serde(default)]
            tags: Vec<Tag>,
        }
        let reply: TagsReply = self.call(Method::GET, TAGS_GET, None::<&()>).await?;
        Ok(reply.tags)
    }

    /// Creates a tag; WeChat refuses a name it already has (45157).
    #[tracing::instrument(skip(self))]
    pub async fn tags_create(&self, name: &str) -> Result<Tag, ApiError> {
        #[derive(Serialize)]
        struct CreateRequest<'a> {
            tag: CreateTag<'a>,
        }
        #[derive(Serialize)]
        struct CreateTag<'a> {
            name: &'a str,
        }
        #[derive(Deserialize)]
        struct CreateReply {
            tag: Tag,
        }
        let body = CreateRequest {
            tag: CreateTag { name },
        };
        let reply: CreateReply = self.call(Method::POST, TAGS_CREATE, Some(&body)).await?;
        Ok(reply.tag)
    }

    /// Tags up to [`BATCH_TAGGING_MAX`] followers; more are refused before sending.
    #[tracing::instrument(skip(self, openids), fields(count = openids.len()))]
    pub async fn batch_tagging(&self, tag_id: i64, openids: &[&str]) -> Result<(), ApiError> {
        #[derive(Serialize)]
        struct TaggingRequest<'a> {
            openid_list: &'a [&'a str],
            tagid: i64,
        }
        check_size(BATCH_TAGGING, BATCH_TAGGING_MAX, openids.len())?;
        let body = TaggingRequest {
            openid_list: openids,
            tagid: tag_id,
        };
        let _: IgnoredAny = self.call(Method::POST, BATCH_TAGGING, Some(&body)).await?;
        Ok(())
    }

    /// Blacklists up to [`BATCH_BLACKLIST_MAX`] followers; more are refused before
    /// sending.
    #[tracing::instrument(skip_all, fields(count = openids.len()))]
    pub async fn batch_blacklist(&self, openids: &[&str]) -> Result<(), ApiError> {
        #[derive(Serialize)]
        struct BlacklistRequest<'a> {
            openid_list: &'a [&'a str],
        }
        check_size(BATCH_BLACKLIST, BATCH_BLACKLIST_MAX, openids.len())?;
        let body = BlacklistRequest {
            openid_list: openids,
        };
        let _: IgnoredAny = self
            .call(Method::POST, BATCH_BLACKLIST, Some(&body))
            .await?;
        Ok(())
    }

    /// Exchanges the `code` of an OAuth redirect for the user's openid. A code works
    /// once, within 5 minutes: 40163 (used) or 40029 (invalid) mean "authorize again".
    #[tracing::instrument(skip_all)]
    pub async fn oauth_exchange_code(&self, code: &str) -> Result<OauthIdentity, ApiError> {
        #[derive(Deserialize)]
        struct SnsAccessTokenReply {
            openid: String,
            #[serde(default)]
            scope: String,
            #[serde(default)]
            is_snapshotuser: Option<i64>,
        }
        let url = endpoint(&self.inner.api_base, SNS_ACCESS_TOKEN)?;
        let query = [
            ("appid", self.inner.appid.as_str()),
            ("secret", self.inner.secret.expose_secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ];
        let exchange = async {
            let response = self
                .inner
                .http
                .get(url)
                .query(&query)
                .send()
                .await
                .map_err(|error| transport(SNS_ACCESS_TOKEN, error))?;
            read_reply(SNS_ACCESS_TOKEN, response).await
        };
        // The user access_token in this reply is useless to snsapi_base; drop it.
        let reply: SnsAccessTokenReply =
            observe(&self.inner.observer, SNS_ACCESS_TOKEN, exchange).await?;
        Ok(OauthIdentity {
            openid: reply.openid,
            scope: reply.scope,
            is_snapshot_user: reply.is_snapshotuser == Some(1),
        })
    }

    /// The one way to call an API that takes the access token.
    async fn call<B, T>(
        &self,
        method: Method,
        api: &'static str,
        body: Option<&B>,
    ) -> Result<T, ApiError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.call_with_query(method, api, &[], body).await
    }

    /// [`ApiClient::call`] with query parameters besides the access token.
    async fn call_with_query<B, T>(
        &self,
        method: Method,
        api: &'static str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T, ApiError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut url = endpoint(&self.inner.api_base, api)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let token = self.inner.tokens.access_token().await?;
        match self.send(&method, api, &url, body, &token).await {
            Err(ApiError::Upstream { errcode, .. }) if TOKEN_REJECTED.contains(&errcode) => {
                let dropped = self.inner.tokens.invalidate_if_current(&token).await?;
                tracing::warn!(
                    api,
                    errcode,
                    dropped,
                    "WeChat rejected the access token; retrying once with a fresh one"
                );
                let fresh = self.inner.tokens.access_token().await?;
                self.send(&method, api, &url, body, &fresh).await
            }
            reply => reply,
        }
    }

    async fn send<B, T>(
        &self,
        method: &Method,
        api: &'static str,
        url: &Url,
        body: Option<&B>,
        token: &AccessToken,
    ) -> Result<T, ApiError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .query(&[("access_token", token.expose())]);
        if let Some(body) = body {
            // serde_json writes UTF-8, not \uXXXX escapes, which WeChat refuses (40033).
            request = request.json(body);
        }
        let exchange = async {
            let response = request
                .send()
                .await
                .map_err(|error| transport(api, error))?;
            read_reply(api, response).await
        };
        observe(&self.inner.observer, api, exchange).await
    }
}

/// Runs one exchange with WeChat and reports how it ended and how long it took.
pub(super) async fn observe<T>(
    observer: &UpstreamObserver,
    api: &'static str,
    exchange: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let started = tokio::time::Instant::now();
    let result = exchange.await;
    let outcome = match &result {
        Ok(_) => Some(UpstreamOutcome::Ok),
        Err(error) => error.upstream_outcome(),
    };
    if let Some(outcome) = outcome {
        observer.call(api_label(api), outcome, started.elapsed());
    }
    result
}

/// A short, stable name for each API path, for metrics.
pub(super) fn api_label(path: &str) -> &'static str {
    match path {
        MENU_CREATE => "menu_create",
        MENU_GET => "menu_get",
        UPDATE_REMARK => "update_remark",
        SNS_ACCESS_TOKEN => "oauth",
        USER_GET => "user_get",
        USER_INFO_BATCHGET => "user_info",
        TAGS_GET => "tags_get",
        TAGS_CREATE => "tags_create",
        BATCH_TAGGING => "tagging",
        BATCH_BLACKLIST => "blacklist",
        super::token::STABLE_TOKEN_PATH => "token",
        _ => "other",
    }
}

/// The URL students are sent to so that WeChat tells us their openid (silent
/// `snsapi_base`). WeChat wants the parameters in this order and the
/// `#wechat_redirect` fragment. `state` is at most 128 bytes of `[a-zA-Z0-9]`.
pub fn oauth_authorize_url(
    oauth_base: &Url,
    appid: &str,
    redirect_uri: &Url,
    state: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", appid)
        .append_pair("redirect_uri", redirect_uri.as_str())
        .append_pair("response_type", "code")
        .append_pair("scope", "snsapi_base")
        .append_pair("state", state)
        .finish();
    let base = oauth_base.as_str().trim_end_matches('/');
    format!("{base}/connect/oauth2/authorize?{query}#wechat_redirect")
}

fn check_size(api: &'static str, limit: usize, given: usize) -> Result<(), ApiError> {
    if given > limit {
        return Err(ApiError::TooMany { api, limit, given });
    }
    Ok(())
}

/// `api_base` with a trailing `/`, so that joining keeps any path prefix it has.
fn directory_url(mut base: Url) -> Result<Url, ApiError> {
    if base.cannot_be_a_base() {
        return Err(ApiError::InvalidApiBase { base });
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// `path` under a base made by `directory_url`.
pub(super) fn endpoint(api_base: &Url, path: &str) -> Result<Url, ApiError> {
    api_base.join(path).map_err(|_| ApiError::InvalidApiBase {
        base: api_base.clone(),
    })
}

pub(super) fn transport(api: &'static str, error: reqwest::Error) -> ApiError {
    ApiError::Transport {
        api,
        source: error.without_url(),
    }
}

/// WeChat answers 200 with `{errcode, errmsg}` on failure; success replies carry
/// either `errcode: 0` or no errcode at all.
#[derive(Deserialize)]
struct ReplyStatus {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

pub(super) async fn read_reply<T: DeserializeOwned>(
    api: &'static str,
    response: reqwest::Response,
) -> Result<T, ApiError> {
    let response = response
        .error_for_status()
        .map_err(|error| transport(api, error))?;
    let bytes = response
        .bytes()
        .await
        .map_err(|error| transport(api, error))?;
    parse_reply(api, &bytes)
}

fn parse_reply<T: DeserializeOwned>(api: &'static str, bytes: &[u8]) -> Result<T, ApiError> {
    let status: ReplyStatus = serde_json::from_slice(bytes).map_err(|error| decode(api, &error))?;
    if status.errcode != 0 {
        return Err(ApiError::Upstream {
            errcode: status.errcode,
            errmsg: status.errmsg,
            api,
        });
    }
    serde_json::from_slice(bytes).map_err(|error| decode(api, &error))
}

fn decode(api: &'static str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = error.to_string();
    // Field names are safe to show; "invalid type: string \"…\"" would quote a value.
    let what = if message.starts_with("missing field") {
        message
            .split(" at line")
            .next()
            .unwrap_or("missing field")
            .to_owned()
    } else {
        match error.classify() {
            Category::Syntax => "not JSON".to_owned(),
            Category::Eof => "truncated JSON".to_owned(),
            Category::Data => "JSON of an unexpected shape".to_owned(),
            Category::Io => "unreadable body".to_owned(),
        }
    };
    ApiError::Decode {
        api,
        detail: format!("{what} at line {} column {}", error.line(), error.column()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_replies_become_upstream_errors() {
        let error = parse_reply::<IgnoredAny>(
            MENU_CREATE,
            br#"{"errcode":40018,"errmsg":"invalid button name size rid: 1"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&error, ApiError::Upstream { errcode: 40018, api: MENU_CREATE, errmsg } if errmsg.starts_with("invalid button name size")),
            "{error:?}"
        );
        assert_eq!(error.errcode(), Some(40018));
    }

    #[test]
    fn replies_with_errcode_zero_or_none_are_successes() {
        parse_reply::<IgnoredAny>(MENU_CREATE, br#"{"errcode":0,"errmsg":"ok"}"#).unwrap();
        let menu: Value = parse_reply(MENU_GET, br#"{"menu":{"button":[]}}"#).unwrap();
        assert_eq!(menu["menu"]["button"], Value::Array(vec![]));
    }

    #[test]
    fn decode_errors_name_fields_but_never_quote_values() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Reply {
            expires_in: u64,
        }
        let error = parse_reply::<Reply>("x", br#"{"expires_in":"SECRET_TOKEN"}"#).unwrap_err();
        assert!(!error.to_string().contains("SECRET_TOKEN"), "{error}");
        let error = parse_reply::<Reply>("x", br#"{}"#).unwrap_err();
        assert!(
            error.to_string().contains("missing field `expires_in`"),
            "{error}"
        );
        let error = parse_reply::<Reply>("x", b"<html>").unwrap_err();
        assert!(matches!(error, ApiError::Decode { .. }), "{error:?}");
    }

    #[test]
    fn endpoints_keep_a_path_prefix_of_the_base() {
        let base = directory_url(Url::parse("http://127.0.0.1:1234/wechat").unwrap()).unwrap();
        let url = endpoint(&base, MENU_CREATE).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1234/wechat/cgi-bin/menu/create"
        );
        let base = directory_url(Url::parse("https://api.weixin.qq.com").unwrap()).unwrap();
        let url = endpoint(&base, MENU_CREATE).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.weixin.qq.com/cgi-bin/menu/create"
        );
    }

    #[tokio::test]
    async fn oversized_batches_are_refused_before_sending() {
        let cache: SharedCache =
            Arc::new(crate::cache::MemoryCache::new(crate::clock::Clock::system()));
        // Nothing listens there: a request would fail as Transport, not TooMany.
        let config = ApiClientConfig {
            appid: "wx1".into(),
            secret: "s".to_owned().into(),
            api_base: Url::parse("http://127.0.0.1:9").unwrap(),
        };
        let api = ApiClient::new(config, cache).unwrap();
        let openids: Vec<String> = (0..101).map(|i| format!("o{i}")).collect();
        let openids: Vec<&str> = openids.iter().map(String::as_str).collect();
        let error = api.user_info_batchget(&openids).await.unwrap_err();
        assert!(
            matches!(
                error,
                ApiError::TooMany {
                    limit: 100,
                    given: 101,
                    ..
                }
            ),
            "{error:?}"
        );
        let error = api.batch_tagging(100, &openids[..51]).await.unwrap_err();
        assert!(
            matches!(error, ApiError::TooMany { limit: 50, .. }),
            "{error:?}"
        );
        let error = api.batch_blacklist(&openids[..21]).await.unwrap_err();
        assert!(
            matches!(error, ApiError::TooMany { limit: 20, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn bases_that_cannot_hold_paths_are_refused() {
        let error = directory_url(Url::parse("mailto:wechat@example.com").unwrap()).unwrap_err();
        assert!(matches!(error, ApiError::InvalidApiBase { .. }));
    }

    #[test]
    fn the_authorize_url_has_wechats_parameter_order_and_fragment() {
        let oauth_base = Url::parse("https://open.weixin.qq.com").unwrap();
        let redirect = Url::parse("https://pay.example.edu.cn/h5/oauth/callback?next=/h5").unwrap();
        let url = oauth_authorize_url(&oauth_base, "wx1234", &redirect, "abc123");
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1234\
             &redirect_uri=https%3A%2F%2Fpay.example.edu.cn%2Fh5%2Foauth%2Fcallback%3Fnext%3D%2Fh5\
             &response_type=code&scope=snsapi_base&state=abc123#wechat_redirect"
        );
    }
}
