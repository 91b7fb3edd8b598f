//! Real sequences that must never strand a stack, orphan a grant or answer the wrong
//! party: rollback Deletes, writes whose answer was lost, Updates that move, redirects.
//! Each rollback case runs in two steps: the failed request's answer, then the Delete
//! CloudFormation sends with the physical id it got.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::{
    delete_resource_policy::DeleteResourcePolicyOutput,
    get_resource_policy::GetResourcePolicyOutput,
};
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use serde_json::{json, Value};

use super::recorder::Recorder;
use super::support::sdk_retries;
use super::wire::json_error;
use super::{event, harness, harness_with, props_for, DDB, POLICY_V1, POLICY_V2};

const WEST: &str = "arn:aws:dynamodb:us-west-2:123456789012:table/lost";

/// A DynamoDB table in us-west-2 whose puts take effect but answer 500: the function
/// cannot know the outcome. Returns the rules (to count calls) and the stored policy.
fn lossy_table() -> (Vec<Rule>, Arc<Mutex<Option<String>>>) {
    lossy_table_blind(0)
}

/// A table whose puts land but lose their answer; after each put the next `blind`
/// reads fail with a 500 (so the function cannot see that its write landed).
fn lossy_table_blind(blind: u32) -> (Vec<Rule>, Arc<Mutex<Option<String>>>) {
    let stored: Arc<Mutex<Option<String>>> = Arc::default();
    let (a, b, c) = (stored.clone(), stored.clone(), stored.clone());
    let dark = Arc::new(Mutex::new(0u32));
    let (d1, d2) = (dark.clone(), dark);
    let rules = vec![
        mock!(aws_sdk_dynamodb::Client::put_resource_policy).then_compute_response(move |r| {
            *a.lock().unwrap() = r.policy().map(str::to_string);
            *d1.lock().unwrap() = blind;
            MockResponse::Http(json_error(500, "InternalServerError", "lost the answer"))
        }),
        mock!(aws_sdk_dynamodb::Client::get_resource_policy).then_compute_response(
            move |_| match (b.lock().unwrap().clone(), {
                let mut d = d2.lock().unwrap();
                let dark = *d > 0;
                *d = d.saturating_sub(1);
                dark
            }) {
                (_, true) => MockResponse::Http(json_error(500, "InternalServerError", "blind")),
                (Some(p), false) => MockResponse::Output(
                    GetResourcePolicyOutput::builder()
                        .policy(p)
                        .revision_id("1")
                        .build(),
                ),
                (None, false) => {
                    MockResponse::Http(json_error(400, "PolicyNotFoundException", "none"))
                }
            },
        ),
        mock!(aws_sdk_dynamodb::Client::delete_resource_policy).then_compute_response(move |_| {
            match c.lock().unwrap().take() {
                Some(_) => MockResponse::Output(DeleteResourcePolicyOutput::builder().build()),
                None => MockResponse::Http(json_error(400, "PolicyNotFoundException", "none")),
            }
        }),
    ];
    (rules, stored)
}

/// SDK retries off: the mocks cannot compute a response from the input on an SDK
/// retry; the function's own retry rounds still run.
fn lossy_client(rules: &[Rule]) -> aws_sdk_dynamodb::Client {
    mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, |c| c
        .retry_config(sdk_retries(1)))
}

/// DynamoDB's answer to a read of a table without a policy.
pub(crate) fn no_policy() -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_resource_policy)
        .then_http_response(|| json_error(400, "PolicyNotFoundException", "no policy"))
}

fn with_physical_id(mut e: Value, id: &str) -> Value {
    e["PhysicalResourceId"] = json!(id);
    e
}

