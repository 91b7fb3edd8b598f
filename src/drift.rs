//! Drift repair: a CloudTrail event says someone put or deleted a policy. Only the
//! target's identifier is taken from it; the live policy is read back, compared by
//! meaning with what the ledger holds, and re-applied when they differ. A forged
//! event can therefore at most cause a read.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tracing::{info, warn};

use crate::app::App;
use crate::apply::put_policy;
use crate::budget::Budget;
use crate::error::InvocationError;
use crate::ledger::{Counts, Desired, Ledger, Settle, Ticket};
use crate::metrics;
use crate::request::{InvalidRequest, PolicyNeeded, PolicyRequest};
use crate::retry::NotFound;
use crate::services::{Known, LivePolicy, Service};
use crate::shared;
use crate::statements::all_present;
use crate::target::Target;

/// What a CloudTrail event asks of the function.
#[derive(Debug, PartialEq)]
pub enum Trail {
    /// Check this target.
    Check(Target),
    /// Nothing to do, and why (logged).
    Ignore(String),
}

/// Reads a CloudTrail event's identity. `own_role` is the function's own role: what it
/// did itself is not drift.
pub fn read_event(event: &Value, own_role: Option<&str>) -> Result<Trail, InvalidRequest> {
    let detail = match event.get("detail") {
        Some(Value::Object(d)) => d,
        _ => {
            return Err(InvalidRequest::new(
                "detail",
                "the CloudTrail event has no detail object",
            ))
        }
    };
    let text = |k: &str| detail.get(k).and_then(Value::as_str).unwrap_or_default();
    if let Some(code) = detail.get("errorCode").filter(|c| !c.is_null()) {
        return Ok(Trail::Ignore(format!(
            "the call failed ({code}): nothing changed"
        )));
    }
    let name = text("eventName");
    if !matches!(name, "PutResourcePolicy" | "DeleteResourcePolicy") {
        return Ok(Trail::Ignore(format!(
            "{name:?} is not PutResourcePolicy or DeleteResourcePolicy"
        )));
    }
    let source = text("eventSource");
    let Some(service) = Service::ALL
        .into_iter()
        .find(|s| source == format!("{}.amazonaws.com", s.key()))
    else {
        return Ok(Trail::Ignore(format!(
            "eventSource {source:?} is not one of the five services"
        )));
    };
    let caller = detail
        .get("userIdentity")
        .and_then(|u| u.pointer("/sessionContext/sessionIssuer/arn"))
        .and_then(Value::as_str);
    if own_role.is_some() && caller == own_role {
        return Ok(Trail::Ignore(
            "the change was made by this function's own role".into(),
        ));
    }
    let params = match detail.get("requestParameters") {
        Some(Value::Object(p)) => p,
        _ => {
            return Err(InvalidRequest::new(
                "requestParameters",
                "the CloudTrail event has no requestParameters object",
            ))
        }
    };
    let region = event
        .get("region")
        .and_then(Value::as_str)
        .or_else(|| detail.get("awsRegion").and_then(Value::as_str))
        .unwrap_or_default();
    let account = event
        .get("account")
        .and_then(Value::as_str)
        .or_else(|| detail.get("recipientAccountId").and_then(Value::as_str))
        .unwrap_or_default();
    identify(service, params, region, account).map(Trail::Check)
}

/// The target named in `requestParameters`, under the service's own key (read
/// case-insensitively: `resourceArn`, `resourceARN`, `policyName`, `workspaceId`).
fn identify(
    service: Service,
    params: &Map<String, Value>,
    region: &str,
    account: &str,
) -> Result<Target, InvalidRequest> {
    let key = service.facts().trail_key;
    let value = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .ok_or_else(|| {
            InvalidRequest::new(
                "requestParameters",
                format!(
                    "requestParameters names no target ({key}); keys: {:?}",
                    params.keys().collect::<Vec<_>>()
                ),
            )
        })?;
    service
        .target_from_trail(value, region, account)
        .map_err(|e| InvalidRequest::new("requestParameters", e))
}

/// What a check found.
#[derive(Clone, Debug, PartialEq)]
pub enum Checked {
    /// The ledger does not know the target: left alone.
    Unmanaged,
    /// A change to it is under way: a repair would fight it.
    InFlight,
    InSync,
    Repaired {
        propagation: Option<Duration>,
    },
    Failed(String),
}

impl Checked {
    pub fn counts(&self) -> Counts {
        let (checked, drift, repaired, failed) = match self {
            Checked::Unmanaged | Checked::InFlight => (0, 0, 0, 0),
            Checked::InSync => (1, 0, 0, 0),
            Checked::Repaired { .. } => (1, 1, 1, 0),
            Checked::Failed(_) => (1, 1, 0, 1),
        };
        Counts {
            checked,
            drift,
            repaired,
            failed,
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            Checked::Unmanaged => "UNMANAGED",
            Checked::InFlight => "IN_FLIGHT",
            Checked::InSync => "IN_SYNC",
            Checked::Repaired { .. } => "REPAIRED",
            Checked::Failed(_) => "FAILED",
        }
    }
}

