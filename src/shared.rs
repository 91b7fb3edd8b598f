//! Shared policies, applied: a read-modify-write of the statements one owner holds in
//! a target's policy, guarded by the service's own precondition (DynamoDB and X-Ray
//! revision, Managed Prometheus revisionId, SSM PolicyHash). A precondition failure
//! re-reads and merges again, with jittered backoff, inside the budget.
//!
//! Kinesis has no precondition: there the write is read back several times over a
//! settle window (about 1.5 s) and, if another writer's update replaced it (a lost
//! update), merged and written again, a bounded number of times. A writer that
//! replaces it after that window is not seen: a weaker guarantee, documented as such
//! (drift repair and the reconcile restore such a statement from the ledger).

use std::collections::HashMap;

use serde_json::Value;
use tokio::time::{sleep, Instant};
use tracing::info;

use crate::app::App;
use crate::apply::ApplyError;
use crate::attributes::Applied;
use crate::budget::Budget;
use crate::policy::Policy;
use crate::propagation::{wait_until, PollPolicy};
use crate::request::PolicyRequest;
use crate::retry::{with_retries, NotFound, RetryPolicy};
use crate::services::{Deleted, ErrorKind, Expected, Known, LivePolicy, PutInput, Version};
use crate::statements::{all_present, check_size, merge, MergeError};

/// Rounds of read-merge-write before giving up on a contended policy.
pub const MAX_ROUNDS: u32 = 12;

/// One owner's change to a shared policy.
pub struct Change<'a> {
    pub req: &'a PolicyRequest,
    /// The Sids this owner held before (an Update's old properties, the ledger's record).
    pub owned_before: &'a [String],
    /// The statements it wants now; empty to remove all of its own.
    pub desired: &'a [Value],
    /// Which owner holds a Sid that is not this one's, for a conflict's message.
    pub owners: &'a HashMap<String, String>,
    pub known: &'a Known,
}

fn not_applied(reason: String) -> ApplyError {
    ApplyError::NotApplied {
        reason,
        last: None,
        timed_out: false,
    }
}

