//! One `Change`, carried out in one place. Every entry point (CloudFormation, apply
//! requests) turns its request into a [`Change`] and calls [`execute`]; repairs call
//! [`converge::converge`] directly. What an owner holds, and what a change may remove,
//! is decided here and in [`plan`] only, from the ledger (docs/ownership.md).

mod checks;
pub mod converge;
pub mod dry_run;
#[cfg(test)]
mod model;
pub mod plan;

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::app::App;
use crate::attributes::Applied;
use crate::calls::apply::ApplyError;
use crate::calls::budget::Budget;
use crate::calls::retry::NotFound;
use crate::ledger::{Holding, LedgerError, NewRecord, Record, View, ITEM_LIMIT};
use crate::model::owner::Owner;
use crate::model::policy::Policy;
use crate::model::request::PolicyRequest;
use crate::model::statements::Statements;
use crate::model::target::Target;
use crate::services::{LivePolicy, Service};
pub use checks::{guard_refusal, overridden};

use converge::{converge, Mode, Writer};
use plan::{owned_slots, refusal, Slot};

/// What the owner wants now.
#[derive(Clone, Debug, PartialEq)]
pub enum Wanted {
    Policy(Policy),
    Statements(Statements),
    /// The owner is gone. `legacy` is what its properties say it placed, used only
    /// when the ledger does not know the owner (recorded before the ledger existed).
    Remove {
        legacy: Option<Holding>,
        legacy_policy_id: Option<String>,
    },
}

impl Wanted {
    /// What a validated put request asks for: its statements, or its whole policy.
    pub fn of(req: &PolicyRequest) -> Wanted {
        match (&req.statements, &req.policy) {
            (Some(s), _) => Wanted::Statements(s.clone()),
            (None, Some(p)) => Wanted::Policy(p.clone()),
            (None, None) => Wanted::Remove {
                legacy: None,
                legacy_policy_id: None,
            },
        }
    }
}

/// Service options carried with a change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub confirm_remove_self_resource_access: Option<bool>,
    pub bypass_policy_lockout_check: Option<bool>,
    pub wait_for_propagation: bool,
}

impl Options {
    pub fn of(req: &PolicyRequest) -> Options {
        Options {
            confirm_remove_self_resource_access: req.confirm_remove_self_resource_access,
            bypass_policy_lockout_check: req.bypass_policy_lockout_check,
            wait_for_propagation: req.wait_for_propagation,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "ConfirmRemoveSelfResourceAccess": self.confirm_remove_self_resource_access,
            "BypassPolicyLockoutCheck": self.bypass_policy_lockout_check,
        })
    }

    /// The options a record keeps (a repair writes with them).
    pub fn from_record(r: &Record) -> Options {
        Options {
            confirm_remove_self_resource_access: r
                .options
                .get("ConfirmRemoveSelfResourceAccess")
                .and_then(Value::as_bool),
            bypass_policy_lockout_check: r
                .options
                .get("BypassPolicyLockoutCheck")
                .and_then(Value::as_bool),
            wait_for_propagation: true,
        }
    }
}

/// One owner's change to one target.
#[derive(Clone, Debug)]
pub struct Change {
    pub target: Target,
    pub owner: Owner,
    pub wanted: Wanted,
    pub options: Options,
    /// The request's id: idempotency token for services that take one.
    pub token: String,
    /// Whether a missing resource may still appear (a Create right after the resource).
    pub not_found: NotFound,
    /// SSM: a policy the owner names (`PolicyId`) to take as its own.
    pub policy_id: Option<String>,
    /// Take over what this function never wrote (`TakeOver`).
    pub take_over: bool,
    /// The owner existed before this change (a CloudFormation Update): what is there
    /// is its own, even if the ledger does not know it yet (a stack from before the
    /// ledger), so nothing is taken over.
    pub existing: bool,
    /// Ask the guard to let a refused grant through (`GuardOverride`).
    pub guard_override: bool,
    /// When a change handed to the asynchronous queue was asked for (milliseconds since
    /// the epoch): it orders the owner's changes by when they were asked, not run.
    pub asked_at: Option<u64>,
}

