//! The request id: `X-Request-Id` as nginx sets it (`$request_id`), or as the program's
//! own layer makes it when a request arrives without one. It names the request in every
//! log line of its span, and a new order keeps it so that the payment's notification,
//! arriving later from the channel, names the page request it started from.

use axum::http::HeaderMap;

pub const HEADER: &str = "x-request-id";

/// Longest id kept; nginx's are 32 hex digits, ours UUIDs (36).
const MAX_LEN: usize = 64;

/// The request's id, when it is a short printable token (anything else a client sent is
/// not worth keeping).
pub fn of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let usable = !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    usable.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers_with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER,
            HeaderValue::from_str(value).expect("a valid header value"),
        );
        headers
    }

    #[test]
    fn keeps_nginx_and_uuid_ids() {
        let nginx = "4f0c9a1e2b3d4c5e6f708192a3b4c5d6";
        assert_eq!(of(&headers_with(nginx)), Some(nginx));
        let uuid = "0b1f6d2e-8c1a-4e55-9a43-3f4f0e1c2d3b";
        assert_eq!(of(&headers_with(uuid)), Some(uuid));
    }

    #[test]
    fn drops_what_is_not_a_short_token() {
        assert_eq!(of(&HeaderMap::new()), None);
        assert_eq!(of(&headers_with("")), None);
        assert_eq!(of(&headers_with("a b")), None);
        assert_eq!(of(&headers_with("x\"; drop table")), None);
        assert_eq!(of(&headers_with(&"a".repeat(65))), None);
    }
}
