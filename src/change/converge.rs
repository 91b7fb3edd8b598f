//! The writer's loop: read the ledger, read the live policy after it, plan, write
//! guarded by the service's precondition, wait until it shows, then settle (or, for a
//! repair, read the ledger again). If any owner recorded a change since the plan was
//! made, plan again: no writer leaves a stale view in force (the fence). Because each
//! write is the plan of every recorded owner, owners arriving together converge in a
//! few writes, whatever DynamoDB's 15 s update lock does to them.

use std::time::Duration;

use serde_json::Value;
use tokio::time::{sleep, Instant};
use tracing::{info, warn};

use super::plan::{plan, Plan, Slot};
use super::{ChangeError, Options};
use crate::app::App;
use crate::attributes::Applied;
use crate::calls::apply::ApplyError;
use crate::calls::budget::Budget;
use crate::calls::propagation::{wait_until, PollPolicy};
use crate::calls::retry::{with_retries, NotFound, RetryError, RetryPolicy};
use crate::ledger::{Holding, LedgerError, View};
use crate::model::policy::{same_document, Policy};
use crate::model::statements::check_size;
use crate::model::target::Target;
use crate::services::{
    shows_put, Deleted, ErrorKind, Expected, Known, Landed, LivePolicy, PutInput, Service, Version,
};

/// What a converge may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An owner's change: write, wait, settle.
    Apply,
    /// A repair: write, wait, re-read the ledger.
    Repair,
    /// Plan only (a dry run, a drift check): nothing is written.
    Plan,
}

/// Who converges, and on what.
pub struct Writer<'a> {
    pub target: &'a Target,
    pub slot: Slot,
    /// The owner whose change this is, and the version its record holds.
    pub owner: Option<(&'a str, u64)>,
    /// The owner whose own Delete this is.
    pub removing: Option<&'a str>,
    pub options: Options,
    pub token: &'a str,
    pub not_found: NotFound,
    /// The slot's live policy, already read (a takeover check, before the record):
    /// the first round plans its write from it instead of reading again.
    pub preread: Option<Option<LivePolicy>>,
}

/// What a converge did.
#[derive(Clone, Debug, Default)]
pub struct Converged {
    pub applied: Applied,
    /// Whether any write went out.
    pub wrote: bool,
    /// The first plan: what the live policy had to become when the converge began.
    pub first: Option<Plan>,
    /// The live document when the converge began.
    pub live_before: Option<Value>,
    /// The ledger's view the last plan was made from.
    pub view: View,
}

fn ledger_err(wrote: bool) -> impl Fn(LedgerError) -> ChangeError {
    move |error| ChangeError::Ledger {
        error,
        written: wrote,
    }
}

fn not_applied(reason: String) -> ChangeError {
    ChangeError::Apply(ApplyError::NotApplied {
        reason,
        last: None,
        timed_out: false,
    })
}

/// The ledger's latest item, to plan again from (`view` if the target left it).
async fn again_from(
    ledger: &crate::ledger::Ledger,
    view: View,
    wrote: bool,
) -> Result<View, ChangeError> {
    Ok(ledger
        .get(&view.target_id)
        .await
        .map_err(ledger_err(wrote))?
        .unwrap_or(view))
}

/// Whether a write's failure calls for reading and planning again rather than giving
/// up: a failed precondition, "not ready" (DynamoDB's update lock), an answer lost in
/// flight, and (without a precondition, where a blind resend could undo another
/// writer's change) throttling and 5xx.
fn plan_again(e: &RetryError, guarded: bool) -> bool {
    if e.timed_out {
        return false;
    }
    let _ = guarded;
    e.landed == Landed::Maybe
        || e.last.as_ref().is_some_and(|l| {
            matches!(
                l.kind,
                ErrorKind::Conflict
                    | ErrorKind::NotReady
                    | ErrorKind::Throttled
                    | ErrorKind::Transient
            )
        })
}

