#!/usr/bin/env python3
"""Benchmark: cold start to CloudFormation response, peak memory, package size.

Runs the real binary (default target/release/resource-policy-provider) as Lambda
would: a minimal Lambda Runtime API on loopback hands it one CloudFormation Create for
an X-Ray policy (served by tests/peers/policy_server.py), and the time from process
spawn to the response PUT arriving is the cold start to response. A second invocation
on the same process gives the warm figure. VmHWM gives peak resident memory.

Usage: python3 tests/bench/cold_start.py [path/to/binary] [runs]
"""
import http.server
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the killed function's idle connection resets: expected

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.events = []  # queued invocation bodies
        self.responses = []  # (time, body) of CloudFormation response PUTs
        self.cond = threading.Condition()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per reply

    def log_message(self, *a):
        pass

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("/invocation/next"):
            with self.server.cond:
                self.server.cond.wait_for(lambda: self.server.events)
                body = self.server.events.pop(0)
            deadline = int((time.time() + 60) * 1000)
            self._reply(200, body, [("Lambda-Runtime-Aws-Request-Id", "inv-%d" % time.time_ns()),
                                    ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                                    ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")])
        else:
            self._reply(404)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._reply(202)

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.cond:
            self.server.responses.append((time.monotonic(), json.loads(body)))
            self.server.cond.notify_all()
        self._reply(200)


def event(port, n):
    return json.dumps({
        "RequestType": "Create", "RequestId": "req-%d" % n, "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/b/1",
        "ResponseURL": "http://127.0.0.1:%d/cfn-response/%d" % (port, n), "ResourceType": "Custom::Policy",
        "LogicalResourceId": "Policy", "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:bench", "PolicyName": "bench-%d" % n,
            "Policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                                                               "Action": "xray:PutTraceSegments", "Resource": "*"}]}}}).encode()


def wait_response(api, count):
    with api.cond:
        api.cond.wait_for(lambda: len(api.responses) >= count, timeout=30)
        return api.responses[count - 1]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/resource-policy-provider")
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    peer = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/peers/policy_server.py"), "--port", "0"], stdout=subprocess.PIPE, text=True)
    peer_port = int(peer.stdout.readline().split()[1])
    env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % peer_port,
           "AWS_LAMBDA_FUNCTION_NAME": "bench",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_LOG_STREAM_NAME": "s", "AWS_LAMBDA_LOG_GROUP_NAME": "g", "AWS_LAMBDA_LOG_LEVEL": "warn"}
    show_logs = os.environ.get("BENCH_SHOW_LOGS") == "1"  # to inspect the function's log lines
    if show_logs:
        env.update(AWS_LAMBDA_LOG_LEVEL="info", AWS_LAMBDA_LOG_FORMAT="JSON")
    cold, warm, peaks = [], [], []
    for _ in range(runs):
        # X-Ray allows 5 policies per region: start each run from an empty server.
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/_fake/reset" % peer_port, b"{}", method="POST"))
        # A fresh Runtime API per cold start: a killed process's pending /next must not
        # take the next run's event.
        api = RuntimeApi()
        threading.Thread(target=api.serve_forever, daemon=True).start()
        port = api.server_address[1]
        env.update(AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % port, RESPONSE_URL_ALLOWED_HOSTS="127.0.0.1:%d" % port)
        n = 1
        with api.cond:
            api.events.append(event(port, n))
        start = time.monotonic()
        proc = subprocess.Popen([binary], env=env, stdout=None if show_logs else subprocess.DEVNULL)
        t, body = wait_response(api, n)
        assert body["Status"] == "SUCCESS", body
        cold.append((t - start) * 1000)
        n += 1
        with api.cond:
            api.events.append(event(port, n))
            sent = time.monotonic()
            api.cond.notify_all()
        t, body = wait_response(api, n)
        assert body["Status"] == "SUCCESS", body
        warm.append((t - sent) * 1000)
        with open("/proc/%d/status" % proc.pid) as f:
            peaks.append(int(next(l for l in f if l.startswith("VmHWM")).split()[1]) / 1024)
        proc.kill()
        proc.wait()
        api.shutdown()
    peer.terminate()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(binary, "bootstrap")
    print("| figure | value |\n|---|---|")
    print("| cold start to response PUT (median of %d, incl. put + read-back) | %.1f ms |" % (runs, statistics.median(cold)))
    print("| warm invocation to response PUT (median) | %.1f ms |" % statistics.median(warm))
    print("| peak resident memory (max) | %.1f MiB |" % max(peaks))
    print("| binary size | %.1f MiB |" % (os.path.getsize(binary) / 2**20))
    print("| package size (zipped bootstrap) | %.1f MiB |" % (len(buf.getvalue()) / 2**20))


if __name__ == "__main__":
    main()
