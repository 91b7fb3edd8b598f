//! SSM against the project's stateful test server (tests/peers/policy_server.py), with
//! the real SDK and its real timeouts: a put whose answer is lost must not add a
//! second policy next to the one that landed.

use std::time::Duration;

use aws_credential_types::Credentials;
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::Clients;
use serde_json::json;

use crate::peers;
use crate::support::*;

const PARAM: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/app/config";

#[tokio::test]
async fn a_put_whose_answer_is_lost_leaves_exactly_one_policy() {
    let server = peers::policy_server();
    server
        .control(
            reqwest::Method::POST,
            "ssm-resources",
            Some(json!({"arn": PARAM})),
        )
        .await;
    // The first put takes effect, but its answer comes after the attempt timed out.
    server
        .control(
            reqwest::Method::POST,
            "faults",
            Some(json!({"service": "ssm", "operation": "PutResourcePolicy", "hold_ms": 1500})),
        )
        .await;
    let mut settings = fast_settings();
    settings.sdk_attempt_timeout = Duration::from_millis(400);
    let config = resource_policy_provider::sdk_loader(&settings)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::for_tests())
        .endpoint_url(&server.url)
        .load()
        .await;
    let mut app = app(Clients::new(config));
    app.settings = settings;
    let req = request(json!({"ResourceArn": PARAM, "Policy": POLICY}));

    let applied = put_fresh(&app, &req, NotFound::Final, 20_000)
        .await
        .expect("the policy that landed is adopted");
    assert!(applied.attempts >= 2, "the first attempt timed out");

    let state = server.state().await;
    let policies = state["ssm"]["policies"][PARAM]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(policies.len(), 1, "exactly one policy: {state}");
    assert_eq!(
        state["call_counts"]["ssm"]["PutResourcePolicy"], 1,
        "no blind retry of the put: {}",
        state["call_counts"]
    );
    let data = applied.attributes(&req.target);
    assert_eq!(
        Some(data["PolicyId"].as_str()),
        policies[0]["PolicyId"].as_str(),
        "{state}"
    );
}
