//! X-Ray adapter: named policies, PolicyRevisionId, reads through ListResourcePolicies.

use crate::support::put_policy;
use aws_sdk_xray::operation::delete_resource_policy::DeleteResourcePolicyOutput;
use aws_sdk_xray::operation::list_resource_policies::ListResourcePoliciesOutput;
use aws_sdk_xray::operation::put_resource_policy::PutResourcePolicyOutput;
use aws_sdk_xray::types::ResourcePolicy;
use aws_sdk_xray::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::{xray, Deleted, ErrorKind, Known, Version};
use serde_json::json;

use crate::support::*;

fn listed(policies: &[(&str, &str)]) -> ListResourcePoliciesOutput {
    let mut out = ListResourcePoliciesOutput::builder();
    for (name, rev) in policies {
        out = out.resource_policies(
            ResourcePolicy::builder()
                .policy_name(*name)
                .policy_document(POLICY)
                .policy_revision_id(*rev)
                .build(),
        );
    }
    out.build()
}

fn put_output(rev: &str) -> PutResourcePolicyOutput {
    PutResourcePolicyOutput::builder()
        .resource_policy(
            ResourcePolicy::builder()
                .policy_name("tracing")
                .policy_revision_id(rev)
                .build(),
        )
        .build()
}

fn xray_request() -> resource_policy_provider::request::PolicyRequest {
    request(json!({"PolicyName": "tracing", "Policy": POLICY, "BypassPolicyLockoutCheck": "true"}))
}

#[tokio::test]
async fn read_picks_the_named_policy_from_the_list() {
    let list = mock!(Client::list_resource_policies)
        .sequence()
        .output(|| listed(&[("other", "9"), ("tracing", "3")]))
        .output(|| listed(&[("other", "9")]))
        .build();
    let client = mock_client!(aws_sdk_xray, [&list]);
    let live = xray::read(&client, "tracing").await.unwrap().unwrap();
    assert_eq!(live.version, Version::Revision("3".into()));
    assert_eq!(xray::read(&client, "tracing").await.unwrap(), None);
}

#[tokio::test]
async fn delete_removes_by_name() {
    let del = mock!(Client::delete_resource_policy)
        .match_requests(|r| r.policy_name() == Some("tracing") && r.policy_revision_id().is_none())
        .then_output(|| DeleteResourcePolicyOutput::builder().build());
    let client = mock_client!(aws_sdk_xray, [&del]);
    assert_eq!(
        xray::delete(&client, "tracing", &Default::default())
            .await
            .unwrap(),
        Deleted::Removed
    );
    assert_eq!(del.num_calls(), 1);
}

#[tokio::test]
async fn each_error_is_classified() {
    let cases = [
        (400, "MalformedPolicyDocumentException", ErrorKind::Terminal),
        (400, "LockoutPreventionException", ErrorKind::Terminal),
        (400, "InvalidPolicyRevisionIdException", ErrorKind::Conflict),
        (400, "PolicySizeLimitExceededException", ErrorKind::Terminal),
        (
            400,
            "PolicyCountLimitExceededException",
            ErrorKind::Terminal,
        ),
        (429, "ThrottledException", ErrorKind::Throttled),
        (400, "InvalidRequestException", ErrorKind::Terminal),
    ];
    for (status, code, kind) in cases {
        let put = mock!(Client::put_resource_policy)
            .then_http_response(move || rest_error(status, code, "m"));
        let client = mock_client!(aws_sdk_xray, RuleMode::MatchAny, [&put], |c| c
            .retry_config(sdk_retries(1)));
        let app = app(empty_clients().with_xray("us-east-1", client));
        let e = put_fresh(&app, &xray_request(), NotFound::Final, 2_000)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(code), "{code}: {}", e);
        let calls = put.num_calls();
        match kind {
            ErrorKind::Terminal => assert_eq!(calls, 1, "{code} is not retried"),
            _ => assert!(calls > 1, "{code} is retried"),
        }
    }
}

