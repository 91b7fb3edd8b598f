//! Puts and deletes that the ledger records: the change is marked in flight before the
//! write and settled after it, so drift repair knows the desired state and never
//! fights a change under way. Without a ledger these are plain puts and deletes.

use std::collections::HashMap;

use serde_json::Value;
use tracing::{info, warn};

use crate::app::App;
use crate::apply::{delete_policy, put_policy, ApplyError};
use crate::attributes::Applied;
use crate::budget::Budget;
use crate::ledger::{Ledger, LedgerError, Settle, Settled, Ticket};
use crate::policy::Policy;
use crate::request::PolicyRequest;
use crate::retry::NotFound;
use crate::services::Known;
use crate::shared;
use crate::target::Target;

/// A recorded change that failed: in the service, or in the ledger.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RecordedError {
    #[error("{0}")]
    Apply(#[from] ApplyError),
    /// `written`: the policy change itself went through before the ledger failed.
    #[error("{error}")]
    Ledger { error: LedgerError, written: bool },
}

impl RecordedError {
    /// Whether the service may now hold what was written, so a rollback must clean up.
    pub fn may_have_written(&self) -> bool {
        match self {
            RecordedError::Apply(e) => e.may_have_written(),
            RecordedError::Ledger { written, .. } => *written,
        }
    }
}

/// Who asked for a change: kept in the ledger as the target's owner.
pub fn owner_cloudformation(stack_id: &str, logical_id: &str) -> String {
    format!("cloudformation:{stack_id}/{logical_id}")
}

/// An apply request's owner: the event for a whole policy; for owned statements the
/// sender (its `source`), so its later requests update the same statements.
pub fn owner_eventbridge(source: &str, event_id: Option<&str>) -> String {
    match event_id {
        Some(id) => format!("eventbridge:{source}/{id}"),
        None => format!("eventbridge:{source}"),
    }
}

fn ledger_failed(error: LedgerError, written: bool) -> RecordedError {
    RecordedError::Ledger { error, written }
}

/// Ends a failed change in the ledger; a failure here is logged (the change failed
/// anyway, and a stale mark expires by itself).
async fn abandon(ledger: &Ledger, ticket: &Ticket) {
    if let Err(e) = ledger.abandon(ticket).await {
        warn!(error = %e, "could not clear the failed change's mark in the ledger");
    }
}

fn refused(reason: String) -> RecordedError {
    RecordedError::Apply(ApplyError::NotApplied {
        reason,
        last: None,
        timed_out: false,
    })
}

/// Puts `req`'s policy (or merges its `Statements`) and records it as the desired
/// state. `known` is what the caller knows of the policy (an SSM PolicyId from the
/// physical id); the ledger's own record fills it in otherwise, so a second apply
/// request replaces the policy it made. `owned_before`: the Sids this owner held
/// before (an Update's old properties).
#[allow(clippy::too_many_arguments)]
pub async fn put(
    app: &App,
    req: &PolicyRequest,
    known: &Known,
    owned_before: &[String],
    not_found: NotFound,
    token: &str,
    owner: &str,
    budget: &Budget,
) -> Result<Applied, RecordedError> {
    if let Some(statements) = &req.statements {
        let change = StatementsChange {
            req,
            known,
            owned_before,
            desired: statements.items(),
            owner,
        };
        return change_statements(app, &change, token, budget).await;
    }
    let Some(ledger) = app.ledger() else {
        return Ok(put_policy(app, req, known, not_found, token, budget).await?);
    };
    let target_id = req.target.display_id();
    let (ticket, held) = ledger
        .begin(&target_id, token)
        .await
        .map_err(|e| ledger_failed(e, false))?;
    if !held.owned_statements.is_empty() {
        abandon(&ledger, &ticket).await;
        let owners: Vec<&String> = held.owned_statements.keys().collect();
        return Err(refused(format!(
            "the policy on {target_id} is shared: statements in it are owned by {owners:?}; \
             give Statements instead of Policy, or remove those first"
        )));
    }
    let known = Known {
        policy_id: known.policy_id.clone().or(held.policy_id),
    };
    let applied = match put_policy(app, req, &known, not_found, token, budget).await {
        Ok(a) => a,
        Err(e) => {
            abandon(&ledger, &ticket).await;
            return Err(e.into());
        }
    };
    let settle = Settle {
        request: Some(req.desired_properties()),
        policy_text: req.policy.as_ref().map(|p| p.text().to_string()),
        service: Some(req.target.service.key().to_string()),
        owner: Some(owner.to_string()),
        policy_id: applied.policy_id_or(&known),
        revision: applied.version.as_ref().map(|v| v.to_string()),
    };
    match ledger.settle_put(&ticket, settle).await {
        Ok(Settled::Recorded) => Ok(applied),
        Ok(Settled::Superseded) => {
            info!("a newer change to this target began meanwhile: it owns the desired state");
            Ok(applied)
        }
        Err(e) => Err(ledger_failed(e, true)),
    }
}

