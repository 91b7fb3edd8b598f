"""Tests for policy_server.py, driven through boto3.

Why boto3: botocore builds requests and parses responses and errors from the
same service models the Rust SDK is generated from, so every call that works
here proves the peer's wire format (paths, member names, status codes, error
codes and error members) matches the published models.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy_server.py")
REGION = "us-east-1"
PARAM_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/app/shared"
OPS_GROUP_ARN = "arn:aws:ssm:us-east-1:123456789012:opsitemgroup/default"
# Delays used by timing tests: long enough that the few calls made "before"
# a delay expires finish in time even on a loaded 2-core machine.
DELAY_MS = 1000
PAST_DELAY = DELAY_MS / 1000 + 0.1

DOC = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
     "Action": "xray:PutTraceSegments", "Resource": "*"}]})


def doc(n: int) -> str:
    """A distinct, valid policy document."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": f"s{n}", "Effect": "Allow", "Principal": {"AWS": "111122223333"},
         "Action": "ssm:GetParameter", "Resource": "*"}]})


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def start_server():
    proc = subprocess.Popen([sys.executable, SERVER, "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("LISTENING "), f"unexpected first line {line!r}"
    return proc, int(line.split()[1])


@pytest.fixture(scope="session")
def server():
    proc, port = start_server()
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


class Control:
    """Tiny client for the /_fake/ control API."""

    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        payload = json.dumps(body).encode() if body is not None else b""
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        conn.close()
        return resp.status, data

    def post(self, path, body=None):
        status, data = self.call("POST", path, body or {})
        assert status == 200, data
        return data

    def state(self):
        status, data = self.call("GET", "/_fake/state")
        assert status == 200
        return data


@pytest.fixture
def control(server):
    ctl = Control(server)
    ctl.post("/_fake/reset")
    return ctl


def make_client(port, service, region=REGION, attempts=1, validate=True, read_timeout=60):
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=region,
        aws_access_key_id="AKIDTESTPEER",
        aws_secret_access_key="test-secret",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                      parameter_validation=validate, read_timeout=read_timeout),
    )


@pytest.fixture
def xray(server, control):
    return make_client(server, "xray")


@pytest.fixture
def amp(server, control):
    return make_client(server, "amp")


@pytest.fixture
def ssm(server, control):
    return make_client(server, "ssm")


def error_of(excinfo):
    """(code, message, http status, full error response) of a ClientError."""
    response = excinfo.value.response
    return (response["Error"]["Code"], response["Error"].get("Message", ""),
            response["ResponseMetadata"]["HTTPStatusCode"], response)


