"""The deploy path a user takes, as code shared by test_deploy_path.py and scripts/demo:
our own template.yaml (plain CloudFormation) through the emulator's CloudFormation
(Code pointed at an uploaded zip, as `sam package` writes it), and the stacks in
examples/ using its exported ServiceToken.

ministack's CloudFormation reads YAML with short tags itself; this module only parses
templates to cut a part out of them (the example's DynamoDB and Kinesis resources:
ministack has no AWS::Kinesis::StreamConsumer, AWS::APS::Workspace or X-Ray).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from harness import REPO_ROOT, LambdaCode, StackDeployer, StackResult

TEMPLATE = REPO_ROOT / "template.yaml"
EXAMPLES = REPO_ROOT / "examples"
ALL_SERVICES = EXAMPLES / "all-services.yaml"
MINIMAL = EXAMPLES / "minimal.yaml"
# The provider stack name the examples import from by default.
PROVIDER_STACK = "resource-policy-provider"
# examples/all-services.yaml: the resources ministack can deploy.
DYNAMODB_AND_KINESIS = ("OrdersTable", "OrdersTablePolicy", "OrdersStreamPolicy",
                        "ClicksStream", "ClicksStreamPolicy")
# The stack creates an IAM role and policies (no transform: no CAPABILITY_AUTO_EXPAND).
CAPABILITIES = ["CAPABILITY_IAM"]


def packaged_template(code: LambdaCode, template: Path = TEMPLATE) -> str:
    """template.yaml with `Code: .` replaced by the uploaded zip's S3 location, which
    is what `sam package` (and `aws cloudformation package`) write for an
    AWS::Lambda::Function; everything else as the user has it."""
    text = template.read_text()
    lines = re.findall(r"^ +Code: \.$", text, flags=re.M)
    if len(lines) != 1:
        raise AssertionError(f"{template} should have exactly one 'Code: .' line, found {len(lines)}")
    return re.sub(r"^( +)Code: \.$",
                  rf"\g<1>Code:\n\g<1>  S3Bucket: {code.bucket}\n\g<1>  S3Key: {code.key}", text, flags=re.M)


def provider_parameters(emulator_port: int, **extra: str) -> dict[str, str]:
    """Parameters for template.yaml on the emulator: the package is x86_64 (the only
    target here) and the ResponseURL is plain http on the emulator's loopback port."""
    params = {"Architecture": "x86_64", "ResponseUrlAllowedHosts": f"127.0.0.1:{emulator_port}"}
    params.update(extra)
    return params


# CloudFormation's limit on a TemplateBody sent in the request; a larger template must
# come from S3 (TemplateURL), as `sam deploy` and `aws cloudformation deploy --s3-bucket`
# send it.
TEMPLATE_BODY_MAX_BYTES = 51_200


def _template_url(stacks: StackDeployer, text: str, bucket: str) -> str:
    s3 = stacks.emulator.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=bucket)
    key = f"templates/{uuid.uuid4().hex}.yaml"
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    return f"{stacks.emulator.url}/{bucket}/{key}"


def _parameters(parameters: Mapping[str, str] | None) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()]


def create_from_s3(stacks: StackDeployer, stack_name: str, text: str, *, bucket: str = "it-templates",
                   parameters: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   **kwargs: Any) -> StackResult:
    """StackDeployer.create with the template uploaded to the emulator's S3 and sent as
    TemplateURL (the way `sam deploy` sends it); the stack is cleaned up like the others."""
    url = _template_url(stacks, text, bucket)
    t0 = time.monotonic()
    stack_id = stacks.cfn.create_stack(StackName=stack_name, TemplateURL=url,
                                       Parameters=_parameters(parameters), **kwargs)["StackId"]
    stacks._created[stack_id] = stack_name  # deleted by the deployer's cleanup
    return stacks.wait(stack_id, stack_name, t0, set(), timeout_s)


def update_from_s3(stacks: StackDeployer, stack: StackResult, text: str, *, bucket: str = "it-templates",
                   parameters: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   **kwargs: Any) -> StackResult:
    url = _template_url(stacks, text, bucket)
    seen = stacks._event_ids(stack.stack_id)
    t0 = time.monotonic()
    stacks.cfn.update_stack(StackName=stack.stack_id, TemplateURL=url,
                            Parameters=_parameters(parameters), **kwargs)
    return stacks.wait(stack.stack_id, stack.stack_name, t0, seen, timeout_s)


# -- CloudFormation YAML --------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long forms."""


def _construct(tag: str):
    name = "Ref" if tag == "Ref" else ("Condition" if tag == "Condition" else f"Fn::{tag}")

    def construct(loader: yaml.Loader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag in ("Ref", "Condition", "GetAtt", "Sub", "ImportValue", "Join", "Select", "Split", "If",
             "Not", "Equals", "And", "Or", "FindInMap", "Base64", "GetAZs", "Cidr", "Transform"):
    _CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                local = set(value[1]) if isinstance(value, list) else set()
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)} - local
                if isinstance(value, list):
                    found |= _references(value[1])
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def template_part(template: Mapping[str, Any], keep: Iterable[str]) -> dict:
    """The template with only the `keep` resources and the outputs that refer to
    nothing else. Fails if a kept resource needs one that is left out."""
    keep = list(keep)
    part = copy.deepcopy(dict(template))
    resources = part["Resources"]
    missing = [k for k in keep if k not in resources]
    if missing:
        raise AssertionError(f"not in the template: {missing}")
    part["Resources"] = {k: resources[k] for k in keep}
    names = set(part["Resources"]) | set(part.get("Parameters", {}))
    for logical_id, resource in part["Resources"].items():
        refs = {r for r in _references(resource) if not r.startswith("AWS::")}
        if refs - names:
            raise AssertionError(f"{logical_id} refers to {sorted(refs - names)}, which the part leaves out")
    part["Outputs"] = {
        key: out for key, out in (part.get("Outputs") or {}).items()
        if {r for r in _references(out) if not r.startswith("AWS::")} <= names
    }
    return part


def outputs_by_resource(template: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """{logical id: [(output key, 'Ref' or GetAtt attribute)]} for the template's outputs."""
    found: dict[str, list[tuple[str, str]]] = {}
    for key, out in (template.get("Outputs") or {}).items():
        value = out["Value"]
        if "Ref" in value:
            found.setdefault(value["Ref"], []).append((key, "Ref"))
        elif "Fn::GetAtt" in value:
            rid, attr = value["Fn::GetAtt"]
            found.setdefault(rid, []).append((key, attr))
    return found


def policy_with_extra_action(template: Mapping[str, Any], logical_id: str, action: str) -> dict:
    """A copy of the template whose `logical_id` policy (an object) allows one more
    action in its first statement: an in-place Update of that custom resource."""
    changed = copy.deepcopy(dict(template))
    statement = changed["Resources"][logical_id]["Properties"]["Policy"]["Statement"][0]
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    statement["Action"] = [*actions, action]
    return changed


def pretty(policy_text: str) -> str:
    return json.dumps(json.loads(policy_text), indent=2)
