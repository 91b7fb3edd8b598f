"""Tests for ddb_proxy.py: boto3 against moto's DynamoDB behind the proxy.

moto_server comes from the repository's .venv (scripts/install-peers). A missing
moto fails the tests with that hint; it never skips them.
"""

import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

HERE = Path(__file__).resolve().parent
PROXY = HERE / "ddb_proxy.py"
REPO = HERE.parents[1]
INSTALL_HINT = "run scripts/install-peers (it installs the pinned moto[server] into .venv)"
REGION = "us-east-1"


# --------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} while starting", pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"{what} did not answer on {url} within {timeout_s} s", pytrace=False)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


@pytest.fixture(scope="session")
def moto_url():
    exe = REPO / ".venv" / "bin" / "moto_server"
    if not exe.is_file():
        sibling = Path(sys.executable).parent / "moto_server"
        exe = sibling if sibling.is_file() else exe
    if not exe.is_file():
        pytest.fail(f"moto_server is not installed ({exe} is missing): {INSTALL_HINT}", pytrace=False)
    port = free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/data.json", proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def start_proxy(upstream: str, *args: str, env=None):
    proc = subprocess.Popen([sys.executable, str(PROXY), "--upstream", upstream, "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    line = proc.stdout.readline().strip()
    if not line.startswith("LISTENING "):
        stop(proc)
        pytest.fail(f"ddb_proxy.py did not start: {line!r} {proc.stderr.read()}", pytrace=False)
    return proc, int(line.split()[1])


class Proxy:
    def __init__(self, port: int, moto_url: str):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.moto_url = moto_url

    def admin(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/_proxy/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ok(self, method: str, path: str, body=None):
        status, data = self.admin(method, path, body)
        assert status == 200, f"{method} /_proxy/{path}: {status} {data}"
        return data

    def arn(self, arn: str) -> dict:
        return self.ok("GET", "stats")["arns"].get(arn, {})

    def client(self, attempts: int = 1, **config):
        return ddb(self.url, attempts, **config)


def ddb(url: str, attempts: int = 1, **config):
    """boto3 DynamoDB client; `attempts` counts the first try (1: no retries)."""
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=url, region_name=REGION,
        aws_access_key_id="AKIDTEST", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                      connect_timeout=5, read_timeout=30, **config))


@pytest.fixture
def proxy(moto_url):
    """A fresh proxy (lock 1000 ms) in front of the session's moto."""
    proc, port = start_proxy(moto_url, "--lock-ms", "1000")
    try:
        yield Proxy(port, moto_url)
    finally:
        assert stop(proc) == 0, "the proxy should exit 0 on SIGTERM"


@pytest.fixture
def table(proxy):
    """A new table on moto (made through the proxy); returns its ARN."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client = proxy.client()
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    return client.describe_table(TableName=name)["Table"]["TableArn"]


def policy(arn: str, sid: str = "A") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "dynamodb:GetItem", "Resource": arn}]})


def code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def wait_for(predicate, what: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.01)


# --------------------------------------------------------------------------
# The update lock
# --------------------------------------------------------------------------

def test_a_write_locks_its_arn_for_the_configured_time(proxy, table):
    client = proxy.client()
    rev = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))["RevisionId"]
    for call in (lambda: client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B")),
                 lambda: client.delete_resource_policy(ResourceArn=table)):
        with pytest.raises(ClientError) as err:
            call()
        assert code(err.value) == "ResourceInUseException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "blocked for 1000 ms" in err.value.response["Error"]["Message"]
    # Reads pass during the lock, and the refused writes changed nothing.
    got = client.get_resource_policy(ResourceArn=table)
    assert (got["RevisionId"], json.loads(got["Policy"])["Statement"][0]["Sid"]) == (rev, "A")
    stats = proxy.arn(table)
    assert (stats["writes"], stats["puts"], stats["locked"]) == (1, 1, 2), stats
    assert 0 < stats["locked_for_ms"] <= 1000

    time.sleep(1.05)
    assert proxy.arn(table)["locked_for_ms"] == 0
    client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"))
    # A delete is an update too: it locks, and it is refused under the lock.
    time.sleep(1.05)
    client.delete_resource_policy(ResourceArn=table)
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "C"))
    assert code(err.value) == "ResourceInUseException"
    stats = proxy.arn(table)
    assert (stats["writes"], stats["puts"], stats["deletes"], stats["locked"]) == (3, 2, 1, 3), stats
    assert [e["outcome"] for e in proxy.ok("GET", "log")["writes"]] == [
        "written", "locked", "locked", "written", "written", "locked"]


def test_the_lock_is_per_arn_and_only_a_write_that_landed_locks(proxy, table):
    client = proxy.client()
    second = f"t-{uuid.uuid4().hex[:10]}"
    client.create_table(TableName=second, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    second_arn = client.describe_table(TableName=second)["Table"]["TableArn"]
    client.put_resource_policy(ResourceArn=table, Policy=policy(table))
    client.put_resource_policy(ResourceArn=second_arn, Policy=policy(second_arn))  # its own lock
    # A failed write (moto's error) and a failed precondition do not lock.
    missing = table + "-missing"
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=missing, Policy=policy(missing))
    assert code(err.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError):
        client.delete_resource_policy(ResourceArn=missing)
    third = f"t-{uuid.uuid4().hex[:10]}"
    client.create_table(TableName=third, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    third_arn = client.describe_table(TableName=third)["Table"]["TableArn"]
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=third_arn, Policy=policy(third_arn), ExpectedRevisionId="1")
    assert code(err.value) == "PolicyNotFoundException"
    client.put_resource_policy(ResourceArn=third_arn, Policy=policy(third_arn))
    stats = proxy.ok("GET", "stats")["arns"]
    assert stats[missing]["errors"] == 2 and stats[missing]["locked_for_ms"] == 0
    assert [stats[a]["writes"] for a in (table, second_arn, third_arn)] == [1, 1, 1]
    assert stats[third_arn]["precondition_failed"] == 1 and stats[third_arn]["locked"] == 0


def test_lock_zero_disables_it_and_config_changes_apply_to_later_writes(proxy, table):
    assert proxy.ok("POST", "config", {"lock_ms": 0}) == {"lock_ms": 0}
    client = proxy.client()
    revisions = [client.put_resource_policy(ResourceArn=table, Policy=policy(table, f"S{i}"))["RevisionId"]
                 for i in range(5)]
    assert len(set(revisions)) == 5, f"every changed policy gets its own revision: {revisions}"
    # Raising the lock counts from the last write, whenever it was made.
    assert proxy.ok("POST", "config", {"lock_ms": 60_000}) == {"lock_ms": 60_000}
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "late"))
    assert code(err.value) == "ResourceInUseException"
    proxy.ok("POST", "unlock", {"arn": table})
    client.put_resource_policy(ResourceArn=table, Policy=policy(table, "late"))
    assert proxy.arn(table)["writes"] == 6


def test_lock_from_the_command_line_and_the_environment(moto_url):
    proc, port = start_proxy(moto_url, env={"DDB_PROXY_LOCK_MS": "2500"})
    try:
        assert Proxy(port, moto_url).ok("GET", "config") == {"lock_ms": 2500}
    finally:
        assert stop(proc) == 0
    proc, port = start_proxy(moto_url, "--lock-ms", "0", env={"DDB_PROXY_LOCK_MS": "2500"})
    try:
        assert Proxy(port, moto_url).ok("GET", "config") == {"lock_ms": 0}
    finally:
        assert stop(proc) == 0
    proc, port = start_proxy(moto_url)
    try:
        assert Proxy(port, moto_url).ok("GET", "config") == {"lock_ms": 15000}
    finally:
        assert stop(proc) == 0


# --------------------------------------------------------------------------
# ExpectedRevisionId as DynamoDB answers it
# --------------------------------------------------------------------------

def test_a_revision_when_no_policy_exists_is_policy_not_found(proxy, table):
    proxy.ok("POST", "config", {"lock_ms": 0})
    client = proxy.client()
    direct = ddb(proxy.moto_url)
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=table, Policy=policy(table), ExpectedRevisionId="1700000000000")
    assert code(err.value) == "PolicyNotFoundException"
    assert "revision id 1700000000000" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        direct.get_resource_policy(ResourceArn=table)
    assert code(err.value) == "PolicyNotFoundException", "the refused put must not reach moto"
    # A guarded delete of a missing policy: moto says ResourceNotFoundException, DynamoDB this.
    with pytest.raises(ClientError) as err:
        client.delete_resource_policy(ResourceArn=table, ExpectedRevisionId="1700000000000")
    assert code(err.value) == "PolicyNotFoundException"
    # NO_POLICY is the create-only guard: it passes when nothing is there.
    rev = client.put_resource_policy(ResourceArn=table, Policy=policy(table), ExpectedRevisionId="NO_POLICY")["RevisionId"]
    assert direct.get_resource_policy(ResourceArn=table)["RevisionId"] == rev
    stats = proxy.arn(table)
    assert (stats["precondition_failed"], stats["writes"]) == (2, 1), stats


def test_a_stale_revision_is_refused_and_the_current_one_passes(proxy, table):
    proxy.ok("POST", "config", {"lock_ms": 0})
    client = proxy.client()
    first = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))["RevisionId"]
    second = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"),
                                        ExpectedRevisionId=first)["RevisionId"]
    assert second != first
    for call in (lambda: client.put_resource_policy(ResourceArn=table, Policy=policy(table, "C"),
                                                    ExpectedRevisionId=first),
                 lambda: client.delete_resource_policy(ResourceArn=table, ExpectedRevisionId=first),
                 lambda: client.put_resource_policy(ResourceArn=table, Policy=policy(table, "C"),
                                                    ExpectedRevisionId="NO_POLICY")):
        with pytest.raises(ClientError) as err:
            call()
        assert code(err.value) == "PolicyNotFoundException"
    got = client.get_resource_policy(ResourceArn=table)
    assert (got["RevisionId"], json.loads(got["Policy"])["Statement"][0]["Sid"]) == (second, "B")
    client.delete_resource_policy(ResourceArn=table, ExpectedRevisionId=second)
    with pytest.raises(ClientError) as err:
        client.get_resource_policy(ResourceArn=table)
    assert code(err.value) == "PolicyNotFoundException"
    # The race the proxy exists for: the last statement was deleted, then a stale
    # guarded write arrives. It must not re-create the policy.
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"), ExpectedRevisionId=second)
    assert code(err.value) == "PolicyNotFoundException"
    stats = proxy.arn(table)
    assert (stats["writes"], stats["puts"], stats["deletes"], stats["precondition_failed"]) == (3, 2, 1, 4), stats


def test_the_lock_is_checked_before_the_revision(proxy, table):
    client = proxy.client()
    rev = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))["RevisionId"]
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"), ExpectedRevisionId="stale")
    assert code(err.value) == "ResourceInUseException"
    time.sleep(1.05)
    client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"), ExpectedRevisionId=rev)


# --------------------------------------------------------------------------
# Faults: hold, lost reply
# --------------------------------------------------------------------------

def test_a_held_write_is_overtaken_and_then_decided_on_the_state_it_finds(proxy, table):
    proxy.ok("POST", "config", {"lock_ms": 0})
    client = proxy.client()
    rev = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))["RevisionId"]
    faults = proxy.ok("POST", "faults", {"kind": "hold", "arn": table, "operation": "PutResourcePolicy",
                                         "ms": 1500, "count": 1})["faults"]
    assert faults == [{"kind": "hold", "arn": table, "operation": "PutResourcePolicy", "count": 1, "ms": 1500}]
    outcome = {}
    stale_client = proxy.client()  # made here: a first client takes a while to build

    def stale_writer():
        t0 = time.monotonic()
        try:
            stale_client.put_resource_policy(ResourceArn=table, Policy=policy(table, "stale"),
                                             ExpectedRevisionId=rev)
            outcome["result"] = "written"
        except ClientError as exc:
            outcome["result"] = code(exc)
        outcome["took"] = time.monotonic() - t0

    thread = threading.Thread(target=stale_writer)
    thread.start()
    wait_for(lambda: proxy.arn(table).get("held") == 1, "the stale write to be held")
    assert proxy.ok("GET", "faults")["faults"] == [], "the hold was taken by the first write"
    # The fresh writer overtakes the held one (another write, not held).
    fresh = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "fresh"), ExpectedRevisionId=rev)
    assert thread.is_alive() and not outcome, "the fresh write overtook the held one"
    thread.join(10)
    assert outcome["result"] == "PolicyNotFoundException", outcome
    assert outcome["took"] >= 1.5
    got = client.get_resource_policy(ResourceArn=table)
    assert (got["RevisionId"], json.loads(got["Policy"])["Statement"][0]["Sid"]) == (fresh["RevisionId"], "fresh")
    stats = proxy.arn(table)
    assert (stats["held"], stats["writes"], stats["precondition_failed"]) == (1, 2, 1), stats


def test_a_held_unguarded_write_lands_last_and_wins(proxy, table):
    proxy.ok("POST", "config", {"lock_ms": 0})
    proxy.ok("POST", "faults", {"kind": "hold", "arn": table, "ms": 1500})
    slow_client = proxy.client()
    thread = threading.Thread(target=lambda: slow_client.put_resource_policy(
        ResourceArn=table, Policy=policy(table, "slow")))
    thread.start()
    wait_for(lambda: proxy.arn(table).get("held") == 1, "the slow write to be held")
    proxy.client().put_resource_policy(ResourceArn=table, Policy=policy(table, "quick"))
    thread.join(10)
    got = proxy.client().get_resource_policy(ResourceArn=table)
    assert json.loads(got["Policy"])["Statement"][0]["Sid"] == "slow"
    assert [e["outcome"] for e in proxy.ok("GET", "log")["writes"]] == ["written", "written"]


def test_a_lost_reply_lands_the_write_and_drops_the_connection(proxy, table):
    proxy.ok("POST", "config", {"lock_ms": 0})
    proxy.ok("POST", "faults", {"kind": "lose_reply", "arn": table, "operation": "PutResourcePolicy"})
    client = proxy.client()
    with pytest.raises(ConnectionClosedError):
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))
    got = client.get_resource_policy(ResourceArn=table)
    assert json.loads(got["Policy"])["Statement"][0]["Sid"] == "A", "the write landed"
    # The next write is answered.
    client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"))
    stats = proxy.arn(table)
    assert (stats["writes"], stats["lost_replies"]) == (2, 1), stats
    assert [e["outcome"] for e in proxy.ok("GET", "log")["writes"]] == ["lost_reply", "written"]


def test_a_retried_guarded_write_after_a_lost_reply_meets_its_own_revision(proxy, table):
    """The SDK retries a dropped connection; the retry's ExpectedRevisionId is now stale."""
    proxy.ok("POST", "config", {"lock_ms": 0})
    client = proxy.client(attempts=2)
    rev = client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))["RevisionId"]
    proxy.ok("POST", "faults", {"kind": "lose_reply", "arn": table})
    with pytest.raises(ClientError) as err:
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"), ExpectedRevisionId=rev)
    assert code(err.value) == "PolicyNotFoundException"
    assert err.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    got = client.get_resource_policy(ResourceArn=table)
    assert json.loads(got["Policy"])["Statement"][0]["Sid"] == "B"
    stats = proxy.arn(table)
    assert (stats["writes"], stats["lost_replies"], stats["precondition_failed"]) == (2, 1, 1), stats


