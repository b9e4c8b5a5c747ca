//! What the program counts about itself, served at `GET /metrics` in the OpenMetrics
//! text format. One [`Metrics`] per app, with its own registry: tests run many apps in
//! one process and each must see only its own numbers.
//!
//! Every label takes its value from a bounded set (route templates, `&'static str`
//! names from the code), never from a request, so the number of series stays small.

mod labels;
mod upstream;

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use self::labels::{
    ChannelLabels, HttpLabels, JobLabels, JobRunLabels, KindLabels, PaymentLabels, QueryLabels,
    ReasonLabels, RefusalLabels, RouteLabels, UpstreamApiLabels, UpstreamLabels,
};
pub use self::labels::{JobResult, method_label};
pub use self::upstream::{UpstreamObserver, UpstreamOutcome};

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds: from a fast page (5 ms) to a slow upstream call near its timeout.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    webhook_messages: Family<KindLabels, Counter>,
    webhook_retries: Counter,
    webhook_refused: Family<ReasonLabels, Counter>,
    payments: Family<PaymentLabels, Counter>,
    orders_started: Family<ChannelLabels, Counter>,
    notifications_refused: Family<RefusalLabels, Counter>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_duration: Histograms<UpstreamApiLabels>,
    token_refreshes: Counter,
    job_runs: Family<JobRunLabels, Counter>,
    job_last_success: Family<JobLabels, Gauge>,
    orders_paid_unapplied: Gauge,
    reconciliation_mismatches: Gauge,
    ready: Gauge,
    scrape_errors: Family<QueryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("campuspay");
        let metrics = Metrics {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            webhook_messages: Family::default(),
            webhook_retries: Counter::default(),
            webhook_refused: Family::default(),
            payments: Family::default(),
            orders_started: Family::default(),
            notifications_refused: Family::default(),
            upstream_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(latency_histogram),
            token_refreshes: Counter::default(),
            job_runs: Family::default(),
            job_last_success: Family::default(),
            orders_paid_unapplied: Gauge::default(),
            reconciliation_mismatches: Gauge::default(),
            ready: Gauge::default(),
            scrape_errors: Family::default(),
            registry: Registry::default(),
        };
        metrics.register(&mut registry);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Names every metric in `registry` (the metrics are handles: the registry and
    /// the fields share their values).
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            self.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template and method",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        registry.register(
            "webhook_messages",
            "Official-account messages answered for the first time, by kind",
            self.webhook_messages.clone(),
        );
        registry.register(
            "webhook_retries",
            "Copies of a message already seen (WeChat's retries), answered from the cache",
            self.webhook_retries.clone(),
        );
        registry.register(
            "webhook_refused",
            "Webhook requests refused, by reason",
            self.webhook_refused.clone(),
        );
        registry.register(
            "payments",
            "Verified payment notifications, by channel and what applying them came to",
            self.payments.clone(),
        );
        registry.register(
            "orders_started",
            "Payments started by students (an order made, or an open one taken up again), by channel",
            self.orders_started.clone(),
        );
        registry.register(
            "notifications_refused",
            "Payment notifications refused, by channel and reason",
            self.notifications_refused.clone(),
        );
        registry.register(
            "upstream_requests",
            "Calls to WeChat, WeChat Pay, Alipay and the bank, by API and outcome",
            self.upstream_requests.clone(),
        );
        registry.register_with_unit(
            "upstream_request_duration",
            "Time of a call to an upstream API, answered or not",
            Unit::Seconds,
            self.upstream_duration.clone(),
        );
        registry.register(
            "wechat_token_refreshes",
            "Access tokens fetched from WeChat (not taken from the cache)",
            self.token_refreshes.clone(),
        );
        registry.register(
            "job_runs",
            "Runs of the background jobs, by job and result",
            self.job_runs.clone(),
        );
        registry.register(
            "job_last_success_timestamp_seconds",
            "When each job last succeeded (Unix time); absent until it has",
            self.job_last_success.clone(),
        );
        registry.register(
            "orders_paid_unapplied",
            "Orders the channel reports paid that did not settle their items (open exceptions)",
            self.orders_paid_unapplied.clone(),
        );
        registry.register(
            "reconciliation_mismatches_open",
            "Mismatched lines of each channel's latest finished reconciliation",
            self.reconciliation_mismatches.clone(),
        );
        registry.register(
            "ready",
            "1 when the database and the cache answered at the last scrape (as /readyz)",
            self.ready.clone(),
        );
        registry.register(
            "scrape_errors",
            "Database figures that could not be read for a scrape, by query",
            self.scrape_errors.clone(),
        );
    }

    /// The exposition, ending in `# EOF`.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    pub fn http_request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        let route = route.to_owned();
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// A webhook message answered for the first time; `kind` from a bounded list.
    pub fn webhook_message(&self, kind: &'static str) {
        self.webhook_messages
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    pub fn webhook_retry(&self) {
        self.webhook_retries.inc();
    }

    pub fn webhook_refused(&self, reason: &'static str) {
        self.webhook_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A verified payment notification and what applying it came to.
    pub fn payment(&self, channel: &'static str, outcome: &'static str) {
        self.payments
            .get_or_create(&PaymentLabels { channel, outcome })
            .inc();
    }

    pub fn order_started(&self, channel: &'static str) {
        self.orders_started
            .get_or_create(&ChannelLabels { channel })
            .inc();
    }

    /// A refused payment notification; `reason` is the refusal's `label()`.
    pub fn notification_refused(&self, channel: &'static str, reason: &'static str) {
        tracing::debug!(channel, reason, "notification refused");
        self.notifications_refused
            .get_or_create(&RefusalLabels { channel, reason })
            .inc();
    }

    fn upstream_call(
        &self,
        upstream: &'static str,
        api: &'static str,
        outcome: UpstreamOutcome,
        took: Duration,
    ) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels {
                upstream,
                api,
                outcome,
            })
            .inc();
        self.upstream_duration
            .get_or_create(&UpstreamApiLabels { upstream, api })
            .observe(took.as_secs_f64());
    }

    fn token_refreshed(&self) {
        self.token_refreshes.inc();
    }

    /// A job's run ended; a success also sets its last-success time.
    pub fn job_run(&self, job: &'static str, result: JobResult, now: DateTime<Utc>) {
        self.job_runs
            .get_or_create(&JobRunLabels {
                job_name: job,
                result,
            })
            .inc();
        if result == JobResult::Ok {
            self.job_last_success
                .get_or_create(&JobLabels { job_name: job })
                .set(now.timestamp());
        }
    }

    pub fn set_orders_paid_unapplied(&self, count: u64) {
        self.orders_paid_unapplied.set(saturating_i64(count));
    }

    pub fn set_reconciliation_mismatches(&self, count: u64) {
        self.reconciliation_mismatches.set(saturating_i64(count));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// A database figure could not be read for this scrape; its gauge keeps its
    /// last value.
    pub fn scrape_error(&self, query: &'static str) {
        self.scrape_errors
            .get_or_create(&QueryLabels { query })
            .inc();
    }

    // Readers, for tests and the console.

    pub fn webhook_messages(&self, kind: &'static str) -> u64 {
        self.webhook_messages
            .get_or_create(&KindLabels { kind })
            .get()
    }

    pub fn webhook_retries(&self) -> u64 {
        self.webhook_retries.get()
    }

    pub fn webhook_refusals(&self, reason: &'static str) -> u64 {
        self.webhook_refused
            .get_or_create(&ReasonLabels { reason })
            .get()
    }

    pub fn notifications_refused(&self, channel: &'static str, reason: &'static str) -> u64 {
        self.notifications_refused
            .get_or_create(&RefusalLabels { channel, reason })
            .get()
    }
}

