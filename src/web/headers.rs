//! Headers every answer carries, whichever handler wrote it: no framing (clickjacking
//! on the pay and refund buttons), no content sniffing, no full URLs leaked to other
//! sites, and no caching of a page that nobody said may be cached.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Adds the headers after the handler has answered; a header the handler set itself
/// (an asset's `Cache-Control: public`) is kept.
pub async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    apply(response.headers_mut());
    response
}

fn apply(headers: &mut HeaderMap) {
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // Pages show a student's details, a form's token or an order: never cached unless
    // the handler said so (only static assets do).
    if !headers.contains_key(CACHE_CONTROL) && is_page(headers) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// HTML, CSV and JSON answers are pages in this sense; images and scripts say their own.
fn is_page(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        // Redirects and empty answers: nothing to cache either.
        return true;
    };
    ["text/html", "text/csv", "application/json", "text/plain"]
        .iter()
        .any(|page| content_type.starts_with(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_gets_the_three_headers_and_pages_are_not_cached() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        apply(&mut headers);
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[REFERRER_POLICY], "same-origin");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
    }

    #[test]
    fn an_asset_keeps_its_own_cache_control() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/css"));
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        apply(&mut headers);
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=3600");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
    }
}
