//! resource-policy-provider: one Lambda function that owns resource-based policies on
//! DynamoDB, Kinesis, X-Ray, Managed Prometheus and SSM, driven by CloudFormation
//! custom resources and EventBridge.
//!
//! Data flows one way: [`event`] says what arrived, [`request`] validates it into one
//! typed request, [`apply`] meets the [`services`] adapters through [`retry`] and
//! [`propagation`] under the invocation's [`budget`], and the entry point
//! ([`cloudformation`] or [`eventbridge`]) answers.

pub mod apply;
pub mod budget;
pub mod cloudformation;
pub mod event;
pub mod eventbridge;
pub mod policy;
pub mod propagation;
pub mod request;
pub mod retry;
pub mod services;
pub mod settings;
pub mod target;

use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader};
use serde_json::Value;

pub use apply::App;
use event::Inbound;
use settings::Settings;

/// The SDK's standard retry (more attempts than its default) and timeouts so a hung
/// connection cannot eat the budget. Endpoints, region and credentials come from the
/// environment the SDK's standard way.
pub fn sdk_loader(settings: &Settings) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(settings.sdk_max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.sdk_connect_timeout)
                .operation_attempt_timeout(settings.sdk_attempt_timeout)
                .build(),
        )
}

/// The HTTP client for CloudFormation responses: rustls, like the SDK.
pub fn response_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("TLS backend initialises")
}

/// One invocation: `raw` is the event text, `deadline_ms` Lambda's deadline.
pub async fn handle(
    app: Arc<App>,
    http: &reqwest::Client,
    raw: &str,
    deadline_ms: u64,
) -> Result<Value, String> {
    match event::classify(raw) {
        Inbound::CloudFormation { event, defect } => {
            cloudformation::handle(app, http, event, defect, deadline_ms).await
        }
        Inbound::EventBridge(event) => eventbridge::handle(&app, event, deadline_ms).await,
        Inbound::Unrecognised(why) => {
            tracing::error!("{why}");
            Err(why)
        }
    }
}