/// A change that did not take effect, by what is known of the service's state.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ChangeError {
    /// Refused before anything reached the service (a Sid held by another owner, a mode
    /// clash, a record too large for the ledger).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Apply(#[from] ApplyError),
    /// The ledger failed; `written`: the service may already hold the change.
    #[error("{error}")]
    Ledger { error: LedgerError, written: bool },
}

impl ChangeError {
    /// Whether the service may now hold what was written, so a rollback must clean up.
    pub fn may_have_written(&self) -> bool {
        match self {
            ChangeError::Refused(_) => false,
            ChangeError::Apply(e) => e.may_have_written(),
            ChangeError::Ledger { written, .. } => *written,
        }
    }

    /// Whether the ledger itself could not be reached (and nothing was recorded).
    pub fn ledger_unreachable(&self) -> bool {
        matches!(self, ChangeError::Ledger { written: false, error } if !error.too_large)
    }

    /// Whether the ledger failed (before or after anything was written).
    pub fn ledger_failed(&self) -> bool {
        matches!(self, ChangeError::Ledger { error, .. } if !error.too_large)
    }
}

fn ledger_failed(error: LedgerError, written: bool) -> ChangeError {
    if error.too_large {
        return ChangeError::Refused(format!(
            "the ledger cannot hold this record: {error}; DynamoDB items stop at 400 KB"
        ));
    }
    ChangeError::Ledger { error, written }
}

/// The target's properties as the ledger keeps them.
pub fn target_request(target: &Target) -> Value {
    match &target.arn {
        Some(arn) => json!({ "ResourceArn": arn }),
        None => json!({ "PolicyName": target.api_id(), "Region": target.region }),
    }
}

/// The slot an owner's holding lives in.
fn slot_for(service_key: &str, owner: &str, holding_is_policy: bool) -> Slot {
    if owned_slots(service_key) && holding_is_policy {
        Slot::Owned(owner.to_string())
    } else {
        Slot::Main
    }
}

/// The record a change writes.
fn new_record(change: &Change) -> NewRecord {
    let (holding, present) = match &change.wanted {
        Wanted::Policy(p) => (Holding::Policy(p.value().clone()), true),
        Wanted::Statements(s) => (Holding::Statements(s.items().to_vec()), true),
        Wanted::Remove { .. } => (Holding::Statements(Vec::new()), false),
    };
    let mut options = change.options.to_json();
    // The request that made the record: a late duplicate of it is recognised.
    options["Token"] = Value::String(change.token.clone());
    if change.guard_override {
        options["GuardOverride"] = Value::Bool(true);
    }
    if let Some(at) = change.asked_at {
        options["AskedAt"] = Value::from(at);
    }
    NewRecord {
        holding,
        present,
        policy_id: change.policy_id.clone(),
        prior: None,
        adopted: false,
        options,
    }
}

/// The account the guard judges principals against: the target's, or (X-Ray) the
/// function's own.
pub fn account(app: &App, target: &Target) -> String {
    let own = app
        .settings
        .function_role_arn
        .as_deref()
        .and_then(|a| a.split(':').nth(4))
        .unwrap_or_default()
        .to_string();
    checks::account_of(target, &own)
}

