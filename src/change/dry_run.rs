//! A plan before apply: what a change would write, computed by the same record, checks
//! and plan as [`super::execute`], with nothing recorded and nothing written.

use serde_json::{json, Value};

use super::converge::{converge, Mode, Writer};
use super::plan::{refusal, Slot};
use super::{account, checks, new_record, slot_for, target_request, Change, ChangeError};
use crate::app::App;
use crate::calls::budget::Budget;
use crate::guard;
use crate::ledger::{now_ms, View};

/// The plan of `change`: the document that would be written, its statement-level
/// difference from the live policy, what the guard and the ownership rules say, and
/// which owners the ledger holds.
pub async fn dry_run(app: &App, change: &Change, budget: &Budget) -> Result<Value, ChangeError> {
    let target_id = change.target.display_id();
    let service_key = change.target.service.key();
    let owner = change.owner.key();
    let before = app
        .ledger()
        .get(&target_id)
        .await
        .map_err(|error| ChangeError::Ledger {
            error,
            written: false,
        })?;
    let record = new_record(change);
    let guard = record
        .present
        .then(|| {
            checks::guard_refusal(
                &record.holding,
                &account(app, &change.target),
                &app.settings.guard,
                change.guard_override,
            )
        })
        .flatten();
    let previous = before.as_ref().and_then(|b| b.owners.get(&owner)).cloned();
    let (mut view, version) = View::staged(
        before.as_ref(),
        &target_id,
        &target_request(&change.target),
        service_key,
        &owner,
        &record,
        now_ms(),
    );
    let refused = record.present.then(|| refusal(&view, &owner)).flatten();
    if let Some(mine) = view.owners.get(&owner).cloned() {
        let retired = checks::retired_for(previous.as_ref(), &mine);
        if let Some(r) = view.owners.get_mut(&owner) {
            r.retired = retired;
            if r.prior.is_none() {
                r.prior = previous.as_ref().and_then(|p| p.prior.clone());
            }
        }
    }
    let is_policy = view
        .owners
        .get(&owner)
        .is_some_and(|r| r.holding.is_policy());
    let slot = slot_for(service_key, &owner, is_policy);
    // The same takeover judgment as the apply (`checks::judge_takeover`).
    let mut preread = None;
    let takeover = if record.present && slot == Slot::Main {
        let live = super::converge::read_slot(app, &change.target, &view, &slot, budget)
            .await
            .map_err(|e| ChangeError::Apply(crate::calls::apply::ApplyError::from_write(e)))?;
        let doc: Option<Value> = live
            .as_ref()
            .and_then(|l| serde_json::from_str(&l.document).ok());
        preread = Some(live);
        match checks::judge_takeover(
            before.as_ref(),
            &view,
            &owner,
            doc.as_ref(),
            change.take_over,
            change.existing,
        ) {
            Ok(Some(prior)) => {
                if let Some(r) = view.owners.get_mut(&owner) {
                    r.prior = Some(prior);
                }
                None
            }
            Ok(None) => None,
            Err(why) => Some(why),
        }
    } else {
        None
    };
    let writer = Writer {
        target: &change.target,
        slot,
        owner: Some((owner.as_str(), version)),
        removing: (!record.present).then_some(owner.as_str()),
        options: change.options.clone(),
        token: &change.token,
        not_found: change.not_found,
        preread,
    };
    let planned = converge(app, view.clone(), &writer, Mode::Plan, budget).await?;
    let plan = planned.first.unwrap_or(super::plan::Plan {
        document: None,
        changed: false,
    });
    let owned: Vec<String> = view
        .owners
        .values()
        .flat_map(|r| r.holding.sids().into_iter().chain(r.retired.clone()))
        .collect();
    let diff = guard::diff(planned.live_before.as_ref(), plan.document.as_ref(), &owned);
    let owners: Vec<&String> = before
        .as_ref()
        .map(|b| b.present().into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    let refusals: Vec<&String> = [&guard, &refused, &takeover]
        .into_iter()
        .flatten()
        .collect();
    Ok(json!({
        "Status": if refusals.is_empty() { "PLANNED" } else { "WOULD_BE_REFUSED" },
        "Target": target_id,
        "Owner": owner,
        "Document": plan.document,
        "Changes": plan.changed,
        "Diff": diff.to_value(),
        "Guard": guard,
        "Refused": refused.or(takeover),
        "Owners": owners,
    }))
}
