//! EventBridge: explicit apply requests (`PutResourcePolicy` / `DeleteResourcePolicy`
//! with the request as `detail`, accepted only from allowed accounts), CloudTrail
//! events for drift repair, and the scheduled (or requested) reconcile.
//!
//! A failure is returned as the invocation's error with an `errorType` an operator can
//! route on (`InvalidRequest`, `ServiceError`, `Timeout`), so EventBridge's
//! asynchronous retries, a dead-letter queue or an on-failure destination catch it.

use std::sync::Arc;

use serde_json::{json, Value};
use tracing::{info, info_span, Instrument};

use crate::app::App;
use crate::calls::budget::Budget;
use crate::calls::retry::NotFound;
use crate::change::{execute, Change, Options, Wanted};
use crate::error::InvocationError;
use crate::inbound::cloudtrail as drift;
use crate::inbound::{owner_gone, rollback};
use crate::ledger::Holding;
use crate::model::owner::Owner;
use crate::model::request::{InvalidRequest, PolicyNeeded, PolicyRequest};
use crate::model::statements::Statements;
use crate::repair::reconcile;

fn text<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub async fn handle(
    app: Arc<App>,
    event: Value,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    let detail_type = text(&event, "detail-type").to_string();
    let id = text(&event, "id").to_string();
    let span = info_span!(
        "eventbridge",
        event_id = %id,
        detail_type = %detail_type,
        service = tracing::field::Empty,
        target = tracing::field::Empty
    );
    let needed = match detail_type.as_str() {
        "PutResourcePolicy" | "Plan" => PolicyNeeded::Yes,
        "DeleteResourcePolicy" => PolicyNeeded::No,
        "AWS API Call via CloudTrail" => {
            return drift::handle(&app, &event, lambda_deadline_ms)
                .instrument(span)
                .await;
        }
        owner_gone::DETAIL_TYPE => {
            return owner_gone::handle(&app, &event, lambda_deadline_ms)
                .instrument(span)
                .await;
        }
        rollback::DETAIL_TYPE => {
            return rollback::handle(&app, &event, lambda_deadline_ms)
                .instrument(span)
                .await;
        }
        "Scheduled Event" | "Reconcile" => {
            return reconcile::handle(app, &event, lambda_deadline_ms)
                .instrument(span)
                .await;
        }
        other => {
            return Err(InvocationError::InvalidRequest(format!(
                "unsupported EventBridge event: detail-type {other:?} from source {:?}; \
                 expected PutResourcePolicy, DeleteResourcePolicy, a CloudTrail event, \
                 Scheduled Event or Reconcile",
                text(&event, "source")
            )));
        }
    };
    let _entered = span.enter();
    if let Some(allowed) = &app.settings.apply_allowed_accounts {
        let account = text(&event, "account");
        if !allowed.iter().any(|a| a == account) {
            return Err(InvalidRequest::new(
                "account",
                format!(
                    "apply requests from account {account:?} are not allowed \
                     (APPLY_ALLOWED_ACCOUNTS)"
                ),
            )
            .into());
        }
    }
    drop(_entered);
    let done = apply(&app, &event, needed, lambda_deadline_ms)
        .instrument(span)
        .await;
    let data = done.as_ref().ok().map(|v| &v["Data"]);
    let field = |k: &str| {
        data.and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    crate::metrics::change(
        "Apply",
        field("Service").as_deref().unwrap_or("unknown"),
        if done.is_ok() { "SUCCESS" } else { "FAILED" },
        field("Attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
        field("PropagationMs").and_then(|a| a.parse().ok()),
    );
    done
}

/// Terraform's `aws_lambda_invocation` with `lifecycle_scope = "CRUD"` adds
/// `tf: {action, prev_input}` to the input: `delete` removes, `update` replaces what
/// `prev_input` held.
struct Terraform {
    action: String,
    prev_input: Option<Value>,
}

/// The request in `event` and Terraform's `tf`, which Terraform adds at the top level
/// of the input it invokes the function with (also accepted inside `detail`).
fn split_tf(event: &Value) -> Result<(Value, Option<Terraform>), InvalidRequest> {
    let mut detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let inner = detail.as_object_mut().and_then(|m| m.remove("tf"));
    let Some(tf) = event.get("tf").cloned().or(inner) else {
        return Ok((detail, None));
    };
    let action = tf
        .get("action")
        .and_then(Value::as_str)
        .filter(|a| matches!(*a, "create" | "update" | "delete"))
        .ok_or_else(|| InvalidRequest::new("tf", "tf.action must be create, update or delete"))?;
    Ok((
        detail,
        Some(Terraform {
            action: action.to_string(),
            prev_input: tf.get("prev_input").filter(|p| !p.is_null()).cloned(),
        }),
    ))
}

/// An apply request: put or delete, with the same validation, retries and
/// propagation wait as a custom resource. Its owner is the sender: `account` + `source`.
async fn apply(
    app: &App,
    event: &Value,
    needed: PolicyNeeded,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    let id = text(event, "id");
    let (account, source) = (text(event, "account"), text(event, "source"));
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidRequest::new(
            "account",
            format!("the apply request's account {account:?} is not a 12-digit account id: it names the sender, who owns what it applies"),
        )
        .into());
    }
    if source.trim().is_empty() {
        return Err(InvalidRequest::new(
            "source",
            "the apply request has no source: with its account it names the sender, who owns what it applies",
        )
        .into());
    }
    let owner = Owner::sender(account, source);
    let (detail, tf) = split_tf(event)?;
    let needed = match tf.as_ref().map(|t| t.action.as_str()) {
        Some("delete") => PolicyNeeded::No,
        Some(_) => PolicyNeeded::Yes,
        None => needed,
    };
    let req = PolicyRequest::from_properties(&detail, &app.region, needed)?;
    tracing::Span::current().record("service", req.target.service.key());
    tracing::Span::current().record("target", req.target.display_id());
    let budget = Budget::from_lambda_deadline(
        lambda_deadline_ms,
        req.service_timeout,
        app.settings.response_reserve,
    );
    let change = |wanted: Wanted, target: &crate::model::target::Target, not_found| Change {
        target: target.clone(),
        owner: owner.clone(),
        wanted,
        options: Options::of(&req),
        token: id.to_string(),
        not_found,
        policy_id: req.policy_id.clone(),
        take_over: req.take_over,
        guard_override: req.guard_override,
        asked_at: None,
        existing: false,
    };
    // A plan before apply: the same validation, record and plan, nothing written.
    if req.dry_run || text(event, "detail-type") == "Plan" {
        let wanted = match needed {
            PolicyNeeded::Yes => Wanted::of(&req),
            PolicyNeeded::No => remaining(app, &detail, &req, &owner).await?,
        };
        let c = change(wanted, &req.target, NotFound::Final);
        let plan = crate::change::dry_run::dry_run(app, &c, &budget).await?;
        info!(status = %plan["Status"], "planned, nothing written");
        return Ok(plan);
    }
    let (status, applied) = match needed {
        PolicyNeeded::Yes => {
            let c = change(Wanted::of(&req), &req.target, NotFound::MayAppear);
            let applied = execute(app, &c, &budget).await?;
            // Terraform moved the request to another target: leave the old one.
            if let Some(prev) = tf.as_ref().and_then(|t| t.prev_input.as_ref()) {
                // The previous input: an apply request (its `detail`), or a bare request.
                let prev = match prev.get("detail") {
                    Some(_) => split_tf(prev)?.0,
                    None => prev.clone(),
                };
                if let Ok(old) =
                    PolicyRequest::from_properties(&prev, &app.region, PolicyNeeded::No)
                {
                    if old.target != req.target {
                        let leave = Wanted::Remove {
                            legacy: None,
                            legacy_policy_id: None,
                        };
                        execute(app, &change(leave, &old.target, NotFound::Final), &budget).await?;
                    }
                }
            }
            ("APPLIED", applied)
        }
        PolicyNeeded::No => {
            let wanted = remaining(app, &detail, &req, &owner).await?;
            let c = change(wanted, &req.target, NotFound::Final);
            ("DELETED", execute(app, &c, &budget).await?)
        }
    };
    info!(status, "done");
    let mut data = applied.attributes(&req.target);
    if let Some(st) = &req.statements {
        data.insert("Sids".into(), st.sids().join(","));
    }
    Ok(json!({
        "Status": status,
        "Target": req.target.display_id(),
        "Owner": owner.key(),
        "Data": data,
    }))
}

