"""The auth throttle: register and token guarded against brute force.

Its counters live in the `throttle` cache (the database), which every worker
process and host shares, so the limit holds however many gunicorn processes run.
"""

from django.core.cache import caches
from rest_framework import throttling


class AuthRateThrottle(throttling.SimpleRateThrottle):
    scope = "auth"

    @property
    def cache(self):
        return caches["throttle"]

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
