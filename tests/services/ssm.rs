//! SSM adapter: PolicyId + PolicyHash, looked up before every update or delete.

use crate::support::{delete_policy, put_policy};
use aws_sdk_ssm::operation::delete_resource_policy::DeleteResourcePolicyOutput;
use aws_sdk_ssm::operation::get_resource_policies::GetResourcePoliciesOutput;
use aws_sdk_ssm::operation::put_resource_policy::PutResourcePolicyOutput;
use aws_sdk_ssm::types::GetResourcePoliciesResponseEntry as Entry;
use aws_sdk_ssm::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::{ssm, Deleted, ErrorKind, Known};
use serde_json::json;

use crate::support::*;

const ARN: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/app/config";
const OTHER: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

fn listing(entries: &[(&str, &str, &str)]) -> GetResourcePoliciesOutput {
    let mut out = GetResourcePoliciesOutput::builder();
    for (id, hash, doc) in entries {
        out = out.policies(
            Entry::builder()
                .policy_id(*id)
                .policy_hash(*hash)
                .policy(*doc)
                .build(),
        );
    }
    out.build()
}

fn known(id: &str) -> Known {
    Known {
        policy_id: Some(id.into()),
    }
}

fn param_request() -> resource_policy_provider::request::PolicyRequest {
    request(json!({"ResourceArn": ARN, "Policy": POLICY}))
}

#[tokio::test]
async fn update_passes_the_current_id_and_hash_and_waits_for_the_new_hash() {
    let list = mock!(Client::get_resource_policies)
        .sequence()
        .output(|| listing(&[("other", "h0", OTHER), ("p-1", "h1", OTHER)]))
        .output(|| listing(&[("p-1", "h1", OTHER)]))
        .output(|| listing(&[("p-1", "h2", POLICY)]))
        .build();
    let put = mock!(Client::put_resource_policy)
        .match_requests(|r| {
            r.policy_id() == Some("p-1")
                && r.policy_hash() == Some("h1")
                && r.policy() == Some(POLICY)
        })
        .then_output(|| {
            PutResourcePolicyOutput::builder()
                .policy_id("p-1")
                .policy_hash("h2")
                .build()
        });
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &put]);
    let app = app(empty_clients().with_ssm("us-east-1", client));
    let applied = put_policy(
        &app,
        &param_request(),
        &known("p-1"),
        NotFound::Final,
        "t",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!(put.num_calls(), 1);
    assert_eq!(
        list.num_calls(),
        3,
        "one lookup before the put, two reads back"
    );
    let data = applied.attributes(&param_request().target);
    assert_eq!(
        (data["PolicyId"].as_str(), data["PolicyHash"].as_str()),
        ("p-1", "h2")
    );
}

#[tokio::test]
async fn a_stale_hash_is_looked_up_again_and_retried() {
    let list = mock!(Client::get_resource_policies)
        .sequence()
        .output(|| listing(&[("p-1", "h1", OTHER)]))
        .output(|| listing(&[("p-1", "h1b", OTHER)]))
        .output(|| listing(&[("p-1", "h2", POLICY)]))
        .build();
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| json_error(400, "ResourcePolicyConflictException", "hash is stale"))
        .output(|| {
            PutResourcePolicyOutput::builder()
                .policy_id("p-1")
                .policy_hash("h2")
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &put]);
    let app = app(empty_clients().with_ssm("us-east-1", client));
    let applied = put_policy(
        &app,
        &param_request(),
        &known("p-1"),
        NotFound::Final,
        "t",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!((put.num_calls(), applied.attempts), (2, 2));
}

#[tokio::test]
async fn a_repeated_create_adopts_the_identical_policy_without_writing() {
    let list = mock!(Client::get_resource_policies)
        .sequence()
        .output(|| listing(&[("p-9", "h9", POLICY)]))
        .repeatedly()
        .build();
    let put = mock!(Client::put_resource_policy)
        .then_output(|| PutResourcePolicyOutput::builder().build());
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &put]);
    let app = app(empty_clients().with_ssm("us-east-1", client));
    let applied = put_fresh(&app, &param_request(), NotFound::MayAppear, 5_000)
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 0);
    assert_eq!(
        applied.version.unwrap().known().policy_id.as_deref(),
        Some("p-9")
    );
}

