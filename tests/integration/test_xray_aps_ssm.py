"""X-Ray, Managed Prometheus and SSM through CloudFormation on ministack, with the
function's calls for those services sent to tests/peers/policy_server.py
(AWS_ENDPOINT_URL_XRAY / _AMP / _SSM in the function's environment): create,
update, delete, eventual consistency, AMP status transitions, a workspace still
CREATING, throttling, and SSM's PolicyId / PolicyHash update path."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time

import pytest

from harness import lambda_logs
from provider import (
    function, function_env, get_att, policy_resource, reason_of, ref, resource_event_seconds, template,
)

ACCOUNT = "123456789012"  # the policy server's account


def _xray_policy(actions: list[str]) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "SnsTraces", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": actions, "Resource": "*"}]}


def _aps_policy(workspace_arn: str, actions: list[str]) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "Metrics", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": actions, "Resource": workspace_arn}]}


def _ssm_policy(parameter_arn: str, actions: list[str]) -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "Share", "Effect": "Allow", "Principal": {"AWS": ACCOUNT},
        "Action": actions, "Resource": parameter_arn}]}


XRAY_V1 = ["xray:PutTraceSegments", "xray:GetSamplingRules"]
XRAY_V2 = ["xray:PutTraceSegments", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
APS_V1 = ["aps:RemoteWrite"]
APS_V2 = ["aps:RemoteWrite", "aps:QueryMetrics"]
SSM_V1 = ["ssm:GetParameter"]
SSM_V2 = ["ssm:GetParameter", "ssm:GetParameters"]


def _template(code, env, xray_name, workspace_arn, parameter_arn, *, xray, aps, ssm,
              service_timeout_s: int = 30) -> dict:
    return template(
        resources={
            "Fn": function(code, env),
            "XRayPolicy": policy_resource({"PolicyName": xray_name, "Service": "xray",
                                           "BypassPolicyLockoutCheck": "false",
                                           "Policy": _xray_policy(xray)}, service_timeout_s=service_timeout_s),
            "ApsPolicy": policy_resource({"ResourceArn": workspace_arn, "Policy": _aps_policy(workspace_arn, aps)},
                                         service_timeout_s=service_timeout_s),
            # SSM's Policy as a JSON string, as it is usually written for parameters.
            "SsmPolicy": policy_resource({"ResourceArn": parameter_arn,
                                          "Policy": json.dumps(_ssm_policy(parameter_arn, ssm))},
                                         service_timeout_s=service_timeout_s),
        },
        outputs={
            "XRayId": ref("XRayPolicy"),
            "XRayName": get_att("XRayPolicy", "PolicyName"),
            "XRayService": get_att("XRayPolicy", "Service"),
            "XRayRevision": get_att("XRayPolicy", "RevisionId"),
            "XRayPropagationMs": get_att("XRayPolicy", "PropagationMs"),
            "ApsId": ref("ApsPolicy"),
            "ApsRevision": get_att("ApsPolicy", "RevisionId"),
            "ApsStatus": get_att("ApsPolicy", "PolicyStatus"),
            "ApsAttempts": get_att("ApsPolicy", "Attempts"),
            "ApsPropagationMs": get_att("ApsPolicy", "PropagationMs"),
            "SsmId": ref("SsmPolicy"),
            "SsmPolicyId": get_att("SsmPolicy", "PolicyId"),
            "SsmPolicyHash": get_att("SsmPolicy", "PolicyHash"),
            "SsmAttempts": get_att("SsmPolicy", "Attempts"),
            "SsmPropagationMs": get_att("SsmPolicy", "PropagationMs"),
        },
    )


def _targets(policy_server, unique_name, **workspace_spec):
    xray_name = unique_name("xray")[:60]
    workspace = policy_server.add_workspace(**workspace_spec)
    parameter_arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/it/{unique_name('param')}"
    policy_server.add_ssm_resource(parameter_arn)
    return xray_name, workspace, parameter_arn


def _sha256(policy: dict) -> str:
    """The server's PolicyHash: sha256 of the stored text, which is the compact JSON sent."""
    return hashlib.sha256(json.dumps(policy, separators=(",", ":")).encode()).hexdigest()


