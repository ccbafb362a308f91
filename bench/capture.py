"""Capture the exact SQL each scenario's request runs, in-process through the ORM.

    python -m bench.capture SPEC.json OUT.pickle

SPEC is a JSON list of {"name", "method", "path", "token", "body"}. Each request
goes through Django's full handler (middleware, DRF, the views) with the
production settings of the environment; every statement the ORM sends is
recorded with its parameters by a `connection.execute_wrapper`. OUT gets
`{name: {"status": int, "queries": [(sql, params), ...]}}`; parameters are kept
for GET requests only (the floor and EXPLAIN replay those).

Run it once more per request before recording, so per-process caches (content
types, the URL resolver) are warm, as they are in a long-running worker.
"""

import json
import os
import pickle
import sys


def main(argv):
    spec_path, out_path = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1", raise_request_exception=True)

    def send(item):
        extra = {"HTTP_ACCEPT": "application/json"}
        if item.get("token"):
            extra["HTTP_AUTHORIZATION"] = f"Bearer {item['token']}"
        if item["method"] == "GET":
            return client.get(item["path"], **extra)
        return client.generic(
            item["method"],
            item["path"],
            json.dumps(item.get("body") or {}),
            content_type="application/json",
            **extra,
        )

    results = {}
    with open(spec_path) as spec:
        items = json.load(spec)
    for item in items:
        send(item)
        recorded = []

        def record(execute, sql, params, many, context, recorded=recorded):
            recorded.append((sql, tuple(params) if params is not None else None))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            response = send(item)
        if item["method"] != "GET":
            recorded = [(sql, None) for sql, _ in recorded]
        results[item["name"]] = {"status": response.status_code, "queries": recorded}
    with open(out_path, "wb") as out:
        pickle.dump(results, out)


if __name__ == "__main__":
    main(sys.argv[1:])