#[tokio::test]
async fn malformed_document_gets_a_few_tries_only() {
    let list = mock!(Client::get_resource_policies)
        .sequence()
        .output(|| listing(&[]))
        .repeatedly()
        .build();
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| json_error(400, "MalformedResourcePolicyDocumentException", "malformed"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &put]);
    let app = app(empty_clients().with_ssm("us-east-1", client));
    let e = put_fresh(&app, &param_request(), NotFound::Final, 5_000)
        .await
        .unwrap_err();
    assert_eq!(put.num_calls(), 3);
    assert!(
        e.to_string().contains("after 3 attempts")
            && e.to_string()
                .contains("MalformedResourcePolicyDocumentException")
    );
}

#[tokio::test]
async fn each_error_is_classified() {
    let cases = [
        (
            400,
            "ResourcePolicyInvalidParameterException",
            ErrorKind::Terminal,
        ),
        (
            400,
            "ResourcePolicyLimitExceededException",
            ErrorKind::Terminal,
        ),
        (400, "ResourcePolicyConflictException", ErrorKind::Conflict),
        (
            400,
            "ResourceNotFoundException",
            ErrorKind::ResourceNotFound,
        ),
        (
            400,
            "MalformedResourcePolicyDocumentException",
            ErrorKind::Ambiguous,
        ),
        (
            400,
            "ResourcePolicyNotFoundException",
            ErrorKind::PolicyNotFound,
        ),
        (500, "InternalServerError", ErrorKind::Transient),
        (400, "ThrottlingException", ErrorKind::Throttled),
    ];
    for (status, code, kind) in cases {
        let list = mock!(Client::get_resource_policies).then_output(|| listing(&[]));
        let put = mock!(Client::put_resource_policy)
            .then_http_response(move || json_error(status, code, "m"));
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &put], |c| c
            .retry_config(sdk_retries(1)));
        let p = param_request().policy.unwrap();
        let input = resource_policy_provider::services::PutInput {
            expected: Default::default(),
            resendable: true,
            policy: &p,
            known: &Known::default(),
            confirm_remove_self_resource_access: None,
            bypass_policy_lockout_check: None,
            client_token: "t",
        };
        let e = ssm::put(&client, ARN, &input).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (kind, code));
    }
}

#[tokio::test]
async fn delete_finds_the_hash_and_treats_gone_as_success() {
    let list = mock!(Client::get_resource_policies)
        .sequence()
        .output(|| listing(&[("p-1", "h1", POLICY)]))
        .output(|| listing(&[]))
        .output(|| listing(&[]))
        .http_response(|| json_error(400, "ResourceNotFoundException", "no parameter"))
        .build();
    let del = mock!(Client::delete_resource_policy)
        .match_requests(|r| r.policy_id() == Some("p-1") && r.policy_hash() == Some("h1"))
        .then_output(|| DeleteResourcePolicyOutput::builder().build());
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &del]);
    let app = app(empty_clients().with_ssm("us-east-1", client));
    let target = param_request().target;
    let (d, _) = delete_policy(
        &app,
        &target,
        &known("p-1"),
        None,
        true,
        "t",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!(d, Deleted::Removed);
    assert_eq!(del.num_calls(), 1);
    let (d, _) = delete_policy(
        &app,
        &target,
        &known("p-1"),
        None,
        true,
        "t",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!(d, Deleted::AlreadyGone);
    let (d, _) = delete_policy(
        &app,
        &target,
        &known("p-1"),
        None,
        true,
        "t",
        &budget(5_000),
    )
    .await
    .unwrap();
    assert_eq!(d, Deleted::AlreadyGone);
    assert_eq!(del.num_calls(), 1);
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_then_a_hash_that_never_shows_fails_within_the_budget() {
    let list = mock!(Client::get_resource_policies)
        .sequence()
        .output(|| listing(&[("p-1", "h1", OTHER)]))
        .repeatedly()
        .build();
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "Rate exceeded"))
        .times(2)
        .output(|| {
            PutResourcePolicyOutput::builder()
                .policy_id("p-1")
                .policy_hash("h2")
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&list, &put], |c| c
        .retry_config(sdk_retries(3)));
    let app = app(empty_clients().with_ssm("us-east-1", client));
    let e = put_policy(
        &app,
        &param_request(),
        &known("p-1"),
        NotFound::Final,
        "t",
        &budget(300),
    )
    .await
    .unwrap_err();
    assert_eq!(
        put.num_calls(),
        3,
        "two throttled attempts retried inside the SDK"
    );
    assert!(
        e.to_string().contains("hash h1") && e.to_string().contains("time budget"),
        "{}",
        e
    );
}
