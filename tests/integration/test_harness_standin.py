"""Harness self-tests: the custom-resource path on ministack, driven by the bash
stand-in bootstrap (tests/integration/standin/bootstrap) instead of the Rust binary,
plus smoke checks of the moto and microburst fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import function_resource, provider_environment


def _template(code, event_log: Path, echo: str, extra: dict | None = None) -> str:
    """YAML with short tags on purpose: ministack parses !GetAtt/!Ref itself."""
    fn = function_resource(code, timeout_s=20, environment={
        "STANDIN_EVENT_LOG": str(event_log),
        # Service-specific endpoint variables pass through to the function (how a
        # test routes the provider through microburst); AWS_ENDPOINT_URL does not.
        "AWS_ENDPOINT_URL_DYNAMODB": "http://localhost:9/ddb",
        "AWS_ENDPOINT_URL": "http://localhost:9/ignored",
    })
    fn_yaml = json.dumps(fn)  # JSON is valid YAML; keeps the nested dict simple
    props = {"Echo": echo, "ReportEnv": "AWS_REGION,AWS_ENDPOINT_URL_DYNAMODB", **(extra or {})}
    return f"""
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Fn: {fn_yaml}
  Policy:
    Type: Custom::StandIn
    Properties:
      ServiceToken: !GetAtt Fn.Arn
      ServiceTimeout: 30
{chr(10).join(f'      {k}: {json.dumps(v)}' for k, v in props.items())}
  Plain:
    Type: AWS::CloudFormation::CustomResource
    Properties:
      ServiceToken: !GetAtt Fn.Arn
      ServiceTimeout: 30
      Echo: !Sub "plain-${{AWS::Region}}"
Outputs:
  Echo:
    Value: !GetAtt Policy.Echo
  RequestType:
    Value: !GetAtt Policy.RequestType
  EndpointUrl:
    Value: !GetAtt Policy.EndpointUrl
  Region:
    Value: !GetAtt Policy.Env_AWS_REGION
  DynamodbEndpoint:
    Value: !GetAtt Policy.Env_AWS_ENDPOINT_URL_DYNAMODB
  PhysicalId:
    Value: !Ref Policy
  PlainEcho:
    Value: !GetAtt Plain.Echo
