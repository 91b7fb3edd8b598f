"""The path a user walks, on ministack: our own template.yaml (plain CloudFormation)
deployed through CloudFormation with Code = the uploaded zip of the real bootstrap (as
`sam package` writes it, and sent from S3 as `sam deploy` sends it: the commented
template is over the 51,200-byte TemplateBody limit), then the stacks in examples/
using its exported LiveServiceToken (the `live` alias), a consumer on the old
ServiceToken export, an update, the sample CloudTrail events invoked directly, and the
platform knobs (boundary, KMS, tags, concurrency, tracing, drift modes, alarms).

The zip holds target/debug/resource-policy-provider (built by `cargo test
--all-targets`), so no release build or cargo-lambda is needed here; scripts/package
builds the real package and checks it (opt-in, see README).
"""

from __future__ import annotations

import json

import pytest

from deploy_path import (ALL_SERVICES, CAPABILITIES, DYNAMODB_AND_KINESIS, EXAMPLES, MINIMAL, PROVIDER_STACK,
                         TEMPLATE, create_from_s3, load_template, outputs_by_resource, packaged_template,
                         policy_with_extra_action, provider_parameters, template_part, update_from_s3)
from harness import MINISTACK_ACCOUNT, REPO_ROOT
from provider import ddb_policy, kinesis_policy

READER = "111122223333"
SERVICES = ("dynamodb", "kinesis", "xray", "aps", "ssm")
# Every variable the template sets for the function (the lead's src/settings.rs reads them).
FUNCTION_ENVIRONMENT = {
    "RESPONSE_URL_ALLOWED_HOSTS", "RESPONSE_RESERVE_MS", "SDK_MAX_ATTEMPTS", "SDK_ATTEMPT_TIMEOUT_MS",
    "SDK_CONNECT_TIMEOUT_MS", "RETRY_BASE_MS", "RETRY_MAX_DELAY_MS", "NOT_FOUND_GRACE_MS",
    "INVALID_PRINCIPAL_GRACE_MS", "SSM_MALFORMED_MAX_TRIES", "POLL_INITIAL_MS", "POLL_MAX_MS",
    "APPLY_ALLOWED_ACCOUNTS", "LEDGER_TABLE", "FUNCTION_ROLE_ARN", "RECONCILE_CONCURRENCY",
    "DRIFT_MODE", "DRIFT_EVENT_BUS", "REPAIR_LOOP_LIMIT", "REPAIR_LOOP_WINDOW_SECONDS",
    "GUARD_PUBLIC", "GUARD_ALLOWED_ACCOUNTS", "GUARD_ALLOWED_ORG_ID", "GUARD_ALLOW_OVERRIDE",
    "PROVIDER_VERSION",
}
OUTPUTS = {"LiveServiceToken", "ServiceToken", "ProviderVersion", "PublishedVersion", "LiveVersion",
           "FunctionName", "FunctionRoleArn", "LogGroupName", "ApplyEventBusName", "LedgerTable",
           "DeadLetterQueueUrl", "AlarmTopicArn", "DashboardName"}


