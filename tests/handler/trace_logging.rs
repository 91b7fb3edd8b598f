//! The real binary at TRACE under a minimal Lambda Runtime API: the presigned query of
//! the ResponseURL must appear nowhere in its log, whatever the level. The Lambda
//! runtime logs the raw event at TRACE, so this fails if other crates' TRACE events
//! are let through.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use super::recorder::Recorder;

const SIGNATURE: &str = "Zq9PresignedSignatureZq9";

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
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: inv-1\r\nlambda-runtime-deadline-ms: {}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:provider\r\ncontent-length: {}\r\n\r\n{e}",
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

async fn run_at(level_var: &str) {
    let rec = Recorder::start().await;
    let url = rec.url("trace").replace("secret", SIGNATURE);
    // A rollback Delete: no AWS call is needed, the answer still goes out.
    let event = json!({
        "RequestType": "Delete",
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/guid",
        "RequestId": "req-trace",
        "ResourceType": "Custom::Policy",
        "LogicalResourceId": "Policy",
        "PhysicalResourceId": "resource-policy-provider:failed-create:req-0",
        "ResourceProperties": {"ResourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t"}
    });
    let port = runtime_api(event.to_string()).await;
    let child = Command::new(env!("CARGO_BIN_EXE_resource-policy-provider"))
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
        )
        .env(level_var, "trace")
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
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rec.received("trace");
    assert_eq!(got.len(), 1, "answered once; log:\n{log}");
    assert_eq!(got[0].body["Status"], "SUCCESS");
    assert!(
        log.contains("DEBUG") && log.contains("/trace"),
        "the log is at a verbose level and names the redacted URL:\n{log}"
    );
    assert!(
        !log.contains(SIGNATURE) && !log.contains("X-Amz-Signature"),
        "{level_var}=trace leaked the presigned query:\n{log}"
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
