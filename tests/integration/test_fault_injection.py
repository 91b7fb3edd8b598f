"""microburst between the provider and ministack: about half of the DynamoDB and
Kinesis calls fail (LimitExceededException, ThrottlingException, HTTP 503); the
stack still creates and deletes, and the number of requests stays bounded."""

from __future__ import annotations

from provider import (
    DDB_STREAM_READ, KINESIS_READ, TABLE_READ, allow, create_table, ddb_policy, function, function_env, get_att,
    kinesis_policy, kinesis_stream_resource, policy_resource, same_policy, stream_arn, table_arn,
    table_resource, template,
)

SERVICES = ("dynamodb", "kinesis")


def _rules() -> list[dict]:
    """Deterministic ~55 % failure: the first matching rule wins, and every request
    that reaches a `sequence` rule advances it. Per service, of each 6 requests 1 gets
    LimitExceededException; of the rest 1 in 3 ThrottlingException; of the rest 1 in
    4 a 503. 1/6 + 5/6*1/3 + 5/6*2/3*1/4 = 0.56, and at most 3 failures in a row."""
    rules = []
    for service in SERVICES:
        rules += [
            {"service": service, "sequence": {"fail": 1, "pass": 5},
             "error": {"code": "LimitExceededException"}},
            {"service": service, "sequence": {"fail": 1, "pass": 2},
             "error": {"code": "ThrottlingException"}},
            {"service": service, "sequence": {"fail": 1, "pass": 3},
             "error": {"code": "ServiceUnavailable", "status": 503}},
        ]
    return rules


def test_stack_completes_through_half_failing_calls(ministack, microburst, stacks, provider_code, aws, unique_name):
    proxy = microburst(rules=_rules())
    table, kstream = unique_name("table"), unique_name("kstream")
    t_arn, k_arn = table_arn(table), stream_arn(kstream)
    # Fewer SDK attempts than the default 10 keeps the SDK's own backoff short;
    # the provider's rounds on top still ride out a run of failures.
    env = function_env(ministack, proxy=proxy, SDK_MAX_ATTEMPTS="4")
    body = template(
        resources={
            "Fn": function(provider_code, env),
            "Table": table_resource(table),
            "Stream": kinesis_stream_resource(kstream),
            "TablePolicy": policy_resource({"ResourceArn": get_att("Table", "Arn"),
                                            "Policy": allow(get_att("Table", "Arn"), TABLE_READ)}),
            "TableStreamPolicy": policy_resource({
                "ResourceArn": get_att("Table", "StreamArn"),
                "Policy": allow(get_att("Table", "StreamArn"), DDB_STREAM_READ)}),
            "StreamPolicy": policy_resource({"ResourceArn": get_att("Stream", "Arn"),
                                             "Policy": allow(get_att("Stream", "Arn"), KINESIS_READ)}),
        },
        outputs={f"{r}Attempts": get_att(r, "Attempts") for r in ("TablePolicy", "TableStreamPolicy", "StreamPolicy")},
    )

    created = stacks.create(unique_name("stack"), body)

    assert created.status == "CREATE_COMPLETE", created.describe()
    ddb, kinesis = aws("dynamodb"), aws("kinesis")
    ddb_stream = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    assert same_policy(ddb_policy(ddb, t_arn)[0], allow(t_arn, TABLE_READ))
    assert same_policy(ddb_policy(ddb, ddb_stream)[0], allow(ddb_stream, DDB_STREAM_READ))
    assert same_policy(kinesis_policy(kinesis, k_arn), allow(k_arn, KINESIS_READ))
    create_counts = proxy.service_counts()

    deleted = stacks.delete(created)

    assert deleted.status == "DELETE_COMPLETE", deleted.describe()
    # The table policy went with the provider's Delete, not just with the table
    # (ministack keeps a deleted table's policy: re-create the table to look).
    create_table(ddb, table)
    assert ddb_policy(ddb, t_arn) is None, "the table policy survived the stack delete"

    stats = proxy.stats()
    counts = proxy.service_counts()
    actions = {(f["service"], f["action"]) for f in proxy.fired(limit=1000)}
    for service in SERVICES:
        for action in ("error:LimitExceededException", "error:ThrottlingException", "error:ServiceUnavailable"):
            assert (service, action) in actions, (service, action, sorted(actions))
    total, faulted = stats["requests"]["total"], stats["requests"]["faulted"]
    forwarded = stats["requests"]["forwarded"]
    assert total == sum(c["requests"] for c in counts.values())
    assert 0.4 <= faulted / total <= 0.7, stats["requests"]
    # What the provider needs per policy: on create, the ledger's record, a read, the
    # put, a read-back and the settle; on delete the same five: 10 successful calls
    # (the ledger is DynamoDB, behind the same proxy); 3 policies -> 30. A faulted
    # call costs at most one more forwarded call (a re-read before planning again),
    # never a blind resend loop.
    assert 30 <= forwarded <= 30 + faulted, stats["requests"]
    # Bounded: with 56 % failing, 30 needed calls take ~68 requests, and each failed
    # write adds a re-read (113 measured). A storm (4 SDK attempts on every call of
    # every round) would pass 300; 150 means each failure cost about one retry.
    assert total <= 150, stats["requests"]
    # The deletes went through the proxy as well.
    assert create_counts["dynamodb"]["requests"] < counts["dynamodb"]["requests"]
    assert create_counts["kinesis"]["requests"] < counts["kinesis"]["requests"]
