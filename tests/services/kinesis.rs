//! Kinesis adapter: no revisions, so read-back compares documents by meaning.

use crate::support::{delete_policy, put_policy};
use aws_sdk_kinesis::operation::delete_resource_policy::DeleteResourcePolicyOutput;
use aws_sdk_kinesis::operation::get_resource_policy::GetResourcePolicyOutput;
use aws_sdk_kinesis::operation::put_resource_policy::PutResourcePolicyOutput;
use aws_sdk_kinesis::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::{kinesis, Deleted, ErrorKind, Known};
use serde_json::json;

use crate::support::*;

const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks/consumer/app:1700000000";
/// The same policy as [`POLICY`], as a service might echo it: other order, spacing, arrays.
const ECHOED: &str = r#"{"Statement":[{"Resource":["*"],"Action":["*"],"Principal":{"AWS":["arn:aws:iam::111122223333:root"]},"Effect":"Allow"}], "Version":"2012-10-17"}"#;

fn get(doc: &str) -> GetResourcePolicyOutput {
    GetResourcePolicyOutput::builder()
        .policy(doc)
        .build()
        .unwrap()
}

#[tokio::test]
async fn read_treats_empty_documents_and_missing_streams_as_no_policy() {
    let rule = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get(POLICY))
        .output(|| get(""))
        .output(|| get("{}"))
        .http_response(|| json_error(400, "ResourceNotFoundException", "no stream"))
        .build();
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    assert_eq!(
        kinesis::read(&client, ARN).await.unwrap().unwrap().document,
        POLICY
    );
    for _ in 0..3 {
        assert_eq!(kinesis::read(&client, ARN).await.unwrap(), None);
    }
}

#[tokio::test]
async fn delete_of_a_missing_stream_is_already_gone() {
    let rule = mock!(Client::delete_resource_policy)
        .sequence()
        .output(|| DeleteResourcePolicyOutput::builder().build())
        .http_response(|| json_error(400, "ResourceNotFoundException", "no stream"))
        .build();
    let client = mock_client!(aws_sdk_kinesis, [&rule]);
    assert_eq!(
        kinesis::delete(&client, ARN, &Default::default())
            .await
            .unwrap(),
        Deleted::Removed
    );
    assert_eq!(
        kinesis::delete(&client, ARN, &Default::default())
            .await
            .unwrap(),
        Deleted::AlreadyGone
    );
}

#[tokio::test]
async fn each_error_is_classified() {
    let cases = [
        (
            400,
            "ResourceInUseException",
            "Consumer is not in ACTIVE status",
            ErrorKind::NotReady,
        ),
        (
            400,
            "ResourceNotFoundException",
            "no stream",
            ErrorKind::ResourceNotFound,
        ),
        (
            400,
            "LimitExceededException",
            "rate exceeded",
            ErrorKind::Throttled,
        ),
        (400, "AccessDeniedException", "denied", ErrorKind::Terminal),
        (
            400,
            "InvalidArgumentException",
            "bad policy",
            ErrorKind::Terminal,
        ),
        (503, "ServiceUnavailable", "later", ErrorKind::Transient),
    ];
    for (status, code, message, kind) in cases {
        let put = mock!(Client::put_resource_policy)
            .then_http_response(move || json_error(status, code, message));
        let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&put], |c| c
            .retry_config(sdk_retries(1)));
        let p = request(json!({"ResourceArn": ARN, "Policy": POLICY}))
            .policy
            .unwrap();
        let input = resource_policy_provider::services::PutInput {
            expected: Default::default(),
            resendable: true,
            policy: &p,
            known: &Known::default(),
            confirm_remove_self_resource_access: None,
            bypass_policy_lockout_check: None,
            client_token: "t",
        };
        let e = kinesis::put(&client, ARN, &input).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (kind, code), "{message}");
    }
}

#[tokio::test]
async fn a_consumer_still_creating_is_waited_for_and_the_echo_compared_by_meaning() {
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| {
            json_error(
                400,
                "ResourceInUseException",
                "Consumer is not in ACTIVE status",
            )
        })
        .times(2)
        .http_response(|| json_error(400, "LimitExceededException", "rate exceeded"))
        .output(|| PutResourcePolicyOutput::builder().build())
        .build();
    let get_rule = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get(r#"{"Version":"2012-10-17","Statement":[]}"#))
        .output(|| get(ECHOED))
        .build();
    let client = mock_client!(
        aws_sdk_kinesis,
        RuleMode::MatchAny,
        [&put, &get_rule],
        |c| c.retry_config(sdk_retries(3))
    );
    let app = app(empty_clients().with_kinesis("us-east-1", client));
    let req = request(json!({"ResourceArn": ARN, "Policy": POLICY}));
    let applied = put_fresh(&app, &req, NotFound::Final, 5_000).await.unwrap();
    assert_eq!(
        put.num_calls(),
        4,
        "two not-ready answers, one throttled then retried by the SDK"
    );
    assert_eq!(applied.attempts, 3);
    assert_eq!(get_rule.num_calls(), 2);
}

#[tokio::test]
async fn delete_waits_until_the_policy_is_gone() {
    let del = mock!(Client::delete_resource_policy)
        .then_output(|| DeleteResourcePolicyOutput::builder().build());
    let get_rule = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get(POLICY))
        .output(|| get(""))
        .build();
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&del, &get_rule]);
    let app = app(empty_clients().with_kinesis("us-east-1", client));
    let req = request(json!({"ResourceArn": ARN, "Policy": POLICY}));
    let (deleted, applied) = delete_policy(
        &app,
        &req.target,
        &Known::default(),
        None,
        true,
        "t",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!(deleted, Deleted::Removed);
    assert_eq!(get_rule.num_calls(), 2);
    assert!(applied.propagation.is_some());
}

#[tokio::test]
async fn a_document_that_never_shows_fails_within_the_budget() {
    let put = mock!(Client::put_resource_policy)
        .then_output(|| PutResourcePolicyOutput::builder().build());
    let get_rule = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get(r#"{"Version":"2012-10-17","Statement":[]}"#))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, [&put, &get_rule]);
    let app = app(empty_clients().with_kinesis("us-east-1", client));
    let b = budget(300);
    let e = put_policy(
        &app,
        &request(json!({"ResourceArn": ARN, "Policy": POLICY})),
        &Known::default(),
        NotFound::Final,
        "t",
        &b,
    )
    .await
    .unwrap_err();
    assert!(
        e.may_have_written()
            && e.to_string().contains("a different document")
            && e.to_string().contains("time budget"),
        "{}",
        e
    );
    assert!(
        tokio::time::Instant::now() <= b.work_deadline() + std::time::Duration::from_millis(50)
    );
}

#[tokio::test]
async fn deleting_from_a_stream_being_deleted_is_done_at_once() {
    let del = mock!(aws_sdk_kinesis::Client::delete_resource_policy).then_http_response(|| {
        json_error(
            400,
            "ResourceInUseException",
            "Stream clicks under account 123456789012 is currently being deleted",
        )
    });
    let client = mock_client!(aws_sdk_kinesis, [&del]);
    assert_eq!(
        kinesis::delete(
            &client,
            "arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
            &Default::default()
        )
        .await
        .unwrap(),
        Deleted::AlreadyGone
    );
    assert_eq!(del.num_calls(), 1);
}
