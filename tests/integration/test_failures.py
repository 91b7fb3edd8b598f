"""Failures through CloudFormation: a bad request fails fast with a reason that names
the problem; a target that never becomes ready fails on the provider's own time
budget (from ServiceTimeout), before CloudFormation gives up waiting."""

from __future__ import annotations

import pytest

from provider import (
    KINESIS_READ, TABLE_READ, TABLE_WRITE, allow, create_table, function, function_env, get_att, kinesis_policy,
    kinesis_stream_resource, policy_resource, reason_of, resource_event_seconds, same_policy, table_arn,
    table_resource, template,
)

GENEROUS_TIMEOUT_S = 60


def _bad_properties(case: str) -> tuple[dict, dict, list[str]]:
    """(extra resources, policy properties, words the failure reason must contain)."""
    if case == "policy-is-an-array":
        arn = get_att("Table", "Arn")
        return ({"Table": "table"}, {"ResourceArn": arn, "Policy": [allow(arn, TABLE_READ)]},
                ["Invalid request", "Policy", "JSON object"])
    if case == "policy-string-holds-an-array":
        arn = get_att("Table", "Arn")
        return ({"Table": "table"}, {"ResourceArn": arn, "Policy": '[{"Effect": "Allow"}]'},
                ["Invalid request", "Policy", "JSON object"])
    if case == "s3-arn":
        return ({}, {"ResourceArn": "arn:aws:s3:::my-bucket", "Policy": allow("arn:aws:s3:::my-bucket", ["s3:GetObject"])},
                ["Invalid request", "ResourceArn", "arn:aws:s3:::my-bucket", '"s3"'])
    if case == "service-disagrees-with-arn":
        arn = get_att("Table", "Arn")
        return ({"Table": "table"}, {"ResourceArn": arn, "Service": "kinesis", "Policy": allow(arn, TABLE_READ)},
                ["Invalid request", "Service", "kinesis", "disagrees"])
    if case == "kinesis-rejects-the-action":
        # Valid JSON, refused by the service itself: a terminal error, reported at once.
        arn = get_att("Stream", "Arn")
        return ({"Stream": "stream"}, {"ResourceArn": arn, "Policy": allow(arn, ["kinesis:DeleteStream"])},
                ["Kinesis PutResourcePolicy", "InvalidArgumentException", "kinesis:DeleteStream"])
    raise ValueError(case)


@pytest.mark.parametrize("case", ["policy-is-an-array", "policy-string-holds-an-array", "s3-arn",
                                  "service-disagrees-with-arn", "kinesis-rejects-the-action"])
def test_bad_request_fails_fast_and_rolls_back(case, ministack, stacks, provider_code, unique_name):
    extra, props, words = _bad_properties(case)
    resources = {"Fn": function(provider_code, function_env(ministack))}
    for logical, kind in extra.items():
        resources[logical] = (table_resource(unique_name("table"), stream=False) if kind == "table"
                              else kinesis_stream_resource(unique_name("kstream")))
    resources["Policy"] = policy_resource(props, service_timeout_s=GENEROUS_TIMEOUT_S)

    result = stacks.create(unique_name("stack"), template(resources, outputs={"Attempts": get_att("Policy", "Attempts")}))

    assert result.status == "ROLLBACK_COMPLETE", result.describe()
    reason = reason_of(result, "Policy", "CREATE_FAILED")
    for word in words:
        assert word in reason, f"{word!r} not in the failure reason {reason!r}"
    assert "timed out" not in reason  # answered by the provider, not CloudFormation's timeout
    # Seconds, not the minute CloudFormation would wait.
    assert resource_event_seconds(result, "Policy", "CREATE_IN_PROGRESS", "CREATE_FAILED") < 5
    assert result.elapsed_s < GENEROUS_TIMEOUT_S / 3, result.describe()
    assert result.outputs == {}


