//! The real binary under a minimal Lambda Runtime API.
//!
//! At TRACE the presigned query of the ResponseURL must appear nowhere in its log,
//! whatever the level. The Lambda runtime logs the raw event at TRACE, so this fails if
//! other crates' TRACE events are let through.
//!
//! With `AWS_LAMBDA_LOG_FORMAT=JSON`, every line of an invocation is one flat JSON
//! object carrying Lambda's `requestId`, the `xrayTraceId` and the request's identity
//! at the top level (src/logging.rs), at TRACE and at WARN alike.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use super::recorder::Recorder;

const SIGNATURE: &str = "Zq9PresignedSignatureZq9";
const INVOCATION: &str = "inv-1";
const TRACE_ID: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// Serves one invocation of `event` on the Runtime API, then holds further `next`
/// calls open; returns the port.
async fn runtime_api(event: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut served = false;
        while let Ok((stream, _)) = listener.accept().await {
            let event = if served { None } else { Some(event.clone()) };
            served = true;
            tokio::spawn(serve(stream, event));
        }
    });
    port
}

/// One connection: `next` gets the event once (then waits forever), posts get 202.
async fn serve(stream: TcpStream, mut event: Option<String>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await.unwrap();
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await.unwrap();
        let reply = if line.contains("/invocation/next") {
            let Some(e) = event.take() else {
                std::future::pending::<()>().await;
                return;
            };
            let deadline =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {INVOCATION}\r\nlambda-runtime-trace-id: {TRACE_ID}\r\nlambda-runtime-deadline-ms: {}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:provider\r\ncontent-length: {}\r\n\r\n{e}",
                deadline.as_millis(),
                e.len()
            )
        } else {
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_string()
        };
        if reader.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// What one run of the binary left: its stdout and stderr, and the answers it PUT.
struct Run {
    stdout: String,
    stderr: String,
    answers: Vec<super::recorder::Recorded>,
}

impl Run {
    fn log(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the real binary for one invocation of `event` (its ResponseURL taken from
/// `event_with(url)`), with `env` on top of a minimal Lambda environment.
async fn run(event_with: impl Fn(&str) -> Value, env: &[(&str, &str)]) -> Run {
    let rec = Recorder::start().await;
    let url = rec.url("trace").replace("secret", SIGNATURE);
    let port = runtime_api(event_with(&url).to_string()).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_resource-policy-provider"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "provider")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "s")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "g")
        .env("AWS_REGION", "us-east-1")
        .env("LEDGER_TABLE", "ledger")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env(
            "RESPONSE_URL_ALLOWED_HOSTS",
            format!("127.0.0.1:{}", rec.port),
        );
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary runs");
    let started = std::time::Instant::now();
    while rec.received("trace").is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the runtime post its result and log it, then stop the process.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = child;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        answers: rec.received("trace"),
    }
}

/// A rollback Delete: no AWS call is needed, the answer still goes out.
fn rollback_delete(url: &str) -> Value {
    json!({
        "RequestType": "Delete",
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
        "RequestId": "req-trace",
        "ResourceType": "Custom::Policy",
        "LogicalResourceId": "Policy",
        "PhysicalResourceId": "resource-policy-provider:failed-create:req-0",
        "ResourceProperties": {"ResourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t"}
    })
}

fn assert_answered_without_leak(run: &Run, status: &str, what: &str) {
    let log = run.log();
    assert_eq!(run.answers.len(), 1, "answered once; log:\n{log}");
    assert_eq!(run.answers[0].body["Status"], status, "log:\n{log}");
    assert!(
        !log.contains(SIGNATURE) && !log.contains("X-Amz-Signature"),
        "{what} leaked the presigned query:\n{log}"
    );
}

async fn run_at(level_var: &str) {
    let run = run(rollback_delete, &[(level_var, "trace")]).await;
    assert_answered_without_leak(&run, "SUCCESS", &format!("{level_var}=trace"));
    let log = run.log();
    assert!(
        log.contains("DEBUG") && log.contains("/trace"),
        "the log is at a verbose level and names the redacted URL:\n{log}"
    );
    // Plain text: the ids are in the span prefixes.
    let answered = log
        .lines()
        .find(|l| l.contains("SUCCESS"))
        .unwrap_or_else(|| panic!("a SUCCESS line:\n{log}"));
    for part in [
        &format!("requestId=\"{INVOCATION}\""),
        &format!("xrayTraceId=\"{TRACE_ID}\""),
        "request_id=req-trace",
        "logical_resource_id=Policy",
    ] {
        assert!(answered.contains(part), "{part} missing from {answered}");
    }
}

/// The JSON lines of stdout, each an object (stdout holds nothing else but EMF).
fn json_lines(run: &Run) -> Vec<Map<String, Value>> {
    run.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(o)) => o,
            _ => panic!("not a JSON object line: {l}\nstdout:\n{}", run.stdout),
        })
        .collect()
}

