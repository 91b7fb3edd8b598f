//! A rollback Update that cannot reach the ledger is carried on in a fresh,
//! asynchronous invocation of this function, as a Delete's removal is
//! ([`super::owner_gone`]): CloudFormation gets SUCCESS, so a stack never ends in
//! UPDATE_ROLLBACK_FAILED because the ledger was down, and Lambda retries the event
//! (then keeps it in the dead-letter queue) until the old properties are recorded and
//! written. Only a stack that is rolling back is answered this way: a forward Update
//! that cannot record fails, and its rollback comes here.
//!
//! The event carries its hand-off time: a change of the same owner asked for later (its
//! stack's Delete, a later update) supersedes it, whichever runs first.

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::app::App;
use crate::calls::budget::Budget;
use crate::calls::retry::NotFound;
use crate::change::{execute, Change, Options, Wanted};
use crate::error::InvocationError;
use crate::inbound::owner_gone::{asked_since, read_detail};
use crate::ledger::now_ms;
use crate::model::owner::Owner;
use crate::model::request::{InvalidRequest, PolicyNeeded};

pub const DETAIL_TYPE: &str = "RollbackUpdate";

/// Whether the owner's stack is rolling back an update (`DescribeStacks`, read only).
/// Unknown (not a stack owner, access denied, throttled) counts as no.
pub async fn rolling_back(app: &App, owner: &Owner) -> bool {
    let (Owner::Stack { stack_id, .. }, Some(region)) = (owner, owner.stack_region()) else {
        return false;
    };
    let out = app
        .clients
        .cloudformation(region)
        .describe_stacks()
        .stack_name(stack_id)
        .send()
        .await;
    match out {
        Ok(o) => o.stacks().iter().any(|s| {
            s.stack_status()
                .is_some_and(|st| st.as_str().ends_with("ROLLBACK_IN_PROGRESS"))
        }),
        Err(e) => {
            warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
                "could not tell whether the stack is rolling back");
            false
        }
    }
}

/// The event that carries a rollback Update of `owner` to `properties`.
pub fn event(properties: &Value, owner: &Owner, token: &str) -> Value {
    let at = now_ms();
    json!({
        "version": "0",
        "id": format!("{token}-rollback-{at}"),
        "detail-type": DETAIL_TYPE,
        "source": "resource-policy-provider",
        "detail": {
            "Properties": properties,
            "Owner": owner.key(),
            "Since": at,
        }
    })
}

/// Hands `event` to this function's asynchronous queue.
pub async fn send(app: &App, event: &Value) -> Result<(), String> {
    app.invoke_self(event, "the rollback update").await
}

/// Records and writes the rollback's properties, unless the owner changed since.
pub async fn handle(app: &App, event: &Value, deadline_ms: u64) -> Result<Value, InvocationError> {
    let (detail, req, owner) = read_detail(app, event, "Properties", PolicyNeeded::Yes)?;
    let since = detail
        .get("Since")
        .and_then(Value::as_u64)
        .ok_or_else(|| InvalidRequest::new("Since", "Since is the hand-off time, a number"))?;
    let target_id = req.target.display_id();
    if asked_since(app, &target_id, &owner, since).await?.is_some() {
        info!("the owner changed after this rollback was handed off: it is superseded");
        return Ok(json!({"Status": "SUPERSEDED", "Target": target_id}));
    }
    let change = Change {
        target: req.target.clone(),
        owner,
        wanted: Wanted::of(&req),
        options: Options::of(&req),
        token: event
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("rollback")
            .to_string(),
        not_found: NotFound::Final,
        policy_id: req.policy_id.clone(),
        take_over: req.take_over,
        guard_override: req.guard_override,
        // The rollback puts back what the owner held: nothing is taken over.
        existing: true,
        asked_at: Some(since),
    };
    let budget = Budget::from_lambda_deadline(deadline_ms, None, app.settings.response_reserve);
    let applied = execute(app, &change, &budget).await.map_err(|e| {
        InvocationError::ServiceError(format!("the rollback update did not finish: {e}"))
    })?;
    info!("the rollback update finished");
    Ok(json!({
        "Status": "APPLIED",
        "Target": target_id,
        "Attempts": applied.attempts,
    }))
}
