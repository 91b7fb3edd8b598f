"""The same X-Ray and SSM scenarios against our test server and, in the opt-in
conformance run, against fakecloud: an emulator we did not write, so the test server is
checked against an independent reading of the same APIs.

Default run: only policy_server.py. `CONFORMANCE=1` (see scripts/conformance) adds
fakecloud, which must then be installed (`cargo install fakecloud --version 0.51.0`);
its absence fails the run rather than skipping it. Each scenario asserts only what the
AWS API reference documents; undocumented behaviour is left to the README's notes.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ["policy_server"] + (["fakecloud"] if os.environ.get("CONFORMANCE") == "1" else [])


def doc(sid):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": sid, "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "ssm:GetParameter", "Resource": "*"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, "the peer exited during startup"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port} after {seconds}s")


class Peer:
    def __init__(self, kind):
        self.kind = kind
        if kind == "policy_server":
            self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "policy_server.py"), "--port", "0"],
                                         stdout=subprocess.PIPE, text=True)
            self.port = int(self.proc.stdout.readline().split()[1])
        else:
            binary = os.environ.get("FAKECLOUD_BIN") or shutil.which("fakecloud")
            assert binary, "fakecloud is not installed: run `cargo install fakecloud --version 0.51.0` (or set FAKECLOUD_BIN)"
            self.port = free_port()
            self.proc = subprocess.Popen([binary, "--addr", f"127.0.0.1:{self.port}"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_listening(self.port, self.proc)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"max_attempts": 1}))

    def parameter(self):
        """An SSM parameter that can carry a policy; returns its ARN."""
        name = f"/conformance/{uuid.uuid4().hex[:8]}"
        arn = f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"
        if self.kind == "policy_server":
            req = urllib.request.Request(f"{self.endpoint}/_fake/ssm-resources", json.dumps({"arn": arn}).encode(),
                                         {"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(req).read()
        else:
            ssm = self.client("ssm")
            ssm.put_parameter(Name=name, Value="v", Type="String", Tier="Advanced")
            arn = ssm.get_parameter(Name=name)["Parameter"]["ARN"]
        return arn

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(params=PEERS)
def peer(request):
    p = Peer(request.param)
    yield p
    p.stop()


# Where fakecloud 0.51.0 departs from the documented API (measured by scripts/conformance).
# Strict: if fakecloud starts to agree, the run fails and this list must shrink.
FAKECLOUD_DEPARTS = {
    "test_xray_revision_preconditions": "fakecloud ignores PolicyRevisionId (a stale id and \"0\" on an existing policy both succeed)",
    "test_xray_malformed_document_is_refused": "fakecloud accepts an X-Ray PolicyDocument that is not JSON",
    "test_ssm_policy_on_a_missing_parameter_is_refused": "fakecloud accepts an SSM policy on a parameter that does not exist",
}


@pytest.fixture(autouse=True)
def known_departures(request):
    peer = request.node.callspec.params.get("peer") if hasattr(request.node, "callspec") else None
    reason = FAKECLOUD_DEPARTS.get(request.node.originalname)
    if peer == "fakecloud" and reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_xray_put_list_update_delete(peer):
    xray = peer.client("xray")
    name = f"conf-{uuid.uuid4().hex[:8]}"
    first = xray.put_resource_policy(PolicyName=name, PolicyDocument=doc("a"))["ResourcePolicy"]
    assert first["PolicyName"] == name and first["PolicyRevisionId"]
    listed = {p["PolicyName"]: p for p in xray.list_resource_policies()["ResourcePolicies"]}
    assert json.loads(listed[name]["PolicyDocument"]) == json.loads(doc("a"))
    assert listed[name]["PolicyRevisionId"] == first["PolicyRevisionId"]

    second = xray.put_resource_policy(PolicyName=name, PolicyDocument=doc("b"))["ResourcePolicy"]
    assert second["PolicyRevisionId"] != first["PolicyRevisionId"]
    xray.delete_resource_policy(PolicyName=name)
    assert name not in [p["PolicyName"] for p in xray.list_resource_policies()["ResourcePolicies"]]


def test_xray_revision_preconditions(peer):
    xray = peer.client("xray")
    name = f"conf-{uuid.uuid4().hex[:8]}"
    rev = xray.put_resource_policy(PolicyName=name, PolicyDocument=doc("a"))["ResourcePolicy"]["PolicyRevisionId"]
    with pytest.raises(ClientError) as stale:
        xray.put_resource_policy(PolicyName=name, PolicyDocument=doc("b"), PolicyRevisionId=rev + "-stale")
    assert error_code(stale) == "InvalidPolicyRevisionIdException"
    with pytest.raises(ClientError) as create_only:
        xray.put_resource_policy(PolicyName=name, PolicyDocument=doc("b"), PolicyRevisionId="0")
    assert error_code(create_only) == "InvalidPolicyRevisionIdException"
    updated = xray.put_resource_policy(PolicyName=name, PolicyDocument=doc("b"), PolicyRevisionId=rev)
    assert updated["ResourcePolicy"]["PolicyRevisionId"] != rev
    xray.delete_resource_policy(PolicyName=name)


def test_xray_malformed_document_is_refused(peer):
    with pytest.raises(ClientError) as bad:
        peer.client("xray").put_resource_policy(PolicyName="conf-bad", PolicyDocument="not json")
    assert error_code(bad) == "MalformedPolicyDocumentException"


def test_ssm_policy_id_and_hash_lifecycle(peer):
    ssm = peer.client("ssm")
    arn = peer.parameter()
    put = ssm.put_resource_policy(ResourceArn=arn, Policy=doc("a"))
    pid, first_hash = put["PolicyId"], put["PolicyHash"]
    listed = ssm.get_resource_policies(ResourceArn=arn)["Policies"]
    assert [(p["PolicyId"], p["PolicyHash"]) for p in listed] == [(pid, first_hash)]
    assert json.loads(listed[0]["Policy"]) == json.loads(doc("a"))

    updated = ssm.put_resource_policy(ResourceArn=arn, Policy=doc("b"), PolicyId=pid, PolicyHash=first_hash)
    assert updated["PolicyId"] == pid and updated["PolicyHash"] != first_hash
    with pytest.raises(ClientError) as stale:
        ssm.put_resource_policy(ResourceArn=arn, Policy=doc("c"), PolicyId=pid, PolicyHash=first_hash)
    assert error_code(stale) == "ResourcePolicyConflictException"

    ssm.delete_resource_policy(ResourceArn=arn, PolicyId=pid, PolicyHash=updated["PolicyHash"])
    assert ssm.get_resource_policies(ResourceArn=arn)["Policies"] == []


def test_ssm_policy_on_a_missing_parameter_is_refused(peer):
    with pytest.raises(ClientError) as missing:
        peer.client("ssm").put_resource_policy(
            ResourceArn="arn:aws:ssm:us-east-1:123456789012:parameter/conformance/none", Policy=doc("a"))
    assert error_code(missing) == "ResourceNotFoundException"