def wait_until(predicate, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


# --------------------------------------------------------------------------
# Process behaviour
# --------------------------------------------------------------------------

def test_prints_listening_and_exits_cleanly_on_sigterm():
    proc, port = start_server()
    assert port > 0
    ctl = Control(port)
    assert ctl.state()["calls"] == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read() == "", "only the LISTENING line may go to stdout"


def test_keep_alive_serves_many_requests_on_one_connection(server, control):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    sock_ids = set()
    for i in range(5):
        body = json.dumps({"PolicyName": f"p{i % 2}", "PolicyDocument": DOC}).encode()
        conn.request("POST", "/PutResourcePolicy", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert int(resp.getheader("Content-Length")) == len(resp.read())
        sock_ids.add(id(conn.sock))
        # an error response on the same connection must be framed correctly too
        conn.request("POST", "/DeleteResourcePolicy", body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 400 and resp.getheader("x-amzn-ErrorType") == "InvalidRequestException"
        json.loads(resp.read())
    assert len(sock_ids) == 1, "server closed the keep-alive connection"
    conn.close()


# --------------------------------------------------------------------------
# X-Ray
# --------------------------------------------------------------------------

def test_xray_create_update_list_delete(xray):
    created = xray.put_resource_policy(PolicyName="ingest", PolicyDocument=DOC)["ResourcePolicy"]
    assert created["PolicyName"] == "ingest" and created["PolicyRevisionId"] == "1"
    assert created["LastUpdatedTime"].year >= 2024  # epoch seconds parsed as a timestamp

    updated = xray.put_resource_policy(PolicyName="ingest", PolicyDocument=doc(2),
                                       PolicyRevisionId="1")["ResourcePolicy"]
    assert updated["PolicyRevisionId"] == "2" and updated["PolicyDocument"] == doc(2)

    listed = xray.list_resource_policies()["ResourcePolicies"]
    assert [(p["PolicyName"], p["PolicyRevisionId"], p["PolicyDocument"]) for p in listed] == \
        [("ingest", "2", doc(2))]

    xray.delete_resource_policy(PolicyName="ingest", PolicyRevisionId="2")
    assert xray.list_resource_policies()["ResourcePolicies"] == []
    # deleting a name that does not exist (without a revision) succeeds
    xray.delete_resource_policy(PolicyName="ingest")


def test_xray_revision_conflicts(xray):
    xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC, PolicyRevisionId="0")
    with pytest.raises(ClientError) as exc:
        xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC, PolicyRevisionId="0")
    assert error_of(exc)[0] == "InvalidPolicyRevisionIdException" and error_of(exc)[2] == 400
    assert isinstance(exc.value, xray.exceptions.InvalidPolicyRevisionIdException)

    xray.put_resource_policy(PolicyName="p", PolicyDocument=doc(2))  # upsert -> revision 2
    with pytest.raises(ClientError) as exc:
        xray.put_resource_policy(PolicyName="p", PolicyDocument=doc(3), PolicyRevisionId="1")
    assert error_of(exc)[0] == "InvalidPolicyRevisionIdException"
    with pytest.raises(ClientError) as exc:
        xray.delete_resource_policy(PolicyName="p", PolicyRevisionId="1")
    assert error_of(exc)[0] == "InvalidPolicyRevisionIdException"
    with pytest.raises(ClientError) as exc:
        xray.put_resource_policy(PolicyName="absent", PolicyDocument=DOC, PolicyRevisionId="7")
    assert error_of(exc)[0] == "InvalidPolicyRevisionIdException"
    assert xray.list_resource_policies()["ResourcePolicies"][0]["PolicyDocument"] == doc(2)


def test_xray_revision_keeps_increasing_after_recreate(xray):
    xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC)
    xray.delete_resource_policy(PolicyName="p")
    again = xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC, PolicyRevisionId="0")
    assert again["ResourcePolicy"]["PolicyRevisionId"] == "2"


def test_xray_policies_are_per_region(server, xray):
    xray.put_resource_policy(PolicyName="east", PolicyDocument=DOC)
    west = make_client(server, "xray", region="eu-west-1")
    assert west.list_resource_policies()["ResourcePolicies"] == []
    west.put_resource_policy(PolicyName="west", PolicyDocument=DOC)
    assert [p["PolicyName"] for p in xray.list_resource_policies()["ResourcePolicies"]] == ["east"]


def test_xray_document_and_count_limits(xray):
    with pytest.raises(ClientError) as exc:
        xray.put_resource_policy(PolicyName="bad", PolicyDocument="not json")
    assert error_of(exc)[0] == "MalformedPolicyDocumentException"
    with pytest.raises(ClientError) as exc:
        xray.put_resource_policy(PolicyName="big", PolicyDocument=json.dumps({"pad": "x" * 5200}))
    assert error_of(exc)[0] == "PolicySizeLimitExceededException"

    for i in range(5):
        xray.put_resource_policy(PolicyName=f"p{i}", PolicyDocument=DOC)
    with pytest.raises(ClientError) as exc:
        xray.put_resource_policy(PolicyName="p5", PolicyDocument=DOC)
    assert error_of(exc)[0] == "PolicyCountLimitExceededException"
    xray.put_resource_policy(PolicyName="p4", PolicyDocument=doc(9))  # updating within the limit is fine


def test_xray_validation_names_the_member(server, control):
    raw = make_client(server, "xray", validate=False)
    with pytest.raises(ClientError) as exc:
        raw.put_resource_policy(PolicyDocument=DOC)
    code, message, status, _ = error_of(exc)
    assert (code, status) == ("InvalidRequestException", 400)
    assert "'policyName'" in message and "must not be null" in message
    with pytest.raises(ClientError) as exc:
        raw.put_resource_policy(PolicyName="has space", PolicyDocument=DOC)
    assert "regular expression" in error_of(exc)[1]


