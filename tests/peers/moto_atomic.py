"""moto's server, with DynamoDB's single-item atomicity.

DynamoDB applies each UpdateItem, PutItem and DeleteItem (condition included)
atomically. moto's threaded server does not: two concurrent UpdateItems on one item
can both read it and one write is lost, which the ledger's tests would take for a bug
of the function. This runs moto's own WSGI app unchanged, except that DynamoDB item
writes are applied one at a time. Everything else stays concurrent.

Usage: python tests/peers/moto_atomic.py [-H HOST] [-p PORT]   (as moto_server)
"""

from __future__ import annotations

import argparse
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

ITEM_WRITES = {
    "UpdateItem",
    "PutItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "ExecuteStatement",
}


def atomic_item_writes(app):
    lock = threading.Lock()

    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, op = target.partition(".")
        if service.startswith("DynamoDB_") and op in ITEM_WRITES:
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        atomic_item_writes(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
