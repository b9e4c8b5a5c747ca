//! A loopback stand-in for the official account's server APIs (`api.weixin.qq.com`)
//! and its OAuth authorize page (`open.weixin.qq.com`), used by the tests and the demo.
//!
//! It refuses what WeChat refuses, with WeChat's errcodes (HTTP 200 and
//! `{errcode, errmsg}`), and records what it saw. Its wire structs are written from
//! WeChat's docs and shared with nothing in `wechat`, so that a misspelled field in
//! the client cannot agree with itself.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use crate::clock::Clock;

/// The paths the sandbox answers, as recorded in [`RecordedCall::api`].
pub mod paths {
    pub const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
    pub const MENU_CREATE: &str = "/cgi-bin/menu/create";
    pub const MENU_GET: &str = "/cgi-bin/menu/get";
    pub const UPDATE_REMARK: &str = "/cgi-bin/user/info/updateremark";
    pub const SNS_ACCESS_TOKEN: &str = "/sns/oauth2/access_token";
    pub const AUTHORIZE: &str = "/connect/oauth2/authorize";
    pub const USER_GET: &str = "/cgi-bin/user/get";
    pub const USER_INFO_BATCHGET: &str = "/cgi-bin/user/info/batchget";
    pub const TAGS_GET: &str = "/cgi-bin/tags/get";
    pub const TAGS_CREATE: &str = "/cgi-bin/tags/create";
    pub const BATCH_TAGGING: &str = "/cgi-bin/tags/members/batchtagging";
    pub const BATCH_BLACKLIST: &str = "/cgi-bin/tags/members/batchblacklist";
}

/// A follower of the sandbox account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxFollower {
    pub openid: String,
    pub subscribe_time: DateTime<Utc>,
    pub remark: String,
}

/// user/get answers at most this many openids a page.
pub const USER_GET_PAGE: usize = 10_000;
const BATCHGET_MAX: usize = 100;
const BATCH_TAGGING_MAX: usize = 50;
const BATCH_BLACKLIST_MAX: usize = 20;
const TAG_NAME_MAX_BYTES: usize = 30;
/// WeChat's own tags (0–2) come first; an account's tags start at 100.
const FIRST_TAG_ID: i64 = 100;

/// Who the authorize page says is there when the demo does not say otherwise.
pub const DEMO_OPENID: &str = "o_sandbox_demo_student";

const TOKEN_LIFETIME: TimeDelta = TimeDelta::seconds(7200);
/// stable_token renews a token in its last five minutes (normal mode).
const TOKEN_RENEWAL_WINDOW: TimeDelta = TimeDelta::seconds(300);
const OAUTH_CODE_LIFETIME: TimeDelta = TimeDelta::seconds(300);
/// The docs say "< 30 bytes"; WeChat refuses anything over about 20 (40092).
const REMARK_MAX_BYTES: usize = 20;
const TOP_BUTTONS_MAX: usize = 3;
const SUB_BUTTONS_MAX: usize = 5;
const KEY_MAX_BYTES: usize = 128;
const URL_MAX_BYTES: usize = 1024;
const BUTTON_TYPES: [&str; 12] = [
    "click",
    "view",
    "scancode_push",
    "scancode_waitmsg",
    "pic_sysphoto",
    "pic_photo_or_album",
    "pic_weixin",
    "location_select",
    "media_id",
    "article_id",
    "article_view_limited",
    "miniprogram",
];

/// One request the sandbox received: its path and its body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub api: String,
    pub body: String,
}

pub struct WechatSandbox {
    base_url: Url,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl WechatSandbox {
    pub async fn spawn(appid: &str, secret: &str) -> std::io::Result<WechatSandbox> {
        Self::spawn_with_clock(appid, secret, Clock::system()).await
    }

    /// With a clock the test can advance, to expire tokens and OAuth codes.
    pub async fn spawn_with_clock(
        appid: &str,
        secret: &str,
        clock: Clock,
    ) -> std::io::Result<WechatSandbox> {
        let shared = Arc::new(Shared {
            appid: appid.to_owned(),
            secret: secret.to_owned(),
            clock,
            state: Mutex::new(SandboxState::default()),
        });
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the WeChat sandbox stopped");
            }
        });
        let base_url = Url::parse(&format!("http://{address}/")).map_err(std::io::Error::other)?;
        Ok(WechatSandbox {
            base_url,
            shared,
            server,
        })
    }

    /// Serves both `CAMPUSPAY_WECHAT_API_BASE` and `CAMPUSPAY_WECHAT_OAUTH_BASE`.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    pub fn appid(&self) -> &str {
        &self.shared.appid
    }

    /// Another party force-refreshed the token: every token handed out so far now
    /// gets 40001, and stable_token hands out the new one.
    pub fn invalidate_tokens(&self) {
        let now = self.shared.clock.now();
        let mut state = self.shared.state();
        for token in state.tokens.values_mut() {
            token.revoked = true;
        }
        state.issue_token(now);
    }

    /// A code as WeChat appends it to the OAuth redirect for `openid`.
    pub fn issue_oauth_code(&self, openid: &str) -> String {
        self.shared.issue_oauth_code(openid, false)
    }

    /// A code for a "snapshot page" virtual user (`is_snapshotuser: 1`).
    pub fn issue_snapshot_oauth_code(&self, openid: &str) -> String {
        self.shared.issue_oauth_code(openid, true)
    }

    /// Requests to stable_token, answered or refused.
    pub fn token_fetches(&self) -> usize {
        self.shared.state().token_fetches
    }

    /// Every menu accepted by menu/create, in order, exactly as received.
    pub fn menus(&self) -> Vec<Value> {
        self.shared.state().menus.clone()
    }

    /// The remark set for each openid.
    pub fn remarks(&self) -> HashMap<String, String> {
        self.shared.state().remarks.clone()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.state().calls.clone()
    }

    /// How many requests reached `api` (one of [`paths`]), refused ones included.
    pub fn calls_to(&self, api: &str) -> usize {
        let state = self.shared.state();
        state.calls.iter().filter(|call| call.api == api).count()
    }

    /// Adds followers after those already there, in order (user/get pages in this
    /// order). An openid already there is replaced in place.
    pub fn add_followers(&self, followers: Vec<SandboxFollower>) {
        let mut state = self.shared.state();
        for follower in followers {
            match state.follower_index.get(&follower.openid) {
                Some(&at) => state.followers[at] = follower,
                None => {
                    let at = state.followers.len();
                    state.follower_index.insert(follower.openid.clone(), at);
                    state.followers.push(follower);
                }
            }
        }
    }

    /// The account's tags, as (id, name), in creation order.
    pub fn tags(&self) -> Vec<(i64, String)> {
        self.shared.state().tags.clone()
    }

    /// Every accepted batchtagging call, as (tag id, openids), in order.
    pub fn tag_batches(&self) -> Vec<(i64, Vec<String>)> {
        self.shared.state().tag_batches.clone()
    }

    /// Every accepted batchblacklist call's openids, in order.
    pub fn blacklist_batches(&self) -> Vec<Vec<String>> {
        self.shared.state().blacklist_batches.clone()
    }

    /// The next `times` requests to `api` fail with `errcode`, before any other check.
    pub fn fail_next(&self, api: &str, errcode: i64, times: usize) {
        self.fail_after(api, 0, errcode, times);
    }

    /// After `successes` more requests to `api` go through, the next `times` fail with
    /// `errcode` (a quota running out mid-run, say).
    pub fn fail_after(&self, api: &str, successes: usize, errcode: i64, times: usize) {
        let mut state = self.shared.state();
        let queue = state.injected_failures.entry(api.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(None, successes));
        queue.extend(std::iter::repeat_n(Some(errcode), times));
    }
}

