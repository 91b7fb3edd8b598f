"""Integration-test harness: peer processes (ministack, moto, microburst and the
project's tests/peers/policy_server.py), boto3 clients pointed at them, Lambda
code upload and CloudFormation stack deployment.

Everything listens on 127.0.0.1 only. Facts this relies on are in PEERS.md.
The fixtures that wire these together live in conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import boto3
import yaml
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
INSTALL_HINT = "run scripts/install-peers (then use .venv/bin/pytest tests/integration)"

REGION = "us-east-1"
# ministack takes a 12-digit access key as the account id and defaults to
# 000000000000 otherwise; moto always answers for 123456789012.
DUMMY_ACCESS_KEY = "test"
DUMMY_SECRET_KEY = "test"
MINISTACK_ACCOUNT = "000000000000"
MOTO_ACCOUNT = "123456789012"


class PeerError(RuntimeError):
    """A peer could not be found, started or reached."""


# --------------------------------------------------------------------------
# tools and ports
# --------------------------------------------------------------------------


def venv_tool(name: str) -> Path:
    """Path of an executable installed in the repo's .venv, or PeerError."""
    path = VENV_BIN / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PeerError(f"{name} is not installed at {path}: {INSTALL_HINT}")
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the caller retries on a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# peer processes
# --------------------------------------------------------------------------


@dataclasses.dataclass
class PeerProcess:
    """A peer started as its own process group; stop() ends that group only."""

    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    started_s: float = 0.0  # seconds from spawn to ready

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the peer's process group (the peer plus any Lambda bootstrap it
        spawned), then SIGKILL what is left after grace_s."""
        if self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session=True: the peer leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Children that outlived the leader (a bootstrap mid-request).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def start_peer(
    name: str,
    argv_for_port: Callable[[int], list[str]],
    env_for_port: Callable[[int], dict[str, str]],
    ready_url_for_port: Callable[[int], str],
    log_dir: Path,
    ready_timeout_s: float = 60.0,
    attempts: int = 3,
) -> PeerProcess:
    """Start a peer on a free loopback port and wait until ready_url answers 200.

    Retries on a new port if the process dies early (a lost port race)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = log_dir / f"{name}-{port}.log"
        log_fh = open(log_path, "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv_for_port(port),
            env=env_for_port(port),
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(log_dir),
        )
        log_fh.close()
        peer = PeerProcess(name, port, proc, log_path)
        deadline = t0 + ready_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"{name} exited with {proc.returncode} during start:\n{peer.log_tail()}"
                break
            if _http_status(ready_url_for_port(port)) == 200:
                peer.started_s = time.monotonic() - t0
                return peer
            time.sleep(0.05)
        else:
            peer.stop()
            raise PeerError(f"{name} not ready after {ready_timeout_s}s on port {port}:\n{peer.log_tail()}")
        peer.stop()
        if attempt == attempts:
            break
    raise PeerError(last_error or f"{name} could not be started")


