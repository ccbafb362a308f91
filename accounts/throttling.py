"""The auth throttle: register and token guarded against brute force, per client
address, counted by every process and host together (`core.throttling`)."""

from core.throttling import SharedRateThrottle


class AuthRateThrottle(SharedRateThrottle):
    scope = "auth"

    def get_cache_key(self, request, view):
        return f"auth:{self.get_ident(request)}"
