"""moto's server, with each request applied atomically.

moto's own server (`moto_server`) handles requests on many threads without a lock around its
backends, so two concurrent conditional writes to one DynamoDB item can both succeed — real
DynamoDB never lets that happen. Measured with 20 clients racing one `UpdateItem ...
ConditionExpression`: two winners in 5 of 150 rounds. Connections stay threaded here; only the
application call is serialised, which gives the tests DynamoDB's atomic conditional writes.

Usage: python scripts/moto_server.py HOST PORT
"""
import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()


def atomic(environ, start_response):
    with one_at_a_time:
        return list(app(environ, start_response))


run_simple(host, port, atomic, threaded=True, request_handler=MotoRequestHandler)