def _base_env(tmp: Path) -> dict[str, str]:
    """A small, predictable environment: nothing of the host's AWS setup leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
        # No real AWS config, no IMDS probe to 169.254.169.254 from any SDK.
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return env


def start_ministack(tmp: Path, extra_env: Mapping[str, str] | None = None) -> PeerProcess:
    """ministack on 127.0.0.1:<free port>, Lambda executor local (no Docker).

    Its environment is inherited by every Lambda bootstrap it spawns, so it is
    kept minimal; AWS_ENDPOINT_URL is set so functions call back to it."""
    tmp.mkdir(parents=True, exist_ok=True)
    exe = venv_tool("ministack")

    def env_for(port: int) -> dict[str, str]:
        env = _base_env(tmp)
        env.update({
            "GATEWAY_PORT": str(port),
            "BIND_HOST": "127.0.0.1",
            # ResponseURL / other generated URLs: http://127.0.0.1:<port>/...
            "MINISTACK_HOST": "127.0.0.1",
            # Passed on to provided.* functions (ministack forces it after the
            # function's own variables); service-specific AWS_ENDPOINT_URL_<SVC>
            # function variables still win inside the AWS SDKs.
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "MINISTACK_REGION": REGION,
            # The IoT mTLS listener binds 0.0.0.0:8883 whatever BIND_HOST says.
            "IOT_MTLS_ENABLED": "0",
            "SFTP_ENABLED": "0",
            # Never touch a Docker daemon, even on a host that has one.
            "DOCKER_HOST": f"unix://{tmp}/no-docker.sock",
            "LAMBDA_EXECUTOR": "local",
            # Default state dirs are absolute under /tmp and shared between instances.
            "STATE_DIR": str(tmp / "state"),
            "S3_DATA_DIR": str(tmp / "s3"),
            "LOG_LEVEL": os.environ.get("MINISTACK_LOG_LEVEL", "INFO"),
        })
        if extra_env:
            env.update(extra_env)
        return env

    return start_peer(
        "ministack",
        lambda port: [str(exe)],
        env_for,
        lambda port: f"http://127.0.0.1:{port}/_ministack/ready",
        tmp,
    )


def start_moto(tmp: Path) -> PeerProcess:
    exe = venv_tool("moto_server")
    return start_peer(
        "moto",
        lambda port: [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        lambda port: _base_env(tmp),
        lambda port: f"http://127.0.0.1:{port}/moto-api/data.json",
        tmp,
    )


def start_microburst(tmp: Path, upstream: str, rules: list[dict] | None = None) -> PeerProcess:
    """microburst HTTP proxy on 127.0.0.1:<free port> in front of upstream."""
    exe = venv_tool("microburst")
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / f"microburst-{uuid.uuid4().hex[:8]}.yml"
    config.write_text(yaml.safe_dump({"upstream": upstream, "rules": rules or []}))
    return start_peer(
        "microburst",
        lambda port: [str(exe), "--config", str(config), "--host", "127.0.0.1",
                      "--port", str(port), "--no-resign"],
        lambda port: _base_env(tmp),
        lambda port: f"http://127.0.0.1:{port}/_microburst/health",
        tmp,
    )


POLICY_SERVER = REPO_ROOT / "tests" / "peers" / "policy_server.py"


def start_policy_server(tmp: Path) -> PeerProcess:
    """The project's own X-Ray / Managed Prometheus / SSM test server
    (tests/peers/policy_server.py, stdlib only) on 127.0.0.1:<free port>."""
    if not POLICY_SERVER.is_file():
        raise PeerError(f"{POLICY_SERVER} is missing: it is part of the repository (tests/peers/), "
                        "restore it from version control")
    python = venv_tool("python")
    return start_peer(
        "policy-server",
        lambda port: [str(python), str(POLICY_SERVER), "--host", "127.0.0.1", "--port", str(port)],
        lambda port: _base_env(tmp),
        lambda port: f"http://127.0.0.1:{port}/_fake/config",
        tmp,
    )


# --------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------


def client(service: str, endpoint_url: str, *, max_attempts: int = 3, read_timeout: float = 60.0, **kwargs):
    """A boto3 client for an emulator: dummy credentials, us-east-1.

    max_attempts counts the first try (botocore 'standard' mode): 1 = no retries."""
    config = Config(
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=config,
        **kwargs,
    )


@dataclasses.dataclass
class Emulator:
    """An AWS endpoint (ministack or moto) plus the process behind it."""

    peer: PeerProcess
    account_id: str

    @property
    def url(self) -> str:
        return self.peer.url

    def client(self, service: str, **kwargs):
        return client(service, self.url, **kwargs)


class Microburst:
    """A running microburst proxy and its control API (/_microburst/*)."""

    def __init__(self, peer: PeerProcess, upstream: str):
        self.peer = peer
        self.upstream = upstream

    @property
    def url(self) -> str:
        """Proxy URL for clients. Deliberately `localhost`, not 127.0.0.1: microburst
        0.10.0 matches a dotted Host header against every botocore model's
        endpointPrefix, and building that table costs ~5 s on the first request;
        a dot-less host skips it. (It listens on 127.0.0.1 only either way.)"""
        return f"http://localhost:{self.peer.port}"

    def client(self, service: str, **kwargs):
        """boto3 client whose calls go through the proxy."""
        return client(service, self.url, **kwargs)

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/_microburst/{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def set_rules(self, rules: list[dict]) -> list[dict]:
        """Replace the whole ruleset (POST /_microburst/rules)."""
        return self._control("POST", "rules", rules)

    def add_rules(self, rules: list[dict]) -> list[dict]:
        """Append rules (PATCH /_microburst/rules)."""
        return self._control("PATCH", "rules", rules)

    def clear_rules(self) -> None:
        self._control("POST", "rules", [])

    def health(self) -> dict:
        """{"status", "upstream", "resign", "rules", "requests_seen"}."""
        return self._control("GET", "health")

    def stats(self) -> dict:
        """{"requests": {"total", "faulted", "forwarded"}, "by_rule": [...], "by_service": [...], ...}."""
        return self._control("GET", "stats")

    def fired(self, **filters: Any) -> list[dict]:
        """Fault audit log; filters: service, operation, rule_id, limit (default 100), since, until."""
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        return self._control("GET", "fired" + (f"?{query}" if query else ""))

    def clear_fired(self) -> None:
        self._control("DELETE", "fired")

    def requests_seen(self) -> int:
        return int(self.health()["requests_seen"])

    def service_counts(self) -> dict[str, dict[str, int]]:
        """{service: {"requests": n, "faulted": n}} from /_microburst/stats."""
        return {row["service"]: {"requests": row["requests"], "faulted": row["faulted"]}
                for row in self.stats()["by_service"]}


class PolicyServer:
    """A running tests/peers/policy_server.py and its control API (/_fake/*):
    see tests/peers/README.md. Account 123456789012, signatures not checked."""

    ACCOUNT = "123456789012"

    def __init__(self, peer: PeerProcess):
        self.peer = peer

    @property
    def url(self) -> str:
        return self.peer.url

    def endpoint_environment(self) -> dict[str, str]:
        """Function variables sending the SDK's X-Ray, AMP and SSM calls here."""
        return {f"AWS_ENDPOINT_URL_{svc}": self.url for svc in ("XRAY", "AMP", "SSM")}

    def client(self, service: str, **kwargs):
        return client(service, self.url, **kwargs)

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_fake/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"policy server {method} /_fake/{path}: {e.code} {e.read()!r}") from None

    def reset(self) -> None:
        self._control("POST", "reset")

    def configure(self, **config: int) -> dict:
        """propagation_delay_ms, aps_transition_ms, workspace_creation_ms, ..."""
        return self._control("POST", "config", config)

    def fault(self, service: str, error: str, *, operation: str | None = None, count: int = 1,
              **more: Any) -> None:
        """The next `count` matching calls fail with `error` (FIFO per service/operation)."""
        body = {"service": service, "error": error, "count": count, **more}
        if operation:
            body["operation"] = operation
        self._control("POST", "faults", body)

    def add_workspace(self, **spec: Any) -> dict:
        """{workspaceId?, status?="ACTIVE", active_after_ms?, region?, alias?} -> workspace (with arn)."""
        return self._control("POST", "workspaces", spec)

    def add_ssm_resource(self, arn: str) -> None:
        self._control("POST", "ssm-resources", {"arn": arn})

    def state(self) -> dict:
        return self._control("GET", "state")

    def calls(self, service: str, operation: str | None = None) -> list[dict]:
        return [c for c in self.state()["calls"]
                if c["service"] == service and (operation is None or c["operation"] == operation)]


# --------------------------------------------------------------------------
# Lambda code
# --------------------------------------------------------------------------


def zip_bootstrap(executable: Path) -> bytes:
    """A deployment package holding `executable` as `bootstrap`, mode 0755."""
    data = Path(executable).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = (0o100755 & 0xFFFF) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
    return buf.getvalue()


@dataclasses.dataclass(frozen=True)
class LambdaCode:
    """Where a zipped bootstrap sits in the emulator's S3."""

    bucket: str
    key: str
    sha256: str

    def code_property(self) -> dict:
        """Value for AWS::Lambda::Function Code."""
        return {"S3Bucket": self.bucket, "S3Key": self.key}


def upload_bootstrap(emulator: Emulator, executable: Path, bucket: str) -> LambdaCode:
    """Zip `executable` as `bootstrap` and put it at s3://bucket/<sha256>.zip (idempotent)."""
    blob = zip_bootstrap(executable)
    sha = hashlib.sha256(blob).hexdigest()
    s3 = emulator.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=bucket)
    key = f"bootstrap-{sha[:16]}.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=blob)
    return LambdaCode(bucket, key, sha)


def function_resource(
    code: LambdaCode,
    *,
    timeout_s: int = 30,
    memory_mb: int = 128,
    environment: Mapping[str, str] | None = None,
    function_name: str | None = None,
) -> dict:
    """An AWS::Lambda::Function resource running `code` on provided.al2023."""
    props: dict[str, Any] = {
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Architectures": ["x86_64"],
        "Timeout": timeout_s,
        "MemorySize": memory_mb,
        "Role": f"arn:aws:iam::{MINISTACK_ACCOUNT}:role/integration-test",
        "Code": code.code_property(),
    }
    if environment:
        props["Environment"] = {"Variables": dict(environment)}
    if function_name:
        props["FunctionName"] = function_name
    return {"Type": "AWS::Lambda::Function", "Properties": props}


LEDGER = "resource-policy-provider-ledger"


def ensure_ledger(emulator: Emulator, name: str = LEDGER) -> str:
    """The ledger table (partition key `target`, a string) on the emulator: the
    provider refuses to start without one."""
    ddb = emulator.client("dynamodb")
    try:
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "target", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "target", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ddb.exceptions.ResourceInUseException:
        pass
    return name


def provider_environment(
    emulator: Emulator,
    *,
    proxy: "Microburst | None" = None,
    proxied_services: Iterable[str] = ("DYNAMODB", "KINESIS"),
    **extra: str,
) -> dict[str, str]:
    """Function variables for the Rust provider under ministack.

    - RESPONSE_URL_ALLOWED_HOSTS lets it PUT to ministack's plain-http ResponseURL
      (http://127.0.0.1:<port>/_ministack/cfn-response/<token>).
    - With `proxy`, AWS_ENDPOINT_URL_<SVC> sends those services through microburst;
      ministack forces AWS_ENDPOINT_URL itself, but service-specific variables pass
      through and the SDK prefers them.
    """
    env = {"RESPONSE_URL_ALLOWED_HOSTS": f"127.0.0.1:{emulator.peer.port}"}
    if "LEDGER_TABLE" not in extra:
        env["LEDGER_TABLE"] = ensure_ledger(emulator)
    if proxy is not None:
        for service in proxied_services:
            env[f"AWS_ENDPOINT_URL_{service.upper()}"] = proxy.url
    env.update(extra)
    return env


def custom_resource(
    service_token: Any,
    properties: Mapping[str, Any] | None = None,
    *,
    resource_type: str = "Custom::ResourcePolicy",
    service_timeout_s: int | None = 60,
) -> dict:
    """A custom resource. ministack waits ServiceTimeout seconds (default 3600!)
    for the ResponseURL PUT after the invocation returns; keep it short in tests."""
    props: dict[str, Any] = {"ServiceToken": service_token}
    if service_timeout_s is not None:
        props["ServiceTimeout"] = service_timeout_s
    props.update(properties or {})
    return {"Type": resource_type, "Properties": props}


def lambda_logs(emulator: Emulator, function_name: str) -> str:
    """Everything the function wrote (stdout+stderr), from /aws/lambda/<name>."""
    logs = emulator.client("logs")
    group = f"/aws/lambda/{function_name}"
    events: list[tuple[int, int, str]] = []
    try:
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return ""
    for stream in streams:
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                         startFromHead=True)["events"]:
            events.append((event["timestamp"], len(events), event["message"].rstrip("\n")))
    # One stream per execution environment: merge them in time order.
    return "\n".join(message for _, _, message in sorted(events))


# --------------------------------------------------------------------------
# CloudFormation
# --------------------------------------------------------------------------


def template_body(template: str | Path | Mapping[str, Any]) -> str:
    """TemplateBody text from a dict (sent as JSON), a YAML/JSON string (sent
    as-is; ministack understands !Ref/!GetAtt/!Sub short tags) or a file path."""
    if isinstance(template, Path):
        return template.read_text()
    if isinstance(template, Mapping):
        return json.dumps(template)
    return template


@dataclasses.dataclass
class StackResult:
    """Outcome of one stack operation."""

    stack_name: str
    stack_id: str
    status: str
    status_reason: str | None
    events: list[dict]   # this operation's events, oldest first
    outputs: dict[str, str]
    elapsed_s: float

    def resource_events(self, logical_id: str) -> list[tuple[str, str | None]]:
        """[(ResourceStatus, ResourceStatusReason)] for one logical resource, oldest first."""
        return [(e["ResourceStatus"], e.get("ResourceStatusReason"))
                for e in self.events if e["LogicalResourceId"] == logical_id]

    def describe(self) -> str:
        lines = [f"stack {self.stack_name}: {self.status} ({self.status_reason or ''}) in {self.elapsed_s:.1f}s"]
        for e in self.events:
            lines.append(f"  {e['LogicalResourceId']:<24} {e['ResourceType']:<36} {e['ResourceStatus']:<22} "
                         f"{e.get('PhysicalResourceId') or ''} {e.get('ResourceStatusReason') or ''}")
        if self.outputs:
            lines.append(f"  outputs: {self.outputs}")
        return "\n".join(lines)


class StackTimeout(AssertionError):
    pass


class StackDeployer:
    """Create/update/delete stacks and wait for a terminal status.

    Every stack it creates is deleted at cleanup() unless already gone; a stack
    stuck in DELETE_FAILED is deleted again retaining the failed resources."""

    def __init__(self, emulator: Emulator, default_timeout_s: float = 180.0, poll_s: float = 0.25):
        self.emulator = emulator
        self.cfn = emulator.client("cloudformation")
        self.default_timeout_s = default_timeout_s
        self.poll_s = poll_s
        self._created: dict[str, str] = {}  # stack id -> name

    # -- low level ---------------------------------------------------------

    def _event_ids(self, stack_id: str) -> set[str]:
        return {e["EventId"] for e in self._all_events(stack_id)}

    def _all_events(self, stack_id: str) -> list[dict]:
        events: list[dict] = []
        token = None
        while True:
            kwargs = {"StackName": stack_id}
            if token:
                kwargs["NextToken"] = token
            page = self.cfn.describe_stack_events(**kwargs)
            events.extend(page["StackEvents"])
            token = page.get("NextToken")
            if not token:
                break
        return list(reversed(events))  # API answers newest first

    def wait(self, stack_id: str, stack_name: str, t0: float, seen: set[str],
             timeout_s: float | None = None) -> StackResult:
        """Poll until the stack's status ends in _COMPLETE or _FAILED."""
        deadline = t0 + (timeout_s or self.default_timeout_s)
        while True:
            stack = self.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
            status = stack["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                break
            if time.monotonic() > deadline:
                events = [e for e in self._all_events(stack_id) if e["EventId"] not in seen]
                partial = StackResult(stack_name, stack_id, status, stack.get("StackStatusReason"),
                                      events, {}, time.monotonic() - t0)
                raise StackTimeout(f"stack still {status} after {timeout_s or self.default_timeout_s}s\n"
                                   f"{partial.describe()}\n--- ministack log tail ---\n"
                                   f"{self.emulator.peer.log_tail()}")
            time.sleep(self.poll_s)
        events = [e for e in self._all_events(stack_id) if e["EventId"] not in seen]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
        return StackResult(stack_name, stack_id, status, stack.get("StackStatusReason"),
                           events, outputs, time.monotonic() - t0)

    # -- operations ----------------------------------------------------------

    def create(self, stack_name: str, template: str | Path | Mapping[str, Any], *,
               parameters: Mapping[str, str] | None = None, timeout_s: float | None = None,
               **kwargs: Any) -> StackResult:
        t0 = time.monotonic()
        stack_id = self.cfn.create_stack(
            StackName=stack_name, TemplateBody=template_body(template),
            Parameters=_params(parameters), **kwargs,
        )["StackId"]
        self._created[stack_id] = stack_name
        return self.wait(stack_id, stack_name, t0, set(), timeout_s)

    def update(self, stack: str | StackResult, template: str | Path | Mapping[str, Any], *,
               parameters: Mapping[str, str] | None = None, timeout_s: float | None = None,
               **kwargs: Any) -> StackResult:
        stack_id, stack_name = self._ident(stack)
        seen = self._event_ids(stack_id)
        t0 = time.monotonic()
        self.cfn.update_stack(StackName=stack_id, TemplateBody=template_body(template),
                              Parameters=_params(parameters), **kwargs)
        return self.wait(stack_id, stack_name, t0, seen, timeout_s)

    def delete(self, stack: str | StackResult, *, timeout_s: float | None = None,
               retain: Iterable[str] | None = None) -> StackResult:
        stack_id, stack_name = self._ident(stack)
        seen = self._event_ids(stack_id)
        t0 = time.monotonic()
        kwargs: dict[str, Any] = {"StackName": stack_id}
        if retain:
            kwargs["RetainResources"] = list(retain)
        self.cfn.delete_stack(**kwargs)
        # describe_stacks by stack *id* keeps answering after DELETE_COMPLETE.
        return self.wait(stack_id, stack_name, t0, seen, timeout_s)

    def _ident(self, stack: str | StackResult) -> tuple[str, str]:
        if isinstance(stack, StackResult):
            return stack.stack_id, stack.stack_name
        desc = self.cfn.describe_stacks(StackName=stack)["Stacks"][0]
        return desc["StackId"], desc["StackName"]

    def cleanup(self) -> list[str]:
        """Delete what this deployer created and is still there; returns problems."""
        problems = []
        for stack_id, name in list(self._created.items()):
            try:
                status = self.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
                if status == "DELETE_COMPLETE":
                    continue
                result = self.delete(stack_id, timeout_s=120)
                if result.status == "DELETE_FAILED":
                    failed = sorted({e["LogicalResourceId"] for e in result.events
                                     if e["ResourceStatus"] == "DELETE_FAILED"
                                     and e["LogicalResourceId"] != name})
                    result = self.delete(stack_id, timeout_s=120, retain=failed)
                if result.status != "DELETE_COMPLETE":
                    problems.append(f"{name}: {result.status}")
            except Exception as exc:  # cleanup must go on for the other stacks
                problems.append(f"{name}: {exc!r}")
        return problems


def _params(parameters: Mapping[str, str] | None) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()]


def unique_name(prefix: str, worker: str = "") -> str:
    """A name unique across tests and xdist workers, valid for stacks/tables/streams."""
    safe = "".join(c if c.isalnum() else "-" for c in prefix).strip("-")[:40] or "it"
    parts = [safe]
    if worker:
        parts.append(worker)
    parts.append(uuid.uuid4().hex[:8])
    name = "-".join(parts)
    return name if name[0].isalpha() else f"it-{name}"


# --------------------------------------------------------------------------
# DynamoDB proxy (tests/peers/ddb_proxy.py): DynamoDB's update lock and
# ExpectedRevisionId answers in front of moto
# --------------------------------------------------------------------------

DDB_PROXY = REPO_ROOT / "tests" / "peers" / "ddb_proxy.py"


def start_ddb_proxy(tmp: Path, upstream: str, lock_ms: int = 15_000) -> PeerProcess:
    """tests/peers/ddb_proxy.py on 127.0.0.1:<free port> in front of `upstream`
    (moto's URL), with DynamoDB's policy-update lock set to `lock_ms` (0: off)."""
    if not DDB_PROXY.is_file():
        raise PeerError(f"{DDB_PROXY} is missing: it is part of the repository (tests/peers/), "
                        "restore it from version control")
    python = venv_tool("python")
    return start_peer(
        "ddb-proxy",
        lambda port: [str(python), str(DDB_PROXY), "--upstream", upstream, "--host", "127.0.0.1",
                      "--port", str(port), "--lock-ms", str(lock_ms)],
        lambda port: _base_env(tmp),
        lambda port: f"http://127.0.0.1:{port}/_proxy/health",
        tmp,
    )


class DdbProxy:
    """A running ddb_proxy and its admin API (/_proxy/*): see tests/peers/README.md.
    Point the function at it with AWS_ENDPOINT_URL_DYNAMODB=<url>."""

    def __init__(self, peer: PeerProcess):
        self.peer = peer

    @property
    def url(self) -> str:
        return self.peer.url

    def client(self, service: str = "dynamodb", **kwargs):
        return client(service, self.url, **kwargs)

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_proxy/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"ddb proxy {method} /_proxy/{path}: {e.code} {e.read()!r}") from None

    def stats(self) -> dict:
        """{config, totals, arns: {arn: {writes, puts, deletes, locked, precondition_failed,
        errors, held, lost_replies, locked_for_ms}}, requests: {operation: n}, faults}."""
        return self._control("GET", "stats")

    def arn_stats(self, arn: str) -> dict:
        """One ARN's counters (all zero when the proxy has not seen it)."""
        zero = dict.fromkeys(("writes", "puts", "deletes", "locked", "precondition_failed", "errors",
                              "held", "lost_replies", "locked_for_ms"), 0)
        return {**zero, **self.stats()["arns"].get(arn, {})}

    def log(self) -> list[dict]:
        """Every Put/Delete decided: {t_ms, arn, operation, outcome, revision?, expected?}."""
        return self._control("GET", "log")["writes"]

    def reset(self) -> None:
        self._control("POST", "reset")

    def configure(self, *, lock_ms: int) -> dict:
        return self._control("POST", "config", {"lock_ms": lock_ms})

    def unlock(self, arn: str | None = None) -> None:
        self._control("POST", "unlock", {"arn": arn} if arn else {})

    def hold(self, ms: int, *, arn: str | None = None, operation: str | None = None, count: int = 1) -> None:
        """The next `count` Put/Delete (on `arn`) wait `ms` before the proxy decides on them."""
        self._control("POST", "faults", {"kind": "hold", "ms": ms, "count": count,
                                         **({"arn": arn} if arn else {}),
                                         **({"operation": operation} if operation else {})})

    def lose_reply(self, *, arn: str | None = None, operation: str | None = None, count: int = 1) -> None:
        """The next `count` Put/Delete that land (on `arn`) get no answer: connection dropped."""
        self._control("POST", "faults", {"kind": "lose_reply", "count": count,
                                         **({"arn": arn} if arn else {}),
                                         **({"operation": operation} if operation else {})})
