//! Puts and deletes that the ledger records: the change is marked in flight before the
//! write and settled after it, so drift repair knows the desired state and never
//! fights a change under way. Without a ledger these are plain puts and deletes.

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

pub fn owner_eventbridge(source: &str, event_id: &str) -> String {
    format!("eventbridge:{source}/{event_id}")
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

/// Puts `req`'s policy and records it as the desired state. `known` is what the caller
/// knows of the policy (an SSM PolicyId from the physical id); the ledger's own record
/// fills it in otherwise, so a second apply request replaces the policy it made.
pub async fn put(
    app: &App,
    req: &PolicyRequest,
    known: &Known,
    not_found: NotFound,
    token: &str,
    owner: &str,
    budget: &Budget,
) -> Result<Applied, RecordedError> {
    let Some(ledger) = app.ledger() else {
        return Ok(put_policy(app, req, known, not_found, token, budget).await?);
    };
    let target_id = req.target.display_id();
    let (ticket, held) = ledger
        .begin(&target_id, token)
        .await
        .map_err(|e| ledger_failed(e, false))?;
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
        policy_id: applied
            .version
            .as_ref()
            .and_then(|v| v.known().policy_id)
            .or(known.policy_id),
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