# --------------------------------------------------------------------------
# Amazon Managed Service for Prometheus
# --------------------------------------------------------------------------

def test_amp_create_update_delete(amp, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-main"})
    put = amp.put_resource_policy(workspaceId="ws-main", policyDocument=DOC, revisionId="NO_POLICY")
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202 and put["policyStatus"] == "ACTIVE"

    described = amp.describe_resource_policy(workspaceId="ws-main")
    assert (described["policyDocument"], described["policyStatus"], described["revisionId"]) == \
        (DOC, "ACTIVE", put["revisionId"])

    updated = amp.put_resource_policy(workspaceId="ws-main", policyDocument=doc(2), revisionId=put["revisionId"])
    assert updated["revisionId"] != put["revisionId"]

    deleted = amp.delete_resource_policy(workspaceId="ws-main", revisionId=updated["revisionId"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    with pytest.raises(ClientError) as exc:
        amp.describe_resource_policy(workspaceId="ws-main")
    code, _, status, response = error_of(exc)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert response["resourceId"] == "ws-main"


def test_amp_revision_conflicts(amp, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-1"})
    first = amp.put_resource_policy(workspaceId="ws-1", policyDocument=DOC)
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-1", policyDocument=doc(2), revisionId="NO_POLICY")
    code, _, status, response = error_of(exc)
    assert (code, status) == ("ConflictException", 409)
    assert (response["resourceId"], response["resourceType"]) == ("ws-1", "ResourcePolicy")
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-1", policyDocument=doc(2), revisionId="stale")
    assert error_of(exc)[0] == "ConflictException"
    with pytest.raises(ClientError) as exc:
        amp.delete_resource_policy(workspaceId="ws-1", revisionId="stale")
    assert error_of(exc)[0] == "ConflictException"
    assert amp.describe_resource_policy(workspaceId="ws-1")["revisionId"] == first["revisionId"]


def test_amp_status_transitions(amp, control):
    control.post("/_fake/config", {"aps_transition_ms": DELAY_MS})
    control.post("/_fake/workspaces", {"workspaceId": "ws-t"})
    put = amp.put_resource_policy(workspaceId="ws-t", policyDocument=DOC)
    assert put["policyStatus"] == "CREATING"
    assert amp.describe_resource_policy(workspaceId="ws-t")["policyStatus"] == "CREATING"
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-t", policyDocument=doc(2))
    assert error_of(exc)[0] == "ConflictException"

    wait_until(lambda: amp.describe_resource_policy(workspaceId="ws-t")["policyStatus"] == "ACTIVE")
    assert amp.put_resource_policy(workspaceId="ws-t", policyDocument=doc(2))["policyStatus"] == "UPDATING"
    wait_until(lambda: amp.describe_resource_policy(workspaceId="ws-t")["policyStatus"] == "ACTIVE")

    amp.delete_resource_policy(workspaceId="ws-t")
    deleting = amp.describe_resource_policy(workspaceId="ws-t")
    assert deleting["policyStatus"] == "DELETING" and deleting["policyDocument"] == doc(2)
    with pytest.raises(ClientError) as exc:
        amp.delete_resource_policy(workspaceId="ws-t")
    assert error_of(exc)[0] == "ConflictException"

    def gone():
        try:
            amp.describe_resource_policy(workspaceId="ws-t")
            return False
        except ClientError as err:
            return err.response["Error"]["Code"] == "ResourceNotFoundException"
    wait_until(gone)


def test_amp_workspace_creating_conflicts_until_active(amp, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-new", "status": "CREATING", "active_after_ms": DELAY_MS})
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-new", policyDocument=DOC)
    code, _, status, response = error_of(exc)
    assert (code, status, response["resourceType"]) == ("ConflictException", 409, "Workspace")
    time.sleep(PAST_DELAY)
    assert amp.put_resource_policy(workspaceId="ws-new", policyDocument=DOC)["policyStatus"] == "ACTIVE"


def test_amp_real_create_workspace(amp, control):
    control.post("/_fake/config", {"workspace_creation_ms": DELAY_MS})
    created = amp.create_workspace(alias="peer")
    assert created["status"]["statusCode"] == "CREATING" and created["workspaceId"].startswith("ws-")
    assert created["arn"].endswith(":workspace/" + created["workspaceId"])
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId=created["workspaceId"], policyDocument=DOC)
    assert error_of(exc)[0] == "ConflictException"
    wait_until(lambda: amp.describe_workspace(workspaceId=created["workspaceId"])
               ["workspace"]["status"]["statusCode"] == "ACTIVE")
    amp.put_resource_policy(workspaceId=created["workspaceId"], policyDocument=DOC)


def test_amp_unknown_workspace(amp):
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-missing", policyDocument=DOC)
    code, _, status, response = error_of(exc)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert (response["resourceId"], response["resourceType"]) == ("ws-missing", "Workspace")
    assert isinstance(exc.value, amp.exceptions.ResourceNotFoundException)


def test_amp_client_token_idempotency(amp, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-i"})
    token = str(uuid.uuid4())
    first = amp.put_resource_policy(workspaceId="ws-i", policyDocument=DOC, clientToken=token)
    again = amp.put_resource_policy(workspaceId="ws-i", policyDocument=DOC, clientToken=token)
    assert again["revisionId"] == first["revisionId"]
    assert control.state()["aps"]["policies"]["ws-i"]["revisionId"] == first["revisionId"]
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-i", policyDocument=doc(2), clientToken=token)
    assert error_of(exc)[0] == "ConflictException"
    # boto3 fills clientToken itself, so plain repeated calls are distinct requests
    assert amp.put_resource_policy(workspaceId="ws-i", policyDocument=DOC)["revisionId"] != first["revisionId"]

    delete_token = str(uuid.uuid4())
    amp.delete_resource_policy(workspaceId="ws-i", clientToken=delete_token)
    replayed = amp.delete_resource_policy(workspaceId="ws-i", clientToken=delete_token)
    assert replayed["ResponseMetadata"]["HTTPStatusCode"] == 202  # replay, not 404


def test_amp_validation_errors(server, amp, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-v"})
    with pytest.raises(ClientError) as exc:
        amp.put_resource_policy(workspaceId="ws-v", policyDocument="[1, 2]")
    code, _, status, response = error_of(exc)
    assert (code, status, response["reason"]) == ("ValidationException", 400, "FIELD_VALIDATION_FAILED")
    assert [f["name"] for f in response["fieldList"]] == ["policyDocument"]

    raw = make_client(server, "amp", validate=False)
    with pytest.raises(ClientError) as exc:
        raw.put_resource_policy(workspaceId="ws-v")
    code, message, _, response = error_of(exc)
    assert code == "ValidationException" and "'policyDocument'" in message
    assert response["fieldList"][0]["name"] == "policyDocument"


# --------------------------------------------------------------------------
# Systems Manager
# --------------------------------------------------------------------------

def test_ssm_create_update_delete(ssm, control):
    control.post("/_fake/ssm-resources", {"arn": PARAM_ARN})
    created = ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(1))
    uuid.UUID(created["PolicyId"])
    assert len(created["PolicyHash"]) == 64

    listed = ssm.get_resource_policies(ResourceArn=PARAM_ARN)["Policies"]
    assert listed == [{"PolicyId": created["PolicyId"], "PolicyHash": created["PolicyHash"], "Policy": doc(1)}]

    updated = ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(2),
                                      PolicyId=created["PolicyId"], PolicyHash=created["PolicyHash"])
    assert updated["PolicyId"] == created["PolicyId"] and updated["PolicyHash"] != created["PolicyHash"]

    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(3),
                                PolicyId=created["PolicyId"], PolicyHash=created["PolicyHash"])
    assert error_of(exc)[0] == "ResourcePolicyConflictException" and error_of(exc)[2] == 400
    assert isinstance(exc.value, ssm.exceptions.ResourcePolicyConflictException)
    with pytest.raises(ClientError) as exc:
        ssm.delete_resource_policy(ResourceArn=PARAM_ARN, PolicyId=created["PolicyId"],
                                   PolicyHash=created["PolicyHash"])
    assert error_of(exc)[0] == "ResourcePolicyConflictException"
    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(3), PolicyId="nope", PolicyHash="x")
    assert error_of(exc)[0] == "ResourcePolicyNotFoundException"

    ssm.delete_resource_policy(ResourceArn=PARAM_ARN, PolicyId=updated["PolicyId"], PolicyHash=updated["PolicyHash"])
    assert ssm.get_resource_policies(ResourceArn=PARAM_ARN)["Policies"] == []


def test_ssm_pagination(ssm, control):
    control.post("/_fake/ssm-resources", {"arn": PARAM_ARN})
    ids = [ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(i))["PolicyId"] for i in range(5)]
    pages, token = [], None
    while True:
        kwargs = {"ResourceArn": PARAM_ARN, "MaxResults": 2}
        if token:
            kwargs["NextToken"] = token
        page = ssm.get_resource_policies(**kwargs)
        pages.append([p["PolicyId"] for p in page["Policies"]])
        token = page.get("NextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == ids
    with pytest.raises(ClientError) as exc:
        ssm.get_resource_policies(ResourceArn=PARAM_ARN, NextToken="garbage")
    code, _, _, response = error_of(exc)
    assert code == "ResourcePolicyInvalidParameterException" and response["ParameterNames"] == ["NextToken"]


def test_ssm_resource_and_document_rules(ssm, control):
    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(1))
    assert error_of(exc)[0] == "ResourceNotFoundException"

    control.post("/_fake/ssm-resources", {"arn": OPS_GROUP_ARN})
    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=OPS_GROUP_ARN, Policy="{not json")
    assert error_of(exc)[0] == "MalformedResourcePolicyDocumentException"
    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=OPS_GROUP_ARN, Policy=json.dumps({"pad": "x" * 1100}))
    code, _, _, response = error_of(exc)
    assert code == "ResourcePolicyLimitExceededException" and response["Limit"] == 1024

    ssm.put_resource_policy(ResourceArn=OPS_GROUP_ARN, Policy=doc(1))
    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=OPS_GROUP_ARN, Policy=doc(2))
    code, _, _, response = error_of(exc)
    assert code == "ResourcePolicyLimitExceededException" and response["Limit"] == 1