"""


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_custom_resource_create_update_delete(ministack, stacks, standin_code, unique_name, tmp_path):
    log = tmp_path / "events.jsonl"
    log.touch()
    stack_name = unique_name("cr")

    # --- create -----------------------------------------------------------
    created = stacks.create(stack_name, _template(standin_code, log, "v1"))
    assert created.status == "CREATE_COMPLETE", created.describe()
    assert created.outputs["Echo"] == "v1"
    assert created.outputs["RequestType"] == "Create"
    assert created.outputs["EndpointUrl"] == ministack.url
    assert created.outputs["Region"] == "us-east-1"
    assert created.outputs["DynamodbEndpoint"] == "http://localhost:9/ddb"
    assert created.outputs["PlainEcho"] == "plain-us-east-1"
    physical_id = created.outputs["PhysicalId"]
    assert physical_id.startswith("standin-Policy-")
    assert [s for s, _ in created.resource_events("Policy")] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    assert created.events[-1]["ResourceStatus"] == "CREATE_COMPLETE"
    assert created.events[-1]["LogicalResourceId"] == stack_name

    by_type = {e["LogicalResourceId"]: e for e in _events(log) if e["RequestType"] == "Create"}
    assert set(by_type) == {"Policy", "Plain"}
    create_event = by_type["Policy"]
    assert create_event["ResponseURL"].startswith(f"{ministack.url}/_ministack/cfn-response/")
    # ...which is what provider_environment() allows for the Rust provider.
    allowed = provider_environment(ministack)["RESPONSE_URL_ALLOWED_HOSTS"]
    assert create_event["ResponseURL"].startswith(f"http://{allowed}/")
    assert create_event["ResourceType"] == "Custom::StandIn"
    assert by_type["Plain"]["ResourceType"] == "AWS::CloudFormation::CustomResource"
    assert create_event["ResourceProperties"]["Echo"] == "v1"
    assert create_event["ResourceProperties"]["ServiceTimeout"] == "30"  # primitives arrive as strings
    assert create_event["StackId"] == created.stack_id

    # --- update: a changed property -> Update with OldResourceProperties ----
    log.write_text("")
    updated = stacks.update(created, _template(standin_code, log, "v2"))
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    assert updated.outputs["Echo"] == "v2"
    assert updated.outputs["RequestType"] == "Update"
    assert updated.outputs["PhysicalId"] == physical_id
    assert ("UPDATE_COMPLETE", None) in [(s, r or None) for s, r in updated.resource_events("Policy")]
    update_events = [e for e in _events(log) if e["LogicalResourceId"] == "Policy"]
    assert [e["RequestType"] for e in update_events] == ["Update"]
    assert update_events[0]["PhysicalResourceId"] == physical_id
    assert update_events[0]["OldResourceProperties"]["Echo"] == "v1"
    assert update_events[0]["ResourceProperties"]["Echo"] == "v2"

    # --- delete -----------------------------------------------------------
    log.write_text("")
    deleted = stacks.delete(updated)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert [s for s, _ in deleted.resource_events("Policy")] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    delete_events = {e["LogicalResourceId"]: e for e in _events(log)}
    assert delete_events["Policy"]["RequestType"] == "Delete"
    assert delete_events["Policy"]["PhysicalResourceId"] == physical_id
    assert delete_events["Plain"]["RequestType"] == "Delete"


def test_failed_custom_resource_rolls_back(stacks, standin_code, unique_name, tmp_path):
    log = tmp_path / "events.jsonl"
    log.touch()
    result = stacks.create(unique_name("fail"), _template(standin_code, log, "x", {"FailOn": "Create"}))
    assert result.status == "ROLLBACK_COMPLETE", result.describe()
    assert ("CREATE_FAILED", "stand-in asked to fail on Create") in result.resource_events("Policy")
    assert result.outputs == {}


def test_microburst_injects_errors_boto3_sees(ministack, microburst, unique_name):
    table = unique_name("tbl")
    ministack.client("dynamodb").create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    table_arn = f"arn:aws:dynamodb:us-east-1:{ministack.account_id}:table/{table}"
    proxy = microburst(rules=[{"service": "dynamodb", "operation": "GetResourcePolicy",
                               "error": {"code": "ThrottlingException"}, "times": 1}])
    ddb = proxy.client("dynamodb", max_attempts=1)

    with pytest.raises(ClientError) as first:
        ddb.get_resource_policy(ResourceArn=table_arn)
    assert first.value.response["Error"]["Code"] == "ThrottlingException"
    assert first.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    with pytest.raises(ClientError) as second:  # times: 1 spent -> forwarded to ministack
        ddb.get_resource_policy(ResourceArn=table_arn)
    assert second.value.response["Error"]["Code"] == "PolicyNotFoundException"

    assert proxy.requests_seen() == 2
    assert proxy.service_counts()["dynamodb"] == {"requests": 2, "faulted": 1}
    assert [f["action"] for f in proxy.fired(service="dynamodb")] == ["error:ThrottlingException"]


def test_moto_fixture_serves_resource_policies(moto, unique_name):
    ddb = moto.client("dynamodb", max_attempts=1)
    table = unique_name("tbl")
    arn = ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )["TableDescription"]["TableArn"]
    assert f":{moto.account_id}:" in arn
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{moto.account_id}:root"},
        "Action": "dynamodb:GetItem", "Resource": arn}]})
    revision = ddb.put_resource_policy(ResourceArn=arn, Policy=policy)["RevisionId"]
    got = ddb.get_resource_policy(ResourceArn=arn)
    assert (got["Policy"], got["RevisionId"]) == (policy, revision)