/// Converges the target's `w.slot` from `view` until the live policy is the plan of the
/// latest ledger.
pub async fn converge(
    app: &App,
    mut view: View,
    w: &Writer<'_>,
    mode: Mode,
    budget: &Budget,
) -> Result<Converged, ChangeError> {
    let target = w.target;
    let target_id = target.display_id();
    let ledger = app.ledger();
    let facts = target.service.facts();
    let guarded = facts.has_precondition;
    let retry = RetryPolicy::from_settings(&app.settings);
    // One try per round: any failure reads and plans again rather than resending a
    // write made from a view that may be stale.
    let once = retry.single_write().once();
    let started = Instant::now();
    let mut out = Converged::default();
    let mut round = 0u32;
    let mut preread = w.preread.clone();
    // The revision a write of unknown outcome was guarded by: it may still land (below).
    let mut late_guard: Option<Option<Version>> = None;
    loop {
        round += 1;
        let from_preread = preread.is_some();
        let mut live = match preread.take() {
            Some(live) => live,
            None => read_slot(app, target, &view, &w.slot, budget)
                .await
                .map_err(|e| ChangeError::Apply(ApplyError::from_write(e)))?,
        };
        let mut live_doc = document_of(live.as_ref());
        let mut p = plan(&view, &w.slot, live_doc.as_ref(), w.removing)
            .map_err(|e| not_applied(format!("the policy on {target} cannot be planned: {e}")))?;
        if from_preread && !p.changed && mode != Mode::Plan {
            // A read made before the record may plan a write (its precondition catches a
            // stale read), but "nothing to do" is believed only from a read after it:
            // another writer may have written since, from a view without this record,
            // and be done (src/change/model.rs).
            live = read_slot(app, target, &view, &w.slot, budget)
                .await
                .map_err(|e| ChangeError::Apply(ApplyError::from_write(e)))?;
            live_doc = document_of(live.as_ref());
            p = plan(&view, &w.slot, live_doc.as_ref(), w.removing).map_err(|e| {
                not_applied(format!("the policy on {target} cannot be planned: {e}"))
            })?;
        }
        if round == 1 {
            out.first = Some(p.clone());
            out.live_before = live_doc.clone();
        }
        out.view = view.clone();
        if mode == Mode::Plan {
            out.applied.version = live.map(|l| l.version);
            return Ok(out);
        }
        let mut policy_id: Option<String> = None;
        if p.changed {
            match write(app, w, live.as_ref(), &p, guarded, &once, budget, round).await {
                Ok((written, calls)) => {
                    out.applied.attempts += calls;
                    out.wrote = true;
                    // Guarded: this write moved the revision, so an earlier one of
                    // unknown outcome can no longer pass its precondition.
                    if guarded {
                        late_guard = None;
                    }
                    policy_id = written.as_ref().and_then(|v| v.known().policy_id);
                    if target.service == Service::Ssm {
                        if let Some(again) =
                            record_ssm_id(app, w, &view, live.as_ref(), written.as_ref(), out.wrote)
                                .await?
                        {
                            view = again;
                            continue;
                        }
                    }
                    if w.options.wait_for_propagation || !guarded {
                        let expect = expectations(&view, w);
                        let seen = match wait_visible(app, w, &p, &expect, written.as_ref(), budget)
                            .await
                        {
                            Err(Replaced::Yes) => {
                                info!(round, "a concurrent write replaced ours (no precondition): planning again");
                                sleep(retry.backoff(round)).await;
                                view = again_from(ledger, view, out.wrote).await?;
                                continue;
                            }
                            Err(Replaced::No(e)) => return Err(e),
                            Ok(seen) => seen,
                        };
                        out.applied.propagation = Some(started.elapsed());
                        out.applied.version = seen.or(written);
                    } else {
                        out.applied.version = written;
                    }
                }
                Err(e) if plan_again(&e, guarded) => {
                    out.applied.attempts += 1;
                    if e.landed == Landed::Maybe {
                        late_guard = Some(revision(live.as_ref()));
                    }
                    let delay = retry.backoff(round).max(Duration::from_millis(50));
                    if Instant::now() + delay >= budget.work_deadline() {
                        return Err(ChangeError::Apply(ApplyError::from_write(e)));
                    }
                    info!(round, delay_ms = delay.as_millis() as u64, error = %e,
                        "the policy changed or is locked: reading the ledger and the policy again");
                    sleep(delay).await;
                    view = again_from(ledger, view, out.wrote).await?;
                    continue;
                }
                Err(e) => return Err(ChangeError::Apply(ApplyError::from_write(e))),
            }
        } else {
            out.applied.version = live.as_ref().map(|l| l.version.clone());
            out.applied.propagation.get_or_insert(started.elapsed());
        }
        // The fence: if any owner recorded a change since this plan, plan again.
        let latest = match w.owner {
            Some((owner, version)) => {
                let pid = matches!(w.slot, Slot::Owned(_))
                    .then_some(policy_id.as_deref())
                    .flatten();
                ledger
                    .settle(&target_id, owner, version, pid)
                    .await
                    .map_err(ledger_err(out.wrote))?
                    .latest
            }
            None => {
                if let (Slot::Owned(owner), Some(id)) = (&w.slot, &policy_id) {
                    if let Some(r) = view.owners.get(owner) {
                        ledger
                            .set_owner_policy_id(&target_id, owner, r.version, id)
                            .await
                            .map_err(ledger_err(out.wrote))?;
                    }
                }
                ledger
                    .get(&target_id)
                    .await
                    .map_err(ledger_err(out.wrote))?
            }
        };
        let latest = latest.unwrap_or_else(|| View {
            target_id: target_id.clone(),
            service_key: view.service_key.clone(),
            ..View::default()
        });
        if latest.change_version == view.change_version || latest.owners.is_empty() {
            // Gone owners and retired Sids no writer can still act on leave the ledger.
            if latest.prunable(crate::ledger::now_ms()) {
                if let Err(e) = ledger.prune(&latest, crate::ledger::now_ms()).await {
                    warn!(error = %e, "could not prune the target's gone owners");
                }
            }
            if target.service == Service::Ssm && w.slot == Slot::Main {
                sweep_ssm_copies(app, target, &latest, w.token).await;
            }
            // Guarded, it can land only while the revision it names is still the live
            // one (a reply lost after it landed moved it: nothing to wait for).
            let may_land = late_guard
                .take()
                .is_some_and(|g| !guarded || g == revision(live.as_ref()));
            if may_land && late_write_landed(app, w, &latest, p.document.as_ref(), budget).await {
                info!(
                    round,
                    "a write whose outcome was unknown landed late: planning again"
                );
                view = latest;
                continue;
            }
            out.view = latest;
            return Ok(out);
        }
        info!(
            round,
            "owners changed while this change was written: planning again"
        );
        view = latest;
        if Instant::now() >= budget.work_deadline() {
            return Err(not_applied(format!(
                "the owners of the policy on {target} kept changing: the time budget ran out"
            )));
        }
    }
}

