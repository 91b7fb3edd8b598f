//! CloudFormation custom resources: Create / Update / Delete, physical ids, Data, and
//! the guarantee of exactly one answer per request, whatever happens.
//!
//! The work runs in its own task under the time budget, so a panic or a hang becomes a
//! FAILED answer instead of an hour of CloudFormation waiting for nothing.

pub mod physical_id;
pub mod response;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request,
    CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use serde_json::{json, Value};
use tracing::{error, info, info_span, warn, Instrument, Span};

use crate::apply::{delete_policy, put_policy, App, NotApplied};
use crate::budget::Budget;
use crate::request::{PolicyNeeded, PolicyRequest};
use crate::retry::NotFound;
use crate::services::Revision;
use crate::target::Target;
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

/// The envelope fields, read leniently so that even a request that fails to parse can
/// be answered.
struct Envelope {
    response_url: String,
    stack_id: String,
    request_id: String,
    logical_resource_id: String,
    physical_id: Option<String>,
    request_type: String,
}

fn field(event: &Value, name: &str) -> String {
    event
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Envelope {
    fn read(event: &Value) -> Envelope {
        Envelope {
            response_url: field(event, "ResponseURL"),
            stack_id: field(event, "StackId"),
            request_id: field(event, "RequestId"),
            logical_resource_id: field(event, "LogicalResourceId"),
            physical_id: event
                .get("PhysicalResourceId")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            request_type: field(event, "RequestType"),
        }
    }

    /// The id to answer with when the work never produced one.
    fn fallback_physical_id(&self) -> String {
        self.physical_id
            .clone()
            .unwrap_or_else(|| physical_id::marker(&self.request_id))
    }
}

/// `ServiceTimeout` bounds the work even when other properties are invalid.
fn service_timeout(event: &Value) -> Option<Duration> {
    let raw = event.get("ResourceProperties")?.get("ServiceTimeout")?;
    let secs = raw.as_u64().or_else(|| raw.as_str()?.trim().parse().ok())?;
    (1..=3600)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
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
) -> Result<Value, String> {
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
        if env.response_url.is_empty() {
            error!("the request has no ResponseURL: nobody can be answered");
            return Err("CloudFormation request without a ResponseURL: cannot answer".to_string());
        }
        let url = ResponseUrl::parse(&env.response_url, &app.settings.response_url_allowed_hosts)
            .map_err(|e| {
            error!("{e}");
            e
        })?;
        let budget = Budget::from_lambda_deadline(
            lambda_deadline_ms,
            service_timeout(&event),
            app.settings.response_reserve,
        );

        let outcome = match defect {
            Some(defect) => Outcome::failed(
                env.fallback_physical_id(),
                format!("Invalid request: {defect}"),
            ),
            None => {
                guard(
                    lifecycle(app.clone(), event, budget),
                    env.fallback_physical_id(),
                    budget,
                )
                .await
            }
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
        let status = response::send(http, &url, response::render(body), budget.respond_by())
            .await
            .map_err(|e| {
                error!("{e}");
                e
            })?;
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
                    "the work did not finish within the time budget ({:.1}s); answering before the deadline",
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
    let request: Request = match serde_json::from_value(event) {
        Ok(r) => r,
        Err(e) => {
            let why = match env.request_type.as_str() {
                "Create" | "Update" | "Delete" => {
                    format!("the CloudFormation request is malformed: {e}")
                }
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
        Request::Create(c) => create(&app, &c.resource_properties, &c.request_id, &budget).await,
        Request::Update(u) => {
            update(
                &app,
                &u.resource_properties,
                &u.old_resource_properties,
                &u.physical_resource_id,
                &u.request_id,
                &budget,
            )
            .await
        }
        Request::Delete(d) => {
            delete(
                &app,
                &d.resource_properties,
                &d.physical_resource_id,
                &d.request_id,
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

fn invalid(physical_id: String, why: String) -> Outcome {
    Outcome::failed(physical_id, format!("Invalid request: {why}"))
}

async fn create(app: &App, props: &Value, request_id: &str, budget: &Budget) -> Outcome {
    let marker = physical_id::marker(request_id);
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) => r,
        Err(why) => return invalid(marker, why),
    };
    record_target(&req.target);
    match put_policy(
        app,
        &req,
        &Revision::default(),
        NotFound::MayAppear,
        request_id,
        budget,
    )
    .await
    {
        Ok(applied) => Outcome::success(
            physical_id::for_target(&req.target, &applied.revision),
            applied.attributes(&req.target),
        ),
        // A write that may have landed gets the real id, so the rollback Delete removes it.
        Err(NotApplied {
            reason,
            write_accepted: true,
        }) => Outcome::failed(
            physical_id::for_target(&req.target, &Revision::default()),
            reason,
        ),
        Err(NotApplied { reason, .. }) => Outcome::failed(marker, reason),
    }
}

async fn update(
    app: &App,
    props: &Value,
    old_props: &Value,
    old_id: &str,
    request_id: &str,
    budget: &Budget,
) -> Outcome {
    let req = match PolicyRequest::from_properties(props, &app.region, PolicyNeeded::Yes) {
        Ok(r) => r,
        Err(why) => return invalid(old_id.to_string(), why),
    };
    record_target(&req.target);
    let old_target = PolicyRequest::from_properties(old_props, &app.region, PolicyNeeded::No)
        .map(|r| r.target)
        .ok()
        .or_else(|| physical_id::target_of(old_id));
    // Same target: update in place. A new target: put there and return its id;
    // CloudFormation then deletes the old one.
    let replacing = old_target.as_ref() != Some(&req.target);
    let previous = if replacing {
        Revision::default()
    } else {
        physical_id::known_revision(old_id, &req.target)
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
    match put_policy(app, &req, &previous, not_found, request_id, budget).await {
        Ok(applied) => Outcome::success(
            physical_id::for_target(&req.target, &applied.revision),
            applied.attributes(&req.target),
        ),
        Err(e) => Outcome::failed(old_id.to_string(), e.reason),
    }
}

async fn delete(app: &App, props: &Value, id: &str, request_id: &str, budget: &Budget) -> Outcome {
    if physical_id::is_marker(id) {
        info!("the Create never wrote anything: nothing to delete");
        return Outcome::success(id.to_string(), HashMap::new());
    }
    let (target, policy, wait) = match PolicyRequest::from_properties(
        props,
        &app.region,
        PolicyNeeded::No,
    ) {
        Ok(r) => (r.target, r.policy, r.wait_for_propagation),
        Err(why) => match physical_id::target_of(id) {
            Some(t) => {
                warn!(%why, "properties unreadable; deleting the target named by the physical id");
                (t, None, true)
            }
            None => return invalid(id.to_string(), why),
        },
    };
    record_target(&target);
    let known = physical_id::known_revision(id, &target);
    match delete_policy(
        app,
        &target,
        &known,
        policy.as_ref(),
        wait,
        request_id,
        budget,
    )
    .await
    {
        Ok((_, applied)) => {
            let mut d = HashMap::new();
            d.insert("Attempts".into(), applied.attempts.to_string());
            Outcome::success(id.to_string(), d)
        }
        Err(e) => Outcome::failed(id.to_string(), e.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn service_timeout_is_read_leniently_from_any_event() {
        assert_eq!(
            service_timeout(&json!({"ResourceProperties": {"ServiceTimeout": "30"}})),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            service_timeout(&json!({"ResourceProperties": {"ServiceTimeout": 0}})),
            None
        );
        assert_eq!(service_timeout(&json!({})), None);
    }
}
