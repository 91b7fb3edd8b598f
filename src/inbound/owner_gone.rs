//! An owner's removal continued in a fresh, asynchronous invocation of this function:
//! a Delete that could not reach the ledger, or whose removal did not finish, hands it
//! here. Lambda retries a failed asynchronous invocation and then keeps it in the
//! dead-letter queue, so the record that the owner is gone is never lost and a stack is
//! never held up by it. The event is only accepted from the function itself (direct
//! invocation; the apply bus's rule never matches its detail-type).

use serde_json::{json, Value};
use tracing::info;

use crate::app::App;
use crate::calls::budget::Budget;
use crate::calls::retry::NotFound;
use crate::change::{execute, target_request, Change, Options, Wanted};
use crate::error::InvocationError;
use crate::ledger::{now_ms, Holding, LedgerError, Record};
use crate::model::owner::Owner;
use crate::model::request::{InvalidRequest, PolicyNeeded, PolicyRequest};

pub const DETAIL_TYPE: &str = "OwnerGone";

/// The event that carries `c`'s removal.
pub fn event(c: &Change) -> Value {
    let (legacy, legacy_policy_id) = match &c.wanted {
        Wanted::Remove {
            legacy,
            legacy_policy_id,
        } => (
            legacy.as_ref().map(Holding::to_json),
            legacy_policy_id.clone(),
        ),
        _ => (None, None),
    };
    json!({
        "version": "0",
        "id": format!("{}-gone-{}", c.token, now_ms()),
        "detail-type": DETAIL_TYPE,
        "source": "resource-policy-provider",
        "detail": {
            "Target": target_request(&c.target),
            "Owner": c.owner.key(),
            "Legacy": legacy,
            "LegacyPolicyId": legacy_policy_id,
            // The fence: a change of this owner recorded after the Delete is newer.
            "Since": now_ms(),
        }
    })
}

/// Hands `event` to this function's asynchronous queue.
pub async fn send(app: &App, event: &Value) -> Result<(), String> {
    app.invoke_self(event, "the removal").await
}

/// A handed-off event's detail: the target (or properties) under `key`, and the owner.
pub(crate) fn read_detail(
    app: &App,
    event: &Value,
    key: &str,
    needed: PolicyNeeded,
) -> Result<(Value, PolicyRequest, Owner), InvalidRequest> {
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let req = PolicyRequest::from_properties(
        detail.get(key).unwrap_or(&Value::Null),
        &app.region,
        needed,
    )?;
    let owner = detail
        .get("Owner")
        .and_then(Value::as_str)
        .and_then(Owner::parse)
        .ok_or_else(|| {
            InvalidRequest::new("Owner", "Owner is not an owner key this function made")
        })?;
    Ok((detail, req, owner))
}

/// The owner's record on the target if a change of it was asked for after `since` (a
/// handed-off event's time): that change supersedes the event.
pub(crate) async fn asked_since(
    app: &App,
    target_id: &str,
    owner: &Owner,
    since: u64,
) -> Result<Option<Record>, LedgerError> {
    let now = app.ledger().get(target_id).await?;
    Ok(now
        .and_then(|mut v| v.owners.remove(&owner.key()))
        .filter(|r| r.asked_at() > since))
}

/// Records the owner gone (if it is not yet) and converges the target.
pub async fn handle(app: &App, event: &Value, deadline_ms: u64) -> Result<Value, InvocationError> {
    let (detail, req, owner) = read_detail(app, event, "Target", PolicyNeeded::No)?;
    let change = Change {
        target: req.target.clone(),
        owner,
        wanted: Wanted::Remove {
            legacy: detail.get("Legacy").and_then(Holding::from_json),
            legacy_policy_id: detail
                .get("LegacyPolicyId")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        options: Options {
            wait_for_propagation: true,
            ..Options::default()
        },
        token: event
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("gone")
            .to_string(),
        not_found: NotFound::Final,
        policy_id: None,
        take_over: false,
        guard_override: false,
        asked_at: None,
        existing: true,
    };
    // A late delivery must not remove what the owner asked for since (the same
    // logical id created again after the Delete).
    let since = detail.get("Since").and_then(Value::as_u64).unwrap_or(0);
    let target_id = req.target.display_id();
    if asked_since(app, &target_id, &change.owner, since)
        .await?
        .is_some_and(|r| r.present)
    {
        info!("the owner changed after this removal was handed off: it is superseded");
        return Ok(json!({"Status": "SUPERSEDED", "Target": target_id}));
    }
    let budget = Budget::from_lambda_deadline(deadline_ms, None, app.settings.response_reserve);
    let applied = execute(app, &change, &budget)
        .await
        .map_err(|e| InvocationError::ServiceError(format!("the removal did not finish: {e}")))?;
    info!("the owner's removal finished");
    Ok(json!({
        "Status": "DELETED",
        "Target": req.target.display_id(),
        "Attempts": applied.attempts,
    }))
}
