//! Log set-up: plain text, or JSON when Lambda's log format is JSON; level from
//! AWS_LAMBDA_LOG_LEVEL or RUST_LOG (default INFO). No ANSI colours: CloudWatch shows
//! them as noise. Lambda stamps the time itself.
//!
//! Other crates' TRACE events never reach the log, whatever the level asked for:
//! the Lambda runtime logs the raw event there (the presigned ResponseURL in it is a
//! credential) and the HTTP stack logs requests. Our own TRACE events stay.
//!
//! **Lines an operator can join.** A JSON line is one flat object: `level`, `message`,
//! the event's own fields, then the fields of every span it happened in, all at the
//! top level (no `fields`, `span` or `spans` object). The spans are the Lambda
//! runtime's invocation span and this crate's, so every line of an invocation carries:
//! - `requestId`: Lambda's request id (the name Lambda's own JSON logs use), and
//!   `xrayTraceId`: the X-Ray trace header (`Root=1-...;Parent=...;Sampled=...`) when
//!   the invocation has one (`tenantId` too, for a tenant-isolated function). Both come
//!   from lambda_runtime's `Lambda runtime invoke` span around each invocation.
//! - the request's identity, from our spans: for CloudFormation `request_id` (the
//!   CloudFormation RequestId, not Lambda's), `logical_resource_id`, `request_type`;
//!   for EventBridge `event_id`, `detail_type`; and `service`, `target` once known.
//!
//! When names clash, the event's field wins over a span's, and an inner span's over
//! an outer one's. Other crates' spans (the SDK's, at DEBUG) are not flattened: their
//! names could shadow ours. The identity spans are kept whatever the level, so a WARN
//! line at `LogLevel: WARN` is as joinable as an INFO one. Plain text shows the same
//! spans as `name{field=value}:` prefixes. EMF metric lines (src/metrics.rs) carry
//! `requestId` and `xrayTraceId` too, from [`begin_invocation`].

use std::fmt::Result as FmtResult;
use std::sync::Mutex;

use serde_json::{Map, Value};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::{fmt, registry};

/// The Lambda runtime's per-invocation span (`requestId`, `xrayTraceId`) lives here.
const RUNTIME_SPANS: &str = "lambda_runtime::";

/// Whether an event may be logged at all: anything up to DEBUG, and TRACE only from
/// this crate.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    *meta.level() < Level::TRACE || meta.target().starts_with(env!("CARGO_CRATE_NAME"))
}

/// A span whose fields identify the request: this crate's and the Lambda runtime's
/// invocation span, at INFO or less verbose. Always kept, whatever the level; the only
/// spans flattened.
pub fn identity_span(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && *meta.level() <= Level::INFO
        && (meta.target().starts_with(env!("CARGO_CRATE_NAME"))
            || meta.target().starts_with(RUNTIME_SPANS))
}

/// What reaches the log at `level` (a level or EnvFilter directives): the identity
/// spans, and what [`allowed`] and the level let through. The level hints keep the
/// global maximum at the level asked for (INFO at least, for the identity spans), so
/// the DEBUG and TRACE call sites of other crates stay off at the default level.
fn filter(level: &str) -> impl Filter<Registry> {
    let env_filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let identity = filter_fn(identity_span).with_max_level_hint(Level::INFO);
    let allowed = filter_fn(allowed).with_max_level_hint(Level::TRACE);
    identity.or(allowed.and(env_filter))
}

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let layer = fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .without_time();
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        let layer = layer
            .fmt_fields(JsonFields::new())
            .event_format(TopLevelJson)
            .with_filter(filter(&level));
        registry().with(layer).init();
    } else {
        registry().with(layer.with_filter(filter(&level))).init();
    }
}

/// One flat JSON object per event (see the module documentation). Span fields are
/// kept by tracing-subscriber as JSON text (`JsonFields`); they are parsed back and
/// merged, first name wins, from the event out to the root span.
pub struct TopLevelJson;

impl<S> FormatEvent<S, JsonFields> for TopLevelJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> FmtResult {
        let mut line = Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        let mut own = String::new();
        ctx.format_fields(Writer::new(&mut own), event)?;
        let mut own = object(&own);
        if let Some(message) = own.remove("message") {
            line.insert("message".into(), message);
        }
        merge(&mut line, own);
        for span in ctx.event_scope().into_iter().flatten() {
            if !identity_span(span.metadata()) {
                continue;
            }
            if let Some(fields) = span.extensions().get::<FormattedFields<JsonFields>>() {
                merge(&mut line, object(fields));
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

fn object(json: &str) -> Map<String, Value> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Adds the fields not already on the line.
fn merge(line: &mut Map<String, Value>, fields: Map<String, Value>) {
    for (name, value) in fields {
        line.entry(name).or_insert(value);
    }
}

/// Lambda's ids of the invocation under way, for lines written outside tracing (EMF).
/// `lambda_runtime::run` runs one invocation at a time, so one slot is exact.
static INVOCATION: Mutex<Option<(String, Option<String>)>> = Mutex::new(None);

/// Called by main.rs as each invocation begins.
pub fn begin_invocation(request_id: &str, xray_trace_id: Option<&str>) {
    let ids = (request_id.to_string(), xray_trace_id.map(str::to_string));
    *INVOCATION.lock().unwrap_or_else(|e| e.into_inner()) = Some(ids);
}

/// `requestId` and `xrayTraceId` of the invocation under way, as top-level fields
/// (none outside an invocation, as in the library's tests).
pub fn invocation_fields() -> Map<String, Value> {
    let mut fields = Map::new();
    if let Some((request_id, trace)) = &*INVOCATION.lock().unwrap_or_else(|e| e.into_inner()) {
        fields.insert("requestId".into(), request_id.as_str().into());
        if let Some(trace) = trace {
            fields.insert("xrayTraceId".into(), trace.as_str().into());
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn the_global_level_stays_at_the_level_asked_for_info_at_least() {
        let hint = |level: &str| Filter::<Registry>::max_level_hint(&filter(level));
        assert_eq!(hint("info"), Some(LevelFilter::INFO));
        assert_eq!(hint("WARN"), Some(LevelFilter::INFO));
        assert_eq!(hint("error"), Some(LevelFilter::INFO));
        assert_eq!(hint("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(hint("trace"), Some(LevelFilter::TRACE));
    }
}
