//! Shared helpers: wire-format error responses, a fast app, budgets, requests.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use resource_policy_provider::apply::{put_policy, ApplyError};
use resource_policy_provider::attributes::Applied;
use resource_policy_provider::budget::Budget;
use resource_policy_provider::request::{PolicyNeeded, PolicyRequest};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::Clients;
use resource_policy_provider::services::Known;
use resource_policy_provider::settings::Settings;
use resource_policy_provider::App;
use serde_json::Value;

pub use crate::wire::*;

/// The SDK's standard retry with the test's attempts and no real waiting.
pub fn sdk_retries(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

pub fn fast_settings() -> Settings {
    Settings {
        retry_base: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        not_found_grace: Duration::from_millis(500),
        invalid_principal_grace: Duration::from_millis(500),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        ..Settings::default()
    }
}

pub fn empty_clients() -> Clients {
    Clients::new(
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build(),
    )
}

pub fn app(clients: Clients) -> App {
    App::new(clients, fast_settings(), "us-east-1")
}

pub fn budget(millis: u64) -> Budget {
    Budget::new(Duration::from_millis(millis), None, Duration::ZERO)
}

/// Puts `req`'s policy where this function put nothing before, under a fresh budget.
pub async fn put_fresh(
    app: &App,
    req: &PolicyRequest,
    not_found: NotFound,
    budget_ms: u64,
) -> Result<Applied, ApplyError> {
    put_policy(
        app,
        req,
        &Known::default(),
        not_found,
        "t",
        &budget(budget_ms),
    )
    .await
}

pub fn request(props: Value) -> PolicyRequest {
    PolicyRequest::from_properties(&props, "us-east-1", PolicyNeeded::Yes).unwrap()
}

pub const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"*","Resource":"*"}]}"#;