impl Drop for WechatSandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    appid: String,
    secret: String,
    clock: Clock,
    state: Mutex<SandboxState>,
}

#[derive(Default)]
struct SandboxState {
    tokens: HashMap<String, IssuedToken>,
    current_token: Option<String>,
    token_fetches: usize,
    oauth_codes: HashMap<String, OauthCode>,
    calls: Vec<RecordedCall>,
    menus: Vec<Value>,
    remarks: HashMap<String, String>,
    /// Per API, what its next requests meet: `None` goes through, `Some` fails.
    injected_failures: HashMap<String, VecDeque<Option<i64>>>,
    followers: Vec<SandboxFollower>,
    follower_index: HashMap<String, usize>,
    tags: Vec<(i64, String)>,
    tag_batches: Vec<(i64, Vec<String>)>,
    blacklist_batches: Vec<Vec<String>>,
}

struct IssuedToken {
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct OauthCode {
    openid: String,
    issued_at: DateTime<Utc>,
    used: bool,
    snapshot_user: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, SandboxState> {
        // A panicking test thread must not take the sandbox down for the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, api: &str, body: &[u8]) {
        let call = RecordedCall {
            api: api.to_owned(),
            body: String::from_utf8_lossy(body).into_owned(),
        };
        self.state().calls.push(call);
    }

    fn injected_failure(&self, api: &str) -> Result<(), WxError> {
        let mut state = self.state();
        match state
            .injected_failures
            .get_mut(api)
            .and_then(VecDeque::pop_front)
            .flatten()
        {
            Some(errcode) => Err(WxError {
                errcode,
                errmsg: "failure injected by the sandbox",
            }),
            None => Ok(()),
        }
    }

    /// What WeChat checks first on every API that takes `?access_token=`.
    fn check_access_token(&self, token: Option<&str>) -> Result<(), WxError> {
        let token = token
            .filter(|token| !token.is_empty())
            .ok_or(WxError::ACCESS_TOKEN_MISSING)?;
        let state = self.state();
        let issued = state.tokens.get(token).ok_or(WxError::INVALID_CREDENTIAL)?;
        if issued.revoked {
            return Err(WxError::INVALID_CREDENTIAL);
        }
        if self.clock.now() >= issued.expires_at {
            return Err(WxError::ACCESS_TOKEN_EXPIRED);
        }
        Ok(())
    }

    fn check_app(&self, appid: Option<&str>, secret: Option<&str>) -> Result<(), WxError> {
        match appid {
            None | Some("") => return Err(WxError::APPID_MISSING),
            Some(appid) if appid != self.appid => return Err(WxError::INVALID_APPID),
            Some(_) => {}
        }
        match secret {
            None | Some("") => Err(WxError::APPSECRET_MISSING),
            Some(secret) if secret != self.secret => Err(WxError::INVALID_APPSECRET),
            Some(_) => Ok(()),
        }
    }

    fn issue_oauth_code(&self, openid: &str, snapshot_user: bool) -> String {
        let code = random_id("sandbox-code");
        let entry = OauthCode {
            openid: openid.to_owned(),
            issued_at: self.clock.now(),
            used: false,
            snapshot_user,
        };
        self.state().oauth_codes.insert(code.clone(), entry);
        code
    }
}

impl SandboxState {
    fn issue_token(&mut self, now: DateTime<Utc>) -> String {
        let token = random_id("sandbox-access-token");
        let issued = IssuedToken {
            expires_at: now + TOKEN_LIFETIME,
            revoked: false,
        };
        self.tokens.insert(token.clone(), issued);
        self.current_token = Some(token.clone());
        token
    }

    /// A members list as batchtagging and batchblacklist check it: 1 to `max`
    /// openids, each a follower.
    fn check_members(&self, openids: &[String], max: usize) -> Result<(), WxError> {
        if openids.is_empty() || openids.len() > max {
            return Err(WxError::INVALID_OPENID_LIST_SIZE);
        }
        if openids
            .iter()
            .any(|openid| !self.follower_index.contains_key(openid))
        {
            return Err(WxError::INVALID_OPENID);
        }
        Ok(())
    }

    /// The current token while it has more than the renewal window left.
    fn reusable_token(&self, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        let token = self.current_token.as_ref()?;
        let issued = self.tokens.get(token)?;
        let reusable = !issued.revoked && issued.expires_at - now > TOKEN_RENEWAL_WINDOW;
        reusable.then(|| (token.clone(), issued.expires_at))
    }
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

// ---- WeChat's errors -------------------------------------------------------------

/// WeChat's refusal: HTTP 200 with `{"errcode": …, "errmsg": "… rid: …"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WxError {
    errcode: i64,
    errmsg: &'static str,
}

impl WxError {
    const fn new(errcode: i64, errmsg: &'static str) -> Self {
        Self { errcode, errmsg }
    }

