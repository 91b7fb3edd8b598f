//! Put or remove one policy, with retries and the read-back that proves it took
//! effect. Entry points (CloudFormation, EventBridge) call these two and only these.

use tracing::{info, warn};

use crate::app::App;
use crate::attributes::Applied;
use crate::calls::budget::Budget;
use crate::calls::propagation::{wait_until, PollPolicy, WaitError};
use crate::calls::retry::{with_retries, NotFound, RetryError, RetryPolicy};
use crate::model::policy::Policy;
use crate::model::request::PolicyRequest;
use crate::model::target::Target;
use crate::services::{shows_put, Deleted, Expected, Known, Landed, PutInput, ServiceError};

/// A change that did not take effect, by what is known of the service's state.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApplyError {
    /// Nothing was written: no call left the function, or the service refused it.
    #[error("{reason}")]
    NotApplied {
        reason: String,
        last: Option<ServiceError>,
        timed_out: bool,
    },
    /// A write may have reached the service (timed out, 5xx, connection broken after
    /// sending, in flight when time ran out): it may be in force.
    #[error("{reason}")]
    Unknown {
        reason: String,
        last: Option<ServiceError>,
    },
    /// The service accepted the write, but reads did not show it in time.
    #[error("{reason}")]
    NotVisible {
        reason: String,
        read_error: Option<ServiceError>,
    },
}

impl ApplyError {
    /// Whether the service may now hold what was written, so a rollback must clean up.
    pub fn may_have_written(&self) -> bool {
        !matches!(self, ApplyError::NotApplied { .. })
    }

    /// The budget ran out (rather than an error from the service).
    pub fn timed_out(&self) -> bool {
        match self {
            ApplyError::NotApplied { timed_out, .. } => *timed_out,
            ApplyError::Unknown { last, .. } => last.is_none(),
            ApplyError::NotVisible { read_error, .. } => read_error.is_none(),
        }
    }

    /// A write's retries ended: whether anything may have landed decides the kind.
    pub(crate) fn from_write(e: RetryError) -> Self {
        match e.landed {
            Landed::No => ApplyError::NotApplied {
                reason: e.reason,
                last: e.last,
                timed_out: e.timed_out,
            },
            Landed::Maybe => ApplyError::Unknown {
                reason: format!(
                    "the outcome of the write is unknown (it may have taken effect): {}",
                    e.reason
                ),
                last: if e.timed_out { None } else { e.last },
            },
        }
    }

    fn from_wait(prefix: &str, e: WaitError) -> Self {
        ApplyError::NotVisible {
            reason: format!("{prefix}: {}", e.reason),
            read_error: e.read_error,
        }
    }
}

fn operation(target: &Target, verb: &str) -> String {
    format!("{} {verb} on {target}", target.service.facts().display_name)
}

/// Attaches `req`'s policy to its target and waits until it is readable.
/// `known` is what this function knows of a policy it put there before (an Update),
/// `not_found` whether a missing resource may still appear, `token` the idempotency
/// token of the request.
pub async fn put_policy(
    app: &App,
    req: &PolicyRequest,
    known: &Known,
    not_found: NotFound,
    token: &str,
    budget: &Budget,
) -> Result<Applied, ApplyError> {
    let Some(policy) = req.policy.as_ref() else {
        return Err(ApplyError::NotApplied {
            reason: "Policy is required".into(),
            last: None,
            timed_out: false,
        });
    };
    let target = &req.target;
    let input = PutInput {
        policy,
        expected: Expected::Anything,
        resendable: true,
        known,
        confirm_remove_self_resource_access: req.confirm_remove_self_resource_access,
        bypass_policy_lockout_check: req.bypass_policy_lockout_check,
        client_token: token,
    };
    let retry = RetryPolicy::from_settings(&app.settings);
    let what = operation(target, "PutResourcePolicy");
    let put = with_retries(&what, budget, &retry, not_found, || {
        app.clients.put(target, &input)
    })
    .await
    .map_err(ApplyError::from_write)?;
    info!(attempts = put.attempts, version = %put.value, "policy accepted");

    let mut applied = Applied {
        version: Some(put.value.clone()),
        attempts: put.attempts,
        propagation: None,
    };
    if !req.wait_for_propagation {
        return Ok(applied);
    }
    let poll = PollPolicy::from_settings(&app.settings);
    let what = format!("the new policy on {target}");
    let read_as = put.value.known();
    match wait_until(
        &what,
        budget,
        &poll,
        || app.clients.read(target, &read_as),
        |live| shows_put(&put.value, policy, live),
    )
    .await
    {
        Ok(waited) => {
            applied.propagation = Some(waited.waited);
            // Report the state waited for (AMP: ACTIVE), not the transitional one the put answered.
            if let Some(seen) = waited.seen {
                applied.version = Some(seen.version);
            }
            Ok(applied)
        }
        // The policy may remove the function's own read access, and the caller said
        // so: applied, visibility not confirmable.
        Err(e)
            if e.read_error.as_ref().is_some_and(|r| r.is_access_denied())
                && (req.confirm_remove_self_resource_access == Some(true)
                    || req.bypass_policy_lockout_check == Some(true)) =>
        {
            warn!(error = %e, "the policy was accepted; reading it back is denied, as the policy \
                itself may intend: visibility not confirmed");
            Ok(applied)
        }
        Err(e) => Err(ApplyError::from_wait(
            "the policy was accepted but is not in force",
            e,
        )),
    }
}

/// Removes the policy from `target` (success when it or the resource is already gone)
/// and, when asked, waits until reads no longer return it.
pub async fn delete_policy(
    app: &App,
    target: &Target,
    known: &Known,
    policy: Option<&Policy>,
    wait: bool,
    token: &str,
    budget: &Budget,
) -> Result<(Deleted, Applied), ApplyError> {
    let retry = RetryPolicy::from_settings(&app.settings);
    let what = operation(target, "DeleteResourcePolicy");
    let deleted = with_retries(&what, budget, &retry, NotFound::Final, || {
        app.clients
            .delete(target, known, policy, &Expected::Anything, token)
    })
    .await
    .map_err(ApplyError::from_write)?;
    info!(attempts = deleted.attempts, outcome = ?deleted.value, "policy delete done");

    let mut applied = Applied {
        attempts: deleted.attempts,
        ..Applied::default()
    };
    if wait && deleted.value == Deleted::Removed && app.clients.can_confirm_delete(target, known) {
        let poll = PollPolicy::from_settings(&app.settings);
        let what = format!("the removal of the policy on {target}");
        let waited = wait_until(
            &what,
            budget,
            &poll,
            || app.clients.read(target, known),
            |live| live.is_none(),
        )
        .await
        .map_err(|e| {
            ApplyError::from_wait(
                "the delete was accepted but the policy is still readable",
                e,
            )
        })?;
        applied.propagation = Some(waited.waited);
    }
    Ok((deleted.value, applied))
}
