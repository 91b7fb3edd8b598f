//! resource-policy-provider: one Lambda function that owns resource-based policies on
//! DynamoDB, Kinesis, X-Ray, Managed Prometheus and SSM, driven by CloudFormation
//! custom resources and EventBridge.
//!
//! Data flows one way: [`event`] says what arrived, [`request`] validates it into one
//! typed request, [`apply`] meets the [`services`] adapters through [`retry`] and
//! [`propagation`] under the invocation's [`budget`], and the entry point
//! ([`cloudformation`] or [`eventbridge`]) answers.

pub mod app;
pub mod apply;
pub mod attributes;
pub mod budget;
pub mod change;
pub mod cloudformation;
pub mod drift;
pub mod error;
pub mod event;
pub mod eventbridge;
pub mod guard;
pub mod http;
pub mod inbound;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod propagation;
pub mod reconcile;
pub mod request;
pub mod retry;
pub mod services;
pub mod settings;
pub mod statements;
pub mod target;

use std::sync::Arc;

use serde_json::Value;

pub use app::App;
pub use error::InvocationError;
use event::Inbound;
pub use http::{response_client, sdk_loader};

/// One invocation: `raw` is the event text, `deadline_ms` Lambda's deadline.
pub async fn handle(
    app: Arc<App>,
    http: &reqwest::Client,
    raw: &str,
    deadline_ms: u64,
) -> Result<Value, InvocationError> {
    match event::classify(raw) {
        Inbound::CloudFormation { event, defect } => {
            cloudformation::handle(app, http, event, defect, deadline_ms).await
        }
        Inbound::EventBridge(event) => eventbridge::handle(app, event, deadline_ms).await,
        Inbound::Unrecognised(why) => {
            tracing::error!("{why}");
            Err(InvocationError::InvalidRequest(why))
        }
    }
}
