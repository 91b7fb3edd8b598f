"""The Rust provider on ministack, driven by CloudFormation: DynamoDB tables and
streams, Kinesis streams and consumers. Create, update (in place and moving a
policy to another table) and delete, each checked against the emulator's live
policies."""

from __future__ import annotations

import json

from provider import (
    CONSUMER_READ, DDB_STREAM_READ, KINESIS_READ, KINESIS_WRITE, TABLE_READ, TABLE_WRITE,
    allow, create_stream_with_consumer, create_table, ddb_policy, function, function_env,
    get_att, kinesis_policy, kinesis_stream_resource, policy_resource, ref, same_policy,
    stream_arn, table_arn, table_resource, template,
)


def _names(unique_name) -> dict[str, str]:
    return {k: unique_name(k) for k in ("stack", "table", "table2", "kstream", "ext", "consumer")}


def _four_policy_template(code, env, n: dict[str, str], *, table_actions=TABLE_READ,
                          kinesis_actions=KINESIS_READ, table_policy_on: str = "Table") -> dict:
    """Function, two tables (one with a stream), a Kinesis stream, and policies on the
    table, its stream, the Kinesis stream and a consumer passed in as a parameter."""
    table_arn_att = get_att(table_policy_on, "Arn")
    consumer_policy = allow("${ConsumerArn}", CONSUMER_READ, sid="Consumer")
    return template(
        parameters={"ConsumerArn": None},
        resources={
            "Fn": function(code, env),
            "Table": table_resource(n["table"]),
            "Table2": table_resource(n["table2"], stream=False),
            "Stream": kinesis_stream_resource(n["kstream"]),
            "TablePolicy": policy_resource({
                "ResourceArn": table_arn_att,
                "Service": "dynamodb",
                "Policy": allow(table_arn_att, list(table_actions), sid="Table"),
                "ConfirmRemoveSelfResourceAccess": "false",
            }),
            "TableStreamPolicy": policy_resource({
                "ResourceArn": get_att("Table", "StreamArn"),
                "Policy": allow(get_att("Table", "StreamArn"), DDB_STREAM_READ, sid="TableStream"),
            }),
            "StreamPolicy": policy_resource({
                "ResourceArn": get_att("Stream", "Arn"),
                "Policy": allow(get_att("Stream", "Arn"), list(kinesis_actions), sid="Stream"),
            }),
            # The string form of Policy, as a template author writing JSON text would.
            "ConsumerPolicy": policy_resource({
                "ResourceArn": ref("ConsumerArn"),
                "Service": "kinesis",
                "Policy": {"Fn::Sub": json.dumps(consumer_policy, indent=2)},
            }),
        },
        outputs={
            "TablePolicyId": ref("TablePolicy"),
            "TableRevision": get_att("TablePolicy", "RevisionId"),
            "TableService": get_att("TablePolicy", "Service"),
            "TableArn": get_att("TablePolicy", "ResourceArn"),
            "TableAttempts": get_att("TablePolicy", "Attempts"),
            "TablePropagationMs": get_att("TablePolicy", "PropagationMs"),
            "TableStreamPolicyId": ref("TableStreamPolicy"),
            "TableStreamRevision": get_att("TableStreamPolicy", "RevisionId"),
            "StreamPolicyId": ref("StreamPolicy"),
            "StreamService": get_att("StreamPolicy", "Service"),
            "StreamArn": get_att("StreamPolicy", "ResourceArn"),
            "ConsumerPolicyId": ref("ConsumerPolicy"),
            "ConsumerArn": get_att("ConsumerPolicy", "ResourceArn"),
        },
    )


def _deploy_four(ministack, stacks, provider_code, aws, unique_name, **kw):
    n = _names(unique_name)
    _, consumer_arn = create_stream_with_consumer(aws("kinesis"), n["ext"], n["consumer"])
    env = function_env(ministack)
    created = stacks.create(n["stack"], _four_policy_template(provider_code, env, n, **kw),
                            parameters={"ConsumerArn": consumer_arn})
    assert created.status == "CREATE_COMPLETE", created.describe()
    ddb_stream_arn = aws("dynamodb").describe_table(TableName=n["table"])["Table"]["LatestStreamArn"]
    return n, env, consumer_arn, ddb_stream_arn, created


