"""Rate limits that every worker process and host count together.

A throttle admits at most N requests of one client per window (fixed windows of
the rate's period: "2000/minute" counts per calendar minute). The count lives in
the shared store, so four processes admit what one would:

- the database (default): one statement per request, an upsert that returns the
  new count (`RateCounter`, both databases);
- Redis, when REDIS_URL is set: Django's Redis cache, `add` then the atomic `incr`.

`user` is the per-user limit on every API endpoint; the auth endpoints' tight limit
is `accounts.throttling`, built on the same counter.
"""

from django.conf import settings
from django.core.cache import caches
from django.db import connections, router
from rest_framework import throttling

from .models import RateCounter

UPSERT = (
    "INSERT INTO {table} (key, window_number, count) VALUES (%s, %s, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    # A request of a newer window starts it; one that arrives late from an older
    # window still counts in the current one.
    "count = CASE WHEN excluded.window_number > {table}.window_number THEN 1 "
    "ELSE {table}.count + 1 END, "
    "window_number = CASE WHEN excluded.window_number > {table}.window_number "
    "THEN excluded.window_number ELSE {table}.window_number END "
    "RETURNING count"
)


def count_request(key, window):
    """Count one request for `key` in `window`; the number counted in it so far."""
    if settings.REDIS_URL:
        cache = caches["shared"]
        windowed = f"throttle:{key}:{window}"
        cache.add(windowed, 0, timeout=None)
        cache.touch(windowed, timeout=3600)
        return cache.incr(windowed)
    alias = router.db_for_write(RateCounter)
    table = connections[alias].ops.quote_name(RateCounter._meta.db_table)
    with connections[alias].cursor() as cursor:
        cursor.execute(UPSERT.format(table=table), [key, window])
        return cursor.fetchone()[0]


class SharedRateThrottle(throttling.SimpleRateThrottle):
    """DRF's throttle interface over `count_request`: fixed windows, shared counts."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.retry_after = (window + 1) * self.duration - now
        return count_request(key, window) <= self.num_requests

    def wait(self):
        return max(self.retry_after, 0)


class UserRateThrottle(SharedRateThrottle):
    """Every API request of a user: the `user` rate (authenticated requests only)."""

    scope = "user"

    def get_cache_key(self, request, view):
        user = request.user
        if user is None or not user.is_authenticated:
            return None
        return f"user:{user.pk}"
