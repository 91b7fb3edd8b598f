//! resource-policy-provider: one Lambda function that owns resource-based policies on
//! DynamoDB, Kinesis, X-Ray, Managed Prometheus and SSM, driven by CloudFormation
//! custom resources and EventBridge.
//!
//! Data flows one way (docs/ownership.md):
//! - [`inbound`] classifies what arrived; its entry point (CloudFormation, apply
//!   requests, CloudTrail, the function's own hand-offs) validates it into a [`model`]
//!   request and turns it into one [`change::Change`];
//! - [`change`] carries every change out in one place: it records it in the [`ledger`],
//!   plans the target's document from every owner, asks the [`guard`], writes through
//!   the [`services`] adapters with [`calls`] (retries, read-back, the time budget), and
//!   settles;
//! - [`repair`] checks targets against their owners' plan (CloudTrail, the reconcile)
//!   through the same plan and writer;
//! - the entry point answers in its own protocol.

pub mod app;
pub mod attributes;
pub mod calls;
pub mod change;
pub mod error;
pub mod guard;
pub mod http;
pub mod inbound;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod repair;
pub mod services;
pub mod settings;

// The nouns and calls under their old names: the public surface tests and tools use.
pub use calls::{apply, budget, propagation, retry};
pub use model::{policy, request, statements, target};

use std::sync::Arc;

use serde_json::Value;

pub use app::App;
pub use error::InvocationError;
pub use http::{response_client, sdk_loader};
use inbound::event::{self, Inbound};
use inbound::{cloudformation, eventbridge};

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