#[tokio::test]
async fn a_rollback_delete_of_the_marker_completes_whatever_the_event_holds() {
    let h = harness().await;
    let marker = "resource-policy-provider:failed-create:req-create-1";
    let base = |path: &str| {
        event(
            &h.rec,
            path,
            "Delete",
            props_for("dynamodb", POLICY_V1),
            Some(marker),
            None,
        )
    };
    let mut cases: Vec<(&str, String)> = Vec::new();
    // Text the strict decoder rejects, anywhere in the properties.
    cases.push((
        "surrogate",
        base("surrogate")
            .to_string()
            .replace("2012-10-17", "\\ud800"),
    ));
    let mut no_type = base("no-type");
    no_type.as_object_mut().unwrap().remove("ResourceType");
    cases.push(("no-type", no_type.to_string()));
    let mut no_props = base("no-props");
    no_props
        .as_object_mut()
        .unwrap()
        .remove("ResourceProperties");
    cases.push(("no-props", no_props.to_string()));
    let mut invalid = base("invalid");
    invalid["ResourceProperties"] = json!({"ResourceArn": "not an arn", "Colour": "blue"});
    cases.push(("invalid", invalid.to_string()));

    for (path, raw) in cases {
        assert!(raw.contains(path) || path == "surrogate");
        h.invoke_raw(&raw).await.expect("answered");
        let r = h.only_response(path);
        assert_eq!(r.body["Status"], "SUCCESS", "{path}: {}", r.body);
        assert_eq!(r.body["PhysicalResourceId"], marker, "{path}");
    }
    assert_eq!(h.fakes.calls(), 0, "no AWS call for a Delete of nothing");
}

#[tokio::test]
async fn a_delete_with_an_empty_physical_id_succeeds_with_an_id_and_no_call() {
    let h = harness().await;
    let e = with_physical_id(
        event(
            &h.rec,
            "empty-id",
            "Delete",
            props_for("dynamodb", POLICY_V1),
            None,
            None,
        ),
        "",
    );
    let r = h.respond("empty-id", &e).await;
    assert_eq!(r.body["Status"], "SUCCESS");
    assert!(!r.body["PhysicalResourceId"].as_str().unwrap().is_empty());
    assert_eq!(h.fakes.calls(), 0);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_reads_it_back_and_succeeds_with_one_write() {
    let (rules, stored) = lossy_table();
    let put_calls = rules[0].clone();
    let client = lossy_client(&rules);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let props = json!({"ResourceArn": WEST, "Policy": POLICY_V1});
    let create = event(&h.rec, "lost-create", "Create", props.clone(), None, None);
    let r = h.respond("lost-create", &create).await;
    assert_eq!(r.body["Status"], "SUCCESS", "{}", r.body);
    assert_eq!(
        put_calls.num_calls(),
        1,
        "the re-read found it: no second write"
    );
    let delete = event(&h.rec, "lost-delete", "Delete", props, Some(WEST), None);
    let r = h.respond("lost-delete", &delete).await;
    assert_eq!(r.body["Status"], "SUCCESS", "{}", r.body);
    assert_eq!(*stored.lock().unwrap(), None, "no grant left behind");
}

#[tokio::test]
async fn a_create_that_cannot_see_its_write_fails_with_the_real_id_and_its_rollback_cleans_up() {
    // Reads fail for a while after each put: the outcome stays unknown.
    let (rules, stored) = lossy_table_blind(4);
    let client = lossy_client(&rules);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let props = json!({"ResourceArn": WEST, "Policy": POLICY_V1});

    // Step 1: the put landed, the function cannot tell: FAILED with the real id.
    let create = event(&h.rec, "lost-create", "Create", props.clone(), None, None);
    let r = h.respond("lost-create", &create).await;
    assert_eq!(r.body["Status"], "FAILED");
    assert_eq!(r.body["PhysicalResourceId"], WEST, "{}", r.body);
    let reason = r.body["Reason"].as_str().unwrap();
    assert!(reason.contains("InternalServerError"), "{reason}");
    assert!(stored.lock().unwrap().is_some(), "the write did land");

    // Step 2: CloudFormation's rollback Delete with that id removes it.
    let delete = event(&h.rec, "lost-delete", "Delete", props, Some(WEST), None);
    let r = h.respond("lost-delete", &delete).await;
    assert_eq!(r.body["Status"], "SUCCESS", "{}", r.body);
    assert_eq!(*stored.lock().unwrap(), None, "no grant left behind");
}

#[tokio::test]
async fn a_create_refused_by_the_service_gets_the_marker_and_its_delete_touches_nothing() {
    let put = mock!(aws_sdk_dynamodb::Client::put_resource_policy).then_http_response(|| {
        json_error(400, "ValidationException", "Policy document is malformed")
    });
    let get = no_policy();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &get]);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let props = json!({"ResourceArn": WEST, "Policy": POLICY_V1});
    let r = h
        .respond(
            "refused",
            &event(&h.rec, "refused", "Create", props.clone(), None, None),
        )
        .await;
    assert_eq!(r.body["Status"], "FAILED");
    let id = r.body["PhysicalResourceId"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("resource-policy-provider:failed-create:"),
        "{id}"
    );
    let r = h
        .respond(
            "refused-delete",
            &event(&h.rec, "refused-delete", "Delete", props, Some(&id), None),
        )
        .await;
    assert_eq!(r.body["Status"], "SUCCESS");
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn an_update_to_a_new_target_that_may_have_written_there_removes_it_again() {
    let (rules, stored) = lossy_table_blind(4);
    let client = lossy_client(&rules);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let old = props_for("dynamodb", POLICY_V1);
    let created = h
        .respond(
            "u-create",
            &event(&h.rec, "u-create", "Create", old.clone(), None, None),
        )
        .await;
    assert_eq!(created.body["Status"], "SUCCESS");

    let new = json!({"ResourceArn": WEST, "Policy": POLICY_V2});
    let update = event(&h.rec, "u-move", "Update", new, Some(DDB), Some(old));
    let r = h.respond("u-move", &update).await;
    assert_eq!(r.body["Status"], "FAILED");
    assert_eq!(
        r.body["PhysicalResourceId"], DDB,
        "the old id: CloudFormation rolls back to it"
    );
    let reason = r.body["Reason"].as_str().unwrap();
    assert!(reason.contains("removed again"), "{reason}");
    assert_eq!(
        *stored.lock().unwrap(),
        None,
        "nothing left on the new target"
    );
    assert!(
        h.fakes.store.holds(DDB).is_some(),
        "the old target keeps its policy"
    );
}