def test_create_attaches_all_four_policies(ministack, stacks, provider_code, aws, unique_name):
    n, _, consumer_arn, ddb_stream_arn, created = _deploy_four(ministack, stacks, provider_code, aws, unique_name)
    ddb, kinesis = aws("dynamodb"), aws("kinesis")
    t_arn, k_arn = table_arn(n["table"]), stream_arn(n["kstream"])

    # Every policy is live on the emulator and means what the template said.
    table_live = ddb_policy(ddb, t_arn)
    assert table_live is not None, "no policy on the table"
    assert same_policy(table_live[0], allow(t_arn, TABLE_READ, sid="Table")), table_live[0]
    stream_live = ddb_policy(ddb, ddb_stream_arn)
    assert stream_live is not None, "no policy on the table's stream"
    assert same_policy(stream_live[0], allow(ddb_stream_arn, DDB_STREAM_READ, sid="TableStream"))
    assert same_policy(kinesis_policy(kinesis, k_arn), allow(k_arn, KINESIS_READ, sid="Stream"))
    assert same_policy(kinesis_policy(kinesis, consumer_arn), allow(consumer_arn, CONSUMER_READ, sid="Consumer"))
    # The provider sends compact JSON, also for the indented string form.
    assert "\n" not in kinesis_policy(kinesis, consumer_arn)

    # Fn::GetAtt / Ref values: physical ids are the ARNs, revisions are the live ones.
    out = created.outputs
    assert out["TablePolicyId"] == out["TableArn"] == t_arn
    assert out["TableService"] == "dynamodb"
    assert out["TableRevision"] == table_live[1] != ""
    assert out["TableStreamPolicyId"] == ddb_stream_arn
    assert out["TableStreamRevision"] == stream_live[1]
    assert out["StreamPolicyId"] == out["StreamArn"] == k_arn
    assert out["StreamService"] == "kinesis"
    assert out["ConsumerPolicyId"] == out["ConsumerArn"] == consumer_arn
    assert int(out["TableAttempts"]) == 1
    assert int(out["TablePropagationMs"]) >= 0
    # The table policy is untouched on the table nobody asked about.
    assert ddb_policy(ddb, table_arn(n["table2"])) is None


def test_update_changes_policies_then_moves_one_to_another_table(
        ministack, stacks, provider_code, aws, unique_name):
    n, env, consumer_arn, ddb_stream_arn, created = _deploy_four(ministack, stacks, provider_code, aws, unique_name)
    ddb, kinesis = aws("dynamodb"), aws("kinesis")
    t_arn, t2_arn, k_arn = table_arn(n["table"]), table_arn(n["table2"]), stream_arn(n["kstream"])
    params = {"ConsumerArn": consumer_arn}
    stream_revision = ddb_policy(ddb, ddb_stream_arn)[1]

    # -- two policies change, in place ---------------------------------------
    updated = stacks.update(created, _four_policy_template(
        provider_code, env, n, table_actions=TABLE_WRITE, kinesis_actions=KINESIS_WRITE), parameters=params)
    assert updated.status == "UPDATE_COMPLETE", updated.describe()
    table_live = ddb_policy(ddb, t_arn)
    assert same_policy(table_live[0], allow(t_arn, TABLE_WRITE, sid="Table")), table_live[0]
    assert same_policy(kinesis_policy(kinesis, k_arn), allow(k_arn, KINESIS_WRITE, sid="Stream"))
    assert updated.outputs["TableRevision"] == table_live[1] != created.outputs["TableRevision"]
    assert updated.outputs["TablePolicyId"] == t_arn  # same target: same physical id
    # The untouched ones are still there, unchanged.
    assert ddb_policy(ddb, ddb_stream_arn)[1] == stream_revision
    assert same_policy(kinesis_policy(kinesis, consumer_arn), allow(consumer_arn, CONSUMER_READ, sid="Consumer"))

    # -- the table policy moves to Table2: replacement, then cleanup of the old one
    moved = stacks.update(updated, _four_policy_template(
        provider_code, env, n, table_actions=TABLE_WRITE, kinesis_actions=KINESIS_WRITE,
        table_policy_on="Table2"), parameters=params)
    assert moved.status == "UPDATE_COMPLETE", moved.describe()
    assert moved.outputs["TablePolicyId"] == moved.outputs["TableArn"] == t2_arn
    new_live = ddb_policy(ddb, t2_arn)
    assert new_live is not None, "the moved policy is not on the new table"
    assert same_policy(new_live[0], allow(t2_arn, TABLE_WRITE, sid="Table"))
    assert moved.outputs["TableRevision"] == new_live[1]
    assert ddb_policy(ddb, t_arn) is None, "the old table kept its policy after the replacement"
    # ...and nothing else moved.
    assert same_policy(kinesis_policy(kinesis, k_arn), allow(k_arn, KINESIS_WRITE, sid="Stream"))