    const INVALID_CREDENTIAL: Self = Self::new(
        40001,
        "invalid credential, access_token is invalid or not latest",
    );
    const INVALID_GRANT_TYPE: Self = Self::new(40002, "invalid grant_type");
    const INVALID_OPENID: Self = Self::new(40003, "invalid openid");
    const INVALID_MEDIA_ID: Self = Self::new(40007, "invalid media_id");
    const INVALID_APPID: Self = Self::new(40013, "invalid appid");
    const BUTTON_SIZE: Self = Self::new(40016, "invalid button size");
    const BUTTON_TYPE: Self = Self::new(40017, "invalid button type");
    const BUTTON_NAME_SIZE: Self = Self::new(40018, "invalid button name size");
    const BUTTON_KEY_SIZE: Self = Self::new(40019, "invalid button key size");
    const BUTTON_URL_SIZE: Self = Self::new(40020, "invalid button url size");
    const SUB_MENU_LEVEL: Self = Self::new(40022, "invalid sub_menu level");
    const SUB_BUTTON_SIZE: Self = Self::new(40023, "invalid sub button size");
    const SUB_BUTTON_TYPE: Self = Self::new(40024, "invalid sub button type");
    const SUB_BUTTON_NAME_SIZE: Self = Self::new(40025, "invalid sub button name size");
    const SUB_BUTTON_KEY_SIZE: Self = Self::new(40026, "invalid sub button key size");
    const SUB_BUTTON_URL_SIZE: Self = Self::new(40027, "invalid sub button url size");
    const INVALID_CODE: Self = Self::new(40029, "invalid code");
    const INVALID_OPENID_LIST_SIZE: Self = Self::new(40032, "invalid openid list size");
    const TAG_NAME_EXISTS: Self = Self::new(45157, "tag name already exists");
    const INVALID_TAG_NAME_SIZE: Self = Self::new(45158, "tag name too long");
    const INVALID_TAG_ID: Self = Self::new(45159, "invalid tag id");
    const SUB_BUTTON_URL_DOMAIN: Self = Self::new(40054, "invalid sub button url domain");
    const BUTTON_URL_DOMAIN: Self = Self::new(40055, "invalid button url domain");
    const INVALID_REMARK: Self = Self::new(40092, "invalid remark name");
    const INVALID_APPSECRET: Self = Self::new(40125, "invalid appsecret");
    const CODE_BEEN_USED: Self = Self::new(40163, "code been used");
    const ACCESS_TOKEN_MISSING: Self = Self::new(41001, "access_token missing");
    const APPID_MISSING: Self = Self::new(41002, "appid missing");
    const APPSECRET_MISSING: Self = Self::new(41004, "appsecret missing");
    const CODE_MISSING: Self = Self::new(41008, "missing code");
    const ACCESS_TOKEN_EXPIRED: Self = Self::new(42001, "access_token expired");
    const MENU_NO_EXIST: Self = Self::new(46003, "menu no exist");
    const DATA_FORMAT_ERROR: Self = Self::new(47001, "data format error");
}

impl IntoResponse for WxError {
    fn into_response(self) -> Response {
        let rid = uuid::Uuid::new_v4().simple().to_string();
        let errmsg = format!("{} rid: {}", self.errmsg, &rid[..16]);
        axum::Json(json!({ "errcode": self.errcode, "errmsg": errmsg })).into_response()
    }
}

fn ok_reply() -> axum::Json<Value> {
    axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// WeChat answers unreadable bodies with 47001, not an HTTP error.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WxError> {
    serde_json::from_slice(body).map_err(|_| WxError::DATA_FORMAT_ERROR)
}

// ---- wire structs, from WeChat's docs ----------------------------------------------

#[derive(Deserialize)]
struct AccessTokenQuery {
    access_token: Option<String>,
}

/// `POST /cgi-bin/stable_token` (getStableAccessToken).
#[derive(Deserialize)]
struct StableTokenRequest {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Serialize)]
struct StableTokenReply {
    access_token: String,
    expires_in: i64,
}

/// `POST /cgi-bin/menu/create`.
#[derive(Deserialize)]
struct MenuCreateRequest {
    #[serde(default)]
    button: Vec<WireButton>,
}

#[derive(Deserialize)]
struct WireButton {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: String,
    key: Option<String>,
    url: Option<String>,
    media_id: Option<String>,
    article_id: Option<String>,
    #[serde(default)]
    sub_button: Vec<WireButton>,
}

/// `POST /cgi-bin/user/info/updateremark`.
#[derive(Deserialize)]
struct UpdateRemarkRequest {
    #[serde(default)]
    openid: String,
    #[serde(default)]
    remark: String,
}

/// `GET /cgi-bin/user/get`.
#[derive(Deserialize)]
struct UserGetQuery {
    access_token: Option<String>,
    next_openid: Option<String>,
}

/// `POST /cgi-bin/user/info/batchget`.
#[derive(Deserialize)]
struct BatchgetRequest {
    #[serde(default)]
    user_list: Vec<BatchgetUser>,
}

#[derive(Deserialize)]
struct BatchgetUser {
    #[serde(default)]
    openid: String,
}

/// `POST /cgi-bin/tags/create`.
#[derive(Deserialize)]
struct TagsCreateRequest {
    tag: TagsCreateTag,
}

#[derive(Deserialize)]
struct TagsCreateTag {
    #[serde(default)]
    name: String,
}

/// `POST /cgi-bin/tags/members/batchtagging` and `batchblacklist` (no tagid).
#[derive(Deserialize)]
struct MembersRequest {
    #[serde(default)]
    openid_list: Vec<String>,
    tagid: Option<i64>,
}

/// `GET /sns/oauth2/access_token` (snsAccessToken).
#[derive(Deserialize)]
struct SnsAccessTokenQuery {
    appid: Option<String>,
    secret: Option<String>,
    code: Option<String>,
    grant_type: Option<String>,
}

#[derive(Serialize)]
struct SnsAccessTokenReply {
    access_token: String,
    expires_in: i64,
    refresh_token: String,
    openid: String,
    scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_snapshotuser: Option<i64>,
}

/// `GET https://open.weixin.qq.com/connect/oauth2/authorize`, plus `sandbox_openid`
/// (ours) to say who is "in WeChat".
#[derive(Deserialize)]
struct AuthorizeQuery {
    appid: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    sandbox_openid: Option<String>,
}

// ---- routes -------------------------------------------------------------------