#[tokio::test]
async fn a_delete_acts_on_the_physical_ids_target_not_on_other_properties() {
    let h = harness().await;
    let other = "arn:aws:dynamodb:us-east-1:123456789012:table/bystander";
    for (path, arn) in [("d-mine", DDB), ("d-other", other)] {
        let e = event(
            &h.rec,
            path,
            "Create",
            json!({"ResourceArn": arn, "Policy": POLICY_V1}),
            None,
            None,
        );
        assert_eq!(h.respond(path, &e).await.body["Status"], "SUCCESS");
    }
    let e = event(
        &h.rec,
        "d-delete",
        "Delete",
        json!({"ResourceArn": other, "Policy": POLICY_V1}),
        Some(DDB),
        None,
    );
    let r = h.respond("d-delete", &e).await;
    assert_eq!(r.body["Status"], "SUCCESS");
    assert_eq!(
        h.fakes.store.holds(DDB),
        None,
        "the physical id's target is cleaned"
    );
    assert!(
        h.fakes.store.holds(other).is_some(),
        "the other target is left alone"
    );
}

#[tokio::test]
async fn a_redirect_from_the_response_url_is_not_followed_and_reported_undelivered() {
    let h = harness().await;
    let elsewhere = Recorder::start().await;
    h.rec.redirect_to(&elsewhere.url("stolen"));
    h.rec.answer_with(&[307]);
    let e = event(
        &h.rec,
        "redirected",
        "Create",
        props_for("kinesis", POLICY_V1),
        None,
        None,
    );
    let err = h.invoke_raw(&e.to_string()).await.unwrap_err();
    assert_eq!(err.error_type(), "ResponseNotDelivered");
    let msg = err.to_string();
    assert!(
        msg.contains("not delivered") && msg.contains("307"),
        "{msg}"
    );
    assert!(!msg.contains("secret"), "{msg}");
    assert_eq!(
        h.rec.received("redirected").len(),
        1,
        "one PUT, not retried"
    );
    assert!(
        elsewhere.received("").is_empty(),
        "nothing reached the redirect target"
    );
}

