//! EventBridge: explicit apply requests (`PutResourcePolicy` / `DeleteResourcePolicy`
//! with the request as `detail`, accepted only from allowed accounts), CloudTrail
//! events for drift repair, and the scheduled (or requested) reconcile.
//!
//! A failure is returned as the invocation's error with an `errorType` an operator can
//! route on (`InvalidRequest`, `ServiceError`, `Timeout`), so EventBridge's
//! asynchronous retries, a dead-letter queue or an on-failure destination catch it.

use std::sync::Arc;

use serde_json::{json, Value};
use tracing::{info, info_span, Instrument};

use crate::app::App;
use crate::budget::Budget;
use crate::error::InvocationError;
use crate::recorded::{self, owner_eventbridge};
use crate::request::{InvalidRequest, PolicyNeeded, PolicyRequest};
use crate::retry::NotFound;
use crate::services::Known;
use crate::{drift, reconcile};

fn text<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub async fn handle(
    app: Arc<App>,
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
            return drift::handle(&app, &event, lambda_deadline_ms)
                .instrument(span)
                .await;
        }
        "Scheduled Event" | "Reconcile" => {
            return reconcile::handle(app, &event, lambda_deadline_ms)
                .instrument(span)
                .await;
        }
        other => {
            return Err(InvocationError::InvalidRequest(format!(
                "unsupported EventBridge event: detail-type {other:?} from source {:?}; \
                 expected PutResourcePolicy, DeleteResourcePolicy, a CloudTrail event, \
                 Scheduled Event or Reconcile",
                text(&event, "source")
            )));
        }
    };
    let _entered = span.enter();
    if let Some(allowed) = &app.settings.apply_allowed_accounts {
        let account = text(&event, "account");
        if !allowed.iter().any(|a| a == account) {
            return Err(InvalidRequest::new(
                "account",
                format!(
                    "apply requests from account {account:?} are not allowed \
                     (APPLY_ALLOWED_ACCOUNTS)"
                ),
            )
            .into());
        }
    }
    drop(_entered);
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let source = text(&event, "source");
    apply(&app, &detail, needed, &id, source, lambda_deadline_ms)
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
    source: &str,
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
            let not_found = NotFound::MayAppear;
            // Statements are owned by the sender (its source), not by one event.
            let by_event = req.statements.is_none().then_some(id);
            let owner = owner_eventbridge(source, by_event);
            let put = recorded::put(app, &req, &known, &[], not_found, id, &owner, &budget);
            let applied = put.await?;
            ("APPLIED", applied)
        }
        PolicyNeeded::No if req.statements.is_some() => {
            let sids = req
                .statements
                .as_ref()
                .map(|s| s.sids())
                .unwrap_or_default();
            let owner = owner_eventbridge(source, None);
            let change = recorded::StatementsChange {
                req: &req,
                known: &known,
                owned_before: &sids,
                desired: &[],
                owner: &owner,
            };
            let applied = recorded::change_statements(app, &change, id, &budget).await?;
            ("DELETED", applied)
        }
        PolicyNeeded::No => {
            // SSM: the policy this function made there, as the ledger recorded it.
            let known = match known.policy_id {
                Some(_) => known,
                None => recorded::known_in_ledger(app, &req).await?,
            };
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
            let applied =
                recorded::delete(app, &req.target, &known, policy, wait, id, &budget).await?;
            ("DELETED", applied)
        }
    };
    info!(status, "done");
    let mut data = applied.attributes(&req.target);
    if let Some(st) = &req.statements {
        data.insert("Sids".into(), st.sids().join(","));
    }
    Ok(json!({
        "Status": status,
        "Target": req.target.display_id(),
        "Data": data,
    }))
}