def test_ssm_validation_errors(server, ssm, control):
    control.post("/_fake/ssm-resources", {"arn": PARAM_ARN})
    raw = make_client(server, "ssm", validate=False)
    with pytest.raises(ClientError) as exc:
        raw.delete_resource_policy(ResourceArn=PARAM_ARN, PolicyId="x")
    code, message, status, _ = error_of(exc)
    assert (code, status) == ("ValidationException", 400) and "'policyHash'" in message
    with pytest.raises(ClientError) as exc:
        raw.get_resource_policies(ResourceArn=PARAM_ARN, MaxResults=51)
    assert error_of(exc)[0] == "ValidationException" and "'maxResults'" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(1), PolicyId="abc")
    code, _, _, response = error_of(exc)
    assert code == "ResourcePolicyInvalidParameterException" and response["ParameterNames"] == ["PolicyHash"]


def test_out_of_band_deletion(ssm, amp, control):
    control.post("/_fake/ssm-resources", {"arn": PARAM_ARN})
    ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(1))
    assert control.call("DELETE", "/_fake/ssm-resources?arn=" + PARAM_ARN)[0] == 200
    with pytest.raises(ClientError) as exc:
        ssm.get_resource_policies(ResourceArn=PARAM_ARN)
    assert error_of(exc)[0] == "ResourceNotFoundException"

    control.post("/_fake/workspaces", {"workspaceId": "ws-gone"})
    amp.put_resource_policy(workspaceId="ws-gone", policyDocument=DOC)
    assert control.call("DELETE", "/_fake/workspaces/ws-gone")[0] == 200
    with pytest.raises(ClientError) as exc:
        amp.describe_resource_policy(workspaceId="ws-gone")
    assert error_of(exc)[3]["resourceType"] == "Workspace"
    state = control.state()
    assert state["ssm"]["policies"] == {} and state["aps"]["policies"] == {}


