"""examples/cdk, synthesized by scripts/cdk-check (CDK_OUT names its cdk.out), deployed
on ministack's CloudFormation against the provider deployed from template.yaml:
the whole table policy, then the two owners sharing one table's policy.

Collected only when CDK_OUT is set (conftest.py): run it with scripts/cdk-check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from provider import ddb_policy

READER = "111122223333"  # examples/cdk/cdk.json: readerAccountId


def synthesized(stack: str) -> dict:
    out = Path(os.environ["CDK_OUT"])
    manifest = json.loads((out / "manifest.json").read_text())
    artifact = manifest["artifacts"][stack]
    assert artifact["type"] == "aws:cloudformation:stack", artifact
    template = json.loads((out / artifact["properties"]["templateFile"]).read_text())
    assert "Rules" not in template and "BootstrapVersion" not in (template.get("Parameters") or {}), \
        "the example needs no bootstrap: no CheckBootstrapVersion rule"
    return template


def physical_ids(ministack, stack_id: str) -> dict[str, str]:
    resources = ministack.client("cloudformation").describe_stack_resources(StackName=stack_id)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}


def test_cdk_table_policy_stack(ministack, stacks, provider_stack, aws):
    template = synthesized("ResourcePolicyCdkTable")
    custom = [k for k, r in template["Resources"].items() if r["Type"] == "Custom::ResourcePolicy"]
    assert len(custom) == 1
    assert template["Resources"][custom[0]]["Properties"]["ServiceToken"] == \
        {"Fn::ImportValue": "resource-policy-provider-LiveServiceToken"}

    created = stacks.create("ResourcePolicyCdkTable", template)
    assert created.status == "CREATE_COMPLETE", created.describe()
    ddb = aws("dynamodb")
    table_arn = created.outputs["TableArn"]
    text, revision = ddb_policy(ddb, table_arn)
    assert revision == created.outputs["PolicyRevisionId"]
    (statement,) = json.loads(text)["Statement"]
    assert statement["Sid"] == "ReaderGetItem"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{READER}:root"}
    assert sorted(statement["Action"]) == ["dynamodb:GetItem", "dynamodb:Query"]
    assert physical_ids(ministack, created.stack_id)[custom[0]] == table_arn

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()


def test_cdk_shared_statements_stack(ministack, stacks, provider_stack, aws):
    template = synthesized("ResourcePolicyCdkShared")
    created = stacks.create("ResourcePolicyCdkShared", template)
    assert created.status == "CREATE_COMPLETE", created.describe()
    assert created.outputs["OwnerSids"] == "OwnerReadWrite"
    assert created.outputs["AnalyticsSids"] == "AnalyticsRead"
    ddb = aws("dynamodb")
    table_arn = created.outputs["TableArn"]
    text, _ = ddb_policy(ddb, table_arn)
    assert sorted(s["Sid"] for s in json.loads(text)["Statement"]) == ["AnalyticsRead", "OwnerReadWrite"]

    # One owner leaves: only its statement goes (an update of the stack without it).
    analytics = next(k for k in template["Resources"] if k.startswith("AnalyticsStatements"))
    without = json.loads(json.dumps(template))
    del without["Resources"][analytics]
    del without["Outputs"]["AnalyticsSids"]
    updated = stacks.update(created, without)
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    text, _ = ddb_policy(ddb, table_arn)
    assert [s["Sid"] for s in json.loads(text)["Statement"]] == ["OwnerReadWrite"]

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
