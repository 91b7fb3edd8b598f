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
    // The trusted roots are read on a side thread while init goes on, so the first
    // TLS handshake finds them ready (see src/http.rs).
    if std::env::var_os("RPP_BENCH_NO_PRELOAD").is_none() {
        resource_policy_provider::http::preload_roots();
    }
    resource_policy_provider::logging::init();
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
            // errorType (InvalidRequest, ServiceError, Timeout, ...) is what operators route on.
            .map_err(lambda_runtime::Diagnostic::from)
        }
    }))
    .await
}