/// Records the change, refuses it if another owner holds what it wants, then writes
/// the plan of every recorded owner, waits until it shows, and settles.
pub async fn execute(app: &App, change: &Change, budget: &Budget) -> Result<Applied, ChangeError> {
    let ledger = app.ledger();
    let target_id = change.target.display_id();
    let service_key = change.target.service.key();
    let owner = change.owner.key();
    let request = target_request(&change.target);
    let mut record = new_record(change);
    let present = record.present;
    if record.size() > ITEM_LIMIT {
        return Err(ChangeError::Refused(format!(
            "the ledger cannot hold this request ({} bytes): DynamoDB items stop at 400 KB",
            record.size()
        )));
    }
    // The grant guard, before anything is recorded or written.
    if present {
        let acct = account(app, &change.target);
        if let Some(why) = checks::guard_refusal(
            &record.holding,
            &acct,
            &app.settings.guard,
            change.guard_override,
        ) {
            return Err(ChangeError::Refused(why));
        }
    }
    // A takeover is judged before anything is recorded: a refused put never reaches
    // the ledger (where a repair could act on it), and a document taken over is
    // recorded with the put, in the same update.
    let mut preread = None;
    if present {
        // (Boxed, as the converges below: keeps the nesting of futures callers build
        // on `execute` shallow enough for the compiler's layout queries.)
        let judged = Box::pin(judge_before_record(app, change, &record, budget)).await?;
        record.prior = judged.prior;
        preread = judged.preread;
    }
    let recorded = ledger
        .record(&target_id, &request, service_key, &owner, &record)
        .await
        .map_err(|e| ledger_failed(e, false))?;
    let recorded = match (recorded, &change.wanted) {
        (Some(r), _) => r,
        (
            None,
            Wanted::Remove {
                legacy: Some(legacy),
                legacy_policy_id,
            },
        ) => {
            info!("the ledger holds nothing for this owner: removing what its properties name");
            let adopted = NewRecord {
                holding: legacy.clone(),
                present: false,
                policy_id: legacy_policy_id.clone(),
                adopted: true,
                ..record.clone()
            };
            match ledger
                .record(&target_id, &request, service_key, &owner, &adopted)
                .await
                .map_err(|e| ledger_failed(e, false))?
            {
                Some(r) => r,
                None => return Ok(Applied::default()),
            }
        }
        (None, _) => {
            info!("the ledger holds nothing for this owner: nothing to remove");
            return Ok(Applied::default());
        }
    };
    let version = recorded.version;
    let previous = recorded
        .before
        .as_ref()
        .and_then(|b| b.owners.get(&owner))
        .cloned();
    let mut view = recorded.after;
    // A late duplicate of the request that made a record since gone (a Create
    // delivered again after its resource's Delete) must not bring the owner back.
    let duplicate = previous.as_ref().is_some_and(|p| {
        !p.present && p.options.get("Token").and_then(Value::as_str) == Some(change.token.as_str())
    });
    if present && duplicate {
        info!("a late duplicate of a request whose owner is gone since: ignored");
        withdraw(app, change, version, previous.as_ref(), budget).await;
        return Ok(Applied::default());
    }
    if present {
        let switching = previous
            .as_ref()
            .filter(|p| p.present)
            .is_some_and(|p| p.holding.is_policy() != record.holding.is_policy());
        let refused = if switching {
            Some(
                "switching between Policy and Statements on the same target is not done in \
                 place: remove the resource in one update and add it back with the other \
                 mode in the next"
                    .to_string(),
            )
        } else {
            refusal(&view, &owner).or_else(|| too_large(&view))
        };
        if let Some(why) = refused {
            withdraw(app, change, version, previous.as_ref(), budget).await;
            return Err(ChangeError::Refused(why));
        }
        prepare(app, change, &mut view, &owner, version, previous.as_ref()).await?;
    }
    let is_policy = view
        .owners
        .get(&owner)
        .is_some_and(|r| r.holding.is_policy());
    let writer = Writer {
        target: &change.target,
        slot: slot_for(service_key, &owner, is_policy),
        owner: Some((owner.as_str(), version)),
        removing: (!present).then_some(owner.as_str()),
        options: change.options.clone(),
        token: &change.token,
        not_found: change.not_found,
        preread,
    };
    match Box::pin(converge(app, view, &writer, Mode::Apply, budget)).await {
        Ok(done) => Ok(done.applied),
        Err(e) => {
            if present && !e.may_have_written() {
                withdraw(app, change, version, previous.as_ref(), budget).await;
            }
            if !present {
                warn!(error = %e, "the owner is recorded gone; the removal did not finish and \
                    the next repair or reconcile finishes it");
            }
            Err(e)
        }
    }
}

/// What a put's takeover judgment found before it was recorded.
struct Judged {
    /// A document taken over (`TakeOver`), kept on the record to put back.
    prior: Option<Value>,
    /// The live policy read for the judgment, when the write may plan from it: a
    /// service with a precondition (a write guarded by this read fails if anyone wrote
    /// since), and not SSM (whose slot depends on the ledger).
    preread: Option<Option<LivePolicy>>,
}

