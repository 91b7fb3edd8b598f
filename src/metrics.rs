//! CloudWatch metrics as Embedded Metric Format lines: one JSON object per line on
//! stdout, which CloudWatch Logs turns into metrics with no API call (and so no extra
//! IAM, latency or failure mode). A small serde struct: the EMF crates on crates.io
//! are unmaintained or pull in an async runtime of their own.
//!
//! Namespace `ResourcePolicyProvider`, dimensions `[]`, `[Service]` and `[Service, Kind]`.
//! Metric names are stable: alarms and the dashboard use them.
//! - [`line`] / [`emit`], `Kind` `Repair` or `Reconcile`: `TargetsChecked`,
//!   `DriftFound`, `Repaired`, `RepairFailed`, `RepairLoopStopped`, `DriftLeft`, and
//!   `PropagationMs` after a repair's write.
//! - [`change_line`] / [`change`], `Kind` `CloudFormation` or `Apply`: `Changes`,
//!   `ChangeFailed`, `Attempts`, and `PropagationMs` when a write was made visible.
//!
//! An emitted line also carries `requestId` and `xrayTraceId` (not dimensions, so no
//! metric cost: searchable properties), as every log line does (src/logging.rs).

use serde_json::{json, Map, Value};

use crate::ledger::{now_ms, Counts};

pub const NAMESPACE: &str = "ResourcePolicyProvider";

/// Counts a repair or reconcile reports besides [`Counts`], zero unless set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unrepaired {
    /// Repairs stopped because the target's policy kept being changed back: a repair
    /// loop with another writer (alarm on it: someone must choose who owns the target).
    pub loop_stopped: u64,
    /// Drift found and left in place: detect-only mode, or a repair the guard refused.
    pub drift_left: u64,
}

/// Puts the metrics (name, unit, value) at the top level of `root` and declares them.
fn finish(mut root: Map<String, Value>, metrics: &[(&str, &str, u64)]) -> Value {
    for (name, _, value) in metrics {
        root.insert((*name).into(), json!(value));
    }
    let declared: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                // `[]`: the totals the template's alarms watch, whatever the service.
                "Dimensions": [[], ["Service"], ["Service", "Kind"]],
                "Metrics": declared,
            }]
        }),
    );
    Value::Object(root)
}

fn dimensions(kind: &str, service: &str) -> Map<String, Value> {
    let mut root = Map::new();
    root.insert("Service".into(), json!(service));
    root.insert("Kind".into(), json!(kind));
    root
}

/// The counts a check reports besides [`Counts`]' own.
pub fn unrepaired(c: &Counts) -> Unrepaired {
    Unrepaired {
        loop_stopped: c.loops_stopped,
        drift_left: c.detected,
    }
}

/// One EMF line: `kind` is `Repair` or `Reconcile`, `service` the dimension.
pub fn line(kind: &str, service: &str, counts: Counts, propagation_ms: Option<u64>) -> Value {
    line_with(kind, service, counts, Unrepaired::default(), propagation_ms)
}

/// [`line`] with the repair loops stopped and the drift left in place.
pub fn line_with(
    kind: &str,
    service: &str,
    counts: Counts,
    unrepaired: Unrepaired,
    propagation_ms: Option<u64>,
) -> Value {
    let mut metrics = vec![
        ("TargetsChecked", "Count", counts.checked),
        ("DriftFound", "Count", counts.drift),
        ("Repaired", "Count", counts.repaired),
        ("RepairFailed", "Count", counts.failed),
        ("RepairLoopStopped", "Count", unrepaired.loop_stopped),
        ("DriftLeft", "Count", unrepaired.drift_left),
    ];
    if let Some(ms) = propagation_ms {
        metrics.push(("PropagationMs", "Milliseconds", ms));
    }
    finish(dimensions(kind, service), &metrics)
}

/// Writes one EMF line to stdout, where Lambda's log capture picks it up.
pub fn emit(kind: &str, service: &str, counts: Counts, propagation_ms: Option<u64>) {
    print(line(kind, service, counts, propagation_ms));
}

/// [`emit`] with the repair loops stopped and the drift left in place.
pub fn emit_with(
    kind: &str,
    service: &str,
    counts: Counts,
    unrepaired: Unrepaired,
    propagation_ms: Option<u64>,
) {
    print(line_with(kind, service, counts, unrepaired, propagation_ms));
}

/// One EMF line for one change (a CloudFormation request, or an apply request):
/// `kind` `CloudFormation` or `Apply`; `service` the target's service key (`dynamodb`,
/// ..., or `unknown` when the request failed before naming one); `outcome` `SUCCESS`
/// or `FAILED` (anything but `SUCCESS` counts as failed; kept as the `Outcome`
/// property); `attempts` the service writes tried (0 when nothing was written);
/// `propagation_ms` how long the write took to become visible, when it was waited for.
/// Metrics: `Changes` (1), `ChangeFailed` (0 or 1), `Attempts`, `PropagationMs`.
pub fn change_line(
    kind: &str,
    service: &str,
    outcome: &str,
    attempts: u32,
    propagation_ms: Option<u64>,
) -> Value {
    let mut root = dimensions(kind, service);
    root.insert("Outcome".into(), json!(outcome));
    let mut metrics = vec![
        ("Changes", "Count", 1),
        ("ChangeFailed", "Count", u64::from(outcome != "SUCCESS")),
        ("Attempts", "Count", u64::from(attempts)),
    ];
    if let Some(ms) = propagation_ms {
        metrics.push(("PropagationMs", "Milliseconds", ms));
    }
    finish(root, &metrics)
}

