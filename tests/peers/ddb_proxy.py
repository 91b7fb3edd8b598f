#!/usr/bin/env python3
"""HTTP proxy in front of moto's DynamoDB that adds what moto leaves out of the
resource-policy API, so tests meet DynamoDB's real behaviour.

What it changes (everything else is forwarded byte for byte, signatures included;
it never re-signs):

* **The update lock.** DynamoDB blocks a table's (or stream's) policy updates for
  15 s after each successful PutResourcePolicy or DeleteResourcePolicy. A Put or
  Delete on a ResourceArn whose last successful write is younger than ``lock_ms``
  is answered 400 ``ResourceInUseException`` without reaching moto. Reads pass.
* **ExpectedRevisionId.** moto accepts a Put with ExpectedRevisionId when no policy
  exists, and answers a guarded Delete of a missing policy with
  ResourceNotFoundException. DynamoDB answers PolicyNotFoundException to both, and to
  any revision that does not match. The proxy reads the policy first (a
  GetResourcePolicy to moto) and answers PolicyNotFoundException itself.
* **Distinct revisions.** moto's RevisionId is the write's Unix millisecond, so two
  writes in one millisecond would share one. Writes to one ARN are serialized and
  spaced 2 ms apart.
* **Counts and faults** per ResourceArn under ``/_proxy/`` (see README.md):
  writes that reached moto, writes refused by the lock, failed preconditions;
  hold the next N writes for M ms; forward the next N writes and drop the
  connection without answering (a lost reply).

Standard library only. Run:
    python3 ddb_proxy.py --upstream http://127.0.0.1:<moto port> [--port 0] [--lock-ms 15000]
It prints ``LISTENING <port>`` on stdout once ready and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

TARGET_PREFIX = "DynamoDB_20120810."
WRITES = ("PutResourcePolicy", "DeleteResourcePolicy")
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
JSON_10 = "application/x-amz-json-1.0"
DEFAULT_LOCK_MS = 15_000
# Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1), plus framing we redo.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "expect", "content-length",
              "proxy-connection"}
# Headers a proxy-made GetResourcePolicy takes from the write it checks (moto reads
# the region and account from them; it does not verify signatures).
CHECK_HEADERS = ("host", "authorization", "x-amz-date", "x-amz-security-token", "user-agent")
REVISION_GAP_S = 0.002


def now_ms() -> float:
    return time.monotonic() * 1000.0


def json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


class Reply:
    """An answer to send: status, headers (list of pairs), body."""

    def __init__(self, status: int, headers=None, body: bytes = b"", reason: str | None = None):
        self.status = status
        self.headers = list(headers or [])
        self.body = body
        self.reason = reason

    @classmethod
    def json(cls, status: int, obj) -> "Reply":
        return cls(status, [("Content-Type", "application/json")], json_bytes(obj))

    @classmethod
    def ddb_error(cls, code: str, message: str) -> "Reply":
        """An awsJson1_0 error as DynamoDB sends it."""
        return cls(400, [("Content-Type", JSON_10), ("x-amzn-RequestId", str(uuid.uuid4()))],
                   json_bytes({"__type": ERROR_PREFIX + code, "message": message}))

    def error_code(self) -> str | None:
        """The error name of a DynamoDB error body (namespace stripped), else None."""
        if self.status < 400:
            return None
        try:
            kind = json.loads(self.body).get("__type", "")
        except (ValueError, AttributeError):
            return f"HTTP{self.status}"
        return kind.rsplit("#", 1)[-1] or f"HTTP{self.status}"


# --------------------------------------------------------------------------
# State: config, counts, faults, the write log
# --------------------------------------------------------------------------

COUNTERS = ("writes", "puts", "deletes", "locked", "precondition_failed", "errors",
            "held", "lost_replies")


class State:
    """Everything behind one lock. Per-ARN write serialization uses its own locks."""

    def __init__(self, lock_ms: int):
        self.startup_lock_ms = lock_ms
        self.lock = threading.Lock()
        self.arn_locks: dict[str, threading.Lock] = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.lock_ms = self.startup_lock_ms
            self.started_ms = now_ms()
            self.last_write_ms: dict[str, float] = {}  # ARN -> when its last write succeeded
            self.arns: dict[str, dict] = {}
            self.requests: dict[str, int] = {}
            self.faults: list[dict] = []
            self.log: list[dict] = []

    def arn_lock(self, arn: str) -> threading.Lock:
        with self.lock:
            return self.arn_locks.setdefault(arn, threading.Lock())

    def count(self, arn: str, *names: str):
        with self.lock:
            row = self.arns.setdefault(arn, dict.fromkeys(COUNTERS, 0))
            for name in names:
                row[name] += 1

    def saw(self, operation: str):
        with self.lock:
            self.requests[operation] = self.requests.get(operation, 0) + 1

    def record(self, arn: str, operation: str, outcome: str, **more):
        with self.lock:
            self.log.append({"t_ms": round(now_ms() - self.started_ms, 1), "arn": arn,
                             "operation": operation, "outcome": outcome, **more})

    def locked_for_ms(self, arn: str) -> float:
        """How long writes to `arn` stay refused (0: not locked). Caller holds self.lock."""
        last = self.last_write_ms.get(arn)
        if last is None or self.lock_ms <= 0:
            return 0.0
        return max(0.0, last + self.lock_ms - now_ms())

    def take_fault(self, kind: str, arn: str, operation: str) -> dict | None:
        """Uses one count of the first matching fault of `kind`; returns a copy of it."""
        with self.lock:
            for fault in self.faults:
                if (fault["kind"] == kind and fault.get("arn") in (None, arn)
                        and fault.get("operation") in (None, operation)):
                    fault["count"] -= 1
                    if fault["count"] <= 0:
                        self.faults.remove(fault)
                    return dict(fault)
        return None

    def stats(self) -> dict:
        with self.lock:
            totals = dict.fromkeys(COUNTERS, 0)
            arns = {}
            for arn, row in self.arns.items():
                for name in COUNTERS:
                    totals[name] += row[name]
                arns[arn] = {**row, "locked_for_ms": round(self.locked_for_ms(arn))}
            for arn in self.last_write_ms:
                if arn not in arns:
                    arns[arn] = {**dict.fromkeys(COUNTERS, 0), "locked_for_ms": round(self.locked_for_ms(arn))}
            return {"config": {"lock_ms": self.lock_ms}, "totals": totals, "arns": arns,
                    "requests": dict(self.requests), "faults": [dict(f) for f in self.faults]}


# --------------------------------------------------------------------------
# The admin API: /_proxy/...
# --------------------------------------------------------------------------

class BadRequest(Exception):
    pass


def admin(state: State, method: str, path: str, body: bytes) -> Reply:
    route = path.split("?", 1)[0].rstrip("/").removeprefix("/_proxy/")
    try:
        data = json.loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        if (method, route) == ("GET", "health"):
            return Reply.json(200, {"status": "ok", "upstream": state.upstream})
        if (method, route) == ("GET", "stats"):
            return Reply.json(200, state.stats())
        if (method, route) == ("GET", "log"):
            with state.lock:
                return Reply.json(200, {"writes": list(state.log)})
        if (method, route) == ("POST", "reset"):
            state.reset()
            return Reply.json(200, state.stats())
        if route == "config" and method in ("GET", "POST"):
            if method == "POST":
                unknown = set(data) - {"lock_ms"}
                if unknown:
                    raise BadRequest(f"unknown config keys {sorted(unknown)}; known: lock_ms")
                if "lock_ms" in data:
                    state_set_lock(state, data["lock_ms"])
            with state.lock:
                return Reply.json(200, {"lock_ms": state.lock_ms})
        if (method, route) == ("POST", "unlock"):
            with state.lock:
                if data.get("arn"):
                    state.last_write_ms.pop(data["arn"], None)
                else:
                    state.last_write_ms.clear()
            return Reply.json(200, state.stats())
        if route == "faults":
            if method == "POST":
                fault = parse_fault(data)
                with state.lock:
                    state.faults.append(fault)
            elif method == "DELETE":
                with state.lock:
                    state.faults.clear()
            elif method != "GET":
                raise BadRequest(f"{method} /_proxy/faults is not supported")
            with state.lock:
                return Reply.json(200, {"faults": [dict(f) for f in state.faults]})
        return Reply.json(404, {"error": f"no admin route {method} /_proxy/{route}; see tests/peers/README.md"})
    except (BadRequest, ValueError) as exc:
        return Reply.json(400, {"error": str(exc)})


def state_set_lock(state: State, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"lock_ms must be a whole number >= 0, got {value!r}")
    with state.lock:
        state.lock_ms = value


def parse_fault(data: dict) -> dict:
    kind = data.get("kind")
    allowed = {"hold": {"kind", "arn", "operation", "count", "ms"},
               "lose_reply": {"kind", "arn", "operation", "count"}}
    if kind not in allowed:
        raise BadRequest(f"fault kind must be 'hold' or 'lose_reply', got {kind!r}")
    unknown = set(data) - allowed[kind]
    if unknown:
        raise BadRequest(f"unknown keys for a {kind} fault: {sorted(unknown)}")
    count = data.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise BadRequest(f"count must be a whole number >= 1, got {count!r}")
    operation = data.get("operation")
    if operation is not None and operation not in WRITES:
        raise BadRequest(f"operation must be one of {list(WRITES)} (or left out for both), got {operation!r}")
    arn = data.get("arn")
    if arn is not None and (not isinstance(arn, str) or not arn):
        raise BadRequest("arn must be a ResourceArn (or left out for any)")
    fault = {"kind": kind, "arn": arn, "operation": operation, "count": count}
    if kind == "hold":
        ms = data.get("ms")
        if not isinstance(ms, int) or isinstance(ms, bool) or not 1 <= ms <= 600_000:
            raise BadRequest(f"a hold fault needs ms, a whole number 1..600000, got {ms!r}")
        fault["ms"] = ms
    return fault


# --------------------------------------------------------------------------
# Forwarding
# --------------------------------------------------------------------------

class Upstream:
    """One keep-alive connection to moto per proxy thread (one thread per client connection)."""

    def __init__(self, url: str, timeout_s: float = 120.0):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--upstream must be http://host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout_s = timeout_s
        self.local = threading.local()

    def _conn(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self.local.conn = conn
        return conn

    def send(self, method: str, path: str, headers: list, body: bytes) -> Reply:
        for attempt in (1, 2):
            conn = self._conn(fresh=attempt == 2)
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        conn.putheader(name, value)
                if body or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection moto had closed: nothing was answered, try once anew.
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                conn.close()
                self.local.conn = None
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return Reply(resp.status, kept, data, resp.reason)
        raise AssertionError("unreachable")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ddb-proxy/1"
    disable_nagle_algorithm = True

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    @property
    def state(self) -> State:
        return self.server.state

    def handle_any(self):
        try:
            body = self.read_body()
        except ValueError as exc:
            self.close_connection = True
            self.send(Reply.json(400, {"error": f"bad request framing: {exc}"}))
            return
        try:
            if self.path.startswith("/_proxy/"):
                reply = admin(self.state, self.command, self.path, body)
            else:
                reply = self.proxy(body)
        except Exception as exc:  # upstream down, or a bug here: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            reply = Reply(502, [("Content-Type", "application/json")],
                          json_bytes({"message": f"ddb_proxy: {type(exc).__name__}: {exc}"}))
        if reply is None:  # a lost reply: the write was forwarded, the client gets nothing
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send(reply)

    # -- the proxy -----------------------------------------------------------

    def proxy(self, body: bytes) -> Reply | None:
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        self.state.saw(operation or "<other>")
        if self.command == "POST" and operation in WRITES:
            request = self.parse(body)
            arn = request.get("ResourceArn") if isinstance(request, dict) else None
            if isinstance(arn, str) and arn:
                return self.write(operation, arn, request, body)
        return self.forward(body)

    def parse(self, body: bytes):
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            return json.loads(body)
        except (ValueError, OSError):
            return None

    def forward(self, body: bytes, headers=None) -> Reply:
        return self.server.upstream.send(self.command, self.path,
                                         headers if headers is not None else self.headers.items(), body)

    def write(self, operation: str, arn: str, request: dict, body: bytes) -> Reply | None:
        state = self.state
        hold = state.take_fault("hold", arn, operation)
        if hold:
            state.count(arn, "held")
            time.sleep(hold["ms"] / 1000.0)  # outside every lock: other writes overtake it
        expected = request.get("ExpectedRevisionId")
        with state.arn_lock(arn):
            with state.lock:
                locked_for = state.locked_for_ms(arn)
                lock_ms = state.lock_ms
            if locked_for > 0:
                state.count(arn, "locked")
                state.record(arn, operation, "locked")
                return Reply.ddb_error(
                    "ResourceInUseException",
                    f"Attempt to change a resource which is still in use: a resource-based policy "
                    f"update on {arn} was accepted {lock_ms - locked_for:.0f} ms ago, and updates are "
                    f"blocked for {lock_ms} ms after each one (ddb_proxy emulating DynamoDB)")
            if isinstance(expected, str) and not (operation == "PutResourcePolicy" and expected == "NO_POLICY"):
                refusal = self.check_revision(arn, expected)
                if refusal is not None:
                    state.count(arn, "precondition_failed")
                    state.record(arn, operation, "precondition_failed", expected=expected)
                    return refusal
            lose = state.take_fault("lose_reply", arn, operation)
            reply = self.forward(body)
            if reply.status < 300:
                with state.lock:
                    state.last_write_ms[arn] = now_ms()
                revision = None
                try:
                    revision = json.loads(reply.body or b"{}").get("RevisionId")
                except (ValueError, AttributeError):
                    pass
                state.count(arn, "writes", "puts" if operation == "PutResourcePolicy" else "deletes",
                            *(("lost_replies",) if lose else ()))
                state.record(arn, operation, "lost_reply" if lose else "written", revision=revision)
                time.sleep(REVISION_GAP_S)  # the next write gets another millisecond: another RevisionId
            else:
                code = reply.error_code()
                if code == "PolicyNotFoundException" and expected is not None:
                    state.count(arn, "precondition_failed")
                    state.record(arn, operation, "precondition_failed", expected=expected)
                else:
                    state.count(arn, "errors")
                    state.record(arn, operation, f"error:{code}")
                if lose:  # nothing landed: the fault is not used up
                    with state.lock:
                        state.faults.insert(0, {**lose, "count": 1})
                    lose = None
        return None if lose else reply

    def check_revision(self, arn: str, expected: str) -> Reply | None:
        """PolicyNotFoundException if the policy is missing or has another revision;
        None when the write may go on (also when the read fails: moto then answers)."""
        headers = [(k, v) for k, v in self.headers.items() if k.lower() in CHECK_HEADERS]
        headers += [("Content-Type", JSON_10), ("X-Amz-Target", TARGET_PREFIX + "GetResourcePolicy")]
        reply = self.server.upstream.send("POST", "/", headers, json_bytes({"ResourceArn": arn}))
        table = arn.split(":", 5)[-1]
        if reply.status < 300:
            current = json.loads(reply.body).get("RevisionId")
            if current == expected:
                return None
            why = f"the policy associated to target {table} has revision id {current}"
        elif reply.error_code() == "PolicyNotFoundException":
            why = f"no policy is associated to target {table}"
        else:
            return None
        return Reply.ddb_error(
            "PolicyNotFoundException",
            f"Resource-based policy not found for the provided ResourceArn: Requested update for "
            f"policy with revision id {expected}, but {why}.")

    # -- HTTP plumbing (as in policy_server.py) --------------------------------

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
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

    def send(self, reply: Reply):
        """Sends `reply`; Server and Date only when it has none (moto's are kept)."""
        self.log_request(reply.status)
        self.send_response_only(reply.status, reply.reason)
        present = {name.lower() for name, _ in reply.headers}
        if "server" not in present:
            self.send_header("Server", self.version_string())
        if "date" not in present:
            self.send_header("Date", self.date_time_string())
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, upstream: str, lock_ms: int, verbose: bool = False):
        super().__init__(address, Handler)
        self.upstream = Upstream(upstream)
        self.state = State(lock_ms)
        self.state.upstream = upstream
        self.verbose = verbose


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default=os.environ.get("DDB_PROXY_UPSTREAM"),
                        help="moto's URL, http://127.0.0.1:<port> (env DDB_PROXY_UPSTREAM)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--lock-ms", type=int,
                        default=int(os.environ.get("DDB_PROXY_LOCK_MS", DEFAULT_LOCK_MS)),
                        help="update lock per ResourceArn after each successful write; 0 disables "
                             "(env DDB_PROXY_LOCK_MS, default 15000)")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    if not args.upstream:
        parser.error("--upstream (or DDB_PROXY_UPSTREAM) is required")
    if args.lock_ms < 0:
        parser.error("--lock-ms must be >= 0")

    server = ProxyServer((args.host, args.port), args.upstream, args.lock_ms, args.verbose)

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
