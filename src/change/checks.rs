//! The decisions a change is checked against before anything reaches the service:
//! the grant guard, a takeover of what the function never wrote, and which of an
//! owner's earlier Sids it retires. Pure: the executor and the dry run share them.

use serde_json::{json, Value};

use crate::guard::{self, GuardSettings};
use crate::ledger::{Holding, Record, View};
use crate::model::policy::same_document;
use crate::model::target::Target;

/// The account a target lives in (X-Ray, which has no ARN: `fallback`).
pub fn account_of(target: &Target, fallback: &str) -> String {
    target
        .arn
        .as_deref()
        .and_then(|a| a.split(':').nth(4))
        .filter(|a| !a.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// What a holding grants, as a document the guard can read.
fn document_of(holding: &Holding) -> Value {
    match holding {
        Holding::Policy(p) => p.clone(),
        Holding::Statements(s) => json!({"Version": "2012-10-17", "Statement": s}),
    }
}

/// The guard's refusal of what `holding` grants, naming each statement, principal and
/// rule; `None` when allowed (or when the owner asked to override and the operator
/// lets it).
pub fn guard_refusal(
    holding: &Holding,
    account: &str,
    settings: &GuardSettings,
    overridden: bool,
) -> Option<String> {
    let violations = guard::check(&document_of(holding), account, settings);
    if violations.is_empty() || (overridden && settings.allow_override) {
        return None;
    }
    let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
    let escape = if settings.allow_override {
        " (GuardOverride: true writes it anyway; the operator allows that)"
    } else {
        ""
    };
    Some(format!(
        "the grant guard refuses this policy: {}{escape}",
        list.join("; ")
    ))
}

/// Whether `r` asked the guard to let its grant through.
pub fn overridden(r: &Record) -> bool {
    r.options.get("GuardOverride").and_then(Value::as_bool) == Some(true)
}

/// A put that would replace what this function never wrote. `Ok(Some(doc))`: taken
/// over (`take_over`), `doc` is kept to put back; `Ok(None)`: nothing to take over
/// (nothing there, the same document, or a policy an owner in the ledger wrote);
/// `Err`: refused, saying what is there and how to proceed.
fn takeover(
    view: &View,
    owner: &str,
    live: Option<&Value>,
    take_over: bool,
    held_before: &[String],
) -> Result<Option<Value>, String> {
    let Some(mine) = view.owners.get(owner) else {
        return Ok(None);
    };
    let Some(live) = live else { return Ok(None) };
    let target = &view.target_id;
    match &mine.holding {
        Holding::Policy(want) => {
            if same_document(want, live) {
                return Ok(None);
            }
            // Written by an owner the ledger knows: one's whole policy, or nothing but
            // statements owners placed.
            if view.owners.values().any(|r| match &r.holding {
                Holding::Policy(p) => same_document(p, live),
                Holding::Statements(_) => false,
            }) {
                return Ok(None);
            }
            let placed: Vec<String> = view
                .owners
                .iter()
                .filter(|(k, _)| k.as_str() != owner)
                .flat_map(|(_, r)| r.holding.sids().into_iter().chain(r.retired.clone()))
                .collect();
            // What no owner placed: not another owner's Sid, not this owner's own
            // statement (a writer may have put it there already).
            let own = statements_of(want);
            let foreign: Vec<Value> = statements_of(live)
                .into_iter()
                .filter(|s| {
                    s.get("Sid")
                        .and_then(Value::as_str)
                        .is_none_or(|sid| !placed.iter().any(|p| p == sid))
                        && !own.iter().any(|o| same_document(o, s))
                })
                .collect();
            if foreign.is_empty() {
                return Ok(None);
            }
            if take_over {
                // What comes back on the Delete: only what no owner placed (a gone
                // owner's grant, or this owner's own, is never restored this way).
                let mut prior = live.clone();
                prior["Statement"] = Value::Array(foreign);
                return Ok(Some(prior));
            }
            Err(format!(
                "the policy on {target} was not written by this function: {}; give \
                 TakeOver: true to take it over (it is kept and put back when this resource \
                 is deleted), or remove it first",
                guard::describe(&live.to_string())
            ))
        }
        Holding::Statements(list) => {
            let placed: Vec<String> = view
                .owners
                .iter()
                .filter(|(k, _)| k.as_str() != owner)
                .flat_map(|(_, r)| r.holding.sids().into_iter().chain(r.retired.clone()))
                .chain(
                    view.owners
                        .get(owner)
                        .map(|r| r.retired.clone())
                        .unwrap_or_default(),
                )
                .collect();
            let live_statements = statements_of(live);
            // Only a Sid new to this owner can take over someone else's statement.
            for want in list {
                let sid = want.get("Sid").and_then(Value::as_str).unwrap_or_default();
                if held_before.iter().any(|h| h == sid) {
                    continue;
                }
                let by_hand = live_statements.iter().find(|s| {
                    s.get("Sid").and_then(Value::as_str) == Some(sid) && !same_document(s, want)
                });
                if by_hand.is_some() && !placed.iter().any(|p| p == sid) && !take_over {
                    {
                        return Err(format!(
                            "Sid {sid:?} is already in the policy on {target} with a different \
                             statement, written by hand or by another tool; give TakeOver: true \
                             to replace it, or choose another Sid"
                        ));
                    }
                }
            }
            Ok(None)
        }
    }
}

fn statements_of(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    }
}

/// Whether a put is judged for a takeover, and the Sids its owner held before: a whole
/// policy on its owner's first put only (an Update's owner already held what is
/// there), statements on every put (each new Sid).
fn takeover_judged(
    previous: Option<&Record>,
    existing: bool,
    mine: &Record,
) -> (bool, Vec<String>) {
    let first = previous.is_none() && !existing;
    let held_before = previous
        .filter(|p| p.present)
        .map(|p| p.holding.sids())
        .unwrap_or_default();
    (first || !mine.holding.is_policy(), held_before)
}

/// Whether `live` holds anything a put of `holding` could take over: another whole
/// document, or one of its Sids with another statement. Needs no ledger: only when it
/// holds does the executor read the ledger to judge ([`judge_takeover`]).
pub fn might_take_over(holding: &Holding, live: Option<&Value>) -> bool {
    let Some(live) = live else { return false };
    match holding {
        Holding::Policy(want) => !same_document(want, live),
        Holding::Statements(list) => {
            let live = statements_of(live);
            list.iter().any(|want| {
                let sid = want.get("Sid").and_then(Value::as_str);
                live.iter()
                    .any(|s| s.get("Sid").and_then(Value::as_str) == sid && !same_document(s, want))
            })
        }
    }
}

/// The takeover judgment of `owner`'s put, made before it is recorded: `staged` is the
/// ledger's item `before` with the put's record on it ([`View::staged`]); `existing`:
/// the owner existed before this request (a CloudFormation Update). What
/// [`takeover`] answers, or `Ok(None)` when the put is not judged.
pub fn judge_takeover(
    before: Option<&View>,
    staged: &View,
    owner: &str,
    live: Option<&Value>,
    take_over: bool,
    existing: bool,
) -> Result<Option<Value>, String> {
    let Some(mine) = staged.owners.get(owner) else {
        return Ok(None);
    };
    let previous = before.and_then(|b| b.owners.get(owner));
    let (judge, held_before) = takeover_judged(previous, existing, mine);
    if !judge {
        return Ok(None);
    }
    takeover(staged, owner, live, take_over, &held_before)
}

/// The Sids an owner placed before (its previous record) and no longer wants.
pub fn retired_for(previous: Option<&Record>, now: &Record) -> Vec<String> {
    let Some(prev) = previous else {
        return Vec::new();
    };
    let keep = now.holding.sids();
    let mut retired: Vec<String> = prev
        .removable_sids()
        .into_iter()
        .chain(prev.holding.sids())
        .filter(|s| !keep.contains(s))
        .collect();
    retired.sort();
    retired.dedup();
    retired
}