type SharedState = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::STABLE_TOKEN, post(stable_token))
        .route(paths::MENU_CREATE, post(menu_create))
        .route(paths::MENU_GET, get(menu_get))
        .route(paths::UPDATE_REMARK, post(update_remark))
        .route(paths::SNS_ACCESS_TOKEN, get(sns_access_token))
        .route(paths::USER_GET, get(user_get))
        .route(paths::USER_INFO_BATCHGET, post(user_info_batchget))
        .route(paths::TAGS_GET, get(tags_get))
        .route(paths::TAGS_CREATE, post(tags_create))
        .route(paths::BATCH_TAGGING, post(batch_tagging))
        .route(paths::BATCH_BLACKLIST, post(batch_blacklist))
        .route(paths::AUTHORIZE, get(authorize))
        .with_state(shared)
}

async fn stable_token(
    State(shared): SharedState,
    body: Bytes,
) -> Result<axum::Json<StableTokenReply>, WxError> {
    shared.record(paths::STABLE_TOKEN, &body);
    shared.state().token_fetches += 1;
    shared.injected_failure(paths::STABLE_TOKEN)?;
    let request: StableTokenRequest = parse_body(&body)?;
    if request.grant_type.as_deref() != Some("client_credential") {
        return Err(WxError::INVALID_GRANT_TYPE);
    }
    shared.check_app(request.appid.as_deref(), request.secret.as_deref())?;
    let now = shared.clock.now();
    let mut state = shared.state();
    if !request.force_refresh
        && let Some((token, expires_at)) = state.reusable_token(now)
    {
        let expires_in = (expires_at - now).num_seconds();
        return Ok(axum::Json(StableTokenReply {
            access_token: token,
            expires_in,
        }));
    }
    if request.force_refresh {
        // Force mode invalidates the previous token at once.
        if let Some(previous) = state.current_token.clone()
            && let Some(issued) = state.tokens.get_mut(&previous)
        {
            issued.revoked = true;
        }
    }
    let token = state.issue_token(now);
    Ok(axum::Json(StableTokenReply {
        access_token: token,
        expires_in: TOKEN_LIFETIME.num_seconds(),
    }))
}

async fn menu_create(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
    body: Bytes,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::MENU_CREATE, &body);
    shared.injected_failure(paths::MENU_CREATE)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let menu: Value = parse_body(&body)?;
    let request: MenuCreateRequest =
        serde_json::from_value(menu.clone()).map_err(|_| WxError::DATA_FORMAT_ERROR)?;
    check_menu(&request.button)?;
    shared.state().menus.push(menu);
    Ok(ok_reply())
}

async fn menu_get(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::MENU_GET, b"");
    shared.injected_failure(paths::MENU_GET)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let state = shared.state();
    let menu = state.menus.last().ok_or(WxError::MENU_NO_EXIST)?;
    Ok(axum::Json(json!({ "menu": menu })))
}

async fn update_remark(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
    body: Bytes,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::UPDATE_REMARK, &body);
    shared.injected_failure(paths::UPDATE_REMARK)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let request: UpdateRemarkRequest = parse_body(&body)?;
    if request.openid.is_empty() {
        return Err(WxError::INVALID_OPENID);
    }
    if request.remark.len() > REMARK_MAX_BYTES {
        return Err(WxError::INVALID_REMARK);
    }
    let mut state = shared.state();
    // What user/info/batchget answers from now on, as WeChat does.
    if let Some(&at) = state.follower_index.get(&request.openid) {
        state.followers[at].remark = request.remark.clone();
    }
    state.remarks.insert(request.openid, request.remark);
    Ok(ok_reply())
}

async fn user_get(
    State(shared): SharedState,
    Query(query): Query<UserGetQuery>,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::USER_GET, b"");
    shared.injected_failure(paths::USER_GET)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let state = shared.state();
    let start = match query
        .next_openid
        .as_deref()
        .filter(|openid| !openid.is_empty())
    {
        None => 0,
        Some(openid) => state
            .follower_index
            .get(openid)
            .map(|at| at + 1)
            .ok_or(WxError::INVALID_OPENID)?,
    };
    let page: Vec<&str> = state
        .followers
        .iter()
        .skip(start)
        .take(USER_GET_PAGE)
        .map(|follower| follower.openid.as_str())
        .collect();
    // As WeChat does: next_openid is the page's last openid, and "" after the end.
    let next_openid = page.last().copied().unwrap_or("");
    let mut reply = json!({
        "total": state.followers.len(),
        "count": page.len(),
        "next_openid": next_openid,
    });
    if !page.is_empty() {
        reply["data"] = json!({ "openid": page });
    }
    Ok(axum::Json(reply))
}

async fn user_info_batchget(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
    body: Bytes,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::USER_INFO_BATCHGET, &body);
    shared.injected_failure(paths::USER_INFO_BATCHGET)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let request: BatchgetRequest = parse_body(&body)?;
    if request.user_list.is_empty() || request.user_list.len() > BATCHGET_MAX {
        return Err(WxError::INVALID_OPENID_LIST_SIZE);
    }
    let state = shared.state();
    let mut infos = Vec::with_capacity(request.user_list.len());
    for user in &request.user_list {
        if user.openid.is_empty() {
            return Err(WxError::INVALID_OPENID);
        }
        let info = match state.follower_index.get(&user.openid) {
            Some(&at) => {
                let follower = &state.followers[at];
                json!({
                    "subscribe": 1,
                    "openid": follower.openid,
                    "language": "zh_CN",
                    "subscribe_time": follower.subscribe_time.timestamp(),
                    "remark": follower.remark,
                    "groupid": 0,
                    "tagid_list": [],
                    "subscribe_scene": "ADD_SCENE_QR_CODE",
                })
            }
            None => json!({ "subscribe": 0, "openid": user.openid }),
        };
        infos.push(info);
    }
    Ok(axum::Json(json!({ "user_info_list": infos })))
}

async fn tags_get(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::TAGS_GET, b"");
    shared.injected_failure(paths::TAGS_GET)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let state = shared.state();
    let tags: Vec<Value> = state
        .tags
        .iter()
        .map(|(id, name)| {
            let count: usize = state
                .tag_batches
                .iter()
                .filter(|(tag, _)| tag == id)
                .map(|(_, openids)| openids.len())
                .sum();
            json!({ "id": id, "name": name, "count": count })
        })
        .collect();
    Ok(axum::Json(json!({ "tags": tags })))
}

