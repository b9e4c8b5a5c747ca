//! Logging. One subscriber for the process, filtered by `RUST_LOG` (default `info`),
//! written as text for a terminal or, with `CAMPUSPAY_LOG_FORMAT=json`, one JSON object
//! per line for journald or a log shipper. Spans carry the request id and matched path;
//! never a password, a full ID number or a key.
//!
//! Text lines escape every control character in every field (a user name holding a
//! line break would otherwise write a forged line of its own), and are coloured only
//! when written to a terminal: a file or journald gets plain text. JSON escapes by
//! itself.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line, with the fields of every enclosing span (the request
    /// id, the order number) beside the event's own.
    Json,
}

impl LogFormat {
    /// From `CAMPUSPAY_LOG_FORMAT`: `json`, or text for anything else (a typo must not
    /// silence the logs of a starting service).
    pub fn from_variable(value: Option<&str>) -> LogFormat {
        match value.map(str::trim) {
            Some(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs the global subscriber once; later calls (tests start many apps) do nothing.
pub fn init(default_filter: &str) {
    // `.env` may set RUST_LOG and the format; its values never override the environment.
    let _ = dotenvy::dotenv();
    let format = LogFormat::from_variable(std::env::var("CAMPUSPAY_LOG_FORMAT").ok().as_deref());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let colour = std::io::stderr().is_terminal();
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        filter,
        colour,
        std::io::stderr,
    ));
}

/// The subscriber for `format`, writing to `writer` (stderr in the program, a buffer
/// in tests), with colour codes only when `colour` (a terminal).
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    colour: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(
            builder
                .with_ansi(colour)
                .fmt_fields(
                    debug_fn(|writer: &mut Writer<'_>, field, value| {
                        let text = escape_controls(&format!("{value:?}"));
                        if field.name() == "message" {
                            writer.write_str(&text)
                        } else {
                            write!(writer, "{}={text}", field.name())
                        }
                    })
                    .delimited(" "),
                )
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .finish(),
        ),
    }
}

/// `text` with every control character (line breaks, tabs, escape codes, C1 codes)
/// written as a Rust escape, so that one event is always one line.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn the_format_is_json_only_when_asked() {
        assert_eq!(LogFormat::from_variable(Some("json")), LogFormat::Json);
        assert_eq!(LogFormat::from_variable(Some(" JSON ")), LogFormat::Json);
        assert_eq!(LogFormat::from_variable(Some("text")), LogFormat::Text);
        assert_eq!(LogFormat::from_variable(Some("jsno")), LogFormat::Text);
        assert_eq!(LogFormat::from_variable(None), LogFormat::Text);
    }

    #[test]
    fn json_lines_carry_the_request_span_fields() {
        let buffer = Buffer::default();
        let subscriber = subscriber(
            LogFormat::Json,
            EnvFilter::new("info"),
            false,
            buffer.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                path = "/pay/notify/wechat",
                request_id = "req-notify",
                origin_request_id = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("origin_request_id", "req-page");
            tracing::info!(out_trade_no = "CP2026120100000001", "payment applied");
        });
        let written =
            String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("UTF-8 logs");
        let line: serde_json::Value =
            serde_json::from_str(written.trim()).expect("one JSON object per line");
        assert_eq!(line["message"], "payment applied");
        assert_eq!(line["out_trade_no"], "CP2026120100000001");
        assert_eq!(line["level"], "INFO");
        let request = &line["spans"][0];
        assert_eq!(request["request_id"], "req-notify");
        assert_eq!(request["origin_request_id"], "req-page");
    }

    fn text_written(colour: bool, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(
            LogFormat::Text,
            EnvFilter::new("info"),
            colour,
            buffer.clone(),
        );
        tracing::subscriber::with_default(subscriber, log);
        let written = buffer.0.lock().expect("not poisoned").clone();
        String::from_utf8(written).expect("UTF-8 logs")
    }

    #[test]
    fn a_line_break_in_a_logged_value_cannot_forge_a_line() {
        let forged =
            "mallory\n2026-12-07T00:00:00.000000Z  INFO admin signed in username=admin\r\u{1b}[2K";
        let written = text_written(false, || {
            tracing::warn!(username = %forged, "console sign-in refused: {}", forged);
        });
        assert_eq!(
            written.lines().count(),
            1,
            "one event, one line: {written:?}"
        );
        assert!(
            written.contains("username=mallory\\n2026-12-07"),
            "{written:?}"
        );
        assert!(
            !written.contains('\r') && !written.contains('\u{1b}'),
            "{written:?}"
        );
    }

    #[test]
    fn text_written_to_a_file_has_no_colour_codes() {
        let plain = text_written(false, || tracing::info!(order = "CP1", "payment applied"));
        assert!(plain.contains("payment applied order=\"CP1\""), "{plain:?}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        let coloured = text_written(true, || tracing::info!("payment applied"));
        assert!(
            coloured.contains('\u{1b}'),
            "a terminal gets colours: {coloured:?}"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_other_text_is_kept() {
        assert_eq!(escape_controls("张三 O'Neil"), "张三 O'Neil");
        assert_eq!(
            escape_controls("a\nb\tc\u{1b}d\u{85}"),
            "a\\nb\\tc\\u{1b}d\\u{85}"
        );
    }
}
