//! `/wechat`: the official account's server URL.
//!
//! WeChat waits 5 seconds and retries three times, so the request path does only what
//! is at hand: verify, parse, dedup in the cache, answer. Writes and upstream calls go
//! to background work.

mod answers;
mod labels;
mod verify;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;

use self::answers::{Answer, Context, Effect};
use self::verify::{Rejection, VerifiedMessage, WebhookQuery};
use super::AppState;
use crate::wechat::reply::SUCCESS;

pub use self::verify::MAX_BODY_BYTES;

/// How long a message key is remembered. WeChat retries within about 15 s; the window
/// also covers the timestamp freshness check, so a replay cannot slip past both.
const DEDUP_TTL: Duration = Duration::from_secs(600);
/// How long a retry waits for the first copy's answer before settling for `success`.
const RETRY_WAIT: Duration = Duration::from_millis(4000);
const RETRY_POLL: Duration = Duration::from_millis(20);

/// Marks a message whose answer is still being prepared.
const IN_PROGRESS: &str = "";
/// Prefix of a stored answer that is a passive reply (the rest is the reply XML).
const STORED_REPLY: &str = "reply:";
const STORED_SUCCESS: &str = "success";

pub fn router() -> Router<AppState> {
    Router::new().route("/wechat", get(verify_server).post(receive))
}

/// The server check: echo `echostr` raw when the signature is right.
async fn verify_server(
    State(state): State<AppState>,
    Query(query): Query<WebhookQuery>,
) -> Response {
    match verify::server_check(&state, &query) {
        Ok(echo) => ([(header::CONTENT_TYPE, "text/plain")], echo).into_response(),
        Err(rejection) => {
            state.metrics.webhook_refused(rejection.label());
            rejection.into_response()
        }
    }
}

async fn receive(
    State(state): State<AppState>,
    query: Query<WebhookQuery>,
    body: Body,
) -> Response {
    let verified = match verify::verified_message(&state, &query, body).await {
        Ok(verified) => verified,
        Err(rejection) => {
            state.metrics.webhook_refused(rejection.label());
            return rejection.into_response();
        }
    };
    let stored = answer_once(&state, &verified).await;
    respond(&state, &verified, stored)
}

/// Answers a message once: the first copy computes the answer and performs its effect;
/// copies (WeChat's retries, possibly on another instance) get the same stored answer.
async fn answer_once(state: &AppState, verified: &VerifiedMessage) -> String {
    let key = format!("wechat:msg:{}", verified.message.dedup_key());
    match state
        .cache
        .set_if_absent(&key, IN_PROGRESS, DEDUP_TTL)
        .await
    {
        Ok(true) => {
            let kind = labels::kind_label(&verified.message.kind);
            state.metrics.webhook_message(kind);
            let stored = answer_and_act(state, verified);
            if let Err(error) = state.cache.set(&key, &stored, DEDUP_TTL).await {
                tracing::warn!(%error, "cannot store the webhook answer for retries");
            }
            stored
        }
        Ok(false) => {
            state.metrics.webhook_retry();
            wait_for_first_answer(state, &key).await
        }
        Err(error) => {
            // Without the cache a retry may act twice; the effects are idempotent
            // upserts, and answering beats WeChat's "暂时无法提供服务".
            tracing::warn!(%error, "webhook dedup unavailable; answering without it");
            state
                .metrics
                .webhook_message(labels::kind_label(&verified.message.kind));
            answer_and_act(state, verified)
        }
    }
}

async fn wait_for_first_answer(state: &AppState, key: &str) -> String {
    let deadline = tokio::time::Instant::now() + RETRY_WAIT;
    while tokio::time::Instant::now() < deadline {
        match state.cache.get(key).await {
            Ok(Some(stored)) if stored != IN_PROGRESS => return stored,
            Ok(_) => tokio::time::sleep(RETRY_POLL).await,
            Err(_) => break,
        }
    }
    STORED_SUCCESS.to_owned()
}

/// Computes the answer, hands its effect to background work, and returns the answer
/// in the form kept for retries.
fn answer_and_act(state: &AppState, verified: &VerifiedMessage) -> String {
    let ctx = Context {
        school_name: &state.config.school_name,
        h5_url: state.config.public_link("/h5"),
        portal_url: state.config.public_link("/"),
    };
    let message = &verified.message;
    let Answer { reply, effect } = answers::answer(message, &ctx);
    if let Some(effect) = effect {
        perform_in_background(state, effect);
    }
    match reply {
        Some(reply) => {
            let create_time = state.clock.now().timestamp();
            let xml = reply.to_xml(&message.from_user_name, &message.to_user_name, create_time);
            format!("{STORED_REPLY}{xml}")
        }
        None => STORED_SUCCESS.to_owned(),
    }
}

fn perform_in_background(state: &AppState, effect: Effect) {
    let store = state.store.clone();
    let writes = state.background_writes.clone();
    state.background.spawn(async move {
        // Waiting here, not in the pool: a burst of subscribes must not time out.
        let Ok(_permit) = writes.acquire_owned().await else {
            return;
        };
        let mut delays = EFFECT_RETRY_DELAYS.iter();
        loop {
            let result = match &effect {
                Effect::Subscribed { openid, at, scene } => store
                    .record_subscribe(openid, *at, scene.as_deref())
                    .await
                    .map(|_| ()),
                Effect::Unsubscribed { openid, at } => {
                    store.record_unsubscribe(openid, *at).await.map(|_| ())
                }
            };
            match (result, delays.next()) {
                (Ok(()), _) => return,
                (Err(error), Some(delay)) => {
                    tracing::warn!(%error, "cannot record a follower event yet; retrying");
                    tokio::time::sleep(*delay).await;
                }
                (Err(error), None) => {
                    // The daily follower check reads WeChat's list and repairs this.
                    tracing::error!(%error, "cannot record a follower event");
                    return;
                }
            }
        }
    });
}

/// Waits before retrying a follower write that failed (the database restarting, a
/// lock held by an import).
const EFFECT_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
];

/// Sends the stored answer, encrypted when the message came encrypted.
fn respond(state: &AppState, verified: &VerifiedMessage, stored: String) -> Response {
    let Some(reply_xml) = stored.strip_prefix(STORED_REPLY) else {
        return ([(header::CONTENT_TYPE, "text/plain")], SUCCESS).into_response();
    };
    let crypto = state
        .account
        .as_ref()
        .and_then(|account| Some((account, account.crypto.as_ref()?)));
    let body = match crypto {
        // In safe mode the reply must be encrypted; in compatible mode either is
        // accepted, and encrypting whenever the message was encrypted keeps one rule.
        Some((account, crypto)) if verified.encrypted => crypto.encrypted_reply_xml(
            account.token.expose_secret(),
            reply_xml,
            &verified.timestamp,
            &verified.nonce,
        ),
        _ => reply_xml.to_owned(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::info!(reason = %self, status = status.as_u16(), "webhook request refused");
        (
            status,
            [(header::CONTENT_TYPE, "text/plain")],
            self.to_string(),
        )
            .into_response()
    }
}