/// Reads `desired`'s target and re-applies the desired policy if the live one differs.
/// A target already in sync costs one read and no write.
pub async fn check(
    app: &App,
    ledger: &Ledger,
    desired: &Desired,
    token: &str,
    budget: &Budget,
) -> Checked {
    if desired.in_flight.is_some() {
        return Checked::InFlight;
    }
    let Some(props) = &desired.request else {
        return Checked::InFlight;
    };
    if !desired.owned_statements.is_empty() {
        return check_statements(app, ledger, desired, props, token, budget).await;
    }
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) => r,
        Err(e) => return Checked::Failed(format!("the ledger's request is invalid: {e}")),
    };
    let known = Known {
        policy_id: desired.policy_id.clone(),
    };
    let live = match read_live(app, &req.target, &known).await {
        Ok(live) => live,
        Err(checked) => return checked,
    };
    let Some(policy) = &req.policy else {
        return Checked::Failed("the ledger holds no policy".into());
    };
    if live.is_some_and(|l| policy.matches(&l.document)) {
        return Checked::InSync;
    }
    info!(target = %desired.target_id, "drift: the live policy differs from the desired one");
    let ticket = match begin_repair(ledger, desired, token).await {
        Ok(t) => t,
        Err(checked) => return checked,
    };
    match put_policy(app, &req, &known, NotFound::Final, token, budget).await {
        Ok(applied) => {
            let settle = Settle {
                policy_id: applied.policy_id_or(&known),
                revision: applied.version.as_ref().map(|v| v.to_string()),
                ..Settle::default()
            };
            if let Err(e) = ledger.settle_put(&ticket, settle).await {
                warn!(error = %e, "repaired, but the ledger could not record it");
            }
            Checked::Repaired {
                propagation: applied.propagation,
            }
        }
        Err(e) => {
            if let Err(le) = ledger.abandon(&ticket).await {
                warn!(error = %le, "could not clear the repair's mark in the ledger");
            }
            Checked::Failed(e.to_string())
        }
    }
}

/// Marks a repair in flight, unless something changed since the ledger was read.
async fn begin_repair(ledger: &Ledger, desired: &Desired, token: &str) -> Result<Ticket, Checked> {
    match ledger.begin_repair(desired, token).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(Checked::InFlight),
        Err(e) => Err(Checked::Failed(e.to_string())),
    }
}

/// The live policy, or the check's failure.
async fn read_live(
    app: &App,
    target: &Target,
    known: &Known,
) -> Result<Option<LivePolicy>, Checked> {
    app.clients
        .read(target, known)
        .await
        .map_err(|e| Checked::Failed(format!("reading the live policy failed: {e}")))
}

/// A shared policy: every owner's statements must be there as recorded; statements
/// written by hand next to them are left alone.
async fn check_statements(
    app: &App,
    ledger: &Ledger,
    desired: &Desired,
    props: &Value,
    token: &str,
    budget: &Budget,
) -> Checked {
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::No) {
        Ok(r) => r,
        Err(e) => return Checked::Failed(format!("the ledger's request is invalid: {e}")),
    };
    let owned: Vec<Value> = desired
        .owned_statements
        .values()
        .flatten()
        .cloned()
        .collect();
    let sids: Vec<String> = owned
        .iter()
        .filter_map(|s| s.get("Sid").and_then(Value::as_str).map(str::to_string))
        .collect();
    let known = Known {
        policy_id: desired.policy_id.clone(),
    };
    let live = match read_live(app, &req.target, &known).await {
        Ok(live) => live,
        Err(checked) => return checked,
    };
    if all_present(live.as_ref().map(|l| l.document.as_str()), &owned) {
        return Checked::InSync;
    }
    info!(target = %desired.target_id, "drift: owned statements are missing or changed");
    let ticket = match begin_repair(ledger, desired, token).await {
        Ok(t) => t,
        Err(checked) => return checked,
    };
    let change = shared::Change {
        req: &req,
        owned_before: &sids,
        desired: &owned,
        owners: &HashMap::new(),
        known: &known,
    };
    let result = shared::apply(app, &change, token, budget).await;
    if let Err(e) = ledger.abandon(&ticket).await {
        warn!(error = %e, "could not clear the repair's mark in the ledger");
    }
    match result {
        Ok(applied) => Checked::Repaired {
            propagation: applied.propagation,
        },
        Err(e) => Checked::Failed(e.to_string()),
    }
}

