"""Run the same call from several threads at once, for race tests on PostgreSQL."""

import threading

from django.db import connection


def run_at_once(count, target, timeout=60):
    """Call `target(index)` from `count` threads released together.

    Returns `(results, errors)`: results in thread order (None where the call
    raised) and the exceptions raised. Each thread closes its own database
    connection, so every call really races inside the database.
    """
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def worker(index):
        try:
            barrier.wait(timeout=timeout)
            results[index] = target(index)
        except Exception as exc:  # handed back to the test, which asserts on it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results, errors
