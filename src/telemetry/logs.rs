//! Logging: JSON lines when not on a terminal (or AUTHD_LOG_FORMAT=json), pretty otherwise.
//! Level from RUST_LOG (default `info`). Secrets never reach a log: tokens, passwords and
//! cookies have redacting `Debug` impls and are never recorded as fields.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Where log lines go: the server logs to stdout; the admin commands (`migrate`, `user …`,
/// `sessions …`, `keys …`) log to stderr, so their stdout is only their result
/// (`authd user list > users.tsv` holds users, not log lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Stderr,
}

/// Installs the global subscriber: `format` (default: pretty when `target` is a terminal, else
/// JSON lines), level from RUST_LOG (default `info,sqlx=warn`).
pub fn init(format: Option<LogFormat>, target: LogTarget) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let on_terminal = match target {
        LogTarget::Stdout => std::io::stdout().is_terminal(),
        LogTarget::Stderr => std::io::stderr().is_terminal(),
    };
    let format = format.unwrap_or(if on_terminal {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let writer = move || -> Box<dyn std::io::Write> {
        match target {
            LogTarget::Stdout => Box::new(std::io::stdout()),
            LogTarget::Stderr => Box::new(std::io::stderr()),
        }
    };
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: a second call (tests, embedded use) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(writer)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(writer).compact())
            .try_init(),
    };
}

/// The request id is the caller's `X-Request-Id` if it is short and plain, else a fresh UUID;
/// it is echoed back on the response and recorded on the request's log span.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn acceptable_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The caller's request id if acceptable, else a new one.
pub fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| acceptable_request_id(s))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The span every request's log lines carry. `user_id`/`session_id` are filled in by the
/// authentication extractor once known. No headers, no body, no query string: nothing secret.
pub fn request_span(request_id: &str, method: &axum::http::Method, route: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        user_id = tracing::field::Empty,
        session_id = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_plain_and_short() {
        assert!(super::acceptable_request_id("abc-123_x.y:z"));
        assert!(!super::acceptable_request_id(""));
        assert!(!super::acceptable_request_id("a b"));
        assert!(!super::acceptable_request_id("<script>"));
        assert!(!super::acceptable_request_id(&"a".repeat(129)));
    }
}
