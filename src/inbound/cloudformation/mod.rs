//! CloudFormation custom resources: Create / Update / Delete, physical ids, Data, and
//! the guarantee of exactly one answer per request, whatever happens.
//!
//! The work runs in its own task under the time budget, so a panic or a hang becomes a
//! FAILED answer instead of an hour of CloudFormation waiting for nothing. A rollback
//! Delete of a Create that wrote nothing is answered before anything else is looked
//! at, so it always completes.

mod envelope;
pub mod physical_id;
pub mod response;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request,
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument, Span};

use crate::app::App;
use crate::attributes::Applied;
use crate::calls::budget::Budget;
use crate::calls::retry::NotFound;
use crate::change::{execute, Change, ChangeError, Options, Wanted};
use crate::error::InvocationError;
use crate::inbound::rollback;
use crate::ledger::Holding;
use crate::model::owner::Owner;
use crate::model::request::{InvalidRequest, PolicyNeeded, PolicyRequest};
use crate::model::target::Target;
use crate::services::Known;
use envelope::{service_timeout, Envelope};
use physical_id::Named;
use response::ResponseUrl;

/// What the work decided; becomes the response body.
#[derive(Clone, Debug)]
struct Outcome {
    status: Status,
    reason: Option<String>,
    physical_id: String,
    data: HashMap<String, String>,
}

impl Outcome {
    fn success(physical_id: String, data: HashMap<String, String>) -> Self {
        Outcome {
            status: Status::Success,
            reason: None,
            physical_id,
            data,
        }
    }

    fn failed(physical_id: String, reason: impl Into<String>) -> Self {
        Outcome {
            status: Status::Failed,
            reason: Some(reason.into()),
            physical_id,
            data: HashMap::new(),
        }
    }
}

/// Handles one CloudFormation request: validates where to answer, does the work under
/// the budget, answers exactly once. `defect` is a problem found while decoding the
/// event (it is answered FAILED). Returns a summary for the invocation result; an
/// error only when no answer could be delivered.
pub async fn handle(
    app: Arc<App>,
    http: &reqwest::Client,
    event: Value,
    defect: Option<String>,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    let env = Envelope::read(&event);
    let span = info_span!(
        "cloudformation",
        request_id = %env.request_id,
        logical_resource_id = %env.logical_resource_id,
        request_type = %env.request_type,
        service = tracing::field::Empty,
        target = tracing::field::Empty,
    );
    async move {
        let undelivered = |e: String| {
            error!("{e}");
            InvocationError::ResponseNotDelivered(e)
        };
        if env.response_url.is_empty() {
            return Err(undelivered(
                "CloudFormation request without a ResponseURL: cannot answer".into(),
            ));
        }
        let url = ResponseUrl::parse(&env.response_url, &app.settings.response_url_allowed_hosts)
            .map_err(undelivered)?;
        let budget = Budget::from_lambda_deadline(
            lambda_deadline_ms,
            service_timeout(&event),
            app.settings.response_reserve,
        );

        let outcome = if let Some(id) = env.nothing_to_delete() {
            // Before any other check: the rollback of a Create that wrote nothing must
            // complete whatever else the event holds.
            info!(physical_id = %id, "Delete of a resource that was never created: nothing to \
                remove");
            Outcome::success(id, HashMap::new())
        } else if let Some(defect) = defect {
            Outcome::failed(
                env.fallback_physical_id(),
                format!("Invalid request: {defect}"),
            )
        } else {
            guard(
                lifecycle(app.clone(), event, budget),
                env.fallback_physical_id(),
                budget,
            )
            .await
        };
        match outcome.status {
            Status::Success => info!(physical_id = %outcome.physical_id, "SUCCESS"),
            _ => warn!(physical_id = %outcome.physical_id, reason = ?outcome.reason, "FAILED"),
        }
        let number = |k: &str| outcome.data.get(k).and_then(|v| v.parse::<u64>().ok());
        crate::metrics::change(
            "CloudFormation",
            outcome
                .data
                .get("Service")
                .map_or("unknown", String::as_str),
            if outcome.status == Status::Success {
                "SUCCESS"
            } else {
                "FAILED"
            },
            number("Attempts").unwrap_or(0) as u32,
            number("PropagationMs"),
        );

        let mut body = Response::default();
        body.status = outcome.status.clone();
        body.reason = outcome.reason.clone();
        body.physical_resource_id = outcome.physical_id.clone();
        body.stack_id = env.stack_id.clone();
        body.request_id = env.request_id.clone();
        body.logical_resource_id = env.logical_resource_id.clone();
        body.data = outcome.data.clone();
        let body = response::render(body).map_err(undelivered)?;
        let status = response::send(http, &url, body, budget.respond_by())
            .await
            .map_err(undelivered)?;
        Ok(json!({
            "Status": if outcome.status == Status::Success { "SUCCESS" } else { "FAILED" },
            "PhysicalResourceId": outcome.physical_id,
            "Reason": outcome.reason,
            "ResponseHttpStatus": status,
        }))
    }
    .instrument(span)
    .await
}

