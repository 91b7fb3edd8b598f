//! DynamoDB adapter: RevisionId, PolicyNotFound, ResourceInUse, invalid principals.

use crate::support::put_policy;
use aws_sdk_dynamodb::operation::delete_resource_policy::DeleteResourcePolicyOutput;
use aws_sdk_dynamodb::operation::get_resource_policy::GetResourcePolicyOutput;
use aws_sdk_dynamodb::operation::put_resource_policy::PutResourcePolicyOutput;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use resource_policy_provider::policy::Policy;
use resource_policy_provider::retry::NotFound;
use resource_policy_provider::services::{dynamodb, Deleted, ErrorKind, Known, PutInput, Version};
use resource_policy_provider::target::Service;
use serde_json::json;

use crate::support::*;

const ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";

fn policy() -> Policy {
    Policy::parse(&json!(POLICY), Service::DynamoDb).unwrap()
}

fn input<'a>(p: &'a Policy, known: &'a Known) -> PutInput<'a> {
    PutInput {
        expected: Default::default(),
        resendable: true,
        policy: p,
        known,
        confirm_remove_self_resource_access: Some(true),
        bypass_policy_lockout_check: None,
        client_token: "req-1",
    }
}

fn get_output(revision: &str) -> GetResourcePolicyOutput {
    GetResourcePolicyOutput::builder()
        .policy(POLICY)
        .revision_id(revision)
        .build()
}

#[tokio::test]
async fn put_sends_the_compact_policy_and_returns_the_revision() {
    let put = mock!(Client::put_resource_policy)
        .match_requests(|r| {
            r.resource_arn() == Some(ARN)
                && r.policy() == Some(POLICY)
                && r.confirm_remove_self_resource_access() == Some(true)
        })
        .then_output(|| {
            PutResourcePolicyOutput::builder()
                .revision_id("r-1")
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, [&put]);
    let p = policy();
    let rev = dynamodb::put(&client, ARN, &input(&p, &Known::default()))
        .await
        .unwrap();
    assert_eq!(rev, Version::Revision("r-1".into()));
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn read_returns_the_document_and_revision_and_none_when_absent() {
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get_output("r-7"))
        .http_response(|| json_error(400, "PolicyNotFoundException", "no policy"))
        .http_response(|| json_error(400, "ResourceNotFoundException", "no table"))
        .build();
    let client = mock_client!(aws_sdk_dynamodb, [&get]);
    let live = dynamodb::read(&client, ARN).await.unwrap().unwrap();
    assert_eq!(live.document, POLICY);
    assert_eq!(live.version, Version::Revision("r-7".into()));
    assert_eq!(dynamodb::read(&client, ARN).await.unwrap(), None);
    assert_eq!(dynamodb::read(&client, ARN).await.unwrap(), None);
}

#[tokio::test]
async fn delete_treats_a_missing_policy_or_table_as_already_gone() {
    let del = mock!(Client::delete_resource_policy)
        .sequence()
        .output(|| {
            DeleteResourcePolicyOutput::builder()
                .revision_id("r-2")
                .build()
        })
        .http_response(|| json_error(400, "PolicyNotFoundException", "no policy"))
        .http_response(|| json_error(400, "ResourceNotFoundException", "no table"))
        .http_response(|| json_error(400, "AccessDeniedException", "denied"))
        .build();
    let client = mock_client!(aws_sdk_dynamodb, [&del]);
    assert_eq!(
        dynamodb::delete(&client, ARN, &Default::default())
            .await
            .unwrap(),
        Deleted::Removed
    );
    assert_eq!(
        dynamodb::delete(&client, ARN, &Default::default())
            .await
            .unwrap(),
        Deleted::AlreadyGone
    );
    assert_eq!(
        dynamodb::delete(&client, ARN, &Default::default())
            .await
            .unwrap(),
        Deleted::AlreadyGone
    );
    let e = dynamodb::delete(&client, ARN, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (ErrorKind::Terminal, "AccessDeniedException")
    );
}

#[tokio::test]
async fn each_error_is_classified() {
    let cases = [
        (
            400,
            "ResourceInUseException",
            "table is being updated",
            ErrorKind::NotReady,
        ),
        (
            400,
            "ResourceNotFoundException",
            "no table",
            ErrorKind::ResourceNotFound,
        ),
        (
            400,
            "PolicyNotFoundException",
            "revision mismatch",
            ErrorKind::PolicyNotFound,
        ),
        (
            400,
            "LimitExceededException",
            "too many",
            ErrorKind::Throttled,
        ),
        (
            400,
            "ThrottlingException",
            "slow down",
            ErrorKind::Throttled,
        ),
        (500, "InternalServerError", "oops", ErrorKind::Transient),
        (
            400,
            "ValidationException",
            "Invalid principal in policy document",
            ErrorKind::InvalidPrincipal,
        ),
        (
            400,
            "ValidationException",
            "Policy document is malformed",
            ErrorKind::Terminal,
        ),
        (400, "AccessDeniedException", "denied", ErrorKind::Terminal),
    ];
    for (status, code, message, kind) in cases {
        let put = mock!(Client::put_resource_policy)
            .then_http_response(move || json_error(status, code, message));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put], |c| c
            .retry_config(sdk_retries(1)));
        let p = policy();
        let e = dynamodb::put(&client, ARN, &input(&p, &Known::default()))
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (kind, code), "{message}");
        assert_eq!(put.num_calls(), 1);
    }
}