def test_target_that_never_appears_fails_within_service_timeout(ministack, stacks, provider_code, unique_name):
    """A DynamoDB table that never exists, with a not-found grace far longer than the
    ServiceTimeout: the provider keeps retrying, then answers FAILED on its own time
    budget (ServiceTimeout minus its response reserve), naming what it waited for."""
    service_timeout = 8
    missing = table_arn(unique_name("never"))
    env = function_env(ministack, NOT_FOUND_GRACE_MS="600000")
    body = template({
        "Fn": function(provider_code, env),
        "Policy": policy_resource({"ResourceArn": missing, "Policy": allow(missing, TABLE_READ)},
                                  service_timeout_s=service_timeout),
    })

    result = stacks.create(unique_name("stack"), body, timeout_s=60)

    assert result.status == "ROLLBACK_COMPLETE", result.describe()
    reason = reason_of(result, "Policy", "CREATE_FAILED")
    assert "time budget" in reason, reason
    assert "ResourceNotFoundException" in reason, reason  # the last error seen
    assert missing in reason, reason
    assert "timed out after" not in reason  # not CloudFormation's own ServiceTimeout message
    waited = resource_event_seconds(result, "Policy", "CREATE_IN_PROGRESS", "CREATE_FAILED")
    # It really kept trying (NOT_FOUND_GRACE_MS is long) and still answered in time.
    assert service_timeout / 2 <= waited < service_timeout, result.describe()


def test_update_to_a_stream_that_never_appears_fails_after_the_grace(ministack, stacks, provider_code, aws,
                                                                     unique_name):
    """An Update that moves the policy to a new target allows the not-found grace (the
    target may be made in the same update); a stream that never appears fails once
    NOT_FOUND_GRACE_MS is spent, long before the ServiceTimeout, and the rollback
    puts the original policy back."""
    grace_s = 2
    kstream = unique_name("kstream")
    env = function_env(ministack, NOT_FOUND_GRACE_MS=str(grace_s * 1000))

    def body(arn):
        return template({
            "Fn": function(provider_code, env),
            "Stream": kinesis_stream_resource(kstream),
            "Policy": policy_resource({"ResourceArn": arn, "Policy": allow(arn, KINESIS_READ)},
                                      service_timeout_s=GENEROUS_TIMEOUT_S),
        }, outputs={"Id": {"Ref": "Policy"}})

    created = stacks.create(unique_name("stack"), body(get_att("Stream", "Arn")))
    assert created.status == "CREATE_COMPLETE", created.describe()
    stream = created.outputs["Id"]
    missing = stream.replace(kstream, unique_name("gone"))

    updated = stacks.update(created, body(missing))

    assert updated.status == "UPDATE_ROLLBACK_COMPLETE", updated.describe()
    reason = reason_of(updated, "Policy", "UPDATE_FAILED")
    assert "ResourceNotFoundException" in reason and missing in reason, reason
    assert "attempts" in reason and "time budget" not in reason, reason  # the grace ended it
    waited = resource_event_seconds(updated, "Policy", "UPDATE_IN_PROGRESS", "UPDATE_FAILED")
    assert grace_s <= waited < grace_s + 5, updated.describe()
    # The rollback Update put the original policy back (it was never removed).
    assert same_policy(kinesis_policy(aws("kinesis"), stream), allow(stream, KINESIS_READ))


def test_in_place_update_of_a_vanished_table_fails_at_once(ministack, stacks, provider_code, aws, unique_name):
    """Same target, table deleted out of band: a missing resource on an in-place
    Update is final, reported at once despite a long NOT_FOUND_GRACE_MS."""
    ddb = aws("dynamodb")
    table = unique_name("table")
    t_arn = create_table(ddb, table)["TableArn"]
    env = function_env(ministack, NOT_FOUND_GRACE_MS="600000")

    def body(actions):
        return template({
            "Fn": function(provider_code, env),
            "Policy": policy_resource({"ResourceArn": t_arn, "Policy": allow(t_arn, actions)},
                                      service_timeout_s=GENEROUS_TIMEOUT_S),
        })

    created = stacks.create(unique_name("stack"), body(TABLE_READ))
    assert created.status == "CREATE_COMPLETE", created.describe()
    ddb.delete_table(TableName=table)

    updated = stacks.update(created, body(TABLE_WRITE))

    # The rollback Update is the same in-place put on the vanished table: it fails too.
    assert updated.status == "UPDATE_ROLLBACK_FAILED", updated.describe()
    reason = reason_of(updated, "Policy", "UPDATE_FAILED")
    assert "ResourceNotFoundException" in reason and t_arn in reason, reason
    assert "attempts" not in reason, reason  # one call, no retries
    assert resource_event_seconds(updated, "Policy", "UPDATE_IN_PROGRESS", "UPDATE_FAILED") < 3
    # Deleting what is left still works: the table is gone, so is the policy.
    assert stacks.delete(updated).status == "DELETE_COMPLETE"