/// A CloudTrail event: check the one target it names.
pub async fn handle(
    app: &App,
    event: &Value,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    let Some(ledger) = app.ledger() else {
        info!("drift repair needs the desired-state ledger (LEDGER_TABLE), which is not configured: event acknowledged and ignored");
        return Ok(json!({
            "Status": "IGNORED",
            "Reason": "drift repair needs the ledger, which is not configured"
        }));
    };
    let target = match read_event(event, app.settings.function_role_arn.as_deref())? {
        Trail::Check(t) => t,
        Trail::Ignore(why) => {
            info!(reason = %why, "CloudTrail event ignored");
            return Ok(json!({"Status": "IGNORED", "Reason": why}));
        }
    };
    let target_id = target.display_id();
    tracing::Span::current().record("service", target.service.key());
    tracing::Span::current().record("target", target_id.as_str());
    let Some(desired) = ledger.get(&target_id).await? else {
        info!("the ledger does not manage this target: left alone");
        return Ok(json!({"Status": "UNMANAGED", "Target": target_id}));
    };
    let budget =
        Budget::from_lambda_deadline(lambda_deadline_ms, None, app.settings.response_reserve);
    let token = event
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("drift")
        .to_string();
    let checked = check(app, &ledger, &desired, &token, &budget).await;
    let propagation = match &checked {
        Checked::Repaired { propagation } => propagation.map(|d| d.as_millis() as u64),
        _ => None,
    };
    metrics::emit(
        "Repair",
        target.service.key(),
        checked.counts(),
        propagation,
    );
    info!(status = checked.status(), "drift check done");
    match checked {
        Checked::Failed(why) => Err(InvocationError::ServiceError(format!(
            "repairing {target_id} failed: {why}"
        ))),
        other => Ok(json!({"Status": other.status(), "Target": target_id})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(source: &str, name: &str, params: Value) -> Value {
        json!({
            "detail-type": "AWS API Call via CloudTrail",
            "source": format!("aws.{}", source.split('.').next().unwrap()),
            "account": "123456789012",
            "region": "eu-west-1",
            "detail": {
                "eventSource": source,
                "eventName": name,
                "requestParameters": params,
                "userIdentity": {"sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/someone"}}}
            }
        })
    }

    fn target(e: Value) -> Target {
        match read_event(&e, Some("arn:aws:iam::123456789012:role/provider")).unwrap() {
            Trail::Check(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_service_names_its_target_in_its_own_key() {
        let ddb = "arn:aws:dynamodb:eu-west-1:123456789012:table/t";
        assert_eq!(
            target(trail(
                "dynamodb.amazonaws.com",
                "PutResourcePolicy",
                json!({"resourceArn": ddb})
            ))
            .display_id(),
            ddb
        );
        let kin = "arn:aws:kinesis:eu-west-1:123456789012:stream/s";
        assert_eq!(
            target(trail(
                "kinesis.amazonaws.com",
                "DeleteResourcePolicy",
                json!({"resourceARN": kin})
            ))
            .display_id(),
            kin
        );
        assert_eq!(
            target(trail(
                "xray.amazonaws.com",
                "PutResourcePolicy",
                json!({"PolicyName": "p"})
            ))
            .display_id(),
            "xray:eu-west-1:policy/p"
        );
        assert_eq!(
            target(trail(
                "aps.amazonaws.com",
                "PutResourcePolicy",
                json!({"workspaceId": "ws-1"})
            ))
            .display_id(),
            "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"
        );
        let ssm = "arn:aws:ssm:eu-west-1:123456789012:parameter/p";
        assert_eq!(
            target(trail(
                "ssm.amazonaws.com",
                "PutResourcePolicy",
                json!({"resourceArn": ssm})
            ))
            .display_id(),
            ssm
        );
    }

    #[test]
    fn failed_calls_own_calls_and_other_calls_are_ignored() {
        let ddb = json!({"resourceArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/t"});
        let role = "arn:aws:iam::123456789012:role/provider";
        let own = Some(role);
        let mut failed = trail("dynamodb.amazonaws.com", "PutResourcePolicy", ddb.clone());
        failed["detail"]["errorCode"] = json!("AccessDenied");
        assert!(matches!(read_event(&failed, own), Ok(Trail::Ignore(_))));
        let mut mine = trail("dynamodb.amazonaws.com", "PutResourcePolicy", ddb.clone());
        mine["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = json!(role);
        assert!(matches!(read_event(&mine, own), Ok(Trail::Ignore(r)) if r.contains("own role")));
        let other_op = trail("dynamodb.amazonaws.com", "CreateTable", ddb.clone());
        assert!(matches!(read_event(&other_op, own), Ok(Trail::Ignore(_))));
        let other_service = trail("s3.amazonaws.com", "PutBucketPolicy", ddb);
        assert!(matches!(
            read_event(&other_service, own),
            Ok(Trail::Ignore(_))
        ));
    }

    #[test]
    fn malformed_events_are_clear_errors() {
        let own = None;
        let e =
            read_event(&json!({"detail-type": "AWS API Call via CloudTrail"}), own).unwrap_err();
        assert_eq!(e.property, "detail");
        let no_params = json!({"detail": {"eventSource": "ssm.amazonaws.com", "eventName": "PutResourcePolicy"}});
        assert_eq!(
            read_event(&no_params, own).unwrap_err().property,
            "requestParameters"
        );
        let no_id = trail(
            "ssm.amazonaws.com",
            "PutResourcePolicy",
            json!({"policy": "{}"}),
        );
        let e = read_event(&no_id, own).unwrap_err();
        assert!(e.message.contains("names no target"), "{e}");
        let bad_arn = trail(
            "ssm.amazonaws.com",
            "PutResourcePolicy",
            json!({"resourceArn": "nope"}),
        );
        assert!(read_event(&bad_arn, own).is_err());
    }
}
