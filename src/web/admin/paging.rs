//! The console lists' `?page=`: one bounded number for every list, read leniently.
//!
//! A page number comes straight from the address bar, so it is never trusted as a
//! `u64` to multiply: `?page=18446744073709551615` once wrapped the offset and panicked
//! inside the SQL layer. Here a page is 1 ..= [`MAX_PAGE`]; zero, negative numbers and
//! garbage read as page 1, anything larger as the last page we serve (an empty list).

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// No console list has anywhere near this many pages (a million pages of 200 rows):
/// it only keeps every offset small enough for `i64` (SQL) and `usize` alike.
pub const MAX_PAGE: u64 = 1_000_000;

/// A page number in 1 ..= [`MAX_PAGE`]; page 1 when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageNumber(u64);

impl Default for PageNumber {
    fn default() -> Self {
        PageNumber(1)
    }
}

impl PageNumber {
    /// Reads a page as typed in a URL: digits, bounded; anything else is page 1.
    pub fn parse(text: &str) -> PageNumber {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return PageNumber::default();
        }
        // All digits: only too many of them can fail to parse, and those are huge.
        Self::bounded(text.parse().unwrap_or(MAX_PAGE))
    }

    /// `number` held to 1 ..= [`MAX_PAGE`].
    pub fn bounded(number: u64) -> PageNumber {
        PageNumber(number.clamp(1, MAX_PAGE))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The rows to skip before this page. Bounded: at most `MAX_PAGE * per_page`,
    /// saturating rather than wrapping should a caller pass an absurd `per_page`.
    pub fn offset(self, per_page: u64) -> u64 {
        (self.0 - 1).saturating_mul(per_page)
    }
}

impl<'de> Deserialize<'de> for PageNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PageVisitor)
    }
}

/// Accepts what a query string or a form gives (text) and plain numbers; never fails,
/// so a bad `page` cannot turn a list into an error page.
struct PageVisitor;

impl Visitor<'_> for PageVisitor {
    type Value = PageNumber;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a page number")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<PageNumber, E> {
        Ok(PageNumber::parse(text))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<PageNumber, E> {
        Ok(PageNumber::bounded(number))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<PageNumber, E> {
        Ok(PageNumber::bounded(u64::try_from(number).unwrap_or(1)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<PageNumber, E> {
        Ok(PageNumber::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<PageNumber, E> {
        Ok(PageNumber::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<PageNumber, E> {
        Ok(PageNumber::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    struct Query {
        #[serde(default)]
        page: PageNumber,
    }

    fn page_of(query: &str) -> u64 {
        let uri: axum::http::Uri = format!("/admin/x?{query}").parse().expect("uri");
        axum::extract::Query::<Query>::try_from_uri(&uri)
            .expect("a page never fails to read")
            .0
            .page
            .get()
    }

    #[test]
    fn pages_are_read_bounded_and_leniently() {
        assert_eq!(page_of(""), 1);
        assert_eq!(page_of("page="), 1);
        assert_eq!(page_of("page=3"), 3);
        assert_eq!(page_of("page=%203%20"), 3);
        assert_eq!(page_of("page=0"), 1);
        assert_eq!(page_of("page=-1"), 1);
        assert_eq!(page_of("page=-9223372036854775808"), 1);
        assert_eq!(page_of("page=abc"), 1);
        assert_eq!(page_of("page=1e3"), 1);
        assert_eq!(page_of("page=18446744073709551615"), MAX_PAGE);
        assert_eq!(page_of("page=99999999999999999999999999"), MAX_PAGE);
    }

    #[test]
    fn offsets_never_wrap_and_fit_sql() {
        assert_eq!(PageNumber::default().offset(50), 0);
        assert_eq!(PageNumber::bounded(3).offset(50), 100);
        let last = PageNumber::bounded(u64::MAX);
        assert!(i64::try_from(last.offset(200)).is_ok());
        assert_eq!(last.offset(u64::MAX), u64::MAX, "saturates, never wraps");
    }
}
