//! The console's students pages (being built).

use axum::Router;

use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
