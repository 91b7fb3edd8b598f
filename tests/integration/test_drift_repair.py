"""Drift repair on ministack with the project's own template.yaml deployed with
DriftRepair=Enabled (Code is the uploaded zip as `sam package` writes it; the template
goes through S3, as `sam deploy` sends it) and a consumer stack that uses the exported
ServiceToken.

ministack does not turn API calls into CloudTrail events, so each out-of-band change is
followed by its CloudTrail-shaped event, delivered by invoking the deployed function
as EventBridge would."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from deploy_path import CAPABILITIES, create_from_s3, packaged_template, provider_parameters
from harness import MINISTACK_ACCOUNT, REGION
from provider import allow, ddb_policy, table_resource

PROVIDER = "rpp-drift"
OTHER_ACCOUNT = "444455556666"


@pytest.fixture
def drift_provider(ministack, stacks, provider_code):
    created = create_from_s3(
        stacks, PROVIDER, packaged_template(provider_code),
        parameters=provider_parameters(ministack.peer.port, DriftRepair="Enabled",
                                       ApplyAllowedAccounts=OTHER_ACCOUNT),
        Capabilities=CAPABILITIES,
    )
    assert created.status == "CREATE_COMPLETE", created.describe()
    return created


def consumer(table: str, actions: list[str]) -> dict:
    arn = {"Fn::GetAtt": ["Table", "Arn"]}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Table": table_resource(table, stream=False),
            "TablePolicy": {
                "Type": "Custom::ResourcePolicy",
                "Properties": {
                    "ServiceToken": {"Fn::ImportValue": f"{PROVIDER}-ServiceToken"},
                    "ServiceTimeout": 60,
                    "ResourceArn": arn,
                    "Policy": allow(arn, actions),
                },
            },
        },
        "Outputs": {"TableArn": {"Value": arn}},
    }


def trail(table_arn: str, *, caller: str = "arn:aws:iam::000000000000:role/someone", error: str | None = None) -> dict:
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "arn": caller}}},
        "eventSource": "dynamodb.amazonaws.com", "eventName": "PutResourcePolicy", "awsRegion": REGION,
        "requestParameters": {"resourceArn": table_arn, "policy": "HIDDEN"}, "readOnly": False,
    }
    if error:
        detail["errorCode"] = error
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.dynamodb", "account": MINISTACK_ACCOUNT, "region": REGION, "resources": [],
            "time": "2026-11-23T00:00:00Z", "detail": detail}


def invoke(ministack, function: str, event: dict) -> tuple[dict, str | None]:
    got = ministack.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return json.loads(got["Payload"].read()), got.get("FunctionError")


def ledger_row(aws, table: str, target: str) -> dict | None:
    return aws("dynamodb").get_item(TableName=table, Key={"target": {"S": target}}, ConsistentRead=True).get("Item")


def owner_record(row: dict, logical_id: str) -> tuple[str, dict]:
    """The one owner record (`o:<owner>`) of the stack resource `logical_id`."""
    owners = [(k[2:], v["M"]) for k, v in row.items() if k.startswith("o:") and k.endswith("/" + logical_id)]
    assert len(owners) == 1, row
    return owners[0]


def holding(record: dict) -> dict:
    return json.loads(record["holding"]["S"])


def test_drift_is_repaired_from_the_ledger_through_create_update_and_delete(ministack, stacks, drift_provider, aws, unique_name):
    out = drift_provider.outputs
    function, ledger, role = out["FunctionName"], out["LedgerTable"], out["FunctionRoleArn"]
    ddb = aws("dynamodb")
    name = unique_name("t").lower()[:40]
    created = stacks.create("drift-consumer", consumer(name, ["dynamodb:GetItem"]))
    assert created.status == "CREATE_COMPLETE", created.describe()
    arn = created.outputs["TableArn"]

    row = ledger_row(aws, ledger, arn)
    assert row is not None, "a ledger row after Create"
    owner, record = owner_record(row, "TablePolicy")
    assert owner.startswith("cfn:arn:aws:cloudformation:"), owner
    assert holding(record)["Policy"]["Statement"][0]["Action"] == ["dynamodb:GetItem"]
    assert record["present"]["BOOL"] and record["settled"]["BOOL"]

    # Update: the ledger takes the new document.
    updated = stacks.update(created, consumer(name, ["dynamodb:GetItem", "dynamodb:Query"]))
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    desired = holding(owner_record(ledger_row(aws, ledger, arn), "TablePolicy")[1])["Policy"]
    assert desired["Statement"][0]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]

    # Out of band: deleted, then repaired; hand-written, then repaired to the new document.
    ddb.delete_resource_policy(ResourceArn=arn)
    body, err = invoke(ministack, function, trail(arn))
    assert err is None and body["Status"] == "REPAIRED", body
    assert json.loads(ddb_policy(ddb, arn)[0])["Statement"][0]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]
    ddb.put_resource_policy(ResourceArn=arn, Policy=json.dumps(allow(arn, ["dynamodb:*"])))
    body, err = invoke(ministack, function, trail(arn))
    assert err is None and body["Status"] == "REPAIRED", body
    live, revision = ddb_policy(ddb, arn)
    assert json.loads(live)["Statement"][0]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]

    # A failed call and the function's own role write nothing; an unmanaged table is left alone.
    ddb.put_resource_policy(ResourceArn=arn, Policy=json.dumps(allow(arn, ["dynamodb:*"])))
    hand = ddb_policy(ddb, arn)
    for event in (trail(arn, error="AccessDenied"), trail(arn, caller=role)):
        body, err = invoke(ministack, function, event)
        assert err is None and body["Status"] == "IGNORED", body
    assert ddb_policy(ddb, arn) == hand, "nothing written"
    other = unique_name("u").lower()[:40]
    ddb.create_table(TableName=other, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    other_arn = f"arn:aws:dynamodb:{REGION}:{MINISTACK_ACCOUNT}:table/{other}"
    body, err = invoke(ministack, function, trail(other_arn))
    assert err is None and body["Status"] == "UNMANAGED", body

    # After the stack is deleted its owner is recorded gone: never restored.
    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    _, record = owner_record(ledger_row(aws, ledger, arn), "TablePolicy")
    assert not record["present"]["BOOL"], record


def test_apply_requests_only_through_the_dedicated_bus_and_from_allowed_accounts(ministack, drift_provider, aws, unique_name):
    out = drift_provider.outputs
    ddb, events = aws("dynamodb"), aws("events")
    name = unique_name("a").lower()[:40]
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    arn = f"arn:aws:dynamodb:{REGION}:{MINISTACK_ACCOUNT}:table/{name}"

    def request(actions):
        return json.dumps({"ResourceArn": arn, "Policy": allow(arn, actions)})

    # On the default bus: no rule sends apply requests to the function.
    events.put_events(Entries=[{"Source": "platform.policies", "DetailType": "PutResourcePolicy",
                                "Detail": request(["dynamodb:Scan"])}])
    time.sleep(3)
    assert ddb_policy(ddb, arn) is None, "an apply request on the default bus was acted on"

    # On the dedicated bus: applied.
    events.put_events(Entries=[{"Source": "platform.policies", "DetailType": "PutResourcePolicy",
                                "Detail": request(["dynamodb:GetItem"]), "EventBusName": out["ApplyEventBusName"]}])
    deadline = time.monotonic() + 60
    while ddb_policy(ddb, arn) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    live = ddb_policy(ddb, arn)
    assert live is not None, "the apply request on the dedicated bus did not land"
    assert json.loads(live[0])["Statement"][0]["Action"] == ["dynamodb:GetItem"]

    # From an account that is not allowed: refused by the function itself.
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "PutResourcePolicy", "source": "x",
             "account": "999999999999", "region": REGION, "resources": [], "detail": json.loads(request(["dynamodb:*"]))}
    got = ministack.client("lambda").invoke(FunctionName=out["FunctionName"], Payload=json.dumps(event).encode())
    body = json.loads(got["Payload"].read())
    assert got.get("FunctionError"), body
    assert body.get("errorType") == "InvalidRequest" and "999999999999" in body.get("errorMessage", ""), body
    assert json.loads(ddb_policy(ddb, arn)[0])["Statement"][0]["Action"] == ["dynamodb:GetItem"]