def test_delete_removes_every_policy(ministack, stacks, provider_code, aws, unique_name):
    n, _, consumer_arn, ddb_stream_arn, created = _deploy_four(ministack, stacks, provider_code, aws, unique_name)
    ddb, kinesis = aws("dynamodb"), aws("kinesis")

    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    for logical in ("TablePolicy", "TableStreamPolicy", "StreamPolicy", "ConsumerPolicy"):
        assert [s for s, _ in deleted.resource_events(logical)] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    # The consumer's stream lives outside the stack: its policy must be gone, not the stream.
    assert kinesis_policy(kinesis, consumer_arn) is None
    assert kinesis.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"
    # The stack's own table and stream are gone; ministack keeps a deleted table's
    # policy (PEERS.md), so re-creating the table shows whether the provider removed it.
    create_table(ddb, n["table"])
    assert ddb_policy(ddb, table_arn(n["table"])) is None, "the table policy survived the stack delete"


def test_delete_succeeds_when_targets_were_deleted_out_of_band(ministack, stacks, provider_code, aws, unique_name):
    """Table and Kinesis stream (outside the stack) deleted before the stack: the
    provider's Delete finds nothing and still answers SUCCESS."""
    ddb, kinesis = aws("dynamodb"), aws("kinesis")
    table, kstream = unique_name("table"), unique_name("kstream")
    t_arn = create_table(ddb, table)["TableArn"]
    kinesis.create_stream(StreamName=kstream, ShardCount=1)
    k_arn = stream_arn(kstream)
    body = template(
        parameters={"TableArn": None, "StreamArn": None},
        resources={
            "Fn": function(provider_code, function_env(ministack)),
            "TablePolicy": policy_resource({"ResourceArn": ref("TableArn"),
                                            "Policy": allow(ref("TableArn"), TABLE_READ)}),
            "StreamPolicy": policy_resource({"ResourceArn": ref("StreamArn"),
                                             "Policy": allow(ref("StreamArn"), KINESIS_READ)}),
        },
    )
    created = stacks.create(unique_name("stack"), body, parameters={"TableArn": t_arn, "StreamArn": k_arn})
    assert created.status == "CREATE_COMPLETE", created.describe()
    assert ddb_policy(ddb, t_arn) is not None and kinesis_policy(kinesis, k_arn) is not None

    ddb.delete_table(TableName=table)
    kinesis.delete_stream(StreamName=kstream)
    deleted = stacks.delete(created)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert [s for s, _ in deleted.resource_events("TablePolicy")] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    assert [s for s, _ in deleted.resource_events("StreamPolicy")] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]


def test_delete_after_cloudformation_deleted_the_table(ministack, stacks, provider_code, aws, unique_name):
    """The policy names its table by a literal ARN (a parameter, no DependsOn), and the
    table's stack is deleted first: the policy's Delete finds no table and succeeds.

    (Within one stack ministack deletes strictly in reverse creation order, so a
    policy without a dependency on its table is still deleted before it there;
    two stacks make the table-first order certain.)"""
    ddb = aws("dynamodb")
    table = unique_name("table")
    t_arn = table_arn(table)
    table_stack = stacks.create(unique_name("tables"), template({"Table": table_resource(table, stream=False)}))
    assert table_stack.status == "CREATE_COMPLETE", table_stack.describe()
    body = template(
        parameters={"TableArn": None},
        resources={
            "Fn": function(provider_code, function_env(ministack)),
            "TablePolicy": policy_resource({"ResourceArn": ref("TableArn"),
                                            "Policy": allow(ref("TableArn"), TABLE_READ)}),
        },
        outputs={"Revision": get_att("TablePolicy", "RevisionId")},
    )
    policy_stack = stacks.create(unique_name("policy"), body, parameters={"TableArn": t_arn})
    assert policy_stack.status == "CREATE_COMPLETE", policy_stack.describe()
    assert ddb_policy(ddb, t_arn)[1] == policy_stack.outputs["Revision"]

    assert stacks.delete(table_stack).status == "DELETE_COMPLETE"
    assert table not in ddb.list_tables()["TableNames"]
    deleted = stacks.delete(policy_stack)
    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    assert [s for s, _ in deleted.resource_events("TablePolicy")] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
