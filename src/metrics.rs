//! CloudWatch metrics as Embedded Metric Format lines: one JSON object per line on
//! stdout, which CloudWatch Logs turns into metrics with no API call (and so no extra
//! IAM, latency or failure mode). A small serde struct: the EMF crates on crates.io
//! are unmaintained or pull in an async runtime of their own.

use serde_json::{json, Map, Value};

use crate::ledger::{now_ms, Counts};

pub const NAMESPACE: &str = "ResourcePolicyProvider";

/// One EMF line: `kind` is `Repair` or `Reconcile`, `service` the dimension.
pub fn line(kind: &str, service: &str, counts: Counts, propagation_ms: Option<u64>) -> Value {
    let mut metrics = vec![
        json!({"Name": "TargetsChecked", "Unit": "Count"}),
        json!({"Name": "DriftFound", "Unit": "Count"}),
        json!({"Name": "Repaired", "Unit": "Count"}),
        json!({"Name": "RepairFailed", "Unit": "Count"}),
    ];
    let mut root = Map::new();
    root.insert("Service".into(), json!(service));
    root.insert("Kind".into(), json!(kind));
    root.insert("TargetsChecked".into(), json!(counts.checked));
    root.insert("DriftFound".into(), json!(counts.drift));
    root.insert("Repaired".into(), json!(counts.repaired));
    root.insert("RepairFailed".into(), json!(counts.failed));
    if let Some(ms) = propagation_ms {
        metrics.push(json!({"Name": "PropagationMs", "Unit": "Milliseconds"}));
        root.insert("PropagationMs".into(), json!(ms));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Service"], ["Service", "Kind"]],
                "Metrics": metrics,
            }]
        }),
    );
    Value::Object(root)
}

/// Writes one EMF line to stdout, where Lambda's log capture picks it up.
pub fn emit(kind: &str, service: &str, counts: Counts, propagation_ms: Option<u64>) {
    println!("{}", line(kind, service, counts, propagation_ms));
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let declared: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in declared {
            assert!(v.get(name).is_some_and(Value::is_number), "{name}");
        }
        assert_eq!(v["Service"], "ssm");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert!(line("Repair", "xray", c, None)
            .get("PropagationMs")
            .is_none());
    }
}
