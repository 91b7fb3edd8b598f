//! Shared helpers: wire-format error responses, a fast app, budgets, requests.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use resource_policy_provider::apply::ApplyError;
use resource_policy_provider::attributes::Applied;
use resource_policy_provider::budget::Budget;
use resource_policy_provider::policy::Policy;
use resource_policy_provider::propagation::{wait_until, PollPolicy};
use resource_policy_provider::request::{PolicyNeeded, PolicyRequest};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::retry::{with_retries, RetryPolicy};
use resource_policy_provider::services::Clients;
use resource_policy_provider::services::Known;
use resource_policy_provider::services::{shows_put, Deleted, Expected, PutInput};
use resource_policy_provider::settings::Settings;
use resource_policy_provider::target::Target;
use resource_policy_provider::App;
use serde_json::Value;
use tracing::{info, warn};

pub use crate::wire::*;

/// The SDK's standard retry with the test's attempts and no real waiting.
pub fn sdk_retries(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(max_attempts)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

pub fn fast_settings() -> Settings {
    Settings {
        retry_base: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        not_found_grace: Duration::from_millis(500),
        invalid_principal_grace: Duration::from_millis(500),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        ..Settings::default()
    }
}

pub fn empty_clients() -> Clients {
    Clients::new(
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build(),
    )
}

pub fn app(clients: Clients) -> App {
    App::new(clients, fast_settings(), "us-east-1")
}

pub fn budget(millis: u64) -> Budget {
    Budget::new(Duration::from_millis(millis), None, Duration::ZERO)
}

/// Puts `req`'s policy where this function put nothing before, under a fresh budget.
pub async fn put_fresh(
    app: &App,
    req: &PolicyRequest,
    not_found: NotFound,
    budget_ms: u64,
) -> Result<Applied, ApplyError> {
    put_policy(
        app,
        req,
        &Known::default(),
        not_found,
        "t",
        &budget(budget_ms),
    )
    .await
}

pub fn request(props: Value) -> PolicyRequest {
    PolicyRequest::from_properties(&props, "us-east-1", PolicyNeeded::Yes).unwrap()
}

pub const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"*","Resource":"*"}]}"#;

// ---------------------------------------------------------------------------------
// One put or delete through an adapter, with the function's retries and read-back:
// the harness the adapter tests (and the overshoot benchmark) drive each service with.
// The function itself writes through `change::converge`, on the same adapters,
// retries and read-back.

fn operation(target: &Target, verb: &str) -> String {
    format!("{} {verb} on {target}", target.service.facts().display_name)
}

/// Attaches `req`'s policy to its target and waits until it is readable.
/// `known` is what this function knows of a policy it put there before (an Update),
/// `not_found` whether a missing resource may still appear, `token` the idempotency
/// token of the request.
pub async fn put_policy(
    app: &App,
    req: &PolicyRequest,
    known: &Known,
    not_found: NotFound,
    token: &str,
    budget: &Budget,
) -> Result<Applied, ApplyError> {
    let Some(policy) = req.policy.as_ref() else {
        return Err(ApplyError::NotApplied {
            reason: "Policy is required".into(),
            last: None,
            timed_out: false,
        });
    };
    let target = &req.target;
    let input = PutInput {
        policy,
        expected: Expected::Anything,
        resendable: true,
        known,
        confirm_remove_self_resource_access: req.confirm_remove_self_resource_access,
        bypass_policy_lockout_check: req.bypass_policy_lockout_check,
        client_token: token,
    };
    let retry = RetryPolicy::from_settings(&app.settings);
    let what = operation(target, "PutResourcePolicy");
    let put = with_retries(&what, budget, &retry, not_found, || {
        app.clients.put(target, &input)
    })
    .await
    .map_err(ApplyError::from_write)?;
    info!(attempts = put.attempts, version = %put.value, "policy accepted");

    let mut applied = Applied {
        version: Some(put.value.clone()),
        attempts: put.attempts,
        propagation: None,
    };
    if !req.wait_for_propagation {
        return Ok(applied);
    }
    let poll = PollPolicy::from_settings(&app.settings);
    let what = format!("the new policy on {target}");
    let read_as = put.value.known();
    match wait_until(
        &what,
        budget,
        &poll,
        || app.clients.read(target, &read_as),
        |live| shows_put(&put.value, policy, live),
    )
    .await
    {
        Ok(waited) => {
            applied.propagation = Some(waited.waited);
            // Report the state waited for (AMP: ACTIVE), not the transitional one the put answered.
            if let Some(seen) = waited.seen {
                applied.version = Some(seen.version);
            }
            Ok(applied)
        }
        // The policy may remove the function's own read access, and the caller said
        // so: applied, visibility not confirmable.
        Err(e)
            if e.read_error.as_ref().is_some_and(|r| r.is_access_denied())
                && (req.confirm_remove_self_resource_access == Some(true)
                    || req.bypass_policy_lockout_check == Some(true)) =>
        {
            warn!(error = %e, "the policy was accepted; reading it back is denied, as the policy \
                itself may intend: visibility not confirmed");
            Ok(applied)
        }
        Err(e) => Err(ApplyError::from_wait(
            "the policy was accepted but is not in force",
            e,
        )),
    }
}

/// Removes the policy from `target` (success when it or the resource is already gone)
/// and, when asked, waits until reads no longer return it.
pub async fn delete_policy(
    app: &App,
    target: &Target,
    known: &Known,
    policy: Option<&Policy>,
    wait: bool,
    token: &str,
    budget: &Budget,
) -> Result<(Deleted, Applied), ApplyError> {
    let retry = RetryPolicy::from_settings(&app.settings);
    let what = operation(target, "DeleteResourcePolicy");
    let deleted = with_retries(&what, budget, &retry, NotFound::Final, || {
        app.clients
            .delete(target, known, policy, &Expected::Anything, token)
    })
    .await
    .map_err(ApplyError::from_write)?;
    info!(attempts = deleted.attempts, outcome = ?deleted.value, "policy delete done");

    let mut applied = Applied {
        attempts: deleted.attempts,
        ..Applied::default()
    };
    if wait && deleted.value == Deleted::Removed && app.clients.can_confirm_delete(target, known) {
        let poll = PollPolicy::from_settings(&app.settings);
        let what = format!("the removal of the policy on {target}");
        let waited = wait_until(
            &what,
            budget,
            &poll,
            || app.clients.read(target, known),
            |live| live.is_none(),
        )
        .await
        .map_err(|e| {
            ApplyError::from_wait(
                "the delete was accepted but the policy is still readable",
                e,
            )
        })?;
        applied.propagation = Some(waited.waited);
    }
    Ok((deleted.value, applied))
}