/// What a sender's Delete leaves it holding: with `Statements`, its recorded statements
/// less those Sids; without, nothing (only a whole policy may go that way). It never
/// touches another sender's holdings.
async fn remaining(
    app: &App,
    detail: &Value,
    req: &PolicyRequest,
    owner: &Owner,
) -> Result<Wanted, InvocationError> {
    let gone = Wanted::Remove {
        legacy: None,
        legacy_policy_id: None,
    };
    let named = match detail.get("Statements").filter(|v| !v.is_null()) {
        Some(raw) => {
            Some(Statements::parse(raw).map_err(|e| InvalidRequest::new("Statements", e))?)
        }
        None => None,
    };
    let held = app
        .ledger()
        .get(&req.target.display_id())
        .await?
        .and_then(|v| v.owners.get(&owner.key()).filter(|r| r.present).cloned());
    match (held.map(|r| r.holding), named) {
        (Some(Holding::Statements(_)), None) => Err(InvalidRequest::new(
            "Statements",
            "this sender holds statements in the policy: give Statements (by Sid) to say which \
             to remove",
        )
        .into()),
        (Some(Holding::Statements(mine)), Some(named)) => {
            let drop = named.sids();
            let left: Vec<Value> = mine
                .into_iter()
                .filter(|s| {
                    s.get("Sid")
                        .and_then(Value::as_str)
                        .is_none_or(|sid| !drop.iter().any(|d| d == sid))
                })
                .collect();
            if left.is_empty() {
                return Ok(gone);
            }
            let left = Statements::parse(&Value::Array(left))
                .map_err(|e| InvalidRequest::new("Statements", e))?;
            Ok(Wanted::Statements(left))
        }
        _ => Ok(gone),
    }
}
