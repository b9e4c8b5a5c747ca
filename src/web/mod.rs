//! HTTP: the axum routers, one per audience, and the application that serves them.

pub mod admin;
pub mod error;
pub mod headers;
pub mod login_guard;
pub mod notify;
pub mod observe;
pub mod password_work;
pub mod request_id;
pub mod serve;
pub mod session;
pub mod students;
pub mod text;
pub mod views;
pub mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::background::Background;
use crate::cache::{MemoryCache, RedisCache, SharedCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::{Metrics, UpstreamObserver};
use crate::pay::Channel;
use crate::pay::abc::Abc;
use crate::pay::alipay::Alipay;
use crate::pay::checkout::{Channels, Checkout};
use crate::pay::wechat::WechatPay;
use crate::store::Store;
use crate::wechat::api::{ApiClient, ApiClientConfig};
use crate::wechat::crypto::MessageCrypto;

/// What every handler may reach. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub cache: SharedCache,
    pub clock: Clock,
    pub background: Background,
    /// The official account, when configured.
    pub account: Option<Arc<Account>>,
    pub metrics: Arc<Metrics>,
    /// Bounds the background writes (follower events, remarks) in flight, so that a
    /// burst queues here instead of timing out in the connection pool.
    pub background_writes: Arc<tokio::sync::Semaphore>,
    /// Orders and the channels that collect them.
    pub checkout: Checkout,
    /// WeChat Pay, when configured: its notifications are read with it.
    pub wechat_pay: Option<Arc<WechatPay>>,
    /// Alipay, when configured.
    pub alipay: Option<Arc<Alipay>>,
    /// Agricultural Bank of China, when configured.
    pub abc: Option<Arc<Abc>>,
    /// Turns at argon2 hashing and verification: one per core, process-wide.
    pub password_work: Arc<password_work::PasswordWork>,
}

/// Background writes at once: enough to keep PostgreSQL's pool busy, few enough to
/// leave connections for requests.
const BACKGROUND_WRITES: usize = 4;

/// The official account as the webhook and the jobs see it.
pub struct Account {
    pub appid: String,
    pub token: secrecy::SecretString,
    /// Present when an EncodingAESKey is configured (safe and compatible mode).
    pub crypto: Option<MessageCrypto>,
    pub api: ApiClient,
}

/// The connections an app runs on. Built from the configuration in production; tests
/// build their own (a fresh database schema, a prefixed cache, a manual clock).
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub cache: SharedCache,
    pub clock: Clock,
    pub background: Background,
}

impl Services {
    /// Connects to the configured database and cache, applying pending migrations
    /// unless told not to.
    pub async fn connect(config: &Config, migrate: bool) -> anyhow::Result<Services> {
        let clock = Clock::system();
        let store = Store::connect(config.database_url.expose_secret())
            .await
            .context("cannot open the database (CAMPUSPAY_DATABASE_URL)")?;
        if migrate {
            store
                .migrate()
                .await
                .context("cannot apply the database migrations")?;
        }
        let cache: SharedCache = match &config.redis_url {
            Some(url) => Arc::new(
                RedisCache::connect(url.expose_secret(), &config.redis_prefix)
                    .await
                    .context("cannot reach Redis (CAMPUSPAY_REDIS_URL)")?,
            ),
            None => Arc::new(MemoryCache::new(clock.clone())),
        };
        Ok(Services {
            store,
            cache,
            clock,
            background: Background::new(),
        })
    }
}

