"""The release path, on ministack: scripts/release packages the function (here the
debug executable, `--binary`, so no release build is needed), the release's own
template is deployed from the uploaded zip (not from source), a consumer stack uses the
LiveServiceToken (the `live` alias), a second release moves the alias and the
consumer's next Update runs the new version, `LiveVersion` rolls the alias back and
the old version runs again, `ConfigRevision` publishes a new configuration, and the
provider's deletion leaves live policies and the ledger in place.

Which version served a request is read where Lambda writes it: the log stream of each
invocation is named `<date>/[<version>]<id>` and starts with `START RequestId: ...
Version: <n>` (ministack writes both the way Lambda does, in the LoggingConfig group).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest

from deploy_path import TEMPLATE_BODY_MAX_BYTES, load_template
from harness import MINISTACK_ACCOUNT, REGION, REPO_ROOT
from provider import ddb_policy

RELEASE = REPO_ROOT / "scripts" / "release"
NAME = "resource-policy-provider"
OTHER_ACCOUNT = "111122223333"
ORG = "o-abcdefghij"


def cargo_version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO_ROOT / "Cargo.toml").read_text(), flags=re.M).group(1)


def make_release(binary: Path, out: Path, version: str | None = None) -> dict:
    argv = [str(RELEASE), "--binary", str(binary), "--out", str(out)]
    if version:
        argv += ["--version", version]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # It says which architectures it built and which it skipped, and why.
    assert "release: architectures built: x86_64; skipped: arm64" in proc.stdout, proc.stdout
    return json.loads((out / "release.json").read_text())


@pytest.fixture(scope="module")
def binary(provider_bootstrap: Path, tmp_path_factory) -> Path:
    """A private copy: the shared debug build may be rebuilt while the test runs."""
    copy = tmp_path_factory.mktemp("release-binary") / "resource-policy-provider"
    shutil.copy2(provider_bootstrap, copy)
    return copy


@pytest.fixture(scope="module")
def release1(binary: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release1")
    make_release(binary, out)
    return out


def test_release_holds_zips_sums_and_templates(release1: Path, binary: Path):
    manifest = json.loads((release1 / "release.json").read_text())
    version = cargo_version()
    assert manifest["version"] == version and manifest["architectures"] == ["x86_64"]
    assert "arm64" in manifest["skipped"] and manifest["skipped"]["arm64"], manifest

    # SHA256SUMS covers every file and holds.
    lines = (release1 / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    expected = {"bootstrap-x86_64.zip", f"{NAME}.yaml", "sar-template.yaml", "README.md", "LICENSE"}
    assert set(listed) == expected, listed
    for name, digest in listed.items():
        assert hashlib.sha256((release1 / name).read_bytes()).hexdigest() == digest, name

    zip_path = release1 / "bootstrap-x86_64.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == ["bootstrap"]
        assert zf.getinfo("bootstrap").external_attr >> 16 & 0o777 == 0o755
        assert zf.read("bootstrap") == binary.read_bytes()
    code_sha256 = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    assert manifest["code_sha256"] == {"x86_64": code_sha256}
    license_text = (release1 / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the full text, not a notice

    # The CloudFormation template: no transform, code from parameters, the zip's hash.
    cfn_path = release1 / f"{NAME}.yaml"
    assert cfn_path.stat().st_size <= TEMPLATE_BODY_MAX_BYTES
    cfn = load_template(cfn_path)
    assert "Transform" not in cfn
    assert {"CodeBucket", "CodeBucketRegionSuffix", "CodeKey"} <= set(cfn["Parameters"])
    assert "Default" not in cfn["Parameters"]["CodeBucket"], "the bucket must be given"
    assert cfn["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64"]
    fn = cfn["Resources"]["ProviderFunction"]["Properties"]
    assert fn["Code"]["S3Bucket"]["Fn::If"][0] == "CodeBucketPerRegion"
    assert f"{NAME}/{version}/bootstrap-${{Architecture}}.zip" in json.dumps(fn["Code"]["S3Key"])
    assert cfn["Resources"]["ProviderVersion"]["Properties"]["CodeSha256"] == code_sha256
    assert "#" not in "".join(l.lstrip()[:1] for l in cfn_path.read_text().splitlines()), "comments are stripped"

    # The SAR template: the SAM transform, local code, the application's metadata.
    sar_path = release1 / "sar-template.yaml"
    assert sar_path.stat().st_size <= TEMPLATE_BODY_MAX_BYTES
    sar = load_template(sar_path)
    assert sar["Transform"] == "AWS::Serverless-2016-10-31"
    assert sar["Resources"]["ProviderFunction"]["Properties"]["Code"] == "bootstrap-x86_64.zip"
    assert "CodeBucket" not in sar["Parameters"]
    app = sar["Metadata"]["AWS::ServerlessRepo::Application"]
    assert app["Name"] == NAME and re.fullmatch(r"[a-zA-Z0-9-]{1,140}", app["Name"])
    assert 1 <= len(app["Description"]) <= 256
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", app["Author"]) and len(app["Author"]) <= 127
    assert (app["SpdxLicenseId"], app["LicenseUrl"], app["ReadmeUrl"]) == ("Apache-2.0", "LICENSE", "README.md")
    assert app["SemanticVersion"] == version and len(app["Labels"]) <= 10
    assert not [v for v in app.values() if isinstance(v, dict)], "SAR metadata takes no intrinsic function"
    assert cfn["Metadata"]["AWS::ServerlessRepo::Application"] == app


def test_release_refuses_what_it_cannot_publish(binary: Path, tmp_path: Path):
    bad = subprocess.run([str(RELEASE), "--binary", str(binary), "--out", str(tmp_path / "x"),
                          "--version", "two"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not a semantic version" in bad.stderr, bad.stderr
    not_exe = tmp_path / "not-executable"
    not_exe.write_bytes(b"\x7fELF")
    missing = subprocess.run([str(RELEASE), "--binary", str(not_exe), "--out", str(tmp_path / "y")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "missing or not executable" in missing.stderr, missing.stderr


# ---- deployed on the emulator ----------------------------------------------------------


def upload(s3, release: Path, bucket: str, version: str) -> str:
    key = f"{NAME}/{version}/bootstrap-x86_64.zip"  # the template's default CodeKey
    s3.put_object(Bucket=bucket, Key=key, Body=(release / "bootstrap-x86_64.zip").read_bytes())
    return key


def versions_started(logs, group: str) -> list[str]:
    """Lambda's `START RequestId: <id> Version: <v>` lines in the group, oldest first."""
    starts: list[tuple[int, str]] = []
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                         startFromHead=True)["events"]:
            match = re.match(r"START RequestId: \S+ Version: (\S+)", event["message"])
            if match:
                starts.append((event["timestamp"], match.group(1)))
                assert f"[{match.group(1)}]" in stream["logStreamName"], stream["logStreamName"]
    return [v for _, v in sorted(starts)]


