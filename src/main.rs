//! Lambda entry point: settings, one shared SDK config and HTTP client, then the
//! runtime loop. Everything else lives in the library.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use resource_policy_provider::{
    handle, http, response_client, sdk_loader, services::Clients, settings::Settings, App,
};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The trusted roots are read on a side thread while init goes on, so the first
    // TLS handshake finds them ready (see src/http.rs).
    http::preload_roots();
    resource_policy_provider::logging::init();
    let settings = Settings::from_env()?;
    if settings.ledger_table.is_none() {
        return Err(
            "LEDGER_TABLE is not set: the ledger (a DynamoDB table with partition key \
            `target`, a string) is where the function records who owns which grant; \
            template.yaml always creates it"
                .into(),
        );
    }
    let config = sdk_loader(&settings).load().await;
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let app = Arc::new(App::new(Clients::new(config), settings, region));
    let http = response_client();
    if let Some(service) = std::env::var("PRECONNECT_SERVICE")
        .ok()
        .filter(|s| !s.is_empty())
    {
        preconnect(&service, &app.region).await;
    }

    // The event is taken raw so that even text the strict decoder rejects is answered.
    // Log lines get Lambda's requestId and xrayTraceId from the runtime's own span
    // around each invocation (src/logging.rs); EMF lines, written outside tracing,
    // from here.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        resource_policy_provider::logging::begin_invocation(
            &event.context.request_id,
            event.context.xray_trace_id.as_deref(),
        );
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
            // errorType (InvalidRequest, ServiceError, Timeout, ...) is what operators route on.
            .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}

/// Opt-in (`PRECONNECT_SERVICE=dynamodb`, for example): opens the connection to that
/// service's endpoint in the function's region during init, where Lambda runs at full
/// speed, so that a first call there skips the TCP and TLS handshakes. The endpoint is
/// the standard override (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`) or
/// `https://<service>.<region>.amazonaws.com`. Off by default: measured in the README.
async fn preconnect(service: &str, region: &str) {
    let url = std::env::var(format!(
        "AWS_ENDPOINT_URL_{}",
        service.to_ascii_uppercase().replace('-', "_")
    ))
    .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
    .unwrap_or_else(|_| format!("https://{service}.{region}.amazonaws.com"));
    http::preconnect(&url, std::time::Duration::from_secs(1)).await;
}