# --------------------------------------------------------------------------
# Eventual consistency
# --------------------------------------------------------------------------

def test_propagation_delay_for_every_read(xray, amp, ssm, control):
    control.post("/_fake/config", {"propagation_delay_ms": DELAY_MS})
    control.post("/_fake/workspaces", {"workspaceId": "ws-p"})
    control.post("/_fake/ssm-resources", {"arn": PARAM_ARN})
    xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC)
    amp.put_resource_policy(workspaceId="ws-p", policyDocument=DOC)
    ssm_v1 = ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(1))
    assert xray.list_resource_policies()["ResourcePolicies"] == []  # a new policy is not yet visible
    with pytest.raises(ClientError) as exc:
        amp.describe_resource_policy(workspaceId="ws-p")
    assert error_of(exc)[0] == "ResourceNotFoundException"
    time.sleep(PAST_DELAY)

    xray.put_resource_policy(PolicyName="p", PolicyDocument=doc(2))
    amp.put_resource_policy(workspaceId="ws-p", policyDocument=doc(2))
    ssm.put_resource_policy(ResourceArn=PARAM_ARN, Policy=doc(2), **{k: ssm_v1[k] for k in ("PolicyId", "PolicyHash")})

    assert xray.list_resource_policies()["ResourcePolicies"][0]["PolicyDocument"] == DOC
    assert amp.describe_resource_policy(workspaceId="ws-p")["policyDocument"] == DOC
    assert ssm.get_resource_policies(ResourceArn=PARAM_ARN)["Policies"][0]["Policy"] == doc(1)
    assert control.state()["xray"]["policies"][REGION][0]["PolicyDocument"] == doc(2)  # truth is immediate

    time.sleep(PAST_DELAY)
    assert xray.list_resource_policies()["ResourcePolicies"][0]["PolicyDocument"] == doc(2)
    assert amp.describe_resource_policy(workspaceId="ws-p")["policyDocument"] == doc(2)
    current = ssm.get_resource_policies(ResourceArn=PARAM_ARN)["Policies"][0]
    assert current["Policy"] == doc(2)

    xray.delete_resource_policy(PolicyName="p")
    ssm.delete_resource_policy(ResourceArn=PARAM_ARN, PolicyId=current["PolicyId"], PolicyHash=current["PolicyHash"])
    assert len(xray.list_resource_policies()["ResourcePolicies"]) == 1  # deleted, still readable
    assert len(ssm.get_resource_policies(ResourceArn=PARAM_ARN)["Policies"]) == 1
    time.sleep(PAST_DELAY)
    assert xray.list_resource_policies()["ResourcePolicies"] == []
    assert ssm.get_resource_policies(ResourceArn=PARAM_ARN)["Policies"] == []


