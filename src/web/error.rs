//! The one error type handlers return. Internals are logged with the request's span
//! and never shown: the person sees a short message in the pages' language.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::session::SessionError;
use crate::cache::CacheError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A bounded resource (password hashing) had no turn free in time.
    #[error("busy: {0}")]
    Busy(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The failures handlers pass up with `?`: each is internal (logged, never shown),
/// kept whole so [`is_cache_outage`] can still find a cache outage in its chain.
macro_rules! internal_from {
    ($($error:ty),+ $(,)?) => {$(
        impl From<$error> for AppError {
            fn from(error: $error) -> Self {
                AppError::Internal(anyhow::Error::from(error))
            }
        }
    )+};
}

internal_from!(StoreError, SessionError, CacheError, serde_json::Error);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "页面不存在".to_owned()),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "请先登录".to_owned()),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "没有权限".to_owned()),
            AppError::BadRequest(reason) => (StatusCode::BAD_REQUEST, reason.clone()),
            AppError::Busy(what) => {
                tracing::warn!(what, "busy: request refused");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "系统繁忙，请稍后再试".to_owned(),
                )
            }
            AppError::Internal(error) if is_cache_outage(error) => {
                // Sessions, captchas and tokens live in the cache: nothing to do but wait.
                tracing::warn!(error.cause_chain = ?error, "cache unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "系统繁忙，请稍后再试".to_owned(),
                )
            }
            AppError::Internal(error) => {
                tracing::error!(error.cause_chain = ?error, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "系统繁忙，请稍后再试".to_owned(),
                )
            }
        };
        (status, message).into_response()
    }
}

/// Whether the cache being down is what failed (directly or under a session).
fn is_cache_outage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<CacheError>()
            || matches!(
                cause.downcast_ref::<SessionError>(),
                Some(SessionError::Cache(_))
            )
    })
}