/// Runs the work in its own task: a panic or an overrun becomes a FAILED outcome.
/// The lifecycle stops itself at the work deadline; the limit here is the safety net
/// behind it, still well before the answer is due.
async fn guard<F>(work: F, fallback_physical_id: String, budget: Budget) -> Outcome
where
    F: std::future::Future<Output = Outcome> + Send + 'static,
{
    let task = tokio::spawn(work.instrument(Span::current()));
    let abort = task.abort_handle();
    let limit = budget.work_deadline() + (budget.respond_by() - budget.work_deadline()) / 3;
    match tokio::time::timeout_at(limit, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => {
            let panic = join.into_panic();
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            error!(panic = %msg, "the request handler panicked");
            Outcome::failed(
                fallback_physical_id,
                format!("internal error while handling the request: {msg}"),
            )
        }
        Ok(Err(join)) => Outcome::failed(fallback_physical_id, format!("internal error: {join}")),
        Err(_) => {
            abort.abort();
            Outcome::failed(
                fallback_physical_id,
                format!(
                    "the work did not finish within the time budget ({:.1}s); answering before \
                        the deadline",
                    budget.elapsed().as_secs_f64()
                ),
            )
        }
    }
}

fn record_target(target: &Target) {
    Span::current().record("service", target.service.key());
    Span::current().record("target", target.display_id());
}

async fn lifecycle(app: Arc<App>, event: Value, budget: Budget) -> Outcome {
    let env = Envelope::read(&event);
    let owner = Owner::stack(&env.stack_id, &env.logical_resource_id);
    // A Delete needs only its physical id and properties: a malformed envelope must not
    // keep a stack from being deleted.
    if env.request_type == "Delete" {
        let id = env.fallback_physical_id();
        let props = event
            .get("ResourceProperties")
            .cloned()
            .unwrap_or(Value::Null);
        return delete(&app, &props, &id, &env.request_id, &owner, &budget).await;
    }
    let request: Request = match serde_json::from_value(event) {
        Ok(r) => r,
        Err(e) => {
            let why = match env.request_type.as_str() {
                "Create" | "Update" => format!("the CloudFormation request is malformed: {e}"),
                "" => "RequestType is missing: expected Create, Update or Delete".to_string(),
                other => format!("RequestType {other:?} is not Create, Update or Delete"),
            };
            return Outcome::failed(
                env.fallback_physical_id(),
                format!("Invalid request: {why}"),
            );
        }
    };
    match request {
        Request::Create(c) => {
            create(&app, &c.resource_properties, &c.request_id, &owner, &budget).await
        }
        Request::Update(u) => {
            let old = Old {
                props: &u.old_resource_properties,
                id: &u.physical_resource_id,
            };
            update(
                &app,
                &u.resource_properties,
                old,
                &u.request_id,
                &owner,
                &budget,
            )
            .await
        }
        _ => Outcome::failed(
            env.fallback_physical_id(),
            "Invalid request: unsupported RequestType",
        ),
    }
}