def cargo_version() -> str:
    for line in (REPO_ROOT / "Cargo.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


def alias_statements(lam, function_name: str) -> list[dict]:
    return json.loads(lam.get_policy(FunctionName=function_name, Qualifier="live")["Policy"])["Statement"]


def principal_text(statement: dict) -> str:
    return json.dumps(statement.get("Principal"))


@pytest.fixture
def provider_stack(ministack, stacks, provider_code):
    """template.yaml deployed as `resource-policy-provider` (the examples' default import),
    with one cross-account invoker. Deleted by the `stacks` cleanup if a test fails."""
    created = create_from_s3(
        stacks, PROVIDER_STACK, packaged_template(provider_code),
        parameters=provider_parameters(ministack.peer.port, InvokerAccount1=READER),
        Capabilities=CAPABILITIES,
    )
    assert created.status == "CREATE_COMPLETE", created.describe()
    return created


def test_template_needs_no_transform_and_says_its_version_everywhere():
    template = load_template(TEMPLATE)
    assert "Transform" not in template and not [k for k in template["Resources"] if k.startswith("Fn::")], \
        "template.yaml must stay plain CloudFormation (CfnInclude, SAR and older SAM CLIs refuse the rest)"
    version = cargo_version()
    fn = template["Resources"]["ProviderFunction"]["Properties"]
    assert template["Metadata"]["ResourcePolicyProvider"]["Version"] == version
    assert fn["Description"].startswith(f"resource-policy-provider {version}:")
    assert fn["Environment"]["Variables"]["PROVIDER_VERSION"] == version
    assert template["Outputs"]["ProviderVersion"]["Value"] == version
    assert f"resource-policy-provider {version}," in template["Resources"]["ProviderVersion"]["Properties"]["Description"]["Fn::Sub"]
    assert set(fn["Environment"]["Variables"]) == FUNCTION_ENVIRONMENT
    assert set(template["Outputs"]) == OUTPUTS


def test_ledger_table_policy_lets_only_the_function_write():
    """ministack accepts the table's ResourcePolicy but does not enforce it (nor store it
    where GetResourcePolicy finds it), so its content is checked here; cfn-lint checks
    its schema."""
    table = load_template(TEMPLATE)["Resources"]["LedgerTable"]
    assert "Condition" not in table, "the ledger is created in every mode"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    [statement] = table["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert set(statement["Action"]) == {f"dynamodb:{a}" for a in (
        "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "PartiQLInsert", "PartiQLUpdate", "PartiQLDelete")}
    assert statement["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["ProviderFunctionRole", "Arn"]}}}


def test_template_yaml_deploys(ministack, provider_stack):
    out = provider_stack.outputs
    assert set(out) == OUTPUTS, out
    exports = {e["Name"]: e["Value"] for e in ministack.client("cloudformation").list_exports()["Exports"]}
    # Today's export, unchanged (the unqualified ARN), and the alias beside it.
    assert exports[f"{PROVIDER_STACK}-ServiceToken"] == out["ServiceToken"]
    assert not out["ServiceToken"].endswith(":live")
    assert exports[f"{PROVIDER_STACK}-LiveServiceToken"] == out["LiveServiceToken"] == out["ServiceToken"] + ":live"
    assert out["ProviderVersion"] == cargo_version()
    assert out["LiveVersion"] == out["PublishedVersion"] != "$LATEST"

    lam = ministack.client("lambda")
    config = lam.get_function_configuration(FunctionName=out["FunctionName"])
    assert config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap"
    assert config["Architectures"] == ["x86_64"]  # the parameter; its default is arm64
    assert (config["Timeout"], config["MemorySize"]) == (900, 128)
    assert config["LoggingConfig"]["LogFormat"] == "JSON"
    assert config["Description"].startswith(f"resource-policy-provider {cargo_version()}:")
    env = config["Environment"]["Variables"]
    assert set(env) == FUNCTION_ENVIRONMENT
    assert env["RESPONSE_URL_ALLOWED_HOSTS"] == f"127.0.0.1:{ministack.peer.port}"
    assert env["SDK_MAX_ATTEMPTS"] == "10" and env["NOT_FOUND_GRACE_MS"] == "30000"
    assert env["LEDGER_TABLE"] == out["LedgerTable"], "the ledger is always there"
    assert env["FUNCTION_ROLE_ARN"] == out["FunctionRoleArn"]
    assert (env["DRIFT_MODE"], env["DRIFT_EVENT_BUS"]) == ("Disabled", "default")
    assert (env["GUARD_PUBLIC"], env["GUARD_ALLOWED_ACCOUNTS"], env["GUARD_ALLOWED_ORG_ID"],
            env["GUARD_ALLOW_OVERRIDE"]) == ("Refuse", "", "", "false")
    assert (env["REPAIR_LOOP_LIMIT"], env["REPAIR_LOOP_WINDOW_SECONDS"]) == ("5", "3600")
    assert env["PROVIDER_VERSION"] == cargo_version()

    # The alias runs the version the template published.
    alias = lam.get_alias(FunctionName=out["FunctionName"], Name="live")
    assert alias["FunctionVersion"] == out["PublishedVersion"]
    version = lam.get_function_configuration(FunctionName=out["FunctionName"], Qualifier=out["PublishedVersion"])
    assert version["Environment"]["Variables"]["LEDGER_TABLE"] == out["LedgerTable"]

    # Invokers of the alias: the cross-account slot (the account, not
    # cloudformation.amazonaws.com: CloudFormation invokes as the caller) and
    # EventBridge, for the rule on the dedicated apply bus.
    statements = alias_statements(lam, out["FunctionName"])
    assert all(s["Action"] == "lambda:InvokeFunction" and s["Resource"] == out["LiveServiceToken"]
               for s in statements), statements
    assert "cloudformation.amazonaws.com" not in json.dumps(statements)
    by_account = [s for s in statements if READER in principal_text(s)]
    assert len(by_account) == 1 and "Condition" not in by_account[0], by_account
    others = [s for s in statements if s not in by_account]
    assert [principal_text(s) for s in others] == [json.dumps({"Service": "events.amazonaws.com"})], others
    assert f"rule/{out['ApplyEventBusName']}/" in json.dumps(others[0]["Condition"])

    # Asynchronous failures of the alias and of $LATEST (self-invokes) go to the queue.
    queue_arn = ministack.client("sqs").get_queue_attributes(
        QueueUrl=out["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for qualifier in ("live", "$LATEST"):
        invoke_config = lam.get_function_event_invoke_config(FunctionName=out["FunctionName"], Qualifier=qualifier)
        assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn, qualifier

    # The execution role holds the template's least-privilege statements.
    role = out["FunctionRoleArn"].rsplit("/", 1)[1]
    iam = ministack.client("iam")
    inline = {name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
              for name in iam.list_role_policies(RoleName=role)["PolicyNames"]}
    assert set(inline) == {"ResourcePolicies", "Operations", "Ledger", "SelfInvoke"}, inline
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []

    def actions(name):
        return sorted(a for s in inline[name]["Statement"]
                      for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))

    assert actions("ResourcePolicies") == sorted(f"{svc}:{verb}" for svc, verbs in {
        "dynamodb": ("PutResourcePolicy", "GetResourcePolicy", "DeleteResourcePolicy"),
        "kinesis": ("PutResourcePolicy", "GetResourcePolicy", "DeleteResourcePolicy"),
        "xray": ("PutResourcePolicy", "DeleteResourcePolicy", "ListResourcePolicies"),
        "aps": ("PutResourcePolicy", "DescribeResourcePolicy", "DeleteResourcePolicy"),
        "ssm": ("PutResourcePolicy", "GetResourcePolicies", "DeleteResourcePolicy"),
    }.items() for verb in verbs), inline
    # Drift disabled, no tracing, no key: logs, the dead-letter queue, and whether a
    # stack is rolling back (read only).
    assert actions("Operations") == ["cloudformation:DescribeStacks", "logs:CreateLogStream",
                                     "logs:PutLogEvents", "sqs:SendMessage"]
    [rolling] = [s for s in inline["Operations"]["Statement"] if s["Sid"] == "StackRollingBack"]
    assert rolling["Resource"].endswith(":stack/*"), rolling
    assert actions("Ledger") == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"]
    assert inline["Ledger"]["Statement"][0]["Resource"].endswith(f"table/{out['LedgerTable']}")
    [self_invoke] = inline["SelfInvoke"]["Statement"]
    assert self_invoke["Action"] == "lambda:InvokeFunction"
    assert self_invoke["Resource"] == [out["ServiceToken"], out["ServiceToken"] + ":*"]

    # Alarms that reach a person: always the function's errors and the queue's depth.
    cloudwatch = ministack.client("cloudwatch")
    alarms = [a for a in cloudwatch.describe_alarms()["MetricAlarms"]
              if a.get("AlarmActions") == [out["AlarmTopicArn"]]]
    assert sorted((a.get("Namespace"), a.get("MetricName")) for a in alarms) == [
        ("AWS/Lambda", "Errors"), ("AWS/SQS", "ApproximateNumberOfMessagesVisible")], alarms
    assert_dashboard(cloudwatch, out["DashboardName"])


def assert_dashboard(cloudwatch, name: str) -> None:
    body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    by_title = {w["properties"].get("title"): w["properties"] for w in body["widgets"] if w["type"] == "metric"}
    for metric in ("TargetsChecked", "DriftFound", "Repaired", "RepairFailed", "RepairLoopStopped", "PropagationMs"):
        [props] = [p for t, p in by_title.items() if t.startswith(f"{metric} by service")]
        first, *rest = props["metrics"]
        assert first == ["ResourcePolicyProvider", metric, "Service", "dynamodb"], first
        assert [m[3] for m in rest] == list(SERVICES[1:]) and all(m[:3] == [".", ".", "."] for m in rest)
    for metric in ("Changes", "ChangeFailed", "Attempts"):
        [props] = [p for t, p in by_title.items() if t.startswith(f"CloudFormation {metric} ")]
        assert props["metrics"][0] == ["ResourcePolicyProvider", metric, "Service", "dynamodb", "Kind", "CloudFormation"]
        assert len(props["metrics"]) == len(SERVICES)
    assert "${" not in json.dumps(body), "an unresolved Fn::Sub reference in the dashboard"


def test_a_stack_on_the_old_service_token_export_keeps_working(ministack, stacks, provider_stack, aws, unique_name):
    """Stacks that import `<provider>-ServiceToken` (the unqualified ARN) before the alias
    existed: the export is unchanged, and their resources keep working."""
    table = unique_name("legacy")
    legacy = f"""
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties: {{TableName: {table}, BillingMode: PAY_PER_REQUEST, AttributeDefinitions: [{{AttributeName: pk, AttributeType: S}}], KeySchema: [{{AttributeName: pk, KeyType: HASH}}]}}
  TablePolicy:
    Type: Custom::ResourcePolicy
    Properties:
      ServiceToken: !ImportValue {PROVIDER_STACK}-ServiceToken
      ServiceTimeout: 60
      ResourceArn: !GetAtt Table.Arn
      Policy: {{Version: "2012-10-17", Statement: [{{Effect: Allow, Principal: {{AWS: "arn:aws:iam::{READER}:root"}}, Action: "dynamodb:GetItem", Resource: !GetAtt Table.Arn}}]}}
"""
    created = stacks.create("legacy-consumer", legacy)
    assert created.status == "CREATE_COMPLETE", created.describe()
    table_arn = f"arn:aws:dynamodb:us-east-1:{MINISTACK_ACCOUNT}:table/{table}"
    live = ddb_policy(aws("dynamodb"), table_arn)
    assert live is not None and READER in live[0]
    assert stacks.delete(created).status == "DELETE_COMPLETE"
    assert ddb_policy(aws("dynamodb"), table_arn) is None


def test_minimal_example_uses_the_exported_live_service_token(ministack, stacks, provider_stack, aws):
    created = stacks.create("minimal-example", MINIMAL)
    assert created.status == "CREATE_COMPLETE", created.describe()
    table_arn = next(e["PhysicalResourceId"] for e in created.events
                     if e["LogicalResourceId"] == "TablePolicy" and e["ResourceStatus"] == "CREATE_COMPLETE")
    live = ddb_policy(aws("dynamodb"), table_arn)
    assert live is not None, "the minimal example's policy is not on the table"
    statement = json.loads(live[0])["Statement"][0]
    assert statement["Action"] == "dynamodb:GetItem"
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{MINISTACK_ACCOUNT}:root"}

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()


def test_all_services_example_dynamodb_and_kinesis_parts(ministack, stacks, provider_stack, aws, unique_name):
    example = load_template(ALL_SERVICES)
    part = template_part(example, DYNAMODB_AND_KINESIS)
    params = {"ReaderAccountId": READER, "NamePrefix": unique_name("ex").lower()[:30].rstrip("-")}
    created = stacks.create("all-services-example", part, parameters=params)
    assert created.status == "CREATE_COMPLETE", created.describe()
    out = created.outputs

    # Every output the part keeps is a Data key (or Ref) of a policy resource, and
    # every one of them resolved: the provider returned each attribute the example uses.
    wanted = outputs_by_resource(part)
    assert set(wanted) == {"OrdersTablePolicy", "OrdersStreamPolicy", "ClicksStreamPolicy"}
    assert all(out.get(key) for keys in wanted.values() for key, _ in keys), out

    ddb, kinesis = aws("dynamodb"), aws("kinesis")
    table_arn = out["OrdersTablePolicyResourceArn"]
    assert out["OrdersTablePolicyId"] == table_arn and out["OrdersTablePolicyService"] == "dynamodb"
    assert int(out["OrdersTablePolicyAttempts"]) >= 1 and int(out["OrdersTablePolicyPropagationMs"]) >= 0
    text, revision = ddb_policy(ddb, table_arn)
    assert revision == out["OrdersTablePolicyRevisionId"]
    reader = {"AWS": f"arn:aws:iam::{READER}:root"}
    assert json.loads(text)["Statement"][0]["Principal"] == reader

    # The stream policy was given as a !Sub string.
    stream_arn = ddb.describe_table(TableName=table_arn.rsplit("/", 1)[1])["Table"]["LatestStreamArn"]
    stream_text, stream_revision = ddb_policy(ddb, stream_arn)
    assert stream_revision == out["OrdersStreamPolicyRevisionId"]
    assert json.loads(stream_text)["Statement"][0]["Resource"] == stream_arn

    kinesis_arn = out["ClicksStreamPolicyId"]
    assert out["ClicksStreamPolicyService"] == "kinesis"
    assert json.loads(kinesis_policy(kinesis, kinesis_arn))["Statement"][0]["Principal"] == reader

    # Update one policy in place: a new revision, same physical id.
    updated = stacks.update(created, policy_with_extra_action(part, "OrdersTablePolicy", "dynamodb:Scan"),
                            parameters=params)
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    assert updated.outputs["OrdersTablePolicyId"] == table_arn
    new_text, new_revision = ddb_policy(ddb, table_arn)
    assert new_revision == updated.outputs["OrdersTablePolicyRevisionId"] != revision
    assert "dynamodb:Scan" in json.loads(new_text)["Statement"][0]["Action"]

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert kinesis_policy(kinesis, kinesis_arn) is None


def test_shared_table_examples_each_own_their_statements(ministack, stacks, provider_stack, aws, unique_name):
    """examples/shared-table-owner.yaml and shared-table-analytics.yaml: two stacks, one
    table policy, each stack owning its statement (Statements); deleting the second
    leaves the first's."""
    ddb = aws("dynamodb")
    owner = stacks.create("shared-table-owner", EXAMPLES / "shared-table-owner.yaml",
                          parameters={"TableName": unique_name("shared")})
    assert owner.status == "CREATE_COMPLETE", owner.describe()
    assert owner.outputs["OwnedSids"] == "OwnerReadWrite"
    table_arn = owner.outputs["TableArn"]

    analytics = stacks.create("shared-table-analytics", EXAMPLES / "shared-table-analytics.yaml",
                              parameters={"AnalyticsAccountId": READER})
    assert analytics.status == "CREATE_COMPLETE", analytics.describe()
    assert analytics.outputs["OwnedSids"] == "AnalyticsRead"
    text, revision = ddb_policy(ddb, table_arn)
    assert [st["Sid"] for st in json.loads(text)["Statement"]] == ["OwnerReadWrite", "AnalyticsRead"]
    assert revision == analytics.outputs["PolicyRevisionId"]

    assert stacks.delete(analytics).status == "DELETE_COMPLETE"
    text, _ = ddb_policy(ddb, table_arn)
    assert [st["Sid"] for st in json.loads(text)["Statement"]] == ["OwnerReadWrite"]
    assert stacks.delete(owner).status == "DELETE_COMPLETE"


@pytest.mark.parametrize("sample", [f"cloudtrail-{s}-put.json" for s in ("dynamodb", "kinesis", "xray", "aps", "ssm")]
                         + ["reconcile-scheduled.json", "reconcile-request.json"])
def test_drift_and_reconcile_samples_are_acknowledged_by_the_deployed_function(ministack, provider_stack, sample):
    """The function deployed from template.yaml (DriftRepair Disabled: DRIFT_MODE=Disabled,
    no rule, no schedule; the ledger exists in every mode), invoked directly with each
    sample drift and reconcile event (as `cargo lambda invoke --data-file` would):
    acknowledged, nothing repaired. (ministack refuses aws.* sources on PutEvents, so
    they cannot go through a bus.)

    Until the function reads DRIFT_MODE it checks a CloudTrail event against the ledger,
    which does not manage the sample's target (UNMANAGED), and a reconcile walks the
    empty ledger (DONE, all totals 0); with DRIFT_MODE honoured both answer IGNORED.
    Either way no owner appears in the ledger."""
    got = ministack.client("lambda").invoke(FunctionName=provider_stack.outputs["LiveServiceToken"],
                                            Payload=(REPO_ROOT / "events" / sample).read_bytes())
    body = json.loads(got["Payload"].read())
    assert "FunctionError" not in got, body
    if sample.startswith("cloudtrail-"):
        assert body["Status"] in {"IGNORED", "UNMANAGED"}, body
    else:
        assert body["Status"] == "IGNORED" or (
            body["Status"] == "DONE" and set(body["Totals"].values()) == {0}), body
    # No owner recorded (a walk's own bookkeeping row, '#reconcile', is not one).
    ledger = ministack.client("dynamodb").scan(TableName=provider_stack.outputs["LedgerTable"])
    assert [i["target"]["S"] for i in ledger["Items"] if not i["target"]["S"].startswith("#")] == []


def test_the_part_helper_refuses_a_part_that_misses_a_dependency():
    example = load_template(ALL_SERVICES)
    with pytest.raises(AssertionError, match="OrdersTablePolicy refers to"):
        template_part(example, ["OrdersTablePolicy"])
    part = template_part(example, ["OrdersTable", "OrdersTablePolicy"])
    assert set(part["Resources"]) == {"OrdersTable", "OrdersTablePolicy"}
    assert set(outputs_by_resource(part)) == {"OrdersTablePolicy"}


def test_platform_knobs_and_drift_modes(ministack, stacks, provider_code, aws):
    """Every platform knob set, deployed: permissions boundary, KMS key, tags, reserved
    concurrency, active tracing, alarm email, guard settings, and drift Repair given by
    its old name Enabled; then Detect."""
    kms_key = aws("kms").create_key(Description="rpp test key")["KeyMetadata"]["Arn"]
    boundary = aws("iam").create_policy(PolicyName="rpp-boundary", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    bus = "rpp-drift"
    params = provider_parameters(
        ministack.peer.port, DriftRepair="Enabled", DriftEventBusName=bus, KmsKeyArn=kms_key,
        PermissionsBoundary=boundary, TagKey="team", TagValue="platform", TagKey2="cost-center", TagValue2="cc-42",
        ReservedConcurrency="3", Tracing="Active", AlarmEmail="oncall@example.com",
        GuardPublicAccess="Allow", GuardAllowedAccounts=f"{READER},444455556666", GuardAllowedOrgId="o-abcdefghij",
        GuardAllowOverride="true", RepairLoopLimit="3", RepairLoopWindowSeconds="600")
    created = create_from_s3(stacks, "knobs-provider", packaged_template(provider_code), parameters=params,
                             Capabilities=CAPABILITIES)
    assert created.status == "CREATE_COMPLETE", created.describe()
    out = created.outputs
    lam, iam = aws("lambda"), aws("iam")
    tags = {"team": "platform", "cost-center": "cc-42"}

    config = lam.get_function_configuration(FunctionName=out["FunctionName"])
    env = config["Environment"]["Variables"]
    assert env["DRIFT_MODE"] == "Repair", "Enabled, the old value, means Repair"
    assert (env["DRIFT_EVENT_BUS"], env["GUARD_PUBLIC"], env["GUARD_ALLOWED_ACCOUNTS"], env["GUARD_ALLOWED_ORG_ID"],
            env["GUARD_ALLOW_OVERRIDE"], env["REPAIR_LOOP_LIMIT"], env["REPAIR_LOOP_WINDOW_SECONDS"]) == (
        bus, "Allow", f"{READER},444455556666", "o-abcdefghij", "true", "3", "600")
    assert config["TracingConfig"]["Mode"] == "Active"
    assert tags.items() <= lam.list_tags(Resource=out["ServiceToken"])["Tags"].items()

    role = out["FunctionRoleArn"].rsplit("/", 1)[1]
    assert tags.items() <= {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role)["Tags"]}.items()
    operations = iam.get_role_policy(RoleName=role, PolicyName="Operations")["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in operations}
    assert set(by_sid) == {"Logs", "FailedInvocations", "StackRollingBack", "OwnersStackResources", "DriftEvents", "Tracing",
                           "Encryption"}
    assert by_sid["DriftEvents"]["Resource"].endswith(f":event-bus/{bus}")
    assert sorted(by_sid["Tracing"]["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    assert (sorted(by_sid["Encryption"]["Action"]), by_sid["Encryption"]["Resource"]) == (
        ["kms:Decrypt", "kms:GenerateDataKey"], kms_key)

    sqs, sns, ddb = aws("sqs"), aws("sns"), aws("dynamodb")
    queue = sqs.get_queue_attributes(QueueUrl=out["DeadLetterQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert queue.get("KmsMasterKeyId") == kms_key, queue
    assert tags.items() <= sqs.list_queue_tags(QueueUrl=out["DeadLetterQueueUrl"])["Tags"].items()
    assert tags.items() <= {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(
        ResourceArn=out["AlarmTopicArn"])["Tags"]}.items()
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=out["AlarmTopicArn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "oncall@example.com")]
    table_arn = ddb.describe_table(TableName=out["LedgerTable"])["Table"]["TableArn"]
    assert tags.items() <= {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=table_arn)["Tags"]}.items()
    assert tags.items() <= aws("logs").list_tags_log_group(logGroupName=out["LogGroupName"])["tags"].items()
    bus_arn = aws("events").describe_event_bus(Name=out["ApplyEventBusName"])["Arn"]
    assert tags.items() <= {t["Key"]: t["Value"] for t in aws("events").list_tags_for_resource(
        ResourceARN=bus_arn)["Tags"]}.items()

    # ministack 1.5.33 accepts these properties but does not apply them (the function's
    # KmsKeyArn and ReservedConcurrentExecutions, the role's PermissionsBoundary, the
    # table's SSESpecification, the topic's KmsMasterKeyId), so they are checked as the
    # template writes them.
    template = load_template(TEMPLATE)["Resources"]
    fn_props = template["ProviderFunction"]["Properties"]
    assert fn_props["KmsKeyArn"] == {"Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]}
    assert fn_props["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert template["ProviderFunctionRole"]["Properties"]["PermissionsBoundary"] == {
        "Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundary"}, {"Ref": "AWS::NoValue"}]}
    assert template["LedgerTable"]["Properties"]["SSESpecification"]["Fn::If"][1] == {
        "SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "KmsKeyArn"}}
    assert template["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {
        "Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]}

    # Drift on: the CloudTrail rule and the schedule invoke the alias.
    events = aws("events")
    rules = [r for r in events.list_rules()["Rules"] if r["Name"].startswith("knobs-provider-")]
    targets = {r["Name"]: [t["Arn"] for t in events.list_targets_by_rule(Rule=r["Name"])["Targets"]] for r in rules}
    assert len(targets) == 2 and all(arns == [out["LiveServiceToken"]] for arns in targets.values()), targets
    assert any(r.get("ScheduleExpression") == "rate(6 hours)" for r in rules)
    for rule in rules:
        assert tags.items() <= {t["Key"]: t["Value"] for t in events.list_tags_for_resource(
            ResourceARN=rule["Arn"])["Tags"]}.items(), rule["Name"]

    cloudwatch = aws("cloudwatch")

    def alarms():
        found = [a for a in cloudwatch.describe_alarms()["MetricAlarms"]
                 if a.get("AlarmActions") == [out["AlarmTopicArn"]]]
        return {a["MetricName"]: a for a in found}

    repair_alarms = alarms()
    emf = {"DriftFound", "RepairFailed", "RepairLoopStopped"}
    assert set(repair_alarms) == {"Errors", "ApproximateNumberOfMessagesVisible"} | emf, sorted(repair_alarms)
    for name in emf:
        # The function's metrics summed over services: the dimensionless set.
        alarm = repair_alarms[name]
        assert (alarm["Namespace"], alarm["Statistic"], alarm.get("Dimensions", [])) == (
            "ResourcePolicyProvider", "Sum", []), alarm
    for alarm in repair_alarms.values():
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0.0), alarm
        assert tags.items() <= {t["Key"]: t["Value"] for t in cloudwatch.list_tags_for_resource(
            ResourceARN=alarm["AlarmArn"])["Tags"]}.items()
    assert_dashboard(cloudwatch, out["DashboardName"])

    # Detect: the same checks, no repair alarms (nothing is repaired).
    detect = update_from_s3(stacks, created, packaged_template(provider_code),
                            parameters={**params, "DriftRepair": "Detect"}, Capabilities=CAPABILITIES)
    assert detect.status == "UPDATE_COMPLETE", detect.describe()
    assert lam.get_function_configuration(FunctionName=out["FunctionName"])["Environment"]["Variables"][
        "DRIFT_MODE"] == "Detect"
    assert set(alarms()) == {"Errors", "ApproximateNumberOfMessagesVisible", "DriftFound"}
    assert len([r for r in events.list_rules()["Rules"] if r["Name"].startswith("knobs-provider-")]) == 2


def test_a_tag_key_without_a_value_is_refused_before_anything_is_created(ministack, stacks, provider_code):
    """CloudWatch alarms refuse an empty tag value; the template's Rules say so up front."""
    with pytest.raises(Exception, match="TagKey needs a TagValue"):
        create_from_s3(stacks, "tag-rule-provider", packaged_template(provider_code),
                       parameters=provider_parameters(ministack.peer.port, TagKey="team"),
                       Capabilities=CAPABILITIES)
