#!/usr/bin/env python3
"""The cold path, side by side with crhelper (issue 10). Run it through scripts/bench.

Our `bootstrap` and the alternative a user would pick today (crhelper + boto3 under
awslambdaric, tests/bench/crhelper_function.py) run as Lambda would run them: under a
Lambda Runtime API served here on loopback (`/2018-06-01/runtime/invocation/next`, the
response and error posts; the request-id, deadline and function-ARN headers), against
ministack (DynamoDB and Kinesis resource policies), over plain HTTP and over TLS. For
TLS a TLS-terminating proxy with a self-signed CA sits in front of the emulator and of
the ResponseURL; both functions trust that CA the standard way: SSL_CERT_FILE (rustls'
native roots, OpenSSL) and AWS_CA_BUNDLE (botocore), a bundle of the system roots plus
the CA. No test-only path in our function.

Figures, over N fresh processes per (mode, implementation, service), the two
implementations alternating within each round:
  init        process start -> first `next` request
  cold Create process start -> the SUCCESS PUT on the ResponseURL (put + read-back)
  CPU         user + system CPU of that process up to the end of the cold invocation
              (it is killed while waiting for the next event; wait4 rusage)
  peak RSS    VmHWM at that point
  warm Create on one long-running process per (mode, implementation, service): event
              handed over -> SUCCESS PUT, N times after a first, discarded, Create
  zip         bootstrap zipped; crhelper: crhelper + the function (boto3 is in the runtime)

Usage: cold_start.py --binary PATH [--runs N] [--services dynamodb,kinesis]
                     [--modes http,tls] [--crhelper-python PATH | --no-crhelper]
                     [--readme README.md] [--label TEXT]
"""
import argparse
import asyncio
import http.server
import io
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ACCOUNT = "000000000000"  # ministack's account for a non-numeric access key
REGION = "us-east-1"
EMULATOR_HOST = "127.0.0.1"  # the AWS endpoint (or its TLS proxy)
RESPONSE_HOST = "127.0.0.2"  # the ResponseURL (another loopback name: no shared TLS session)
FUNCTION_ARN = "arn:aws:lambda:%s:%s:function:bench" % (REGION, ACCOUNT)
TABLE = "bench-table"
STREAM = "bench-stream"
LEDGER = "bench-ledger"
TIMEOUT = 60


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- the ResponseURL: one recorder for the whole run -------------------------------

class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecorderHandler)
        self.puts = {}  # request id -> (monotonic time, body)
        self.cond = threading.Condition()

    def handle_error(self, request, client_address):
        pass

    def wait(self, request_id):
        with self.cond:
            if not self.cond.wait_for(lambda: request_id in self.puts, timeout=TIMEOUT):
                raise RuntimeError("no response PUT for %s within %d s" % (request_id, TIMEOUT))
            return self.puts[request_id]


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per reply

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


class RecorderHandler(QuietHandler):
    def do_PUT(self):
        body = self.body()
        now = time.monotonic()
        request_id = self.path.rsplit("/", 1)[-1]
        with self.server.cond:
            self.server.puts[request_id] = (now, json.loads(body))
            self.server.cond.notify_all()
        self.reply(200)


# --- the Lambda Runtime API: a fresh one per process -------------------------------

class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.events = []  # (request id, body) waiting to be handed out
        self.nexts = []  # monotonic times of `next` requests
        self.results = {}  # request id -> ("response" | "error", body)
        self.init_error = None
        self.cond = threading.Condition()

    def handle_error(self, request, client_address):
        pass  # a killed function's connection resets: expected

    def wait_for(self, what, why):
        with self.cond:
            if not self.cond.wait_for(what, timeout=TIMEOUT):
                raise RuntimeError("timed out waiting for %s (init error: %s)" % (why, self.init_error))

    def invoke(self, request_id, body):
        """Hands an event over; returns the time it was made available."""
        with self.cond:
            self.events.append((request_id, body))
            now = time.monotonic()
            self.cond.notify_all()
        return now