#[tokio::test]
async fn a_response_url_with_user_information_is_refused() {
    let h = harness().await;
    let mut e = event(
        &h.rec,
        "userinfo",
        "Create",
        props_for("kinesis", POLICY_V1),
        None,
        None,
    );
    e["ResponseURL"] = json!(h.rec.url("userinfo").replace("http://", "http://evil@"));
    let err = h.invoke_raw(&e.to_string()).await.unwrap_err();
    assert!(err.to_string().contains("user information"), "{err}");
    assert!(h.rec.received("").is_empty());
    assert_eq!(h.fakes.calls(), 0, "refused before any AWS call");
}

#[tokio::test]
async fn eventbridge_failures_carry_an_error_type_operators_can_route_on() {
    let h = harness().await;
    let bad = json!({"id": "e1", "detail-type": "PutResourcePolicy", "account": "123456789012",
        "source": "team.app", "detail": {"ResourceArn": DDB}});
    let err = h.invoke_raw(&bad.to_string()).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidRequest");
    let diag = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diag.error_type, "InvalidRequest");
    assert!(diag.error_message.contains("Policy is required"));

    let ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/app/config";
    let del = json!({"id": "e2", "detail-type": "DeleteResourcePolicy", "account": "123456789012",
        "source": "team.app", "detail": {"ResourceArn": ssm, "Statements": []}});
    let err = h.invoke_raw(&del.to_string()).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidRequest");
    assert!(err.to_string().contains("Statements"), "{err}");
    let anonymous =
        json!({"id": "e2", "detail-type": "DeleteResourcePolicy", "detail": {"ResourceArn": ssm}});
    let err = h.invoke_raw(&anonymous.to_string()).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidRequest");
    assert!(err.to_string().contains("account"), "{err}");
    assert_eq!(h.fakes.calls(), 0, "nothing deleted, nothing called");

    let unknown = json!({"id": "e3", "detail-type": "Something", "source": "x", "detail": {}});
    assert_eq!(
        h.invoke_raw(&unknown.to_string())
            .await
            .unwrap_err()
            .error_type(),
        "InvalidRequest"
    );
}

#[tokio::test]
async fn an_eventbridge_put_refused_by_the_service_is_a_service_error() {
    let put = mock!(aws_sdk_dynamodb::Client::put_resource_policy)
        .then_http_response(|| json_error(400, "AccessDeniedException", "not allowed"));
    let get = no_policy();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put, &get]);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let ev = json!({"id": "e4", "detail-type": "PutResourcePolicy", "account": "123456789012", "source": "team.app", "detail": {"ResourceArn": WEST, "Policy": POLICY_V1}});
    let err = h.invoke_raw(&ev.to_string()).await.unwrap_err();
    assert_eq!(err.error_type(), "ServiceError");
    assert!(err.to_string().contains("AccessDeniedException"), "{err}");
}

#[tokio::test]
async fn a_long_ssm_parameter_keeps_a_physical_id_that_finds_its_policy() {
    let h = harness().await;
    let name = "deep/".repeat(200) + "leaf";
    let arn = format!("arn:aws:ssm:us-east-1:123456789012:parameter/{name}");
    let props = json!({"ResourceArn": arn, "Policy": POLICY_V1});
    let r = h
        .respond(
            "long-create",
            &event(&h.rec, "long-create", "Create", props.clone(), None, None),
        )
        .await;
    assert_eq!(r.body["Status"], "SUCCESS", "{}", r.body);
    let id = r.body["PhysicalResourceId"].as_str().unwrap().to_string();
    assert!(id.len() <= 1024, "{}", id.len());
    assert!(id.starts_with("digest:ssm:") && !id.contains(','), "{id}");
    assert!(h.fakes.store.holds(&arn).is_some());

    // A Delete whose properties name another parameter is not acted on.
    let other = json!({"ResourceArn": "arn:aws:ssm:us-east-1:123456789012:parameter/other", "Policy": POLICY_V1});
    let r = h
        .respond(
            "long-wrong",
            &event(&h.rec, "long-wrong", "Delete", other, Some(&id), None),
        )
        .await;
    assert_eq!(r.body["Status"], "FAILED");
    assert!(h.fakes.store.holds(&arn).is_some());

    let r = h
        .respond(
            "long-delete",
            &event(&h.rec, "long-delete", "Delete", props, Some(&id), None),
        )
        .await;
    assert_eq!(r.body["Status"], "SUCCESS", "{}", r.body);
    assert_eq!(
        h.fakes.store.holds(&arn),
        None,
        "the right policy was removed"
    );
}

