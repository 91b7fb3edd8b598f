//! Lambda entry point: settings, one shared SDK config and HTTP client, then the
//! runtime loop. Everything else lives in the library.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use resource_policy_provider::{
    handle, response_client, sdk_loader, services::Clients, settings::Settings, App,
};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    init_logging();
    let settings = Settings::from_env()?;
    let config = sdk_loader(&settings).load().await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let app = Arc::new(App {
        clients: Clients::new(config),
        settings,
        region,
    });
    let http = response_client();

    // The event is taken raw so that even text the strict decoder rejects is answered.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let app = app.clone();
        let http = http.clone();
        async move {
            Box::pin(handle(
                app,
                &http,
                event.payload.get(),
                event.context.deadline,
            ))
            .await
            .map_err(Error::from)
        }
    }))
    .await
}

/// Plain text, or JSON when Lambda's log format is JSON; level from
/// AWS_LAMBDA_LOG_LEVEL or RUST_LOG (default INFO). No ANSI colours: CloudWatch shows
/// them as noise. Lambda stamps the time itself.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .without_time();
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        fmt.init();
    }
}