// ---- the retry and read-back layer over DynamoDB ----

fn app_with(
    put: &aws_smithy_mocks::Rule,
    get: &aws_smithy_mocks::Rule,
) -> resource_policy_provider::App {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [put, get], |c| c
        .retry_config(sdk_retries(4)));
    app(empty_clients().with_dynamodb("us-east-1", client))
}

fn table_request() -> resource_policy_provider::request::PolicyRequest {
    request(json!({"ResourceArn": ARN, "Policy": POLICY}))
}

#[tokio::test]
async fn throttling_is_absorbed_by_the_sdk_retries() {
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| json_error(400, "ThrottlingException", "slow down"))
        .times(3)
        .output(|| {
            PutResourcePolicyOutput::builder()
                .revision_id("r-1")
                .build()
        })
        .build();
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get_output("r-1"))
        .repeatedly()
        .build();
    let app = app_with(&put, &get);
    let applied = put_fresh(&app, &table_request(), NotFound::Final, 5_000)
        .await
        .unwrap();
    assert_eq!(
        put.num_calls(),
        4,
        "three throttled attempts and one success, all inside the SDK"
    );
    assert_eq!(applied.attempts, 1);
    assert_eq!(get.num_calls(), 1);
}

#[tokio::test]
async fn a_table_that_is_not_ready_is_retried_by_the_application() {
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| json_error(400, "ResourceInUseException", "Table is being updated"))
        .times(3)
        .output(|| {
            PutResourcePolicyOutput::builder()
                .revision_id("r-1")
                .build()
        })
        .build();
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get_output("r-1"))
        .repeatedly()
        .build();
    let app = app_with(&put, &get);
    let applied = put_fresh(&app, &table_request(), NotFound::Final, 5_000)
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 4);
    assert_eq!(applied.attempts, 4);
    assert_eq!(applied.version, Some(Version::Revision("r-1".into())));
}

#[tokio::test]
async fn read_back_waits_through_old_revision_and_not_found() {
    let put = mock!(Client::put_resource_policy).then_output(|| {
        PutResourcePolicyOutput::builder()
            .revision_id("r-2")
            .build()
    });
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get_output("r-1"))
        .http_response(|| json_error(400, "PolicyNotFoundException", "not yet"))
        .output(|| get_output("r-2"))
        .build();
    let app = app_with(&put, &get);
    let applied = put_fresh(&app, &table_request(), NotFound::Final, 5_000)
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 3);
    assert!(applied.propagation.is_some());
    assert_eq!(
        applied.attributes(&table_request().target)["RevisionId"],
        "r-2"
    );
}

