"""The path a user walks, on ministack: our own template.yaml deployed through
CloudFormation with the SAM transform (CodeUri = the uploaded zip of the real
bootstrap, as `sam package` writes it), then the stacks in examples/ using its
exported ServiceToken, an update, and the sample CloudTrail events invoked directly.

The zip holds target/debug/resource-policy-provider (built by `cargo test
--all-targets`), so no release build or cargo-lambda is needed here; scripts/package
builds the real package and checks it (opt-in, see README).
"""

from __future__ import annotations

import json

import pytest

from deploy_path import (ALL_SERVICES, CAPABILITIES, DYNAMODB_AND_KINESIS, EXAMPLES, MINIMAL, PROVIDER_STACK,
                         load_template, outputs_by_resource, packaged_template, policy_with_extra_action,
                         provider_parameters, template_part)
from harness import MINISTACK_ACCOUNT, REPO_ROOT
from provider import ddb_policy, kinesis_policy

READER = "111122223333"


@pytest.fixture
def provider_stack(ministack, stacks, provider_code):
    """template.yaml deployed as `resource-policy-provider` (the examples' default import),
    with one cross-account invoker. Deleted by the `stacks` cleanup if a test fails."""
    created = stacks.create(
        PROVIDER_STACK, packaged_template(provider_code),
        parameters=provider_parameters(ministack.peer.port, InvokerAccountIds=READER),
        Capabilities=CAPABILITIES,
    )
    assert created.status == "CREATE_COMPLETE", created.describe()
    return created


def test_template_yaml_deploys_through_the_sam_transform(ministack, provider_stack):
    out = provider_stack.outputs
    assert set(out) == {"ServiceToken", "FunctionName", "FunctionRoleArn", "LogGroupName", "ApplyEventBusName"}, out
    exports = {e["Name"]: e["Value"] for e in ministack.client("cloudformation").list_exports()["Exports"]}
    assert exports[f"{PROVIDER_STACK}-ServiceToken"] == out["ServiceToken"]

    lam = ministack.client("lambda")
    config = lam.get_function_configuration(FunctionName=out["FunctionName"])
    assert config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap"
    assert config["Architectures"] == ["x86_64"]  # the parameter; its default is arm64
    assert (config["Timeout"], config["MemorySize"]) == (900, 128)
    assert config["LoggingConfig"]["LogFormat"] == "JSON"
    env = config["Environment"]["Variables"]
    assert env["RESPONSE_URL_ALLOWED_HOSTS"] == f"127.0.0.1:{ministack.peer.port}"
    assert env["SDK_MAX_ATTEMPTS"] == "10" and env["NOT_FOUND_GRACE_MS"] == "30000"

    # Cross-account: CloudFormation may invoke, only on behalf of the listed account.
    statements = json.loads(lam.get_policy(FunctionName=out["FunctionName"])["Policy"])["Statement"]
    by_cloudformation = [s for s in statements if s["Principal"] == {"Service": "cloudformation.amazonaws.com"}]
    assert [(s["Action"], s["Condition"]) for s in by_cloudformation] == [
        ("lambda:InvokeFunction", {"StringEquals": {"AWS:SourceAccount": READER}})
    ]
    # The only other invoker: EventBridge, for the rule on the dedicated apply bus.
    others = [s for s in statements if s not in by_cloudformation]
    assert [(s["Principal"], s["Action"]) for s in others] == [
        ({"Service": "events.amazonaws.com"}, "lambda:InvokeFunction")
    ], others
    assert f"rule/{out['ApplyEventBusName']}/" in json.dumps(others[0]["Condition"])

    # The execution role SAM made holds the template's least-privilege statements.
    role = out["FunctionRoleArn"].rsplit("/", 1)[1]
    iam = ministack.client("iam")
    inline = [iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
              for name in iam.list_role_policies(RoleName=role)["PolicyNames"]]
    actions = sorted(a for doc in inline for s in doc["Statement"] for a in s["Action"])
    assert actions == sorted(f"{svc}:{verb}" for svc, verbs in {
        "dynamodb": ("PutResourcePolicy", "GetResourcePolicy", "DeleteResourcePolicy"),
        "kinesis": ("PutResourcePolicy", "GetResourcePolicy", "DeleteResourcePolicy"),
        "xray": ("PutResourcePolicy", "DeleteResourcePolicy", "ListResourcePolicies"),
        "aps": ("PutResourcePolicy", "DescribeResourcePolicy", "DeleteResourcePolicy"),
        "ssm": ("PutResourcePolicy", "GetResourcePolicies", "DeleteResourcePolicy"),
    }.items() for verb in verbs), inline


def test_minimal_example_uses_the_exported_service_token(ministack, stacks, provider_stack, aws):
    created = stacks.create("minimal-example", MINIMAL)
    assert created.status == "CREATE_COMPLETE", created.describe()
    table_arn = next(e["PhysicalResourceId"] for e in created.events
                     if e["LogicalResourceId"] == "TablePolicy" and e["ResourceStatus"] == "CREATE_COMPLETE")
    live = ddb_policy(aws("dynamodb"), table_arn)
    assert live is not None, "the minimal example's policy is not on the table"
    statement = json.loads(live[0])["Statement"][0]
    assert statement["Action"] == "dynamodb:GetItem"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{MINISTACK_ACCOUNT}:root"}

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()


