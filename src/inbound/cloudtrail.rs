//! CloudTrail events: someone put or deleted a policy. Only the target's identifier is
//! taken from the event; the target is then checked against its owners' plan
//! ([`crate::repair::check`]). A forged event can therefore at most cause a read.

use serde_json::{json, Map, Value};
use tracing::info;

use crate::app::App;
use crate::calls::budget::Budget;
use crate::error::InvocationError;
use crate::metrics;
use crate::model::request::InvalidRequest;
use crate::model::target::Target;
use crate::repair::check::{check, Checked};
use crate::services::Service;
use crate::settings::DriftMode;

/// What a CloudTrail event asks of the function.
#[derive(Debug, PartialEq)]
pub enum Trail {
    /// Check this target; the caller that changed it (CloudTrail's session issuer).
    Check(Target, Option<String>),
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
    let caller = caller
        .or_else(|| {
            detail
                .get("userIdentity")
                .and_then(|u| u.get("arn"))
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    identify(service, params, region, account).map(|t| Trail::Check(t, caller))
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
        .map_err(|e| InvalidRequest::new("requestParameters", e.to_string()))
}

/// A CloudTrail event: check the one target it names.
pub async fn handle(
    app: &App,
    event: &Value,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    if app.settings.drift_mode == DriftMode::Disabled {
        info!("drift repair is disabled (DRIFT_MODE): event acknowledged and ignored");
        return Ok(json!({"Status": "IGNORED", "Reason": "drift repair is disabled"}));
    }
    let ledger = app.ledger();
    let (target, caller) = match read_event(event, app.settings.function_role_arn.as_deref())? {
        Trail::Check(t, caller) => (t, caller),
        Trail::Ignore(why) => {
            info!(reason = %why, "CloudTrail event ignored");
            return Ok(json!({"Status": "IGNORED", "Reason": why}));
        }
    };
    let target_id = target.display_id();
    tracing::Span::current().record("service", target.service.key());
    tracing::Span::current().record("target", target_id.as_str());
    let Some(view) = ledger.get(&target_id).await? else {
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
    let checked = check(app, &view, &token, caller.as_deref(), &budget).await;
    let propagation = match &checked {
        Checked::Repaired { propagation } => propagation.map(|d| d.as_millis() as u64),
        _ => None,
    };
    let counts = checked.counts();
    metrics::emit_with(
        "Repair",
        target.service.key(),
        counts,
        metrics::unrepaired(&counts),
        propagation,
    );
    info!(status = checked.status(), "drift check done");
    match checked {
        Checked::Failed(why) => Err(InvocationError::ServiceError(format!(
            "repairing {target_id} failed: {why}"
        ))),
        Checked::LoopStopped(ref why) | Checked::Detected(ref why) | Checked::Refused(ref why) => {
            Ok(json!({"Status": checked.status(), "Target": target_id, "Reason": why}))
        }
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
            Trail::Check(t, _) => t,
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
