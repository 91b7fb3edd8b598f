"""pytest fixtures for the integration tests.

Run with the repo's venv (created by scripts/install-peers):

    scripts/install-peers
    .venv/bin/pytest tests/integration            # one ministack
    .venv/bin/pytest tests/integration -n 2       # one ministack per xdist worker

A missing peer FAILS the test (never skips) with a hint to run scripts/install-peers.

Fixtures:
  ministack          session: Emulator (own process and port per xdist worker)
  moto               session: Emulator for moto_server (started only if a test asks)
  microburst         function: factory start(upstream=None, rules=None) -> Microburst
  policy_server      function: PolicyServer (tests/peers/policy_server.py), own process per test
  aws                function: factory aws("dynamodb") -> boto3 client on ministack
  stacks             function: StackDeployer on ministack; deletes leftovers at teardown
  unique_name        function: factory unique_name("prefix") -> unique, worker-tagged name
  xdist_worker       session: 'gw0'.. under xdist, 'main' otherwise
  code_bucket        session: per-worker S3 bucket for Lambda code on ministack
  provider_bootstrap session: Path of the Rust bootstrap ($PROVIDER_BOOTSTRAP or
                     target/debug/resource-policy-provider); fails if not built
  provider_code      session: LambdaCode of that bootstrap uploaded to ministack S3
  standin_code       session: LambdaCode of tests/integration/standin/bootstrap
  upload_bootstrap   session: factory path -> LambdaCode
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    import boto3  # noqa: F401
    import yaml  # noqa: F401
except ImportError as exc:  # pragma: no cover - environment guard
    raise pytest.UsageError(
        f"integration-test dependencies are missing ({exc}): run scripts/install-peers, "
        "then .venv/bin/pytest tests/integration"
    ) from exc

import harness
from harness import Emulator, Microburst, PeerError, PolicyServer, StackDeployer

STANDIN_BOOTSTRAP = Path(__file__).resolve().parent / "standin" / "bootstrap"
DEFAULT_PROVIDER_BOOTSTRAP = "target/debug/resource-policy-provider"


@pytest.fixture(scope="session")
def xdist_worker(request: pytest.FixtureRequest) -> str:
    """'gw0', 'gw1', ... under pytest-xdist; 'main' when not distributed."""
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(scope="session")
def peer_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per-worker scratch dir: peer logs, ministack's TMPDIR (pid file, code cache)."""
    return tmp_path_factory.mktemp("peers")


def _start_or_fail(start, *args, **kwargs):
    try:
        return start(*args, **kwargs)
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def ministack(peer_tmp: Path) -> Emulator:
    peer = _start_or_fail(harness.start_ministack, peer_tmp / "ministack")
    try:
        yield Emulator(peer, harness.MINISTACK_ACCOUNT)
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def moto(peer_tmp: Path) -> Emulator:
    peer = _start_or_fail(harness.start_moto, peer_tmp / "moto")
    try:
        yield Emulator(peer, harness.MOTO_ACCOUNT)
    finally:
        peer.stop()


@pytest.fixture
def microburst(request: pytest.FixtureRequest, peer_tmp: Path):
    """Factory: microburst(upstream=None, rules=None) starts a proxy (default
    upstream: this worker's ministack) and stops it after the test."""
    started: list[Microburst] = []

    def start(upstream: str | None = None, rules: list[dict] | None = None) -> Microburst:
        if upstream is None:
            upstream = request.getfixturevalue("ministack").url
        peer = _start_or_fail(harness.start_microburst, peer_tmp / "microburst", upstream, rules)
        proxy = Microburst(peer, upstream)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.peer.stop()


@pytest.fixture
def policy_server(peer_tmp: Path):
    """X-Ray / Managed Prometheus / SSM test server, fresh state for each test."""
    peer = _start_or_fail(harness.start_policy_server, peer_tmp / "policy-server")
    try:
        yield PolicyServer(peer)
    finally:
        peer.stop()


@pytest.fixture
def aws(ministack: Emulator):
    """Factory: aws("dynamodb", max_attempts=1) -> boto3 client on ministack."""
    return ministack.client


@pytest.fixture
def stacks(ministack: Emulator):
    deployer = StackDeployer(ministack)
    yield deployer
    problems = deployer.cleanup()
    if problems:
        # Leftovers would only bleed into later tests on this worker; say so loudly.
        print(f"stack cleanup problems: {problems}")


@pytest.fixture
def unique_name(request: pytest.FixtureRequest, xdist_worker: str):
    """Factory: unique_name("table") -> '<test>-table-<worker>-<8 hex>', unique across workers."""
    base = request.node.name.split("[")[0].removeprefix("test_")[:20]

    def make(prefix: str = "") -> str:
        return harness.unique_name(f"{base}-{prefix}" if prefix else base, xdist_worker)

    return make


@pytest.fixture(scope="session")
def code_bucket(ministack: Emulator, xdist_worker: str) -> str:
    bucket = f"it-lambda-code-{xdist_worker}".lower()
    ministack.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def upload_bootstrap(ministack: Emulator, code_bucket: str):
    """Factory: upload_bootstrap(path) zips path as `bootstrap` into ministack S3."""

    def upload(path: Path) -> harness.LambdaCode:
        path = Path(path)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"bootstrap {path} is missing or not executable", pytrace=False)
        return harness.upload_bootstrap(ministack, path, code_bucket)

    return upload


@pytest.fixture(scope="session")
def provider_bootstrap() -> Path:
    raw = os.environ.get("PROVIDER_BOOTSTRAP", DEFAULT_PROVIDER_BOOTSTRAP)
    path = Path(raw)
    if not path.is_absolute():
        path = harness.REPO_ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"provider bootstrap {path} not found or not executable: build it "
            "(cargo build) or set PROVIDER_BOOTSTRAP to the binary",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def provider_code(upload_bootstrap, provider_bootstrap: Path) -> harness.LambdaCode:
    return upload_bootstrap(provider_bootstrap)


@pytest.fixture(scope="session")
def standin_code(upload_bootstrap) -> harness.LambdaCode:
    return upload_bootstrap(STANDIN_BOOTSTRAP)