/// Judges a put over what this function never wrote, before it is recorded. The live
/// policy alone tells whether there is anything to judge (nearly always not: a Create
/// makes its two ledger round trips only); when there is, the ledger's item says who
/// placed what. Refused unless the owner takes it over.
async fn judge_before_record(
    app: &App,
    change: &Change,
    record: &NewRecord,
    budget: &Budget,
) -> Result<Judged, ChangeError> {
    let target = &change.target;
    let target_id = target.display_id();
    let service_key = target.service.key();
    let owner = change.owner.key();
    let request = target_request(target);
    let nothing = Judged {
        prior: None,
        preread: None,
    };
    // An SSM whole policy is a policy of its own (nothing to take over); an Update's
    // whole policy is its owner's already.
    let slot = slot_for(service_key, &owner, record.holding.is_policy());
    if slot != Slot::Main || (record.holding.is_policy() && change.existing) {
        return Ok(nothing);
    }
    let stage = |before: Option<&View>| {
        View::staged(before, &target_id, &request, service_key, &owner, record, 0).0
    };
    let read = |view: View| async move {
        converge::read_slot(app, target, &view, &Slot::Main, budget)
            .await
            .map_err(|e| ChangeError::Apply(ApplyError::from_write(e)))
    };
    let mut live = read(stage(None)).await?;
    let doc = |l: &Option<LivePolicy>| -> Option<Value> {
        l.as_ref()
            .and_then(|l| serde_json::from_str(&l.document).ok())
    };
    let reusable = target.service.facts().has_precondition && target.service != Service::Ssm;
    if !checks::might_take_over(&record.holding, doc(&live).as_ref()) {
        return Ok(Judged {
            prior: None,
            preread: reusable.then_some(live),
        });
    }
    let before = app
        .ledger()
        .get(&target_id)
        .await
        .map_err(|e| ledger_failed(e, false))?;
    let staged = stage(before.as_ref());
    if target.service == Service::Ssm {
        // The shared policy is the one the ledger names.
        live = read(staged.clone()).await?;
    }
    match checks::judge_takeover(
        before.as_ref(),
        &staged,
        &owner,
        doc(&live).as_ref(),
        change.take_over,
        change.existing,
    ) {
        Ok(prior) => Ok(Judged {
            prior,
            preread: reusable.then_some(live),
        }),
        Err(why) => Err(ChangeError::Refused(why)),
    }
}

/// After a put is recorded: retire the Sids this owner no longer wants, and keep its
/// SSM policy id and any document it took over before.
async fn prepare(
    app: &App,
    change: &Change,
    view: &mut View,
    owner: &str,
    version: u64,
    previous: Option<&Record>,
) -> Result<(), ChangeError> {
    let ledger = app.ledger();
    let target_id = change.target.display_id();
    let Some(mine) = view.owners.get(owner).cloned() else {
        return Ok(());
    };
    let retired = checks::retired_for(previous, &mine);
    if !retired.is_empty() {
        ledger
            .retire(&target_id, owner, version, &retired)
            .await
            .map_err(|e| ledger_failed(e, false))?;
        view.change_version += 1;
        if let Some(r) = view.owners.get_mut(owner) {
            r.retired = retired;
        }
    }
    let Some(prev) = previous else {
        return Ok(());
    };
    let kept = prev.prior.clone().filter(|_| mine.prior.is_none());
    if let Some(r) = view.owners.get_mut(owner) {
        // SSM: the owner's own policy keeps its id across its changes.
        if r.policy_id.is_none() && r.holding.is_policy() && prev.holding.is_policy() {
            r.policy_id = prev.policy_id.clone();
        }
    }
    // A later put keeps the document the owner took over.
    if let Some(prior) = kept {
        ledger
            .set_prior(&target_id, owner, version, &prior)
            .await
            .map_err(|e| ledger_failed(e, false))?;
        if let Some(r) = view.owners.get_mut(owner) {
            r.prior = Some(prior);
        }
    }
    Ok(())
}

