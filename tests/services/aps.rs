//! Managed Prometheus adapter: policyStatus CREATING/UPDATING -> ACTIVE, revisionId,
//! ConflictException while in transition, clientToken from the request.

use crate::support::{delete_policy, put_policy};
use aws_sdk_amp::operation::delete_resource_policy::DeleteResourcePolicyOutput;
use aws_sdk_amp::operation::describe_resource_policy::DescribeResourcePolicyOutput;
use aws_sdk_amp::operation::put_resource_policy::PutResourcePolicyOutput;
use aws_sdk_amp::types::WorkspacePolicyStatusCode as Status;
use aws_sdk_amp::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::{aps, Deleted, ErrorKind, Known};
use serde_json::json;

use crate::support::*;

const ARN: &str = "arn:aws:aps:us-east-1:123456789012:workspace/ws-0123";

fn described(status: Status, rev: &str) -> DescribeResourcePolicyOutput {
    DescribeResourcePolicyOutput::builder()
        .policy_document(POLICY)
        .policy_status(status)
        .revision_id(rev)
        .build()
        .unwrap()
}

fn put_output(status: Status, rev: &str) -> PutResourcePolicyOutput {
    PutResourcePolicyOutput::builder()
        .policy_status(status)
        .revision_id(rev)
        .build()
        .unwrap()
}

fn ws_request() -> resource_policy_provider::request::PolicyRequest {
    request(json!({"ResourceArn": ARN, "Policy": POLICY}))
}

#[tokio::test]
async fn put_waits_from_creating_to_active_with_the_put_revision() {
    let put = mock!(Client::put_resource_policy)
        .match_requests(|r| {
            r.workspace_id() == Some("ws-0123") && r.client_token() == Some("put-req-42")
        })
        .then_output(|| put_output(Status::Creating, "rev-1"));
    let describe = mock!(Client::describe_resource_policy)
        .sequence()
        .http_response(|| rest_error(404, "ResourceNotFoundException", "no policy yet"))
        .output(|| described(Status::Creating, "rev-1"))
        .output(|| described(Status::Active, "rev-1"))
        .build();
    let client = mock_client!(aws_sdk_amp, RuleMode::MatchAny, [&put, &describe]);
    let app = app(empty_clients().with_aps("us-east-1", client));
    let applied = put_policy(
        &app,
        &ws_request(),
        &Known::default(),
        NotFound::Final,
        "req-42",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!((put.num_calls(), describe.num_calls()), (1, 3));
    let data = applied.attributes(&ws_request().target);
    assert_eq!(data["RevisionId"], "rev-1");
    assert_eq!(
        data["PolicyStatus"], "ACTIVE",
        "the status waited for, not the CREATING the put answered"
    );
}

#[tokio::test]
async fn a_workspace_in_transition_is_retried() {
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| rest_error(409, "ConflictException", "workspace is CREATING"))
        .times(2)
        .http_response(|| rest_error(429, "ThrottlingException", "slow down"))
        .output(|| put_output(Status::Updating, "rev-2"))
        .build();
    let describe = mock!(Client::describe_resource_policy)
        .sequence()
        .output(|| described(Status::Active, "rev-2"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_amp, RuleMode::MatchAny, [&put, &describe], |c| c
        .retry_config(sdk_retries(3)));
    let app = app(empty_clients().with_aps("us-east-1", client));
    let applied = put_fresh(&app, &ws_request(), NotFound::Final, 5_000)
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 4);
    assert_eq!(applied.attempts, 3);
}