def test_create_update_delete_with_propagation_delay(ministack, policy_server, stacks, provider_code, unique_name):
    delay_ms, transition_ms = 700, 500
    policy_server.configure(propagation_delay_ms=delay_ms, aps_transition_ms=transition_ms)
    xray_name, workspace, parameter_arn = _targets(policy_server, unique_name)
    ws_id, ws_arn = workspace["workspaceId"], workspace["arn"]
    env = function_env(ministack, **policy_server.endpoint_environment())

    # -- create ------------------------------------------------------------------
    created = stacks.create(unique_name("stack"), _template(
        provider_code, env, xray_name, ws_arn, parameter_arn, xray=XRAY_V1, aps=APS_V1, ssm=SSM_V1))
    assert created.status == "CREATE_COMPLETE", created.describe()
    out, state = created.outputs, policy_server.state()

    [xray_live] = state["xray"]["policies"]["us-east-1"]
    assert xray_live["PolicyName"] == xray_name
    assert json.loads(xray_live["PolicyDocument"]) == _xray_policy(XRAY_V1)
    assert out["XRayId"] == f"xray:us-east-1:policy/{xray_name}"
    assert (out["XRayName"], out["XRayService"]) == (xray_name, "xray")
    assert out["XRayRevision"] == xray_live["PolicyRevisionId"] == "1"

    aps_live = state["aps"]["policies"][ws_id]
    assert json.loads(aps_live["policyDocument"]) == _aps_policy(ws_arn, APS_V1)
    assert aps_live["policyStatus"] == "ACTIVE"  # the provider waited out CREATING
    assert out["ApsId"] == ws_arn
    assert out["ApsRevision"] == aps_live["revisionId"]

    [ssm_live] = state["ssm"]["policies"][parameter_arn]
    assert json.loads(ssm_live["Policy"]) == _ssm_policy(parameter_arn, SSM_V1)
    assert out["SsmPolicyId"] == ssm_live["PolicyId"]
    assert out["SsmPolicyHash"] == ssm_live["PolicyHash"] == _sha256(_ssm_policy(parameter_arn, SSM_V1))
    assert out["SsmId"] == parameter_arn  # the id names the target; the ledger holds the PolicyId

    # Each write was read back until visible: that took at least the delay
    # (AMP: the CREATING -> ACTIVE transition as well).
    for key in ("XRayPropagationMs", "SsmPropagationMs"):
        assert int(out[key]) >= delay_ms * 0.8, (key, out[key])
    assert int(out["ApsPropagationMs"]) >= max(delay_ms, transition_ms) * 0.8, out["ApsPropagationMs"]
    assert len(policy_server.calls("xray", "ListResourcePolicies")) >= 2
    assert len(policy_server.calls("aps", "DescribeResourcePolicy")) >= 2

    # -- update all three in place --------------------------------------------------
    updated = stacks.update(created, _template(
        provider_code, env, xray_name, ws_arn, parameter_arn, xray=XRAY_V2, aps=APS_V2, ssm=SSM_V2))
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    out2, state = updated.outputs, policy_server.state()

    [xray_live] = state["xray"]["policies"]["us-east-1"]
    assert json.loads(xray_live["PolicyDocument"]) == _xray_policy(XRAY_V2)
    assert out2["XRayRevision"] == xray_live["PolicyRevisionId"] == "2"
    assert out2["XRayId"] == out["XRayId"]

    aps_live = state["aps"]["policies"][ws_id]
    assert json.loads(aps_live["policyDocument"]) == _aps_policy(ws_arn, APS_V2)
    assert aps_live["policyStatus"] == "ACTIVE"
    assert out2["ApsRevision"] == aps_live["revisionId"] != out["ApsRevision"]

    # SSM: the same policy updated in place (PolicyId kept, hash changed), not a second one.
    [ssm_live] = state["ssm"]["policies"][parameter_arn]
    assert json.loads(ssm_live["Policy"]) == _ssm_policy(parameter_arn, SSM_V2)
    assert out2["SsmPolicyId"] == out["SsmPolicyId"] == ssm_live["PolicyId"]
    assert out2["SsmPolicyHash"] == ssm_live["PolicyHash"] == _sha256(_ssm_policy(parameter_arn, SSM_V2))
    assert out2["SsmPolicyHash"] != out["SsmPolicyHash"]
    assert out2["SsmId"] == out["SsmId"]  # same physical id: no replacement, no Delete
    assert not policy_server.calls("ssm", "DeleteResourcePolicy")

    # -- delete ----------------------------------------------------------------------------
    deleted = stacks.delete(updated)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    state = policy_server.state()
    assert state["xray"]["policies"] == {}
    assert state["aps"]["policies"] == {}
    assert state["ssm"]["policies"] == {}
    assert parameter_arn in state["ssm"]["resources"]  # the parameter itself is not ours to delete
    # The deletes were read back until gone, through the delayed view.
    assert deleted.elapsed_s >= delay_ms / 1000


