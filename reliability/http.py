"""A small JSON-over-HTTP client for the load driver: one keep-alive connection per
client, a timeout on every request, and transport failures reported, not raised.

Only loopback addresses are allowed as targets.
"""

import http.client
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class TransportError(Exception):
    """No HTTP answer: refused, reset, timed out. The request may or may not have run."""


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes
    elapsed: float
    data: object = field(default=None)

    @property
    def is_json(self):
        return self.headers.get("content-type", "").startswith("application/json")


class Client:
    def __init__(self, base_url, token=None, timeout=15.0):
        parts = urlsplit(base_url)
        if parts.hostname not in LOOPBACK:
            raise ValueError(f"refusing to send load to {parts.hostname}: only 127.0.0.1")
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.timeout = timeout
        self._connection = None

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method, path, data=None):
        """One request; a `Reply`, or `TransportError` when no answer came."""
        body = None if data is None else json.dumps(data).encode()
        headers = {"Accept": "application/json", "Connection": "keep-alive"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        started = time.monotonic()
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        try:
            self._connection.request(method, path, body=body, headers=headers)
            answer = self._connection.getresponse()
            raw = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            # Refused, reset (a worker killed mid-request), closed keep-alive, timeout:
            # whether the request ran is unknown, so the caller decides how to retry.
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        reply_headers = {key.lower(): value for key, value in answer.getheaders()}
        if reply_headers.get("connection", "").lower() == "close":
            self.close()
        reply = Reply(answer.status, reply_headers, raw, time.monotonic() - started)
        if reply.is_json and raw:
            try:
                reply.data = json.loads(raw)
            except ValueError:
                reply.data = None
        return reply

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, data=None):
        return self.request("POST", path, data)

    def patch(self, path, data=None):
        return self.request("PATCH", path, data)
