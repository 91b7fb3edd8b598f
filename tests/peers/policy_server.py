#!/usr/bin/env python3
"""Stateful test peer for the resource-policy APIs of three AWS services.

Why this exists: no emulator on PyPI serves AWS X-Ray, Amazon Managed Service
for Prometheus (signing name ``aps``) or AWS Systems Manager resource
policies, yet the product's tests must drive the real AWS SDK for Rust (and
boto3) against something that speaks exactly their wire protocols and behaves
like the services: optimistic-concurrency revisions, asynchronous AMP status
transitions, eventual consistency, throttling.

Operation names, HTTP bindings, member names, status codes and error shapes
follow botocore's service models: xray 2016-04-12 and amp 2020-08-01
(restJson1), ssm 2014-11-06 (awsJson1_1).  Choices where AWS behaviour is not
documented are listed in README.md next to this file.

A control API under ``/_fake/`` resets state, sets delays, queues faults,
creates workspaces / SSM resources and reports state plus a call log.

Standard library only.  Run:  python3 policy_server.py --host 127.0.0.1 --port 0
It prints ``LISTENING <port>`` on stdout once ready and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")


# --------------------------------------------------------------------------
# Small shared pieces
# --------------------------------------------------------------------------

def now_ms() -> float:
    """Monotonic clock in milliseconds: all delays and transitions use it."""
    return time.monotonic() * 1000.0


def json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@dataclass
class Request:
    """One parsed HTTP request, independent of http.server."""

    method: str
    path: str
    segments: list
    query: dict
    headers: dict  # lower-case header name -> value
    body: bytes

    @classmethod
    def build(cls, method: str, raw_path: str, headers: dict, body: bytes) -> "Request":
        parts = urlsplit(raw_path)
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return cls(method, parts.path, segments, query, headers, body)

    def signing_scope(self):
        """(region, service) from the SigV4 credential scope, or (None, None)."""
        match = _CREDENTIAL_SCOPE.search(self.headers.get("authorization", ""))
        return (match.group(1), match.group(2)) if match else (None, None)

    @property
    def region(self) -> str:
        return self.signing_scope()[0] or DEFAULT_REGION


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    # Milliseconds to hold the response after the operation took effect (a "hold"
    # fault): the client's attempt times out although the write landed.
    hold_ms: int = 0


def json_response(status: int, obj, content_type: str = "application/json", headers=None) -> Response:
    all_headers = {"Content-Type": content_type}
    all_headers.update(headers or {})
    return Response(status, json_bytes(obj), all_headers)


class ServiceError(Exception):
    """An error a service returns; the owning service class renders it on the wire."""

    def __init__(self, code: str, message: str, status=None, members=None, headers=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.members = dict(members or {})
        self.headers = dict(headers or {})


class Violations:
    """Collects input-constraint violations and words them like AWS validators do:
    ``1 validation error detected: Value null at 'policyName' failed to satisfy
    constraint: Member must not be null``."""

    def __init__(self):
        self.items = []  # (member, value, constraint)

    def __bool__(self):
        return bool(self.items)

    def add(self, member: str, value, constraint: str):
        self.items.append((member, value, constraint))

    def members(self):
        return [member for member, _, _ in self.items]

    def message(self, wire_name=lambda name: name[:1].lower() + name[1:]) -> str:
        count = len(self.items)
        parts = [
            f"Value {self._show(value)} at '{wire_name(member)}' failed to satisfy constraint: {constraint}"
            for member, value, constraint in self.items
        ]
        return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(parts)

    @staticmethod
    def _show(value) -> str:
        if value is None:
            return "null"
        if isinstance(value, str):
            return "'" + (value if len(value) <= 64 else value[:61] + "...") + "'"
        return json.dumps(value)[:64]


_KIND_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "map": lambda v: isinstance(v, dict),
}


def check(violations: Violations, body: dict, name: str, kind: str, *, required=False,
          min_len=None, max_len=None, pattern=None, minimum=None, maximum=None, enum=None):
    """Check one member against its model constraints; return it if valid, else None."""
    value = body.get(name)
    if value is None:
        if required:
            violations.add(name, None, "Member must not be null")
        return None
    if not _KIND_CHECKS[kind](value):
        violations.add(name, value, f"Member must be of type {kind}")
        return None
    problem = None
    if min_len is not None and len(value) < min_len:
        problem = f"Member must have length greater than or equal to {min_len}"
    elif max_len is not None and len(value) > max_len:
        problem = f"Member must have length less than or equal to {max_len}"
    elif pattern is not None and not re.fullmatch(pattern, value, re.DOTALL):
        problem = f"Member must satisfy regular expression pattern: {pattern}"
    elif minimum is not None and value < minimum:
        problem = f"Member must have value greater than or equal to {minimum}"
    elif maximum is not None and value > maximum:
        problem = f"Member must have value less than or equal to {maximum}"
    elif enum is not None and value not in enum:
        problem = f"Member must satisfy enum value set: [{', '.join(enum)}]"
    if problem:
        violations.add(name, value, problem)
        return None
    return value


class VersionedStore:
    """Key -> history of (write time, value); ``None`` marks a deletion.

    Writes and conditional checks use the newest value (the truth); reads that
    model eventual consistency ask for the value as of ``now - delay``."""

    def __init__(self):
        self._history = {}

    def write(self, key, value, at: float, keep_ms: float):
        history = self._history.setdefault(key, [])
        history.append((at, value))
        cutoff = at - keep_ms
        while len(history) >= 2 and history[1][0] <= cutoff:
            history.pop(0)  # already superseded for every reader
        if len(history) == 1 and value is None:
            del self._history[key]

    def current(self, key):
        history = self._history.get(key)
        return history[-1][1] if history else None

    def at(self, key, when: float):
        value = None
        for written_at, entry in self._history.get(key, ()):
            if written_at > when:
                break
            value = entry
        return value

    def keys(self):
        return list(self._history)


@dataclass
class Config:
    """Behaviour switches set through ``POST /_fake/config``."""

    propagation_delay_ms: int = 0
    aps_transition_ms: int = 0
    workspace_creation_ms: int = 0
    idempotency_window_ms: int = 600_000
    ssm_max_policies_per_resource: int = 0  # 0 = no limit (OpsItemGroup is always 1)

    def update(self, changes: dict):
        for key, value in changes.items():
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown config key {key!r}; known: {sorted(self.__dataclass_fields__)}")
            if not _KIND_CHECKS["integer"](value) or value < 0:
                raise ValueError(f"config {key!r} must be a non-negative integer")
        for key, value in changes.items():
            setattr(self, key, value)


class Idempotency:
    """Remembers successful responses by (operation, clientToken) for a window,
    the way AWS idempotency tokens make retries safe."""

    def __init__(self):
        self._seen = {}  # (operation, token) -> (fingerprint, response, time)

    def replay(self, operation: str, token, fingerprint, window_ms: float, mismatch):
        """The cached response for a repeated request, or None.  Calls
        ``mismatch()`` (which raises) when the token was used for another request."""
        if token is None:
            return None
        entry = self._seen.get((operation, token))
        if entry is None or now_ms() - entry[2] > window_ms:
            return None
        if entry[0] != fingerprint:
            mismatch()
        return entry[1]

    def remember(self, operation: str, token, fingerprint, response: Response):
        if token is not None:
            self._seen[(operation, token)] = (fingerprint, response, now_ms())


# --------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------

class Service:
    """Shared plumbing: routing result, error rendering, fault rendering."""

    NAME = ""
    OPERATIONS = ()
    ERRORS = {}  # error name -> (default HTTP status, default extra members)
    MESSAGE_MEMBER = "message"

    def __init__(self, app: "App"):
        self.app = app
        self.reset()

    # -- hooks for subclasses ------------------------------------------------
    def reset(self):
        raise NotImplementedError

    def route(self, req: Request):
        """Return (operation, args) for a request this service owns."""
        raise NotImplementedError

    def snapshot(self) -> dict:
        raise NotImplementedError

    # -- shared behaviour ----------------------------------------------------
    @property
    def config(self) -> Config:
        return self.app.config

    def invoke(self, operation: str, req: Request, args: dict) -> Response:
        handler = getattr(self, "op_" + re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower())
        return handler(req, args)

    def write_time_and_keep(self):
        return now_ms(), self.config.propagation_delay_ms

    def view_time(self) -> float:
        """The instant whose state eventually-consistent reads observe."""
        return now_ms() - self.config.propagation_delay_ms

    def parse_json_body(self, req: Request) -> dict:
        if not req.body.strip():
            return {}
        try:
            body = json.loads(req.body)
        except ValueError as exc:
            raise self.malformed_body(f"Request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise self.malformed_body("Request body must be a JSON object")
        return body

    def malformed_body(self, message: str) -> ServiceError:
        return ServiceError("SerializationException", message, status=400)

    def error_status(self, err: ServiceError) -> int:
        return err.status or self.ERRORS.get(err.code, (400, {}))[0]

    def error_members(self, err: ServiceError) -> dict:
        members = dict(self.ERRORS.get(err.code, (400, {}))[1])
        members.update(err.members)
        return members

    def error_response(self, err: ServiceError) -> Response:
        """restJson1 error: name in ``x-amzn-ErrorType``, message + modeled members in the body."""
        body = {self.MESSAGE_MEMBER: err.message, **self.error_members(err)}
        headers = {"x-amzn-ErrorType": err.code, **err.headers}
        return json_response(self.error_status(err), body, headers=headers)

    def fault_error(self, fault: dict, args: dict) -> ServiceError:
        message = fault.get("message") or f"Injected {fault['error']}"
        return ServiceError(fault["error"], message, status=fault.get("status"), members=fault.get("members"))


class XRay(Service):
    """AWS X-Ray account-level resource policies (restJson1, ``POST /<Operation>``).

    Policies are scoped by region, taken from the SigV4 credential scope.
    Revision ids are integers as strings, incremented on every put."""

    NAME = "xray"
    OPERATIONS = ("PutResourcePolicy", "ListResourcePolicies", "DeleteResourcePolicy")
    MESSAGE_MEMBER = "Message"
    ERRORS = {
        "InvalidRequestException": (400, {}),
        "MalformedPolicyDocumentException": (400, {}),
        "LockoutPreventionException": (400, {}),
        "InvalidPolicyRevisionIdException": (400, {}),
        "PolicySizeLimitExceededException": (400, {}),
        "PolicyCountLimitExceededException": (400, {}),
        "ThrottledException": (429, {}),
        "SerializationException": (400, {}),
        "UnknownOperationException": (404, {}),
    }
    MAX_POLICIES_PER_REGION = 5
    MAX_DOCUMENT_BYTES = 5120
    NAME_PATTERN = r"[\w+=,.@-]+"

    def reset(self):
        self.policies = VersionedStore()  # (region, name) -> ResourcePolicy dict
        self.last_revision = {}           # (region, name) -> last revision number issued

    def route(self, req: Request):
        if req.method == "POST" and len(req.segments) == 1 and req.segments[0] in self.OPERATIONS:
            return req.segments[0], {}
        return None

    def invalid(self, violations: Violations):
        if violations:
            raise ServiceError("InvalidRequestException", violations.message())

    def revision_error(self, message: str) -> ServiceError:
        return ServiceError("InvalidPolicyRevisionIdException", message)

    def check_name(self, violations: Violations, body: dict):
        return check(violations, body, "PolicyName", "string", required=True,
                     min_len=1, max_len=128, pattern=self.NAME_PATTERN)

    def op_put_resource_policy(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        name = self.check_name(violations, body)
        document = check(violations, body, "PolicyDocument", "string", required=True)
        revision = check(violations, body, "PolicyRevisionId", "string")
        check(violations, body, "BypassPolicyLockoutCheck", "boolean")
        self.invalid(violations)

        if len(document.encode("utf-8")) > self.MAX_DOCUMENT_BYTES:
            raise ServiceError("PolicySizeLimitExceededException",
                               f"Policy document exceeds the maximum size of {self.MAX_DOCUMENT_BYTES} bytes")
        if not is_json_object(document):
            raise ServiceError("MalformedPolicyDocumentException", "Policy document must be a JSON object")

        key = (req.region, name)
        current = self.policies.current(key)
        self.check_put_revision(revision, current, name)
        if current is None and self.count_in_region(req.region) >= self.MAX_POLICIES_PER_REGION:
            raise ServiceError("PolicyCountLimitExceededException",
                               f"An account can have at most {self.MAX_POLICIES_PER_REGION} resource policies")

        number = self.last_revision.get(key, 0) + 1
        self.last_revision[key] = number
        policy = {
            "PolicyName": name,
            "PolicyDocument": document,
            "PolicyRevisionId": str(number),
            "LastUpdatedTime": round(time.time(), 3),
        }
        self.policies.write(key, policy, *self.write_time_and_keep())
        return json_response(200, {"ResourcePolicy": policy})

    def check_put_revision(self, revision, current, name: str):
        if revision is None:
            return
        if revision == "0":
            if current is not None:
                raise self.revision_error(f"Policy {name} already exists; revision id 0 only creates")
        elif current is None:
            raise self.revision_error(f"Policy {name} does not exist; revision id {revision} does not match")
        elif current["PolicyRevisionId"] != revision:
            raise self.revision_error(
                f"Revision id {revision} does not match the latest revision {current['PolicyRevisionId']}")

    def count_in_region(self, region: str) -> int:
        return sum(1 for key in self.policies.keys()
                   if key[0] == region and self.policies.current(key) is not None)

    def op_list_resource_policies(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        check(violations, body, "NextToken", "string", min_len=1, max_len=100)
        self.invalid(violations)
        when = self.view_time()
        visible = [self.policies.at(key, when) for key in self.policies.keys() if key[0] == req.region]
        policies = sorted((p for p in visible if p is not None), key=lambda p: p["PolicyName"])
        return json_response(200, {"ResourcePolicies": policies})

    def op_delete_resource_policy(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        name = self.check_name(violations, body)
        revision = check(violations, body, "PolicyRevisionId", "string")
        self.invalid(violations)

        key = (req.region, name)
        current = self.policies.current(key)
        if revision is not None and (current is None or current["PolicyRevisionId"] != revision):
            latest = current["PolicyRevisionId"] if current else "none (no such policy)"
            raise self.revision_error(f"Revision id {revision} does not match the latest revision {latest}")
        if current is not None:
            self.policies.write(key, None, *self.write_time_and_keep())
        return json_response(200, {})

    def snapshot(self) -> dict:
        regions = {}
        for region, name in sorted(self.policies.keys()):
            policy = self.policies.current((region, name))
            if policy is not None:
                regions.setdefault(region, []).append(policy)
        return {"policies": regions}


class Prometheus(Service):
    """Amazon Managed Service for Prometheus workspace policies (restJson1,
    ``/workspaces/{workspaceId}/policy``), plus just enough of the workspace
    API (create, describe, delete) to give policies something to attach to.

    Policy status moves CREATING/UPDATING -> ACTIVE and DELETING -> gone after
    ``aps_transition_ms``; statuses are computed lazily from timestamps."""

    NAME = "aps"
    OPERATIONS = ("PutResourcePolicy", "DescribeResourcePolicy", "DeleteResourcePolicy",
                  "CreateWorkspace", "DescribeWorkspace", "DeleteWorkspace")
    MESSAGE_MEMBER = "message"
    ERRORS = {
        "ThrottlingException": (429, {}),
        "InternalServerException": (500, {}),
        "ConflictException": (409, {"resourceId": "unknown", "resourceType": "ResourcePolicy"}),
        "ValidationException": (400, {"reason": "OTHER"}),
        "ResourceNotFoundException": (404, {"resourceId": "unknown", "resourceType": "ResourcePolicy"}),
        "AccessDeniedException": (403, {}),
        "ServiceQuotaExceededException": (402, {"resourceId": "unknown", "resourceType": "ResourcePolicy",
                                                 "serviceCode": "aps", "quotaCode": "L-00000000"}),
        "UnknownOperationException": (404, {}),
    }
    RETRY_AFTER_ERRORS = ("ThrottlingException", "InternalServerException")
    TRANSITIONAL = ("CREATING", "UPDATING", "DELETING")
    WORKSPACE_ID_PATTERN = r".*[0-9A-Za-z][-.0-9A-Z_a-z]*.*"
    TOKEN_PATTERN = r"[!-~]+"

    def reset(self):
        self.workspaces = {}                # workspaceId -> workspace dict
        self.policies = VersionedStore()    # workspaceId -> policy record
        self.idempotency = Idempotency()

    def route(self, req: Request):
        seg, method = req.segments, req.method
        if not seg or seg[0] != "workspaces":
            return None
        if len(seg) == 1 and method == "POST":
            return "CreateWorkspace", {}
        if len(seg) == 2:
            op = {"GET": "DescribeWorkspace", "DELETE": "DeleteWorkspace"}.get(method)
        elif len(seg) == 3 and seg[2] == "policy":
            op = {"PUT": "PutResourcePolicy", "GET": "DescribeResourcePolicy",
                  "DELETE": "DeleteResourcePolicy"}.get(method)
        else:
            op = None
        return (op, {"workspaceId": seg[1]}) if op else None

    # -- errors ----------------------------------------------------------------
    def error_response(self, err: ServiceError) -> Response:
        if err.code in self.RETRY_AFTER_ERRORS and "Retry-After" not in err.headers:
            err.headers["Retry-After"] = "1"
        return super().error_response(err)

    def fault_error(self, fault: dict, args: dict) -> ServiceError:
        err = super().fault_error(fault, args)
        if "workspaceId" in args and "resourceId" in self.ERRORS.get(err.code, (0, {}))[1]:
            err.members.setdefault("resourceId", args["workspaceId"])
        if fault.get("retry_after_seconds") is not None:
            err.headers["Retry-After"] = str(fault["retry_after_seconds"])
        return err

    def malformed_body(self, message: str) -> ServiceError:
        return ServiceError("ValidationException", message, members={"reason": "CANNOT_PARSE"})

    def invalid(self, violations: Violations):
        if violations:
            fields = [{"name": member, "message": constraint} for member, _, constraint in violations.items]
            raise ServiceError("ValidationException", violations.message(lambda n: n),
                               members={"reason": "FIELD_VALIDATION_FAILED", "fieldList": fields})

    @staticmethod
    def conflict(message: str, resource_id: str, resource_type: str) -> ServiceError:
        return ServiceError("ConflictException", message,
                            members={"resourceId": resource_id, "resourceType": resource_type})

    @staticmethod
    def not_found(message: str, resource_id: str, resource_type: str) -> ServiceError:
        return ServiceError("ResourceNotFoundException", message,
                            members={"resourceId": resource_id, "resourceType": resource_type})

    # -- workspaces --------------------------------------------------------------
    def add_workspace(self, workspace_id=None, status="ACTIVE", active_after_ms=None,
                      region=DEFAULT_REGION, alias=None) -> dict:
        workspace_id = workspace_id or f"ws-{uuid.uuid4()}"
        active_at = now_ms() + active_after_ms if active_after_ms is not None else None
        self.workspaces[workspace_id] = {
            "workspaceId": workspace_id,
            "arn": f"arn:aws:aps:{region}:{ACCOUNT_ID}:workspace/{workspace_id}",
            "alias": alias,
            "createdAt": round(time.time(), 3),
            "prometheusEndpoint": f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{workspace_id}/",
            "status": status,
            "active_at": active_at,
        }
        return self.describe_workspace(self.workspaces[workspace_id])

    def remove_workspace(self, workspace_id: str) -> bool:
        if self.workspaces.pop(workspace_id, None) is None:
            return False
        if self.policies.current(workspace_id) is not None:
            self.policies.write(workspace_id, None, *self.write_time_and_keep())
        return True

    @staticmethod
    def workspace_status(workspace: dict) -> str:
        if workspace["status"] != "ACTIVE" and workspace["active_at"] is not None \
                and now_ms() >= workspace["active_at"]:
            return "ACTIVE"
        return workspace["status"]

    def describe_workspace(self, workspace: dict) -> dict:
        described = {k: v for k, v in workspace.items() if k not in ("status", "active_at") and v is not None}
        described["status"] = {"statusCode": self.workspace_status(workspace)}
        return described

    def require_workspace(self, workspace_id: str) -> dict:
        workspace = self.workspaces.get(workspace_id)
        if workspace is None:
            raise self.not_found(f"Workspace {workspace_id} not found", workspace_id, "Workspace")
        return workspace

    def require_active(self, workspace: dict):
        status = self.workspace_status(workspace)
        if status != "ACTIVE":
            raise self.conflict(f"Workspace {workspace['workspaceId']} is {status}, not ACTIVE",
                                workspace["workspaceId"], "Workspace")

    def check_workspace_id(self, violations: Violations, workspace_id: str):
        check(violations, {"workspaceId": workspace_id}, "workspaceId", "string", required=True,
              min_len=1, max_len=64, pattern=self.WORKSPACE_ID_PATTERN)

    def op_create_workspace(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        alias = check(violations, body, "alias", "string", min_len=1, max_len=100)
        token = check(violations, body, "clientToken", "string", min_len=1, max_len=64, pattern=self.TOKEN_PATTERN)
        tags = check(violations, body, "tags", "map")
        kms = check(violations, body, "kmsKeyArn", "string", min_len=20, max_len=2048)
        self.invalid(violations)
        fingerprint = (alias, json.dumps(tags, sort_keys=True), kms)
        replay = self.idempotency.replay("CreateWorkspace", token, fingerprint, self.config.idempotency_window_ms,
                                         lambda: self._token_reused("unknown", "Workspace"))
        if replay:
            return replay
        created = self.add_workspace(status="CREATING", active_after_ms=self.config.workspace_creation_ms,
                                     region=req.region, alias=alias.strip() if alias else None)
        result = {"workspaceId": created["workspaceId"], "arn": created["arn"],
                  "status": {"statusCode": "CREATING"}}
        if tags:
            result["tags"] = tags
        if kms:
            result["kmsKeyArn"] = kms
        response = json_response(202, result)
        self.idempotency.remember("CreateWorkspace", token, fingerprint, response)
        return response

    def op_describe_workspace(self, req: Request, args: dict) -> Response:
        violations = Violations()
        self.check_workspace_id(violations, args["workspaceId"])
        self.invalid(violations)
        workspace = self.require_workspace(args["workspaceId"])
        return json_response(200, {"workspace": self.describe_workspace(workspace)})

    def op_delete_workspace(self, req: Request, args: dict) -> Response:
        violations = Violations()
        self.check_workspace_id(violations, args["workspaceId"])
        check(violations, req.query, "clientToken", "string", min_len=1, max_len=64, pattern=self.TOKEN_PATTERN)
        self.invalid(violations)
        self.require_workspace(args["workspaceId"])
        self.remove_workspace(args["workspaceId"])
        return Response(202)

    # -- policies ----------------------------------------------------------------
    def effective(self, record, when: float):
        """A stored record as seen at ``when``: finished transitions applied."""
        if record is None:
            return None
        if record["until"] is not None and when >= record["until"]:
            if record["policyStatus"] == "DELETING":
                return None
            return {**record, "policyStatus": "ACTIVE", "until": None}
        return record

    def current_policy(self, workspace_id: str):
        return self.effective(self.policies.current(workspace_id), now_ms())

    def visible_policy(self, workspace_id: str):
        when = self.view_time()
        return self.effective(self.policies.at(workspace_id, when), when)

    def _token_reused(self, resource_id: str, resource_type: str):
        raise self.conflict("The clientToken was already used with a different request", resource_id, resource_type)

    def require_settled(self, policy, workspace_id: str):
        if policy is not None and policy["policyStatus"] in self.TRANSITIONAL:
            raise self.conflict(f"The resource policy of workspace {workspace_id} is {policy['policyStatus']}",
                                workspace_id, "ResourcePolicy")

    def check_revision(self, revision, policy, workspace_id: str):
        if revision is None:
            return
        if revision == "NO_POLICY":
            if policy is not None:
                raise self.conflict(f"Workspace {workspace_id} already has a resource policy "
                                    f"(revision {policy['revisionId']}); NO_POLICY does not match",
                                    workspace_id, "ResourcePolicy")
        elif policy is None or policy["revisionId"] != revision:
            latest = policy["revisionId"] if policy else "NO_POLICY"
            raise self.conflict(f"Revision id {revision} does not match the current revision {latest}",
                                workspace_id, "ResourcePolicy")

    def op_put_resource_policy(self, req: Request, args: dict) -> Response:
        workspace_id = args["workspaceId"]
        body = self.parse_json_body(req)
        violations = Violations()
        self.check_workspace_id(violations, workspace_id)
        document = check(violations, body, "policyDocument", "string", required=True)
        token = check(violations, body, "clientToken", "string", min_len=1, max_len=64, pattern=self.TOKEN_PATTERN)
        revision = check(violations, body, "revisionId", "string")
        if document is not None and not is_json_object(document):
            violations.add("policyDocument", document, "Member must be a JSON object policy document")
        self.invalid(violations)

        workspace = self.require_workspace(workspace_id)
        fingerprint = (workspace_id, document, revision)
        replay = self.idempotency.replay("PutResourcePolicy", token, fingerprint, self.config.idempotency_window_ms,
                                         lambda: self._token_reused(workspace_id, "ResourcePolicy"))
        if replay:
            return replay
        self.require_active(workspace)
        current = self.current_policy(workspace_id)
        self.require_settled(current, workspace_id)
        self.check_revision(revision, current, workspace_id)

        now, keep = self.write_time_and_keep()
        transition = self.config.aps_transition_ms
        status = "ACTIVE" if transition == 0 else ("CREATING" if current is None else "UPDATING")
        record = {"policyDocument": document, "revisionId": str(uuid.uuid4()),
                  "policyStatus": status, "until": now + transition if transition else None}
        self.policies.write(workspace_id, record, now, keep)
        response = json_response(202, {"policyStatus": status, "revisionId": record["revisionId"]})
        self.idempotency.remember("PutResourcePolicy", token, fingerprint, response)
        return response

    def op_describe_resource_policy(self, req: Request, args: dict) -> Response:
        workspace_id = args["workspaceId"]
        violations = Violations()
        self.check_workspace_id(violations, workspace_id)
        self.invalid(violations)
        self.require_workspace(workspace_id)
        policy = self.visible_policy(workspace_id)
        if policy is None:
            raise self.not_found(f"Workspace {workspace_id} has no resource policy", workspace_id, "ResourcePolicy")
        return json_response(200, {k: policy[k] for k in ("policyDocument", "policyStatus", "revisionId")})

    def op_delete_resource_policy(self, req: Request, args: dict) -> Response:
        workspace_id = args["workspaceId"]
        violations = Violations()
        self.check_workspace_id(violations, workspace_id)
        token = check(violations, req.query, "clientToken", "string", min_len=1, max_len=64,
                      pattern=self.TOKEN_PATTERN)
        revision = check(violations, req.query, "revisionId", "string")
        self.invalid(violations)

        workspace = self.require_workspace(workspace_id)
        fingerprint = (workspace_id, revision)
        replay = self.idempotency.replay("DeleteResourcePolicy", token, fingerprint,
                                         self.config.idempotency_window_ms,
                                         lambda: self._token_reused(workspace_id, "ResourcePolicy"))
        if replay:
            return replay
        self.require_active(workspace)
        current = self.current_policy(workspace_id)
        if current is None:
            raise self.not_found(f"Workspace {workspace_id} has no resource policy", workspace_id, "ResourcePolicy")
        self.require_settled(current, workspace_id)
        self.check_revision(revision, current, workspace_id)

        now, keep = self.write_time_and_keep()
        transition = self.config.aps_transition_ms
        record = {**current, "policyStatus": "DELETING", "until": now + transition} if transition else None
        self.policies.write(workspace_id, record, now, keep)
        response = Response(202)
        self.idempotency.remember("DeleteResourcePolicy", token, fingerprint, response)
        return response

    def snapshot(self) -> dict:
        policies = {}
        for workspace_id in sorted(self.policies.keys()):
            policy = self.current_policy(workspace_id)
            if policy is not None:
                policies[workspace_id] = {k: policy[k] for k in ("policyDocument", "policyStatus", "revisionId")}
        workspaces = [self.describe_workspace(w) for _, w in sorted(self.workspaces.items())]
        return {"workspaces": workspaces, "policies": policies}


class SystemsManager(Service):
    """AWS Systems Manager resource policies (awsJson1_1: ``POST /`` with
    ``X-Amz-Target: AmazonSSM.<Operation>``).

    Each resource ARN holds several policies, each with a PolicyId (uuid) and
    a PolicyHash (hex sha256 of the policy text) used for optimistic locking."""

    NAME = "ssm"
    OPERATIONS = ("PutResourcePolicy", "GetResourcePolicies", "DeleteResourcePolicy")
    MESSAGE_MEMBER = "Message"
    CONTENT_TYPE = "application/x-amz-json-1.1"
    TARGET_PREFIX = "AmazonSSM."
    ERRORS = {
        "InternalServerError": (500, {}),
        "ResourcePolicyInvalidParameterException": (400, {}),
        "ResourcePolicyLimitExceededException": (400, {}),
        "ResourcePolicyConflictException": (400, {}),
        "ResourceNotFoundException": (400, {}),
        "MalformedResourcePolicyDocumentException": (400, {}),
        "ResourcePolicyNotFoundException": (400, {}),
        "ThrottlingException": (400, {}),
        "ValidationException": (400, {}),
        "AccessDeniedException": (400, {}),
        "SerializationException": (400, {}),
        "UnknownOperationException": (400, {}),
    }
    MAX_POLICY_BYTES = 1024
    DEFAULT_PAGE_SIZE = 50
    ARN_PATTERN = re.compile(r"arn:aws[-a-z]*:ssm:[-a-z0-9]*:\d{12}:.+")

    def reset(self):
        self.resources = set()
        self.policies = VersionedStore()  # resource ARN -> tuple of policy dicts in creation order
        self.sequence = 0

    def route(self, req: Request):
        target = req.headers.get("x-amz-target", "")
        if req.method == "POST" and target.startswith(self.TARGET_PREFIX):
            op = target[len(self.TARGET_PREFIX):]
            return (op, {}) if op in self.OPERATIONS else ("Unknown", {"target": target})
        return None

    def error_response(self, err: ServiceError) -> Response:
        """awsJson1_1 error: ``__type`` plus message and modeled members in the body."""
        body = {"__type": err.code, self.MESSAGE_MEMBER: err.message, **self.error_members(err)}
        return json_response(self.error_status(err), body, self.CONTENT_TYPE, err.headers)

    def ok(self, body: dict) -> Response:
        return json_response(200, body, self.CONTENT_TYPE)

    # -- checks ----------------------------------------------------------------
    @staticmethod
    def invalid(violations: Violations):
        if violations:
            raise ServiceError("ValidationException", violations.message())

    @staticmethod
    def invalid_parameter(names: list, message: str) -> ServiceError:
        return ServiceError("ResourcePolicyInvalidParameterException", message, members={"ParameterNames": names})

    def require_resource(self, arn: str):
        if not self.ARN_PATTERN.fullmatch(arn):
            raise self.invalid_parameter(["ResourceArn"], f"ResourceArn {arn} is not a valid SSM resource ARN")
        if arn not in self.resources:
            raise ServiceError("ResourceNotFoundException", f"Resource {arn} was not found")

    @staticmethod
    def is_ops_item_group(arn: str) -> bool:
        return arn.split(":", 5)[-1].lower().startswith("opsitemgroup/")

    def current(self, arn: str) -> dict:
        return {p["PolicyId"]: p for p in self.policies.current(arn) or ()}

    def save(self, arn: str, policies: dict):
        ordered = tuple(sorted(policies.values(), key=lambda p: p["seq"]))
        self.policies.write(arn, ordered or None, *self.write_time_and_keep())

    def existing_policy(self, policies: dict, policy_id: str, policy_hash: str) -> dict:
        policy = policies.get(policy_id)
        if policy is None:
            raise ServiceError("ResourcePolicyNotFoundException", f"No policy with PolicyId {policy_id} was found")
        if policy["PolicyHash"] != policy_hash:
            raise ServiceError("ResourcePolicyConflictException",
                               f"PolicyHash {policy_hash} does not match the current hash of policy {policy_id}")
        return policy

    # -- operations --------------------------------------------------------------
    def op_unknown(self, req: Request, args: dict) -> Response:
        raise ServiceError("UnknownOperationException", f"Unknown operation {args.get('target')}")

    def op_put_resource_policy(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        arn = check(violations, body, "ResourceArn", "string", required=True, min_len=20, max_len=2048)
        text = check(violations, body, "Policy", "string", required=True, pattern=r"^(?!\s*$).+")
        policy_id = check(violations, body, "PolicyId", "string")
        policy_hash = check(violations, body, "PolicyHash", "string")
        self.invalid(violations)
        if policy_id is not None and policy_hash is None:
            raise self.invalid_parameter(["PolicyHash"], "PolicyHash is required to update a policy")
        if policy_hash is not None and policy_id is None:
            raise self.invalid_parameter(["PolicyId"], "PolicyId is required when PolicyHash is given")
        self.require_resource(arn)
        size = len(text.encode("utf-8"))
        if size > self.MAX_POLICY_BYTES:
            raise ServiceError("ResourcePolicyLimitExceededException",
                               f"Policy is {size} bytes; the limit is {self.MAX_POLICY_BYTES} bytes",
                               members={"Limit": self.MAX_POLICY_BYTES, "LimitType": "PolicySize"})
        if not is_json_object(text):
            raise ServiceError("MalformedResourcePolicyDocumentException", "Policy must be a JSON object")

        policies = self.current(arn)
        if policy_id is not None:
            previous = self.existing_policy(policies, policy_id, policy_hash)
            seq = previous["seq"]
        else:
            self.check_count_limit(arn, len(policies))
            policy_id = str(uuid.uuid4())
            self.sequence += 1
            seq = self.sequence
        new_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
        policies[policy_id] = {"PolicyId": policy_id, "PolicyHash": new_hash, "Policy": text, "seq": seq}
        self.save(arn, policies)
        return self.ok({"PolicyId": policy_id, "PolicyHash": new_hash})

    def check_count_limit(self, arn: str, count: int):
        limit = 1 if self.is_ops_item_group(arn) else self.config.ssm_max_policies_per_resource
        if limit and count >= limit:
            raise ServiceError("ResourcePolicyLimitExceededException",
                               f"Resource {arn} already has {count} policies; the limit is {limit}",
                               members={"Limit": limit, "LimitType": "PolicyCount"})

    def op_get_resource_policies(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        arn = check(violations, body, "ResourceArn", "string", required=True, min_len=20, max_len=2048)
        token = check(violations, body, "NextToken", "string")
        page_size = check(violations, body, "MaxResults", "integer", minimum=1, maximum=50)
        self.invalid(violations)
        self.require_resource(arn)

        after = self.decode_token(token, arn) if token is not None else 0
        visible = self.policies.at(arn, self.view_time()) or ()
        remaining = [p for p in visible if p["seq"] > after]
        page = remaining[:page_size or self.DEFAULT_PAGE_SIZE]
        result = {"Policies": [{k: p[k] for k in ("PolicyId", "PolicyHash", "Policy")} for p in page]}
        if len(remaining) > len(page):
            result["NextToken"] = self.encode_token(arn, page[-1]["seq"])
        return self.ok(result)

    @staticmethod
    def encode_token(arn: str, seq: int) -> str:
        return base64.urlsafe_b64encode(json_bytes({"arn": arn, "after": seq})).decode("ascii")

    def decode_token(self, token: str, arn: str) -> int:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            if decoded["arn"] == arn and isinstance(decoded["after"], int):
                return decoded["after"]
        except (ValueError, KeyError, TypeError):
            pass
        raise self.invalid_parameter(["NextToken"], "NextToken is invalid or belongs to another resource")

    def op_delete_resource_policy(self, req: Request, args: dict) -> Response:
        body = self.parse_json_body(req)
        violations = Violations()
        arn = check(violations, body, "ResourceArn", "string", required=True, min_len=20, max_len=2048)
        policy_id = check(violations, body, "PolicyId", "string", required=True)
        policy_hash = check(violations, body, "PolicyHash", "string", required=True)
        check(violations, body, "DeletionMode", "string", enum=("RemoveSharing", "RollbackMigration"))
        self.invalid(violations)
        self.require_resource(arn)
        policies = self.current(arn)
        self.existing_policy(policies, policy_id, policy_hash)
        del policies[policy_id]
        self.save(arn, policies)
        return self.ok({})

    # -- out-of-band resources -----------------------------------------------------
    def add_resource(self, arn: str):
        self.resources.add(arn)

    def remove_resource(self, arn: str) -> bool:
        if arn not in self.resources:
            return False
        self.resources.discard(arn)
        if self.policies.current(arn) is not None:
            self.policies.write(arn, None, *self.write_time_and_keep())
        return True

    def snapshot(self) -> dict:
        policies = {}
        for arn in sorted(self.policies.keys()):
            current = self.policies.current(arn)
            if current:
                policies[arn] = [{k: p[k] for k in ("PolicyId", "PolicyHash", "Policy")} for p in current]
        return {"resources": sorted(self.resources), "policies": policies}


# --------------------------------------------------------------------------
# Faults, call log, control API, application
# --------------------------------------------------------------------------

class FaultQueue:
    """Queued injected failures: each entry fails its next ``count`` matching calls."""

    def __init__(self):
        self.entries = []

    def add(self, entry: dict):
        self.entries.append(entry)

    def take(self, service: str, operation: str):
        for entry in self.entries:
            if entry["service"] == service and entry.get("operation") in (None, operation):
                entry["count"] -= 1
                if entry["count"] <= 0:
                    self.entries.remove(entry)
                return entry
        return None


class CallLog:
    """Every service call received, in order, with per-(service, operation) counts."""

    def __init__(self):
        self.calls = []
        self.counts = {}

    def record(self, service: str, operation: str, status: int, region: str):
        self.calls.append({"service": service, "operation": operation, "status": status, "region": region})
        per_service = self.counts.setdefault(service, {})
        per_service[operation] = per_service.get(operation, 0) + 1


class ControlApi:
    """``/_fake/*``: test-only switches and inspection, plain JSON over HTTP."""

    def __init__(self, app: "App"):
        self.app = app

    def handle(self, req: Request) -> Response:
        route = (req.method, tuple(req.segments[1:2]))
        handlers = {
            ("POST", ("reset",)): self.reset,
            ("GET", ("config",)): self.get_config,
            ("POST", ("config",)): self.set_config,
            ("GET", ("faults",)): self.get_faults,
            ("POST", ("faults",)): self.add_fault,
            ("DELETE", ("faults",)): self.clear_faults,
            ("POST", ("workspaces",)): self.add_workspace,
            ("DELETE", ("workspaces",)): self.delete_workspace,
            ("POST", ("ssm-resources",)): self.add_ssm_resource,
            ("DELETE", ("ssm-resources",)): self.delete_ssm_resource,
            ("GET", ("state",)): self.state,
        }
        handler = handlers.get(route)
        if handler is None:
            return json_response(404, {"error": f"no control route {req.method} {req.path}"})
        try:
            body = json.loads(req.body) if req.body.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            with self.app.lock:
                return handler(req, body)
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})

    def reset(self, req, body):
        self.app.reset()
        return json_response(200, {"reset": True})

    def get_config(self, req, body):
        return json_response(200, vars(self.app.config))

    def set_config(self, req, body):
        self.app.config.update(body)
        return json_response(200, vars(self.app.config))

    def get_faults(self, req, body):
        return json_response(200, {"faults": self.app.faults.entries})

    def clear_faults(self, req, body):
        self.app.faults.entries.clear()
        return json_response(200, {"faults": []})

    def add_fault(self, req, body):
        service = self.app.services.get(body.get("service"))
        if service is None:
            raise ValueError(f"service must be one of {sorted(self.app.services)}")
        operation = body.get("operation")
        if operation is not None and operation not in service.OPERATIONS:
            raise ValueError(f"operation must be one of {list(service.OPERATIONS)} or absent")
        error = body.get("error")
        hold_ms = body.get("hold_ms")
        if hold_ms is not None:
            if not _KIND_CHECKS["integer"](hold_ms) or not 1 <= hold_ms <= 60000:
                raise ValueError("hold_ms must be an integer from 1 to 60000")
            if error is not None:
                raise ValueError("a fault is either an error or a hold_ms, not both")
        elif not isinstance(error, str) or (error not in service.ERRORS and "status" not in body):
            raise ValueError(f"error must be one of {sorted(service.ERRORS)} (other names need an explicit status)")
        count = body.get("count", 1)
        status = body.get("status")
        if not _KIND_CHECKS["integer"](count) or count < 1:
            raise ValueError("count must be a positive integer")
        if status is not None and (not _KIND_CHECKS["integer"](status) or not 400 <= status <= 599):
            raise ValueError("status must be an HTTP error status (400-599)")
        if not isinstance(body.get("members", {}), dict):
            raise ValueError("members must be an object")
        entry = {"service": service.NAME, "operation": operation, "error": error, "status": status,
                 "count": count, "message": body.get("message"), "members": body.get("members", {}),
                 "retry_after_seconds": body.get("retry_after_seconds"), "hold_ms": hold_ms}
        self.app.faults.add(entry)
        return json_response(200, {"faults": self.app.faults.entries})

    def add_workspace(self, req, body):
        status = body.get("status", "ACTIVE")
        if status not in ("CREATING", "ACTIVE", "UPDATING", "DELETING", "CREATION_FAILED"):
            raise ValueError("status must be a WorkspaceStatusCode")
        active_after = body.get("active_after_ms")
        if active_after is not None and (not _KIND_CHECKS["integer"](active_after) or active_after < 0):
            raise ValueError("active_after_ms must be a non-negative integer")
        workspace_id = body.get("workspaceId")
        if workspace_id is not None and not isinstance(workspace_id, str):
            raise ValueError("workspaceId must be a string")
        workspace = self.app.aps.add_workspace(workspace_id, status, active_after,
                                               body.get("region", DEFAULT_REGION), body.get("alias"))
        return json_response(200, workspace)

    def delete_workspace(self, req, body):
        if len(req.segments) != 3 or not self.app.aps.remove_workspace(req.segments[2]):
            return json_response(404, {"error": "no such workspace"})
        return json_response(200, {"deleted": req.segments[2]})

    def add_ssm_resource(self, req, body):
        arn = body.get("arn")
        if not isinstance(arn, str) or not arn:
            raise ValueError("arn must be a non-empty string")
        self.app.ssm.add_resource(arn)
        return json_response(200, {"resources": sorted(self.app.ssm.resources)})

    def delete_ssm_resource(self, req, body):
        arn = req.query.get("arn") or body.get("arn")
        if not arn or not self.app.ssm.remove_resource(arn):
            return json_response(404, {"error": "no such SSM resource"})
        return json_response(200, {"deleted": arn})

    def state(self, req, body):
        app = self.app
        return json_response(200, {
            "config": vars(app.config),
            "xray": app.xray.snapshot(),
            "aps": app.aps.snapshot(),
            "ssm": app.ssm.snapshot(),
            "faults": app.faults.entries,
            "calls": app.calls.calls,
            "call_counts": app.calls.counts,
        })


class App:
    """Owns all state behind one lock and dispatches requests to a service or the control API."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.lock = threading.RLock()
        self.control = ControlApi(self)
        self.reset()

    def reset(self):
        with self.lock:
            self.config = Config()
            self.faults = FaultQueue()
            self.calls = CallLog()
            self.xray = XRay(self)
            self.aps = Prometheus(self)
            self.ssm = SystemsManager(self)
            self.services = {s.NAME: s for s in (self.xray, self.aps, self.ssm)}

    def dispatch(self, req: Request) -> Response:
        if req.segments and req.segments[0] == "_fake":
            return self.control.handle(req)
        with self.lock:
            service, operation, args = self.resolve(req)
            if service is None:
                response = json_response(404, {"message": f"No service handles {req.method} {req.path}"},
                                         headers={"x-amzn-ErrorType": "UnknownOperationException"})
                self.calls.record("unknown", "Unknown", 404, req.region)
                return response
            try:
                if operation is None:
                    raise ServiceError("UnknownOperationException", f"Unknown operation {req.method} {req.path}")
                fault = self.faults.take(service.NAME, operation)
                if fault is not None and not fault.get("hold_ms"):
                    raise service.fault_error(fault, args)
                response = service.invoke(operation, req, args)
                if fault is not None:
                    response.hold_ms = fault["hold_ms"]
            except ServiceError as err:
                response = service.error_response(err)
            self.calls.record(service.NAME, operation or "Unknown", response.status, req.region)
            return response

    def resolve(self, req: Request):
        """(service, operation, args); operation None means the service owns the
        request (by signing name) but has no such operation."""
        for service in (self.ssm, self.aps, self.xray):
            routed = service.route(req)
            if routed is not None:
                return service, routed[0], routed[1]
        signing_service = req.signing_scope()[1]
        for service in self.services.values():
            if signing_service == service.NAME:
                return service, None, {}
        return None, None, {}


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: reads exactly the request body, always sends Content-Length."""
    protocol_version = "HTTP/1.1"
    server_version = "aws-policy-peer/1"
    disable_nagle_algorithm = True

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def handle_any(self):
        try:
            body = self.read_body()
        except ValueError as exc:
            self.close_connection = True
            self.send(json_response(400, {"message": f"bad request framing: {exc}"}))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        req = Request.build(self.command, self.path, headers, body)
        try:
            response = self.server.app.dispatch(req)
        except Exception:  # a bug in the peer: say so loudly, keep the connection usable
            traceback.print_exc(file=sys.stderr)
            response = json_response(500, {"message": "internal error in the test peer"},
                                     headers={"x-amzn-ErrorType": "InternalFailure"})
        if response.hold_ms:
            time.sleep(response.hold_ms / 1000.0)  # outside the lock: other calls go on
        self.send(response)

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        data = b""
        while len(data) < length:
            chunk = self.rfile.read(length - len(data))
            if not chunk:
                raise ValueError("connection closed before the body was complete")
            data += chunk
        return data

    def read_chunked(self) -> bytes:
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def send(self, response: Response):
        self.send_response(response.status)
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def log_message(self, fmt, *args):
        if self.server.app.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))


class PeerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, app: App):
        super().__init__(address, Handler)
        self.app = app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    server = PeerServer((args.host, args.port), App(verbose=args.verbose))

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