def test_a_lost_reply_fault_waits_for_a_write_that_lands(proxy, table):
    client = proxy.client()
    client.put_resource_policy(ResourceArn=table, Policy=policy(table, "A"))
    proxy.ok("POST", "faults", {"kind": "lose_reply", "arn": table})
    with pytest.raises(ClientError) as err:  # locked: refused, answered, fault kept
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"))
    assert code(err.value) == "ResourceInUseException"
    assert len(proxy.ok("GET", "faults")["faults"]) == 1
    proxy.ok("POST", "unlock", {})
    with pytest.raises(ConnectionClosedError):
        client.put_resource_policy(ResourceArn=table, Policy=policy(table, "B"))
    assert proxy.ok("GET", "faults")["faults"] == []


def test_faults_match_only_their_arn_and_operation(proxy, table):
    proxy.ok("POST", "config", {"lock_ms": 0})
    client = proxy.client()
    proxy.ok("POST", "faults", {"kind": "lose_reply", "arn": table + "-other"})
    proxy.ok("POST", "faults", {"kind": "lose_reply", "arn": table, "operation": "DeleteResourcePolicy"})
    client.put_resource_policy(ResourceArn=table, Policy=policy(table))  # neither matches
    with pytest.raises(ConnectionClosedError):
        client.delete_resource_policy(ResourceArn=table)
    assert proxy.ok("GET", "faults")["faults"] == [
        {"kind": "lose_reply", "arn": table + "-other", "operation": None, "count": 1}]
    proxy.ok("DELETE", "faults")
    assert proxy.ok("GET", "faults")["faults"] == []