# --------------------------------------------------------------------------
# Fault injection, call log
# --------------------------------------------------------------------------

def test_injected_throttling_parses_as_modeled_errors(xray, amp, ssm, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-f"})
    control.post("/_fake/faults", {"service": "xray", "operation": "PutResourcePolicy", "error": "ThrottledException"})
    control.post("/_fake/faults", {"service": "aps", "error": "ThrottlingException", "retry_after_seconds": 3})
    control.post("/_fake/faults", {"service": "ssm", "error": "ThrottlingException"})

    assert xray.list_resource_policies()["ResourcePolicies"] == []  # operation filter: List unaffected
    with pytest.raises(xray.exceptions.ThrottledException) as exc:
        xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC)
    assert error_of(exc)[2] == 429
    xray.put_resource_policy(PolicyName="p", PolicyDocument=DOC)  # count exhausted

    with pytest.raises(amp.exceptions.ThrottlingException) as exc:
        amp.describe_resource_policy(workspaceId="ws-f")
    _, _, status, response = error_of(exc)
    assert status == 429 and response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3"

    with pytest.raises(ClientError) as exc:
        ssm.get_resource_policies(ResourceArn=PARAM_ARN)
    assert error_of(exc)[:1] == ("ThrottlingException",) and error_of(exc)[2] == 400


