"""Building blocks for tests of the real provider (target/debug/resource-policy-provider)
deployed on ministack: function environment, templates, policies, read-back.

Templates are plain dicts (sent as JSON). Names are unique per test (see the
`unique_name` fixture), so tests share one ministack per xdist worker safely.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from harness import MINISTACK_ACCOUNT, REGION, Emulator, LambdaCode, function_resource, provider_environment

# Short retries and polls so failures show up in seconds, never minutes.
FAST_SETTINGS = {
    "RETRY_BASE_MS": "50",
    "RETRY_MAX_DELAY_MS": "400",
    "POLL_INITIAL_MS": "25",
    "POLL_MAX_MS": "250",
    "NOT_FOUND_GRACE_MS": "3000",
    "RESPONSE_RESERVE_MS": "2000",
    "SDK_CONNECT_TIMEOUT_MS": "1000",
    "SDK_ATTEMPT_TIMEOUT_MS": "5000",
}

FUNCTION_TIMEOUT_S = 60
# CloudFormation's wait for each custom resource; the provider also stops its own
# work at this bound (minus its response reserve), so nothing can hang for long.
SERVICE_TIMEOUT_S = 30

ROOT_PRINCIPAL = {"AWS": f"arn:aws:iam::{MINISTACK_ACCOUNT}:root"}


def function_env(ministack: Emulator, *, proxy=None, **extra: str) -> dict[str, str]:
    """Provider variables: ResponseURL host allowed, fast retries, optional microburst
    in front of DynamoDB and Kinesis, plus `extra` (e.g. AWS_ENDPOINT_URL_XRAY)."""
    env = provider_environment(ministack, proxy=proxy)
    env.update(FAST_SETTINGS)
    env.update(extra)
    return env


def function(code: LambdaCode, env: Mapping[str, str], timeout_s: int = FUNCTION_TIMEOUT_S) -> dict:
    return function_resource(code, timeout_s=timeout_s, environment=env)


def policy_resource(properties: Mapping[str, Any], *, service_timeout_s: int = SERVICE_TIMEOUT_S,
                    token_of: str = "Fn", depends_on: list[str] | None = None,
                    resource_type: str = "Custom::ResourcePolicy") -> dict:
    res: dict[str, Any] = {
        "Type": resource_type,
        "Properties": {"ServiceToken": {"Fn::GetAtt": [token_of, "Arn"]},
                       "ServiceTimeout": service_timeout_s, **properties},
    }
    if depends_on:
        res["DependsOn"] = depends_on
    return res


def template(resources: Mapping[str, Any], outputs: Mapping[str, Any] | None = None,
             parameters: Mapping[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": dict(resources)}
    if parameters:
        body["Parameters"] = {k: {"Type": "String"} if v is None else v for k, v in parameters.items()}
    if outputs:
        body["Outputs"] = {k: {"Value": v} for k, v in outputs.items()}
    return body


def get_att(resource: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [resource, attribute]}


def ref(name: str) -> dict:
    return {"Ref": name}


# -- AWS resources ---------------------------------------------------------------


def table_resource(name: str, *, stream: bool = True) -> dict:
    props: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
    if stream:
        props["StreamSpecification"] = {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    return {"Type": "AWS::DynamoDB::Table", "Properties": props}


def kinesis_stream_resource(name: str) -> dict:
    return {"Type": "AWS::Kinesis::Stream", "Properties": {"Name": name, "ShardCount": 1}}


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{MINISTACK_ACCOUNT}:table/{name}"


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:{REGION}:{MINISTACK_ACCOUNT}:stream/{name}"


def create_table(ddb, name: str, *, stream: bool = False) -> dict:
    kwargs: dict[str, Any] = {}
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], **kwargs,
    )["TableDescription"]


def create_stream_with_consumer(kinesis, stream: str, consumer: str) -> tuple[str, str]:
    """(stream ARN, consumer ARN), both ACTIVE on ministack at once."""
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    consumer_arn = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=consumer)["Consumer"]["ConsumerARN"]
    return arn, consumer_arn


# -- policies --------------------------------------------------------------------


def allow(resource: Any, actions: list[str], sid: str = "Allow", principal: Any = None) -> dict:
    """A one-statement policy document. `resource` may be an intrinsic."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": sid,
            "Effect": "Allow",
            "Principal": principal or ROOT_PRINCIPAL,
            "Action": actions,
            "Resource": resource,
        }],
    }


TABLE_READ = ["dynamodb:GetItem", "dynamodb:Query"]
TABLE_WRITE = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
DDB_STREAM_READ = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
KINESIS_READ = ["kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator"]
KINESIS_WRITE = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
CONSUMER_READ = ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]


def same_policy(live: str | None, expected: Mapping[str, Any]) -> bool:
    return live is not None and json.loads(live) == expected


def ddb_policy(ddb, arn: str) -> tuple[str, str] | None:
    """(policy text, RevisionId) on a DynamoDB table/stream, None when there is none."""
    try:
        got = ddb.get_resource_policy(ResourceArn=arn)
    except (ddb.exceptions.PolicyNotFoundException, ddb.exceptions.ResourceNotFoundException):
        return None
    return got["Policy"], got["RevisionId"]


def kinesis_policy(kinesis, arn: str) -> str | None:
    """Policy text on a Kinesis stream/consumer; None for none (ministack says "{}")."""
    try:
        text = kinesis.get_resource_policy(ResourceARN=arn)["Policy"]
    except kinesis.exceptions.ResourceNotFoundException:
        return None
    return None if text.strip() in ("", "{}") else text


def reason_of(result, logical_id: str, status: str) -> str:
    """The ResourceStatusReason of `logical_id`'s `status` event in this operation."""
    for got, reason in result.resource_events(logical_id):
        if got == status:
            return reason or ""
    raise AssertionError(f"no {status} event for {logical_id}\n{result.describe()}")


def resource_event_seconds(result, logical_id: str, start: str, end: str) -> float:
    """Seconds between two events of one resource (ministack's event timestamps)."""
    times = {}
    for e in result.events:
        if e["LogicalResourceId"] == logical_id and e["ResourceStatus"] in (start, end):
            times.setdefault(e["ResourceStatus"], e["Timestamp"])
    assert start in times and end in times, result.describe()
    return (times[end] - times[start]).total_seconds()
