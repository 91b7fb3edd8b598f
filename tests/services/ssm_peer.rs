//! SSM against the project's stateful test server (tests/peers/policy_server.py), with
//! the real SDK and its real timeouts: a put whose answer is lost must not add a
//! second policy next to the one that landed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_credential_types::Credentials;
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::Clients;
use serde_json::{json, Value};

use crate::support::*;

const PARAM: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/app/config";

/// The test server on a free loopback port; stopped when dropped.
struct PolicyServer {
    child: Child,
    url: String,
}

impl PolicyServer {
    fn start() -> PolicyServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/policy_server.py");
        let mut child = Command::new("python3")
            .args([script, "--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "python3 is needed to run tests/peers/policy_server.py (apt-get install python3)",
            );
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("policy_server.py did not start: {line:?}"))
            .trim();
        PolicyServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = resource_policy_provider::response_client()
            .request(method, format!("{}/_fake/{path}", self.url))
            .header("content-type", "application/json")
            .body(if body.is_null() {
                String::new()
            } else {
                body.to_string()
            })
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_put_whose_answer_is_lost_leaves_exactly_one_policy() {
    let server = PolicyServer::start();
    server
        .control(
            reqwest::Method::POST,
            "ssm-resources",
            json!({"arn": PARAM}),
        )
        .await;
    // The first put takes effect, but its answer comes after the attempt timed out.
    server
        .control(
            reqwest::Method::POST,
            "faults",
            json!({"service": "ssm", "operation": "PutResourcePolicy", "hold_ms": 1500}),
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

    let state = server
        .control(reqwest::Method::GET, "state", Value::Null)
        .await;
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
