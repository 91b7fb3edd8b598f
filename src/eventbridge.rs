//! EventBridge: explicit apply requests (`PutResourcePolicy` / `DeleteResourcePolicy`
//! with the request as `detail`), and CloudTrail events for drift repair.
//!
//! A failure is returned as the invocation's error, so EventBridge's asynchronous
//! retries, a dead-letter queue or an on-failure destination catch it.

use serde_json::{json, Value};
use tracing::{info, info_span, Instrument};

use crate::apply::{delete_policy, put_policy, App};
use crate::budget::Budget;
use crate::request::{PolicyNeeded, PolicyRequest};
use crate::retry::NotFound;
use crate::services::Revision;

pub async fn handle(app: &App, event: Value, lambda_deadline_ms: u64) -> Result<Value, String> {
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = event
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let span = info_span!("eventbridge", event_id = %id, detail_type = %detail_type,
        service = tracing::field::Empty, target = tracing::field::Empty);
    async move {
        let needed = match detail_type.as_str() {
            "PutResourcePolicy" => PolicyNeeded::Yes,
            "DeleteResourcePolicy" => PolicyNeeded::No,
            "AWS API Call via CloudTrail" => {
                info!("drift repair needs the desired-state ledger, which is not configured: event acknowledged and ignored");
                return Ok(json!({"Status": "IGNORED", "Reason": "drift repair needs the ledger, which is not configured"}));
            }
            other => {
                let source = event.get("source").and_then(Value::as_str).unwrap_or_default();
                return Err(format!(
                    "unsupported EventBridge event: detail-type {other:?} from source {source:?}; expected PutResourcePolicy or DeleteResourcePolicy"
                ));
            }
        };
        let req = PolicyRequest::from_properties(&detail, &app.region, needed).map_err(|e| format!("Invalid request: {e}"))?;
        tracing::Span::current().record("service", req.target.service.key());
        tracing::Span::current().record("target", req.target.display_id());
        let budget = Budget::from_lambda_deadline(lambda_deadline_ms, req.service_timeout, app.settings.response_reserve);
        let (status, applied) = match needed {
            PolicyNeeded::Yes => {
                let applied = put_policy(app, &req, &Revision::default(), NotFound::MayAppear, &id, &budget)
                    .await
                    .map_err(|e| e.reason)?;
                ("APPLIED", applied)
            }
            PolicyNeeded::No => {
                let (_, applied) = delete_policy(app, &req.target, &Revision::default(), req.policy.as_ref(), req.wait_for_propagation, &id, &budget)
                    .await
                    .map_err(|e| e.reason)?;
                ("DELETED", applied)
            }
        };
        info!(status, "done");
        Ok(json!({"Status": status, "Target": req.target.display_id(), "Data": applied.attributes(&req.target)}))
    }
    .instrument(span)
    .await
}