/// `Fn::GetAtt` data: the applied change's attributes, plus `Sids` for shared policies.
fn data(req: &PolicyRequest, applied: &Applied) -> HashMap<String, String> {
    let mut d = applied.attributes(&req.target);
    if let Some(st) = &req.statements {
        d.insert("Sids".into(), st.sids().join(","));
    }
    d
}

fn invalid(physical_id: String, why: InvalidRequest) -> Outcome {
    Outcome::failed(physical_id, format!("Invalid request: {why}"))
}

/// A custom resource cannot plan: its change set is the plan.
fn dry_run_refused() -> InvalidRequest {
    InvalidRequest::new(
        "DryRun",
        "DryRun is for apply requests (or a Plan request); a stack's change set shows what \
         a custom resource would change",
    )
}

/// The change a Create or Update asks for.
fn change(req: &PolicyRequest, owner: &Owner, token: &str, not_found: NotFound) -> Change {
    Change {
        target: req.target.clone(),
        owner: owner.clone(),
        wanted: Wanted::of(req),
        options: Options::of(req),
        token: token.to_string(),
        not_found,
        policy_id: req.policy_id.clone(),
        take_over: req.take_over,
        guard_override: req.guard_override,
        asked_at: None,
        // Only an Update on the same target (its resource may not appear) is of an
        // owner that already holds what is there.
        existing: not_found == NotFound::Final,
    }
}

async fn create(
    app: &App,
    props: &Value,
    request_id: &str,
    owner: &Owner,
    budget: &Budget,
) -> Outcome {
    let marker = physical_id::marker(request_id);
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) if r.dry_run => return invalid(marker, dry_run_refused()),
        Ok(r) => r,
        Err(why) => return invalid(marker, why),
    };
    record_target(&req.target);
    // The id names the target only: which policies the owner holds is the ledger's.
    let id = physical_id::for_target(&req.target, &Known::default());
    let c = change(&req, owner, request_id, NotFound::MayAppear);
    match execute(app, &c, budget).await {
        Ok(applied) => Outcome::success(id, data(&req, &applied)),
        // A write that may have landed gets the real id, so the rollback Delete removes it.
        Err(e) if e.may_have_written() => Outcome::failed(id, e.to_string()),
        Err(e) => Outcome::failed(marker, e.to_string()),
    }
}

/// What an Update replaces: its old properties and physical id.
struct Old<'a> {
    props: &'a Value,
    id: &'a str,
}

/// The target an existing physical id names (a digest id: checked against `candidate`,
/// the old properties' target).
fn named_target(id: &str, candidate: Option<&Target>) -> (Option<Target>, Known) {
    match physical_id::parse(id) {
        Named::Target(t, known) => (Some(t), known),
        Named::Digest { digest, known } => (
            candidate
                .filter(|t| physical_id::digest_matches(&digest, t))
                .cloned(),
            known,
        ),
        Named::Unknown => (candidate.cloned(), Known::default()),
    }
}

