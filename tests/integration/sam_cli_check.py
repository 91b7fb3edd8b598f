"""Opt-in: the real AWS SAM CLI against ministack. Run by scripts/sam-check, which
installs the pinned SAM CLI into .venv-sam and cargo-lambda when missing, and passes
SAM_CLI=<path to sam>. Not collected by scripts/test (the file name has no test_
prefix): SAM CLI cannot share .venv with ministack (boto3 pins), and `sam build`
needs cargo-lambda, a 15-minute install.

    scripts/sam-check

What it shows (recorded in PEERS.md):
  - `sam validate --lint` and plain `sam validate` pass: template.yaml is plain
    CloudFormation (no transform, no Fn::ForEach: no language-extension setting);
  - `sam build` (an AWS::Lambda::Function with BuildMethod rust-cargolambda, x86_64
    here) builds bootstrap;
  - `sam package` uploads it to the emulator's S3 and `sam deploy` deploys the stack
    through the emulator's CloudFormation (change sets; the template goes through S3,
    it is over the 51,200-byte TemplateBody limit), which then serves
    examples/minimal.yaml through the live alias.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from deploy_path import MINIMAL, PROVIDER_STACK, provider_parameters
from harness import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY, REGION, REPO_ROOT
from provider import ddb_policy

BUILD_DIR = REPO_ROOT / "target" / "sam-build"


@pytest.fixture(scope="module")
def sam() -> Path:
    raw = os.environ.get("SAM_CLI", str(REPO_ROOT / ".venv-sam" / "bin" / "sam"))
    path = Path(raw)
    if not path.is_file():
        pytest.fail(f"SAM CLI not found at {path}: run scripts/install-sam (or scripts/sam-check)", pytrace=False)
    return path


def run_sam(sam: Path, *args: str, endpoint: str | None = None, cwd: Path = REPO_ROOT,
            extra_env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "SAM_CLI_TELEMETRY": "0",
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if "CARGO_HOME" in os.environ:
        env["CARGO_HOME"] = os.environ["CARGO_HOME"]
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    env.update(extra_env or {})
    t0 = time.monotonic()
    proc = subprocess.run([str(sam), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"$ sam {' '.join(args)} -> {proc.returncode} in {time.monotonic() - t0:.1f}s")
    return proc


def test_validate_lint(sam):
    proc = run_sam(sam, "validate", "--lint", "--template-file", "template.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is a valid SAM Template" in proc.stdout + proc.stderr


def test_validate_needs_no_language_extensions(sam):
    plain = run_sam(sam, "validate", "--template-file", "template.yaml")
    assert plain.returncode == 0, plain.stdout + plain.stderr


def test_build_package_deploy_against_ministack(sam, ministack, stacks, aws):
    # x86_64 is the only Rust target here; the host's own linker builds it (no zig).
    built = run_sam(sam, "build", "--build-dir", str(BUILD_DIR), "--parameter-overrides", "Architecture=x86_64",
                    extra_env={"CARGO_LAMBDA_COMPILER": "cargo"})
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    bootstrap = BUILD_DIR / "ProviderFunction" / "bootstrap"
    assert bootstrap.is_file() and os.access(bootstrap, os.X_OK), sorted(p.name for p in BUILD_DIR.rglob("*"))
    print(f"sam build: bootstrap {bootstrap.stat().st_size / 2**20:.1f} MiB")

    aws("s3").create_bucket(Bucket="sam-artifacts")
    packaged = BUILD_DIR / "packaged.yaml"
    pkg = run_sam(sam, "package", "--template-file", str(BUILD_DIR / "template.yaml"), "--s3-bucket", "sam-artifacts",
                  "--output-template-file", str(packaged), endpoint=ministack.url)
    assert pkg.returncode == 0, pkg.stdout + pkg.stderr
    assert "s3://sam-artifacts/" in packaged.read_text()

    overrides = [f"{k}={v}" for k, v in provider_parameters(ministack.peer.port).items()]
    deployed = run_sam(sam, "deploy", "--template-file", str(packaged), "--stack-name", PROVIDER_STACK,
                       "--s3-bucket", "sam-artifacts", "--capabilities", "CAPABILITY_IAM",
                       "--parameter-overrides", *overrides, endpoint=ministack.url)
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
    cfn = ministack.client("cloudformation")
    stack = cfn.describe_stacks(StackName=PROVIDER_STACK)["Stacks"][0]
    stacks._created[stack["StackId"]] = PROVIDER_STACK  # deleted at teardown
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack

    example = stacks.create("minimal-example", MINIMAL)
    assert example.status == "CREATE_COMPLETE", example.describe()
    table_arn = next(e["PhysicalResourceId"] for e in example.events
                     if e["LogicalResourceId"] == "TablePolicy" and e["ResourceStatus"] == "CREATE_COMPLETE")
    live = ddb_policy(aws("dynamodb"), table_arn)
    assert live is not None and json.loads(live[0])["Statement"][0]["Action"] == "dynamodb:GetItem"
    assert stacks.delete(example).status == "DELETE_COMPLETE"