#[tokio::test]
async fn a_shared_update_that_may_have_written_on_a_new_target_removes_only_its_own_statements() {
    // Table WEST holds another owner's statement; a put that carries ours takes effect
    // but always loses its answer, a put without ours is answered.
    let theirs = json!({"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "dynamodb:Query", "Resource": "*"});
    let ours = json!({"Sid": "Ours", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "dynamodb:GetItem", "Resource": "*"});
    let stored = Arc::new(Mutex::new(
        json!({"Version": "2012-10-17", "Statement": [theirs.clone()]}).to_string(),
    ));
    let (a, b) = (stored.clone(), stored.clone());
    // After a put that carries ours, the next four reads fail: the outcome stays unknown.
    let dark = Arc::new(Mutex::new(0u32));
    let (d1, d2) = (dark.clone(), dark);
    let put =
        mock!(aws_sdk_dynamodb::Client::put_resource_policy).then_compute_response(move |r| {
            let doc = r.policy().unwrap().to_string();
            let lost = doc.contains("\"Ours\"");
            if lost && doc.contains("Theirs") {
                *d1.lock().unwrap() = 4;
            }
            *a.lock().unwrap() = doc;
            if lost {
                MockResponse::Http(json_error(500, "InternalServerError", "lost the answer"))
            } else {
                MockResponse::Output(
                aws_sdk_dynamodb::operation::put_resource_policy::PutResourcePolicyOutput::builder()
                    .revision_id("after")
                    .build(),
            )
            }
        });
    let get =
        mock!(aws_sdk_dynamodb::Client::get_resource_policy).then_compute_response(move |_| {
            let mut d = d2.lock().unwrap();
            if *d > 0 {
                *d -= 1;
                return MockResponse::Http(json_error(500, "InternalServerError", "blind"));
            }
            let doc = b.lock().unwrap().clone();
            let revision = if doc.contains("\"Ours\"") {
                "r"
            } else {
                "after"
            };
            MockResponse::Output(
                GetResourcePolicyOutput::builder()
                    .policy(doc)
                    .revision_id(revision)
                    .build(),
            )
        });
    let client = lossy_client(&[put, get]);
    let h = harness_with(|c| c.with_dynamodb("us-west-2", client)).await;
    let old = json!({"ResourceArn": DDB, "Statements": [ours.clone()]});
    let created = h
        .respond(
            "s-create",
            &event(&h.rec, "s-create", "Create", old.clone(), None, None),
        )
        .await;
    assert_eq!(created.body["Status"], "SUCCESS", "{}", created.body);

    let new = json!({"ResourceArn": WEST, "Statements": [ours]});
    let r = h
        .respond(
            "s-move",
            &event(&h.rec, "s-move", "Update", new, Some(DDB), Some(old)),
        )
        .await;
    assert_eq!(r.body["Status"], "FAILED", "{}", r.body);
    assert_eq!(r.body["PhysicalResourceId"], DDB);
    let reason = r.body["Reason"].as_str().unwrap();
    assert!(reason.contains("removed again"), "{reason}");
    let left: Value = serde_json::from_str(&stored.lock().unwrap()).unwrap();
    assert_eq!(
        left["Statement"],
        json!([theirs]),
        "the other owner's statement stays, ours is gone"
    );
}
