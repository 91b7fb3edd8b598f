//! A CloudFormation owner whose stack resource no longer exists (its stack deleted with
//! the resource retained, or deleted while the function could not hear of it) is
//! recorded gone by a repair instead of having its grant restored.

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;
use tracing::{info, warn};

use crate::app::App;
use crate::ledger::{Holding, NewRecord, View};
use crate::model::owner::Owner;

/// Whether the stack resource exists: `Some(false)` when CloudFormation says it is gone
/// (deleted, or skipped when its stack was deleted), `None` when that cannot be told
/// (then the owner is kept: a repair is never a reason to drop one).
async fn exists(app: &App, owner: &Owner) -> Option<bool> {
    let Owner::Stack {
        stack_id,
        logical_id,
    } = owner
    else {
        return None;
    };
    let region = owner.stack_region()?;
    let out = app
        .clients
        .cloudformation(region)
        .describe_stack_resource()
        .stack_name(stack_id)
        .logical_resource_id(logical_id)
        .send()
        .await;
    match out {
        Ok(o) => {
            let status = o
                .stack_resource_detail()
                .and_then(|d| d.resource_status())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            Some(!matches!(
                status.as_str(),
                "DELETE_COMPLETE" | "DELETE_SKIPPED"
            ))
        }
        Err(e) => {
            let e = e.into_service_error();
            let message = e.message().unwrap_or_default().to_ascii_lowercase();
            if e.code() == Some("ValidationError") && message.contains("does not exist") {
                Some(false)
            } else {
                warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
                    "could not tell whether the owner's stack resource exists: kept");
                None
            }
        }
    }
}

/// Records gone every present CloudFormation owner whose stack resource is gone;
/// returns the ledger's item after, when any was.
pub async fn without_deleted_stacks(app: &App, view: &View) -> Option<View> {
    let mut changed = false;
    for (key, _) in view.present() {
        let Some(owner @ Owner::Stack { .. }) = Owner::parse(key) else {
            continue;
        };
        if exists(app, &owner).await != Some(false) {
            continue;
        }
        info!(owner = %key, "the owner's stack resource is gone: recorded gone, not restored");
        let gone = NewRecord {
            holding: Holding::Statements(Vec::new()),
            present: false,
            policy_id: None,
            prior: None,
            adopted: false,
            options: Value::Null,
        };
        let request = view.target_request.clone().unwrap_or(Value::Null);
        let service = view.service_key.clone().unwrap_or_default();
        match app
            .ledger()
            .record(&view.target_id, &request, &service, key, &gone)
            .await
        {
            Ok(_) => changed = true,
            Err(e) => warn!(error = %e, "could not record the owner gone"),
        }
    }
    if !changed {
        return None;
    }
    app.ledger().get(&view.target_id).await.ok().flatten()
}