# --------------------------------------------------------------------------
# Passthrough
# --------------------------------------------------------------------------

def test_other_operations_and_errors_pass_unchanged(proxy, table):
    client = proxy.client()
    name = table.rsplit("/", 1)[1]
    client.put_item(TableName=name, Item={"k": {"S": "one"}, "v": {"N": "1"}})
    assert client.get_item(TableName=name, Key={"k": {"S": "one"}})["Item"]["v"] == {"N": "1"}
    assert name in client.list_tables()["TableNames"]
    with pytest.raises(ClientError) as err:  # moto's own answer, untouched
        client.get_resource_policy(ResourceArn=table)
    assert code(err.value) == "PolicyNotFoundException"
    with pytest.raises(ClientError) as err:
        client.describe_table(TableName="no-such-table-" + uuid.uuid4().hex[:6])
    assert code(err.value) == "ResourceNotFoundException"
    # Another service through the same port (moto routes by the signing scope).
    sqs = boto3.session.Session().client("sqs", endpoint_url=proxy.url, region_name=REGION,
                                         aws_access_key_id="AKIDTEST", aws_secret_access_key="test")
    assert sqs.create_queue(QueueName="q-" + uuid.uuid4().hex[:6])["QueueUrl"]
    stats = proxy.ok("GET", "stats")
    assert stats["requests"]["PutItem"] == 1 and stats["requests"]["GetResourcePolicy"] == 1
    assert stats["totals"]["writes"] == 0 and stats["arns"] == {}