fn too_large(view: &View) -> Option<String> {
    (view.size() > ITEM_LIMIT).then(|| {
        format!(
            "the ledger cannot hold every owner of {} with this request (about {} bytes): \
             DynamoDB items stop at 400 KB",
            view.target_id,
            view.size()
        )
    })
}

/// The Sids `asked` names that the live policy holds with another statement.
fn others_in(live: Option<&Value>, asked: &Holding) -> Vec<String> {
    let Holding::Statements(list) = asked else {
        return Vec::new();
    };
    let live: Vec<Value> = match live.and_then(|l| l.get("Statement")) {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(|want| {
            let sid = want.get("Sid").and_then(Value::as_str)?;
            live.iter()
                .any(|s| {
                    s.get("Sid").and_then(Value::as_str) == Some(sid)
                        && !crate::policy::same_document(s, want)
                })
                .then(|| sid.to_string())
        })
        .collect()
}

/// Withdraws a refused (or failed, nothing written) record: the owner's previous
/// record comes back, and what the withdrawn record asked for that the previous one
/// did not is retired, because another writer may have planned from it meanwhile
/// (but not a Sid the live policy holds with someone else's statement: that was never
/// this owner's). Then the target converges like a repair, so nothing that writer
/// placed stays unowned. A failure here is logged: the next repair converges the same
/// way.
async fn withdraw(
    app: &App,
    change: &Change,
    version: u64,
    previous: Option<&Record>,
    budget: &Budget,
) {
    let target_id = change.target.display_id();
    let owner = change.owner.key();
    let asked = new_record(change).holding;
    let slot = slot_for(change.target.service.key(), &owner, asked.is_policy());
    let ledger = app.ledger();
    let view = ledger
        .get(&target_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let live = converge::read_slot(app, &change.target, &view, &slot, budget)
        .await
        .ok()
        .flatten()
        .and_then(|l| serde_json::from_str::<Value>(&l.document).ok());
    let others = others_in(live.as_ref(), &asked);
    // A document the withdrawn record took over comes back: a writer may have written
    // over it meanwhile.
    let taken = view
        .owners
        .get(&owner)
        .filter(|r| r.version == version)
        .and_then(|r| r.prior.clone());
    let mine = |sid: &String| !others.contains(sid);
    let restore = match previous {
        Some(p) => {
            let mut p = p.clone();
            let keep = p.holding.sids();
            p.retired.extend(
                asked
                    .sids()
                    .into_iter()
                    .filter(|s| !keep.contains(s) && mine(s)),
            );
            p.retired.sort();
            p.retired.dedup();
            p.changed_at = crate::ledger::now_ms();
            p
        }
        // Never held anything: a gone record of what it asked, so every writer removes
        // whatever of it a concurrent plan put there.
        None => NewRecord {
            holding: match asked {
                Holding::Statements(list) => Holding::Statements(
                    list.into_iter()
                        .filter(|st| {
                            st.get("Sid")
                                .and_then(Value::as_str)
                                .is_none_or(|sid| mine(&sid.to_string()))
                        })
                        .collect(),
                ),
                whole => whole,
            },
            present: false,
            policy_id: None,
            prior: taken,
            adopted: false,
            options: Value::Null,
        }
        .into_record(version, crate::ledger::now_ms()),
    };
    if let Err(e) = ledger
        .undo(&target_id, &owner, version, Some(&restore))
        .await
    {
        warn!(error = %e, "could not withdraw the refused change's record from the ledger");
        return;
    }
    let Ok(Some(view)) = ledger.get(&target_id).await else {
        return;
    };
    let writer = Writer {
        target: &change.target,
        slot,
        owner: None,
        removing: None,
        options: change.options.clone(),
        token: &change.token,
        not_found: NotFound::Final,
        preread: None,
    };
    if let Err(e) = Box::pin(converge(app, view, &writer, Mode::Repair, budget)).await {
        warn!(error = %e, "could not converge the target after withdrawing the refused change");
    }
}