async fn tags_create(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
    body: Bytes,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::TAGS_CREATE, &body);
    shared.injected_failure(paths::TAGS_CREATE)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let request: TagsCreateRequest = parse_body(&body)?;
    let name = request.tag.name;
    if name.is_empty() || name.len() > TAG_NAME_MAX_BYTES {
        return Err(WxError::INVALID_TAG_NAME_SIZE);
    }
    let mut state = shared.state();
    if state.tags.iter().any(|(_, existing)| *existing == name) {
        return Err(WxError::TAG_NAME_EXISTS);
    }
    let id = FIRST_TAG_ID + state.tags.len() as i64;
    state.tags.push((id, name.clone()));
    Ok(axum::Json(json!({ "tag": { "id": id, "name": name } })))
}

async fn batch_tagging(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
    body: Bytes,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::BATCH_TAGGING, &body);
    shared.injected_failure(paths::BATCH_TAGGING)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let request: MembersRequest = parse_body(&body)?;
    let mut state = shared.state();
    let tag_id = request
        .tagid
        .filter(|id| state.tags.iter().any(|(tag, _)| tag == id))
        .ok_or(WxError::INVALID_TAG_ID)?;
    state.check_members(&request.openid_list, BATCH_TAGGING_MAX)?;
    state.tag_batches.push((tag_id, request.openid_list));
    Ok(ok_reply())
}

async fn batch_blacklist(
    State(shared): SharedState,
    Query(query): Query<AccessTokenQuery>,
    body: Bytes,
) -> Result<axum::Json<Value>, WxError> {
    shared.record(paths::BATCH_BLACKLIST, &body);
    shared.injected_failure(paths::BATCH_BLACKLIST)?;
    shared.check_access_token(query.access_token.as_deref())?;
    let request: MembersRequest = parse_body(&body)?;
    let mut state = shared.state();
    state.check_members(&request.openid_list, BATCH_BLACKLIST_MAX)?;
    state.blacklist_batches.push(request.openid_list);
    Ok(ok_reply())
}

async fn sns_access_token(
    State(shared): SharedState,
    Query(query): Query<SnsAccessTokenQuery>,
) -> Result<axum::Json<SnsAccessTokenReply>, WxError> {
    shared.record(paths::SNS_ACCESS_TOKEN, b"");
    shared.injected_failure(paths::SNS_ACCESS_TOKEN)?;
    shared.check_app(query.appid.as_deref(), query.secret.as_deref())?;
    if query.grant_type.as_deref() != Some("authorization_code") {
        return Err(WxError::INVALID_GRANT_TYPE);
    }
    let code = query
        .code
        .filter(|code| !code.is_empty())
        .ok_or(WxError::CODE_MISSING)?;
    let now = shared.clock.now();
    let mut state = shared.state();
    let entry = state
        .oauth_codes
        .get_mut(&code)
        .ok_or(WxError::INVALID_CODE)?;
    if entry.used {
        return Err(WxError::CODE_BEEN_USED);
    }
    if now - entry.issued_at >= OAUTH_CODE_LIFETIME {
        return Err(WxError::INVALID_CODE);
    }
    entry.used = true;
    Ok(axum::Json(SnsAccessTokenReply {
        access_token: random_id("sandbox-sns-token"),
        expires_in: TOKEN_LIFETIME.num_seconds(),
        refresh_token: random_id("sandbox-refresh-token"),
        openid: entry.openid.clone(),
        scope: "snsapi_base",
        is_snapshotuser: entry.snapshot_user.then_some(1),
    }))
}

/// WeChat shows an error page instead of redirecting when the request is wrong.
async fn authorize(State(shared): SharedState, Query(query): Query<AuthorizeQuery>) -> Response {
    shared.record(paths::AUTHORIZE, b"");
    match authorize_redirect(&shared, query) {
        Ok(location) => (
            StatusCode::FOUND,
            [(header::LOCATION, location.to_string())],
        )
            .into_response(),
        Err(problem) => (StatusCode::BAD_REQUEST, problem).into_response(),
    }
}

fn authorize_redirect(shared: &Shared, query: AuthorizeQuery) -> Result<Url, &'static str> {
    if query.appid.as_deref() != Some(shared.appid.as_str()) {
        return Err("appid 参数错误");
    }
    if query.response_type.as_deref() != Some("code") {
        return Err("response_type 参数错误");
    }
    if !matches!(
        query.scope.as_deref(),
        Some("snsapi_base" | "snsapi_userinfo")
    ) {
        return Err("scope 参数错误或没有 scope 权限");
    }
    let mut redirect = query
        .redirect_uri
        .as_deref()
        .and_then(|uri| Url::parse(uri).ok())
        .filter(|uri| matches!(uri.scheme(), "http" | "https"))
        .ok_or("redirect_uri 参数错误")?;
    let openid = query.sandbox_openid.as_deref().unwrap_or(DEMO_OPENID);
    let code = shared.issue_oauth_code(openid, false);
    redirect
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", query.state.as_deref().unwrap_or(""));
    Ok(redirect)
}

// ---- menu limits, as menu/create enforces them ---------------------------------

/// The errcodes for a top-level button and for a sub-button.
struct ButtonRules {
    name_max_bytes: usize,
    kind: WxError,
    name: WxError,
    key: WxError,
    url: WxError,
    url_domain: WxError,
}

const TOP_BUTTON: ButtonRules = ButtonRules {
    name_max_bytes: 16,
    kind: WxError::BUTTON_TYPE,
    name: WxError::BUTTON_NAME_SIZE,
    key: WxError::BUTTON_KEY_SIZE,
    url: WxError::BUTTON_URL_SIZE,
    url_domain: WxError::BUTTON_URL_DOMAIN,
};

const SUB_BUTTON: ButtonRules = ButtonRules {
    name_max_bytes: 60,
    kind: WxError::SUB_BUTTON_TYPE,
    name: WxError::SUB_BUTTON_NAME_SIZE,
    key: WxError::SUB_BUTTON_KEY_SIZE,
    url: WxError::SUB_BUTTON_URL_SIZE,
    url_domain: WxError::SUB_BUTTON_URL_DOMAIN,
};

/// The first problem, as WeChat reports one errcode at a time.
fn check_menu(buttons: &[WireButton]) -> Result<(), WxError> {
    if buttons.is_empty() || buttons.len() > TOP_BUTTONS_MAX {
        return Err(WxError::BUTTON_SIZE);
    }
    for button in buttons {
        if button.sub_button.is_empty() {
            check_action(button, &TOP_BUTTON)?;
        } else {
            check_group(button)?;
        }
    }
    Ok(())
}