/// What a precondition compares (AMP's status is not part of it).
fn revision(live: Option<&LivePolicy>) -> Option<Version> {
    live.map(|l| match &l.version {
        Version::Aps { revision_id, .. } => Version::Aps {
            revision_id: revision_id.clone(),
            status: String::new(),
        },
        v => v.clone(),
    })
}

fn document_of(live: Option<&LivePolicy>) -> Option<Value> {
    live.and_then(|l| serde_json::from_str(&l.document).ok())
}

/// A write whose outcome was unknown (a timeout, a reset) may still reach the service
/// after its writer read again; guarded by a revision nothing has moved since, it
/// would pass its precondition and put back the view it was planned from. Before
/// finishing, such a writer waits out the window a late write can take and reads
/// again: whether the policy is no longer the `planned` one. (Writing the same
/// document again does not fence it out: DynamoDB keeps the RevisionId of an
/// unchanged policy.) A read that fails counts as "landed": plan again.
async fn late_write_landed(
    app: &App,
    w: &Writer<'_>,
    view: &View,
    planned: Option<&Value>,
    budget: &Budget,
) -> bool {
    let window = app.settings.late_write_window;
    if Instant::now() + window >= budget.work_deadline() {
        warn!(
            "a write whose outcome is unknown may still land after this change answers; \
             the next repair or reconcile converges the target"
        );
        return false;
    }
    info!(
        window_ms = window.as_millis() as u64,
        "a write's outcome is unknown: waiting out the window it may still land in"
    );
    sleep(window).await;
    let Ok(live) = read_slot(app, w.target, view, &w.slot, budget).await else {
        return true;
    };
    let live = document_of(live.as_ref());
    match (planned, live.as_ref()) {
        (None, None) => false,
        (Some(a), Some(b)) => !same_document(a, b),
        _ => true,
    }
}

