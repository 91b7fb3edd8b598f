//! Guardrails (SPEC §9): the pure decisions the single change executor asks before it
//! writes, so every path (CloudFormation, apply requests, repairs, reconcile) gets the
//! same answer. Nothing here does I/O or calls AWS.
//!
//! - `settings.rs`: what the operator configured (the `GUARD_*` variables).
//! - `check.rs`: the grant guard, refusing public grants and principals outside the
//!   allowed accounts or organization; built on `principals.rs` (who a statement
//!   names) and `pins.rs` (which conditions restrict it, after IAM Access Analyzer's
//!   public-access definition).
//! - `diff.rs`: a dry run's statement-level difference from the live policy.
//! - `describe.rs`: what a policy the ledger does not attribute holds, for a takeover
//!   refusal.
//!
//! # IAM Access Analyzer (a possible `access-analyzer` feature, not built)
//! `CheckNoPublicAccess` and `ValidatePolicy` could confirm this guard before a write
//! where the account uses Access Analyzer. Measured (aws-facts §11.1): calling both
//! through `aws-sdk-accessanalyzer` adds 348 KiB to the binary (3.35 → 3.70 MB) and
//! 137 KB to the zip (1.47 → 1.60 MB), with no crate the lock file lacks. Custom checks
//! are billed per call; `CheckNoPublicAccess` knows DynamoDB tables and streams and
//! Kinesis streams and consumers only (no X-Ray, AMP or SSM type: an unsupported type
//! is an error), and DynamoDB already refuses public policies itself (Block Public
//! Access is always on). So it stays out of the default build: if added, it is a cargo
//! feature `access-analyzer`, off by default, asked after [`check()`] and never instead
//! of it.

mod check;
mod describe;
mod diff;
mod pins;
mod principals;
mod settings;

pub use check::{check, Rule, Violation};
pub use describe::describe;
pub use diff::{diff, PolicyDiff};
pub use settings::{GuardSettings, PublicAccess};

use serde_json::Value;

/// A document's statements in order: its `Statement` list, or the one statement when
/// `Statement` is a single object; none when it is missing.
fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    }
}

/// A statement's non-empty Sid.
fn sid(statement: &Value) -> Option<&str> {
    statement
        .get("Sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// How reports name a statement: its Sid, or `Statement[i]` by its place.
fn label(statement: &Value, index: usize) -> String {
    sid(statement)
        .map(str::to_string)
        .unwrap_or_else(|| format!("Statement[{index}]"))
}
