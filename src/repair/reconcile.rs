//! The scheduled reconcile: walk the whole ledger, read every target, repair drift,
//! and report how many were checked, in drift, repaired and failed.
//!
//! Reads run concurrently, at most `RECONCILE_CONCURRENCY` at once per service (their
//! read APIs are throttled at a few calls per second). The walk takes a lease in the
//! ledger so two never run at once, and pages through it with a cursor: when the
//! budget runs low it records the cursor and continues in a fresh asynchronous
//! invocation of itself, so a long walk finishes in one scheduled run and no target
//! is starved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, info_span, warn, Instrument};

use crate::app::App;
use crate::calls::budget::Budget;
use crate::error::InvocationError;
use crate::ledger::{now_ms, Counts, WalkRefused};
use crate::metrics;
use crate::repair::check::{check, Checked};
use crate::services::Service;
use crate::settings::DriftMode;

/// Targets read from the ledger per page; a page is finished before the budget check.
pub const PAGE: i32 = 100;
/// Never start a page with less time left than this.
const MIN_PAGE_TIME: Duration = Duration::from_secs(5);

/// The event that continues walk `walk_id` in a fresh invocation.
pub fn continuation(walk_id: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("{walk_id}-continued-{}", now_ms()),
        "detail-type": "Reconcile",
        "source": "resource-policy-provider",
        "detail": {"WalkId": walk_id}
    })
}

/// A `Scheduled Event` or a `Reconcile` request (with `detail.WalkId`: a continuation).
pub async fn handle(
    app: Arc<App>,
    event: &Value,
    lambda_deadline_ms: u64,
) -> Result<Value, InvocationError> {
    if app.settings.drift_mode == DriftMode::Disabled {
        info!("drift repair is disabled (DRIFT_MODE): the reconcile is ignored");
        return Ok(json!({"Status": "IGNORED", "Reason": "drift repair is disabled"}));
    }
    let ledger = app.ledger();
    let budget =
        Budget::from_lambda_deadline(lambda_deadline_ms, None, app.settings.response_reserve);
    // The lease outlives this invocation by a margin, so a continuation keeps it.
    let lease = budget.remaining() + Duration::from_secs(120);
    let continued = event
        .pointer("/detail/WalkId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let started = match &continued {
        Some(walk_id) => ledger.resume_walk(walk_id, lease).await?,
        None => {
            let id = event
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("walk-{}", now_ms()));
            ledger.start_walk(&id, lease).await?
        }
    };
    let mut walk = match started {
        Ok(w) => w,
        Err(WalkRefused::Busy { walk_id }) => {
            info!(running = %walk_id, "another reconcile walk is running: refused");
            return Ok(
                json!({"Status": "REFUSED", "Reason": format!("walk {walk_id} is running")}),
            );
        }
        Err(WalkRefused::NotCurrent) => {
            info!("the walk to continue is no longer current: nothing to do");
            return Ok(json!({"Status": "REFUSED", "Reason": "that walk is no longer current"}));
        }
    };
    info!(walk_id = %walk.walk_id, cursor = ?walk.cursor, "reconcile walk");

    let limits: HashMap<Service, Arc<Semaphore>> = Service::ALL
        .into_iter()
        .map(|s| {
            let permits = app.settings.reconcile_concurrency as usize;
            (s, Arc::new(Semaphore::new(permits)))
        })
        .collect();
    let mut longest_page = MIN_PAGE_TIME;
    let mut this_invocation: HashMap<Service, Counts> = HashMap::new();
    loop {
        if budget.remaining() < longest_page * 3 / 2 {
            ledger.checkpoint(&walk, lease).await?;
            report(&this_invocation);
            app.invoke_self(&continuation(&walk.walk_id), "the reconcile walk")
                .await
                .map_err(InvocationError::ServiceError)?;
            info!(walk_id = %walk.walk_id, counts = ?walk.counts, "budget low: the walk continues in a fresh invocation");
            return Ok(
                json!({"Status": "CONTINUED", "WalkId": walk.walk_id, "SoFar": totals(walk.counts)}),
            );
        }
        let page_started = Instant::now();
        let (items, next) = ledger.page(walk.cursor.as_deref(), PAGE).await?;
        let mut tasks = JoinSet::new();
        for view in items {
            let app = app.clone();
            let limits = limits.clone();
            let token = format!("{}-{}", walk.walk_id, view.change_version);
            // Each target's log lines carry its identity, under the walk's span.
            let span = info_span!("target", target = %view.target_id);
            let task = async move {
                let Some(service) = view.service_key.as_deref().and_then(Service::from_key) else {
                    return (
                        None,
                        Checked::Failed("the ledger's item names no service".into()),
                    );
                };
                let _permit = limits[&service].clone().acquire_owned().await;
                let checked = check(&app, &view, &token, None, &budget).await;
                if let Checked::Failed(why) = &checked {
                    warn!(target = %view.target_id, %why, "reconcile: repair failed");
                }
                (Some(service), checked)
            };
            tasks.spawn(task.instrument(span));
        }
        while let Some(done) = tasks.join_next().await {
            let (service, checked) = done.unwrap_or((None, Checked::Failed("task failed".into())));
            let counts = checked.counts();
            walk.counts.add(counts);
            if let Some(s) = service {
                this_invocation.entry(s).or_default().add(counts);
            }
        }
        longest_page = longest_page.max(page_started.elapsed());
        walk.cursor = next;
        if walk.cursor.is_none() {
            ledger.finish_walk(&walk).await?;
            report(&this_invocation);
            info!(walk_id = %walk.walk_id, counts = ?walk.counts, "reconcile walk finished");
            return Ok(
                json!({"Status": "DONE", "WalkId": walk.walk_id, "Totals": totals(walk.counts)}),
            );
        }
        ledger.checkpoint(&walk, lease).await?;
    }
}

fn totals(c: Counts) -> Value {
    json!({"Checked": c.checked, "InDrift": c.drift, "Repaired": c.repaired, "Failed": c.failed,
        "Detected": c.detected, "LoopsStopped": c.loops_stopped})
}

/// One EMF line per service this invocation touched.
fn report(counts: &HashMap<Service, Counts>) {
    for (service, c) in counts {
        metrics::emit_with("Reconcile", service.key(), *c, metrics::unrepaired(c), None);
    }
}