/// Applies `change` and waits until the policy shows it. `Applied::version` is the
/// version written (or read, when nothing had to change).
pub async fn apply(
    app: &App,
    change: &Change<'_>,
    token: &str,
    budget: &Budget,
) -> Result<Applied, ApplyError> {
    let target = &change.req.target;
    let service = target.service;
    let retry = RetryPolicy::from_settings(&app.settings);
    let display = service.facts().display_name;
    // Without a precondition (Kinesis) a write is only as fresh as the read before
    // it: no retry may resend it later, every failure reads and merges again.
    let guarded = service.facts().has_precondition;
    let removed: Vec<&String> = change
        .owned_before
        .iter()
        .filter(|s| {
            !change
                .desired
                .iter()
                .any(|d| d.get("Sid").and_then(Value::as_str) == Some(s))
        })
        .collect();
    // One try per round: a conflict must read again, not write the same merge again
    // (and without a precondition, neither may throttling or a 5xx).
    let once = if guarded {
        retry.single_write()
    } else {
        retry.single_write().once()
    };
    let mut known = change.known.clone();
    let started = Instant::now();
    let mut attempts = 0;
    for round in 1..=MAX_ROUNDS {
        let what = format!("{display} read of the policy on {target}");
        let live = with_retries(&what, budget, &retry, NotFound::Final, || {
            app.clients.read(target, &known)
        })
        .await
        .map_err(ApplyError::from_write)?
        .value;
        let merged = merge(
            live.as_ref().map(|l| l.document.as_str()),
            change.owned_before,
            change.desired,
            |sid| change.owners.get(sid).cloned(),
        )
        .map_err(|e| {
            not_applied(format!(
                "the statements cannot be merged into the policy on {target}: {e}"
            ))
        })?;
        if !merged.changed {
            info!(
                round,
                "the policy already holds these statements: nothing to write"
            );
            return Ok(Applied {
                version: live.map(|l| l.version),
                attempts,
                propagation: Some(started.elapsed()),
            });
        }
        attempts = round;
        let outcome = match &merged.document {
            None => {
                let what = format!("{display} DeleteResourcePolicy on {target}");
                let token = format!("{token}-r{round}");
                let live_known = live.as_ref().map(|l| l.version.known()).unwrap_or_default();
                // Only the version read may go: a statement someone added since stays.
                let expected = match &live {
                    Some(l) if guarded => Expected::Version(l.version.clone()),
                    _ => Expected::Anything,
                };
                with_retries(&what, budget, &once, NotFound::Final, || {
                    app.clients
                        .delete(target, &live_known, None, &expected, &token)
                })
                .await
                .map(|d| (d.value == Deleted::Removed).then_some(Version::Unversioned))
            }
            Some(doc) => {
                let policy = Policy::from_document(doc.clone());
                check_size(policy.text(), service.policy_size_limit(), service.key())
                    .map_err(|e: MergeError| not_applied(format!("Statements on {target}: {e}")))?;
                let input = PutInput {
                    policy: &policy,
                    expected: match &live {
                        _ if !guarded => Expected::Anything,
                        Some(l) => Expected::Version(l.version.clone()),
                        None => Expected::NoPolicy,
                    },
                    resendable: guarded,
                    known: &known,
                    confirm_remove_self_resource_access: change
                        .req
                        .confirm_remove_self_resource_access,
                    bypass_policy_lockout_check: change.req.bypass_policy_lockout_check,
                    client_token: &format!("{token}-r{round}"),
                };
                let what = format!("{display} PutResourcePolicy on {target}");
                with_retries(&what, budget, &once, NotFound::Final, || {
                    app.clients.put(target, &input)
                })
                .await
                .map(|v| Some(v.value))
            }
        };
        let written = match outcome {
            Ok(v) => v,
            // A conflict (or "not ready") re-reads and merges again, even after an
            // attempt whose answer was lost: if that one landed, the merge finds
            // nothing left to change.
            Err(e)
                if e.last.as_ref().is_some_and(|l| {
                    matches!(l.kind, ErrorKind::Conflict | ErrorKind::NotReady)
                        || (!guarded
                            && matches!(l.kind, ErrorKind::Throttled | ErrorKind::Transient))
                }) =>
            {
                let delay = retry.backoff(round);
                if Instant::now() + delay >= budget.work_deadline() {
                    return Err(ApplyError::from_write(e));
                }
                info!(
                    round,
                    delay_ms = delay.as_millis() as u64,
                    "the policy changed under us: reading and merging again"
                );
                sleep(delay).await;
                continue;
            }
            Err(e) => return Err(ApplyError::from_write(e)),
        };
        if let Some(v) = &written {
            known = match v.known() {
                k if k.policy_id.is_some() => k,
                _ => known,
            };
        }
        // Read back: every owned statement present, every removed one gone.
        let visible = |l: Option<&LivePolicy>| {
            let doc = l.map(|l| l.document.as_str());
            all_present(doc, change.desired) && !removed.iter().any(|sid| has_sid(doc, sid))
        };
        if !guarded {
            // Last writer wins: a writer that read before our write may replace it later.
            // Check again over a settle window, and merge again if our write was lost.
            if settled(app, target, &known, budget, &visible).await {
                return Ok(Applied {
                    version: written,
                    attempts,
                    propagation: Some(started.elapsed()),
                });
            }
            info!(
                round,
                "a concurrent write replaced ours (Kinesis has no precondition): merging again"
            );
            sleep(retry.backoff(round)).await;
            continue;
        }
        if !change.req.wait_for_propagation {
            return Ok(Applied {
                version: written,
                attempts,
                propagation: None,
            });
        }
        let poll = PollPolicy::from_settings(&app.settings);
        let what = format!("the merged policy on {target}");
        let waited = wait_until(
            &what,
            budget,
            &poll,
            || app.clients.read(target, &known),
            visible,
        )
        .await
        .map_err(|e| ApplyError::NotVisible {
            reason: format!(
                "the merged policy was accepted but is not in force: {}",
                e.reason
            ),
            read_error: e.read_error,
        })?;
        return Ok(Applied {
            version: waited.seen.map(|s| s.version).or(written),
            attempts,
            propagation: Some(waited.waited),
        });
    }
    Err(ApplyError::NotApplied {
        reason: format!(
            "the policy on {target} kept changing under concurrent writers: gave up after {MAX_ROUNDS} rounds of read, merge and write"
        ),
        last: None,
        timed_out: false,
    })
}

/// Pauses after a Kinesis write at which the policy is read again: a concurrent
/// writer's lost update shows within this window (about 1.5 s in all).
const SETTLE_CHECKS_MS: [u64; 4] = [50, 200, 450, 800];

/// Whether the write is still there at every check of the settle window.
async fn settled(
    app: &App,
    target: &crate::target::Target,
    known: &Known,
    budget: &Budget,
    visible: &impl Fn(Option<&LivePolicy>) -> bool,
) -> bool {
    for pause in SETTLE_CHECKS_MS {
        let pause = std::time::Duration::from_millis(pause);
        if Instant::now() + pause >= budget.work_deadline() {
            break;
        }
        sleep(pause).await;
        let back = app.clients.read(target, known).await.ok().flatten();
        if !visible(back.as_ref()) {
            return false;
        }
    }
    true
}

fn has_sid(doc: Option<&str>, sid: &str) -> bool {
    let Some(doc) = doc.and_then(|d| serde_json::from_str::<Value>(d).ok()) else {
        return false;
    };
    match doc.get("Statement") {
        Some(Value::Array(items)) => items
            .iter()
            .any(|s| s.get("Sid").and_then(Value::as_str) == Some(sid)),
        Some(one) => one.get("Sid").and_then(Value::as_str) == Some(sid),
        None => false,
    }
}