class RuntimeHandler(QuietHandler):
    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404)
        api = self.server
        with api.cond:
            api.nexts.append(time.monotonic())
            api.cond.notify_all()
            if not api.cond.wait_for(lambda: api.events, timeout=600):
                return self.reply(500)
            request_id, body = api.events.pop(0)
        deadline = int((time.time() + 300) * 1000)
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


# --- TLS: a CA, a server certificate, and a TLS-terminating proxy ------------------

def make_ca(directory):
    """A CA and a server certificate for both loopback names, with the openssl CLI."""
    ca_key, ca_crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr, crt = (os.path.join(directory, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:%s,IP:%s,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                % (EMULATOR_HOST, RESPONSE_HOST))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    # RSA 2048 like the certificates AWS endpoints and S3 present.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
        "-days", "2", "-subj", "/CN=resource-policy-provider bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    # What a function trusts: the system roots plus the CA, as one bundle, so that
    # loading the trust store costs what it costs on a real host.
    bundle = os.path.join(directory, "bundle.pem")
    system = ssl.get_default_verify_paths().openssl_cafile
    with open(bundle, "wb") as out:
        for path in (system, ca_crt):
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    out.write(f.read().rstrip(b"\n") + b"\n")
    return crt, key, bundle


class TlsProxy:
    """Terminates TLS on (host, port) and pipes the plain bytes to a backend port."""

    def __init__(self, crt, key):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(crt, key)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def listen(self, host, backend_port):
        async def start():
            server = await asyncio.start_server(
                lambda r, w: self.pipe(r, w, backend_port), host, 0, ssl=self.ctx)
            return server.sockets[0].getsockname()[1]
        return asyncio.run_coroutine_threadsafe(start(), self.loop).result()

    async def pipe(self, reader, writer, backend_port):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", backend_port)
        except OSError:
            writer.close()
            return

        async def copy(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError, ConnectionError):
                pass
            finally:
                try:
                    dst.close()
                except Exception:
                    pass
        await asyncio.gather(copy(reader, up_w), copy(up_r, writer))


# --- the emulator --------------------------------------------------------------------

def start_ministack(workdir):
    exe = os.path.join(ROOT, ".venv", "bin", "ministack")
    if not os.path.exists(exe):
        raise SystemExit("cold_start: ministack is missing; run scripts/install-peers")
    port = free_port()
    env = dict(os.environ, GATEWAY_PORT=str(port), BIND_HOST="127.0.0.1", IOT_MTLS_ENABLED="0",
               SFTP_ENABLED="0", TMPDIR=workdir, STATE_DIR=os.path.join(workdir, "state"),
               S3_DATA_DIR=os.path.join(workdir, "s3"), DOCKER_HOST="unix:///nonexistent",
               LOG_LEVEL="WARNING", MINISTACK_REGION=REGION)
    proc = subprocess.Popen([exe], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/_ministack/ready" % port, timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("cold_start: ministack did not become ready")


def make_resources(port, services):
    import boto3  # the driver runs on a Python with boto3 (bench venv or .venv)
    kw = dict(endpoint_url="http://127.0.0.1:%d" % port, region_name=REGION,
              aws_access_key_id="test", aws_secret_access_key="test")
    arns = {}
    # The ledger the function records ownership in (it refuses to start without one).
    boto3.client("dynamodb", **kw).create_table(
        TableName=LEDGER, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "target", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "target", "KeyType": "HASH"}])
    if "dynamodb" in services:
        ddb = boto3.client("dynamodb", **kw)
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1})
        arns["dynamodb"] = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    if "kinesis" in services:
        kin = boto3.client("kinesis", **kw)
        kin.create_stream(StreamName=STREAM, ShardCount=1)
        kin.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 1})
        arns["kinesis"] = kin.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    return arns


def policy(service, arn, n=0):
    """The policy of run `n`: each run writes a new document, so every cold Create does
    the whole path (record, read, put, read-back, settle), never a no-op adoption."""
    action = "dynamodb:GetItem" if service == "dynamodb" else "kinesis:GetRecords"
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "BenchRead%d" % n, "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111122223333:role/bench-reader"},
        "Action": action, "Resource": arn}]}