/// Writes [`change_line`] to stdout: call once per CloudFormation request answered
/// and once per apply request done.
pub fn change(
    kind: &str,
    service: &str,
    outcome: &str,
    attempts: u32,
    propagation_ms: Option<u64>,
) {
    print(change_line(
        kind,
        service,
        outcome,
        attempts,
        propagation_ms,
    ));
}

/// Writes one line to stdout, where Lambda's log capture picks it up.
fn print(line: Value) {
    println!("{}", stamped(line));
}

/// The line with the invocation's `requestId` and `xrayTraceId` (src/logging.rs).
fn stamped(line: Value) -> Value {
    let Value::Object(mut root) = line else {
        return line;
    };
    for (name, value) in crate::logging::invocation_fields() {
        root.entry(name).or_insert(value);
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric a line declares is a number at its top level, and every number at
    /// its top level is declared; the namespace and dimensions are the fixed ones.
    fn declared(v: &Value) -> Vec<String> {
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(
            directive["Dimensions"],
            json!([[], ["Service"], ["Service", "Kind"]])
        );
        for dimension in ["Service", "Kind"] {
            assert!(v[dimension].is_string(), "{dimension} in {v}");
        }
        let names: Vec<String> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert!(m["Unit"].is_string(), "{m}");
                m["Name"].as_str().unwrap().to_string()
            })
            .collect();
        for name in &names {
            assert!(v.get(name).is_some_and(Value::is_number), "{name} in {v}");
        }
        for (key, value) in v.as_object().unwrap() {
            if value.is_number() {
                assert!(names.contains(key), "{key} is not declared in {v}");
            }
        }
        names
    }

    #[test]
    fn a_line_declares_every_metric_it_carries() {
        let c = Counts {
            checked: 3,
            drift: 2,
            repaired: 1,
            failed: 1,
            ..Counts::default()
        };
        let v = line("Reconcile", "ssm", c, Some(120));
        let names = declared(&v);
        // The names alarms and the dashboard are built on.
        for name in [
            "TargetsChecked",
            "DriftFound",
            "Repaired",
            "RepairFailed",
            "RepairLoopStopped",
            "DriftLeft",
            "PropagationMs",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
        assert_eq!(v["Service"], "ssm");
        assert_eq!(v["Kind"], "Reconcile");
        assert_eq!(v["RepairLoopStopped"], 0);
        let without = line("Repair", "xray", c, None);
        declared(&without);
        assert!(without.get("PropagationMs").is_none());
        let unrepaired = Unrepaired {
            loop_stopped: 1,
            drift_left: 2,
        };
        let v = line_with("Repair", "dynamodb", c, unrepaired, None);
        declared(&v);
        assert_eq!(
            (v["RepairLoopStopped"].as_u64(), v["DriftLeft"].as_u64()),
            (Some(1), Some(2))
        );
    }

    #[test]
    fn a_change_line_declares_every_metric_it_carries() {
        let ok = change_line("CloudFormation", "kinesis", "SUCCESS", 2, Some(850));
        let names = declared(&ok);
        assert_eq!(
            names,
            ["Changes", "ChangeFailed", "Attempts", "PropagationMs"]
        );
        assert_eq!(ok["Service"], "kinesis");
        assert_eq!(ok["Kind"], "CloudFormation");
        assert_eq!(ok["Outcome"], "SUCCESS");
        assert_eq!(
            (
                &ok["Changes"],
                &ok["ChangeFailed"],
                &ok["Attempts"],
                &ok["PropagationMs"]
            ),
            (&json!(1), &json!(0), &json!(2), &json!(850))
        );

        let failed = change_line("Apply", "unknown", "FAILED", 0, None);
        assert_eq!(declared(&failed), ["Changes", "ChangeFailed", "Attempts"]);
        assert_eq!(failed["ChangeFailed"], 1);
        assert_eq!(failed["Outcome"], "FAILED");
        assert!(failed.get("PropagationMs").is_none());
    }

    #[test]
    fn an_emitted_line_carries_the_invocation_ids() {
        crate::logging::begin_invocation("inv-7", Some("Root=1-abc;Sampled=1"));
        let v = stamped(change_line("Apply", "ssm", "SUCCESS", 1, None));
        declared(&v);
        assert_eq!(v["requestId"], "inv-7");
        assert_eq!(v["xrayTraceId"], "Root=1-abc;Sampled=1");
    }
}