impl AppState {
    pub fn new(config: Config, services: Services) -> anyhow::Result<AppState> {
        // First, so that every client built below reports to it.
        let metrics = Arc::new(Metrics::new());
        let observer = |upstream| UpstreamObserver::new(metrics.clone(), upstream);
        let account = match &config.wechat {
            Some(wechat) => {
                let api = ApiClient::observed(
                    ApiClientConfig {
                        appid: wechat.appid.clone(),
                        secret: wechat.secret.clone(),
                        api_base: config.wechat_api_base.clone(),
                    },
                    services.cache.clone(),
                    observer("wechat"),
                )
                .context("cannot build the WeChat API client")?;
                Some(Arc::new(Account {
                    appid: wechat.appid.clone(),
                    token: wechat.token.clone(),
                    crypto: wechat
                        .aes_key
                        .clone()
                        .map(|key| MessageCrypto::new(key, wechat.appid.clone())),
                    api,
                }))
            }
            None => None,
        };
        let wechat_pay = WechatPay::from_config(&config, services.clock.clone())?
            .map(|pay| Arc::new(pay.observed(observer("wechatpay"))));
        let alipay = Alipay::from_config(&config, services.clock.clone())?
            .map(|pay| Arc::new(pay.observed(observer("alipay"))));
        let abc = Abc::from_config(&config, services.clock.clone())?
            .map(|pay| Arc::new(pay.observed(observer("abc"))));
        let checkout = Checkout {
            store: services.store.clone(),
            channels: Channels {
                wechat: wechat_pay.clone().map(|pay| pay as Arc<dyn Channel>),
                alipay: alipay.clone().map(|pay| pay as Arc<dyn Channel>),
                abc: abc.clone().map(|pay| pay as Arc<dyn Channel>),
            },
            clock: services.clock.clone(),
            school_name: config.school_name.clone(),
            order_ttl: config.order_ttl,
            public_url: config.public_link(""),
        };
        Ok(AppState {
            checkout,
            wechat_pay,
            alipay,
            abc,
            config: Arc::new(config),
            store: services.store,
            cache: services.cache,
            clock: services.clock,
            background: services.background,
            account,
            metrics,
            background_writes: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_WRITES)),
            password_work: Arc::new(password_work::PasswordWork::sized_to_cores()),
        })
    }
}

/// Every route of the program.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhook::router())
        .merge(students::router())
        .merge(notify::router())
        .merge(admin::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(observe::scrape))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            observe::observe,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(headers::secure_headers))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // `out_trade_no` and `origin_request_id` (the page request that made
                // the order) are filled in by the handlers that learn them.
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                    out_trade_no = tracing::field::Empty,
                    origin_request_id = tracing::field::Empty,
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when both the database and the cache answer.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store.ping().await;
    let cache = state.cache.ping().await;
    match (database, cache) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready".to_owned()),
        (database, cache) => {
            tracing::warn!(database = ?database.err(), cache = ?cache.err(), "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned())
        }
    }
}

/// The program, bound to its address and ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Binds the listener (port 0 picks a free port, as tests do).
    pub async fn build(config: Config, services: Services) -> anyhow::Result<App> {
        let listen = config.listen;
        let state = AppState::new(config, services)?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (CAMPUSPAY_LISTEN)"))?;
        Ok(App { listener, state })
    }

    /// Serves on a listener the caller has already bound (`CAMPUSPAY_LISTEN` is not
    /// used): a caller that needs the port before the configuration (tests whose
    /// public URL is the app itself) binds once, so no one can take the port between.
    pub fn build_on(
        listener: TcpListener,
        config: Config,
        services: Services,
    ) -> anyhow::Result<App> {
        let state = AppState::new(config, services)?;
        Ok(App { listener, state })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes requests in flight and the
    /// background work they started (bounded, so a stuck upstream cannot hold the exit).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = self.state.background.clone();
        let metrics = self.state.metrics.clone();
        let _schedule = crate::jobs::schedule::spawn(self.state.follower_check(), metrics.clone());
        let _reconcile = crate::jobs::reconcile::spawn_schedule(
            self.state.reconciler(),
            self.state.config.reconcile_schedule.clone(),
            metrics.clone(),
        );
        let sweeper = tokio::spawn(crate::jobs::orders::run(
            self.state.checkout.clone(),
            self.state.cache.clone(),
            metrics,
        ));
        let request_timeout = self.state.config.request_timeout;
        serve::serve(self.listener, router(self.state), request_timeout, shutdown).await;
        sweeper.abort();
        if tokio::time::timeout(Duration::from_secs(10), background.drain())
            .await
            .is_err()
        {
            tracing::warn!("background work still running after 10 s; exiting anyway");
        }
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
