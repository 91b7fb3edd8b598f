//! Put or remove one policy, with retries and the read-back that proves it took
//! effect. Entry points (CloudFormation, EventBridge) call these two and only these.

use std::collections::HashMap;
use std::time::Duration;

use tracing::info;

use crate::budget::Budget;
use crate::policy::Policy;
use crate::propagation::{wait_until, PollPolicy};
use crate::request::PolicyRequest;
use crate::retry::{with_retries, NotFound, RetryPolicy};
use crate::services::{shows_put, Clients, Deleted, PutInput, Revision};
use crate::settings::Settings;
use crate::target::{Service, Target};

/// What the whole function shares across invocations: built once at cold start.
pub struct App {
    pub clients: Clients,
    pub settings: Settings,
    /// The function's own region: X-Ray's default.
    pub region: String,
}

/// A change that took effect.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub revision: Revision,
    /// Calls made for the write itself, retries included.
    pub attempts: u32,
    /// Time from the accepted write until it was visible; `None` when not waited for.
    pub propagation: Option<Duration>,
}

impl Applied {
    /// The attributes `Fn::GetAtt` (and an apply request's result) expose.
    pub fn attributes(&self, target: &Target) -> HashMap<String, String> {
        let applied = self;
        let mut d = HashMap::new();
        d.insert("Service".into(), target.service.key().into());
        match (&target.arn, target.service) {
            (Some(arn), _) => {
                d.insert("ResourceArn".into(), arn.clone());
            }
            (None, Service::XRay) => {
                d.insert("PolicyName".into(), target.api_id().into());
                d.insert("Region".into(), target.region.clone());
            }
            _ => {}
        }
        let r = &applied.revision;
        for (key, value) in [
            ("RevisionId", &r.revision_id),
            ("PolicyId", &r.policy_id),
            ("PolicyHash", &r.policy_hash),
            ("PolicyStatus", &r.policy_status),
        ] {
            if let Some(v) = value {
                d.insert(key.into(), v.clone());
            }
        }
        d.insert("Attempts".into(), applied.attempts.to_string());
        if let Some(p) = applied.propagation {
            d.insert("PropagationMs".into(), p.as_millis().to_string());
        }
        d
    }
}

/// A change that did not take effect, and whether a write may have landed anyway
/// (so a rollback must clean up).
#[derive(Clone, Debug)]
pub struct NotApplied {
    pub reason: String,
    pub write_accepted: bool,
}

fn failed_before_write(reason: String) -> NotApplied {
    NotApplied {
        reason,
        write_accepted: false,
    }
}

fn operation(target: &Target, verb: &str) -> String {
    let service = match target.service {
        Service::DynamoDb => "DynamoDB",
        Service::Kinesis => "Kinesis",
        Service::XRay => "X-Ray",
        Service::Aps => "Managed Prometheus",
        Service::Ssm => "SSM",
    };
    format!("{service} {verb} on {target}")
}

/// Attaches `req`'s policy to its target and waits until it is readable.
/// `previous` is what this function put there before (an Update), `not_found` whether
/// a missing resource may still appear, `token` the idempotency token of the request.
pub async fn put_policy(
    app: &App,
    req: &PolicyRequest,
    previous: &Revision,
    not_found: NotFound,
    token: &str,
    budget: &Budget,
) -> Result<Applied, NotApplied> {
    let Some(policy) = req.policy.as_ref() else {
        return Err(failed_before_write("Policy is required".into()));
    };
    let target = &req.target;
    let input = PutInput {
        policy,
        previous,
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
    .map_err(failed_before_write)?;
    info!(attempts = put.attempts, revision = %put.value, "policy accepted");

    let mut applied = Applied {
        revision: put.value,
        attempts: put.attempts,
        propagation: None,
    };
    if req.wait_for_propagation {
        let poll = PollPolicy::from_settings(&app.settings);
        let what = format!("the new policy on {target}");
        let waited = wait_until(
            &what,
            budget,
            &poll,
            || app.clients.read(target, &applied.revision),
            |live| shows_put(target, &applied.revision, policy, live),
        )
        .await
        .map_err(|reason| NotApplied {
            reason: format!("the policy was accepted but is not in force: {reason}"),
            write_accepted: true,
        })?;
        applied.propagation = Some(waited.waited);
        // Report the status waited for (AMP: ACTIVE), not the transitional one the put answered.
        if let Some(status) = waited.seen.and_then(|l| l.revision.policy_status) {
            applied.revision.policy_status = Some(status);
        }
    }
    Ok(applied)
}

/// Removes the policy from `target` (success when it or the resource is already gone)
/// and, when asked, waits until reads no longer return it.
pub async fn delete_policy(
    app: &App,
    target: &Target,
    known: &Revision,
    policy: Option<&Policy>,
    wait: bool,
    token: &str,
    budget: &Budget,
) -> Result<(Deleted, Applied), NotApplied> {
    let retry = RetryPolicy::from_settings(&app.settings);
    let what = operation(target, "DeleteResourcePolicy");
    let deleted = with_retries(&what, budget, &retry, NotFound::Final, || {
        app.clients.delete(target, known, policy, token)
    })
    .await
    .map_err(failed_before_write)?;
    info!(attempts = deleted.attempts, outcome = ?deleted.value, "policy delete done");

    let mut applied = Applied {
        attempts: deleted.attempts,
        ..Applied::default()
    };
    // SSM policies are found by id; without one there is nothing precise to wait for.
    let can_read = target.service != Service::Ssm || known.policy_id.is_some();
    if wait && deleted.value == Deleted::Removed && can_read {
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
        .map_err(|reason| NotApplied {
            reason: format!("the delete was accepted but the policy is still readable: {reason}"),
            write_accepted: true,
        })?;
        applied.propagation = Some(waited.waited);
    }
    Ok((deleted.value, applied))
}
