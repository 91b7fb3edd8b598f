//! One target checked against its owners' plan, and repaired (or, in Detect mode,
//! reported): the drift check behind CloudTrail events and the scheduled reconcile.
//! Every present owner's holdings are written back, a gone owner's never are (they are
//! removed), hand-written statements are kept; the grant guard and the repair-loop limit
//! stop a repair, and a `ResourcePolicyDrift` event says why.

use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::app::App;
use crate::calls::budget::Budget;
use crate::calls::retry::NotFound;
use crate::change::converge::{converge, Mode, Writer};
use crate::change::plan::{self, Plan, Slot};
use crate::change::{account, guard_refusal, overridden, Options};
use crate::guard;
use crate::ledger::{now_ms, Counts, View};
use crate::model::request::{PolicyNeeded, PolicyRequest};
use crate::model::target::Target;
use crate::settings::DriftMode;

/// What a check found.
#[derive(Clone, Debug, PartialEq)]
pub enum Checked {
    /// The ledger holds no owner of the target: left alone.
    Unmanaged,
    InSync,
    Repaired {
        propagation: Option<Duration>,
    },
    /// Drift found and reported, nothing written (Detect mode).
    Detected(String),
    /// Repaired too often in the window: another writer keeps changing it. Not repaired.
    LoopStopped(String),
    /// The owners' plan grants what the guard refuses: reported, never written back.
    Refused(String),
    Failed(String),
}

impl Checked {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        match self {
            Checked::Unmanaged => return c,
            Checked::InSync => {}
            Checked::Repaired { .. } => {
                c.drift = 1;
                c.repaired = 1;
            }
            Checked::Detected(_) | Checked::Refused(_) => {
                c.drift = 1;
                c.detected = 1;
            }
            Checked::LoopStopped(_) => {
                c.drift = 1;
                c.loops_stopped = 1;
            }
            Checked::Failed(_) => {
                c.drift = 1;
                c.failed = 1;
            }
        }
        c.checked = 1;
        c
    }

    pub fn status(&self) -> &'static str {
        match self {
            Checked::Unmanaged => "UNMANAGED",
            Checked::InSync => "IN_SYNC",
            Checked::Repaired { .. } => "REPAIRED",
            Checked::Detected(_) => "DRIFT_DETECTED",
            Checked::LoopStopped(_) => "LOOP_STOPPED",
            Checked::Refused(_) => "REPAIR_REFUSED",
            Checked::Failed(_) => "FAILED",
        }
    }
}

/// The slots of a target: its policy, and for SSM each whole-policy owner's own.
fn slots(view: &View) -> Vec<Slot> {
    let mut out = vec![Slot::Main];
    if plan::owned_slots(view.service_key.as_deref().unwrap_or_default()) {
        out.extend(
            view.owners
                .iter()
                .filter(|(_, r)| r.holding.is_policy())
                .map(|(k, _)| Slot::Owned(k.clone())),
        );
    }
    out
}

/// Checks `view`'s target against the plan of its owners and, in Repair mode, writes
/// the plan back: every present owner's holdings, never a gone owner's (they are
/// removed), hand-written statements kept. `caller` is who changed it (CloudTrail), for
/// the Reason when the repair loop is stopped. A target in sync costs one read.
pub async fn check(
    app: &App,
    view: &View,
    token: &str,
    caller: Option<&str>,
    budget: &Budget,
) -> Checked {
    check_with(app, view, token, caller, budget, true).await
}

