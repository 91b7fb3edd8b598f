//! Real peers for drift repair: moto serves the ledger's DynamoDB table, the project's
//! test server (tests/peers/policy_server.py) serves X-Ray and SSM. Both on loopback,
//! each test with its own, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Peer {
    child: Child,
    pub url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's server from the project's pinned virtualenv.
pub async fn moto() -> Peer {
    let exe = root().join(".venv/bin/python");
    assert!(
        root().join(".venv/bin/moto_server").exists(),
        "moto_server is missing: run scripts/install-peers (it installs the pinned peers into .venv)"
    );
    let port = free_port();
    // moto with DynamoDB's single-item atomicity (its threaded server lacks it).
    let child = Command::new(exe)
        .arg(root().join("tests/peers/moto_atomic.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let peer = Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    ready(peer, "/moto-api/data.json", "moto_server").await
}

/// microburst, the fault-injection proxy, in front of `upstream` with `rules` (its
/// YAML config; JSON is YAML). Clients use `url`: `localhost`, not 127.0.0.1, so
/// microburst skips matching the host against every service's endpoint prefix.
pub async fn microburst(upstream: &str, rules: Value) -> Peer {
    let exe = root().join(".venv/bin/microburst");
    assert!(
        exe.exists(),
        "microburst is missing: run scripts/install-peers (it installs the pinned peers into .venv)"
    );
    let port = free_port();
    let config = std::env::temp_dir().join(format!("microburst-{port}.yml"));
    std::fs::write(
        &config,
        serde_json::json!({"upstream": upstream, "rules": rules}).to_string(),
    )
    .unwrap();
    let child = Command::new(exe)
        .arg("--config")
        .arg(&config)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--no-resign",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("microburst starts");
    let peer = Peer {
        child,
        url: format!("http://localhost:{port}"),
    };
    ready(peer, "/_microburst/health", "microburst").await
}

impl Peer {
    /// Faults microburst injected so far, per service.
    pub async fn faulted(&self, service: &str) -> u64 {
        let stats: Value = resource_policy_provider::response_client()
            .get(format!("{}/_microburst/stats", self.url))
            .send()
            .await
            .unwrap()
            .json_value()
            .await;
        stats["by_service"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|row| row["service"] == service)
            .map(|row| row["faulted"].as_u64().unwrap_or(0))
            .sum()
    }
}

/// Reads a response body as JSON.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap_or(Value::Null)
    }
}

