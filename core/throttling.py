"""Rate limits that every worker process and host count together.

A throttle admits at most N requests of one client per window (fixed windows of
the rate's period: "2000/minute" counts per calendar minute). The count lives in
the shared store, so four processes admit what one would:

- the database (default): an upsert that returns the new count (`RateCounter`,
  both databases);
- Redis, when REDIS_URL is set: Django's Redis cache, `add` then the atomic `incr`.

A process does not ask the store on every request: it claims a block of
max(1, N / 50) requests of the window at a time (`Leases`) and admits from its
block. It never admits more than it claimed, so all processes together admit at
most N; what a process claimed but did not use when the window ends is lost, so a
client spread over P processes may get up to P blocks (2 % of N each) fewer. A
tight limit (the auth throttle's 20/minute) has blocks of one: every request asks.

`user` is the per-user limit on every API endpoint; the auth endpoints' tight limit
is `accounts.throttling`, built on the same counter.
"""

import threading

from django.conf import settings
from django.core.cache import caches
from django.db import connections, router
from rest_framework import throttling

from .lru import LRU
from .models import RateCounter

# Requests of one window a process claims at once: max(1, rate // LEASE_SHARE).
LEASE_SHARE = 50

UPSERT = (
    "INSERT INTO {table} (key, window_number, count) VALUES (%s, %s, %s) "
    "ON CONFLICT (key) DO UPDATE SET "
    # A claim of a newer window starts it; one that arrives late from an older
    # window still counts in the current one.
    "count = CASE WHEN excluded.window_number > {table}.window_number THEN excluded.count "
    "ELSE {table}.count + excluded.count END, "
    "window_number = CASE WHEN excluded.window_number > {table}.window_number "
    "THEN excluded.window_number ELSE {table}.window_number END "
    "RETURNING count"
)


def count_requests(key, window, amount=1, ttl=3600):
    """Count `amount` requests for `key` in `window` in the shared store; returns the
    number counted in that window so far. `ttl`: how long Redis keeps the count."""
    if settings.REDIS_URL:
        cache = caches["shared"]
        windowed = f"throttle:{key}:{window}"
        cache.add(windowed, 0, timeout=ttl)
        return cache.incr(windowed, amount)
    alias = router.db_for_write(RateCounter)
    table = connections[alias].ops.quote_name(RateCounter._meta.db_table)
    with connections[alias].cursor() as cursor:
        cursor.execute(UPSERT.format(table=table), [key, window, amount])
        return cursor.fetchone()[0]


class Leases:
    """Requests this process may still admit, per key, from the blocks it claimed."""

    def __init__(self, size=10_000):
        self._lock = threading.Lock()
        self._left = LRU(size)

    def take(self, key, window, rate):
        """Use one request of the key's block for `window`; False if there is none left."""
        with self._lock:
            lease = self._left.get(key)
            if lease is None or lease[:2] != (window, rate) or lease[2] < 1:
                return False
            self._left.set(key, (window, rate, lease[2] - 1))
            return True

    def add(self, key, window, rate, count):
        with self._lock:
            lease = self._left.get(key)
            left = lease[2] if lease is not None and lease[:2] == (window, rate) else 0
            self._left.set(key, (window, rate, left + count))

    def clear(self):
        self._left.clear()


LEASES = Leases()


class SharedRateThrottle(throttling.SimpleRateThrottle):
    """DRF's throttle interface over `count_requests` and `Leases`: fixed windows,
    shared counts."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.retry_after = (window + 1) * self.duration - now
        if LEASES.take(key, window, self.num_requests):
            return True
        block = max(1, self.num_requests // LEASE_SHARE)
        counted = count_requests(key, window, block, ttl=self.duration + 60)
        granted = block - max(0, counted - self.num_requests)  # the part within the rate
        if granted < 1:
            return False
        LEASES.add(key, window, self.num_requests, granted - 1)
        return True

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
