#!/usr/bin/env python3
"""Eight owners on one DynamoDB table behind DynamoDB's 15 s update lock (issue 14).
Run it through scripts/bench-owners. A benchmark, not a test: it reports, never fails
on a number.

N CloudFormation custom resources with `Statements` (each its own Sid, each from its
own stack and logical id) are created at the same moment on ONE table. Each is one
Lambda execution environment, as Lambda runs concurrent invocations: the real
`bootstrap` process under its own Lambda Runtime API served here on loopback (the
request-id, deadline and function-ARN headers, the response and error posts), with
the CloudFormation answer PUT to a ResponseURL recorded here. DynamoDB is moto behind
tests/peers/ddb_proxy.py, which emulates DynamoDB's policy-update lock and answers
ExpectedRevisionId as DynamoDB does; the ledger (LEDGER_TABLE) is a table on the same
moto. Every lock setting runs on fresh tables.

Figures per lock setting:
  wall         events handed over -> the last CloudFormation answer
  answers      SUCCESS / FAILED, each answer's time and Reason
  writes       Put/DeleteResourcePolicy that reached the service (the proxy's count),
               plus those the lock refused and those that failed their precondition
  live Sids    owners' Sids in the table's policy afterwards (a FAILED owner's Sid
               left in force is worth knowing: its stack rolls back)

Usage: owners.py --binary PATH [--owners 8] [--locks 15000,0] [--service-timeout 300]
                 [--json FILE] [--logs DIR] [--env NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import harness  # noqa: E402  (moto, the proxy, boto3 clients: the integration tests' own)

REGION = harness.REGION
ACCOUNT = harness.MOTO_ACCOUNT
FUNCTION_NAME = "resource-policy-provider"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
DEADLINE_S = 900  # the template's Timeout, Lambda's maximum


# --- the ResponseURL: one recorder for the whole run -----------------------------------

class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecorderHandler)
        self.puts = {}  # request id -> (monotonic time, answer)
        self.cond = threading.Condition()

    def handle_error(self, request, client_address):
        pass


class RecorderHandler(Quiet):
    def do_PUT(self):
        body = self.body()
        now = time.monotonic()
        request_id = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"Status": "UNPARSABLE", "Reason": body[:200].decode(errors="replace")}
        with self.server.cond:
            self.server.puts.setdefault(request_id, (now, answer))
            self.server.cond.notify_all()
        self.reply(200)


# --- the Lambda Runtime API: one per execution environment ----------------------------

class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.events = []  # (request id, body) waiting to be handed out
        self.nexts = 0  # `next` requests seen
        self.results = {}  # request id -> ("response" | "error", text)
        self.init_error = None
        self.closing = False
        self.cond = threading.Condition()

    def handle_error(self, request, client_address):
        pass  # a killed function's connection resets: expected

    def invoke(self, request_id, body):
        with self.cond:
            self.events.append((request_id, body))
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.shutdown()
        self.server_close()


class RuntimeHandler(Quiet):
    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404)
        api = self.server
        with api.cond:
            api.nexts += 1
            api.cond.notify_all()
            api.cond.wait_for(lambda: api.events or api.closing)
            if not api.events:
                return self.reply(500)
            request_id, body = api.events.pop(0)
        deadline = int((time.time() + DEADLINE_S) * 1000)
        self.reply(200, body, [("Content-Type", "application/json"),
                               ("Lambda-Runtime-Aws-Request-Id", request_id),
                               ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                               ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
                               ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")])

    def do_POST(self):
        body = self.body()
        parts = self.path.split("/")
        api = self.server
        with api.cond:
            if self.path.endswith("/runtime/init/error"):
                api.init_error = body.decode(errors="replace")
            elif len(parts) >= 6 and parts[-1] in ("response", "error"):
                api.results[parts[-2]] = (parts[-1], body.decode(errors="replace"))
            api.cond.notify_all()
        self.reply(202, b'{"status":"OK"}', [("Content-Type", "application/json")])


# --- one owner: an execution environment and its Create event -------------------------

class Owner:
    def __init__(self, index, binary, env, log_path):
        self.index = index
        self.sid = f"Owner{index}Read"
        self.stack = f"owners-bench-{index}"
        self.logical_id = f"SharedTableGrant{index}"
        self.request_id = str(uuid.uuid4())
        self.api = RuntimeApi()
        threading.Thread(target=self.api.serve_forever, daemon=True).start()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(binary)], env={**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.api.server_address[1]}"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def event(self, table_arn, response_base, service_timeout):
        props = {
            "ServiceToken": FUNCTION_ARN,
            "ResourceArn": table_arn,
            "Statements": [{
                "Sid": self.sid,
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::1111222233{self.index:02d}:role/reader-{self.index}"},
                "Action": ["dynamodb:GetItem", "dynamodb:Query"],
                "Resource": [table_arn, f"{table_arn}/index/*"],
            }],
        }
        if service_timeout:
            props["ServiceTimeout"] = str(service_timeout)
        stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{self.stack}/{uuid.uuid4()}"
        return json.dumps({
            "RequestType": "Create",
            "ServiceToken": FUNCTION_ARN,
            "ResponseURL": f"{response_base}/cfn-response/{self.request_id}",
            "StackId": stack_id,
            "RequestId": self.request_id,
            "LogicalResourceId": self.logical_id,
            "ResourceType": "Custom::SharedTablePolicy",
            "ResourceProperties": props,
        }).encode()

    def ready(self):
        with self.api.cond:
            return self.api.nexts >= 1 or self.api.init_error is not None or self.proc.poll() is not None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.api.close()


# --- one run: N owners, one lock setting ----------------------------------------------

def wait_until(predicate, timeout_s, what, poll_s=0.02):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def make_table(ddb, name, key):
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
    return ddb.describe_table(TableName=name)["Table"]["TableArn"]


def run_once(args, lock_ms, moto, proxy, recorder, binary, workdir):
    tag = uuid.uuid4().hex[:8]
    direct = moto.client("dynamodb")
    table_arn = make_table(direct, f"owners-shared-{tag}", "pk")
    ledger = f"owners-ledger-{tag}"
    make_table(direct, ledger, "target")
    proxy.reset()
    proxy.configure(lock_ms=lock_ms)

    response_base = f"http://127.0.0.1:{recorder.server_address[1]}"
    env = {
        # HOME is the scratch directory: no ~/.aws of the host leaks in.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": harness.DUMMY_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": harness.DUMMY_SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        # Every other service would go to moto; DynamoDB (targets and ledger) through the proxy.
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ENDPOINT_URL_DYNAMODB": proxy.url,
        "LEDGER_TABLE": ledger,
        "RESPONSE_URL_ALLOWED_HOSTS": response_base.split("://", 1)[1],
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
        "AWS_LAMBDA_LOG_LEVEL": os.environ.get("AWS_LAMBDA_LOG_LEVEL", "info"),
    }
    env.update(args.extra_env)

    log_dir = workdir / f"lock-{lock_ms}"
    log_dir.mkdir(parents=True, exist_ok=True)
    owners = []
    try:
        for i in range(1, args.owners + 1):
            owners.append(Owner(i, binary, env, log_dir / f"owner-{i}.log"))
        wait_until(lambda: all(o.ready() for o in owners), 60, "every bootstrap's first `next`")
        broken = [o for o in owners if o.api.init_error is not None or o.proc.poll() is not None]
        if broken:
            o = broken[0]
            raise RuntimeError(f"owner {o.index}'s bootstrap did not start (exit {o.proc.poll()}, "
                               f"init error {o.api.init_error}):\n{o.log_path.read_text(errors='replace')[-2000:]}")

        bodies = [o.event(table_arn, response_base, args.service_timeout) for o in owners]
        t0 = time.monotonic()
        for o, body in zip(owners, bodies):
            o.api.invoke(o.request_id, body)
        timeout = args.answer_timeout
        with recorder.cond:
            if not recorder.cond.wait_for(lambda: all(o.request_id in recorder.puts for o in owners),
                                          timeout=timeout):
                missing = [o.index for o in owners if o.request_id not in recorder.puts]
                raise RuntimeError(f"owners {missing} gave no CloudFormation answer within {timeout} s "
                                   f"(logs in {log_dir})")
        # The invocations end with the runtime's response post (a Lambda error would
        # mean CloudFormation waits for its timeout instead: worth seeing).
        wait_until(lambda: all(o.request_id in o.api.results for o in owners), 60,
                   "every invocation's end (runtime response post)")
    finally:
        for o in owners:
            o.stop()

    answers = []
    for o in owners:
        at, answer = recorder.puts[o.request_id]
        kind, _ = o.api.results.get(o.request_id, ("none", ""))
        answers.append({"owner": o.index, "sid": o.sid, "stack": o.stack, "logical_id": o.logical_id,
                        "status": answer.get("Status"), "reason": answer.get("Reason") or "",
                        "seconds": round(at - t0, 3), "invocation": kind})
    wall = max(a["seconds"] for a in answers)

    stats = proxy.arn_stats(table_arn)
    requests = proxy.stats()["requests"]
    try:
        live = json.loads(direct.get_resource_policy(ResourceArn=table_arn)["Policy"])
        statements = live.get("Statement", [])
        live_sids = sorted(s.get("Sid", "") for s in (statements if isinstance(statements, list) else [statements]))
    except direct.exceptions.PolicyNotFoundException:
        live_sids = []
    ledger_rows = direct.scan(TableName=ledger, Select="COUNT")["Count"]
    succeeded = [a for a in answers if a["status"] == "SUCCESS"]
    failed_live = sorted(a["sid"] for a in answers if a["status"] != "SUCCESS" and a["sid"] in live_sids)
    return {
        "lock_ms": lock_ms, "owners": args.owners, "table": table_arn, "ledger": ledger,
        "wall_s": wall, "succeeded": len(succeeded), "failed": len(answers) - len(succeeded),
        "writes": stats["writes"], "puts": stats["puts"], "deletes": stats["deletes"],
        "locked": stats["locked"], "precondition_failed": stats["precondition_failed"],
        "write_errors": stats["errors"], "policy_reads": requests.get("GetResourcePolicy", 0),
        "live_sids": live_sids, "failed_owners_live": failed_live, "ledger_rows": ledger_rows,
        "answers": answers, "write_log": [e for e in proxy.log() if e["arn"] == table_arn],
    }


# --- report -------------------------------------------------------------------------------

def table(results):
    head = ["lock", "owners", "SUCCESS", "FAILED", "wall (s)", "writes landed", "refused by lock",
            "precondition failed", "policy reads", "owner Sids live"]
    rows = [[f"{r['lock_ms'] / 1000:g} s" if r["lock_ms"] else "off", str(r["owners"]), str(r["succeeded"]),
             str(r["failed"]), f"{r['wall_s']:.1f}", str(r["writes"]), str(r["locked"]),
             str(r["precondition_failed"]), str(r["policy_reads"]),
             f"{sum(1 for s in r['live_sids'] if s.startswith('Owner'))}/{r['owners']}"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def details(r):
    lock = f"{r['lock_ms']} ms lock" if r["lock_ms"] else "no lock"
    out = [f"{lock}: every answer (seconds after the {r['owners']} events were handed over)"]
    for a in sorted(r["answers"], key=lambda a: a["seconds"]):
        reason = a["reason"].replace("\n", " ")
        if len(reason) > 400:
            reason = reason[:397] + "..."
        out.append(f"  {a['seconds']:7.2f}  owner {a['owner']}  {a['status']:<7}  {reason}")
    if r["failed_owners_live"]:
        out.append(f"  FAILED owners whose Sid is in the live policy: {', '.join(r['failed_owners_live'])}")
    out.append(f"  ledger rows: {r['ledger_rows']}; live Sids: {', '.join(r['live_sids']) or '(no policy)'}")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True, help="the function's bootstrap (resource-policy-provider)")
    p.add_argument("--owners", type=int, default=8)
    p.add_argument("--locks", default="15000,0",
                   help="lock settings to run, in ms, comma-separated (0: no lock); default 15000,0")
    p.add_argument("--service-timeout", type=int, default=300,
                   help="each resource's ServiceTimeout in seconds (0: none); default 300, as the samples")
    p.add_argument("--answer-timeout", type=float, default=DEADLINE_S + 60,
                   help="seconds to wait for all answers of one run")
    p.add_argument("--json", help="also write every figure (and each answer and write) to this file")
    p.add_argument("--logs", help="keep the function's logs in this directory")
    p.add_argument("--env", dest="extra_env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra variable for the function")
    args = p.parse_args(argv)
    args.extra_env = dict(kv.split("=", 1) for kv in args.extra_env)
    locks = [int(x) for x in args.locks.split(",") if x.strip()]
    if args.owners < 1 or not locks or any(l < 0 for l in locks):
        p.error("--owners must be >= 1 and --locks whole numbers >= 0")

    # SIGTERM ends the run through the same cleanup as Ctrl-C.
    def interrupted(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix="bench-owners-"))
    # A private copy: a build finishing meanwhile cannot swap the binary mid-run.
    binary = workdir / "bootstrap"
    shutil.copy2(args.binary, binary)
    peers = []
    recorder = Recorder()
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    results = []
    try:
        moto_peer = harness.start_moto(workdir / "moto")
        peers.append(moto_peer)
        moto = harness.Emulator(moto_peer, harness.MOTO_ACCOUNT)
        proxy_peer = harness.start_ddb_proxy(workdir / "proxy", moto.url, lock_ms=locks[0])
        peers.append(proxy_peer)
        proxy = harness.DdbProxy(proxy_peer)
        print(f"bench-owners: {args.owners} owners, one table, locks {locks} ms; moto {moto.url}, "
              f"proxy {proxy.url}; binary {args.binary}", file=sys.stderr, flush=True)
        for lock_ms in locks:
            t = time.monotonic()
            r = run_once(args, lock_ms, moto, proxy, recorder, binary, workdir)
            results.append(r)
            print(f"bench-owners: lock {lock_ms} ms done in {time.monotonic() - t:.1f} s", file=sys.stderr,
                  flush=True)
    except harness.PeerError as exc:
        print(f"bench-owners: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"bench-owners: {exc}" + ("" if args.logs else "\n(--logs DIR keeps the function's logs)"),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-owners: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for peer in reversed(peers):
            peer.stop()
        recorder.shutdown()
        recorder.server_close()
        if args.logs:
            dest = Path(args.logs)
            dest.mkdir(parents=True, exist_ok=True)
            for d in workdir.glob("lock-*"):
                shutil.copytree(d, dest / d.name, dirs_exist_ok=True)
            for peer in peers:
                shutil.copy2(peer.log_path, dest / peer.log_path.name)
        shutil.rmtree(workdir, ignore_errors=True)

    print(table(results))
    print()
    for r in results:
        print(details(r))
        print()
    if args.json:
        Path(args.json).write_text(json.dumps({"binary": args.binary, "runs": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
