"""The deploy path a user takes, as code shared by test_deploy_path.py and scripts/demo:
our own template.yaml through the emulator's CloudFormation with the SAM transform
(CodeUri pointed at an uploaded zip, as `sam package` writes it), and the stacks in
examples/ using its exported ServiceToken.

ministack's CloudFormation reads YAML with short tags itself; this module only parses
templates to cut a part out of them (the example's DynamoDB and Kinesis resources:
ministack has no AWS::Kinesis::StreamConsumer, AWS::APS::Workspace or X-Ray).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from harness import REPO_ROOT, LambdaCode

TEMPLATE = REPO_ROOT / "template.yaml"
EXAMPLES = REPO_ROOT / "examples"
ALL_SERVICES = EXAMPLES / "all-services.yaml"
MINIMAL = EXAMPLES / "minimal.yaml"
# The provider stack name the examples import from by default.
PROVIDER_STACK = "resource-policy-provider"
# examples/all-services.yaml: the resources ministack can deploy.
DYNAMODB_AND_KINESIS = ("OrdersTable", "OrdersTablePolicy", "OrdersStreamPolicy",
                        "ClicksStream", "ClicksStreamPolicy")
# SAM adds these when it expands the function; the stack needs both.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]


def packaged_template(code: LambdaCode, template: Path = TEMPLATE) -> str:
    """template.yaml with `CodeUri: .` replaced by the uploaded zip's s3:// URI,
    which is what `sam package` writes; everything else as the user has it."""
    text = template.read_text()
    lines = re.findall(r"^ +CodeUri: \.$", text, flags=re.M)
    if len(lines) != 1:
        raise AssertionError(f"{template} should have exactly one 'CodeUri: .' line, found {len(lines)}")
    return re.sub(r"^( +CodeUri: )\.$", rf"\g<1>s3://{code.bucket}/{code.key}", text, flags=re.M)


def provider_parameters(emulator_port: int, **extra: str) -> dict[str, str]:
    """Parameters for template.yaml on the emulator: the package is x86_64 (the only
    target here) and the ResponseURL is plain http on the emulator's loopback port."""
    params = {"Architecture": "x86_64", "ResponseUrlAllowedHosts": f"127.0.0.1:{emulator_port}"}
    params.update(extra)
    return params


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
