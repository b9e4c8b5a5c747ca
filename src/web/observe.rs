//! Watching the service from outside: the request metrics middleware and
//! `GET /metrics` (Prometheus scrapes it; nginx lets only the monitoring host reach it).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::AppState;
use crate::metrics::{self, Metrics, method_label};
use crate::store::PaymentChannel;

/// Requests no route matched share this label, so scanners cannot add series.
const UNMATCHED: &str = "unmatched";

/// A figure the scrape reads from the database gives up after this long, so a slow
/// database shows as a scrape error, not as a scrape timeout.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts and times every request by its route template (`/orders/{no}`), never by
/// the path it was asked for.
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    // A clone of the matched path is a reference count, not a copy of the string.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    metrics.http_request(route, method, status, started.elapsed());
    response
}

/// `GET /metrics`: the OpenMetrics text. Database figures that cannot be read in time
/// keep their last value and count a scrape error; the scrape itself still answers.
pub async fn scrape(State(state): State<AppState>) -> Response {
    refresh_database_figures(&state).await;
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The payment channel as a metric label (as it is stored).
pub fn payment_channel_label(channel: PaymentChannel) -> &'static str {
    match channel {
        PaymentChannel::WechatJsapi => "wechat_jsapi",
        PaymentChannel::WechatNative => "wechat_native",
        PaymentChannel::Alipay => "alipay",
        PaymentChannel::AbcPage => "abc_page",
        PaymentChannel::AbcScan => "abc_scan",
    }
}

async fn refresh_database_figures(state: &AppState) {
    let store = &state.store;
    let (ready, unapplied, mismatches) = tokio::join!(
        tokio::time::timeout(QUERY_TIMEOUT, async {
            store.ping().await.is_ok() && state.cache.ping().await.is_ok()
        }),
        tokio::time::timeout(QUERY_TIMEOUT, store.count_open_order_exceptions()),
        tokio::time::timeout(QUERY_TIMEOUT, store.count_open_reconciliation_mismatches()),
    );
    let metrics = &state.metrics;
    metrics.set_ready(ready.unwrap_or(false));
    match unapplied {
        Ok(Ok(count)) => metrics.set_orders_paid_unapplied(count),
        failed => scrape_failed(metrics, "orders_paid_unapplied", failed),
    }
    match mismatches {
        Ok(Ok(count)) => metrics.set_reconciliation_mismatches(count),
        failed => scrape_failed(metrics, "reconciliation_mismatches_open", failed),
    }
}

fn scrape_failed<E: std::fmt::Debug>(
    metrics: &Metrics,
    query: &'static str,
    failed: Result<Result<u64, E>, tokio::time::error::Elapsed>,
) {
    match failed {
        Ok(Err(error)) => tracing::warn!(query, ?error, "cannot read a figure for /metrics"),
        Err(_) => tracing::warn!(query, "a figure for /metrics took too long; skipped"),
        Ok(Ok(_)) => return,
    }
    metrics.scrape_error(query);
}