def _activate_after_conflicts(policy_server, workspace_id: str, conflicts: int, timeout_s: float = 20.0):
    """Background: once AMP has answered `conflicts` 409s (workspace CREATING), mark the
    workspace ACTIVE. Deterministic, unlike a timer racing the stack's progress."""
    done = threading.Event()

    def run():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = [c for c in policy_server.calls("aps", "PutResourcePolicy") if c["status"] == 409]
            if len(seen) >= conflicts:
                break
            time.sleep(0.05)
        policy_server.add_workspace(workspaceId=workspace_id, status="ACTIVE")
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def test_throttling_and_a_creating_workspace(ministack, policy_server, stacks, provider_code, unique_name):
    """Every service throttles the first puts and deletes; SSM answers its ambiguous
    MalformedResourcePolicyDocumentException once; the workspace is CREATING until
    the provider has been told "Conflict" three times. The stack completes and
    deletes, with a bounded number of calls."""
    xray_name, workspace, parameter_arn = _targets(policy_server, unique_name, status="CREATING")
    ws_id, ws_arn = workspace["workspaceId"], workspace["arn"]
    assert workspace["status"]["statusCode"] == "CREATING"
    policy_server.fault("xray", "ThrottledException", operation="PutResourcePolicy", count=2)
    policy_server.fault("aps", "ThrottlingException", operation="PutResourcePolicy", count=1)
    policy_server.fault("ssm", "ThrottlingException", operation="PutResourcePolicy", count=1)
    policy_server.fault("ssm", "MalformedResourcePolicyDocumentException", operation="PutResourcePolicy",
                        message="excessive PutResourcePolicy calls")
    activated = _activate_after_conflicts(policy_server, ws_id, conflicts=3)
    env = function_env(ministack, **policy_server.endpoint_environment())

    created = stacks.create(unique_name("stack"), _template(
        provider_code, env, xray_name, ws_arn, parameter_arn, xray=XRAY_V1, aps=APS_V1, ssm=SSM_V1))

    assert created.status == "CREATE_COMPLETE", created.describe()
    assert activated.is_set()
    state = policy_server.state()
    assert state["faults"] == [], "every queued fault was consumed"
    assert json.loads(state["xray"]["policies"]["us-east-1"][0]["PolicyDocument"]) == _xray_policy(XRAY_V1)
    assert json.loads(state["aps"]["policies"][ws_id]["policyDocument"]) == _aps_policy(ws_arn, APS_V1)
    [ssm_live] = state["ssm"]["policies"][parameter_arn]
    assert created.outputs["SsmPolicyId"] == ssm_live["PolicyId"]

    statuses = {svc: [c["status"] for c in policy_server.calls(svc, "PutResourcePolicy")]
                for svc in ("xray", "aps", "ssm")}
    # X-Ray: two 429s retried, then the write.
    assert statuses["xray"] == [429, 429, 200], statuses
    # AMP: a 429, then 409 Conflict while the workspace is CREATING (retried with
    # backoff, not reported), then accepted once it is ACTIVE.
    assert statuses["aps"][0] == 429 and statuses["aps"][-1] == 202, statuses
    # (3 before the switch; a few more may land while it is being made)
    assert 3 <= statuses["aps"].count(409) <= 8, statuses
    assert int(created.outputs["ApsAttempts"]) >= 2
    # SSM: throttled, then the ambiguous Malformed (retried a few times at most), then written.
    assert statuses["ssm"] == [400, 400, 200], statuses
    # SSM puts are never retried blindly by the SDK (a put whose answer was lost would add
    # a second policy): the throttle and the ambiguous error each cost one re-read and try.
    assert int(created.outputs["SsmAttempts"]) == 3

    # -- delete under throttling too ---------------------------------------------------
    policy_server.fault("xray", "ThrottledException", operation="DeleteResourcePolicy", count=1)
    policy_server.fault("aps", "ThrottlingException", operation="DeleteResourcePolicy", count=1)
    policy_server.fault("ssm", "ThrottlingException", operation="DeleteResourcePolicy", count=1)
    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    state = policy_server.state()
    assert state["faults"] == []
    assert (state["xray"]["policies"], state["aps"]["policies"], state["ssm"]["policies"]) == ({}, {}, {})
    total = sum(n for ops in state["call_counts"].values() for n in ops.values())
    assert total <= 60, state["call_counts"]


