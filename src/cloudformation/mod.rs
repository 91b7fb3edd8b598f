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
use crate::apply::delete_policy;
use crate::attributes::Applied;
use crate::budget::Budget;
use crate::error::InvocationError;
use crate::recorded::{self, owner_cloudformation, RecordedError};
use crate::request::{InvalidRequest, PolicyNeeded, PolicyRequest};
use crate::retry::NotFound;
use crate::services::Known;
use crate::target::Target;
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
    let owner = owner_cloudformation(&env.stack_id, &env.logical_resource_id);
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
            update(
                &app,
                &u.resource_properties,
                &u.old_resource_properties,
                &u.physical_resource_id,
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

fn requested(req: &PolicyRequest) -> Known {
    Known {
        policy_id: req.policy_id.clone(),
    }
}

async fn create(
    app: &App,
    props: &Value,
    request_id: &str,
    owner: &str,
    budget: &Budget,
) -> Outcome {
    let marker = physical_id::marker(request_id);
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) => r,
        Err(why) => return invalid(marker, why),
    };
    record_target(&req.target);
    let known = requested(&req);
    let not_found = NotFound::MayAppear;
    match recorded::put(app, &req, &known, &[], not_found, request_id, owner, budget).await {
        Ok(applied) => {
            let known = applied.version.as_ref().map(|v| v.known()).unwrap_or(known);
            Outcome::success(
                physical_id::for_target(&req.target, &known),
                data(&req, &applied),
            )
        }
        // A write that may have landed gets the real id, so the rollback Delete removes it.
        Err(e) if e.may_have_written() => {
            Outcome::failed(physical_id::for_target(&req.target, &known), e.to_string())
        }
        Err(e) => Outcome::failed(marker, e.to_string()),
    }
}

/// The target an existing physical id (or, failing that, the old properties) names.
fn old_target(old_id: &str, old: Option<&PolicyRequest>) -> (Option<Target>, Known) {
    let from_props = || old.map(|r| r.target.clone());
    match physical_id::parse(old_id) {
        Named::Target(t, known) => (Some(t), known),
        Named::Digest { digest, known } => (
            from_props().filter(|t| physical_id::digest_matches(&digest, t)),
            known,
        ),
        Named::Unknown => (from_props(), Known::default()),
    }
}

/// Whether `props` gives `name` (present and not null).
fn gives(props: &Value, name: &str) -> bool {
    props.get(name).is_some_and(|v| !v.is_null())
}

async fn update(
    app: &App,
    props: &Value,
    old_props: &Value,
    old_id: &str,
    request_id: &str,
    owner: &str,
    budget: &Budget,
) -> Outcome {
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) => r,
        Err(why) => return invalid(old_id.to_string(), why),
    };
    record_target(&req.target);
    let old = PolicyRequest::from_properties(old_props, &app.region, PolicyNeeded::No).ok();
    let (old_target, old_known) = old_target(old_id, old.as_ref());
    // Same target: update in place. A new target: put there and return its id;
    // CloudFormation then deletes the old one.
    let replacing = old_target.as_ref() != Some(&req.target);
    let known = match (replacing, req.policy_id.clone()) {
        (_, Some(id)) => Known {
            policy_id: Some(id),
        },
        (false, None) => old_known,
        (true, None) => Known::default(),
    };
    if replacing {
        info!(old = ?old_target.map(|t| t.display_id()), "target changed: replacing");
    }
    // A new target may be a resource made in this same update a moment ago.
    let not_found = if replacing {
        NotFound::MayAppear
    } else {
        NotFound::Final
    };
    // Shared policies: the statements this resource owned before, on the same target.
    let owned_before = match (&old, replacing) {
        (Some(o), false) => o.statements.as_ref().map(|s| s.sids()).unwrap_or_default(),
        _ => Vec::new(),
    };
    // The mode is what the old properties gave, whether or not they still parse.
    let old_mode_known = gives(old_props, "Policy") || gives(old_props, "Statements");
    let switching = gives(old_props, "Statements") != req.statements.is_some();
    if !replacing && old_mode_known && switching {
        return Outcome::failed(
            old_id.to_string(),
            "Invalid request: switching between Policy and Statements on the same target is not \
             done in place; give the resource a new logical id (CloudFormation then creates the \
             new one and deletes the old)",
        );
    }
    let put = recorded::put(
        app,
        &req,
        &known,
        &owned_before,
        not_found,
        request_id,
        owner,
        budget,
    );
    match put.await {
        Ok(applied) => {
            let known = applied.version.as_ref().map(|v| v.known()).unwrap_or(known);
            Outcome::success(
                physical_id::for_target(&req.target, &known),
                data(&req, &applied),
            )
        }
        Err(e) if replacing && e.may_have_written() => Outcome::failed(
            old_id.to_string(),
            undo_replacement(app, &req, &known, e, request_id, owner, budget).await,
        ),
        Err(e) => Outcome::failed(old_id.to_string(), e.to_string()),
    }
}