/// A top button opening sub-buttons; WeChat ignores any type it carries.
fn check_group(button: &WireButton) -> Result<(), WxError> {
    check_name(button, &TOP_BUTTON)?;
    if button.sub_button.len() > SUB_BUTTONS_MAX {
        return Err(WxError::SUB_BUTTON_SIZE);
    }
    for sub in &button.sub_button {
        if !sub.sub_button.is_empty() {
            return Err(WxError::SUB_MENU_LEVEL);
        }
        check_action(sub, &SUB_BUTTON)?;
    }
    Ok(())
}

fn check_name(button: &WireButton, rules: &ButtonRules) -> Result<(), WxError> {
    if button.name.is_empty() || button.name.len() > rules.name_max_bytes {
        return Err(rules.name);
    }
    Ok(())
}

fn check_action(button: &WireButton, rules: &ButtonRules) -> Result<(), WxError> {
    check_name(button, rules)?;
    let kind = button
        .kind
        .as_deref()
        .filter(|kind| BUTTON_TYPES.contains(kind))
        .ok_or(rules.kind)?;
    let key = button.key.as_deref().unwrap_or("");
    let url = button.url.as_deref().unwrap_or("");
    if key.len() > KEY_MAX_BYTES {
        return Err(rules.key);
    }
    if url.len() > URL_MAX_BYTES {
        return Err(rules.url);
    }
    match kind {
        "view" | "miniprogram" if url.is_empty() => Err(rules.url),
        "view" | "miniprogram" if !is_web_url(url) => Err(rules.url_domain),
        "view" | "miniprogram" => Ok(()),
        "media_id" if is_blank(&button.media_id) => Err(WxError::INVALID_MEDIA_ID),
        "article_id" | "article_view_limited" if is_blank(&button.article_id) => {
            Err(WxError::INVALID_MEDIA_ID)
        }
        "media_id" | "article_id" | "article_view_limited" => Ok(()),
        // The event types send their key back in the event.
        _ if key.is_empty() => Err(rules.key),
        _ => Ok(()),
    }
}

fn is_blank(field: &Option<String>) -> bool {
    field.as_deref().is_none_or(str::is_empty)
}