def test_all_services_example_dynamodb_and_kinesis_parts(ministack, stacks, provider_stack, aws, unique_name):
    example = load_template(ALL_SERVICES)
    part = template_part(example, DYNAMODB_AND_KINESIS)
    params = {"ReaderAccountId": READER, "NamePrefix": unique_name("ex").lower()[:30].rstrip("-")}
    created = stacks.create("all-services-example", part, parameters=params)
    assert created.status == "CREATE_COMPLETE", created.describe()
    out = created.outputs

    # Every output the part keeps is a Data key (or Ref) of a policy resource, and
    # every one of them resolved: the provider returned each attribute the example uses.
    wanted = outputs_by_resource(part)
    assert set(wanted) == {"OrdersTablePolicy", "OrdersStreamPolicy", "ClicksStreamPolicy"}
    assert all(out.get(key) for keys in wanted.values() for key, _ in keys), out

    ddb, kinesis = aws("dynamodb"), aws("kinesis")
    table_arn = out["OrdersTablePolicyResourceArn"]
    assert out["OrdersTablePolicyId"] == table_arn and out["OrdersTablePolicyService"] == "dynamodb"
    assert int(out["OrdersTablePolicyAttempts"]) >= 1 and int(out["OrdersTablePolicyPropagationMs"]) >= 0
    text, revision = ddb_policy(ddb, table_arn)
    assert revision == out["OrdersTablePolicyRevisionId"]
    reader = {"AWS": f"arn:aws:iam::{READER}:root"}
    assert json.loads(text)["Statement"][0]["Principal"] == reader

    # The stream policy was given as a !Sub string.
    stream_arn = ddb.describe_table(TableName=table_arn.rsplit("/", 1)[1])["Table"]["LatestStreamArn"]
    stream_text, stream_revision = ddb_policy(ddb, stream_arn)
    assert stream_revision == out["OrdersStreamPolicyRevisionId"]
    assert json.loads(stream_text)["Statement"][0]["Resource"] == stream_arn

    kinesis_arn = out["ClicksStreamPolicyId"]
    assert out["ClicksStreamPolicyService"] == "kinesis"
    assert json.loads(kinesis_policy(kinesis, kinesis_arn))["Statement"][0]["Principal"] == reader

    # Update one policy in place: a new revision, same physical id.
    updated = stacks.update(created, policy_with_extra_action(part, "OrdersTablePolicy", "dynamodb:Scan"),
                            parameters=params)
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    assert updated.outputs["OrdersTablePolicyId"] == table_arn
    new_text, new_revision = ddb_policy(ddb, table_arn)
    assert new_revision == updated.outputs["OrdersTablePolicyRevisionId"] != revision
    assert "dynamodb:Scan" in json.loads(new_text)["Statement"][0]["Action"]

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert kinesis_policy(kinesis, kinesis_arn) is None


def test_shared_table_examples_each_own_their_statements(ministack, stacks, provider_stack, aws, unique_name):
    """examples/shared-table-owner.yaml and shared-table-analytics.yaml: two stacks, one
    table policy, each stack owning its statement (Statements); deleting the second
    leaves the first's."""
    ddb = aws("dynamodb")
    owner = stacks.create("shared-table-owner", EXAMPLES / "shared-table-owner.yaml",
                          parameters={"TableName": unique_name("shared")})
    assert owner.status == "CREATE_COMPLETE", owner.describe()
    assert owner.outputs["OwnedSids"] == "OwnerReadWrite"
    table_arn = owner.outputs["TableArn"]

    analytics = stacks.create("shared-table-analytics", EXAMPLES / "shared-table-analytics.yaml",
                              parameters={"AnalyticsAccountId": READER})
    assert analytics.status == "CREATE_COMPLETE", analytics.describe()
    assert analytics.outputs["OwnedSids"] == "AnalyticsRead"
    text, revision = ddb_policy(ddb, table_arn)
    assert [st["Sid"] for st in json.loads(text)["Statement"]] == ["OwnerReadWrite", "AnalyticsRead"]
    assert revision == analytics.outputs["PolicyRevisionId"]

    assert stacks.delete(analytics).status == "DELETE_COMPLETE"
    text, _ = ddb_policy(ddb, table_arn)
    assert [st["Sid"] for st in json.loads(text)["Statement"]] == ["OwnerReadWrite"]
    assert stacks.delete(owner).status == "DELETE_COMPLETE"


@pytest.mark.parametrize("sample", [f"cloudtrail-{s}-put.json" for s in ("dynamodb", "kinesis", "xray", "aps", "ssm")]
                         + ["reconcile-scheduled.json", "reconcile-request.json"])
def test_drift_and_reconcile_samples_are_acknowledged_by_the_deployed_function(ministack, provider_stack, sample):
    """The function deployed from template.yaml (DriftRepair disabled: no ledger), invoked
    directly with each sample drift and reconcile event (as `cargo lambda invoke
    --data-file` would): acknowledged and ignored. (ministack refuses aws.* sources on
    PutEvents, so they cannot go through a bus.)"""
    got = ministack.client("lambda").invoke(FunctionName=provider_stack.outputs["FunctionName"],
                                            Payload=(REPO_ROOT / "events" / sample).read_bytes())
    body = json.loads(got["Payload"].read())
    assert "FunctionError" not in got, body
    assert body["Status"] == "IGNORED", body


def test_the_part_helper_refuses_a_part_that_misses_a_dependency():
    example = load_template(ALL_SERVICES)
    with pytest.raises(AssertionError, match="OrdersTablePolicy refers to"):
        template_part(example, ["OrdersTablePolicy"])
    part = template_part(example, ["OrdersTable", "OrdersTablePolicy"])
    assert set(part["Resources"]) == {"OrdersTable", "OrdersTablePolicy"}
    assert set(outputs_by_resource(part)) == {"OrdersTablePolicy"}
