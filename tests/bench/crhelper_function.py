"""The alternative a user would pick today, for the side-by-side benchmark: a Python
Lambda function on crhelper and boto3 that does what ours does for a Create of a
DynamoDB or Kinesis policy: put it, read it back, answer SUCCESS. Run by
tests/bench/cold_start.py through awslambdaric, handler `crhelper_function.handler`.

As users write it: crhelper's CfnResource at module level (it makes its own boto3
clients there), a boto3 client per service made on first use.
"""
import http.client
import json

import boto3
import crhelper.utils
from crhelper import CfnResource

helper = CfnResource(json_logging=False, log_level="WARNING", boto_level="CRITICAL", sleep_on_delete=0)
_clients = {}


def _client(service):
    if service not in _clients:
        _clients[service] = boto3.client(service)
    return _clients[service]


@helper.create
@helper.update
def put(event, _context):
    props = event["ResourceProperties"]
    arn = props["ResourceArn"]
    policy = json.dumps(props["Policy"], separators=(",", ":"))
    if props["Service"] == "dynamodb":
        c = _client("dynamodb")
        c.put_resource_policy(ResourceArn=arn, Policy=policy)
        c.get_resource_policy(ResourceArn=arn)
    elif props["Service"] == "kinesis":
        c = _client("kinesis")
        c.put_resource_policy(ResourceARN=arn, Policy=policy)
        c.get_resource_policy(ResourceARN=arn)
    else:
        raise ValueError("this benchmark function handles dynamodb and kinesis only")
    return arn


@helper.delete
def delete(_event, _context):
    pass


def _plain_http(host, context=None):
    return http.client.HTTPConnection(host)


def handler(event, context):
    # crhelper always answers over HTTPS. The benchmark's plain-HTTP mode gives an
    # http:// ResponseURL; only there is its connection class swapped for plain HTTP.
    if str(event.get("ResponseURL", "")).startswith("http://"):
        crhelper.utils.HTTPSConnection = _plain_http
    helper(event, context)