#[tokio::test]
async fn each_error_is_classified() {
    let cases = [
        (409, "ConflictException", ErrorKind::NotReady),
        (
            404,
            "ResourceNotFoundException",
            ErrorKind::ResourceNotFound,
        ),
        (400, "ValidationException", ErrorKind::Terminal),
        (403, "AccessDeniedException", ErrorKind::Terminal),
        (429, "ThrottlingException", ErrorKind::Throttled),
        (500, "InternalServerException", ErrorKind::Transient),
    ];
    for (status, code, kind) in cases {
        let del = mock!(Client::delete_resource_policy)
            .then_http_response(move || rest_error(status, code, "m"));
        let client = mock_client!(aws_sdk_amp, RuleMode::MatchAny, [&del], |c| c
            .retry_config(sdk_retries(1)));
        match aps::delete(&client, "ws-0123", "t", &Default::default()).await {
            Ok(d) => assert_eq!(
                (kind, d),
                (ErrorKind::ResourceNotFound, Deleted::AlreadyGone),
                "{code}"
            ),
            Err(e) => assert_eq!((e.kind, e.code.as_str()), (kind, code)),
        }
    }
}

#[tokio::test]
async fn delete_waits_through_deleting_until_gone() {
    let del = mock!(Client::delete_resource_policy)
        .match_requests(|r| r.client_token() == Some("delete-req-9"))
        .then_output(|| DeleteResourcePolicyOutput::builder().build());
    let describe = mock!(Client::describe_resource_policy)
        .sequence()
        .output(|| described(Status::Deleting, "rev-1"))
        .http_response(|| rest_error(404, "ResourceNotFoundException", "gone"))
        .build();
    let client = mock_client!(aws_sdk_amp, RuleMode::MatchAny, [&del, &describe]);
    let app = app(empty_clients().with_aps("us-east-1", client));
    let (d, _) = delete_policy(
        &app,
        &ws_request().target,
        &Known::default(),
        None,
        true,
        "req-9",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!(d, Deleted::Removed);
    assert_eq!(describe.num_calls(), 2);
}

#[test]
fn client_tokens_fit_the_model() {
    let t = aps::client_token("delete", &"x".repeat(100));
    assert_eq!(t.len(), 64);
    assert!(t.starts_with("delete-"));
}

#[tokio::test]
async fn a_policy_stuck_updating_fails_within_the_budget() {
    let put =
        mock!(Client::put_resource_policy).then_output(|| put_output(Status::Updating, "rev-5"));
    let describe = mock!(Client::describe_resource_policy)
        .sequence()
        .output(|| described(Status::Updating, "rev-5"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_amp, RuleMode::MatchAny, [&put, &describe]);
    let app = app(empty_clients().with_aps("us-east-1", client));
    let b = budget(300);
    let e = put_policy(
        &app,
        &ws_request(),
        &Known::default(),
        NotFound::Final,
        "t",
        &b,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("status UPDATING") && e.to_string().contains("time budget"),
        "{}",
        e
    );
    assert!(describe.num_calls() > 2);
}

#[tokio::test]
async fn a_workspace_that_stays_in_transition_fails_within_the_budget_with_the_last_error() {
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| rest_error(409, "ConflictException", "workspace is CREATING"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_amp, RuleMode::MatchAny, [&put]);
    let app = app(empty_clients().with_aps("us-east-1", client));
    let e = put_fresh(&app, &ws_request(), NotFound::Final, 300)
        .await
        .unwrap_err();
    assert!(!e.may_have_written());
    assert!(
        e.to_string().contains("time budget ran out")
            && e.to_string()
                .contains("ConflictException: workspace is CREATING"),
        "{}",
        e
    );
    assert!(put.num_calls() > 2);
}

#[tokio::test]
async fn deleting_from_a_workspace_being_deleted_is_done_at_once() {
    let del = mock!(aws_sdk_amp::Client::delete_resource_policy).then_http_response(|| {
        let mut r = rest_error(409, "ConflictException", "Workspace ws-0123 is in DELETING state");
        *r.body_mut() = aws_smithy_types::body::SdkBody::from(
            r#"{"message":"Workspace ws-0123 is in DELETING state","resourceId":"ws-0123","resourceType":"WORKSPACE"}"#,
        );
        r
    });
    let client = mock_client!(aws_sdk_amp, [&del]);
    assert_eq!(
        aps::delete(&client, "ws-0123", "t", &Default::default())
            .await
            .unwrap(),
        Deleted::AlreadyGone
    );
    assert_eq!(del.num_calls(), 1);
}