def consumer_template(provider_stack: str, table: str, actions: list[str]) -> str:
    return json.dumps({
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
                "TableName": table, "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}},
            "TablePolicy": {"Type": "Custom::ResourcePolicy", "Properties": {
                "ServiceToken": {"Fn::ImportValue": f"{provider_stack}-LiveServiceToken"},
                "ServiceTimeout": 60,
                "ResourceArn": {"Fn::GetAtt": ["Table", "Arn"]},
                "Policy": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
                    "Action": actions, "Resource": {"Fn::GetAtt": ["Table", "Arn"]}}]}}},
        }
    })


def test_release_deploys_upgrades_and_rolls_back(ministack, stacks, aws, unique_name, binary, release1, tmp_path):
    s3, lam, logs = aws("s3"), aws("lambda"), aws("logs")
    version1 = cargo_version()
    version2 = f"{version1.split('-')[0]}-test.2"
    # StackSets keep one bucket per region: <CodeBucket>-<region>.
    bucket_base = unique_name("rel").lower()[:40].rstrip("-")
    bucket = f"{bucket_base}-{REGION}"
    s3.create_bucket(Bucket=bucket)
    upload(s3, release1, bucket, version1)

    provider_name = unique_name("provider")
    template1 = (release1 / f"{NAME}.yaml").read_text()
    params = {
        "CodeBucket": bucket_base, "CodeBucketRegionSuffix": "true", "Architecture": "x86_64",
        "ResponseUrlAllowedHosts": f"127.0.0.1:{ministack.peer.port}",
        "InvokerAccount1": OTHER_ACCOUNT, "InvokerOrgId": ORG,
    }
    # Under the TemplateBody limit: sent inline, as `aws cloudformation deploy` does without a bucket.
    provider = stacks.create(provider_name, template1, parameters=params, Capabilities=["CAPABILITY_IAM"])
    assert provider.status == "CREATE_COMPLETE", provider.describe()
    out = provider.outputs
    function = out["FunctionName"]
    group = out["LogGroupName"]
    v1 = out["PublishedVersion"]
    assert out["LiveVersion"] == v1 and out["ProviderVersion"] == version1
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == v1
    assert version1 in lam.get_function_configuration(FunctionName=function, Qualifier=v1)["Description"]

    # Cross-account: the account and the organization are granted on the alias (not
    # cloudformation.amazonaws.com: CloudFormation invokes as the stack operation's
    # identity). The emulator cannot run another account's stack against them: it
    # resolves a ServiceToken, and an Invoke, only inside the caller's own account,
    # grant or no grant (asserted below, so a ministack that can will be noticed), so
    # the grants are checked as written and the invocation path from this account.
    statements = json.loads(lam.get_policy(FunctionName=function, Qualifier="live")["Policy"])["Statement"]
    by_account = [s for s in statements if OTHER_ACCOUNT in json.dumps(s.get("Principal"))]
    by_org = [s for s in statements if ORG in json.dumps(s.get("Condition"))]
    assert len(by_account) == 1 and by_account[0]["Resource"] == out["LiveServiceToken"], statements
    assert len(by_org) == 1 and by_org[0]["Resource"] == out["LiveServiceToken"], statements
    assert by_org[0]["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG}}, by_org
    assert "cloudformation.amazonaws.com" not in json.dumps(statements)
    # ministack takes a 12-digit access key as the caller's account.
    other = boto3.session.Session().client("lambda", endpoint_url=ministack.url, region_name=REGION,
                                           aws_access_key_id=OTHER_ACCOUNT, aws_secret_access_key="test")
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        other.invoke(FunctionName=out["LiveServiceToken"], Payload=b"{}")

    # A consumer on the alias.
    table = unique_name("tbl")
    table_arn = f"arn:aws:dynamodb:{REGION}:{MINISTACK_ACCOUNT}:table/{table}"
    consumer = stacks.create(unique_name("consumer"), consumer_template(provider_name, table, ["dynamodb:GetItem"]))
    assert consumer.status == "CREATE_COMPLETE", consumer.describe()
    assert "dynamodb:GetItem" in ddb_policy(aws("dynamodb"), table_arn)[0]
    assert versions_started(logs, group)[-1] == v1

    # Release 2: new zip key, new description; the update publishes a version and moves the alias.
    # This time the zip sits at a key of the operator's choosing, in a bucket named in full.
    release2 = tmp_path / "release2"
    manifest2 = make_release(binary, release2, version2)
    assert manifest2["version"] == version2
    s3.put_object(Bucket=bucket, Key="ops/rpp-release-2.zip", Body=(release2 / "bootstrap-x86_64.zip").read_bytes())
    params = {**params, "CodeBucket": bucket, "CodeBucketRegionSuffix": "false", "CodeKey": "ops/rpp-release-2.zip"}
    upgraded = stacks.update(provider, (release2 / f"{NAME}.yaml").read_text(), parameters=params,
                             Capabilities=["CAPABILITY_IAM"])
    assert upgraded.status == "UPDATE_COMPLETE", upgraded.describe()
    v2 = upgraded.outputs["PublishedVersion"]
    assert v2 != v1 and upgraded.outputs["LiveVersion"] == v2 and upgraded.outputs["ProviderVersion"] == version2
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == v2
    config2 = lam.get_function_configuration(FunctionName=function, Qualifier=v2)
    assert version2 in config2["Description"] and config2["Environment"]["Variables"]["PROVIDER_VERSION"] == version2
    # The old version is retained: it is what a rollback goes back to.
    assert version1 in lam.get_function_configuration(FunctionName=function, Qualifier=v1)["Description"]
    # Nothing ran yet: the consumer's resources are only invoked on their own changes.
    assert versions_started(logs, group)[-1] == v1

    updated = stacks.update(consumer, consumer_template(provider_name, table, ["dynamodb:GetItem", "dynamodb:Query"]))
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    assert "dynamodb:Query" in ddb_policy(aws("dynamodb"), table_arn)[0]
    assert versions_started(logs, group)[-1] == v2, "the consumer's Update did not run the new version"

    # Roll back: the alias to the retained version 1, code untouched, nothing published.
    rolled = stacks.update(provider, (release2 / f"{NAME}.yaml").read_text(),
                           parameters={**params, "LiveVersion": v1}, Capabilities=["CAPABILITY_IAM"])
    assert rolled.status == "UPDATE_COMPLETE", rolled.describe()
    assert (rolled.outputs["LiveVersion"], rolled.outputs["PublishedVersion"]) == (v1, v2)
    assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == v1
    updated = stacks.update(consumer, consumer_template(provider_name, table, ["dynamodb:GetItem", "dynamodb:Scan"]))
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    assert "dynamodb:Scan" in ddb_policy(aws("dynamodb"), table_arn)[0]
    assert versions_started(logs, group)[-1] == v1, "after the rollback the consumer did not run the old version"

    # A parameter-only change publishes nothing until ConfigRevision changes; then the
    # alias moves to a version with the new configuration.
    reconfigured = stacks.update(provider, (release2 / f"{NAME}.yaml").read_text(),
                                 parameters={**params, "GuardAllowOverride": "true", "ConfigRevision": "2"},
                                 Capabilities=["CAPABILITY_IAM"])
    assert reconfigured.status == "UPDATE_COMPLETE", reconfigured.describe()
    v3 = reconfigured.outputs["PublishedVersion"]
    assert v3 not in (v1, v2) and reconfigured.outputs["LiveVersion"] == v3
    env3 = lam.get_function_configuration(FunctionName=function, Qualifier=v3)["Environment"]["Variables"]
    assert env3["GUARD_ALLOW_OVERRIDE"] == "true"
    assert config2["Environment"]["Variables"]["GUARD_ALLOW_OVERRIDE"] == "false"

    # Deleting the provider: CloudFormation refuses while a stack imports its exports,
    # so the importing consumer goes first (its Delete, run by the latest version,
    # removes its policy). A stack holding the alias ARN literally (as another account's
    # does) does not block the deletion, and keeps its policy afterwards.
    literal_table = unique_name("lit")
    literal_arn = f"arn:aws:dynamodb:{REGION}:{MINISTACK_ACCOUNT}:table/{literal_table}"
    literal = json.loads(consumer_template(provider_name, literal_table, ["dynamodb:GetItem"]))
    literal["Resources"]["TablePolicy"]["Properties"]["ServiceToken"] = out["LiveServiceToken"]
    literal_stack = stacks.create(unique_name("literal"), json.dumps(literal))
    assert literal_stack.status == "CREATE_COMPLETE", literal_stack.describe()
    assert versions_started(logs, group)[-1] == v3
    with pytest.raises(Exception, match="is imported by stack"):
        stacks.cfn.delete_stack(StackName=provider.stack_id)
    assert stacks.delete(consumer).status == "DELETE_COMPLETE"
    assert ddb_policy(aws("dynamodb"), table_arn) is None, "the consumer's Delete removes its policy"

    ledger = reconfigured.outputs["LedgerTable"]
    deleted = stacks.delete(provider)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert ddb_policy(aws("dynamodb"), literal_arn) is not None, "a live policy went with the provider"
    assert aws("dynamodb").describe_table(TableName=ledger)["Table"]["TableName"] == ledger, "the ledger is retained"
    aws("dynamodb").delete_table(TableName=ledger)
    # The literal consumer has no provider left to delete its policy: CloudFormation can
    # only delete it retaining the custom resource (the `stacks` cleanup does that).


def test_stated_minimum_rust_is_what_the_locked_crates_need():
    """CHANGELOG, template.yaml and the build scripts state the minimum Rust: the highest
    rust-version among the locked dependencies (cargo metadata), not a guess."""
    proc = subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked", "--offline",
                           # Only what the build fetched: other platforms' crates never are.
                           "--filter-platform", "x86_64-unknown-linux-gnu"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    declared = [p["rust_version"] for p in json.loads(proc.stdout)["packages"] if p.get("rust_version")]
    needed = max(declared, key=lambda v: tuple(int(x) for x in v.split(".")))
    stated = re.search(r"Rust \*\*(\d+\.\d+(?:\.\d+)?)\*\*", (REPO_ROOT / "CHANGELOG.md").read_text()).group(1)
    assert tuple(int(x) for x in stated.split(".")) >= tuple(int(x) for x in needed.split(".")), (stated, needed)
    assert stated == needed, f"CHANGELOG states Rust {stated}; the locked crates need {needed}"
    for path in ("template.yaml", "scripts/release", "scripts/package"):
        assert f"Rust {needed}" in (REPO_ROOT / path).read_text(), f"{path} does not state Rust {needed}"


def test_a_two_architecture_release_pins_each_zip(tmp_path: Path):
    """Where arm64 is built too (not on this machine's CI, which packages --binary): the
    CloudFormation template offers both architectures, each pinned to its own zip's
    CodeSha256, arm64 by default; the SAR template carries arm64 only."""
    import importlib.util
    from importlib.machinery import SourceFileLoader
    loader = SourceFileLoader("release_script", str(RELEASE))
    release = importlib.util.module_from_spec(importlib.util.spec_from_loader("release_script", loader))
    loader.exec_module(release)
    shas = {"x86_64": "eDg2LXNoYQ==", "arm64": "YXJtLXNoYQ=="}
    common = dict(source_version=cargo_version(), version=cargo_version(), archs=["x86_64", "arm64"],
                  code_sha256=shas, author="resource-policy-provider-maintainers", source_url=None)
    source = (REPO_ROOT / "template.yaml").read_text()
    (tmp_path / "cfn.yaml").write_text(release.render(source, sar=False, **common))
    (tmp_path / "sar.yaml").write_text(release.render(source, sar=True, **common))
    cfn, sar = load_template(tmp_path / "cfn.yaml"), load_template(tmp_path / "sar.yaml")
    assert cfn["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]
    assert cfn["Parameters"]["Architecture"]["Default"] == "arm64"
    assert cfn["Conditions"]["ArchitectureArm64"] == {"Fn::Equals": [{"Ref": "Architecture"}, "arm64"]}
    assert cfn["Resources"]["ProviderVersion"]["Properties"]["CodeSha256"] == {
        "Fn::If": ["ArchitectureArm64", shas["arm64"], shas["x86_64"]]}
    assert sar["Parameters"]["Architecture"]["AllowedValues"] == ["arm64"]
    assert sar["Resources"]["ProviderFunction"]["Properties"]["Code"] == "bootstrap-arm64.zip"
    assert sar["Resources"]["ProviderVersion"]["Properties"]["CodeSha256"] == shas["arm64"]
    lint = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "cfn-lint"), str(tmp_path / "cfn.yaml"),
                           str(tmp_path / "sar.yaml")], capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_0_1_0_stack_updates_to_this_template(ministack, stacks, aws, unique_name, provider_code):
    """A provider deployed from 0.1.0's template (SAM transform, Fn::ForEach, drift repair
    on) with a consumer on its ServiceToken export: the update to this template
    completes, keeps the export's value (the consumer goes on working, on $LATEST), the
    ledger table and its rows, and adds the LiveServiceToken."""
    from deploy_path import create_from_s3, packaged_template, update_from_s3

    old_text = (Path(__file__).parent / "templates" / "template-0.1.0.yaml").read_text()
    old_text = re.sub(r"^( +CodeUri: )\.$", rf"\g<1>s3://{provider_code.bucket}/{provider_code.key}",
                      old_text, flags=re.M)
    name = unique_name("old")
    base = {"Architecture": "x86_64", "ResponseUrlAllowedHosts": f"127.0.0.1:{ministack.peer.port}"}
    old = create_from_s3(stacks, name, old_text, parameters={**base, "DriftRepair": "Enabled",
                                                              "InvokerAccountIds": OTHER_ACCOUNT},
                         Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    assert old.status == "CREATE_COMPLETE", old.describe()

    table = unique_name("tbl")
    table_arn = f"arn:aws:dynamodb:{REGION}:{MINISTACK_ACCOUNT}:table/{table}"
    legacy = json.loads(consumer_template(name, table, ["dynamodb:GetItem"]))
    legacy["Resources"]["TablePolicy"]["Properties"]["ServiceToken"] = {"Fn::ImportValue": f"{name}-ServiceToken"}
    consumer = stacks.create(unique_name("consumer"), json.dumps(legacy))
    assert consumer.status == "CREATE_COMPLETE", consumer.describe()
    ddb = aws("dynamodb")
    assert ddb.get_item(TableName=old.outputs["LedgerTable"], Key={"target": {"S": table_arn}}).get("Item")

    new = update_from_s3(stacks, old, packaged_template(provider_code),
                         parameters={**base, "DriftRepair": "Enabled", "InvokerAccount1": OTHER_ACCOUNT},
                         Capabilities=["CAPABILITY_IAM"])
    assert new.status == "UPDATE_COMPLETE", new.describe()
    assert new.outputs["ServiceToken"] == old.outputs["ServiceToken"]
    assert new.outputs["LedgerTable"] == old.outputs["LedgerTable"], "the ledger was replaced"
    assert ddb.get_item(TableName=new.outputs["LedgerTable"], Key={"target": {"S": table_arn}}).get("Item")
    assert new.outputs["LiveServiceToken"] == new.outputs["ServiceToken"] + ":live"
    env = aws("lambda").get_function_configuration(FunctionName=new.outputs["FunctionName"])["Environment"]["Variables"]
    assert env["DRIFT_MODE"] == "Repair" and env["LEDGER_TABLE"] == new.outputs["LedgerTable"]

    legacy["Resources"]["TablePolicy"]["Properties"]["Policy"]["Statement"][0]["Action"] = [
        "dynamodb:GetItem", "dynamodb:Query"]
    updated = stacks.update(consumer, json.dumps(legacy))
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    assert "dynamodb:Query" in ddb_policy(ddb, table_arn)[0]
    assert versions_started(aws("logs"), new.outputs["LogGroupName"])[-1] == "$LATEST"