def test_update_moves_ssm_policy_to_another_parameter(ministack, policy_server, stacks, provider_code, unique_name):
    """A new ResourceArn replaces the resource: the policy is put on the new parameter
    (new physical id, new PolicyId) and CloudFormation's cleanup Delete removes the
    old one by its PolicyId."""
    first = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/{unique_name('first')}"
    second = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/{unique_name('second')}"
    for arn in (first, second):
        policy_server.add_ssm_resource(arn)
    env = function_env(ministack, **policy_server.endpoint_environment())

    def body(arn):
        return template({
            "Fn": function(provider_code, env),
            "SsmPolicy": policy_resource({"ResourceArn": arn, "Policy": _ssm_policy(arn, SSM_V1)}),
        }, outputs={"Id": ref("SsmPolicy"), "PolicyId": get_att("SsmPolicy", "PolicyId")})

    created = stacks.create(unique_name("stack"), body(first))
    assert created.status == "CREATE_COMPLETE", created.describe()
    moved = stacks.update(created, body(second))
    assert moved.status == "UPDATE_COMPLETE", moved.describe()

    policies = policy_server.state()["ssm"]["policies"]
    assert first not in policies, policies
    [live] = policies[second]
    assert json.loads(live["Policy"]) == _ssm_policy(second, SSM_V1)
    assert moved.outputs["Id"] == second != created.outputs["Id"]
    assert moved.outputs["PolicyId"] == live["PolicyId"] != created.outputs["PolicyId"]
    # The cleanup Delete named the old parameter's policy by its id.
    assert [c["status"] for c in policy_server.calls("ssm", "DeleteResourcePolicy")] == [200]

    assert stacks.delete(moved).status == "DELETE_COMPLETE"
    assert policy_server.state()["ssm"]["policies"] == {}


def test_aps_policy_status_attribute_is_the_status_waited_for(ministack, policy_server, stacks, provider_code,
                                                               unique_name):
    policy_server.configure(aps_transition_ms=300)
    ws_arn = policy_server.add_workspace()["arn"]
    env = function_env(ministack, **policy_server.endpoint_environment())
    created = stacks.create(unique_name("stack"), template({
        "Fn": function(provider_code, env),
        "ApsPolicy": policy_resource({"ResourceArn": ws_arn, "Policy": _aps_policy(ws_arn, APS_V1)}),
    }, outputs={"Status": get_att("ApsPolicy", "PolicyStatus"),
                "PropagationMs": get_att("ApsPolicy", "PropagationMs")}))
    assert created.status == "CREATE_COMPLETE", created.describe()
    assert int(created.outputs["PropagationMs"]) >= 200  # it did wait for ACTIVE
    assert created.outputs["Status"] == "ACTIVE"


def test_policy_that_never_becomes_visible_fails_within_service_timeout(ministack, policy_server, stacks,
                                                                        provider_code, unique_name):
    """X-Ray accepts the put but reads lag by a minute: the provider waits for the
    read-back until its budget (ServiceTimeout minus the reserve) ends, then answers
    FAILED saying what it waited for, and keeps the real physical id, since the
    write landed and a rollback Delete must remove it."""
    service_timeout = 6
    policy_server.configure(propagation_delay_ms=60_000)
    name = unique_name("xray")[:60]
    env = function_env(ministack, **policy_server.endpoint_environment())
    result = stacks.create(unique_name("stack"), template({
        "Fn": function(provider_code, env),
        "XRayPolicy": policy_resource({"PolicyName": name, "Policy": _xray_policy(XRAY_V1)},
                                      service_timeout_s=service_timeout),
    }), timeout_s=60)

    assert result.status == "ROLLBACK_COMPLETE", result.describe()
    reason = reason_of(result, "XRayPolicy", "CREATE_FAILED")
    assert "accepted but is not in force" in reason and "time budget" in reason, reason
    assert "last seen: no policy" in reason, reason
    waited = resource_event_seconds(result, "XRayPolicy", "CREATE_IN_PROGRESS", "CREATE_FAILED")
    assert service_timeout / 2 <= waited < service_timeout, result.describe()
    # ministack keeps no PhysicalResourceId on the failed event: read the provider's log.
    [fn_name] = {e["PhysicalResourceId"] for e in result.events
                 if e["LogicalResourceId"] == "Fn" and e["ResourceStatus"] == "CREATE_COMPLETE"}
    logs = re.sub(r"\x1b\[[0-9;]*m", "", lambda_logs(ministack, fn_name))
    assert f"FAILED physical_id=xray:us-east-1:policy/{name} " in logs, logs[-2000:]
    reads = policy_server.calls("xray", "ListResourcePolicies")
    assert 3 <= len(reads) <= 60, len(reads)  # polled with backoff, not in a busy loop