/// [`check`]; `ask_stacks`: before writing anything back, ask CloudFormation whether
/// the owners' stack resources still exist (once per check).
async fn check_with(
    app: &App,
    view: &View,
    token: &str,
    caller: Option<&str>,
    budget: &Budget,
    ask_stacks: bool,
) -> Checked {
    if view.owners.is_empty() {
        return Checked::Unmanaged;
    }
    let Some(props) = &view.target_request else {
        return Checked::Failed("the ledger's item names no target".into());
    };
    let target = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::No) {
        Ok(r) => r.target,
        Err(e) => return Checked::Failed(format!("the ledger's target is invalid: {e}")),
    };
    let ledger = app.ledger();
    let mut result = Checked::InSync;
    for slot in slots(view) {
        let writer = Writer {
            target: &target,
            slot: slot.clone(),
            owner: None,
            removing: None,
            options: Options {
                wait_for_propagation: true,
                ..view
                    .owners
                    .values()
                    .find(|r| r.present)
                    .map(Options::from_record)
                    .unwrap_or_default()
            },
            token,
            not_found: NotFound::Final,
            preread: None,
        };
        let planned = match converge(app, view.clone(), &writer, Mode::Plan, budget).await {
            Ok(p) => p,
            Err(e) => return Checked::Failed(format!("reading the live policy failed: {e}")),
        };
        let Some(plan) = planned.first.clone().filter(|p| p.changed) else {
            continue;
        };
        info!(target = %view.target_id, ?slot, "drift: the live policy differs from its owners' plan");
        // A stack resource that is gone is never restored: its owner is recorded gone
        // and the target checked again.
        if ask_stacks {
            if let Some(after) = super::stacks::without_deleted_stacks(app, view).await {
                return Box::pin(check_with(app, &after, token, caller, budget, false)).await;
            }
        }
        let owned: Vec<String> = view
            .owners
            .values()
            .flat_map(|r| r.holding.sids().into_iter().chain(r.retired.clone()))
            .collect();
        let diff = guard::diff(planned.live_before.as_ref(), plan.document.as_ref(), &owned);
        if app.settings.drift_mode == DriftMode::Detect {
            let why = format!("the policy on {target} differs from its owners' plan");
            report(app, view, &target, "Detect", &why, &diff, &plan).await;
            result = Checked::Detected(why);
            continue;
        }
        // A repair never writes what the guard refuses: it reports it instead.
        let account = account(app, &target);
        if let Some(why) = view.present().into_iter().find_map(|(_, r)| {
            guard_refusal(&r.holding, &account, &app.settings.guard, overridden(r))
        }) {
            warn!(%why, "repair refused by the grant guard");
            report(app, view, &target, "Refused", &why, &diff, &plan).await;
            return Checked::Refused(why);
        }
        let now = now_ms();
        let window = app.settings.repair_loop_window.as_millis() as u64;
        let recent: Vec<u64> = view
            .repairs
            .iter()
            .copied()
            .filter(|t| *t + window > now)
            .collect();
        if recent.len() as u32 >= app.settings.repair_loop_limit {
            let by = caller.unwrap_or("an unknown writer");
            let why = format!(
                "{target} was repaired {} times in the last {} s and changed again by {by}: \
                 repairs stop here until that writer stops (raise REPAIR_LOOP_LIMIT, or stop \
                 the other writer)",
                recent.len(),
                window / 1000
            );
            warn!(%why, "repair loop stopped");
            report(app, view, &target, "LoopStopped", &why, &diff, &plan).await;
            return Checked::LoopStopped(why);
        }
        let mut times = recent;
        times.push(now);
        if let Err(e) = ledger.note_repairs(&view.target_id, &times).await {
            return Checked::Failed(e.to_string());
        }
        match converge(app, view.clone(), &writer, Mode::Repair, budget).await {
            Ok(done) => {
                result = Checked::Repaired {
                    propagation: done.applied.propagation,
                };
                if let Err(e) = ledger.prune(&done.view, now_ms()).await {
                    warn!(error = %e, "could not prune the target's gone owners");
                }
            }
            Err(e) => return Checked::Failed(e.to_string()),
        }
    }
    if result == Checked::InSync {
        if let Err(e) = ledger.prune(view, now_ms()).await {
            warn!(error = %e, "could not prune the target's gone owners");
        }
    }
    result
}

/// Sends a `ResourcePolicyDrift` event (source `resource-policy-provider`) to the
/// operator's bus: drift found and left in place (`Detect`), refused by the guard, or
/// a repair loop stopped. A rule routes it to a person. A failure to send is logged;
/// the metric is emitted either way.
async fn report(
    app: &App,
    view: &View,
    target: &Target,
    outcome: &str,
    reason: &str,
    diff: &guard::PolicyDiff,
    plan: &Plan,
) {
    let detail = json!({
        "Outcome": outcome,
        "Reason": reason,
        "Target": view.target_id,
        "Service": target.service.key(),
        "Difference": diff.to_value(),
        "Planned": plan.document,
        "Owners": view.present().into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
    });
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("resource-policy-provider")
        .detail_type("ResourcePolicyDrift")
        .detail(detail.to_string())
        .event_bus_name(&app.settings.drift_event_bus)
        .resources(view.target_id.clone())
        .build();
    let sent = app
        .clients
        .events(&app.region)
        .put_events()
        .entries(entry)
        .send()
        .await;
    match sent {
        Ok(out) if out.failed_entry_count() == 0 => info!(outcome, "drift reported"),
        Ok(out) => warn!(
            outcome,
            failed = out.failed_entry_count(),
            "the drift event was not accepted"
        ),
        Err(e) => {
            warn!(outcome, error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
            "the drift event could not be sent (events:PutEvents)")
        }
    }
}