/// Removes the policy and its ledger record.
pub async fn delete(
    app: &App,
    target: &Target,
    known: &Known,
    policy: Option<&Policy>,
    wait: bool,
    token: &str,
    budget: &Budget,
) -> Result<Applied, RecordedError> {
    let Some(ledger) = app.ledger() else {
        let (_, applied) = delete_policy(app, target, known, policy, wait, token, budget).await?;
        return Ok(applied);
    };
    let (ticket, held) = ledger
        .begin(&target.display_id(), token)
        .await
        .map_err(|e| ledger_failed(e, false))?;
    let known = Known {
        policy_id: known.policy_id.clone().or(held.policy_id),
    };
    let applied = match delete_policy(app, target, &known, policy, wait, token, budget).await {
        Ok((_, a)) => a,
        Err(e) => {
            abandon(&ledger, &ticket).await;
            return Err(e.into());
        }
    };
    match ledger.settle_delete(&ticket).await {
        Ok(_) => Ok(applied),
        Err(e) => Err(ledger_failed(e, true)),
    }
}

/// One owner's change to the statements it holds in a shared policy.
pub struct StatementsChange<'a> {
    pub req: &'a PolicyRequest,
    pub known: &'a Known,
    pub owned_before: &'a [String],
    /// The statements wanted now; empty removes all of this owner's.
    pub desired: &'a [Value],
    pub owner: &'a str,
}

/// The target part of a request, as the ledger keeps it for a shared policy.
fn target_properties(req: &PolicyRequest) -> Value {
    let mut props = req.desired_properties();
    if let Some(map) = props.as_object_mut() {
        map.remove("Statements");
        map.remove("Policy");
    }
    props
}

/// Merges (or removes) one owner's statements, through the ledger when there is one:
/// it knows the other owners (named in a conflict) and refuses a policy that is
/// managed as a whole.
pub async fn change_statements(
    app: &App,
    c: &StatementsChange<'_>,
    token: &str,
    budget: &Budget,
) -> Result<Applied, RecordedError> {
    let target_id = c.req.target.display_id();
    let (ledger, ticket, held) = match app.ledger() {
        Some(ledger) => {
            let (ticket, held) = ledger
                .begin(&target_id, token)
                .await
                .map_err(|e| ledger_failed(e, false))?;
            (Some(ledger), Some(ticket), Some(held))
        }
        None => (None, None, None),
    };
    if let (Some(ledger), Some(ticket), Some(held)) = (&ledger, &ticket, &held) {
        if held.whole_policy() {
            abandon(ledger, ticket).await;
            return Err(refused(format!(
                "the policy on {target_id} is managed as a whole by {}: Statements cannot \
                 share it; remove that resource's Policy first",
                held.owner.as_deref().unwrap_or("another resource")
            )));
        }
    }
    let mut owned_before: Vec<String> = c.owned_before.to_vec();
    let mut owners = HashMap::new();
    let mut known = c.known.clone();
    if let Some(held) = &held {
        if let Some(mine) = held.owned_statements.get(c.owner) {
            for sid in mine
                .iter()
                .filter_map(|s| s.get("Sid").and_then(Value::as_str))
            {
                if !owned_before.iter().any(|o| o == sid) {
                    owned_before.push(sid.to_string());
                }
            }
        }
        for d in c.desired {
            if let Some(sid) = d.get("Sid").and_then(Value::as_str) {
                if let Some(other) = held.owner_of(sid, c.owner) {
                    owners.insert(sid.to_string(), other);
                }
            }
        }
        known.policy_id = known.policy_id.or(held.policy_id.clone());
    }
    let change = shared::Change {
        req: c.req,
        owned_before: &owned_before,
        desired: c.desired,
        owners: &owners,
        known: &known,
    };
    let applied = match shared::apply(app, &change, token, budget).await {
        Ok(a) => a,
        Err(e) => {
            if let (Some(ledger), Some(ticket)) = (&ledger, &ticket) {
                abandon(ledger, ticket).await;
            }
            return Err(e.into());
        }
    };
    if let (Some(ledger), Some(ticket)) = (&ledger, &ticket) {
        let desired = (!c.desired.is_empty()).then_some(c.desired);
        let service = c.req.target.service.key();
        ledger
            .settle_statements(ticket, c.owner, desired, &target_properties(c.req), service)
            .await
            .map_err(|e| ledger_failed(e, true))?;
    }
    Ok(applied)
}

/// What the ledger knows of a target's policy (SSM: its PolicyId), for a delete that
/// names neither a PolicyId nor a document.
pub async fn known_in_ledger(app: &App, req: &PolicyRequest) -> Result<Known, LedgerError> {
    let Some(ledger) = app.ledger() else {
        return Ok(Known::default());
    };
    Ok(Known {
        policy_id: ledger
            .get(&req.target.display_id())
            .await?
            .and_then(|d| d.policy_id),
    })
}