fn saturating_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_with_the_prefix_unit_and_total_suffix() {
        let metrics = Metrics::new();
        metrics.http_request("/orders/{no}", "GET", 200, Duration::from_millis(3));
        metrics.payment("wechat", "applied");
        metrics.notification_refused("alipay", "signature");
        metrics.job_run("order_sweep", JobResult::Ok, DateTime::UNIX_EPOCH);
        let text = metrics.encode().unwrap();
        for expected in [
            r#"campuspay_http_requests_total{route="/orders/{no}",method="GET",status="200"} 1"#,
            r#"campuspay_http_request_duration_seconds_count{route="/orders/{no}",method="GET"} 1"#,
            r#"campuspay_payments_total{channel="wechat",outcome="applied"} 1"#,
            r#"campuspay_notifications_refused_total{channel="alipay",reason="signature"} 1"#,
            r#"campuspay_job_runs_total{job_name="order_sweep",result="ok"} 1"#,
            r#"campuspay_job_last_success_timestamp_seconds{job_name="order_sweep"} 0"#,
            "campuspay_orders_paid_unapplied 0",
            "# EOF",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }

    #[test]
    fn each_app_counts_apart() {
        let (one, two) = (Metrics::new(), Metrics::new());
        one.webhook_message("text");
        assert_eq!(one.webhook_messages("text"), 1);
        assert_eq!(two.webhook_messages("text"), 0);
    }

    #[test]
    fn a_failed_run_leaves_the_last_success_alone() {
        let metrics = Metrics::new();
        metrics.job_run("reconcile", JobResult::Failed, DateTime::UNIX_EPOCH);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"campuspay_job_runs_total{job_name="reconcile",result="failed"} 1"#)
        );
        assert!(!text.contains(r#"job_last_success_timestamp_seconds{job_name="reconcile"}"#));
    }
}