async fn update(
    app: &App,
    props: &Value,
    old: Old<'_>,
    request_id: &str,
    owner: &Owner,
    budget: &Budget,
) -> Outcome {
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) if r.dry_run => return invalid(old.id.to_string(), dry_run_refused()),
        Ok(r) => r,
        Err(why) => return invalid(old.id.to_string(), why),
    };
    record_target(&req.target);
    // The old properties only say which target the old id named (a digest id); what the
    // owner holds there is the ledger's to say.
    let old_req = PolicyRequest::from_properties(old.props, &app.region, PolicyNeeded::No).ok();
    let (old_target, _) = named_target(old.id, old_req.as_ref().map(|r| &r.target));
    if old_target.as_ref() == Some(&req.target) {
        let c = change(&req, owner, request_id, NotFound::Final);
        // Same target: the id it received, so CloudFormation deletes nothing.
        return match execute(app, &c, budget).await {
            Ok(applied) => Outcome::success(old.id.to_string(), data(&req, &applied)),
            Err(e) => match rollback_handed_off(app, props, &req, owner, request_id, &e).await {
                Some(done) => Outcome::success(old.id.to_string(), done),
                None => Outcome::failed(old.id.to_string(), e.to_string()),
            },
        };
    }
    // A new target: put there and return its id; CloudFormation then deletes the old
    // one. The new target may be a resource made in this same update a moment ago.
    info!(old = ?old_target.map(|t| t.display_id()), "target changed: replacing");
    let c = change(&req, owner, request_id, NotFound::MayAppear);
    let new_id = physical_id::for_target(&req.target, &Known::default());
    let e = match execute(app, &c, budget).await {
        Ok(applied) => return Outcome::success(new_id, data(&req, &applied)),
        Err(e) => e,
    };
    if let Some(done) = rollback_handed_off(app, props, &req, owner, request_id, &e).await {
        return Outcome::success(new_id, done);
    }
    if e.may_have_written() {
        Outcome::failed(
            old.id.to_string(),
            undo_replacement(app, &c, e, budget).await,
        )
    } else {
        Outcome::failed(old.id.to_string(), e.to_string())
    }
}

/// A rollback Update the ledger failed: handed to the asynchronous queue, which records
/// and writes it once the ledger answers, and answered SUCCESS, so the stack's rollback
/// completes. `None`: not a ledger failure, not a rollback, or the hand-off failed.
async fn rollback_handed_off(
    app: &App,
    props: &Value,
    req: &PolicyRequest,
    owner: &Owner,
    request_id: &str,
    failure: &ChangeError,
) -> Option<HashMap<String, String>> {
    if !failure.ledger_failed() || !rollback::rolling_back(app, owner).await {
        return None;
    }
    let event = rollback::event(props, owner, request_id);
    match rollback::send(app, &event).await {
        Ok(()) => {
            warn!(error = %failure, "the ledger failed during a rollback: the rollback update \
                continues asynchronously");
            Some(data(req, &Applied::default()))
        }
        Err(why) => {
            error!(%why, "could not hand the rollback update off");
            None
        }
    }
}

/// A failed Update to a new target that may have written there: CloudFormation's
/// rollback never sends a Delete for that target, so this owner leaves it now (best
/// effort, inside the budget) and the Reason says so.
async fn undo_replacement(app: &App, c: &Change, failure: ChangeError, budget: &Budget) -> String {
    let cleanup = budget.cleanup();
    let target = &c.target;
    let leave = Change {
        wanted: Wanted::Remove {
            legacy: None,
            legacy_policy_id: None,
        },
        not_found: NotFound::Final,
        ..c.clone()
    };
    match execute(app, &leave, &cleanup).await {
        Ok(_) => format!(
            "{failure}; what this resource may have written on the new target {target} was \
                removed again"
        ),
        Err(e) => {
            error!(error = %e, "could not remove what this resource wrote on the new target \
                after a failed update");
            format!(
                "{failure}; this resource is recorded as gone from the new target {target}, \
                    and the removal finishes on the next repair ({e})"
            )
        }
    }
}