#[tokio::test]
async fn put_passes_the_lockout_flag_and_waits_for_its_revision() {
    let put = mock!(Client::put_resource_policy)
        .match_requests(|r| {
            r.bypass_policy_lockout_check() == Some(true) && r.policy_revision_id().is_none()
        })
        .sequence()
        .http_response(|| rest_error(429, "ThrottledException", "slow down"))
        .output(|| put_output("4"))
        .build();
    let list = mock!(Client::list_resource_policies)
        .sequence()
        .output(|| listed(&[("tracing", "3")]))
        .output(|| listed(&[("tracing", "4")]))
        .build();
    let client = mock_client!(aws_sdk_xray, RuleMode::MatchAny, [&put, &list], |c| c
        .retry_config(sdk_retries(3)));
    let app = app(empty_clients().with_xray("us-east-1", client));
    let applied = put_fresh(&app, &xray_request(), NotFound::Final, 5_000)
        .await
        .unwrap();
    assert_eq!((put.num_calls(), list.num_calls()), (2, 2));
    let data = applied.attributes(&xray_request().target);
    assert_eq!(
        (data["RevisionId"].as_str(), data["PolicyName"].as_str()),
        ("4", "tracing")
    );
}

#[tokio::test]
async fn a_revision_that_never_shows_fails_within_the_budget() {
    let put = mock!(Client::put_resource_policy).then_output(|| put_output("8"));
    let list = mock!(Client::list_resource_policies)
        .sequence()
        .output(|| listed(&[("tracing", "7")]))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_xray, RuleMode::MatchAny, [&put, &list]);
    let app = app(empty_clients().with_xray("us-east-1", client));
    let b = budget(300);
    let e = put_policy(
        &app,
        &xray_request(),
        &Known::default(),
        NotFound::Final,
        "t",
        &b,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("revision 7") && e.to_string().contains("time budget"),
        "{}",
        e
    );
    assert!(
        tokio::time::Instant::now() <= b.work_deadline() + std::time::Duration::from_millis(50)
    );
}

#[tokio::test]
async fn a_lockout_bypass_whose_read_back_is_denied_still_succeeds() {
    let put = mock!(Client::put_resource_policy).then_output(|| put_output("5"));
    let list = mock!(Client::list_resource_policies)
        .then_http_response(|| rest_error(403, "AccessDeniedException", "denied"));
    let client = mock_client!(aws_sdk_xray, RuleMode::MatchAny, [&put, &list]);
    let app = app(empty_clients().with_xray("us-east-1", client));
    let req = request(
        json!({"PolicyName": "tracing", "Policy": POLICY, "BypassPolicyLockoutCheck": "true"}),
    );
    let applied = put_fresh(&app, &req, NotFound::Final, 5_000).await.unwrap();
    assert_eq!(applied.propagation, None);
    assert!(!applied
        .attributes(&req.target)
        .contains_key("PropagationMs"));
}

#[tokio::test]
async fn a_region_without_an_endpoint_fails_fast_naming_region() {
    use aws_credential_types::Credentials;
    // No endpoint override: xray.us-east-7.amazonaws.com does not resolve.
    let config = resource_policy_provider::sdk_loader(&fast_settings())
        .region(aws_config::Region::new("us-east-7"))
        .credentials_provider(Credentials::for_tests())
        .endpoint_url("https://xray.us-east-7.invalid")
        .load()
        .await;
    let app = app(resource_policy_provider::services::Clients::new(config));
    let req = request(json!({"PolicyName": "tracing", "Region": "us-east-7", "Policy": POLICY}));
    let started = std::time::Instant::now();
    let e = put_fresh(&app, &req, NotFound::MayAppear, 60_000)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let reason = e.to_string();
    assert!(
        reason.contains("NoEndpoint") && reason.contains("Region") && reason.contains("us-east-7"),
        "{reason}"
    );
    assert!(!e.may_have_written(), "nothing was sent");
}
