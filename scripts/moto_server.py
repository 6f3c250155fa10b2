"""moto's server, with each request applied atomically.

moto's own server (`moto_server`) handles requests on many threads without a lock around its
backends, so two concurrent conditional writes to one DynamoDB item can both succeed — real
DynamoDB never lets that happen. Measured with 20 clients racing one `UpdateItem ...
ConditionExpression`: two winners in 5 of 150 rounds. Connections stay threaded here; only the
application call is serialised, which gives the tests DynamoDB's atomic conditional writes.

A second fix is for speed: moto's `TransactWriteItems` deep-copies every touched table once
per item before it starts (to roll back if the transaction is cancelled), so a transaction
costs O(table size x items): 100 items into a table of 25 000 took 5 s. Here the rollback
keeps copies of the touched items only and puts them back the same way; the outcome of every
transaction, cancelled or not, is unchanged.

A third fix is for truth: a `Query` whose `Limit` is reached answers with a `LastEvaluatedKey`
in DynamoDB even when no item follows (the next page is then empty); moto gives one only when
an item follows. A client that trusts the key alone would offer an empty page, and moto would
hide it. Here a query that evaluated `Limit` items always answers with the key of its last.

Usage: python scripts/moto_server.py HOST PORT
"""
import copy
import os
import sys
import threading

import moto.dynamodb.models as dynamodb_models

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class _TablesNotCopied:
    """Stands in for the `copy` module inside moto's DynamoDB models: a table "copy" is the
    table itself (the patched transaction restores items instead); anything else is copied."""

    @staticmethod
    def deepcopy(value, *args, **kwargs):
        if isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(copy, name)


_moto_transact = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        name = op.get("TableName")
        if name not in self.tables:
            continue
        table = self.tables[name]
        if "Key" in op:
            key = op["Key"]
        else:
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        try:
            current = self.get_item(name, key)
        except Exception:  # moto raises the validation error itself in the call below
            continue
        saved.append((name, key, current.to_json()["Attributes"] if current else None))
    try:
        _moto_transact(self, transact_items)
    except Exception:
        for name, key, attributes in reversed(saved):
            if attributes is None:
                if self.get_item(name, key) is not None:
                    self.delete_item(name, key)
            else:
                self.put_item(name, attributes)
        raise


_moto_query = dynamodb_models.Table.query


def _query(self, *args, **kwargs):
    results, scanned_count, last_evaluated_key = _moto_query(self, *args, **kwargs)
    limit = kwargs.get("limit") if "limit" in kwargs else (args[3] if len(args) > 3 else None)
    if limit and scanned_count >= limit and last_evaluated_key is None and results:
        index_name = kwargs.get("index_name") if "index_name" in kwargs else (args[7] if len(args) > 7 else None)
        try:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
        except (AttributeError, KeyError):  # a projection without the key attributes
            pass
    return results, scanned_count, last_evaluated_key


dynamodb_models.copy = _TablesNotCopied()
dynamodb_models.Table.query = _query
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()


def atomic(environ, start_response):
    with one_at_a_time:
        return list(app(environ, start_response))


run_simple(host, port, atomic, threaded=True, request_handler=MotoRequestHandler)