/// Waits (at most 60 s) until `path` on `peer` answers 200.
async fn ready(peer: Peer, path: &str, name: &str) -> Peer {
    let http = resource_policy_provider::response_client();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let up = http
            .get(format!("{}{path}", peer.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return peer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not answer on {} within 60 s", peer.url);
}

/// The stateful test server for X-Ray, Managed Prometheus and SSM.
pub fn policy_server() -> Peer {
    let script = root().join("tests/peers/policy_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is needed to run tests/peers/policy_server.py (apt-get install python3)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("policy_server.py did not start: {line:?}"))
        .trim()
        .to_string();
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

impl Peer {
    /// The test server's control API (`/_fake/...`).
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let r = resource_policy_provider::response_client()
            .request(method, format!("{}/_fake/{path}", self.url))
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }

    pub async fn state(&self) -> Value {
        self.control(reqwest::Method::GET, "state", None).await
    }

    /// Calls of `operation` to `service` so far.
    pub async fn calls(&self, service: &str, operation: &str) -> u64 {
        self.state().await["call_counts"][service][operation]
            .as_u64()
            .unwrap_or(0)
    }
}

/// tests/peers/ddb_proxy.py in front of `upstream` (moto's URL): DynamoDB's
/// policy-update lock (`lock_ms` per ResourceArn after each successful Put/Delete; 0:
/// off) and DynamoDB's PolicyNotFoundException for an `ExpectedRevisionId` on a missing
/// or changed policy, which moto alone does not give. Point the DynamoDB client at
/// `url`; read and drive it with [`Peer::proxy`] (`/_proxy/...`, tests/peers/README.md).
#[allow(dead_code)]
pub fn ddb_proxy(upstream: &str, lock_ms: u64) -> Peer {
    let script = root().join("tests/peers/ddb_proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--upstream", upstream, "--host", "127.0.0.1", "--port", "0"])
        .args(["--lock-ms", &lock_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is needed to run tests/peers/ddb_proxy.py (apt-get install python3)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("ddb_proxy.py did not start: {line:?}"))
        .trim()
        .to_string();
    Peer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

#[allow(dead_code)]
impl Peer {
    /// The DynamoDB proxy's admin API: `proxy(GET, "stats", None)`,
    /// `proxy(POST, "faults", Some(json!({"kind": "hold", "arn": arn, "ms": 500})))`, ...
    pub async fn proxy(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let r = resource_policy_provider::response_client()
            .request(method, format!("{}/_proxy/{path}", self.url))
            .header("content-type", "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "ddb proxy {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// One ResourceArn's counters: writes, puts, deletes, locked, precondition_failed,
    /// errors, held, lost_replies (0 when the proxy has not seen the ARN).
    pub async fn proxy_count(&self, arn: &str, counter: &str) -> u64 {
        self.proxy(reqwest::Method::GET, "stats", None).await["arns"][arn][counter]
            .as_u64()
            .unwrap_or(0)
    }
}

/// CloudFormation as the drift tests need it: every stack resource exists, except
/// those of a stack whose name starts with `deleted-` (a stack deleted with its
/// resources retained: CloudFormation no longer knows it).
pub fn stacks() -> aws_sdk_cloudformation::Client {
    use aws_sdk_cloudformation::operation::describe_stack_resource::DescribeStackResourceOutput;
    use aws_sdk_cloudformation::types::{ResourceStatus, StackResourceDetail};
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    let rule = mock!(aws_sdk_cloudformation::Client::describe_stack_resource)
        .then_compute_response(|r| {
            let stack = r.stack_name().unwrap_or_default().to_string();
            let logical = r.logical_resource_id().unwrap_or_default().to_string();
            if stack
                .split(':')
                .nth(5)
                .is_some_and(|s| s.starts_with("stack/deleted-"))
            {
                let body = format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>\
                     <Message>Stack with id {stack} does not exist</Message></Error>\
                     <RequestId>1</RequestId></ErrorResponse>"
                );
                return MockResponse::Http(HttpResponse::new(
                    StatusCode::try_from(400).unwrap(),
                    SdkBody::from(body),
                ));
            }
            let detail = StackResourceDetail::builder()
                .logical_resource_id(logical)
                .resource_type("Custom::ResourcePolicy")
                .resource_status(ResourceStatus::CreateComplete)
                .last_updated_timestamp(aws_smithy_types::DateTime::from_secs(0))
                .build();
            MockResponse::Output(
                DescribeStackResourceOutput::builder()
                    .stack_resource_detail(detail)
                    .build(),
            )
        });
    // Whether a stack is rolling back an update: stacks named `rolling-*` are.
    let status = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_compute_output(|r| {
        use aws_sdk_cloudformation::types::{Stack, StackStatus};
        let stack = r.stack_name().unwrap_or_default().to_string();
        let rolling = stack
            .split(':')
            .nth(5)
            .is_some_and(|s| s.starts_with("stack/rolling-"));
        let status = if rolling {
            StackStatus::UpdateRollbackInProgress
        } else {
            StackStatus::UpdateInProgress
        };
        aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput::builder()
            .stacks(
                Stack::builder()
                    .stack_id(&stack)
                    .stack_name(stack.split('/').nth(1).unwrap_or_default())
                    .creation_time(aws_smithy_types::DateTime::from_secs(0))
                    .stack_status(status)
                    .build(),
            )
            .build()
    });
    mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&rule, &status])
}