#[tokio::test]
async fn a_terminal_error_is_reported_after_one_call() {
    let put = mock!(Client::put_resource_policy).then_http_response(|| {
        json_error(400, "ValidationException", "Policy document is malformed")
    });
    let get = mock!(Client::get_resource_policy).then_output(|| get_output("x"));
    let app = app_with(&put, &get);
    let e = put_fresh(&app, &table_request(), NotFound::MayAppear, 5_000)
        .await
        .unwrap_err();
    assert_eq!(put.num_calls(), 1);
    assert_eq!(get.num_calls(), 0);
    assert!(!e.may_have_written());
    assert!(
        e.to_string()
            .contains("ValidationException: Policy document is malformed"),
        "{}",
        e
    );
}

#[tokio::test]
async fn invalid_principal_and_missing_table_are_waited_out_on_create() {
    let put = mock!(Client::put_resource_policy)
        .sequence()
        .http_response(|| {
            json_error(
                400,
                "ResourceNotFoundException",
                "Requested resource not found",
            )
        })
        .http_response(|| {
            json_error(
                400,
                "ValidationException",
                "Invalid principal in policy document",
            )
        })
        .output(|| {
            PutResourcePolicyOutput::builder()
                .revision_id("r-1")
                .build()
        })
        .build();
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get_output("r-1"))
        .repeatedly()
        .build();
    let app = app_with(&put, &get);
    let applied = put_fresh(&app, &table_request(), NotFound::MayAppear, 5_000)
        .await
        .unwrap();
    assert_eq!((put.num_calls(), applied.attempts), (3, 3));
}

#[tokio::test]
async fn a_missing_table_is_final_on_update() {
    let put = mock!(Client::put_resource_policy).then_http_response(|| {
        json_error(
            400,
            "ResourceNotFoundException",
            "Requested resource not found",
        )
    });
    let get = mock!(Client::get_resource_policy).then_output(|| get_output("x"));
    let app = app_with(&put, &get);
    let e = put_fresh(&app, &table_request(), NotFound::Final, 5_000)
        .await
        .unwrap_err();
    assert_eq!(put.num_calls(), 1);
    assert!(e.to_string().contains("ResourceNotFoundException"));
}

#[tokio::test]
async fn a_change_that_never_shows_fails_before_the_budget_ends_and_says_so() {
    let put = mock!(Client::put_resource_policy).then_output(|| {
        PutResourcePolicyOutput::builder()
            .revision_id("r-2")
            .build()
    });
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| get_output("r-1"))
        .repeatedly()
        .build();
    let app = app_with(&put, &get);
    let b = budget(400);
    let e = put_policy(
        &app,
        &table_request(),
        &Known::default(),
        NotFound::Final,
        "t",
        &b,
    )
    .await
    .unwrap_err();
    assert!(
        tokio::time::Instant::now() <= b.work_deadline() + std::time::Duration::from_millis(50)
    );
    assert!(e.may_have_written());
    assert!(
        e.to_string().contains("not in force") && e.to_string().contains("revision r-1"),
        "{}",
        e
    );
    assert!(get.num_calls() > 3);
}

#[tokio::test]
async fn a_policy_that_removes_our_own_read_access_succeeds_when_confirmed() {
    let put = mock!(Client::put_resource_policy).then_output(|| {
        PutResourcePolicyOutput::builder()
            .revision_id("r-1")
            .build()
    });
    let get = mock!(Client::get_resource_policy)
        .then_http_response(|| json_error(400, "AccessDeniedException", "not authorized"));
    let app = app_with(&put, &get);
    let confirmed = request(
        json!({"ResourceArn": ARN, "Policy": POLICY, "ConfirmRemoveSelfResourceAccess": "true"}),
    );
    let applied = put_fresh(&app, &confirmed, NotFound::Final, 5_000)
        .await
        .unwrap();
    assert_eq!(applied.propagation, None, "visibility not confirmable");
    let data = applied.attributes(&confirmed.target);
    assert!(!data.contains_key("PropagationMs"));
    assert_eq!(data["RevisionId"], "r-1");

    // Without the confirmation, a denied read-back is a failure like any other.
    let e = put_fresh(&app, &table_request(), NotFound::Final, 5_000)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("AccessDeniedException"), "{e}");
    assert!(e.may_have_written());
}