# --- one process -----------------------------------------------------------------------

class Bench:
    def __init__(self, args, arns, recorder, endpoints, bundle, home):
        self.args, self.arns, self.recorder = args, arns, recorder
        self.endpoints = endpoints  # mode -> (AWS endpoint URL, ResponseURL base)
        self.bundle, self.home = bundle, home
        self.n = 0

    def event(self, mode, service):
        self.n += 1
        request_id = "req-%d-%d" % (os.getpid(), self.n)
        arn = self.arns[service]
        return request_id, json.dumps({
            "RequestType": "Create", "RequestId": request_id, "ServiceToken": FUNCTION_ARN,
            "ResponseURL": "%s/cfn-response/%s" % (self.endpoints[mode][1], request_id),
            "StackId": "arn:aws:cloudformation:%s:%s:stack/bench/1" % (REGION, ACCOUNT),
            "LogicalResourceId": "Policy", "ResourceType": "Custom::ResourcePolicy",
            "ResourceProperties": {"ServiceToken": FUNCTION_ARN, "Service": service,
                                   "ResourceArn": arn, "Policy": policy(service, arn, self.n)}}).encode()

    def command(self, impl):
        if impl == "ours":
            return [self.args.binary], None
        return [self.args.crhelper_python, "-m", "awslambdaric", "crhelper_function.handler"], HERE

    def env(self, impl, mode, api):
        endpoint, response_base = self.endpoints[mode]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "LANG": "C.UTF-8",
               "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.server_address[1],
               "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test",
               "AWS_ENDPOINT_URL": endpoint,
               "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
               "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "s",
               "AWS_LAMBDA_LOG_GROUP_NAME": "g", "AWS_LAMBDA_LOG_LEVEL": "warn",
               "RESPONSE_URL_ALLOWED_HOSTS": response_base.split("://", 1)[1],
               "LEDGER_TABLE": LEDGER}
        if mode == "tls":
            env.update(SSL_CERT_FILE=self.bundle, AWS_CA_BUNDLE=self.bundle)
        if impl == "crhelper":
            env.update(LAMBDA_TASK_ROOT=HERE, _HANDLER="crhelper_function.handler",
                       PYTHONPATH=HERE, AWS_EXECUTION_ENV="AWS_Lambda_python3.11")
        env.update(self.args.extra_env)
        return env

    def spawn(self, impl, mode):
        api = RuntimeApi()
        threading.Thread(target=api.serve_forever, daemon=True).start()
        cmd, cwd = self.command(impl)
        env = self.env(impl, mode, api)
        out = None if self.args.show_logs else subprocess.DEVNULL
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=out)
        return api, proc, start

    def finish(self, api, proc):
        """Kills the process (waiting for its next event); returns its CPU seconds."""
        with open("/proc/%d/status" % proc.pid) as f:
            hwm = int(next(l for l in f if l.startswith("VmHWM")).split()[1]) / 1024
        os.kill(proc.pid, signal.SIGKILL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = -9
        api.shutdown()
        api.server_close()
        return usage.ru_utime + usage.ru_stime, hwm

    def create(self, api, mode, service):
        """One Create through the Runtime API; returns (time handed over, PUT time)."""
        # After the previous invocation the function already waits in `next`.
        count = len(api.nexts)
        request_id, body = self.event(mode, service)
        given = api.invoke(request_id, body)
        put_time, put = self.recorder.wait(request_id)
        if put.get("Status") != "SUCCESS":
            raise RuntimeError("%s answered %s" % (request_id, put))
        # The invocation ends with the runtime response post and the next request.
        api.wait_for(lambda: request_id in api.results and len(api.nexts) > count, "the invocation's end")
        kind, text = api.results[request_id]
        if kind != "response":
            raise RuntimeError("%s: runtime error post %s" % (request_id, text))
        return given, put_time

    def cold(self, impl, mode, service):
        api, proc, start = self.spawn(impl, mode)
        try:
            request_id, body = self.event(mode, service)
            api.invoke(request_id, body)  # queued before the process asks
            api.wait_for(lambda: api.nexts, "the first next request")
            init = api.nexts[0] - start
            put_time, put = self.recorder.wait(request_id)
            if put.get("Status") != "SUCCESS":
                raise RuntimeError("%s %s %s answered %s" % (impl, mode, service, put))
            api.wait_for(lambda: request_id in api.results and len(api.nexts) >= 2, "the invocation's end")
            cpu, hwm = self.finish(api, proc)
            return {"init": init * 1000, "cold": (put_time - start) * 1000, "cpu": cpu * 1000, "rss": hwm}
        except BaseException:
            proc.kill()
            raise

    def warm(self, impl, mode, service, runs):
        api, proc, _ = self.spawn(impl, mode)
        try:
            self.create(api, mode, service)  # the cold one, not counted
            times = []
            for _ in range(runs):
                given, put_time = self.create(api, mode, service)
                times.append((put_time - given) * 1000)
            self.finish(api, proc)
            return times
        except BaseException:
            proc.kill()
            raise


# --- figures ---------------------------------------------------------------------------

def zip_size(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, name in files:
            z.write(path, name)
    return len(buf.getvalue())


def crhelper_zip(python):
    found = subprocess.run([python, "-c", "import crhelper, os; print(os.path.dirname(crhelper.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    files = [(os.path.join(HERE, "crhelper_function.py"), "crhelper_function.py")]
    for dirpath, _, names in os.walk(found):
        for n in names:
            if n.endswith((".py", ".pyi", ".typed")):
                p = os.path.join(dirpath, n)
                files.append((p, os.path.join("crhelper", os.path.relpath(p, found))))
    return zip_size(files)


def spread(xs):
    return "%.1f [%.1f–%.1f]" % (statistics.median(xs), min(xs), max(xs))


def ratio(ours, theirs):
    if not theirs:
        return "–"
    r = ours / theirs
    return "%.3f (%.0f×)" % (r, 1 / r) if r < 1 else "%.2f" % r


def table(results, args, ours_zip, their_zip):
    lines = ["| figure | mode | resource-policy-provider | crhelper + boto3 | ours / crhelper |",
             "|---|---|---|---|---|"]
    names = [("init", "init (ms)"), ("cold", "cold Create (ms)"), ("cpu", "CPU of the cold Create (ms)"),
             ("warm", "warm Create (ms)"), ("rss", "peak RSS (MiB)")]
    for mode in args.modes:
        for key, label in names:
            services = [None] if key in ("init", "rss") else args.services
            for service in services:
                def values(impl):
                    out = []
                    for s in ([service] if service else args.services):
                        out += results.get((impl, mode, s), {}).get(key, [])
                    return out
                ours, theirs = values("ours"), values("crhelper")
                if not ours:
                    continue
                what = label if service is None else "%s, %s" % (label, {"dynamodb": "DynamoDB", "kinesis": "Kinesis"}[service])
                lines.append("| %s | %s | %s | %s | %s |" % (
                    what, mode.upper() if mode == "tls" else "HTTP", spread(ours),
                    spread(theirs) if theirs else "not run",
                    ratio(statistics.median(ours), statistics.median(theirs)) if theirs else "–"))
    lines.append("| zip (MB, 10^6 bytes) | – | %.2f | %s | %s |" % (
        ours_zip / 1e6, "%.3f (crhelper + function; boto3 is in the runtime)" % (their_zip / 1e6) if their_zip else "not run",
        ratio(ours_zip, their_zip) if their_zip else "–"))
    return "\n".join(lines)


def header(args):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return ("%s; %s, %d cores, Linux %s; `%s`; %d fresh processes per implementation, mode and "
            "service (medians [min–max]); warm: %d Creates on one process."
            % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpu, os.cpu_count(), platform.release(),
               os.path.relpath(args.binary, ROOT), args.runs, args.runs))


def write_readme(path, text):
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    with open(path) as f:
        readme = f.read()
    if begin not in readme or end not in readme:
        raise SystemExit("cold_start: %s has no %s ... %s section" % (path, begin, end))
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + text + "\n" + end + tail)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/resource-policy-provider"))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--services", default="dynamodb,kinesis")
    p.add_argument("--modes", default="http,tls")
    p.add_argument("--crhelper-python", help="a Python with tests/bench/requirements.txt installed")
    p.add_argument("--no-crhelper", action="store_true")
    p.add_argument("--readme", help="write the table into this README's bench section")
    p.add_argument("--show-logs", action="store_true")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for both functions (levers)")
    args = p.parse_args()
    args.services = args.services.split(",")
    args.modes = args.modes.split(",")
    args.extra_env = dict(e.split("=", 1) for e in args.env)
    args.binary = os.path.abspath(args.binary)
    if args.crhelper_python and os.sep in args.crhelper_python:
        args.crhelper_python = os.path.abspath(args.crhelper_python)  # it runs in tests/bench
    if not os.access(args.binary, os.X_OK):
        raise SystemExit("cold_start: no binary at %s" % args.binary)
    impls = ["ours"] if args.no_crhelper or not args.crhelper_python else ["ours", "crhelper"]
    if "tls" in args.modes and not shutil.which("openssl"):
        print("cold_start: SKIPPING the TLS mode: it makes its CA with the openssl command, "
              "which is not installed (apt-get install openssl)", file=sys.stderr)
        args.modes.remove("tls")
        if not args.modes:
            raise SystemExit("cold_start: no mode left to run")

    work = tempfile.mkdtemp(prefix="rpp-bench-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    ministack = None
    try:
        ministack, port = start_ministack(work)
        arns = make_resources(port, args.services)
        recorder = Recorder()
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
        endpoints = {"http": ("http://%s:%d" % (EMULATOR_HOST, port),
                              "http://127.0.0.1:%d" % recorder.server_address[1])}
        bundle = None
        if "tls" in args.modes:
            crt, key, bundle = make_ca(work)
            proxy = TlsProxy(crt, key)
            endpoints["tls"] = ("https://%s:%d" % (EMULATOR_HOST, proxy.listen(EMULATOR_HOST, port)),
                                "https://%s:%d" % (RESPONSE_HOST, proxy.listen(RESPONSE_HOST, recorder.server_address[1])))
        bench = Bench(args, arns, recorder, endpoints, bundle, home)

        # One unmeasured process each first: page cache, .pyc files, the emulator's paths.
        for impl in impls:
            for mode in args.modes:
                bench.cold(impl, mode, args.services[0])

        # Each round runs every (mode, implementation, service) once, the order of the
        # implementations and of the modes swapped every other round, so that a busy
        # moment on the machine does not land on one side only.
        results = {}
        for i in range(args.runs):
            for mode in (args.modes if i % 2 == 0 else args.modes[::-1]):
                for impl in (impls if i % 2 == 0 else impls[::-1]):
                    for service in args.services:
                        r = bench.cold(impl, mode, service)
                        figures = results.setdefault((impl, mode, service), {})
                        for k, v in r.items():
                            figures.setdefault(k, []).append(v)
            print("  round %d/%d done" % (i + 1, args.runs), file=sys.stderr, flush=True)
        for mode in args.modes:
            for impl in impls:
                for service in args.services:
                    results[(impl, mode, service)]["warm"] = bench.warm(impl, mode, service, args.runs)

        ours_zip = zip_size([(args.binary, "bootstrap")])
        their_zip = crhelper_zip(args.crhelper_python) if "crhelper" in impls else None
        text = header(args) + "\n\n" + table(results, args, ours_zip, their_zip)
        if "crhelper" not in impls:
            text += "\n\n(crhelper not run: %s)" % ("--no-crhelper" if args.no_crhelper else "no --crhelper-python")
        print(text)
        if args.readme:
            write_readme(args.readme, text)
            print("cold_start: table written into %s" % args.readme, file=sys.stderr)
    finally:
        if ministack:
            os.killpg(ministack.pid, signal.SIGTERM)
            try:
                ministack.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(ministack.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