/// The live policy of the slot. SSM keeps several policies per parameter: the slot's
/// recorded PolicyId picks one; without one, the policy that holds what the owners
/// placed (a write whose answer was lost, or one made before the id was recorded) is
/// adopted rather than a second one made.
pub(crate) async fn read_slot(
    app: &App,
    target: &Target,
    view: &View,
    slot: &Slot,
    budget: &Budget,
) -> Result<Option<LivePolicy>, RetryError> {
    let retry = &RetryPolicy::from_settings(&app.settings);
    let what = format!(
        "{} read of the policy on {target}",
        target.service.facts().display_name
    );
    let none = Known::default();
    if target.service != Service::Ssm {
        return with_retries(&what, budget, retry, NotFound::Final, || {
            app.clients.read(target, &none)
        })
        .await
        .map(|a| a.value);
    }
    let all = with_retries(&what, budget, retry, NotFound::Final, || {
        app.clients.read_all(target)
    })
    .await?
    .value;
    let id_of = |l: &LivePolicy| match &l.version {
        Version::Ssm { policy_id, .. } => Some(policy_id.clone()),
        _ => None,
    };
    let doc = |l: &LivePolicy| serde_json::from_str::<Value>(&l.document).ok();
    let found = match slot {
        Slot::Owned(owner) => {
            let r = view.owners.get(owner);
            match r.and_then(|r| r.policy_id.clone()) {
                Some(id) => all.into_iter().find(|l| id_of(l).as_deref() == Some(&id)),
                None => {
                    let Some(Holding::Policy(want)) = r.map(|r| &r.holding) else {
                        return Ok(None);
                    };
                    all.into_iter()
                        .find(|l| doc(l).is_some_and(|d| same_document(&d, want)))
                }
            }
        }
        Slot::Main => match &view.shared_policy_id {
            Some(id) => all.into_iter().find(|l| id_of(l).as_deref() == Some(id)),
            None => {
                let sids: Vec<String> = view
                    .owners
                    .values()
                    .flat_map(|r| r.holding.sids().into_iter().chain(r.retired.clone()))
                    .collect();
                all.into_iter().find(|l| {
                    doc(l).is_some_and(|d| {
                        statements(&d).iter().any(|s| {
                            s.get("Sid")
                                .and_then(Value::as_str)
                                .is_some_and(|x| sids.iter().any(|y| y == x))
                        })
                    })
                })
            }
        },
    };
    Ok(found)
}