#[tokio::test]
async fn deleting_from_a_table_being_deleted_is_done_at_once() {
    let del = mock!(Client::delete_resource_policy).then_http_response(|| {
        json_error(
            400,
            "ResourceInUseException",
            "Attempt to change a resource which is still in use: Table is being deleted: orders",
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, [&del]);
    assert_eq!(
        dynamodb::delete(&client, ARN, &Default::default())
            .await
            .unwrap(),
        Deleted::AlreadyGone
    );
    assert_eq!(
        del.num_calls(),
        1,
        "no waiting on a table that will not come back"
    );
}

#[tokio::test]
async fn a_put_on_a_table_being_deleted_fails_at_once() {
    let put = mock!(Client::put_resource_policy).then_http_response(|| {
        json_error(
            400,
            "ResourceInUseException",
            "Table orders is in DELETING state",
        )
    });
    let get = mock!(Client::get_resource_policy).then_output(|| get_output("r-0"));
    let app = app_with(&put, &get);
    let e = put_fresh(&app, &table_request(), NotFound::Final, 5_000)
        .await
        .unwrap_err();
    assert_eq!(put.num_calls(), 1);
    assert!(!e.may_have_written());
}

#[tokio::test]
async fn removing_the_last_statement_never_deletes_one_added_meanwhile() {
    use resource_policy_provider::change::{execute, Change, Options, Wanted};
    use resource_policy_provider::ledger::Holding;
    use resource_policy_provider::model::owner::Owner;
    fn doc(sids: &[&str]) -> String {
        let statements: Vec<_> = sids
            .iter()
            .map(|s| json!({"Sid": s, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "dynamodb:GetItem", "Resource": "*"}))
            .collect();
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }
    // Read: only our statement A (r1); then, after our delete lost the race, A and the
    // B another owner added (r2); then only B (r3).
    let get = mock!(Client::get_resource_policy)
        .sequence()
        .output(|| {
            GetResourcePolicyOutput::builder()
                .policy(doc(&["A"]))
                .revision_id("r1")
                .build()
        })
        .output(|| {
            GetResourcePolicyOutput::builder()
                .policy(doc(&["A", "B"]))
                .revision_id("r2")
                .build()
        })
        .output(|| {
            GetResourcePolicyOutput::builder()
                .policy(doc(&["B"]))
                .revision_id("r3")
                .build()
        })
        .repeatedly()
        .build();
    let del = mock!(Client::delete_resource_policy)
        .match_requests(|r| r.expected_revision_id() == Some("r1"))
        .then_http_response(|| {
            json_error(
                400,
                "PolicyNotFoundException",
                "revision r1 does not match r2",
            )
        });
    let put = mock!(Client::put_resource_policy)
        .match_requests(|r| {
            r.expected_revision_id() == Some("r2") && r.policy() == Some(doc(&["B"]).as_str())
        })
        .then_output(|| PutResourcePolicyOutput::builder().revision_id("r3").build());
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&get, &del, &put],
        |c| c.retry_config(sdk_retries(1))
    );
    let app = app(empty_clients().with_dynamodb("us-east-1", client));
    let req = request(
        json!({"ResourceArn": ARN, "Statements": [{"Sid": "A", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "dynamodb:GetItem", "Resource": "*"}]}),
    );
    // An owner from before the ledger leaves: its properties say it placed A.
    let change = Change {
        target: req.target.clone(),
        owner: Owner::stack(
            "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
            "A",
        ),
        wanted: Wanted::Remove {
            legacy: Some(Holding::Statements(
                req.statements.clone().unwrap().items().to_vec(),
            )),
            legacy_policy_id: None,
        },
        options: Options::of(&req),
        token: "t".into(),
        not_found: NotFound::Final,
        policy_id: None,
        take_over: false,
        guard_override: false,
        asked_at: None,
        existing: true,
    };
    execute(&app, &change, &budget(5_000)).await.unwrap();
    assert_eq!(del.num_calls(), 1, "the delete named the revision it read");
    assert_eq!(put.num_calls(), 1, "then B was kept, A removed, under r2");
}