/// Every line of the invocation carries `fields` at its top level with these values.
/// The invocation's lines run from its first line with a `requestId` to its last: the
/// runtime's lines before (init, the wait for the event) and after (the wait for the
/// next one) belong to no invocation.
fn assert_every_invocation_line_carries(run: &Run, fields: &[(&str, &str)]) -> usize {
    let lines = json_lines(run);
    let first = lines
        .iter()
        .position(|l| l.contains_key("requestId"))
        .unwrap_or_else(|| panic!("no line carries requestId:\n{}", run.stdout));
    let last = lines
        .iter()
        .rposition(|l| l.contains_key("requestId"))
        .unwrap();
    let invocation = &lines[first..=last];
    for line in invocation {
        // An EMF metrics line carries the invocation's ids, not the request's identity
        // (it is a metric record: its properties are dimensions and values).
        let emf = line.contains_key("_aws");
        for (name, value) in fields {
            if emf && !matches!(*name, "requestId" | "xrayTraceId") {
                continue;
            }
            assert_eq!(
                line.get(*name).and_then(Value::as_str),
                Some(*value),
                "{name} not at the top level of {}\nstdout:\n{}",
                Value::Object(line.clone()),
                run.stdout
            );
        }
        for nested in ["fields", "span", "spans"] {
            assert!(
                !line.contains_key(nested),
                "nested {nested}: {}",
                Value::Object(line.clone())
            );
        }
    }
    invocation.len()
}

#[tokio::test]
async fn json_lines_carry_the_invocation_ids_and_the_request_identity_at_top_level() {
    let run = run(
        rollback_delete,
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ],
    )
    .await;
    assert_answered_without_leak(&run, "SUCCESS", "JSON at TRACE");
    let lines = assert_every_invocation_line_carries(
        &run,
        &[("requestId", INVOCATION), ("xrayTraceId", TRACE_ID)],
    );
    let json = json_lines(&run);
    // The lines of the CloudFormation request (not the runtime's own) name it too.
    let request: Vec<_> = json
        .iter()
        .filter(|l| l.get("request_id").is_some())
        .collect();
    assert!(
        request.len() >= 2 && lines >= request.len(),
        "the request's lines:\n{}",
        run.stdout
    );
    for line in &request {
        assert_eq!(line["request_id"], "req-trace");
        assert_eq!(line["logical_resource_id"], "Policy");
        assert_eq!(line["request_type"], "Delete");
        assert!(line["level"].is_string() && line.contains_key("message"));
    }
    assert!(
        request
            .iter()
            .any(|l| l["message"] == "SUCCESS" && l["level"] == "INFO"),
        "{}",
        run.stdout
    );
    assert!(
        request.iter().any(|l| l["message"] == "response delivered"
            && l["url"].as_str().is_some_and(|u| u.ends_with("/trace"))),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_warning_at_log_level_warn_still_carries_the_ids_and_the_identity() {
    // A Create without a ResourceArn: answered FAILED, logged at WARN.
    let bad_create = |url: &str| {
        let mut e = rollback_delete(url);
        e["RequestType"] = json!("Create");
        e["RequestId"] = json!("req-warn");
        e.as_object_mut().unwrap().remove("PhysicalResourceId");
        e["ResourceProperties"] = json!({});
        e
    };
    let run = run(
        bad_create,
        &[
            ("AWS_LAMBDA_LOG_FORMAT", "json"),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        ],
    )
    .await;
    assert_answered_without_leak(&run, "FAILED", "JSON at WARN");
    assert_every_invocation_line_carries(
        &run,
        &[
            ("requestId", INVOCATION),
            ("xrayTraceId", TRACE_ID),
            ("request_id", "req-warn"),
            ("logical_resource_id", "Policy"),
            ("request_type", "Create"),
        ],
    );
    let json = json_lines(&run);
    let failed = json
        .iter()
        .find(|l| l.get("message").is_some_and(|m| m == "FAILED"))
        .unwrap_or_else(|| panic!("a FAILED line:\n{}", run.stdout));
    assert_eq!(failed["level"], "WARN");
    // Log lines only: an EMF metrics line is a record, with no level.
    assert!(
        json.iter()
            .filter(|l| !l.contains_key("_aws"))
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "only WARN and above at WARN:\n{}",
        run.stdout
    );
}

#[tokio::test]
async fn the_presigned_query_never_reaches_the_log_at_rust_log_trace() {
    run_at("RUST_LOG").await;
}

#[tokio::test]
async fn the_presigned_query_never_reaches_the_log_at_lambda_log_level_trace() {
    run_at("AWS_LAMBDA_LOG_LEVEL").await;
}