fn statements(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// SSM keeps several policies per parameter: a shared policy made twice by writers that
/// raced (or whose answer was lost) leaves a copy holding nothing but Sids the owners
/// placed. Every such copy besides the recorded one goes, so SSM never accumulates.
async fn sweep_ssm_copies(app: &App, target: &Target, view: &View, token: &str) {
    let Some(shared) = &view.shared_policy_id else {
        return;
    };
    let placed: Vec<String> = view
        .owners
        .values()
        .flat_map(|r| r.holding.sids().into_iter().chain(r.retired.clone()))
        .collect();
    let Ok(all) = app.clients.read_all(target).await else {
        return;
    };
    for copy in all {
        let Version::Ssm { policy_id, .. } = &copy.version else {
            continue;
        };
        if policy_id == shared {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(&copy.document) else {
            continue;
        };
        let list = statements(&doc);
        let ours = !list.is_empty()
            && list.iter().all(|s| {
                s.get("Sid")
                    .and_then(Value::as_str)
                    .is_some_and(|sid| placed.iter().any(|p| p == sid))
            });
        if !ours {
            continue;
        }
        info!(policy_id = %policy_id, "removing a second copy of the shared SSM policy");
        let known = copy.version.known();
        let expected = Expected::Version(copy.version.clone());
        if let Err(e) = app
            .clients
            .delete(target, &known, None, &expected, token)
            .await
        {
            warn!(error = %e, "could not remove a copy of the shared SSM policy; the next change or repair does");
        }
    }
}

/// One write of the plan, guarded by the version read (or "no policy yet").
#[allow(clippy::too_many_arguments)]
async fn write(
    app: &App,
    w: &Writer<'_>,
    live: Option<&LivePolicy>,
    p: &Plan,
    guarded: bool,
    once: &RetryPolicy,
    budget: &Budget,
    round: u32,
) -> Result<(Option<Version>, u32), RetryError> {
    let target = w.target;
    let display = target.service.facts().display_name;
    let token = format!("{}-r{round}", w.token);
    let live_known = live.map(|l| l.version.known()).unwrap_or_default();
    match &p.document {
        None => {
            let expected = match live {
                Some(l) if guarded => Expected::Version(l.version.clone()),
                _ => Expected::Anything,
            };
            let what = format!("{display} DeleteResourcePolicy on {target}");
            with_retries(&what, budget, once, NotFound::Final, || {
                app.clients
                    .delete(target, &live_known, None, &expected, &token)
            })
            .await
            .map(|d: crate::calls::retry::Attempted<Deleted>| (None, d.attempts))
        }
        Some(doc) => {
            let policy = Policy::from_document(doc.clone());
            if let Err(e) = check_size(
                policy.text(),
                target.service.policy_size_limit(),
                target.service.key(),
            ) {
                return Err(RetryError {
                    reason: format!("the policy for {target} cannot be written: {e}"),
                    last: None,
                    landed: Landed::No,
                    timed_out: false,
                });
            }
            let expected = match live {
                _ if !guarded => Expected::Anything,
                Some(l) => Expected::Version(l.version.clone()),
                None => Expected::NoPolicy,
            };
            let input = PutInput {
                policy: &policy,
                expected,
                resendable: guarded,
                known: &live_known,
                confirm_remove_self_resource_access: w.options.confirm_remove_self_resource_access,
                bypass_policy_lockout_check: w.options.bypass_policy_lockout_check,
                client_token: &token,
            };
            let what = format!("{display} PutResourcePolicy on {target}");
            with_retries(&what, budget, once, w.not_found, || {
                app.clients.put(target, &input)
            })
            .await
            .map(|v| (Some(v.value), v.attempts))
        }
    }
}

/// SSM: records the id of the policy a write made (or removed) for the slot. Another
/// writer may have made the shared policy first: then ours goes again, and the caller
/// plans again from the latest view (`Some`). SSM never keeps two shared policies.
async fn record_ssm_id(
    app: &App,
    w: &Writer<'_>,
    view: &View,
    live: Option<&LivePolicy>,
    written: Option<&Version>,
    wrote: bool,
) -> Result<Option<View>, ChangeError> {
    if w.slot != Slot::Main {
        return Ok(None);
    }
    let ledger = app.ledger();
    let target_id = w.target.display_id();
    let new_id = written.and_then(|v| v.known().policy_id);
    let recorded = view.shared_policy_id.clone();
    let live_id = live.and_then(|l| l.version.known().policy_id);
    let wanted = new_id.clone();
    if wanted == recorded && live_id == recorded {
        return Ok(None);
    }
    let took = ledger
        .set_shared_policy_id(&target_id, recorded.as_deref(), wanted.as_deref())
        .await
        .map_err(ledger_err(wrote))?;
    if took {
        return Ok(None);
    }
    // Another writer recorded a different shared policy: remove the one just made.
    if let (Some(Version::Ssm { policy_id, hash }), None) = (written, live) {
        let v = Version::Ssm {
            policy_id: policy_id.clone(),
            hash: hash.clone(),
        };
        let known = v.known();
        if let Err(e) = app
            .clients
            .delete(w.target, &known, None, &Expected::Version(v), w.token)
            .await
        {
            warn!(error = %e, "could not remove the second shared SSM policy; the next repair does");
        }
    }
    Ok(Some(
        ledger
            .get(&target_id)
            .await
            .map_err(ledger_err(wrote))?
            .unwrap_or_else(|| view.clone()),
    ))
}

/// Reads back until the write shows; without a precondition (Kinesis), also until it
/// has stayed in place over a settle window. AccessDenied on the read-back of a policy
/// that says it may remove the function's own access is accepted.
async fn wait_visible(
    app: &App,
    w: &Writer<'_>,
    p: &Plan,
    expect: &Option<Expect>,
    written: Option<&Version>,
    budget: &Budget,
) -> Result<Option<Version>, Replaced> {
    let target = w.target;
    let known = written.map(|v| v.known()).unwrap_or_default();
    let poll = PollPolicy::from_settings(&app.settings);
    let what = format!("the policy on {target}");
    let policy = p.document.clone().map(Policy::from_document);
    let visible = |live: Option<&LivePolicy>| match (expect, &policy, written, live) {
        // A shared policy: this writer's part, whatever other owners wrote since.
        (Some(e), _, _, live) => e.shown(live),
        (None, None, _, live) => live.is_none(),
        (None, Some(pol), Some(v), live) => shows_put(v, pol, live),
        (None, Some(pol), None, Some(l)) => pol.matches(&l.document),
        (None, Some(_), None, None) => false,
    };
    if policy.is_none() && !app.clients.can_confirm_delete(target, &known) {
        return Ok(None);
    }
    let waited = wait_until(
        &what,
        budget,
        &poll,
        || app.clients.read(target, &known),
        visible,
    )
    .await;
    let seen = match waited {
        Ok(w) => w.seen.map(|s| s.version),
        Err(e)
            if e.read_error.as_ref().is_some_and(|r| r.is_access_denied())
                && (w.options.confirm_remove_self_resource_access == Some(true)
                    || w.options.bypass_policy_lockout_check == Some(true)) =>
        {
            warn!(error = %e, "the policy was accepted; reading it back is denied, as the policy \
                itself may intend: visibility not confirmed");
            return Ok(None);
        }
        Err(e) => {
            return Err(Replaced::No(ChangeError::Apply(ApplyError::NotVisible {
                reason: format!("the policy was accepted but is not in force: {}", e.reason),
                read_error: e.read_error,
            })))
        }
    };
    // Last writer wins without a precondition: in a shared policy a writer that read
    // before this write may replace it later, so it must stay in place over a settle
    // window. A whole policy has one owner, and whoever else writes it (a repair)
    // writes the same document.
    if !target.service.facts().has_precondition && expect.is_some() {
        for pause in SETTLE_CHECKS_MS {
            let pause = Duration::from_millis(pause);
            if Instant::now() + pause >= budget.work_deadline() {
                break;
            }
            sleep(pause).await;
            let back = app.clients.read(target, &known).await.ok().flatten();
            if !visible(back.as_ref()) {
                return Err(Replaced::Yes);
            }
        }
    }
    Ok(seen)
}

/// A shared policy's part a writer waits for: these statements in force, these Sids gone.
struct Expect {
    present: Vec<Value>,
    absent: Vec<String>,
}

impl Expect {
    fn shown(&self, live: Option<&LivePolicy>) -> bool {
        let doc = live.and_then(|l| serde_json::from_str::<Value>(&l.document).ok());
        let Some(doc) = doc else {
            return self.present.is_empty();
        };
        let live = statements(&doc);
        let has = |sid: &str| {
            live.iter()
                .any(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))
        };
        self.present
            .iter()
            .all(|want| live.iter().any(|s| same_document(want, s)))
            && !self.absent.iter().any(|sid| has(sid))
    }
}

/// What this writer waits for in a shared policy: the owner's own statements (or, for
/// a repair, every present owner's) and the removal of what nobody holds any more.
/// `None`: a whole policy, judged by the document or version written.
fn expectations(view: &View, w: &Writer<'_>) -> Option<Expect> {
    if matches!(w.slot, Slot::Owned(_)) || !view.owners.values().any(|r| !r.holding.is_policy()) {
        return None;
    }
    let present = view.present();
    let held: Vec<String> = present.iter().flat_map(|(_, r)| r.holding.sids()).collect();
    let owners: Vec<&crate::ledger::Record> = match w.owner {
        Some((k, _)) => view.owners.get(k).into_iter().collect(),
        None => view.owners.values().collect(),
    };
    let mut e = Expect {
        present: Vec::new(),
        absent: Vec::new(),
    };
    for r in owners {
        if r.present {
            if let Holding::Statements(list) = &r.holding {
                e.present.extend(list.iter().cloned());
            }
        }
        e.absent
            .extend(r.removable_sids().into_iter().filter(|s| !held.contains(s)));
    }
    Some(e)
}

/// Why a write did not stay visible.
enum Replaced {
    /// A concurrent writer without a precondition replaced it: plan again.
    Yes,
    No(ChangeError),
}

/// Pauses after a write without precondition at which the policy is read again: a
/// concurrent writer's lost update shows within this window (about 1.5 s in all).
const SETTLE_CHECKS_MS: [u64; 4] = [50, 200, 450, 800];