/// A failed Update to a new target that may have written there: CloudFormation's
/// rollback never sends a Delete for that target, so remove it now (best effort,
/// inside the budget) and say so in the Reason.
async fn undo_replacement(
    app: &App,
    req: &PolicyRequest,
    known: &Known,
    failure: RecordedError,
    request_id: &str,
    owner: &str,
    budget: &Budget,
) -> String {
    let cleanup = budget.cleanup();
    let target = &req.target;
    // A shared policy keeps everyone else's statements: only ours come out again.
    let removed = match &req.statements {
        Some(statements) => {
            let change = recorded::StatementsChange {
                req,
                known,
                owned_before: &statements.sids(),
                desired: &[],
                owner,
            };
            recorded::change_statements(app, &change, request_id, &cleanup)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        None => delete_policy(
            app,
            target,
            known,
            req.policy.as_ref(),
            false,
            request_id,
            &cleanup,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string()),
    };
    match removed {
        Ok(_) => format!(
            "{failure}; the policy that may have been written on the new target {target} was \
                removed again"
        ),
        Err(e) => {
            error!(error = %e, "could not remove the policy from the new target after a failed \
                update");
            format!(
                "{failure}; a policy may remain on the new target {target} and could not be \
                    removed ({e}): remove it by hand"
            )
        }
    }
}

async fn delete(
    app: &App,
    props: &Value,
    id: &str,
    request_id: &str,
    owner: &str,
    budget: &Budget,
) -> Outcome {
    let from_props = PolicyRequest::from_properties(props, &app.region, PolicyNeeded::No);
    if let Ok(req) = &from_props {
        if let Some(statements) = &req.statements {
            let same_target = match physical_id::parse(id) {
                Named::Target(t, _) => t == req.target,
                Named::Digest { digest, .. } => physical_id::digest_matches(&digest, &req.target),
                Named::Unknown => true,
            };
            if same_target {
                return remove_statements(
                    app,
                    req,
                    statements.sids(),
                    id,
                    request_id,
                    owner,
                    budget,
                )
                .await;
            }
        }
    }
    // The physical id names the target whenever it can: properties that name another
    // one are not acted on.
    let (target, known, policy, wait) =
        match (physical_id::parse(id), from_props) {
            (Named::Target(t, known), Ok(r)) if r.target == t => {
                let known = Known {
                    policy_id: known.policy_id.or(r.policy_id),
                };
                (t, known, r.policy, r.wait_for_propagation)
            }
            (Named::Target(t, known), other) => {
                match other {
                    Ok(r) => warn!(
                        properties_target = %r.target.display_id(),
                        "the properties name another target than the physical id; deleting the \
                            physical id's target only"
                    ),
                    Err(why) => {
                        warn!(%why, "properties unreadable; deleting the target named by the \
                        physical id")
                    }
                }
                (t, known, None, true)
            }
            (Named::Digest { digest, known }, Ok(r))
                if physical_id::digest_matches(&digest, &r.target) =>
            {
                (r.target, known, r.policy, r.wait_for_propagation)
            }
            (Named::Digest { .. }, _) => return Outcome::failed(
                id.to_string(),
                "Invalid request: the physical id names its target by digest, and ResourceArn in \
                    the properties does not match it",
            ),
            (Named::Unknown, Ok(r)) => {
                let known = requested(&r);
                (r.target, known, r.policy, r.wait_for_propagation)
            }
            (Named::Unknown, Err(why)) => return invalid(id.to_string(), why),
        };
    record_target(&target);
    let policy = policy.as_ref();
    match recorded::delete(app, &target, &known, policy, wait, request_id, budget).await {
        Ok(applied) => {
            let mut d = HashMap::new();
            d.insert("Attempts".into(), applied.attempts.to_string());
            Outcome::success(id.to_string(), d)
        }
        Err(e) => Outcome::failed(id.to_string(), e.to_string()),
    }
}

/// A Delete in shared-policy mode: remove this resource's statements only (the policy
/// goes when nothing is left).
async fn remove_statements(
    app: &App,
    req: &PolicyRequest,
    sids: Vec<String>,
    id: &str,
    request_id: &str,
    owner: &str,
    budget: &Budget,
) -> Outcome {
    record_target(&req.target);
    let known = match physical_id::parse(id) {
        Named::Target(_, k) | Named::Digest { known: k, .. } => k,
        Named::Unknown => requested(req),
    };
    let change = recorded::StatementsChange {
        req,
        known: &known,
        owned_before: &sids,
        desired: &[],
        owner,
    };
    match recorded::change_statements(app, &change, request_id, budget).await {
        Ok(applied) => {
            let mut d = HashMap::new();
            d.insert("Attempts".into(), applied.attempts.to_string());
            Outcome::success(id.to_string(), d)
        }
        Err(e) => Outcome::failed(id.to_string(), e.to_string()),
    }
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