fn is_web_url(text: &str) -> bool {
    Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const APPID: &str = "wxsandbox0001";
    const SECRET: &str = "sandbox-secret";

    struct Probe {
        sandbox: WechatSandbox,
        clock: Clock,
        http: reqwest::Client,
    }

    impl Probe {
        async fn start() -> Probe {
            let clock = Clock::system();
            let sandbox = WechatSandbox::spawn_with_clock(APPID, SECRET, clock.clone())
                .await
                .unwrap();
            let http = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            Probe {
                sandbox,
                clock,
                http,
            }
        }

        fn url(&self, path: &str) -> Url {
            self.sandbox
                .base_url()
                .join(path.trim_start_matches('/'))
                .unwrap()
        }

        async fn post(&self, path: &str, query: &[(&str, &str)], body: &Value) -> Value {
            let request = self.http.post(self.url(path)).query(query).json(body);
            request.send().await.unwrap().json().await.unwrap()
        }

        async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
            let request = self.http.get(self.url(path)).query(query);
            request.send().await.unwrap().json().await.unwrap()
        }

        async fn stable_token(&self, force_refresh: bool) -> Value {
            let body = json!({
                "grant_type": "client_credential", "appid": APPID, "secret": SECRET,
                "force_refresh": force_refresh,
            });
            self.post(paths::STABLE_TOKEN, &[], &body).await
        }

        async fn token(&self) -> String {
            let reply = self.stable_token(false).await;
            reply["access_token"].as_str().unwrap().to_owned()
        }

        async fn create_menu(&self, menu: Value) -> i64 {
            let token = self.token().await;
            let reply = self
                .post(paths::MENU_CREATE, &[("access_token", &token)], &menu)
                .await;
            reply["errcode"].as_i64().unwrap()
        }

        async fn exchange(&self, code: &str) -> Value {
            let query = [
                ("appid", APPID),
                ("secret", SECRET),
                ("code", code),
                ("grant_type", "authorization_code"),
            ];
            self.get(paths::SNS_ACCESS_TOKEN, &query).await
        }
    }

    fn click(name: &str, key: &str) -> Value {
        json!({"type": "click", "name": name, "key": key})
    }

    #[tokio::test]
    async fn normal_mode_returns_the_same_token_and_force_refresh_rotates_it() {
        let probe = Probe::start().await;
        let first = probe.stable_token(false).await;
        assert_eq!(first["expires_in"], 7200);
        let again = probe.stable_token(false).await;
        assert_eq!(again["access_token"], first["access_token"]);
        let forced = probe.stable_token(true).await;
        assert_ne!(forced["access_token"], first["access_token"]);
        let old = first["access_token"].as_str().unwrap();
        let reply = probe.get(paths::MENU_GET, &[("access_token", old)]).await;
        assert_eq!(reply["errcode"], 40001);
        assert_eq!(probe.sandbox.token_fetches(), 3);
    }

    #[tokio::test]
    async fn normal_mode_renews_a_token_in_its_last_five_minutes() {
        let probe = Probe::start().await;
        let first = probe.token().await;
        probe.clock.advance(Duration::from_secs(7200 - 299));
        let renewed = probe.token().await;
        assert_ne!(renewed, first);
    }

    #[tokio::test]
    async fn stable_token_refuses_wrong_credentials_as_wechat_does() {
        let probe = Probe::start().await;
        let cases = [
            (
                json!({"grant_type": "client_credential", "appid": "wxother", "secret": SECRET}),
                40013,
            ),
            (
                json!({"grant_type": "client_credential", "appid": APPID, "secret": "wrong"}),
                40125,
            ),
            (
                json!({"grant_type": "password", "appid": APPID, "secret": SECRET}),
                40002,
            ),
            (
                json!({"grant_type": "client_credential", "secret": SECRET}),
                41002,
            ),
        ];
        for (body, errcode) in cases {
            let reply = probe.post(paths::STABLE_TOKEN, &[], &body).await;
            assert_eq!(reply["errcode"], errcode, "{body}");
            assert!(reply["errmsg"].as_str().unwrap().contains("rid: "));
        }
        let reply: Value = probe
            .http
            .post(probe.url(paths::STABLE_TOKEN))
            .body("not json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(reply["errcode"], 47001);
    }

    #[tokio::test]
    async fn apis_refuse_missing_unknown_revoked_and_expired_tokens() {
        let probe = Probe::start().await;
        let reply = probe.get(paths::MENU_GET, &[]).await;
        assert_eq!(reply["errcode"], 41001);
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", "made-up")])
            .await;
        assert_eq!(reply["errcode"], 40001);

        let token = probe.token().await;
        probe.sandbox.invalidate_tokens();
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", &token)])
            .await;
        assert_eq!(reply["errcode"], 40001);

        let token = probe.token().await;
        probe.clock.advance(Duration::from_secs(7200));
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", &token)])
            .await;
        assert_eq!(reply["errcode"], 42001);
    }

    #[tokio::test]
    async fn menu_create_refuses_what_breaks_the_limits_with_wechats_errcodes() {
        let probe = Probe::start().await;
        let long_sub_name = "缴".repeat(21);
        let six: Vec<Value> = (0..6).map(|i| click("子", &format!("K{i}"))).collect();
        let cases = [
            (json!({"button": []}), 40016),
            (
                json!({"button": [click("一", "A"), click("二", "B"), click("三", "C"), click("四", "D")]}),
                40016,
            ),
            (json!({"button": [click("学生缴费系统入", "A")]}), 40018),
            (
                json!({"button": [{"type": "telephone", "name": "联系", "key": "A"}]}),
                40017,
            ),
            (json!({"button": [click("联系", &"K".repeat(129))]}), 40019),
            (json!({"button": [click("联系", "")]}), 40019),
            (json!({"button": [{"type": "view", "name": "缴费"}]}), 40020),
            (
                json!({"button": [{"type": "view", "name": "缴费", "url": "/h5"}]}),
                40055,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": six}]}),
                40023,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": [{"name": "子", "key": "K"}]}]}),
                40024,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": [click(&long_sub_name, "K")]}]}),
                40025,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": [click("子", &"K".repeat(129))]}]}),
                40026,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": [{"type": "view", "name": "子"}]}]}),
                40027,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": [{"type": "view", "name": "子", "url": "www.x.cn"}]}]}),
                40054,
            ),
            (
                json!({"button": [{"name": "组", "sub_button": [{"name": "子", "sub_button": [click("孙", "K")]}]}]}),
                40022,
            ),
            (
                json!({"button": [{"type": "media_id", "name": "图片"}]}),
                40007,
            ),
        ];
        for (menu, errcode) in cases {
            assert_eq!(probe.create_menu(menu.clone()).await, errcode, "{menu}");
        }
        assert!(probe.sandbox.menus().is_empty());
    }

    #[tokio::test]
    async fn an_accepted_menu_is_recorded_and_served_by_menu_get() {
        let probe = Probe::start().await;
        let menu = json!({"button": [
            {"type": "view", "name": "学生缴费", "url": "https://pay.example.edu.cn/h5"},
            {"name": "缴费指南", "sub_button": [click("缴费流程", "PAY_GUIDE")]},
        ]});
        assert_eq!(probe.create_menu(menu.clone()).await, 0);
        assert_eq!(probe.sandbox.menus(), std::slice::from_ref(&menu));
        let token = probe.token().await;
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", &token)])
            .await;
        assert_eq!(reply, json!({ "menu": menu }));
    }

    #[tokio::test]
    async fn menu_get_without_a_menu_says_so() {
        let probe = Probe::start().await;
        let token = probe.token().await;
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", &token)])
            .await;
        assert_eq!(reply["errcode"], 46003);
    }

    #[tokio::test]
    async fn remarks_over_20_bytes_are_refused() {
        let probe = Probe::start().await;
        let token = probe.token().await;
        let query = [("access_token", token.as_str())];
        let fits = "18汽修一班张三"; // 2 + 6 × 3 = 20 bytes
        let body = json!({"openid": "o1", "remark": fits});
        assert_eq!(
            probe.post(paths::UPDATE_REMARK, &query, &body).await["errcode"],
            0
        );
        let body = json!({"openid": "o2", "remark": "18汽修一班张三丰"});
        assert_eq!(
            probe.post(paths::UPDATE_REMARK, &query, &body).await["errcode"],
            40092
        );
        let body = json!({"openid": "", "remark": "18汽修张三"});
        assert_eq!(
            probe.post(paths::UPDATE_REMARK, &query, &body).await["errcode"],
            40003
        );
        let expected = HashMap::from([("o1".to_owned(), fits.to_owned())]);
        assert_eq!(probe.sandbox.remarks(), expected);
    }

    #[tokio::test]
    async fn oauth_codes_work_once_within_five_minutes() {
        let probe = Probe::start().await;
        let code = probe.sandbox.issue_oauth_code("o_student");
        let reply = probe.exchange(&code).await;
        assert_eq!(reply["openid"], "o_student");
        assert_eq!(reply["scope"], "snsapi_base");
        assert!(reply.get("is_snapshotuser").is_none());
        assert_eq!(probe.exchange(&code).await["errcode"], 40163);
        assert_eq!(probe.exchange("never-issued").await["errcode"], 40029);

        let late = probe.sandbox.issue_oauth_code("o_student");
        probe.clock.advance(Duration::from_secs(300));
        assert_eq!(probe.exchange(&late).await["errcode"], 40029);

        let snapshot = probe.sandbox.issue_snapshot_oauth_code("o_snapshot");
        assert_eq!(probe.exchange(&snapshot).await["is_snapshotuser"], 1);
    }

    #[tokio::test]
    async fn the_code_exchange_checks_the_app_credentials() {
        let probe = Probe::start().await;
        let code = probe.sandbox.issue_oauth_code("o_student");
        let query = [
            ("appid", APPID),
            ("secret", "wrong"),
            ("code", code.as_str()),
            ("grant_type", "authorization_code"),
        ];
        let reply = probe.get(paths::SNS_ACCESS_TOKEN, &query).await;
        assert_eq!(reply["errcode"], 40125);
        // A refused attempt does not use the code up.
        assert_eq!(probe.exchange(&code).await["openid"], "o_student");
    }

    #[tokio::test]
    async fn the_authorize_page_redirects_with_a_fresh_code_and_the_state() {
        let probe = Probe::start().await;
        let query = [
            ("appid", APPID),
            ("redirect_uri", "http://127.0.0.1:8080/h5/oauth/callback"),
            ("response_type", "code"),
            ("scope", "snsapi_base"),
            ("state", "s123"),
            ("sandbox_openid", "o_chosen"),
        ];
        let response = probe
            .http
            .get(probe.url(paths::AUTHORIZE))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let location = Url::parse(location).unwrap();
        assert_eq!(location.path(), "/h5/oauth/callback");
        let pairs: HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "s123");
        assert_eq!(probe.exchange(&pairs["code"]).await["openid"], "o_chosen");

        let wrong_appid = [("appid", "wxother"), ("response_type", "code")];
        let response = probe
            .http
            .get(probe.url(paths::AUTHORIZE))
            .query(&wrong_appid)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    fn followers(count: usize) -> Vec<SandboxFollower> {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        (0..count)
            .map(|i| SandboxFollower {
                openid: format!("o{i}"),
                subscribe_time: at,
                remark: format!("r{i}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn user_get_pages_ten_thousand_at_a_time() {
        let probe = Probe::start().await;
        probe.sandbox.add_followers(followers(23_456));
        let token = probe.token().await;
        let mut next = String::new();
        let mut seen = Vec::new();
        loop {
            let query = [("access_token", token.as_str()), ("next_openid", &next)];
            let reply = probe.get(paths::USER_GET, &query).await;
            assert_eq!(reply["total"], 23_456);
            let count = reply["count"].as_u64().unwrap();
            if count == 0 {
                assert_eq!(reply["next_openid"], "");
                assert!(reply.get("data").is_none());
                break;
            }
            assert!(count <= 10_000);
            let page = reply["data"]["openid"].as_array().unwrap();
            assert_eq!(page.len() as u64, count);
            seen.extend(
                page.iter()
                    .map(|openid| openid.as_str().unwrap().to_owned()),
            );
            next = reply["next_openid"].as_str().unwrap().to_owned();
            assert_eq!(seen.last(), Some(&next));
        }
        assert_eq!(seen.len(), 23_456);
        assert_eq!(seen[12_345], "o12345");
        assert_eq!(probe.sandbox.calls_to(paths::USER_GET), 4);
        let query = [("access_token", token.as_str()), ("next_openid", "nobody")];
        assert_eq!(probe.get(paths::USER_GET, &query).await["errcode"], 40003);
    }

    #[tokio::test]
    async fn batchget_reads_remarks_and_refuses_over_100() {
        let probe = Probe::start().await;
        probe.sandbox.add_followers(followers(150));
        let token = probe.token().await;
        let query = [("access_token", token.as_str())];
        let list = |range: std::ops::Range<usize>| {
            let users: Vec<Value> = range.map(|i| json!({"openid": format!("o{i}")})).collect();
            json!({ "user_list": users })
        };
        let reply = probe
            .post(paths::USER_INFO_BATCHGET, &query, &list(0..100))
            .await;
        let infos = reply["user_info_list"].as_array().unwrap();
        assert_eq!(infos.len(), 100);
        assert_eq!(infos[7]["remark"], "r7");
        assert_eq!(infos[7]["subscribe"], 1);
        assert_eq!(infos[7]["subscribe_time"], 1_700_000_000);
        let reply = probe
            .post(paths::USER_INFO_BATCHGET, &query, &list(0..101))
            .await;
        assert_eq!(reply["errcode"], 40032);
        let reply = probe
            .post(paths::USER_INFO_BATCHGET, &query, &list(149..151))
            .await;
        assert_eq!(
            reply["user_info_list"][1],
            json!({"subscribe": 0, "openid": "o150"})
        );
    }

    #[tokio::test]
    async fn tags_and_blacklist_are_recorded_within_wechats_limits() {
        let probe = Probe::start().await;
        probe.sandbox.add_followers(followers(100));
        let token = probe.token().await;
        let query = [("access_token", token.as_str())];
        let reply = probe
            .post(
                paths::TAGS_CREATE,
                &query,
                &json!({"tag": {"name": "待清理"}}),
            )
            .await;
        let id = reply["tag"]["id"].as_i64().unwrap();
        let again = probe
            .post(
                paths::TAGS_CREATE,
                &query,
                &json!({"tag": {"name": "待清理"}}),
            )
            .await;
        assert_eq!(again["errcode"], 45157);
        let openids = |n: usize| (0..n).map(|i| format!("o{i}")).collect::<Vec<_>>();
        let tagging = |n: usize, tagid: i64| json!({"openid_list": openids(n), "tagid": tagid});
        assert_eq!(
            probe
                .post(paths::BATCH_TAGGING, &query, &tagging(51, id))
                .await["errcode"],
            40032
        );
        assert_eq!(
            probe
                .post(paths::BATCH_TAGGING, &query, &tagging(5, 999))
                .await["errcode"],
            45159
        );
        assert_eq!(
            probe
                .post(paths::BATCH_TAGGING, &query, &tagging(50, id))
                .await["errcode"],
            0
        );
        let blacklist = |n: usize| json!({"openid_list": openids(n)});
        assert_eq!(
            probe
                .post(paths::BATCH_BLACKLIST, &query, &blacklist(21))
                .await["errcode"],
            40032
        );
        assert_eq!(
            probe
                .post(paths::BATCH_BLACKLIST, &query, &blacklist(0))
                .await["errcode"],
            40032
        );
        assert_eq!(
            probe
                .post(paths::BATCH_BLACKLIST, &query, &blacklist(20))
                .await["errcode"],
            0
        );
        let unknown = json!({"openid_list": ["stranger"]});
        assert_eq!(
            probe.post(paths::BATCH_BLACKLIST, &query, &unknown).await["errcode"],
            40003
        );

        assert_eq!(probe.sandbox.tags(), [(id, "待清理".to_owned())]);
        assert_eq!(probe.sandbox.tag_batches(), [(id, openids(50))]);
        assert_eq!(probe.sandbox.blacklist_batches(), [openids(20)]);
        let tags = probe.get(paths::TAGS_GET, &query).await;
        assert_eq!(tags["tags"][0]["count"], 50);
    }

    #[tokio::test]
    async fn injected_failures_come_first_and_run_out() {
        let probe = Probe::start().await;
        probe.sandbox.fail_next(paths::MENU_GET, 45009, 1);
        let token = probe.token().await;
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", &token)])
            .await;
        assert_eq!(reply["errcode"], 45009);
        let reply = probe
            .get(paths::MENU_GET, &[("access_token", &token)])
            .await;
        assert_eq!(reply["errcode"], 46003);
        assert_eq!(probe.sandbox.calls_to(paths::MENU_GET), 2);
    }
}
