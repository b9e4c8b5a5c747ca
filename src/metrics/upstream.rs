//! Upstream calls as the clients see them: which API, how it ended, how long it took.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use super::Metrics;

/// How a call to an upstream API ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// Answered, and the answer was a success.
    Ok,
    /// No answer in time.
    Timeout,
    /// No answer: connection refused or reset, DNS, TLS.
    Unreachable,
    /// An HTTP 4xx answer.
    Http4xx,
    /// An HTTP 5xx answer.
    Http5xx,
    /// Answered and refused (an error code of the API's own).
    Refused,
    /// An answer whose signature did not verify.
    Unverifiable,
    /// An answer we could not read.
    Undecodable,
}

impl UpstreamOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamOutcome::Ok => "ok",
            UpstreamOutcome::Timeout => "timeout",
            UpstreamOutcome::Unreachable => "unreachable",
            UpstreamOutcome::Http4xx => "http_4xx",
            UpstreamOutcome::Http5xx => "http_5xx",
            UpstreamOutcome::Refused => "refused",
            UpstreamOutcome::Unverifiable => "unverifiable",
            UpstreamOutcome::Undecodable => "undecodable",
        }
    }

    /// A transport error: timeout, an HTTP status (from `error_for_status`) or no
    /// answer at all.
    pub fn of_transport(error: &reqwest::Error) -> UpstreamOutcome {
        if error.is_timeout() {
            return UpstreamOutcome::Timeout;
        }
        match error.status() {
            Some(status) => UpstreamOutcome::of_status(status.as_u16()),
            None if error.is_decode() || error.is_body() => UpstreamOutcome::Undecodable,
            None => UpstreamOutcome::Unreachable,
        }
    }

    /// An answer by its HTTP status alone.
    pub fn of_status(status: u16) -> UpstreamOutcome {
        match status {
            200..=399 => UpstreamOutcome::Ok,
            500..=599 => UpstreamOutcome::Http5xx,
            _ => UpstreamOutcome::Http4xx,
        }
    }
}

impl EncodeLabelValue for UpstreamOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// What an upstream client reports its calls to. Cheap to clone; the default reports
/// nowhere (clients built by the CLI, benches and unit tests).
#[derive(Clone, Debug, Default)]
pub struct UpstreamObserver {
    metrics: Option<Arc<Metrics>>,
    /// `wechat`, `wechatpay`, `alipay` or `abc`.
    upstream: &'static str,
}

impl UpstreamObserver {
    pub fn new(metrics: Arc<Metrics>, upstream: &'static str) -> UpstreamObserver {
        UpstreamObserver {
            metrics: Some(metrics),
            upstream,
        }
    }

    /// One call of `api` (a short stable name such as `jsapi` or `token`).
    pub fn call(&self, api: &'static str, outcome: UpstreamOutcome, took: Duration) {
        if outcome != UpstreamOutcome::Ok {
            tracing::debug!(
                upstream = self.upstream,
                api,
                outcome = outcome.as_str(),
                "upstream call failed"
            );
        }
        if let Some(metrics) = &self.metrics {
            metrics.upstream_call(self.upstream, api, outcome, took);
        }
    }

    /// A fresh access token was fetched.
    pub fn token_refreshed(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.token_refreshed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_class() {
        assert_eq!(UpstreamOutcome::of_status(200), UpstreamOutcome::Ok);
        assert_eq!(UpstreamOutcome::of_status(204), UpstreamOutcome::Ok);
        assert_eq!(UpstreamOutcome::of_status(404), UpstreamOutcome::Http4xx);
        assert_eq!(UpstreamOutcome::of_status(503), UpstreamOutcome::Http5xx);
    }

    #[test]
    fn calls_are_counted_under_the_upstream_and_api() {
        let metrics = Arc::new(Metrics::new());
        let observer = UpstreamObserver::new(metrics.clone(), "wechatpay");
        observer.call("jsapi", UpstreamOutcome::Ok, Duration::from_millis(20));
        observer.call("jsapi", UpstreamOutcome::Timeout, Duration::from_secs(10));
        observer.token_refreshed();
        UpstreamObserver::default().call("jsapi", UpstreamOutcome::Ok, Duration::ZERO);
        let text = metrics.encode().unwrap();
        for expected in [
            r#"campuspay_upstream_requests_total{upstream="wechatpay",api="jsapi",outcome="ok"} 1"#,
            r#"campuspay_upstream_requests_total{upstream="wechatpay",api="jsapi",outcome="timeout"} 1"#,
            r#"campuspay_upstream_request_duration_seconds_count{upstream="wechatpay",api="jsapi"} 2"#,
            "campuspay_wechat_token_refreshes_total 1",
        ] {
            assert!(text.contains(expected), "{expected} missing from\n{text}");
        }
    }
}