def test_the_raw_request_reaches_the_upstream_byte_for_byte():
    """Signatures stay valid: method, path, headers and body are forwarded as sent."""
    seen = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.command, self.path, list(self.headers.items()), body))
            reply = b'{"RevisionId":"r1"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("x-amz-crc32", "0")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *a):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proc, port = start_proxy(f"http://127.0.0.1:{upstream.server_address[1]}", "--lock-ms", "0")
    try:
        body = b'{"ResourceArn":"arn:aws:dynamodb:us-east-1:123456789012:table/x","Policy":"{}"}'
        headers = {"Host": "ddb.example:1", "X-Amz-Target": "DynamoDB_20120810.PutResourcePolicy",
                   "Content-Type": "application/x-amz-json-1.0", "X-Amz-Date": "20261130T000000Z",
                   "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/dynamodb/aws4_request, "
                                    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=abc123"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/?q=1", body=body, headers=headers)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b'{"RevisionId":"r1"}')
        assert resp.getheader("x-amz-crc32") == "0", "response headers pass back"
        method, path, got_headers, got_body = seen[0]
        assert (method, path, got_body) == ("POST", "/?q=1", body)
        got = {k.lower(): v for k, v in got_headers}
        for name, value in headers.items():
            assert got[name.lower()] == value, f"{name} changed on the way"
        assert got["content-length"] == str(len(body))
    finally:
        assert stop(proc) == 0
        upstream.shutdown()