def test_injected_server_errors_and_queued_faults(amp, ssm, control):
    control.post("/_fake/workspaces", {"workspaceId": "ws-q"})
    control.post("/_fake/faults", {"service": "aps", "operation": "PutResourcePolicy",
                                   "error": "InternalServerException"})
    control.post("/_fake/faults", {"service": "aps", "operation": "PutResourcePolicy",
                                   "error": "ConflictException"})
    with pytest.raises(amp.exceptions.InternalServerException) as exc:
        amp.put_resource_policy(workspaceId="ws-q", policyDocument=DOC)
    assert error_of(exc)[2] == 500 and error_of(exc)[3]["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    with pytest.raises(amp.exceptions.ConflictException) as exc:
        amp.put_resource_policy(workspaceId="ws-q", policyDocument=DOC)
    assert error_of(exc)[3]["resourceId"] == "ws-q"
    amp.put_resource_policy(workspaceId="ws-q", policyDocument=DOC)

    control.post("/_fake/faults", {"service": "ssm", "error": "InternalServerError"})
    with pytest.raises(ssm.exceptions.InternalServerError) as exc:
        ssm.get_resource_policies(ResourceArn=PARAM_ARN)
    assert error_of(exc)[2] == 500


def test_sdk_retries_through_faults_and_calls_are_logged(server, control):
    control.post("/_fake/faults", {"service": "xray", "error": "ThrottledException", "count": 2})
    retrying = make_client(server, "xray", attempts=3)
    retrying.put_resource_policy(PolicyName="p", PolicyDocument=DOC)
    state = control.state()
    assert [(c["service"], c["operation"], c["status"]) for c in state["calls"]] == \
        [("xray", "PutResourcePolicy", 429)] * 2 + [("xray", "PutResourcePolicy", 200)]
    assert state["call_counts"] == {"xray": {"PutResourcePolicy": 3}}
    assert state["faults"] == []


def test_a_held_response_lands_before_the_client_gives_up(server, control):
    control.post("/_fake/ssm-resources", {"arn": PARAM_ARN})
    control.post("/_fake/faults", {"service": "ssm", "operation": "PutResourcePolicy", "hold_ms": 1500})
    impatient = make_client(server, "ssm", attempts=1, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(Exception):
        impatient.put_resource_policy(ResourceArn=PARAM_ARN, Policy=DOC)
    assert time.monotonic() - started < 1.2, "the client gave up before the held answer"
    # The write took effect although its answer never reached the client.
    policies = make_client(server, "ssm").get_resource_policies(ResourceArn=PARAM_ARN)["Policies"]
    assert len(policies) == 1
    assert control.state()["faults"] == []
    assert control.call("POST", "/_fake/faults", {"service": "ssm", "hold_ms": 0})[0] == 400
    assert control.call("POST", "/_fake/faults", {"service": "ssm", "hold_ms": 5,
                                                  "error": "InternalServerError"})[0] == 400


def test_control_api_rejects_bad_input(control):
    assert control.call("POST", "/_fake/faults", {"service": "xray", "error": "ThrottlingException"})[0] == 400
    assert control.call("POST", "/_fake/faults", {"service": "sqs", "error": "X"})[0] == 400
    assert control.call("POST", "/_fake/faults", {"service": "ssm", "operation": "Nope",
                                                  "error": "ThrottlingException"})[0] == 400
    assert control.call("POST", "/_fake/config", {"propagation_delay": 5})[0] == 400
    assert control.call("GET", "/_fake/nothing")[0] == 404
    # unmodeled names are allowed when the status is explicit
    assert control.call("POST", "/_fake/faults", {"service": "xray", "error": "ServiceUnavailable",
                                                  "status": 503})[0] == 200


def test_unknown_operations(server, control):
    ssm_conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    ssm_conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "AmazonSSM.GetParameter",
                                                       "Content-Type": "application/x-amz-json-1.1"})
    resp = ssm_conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["__type"] == "UnknownOperationException"
    ssm_conn.request("POST", "/GetSamplingRules", body=b"{}")
    resp = ssm_conn.getresponse()
    assert resp.status == 404 and resp.getheader("x-amzn-ErrorType") == "UnknownOperationException"
    resp.read()
    ssm_conn.close()


def test_concurrent_conditional_updates_have_one_winner(server, xray):
    xray.put_resource_policy(PolicyName="race", PolicyDocument=DOC)
    outcomes = []

    def contender(i):
        client = make_client(server, "xray")
        try:
            client.put_resource_policy(PolicyName="race", PolicyDocument=doc(i), PolicyRevisionId="1")
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["InvalidPolicyRevisionIdException"] * 7 + ["ok"]
    assert xray.list_resource_policies()["ResourcePolicies"][0]["PolicyRevisionId"] == "2"

