"""The documentation's snippets, run as a user would run them, on ministack:

- every YAML template marked `<!-- check: deploy [Name=value ...] -->` in README.md or
  docs/ is deployed as written against the provider deployed from template.yaml, and
  each of its policies is read back from the service;
- the CloudFormation template inside docs/terraform.md's `aws_cloudformation_stack`
  (its `jsonencode({...})`, with the table's ARN for the Terraform reference) deployed
  the same way;
- the apply request marked `<!-- check: invoke -->` (what Terraform's
  aws_lambda_invocation sends) is invoked on the deployed function, with the
  documentation's example account replaced by the emulator's.
"""

from __future__ import annotations

import json
import re

import pytest

from check_docs import ROOT, load_cfn_yaml, load_docs
from harness import MINISTACK_ACCOUNT
from provider import ddb_policy

DOC_ACCOUNT = "123456789012"


def marked(kind: str):
    found = []
    for doc in load_docs(ROOT).values():
        for block in doc.blocks:
            if block.marker and block.marker.split()[0] == kind:
                found.append(pytest.param(block, id=f"{doc.name}:{block.line}"))
    return found


DEPLOY = marked("deploy")
INVOKE = marked("invoke")


def test_the_docs_mark_snippets_to_run():
    assert len(DEPLOY) >= 2, "README's quick start and the shared-policy template are deployed"
    assert any(p.id.startswith("README.md") for p in DEPLOY)
    assert len(INVOKE) >= 1


def _live_statements(ddb, arn: str) -> list[dict]:
    live = ddb_policy(ddb, arn)
    assert live is not None, f"no policy on {arn}"
    return json.loads(live[0])["Statement"]


@pytest.mark.parametrize("block", DEPLOY)
def test_deployable_snippet(ministack, stacks, provider_stack, aws, unique_name, block):
    params = dict(p.split("=", 1) for p in block.marker.split()[1:])
    template = load_cfn_yaml(block.text)
    created = stacks.create(unique_name("doc"), block.text, parameters=params)
    assert created.status == "CREATE_COMPLETE", created.describe()

    ddb = aws("dynamodb")
    cfn = ministack.client("cloudformation")
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.describe_stack_resources(StackName=created.stack_id)["StackResources"]}
    policies = {k: r for k, r in template["Resources"].items() if r["Type"] == "Custom::ResourcePolicy"}
    assert policies, "the snippet has no Custom::ResourcePolicy"
    for logical_id, resource in policies.items():
        arn = physical[logical_id]
        live = _live_statements(ddb, arn)
        props = resource["Properties"]
        if "Statements" in props:
            assert {s["Sid"] for s in props["Statements"]} <= {s.get("Sid") for s in live}, live
        else:
            want = props["Policy"]["Statement"]
            assert [sorted(s["Action"]) if isinstance(s["Action"], list) else [s["Action"]] for s in want] == \
                [sorted(s["Action"]) if isinstance(s["Action"], list) else [s["Action"]] for s in live], live
    for key in template.get("Outputs") or {}:
        assert created.outputs.get(key), f"output {key} did not resolve: {created.outputs}"

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()


def _invoke(ministack, function_name: str, payload: dict) -> dict:
    got = ministack.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(payload).encode())
    body = json.loads(got["Payload"].read())
    assert "FunctionError" not in got, body
    return body


@pytest.mark.parametrize("block", INVOKE)
def test_terraform_invocation_payload_creates_the_policy(ministack, provider_stack, aws, unique_name, block):
    table = unique_name("tf").lower()[:60]
    ddb = aws("dynamodb")
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    text = block.text.replace(DOC_ACCOUNT, MINISTACK_ACCOUNT).replace("table/orders", f"table/{table}")
    payload = json.loads(text)
    assert payload["tf"]["action"] == "create"
    _invoke(ministack, provider_stack.outputs["FunctionName"], payload)
    arn = payload["detail"]["ResourceArn"]
    live = _live_statements(ddb, arn)
    assert [s["Sid"] for s in live] == [s["Sid"] for s in payload["detail"]["Policy"]["Statement"]]


# Terraform's aws_lambda_invocation (lifecycle_scope = "CRUD") adds `tf` at the top level
# of the input; the function reads it there (src/eventbridge.rs), so a destroy removes.
@pytest.mark.parametrize("block", INVOKE)
def test_terraform_destroy_payload_removes_the_policy(ministack, provider_stack, aws, unique_name, block):
    """docs/terraform.md: on `terraform destroy` the function receives the last applied
    input with tf.action "delete" and prev_input equal to it, and removes the policy."""
    table = unique_name("tfd").lower()[:60]
    ddb = aws("dynamodb")
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    text = block.text.replace(DOC_ACCOUNT, MINISTACK_ACCOUNT).replace("table/orders", f"table/{table}")
    created = json.loads(text)
    function = provider_stack.outputs["FunctionName"]
    _invoke(ministack, function, created)
    applied = {k: v for k, v in created.items() if k != "tf"}
    _invoke(ministack, function, {**applied, "tf": {"action": "delete", "prev_input": applied}})
    assert ddb_policy(ddb, created["detail"]["ResourceArn"]) is None


def hcl_object_to_json(text: str) -> str:
    """The HCL object syntax the Terraform snippets use (`{Key = value, "Fn::X" = ...}`,
    lists, strings, numbers) as JSON."""
    text = re.sub(r'([{,]\s*)([A-Za-z_][\w-]*)\s*=', r'\1"\2":', text)
    return re.sub(r'("[^"]*")\s*=', r"\1:", text)


def test_terraform_cloudformation_stack_template_deploys(ministack, stacks, provider_stack, aws, unique_name):
    try:
        import hcl2
    except ImportError:
        pytest.fail("python-hcl2 is missing: run scripts/check-docs first (it installs .venv-docs)", pytrace=False)
    doc = load_docs(ROOT)["docs/terraform.md"]
    wrappers = [b for b in doc.blocks if b.lang == "hcl" and "aws_cloudformation_stack" in b.text]
    assert len(wrappers) == 1, "docs/terraform.md has one aws_cloudformation_stack snippet"
    parsed = hcl2.loads(wrappers[0].text)
    (stack,) = [r for block in parsed["resource"] for k, r in block.items() if "aws_cloudformation_stack" in k]
    (body,) = [v["template_body"] for v in stack.values()]
    inner = re.fullmatch(r"\$\{jsonencode\((.*)\)\}", body, re.S)
    assert inner, body[:80]

    table = unique_name("tfstack").lower()[:60]
    ddb = aws("dynamodb")
    table_arn = ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])["TableDescription"]["TableArn"]
    text = inner.group(1).replace("aws_dynamodb_table.orders.arn", json.dumps(table_arn))
    template = json.loads(hcl_object_to_json(text))

    created = stacks.create(unique_name("tf-wrapper"), template)
    assert created.status == "CREATE_COMPLETE", created.describe()
    live, revision = ddb_policy(ddb, table_arn)
    assert revision == created.outputs["RevisionId"]
    assert [s["Sid"] for s in json.loads(live)["Statement"]] == ["ReaderGetItem"]
    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert ddb_policy(ddb, table_arn) is None, "terraform destroy (the stack's delete) removes the policy"