async fn delete(
    app: &App,
    props: &Value,
    id: &str,
    request_id: &str,
    owner: &Owner,
    budget: &Budget,
) -> Outcome {
    let from_props = PolicyRequest::from_properties(props, &app.region, PolicyNeeded::No);
    let props_target = from_props.as_ref().ok().map(|r| &r.target);
    // The physical id names the target whenever it can: properties that name another
    // one are not acted on.
    let (target, known) = match named_target(id, props_target) {
        (Some(t), known) => (t, known),
        (None, _) => {
            return match (physical_id::parse(id), from_props) {
                (Named::Digest { .. }, _) => Outcome::failed(
                    id.to_string(),
                    "Invalid request: the physical id names its target by digest, and \
                        ResourceArn in the properties does not match it",
                ),
                (_, Err(why)) => invalid(id.to_string(), why),
                (_, Ok(_)) => Outcome::failed(id.to_string(), "Invalid request: no target"),
            }
        }
    };
    record_target(&target);
    let same = from_props.as_ref().ok().filter(|r| r.target == target);
    if from_props.is_ok() && same.is_none() {
        warn!(
            "the properties name another target than the physical id; acting on the \
            physical id's target only"
        );
    }
    // What the properties say this resource placed: used only if the ledger does not
    // know the owner (a resource created before the ledger existed).
    let legacy = same.and_then(|r| match (&r.statements, &r.policy) {
        (Some(s), _) => Some(Holding::Statements(s.items().to_vec())),
        (None, Some(p)) => Some(Holding::Policy(p.value().clone())),
        _ => None,
    });
    let c = Change {
        target: target.clone(),
        owner: owner.clone(),
        wanted: Wanted::Remove {
            legacy,
            legacy_policy_id: known
                .policy_id
                .or_else(|| same.and_then(|r| r.policy_id.clone())),
        },
        options: same.map(Options::of).unwrap_or(Options {
            wait_for_propagation: true,
            ..Options::default()
        }),
        token: request_id.to_string(),
        not_found: NotFound::Final,
        policy_id: None,
        take_over: false,
        guard_override: false,
        asked_at: None,
        existing: true,
    };
    let done = |applied: &Applied| {
        let mut d = HashMap::new();
        d.insert("Attempts".into(), applied.attempts.to_string());
        Outcome::success(id.to_string(), d)
    };
    match execute(app, &c, budget).await {
        Ok(applied) => done(&applied),
        // The owner is recorded gone: whatever failed, the next repair finishes the
        // removal and never restores the grant, so the stack is not held up.
        Err(e) if !e.ledger_unreachable() => {
            error!(error = %e, "the removal did not finish: the owner is recorded gone and a \
                repair finishes it");
            if let Err(why) = hand_off(app, &c, &e).await {
                warn!(%why, "the reconcile finishes the removal");
            }
            done(&Applied::default())
        }
        // The ledger cannot be reached: Lambda's asynchronous queue carries the record
        // that this owner is gone (retried, then the dead-letter queue).
        Err(e) => match hand_off(app, &c, &e).await {
            Ok(()) => done(&Applied::default()),
            Err(why) => Outcome::failed(id.to_string(), format!("{e}; {why}")),
        },
    }
}

/// Hands an owner's removal to this function's asynchronous queue: recorded and
/// converged there, retried by Lambda, then kept in the dead-letter queue.
async fn hand_off(app: &App, c: &Change, failure: &ChangeError) -> Result<(), String> {
    let event = crate::inbound::owner_gone::event(c);
    crate::inbound::owner_gone::send(app, &event)
        .await
        .map(|_| info!(error = %failure, "the removal continues asynchronously"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget() -> Budget {
        Budget::new(Duration::from_secs(10), None, Duration::from_secs(2))
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_becomes_a_failed_outcome() {
        let work = async {
            if true {
                panic!("adapter exploded");
            }
            Outcome::success("x".into(), HashMap::new())
        };
        let o = guard(work, "fallback".into(), budget()).await;
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.physical_id, "fallback");
        assert!(o.reason.unwrap().contains("adapter exploded"));
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_never_ends_is_cut_off_before_the_answer_is_due() {
        let b = budget();
        let o = guard(std::future::pending(), "fallback".into(), b).await;
        assert_eq!(o.status, Status::Failed);
        assert!(o.reason.unwrap().contains("time budget"));
        assert!(tokio::time::Instant::now() < b.respond_by());
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_time_ends_before_the_guard_cuts_the_work_off() {
        let b = budget();
        let c = b.cleanup();
        let guard_limit = b.work_deadline() + (b.respond_by() - b.work_deadline()) / 3;
        assert!(c.work_deadline() > b.work_deadline() && c.work_deadline() < guard_limit);
    }
}
