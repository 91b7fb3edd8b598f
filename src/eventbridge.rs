//! EventBridge: explicit apply requests (`PutResourcePolicy` / `DeleteResourcePolicy`
//! with the request as `detail`), and CloudTrail events for drift repair.
//!
//! A failure is returned as the invocation's error with an `errorType` an operator can
//! route on (`InvalidRequest`, `ServiceError`, `Timeout`), so EventBridge's
//! asynchronous retries, a dead-letter queue or an on-failure destination catch it.

use serde_json::{json, Value};
use tracing::{info, info_span, Instrument};

use crate::app::App;
use crate::apply::{delete_policy, put_policy};
use crate::budget::Budget;
use crate::error::InvocationError;
use crate::request::{InvalidRequest, PolicyNeeded, PolicyRequest};
use crate::retry::NotFound;
use crate::services::Known;

fn text<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub async fn handle(
    app: &App,
    event: Value,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    let detail_type = text(&event, "detail-type").to_string();
    let id = text(&event, "id").to_string();
    let span = info_span!(
        "eventbridge",
        event_id = %id,
        detail_type = %detail_type,
        service = tracing::field::Empty,
        target = tracing::field::Empty
    );
    let needed = match detail_type.as_str() {
        "PutResourcePolicy" => PolicyNeeded::Yes,
        "DeleteResourcePolicy" => PolicyNeeded::No,
        "AWS API Call via CloudTrail" => {
            let _entered = span.enter();
            info!("drift repair needs the desired-state ledger, which is not configured: event acknowledged and ignored");
            return Ok(json!({
                "Status": "IGNORED",
                "Reason": "drift repair needs the ledger, which is not configured"
            }));
        }
        other => {
            return Err(InvocationError::InvalidRequest(format!(
                "unsupported EventBridge event: detail-type {other:?} from source {:?}; \
                 expected PutResourcePolicy or DeleteResourcePolicy",
                text(&event, "source")
            )));
        }
    };
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    apply(app, &detail, needed, &id, lambda_deadline_ms)
        .instrument(span)
        .await
}

/// An apply request: put or delete, with the same validation, retries and
/// propagation wait as a custom resource.
async fn apply(
    app: &App,
    detail: &Value,
    needed: PolicyNeeded,
    id: &str,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    let req = PolicyRequest::from_properties(detail, &app.region, needed)?;
    tracing::Span::current().record("service", req.target.service.key());
    tracing::Span::current().record("target", req.target.display_id());
    let known = Known {
        policy_id: req.policy_id.clone(),
    };
    let budget = Budget::from_lambda_deadline(
        lambda_deadline_ms,
        req.service_timeout,
        app.settings.response_reserve,
    );
    let (status, applied) = match needed {
        PolicyNeeded::Yes => {
            let applied = put_policy(app, &req, &known, NotFound::MayAppear, id, &budget).await?;
            ("APPLIED", applied)
        }
        PolicyNeeded::No => {
            if !app.clients.can_confirm_delete(&req.target, &known) && req.policy.is_none() {
                return Err(InvalidRequest::new(
                    "PolicyId",
                    format!(
                        "{} resources can hold several policies: give PolicyId (or the Policy \
                         to match) to say which one to delete",
                        req.target.service.facts().display_name
                    ),
                )
                .into());
            }
            let policy = req.policy.as_ref();
            let wait = req.wait_for_propagation;
            let (_, applied) =
                delete_policy(app, &req.target, &known, policy, wait, id, &budget).await?;
            ("DELETED", applied)
        }
    };
    info!(status, "done");
    Ok(json!({
        "Status": status,
        "Target": req.target.display_id(),
        "Data": applied.attributes(&req.target),
    }))
}
