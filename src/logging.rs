//! Log set-up: plain text, or JSON when Lambda's log format is JSON; level from
//! AWS_LAMBDA_LOG_LEVEL or RUST_LOG (default INFO). No ANSI colours: CloudWatch shows
//! them as noise. Lambda stamps the time itself.
//!
//! Other crates' TRACE events never reach the log, whatever the level asked for:
//! the Lambda runtime logs the raw event there (the presigned ResponseURL in it is a
//! credential) and the HTTP stack logs requests. Our own TRACE events stay.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, registry};

/// Whether an event may be logged at all: anything up to DEBUG, and TRACE only from
/// this crate.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    *meta.level() < Level::TRACE || meta.target().starts_with(env!("CARGO_CRATE_NAME"))
}

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let env_filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .without_time();
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        let layer = layer
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter_fn(allowed))
            .with_filter(env_filter);
        registry().with(layer).init();
    } else {
        let layer = layer
            .with_filter(filter_fn(allowed))
            .with_filter(env_filter);
        registry().with(layer).init();
    }
}