# --------------------------------------------------------------------------
# The admin API
# --------------------------------------------------------------------------

def test_reset_clears_counts_locks_faults_and_config(proxy, table):
    client = proxy.client()
    client.put_resource_policy(ResourceArn=table, Policy=policy(table))
    proxy.ok("POST", "config", {"lock_ms": 60_000})
    proxy.ok("POST", "faults", {"kind": "hold", "ms": 10})
    after = proxy.ok("POST", "reset")
    assert after == {"config": {"lock_ms": 1000}, "totals": dict.fromkeys(
        ["writes", "puts", "deletes", "locked", "precondition_failed", "errors", "held", "lost_replies"], 0),
        "arns": {}, "requests": {}, "faults": []}
    client.put_resource_policy(ResourceArn=table, Policy=policy(table, "again"))  # no lock left
    assert proxy.ok("GET", "log")["writes"][0]["outcome"] == "written"


@pytest.mark.parametrize("method,path,body,status", [
    ("POST", "config", {"lock_ms": -1}, 400),
    ("POST", "config", {"lock_ms": "15"}, 400),
    ("POST", "config", {"lock": 5}, 400),
    ("POST", "faults", {"kind": "hold"}, 400),
    ("POST", "faults", {"kind": "hold", "ms": 5, "count": 0}, 400),
    ("POST", "faults", {"kind": "drop", "ms": 5}, 400),
    ("POST", "faults", {"kind": "lose_reply", "operation": "GetResourcePolicy"}, 400),
    ("POST", "faults", {"kind": "lose_reply", "ms": 5}, 400),
    ("POST", "faults", [1], 400),
    ("GET", "nothing-here", None, 404),
])
def test_admin_refuses_what_it_does_not_know(proxy, method, path, body, status):
    got, data = proxy.admin(method, path, body)
    assert got == status, data
    assert data["error"]
