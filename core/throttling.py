"""Rate limits.

`user` is a generous per-user limit on every API endpoint, kept in process memory
so it costs no query. The auth endpoints' tight limit is `accounts.throttling`.
"""

from rest_framework import throttling

from .lru import LRU


class ProcessMemory:
    """The part of Django's cache API a throttle uses, in this process, unpickled.

    Django's LocMemCache pickles a value on every get and set. A throttle's value is
    its history, one timestamp per request in the window (up to 2,000 for `user`),
    so pickling it cost a tenth of a page read (bench/README.md). Here `get` returns
    a copy, so threads never share a list; timeouts are not needed, as the throttle
    drops timestamps older than its window itself. At most `size` keys are kept,
    the least recently used dropped first.
    """

    def __init__(self, size=10_000):
        self._histories = LRU(size)

    def get(self, key, default=None):
        value = self._histories.get(key)
        return default if value is None else list(value)

    def set(self, key, value, timeout=None):
        self._histories.set(key, value)

    def clear(self):
        self._histories.clear()


class UserRateThrottle(throttling.UserRateThrottle):
    scope = "user"
    cache = ProcessMemory()
