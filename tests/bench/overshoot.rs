//! Benchmark: how soon after a change becomes visible does the provider report it?
//!
//! Starts the project's test server (tests/peers/policy_server.py) with a propagation
//! delay D (reads lag writes by D), puts an X-Ray policy through the real adapter,
//! retry and read-back layers, and prints the overshoot: the reported propagation wait
//! minus D. Run: `cargo run --example overshoot` (from the repository root).

#[allow(dead_code, unused_imports)]
#[path = "../services/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "../common/wire.rs"]
mod wire;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use resource_policy_provider::budget::Budget;
use resource_policy_provider::request::{PolicyNeeded, PolicyRequest};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::{Clients, Known};
use resource_policy_provider::settings::Settings;
use resource_policy_provider::App;
use serde_json::json;
use support::put_policy;

const DELAYS_MS: [u64; 7] = [500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000];
const RUNS: usize = 3;

fn control(port: u16, path: &str, body: serde_json::Value) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "control call {path} failed");
}

#[tokio::main]
async fn main() {
    let python = if std::path::Path::new(".venv/bin/python").exists() {
        ".venv/bin/python"
    } else {
        "python3"
    };
    let mut server = Command::new(python)
        .args([
            "tests/peers/policy_server.py",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tests/peers/policy_server.py (run from the repository root)");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .expect("LISTENING <port>");

    let settings = Settings::default();
    let config = resource_policy_provider::sdk_loader(&settings)
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .load()
        .await;
    let app = App::new(Clients::new(config), settings, "us-east-1");

    println!("| D (s) | overshoot median (ms) | worst (ms) | target (ms) |");
    println!("|---|---|---|---|");
    for d in DELAYS_MS {
        control(port, "/_fake/reset", json!({}));
        control(port, "/_fake/config", json!({"propagation_delay_ms": d}));
        let mut overshoots = Vec::new();
        for run in 0..RUNS {
            let props = json!({"PolicyName": format!("bench-{d}-{run}"), "Policy": {"Version": "2012-10-17", "Statement": []}});
            let req =
                PolicyRequest::from_properties(&props, "us-east-1", PolicyNeeded::Yes).unwrap();
            let budget = Budget::new(Duration::from_secs(120), None, Duration::ZERO);
            let applied = put_policy(
                &app,
                &req,
                &Known::default(),
                NotFound::Final,
                "bench",
                &budget,
            )
            .await
            .expect("put succeeds");
            let waited = applied.propagation.unwrap();
            overshoots.push(waited.as_millis() as i64 - d as i64);
        }
        overshoots.sort();
        let target = (d as f64 * 0.2).max(250.0) as i64;
        println!(
            "| {:.1} | {} | {} | {} |",
            d as f64 / 1000.0,
            overshoots[RUNS / 2],
            overshoots[RUNS - 1],
            target
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
